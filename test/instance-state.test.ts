// Table-driven tests of the instance state machine against the reference tables
// (omicron sled-agent/src/common/instance.rs at 5c76e0e8d34f), plus equivalents of the original's
// common/instance.rs unit tests and the sim collection scenarios (§16).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InstanceStates, type InstanceAction, type PropolisInstanceState } from '../src/common/instance.js';
import { ApiError } from '../src/common/errors.js';
import {
  INSTANCE_STATES, INSTANCE_STATES_REQUESTED,
  type InstanceRuntimeState, type InstanceRuntimeStateRequested, type InstanceState, type InstanceStateRequested,
} from '../src/params.js';

const T0 = '2001-02-03T04:05:06.000Z';
const NOW = '2022-06-15T12:00:00.000Z';

const SLED = '11111111-1111-4111-8111-111111111111';
const PROPOLIS = '22222222-2222-4222-8222-222222222222';
const MIG_1 = '33333333-3333-4333-8333-333333333333';
const DST_1 = '44444444-4444-4444-8444-444444444444';
const MIG_2 = '55555555-5555-4555-8555-555555555555';
const DST_2 = '66666666-6666-4666-8666-666666666666';

/** A runtime state in `run_state` at gen 1, stamped T0. */
function runtime(run_state: InstanceState, extra: Partial<InstanceRuntimeState> = {}): InstanceRuntimeState {
  return {
    run_state, sled_id: SLED, propolis_id: PROPOLIS, dst_propolis_id: null, propolis_addr: null,
    migration_id: null, ncpus: 2, memory: 512 * 1024 * 1024, hostname: 'myvm', gen: 1, time_updated: T0,
    ...extra,
  };
}

/** An instance in `run_state`; a migrating one carries the consistent migration ids MIG_1 / DST_1. */
function make(run_state: InstanceState): InstanceStates {
  const ids = run_state === 'migrating' ? { migration_id: MIG_1, dst_propolis_id: DST_1 } : {};
  return new InstanceStates(runtime(run_state, ids));
}

const req = (run_state: InstanceStateRequested): InstanceRuntimeStateRequested =>
  ({ run_state, migration_params: null });
const migrate = (migration_id: string, dst_propolis_id: string): InstanceRuntimeStateRequested =>
  ({ run_state: 'migrating', migration_params: { migration_id, dst_propolis_id } });

// A desired state no transition ever produces (transitions always set migration_params: null), so
// "desired untouched" and "desired replaced" are distinguishable.
const SENTINEL_DESIRED = (): InstanceRuntimeStateRequested => ({
  run_state: 'migrating',
  migration_params: { migration_id: '77777777-7777-4777-8777-777777777777', dst_propolis_id: '88888888-8888-4888-8888-888888888888' },
});

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

// ---------------------------------------------------------------------------------------------
// request_transition
// ---------------------------------------------------------------------------------------------

type Outcome =
  | { kind: 'noop' }
  | {
    kind: 'transition';
    to: InstanceState;
    desired: InstanceStateRequested | null;
    action: InstanceAction | null;
    /** Other runtime fields the transition sets. */
    fields?: Partial<InstanceRuntimeState>;
  }
  | { kind: 'error'; statusCode: number; errorCode: string; message: string };

const NOOP: Outcome = { kind: 'noop' };
const to = (
  state: InstanceState, desired: InstanceStateRequested | null, action: InstanceAction | null,
  fields?: Partial<InstanceRuntimeState>,
): Outcome => ({ kind: 'transition', to: state, desired, action, ...(fields ? { fields } : {}) });
const invalid = (message: string): Outcome => ({ kind: 'error', statusCode: 400, errorCode: 'InvalidRequest', message });

