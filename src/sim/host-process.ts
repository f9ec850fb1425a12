// The simulated host in a process of its own (`[host] simulation = "process"`): a SimHost in a
// child process (host-process-main.ts), and here a Host that forwards every call to it over the
// IPC channel. On a sled the agent's host calls are door calls and ioctls: the work behind them
// (zoneadmd, dlmgmtd, svc.startd, the kernel, each Propolis) is other processes' and the
// kernel's, not the agent's. In-process, the simulated host's work sat on the agent's event loop
// and in its CPU and heap; here it does not, and each call costs the agent an IPC round trip.
//
// What crosses the channel (child-channel.ts, which batches it): calls by part and method with
// JSON arguments, and their results or errors (message, code and the error's own fields; a class
// is not kept, a code is); zone events, every one, which this side hands to its own listeners by
// zone; a wait's AbortSignal, as a cancel (the wait rejects here at once with ABORT_ERR, as
// SimHost's does). bigints (an event's `when`, a pool's sizes) cross as strings.
//
// The child lives exactly as long as the channel: when this process goes (close(), an exit, a
// SIGKILL), it exits, and its simulated Propolis servers with it, as the in-process host's die
// with the agent; the next start finds the state on disk, as after a crash.
import type { LevelWithSilent, Logger } from 'pino';
import type { SocketAddr } from '../common/address.js';
import { ZoneListeners } from '../host/zone-listeners.js';
import {
  hostError,
  type Host,
  type HostDatasets,
  type HostEvents,
  type HostLinks,
  type HostNetwork,
  type HostZones,
  type PoolInfo,
  type WaitOptions,
  type ZoneStateEvent,
} from '../host/index.js';
import { ChildChannel } from './child-channel.js';
import type { DrawnLatency, SimHostOptions } from './host.js';

/** SimHostOptions as they cross the channel: no logger (the child logs at `logLevel` to the stderr it shares), pool sizes as strings. */
export type WireSimHostOptions = Omit<SimHostOptions, 'logger' | 'pools'> & {
  pools?: Array<{ name: string; size: string }>;
  logLevel: LevelWithSilent;
};

/** The parts of a Host a call can go to; `host` is the host itself (reachable). */
export type HostPart = 'links' | 'zones' | 'datasets' | 'network' | 'events' | 'host';

/**
 * The methods a call may name, per part: every method of the Host interfaces (the compiler
 * checks the lists are exactly those), the host's own reachable and the boot benchmark's hooks.
 * subscribe is not a call: events come back on their own.
 */
const methods = <T>(all: Record<T extends object ? Exclude<keyof T, symbol> : never, true>): ReadonlySet<string> => new Set(Object.keys(all));
export const PART_METHODS: Readonly<Record<HostPart, ReadonlySet<string>>> = {
  links: methods<HostLinks>({ createVnic: true, deleteVnic: true, listVnics: true, linkExists: true, setZone: true }),
  zones: methods<HostZones>({
    configure: true, config: true, install: true, clone: true, setProfile: true, boot: true, halt: true, uninstall: true, delete: true, list: true, state: true, exec: true,
  }),
  datasets: methods<HostDatasets>({ create: true, get: true, set: true, exists: true, listChildren: true, destroy: true, listPools: true }),
  network: methods<HostNetwork>({
    available: true, setUnderlay: true, createPort: true, deletePort: true, listPorts: true, addRouterEntry: true, delRouterEntry: true,
    setFirewallRules: true, setExternalIps: true, setV2P: true, clearV2P: true, dumpV2P: true, trace: true,
  }),
  events: methods<Omit<HostEvents, 'subscribe'>>({ waitForZoneRunning: true, waitForService: true }),
  host: new Set(['reachable', 'modelled', 'prestartPropolis']),
};

/** A zone event as the child sends it. */
export type WireZoneEvent = Omit<ZoneStateEvent, 'when'> & { when: string };

function poolsFromWire(pools: Array<Omit<PoolInfo, 'size' | 'allocated' | 'free'> & { size: string; allocated: string; free: string }>): PoolInfo[] {
  return pools.map((p) => ({ ...p, size: BigInt(p.size), allocated: BigInt(p.allocated), free: BigInt(p.free) }));
}

