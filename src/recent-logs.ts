// The agent's own recent log lines about each instance and zone, kept in memory so that a zone
// bundle can carry what the agent said about a zone before it was torn down, even when its logs
// went to a pipe nobody kept. Fed from pino's streamWrite hook (every serialized line passes
// there, whichever destination or transport the logger writes to), so the logger needs one
// option and nothing else changes about where logs go.
//
// A line belongs to the instance its `instance` field names and to the zone its `zone` field
// names (the instance's and the service managers' child loggers bind them). Each key keeps its
// newest lines up to a byte budget, and the least recently written keys are dropped past a
// number of keys, so memory stays bounded whatever the agent logs.

/** Bytes of lines kept per key. */
const BYTES_PER_KEY = 64 * 1024;
/** Keys kept (instances and zones): past this, the least recently written goes. */
const MAX_KEYS = 256;
/** A longer line is kept cut to this length (an error with a long stack, say). */
const MAX_LINE = 8 * 1024;

interface Ring {
  lines: Array<{ seq: number; line: string }>;
  bytes: number;
}

export class RecentLogs {
  #seq = 0;
  /** In order of last write: the first is the least recently written. */
  readonly #rings = new Map<string, Ring>();

  constructor(
    private readonly bytesPerKey = BYTES_PER_KEY,
    private readonly maxKeys = MAX_KEYS,
  ) {}

  /** pino's `hooks.streamWrite`: records the line and hands it on unchanged. */
  readonly streamWrite = (line: string): string => {
    // Most lines name neither; those skip the parse.
    if (line.includes('"instance":"') || line.includes('"zone":"')) {
      try {
        this.record(line);
      } catch {
        // Never in the way of the log itself.
      }
    }
    return line;
  };

  /** Files one serialized (JSON) log line under the instance and zone it names. */
  record(line: string): void {
    let fields: { instance?: unknown; zone?: unknown };
    try {
      fields = JSON.parse(line) as typeof fields;
    } catch {
      return;
    }
    const keys: string[] = [];
    if (typeof fields.instance === 'string') keys.push(instanceKey(fields.instance));
    if (typeof fields.zone === 'string') keys.push(zoneKey(fields.zone));
    if (keys.length === 0) return;
    const text = line.endsWith('\n') ? line.slice(0, -1) : line;
    const kept = text.length > MAX_LINE ? `${text.slice(0, MAX_LINE)}...` : text;
    const seq = this.#seq++;
    for (const key of keys) {
      let ring = this.#rings.get(key);
      if (ring === undefined) ring = { lines: [], bytes: 0 };
      else this.#rings.delete(key); // re-inserted below: most recently written last
      this.#rings.set(key, ring);
      ring.lines.push({ seq, line: kept });
      ring.bytes += kept.length;
      let drop = 0;
      while (ring.bytes > this.bytesPerKey && drop < ring.lines.length - 1) ring.bytes -= ring.lines[drop++]!.line.length;
      if (drop > 0) ring.lines.splice(0, drop);
    }
    while (this.#rings.size > this.maxKeys) this.#rings.delete(this.#rings.keys().next().value as string);
  }

  /** The lines filed under any of `keys`, each once, oldest first (without newlines). */
  lines(keys: readonly string[]): string[] {
    const seen = new Map<number, string>();
    for (const key of keys) for (const { seq, line } of this.#rings.get(key)?.lines ?? []) seen.set(seq, line);
    return [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([, line]) => line);
  }
}

export const instanceKey = (id: string): string => `instance:${id}`;
export const zoneKey = (zone: string): string => `zone:${zone}`;

/** The agent process's record, fed by the loggers createLogger() makes. */
export const recentLogs = new RecentLogs();
