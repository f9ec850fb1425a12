// API benchmark: the simulated sled agent's PUT /instances/{id} against a bare fastify server
// that answers the same route with the same JSON, measured side by side in one run. The bare
// server is the stack's ceiling (HTTP parsing, fastify routing, JSON body parsing, JSON reply);
// the ratio sim/bare says how much the sim's own work costs on top (schema validation, request
// ids, the per-request log line, the state machine, response serialization).
//
//   npm run bench:api                                  # 2 pairs (ABBA) of 5 s runs, ~30 s
//   BENCH_DURATION=10 BENCH_ROUNDS=3 npm run bench:api
//   BENCH_KEEP_LOG=1 npm run bench:api                  # keep the sim's log file
//
// The load generator (autocannon) runs in a worker thread so that it does not share the servers'
// event loop: on the same thread every request's client-side cost would be added to both
// targets and squeeze the ratio towards 1. Both servers live on the main thread.
//
// Exits 1 if any run saw a non-2xx response, a connection error or a timeout, or if the setup
// failed; the throughput ratio is reported, not asserted.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import pino from 'pino';
import { defaultSimConfig } from '../src/sim/config.js';
import { startSim } from '../src/sim/server.js';
import { printTable } from './table.js';

const TARGET_RATIO = 0.6;
const CONNECTIONS = 10;
const PIPELINING = 1;
const WARMUP_SECONDS = 1;

function durationFromEnv(): number {
  const raw = process.env.BENCH_DURATION?.trim();
  if (!raw) return 5;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > 600) {
    throw new Error(`BENCH_DURATION must be a number of seconds in (0, 600], got "${raw}"`);
  }
  return n;
}

/** Measured pairs (one run of each target); the default, 2 (ABBA), keeps the whole run near 30 s. */
function roundsFromEnv(): number {
  const raw = process.env.BENCH_ROUNDS?.trim();
  if (!raw) return 2;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error(`BENCH_ROUNDS must be an integer in [1, 100], got "${raw}"`);
  return n;
}

interface Target {
  name: string;
  url: string;
}

interface Run {
  target: string;
  result: autocannon.Result;
  /** CPU time of the main thread (both servers, not the client) during the run, ms; null if unknown. */
  serverCpuMs: number | null;
}

/**
 * CPU time (user + system) of this process's main thread so far, in ms, from Linux's
 * /proc/self/task/<pid>/stat (in USER_HZ ticks, 100 per second); null elsewhere. Unlike
 * throughput, CPU per request barely moves when other processes compete for the CPUs.
 */
function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

