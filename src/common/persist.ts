// Files the agent must not lose half of: written to a temporary file in the same directory,
// flushed, then renamed over the old one, so a crash leaves either the old or the new content.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** `makeDir` false skips creating the directory, for callers that made it once already. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, makeDir = true): Promise<void> {
  const dir = dirname(path);
  if (makeDir) await mkdirDurable(dir);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

/**
 * `mkdir -p`, made durable: a new directory is an entry in its parent, and until the parent is
 * fsynced a power loss can take the directory, and whatever was made durable inside it, away.
 * A directory that a killed process made but did not get to sync is not synced by the next one
 * (mkdir does not say it exists already); the filesystem's own commit, seconds later, covers it.
 */
export async function mkdirDurable(dir: string): Promise<void> {
  for (const made of madeDirs(dir, await mkdir(dir, { recursive: true }))) await fsyncDir(dirname(made));
}

/** mkdirDurable, for start-up before anything else runs (the directory locks). */
export function mkdirDurableSync(dir: string): void {
  for (const made of madeDirs(dir, mkdirSync(dir, { recursive: true }))) fsyncDirSync(dirname(made));
}

/** What mkdir -p made, outermost first: it names the first directory it made (none: undefined), and every one from there down to `dir` is new. */
function madeDirs(dir: string, first: string | undefined): string[] {
  if (first === undefined) return [];
  const top = resolve(first);
  const created = [resolve(dir)];
  for (let d = created[0] as string; d !== top && dirname(d) !== d; d = dirname(d)) created.push(dirname(d));
  return created.reverse();
}

/**
 * What fsync of a directory fails with where the filesystem or platform cannot sync one: EINVAL
 * (Linux: the filesystem has no fsync for it, fsync(2); POSIX: "not a file on which this
 * operation is possible"), EBADF (systems that sync only descriptors open for writing, which a
 * directory cannot be: NetBSD), and ENOTSUP from a filesystem that says so outright.
 * PostgreSQL's fsync_fname_ext ignores EBADF and EINVAL for directories alike. On the
 * filesystems the agent keeps its data on, a directory opened read-only syncs: Linux's ext4, xfs
 * and tmpfs, illumos's ZFS, tmpfs and UFS (its fdsync does not ask for a descriptor open for
 * writing). Not Windows's EPERM (libuv's name for FlushFileBuffers refusing a directory): the
 * agent does not run there.
 */
const CANNOT_SYNC_DIR = new Set(['EINVAL', 'EBADF', 'ENOTSUP']);

/**
 * Makes a rename or create in `dir` durable. Where directories cannot be synced, it does
 * nothing, the rename being atomic anyway; any other failure (EIO) means the change may not be
 * on disk, and throws.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    if (!CANNOT_SYNC_DIR.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    // Read-only: closing it cannot lose anything the sync did not already report.
    await handle.close().catch(() => {});
  }
}

/** fsyncDir, synchronously. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } catch (err) {
    if (!CANNOT_SYNC_DIR.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Compact JSON (one line): these files are read by programs, and some are rewritten whole and
 * often as they grow (the sim host's state, every change: at 1,000 instances 2.66 MB indented,
 * 13.8 ms to stringify, against 1.51 MB and 6.6 ms compact). `jq .` shows one to a person.
 */
export async function writeJsonAtomic(path: string, value: unknown, mode?: number): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value)}\n`, mode);
}

/** The parsed file, or null if it does not exist. */
export async function readJsonIfExists(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}
