// Simulated storage (reference §3, §9): the zpools and Crucible datasets the sim reports to Nexus
// after registering, and the Crucible agent HTTP API each dataset serves, all over real HTTP
// against the fake Nexus.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultSimConfig } from '../src/sim/config.js';
import { startSim } from '../src/sim/server.js';
import { expectSchema } from './support/contract.js';
import { FakeNexus, type Recorded } from './support/fake-nexus.js';
import { startTestSim, type TestSim } from './support/sim.js';

const FIXED_ZPOOL_ID = '0c5e3a1f-7b2d-4e8a-9f61-2d4c8b7a3e90';
const BIG = 2 ** 40;
const SMALL = 2 ** 30;
const POOLS = [{ size: BIG }, { size: SMALL, id: FIXED_ZPOOL_ID }];

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ZPOOL_PUT_RE = /^\/sled_agents\/([^/]+)\/zpools\/([^/]+)$/;
const DATASET_PUT_RE = /^\/zpools\/([^/]+)\/dataset\/([^/]+)$/;

const isRegistration = (sledId: string) => (r: Recorded) => r.method === 'POST' && r.url === `/sled_agents/${sledId}`;
const isZpoolPut = (r: Recorded) => r.method === 'PUT' && ZPOOL_PUT_RE.test(r.url);
const isDatasetPut = (r: Recorded) => r.method === 'PUT' && DATASET_PUT_RE.test(r.url);

let sim: TestSim | undefined;

afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function http(method: string, url: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let parsed: any;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
  return { status: res.status, body: parsed, text };
}

function expectEnvelope(body: any, status: number, res: { status: number }): void {
  expect(res.status).toBe(status);
  expect(typeof body.request_id).toBe('string');
  expect(body.request_id.length).toBeGreaterThan(0);
  expect(typeof body.error_code).toBe('string');
  expect(typeof body.message).toBe('string');
  expect(Object.keys(body).sort()).toEqual(['error_code', 'message', 'request_id']);
  expectSchema('crucible-agent.json', 'Error', body);
}

/** The zpool and dataset reports, with each dataset_put tied to the zpool it names. */
function storageReports(nexus: FakeNexus) {
  const zpoolPuts = nexus.requests.filter(isZpoolPut);
  const datasetPuts = nexus.requests.filter(isDatasetPut);
  return { zpoolPuts, datasetPuts };
}

