// One agent per directory (docs/architecture.md): two sled agents on one data directory adopt the same
// zones and report the same instances to Nexus with different generations. The lock is flock(2)
// on a file in the directory, taken without waiting: the kernel drops it when its holder dies,
// however it dies, so a SIGKILLed agent never blocks the next start, which a pid file alone
// cannot promise (a dead holder's pid may belong to another process by then). The holder writes
// its pid in the file only so that a refusal can name it.
//
// flock locks belong to the open file, not to the process: a second lockDirectory() of the same
// directory and role in the same process is refused too (two agents in one process, as the
// bootstrap agent runs its sled agent, are two holders).
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { AgentConfig } from '../config.js';
import { mkdirDurableSync } from './persist.js';

interface FsExt {
  flockSync(fd: number, flags: 'exnb'): void;
}

let fsExt: FsExt | undefined;

export class DirectoryInUseError extends Error {
  override name = 'DirectoryInUseError';

  constructor(readonly dir: string, what: string, holder: string, readonly pid: number | null) {
    super(`${what} ${dir} is in use by another ${holder} (${pid === null ? 'its pid not written yet' : `pid ${pid}`}); `
      + 'stop it first, or give this one a directory of its own');
  }
}

export interface DirectoryLock {
  readonly file: string;
  /**
   * The locked file's descriptor. A child given a copy (the simulated host's process) holds the
   * lock too, until it exits: the lock is the open file's, not the process's.
   */
  readonly fd: number;
  /**
   * Drops the lock. The file stays: removed, a third process could lock a new file of that name
   * while a second one holds the old.
   */
  release(): void;
}

/**
 * Locks `dir` (created if missing) for one kind of `holder` ("sled agent": the file is
 * sled-agent.lock), or throws DirectoryInUseError naming the holder's pid; `what` names the
 * directory in that message ("data directory").
 */
export function lockDirectory(dir: string, holder: string, what: string): DirectoryLock {
  fsExt ??= createRequire(import.meta.url)('fs-ext') as FsExt;
  // Made durable here, as the first to make it: the ledgers after this find it there already.
  mkdirDurableSync(dir);
  const file = join(dir, `${holder.replaceAll(' ', '-')}.lock`);
  // Close-on-exec, as libuv opens every file: a process the agent starts (zoneadm, a detached
  // zoneadmd) must not hold the lock on after the agent died.
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o644);
  try {
    fsExt.flockSync(fd, 'exnb');
  } catch (err) {
    closeSync(fd);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') throw new DirectoryInUseError(dir, what, holder, holderPid(file));
    throw new Error(`cannot lock ${file}: ${(err as Error).message}`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let held = true;
  return {
    file,
    fd,
    release() {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}

/** The pid the holder wrote; null in the moment between its lock and its write. */
function holderPid(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * The directories a real sled agent owns: its data directory and, unless the host is certainly
 * illumos, the simulated host's state directory. Taken before the host is opened (a simulated
 * host writes its state and revives its zones' servers as it opens); all or none.
 */
export function lockAgentDirectories(config: { data_dir: string; host: Pick<AgentConfig['host'], 'backend' | 'state_dir'> }): DirectoryLock[] {
  const wanted: Array<[string, string, string]> = [[config.data_dir, 'sled agent', 'data directory']];
  if (config.host.backend !== 'illumos') wanted.push([config.host.state_dir, 'simulated host', 'state directory']);
  const locks: DirectoryLock[] = [];
  try {
    for (const [dir, holder, what] of wanted) locks.push(lockDirectory(dir, holder, what));
  } catch (err) {
    for (const lock of locks) lock.release();
    throw err;
  }
  return locks;
}

/** Of lockAgentDirectories' locks, the simulated host's state directory's (openHost's simHostLock). */
export function simHostLock(locks: readonly DirectoryLock[]): DirectoryLock | undefined {
  return locks.find((l) => l.file.endsWith('simulated-host.lock'));
}
