// The real agent's routes (omicron http_entrypoints.rs): one small handler each, parse and call
// the agent. Validation happens in the schemas, and for guest networking in
// src/common/network-checks.ts, shared with the simulated agent; refusals are thrown as ApiErrors
// (4xx with the omicron envelope), never a panic.
import { checkFirewallRulesEnsure, checkInstanceHardware, checkV2P, vniOfRules } from './common/network-checks.js';
import * as endpoints from './endpoints.js';
import type { App } from './server.js';
import type { SledAgent } from './sled-agent.js';

/** `agent` is a getter so the OpenAPI document can be built from the routes with no agent behind them. */
export function agentRoutes(app: App, agentOf: () => SledAgent): void {
  app.put('/instances/:instance_id', { schema: endpoints.instancePut }, async (request) => {
    const agent = agentOf();
    const { initial, target, migrate } = request.body;
    return agent.instances.ensure(request.params.instance_id, checkInstanceHardware(initial), target, migrate ?? null);
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

  app.put('/vpc/:vpc_id/firewall/rules', { schema: endpoints.vpcFirewallRulesPut }, async (request, reply) => {
    const agent = agentOf();
    checkFirewallRulesEnsure(request.body);
    const { rules } = request.body;
    const vni = vniOfRules(request.body.vni, rules);
    await agent.ports.firewallRulesEnsure(request.params.vpc_id, vni, rules);
    return reply.status(204).send();
  });

  app.put('/v2p/:interface_id', { schema: endpoints.v2pSet }, async (request, reply) => {
    const agent = agentOf();
    checkV2P(request.body);
    await agent.ports.setV2P(request.params.interface_id, request.body);
    return reply.status(204).send();
  });

  app.delete('/v2p/:interface_id', { schema: endpoints.v2pDelete }, async (request, reply) => {
    const agent = agentOf();
    checkV2P(request.body);
    await agent.ports.deleteV2P(request.params.interface_id, request.body);
    return reply.status(204).send();
  });

  app.get('/v2p', { schema: endpoints.v2pList }, async () => agentOf().ports.listV2P());

  app.post('/update', { schema: endpoints.updateArtifact }, async (request, reply) => {
    const agent = agentOf();
    await agent.updateArtifact(request.body);
    return reply.status(204).send();
  });
}