describe('storage reported to Nexus', () => {
  it('registers the sled, then puts every zpool and then its crucible dataset; `registered` waits for all', async () => {
    sim = await startTestSim({ zpools: POOLS });
    const { nexus, config } = sim;
    await sim.sim.registered;

    // `registered` settled only once everything was delivered: all reports are already recorded.
    const { zpoolPuts, datasetPuts } = storageReports(nexus);
    expect(zpoolPuts).toHaveLength(2);
    expect(datasetPuts).toHaveLength(2);

    const regIndex = nexus.requests.findIndex(isRegistration(config.id));
    expect(regIndex).toBeGreaterThanOrEqual(0);
    expect(nexus.requests[regIndex]!.body).toEqual({ sa_address: sim.sim.address });
    expectSchema('nexus-internal.json', 'SledAgentStartupInfo', nexus.requests[regIndex]!.body);

    // zpool_put per pool, with the configured size, in the sled's path; the fixed id is used.
    const bySize = new Map<number, string>();
    for (const put of zpoolPuts) {
      const [, sledId, zpoolId] = ZPOOL_PUT_RE.exec(put.url)!;
      expect(sledId).toBe(config.id);
      expect(zpoolId).toMatch(UUID_RE);
      expectSchema('nexus-internal.json', 'ZpoolPutRequest', put.body);
      expect(Object.keys(put.body)).toEqual(['size']);
      bySize.set(put.body.size, zpoolId!);
    }
    expect([...bySize.keys()].sort((a, b) => a - b)).toEqual([SMALL, BIG]);
    expect(bySize.get(SMALL)).toBe(FIXED_ZPOOL_ID);
    expect(bySize.get(BIG)).not.toBe(FIXED_ZPOOL_ID);

    // dataset_put per pool: kind crucible, a real 127.0.0.1 address, after that pool's zpool_put.
    const datasetZpools: string[] = [];
    const datasetIds = new Set<string>();
    for (const put of datasetPuts) {
      const [, zpoolId, datasetId] = DATASET_PUT_RE.exec(put.url)!;
      expect(datasetId).toMatch(UUID_RE);
      datasetIds.add(datasetId!);
      datasetZpools.push(zpoolId!);
      expectSchema('nexus-internal.json', 'DatasetPutRequest', put.body);
      expect(put.body.kind).toBe('crucible');
      expect(put.body.address).toMatch(/^127\.0\.0\.1:\d+$/);
      const port = Number(put.body.address.split(':')[1]);
      expect(port).toBeGreaterThan(0);
      expect(port).toBeLessThan(65536);
      const zpoolIndex = nexus.requests.findIndex((r) => isZpoolPut(r) && r.url.endsWith(`/zpools/${zpoolId}`));
      expect(zpoolIndex, `zpool_put for ${zpoolId}`).toBeGreaterThanOrEqual(0);
      expect(nexus.requests.indexOf(put)).toBeGreaterThan(zpoolIndex);
    }
    expect(datasetZpools.sort()).toEqual([...bySize.values()].sort());
    expect(datasetIds.size).toBe(2);
    expect(new Set(datasetPuts.map((p) => p.body.address)).size).toBe(2);

    // Nothing about storage reached Nexus before the registration.
    for (const r of [...zpoolPuts, ...datasetPuts]) {
      expect(nexus.requests.indexOf(r)).toBeGreaterThan(regIndex);
    }

    // What was reported is what the sim holds.
    expect(sim.sim.storage.zpools.map((z) => z.id).sort()).toEqual([...bySize.values()].sort());
    expect(sim.sim.storage.zpools.map((z) => z.dataset.address).sort())
      .toEqual(datasetPuts.map((p) => p.body.address).sort());
  });

  it('reports no storage until Nexus has accepted the registration', async () => {
    const nexus = await FakeNexus.start();
    let refusals = 0;
    nexus.respond = (r) => {
      if (r.method === 'POST' && r.url.startsWith('/sled_agents/') && refusals < 3) {
        refusals += 1;
        return { status: 503, body: 'not yet' };
      }
      return { status: 204 };
    };
    sim = await startTestSim({ zpools: POOLS, nexus });
    await sim.sim.registered;

    const registrations = nexus.requests.filter(isRegistration(sim.config.id));
    expect(registrations).toHaveLength(4);
    const accepted = nexus.requests.indexOf(registrations[3]!);
    const storage = nexus.requests.filter((r) => isZpoolPut(r) || isDatasetPut(r));
    expect(storage).toHaveLength(4);
    for (const r of storage) expect(nexus.requests.indexOf(r)).toBeGreaterThan(accepted);
  });

  it('holds a dataset asked for before registration until its pool is reported', async () => {
    const nexus = await FakeNexus.start();
    let register!: () => void;
    const registration = new Promise<void>((resolve) => { register = resolve; });
    nexus.respond = async (r) => {
      if (r.method === 'POST' && r.url.startsWith('/sled_agents/')) await registration;
      return { status: 204 };
    };
    sim = await startTestSim({ zpools: POOLS, nexus });
    const res = await sim.request('PUT', '/filesystem', {
      zpool_id: FIXED_ZPOOL_ID, dataset_kind: { type: 'clickhouse' }, address: '[fd00:1122:3344:101::9]:8123',
    });
    expect(res.status).toBe(204);
    register();
    await sim.sim.registered;
    const clickhouse = await nexus.waitFor((r) => isDatasetPut(r) && r.body.kind === 'clickhouse');
    const pool = nexus.requests.find((r) => isZpoolPut(r) && ZPOOL_PUT_RE.exec(r.url)![2] === FIXED_ZPOOL_ID)!;
    expect(nexus.requests.indexOf(pool)).toBeLessThan(nexus.requests.indexOf(clickhouse));
  });

  it('retries a zpool_put that Nexus answered with 500 and still reports its dataset after it', async () => {
    const nexus = await FakeNexus.start();
    let failedUrl: string | null = null;
    nexus.respond = (r) => {
      if (failedUrl === null && isZpoolPut(r)) {
        failedUrl = r.url;
        return { status: 500, body: 'boom' };
      }
      return { status: 204 };
    };
    sim = await startTestSim({ zpools: POOLS, nexus });
    await sim.sim.registered;

    expect(failedUrl).not.toBeNull();
    const attempts = nexus.requests.filter((r) => r.method === 'PUT' && r.url === failedUrl);
    expect(attempts.length).toBe(2);
    expect(attempts[1]!.body).toEqual(attempts[0]!.body);
    const zpoolId = ZPOOL_PUT_RE.exec(failedUrl!)![2]!;
    const datasets = nexus.requests.filter((r) => isDatasetPut(r) && r.url.startsWith(`/zpools/${zpoolId}/`));
    expect(datasets).toHaveLength(1);
    expect(nexus.requests.indexOf(datasets[0]!)).toBeGreaterThan(nexus.requests.indexOf(attempts[1]!));
    // The other pool was reported exactly once.
    expect(nexus.requests.filter(isZpoolPut)).toHaveLength(3);
    expect(nexus.requests.filter(isDatasetPut)).toHaveLength(2);
  });
});

