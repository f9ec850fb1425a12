// The simulated sled agent's routes (omicron sim/http_entrypoints.rs): one small handler each,
// parse and call the agent. Validation happens in the schemas, and for guest networking in
// src/common/network-checks.ts, shared with the real agent; errors are thrown as ApiErrors.
import { checkFirewallRulesEnsure, checkInstanceHardware, checkV2P, vniOfRules } from '../common/network-checks.js';
import * as endpoints from '../endpoints.js';
import { healthRoute } from '../health.js';
import { metricsRoute, type Metrics } from '../metrics.js';
import type { App } from '../server.js';
import type { SimSledAgent } from './sled-agent.js';

export function simRoutes(app: App, agent: SimSledAgent, metrics: Metrics): void {
  app.put('/instances/:instance_id', { schema: endpoints.instancePut }, async (request) => {
    const { initial, target } = request.body;
    return agent.instanceEnsure(request.params.instance_id, checkInstanceHardware(initial), target);
  });

  app.post('/instances/:instance_id/poke', { schema: endpoints.instancePoke }, async (request, reply) => {
    await agent.instancePoke(request.params.instance_id);
    return reply.status(204).send();
  });

  app.put('/disks/:disk_id', { schema: endpoints.diskPut }, async (request) => {
    const { initial_runtime, target } = request.body;
    return agent.diskEnsure(request.params.disk_id, initial_runtime, target);
  });

  app.post('/disks/:disk_id/poke', { schema: endpoints.diskPoke }, async (request, reply) => {
    await agent.diskPoke(request.params.disk_id);
    return reply.status(204).send();
  });

  app.put('/services', { schema: endpoints.servicesPut }, async (request, reply) => {
    agent.servicesEnsure(request.body.services);
    return reply.status(204).send();
  });

  app.put('/filesystem', { schema: endpoints.filesystemPut }, async (request, reply) => {
    agent.filesystemEnsure(request.body);
    return reply.status(204).send();
  });

  app.put('/vpc/:vpc_id/firewall/rules', { schema: endpoints.vpcFirewallRulesPut }, async (request, reply) => {
    checkFirewallRulesEnsure(request.body);
    const { rules } = request.body;
    const vni = vniOfRules(request.body.vni, rules);
    agent.firewallRulesEnsure(request.params.vpc_id, vni, rules);
    return reply.status(204).send();
  });

  app.put('/v2p/:interface_id', { schema: endpoints.v2pSet }, async (request, reply) => {
    checkV2P(request.body);
    agent.setV2P(request.params.interface_id, request.body);
    return reply.status(204).send();
  });

  app.delete('/v2p/:interface_id', { schema: endpoints.v2pDelete }, async (request, reply) => {
    checkV2P(request.body);
    agent.deleteV2P(request.params.interface_id, request.body);
    return reply.status(204).send();
  });

  app.get('/v2p', { schema: endpoints.v2pList }, async () => agent.listV2P());

  app.post('/update', { schema: endpoints.updateArtifact }, async (request, reply) => {
    await agent.updateArtifact(request.body);
    return reply.status(204).send();
  });

  // For operators, outside the contract, as on the real agent (src/inventory.ts).
  app.get('/instances', { schema: endpoints.instanceList }, async () => agent.instanceViews());

  app.get('/instances/:instance_id', { schema: endpoints.instanceGet }, async (request) => agent.instanceView(request.params.instance_id));

  app.get('/inventory', { schema: endpoints.inventoryGet }, async () => agent.inventory());

  // No host to ask: serving is healthy (a closing server answers 503 by itself).
  healthRoute(app, () => ({
    check: async () => ({ ok: true }),
    body: () => ({ status: 'ok', sled_id: agent.id, host_backend: null, nexus_registered: agent.registered, nexus_queue: agent.nexusQueue }),
  }));

  metricsRoute(app, () => metrics);
}
