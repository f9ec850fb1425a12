// The bootstrap agent's routes (omicron bootstrap/http_entrypoints.rs).
import { invalidRequest } from '../common/errors.js';
import type { App } from '../server.js';
import { explainSubnetRejection, type BootstrapAgent } from './agent.js';
import * as endpoints from './endpoints.js';

export function bootstrapRoutes(app: App, agent: BootstrapAgent): void {
  // The contract's GET carries a JSON body, which fastify refuses unless GET is declared to have one.
  app.addHttpMethod('GET', { hasBody: true, overrideExisting: true });

  app.get('/request_share', { schema: endpoints.requestShare, exposeHeadRoute: false }, async (request) =>
    agent.requestShare(Uint8Array.from(request.body.identity)));

  // The schema is checked here rather than by fastify's hook so that a subnet the contract's
  // pattern refuses gets a message saying what a sled subnet is instead of the pattern.
  app.put('/start_sled', { schema: endpoints.startSled, attachValidation: true }, async (request) => {
    const failed = request.validationError;
    if (failed) {
      const first = failed.validation[0];
      const explained = first?.keyword === 'pattern' && first.instancePath === '/subnet/net'
        ? explainSubnetRejection(request.body) : null;
      throw explained ? invalidRequest(explained) : failed;
    }
    return agent.startSled(request.body);
  });
}
