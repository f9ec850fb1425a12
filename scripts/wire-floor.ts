// What both floors (bench:boot's HTTP floor, bench:scale's CPU floor in scripts/scale-floor.ts)
// do on the wire after PUT /instance/state Run, as the agent's monitor and notifier do it: so the
// two measure the same exchanges.
import type { InstanceRuntimeState } from '../src/params.js';
import type { PropolisClient } from '../src/propolis-client.js';

/**
 * Long polls the state monitor from gen 0 until Running. Each state seen but Creating becomes the
 * next generation of `answered` (the PUT's answer) and goes to `report`, in order and without
 * holding up the monitor (the agent's notifier lane; a `report` that rejects ends the lane). Then
 * the next long poll goes out and stays pending until `signal` aborts, as the agent's does.
 * Resolves once the `running` report has been made.
 */
export async function monitorAndReport(
  propolis: PropolisClient,
  answered: InstanceRuntimeState,
  report: (state: InstanceRuntimeState) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  let current = answered;
  let lane: Promise<void> = Promise.resolve();
  for (let gen = 0; ;) {
    const observed = await propolis.stateMonitor(gen, signal);
    gen = observed.gen + 1;
    if (observed.state === 'Creating') continue;
    if (observed.state !== 'Starting' && observed.state !== 'Running') throw new Error(`Propolis reported ${observed.state}`);
    const state: InstanceRuntimeState = {
      ...current, run_state: observed.state === 'Starting' ? 'starting' : 'running', gen: current.gen + 1, time_updated: new Date().toISOString(),
    };
    current = state;
    lane = lane.then(() => report(state));
    if (observed.state === 'Running') {
      propolis.stateMonitor(gen, signal).catch(() => {});
      return lane;
    }
  }
}
