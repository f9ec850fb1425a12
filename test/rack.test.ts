// `npm run rack` as a developer runs it: a two-sled rack on loopback that registers every sled
// with the Nexus it is given, reports the rack ready, and stops cleanly on Ctrl-C.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeNexus } from './support/fake-nexus.js';

let nexus: FakeNexus | undefined;
let dir: string | undefined;
afterEach(async () => {
  await nexus?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the rack until it says it is ready; resolves with its stdout lines and the child. */
async function rackUntilReady(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/rack.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines: string[] = [];
  const rl = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    rl.on('line', (line) => {
      lines.push(line);
      if (line.startsWith('rack ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`rack exited ${code} before it was ready:\n${lines.join('\n')}\n${stderr}`)));
  });
  return { child, lines };
}

/** A loopback address with nothing listening: a port bound, then released. */
async function deadAddress(): Promise<string> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

describe('npm run rack', () => {
  it('says on stdout that Nexus did not answer when nothing listens at --nexus', async () => {
    dir = mkdtempSync(join(tmpdir(), 'rack-test-'));
    const address = await deadAddress();
    const { child, lines } = await rackUntilReady(['--sleds', '1', '--nexus', address, '--nexus-wait', '1',
      '--state-dir', dir, '--sim-mode', 'explicit']);
    try {
      expect(lines).toContain(`Nexus at ${address} has not answered: 1 of 1 sled agent(s) not registered after 1 s, `
        + `so Nexus knows nothing of this rack yet; the sled agents keep retrying (see ${join(dir, 'rack.log')})`);
      expect(lines.some((l) => l.includes('answered the registration'))).toBe(false);
    } finally {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
  }, 60_000);

  it('sets up a two-sled rack against the given Nexus and stops on SIGINT', async () => {
    nexus = await FakeNexus.start();
    nexus.respond = (r) => (r.url.includes('/zpools/') ? { status: 200, body: '{}' } : { status: 204 });
    dir = mkdtempSync(join(tmpdir(), 'rack-test-'));
    // Generous: it waits only until every sled is registered, and a busy machine may be slow to.
    const { child, lines } = await rackUntilReady(['--sleds', '2', '--nexus', nexus.address, '--nexus-wait', '40',
      '--state-dir', dir, '--sim-mode', 'explicit']);

    expect(lines[0]).toBe(`Nexus: ${nexus.address}`);
    const sledLines = lines.filter((l) => l.startsWith('sled '));
    expect(sledLines).toHaveLength(2);
    expect(sledLines[0]).toMatch(/^sled 0: id [0-9a-f-]{36} subnet fd00:1122:3344:101::\/64 sled agent 127\.0\.0\.1:\d+ bootstrap agent 127\.0\.0\.1:\d+$/);
    expect(lines).toContain('trust quorum: sled 0 rebuilt the rack secret from its share and 1 peer share(s) (threshold 2 of 2)');
    expect(lines).toContain(`Nexus at ${nexus.address} answered the registration of every sled agent`);

    const ids = sledLines.map((l) => /id ([0-9a-f-]{36})/.exec(l)![1]);
    for (const id of ids) await nexus.waitFor((r) => r.method === 'POST' && r.url === `/sled_agents/${id}`);
    // Every sled reported its two pools, and sled 0 its RSS datasets (cockroach and clickhouse among them).
    await nexus.waitForCount((r) => r.url.includes('/zpools/') && !r.url.includes('/dataset/'), 4);
    await nexus.waitFor((r) => r.url.includes('/dataset/') && r.body.kind === 'cockroach');
    const plan = JSON.parse(readFileSync(join(dir, 'rss', 'rss-plan-completed.json'), 'utf8'));
    expect(plan.sleds.map((s: { id: string }) => s.id)).toEqual(ids);

    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  }, 60_000);
});
