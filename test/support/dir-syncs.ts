// A power loss cannot be simulated, so durability tests check the fsyncs it depends on: which
// directories were synced (told apart by inode, as a handle does not know its path), and what a
// directory's sync fails with.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { vi } from 'vitest';

export interface DirSyncs {
  /** A code (EIO, EINVAL) that every directory fsync from now on fails with; undefined: they work. */
  fail: string | undefined;
  /** Whether the directory at `path` was fsynced (successfully) since spyOnDirSyncs. */
  synced(path: string): Promise<boolean>;
}

/** Spies on every FileHandle's sync(), until vi.restoreAllMocks(). */
export async function spyOnDirSyncs(): Promise<DirSyncs> {
  const probe = await open(tmpdir(), 'r');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const sync = proto.sync;
  const seen = new Set<string>();
  const syncs: DirSyncs = {
    fail: undefined,
    synced: async (path) => {
      const { dev, ino } = await stat(path);
      return seen.has(`${dev}:${ino}`);
    },
  };
  vi.spyOn(proto, 'sync').mockImplementation(async function (this: FileHandle) {
    const st = await this.stat();
    if (st.isDirectory() && syncs.fail !== undefined) {
      throw Object.assign(new Error(`${syncs.fail}: injected, fsync`), { code: syncs.fail, syscall: 'fsync' });
    }
    await sync.call(this);
    if (st.isDirectory()) seen.add(`${st.dev}:${st.ino}`);
  });
  return syncs;
}
