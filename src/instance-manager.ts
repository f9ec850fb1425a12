// The instances on this sled (omicron instance_manager.rs): which Instance actor answers for an
// id, the ledger that keeps them across restarts, and the start-up adoption of what the ledger
// lists.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { requestSocketAddrV6 } from './common/address.js';
import { conflict, invalidRequest } from './common/errors.js';
import { formatIpv6, networkOf, parseIpv6 } from './common/ipv6.js';
import { Ledger } from './ledger.js';
import { Instance, type InstanceContext, type InstanceRecord } from './instance.js';
import { WarmPool, type PoolSettings, type PoolTable } from './warm-pool.js';
import { PROPOLIS_BRAND_SERVICE, zoneName } from './zone.js';
import type {
  InstanceHardware, InstanceMigrateParams, InstanceRuntimeState, InstanceRuntimeStateRequested, InstanceState,
} from './params.js';
import type { Static } from 'typebox';

interface InstanceLedger {
  instances: Record<string, InstanceRecord>;
  /**
   * The source of a migration between two Propolis on this sled, keyed by the instance id its
   * target took over, until its VM has left and its zone is torn down: so a restart meanwhile
   * adopts that zone (and follows its VM out) rather than remove it as an orphan.
   */
  sources?: Record<string, InstanceRecord>;
  /** The warm pool's zones and template (absent in ledgers from before the pool). */
  pool?: PoolTable;
}

function checkLedger(path: string) {
  return (raw: unknown): InstanceLedger => {
    const table = (raw as InstanceLedger | null)?.instances;
    if (typeof table !== 'object' || table === null) throw new Error(`${path}: the instance ledger has no "instances" table`);
    const sources = (raw as InstanceLedger).sources ?? {};
    if (typeof sources !== 'object' || sources === null) throw new Error(`${path}: the instance ledger's "sources" is not a table`);
    for (const [id, record] of [...Object.entries(table), ...Object.entries(sources)]) {
      if (record?.id !== id || typeof record.runtime !== 'object' || typeof record.hardware !== 'object') {
        throw new Error(`${path}: the entry for instance ${id} is not an instance record`);
      }
    }
    return raw as InstanceLedger;
  };
}

/** Which table of the ledger an actor's record is in; a migration's source moves to "sources". */
type Table = 'instances' | 'sources';

/** How many departed instances' last states are kept (a few hundred bytes each). */
const DEPARTED_KEPT = 4096;

export type ManagerContext = Omit<InstanceContext, 'commit' | 'forget' | 'pool' | 'lane'>;

/**
 * One ledger for all instances: its writes are group commits, so any number of instances
 * changing at once cost two writes (one in flight, one queued), where a file per instance
 * would cost a fsync each.
 */
export class InstanceManager {
  readonly #instances = new Map<string, Instance>();
  /** Sources of migrations between two Propolis on this sled, by instance id, until they leave. */
  readonly #sources = new Map<string, Instance>();
  readonly #tables = new WeakMap<Instance, { table: Table }>();
  readonly #gone = new EventEmitter<{ gone: [id: string] }>();
  /** Instances whose request failed, still undoing what they started. */
  readonly #draining = new Set<Instance>();
  /**
   * The last state of instances that left the sled (newest last, bounded): a request Nexus sent
   * before it heard that state may arrive after the instance left, with an older `initial`.
   */
  readonly #departed = new Map<string, InstanceRuntimeState>();

  /** The warm pool; it shares the ledger, so taking a zone from it is one write. */
  readonly pool: WarmPool;

  /** The sled's /64 (from [config] underlay_address), where Propolis addresses must be; null when not configured. */
  readonly #sledNet: bigint | null;

  private constructor(
    private readonly ledger: Ledger<InstanceLedger>,
    private readonly ctx: ManagerContext,
    private readonly log: Logger,
    pool: PoolSettings,
  ) {
    const underlay = ctx.settings.underlayAddress;
    this.#sledNet = underlay === undefined ? null : networkOf(parseIpv6(underlay), 64);
    ledger.value.pool ??= { zones: {}, template: null };
    this.pool = new WarmPool({
      host: ctx.host, log: ctx.log, vnics: ctx.vnics, settings: pool, table: ledger.value.pool,
      commit: () => ledger.commit(['pool']), touch: () => ledger.touch(['pool']),
    });
  }

