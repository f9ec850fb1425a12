// Following a (simulated) Propolis's state monitor in a test, as the agent's monitor loop does.
import type { PropolisInstanceState } from '../../src/common/instance.js';
import type { PropolisClient } from '../../src/propolis-client.js';

/** Long-polls from `gen` until `until` is seen; returns that answer. */
export async function monitorUntil(client: PropolisClient, until: PropolisInstanceState, gen = 0): Promise<{ gen: number; state: PropolisInstanceState }> {
  for (;;) {
    const r = await client.stateMonitor(gen);
    if (r.state === until) return r;
    gen = r.gen + 1;
  }
}
