// Zones on the simulated host: configurations, the zoneadm lifecycle with its modelled
// latencies and the kernel's zone-state events, and zlogin (as the illumos backend's zones.ts
// over libzonecfg, zoneadm and zlogin). The zones are persisted; what exists only while a zone is
// in the kernel (services on their way online, Propolis processes) is not.
//
// Zone lifecycle (the fake illumos's zoneadm, test/fake-illumos/zoneadm.c, and the real one):
//   configure        -> configured
//   install IMAGE    configured -> incomplete -> installed              ("install" latency)
//   clone SOURCE     configured -> incomplete -> installed, SOURCE installed ("clone" latency)
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
// way completes, an install or clone under way stays "incomplete" (zoneadm died with the agent).
import { isAbsolute } from 'node:path';
import {
  GLOBAL_COMMANDS,
  GLOBAL_ZONE,
  hostError,
  type ExecResult,
  type HostError,
  type SmfProfileInstance,
  type ZoneInfo,
  type ZoneSpec,
  type ZoneState,
} from '../host/index.js';
import { cloneRefusal } from '../host/clone.js';
import { validateDatasetName, validateLinkName, validateSmfProfile, validateZoneName } from '../host/names.js';
import { anySignal } from '../common/signals.js';
import { kernelEventState, type SimZoneEvents } from './events.js';
import { CommandFailure, type SimInZone, type ZoneAddress } from './inzone.js';
import { MAX_TIMER_MS, type SimMachine } from './machine.js';
import type { SimPropolisSnapshot } from './propolis.js';
import { imageServices, splitFmri, type RunningPropolis, type SimSmf, type SmfService } from './smf.js';

export interface ZoneRecord {
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
  /**
   * The SMF site profile in the zone's root (setProfile), and whether a boot has applied it
   * (SMF's manifest-import applies site.xml again only once it has changed). Absent: none.
   */
  profile?: { instances: SmfProfileInstance[]; applied: boolean };
}

/** What exists while a zone is in the kernel (not persisted). */
export interface KernelRuntime {
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

/** An ECOMMAND as the illumos backend's zlogin gives it: the command's stderr in the message. */
export interface SimCommandError extends HostError {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class SimZones {
  /** Persisted, by name, in the order they were configured. */
  private readonly records = new Map<string, ZoneRecord>();
  /** Persisted: the id the next zone to enter the kernel gets. */
  nextZoneId = 1;
  private readonly kernel = new Map<string, KernelRuntime>();
  /** Per configured zone: aborted when the zone is deleted (pending install/uninstall fail). */
  private readonly life = new Map<string, AbortController>();

  constructor(
    private readonly m: SimMachine,
    private readonly events: SimZoneEvents,
    private readonly smf: SimSmf,
    private readonly inzone: SimInZone,
  ) {}

  restore(records: readonly ZoneRecord[], nextZoneId: number): void {
    this.nextZoneId = nextZoneId;
    for (const rec of records) {
      this.records.set(rec.spec.name, rec);
      this.life.set(rec.spec.name, new AbortController());
    }
  }

  /**
   * After a restart of the agent, what the host itself would have completed meanwhile: a halt or
   * a boot under way is done (zoneadmd does it), and running zones get their services and
   * Propolis servers back.
   */
  async revive(): Promise<void> {
    for (const rec of this.records.values()) {
      switch (rec.state) {
        case 'shutting_down':
          // zoneadmd finished the halt while the agent was away.
          this.clearZoneRuntimeState(rec);
          rec.state = 'installed';
          rec.zoneid = null;
          break;
        case 'ready': {
          // ... and the boot.
          const rt = this.enterKernel(rec, rec.zoneid ?? this.nextZoneId++);
          this.m.after(this.m.lat('boot', rec.spec.name, 'zone boot (completing)'), rt.ctl.signal, () => this.becomeRunning(rec, rt));
          break;
        }
        case 'running': {
          const rt = this.enterKernel(rec, rec.zoneid ?? this.nextZoneId++);
          await this.smf.reviveServices(rec, rt);
          break;
        }
        default:
          break;
      }
    }
  }

