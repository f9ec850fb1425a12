// A simulated disk: the shared disk state machine; the simulated step observes exactly the
// state that was asked for.
import { DiskStates } from '../common/disk.js';
import type { DiskRuntimeState, DiskStateRequested } from '../params.js';
import type { SimObject } from './collection.js';

export class SimDisk implements SimObject<DiskRuntimeState, DiskStateRequested> {
  private readonly states: DiskStates;

  constructor(initial: DiskRuntimeState) {
    this.states = new DiskStates({ ...initial });
  }

  get current() { return this.states.current; }
  get desired() { return this.states.desired; }
  get generation() { return this.states.current.gen; }

  requestTransition(target: DiskStateRequested): void {
    this.states.requestTransition(target);
  }

  executeDesiredTransition(): void {
    const desired = this.states.desired;
    if (desired) this.states.observeTransition(desired);
  }

  readyToDestroy(): boolean {
    return this.states.current.disk_state.state === 'destroyed';
  }
}
