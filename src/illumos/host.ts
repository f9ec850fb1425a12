// The Host on illumos (src/host/index.ts): composed from the typed wrappers over the addon
// (vnic.ts, zones.ts, zfs.ts, smf.ts's rules) and the exec'd zoneadm/zlogin. One zone-event
// subscription, opened by IllumosHost.open(), is fanned out to every subscriber and to the
// waits, which are all event waits with a deadline:
//   - waitForZoneRunning: the zone-state channel ("running" for the zone; "shutting_down" or
//     "uninitialized" while waiting is ZONE_GONE).
//   - waitForService: first the zone's "running" as above, then libscf's property-group wait on
//     a native thread (smfWaitState). libscf cannot wait for a zone's svc.configd to come up
//     (bind fails at once, SCF_ERROR_NO_SERVER) nor for an instance to be created (decode fails
//     at once, SCF_ERROR_NOT_FOUND), and nothing announces either. For exactly those two codes,
//     and only while the zone runs, the wait is started again after a short capped backoff
//     (10 ms doubling to 250 ms by default) within the same deadline, each retry logged at debug:
//     the one wait here that is not purely an event wait. A zone that halts meanwhile cancels the
//     native wait (scf handle unbind) and the wait rejects ZONE_GONE.
//   - A zero deadline (poll mode's checks, the warm pool's health check) reads the present state
//     once and rejects ETIMEDOUT if it is not the one asked for, with no timer: a 0 ms timer
//     raced the native read and won whenever the read was slower (on a busy host, every time).
// illumosAvailable() tells the agent whether this host can be used at all, and if not, why.
import pino, { type Logger } from 'pino';
import type { SocketAddr } from '../common/address.js';
import {
  hostError,
  GLOBAL_ZONE,
  type ExecResult,
  type Host,
  type HostDatasets,
  type HostEvents,
  type HostLinks,
  type HostZones,
  type PoolInfo,
  type SmfProfileInstance,
  type SmfState,
  type VnicInfo,
  type VnicSpec,
  type WaitOptions,
  type ZoneInfo,
  type ZoneState,
  type ZoneSpec,
  type ZoneStateEvent,
} from '../host/index.js';
import { isNativeError, loadNative, type CoreNative, type NativeAddon } from './addon.js';
import type { NativeZoneEventSubscription } from './native-types/events.js';
import type { NativeVnic } from './native-types/dladm.js';
import { cloneRefusal } from '../host/clone.js';
import { ZoneListeners } from '../host/zone-listeners.js';
import { SMF_STATES, assertInstanceFmri, validateDatasetName, validateLinkName, validateZoneName } from '../host/names.js';
import { createVnic, deleteVnic, listVnics, lookupLink, setLinkZone } from './vnic.js';
import {
  byteCount,
  createDataset,
  datasetExists,
  destroyDataset,
  getDatasetProperties,
  listChildDatasets,
  listPools,
  setDatasetProperties,
} from './zfs.js';
import { IllumosNetwork } from './opte.js';
import { Zones } from './zones.js';
import { siteProfileXml, writeSiteProfile } from './site-profile.js';

// ---- availability ----

/** The libraries (keys of the addon's capability report) the illumos host needs, every symbol resolved. */
export const REQUIRED_LIBRARIES = ['zonecfg', 'dladm', 'nvpair', 'zfs', 'scf', 'sysevent'] as const;

export interface IllumosAvailability {
  available: boolean;
  /** Why not, for a person (null when available): every library that failed and how, missing symbols by name. */
  reason: string | null;
  /** One entry per problem, e.g. "libscf.so.1 lacks _scf_pg_wait, scf_pg_update". */
  problems: string[];
}

/**
 * Whether every library the illumos host needs loaded with all its symbols, from the addon's
 * capability report (call addon.load() first: a library never attempted counts as missing).
 */
