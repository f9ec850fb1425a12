// Zone bundles (src/zone-bundle.ts): a zone torn down after a failure leaves a tar.gz of its SMF
// state and logs, the agent's log lines and ledger record, and the host's view of its links and
// datasets, listed and downloaded over HTTP. On the sim host over real HTTP (a Propolis crash, a
// lost zone, failing steps, a store that cannot be written, the size bound, a failed service)
// and on the fake illumos; and first, the in-zone commands a bundle runs, which both backends
// must answer alike.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import pino, { type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { tarArchive } from '../src/common/tar.js';
import { checkAgentConfig } from '../src/config.js';
import {
  NETWORK_MILESTONE, PROPOLIS_SERVICE, svcadmEnable, svcadmMarkMaintenance, svccfgAddInstance, svccfgAddPg, svccfgSetProp,
  svcLogFile, svcsExplain, svcsStates, tailLines, zoneImage,
} from '../src/host/commands.js';
import type { Host } from '../src/host/index.js';
import { openApiDocument } from '../src/openapi.js';
import { RecentLogs, recentLogs } from '../src/recent-logs.js';
import { openSimHost } from '../src/host/open.js';
import { SimHost } from '../src/sim/host.js';
import { agentApp, startAgent } from '../src/sled-agent.js';
import { bundleDir, ZoneBundles } from '../src/zone-bundle.js';
import { ensureBody, nexusSees, realRuntime, runInstance, startTestAgent, testConfig, zoneOf, type TestAgent } from './support/agent.js';
import { fakeIllumosFiles, freshFakeHost, openFakeIllumosHost, startFakeIllumosAgent } from './support/fake-illumos.js';
import { FakeNexus } from './support/fake-nexus.js';

const DEADLINE_MS = 20_000;
/** A Propolis zone's own id: what its name and its propolis-server SMF instance (vm-<id>) end with. */
const zoneIdOf = (zone: string) => zone.replace(/^oxz_propolis-server_/, '');
const propolisFmri = (zoneId: string) => `${PROPOLIS_SERVICE}:vm-${zoneId}`;

/** A logger that feeds the process's recent-log record, as createLogger's do, and writes nowhere. */
function bundleLogger(): Logger {
  return pino({ level: 'info', hooks: { streamWrite: recentLogs.streamWrite } }, { write: () => {} });
}

