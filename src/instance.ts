// One VM instance on this sled (omicron instance.rs), as an actor: every operation on the host
// goes through its own serial queue, so two never overlap. The request path only runs the state
// machine and records the result in the ledger; provisioning, Propolis calls and teardown run
// on the queue, and what they observe reaches Nexus through the notifier.
//
// Fixed on purpose, relative to the original: InstanceProperties carries the real memory,
// vcpus, hostname, image and bootrom; every readiness wait is an event wait; provisioning is
// idempotent, so the same code adopts an instance found half-made after a restart; the monitor
// retries transient errors instead of ending; and a zone that disappears at any phase makes the
// instance `failed`, which Nexus is told.
import type { Logger } from 'pino';
import { formatSocketAddr, parseSocketAddr } from './common/address.js';
import { InstanceStates, type InstanceAction, type PropolisInstanceState } from './common/instance.js';
import { LatestWrite } from './common/latest-write.js';
import type { NexusNotifier } from './common/nexus-notifier.js';
import type { Host } from './host/index.js';
import { isHostError } from './host/index.js';
import { zoneImage } from './host/commands.js';
import type { WarmPool } from './warm-pool.js';
import type { NexusClient } from './nexus-client.js';
import { portOfVnic, type GuestNic, type PortManager } from './port-manager.js';
import type {
  InstanceHardware, InstanceRuntimeState, InstanceRuntimeStateRequested,
} from './params.js';
import type { InstanceMigrateParams } from './params.js';
import type { Static } from 'typebox';
import { PropolisClient, PropolisError, type InstanceEnsureRequest, type InstanceProperties } from './propolis-client.js';
import {
  allDone, ensureAddress, ensureGuestVnics, ensurePropolisService, ensureZoneRunning, newPropolisZoneName, PROPOLIS_BRAND_SERVICE, PROPOLIS_DEVICES,
  propolisFmri, propolisProfile, ready, removeZone, sleep, waitForOnline, type OwnedZoneSpec,
  type Phase, type Readiness, type VnicNames,
} from './zone.js';
import { instanceBundle, type ZoneBundles } from './zone-bundle.js';

const MIB = 1024 * 1024;
const MONITOR_BACKOFF_MAX_MS = 5_000;

/** What the ledger keeps of an instance: enough to adopt or re-create it after a restart. */
export interface InstanceRecord {
  id: string;
  hardware: InstanceHardware;
  migrate: Static<typeof InstanceMigrateParams> | null;
  /** The latest runtime state (so gen keeps growing across restarts). */
  runtime: InstanceRuntimeState;
  /** What Nexus last asked for and has not been reached yet. */
  desired: InstanceRuntimeStateRequested | null;
  /** Guest NIC VNICs and the control VNIC, named once and kept, so adoption finds them. */
  guest_vnics: string[];
  control_vnic: string | null;
  /**
   * The zone serving the instance (`oxz_propolis-server_<its own id>`), named or taken from the
   * warm pool before anything is made for it; null until then and after the teardown.
   */
  zone: string | null;
  /** The zone came from the warm pool: the guest VNICs are given to it running, not configured. */
  pooled?: boolean;
  /**
   * No state with a higher generation has been reported to Nexus. Written ahead of the runtime
   * (its gen + GEN_LEASE), so a report need not wait for its own ledger write; after a restart
   * the agent continues above it. Absent in ledgers from before it existed: gen + 1 then.
   */
  reported_gen_limit?: number;
}

/** How far reports may run ahead of the generation the ledger holds (see InstanceRecord). */
export const GEN_LEASE = 16;
/** The longest wait between attempts to record a state whose report needs it. */
const REPORT_RETRY_MAX_MS = 5_000;

/** The fields of a record that #record() sets from the state machine, and an observed state changes. */
export type StateField = 'runtime' | 'desired' | 'reported_gen_limit';
const STATE_FIELDS: readonly StateField[] = ['runtime', 'desired', 'reported_gen_limit'];

export interface InstanceSettings {
  zoneRoot: string;
  controlLink: string;
  readiness: Readiness;
  readyTimeoutMs: number;
  imageId: string;
  bootromId: string;
  propolisPort: number;
  /** "serial": the original's order, one step after another (the benchmark's baseline). */
  steps: 'parallel' | 'serial';
  /** The sled's underlay address ([config] underlay_address): Propolis addresses are in its /64. */
  underlayAddress?: string;
}

export interface InstanceContext {
  host: Host;
  log: Logger;
  nexus: NexusClient;
  notifier: NexusNotifier;
  vnics: VnicNames;
  /** The guest NICs' OPTE ports. */
  ports: PortManager;
  /** Warm zones to take, and the template to clone; null: every zone is installed. */
  pool: WarmPool | null;
  settings: InstanceSettings;
  /**
   * Makes the ledger (with this instance's record as it is now) durable. `fields`: only these of
   * the record changed since it was last committed, and only they are written (the journal then
   * appends them, not the record with its hardware); none: the whole record.
   */
  commit(fields?: readonly StateField[]): Promise<void>;
  /** The instance is gone from this sled (destroyed, or stopped and torn down). */
  forget(id: string): void;
  /** The notifier's key for this actor's reports (default `instance:<id>`). */
  lane?: () => string;
  /** Optional: each provisioning phase as it starts (the boot benchmark times them). */
  onPhase?: (id: string, phase: Phase | 'running') => void;
  /** Optional: where the evidence of a failed instance's zone goes before its teardown. */
  bundles?: ZoneBundles;
}

