// PUT /services and PUT /filesystem on the simulated sled agent: what RSS sends to set up a rack.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { expectSchema } from './support/contract.js';
import { startTestSim, type TestSim } from './support/sim.js';

let t: TestSim;
afterEach(async () => { await t?.close(); });

const POOL = '11111111-0000-4000-8000-000000000001';
const nexus = { name: 'nexus', addresses: ['fd00:1122:3344:101::3'], gz_addresses: [] };

describe('PUT /services', () => {
  it('records services, accepts the same list again, and refuses to change a running one', async () => {
    t = await startTestSim();
    const oximeter = { name: 'oximeter', addresses: ['fd00:1122:3344:101::4'] };
    expect((await t.request('PUT', '/services', { services: [nexus] })).status).toBe(204);
    expect((await t.request('PUT', '/services', { services: [nexus, oximeter] })).status).toBe(204);
    expect(t.sim.agent.services.list()).toEqual([nexus, { ...oximeter, gz_addresses: [] }]);
    const changed = await t.request('PUT', '/services', {
      services: [{ name: 'dns', addresses: ['fd00::1'] }, { ...nexus, addresses: ['fd00:1122:3344:101::9'] }],
    });
    expect(changed.status).toBe(409);
    expectSchema('sled-agent.json', 'Error', changed.body);
    expect(changed.body.message).toMatch(/service "nexus" is already running with addresses \["fd00:1122:3344:101::3"\]/);
    // Nothing of a refused request is applied.
    expect(t.sim.agent.services.list().map((s) => s.name)).toEqual(['nexus', 'oximeter']);
  });

  it('refuses an address that is not IPv6, naming the field', async () => {
    t = await startTestSim();
    const res = await t.request('PUT', '/services', { services: [{ name: 'nexus', addresses: ['10.0.0.1'] }] });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/body\/services\/0\/addresses\/0 must be a valid ipv6/);
  });
});

describe('PUT /filesystem', () => {
  it('creates one dataset per kind per pool and reports it to Nexus with the Nexus kind name', async () => {
    t = await startTestSim({ zpools: [{ id: POOL, size: 1 << 30 }] });
    await t.sim.registered;
    const body = {
      zpool_id: POOL,
      dataset_kind: { type: 'cockroach_db', all_addresses: ['[fd00:1122:3344:101::2]:32221'] },
      address: '[fd00:1122:3344:101::2]:32221',
    };
    expect((await t.request('PUT', '/filesystem', body)).status).toBe(204);
    expect((await t.request('PUT', '/filesystem', body)).status).toBe(204);
    const put = await t.nexus.waitFor((r) => r.url.startsWith(`/zpools/${POOL}/dataset/`) && r.body.kind === 'cockroach');
    expectSchema('nexus-internal.json', 'DatasetPutRequest', put.body);
    expect(put.body.address).toBe(body.address);
    expect(t.sim.agent.storage.requested).toHaveLength(1);
  });

  it('answers 404 for a pool the sled does not have, and 400 for an unknown kind', async () => {
    t = await startTestSim({ zpools: [{ id: POOL, size: 1 << 30 }] });
    const other = randomUUID();
    const missing = await t.request('PUT', '/filesystem', { zpool_id: other, dataset_kind: { type: 'crucible' }, address: '[::1]:1' });
    expect(missing.status).toBe(404);
    expect(missing.body.message).toContain(`no zpool with id ${other} on this sled (it has ${POOL})`);
    const kind = await t.request('PUT', '/filesystem', { zpool_id: POOL, dataset_kind: { type: 'mysql' }, address: '[::1]:1' });
    expect(kind.status).toBe(400);
    expect(kind.body.message).toMatch(/body\/dataset_kind\/type has an unknown value/);
  });

  it('refuses an address, or a CockroachDB peer, that is not an IPv6 socket address, as the original\'s serde did', async () => {
    t = await startTestSim({ zpools: [{ id: POOL, size: 1 << 30 }] });
    const bad = [
      [{ type: 'clickhouse' }, 'x', /^address: "x" is not a socket address/],
      [{ type: 'clickhouse' }, '10.0.0.1:8123', /^address "10.0.0.1:8123" must be an IPv6 socket address/],
      [{ type: 'cockroach_db', all_addresses: ['nope'] }, '[fd00:1122:3344:101::2]:32221', /^dataset_kind\.all_addresses: "nope" is not a socket address/],
    ] as const;
    for (const [dataset_kind, address, message] of bad) {
      const res = await t.request('PUT', '/filesystem', { zpool_id: POOL, dataset_kind, address });
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(message);
    }
    expect(t.sim.agent.storage.requested).toEqual([]);
  });
});
