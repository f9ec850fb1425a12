// OpenAPI documents of the APIs this code serves, generated from the route schemas by
// @fastify/swagger, so the document cannot drift from what the server validates.
import swagger from '@fastify/swagger';
import type { App } from './server.js';

export const SLED_AGENT_API_INFO = {
  title: 'Oxide Sled Agent API',
  description: 'API for interacting with individual sleds',
  contact: { url: 'https://oxide.computer', email: 'api@oxide.computer' },
  version: '0.0.1',
};

export const BOOTSTRAP_API_INFO = {
  title: 'Oxide Bootstrap Agent API',
  description: 'API for interacting with bootstrapping agents',
  contact: { url: 'https://oxide.computer', email: 'api@oxide.computer' },
  version: '0.0.1',
};

/** Must be registered before the routes it documents. */
export async function registerOpenApi(app: App, info: typeof SLED_AGENT_API_INFO): Promise<void> {
  await app.register(swagger, {
    openapi: { openapi: '3.0.3', info },
    // Shared schemas become components named by their $id, as in the contract.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`),
    },
  });
}

export async function openApiDocument(app: App): Promise<Record<string, unknown>> {
  await app.ready();
  return app.swagger() as unknown as Record<string, unknown>;
}
