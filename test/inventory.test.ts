// GET /inventory, /instances and /instances/{id} on both agents over real HTTP: what the sled has
// and runs as the agent knows it beside what the host says now, the host backend and why, the
// last start-up, and the OpenAPI documents publishing these paths as outside the 2022 contract.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkAgentConfig } from '../src/config.js';
import { openHost } from '../src/host/open.js';
import { openApiDocument } from '../src/openapi.js';
import { CONTRACT_FORMATS } from '../src/server.js';
import { agentApp, startAgent } from '../src/sled-agent.js';
import { buildSim } from '../src/sim/server.js';
import { defaultSimConfig } from '../src/sim/config.js';
import { combinedSledAgentContract, expectSchema } from './support/contract.js';
import { FakeNexus } from './support/fake-nexus.js';
import { POOL, ensureBody, nexusSees, realRuntime, runInstance, startTestAgent, testConfig, zoneOf, type TestAgent } from './support/agent.js';
import { instanceEnsure, startTestSim, type TestSim } from './support/sim.js';

const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;
const POOL_ID = POOL.slice('oxp_'.length);
const log = pino({ level: 'silent' });
const OPERATOR_OPS: Array<[string, string]> = [
  ['/instances', 'get'], ['/instances/{instance_id}', 'get'], ['/inventory', 'get'], ['/health', 'get'], ['/metrics', 'get'],
];

const docs: Record<'sled' | 'sim', any> = { sled: null, sim: null };
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv) => void;
const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false, formats: CONTRACT_FORMATS });
addFormats(ajv);

beforeAll(async () => {
  docs.sled = await openApiDocument(await agentApp(null, log));
  const sim = await buildSim(defaultSimConfig(), log);
  docs.sim = await openApiDocument(sim.app);
  await sim.app.close();
});

/** Throws unless `body` is what the document says `GET path` answers with 200. */
function expectDocumented(api: 'sled' | 'sim', path: string, body: unknown): void {
  const validate = ajv.compile(docs[api].paths[path].get.responses['200'].content['application/json'].schema);
  if (!validate(body)) throw new Error(`GET ${path} on ${api}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`);
}

