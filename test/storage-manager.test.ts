// StorageManager (src/storage-manager.ts, reference §11) against the simulated host and a fake
// Nexus: pools found and reported, PUT /filesystem making a dataset with its oxide:uuid, a zone
// serving it and a DatasetInfo record, dataset_put after zpool_put with Nexus's spelling of the
// kind, repeats that do nothing, a restart that adopts and reports again, and records that stay
// durable and single.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../src/common/errors.js';
import { NexusNotifier } from '../src/common/nexus-notifier.js';
import { NexusClient } from '../src/nexus-client.js';
import type { DatasetEnsureBody } from '../src/params.js';
import { SimHost } from '../src/sim/host.js';
import { StorageManager, type DatasetInfo } from '../src/storage-manager.js';
import { VnicNames } from '../src/zone.js';
import { countingHost, simZoneRecord, type CountingHost } from './support/counting-host.js';
import { spyOnDirSyncs } from './support/dir-syncs.js';
import { FakeNexus, type Recorded } from './support/fake-nexus.js';

const log = pino({ level: 'silent' });
const WAIT = { readiness: 'event' as const, timeoutMs: 10_000 };
const SLED_ID = 'b1a2c3d4-0000-4000-8000-000000000001';
const POOL_ID = '6b1a4c2e-3d5f-4a7b-9c8d-0e1f2a3b4c5d';
const POOL = `oxp_${POOL_ID}`;
const POOL_SIZE = 2 ** 40;
const UNDERLAY = 'fd00:1122:3344:101::1';
const CRDB_ADDR = '[fd00:1122:3344:101::10]:32221';
const CH_ADDR = '[fd00:1122:3344:101::11]:8123';
const CRUCIBLE_ADDR = '[fd00:1122:3344:101::12]:32345';

const ZPOOL_PUT_RE = /^\/sled_agents\/([^/]+)\/zpools\/([^/]+)$/;
const DATASET_PUT_RE = /^\/zpools\/([^/]+)\/dataset\/([^/]+)$/;
const isZpoolPut = (r: Recorded) => r.method === 'PUT' && ZPOOL_PUT_RE.test(r.url);
const isDatasetPut = (r: Recorded) => r.method === 'PUT' && DATASET_PUT_RE.test(r.url);

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Counts what reaches the notifier, to tell a no-op from a repeat without waiting for time. */
class CountingNotifier extends NexusNotifier {
  readonly keys: string[] = [];
  override push(key: string, what: string, send: () => Promise<void>) {
    this.keys.push(key);
    return super.push(key, what, send);
  }
}

interface Env {
  dir: string;
  sim: SimHost;
  ch: CountingHost;
  nexus: FakeNexus;
  notifier: CountingNotifier;
  manager: StorageManager;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'storage-test-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openEnv(options: { dir?: string; zpools?: string[]; hostPools?: string[] } = {}): Promise<Env> {
  const dir = options.dir ?? (await tempDir());
  const sim = await SimHost.open({
    stateDir: join(dir, 'host'),
    links: ['stub0'],
    pools: [{ name: 'rpool', size: 2 ** 36 }, ...(options.hostPools ?? [POOL]).map((name) => ({ name, size: POOL_SIZE }))],
  });
  cleanup.push(() => sim.close());
  const ch = countingHost(sim);
  const nexus = await FakeNexus.start();
  cleanup.push(() => nexus.close());
  const client = new NexusClient(nexus.address);
  cleanup.push(() => client.close());
  const notifier = new CountingNotifier(log, { initialMs: 5, maxMs: 20, factor: 2 });
  cleanup.push(() => notifier.drain(1_000));
  const manager = await StorageManager.open({
    host: ch.host, log, dataDir: join(dir, 'data'), sledId: SLED_ID, zpools: options.zpools ?? [POOL],
    nexus: client, notifier, vnics: new VnicNames(), zoneRoot: '/zone', controlLink: 'stub0', wait: WAIT,
    underlayAddress: UNDERLAY,
  });
  return { dir, sim, ch, nexus, notifier, manager };
}

const crdb = (zpool_id = POOL_ID, address = CRDB_ADDR): DatasetEnsureBody =>
  ({ zpool_id, dataset_kind: { type: 'cockroach_db', all_addresses: [address] }, address });
const clickhouse = (address = CH_ADDR): DatasetEnsureBody => ({ zpool_id: POOL_ID, dataset_kind: { type: 'clickhouse' }, address });

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

