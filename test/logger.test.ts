// The agent's log destination when stderr is a pipe: losing the reader, or a reader that stops
// reading, never keeps the process from working or from exiting. Each case runs in a child
// (dist/logger.js, built by the global setup) whose stderr is a pipe this test controls.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';

const children: ChildProcess[] = [];
afterEach(() => {
  // A child that hangs (the failure under test) must not outlive the test.
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * A child that makes the agent's logger, prints "ready", and on each line from stdin runs it as
 * the body of an async function with `log` in scope, printing "done" after.
 */
function loggingChild(stderr: 'pipe' | number = 'pipe') {
  const script = `
    import { createLogger } from './dist/logger.js';
    import { createInterface } from 'node:readline';
    const log = createLogger('info');
    createInterface({ input: process.stdin }).on('line', async (code) => {
      await new Function('log', 'return (async () => {' + code + '})()')(log);
      process.stdout.write('done\\n');
    });
    process.stdout.write('ready\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', stderr] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => (await lines.next()).value as string;
  return {
    child,
    next,
    run(code: string) {
      child.stdin!.write(`${code}\n`);
    },
  };
}

describe('log destination on a pipe', () => {
  it('exits when the reader went away with a line still buffered (EPIPE at the exit flush)', async () => {
    const { child, next, run } = loggingChild();
    expect(await next()).toBe('ready');
    child.stderr!.destroy();
    // The first line's write is still on its way when the process exits; the second is buffered,
    // so the exit flush is the first to find the pipe broken.
    run(`log.info('a line whose write is under way'); log.info('a line still buffered'); process.exit(7);`);
    const [code] = await once(child, 'exit');
    expect(code).toBe(7);
  });

  it('keeps working after the reader went away, and exits when asked', async () => {
    const { child, next, run } = loggingChild();
    expect(await next()).toBe('ready');
    child.stderr!.destroy();
    for (let i = 0; i < 3; i++) {
      run(`for (let i = 0; i < 100; i++) log.info({ i }, 'to nobody'); await new Promise((r) => setTimeout(r, 10));`);
      expect(await next()).toBe('done');
    }
    run('process.exit(0);');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });

  it('exits, dropping what is left, when the reader stops reading and the pipe is full', async () => {
    const { child, next, run } = loggingChild();
    expect(await next()).toBe('ready');
    // Nobody reads stderr: more than a pipe holds fills it, and writes find it full (EAGAIN).
    run(`for (let i = 0; i < 64; i++) log.info({ filler: 'x'.repeat(16384) }, 'filling the pipe'); await new Promise((r) => setTimeout(r, 50));`);
    expect(await next()).toBe('done');
    run('process.exit(3);');
    const [code] = await once(child, 'exit');
    expect(code).toBe(3);
    child.stderr!.destroy();
  });

  it.runIf(existsSync('/dev/full'))('goes on logging after a write fails otherwise (a full disk: /dev/full)', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const { child, next, run } = loggingChild(full);
      expect(await next()).toBe('ready');
      for (let i = 0; i < 3; i++) {
        run(`log.info({ n: ${i} }, 'no space'); await new Promise((r) => setTimeout(r, 10));`);
        expect(await next()).toBe('done');
      }
      run('process.exit(0);');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
    } finally {
      closeSync(full);
    }
  });
});
