// How the agent's process sets V8, in one place: the sled-agent command calls it first, and so do
// the benchmarks that run an agent (or its floor) inside their own process, so that they measure
// what ships.
import { setFlagsFromString } from 'node:v8';

/**
 * V8 optimizes a function once it has run enough bytecode, and asks a large function for only a
 * little more than a small one (3 + size/150 profiler ticks). An agent's large functions are the
 * per-request async ones (#provisionAndRun, #monitorLoop: each runs once or a few times per
 * instance), and a burst of starts made V8 compile them, ~45 ms a compile, before their
 * optimized code could pay that back. With size/30 they are optimized later; small hot functions
 * almost as before. bench:scale, realistic N = 1,000, alternating runs: a fresh agent 2.14
 * against 2.47 ms of CPU per instance, the next 1,000 on it 1.64 against 1.73
 * (docs/benchmarks.md). Takes effect from the next tiering decision, so call it before any work.
 */
export function tuneV8(): void {
  setFlagsFromString('--bytecode-size-allowance-per-tick=30');
}
