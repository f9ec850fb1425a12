// SimCollection: the simulated objects of one kind (instances or disks), keyed by id (omicron
// sled-agent/src/sim/collection.rs). A request moves an object through the shared state machine;
// the rest of the way to the desired state is simulated, either by an explicit poke or, in auto
// mode, by timers. Unlike the original, auto mode keeps stepping until nothing is pending, so an
// auto-mode reboot reaches "running" instead of stalling in "starting".
import type { Logger } from 'pino';
import { objectNotFound } from '../common/errors.js';

export type SimMode = 'auto' | 'explicit';

/** One simulated object: its state machine plus how the simulation completes a transition. */
export interface SimObject<Current, Requested> {
  readonly current: Current;
  readonly desired: Requested | null;
  readonly generation: number;
  /** Apply a request (throws a 400 ApiError when not allowed). */
  requestTransition(target: Requested): void;
  /** Simulate the next observed step towards `desired`. */
  executeDesiredTransition(): void;
  /** True once the object may be forgotten. */
  readyToDestroy(): boolean;
}

/** What the shared state machines (common/instance.ts, common/disk.ts) have in common. */
export interface StateMachine<Current extends { gen: number }, Requested> {
  readonly current: Current;
  readonly desired: Requested | null;
  requestTransition(target: Requested): unknown;
}

/** A SimObject over one of the shared state machines; subclasses say how a step is simulated. */
export abstract class SimulatedStateMachine<Current extends { gen: number }, Requested, M extends StateMachine<Current, Requested>>
implements SimObject<Current, Requested> {
  constructor(protected readonly states: M) {}

  get current(): Current { return this.states.current; }
  get desired(): Requested | null { return this.states.desired; }
  get generation(): number { return this.states.current.gen; }

  requestTransition(target: Requested): void {
    this.states.requestTransition(target);
  }

  abstract executeDesiredTransition(): void;
  abstract readyToDestroy(): boolean;
}

export interface SimCollectionOptions<Current> {
  kind: string;
  mode: SimMode;
  /** Auto mode: time from a request (or a step) to the next simulated step, ms. */
  autoDelayMs: number;
  log: Logger;
  /** Report the object's state to Nexus (called after every poke, as the original does); settles once Nexus has it, or will not. */
  notify: (id: string, current: Current) => Promise<unknown>;
}

interface Entry<O> {
  object: O;
  timer: NodeJS.Timeout | null;
}

export class SimCollection<Current, Requested, O extends SimObject<Current, Requested>> {
  private readonly objects = new Map<string, Entry<O>>();

  constructor(
    private readonly options: SimCollectionOptions<Current>,
    private readonly create: (id: string, initial: Current) => O,
  ) {}

  get size(): number {
    return this.objects.size;
  }

  get(id: string): O | undefined {
    return this.objects.get(id)?.object;
  }

  /** Every object with its id (GET /instances, the metrics). */
  *entries(): IterableIterator<[string, O]> {
    for (const [id, entry] of this.objects) yield [id, entry.object];
  }

  /**
   * Ensure `id` heads for `target`. `initial` is used only if the object is new. Returns the
   * object's current (possibly intermediate) state.
   */
  ensure(id: string, initial: Current, target: Requested): Current {
    let entry = this.objects.get(id);
    const isNew = entry === undefined;
    // A new object is only kept if its first request is valid, so nothing half-made lingers.
    const object = entry?.object ?? this.create(id, initial);
    const before = object.generation;
    object.requestTransition(target);
    if (!entry) {
      entry = { object, timer: null };
      this.objects.set(id, entry);
    }
    if (object.generation !== before) {
      this.options.log.info({ kind: this.options.kind, id, new: isNew, state: object.current }, 'transition requested');
      this.scheduleStep(id, entry);
    }
    return object.current;
  }

  /**
   * Advance `id` one simulated step and report to Nexus; settles once Nexus has the new state (or
   * will not get it), as the original's sim_poke awaits its notify. 404 if the id is unknown.
   */
  poke(id: string): Promise<unknown> {
    const entry = this.objects.get(id);
    if (!entry) throw objectNotFound(`no ${this.options.kind} with id ${id}`);
    return this.step(id, entry);
  }

  private step(id: string, entry: Entry<O>): Promise<unknown> {
    const { object } = entry;
    if (entry.timer) {
      clearTimeout(entry.timer);
      entry.timer = null;
    }
    // Every step, as omicron's sim_poke calls transition_finish whatever is desired: a rebooting
    // instance goes on to starting with nothing desired (SimInstance decides what a step does).
    object.executeDesiredTransition();
    this.options.log.info({ kind: this.options.kind, id, state: object.current }, 'simulated transition');
    const reported = this.options.notify(id, object.current);
    if (object.desired === null && object.readyToDestroy()) {
      this.objects.delete(id);
      return reported;
    }
    this.scheduleStep(id, entry);
    return reported;
  }

  private scheduleStep(id: string, entry: Entry<O>): void {
    if (this.options.mode !== 'auto' || entry.object.desired === null || entry.timer) return;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      // The object may have been removed by a poke meanwhile.
      if (this.objects.get(id) === entry) void this.step(id, entry);
    }, this.options.autoDelayMs);
  }

  /** Stop all timers (shutdown). */
  close(): void {
    for (const entry of this.objects.values()) {
      if (entry.timer) clearTimeout(entry.timer);
      entry.timer = null;
    }
  }
}
