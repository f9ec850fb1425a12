// A ledger: one JSON document the agent must not lose, durable before the change it records is
// acknowledged. Commits that arrive while a write is in flight are grouped into the next write,
// so a hundred concurrent requests cost two writes, not a hundred, and each caller still learns
// when its own change is durable.
//
// A plain ledger is rewritten whole on every write (temp file, fsync, rename, directory fsync).
// That is O(value) per write: for the instance ledger, about 1 MB at 1,000 instances, rewritten
// dozens of times while they start. A journaled ledger (`{ journal: true }`) instead appends what
// changed to `<path>.log`, the journal of the snapshot at `<path>`, so a write costs what changed;
// it rewrites the whole value (compacts) only when what changed is not known, or when the log
// has grown past max(256 KiB, twice the snapshot), so reading it back stays cheap.
//
// The log is JSON lines:
//   {"ledger":2,"snapshot":"<hex sha256>"}   header: the exact text of the snapshot it continues
//   {"t":"instances","k":"<id>","v":<rec>}   one key of a top-level object, as it was when the write began
//   {"t":"instances","k":"<id>"}             ... deleted
//   {"t":"instances","k":"<id>","f":"runtime","v":<value>}   one field of that key's object (no "v": deleted)
//   {"t":"pool","v":<value>}, {"t":"pool"}   a whole top-level entry, or its deletion
//   {"c":<n>}                                the end of one write, which had n entries
// Field entries keep a record's frequent small changes (an instance's observed state) from
// rewriting what does not change (its hardware, which may carry 32 KiB of cloud-init). Headers
// say 2 since field entries exist: an older agent refuses such a log rather than read a field's
// value as a whole record. Logs with header 1 are read as before.
// A write appends its entries and its end line with one write(2), then fdatasync.
//
// What a crash can leave, and why open() is right about each:
// - An append cut short: entries with no end line after them, or a last line cut short. That
//   write was never acknowledged, so open drops it, all of it: a write's changes land together
//   or not at all (an instance taking a warm pool zone changes its record and the pool, and the
//   zone must be in exactly one of them). A bad line with lines after it, or a bad header, is
//   not a crash's doing: open refuses the ledger, naming the file and line, as it refuses a
//   snapshot that does not parse.
// - A compaction: (1) the new log, a header naming the new snapshot, to a temp file, fsynced;
//   (2) the snapshot, atomically (writeFileAtomic: temp file, fsync, rename, directory fsync);
//   (3) the temp log renamed over the log, then the directory fsynced.
//   - Before (2)'s rename: the old snapshot and the old log, which names it: replayed, they are
//     the last acknowledged write. The temp files are removed at open.
//   - Between (2) and (3): the new snapshot, which has everything, and the old log, whose header
//     names the old snapshot: ignored. open compacts at once, so appends go to a log that names
//     the snapshot they continue.
//   - After (3): the new snapshot and a log of no entries that names it.
//   (2) is durable (its directory fsynced) before (3) starts: a new log on disk beside the old
//   snapshot would make open ignore the old log, losing the acknowledged entries in it.
//   A snapshot whose text is already on disk is not written again; only the log is replaced.
//   A stale log (one that a compaction cut short between (2) and (3) left naming an older
//   snapshot) that names the very text about to be written is removed before (2): (2) would
//   bring it back to life, and a crash before (3) would replay entries older than the snapshot.
// - remove(): the snapshot goes first, durably, then the log. A log with no snapshot is removed
//   at open: the other order could leave an old snapshot without the log it needs.
// A write that fails (rather than a crash) may have left part of an append, and what it carried
// may or may not be on disk: the next write compacts.
//
// writeFileAtomic and rename either replace their target or throw having left it as it was, so
// this ledger always knows which snapshot and which log are on disk.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { fsyncDir, mkdirDurable, writeFileAtomic } from './common/persist.js';

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

