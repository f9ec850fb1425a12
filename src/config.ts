// Configuration of the real agent (`sled-agent run <config.toml>`): the original's TOML (`id`,
// `nexus_address`, `zpools`, `data_link`, `vlan`, `[log]`) plus our own tables, every one with a
// default so the original's file works as it is. Validated as a whole; a bad field is named.
import { dirname, isAbsolute, resolve } from 'node:path';
import { Type, type Static } from 'typebox';
import { canonicalIpv6 } from './common/ipv6.js';
import { isOwnedVnicName, linkNameProblem, OWNED_VNIC_PREFIXES } from './host/names.js';
import { StringEnum } from './params.js';
import { ConfigError, NexusTable, UpdatesTable, assertSocketAddrs, assertValid, configAjv, mergeTables, readTomlFile } from './sim/config.js';
import { REQUEST_BODY_MAX_BYTES } from './server.js';

const Address = Type.String({ minLength: 1 });
/** dladm_valid_linkname: no leading digit, a final number without leading zeroes, [A-Za-z0-9_.]. */
const LinkName = Type.String({ maxLength: 31, pattern: '^[A-Za-z_.]([A-Za-z0-9_.]*[A-Za-z_.])?(0|[1-9][0-9]*)$' });
const Ms = (max = 24 * 3_600_000) => Type.Integer({ minimum: 0, maximum: max });
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/** Modelled step latencies of the simulated host, ms. */
const Latencies = Type.Object({
  configure: Type.Optional(Ms()),
  install: Type.Optional(Ms()),
  clone: Type.Optional(Ms()),
  boot: Type.Optional(Ms()),
  network: Type.Optional(Ms()),
  address: Type.Optional(Ms()),
  service_start: Type.Optional(Ms()),
  propolis_start: Type.Optional(Ms()),
  vm_step: Type.Optional(Ms()),
  /** Fraction, 0..1: each latency is drawn from ±jitter around its value. */
  jitter: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
}, { additionalProperties: false });

