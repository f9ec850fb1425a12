// The simulated host in a process of its own (`[host] simulation = "process"`): a SimHost in a
// child process (host-process-main.ts), and here a Host that forwards every call to it over the
// IPC channel. On a sled the agent's host calls are door calls and ioctls: the work behind them
// (zoneadmd, dlmgmtd, svc.startd, the kernel, each Propolis) is other processes' and the
// kernel's, not the agent's. In-process, the simulated host's work sat on the agent's event loop
// and in its CPU and heap; here it does not, and each call costs the agent an IPC round trip.
//
// What crosses the channel, in batches (every message one turn of the event loop makes goes as one
// IPC message, so one write and one JSON parse each way: a start makes ~20 host calls, and one IPC
// message each cost the agent about as much CPU as the simulated host's own work had in process):
// calls by part and method with JSON arguments, and their results or
// errors (message, code and the error's own fields; a class is not kept, a code is); zone events,
// every one, which this side hands to its own listeners by zone; a wait's AbortSignal, as a cancel
// message (the wait rejects here at once with ABORT_ERR, as SimHost's does). bigints (an event's
// `when`, a pool's sizes) cross as strings.
//
// The child lives exactly as long as the channel: when this process goes (close(), an exit, a
// SIGKILL), it exits, and its simulated Propolis servers with it, as the in-process host's die
// with the agent; the next start finds the state on disk, as after a crash.
import { fork, type ChildProcess } from 'node:child_process';
import type { LevelWithSilent, Logger } from 'pino';
import type { SocketAddr } from '../common/address.js';
import { childModule } from '../common/child-module.js';
import { ZoneListeners } from '../host/zone-listeners.js';
import {
  hostError,
  type Host,
  type HostDatasets,
  type HostError,
  type HostEvents,
  type HostLinks,
  type HostNetwork,
  type HostZones,
  type PoolInfo,
  type WaitOptions,
  type ZoneStateEvent,
} from '../host/index.js';
import type { DrawnLatency, SimHostOptions } from './host.js';

/** SimHostOptions as they cross the channel: no logger (the child logs at `logLevel` to the stderr it shares), pool sizes as strings. */
export type WireSimHostOptions = Omit<SimHostOptions, 'logger' | 'pools'> & {
  pools?: Array<{ name: string; size: string }>;
  logLevel: LevelWithSilent;
};

/** The parts of a Host a call can go to; `host` is the host itself (reachable). */
export type HostPart = 'links' | 'zones' | 'datasets' | 'network' | 'events' | 'host';

/** What an error carries across: its message and its own fields (code, exit status, ...). */
export interface WireError {
  message: string;
  fields: Record<string, unknown>;
}

/** What goes over the channel: the messages one turn of the event loop sent, in order. */
export interface HostBatch<M> {
  batch: M[];
}

/**
 * Sends messages in batches: with `turn`, one per turn of the event loop (setImmediate, after this
 * turn's I/O); else one per microtask checkpoint (what one callback and its promise reactions sent).
 */
export class Batcher<M> {
  #queue: M[] = [];

  constructor(
    private readonly write: (batch: HostBatch<M>, done: (err: Error | null) => void) => void,
    private readonly failed: (messages: M[], err: Error) => void,
    private readonly turn = true,
  ) {}

