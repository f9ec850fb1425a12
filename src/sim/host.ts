// The simulated host: zones, links, datasets, zone-state events, SMF and simulated Propolis
// servers, in pure TypeScript, with the same error codes and command semantics as the illumos
// backend (src/host/index.ts, src/host/commands.ts). Its state is one JSON file in a directory,
// written atomically after every change, so a new SimHost on the same directory finds what an
// earlier process left: zones that were running still run (as zones outlive the agent on a
// sled), enabled services come back online, and each Propolis comes back with its VM's state on
// a new loopback port (which is what reachable() is for).
//
// Time is modelled, not measured: each step takes a configured latency (with optional jitter),
// by a timer. Nothing polls: waits are released by the change itself.
//
// Zone lifecycle (the fake illumos's zoneadm, test/fake-illumos/zoneadm.c, and the real one):
//   configure        -> configured
//   install IMAGE    configured -> incomplete -> installed              ("install" latency)
//   boot             installed -> ready -> running                      ("boot" latency)
//                    events uninitialized->initialized, initialized->ready, ready->running;
//                    then svc:/milestone/network:default offline -> online ("network" latency)
//   halt             ready|running -> shutting_down -> installed         ("halt" latency)
//                    events ->shutting_down, shutting_down->uninitialized; addresses, routes,
//                    temporary enables, service states and Propolis VMs are gone; a zone that
//                    is not running halts successfully without doing anything
//   uninstall -F     installed|incomplete -> configured                  ("uninstall" latency)
//   delete           configured -> (gone)
// A wrong state is Z_BAD_ZONE_STATE with zoneadm's message. After a restart of the agent
// (a new SimHost on the directory): a boot under way completes (zoneadmd does it), a halt under
// way completes, an install under way stays "incomplete" (zoneadm died with the agent).
//
// Test hooks: simulateZoneFailure(), propolisFor(), crashPropolis() (see each).
import { randomBytes, randomInt } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { isIP, isIPv6 } from 'node:net';
import { basename, dirname, isAbsolute, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { formatSocketAddr, parseSocketAddr, type SocketAddr } from '../common/address.js';
import { readJsonIfExists, writeJsonAtomic } from '../common/persist.js';
import {
  GLOBAL_COMMANDS,
  GLOBAL_ZONE,
  hostError,
  type ExecResult,
  type Host,
  type HostDatasets,
  type HostError,
  type HostEvents,
  type HostLinks,
  type HostZones,
  type PoolInfo,
  type SmfState,
  type VnicInfo,
  type VnicSpec,
  type WaitOptions,
  type ZoneEventState,
  type ZoneInfo,
  type ZoneSpec,
  type ZoneState,
  type ZoneStateEvent,
} from '../host/index.js';
import { NETWORK_MILESTONE, PROPOLIS_SERVICE, zoneImage } from '../host/commands.js';
import {
  assertInstanceFmri,
  InvalidDatasetNameError,
  InvalidVnicArgumentError,
  isUserPropertyName,
  normalizeMac,
  parentDataset,
  SMF_STATES,
  validateDatasetName,
  validateLinkName,
  validatePropertyMap,
  validateZoneName,
} from '../host/names.js';
import { SimPropolis, type SimPropolisSnapshot } from './propolis.js';
import { anySignal } from '../common/signals.js';

// ---- configuration ----

/** Modelled durations, ms. */
export interface SimLatencies {
  /** zonecfg: a zone configuration written. */
  configure: number;
  /** zoneadm install: the image unpacked. */
  install: number;
  /** zoneadm boot: installed -> running. */
  boot: number;
  /** From running to svc:/milestone/network:default online. */
  network: number;
  /** ipadm create-addr. */
  address: number;
  /** svcadm enable: an ordinary service instance online. */
  serviceStart: number;
  /** svcadm enable of a propolis-server instance: Propolis listening and the instance online. */
  propolisStart: number;
  /** zoneadm halt. */
  halt: number;
  /** zoneadm uninstall. */
  uninstall: number;
  /** Any zlogin command, on top of what the command itself costs. */
  exec: number;
  /** dladm create-vnic / delete-vnic. */
  vnic: number;
  /** zfs create / set / destroy. */
  dataset: number;
  /** Propolis VM: Starting -> Running. */
  vmBoot: number;
  /** Propolis VM: every other automatic step. */
  vmStep: number;
}

/** Nothing takes time: for tests. The constructor's default. */
export const ZERO_LATENCIES: Readonly<SimLatencies> = Object.freeze({
  configure: 0,
  install: 0,
  boot: 0,
  network: 0,
  address: 0,
  serviceStart: 0,
  propolisStart: 0,
  halt: 0,
  uninstall: 0,
  exec: 0,
  vnic: 0,
  dataset: 0,
  vmBoot: 0,
  vmStep: 0,
});

/** The shape of a real sled (DESIGN.md, "What a real instance start costs"): for benchmarks. */
export const REALISTIC_LATENCIES: Readonly<SimLatencies> = Object.freeze({
  configure: 10,
  install: 1500,
  boot: 600,
  network: 1300,
  address: 150,
  serviceStart: 300,
  propolisStart: 500,
  halt: 300,
  uninstall: 400,
  exec: 15,
  vnic: 5,
  dataset: 10,
  vmBoot: 300,
  vmStep: 20,
});

/** The jitter to use with REALISTIC_LATENCIES. */
export const REALISTIC_JITTER = 0.2;

export interface SimPoolConfig {
  /** "rpool", "oxp_<uuid>", ... */
  name: string;
  /** Bytes. */
  size: number | bigint;
  /** Default "ONLINE". */
  health?: string;
}

export const DEFAULT_SIM_LINKS: readonly string[] = ['stub0', 'net0'];

/** As the fake illumos's default (test/fake-illumos/zfs.c). */
export const DEFAULT_SIM_POOLS: readonly SimPoolConfig[] = [
  { name: 'rpool', size: 100n * 1024n ** 3n },
  { name: 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b', size: 1024n ** 4n },
];

export interface SimHostOptions {
  /** Where the state file (sim-host.json) lives; created if missing. */
  stateDir: string;
  /** Physical links and etherstubs VNICs can go over. Default DEFAULT_SIM_LINKS. */
  links?: readonly string[];
  /** The imported pools. Default DEFAULT_SIM_POOLS. */
  pools?: readonly SimPoolConfig[];
  /** Over ZERO_LATENCIES. */
  latencies?: Partial<SimLatencies>;
  /** Each latency is drawn uniformly from ±jitter of its value (0..1). Default 0. */
  jitter?: number;
  /** Seeds the jitter, for repeatable runs. Default: Math.random. */
  seed?: number;
  /**
   * Whether each state write is fsynced (file and directory) before it counts as done. Default
   * true. false keeps the write and the atomic rename and drops only the fsyncs: for the boot
   * benchmark, where the sim's own persistence is not modelled and would otherwise be counted as
   * agent overhead.
   */
  durable?: boolean;
  /**
   * Write-behind: operations no longer wait for the state file; their changes are written (as
   * above) in the background, at most once per this many ms, and flush()/close() wait for them.
   * Default: none (every operation returns once its change is written). For the boot benchmark.
   */
  writeBehindMs?: number;
  /** Keep every latency drawn for a zone (and its VNICs) for modelled()/modelledMs(). Default false. */
  recordLatencies?: boolean;
  logger?: Logger;
}

/** One modelled latency the sim drew and waited out (recordLatencies). */
export interface DrawnLatency {
  /** The SimLatencies entry it was drawn from. */
  step: keyof SimLatencies;
  /** What it modelled: "vnic create", "zone install", "zlogin", "propolis start", ... */
  op: string;
  /** ms, after jitter: what the sim slept (or, for a Propolis start, max(drawn, its server's real start-up)). */
  ms: number;
  /** process.hrtime.bigint() when it was drawn. */
  at: bigint;
}

// ---- persisted state ----

interface SmfPg {
  type: string;
  props: Record<string, string>;
}

interface SmfInstance {
  /** general/enabled (persistent). */
  enabled: boolean;
  /** svcadm -t's override until the zone halts; null when none. */
  temporary: boolean | null;
  /** restarter/state; null while the zone is not running. */
  state: SmfState | null;
  pgs: Record<string, SmfPg>;
}

interface SmfService {
  pgs: Record<string, SmfPg>;
  instances: Record<string, SmfInstance>;
}

interface ZoneAddress {
  type: 'static' | 'addrconf';
  /** "<ip>/<prefix>" */
  addr: string;
}

interface ZoneRecord {
  spec: ZoneSpec;
  state: ZoneState;
  image: string | null;
  /** The kernel's id while the zone is in the kernel (ready, running, shutting_down). */
  zoneid: number | null;
  addresses: Record<string, ZoneAddress>;
  routes: string[];
  services: Record<string, SmfService>;
  /** The VM of each running propolis-server instance, by instance FMRI. */
  vms: Record<string, SimPropolisSnapshot>;
}

interface DatasetRecord {
  /** Locally set properties (canonical values) and user properties. */
  props: Record<string, string>;
  creation: number;
  guid: string;
}

interface PersistedState {
  format: 1;
  nextZoneId: number;
  vnics: VnicInfo[];
  zones: ZoneRecord[];
  datasets: Record<string, DatasetRecord>;
  /** The global zone's addresses (exec in GLOBAL_ZONE); absent in older state files. */
  global?: { addresses: Record<string, ZoneAddress> };
}

export const SIM_HOST_STATE_FILE = 'sim-host.json';

// ---- runtime (not persisted) ----

interface RunningPropolis {
  server: SimPropolis;
  addr: SocketAddr;
  /** False once the server is being stopped: its VM changes are no longer recorded. */
  live: boolean;
}

/** What exists while a zone is in the kernel. */
interface KernelRuntime {
  zoneid: number;
  /** Aborted when the zone leaves the kernel. */
  ctl: AbortController;
  /** Service instances on their way online, by FMRI. */
  starting: Map<string, AbortController>;
  propolis: Map<string, RunningPropolis>;
  /** Starts deferred until the network milestone is online. */
  afterNetwork: Array<() => void>;
  halting: Promise<void> | null;
}

interface Waiter {
  check(): void;
}

/** What a simulated Propolis calls back into its host with. */
interface PropolisHandlers {
  jitter(ms: number): number;
  onChange(snapshot: SimPropolisSnapshot): void;
}

/** An ECOMMAND as the illumos backend's zlogin gives it: the command's stderr in the message. */
export interface SimCommandError extends HostError {
  exitCode: number;
  stdout: string;
  stderr: string;
}

class CommandFailure extends Error {
  constructor(
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(stderr);
  }
}

const fail = (stderr: string, exitCode = 1): never => {
  throw new CommandFailure(exitCode, stderr.endsWith('\n') ? stderr : `${stderr}\n`);
};

function abortError(reason: unknown): HostError {
  return Object.assign(hostError('ABORT_ERR', 'the operation was aborted', reason), { name: 'AbortError' });
}

const MAX_TIMER_MS = 2 ** 31 - 1;
/** What every filesystem "uses" (as the fake illumos's zfs). */
const DATASET_BYTES = 24n * 1024n;

// ---- ZFS properties (the subset the fake illumos knows) ----

interface PropDesc {
  readonly?: boolean;
  inherit?: boolean;
  def?: string;
  values?: readonly string[];
  number?: boolean;
}

const ON_OFF = ['on', 'off'] as const;
const ZFS_PROPS: Record<string, PropDesc> = {
  type: { readonly: true },
  creation: { readonly: true },
  used: { readonly: true },
  available: { readonly: true },
  referenced: { readonly: true },
  compressratio: { readonly: true },
  mounted: { readonly: true },
  origin: { readonly: true },
  name: { readonly: true },
  guid: { readonly: true },
  quota: { def: '0', number: true },
  reservation: { def: '0', number: true },
  refquota: { def: '0', number: true },
  refreservation: { def: '0', number: true },
  recordsize: { def: '131072', inherit: true, number: true },
  mountpoint: { inherit: true },
  sharenfs: { def: 'off', inherit: true },
  checksum: { def: 'on', inherit: true, values: ['on', 'off', 'fletcher2', 'fletcher4', 'sha256', 'noparity', 'sha512', 'skein', 'edonr'] },
  compression: { def: 'off', inherit: true, values: ['on', 'off', 'lzjb', 'gzip', ...Array.from({ length: 9 }, (_, i) => `gzip-${i + 1}`), 'zle', 'lz4'] },
  atime: { def: 'on', inherit: true, values: ON_OFF },
  devices: { def: 'on', inherit: true, values: ON_OFF },
  exec: { def: 'on', inherit: true, values: ON_OFF },
  setuid: { def: 'on', inherit: true, values: ON_OFF },
  readonly: { def: 'off', inherit: true, values: ON_OFF },
  zoned: { def: 'off', inherit: true, values: ON_OFF },
  snapdir: { def: 'hidden', inherit: true, values: ['hidden', 'visible'] },
  canmount: { def: 'on', values: ['on', 'off', 'noauto'] },
  xattr: { def: 'on', inherit: true, values: ON_OFF },
  copies: { def: '1', inherit: true, values: ['1', '2', '3'] },
  logbias: { def: 'latency', inherit: true, values: ['latency', 'throughput'] },
  sync: { def: 'standard', inherit: true, values: ['standard', 'always', 'disabled'] },
};
const ZFS_ALIASES: Record<string, string> = {
  avail: 'available', refer: 'referenced', ratio: 'compressratio', reserv: 'reservation',
  recsize: 'recordsize', compress: 'compression', rdonly: 'readonly', refreserv: 'refreservation',
};

/** zfs_nicestrtonum: "10G" -> "10737418240"; null if it is not a size. */
function nicestrtonum(value: string): string | null {
  const m = /^(\d+(?:\.\d+)?)([KMGTPEZ]?)(?:B|iB)?$/i.exec(value.trim());
  if (!m) return null;
  const power = 'BKMGTPEZ'.indexOf((m[2] || 'B').toUpperCase());
  const [whole, frac = ''] = m[1]!.split('.');
  const scale = 1024n ** BigInt(power);
  let n = BigInt(whole!) * scale;
  if (frac !== '') n += (BigInt(frac) * scale) / 10n ** BigInt(frac.length);
  return n.toString();
}

// ---- helpers ----

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** "fd00:0::5" and "fd00::5" are the same host. */
function normalizeHost(host: string): string {
  if (isIPv6(host)) {
    try {
      return new URL(`http://[${host}]/`).hostname;
    } catch {
      return host.toLowerCase();
    }
  }
  return host;
}

function splitFmri(fmri: string): { service: string; instance: string | null } {
  const i = fmri.lastIndexOf(':');
  if (i > 'svc:'.length) return { service: fmri.slice(0, i), instance: fmri.slice(i + 1) };
  return { service: fmri, instance: null };
}

/** An EUI-64 link-local address from a MAC. */
function linkLocalFor(mac: string): string {
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const g = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `fe80::${g((b[0] ?? 0) ^ 2, b[1] ?? 0)}:${g(b[2] ?? 0, 0xff)}:${g(0xfe, b[3] ?? 0)}:${g(b[4] ?? 0, b[5] ?? 0)}`;
}

function cidrProblem(cidr: string): string | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return 'not <address>/<prefix>';
  const family = isIP(m[1]!);
  if (family === 0) return `${m[1]} is not an IP address`;
  if (Number(m[2]) > (family === 4 ? 32 : 128)) return `prefix /${m[2]} is too long`;
  return null;
}

const ADDROBJ_RE = /^([A-Za-z][A-Za-z0-9_.]*[0-9])\/([A-Za-z][A-Za-z0-9_]{0,31})$/;
const PG_RE = /^[A-Za-z][-_A-Za-z0-9]*$/;
const INSTANCE_RE = /^[A-Za-z0-9_][-_.,+A-Za-z0-9]*$/;
const SITE_MANIFEST_RE = /^\/var\/svc\/manifest\/site\/([A-Za-z0-9][-_.A-Za-z0-9]*)\/manifest\.xml$/;
/** Manifests not named <svc>/manifest.xml (src/host/commands.ts): the service each defines, and whether with :default. */
const KNOWN_MANIFESTS = new Map<string, { service: string; defaultInstance: boolean }>([
  ['/var/svc/manifest/site/crucible/agent.xml', { service: 'svc:/oxide/crucible/agent', defaultInstance: true }],
  ['/var/svc/manifest/site/crucible/downstairs.xml', { service: 'svc:/oxide/crucible/downstairs', defaultInstance: false }],
]);

function imageServices(image: string): Record<string, SmfService> {
  const milestone = splitFmri(NETWORK_MILESTONE);
  const services: Record<string, SmfService> = {
    [milestone.service]: { pgs: {}, instances: { [milestone.instance!]: { enabled: true, temporary: null, state: null, pgs: {} } } },
  };
  if (image === zoneImage('propolis-server')) services[PROPOLIS_SERVICE] = { pgs: {}, instances: {} };
  return services;
}

function kernelEventState(state: ZoneState): ZoneEventState {
  return state === 'running' ? 'running' : state === 'shutting_down' ? 'shutting_down' : 'ready';
}

// ---- the host ----

export class SimHost implements Host {
  readonly kind = 'sim' as const;
  readonly links: HostLinks;
  readonly zones: HostZones;
  readonly datasets: HostDatasets;
  readonly events: HostEvents;
  /** The JSON file the state lives in. */
  readonly stateFile: string;

  private readonly log: Logger;
  private readonly latencies: SimLatencies;
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly durable: boolean;
  private readonly writeBehindMs: number | null;
  /** Propolis servers started ahead (prestartPropolis), each taken by the next fresh VM. */
  private readonly spares: Array<{ server: SimPropolis; bind(handlers: PropolisHandlers): void }> = [];
  /** By zone or VNIC name, when recordLatencies; null otherwise. */
  private readonly drawn: Map<string, DrawnLatency[]> | null;
  private readonly physicalLinks: readonly string[];
  private readonly pools: ReadonlyMap<string, { size: bigint; health: string }>;

  private state: PersistedState = { format: 1, nextZoneId: 1, vnics: [], zones: [], datasets: {} };
  private readonly zoneMap = new Map<string, ZoneRecord>();
  private readonly kernel = new Map<string, KernelRuntime>();
  /** Per configured zone: aborted when the zone is deleted (pending install/uninstall fail). */
  private readonly life = new Map<string, AbortController>();
  private readonly listeners = new Set<(event: ZoneStateEvent) => void>();
  /** Pending waits by zone: a change re-checks only its own zone's. */
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly closeCtl = new AbortController();

  private started: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private writing: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  private lastWriteError: unknown = null;

  constructor(options: SimHostOptions) {
    if (typeof options?.stateDir !== 'string' || options.stateDir.length === 0) throw new TypeError('SimHost needs a stateDir');
    this.stateFile = join(options.stateDir, SIM_HOST_STATE_FILE);
    this.log = options.logger ?? pino({ level: 'silent' });
    this.latencies = { ...ZERO_LATENCIES, ...options.latencies };
    for (const [k, v] of Object.entries(this.latencies)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`latency ${k} must be a number of ms >= 0, got ${String(v)}`);
    }
    this.jitter = options.jitter ?? 0;
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new TypeError(`jitter must be from 0 to 1, got ${this.jitter}`);
    this.random = options.seed === undefined ? Math.random : mulberry32(options.seed);
    this.durable = options.durable ?? true;
    this.writeBehindMs = options.writeBehindMs ?? null;
    if (this.writeBehindMs !== null && !(this.writeBehindMs >= 0 && this.writeBehindMs <= MAX_TIMER_MS)) {
      throw new TypeError(`writeBehindMs must be a number of ms >= 0, got ${this.writeBehindMs}`);
    }
    this.drawn = options.recordLatencies ? new Map() : null;
    // Every pending wait listens for close(): many at once is normal, not a leak.
    setMaxListeners(0, this.closeCtl.signal);
    this.physicalLinks = (options.links ?? DEFAULT_SIM_LINKS).map((l) => validateLinkName(l));
    const pools = new Map<string, { size: bigint; health: string }>();
    for (const p of options.pools ?? DEFAULT_SIM_POOLS) {
      validateDatasetName(p.name);
      if (p.name.includes('/')) throw new TypeError(`pool name ${p.name} must not contain "/"`);
      pools.set(p.name, { size: BigInt(p.size), health: p.health ?? 'ONLINE' });
    }
    this.pools = pools;

    this.links = {
      createVnic: (spec) => this.createVnic(spec),
      deleteVnic: (name) => this.deleteVnic(name),
      listVnics: () => this.ready(() => this.state.vnics.map((v) => ({ ...v }))),
      linkExists: (name) => this.ready(() => this.physicalLinks.includes(name) || this.state.vnics.some((v) => v.name === name)),
    };
    this.zones = {
      configure: (spec) => this.configureZone(spec),
      config: (name) => this.zoneConfig(name),
      install: (name, image) => this.installZone(name, image),
      boot: (name) => this.bootZone(name),
      halt: (name) => this.haltZone(name),
      uninstall: (name) => this.uninstallZone(name),
      delete: (name) => this.deleteZone(name),
      list: () => this.ready((): ZoneInfo[] => [...this.zoneMap.values()].map((z) => ({ name: z.spec.name, state: z.state }))),
      exec: (zone, argv, options) => this.exec(zone, argv, options),
    };
    this.datasets = {
      create: (name, props) => this.createDataset(name, props),
      get: (name, props) => this.getDataset(name, props),
      set: (name, props) => this.setDataset(name, props),
      exists: (name) => this.ready(() => this.lookupDataset(validateDatasetName(name)) !== undefined),
      listChildren: (parent) => this.listChildren(parent),
      destroy: (name) => this.destroyDataset(name),
      listPools: () => this.ready(() => this.listPools()),
    };
    this.events = {
      subscribe: (listener) => {
        this.listeners.add(listener);
        return () => {
          this.listeners.delete(listener);
        };
      },
      waitForZoneRunning: (zone, options) => this.waitForZoneRunning(zone, options),
      waitForService: (zone, fmri, states, options) => this.waitForService(zone, fmri, states, options),
    };
  }

  /** new SimHost(options) + start(). */
  static async open(options: SimHostOptions): Promise<SimHost> {
    const host = new SimHost(options);
    await host.start();
    return host;
  }

  /**
   * Loads the state directory (or starts empty), completes what the host itself would have
   * completed meanwhile, and brings back services and Propolis servers of running zones.
   * Idempotent; every other method waits for it.
   */
  start(): Promise<void> {
    this.started ??= this.load();
    return this.started;
  }

  /** The loopback address where the server `zone` runs on `addr` really listens. */
  reachable(zone: string, addr: SocketAddr): SocketAddr {
    const rec = this.zoneMap.get(zone);
    const rt = this.kernel.get(zone);
    if (rec === undefined || rt === undefined || rec.state !== 'running') {
      throw hostError('ZONE_GONE', `zone ${zone} is not running${rec === undefined ? ' (no such zone)' : ` (it is ${rec.state})`}`);
    }
    const host = normalizeHost(addr.host);
    for (const p of rt.propolis.values()) {
      if (p.live && normalizeHost(p.addr.host) === host && p.addr.port === addr.port) return p.server.address;
    }
    throw hostError('ENOTFOUND', `nothing listens on ${addr.host}:${addr.port} in zone ${zone}`);
  }

  /** Stops Propolis servers, timers and waits (those reject with ECANCELED); the state stays on disk. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.started?.catch(() => {});
      this.closeCtl.abort(hostError('ECANCELED', 'the simulated host was closed'));
      const stops: Promise<void>[] = [];
      for (const rt of this.kernel.values()) {
        for (const p of rt.propolis.values()) {
          p.live = false;
          stops.push(p.server.close());
        }
        rt.propolis.clear();
      }
      for (const spare of this.spares.splice(0)) stops.push(spare.server.close());
      await Promise.allSettled(stops);
      await this.writing;
    })();
    return this.closing;
  }

  // ---- test hooks ----

  /**
   * Test hook: the zone is halted, uninstalled and deleted from outside the agent (an operator,
   * a crash), with the events the kernel would send. Its operations under way fail; waits on it
   * reject with ZONE_GONE. Z_NO_ZONE if there is no such zone.
   */
  async simulateZoneFailure(name: string): Promise<void> {
    await this.opened();
    const rec = this.requireZone(name);
    this.life.get(name)?.abort(hostError('ECOMMAND', `zone '${name}' was removed from outside the agent`));
    this.life.delete(name);
    if (this.kernel.has(name)) await this.leaveKernel(rec, 0);
    this.zoneMap.delete(name);
    this.syncZones();
    this.notify(name);
    await this.persist();
  }

  /** Test hook: the simulated Propolis of a propolis-server instance in `zone` (the only one, or by FMRI). */
  propolisFor(zone: string, fmri?: string): SimPropolis | undefined {
    const rt = this.kernel.get(zone);
    if (rt === undefined) return undefined;
    if (fmri !== undefined) return rt.propolis.get(fmri)?.server;
    return [...rt.propolis.values()][0]?.server;
  }

  /**
   * Test hook: that Propolis process dies: its server stops answering at once, its VM is gone,
   * and its SMF instance goes to maintenance. Rejects (ENOTFOUND) if none runs there.
   */
  async crashPropolis(zone: string, fmri?: string): Promise<void> {
    const rt = this.kernel.get(zone);
    const rec = this.zoneMap.get(zone);
    const key = fmri ?? [...(rt?.propolis.keys() ?? [])][0];
    const p = key === undefined ? undefined : rt?.propolis.get(key);
    if (rt === undefined || rec === undefined || key === undefined || p === undefined) {
      throw hostError('ENOTFOUND', `no simulated Propolis runs in zone ${zone}${fmri ? ` for ${fmri}` : ''}`);
    }
    p.live = false;
    rt.propolis.delete(key);
    await p.server.crash();
    delete rec.vms[key];
    const inst = this.instance(rec, key);
    if (inst) inst.state = 'maintenance';
    this.notify(zone);
    await this.persist();
  }

  /** Resolves once every change so far is on disk. */
  async flush(): Promise<void> {
    await this.writing;
    if (this.lastWriteError !== null) throw this.lastWriteError;
  }

  /**
   * Starts `count` Propolis servers ahead of time; each is taken by the next propolis-server
   * instance that starts with no persisted VM (one with a VM gets a server of its own, as
   * before). On a sled Propolis is a process of its own whose start-up does not take the agent's
   * CPU; here it would, on the agent's event loop. The modelled propolisStart latency is waited
   * out all the same. For the boot benchmark; unused servers stop with close().
   */
  async prestartPropolis(count: number): Promise<void> {
    if (!Number.isInteger(count) || count < 0) throw new TypeError(`count must be an integer >= 0, got ${count}`);
    await this.opened();
    for (let i = 0; i < count; i++) {
      let handlers: PropolisHandlers | null = null;
      const server = await SimPropolis.start({
        logger: this.log.child({ component: 'sim-propolis' }),
        latencies: { vmBoot: this.latencies.vmBoot, vmStep: this.latencies.vmStep },
        jitter: (ms) => (handlers === null ? this.jittered(ms) : handlers.jitter(ms)),
        onChange: (snapshot) => handlers?.onChange(snapshot),
      });
      // One request before the run, so the server's first-request set-up (a Node cost; a sled's
      // Propolis is a Rust process) is not taken for the agent's time.
      await fetch(`http://${formatSocketAddr(server.address)}/instance`).then((res) => res.arrayBuffer(), () => {});
      this.spares.push({ server, bind: (h) => { handlers = h; } });
    }
  }

  // ---- modelled time (recordLatencies) ----

  /**
   * Every latency drawn so far for `zone` and for the VNICs its configuration names, oldest
   * first (empty unless recordLatencies). A zone configured again under the same name, or a
   * VNIC created again, starts a new list.
   */
  modelled(zone: string): DrawnLatency[] {
    if (this.drawn === null) return [];
    const nets = this.zoneMap.get(zone)?.spec.nets.map((n) => n.physical) ?? [];
    return [zone, ...nets]
      .flatMap((key) => this.drawn?.get(key) ?? [])
      .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  }

  /**
   * The modelled time of `zone`, ms: the sum of modelled(zone) drawn up to `until`
   * (process.hrtime.bigint(); default now). For an instance asked for once Propolis reports
   * Running, that is its whole start: VNICs, configure, install, boot, network milestone, each
   * zlogin and address, the Propolis service start and the VM's boot, each one waited out in
   * turn (nothing on that path overlaps).
   */
  modelledMs(zone: string, until: bigint = process.hrtime.bigint()): number {
    return this.modelled(zone).reduce((sum, d) => (d.at <= until ? sum + d.ms : sum), 0);
  }

  // ---- loading and saving ----

  private async load(): Promise<void> {
    await mkdir(join(this.stateFile, '..'), { recursive: true });
    const raw = (await readJsonIfExists(this.stateFile)) as PersistedState | null;
    if (raw !== null) {
      if (typeof raw !== 'object' || raw.format !== 1 || !Array.isArray(raw.zones) || !Array.isArray(raw.vnics)) {
        throw new Error(`${this.stateFile} is not a simulated host's state (format 1)`);
      }
      this.state = raw;
    }
    this.state.global ??= { addresses: {} };
    for (const rec of this.state.zones) {
      this.zoneMap.set(rec.spec.name, rec);
      this.life.set(rec.spec.name, new AbortController());
    }
    for (const [name] of this.pools) {
      this.state.datasets[name] ??= { props: {}, creation: Math.floor(Date.now() / 1000), guid: randomGuid() };
    }
    for (const rec of this.zoneMap.values()) {
      switch (rec.state) {
        case 'shutting_down':
          // zoneadmd finished the halt while the agent was away.
          this.clearZoneRuntimeState(rec);
          rec.state = 'installed';
          rec.zoneid = null;
          break;
        case 'ready': {
          // ... and the boot.
          const rt = this.enterKernel(rec, rec.zoneid ?? this.state.nextZoneId++);
          this.after(this.lat('boot', rec.spec.name, 'zone boot (completing)'), rt.ctl.signal, () => this.becomeRunning(rec, rt));
          break;
        }
        case 'running': {
          const rt = this.enterKernel(rec, rec.zoneid ?? this.state.nextZoneId++);
          await this.reviveServices(rec, rt);
          break;
        }
        default:
          break;
      }
    }
    await this.persist();
  }

  private syncZones(): void {
    this.state.zones = [...this.zoneMap.values()];
  }

  /**
   * Writes the state; writes never overlap, and a change made during one is in the next. With
   * writeBehindMs the caller does not wait (see SimHostOptions).
   */
  private persist(): Promise<void> {
    if (this.closing !== null && this.closeCtl.signal.aborted && this.queued === null) {
      // After close(): nothing more is written (the final state is what close() flushed).
      return this.writing;
    }
    const behind = this.writeBehindMs;
    if (this.queued !== null) return behind === null ? this.queued : Promise.resolve();
    const write = this.writing.then(async () => {
      if (behind !== null && behind > 0) await new Promise((resolve) => setTimeout(resolve, behind));
      this.queued = null;
      return this.durable ? writeJsonAtomic(this.stateFile, this.state) : writeJsonRenamed(this.stateFile, this.state);
    });
    this.queued = write;
    this.writing = write.then(
      () => {
        this.lastWriteError = null;
      },
      (err: unknown) => {
        this.lastWriteError = err;
        this.log.error({ err }, 'cannot write the simulated host state');
      },
    );
    return behind === null ? write : Promise.resolve();
  }

  /** A change from a timer (no caller to tell): saved, and waits re-checked. */
  private changed(zone: string): void {
    this.notify(zone);
    void this.persist().catch(() => {});
  }

  private async ready<T>(fn: () => T): Promise<T> {
    await this.opened();
    return fn();
  }

  /** Loaded, and not closed (ECANCELED after close()). */
  private async opened(): Promise<void> {
    await this.start();
    this.assertOpen();
  }

  private assertOpen(): void {
    if (this.closeCtl.signal.aborted) throw this.closeCtl.signal.reason as Error;
  }

  // ---- time ----

  /** A latency for `step`; recorded for `key` (a zone or VNIC name) when recordLatencies. */
  private lat(step: keyof SimLatencies, key?: string, op: string = step): number {
    const ms = this.jittered(this.latencies[step]);
    if (key !== undefined) this.recordDrawn(key, step, op, ms);
    return ms;
  }

  private recordDrawn(key: string, step: keyof SimLatencies, op: string, ms: number): void {
    if (this.drawn === null) return;
    let list = this.drawn.get(key);
    if (list === undefined) this.drawn.set(key, (list = []));
    list.push({ step, op, ms: Math.min(ms, MAX_TIMER_MS), at: process.hrtime.bigint() });
  }

  /** A new zone or VNIC of that name: what was drawn for an earlier one is dropped. */
  private resetDrawn(key: string): void {
    this.drawn?.delete(key);
  }

  private jittered(ms: number): number {
    if (ms <= 0) return 0;
    if (this.jitter === 0) return ms;
    return Math.max(0, ms * (1 + this.jitter * (2 * this.random() - 1)));
  }

  /** Waits `ms` unless a signal (or close()) aborts first: then rejects with its reason. */
  private sleep(ms: number, ...signals: AbortSignal[]): Promise<void> {
    const sources = [this.closeCtl.signal, ...signals];
    const fired = sources.find((s) => s.aborted);
    if (fired !== undefined) return Promise.reject(fired.reason);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (event: Event): void => {
        done();
        reject((event.target as AbortSignal).reason);
      };
      const done = (): void => {
        clearTimeout(timer);
        for (const s of sources) s.removeEventListener('abort', onAbort);
      };
      const timer = setTimeout(() => {
        done();
        resolve();
      }, Math.min(ms, MAX_TIMER_MS));
      for (const s of sources) s.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Runs `fn` after `ms` unless `signal` (or close()) aborts first. */
  private after(ms: number, signal: AbortSignal, fn: () => void | Promise<void>): void {
    const sources = [this.closeCtl.signal, signal];
    if (sources.some((s) => s.aborted)) return;
    const done = (): void => {
      clearTimeout(timer);
      for (const s of sources) s.removeEventListener('abort', done);
    };
    const timer = setTimeout(() => {
      done();
      if (sources.some((s) => s.aborted)) return;
      Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.log.error({ err }, 'simulated host step failed'));
    }, Math.min(ms, MAX_TIMER_MS));
    for (const s of sources) s.addEventListener('abort', done, { once: true });
  }

  // ---- events and waits ----

  private emit(rec: ZoneRecord, zoneid: number, oldstate: ZoneEventState, newstate: ZoneEventState): void {
    const event: ZoneStateEvent = { zonename: rec.spec.name, zoneid, oldstate, newstate, when: process.hrtime.bigint() };
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err }, 'a zone event listener threw');
      }
    }
    this.notify(rec.spec.name);
  }

  /** Re-checks the waits on `zone` (every wait is about one zone). */
  private notify(zone: string): void {
    const set = this.waiters.get(zone);
    if (set !== undefined) for (const w of [...set]) w.check();
  }

  private wait<T>(zone: string, what: string, options: WaitOptions, evaluate: () => { value: T } | { error: Error } | null): Promise<T> {
    const { timeoutMs, signal } = options ?? ({} as WaitOptions);
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(Object.assign(new TypeError('timeoutMs must be a finite number >= 0'), { code: 'ERR_INVALID_ARG_VALUE' }));
    }
    if (signal?.aborted) return Promise.reject(abortError(signal.reason));
    if (this.closeCtl.signal.aborted) return Promise.reject(this.closeCtl.signal.reason);
    const first = evaluate();
    if (first !== null) return 'value' in first ? Promise.resolve(first.value) : Promise.reject(first.error);
    return new Promise<T>((resolve, reject) => {
      const cleanup = (): void => {
        const set = this.waiters.get(zone);
        set?.delete(waiter);
        if (set?.size === 0) this.waiters.delete(zone);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.closeCtl.signal.removeEventListener('abort', onClose);
      };
      const waiter: Waiter = {
        check: () => {
          const r = evaluate();
          if (r === null) return;
          cleanup();
          if ('value' in r) resolve(r.value);
          else reject(r.error);
        },
      };
      const onAbort = (): void => {
        cleanup();
        reject(abortError(signal?.reason));
      };
      const onClose = (): void => {
        cleanup();
        reject(this.closeCtl.signal.reason);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(hostError('ETIMEDOUT', `timed out after ${timeoutMs} ms waiting for ${what}`));
      }, Math.min(timeoutMs, MAX_TIMER_MS));
      let set = this.waiters.get(zone);
      if (set === undefined) this.waiters.set(zone, (set = new Set()));
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.closeCtl.signal.addEventListener('abort', onClose, { once: true });
    });
  }

  /** Tracks "the zone left the kernel" for a wait: ZONE_GONE once it was in and is out again, or is deleted. */
  private goneCheck(zone: string): () => { rec: ZoneRecord } | { error: Error } {
    let sawKernel = false;
    return () => {
      const rec = this.zoneMap.get(zone);
      if (rec === undefined) return { error: hostError('ZONE_GONE', `zone ${zone} does not exist`) };
      if (rec.zoneid !== null) sawKernel = true;
      else if (sawKernel) return { error: hostError('ZONE_GONE', `zone ${zone} left the kernel (halted)`) };
      return { rec };
    };
  }

  private async waitForZoneRunning(zone: string, options: WaitOptions): Promise<void> {
    validateZoneName(zone);
    await this.opened();
    const gone = this.goneCheck(zone);
    return this.wait(zone, `zone ${zone} to be running`, options, () => {
      const g = gone();
      if ('error' in g) return g;
      return g.rec.state === 'running' ? { value: undefined } : null;
    });
  }

  private async waitForService(zone: string, fmri: string, states: readonly SmfState[], options: WaitOptions): Promise<SmfState> {
    validateZoneName(zone);
    assertInstanceFmri(fmri);
    if (!Array.isArray(states) || states.length === 0 || states.some((s) => !(SMF_STATES as readonly string[]).includes(s))) {
      throw Object.assign(new TypeError(`states must be a non-empty array of ${SMF_STATES.join(', ')}`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
    await this.opened();
    const gone = this.goneCheck(zone);
    return this.wait(zone, `${fmri} in zone ${zone} to be ${states.join(' or ')}`, options, () => {
      const g = gone();
      if ('error' in g) return g;
      if (g.rec.state !== 'running') return null;
      const st = this.instance(g.rec, fmri)?.state ?? null;
      return st !== null && states.includes(st) ? { value: st } : null;
    });
  }

  // ---- links ----

  private async createVnic(spec: VnicSpec): Promise<VnicInfo> {
    if (typeof spec !== 'object' || spec === null) throw new InvalidVnicArgumentError('ERR_INVALID_ARG_TYPE', 'the VNIC spec must be an object');
    const name = validateLinkName(spec.name);
    const link = validateLinkName(spec.link);
    const mac = spec.mac === undefined ? randomMac() : normalizeMac(spec.mac);
    const vlan = spec.vlan ?? 0;
    if (typeof vlan !== 'number' || !Number.isInteger(vlan) || vlan < 0 || vlan > 4094) {
      throw new InvalidVnicArgumentError('ERR_OUT_OF_RANGE', `vlan must be an integer from 0 to 4094, got ${String(vlan)}`);
    }
    await this.opened();
    this.resetDrawn(name);
    await this.sleep(this.lat('vnic', name, 'vnic create'));
    if (this.physicalLinks.includes(name) || this.state.vnics.some((v) => v.name === name)) {
      throw hostError('DLADM_STATUS_EXIST', `cannot create VNIC ${name}: object already exists`);
    }
    if (!this.physicalLinks.includes(link)) {
      if (this.state.vnics.some((v) => v.name === link)) {
        throw hostError('DLADM_STATUS_LINKINVAL', `cannot create VNIC ${name} over ${link}: invalid link (a VNIC)`);
      }
      throw hostError('DLADM_STATUS_NOTFOUND', `cannot create VNIC ${name} over ${link}: object not found`);
    }
    const info: VnicInfo = { name, link, mac, vlan };
    this.state.vnics.push(info);
    await this.persist();
    return { ...info };
  }

  private async deleteVnic(name: string): Promise<void> {
    validateLinkName(name);
    await this.opened();
    await this.sleep(this.lat('vnic', name, 'vnic delete'));
    const i = this.state.vnics.findIndex((v) => v.name === name);
    if (i < 0) throw hostError('DLADM_STATUS_NOTFOUND', `cannot delete VNIC ${name}: object not found`);
    this.state.vnics.splice(i, 1);
    await this.persist();
  }

  // ---- zones ----

  private requireZone(name: string): ZoneRecord {
    const rec = this.zoneMap.get(name);
    if (rec === undefined) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
    return rec;
  }

  private badState(name: string, message: string): HostError {
    return hostError('Z_BAD_ZONE_STATE', `zoneadm: zone '${name}': ${message}`);
  }

  private async configureZone(spec: ZoneSpec): Promise<void> {
    if (typeof spec !== 'object' || spec === null) throw new TypeError('the zone spec must be an object');
    validateZoneName(spec.name);
    if (typeof spec.brand !== 'string' || spec.brand.length === 0) throw new TypeError('brand must be a non-empty string');
    if (typeof spec.zonepath !== 'string' || !isAbsolute(spec.zonepath)) throw new TypeError(`zonepath must be an absolute path, got ${JSON.stringify(spec.zonepath)}`);
    for (const n of spec.nets ?? []) validateLinkName(n.physical);
    for (const d of spec.datasets ?? []) validateDatasetName(d.name);
    for (const d of spec.devices ?? []) {
      if (typeof d.match !== 'string' || !d.match.startsWith('/')) throw new TypeError(`device match must be an absolute path glob, got ${JSON.stringify(d.match)}`);
    }
    const clean: ZoneSpec = {
      name: spec.name,
      brand: spec.brand,
      zonepath: spec.zonepath,
      autoboot: spec.autoboot ?? false,
      nets: (spec.nets ?? []).map((n) => ({ physical: n.physical })),
      devices: (spec.devices ?? []).map((d) => ({ match: d.match })),
      datasets: (spec.datasets ?? []).map((d) => ({ name: d.name })),
    };
    await this.opened();
    const inUse = () => hostError('Z_NAME_IN_USE', `cannot configure zone ${spec.name}: Zone name already in use`);
    if (this.zoneMap.has(spec.name)) throw inUse();
    this.resetDrawn(spec.name);
    await this.sleep(this.lat('configure', spec.name, 'zone configure'));
    if (this.zoneMap.has(spec.name)) throw inUse();
    const rec: ZoneRecord = { spec: clean, state: 'configured', image: null, zoneid: null, addresses: {}, routes: [], services: {}, vms: {} };
    this.zoneMap.set(spec.name, rec);
    this.life.set(spec.name, new AbortController());
    this.syncZones();
    await this.persist();
  }

  private async zoneConfig(name: string): Promise<ZoneSpec> {
    validateZoneName(name);
    await this.opened();
    return structuredClone(this.requireZone(name).spec);
  }

  private async installZone(name: string, image: string): Promise<void> {
    validateZoneName(name);
    if (typeof image !== 'string' || !image.startsWith('/') || image.includes('\0')) {
      throw new TypeError(`the image must be an absolute path, got ${JSON.stringify(image)}`);
    }
    await this.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'install operation is invalid for running zones.');
    if (rec.state === 'installed') throw this.badState(name, 'is already installed.');
    if (rec.state === 'incomplete') throw this.badState(name, 'zone is incomplete; uninstall required.');
    rec.state = 'incomplete';
    rec.image = image;
    await this.persist();
    await this.sleep(this.lat('install', name, 'zone install'), this.lifeSignal(name));
    rec.state = 'installed';
    rec.services = imageServices(image);
    this.notify(name);
    await this.persist();
  }

  private async uninstallZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'uninstall operation is invalid for running zones.');
    if (rec.state === 'configured') throw this.badState(name, "is already in state 'configured'.");
    rec.state = 'incomplete';
    await this.persist();
    await this.sleep(this.lat('uninstall', name, 'zone uninstall'), this.lifeSignal(name));
    rec.state = 'configured';
    rec.image = null;
    rec.services = {};
    this.notify(name);
    await this.persist();
  }

  /** The zone's lifetime signal; Z_NO_ZONE if a concurrent operation deleted it meanwhile. */
  private lifeSignal(name: string): AbortSignal {
    const life = this.life.get(name);
    if (life === undefined) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
    return life.signal;
  }

  private async deleteZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.opened();
    const rec = this.requireZone(name);
    if (rec.state !== 'configured') {
      throw hostError('Z_BAD_ZONE_STATE', `cannot delete zone ${name}: Zone state is invalid for the requested operation (it is ${rec.state})`);
    }
    await this.sleep(this.lat('configure', name, 'zone delete'));
    if (this.zoneMap.get(name) !== rec) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
    if (rec.state !== 'configured') {
      throw hostError('Z_BAD_ZONE_STATE', `cannot delete zone ${name}: Zone state is invalid for the requested operation (it is ${rec.state})`);
    }
    this.life.get(name)?.abort(hostError('Z_NO_ZONE', `zone ${name} was deleted`));
    this.life.delete(name);
    this.zoneMap.delete(name);
    this.syncZones();
    this.notify(name);
    await this.persist();
  }

  private enterKernel(rec: ZoneRecord, zoneid: number): KernelRuntime {
    rec.zoneid = zoneid;
    const rt: KernelRuntime = { zoneid, ctl: new AbortController(), starting: new Map(), propolis: new Map(), afterNetwork: [], halting: null };
    this.kernel.set(rec.spec.name, rt);
    return rt;
  }

  private async bootZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'boot operation is invalid for running zones.');
    if (rec.state !== 'installed') throw this.badState(name, 'must be installed before boot.');
    const rt = this.enterKernel(rec, this.state.nextZoneId++);
    rec.state = 'ready';
    this.emit(rec, rt.zoneid, 'uninitialized', 'initialized');
    this.emit(rec, rt.zoneid, 'initialized', 'ready');
    await this.persist();
    await this.sleep(this.lat('boot', name, 'zone boot'), rt.ctl.signal);
    this.becomeRunning(rec, rt);
    await this.persist();
  }

  /** ready -> running, and the zone's services start. */
  private becomeRunning(rec: ZoneRecord, rt: KernelRuntime): void {
    rec.state = 'running';
    for (const [svc, service] of Object.entries(rec.services)) {
      for (const [name, inst] of Object.entries(service.instances)) {
        if (inst.temporary ?? inst.enabled) this.startInstance(rec, rt, svc, name);
        else inst.state = 'disabled';
      }
    }
    this.emit(rec, rt.zoneid, 'ready', 'running');
    this.changed(rec.spec.name);
  }

  private async haltZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.opened();
    const rec = this.requireZone(name);
    const rt = this.kernel.get(name);
    if (rt === undefined) {
      if (rec.state === 'configured') throw this.badState(name, "cannot manage a zone which is in state 'configured'");
      return; // "zone is already halted": not an error
    }
    await this.leaveKernel(rec, this.lat('halt', name, 'zone halt'));
  }

  /** Takes the zone out of the kernel (halt): events, services and VMs gone, -> installed. */
  private leaveKernel(rec: ZoneRecord, ms: number): Promise<void> {
    const name = rec.spec.name;
    const rt = this.kernel.get(name)!;
    rt.halting ??= (async () => {
      const old = kernelEventState(rec.state);
      rt.ctl.abort(hostError('ECOMMAND', `zone '${name}' was halted`));
      rec.state = 'shutting_down';
      this.emit(rec, rt.zoneid, old, 'shutting_down');
      const stops = [...rt.propolis.values()].map((p) => {
        p.live = false;
        return p.server.close();
      });
      rt.propolis.clear();
      await Promise.allSettled(stops);
      this.clearZoneRuntimeState(rec);
      await this.persist();
      await this.sleep(ms);
      this.kernel.delete(name);
      rec.state = 'installed';
      rec.zoneid = null;
      this.emit(rec, rt.zoneid, 'shutting_down', 'uninitialized');
      await this.persist();
    })();
    return rt.halting;
  }

  /** What does not survive a halt: addresses, routes, temporary enables, service states, VMs. */
  private clearZoneRuntimeState(rec: ZoneRecord): void {
    rec.addresses = {};
    rec.routes = [];
    rec.vms = {};
    for (const service of Object.values(rec.services)) {
      for (const inst of Object.values(service.instances)) {
        inst.temporary = null;
        inst.state = null;
      }
    }
  }

  // ---- SMF ----

  private instance(rec: ZoneRecord, fmri: string): SmfInstance | undefined {
    const { service, instance } = splitFmri(fmri);
    if (instance === null) return undefined;
    return rec.services[service]?.instances[instance];
  }

  private networkOnline(rec: ZoneRecord): boolean {
    return this.instance(rec, NETWORK_MILESTONE)?.state === 'online';
  }

  /** An enabled instance goes offline, then online after its start-up (after the network milestone). */
  private startInstance(rec: ZoneRecord, rt: KernelRuntime, svc: string, name: string): void {
    const inst = rec.services[svc]?.instances[name];
    if (inst === undefined) return;
    const fmri = `${svc}:${name}`;
    rt.starting.get(fmri)?.abort();
    const ctl = new AbortController();
    rt.starting.set(fmri, ctl);
    inst.state = 'offline';
    const milestone = fmri === NETWORK_MILESTONE;
    const propolis = svc === PROPOLIS_SERVICE;
    const { signal, dispose } = anySignal([rt.ctl.signal, ctl.signal]);
    const ms = this.lat(milestone ? 'network' : propolis ? 'propolisStart' : 'serviceStart', rec.spec.name,
      milestone ? 'network milestone' : propolis ? 'propolis start' : `service start ${fmri}`);
    const online = (): void => {
      rt.starting.delete(fmri);
      if (milestone) {
        const deferred = rt.afterNetwork.splice(0);
        for (const fn of deferred) fn();
      }
      this.changed(rec.spec.name);
    };
    const go = (): void => {
      if (propolis) {
        // The server's own start-up counts towards the modelled latency.
        this.after(0, signal, async () => {
          try {
            await this.startPropolis(rec, rt, fmri, signal, ms);
            if (!signal.aborted) online();
          } finally {
            dispose();
          }
        });
        return;
      }
      this.after(ms, signal, () => {
        dispose();
        inst.state = 'online';
        online();
      });
    };
    if (milestone || this.networkOnline(rec)) go();
    else rt.afterNetwork.push(go);
  }

  /**
   * A Propolis server for the instance (with its persisted VM, if any), online `totalMs` after
   * this was called; maintenance instead without a usable config/server_addr.
   */
  private async startPropolis(rec: ZoneRecord, rt: KernelRuntime, fmri: string, signal?: AbortSignal, totalMs = 0): Promise<void> {
    const begun = performance.now();
    const inst = this.instance(rec, fmri);
    if (inst === undefined) return;
    let addr: SocketAddr;
    try {
      addr = parseSocketAddr(inst.pgs.config?.props.server_addr ?? '');
    } catch (err) {
      this.log.warn({ err, zone: rec.spec.name, fmri }, 'propolis-server has no usable config/server_addr');
      await this.sleep(totalMs - (performance.now() - begun), ...(signal ? [signal] : [])).catch(() => {});
      if (!signal?.aborted) inst.state = 'maintenance';
      return;
    }
    const entry: RunningPropolis = { server: undefined as unknown as SimPropolis, addr, live: true };
    // The VM's state as the server last reported it: which step its next latency is for.
    let vmState = rec.vms[fmri]?.state ?? 'Creating';
    const handlers: PropolisHandlers = {
      jitter: (ms) => {
        const drawn = this.jittered(ms);
        this.recordDrawn(rec.spec.name, vmState === 'Starting' ? 'vmBoot' : 'vmStep', `vm ${vmState} -> next`, drawn);
        return drawn;
      },
      onChange: (snapshot) => {
        vmState = snapshot.state;
        if (!entry.live) return;
        rec.vms[fmri] = snapshot;
        void this.persist().catch(() => {});
      },
    };
    const spare = rec.vms[fmri] === undefined ? this.spares.shift() : undefined;
    spare?.bind(handlers);
    const server = spare?.server ?? await SimPropolis.start({
      logger: this.log.child({ zone: rec.spec.name, propolis: fmri }),
      latencies: { vmBoot: this.latencies.vmBoot, vmStep: this.latencies.vmStep },
      ...handlers,
      initial: rec.vms[fmri],
    });
    entry.server = server;
    const startup = performance.now() - begun;
    // A server slower to start than the modelled latency: that extra is the sim's time too.
    if (startup > totalMs && totalMs > 0) this.recordDrawn(rec.spec.name, 'propolisStart', 'propolis start (server start-up over the drawn latency)', startup - totalMs);
    const stillWanted = await this.sleep(totalMs - (performance.now() - begun), rt.ctl.signal, ...(signal ? [signal] : [])).then(
      () => true,
      () => false,
    );
    if (!stillWanted) {
      entry.live = false;
      await server.close();
      return;
    }
    rt.propolis.set(fmri, entry);
    inst.state = 'online';
  }

  private async stopPropolis(rec: ZoneRecord, rt: KernelRuntime, fmri: string): Promise<void> {
    const p = rt.propolis.get(fmri);
    delete rec.vms[fmri];
    if (p === undefined) return;
    p.live = false;
    rt.propolis.delete(fmri);
    await p.server.close();
  }

  /** After a restart of the agent: services of a running zone are as they were, Propolis servers come back. */
  private async reviveServices(rec: ZoneRecord, rt: KernelRuntime): Promise<void> {
    for (const [svc, service] of Object.entries(rec.services)) {
      for (const [name, inst] of Object.entries(service.instances)) {
        const fmri = `${svc}:${name}`;
        if (!(inst.temporary ?? inst.enabled)) {
          inst.state = 'disabled';
        } else if (inst.state === 'online' && svc === PROPOLIS_SERVICE) {
          await this.startPropolis(rec, rt, fmri);
        } else if (inst.state !== 'online' && inst.state !== 'maintenance') {
          this.startInstance(rec, rt, svc, name);
        }
      }
    }
  }

  // ---- exec ----

  private async exec(zone: string, argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (zone !== GLOBAL_ZONE) validateZoneName(zone);
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((w) => typeof w !== 'string' || w.includes('\0'))) {
      throw new TypeError('argv must be a non-empty array of strings without NUL bytes');
    }
    if (zone === GLOBAL_ZONE) return this.execGlobal(argv);
    await this.opened();
    const failure = (exitCode: number, stderr: string, stdout = ''): SimCommandError =>
      Object.assign(hostError('ECOMMAND', `zlogin ${zone} ${argv.join(' ')}: ${stderr.trim()}`), { exitCode, stdout, stderr });
    const rec = this.zoneMap.get(zone);
    if (rec === undefined) throw failure(1, `zlogin: zone '${zone}' unknown\n`);
    const rt = this.kernel.get(zone);
    if (rec.state !== 'running' || rt === undefined) {
      throw failure(1, `zlogin: login allowed only to running zones (${zone} is '${rec.state}').\n`);
    }
    const signals = [rt.ctl.signal];
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = options.timeoutMs;
    if (typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs >= 0) {
      const ctl = new AbortController();
      timer = setTimeout(() => ctl.abort(failure(137, `timed out after ${timeoutMs} ms`)), Math.min(timeoutMs, MAX_TIMER_MS));
      signals.push(ctl.signal);
    }
    const { signal, dispose } = anySignal(signals);
    try {
      await this.sleep(this.lat('exec', zone, `zlogin ${argv.slice(0, 2).join(' ')}`), signal);
      const out = await this.runCommand(rec, rt, argv, signal);
      if (!(argv[0] === 'ipadm' && argv[1] === 'show-addr')) await this.persist();
      return { stdout: out, stderr: '' };
    } catch (err) {
      if (err instanceof CommandFailure) throw failure(err.exitCode, err.stderr);
      throw err;
    } finally {
      clearTimeout(timer);
      dispose();
    }
  }

  /** A command in the global zone: ipadm over the host's own links and addresses. */
  private async execGlobal(argv: readonly string[]): Promise<ExecResult> {
    const [cmd, ...args] = argv as [string, ...string[]];
    if (!GLOBAL_COMMANDS.includes(cmd)) throw new TypeError(`the global zone runs only ${GLOBAL_COMMANDS.join(', ')}, not ${JSON.stringify(cmd)}`);
    await this.opened();
    const usage = (): never => fail(`${cmd}: unsupported arguments in the simulated global zone: ${args.join(' ')}`, 2);
    try {
      const out = await this.ipadm(this.globalZone(), args, this.closeCtl.signal, usage);
      if (args[0] !== 'show-addr') await this.persist();
      return { stdout: out, stderr: '' };
    } catch (err) {
      if (err instanceof CommandFailure) {
        throw Object.assign(hostError('ECOMMAND', `${argv.join(' ')}: ${err.stderr.trim()}`), { exitCode: err.exitCode, stdout: '', stderr: err.stderr });
      }
      throw err;
    }
  }

  /** The global zone as the in-zone commands see a zone: its links are the host's. */
  private globalZone(): ZoneRecord {
    const links = [...this.physicalLinks, ...this.state.vnics.map((v) => v.name)];
    return {
      spec: { name: GLOBAL_ZONE, brand: 'global', zonepath: '/', nets: links.map((physical) => ({ physical })), devices: [], datasets: [] },
      state: 'running',
      image: null,
      zoneid: 0,
      addresses: this.state.global!.addresses,
      routes: [],
      services: {},
      vms: {},
    };
  }

  private async runCommand(rec: ZoneRecord, rt: KernelRuntime, argv: readonly string[], signal: AbortSignal): Promise<string> {
    const [cmd, ...args] = argv as [string, ...string[]];
    const usage = (): never => fail(`${cmd}: unsupported arguments in a simulated zone: ${args.join(' ')}`, 2);
    switch (cmd) {
      case 'ipadm':
        return this.ipadm(rec, args, signal, usage);
      case 'svccfg':
        return this.svccfg(rec, args, usage);
      case 'svcadm':
        return this.svcadm(rec, rt, args, usage);
      case 'route': {
        if (args.length !== 5 || args[0] !== 'add' || args[1] !== '-inet6' || args[2] !== 'default' || args[3] !== '-inet6') return usage();
        const gw = args[4]!;
        if (!isIPv6(gw)) fail(`route: bad address: ${gw}`);
        if (!rec.routes.includes(gw)) rec.routes.push(gw);
        return `add net default: gateway ${gw}\n`;
      }
      default:
        return fail(`${cmd}: command not found`, 127);
    }
  }

  private async ipadm(rec: ZoneRecord, args: readonly string[], signal: AbortSignal, usage: () => never): Promise<string> {
    const sub = args[0];
    if (sub === 'show-addr') {
      if (args.length !== 5 || args[1] !== '-p' || args[2] !== '-o' || args[3] !== 'ADDR') return usage();
      const a = rec.addresses[args[4]!];
      if (a === undefined) fail('ipadm: Address object not found');
      return `${a!.addr}\n`;
    }
    if (sub === 'delete-addr') {
      if (args.length !== 2) return usage();
      if (rec.addresses[args[1]!] === undefined) fail('ipadm: Could not delete address: Address object not found');
      delete rec.addresses[args[1]!];
      return '';
    }
    if (sub !== 'create-addr' || args[1] !== '-t' || args[2] !== '-T') return usage();
    let address: ZoneAddress;
    let addrobj: string;
    if (args[3] === 'addrconf' && args.length === 5) {
      addrobj = args[4]!;
      address = { type: 'addrconf', addr: '' };
    } else if (args[3] === 'static' && args.length === 7 && args[4] === '-a') {
      addrobj = args[6]!;
      const problem = cidrProblem(args[5]!);
      if (problem !== null) fail(`ipadm: Invalid argument provided: ${args[5]}: ${problem}`);
      address = { type: 'static', addr: args[5]! };
    } else {
      return usage();
    }
    const m = ADDROBJ_RE.exec(addrobj);
    if (!m) fail(`ipadm: Invalid argument provided: address object name ${addrobj}`);
    const vnic = m![1]!;
    const check = (): void => {
      if (!rec.spec.nets.some((n) => n.physical === vnic)) fail('ipadm: Could not create address: No such interface');
      if (rec.addresses[addrobj] !== undefined) fail('ipadm: Could not create address: Address object already exists');
      if (address.type === 'static') {
        const ip = address.addr.split('/')[0]!;
        if (Object.values(rec.addresses).some((a) => a.addr.split('/')[0] === ip)) fail('ipadm: Could not create address: Address already in use');
      }
    };
    check();
    await this.sleep(this.lat('address', rec.spec.name, 'ipadm create-addr'), signal);
    check();
    if (address.type === 'addrconf') {
      const mac = this.state.vnics.find((v) => v.name === vnic)?.mac ?? '02:08:20:00:00:00';
      address = { type: 'addrconf', addr: `${linkLocalFor(mac)}/10` };
    }
    rec.addresses[addrobj] = address;
    return '';
  }

  /** The service or instance an FMRI names, or exit 1 as svccfg does. */
  private smfEntity(rec: ZoneRecord, fmri: string): { pgs: Record<string, SmfPg> } {
    const service = rec.services[fmri];
    if (service !== undefined) return service;
    const inst = this.instance(rec, fmri);
    if (inst !== undefined) return inst;
    return fail(`svccfg: Pattern '${fmri}' doesn't match any instances or services`);
  }

  private svccfg(rec: ZoneRecord, args: readonly string[], usage: () => never): string {
    if (args[0] === 'import') {
      if (args.length !== 2) return usage();
      const known = KNOWN_MANIFESTS.get(args[1]!);
      const m = SITE_MANIFEST_RE.exec(args[1]!);
      if (known === undefined && !m) fail(`svccfg: failed to open "${args[1]}": No such file or directory`);
      const svc = known?.service ?? `svc:/system/illumos/${m![1]}`;
      const service = (rec.services[svc] ??= { pgs: {}, instances: {} });
      if (known?.defaultInstance ?? true) service.instances.default ??= { enabled: false, temporary: null, state: 'disabled', pgs: {} };
      return '';
    }
    if (args[0] !== '-s' || args.length < 3) return usage();
    const fmri = args[1]!;
    const verb = args[2];
    switch (verb) {
      case 'add': {
        if (args.length !== 4) return usage();
        const service = rec.services[fmri];
        if (service === undefined) fail(`svccfg: Pattern '${fmri}' doesn't match any services`);
        const name = args[3]!;
        if (!INSTANCE_RE.test(name)) fail(`svccfg: Invalid name "${name}".`);
        if (service!.instances[name] !== undefined) fail(`svccfg: Instance "${name}" already exists`);
        service!.instances[name] = { enabled: false, temporary: null, state: 'disabled', pgs: {} };
        return '';
      }
      case 'addpg': {
        if (args.length !== 5) return usage();
        const entity = this.smfEntity(rec, fmri);
        const [pg, type] = [args[3]!, args[4]!];
        if (!PG_RE.test(pg)) fail(`svccfg: Invalid property group name "${pg}".`);
        entity.pgs[pg] ??= { type, props: {} };
        return '';
      }
      case 'setprop': {
        if (args.length !== 4) return usage();
        const entity = this.smfEntity(rec, fmri);
        const m = /^([^/=]+)\/([^=]+)=(.*)$/s.exec(args[3]!);
        if (!m) return usage();
        const group = entity.pgs[m[1]!];
        if (group === undefined) fail(`svccfg: No such property group "${m[1]}".`);
        group!.props[m[2]!] = m[3]!;
        return '';
      }
      case 'refresh':
        if (args.length !== 3) return usage();
        this.smfEntity(rec, fmri);
        return '';
      default:
        return usage();
    }
  }

  private async svcadm(rec: ZoneRecord, rt: KernelRuntime, args: readonly string[], usage: () => never): Promise<string> {
    if (args.length !== 3 || (args[0] !== 'enable' && args[0] !== 'disable') || args[1] !== '-t') return usage();
    const fmri = args[2]!;
    const inst = this.instance(rec, fmri);
    if (inst === undefined) return fail(`svcadm: Pattern '${fmri}' doesn't match any instances`);
    const { service, instance } = splitFmri(fmri);
    if (args[0] === 'enable') {
      inst.temporary = true;
      if (inst.state !== 'online' && inst.state !== 'offline') this.startInstance(rec, rt, service, instance!);
    } else {
      inst.temporary = false;
      rt.starting.get(fmri)?.abort();
      rt.starting.delete(fmri);
      if (service === PROPOLIS_SERVICE) await this.stopPropolis(rec, rt, fmri);
      inst.state = 'disabled';
    }
    this.notify(rec.spec.name);
    return '';
  }

  // ---- datasets ----

  private lookupDataset(name: string): DatasetRecord | undefined {
    const pool = name.split('/')[0]!;
    if (!this.pools.has(pool)) return undefined;
    return this.state.datasets[name];
  }

  private requireDataset(name: string, action: string): DatasetRecord {
    const ds = this.lookupDataset(name);
    if (ds === undefined) throw hostError('EZFS_NOENT', `${action}: dataset does not exist`);
    return ds;
  }

  private descendants(name: string): string[] {
    const prefix = `${name}/`;
    return Object.keys(this.state.datasets).filter((n) => n.startsWith(prefix));
  }

  /** Checks and canonicalises properties for create/set (zfs_valid_proplist). */
  private validProps(props: Record<string, string>, action: string): Record<string, string> {
    const checked = validatePropertyMap(props);
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(checked)) {
      if (isUserPropertyName(key)) {
        out[key] = value;
        continue;
      }
      const canonical = ZFS_ALIASES[key] ?? key;
      const desc = ZFS_PROPS[canonical];
      if (desc === undefined) throw hostError('EZFS_BADPROP', `${action}: invalid property '${key}'`);
      if (desc.readonly) throw hostError('EZFS_PROPREADONLY', `${action}: '${key}' is readonly`);
      if (desc.values !== undefined && !desc.values.includes(value)) {
        throw hostError('EZFS_BADPROP', `${action}: '${key}' must be one of '${desc.values.join(' | ')}'`);
      }
      if (desc.number) {
        const n = value === 'none' ? '0' : nicestrtonum(value);
        if (n === null) throw hostError('EZFS_BADPROP', `${action}: bad numeric value '${value}'`);
        out[canonical] = n;
        continue;
      }
      if (canonical === 'mountpoint' && !(value.startsWith('/') || value === 'none' || value === 'legacy')) {
        throw hostError('EZFS_BADPROP', `${action}: 'mountpoint' must be an absolute path, 'none', or 'legacy'`);
      }
      out[canonical] = value;
    }
    return out;
  }

  private async createDataset(name: string, props: Record<string, string> = {}): Promise<void> {
    validateDatasetName(name);
    if (parentDataset(name) === null) throw new InvalidDatasetNameError(name, 'a pool name alone: a dataset needs a parent');
    const action = `cannot create '${name}'`;
    const valid = this.validProps(props, action);
    await this.opened();
    await this.sleep(this.lat('dataset'));
    const pool = name.split('/')[0]!;
    if (!this.pools.has(pool)) throw hostError('EZFS_NOENT', `${action}: no such pool '${pool}'`);
    if (this.lookupDataset(parentDataset(name)!) === undefined) throw hostError('EZFS_NOENT', `${action}: parent does not exist`);
    if (this.lookupDataset(name) !== undefined) throw hostError('EZFS_EXISTS', `${action}: dataset already exists`);
    this.state.datasets[name] = { props: valid, creation: Math.floor(Date.now() / 1000), guid: randomGuid() };
    await this.persist();
  }

  private async setDataset(name: string, props: Record<string, string>): Promise<void> {
    validateDatasetName(name);
    const action = `cannot set property for '${name}'`;
    const valid = this.validProps(props, action);
    await this.opened();
    await this.sleep(this.lat('dataset'));
    const ds = this.requireDataset(name, action);
    Object.assign(ds.props, valid);
    await this.persist();
  }

  private async getDataset(name: string, props: readonly string[]): Promise<Record<string, string | null>> {
    validateDatasetName(name);
    if (!Array.isArray(props) || props.some((p) => typeof p !== 'string' || p.length === 0)) {
      throw new TypeError('props must be an array of property names');
    }
    await this.opened();
    const action = `cannot get properties of '${name}'`;
    const ds = this.requireDataset(name, action);
    const out: Record<string, string | null> = {};
    for (const asked of props) {
      if (isUserPropertyName(asked)) {
        out[asked] = this.inherited(name, asked);
        continue;
      }
      const prop = ZFS_ALIASES[asked] ?? asked;
      if (ZFS_PROPS[prop] === undefined) throw hostError('EZFS_BADPROP', `${action}: invalid property '${asked}'`);
      out[asked] = this.propValue(name, ds, prop);
    }
    return out;
  }

  /** A property's own value, else the nearest ancestor's; null if none has it. */
  private inherited(name: string, prop: string): string | null {
    for (let n: string | null = name; n !== null; n = parentDataset(n)) {
      const v = this.state.datasets[n]?.props[prop];
      if (v !== undefined) return v;
    }
    return null;
  }

  private propValue(name: string, ds: DatasetRecord, prop: string): string | null {
    const pool = name.split('/')[0]!;
    const used = DATASET_BYTES * BigInt(1 + this.descendants(name).length);
    switch (prop) {
      case 'type': return 'filesystem';
      case 'name': return name;
      case 'creation': return String(ds.creation);
      case 'guid': return ds.guid;
      case 'compressratio': return '1.00x';
      case 'origin': return null;
      case 'used': return used.toString();
      case 'referenced': return DATASET_BYTES.toString();
      case 'available': {
        const size = this.pools.get(pool)!.size;
        const alloc = DATASET_BYTES * BigInt(1 + this.descendants(pool).length);
        let avail = size > alloc ? size - alloc : 0n;
        const quota = BigInt(ds.props.quota ?? '0');
        if (quota !== 0n) {
          const room = quota > used ? quota - used : 0n;
          if (room < avail) avail = room;
        }
        return avail.toString();
      }
      case 'mounted': {
        const mp = this.propValue(name, ds, 'mountpoint');
        const mountable = mp !== 'none' && mp !== 'legacy'
          && this.propValue(name, ds, 'canmount') !== 'off' && this.propValue(name, ds, 'zoned') !== 'on';
        return mountable ? 'yes' : 'no';
      }
      default:
        break;
    }
    const own = ds.props[prop];
    if (own !== undefined) return own;
    const desc = ZFS_PROPS[prop]!;
    if (desc.inherit) {
      for (let anc = parentDataset(name); anc !== null; anc = parentDataset(anc)) {
        const v = this.state.datasets[anc]?.props[prop];
        if (v === undefined) continue;
        if (prop === 'mountpoint' && v.startsWith('/')) return `${v === '/' ? '' : v}/${name.slice(anc.length + 1)}`;
        return v;
      }
    }
    if (prop === 'mountpoint') return `/${name}`;
    return desc.def ?? null;
  }

  private async listChildren(parent: string): Promise<string[]> {
    validateDatasetName(parent);
    await this.opened();
    this.requireDataset(parent, `cannot list '${parent}'`);
    const prefix = `${parent}/`;
    return Object.keys(this.state.datasets)
      .filter((n) => n.startsWith(prefix) && !n.slice(prefix.length).includes('/'))
      .sort();
  }

  private async destroyDataset(name: string): Promise<void> {
    validateDatasetName(name);
    await this.opened();
    const action = `cannot destroy '${name}'`;
    await this.sleep(this.lat('dataset'));
    this.requireDataset(name, action);
    if (parentDataset(name) === null) throw hostError('EZFS_BADTYPE', `${action}: operation does not apply to pools`);
    if (this.descendants(name).length > 0) throw hostError('EZFS_EXISTS', `${action}: dataset already exists (it has children)`);
    delete this.state.datasets[name];
    await this.persist();
  }

  private listPools(): PoolInfo[] {
    return [...this.pools].map(([name, p]) => {
      const allocated = DATASET_BYTES * BigInt(1 + this.descendants(name).length);
      return { name, size: p.size, allocated, free: p.size > allocated ? p.size - allocated : 0n, health: p.health };
    });
  }
}

function randomMac(): string {
  // randomInt draws from a cached pool: randomBytes(3) cost 5-60 µs a call here, 5 ms of the
  // agent's loop when 100 VNICs are made at once.
  const n = randomInt(0, 2 ** 24);
  return ['02', '08', '20', ...[n >> 16, (n >> 8) & 0xff, n & 0xff].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

function randomGuid(): string {
  return (BigInt(randomInt(1, 2 ** 48 - 1)) * 65536n + BigInt(randomInt(0, 65535))).toString();
}

/** writeJsonAtomic without the fsyncs (SimHostOptions.durable = false): the same file, the same atomic rename. */
async function writeJsonRenamed(path: string, value: unknown): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
