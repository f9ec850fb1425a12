// The OpenAPI document `sled-agent openapi sled` prints must match the omicron contract
// structurally for every path and method the sim serves: same parameters, request bodies and
// responses once $refs are resolved. The document is taken from the CLI itself.
import { execFileSync } from 'node:child_process';
import { Validator } from '@seriousme/openapi-schema-validator';
import { beforeAll, describe, expect, it } from 'vitest';
import { normalize, sledAgentContract } from './support/contract.js';

const CONTRACT_PATHS_SERVED_BY_SIM = [
  ['/instances/{instance_id}', 'put'],
  ['/disks/{disk_id}', 'put'],
  ['/update', 'post'],
  // The original sim lacks these; ours serves them so RSS can set up a rack of sims.
  ['/services', 'put'],
  ['/filesystem', 'put'],
] as const;

let doc: any;

beforeAll(() => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/bin/sled-agent.ts', 'openapi', 'sled'], {
    encoding: 'utf8',
  });
  doc = JSON.parse(out);
}, 60_000);

const jsonSchema = (content: any) => content?.['application/json']?.schema;

describe('sled agent OpenAPI document', () => {
  it('is a valid OpenAPI 3.0 document with the contract title and version', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe(sledAgentContract.openapi);
    expect(doc.info.title).toBe(sledAgentContract.info.title);
    expect(doc.info.version).toBe(sledAgentContract.info.version);
  });

  it('covers every contract path the sim serves, and only those of the contract', () => {
    for (const [path, method] of CONTRACT_PATHS_SERVED_BY_SIM) {
      expect(sledAgentContract.paths[path]?.[method], `${method} ${path} in contract`).toBeDefined();
      expect(doc.paths[path]?.[method], `${method} ${path} served`).toBeDefined();
    }
    const contractOps = Object.entries(sledAgentContract.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m} ${p}`));
    const accounted = CONTRACT_PATHS_SERVED_BY_SIM.map(([p, m]) => `${m} ${p}`);
    expect(contractOps.sort()).toEqual(accounted.sort());
  });

  it('publishes the sim-only poke endpoints beside the contract', () => {
    expect(doc.paths['/instances/{instance_id}/poke']?.post?.responses?.['204']).toBeDefined();
    expect(doc.paths['/disks/{disk_id}/poke']?.post?.responses?.['204']).toBeDefined();
  });

  describe.each(CONTRACT_PATHS_SERVED_BY_SIM)('%s %s', (path, method) => {
    const ours = () => doc.paths[path][method];
    const theirs = () => sledAgentContract.paths[path][method];

    it('has the same operationId', () => {
      expect(ours().operationId).toBe(theirs().operationId);
    });

    it('has equivalent path parameters', () => {
      const params = (op: any, d: any) => (op.parameters ?? [])
        .map((p: any) => ({ in: p.in, name: p.name, required: p.required, schema: normalize(p.schema, d) }))
        .sort((a: any, b: any) => a.name.localeCompare(b.name));
      expect(params(ours(), doc)).toEqual(params(theirs(), sledAgentContract));
    });

    it('has an equivalent, required request body', () => {
      expect(ours().requestBody.required).toBe(true);
      expect(normalize(jsonSchema(ours().requestBody.content), doc))
        .toEqual(normalize(jsonSchema(theirs().requestBody.content), sledAgentContract));
    });

    it('has the same success status and an equivalent success body', () => {
      const success = (op: any) => Object.keys(op.responses).filter((s) => /^2\d\d$/.test(s));
      expect(success(ours())).toEqual(success(theirs()));
      for (const status of success(theirs())) {
        expect(normalize(jsonSchema(ours().responses[status].content), doc))
          .toEqual(normalize(jsonSchema(theirs().responses[status].content), sledAgentContract));
      }
    });

    it('answers errors with the contract Error envelope', () => {
      const contractError = normalize(sledAgentContract.components.schemas.Error, sledAgentContract);
      for (const status of ['4XX', '5XX']) {
        const response = ours().responses[status] ?? ours().responses[status.toLowerCase()];
        expect(response, `${status} response`).toBeDefined();
        expect(normalize(jsonSchema(response.content), doc)).toEqual(contractError);
      }
    });
  });
});
