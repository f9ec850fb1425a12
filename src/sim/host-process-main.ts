// The simulated host's child process (see host-process.ts, which forks it): one SimHost, opened
// on the parent's word, whose methods the parent calls over the IPC channel (child-channel.ts)
// and whose zone events all go back to it. It lives exactly as long as the channel: when the
// parent goes (close(), an exit, a SIGKILL), this process exits, and its simulated Propolis
// servers with it.
import pino from 'pino';
import type { Host } from '../host/index.js';
import { createLogger, effectiveLevel } from '../logger.js';
import { serveParent } from './child-channel.js';
import { SimHost } from './host.js';
import { PART_METHODS, type HostPart, type WireSimHostOptions, type WireZoneEvent } from './host-process.js';

let host: SimHost | null = null;

/** bigints as strings: pools' sizes and drawn latencies' `at` are the results with any (events are converted where they are sent). */
function resultToWire(part: HostPart, method: string, value: unknown): unknown {
  const bigints = (part === 'datasets' && method === 'listPools') || (part === 'host' && method === 'modelled');
  if (!bigints || !Array.isArray(value)) return value;
  return value.map((p: Record<string, unknown>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, typeof v === 'bigint' ? String(v) : v])));
}

async function open(options: WireSimHostOptions): Promise<void> {
  if (host !== null) throw new Error('the simulated host is open already');
  const { logLevel, pools, ...rest } = options;
  const level = effectiveLevel(logLevel, {});
  const logger = level === 'silent' ? pino({ level }) : createLogger(level, 'sim-host');
  const opened = await SimHost.open({ ...rest, ...(pools ? { pools: pools.map((p) => ({ name: p.name, size: BigInt(p.size) })) } : {}), logger });
  opened.events.subscribe((event) => {
    if (host === opened) send({ ...event, when: String(event.when) });
  });
  host = opened;
}

/** `signal`: a wait's, which the parent aborts when its own signal does. */
async function call(part: HostPart, method: string, args: unknown[], signal: AbortSignal | undefined): Promise<unknown> {
  if (host === null) throw new Error('the simulated host is not open');
  if (!Object.hasOwn(PART_METHODS, part)) throw new Error(`no host part ${String(part)}`);
  const target = (part === 'host' ? host : host[part as Exclude<HostPart, 'host'>]) as unknown as Record<string, unknown>;
  const fn = target[method];
  if (!PART_METHODS[part].has(method) || typeof fn !== 'function') throw new Error(`no host method ${part}.${method}`);
  if (signal !== undefined) {
    const last = args.length - 1;
    args[last] = { ...(args[last] as object), signal };
  }
  return resultToWire(part, method, await (fn as (...a: unknown[]) => unknown).apply(target, args));
}

const send = serveParent<WireZoneEvent>({
  open: ([options]) => open(options as WireSimHostOptions),
  call: ([part, method, args], signal) => call(part as HostPart, method as string, args as unknown[], signal),
  close: async () => {
    // Another host may be opened after this one (the Host suite's fresh host per test).
    const closing = host as Host | null;
    host = null;
    await closing?.close();
  },
}, 'RemoteSimHost.start');
