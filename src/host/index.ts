// The Host: what the instance, service and storage managers need from the machine, and nothing
// more. Two backends implement it: `illumos` (src/illumos/host.ts: the native addon plus exec'd
// zoneadm/zlogin) and `sim` (src/sim/host.ts: pure TypeScript, state persisted to a directory,
// modelled latencies). Both pass the one suite in test/support/host-suite.ts.
//
// Every wait here is an event wait with a deadline; nothing sleeps and retries. Errors are Errors
// with a string `code` (the library's, e.g. Z_NO_ZONE, DLADM_STATUS_NOTFOUND, EZFS_EXISTS,
// ECOMMAND for a failed command, ETIMEDOUT for a deadline, ABORT_ERR for a signal).
import type { SocketAddr } from '../common/address.js';

// ---- links ----

export interface VnicSpec {
  /** An owned name ("ox..." or "vopte..."): at most 31 bytes, ending in a digit. */
  name: string;
  /** The link it goes over (a physical link or an etherstub such as "stub0"). */
  link: string;
  /** "xx:xx:xx:xx:xx:xx"; a random one when absent. */
  mac?: string;
  /** 0 or absent: untagged. */
  vlan?: number;
}

export interface VnicInfo {
  name: string;
  /** The link it goes over. */
  link: string;
  mac: string;
  vlan: number;
}

export interface HostLinks {
  /** Creates a temporary VNIC; code DLADM_STATUS_EXIST if the name is taken, DLADM_STATUS_NOTFOUND if `link` is unknown. */
  createVnic(spec: VnicSpec): Promise<VnicInfo>;
  /** Deletes a VNIC (DLADM_STATUS_NOTFOUND if there is none). */
  deleteVnic(name: string): Promise<void>;
  /** Every VNIC on the host. */
  listVnics(): Promise<VnicInfo[]>;
  /** Whether a link (physical, etherstub or VNIC) of that name exists. */
  linkExists(name: string): Promise<boolean>;
  /**
   * Gives `link` to the ready or running exclusive-IP zone `zone` (the `zone` link property,
   * `dladm set-linkprop -t -p zone=<zone> <link>`): the zone then has it as a NIC, exactly as if
   * zoneadmd had assigned it from a `net` of the configuration at boot, until the zone halts,
   * when the link returns to the global zone (it is not deleted). It is a temporary assignment,
   * not configuration: `zones.config(zone).nets` does not list it, a later boot does not give
   * it again, and it does not survive a halt. Giving a link to the zone that already has it does
   * nothing. Rejects with DLADM_STATUS_NOTFOUND for an unknown link, DLADM_STATUS_BADVAL if the
   * zone is not ready or running (libdladm's check_zone: not in the kernel), DLADM_STATUS_LINKBUSY
   * if another zone in the kernel has the link. Never give away a link with addresses in the
   * global zone (zoneadmd refuses one; libdladm does not check).
   */
  setZone(link: string, zone: string): Promise<void>;
}

// ---- zones ----

/** The global zone, for exec: the sled's own addresses (reference §8, §10: underlay0/<name>). */
export const GLOBAL_ZONE = 'global';
/** What the agent runs in the global zone. */
export const GLOBAL_COMMANDS: readonly string[] = ['ipadm'];

/** zone_state_str() names as a Host reports them: never "unknown" (list() leaves such zones out). */
export type ZoneState = 'configured' | 'incomplete' | 'installed' | 'ready' | 'running' | 'shutting_down' | 'down' | 'mounted';

export interface ZoneSpec {
  /** Validated against ZONENAME_MAX and ZONENAME_REGEXP (src/host/names.ts). */
  name: string;
  brand: string;
  /** Absolute. */
  zonepath: string;
  autoboot?: boolean;
  /** Exclusive-IP NICs: `add net; set physical=<vnic>`. */
  nets: Array<{ physical: string }>;
  /** `add device; set match=<path glob>`. */
  devices: Array<{ match: string }>;
  /** Delegated datasets: `add dataset; set name=<dataset>`. */
  datasets: Array<{ name: string }>;
}

export interface ZoneInfo {
  name: string;
  state: ZoneState;
}

