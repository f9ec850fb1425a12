// Boot benchmark of the real agent: N instances provisioned at once, timed from `PUT
// /instances/{id}` to Nexus receiving `running`, per phase and in total, in three modes side by
// side in one run (`npm run bench:boot`, issue 12):
//
//   original  the original's sequence on the same model: [instances] readiness = "poll" (250 ms
//             doubling), steps = "serial", [zones] warm_pool = 0, template = false (each zone
//             installed from the image)
//   warm      readiness = "event", steps = "parallel", warm_pool = K (--pool, default 10),
//             template = true: a start takes a pre-booted zone from the pool while there is one
//   cold      readiness = "event", steps = "parallel", warm_pool = 0, template = true: every
//             zone cloned from the template
//
//   npm run bench:boot                              # N = 1, 10, 100; the three modes; ~4 min
//   npm run bench:boot -- --quick                   # N = 1, 10 (also BENCH_QUICK=1)
//   npm run bench:boot -- --counts 5,50 --seed 7 --modes warm,cold --pool 4
//   npm run bench:boot -- --nics 2                  # what the guest NICs' OPTE ports add
//   npm run bench:boot -- --durable --propolis-on-demand   # the sim host as it is by default
//   npm run bench:boot -- --cpu-prof /tmp/prof      # a .cpuprofile of each measured run
//   npm run bench:boot -- --counts 1,2 --rounds 1 --pool 1 --latency zero --no-warmup   # a smoke run (the tests')
//   npm run bench:boot -- --counts 100 --modes warm,cold                             # the N = 100 overhead alone (5 runs' median)
//   npm run bench:boot -- --overhead-runs 1                                           # one run of each: quicker, its verdict noisy
//   npm run bench:boot -- --host illumos --config /etc/oxide/sled-agent.toml --counts 1,4
//
// Each (mode, N) run gets fresh temp dirs, a fresh host and agent, and a fresh Nexus recorder on
// 127.0.0.1:0. Before the warm and cold runs are timed the agent's pool is waited for
// (agent.pool.ready(): the template zone made and, warm, K zones booted), so the clock times
// starts, not the pool filling; at N = 1 (several instances, each alone) the pool is waited for
// before each one. Once the clock runs, the pool refills as starts take its zones: at N >= K that
// refill competes with the starts for the host and the event loop, as it would on a sled, and
// is kept and reported (the pool's counts during the run, the zones it made and their host time).
// With N above K the pool runs out: an instance that got a pool zone shows a 'pool' phase, and
// the warm mode's instances are reported as "pool zone" and "own zone" apart (and so drawn).
// The N PUTs go out concurrently; a run ends when Nexus has seen every instance `running` (a
// missed deadline fails the run, loudly, and the script exits 1). A warm-up at zero latency
// comes first and is not reported.
//
// Phases: the agent reports each phase's start (SledAgentOptions.onPhase). With parallel steps,
// phases overlap ('ports'/'vnic' beside 'configure'/'clone'); a run's segments are its phase
// starts sorted by time, each lasting until the next start, the last until Nexus receives
// running: time along the critical path, charged to the phase that started last. "accept" is PUT
// sent -> the first phase.
//
// What runs where: the agent lives on the main thread (as in production, one event loop); the
// HTTP client that sends the PUTs and the Nexus recorder run in a worker thread, so their cost is
// not counted as the agent's; the simulated host runs, by default, in a process of its own with
// its Propolis servers (`[host] simulation = "process"`, --simulation; src/sim/host-process.ts),
// as on a sled the work behind a host call is the kernel's, zoneadmd's and each Propolis's, not
// the agent's: the agent pays an IPC round trip per host call instead, more than a call into the
// addon costs it. `--simulation in-process` puts the sim host's model on the agent's loop (the
// sim agent's default), with its Propolis servers in a farm process (`--propolis`;
// src/sim/propolis-farm.ts) or in-process. All times are process.hrtime (CLOCK_MONOTONIC, the
// same clock on every thread).
//
// Agent overhead = measured total - the host's modelled latency for that instance. On the sim
// host (REALISTIC_LATENCIES with REALISTIC_JITTER, seeded) the host records every latency it
// drew for the instance's zone, its VNICs and ports (SimHost.modelled): VNIC, configure,
// install or clone, boot, network milestone, each zlogin and ipadm, the Propolis service start,
// the handover of links and the VM's boot. Modelled time is the union of those intervals within
// PUT -> running (parallel steps overlap; a pool zone's draws before the PUT are not the
// start's). What is left is the agent's own time: HTTP, its ledger commits (fsynced; kept, and
// their cost is reported), host calls, Propolis and Nexus calls, and any lateness of the sim's
// timers because the one event loop was busy. Every host call is timed too, which splits the
// overhead into "in host calls beyond their modelled latency" (the sim's own cost) and "outside
// host calls" (the agent's): outside = total - the union of the instance's host calls and its
// VM's boot.
//
// HTTP floor: the wire contract's exchanges (Nexus's PUT, Propolis ensure and Run, the
// state-monitor answers, a PUT to Nexus of each state they bring) with the same clients and
// simulated Propolis but no agent logic, once per instance alone and replayed after each
// event-mode run under its timing; its Propolis servers run where the agent's did (a farm
// process, or in-process). The agent's overhead above it, outside host calls, is the last target.
//
// Targets, PASS/FAIL per N (reported; they do not set the exit status):
//   warm total p50 <= 0.15x the original's p50 and p99 <= 0.2x the original's p99 (N = 1, 10);
//   cold total p50 <= 0.6x the original's p50 (every N);
//   at N = 100, warm and cold: the agent's overhead above the HTTP floor, outside host calls,
//   p99 <= 20 ms, judged on the median of --overhead-runs R runs of each (default 5: one run's
//   figure moves by ±15 ms with a shared machine, so a single run's verdict is the neighbours').
//
// What the sim host does that a sled would not put on the agent's clock is kept out (profiled:
// at N = 100 it was most of the "overhead"), and the output says so:
// - its state file is written without fsync and behind the operations (SimHost durable: false,
//   writeBehindMs; the atomic rename stays): zoneadm's own bookkeeping is inside the modelled
//   latencies, the sim's fsyncs and JSON are not;
// - it runs in a process of its own (above), its Propolis servers started before the run
//   (SimHost.prestartPropolis): on a sled each is its own process;
// - it logs warnings only (the agent logs at info to a file, as in production).
// `--simulation in-process --durable --propolis-on-demand --propolis in-process` runs the sim as
// the sim agent runs it by default.
//
// Against the illumos backend (`--host illumos --config <toml>`, on a real sled with no agent
// running and no oxz_ zones or ox/vopte VNICs: the benchmark's agent would remove those as
// orphans, so it refuses), modelled latency is unknown: totals, phases and time in and out of
// host calls only. Instances are destroyed through the agent after each run.
//
// Output: a table per mode and N, a side-by-side block per N with the targets, and
// results/boot/<timestamp>.{json,svg} plus results/boot/latest.{json,svg}, which git ignores
// (results/boot/reference.* is the result kept on purpose).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import Fastify from 'fastify';
import pino, { type Logger } from 'pino';
import { formatSocketAddr, parseSocketAddr, type SocketAddr } from '../src/common/address.js';
import { checkAgentConfig, loadAgentConfigFile, type AgentConfig } from '../src/config.js';
import type { Host } from '../src/host/index.js';
import { observeHost } from '../src/host/observe.js';
import { openHost } from '../src/host/open.js';
import { Ledger, type Change } from '../src/ledger.js';
import { REALISTIC_JITTER, REALISTIC_LATENCIES, SimHost, ZERO_LATENCIES, type DrawnLatency, type SimHostOptions, type SimLatencies } from '../src/sim/host.js';
import { RemoteSimHost } from '../src/sim/host-process.js';
import { startAgent, type RunningAgent } from '../src/sled-agent.js';
import { removeZone, ZONE_PREFIX, type Phase, type Readiness } from '../src/zone.js';
import type { InstanceRuntimeState } from '../src/params.js';
import { NexusClient } from '../src/nexus-client.js';
import { PropolisClient } from '../src/propolis-client.js';
import { PropolisFarm } from '../src/sim/propolis-farm.js';
import { SimPropolis } from '../src/sim/propolis.js';
import { compileTree } from './compile.js';
import { median, nearestRank, printTable } from './table.js';
import { monitorAndReport } from './wire-floor.js';
import { defaultVpcRules } from '../test/support/vpc-rules.js';
import { tuneV8 } from '../src/common/v8-tuning.js';

// The agent runs in this process (or its floor does): V8 as the sled-agent command sets it.
tuneV8();

// ---- targets and shape ----

/** Warm start: total p50 at most this times the original's p50, and p99 the next, at WARM_TARGET_COUNTS. */
const TARGET_WARM_P50 = 0.15;
const TARGET_WARM_P99 = 0.2;
const WARM_TARGET_COUNTS: readonly number[] = [1, 10];
/** Cold start (template clone, parallel steps): total p50 at most this times the original's, every N. */
const TARGET_COLD_P50 = 0.6;
/** At OVERHEAD_TARGET_N, warm and cold: the agent's overhead above the HTTP floor, outside host calls, p99 at most this. */
const TARGET_ABOVE_FLOOR_P99_MS = 20;
const OVERHEAD_TARGET_N = 100;
/** In the order a start usually goes through them (the table's order; segments are cut by time). */
const PHASES: readonly Phase[] = ['pool', 'ports', 'vnic', 'handover', 'configure', 'clone', 'install', 'boot', 'zone_running', 'network', 'address', 'service', 'propolis'];
/** "accept": PUT sent -> the first phase (HTTP, state machine, ledger commits). "propolis" ends when Nexus receives running. */
const SEGMENTS = ['accept', ...PHASES] as const;
type Segment = (typeof SEGMENTS)[number];
const SLED_ID = 'fb0f7546-4d46-40ca-9d56-cbb810684ca7';
const POOL = 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b';
/**
 * Sim host state: written (atomically, no fsync) in the background at most this often, unless
 * --durable. Each write serialises every zone on the agent's event loop; at 50 ms it was the
 * largest single item of a N = 100 profile (~115 ms of CPU), none of it the agent's.
 */
const SIM_WRITE_BEHIND_MS = 500;
const DRAWS_KEPT = 3;
/** The repository: this file's parent, or, compiled (--entry build), the tree it was compiled from. */
const ROOT = process.env.BENCH_BOOT_ROOT ?? resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** This file compiled by tsc (--entry build re-runs it so), not src/ through tsx. */
const COMPILED = import.meta.url.endsWith('.js');
/** After Nexus's connections are opened, before a run's clock: the agent's loop finishes with them. */
const SETTLE_MS = 50;

// ---- the worker: PUT client and Nexus recorder ----

interface InstancePut {
  id: string;
  body: string;
}

type ToDriver =
  | { type: 'nexus' }
  | { type: 'connect'; agent: string; count: number }
  | { type: 'go'; instances: InstancePut[]; deadlineMs: number }
  | { type: 'disconnect' }
  | { type: 'stop-nexus' };

interface DriverResult {
  id: string;
  putAt: bigint;
  putDoneAt: bigint | null;
  putStatus: number | null;
  putError: string | null;
  /** First Nexus PUT /instances/{id} with each run_state. */
  states: Record<string, bigint>;
}

type FromDriver =
  | { type: 'nexus'; address: string }
  | { type: 'connected' }
  | { type: 'done'; results: DriverResult[]; timedOut: boolean }
  | { type: 'disconnected' }
  | { type: 'stopped' };

/**
 * The worker's code, plain JavaScript: workers do not get tsx's loader on Node 20 (module hooks
 * do not reach worker threads there), so it is evaluated as a script and needs nothing but
 * Node itself. Messages: ToDriver in, FromDriver out.
 */
