// The disk state machine shared by the real and simulated agents (omicron
// sled-agent/src/common/disk.rs; reference §6). Unlike instances, every transition here bumps
// `gen`, even detached -> detached: that is the original's contract and Nexus relies only on
// generations growing.
import { invalidRequest } from './errors.js';
import type { DiskRuntimeState, DiskState, DiskStateRequested } from '../params.js';

export type DiskAction =
  | { kind: 'attach'; instance: string }
  | { kind: 'detach'; instance: string }
  | { kind: 'destroy' };

/** Attachment states Propolis (or the sim) reports. */
export type DiskAttachmentState =
  | { state: 'attached'; instance: string }
  | { state: 'detached' }
  | { state: 'destroyed' }
  | { state: 'faulted' };

/** The instance a disk is attaching, attached or detaching to/from, if any. */
export function attachedInstance(state: DiskState): string | null {
  return 'instance' in state ? state.instance : null;
}

export class DiskStates {
  desired: DiskStateRequested | null = null;

  constructor(public current: DiskRuntimeState) {}

  private transition(next: DiskState, desired: DiskStateRequested | null): void {
    this.current = {
      disk_state: next,
      gen: this.current.gen + 1,
      time_updated: new Date().toISOString(),
    };
    this.desired = desired;
  }

  requestTransition(target: DiskStateRequested): DiskAction | null {
    const current = this.current.disk_state;
    const instance = attachedInstance(current);
    switch (target.state) {
      case 'detached':
        if (current.state === 'creating' || current.state === 'detached') {
          this.transition({ state: 'detached' }, null);
          return null;
        }
        if (instance !== null) {
          this.transition({ state: 'detaching', instance }, target);
          return { kind: 'detach', instance };
        }
        throw invalidRequest(`cannot detach from ${current.state}`);
      case 'attached':
        if (current.state === 'attaching' || current.state === 'attached') {
          if (instance === target.instance) return null;
          throw invalidRequest('disk is already attached');
        }
        if (current.state === 'creating' || current.state === 'detached') {
          this.transition({ state: 'attaching', instance: target.instance }, target);
          return { kind: 'attach', instance: target.instance };
        }
        throw invalidRequest(`cannot attach from ${current.state}`);
      case 'destroyed':
      case 'faulted':
        if (instance !== null) {
          this.transition({ state: 'detaching', instance }, target);
          return { kind: 'detach', instance };
        }
        this.transition({ state: target.state }, null);
        return target.state === 'destroyed' ? { kind: 'destroy' } : null;
    }
  }

  observeTransition(observed: DiskAttachmentState): void {
    this.transition(observed, null);
  }
}