describe.each(['sled', 'sim'] as const)('%s OpenAPI document', (api) => {
  it.each(OPERATOR_OPS)('publishes %s %s as not in the 2022 contract', (path, method) => {
    const op = docs[api].paths[path]?.[method];
    expect(op, `${method} ${path}`).toBeDefined();
    expect(op.description).toMatch(/^Not in omicron's 2022 contract/);
    expect(op.responses['4XX'] ?? op.responses['4xx']).toBeDefined();
    // The contract has none of these, so the contract test (which compares only its paths) allows them.
    expect((combinedSledAgentContract.paths as any)[path]?.[method]).toBeUndefined();
  });

  it('keeps the contract\'s PUT /instances/{instance_id} beside the new GET', () => {
    expect(docs[api].paths['/instances/{instance_id}'].put.operationId).toBe('instance_put');
  });
});

describe('sled agent', () => {
  let t: TestAgent | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('GET /inventory: the sled, its host and why, pools, zones with what they serve, instances, services, ports and the start-up', async () => {
    t = await startTestAgent();
    await t.running.registered;
    const nic = { name: 'net0', ip: '172.16.0.5', mac: 'a8:40:25:f0:00:01', subnet: '172.16.0.0/22', vni: 10, slot: 0 };
    const { id, runtime } = await runInstance(t, [nic]);
    const services = [{ name: 'internal-dns', addresses: ['fd00:1122:3344:1::1'], gz_addresses: [] }];
    expect((await t.request('PUT', '/services', { services })).status).toBe(204);
    expect((await t.request('PUT', '/filesystem', {
      zpool_id: POOL_ID, dataset_kind: { type: 'crucible' }, address: '[fd00:1122:3344:101::20]:32345',
    })).status).toBe(204);
    // An oxz_ zone no ledger claims, made behind the agent's back.
    await t.host.zones.configure({ name: 'oxz_stray', brand: 'omicron1', zonepath: '/zone/oxz_stray', nets: [], devices: [], datasets: [] });

    const res = await t.request('GET', '/inventory');
    expect(res.status).toBe(200);
    expectDocumented('sled', '/inventory', res.body);
    const inv = res.body;
    expect(inv).toMatchObject({
      sled_id: t.config.id,
      agent: 'sled-agent',
      version: VERSION,
      addresses: { api: t.running.address, underlay: 'fd00:1122:3344:101::1', nexus: t.nexus.address },
      host: { backend: 'sim', addon: null, opte: { available: true, reason: null } },
    });
    // The test opened its simulated host itself; the agent says so rather than invent a reason.
    expect(inv.host.reason).toContain('given to the agent directly');
    expect(inv.zpools).toEqual([expect.objectContaining({ id: POOL_ID, name: POOL, found: true, health: 'ONLINE' })]);
    expect(inv.zpools[0].size).toBeGreaterThan(0);
    const datasetId = inv.datasets[0]?.id;
    expect(inv.datasets).toEqual([{
      id: datasetId, zpool_id: POOL_ID, kind: 'crucible', address: '[fd00:1122:3344:101::20]:32345',
      name: `${POOL}/crucible`, zone: `oxz_crucible_${POOL}`,
    }]);

    const zone = zoneOf(t, id);
    const zones = new Map(inv.zones.map((z: any) => [z.name, z]));
    expect(zones.get(zone)).toEqual({ name: zone, state: 'running', serves: { kind: 'instance', id } });
    expect(zones.get('oxz_internal-dns')).toEqual({ name: 'oxz_internal-dns', state: 'running', serves: { kind: 'service', id: 'internal-dns' } });
    expect(zones.get(`oxz_crucible_${POOL}`)).toMatchObject({ state: 'running', serves: { kind: 'dataset', id: datasetId } });
    expect(zones.get('oxz_stray')).toEqual({ name: 'oxz_stray', state: 'configured', serves: null });

    expect(inv.instances).toHaveLength(1);
    const [instance] = inv.instances;
    expect(instance).toMatchObject({ id, zone, desired: null, runtime: { run_state: 'running', propolis_id: runtime.propolis_id } });
    expect(instance.runtime.gen).toBeGreaterThan(2);
    expect(instance.guest_vnics).toEqual([expect.stringMatching(/^vopte\d+$/)]);
    expect(instance.control_vnic).toMatch(/^oxControlInstance\d+$/);
    expect(instance.opte_ports).toEqual([instance.guest_vnics[0].slice(1)]);
    expect(inv.opte_ports).toEqual([expect.objectContaining({ name: instance.opte_ports[0], mac: nic.mac, ip4: nic.ip, instance: id })]);
    expect(inv.services).toEqual([expect.objectContaining({ name: 'internal-dns', addresses: services[0]!.addresses, zone: 'oxz_internal-dns' })]);
    expect(inv.startup).toMatchObject({ adopted_zones: [], removed_zones: [], zones_to_recreate: [] });
    expect(Date.parse(inv.startup.at)).not.toBeNaN();
  });

  it('GET /inventory after a restart shows the last start-up: the instance\'s zone adopted, the stray removed', async () => {
    t = await startTestAgent();
    const { id, zone } = await runInstance(t);
    await t.host.zones.configure({ name: 'oxz_stray', brand: 'omicron1', zonepath: '/zone/oxz_stray', nets: [], devices: [], datasets: [] });
    t = await t.restart();
    const inv = (await t.request('GET', '/inventory')).body;
    expect(inv.startup).toMatchObject({ adopted_zones: [zone], removed_zones: ['oxz_stray'] });
    expect(inv.zones.map((z: any) => z.name)).not.toContain('oxz_stray');
  });

  it('GET /instances and /instances/{id}: the agent\'s own view; an unknown id is a 404', async () => {
    t = await startTestAgent();
    expect((await t.request('GET', '/instances')).body).toEqual([]);
    const id = randomUUID();
    const runtime = realRuntime();
    const put = await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    const list = await t.request('GET', '/instances');
    expect(list.status).toBe(200);
    expectDocumented('sled', '/instances', list.body);
    expect(list.body).toHaveLength(1);
    expect(list.body[0].id).toBe(id);
    expect(list.body[0].runtime.gen).toBeGreaterThanOrEqual(put.body.gen);
    await nexusSees(t.nexus, id, 'running');
    const one = await t.request('GET', `/instances/${id}`);
    expect(one.status).toBe(200);
    expectDocumented('sled', '/instances/{instance_id}', one.body);
    expectSchema('sled-agent.json', 'InstanceRuntimeState', one.body.runtime);
    // The zone the agent chose: an id of its own, not the Propolis id.
    expect(one.body).toMatchObject({ id, zone: zoneOf(t, id), runtime: { run_state: 'running' } });
    expect(one.body.zone).toMatch(/^oxz_propolis-server_[0-9a-f-]{36}$/);
    expect((await t.host.zones.list()).find((z) => z.name === one.body.zone)?.state).toBe('running');

    const unknown = await t.request('GET', `/instances/${randomUUID()}`);
    expect(unknown.status).toBe(404);
    expectSchema('sled-agent.json', 'Error', unknown.body);
    expect(unknown.body.error_code).toBe('ObjectNotFound');
    expect((await t.request('GET', '/instances/not-a-uuid')).status).toBe(400);
  });

  it('says why the host backend was chosen, as start-up logged it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sled-agent-inventory-'));
    const nexus = await FakeNexus.start();
    try {
      // `auto` on a machine without the illumos libraries (an empty lib_dir): the simulated host.
      const config = checkAgentConfig(testConfig(dir, nexus.address, {
        host: { backend: 'auto', lib_dir: join(dir, 'no-libs'), state_dir: join(dir, 'sim-host'), latency: 'zero' },
      }), 'test');
      const lines: any[] = [];
      const agentLog = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
      const host = await openHost(config, agentLog);
      const running = await startAgent(config, host, agentLog);
      try {
        const inv = await (await fetch(`http://${running.address}/inventory`)).json();
        const logged = lines.find((l) => l.backend === 'sim' && typeof l.reason === 'string');
        expect(inv.host.backend).toBe('sim');
        expect(inv.host.reason).toBe(logged.reason);
      } finally {
        await running.close();
      }
    } finally {
      await nexus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('simulated sled agent', () => {
  let t: TestSim | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('GET /inventory: the sled, its simulated pools and datasets, instances and services', async () => {
    const zpool = randomUUID();
    t = await startTestSim({ mode: 'explicit', zpools: [{ id: zpool, size: 1 << 30 }] });
    const id = randomUUID();
    await t.request('PUT', `/instances/${id}`, instanceEnsure(t.config.id, 'running'));
    const services = [{ name: 'nexus', addresses: ['fd00:1122:3344:1::3'], gz_addresses: [] }];
    expect((await t.request('PUT', '/services', { services })).status).toBe(204);
    const res = await t.request('GET', '/inventory');
    expect(res.status).toBe(200);
    expectDocumented('sim', '/inventory', res.body);
    expect(res.body).toMatchObject({
      sled_id: t.config.id,
      agent: 'simulated',
      version: VERSION,
      sim_mode: 'explicit',
      addresses: { api: t.sim.address, underlay: null, nexus: t.nexus.address },
      zpools: [{ id: zpool, name: `oxp_${zpool}`, found: true, size: 1 << 30 }],
      datasets: [{ zpool_id: zpool, kind: 'crucible', address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }],
      instances: [{ id, runtime: { run_state: 'starting' }, desired: { run_state: 'running' } }],
      services: [{ name: 'nexus', addresses: services[0]!.addresses, gz_addresses: [] }],
    });
    // No host: nothing the real agent reads from one.
    for (const key of ['host', 'zones', 'opte_ports', 'startup']) expect(res.body).not.toHaveProperty(key);
  });

  it('GET /instances and /instances/{id} follow the simulated state; an unknown id is a 404', async () => {
    t = await startTestSim({ mode: 'explicit' });
    const id = randomUUID();
    await t.request('PUT', `/instances/${id}`, instanceEnsure(t.config.id, 'running'));
    await t.request('POST', `/instances/${id}/poke`);
    const list = await t.request('GET', '/instances');
    expectDocumented('sim', '/instances', list.body);
    expect(list.body).toEqual([expect.objectContaining({ id, desired: null, runtime: expect.objectContaining({ run_state: 'running', gen: 3 }) })]);
    const one = await t.request('GET', `/instances/${id}`);
    expect(one.status).toBe(200);
    expectSchema('sled-agent.json', 'InstanceRuntimeState', one.body.runtime);
    expect(one.body.runtime.run_state).toBe('running');
    const unknown = await t.request('GET', `/instances/${randomUUID()}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error_code).toBe('ObjectNotFound');
  });
});
