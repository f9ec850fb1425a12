// The real sled agent (omicron sled_agent.rs + server.rs): wires the managers to a Host, and at
// start-up (reference §8 step 3, fixed) adopts what the host still has instead of deleting it:
// zones and VNICs that the ledgers claim are kept and picked up, only true orphans are removed,
// and one summary line says which was which.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { formatSocketAddr, parseSocketAddr } from './common/address.js';
import { NexusNotifier } from './common/nexus-notifier.js';
import { Shutdown } from './common/shutdown.js';
import type { AgentConfig } from './config.js';
import { DiskManager } from './disk-manager.js';
import { ADDROBJ_SLED6 } from './host/commands.js';
import { GLOBAL_ZONE, type Host } from './host/index.js';
import { agentRoutes } from './http-entrypoints.js';
import { netTraceRoutes } from './net-trace.js';
import { isOwnedVnicName } from './host/names.js';
import { InstanceManager } from './instance-manager.js';
import type { WarmPool } from './warm-pool.js';
import { PortManager, portOfVnic } from './port-manager.js';
import type { Phase } from './zone.js';
import { NexusClient, retryingRefusals } from './nexus-client.js';
import { registerOpenApi, SLED_AGENT_API_INFO } from './openapi.js';
import { VolumeConstructionRequestSchema, type UpdateArtifact } from './params.js';
import { createServer, REQUEST_BODY_MAX_BYTES, type App } from './server.js';
import { serviceUnavailable } from './common/errors.js';
import { ServiceManager } from './services.js';
import { datasetZone, StorageManager } from './storage-manager.js';
import type { ZoneServes } from './operator-params.js';
import { downloadArtifact } from './updates.js';
import { ensureAddress, removeZone, TEMPLATE_ZONE, VnicNames, ZONE_PREFIX, zoneName } from './zone.js';
import { bundleDir, ZoneBundles } from './zone-bundle.js';
import { zoneBundleRoutes } from './zone-bundle-routes.js';
import { HostHealth, healthRoute, type HealthOptions } from './health.js';
import { hostChoiceReason } from './host/open.js';
import { inventoryRoutes } from './inventory.js';
import { observeLedgerCommits } from './ledger.js';
import { instrumentHost, Metrics, metricsRoute } from './metrics.js';
import { VERSION } from './version.js';

export interface StartupSummary {
  adopted: string[];
  removedZones: string[];
  removedVnics: string[];
  /** Claimed by a ledger but not on the host: made again by their manager. */
  missing: string[];
  /** OPTE ports an instance claims, kept; and orphans, removed (their VNICs first). */
  adoptedPorts: string[];
  removedPorts: string[];
}

export interface SledAgentOptions {
  /** Called as each instance provisioning phase starts (the boot benchmark). */
  onPhase?: (instance: string, phase: Phase | 'running') => void;
  /** GET /health's deadline for the host and how long an answer is reused (tests shorten them). */
  health?: HealthOptions;
}

export class SledAgent {
  private constructor(
    readonly config: AgentConfig,
    readonly host: Host,
    readonly log: Logger,
    readonly nexus: NexusClient,
    readonly notifier: NexusNotifier,
    readonly instances: InstanceManager,
    readonly disks: DiskManager,
    readonly services: ServiceManager,
    readonly storage: StorageManager,
    readonly ports: PortManager,
    readonly metrics: Metrics,
    readonly health: HostHealth,
    /** Why this host backend (src/host/open.ts), for GET /inventory. */
    readonly hostReason: string,
    private readonly stopObservingLedgers: () => void,
  ) {}

  /** The warm pool of Propolis zones (the instance manager's). */
  get pool(): WarmPool {
    return this.instances.pool;
  }

  /** What the last start-up found (set by startAgent). */
  startup: (StartupSummary & { at: string }) | null = null;
  /** Where the API listens (set by startAgent). */
  address: string | null = null;
  /** Nexus accepted this sled's registration. */
  registered = false;

