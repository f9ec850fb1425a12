// writeFileAtomic: what lands on disk, what a failure looks like to the caller and leaves
// behind, and the directory fsyncs that make it durable.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fsyncDir, writeFileAtomic } from '../src/common/persist.js';
import { spyOnDirSyncs } from './support/dir-syncs.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'persist-test-'));
  dirs.push(d);
  return d;
}

describe('writeFileAtomic', () => {
  it('writes the content with its mode, making the directory, and leaves no temporary file', async () => {
    const dir = join(tempDir(), 'a', 'b');
    const file = join(dir, 'ledger.json');
    await writeFileAtomic(file, 'one\n', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('one\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await writeFileAtomic(file, new TextEncoder().encode('two\n'));
    expect(readFileSync(file, 'utf8')).toBe('two\n');
    expect(readdirSync(dir)).toEqual(['ledger.json']);
  });

  it('rejects with the system error (code, syscall) and removes its temporary file', async () => {
    const dir = tempDir();
    const missing = join(dir, 'no-such-dir', 'x.json');
    const err = await writeFileAtomic(missing, 'x', 0o644, false).then(() => null, (e: unknown) => e as NodeJS.ErrnoException);
    expect(err).toBeInstanceOf(Error);
    expect(err?.code).toBe('ENOENT');
    expect(err?.syscall).toBe('open');

    // A directory where the file should be: the rename fails, the temporary file is removed.
    const file = join(dir, 'taken');
    mkdirSync(join(file, 'inside'), { recursive: true });
    const renameErr = await writeFileAtomic(file, 'x').then(() => null, (e: unknown) => e as NodeJS.ErrnoException);
    expect(renameErr?.syscall).toBe('rename');
    expect(readdirSync(dir).sort()).toEqual(['taken']);
  });

  it('makes each directory it creates durable in its parent, and syncs no parent when it creates none', async () => {
    const root = tempDir();
    const syncs = await spyOnDirSyncs();
    await writeFileAtomic(join(root, 'a', 'b', 'x.json'), '{}');
    for (const dir of [root, join(root, 'a'), join(root, 'a', 'b')]) expect(await syncs.synced(dir)).toBe(true);

    vi.restoreAllMocks();
    const again = await spyOnDirSyncs();
    await writeFileAtomic(join(root, 'a', 'b', 'y.json'), '{}');
    expect(await again.synced(join(root, 'a', 'b'))).toBe(true);
    expect(await again.synced(join(root, 'a'))).toBe(false);
  });

  it('rejects when the directory fsync fails (EIO), and goes on where directories cannot be synced (EINVAL)', async () => {
    const dir = tempDir();
    const file = join(dir, 'ledger.json');
    const syncs = await spyOnDirSyncs();
    syncs.fail = 'EIO';
    // The rename happened, but whether it is on disk is unknown: the caller must not be told it is.
    const err = await writeFileAtomic(file, 'x').then(() => null, (e: unknown) => e as NodeJS.ErrnoException);
    expect(err?.code).toBe('EIO');
    await expect(fsyncDir(dir)).rejects.toMatchObject({ code: 'EIO' });

    syncs.fail = 'EINVAL';
    await writeFileAtomic(file, 'y');
    await fsyncDir(dir);
    expect(readFileSync(file, 'utf8')).toBe('y');
  });
});
