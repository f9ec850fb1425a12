// The instances on this sled (omicron instance_manager.rs): which Instance actor answers for an
// id, the ledger that keeps them across restarts, and the start-up adoption of what the ledger
// lists.
import { EventEmitter } from 'node:events';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseSocketAddr } from './common/address.js';
import { invalidRequest } from './common/errors.js';
import { Ledger } from './ledger.js';
import { Instance, type InstanceContext, type InstanceRecord } from './instance.js';
import type {
  InstanceHardware, InstanceRuntimeState, InstanceRuntimeStateRequested,
} from './params.js';
import type { InstanceMigrateParams } from './params.js';
import type { Static } from 'typebox';

/** A ledger file is `<dir>/<instance id>.json`: one per instance, so writes neither queue behind nor grow with the others. */
const LEDGER_FILE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.json$/;

/** writeFileAtomic's temporary files: `.<name>.<random>.tmp`. */
const TEMP_FILE = /^\..+\.[0-9a-f]{12}\.tmp$/;

function checkRecord(path: string, id: string) {
  return (raw: unknown): InstanceRecord => {
    const record = raw as InstanceRecord;
    if (typeof raw !== 'object' || raw === null || record.id !== id || typeof record.runtime !== 'object' || typeof record.hardware !== 'object') {
      throw new Error(`${path} is not the ledger of instance ${id}`);
    }
    return record;
  };
}

export type ManagerContext = Omit<InstanceContext, 'commit' | 'forget'>;

export class InstanceManager {
  readonly #instances = new Map<string, Instance>();
  readonly #ledgers = new Map<string, Ledger<InstanceRecord>>();
  readonly #gone = new EventEmitter<{ gone: [id: string] }>();

  private constructor(
    private readonly dir: string,
    private readonly ctx: ManagerContext,
    private readonly log: Logger,
  ) {}

  /** Opens the instance ledgers in `dir` (created if missing). */
  static async open(dir: string, ctx: ManagerContext): Promise<InstanceManager> {
    await mkdir(dir, { recursive: true });
    const manager = new InstanceManager(dir, ctx, ctx.log.child({ component: 'instance-manager' }));
    for (const file of (await readdir(dir)).sort()) {
      if (TEMP_FILE.test(file)) {
        // A write the agent was killed in the middle of: the ledger itself is the old version.
        await rm(join(dir, file), { force: true });
        manager.log.info({ file }, 'removed an interrupted ledger write');
        continue;
      }
      const m = LEDGER_FILE.exec(file);
      if (!m) continue;
      const id = m[1] as string;
      const path = join(dir, file);
      const ledger = await Ledger.open<InstanceRecord>(path, () => {
        throw new Error(`${path} vanished while being read`);
      }, checkRecord(path, id));
      const record = ledger.value;
      manager.#ledgers.set(id, ledger);
      manager.#instances.set(id, manager.#make(record, ledger));
      // Names on file are never handed out again, even where the VNIC itself is gone.
      ctx.vnics.reserve([...record.guest_vnics, ...(record.control_vnic ? [record.control_vnic] : [])]);
    }
    return manager;
  }

  #make(record: InstanceRecord, ledger: Ledger<InstanceRecord>): Instance {
    return new Instance(record, {
      ...this.ctx,
      commit: () => ledger.commit(),
      forget: (id) => {
        const instance = this.#instances.get(id);
        if (instance?.record !== record) return; // replaced meanwhile
        this.#instances.delete(id);
        this.#ledgers.delete(id);
        void ledger.remove().catch((err: unknown) => this.log.error({ err, instance: id }, 'cannot record that an instance left'));
        this.log.info({ instance: id }, 'instance no longer on this sled');
        this.#gone.emit('gone', id);
      },
    });
  }

  get(id: string): Instance | undefined {
    return this.#instances.get(id);
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

  get size(): number {
    return this.#instances.size;
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
    checkInitial(initial);
    const existingLedger = this.#ledgers.get(id);
    if (existing) {
      // An intra-sled migration: the old Propolis keeps running until its own monitor sees it go.
      this.log.warn({ instance: id, from: existing.record.runtime.propolis_id, to: initial.runtime.propolis_id },
        'instance replaced by a migration to a new Propolis on this sled');
    }
    const record: InstanceRecord = {
      id,
      hardware: initial,
      migrate,
      runtime: initial.runtime,
      desired: null,
      guest_vnics: [],
      control_vnic: null,
    };
    const ledger = await Ledger.open<InstanceRecord>(join(this.dir, `${id}.json`), () => record, checkRecord(id, id));
    const instance = this.#make(ledger.value, ledger);
    this.#instances.set(id, instance);
    this.#ledgers.set(id, ledger);
    try {
      const state = await instance.ensure(target);
      // A no-op request (e.g. to a state it is already in) wrote nothing; the sled now has it.
      if (state.gen === initial.runtime.gen) await ledger.commit();
      // A migration target must have its Propolis up to receive the VM, whatever the request said.
      if (migrate !== null) instance.resume();
      return state;
    } catch (err) {
      // Refused (a 400): the sled never had it.
      if (this.#instances.get(id) === instance) {
        this.#instances.delete(id);
        this.#ledgers.delete(id);
        if (existing) {
          this.#instances.set(id, existing);
          this.#ledgers.set(id, existingLedger as Ledger<InstanceRecord>);
        }
      }
      throw err;
    }
  }

  /** Zone name → VNIC names, of every instance the ledger holds. */
  claimedZones(): Map<string, string[]> {
    return new Map([...this.#instances.values()].map((i) => [i.zone, i.vnics]));
  }

  /** Every VNIC name the ledger has handed out, including those of zones not configured yet. */
  claimedVnics(): string[] {
    return [...this.#instances.values()].flatMap((i) => i.vnics);
  }

  /** Start-up: each instance continues from where the ledger left it. */
  resume(): void {
    for (const instance of this.#instances.values()) instance.resume();
  }

  /** Settles when every instance has finished what is queued (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.#instances.values()].map((i) => i.idle()));
  }

  /** Stops every actor and waits for ledger writes in flight; the VMs keep running. */
  async close(): Promise<void> {
    for (const instance of this.#instances.values()) instance.close();
    await Promise.all([...this.#ledgers.values()].map((l) => l.settled()));
  }
}

/** What the original panicked on, as a 400 a person can act on. */
function checkInitial(initial: InstanceHardware): void {
  const addr = initial.runtime.propolis_addr;
  if (addr === undefined || addr === null) {
    throw invalidRequest('initial.runtime.propolis_addr is required: the address (in this sled\'s subnet) Propolis will serve on, "[ipv6]:port"');
  }
  try {
    parseSocketAddr(addr);
  } catch (err) {
    throw invalidRequest(`initial.runtime.propolis_addr: ${(err as Error).message}`);
  }
  const memory = initial.runtime.memory;
  if (memory < 1024 * 1024) throw invalidRequest(`initial.runtime.memory is ${memory} bytes: a VM needs at least 1 MiB`);
  if (initial.runtime.ncpus < 1 || initial.runtime.ncpus > 255) {
    throw invalidRequest(`initial.runtime.ncpus is ${initial.runtime.ncpus}: Propolis takes 1 to 255 vCPUs`);
  }
}