export function illumosAvailable(addon: Pick<CoreNative, 'capabilities'>): IllumosAvailability {
  const report = addon.capabilities();
  const problems: string[] = [];
  for (const key of REQUIRED_LIBRARIES) {
    const lib = report.libraries[key];
    if (lib === undefined) {
      problems.push(`the addon does not bind ${key}`);
      continue;
    }
    if (lib.missing.length > 0) problems.push(`${lib.soname} lacks ${lib.missing.join(', ')}`);
    if (lib.loaded) continue;
    if (lib.error !== null) problems.push(`${lib.soname} could not be loaded: ${lib.error}`);
    else if (lib.path === null && lib.missing.length === 0) problems.push(`${lib.soname} has not been loaded (addon.load() was not called)`);
    else if (lib.missing.length === 0) problems.push(`${lib.soname} is not usable`);
  }
  return {
    available: problems.length === 0,
    reason: problems.length === 0 ? null : `the illumos host is unavailable${report.dir ? ` (libraries from ${report.dir})` : ''}: ${problems.join('; ')}`,
    problems,
  };
}

// ---- options ----

export interface IllumosHostOptions {
  /** The addon (default loadNative(), with whatever libraries its load() found). */
  addon?: NativeAddon;
  /** Default /usr/sbin/zoneadm. */
  zoneadm?: string;
  /** Default /usr/bin/zlogin. */
  zlogin?: string;
  /** Where the global zone's commands are (exec in GLOBAL_ZONE); default /usr/sbin. */
  sbin?: string;
  /** Default /opt/oxide/opte/bin/opteadm. */
  opteadm?: string;
  /** Whether the xde driver is installed is read from this file (default /kernel/drv/xde.conf). */
  xdeConf?: string;
  /** Deadline for each zoneadm run and for exec without its own (default 10 minutes: installs can be slow). */
  commandTimeoutMs?: number;
  /** Where this process reaches a server listening on `addr` in `zone` (default: `addr` itself). */
  reachable?: (zone: string, addr: SocketAddr) => SocketAddr;
  /** Where a zone image named by the agent (/opt/oxide/<service>.tar.gz) is on this host (default: that path). */
  resolveImage?: (image: string) => string;
  /** The SMF wait's retry while the zone's configd is not up or the instance not yet created. */
  smfRetry?: { initialMs?: number; maxMs?: number };
  log?: Pick<Logger, 'debug' | 'info' | 'warn'>;
}

// ---- errors ----

const MAX_TIMER_MS = 2 ** 31 - 1;

