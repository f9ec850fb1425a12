// A simulated instance: the shared instance state machine, with "Propolis" reduced to the
// observations a real VM would produce on the way to the desired state.
import { InstanceStates } from '../common/instance.js';
import type { InstanceRuntimeState, InstanceRuntimeStateRequested } from '../params.js';
import { SimulatedStateMachine } from './collection.js';

export class SimInstance extends SimulatedStateMachine<InstanceRuntimeState, InstanceRuntimeStateRequested, InstanceStates> {
  constructor(initial: InstanceRuntimeState) {
    super(new InstanceStates({ ...initial }));
  }

  executeDesiredTransition(): void {
    const desired = this.states.desired?.run_state;
    // A rebooting VM comes back through "starting" before it runs again.
    if (this.states.current.run_state === 'rebooting' || desired === 'reboot') {
      this.states.observeTransition('Starting');
      return;
    }
    switch (desired) {
      case 'running': case 'migrating':
        this.states.observeTransition('Running');
        return;
      case 'stopped':
        this.states.observeTransition('Stopped');
        return;
      case 'destroyed':
        this.states.observeTransition('Destroyed');
        return;
      case undefined:
        return;
    }
  }

  readyToDestroy(): boolean {
    return this.states.current.run_state === 'destroyed';
  }
}
