// Processes a test did not fork itself (no exit event reaches it): the simulated host's process
// that an agent forked with `[host] simulation = "process"`.

/** The simulated host process's pid, from the agent's log line; null if the agent logged none. */
export function simHostPid(agentStderr: string): number | null {
  const m = /"sim_host_pid":(\d+)[^\n]*"msg":"simulated host: in its own process"/.exec(agentStderr);
  return m === null ? null : Number(m[1]);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves once `pid` is gone. It goes when its channel to the agent that forked it closes; the
 * bound is for a failing test, not a timing assumption.
 */
export async function gone(pid: number, boundMs = 10_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} outlived the agent that forked it`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
