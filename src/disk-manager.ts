// PUT /disks/{id} on the real agent (the original's handler was `todo!()` and panicked). A disk
// reaches a VM through its instance's Propolis (the DiskRequests of InstanceHardware, given at
// provisioning), so the agent has no separate attach step to run on the host: it runs the
// shared disk state machine, records the result in the ledger, observes the requested state as
// reached, and reports that to Nexus, in order, through the notifier.
import type { Logger } from 'pino';
import { DiskStates } from './common/disk.js';
import type { NexusNotifier } from './common/nexus-notifier.js';
import { Ledger } from './ledger.js';
import type { NexusClient } from './nexus-client.js';
import type { DiskRuntimeState, DiskStateRequested } from './params.js';

interface DiskLedger {
  disks: Record<string, { runtime: DiskRuntimeState }>;
}

export class DiskManager {
  readonly #disks = new Map<string, DiskStates>();

  private constructor(
    private readonly ledger: Ledger<DiskLedger>,
    private readonly nexus: NexusClient,
    private readonly notifier: NexusNotifier,
    private readonly log: Logger,
  ) {}

  static async open(path: string, nexus: NexusClient, notifier: NexusNotifier, log: Logger): Promise<DiskManager> {
    const ledger = await Ledger.open<DiskLedger>(path, () => ({ disks: {} }), (raw) => {
      if (typeof raw !== 'object' || raw === null || typeof (raw as DiskLedger).disks !== 'object') {
        throw new Error(`${path}: the disk ledger has no "disks" table`);
      }
      return raw as DiskLedger;
    });
    const manager = new DiskManager(ledger, nexus, notifier, log.child({ component: 'disks' }));
    for (const [id, { runtime }] of Object.entries(ledger.value.disks)) manager.#disks.set(id, new DiskStates(runtime));
    return manager;
  }

  async ensure(id: string, initial: DiskRuntimeState, target: DiskStateRequested): Promise<DiskRuntimeState> {
    const known = this.#disks.get(id);
    const states = known ?? new DiskStates({ ...initial });
    const before = { current: states.current, desired: states.desired, entry: this.ledger.value.disks[id] };
    states.requestTransition(target); // a 400 for a transition the state machine refuses
    if (!known) this.#disks.set(id, states);
    const answer = states.current;
    if (states.desired) {
      const desired = states.desired;
      states.observeTransition(desired.state === 'attached' ? { state: 'attached', instance: desired.instance } : { state: desired.state });
    }
    const after = states.current;
    if (after.disk_state.state === 'destroyed') {
      this.#disks.delete(id);
      delete this.ledger.value.disks[id];
    } else {
      this.ledger.value.disks[id] = { runtime: after };
    }
    try {
      await this.ledger.commit();
    } catch (err) {
      // Not on disk: as if the request never came, so Nexus's retry runs it again and Nexus hears
      // the state it reaches then (left ahead, the retry would be a no-op that reports nothing).
      // Unless another request has moved the disk on since: its own outcome decides.
      if (states.current === after) {
        if (known) {
          states.current = before.current;
          states.desired = before.desired;
        } else if (this.#disks.get(id) === states) {
          this.#disks.delete(id);
        }
        if (before.entry === undefined) delete this.ledger.value.disks[id];
        else this.ledger.value.disks[id] = before.entry;
      }
      throw err;
    }
    if (after !== answer) {
      this.log.info({ disk: id, state: after.disk_state, gen: after.gen }, 'disk state reached');
      void this.notifier.push(`disk:${id}`, `disk ${id} gen ${after.gen}`, () => this.nexus.diskPut(id, after));
    }
    return answer;
  }
}