  /** Opens the ledgers and managers; touches nothing on the host yet. */
  static async open(config: AgentConfig, givenHost: Host, log: Logger, options: SledAgentOptions = {}): Promise<SledAgent> {
    const hostReason = hostChoiceReason(givenHost) ?? `a ${givenHost.kind} host given to the agent directly (not chosen by [host] backend)`;
    const metrics = new Metrics({ sled_id: config.id, agent: 'sled-agent', version: VERSION, host_backend: givenHost.kind });
    // Every manager's host calls are timed, without any of them knowing.
    const host = instrumentHost(givenHost, metrics);
    const nexus = new NexusClient(config.nexus_address, { timeoutMs: config.nexus.timeout_ms });
    const notifier = new NexusNotifier(log.child({ component: 'nexus-notifier' }), {
      initialMs: config.nexus.backoff_initial_ms,
      maxMs: config.nexus.backoff_max_ms,
      factor: 2,
    }, metrics.notifier);
    const stopObservingLedgers = observeLedgerCommits(config.data_dir, (path, seconds) => metrics.ledgerCommit(path, seconds));
    const vnics = new VnicNames();
    const ports = await PortManager.open({
      network: host.network, ledgerPath: join(config.data_dir, 'ports.json'), log,
      ...(config.underlay_address === undefined ? {} : { underlayAddress: config.underlay_address }),
    });
    const wait = { readiness: config.instances.readiness, timeoutMs: config.zones.ready_timeout_ms };
    const zoneRoot = config.zones.root;
    const controlLink = config.zones.control_link;
    const bundles = new ZoneBundles({
      dir: bundleDir(config.data_dir), maxBytes: config.bundles.max_bytes, host, log, zoneDataset: config.zones.dataset,
    });
    const instances = await InstanceManager.open(join(config.data_dir, 'instances.json'), {
      host, log, nexus, notifier, vnics, ports, bundles,
      settings: {
        zoneRoot, controlLink,
        readiness: config.instances.readiness,
        readyTimeoutMs: config.zones.ready_timeout_ms,
        imageId: config.instances.image_id,
        bootromId: config.instances.bootrom_id,
        propolisPort: config.instances.propolis_port,
        steps: config.instances.steps,
        ...(config.underlay_address === undefined ? {} : { underlayAddress: config.underlay_address }),
      },
      onPhase: (id, phase) => {
        metrics.phase(id, phase);
        options.onPhase?.(id, phase);
      },
    }, {
      target: config.zones.warm_pool, template: config.zones.template, zoneRoot, controlLink,
      readiness: config.instances.readiness, readyTimeoutMs: config.zones.ready_timeout_ms, propolisPort: config.instances.propolis_port,
    });
    const disks = await DiskManager.open(join(config.data_dir, 'disks.json'), nexus, notifier, log);
    const underlay = config.underlay_address === undefined ? {} : { underlayAddress: config.underlay_address };
    const services = await ServiceManager.open({
      host, log, ledgerPath: join(config.data_dir, 'services.json'), vnics, zoneRoot, controlLink, wait, ...underlay,
      underlayVnic: config.zones.underlay_vnic, bundles,
    });
    const storage = await StorageManager.open({
      host, log, dataDir: config.data_dir, sledId: config.id, zpools: config.zpools, nexus, notifier, vnics,
      zoneRoot, controlLink, wait, ...underlay,
    });
    metrics.nexusQueue(() => notifier.backlog);
    metrics.instances(() => instances.list().map((i) => ({ id: i.id, state: i.current.run_state })));
    metrics.warmPool(() => {
      const { ready, warming } = instances.pool.counts();
      return { ready, warming };
    });
    const health = new HostHealth(host, log, options.health);
    return new SledAgent(config, host, log, nexus, notifier, instances, disks, services, storage, ports, metrics, health,
      hostReason, stopObservingLedgers);
  }

