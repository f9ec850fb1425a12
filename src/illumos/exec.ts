// Running a system program (zoneadm, zlogin, ipadm, opteadm) with an argument array, never a
// shell: its output, or why it failed, in one shape each caller turns into its own error.
import { execFile, type ExecFileException } from 'node:child_process';

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

export function runCommand(program: string, args: readonly string[], options: { timeoutMs: number; stdin?: string }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      [...args],
      { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, timeout: options.timeoutMs, windowsHide: true },
      (err: ExecFileException | null, stdout: string, stderr: string) => {
        if (err === null) {
          resolve({ stdout, stderr });
          return;
        }
        const exitCode = typeof err.code === 'number' ? err.code : null;
        const failure: CommandFailure = {
          stdout, stderr, exitCode,
          signal: err.signal ?? null,
          timedOut: err.killed === true && err.signal != null,
          spawnCode: exitCode === null && !err.signal ? String(err.code ?? 'ECOMMAND') : null,
          message: err.message,
        };
        reject(failure);
      },
    );
    if (options.stdin !== undefined) {
      // A program may exit without reading its input (EPIPE); its exit status says how it went.
      child.stdin?.on('error', () => {});
      child.stdin?.end(options.stdin);
    }
  });
}

/** What a person should read of a failure: the program's own stderr, else what happened to it. */
export function failureDetail(f: CommandFailure, timeoutMs: number): string {
  return f.stderr.trim()
    || (f.timedOut ? `timed out after ${timeoutMs} ms` : f.exitCode !== null ? `exited with status ${f.exitCode}` : f.signal ? `killed by ${f.signal}` : f.message);
}
