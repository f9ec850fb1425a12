// Builds the fake illumos libraries and programs once before the tests (make; a few seconds the
// first time, nothing after).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fake-illumos');
  const args = ['-s', '-C', dir, ...(process.env.SLED_AGENT_ASAN === '1' ? ['SANITIZE=1'] : [])];
  try {
    execFileSync('make', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`building the fake illumos (make ${args.join(' ')}) failed: ${(err as Error).message}`);
  }
}