/** Reference §5, one entry per (requested, current) pair; the Record types force all 10 states. */
const REQUEST_TABLE: Record<'running' | 'stopped' | 'reboot' | 'destroyed', Record<InstanceState, Outcome>> = {
  running: {
    running: NOOP,
    starting: NOOP,
    rebooting: NOOP,
    migrating: NOOP,
    creating: to('starting', 'running', 'run'),
    stopping: to('starting', 'running', 'run'),
    stopped: to('starting', 'running', 'run'),
    repairing: invalid('cannot run instance in state "repairing"'),
    failed: invalid('cannot run instance in state "failed"'),
    destroyed: invalid('cannot run instance in state "destroyed"'),
  },
  stopped: {
    stopped: NOOP,
    stopping: NOOP,
    creating: to('stopped', null, null),
    starting: to('stopping', 'stopped', 'stop'),
    running: to('stopping', 'stopped', 'stop'),
    rebooting: to('stopping', 'stopped', 'stop'),
    migrating: invalid('cannot stop instance in state "migrating"'),
    repairing: invalid('cannot stop instance in state "repairing"'),
    failed: invalid('cannot stop instance in state "failed"'),
    destroyed: invalid('cannot stop instance in state "destroyed"'),
  },
  reboot: {
    rebooting: NOOP,
    starting: to('rebooting', 'reboot', 'reboot'),
    running: to('rebooting', 'reboot', 'reboot'),
    creating: invalid('cannot reboot instance in state "creating"'),
    stopping: invalid('cannot reboot instance in state "stopping"'),
    stopped: invalid('cannot reboot instance in state "stopped"'),
    migrating: invalid('cannot reboot instance in state "migrating"'),
    repairing: invalid('cannot reboot instance in state "repairing"'),
    failed: invalid('cannot reboot instance in state "failed"'),
    destroyed: invalid('cannot reboot instance in state "destroyed"'),
  },
  destroyed: {
    // is_stopped(): straight to destroyed (gen bumps even when already destroyed).
    creating: to('destroyed', null, 'destroy'),
    stopped: to('destroyed', null, 'destroy'),
    repairing: to('destroyed', null, 'destroy'),
    failed: to('destroyed', null, 'destroy'),
    destroyed: to('destroyed', null, 'destroy'),
    // Anything else must stop first.
    starting: to('stopping', 'destroyed', 'stop'),
    running: to('stopping', 'destroyed', 'stop'),
    stopping: to('stopping', 'destroyed', 'stop'),
    rebooting: to('stopping', 'destroyed', 'stop'),
    migrating: to('stopping', 'destroyed', 'stop'),
  },
};

/** Requesting "migrating" with migration_params MIG_1 / DST_1 (the current ids of a migrating instance). */
const MIGRATE_TABLE: Record<InstanceState, Outcome> = {
  running: to('migrating', 'running', null, { migration_id: MIG_1, dst_propolis_id: DST_1 }),
  migrating: NOOP, // same migration id, same destination
  creating: invalid('cannot migrate instance in state "creating"'),
  starting: invalid('cannot migrate instance in state "starting"'),
  stopping: invalid('cannot migrate instance in state "stopping"'),
  stopped: invalid('cannot migrate instance in state "stopped"'),
  rebooting: invalid('cannot migrate instance in state "rebooting"'),
  repairing: invalid('cannot migrate instance in state "repairing"'),
  failed: invalid('cannot migrate instance in state "failed"'),
  destroyed: invalid('cannot migrate instance in state "destroyed"'),
};

/** Applies `target` to `instance` (with a sentinel desired state) and checks `expected` in full. */
function checkRequest(instance: InstanceStates, target: InstanceRuntimeStateRequested, expected: Outcome): void {
  instance.desired = SENTINEL_DESIRED();
  const before = structuredClone(instance.current);
  expect(before.gen).toBe(1);
  expect(before.time_updated).toBe(T0);

  switch (expected.kind) {
    case 'noop': {
      expect(instance.requestTransition(target)).toBeNull();
      expect(instance.current).toEqual(before); // run_state, gen and time_updated untouched
      expect(instance.current.gen).toBe(1);
      expect(instance.desired).toEqual(SENTINEL_DESIRED());
      return;
    }
    case 'transition': {
      expect(instance.requestTransition(target)).toBe(expected.action);
      expect(instance.current).toEqual({
        ...before, ...expected.fields, run_state: expected.to, gen: 2, time_updated: NOW,
      });
      expect(instance.desired).toEqual(
        expected.desired === null ? null : { run_state: expected.desired, migration_params: null },
      );
      return;
    }
    case 'error': {
      const err = thrown(() => instance.requestTransition(target));
      expect({ statusCode: err.statusCode, errorCode: err.errorCode, message: err.message }).toEqual({
        statusCode: expected.statusCode, errorCode: expected.errorCode, message: expected.message,
      });
      expect(instance.current).toEqual(before); // state, gen and time_updated unchanged
      expect(instance.current.gen).toBe(1);
      expect(instance.desired).toEqual(SENTINEL_DESIRED());
      return;
    }
  }
}