export class Instance {
  readonly states: InstanceStates;
  /** Bound to the instance, its Propolis and, once it has one, its zone. */
  log: Logger;
  #queue: Promise<void> = Promise.resolve();
  /** Aborted to cancel provisioning (a stop, a lost zone, shutdown). */
  #provisioning: AbortController | null = null;
  #propolis: PropolisClient | null = null;
  #monitor: AbortController | null = null;
  #unwatch: (() => void) | null = null;
  /** The zone #unwatch listens to. */
  #watched: string | null = null;
  /** Set while the agent itself halts the zone, so its events are not taken for a failure. */
  #tearingDown = false;
  #closed = false;
  /** The request that started the work could not be recorded: only its undo still runs. */
  #abandoned = false;
  /** The zone went away without the agent asking: the instance is failed, not cancelled. */
  #zoneLost = false;
  /** The highest reported_gen_limit known to be on disk: reports up to it need not wait. */
  #durableGenLimit: number;
  /** Settles when the latest report was delivered to Nexus (or will not be). */
  #lastReport: Promise<'delivered' | 'refused' | 'superseded' | 'cancelled'> = Promise.resolve('delivered');
  /** The generation of that report (none yet in this process: -1). */
  #reportedGen = -1;
  /** Provisionings queued and not started yet. */
  #runsQueued = 0;
  /**
   * Propolis was asked to stop and its monitor has not yet seen it Destroyed: the teardown is
   * still to come, and a run asked meanwhile waits for it (#afterTeardown queues it).
   */
  #stopSent = false;
  /** This record's ledger writes. */
  readonly #writes = new LatestWrite();
  /** The record is on disk (read from the ledger, or written once since): a failed write no longer means the sled never had it. */
  #recorded: boolean;
  /**
   * Ends this start for the warm pool, which refills only when no start is under way: called
   * once Propolis reports the VM running (its report to Nexus is part of the start), or when the
   * provisioning ends without that.
   */
  #startEnded: (() => void) | null = null;
  /** The zone was taken from the pool for this start and its health not checked yet (not persisted: adoption repairs). */
  #poolZoneUnchecked = false;
  /** A zone was taken from the pool and no ledger write carrying that has been made yet. */
  #takeUnwritten = false;
  /** Whether the write that carried the take from the pool landed; null once a provisioning has seen it. */
  #takeWritten: Promise<boolean> | null = null;
  /**
   * Names this process chose for the next provisioning and nothing has used yet, so it need not
   * ask the host whether they exist: no zone has a new UUID's name, and VnicNames skips every
   * link and port name found at start-up (one made since by someone else fails the create,
   * rather than being taken over). `zone`: the zone and its control VNIC; `links`: the guest
   * VNICs and their ports. Cleared as a provisioning begins (a retry asks again).
   */
  #unusedNames = { zone: false, links: false };
  /**
   * The record's firewall rules came with the request that made it, so they are its VPCs' rules
   * as of now: true until its first provisioning, or a later request, whichever comes first.
   * Later provisionings (a run after a stop, a restart) take the VPCs' rules as last recorded,
   * which a rules PUT may have changed since; the record's would undo that.
   */
  #rulesFromRequest: boolean;
  /** Whether ensure() has been called on this actor. */
  #asked = false;

