// Zone-event listeners, for both backends' one subscription to the kernel's zone events: a
// listener for every zone, or for one zone. Each provisioning, wait and instance listens to its
// own zone; with thousands of zones, handing every event to every listener (and copying the list
// for each event) made delivery O(zones) per event.
import type { ZoneStateEvent } from './index.js';

type Listener = (event: ZoneStateEvent) => void;

export class ZoneListeners {
  readonly #all = new Set<Listener>();
  readonly #byZone = new Map<string, Set<Listener>>();

  /** Adds `listener`, for `zone`'s events only if given; returns its removal. */
  add(listener: Listener, zone?: string): () => void {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    // Its own entry, so the same function added twice is removed once per removal.
    const entry: Listener = (event) => listener(event);
    if (zone === undefined) {
      this.#all.add(entry);
      return () => {
        this.#all.delete(entry);
      };
    }
    let set = this.#byZone.get(zone);
    if (set === undefined) this.#byZone.set(zone, (set = new Set()));
    set.add(entry);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.#byZone.get(zone) === set) this.#byZone.delete(zone);
    };
  }

  /** Calls the listeners of every zone and of the event's zone; one that throws is reported, not fatal. */
  emit(event: ZoneStateEvent, onError: (err: unknown) => void): void {
    // A Set's iteration visits what is added during it and skips what is removed: the listeners
    // as they were when the event came are copied, but only these two small sets.
    const mine = this.#byZone.get(event.zonename);
    for (const set of mine === undefined ? [this.#all] : [this.#all, mine]) {
      for (const listener of [...set]) {
        try {
          listener(event);
        } catch (err) {
          onError(err);
        }
      }
    }
  }

  clear(): void {
    this.#all.clear();
    this.#byZone.clear();
  }
}