  /** Reference §8 step 3.2: the dataset the zonepaths live on, `rpool/zone` at `/zone`. */
  async ensureZoneDataset(): Promise<void> {
    const { dataset, root } = this.config.zones;
    const { host } = this;
    if (!(await host.datasets.exists(dataset))) {
      await host.datasets.create(dataset, { zoned: 'on', mountpoint: root });
      this.log.info({ dataset, mountpoint: root }, 'zone dataset created');
      return;
    }
    const { mountpoint } = await host.datasets.get(dataset, ['mountpoint']);
    if (mountpoint !== root) {
      throw new Error(`dataset ${dataset} exists with mountpoint ${mountpoint ?? '(none)'}, not ${root}; `
        + `set it (zfs set mountpoint=${root} ${dataset}) or point zones.dataset/zones.root elsewhere`);
    }
  }

  /**
   * Reference §8 steps 3.1 and 3.3: the global zone's VNIC on the etherstub (underlay0), and on
   * it the sled's underlay address as `<vnic>/sled6`, the gateway of zones that name no other.
   */
  async ensureUnderlay(): Promise<void> {
    const { host, log } = this;
    const { underlay_vnic: vnic, control_link: link } = this.config.zones;
    if (!(await host.links.linkExists(vnic))) {
      await host.links.createVnic({ name: vnic, link });
      log.info({ vnic, link }, 'underlay VNIC created');
    }
    const address = this.config.underlay_address;
    if (address !== undefined) {
      await ensureAddress(host, GLOBAL_ZONE, vnic, `${address}/64`, { name: ADDROBJ_SLED6 });
      log.info({ addrobj: `${vnic}/${ADDROBJ_SLED6}`, address }, 'sled underlay address in the global zone');
    }
  }

  /**
   * The xde driver's underlay links ([opte] underlay_links), once per start; without OPTE on
   * this host, instances without guest NICs still start and the log says why others cannot.
   */
  async ensureOpte(): Promise<void> {
    const status = await this.ports.available();
    if (!status.available) {
      this.log.warn({ reason: status.reason }, `OPTE is missing: instances with guest NICs cannot start here (${status.reason})`);
      return;
    }
    const links = this.config.opte.underlay_links as [string, string];
    await this.host.network.setUnderlay(links);
    this.log.info({ underlay_links: links }, 'OPTE ready: xde underlay set');
  }