  #endStart(): void {
    this.#startEnded?.();
    this.#startEnded = null;
  }

  /** `onDisk`: the record was read from the ledger (not created by a request not yet written). */
  constructor(
    readonly record: InstanceRecord,
    private readonly ctx: InstanceContext,
    onDisk: boolean,
  ) {
    this.states = new InstanceStates(record.runtime);
    this.states.desired = record.desired;
    this.#durableGenLimit = onDisk ? record.reported_gen_limit ?? record.runtime.gen + 1 : 0;
    this.#rulesFromRequest = !onDisk;
    this.#recorded = onDisk;
    this.log = this.#logger();
  }

  #logger(): Logger {
    const zone = this.record.zone === null ? {} : { zone: this.record.zone };
    return this.ctx.log.child({ instance: this.record.id, propolis: this.record.runtime.propolis_id, ...zone });
  }

  get id(): string {
    return this.record.id;
  }

  /** Its zone, once named or taken from the pool. */
  get zone(): string | null {
    return this.record.zone;
  }

  get current(): InstanceRuntimeState {
    return this.states.current;
  }

  /** The VNICs this instance's zone uses (for orphan detection at start-up). */
  get vnics(): string[] {
    return [...this.record.guest_vnics, ...(this.record.control_vnic ? [this.record.control_vnic] : [])];
  }

  /**
   * PUT /instances/{id}: runs the state machine (a 400 if the transition is not allowed),
   * makes the new state durable, queues what must happen on the host, and returns the state.
   */
  async ensure(target: InstanceRuntimeStateRequested): Promise<InstanceRuntimeState> {
    if (this.#asked) this.#rulesFromRequest = false;
    this.#asked = true;
    const action = this.states.requestTransition(target);
    if (action === null && this.states.current === this.record.runtime) {
      // Already stopped (Nexus asking again, or about an instance this sled had forgotten).
      if (this.#done()) this.#enqueue('leave', () => this.#leave(false));
      // Nexus repeating a request whose write is still in flight, or failed: answered once it is
      // durable, as the first is (and refused if it fails, as the first is).
      const answer = this.states.current;
      await this.#writes.landed(() => this.#write());
      return answer;
    }
    this.#record();
    // Names go into the same ledger write as the request, so provisioning needs no write of its own.
    if (action === 'run') this.#nameLinks();
    const answer = this.states.current;
    // The host work starts while the ledger write is in flight; the answer waits for it. A crash
    // in between leaves host objects no ledger claims, which start-up removes as orphans, and
    // Nexus, having had no answer, asks again.
    const durable = this.#write();
    if (action !== null) this.#act(action);
    else if (this.#done()) this.#enqueue('leave', () => this.#leave(false));
    const wasRecorded = this.#recorded;
    try {
      await durable;
    } catch (err) {
      if (wasRecorded) {
        // The sled has this instance on disk, perhaps running: undoing would end a VM for a
        // failed write. The request fails; what it started goes on, and the next write that
        // succeeds records it (a restart before that converges to the record on disk).
        this.log.error({ err }, 'cannot record the request; it is refused, and what it started goes on');
        throw err;
      }
      this.log.error({ err }, 'cannot record the request; undoing what it started');
      this.#abandoned = true;
      this.#provisioning?.abort(new Error('the request could not be recorded'));
      this.#enqueue('undo', () => this.#teardown());
      throw err;
    }
    return answer;
  }

  /**
   * After a restart: bring the instance back to what the ledger says it should be (converge()).
   * Reports may have run ahead of the ledger's runtime, never past reported_gen_limit:
   * continuing above it keeps every later report newer than anything Nexus has seen.
   */
  resume(): void {
    const limit = this.record.reported_gen_limit ?? this.states.current.gen + 1;
    this.states.current = { ...this.states.current, gen: Math.max(this.states.current.gen, limit) + 1 };
    this.#record();
    this.converge();
  }

  /**
   * Brings the host to what the record says: after a restart (resume()), and for a migration
   * target. Whatever moment the agent was killed at, the ledger holds one of the rows below, and
   * the zone may be in any state a Host reports; each row's action handles every zone state
   * (ensureZoneRunning and removeZone list theirs), and a row that needs nothing needs no zone.
   *
   *   ledger state             desired            action
   *   ----------------------   ----------------   -------------------------------------------------
   *   failed                   any (cleared)      tear down whatever is left, report failed, stay
   *                                               until Nexus destroys it (never provisioned again)
   *   any but failed           stopped/destroyed  stop: no Propolis is attached after a restart,
   *   stopping                 any                so tear down (halting the zone ends the VM),
   *                                               observe Destroyed (-> stopped), report; then
   *                                               leave the sled (destroyed: after reporting it).
   *                                               A run asked during the stop (desired running)
   *                                               provisions again once the teardown is done
   *   stopped                  none               Propolis reported Stopped, teardown may not have
   *                                               ended: tear down, report stopped, leave the sled
   *   destroyed                none               tear down, report destroyed, leave the sled
   *   starting/running/        running/reboot/    provision from the zone state found (adopts a
   *   rebooting/migrating      none               running zone as it is, waits out a boot or a
   *   creating/stopped         running/reboot     halt under way, completes a half-made zone),
   *                                               re-attach Propolis, Run it if it never ran, and
   *                                               monitor; a VM that was running is reported by
   *                                               the monitor. Running or a migration's source
   *                                               with a new Propolis (the zone was halted, the
   *                                               sled rebooted): the VM is gone, so it fails
   *   creating/repairing       none               nothing (no host objects are made for them)
   */
  converge(): void {
    const state = this.states.current.run_state;
    const desired = this.states.desired?.run_state ?? null;
    if (state === 'failed') {
      this.#enqueue('clean up', () => this.#settleFailed());
    } else if (desired === 'stopped' || desired === 'destroyed' || state === 'stopping') {
      this.#enqueue('stop', () => this.#stop());
    } else if (state === 'stopped' || state === 'destroyed') {
      if (desired === null) this.#enqueue('leave', () => this.#leave(true));
      else this.#queueRun(false);
    } else if (desired === 'running' || desired === 'reboot' || state === 'starting' || state === 'running'
      || state === 'rebooting' || state === 'migrating') {
      this.#queueRun(false);
    }
  }

  /** Stops watching and monitoring (shutdown of the agent); the VM keeps running. */
  close(): void {
    this.#closed = true;
    this.#endStart();
    this.#provisioning?.abort(new Error('agent shutting down'));
    this.#monitor?.abort(new Error('agent shutting down'));
    this.#unwatch?.();
    this.#unwatch = null;
    void this.#propolis?.close();
  }

  /** Settles when everything queued so far has run. */
  idle(): Promise<void> {
    return this.#queue;
  }

  /**
   * Names the guest VNICs, and the zone: a ready one taken from the warm pool, or a new one with
   * its control VNIC; in the ledger write of the request that runs the instance. Kept until the
   * teardown.
   */
  #nameLinks(): void {
    if (this.record.zone !== null) return;
    if (this.record.guest_vnics.length === 0) {
      this.record.guest_vnics = this.record.hardware.nics.map(() => this.ctx.vnics.guest());
      this.#unusedNames.links = true;
    }
    if (!this.#takeFromPool()) this.#nameZone();
  }

  /** A new zone's names. */
  #nameZone(): void {
    this.record.zone = newPropolisZoneName();
    this.record.control_vnic = this.ctx.vnics.control('Instance');
    this.record.pooled = false;
    this.#unusedNames.zone = true;
    this.log = this.#logger();
  }

  /** Takes a ready zone from the pool, if it has one; its health is checked before it is used. */
  #takeFromPool(): boolean {
    const taken = this.ctx.pool?.takeReady((zone) => {
      this.record.zone = zone.name;
      this.record.control_vnic = zone.control_vnic;
      this.record.pooled = true;
      this.#poolZoneUnchecked = true;
      this.#takeUnwritten = true;
      this.log = this.#logger();
    }) ?? null;
    if (taken !== null) this.log.info({ control_vnic: taken.control_vnic, pool: this.ctx.pool?.counts() }, 'instance zone taken from the warm pool');
    return taken !== null;
  }

  /** After a teardown, or in a ledger from before: the zone chosen, and recorded, before anything is made. */
  async #chooseZone(): Promise<void> {
    this.#nameLinks();
    await this.#commit();
  }

  /**
   * A zone taken from the pool for this start, checked before it is used: one that fails (gone,
   * its milestone or Propolis not online) is removed and another chosen. Resolves with whether
   * the zone is a checked pool zone (Propolis listening, no address yet).
   */
  async #checkPoolZone(phase: (p: Phase) => void): Promise<boolean> {
    const pool = this.ctx.pool;
    while (this.#poolZoneUnchecked && pool !== null) {
      this.#poolZoneUnchecked = false;
      const zone = this.record.zone as string;
      phase('pool');
      const problem = await pool.check(zone);
      if (problem === null) return true;
      this.log.warn({ problem }, 'the warm pool zone taken failed its health check; removing it and choosing another');
      await removeZone(this.ctx.host, zone, [this.record.control_vnic as string], this.log);
      this.record.zone = null;
      this.record.control_vnic = null;
      await this.#chooseZone();
    }
    return false;
  }

  #record(): void {
    this.record.runtime = this.states.current;
    this.record.desired = this.states.desired;
    this.record.reported_gen_limit = Math.max(this.record.reported_gen_limit ?? 0, this.states.current.gen + GEN_LEASE);
  }

  /** A ledger write of the record as it is now; once durable, its reported_gen_limit is too. */
  #write(fields?: readonly StateField[]): Promise<void> {
    const limit = this.record.reported_gen_limit ?? 0;
    const written = this.#writes.track(this.ctx.commit(fields).then(() => {
      this.#durableGenLimit = Math.max(this.#durableGenLimit, limit);
      this.#recorded = true;
    }));
    if (this.#takeUnwritten) {
      this.#takeUnwritten = false;
      this.#takeWritten = written.then(() => true, () => false);
    }
    return written;
  }

  #act(action: InstanceAction): void {
    switch (action) {
      case 'run':
        this.#queueRun(true);
        return;
      case 'stop':
        // A stop must not wait behind a provisioning that may take minutes: cancel it now.
        this.#provisioning?.abort(new Error('stop requested'));
        this.#enqueue('stop', () => this.#stop());
        return;
      case 'reboot':
        this.#enqueue('reboot', async () => {
          if (this.#propolis) await this.#propolis.putState('Reboot');
        });
        return;
      case 'destroy':
        this.#provisioning?.abort(new Error('destroy requested'));
        this.#enqueue('destroy', () => this.#destroy());
    }
  }

  #enqueue(what: string, op: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#closed || (this.#abandoned && what !== 'undo')) return;
      try {
        await op();
      } catch (err) {
        try {
          await this.#failed(`${what} failed`, err);
        } catch (cleanup) {
          // The instance is marked failed either way; what is left is found again at start-up.
          this.log.error({ err: cleanup, zone: this.zone }, 'cleaning up after a failure failed too');
        }
      }
    });
  }

  /** Makes the record (or only `fields` of it) durable, unless the agent is shutting down (the ledger stays as it was). */
  async #commit(fields?: readonly StateField[]): Promise<void> {
    if (this.#closed) return;
    await this.#write(fields);
  }

  /**
   * Waits until the ledger on disk covers the current generation (`first` is the write that
   * should), writing the record again after each failure: a report past reported_gen_limit on
   * disk could, after a crash, be followed by the same generation for another state. False if
   * the agent shuts down first (nothing more is reported then).
   */
  async #coverReport(first: Promise<void>): Promise<boolean> {
    let write = first;
    for (let attempt = 1; ; attempt++) {
      const ok = await write.then(() => true, (err: unknown) => {
        if (!this.#closed) this.log.error({ err, gen: this.states.current.gen }, 'cannot record the state; its report to Nexus waits until it is recorded');
        return false;
      });
      if (this.#closed) return false;
      // Abandoned: the sled never had it on disk and never will, so no restart can repeat a generation.
      if (this.states.current.gen <= this.#durableGenLimit || this.#abandoned) return true;
      if (!ok) await sleep(Math.min(REPORT_RETRY_MAX_MS, 100 * 2 ** Math.min(attempt - 1, 6)));
      // The record as it is now, with a limit that covers the current generation.
      this.#record();
      write = this.#commit();
    }
  }

  /** Tells Nexus the current state (ordered, coalesced, retried by the notifier). */
  #report(): void {
    const state = this.states.current;
    this.#reportedGen = state.gen;
    this.#lastReport = this.ctx.notifier.push(this.ctx.lane?.() ?? `instance:${this.id}`, `instance ${this.id} ${state.run_state} gen ${state.gen}`,
      () => this.ctx.nexus.instancePut(this.id, state));
  }

  /**
   * Records an observed state and reports it. Nexus hears it without waiting for the ledger
   * write, as long as its generation is within a reported_gen_limit already on disk (the
   * request's write put it GEN_LEASE ahead); only past that does the report wait for the write
   * that raises it. So a crash never loses a generation Nexus has seen (see resume()).
   */
  async #observe(observed: PropolisInstanceState): Promise<InstanceAction | null> {
    // Shutting down: nothing more is written, so nothing more is reported either (a report past
    // the limit on disk could be repeated with an older generation after the restart, which
    // observes the VM again anyway).
    if (this.#closed) return null;
    const action = this.states.observeTransition(observed);
    this.#record();
    // Only what #record() sets: every other change to the record is committed whole where it is made.
    const written = this.#commit(STATE_FIELDS);
    if (this.states.current.gen <= this.#durableGenLimit) {
      written.catch((err: unknown) => this.log.error({ err }, 'cannot record an observed state'));
    } else if (!await this.#coverReport(written)) {
      return action;
    }
    this.#report();
    return action;
  }

  async #failed(why: string, err: unknown): Promise<void> {
    if (this.#closed) return;
    if (isCancellation(err) && this.states.current.run_state !== 'failed' && !this.#zoneLost) {
      // Cancelled by a stop or destroy, which is queued next and does the cleaning up.
      this.log.info({ why }, 'provisioning cancelled');
      return;
    }
    this.log.error({ err, why, zone: this.zone }, 'instance failed');
    this.#stopMonitor();
    if (this.states.current.run_state !== 'failed') {
      // Failed is where the instance stays until Nexus destroys it: what was desired before is
      // void, so a restart does not provision it again behind Nexus's back.
      this.states.desired = null;
      await this.#observe('Failed');
      // The evidence, before the teardown removes it; Nexus has heard already. Never throws.
      if (this.zone !== null) {
        await this.ctx.bundles?.collect(instanceBundle({ id: this.id, zone: this.zone, record: this.record, vnics: this.vnics }, why, err));
      }
    }
    await this.#teardown();
  }

  /** After a restart, a failed instance: whatever its teardown left is removed; it stays failed. */
  async #settleFailed(): Promise<void> {
    if (this.states.desired !== null) {
      this.states.desired = null;
      this.#record();
    }
    await this.#teardown();
    this.#report();
  }

  /** Stopped or destroyed with nothing more asked of it: time to leave the sled. */
  #done(): boolean {
    const state = this.states.current.run_state;
    return (state === 'stopped' || state === 'destroyed') && this.states.desired === null;
  }

  /**
   * Finishes the teardown and forgets the instance, if it is still done by the time this runs
   * (a request may have started it again meanwhile). `report`: after a restart, Nexus may not
   * have heard the state yet (the answer to a request carried it already).
   */
  async #leave(report: boolean): Promise<void> {
    if (!this.#done()) return;
    await this.#teardown();
    // A run asked during the teardown is queued behind this: the instance stays for it.
    if (!this.#done()) return;
    if (report) this.#report();
    this.#forget();
  }

  /** Watches the zone for an exit the agent did not ask for, at any phase. */
  #watchZone(): void {
    if (this.#unwatch && this.#watched === this.zone) return;
    this.#unwatch?.();
    this.#watched = this.zone;
    this.#unwatch = this.ctx.host.events.subscribe((event) => {
      if (event.zonename !== this.zone || this.#tearingDown) return;
      if (event.newstate !== 'shutting_down' && event.newstate !== 'uninitialized') return;
      if (this.#zoneLost) return;
      this.#zoneLost = true;
      this.log.error({ zone: this.zone, from: event.oldstate, to: event.newstate }, 'instance zone went away');
      this.#provisioning?.abort(new Error(`zone ${this.zone} went away`));
      this.#stopMonitor();
      this.#enqueue('zone lost', async () => {
        await this.#failed('zone went away', new Error(`zone ${this.zone} went ${event.newstate}`));
      });
    }, this.zone ?? undefined);
  }

  #propolisAddr(): { host: string; port: number } {
    const addr = this.states.current.propolis_addr ?? this.record.hardware.runtime.propolis_addr;
    // Checked by the manager before the instance was created.
    const { host } = parseSocketAddr(addr as string);
    return { host, port: this.ctx.settings.propolisPort };
  }

  #properties(): InstanceProperties {
    const runtime = this.record.hardware.runtime;
    return {
      id: this.id,
      name: runtime.hostname,
      description: `instance ${this.id} (${runtime.hostname})`,
      image_id: this.ctx.settings.imageId,
      bootrom_id: this.ctx.settings.bootromId,
      memory: Math.floor(runtime.memory / MIB),
      vcpus: runtime.ncpus,
    };
  }

  /** Reference §7 steps 1-8, each step skipped when already done; then `Run` if asked. */
  async #provisionAndRun(run: boolean): Promise<void> {
    // Queued before a stop or destroy that has come since: nothing to make.
    const desired = this.states.desired?.run_state;
    if (desired === 'stopped' || desired === 'destroyed' || this.states.current.run_state === 'destroyed') return;
    // The old VM is still going down in this zone: provisioning now would ask its Propolis to run
    // again, which it refuses. The run comes after the teardown instead.
    if (this.#stopSent) return;
    const ctx = this.ctx;
    const { host, settings } = ctx;
    const abort = new AbortController();
    this.#provisioning = abort;
    const phase = (p: Phase) => {
      this.log.debug({ phase: p }, 'provisioning');
      ctx.onPhase?.(this.id, p);
    };
    const wait = { readiness: settings.readiness, timeoutMs: settings.readyTimeoutMs, signal: abort.signal, log: this.log };
    this.#endStart();
    this.#startEnded = ctx.pool?.startBegun() ?? null;
    let started = false;
    try {
      // The zone first, in the ledger, so a crash from here on leaves nothing we cannot find.
      if (this.record.zone === null) await this.#chooseZone();
      // Taken from the pool for this start and healthy: its Propolis listens, it has no address yet.
      const warm = await this.#checkPoolZone(phase);
      const unused = this.#unusedNames;
      this.#unusedNames = { zone: false, links: false };
      const freshRules = this.#rulesFromRequest;
      this.#rulesFromRequest = false;
      abort.signal.throwIfAborted();
      const zone = this.record.zone as string;
      const control = this.record.control_vnic as string;
      this.#zoneLost = false;
      this.#tearingDown = false;
      this.#watchZone();
      const addr = this.#propolisAddr();
      const fmri = propolisFmri(zone);
      const serial = settings.steps === 'serial';
      const nics = this.#guestNics();
      const guests = nics.map((nic) => ({ name: nic.vnic, mac: nic.nic.mac, port: nic.port }));
      // Each guest NIC's port, route, rules and external IPs, then the VNIC over it.
      const links = async () => {
        if (nics.length > 0) phase('ports');
        await ctx.ports.ensurePorts(this.id, nics, this.record.hardware, this.record.hardware.firewall_rules ?? [], freshRules, unused.links);
        abort.signal.throwIfAborted();
        await ensureGuestVnics(host, guests, phase, unused.links);
      };
      const spec: OwnedZoneSpec = {
        name: zone,
        image: zoneImage(PROPOLIS_BRAND_SERVICE),
        cloneFrom: ctx.pool?.template() ?? null,
        controlVnic: control,
        controlLink: settings.controlLink,
        zoneRoot: settings.zoneRoot,
        devices: PROPOLIS_DEVICES,
        // A pool zone was configured without them: they are given to it running (handover).
        guestNics: this.record.pooled ? [] : guests,
        unused: unused.zone,
        // The original configured Propolis over zlogin, one command after another.
        ...(serial ? {} : { profile: propolisProfile(zone, settings.propolisPort) }),
      };
      // Made while the zone is configured and installed; only the boot needs them. A checked
      // pool zone runs with its milestone online (what ensureZoneRunning would ask again).
      let made = { booted: false, profiled: false };
      if (warm) await links();
      else if (serial) made = await links().then(() => ensureZoneRunning(host, spec, wait, phase));
      else made = await ensureZoneRunning(host, spec, wait, phase, links());
      abort.signal.throwIfAborted();
      if (this.#takeWritten !== null) {
        // On disk the zone is the pool's until the write that took it lands: changed before
        // that, a crash would leave the pool a zone with this VM's links, address and Propolis
        // in it, which the restart would adopt as warm and hand to another instance.
        const written = await this.#takeWritten;
        this.#takeWritten = null;
        abort.signal.throwIfAborted();
        if (!written) throw new Error(`the ledger write that took zone ${zone} from the warm pool failed`);
      }

      const handover = async () => {
        if (!this.record.pooled || guests.length === 0) return;
        phase('handover');
        for (const guest of guests) await host.links.setZone(guest.name, zone);
      };
      const address = async () => {
        phase('address');
        await ensureAddress(host, zone, control, `${addr.host}/64`, { fresh: made.booted || warm, linkLocal: !warm });
      };
      // Propolis binds the wildcard (src/warm-pool.ts says why), so it need not wait for the address.
      const service = async () => {
        if (warm) return;
        phase('service');
        if (!made.profiled) await ensurePropolisService(host, zone, settings.propolisPort);
        await waitForOnline(host, zone, fmri, wait);
      };
      if (serial) {
        await handover();
        await address();
        await service();
      } else {
        await allDone([handover(), address(), service()]);
      }
      abort.signal.throwIfAborted();

      phase('propolis');
      const server = formatSocketAddr(addr);
      this.#propolis?.close().catch(() => {});
      this.#propolis = new PropolisClient(formatSocketAddr(await host.reachable(zone, addr)));
      const request: InstanceEnsureRequest = {
        properties: this.#properties(),
        nics: this.record.hardware.nics.map((nic, i) => ({ name: this.record.guest_vnics[i] as string, slot: nic.slot })),
        disks: this.record.hardware.disks,
        migrate: this.record.migrate === null ? null : {
          migration_id: this.#migrationId(),
          src_addr: this.record.migrate.src_propolis_addr,
          src_uuid: this.record.migrate.src_propolis_id,
        },
        cloud_init_bytes: this.record.hardware.cloud_init_bytes ?? null,
      };
      await this.#ensurePropolis(request, wait);
      if (this.states.current.propolis_addr !== server) {
        // No write of its own: the next observation's write carries it, and the address follows
        // from the request, so a restart finds it again even if that write never happens.
        this.states.current = { ...this.states.current, propolis_addr: server };
        this.#record();
      }
      this.#provisioning = null;

      // Run before the monitor: it reuses the connection the ensure opened, while the monitor's
      // long poll would take that one and leave Run a new connection to wait for. The monitor
      // starts from generation 0, so it still sees the current state.
      if (run) {
        await this.#propolis.putState('Run');
      } else {
        await this.#runAdopted();
      }
      this.#startMonitor(fmri);
      started = true;
    } catch (err) {
      // Whatever a step threw once the provisioning was cancelled (a Propolis request cut off,
      // a host call that finished into an aborted signal) is the cancellation, not a failure.
      if (abort.signal.aborted && !isCancellation(err)) throw cancellation(abort.signal.reason, err);
      throw err;
    } finally {
      if (this.#provisioning === abort) this.#provisioning = null;
      // A VM that was running already (adopted) is not waited for: the monitor may not see a change.
      if (!started || !run) this.#endStart();
    }
  }

  /**
   * After a restart, a Propolis that has not run its VM (Creating) is run if the VM was being
   * started or rebooted. If the ledger says the VM was up (running, or a migration's source), a
   * new Propolis means the VM went with its zone (the sled rebooted, the zone was halted while
   * the agent was down): running it would boot the guest afresh behind Nexus's back, and a
   * migration's source would come up beside its target. The instance fails instead, so Nexus
   * hears what happened. A migration's target still migrating in (record.migrate) is not judged
   * here; one that has finished is running like any other.
   */
  async #runAdopted(): Promise<void> {
    const state = this.states.current.run_state;
    const desired = this.states.desired?.run_state;
    const lost = state === 'running' || (state === 'migrating' && this.record.migrate === null);
    if (!lost && desired !== 'running' && state !== 'rebooting') return;
    const propolis = this.#propolis as PropolisClient;
    if ((await propolis.get()).instance.state !== 'Creating') return;
    if (lost) throw new Error(`the VM was ${state} when the agent stopped and is gone: its zone came back with a new Propolis`);
    await propolis.putState('Run');
  }

  /**
   * The guest NICs with the VNIC and port each is given; without a `primary` in the request (the
   * pinned shape), the NIC in slot 0 is primary.
   */
  #guestNics(): Array<{ nic: GuestNic; vnic: string; port: string; primary: boolean }> {
    const nics = this.record.hardware.nics as GuestNic[];
    const named = nics.some((n) => n.primary !== undefined);
    return nics.map((nic, i) => {
      const vnic = this.record.guest_vnics[i] as string;
      return { nic, vnic, port: portOfVnic(vnic), primary: named ? nic.primary === true : nic.slot === 0 };
    });
  }

  #migrationId(): string {
    const id = this.states.current.migration_id;
    if (!id) throw new Error('a migration into this sled was requested, but the instance has no migration id');
    return id;
  }

  /**
   * PUT /instance. The SMF instance being online says Propolis's start method ran, not that the
   * server listens yet, and no event marks that moment. In event mode a refused connection is
   * retried after 10 ms, doubling to at most 250 ms, within the readiness deadline (on the sim
   * host the first attempt succeeds); this is the one readiness step that is not an event wait.
   * Poll mode polls as the original's wait_for_http_server did.
   */
  async #ensurePropolis(request: InstanceEnsureRequest, wait: { readiness: Readiness; timeoutMs: number; signal: AbortSignal }): Promise<void> {
    const propolis = this.#propolis as PropolisClient;
    const attempt = async () => {
      try {
        await propolis.ensure(request, { signal: wait.signal });
      } catch (err) {
        if (err instanceof PropolisError && err.code === 'UNREACHABLE') {
          throw Object.assign(new Error(`Propolis not answering yet: ${err.message}`), { code: 'ETIMEDOUT', cause: err });
        }
        throw err;
      }
    };
    if (wait.readiness === 'poll') {
      await ready(wait, attempt);
      return;
    }
    const deadline = Date.now() + wait.timeoutMs;
    for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
      try {
        await attempt();
        return;
      } catch (err) {
        if (!isHostError(err, 'ETIMEDOUT') || Date.now() + delay > deadline) throw err;
        this.log.debug({ retryInMs: delay, err: (err as Error).message }, 'Propolis not listening yet');
      }
      await sleep(delay, wait.signal);
    }
  }

  #startMonitor(fmri: string): void {
    this.#stopMonitor();
    const abort = new AbortController();
    this.#monitor = abort;
    void this.#monitorLoop(abort.signal).catch((err: unknown) => {
      // Not expected (every step handles its errors); never let it end silently.
      this.log.error({ err }, 'Propolis monitor ended unexpectedly');
      this.#enqueue('monitor', () => Promise.reject(err));
    });
    void this.#watchPropolisService(fmri, abort.signal);
  }

  /**
   * Propolis dying shows in SMF (its instance leaves online for maintenance or disabled): an
   * event wait for that, alongside the monitor, so a crash is noticed (omicron #3206) rather than
   * taken for a slow connection forever.
   */
  async #watchPropolisService(fmri: string, signal: AbortSignal): Promise<void> {
    try {
      let state: string | undefined;
      while (state === undefined) {
        // A wait's deadline is a timer, at most 2^31 - 1 ms (24.8 days): a VM runs longer.
        state = await this.ctx.host.events.waitForService(this.zone as string, fmri, ['maintenance', 'disabled'],
          { timeoutMs: 2 ** 31 - 1, signal }).catch((err: unknown) => {
          if (isHostError(err, 'ETIMEDOUT') && !signal.aborted) return undefined;
          throw err;
        });
      }
      if (signal.aborted || this.#tearingDown) return;
      this.log.error({ fmri, state }, 'Propolis service is no longer running');
      this.#stopMonitor();
      this.#enqueue('propolis lost', () => Promise.reject(new Error(`Propolis (${fmri}) went ${state}`)));
    } catch (err) {
      // Aborted (the monitor ended) or the zone went away (the zone watcher handles that).
      if (!signal.aborted && !isHostError(err, 'ZONE_GONE')) this.log.warn({ err }, 'cannot watch the Propolis service');
    }
  }

  #stopMonitor(): void {
    this.#monitor?.abort(new Error('monitor stopped'));
    this.#monitor = null;
  }

  /**
   * Propolis's state-monitor long poll, for as long as the instance has a Propolis. Transient
   * errors (Propolis restarting, a dropped connection) are retried with capped backoff and
   * logged; the monitor ends only when the VM is destroyed, the zone is lost, or on shutdown.
   */
  async #monitorLoop(signal: AbortSignal): Promise<void> {
    let gen = 0;
    let failures = 0;
    while (!signal.aborted) {
      let observed;
      try {
        observed = await (this.#propolis as PropolisClient).stateMonitor(gen, signal);
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        if (err instanceof PropolisError && err.code === 'UNREACHABLE') await this.#reresolvePropolis();
        const delay = Math.min(MONITOR_BACKOFF_MAX_MS, 100 * 2 ** Math.min(failures - 1, 6));
        this.log.warn({ err: (err as Error).message, failures, retryInMs: delay }, 'Propolis state monitor failed; retrying');
        await sleep(delay, signal).catch(() => {});
        continue;
      }
      if (signal.aborted) return;
      if (failures > 0) this.log.info({ failures }, 'Propolis state monitor reconnected');
      failures = 0;
      gen = observed.gen + 1;
      if (observed.state === 'Creating' && this.states.current.run_state !== 'creating') {
        // Propolis's state before `Run` arrived: reporting it would tell Nexus a starting
        // instance went back to creating (the original did).
        continue;
      }
      const action = await this.#observe(observed.state);
      if (observed.state === 'Running') this.ctx.onPhase?.(this.id, 'running');
      if (observed.state !== 'Creating' && observed.state !== 'Starting') this.#endStart();
      if (action === 'destroy') {
        this.#stopMonitor();
        this.#enqueue('teardown', async () => {
          await this.#teardown();
          this.#afterTeardown();
        });
        return;
      }
    }
  }

  /** A restarted Propolis may listen elsewhere (the sim host's loopback port); follow it. */
  async #reresolvePropolis(): Promise<void> {
    let target: string;
    if (this.zone === null) return;
    try {
      target = formatSocketAddr(await this.ctx.host.reachable(this.zone, this.#propolisAddr()));
    } catch {
      return; // not listening anywhere now: keep retrying the old address
    }
    if (this.#propolis && this.#propolis.origin !== `http://${target}`) {
      this.log.info({ address: target }, 'Propolis moved; following it');
      void this.#propolis.close().catch(() => {});
      this.#propolis = new PropolisClient(target);
    }
  }

  async #stop(): Promise<void> {
    if (this.#propolis && this.#monitor) {
      // The monitor sees Stopping, Stopped, Destroyed and tears the zone down.
      this.#stopSent = true;
      await this.#propolis.putState('Stop');
      return;
    }
    // No Propolis (never provisioned, provisioning cancelled, or lost): nothing runs a VM.
    await this.#teardown();
    const desired = this.states.desired?.run_state;
    const state = this.states.current.run_state;
    if (desired !== 'running' && desired !== 'reboot' && state !== 'stopped' && state !== 'failed' && state !== 'destroyed') {
      await this.#observe('Destroyed');
    }
    this.#afterTeardown();
  }

  /**
   * The VM and its zone are gone: a run asked while it was going down starts it again (nothing
   * else would: the stop's own ops are done); otherwise the instance may leave the sled.
   */
  #afterTeardown(): void {
    const desired = this.states.desired?.run_state;
    if (desired === 'running' || desired === 'reboot') {
      if (this.#runsQueued === 0) this.#queueRun(true);
      return;
    }
    this.#forgetIfDone();
  }

  /** Queues a provisioning, counted so a teardown does not queue a second one behind it. */
  #queueRun(run: boolean): void {
    this.#runsQueued += 1;
    this.#enqueue(run ? 'run' : 'adopt', async () => {
      this.#runsQueued -= 1;
      await this.#provisionAndRun(run);
    });
  }

  async #destroy(): Promise<void> {
    this.#stopMonitor();
    await this.#teardown();
    this.#forget();
  }

  /** A stopped instance with nothing more asked of it leaves the sled, as in the original. */
  #forgetIfDone(): void {
    const desired = this.states.desired?.run_state;
    if (this.states.current.run_state === 'stopped' && (desired === undefined || desired === 'stopped')) this.#forget();
    else if (desired === 'destroyed') {
      this.states.requestTransition({ run_state: 'destroyed', migration_params: null });
      this.#record();
      this.#report();
      this.#forget();
    }
  }

  /**
   * Leaves the sled once Nexus has the last state reported: forgotten before that, a kill would
   * leave Nexus with "stopping" and the sled with nothing to report "stopped" from. A request
   * that starts the instance again meanwhile keeps it; a shutdown keeps it in the ledger, and
   * the restart leaves again.
   */
  #forget(): void {
    const gen = this.states.current.gen;
    const state = this.states.current.run_state;
    if (state !== 'stopped' && state !== 'destroyed') {
      // Only a stopped or destroyed instance leaves; anything else is a request that came since.
      this.log.warn({ state }, 'not leaving the sled: the instance is no longer stopped');
      return;
    }
    void (async () => {
      if (this.#reportedGen !== gen && !this.#closed) {
        // Not reported by this process (it reached this state before a restart, or only
        // answered it): Nexus may never have heard it. Within the limit on disk first.
        if (gen > this.#durableGenLimit && !await this.#coverReport(this.#commit())) return;
        this.#report();
      }
      const outcome = await this.#lastReport;
      if (outcome === 'cancelled' || this.#closed || this.states.current.gen !== gen) return;
      this.close();
      this.ctx.forget(this.id);
    })();
  }

  /** Removes the zone and VNICs; what is gone already is skipped. */
  async #teardown(): Promise<void> {
    this.#tearingDown = true;
    this.#stopSent = false;
    this.#endStart();
    this.#stopMonitor();
    this.#unwatch?.();
    this.#unwatch = null;
    await this.#propolis?.close().catch(() => {});
    this.#propolis = null;
    await removeZone(this.ctx.host, this.zone, this.vnics, this.log);
    // The zone and the VNICs over them are gone: the ports can go (one that will not is retried).
    for (const vnic of this.record.guest_vnics) await this.ctx.ports.removePort(portOfVnic(vnic));
    this.record.zone = null;
    this.record.control_vnic = null;
    this.record.guest_vnics = [];
    delete this.record.pooled;
    this.#poolZoneUnchecked = false;
    await this.#commit();
  }
}

/** An abort of the operation (ours, or a library's AbortError), not a failure of it. */
function isCancellation(err: unknown): boolean {
  return isHostError(err, 'ABORT_ERR') || (err instanceof Error && err.name === 'AbortError')
    || (err instanceof PropolisError && err.code === 'ABORTED');
}

function cancellation(reason: unknown, cause: unknown): Error {
  const why = reason instanceof Error ? reason.message : String(reason);
  return Object.assign(new Error(`cancelled (${why})`, { cause }), { name: 'AbortError', code: 'ABORT_ERR' });
}