async function records(env: Env): Promise<DatasetInfo[]> {
  const dir = join(env.dir, 'data', POOL_ID);
  const files = await readdir(dir).catch(() => [] as string[]);
  return Promise.all(files.filter((f) => f.endsWith('.json')).map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8'))));
}

function instanceState(rec: any, service: string): string | null {
  return rec?.services?.[service]?.instances?.default?.state ?? null;
}

describe('StorageManager start and reporting', () => {
  it('reports each configured pool found on the host once reportTo() is called, and skips a missing one', async () => {
    const missingId = randomUUID();
    const env = await openEnv({ zpools: [POOL, `oxp_${missingId}`] });
    const summary = await env.manager.start();
    expect(summary).toEqual({ zpools: [POOL_ID], missingZpools: [missingId], adopted: [], recreated: [], failed: [] });
    expect(env.manager.zpoolIds()).toEqual([POOL_ID]);
    // Nothing reaches Nexus before the sled says it is registered.
    expect(env.notifier.keys).toEqual([]);

    await env.manager.reportTo();
    const puts = env.nexus.requests.filter(isZpoolPut);
    expect(puts.map((r) => r.url)).toEqual([`/sled_agents/${SLED_ID}/zpools/${POOL_ID}`]);
    expect(puts[0]!.body).toEqual({ size: POOL_SIZE });
  });

  it('answers 503 before start() and 404 for a pool it does not have, naming the ones it has', async () => {
    const env = await openEnv();
    const early = await rejection(env.manager.filesystemEnsure(crdb()));
    expect(early.statusCode).toBe(503);
    await env.manager.start();
    const other = randomUUID();
    const err = await rejection(env.manager.filesystemEnsure(crdb(other)));
    expect(err.statusCode).toBe(404);
    expect(err.message).toContain(other);
    expect(err.message).toContain(POOL_ID);
    expect(await env.sim.datasets.listChildren(POOL)).toEqual([]);
    expect(await env.sim.zones.list()).toEqual([]);
    expect(await records(env)).toEqual([]);
  });

  it('rejects a bad address with 400 before changing anything', async () => {
    const env = await openEnv();
    await env.manager.start();
    for (const address of ['fd00::1', '127.0.0.1:8080', '[nonsense]:1']) {
      const err = await rejection(env.manager.filesystemEnsure(crdb(POOL_ID, address)));
      expect(err.statusCode).toBe(400);
    }
    // CockroachDB's peers are socket addresses too, as the original's serde took them.
    for (const peer of ['nope', '', '10.0.0.1:32221']) {
      const err = await rejection(env.manager.filesystemEnsure({ ...crdb(), dataset_kind: { type: 'cockroach_db', all_addresses: [CRDB_ADDR, peer] } }));
      expect(err.statusCode).toBe(400);
      expect(err.message).toMatch(/^dataset_kind\.all_addresses/);
      expect(err.message).toContain(`"${peer}"`);
    }
    expect(await env.sim.datasets.listChildren(POOL)).toEqual([]);
  });
});

describe('StorageManager.filesystemEnsure', () => {
  it('makes a CockroachDB dataset with oxide:uuid, its zone online, a DatasetInfo record, then dataset_put after zpool_put', async () => {
    const env = await openEnv();
    await env.manager.start();
    await env.manager.filesystemEnsure(crdb());
    // RSS calls this before Nexus exists: nothing is sent before reportTo().
    expect(env.notifier.keys).toEqual([]);

    const name = `${POOL}/cockroachdb`;
    const props = await env.sim.datasets.get(name, ['zoned', 'mountpoint', 'oxide:uuid']);
    expect(props.zoned).toBe('on');
    expect(props.mountpoint).toBe('/data');
    const id = props['oxide:uuid']!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const zone = `oxz_cockroachdb_${POOL}`;
    expect(await env.sim.zones.list()).toContainEqual({ name: zone, state: 'running' });
    const config = await env.sim.zones.config(zone);
    expect(config.datasets).toEqual([{ name }]);
    const [record, ...more] = await records(env);
    expect(more).toEqual([]);
    expect(record).toEqual({
      address: CRDB_ADDR,
      kind: { type: 'cockroach_db', all_addresses: [CRDB_ADDR] },
      name: { pool_name: POOL, dataset_name: 'cockroachdb' },
      id,
      control_vnic: expect.stringMatching(/^oxControlStorage\d+$/),
    });
    expect(config.nets).toEqual([{ physical: record!.control_vnic }]);
    expect(env.manager.claimedZones()).toEqual(new Map([[zone, [record!.control_vnic]]]));

    const rec = await simZoneRecord(env.sim, zone);
    expect(rec.image).toBe('/opt/oxide/cockroachdb.tar.gz');
    expect(rec.addresses[`${record!.control_vnic}/omicron6`]).toEqual({ type: 'static', addr: 'fd00:1122:3344:101::10/64' });
    expect(rec.routes).toEqual([UNDERLAY]);
    const svc = rec.services['svc:/system/illumos/cockroachdb'].instances.default;
    expect(svc.state).toBe('online');
    expect(svc.pgs.config.props).toEqual({ listen_addr: CRDB_ADDR, store: '/data', join_addrs: 'unknown' });

    await env.manager.reportTo();
    const zpoolPut = await env.nexus.waitFor(isZpoolPut);
    const datasetPut = await env.nexus.waitFor(isDatasetPut);
    expect(datasetPut.url).toBe(`/zpools/${POOL_ID}/dataset/${id}`);
    expect(datasetPut.body).toEqual({ address: CRDB_ADDR, kind: 'cockroach' });
    expect(env.nexus.requests.indexOf(datasetPut)).toBeGreaterThan(env.nexus.requests.indexOf(zpoolPut));
  });

  it('once reporting, holds a new dataset_put until Nexus has accepted the pool\'s zpool_put', async () => {
    const env = await openEnv();
    let zpoolDown = true;
    env.nexus.respond = (r) => (isZpoolPut(r) && zpoolDown ? { status: 500 } : { status: 204 });
    await env.manager.start();
    const reported = env.manager.reportTo();
    await env.nexus.waitFor(isZpoolPut);
    await env.manager.filesystemEnsure(clickhouse());
    await new Promise((resolve) => setImmediate(resolve));
    // The pool is not accepted yet (Nexus answers 500, the notifier retries): no dataset_put.
    expect(env.notifier.keys.filter((k) => k.startsWith('dataset:'))).toEqual([]);
    expect(env.nexus.requests.filter(isDatasetPut)).toEqual([]);

    zpoolDown = false;
    await reported;
    const datasetPut = await env.nexus.waitFor(isDatasetPut);
    expect(datasetPut.body).toEqual({ address: CH_ADDR, kind: 'clickhouse' });
    const zpoolPuts = env.nexus.requests.filter(isZpoolPut);
    expect(zpoolPuts.length).toBeGreaterThanOrEqual(2);
    expect(env.nexus.requests.indexOf(datasetPut)).toBeGreaterThan(env.nexus.requests.indexOf(zpoolPuts.at(-1)!));

    const rec = await simZoneRecord(env.sim, `oxz_clickhouse_${POOL}`);
    expect(instanceState(rec, 'svc:/system/illumos/clickhouse')).toBe('online');
    expect(rec.services['svc:/system/illumos/clickhouse'].instances.default.pgs.config.props)
      .toEqual({ listen_host: 'fd00:1122:3344:101::11', store: '/data' });
  });

  it('does nothing for a repeated request, and refuses (409) the same dataset at another address', async () => {
    const env = await openEnv();
    await env.manager.start();
    await env.manager.reportTo();
    await env.manager.filesystemEnsure(crdb());
    await env.nexus.waitFor(isDatasetPut);
    const pushes = env.notifier.keys.length;
    env.ch.reset();

    await env.manager.filesystemEnsure(crdb());
    await env.manager.reportTo(); // a second call re-sends nothing either
    await new Promise((resolve) => setImmediate(resolve));
    expect(env.ch.calls).toEqual({ createVnic: [], configure: [], install: [], exec: [] });
    expect(env.notifier.keys).toHaveLength(pushes);
    expect(await records(env)).toHaveLength(1);

    const err = await rejection(env.manager.filesystemEnsure(crdb(POOL_ID, '[fd00:1122:3344:101::99]:32221')));
    expect(err.statusCode).toBe(409);
    expect(err.message).toContain(`${POOL}/cockroachdb`);
    expect(env.ch.calls.exec).toEqual([]);
  });

  it('makes the directories its first record creates durable in their parents', async () => {
    const env = await openEnv();
    await env.manager.start();
    const syncs = await spyOnDirSyncs();
    await env.manager.filesystemEnsure(crdb());
    // <dataDir>/<pool>/ and <dataDir> itself are new: each an entry in a directory to sync.
    for (const dir of [env.dir, join(env.dir, 'data'), join(env.dir, 'data', POOL_ID)]) expect(await syncs.synced(dir)).toBe(true);
  });

  it('keeps the oxide:uuid of a dataset that already exists', async () => {
    const env = await openEnv();
    const id = randomUUID();
    await env.sim.datasets.create(`${POOL}/clickhouse`, { zoned: 'on', mountpoint: '/data', 'oxide:uuid': id });
    await env.manager.start();
    await env.manager.filesystemEnsure(clickhouse());
    expect((await records(env)).map((r) => r.id)).toEqual([id]);
  });

  it('sets up Crucible with its agent service, the dataset and the dataset id as its uuid', async () => {
    const env = await openEnv();
    const crucibleCmd = (argv: readonly string[]) =>
      argv.some((a) => a.startsWith('/var/svc/manifest/site/crucible/') || a.startsWith('svc:/oxide/crucible/'));
    await env.manager.start();
    await env.manager.reportTo();
    await env.manager.filesystemEnsure({ zpool_id: POOL_ID, dataset_kind: { type: 'crucible' }, address: CRUCIBLE_ADDR });

    const zone = `oxz_crucible_${POOL}`;
    const [record] = await records(env);
    const fmri = 'svc:/oxide/crucible/agent:default';
    expect(env.ch.calls.exec.filter((c) => c.zone === zone && crucibleCmd(c.argv)).map((c) => c.argv)).toEqual([
      ['svccfg', 'import', '/var/svc/manifest/site/crucible/agent.xml'],
      ['svccfg', 'import', '/var/svc/manifest/site/crucible/downstairs.xml'],
      ['svccfg', '-s', fmri, 'addpg', 'config', 'application'],
      ['svccfg', '-s', fmri, 'setprop', `config/listen=${CRUCIBLE_ADDR}`],
      ['svccfg', '-s', fmri, 'setprop', `config/dataset=${POOL}/crucible`],
      ['svccfg', '-s', fmri, 'setprop', `config/uuid=${record!.id}`],
      ['svccfg', '-s', fmri, 'refresh'],
      ['svcadm', 'enable', '-t', fmri],
    ]);
    expect(await env.sim.zones.list()).toContainEqual({ name: zone, state: 'running' });
    expect((await simZoneRecord(env.sim, zone)).image).toBe('/opt/oxide/crucible.tar.gz');
    const put = await env.nexus.waitFor(isDatasetPut);
    expect(put.url).toBe(`/zpools/${POOL_ID}/dataset/${record!.id}`);
    expect(put.body).toEqual({ address: CRUCIBLE_ADDR, kind: 'crucible' });
  });
});

describe('StorageManager after a restart', () => {
  it('reloads its datasets, adopts their zones without re-making them and reports them again', async () => {
    const first = await openEnv();
    await first.manager.start();
    await first.manager.filesystemEnsure(crdb());
    await first.manager.filesystemEnsure(clickhouse());
    const before = (await records(first)).sort((a, b) => a.id.localeCompare(b.id));
    await first.sim.close();

    const second = await openEnv({ dir: first.dir });
    // Claimed before start(): the agent decides orphans from this.
    expect(second.manager.claimedZones()).toEqual(new Map(before.map((r) => [`oxz_${r.name.dataset_name}_${POOL}`, [r.control_vnic]])));
    const summary = await second.manager.start();
    expect(summary).toEqual({
      zpools: [POOL_ID], missingZpools: [],
      adopted: [`${POOL}/clickhouse`, `${POOL}/cockroachdb`], recreated: [], failed: [],
    });
    expect(second.ch.calls.createVnic).toEqual([]);
    expect(second.ch.calls.configure).toEqual([]);
    expect(second.ch.calls.install).toEqual([]);

    await second.manager.reportTo();
    const puts = await second.nexus.waitForCount(isDatasetPut, 2);
    expect(puts.map((p) => ({ url: p.url, body: p.body })).sort((a, b) => a.url.localeCompare(b.url))).toEqual(
      before.map((r) => ({ url: `/zpools/${POOL_ID}/dataset/${r.id}`, body: { address: r.address, kind: r.kind.type === 'cockroach_db' ? 'cockroach' : r.kind.type } })),
    );
    const zpoolIndex = second.nexus.requests.findIndex(isZpoolPut);
    expect(zpoolIndex).toBeGreaterThanOrEqual(0);
    for (const p of puts) expect(second.nexus.requests.indexOf(p)).toBeGreaterThan(zpoolIndex);

    // And a repeat of the original request is a no-op now too.
    second.ch.reset();
    await second.manager.filesystemEnsure(crdb());
    expect(second.ch.calls.exec).toEqual([]);
  });

  it('loads only the new record of a dataset that ZFS came to name with another id', async () => {
    const first = await openEnv();
    await first.manager.start();
    await first.manager.filesystemEnsure(crdb());
    const [old] = await records(first);
    const id = randomUUID();
    await first.sim.datasets.set(`${POOL}/cockroachdb`, { 'oxide:uuid': id });
    await first.manager.filesystemEnsure(crdb());
    const [current, ...more] = await records(first);
    expect(more).toEqual([]);
    expect(current!.id).toBe(id);
    expect(current!.id).not.toBe(old!.id);
    // Its zone, still running, was made on the old record's VNIC.
    expect(current!.control_vnic).toBe(old!.control_vnic);
    await first.sim.close();

    const second = await openEnv({ dir: first.dir });
    expect(second.manager.datasets()).toEqual([current]);
    expect(second.manager.claimedZones()).toEqual(new Map([[`oxz_cockroachdb_${POOL}`, [current!.control_vnic]]]));
    expect((await second.manager.start()).adopted).toEqual([`${POOL}/cockroachdb`]);
  });

  it('re-makes the zone of a dataset whose zone was deleted meanwhile, with the same VNIC, id and address', async () => {
    const first = await openEnv();
    await first.manager.start();
    await first.manager.filesystemEnsure(crdb());
    const [before] = await records(first);
    await first.sim.close();

    const second = await openEnv({ dir: first.dir });
    const zone = `oxz_cockroachdb_${POOL}`;
    await second.sim.simulateZoneFailure(zone);
    const summary = await second.manager.start();
    expect(summary.recreated).toEqual([`${POOL}/cockroachdb`]);
    expect(summary.adopted).toEqual([]);
    expect(second.ch.calls.configure).toEqual([zone]);
    expect(second.ch.calls.createVnic).toEqual([]);
    const rec = await simZoneRecord(second.sim, zone);
    expect(rec.spec.nets).toEqual([{ physical: before!.control_vnic }]);
    expect(rec.addresses[`${before!.control_vnic}/omicron6`].addr).toBe('fd00:1122:3344:101::10/64');
    expect(instanceState(rec, 'svc:/system/illumos/cockroachdb')).toBe('online');
    expect((await second.sim.datasets.get(`${POOL}/cockroachdb`, ['oxide:uuid']))['oxide:uuid']).toBe(before!.id);
  });

  it('leaves alone a dataset record whose pool is not on the host, and one failure does not stop the others', async () => {
    const first = await openEnv();
    await first.manager.start();
    await first.manager.filesystemEnsure(crdb());
    await first.manager.filesystemEnsure(clickhouse());
    await first.sim.close();

    const second = await openEnv({ dir: first.dir });
    await second.sim.simulateZoneFailure(`oxz_clickhouse_${POOL}`);
    second.ch.failInstall.add(`oxz_clickhouse_${POOL}`);
    const summary = await second.manager.start();
    expect(summary.adopted).toEqual([`${POOL}/cockroachdb`]);
    expect(summary.failed.map((f) => f.dataset)).toEqual([`${POOL}/clickhouse`]);
    expect(summary.failed[0]!.error).toContain('injected failure');

    // Only the dataset whose zone is up is reported.
    await second.manager.reportTo();
    const puts = await second.nexus.waitForCount(isDatasetPut, 1);
    expect(puts.map((p) => p.body.kind)).toEqual(['cockroach']);
    expect(second.notifier.keys.filter((k) => k.startsWith('dataset:'))).toHaveLength(1);

    await second.sim.close();
    const third = await openEnv({ dir: first.dir, hostPools: [] });
    const none = await third.manager.start();
    expect(none).toEqual({ zpools: [], missingZpools: [POOL_ID], adopted: [], recreated: [], failed: [] });
    expect(third.manager.claimedZones().size).toBe(2);
  });
});
