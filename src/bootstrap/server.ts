// Starting and stopping a bootstrap agent: its own HTTP server on its own address, then the
// sled agent a persisted request asks for.
import type { Logger } from 'pino';
import { formatSocketAddr, parseSocketAddr } from '../common/address.js';
import { lockDirectory } from '../common/dir-lock.js';
import { Shutdown } from '../common/shutdown.js';
import { BOOTSTRAP_API_INFO, registerOpenApi } from '../openapi.js';
import { createServer, type App } from '../server.js';
import { BootstrapAgent } from './agent.js';
import type { BootstrapConfig } from './config.js';
import { bootstrapRoutes } from './http-entrypoints.js';

export async function buildBootstrap(config: BootstrapConfig, log: Logger): Promise<{ agent: BootstrapAgent; app: App }> {
  const agent = new BootstrapAgent(config, log);
  const app = createServer({ logger: log.child({ component: 'bootstrap' }) });
  await registerOpenApi(app, BOOTSTRAP_API_INFO);
  bootstrapRoutes(app, agent);
  return { agent, app };
}

export interface RunningBootstrap {
  agent: BootstrapAgent;
  app: App;
  address: string;
  close(): Promise<void>;
}

export async function startBootstrap(config: BootstrapConfig, log: Logger): Promise<RunningBootstrap> {
  // Before anything reads the directory: the persisted start_sled request starts a sled agent.
  const lock = lockDirectory(config.data_dir, 'bootstrap agent', 'data directory');
  const { agent, app } = await buildBootstrap(config, log).catch((err: unknown) => {
    lock.release();
    throw err;
  });
  const bind = parseSocketAddr(config.bind_address);
  try {
    await agent.init();
    await app.listen({ host: bind.host, port: bind.port });
  } catch (err) {
    await Promise.allSettled([app.close(), agent.close()]);
    lock.release();
    throw err;
  }
  const { port } = app.server.address() as { port: number };
  const address = formatSocketAddr({ host: bind.host, port });
  log.info({ address, id: config.id }, 'bootstrap agent listening');
  let closing: Promise<void> | null = null;
  return {
    agent,
    app,
    address,
    close: () => {
      closing ??= (async () => {
        const shutdown = new Shutdown(log);
        await shutdown.closeApp('stop serving', 2_000, app);
        // The sled agent's own steps are bounded; this covers a start_sled still under way.
        await shutdown.step('stop the sled agent', 20_000, () => agent.close());
        lock.release();
        log.info('bootstrap agent stopped');
        shutdown.finish();
      })();
      return closing;
    },
  };
}
