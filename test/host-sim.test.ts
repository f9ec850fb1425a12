// SimHost (src/sim/host.ts) through the shared Host suite: a fresh state directory per test,
// no modelled latency.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SIM_POOLS, SimHost } from '../src/sim/host.js';
import { hostSuite } from './support/host-suite.js';

hostSuite('sim', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'host-sim-'));
  const host = await SimHost.open({ stateDir, links: ['stub0', 'net0'] });
  return {
    host,
    link: 'stub0',
    pool: DEFAULT_SIM_POOLS[1]!.name,
    async cleanup(): Promise<void> {
      try {
        await host.close();
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
});
