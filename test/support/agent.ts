// The real agent in-process on a simulated host, against a fake Nexus, both on 127.0.0.1 port 0,
// with its state (ledgers, simulated host) in a temporary directory that outlives a restart.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { checkAgentConfig, type AgentConfig } from '../../src/config.js';
import type { Host } from '../../src/host/index.js';
import { openSimHost } from '../../src/host/open.js';
import { readLedgerFile } from '../../src/ledger.js';
import type { SimHost } from '../../src/sim/host.js';
import { startAgent, type RunningAgent, type SledAgentOptions } from '../../src/sled-agent.js';
import { FakeNexus, type Recorded } from './fake-nexus.js';
import { TIME } from './sim.js';

export const POOL = 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b';

export interface TestAgent {
  running: RunningAgent;
  host: SimHost;
  nexus: FakeNexus;
  config: AgentConfig;
  dir: string;
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Stops the agent (gracefully) and its host; the state directory stays. */
  stop(): Promise<void>;
  /** stop(), then start again on the same state. */
  restart(): Promise<TestAgent>;
  /** stop() and remove everything. */
  close(): Promise<void>;
}

/** The simulated host with some of its zone calls replaced (to break or hold them), the rest as they are. */
export function withZones(host: SimHost, zones: Partial<Host['zones']>): Host {
  return {
    ...host, kind: host.kind, links: host.links, datasets: host.datasets, events: host.events, network: host.network,
    reachable: (zone, addr) => host.reachable(zone, addr), close: () => host.close(),
    zones: { ...host.zones, ...zones },
  };
}

export interface TestAgentOptions {
  dir?: string;
  nexus?: FakeNexus;
  config?: Record<string, unknown>;
  agent?: SledAgentOptions;
  /** The agent's logger (default: silent, or TEST_LOG_LEVEL); kept across restart(). */
  log?: Logger;
  /** The host the agent is given, made from the simulated one (to break or count its calls). */
  wrapHost?: (host: SimHost) => Host;
}

/** A config file's content for the sim host under `dir` (also used by the child-process tests). */
export function testConfig(dir: string, nexus: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  // A test's [host] table goes over this one, so its state stays under `dir` unless it says otherwise.
  const { host, ...rest } = extra as { host?: Record<string, unknown> };
  return {
    id: 'fb0f7546-4d46-40ca-9d56-cbb810684ca7',
    nexus_address: nexus,
    zpools: [POOL],
    // Guest NICs' OPTE ports need the sled's underlay address.
    underlay_address: 'fd00:1122:3344:101::1',
    data_dir: join(dir, 'var-oxide'),
    dropshot: { bind_address: '127.0.0.1:0' },
    log: { level: 'info' },
    host: { backend: 'sim', state_dir: join(dir, 'sim-host'), latency: 'zero', ...host },
    // No pool and no template unless a test asks: each test's zones are its instances' own.
    zones: { ready_timeout_ms: 20_000, warm_pool: 0, template: false },
    updates: { artifact_dir: join(dir, 'zones') },
    nexus: { timeout_ms: 2_000, backoff_initial_ms: 5, backoff_max_ms: 100 },
    ...rest,
  };
}

