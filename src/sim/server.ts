// Starting and stopping a simulated sled agent: its HTTP server, its storage with the Crucible
// agents, and its conversation with Nexus. Registration runs in the background and is retried
// until Nexus accepts it, so the agent serves requests while Nexus is still down.
import type { Logger } from 'pino';
import { formatSocketAddr, parseSocketAddr } from '../common/address.js';
import { NexusNotifier } from '../common/nexus-notifier.js';
import { Shutdown } from '../common/shutdown.js';
import { NexusClient, retryingRefusals } from '../nexus-client.js';
import { registerOpenApi, SLED_AGENT_API_INFO } from '../openapi.js';
import { VolumeConstructionRequestSchema } from '../params.js';
import { createServer, type App } from '../server.js';
import { Metrics } from '../metrics.js';
import { VERSION } from '../version.js';
import type { SimConfig } from './config.js';
import { simRoutes } from './http-entrypoints.js';
import { SimSledAgent } from './sled-agent.js';
import { SimStorage } from './storage.js';

export interface SimParts {
  agent: SimSledAgent;
  app: App;
  nexus: NexusClient;
  notifier: NexusNotifier;
  storage: SimStorage;
  metrics: Metrics;
}

/** Wires a simulated sled agent and its HTTP app without binding anything. */
export async function buildSim(config: SimConfig, log: Logger): Promise<SimParts> {
  const metrics = new Metrics({ sled_id: config.id, agent: 'simulated', version: VERSION, host_backend: 'none' });
  const nexus = new NexusClient(config.nexus_address, { timeoutMs: config.nexus.timeout_ms });
  const notifier = new NexusNotifier(log.child({ component: 'nexus-notifier' }), {
    initialMs: config.nexus.backoff_initial_ms,
    maxMs: config.nexus.backoff_max_ms,
    factor: 2,
  }, metrics.notifier);
  const storage = new SimStorage(config.id, config.storage.ip, log);
  const agent = new SimSledAgent({
    id: config.id,
    mode: config.sim_mode,
    autoDelayMs: config.sim.auto_delay_ms,
    artifactDir: config.updates.artifact_dir,
    log,
    nexus,
    notifier,
    storage,
    nexusAddress: config.nexus_address,
  });
  metrics.nexusQueue(() => notifier.backlog);
  metrics.instances(function* () {
    for (const [id, instance] of agent.instances.entries()) yield { id, state: instance.current.run_state };
  });
  const app = createServer({
    logger: log,
    bodyLimit: config.dropshot.request_body_max_bytes,
    sharedSchemas: [VolumeConstructionRequestSchema],
  });
  await registerOpenApi(app, SLED_AGENT_API_INFO);
  metrics.observeHttp(app);
  simRoutes(app, agent, metrics);
  return { agent, app, nexus, notifier, storage, metrics };
}

export interface RunningSim extends SimParts {
  /** The bound address, "ip:port" / "[ip6]:port", with the real port. */
  address: string;
  /** Settles when the sled, its zpools and datasets are all registered with Nexus. */
  registered: Promise<void>;
  close(): Promise<void>;
}

export async function startSim(config: SimConfig, log: Logger): Promise<RunningSim> {
  const parts = await buildSim(config, log);
  const { app, agent, nexus, notifier, storage } = parts;
  const bind = parseSocketAddr(config.dropshot.bind_address);
  try {
    await storage.start(config.storage.zpools);
    await app.listen({ host: bind.host, port: bind.port });
  } catch (err) {
    // A failed start leaves nothing behind: no Crucible agent keeps answering for a dead sled.
    agent.close();
    await Promise.allSettled([storage.close(), app.close(), nexus.close()]);
    throw err;
  }
  const { port } = app.server.address() as { port: number };
  const address = formatSocketAddr({ host: bind.host, port });
  agent.address = address;
  log.info({ address, sled_id: config.id, sim_mode: config.sim_mode, nexus: nexus.origin }, 'simulated sled agent listening');

  const registered = (async () => {
    // Retried until delivered, a 4xx included, or until close() drains the notifier.
    const outcome = await notifier.push('sled', 'sled agent registration',
      retryingRefusals(() => nexus.sledAgentPost(config.id, { sa_address: address })));
    if (outcome !== 'delivered') return; // cancelled: shut down before Nexus took it
    log.info({ nexus: nexus.origin }, 'registered with Nexus');
    agent.registered = true;
    await storage.report(nexus, notifier);
  })();

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      // Requests first: one still being served could schedule a simulated step after the
      // timers were stopped.
      const shutdown = new Shutdown(log);
      await shutdown.closeApp('stop serving', 2_000, app);
      agent.close();
      const undelivered = await notifier.drain(2_000);
      if (undelivered > 0) log.warn({ undelivered }, 'shutting down with updates Nexus has not received');
      await shutdown.step('stop the Crucible agents', 2_000, () => storage.close());
      await shutdown.step('close the Nexus client', 1_000, () => nexus.close());
      log.info('simulated sled agent stopped');
      shutdown.finish();
    })();
    return closing;
  };
  return { ...parts, address, registered, close };
}
