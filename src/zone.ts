// Zones the agent owns, on any Host (omicron's illumos/zone.rs + running_zone.rs): naming, a
// control VNIC, and an idempotent "make it running" that picks up from whatever state a zone
// was left in, so the same code provisions a new zone and adopts a half-made one after a crash.
// Readiness waits go through `wait*` below: event waits with a deadline, or, only when the
// config asks for it (for the benchmark), the original's 250 ms doubling poll.
import { randomUUID } from 'node:crypto';
import { formatSocketAddr } from './common/address.js';
import type { Logger } from 'pino';
import type { Host, SmfProfileInstance, SmfState, ZoneInfo } from './host/index.js';
import { hostError, isHostError } from './host/index.js';
import {
  ADDROBJ_STATIC6, PROPOLIS_SERVICE, svcadmEnable, svccfgAddInstance, svccfgAddPg, svccfgRefresh, svccfgSetProp, ipadmCreateLinkLocal, ipadmCreateStatic, ipadmDeleteAddr, ipadmShowAddr, NETWORK_MILESTONE,
} from './host/commands.js';

export const ZONE_PREFIX = 'oxz_';
export const BRAND = 'omicron1';

/** `oxz_<service>[_<unique>]` (reference §7). */
export function zoneName(service: string, unique?: string): string {
  return unique === undefined ? `${ZONE_PREFIX}${service}` : `${ZONE_PREFIX}${service}_${unique}`;
}

export const PROPOLIS_BRAND_SERVICE = 'propolis-server';
/** The installed, never booted zone the Propolis zones are cloned from (src/warm-pool.ts). */
export const TEMPLATE_ZONE = zoneName(PROPOLIS_BRAND_SERVICE, 'template');
/** Devices a Propolis zone gets (the VM monitor's). */
export const PROPOLIS_DEVICES = ['/dev/vmm/*', '/dev/vmmctl', '/dev/viona'];

/**
 * A new Propolis zone's name: an id of its own, not the Propolis id of the instance it will
 * serve, since a warm zone is made before that instance exists. (Ledgers from before the pool
 * named zones by Propolis id; those names are kept.)
 */
export function newPropolisZoneName(): string {
  return zoneName(PROPOLIS_BRAND_SERVICE, randomUUID());
}

/** The propolis-server SMF instance of a Propolis zone, `vm-<the zone's id>`. */
export function propolisFmri(zone: string): string {
  return `${PROPOLIS_SERVICE}:vm-${zone.slice(zoneName(PROPOLIS_BRAND_SERVICE, '').length)}`;
}

export type Readiness = 'event' | 'poll';

export interface ReadinessOptions {
  readiness: Readiness;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Where a step that falls back to a slower way says so. */
  log?: Logger;
}

/** The original's backoff (internal_service_policy): 250 ms, doubling, no randomisation here so runs compare. */
const POLL_INITIAL_MS = 250;
const POLL_MAX_MS = 60_000;

/** Resolves after `ms`; rejects with ABORT_ERR when `signal` aborts (its listener removed either way). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(hostError('ABORT_ERR', 'the operation was aborted', signal.reason));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(hostError('ABORT_ERR', 'the operation was aborted', signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs a Host wait either as one event wait with the whole deadline, or (poll mode) as repeated
 * zero-deadline checks with the original's backoff between them, until the deadline.
 */
