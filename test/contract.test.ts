// The OpenAPI documents `sled-agent openapi sled|sim|bootstrap` print must match the omicron
// contracts structurally for every path and method: same parameters, request bodies and
// responses once $refs are resolved. The documents are taken from the CLI itself.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootstrapContract, normalize, sledAgentContract } from './support/contract.js';

interface Api {
  api: string;
  contract: any;
  served: Array<[path: string, method: string]>;
}

const APIS: Api[] = [
  {
    api: 'sled',
    contract: sledAgentContract,
    served: [['/instances/{instance_id}', 'put'], ['/disks/{disk_id}', 'put'], ['/update', 'post'],
      ['/services', 'put'], ['/filesystem', 'put']],
  },
  {
    api: 'sim',
    contract: sledAgentContract,
    // The original sim lacks /services and /filesystem; ours serves them so RSS can set up a rack of sims.
    served: [['/instances/{instance_id}', 'put'], ['/disks/{disk_id}', 'put'], ['/update', 'post'],
      ['/services', 'put'], ['/filesystem', 'put']],
  },
  {
    api: 'bootstrap',
    contract: bootstrapContract,
    served: [['/request_share', 'get'], ['/start_sled', 'put']],
  },
];

const docs: Record<string, any> = {};

beforeAll(async () => {
  await Promise.all(APIS.map(async ({ api }) => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/bin/sled-agent.ts', 'openapi', api]);
    docs[api] = JSON.parse(stdout);
  }));
}, 60_000);

const jsonSchema = (content: any) => content?.['application/json']?.schema;

describe.each(APIS)('$api OpenAPI document', ({ api, contract, served }) => {
  const doc = () => docs[api];

  it('is a valid OpenAPI 3.0 document with the contract title and version', async () => {
    const result = await new Validator().validate(doc());
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc().openapi).toBe(contract.openapi);
    expect(doc().info.title).toBe(contract.info.title);
    expect(doc().info.version).toBe(contract.info.version);
  });

  it('serves every path and method of the contract', () => {
    const contractOps = Object.entries(contract.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m} ${p}`));
    expect(contractOps.sort()).toEqual(served.map(([p, m]) => `${m} ${p}`).sort());
    for (const [path, method] of served) expect(doc().paths[path]?.[method], `${method} ${path} served`).toBeDefined();
  });

  describe.each(served)('%s %s', (path, method) => {
    const ours = () => doc().paths[path][method];
    const theirs = () => contract.paths[path][method];

    it('has the same operationId', () => {
      expect(ours().operationId).toBe(theirs().operationId);
    });

    it('has equivalent path parameters', () => {
      const params = (op: any, d: any) => (op.parameters ?? [])
        .map((p: any) => ({ in: p.in, name: p.name, required: p.required, schema: normalize(p.schema, d) }))
        .sort((a: any, b: any) => a.name.localeCompare(b.name));
      expect(params(ours(), doc())).toEqual(params(theirs(), contract));
    });

    it('has an equivalent, required request body', () => {
      expect(ours().requestBody.required).toBe(true);
      expect(normalize(jsonSchema(ours().requestBody.content), doc()))
        .toEqual(normalize(jsonSchema(theirs().requestBody.content), contract));
    });

    it('has the same success status and an equivalent success body', () => {
      const success = (op: any) => Object.keys(op.responses).filter((s) => /^2\d\d$/.test(s));
      expect(success(ours())).toEqual(success(theirs()));
      for (const status of success(theirs())) {
        expect(normalize(jsonSchema(ours().responses[status].content), doc()))
          .toEqual(normalize(jsonSchema(theirs().responses[status].content), contract));
      }
    });

    it('answers errors with the contract Error envelope', () => {
      const contractError = normalize(contract.components.schemas.Error, contract);
      for (const status of ['4XX', '5XX']) {
        const response = ours().responses[status] ?? ours().responses[status.toLowerCase()];
        expect(response, `${status} response`).toBeDefined();
        expect(normalize(jsonSchema(response.content), doc())).toEqual(contractError);
      }
    });
  });
});

describe('sim OpenAPI document, sim-only endpoints', () => {
  it('publishes the poke endpoints beside the contract', () => {
    expect(docs.sim.paths['/instances/{instance_id}/poke']?.post?.responses?.['204']).toBeDefined();
    expect(docs.sim.paths['/disks/{disk_id}/poke']?.post?.responses?.['204']).toBeDefined();
  });

  it('is not in the real agent\'s document', () => {
    expect(docs.sled.paths['/instances/{instance_id}/poke']).toBeUndefined();
  });
});
