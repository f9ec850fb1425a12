// The warm pool (issue 12): Propolis zones configured, installed (cloned from a template zone),
// booted to the network milestone, each with its own control VNIC and a propolis-server already
// listening, ahead of any request. A start takes one and does only what is the instance's own:
// the guest NICs' ports and VNICs (given to the running zone), the Propolis address on the
// control VNIC, the ensure and the Run. The pool also keeps the template the cold path clones.
//
// Where the pool's zones are recorded: in the instance ledger (instances.json, `pool`), so taking
// a zone is one write that removes it from the pool and gives it to the instance. After a kill
// the zone is the pool's or the instance's, never both, never neither.
//
// Why Propolis may listen before the instance is known: it binds the wildcard address, [::]:port.
// A Propolis zone is exclusive-IP, so the wildcard covers only the addresses the zone itself
// has: loopback, and on its control VNIC (over the sled's etherstub, which reaches only the
// global zone and the sled's other zones) the link-local address and, once the zone is taken,
// the instance's Propolis address. The guest VNICs carry no address in the zone (viona takes
// them whole), so no guest traffic reaches the server. Until then an idle propolis-server
// holds no VM and answers only its API, on-link within the sled, as it does once it serves.
//
// Refilling waits until no start is under way (each zone's clone and boot would compete with a
// start for the same disks and CPUs), then a quiet second, then makes all missing zones at once.
// A pool zone whose health fails (the zone went away, its milestone or Propolis not online) is
// removed and replaced; a start that took one finds out before it uses it, removes it and takes
// another or makes its own.
import type { Logger } from 'pino';
import { hostError, type Host } from './host/index.js';
import { NETWORK_MILESTONE, zoneImage } from './host/commands.js';
import {
  ensureLinkLocal, ensurePropolisService, ensureZoneInstalled, ensureZoneRunning, newPropolisZoneName, PROPOLIS_BRAND_SERVICE, PROPOLIS_DEVICES,
  propolisFmri, propolisProfile, removeZone, TEMPLATE_ZONE, waitForOnline, type OwnedZoneSpec, type Readiness, type ReadinessOptions, type VnicNames,
} from './zone.js';

/** One pool zone in the ledger: named (zone and control VNIC) before anything is made. */
export interface PoolZoneRecord {
  name: string;
  control_vnic: string;
}

/** The ledger's `pool` table. */
export interface PoolTable {
  zones: Record<string, PoolZoneRecord>;
  /** The template zone's name, recorded before it is made; null without a template. */
  template: string | null;
}

export interface PoolSettings {
  /** Zones to keep ready ([zones] warm_pool). */
  target: number;
  /** Keep a template zone and clone from it ([zones] template). */
  template: boolean;
  zoneRoot: string;
  controlLink: string;
  readiness: Readiness;
  readyTimeoutMs: number;
  propolisPort: number;
}

export interface PoolContext {
  host: Host;
  log: Logger;
  vnics: VnicNames;
  settings: PoolSettings;
  /** The ledger's pool table (mutated in place) and its group commit. */
  table: PoolTable;
  commit(): Promise<void>;
  /** The table changed, for the next write to carry: a zone taken is written with the record that took it. */
  touch(): void;
}

type ZoneStatus = 'warming' | 'ready' | 'removing';

/** How long after the last start ended the refill begins. */
const REFILL_QUIET_MS = 1_000;

/** The pool's zones (omicron has no pool; the instance manager's helper, as the port manager is). */
export class WarmPool {
  readonly #ctx: PoolContext;
  readonly #log: Logger;
  readonly #status = new Map<string, ZoneStatus>();
  /** Provisionings under way: refill waits for none. */
  #starts = 0;
  #templateReady = false;
  #started = false;
  /** Start-up's work is done: the template made or removed, the recorded zones adopted or removed. */
  #settled = false;
  #closed = false;
  readonly #abort = new AbortController();
  #unwatch: (() => void) | null = null;
  /** Wakes ready() waiters and the refill when something changed. */
  #waiters: Array<() => void> = [];
  #refilling: Promise<void> | null = null;
  /** Pending refill after the last start ended (REFILL_QUIET_MS). */
  #quiet: ReturnType<typeof setTimeout> | null = null;
  /** The latest warm-up failed: refilling waits for the next take or start rather than retrying at once. */
  #lastWarmFailed = false;

