// The notifier's delivery rules, driven by send functions the test controls: per-key order,
// coalescing to the newest state, retries until success, no retries after a 4xx, and drain
// (with a real client against a Nexus that never answers, for shutdown).
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { NexusNotifier } from '../src/common/nexus-notifier.js';
import { NexusClient, NexusError } from '../src/nexus-client.js';

const log = pino({ level: 'silent' });
const fast = { initialMs: 1, maxMs: 4, factor: 2 };

/** A send whose completion the test decides. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => { open = resolve; });
  return { promise, open };
}

describe('NexusNotifier', () => {
  it('delivers pushes for one key in order and coalesces what queued behind an in-flight one', async () => {
    const notifier = new NexusNotifier(log, fast);
    const sent: number[] = [];
    const first = gate();
    const p1 = notifier.push('instance:a', 'gen 1', async () => { sent.push(1); await first.promise; });
    const p2 = notifier.push('instance:a', 'gen 2', async () => { sent.push(2); });
    const p3 = notifier.push('instance:a', 'gen 3', async () => { sent.push(3); });
    expect(await p2).toBe('superseded');
    first.open();
    expect(await p1).toBe('delivered');
    expect(await p3).toBe('delivered');
    expect(sent).toEqual([1, 3]);
  });

  it('keeps keys independent: a stuck key does not hold up another', async () => {
    const notifier = new NexusNotifier(log, fast);
    const stuck = gate();
    const a = notifier.push('instance:a', 'a', () => stuck.promise);
    expect(await notifier.push('instance:b', 'b', async () => {})).toBe('delivered');
    stuck.open();
    expect(await a).toBe('delivered');
  });

  it('retries transient failures until Nexus accepts', async () => {
    const notifier = new NexusNotifier(log, fast);
    let calls = 0;
    const outcome = await notifier.push('sled', 'register', async () => {
      calls += 1;
      if (calls === 1) throw new NexusError('connection refused', null);
      if (calls < 5) throw new NexusError('busy', 503);
    });
    expect(outcome).toBe('delivered');
    expect(calls).toBe(5);
  });

  it('sends the newest state, not the failed older one, when a push arrives during backoff', async () => {
    const notifier = new NexusNotifier(log, { initialMs: 60_000, maxMs: 60_000, factor: 2 });
    const sent: string[] = [];
    const failed = gate();
    const old = notifier.push('instance:a', 'old', async () => {
      sent.push('old');
      failed.open();
      throw new NexusError('down', 503);
    });
    await failed.promise;
    // The lane now waits a minute; a newer state must go out at once instead.
    const fresh = await notifier.push('instance:a', 'new', async () => { sent.push('new'); });
    expect(fresh).toBe('delivered');
    expect(await old).toBe('superseded');
    expect(sent).toEqual(['old', 'new']);
  });

  it('does not retry a 4xx refusal', async () => {
    const notifier = new NexusNotifier(log, fast);
    let calls = 0;
    const outcome = await notifier.push('instance:a', 'bad', async () => {
      calls += 1;
      throw new NexusError('no', 400);
    });
    expect(outcome).toBe('refused');
    expect(calls).toBe(1);
    expect(notifier.backlog).toBe(0);
  });

  it('drains what it can, then cancels the rest and refuses new pushes', async () => {
    const notifier = new NexusNotifier(log, fast);
    const slow = gate();
    const ok = notifier.push('a', 'a', () => slow.promise);
    const never = notifier.push('b', 'b', async () => { throw new NexusError('down', null); });
    setTimeout(() => slow.open(), 5);
    const left = await notifier.drain(100);
    expect(left).toBe(1);
    expect(await ok).toBe('delivered');
    expect(await never).toBe('cancelled');
    expect(await notifier.push('c', 'c', async () => {})).toBe('cancelled');
  });

  it('gives a lane waiting out its backoff one try at once when drained, rather than cancel it untried', async () => {
    // A backoff far longer than the drain's window: only the drain's wake can make the retry.
    const notifier = new NexusNotifier(log, { initialMs: 600_000, maxMs: 600_000, factor: 2 });
    let attempts = 0;
    const failed = gate();
    const outcome = notifier.push('a', 'a', async () => {
      attempts += 1;
      if (attempts === 1) {
        failed.open();
        throw new NexusError('down', null);
      }
    });
    await failed.promise;
    expect(await notifier.drain(20_000)).toBe(0);
    expect(await outcome).toBe('delivered');
    expect(attempts).toBe(2);
  }, 60_000);

  it('at shutdown, cuts off a report Nexus never answers: no retry announced, the client closes, the caller hears cancelled', async () => {
    const requests: IncomingMessage[] = [];
    const arrived = gate();
    const server = createServer((req) => { requests.push(req); arrived.open(); });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const lines: Array<{ msg: string }> = [];
    const logged = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line)); } });
    const { port } = server.address() as AddressInfo;
    // A timeout far past the test's: only cutting the request off ends it in time.
    const nexus = new NexusClient(`127.0.0.1:${port}`, { timeoutMs: 600_000 });
    try {
      const notifier = new NexusNotifier(logged, fast);
      const outcome = notifier.push('instance:a', 'gen 1', () => nexus.sledAgentPost('a', { sa_address: '127.0.0.1:1' }));
      await arrived.promise;
      expect(await notifier.drain(10)).toBe(1);
      await nexus.close();
      expect(await outcome).toBe('cancelled');
      expect(lines.filter((l) => /will retry/.test(l.msg))).toEqual([]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 60_000);

  it('jitters and caps the backoff', () => {
    const notifier = new NexusNotifier(log, { initialMs: 100, maxMs: 1000, factor: 2 });
    const delays = (attempt: number) => Array.from({ length: 200 }, () => (notifier as any).delayFor(attempt) as number);
    for (const d of delays(1)) {
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(100);
    }
    for (const d of delays(20)) {
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(1000);
    }
    expect(new Set(delays(3)).size).toBeGreaterThan(10);
  });
});