  static async open(path: string, ctx: ManagerContext, pool: PoolSettings): Promise<InstanceManager> {
    // Journaled: a write costs the records that changed, not every record (about 1 MB at 1,000 instances).
    const ledger = await Ledger.open(path, (): InstanceLedger => ({ instances: {} }), checkLedger(path), { journal: true });
    const manager = new InstanceManager(ledger, ctx, ctx.log.child({ component: 'instance-manager' }), pool);
    for (const record of Object.values(ledger.value.instances) as InstanceRecord[]) {
      // Before the pool, a zone was named by Propolis id, and made once the VNICs were named.
      if (record.zone === undefined) {
        record.zone = record.control_vnic === null ? null : zoneName(PROPOLIS_BRAND_SERVICE, record.runtime.propolis_id);
      }
      manager.#instances.set(record.id, manager.#make(record, true));
      // Names on file are never handed out again, even where the VNIC itself is gone.
      ctx.vnics.reserve([...record.guest_vnics, ...(record.control_vnic ? [record.control_vnic] : [])]);
    }
    for (const record of Object.values(ledger.value.sources ?? {})) {
      manager.#sources.set(record.id, manager.#make(record, true, 'sources'));
      ctx.vnics.reserve([...record.guest_vnics, ...(record.control_vnic ? [record.control_vnic] : [])]);
    }
    return manager;
  }

  #make(record: InstanceRecord, onDisk: boolean, table: Table = 'instances'): Instance {
    // Read at each use: a migration on this sled moves the replaced actor's record to "sources".
    const where = { table };
    const instance = new Instance(record, {
      ...this.ctx,
      pool: this.pool,
      commit: (fields) => (fields === undefined
        ? this.ledger.commit([where.table, record.id])
        : this.ledger.commit(...fields.map((f) => [where.table, record.id, f] as const))),
      // A source's reports go on a lane of their own: on the target's, each would replace the
      // other's pending state, as two sleds' agents never do.
      lane: () => (where.table === 'sources' ? `instance-source:${record.id}` : `instance:${record.id}`),
      forget: (id) => {
        if (where.table === 'sources') {
          if (this.#sources.get(id)?.record !== record) return;
          this.#sources.delete(id);
          delete this.ledger.value.sources?.[id];
          void this.ledger.commit(['sources', id]).catch((err: unknown) => this.log.error({ err, instance: id }, 'cannot record that a migration\'s source left'));
          this.log.info({ instance: id, propolis: record.runtime.propolis_id }, 'the source of a migration on this sled is gone');
          return;
        }
        const instance = this.#instances.get(id);
        if (instance?.record !== record) return; // replaced meanwhile
        this.#instances.delete(id);
        this.#departed.delete(id);
        this.#departed.set(id, instance.current);
        if (this.#departed.size > DEPARTED_KEPT) this.#departed.delete(this.#departed.keys().next().value as string);
        delete this.ledger.value.instances[id];
        void this.ledger.commit(['instances', id]).catch((err: unknown) => this.log.error({ err, instance: id }, 'cannot record that an instance left'));
        this.log.info({ instance: id }, 'instance no longer on this sled');
        this.#gone.emit('gone', id);
      },
    }, onDisk);
    this.#tables.set(instance, where);
    return instance;
  }

  /** Moves the actor an intra-sled migration replaces aside, with its record, in the next write. */
  #setAside(id: string, source: Instance): void {
    this.#sources.set(id, source);
    (this.ledger.value.sources ??= {})[id] = source.record;
    this.#tables.get(source)!.table = 'sources';
    this.ledger.touch(['sources', id]);
  }

  /** Undoes #setAside: the migration was refused or not recorded. */
  #putBack(id: string, source: Instance): void {
    if (this.#sources.get(id) !== source) return;
    this.#sources.delete(id);
    delete this.ledger.value.sources?.[id];
    this.#tables.get(source)!.table = 'instances';
    this.ledger.touch(['sources', id]);
  }

