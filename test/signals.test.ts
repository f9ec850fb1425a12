// anySignal (src/common/signals.ts): one signal for several, whose listeners on the sources go
// away when it fires or is disposed.
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { anySignal } from '../src/common/signals.js';

describe('anySignal', () => {
  it('aborts with the reason of the first source to abort, and unhooks from the others', () => {
    const a = new AbortController();
    const b = new AbortController();
    const { signal } = anySignal([a.signal, b.signal]);
    expect(signal.aborted).toBe(false);
    b.abort(new Error('b went'));
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('b went');
    expect(getEventListeners(a.signal, 'abort')).toHaveLength(0);
    a.abort(new Error('a went'));
    expect((signal.reason as Error).message).toBe('b went');
  });

  it('is aborted at once when a source already is', () => {
    const a = new AbortController();
    a.abort('early');
    const b = new AbortController();
    const { signal } = anySignal([b.signal, a.signal]);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('early');
    expect(getEventListeners(b.signal, 'abort')).toHaveLength(0);
  });

  it('dispose() removes its listeners from long-lived sources; the signal then stays as it is', () => {
    const long = new AbortController();
    for (let i = 0; i < 100; i++) {
      const step = new AbortController();
      const { dispose } = anySignal([long.signal, step.signal]);
      dispose();
    }
    expect(getEventListeners(long.signal, 'abort')).toHaveLength(0);
    const { signal, dispose } = anySignal([long.signal]);
    dispose();
    long.abort();
    expect(signal.aborted).toBe(false);
  });
});
