// A simulated Propolis server: the HTTP API the sled agent uses (reference §14), over a VM that
// only moves through Propolis's states. It listens on 127.0.0.1 (port 0 unless told), speaks
// dropshot's error envelope, and its state-monitor is a real long poll: a waiter is released by
// the state change itself, never by a timer that looks. The VM's state can be exported and
// imported, so a simulated host can persist it and bring the same VM back on a new server.
//
// The VM (each automatic step takes its configured latency, and bumps gen by one, as Propolis's
// watch does):
//   ensure                      -> {gen 0, Creating}
//   Run          Creating       -> Starting -> Running
//   Stop         Creating, Starting, Running, Rebooting, Migrating
//                               -> Stopping -> Stopped -> Destroyed
//   Reboot       Running        -> Rebooting -> Starting -> Running
//   MigrateStart Running        -> Migrating -> Running
// A request that is already under way (Run while Starting or Running, Stop while Stopping, ...)
// is accepted and changes nothing; one that makes no sense in the state (Run after Stop, Reboot
// while Creating) is a 500, as Propolis's set_target_state refuses it.
//
// Every server in a process shares one fastify app (`router()`): each server is a bare node:http
// server on its own port that tags a request with itself and hands it to the app. An app per
// server compiled its routes, schemas and serializers each time: ~15 ms of CPU and ~0.5 MB per
// server, which at 1,000 servers was nearly all of the Propolis farm's 15 s of CPU
// (`npm run bench:scale`) and a good part of the test suite's simulated Propolis starts.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import pino, { type Logger } from 'pino';
import { Type } from 'typebox';
import { formatSocketAddr, type SocketAddr } from '../common/address.js';
import { ApiError } from '../common/errors.js';
import type { PropolisInstanceState } from '../common/instance.js';
import { ApiError as ApiErrorSchema, NoContent, Nullable, StringEnum } from '../params.js';
import type { InstanceEnsureRequest, InstanceEnsureResponse, PropolisStateRequested } from '../propolis-client.js';
import { createServer, type App } from '../server.js';

/** What a simulated host persists to bring the same VM back. */
export interface SimPropolisSnapshot {
  /** The ensure request the instance was created with; null before any. */
  request: InstanceEnsureRequest | null;
  state: PropolisInstanceState;
  gen: number;
}

export interface SimPropolisLatencies {
  /** Starting -> Running (the guest boots), ms. */
  vmBoot: number;
  /** Every other automatic step (Stopping -> Stopped, Rebooting -> Starting, ...), ms. */
  vmStep: number;
}

export interface SimPropolisOptions {
  /**
   * Answer one request before start() resolves, if no server in this process has yet: the shared
   * app's first-request set-up (lazy compilation, a Node cost; a sled's Propolis is a Rust
   * process) is then not in whatever runs next. Later servers share that app and need none.
   */
  warm?: boolean;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  logger?: Logger;
  /** Default 1 ms per step. */
  latencies?: Partial<SimPropolisLatencies>;
  /** Turns a configured latency into the one used (jitter); identity by default. */
  jitter?: (ms: number) => number;
  /** A VM to continue (e.g. from a persisted snapshot): a VM mid-transition completes it. */
  initial?: SimPropolisSnapshot;
  /** Called after every change of the VM (ensure, each transition) with the new snapshot. */
  onChange?: (snapshot: SimPropolisSnapshot) => void;
}

export const PROPOLIS_STATE_REQUESTS: readonly PropolisStateRequested[] = ['Run', 'Stop', 'Reboot', 'MigrateStart'];

/** The automatic next state of a state, if it has one. */
const NEXT: Partial<Record<PropolisInstanceState, PropolisInstanceState>> = {
  Starting: 'Running',
  Rebooting: 'Starting',
  Migrating: 'Running',
  Stopping: 'Stopped',
  Stopped: 'Destroyed',
};

const internal = (message: string) => new ApiError(500, 'Internal', message);

const errors = { '4xx': ApiErrorSchema, '5xx': ApiErrorSchema };

const InstanceProperties = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  description: Type.String(),
  image_id: Type.String({ format: 'uuid' }),
  bootrom_id: Type.String({ format: 'uuid' }),
  memory: Type.Integer({ format: 'uint64', minimum: 0 }),
  vcpus: Type.Integer({ format: 'uint8', minimum: 0 }),
});

