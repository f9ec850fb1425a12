// The Propolis farm: simulated Propolis servers (propolis.ts) in one child process of their own
// (propolis-farm-main.ts), so that their HTTP work and memory are not on the agent's event loop
// and heap, as on a sled, where each Propolis is a process of its own. The simulated host uses
// it with `propolis: 'process'` (SimHostOptions, `[host] propolis = "process"`); anything else
// can use it without a host:
//
//   const farm = await PropolisFarm.start();
//   const server = await farm.startServer({ latencies: { vmBoot: 300, vmStep: 20 }, warm: true });
//   new PropolisClient(server.address) ...        // 127.0.0.1:<port>, served by farm.pid
//   await server.close();                         // or server.crash(): it stops answering at once
//   await farm.close();                           // the child exits; so would it if we died
//
// The child runs from the same tree as this module: src/ through tsx when this is TypeScript
// (vitest, `node --import tsx`), dist/ with plain node after `npm run build`. Requests, replies
// and the VMs' changes go over child-channel.ts, in batches. The child exits when its IPC channel
// disconnects, so an agent killed with SIGKILL leaves no server behind; the sim host starts them
// again (with their persisted VMs) on its next start.
//
// A VM's step latencies are drawn in the child, from a generator seeded per server
// (FarmServerOptions.seed), and each is reported with the change that scheduled the step
// (onDrawn), for the host's modelled time. What that changes for a seeded sim host: in-process,
// every VM step draws from the host's one generator, interleaved with all its other draws in the
// order things happen; here each server takes one draw from the host's generator as its seed
// when it starts, and its VM's steps draw from that seed only. A server's step latencies then
// depend on its seed and its own steps, not on how other VMs interleave; the host's other
// latencies, for the same seed, are not the numbers in-process mode draws (one draw per server
// start instead of one per VM step).
//
// The handles' surface is what the sim host uses of a SimPropolis (address, close, crash) plus
// pid, closed and snapshot() (the VM as last reported); there is no forceState() or ensured():
// tests that need those run Propolis in-process.
import type { LevelWithSilent } from 'pino';
import type { SocketAddr } from '../common/address.js';
import { ChildChannel, ChildGoneError } from './child-channel.js';
import type { SimPropolisLatencies, SimPropolisSnapshot } from './propolis.js';

/** A server as the child starts it (the part of FarmServerOptions that crosses the channel). */
export interface FarmServerSpec {
  /** Default 1 ms per step, as SimPropolis. */
  latencies?: Partial<SimPropolisLatencies>;
  /** A VM to continue (SimPropolisOptions.initial). */
  initial?: SimPropolisSnapshot;
  /** Each step latency is drawn uniformly from ±jitter of its value (0..1). Default 0. */
  jitter?: number;
  /** Seeds that draw. Default 0. */
  seed?: number;
  /** SimPropolisOptions.warm: the farm's first such server answers one request before it is handed out. */
  warm?: boolean;
  /** Bindings of its log lines (the farm logs at PropolisFarmOptions.logLevel). */
  log?: Record<string, string>;
}

export interface FarmServerOptions extends FarmServerSpec {
  /** After every change of the VM, with the new snapshot. */
  onChange?: (snapshot: SimPropolisSnapshot) => void;
  /** The latency the VM drew for its next step, after the onChange of the change that scheduled it. */
  onDrawn?: (ms: number) => void;
  /** The farm process died under the server (not close(), crash() or PropolisFarm.close()). */
  onGone?: () => void;
}

export interface PropolisFarmOptions {
  /** The servers' log level; their lines go to this process's stderr. Default silent. */
  logLevel?: LevelWithSilent;
  /** The child exited without close(), with why; each server's onGone was called first. */
  onExit?: (why: string) => void;
}

/** What the child sends of a server's VM: a change, or the latency its next step drew (after the change that scheduled it). */
export interface FarmEvent {
  id: number;
  snapshot?: SimPropolisSnapshot;
  drawn?: number;
}

/** A simulated Propolis server in the farm: what SimSmf uses of a SimPropolis, and its VM as last reported. */
export class FarmPropolis {
  private last: SimPropolisSnapshot;
  private listening: SocketAddr | null = null;
  private stopped = false;
  private stopping: Promise<void> | null = null;

  /** @internal made by PropolisFarm.startServer */
  constructor(
    private readonly farm: PropolisFarm,
    private readonly id: number,
    private readonly options: FarmServerOptions,
  ) {
    this.last = options.initial ?? { request: null, state: 'Creating', gen: 0 };
  }

