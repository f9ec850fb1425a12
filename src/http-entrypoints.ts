// The real agent's routes (omicron http_entrypoints.rs): one small handler each, parse and call
// the agent. Validation happens in the schemas; refusals are thrown as ApiErrors (4xx with the
// omicron envelope), never a panic.
import * as endpoints from './endpoints.js';
import type { App } from './server.js';
import type { SledAgent } from './sled-agent.js';

/** `agent` is a getter so the OpenAPI document can be built from the routes with no agent behind them. */
export function agentRoutes(app: App, agentOf: () => SledAgent): void {
  app.put('/instances/:instance_id', { schema: endpoints.instancePut }, async (request) => {
    const agent = agentOf();
    const { initial, target, migrate } = request.body;
    return agent.instances.ensure(request.params.instance_id, initial, target, migrate ?? null);
  });

  app.put('/disks/:disk_id', { schema: endpoints.diskPut }, async (request) => {
    const agent = agentOf();
    const { initial_runtime, target } = request.body;
    return agent.disks.ensure(request.params.disk_id, initial_runtime, target);
  });

  app.put('/services', { schema: endpoints.servicesPut }, async (request, reply) => {
    const agent = agentOf();
    await agent.services.ensure(request.body.services);
    return reply.status(204).send();
  });

  app.put('/filesystem', { schema: endpoints.filesystemPut }, async (request, reply) => {
    const agent = agentOf();
    await agent.storage.filesystemEnsure(request.body);
    return reply.status(204).send();
  });

  app.post('/update', { schema: endpoints.updateArtifact }, async (request, reply) => {
    const agent = agentOf();
    await agent.updateArtifact(request.body);
    return reply.status(204).send();
  });
}