const InstanceEnsureBody = Type.Object({
  properties: InstanceProperties,
  nics: Type.Optional(Type.Array(Type.Object({ name: Type.String(), slot: Type.Integer({ format: 'uint8', minimum: 0 }) }))),
  disks: Type.Optional(Type.Array(Type.Object({ name: Type.String(), slot: Type.Integer({ format: 'uint8', minimum: 0 }) }))),
  migrate: Type.Optional(Nullable(Type.Object({
    migration_id: Type.String({ format: 'uuid' }),
    src_addr: Type.String(),
    src_uuid: Type.String({ format: 'uuid' }),
  }))),
  cloud_init_bytes: Type.Optional(Nullable(Type.String())),
});

const PropolisState = StringEnum([
  'Creating', 'Starting', 'Running', 'Stopping', 'Stopped', 'Rebooting', 'Migrating', 'Repairing', 'Failed', 'Destroyed',
] as const satisfies readonly PropolisInstanceState[]);

const InstanceEnsureResponseSchema = Type.Object({
  migrate: Nullable(Type.Object({ migration_id: Type.String({ format: 'uuid' }) })),
});

const InstanceGetResponse = Type.Object({
  instance: Type.Object({
    properties: InstanceProperties,
    state: PropolisState,
    disks: Type.Array(Type.Unknown()),
    nics: Type.Array(Type.Unknown()),
  }),
});

const InstanceStateMonitorResponse = Type.Object({ gen: Type.Integer({ format: 'uint64', minimum: 0 }), state: PropolisState });

/** The server a request came to, set by that server before the shared app routes it. */
const SERVED_BY = Symbol('sim-propolis');
type ServedRequest = IncomingMessage & { [SERVED_BY]?: SimPropolis };