export async function startTestAgent(options: TestAgentOptions = {}): Promise<TestAgent> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'sled-agent-real-'));
  const nexus = options.nexus ?? await FakeNexus.start();
  const config = checkAgentConfig(testConfig(dir, nexus.address, options.config), 'test');
  const log = options.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const host = await openSimHost(config, log);
  let running: RunningAgent;
  try {
    running = await startAgent(config, options.wrapHost ? options.wrapHost(host) : host, log, options.agent);
  } catch (err) {
    await host.close();
    throw err;
  }
  const url = `http://${running.address}`;
  const t: TestAgent = {
    running, host, nexus, config, dir,
    async request(method, path, body) {
      const init: RequestInit = { method };
      if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers = { 'content-type': 'application/json' };
      }
      const res = await fetch(`${url}${path}`, init);
      const text = await res.text();
      let parsed: any;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
      return { status: res.status, body: parsed };
    },
    async stop() {
      await running.close();
    },
    async restart() {
      await t.stop();
      return startTestAgent({ ...options, dir, nexus });
    },
    async close() {
      await t.stop();
      await nexus.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** An InstanceRuntimeState as Nexus sends it in `initial`, with the Propolis address it allocated. */
export function realRuntime(overrides: Record<string, unknown> = {}) {
  return {
    run_state: 'creating',
    sled_id: 'fb0f7546-4d46-40ca-9d56-cbb810684ca7',
    propolis_id: randomUUID(),
    dst_propolis_id: null,
    propolis_addr: '[fd00:1122:3344:101::10]:12400',
    migration_id: null,
    ncpus: 4,
    memory: 2 * 1024 ** 3,
    hostname: 'vm-one',
    gen: 1,
    time_updated: TIME,
    ...overrides,
  };
}

export function ensureBody(runState: string, runtime: Record<string, unknown> = realRuntime(), nics: unknown[] = []) {
  return {
    initial: { runtime, nics, disks: [], cloud_init_bytes: null },
    target: { run_state: runState, migration_params: null },
    migrate: null,
  };
}

/**
 * The zone the agent chose for instance `id` (`oxz_propolis-server_<its own uuid>`), as the agent
 * holds it now: read, never waited for. Throws if the instance is unknown or has no zone yet.
 */
export function zoneOf(t: Pick<TestAgent, 'running'>, id: string): string {
  const zone = t.running.agent.instances.get(id)?.zone;
  if (typeof zone !== 'string') throw new Error(`instance ${id} has no zone (${zone === undefined ? 'no such instance' : 'none chosen'})`);
  return zone;
}

/** The zone the instance ledger under `dataDir` records for `id` (child-process tests); throws if none. */
export function ledgerZone(dataDir: string, id: string): string {
  const zone = (readLedgerFile(join(dataDir, 'instances.json')) as { instances?: Record<string, { zone?: unknown }> }).instances?.[id]?.zone;
  if (typeof zone !== 'string') throw new Error(`the ledger in ${dataDir} records no zone for instance ${id}`);
  return zone;
}

/**
 * Resolves once `zone` is running, whether it is already or does not exist yet (unlike
 * waitForZoneRunning, which rejects for a zone not configured yet): for a zone the agent named
 * when it answered the PUT but may not have configured.
 */
export async function zoneReachesRunning(host: Host, zone: string, timeoutMs = 20_000): Promise<void> {
  let off = () => {};
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      off = host.events.subscribe((e) => {
        if (e.zonename === zone && e.newstate === 'running') resolve();
      });
      timer = setTimeout(() => reject(new Error(`zone ${zone} not running after ${timeoutMs} ms`)), timeoutMs);
      host.zones.list().then((zones) => {
        if (zones.some((z) => z.name === zone && z.state === 'running')) resolve();
      }, reject);
    });
  } finally {
    off();
    clearTimeout(timer);
  }
}

/** The propolis-server SMF instance in a Propolis zone: `vm-<the zone's own id>`. */
export const propolisFmriOf = (zone: string) => `svc:/system/illumos/propolis-server:vm-${zone.replace(/^oxz_propolis-server_/, '')}`;

export const instancePuts = (id: string) => (r: Recorded) => r.method === 'PUT' && r.url === `/instances/${id}`;

/** Resolves with Nexus's first PUT for `id` in `state` (waiting for it if need be). */
export function nexusSees(nexus: FakeNexus, id: string, state: string, timeoutMs = 20_000): Promise<Recorded> {
  return nexus.waitFor((r) => instancePuts(id)(r) && r.body?.run_state === state, timeoutMs, `instance ${id} ${state}`);
}

/**
 * Asks `t` for a new instance (with `nics`) to run and waits for Nexus to hear it running: its id,
 * the runtime it was given (for later requests), the zone the agent chose, and that report.
 */
export async function runInstance(t: Pick<TestAgent, 'running' | 'request' | 'nexus'>, nics: unknown[] = []): Promise<{ id: string; runtime: ReturnType<typeof realRuntime>; zone: string; report: Recorded }> {
  const id = randomUUID();
  const runtime = realRuntime();
  await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime, nics));
  const report = await nexusSees(t.nexus, id, 'running');
  return { id, runtime, zone: zoneOf(t, id), report };
}

export function writeConfigToml(path: string, config: Record<string, unknown>): void {
  writeFileSync(path, toToml(config));
}

/** Just enough TOML for test configs: scalars, arrays of scalars, one level of tables. */
function toToml(config: Record<string, unknown>): string {
  const value = (v: unknown): string => (Array.isArray(v) ? `[${v.map(value).join(', ')}]` : typeof v === 'string' ? JSON.stringify(v) : String(v));
  const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const top = Object.entries(config).filter(([, v]) => !isTable(v)).map(([k, v]) => `${k} = ${value(v)}`);
  const tables = Object.entries(config).filter(([, v]) => isTable(v)).map(([k, v]) => {
    const entries = Object.entries(v as Record<string, unknown>).map(([kk, vv]) =>
      (isTable(vv) ? `${kk} = { ${Object.entries(vv).map(([a, b]) => `${a} = ${value(b)}`).join(', ')} }` : `${kk} = ${value(vv)}`));
    return `[${k}]\n${entries.join('\n')}`;
  });
  return `${top.join('\n')}\n\n${tables.join('\n\n')}\n`;
}
