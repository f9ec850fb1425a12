// The Propolis farm's child process (see propolis-farm.ts, which forks it): many simulated
// Propolis servers in one process, started, closed and crashed on the parent's word over the IPC
// channel. Each server's VM changes go back to the parent with the latency its next step drew,
// from the server's own seeded generator, so the parent can record the modelled time.
//
// It lives exactly as long as the channel: when the parent goes (close(), an exit, a SIGKILL)
// the channel disconnects and this process exits, taking its servers with it, as in-process
// servers die with the agent. The sim host starts them again on its next start.
import pino from 'pino';
import type { SocketAddr } from '../common/address.js';
import { jittered, mulberry32 } from '../common/random.js';
import { createLogger, effectiveLevel } from '../logger.js';
import type { FarmMessage, FarmRequest, FarmServerSpec } from './propolis-farm.js';
import { SimPropolis, type SimPropolisSnapshot } from './propolis.js';

if (process.send === undefined) {
  process.stderr.write('propolis-farm-main: start it with child_process.fork (PropolisFarm.start), it needs an IPC channel to its parent\n');
  process.exit(2);
}

const send = (message: FarmMessage): void => {
  // A parent gone mid-send is no error here: the 'disconnect' handler ends this process.
  if (process.connected) process.send!(message, undefined, undefined, () => {});
};

process.on('disconnect', () => process.exit(0));
// A terminal's ^C or a stop signal to the agent's process group is the agent's to handle: it
// closes the farm as it shuts down. Dying first would look like a crash of every Propolis, whose
// instances would be persisted in maintenance instead of revived on the next start.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

// The parent's log level (argv[2]); lines go to the stderr it shares with the parent. Silent
// needs no destination (with a terminal, createLogger's would be a pino-pretty worker thread).
const level = effectiveLevel(process.argv[2] ?? 'silent', {});
const log = level === 'silent' ? pino({ level }) : createLogger(level, 'sim-propolis-farm');
/** By the parent's id, from the start request on: a close that comes while it starts waits for it. */
const servers = new Map<number, Promise<SimPropolis>>();

/** The sim host's jitter (common/random.ts), from this server's own seed. */
function jitterer(fraction: number, seed: number): (ms: number) => number {
  const random = mulberry32(seed);
  return (ms) => jittered(ms, fraction, random);
}

async function start(id: number, spec: FarmServerSpec): Promise<SimPropolis> {
  // A change and the draw for the step it schedules happen in one turn (SimPropolis.transition):
  // they go to the parent as one message, the snapshot first, as SimSmf reads them in that order.
  let pending: { snapshot?: SimPropolisSnapshot; drawn?: number } | null = null;
  const flush = (): void => {
    if (pending === null) return;
    send({ op: 'change', id, ...pending });
    pending = null;
  };
  const jitter = jitterer(spec.jitter ?? 0, spec.seed ?? 0);
  return SimPropolis.start({
    warm: spec.warm ?? false,
    logger: log.child(spec.log ?? {}),
    ...(spec.latencies ? { latencies: spec.latencies } : {}),
    ...(spec.initial ? { initial: spec.initial } : {}),
    onChange: (snapshot) => {
      flush();
      pending = { snapshot };
      queueMicrotask(flush);
    },
    jitter: (ms) => {
      const drawn = jitter(ms);
      if (pending === null || pending.drawn !== undefined) {
        flush();
        pending = {};
        queueMicrotask(flush);
      }
      pending.drawn = drawn;
      return drawn;
    },
  });
}

/** What the reply carries: a started server's address, nothing for the rest. */
async function handle(message: FarmRequest): Promise<SocketAddr | undefined> {
  switch (message.op) {
    case 'start': {
      const started = start(message.id, message.spec);
      servers.set(message.id, started);
      started.catch(() => servers.delete(message.id));
      return (await started).address;
    }
    case 'close':
    case 'crash': {
      const server = await servers.get(message.id)?.catch(() => undefined);
      servers.delete(message.id);
      if (server !== undefined) await (message.op === 'close' ? server.close() : server.crash());
      return undefined;
    }
  }
}

process.on('message', (message: FarmRequest) => {
  handle(message).then(
    (address) => send({ op: 'reply', req: message.req, ...(address ? { address } : {}) }),
    (err: unknown) => send({ op: 'reply', req: message.req, error: err instanceof Error ? err.message : String(err) }),
  );
});

send({ op: 'ready' });
