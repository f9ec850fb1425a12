// Delivers state to Nexus the way Nexus needs it: per object, in order, coalesced to the latest,
// retried with capped jittered exponential backoff until Nexus answers 2xx. A 4xx is Nexus
// refusing the content, so it is logged and dropped rather than retried forever.
//
// Keys name the object ("instance:<id>", "disk:<id>", "sled", "zpool:<id>", ...). At most one
// delivery per key is in flight; a newer push for the same key replaces the pending one, so a
// slow Nexus sees the newest generation next, never an older one after a newer one.
import type { Logger } from 'pino';
import { NexusError } from '../nexus-client.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Multiplier per failed attempt. */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, factor: 2 };

export type Outcome = 'delivered' | 'refused' | 'superseded' | 'cancelled';

/** What an operator graphs of the notifier (src/metrics.ts): told as it happens, never asked. */
export interface NotifierObserver {
  /** Each push ends in exactly one outcome. */
  outcome(key: string, outcome: Outcome): void;
  /** An attempt failed and will be retried. */
  retry(key: string): void;
}

interface Pending {
  send: () => Promise<void>;
  what: string;
  waiters: Array<(outcome: Outcome) => void>;
}

interface Lane {
  pending: Pending | null;
  running: boolean;
  wake: (() => void) | null;
}

export class NexusNotifier {
  private readonly lanes = new Map<string, Lane>();
  private readonly idle = new Set<() => void>();
  private stopped = false;

  constructor(
    private readonly log: Logger,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    private readonly observer: NotifierObserver | null = null,
  ) {}

  /**
   * Queues `send` as the newest state for `key`. The promise settles when that state was
   * delivered or refused, or when a newer push replaced it before it went out ('superseded').
   */
  push(key: string, what: string, send: () => Promise<void>): Promise<Outcome> {
    if (this.stopped) return Promise.resolve('cancelled');
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { pending: null, running: false, wake: null };
      this.lanes.set(key, lane);
    }
    const previous = lane.pending;
    const entry: Pending = { send, what, waiters: [] };
    const done = new Promise<Outcome>((resolve) => entry.waiters.push(resolve));
    lane.pending = entry;
    if (previous) this.settle(key, previous, 'superseded');
    // A lane waiting out a backoff sends the newer state now rather than after the delay.
    lane.wake?.();
    if (!lane.running) void this.run(key, lane);
    return done;
  }

  /** Number of keys with something not yet delivered. */
  get backlog(): number {
    return this.lanes.size;
  }

  private async run(key: string, lane: Lane): Promise<void> {
    lane.running = true;
    let attempt = 0;
    while (lane.pending && !this.stopped) {
      // Taken off `pending` while in flight, so a newer push queues behind it instead of
      // superseding something already on the wire.
      const entry = lane.pending;
      lane.pending = null;
      try {
        await entry.send();
        this.settle(key, entry, 'delivered');
        attempt = 0;
        this.log.debug({ key, what: entry.what }, 'delivered to Nexus');
      } catch (err) {
        if (err instanceof NexusError && err.permanent) {
          this.settle(key, entry, 'refused');
          this.log.error({ key, what: entry.what, err: err.message }, 'Nexus refused update; not retrying');
          continue;
        }
        if (lane.pending) {
          // Something newer arrived meanwhile: that is what to retry with.
          this.settle(key, entry, 'superseded');
        } else {
          lane.pending = entry;
        }
        // Drained while this was on the wire: no retry will come, so none is announced or waited for.
        if (this.stopped) break;
        attempt += 1;
        this.observer?.retry(key);
        const delay = this.delayFor(attempt);
        this.log.warn({ key, what: entry.what, attempt, retryInMs: delay, err: errMessage(err) },
          'Nexus update failed; will retry');
        await this.sleep(lane, delay);
      }
    }
    lane.running = false;
    if (lane.pending) this.settle(key, lane.pending, 'cancelled');
    lane.pending = null;
    this.lanes.delete(key);
    if (this.lanes.size === 0) for (const resolve of this.idle) resolve();
  }

  private settle(key: string, entry: Pending, outcome: Outcome): void {
    settle(entry, outcome);
    this.observer?.outcome(key, outcome);
  }

  /** Full-jitter-ish: between half and all of the capped exponential delay. */
  private delayFor(attempt: number): number {
    const { initialMs, maxMs, factor } = this.backoff;
    const ceiling = Math.min(maxMs, initialMs * factor ** (attempt - 1));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private sleep(lane: Lane, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(wake, ms);
      function wake() {
        clearTimeout(timer);
        lane.wake = null;
        resolve();
      }
      lane.wake = wake;
    });
  }

  /**
   * Waits up to `timeoutMs` for everything queued to be delivered, then cancels what is left.
   * Returns the number of keys that were still undelivered.
   */
  async drain(timeoutMs: number): Promise<number> {
    // A lane waiting out a backoff (Nexus was down, perhaps for long) tries now, within the
    // window, rather than be cancelled untried when Nexus may be back.
    for (const lane of this.lanes.values()) lane.wake?.();
    if (this.lanes.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, timeoutMs);
        this.idle.add(finish);
        const idle = this.idle;
        function finish() {
          clearTimeout(timer);
          idle.delete(finish);
          resolve();
        }
      });
    }
    const left = this.lanes.size;
    this.stopped = true;
    for (const lane of this.lanes.values()) lane.wake?.();
    return left;
  }
}

function settle(entry: Pending, outcome: Outcome): void {
  for (const resolve of entry.waiters) resolve(outcome);
  entry.waiters.length = 0;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
