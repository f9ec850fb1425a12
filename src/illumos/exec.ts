// Running a system program (zoneadm, zlogin, ipadm, opteadm) with an argument array, never a
// shell: its output, or why it failed, in one shape each caller turns into its own error.
import { spawn } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** Why a run failed: the program's exit status, a signal (a timeout kills it), or no start at all. */
export interface CommandFailure extends CommandResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The spawn error's code (ENOENT, EACCES, ...) when the program never ran; else null. */
  spawnCode: string | null;
  message: string;
}

export interface CommandOptions {
  timeoutMs: number;
  stdin?: string;
  /**
   * What the deadline sends first (default SIGTERM). zlogin passes only SIGINT on to the command
   * it runs in the zone; SIGTERM would end zlogin and leave that command running.
   */
  interrupt?: NodeJS.Signals;
  /** How long after that the program's process group is killed outright (default 5 s). */
  killGraceMs?: number;
}

/** The most of each of stdout and stderr kept; a program that writes more is killed. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
const KILL_GRACE_MS = 5_000;
/** After SIGKILL, how long the pipes may stay open (a descendant that left the group) before the run fails anyway. */
const CLOSE_AFTER_KILL_MS = 1_000;

/**
 * Runs `program` in a process group of its own, so that its deadline reaches what it started as
 * well (zoneadm's brand hooks): at the deadline the group gets `interrupt`, then SIGKILL if it is
 * still there after the grace, and the run fails then whether or not every pipe has closed. A
 * program given no input reads end-of-file, not a pipe nobody writes (zlogin forwards its stdin
 * into the zone).
 */
export function runCommand(program: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args], {
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
      windowsHide: true,
    });
    const out = { stdout: collector(), stderr: collector() };
    let timedOut = false;
    let overflow = false;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const signalGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // The group is gone already.
      }
    };
    const kill = (): void => {
      signalGroup('SIGKILL');
      timers.push(setTimeout(() => finish(null, 'SIGKILL'), CLOSE_AFTER_KILL_MS));
    };
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: NodeJS.ErrnoException): void => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const stdout = out.stdout.text();
      const stderr = out.stderr.text();
      if (spawnError === undefined && !timedOut && !overflow && code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const command = [program, ...args].join(' ');
      const why = spawnError !== undefined ? spawnError.message
        : overflow ? `wrote more than ${MAX_OUTPUT_BYTES} bytes of output`
          : timedOut ? `timed out after ${options.timeoutMs} ms`
            : code !== null ? `exited with status ${code}` : `killed by ${signal}`;
      const failure: CommandFailure = {
        stdout, stderr,
        exitCode: spawnError === undefined ? code : null,
        signal,
        timedOut,
        spawnCode: spawnError === undefined ? null : String(spawnError.code ?? 'ECOMMAND'),
        message: `Command failed: ${command}: ${why}${stderr.trim() === '' ? '' : `\n${stderr.trim()}`}`,
      };
      reject(failure);
    };
    for (const name of ['stdout', 'stderr'] as const) {
      child[name]?.on('data', (chunk: Buffer) => {
        if (out[name].add(chunk)) return;
        if (overflow) return;
        overflow = true;
        kill();
      });
    }
    // Only a program that never started ends here; anything later ends with 'close'.
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) finish(null, null, err);
    });
    child.on('close', (code, signal) => finish(code, signal));
    timers.push(setTimeout(() => {
      timedOut = true;
      signalGroup(options.interrupt ?? 'SIGTERM');
      timers.push(setTimeout(kill, options.killGraceMs ?? KILL_GRACE_MS));
    }, options.timeoutMs));
    if (options.stdin !== undefined) {
      // A program may exit without reading its input (EPIPE); its exit status says how it went.
      child.stdin?.on('error', () => {});
      child.stdin?.end(options.stdin);
    }
  });
}

/** Up to MAX_OUTPUT_BYTES of a stream, as UTF-8 once it is done. */
function collector(): { add(chunk: Buffer): boolean; text(): string } {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    add(chunk) {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) return false;
      chunks.push(chunk);
      return true;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}

/** What a person should read of a failure: the program's own stderr, else what happened to it. */
export function failureDetail(f: CommandFailure, timeoutMs: number): string {
  return f.stderr.trim()
    || (f.timedOut ? `timed out after ${timeoutMs} ms` : f.exitCode !== null ? `exited with status ${f.exitCode}` : f.signal ? `killed by ${f.signal}` : f.message);
}
