// SMF service state inside a zone, over the addon's libscf binding (native/scf.cc): read it, or
// wait for it to reach one of a set of states with libscf's property-group wait (an event from
// svc.configd, never a sleep-and-retry loop), with an exact deadline and an AbortSignal.
import type { SmfState } from '../host/index.js';
import { assertInstanceFmri, assertZoneName, SMF_STATES } from '../host/names.js';
import { loadNative, type NativeError } from './addon.js';

/** setTimeout's limit (a longer delay would fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function invalid(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_VALUE' });
}

function assertStates(states: unknown): asserts states is SmfState[] {
  if (!Array.isArray(states) || states.length === 0) throw invalid('states must be a non-empty array of SMF states');
  for (const s of states) {
    if (!(SMF_STATES as readonly string[]).includes(s as string)) {
      throw invalid(`unknown SMF state ${JSON.stringify(s)}: expected one of ${SMF_STATES.join(', ')}`);
    }
  }
}

/** The restarter/state of a service instance in a zone (e.g. getServiceState('oxz_x', 'svc:/milestone/network:default')). */
export async function getServiceState(zone: string, fmri: string): Promise<SmfState> {
  assertZoneName(zone);
  assertInstanceFmri(fmri);
  return (await loadNative().smfState(zone, fmri)) as SmfState;
}

export interface WaitForServiceStateOptions {
  /** Reject with code "ETIMEDOUT" if no wanted state is reached within this many ms. */
  timeoutMs: number;
  /** Aborting rejects with an AbortError (code "ABORT_ERR", cause = the signal's reason). */
  signal?: AbortSignal;
}

function timeoutError(zone: string, fmri: string, states: readonly string[], ms: number): NativeError {
  return Object.assign(new Error(`timed out after ${ms} ms waiting for ${fmri} in zone ${zone} to be ${states.join(' or ')}`), {
    code: 'ETIMEDOUT',
  });
}

function abortError(reason: unknown): Error {
  return Object.assign(new Error('the operation was aborted', { cause: reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * Resolves with the service's state once it is one of `states` (at once if it already is). The
 * wait runs on its own native thread, blocked in libscf's property-group wait; the deadline and
 * the signal cancel it (the native side unbinds its handle).
 */
export async function waitForServiceState(
  zone: string,
  fmri: string,
  states: readonly SmfState[],
  options: WaitForServiceStateOptions,
): Promise<SmfState> {
  assertZoneName(zone);
  assertInstanceFmri(fmri);
  assertStates(states);
  const { timeoutMs, signal } = options;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw invalid('timeoutMs must be a finite number >= 0');
  }
  if (signal?.aborted) throw abortError(signal.reason);

  // The native deadline is a backstop in whole seconds; the timer below is the exact one.
  const wait = loadNative().smfWaitState(zone, fmri, { states: [...states], timeoutMs });
  return new Promise<SmfState>((resolve, reject) => {
    let settled = false;
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    const timer = setTimeout(() => {
      wait.cancel();
      finish(() => reject(timeoutError(zone, fmri, states, timeoutMs)));
    }, Math.min(timeoutMs, MAX_TIMER_MS));
    const onAbort = (): void => {
      wait.cancel();
      finish(() => reject(abortError(signal?.reason)));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    wait.promise.then(
      (state) => finish(() => resolve(state as SmfState)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}
