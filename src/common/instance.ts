// The instance state machine shared by the real and simulated agents (omicron
// sled-agent/src/common/instance.rs; reference §5). Every transition bumps `gen` and stamps
// `time_updated`; a request that changes nothing returns null and leaves `gen` alone, so Nexus
// (which keeps only strictly newer generations) sees exactly one update per real change.
import { invalidRequest, ApiError } from './errors.js';
import type {
  InstanceRuntimeState, InstanceRuntimeStateRequested, InstanceState, InstanceStateRequested,
} from '../params.js';

/** States Propolis reports (propolis-client InstanceState). */
export type PropolisInstanceState =
  | 'Creating' | 'Starting' | 'Running' | 'Stopping' | 'Stopped'
  | 'Rebooting' | 'Migrating' | 'Repairing' | 'Failed' | 'Destroyed';

/** What the caller must do to the VM after a transition. */
export type InstanceAction = 'run' | 'stop' | 'reboot' | 'destroy';

const OBSERVED: Record<PropolisInstanceState, InstanceState> = {
  Creating: 'creating',
  Starting: 'starting',
  Running: 'running',
  Stopping: 'stopping',
  Stopped: 'stopped',
  Rebooting: 'rebooting',
  Migrating: 'migrating',
  Repairing: 'repairing',
  Failed: 'failed',
  // The Propolis server is gone, but the VM could be placed elsewhere: Nexus sees "stopped".
  Destroyed: 'stopped',
};

const STOPPED_LIKE: ReadonlySet<InstanceState> = new Set(['creating', 'stopped', 'repairing', 'failed', 'destroyed']);

export class InstanceStates {
  desired: InstanceRuntimeStateRequested | null = null;

  constructor(public current: InstanceRuntimeState) {}

  /** Whether the VM is known not to be running (omicron `is_stopped`). */
  isStopped(): boolean {
    return STOPPED_LIKE.has(this.current.run_state);
  }

  private transition(next: InstanceState, desired: InstanceStateRequested | null): void {
    this.current = {
      ...this.current,
      run_state: next,
      gen: this.current.gen + 1,
      time_updated: new Date().toISOString(),
    };
    this.desired = desired === null ? null : { run_state: desired, migration_params: null };
  }

  /**
   * Applies what Nexus asked for. Returns the action to take, or null when nothing needs doing
   * (including a no-op request, which does not bump `gen`). Throws a 400 InvalidRequest when the
   * request is not allowed from the current state.
   */
  requestTransition(target: InstanceRuntimeStateRequested): InstanceAction | null {
    const state = this.current.run_state;
    switch (target.run_state) {
      case 'running':
        switch (state) {
          case 'running': case 'starting': case 'rebooting': case 'migrating':
            // Up, unless a stop asked before is still under way: then the run is what is wanted
            // once it has gone down (the caller starts it again then; nothing to do now).
            if (this.desired?.run_state !== 'stopped' && this.desired?.run_state !== 'destroyed') return null;
            this.transition(state, 'running');
            return null;
          case 'creating': case 'stopping': case 'stopped':
            this.transition('starting', 'running');
            return 'run';
          default:
            throw invalidRequest(`cannot run instance in state "${state}"`);
        }
      case 'stopped':
        switch (state) {
          case 'stopped': case 'stopping':
            // Already (going) down, unless a run asked since is still to come: the stop cancels it
            // (a no-op here would leave the run to happen after Nexus was told "stopped").
            if (this.desired?.run_state !== 'running' && this.desired?.run_state !== 'reboot') return null;
            this.transition('stopping', 'stopped');
            return 'stop';
          case 'creating':
            this.transition('stopped', null);
            return null;
          case 'starting': case 'running': case 'rebooting':
            this.transition('stopping', 'stopped');
            return 'stop';
          default:
            throw invalidRequest(`cannot stop instance in state "${state}"`);
        }
      case 'reboot':
        switch (state) {
          case 'rebooting':
            return null;
          case 'starting': case 'running':
            this.transition('rebooting', 'reboot');
            return 'reboot';
          default:
            throw invalidRequest(`cannot reboot instance in state "${state}"`);
        }
      case 'migrating':
        return this.requestMigration(target);
      case 'destroyed':
        if (this.isStopped()) {
          this.transition('destroyed', null);
          return 'destroy';
        }
        this.transition('stopping', 'destroyed');
        return 'stop';
    }
  }

  private requestMigration(target: InstanceRuntimeStateRequested): InstanceAction | null {
    const params = target.migration_params;
    if (!params) {
      throw invalidRequest('expected migration IDs to transition to "migrating" state');
    }
    const state = this.current.run_state;
    if (state === 'running') {
      this.current = {
        ...this.current,
        dst_propolis_id: params.dst_propolis_id,
        migration_id: params.migration_id,
      };
      this.transition('migrating', 'running');
      return null;
    }
    if (state === 'migrating') {
      const { migration_id: id, dst_propolis_id: dst } = this.current;
      // Internal inconsistencies are not the caller's fault: a 500, as in the original.
      if (!id) throw new ApiError(500, 'Internal', 'migrating but no migration id present');
      if (id !== params.migration_id) throw invalidRequest(`migration already in progress: ${id}`);
      if (!dst) throw new ApiError(500, 'Internal', 'migrating but no dst propolis id present');
      if (dst === params.dst_propolis_id) return null;
      // "perfoming" is the original's spelling; clients may match on it.
      throw invalidRequest(`already perfoming given migration to different propolis: ${dst}`);
    }
    throw invalidRequest(`cannot migrate instance in state "${state}"`);
  }

  /**
   * Records a state Propolis reported. Always a transition (gen + 1), even if the state is the
   * same. Returns 'destroy' iff Propolis reported Destroyed.
   */
  observeTransition(observed: PropolisInstanceState): InstanceAction | null {
    let desired: InstanceStateRequested | null = this.desired?.run_state ?? null;
    if (desired !== null) {
      if (
        (desired === 'running' && observed === 'Running')
        || (desired === 'stopped' && observed === 'Stopped')
        || (desired === 'destroyed' && observed === 'Destroyed')
      ) {
        desired = null;
      } else if (desired === 'reboot') {
        desired = observed === 'Stopping' ? 'reboot' : observed === 'Starting' ? 'running' : null;
      }
    }
    this.transition(OBSERVED[observed], desired);
    return observed === 'Destroyed' ? 'destroy' : null;
  }
}
