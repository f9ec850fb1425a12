// Where the fake illumos (test/fake-illumos/) is built and the one make that builds it, for the
// tests' global setup, soak:kill and bench:native alike, so each builds the variant it then
// loads. Kept apart from fake-illumos.ts, which loads the agent's modules and vitest.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** SLED_AGENT_ASAN=1 selects the sanitizer build (npm run test:asan). */
export const SANITIZED = process.env.SLED_AGENT_ASAN === '1';

/** The build's root (lib/ and bin/ under it): make SANITIZE=1 writes to its own directory. */
export function fakeIllumosRoot(sanitize = SANITIZED): string {
  return join(repo, 'build', sanitize ? 'fake-illumos-asan' : 'fake-illumos');
}

/** Builds the fake libraries and programs; make leaves a current build alone. */
export function buildFakeIllumos(sanitize = SANITIZED): void {
  const args = ['-s', '-C', join(repo, 'test', 'fake-illumos'), ...(sanitize ? ['SANITIZE=1'] : [])];
  try {
    execFileSync('make', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`building the fake illumos (make ${args.join(' ')}) failed: ${(err as Error).message}`);
  }
}
