// A simulated disk: the shared disk state machine; the simulated step observes exactly the
// state that was asked for.
import { DiskStates } from '../common/disk.js';
import type { DiskRuntimeState, DiskStateRequested } from '../params.js';
import { SimulatedStateMachine } from './collection.js';

export class SimDisk extends SimulatedStateMachine<DiskRuntimeState, DiskStateRequested, DiskStates> {
  constructor(initial: DiskRuntimeState) {
    super(new DiskStates({ ...initial }));
  }

  executeDesiredTransition(): void {
    const desired = this.states.desired;
    if (desired) this.states.observeTransition(desired);
  }

  readyToDestroy(): boolean {
    return this.states.current.disk_state.state === 'destroyed';
  }
}