/**
 * The child process: one simulated host open in it at a time (RemoteSimHost), opened again after
 * it is closed (the Host suite opens a fresh host per test without a process each).
 */
export class SimHostProcess {
  readonly #channel: ChildChannel<WireZoneEvent>;
  readonly #log: Logger;
  /** The host open in it, whose listeners get the zone events. */
  #current: RemoteSimHost | null = null;
  #ending: Promise<void> | null = null;

  private constructor(log: Logger, onLost: ((why: string) => void) | undefined, holdFds: readonly number[]) {
    this.#log = log;
    this.#channel = new ChildChannel<WireZoneEvent>({
      from: import.meta.url,
      module: 'host-process-main',
      name: 'the simulated host process',
      stdout: 'inherit',
      holdFds,
      onEvent: (event) => this.#current?.deliver({ ...event, when: BigInt(event.when) }),
      onLost: (why) => {
        this.#log.error({ code: why.exitCode, signal: why.signal }, 'the simulated host process exited; its host calls fail from now on');
        onLost?.(why.message);
      },
    });
  }

  /**
   * Forks the child and waits until it is ready. `onLost`: it exited without end() (a crash, a
   * kill). `holdFds`: descriptors the child keeps open as long as it lives (the state directory's
   * lock, so that a new agent cannot open the directory while a killed one's child still writes).
   */
  static async start(log: Logger, onLost?: (why: string) => void, holdFds: readonly number[] = []): Promise<SimHostProcess> {
    const proc = new SimHostProcess(log, onLost, holdFds);
    await proc.#channel.ready();
    return proc;
  }

  get pid(): number | undefined {
    return this.#channel.pid;
  }

  /** Opens the simulated host in the child (its state loaded from `options.stateDir`); one at a time. */
  async open(options: Omit<SimHostOptions, 'logger'> & { logLevel: LevelWithSilent }, owned = false): Promise<RemoteSimHost> {
    if (this.#current !== null) throw new Error('a simulated host is open in this process already');
    const { pools, ...rest } = options;
    const wire: WireSimHostOptions = { ...rest, ...(pools ? { pools: pools.map((p) => ({ name: p.name, size: String(p.size) })) } : {}) };
    await this.#channel.request('open', [wire]);
    this.#current = new RemoteSimHost(this, this.#log, owned);
    return this.#current;
  }

  /** @internal RemoteSimHost.close(): the host in the child is closed. */
  async closed(host: RemoteSimHost): Promise<void> {
    try {
      await this.#channel.request('close');
    } finally {
      if (this.#current === host) this.#current = null;
    }
  }

  /** Ends the child, after closing the host open in it, if any (its calls fail from then on). */
  end(): Promise<void> {
    this.#ending ??= (async () => {
      const current = this.#current;
      if (current !== null) await this.closed(current).catch((err: unknown) => this.#log.warn({ err }, 'closing the simulated host in its process failed'));
      await this.#channel.close();
    })();
    return this.#ending;
  }

  /** @internal A call of the host in the child; `signal` cancels it there (a wait). */
  call(part: HostPart, method: string, args: unknown[], signal?: AbortSignal): Promise<unknown> {
    return this.#channel.request('call', [part, method, args], signal === undefined ? {} : { signal });
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

  #call(part: HostPart, method: string, args: unknown[], signal?: AbortSignal): Promise<unknown> {
    if (this.#closing !== null) return Promise.reject(hostError('ECANCELED', 'the simulated host was closed'));
    return this.#proc.call(part, method, args, signal);
  }

  /** A wait whose options may carry an AbortSignal: sent without it, cancelled in the child when it aborts. */
  #wait<T>(method: 'waitForZoneRunning' | 'waitForService', args: [...unknown[], WaitOptions]): Promise<T> {
    const options = args[args.length - 1] as WaitOptions | undefined;
    if (options?.signal === undefined) return this.#call('events', method, args) as Promise<T>;
    const { signal, ...plain } = options;
    return this.#call('events', method, [...args.slice(0, -1), plain], signal) as Promise<T>;
  }
}
