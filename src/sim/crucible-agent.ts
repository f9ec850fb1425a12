// A simulated Crucible agent, one per simulated dataset (omicron sim/http_entrypoints_storage.rs
// against test/contracts/crucible/crucible-agent.json): regions list/create/get/delete.
// Regions come up "created" at once; a deleted region stays listed as "destroyed"; a create
// names its region by id and replaces whatever had that id.
import type { Logger } from 'pino';
import { invalidRequest, objectNotFound } from '../common/errors.js';
import { unencodableText } from '../common/unicode.js';
import { ApiError as ApiErrorSchema, CreateRegion, NoContent, Region, RegionPathParam } from '../params.js';
import { createServer, type App } from '../server.js';
import { Type } from 'typebox';

const errors = { '4xx': ApiErrorSchema, '5xx': ApiErrorSchema };

export class CrucibleData {
  private readonly regions = new Map<string, Region>();

  list(): Region[] {
    return [...this.regions.values()];
  }

  get(id: string): Region {
    const region = this.regions.get(id);
    if (!region) throw objectNotFound('Region not found');
    return region;
  }

  /**
   * As omicron's sim (CrucibleDataInner::create, a plain HashMap insert): a create for an id it
   * already has, live or destroyed, with the same parameters or not, replaces that region with
   * the new one and answers 200 with it. Nexus's tests were written against that sim, so a
   * refusal here would fail a request that passes there.
   */
  create(params: CreateRegion): Region {
    // The real agent's JSON parser refuses such an id; kept, it could never be named in a URL.
    const unencodable = unencodableText(params.id);
    if (unencodable) throw invalidRequest(`region id ${JSON.stringify(params.id)} contains ${unencodable}`);
    const region: Region = {
      id: params.id,
      state: 'created',
      block_size: params.block_size,
      extent_size: params.extent_size,
      extent_count: params.extent_count,
      port_number: 0,
      encrypted: false,
      cert_pem: null,
      key_pem: null,
      root_pem: null,
    };
    this.regions.set(params.id, region);
    return region;
  }

  delete(id: string): void {
    const region = this.get(id);
    this.regions.set(id, { ...region, state: 'destroyed' });
  }
}

export function crucibleAgentApp(data: CrucibleData, log: Logger): App {
  const app = createServer({ logger: log });
  app.get('/crucible/0/regions', {
    schema: { operationId: 'region_list', response: { 200: Type.Array(Region), ...errors } },
  }, async () => data.list());
  app.post('/crucible/0/regions', {
    schema: { operationId: 'region_create', body: CreateRegion, response: { 200: Region, ...errors } },
  }, async (request) => data.create(request.body));
  app.get('/crucible/0/regions/:id', {
    schema: { operationId: 'region_get', params: RegionPathParam, response: { 200: Region, ...errors } },
  }, async (request) => data.get(request.params.id));
  app.delete('/crucible/0/regions/:id', {
    schema: { operationId: 'region_delete', params: RegionPathParam, response: { 204: NoContent('successful deletion'), ...errors } },
  }, async (request, reply) => {
    data.delete(request.params.id);
    return reply.status(204).send();
  });
  return app;
}
