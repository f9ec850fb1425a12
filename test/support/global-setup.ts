// Before the tests: builds the fake illumos libraries and programs (make; a few seconds the first
// time, nothing after) and dist/ (tsc), which the tests that run the command start from: a child
// started with `node --import tsx` compiles every module it loads, seconds of CPU each on a busy
// machine.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function run(what: string, file: string, args: string[]): void {
  try {
    execFileSync(file, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`${what} failed: ${(err as Error).message}`);
  }
}

export default function setup(): void {
  const make = ['-s', '-C', join(root, 'test', 'fake-illumos'), ...(process.env.SLED_AGENT_ASAN === '1' ? ['SANITIZE=1'] : [])];
  run(`building the fake illumos (make ${make.join(' ')})`, 'make', make);
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // --noCheck: emit only. Type errors are `tsc --noEmit`'s to report (npm test runs it first);
  // here one would stop every test, as a tsx child never did.
  run('building dist/ (tsc -p tsconfig.build.json --noCheck)', process.execPath, [tsc, '-p', 'tsconfig.build.json', '--noCheck']);
}