export const AgentConfigSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  nexus_address: Address,
  /** `oxp_<uuid>` pool names. */
  zpools: Type.Array(Type.String({ pattern: '^oxp_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' }), { maxItems: 256 }),
  data_link: Type.Optional(Type.String({ minLength: 1, maxLength: 31 })),
  /** Parsed and, as in the original, not used. */
  vlan: Type.Optional(Type.Integer({ minimum: 0, maximum: 4094 })),
  /**
   * This sled's underlay IPv6 address (index 1 of its /64): service and dataset zones route
   * through it when a request names no global-zone address. Omitted: no default route is added.
   */
  underlay_address: Type.Optional(Type.String({ format: 'ipv6' })),
  /** Where the ledgers live (the original's /var/oxide). */
  data_dir: Type.String({ minLength: 1 }),
  log: Type.Object({
    level: StringEnum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    /** Accepted for the original's files; logs go to stderr (a supervisor keeps them). */
    mode: Type.Optional(Type.String()),
    path: Type.Optional(Type.String()),
    if_exists: Type.Optional(Type.String()),
  }, { additionalProperties: false }),
  dropshot: Type.Object({
    bind_address: Address,
    request_body_max_bytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
  }, { additionalProperties: false }),
  host: Type.Object({
    /** "auto": illumos when the addon finds the system libraries, else sim. */
    backend: StringEnum(['auto', 'illumos', 'sim']),
    /** Sim host: where its zones, links and datasets persist. */
    state_dir: Type.String({ minLength: 1 }),
    /** Sim host: "zero", "realistic", or a table of ms per step. */
    latency: Type.Union([StringEnum(['zero', 'realistic']), Latencies]),
    /** Sim host: physical links and etherstubs that exist. */
    links: Type.Array(Type.String({ minLength: 1, maxLength: 31 })),
    /**
     * Sim host: where its simulated Propolis servers run: "in-process" (the agent's own event
     * loop) or "process" (one child process for all of them, as a sled runs each apart).
     */
    propolis: StringEnum(['in-process', 'process']),
    /**
     * Sim host: where the simulated host itself runs: "in-process" (the agent's event loop) or
     * "process" (a child process, src/sim/host-process.ts: its zones, links, SMF and Propolis
     * servers are not the agent's CPU and heap, as on a sled the kernel's and other processes'
     * are not). Each host call is then an IPC round trip.
     */
    simulation: StringEnum(['in-process', 'process']),
    /**
     * Sim host: how its state file is written. "durable" (the default): every change fsynced
     * before the operation returns, so a killed agent finds the host as a real one's kernel would
     * keep it. "behind": written without fsync, at most every 500 ms, behind the operations; a
     * kill may lose the last changes. For benchmarks, where the sim's own persistence is not a
     * cost a sled's agent pays.
     */
    state_write: StringEnum(['durable', 'behind']),
    /** Sim host: size of each configured zpool, bytes. */
    pool_size: Type.Integer({ minimum: 1, format: 'uint64' }),
    /** illumos host: load the libraries from this directory instead of the system's. */
    lib_dir: Type.Optional(Type.String({ minLength: 1 })),
    /** Absolute: a bare name would be looked up on PATH, which the agent should not trust. */
    zoneadm: Type.Optional(Type.String({ pattern: '^/' })),
    zlogin: Type.Optional(Type.String({ pattern: '^/' })),
    /** illumos host: where the global zone's ipadm is (default /usr/sbin). */
    sbin: Type.Optional(Type.String({ pattern: '^/' })),
    /** illumos host: OPTE's admin command, from the package that installs the xde driver. */
    opteadm: Type.Optional(Type.String({ pattern: '^/' })),
    /** illumos host: the file whose existence says xde is installed (default /kernel/drv/xde.conf). */
    xde_conf: Type.Optional(Type.String({ pattern: '^/' })),
  }, { additionalProperties: false }),
  opte: Type.Object({
    /** The two links xde sends underlay traffic by (set-xde-underlay); omicron's net0 and net1. */
    underlay_links: Type.Tuple([LinkName, LinkName]),
  }, { additionalProperties: false }),
  zones: Type.Object({
    /** The dataset holding the zonepaths and its mountpoint (reference §8: rpool/zone at /zone). */
    dataset: Type.String({ minLength: 1 }),
    root: Type.String({ minLength: 2, pattern: '^/' }),
    /** The etherstub control VNICs go over. */
    control_link: Type.String({ minLength: 1, maxLength: 31 }),
    /**
     * The global zone's VNIC on that etherstub (reference §8: underlay0): it carries the sled's
     * underlay address (`<vnic>/sled6`) and services' gz_addresses, the zones' gateways.
     */
    underlay_vnic: Type.String({ minLength: 1, maxLength: 31 }),
    /** Deadline for each readiness wait (zone running, a service online, Propolis up). */
    ready_timeout_ms: Ms(),
    /**
     * Propolis zones kept booted ahead of any request (src/warm-pool.ts), each with its control
     * VNIC and Propolis listening; a start takes one. 0: none, every start makes its zone.
     */
    warm_pool: Type.Integer({ minimum: 0, maximum: 64 }),
    /**
     * Make instance and pool zones by cloning an installed template zone (`zoneadm clone`, a ZFS
     * clone) instead of installing the image into each one.
     */
    template: Type.Boolean(),
  }, { additionalProperties: false }),
  instances: Type.Object({
    /** "event" (the default) or "poll": the original's 250 ms doubling poll, for comparison only. */
    readiness: StringEnum(['event', 'poll']),
    /**
     * "parallel" (the default): provisioning steps that do not depend on each other run at once;
     * "serial": the original's order, one step after another, for the benchmark only.
     */
    steps: StringEnum(['parallel', 'serial']),
    /** InstanceProperties.image_id and bootrom_id (the original sent nil uuids). */
    image_id: Type.String({ format: 'uuid' }),
    bootrom_id: Type.String({ format: 'uuid' }),
    propolis_port: Type.Integer({ minimum: 1, maximum: 65535 }),
  }, { additionalProperties: false }),
  bundles: Type.Object({
    /** Zone bundles (src/zone-bundle.ts) together stay within this; the oldest go first. */
    max_bytes: Type.Integer({ minimum: 0, format: 'uint64' }),
  }, { additionalProperties: false }),
  updates: UpdatesTable,
  nexus: NexusTable,
}, { additionalProperties: false });

