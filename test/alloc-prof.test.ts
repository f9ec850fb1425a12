// bench:scale --alloc-prof (scripts/alloc-prof.ts): a process started with the preload samples
// its allocations, garbage included, between two SIGUSR2s, and the summary charges them to the
// innermost frame of the agent's own code.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allocProfPreload, startAllocSampling, stopAllocSampling, summarize, type Profiled } from '../scripts/alloc-prof.js';

let dir: string | undefined;
let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill('SIGKILL');
  child = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A stand-in for the agent: its code under src/, allocating garbage (strings) until killed. */
const AGENT = `
'use strict';
let kept = 0;
function makeGarbage() {
  for (let i = 0; i < 2000; i++) kept += JSON.stringify({ i, text: 'x'.repeat(64) + i }).length;
}
setInterval(makeGarbage, 5);
process.stdout.write('ready\\n');
`;

/** What the profiler needs of a child: its pid, and its exit. */
function profiled(proc: ChildProcess): Profiled {
  return { pid: proc.pid!, exited: new Promise((resolve) => proc.once('exit', resolve)) };
}

async function startAgent(root: string): Promise<ChildProcess> {
  mkdirSync(join(root, 'src'));
  const main = join(root, 'src', 'agent.cjs');
  writeFileSync(main, AGENT);
  const preload = join(root, 'alloc-prof.cjs');
  writeFileSync(preload, allocProfPreload(root));
  const proc = spawn(process.execPath, ['--require', preload, main], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`the stand-in exited (${code}) before it was ready`)));
  });
  return proc;
}

describe('--alloc-prof', () => {
  it('profiles between two signals and charges the garbage to the agent function that made it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alloc-prof-'));
    child = await startAgent(dir);
    const target = profiled(child);
    await startAllocSampling(target, dir);
    await new Promise((r) => setTimeout(r, 300));
    const file = join(dir, 'run.wave1.heapprofile');
    const summary = await stopAllocSampling(target, dir, file, 10);

    expect(summary.file).toBe(file);
    // Collected objects count: the strings die at once, so a profile of live objects would be near empty.
    expect(summary.kibPerInstance).toBeGreaterThan(10);
    const top = summary.top[0]!;
    expect(top.frame).toMatch(/^makeGarbage src\/agent\.cjs:\d+$/);
    expect(top.kibPerInstance).toBeGreaterThan(summary.kibPerInstance / 2);
    // The same file read again gives the same figures (what bench:scale prints is what it keeps).
    expect(summarize(file, 10)).toEqual(summary);
    // The process still runs: the signals were the preload's, not a default action.
    expect(child.exitCode).toBeNull();
  });

  it('says so when the process was not started with the preload, rather than waiting', async () => {
    dir = mkdtempSync(join(tmpdir(), 'alloc-prof-'));
    child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); process.stdout.write("ready\\n")'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => child!.stdout!.once('data', resolve));
    const target = profiled(child);
    await expect(startAllocSampling(target, dir)).rejects.toThrow(/exited \(was it started with the preload\?\)/);
    await target.exited;
  });

  it('reports a profile the agent could not take', () => {
    const root = (dir = mkdtempSync(join(tmpdir(), 'alloc-prof-')));
    writeFileSync(join(root, 'bad.heapprofile'), JSON.stringify({ error: 'HeapProfiler is not enabled' }));
    expect(() => summarize(join(root, 'bad.heapprofile'), 1)).toThrow(/could not take the profile: HeapProfiler is not enabled/);
  });
});
