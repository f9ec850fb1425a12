// bench:scale's CPU floor (scripts/bench-scale.ts starts it as a process of its own, as it starts
// the agent, and reads its CPU from /proc the same way): per instance, exactly the wire
// exchanges the agent makes for one start, with the agent's own libraries and none of its logic
// (no ledger, zones, host calls, state machine or notifier policy).
//
// - Nexus's `PUT /instances/{id}` on a fastify app from the agent's factory (src/server.ts
//   createServer, its route schema src/endpoints.ts instancePut: the same JSON parsing, body
//   validation and response serialization), logged by its one line per request at info through
//   src/logger.ts's pino (stderr, which bench-scale sends to <run dir>/floor.log, as the agent's
//   to agent.log). The answer is the request's runtime moved to `starting`, gen + 1, as the agent's.
// - A PropolisClient (src/propolis-client.ts) per instance to its own simulated Propolis server
//   in a PropolisFarm started as the sim host starts it (same latencies, the agent's log level;
//   the servers are started, warm, before the listening line, so none of that is in the window):
//   `ensure` (the agent's InstanceEnsureRequest, same fields), `putState('Run')`, then the state
//   monitor's long polls from gen 0 as the agent's monitor loop makes them: a `Creating` seen
//   after Run is skipped, every other state is reported, and the next poll goes out after each
//   answer, Running included (it stays pending, as the agent's does).
// - Reports through src/nexus-client.ts NexusClient.instancePut, in order per instance (as the
//   agent's notifier sends them): `starting` for a `Starting` the monitor saw, `running`, each gen + 1.
//
// Before it prints its listening line, it makes one start end to end (a warm-up under an id the
// benchmark does not track), so the first use of each code path is not in the measured window.
//
// The farm sends its change messages over IPC whoever listens (the agent's sim host uses them,
// the floor ignores them): their cost is in both processes, as it is in the agent.
//
//   node --import tsx scripts/scale-floor.ts --nexus 127.0.0.1:PORT --servers N
//        [--vm-boot MS] [--vm-step MS] [--jitter F] [--log-level info]
// Prints `listening on http://127.0.0.1:PORT` on stdout once ready; exits on SIGTERM or SIGINT.
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { formatSocketAddr } from '../src/common/address.js';
import * as endpoints from '../src/endpoints.js';
import { createLogger, effectiveLevel } from '../src/logger.js';
import { NexusClient } from '../src/nexus-client.js';
import { VolumeConstructionRequestSchema, type InstanceRuntimeState } from '../src/params.js';
import { PropolisClient, type InstanceEnsureRequest } from '../src/propolis-client.js';
import { createServer } from '../src/server.js';
import { PropolisFarm, type FarmPropolis } from '../src/sim/propolis-farm.js';
import { monitorAndReport } from './wire-floor.js';
import { tuneV8 } from '../src/common/v8-tuning.js';

// The agent runs in this process (or its floor does): V8 as the sled-agent command sets it.
tuneV8();

const MIB = 1024 * 1024;
/** The agent's default [instances] image_id and bootrom_id (src/config.ts). */
const NIL_UUID = '00000000-0000-0000-0000-000000000000';
/** Farm servers started at once while getting ready. */
const START_BATCH = 32;