  push(message: M): void {
    if (this.#queue.length === 0) {
      if (this.turn) setImmediate(() => this.#flush());
      else queueMicrotask(() => this.#flush());
    }
    this.#queue.push(message);
  }

  #flush(): void {
    const messages = this.#queue;
    this.#queue = [];
    this.write({ batch: messages }, (err) => {
      if (err !== null && err !== undefined) this.failed(messages, err);
    });
  }
}

/** Parent to child; each but cancel is answered by a reply with the same req. */
export type HostRequest =
  | { op: 'open'; req: number; options: WireSimHostOptions }
  | { op: 'call'; req: number; part: HostPart; method: string; args: unknown[] }
  | { op: 'cancel'; req: number }
  | { op: 'close'; req: number };

/** Child to parent. */
export type HostMessage =
  | { op: 'ready' }
  | { op: 'reply'; req: number; value?: unknown; error?: WireError }
  | { op: 'event'; event: Omit<ZoneStateEvent, 'when'> & { when: string } };

type WithoutReq<T> = T extends unknown ? Omit<T, 'req'> : never;

/** How long the child has to say it is ready (it loads its modules, through tsx from sources). */
const READY_MS = 60_000;
/** How long the child is given to exit after its channel is closed before it is killed. */
const EXIT_GRACE_MS = 5_000;

function abortError(reason: unknown): HostError {
  return Object.assign(hostError('ABORT_ERR', 'the operation was aborted', reason), { name: 'AbortError' });
}

function fromWire(e: WireError): Error {
  return Object.assign(new Error(e.message), e.fields);
}

function poolsFromWire(pools: Array<Omit<PoolInfo, 'size' | 'allocated' | 'free'> & { size: string; allocated: string; free: string }>): PoolInfo[] {
  return pools.map((p) => ({ ...p, size: BigInt(p.size), allocated: BigInt(p.allocated), free: BigInt(p.free) }));
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * The child process: one simulated host open in it at a time (RemoteSimHost), opened again after
 * it is closed (the Host suite opens a fresh host per test without a process each).
 */
export class SimHostProcess {
  readonly #child: ChildProcess;
  readonly #log: Logger;
  readonly #pending = new Map<number, Pending>();
  #nextReq = 0;
  /** The host open in it, whose listeners get the zone events. */
  #current: RemoteSimHost | null = null;
  /** Why it cannot be used any more (ended, or the child gone); null while it can. */
  #ended: Error | null = null;
  #ending: Promise<void> | null = null;
  readonly #exited: Promise<void>;
  readonly #out: Batcher<HostRequest>;

  private constructor(child: ChildProcess, log: Logger, onLost: ((why: string) => void) | undefined) {
    this.#child = child;
    this.#log = log;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.#out = new Batcher<HostRequest>(
      (batch, done) => {
        if (!child.connected) return done(new Error('the channel is closed'));
        child.send(batch, (err) => done(err ?? null));
      },
      (messages, err) => {
        for (const m of messages) {
          const p = this.#pending.get(m.req);
          if (p === undefined) continue;
          this.#pending.delete(m.req);
          p.reject(hostError('ECANCELED', `the simulated host process is gone: ${err.message}`, err));
        }
      },
    );
    child.on('message', (m: HostBatch<HostMessage>) => {
      for (const message of m.batch) this.#receive(message);
    });
    child.once('exit', (code, signal) => {
      const why = hostError('ECANCELED', `the simulated host process exited (${signal ?? `code ${code}`})`);
      if (this.#ended === null) {
        this.#ended = why;
        this.#log.error({ code, signal }, 'the simulated host process exited; its host calls fail from now on');
        onLost?.(why.message);
      }
      for (const p of this.#pending.values()) p.reject(why);
      this.#pending.clear();
    });
  }

  /**
   * Forks the child and waits until it is ready. `onLost`: it exited without end() (a crash, a
   * kill). `holdFds`: descriptors the child keeps open as long as it lives (the state directory's
   * lock, so that a new agent cannot open the directory while a killed one's child still writes).
   */
  static async start(log: Logger, onLost?: (why: string) => void, holdFds: readonly number[] = []): Promise<SimHostProcess> {
    const { main, execArgv } = childModule(import.meta.url, 'host-process-main');
    const child = fork(main, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...holdFds], serialization: 'json' });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the simulated host process did not start within ${READY_MS} ms`)), READY_MS);
        const onMessage = (m: HostBatch<HostMessage>): void => {
          if (!m.batch.some((message) => message.op === 'ready')) return;
          cleanup();
          resolve();
        };
        const onExit = (code: number | null, signal: string | null): void => {
          cleanup();
          reject(new Error(`the simulated host process exited as it started (${signal ?? `code ${code}`})`));
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          child.off('message', onMessage);
          child.off('exit', onExit);
        };
        child.on('message', onMessage);
        child.once('exit', onExit);
      });
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    return new SimHostProcess(child, log, onLost);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Opens the simulated host in the child (its state loaded from `options.stateDir`); one at a time. */
  async open(options: Omit<SimHostOptions, 'logger'> & { logLevel: LevelWithSilent }, owned = false): Promise<RemoteSimHost> {
    if (this.#current !== null) throw new Error('a simulated host is open in this process already');
    const { pools, ...rest } = options;
    const wire: WireSimHostOptions = { ...rest, ...(pools ? { pools: pools.map((p) => ({ name: p.name, size: String(p.size) })) } : {}) };
    await this.request({ op: 'open', options: wire });
    this.#current = new RemoteSimHost(this, this.#log, owned);
    return this.#current;
  }

  /** @internal RemoteSimHost.close(): the host in the child is closed. */
  async closed(host: RemoteSimHost): Promise<void> {
    try {
      await this.request({ op: 'close' });
    } finally {
      if (this.#current === host) this.#current = null;
    }
  }

  /** Ends the child, after closing the host open in it, if any (its calls fail from then on). */
  end(): Promise<void> {
    this.#ending ??= (async () => {
      const current = this.#current;
      if (current !== null) await this.closed(current).catch((err: unknown) => this.#log.warn({ err }, 'closing the simulated host in its process failed'));
      this.#ended ??= hostError('ECANCELED', 'the simulated host process was ended');
      if (this.#child.connected) this.#child.disconnect();
      const grace = setTimeout(() => this.#child.kill('SIGKILL'), EXIT_GRACE_MS);
      await this.#exited;
      clearTimeout(grace);
    })();
    return this.#ending;
  }

  #receive(m: HostMessage): void {
    switch (m.op) {
      case 'reply': {
        const p = this.#pending.get(m.req);
        if (p === undefined) return; // cancelled here already
        this.#pending.delete(m.req);
        if (m.error !== undefined) p.reject(fromWire(m.error));
        else p.resolve(m.value);
        return;
      }
      case 'event':
        this.#current?.deliver({ ...m.event, when: BigInt(m.event.when) });
        return;
      case 'ready':
        return;
    }
  }

  /** @internal A request and its reply; `req` given when the caller needs it (to cancel). */
  request(message: WithoutReq<Exclude<HostRequest, { op: 'cancel' }>>, req = this.nextReq()): Promise<unknown> {
    if (this.#ended !== null) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      this.#pending.set(req, { resolve, reject });
      this.#out.push({ ...message, req } as HostRequest);
    });
  }

  /** @internal */
  nextReq(): number {
    return this.#nextReq++;
  }

  /** @internal Forgets a request (its caller settled it) and tells the child to cancel it. */
  cancel(req: number): boolean {
    if (!this.#pending.delete(req)) return false;
    this.#out.push({ op: 'cancel', req });
    return true;
  }
}

/** A simulated host open in a SimHostProcess: every call goes to the child. */
export class RemoteSimHost implements Host {
  readonly kind = 'sim' as const;
  readonly links: HostLinks;
  readonly zones: HostZones;
  readonly datasets: HostDatasets;
  readonly network: HostNetwork;
  readonly events: HostEvents;

  readonly #proc: SimHostProcess;
  readonly #log: Logger;
  /** Whether close() ends the process too (a host started with RemoteSimHost.start). */
  readonly #owned: boolean;
  readonly #listeners = new ZoneListeners();
  #closing: Promise<void> | null = null;

  /** @internal made by SimHostProcess.open */
  constructor(proc: SimHostProcess, log: Logger, owned: boolean) {
    this.#proc = proc;
    this.#log = log;
    this.#owned = owned;
    // Every method of a part is a call (one function each, made at its first use); `then` is not
    // one (the part is not a promise).
    const part = <T extends object>(name: HostPart): T => {
      const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
      return new Proxy({} as T, {
        get: (_t, method) => {
          if (typeof method !== 'string' || method === 'then') return undefined;
          let fn = methods.get(method);
          if (fn === undefined) methods.set(method, (fn = (...args: unknown[]) => this.#call(name, method, args)));
          return fn;
        },
      });
    };
    this.links = part<HostLinks>('links');
    this.zones = part<HostZones>('zones');
    this.network = part<HostNetwork>('network');
    const datasets = part<HostDatasets>('datasets');
    this.datasets = new Proxy(datasets, {
      get: (t, method) => (method === 'listPools'
        ? async () => poolsFromWire(await this.#call('datasets', 'listPools', []) as Parameters<typeof poolsFromWire>[0])
        : Reflect.get(t, method)),
    });
    this.events = {
      subscribe: (listener, zone) => this.#listeners.add(listener, zone),
      waitForZoneRunning: (zone, options) => this.#wait('waitForZoneRunning', [zone, options]),
      waitForService: (zone, fmri, states, options) => this.#wait('waitForService', [zone, fmri, states, options]),
    };
  }

  /** Forks a child of its own and opens the simulated host in it; close() ends both. */
  static async start(
    options: Omit<SimHostOptions, 'logger'> & { logLevel: LevelWithSilent }, log: Logger,
    process: { onLost?: (why: string) => void; holdFds?: readonly number[] } = {},
  ): Promise<RemoteSimHost> {
    const proc = await SimHostProcess.start(log, process.onLost, process.holdFds);
    try {
      const host = await proc.open(options, true);
      // Not `pid`: pino's own field of that name is this process's.
      log.info({ sim_host_pid: proc.pid }, 'simulated host: in its own process');
      return host;
    } catch (err) {
      await proc.end();
      throw err;
    }
  }

  /** The child's pid (bench:scale measures it apart from the agent). */
  get pid(): number | undefined {
    return this.#proc.pid;
  }

  reachable(zone: string, addr: SocketAddr): Promise<SocketAddr> {
    return this.#call('host', 'reachable', [zone, addr]) as Promise<SocketAddr>;
  }

  /**
   * The boot benchmark's hook, SimHost.modelled (with recordLatencies). `at` is
   * process.hrtime.bigint() in the child: the system's monotonic clock, the same as here.
   */
  async modelled(zone: string): Promise<DrawnLatency[]> {
    const drawn = await this.#call('host', 'modelled', [zone]) as Array<Omit<DrawnLatency, 'at'> & { at: string }>;
    return drawn.map((d) => ({ ...d, at: BigInt(d.at) }));
  }

  /** The boot benchmark's hook, SimHost.prestartPropolis. */
  async prestartPropolis(count: number): Promise<void> {
    await this.#call('host', 'prestartPropolis', [count]);
  }

  /** Closes the host in the child (its servers stop, its state is written); ends the child if it is this host's own. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#owned) await this.#proc.end();
      else await this.#proc.closed(this).catch((err: unknown) => this.#log.warn({ err }, 'closing the simulated host in its process failed'));
      this.#listeners.clear();
    })();
    return this.#closing;
  }

  /** @internal A zone event from the child. */
  deliver(event: ZoneStateEvent): void {
    this.#listeners.emit(event, (err) => this.#log.error({ err }, 'a zone event listener threw'));
  }

  #call(part: HostPart, method: string, args: unknown[]): Promise<unknown> {
    if (this.#closing !== null) return Promise.reject(hostError('ECANCELED', 'the simulated host was closed'));
    return this.#proc.request({ op: 'call', part, method, args });
  }

  /** A wait whose options may carry an AbortSignal: sent without it, cancelled in the child when it aborts. */
  #wait<T>(method: 'waitForZoneRunning' | 'waitForService', args: [...unknown[], WaitOptions]): Promise<T> {
    const options = args[args.length - 1] as WaitOptions | undefined;
    const signal = options?.signal;
    if (signal === undefined) return this.#call('events', method, args) as Promise<T>;
    if (signal.aborted) return Promise.reject(abortError(signal.reason));
    if (this.#closing !== null) return Promise.reject(hostError('ECANCELED', 'the simulated host was closed'));
    const { signal: _signal, ...plain } = options as WaitOptions;
    const req = this.#proc.nextReq();
    const sent = this.#proc.request({ op: 'call', part: 'events', method, args: [...args.slice(0, -1), plain] }, req);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        // The reply, if it comes, is dropped: the wait rejects here, as SimHost's does.
        if (this.#proc.cancel(req)) reject(abortError(signal.reason));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      sent.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value as T);
        },
        (err: Error) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }
}
