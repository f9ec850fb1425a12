// The randomized kill run (test/support/kill-run.ts) on both backends, at a size fit for CI.
// A larger run: `npm run soak:kill -- --instances 40 --kills 5 --runs 15` (scripts/soak-kill.ts).
// KILL_SEED replays a failed run's plan (timing varies).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { killRun, type Backend } from './support/kill-run.js';

const seed = Number(process.env.KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe.each(['sim', 'illumos'] as Backend[])('the agent SIGKILLed at random moments, on the %s host', (backend) => {
  it(`brings every instance to its last requested state and leaks nothing (KILL_SEED=${seed})`, async () => {
    const dir = mkdtempSync(join(tmpdir(), `sled-agent-kill-${backend}-`));
    try {
      const result = await killRun({ backend, seed, instances: 10, kills: 5, dir });
      expect(result.problems, `KILL_SEED=${seed}; rounds: ${result.rounds.join(' | ')}`).toEqual([]);
      expect(result.rounds).toHaveLength(5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