  /**
   * Start-up discovery: every `oxz_` zone and `ox`/`vopte` VNIC on the host is either claimed
   * by a ledger (kept, and picked up by its manager's resume) or an orphan (removed).
   */
  async reconcile(): Promise<StartupSummary> {
    const { host, log } = this;
    const claimed = new Map<string, string[]>([
      ...this.instances.claimedZones(),
      ...this.services.claimedZones(),
      ...this.storage.claimedZones(),
    ]);
    const claimedVnics = new Set([...claimed.values()].flat().concat(this.instances.claimedVnics()));
    const zones = (await host.zones.list()).filter((z) => z.name.startsWith(ZONE_PREFIX));
    const summary: StartupSummary = { adopted: [], removedZones: [], removedVnics: [], missing: [], adoptedPorts: [], removedPorts: [] };
    for (const zone of zones) {
      if (claimed.has(zone.name)) {
        summary.adopted.push(zone.name);
        continue;
      }
      // An orphan's own VNICs are whatever its configuration names.
      const nets = await host.zones.config(zone.name).then((c) => c.nets.map((n) => n.physical), () => []);
      // One orphan that will not go must not keep the agent, and every instance on the sled,
      // from starting: it is left, said, and tried again at the next start.
      try {
        await removeZone(host, zone.name, nets.filter((n) => isOwnedVnicName(n) && !claimedVnics.has(n)), log);
        summary.removedZones.push(zone.name);
      } catch (err) {
        log.error({ err, zone: zone.name, state: zone.state }, 'cannot remove an orphan zone; left as it is until the next start');
      }
    }
    const present = new Set(zones.map((z) => z.name));
    summary.missing = [...claimed.keys()].filter((z) => !present.has(z));
    for (const vnic of await host.links.listVnics()) {
      if (!isOwnedVnicName(vnic.name) || claimedVnics.has(vnic.name)) continue;
      try {
        await host.links.deleteVnic(vnic.name);
        summary.removedVnics.push(vnic.name);
      } catch (err) {
        log.error({ err, vnic: vnic.name }, 'cannot remove an orphan VNIC; left as it is until the next start');
      }
    }
    // Guest VNICs are over ports: the orphan VNICs are gone by now, so an orphan port is free.
    const claimedPorts = new Set([...claimedVnics].filter((v) => v.startsWith('vopte')).map(portOfVnic));
    const ports = await this.ports.reconcile(claimedPorts, async (port) => {
      for (const vnic of await host.links.listVnics()) if (vnic.link === port) await host.links.deleteVnic(vnic.name);
    });
    summary.adoptedPorts = ports.adopted;
    summary.removedPorts = ports.removed;
    // New names go above every port on the host, not only those the ledgers name.
    this.instances.reserveNames([...ports.adopted, ...ports.removed].map((p) => `v${p}`));
    // Which zone serves what: a Propolis zone's name is its own id, not its instance's.
    const serves = this.zoneServes();
    log.info({
      adopted_zones: summary.adopted, serving: Object.fromEntries(summary.adopted.map((z) => [z, serves.get(z)])),
      removed_zones: summary.removedZones,
      removed_vnics: summary.removedVnics, zones_to_recreate: summary.missing,
      adopted_ports: summary.adoptedPorts, removed_ports: summary.removedPorts,
    }, `start-up: adopted ${summary.adopted.length} zone(s) and ${summary.adoptedPorts.length} OPTE port(s), removed `
      + `${summary.removedZones.length} orphan zone(s), ${summary.removedVnics.length} orphan VNIC(s) and `
      + `${summary.removedPorts.length} orphan port(s), ${summary.missing.length} claimed zone(s) to re-create`);
    return summary;
  }

  /** Each zone a ledger claims, and what it serves (GET /inventory, the start-up line). */
  zoneServes(): Map<string, ZoneServes> {
    const serves = new Map<string, ZoneServes>();
    for (const zone of this.instances.pool.claimedZones().keys()) {
      serves.set(zone, { kind: 'warm_pool', id: zone === TEMPLATE_ZONE ? 'template' : 'pool' });
    }
    for (const i of this.instances.list()) if (i.zone !== null) serves.set(i.zone, { kind: 'instance', id: i.id });
    for (const s of this.services.list()) serves.set(zoneName(s.name), { kind: 'service', id: s.name });
    for (const d of this.storage.datasets()) serves.set(datasetZone(d), { kind: 'dataset', id: d.id });
    return serves;
  }

  /** Every manager carries on from its ledger (in the background: the API is already up). */
  resume(): void {
    this.instances.resume();
    // The service manager logs its own summary, at warn when a service failed.
    void this.services.resume().catch((err: unknown) => this.log.error({ err }, 'services could not be resumed'));
  }

  async updateArtifact(artifact: UpdateArtifact): Promise<void> {
    await downloadArtifact(artifact, this.nexus, this.config.updates.artifact_dir, this.log);
  }

  /** Stops the managers (the VMs and zones keep running) once their ledger writes are done. */
  async close(): Promise<void> {
    await this.instances.close();
    await this.ports.close();
    this.stopObservingLedgers();
  }
}

export interface RunningAgent {
  agent: SledAgent;
  app: App;
  address: string;
  summary: StartupSummary;
  /** Settles once Nexus accepted this sled's registration (and storage was queued for reporting). */
  registered: Promise<void>;
  close(): Promise<void>;
}

