// What native/events.cc exports: a subscription to the kernel's zone status event channel
// ("com.sun:zones:status", libsysevent GPEC). Errors reject with `code` = the channel's errno
// name ("EPERM", "EINVAL", ...) or "ENOLIB".

/** The kernel's zone status strings (sys/zone.h ZONE_EVENT_*). */
export type ZoneEventState = 'uninitialized' | 'initialized' | 'ready' | 'running' | 'shutting_down';

/** One zone state change, as the kernel published it (de-duplicated: newstate !== oldstate). */
export interface NativeZoneEvent {
  zonename: string;
  zoneid: number;
  oldstate: ZoneEventState;
  newstate: ZoneEventState;
  /** gethrtime() at the change, in ns: monotonic, comparable between events, not wall-clock time. */
  when: bigint;
}

export interface NativeZoneEventSubscription {
  readonly id: number;
  /**
   * Unsubscribes (on the addon's sysevent thread, never the library's callback thread) and
   * releases the thread-safe function. No event reaches the callback after close() is called.
   * Safe to call again: every call's promise settles once the subscription is closed.
   */
  close(): Promise<void>;
  /** An open subscription keeps the process alive (the default)... */
  ref(): void;
  /** ...unless unref'd. */
  unref(): void;
}

export interface EventsNative {
  /** Resolves once subscribed: every zone state change after that reaches `callback` (on the JS thread). */
  zoneEventsSubscribe(callback: (event: NativeZoneEvent) => void): Promise<NativeZoneEventSubscription>;
}
