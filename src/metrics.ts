// Prometheus metrics (GET /metrics, prom-client) of one agent: what an operator graphs. Each agent
// has its own Registry, never prom-client's global one, because several agents share a process
// in the tests and in a rack of simulated sleds, and each must answer for itself only.
//
// The process's own metrics (event-loop delay, GC, heap, CPU, file descriptors) come from
// prom-client's default collectors, which start an event-loop monitor and a GC observer that
// cannot be stopped. They describe the process, not an agent, so they are collected once per
// process into a registry of their own and appended to every agent's answer, rather than once
// per agent (which would leave a monitor running for every agent a test process ever started).
// The event-loop delay percentiles are over the time since the previous scrape of any agent in
// the process (prom-client resets the monitor on each), which for a daemon is its one scraper.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NotifierObserver } from './common/nexus-notifier.js';
import { metricsGet } from './endpoints.js';
import type { Host } from './host/index.js';
import { observeHost } from './host/observe.js';
import { INSTANCE_STATES } from './params.js';
import type { App } from './server.js';
import type { Phase } from './zone.js';

let processRegistry: Registry | null = null;

function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

// Buckets in seconds, each spanning what its operation is seen to take: a request is well under
// a millisecond when nothing waits; a zone install is seconds, 81 s at worst (docs/architecture.md).
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HOST_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const PHASE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const LEDGER_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The order provisioning phases start in along the critical path (src/instance.ts,
 * src/zone.ts), then Propolis running. With parallel steps a side step may start after a later
 * one (the guest VNICs while the zone is cloned).
 */
const PHASE_ORDER: ReadonlyArray<Phase | 'running'> = [
  'pool', 'ports', 'vnic', 'configure', 'install', 'clone', 'boot', 'zone_running', 'network', 'handover', 'address', 'service',
  'propolis', 'running',
];
/** Started more than once in one provisioning: the control VNIC and the guest NICs' VNICs. */
const REPEATS: ReadonlySet<Phase | 'running'> = new Set(['vnic']);

export interface MetricsIdentity {
  sled_id: string;
  /** Which of the two agents answers. */
  agent: 'sled-agent' | 'simulated';
  version: string;
  /** The real agent's host backend; "none" for the simulated sled agent. */
  host_backend: string;
}

/** One provisioning under way: the phase it is in and since when (performance.now() ms). */
interface OpenPhase {
  /** Phases this provisioning has started, side steps included: one seen again is a restart. */
  seen: Set<Phase | 'running'>;
  phase: Phase | 'running';
  at: number;
  first: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #http: Histogram<'method' | 'route' | 'status_code'>;
  readonly #nexusUpdates: Counter<'kind' | 'outcome'>;
  readonly #nexusRetries: Counter<'kind'>;
  #hostCalls: Histogram<'op' | 'result'> | null = null;
  #phases: Histogram<'phase'> | null = null;
  #starts: Histogram | null = null;
  #ledger: Histogram<'ledger'> | null = null;
  readonly #open = new Map<string, OpenPhase>();
  /** fastify's route pattern -> the OpenAPI spelling ("/instances/{instance_id}"). */
  readonly #routes = new Map<string, string>();