  constructor(ctx: PoolContext) {
    this.#ctx = ctx;
    this.#log = ctx.log.child({ component: 'warm-pool' });
    ctx.vnics.reserve(Object.values(ctx.table.zones).map((z) => z.control_vnic));
  }

  /** Zone name -> its VNICs, for start-up discovery (the template has none). */
  claimedZones(): Map<string, string[]> {
    const claimed = new Map(Object.values(this.#ctx.table.zones).map((z) => [z.name, [z.control_vnic]]));
    if (this.#ctx.table.template !== null) claimed.set(this.#ctx.table.template, []);
    return claimed;
  }

  counts(): { target: number; ready: number; warming: number } {
    let ready = 0;
    let warming = 0;
    for (const status of this.#status.values()) {
      if (status === 'ready') ready += 1;
      else if (status === 'warming') warming += 1;
    }
    return { target: this.#ctx.settings.target, ready, warming };
  }

  /** The template to clone a new Propolis zone from, if one is installed now. */
  template(): string | null {
    return this.#templateReady ? this.#ctx.table.template : null;
  }

  /**
   * Resolves once start-up's work is done (the template installed or removed, the recorded
   * zones adopted or removed) and the pool holds its target of ready zones.
   */
  async ready(): Promise<void> {
    while (!this.#closed && !this.#full()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  #full(): boolean {
    return this.#settled && this.counts().ready >= this.#ctx.settings.target;
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /**
   * After start-up discovery: the template made or adopted, the recorded zones adopted (each
   * brought back to ready, or removed), the pool shrunk or filled to its target.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#unwatch = this.#ctx.host.events.subscribe((event) => {
      if (this.#status.get(event.zonename) !== 'ready') return;
      if (event.newstate !== 'shutting_down' && event.newstate !== 'uninitialized') return;
      this.#log.warn({ zone: event.zonename, to: event.newstate }, 'warm pool zone went away; replacing it');
      void this.#replace(event.zonename);
    });
    void this.#begin().catch((err: unknown) => this.#log.error({ err }, 'the warm pool could not be started'));
  }

  async #begin(): Promise<void> {
    try {
      await this.#ensureTemplate();
    } catch (err) {
      // Zones are then installed from the image: slower, not broken, until the agent restarts.
      if (this.#closed) return;
      this.#log.error({ err, zone: this.#ctx.table.template }, 'the template zone could not be made; zones will be installed from the image');
    }
    const recorded = Object.keys(this.#ctx.table.zones);
    const excess = recorded.slice(this.#ctx.settings.target);
    for (const name of excess) this.#status.set(name, 'removing');
    if (excess.length > 0) this.#log.info({ zones: excess, target: this.#ctx.settings.target }, 'warm pool shrinks');
    await Promise.all([
      ...excess.map((name) => this.#remove(name)),
      ...recorded.slice(0, this.#ctx.settings.target).map((name) => this.#warm(name)),
    ]);
    this.#settled = true;
    this.#wake();
    this.#refill();
  }

  /** The template zone, installed once and halted for good: what the cold path and the pool clone. */
  async #ensureTemplate(): Promise<void> {
    const { table, settings, host } = this.#ctx;
    if (!settings.template) {
      if (table.template !== null) {
        await removeZone(host, table.template, [], this.#log);
        table.template = null;
        await this.#ctx.commit();
      }
      return;
    }
    if (table.template === null) {
      table.template = TEMPLATE_ZONE;
      await this.#ctx.commit();
    }
    const name = table.template;
    const began = performance.now();
    const state = await host.zones.state(name);
    // Never booted by us; one found up (an administrator's doing) cannot be cloned until halted.
    if (state === 'ready' || state === 'running') await host.zones.halt(name);
    const spec: OwnedZoneSpec = {
      name, image: zoneImage(PROPOLIS_BRAND_SERVICE), controlVnic: null, controlLink: settings.controlLink, zoneRoot: settings.zoneRoot,
    };
    const installed = await ensureZoneInstalled(host, spec, this.#wait(), (phase) => {
      if (phase === 'install') this.#log.info({ zone: name }, 'installing the template zone');
    });
    if (installed !== 'installed') throw hostError('Z_BAD_ZONE_STATE', `template zone ${name} is ${installed}, not installed`);
    if (state !== 'installed') this.#log.info({ zone: name, ms: Math.round(performance.now() - began) }, 'template zone installed');
    this.#templateReady = true;
    this.#wake();
  }

  /**
   * Takes a ready zone for an instance, at once: `claim` runs as the zone leaves the pool's
   * table, so the ledger write that follows (the request's own) has it in exactly one place.
   * Null when none is ready: the caller makes its own. The taker checks the zone's health
   * (check()) before it uses it.
   */
  takeReady(claim: (zone: PoolZoneRecord) => void): PoolZoneRecord | null {
    for (const [name, status] of this.#status) {
      if (status !== 'ready') continue;
      const record = this.#ctx.table.zones[name];
      this.#status.delete(name);
      if (record === undefined) continue;
      delete this.#ctx.table.zones[name];
      this.#ctx.touch();
      claim(record);
      this.#refillSoon();
      return record;
    }
    return null;
  }

  /** What is wrong with a zone now (taken from the pool, or in it), or null: it runs, its milestone and Propolis are online. */
  async check(name: string): Promise<string | null> {
    const { host } = this.#ctx;
    const state = await host.zones.state(name);
    if (state !== 'running') return `zone is ${state ?? 'gone'}`;
    for (const fmri of [NETWORK_MILESTONE, propolisFmri(name)]) {
      try {
        await host.events.waitForService(name, fmri, ['online'], { timeoutMs: 0 });
      } catch (err) {
        return `${fmri} is not online (${(err as Error).message})`;
      }
    }
    return null;
  }

  /**
   * Counts a provisioning under way, so refills wait for it; returns its end. It counts for as
   * long as a readiness wait may last, no longer: a start whose VM never comes up (Propolis stuck
   * in Starting, or unreachable while its monitor retries) would otherwise hold every refill for
   * good.
   */
  startBegun(): () => void {
    this.#starts += 1;
    if (this.#quiet !== null) clearTimeout(this.#quiet);
    this.#quiet = null;
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(expiry);
      this.#starts -= 1;
      if (this.#starts === 0) this.#refillSoon();
    };
    const limit = this.#ctx.settings.readyTimeoutMs;
    const expiry = setTimeout(() => {
      this.#log.warn({ after_ms: limit }, 'a start has not ended within the readiness deadline; the pool no longer waits for it to refill');
      end();
    }, limit);
    expiry.unref();
    return end;
  }

  /**
   * The refill, after a quiet moment with no start under way: the last starts' reports to Nexus
   * go out before the clones begin, and a take is followed by its start before the refill looks.
   */
  #refillSoon(): void {
    if (this.#closed || this.#quiet !== null) return;
    this.#quiet = setTimeout(() => {
      this.#quiet = null;
      this.#refill();
    }, REFILL_QUIET_MS);
    this.#quiet.unref();
  }

  /** Stops refilling and waiting; the zones stay as they are (adopted on the next start). */
  close(): void {
    this.#closed = true;
    if (this.#quiet !== null) clearTimeout(this.#quiet);
    this.#abort.abort(new Error('agent shutting down'));
    this.#unwatch?.();
    this.#wake();
  }

  /** Makes up the pool's deficit, in the background, once no start is under way. */
  #refill(): void {
    // Not before start-up has set the recorded zones' status: they would be counted as missing.
    if (!this.#settled || this.#closed || this.#refilling !== null || this.#starts > 0 || this.#quiet !== null) return;
    const missing = this.#ctx.settings.target - this.counts().ready - this.counts().warming;
    if (missing <= 0) return;
    this.#refilling = (async () => {
      const names: string[] = [];
      for (let i = 0; i < missing; i++) {
        const record = { name: newPropolisZoneName(), control_vnic: this.#ctx.vnics.control('Instance') };
        this.#ctx.table.zones[record.name] = record;
        this.#status.set(record.name, 'warming');
        names.push(record.name);
      }
      // Named in the ledger before anything is made, so a kill leaves nothing unclaimed.
      try {
        await this.#ctx.commit();
      } catch (err) {
        // Not on disk, so nothing may be made under these names: they go, rather than stay
        // "warming" with nothing warming them, and the next take or start tries again (not at
        // once: the disk is failing).
        for (const name of names) {
          delete this.#ctx.table.zones[name];
          this.#status.delete(name);
        }
        this.#lastWarmFailed = true;
        this.#wake();
        throw err;
      }
      await Promise.all(names.map((name) => this.#warm(name, true)));
    })().catch((err: unknown) => this.#log.error({ err }, 'warm pool refill failed')).finally(() => {
      this.#refilling = null;
      // Zones that failed to warm were removed: try again, unless starting is what fails.
      if (this.counts().ready + this.counts().warming < this.#ctx.settings.target && !this.#lastWarmFailed) this.#refill();
    });
  }

  #wait(): ReadinessOptions {
    const { settings } = this.#ctx;
    return { readiness: settings.readiness, timeoutMs: settings.readyTimeoutMs, signal: this.#abort.signal, log: this.#log };
  }

  /**
   * Brings a recorded zone to ready: running, link-local address, Propolis online. `unused`: its
   * names were just made up by the refill, so the host is not asked whether the zone or its
   * control VNIC exist (see OwnedZoneSpec.unused).
   */
  async #warm(name: string, unused = false): Promise<void> {
    const { host, settings, table } = this.#ctx;
    const record = table.zones[name];
    if (record === undefined) return;
    this.#status.set(name, 'warming');
    const began = performance.now();
    const wait = this.#wait();
    const spec: OwnedZoneSpec = {
      name, image: zoneImage(PROPOLIS_BRAND_SERVICE), cloneFrom: this.template(), controlVnic: record.control_vnic,
      controlLink: settings.controlLink, zoneRoot: settings.zoneRoot, devices: PROPOLIS_DEVICES, unused,
      profile: propolisProfile(name, settings.propolisPort),
    };
    try {
      const { profiled } = await ensureZoneRunning(host, spec, wait, (phase) => this.#log.debug({ zone: name, phase }, 'warming a pool zone'));
      await ensureLinkLocal(host, name, record.control_vnic);
      if (!profiled) await ensurePropolisService(host, name, settings.propolisPort);
      const fmri = propolisFmri(name);
      await waitForOnline(host, name, fmri, wait);
      if (this.#status.get(name) !== 'warming') return; // replaced or closed meanwhile
      this.#status.set(name, 'ready');
      this.#lastWarmFailed = false;
      this.#log.info({ zone: name, control_vnic: record.control_vnic, ms: Math.round(performance.now() - began), ...this.counts() },
        'warm pool zone ready');
      this.#wake();
    } catch (err) {
      if (this.#closed) return;
      this.#lastWarmFailed = true;
      this.#log.error({ err, zone: name }, 'warm pool zone could not be made ready; removing it');
      await this.#remove(name);
    }
  }

  /** A zone that failed: removed, then the pool made up again. */
  async #replace(name: string): Promise<void> {
    if (this.#status.get(name) === 'removing') return;
    this.#status.set(name, 'removing');
    await this.#remove(name);
    this.#refill();
  }

  async #remove(name: string): Promise<void> {
    const record = this.#ctx.table.zones[name];
    this.#status.set(name, 'removing');
    try {
      await removeZone(this.#ctx.host, name, record ? [record.control_vnic] : [], this.#log);
      if (this.#ctx.table.zones[name] === record) delete this.#ctx.table.zones[name];
      this.#status.delete(name);
      await this.#ctx.commit();
    } catch (err) {
      // Left in the ledger: the next start-up adopts or removes it again.
      this.#log.error({ err, zone: name }, 'cannot remove a warm pool zone');
    }
    this.#wake();
  }
}
