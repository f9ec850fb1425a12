// The randomized kill run of test/agent-kill.test.ts at a larger size, several times, on either
// backend: `npm run soak:kill -- [--backend sim|illumos] [--instances 40] [--kills 5] [--runs 15]
// [--pool 2] [--seed N] [--simulation in-process|process]`. --pool is the agent's [zones] warm_pool (0: no pool and no
// template); --simulation the sim backend's [host] simulation (the simulated host in its own process, killed with the agent's group). Each run prints its seed, what each kill interrupted and any problem; a failed
// run is replayed (as closely as timing allows) with its seed and --runs 1. With --backend
// illumos the fake illumos is built first (make, as `npm test` and bench:native do: nothing to do
// once built; the sanitizer build under SLED_AGENT_ASAN=1, as the tests).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildFakeIllumos } from '../test/support/fake-illumos-build.js';
import { killRun, type Backend } from '../test/support/kill-run.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'sim' },
    instances: { type: 'string', default: '40' },
    kills: { type: 'string', default: '5' },
    runs: { type: 'string', default: '15' },
    pool: { type: 'string', default: '2' },
    simulation: { type: 'string', default: 'in-process' },
    seed: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});
const backend = values.backend as Backend;
if (backend !== 'sim' && backend !== 'illumos') throw new Error(`--backend must be sim or illumos, not ${values.backend}`);
const simulation = values.simulation;
if (simulation !== 'in-process' && simulation !== 'process') throw new Error(`--simulation must be in-process or process, not ${values.simulation}`);
const pool = Number(values.pool);
if (!Number.isInteger(pool) || pool < 0) throw new Error(`--pool must be an integer >= 0, not ${values.pool}`);
const runs = Number(values.runs);
// Without it the first agent dies at start-up on a missing fake library, with a stack trace.
if (backend === 'illumos') buildFakeIllumos();
let failed = 0;
for (let run = 0; run < runs; run += 1) {
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed) + run;
  const dir = mkdtempSync(join(tmpdir(), `sled-agent-soak-${backend}-`));
  const started = Date.now();
  try {
    const result = await killRun({
      backend, seed, dir, instances: Number(values.instances), kills: Number(values.kills), pool, simulation,
      log: values.quiet ? undefined : (line) => console.log(`  ${line}`),
    });
    const tally: Record<string, number> = {};
    for (const target of Object.values(result.final)) tally[target] = (tally[target] ?? 0) + 1;
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (result.problems.length > 0) failed += 1;
    console.log(`run ${run + 1}/${runs} seed ${seed} ${backend}: ${result.problems.length === 0 ? 'ok' : `${result.problems.length} problem(s)`} in ${secs} s; final targets ${JSON.stringify(tally)}`);
    for (const p of result.problems) console.log(`  PROBLEM ${p}`);
    if (result.problems.length > 0) console.log(`  kept for reading: ${dir} (agent-<n>.log is each agent process's log, in order)`);
    else rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
console.log(`${runs - failed} of ${runs} runs ended right`);
process.exit(failed === 0 ? 0 : 1);
