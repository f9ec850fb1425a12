// `sled-agent run <config>` on the fake illumos, as a process a test can SIGKILL: the CLI's own
// start-up (config file, startAgent, "listening on" on stdout, graceful stop on SIGTERM) with an
// IllumosHost over the fake illumos whose Propolis servers are the test's PropolisFarm (the fake
// svcadm starts none). FAKE_ILLUMOS_STATE and the fakes' delays come from the environment.
import { basename, join } from 'node:path';
import { loadAgentConfigFile } from '../../src/config.js';
import { loadNative } from '../../src/illumos/addon.js';
import { IllumosHost } from '../../src/illumos/host.js';
import { createLogger, effectiveLevel } from '../../src/logger.js';
import { startAgent } from '../../src/sled-agent.js';
import { FAKE_BIN_DIR, FAKE_LIB_DIR } from './fake-illumos.js';
import { propolisAddressFor } from './propolis-farm.js';

const [configPath, imageDir] = process.argv.slice(2);
if (!configPath || !imageDir) {
  process.stderr.write('usage: illumos-agent-main.ts <config.toml> <image dir>\n');
  process.exit(2);
}
const config = loadAgentConfigFile(configPath);
const log = createLogger(effectiveLevel(config.log.level));
const addon = loadNative();
addon.load(FAKE_LIB_DIR);
const host = await IllumosHost.open({
  addon,
  zoneadm: join(FAKE_BIN_DIR, 'zoneadm'),
  zlogin: join(FAKE_BIN_DIR, 'zlogin'),
  sbin: FAKE_BIN_DIR,
  resolveImage: (image) => join(imageDir, basename(image)),
  reachable: (zone) => propolisAddressFor(zone),
  opteadm: join(FAKE_BIN_DIR, 'opteadm'),
  // The fake's xde driver is there when its state has an xde.conf.
  xdeConf: join(process.env.FAKE_ILLUMOS_STATE ?? '/nonexistent', 'xde.conf'),
  log: log.child({ component: 'illumos-host' }),
});
const agent = await startAgent(config, host, log);
process.once('SIGTERM', () => {
  void agent.close().then(() => process.exit(0), () => process.exit(1));
});
process.stdout.write(`listening on http://${agent.address}\n`);