function abortError(reason: unknown): Error & { code: string } {
  return Object.assign(new Error('the operation was aborted', { cause: reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

function checkWaitOptions(options: WaitOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('wait options must be an object');
  const { timeoutMs } = options;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw Object.assign(new TypeError('timeoutMs must be a finite number >= 0'), { code: 'ERR_INVALID_ARG_VALUE' });
  }
}

/** Zone states in which the zone is on its way out of the kernel. */
const GOING: ReadonlySet<string> = new Set(['shutting_down', 'down']);

/**
 * One wait: its deadline, its signal, the zone it concerns. `done` rejects (ETIMEDOUT,
 * ABORT_ERR, ZONE_GONE, ECLOSED) when the wait must end for one of those reasons; `running`
 * resolves on the zone's next "running" event. Subscribed before anything is checked, so no
 * event between the check and the wait is missed.
 */
class WaitScope {
  readonly done: Promise<never>;
  readonly running: Promise<void>;
  readonly deadline: number;
  #reject!: (err: Error) => void;
  #resolveRunning!: () => void;
  #settled = false;
  #timer: NodeJS.Timeout;
  #unsubscribe: () => void;
  #onAbort: () => void;
  #onEnd: Array<() => void> = [];

  constructor(
    private readonly hooks: { subscribe: HostEvents['subscribe']; scopes: Set<WaitScope> },
    readonly zone: string,
    private readonly options: WaitOptions,
    what: string,
  ) {
    this.done = new Promise<never>((_, reject) => {
      this.#reject = reject;
    });
    this.done.catch(() => {}); // observed by whoever races it; never an unhandled rejection
    this.running = new Promise<void>((resolve) => {
      this.#resolveRunning = resolve;
    });
    this.deadline = performance.now() + options.timeoutMs;
    this.#unsubscribe = hooks.subscribe((ev) => {
      if (ev.zonename !== zone) return;
      if (ev.newstate === 'running') this.#resolveRunning();
      else if (ev.newstate === 'shutting_down' || ev.newstate === 'uninitialized') this.gone(`zone ${zone} went ${ev.newstate}`);
    }, zone);
    this.#timer = setTimeout(() => {
      this.end(
        Object.assign(new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`), { code: 'ETIMEDOUT' }),
      );
    }, Math.min(options.timeoutMs, MAX_TIMER_MS));
    this.#onAbort = () => this.end(abortError(options.signal?.reason));
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    hooks.scopes.add(this);
  }

  get settled(): boolean {
    return this.#settled;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - performance.now());
  }

  /** Runs `fn` when the scope ends (or at once if it has). */
  onEnd(fn: () => void): void {
    if (this.#settled) fn();
    else this.#onEnd.push(fn);
  }

  gone(detail: string): void {
    this.end(hostError('ZONE_GONE', `${detail} while waiting`));
  }

  /** Ends the wait with `err` (or quietly, with none); the first call wins. */
  end(err?: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#unsubscribe();
    this.options.signal?.removeEventListener('abort', this.#onAbort);
    this.hooks.scopes.delete(this);
    for (const fn of this.#onEnd.splice(0)) fn();
    if (err !== undefined) this.#reject(err);
  }

  /** `p`, unless the scope ends first. */
  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.done]);
  }

  sleep(ms: number): Promise<void> {
    return this.race(
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        this.onEnd(() => {
          clearTimeout(t);
          resolve();
        });
      }),
    );
  }
}

// ---- the host ----

export class IllumosHost implements Host {
  readonly kind = 'illumos' as const;
  readonly links: HostLinks;
  readonly zones: HostZones;
  readonly datasets: HostDatasets;
  readonly events: HostEvents;
  /** OPTE through opteadm (src/illumos/opte.ts). */
  readonly network: IllumosNetwork;
  readonly addon: NativeAddon;
  /** The zoneadm/zlogin runner (paths, timeouts) this host uses. */
  readonly zoneTool: Zones;

  /** The waits in progress (close() ends them). */
  #scopes = new Set<WaitScope>();
  readonly #listeners = new ZoneListeners();
  #subscription: NativeZoneEventSubscription | null = null;
  #closing: Promise<void> | null = null;
  #options: IllumosHostOptions;
  #log: Pick<Logger, 'debug' | 'info' | 'warn'>;

  private constructor(options: IllumosHostOptions) {
    this.#options = options;
    this.addon = options.addon ?? loadNative();
    this.#log = options.log ?? pino({ level: 'silent' });
    this.zoneTool = new Zones({
      addon: this.addon,
      ...(options.zoneadm === undefined ? {} : { zoneadm: options.zoneadm }),
      ...(options.zlogin === undefined ? {} : { zlogin: options.zlogin }),
      ...(options.sbin === undefined ? {} : { sbin: options.sbin }),
      ...(options.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: options.commandTimeoutMs }),
    });
    this.links = this.#makeLinks();
    this.zones = this.#makeZones();
    this.datasets = this.#makeDatasets();
    this.events = this.#makeEvents();
    this.network = new IllumosNetwork({
      ...(options.opteadm === undefined ? {} : { opteadm: options.opteadm }),
      ...(options.xdeConf === undefined ? {} : { xdeConf: options.xdeConf }),
    });
  }

  /** Opens the host: subscribes to zone state events (resolves once every later change will be seen). */
  static async open(options: IllumosHostOptions = {}): Promise<IllumosHost> {
    const host = new IllumosHost(options);
    host.#subscription = await host.addon.zoneEventsSubscribe((ev) => host.#dispatch(ev));
    return host;
  }

  async reachable(zone: string, addr: SocketAddr): Promise<SocketAddr> {
    return this.#options.reachable ? this.#options.reachable(zone, addr) : addr;
  }

  /** Closes the event subscription; pending waits reject with code ECLOSED. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const scope of [...this.#scopes]) scope.end(hostError('ECLOSED', 'the host was closed'));
      this.#listeners.clear();
      await this.#subscription?.close();
    })();
    return this.#closing;
  }

  #dispatch(ev: ZoneStateEvent): void {
    if (this.#closing !== null) return;
    this.#listeners.emit(ev, (err) => this.#log.warn({ err, event: { ...ev, when: ev.when.toString() } }, 'a zone event listener threw'));
  }

  // ---- links ----

  #makeLinks(): HostLinks {
    const addon = this.addon;
    const info = (v: NativeVnic): VnicInfo => ({ name: v.name, link: v.overLink ?? '', mac: v.mac, vlan: v.vlan ?? 0 });
    return {
      async createVnic(spec: VnicSpec): Promise<VnicInfo> {
        if (typeof spec !== 'object' || spec === null) throw new TypeError('the VNIC spec must be an object');
        const vnic = await createVnic(
          {
            name: spec.name,
            link: spec.link,
            ...(spec.mac === undefined ? {} : { mac: spec.mac }),
            ...(spec.vlan === undefined || spec.vlan === 0 ? {} : { vlan: spec.vlan }),
          },
          addon,
        );
        return info(vnic);
      },
      async deleteVnic(name: string): Promise<void> {
        await deleteVnic(name, addon);
      },
      async listVnics(): Promise<VnicInfo[]> {
        return (await listVnics(addon)).map(info);
      },
      async linkExists(name: string): Promise<boolean> {
        validateLinkName(name);
        try {
          await lookupLink(name, addon);
          return true;
        } catch (err) {
          if (isNativeError(err, 'DLADM_STATUS_NOTFOUND')) return false;
          throw err;
        }
      },
      async setZone(link: string, zone: string): Promise<void> {
        await setLinkZone(link, zone, addon);
      },
    };
  }

  // ---- zones ----

  #makeZones(): HostZones {
    const zones = this.zoneTool;
    const resolveImage = this.#options.resolveImage ?? ((image: string) => image);
    const log = this.#log;
    return {
      async configure(spec: ZoneSpec): Promise<void> {
        if (typeof spec !== 'object' || spec === null) throw new TypeError('the zone spec must be an object');
        validateZoneName(spec.name);
        for (const n of spec.nets) validateLinkName(n.physical);
        for (const d of spec.datasets) validateDatasetName(d.name);
        await zones.configureZone({
          name: spec.name,
          brand: spec.brand,
          zonepath: spec.zonepath,
          autoboot: spec.autoboot ?? false,
          ipType: 'exclusive',
          nets: spec.nets.map((n) => ({ physical: n.physical })),
          devices: spec.devices.map((d) => ({ match: d.match })),
          datasets: spec.datasets.map((d) => ({ name: d.name })),
        });
      },
      async config(name: string): Promise<ZoneSpec> {
        const c = await zones.getZoneConfig(name);
        return {
          name: c.name,
          brand: c.brand,
          zonepath: c.zonepath,
          autoboot: c.autoboot,
          nets: c.nets.map((n) => ({ physical: n.physical })),
          devices: c.devices.map((d) => ({ match: d.match })),
          datasets: c.datasets.map((d) => ({ name: d.name })),
        };
      },
      async install(name: string, image: string): Promise<void> {
        validateZoneName(name);
        await zones.installZone(name, [resolveImage(image)]);
      },
      async clone(name: string, source: string): Promise<void> {
        validateZoneName(name);
        validateZoneName(source);
        // Checked here so that a refusal carries a Z_* code, as the sim's does; zoneadm checks
        // again under its lock, and a state changed in between fails as its ECOMMAND.
        // A zone in a state we cannot name is left to zoneadm to judge.
        const listed = await zones.listZones();
        const target = listed.find((z) => z.name === name);
        const from = listed.find((z) => z.name === source);
        if (target?.state !== 'unknown' && from?.state !== 'unknown') {
          const party = (z: typeof target) => (z === undefined || z.state === 'unknown' ? undefined : { state: z.state, brand: z.brand });
          const refusal = cloneRefusal(name, party(target), source, party(from));
          if (refusal !== null) throw refusal;
        }
        await zones.cloneZone(name, source);
      },
      async setProfile(name: string, profile: readonly SmfProfileInstance[]): Promise<void> {
        const xml = siteProfileXml(profile);
        const state = await zones.zoneState(name);
        if (state === undefined) throw hostError('Z_NO_ZONE', `zone ${name}: No such zone configured`);
        if (state !== 'installed') {
          throw hostError('Z_BAD_ZONE_STATE', `zone ${name} is ${state}: its site profile is written while it is installed and out of the kernel (it is read as it boots)`);
        }
        await writeSiteProfile((await zones.getZoneConfig(name)).zonepath, xml);
      },
      async boot(name: string): Promise<void> {
        await zones.bootZone(name);
      },
      async halt(name: string): Promise<void> {
        await zones.haltZone(name);
      },
      async uninstall(name: string): Promise<void> {
        await zones.uninstallZone(name);
      },
      async delete(name: string): Promise<void> {
        // As `zonecfg delete -F` (omicron's call): the CLI refuses a zone that is installed or
        // above, and passes force to zonecfg_destroy so that an incomplete one goes too.
        const state = await zones.zoneState(name);
        if (state !== undefined && state !== 'configured' && state !== 'incomplete') {
          throw hostError('Z_BAD_ZONE_STATE', `zone ${name} is ${state}: only a configured or incomplete zone may be deleted`);
        }
        await zones.deleteZone(name, { force: true });
      },
      async list(): Promise<ZoneInfo[]> {
        const out: ZoneInfo[] = [];
        for (const z of await zones.listZones()) {
          if (z.state === 'unknown') {
            log.warn({ zone: z.name }, 'zone in an unknown state left out of the list');
            continue;
          }
          out.push({ name: z.name, state: z.state });
        }
        return out;
      },
      async state(name: string): Promise<ZoneState | null> {
        const state = await zones.zoneState(name);
        return state === undefined || state === 'unknown' ? null : state;
      },
      async exec(zone: string, argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
        const { stdout, stderr } = zone === GLOBAL_ZONE ? await zones.global(argv, options) : await zones.zlogin(zone, argv, options);
        return { stdout, stderr };
      },
    };
  }

  // ---- datasets ----

  #makeDatasets(): HostDatasets {
    const addon = this.addon;
    return {
      // Not mounted: a delegated (zoned) dataset is mounted by its zone; see zfs.ts mountDataset.
      create: (name, props) => createDataset(name, props, addon),
      get: (name, props) => getDatasetProperties(name, [...props], addon),
      set: (name, props) => setDatasetProperties(name, props, addon),
      exists: (name) => datasetExists(name, addon),
      listChildren: (parent) => listChildDatasets(parent, addon),
      destroy: (name) => destroyDataset(name, addon),
      async listPools(): Promise<PoolInfo[]> {
        return (await listPools(addon)).map((p) => ({
          name: p.name,
          size: byteCount(p.size),
          allocated: byteCount(p.allocated),
          free: byteCount(p.free),
          health: p.health,
        }));
      },
    };
  }

  // ---- events and waits ----

  #makeEvents(): HostEvents {
    return {
      subscribe: (listener, zone) => this.#listeners.add(listener, zone),
      waitForZoneRunning: (zone, options) => this.#waitForZoneRunning(zone, options),
      waitForService: (zone, fmri, states, options) => this.#waitForService(zone, fmri, states, options),
    };
  }

  #scope(zone: string, options: WaitOptions, what: string): WaitScope {
    if (this.#closing !== null) throw hostError('ECLOSED', 'the host was closed');
    if (options.signal?.aborted) throw abortError(options.signal.reason);
    return new WaitScope({ subscribe: this.events.subscribe, scopes: this.#scopes }, zone, options, what);
  }

  /** Resolves once the zone runs: at once if it does, else on its "running" event (the scope's subscription predates the check). */
  async #untilRunning(scope: WaitScope): Promise<void> {
    const state = await scope.race(this.zoneTool.zoneState(scope.zone));
    if (state === undefined) throw hostError('ZONE_GONE', `zone ${scope.zone} does not exist`);
    if (state === 'running') return;
    if (GOING.has(state)) throw hostError('ZONE_GONE', `zone ${scope.zone} is ${state}`);
    await scope.race(scope.running);
  }

  async #waitForZoneRunning(zone: string, options: WaitOptions): Promise<void> {
    validateZoneName(zone);
    checkWaitOptions(options);
    if (options.timeoutMs === 0) {
      await this.#runningNow(zone, options);
      return;
    }
    const scope = this.#scope(zone, options, `zone ${zone} to be running`);
    try {
      await this.#untilRunning(scope);
    } finally {
      scope.end();
    }
  }

  /** A zero-deadline waitForZoneRunning: the zone's state now. */
  async #runningNow(zone: string, options: WaitOptions): Promise<void> {
    if (this.#closing !== null) throw hostError('ECLOSED', 'the host was closed');
    if (options.signal?.aborted) throw abortError(options.signal.reason);
    const state = await this.zoneTool.zoneState(zone);
    if (state === undefined) throw hostError('ZONE_GONE', `zone ${zone} does not exist`);
    if (GOING.has(state)) throw hostError('ZONE_GONE', `zone ${zone} is ${state}`);
    if (state !== 'running') throw hostError('ETIMEDOUT', `zone ${zone} is ${state}, not running (checked once: a zero deadline)`);
  }

  /**
   * A zero-deadline waitForService: the instance's state now, read by a native wait for any
   * state (which answers at once with the present one). No configd yet or no such instance is
   * "not in the state yet", as the waits' retries treat them.
   */
  async #serviceNow(zone: string, fmri: string, states: readonly SmfState[], options: WaitOptions): Promise<SmfState> {
    await this.#runningNow(zone, options);
    let now: SmfState;
    try {
      now = (await this.addon.smfWaitState(zone, fmri, { states: [...SMF_STATES], timeoutMs: 1000 }).promise) as SmfState;
    } catch (err) {
      if (isNativeError(err, 'SCF_ERROR_NO_SERVER') || isNativeError(err, 'SCF_ERROR_NOT_FOUND')) {
        throw hostError('ETIMEDOUT', `${fmri} in zone ${zone} is not there yet (${(err as Error).message}; checked once: a zero deadline)`, err);
      }
      throw err;
    }
    if (!states.includes(now)) throw hostError('ETIMEDOUT', `${fmri} in zone ${zone} is ${now}, not ${states.join(' or ')} (checked once: a zero deadline)`);
    return now;
  }

  async #waitForService(zone: string, fmri: string, states: readonly SmfState[], options: WaitOptions): Promise<SmfState> {
    validateZoneName(zone);
    assertInstanceFmri(fmri);
    if (!Array.isArray(states) || states.length === 0 || states.some((s) => !(SMF_STATES as readonly string[]).includes(s))) {
      throw Object.assign(new TypeError(`states must be a non-empty array of ${SMF_STATES.join(', ')}`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
    checkWaitOptions(options);
    if (options.timeoutMs === 0) return this.#serviceNow(zone, fmri, states, options);
    const scope = this.#scope(zone, options, `${fmri} in zone ${zone} to be ${states.join(' or ')}`);
    const initial = this.#options.smfRetry?.initialMs ?? 10;
    const cap = this.#options.smfRetry?.maxMs ?? 250;
    try {
      await this.#untilRunning(scope);
      let delay = initial;
      for (let attempt = 1; ; attempt++) {
        // libscf counts whole seconds: a backstop; the scope's timer is the exact deadline.
        const wait = this.addon.smfWaitState(zone, fmri, { states: [...states], timeoutMs: Math.max(1, Math.ceil(scope.remainingMs())) });
        scope.onEnd(() => wait.cancel());
        wait.promise.catch(() => {}); // ECANCELED after the scope ended is expected
        try {
          return (await scope.race(wait.promise)) as SmfState;
        } catch (err) {
          if (scope.settled) throw err; // the deadline, the signal, the zone going, the host closing
          wait.cancel();
          // The zone halting makes the native wait fail (deleted, no server) before its events arrive.
          const now = (await scope.race(this.zoneTool.listZones())).find((z) => z.name === zone);
          if (now === undefined || now.state !== 'running') {
            throw hostError('ZONE_GONE', `zone ${zone} is ${now?.state ?? 'gone'} while waiting for ${fmri}`, err);
          }
          if (isNativeError(err, 'SCF_ERROR_NO_SERVER') || isNativeError(err, 'SCF_ERROR_NOT_FOUND')) {
            const ms = Math.min(delay, scope.remainingMs());
            this.#log.debug(
              { zone, fmri, attempt, code: err.code, retryInMs: ms },
              'SMF wait not possible yet (no configd in the zone, or no such instance yet); starting it again',
            );
            await scope.sleep(ms);
            delay = Math.min(delay * 2, cap);
            continue;
          }
          if (isNativeError(err, 'ETIMEDOUT')) {
            // the native backstop came first: the scope's own timer is about to fire
            await scope.race(new Promise<never>(() => {}));
          }
          throw err;
        }
      }
    } finally {
      scope.end();
    }
  }
}
