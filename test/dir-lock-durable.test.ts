// The directory locks are the first to make the agents' directories (lockDirectory runs before
// any ledger opens), so they must make them durable: a ledger that opens one already there has
// nothing left to sync in its parent. fsyncSync is wrapped to see which directories were synced.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { lockDirectory } from '../src/common/dir-lock.js';

const synced = new Set<string>();
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    fsyncSync: (fd: number) => {
      fs.fsyncSync(fd);
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) synced.add(`${st.dev}:${st.ino}`);
    },
  };
});

const wasSynced = (path: string) => {
  const st = statSync(path);
  return synced.has(`${st.dev}:${st.ino}`);
};

const dirs: string[] = [];
afterEach(() => {
  synced.clear();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('lockDirectory', () => {
  it('makes a directory it creates durable in its parent, every level of it', () => {
    const root = mkdtempSync(join(tmpdir(), 'dir-lock-'));
    dirs.push(root);
    const lock = lockDirectory(join(root, 'a', 'b'), 'sled agent', 'data directory');
    try {
      for (const dir of [root, join(root, 'a')]) expect(wasSynced(dir)).toBe(true);
    } finally {
      lock.release();
    }
  });

  it('syncs nothing for a directory that is there already', () => {
    const root = mkdtempSync(join(tmpdir(), 'dir-lock-'));
    dirs.push(root);
    const lock = lockDirectory(root, 'sled agent', 'data directory');
    lock.release();
    expect(synced.size).toBe(0);
  });
});
