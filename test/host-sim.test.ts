// SimHost (src/sim/host.ts) through the shared Host suite: a fresh state directory per test,
// no modelled latency.
import { SimHost } from '../src/sim/host.js';
import { hostSuite, simHostFixture } from './support/host-suite.js';

hostSuite('sim', simHostFixture('host-sim-', (stateDir, links) => SimHost.open({ stateDir, links })));