export async function ready<T>(options: ReadinessOptions, wait: (o: { timeoutMs: number; signal?: AbortSignal }) => Promise<T>): Promise<T> {
  const { timeoutMs, signal } = options;
  if (options.readiness === 'event') return wait({ timeoutMs, ...(signal ? { signal } : {}) });
  const deadline = Date.now() + timeoutMs;
  let delay = POLL_INITIAL_MS;
  for (;;) {
    try {
      return await wait({ timeoutMs: 0, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (!isHostError(err, 'ETIMEDOUT')) throw err;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw hostError('ETIMEDOUT', `not ready within ${timeoutMs} ms (polling)`);
    await sleep(Math.min(delay, left), signal);
    delay = Math.min(delay * 2, POLL_MAX_MS);
  }
}

/**
 * Allocates control VNIC names `oxControl<Scope><n>` from one counter (as omicron's
 * VnicAllocator with superscope "Control"), skipping every number already used on the host, so
 * names never collide with VNICs adopted after a restart.
 */
export class VnicNames {
  #next = 0;
  #nextGuest = 0;

  /** Makes sure later names are above every `ox...<n>` and `vopte<n>` in `existing`. */
  reserve(existing: Iterable<string>): void {
    for (const name of existing) {
      const m = /^ox[A-Za-z_.]*?(\d+)$/.exec(name);
      if (m) this.#next = Math.max(this.#next, Number(m[1]) + 1);
      const g = /^vopte(\d+)$/.exec(name);
      if (g) this.#nextGuest = Math.max(this.#nextGuest, Number(g[1]) + 1);
    }
  }

  control(scope: string): string {
    return `oxControl${scope}${this.#next++}`;
  }

  /** A guest NIC's VNIC, `vopte<n>` (the original's name for the VNIC over an OPTE port). */
  guest(): string {
    return `vopte${this.#nextGuest++}`;
  }
}

export interface OwnedZoneSpec {
  name: string;
  /** Absolute path of the zone image. */
  image: string;
  /**
   * An installed zone to clone instead of installing the image (`zoneadm clone`, a ZFS clone
   * of its zonepath): the warm pool's template. Should the clone fail, the image is installed.
   */
  cloneFrom?: string | null;
  /** The control VNIC's name and the link (etherstub) it goes over; null for a zone that never boots (the template). */
  controlVnic: string | null;
  controlLink: string;
  /** Parent of the zonepaths, e.g. "/zone". */
  zoneRoot: string;
  devices?: string[];
  datasets?: string[];
  /**
   * Guest NICs, each a VNIC with the guest's MAC over its OPTE port (`vopte<N>` over
   * `opte<N>`, made by ensureGuestVnics before the zone boots), named in the zone's
   * configuration before the control VNIC (as the original orders them).
   */
  guestNics?: Array<{ name: string; mac: string; port: string }>;
  /**
   * The zone's and the control VNIC's names were chosen by this process for this attempt and
   * nothing has used them: neither exists, so ensureZoneInstalled does not ask.
   */
  unused?: boolean;
  /**
   * The zone's SMF site profile, written before a boot this call makes (not to a zone found
   * booting or running), so SMF configures and starts those services with no command in the zone.
   * If the zone's root will not take it (EBADZONEROOT), the boot goes on without it (and the
   * result says so).
   */
  profile?: readonly SmfProfileInstance[];
}

export type Phase = 'pool' | 'ports' | 'vnic' | 'configure' | 'install' | 'clone' | 'boot' | 'zone_running' | 'network'
  | 'handover' | 'address' | 'service' | 'propolis';

/** Called as each phase starts, so callers can log and time them. */
export type PhaseHook = (phase: Phase) => void;

/**
 * Steps run at once: resolves when all have, rejects with the first failure only once every one
 * has settled, so nothing is still being made when the caller cleans up after it.
 */
export async function allDone<T extends readonly unknown[]>(steps: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(steps);
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}

/** Each guest NIC's VNIC over its port, unless it exists already (`unused`: their names are new, none does). */
export async function ensureGuestVnics(
  host: Host, guests: NonNullable<OwnedZoneSpec['guestNics']>, onPhase: PhaseHook = () => {}, unused = false,
): Promise<void> {
  if (guests.length === 0) return;
  const missing: typeof guests = [];
  for (const guest of guests) if (unused || !(await host.links.linkExists(guest.name))) missing.push(guest);
  if (missing.length > 0) onPhase('vnic');
  for (const guest of missing) await host.links.createVnic({ name: guest.name, link: guest.port, mac: guest.mac });
}

/**
 * Brings a zone to "running" with its network milestone online, from whatever state it is in,
 * so the same code provisions a new zone and adopts one a killed agent left half-way. Per state
 * found (every state a Host reports):
 *
 *   (no zone)        configure, install (or clone), boot
 *   configured       install (or clone), boot
 *   incomplete       an install died with its zoneadm: uninstall, install, boot
 *   installed        boot
 *   ready            zoneadmd is booting it (the zoneadm that asked died with the agent; zoneadmd
 *                    did not): wait for running. Booting it again is refused ("boot operation is
 *                    invalid for running zones") and would fail the instance.
 *   running          nothing to do but the waits
 *   shutting_down,   a halt is under way: wait until the zone has left the kernel (installed),
 *   down             then boot
 *   mounted          `zoneadm mount` (an administrator's): refused, Z_BAD_ZONE_STATE, since
 *                    booting it is not ours to decide
 *
 * The guest NICs' VNICs must exist before the boot: `beforeBoot` (made at the same time as the
 * zone is configured and installed, by the caller) settles first, and a failure of either side
 * waits for the other, so nothing is still being made when the caller cleans up.
 *
 * Returns when the zone's network milestone is online, with whether it booted the zone (a fresh
 * boot has no addresses yet) and whether that boot applied spec.profile (written by this call).
 */
export async function ensureZoneRunning(
  host: Host,
  spec: OwnedZoneSpec,
  wait: ReadinessOptions,
  onPhase: PhaseHook = () => {},
  beforeBoot: Promise<void> = Promise.resolve(),
): Promise<{ booted: boolean; profiled: boolean }> {
  const [state] = await allDone([ensureZoneInstalled(host, spec, wait, onPhase), beforeBoot] as const);
  const booted = state === 'installed' || state === 'ready';
  let profiled = false;
  if (state === 'installed') {
    if (spec.profile !== undefined) {
      try {
        await host.zones.setProfile(spec.name, spec.profile);
        profiled = true;
      } catch (err) {
        // A speed-up, not a dependency (as the template is): a root that will not take the file
        // (not where an installed zone's is, or with a link on the way) leaves the services to
        // the caller's commands in the zone.
        if (!isHostError(err, 'EBADZONEROOT')) throw err;
        wait.log?.warn({ err, zone: spec.name }, 'cannot write the zone\'s site profile; its services will be configured in the zone instead');
      }
    }
    onPhase('boot');
    await host.zones.boot(spec.name);
  }
  onPhase('zone_running');
  await ready(wait, (o) => host.events.waitForZoneRunning(spec.name, o));
  onPhase('network');
  await ready(wait, (o) => host.events.waitForService(spec.name, NETWORK_MILESTONE, ['online'], o));
  return { booted, profiled };
}

/**
 * The first half of ensureZoneRunning: the control VNIC and the zone, configured and installed
 * (or cloned); resolves with the state the zone is in then: installed, ready or running.
 */
export async function ensureZoneInstalled(host: Host, spec: OwnedZoneSpec, wait: ReadinessOptions, onPhase: PhaseHook): Promise<ZoneInfo['state']> {
  if (spec.controlVnic !== null && (spec.unused === true || !(await host.links.linkExists(spec.controlVnic)))) {
    onPhase('vnic');
    await host.links.createVnic({ name: spec.controlVnic, link: spec.controlLink });
  }
  let state = spec.unused === true ? null : await host.zones.state(spec.name);
  if (state === 'shutting_down' || state === 'down') state = await waitForHalt(host, spec.name, wait);
  if (state === 'mounted') {
    throw hostError('Z_BAD_ZONE_STATE', `zone ${spec.name} is mounted (zoneadm mount); unmount it (zoneadm -z ${spec.name} unmount) so it can be booted`);
  }
  if (state === null) {
    onPhase('configure');
    await host.zones.configure({
      name: spec.name,
      brand: BRAND,
      zonepath: `${spec.zoneRoot}/${spec.name}`,
      autoboot: false,
      nets: [...(spec.guestNics ?? []).map((g) => ({ physical: g.name })), ...(spec.controlVnic === null ? [] : [{ physical: spec.controlVnic }])],
      devices: (spec.devices ?? []).map((match) => ({ match })),
      datasets: (spec.datasets ?? []).map((name) => ({ name })),
    });
    state = 'configured';
  }
  if (state === 'incomplete') {
    await host.zones.uninstall(spec.name);
    state = 'configured';
  }
  if (state === 'configured' && spec.cloneFrom) {
    onPhase('clone');
    try {
      await host.zones.clone(spec.name, spec.cloneFrom);
      return 'installed';
    } catch (err) {
      // The template is a speed-up, not a dependency: install instead, from what the clone left.
      state = await host.zones.state(spec.name);
      if (state !== 'configured' && state !== 'incomplete') throw err;
      wait.log?.warn({ err, zone: spec.name, template: spec.cloneFrom }, 'cloning the template failed; installing the image instead');
      if (state === 'incomplete') await host.zones.uninstall(spec.name);
      state = 'configured';
    }
  }
  if (state === 'configured') {
    onPhase('install');
    await host.zones.install(spec.name, spec.image);
    state = 'installed';
  }
  return state as ZoneInfo['state'];
}

/**
 * Waits, by zone events, until a zone that is shutting down has left the kernel; resolves with
 * the state it is in then (installed, or null if it was removed meanwhile).
 */
async function waitForHalt(host: Host, name: string, wait: ReadinessOptions): Promise<ZoneInfo['state'] | null> {
  let changed = false;
  let wake = () => {};
  const unsubscribe = host.events.subscribe((event) => {
    if (event.zonename !== name || event.newstate !== 'uninitialized') return;
    changed = true;
    wake();
  }, name);
  const deadline = Date.now() + wait.timeoutMs;
  try {
    for (;;) {
      changed = false;
      const state = await host.zones.state(name);
      if (state !== 'shutting_down' && state !== 'down') return state;
      const left = deadline - Date.now();
      if (left <= 0) throw hostError('ETIMEDOUT', `zone ${name} was still ${state} after ${wait.timeoutMs} ms`);
      if (changed) continue;
      // Until the event or the deadline, whichever is first; then the state is read again.
      await new Promise<void>((resolve, reject) => {
        const signal = wait.signal;
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          wake = () => {};
        };
        const onAbort = () => {
          done();
          reject(hostError('ABORT_ERR', 'the operation was aborted', signal?.reason));
        };
        const timer = setTimeout(() => { done(); resolve(); }, left);
        wake = () => { done(); resolve(); };
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  } finally {
    unsubscribe();
  }
}

/**
 * Ensures `<vnic>/<name>` (default `omicron6`) is `cidr` in the zone, link-local first as the
 * original does; in GLOBAL_ZONE, the sled's own addresses on its underlay VNIC.
 * `fresh`: the zone was just booted, so its (temporary) addresses are known to be none.
 */
export async function ensureAddress(
  host: Host, zone: string, vnic: string, cidr: string, options: { fresh?: boolean; name?: string; linkLocal?: boolean } = {},
): Promise<void> {
  const addrobj = `${vnic}/${options.name ?? ADDROBJ_STATIC6}`;
  let current: string | null = null;
  if (!options.fresh) {
    try {
      current = (await host.zones.exec(zone, ipadmShowAddr(addrobj))).stdout.trim();
    } catch (err) {
      if (!isHostError(err, 'ECOMMAND')) throw err;
    }
  }
  if (current === cidr) return;
  if (current) await host.zones.exec(zone, ipadmDeleteAddr(addrobj));
  // false: the caller knows the link-local address is there (a warm pool zone's).
  if (options.linkLocal !== false) await ensureLinkLocal(host, zone, vnic);
  await host.zones.exec(zone, ipadmCreateStatic(addrobj, cidr));
}

/** The link-local address an IPv6 static one needs first on its interface. */
export async function ensureLinkLocal(host: Host, zone: string, vnic: string): Promise<void> {
  try {
    await host.zones.exec(zone, ipadmCreateLinkLocal(vnic));
  } catch (err) {
    // Already there from an earlier attempt: fine. Anything else will fail the static one too.
    if (!isHostError(err, 'ECOMMAND')) throw err;
  }
}

/**
 * A Propolis zone's site profile: its propolis-server instance, listening on the zone's wildcard
 * (src/warm-pool.ts says why that is safe), enabled; SMF starts it once the zone's network is up.
 * What ensurePropolisService does over zlogin, with no command in the zone.
 */
export function propolisProfile(zone: string, port: number): SmfProfileInstance[] {
  return [{ fmri: propolisFmri(zone), enabled: true, properties: { 'config/server_addr': propolisServerAddr(port) } }];
}

/** propolis-server's config/server_addr: the zone's wildcard (src/warm-pool.ts says why that is safe). */
function propolisServerAddr(port: number): string {
  return formatSocketAddr({ host: '::', port });
}

/**
 * A Propolis zone's propolis-server instance, configured to listen on the zone's wildcard
 * (src/warm-pool.ts says why that is safe) and enabled, over zlogin: for a zone whose boot did
 * not apply propolisProfile (one found booting or running, or with steps = "serial", the
 * original's way). `svccfg add` and `addpg` are not idempotent, and after a restart they may have
 * been done: their refusal is taken as done.
 */
export async function ensurePropolisService(host: Host, zone: string, port: number): Promise<void> {
  const fmri = propolisFmri(zone);
  const tolerate = async (argv: string[]) => {
    try {
      await host.zones.exec(zone, argv);
    } catch (err) {
      if (!isHostError(err, 'ECOMMAND')) throw err;
    }
  };
  await tolerate(svccfgAddInstance(PROPOLIS_SERVICE, fmri.slice(PROPOLIS_SERVICE.length + 1)));
  await tolerate(svccfgAddPg(fmri, 'config', 'astring'));
  await host.zones.exec(zone, svccfgSetProp(fmri, 'config/server_addr', propolisServerAddr(port)));
  await host.zones.exec(zone, svccfgRefresh(fmri));
  await host.zones.exec(zone, svcadmEnable(fmri));
}

/** Waits for an SMF instance in a zone to be online. */
export function waitForOnline(host: Host, zone: string, fmri: string, wait: ReadinessOptions): Promise<SmfState> {
  return ready(wait, (o) => host.events.waitForService(zone, fmri, ['online'], o));
}

/**
 * Takes a zone down as far as it exists (halt, uninstall, delete) and deletes the VNICs given;
 * what is already gone is skipped, so it can be re-run after a crash or a partial failure.
 */
export async function removeZone(host: Host, name: string | null, vnics: readonly string[], log: Logger): Promise<void> {
  if (name !== null) {
    let state = await host.zones.state(name);
    if (state === 'running' || state === 'ready' || state === 'shutting_down' || state === 'down') {
      await host.zones.halt(name);
      state = await host.zones.state(name);
    }
    if (state === 'installed' || state === 'incomplete') {
      await host.zones.uninstall(name);
      state = await host.zones.state(name);
    }
    if (state !== null) await host.zones.delete(name);
  }
  // Asked one by one: listing every VNIC on a sled with thousands costs more than a few lookups.
  for (const vnic of vnics) {
    if (await host.links.linkExists(vnic)) await host.links.deleteVnic(vnic);
  }
  log.info({ zone: name, vnics }, 'zone removed');
}
