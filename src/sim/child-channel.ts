// A module of this tree in a child process, called over the IPC channel: the parent side
// (ChildChannel) and the child's (serveParent). The simulated host process (host-process.ts) and
// the Propolis farm (propolis-farm.ts) are its users; what each sends is theirs, how is this.
//
// Messages go in batches, one IPC message for what the parent sent in one turn of its event loop
// and one for what the child sent in one microtask checkpoint: each IPC message is a write and a
// JSON parse on either side, and with one per call the simulated host's channel cost the agent
// about as much CPU as the child took off it.
//
// The child lives exactly as long as the channel: when the parent goes (close(), an exit, a
// SIGKILL) the channel disconnects and the child exits, so nothing it serves outlives the parent.
// A child that dies first fails every request still waiting, and the parent is told (onLost).
import { fork, type ChildProcess } from 'node:child_process';
import { basename } from 'node:path';
import { childModule } from '../common/child-module.js';

/** What an error carries across: its message and its own fields (name, code, exit status, ...); not its class. */
export interface WireError {
  message: string;
  fields: Record<string, unknown>;
}

/** Parent to child. A cancellable call's handler gets a signal that a cancel with its id aborts. */
type ParentMessage =
  | { op: 'call'; id: number; method: string; args: unknown[]; cancellable?: true }
  | { op: 'cancel'; id: number };

/** Child to parent. */
type ChildMessage =
  | { op: 'ready' }
  | { op: 'reply'; id: number; value?: unknown; error?: WireError }
  | { op: 'event'; event: unknown };

interface Batch<M> {
  batch: M[];
}

/** How long a child has to say it is ready by default (it loads its modules, through tsx from sources). */
const READY_MS = 60_000;
/** How long a child is given to exit after its channel is closed before it is killed. */
const EXIT_GRACE_MS = 5_000;

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { message: String(err), fields: {} };
  const fields: Record<string, unknown> = { name: err.name };
  // A cause may be anything (a cycle, a socket); functions and bigints do not survive JSON.
  for (const [k, v] of Object.entries(err)) {
    if (k === 'cause' || typeof v === 'function' || typeof v === 'bigint') continue;
    fields[k] = v;
  }
  return { message: err.message, fields };
}

export function fromWire(e: WireError): Error {
  return Object.assign(new Error(e.message), e.fields);
}

/** As Node's own aborted operations reject. */
function abortError(reason: unknown): Error {
  return Object.assign(new Error('the operation was aborted', { cause: reason }), { code: 'ABORT_ERR', name: 'AbortError' });
}

/**
 * Why a request failed without an answer: the child is gone (exited, killed, closed) or could not
 * be written to. ECANCELED, so that a host call that fails this way is a HostError.
 */
export class ChildGoneError extends Error {
  readonly code = 'ECANCELED';

