// A ledger: one JSON document the agent must not lose, written atomically (temp file, fsync,
// rename, directory fsync) before the change it records is acknowledged. Commits that arrive
// while a write is in flight are grouped into the next write, so a hundred concurrent requests
// cost two writes, not a hundred, and each caller still learns when its own change is durable.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { fsyncDir, readJsonIfExists, writeFileAtomic } from './common/persist.js';

type CommitObserver = (path: string, seconds: number) => void;

/**
 * Who is told how long each ledger write under a directory took (an agent's metrics, for its
 * data_dir). Keyed by directory rather than passed to each Ledger, so the managers that open
 * ledgers need not carry metrics; agents sharing a process have distinct data directories.
 */
const commitObservers = new Map<string, CommitObserver>();

/** Reports every ledger write under `dir` to `observer` until the returned function is called. */
export function observeLedgerCommits(dir: string, observer: CommitObserver): () => void {
  const prefix = dir.endsWith(sep) ? dir : dir + sep;
  commitObservers.set(prefix, observer);
  return () => {
    if (commitObservers.get(prefix) === observer) commitObservers.delete(prefix);
  };
}

export class Ledger<T> {
  #value: T;
  #writing: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  private constructor(
    readonly path: string,
    value: T,
    readonly loaded: boolean,
    private readonly serialize: (value: T) => string,
  ) {
    this.#value = value;
  }

  /**
   * Reads the ledger at `path`, or starts from `empty` when there is none. `check` validates
   * what was read (throw to refuse a corrupt or foreign file: better than acting on it).
   * `serialize` (default JSON.stringify) writes the value; a ledger of many records can reuse
   * the text of those that did not change.
   */
  static async open<T>(
    path: string, empty: () => T, check: (raw: unknown) => T, serialize: (value: T) => string = (v) => JSON.stringify(v),
  ): Promise<Ledger<T>> {
    const dir = dirname(path);
    await mkdir(dir, { recursive: true });
    // Writes a kill interrupted (writeFileAtomic's `.<name>.<random>.tmp`): the ledger itself
    // is still the version before them.
    const prefix = `.${basename(path)}.`;
    for (const file of await readdir(dir)) {
      if (file.startsWith(prefix) && file.endsWith('.tmp')) await rm(join(dir, file), { force: true });
    }
    const raw = await readJsonIfExists(path);
    if (raw === null) return new Ledger(path, empty(), false, serialize);
    return new Ledger(path, check(raw), true, serialize);
  }

  /** The current (possibly not yet durable) value. Mutate it, then commit(). */
  get value(): T {
    return this.#value;
  }

  /** Resolves once the value as it is now is on disk. */
  commit(): Promise<void> {
    if (this.#writing === null) {
      this.#writing = this.#write().finally(() => {
        this.#writing = null;
      });
      return this.#writing;
    }
    // A write is in flight with an older value: queue exactly one more, shared by everyone who
    // commits until it starts.
    this.#next ??= this.#writing
      .catch(() => {})
      .then(() => {
        this.#next = null;
        return this.commit();
      });
    return this.#next;
  }

  async #write(): Promise<void> {
    const start = performance.now();
    // Compact: ledgers are for the agent to read back; `jq` makes them readable for people.
    await writeFileAtomic(this.path, this.serialize(this.#value), 0o644, false);
    for (const [prefix, observe] of commitObservers) {
      if (this.path.startsWith(prefix)) observe(this.path, (performance.now() - start) / 1000);
    }
  }

  /** Settles once no write is in flight or queued (shutdown waits for this). */
  async settled(): Promise<void> {
    await this.#next?.catch(() => {});
    await this.#writing?.catch(() => {});
  }

  /** Removes the ledger file (after any write in flight), durably. */
  async remove(): Promise<void> {
    await this.settled();
    await rm(this.path, { force: true });
    await fsyncDir(dirname(this.path));
  }
}
