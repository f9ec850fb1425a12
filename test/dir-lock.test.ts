// The lock that keeps one agent per directory; across processes (and SIGKILL) in cli.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectoryInUseError, lockAgentDirectories, lockDirectory, type DirectoryLock } from '../src/common/dir-lock.js';

describe('lockDirectory', () => {
  const held: DirectoryLock[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const lock of held.splice(0)) lock.release();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'dir-lock-test-'));
    dirs.push(dir);
    return dir;
  };

  it('creates the directory, writes the holder\'s pid, and refuses a second holder naming both', () => {
    const dir = join(tempDir(), 'data');
    const lock = lockDirectory(dir, 'sled agent', 'data directory');
    held.push(lock);
    expect(lock.file).toBe(join(dir, 'sled-agent.lock'));
    expect(readFileSync(lock.file, 'utf8')).toBe(`${process.pid}\n`);
    // flock belongs to the open file: a second open in this same process is another holder.
    let refusal: unknown;
    try {
      held.push(lockDirectory(dir, 'sled agent', 'data directory'));
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(DirectoryInUseError);
    expect((refusal as Error).message).toBe(`data directory ${dir} is in use by another sled agent (pid ${process.pid}); `
      + 'stop it first, or give this one a directory of its own');
  });

  it('lets the next holder in once released, and keeps holders of different kinds apart', () => {
    const dir = tempDir();
    lockDirectory(dir, 'sled agent', 'data directory').release();
    held.push(lockDirectory(dir, 'sled agent', 'data directory'));
    held.push(lockDirectory(dir, 'bootstrap agent', 'data directory'));
  });

  it('takes a sled agent\'s directories all or none, the sim host\'s state only off illumos', () => {
    const dir = tempDir();
    const stateDir = join(dir, 'sim-host');
    held.push(lockDirectory(stateDir, 'simulated host', 'state directory'));
    const config = { data_dir: join(dir, 'data'), host: { backend: 'auto', state_dir: stateDir } } as const;
    expect(() => lockAgentDirectories(config)).toThrow(`state directory ${stateDir} is in use`);
    // The data directory's lock, taken first, was given back.
    held.push(lockDirectory(config.data_dir, 'sled agent', 'data directory'));
    held.pop()!.release();
    held.push(...lockAgentDirectories({ ...config, host: { ...config.host, backend: 'illumos' } }));
  });
});
