// Combining abort signals without Node 20's AbortSignal.any: every signal that makes stays
// reachable from a long-lived source (a host's close signal, a zone's run signal) until that
// source is collected. Measured on Node 20.20: 250,000 calls under one never-aborted controller
// kept ~300 MB (`node --expose-gc`, heapUsed after gc). A simulated host makes several per
// instance step, for as long as the agent runs.

export interface LinkedSignal {
  /** Aborts, with the first source's reason, when any source does. */
  signal: AbortSignal;
  /** Removes the listeners on the sources; call when the work the signal guards is over. */
  dispose(): void;
}

export function anySignal(sources: readonly AbortSignal[]): LinkedSignal {
  const ctl = new AbortController();
  const fired = sources.find((s) => s.aborted);
  if (fired !== undefined) {
    ctl.abort(fired.reason);
    return { signal: ctl.signal, dispose: () => {} };
  }
  const onAbort = (event: Event): void => {
    dispose();
    ctl.abort((event.target as AbortSignal).reason);
  };
  const dispose = (): void => {
    for (const s of sources) s.removeEventListener('abort', onAbort);
  };
  for (const s of sources) s.addEventListener('abort', onAbort, { once: true });
  return { signal: ctl.signal, dispose };
}
