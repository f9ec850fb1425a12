// What the simulated subsystems (vnic.ts, zones.ts, zfs.ts, smf.ts, events.ts, inzone.ts) share,
// as the illumos modules share the addon: the host's modelled clock, its state file and the
// re-checking of waits after a change. SimHost (host.ts) provides it; each subsystem owns its
// part of the persisted state, and SimHost writes them together.
import type { Logger } from 'pino';
import type { SimLatencies } from './host.js';

/** setTimeout's limit (a longer delay would fire at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SimMachine {
  readonly log: Logger;
  readonly latencies: Readonly<SimLatencies>;
  /** Aborted (reason ECANCELED) by close(): every pending sleep and wait ends with it. */
  readonly closed: AbortSignal;
  /**
   * Runs `fn` at close() (after `closed` aborts); returns its removal. What every pending sleep
   * and wait uses rather than a listener on `closed`: an EventTarget's addEventListener walks its
   * listeners, so with thousands of waits pending each one cost O(n).
   */
  onClose(fn: () => void): () => void;
  /** Loaded, and not closed (ECANCELED after close()). */
  opened(): Promise<void>;
  /** `fn()` once opened. */
  ready<T>(fn: () => T): Promise<T>;
  /** Writes the whole state; with writeBehindMs the caller does not wait (SimHostOptions). */
  persist(): Promise<void>;
  /** Re-checks the waits on `zone` (every wait is about one zone). */
  notify(zone: string): void;
  /** A change from a timer (no caller to tell): saved, and waits re-checked. */
  changed(zone: string): void;
  /** A latency for `step`; recorded for `key` (a zone or VNIC name) when recordLatencies. */
  lat(step: keyof SimLatencies, key?: string, op?: string): number;
  jittered(ms: number): number;
  recordDrawn(key: string, step: keyof SimLatencies, op: string, ms: number): void;
  /** A new zone or VNIC of that name: what was drawn for an earlier one is dropped. */
  resetDrawn(key: string): void;
  /** Waits `ms` unless a signal (or close()) aborts first: then rejects with its reason. */
  sleep(ms: number, ...signals: AbortSignal[]): Promise<void>;
  /** Runs `fn` after `ms` unless `signal` (or close()) aborts first. */
  after(ms: number, signal: AbortSignal, fn: () => void | Promise<void>): void;
}