const DRIVER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const { Agent, createServer, request } = require('node:http');
let server = null;
let byId = new Map();
let onRunning = null;
const readBody = (req) => new Promise((res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => res(Buffer.concat(chunks).toString('utf8')));
});
// Nexus keeps its connections to a sled agent: 'connect' opens them (GET / is a 404 that
// touches no state) and they stay open until 'disconnect', so a run's PUTs go on connections a
// long-running Nexus would have had, and the agent's handling of the opening requests (their
// replies, log lines and metrics) is over before the run's clock and its CPU window open.
// node:http rather than fetch: fetch's own per-request cost (~1-3 ms here, streams and Request
// objects) would land on the clock before the agent sees a byte.
let agent = null;
let target = null;
const send = (method, path, body, onSent) => new Promise((resolve, reject) => {
  const req = request({ host: target.host, port: target.port, method, path, agent, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
    readBody(res).then((text) => resolve({ status: res.statusCode, text }), reject);
  });
  req.on('error', reject);
  if (onSent) onSent();
  req.end(body);
});
const connect = async (address, count) => {
  if (agent !== null) agent.destroy();
  agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  target = { host: address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, ''), port: Number(address.slice(address.lastIndexOf(':') + 1)) };
  await Promise.all(Array.from({ length: count }, () => send('GET', '/').catch(() => {})));
};
parentPort.on('message', async (msg) => {
  if (msg.type === 'nexus') {
    byId = new Map();
    server = createServer((req, res) => {
      const at = process.hrtime.bigint();
      readBody(req).then((raw) => {
        const m = req.method === 'PUT' ? /^\/instances\/([^/?]+)$/.exec(req.url || '') : null;
        if (m) {
          const r = byId.get(m[1]);
          let state;
          try { state = JSON.parse(raw).run_state; } catch { state = undefined; }
          if (r && typeof state === 'string' && r.states[state] === undefined) {
            r.states[state] = at;
            if (state === 'running' && onRunning) onRunning();
          }
        }
        res.statusCode = 204;
        res.end();
      });
    });
    server.keepAliveTimeout = 60000;
    server.listen(0, '127.0.0.1', () => {
      parentPort.postMessage({ type: 'nexus', address: '127.0.0.1:' + server.address().port });
    });
  } else if (msg.type === 'connect') {
    await connect(msg.agent, msg.count);
    parentPort.postMessage({ type: 'connected' });
  } else if (msg.type === 'disconnect') {
    if (agent !== null) agent.destroy();
    agent = null;
    target = null;
    parentPort.postMessage({ type: 'disconnected' });
  } else if (msg.type === 'go') {
    for (const inst of msg.instances) {
      byId.set(inst.id, { id: inst.id, putAt: 0n, putDoneAt: null, putStatus: null, putError: null, states: {} });
    }
    let finished = false;
    let timer = null;
    const finish = (timedOut) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      onRunning = null;
      parentPort.postMessage({ type: 'done', results: [...byId.values()], timedOut });
    };
    timer = setTimeout(() => finish(true), msg.deadlineMs);
    const check = () => {
      const all = [...byId.values()];
      if (all.every((r) => r.states.running !== undefined || r.putError !== null)) finish(false);
    };
    onRunning = check;
    for (const inst of msg.instances) {
      const r = byId.get(inst.id);
      send('PUT', '/instances/' + inst.id, inst.body, () => { r.putAt = process.hrtime.bigint(); })
        .then(({ status, text }) => {
          r.putDoneAt = process.hrtime.bigint();
          r.putStatus = status;
          if (status !== 200) r.putError = status + ': ' + text.slice(0, 300);
        }, (err) => { r.putError = String(err && err.message || err); })
        .finally(check);
    }
  } else if (msg.type === 'stop-nexus') {
    const s = server;
    server = null;
    if (s === null) { parentPort.postMessage({ type: 'stopped' }); return; }
    s.closeAllConnections();
    s.close(() => parentPort.postMessage({ type: 'stopped' }));
  }
});
`;

class Driver {
  private readonly worker: Worker;
  private connected = false;
  private constructor() {
    this.worker = new Worker(DRIVER_SOURCE, { eval: true });
  }

  static start(): Driver {
    return new Driver();
  }

  private ask<T extends FromDriver['type']>(msg: ToDriver, want: T): Promise<Extract<FromDriver, { type: T }>> {
    return new Promise((res, rej) => {
      const onMessage = (m: FromDriver) => {
        if (m.type !== want) return;
        this.worker.off('message', onMessage);
        this.worker.off('error', onError);
        res(m as Extract<FromDriver, { type: T }>);
      };
      const onError = (err: Error) => {
        this.worker.off('message', onMessage);
        rej(err);
      };
      this.worker.on('message', onMessage);
      this.worker.once('error', onError);
      this.worker.postMessage(msg);
    });
  }

  async startNexus(): Promise<string> {
    return (await this.ask({ type: 'nexus' }, 'nexus')).address;
  }

  /**
   * Opens `count` keep-alive connections to the agent at `agent`, kept for the go()s that
   * follow until disconnect(), as a long-running Nexus keeps its own.
   */
  async connect(agent: string, count: number): Promise<void> {
    await this.ask({ type: 'connect', agent, count }, 'connected');
    this.connected = true;
  }

  /** The PUTs, at once, on the connections connect() opened: never opened here, on the clock. */
  go(instances: InstancePut[], deadlineMs: number): Promise<{ results: DriverResult[]; timedOut: boolean }> {
    if (!this.connected) return Promise.reject(new Error('driver: go() before connect(): the connections would be opened on the clock'));
    return this.ask({ type: 'go', instances, deadlineMs }, 'done');
  }

  async disconnect(): Promise<void> {
    await this.ask({ type: 'disconnect' }, 'disconnected');
    this.connected = false;
  }

  async stopNexus(): Promise<void> {
    await this.ask({ type: 'stop-nexus' }, 'stopped');
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

// ---- instrumentation of the agent process (main thread) ----

/** Every Ledger commit, call to durable (the agent's ledgers: a journal append and fdatasync, or a compaction). */
const ledgerCommits: Array<{ path: string; ms: number; start: bigint; end: bigint }> = [];
/** Every FileHandle.sync() and datasync() on the main thread: only the agent's ledgers unless --durable. */
const fsyncs: number[] = [];

async function instrument(dir: string): Promise<void> {
  const original = Ledger.prototype.commit;
  Ledger.prototype.commit = function commit(this: Ledger<unknown>, ...changed: Change[]): Promise<void> {
    const t0 = process.hrtime.bigint();
    // The changes pass through: a commit naming none writes the whole ledger.
    const p = original.apply(this, changed);
    p.then(() => {
      const end = process.hrtime.bigint();
      ledgerCommits.push({ path: this.path, ms: ms(end - t0), start: t0, end });
    }, () => {});
    return p;
  };
  const probe = join(dir, 'probe');
  const handle = await open(probe, 'w');
  const proto = Object.getPrototypeOf(handle) as Record<'sync' | 'datasync', () => Promise<void>>;
  await handle.close();
  rmSync(probe, { force: true });
  for (const name of ['sync', 'datasync'] as const) {
    const sync = proto[name];
    proto[name] = function timedSync(this: unknown): Promise<void> {
      const t0 = process.hrtime.bigint();
      const p = sync.call(this);
      p.then(() => fsyncs.push(ms(process.hrtime.bigint() - t0)), () => {});
      return p;
    };
  }
}

interface HostCall {
  /** The zone or VNIC it was about; null for whole-host calls (list, listVnics). */
  key: string | null;
  op: string;
  start: bigint;
  end: bigint;
}

/**
 * The host as the agent sees it, with every call timed. Time in host calls is the host's
 * (modelled latency plus whatever the host itself costs); time outside them is the agent's (and
 * Propolis's). A call is keyed by the zone or link it is about: its first argument, or that
 * argument's name (zones.configure(spec), links.createVnic(spec)).
 */
function timedHost(host: Host, calls: HostCall[]): Host {
  return observeHost(host, ({ op, args, start, end }) => {
    const first = args[0];
    const key = typeof first === 'string' ? first
      : first !== null && typeof first === 'object' && typeof (first as { name?: unknown }).name === 'string' ? (first as { name: string }).name
        : null;
    calls.push({ key, op, start, end });
  });
}

/** CPU time of the main thread so far, ms (Linux: /proc, 10 ms ticks); null elsewhere. */
function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

// ---- statistics ----

const ms = (ns: bigint): number => Number(ns) / 1e6;

interface Stats {
  n: number;
  mean: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
}

function stats(values: number[]): Stats | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, mean: s.reduce((a, b) => a + b, 0) / s.length, p50: nearestRank(s, 50), p99: nearestRank(s, 99), min: s[0]!, max: s[s.length - 1]! };
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const fmtMs = (x: number | null | undefined): string => {
  if (x === null || x === undefined) return '-';
  const a = Math.abs(x);
  return a >= 1000 ? x.toFixed(0) : a >= 100 ? x.toFixed(1) : a >= 10 ? x.toFixed(2) : x.toFixed(3);
};

/** Ascending hrtime order (a bigint difference cannot be a sort's number). */
function byTime(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The length of the union of [start, end) intervals clipped to [from, to), ms. */
function coveredMs(intervals: ReadonlyArray<readonly [bigint, bigint]>, from?: bigint, to?: bigint): number {
  const clipped = intervals
    .map(([s, e]) => [from !== undefined && s < from ? from : s, to !== undefined && e > to ? to : e] as const)
    .filter(([s, e]) => e > s)
    .sort((a, b) => byTime(a[0], b[0]));
  let total = 0n;
  let curStart: bigint | null = null;
  let curEnd = 0n;
  for (const [s, e] of clipped) {
    if (curStart === null || s > curEnd) {
      if (curStart !== null) total += curEnd - curStart;
      curStart = s;
      curEnd = e;
    } else if (e > curEnd) {
      curEnd = e;
    }
  }
  if (curStart !== null) total += curEnd - curStart;
  return ms(total);
}

// ---- modes ----

type BenchMode = 'original' | 'warm' | 'cold';
const ALL_MODES: readonly BenchMode[] = ['original', 'warm', 'cold'];

/** What a mode sets in the agent's configuration. */
interface ModeSettings {
  readiness: Readiness;
  steps: 'parallel' | 'serial';
  warmPool: number;
  template: boolean;
}

function modeSettings(mode: BenchMode, pool: number): ModeSettings {
  switch (mode) {
    case 'original': return { readiness: 'poll', steps: 'serial', warmPool: 0, template: false };
    case 'warm': return { readiness: 'event', steps: 'parallel', warmPool: pool, template: true };
    case 'cold': return { readiness: 'event', steps: 'parallel', warmPool: 0, template: true };
  }
}

function describeMode(mode: BenchMode, pool: number): string {
  const s = modeSettings(mode, pool);
  const what = mode === 'original' ? 'the original\'s sequence' : mode === 'warm' ? 'warm pool' : 'cold path';
  return `${what} (readiness ${s.readiness}, steps ${s.steps}, warm_pool ${s.warmPool}, template ${s.template})`;
}


// ---- options ----

interface Options {
  counts: number[];
  modes: BenchMode[];
  /** K: the warm mode's [zones] warm_pool. */
  pool: number;
  /** Where the sim host's (and the floor's) Propolis servers run. */
  propolis: 'process' | 'in-process';
  /** Where the sim host itself runs ([host] simulation): in a process of its own, with its Propolis servers there. */
  simulation: 'process' | 'in-process';
  host: 'sim' | 'illumos';
  config: string | null;
  seed: number;
  /** The sim host's latencies: realistic (the benchmark) or zero (a smoke run). */
  latency: 'realistic' | 'zero';
  /** N = 1: how many instances, each alone, one after another. */
  rounds: number;
  /** Runs of each event mode at OVERHEAD_TARGET_N for the overhead target, judged on their median. */
  overheadRuns: number;
  /** Sim host state writes as by default: fsynced, and waited for by each operation. */
  durable: boolean;
  /** Sim host starts each Propolis server on demand (no prestartPropolis). */
  propolisOnDemand: boolean;
  deadlineMs: number;
  outDir: string;
  subnet: string;
  warmup: boolean;
  logLevel: string;
  /** Where to write a CPU profile of the main thread for each measured run; null: none. */
  cpuProf: string | null;
  /** Guest NICs per instance, each an OPTE port and a VNIC over it. */
  nics: number;
  /** build: the benchmark and the agent's src/ compiled by tsc, as dist/ ships; tsx: through tsx's loader. */
  entry: 'build' | 'tsx';
}

function usage(problem?: string): never {
  if (problem) process.stderr.write(`bench:boot: ${problem}\n`);
  process.stderr.write(`usage: bench-boot.ts [--counts 1,10,100] [--quick] [--modes original,warm,cold] [--pool K] [--seed N] [--nics N]
                     [--rounds R] [--overhead-runs R] [--latency realistic|zero] [--simulation process|in-process] [--propolis process|in-process]
                     [--durable] [--propolis-on-demand] [--deadline SECONDS] [--out DIR] [--no-warmup] [--log-level info]
                     [--cpu-prof DIR]  (a .cpuprofile of the main thread for each measured run)
                     [--entry build|tsx]  (build: the working tree compiled by tsc into a temp dir, as dist/ is; tsx: src/ through tsx)
                     [--host sim|illumos] [--config FILE.toml] [--subnet fd00:1122:3344:101]
modes: original (poll, serial steps, no pool, zones installed), warm (events, parallel steps,
       a pool of K warm zones, template clones), cold (events, parallel steps, no pool, template clones)
