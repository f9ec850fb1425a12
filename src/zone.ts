// Zones the agent owns, on any Host (omicron's illumos/zone.rs + running_zone.rs): naming, a
// control VNIC, and an idempotent "make it running" that picks up from whatever state a zone
// was left in, so the same code provisions a new zone and adopts a half-made one after a crash.
// Readiness waits go through `wait*` below: event waits with a deadline, or, only when the
// config asks for it (for the benchmark), the original's 250 ms doubling poll.
import type { Logger } from 'pino';
import type { Host, SmfState, ZoneInfo } from './host/index.js';
import { hostError, isHostError } from './host/index.js';
import {
  ADDROBJ_STATIC6, ipadmCreateLinkLocal, ipadmCreateStatic, ipadmDeleteAddr, ipadmShowAddr, NETWORK_MILESTONE,
} from './host/commands.js';

export const ZONE_PREFIX = 'oxz_';
export const BRAND = 'omicron1';

/** `oxz_<service>[_<unique>]` (reference §7). */
export function zoneName(service: string, unique?: string): string {
  return unique === undefined ? `${ZONE_PREFIX}${service}` : `${ZONE_PREFIX}${service}_${unique}`;
}

export type Readiness = 'event' | 'poll';

export interface ReadinessOptions {
  readiness: Readiness;
  timeoutMs: number;
  signal?: AbortSignal;
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
  /** The control VNIC's name and the link (etherstub) it goes over. */
  controlVnic: string;
  controlLink: string;
  /** Parent of the zonepaths, e.g. "/zone". */
  zoneRoot: string;
  devices?: string[];
  datasets?: string[];
  /**
   * Guest NICs, each a VNIC with the guest's MAC over its OPTE port (`vopte<N>` over
   * `opte<N>`, made before this is called), given to the zone before the control VNIC (as the
   * original orders them).
   */
  guestNics?: Array<{ name: string; mac: string; port: string }>;
}

export type Phase = 'ports' | 'vnic' | 'configure' | 'install' | 'boot' | 'zone_running' | 'network' | 'address' | 'service' | 'propolis';

/** Called as each phase starts, so callers can log and time them. */
export type PhaseHook = (phase: Phase) => void;

async function zoneState(host: Host, name: string): Promise<ZoneInfo['state'] | null> {
  return (await host.zones.list()).find((z) => z.name === name)?.state ?? null;
}

/**
 * Brings a zone to "running" with its network milestone online, from whatever state it is in,
 * so the same code provisions a new zone and adopts one a killed agent left half-way. Per state
 * found (every state a Host reports):
 *
 *   (no zone)        configure, install, boot
 *   configured       install, boot
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
 * Returns when the zone's network milestone is online, with whether it booted the zone (a fresh
 * boot has no addresses yet).
 */
export async function ensureZoneRunning(
  host: Host,
  spec: OwnedZoneSpec,
  wait: ReadinessOptions,
  onPhase: PhaseHook = () => {},
): Promise<boolean> {
  const present = new Set((await host.links.listVnics()).map((v) => v.name));
  const guests = spec.guestNics ?? [];
  if (!present.has(spec.controlVnic) || guests.some((g) => !present.has(g.name))) onPhase('vnic');
  for (const guest of guests) {
    if (!present.has(guest.name)) await host.links.createVnic({ name: guest.name, link: guest.port, mac: guest.mac });
  }
  if (!present.has(spec.controlVnic)) await host.links.createVnic({ name: spec.controlVnic, link: spec.controlLink });
  let state = await zoneState(host, spec.name);
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
      nets: [...guests.map((g) => ({ physical: g.name })), { physical: spec.controlVnic }],
      devices: (spec.devices ?? []).map((match) => ({ match })),
      datasets: (spec.datasets ?? []).map((name) => ({ name })),
    });
    state = 'configured';
  }
  if (state === 'incomplete') {
    await host.zones.uninstall(spec.name);
    state = 'configured';
  }
  if (state === 'configured') {
    onPhase('install');
    await host.zones.install(spec.name, spec.image);
    state = 'installed';
  }
  const booting = state === 'installed' || state === 'ready';
  if (state === 'installed') {
    onPhase('boot');
    await host.zones.boot(spec.name);
  }
  onPhase('zone_running');
  await ready(wait, (o) => host.events.waitForZoneRunning(spec.name, o));
  onPhase('network');
  await ready(wait, (o) => host.events.waitForService(spec.name, NETWORK_MILESTONE, ['online'], o));
  return booting;
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
  });
  const deadline = Date.now() + wait.timeoutMs;
  try {
    for (;;) {
      changed = false;
      const state = await zoneState(host, name);
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
export async function ensureAddress(host: Host, zone: string, vnic: string, cidr: string, options: { fresh?: boolean; name?: string } = {}): Promise<void> {
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
  try {
    await host.zones.exec(zone, ipadmCreateLinkLocal(vnic));
  } catch (err) {
    // Already there from an earlier attempt: fine. Anything else will fail the static one too.
    if (!isHostError(err, 'ECOMMAND')) throw err;
  }
  await host.zones.exec(zone, ipadmCreateStatic(addrobj, cidr));
}

/** Waits for an SMF instance in a zone to be online. */
export function waitForOnline(host: Host, zone: string, fmri: string, wait: ReadinessOptions): Promise<SmfState> {
  return ready(wait, (o) => host.events.waitForService(zone, fmri, ['online'], o));
}

/**
 * Takes a zone down as far as it exists (halt, uninstall, delete) and deletes the VNICs given;
 * what is already gone is skipped, so it can be re-run after a crash or a partial failure.
 */
export async function removeZone(host: Host, name: string, vnics: readonly string[], log: Logger): Promise<void> {
  let state = await zoneState(host, name);
  if (state === 'running' || state === 'ready' || state === 'shutting_down' || state === 'down') {
    await host.zones.halt(name);
    state = await zoneState(host, name);
  }
  if (state === 'installed' || state === 'incomplete') {
    await host.zones.uninstall(name);
    state = await zoneState(host, name);
  }
  if (state !== null) await host.zones.delete(name);
  const present = new Set((await host.links.listVnics()).map((v) => v.name));
  for (const vnic of vnics) {
    if (present.has(vnic)) await host.links.deleteVnic(vnic);
  }
  log.info({ zone: name, vnics }, 'zone removed');
}