const { values } = parseArgs({
  options: {
    nexus: { type: 'string' },
    servers: { type: 'string' },
    'vm-boot': { type: 'string', default: '2' },
    'vm-step': { type: 'string', default: '2' },
    jitter: { type: 'string', default: '0' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const count = Number(values.servers);
if (values.nexus === undefined || !Number.isInteger(count) || count < 1) {
  process.stderr.write('usage: scale-floor.ts --nexus HOST:PORT --servers N [--vm-boot MS] [--vm-step MS] [--jitter F] [--log-level info]\n');
  process.exit(2);
}
const level = effectiveLevel(values['log-level']);
const log: Logger = createLogger(level, 'scale-floor');
// As the agent's sim host: a farm at the agent's level, its servers with the table's VM latencies.
const farm = await PropolisFarm.start({ logLevel: level });
const latencies = { vmBoot: Number(values['vm-boot']), vmStep: Number(values['vm-step']) };
const jitter = Number(values.jitter);
// One more server than instances: the first is the warm-up's.
const servers: FarmPropolis[] = [];
for (let i = 0; i <= count; i += START_BATCH) {
  const batch = Array.from({ length: Math.min(START_BATCH, count + 1 - i) }, (_, k) =>
    farm.startServer({ latencies, jitter, seed: i + k, warm: true, log: { floor: String(i + k) } }));
  servers.push(...await Promise.all(batch));
}

const nexus = new NexusClient(values.nexus, { timeoutMs: 30_000 });
const clients: PropolisClient[] = [];
const monitors: AbortController[] = [];
let next = 0;
let closing = false;
let failures = 0;
/** By instance id, for the warm-up: its start, until its running report was delivered. */
const started = new Map<string, Promise<void>>();

/**
 * One instance's start on the wire, after its PUT was answered. Resolves once its `running`
 * report was delivered; the monitor goes on (its next long poll pending) until close().
 */
async function start(id: string, runtime: InstanceRuntimeState, cloudInit: string | null, server: FarmPropolis): Promise<void> {
  const propolis = new PropolisClient(formatSocketAddr(server.address));
  clients.push(propolis);
  const request: InstanceEnsureRequest = {
    properties: {
      id, name: runtime.hostname, description: `instance ${id} (${runtime.hostname})`,
      image_id: NIL_UUID, bootrom_id: NIL_UUID, memory: Math.floor(runtime.memory / MIB), vcpus: runtime.ncpus,
    },
    nics: [], disks: [], migrate: null, cloud_init_bytes: cloudInit,
  };
  await propolis.ensure(request);
  await propolis.putState('Run');
  const abort = new AbortController();
  monitors.push(abort);
  // A report that fails is counted and the next one still goes, as the notifier retries its lane.
  await monitorAndReport(propolis, runtime, (state) => nexus.instancePut(id, state).catch((err: unknown) => {
    failures += 1;
    log.error({ err, instance: id }, 'cannot report to Nexus');
  }), abort.signal);
}

const app = createServer({ logger: log, sharedSchemas: [VolumeConstructionRequestSchema] });
app.put('/instances/:instance_id', { schema: endpoints.instancePut }, async (request) => {
  const id = request.params.instance_id;
  const runtime = request.body.initial.runtime as InstanceRuntimeState;
  const server = servers[next++];
  if (server === undefined) throw new Error(`more PUTs than the ${count} Propolis servers started`);
  const answer: InstanceRuntimeState = { ...runtime, run_state: 'starting', gen: runtime.gen + 1, time_updated: new Date().toISOString() };
  started.set(id, start(id, answer, request.body.initial.cloud_init_bytes ?? null, server).catch((err: unknown) => {
    if (closing) return;
    failures += 1;
    log.error({ err, instance: id }, 'floor start failed');
  }));
  return answer;
});
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as { port: number };

// Warm-up, before the listening line (so before bench-scale's window): one start end to end, its
// PUT over HTTP, its report to Nexus under an id the benchmark does not track. Code run for the
// first time (lazy compilation, undici's and fastify's first-use set-up) is then not charged to
// the instances, as the agent's start-up (its registration with Nexus, ...) did the same for it.
const warmId = randomUUID();
const warmRuntime = {
  run_state: 'creating', sled_id: randomUUID(), propolis_id: randomUUID(), dst_propolis_id: null, propolis_addr: '[fd00:1122:3344:101::100]:12400',
  migration_id: null, ncpus: 2, memory: 1024 ** 3, hostname: 'floor-warm-up', gen: 1, time_updated: new Date().toISOString(),
};
const warmBody = JSON.stringify({
  initial: { runtime: warmRuntime, nics: [], firewall_rules: [], disks: [], cloud_init_bytes: null },
  target: { run_state: 'running', migration_params: null },
  migrate: null,
});
const warmPut = await new Promise<number>((resolve, reject) => {
  const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: `/instances/${warmId}`,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(warmBody) } }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode ?? 0));
  });
  req.on('error', reject);
  req.end(warmBody);
});
if (warmPut !== 200) throw new Error(`floor warm-up: PUT answered ${warmPut}`);
await started.get(warmId);
if (failures > 0) throw new Error('floor warm-up failed (see the log)');

process.stdout.write(`listening on http://127.0.0.1:${port}\n`);

async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  for (const m of monitors) m.abort(new Error('floor closing'));
  await Promise.allSettled([app.close(), nexus.close(), ...clients.map((c) => c.destroy())]);
  await farm.close();
  if (failures > 0) log.error({ failures }, 'floor: failures');
  log.flush();
  process.exit(failures > 0 ? 1 : 0);
}
process.on('SIGTERM', () => void close());
process.on('SIGINT', () => void close());
