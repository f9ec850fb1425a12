// GET /health: is the agent serving, and does its host backend answer? A supervisor may ask
// every second, so the host is asked at most about once a second (the answer is cached), with a
// short deadline, and a host call that never returns is not asked again on top of itself. What it
// asks is one zone's state, a zone no one makes (HEALTH_PROBE_ZONE): on illumos that goes through
// the same libzonecfg thread as every zone call and reads the zone index, as a list would, but not
// each zone's configuration (a list of 1,000 zones parses 1,000 XML files, every second, on the
// thread the starts wait for).
import type { Logger } from 'pino';
import { healthGet } from './endpoints.js';
import type { Host } from './host/index.js';
import type { Health } from './operator-params.js';
import type { App } from './server.js';

/** The zone whose state the check asks: a valid name no one gives a zone (the answer is "none"). */
export const HEALTH_PROBE_ZONE = 'sled-agent-health-probe';

export type HealthResult = { ok: true } | { ok: false; reason: string };

export interface HealthOptions {
  /** How long the host has to answer (default 1000 ms). */
  deadlineMs?: number;
  /** How long an answer is reused (default 1000 ms; 0: ask every time). */
  cacheMs?: number;
}

export class HostHealth {
  readonly #host: Host;
  readonly #log: Logger;
  readonly #deadlineMs: number;
  readonly #cacheMs: number;
  #cached: { at: number; result: HealthResult } | null = null;
  #checking: Promise<HealthResult> | null = null;
  /** When the question still unanswered was asked (performance.now() ms). */
  #stuckSince: number | null = null;
  #lastOk = true;

  constructor(host: Host, log: Logger, options: HealthOptions = {}) {
    this.#host = host;
    this.#log = log;
    this.#deadlineMs = options.deadlineMs ?? 1_000;
    this.#cacheMs = options.cacheMs ?? 1_000;
  }

  check(): Promise<HealthResult> {
    const cached = this.#cached;
    if (cached !== null && performance.now() - cached.at < this.#cacheMs) return Promise.resolve(cached.result);
    this.#checking ??= this.#probe().then((result) => {
      this.#cached = { at: performance.now(), result };
      this.#checking = null;
      // Once per change, not once per call: a supervisor polling a sick agent would flood the log.
      if (result.ok !== this.#lastOk) {
        if (result.ok) this.#log.info('health: the host backend answers again');
        else this.#log.warn({ reason: result.reason }, `health: unhealthy: ${result.reason}`);
        this.#lastOk = result.ok;
      }
      return result;
    });
    return this.#checking;
  }

  async #probe(): Promise<HealthResult> {
    const backend = this.#host.kind;
    if (this.#stuckSince !== null) {
      const ms = Math.round(performance.now() - this.#stuckSince);
      return { ok: false, reason: `the ${backend} host backend has not answered a zone state query for ${ms} ms` };
    }
    this.#stuckSince = performance.now();
    const asked = this.#host.zones.state(HEALTH_PROBE_ZONE).then(
      (): HealthResult => ({ ok: true }),
      (err: unknown): HealthResult => ({ ok: false, reason: `the ${backend} host backend failed a zone state query: ${(err as Error)?.message ?? String(err)}` }),
    ).finally(() => {
      this.#stuckSince = null;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<HealthResult>((resolve) => {
      timer = setTimeout(() => resolve({
        ok: false, reason: `the ${backend} host backend did not answer a zone state query within ${this.#deadlineMs} ms`,
      }), this.#deadlineMs);
    });
    try {
      return await Promise.race([asked, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export interface HealthSource {
  check(): Promise<HealthResult>;
  body(): Health;
}

/**
 * GET /health on either agent. A 503 is written here rather than thrown, so an unhealthy agent
 * polled every second logs one line per request at info, not an error with a stack each time.
 */
export function healthRoute(app: App, sourceOf: () => HealthSource): void {
  app.get('/health', { schema: healthGet }, async (request, reply) => {
    const source = sourceOf();
    const result = await source.check();
    if (!result.ok) {
      return reply.status(503).send({ request_id: request.id, error_code: 'ServiceUnavailable', message: result.reason });
    }
    return source.body();
  });
}