  constructor(
    message: string,
    /** The child's exit code and signal, once it exited. */
    readonly exitCode: number | null = null,
    readonly signal: NodeJS.Signals | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Sends messages in batches: with `turn`, one per turn of the event loop (setImmediate, after this
 * turn's I/O); else one per microtask checkpoint (what one callback and its promise reactions
 * sent). `write` may decline (returns false) while the other side is not ready: what is queued
 * goes with the next flush().
 */
export class Batcher<M> {
  #queue: M[] = [];
  #scheduled = false;

  constructor(
    private readonly write: (batch: Batch<M>, messages: M[]) => boolean,
    private readonly turn: boolean,
  ) {}

  push(message: M): void {
    this.#queue.push(message);
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (this.turn) setImmediate(() => this.flush());
    else queueMicrotask(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    const messages = this.#queue;
    if (!this.write({ batch: messages }, messages)) return;
    this.#queue = [];
  }

  /** What was queued and not sent, which is dropped. */
  drain(): M[] {
    const messages = this.#queue;
    this.#queue = [];
    return messages;
  }
}

export interface ChildChannelOptions<E> {
  /** The parent module's import.meta.url, and the child module beside it (childModule()). */
  from: string;
  module: string;
  /** What errors and logs call it: "the simulated host process", "the Propolis farm". */
  name: string;
  /** The child's argv after its module. */
  args?: readonly string[];
  /** Its stdout; stderr is always this process's. Default 'ignore': stdout is what scripts read of the parent. */
  stdout?: 'inherit' | 'ignore';
  /** Descriptors the child holds open as long as it lives (fd 4 on), e.g. a copy of a flock. */
  holdFds?: readonly number[];
  /** Default 60 s. */
  readyMs?: number;
  /** Each event the child sent, in order with the replies. */
  onEvent?: (event: E) => void;
  /**
   * The child exited without close() after it was ready; every request waiting has been rejected
   * with `why` (which names the child, its pid, and its exit code or signal).
   */
  onLost?: (why: ChildGoneError) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** Its signal's listener, removed once it settles. */
  unlisten?: () => void;
}

/** How a child process ended: its exit code, or the signal that ended it. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The parent's end: forks the child at once; ready() says when it takes requests. */
export class ChildChannel<E = unknown> {
  readonly #child: ChildProcess;
  readonly #name: string;
  readonly #pending = new Map<number, Pending>();
  readonly #out: Batcher<ParentMessage>;
  readonly #ready: Promise<void>;
  readonly #exited: Promise<ChildExit>;
  #isReady = false;
  #nextId = 0;
  /** Why requests fail from now on; null while the child can answer. */
  #ended: ChildGoneError | null = null;
  #closing: Promise<ChildExit> | null = null;

  constructor(options: ChildChannelOptions<E>) {
    const { main, execArgv } = childModule(options.from, options.module);
    this.#name = options.name;
    const child = fork(main, [...(options.args ?? [])], {
      execArgv,
      stdio: ['ignore', options.stdout ?? 'ignore', 'inherit', 'ipc', ...(options.holdFds ?? [])],
      serialization: 'json',
    });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.#out = new Batcher<ParentMessage>((batch, messages) => {
      if (!this.#isReady) return false;
      if (!child.connected) {
        this.#unsent(messages, new Error('the channel is closed'));
        return true;
      }
      child.send(batch, (err) => {
        if (err !== null && err !== undefined) this.#unsent(messages, err);
      });
      return true;
    }, true);

    // Settles ready(): without `why` the child is ready, with it it will not be.
    let ready!: (why?: string) => void;
    this.#ready = new Promise<void>((resolve, reject) => {
      const readyMs = options.readyMs ?? READY_MS;
      const timer = setTimeout(() => ready(`not ready within ${readyMs} ms`), readyMs);
      let settled = false;
      ready = (why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (why === undefined) {
          this.#isReady = true;
          resolve();
          // What was asked before it was ready.
          this.#out.flush();
          return;
        }
        // One that errs or hangs may still run: it would outlive the parent otherwise.
        child.kill('SIGKILL');
        reject(new Error(`cannot start ${this.#name} (${process.execPath} ${[...execArgv, main].join(' ')}): ${why}`));
      };
    });
    // Awaited by whoever started it; a failure nobody awaited is not an unhandled rejection.
    this.#ready.catch(() => {});

    child.on('message', (m: Batch<ChildMessage>) => {
      for (const message of m.batch) {
        if (message.op === 'ready') ready();
        else this.#receive(message, options.onEvent);
      }
    });
    // Each send reports its own failure, and the child's end comes as 'exit': an 'error' after
    // it is ready (a kill of a process already gone) has nothing to add, and unheard it would throw.
    child.on('error', (err) => ready(err.message));
    child.once('exit', (code, signal) => {
      const wasReady = this.#isReady;
      ready(`it exited (${signal ?? `code ${code}`}) before it was ready; its stderr says why`);
      const why = new ChildGoneError(`${this.#name} (pid ${child.pid}) exited (${signal ?? `code ${code}`})`, code, signal);
      const lost = this.#ended === null;
      this.#ended ??= why;
      this.#rejectAll(why);
      if (lost && wasReady) options.onLost?.(why);
    });
  }

