// Table-driven tests of the disk state machine against the reference table
// (omicron sled-agent/src/common/disk.rs at 5c76e0e8d34f), plus state-machine-level equivalents of the
// original's sim disk tests (§16).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiskStates, attachedInstance, type DiskAction, type DiskAttachmentState } from '../src/common/disk.js';
import { ApiError } from '../src/common/errors.js';
import type { DiskRuntimeState, DiskState, DiskStateRequested } from '../src/params.js';

const T0 = '2001-02-03T04:05:06.000Z';
const NOW = '2022-06-15T12:00:00.000Z';

/** The instance the disk is attaching/attached/detaching to/from. */
const I = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
/** Another instance. */
const U = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

/** A disk runtime state in `disk_state` at gen 1, stamped T0. */
function runtime(disk_state: DiskState): DiskRuntimeState {
  return { disk_state, gen: 1, time_updated: T0 };
}

type StateName = DiskState['state'];
const CURRENT: Record<StateName, DiskState> = {
  creating: { state: 'creating' },
  detached: { state: 'detached' },
  attaching: { state: 'attaching', instance: I },
  attached: { state: 'attached', instance: I },
  detaching: { state: 'detaching', instance: I },
  destroyed: { state: 'destroyed' },
  faulted: { state: 'faulted' },
};
const STATE_NAMES = Object.keys(CURRENT) as StateName[];

// A desired state no transition in these tests produces, so "untouched" is distinguishable from
// "replaced" and from "cleared".
const SENTINEL_DESIRED = (): DiskStateRequested => ({ state: 'attached', instance: 'cccccccc-cccc-4ccc-8ccc-cccccccccccc' });

function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error('expected an ApiError, but the call returned normally');
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(NOW));
});
afterEach(() => {
  vi.useRealTimers();
});

type Outcome =
  | { kind: 'noop' }
  | { kind: 'transition'; to: DiskState; desired: DiskStateRequested | null; action: DiskAction | null }
  | { kind: 'error'; message: string };

const NOOP: Outcome = { kind: 'noop' };
const to = (state: DiskState, desired: DiskStateRequested | null, action: DiskAction | null): Outcome =>
  ({ kind: 'transition', to: state, desired, action });
const invalid = (message: string): Outcome => ({ kind: 'error', message });

type TargetName = 'detached' | 'attached(same instance)' | 'attached(other instance)' | 'destroyed' | 'faulted';
const TARGETS: Record<TargetName, DiskStateRequested> = {
  'detached': { state: 'detached' },
  'attached(same instance)': { state: 'attached', instance: I },
  'attached(other instance)': { state: 'attached', instance: U },
  'destroyed': { state: 'destroyed' },
  'faulted': { state: 'faulted' },
};

/** Reference §6, one entry per (requested, current) pair; the Record types force all 7 states. */
const TABLE: Record<TargetName, Record<StateName, Outcome>> = {
  'detached': {
    creating: to({ state: 'detached' }, null, null),
    detached: to({ state: 'detached' }, null, null), // no no-op check: gen bumps
    attaching: to({ state: 'detaching', instance: I }, { state: 'detached' }, { kind: 'detach', instance: I }),
    attached: to({ state: 'detaching', instance: I }, { state: 'detached' }, { kind: 'detach', instance: I }),
    detaching: to({ state: 'detaching', instance: I }, { state: 'detached' }, { kind: 'detach', instance: I }),
    destroyed: invalid('cannot detach from destroyed'),
    faulted: invalid('cannot detach from faulted'),
  },
  'attached(same instance)': {
    attaching: NOOP,
    attached: NOOP,
    creating: to({ state: 'attaching', instance: I }, { state: 'attached', instance: I }, { kind: 'attach', instance: I }),
    detached: to({ state: 'attaching', instance: I }, { state: 'attached', instance: I }, { kind: 'attach', instance: I }),
    detaching: invalid('cannot attach from detaching'),
    destroyed: invalid('cannot attach from destroyed'),
    faulted: invalid('cannot attach from faulted'),
  },
  'attached(other instance)': {
    attaching: invalid('disk is already attached'),
    attached: invalid('disk is already attached'),
    creating: to({ state: 'attaching', instance: U }, { state: 'attached', instance: U }, { kind: 'attach', instance: U }),
    detached: to({ state: 'attaching', instance: U }, { state: 'attached', instance: U }, { kind: 'attach', instance: U }),
    detaching: invalid('cannot attach from detaching'),
    destroyed: invalid('cannot attach from destroyed'),
    faulted: invalid('cannot attach from faulted'),
  },
  'destroyed': {
    attaching: to({ state: 'detaching', instance: I }, { state: 'destroyed' }, { kind: 'detach', instance: I }),
    attached: to({ state: 'detaching', instance: I }, { state: 'destroyed' }, { kind: 'detach', instance: I }),
    detaching: to({ state: 'detaching', instance: I }, { state: 'destroyed' }, { kind: 'detach', instance: I }),
    creating: to({ state: 'destroyed' }, null, { kind: 'destroy' }),
    detached: to({ state: 'destroyed' }, null, { kind: 'destroy' }),
    destroyed: to({ state: 'destroyed' }, null, { kind: 'destroy' }),
    faulted: to({ state: 'destroyed' }, null, { kind: 'destroy' }),
  },
  'faulted': {
    attaching: to({ state: 'detaching', instance: I }, { state: 'faulted' }, { kind: 'detach', instance: I }),
    attached: to({ state: 'detaching', instance: I }, { state: 'faulted' }, { kind: 'detach', instance: I }),
    detaching: to({ state: 'detaching', instance: I }, { state: 'faulted' }, { kind: 'detach', instance: I }),
    creating: to({ state: 'faulted' }, null, null),
    detached: to({ state: 'faulted' }, null, null),
    destroyed: to({ state: 'faulted' }, null, null),
    faulted: to({ state: 'faulted' }, null, null),
  },
};

