// `npm run rack` as a developer runs it: a two-sled rack on loopback that registers every sled
// with the Nexus it is given, reports the rack ready, and stops cleanly on Ctrl-C.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeNexus } from './support/fake-nexus.js';

let nexus: FakeNexus | undefined;
let dir: string | undefined;
afterEach(async () => {
  await nexus?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm run rack', () => {
  it('sets up a two-sled rack against the given Nexus and stops on SIGINT', async () => {
    nexus = await FakeNexus.start();
    nexus.respond = (r) => (r.url.includes('/zpools/') ? { status: 200, body: '{}' } : { status: 204 });
    dir = mkdtempSync(join(tmpdir(), 'rack-test-'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/rack.ts', '--sleds', '2', '--nexus', nexus.address,
      '--state-dir', dir, '--sim-mode', 'explicit'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

    expect(lines[0]).toBe(`Nexus: ${nexus.address}`);
    const sledLines = lines.filter((l) => l.startsWith('sled '));
    expect(sledLines).toHaveLength(2);
    expect(sledLines[0]).toMatch(/^sled 0: id [0-9a-f-]{36} subnet fd00:1122:3344:101::\/64 sled agent 127\.0\.0\.1:\d+ bootstrap agent 127\.0\.0\.1:\d+$/);
    expect(lines).toContain('trust quorum: sled 0 rebuilt the rack secret from its share and 1 peer share(s) (threshold 2 of 2)');

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