  /** Resolves once the child takes requests; rejects (and the child is killed) if it exits, errs or takes too long first. */
  ready(): Promise<void> {
    return this.#ready;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Whether requests can still be answered (false once closed, or the child gone). */
  get alive(): boolean {
    return this.#ended === null;
  }

  /**
   * Calls the child's handler `method` with `args` (JSON). With `signal`, an abort rejects here at
   * once with ABORT_ERR and aborts the handler's signal in the child; its reply, if one comes, is
   * dropped.
   */
  request<T = unknown>(method: string, args: unknown[] = [], options: { signal?: AbortSignal } = {}): Promise<T> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal.reason));
    if (this.#ended !== null) return Promise.reject(this.#ended);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { resolve: resolve as (value: unknown) => void, reject };
      if (signal !== undefined) {
        const onAbort = (): void => {
          if (!this.#pending.delete(id)) return;
          this.#out.push({ op: 'cancel', id });
          reject(abortError(signal.reason));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        pending.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      this.#pending.set(id, pending);
      this.#out.push({ op: 'call', id, method, args, ...(signal !== undefined ? { cancellable: true as const } : {}) });
    });
  }

  /**
   * Closes the channel, which ends the child (killed if it has not exited within 5 s); requests
   * still waiting fail. Resolves with how the child ended (a kill shows as its signal). Idempotent.
   */
  close(): Promise<ChildExit> {
    this.#closing ??= (async () => {
      const closed = new ChildGoneError(`${this.#name} was closed`);
      this.#ended ??= closed;
      this.#out.drain();
      this.#rejectAll(closed);
      const child = this.#child;
      if (child.exitCode !== null || child.signalCode !== null) return this.#exited;
      if (child.connected) child.disconnect();
      const grace = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
      const exit = await this.#exited;
      clearTimeout(grace);
      return exit;
    })();
    return this.#closing;
  }

  #receive(m: Exclude<ChildMessage, { op: 'ready' }>, onEvent: ((event: E) => void) | undefined): void {
    switch (m.op) {
      case 'reply': {
        const p = this.#settle(m.id);
        if (p === undefined) return; // aborted here already, or the channel closed
        if (m.error !== undefined) p.reject(fromWire(m.error));
        else p.resolve(m.value);
        return;
      }
      case 'event':
        onEvent?.(m.event as E);
        return;
    }
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (p === undefined) return undefined;
    this.#pending.delete(id);
    p.unlisten?.();
    return p;
  }

  #unsent(messages: ParentMessage[], err: Error): void {
    for (const m of messages) {
      if (m.op !== 'call') continue;
      this.#settle(m.id)?.reject(new ChildGoneError(`${this.#name} (pid ${this.#child.pid}) cannot be reached: ${err.message}`, null, null, { cause: err }));
    }
  }

  #rejectAll(why: Error): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(why);
  }
}

/** A handler of the child: the call's arguments, and for a cancellable call, a signal the parent may abort. */
export type ChildHandler = (args: unknown[], signal?: AbortSignal) => unknown;

/**
 * The child's end: answers the parent's calls with `handlers` (a reply per call, with its value
 * or error, in the order they settle) and returns how to send it an event. The process exits when
 * the channel disconnects. `forkedBy` names what forks it, for whoever starts it by hand.
 */
export function serveParent<E = unknown>(handlers: Record<string, ChildHandler>, forkedBy: string): (event: E) => void {
  if (process.send === undefined) {
    process.stderr.write(`${basename(process.argv[1] ?? 'child')}: start it with child_process.fork (${forkedBy}), it needs an IPC channel to its parent\n`);
    process.exit(2);
  }
  // A parent gone mid-send is no error here: the 'disconnect' handler ends this process.
  const out = new Batcher<ChildMessage>((batch) => {
    if (process.connected) process.send!(batch, undefined, undefined, () => {});
    return true;
  }, false);
  process.on('disconnect', () => process.exit(0));
  // A terminal's ^C or a stop signal to the parent's process group is the parent's to handle: it
  // closes this child as it shuts down. Dying first would look like a crash of what it serves.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

  /** Calls under way that the parent may cancel, by id. */
  const cancels = new Map<number, AbortController>();
  const call = async (m: Extract<ParentMessage, { op: 'call' }>): Promise<unknown> => {
    if (!Object.hasOwn(handlers, m.method)) throw new Error(`no method ${m.method}`);
    if (m.cancellable !== true) return handlers[m.method]!(m.args);
    const ctl = new AbortController();
    cancels.set(m.id, ctl);
    try {
      return await handlers[m.method]!(m.args, ctl.signal);
    } finally {
      cancels.delete(m.id);
    }
  };
  process.on('message', ({ batch }: Batch<ParentMessage>) => {
    for (const m of batch) {
      if (m.op === 'cancel') {
        cancels.get(m.id)?.abort(new Error('cancelled by the parent'));
        continue;
      }
      call(m).then(
        (value) => out.push({ op: 'reply', id: m.id, ...(value === undefined ? {} : { value }) }),
        (err: unknown) => out.push({ op: 'reply', id: m.id, error: toWire(err) }),
      );
    }
  });
  out.push({ op: 'ready' });
  return (event) => out.push({ op: 'event', event });
}
