// The npm scripts a newcomer runs: each names a file that exists, `npm run openapi` writes the
// documents the CLI prints, and `npm run bench:boot` runs its three modes (a smoke run at zero
// latency: what it reports, never how fast).
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

describe('npm run bench:boot', () => {
  interface BootRun {
    mode: string;
    n: number;
    ok: boolean;
    settings: { readiness: string; steps: string; warmPool: number; template: boolean };
    instances: Array<{ start: 'pool' | 'own'; totalMs: number | null; marks: Record<string, number>; segments: Record<string, number> }>;
  }

  it('runs the original, warm and cold modes side by side, the pool running out at N > K, and judges the targets', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-boot-test-'));
    // Zero latency, one instance at N = 1, a pool of one: the modes' code paths, not their speed.
    // The sim host in a process of its own with its Propolis servers, the floor's in a farm
    // process (the defaults).
    // The default --entry build: the benchmark and the agent compiled by tsc, as dist/ ships.
    const builds = () => readdirSync(tmpdir()).filter((n) => n.startsWith('bench-boot-build-')).sort();
    const before = builds();
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/bench-boot.ts',
      '--counts', '1,2', '--rounds', '1', '--pool', '1', '--latency', 'zero', '--no-warmup', '--out', dir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toMatch(/compiling the benchmark and the agent .* with tsc into .*bench-boot-build-/);
    expect(stdout).toContain('agent: the working tree compiled by tsc');
    // The build is removed; another test's may be under way meanwhile, so only this one's is looked for.
    const mine = /with tsc into .*\/(bench-boot-build-[^/]+)\/tree/.exec(stdout)![1]!;
    expect(before).not.toContain(mine);
    expect(builds()).not.toContain(mine);
    expect(stdout).toContain('side by side');
    expect(stdout).toMatch(/target warm total p50 <= 0\.15x original's: .* (PASS|FAIL)/);
    expect(stdout).toMatch(/target cold total p50 <= 0\.6x original's: .* (PASS|FAIL)/);
    expect(readdirSync(dir).sort()).toEqual(expect.arrayContaining(['latest.json', 'latest.svg']));
    expect(readdirSync(dir)).toHaveLength(4);

    const doc = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as {
      runs: BootRun[]; verdicts: Array<{ n: number; target: string; pass: boolean | null }>; httpFloor: { propolis: string }; sim: { simulation: string }; entry: string;
    };
    expect(doc.sim.simulation).toBe('process');
    expect(doc.entry).toBe('build');
    expect(stdout).toMatch(/main thread \(agent\): CPU/);
    expect(stdout).not.toMatch(/main thread \(agent \+ host/);
    expect(doc.runs.map((r) => `${r.mode} ${r.n}`)).toEqual(['original 1', 'warm 1', 'cold 1', 'original 2', 'warm 2', 'cold 2']);
    for (const r of doc.runs) {
      expect(r.ok, `${r.mode} N=${r.n}`).toBe(true);
      expect(r.instances).toHaveLength(r.n);
      for (const i of r.instances) expect(i.totalMs).not.toBeNull();
    }
    const runOf = (mode: string, n: number) => doc.runs.find((r) => r.mode === mode && r.n === n)!;
    expect(runOf('original', 1).settings).toEqual({ readiness: 'poll', steps: 'serial', warmPool: 0, template: false });
    expect(runOf('warm', 1).settings).toEqual({ readiness: 'event', steps: 'parallel', warmPool: 1, template: true });
    expect(runOf('cold', 1).settings).toEqual({ readiness: 'event', steps: 'parallel', warmPool: 0, template: true });
    // The original installs each zone; the cold path clones the template; a warm start takes the pool's zone.
    for (const n of [1, 2]) {
      for (const i of runOf('original', n).instances) expect(Object.keys(i.marks)).toEqual(expect.arrayContaining(['phase:install']));
      for (const i of runOf('cold', n).instances) {
        expect(i.start).toBe('own');
        expect(Object.keys(i.marks)).toContain('phase:clone');
        expect(Object.keys(i.marks)).not.toContain('phase:install');
      }
    }
    expect(runOf('warm', 1).instances.map((i) => i.start)).toEqual(['pool']);
    expect(Object.keys(runOf('warm', 1).instances[0]!.segments)).toContain('pool');
    // N = 2 with one warm zone: one start takes it, the other has a zone made for it.
    expect(runOf('warm', 2).instances.map((i) => i.start).sort()).toEqual(['own', 'pool']);
    // The latencies drawn in the sim host's process came back for both instances (zero here,
    // but measured): a missing field, not only a null, fails.
    expect((runOf('warm', 2) as BootRun & { modelled: unknown }).modelled).toMatchObject({ n: 2 });
    // The warm targets at N = 1, the cold one at each N; nothing at N = 100 here.
    expect(doc.verdicts.map((v) => `${v.n} ${v.target}`)).toEqual([
      "1 warm total p50 <= 0.15x original's", "1 warm total p99 <= 0.2x original's", "1 cold total p50 <= 0.6x original's",
      "2 cold total p50 <= 0.6x original's",
    ]);
    for (const v of doc.verdicts) expect(typeof v.pass).toBe('boolean');
    expect(doc.httpFloor.propolis).toBe('process');
    const svg = readFileSync(join(dir, 'latest.svg'), 'utf8');
    expect(svg).toMatch(/^<svg /);
    for (const label of ['original', 'cold', 'warm', 'pool 1', 'own 1', 'N = 1', 'N = 2']) expect(svg).toContain(`>${label}<`);
  }, 180_000);

  it('judges the N = 100 overhead on the median of --overhead-runs runs, the extra runs kept out of the tables', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-boot-test-'));
    // Zero latency: the figures mean nothing here, what is checked is how they are combined.
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/bench-boot.ts',
      '--counts', '100', '--modes', 'cold', '--overhead-runs', '2', '--latency', 'zero', '--no-warmup', '--out', dir, '--entry', 'tsx'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toMatch(/cold N=100 run 2 of 2 \(for the overhead target only\)/);
    const doc = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as {
      runs: BootRun[];
      overheadRuns: Array<{ mode: string; n: number; run: number; outsideHostAboveFloorP99Ms: number | null }>;
      verdicts: Array<{ n: number; target: string; value: number | null; pass: boolean }>;
    };
    expect(doc.runs.map((r) => `${r.mode} ${r.n}`)).toEqual(['cold 100']);
    expect(doc.overheadRuns.map((o) => `${o.mode} ${o.n} ${o.run}`)).toEqual(['cold 100 1', 'cold 100 2']);
    const [a, b] = doc.overheadRuns.map((o) => o.outsideHostAboveFloorP99Ms);
    expect(typeof a).toBe('number');
    expect(typeof b).toBe('number');
    const verdict = doc.verdicts.find((v) => v.target.startsWith('cold agent overhead'))!;
    expect(verdict.target).toContain('the median of 2 runs');
    expect(verdict.target).toContain('the sim host in a process of its own');
    expect(verdict.value).toBeCloseTo((a! + b!) / 2, 2);
    expect(verdict.pass).toBe(verdict.value! <= 20);
  }, 180_000);

  it('replays the floor with the agent\'s exchanges: each state Propolis reports goes to Nexus, as the agent sends it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-boot-test-'));
    // Realistic latencies, where Propolis reports Starting and, a VM boot later, Running, and
    // the agent reports both (at zero latency which of them a monitor sees is a race).
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/bench-boot.ts',
      '--counts', '1', '--rounds', '1', '--modes', 'cold', '--no-warmup', '--out', dir, '--entry', 'tsx'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toContain('Nexus got the same states from the floor as from the agent for 1 of 1');
    const doc = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as {
      runs: Array<BootRun & { instances: Array<{ floorNexusStates?: string[] | null }> }>;
      httpFloor: { replayed: Array<{ sameReports: number; replayed: number }> };
    };
    expect(doc.httpFloor.replayed).toMatchObject([{ sameReports: 1, replayed: 1 }]);
    expect(doc.runs[0]!.instances).toHaveLength(1);
    for (const i of doc.runs[0]!.instances) {
      const agent = Object.entries(i.marks).filter(([m]) => m.startsWith('nexus:')).sort(([, x], [, y]) => x - y).map(([m]) => m.slice('nexus:'.length));
      expect(agent).toEqual(['starting', 'running']);
      expect(i.floorNexusStates).toEqual(agent);
    }
  }, 180_000);

  it('runs with the simulated host on the agent\'s event loop (--simulation in-process), its Propolis servers in a farm process', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-boot-test-'));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/bench-boot.ts',
      '--counts', '2', '--modes', 'warm', '--pool', '1', '--latency', 'zero', '--no-warmup', '--simulation', 'in-process', '--out', dir, '--entry', 'tsx'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    const doc = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as { sim: { simulation: string; propolis: string }; runs: Array<BootRun & { modelled: unknown }> };
    expect(doc.sim).toMatchObject({ simulation: 'in-process', propolis: 'farm process' });
    expect(stdout).toContain('agent: src/ through tsx\'s loader (--entry tsx)');
    expect(stdout).not.toContain('compiling the benchmark');
    expect(stdout).toMatch(/main thread \(agent \+ host \+ pool refill\): CPU/);
    expect(doc.runs.map((r) => `${r.mode} ${r.n} ${r.ok}`)).toEqual(['warm 2 true']);
    expect(doc.runs[0]!.instances.map((i) => i.start).sort()).toEqual(['own', 'pool']);
    // The latencies the sim drew came back for both instances (zero here, but measured): a
    // missing field, not only a null, fails.
    expect(doc.runs[0]!.modelled).toMatchObject({ n: 2 });
  }, 180_000);
});