/**
 * What a commit changed in the ledger's top-level object: a whole entry, one key of an entry that
 * is an object, or one field of such a key's object.
 */
export type Change = readonly [table: string] | readonly [table: string, key: string] | readonly [table: string, key: string, field: string];

export interface LedgerOptions {
  /** Append what changed to `<path>.log` rather than rewriting the whole value on every write. */
  journal?: boolean;
}

/** Below this a log is not worth compacting, however small the snapshot. */
const LOG_COMPACT_MIN = 256 * 1024;

type JsonObject = Record<string, unknown>;

/** Dirty entries: per table, its changed keys (each with its changed fields, or null: the whole key), or null for the whole entry. */
type Dirty = Map<string, Map<string, Set<string> | null> | null>;

/** The header's version this code writes, and those it reads. */
const LOG_VERSION = 2;
const LOG_VERSIONS_READ: readonly unknown[] = [1, 2];

export class Ledger<T> {
  #value: T;
  #writing: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  readonly #journal: boolean;
  /** The next write must write the whole value (journaled: a compaction). */
  #all = true;
  /** Journaled: what changed since the last write began. */
  #dirty: Dirty = new Map();
  /** The sha256 of the snapshot file's text, and its size; null: no snapshot. */
  #snapHash: string | null = null;
  #snapSize = 0;
  /** The snapshot hash the log's header names, and the log's size; null: no log. */
  #logHash: string | null = null;
  #logSize = 0;
  /** The log, open for appending once the first append needs it; closed when it is replaced. */
  #handle: FileHandle | null = null;

  private constructor(
    readonly path: string,
    value: T,
    readonly loaded: boolean,
    journal: boolean,
  ) {
    this.#value = value;
    this.#journal = journal;
  }

  /** The journal beside the snapshot at `path`. */
  get logPath(): string {
    return `${this.path}.log`;
  }

  /**
   * Reads the ledger at `path` (the snapshot, then any journal that continues it), or starts from
   * `empty` when there is none. `check` validates what was read (throw to refuse a corrupt or
   * foreign file: better than acting on it). A journaled ledger whose log had anything in it is
   * compacted here, so appends start on a log of no entries.
   */
  static async open<T>(path: string, empty: () => T, check: (raw: unknown) => T, options: LedgerOptions = {}): Promise<Ledger<T>> {
    const journal = options.journal === true;
    const dir = dirname(path);
    const logPath = `${path}.log`;
    await mkdirDurable(dir);
    // Writes a kill interrupted (`.<name>.<random>.tmp`, and `.<name>.log.<random>.tmp`): the
    // ledger itself is still the version before them.
    const prefix = `.${basename(path)}.`;
    for (const file of await readdir(dir)) {
      if (file.startsWith(prefix) && file.endsWith('.tmp')) await rm(join(dir, file), { force: true });
    }
    const bytes = await readIfExists(path);
    const logText = await readIfExists(logPath).then((b) => b?.toString('utf8') ?? null);
    if (bytes === null) {
      if (logText !== null) {
        await rm(logPath, { force: true });
        await fsyncDir(dir);
      }
      return new Ledger(path, empty(), false, journal);
    }
    const raw = parseSnapshot(path, bytes);
    const snapHash = sha256(bytes);
    const log = logText === null ? null : replayLog(logPath, logText, snapHash, raw);
    const ledger = new Ledger(path, check(raw), true, journal);
    ledger.#snapHash = snapHash;
    ledger.#snapSize = bytes.length;
    const header = logText === null ? null : parseHeader(logPath, logText);
    if (header !== null) ledger.#logHash = header.snapshot;
    // A log of an older version is compacted too: appends go to a log whose header says what they may hold.
    if (journal && log !== null && log.matched && !log.extra && header?.version === LOG_VERSION) {
      ledger.#logSize = Buffer.byteLength(logText as string);
      ledger.#all = false;
    } else if (journal || logText !== null) {
      // A journaled ledger needs a log that names its snapshot and has no entries; a plain one
      // (a journaled ledger opened without the journal) takes the journal into its snapshot and
      // drops it, or the next journaled open could replay it onto a snapshot that has moved on.
      const start = performance.now();
      await ledger.#compact(JSON.stringify(ledger.#value));
      if (journal) {
        ledger.#all = false;
      } else {
        await rm(logPath, { force: true });
        await fsyncDir(dir);
        ledger.#logHash = null;
      }
      ledger.#observe(start);
    }
    return ledger;
  }

