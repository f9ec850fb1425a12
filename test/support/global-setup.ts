// Before the tests: builds the fake illumos libraries and programs (make; a few seconds the first
// time, nothing after) and dist/ (tsc), which the tests that run the command start from: a child
// started with `node --import tsx` compiles every module it loads, seconds of CPU each on a busy
// machine.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFakeIllumos } from './fake-illumos-build.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export default function setup(): void {
  buildFakeIllumos();
  // --noCheck: emit only; type errors are for `tsc --noEmit` (npm test runs it first). An error
  // tsc still reports (syntax) is a warning: tsc emits what it can, and only the tests that load
  // the broken module should fail, as they did when every child ran the sources through tsx.
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--noCheck'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? '';
    process.stderr.write(`warning: building dist/ (tsc -p tsconfig.build.json --noCheck) reported errors; the tests that run dist/ may fail:\n${out}`);
  }
}