  /** Resolves once the instance has left the sled (at once if it is not here). */
  whenGone(id: string): Promise<void> {
    if (!this.#instances.has(id)) return Promise.resolve();
    return new Promise((resolve) => {
      const onGone = (gone: string) => {
        if (gone !== id) return;
        this.#gone.off('gone', onGone);
        resolve();
      };
      this.#gone.on('gone', onGone);
    });
  }

  /** Names on the host (such as ports found at start-up) that new links must not take. */
  reserveNames(names: readonly string[]): void {
    this.ctx.vnics.reserve(names);
  }

  get(id: string): Instance | undefined {
    return this.#instances.get(id);
  }

  get size(): number {
    return this.#instances.size;
  }

  /** Every instance on the sled (GET /instances, /inventory, the metrics). */
  list(): Instance[] {
    return [...this.#instances.values()];
  }

  /**
   * PUT /instances/{id} (reference §7 ensure). `initial` is used only for an instance this sled
   * does not have (or a migration to a new Propolis); the state returned is the one after the
   * requested transition, durable in the ledger.
   */
  async ensure(
    id: string,
    initial: InstanceHardware,
    target: InstanceRuntimeStateRequested,
    migrate: Static<typeof InstanceMigrateParams> | null,
  ): Promise<InstanceRuntimeState> {
    const existing = this.#instances.get(id);
    if (existing && (migrate === null || existing.record.runtime.propolis_id === initial.runtime.propolis_id)) {
      return existing.ensure(target);
    }
    checkInitial(initial, this.#sledNet);
    if (existing) {
      const leaving = this.#sources.get(id);
      if (leaving !== undefined) {
        throw conflict(`instance ${id} is already migrating between two Propolis on this sled: the source `
          + `(Propolis ${leaving.record.runtime.propolis_id}) has not left yet; migrate it again once it has`);
      }
    }
    // Nexus's view may predate the state the instance left in: continue from the newer, so no
    // generation goes out twice (a report of the older one would also be one Nexus ignores).
    const departed = this.#departed.get(id);
    const known = departed !== undefined && departed.gen > initial.runtime.gen && migrate === null
      ? { ...initial.runtime, run_state: departed.run_state, gen: departed.gen, time_updated: departed.time_updated }
      : initial.runtime;
    const runtime = migrate === null ? withoutVm(id, known, target) : known;
    const record: InstanceRecord = {
      id,
      hardware: { ...initial, runtime },
      migrate,
      runtime,
      desired: null,
      guest_vnics: [],
      control_vnic: null,
      zone: null,
      // The entry replaced by an intra-sled migration may have reported generations this far.
      ...(existing?.record.reported_gen_limit === undefined ? {} : { reported_gen_limit: existing.record.reported_gen_limit }),
    };
    const instance = this.#make(record, false);
    if (existing) {
      // An intra-sled migration: the old Propolis keeps running in its zone until its own
      // monitor sees its VM leave, and its record goes aside in the target's first write.
      this.log.warn({ instance: id, from: existing.record.runtime.propolis_id, to: initial.runtime.propolis_id },
        'instance replaced by a migration to a new Propolis on this sled');
      this.#setAside(id, existing);
    }
    this.#instances.set(id, instance);
    this.ledger.value.instances[id] = record;
    try {
      const state = await instance.ensure(target);
      // A no-op request (to a state it is already in) wrote nothing; the sled now has it.
      if (state.gen === runtime.gen) await this.ledger.commit(['instances', id]);
      // A migration target must have its Propolis up to receive the VM, whatever the request said.
      if (migrate !== null) instance.converge();
      return state;
    } catch (err) {
      // Refused (a 400), or not recorded (a 500, after undoing what it started): the sled never had it.
      this.#draining.add(instance);
      void instance.idle().finally(() => this.#draining.delete(instance));
      if (this.#instances.get(id) === instance) {
        this.#instances.delete(id);
        delete this.ledger.value.instances[id];
        if (existing) {
          this.#putBack(id, existing);
          this.#instances.set(id, existing);
          this.ledger.value.instances[id] = existing.record;
        }
        // Not worth a write of its own (what failed was not written, or its failed write makes
        // the next one write everything), but the next write carries it.
        this.ledger.touch(['instances', id]);
      }
      throw err;
    }
  }

  /** Zone name → VNIC names, of every instance the ledger holds and of the warm pool. */
  claimedZones(): Map<string, string[]> {
    const claimed = this.pool.claimedZones();
    for (const i of [...this.#instances.values(), ...this.#sources.values()]) if (i.zone !== null) claimed.set(i.zone, i.vnics);
    return claimed;
  }

  /** Every VNIC name the ledger has handed out, including those of instances with no zone yet. */
  claimedVnics(): string[] {
    return [...this.#instances.values(), ...this.#sources.values()].flatMap((i) => i.vnics);
  }

  /** Start-up: each instance continues from where the ledger left it; then the pool fills. */
  resume(): void {
    for (const instance of [...this.#instances.values(), ...this.#sources.values()]) instance.resume();
    this.pool.start();
  }

  /** Settles when every instance has finished what is queued (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.#instances.values(), ...this.#sources.values(), ...this.#draining].map((i) => i.idle()));
  }

  /** Stops every actor and waits for ledger writes in flight; the VMs keep running. */
  async close(): Promise<void> {
    const all = [...this.#instances.values(), ...this.#sources.values(), ...this.#draining];
    this.pool.close();
    for (const instance of all) instance.close();
    // An operation already running finishes (its waits were aborted) and may still record
    // something, such as an instance leaving; only then is the ledger settled.
    await Promise.all(all.map((i) => i.idle()));
    await this.ledger.close();
  }
}

/** Run states that say the instance's VM is up or on its way, on whichever sled Nexus placed it. */
const VM_UP: ReadonlySet<InstanceState> = new Set(['starting', 'running', 'stopping', 'rebooting', 'migrating']);

/**
 * The state an instance new to this sled (not migrating in) starts from here: it has no VM on
 * this sled, whatever Nexus last heard. Asked to stop or destroy one Nexus believes up, there is
 * nothing to stop: it goes on from "creating" (no VM yet), so the answer is the state asked for,
 * one generation on. Asked to run or reboot it, the sled refuses: taken as up, it would be
 * reported up with no VM behind it for good (no step would ever start one), and started here, it
 * could be a second VM of an instance still running elsewhere.
 */
function withoutVm(id: string, runtime: InstanceRuntimeState, target: InstanceRuntimeStateRequested): InstanceRuntimeState {
  if (!VM_UP.has(runtime.run_state)) return runtime;
  if (target.run_state === 'stopped' || target.run_state === 'destroyed') return { ...runtime, run_state: 'creating' };
  throw invalidRequest(`initial.runtime.run_state is "${runtime.run_state}", but instance ${id} has no VM on this sled: `
    + `it cannot be ${target.run_state === 'reboot' ? 'rebooted' : `taken to "${target.run_state}"`} here. A new instance starts from "creating" `
    + 'or "stopped", and one that runs elsewhere comes here by migration (with "migrate"); asked to stop or destroy it, this sled answers at once');
}

/**
 * What the original panicked on, or took and failed on later, as a 400 a person can act on. The
 * Propolis address goes on the zone's control VNIC as `<ip>/64` and the agent reaches Propolis
 * there from the global zone, so it is an IPv6 address in the sled's /64 (Nexus allocates it
 * from there); an IPv4 one failed at `ipadm create-addr`, and one outside the /64 left the start
 * to time out waiting for a Propolis no route leads to.
 */
function checkInitial(initial: InstanceHardware, sled: bigint | null): void {
  const addr = initial.runtime.propolis_addr;
  if (addr === undefined || addr === null) {
    throw invalidRequest('initial.runtime.propolis_addr is required: the address (in this sled\'s subnet) Propolis will serve on, "[ipv6]:port"');
  }
  const { host } = requestSocketAddrV6(addr, 'initial.runtime.propolis_addr');
  if (sled !== null && networkOf(parseIpv6(host), 64) !== sled) {
    throw invalidRequest(`initial.runtime.propolis_addr "${addr}" is not in this sled's subnet ${formatIpv6(sled)}/64: Propolis must be reachable from the sled`);
  }
  const memory = initial.runtime.memory;
  if (memory < 1024 * 1024) throw invalidRequest(`initial.runtime.memory is ${memory} bytes: a VM needs at least 1 MiB`);
  if (initial.runtime.ncpus < 1 || initial.runtime.ncpus > 255) {
    throw invalidRequest(`initial.runtime.ncpus is ${initial.runtime.ncpus}: Propolis takes 1 to 255 vCPUs`);
  }
}
