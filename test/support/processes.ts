// Processes a test did not fork itself (no exit event reaches it): the simulated host's process
// that an agent forked with `[host] simulation = "process"`, a sim host's Propolis farm.
import { existsSync, readFileSync } from 'node:fs';

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
