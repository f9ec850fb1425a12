// The bootstrap agent's routes (omicron bootstrap/http_entrypoints.rs).
import * as endpoints from './endpoints.js';
import type { App } from '../server.js';
import type { BootstrapAgent } from './agent.js';

export function bootstrapRoutes(app: App, agent: BootstrapAgent): void {
  // The contract's GET carries a JSON body, which fastify refuses unless GET is declared to have one.
  app.addHttpMethod('GET', { hasBody: true, overrideExisting: true });

  app.get('/request_share', { schema: endpoints.requestShare, exposeHeadRoute: false }, async (request) =>
    agent.requestShare(Uint8Array.from(request.body.identity)));

  app.put('/start_sled', { schema: endpoints.startSled }, async (request) => agent.startSled(request.body));
}