  /** The current (possibly not yet durable) value. Mutate it, then commit(). */
  get value(): T {
    return this.#value;
  }

  /**
   * Resolves once the value as it is now is on disk. `changed` names what changed (a journaled
   * ledger writes only that); naming nothing means anything may have: the whole value is written.
   */
  commit(...changed: Change[]): Promise<void> {
    this.touch(...changed);
    if (changed.length === 0) this.#all = true;
    return this.#schedule();
  }

  /** Names changes for the next write to carry, without asking for one (nothing waits for them). */
  touch(...changed: Change[]): void {
    if (!this.#journal || this.#all) return;
    for (const [table, key, field] of changed) {
      const keys = this.#dirty.get(table);
      if (key === undefined) {
        this.#dirty.set(table, null);
        continue;
      }
      if (keys === null) continue; // the whole entry goes anyway
      const map = keys ?? new Map<string, Set<string> | null>();
      if (keys === undefined) this.#dirty.set(table, map);
      const fields = map.get(key);
      if (field === undefined) map.set(key, null);
      else if (fields === undefined) map.set(key, new Set([field]));
      else fields?.add(field);
    }
  }

  #schedule(): Promise<void> {
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
        return this.#schedule();
      });
    return this.#next;
  }

  async #write(): Promise<void> {
    const start = performance.now();
    // What this write carries is taken now, before its first await: commits from here on are the next write's.
    const all = this.#all;
    const dirty = this.#dirty;
    this.#all = false;
    this.#dirty = new Map();
    try {
      if (!this.#journal) {
        // Compact: ledgers are for the agent to read back; `jq` makes them readable for people.
        await writeFileAtomic(this.path, JSON.stringify(this.#value), 0o644, false);
      } else {
        const lines = all || !isObject(this.#value) || this.#snapHash === null || this.#logHash !== this.#snapHash
          ? null
          : journalLines(this.#value, dirty);
        if (lines === '') return; // nothing named: nothing to make durable
        const bytes = lines === null ? null : Buffer.from(lines);
        if (bytes === null || this.#logSize + bytes.length > Math.max(LOG_COMPACT_MIN, 2 * this.#snapSize)) {
          await this.#compact(JSON.stringify(this.#value));
        } else {
          await this.#append(bytes);
        }
      }
    } catch (err) {
      // What this write carried may or may not be on disk, and a failed append may have left
      // part of a line that a later append would bury: the next write writes everything.
      this.#all = true;
      throw err;
    }
    this.#observe(start);
  }

  async #append(bytes: Buffer): Promise<void> {
    this.#handle ??= await open(this.logPath, 'a');
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await this.#handle.write(bytes, written, bytes.length - written);
      written += bytesWritten;
    }
    this.#logSize += bytes.length;
    await this.#handle.datasync();
  }

  /** Writes `text` as the snapshot with a log of no entries; the order is the file's top comment's. */
  async #compact(text: string): Promise<void> {
    const dir = dirname(this.path);
    const hash = sha256(text);
    const header = `${JSON.stringify({ ledger: LOG_VERSION, snapshot: hash })}\n`;
    const tmp = join(dir, `.${basename(this.logPath)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await open(tmp, 'wx', 0o644);
      try {
        await handle.writeFile(header);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (hash !== this.#snapHash) {
        if (this.#logHash === hash) {
          await rm(this.logPath, { force: true });
          await fsyncDir(dir);
          this.#logHash = null;
        }
        await writeFileAtomic(this.path, text, 0o644, false);
        this.#snapHash = hash;
        this.#snapSize = Buffer.byteLength(text);
      }
      await this.#closeLog();
      await rename(tmp, this.logPath);
      this.#logHash = hash;
      this.#logSize = Buffer.byteLength(header);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(dir);
  }

  #observe(start: number): void {
    for (const [prefix, observe] of commitObservers) {
      if (this.path.startsWith(prefix)) observe(this.path, (performance.now() - start) / 1000);
    }
  }

  async #closeLog(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }

  /** Settles once no write is in flight or queued (shutdown waits for this). */
  async settled(): Promise<void> {
    await this.#next?.catch(() => {});
    await this.#writing?.catch(() => {});
  }

  /** Waits for writes in flight, then lets go of the log (a later write opens it again). */
  async close(): Promise<void> {
    await this.settled();
    await this.#closeLog();
  }

  /** Removes the ledger, snapshot and log (after any write in flight), durably. */
  async remove(): Promise<void> {
    await this.settled();
    await this.#closeLog();
    const dir = dirname(this.path);
    await rm(this.path, { force: true });
    await fsyncDir(dir);
    this.#snapHash = null;
    this.#all = true;
    if (this.#journal || this.#logHash !== null) {
      await rm(this.logPath, { force: true });
      await fsyncDir(dir);
      this.#logHash = null;
    }
  }
}

/**
 * The value of the ledger at `path` as the agent would read it (its journal applied, a torn last
 * write dropped), without writing anything: for tests and operators' tools. Throws as
 * readFileSync does when there is no ledger, and as the agent would refuse a corrupt one.
 */
export function readLedgerFile(path: string): unknown {
  const logPath = `${path}.log`;
  for (let attempt = 0; ; attempt++) {
    const bytes = readFileSync(path);
    const raw = parseSnapshot(path, bytes);
    let logText: string;
    try {
      logText = readFileSync(logPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return raw;
      throw err;
    }
    if (replayLog(logPath, logText, sha256(bytes), raw).matched) return raw;
    // A log naming another snapshot is stale, unless a running agent compacted between the two
    // reads (new snapshot, then new log): then the snapshot read is older than the log, and read
    // again it has changed.
    if (attempt >= 3 || readFileSync(path).equals(bytes)) return raw;
  }
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function parseSnapshot(path: string, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The entries of one journaled write of `changed`, and its end line. */
function journalLines(value: JsonObject, changed: Dirty): string {
  let text = '';
  let count = 0;
  const line = (t: string, k: string | undefined, f: string | undefined, v: unknown) => {
    // Absent and undefined alike are a deletion: JSON.stringify leaves both out of a snapshot.
    const entry: Entry = k === undefined ? { t } : f === undefined ? { t, k } : { t, k, f };
    if (v !== undefined) entry.v = v;
    text += `${JSON.stringify(entry)}\n`;
    count += 1;
  };
  for (const [t, keys] of changed) {
    const table = own(value, t);
    if (keys === null || !isObject(table)) {
      line(t, undefined, undefined, table);
      continue;
    }
    for (const [k, fields] of keys) {
      const record = own(table, k);
      // A key that is gone, or not an object, is written whole whatever was named of it.
      if (fields === null || !isObject(record)) line(t, k, undefined, record);
      else for (const f of fields) line(t, k, f, own(record, f));
    }
  }
  return count === 0 ? '' : `${text}{"c":${count}}\n`;
}

function own(object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** Sets an own property, even one named `__proto__` (a plain assignment would set the prototype). */
function setOwn(object: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

interface Entry {
  t: string;
  k?: string;
  f?: string;
  v?: unknown;
}

function parseHeader(logPath: string, text: string): { snapshot: string; version: unknown } {
  const end = text.indexOf('\n');
  let header: unknown;
  try {
    header = end < 0 ? undefined : JSON.parse(text.slice(0, end));
  } catch {
    header = undefined;
  }
  if (!isObject(header) || !LOG_VERSIONS_READ.includes(header.ledger) || typeof header.snapshot !== 'string') {
    throw new Error(`${logPath}: line 1 is not a ledger journal header this agent reads ({"ledger":${LOG_VERSIONS_READ.join(' or ')},"snapshot":"<sha256>"}); `
      + 'the ledger is corrupt, or written by a newer agent');
  }
  return { snapshot: header.snapshot, version: header.ledger };
}

/**
 * Applies the journal `text` to `raw` (the snapshot, parsed) if its header names `snapHash`.
 * `matched`: it did; `extra`: it had anything after its header (entries, or a torn write).
 */
function replayLog(logPath: string, text: string, snapHash: string, raw: unknown): { matched: boolean; extra: boolean } {
  const header = parseHeader(logPath, text);
  if (header.snapshot !== snapHash) return { matched: false, extra: true };
  const lines = text.split('\n');
  // After the last newline: '' for a log that ends with one, else a line whose write was cut short.
  const tail = lines.pop();
  let pending: Array<{ entry: Entry; line: number }> = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const parsed = parseLine(line);
    if (parsed === null) {
      // Only the very last line can be a crash's doing (one write(2), appended at the end).
      if (i === lines.length - 1 && tail === '') break;
      throw new Error(`${logPath}:${i + 1}: not a ledger journal entry (${line.length > 80 ? `${line.slice(0, 80)}...` : line}); the ledger is corrupt`);
    }
    if ('c' in parsed) {
      if (parsed.c !== pending.length) {
        throw new Error(`${logPath}:${i + 1}: the end of a write of ${parsed.c} entries follows ${pending.length}; the ledger is corrupt`);
      }
      if (pending.length > 0 && !isObject(raw)) throw new Error(`${logPath}: entries for a snapshot that is not a JSON object`);
      for (const p of pending) {
        const problem = apply(raw as JsonObject, p.entry);
        if (problem !== null) throw new Error(`${logPath}:${p.line}: ${problem}; the ledger is corrupt`);
      }
      pending = [];
    } else {
      pending.push({ entry: parsed, line: i + 1 });
    }
  }
  // Entries with no end line after them, or a line cut short, were a write never acknowledged.
  return { matched: true, extra: lines.length > 1 || tail !== '' };
}

function parseLine(line: string): Entry | { c: number } | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  if (typeof value.c === 'number' && Number.isInteger(value.c) && Object.keys(value).length === 1) return { c: value.c };
  if (typeof value.t !== 'string' || (value.k !== undefined && typeof value.k !== 'string')) return null;
  if (value.f !== undefined && (typeof value.f !== 'string' || value.k === undefined)) return null;
  return value as unknown as Entry;
}

/** Applies one entry; a field entry for a key that is not an object is refused (null: applied). */
function apply(value: JsonObject, entry: Entry): string | null {
  const set = Object.hasOwn(entry, 'v');
  if (entry.k === undefined) {
    if (set) setOwn(value, entry.t, entry.v);
    else delete value[entry.t];
    return null;
  }
  let table = own(value, entry.t);
  if (entry.f !== undefined) {
    // The writer names a field only of a key whose object it has: anything else is not its doing.
    const record = isObject(table) ? own(table, entry.k) : undefined;
    if (!isObject(record)) return `field "${entry.f}" of ${entry.t}["${entry.k}"], which is not an object`;
    if (set) setOwn(record, entry.f, entry.v);
    else delete record[entry.f];
    return null;
  }
  if (!isObject(table)) {
    if (!set) return null;
    table = {};
    setOwn(value, entry.t, table);
  }
  if (set) setOwn(table as JsonObject, entry.k, entry.v);
  else delete (table as JsonObject)[entry.k];
  return null;
}