const label = (s: DiskState | DiskStateRequested): string =>
  'instance' in s ? `${s.state}(${s.instance === I ? 'i' : s.instance === U ? 'u' : s.instance})` : s.state;
const describeOutcome = (o: Outcome): string =>
  o.kind === 'noop' ? 'no-op'
    : o.kind === 'error' ? `error 400 ${JSON.stringify(o.message)}`
      : `-> ${label(o.to)}, desired=${o.desired ? label(o.desired) : 'none'}, action=${o.action ? JSON.stringify(o.action) : 'none'}`;

describe('DiskStates.requestTransition: reference §6 table', () => {
  it('the table covers every requested target and every disk state', () => {
    expect(STATE_NAMES.sort()).toEqual(['attached', 'attaching', 'creating', 'destroyed', 'detached', 'detaching', 'faulted']);
    expect(Object.keys(TABLE).sort()).toEqual(Object.keys(TARGETS).sort());
    for (const row of Object.values(TABLE)) expect(Object.keys(row).sort()).toEqual([...STATE_NAMES].sort());
  });

  for (const [targetName, row] of Object.entries(TABLE) as [TargetName, Record<StateName, Outcome>][]) {
    describe(`requested ${targetName}`, () => {
      for (const stateName of STATE_NAMES) {
        const current = CURRENT[stateName];
        const expected = row[stateName];
        it(`from ${label(current)}: ${describeOutcome(expected)}`, () => {
          const disk = new DiskStates(runtime(current));
          disk.desired = SENTINEL_DESIRED();
          const before = structuredClone(disk.current);
          const target = TARGETS[targetName];

          switch (expected.kind) {
            case 'noop':
              expect(disk.requestTransition(target)).toBeNull();
              expect(disk.current).toEqual(before);
              expect(disk.current).toEqual({ disk_state: current, gen: 1, time_updated: T0 });
              expect(disk.desired).toEqual(SENTINEL_DESIRED());
              return;
            case 'transition':
              expect(disk.requestTransition(target)).toEqual(expected.action);
              expect(disk.current).toEqual({ disk_state: expected.to, gen: 2, time_updated: NOW });
              expect(disk.desired).toEqual(expected.desired);
              return;
            case 'error': {
              const err = thrown(() => disk.requestTransition(target));
              expect({ statusCode: err.statusCode, errorCode: err.errorCode, message: err.message })
                .toEqual({ statusCode: 400, errorCode: 'InvalidRequest', message: expected.message });
              expect(disk.current).toEqual(before);
              expect(disk.current).toEqual({ disk_state: current, gen: 1, time_updated: T0 });
              expect(disk.desired).toEqual(SENTINEL_DESIRED());
              return;
            }
          }
        });
      }
    });
  }

  it('detached -> detached bumps gen on every request (no no-op check)', () => {
    const disk = new DiskStates(runtime({ state: 'detached' }));
    expect(disk.requestTransition({ state: 'detached' })).toBeNull();
    expect(disk.requestTransition({ state: 'detached' })).toBeNull();
    expect(disk.current).toEqual({ disk_state: { state: 'detached' }, gen: 3, time_updated: NOW });
  });

  it('attached(u) while attached(u) stays a no-op when repeated', () => {
    const disk = new DiskStates(runtime({ state: 'attached', instance: I }));
    for (let n = 0; n < 3; n++) expect(disk.requestTransition({ state: 'attached', instance: I })).toBeNull();
    expect(disk.current).toEqual({ disk_state: { state: 'attached', instance: I }, gen: 1, time_updated: T0 });
  });
});

