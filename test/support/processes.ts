// Processes a test did not fork itself (no exit event reaches it): the simulated host's process
// that an agent forked with `[host] simulation = "process"`, a sim host's Propolis farm.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const REPO = join(import.meta.dirname, '..', '..');

/** The simulated host process's pid, from the agent's log line; null if the agent logged none. */
export function simHostPid(agentStderr: string): number | null {
  const m = /"sim_host_pid":(\d+)[^\n]*"msg":"simulated host: in its own process"/.exec(agentStderr);
  return m === null ? null : Number(m[1]);
}

/**
 * Whether `pid` is a live process. A zombie is not: one whose parent died is reaped by whoever
 * adopted it, which in a container may be never, and kill(pid, 0) still finds it.
 */
export function alive(pid: number): boolean {
  if (existsSync('/proc/self/stat')) {
    try {
      // "pid (comm) S ...": the state follows the last ')'.
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return text[text.lastIndexOf(')') + 2] !== 'Z';
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves once `pid` is gone; rejects if it is still alive after `boundMs`, which bounds a
 * failing test and is not a timing assumption.
 */
export async function gone(pid: number, boundMs = 10_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still alive after ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Runs `lines` (an ES module, through tsx, from the repository's root) as a parent process of
 * its own, which is to start a child and print one JSON line about it; `body` gets that line,
 * the parent's pid and a SIGKILL of the parent that resolves once it exited. For checking that a
 * child does not outlive a parent killed with no chance to clean up. The parent is killed after
 * `body` in any case.
 */
export async function withParentScript<T>(
  lines: string[],
  body: (printed: T, parent: { pid: number; kill(): Promise<void> }) => Promise<void>,
): Promise<void> {
  const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', lines.join('\n')], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => parent.once('exit', () => resolve()));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: parent.stdout! }).once('line', resolve);
      void exited.then(() => reject(new Error('the parent script exited before it printed its line')));
    });
    await body(JSON.parse(line) as T, {
      pid: parent.pid!,
      kill: async () => {
        parent.kill('SIGKILL');
        await exited;
      },
    });
  } finally {
    parent.kill('SIGKILL');
  }
}
