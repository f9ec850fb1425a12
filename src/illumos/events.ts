// Zone state events from the kernel's zone status channel, over the addon's libsysevent binding
// (native/events.cc): a typed EventEmitter, and an event-driven wait for a zone to reach a state.
import { EventEmitter } from 'node:events';
import { loadNative, type NativeError } from './addon.js';
import type { NativeZoneEvent, NativeZoneEventSubscription, ZoneEventState } from './native-types/events.js';
import { assertZoneName } from '../host/names.js';

/** The kernel's zone states as events name them (sys/zone.h ZONE_EVENT_*). */
export const ZONE_EVENT_STATES = ['uninitialized', 'initialized', 'ready', 'running', 'shutting_down'] as const;

/**
 * One zone state change: zonename, zoneid, oldstate, newstate, and `when`, the kernel's
 * gethrtime() in ns as a bigint (monotonic: order and intervals, not wall-clock time). Repeats of
 * a state are never delivered (newstate !== oldstate, and never twice the same newstate in a row
 * for a zone).
 */
export type ZoneStateEvent = NativeZoneEvent;

export interface ZoneEventsEvents {
  event: [ZoneStateEvent];
  close: [];
  /** EventEmitter's own, emitted before a listener is added. */
  newListener: [eventName: string | symbol, listener: (...args: never[]) => void];
}

export interface WaitOptions {
  /** Reject with code "ETIMEDOUT" after this many ms. */
  timeoutMs: number;
  /** Aborting rejects with an AbortError (code "ABORT_ERR", cause = the signal's reason). */
  signal?: AbortSignal;
}

const BUFFER_LIMIT = 10_000;
/** setTimeout's limit (a longer delay would fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function abortError(reason: unknown): Error {
  return Object.assign(new Error('the operation was aborted', { cause: reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * A subscription to zone state events. Emits 'event' for each change and 'close' once closed.
 * Events that arrive before the first 'event' listener is attached are kept (up to 10 000) and
 * delivered to it, so nothing is lost between `await ZoneEvents.open()` and `.on('event', ...)`.
 * An open subscription keeps the process alive unless unref()'d; close() it when done.
 */
export class ZoneEvents extends EventEmitter<ZoneEventsEvents> {
  #sub: NativeZoneEventSubscription;
  #early: ZoneStateEvent[] | null = [];
  #closing: Promise<void> | null = null;

  private constructor(sub: NativeZoneEventSubscription) {
    super();
    this.#sub = sub;
    this.on('newListener', (name: string | symbol) => {
      if (name !== 'event' || this.#early === null) return;
      const early = this.#early;
      this.#early = null;
      // After the listener has actually been added.
      queueMicrotask(() => {
        for (const ev of early) this.emit('event', ev);
      });
    });
  }

  /** Subscribes; resolves once every later zone state change will be delivered. */
  static async open(): Promise<ZoneEvents> {
    let self: ZoneEvents | null = null;
    const pending: ZoneStateEvent[] = [];
    const sub = await loadNative().zoneEventsSubscribe((ev) => {
      if (self === null) pending.push(ev);
      else self.#receive(ev);
    });
    self = new ZoneEvents(sub);
    for (const ev of pending) self.#receive(ev);
    return self;
  }

  #receive(ev: ZoneStateEvent): void {
    if (this.#closing !== null) return;
    if (this.#early !== null) {
      if (this.#early.length < BUFFER_LIMIT) this.#early.push(ev);
      return;
    }
    this.emit('event', ev);
  }

  /** True once close() has been called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Unsubscribes; no 'event' after this is called. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#sub.close().then(() => {
      this.emit('close');
    });
    return this.#closing;
  }

  /** Let the process exit while this subscription is open. */
  unref(): this {
    this.#sub.unref();
    return this;
  }

  /** Undo unref(). */
  ref(): this {
    this.#sub.ref();
    return this;
  }

  /**
   * The next event matching `predicate`, with a deadline (code "ETIMEDOUT"), an AbortSignal, and
   * code "ECLOSED" if the subscription is closed first.
   */
  waitFor(predicate: (ev: ZoneStateEvent) => boolean, options: WaitOptions): Promise<ZoneStateEvent> {
    const { timeoutMs, signal } = options;
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(Object.assign(new TypeError('timeoutMs must be a finite number >= 0'), { code: 'ERR_INVALID_ARG_VALUE' }));
    }
    if (signal?.aborted) return Promise.reject(abortError(signal.reason));
    if (this.closed) return Promise.reject(Object.assign(new Error('the zone event subscription is closed'), { code: 'ECLOSED' }));
    return new Promise<ZoneStateEvent>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      const onEvent = (ev: ZoneStateEvent): void => {
        let hit = false;
        try {
          hit = predicate(ev);
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (hit) {
          cleanup();
          resolve(ev);
        }
      };
      const onClose = (): void => {
        cleanup();
        reject(Object.assign(new Error('the zone event subscription was closed'), { code: 'ECLOSED' }));
      };
      const onAbort = (): void => {
        cleanup();
        reject(abortError(signal?.reason));
      };
      const timer = setTimeout(() => {
        cleanup();
        const err: NativeError = Object.assign(new Error(`no matching zone event within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
        reject(err);
      }, Math.min(timeoutMs, MAX_TIMER_MS));
      this.on('event', onEvent);
      this.on('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export interface WaitForZoneStateOptions extends WaitOptions {
  /**
   * An open subscription to use. Without one a subscription is opened for this wait and closed
   * after it; either way only changes AFTER the subscription began are seen, so open it (or call
   * this) before the action that changes the state (zoneadm boot, halt).
   */
  events?: ZoneEvents;
}

/** Resolves with the event in which `zone` reached `state`; rejects with code "ETIMEDOUT" at the deadline. */
export async function waitForZoneState(zone: string, state: ZoneEventState, options: WaitForZoneStateOptions): Promise<ZoneStateEvent> {
  assertZoneName(zone);
  if (!(ZONE_EVENT_STATES as readonly string[]).includes(state)) {
    throw Object.assign(new TypeError(`unknown zone event state ${JSON.stringify(state)}: expected one of ${ZONE_EVENT_STATES.join(', ')}`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  const match = (ev: ZoneStateEvent): boolean => ev.zonename === zone && ev.newstate === state;
  if (options.events !== undefined) return options.events.waitFor(match, options);
  const events = await ZoneEvents.open();
  try {
    return await events.waitFor(match, options);
  } finally {
    await events.close();
  }
}