/** A node:http "Nexus" that accepts everything the sim sends it with 204. */
async function startFakeNexus(): Promise<{ server: Server; address: string; requests: () => number }> {
  let count = 0;
  const server = createServer((req, res) => {
    count++;
    req.resume();
    req.on('end', () => {
      res.statusCode = 204;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { server, address: `127.0.0.1:${port}`, requests: () => count };
}

async function closeHttpServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  server.closeAllConnections();
  await closed;
}

async function put(url: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, text: await res.text() };
}

async function load(target: Target, body: string, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url: target.url,
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    duration: seconds,
    workers: 1,
  });
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function main(): Promise<number> {
  const duration = durationFromEnv();
  const rounds = roundsFromEnv();
  const tmp = mkdtempSync(join(tmpdir(), 'sled-agent-bench-'));
  const logFile = join(tmp, 'sim.log');
  const cleanups: (() => Promise<void> | void)[] = [];
  let failed = false;

  try {
    // 1. Fake Nexus.
    const nexus = await startFakeNexus();
    cleanups.push(() => closeHttpServer(nexus.server));

    // 2. The simulated sled agent, logging at info to a file (as in production, where pino
    // writes JSON asynchronously; the production logger also names itself and uses ISO times).
    const dest = pino.destination({ dest: logFile, sync: false, mkdir: true });
    const log = pino({ name: 'sled-agent', level: 'info', timestamp: pino.stdTimeFunctions.isoTime }, dest);
    cleanups.push(async () => {
      dest.flushSync();
      dest.end();
    });
    const sledId = randomUUID();
    const config = defaultSimConfig();
    config.id = sledId;
    config.sim_mode = 'explicit';
    config.nexus_address = nexus.address;
    config.dropshot.bind_address = '127.0.0.1:0';
    config.storage.zpools = [];
    config.updates.artifact_dir = join(tmp, 'artifacts');
    const sim = await startSim(config, log);
    // Cleanups run in reverse: the sim closes (and logs that) before the log is flushed and
    // before the fake Nexus goes away.
    cleanups.push(() => sim.close());
    await sim.registered;

    // 3. One instance: the first PUT moves it to "starting"; the same PUT again is a no-op.
    const instanceId = randomUUID();
    const body = JSON.stringify({
      initial: {
        runtime: {
          run_state: 'creating',
          sled_id: sledId,
          propolis_id: randomUUID(),
          ncpus: 2,
          memory: 1073741824,
          hostname: 'bench',
          gen: 1,
          time_updated: '2022-06-08T00:00:00Z',
        },
        nics: [],
        disks: [],
      },
      target: { run_state: 'running' },
    });
    const simUrl = `http://${sim.address}/instances/${instanceId}`;
    const first = await put(simUrl, body);
    const again = await put(simUrl, body);
    if (first.status !== 200 || again.status !== 200) {
      throw new Error(`instance PUT answered ${first.status} then ${again.status}: ${again.text}`);
    }
    if (first.text !== again.text) {
      throw new Error(`repeating the instance PUT is not a no-op:\n  ${first.text}\n  ${again.text}`);
    }
    const captured = JSON.parse(again.text) as { run_state?: string; gen?: number };
    if (captured.run_state !== 'starting' || captured.gen !== 2) {
      throw new Error(`expected the instance to be "starting" at gen 2, got ${again.text}`);
    }

    // 4. The bare ceiling: same route, same reply, nothing else.
    const bare = Fastify({ logger: false });
    bare.put('/instances/:instance_id', async () => captured);
    await bare.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => bare.close());
    const { port: barePort } = bare.server.address() as AddressInfo;
    const bareUrl = `http://127.0.0.1:${barePort}/instances/${instanceId}`;
    const check = await put(bareUrl, body);
    if (check.status !== 200 || check.text !== again.text) {
      throw new Error(`the bare server does not answer like the sim: ${check.status} ${check.text}`);
    }

    const targets: Record<'sim' | 'bare', Target> = {
      sim: { name: 'sim', url: simUrl },
      bare: { name: 'bare fastify', url: bareUrl },
    };

    console.log(`bench:api  PUT /instances/{id}  node ${process.version}, ${cpus().length} CPUs, `
      + `${CONNECTIONS} connections, pipelining ${PIPELINING}, ${rounds} pairs of ${duration} s runs, `
      + `${WARMUP_SECONDS} s warm-up each; client in a worker thread`);
    const [load1] = loadavg();
    if (load1! > 1) {
      console.log(`note: load average is ${load1!.toFixed(2)} before starting; other processes share the CPUs and the figures will be noisy`);
    }
    console.log(`response: ${again.text.length} bytes; sim log: ${logFile} (removed at exit unless BENCH_KEEP_LOG=1)`);

    // 5. Warm-up, then pairs in alternating order (sim,bare / bare,sim / ...) so that neither
    // target always runs first or last, and each pair gives a ratio measured close together in
    // time (the machine may be shared; drift between pairs then cancels out of the median).
    const runs: Run[] = [];
    const pairRatios: number[] = [];
    const nexusBefore = nexus.requests();
    for (const key of ['sim', 'bare'] as const) {
      const r = await load(targets[key], body, WARMUP_SECONDS);
      if (r.non2xx > 0 || r.errors > 0) {
        throw new Error(`warm-up of ${targets[key].name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      }
    }
    for (let pair = 0; pair < rounds; pair++) {
      const order = pair % 2 === 0 ? (['sim', 'bare'] as const) : (['bare', 'sim'] as const);
      const got: Partial<Record<'sim' | 'bare', number>> = {};
      for (const key of order) {
        const cpuBefore = mainThreadCpuMs();
        const result = await load(targets[key], body, duration);
        const cpuAfter = mainThreadCpuMs();
        runs.push({ target: key, result, serverCpuMs: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore });
        got[key] = result.requests.mean;
      }
      const r = got.bare! > 0 ? got.sim! / got.bare! : 0;
      pairRatios.push(r);
      console.log(`  pair ${pair + 1}/${rounds} (${order.join(' then ')}): sim ${fmt(got.sim!)} req/s, bare ${fmt(got.bare!)} req/s, ratio ${r.toFixed(3)}`);
    }

    // 6. Report. autocannon records latency in whole milliseconds; the worst run is shown.
    const summary = (['sim', 'bare'] as const).map((key) => {
      const mineRuns = runs.filter((r) => r.target === key);
      const mine = mineRuns.map((r) => r.result);
      const mean = (f: (r: autocannon.Result) => number) => mine.reduce((a, r) => a + f(r), 0) / mine.length;
      const sum = (f: (r: autocannon.Result) => number) => mine.reduce((a, r) => a + f(r), 0);
      const max = (f: (r: autocannon.Result) => number) => Math.max(...mine.map(f));
      return {
        name: targets[key].name,
        rps: mean((r) => r.requests.mean),
        perRun: mine.map((r) => fmt(r.requests.mean)).join(' / '),
        p50: max((r) => r.latency.p50),
        p99: max((r) => r.latency.p99),
        requests: sum((r) => r.requests.total),
        cpuUsPerReq: mineRuns.some((r) => r.serverCpuMs === null)
          ? null
          : (1000 * mineRuns.reduce((a, r) => a + r.serverCpuMs!, 0)) / sum((r) => r.requests.total),
        non2xx: sum((r) => r.non2xx),
        errors: sum((r) => r.errors),
        timeouts: sum((r) => r.timeouts),
      };
    });
    console.log('');
    printTable(
      ['target', 'req/s (mean)', 'per run', 'p50 ms', 'p99 ms', 'requests', 'server CPU µs/req', 'non-2xx', 'errors', 'timeouts'],
      summary.map((s) => [s.name, fmt(s.rps), s.perRun, fmt(s.p50), fmt(s.p99), fmt(s.requests),
        s.cpuUsPerReq === null ? 'n/a' : fmt(s.cpuUsPerReq),
        String(s.non2xx), String(s.errors), String(s.timeouts)]),
    );
    console.log('(latency: autocannon\'s whole-millisecond histogram, worst run shown)');
    const sorted = [...pairRatios].sort((x, y) => x - y);
    const mid = Math.floor(sorted.length / 2);
    const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    const ofMeans = summary[1]!.rps > 0 ? summary[0]!.rps / summary[1]!.rps : 0;
    console.log('');
    console.log(`sim/bare throughput: ${median.toFixed(3)} (median of ${pairRatios.length} pairs: `
      + `${pairRatios.map((r) => r.toFixed(3)).join(', ')}; ratio of means ${ofMeans.toFixed(3)})`);
    console.log(`target sim/bare >= ${TARGET_RATIO}: ${median >= TARGET_RATIO ? 'met' : 'NOT met'}`);
    const [simCpu, bareCpu] = [summary[0]!.cpuUsPerReq, summary[1]!.cpuUsPerReq];
    if (simCpu !== null && bareCpu !== null && simCpu > 0) {
      console.log(`server CPU per request, bare/sim: ${(bareCpu / simCpu).toFixed(3)} `
        + '(main thread, 10 ms ticks; the throughput ratio to expect when the server, not the client, is the bottleneck)');
    }
    const pushes = nexus.requests() - nexusBefore;
    let logBytes = 0;
    try {
      logBytes = statSync(logFile).size;
    } catch { /* not flushed yet */ }
    console.log(`sim pushes to Nexus during the runs: ${pushes}; sim log so far: ${fmt(logBytes / 1024 / 1024, 1)} MiB`);

    const bad = summary.filter((s) => s.non2xx > 0 || s.errors > 0 || s.timeouts > 0);
    if (bad.length > 0) {
      failed = true;
      console.error(`\nFAILED: ${bad.map((s) => `${s.name} had ${s.non2xx} non-2xx, ${s.errors} errors, ${s.timeouts} timeouts`).join('; ')}`
        + ' — a benchmark that measured errors is not a result');
    }
  } catch (err) {
    failed = true;
    console.error(`bench:api failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    // 7. Close everything, newest first.
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        failed = true;
        console.error(`cleanup failed: ${(err as Error).message}`);
      }
    }
    if (process.env.BENCH_KEEP_LOG !== '1') rmSync(tmp, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(`bench:api: ${err instanceof Error ? err.message : String(err)}`);
  return 2;
});