export type AgentConfig = Static<typeof AgentConfigSchema>;
export type LatencyTable = Static<typeof Latencies>;

/** Every field but `id` and `nexus_address`, which a config file must give. */
export function agentConfigDefaults(): Omit<AgentConfig, 'id' | 'nexus_address'> {
  return {
    zpools: [],
    data_dir: '/var/oxide',
    log: { level: 'info' },
    dropshot: { bind_address: '127.0.0.1:12345', request_body_max_bytes: REQUEST_BODY_MAX_BYTES },
    host: {
      backend: 'auto',
      state_dir: '/var/oxide/sim-host',
      latency: 'realistic',
      propolis: 'in-process',
      simulation: 'in-process',
      state_write: 'durable',
      links: ['stub0', 'net0', 'net1'],
      pool_size: 2 ** 40,
      opteadm: '/opt/oxide/opte/bin/opteadm',
    },
    opte: { underlay_links: ['net0', 'net1'] },
    zones: { dataset: 'rpool/zone', root: '/zone', control_link: 'stub0', underlay_vnic: 'underlay0', ready_timeout_ms: 5 * 60_000, warm_pool: 2, template: true },
    instances: { readiness: 'event', steps: 'parallel', image_id: NIL_UUID, bootrom_id: NIL_UUID, propolis_port: 12400 },
    bundles: { max_bytes: 32 * 1024 * 1024 },
    updates: { artifact_dir: '/var/tmp/zones' },
    nexus: { timeout_ms: 10_000, backoff_initial_ms: 250, backoff_max_ms: 30_000 },
  };
}

const validate = configAjv().compile(AgentConfigSchema);

/** Defaults with `partial`'s tables merged over them (one level deep), then validated. */
export function checkAgentConfig(partial: Record<string, unknown>, source: string): AgentConfig {
  const merged = mergeTables(agentConfigDefaults() as unknown as Record<string, unknown>, partial);
  assertValid(validate, merged, source);
  const config = merged as AgentConfig;
  assertSocketAddrs([['nexus_address', config.nexus_address], ['dropshot.bind_address', config.dropshot.bind_address]], source);
  if (new Set(config.zpools).size !== config.zpools.length) {
    throw new ConfigError(`invalid configuration (${source}): zpools: a pool is listed more than once`);
  }
  if (config.nexus.backoff_max_ms < config.nexus.backoff_initial_ms) {
    throw new ConfigError(`invalid configuration (${source}): nexus.backoff_max_ms is below nexus.backoff_initial_ms`);
  }
  for (const [key, name] of [['zones.control_link', config.zones.control_link], ['zones.underlay_vnic', config.zones.underlay_vnic]] as const) {
    const problem = linkNameProblem(name);
    if (problem !== null) throw new ConfigError(`invalid configuration (${source}): ${key}: ${JSON.stringify(name)} is not a link name: ${problem}`);
  }
  // The start-up sweep removes VNICs with the agent's own prefixes that no ledger claims.
  if (isOwnedVnicName(config.zones.underlay_vnic)) {
    throw new ConfigError(`invalid configuration (${source}): zones.underlay_vnic: ${JSON.stringify(config.zones.underlay_vnic)} starts with `
      + `${OWNED_VNIC_PREFIXES.map((p) => `"${p}"`).join(' or ')}, the prefixes of the VNICs the agent makes for zones and removes when no ledger claims them`);
  }
  // In RFC 5952 form, as ipadm show-addr prints it: written otherwise (FD00::1), every start found
  // the sled's address "changed" and deleted and re-added it under the zones that route through it.
  if (config.underlay_address !== undefined) config.underlay_address = canonicalIpv6(config.underlay_address);
  return config;
}

/** Reads a config file; relative paths in it are taken relative to the file's directory. */
export function loadAgentConfigFile(path: string): AgentConfig {
  const config = checkAgentConfig(readTomlFile(path), path);
  const dir = dirname(resolve(path));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  config.data_dir = abs(config.data_dir);
  config.host.state_dir = abs(config.host.state_dir);
  config.updates.artifact_dir = abs(config.updates.artifact_dir);
  if (config.host.lib_dir !== undefined) config.host.lib_dir = abs(config.host.lib_dir);
  return config;
}
