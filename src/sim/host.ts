// The simulated host: zones, links, datasets, zone-state events, SMF and simulated Propolis
// servers, in pure TypeScript, with the same error codes and command semantics as the illumos
// backend (src/host/index.ts, src/host/commands.ts). Its state is one JSON file in a directory,
// written atomically after every change, so a new SimHost on the same directory finds what an
// earlier process left: zones that were running still run (as zones outlive the agent on a
// sled), enabled services come back online, and each Propolis comes back with its VM's state on
// a new loopback port (which is what reachable() is for).
//
// One module per OS subsystem, named as in src/illumos/: vnic.ts (links), zones.ts (zonecfg,
// zoneadm, zlogin), zfs.ts (pools and filesystems), smf.ts (services, and the Propolis a
// propolis-server instance runs), events.ts (zone-state events and waits), inzone.ts (the
// commands run in a zone), opte.ts (OPTE's xde ports and the dataplane they make: trace()). Each owns its part of the state; SimHost composes them, loads and
// writes the state, and keeps the modelled clock (machine.ts is what they share of it).
//
// Time is modelled, not measured: each step takes a configured latency (with optional jitter),
// by a timer. Nothing polls: waits are released by the change itself.
//
// Test hooks: simulateZoneFailure(), propolisFor(), crashPropolis() (see each).
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { basename, dirname, join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { SocketAddr } from '../common/address.js';
import { readJsonIfExists, writeJsonAtomic } from '../common/persist.js';
import {
  hostError,
  type Host,
  type HostDatasets,
  type HostEvents,
  type HostLinks,
  type HostZones,
  type VnicInfo,
} from '../host/index.js';
import { jittered, mulberry32 } from '../common/random.js';
import { SimZoneEvents } from './events.js';
import { emptySimOpteState, OPTEADM_CALL_MS, SimOpte, type SimOpteState, type TraceAnswer, type TracePacket } from './opte.js';
import { SimInZone, type ZoneAddress } from './inzone.js';
import { MAX_TIMER_MS, type SimMachine } from './machine.js';
import { SimPropolis } from './propolis.js';
import { SimSmf, type RunningPropolis } from './smf.js';
import { type LinkZone, SimLinks } from './vnic.js';
import { SimZfs, type DatasetRecord, type SimPoolConfig } from './zfs.js';
import { SimZones, type ZoneRecord } from './zones.js';

export type { SimPoolConfig } from './zfs.js';
export type { SimCommandError } from './zones.js';

// ---- configuration ----

/** Modelled durations, ms. */
export interface SimLatencies {
  /** zonecfg: a zone configuration written. */
  configure: number;
  /** zoneadm install: the image unpacked. */
  install: number;
  /** zoneadm clone: an installed zone's zonepath ZFS-cloned, with zoneadm's bookkeeping. */
  clone: number;
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
  /** One opteadm run (create-xde, set-fw-rules, set-v2p, ...). */
  opte: number;
}

/** Nothing takes time: for tests. The constructor's default. */
export const ZERO_LATENCIES: Readonly<SimLatencies> = Object.freeze({
  configure: 0,
  install: 0,
  clone: 0,
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
  opte: 0,
});

/** The shape of a real sled (docs/architecture.md and docs/benchmarks.md): for benchmarks. */
export const REALISTIC_LATENCIES: Readonly<SimLatencies> = Object.freeze({
  configure: 10,
  install: 1500,
  // An estimate, not a measurement: zfs snapshot + zfs clone are each one ZFS sync task, which
  // waits for a transaction group to commit (tens of ms on an idle pool, more under write load),
  // plus zoneadm's lock, index updates and brand hooks; ~100-300 ms in all. No Oxide log shows it.
  clone: 200,
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
  opte: OPTEADM_CALL_MS,
});

/** The jitter to use with REALISTIC_LATENCIES. */
export const REALISTIC_JITTER = 0.2;

export const DEFAULT_SIM_LINKS: readonly string[] = ['stub0', 'net0', 'net1'];

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
  /**
   * Where the simulated Propolis servers run: 'in-process' (default), on this event loop, or
   * 'process', all in one child process (src/sim/propolis-farm.ts), as a sled runs each Propolis
   * as a process of its own, so that their CPU and memory are not counted as the agent's. With
   * 'process', each VM draws its step latencies from a generator seeded from this host's.
   */
  propolis?: 'in-process' | 'process';
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

/** The state file: each part is its subsystem's (format 1). */
interface PersistedState {
  format: 1;
  nextZoneId: number;
  vnics: VnicInfo[];
  zones: ZoneRecord[];
  datasets: Record<string, DatasetRecord>;
  /** The global zone's addresses (exec in GLOBAL_ZONE); absent in older state files. */
  global?: { addresses: Record<string, ZoneAddress> };
  /** OPTE's kernel state (opte.ts); absent in older state files. */
  opte?: SimOpteState;
  /** Links given to zones (vnic.ts setZone); absent in older state files. */
  linkZones?: Record<string, LinkZone>;
}

export const SIM_HOST_STATE_FILE = 'sim-host.json';

// ---- helpers ----

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

// ---- the host ----

export class SimHost implements Host {
  readonly kind = 'sim' as const;
  readonly links: HostLinks;
  readonly zones: HostZones;
  readonly datasets: HostDatasets;
  readonly events: HostEvents;
  /** OPTE (xde ports, rules, routes, V2P, external IPs); also the dataplane: trace(). */
  readonly network: SimOpte;
  /** The JSON file the state lives in. */
  readonly stateFile: string;

  private readonly log: Logger;
  private readonly latencies: SimLatencies;
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly durable: boolean;
  private readonly writeBehindMs: number | null;
  /** By zone or VNIC name, when recordLatencies; null otherwise. */
  private readonly drawn: Map<string, DrawnLatency[]> | null;
  private readonly closeCtl = new AbortController();
  /** SimMachine.onClose's callbacks. */
  private readonly closeFns = new Set<() => void>();

  private readonly simLinks: SimLinks;
  private readonly simZfs: SimZfs;
  private readonly simSmf: SimSmf;
  private readonly simEvents: SimZoneEvents;
  private readonly inZone: SimInZone;
  private readonly simZones: SimZones;
  /** Replaced by the loaded state's. */
  private opteState: SimOpteState = emptySimOpteState();

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
    // A few listen on the signal itself (the zones' runtimes); the many pending waits use onClose.
    setMaxListeners(0, this.closeCtl.signal);

    // What the subsystems share of this host (machine.ts).
    const m: SimMachine = {
      log: this.log,
      latencies: this.latencies,
      closed: this.closeCtl.signal,
      onClose: (fn) => this.onClose(fn),
      opened: () => this.opened(),
      ready: (fn) => this.ready(fn),
      persist: () => this.persist(),
      notify: (zone) => this.simEvents.notify(zone),
      changed: (zone) => this.changed(zone),
      lat: (step, key, op) => this.lat(step, key, op),
      jittered: (ms) => this.jittered(ms),
      recordDrawn: (key, step, op, ms) => this.recordDrawn(key, step, op, ms),
      resetDrawn: (key) => this.resetDrawn(key),
      sleep: (ms, ...signals) => this.sleep(ms, ...signals),
      after: (ms, signal, fn) => this.after(ms, signal, fn),
    };
    this.simLinks = new SimLinks(
      m,
      options.links ?? DEFAULT_SIM_LINKS,
      (name) => this.opteState.ports.some((p) => p.spec.name === name),
      (zone) => {
        const rec = this.simZones.record(zone);
        return rec !== undefined && rec.zoneid !== null && (rec.state === 'ready' || rec.state === 'running') ? rec.zoneid : null;
      },
    );
    this.simZfs = new SimZfs(m, options.pools ?? DEFAULT_SIM_POOLS);
    const propolis = options.propolis ?? 'in-process';
    if (propolis !== 'in-process' && propolis !== 'process') throw new TypeError(`propolis must be "in-process" or "process", got ${String(propolis)}`);
    this.simSmf = new SimSmf(m, { propolis, jitter: this.jitter, seed: () => Math.floor(this.random() * 2 ** 32) });
    this.simEvents = new SimZoneEvents(m, (zone) => this.simZones.record(zone), this.simSmf);
    this.inZone = new SimInZone(m, this.simSmf, this.simLinks);
    this.simZones = new SimZones(m, this.simEvents, this.simSmf, this.inZone);

    const links = this.simLinks;
    this.links = {
      createVnic: (spec) => links.createVnic(spec),
      deleteVnic: (name) => links.deleteVnic(name),
      listVnics: () => this.ready(() => links.listVnics()),
      linkExists: (name) => this.ready(() => links.linkExists(name)),
      setZone: (link, zone) => links.setZone(link, zone),
    };
    const zones = this.simZones;
    this.zones = {
      configure: (spec) => zones.configureZone(spec),
      config: (name) => zones.zoneConfig(name),
      install: (name, image) => zones.installZone(name, image),
      clone: (name, source) => zones.cloneZone(name, source),
      setProfile: (name, profile) => zones.setProfile(name, profile),
      boot: (name) => zones.bootZone(name),
      halt: (name) => zones.haltZone(name),
      uninstall: (name) => zones.uninstallZone(name),
      delete: (name) => zones.deleteZone(name),
      list: () => this.ready(() => zones.list()),
      state: (name) => this.ready(() => zones.state(name)),
      exec: (zone, argv, options) => zones.exec(zone, argv, options),
    };
    const zfs = this.simZfs;
    this.datasets = {
      create: (name, props) => zfs.createDataset(name, props),
      get: (name, props) => zfs.getDataset(name, props),
      set: (name, props) => zfs.setDataset(name, props),
      exists: (name) => this.ready(() => zfs.exists(name)),
      listChildren: (parent) => zfs.listChildren(parent),
      destroy: (name) => zfs.destroyDataset(name),
      listPools: () => this.ready(() => zfs.listPools()),
    };
    this.network = new SimOpte({
      state: () => this.opteState,
      ready: () => this.opened(),
      latency: (op, port) => {
        if (op === 'create-xde' && port !== null) this.resetDrawn(port);
        return this.sleep(this.lat('opte', port ?? undefined, `opteadm ${op}`));
      },
      persist: () => this.persist(),
      // dls_devnet_destroy: EBUSY while a VNIC is over the port or a zone in the kernel has it.
      isPortBusy: (name) =>
        this.simLinks.hasVnicOver(name) ||
        this.simZones.all().some((z) => z.zoneid !== null && z.spec.nets.some((n) => n.physical === name)) ||
        this.simLinks.zoneHolding(name) !== null,
      linkExists: (name) => this.simLinks.linkExists(name),
    });
    const events = this.simEvents;
    this.events = {
      subscribe: (listener, zone) => events.subscribe(listener, zone),
      waitForZoneRunning: (zone, options) => events.waitForZoneRunning(zone, options),
      waitForService: (zone, fmri, states, options) => events.waitForService(zone, fmri, states, options),
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
  async reachable(zone: string, addr: SocketAddr): Promise<SocketAddr> {
    const rec = this.simZones.record(zone);
    const rt = this.simZones.runtime(zone);
    if (rec === undefined || rt === undefined || rec.state !== 'running') {
      throw hostError('ZONE_GONE', `zone ${zone} is not running${rec === undefined ? ' (no such zone)' : ` (it is ${rec.state})`}`);
    }
    const host = normalizeHost(addr.host);
    // A server bound to the wildcard answers on every address the (exclusive-IP) zone has, and
    // only on those: until `ipadm create-addr` puts the address there, nothing reaches it.
    const zoneHas = Object.values(rec.addresses).some((a) => normalizeHost(a.addr.split('/')[0] as string) === host);
    for (const p of rt.propolis.values()) {
      if (!p.live || p.addr.port !== addr.port) continue;
      const bound = normalizeHost(p.addr.host);
      if (bound === host || ((bound === normalizeHost('::') || bound === '0.0.0.0') && zoneHas)) return p.server.address;
    }
    throw hostError('ENOTFOUND', `nothing listens on ${addr.host}:${addr.port} in zone ${zone}`);
  }

  /** Stops Propolis servers, timers and waits (those reject with ECANCELED); the state stays on disk. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.started?.catch(() => {});
      this.closeCtl.abort(hostError('ECANCELED', 'the simulated host was closed'));
      for (const fn of [...this.closeFns]) fn();
      this.closeFns.clear();
      await this.simSmf.closeServers(this.simZones.runtimes());
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
    await this.simZones.removeFromOutside(name);
  }

  /**
   * Test hook: the simulated Propolis of a propolis-server instance in `zone` (the only one, or
   * by FMRI). Undefined with propolis: 'process', where it is in another process: drive it over
   * HTTP (reachable()), crash it with crashPropolis(), find its process with propolisPid().
   */
  propolisFor(zone: string, fmri?: string): SimPropolis | undefined {
    const server = this.runningPropolis(zone, fmri)?.server;
    return server instanceof SimPropolis ? server : undefined;
  }

  /** Test hook: the pid of the process that serves that Propolis (this one, or the farm's); undefined if none runs. */
  propolisPid(zone: string, fmri?: string): number | undefined {
    return this.runningPropolis(zone, fmri)?.pid;
  }

  private runningPropolis(zone: string, fmri?: string): RunningPropolis | undefined {
    const rt = this.simZones.runtime(zone);
    if (rt === undefined) return undefined;
    if (fmri !== undefined) return rt.propolis.get(fmri);
    return [...rt.propolis.values()][0];
  }

  /**
   * Test hook: that Propolis process dies: its server stops answering at once, its VM is gone,
   * and its SMF instance goes to maintenance. Rejects (ENOTFOUND) if none runs there.
   */
  async crashPropolis(zone: string, fmri?: string): Promise<void> {
    await this.simSmf.crashPropolis(zone, this.simZones.record(zone), this.simZones.runtime(zone), fmri);
  }

  /**
   * What OPTE on this sled does with one packet (src/sim/opte.ts trace()): at the port whose IP
   * and VNI match, its verdict, the layer and rule that decided, and for an allowed outbound
   * packet where it goes next. An allowed packet leaves flow state, as a real one does.
   */
  trace(packet: TracePacket): Promise<TraceAnswer> {
    return this.network.trace(packet);
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
    await this.simSmf.prestartPropolis(count);
  }

  // ---- modelled time (recordLatencies) ----

  /**
   * Every latency drawn so far for `zone`, for the VNICs its configuration names and for the
   * OPTE ports those VNICs go over (opteadm runs on the port), oldest first (empty unless
   * recordLatencies). A zone configured again under the same name, or a VNIC or port created
   * again, starts a new list.
   */
  modelled(zone: string): DrawnLatency[] {
    if (this.drawn === null) return [];
    const nets = [...(this.simZones.record(zone)?.spec.nets.map((n) => n.physical) ?? []), ...this.simLinks.givenTo(zone)];
    const ports = nets
      .map((n) => this.simLinks.vnic(n)?.link ?? n)
      .filter((l) => this.opteState.ports.some((p) => p.spec.name === l));
    return [...new Set([zone, ...nets, ...ports])]
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
      this.simLinks.restore(raw.vnics, raw.linkZones);
      this.simZones.restore(raw.zones, raw.nextZoneId);
      this.inZone.restore(raw.global);
      if (raw.opte !== undefined) this.opteState = raw.opte;
    }
    this.simZfs.restore(raw?.datasets ?? {});
    await this.simZones.revive();
    await this.persist();
  }

  /** The whole state, from its subsystems, as it is now. */
  private snapshot(): PersistedState {
    return {
      format: 1,
      nextZoneId: this.simZones.nextZoneId,
      vnics: this.simLinks.vnics,
      zones: this.simZones.all(),
      datasets: this.simZfs.datasets,
      global: this.inZone.global,
      opte: this.opteState,
      linkZones: this.simLinks.zoneOf,
    };
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
      const state = this.snapshot();
      return this.durable ? writeJsonAtomic(this.stateFile, state) : writeJsonRenamed(this.stateFile, state);
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
    this.simEvents.notify(zone);
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
    return jittered(ms, this.jitter, this.random);
  }

  /** See SimMachine.onClose. */
  private onClose(fn: () => void): () => void {
    this.closeFns.add(fn);
    return () => {
      this.closeFns.delete(fn);
    };
  }

  /** Waits `ms` unless a signal (or close()) aborts first: then rejects with its reason. */
  private sleep(ms: number, ...signals: AbortSignal[]): Promise<void> {
    const fired = [this.closeCtl.signal, ...signals].find((s) => s.aborted);
    if (fired !== undefined) return Promise.reject(fired.reason);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const fail = (reason: unknown): void => {
        done();
        reject(reason);
      };
      const onAbort = (event: Event): void => fail((event.target as AbortSignal).reason);
      const onClose = (): void => fail(this.closeCtl.signal.reason);
      let unclose = (): void => {};
      const done = (): void => {
        clearTimeout(timer);
        unclose();
        for (const s of signals) s.removeEventListener('abort', onAbort);
      };
      const timer = setTimeout(() => {
        done();
        resolve();
      }, Math.min(ms, MAX_TIMER_MS));
      unclose = this.onClose(onClose);
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Runs `fn` after `ms` unless `signal` (or close()) aborts first. */
  private after(ms: number, signal: AbortSignal, fn: () => void | Promise<void>): void {
    if (this.closeCtl.signal.aborted || signal.aborted) return;
    let unclose = (): void => {};
    const done = (): void => {
      clearTimeout(timer);
      unclose();
      signal.removeEventListener('abort', done);
    };
    const timer = setTimeout(() => {
      done();
      if (this.closeCtl.signal.aborted || signal.aborted) return;
      Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.log.error({ err }, 'simulated host step failed'));
    }, Math.min(ms, MAX_TIMER_MS));
    unclose = this.onClose(done);
    signal.addEventListener('abort', done, { once: true });
  }
}

/** writeJsonAtomic without the fsyncs (SimHostOptions.durable = false): the same file, the same atomic rename. */
async function writeJsonRenamed(path: string, value: unknown): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, `${JSON.stringify(value)}\n`, { flag: 'wx', mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