const describeOutcome = (o: Outcome): string =>
  o.kind === 'noop' ? 'no-op'
    : o.kind === 'error' ? `error ${o.statusCode} ${JSON.stringify(o.message)}`
      : `-> ${o.to}, desired=${o.desired ?? 'none'}, action=${o.action ?? 'none'}`;

describe('InstanceStates.requestTransition: reference §5 table', () => {
  it('the tables cover every requested state and every instance state', () => {
    expect(INSTANCE_STATES).toHaveLength(10);
    expect([...Object.keys(REQUEST_TABLE), 'migrating'].sort()).toEqual([...INSTANCE_STATES_REQUESTED].sort());
    for (const row of [...Object.values(REQUEST_TABLE), MIGRATE_TABLE]) {
      expect(Object.keys(row).sort()).toEqual([...INSTANCE_STATES].sort());
    }
  });

  for (const [requested, row] of Object.entries(REQUEST_TABLE) as [keyof typeof REQUEST_TABLE, Record<InstanceState, Outcome>][]) {
    describe(`requested ${requested}`, () => {
      for (const state of INSTANCE_STATES) {
        const expected = row[state];
        it(`from ${state}: ${describeOutcome(expected)}`, () => {
          checkRequest(make(state), req(requested), expected);
        });
      }
    });
  }

  describe('requested migrating (params MIG_1 -> DST_1)', () => {
    for (const state of INSTANCE_STATES) {
      const expected = MIGRATE_TABLE[state];
      it(`from ${state}: ${describeOutcome(expected)}`, () => {
        checkRequest(make(state), migrate(MIG_1, DST_1), expected);
      });
    }
  });

  describe('requested migrating without migration_params', () => {
    const missing = invalid('expected migration IDs to transition to "migrating" state');
    for (const state of INSTANCE_STATES) {
      it(`from ${state} (migration_params: null): ${describeOutcome(missing)}`, () => {
        checkRequest(make(state), { run_state: 'migrating', migration_params: null }, missing);
      });
      it(`from ${state} (migration_params omitted): ${describeOutcome(missing)}`, () => {
        checkRequest(make(state), { run_state: 'migrating' }, missing);
      });
    }
  });

  describe('requested migrating while already migrating (current MIG_1 -> DST_1)', () => {
    it('same migration id and same destination is a no-op', () => {
      checkRequest(make('migrating'), migrate(MIG_1, DST_1), NOOP);
    });
    it('same migration id, other destination: "already perfoming ..." (sic) naming the current destination', () => {
      checkRequest(make('migrating'), migrate(MIG_1, DST_2),
        invalid(`already perfoming given migration to different propolis: ${DST_1}`));
    });
    it('other migration id, same destination: "migration already in progress: <current id>"', () => {
      checkRequest(make('migrating'), migrate(MIG_2, DST_1), invalid(`migration already in progress: ${MIG_1}`));
    });
    it('other migration id, other destination: "migration already in progress: <current id>"', () => {
      checkRequest(make('migrating'), migrate(MIG_2, DST_2), invalid(`migration already in progress: ${MIG_1}`));
    });
  });

  describe('requested migrating while migrating with missing ids: internal error', () => {
    const internal = (message: string): Outcome => ({ kind: 'error', statusCode: 500, errorCode: 'Internal', message });
    const NO_MIGRATION = internal('migrating but no migration id present');
    const NO_DST = internal('migrating but no dst propolis id present');
    const cases: [string, Partial<InstanceRuntimeState>, InstanceRuntimeStateRequested, Outcome][] = [
      ['dst_propolis_id missing, same migration', { migration_id: MIG_1, dst_propolis_id: null }, migrate(MIG_1, DST_1), NO_DST],
      ['migration_id missing', { migration_id: null, dst_propolis_id: DST_1 }, migrate(MIG_1, DST_1), NO_MIGRATION],
      ['both missing', { migration_id: null, dst_propolis_id: null }, migrate(MIG_1, DST_1), NO_MIGRATION],
      ['both undefined', { migration_id: undefined, dst_propolis_id: undefined }, migrate(MIG_1, DST_1), NO_MIGRATION],
      // The migration id is compared first: another migration is the caller's error, a 400.
      ['dst_propolis_id missing, other migration', { migration_id: MIG_1, dst_propolis_id: null }, migrate(MIG_2, DST_1),
        invalid(`migration already in progress: ${MIG_1}`)],
    ];
    for (const [name, ids, target, outcome] of cases) {
      it(`${name}: ${describeOutcome(outcome)}, nothing changes`, () => {
        checkRequest(new InstanceStates(runtime('migrating', ids)), target, outcome);
      });
    }
  });
});

