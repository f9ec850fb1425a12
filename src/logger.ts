// pino, bunyan-compatible JSON like the original's slog output; pino-pretty for a person at a
// terminal. Logs go to stderr so that stdout carries only what scripts read (the
// "listening on" line, OpenAPI documents).
import { write, writeSync } from 'node:fs';
import pino, { type Logger, type LevelWithSilent } from 'pino';
import { recentLogs } from './recent-logs.js';

export const LOG_LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** LOG_LEVEL in the environment overrides the configured level. */
export function effectiveLevel(configured: string, env: NodeJS.ProcessEnv = process.env): LevelWithSilent {
  const level = env.LOG_LEVEL?.trim() || configured;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`log level "${level}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LevelWithSilent;
}

export function createLogger(level: LevelWithSilent, name = 'sled-agent'): Logger {
  if (process.stderr.isTTY) {
    return pino({
      name,
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:standard' } },
      hooks: { streamWrite: recentLogs.streamWrite },
    });
  }
  // Recent lines per instance and zone are kept for zone bundles (src/recent-logs.ts).
  return pino({ name, level, timestamp: pino.stdTimeFunctions.isoTime, hooks: { streamWrite: recentLogs.streamWrite } }, new LogDestination(2));
}

/** Lines held while the reader is slow; past this, new lines are dropped rather than kept. */
const MAX_BUFFERED = 8 * 1024 * 1024;
/** How long a full pipe (EAGAIN) is given before the next try. */
const RETRY_MS = 20;
/** The exit flush gives a full pipe this long in all; the process exits regardless. */
const EXIT_FLUSH_MS = 1_000;

/**
 * Where pino writes when stderr is not a terminal: asynchronous, in order, and never an
 * obstacle to the agent. pino.destination (sonic-boom) is not used because its exit flush
 * retries a failed write every 100 ms until it succeeds unless the error is EAGAIN: with a line
 * still buffered and the reader gone (EPIPE), the process never exits. An agent stopped by a
 * supervisor that then went away stayed alive for 46 minutes that way (issue 13). Here a reader
 * that went away (EPIPE) means logs are dropped from then on and the work goes on; another write
 * error loses the lines of that write only (pino.destination threw it as an uncaught exception);
 * a reader that stops reading costs at most MAX_BUFFERED of memory, and the exit flush at most
 * EXIT_FLUSH_MS.
 */
export class LogDestination {
  private queue: string[] = [];
  private queuedChars = 0;
  /** Taken off the queue and not yet fully written. */
  private chunk: Buffer | null = null;
  /** An asynchronous write of `chunk` has not called back yet. */
  private inFlight = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private broken = false;
  private flushed: Array<() => void> = [];

  constructor(private readonly fd: number) {
    process.once('exit', () => this.flushSync());
  }

  /** Called by pino with each line. */
  write(line: string): boolean {
    if (this.broken || this.queuedChars + line.length > MAX_BUFFERED) return true;
    this.queue.push(line);
    this.queuedChars += line.length;
    if (!this.inFlight && this.retryTimer === null) this.writeNext();
    return true;
  }

  /** pino's logger.flush(cb): calls back once everything logged so far was written (or dropped). */
  flush(cb: () => void = () => {}): void {
    if (this.idle()) process.nextTick(cb);
    else this.flushed.push(cb);
  }

  private idle(): boolean {
    return this.broken || (this.chunk === null && this.queue.length === 0);
  }

  private writeNext(): void {
    this.retryTimer = null;
    if (this.chunk === null && this.queue.length > 0) {
      this.chunk = Buffer.from(this.queue.join(''));
      this.queue = [];
      this.queuedChars = 0;
    }
    const chunk = this.chunk;
    if (chunk === null) {
      for (const cb of this.flushed.splice(0)) cb();
      return;
    }
    this.inFlight = true;
    write(this.fd, chunk, 0, chunk.length, null, (err, n) => {
      this.inFlight = false;
      if (this.broken) return;
      if (err) {
        if (err.code === 'EAGAIN') {
          // Unref'd: a full pipe must not keep an otherwise finished process alive.
          this.retryTimer = setTimeout(() => this.writeNext(), RETRY_MS).unref();
        } else if (err.code === 'EPIPE' || err.code === 'EBADF') {
          this.drop();
        } else {
          // A full disk under a log file may have room again for the next lines.
          this.chunk = null;
          this.writeNext();
        }
        return;
      }
      this.chunk = n < chunk.length ? chunk.subarray(n) : null;
      this.writeNext();
    });
  }

  private drop(): void {
    this.broken = true;
    this.queue = [];
    this.queuedChars = 0;
    this.chunk = null;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const cb of this.flushed.splice(0)) cb();
  }

  /**
   * At exit: what is left, written synchronously, within EXIT_FLUSH_MS. A chunk whose
   * asynchronous write is under way is left to it (writing it again could print it twice).
   */
  flushSync(): void {
    if (this.broken) return;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const parts = [...(this.chunk !== null && !this.inFlight ? [this.chunk] : []), Buffer.from(this.queue.join(''))];
    this.queue = [];
    this.queuedChars = 0;
    let rest = Buffer.concat(parts);
    const deadline = Date.now() + EXIT_FLUSH_MS;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (rest.length > 0) {
      try {
        rest = rest.subarray(writeSync(this.fd, rest));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() >= deadline) break;
        Atomics.wait(pause, 0, 0, RETRY_MS);
      }
    }
    this.drop();
  }
}