/**
 * One SMF instance in a zone's site profile: created if its service has none of that name, its
 * properties set (each `pg/prop` an astring in a property group of type application), enabled
 * or not. A profile is a list of them.
 */
export interface SmfProfileInstance {
  /** `svc:/<service>:<instance>`. */
  fmri: string;
  enabled: boolean;
  /** `pg/prop` -> value. */
  properties: Record<string, string>;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface HostZones {
  /** Creates a configuration (code Z_NAME_IN_USE if the name is taken). */
  configure(spec: ZoneSpec): Promise<void>;
  /** The configuration of a zone (Z_NO_ZONE if there is none). */
  config(name: string): Promise<ZoneSpec>;
  /** `zoneadm install <image>`: configured -> installed. */
  install(name: string, image: string): Promise<void>;
  /**
   * `zoneadm clone <source>`: configured -> installed by cloning `source`'s zonepath (a ZFS clone,
   * far cheaper than install's unpacking of an image): the new zone has `source`'s files, so its
   * image and SMF repository. `name` must be configured and `source` installed and not running:
   * Z_NO_ZONE if either does not exist, Z_BAD_ZONE_STATE otherwise, Z_INVAL if their brands
   * differ (with zoneadm's message). Until it resolves the zone is "incomplete", and stays so if
   * the agent is killed meanwhile, as with install.
   */
  clone(name: string, source: string): Promise<void>;
  /**
   * The zone's SMF site profile (`<zonepath>/root/var/svc/profile/site.xml`, which SMF applies as
   * the zone boots, as omicron writes its zones'): so a service is configured and enabled with
   * no command run in the zone. Replaces any profile written before. The zone must be installed
   * and not in the kernel (Z_BAD_ZONE_STATE; Z_NO_ZONE if there is none): it takes effect at the
   * next boot.
   */
  setProfile(name: string, profile: readonly SmfProfileInstance[]): Promise<void>;
  /** `zoneadm boot`: installed -> running. Resolves when zoneadm returns, not when services are up. */
  boot(name: string): Promise<void>;
  /** `zoneadm halt`: -> installed. */
  halt(name: string): Promise<void>;
  /** `zoneadm uninstall -F`: installed -> configured. */
  uninstall(name: string): Promise<void>;
  /** Deletes a configuration (refused while installed or above). */
  delete(name: string): Promise<void>;
  /** Every non-global zone with its state. */
  list(): Promise<ZoneInfo[]>;
  /**
   * One zone's state; null if there is no such zone. What a start asks of its own zone: list()
   * answers for every zone on the sled, thousands of entries per question at scale.
   */
  state(name: string): Promise<ZoneState | null>;
  /**
   * Runs a command in a running zone (zlogin) with an argument array; rejects with code
   * ECOMMAND and the command's stderr when it exits non-zero. In GLOBAL_ZONE it runs on the
   * host itself (no zlogin), from the host's system directory; only GLOBAL_COMMANDS there.
   */
  exec(zone: string, argv: readonly string[], options?: { timeoutMs?: number }): Promise<ExecResult>;
}

// ---- datasets ----

export interface PoolInfo {
  name: string;
  /** Bytes. */
  size: bigint;
  allocated: bigint;
  free: bigint;
  /** "ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "REMOVED", "UNAVAIL". */
  health: string;
}

export interface HostDatasets {
  /** Creates a filesystem with properties (EZFS_EXISTS if it exists, EZFS_NOENT if the parent does not). */
  create(name: string, props: Record<string, string>): Promise<void>;
  /** Property values (null where unset), including user properties such as oxide:uuid. */
  get(name: string, props: readonly string[]): Promise<Record<string, string | null>>;
  set(name: string, props: Record<string, string>): Promise<void>;
  exists(name: string): Promise<boolean>;
  /** Names of the direct children. */
  listChildren(parent: string): Promise<string[]>;
  destroy(name: string): Promise<void>;
  listPools(): Promise<PoolInfo[]>;
}

// ---- events and waits ----

/** The kernel's zone status names (sys/zone.h ZONE_EVENT_*). */
export type ZoneEventState = 'uninitialized' | 'initialized' | 'ready' | 'running' | 'shutting_down';

export interface ZoneStateEvent {
  zonename: string;
  zoneid: number;
  oldstate: ZoneEventState;
  newstate: ZoneEventState;
  /** Monotonic ns (gethrtime on illumos): for order and intervals only. */
  when: bigint;
}

export interface WaitOptions {
  /** Rejects with code ETIMEDOUT after this many ms. */
  timeoutMs: number;
  /** Aborting rejects with code ABORT_ERR. */
  signal?: AbortSignal;
}

export type SmfState = 'uninitialized' | 'offline' | 'online' | 'degraded' | 'maintenance' | 'disabled' | 'legacy_run';

export interface HostEvents {
  /**
   * Calls `listener` for every zone state change (or, with `zone`, for that zone's only) until
   * the returned function is called.
   */
  subscribe(listener: (event: ZoneStateEvent) => void, zone?: string): () => void;
  /**
   * Resolves once `zone` is running (at once if it already is). Rejects with code ZONE_GONE if
   * the zone stops existing in the kernel or is removed while waiting.
   */
  waitForZoneRunning(zone: string, options: WaitOptions): Promise<void>;
  /**
   * Resolves with the state once the service instance `fmri` in running zone `zone` is one of
   * `states` (the SMF property-group wait on illumos). Rejects with ZONE_GONE as above.
   */
  waitForService(zone: string, fmri: string, states: readonly SmfState[], options: WaitOptions): Promise<SmfState>;
}

// ---- guest networking (OPTE) ----
//
// One OPTE (xde) port `opte<N>` per guest NIC, in the kernel: it outlives the agent, as zones do.
// The operations are opteadm's (reference opte.md §3.1); both backends enforce the same
// semantics (§1.5-1.10): a port's (VNI, guest MAC) is unique, a port a VNIC or zone still holds
// cannot be deleted, router entries are appended (adding one twice gives two), firewall rules
// and external IPs are replaced as whole sets, and the port's own V2P entry is the driver's.
// Errors carry these codes: OPTE_UNAVAILABLE (no xde driver), OPTE_PORT_EXISTS, OPTE_MAC_EXISTS,
// OPTE_NO_PORT, OPTE_PORT_BUSY, OPTE_NO_UNDERLAY (ports before set-xde-underlay), OPTE_NO_ENTRY
// (a router entry or V2P mapping to delete that is not there), EINVAL (a malformed argument).

/** The virtual gateway's MAC on every port (OPTE_VIRTUAL_GATEWAY_MAC). */
export const OPTE_GATEWAY_MAC = 'a8:40:25:ff:77:77';

export interface SourceNat {
  ip: string;
  /** A 16384-port block aligned on 16384. */
  firstPort: number;
  lastPort: number;
}

/** External addressing of a port (only the primary NIC's port has any). */
export interface ExternalIps {
  snat: SourceNat | null;
  ephemeralIp: string | null;
  floatingIps: string[];
}

export interface PortSpec {
  /** `opte<N>`. */
  name: string;
  guestMac: string;
  /** IPv4 only, as opteadm at our pin. */
  privateIp: string;
  /** CIDR, e.g. "172.30.0.0/22". */
  subnet: string;
  gatewayMac: string;
  /** The subnet's first host. */
  gatewayIp: string;
  /** 24 bits. */
  vni: number;
  /** The sled's underlay IPv6 address (--src-underlay-addr). */
  underlayAddr: string;
  external: ExternalIps;
}

/** What `opteadm list-ports` tells of a port (the driver keeps no more that can be read back). */
export interface PortInfo {
  name: string;
  mac: string;
  ip4: string | null;
  ephemeralIp4: string | null;
  floatingIp4: string[];
  state: string;
}

export type RouterTarget =
  | { type: 'drop' }
  | { type: 'internet_gateway' }
  | { type: 'ip'; ip: string }
  | { type: 'vpc_subnet'; subnet: string };

export interface RouterEntry {
  dest: string;
  target: RouterTarget;
  class: 'system' | 'custom';
}

export type FirewallHost =
  | { type: 'any' }
  | { type: 'ip'; ip: string }
  | { type: 'subnet'; subnet: string }
  | { type: 'vni'; vni: number };

/** One rule as OPTE takes it: already filtered to its port and expanded (§1.7). */
export interface FirewallRule {
  direction: 'in' | 'out';
  action: 'allow' | 'deny';
  /** Lower wins; deny wins a tie. */
  priority: number;
  hosts: FirewallHost;
  protocol: 'any' | 'tcp' | 'udp' | 'icmp';
  /** 'any', or the ports (TCP/UDP only). */
  ports: 'any' | number[];
}

/** A guest address on another sled (or this one): where its packets go on the underlay. */
export interface V2PMapping {
  virtualIp: string;
  virtualMac: string;
  physicalHostIp: string;
  vni: number;
}

/** A packet to evaluate at a port (the simulated host's dataplane; POST /sim/net/trace). */
export interface TracePacket {
  vni: number;
  src_ip: string;
  dst_ip: string;
  protocol: 'TCP' | 'UDP' | 'ICMP';
  src_port?: number;
  dst_port?: number;
  direction: 'out' | 'in';
}

/** The verdict, the port and layer and rule that decided, and where an allowed packet goes next. */
export interface TraceAnswer {
  verdict: 'allow' | 'deny' | 'no_route' | 'no_port';
  port: string | null;
  layer: string | null;
  rule: string;
  reason: string;
  next?: Record<string, unknown>;
}

export interface HostNetwork {
  /** Whether OPTE is usable here; if not, why (e.g. /kernel/drv/xde.conf is missing). */
  available(): Promise<{ available: true } | { available: false; reason: string }>;
  /** set-xde-underlay: the two links underlay traffic leaves by; already set counts as done. */
  setUnderlay(links: readonly [string, string]): Promise<void>;
  /** create-xde, with the port's external IPs. The port's own V2P entry comes with it. */
  createPort(spec: PortSpec): Promise<void>;
  /** delete-xde: OPTE_PORT_BUSY while a VNIC or zone holds it. Takes the port's own V2P entry. */
  deletePort(name: string): Promise<void>;
  listPorts(): Promise<PortInfo[]>;
  /** Appends (not idempotent). */
  addRouterEntry(port: string, entry: RouterEntry): Promise<void>;
  /** OPTE_NO_ENTRY if there is no such entry. */
  delRouterEntry(port: string, entry: RouterEntry): Promise<void>;
  /** Replaces the port's whole rule set. */
  setFirewallRules(port: string, rules: readonly FirewallRule[]): Promise<void>;
  /** Replaces the port's external IPs. */
  setExternalIps(port: string, external: ExternalIps): Promise<void>;
  setV2P(mapping: V2PMapping): Promise<void>;
  /** OPTE_NO_ENTRY if there is none for (vni, virtualIp). */
  clearV2P(mapping: V2PMapping): Promise<void>;
  dumpV2P(): Promise<V2PMapping[]>;
  /**
   * Only where the dataplane is modelled (the simulated host): how `packet` fares at the port
   * on this host whose IP and VNI match (the source going out, the destination coming in).
   */
  trace?(packet: TracePacket): Promise<TraceAnswer>;
}

// ---- the host ----

export type HostKind = 'illumos' | 'sim';

export interface Host {
  readonly kind: HostKind;
  readonly links: HostLinks;
  readonly zones: HostZones;
  readonly datasets: HostDatasets;
  readonly network: HostNetwork;
  readonly events: HostEvents;
  /**
   * The address this process dials to reach a server that listens on `addr` inside `zone`.
   * On illumos that is `addr` itself; the sim host maps it to the loopback port where the
   * simulated server (Propolis) really listens (asynchronous: the simulated host may be in a
   * process of its own, `[host] simulation = "process"`).
   */
  reachable(zone: string, addr: SocketAddr): Promise<SocketAddr>;
  /** Stops subscriptions and simulated servers; the host's state (zones, links, datasets) stays. */
  close(): Promise<void>;
}

/** An Error with a string code, as every Host method rejects with. */
export interface HostError extends Error {
  code: string;
}

export function hostError(code: string, message: string, cause?: unknown): HostError {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

export function isHostError(err: unknown, code?: string): err is HostError {
  return err instanceof Error && typeof (err as HostError).code === 'string' && (code === undefined || (err as HostError).code === code);
}