describe('InstanceStates.requestTransition: generation bookkeeping', () => {
  it('a repeated request bumps gen once, then is a no-op', () => {
    const instance = make('stopped');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expect(instance.current.gen).toBe(2);
    vi.setSystemTime(new Date('2030-01-01T00:00:00.000Z'));
    expect(instance.requestTransition(req('running'))).toBeNull();
    expect(instance.current).toMatchObject({ run_state: 'starting', gen: 2, time_updated: NOW });
    expect(instance.desired).toEqual({ run_state: 'running', migration_params: null });
  });

  it('destroyed -> destroyed bumps gen every time', () => {
    const instance = make('destroyed');
    expect(instance.requestTransition(req('destroyed'))).toBe('destroy');
    expect(instance.requestTransition(req('destroyed'))).toBe('destroy');
    expect(instance.current).toMatchObject({ run_state: 'destroyed', gen: 3 });
    expect(instance.desired).toBeNull();
  });

  it('isStopped() is true exactly for creating, stopped, repairing, failed, destroyed', () => {
    const stopped = INSTANCE_STATES.filter((s) => make(s).isStopped());
    expect(stopped.sort()).toEqual(['creating', 'destroyed', 'failed', 'repairing', 'stopped']);
  });
});

// ---------------------------------------------------------------------------------------------
// observe_transition
// ---------------------------------------------------------------------------------------------

const PROPOLIS_STATES: readonly PropolisInstanceState[] = [
  'Creating', 'Starting', 'Running', 'Stopping', 'Stopped',
  'Rebooting', 'Migrating', 'Repairing', 'Failed', 'Destroyed',
];

/** Reference §5 state mapping; Destroyed is reported as stopped. */
const OBSERVED_AS: Record<PropolisInstanceState, InstanceState> = {
  Creating: 'creating',
  Starting: 'starting',
  Running: 'running',
  Stopping: 'stopping',
  Stopped: 'stopped',
  Rebooting: 'rebooting',
  Migrating: 'migrating',
  Repairing: 'repairing',
  Failed: 'failed',
  Destroyed: 'stopped',
};

type DesiredKey = 'none' | InstanceStateRequested;
const DESIRED_KEYS: readonly DesiredKey[] = ['none', ...INSTANCE_STATES_REQUESTED];

/** Reference §5 "new desired state" rules, per (desired before, observed). */
const NEXT_DESIRED: Record<DesiredKey, Record<PropolisInstanceState, InstanceStateRequested | null>> = {
  none: {
    Creating: null, Starting: null, Running: null, Stopping: null, Stopped: null,
    Rebooting: null, Migrating: null, Repairing: null, Failed: null, Destroyed: null,
  },
  running: {
    Creating: 'running', Starting: 'running', Running: null, Stopping: 'running', Stopped: 'running',
    Rebooting: 'running', Migrating: 'running', Repairing: 'running', Failed: 'running', Destroyed: 'running',
  },
  stopped: {
    Creating: 'stopped', Starting: 'stopped', Running: 'stopped', Stopping: 'stopped', Stopped: null,
    Rebooting: 'stopped', Migrating: 'stopped', Repairing: 'stopped', Failed: 'stopped', Destroyed: 'stopped',
  },
  reboot: {
    Creating: null, Starting: 'running', Running: null, Stopping: 'reboot', Stopped: null,
    Rebooting: null, Migrating: null, Repairing: null, Failed: null, Destroyed: null,
  },
  migrating: {
    Creating: 'migrating', Starting: 'migrating', Running: 'migrating', Stopping: 'migrating', Stopped: 'migrating',
    Rebooting: 'migrating', Migrating: 'migrating', Repairing: 'migrating', Failed: 'migrating', Destroyed: 'migrating',
  },
  destroyed: {
    Creating: 'destroyed', Starting: 'destroyed', Running: 'destroyed', Stopping: 'destroyed', Stopped: 'destroyed',
    Rebooting: 'destroyed', Migrating: 'destroyed', Repairing: 'destroyed', Failed: 'destroyed', Destroyed: null,
  },
};

