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
import { serveParent } from './child-channel.js';
import type { FarmEvent, FarmServerSpec } from './propolis-farm.js';
import { SimPropolis } from './propolis.js';

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

function start(id: number, spec: FarmServerSpec): Promise<SimPropolis> {
  const jitter = jitterer(spec.jitter ?? 0, spec.seed ?? 0);
  // A change comes before the draw for the step it schedules (SimPropolis.transition), and the
  // parent gets them in that order, as SimSmf reads them.
  return SimPropolis.start({
    warm: spec.warm ?? false,
    logger: log.child(spec.log ?? {}),
    ...(spec.latencies ? { latencies: spec.latencies } : {}),
    ...(spec.initial ? { initial: spec.initial } : {}),
    onChange: (snapshot) => send({ id, snapshot }),
    jitter: (ms) => {
      const drawn = jitter(ms);
      send({ id, drawn });
      return drawn;
    },
  });
}

async function stop(id: number, op: 'close' | 'crash'): Promise<void> {
  const server = await servers.get(id)?.catch(() => undefined);
  servers.delete(id);
  if (server !== undefined) await (op === 'close' ? server.close() : server.crash());
}

const send = serveParent<FarmEvent>({
  /** Replies with the server's address. */
  start: async ([id, spec]): Promise<SocketAddr> => {
    const started = start(id as number, spec as FarmServerSpec);
    servers.set(id as number, started);
    started.catch(() => servers.delete(id as number));
    return (await started).address;
  },
  close: ([id]) => stop(id as number, 'close'),
  crash: ([id]) => stop(id as number, 'crash'),
}, 'PropolisFarm.start');
