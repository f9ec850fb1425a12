// The child-process channel (src/sim/child-channel.ts) that the simulated host process and the
// Propolis farm share, against a tiny child of its own (test/support/echo-child.ts): calls and
// replies, errors and events across it, batching, and a child that never outlives its channel.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Batcher, ChildChannel, ChildGoneError, type ChildChannelOptions } from '../src/sim/child-channel.js';
import { alive, gone, withParentScript } from './support/processes.js';

const REPO = join(import.meta.dirname, '..');
/** Generous: a child started through tsx compiles its modules first, on a shared, busy machine. */
const PROCESS_MS = 60_000;

const channels: ChildChannel<{ i: number }>[] = [];

afterEach(async () => {
  for (const c of channels.splice(0)) await c.close();
});

function channel(options: Partial<ChildChannelOptions<{ i: number }>> = {}): ChildChannel<{ i: number }> {
  const c = new ChildChannel<{ i: number }>({ from: import.meta.url, module: 'support/echo-child', name: 'the echo child', ...options });
  channels.push(c);
  return c;
}

async function started(options: Partial<ChildChannelOptions<{ i: number }>> = {}): Promise<ChildChannel<{ i: number }>> {
  const c = channel(options);
  await c.ready();
  return c;
}

describe('ChildChannel', () => {
  it('calls a handler in the child and gets its value; a call made before it is ready waits for it', async () => {
    const c = channel();
    const early = c.request('echo', [1, 'two', { three: [3] }]);
    await c.ready();
    expect(c.pid).not.toBe(process.pid);
    await expect(early).resolves.toEqual([1, 'two', { three: [3] }]);
    await expect(c.request('echo')).resolves.toEqual([]);
    await expect(c.request('nope', [])).rejects.toThrow('no method nope');
  }, PROCESS_MS);

  it('revives an error with its message, name, code and own fields', async () => {
    const c = await started();
    const err = await c.request('fail', ['it broke', 'EBROKE', { at: [1, 2] }]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ message: 'it broke', name: 'Error', code: 'EBROKE', detail: { at: [1, 2] } });
    expect(err).not.toBeInstanceOf(ChildGoneError);
  }, PROCESS_MS);

  it('delivers the events the child sent, in order, before the reply sent after them', async () => {
    const events: number[] = [];
    const c = await started({ onEvent: (e) => events.push(e.i) });
    await expect(c.request('emit', [5])).resolves.toBe(5);
    expect(events).toEqual([0, 1, 2, 3, 4]);
  }, PROCESS_MS);

  it('sends what one turn of the event loop asked, over many microtask checkpoints, as one IPC message', async () => {
    const c = await started();
    const before = await c.request<number>('received');
    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      replies.push(c.request('echo', [i]));
      await Promise.resolve();
    }
    expect(await Promise.all(replies)).toEqual(Array.from({ length: 50 }, (_, i) => [i]));
    // The 50 calls' batch, and the batch of this count itself.
    expect(await c.request<number>('received')).toBe(before + 2);
  }, PROCESS_MS);

  it('an aborted call rejects here at once with ABORT_ERR, and its handler in the child is aborted', async () => {
    const c = await started();
    const ctl = new AbortController();
    const hang = c.request('hang', [], { signal: ctl.signal });
    const reason = new Error('stop');
    ctl.abort(reason);
    await expect(hang).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError', cause: reason });
    // The cancel went before this call, in the same batch.
    await expect(c.request('aborts')).resolves.toBe(1);
    await expect(c.request('echo', [1], { signal: ctl.signal })).rejects.toMatchObject({ code: 'ABORT_ERR' });
  }, PROCESS_MS);

  it('a child killed with SIGKILL rejects every call waiting, names itself and the signal, and is reported lost', async () => {
    let lost: ChildGoneError | null = null;
    const c = await started({ onLost: (why) => { lost = why; } });
    const pid = c.pid!;
    const hangs = [c.request('hang'), c.request('hang')];
    await c.request('echo'); // the hangs are in the child
    process.kill(pid, 'SIGKILL');
    for (const hang of hangs) {
      await expect(hang).rejects.toMatchObject({ code: 'ECANCELED', signal: 'SIGKILL', message: `the echo child (pid ${pid}) exited (SIGKILL)` });
    }
    expect(lost).toBeInstanceOf(ChildGoneError);
    expect(lost!.message).toBe(`the echo child (pid ${pid}) exited (SIGKILL)`);
    expect(c.alive).toBe(false);
    await expect(c.request('echo')).rejects.toBe(lost);
  }, PROCESS_MS);

  it('close() ends the child and fails what still waits, without reporting it lost', async () => {
    let lost = false;
    const c = await started({ onLost: () => { lost = true; } });
    const pid = c.pid!;
    const hang = c.request('hang').then(() => null, (err: unknown) => err);
    await c.request('echo');
    // It exited by itself as its channel closed (code 0), not by the kill 5 s after (SIGKILL).
    expect(await c.close()).toEqual({ code: 0, signal: null });
    expect(alive(pid)).toBe(false);
    expect(await hang).toMatchObject({ code: 'ECANCELED', message: 'the echo child was closed' });
    await expect(c.request('echo')).rejects.toMatchObject({ code: 'ECANCELED', message: 'the echo child was closed' });
    expect(c.alive).toBe(false);
    expect(lost).toBe(false);
  }, PROCESS_MS);

  it('ready() rejects for a child that exits first, or is not ready in time (which is killed)', async () => {
    await expect(channel({ args: ['exit-early'] }).ready()).rejects.toThrow(/cannot start the echo child .*: it exited \(code 3\) before it was ready/);
    const slow = channel({ args: ['never-ready'], readyMs: 1000 });
    await expect(slow.ready()).rejects.toThrow(/cannot start the echo child .*: not ready within 1000 ms/);
    await gone(slow.pid!, PROCESS_MS);
    await expect(slow.request('echo')).rejects.toBeInstanceOf(ChildGoneError);
  }, PROCESS_MS * 2);

  it('the child exits by itself when its parent is killed with SIGKILL', async () => {
    const channelModule = pathToFileURL(join(REPO, 'src', 'sim', 'child-channel.ts')).href;
    const script = [
      `const { ChildChannel } = await import(${JSON.stringify(channelModule)});`,
      `const c = new ChildChannel({ from: ${JSON.stringify(import.meta.url)}, module: 'support/echo-child', name: 'the echo child' });`,
      'await c.ready();',
      'console.log(JSON.stringify({ child: c.pid }));',
      'setInterval(() => {}, 60_000);',
    ];
    await withParentScript<{ child: number }>(script, async ({ child }, parent) => {
      expect(alive(child)).toBe(true);
      await parent.kill();
      await gone(child, PROCESS_MS);
    });
  }, PROCESS_MS * 2);
});

describe('Batcher', () => {
  it('per microtask checkpoint: what one callback pushed is one write, before the next turn', async () => {
    const writes: number[][] = [];
    const b = new Batcher<number>((batch) => {
      writes.push(batch.batch);
      return true;
    }, false);
    b.push(1);
    b.push(2);
    expect(writes).toEqual([]);
    await Promise.resolve();
    expect(writes).toEqual([[1, 2]]);
    b.push(3);
    b.push(4);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual([[1, 2], [3, 4]]);
  });

  it('per turn of the event loop, and what a declined write left goes with the next flush', async () => {
    const writes: number[][] = [];
    let open = false;
    const b = new Batcher<number>((batch) => {
      if (!open) return false;
      writes.push(batch.batch);
      return true;
    }, true);
    b.push(1);
    await Promise.resolve();
    b.push(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual([]);
    open = true;
    b.flush();
    b.push(3);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual([[1, 2], [3]]);
  });
});