  record(name: string): ZoneRecord | undefined {
    return this.records.get(name);
  }

  runtime(name: string): KernelRuntime | undefined {
    return this.kernel.get(name);
  }

  runtimes(): IterableIterator<KernelRuntime> {
    return this.kernel.values();
  }

  /** In the order they were configured, as persisted. */
  all(): ZoneRecord[] {
    return [...this.records.values()];
  }

  list(): ZoneInfo[] {
    return [...this.records.values()].map((z) => ({ name: z.spec.name, state: z.state }));
  }

  state(name: string): ZoneState | null {
    validateZoneName(name);
    return this.records.get(name)?.state ?? null;
  }

  /** See SimHost.simulateZoneFailure. */
  async removeFromOutside(name: string): Promise<void> {
    const rec = this.requireZone(name);
    this.life.get(name)?.abort(hostError('ECOMMAND', `zone '${name}' was removed from outside the agent`));
    this.life.delete(name);
    if (this.kernel.has(name)) await this.leaveKernel(rec, 0);
    this.records.delete(name);
    this.m.notify(name);
    await this.m.persist();
  }

  private requireZone(name: string): ZoneRecord {
    const rec = this.records.get(name);
    if (rec === undefined) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
    return rec;
  }

  private badState(name: string, message: string): HostError {
    return hostError('Z_BAD_ZONE_STATE', `zoneadm: zone '${name}': ${message}`);
  }

  async configureZone(spec: ZoneSpec): Promise<void> {
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
    await this.m.opened();
    const inUse = () => hostError('Z_NAME_IN_USE', `cannot configure zone ${spec.name}: Zone name already in use`);
    if (this.records.has(spec.name)) throw inUse();
    this.m.resetDrawn(spec.name);
    await this.m.sleep(this.m.lat('configure', spec.name, 'zone configure'));
    if (this.records.has(spec.name)) throw inUse();
    const rec: ZoneRecord = { spec: clean, state: 'configured', image: null, zoneid: null, addresses: {}, routes: [], services: {}, vms: {} };
    this.records.set(spec.name, rec);
    this.life.set(spec.name, new AbortController());
    await this.m.persist();
  }

  async zoneConfig(name: string): Promise<ZoneSpec> {
    validateZoneName(name);
    await this.m.opened();
    return structuredClone(this.requireZone(name).spec);
  }

  async installZone(name: string, image: string): Promise<void> {
    validateZoneName(name);
    if (typeof image !== 'string' || !image.startsWith('/') || image.includes('\0')) {
      throw new TypeError(`the image must be an absolute path, got ${JSON.stringify(image)}`);
    }
    await this.m.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'install operation is invalid for running zones.');
    if (rec.state === 'installed') throw this.badState(name, 'is already installed.');
    if (rec.state === 'incomplete') throw this.badState(name, 'zone is incomplete; uninstall required.');
    rec.state = 'incomplete';
    rec.image = image;
    await this.m.persist();
    await this.m.sleep(this.m.lat('install', name, 'zone install'), this.lifeSignal(name));
    rec.state = 'installed';
    rec.services = imageServices(image);
    this.m.notify(name);
    await this.m.persist();
  }

  /**
   * zoneadm clone: as install, but the zonepath is SOURCE's, so the zone gets SOURCE's image and
   * the services SOURCE had been given (its SMF repository is in the zonepath), none of them
   * running (SOURCE is not).
   */
  async cloneZone(name: string, source: string): Promise<void> {
    validateZoneName(name);
    validateZoneName(source);
    await this.m.opened();
    const rec = this.records.get(name);
    const from = this.records.get(source);
    const party = (r: ZoneRecord | undefined) => (r === undefined ? undefined : { state: r.state, brand: r.spec.brand });
    const refusal = cloneRefusal(name, party(rec), source, party(from));
    if (refusal !== null) throw refusal;
    // Copied now: zoneadm snapshots SOURCE before the clone, so later changes to it are not seen.
    const image = from!.image;
    const services = structuredClone(from!.services);
    const profile = from!.profile === undefined ? undefined : structuredClone(from!.profile);
    rec!.state = 'incomplete';
    rec!.image = image;
    await this.m.persist();
    await this.m.sleep(this.m.lat('clone', name, 'zone clone'), this.lifeSignal(name));
    rec!.state = 'installed';
    rec!.services = services;
    if (profile === undefined) delete rec!.profile;
    else rec!.profile = profile;
    this.m.notify(name);
    await this.m.persist();
  }