env: BENCH_QUICK=1 (counts 1,10), BENCH_COUNTS=1,10,100, BENCH_SEED=N\n`);
  process.exit(2);
}

function parseOptions(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        counts: { type: 'string' },
        quick: { type: 'boolean', default: false },
        modes: { type: 'string', default: ALL_MODES.join(',') },
        pool: { type: 'string', default: '10' },
        propolis: { type: 'string', default: 'process' },
        simulation: { type: 'string', default: 'process' },
        latency: { type: 'string', default: 'realistic' },
        rounds: { type: 'string', default: '5' },
        'overhead-runs': { type: 'string', default: '5' },
        seed: { type: 'string' },
        durable: { type: 'boolean', default: false },
        'propolis-on-demand': { type: 'boolean', default: false },
        deadline: { type: 'string' },
        out: { type: 'string' },
        'no-warmup': { type: 'boolean', default: false },
        'log-level': { type: 'string', default: 'info' },
        'cpu-prof': { type: 'string' },
        host: { type: 'string', default: 'sim' },
        config: { type: 'string' },
        subnet: { type: 'string', default: 'fd00:1122:3344:101' },
        nics: { type: 'string', default: '0' },
        entry: { type: 'string', default: 'build' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  if (parsed.help) usage();
  const quick = parsed.quick || process.env.BENCH_QUICK === '1';
  const countsText = parsed.counts ?? process.env.BENCH_COUNTS?.trim() ?? (quick ? '1,10' : '1,10,100');
  const counts = countsText.split(',').map((c) => Number(c.trim()));
  if (counts.length === 0 || counts.some((c) => !Number.isInteger(c) || c < 1 || c > 1000)) usage(`--counts: integers from 1 to 1000, got "${countsText}"`);
  const modes = parsed.modes.split(',').map((m) => m.trim());
  if (modes.length === 0 || modes.some((m) => !(ALL_MODES as readonly string[]).includes(m))) usage(`--modes: any of ${ALL_MODES.join(', ')}, got "${parsed.modes}"`);
  const pool = Number(parsed.pool);
  if (!Number.isInteger(pool) || pool < 1 || pool > 64) usage(`--pool: the warm mode's warm_pool, 1 to 64, got "${parsed.pool}"`);
  const propolis = parsed.propolis;
  if (propolis !== 'process' && propolis !== 'in-process') usage(`--propolis: process or in-process, got "${propolis}"`);
  const simulation = parsed.simulation;
  if (simulation !== 'process' && simulation !== 'in-process') usage(`--simulation: process or in-process, got "${simulation}"`);
  const latency = parsed.latency;
  if (latency !== 'realistic' && latency !== 'zero') usage(`--latency: realistic or zero, got "${latency}"`);
  const rounds = Number(parsed.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) usage(`--rounds: instances at N = 1, each alone, 1 to 100, got "${parsed.rounds}"`);
  const overheadRuns = Number(parsed['overhead-runs']);
  if (!Number.isInteger(overheadRuns) || overheadRuns < 1 || overheadRuns > 20) usage(`--overhead-runs: runs of warm and cold at N = ${OVERHEAD_TARGET_N}, 1 to 20, got "${parsed['overhead-runs']}"`);
  const seedText = parsed.seed ?? process.env.BENCH_SEED ?? '1';
  const seed = Number(seedText);
  if (!Number.isInteger(seed)) usage(`--seed: an integer, got "${seedText}"`);
  const host = parsed.host;
  if (host !== 'sim' && host !== 'illumos') usage(`--host: sim or illumos, got "${host}"`);
  if (host === 'illumos' && !parsed.config) usage('--host illumos needs --config <sled-agent config.toml>');
  if (host === 'sim' && parsed.config) usage('--config is for --host illumos (the sim run builds its own config)');
  const deadlineS = parsed.deadline === undefined ? (host === 'illumos' ? 1800 : 180) : Number(parsed.deadline);
  if (!(deadlineS > 0)) usage(`--deadline: seconds > 0, got "${parsed.deadline}"`);
  if (!/^[0-9a-fA-F:]+$/.test(parsed.subnet) || parsed.subnet.endsWith(':')) usage(`--subnet: the first 64 bits of an IPv6 /64, e.g. fd00:1122:3344:101`);
  const nics = Number(parsed.nics);
  if (!Number.isInteger(nics) || nics < 0 || nics > 8) usage(`--nics: guest NICs per instance, 0 to 8, got "${parsed.nics}"`);
  const entry = parsed.entry;
  if (entry !== 'build' && entry !== 'tsx') usage(`--entry: build or tsx, got "${entry}"`);
  return {
    entry,
    nics,
    counts,
    modes: ALL_MODES.filter((m) => modes.includes(m)),
    pool,
    propolis,
    simulation,
    latency,
    rounds,
    overheadRuns,
    host,
    config: parsed.config ?? null,
    seed,
    durable: parsed.durable,
    propolisOnDemand: parsed['propolis-on-demand'],
    deadlineMs: deadlineS * 1000,
    outDir: resolve(parsed.out ?? join(ROOT, 'results', 'boot')),
    subnet: parsed.subnet,
    warmup: !parsed['no-warmup'],
    logLevel: parsed['log-level'],
    cpuProf: parsed['cpu-prof'] === undefined ? null : resolve(parsed['cpu-prof']),
  };
}

// ---- one run ----

interface InstanceResult {
  id: string;
  zone: string;
  /** 'pool': it took a warm zone from the pool (its phases include 'pool'); 'own': its zone was made for it. */
  start: 'pool' | 'own';
  putStatus: number | null;
  error: string | null;
  /** PUT round trip as the client saw it, ms. */
  putMs: number | null;
  /** PUT sent -> Nexus received running, ms; null if it never did. */
  totalMs: number | null;
  /** The union of the latencies the sim drew for it within PUT -> running, ms. */
  modelledMs: number | null;
  overheadMs: number | null;
  /** Of the modelled time: the VM's boot (waited out through Propolis, not in a host call), ms. */
  vmBootMs: number | null;
  /** Time during which a host call for this instance (its zone, its VNICs) was under way, ms. */
  hostCallMs: number | null;
  /** Of "accept" (PUT sent -> first phase): time during which an instances.json commit was being written, ms. */
  ledgerInAcceptMs: number | null;
  /** Of the overhead: in host calls beyond the latencies modelled in them (the sim's own work, a busy event loop). */
  inHostOverheadMs: number | null;
  /** Of the overhead: outside host calls and the VM's boot (the agent: HTTP, ledger, Propolis and Nexus calls). */
  outsideHostOverheadMs: number | null;
  /** Its HTTP floor in the run's replay (set by floorReplay), ms; null without one. */
  floorMs?: number | null;
  /** The states Nexus received for it in the replay, in order (set by floorReplay; ReplayFloor.sameReports counts those equal to the run's). */
  floorNexusStates?: string[] | null;
  /** Critical-path segments: phase starts sorted by time, each lasting until the next. */
  segments: Partial<Record<Segment, number>>;
  modelledBySegment: Partial<Record<Segment, number>> | null;
  /** Phase starts and Nexus states, ms after the PUT was sent. */
  marks: Record<string, number>;
  /** Each modelled latency drawn for it in PUT -> running (only for the first DRAWS_KEPT instances of a run, to keep the JSON small). */
  draws: Array<{ op: string; ms: number; atMs: number }> | null;
}

interface SegmentStats {
  /** Instances that went through it. */
  count: number;
  measured: Stats | null;
  modelled: Stats | null;
  overhead: Stats | null;
}

type PoolCounts = { target: number; ready: number; warming: number };

/** The warm pool during a run. */
interface PoolReport {
  target: number;
  /** Agent start -> pool.ready() before the clock (template made, K zones booted), ms. */
  fillMs: number | null;
  /** At N = 1: waiting for the pool to refill between rounds (not on the clock), ms. */
  waitedMs: number;
  atStart: PoolCounts | null;
  atEnd: PoolCounts | null;
  /** Sampled every POOL_SAMPLE_MS while the clock ran. */
  minReady: number | null;
  maxWarming: number | null;
  /** Zones the pool made (cloned or installed) while the clock ran and that no instance of the run got, and their host time. */
  zonesMade: number;
  zonesMadeHostMs: number;
}

interface RunResult {
  mode: BenchMode;
  settings: ModeSettings;
  n: number;
  ok: boolean;
  problems: string[];
  notes: string[];
  wallMs: number;
  total: Stats | null;
  modelled: Stats | null;
  overhead: Stats | null;
  /** The overhead split: in host calls beyond modelled, and outside host calls. */
  inHostOverhead: Stats | null;
  outsideHostOverhead: Stats | null;
  /** Time in host calls (illumos: real zone/link/SMF time) and outside them (the agent, Propolis, the VM's boot). */
  hostCall: Stats | null;
  outsideHost: Stats | null;
  /** Totals of the instances that got a pool zone and of those whose zone was made for them. */
  byStart: { pool: Stats | null; own: Stats | null };
  pool: PoolReport | null;
  segments: Record<Segment, SegmentStats>;
  ledger: { commits: number; commitMs: Stats | null; fsyncs: number; fsyncMs: Stats | null; fsyncTotalMs: number; inAccept: Stats | null; overheadWithoutAcceptLedger: Stats | null };
  mainThread: { cpuMs: number | null; cpuMsPerInstance: number | null; eventLoopUtilization: number; eventLoopDelayP99Ms: number; eventLoopDelayMaxMs: number };
  instances: InstanceResult[];
}

/**
 * Guest NICs of instance `i` in one VPC (172.30.0.0/16, Nexus's default rules): NIC k of every
 * instance in its own /20, so addresses and (VNI, MAC) pairs are unique on the sled.
 */
function guestNics(i: number, count: number): { nics: unknown[]; firewall_rules: unknown[] } {
  const j = i + 2; // past the network address and the gateway
  const nics = Array.from({ length: count }, (_, k) => ({
    name: `net${k}`, ip: `172.30.${k * 16 + (j >> 8)}.${j & 255}`,
    mac: `A8:40:25:F${k}:${((j >> 8) & 255).toString(16).padStart(2, '0')}:${(j & 255).toString(16).padStart(2, '0')}`,
    subnet: '172.30.0.0/16', vni: 1024, primary: k === 0, slot: k,
  }));
  return { nics, firewall_rules: count === 0 ? [] : defaultVpcRules(['172.30.0.0/16']) };
}

function instanceBody(i: number, subnet: string, config: AgentConfig, nicCount = 0): { id: string; propolisId: string; body: string } {
  const id = randomUUID();
  const propolisId = randomUUID();
  const runtime = {
    run_state: 'creating',
    sled_id: config.id,
    propolis_id: propolisId,
    dst_propolis_id: null,
    propolis_addr: formatSocketAddr({ host: `${subnet}::${(0x100 + i).toString(16)}`, port: config.instances.propolis_port }),
    migration_id: null,
    ncpus: 2,
    memory: 1024 ** 3,
    hostname: `bench-${i}`,
    gen: 1,
    time_updated: new Date().toISOString(),
  };
  const body = {
    initial: { runtime, ...guestNics(i, nicCount), disks: [], cloud_init_bytes: null },
    target: { run_state: 'running', migration_params: null },
    migrate: null,
  };
  return { id, propolisId, body: JSON.stringify(body) };
}

// ---- the HTTP floor ----

/** A simulated Propolis server for the floor. */
interface FloorServer {
  address: SocketAddr;
  close(): Promise<void>;
}

/** Where the floor's simulated Propolis servers run: where the agent's do. */
interface FloorPropolis {
  where: 'in-process' | 'process';
  start(latencies: { vmBoot: number; vmStep: number }): Promise<FloorServer>;
  close(): Promise<void>;
}

function inProcessFloorPropolis(): FloorPropolis {
  return {
    where: 'in-process',
    start: (latencies) => SimPropolis.start({ latencies }),
    close: async () => {},
  };
}

/** The HTTP floor: the wire contract's critical path with no agent in it (see transportFloor). */
interface FloorResult {
  /** Instances provisioned one after another, each alone (as at N = 1). */
  samples: number;
  /** PUT sent -> Nexus receives running, less the stand-in host wait and the VM's modelled boot. */
  floor: Stats | null;
  problems: string[];
}

/** One instance for the stand-in: how long after its PUT it reaches Propolis, and its VM's boot. */
interface FloorSpec {
  gapMs: number;
  vmBootMs: number;
}

/** Idle time standing in for the host steps before the Propolis phase (the connections go cold as in a real run). */
const FLOOR_GAP_MS = 50;
const FLOOR_SAMPLES = 12;
/** The pool's counts are sampled this often while a run's clock runs. */
const POOL_SAMPLE_MS = 20;

/**
 * The part of the overhead no agent can avoid on this machine: the HTTP exchanges the wire
 * contract puts on every instance's critical path, with the same libraries and servers as the
 * real run and nothing else. A bare fastify app stands in for the agent: it answers each PUT at
 * once, waits the spec's gapMs (the host steps), then does what the agent does on the wire and
 * no more: a new PropolisClient to a prestarted simulated Propolis (whose VM boots in the spec's
 * vmBootMs; in the same process as the agent's were, or in a farm process), PUT /instance, PUT
 * /instance/state Run, the state-monitor long polls until Running (and the next one, left
 * pending), and NexusClient's PUT to the same Nexus recorder of each state they saw but
 * Creating, in order: `starting`, then `running`, as the agent reports every state Propolis
 * reports. No ledger, state machine, host or logging.
 * floor = (Nexus receives running - PUT sent) - the gap as it really lasted - the VM's boot.
 * Each batch's instances go at once (the driver's concurrent PUTs); batches one after another.
 * Returns the floors in the order of the specs.
 */