/** fastify's own defaults for its server: no request timeout (a state-monitor long poll waits as long as the VM does). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

function servedBy(request: { raw: IncomingMessage }): SimPropolis {
  const server = (request.raw as ServedRequest)[SERVED_BY];
  if (server === undefined) throw internal('request reached the simulated Propolis router without its server');
  return server;
}

interface Waiter {
  gen: number;
  resolve: (value: { gen: number; state: PropolisInstanceState }) => void;
}

export class SimPropolis {
  /** Its own HTTP server; the requests go to the shared app (router()). */
  private readonly http: Server;
  /** Request log lines go here (the shared app's child logger factory reads it). */
  readonly logger: Logger;
  private readonly latencies: SimPropolisLatencies;
  private readonly jitter: (ms: number) => number;
  private readonly onChange: ((snapshot: SimPropolisSnapshot) => void) | undefined;
  private request: InstanceEnsureRequest | null;
  private vmState: PropolisInstanceState;
  private vmGen: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly waiters = new Set<Waiter>();
  private readonly ensureWaiters: Array<(req: InstanceEnsureRequest) => void> = [];
  private listening: SocketAddr | null = null;
  private stopped = false;

  private constructor(options: SimPropolisOptions) {
    this.latencies = { vmBoot: 1, vmStep: 1, ...options.latencies };
    this.jitter = options.jitter ?? ((ms) => ms);
    this.onChange = options.onChange;
    this.request = options.initial?.request ?? null;
    this.vmState = options.initial?.state ?? 'Creating';
    this.vmGen = options.initial?.gen ?? 0;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.http = createHttpServer({ requestTimeout: 0 });
    this.http.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  }

  /** Starts a server (and continues an imported VM's transition). */
  static async start(options: SimPropolisOptions = {}): Promise<SimPropolis> {
    const app = await SimPropolis.router();
    const server = new SimPropolis(options);
    server.http.on('request', (req: ServedRequest, res) => {
      req[SERVED_BY] = server;
      app.routing(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, () => {
        server.http.off('error', reject);
        resolve();
      });
    });
    const address = server.http.address();
    if (address === null || typeof address === 'string') throw new Error('the simulated Propolis has no TCP address');
    server.listening = { host: address.address, port: address.port };
    if (server.request !== null) server.scheduleNext();
    if (options.warm && !SimPropolis.#warmed) {
      SimPropolis.#warmed = true;
      // A GET /instance before any ensure: an expected 500, logged as a failed request.
      await fetch(`http://${formatSocketAddr(server.listening)}/instance`).then((res) => res.arrayBuffer(), () => {});
    }
    return server;
  }

  /** Where it listens. */
  get address(): SocketAddr {
    if (this.listening === null) throw new Error('the simulated Propolis is not listening');
    return this.listening;
  }

  get state(): PropolisInstanceState {
    return this.vmState;
  }

  get gen(): number {
    return this.vmGen;
  }

  /** Whether an instance was ensured. */
  get hasInstance(): boolean {
    return this.request !== null;
  }

  /** Long polls waiting for a change (for tests: that a disconnect cleans up). */
  get waiterCount(): number {
    return this.waiters.size;
  }

  /** Whether close() or crash() has been called. */
  get closed(): boolean {
    return this.stopped;
  }

  snapshot(): SimPropolisSnapshot {
    // Not copied: the request is built by ensure() and never changed after, and this runs on
    // every state change (a copy per change was a visible share of the sim's CPU at N = 100).
    return { request: this.request, state: this.vmState, gen: this.vmGen };
  }

  /** Test hook: the ensure request, once one has come (at once if it has). */
  ensured(): Promise<InstanceEnsureRequest> {
    if (this.request !== null) return Promise.resolve(this.request);
    return new Promise((resolve) => this.ensureWaiters.push(resolve));
  }

  /**
   * Test hook: puts the VM in `state` at once (gen + 1), as Propolis itself would on a fault
   * ("Failed"), and continues from there as from any state.
   */
  forceState(state: PropolisInstanceState): void {
    if (this.request === null) throw new Error('the simulated Propolis has no instance');
    this.cancelTimer();
    this.transition(state);
  }

  /**
   * Test hook: the server stops answering at once (listener and connections closed, long polls
   * cut off), as if the process died. The VM's state stays readable with snapshot().
   */
  crash(): Promise<void> {
    return this.shutdown();
  }

  /** Stops the server and the VM's timer; idempotent. */
  close(): Promise<void> {
    return this.shutdown();
  }

  private closing: Promise<void> | null = null;

  private shutdown(): Promise<void> {
    this.closing ??= (async () => {
      this.stopped = true;
      this.cancelTimer();
      // Nothing is answered from now on: connections that arrive are cut, and so are the ones
      // open now (long polls never finish by themselves). Their waiters go with their 'close'.
      this.http.on('connection', (socket: Socket) => socket.destroy());
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeAllConnections();
      await closed;
      for (const w of this.waiters) w.resolve({ gen: this.vmGen, state: this.vmState });
      this.waiters.clear();
    })();
    return this.closing;
  }

  // ---- the VM ----

  private ensure(body: InstanceEnsureRequest): InstanceEnsureResponse {
    const migrate = body.migrate ?? null;
    const req: InstanceEnsureRequest = {
      properties: body.properties,
      nics: body.nics ?? [],
      disks: body.disks ?? [],
      migrate,
      cloud_init_bytes: body.cloud_init_bytes ?? null,
    };
    if (this.request !== null) {
      if (!isDeepStrictEqual(this.request.properties, req.properties)) throw internal('Cannot update running server');
    } else {
      this.request = req;
      this.vmState = 'Creating';
      this.vmGen = 0;
      this.changed();
      for (const resolve of this.ensureWaiters.splice(0)) resolve(req);
    }
    return { migrate: migrate === null ? null : { migration_id: migrate.migration_id } };
  }

  private requestState(requested: PropolisStateRequested): void {
    const s = this.vmState;
    const refuse = (): never => {
      throw internal(`cannot ${requested} an instance that is ${s}`);
    };
    switch (requested) {
      case 'Run':
        if (s === 'Creating') this.start('Starting');
        else if (s === 'Starting' || s === 'Running' || s === 'Rebooting' || s === 'Migrating') return;
        else refuse();
        return;
      case 'Stop':
        if (s === 'Creating' || s === 'Starting' || s === 'Running' || s === 'Rebooting' || s === 'Migrating') this.start('Stopping');
        else if (s === 'Stopping' || s === 'Stopped' || s === 'Destroyed') return;
        else refuse();
        return;
      case 'Reboot':
        if (s === 'Running') this.start('Rebooting');
        else if (s === 'Rebooting') return;
        else refuse();
        return;
      case 'MigrateStart':
        if (s === 'Running') this.start('Migrating');
        else if (s === 'Migrating') return;
        else refuse();
        return;
    }
  }

  private start(state: PropolisInstanceState): void {
    this.cancelTimer();
    this.transition(state);
  }

  private transition(state: PropolisInstanceState): void {
    this.vmState = state;
    this.vmGen += 1;
    this.changed();
    this.scheduleNext();
  }

  private scheduleNext(): void {
    const next = NEXT[this.vmState];
    if (next === undefined || this.stopped) return;
    const ms = Math.max(0, this.jitter(next === 'Running' && this.vmState === 'Starting' ? this.latencies.vmBoot : this.latencies.vmStep));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.transition(next);
    }, ms);
  }

  private cancelTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private changed(): void {
    for (const w of this.waiters) {
      if (w.gen <= this.vmGen) {
        this.waiters.delete(w);
        w.resolve({ gen: this.vmGen, state: this.vmState });
      }
    }
    this.onChange?.(this.snapshot());
  }

  private requireInstance(): InstanceEnsureRequest {
    if (this.request === null) throw internal('Server not initialized (no instance)');
    return this.request;
  }

  /** The state-monitor long poll: the state once its gen reaches `gen`; `res` closing forgets it. */
  private monitor(gen: number, res: ServerResponse): Promise<{ gen: number; state: PropolisInstanceState }> | { gen: number; state: PropolisInstanceState } {
    this.requireInstance();
    if (gen <= this.vmGen) return { gen: this.vmGen, state: this.vmState };
    return new Promise((resolve) => {
      const waiter: Waiter = { gen, resolve };
      this.waiters.add(waiter);
      // The client went away (aborted, or its connection was cut): forget the waiter.
      res.once('close', () => {
        if (this.waiters.delete(waiter)) resolve({ gen: this.vmGen, state: this.vmState });
      });
    });
  }

  // ---- HTTP ----

  static #shared: Promise<App> | null = null;
  /** A warm start has answered its request in this process (SimPropolisOptions.warm). */
  static #warmed = false;

  /** The one app that routes every simulated Propolis server's requests in this process. */
  private static router(): Promise<App> {
    SimPropolis.#shared ??= (async () => {
      const app = createServer({ logger: pino({ level: 'silent' }) });
      // Request log lines carry the serving server's own logger, with its level and bindings
      // (zone, ...); fastify's options would set the shared app's level, silent, on each line.
      // Set before the routes, which keep the factory they were declared with.
      app.setChildLoggerFactory((logger, bindings, _options, raw) =>
        ((raw as ServedRequest)[SERVED_BY]?.logger ?? logger).child(bindings));
      SimPropolis.routes(app);
      await app.ready();
      return app;
    })();
    SimPropolis.#shared.catch(() => {
      SimPropolis.#shared = null;
    });
    return SimPropolis.#shared;
  }

  /** The Propolis API's routes, on the app every server in the process shares. */
  private static routes(app: App): App {
    // state-monitor is a GET with a JSON body, which fastify refuses unless GET is declared to have one.
    app.addHttpMethod('GET', { hasBody: true, overrideExisting: true });

    app.put('/instance', {
      schema: { operationId: 'instance_ensure', body: InstanceEnsureBody, response: { 201: InstanceEnsureResponseSchema, ...errors } },
    }, async (request, reply) => {
      const res = servedBy(request).ensure(request.body as InstanceEnsureRequest);
      return reply.status(201).send(res);
    });

    app.get('/instance', {
      schema: { operationId: 'instance_get', response: { 200: InstanceGetResponse, ...errors } },
    }, async (request) => {
      const vm = servedBy(request);
      const req = vm.requireInstance();
      return { instance: { properties: req.properties, state: vm.state, disks: [], nics: [] } };
    });

    app.get('/instance/state-monitor', {
      exposeHeadRoute: false,
      schema: {
        operationId: 'instance_state_monitor',
        body: Type.Object({ gen: Type.Integer({ format: 'uint64', minimum: 0 }) }),
        response: { 200: InstanceStateMonitorResponse, ...errors },
      },
    }, async (request, reply) => {
      const { gen } = request.body as { gen: number };
      return servedBy(request).monitor(gen, reply.raw);
    });

    app.put('/instance/state', {
      schema: {
        operationId: 'instance_state_put',
        body: StringEnum(PROPOLIS_STATE_REQUESTS),
        response: { 204: NoContent('the state change was requested'), ...errors },
      },
    }, async (request, reply) => {
      const vm = servedBy(request);
      vm.requireInstance();
      vm.requestState(request.body as PropolisStateRequested);
      return reply.status(204).send();
    });
    return app;
  }
}
