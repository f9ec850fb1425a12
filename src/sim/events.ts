// Zone-state events and the waits built on them, on the simulated host (as the illumos backend's
// events.ts over the zone event channel, and smf.ts's property-group wait): every change a
// subsystem makes re-checks the waits on its zone, so nothing polls. A wait on a zone that leaves
// the kernel, or is deleted, rejects with ZONE_GONE.
import { ZoneListeners } from '../host/zone-listeners.js';
import {
  hostError,
  type HostError,
  type SmfState,
  type WaitOptions,
  type ZoneEventState,
  type ZoneState,
  type ZoneStateEvent,
} from '../host/index.js';
import { assertInstanceFmri, SMF_STATES, validateZoneName } from '../host/names.js';
import { MAX_TIMER_MS, type SimMachine } from './machine.js';
import type { SimSmf } from './smf.js';
import type { ZoneRecord } from './zones.js';

interface Waiter {
  check(): void;
}

function abortError(reason: unknown): HostError {
  return Object.assign(hostError('ABORT_ERR', 'the operation was aborted', reason), { name: 'AbortError' });
}

/** The kernel's name (ZONE_EVENT_*) for a zone's state while it is in the kernel. */
export function kernelEventState(state: ZoneState): ZoneEventState {
  return state === 'running' ? 'running' : state === 'shutting_down' ? 'shutting_down' : 'ready';
}

export class SimZoneEvents {
  private readonly listeners = new ZoneListeners();
  /** Pending waits by zone: a change re-checks only its own zone's. */
  private readonly waiters = new Map<string, Set<Waiter>>();

  constructor(
    private readonly m: SimMachine,
    /** The zone of that name, if it exists. */
    private readonly zone: (name: string) => ZoneRecord | undefined,
    private readonly smf: SimSmf,
  ) {}

  subscribe(listener: (event: ZoneStateEvent) => void, zone?: string): () => void {
    return this.listeners.add(listener, zone);
  }

  emit(rec: ZoneRecord, zoneid: number, oldstate: ZoneEventState, newstate: ZoneEventState): void {
    const event: ZoneStateEvent = { zonename: rec.spec.name, zoneid, oldstate, newstate, when: process.hrtime.bigint() };
    this.listeners.emit(event, (err) => this.m.log.error({ err }, 'a zone event listener threw'));
    this.notify(rec.spec.name);
  }

  /** Re-checks the waits on `zone` (every wait is about one zone), and logs what SMF changed. */
  notify(zone: string): void {
    this.smf.logChanges(zone, this.zone(zone));
    const set = this.waiters.get(zone);
    if (set !== undefined) for (const w of [...set]) w.check();
  }

  private wait<T>(zone: string, what: string, options: WaitOptions, evaluate: () => { value: T } | { error: Error } | null): Promise<T> {
    const { timeoutMs, signal } = options ?? ({} as WaitOptions);
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(Object.assign(new TypeError('timeoutMs must be a finite number >= 0'), { code: 'ERR_INVALID_ARG_VALUE' }));
    }
    if (signal?.aborted) return Promise.reject(abortError(signal.reason));
    if (this.m.closed.aborted) return Promise.reject(this.m.closed.reason);
    const first = evaluate();
    if (first !== null) return 'value' in first ? Promise.resolve(first.value) : Promise.reject(first.error);
    return new Promise<T>((resolve, reject) => {
      let unclose = (): void => {};
      const cleanup = (): void => {
        const set = this.waiters.get(zone);
        set?.delete(waiter);
        if (set?.size === 0) this.waiters.delete(zone);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        unclose();
      };
      const waiter: Waiter = {
        check: () => {
          const r = evaluate();
          if (r === null) return;
          cleanup();
          if ('value' in r) resolve(r.value);
          else reject(r.error);
        },
      };
      const onAbort = (): void => {
        cleanup();
        reject(abortError(signal?.reason));
      };
      const onClose = (): void => {
        cleanup();
        reject(this.m.closed.reason);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(hostError('ETIMEDOUT', `timed out after ${timeoutMs} ms waiting for ${what}`));
      }, Math.min(timeoutMs, MAX_TIMER_MS));
      let set = this.waiters.get(zone);
      if (set === undefined) this.waiters.set(zone, (set = new Set()));
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      unclose = this.m.onClose(onClose);
    });
  }

  /** Tracks "the zone left the kernel" for a wait: ZONE_GONE once it was in and is out again, or is deleted. */
  private goneCheck(zone: string): () => { rec: ZoneRecord } | { error: Error } {
    let sawKernel = false;
    return () => {
      const rec = this.zone(zone);
      if (rec === undefined) return { error: hostError('ZONE_GONE', `zone ${zone} does not exist`) };
      if (rec.zoneid !== null) sawKernel = true;
      else if (sawKernel) return { error: hostError('ZONE_GONE', `zone ${zone} left the kernel (halted)`) };
      return { rec };
    };
  }

  async waitForZoneRunning(zone: string, options: WaitOptions): Promise<void> {
    validateZoneName(zone);
    await this.m.opened();
    const gone = this.goneCheck(zone);
    return this.wait(zone, `zone ${zone} to be running`, options, () => {
      const g = gone();
      if ('error' in g) return g;
      return g.rec.state === 'running' ? { value: undefined } : null;
    });
  }

  async waitForService(zone: string, fmri: string, states: readonly SmfState[], options: WaitOptions): Promise<SmfState> {
    validateZoneName(zone);
    assertInstanceFmri(fmri);
    if (!Array.isArray(states) || states.length === 0 || states.some((s) => !(SMF_STATES as readonly string[]).includes(s))) {
      throw Object.assign(new TypeError(`states must be a non-empty array of ${SMF_STATES.join(', ')}`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
    await this.m.opened();
    const gone = this.goneCheck(zone);
    return this.wait(zone, `${fmri} in zone ${zone} to be ${states.join(' or ')}`, options, () => {
      const g = gone();
      if ('error' in g) return g;
      if (g.rec.state !== 'running') return null;
      const st = this.smf.instance(g.rec, fmri)?.state ?? null;
      return st !== null && states.includes(st) ? { value: st } : null;
    });
  }
}
