// The simulated host's child process (see host-process.ts, which forks it): one SimHost, opened
// on the parent's word, whose methods the parent calls over the IPC channel and whose zone events
// all go back to it. It lives exactly as long as the channel: when the parent goes (close(), an
// exit, a SIGKILL), this process exits, and its simulated Propolis servers with it.
import pino from 'pino';
import type { Host } from '../host/index.js';
import { createLogger, effectiveLevel } from '../logger.js';
import { SimHost } from './host.js';
import { Batcher, type HostBatch, type HostMessage, type HostPart, type HostRequest, type WireError, type WireSimHostOptions } from './host-process.js';

if (process.send === undefined) {
  process.stderr.write('host-process-main: start it with child_process.fork (RemoteSimHost.start), it needs an IPC channel to its parent\n');
  process.exit(2);
}

// A parent gone mid-send is no error here: the 'disconnect' handler ends this process.
const out = new Batcher<HostMessage>((batch, done) => {
  if (process.connected) process.send!(batch, undefined, undefined, () => done(null));
}, () => {}, false);
const send = (message: HostMessage): void => out.push(message);

process.on('disconnect', () => process.exit(0));
// A terminal's ^C or a stop signal to the agent's process group is the agent's to handle: it
// closes this host as it shuts down.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

const PARTS: readonly HostPart[] = ['links', 'zones', 'datasets', 'network', 'events', 'host'];

let host: SimHost | null = null;
/** Waits under way that the parent may cancel, by request. */
const cancels = new Map<number, AbortController>();

function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { message: String(err), fields: {} };
  const fields: Record<string, unknown> = { name: err.name };
  for (const [k, v] of Object.entries(err)) {
    if (k === 'cause' || typeof v === 'function' || typeof v === 'bigint') continue;
    fields[k] = v;
  }
  return { message: err.message, fields };
}

/** The host's own methods a call may name: reachable, and the boot benchmark's hooks. */
const HOST_METHODS = new Set(['reachable', 'modelled', 'prestartPropolis']);

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
    if (host === opened) send({ op: 'event', event: { ...event, when: String(event.when) } });
  });
  host = opened;
}

async function call(req: number, part: HostPart, method: string, args: unknown[]): Promise<unknown> {
  if (host === null) throw new Error('the simulated host is not open');
  if (!PARTS.includes(part)) throw new Error(`no host part ${String(part)}`);
  const target = (part === 'host' ? host : host[part as Exclude<HostPart, 'host'>]) as unknown as Record<string, unknown>;
  const fn = target[method];
  if (typeof fn !== 'function' || method === 'subscribe' || method === 'constructor' || (part === 'host' && !HOST_METHODS.has(method))) {
    throw new Error(`no host method ${part}.${method}`);
  }
  // A wait's options get a signal the parent can abort with a cancel message.
  if (part === 'events' && method.startsWith('waitFor')) {
    const last = args.length - 1;
    const ctl = new AbortController();
    cancels.set(req, ctl);
    args[last] = { ...(args[last] as object), signal: ctl.signal };
  }
  try {
    return resultToWire(part, method, await (fn as (...a: unknown[]) => unknown).apply(target, args));
  } finally {
    cancels.delete(req);
  }
}

async function handle(message: HostRequest): Promise<unknown> {
  switch (message.op) {
    case 'open':
      return open(message.options);
    case 'call':
      return call(message.req, message.part, message.method, message.args);
    case 'close': {
      // Another host may be opened after this one (the Host suite's fresh host per test).
      const closing = host as Host | null;
      host = null;
      await closing?.close();
      return undefined;
    }
    case 'cancel':
      cancels.get(message.req)?.abort(new Error('cancelled by the agent'));
      return undefined;
  }
}

process.on('message', ({ batch }: HostBatch<HostRequest>) => {
  for (const message of batch) {
    if (message.op === 'cancel') {
      void handle(message);
      continue;
    }
    handle(message).then(
      (value) => send({ op: 'reply', req: message.req, ...(value === undefined ? {} : { value }) }),
      (err: unknown) => send({ op: 'reply', req: message.req, error: toWire(err) }),
    );
  }
});

send({ op: 'ready' });
