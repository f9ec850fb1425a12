// The npm scripts a newcomer runs: each names a file that exists, and `npm run openapi` writes
// the documents the CLI prints.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('package.json scripts', () => {
  const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;

  it.each(Object.entries(scripts))('"%s" names only files that exist', (_name, command) => {
    const files = command.match(/(?:^|\s)((?:scripts|src|config)\/[\w./-]+)/g)?.map((f) => f.trim()) ?? [];
    for (const file of files) expect(existsSync(join(ROOT, file)), `${file} in "${command}"`).toBe(true);
  });
});

describe('npm run openapi', () => {
  it('writes only the named API\'s document, as `sled-agent openapi` prints it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'openapi-test-'));
    const exported = await run(process.execPath, ['--import', 'tsx', 'scripts/export-openapi.ts', '--out', dir, 'sim'], { cwd: ROOT });
    expect(exported.stdout).toBe(`sim: ${join(dir, 'sled-agent-sim.json')}\n`);
    expect(readdirSync(dir)).toEqual(['sled-agent-sim.json']);
    const doc = JSON.parse(readFileSync(join(dir, 'sled-agent-sim.json'), 'utf8'));
    expect(doc.openapi).toBe('3.0.3');
    expect(doc.info.title).toBe('Oxide Sled Agent API');
    expect(Object.keys(doc.paths)).toContain('/instances/{instance_id}/poke');
  }, 60_000);

  it('refuses an API it does not know, with the usage', async () => {
    const failed = await run(process.execPath, ['--import', 'tsx', 'scripts/export-openapi.ts', 'nexus'], { cwd: ROOT })
      .then(() => null, (err: { code: number; stderr: string }) => err);
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/^openapi: unknown API "nexus"\nusage: npm run openapi -- \[--out DIR\] \[sled\|sim\|bootstrap \.\.\.\]/);
  }, 60_000);
});

describe('benchmark output', () => {
  const git = (...args: string[]) => run('git', args, { cwd: ROOT }).then((r) => r.stdout, () => null);

  it('lands where git neither tracks nor shows it; only the reference result is tracked', async () => {
    if (await git('rev-parse', '--is-inside-work-tree') === null) return; // not a git checkout
    // What bench:boot writes: <timestamp>.json/.svg and latest.json/.svg under results/boot.
    const written = ['2030-01-01T00-00-00-000Z.json', '2030-01-01T00-00-00-000Z.svg', 'latest.json', 'latest.svg']
      .map((f) => `results/boot/${f}`);
    expect((await git('ls-files', '--', ...written))?.trim()).toBe('');
    const ignored = (await git('check-ignore', '--', ...written))?.trim().split('\n');
    expect(ignored).toEqual(written);
    expect((await git('ls-files', 'results'))?.trim().split('\n')).toEqual(['results/boot/reference.json', 'results/boot/reference.svg']);
  });
});