  async uninstallZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.m.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'uninstall operation is invalid for running zones.');
    if (rec.state === 'configured') throw this.badState(name, "is already in state 'configured'.");
    rec.state = 'incomplete';
    await this.m.persist();
    await this.m.sleep(this.m.lat('uninstall', name, 'zone uninstall'), this.lifeSignal(name));
    rec.state = 'configured';
    rec.image = null;
    rec.services = {};
    delete rec.profile;
    this.m.notify(name);
    await this.m.persist();
  }

  /**
   * The zone's site profile: kept with the zone (it is a file in its root) and applied by its
   * next boot. A file write in the global zone: not modelled as taking time.
   */
  async setProfile(name: string, profile: readonly SmfProfileInstance[]): Promise<void> {
    validateZoneName(name);
    const instances = validateSmfProfile(profile);
    await this.m.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'the site profile of a zone in the kernel is not read until its next boot.');
    if (rec.state !== 'installed') throw this.badState(name, `must be installed to have a root for its site profile (it is ${rec.state}).`);
    rec.profile = { instances, applied: false };
    await this.m.persist();
  }

  /** The zone's lifetime signal; Z_NO_ZONE if a concurrent operation deleted it meanwhile. */
  private lifeSignal(name: string): AbortSignal {
    const life = this.life.get(name);
    if (life === undefined) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
    return life.signal;
  }

  async deleteZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.m.opened();
    const rec = this.requireZone(name);
    if (rec.state !== 'configured') {
      throw hostError('Z_BAD_ZONE_STATE', `cannot delete zone ${name}: Zone state is invalid for the requested operation (it is ${rec.state})`);
    }
    await this.m.sleep(this.m.lat('configure', name, 'zone delete'));
    if (this.records.get(name) !== rec) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
    if (rec.state !== 'configured') {
      throw hostError('Z_BAD_ZONE_STATE', `cannot delete zone ${name}: Zone state is invalid for the requested operation (it is ${rec.state})`);
    }
    this.life.get(name)?.abort(hostError('Z_NO_ZONE', `zone ${name} was deleted`));
    this.life.delete(name);
    this.records.delete(name);
    this.m.notify(name);
    await this.m.persist();
  }

  private enterKernel(rec: ZoneRecord, zoneid: number): KernelRuntime {
    rec.zoneid = zoneid;
    const rt: KernelRuntime = { zoneid, ctl: new AbortController(), starting: new Map(), propolis: new Map(), afterNetwork: [], halting: null };
    this.kernel.set(rec.spec.name, rt);
    return rt;
  }

  async bootZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.m.opened();
    const rec = this.requireZone(name);
    if (rec.zoneid !== null) throw this.badState(name, 'boot operation is invalid for running zones.');
    if (rec.state !== 'installed') throw this.badState(name, 'must be installed before boot.');
    const rt = this.enterKernel(rec, this.nextZoneId++);
    rec.state = 'ready';
    this.events.emit(rec, rt.zoneid, 'uninitialized', 'initialized');
    this.events.emit(rec, rt.zoneid, 'initialized', 'ready');
    await this.m.persist();
    await this.m.sleep(this.m.lat('boot', name, 'zone boot'), rt.ctl.signal);
    this.becomeRunning(rec, rt);
    await this.m.persist();
  }

  /** ready -> running, and the zone's services start (a site profile not yet applied first). */
  private becomeRunning(rec: ZoneRecord, rt: KernelRuntime): void {
    rec.state = 'running';
    if (rec.profile !== undefined && !rec.profile.applied) {
      applyProfile(rec.services, rec.profile.instances);
      rec.profile.applied = true;
    }
    for (const [svc, service] of Object.entries(rec.services)) {
      for (const [name, inst] of Object.entries(service.instances)) {
        if (inst.temporary ?? inst.enabled) this.smf.startInstance(rec, rt, svc, name);
        else inst.state = 'disabled';
      }
    }
    this.events.emit(rec, rt.zoneid, 'ready', 'running');
    this.m.changed(rec.spec.name);
  }

  async haltZone(name: string): Promise<void> {
    validateZoneName(name);
    await this.m.opened();
    const rec = this.requireZone(name);
    const rt = this.kernel.get(name);
    if (rt === undefined) {
      if (rec.state === 'configured') throw this.badState(name, "cannot manage a zone which is in state 'configured'");
      return; // "zone is already halted": not an error
    }
    await this.leaveKernel(rec, this.m.lat('halt', name, 'zone halt'));
  }

  /** Takes the zone out of the kernel (halt): events, services and VMs gone, -> installed. */
  leaveKernel(rec: ZoneRecord, ms: number): Promise<void> {
    const name = rec.spec.name;
    const rt = this.kernel.get(name)!;
    rt.halting ??= (async () => {
      const old = kernelEventState(rec.state);
      rt.ctl.abort(hostError('ECOMMAND', `zone '${name}' was halted`));
      rec.state = 'shutting_down';
      this.events.emit(rec, rt.zoneid, old, 'shutting_down');
      await this.smf.stopAllPropolis(rt);
      this.clearZoneRuntimeState(rec);
      await this.m.persist();
      await this.m.sleep(ms);
      this.kernel.delete(name);
      rec.state = 'installed';
      rec.zoneid = null;
      this.events.emit(rec, rt.zoneid, 'shutting_down', 'uninitialized');
      await this.m.persist();
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

  // ---- zlogin ----

  async exec(zone: string, argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (zone !== GLOBAL_ZONE) validateZoneName(zone);
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((w) => typeof w !== 'string' || w.includes('\0'))) {
      throw new TypeError('argv must be a non-empty array of strings without NUL bytes');
    }
    if (zone === GLOBAL_ZONE) return this.execGlobal(argv);
    await this.m.opened();
    const failure = (exitCode: number, stderr: string, stdout = ''): SimCommandError =>
      Object.assign(hostError('ECOMMAND', `zlogin ${zone} ${argv.join(' ')}: ${stderr.trim()}`), { exitCode, stdout, stderr });
    const rec = this.records.get(zone);
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
      await this.m.sleep(this.m.lat('exec', zone, `zlogin ${argv.slice(0, 2).join(' ')}`), signal);
      const out = await this.inzone.run(rec, rt, argv, signal);
      if (!(argv[0] === 'ipadm' && argv[1] === 'show-addr')) await this.m.persist();
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
    await this.m.opened();
    try {
      const out = await this.inzone.runGlobal(argv, this.m.closed);
      if (args[0] !== 'show-addr') await this.m.persist();
      return { stdout: out, stderr: '' };
    } catch (err) {
      if (err instanceof CommandFailure) {
        throw Object.assign(hostError('ECOMMAND', `${argv.join(' ')}: ${err.stderr.trim()}`), { exitCode: err.exitCode, stdout: '', stderr: err.stderr });
      }
      throw err;
    }
  }
}

/** What SMF does with a site profile as the zone boots: instances made if missing, properties set, enabled or not. */
function applyProfile(services: Record<string, SmfService>, instances: readonly SmfProfileInstance[]): void {
  for (const inst of instances) {
    const { service, instance } = splitFmri(inst.fmri);
    const svc = (services[service] ??= { pgs: {}, instances: {} });
    const target = (svc.instances[instance!] ??= { enabled: false, temporary: null, state: 'disabled', pgs: {} });
    target.enabled = inst.enabled;
    for (const [key, value] of Object.entries(inst.properties)) {
      const [pg, prop] = key.split('/') as [string, string];
      (target.pgs[pg] ??= { type: 'application', props: {} }).props[prop] = value;
    }
  }
}