/** The HTTP app over an agent, not listening yet; with no agent, only for its OpenAPI document. */
export async function agentApp(agent: SledAgent | null, log: Logger, bodyLimit = REQUEST_BODY_MAX_BYTES): Promise<App> {
  const app = createServer({ logger: log, bodyLimit, sharedSchemas: [VolumeConstructionRequestSchema] });
  await registerOpenApi(app, SLED_AGENT_API_INFO);
  const agentOf = () => {
    if (agent === null) throw serviceUnavailable('this server only describes the API');
    return agent;
  };
  if (agent !== null) agent.metrics.observeHttp(app);
  agentRoutes(app, agentOf);
  netTraceRoutes(app, agentOf);
  // For operators, outside the contract: GET /instances, /instances/{id}, /inventory, /health, /metrics.
  inventoryRoutes(app, agentOf);
  healthRoute(app, () => {
    const a = agentOf();
    return {
      check: () => a.health.check(),
      body: () => ({
        status: 'ok', sled_id: a.config.id, host_backend: a.host.kind, nexus_registered: a.registered, nexus_queue: a.notifier.backlog,
      }),
    };
  });
  metricsRoute(app, () => agentOf().metrics);
  zoneBundleRoutes(app, agentOf);
  return app;
}

/**
 * Reference §8 step 3 and §8 step 4: zone dataset, discovery and adoption, the API, then
 * registration with Nexus in the background (retried until Nexus answers) and the managers'
 * resumption.
 */
export async function startAgent(config: AgentConfig, host: Host, log: Logger, options: SledAgentOptions = {}): Promise<RunningAgent> {
  const agent = await SledAgent.open(config, host, log, options);
  await agent.ensureZoneDataset();
  await agent.ensureUnderlay();
  await agent.ensureOpte();
  const summary = await agent.reconcile();
  agent.startup = { ...summary, at: new Date().toISOString() };
  const app = await agentApp(agent, log, config.dropshot.request_body_max_bytes);
  const bind = parseSocketAddr(config.dropshot.bind_address);
  try {
    await app.listen({ host: bind.host, port: bind.port });
  } catch (err) {
    await agent.close();
    await Promise.allSettled([app.close(), agent.nexus.close()]);
    throw err;
  }
  const { port } = app.server.address() as { port: number };
  const address = formatSocketAddr({ host: bind.host, port });
  agent.address = address;
  log.info({ address, sled_id: config.id, host: host.kind, nexus: agent.nexus.origin }, 'sled agent listening');

  agent.resume();
  const storageStarted = agent.storage.start().catch((err: unknown) => log.error({ err }, 'storage could not be started'));
  const registered = (async () => {
    // Retried until delivered, a 4xx included, or until close() drains the notifier.
    const outcome = await agent.notifier.push('sled', 'sled agent registration',
      retryingRefusals(() => agent.nexus.sledAgentPost(config.id, { sa_address: address })));
    if (outcome !== 'delivered') return; // cancelled: shut down before Nexus took it
    log.info({ nexus: agent.nexus.origin }, 'registered with Nexus');
    agent.registered = true;
    await storageStarted;
    agent.storage.reportTo();
  })();

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      const shutdown = new Shutdown(log);
      await shutdown.closeApp('stop serving', 2_000, app);
      await shutdown.step('stop the managers', 5_000, () => agent.close());
      const undelivered = await agent.notifier.drain(2_000);
      if (undelivered > 0) log.warn({ undelivered }, 'shutting down with updates Nexus has not received');
      await shutdown.step('close the Nexus client', 1_000, () => agent.nexus.close());
      await shutdown.step('close the host', 5_000, () => host.close());
      log.info('sled agent stopped');
      shutdown.finish();
    })();
    return closing;
  };
  return { agent, app, address, summary, registered, close };
}