async function transportFloor(driver: Driver, propolisServers: FloorPropolis, latencies: SimLatencies, deadlineMs: number, batches: FloorSpec[][]): Promise<{ floors: Array<Array<number | null>>; nexusStates: Array<Array<string[] | null>>; problems: string[] }> {
  const problems: string[] = [];
  const nexus = await driver.startNexus();
  const nexusClient = new NexusClient(nexus);
  const config = { id: SLED_ID, instances: { propolis_port: 12400 } } as AgentConfig;
  const app = Fastify({ logger: false });
  const work = new Map<string, { spec: FloorSpec; server: FloorServer; gap: number | null; done: Promise<void> | null }>();
  const flow = async (id: string, body: { initial: { runtime: InstanceRuntimeState } }, acceptedAt: bigint) => {
    const w = work.get(id)!;
    await new Promise((r) => setTimeout(r, w.spec.gapMs));
    w.gap = ms(process.hrtime.bigint() - acceptedAt);
    const propolis = new PropolisClient(formatSocketAddr(w.server.address));
    const pending = new AbortController();
    try {
      const runtime = body.initial.runtime;
      await propolis.ensure({
        properties: { id, name: runtime.hostname, description: id, image_id: id, bootrom_id: id, memory: 1024, vcpus: runtime.ncpus },
        nics: [], disks: [], migrate: null, cloud_init_bytes: null,
      });
      await propolis.putState('Run');
      await monitorAndReport(propolis, { ...runtime, run_state: 'starting', gen: runtime.gen + 1 }, (state) => nexusClient.instancePut(id, state), pending.signal);
    } finally {
      pending.abort();
      await propolis.close();
    }
  };
  app.put<{ Params: { id: string } }>('/instances/:id', async (request) => {
    const acceptedAt = process.hrtime.bigint();
    const { id } = request.params;
    const body = request.body as { initial: { runtime: InstanceRuntimeState } };
    const w = work.get(id);
    if (w !== undefined) {
      w.done = flow(id, body, acceptedAt).catch((err: unknown) => {
        problems.push(`floor instance ${id}: ${(err as Error).message}`);
      });
    }
    return { ...body.initial.runtime, run_state: 'starting' };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the floor stand-in has no TCP address');
  const servers: FloorServer[] = [];
  try {
    const floors: Array<Array<number | null>> = [];
    const nexusStates: Array<Array<string[] | null>> = [];
    for (const batch of batches) {
      const bodies = batch.map((_, i) => instanceBody(i, 'fd00:1122:3344:101', config));
      await Promise.all(batch.map(async (spec, i) => {
        // Prestarted and warmed as SimHost.prestartPropolis does.
        const server = await propolisServers.start({ vmBoot: spec.vmBootMs, vmStep: latencies.vmStep });
        servers.push(server);
        await fetch(`http://${formatSocketAddr(server.address)}/instance`).then((r) => r.arrayBuffer(), () => {});
        work.set(bodies[i]!.id, { spec, server, gap: null, done: null });
      }));
      // As in a run: Nexus's connections open, and the stand-in done with them, before the PUTs.
      await driver.connect(`127.0.0.1:${address.port}`, batch.length);
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const { results, timedOut } = await driver.go(bodies.map(({ id, body }) => ({ id, body })), deadlineMs);
      await driver.disconnect();
      await Promise.all(bodies.map(({ id }) => work.get(id)!.done));
      if (timedOut) problems.push(`floor: not every instance reached Nexus within ${deadlineMs / 1000} s`);
      floors.push(bodies.map(({ id }, i) => {
        // The recorder reports every instance it has seen since it started: take this one.
        const r = results.find((x) => x.id === id);
        const gap = work.get(id)!.gap;
        return r?.states.running === undefined || gap === null ? null : ms(r.states.running - r.putAt) - gap - batch[i]!.vmBootMs;
      }));
      nexusStates.push(bodies.map(({ id }) => {
        const r = results.find((x) => x.id === id);
        return r === undefined ? null : Object.entries(r.states).sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([state]) => state);
      }));
    }
    return { floors, nexusStates, problems };
  } finally {
    await app.close();
    await nexusClient.close();
    await Promise.all(servers.map((s) => s.close()));
    await driver.stopNexus();
  }
}

/** The floor of one instance alone, FLOOR_SAMPLES times. */
async function floorAlone(driver: Driver, propolisServers: FloorPropolis, latencies: SimLatencies, deadlineMs: number): Promise<FloorResult> {
  const spec = { gapMs: FLOOR_GAP_MS, vmBootMs: latencies.vmBoot };
  const { floors, problems } = await transportFloor(driver, propolisServers, latencies, deadlineMs, Array.from({ length: FLOOR_SAMPLES }, () => [spec]));
  return { samples: FLOOR_SAMPLES, floor: stats(floors.flat().filter((f): f is number => f !== null)), problems };
}

/**
 * The floor under a run's own timing: every instance of the run, sent as in the run, each
 * reaching the Propolis phase as long after acceptance as it did in the run and its VM booting
 * as long as the sim drew. What the run's overhead has above this is the agent's (and the sim
 * host's) own work, queueing included.
 */
async function floorReplay(run: RunResult, driver: Driver, propolisServers: FloorPropolis, latencies: SimLatencies, deadlineMs: number): Promise<ReplayFloor | null> {
  const done = run.instances.filter((i) => i.totalMs !== null && i.marks['phase:propolis'] !== undefined && i.overheadMs !== null);
  if (done.length === 0) return null;
  const specs = done.map((i) => ({
    gapMs: Math.max(0, i.marks['phase:propolis']! - (i.segments.accept ?? 0)),
    vmBootMs: i.vmBootMs ?? latencies.vmBoot,
  }));
  // As the run sent them: N at once, or (N = 1) one after another.
  const { floors, nexusStates, problems } = await transportFloor(driver, propolisServers, latencies, deadlineMs, run.n === 1 ? specs.map((spec) => [spec]) : [specs]);
  const flat = floors.flat();
  const flatStates = nexusStates.flat();
  done.forEach((i, k) => {
    i.floorMs = flat[k] ?? null;
    i.floorNexusStates = flatStates[k] ?? null;
  });
  // The floor stands for the agent's exchanges. Which states a monitor sees is a race at zero
  // latency (a VM may be Running by the first long poll), so a difference is counted, not refused.
  const sameReports = done.filter((i) => nexusStatesOf(i).join() === (i.floorNexusStates ?? []).join()).length;
  const pairs = done.map((i, k) => ({ overhead: i.overheadMs!, outside: i.outsideHostOverheadMs, floor: flat[k] ?? null }))
    .filter((p): p is { overhead: number; outside: number | null; floor: number } => p.floor !== null);
  return {
    mode: run.mode,
    n: run.n,
    floor: stats(pairs.map((p) => p.floor)),
    aboveFloor: stats(pairs.map((p) => p.overhead - p.floor)),
    outsideHostAboveFloor: stats(pairs.filter((p) => p.outside !== null).map((p) => p.outside! - p.floor)),
    sameReports,
    replayed: done.length,
    problems,
  };
}

/** The states Nexus received for an instance in the run, in order. */
function nexusStatesOf(i: InstanceResult): string[] {
  return Object.entries(i.marks).filter(([m]) => m.startsWith('nexus:')).sort(([, a], [, b]) => a - b).map(([m]) => m.slice('nexus:'.length));
}

interface ReplayFloor {
  mode: BenchMode;
  n: number;
  /** The floor of each instance under the run's timing. */
  floor: Stats | null;
  /** Per instance: its overhead in the run less its floor in the replay. */
  aboveFloor: Stats | null;
  /**
   * Per instance: its overhead outside host calls less its floor (the N = 100 target). It leaves
   * out the sim host's own error in realising its latencies (its timers fire up to ~1 ms early
   * or late, several per instance), but also, at N = 100, the time host calls spend waiting for
   * the busy event loop, part of which is the agent's.
   */
  outsideHostAboveFloor: Stats | null;
  /** Of the `replayed` instances, those for which Nexus got the same states, in order, from the floor as from the agent. */
  sameReports: number;
  replayed: number;
  problems: string[];
}

// ---- the agent under test ----

interface RunSetup {
  mode: BenchMode;
  n: number;
  options: Options;
  driver: Driver;
  latencies: SimLatencies;
  jitter: number;
  /** Where the sim host runs its Propolis servers. */
  propolis: 'process' | 'in-process';
  quiet?: boolean;
  /** N = 1 only: how many instances, each alone, one after another (default 1). */
  rounds?: number;
}

/** What the benchmark reads of the simulated host: the latencies it drew, and its Propolis servers started ahead. */
interface BenchSim {
  modelled(zone: string): Promise<DrawnLatency[]>;
  prestartPropolis(count: number): Promise<void>;
}

async function openBenchHost(setup: RunSetup, config: AgentConfig, log: Logger): Promise<{ host: Host; sim: BenchSim | null }> {
  if (setup.options.host === 'sim') {
    const size = BigInt(config.host.pool_size);
    const options: Omit<SimHostOptions, 'propolis' | 'logger'> = {
      stateDir: config.host.state_dir,
      links: config.host.links,
      pools: [{ name: 'rpool', size }, ...config.zpools.map((name) => ({ name, size }))],
      latencies: setup.latencies,
      jitter: setup.jitter,
      seed: setup.options.seed,
      ...(setup.options.durable ? {} : { durable: false, writeBehindMs: SIM_WRITE_BEHIND_MS }),
      recordLatencies: true,
    };
    const prestart = async (sim: BenchSim): Promise<void> => {
      if (setup.options.propolisOnDemand) return;
      // One per instance and, warm, one per pool zone before the clock and as many again for the refill.
      const settings = modeSettings(setup.mode, setup.options.pool);
      const instances = setup.n * (setup.n === 1 ? setup.rounds ?? 1 : 1);
      await sim.prestartPropolis(instances + 2 * settings.warmPool);
    };
    if (setup.options.simulation === 'process') {
      // The simulated host and its Propolis servers in a process of their own, as the kernel and
      // a sled's daemons are not the agent's. Fatal lines only: its logging is not the agent's,
      // and its servers' warm-up requests are expected 500s, an error line each.
      const remote = await RemoteSimHost.start({ ...options, propolis: 'in-process', logLevel: 'fatal' }, log);
      await prestart(remote);
      return { host: remote, sim: remote };
    }
    // The simulated host and its Propolis servers log warnings only: their logging is not the
    // agent's. In a farm process the servers log at the host's level to this process's stderr,
    // where a warm-up request's expected 500 would be an error line per server: fatal only there.
    const simLog = log.child({ component: 'sim-host' }, { level: setup.propolis === 'process' ? 'fatal' : 'warn' });
    const sim = await SimHost.open({ ...options, propolis: setup.propolis, logger: simLog });
    const bench: BenchSim = { modelled: async (zone) => sim.modelled(zone), prestartPropolis: (count) => sim.prestartPropolis(count) };
    await prestart(bench);
    return { host: sim, sim: bench };
  }
  const host = await openHost(config, log);
  // The agent about to start has empty ledgers: it would remove everything it owns as orphans.
  const zones = (await host.zones.list()).filter((z) => z.name.startsWith(ZONE_PREFIX)).map((z) => z.name);
  const vnics = (await host.links.listVnics()).filter((v) => /^(ox|vopte)/.test(v.name)).map((v) => v.name);
  if (zones.length > 0 || vnics.length > 0) {
    await host.close();
    throw new Error(`this host has agent-owned zones (${zones.join(', ') || 'none'}) or VNICs (${vnics.join(', ') || 'none'}); `
      + 'the benchmark\'s agent starts with empty ledgers and would remove them as orphans. Run it on a sled with no sled agent '
      + 'and none of those left.');
  }
  return { host, sim: null };
}

function agentConfig(setup: RunSetup, dir: string, nexus: string): AgentConfig {
  const { options, mode } = setup;
  const s = modeSettings(mode, options.pool);
  if (options.host === 'illumos') {
    const config = loadAgentConfigFile(options.config!);
    config.host.backend = 'illumos';
    config.nexus_address = nexus;
    // Fresh ledgers in a temp dir; the API on the configured address, any free port.
    config.data_dir = join(dir, 'var-oxide');
    config.updates.artifact_dir = join(dir, 'artifacts');
    config.dropshot.bind_address = formatSocketAddr({ ...parseSocketAddr(config.dropshot.bind_address), port: 0 });
    config.instances.readiness = s.readiness;
    config.instances.steps = s.steps;
    config.zones.warm_pool = s.warmPool;
    config.zones.template = s.template;
    config.zones.ready_timeout_ms = Math.max(config.zones.ready_timeout_ms, options.deadlineMs);
    return config;
  }
  return checkAgentConfig({
    id: SLED_ID,
    nexus_address: nexus,
    zpools: [POOL],
    underlay_address: `${options.subnet}::1`,
    data_dir: join(dir, 'var-oxide'),
    dropshot: { bind_address: '127.0.0.1:0' },
    log: { level: options.logLevel },
    host: { backend: 'sim', state_dir: join(dir, 'sim-host'), latency: options.latency, propolis: setup.propolis },
    zones: { ready_timeout_ms: options.deadlineMs, warm_pool: s.warmPool, template: s.template },
    instances: { readiness: s.readiness, steps: s.steps },
    updates: { artifact_dir: join(dir, 'artifacts') },
    nexus: { timeout_ms: 10_000, backoff_initial_ms: 50, backoff_max_ms: 1_000 },
  }, 'bench-boot');
}

/** `p`, or a rejection after `ms` saying `what`. */
function withDeadline<T>(p: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${deadlineMs / 1000} s`)), deadlineMs); }),
  ]).finally(() => clearTimeout(timer));
}

const VM_STEPS = new Set(['vmBoot', 'vmStep']);

async function run(setup: RunSetup): Promise<RunResult> {
  const { mode, n, options, driver } = setup;
  const settings = modeSettings(mode, options.pool);
  const label = `[${mode} N=${n}]`;
  const say = (line: string) => {
    if (!setup.quiet) console.log(`${label} ${line}`);
  };
  const dir = mkdtempSync(join(tmpdir(), 'bench-boot-'));
  const logDest = pino.destination({ dest: join(dir, 'agent.log'), sync: false, mkdir: true });
  const log = pino({ name: 'sled-agent', level: options.logLevel, timestamp: pino.stdTimeFunctions.isoTime }, logDest);
  const problems: string[] = [];
  const notes: string[] = [];
  let running: RunningAgent | null = null;
  let host: Host | null = null;
  let nexusUp = false;
  let progress: NodeJS.Timeout | null = null;
  let sampler: NodeJS.Timeout | null = null;
  try {
    const nexus = await driver.startNexus();
    nexusUp = true;
    const config = agentConfig(setup, dir, nexus);
    const opened = await openBenchHost(setup, config, log);
    host = opened.host;
    const sim = opened.sim;

    const phases = new Map<string, Map<Phase | 'running', bigint>>();
    const onPhase = (id: string, phase: Phase | 'running') => {
      let m = phases.get(id);
      if (!m) phases.set(id, (m = new Map()));
      if (!m.has(phase)) m.set(phase, process.hrtime.bigint());
    };
    const calls: HostCall[] = [];
    const agentStartedAt = process.hrtime.bigint();
    running = await startAgent(config, timedHost(host, calls), log, { onPhase });
    const agent = running.agent;
    await running.registered;
    await agent.storage.start();

    // The pool: filled (and the template made) before the clock starts.
    const usesPool = settings.warmPool > 0 || settings.template;
    const pool = usesPool ? agent.pool : null;
    const waitPool = async (): Promise<number> => {
      if (pool === null) return 0;
      const t = process.hrtime.bigint();
      try {
        await withDeadline(pool.ready(), options.deadlineMs, 'the warm pool was not ready');
      } catch (err) {
        problems.push((err as Error).message);
      }
      return ms(process.hrtime.bigint() - t);
    };
    let poolReport: PoolReport | null = null;
    if (pool !== null) {
      await waitPool();
      const fillMs = ms(process.hrtime.bigint() - agentStartedAt);
      const atStart = pool.counts();
      poolReport = { target: atStart.target, fillMs: round(fillMs), waitedMs: 0, atStart, atEnd: null, minReady: null, maxWarming: null, zonesMade: 0, zonesMadeHostMs: 0 };
      say(settings.warmPool === 0
        ? `template installed ${(fillMs / 1000).toFixed(2)} s after the agent started; the clock starts now`
        : `pool ready ${(fillMs / 1000).toFixed(2)} s after the agent started (template ${settings.template ? 'made' : 'off'}, `
          + `${atStart.ready} of ${atStart.target} zones ready, ${atStart.warming} warming); the clock starts now`);
    }

    // N = 1 is one sample per instance: several instances, each alone, one after another.
    const rounds = n === 1 ? setup.rounds ?? 1 : 1;
    const total = n * rounds;
    say(`agent on ${running.address} (${host.kind} host), Nexus recorder on ${nexus}; sending ${n} PUT${n === 1 ? '' : 's'}`
      + `${rounds > 1 ? `, ${rounds} times one after another${pool !== null && settings.warmPool > 0 ? ' (the pool refilled before each)' : ''}` : ''}`);

    const bodies = Array.from({ length: total }, (_, i) => instanceBody(i, options.subnet, config, options.nics));
    // Nexus's connections, open before the clock and the CPU window, and the agent done with
    // their opening requests (their replies' hooks and log lines, which follow the replies).
    await driver.connect(dialable(running.address), n);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const commitsBefore = ledgerCommits.length;
    const fsyncsBefore = fsyncs.length;
    const cpu0 = mainThreadCpuMs();
    const elu0 = performance.eventLoopUtilization();
    const eld = monitorEventLoopDelay({ resolution: 2 });
    eld.enable();
    let profiler: Session | null = null;
    if (options.cpuProf !== null && !setup.quiet) {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
      await profiler.post('Profiler.start');
    }
    const t0 = process.hrtime.bigint();
    progress = setInterval(() => {
      const counts = new Map<string, number>();
      for (const m of phases.values()) {
        const last = [...m.entries()].sort((a, b) => byTime(a[1], b[1])).at(-1)![0];
        counts.set(last, (counts.get(last) ?? 0) + 1);
      }
      const waiting = total - phases.size;
      const parts = [...(waiting > 0 ? [`not started ${waiting}`] : []), ...[...counts].map(([p, c]) => `${p} ${c}`)];
      const c = pool?.counts();
      say(`${(ms(process.hrtime.bigint() - t0) / 1000).toFixed(1)} s: ${parts.join(', ')}${c ? ` | pool ready ${c.ready}, warming ${c.warming}` : ''}`);
    }, 1000);
    let timing = false;
    if (pool !== null && poolReport !== null) {
      const report = poolReport;
      sampler = setInterval(() => {
        if (!timing) return;
        const c = pool.counts();
        report.minReady = Math.min(report.minReady ?? Infinity, c.ready);
        report.maxWarming = Math.max(report.maxWarming ?? -Infinity, c.warming);
      }, POOL_SAMPLE_MS);
    }
    calls.length = 0;
    let results: DriverResult[] = [];
    let timedOut = false;
    let waitedMs = 0;
    /** While the clock ran (not the waits for the pool between N = 1 rounds). */
    const clocked: Array<readonly [bigint, bigint]> = [];
    for (let round = 0; round < rounds && !timedOut; round++) {
      if (round > 0 && pool !== null && settings.warmPool > 0) waitedMs += await waitPool();
      const batch = bodies.slice(round * n, (round + 1) * n);
      timing = true;
      const roundStart = process.hrtime.bigint();
      // The recorder answers with every instance it has seen since it started.
      ({ results, timedOut } = await driver.go(batch.map(({ id, body }) => ({ id, body })), options.deadlineMs));
      clocked.push([roundStart, process.hrtime.bigint()]);
      timing = false;
    }
    const tEnd = process.hrtime.bigint();
    await driver.disconnect();
    const wallMs = ms(tEnd - t0) - waitedMs;
    clearInterval(progress);
    progress = null;
    if (sampler !== null) clearInterval(sampler);
    sampler = null;
    eld.disable();
    const elu = performance.eventLoopUtilization(elu0);
    const cpu1 = mainThreadCpuMs();
    if (profiler !== null) {
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      mkdirSync(options.cpuProf!, { recursive: true });
      const file = join(options.cpuProf!, `boot-${mode}-N${n}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      say(`CPU profile of the run: ${file}`);
    }

    // Fetched before the map below (a host in its own process answers asynchronously).
    const zoneOf = (id: string): string => agent.instances.get(id)?.zone ?? `${ZONE_PREFIX}propolis-server_${bodies.find((b) => b.id === id)?.propolisId ?? '?'}`;
    const drawnByZone = new Map<string, DrawnLatency[]>();
    if (sim !== null) {
      for (const r of results) {
        const zone = zoneOf(r.id);
        if (!drawnByZone.has(zone)) drawnByZone.set(zone, await sim.modelled(zone));
      }
    }
    const instances: InstanceResult[] = results.map((r) => {
      const instance = agent.instances.get(r.id);
      const zone = zoneOf(r.id);
      const marks = phases.get(r.id) ?? new Map<Phase | 'running', bigint>();
      const runningAt = r.states.running ?? null;
      const rel = (t: bigint) => ms(t - r.putAt);
      const markOut: Record<string, number> = {};
      for (const [p, t] of [...marks].sort((a, b) => byTime(a[1], b[1]))) markOut[`phase:${p}`] = round(rel(t));
      for (const [s, t] of Object.entries(r.states)) markOut[`nexus:${s}`] = round(rel(t));
      // Boundaries by time: PUT sent, each phase's start, Nexus receiving running. With parallel
      // steps phases overlap; each segment lasts until the next start (the critical path).
      const bounds: Array<{ seg: Segment; at: bigint; end: bigint }> = [{ seg: 'accept', at: r.putAt, end: r.putAt }];
      for (const p of PHASES) {
        const at = marks.get(p);
        if (at !== undefined) bounds.push({ seg: p, at, end: at });
      }
      bounds.sort((a, b) => byTime(a.at, b.at));
      const segments: Partial<Record<Segment, number>> = {};
      if (runningAt !== null) {
        for (let i = 0; i < bounds.length; i++) {
          bounds[i]!.end = i + 1 < bounds.length ? bounds[i + 1]!.at : runningAt;
          segments[bounds[i]!.seg] = round(ms(bounds[i]!.end - bounds[i]!.at));
        }
      }
      const totalMs = runningAt === null ? null : ms(runningAt - r.putAt);
      let modelledMs: number | null = null;
      let vmBootMs: number | null = null;
      let modelledBySegment: Partial<Record<Segment, number>> | null = null;
      let draws: InstanceResult['draws'] = null;
      let vmIntervals: Array<readonly [bigint, bigint]> = [];
      if (sim !== null && runningAt !== null) {
        // Each draw is waited out from when it was drawn; parallel steps overlap, and a pool
        // zone's draws before the PUT are the pool's, not this start's: the union within PUT -> running.
        const drawn = drawnByZone.get(zone) ?? [];
        const interval = (d: { at: bigint; ms: number }) => [d.at, d.at + BigInt(Math.round(d.ms * 1e6))] as const;
        const intervals = drawn.map(interval);
        vmIntervals = drawn.filter((d) => VM_STEPS.has(d.step)).map(interval);
        modelledMs = coveredMs(intervals, r.putAt, runningAt);
        vmBootMs = round(coveredMs(vmIntervals, r.putAt, runningAt));
        modelledBySegment = {};
        for (const b of bounds) modelledBySegment[b.seg] = round(coveredMs(intervals, b.at, b.end));
        if (results.indexOf(r) < DRAWS_KEPT) {
          draws = drawn.filter((d) => d.at >= r.putAt && d.at <= runningAt).map((d) => ({ op: d.op, ms: round(d.ms), atMs: round(rel(d.at)) }));
        }
      }
      let hostCallMs: number | null = null;
      let inHost: number | null = null;
      let outside: number | null = null;
      if (runningAt !== null) {
        const keys = new Set([zone, ...(instance?.vnics ?? [])]);
        const mine = calls.filter((c) => c.key !== null && keys.has(c.key)).map((c) => [c.start, c.end] as const);
        hostCallMs = coveredMs(mine, r.putAt, runningAt);
        if (modelledMs !== null) {
          // The VM's boot is modelled but waited out through Propolis, not in a host call.
          outside = totalMs! - coveredMs([...mine, ...vmIntervals], r.putAt, runningAt);
          inHost = totalMs! - modelledMs - outside;
        }
      }
      const acceptEnd = runningAt === null ? (bounds[1]?.at ?? null) : bounds[0]!.end;
      const ledgerInAcceptMs = acceptEnd === null || acceptEnd === r.putAt ? null : coveredMs(ledgerCommits
        .filter((c) => c.path.endsWith('instances.json'))
        .map((c) => [c.start, c.end] as const), r.putAt, acceptEnd);
      return {
        id: r.id,
        zone,
        start: marks.has('pool') ? 'pool' : 'own',
        ledgerInAcceptMs: ledgerInAcceptMs === null ? null : round(ledgerInAcceptMs),
        putStatus: r.putStatus,
        error: r.putError,
        putMs: r.putDoneAt === null ? null : round(ms(r.putDoneAt - r.putAt)),
        totalMs: totalMs === null ? null : round(totalMs),
        modelledMs: modelledMs === null ? null : round(modelledMs),
        overheadMs: totalMs === null || modelledMs === null ? null : round(totalMs - modelledMs),
        vmBootMs,
        hostCallMs: hostCallMs === null ? null : round(hostCallMs),
        inHostOverheadMs: inHost === null ? null : round(inHost),
        outsideHostOverheadMs: outside === null ? null : round(outside),
        segments,
        modelledBySegment,
        marks: markOut,
        draws,
      };
    });

    const missing = instances.filter((i) => i.totalMs === null);
    if (timedOut || missing.length > 0) {
      problems.push(`${missing.length} of ${total} instance(s) did not reach running at Nexus within ${options.deadlineMs / 1000} s`);
      for (const i of missing.slice(0, 10)) {
        const lastPhase = Object.keys(i.marks).filter((k) => k.startsWith('phase:')).at(-1) ?? '(no phase started)';
        const lastNexus = Object.keys(i.marks).filter((k) => k.startsWith('nexus:')).at(-1) ?? '(nothing at Nexus)';
        problems.push(`  instance ${i.id}: PUT ${i.error ?? i.putStatus ?? 'no answer'}, last phase ${lastPhase}, last at Nexus ${lastNexus}`);
      }
    }
    for (const i of instances) {
      if (i.error !== null && i.totalMs !== null) problems.push(`instance ${i.id}: PUT failed (${i.error}) yet it ran`);
    }

    if (poolReport !== null && pool !== null) {
      // The refill: zones the pool began to clone or install while the clock ran that no
      // instance of the run got, and the time their host calls were under way on the clock.
      const instanceZones = new Set(instances.map((i) => i.zone));
      const onClock = (t: bigint) => clocked.some(([a, b]) => t >= a && t <= b);
      const refill = new Map<string, Array<readonly [bigint, bigint]>>();
      const made = new Set<string>();
      for (const c of calls) {
        if (c.key === null || !c.key.startsWith(ZONE_PREFIX) || instanceZones.has(c.key)) continue;
        refill.set(c.key, [...(refill.get(c.key) ?? []), [c.start, c.end] as const]);
        if ((c.op === 'zones.clone' || c.op === 'zones.install') && onClock(c.start)) made.add(c.key);
      }
      poolReport.zonesMade = made.size;
      poolReport.zonesMadeHostMs = round([...made].reduce((a, z) => a + clocked.reduce((b, [from, to]) => b + coveredMs(refill.get(z) ?? [], from, to), 0), 0));
      poolReport.waitedMs = round(waitedMs);
      poolReport.atEnd = pool.counts();
    }

    const done = instances.filter((i) => i.totalMs !== null);
    const segStats = Object.fromEntries(SEGMENTS.map((seg) => {
      const through = done.filter((i) => i.segments[seg] !== undefined);
      const measured = through.map((i) => i.segments[seg]!);
      const modelled = sim === null ? [] : through.map((i) => i.modelledBySegment?.[seg] ?? 0);
      const overhead = sim === null ? [] : through.map((i) => i.segments[seg]! - (i.modelledBySegment?.[seg] ?? 0));
      return [seg, { count: through.length, measured: stats(measured), modelled: stats(modelled), overhead: stats(overhead) }];
    })) as Record<Segment, SegmentStats>;
    const commits = ledgerCommits.slice(commitsBefore).filter((c) => c.path.endsWith('instances.json'));
    const runFsyncs = fsyncs.slice(fsyncsBefore);
    const result: RunResult = {
      mode,
      settings,
      n,
      ok: problems.length === 0,
      problems,
      notes,
      wallMs: round(wallMs),
      total: stats(done.map((i) => i.totalMs!)),
      modelled: sim === null ? null : stats(done.map((i) => i.modelledMs!)),
      overhead: sim === null ? null : stats(done.map((i) => i.overheadMs!)),
      inHostOverhead: sim === null ? null : stats(done.map((i) => i.inHostOverheadMs!)),
      outsideHostOverhead: sim === null ? null : stats(done.map((i) => i.outsideHostOverheadMs!)),
      hostCall: stats(done.map((i) => i.hostCallMs!)),
      outsideHost: stats(done.map((i) => i.totalMs! - i.hostCallMs!)),
      byStart: {
        pool: stats(done.filter((i) => i.start === 'pool').map((i) => i.totalMs!)),
        own: stats(done.filter((i) => i.start === 'own').map((i) => i.totalMs!)),
      },
      pool: poolReport,
      segments: segStats,
      ledger: {
        commits: commits.length,
        commitMs: stats(commits.map((c) => c.ms)),
        fsyncs: runFsyncs.length,
        fsyncMs: stats(runFsyncs),
        fsyncTotalMs: round(runFsyncs.reduce((a, b) => a + b, 0)),
        inAccept: stats(done.filter((i) => i.ledgerInAcceptMs !== null).map((i) => i.ledgerInAcceptMs!)),
        overheadWithoutAcceptLedger: sim === null ? null : stats(done.map((i) => i.overheadMs! - (i.ledgerInAcceptMs ?? 0))),
      },
      mainThread: {
        cpuMs: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
        cpuMsPerInstance: cpu0 === null || cpu1 === null ? null : round((cpu1 - cpu0) / total, 2),
        eventLoopUtilization: round(elu.utilization, 4),
        eventLoopDelayP99Ms: round(eld.percentile(99) / 1e6),
        eventLoopDelayMaxMs: round(eld.max / 1e6),
      },
      instances,
    };
    say(`${done.length}/${total} running at Nexus after ${(wallMs / 1000).toFixed(2)} s${problems.length > 0 ? ' (FAILED)' : ''}`);

    if (options.host === 'illumos') {
      await destroyAll(running, instances, options.deadlineMs, say);
      await removePoolZones(running, log, say);
    }
    return result;
  } finally {
    if (progress !== null) clearInterval(progress);
    if (sampler !== null) clearInterval(sampler);
    await running?.close().catch((err: unknown) => console.error(`${label} closing the agent: ${(err as Error).message}`));
    if (running === null) await host?.close().catch(() => {});
    if (nexusUp) await driver.stopNexus();
    logDest.flushSync();
    if (process.env.BENCH_KEEP_LOG === '1') console.log(`${label} agent log kept in ${join(dir, 'agent.log')}`);
    else rmSync(dir, { recursive: true, force: true });
    // Not ended: an instance's watchers may still log as they notice the shutdown, and a write
    // to an ended destination throws. The file is gone already; its descriptor closes at exit.
  }
}