describe('storage when the sim fails to start', () => {
  it('closes the Crucible agents it started when its own address cannot be bound', async () => {
    // Something else already holds the sim's bind address.
    const blocker = createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    try {
      const { port } = blocker.address() as { port: number };
      const base = defaultSimConfig();
      // The log says where each Crucible agent listened.
      const lines: any[] = [];
      const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)); } });
      await expect(startSim({
        ...base,
        nexus_address: '127.0.0.1:9', // never contacted: the sim does not get that far
        dropshot: { ...base.dropshot, bind_address: `127.0.0.1:${port}` },
        storage: { ip: '127.0.0.1', zpools: POOLS },
      }, log)).rejects.toThrow(/EADDRINUSE/);

      const agents = lines
        .filter((l) => l.component === 'crucible-agent')
        .map((l) => /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(String(l.msg))?.[1])
        .filter((u): u is string => u !== undefined);
      expect(agents).toHaveLength(2);
      // A failed start must not leave them serving: connecting is refused.
      for (const url of agents) {
        const outcome = await fetch(`${url}/crucible/0/regions`).then((r) => `answered ${r.status}`, () => 'refused');
        expect(outcome, `Crucible agent at ${url} after the failed start`).toBe('refused');
      }
    } finally {
      blocker.close();
    }
  });
});

