// runCommand (src/illumos/exec.ts), which runs zoneadm, zlogin, ipadm and opteadm: a deadline that
// holds even for a program that ignores it, reaches what the program started, and sends zlogin
// the signal it passes on; a program given no input reads end-of-file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCommand, type CommandFailure } from '../src/illumos/exec.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected the run to fail'); }, (err: unknown) => err as CommandFailure);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('runCommand', () => {
  it('returns the output of a program that succeeds, and the status and stderr of one that fails', async () => {
    expect(await runCommand('sh', ['-c', 'echo out; echo err >&2'], { timeoutMs: 10_000 })).toEqual({ stdout: 'out\n', stderr: 'err\n' });
    const f = await failure(runCommand('sh', ['-c', 'echo why >&2; exit 3'], { timeoutMs: 10_000 }));
    expect(f).toMatchObject({ exitCode: 3, timedOut: false, spawnCode: null, stderr: 'why\n' });
    const missing = await failure(runCommand('/nonexistent/program', [], { timeoutMs: 10_000 }));
    expect(missing.spawnCode).toBe('ENOENT');
  });

  it('gives a program without input end-of-file, not a pipe nobody writes', async () => {
    expect(await runCommand('cat', [], { timeoutMs: 10_000 })).toEqual({ stdout: '', stderr: '' });
    expect(await runCommand('cat', [], { timeoutMs: 10_000, stdin: 'given' })).toEqual({ stdout: 'given', stderr: '' });
  });

  it('fails at its deadline even when the program ignores the signal, and kills what it started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'exec-'));
    dirs.push(dir);
    const pidFile = join(dir, 'child.pid');
    // The shell ignores SIGTERM and waits on a child of its own, as zoneadm waits on a brand hook.
    const run = runCommand('sh', ['-c', `trap '' TERM; sleep 60 & echo $! > ${pidFile}; wait`], { timeoutMs: 200, killGraceMs: 200 });
    const f = await failure(run);
    expect(f).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    await expect.poll(() => alive(grandchild), { timeout: 5_000 }).toBe(false);
  });

  it('sends the interrupt it is given first (zlogin passes SIGINT on into the zone)', async () => {
    const f = await failure(runCommand('sh', ['-c', `trap 'echo interrupted; exit 5' INT; sleep 60 & wait`], { timeoutMs: 200, interrupt: 'SIGINT', killGraceMs: 200 }));
    expect(f).toMatchObject({ timedOut: true, exitCode: 5, stdout: 'interrupted\n' });
  });
});
