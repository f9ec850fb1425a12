// The one place the agent's host backend is chosen (as node-pty picks its platform once):
// `illumos` when the addon finds the system libraries, else the simulated host, with a log line
// saying which and why. An explicit `backend = "illumos"` that cannot load is an error, not a
// silent fallback.
import type { LevelWithSilent, Logger } from 'pino';
import type { DirectoryLock } from '../common/dir-lock.js';
import type { AgentConfig, LatencyTable } from '../config.js';
import { loadNative } from '../illumos/addon.js';
import { IllumosHost, illumosAvailable } from '../illumos/host.js';
import { REALISTIC_JITTER, REALISTIC_LATENCIES, SimHost, ZERO_LATENCIES, type SimHostOptions, type SimLatencies } from '../sim/host.js';
import { RemoteSimHost } from '../sim/host-process.js';
import type { Host } from './index.js';

/** `[host] state_write = "behind"`: the sim state file is written at most this often. */
const SIM_WRITE_BEHIND_MS = 500;

/** The sim host's latencies and jitter for a config's `host.latency`. */
export function simLatencies(latency: AgentConfig['host']['latency']): { latencies: SimLatencies; jitter: number } {
  if (latency === 'zero') return { latencies: { ...ZERO_LATENCIES }, jitter: 0 };
  if (latency === 'realistic') return { latencies: { ...REALISTIC_LATENCIES }, jitter: REALISTIC_JITTER };
  const table: LatencyTable = latency;
  const pick = (v: number | undefined, base: number) => v ?? base;
  const z = ZERO_LATENCIES;
  return {
    latencies: {
      ...z,
      configure: pick(table.configure, z.configure),
      install: pick(table.install, z.install),
      clone: pick(table.clone, z.clone),
      boot: pick(table.boot, z.boot),
      network: pick(table.network, z.network),
      address: pick(table.address, z.address),
      serviceStart: pick(table.service_start, z.serviceStart),
      propolisStart: pick(table.propolis_start, z.propolisStart),
      vmBoot: pick(table.vm_step, z.vmBoot),
      vmStep: pick(table.vm_step, z.vmStep),
    },
    jitter: table.jitter ?? 0,
  };
}

function simHostOptions(config: AgentConfig): Omit<SimHostOptions, 'logger'> {
  const { latencies, jitter } = simLatencies(config.host.latency);
  const size = BigInt(config.host.pool_size);
  return {
    stateDir: config.host.state_dir,
    links: config.host.links,
    pools: [{ name: 'rpool', size }, ...config.zpools.map((name) => ({ name, size }))],
    latencies,
    jitter,
    propolis: config.host.propolis,
    ...(config.host.state_write === 'behind' ? { durable: false, writeBehindMs: SIM_WRITE_BEHIND_MS } : {}),
  };
}

/** The simulated host in this process (what tests use, for its test hooks). */
export function openSimHost(config: AgentConfig, log: Logger): Promise<SimHost> {
  return SimHost.open({ ...simHostOptions(config), logger: log.child({ component: 'sim-host' }) });
}

export interface OpenHostOptions {
  /**
   * The state directory's lock (lockAgentDirectories): a simulated host in a process of its own
   * holds it too, so it outlives a killed agent only as long as that process does.
   */
  simHostLock?: DirectoryLock;
}

/** The simulated host where `[host] simulation` puts it. */
async function openConfiguredSimHost(config: AgentConfig, log: Logger, options: OpenHostOptions): Promise<Host> {
  if (config.host.simulation === 'in-process') return openSimHost(config, log);
  return RemoteSimHost.start({ ...simHostOptions(config), logLevel: log.level as LevelWithSilent }, log, {
    holdFds: options.simHostLock ? [options.simHostLock.fd] : [],
    // Its zones, links and servers are gone with it: a restart finds them on disk and adopts
    // them, as after an agent crash. Going on would fail every host call from now on.
    onLost: (why) => {
      log.fatal({ why }, 'the simulated host process died; exiting so that a restart adopts the host again');
      process.exit(1);
    },
  });
}

/** Why openHost() chose each host it opened, as it logged it (GET /inventory shows it). */
const reasons = new WeakMap<Host, string>();

/** The reason openHost() logged for `host`; undefined for a host opened another way (tests, benchmarks). */
export function hostChoiceReason(host: Host): string | undefined {
  return reasons.get(host);
}

function chosen<H extends Host>(host: H, reason: string): H {
  reasons.set(host, reason);
  return host;
}

export async function openHost(config: AgentConfig, log: Logger, options: OpenHostOptions = {}): Promise<Host> {
  const { backend } = config.host;
  if (backend === 'sim') {
    log.info({ backend: 'sim', state_dir: config.host.state_dir }, 'host: simulated (host.backend = "sim")');
    return chosen(await openConfiguredSimHost(config, log, options), 'host.backend = "sim"');
  }
  let reason: string;
  try {
    const addon = loadNative();
    addon.load(config.host.lib_dir);
    const availability = illumosAvailable(addon);
    if (availability.available) {
      log.info({ backend: 'illumos', lib_dir: config.host.lib_dir ?? '(system)' }, 'host: illumos (the system libraries loaded)');
      return chosen(await IllumosHost.open({
        addon,
        ...(config.host.zoneadm ? { zoneadm: config.host.zoneadm } : {}),
        ...(config.host.zlogin ? { zlogin: config.host.zlogin } : {}),
        ...(config.host.sbin ? { sbin: config.host.sbin } : {}),
        ...(config.host.opteadm ? { opteadm: config.host.opteadm } : {}),
        ...(config.host.xde_conf ? { xdeConf: config.host.xde_conf } : {}),
        log: log.child({ component: 'illumos-host' }),
      }), `the system libraries loaded (host.backend = "${backend}")`);
    }
    reason = availability.reason ?? 'unavailable';
  } catch (err) {
    reason = `the native addon could not be loaded: ${(err as Error).message}`;
  }
  if (backend === 'illumos') throw new Error(`host.backend is "illumos" but ${reason}`);
  log.info({ backend: 'sim', reason, state_dir: config.host.state_dir }, `host: simulated, because ${reason}`);
  return chosen(await openConfiguredSimHost(config, log, options), reason);
}