/** Where a client reaches a server bound to `address` (a wildcard bind is reached on loopback). */
function dialable(address: string): string {
  const { host, port } = parseSocketAddr(address);
  if (host === '0.0.0.0') return formatSocketAddr({ host: '127.0.0.1', port });
  if (host === '::' || /^(0+:){7}0+$/.test(host)) return formatSocketAddr({ host: '::1', port });
  return address;
}

/** illumos: the instances leave through the agent (Stop, zone halted, uninstalled, deleted, VNICs gone). */
async function destroyAll(running: RunningAgent, instances: InstanceResult[], deadlineMs: number, say: (l: string) => void): Promise<void> {
  say(`destroying ${instances.length} instance(s)`);
  const agent = running.agent;
  const base = `http://${dialable(running.address)}`;
  await Promise.all(instances.map(async (i) => {
    const inst = agent.instances.get(i.id);
    if (!inst) return;
    const body = JSON.stringify({ initial: { runtime: inst.current, nics: [], disks: [], cloud_init_bytes: null }, target: { run_state: 'destroyed', migration_params: null }, migrate: null });
    const res = await fetch(`${base}/instances/${i.id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
    await res.text();
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      agent.instances.whenGone(i.id).then(() => true),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), deadlineMs); }),
    ]);
    clearTimeout(timer);
    if (!gone) say(`instance ${i.id} (${i.zone}) was not removed within ${deadlineMs / 1000} s: remove it by hand`);
  }));
}

/**
 * illumos: the pool's zones and the template go too (the agent keeps them across its restarts,
 * but the next run's agent starts with empty ledgers and would refuse a host that has them).
 */
async function removePoolZones(running: RunningAgent, log: Logger, say: (l: string) => void): Promise<void> {
  const { pool, host } = running.agent;
  pool.close();
  const zones = [...pool.claimedZones()];
  if (zones.length === 0) return;
  say(`removing the pool's ${zones.length} zone(s) and template`);
  for (const [name, vnics] of zones) {
    await removeZone(host, name, vnics, log).catch((err: unknown) => say(`zone ${name} was not removed (${(err as Error).message}): remove it by hand`));
  }
}

// ---- report ----

const fmtS = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${(x / 1000).toFixed(2)} s`);
const fmtX = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${x.toFixed(2)}x`);

/** Totals sorted, at a few ranks: where the pool ran out shows as the step after its last zone. */
function rankedTotals(r: RunResult): string {
  const done = r.instances.filter((i) => i.totalMs !== null).sort((a, b) => a.totalMs! - b.totalMs!);
  if (done.length === 0) return '';
  const k = done.filter((i) => i.start === 'pool').length;
  const ranks = [...new Set([1, k, k + 1, Math.ceil(done.length / 2), Math.ceil(done.length * 0.9), done.length])]
    .filter((x) => x >= 1 && x <= done.length).sort((a, b) => a - b);
  return ranks.map((x) => `#${x} ${fmtMs(done[x - 1]!.totalMs)}${done[x - 1]!.start === 'pool' ? ' (pool)' : ''}`).join(', ');
}

/** `hostApart`: the sim host runs in a process of its own, so the main thread is the agent's alone. */
function printRun(r: RunResult, modelled: boolean, hostApart: boolean): void {
  console.log();
  console.log(`${r.mode}: ${describeMode(r.mode, r.settings.warmPool)}, N=${r.n}: ${r.total?.n ?? 0}/${r.instances.length} running at Nexus, wall ${(r.wallMs / 1000).toFixed(2)} s`);
  const header = ['segment (critical path)', 'n', 'p50 ms', 'p99 ms', ...(modelled ? ['modelled p50', 'overhead p50', 'overhead p99'] : [])];
  const rows = SEGMENTS.filter((s) => r.segments[s].measured !== null).map((s) => {
    const st = r.segments[s];
    return [s, String(st.count), fmtMs(st.measured?.p50), fmtMs(st.measured?.p99), ...(modelled ? [fmtMs(st.modelled?.p50), fmtMs(st.overhead?.p50), fmtMs(st.overhead?.p99)] : [])];
  });
  rows.push(['total (PUT -> Nexus running)', String(r.total?.n ?? 0), fmtMs(r.total?.p50), fmtMs(r.total?.p99),
    ...(modelled ? [fmtMs(r.modelled?.p50), fmtMs(r.overhead?.p50), fmtMs(r.overhead?.p99)] : [])]);
  printTable(header, rows);
  const ports = r.segments.ports;
  if (ports?.measured) {
    console.log(`  network steps (the NICs' OPTE ports, each opteadm run modelled at ${REALISTIC_LATENCIES.opte} ms): p50 ${fmtMs(ports.measured.p50)} ms, `
      + `p99 ${fmtMs(ports.measured.p99)} ms on the critical path${modelled ? ` (modelled p50 ${fmtMs(ports.modelled?.p50)} ms)` : ''}, `
      + `of p50 ${fmtMs(r.total?.p50)} ms in all`);
  }
  if (r.settings.warmPool > 0) {
    const pooled = r.instances.filter((i) => i.start === 'pool').length;
    console.log(`  starts: ${pooled} of ${r.instances.length} took a pool zone (total p50 ${fmtMs(r.byStart.pool?.p50)} ms, p99 ${fmtMs(r.byStart.pool?.p99)} ms), `
      + `${r.instances.length - pooled} had a zone made for them (p50 ${fmtMs(r.byStart.own?.p50)} ms, p99 ${fmtMs(r.byStart.own?.p99)} ms)`);
    console.log(`  totals sorted (rank: ms): ${rankedTotals(r)}`);
  }
  const p = r.pool;
  if (p !== null) {
    if (p.target === 0) {
      console.log(`  pool: none (warm_pool 0); the template ${r.settings.template ? `was installed ${fmtS(p.fillMs)} after the agent started, before the clock` : 'is off'}`);
    } else {
      console.log(`  pool (target ${p.target}): filled ${fmtS(p.fillMs)} after the agent started, before the clock; ready ${p.atStart?.ready ?? '-'} at the start, `
        + `while the clock ran: ready min ${p.minReady ?? '-'}, warming max ${p.maxWarming ?? '-'}; at the end ready ${p.atEnd?.ready ?? '-'}, warming ${p.atEnd?.warming ?? '-'}`);
      console.log(`  refill (it begins a second after the last start under way reached running): ${p.zonesMade} zone(s) begun while the clock ran, their host calls under way ${fmtMs(p.zonesMadeHostMs)} ms of it in all`
        + (p.waitedMs > 0 ? `; ${fmtS(p.waitedMs)} waited between the N = 1 rounds for the pool to refill, off the clock` : ''));
    }
  }
  if (modelled && r.overhead && r.settings.readiness === 'poll') {
    console.log('  overhead split: not meaningful when polling (the modelled waits pass between polls, outside host calls)');
  } else if (modelled && r.overhead) {
    console.log(`  overhead split: in host calls beyond their modelled latency p50 ${fmtMs(r.inHostOverhead?.p50)} ms, p99 ${fmtMs(r.inHostOverhead?.p99)} ms; `
      + `outside host calls (agent, Propolis, Nexus) p50 ${fmtMs(r.outsideHostOverhead?.p50)} ms, p99 ${fmtMs(r.outsideHostOverhead?.p99)} ms`);
  } else {
    console.log(`  in host calls p50 ${fmtMs(r.hostCall?.p50)} ms, p99 ${fmtMs(r.hostCall?.p99)} ms; outside host calls (agent, Propolis incl. the guest's boot, Nexus) `
      + `p50 ${fmtMs(r.outsideHost?.p50)} ms, p99 ${fmtMs(r.outsideHost?.p99)} ms`);
  }
  const l = r.ledger;
  console.log(`  agent ledger (instances.json): ${l.commits} commits, call-to-durable p50 ${fmtMs(l.commitMs?.p50)} ms, p99 ${fmtMs(l.commitMs?.p99)} ms; `
    + `fsyncs ${l.fsyncs}, p50 ${fmtMs(l.fsyncMs?.p50)} ms, p99 ${fmtMs(l.fsyncMs?.p99)} ms, ${fmtMs(l.fsyncTotalMs)} ms in all`);
  console.log(`  ledger writes in progress during "accept" p50 ${fmtMs(l.inAccept?.p50)} ms, p99 ${fmtMs(l.inAccept?.p99)} ms`
    + (l.overheadWithoutAcceptLedger ? `; overhead less that: p50 ${fmtMs(l.overheadWithoutAcceptLedger.p50)} ms, p99 ${fmtMs(l.overheadWithoutAcceptLedger.p99)} ms` : ''));
  const m = r.mainThread;
  console.log(`  main thread (agent${hostApart ? '' : ' + host'}${r.settings.warmPool > 0 ? ' + pool refill' : ''}): CPU ${m.cpuMs ?? '?'} ms (${m.cpuMsPerInstance ?? '?'} ms/instance), `
    + `event-loop utilisation ${(m.eventLoopUtilization * 100).toFixed(1)}%, event-loop delay p99 ${fmtMs(m.eventLoopDelayP99Ms)} ms, max ${fmtMs(m.eventLoopDelayMaxMs)} ms`);
  for (const note of r.notes) console.log(`  note: ${note}`);
  for (const pr of r.problems) console.log(`  FAILED: ${pr}`);
}

// ---- targets ----

interface Verdict {
  n: number;
  /** What is judged, e.g. "warm p50 <= 0.15x original p50". */
  target: string;
  /** The ratio (x) or ms judged; null when a run is missing or failed. */
  value: number | null;
  limit: number;
  unit: 'x' | 'ms';
  /** A target with no figure (its run missing or failed) is not met. */
  pass: boolean;
}

/**
 * The overhead figure of each run of a mode at OVERHEAD_TARGET_N (--overhead-runs): the first is
 * the run printed in full, the others were made only for this figure. A failed run is null.
 */
interface OverheadRun {
  mode: BenchMode;
  n: number;
  run: number;
  outsideHostAboveFloorP99Ms: number | null;
}

/** `placement`: where the sim host ran, said with the overhead target, whose figure it moves (docs/benchmarks.md). */
function judge(runs: RunResult[], replays: ReplayFloor[], n: number, overheadRuns: OverheadRun[], placement: Options['simulation']): Verdict[] {
  const get = (mode: BenchMode) => runs.find((r) => r.n === n && r.mode === mode);
  const original = get('original');
  const verdicts: Verdict[] = [];
  const ratio = (mode: BenchMode, pick: (s: Stats) => number, limit: number, what: string) => {
    const r = get(mode);
    if (r === undefined || original === undefined) return;
    const ok = r.ok && original.ok && r.total !== null && original.total !== null;
    const value = ok ? pick(r.total!) / pick(original.total!) : null;
    verdicts.push({ n, target: `${mode} ${what} <= ${limit}x original's`, value: value === null ? null : round(value, 3), limit, unit: 'x', pass: value === null ? false : value <= limit });
  };
  if (WARM_TARGET_COUNTS.includes(n)) {
    ratio('warm', (s) => s.p50, TARGET_WARM_P50, 'total p50');
    ratio('warm', (s) => s.p99, TARGET_WARM_P99, 'total p99');
  }
  ratio('cold', (s) => s.p50, TARGET_COLD_P50, 'total p50');
  if (n === OVERHEAD_TARGET_N) {
    for (const mode of ['warm', 'cold'] as const) {
      const r = get(mode);
      if (r === undefined || r.overhead === null) continue;
      const replay = replays.find((x) => x.n === n && x.mode === mode);
      const first = r.ok ? replay?.outsideHostAboveFloor?.p99 ?? null : null;
      const more = overheadRuns.filter((o) => o.mode === mode && o.n === n && o.run > 1).map((o) => o.outsideHostAboveFloorP99Ms);
      const all = [first, ...more];
      // Any run without a figure (failed) leaves the target without one: not met.
      const value = all.some((v) => v === null) ? null : all.length === 1 ? first : median(all as number[]);
      const of = all.length === 1 ? '' : `, the median of ${all.length} runs (${all.map((v) => (v === null ? 'failed' : fmtMs(v))).join(', ')} ms)`;
      verdicts.push({
        n, target: `${mode} agent overhead above the HTTP floor, outside host calls, p99 <= ${TARGET_ABOVE_FLOOR_P99_MS} ms${of}`
          + `, the sim host ${placement === 'process' ? 'in a process of its own' : 'on the agent\'s event loop'}`,
        value: value === null ? null : round(value), limit: TARGET_ABOVE_FLOOR_P99_MS, unit: 'ms', pass: value === null ? false : value <= TARGET_ABOVE_FLOOR_P99_MS,
      });
    }
  }
  return verdicts;
}

// ---- the picture ----

const PHASE_COLOURS: Record<Segment, string> = {
  accept: '#6b7280', pool: '#0d9488', ports: '#65a30d', vnic: '#a16207', handover: '#c026d3', configure: '#ca8a04', clone: '#60a5fa',
  install: '#2563eb', boot: '#7c3aed', zone_running: '#db2777', network: '#059669', address: '#0891b2', service: '#ea580c', propolis: '#dc2626',
};
const MODE_COLOURS: Record<BenchMode, string> = { original: '#ea580c', warm: '#0d9488', cold: '#2563eb' };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Bar {
  n: number;
  mode: BenchMode;
  label: string;
  instances: InstanceResult[];
}

/** Per N, one bar per mode; the warm mode's pool-zone and own-zone starts apart when a run has both. */
function barsOf(runs: RunResult[]): Bar[] {
  const bars: Bar[] = [];
  for (const r of runs) {
    const done = r.instances.filter((i) => i.totalMs !== null);
    const pooled = done.filter((i) => i.start === 'pool');
    const own = done.filter((i) => i.start === 'own');
    if (r.mode === 'warm' && pooled.length > 0 && own.length > 0) {
      bars.push({ n: r.n, mode: r.mode, label: `warm: pool ${pooled.length}`, instances: pooled });
      bars.push({ n: r.n, mode: r.mode, label: `warm: own ${own.length}`, instances: own });
    } else {
      bars.push({ n: r.n, mode: r.mode, label: r.mode, instances: done });
    }
  }
  return bars;
}

/**
 * Top: stacked bars, per N the modes side by side, each the mean of every critical-path segment
 * over the bar's instances (so the stack is their mean total). Bottom: total p50 and p99 per bar,
 * log scale.
 */
function renderSvg(runs: RunResult[], title: string, subtitle: string): string {
  const counts = [...new Set(runs.map((r) => r.n))];
  const bars = barsOf(runs);
  const perGroup = Math.max(1, ...counts.map((n) => bars.filter((b) => b.n === n).length));
  const W = 1040;
  const left = 70;
  const right = 190;
  const top = 70;
  const plotW = W - left - right;
  const plotH = 330;
  const panel2Top = top + plotH + 90;
  const plot2H = 170;
  const H = panel2Top + plot2H + 60;
  const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  const segMean = (b: Bar, seg: Segment) => mean(b.instances.map((i) => i.segments[seg] ?? 0));
  const maxMs = Math.max(1, ...bars.map((b) => SEGMENTS.reduce((a, s) => a + segMean(b, s), 0)));
  const stepS = maxMs / 1000 > 8 ? 2 : maxMs / 1000 > 4 ? 1 : maxMs / 1000 > 1 ? 0.5 : 0.1;
  const topS = Math.ceil(maxMs / 1000 / stepS) * stepS;
  const y = (msv: number) => top + plotH - (msv / (topS * 1000)) * plotH;
  const groupW = plotW / Math.max(1, counts.length);
  const gap = 6;
  const barW = Math.min(60, (groupW * 0.85 - gap * (perGroup - 1)) / perGroup);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="28" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${left}" y="48" fill="#444">${esc(subtitle)}</text>`);
  for (let s = 0; s <= topS + 1e-9; s += stepS) {
    const yy = y(s * 1000);
    out.push(`<line x1="${left}" y1="${yy.toFixed(1)}" x2="${left + plotW}" y2="${yy.toFixed(1)}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${left - 8}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${s.toFixed(1)} s</text>`);
  }
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#111"/>`);
  const barX = new Map<Bar, number>();
  counts.forEach((n, gi) => {
    const group = bars.filter((b) => b.n === n);
    const gx = left + gi * groupW + (groupW - barW * group.length - gap * (group.length - 1)) / 2;
    group.forEach((b, bi) => {
      const x = gx + bi * (barW + gap);
      barX.set(b, x);
      let acc = 0;
      for (const seg of SEGMENTS) {
        const v = segMean(b, seg);
        if (v <= 0) continue;
        const y0 = y(acc + v);
        const h = y(acc) - y0;
        out.push(`<rect x="${x.toFixed(1)}" y="${y0.toFixed(1)}" width="${barW.toFixed(1)}" height="${Math.max(0, h).toFixed(2)}" fill="${PHASE_COLOURS[seg]}">`
          + `<title>${esc(`${b.label} N=${n} ${seg}: mean ${fmtMs(v)} ms`)}</title></rect>`);
        acc += v;
      }
      out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y(acc) - 6).toFixed(1)}" text-anchor="middle" font-size="10">${(acc / 1000).toFixed(2)} s</text>`);
      // "warm: pool 10" on two lines, so neighbouring labels do not run into each other.
      b.label.split(': ').forEach((line, li) => {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${top + plotH + 14 + li * 12}" text-anchor="middle" font-size="10" fill="${MODE_COLOURS[b.mode]}">${esc(line)}</text>`);
      });
    });
    out.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 46}" text-anchor="middle" font-weight="bold">N = ${n}</text>`);
  });
  const used = SEGMENTS.filter((seg) => bars.some((b) => segMean(b, seg) > 0));
  used.forEach((seg, i) => {
    const ly = top + i * 20;
    out.push(`<rect x="${W - right + 20}" y="${ly}" width="14" height="14" fill="${PHASE_COLOURS[seg]}"/>`);
    out.push(`<text x="${W - right + 40}" y="${ly + 11}">${seg}</text>`);
  });
  const noteY = top + used.length * 20 + 16;
  out.push(`<text x="${W - right + 20}" y="${noteY}" fill="#444" font-size="10">bars: mean time per phase along</text>`);
  out.push(`<text x="${W - right + 20}" y="${noteY + 14}" fill="#444" font-size="10">the critical path (phase starts sorted,</text>`);
  out.push(`<text x="${W - right + 20}" y="${noteY + 28}" fill="#444" font-size="10">each until the next), PUT to Nexus "running"</text>`);

  // Totals, log scale from 10 ms to the next power of ten above the largest p99.
  const totals = bars.map((b) => ({ b, s: stats(b.instances.map((i) => i.totalMs!)) }));
  const values = totals.flatMap(({ s }) => (s ? [s.p50, s.p99] : []));
  const lo = 10;
  const hi = 10 ** Math.ceil(Math.log10(Math.max(100, ...values)));
  const y2 = (v: number) => panel2Top + plot2H - (Math.log10(Math.max(lo, v) / lo) / Math.log10(hi / lo)) * plot2H;
  out.push(`<text x="${left}" y="${panel2Top - 22}" font-size="14" font-weight="bold">Total per instance, PUT to Nexus "running": p50 (pale) and p99 (solid), log scale</text>`);
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    const yy = y2(v);
    out.push(`<line x1="${left}" y1="${yy.toFixed(1)}" x2="${left + plotW}" y2="${yy.toFixed(1)}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${left - 8}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`);
  }
  out.push(`<line x1="${left}" y1="${panel2Top + plot2H}" x2="${left + plotW}" y2="${panel2Top + plot2H}" stroke="#111"/>`);
  const bw = Math.max(2, (barW - 2) / 2);
  for (const { b, s } of totals) {
    if (s === null) continue;
    const x = barX.get(b)!;
    ([['p50', s.p50, 0.5], ['p99', s.p99, 1]] as const).forEach(([what, v, opacity], k) => {
      const yy = y2(v);
      const bx = x + k * (bw + 2);
      out.push(`<rect x="${bx.toFixed(1)}" y="${yy.toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(0, panel2Top + plot2H - yy).toFixed(1)}" fill="${MODE_COLOURS[b.mode]}" fill-opacity="${opacity}">`
        + `<title>${esc(`${b.label} N=${b.n} total ${what}: ${fmtMs(v)} ms`)}</title></rect>`);
    });
    out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y2(s.p99) - 4).toFixed(1)}" text-anchor="middle" font-size="9">${(s.p99 / 1000).toFixed(2)}</text>`);
  }
  counts.forEach((n, gi) => {
    out.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${panel2Top + plot2H + 20}" text-anchor="middle" font-weight="bold">N = ${n}</text>`);
  });
  ALL_MODES.filter((m) => runs.some((r) => r.mode === m)).forEach((m, i) => {
    const ly = panel2Top + 10 + i * 22;
    out.push(`<rect x="${W - right + 20}" y="${ly}" width="14" height="14" fill="${MODE_COLOURS[m]}"/><text x="${W - right + 40}" y="${ly + 11}">${m}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---- main ----

/** The floor's Propolis servers in a farm process of their own, as the agent's are (its own farm, not the agent's). */
async function farmFloorPropolis(): Promise<FloorPropolis> {
  const farm = await PropolisFarm.start();
  return {
    where: 'process',
    start: async (latencies) => {
      const server = await farm.startServer({ latencies, warm: true });
      return { address: server.address, close: () => server.close() };
    },
    close: () => farm.close(),
  };
}

/** Where the Propolis servers run (--propolis): the agent's ([host] propolis) and the floor's alike. */
async function propolisPlacement(want: Options['propolis']): Promise<{ where: 'process' | 'in-process'; floor: FloorPropolis }> {
  return want === 'in-process' ? { where: 'in-process', floor: inProcessFloorPropolis() } : { where: 'process', floor: await farmFloorPropolis() };
}

/**
 * --entry build (the default): compiles this file and the src/ it imports with tsc into a temp
 * dir and runs that with the same arguments, so what is measured is the JavaScript that ships
 * (dist/), not src/ through tsx's loader. Through tsx the cold N = 100 overhead read ~21 ms
 * against ~12 compiled (docs/benchmarks.md, "Readings of 2026-12-08"; the cause not isolated).
 */
async function runCompiled(): Promise<number> {
  const out = mkdtempSync(join(tmpdir(), 'bench-boot-build-'));
  try {
    console.log(`compiling the benchmark and the agent (the working tree) with tsc into ${out}/tree ...`);
    const tree = compileTree(ROOT, ROOT, out, 'tree', ['scripts/bench-boot.ts', 'src/sim/host-process-main.ts', 'src/sim/propolis-farm-main.ts'], 'the benchmark');
    const main = join(tree, 'scripts/bench-boot.js');
    if (!existsSync(main)) throw new Error(`the build in ${tree} has no scripts/bench-boot.js`);
    const child = spawn(process.execPath, [...withoutTsx(process.execArgv), main, ...process.argv.slice(2)], {
      stdio: 'inherit', env: { ...process.env, BENCH_BOOT_ROOT: ROOT },
    });
    // A ^C reaches both; this process waits for the benchmark to end to remove the build.
    const ignore = () => undefined;
    const forward = () => child.kill('SIGTERM');
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    try {
      const [code] = await once(child, 'exit') as [number | null, NodeJS.Signals | null];
      return code ?? 1;
    } finally {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Node's arguments less tsx's loader (`--import tsx`, `--import=tsx`). */
function withoutTsx(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if ((args[i] === '--import' || args[i] === '--require' || args[i] === '--loader') && args[i + 1] === 'tsx') i++;
    else if (!/^--(import|require|loader)=tsx$/.test(args[i]!)) kept.push(args[i]!);
  }
  return kept;
}

async function main(): Promise<number> {
  const options = parseOptions();
  if (options.entry === 'build' && !COMPILED) return runCompiled();
  const latencies = options.latency === 'zero' ? { ...ZERO_LATENCIES } : { ...REALISTIC_LATENCIES };
  const jitter = options.latency === 'zero' ? 0 : REALISTIC_JITTER;
  const scratch = mkdtempSync(join(tmpdir(), 'bench-boot-probe-'));
  await instrument(scratch);
  rmSync(scratch, { recursive: true, force: true });
  const driver = Driver.start();
  const modelled = options.host === 'sim';
  const placement = await propolisPlacement(options.propolis);
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`bench:boot  node ${process.version}, ${cpus().length} CPU(s), load average ${load}, host ${options.host}${options.config ? ` (${options.config})` : ''}, temp dirs under ${tmpdir()}`);
  console.log(`agent: ${COMPILED ? 'the working tree compiled by tsc, as dist/ is (--entry build)' : 'src/ through tsx\'s loader (--entry tsx)'}`);
  for (const mode of options.modes) console.log(`mode ${mode}: ${describeMode(mode, options.pool)}`);
  if (modelled) {
    console.log(`sim host: ${options.latency === 'zero' ? 'ZERO_LATENCIES' : 'REALISTIC_LATENCIES'} ${JSON.stringify(latencies)}, jitter ±${jitter * 100}%, seed ${options.seed}`);
    console.log(options.durable
      ? 'sim host state file: as by default, fsynced and waited for by every operation: NOT modelled, so it counts as agent overhead here (--durable)'
      : `sim host state file: NOT fsynced and written behind (SimHost durable: false, writeBehindMs: ${SIM_WRITE_BEHIND_MS}; atomic rename kept): `
        + 'the sim\'s own persistence is not modelled and is kept out of the agent\'s overhead; the agent\'s ledgers are fsynced as always');
    console.log(options.simulation === 'process'
      ? 'sim host: in a process of its own ([host] simulation = "process"), its Propolis servers in it, prestarted: its work is off the agent\'s event loop, as a sled\'s kernel and daemons are; host calls are IPC round trips. The floor\'s Propolis servers: '
        + (placement.where === 'process' ? 'a farm process' : 'in-process')
      : placement.where === 'process'
      ? 'sim Propolis servers: in a process of their own ([host] propolis = "process"), as on a sled; the floor\'s too'
      : options.propolisOnDemand
        ? 'sim Propolis servers: in-process, started on demand on the agent\'s event loop (--propolis-on-demand): their start-up CPU delays the agent'
        : 'sim Propolis servers: in-process, started before each run (SimHost.prestartPropolis), taken as instances come up; the modelled propolisStart latency still applies');
  } else {
    console.log('illumos host: modelled latency unknown; totals and phases only');
  }
  console.log('phases: with parallel steps they overlap; each is timed from its start to the next phase\'s start (starts sorted by time), the critical path');
  console.log(`counts ${options.counts.join(', ')}; modes ${options.modes.join(', ')}; warm pool K = ${options.pool}; N = 1 is ${options.rounds} instance(s), each alone; `
    + `deadline ${options.deadlineMs / 1000} s per run\n`);

  const runs: RunResult[] = [];
  let floor: FloorResult | null = null;
  const replays: ReplayFloor[] = [];
  const overheadRuns: OverheadRun[] = [];
  try {
    if (options.warmup && modelled) {
      // JIT, module and connection warm-up, at zero latency; discarded.
      process.stdout.write('warm-up (N=4, zero latencies, not reported) ... ');
      for (const mode of options.modes) {
        await run({ mode, n: 4, options, driver, latencies: { ...ZERO_LATENCIES }, jitter: 0, propolis: placement.where, quiet: true });
      }
      console.log('done');
    }
    if (modelled) {
      floor = await floorAlone(driver, placement.floor, latencies, options.deadlineMs);
      console.log(`HTTP floor of one instance (the wire contract's exchanges with no agent logic, same libraries, Propolis ${placement.floor.where}; ${FLOOR_SAMPLES} alone, one after another): `
        + `p50 ${fmtMs(floor.floor?.p50)} ms, p99 ${fmtMs(floor.floor?.p99)} ms${floor.problems.length > 0 ? `; ${floor.problems.join('; ')}` : ''}\n`);
    }
    for (const n of options.counts) {
      for (const mode of options.modes) {
        const r = await run({ mode, n, options, driver, latencies, jitter, propolis: placement.where, rounds: options.rounds });
        runs.push(r);
        printRun(r, modelled, options.host === 'sim' && options.simulation === 'process');
        if (modelled && r.settings.readiness === 'event' && r.ok) {
          const replay = await floorReplay(r, driver, placement.floor, latencies, options.deadlineMs);
          if (replay !== null) {
            replays.push(replay);
            console.log(`  HTTP floor under this run's timing (the same instances, PUTs, gaps and VM boots, no agent): p50 ${fmtMs(replay.floor?.p50)} ms, `
              + `p99 ${fmtMs(replay.floor?.p99)} ms; overhead above it per instance p50 ${fmtMs(replay.aboveFloor?.p50)} ms, p99 ${fmtMs(replay.aboveFloor?.p99)} ms`
              + ` (outside host calls: p50 ${fmtMs(replay.outsideHostAboveFloor?.p50)} ms, p99 ${fmtMs(replay.outsideHostAboveFloor?.p99)} ms)`
              + `; Nexus got the same states from the floor as from the agent for ${replay.sameReports} of ${replay.replayed}`
              + (replay.problems.length > 0 ? `; ${replay.problems.join('; ')}` : ''));
          }
        }
        // More runs for the overhead target alone (one run's p99 here moves by ±15 ms with the machine).
        if (modelled && n === OVERHEAD_TARGET_N && mode !== 'original' && options.overheadRuns > 1) {
          const figure = (x: RunResult, replay: ReplayFloor | null) => (x.ok ? replay?.outsideHostAboveFloor?.p99 ?? null : null);
          const first = figure(r, replays.find((x) => x.n === n && x.mode === mode) ?? null);
          overheadRuns.push({ mode, n, run: 1, outsideHostAboveFloorP99Ms: first === null ? null : round(first) });
          for (let k = 2; k <= options.overheadRuns; k++) {
            const again = await run({ mode, n, options, driver, latencies, jitter, propolis: placement.where, rounds: options.rounds, quiet: true });
            const replay = again.ok ? await floorReplay(again, driver, placement.floor, latencies, options.deadlineMs) : null;
            const raw = figure(again, replay);
            const value = raw === null ? null : round(raw);
            overheadRuns.push({ mode, n, run: k, outsideHostAboveFloorP99Ms: value });
            console.log(`  ${mode} N=${n} run ${k} of ${options.overheadRuns} (for the overhead target only): `
              + (value === null ? `no figure (${again.ok ? 'no floor replay' : 'the run failed'})` : `above the HTTP floor, outside host calls, p99 ${fmtMs(value)} ms`));
          }
        }
        console.log();
      }
    }
  } finally {
    await driver.close();
    await placement.floor.close();
  }

  // Side by side, targets.
  console.log('side by side (total = PUT sent -> Nexus receives running)');
  const verdicts: Verdict[] = [];
  for (const n of options.counts) {
    console.log(`  N=${n}`);
    const original = runs.find((r) => r.n === n && r.mode === 'original');
    for (const mode of options.modes) {
      const r = runs.find((x) => x.n === n && x.mode === mode);
      if (!r) continue;
      const parts = [`    ${mode.padEnd(8)} total p50 ${fmtMs(r.total?.p50).padStart(7)} ms, p99 ${fmtMs(r.total?.p99).padStart(7)} ms`];
      if (mode !== 'original' && original?.total && r.total) {
        parts.push(`(${fmtX(r.total.p50 / original.total.p50)}, ${fmtX(r.total.p99 / original.total.p99)} of the original's)`);
      }
      if (r.settings.warmPool > 0) {
        const pooled = r.instances.filter((i) => i.start === 'pool').length;
        parts.push(`| ${pooled} pool zone(s), ${r.instances.length - pooled} made`);
      }
      if (r.overhead) parts.push(`| agent overhead p99 ${fmtMs(r.overhead.p99)} ms`);
      const replay = replays.find((x) => x.n === n && x.mode === mode);
      if (replay?.floor) {
        parts.push(`| HTTP floor p99 ${fmtMs(replay.floor.p99)} ms, above it p99 ${fmtMs(replay.aboveFloor?.p99)} ms (outside host calls ${fmtMs(replay.outsideHostAboveFloor?.p99)} ms)`);
      }
      if (!r.ok) parts.push('| FAILED');
      console.log(parts.join(' '));
    }
    const judged = judge(runs, replays, n, overheadRuns, options.simulation);
    verdicts.push(...judged);
    for (const v of judged) {
      console.log(`    target ${v.target}: ${v.value === null ? 'no figure' : v.unit === 'x' ? fmtX(v.value) : `${fmtMs(v.value)} ms`} ${v.pass ? 'PASS' : 'FAIL'}`);
    }
  }
  const failedRuns = runs.filter((r) => !r.ok);
  const pass = verdicts.length > 0 ? verdicts.every((v) => v.pass) : null;
  if (modelled) {
    console.log(`\ntargets: warm p50 <= ${TARGET_WARM_P50}x and p99 <= ${TARGET_WARM_P99}x the original's (N = ${WARM_TARGET_COUNTS.join(', ')}), `
      + `cold p50 <= ${TARGET_COLD_P50}x the original's, at N = ${OVERHEAD_TARGET_N} the agent's overhead above the HTTP floor outside host calls p99 <= ${TARGET_ABOVE_FLOOR_P99_MS} ms: `
      + (pass === null ? 'not judged (needs the original and another mode)' : `${verdicts.filter((v) => v.pass).length} of ${verdicts.length} PASS`));
  }

  // Results.
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  mkdirSync(options.outDir, { recursive: true });
  const doc = {
    benchmark: 'bench-boot',
    date: new Date().toISOString(),
    loadavg: loadavg(),
    node: process.version,
    cpus: cpus().length,
    entry: COMPILED ? 'build' : 'tsx',
    host: options.host,
    config: options.config,
    sim: modelled ? {
      latency: options.latency, latencies, jitter, seed: options.seed,
      stateFile: options.durable ? 'fsynced, waited for' : `not fsynced, written behind every ${SIM_WRITE_BEHIND_MS} ms`,
      simulation: options.simulation,
      propolis: options.simulation === 'process' ? 'in the sim host\'s process, prestarted'
        : placement.where === 'process' ? 'farm process' : options.propolisOnDemand ? 'in-process, started on demand' : 'in-process, prestarted',
    } : null,
    counts: options.counts,
    modes: Object.fromEntries(options.modes.map((m) => [m, modeSettings(m, options.pool)])),
    pool: options.pool,
    nics: options.nics,
    rounds: options.rounds,
    overheadRuns,
    deadlineMs: options.deadlineMs,
    targets: {
      warm: { p50: TARGET_WARM_P50, p99: TARGET_WARM_P99, counts: WARM_TARGET_COUNTS },
      cold: { p50: TARGET_COLD_P50 },
      aboveFloorOutsideHostP99Ms: TARGET_ABOVE_FLOOR_P99_MS, aboveFloorN: OVERHEAD_TARGET_N,
    },
    verdicts,
    pass: modelled ? pass : null,
    httpFloor: { propolis: placement.floor.where, alone: floor, replayed: replays },
    runs,
  };
  const title = `Instance boot: PUT /instances/{id} to Nexus "running", original vs warm pool vs cold path (${options.host} host)`;
  const subtitle = modelled
    ? `${options.latency === 'zero' ? 'ZERO' : 'REALISTIC'}_LATENCIES, jitter ±${jitter * 100}%, seed ${options.seed}, warm pool K = ${options.pool}, ${options.nics} NIC(s); `
      + `Propolis ${placement.where}; load ${load}; ${new Date().toISOString()}`
    : `${options.config}; ${new Date().toISOString()}`;
  const json = `${JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
  const svg = renderSvg(runs, title, subtitle);
  for (const name of [stamp, 'latest']) {
    writeFileSync(join(options.outDir, `${name}.json`), json);
    writeFileSync(join(options.outDir, `${name}.svg`), svg);
  }
  console.log(`\nwrote ${join(options.outDir, `${stamp}.json`)} and .svg (and latest.json, latest.svg)`);
  if (failedRuns.length > 0) {
    console.log(`\n${failedRuns.length} run(s) FAILED: ${failedRuns.map((r) => `${r.mode} N=${r.n}`).join(', ')}`);
    return 1;
  }
  return 0;
}

main().then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  console.error(`bench:boot failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