  /** Where it listens (127.0.0.1). */
  get address(): SocketAddr {
    if (this.listening === null) throw new Error('the simulated Propolis in the farm is not listening yet');
    return this.listening;
  }

  /** The farm's process, which serves this. */
  get pid(): number {
    return this.farm.pid;
  }

  /** Whether close() or crash() has been called, or the farm died. */
  get closed(): boolean {
    return this.stopped;
  }

  /** The VM as the last change message reported it. */
  snapshot(): SimPropolisSnapshot {
    return this.last;
  }

  /** Stops the server and its VM's timer; idempotent. */
  close(): Promise<void> {
    return this.stop('close');
  }

  /** The server stops answering at once, as if its process died (SimPropolis.crash). */
  crash(): Promise<void> {
    return this.stop('crash');
  }

  /** @internal the child's answer to the start */
  listens(address: SocketAddr): void {
    this.listening = address;
  }

  /** @internal a change message for this server */
  changed(snapshot: SimPropolisSnapshot | undefined, drawn: number | undefined): void {
    if (snapshot !== undefined) {
      this.last = snapshot;
      this.options.onChange?.(snapshot);
    }
    if (drawn !== undefined) this.options.onDrawn?.(drawn);
  }

  /** @internal the farm died */
  gone(): void {
    // One that never listened is told by its start's rejection instead.
    if (this.stopped || this.listening === null) return;
    this.stopped = true;
    this.options.onGone?.();
  }

  private stop(op: 'close' | 'crash'): Promise<void> {
    this.stopped = true;
    // Stopped either way: an error from the farm still leaves nothing to serve.
    this.stopping ??= this.farm.request(op, this.id).then(() => {}, () => {}).finally(() => this.farm.forget(this.id));
    return this.stopping;
  }
}

export class PropolisFarm {
  private readonly servers = new Map<number, FarmPropolis>();
  private readonly channel: ChildChannel<FarmEvent>;
  private nextId = 1;
  private closing: Promise<void> | null = null;

  private constructor(options: PropolisFarmOptions) {
    this.channel = new ChildChannel<FarmEvent>({
      from: import.meta.url,
      module: 'propolis-farm-main',
      name: 'the Propolis farm',
      args: [options.logLevel ?? 'silent'],
      // stdout stays the agent's alone (scripts read it); the servers' log lines share stderr.
      stdout: 'ignore',
      onEvent: (e) => this.servers.get(e.id)?.changed(e.snapshot, e.drawn),
      onLost: (err) => {
        const why = `${err.message}; its servers are gone`;
        for (const server of this.servers.values()) server.gone();
        this.servers.clear();
        options.onExit?.(why);
      },
    });
  }

  /** Forks the farm process and waits until it takes requests. */
  static async start(options: PropolisFarmOptions = {}): Promise<PropolisFarm> {
    const farm = new PropolisFarm(options);
    await farm.channel.ready();
    return farm;
  }

  /** The farm's process id. */
  get pid(): number {
    return this.channel.pid ?? -1;
  }

  /** Starts a server in the farm; resolves once it listens (and, with warm, has answered once). */
  async startServer(options: FarmServerOptions = {}): Promise<FarmPropolis> {
    const id = this.nextId++;
    const { onChange: _onChange, onDrawn: _onDrawn, onGone: _onGone, ...spec } = options;
    const server = new FarmPropolis(this, id, options);
    // Known before the answer: a VM continued from `initial` reports its first draw before it.
    this.servers.set(id, server);
    try {
      server.listens(await this.channel.request<SocketAddr>('start', [id, spec satisfies FarmServerSpec]));
      return server;
    } catch (err) {
      this.servers.delete(id);
      // The child's own errors say which process they come from; a farm gone says so already.
      if (!(err instanceof ChildGoneError)) (err as Error).message = `the Propolis farm (pid ${this.pid}): ${(err as Error).message}`;
      throw err;
    }
  }

  /** Whether the child still runs (false once closed or dead: start a new farm). */
  get alive(): boolean {
    return this.channel.alive;
  }

  /** Closes the channel, which ends the child and every server in it; idempotent. */
  close(): Promise<void> {
    this.closing ??= this.channel.close().then(() => this.servers.clear());
    return this.closing;
  }

  /** @internal FarmPropolis.stop(), which takes any outcome as stopped. */
  request(op: 'close' | 'crash', id: number): Promise<unknown> {
    return this.channel.request(op, [id]);
  }

  /** @internal */
  forget(id: number): void {
    this.servers.delete(id);
  }
}