describe('InstanceStates.observeTransition: reference §5', () => {
  it('the tables cover all 10 Propolis states and every desired state', () => {
    expect(Object.keys(OBSERVED_AS).sort()).toEqual([...PROPOLIS_STATES].sort());
    expect(Object.keys(NEXT_DESIRED).sort()).toEqual([...DESIRED_KEYS].sort());
    for (const row of Object.values(NEXT_DESIRED)) expect(Object.keys(row).sort()).toEqual([...PROPOLIS_STATES].sort());
  });

  for (const desiredBefore of DESIRED_KEYS) {
    describe(`desired ${desiredBefore}`, () => {
      for (const observed of PROPOLIS_STATES) {
        const next = NEXT_DESIRED[desiredBefore][observed];
        const action = observed === 'Destroyed' ? 'destroy' : null;
        it(`observe ${observed}: -> ${OBSERVED_AS[observed]}, desired=${next ?? 'none'}, action=${action ?? 'none'}`, () => {
          // The starting state ('running') is arbitrary: the observation always wins.
          const instance = make('running');
          instance.desired = desiredBefore === 'none' ? null : {
            run_state: desiredBefore,
            // params present before, so "replaced with migration_params: None" is observable
            migration_params: desiredBefore === 'migrating' ? { migration_id: MIG_1, dst_propolis_id: DST_1 } : null,
          };
          const before = structuredClone(instance.current);
          expect(instance.observeTransition(observed)).toBe(action);
          expect(instance.current).toEqual({ ...before, run_state: OBSERVED_AS[observed], gen: 2, time_updated: NOW });
          expect(instance.desired).toEqual(next === null ? null : { run_state: next, migration_params: null });
        });
      }
    });
  }

  describe('observing the state the instance is already in is still a transition', () => {
    for (const observed of PROPOLIS_STATES) {
      it(`${OBSERVED_AS[observed]} + observe ${observed}: gen 1 -> 2, time_updated stamped`, () => {
        const instance = make(OBSERVED_AS[observed]);
        const before = structuredClone(instance.current);
        instance.observeTransition(observed);
        expect(instance.current).toEqual({ ...before, gen: 2, time_updated: NOW });
        instance.observeTransition(observed);
        expect(instance.current.gen).toBe(3);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Equivalents of the original's unit tests (common/instance.rs) and sim scenarios (§16)
// ---------------------------------------------------------------------------------------------

function expectState(instance: InstanceStates, run_state: InstanceState, desired: InstanceStateRequested | null, gen: number) {
  expect({ run_state: instance.current.run_state, desired: instance.desired?.run_state ?? null, gen: instance.current.gen })
    .toEqual({ run_state, desired, gen });
}

describe('original common/instance.rs tests', () => {
  it('running_from_creating', () => {
    const instance = make('creating');
    expectState(instance, 'creating', null, 1);
    expect(instance.requestTransition(req('running'))).toBe('run');
    expectState(instance, 'starting', 'running', 2);
  });

  it('reboot: stopping, starting, running', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expect(instance.observeTransition('Running')).toBeNull();
    expectState(instance, 'running', null, 3);
    expect(instance.requestTransition(req('reboot'))).toBe('reboot');
    expectState(instance, 'rebooting', 'reboot', 4);
    expect(instance.observeTransition('Stopping')).toBeNull();
    expectState(instance, 'stopping', 'reboot', 5);
    expect(instance.observeTransition('Starting')).toBeNull();
    expectState(instance, 'starting', 'running', 6);
    expect(instance.observeTransition('Running')).toBeNull();
    expectState(instance, 'running', null, 7);
  });

  it('reboot_skip_starting_converges_to_running', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expect(instance.observeTransition('Running')).toBeNull();
    expect(instance.requestTransition(req('reboot'))).toBe('reboot');
    expectState(instance, 'rebooting', 'reboot', 4);
    expect(instance.observeTransition('Stopping')).toBeNull();
    expectState(instance, 'stopping', 'reboot', 5);
    expect(instance.observeTransition('Running')).toBeNull();
    expectState(instance, 'running', null, 6);
  });

  it('reboot_skip_stopping_converges_to_running', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expect(instance.observeTransition('Running')).toBeNull();
    expect(instance.requestTransition(req('reboot'))).toBe('reboot');
    expectState(instance, 'rebooting', 'reboot', 4);
    expect(instance.observeTransition('Starting')).toBeNull();
    expectState(instance, 'starting', 'running', 5);
    expect(instance.observeTransition('Running')).toBeNull();
    expectState(instance, 'running', null, 6);
  });

  it('destroy_from_running_stops_first', () => {
    const instance = make('creating');
    expect(instance.observeTransition('Running')).toBeNull();
    expect(instance.requestTransition(req('destroyed'))).toBe('stop');
    expectState(instance, 'stopping', 'destroyed', 3);
    expect(instance.observeTransition('Stopped')).toBeNull();
    expectState(instance, 'stopped', 'destroyed', 4);
    expect(instance.observeTransition('Destroyed')).toBe('destroy');
    expectState(instance, 'stopped', null, 5);
  });

  it('destroy_from_stopped_destroys_immediately', () => {
    const instance = make('creating');
    expect(instance.observeTransition('Stopped')).toBeNull();
    expect(instance.requestTransition(req('destroyed'))).toBe('destroy');
    expectState(instance, 'destroyed', null, 3);
  });

  function runningInstance(): InstanceStates {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expect(instance.observeTransition('Running')).toBeNull();
    expectState(instance, 'running', null, 3);
    return instance;
  }

  it('migrating_from_running', () => {
    const instance = runningInstance();
    expect(instance.requestTransition(migrate(MIG_1, DST_1))).toBeNull();
    expectState(instance, 'migrating', 'running', 4);
    expect(instance.current.migration_id).toBe(MIG_1);
    expect(instance.current.dst_propolis_id).toBe(DST_1);
  });

  it('migrating_from_invalid_states_fails', () => {
    for (const state of ['creating', 'starting', 'stopping', 'stopped', 'rebooting', 'repairing', 'failed', 'destroyed'] as const) {
      const err = thrown(() => make(state).requestTransition(migrate(MIG_1, DST_1)));
      expect([state, err.statusCode, err.message]).toEqual([state, 400, `cannot migrate instance in state "${state}"`]);
    }
  });

  it('migrating_with_same_migration', () => {
    const instance = runningInstance();
    expect(instance.requestTransition(migrate(MIG_1, DST_1))).toBeNull();
    expectState(instance, 'migrating', 'running', 4);
    expect(instance.requestTransition(migrate(MIG_1, DST_1))).toBeNull();
    expectState(instance, 'migrating', 'running', 4);
  });

  it('migrating_missing_params_fails', () => {
    const instance = runningInstance();
    const err = thrown(() => instance.requestTransition(req('migrating')));
    expect([err.statusCode, err.errorCode, err.message])
      .toEqual([400, 'InvalidRequest', 'expected migration IDs to transition to "migrating" state']);
    expectState(instance, 'running', null, 3);
  });

  it('migrating_with_same_migration_different_propolis_fails', () => {
    const instance = runningInstance();
    expect(instance.requestTransition(migrate(MIG_1, DST_1))).toBeNull();
    const err = thrown(() => instance.requestTransition(migrate(MIG_1, DST_2)));
    expect([err.statusCode, err.errorCode, err.message])
      .toEqual([400, 'InvalidRequest', `already perfoming given migration to different propolis: ${DST_1}`]);
    expectState(instance, 'migrating', 'running', 4);
  });

  it('migrating_with_new_migration_fails', () => {
    const instance = runningInstance();
    expect(instance.requestTransition(migrate(MIG_1, DST_1))).toBeNull();
    const err = thrown(() => instance.requestTransition(migrate(MIG_2, DST_2)));
    expect([err.statusCode, err.errorCode, err.message])
      .toEqual([400, 'InvalidRequest', `migration already in progress: ${MIG_1}`]);
    expectState(instance, 'migrating', 'running', 4);
  });

  it('migrating_inconsistent_internal_state', () => {
    const instance = runningInstance();
    expect(instance.requestTransition(migrate(MIG_1, DST_1))).toBeNull();
    instance.current.dst_propolis_id = null;
    let err = thrown(() => instance.requestTransition(migrate(MIG_1, DST_1)));
    expect([err.statusCode, err.errorCode]).toEqual([500, 'Internal']);
    instance.current.migration_id = null;
    err = thrown(() => instance.requestTransition(migrate(MIG_1, DST_1)));
    expect([err.statusCode, err.errorCode]).toEqual([500, 'Internal']);
    expectState(instance, 'migrating', 'running', 4);
  });
});

describe('sim collection scenarios at the state-machine level', () => {
  it('creating_to_stop: creating -> stopped directly, no action', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('stopped'))).toBeNull();
    expectState(instance, 'stopped', null, 2);
  });

  it('running_then_destroyed ends stopped (Propolis Destroyed is reported as stopped)', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expect(instance.observeTransition('Running')).toBeNull();
    expect(instance.requestTransition(req('destroyed'))).toBe('stop');
    expectState(instance, 'stopping', 'destroyed', 4);
    expect(instance.observeTransition('Destroyed')).toBe('destroy');
    expectState(instance, 'stopped', null, 5);
  });

  it('preempt_transition: starting, then destroyed requested -> stopping -> stopped', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expectState(instance, 'starting', 'running', 2);
    expect(instance.requestTransition(req('destroyed'))).toBe('stop');
    expectState(instance, 'stopping', 'destroyed', 3);
    expect(instance.observeTransition('Stopped')).toBeNull();
    expectState(instance, 'stopped', 'destroyed', 4);
    expect(instance.observeTransition('Destroyed')).toBe('destroy');
    expectState(instance, 'stopped', null, 5);
  });

  it('a stop after a run asked during a stop cancels that run (a no-op would let it happen after "stopped")', () => {
    const instance = make('running');
    expect(instance.requestTransition(req('stopped'))).toBe('stop');
    expect(instance.observeTransition('Stopping')).toBeNull();
    expect(instance.requestTransition(req('running'))).toBe('run');
    expectState(instance, 'starting', 'running', 4);
    // The old VM's last states arrive while the run waits behind its teardown.
    expect(instance.observeTransition('Stopped')).toBeNull();
    expectState(instance, 'stopped', 'running', 5);
    expect(instance.requestTransition(req('stopped'))).toBe('stop');
    expectState(instance, 'stopping', 'stopped', 6);
    // With nothing pending, a stop of a stopped instance is still a no-op.
    expect(instance.observeTransition('Stopped')).toBeNull();
    expect(instance.requestTransition(req('stopped'))).toBeNull();
    expectState(instance, 'stopped', null, 7);
  });

  it('a run asked while a stop is still under way is what is wanted once it has gone down (no action now)', () => {
    const instance = make('running');
    expect(instance.requestTransition(req('stopped'))).toBe('stop');
    // Propolis had not reached Running when the stop came: the monitor sees Starting.
    expect(instance.observeTransition('Starting')).toBeNull();
    expectState(instance, 'starting', 'stopped', 3);
    expect(instance.requestTransition(req('running'))).toBeNull();
    expectState(instance, 'starting', 'running', 4);
    // With nothing pending, a run of a starting instance is still a no-op.
    expect(instance.observeTransition('Running')).toBeNull();
    expect(instance.requestTransition(req('running'))).toBeNull();
    expectState(instance, 'running', null, 5);
  });

  it('reboot twice: the second request while rebooting is a no-op', () => {
    const instance = make('running');
    expect(instance.requestTransition(req('reboot'))).toBe('reboot');
    expectState(instance, 'rebooting', 'reboot', 2);
    expect(instance.requestTransition(req('reboot'))).toBeNull();
    expectState(instance, 'rebooting', 'reboot', 2);
    expect(instance.observeTransition('Starting')).toBeNull();
    expectState(instance, 'starting', 'running', 3);
    // Once starting, a reboot request is a real transition again.
    expect(instance.requestTransition(req('reboot'))).toBe('reboot');
    expectState(instance, 'rebooting', 'reboot', 4);
    expect(instance.observeTransition('Starting')).toBeNull();
    expect(instance.observeTransition('Running')).toBeNull();
    expectState(instance, 'running', null, 6);
  });

  it('Nexus create/reboot/halt sequence: starting, running, rebooting, starting, running, stopping, stopped', () => {
    const instance = make('creating');
    expect(instance.requestTransition(req('running'))).toBe('run');
    expectState(instance, 'starting', 'running', 2);
    instance.observeTransition('Running');
    expectState(instance, 'running', null, 3);
    expect(instance.requestTransition(req('reboot'))).toBe('reboot');
    expectState(instance, 'rebooting', 'reboot', 4);
    instance.observeTransition('Starting');
    expectState(instance, 'starting', 'running', 5);
    instance.observeTransition('Running');
    expectState(instance, 'running', null, 6);
    expect(instance.requestTransition(req('stopped'))).toBe('stop');
    expectState(instance, 'stopping', 'stopped', 7);
    instance.observeTransition('Stopped');
    expectState(instance, 'stopped', null, 8);
  });
});