const OBSERVATIONS: readonly DiskAttachmentState[] = [
  { state: 'attached', instance: I },
  { state: 'attached', instance: U },
  { state: 'detached' },
  { state: 'destroyed' },
  { state: 'faulted' },
];

describe('DiskStates.observeTransition: reference §6', () => {
  for (const observed of OBSERVATIONS) {
    describe(`observe ${label(observed)}`, () => {
      for (const stateName of STATE_NAMES) {
        const current = CURRENT[stateName];
        it(`from ${label(current)}: -> ${label(observed)}, desired cleared, gen 1 -> 2`, () => {
          const disk = new DiskStates(runtime(current));
          disk.desired = SENTINEL_DESIRED();
          expect(disk.observeTransition(observed)).toBeUndefined();
          expect(disk.current).toEqual({ disk_state: observed, gen: 2, time_updated: NOW });
          expect(disk.desired).toBeNull();
        });
      }
    });
  }
});

describe('attachedInstance', () => {
  const expected: Record<StateName, string | null> = {
    creating: null, detached: null, attaching: I, attached: I, detaching: I, destroyed: null, faulted: null,
  };
  for (const stateName of STATE_NAMES) {
    it(`${stateName} -> ${expected[stateName] === I ? 'i' : 'null'}`, () => {
      expect(attachedInstance(CURRENT[stateName])).toBe(expected[stateName]);
    });
  }
});

// Equivalents of sim/collection.rs disk tests, driven the way the sim drives them: it observes
// exactly the state that was asked for.
describe('sim disk scenarios at the state-machine level', () => {
  function expectDisk(disk: DiskStates, disk_state: DiskState, desired: DiskStateRequested | null, gen: number) {
    expect({ disk_state: disk.current.disk_state, desired: disk.desired, gen: disk.current.gen })
      .toEqual({ disk_state, desired, gen });
  }

  it('transition_to_detached_states: creating -> detached, then destroyed', () => {
    const disk = new DiskStates(runtime({ state: 'creating' }));
    expect(disk.requestTransition({ state: 'detached' })).toBeNull();
    expectDisk(disk, { state: 'detached' }, null, 2);
    expect(disk.requestTransition({ state: 'destroyed' })).toEqual({ kind: 'destroy' });
    expectDisk(disk, { state: 'destroyed' }, null, 3);
  });

  it('attach_then_destroy: attaching, attached, detaching (desired destroyed), destroyed', () => {
    const disk = new DiskStates(runtime({ state: 'detached' }));
    expect(disk.requestTransition({ state: 'attached', instance: I })).toEqual({ kind: 'attach', instance: I });
    expectDisk(disk, { state: 'attaching', instance: I }, { state: 'attached', instance: I }, 2);
    disk.observeTransition({ state: 'attached', instance: I });
    expectDisk(disk, { state: 'attached', instance: I }, null, 3);
    expect(disk.requestTransition({ state: 'destroyed' })).toEqual({ kind: 'detach', instance: I });
    expectDisk(disk, { state: 'detaching', instance: I }, { state: 'destroyed' }, 4);
    disk.observeTransition({ state: 'destroyed' });
    expectDisk(disk, { state: 'destroyed' }, null, 5);
  });

  it('attach_then_fault: attaching, attached, detaching (desired faulted), faulted', () => {
    const disk = new DiskStates(runtime({ state: 'detached' }));
    expect(disk.requestTransition({ state: 'attached', instance: I })).toEqual({ kind: 'attach', instance: I });
    disk.observeTransition({ state: 'attached', instance: I });
    expectDisk(disk, { state: 'attached', instance: I }, null, 3);
    expect(disk.requestTransition({ state: 'faulted' })).toEqual({ kind: 'detach', instance: I });
    expectDisk(disk, { state: 'detaching', instance: I }, { state: 'faulted' }, 4);
    disk.observeTransition({ state: 'faulted' });
    expectDisk(disk, { state: 'faulted' }, null, 5);
  });

  it('attach to another instance while attached fails and changes nothing', () => {
    const disk = new DiskStates(runtime({ state: 'detached' }));
    disk.requestTransition({ state: 'attached', instance: I });
    disk.observeTransition({ state: 'attached', instance: I });
    const err = thrown(() => disk.requestTransition({ state: 'attached', instance: U }));
    expect([err.statusCode, err.errorCode, err.message]).toEqual([400, 'InvalidRequest', 'disk is already attached']);
    expectDisk(disk, { state: 'attached', instance: I }, null, 3);
  });
});
