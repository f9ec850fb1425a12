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
// (vitest, `node --import tsx`), dist/ with plain node after `npm run build`. It exits when its
// IPC channel disconnects, so an agent killed with SIGKILL leaves no server behind; the sim host
// starts them again (with their persisted VMs) on its next start.
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
import { fork, type ChildProcess } from 'node:child_process';
import type { LevelWithSilent } from 'pino';
import type { SocketAddr } from '../common/address.js';
import { childModule } from '../common/child-module.js';
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

// ---- the channel (propolis-farm-main.ts is the other end) ----

/** Parent to child; each is answered by a reply with the same req. */
export type FarmRequest =
  | { op: 'start'; req: number; id: number; spec: FarmServerSpec }
  | { op: 'close' | 'crash'; req: number; id: number };

/** Child to parent. */
export type FarmMessage =
  | { op: 'ready' }
  | { op: 'reply'; req: number; address?: SocketAddr; error?: string }
  | { op: 'change'; id: number; snapshot?: SimPropolisSnapshot; drawn?: number };

/** How long the child is given to exit after its channel is closed before it is killed. */
const EXIT_GRACE_MS = 5_000;
/** How long a forked farm has to say it is ready (it loads its modules, through tsx from sources). */
const FARM_READY_MS = 60_000;

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
    this.stopping ??= this.farm.request({ op, id: this.id }).then(() => {}, () => {}).finally(() => this.farm.forget(this.id));
    return this.stopping;
  }
}

export class PropolisFarm {
  private readonly servers = new Map<number, FarmPropolis>();
  private readonly pending = new Map<number, { op: FarmRequest['op']; resolve: (address: SocketAddr | undefined) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private nextReq = 1;
  /** Why requests fail from now on; null while the child runs. */
  private ended: string | null = null;
  private closing: Promise<void> | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    options: PropolisFarmOptions,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    // Each send reports its own failure (request()), and the child's end comes as 'exit': an
    // 'error' (a kill of a process already gone) has nothing to add, and unheard it would throw.
    child.on('error', () => {});
    child.on('message', (message: FarmMessage) => this.received(message));
    child.once('exit', (code, signal) => {
      if (this.closing !== null) {
        this.end('the Propolis farm was closed');
        this.servers.clear();
        return;
      }
      const why = `the Propolis farm (pid ${this.pid}) exited unexpectedly (${signal ?? `code ${code}`}); its servers are gone`;
      this.end(why);
      for (const server of this.servers.values()) server.gone();
      this.servers.clear();
      options.onExit?.(why);
    });
  }

  /** Forks the farm process and waits until it takes requests. */
  static async start(options: PropolisFarmOptions = {}): Promise<PropolisFarm> {
    const { main, execArgv } = childModule(import.meta.url, 'propolis-farm-main');
    // stdout stays the agent's alone (scripts read it); the servers' log lines share stderr.
    const child = fork(main, [options.logLevel ?? 'silent'], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        cleanup();
        // One that errs or hangs may still run: it would outlive the host otherwise.
        child.kill('SIGKILL');
        reject(new Error(`cannot start the Propolis farm (${process.execPath} ${[...execArgv, main].join(' ')}): ${why}`));
      };
      const onMessage = (message: FarmMessage): void => {
        if (message.op !== 'ready') return;
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => fail(err.message);
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => fail(`it exited (${signal ?? `code ${code}`}) before it was ready; its stderr says why`);
      const timer = setTimeout(() => fail(`not ready within ${FARM_READY_MS} ms`), FARM_READY_MS);
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('error', onError);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('error', onError);
      child.once('exit', onExit);
    });
    return new PropolisFarm(child, options);
  }

  /** The farm's process id. */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Starts a server in the farm; resolves once it listens (and, with warm, has answered once). */
  async startServer(options: FarmServerOptions = {}): Promise<FarmPropolis> {
    const id = this.nextId++;
    const { onChange: _onChange, onDrawn: _onDrawn, onGone: _onGone, ...spec } = options;
    const server = new FarmPropolis(this, id, options);
    // Known before the answer: a VM continued from `initial` reports its first draw before it.
    this.servers.set(id, server);
    try {
      const address = await this.request({ op: 'start', id, spec });
      if (address === undefined) throw new Error(`the Propolis farm (pid ${this.pid}) started a server but sent no address`);
      server.listens(address);
      return server;
    } catch (err) {
      this.servers.delete(id);
      throw err;
    }
  }

  /** Whether the child still runs (false once closed or dead: start a new farm). */
  get alive(): boolean {
    return this.ended === null;
  }

  /** Closes the channel, which ends the child and every server in it; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        if (this.child.connected) this.child.disconnect();
        const timer = setTimeout(() => this.child.kill('SIGKILL'), EXIT_GRACE_MS);
        await this.exited;
        clearTimeout(timer);
      }
    })();
    return this.closing;
  }

  /** @internal */
  request(body: { op: 'start'; id: number; spec: FarmServerSpec } | { op: 'close' | 'crash'; id: number }): Promise<SocketAddr | undefined> {
    // A server of a farm that is gone is gone too: stopping it has nothing left to do.
    if (this.ended !== null) return body.op === 'start' ? Promise.reject(new Error(this.ended)) : Promise.resolve(undefined);
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.pending.set(req, { op: body.op, resolve, reject });
      this.child.send({ ...body, req } satisfies FarmRequest, (err) => {
        if (err === null || !this.pending.delete(req)) return;
        if (body.op === 'start') reject(new Error(`cannot reach the Propolis farm (pid ${this.pid}): ${err.message}`));
        else resolve(undefined);
      });
    });
  }

  /** @internal */
  forget(id: number): void {
    this.servers.delete(id);
  }

  private received(message: FarmMessage): void {
    if (message.op === 'change') {
      this.servers.get(message.id)?.changed(message.snapshot, message.drawn);
    } else if (message.op === 'reply') {
      const waiter = this.pending.get(message.req);
      this.pending.delete(message.req);
      if (message.error !== undefined) waiter?.reject(new Error(`the Propolis farm (pid ${this.pid}): ${message.error}`));
      else waiter?.resolve(message.address);
    }
  }

  private end(why: string): void {
    this.ended = why;
    for (const { op, resolve, reject } of this.pending.values()) {
      if (op === 'start') reject(new Error(why));
      else resolve(undefined);
    }
    this.pending.clear();
  }
}