/** The files of a ustar archive, read as a person's tar would (prefix + name, size, 512-byte blocks). */
function untar(archive: Buffer): Map<string, string> {
  const files = new Map<string, string>();
  for (let at = 0; at + 512 <= archive.length;) {
    const h = archive.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const field = (from: number, len: number) => h.subarray(from, from + len).toString('ascii').replace(/\0.*$/s, '');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    expect(Number.parseInt(field(148, 8).trim(), 8), 'header checksum').toBe(sum);
    expect(field(257, 6)).toBe('ustar');
    const prefix = field(345, 155);
    const name = prefix === '' ? field(0, 100) : `${prefix}/${field(0, 100)}`;
    const size = Number.parseInt(field(124, 12), 8);
    files.set(name, archive.subarray(at + 512, at + 512 + size).toString('utf8'));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

async function download(t: Agent, zone: string, id: string): Promise<{ res: Response; files: Map<string, string>; gz: Buffer }> {
  const res = await fetch(`http://${t.running.address}/zones/bundles/${zone}/${id}`);
  const gz = Buffer.from(await res.arrayBuffer());
  return { res, gz, files: res.status === 200 ? untar(gunzipSync(gz)) : new Map() };
}

async function bundles(address: string): Promise<Array<{ zone: string; id: string; time: string; size: number; cause: string }>> {
  const res = await fetch(`http://${address}/zones/bundles`);
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}

/** A running instance on the agent; its id, runtime, zone (the agent's choice) and that zone's own id. */
async function runningInstance(t: Agent) {
  const { id, runtime, zone } = await runInstance(t);
  return { id, runtime, propolisId: runtime.propolis_id as string, zone, zoneId: zoneIdOf(zone) };
}

/** Nexus told failed, the failure's work (bundle, teardown) done, the zone and its VNIC gone. */
async function failedAndTornDown(t: Agent, id: string, zone: string): Promise<void> {
  await nexusSees(t.nexus, id, 'failed');
  await t.running.agent.instances.idle();
  expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
  expect((await t.host.links.listVnics()).map((v) => v.name).filter((n) => n.startsWith('oxControlInstance'))).toEqual([]);
}

const stepsOf = (files: Map<string, string>) =>
  (JSON.parse(files.get('bundle.json')!) as { steps: Array<{ step: string; file: string | null; ok: boolean; error?: string }> }).steps;
/** The restarter log's texts, without the time stamps. */
const logTexts = (log: string) => log.trim().split('\n').filter(Boolean).map((l) => /^\[ \w{3} [ \d]\d \d\d:\d\d:\d\d (.*) \]$/.exec(l)?.[1] ?? `unparsed: ${l}`);

/** What an agent test here uses of a TestAgent. */
type Agent = Pick<TestAgent, 'running' | 'host' | 'nexus' | 'config' | 'dir' | 'request' | 'close'>;

/** Host calls made to fail while `on`: a zone command, or any dataset lookup. */
interface Faults {
  on: boolean;
  exec?: (zone: string, argv: readonly string[]) => Error | null;
  datasets?: Error;
}

/**
 * The simulated host with faults injected under the agent: a wrapper made before the agent
 * starts, as the agent may keep what it first reads of the host.
 */
function withFaults(host: SimHost, faults: Faults): Host {
  const bound = <T extends object>(target: T, override: (prop: PropertyKey) => unknown) => new Proxy(target, {
    get(t, prop) {
      const replaced = override(prop);
      if (replaced !== undefined) return replaced;
      const value = Reflect.get(t, prop) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
  const zones = bound(host.zones, (prop) => (prop !== 'exec' ? undefined : async (zone: string, argv: readonly string[], options?: { timeoutMs?: number }) => {
    const err = faults.on ? faults.exec?.(zone, argv) : null;
    if (err) throw err;
    return host.zones.exec(zone, argv, options);
  }));
  const datasets = bound(host.datasets, (prop) => (prop !== 'exists' ? undefined : async (name: string) => {
    if (faults.on && faults.datasets) throw faults.datasets;
    return host.datasets.exists(name);
  }));
  return bound(host, (prop) => (prop === 'zones' ? zones : prop === 'datasets' ? datasets : undefined));
}

/** Like startTestAgent, with faults the test switches on. */
async function startFaultyAgent(faults: Faults): Promise<Agent> {
  const dir = mkdtempSync(join(tmpdir(), 'zone-bundle-agent-'));
  const nexus = await FakeNexus.start();
  const config = checkAgentConfig(testConfig(dir, nexus.address), 'test');
  const log = bundleLogger();
  const host = await openSimHost(config, log) as SimHost;
  const running = await startAgent(config, withFaults(host, faults), log);
  return {
    running, host, nexus, config, dir,
    async request(method, path, body) {
      const res = await fetch(`http://${running.address}${path}`, {
        method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async close() {
      await running.close();
      await nexus.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const files = fakeIllumosFiles('zone-bundle-images-');

describe('the in-zone commands a bundle runs', () => {
  /** The same argv on a host: a propolis zone running one VM's service, then that service marked maintenance. */
  async function transcript(host: Host): Promise<Record<string, unknown>> {
    const zone = 'oxz_propolis-server_bundle';
    const fmri = propolisFmri('bundle');
    await host.zones.configure({ name: zone, brand: 'omicron1', zonepath: `/zone/${zone}`, autoboot: false, nets: [], devices: [], datasets: [] });
    await host.zones.install(zone, zoneImage('propolis-server'));
    await host.zones.boot(zone);
    const wait = { timeoutMs: DEADLINE_MS };
    await host.events.waitForZoneRunning(zone, wait);
    await host.events.waitForService(zone, NETWORK_MILESTONE, ['online'], wait);
    await host.zones.exec(zone, svccfgAddInstance(PROPOLIS_SERVICE, 'vm-bundle'));
    await host.zones.exec(zone, svccfgAddPg(fmri, 'config', 'application'));
    await host.zones.exec(zone, svccfgSetProp(fmri, 'config/server_addr', '[fd00:1122:3344:101::10]:12400'));
    await host.zones.exec(zone, svcadmEnable(fmri));
    await host.events.waitForService(zone, fmri, ['online'], wait);
    const run = async (argv: string[]) => (await host.zones.exec(zone, argv)).stdout;
    const before = { states: await run(svcsStates()), explain: await run(svcsExplain()) };
    await host.zones.exec(zone, svcadmMarkMaintenance(fmri));
    await host.events.waitForService(zone, fmri, ['maintenance'], wait);
    const missing = await host.zones.exec(zone, tailLines(5, '/var/svc/log/no-such-service:default.log')).then(() => 'no error', (err: Error) => err.message);
    return {
      before,
      states: await run(svcsStates()),
      explain: await run(svcsExplain()),
      propolisLog: logTexts(await run(tailLines(10, svcLogFile(fmri)))),
      lastLine: logTexts(await run(tailLines(1, svcLogFile(fmri)))),
      milestoneLog: logTexts(await run(tailLines(10, svcLogFile(NETWORK_MILESTONE)))),
      missing: /cannot open input/.test(missing),
    };
  }

  it('answer alike on the simulated host and the fake illumos', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'zone-bundle-sim-'));
    const sim = await SimHost.open({ stateDir, links: ['stub0'] });
    let simTranscript: Record<string, unknown>;
    try {
      simTranscript = await transcript(sim);
    } finally {
      await sim.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
    const fake = freshFakeHost();
    const illumos = await openFakeIllumosHost(files.addon, files.images);
    let illumosTranscript: Record<string, unknown>;
    try {
      illumosTranscript = await transcript(illumos);
    } finally {
      for (const z of await illumos.zones.list()) if (z.state === 'running') await illumos.zones.halt(z.name);
      await illumos.close();
      fake.remove();
    }
    const fmri = propolisFmri('bundle');
    expect(simTranscript).toEqual({
      before: { states: `online ${NETWORK_MILESTONE}\nonline ${fmri}\n`, explain: '' },
      states: `online ${NETWORK_MILESTONE}\nmaintenance ${fmri}\n`,
      explain: `${fmri}\n State: maintenance\n   See: /var/svc/log/system-illumos-propolis-server:vm-bundle.log\n`
        + 'Impact: This service is not running.\n\n',
      propolisLog: ['Executing start method.', 'Method "start" exited with status 0.', 'Service failed: now in maintenance.'],
      lastLine: ['Service failed: now in maintenance.'],
      milestoneLog: ['Executing start method.', 'Method "start" exited with status 0.'],
      missing: true,
    });
    expect(illumosTranscript).toEqual(simTranscript);
  }, 60_000);
});

describe('zone bundles on the simulated host, over HTTP', () => {
  let t: Agent | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('a Propolis crash leaves a bundle to list, download and untar: SMF state and logs, agent log, ledger, links, datasets', async () => {
    t = await startTestAgent({ log: bundleLogger() });
    const { id, propolisId, zone, zoneId } = await runningInstance(t);
    const control = t.running.agent.instances.get(id)!.record.control_vnic;
    await t.host.crashPropolis(zone);
    await failedAndTornDown(t, id, zone);

    const list = await bundles(t.running.address);
    expect(list).toHaveLength(1);
    const [b] = list;
    expect(b).toMatchObject({ zone, cause: expect.stringMatching(/^propolis lost failed: Propolis \(.*\) went maintenance$/) });
    expect(b!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number.isNaN(Date.parse(b!.time))).toBe(false);

    const { res, files, gz } = await download(t, zone, b!.id);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(gz.length).toBe(b!.size);
    const logFile = `smf/logs/system-illumos-propolis-server:vm-${zoneId}.log`;
    expect([...files.keys()].sort()).toEqual([
      'agent.log', 'bundle.json', 'host/datasets.json', 'host/links.json', 'host/zone.json', 'ledger.json',
      'smf/logs/milestone-network:default.log', logFile, 'smf/svcs-xv.txt', 'smf/svcs.txt',
    ].sort());
    expect(stepsOf(files).filter((s) => !s.ok)).toEqual([]);
    const meta = JSON.parse(files.get('bundle.json')!);
    expect(meta).toMatchObject({ zone, id: b!.id, time: b!.time, cause: b!.cause, host: 'sim', instance: id });

    expect(files.get('smf/svcs.txt')).toContain(`maintenance ${propolisFmri(zoneId)}`);
    expect(files.get('smf/svcs-xv.txt')).toContain(`${propolisFmri(zoneId)}\n State: maintenance\n`);
    expect(logTexts(files.get(logFile)!)).toEqual(['Executing start method.', 'Method "start" exited with status 0.', 'Service failed: now in maintenance.']);

    const ledger = JSON.parse(files.get('ledger.json')!);
    expect(ledger.file).toBe('instances.json');
    expect(ledger.record).toMatchObject({ id, zone, control_vnic: control, runtime: { run_state: 'failed', propolis_id: propolisId } });

    const agentLog = files.get('agent.log')!.trim().split('\n').map((l) => JSON.parse(l));
    expect(agentLog.every((l) => l.instance === id || l.zone === zone)).toBe(true);
    expect(agentLog.map((l) => l.msg)).toEqual(expect.arrayContaining(['Propolis service is no longer running', 'instance failed']));

    const zoneInfo = JSON.parse(files.get('host/zone.json')!);
    expect(zoneInfo).toMatchObject({ name: zone, state: 'running', configuration: { brand: 'omicron1', nets: [{ physical: control }] } });
    const links = JSON.parse(files.get('host/links.json')!);
    expect(links.vnics.map((v: { name: string }) => v.name)).toEqual([control]);
    expect(links.missing).toEqual([]);
    const datasets = JSON.parse(files.get('host/datasets.json')!);
    expect(datasets[0]).toMatchObject({ name: 'rpool/zone', exists: true, properties: { mountpoint: '/zone' } });

    // A person's tar reads it as well.
    const archive = join(t.dir, 'bundle.tar.gz');
    writeFileSync(archive, gz);
    if (existsSync('/usr/bin/tar') || existsSync('/bin/tar')) {
      const { stdout } = await promisify(execFile)('tar', ['-tzf', archive]);
      expect(stdout.trim().split('\n').sort()).toEqual([...files.keys()].sort());
    }
  });

  it('a lost zone leaves a bundle; what needed the zone is recorded as failed, the rest is there', async () => {
    t = await startTestAgent({ log: bundleLogger() });
    const { id, zone } = await runningInstance(t);
    await t.host.simulateZoneFailure(zone);
    await failedAndTornDown(t, id, zone);

    const [b, ...more] = await bundles(t.running.address);
    expect(more).toEqual([]);
    expect(b).toMatchObject({ zone, cause: expect.stringMatching(/^zone went away: zone .* went (shutting_down|uninitialized)$/) });
    const { files } = await download(t, zone, b!.id);
    const failed = stepsOf(files).filter((s) => !s.ok);
    expect(failed.map((s) => s.step)).toEqual(expect.arrayContaining(['svcs', 'svcs -xv']));
    for (const s of failed) expect(s.error).toBeTruthy();
    expect(files.has('smf/svcs.txt')).toBe(false);
    // Caught on its way out: leaving the kernel, or gone already.
    expect(JSON.parse(files.get('host/zone.json')!).state).not.toBe('running');
    expect(JSON.parse(files.get('ledger.json')!).record).toMatchObject({ id, runtime: { run_state: 'failed' } });
    expect(files.get('agent.log')).toContain('instance zone went away');
  });

  it('a step that throws is recorded, and the instance still ends failed and torn down', async () => {
    const faults: Faults = {
      on: false,
      exec: (_zone, argv) => (argv[0] === 'svcs' && argv[1] === '-xv' ? new Error('injected: svcs -xv failed') : null),
      datasets: new Error('injected: libzfs is broken'),
    };
    t = await startFaultyAgent(faults);
    const { id, zone } = await runningInstance(t);
    faults.on = true;
    await t.host.crashPropolis(zone);
    await failedAndTornDown(t, id, zone);

    const [b] = await bundles(t.running.address);
    const { files } = await download(t, zone, b!.id);
    expect(stepsOf(files).filter((s) => !s.ok)).toEqual([
      { step: 'datasets', file: 'host/datasets.json', ok: false, error: 'injected: libzfs is broken' },
      { step: 'svcs -xv', file: 'smf/svcs-xv.txt', ok: false, error: 'injected: svcs -xv failed' },
    ]);
    expect(files.has('smf/svcs-xv.txt')).toBe(false);
    expect(files.has('smf/svcs.txt')).toBe(true);
  });

  it('a bundle that cannot be stored does not stop the teardown', async () => {
    t = await startTestAgent({ log: bundleLogger() });
    mkdirSync(t.config.data_dir, { recursive: true });
    writeFileSync(join(t.config.data_dir, 'bundles'), 'a file where the bundles directory should be');
    const { id, zone } = await runningInstance(t);
    await t.host.crashPropolis(zone);
    await failedAndTornDown(t, id, zone);
    expect(await bundles(t.running.address)).toEqual([]);
  });

  it('keeps the bundles within [bundles] max_bytes, removing the oldest first', async () => {
    const first = await startTestAgent({ log: bundleLogger() });
    t = first;
    const made: string[] = [];
    const failOne = async () => {
      const { id, zone } = await runningInstance(t!);
      await t!.host.crashPropolis(zone);
      await failedAndTornDown(t!, id, zone);
      made.push(zone);
    };
    for (let i = 0; i < 3; i++) await failOne();
    const three = await bundles(t.running.address);
    expect(three.map((b) => b.zone)).toEqual(made);
    // Room for about three: the next one must push out the oldest.
    const maxBytes = three.reduce((n, b) => n + b.size, 0) - 1;
    await first.stop();
    t = await startTestAgent({ dir: first.dir, nexus: first.nexus, log: bundleLogger(), config: { bundles: { max_bytes: maxBytes } } });
    await failOne();

    const after = await bundles(t.running.address);
    const total = after.reduce((n, b) => n + b.size, 0);
    expect(total).toBeLessThanOrEqual(maxBytes);
    // What is left is the newest ones, in order, the new one among them.
    expect(after.map((b) => b.zone)).toEqual(made.slice(made.length - after.length));
    expect(after.map((b) => b.zone)).not.toContain(made[0]);
    expect(after.at(-1)!.zone).toBe(made[3]);
    const gone = await download(t, made[0]!, three[0]!.id);
    expect(gone.res.status).toBe(404);
  });

  it('a service whose set-up fails leaves a bundle with its ledger record', async () => {
    t = await startFaultyAgent({
      on: true,
      exec: (zone, argv) => (zone === 'oxz_oximeter' && argv[0] === 'svcadm' && argv[1] === 'enable'
        ? Object.assign(new Error('injected: svcadm failed'), { code: 'ECOMMAND' }) : null),
    });
    const put = await t.request('PUT', '/services', { services: [{ name: 'oximeter', addresses: ['fd00:1122:3344:101::5'] }] });
    expect(put.status).toBe(500);
    const [b, ...more] = await bundles(t.running.address);
    expect(more).toEqual([]);
    expect(b).toMatchObject({ zone: 'oxz_oximeter', cause: 'service set-up failed: injected: svcadm failed' });
    const { files } = await download(t, 'oxz_oximeter', b!.id);
    expect(JSON.parse(files.get('ledger.json')!)).toMatchObject({ file: 'services.json', record: { name: 'oximeter', addresses: ['fd00:1122:3344:101::5'] } });
    expect(files.get('smf/svcs.txt')).toContain('disabled svc:/system/illumos/oximeter:default');
    expect(files.get('agent.log')).toContain('service set-up failed');
    expect(JSON.parse(files.get('host/links.json')!).vnics).toHaveLength(1);
  });

  it('answers 404 for a bundle it does not have and 400 for a malformed id', async () => {
    t = await startTestAgent();
    expect(await bundles(t.running.address)).toEqual([]);
    const missing = await t.request('GET', `/zones/bundles/oxz_nexus/${randomUUID()}`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error_code: 'ObjectNotFound' });
    expect((await t.request('GET', '/zones/bundles/oxz_nexus/..%2F..%2Finstances')).status).toBe(400);
    expect((await t.request('GET', `/zones/bundles/..%2F/${randomUUID()}`)).status).toBe(400);
  });
});

describe('a bundle whose listing entry cannot be read', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A bundle on disk as an agent left it: its archive, and its listing entry as `entry` says (none if null). */
  function plant(dir: string, zone: string, entry: string | null, bytes = 100, at = new Date('2026-01-01T00:00:00Z')): string {
    const id = randomUUID();
    mkdirSync(join(dir, zone), { recursive: true });
    writeFileSync(join(dir, zone, `${id}.tar.gz`), Buffer.alloc(bytes));
    utimesSync(join(dir, zone, `${id}.tar.gz`), at, at);
    if (entry !== null) writeFileSync(join(dir, zone, `${id}.json`), entry);
    return id;
  }

  it('is left out of GET /zones/bundles, and logged, while the others are listed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zone-bundle-corrupt-'));
    const dataDir = join(dir, 'var-oxide');
    const time = '2026-02-03T04:05:06.000Z';
    const good = plant(bundleDir(dataDir), 'oxz_nexus', JSON.stringify({ zone: 'oxz_nexus', time, cause: 'it broke' }));
    const truncated = plant(bundleDir(dataDir), 'oxz_nexus', '{"zone": "oxz_nex');
    const notAnObject = plant(bundleDir(dataDir), 'oxz_oximeter', 'null');
    const missing = plant(bundleDir(dataDir), 'oxz_oximeter', null);
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const t = await startTestAgent({ dir, log });
    cleanup.push(() => t.close());

    const list = await bundles(t.running.address);
    expect(list).toEqual([
      { zone: 'oxz_oximeter', id: missing, size: 100, time: '2026-01-01T00:00:00.000Z', cause: 'unknown (its listing entry is missing)' },
      { zone: 'oxz_nexus', id: good, size: 100, time, cause: 'it broke' },
    ]);
    const skipped = lines.filter((l) => l.msg === 'zone bundle left out of the listing: its listing entry cannot be read');
    expect(skipped.map((l) => [l.zone, l.bundle]).sort()).toEqual([['oxz_nexus', truncated], ['oxz_oximeter', notAnObject]].sort());
    expect(skipped.find((l) => l.bundle === truncated)!.err).toMatch(/is not JSON/);
    expect((await t.request('GET', '/health')).status).toBe(200);
  });

  it('still counts toward max_bytes, and goes when it is the oldest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zone-bundle-corrupt-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const host = await SimHost.open({ stateDir: join(dir, 'host'), links: [], pools: [] });
    cleanup.push(() => host.close());
    const bundlesDir = join(dir, 'bundles');
    const corrupt = plant(bundlesDir, 'oxz_nexus', '{', 1 << 20);
    const store = new ZoneBundles({ dir: bundlesDir, maxBytes: 1 << 20, host, log: pino({ level: 'silent' }), zoneDataset: 'rpool/zone' });
    const made = await store.collect({ zone: 'oxz_oximeter', cause: 'it broke', ledger: { file: 'services.json', record: {} }, fmris: [], vnics: [] });
    expect(made).not.toBeNull();
    expect(existsSync(join(bundlesDir, 'oxz_nexus', `${corrupt}.tar.gz`))).toBe(false);
    expect(existsSync(join(bundlesDir, 'oxz_nexus'))).toBe(false);
    expect(readdirSync(join(bundlesDir, 'oxz_oximeter')).sort()).toEqual([`${made!.id}.json`, `${made!.id}.tar.gz`]);
  });
});

describe('zone bundles on the illumos host (fake illumos)', () => {
  it('Propolis in maintenance leaves a bundle with its SMF state and log, then the zone is torn down', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zone-bundle-illumos-'));
    const { agent, host, nexus, close } = await startFakeIllumosAgent({
      addon: files.addon, images: files.images, dir, log: bundleLogger(),
      config: { zones: { control_link: 'net0', ready_timeout_ms: DEADLINE_MS, warm_pool: 0, template: false } },
    });
    try {
      const id = randomUUID();
      const runtime = realRuntime();
      const put = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', runtime)),
      });
      expect(put.status).toBe(200);
      await nexusSees(nexus, id, 'running', 30_000);
      const zone = zoneOf({ running: agent }, id);
      const zoneId = zoneIdOf(zone);
      await host.zones.exec(zone, svcadmMarkMaintenance(propolisFmri(zoneId)));
      await nexusSees(nexus, id, 'failed', 30_000);
      await agent.agent.instances.idle();
      expect((await host.zones.list()).map((z) => z.name)).not.toContain(zone);

      const [b, ...more] = await bundles(agent.address);
      expect(more).toEqual([]);
      expect(b).toMatchObject({ zone, cause: expect.stringMatching(/went maintenance$/) });
      const res = await fetch(`http://${agent.address}/zones/bundles/${zone}/${b!.id}`);
      expect(res.status).toBe(200);
      const files = untar(gunzipSync(Buffer.from(await res.arrayBuffer())));
      expect(stepsOf(files).filter((s) => !s.ok)).toEqual([]);
      expect(JSON.parse(files.get('bundle.json')!)).toMatchObject({ host: 'illumos', zone, instance: id });
      expect(files.get('smf/svcs-xv.txt')).toBe(`${propolisFmri(zoneId)}\n State: maintenance\n`
        + `   See: /var/svc/log/system-illumos-propolis-server:vm-${zoneId}.log\nImpact: This service is not running.\n\n`);
      expect(logTexts(files.get(`smf/logs/system-illumos-propolis-server:vm-${zoneId}.log`)!))
        .toEqual(['Executing start method.', 'Method "start" exited with status 0.', 'Service failed: now in maintenance.']);
      expect(JSON.parse(files.get('host/zone.json')!)).toMatchObject({ name: zone, state: 'running', configuration: { brand: 'omicron1' } });
      expect(JSON.parse(files.get('host/links.json')!).vnics).toHaveLength(1);
      expect(files.get('agent.log')).toContain('Propolis service is no longer running');
    } finally {
      await close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('the zone bundle API in the OpenAPI document', () => {
  it('documents both routes, says they are not in the 2022 contract, and the list answer is its schema', async () => {
    const app = await agentApp(null, pino({ level: 'silent' }));
    const doc = await openApiDocument(app) as { paths: Record<string, Record<string, { description?: string; responses: Record<string, any> }>> };
    await app.close();
    const list = doc.paths['/zones/bundles']?.get;
    const get = doc.paths['/zones/bundles/{zone}/{id}']?.get;
    expect(list?.description).toMatch(/Not in the 2022 sled-agent contract/);
    expect(get?.description).toMatch(/Not in the 2022 sled-agent contract/);
    expect(get?.responses['200'].content['application/gzip'].schema).toEqual({ type: 'string', format: 'binary' });
    expect(list?.responses['200'].content['application/json'].schema.items.required).toEqual(['zone', 'id', 'time', 'size', 'cause']);
  });
});

describe('RecentLogs', () => {
  const line = (fields: Record<string, unknown>) => `${JSON.stringify({ level: 30, time: 0, ...fields })}\n`;

  it('files a line under the instance and zone it names, once each, oldest first', () => {
    const logs = new RecentLogs();
    logs.streamWrite(line({ instance: 'a', msg: 'one' }));
    logs.streamWrite(line({ zone: 'oxz_a', msg: 'two' }));
    logs.streamWrite(line({ instance: 'a', zone: 'oxz_a', msg: 'three' }));
    logs.streamWrite(line({ msg: 'about nothing' }));
    logs.streamWrite(line({ instance: 'b', msg: 'other' }));
    logs.streamWrite('not json "instance":"a"\n');
    expect(logs.lines(['instance:a', 'zone:oxz_a']).map((l) => JSON.parse(l).msg)).toEqual(['one', 'two', 'three']);
    expect(logs.lines(['instance:b']).map((l) => JSON.parse(l).msg)).toEqual(['other']);
    expect(logs.lines(['instance:c'])).toEqual([]);
  });

  it('keeps the newest lines within its byte budget per key, and its most recently written keys', () => {
    const logs = new RecentLogs(300, 2);
    for (let i = 0; i < 20; i++) logs.streamWrite(line({ instance: 'a', msg: `m${i}` }));
    const kept = logs.lines(['instance:a']).map((l) => JSON.parse(l).msg);
    expect(kept.length).toBeGreaterThan(1);
    expect(kept.length).toBeLessThan(20);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => `m${20 - kept.length + i}`));
    logs.streamWrite(line({ instance: 'b', msg: 'b' }));
    logs.streamWrite(line({ instance: 'c', msg: 'c' }));
    expect(logs.lines(['instance:a'])).toEqual([]);
    expect(logs.lines(['instance:b', 'instance:c'])).toHaveLength(2);
  });
});

describe('tarArchive', () => {
  it('splits a long name into prefix and name, and refuses unsafe names', () => {
    const long = `${'d'.repeat(120)}/file.txt`;
    const files = untar(tarArchive([{ name: long, data: Buffer.from('x'), mtime: new Date(0) }]));
    expect([...files]).toEqual([[long, 'x']]);
    for (const bad of ['/etc/passwd', '../up', 'a/../../b', 'caf\u00e9', 'x'.repeat(300)]) {
      expect(() => tarArchive([{ name: bad, data: Buffer.alloc(0), mtime: new Date(0) }])).toThrow(RangeError);
    }
  });
});