  constructor(identity: MetricsIdentity) {
    // Started with the first agent rather than at its first scrape, so that scrape already has
    // the event-loop delay since start-up.
    processMetrics();
    const registers = [this.registry];
    new Gauge({
      name: 'sled_agent_info',
      help: 'Always 1; the labels say which sled, agent, version and host backend answer.',
      labelNames: ['sled_id', 'agent', 'version', 'host_backend'],
      registers,
    }).set({ ...identity }, 1);
    this.#http = new Histogram({
      name: 'sled_agent_http_request_duration_seconds',
      help: 'HTTP requests served, by route (as in the OpenAPI document; "unmatched" for no route) and status, and how long each took. _count is the number of requests.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.#nexusUpdates = new Counter({
      name: 'sled_agent_nexus_updates_total',
      help: 'Updates queued for Nexus by how each ended: delivered, refused (a 4xx, not retried), superseded by a newer state of the same object before it went out, or cancelled at shutdown. kind is the object: instance, disk, sled, zpool, dataset.',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.#nexusRetries = new Counter({
      name: 'sled_agent_nexus_update_retries_total',
      help: 'Attempts to reach Nexus that failed (no answer, or a 5xx) and will be retried after a backoff.',
      labelNames: ['kind'],
      registers,
    });
  }

  /** For the NexusNotifier: its keys are "<kind>:<id>" or "<kind>". */
  readonly notifier: NotifierObserver = {
    outcome: (key, outcome) => this.#nexusUpdates.inc({ kind: kindOfKey(key), outcome }),
    retry: (key) => this.#nexusRetries.inc({ kind: kindOfKey(key) }),
  };

  /** The Nexus notifier's queue: objects with a state Nexus has not accepted yet. */
  nexusQueue(depth: () => number): void {
    new Gauge({
      name: 'sled_agent_nexus_queue_depth',
      help: 'Objects (instances, disks, the sled, zpools, datasets) with a state not yet delivered to Nexus.',
      registers: [this.registry],
      collect() {
        this.set(depth());
      },
    });
  }

  /**
   * Instances by run state, counted when scraped; every state is always present (0 when none),
   * so a graph of one state does not vanish. Provisioning timings of instances that are no
   * longer here are dropped at the same time.
   */
  instances(list: () => Iterable<{ id: string; state: string }>): void {
    const open = this.#open;
    new Gauge({
      name: 'sled_agent_instances',
      help: 'Instances on this sled by run state.',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const counts = new Map<string, number>(INSTANCE_STATES.map((s) => [s, 0]));
        const present = new Set<string>();
        for (const { id, state } of list()) {
          counts.set(state, (counts.get(state) ?? 0) + 1);
          present.add(id);
        }
        for (const [state, count] of counts) this.set({ state }, count);
        for (const id of open.keys()) if (!present.has(id)) open.delete(id);
      },
    });
  }

  /**
   * The instance provisioning hook (SledAgentOptions.onPhase): each phase lasts until the next
   * one along the critical path starts; `running` closes the last. A phase earlier than the one
   * open is a side step running beside it (parallel steps) and is not counted. A phase this
   * provisioning has started already means it was cut short (a failure, a stop) and started
   * over, so the open one is dropped rather than counted with the time in between.
   */
  readonly phase = (instance: string, phase: Phase | 'running'): void => {
    this.#phases ??= new Histogram({
      name: 'sled_agent_instance_phase_duration_seconds',
      help: 'How long each instance provisioning phase took, from its start to the next phase\'s (propolis: to Propolis reporting Running). Phases already done (an adopted zone) are skipped, not counted.',
      labelNames: ['phase'],
      buckets: PHASE_BUCKETS,
      registers: [this.registry],
    });
    this.#starts ??= new Histogram({
      name: 'sled_agent_instance_start_duration_seconds',
      help: 'From the first provisioning phase of an instance to Propolis reporting Running.',
      buckets: PHASE_BUCKETS,
      registers: [this.registry],
    });
    const now = performance.now();
    const open = this.#open.get(instance);
    const again = open !== undefined && open.seen.has(phase) && !REPEATS.has(phase);
    const continues = open !== undefined && !again && PHASE_ORDER.indexOf(phase) > PHASE_ORDER.indexOf(open.phase);
    if (open !== undefined && !again && !continues) {
      open.seen.add(phase);
      return;
    }
    if (continues) this.#phases.observe({ phase: open.phase }, (now - open.at) / 1000);
    if (phase === 'running') {
      if (continues) this.#starts.observe((now - open.first) / 1000);
      this.#open.delete(instance);
      return;
    }
    const seen = continues ? open.seen : new Set<Phase | 'running'>();
    seen.add(phase);
    this.#open.set(instance, { seen, phase, at: now, first: continues ? open.first : now });
  };

  /** A host call ended: `op` is "zones.install", "links.createVnic", ...; `result` "ok" or the error's code. */
  hostCall(op: string, result: string, seconds: number): void {
    this.#hostCalls ??= new Histogram({
      name: 'sled_agent_host_call_duration_seconds',
      help: 'Calls into the host backend (zones, links, datasets, OPTE, event waits) by operation and result ("ok", or the error code such as ETIMEDOUT or Z_NO_ZONE).',
      labelNames: ['op', 'result'],
      buckets: HOST_BUCKETS,
      registers: [this.registry],
    });
    // Not a cached labels() child: prom-client's child validates and hashes its labels on every observe() too.
    this.#hostCalls.observe({ op, result }, seconds);
  }

  /** A ledger write finished: an append to a journal and its fdatasync, or a whole file written atomically (src/ledger.ts). */
  ledgerCommit(path: string, seconds: number): void {
    this.#ledger ??= new Histogram({
      name: 'sled_agent_ledger_commit_duration_seconds',
      help: 'Durable ledger writes (one per group commit), by ledger: instances, services, disks, ports.',
      labelNames: ['ledger'],
      buckets: LEDGER_BUCKETS,
      registers: [this.registry],
    });
    const file = path.slice(path.lastIndexOf('/') + 1);
    this.#ledger.observe({ ledger: file.endsWith('.json') ? file.slice(0, -'.json'.length) : file }, seconds);
  }

  /**
   * The warm pool of zones booted ahead of requests (docs/architecture.md#warm-pool): called once
   * with a function giving the pool's zones by state ("ready", "warming"), so
   * sled_agent_warm_pool_zones is read when scraped.
   */
  warmPool(zones: () => Record<string, number>): void {
    new Gauge({
      name: 'sled_agent_warm_pool_zones',
      help: 'Zones in the warm pool, booted ahead of requests, by state.',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        for (const [state, count] of Object.entries(zones())) this.set({ state }, count);
      },
    });
  }

  /** Counts every request the app serves, by route and status, with its latency. */
  observeHttp(app: App): void {
    // Callback style, as in src/server.ts: an async hook costs a promise per request.
    app.addHook('onResponse', (request, reply, done) => {
      const pattern = request.routeOptions.url;
      let route = pattern === undefined ? 'unmatched' : this.#routes.get(pattern);
      if (route === undefined) {
        route = (pattern as string).replace(/:([A-Za-z0-9_]+)/g, '{$1}');
        this.#routes.set(pattern as string, route);
      }
      this.#http.observe({ method: request.method, route, status_code: reply.statusCode }, reply.elapsedTime / 1000);
      done();
    });
  }

  /** The exposition text: this agent's metrics, then the process's. */
  async render(): Promise<string> {
    return (await this.registry.metrics()) + (await processMetrics().metrics());
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function kindOfKey(key: string): string {
  const colon = key.indexOf(':');
  return colon === -1 ? key : key.slice(0, colon);
}

/**
 * The Host as the agent sees it, with every asynchronous call timed into `metrics`: wrapped once,
 * where the agent is given the host, so every manager's calls are counted without any of them
 * knowing.
 */
export function instrumentHost(host: Host, metrics: Metrics): Host {
  return observeHost(host, (call) => {
    metrics.hostCall(call.op, call.error === null ? 'ok' : errorCode(call.error), Number(call.end - call.start) / 1e9);
  });
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_]{1,40}$/.test(code) ? code : 'error';
}

/** GET /metrics, the same on both agents. */
export function metricsRoute(app: App, metricsOf: () => Metrics): void {
  app.get('/metrics', { schema: metricsGet }, async (_request, reply) => {
    const metrics = metricsOf();
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
}