describe('Crucible agent of each dataset', () => {
  const createBody = (id: string, extent_count = 16) => ({
    id,
    block_size: 512,
    extent_size: 4096,
    extent_count,
    encrypted: false,
    cert_pem: null,
    key_pem: null,
    root_pem: null,
  });

  async function datasetAddresses(): Promise<string[]> {
    sim = await startTestSim({ zpools: POOLS });
    await sim.sim.registered;
    const addresses = sim.nexus.requests.filter(isDatasetPut).map((r) => r.body.address as string);
    expect(addresses).toHaveLength(2);
    return addresses;
  }

  it('creates, lists, gets, re-creates, replaces a region re-created with other parameters and deletes regions', async () => {
    for (const address of await datasetAddresses()) {
      const base = `http://${address}/crucible/0/regions`;
      const id = randomUUID();

      const empty = await http('GET', base);
      expect(empty.status).toBe(200);
      expect(empty.body).toEqual([]);

      const created = await http('POST', base, createBody(id));
      expect(created.status).toBe(200);
      expectSchema('crucible-agent.json', 'Region', created.body);
      expect(created.body).toMatchObject({
        id, state: 'created', block_size: 512, extent_size: 4096, extent_count: 16, port_number: 0, encrypted: false,
      });
      for (const pem of ['cert_pem', 'key_pem', 'root_pem']) expect(created.body[pem] ?? null).toBeNull();

      const list = await http('GET', base);
      expect(list.status).toBe(200);
      expect(list.body).toEqual([created.body]);
      for (const region of list.body) expectSchema('crucible-agent.json', 'Region', region);

      const got = await http('GET', `${base}/${id}`);
      expect(got.status).toBe(200);
      expectSchema('crucible-agent.json', 'Region', got.body);
      expect(got.body).toEqual(created.body);

      const again = await http('POST', base, createBody(id));
      expect(again.status).toBe(200);
      expect(again.body).toEqual(created.body);
      expect((await http('GET', base)).body).toHaveLength(1);

      // omicron's sim inserts over the old region: other parameters are a 200 with the new region.
      const replaced = await http('POST', base, createBody(id, 32));
      expect(replaced.status).toBe(200);
      expectSchema('crucible-agent.json', 'Region', replaced.body);
      expect(replaced.body).toEqual({ ...created.body, extent_count: 32 });
      expect((await http('GET', `${base}/${id}`)).body).toEqual(replaced.body);
      expect((await http('GET', base)).body).toEqual([replaced.body]);

      const deleted = await http('DELETE', `${base}/${id}`);
      expect(deleted.status).toBe(204);
      expect(deleted.text).toBe('');

      const afterDelete = await http('GET', `${base}/${id}`);
      expect(afterDelete.status).toBe(200);
      expectSchema('crucible-agent.json', 'Region', afterDelete.body);
      expect(afterDelete.body).toEqual({ ...replaced.body, state: 'destroyed' });

      const listAfter = await http('GET', base);
      expect(listAfter.status).toBe(200);
      expect(listAfter.body).toEqual([{ ...replaced.body, state: 'destroyed' }]);

      // A destroyed region's id makes a new region, with whatever parameters it is given.
      const recreated = await http('POST', base, createBody(id, 8));
      expect(recreated.status).toBe(200);
      expectSchema('crucible-agent.json', 'Region', recreated.body);
      expect(recreated.body).toEqual({ ...created.body, extent_count: 8 });
      expect((await http('GET', base)).body).toEqual([recreated.body]);
    }
  });

  it('keeps each dataset\'s regions to itself', async () => {
    const [a, b] = await datasetAddresses();
    const id = randomUUID();
    expect((await http('POST', `http://${a}/crucible/0/regions`, createBody(id))).status).toBe(200);
    expect((await http('GET', `http://${a}/crucible/0/regions`)).body).toHaveLength(1);
    expect((await http('GET', `http://${b}/crucible/0/regions`)).body).toEqual([]);
    expect((await http('GET', `http://${b}/crucible/0/regions/${id}`)).status).toBe(404);
  });

  it('logs with one component key per line (pino writes a repeated binding twice)', async () => {
    const lines: string[] = [];
    sim = await startTestSim({ zpools: POOLS, log: pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } }) });
    await sim.sim.registered;
    const [address] = sim.nexus.requests.filter(isDatasetPut).map((r) => r.body.address as string);
    expect((await http('GET', `http://${address}/crucible/0/regions`)).status).toBe(200);

    const crucible = lines.filter((l) => l.includes('"crucible-agent"'));
    expect(crucible.some((l) => l.includes('request completed'))).toBe(true);
    for (const line of lines) expect(line.match(/"component":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
    for (const line of crucible) expect(JSON.parse(line).component, line).toBe('crucible-agent');
  });

  it('answers 404 "Region not found" to GET and DELETE of an unknown region', async () => {
    const [address] = await datasetAddresses();
    const base = `http://${address}/crucible/0/regions`;
    const unknown = randomUUID();

    const get = await http('GET', `${base}/${unknown}`);
    expectEnvelope(get.body, 404, get);
    expect(get.body.message).toBe('Region not found');

    const del = await http('DELETE', `${base}/${unknown}`);
    expectEnvelope(del.body, 404, del);
    expect(del.body.message).toBe('Region not found');

    // The failed delete created nothing.
    expect((await http('GET', base)).body).toEqual([]);
  });

  it('refuses a malformed create body with a 400 that names the field', async () => {
    const [address] = await datasetAddresses();
    const base = `http://${address}/crucible/0/regions`;
    const id = randomUUID();

    const { extent_count: _omitted, ...missing } = createBody(id);
    const noCount = await http('POST', base, missing);
    expectEnvelope(noCount.body, 400, noCount);
    expect(noCount.body.message).toContain('extent_count');

    const wrongType = await http('POST', base, { ...createBody(id), block_size: '512' });
    expectEnvelope(wrongType.body, 400, wrongType);
    expect(wrongType.body.message).toContain('block_size');

    const negative = await http('POST', base, { ...createBody(id), extent_size: -1 });
    expectEnvelope(negative.body, 400, negative);
    expect(negative.body.message).toContain('extent_size');

    const notJson = await http('POST', base, '{"id": ');
    expectEnvelope(notJson.body, 400, notJson);

    // No URL can name such a region afterwards (GET and DELETE take the id in the path).
    const lone = await http('POST', base, createBody('region-\ud800'));
    expectEnvelope(lone.body, 400, lone);
    expect(lone.body.message).toContain('surrogate U+D800');

    // None of them created a region.
    expect((await http('GET', base)).body).toEqual([]);
  });
});
