// Client of the Propolis HTTP API the sled agent uses (reference §14): ensure the instance,
// read it, long-poll its state, ask for a state change. One request per call and no policy:
// the instance monitor decides what to retry, and PropolisError.code tells it which failures are
// transient (UNREACHABLE: no answer at all) and which are answers (HTTP: a non-2xx status).
import { Client, errors, type Dispatcher } from 'undici';
import { AnswerTooLargeError, httpCall, MAX_ANSWER_BYTES, type HttpAnswer } from './common/http-call.js';
import type { Static } from 'typebox';
import { formatSocketAddr, type SocketAddr } from './common/address.js';
import type { PropolisInstanceState } from './common/instance.js';
import type { DiskRequest as DiskRequestSchema } from './params.js';

export type DiskRequest = Static<typeof DiskRequestSchema>;

/** Propolis's InstanceProperties: `memory` in MiB, `vcpus` a u8. */
export interface InstanceProperties {
  id: string;
  name: string;
  description: string;
  image_id: string;
  bootrom_id: string;
  memory: number;
  vcpus: number;
}

export interface NicRequest {
  name: string;
  slot: number;
}

export interface InstanceMigrateInitiateRequest {
  migration_id: string;
  src_addr: string;
  src_uuid: string;
}

export interface InstanceEnsureRequest {
  properties: InstanceProperties;
  nics: NicRequest[];
  disks: DiskRequest[];
  migrate: InstanceMigrateInitiateRequest | null;
  cloud_init_bytes: string | null;
}

export interface InstanceEnsureResponse {
  migrate: { migration_id: string } | null;
}

export interface PropolisInstance {
  properties: InstanceProperties;
  state: PropolisInstanceState;
  disks: unknown[];
  nics: unknown[];
}

export interface InstanceGetResponse {
  instance: PropolisInstance;
}

export interface InstanceStateMonitorResponse {
  gen: number;
  state: PropolisInstanceState;
}

/** What PUT /instance/state accepts (a bare JSON string). */
export type PropolisStateRequested = 'Run' | 'Stop' | 'Reboot' | 'MigrateStart';

/**
 * Why a Propolis call failed:
 * - UNREACHABLE: no HTTP answer (connection refused or reset, timeout, the server went away
 *   mid-answer). Transient: the same call may succeed later.
 * - HTTP: Propolis answered with a non-2xx status (`status`); the message carries its own.
 * - PROTOCOL: a 2xx answer whose body is not what the API says, or any answer too long to be one.
 * - ABORTED: the caller's AbortSignal fired.
 */
export type PropolisErrorCode = 'UNREACHABLE' | 'HTTP' | 'PROTOCOL' | 'ABORTED';

export class PropolisError extends Error {
  constructor(
    readonly code: PropolisErrorCode,
    message: string,
    /** The HTTP status, or null when no answer arrived. */
    readonly status: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PropolisError';
  }

  /** Worth retrying: nothing answered. */
  get transient(): boolean {
    return this.code === 'UNREACHABLE';
  }
}

export interface PropolisClientOptions {
  /** Headers and body timeout of every call but the state monitor, ms (default 30 s). */
  timeoutMs?: number;
  /** Connect timeout, ms (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * Headers/body timeout of the state-monitor long poll, ms; 0 (the default) for none: it
   * blocks until the state changes, which may take any time. Cancel it with its AbortSignal.
   */
  monitorTimeoutMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** At most this many connections to one Propolis (the undici Pool this replaced had 4). */
const MAX_CONNECTIONS = 4;

export class PropolisClient {
  readonly origin: string;
  /**
   * undici Clients, one connection each (pipelining 1), made when no idle one is left: a call
   * takes an idle connection, else a new one while there are fewer than MAX_CONNECTIONS, else
   * queues on the least busy. So ensure, Run and then the state monitor's long poll, one after
   * another, share one connection, and a call during the long poll gets a second. Not an undici
   * Pool: each Pool allocates a 2,048-slot queue (16 KB) up front and an agent has a client per
   * instance (bench:scale: 16 MB of the agent's heap at 1,000 instances).
   */
  private readonly clients: Client[] = [];
  /** Clients with a state-monitor long poll in flight: nothing queues behind one of those. */
  private readonly polling = new Set<Client>();
  private readonly connectTimeoutMs: number;
  private state: 'open' | 'closed' = 'open';
  private readonly timeoutMs: number;
  private readonly monitorTimeoutMs: number;

  /** `address`: "host:port", "[v6]:port" or a SocketAddr. */
  constructor(address: string | SocketAddr, options: PropolisClientOptions = {}) {
    this.origin = `http://${typeof address === 'string' ? address : formatSocketAddr(address)}`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.monitorTimeoutMs = options.monitorTimeoutMs ?? 0;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /**
   * An idle connection, a new one while there are fewer than MAX_CONNECTIONS, else the least busy
   * one without a long poll (a new one if every one has).
   */
  private client(): Client {
    let best: Client | undefined;
    let load = Infinity;
    for (const c of this.clients) {
      const { running, pending } = c.stats;
      if (running + pending === 0) return c;
      if (!this.polling.has(c) && running + pending < load) {
        best = c;
        load = running + pending;
      }
    }
    if (this.clients.length < MAX_CONNECTIONS || best === undefined) {
      const c = new Client(this.origin, { pipelining: 1, connectTimeout: this.connectTimeoutMs });
      this.clients.push(c);
      return c;
    }
    return best;
  }

  /** PUT /instance: creates the instance, or confirms it (same properties). Expects 201. */
  async ensure(req: InstanceEnsureRequest, options: CallOptions = {}): Promise<InstanceEnsureResponse> {
    const body = await this.call('PUT', '/instance', req, [201], options.signal, this.timeoutMs);
    const res = body as InstanceEnsureResponse | null;
    if (res === null || typeof res !== 'object' || !('migrate' in res)) {
      throw this.protocol('PUT', '/instance', 'expected {migrate}', body);
    }
    return res;
  }

  /** GET /instance: the instance's properties and state (a 500 when Propolis has none yet). */
  async get(options: CallOptions = {}): Promise<InstanceGetResponse> {
    const body = await this.call('GET', '/instance', undefined, [200], options.signal, this.timeoutMs);
    const res = body as InstanceGetResponse | null;
    if (res === null || typeof res !== 'object' || typeof res.instance?.state !== 'string') {
      throw this.protocol('GET', '/instance', 'expected {instance: {properties, state, ...}}', body);
    }
    return res;
  }

  /**
   * GET /instance/state-monitor with body {gen}: answers at once when Propolis's generation is
   * at least `gen`, else when the state next changes. No timeout unless monitorTimeoutMs.
   */
  async stateMonitor(gen: number, signal?: AbortSignal): Promise<InstanceStateMonitorResponse> {
    const body = await this.call('GET', '/instance/state-monitor', { gen }, [200], signal, this.monitorTimeoutMs, true);
    const res = body as InstanceStateMonitorResponse | null;
    if (res === null || typeof res !== 'object' || typeof res.gen !== 'number' || typeof res.state !== 'string') {
      throw this.protocol('GET', '/instance/state-monitor', 'expected {gen, state}', body);
    }
    return res;
  }

  /** PUT /instance/state with a bare JSON string. Expects 204. */
  async putState(state: PropolisStateRequested, options: CallOptions = {}): Promise<void> {
    await this.call('PUT', '/instance/state', state, [204], options.signal, this.timeoutMs);
  }

  /** Closes the connections; in-flight calls finish first. Calls after it fail, as on a closed undici Pool. */
  async close(): Promise<void> {
    this.state = 'closed';
    await Promise.all(this.clients.map((c) => c.close()));
  }

  /** Closes the connections at once; in-flight calls fail. */
  async destroy(): Promise<void> {
    this.state = 'closed';
    await Promise.all(this.clients.map((c) => c.destroy()));
  }

  private async call(
    method: Dispatcher.HttpMethod,
    path: string,
    body: unknown,
    expected: readonly number[],
    signal: AbortSignal | undefined,
    timeoutMs: number,
    longPoll = false,
  ): Promise<unknown> {
    const what = `${method} ${path}`;
    if (signal?.aborted) throw this.aborted(what, signal.reason);
    let res: HttpAnswer;
    let client: Client | undefined;
    try {
      if (this.state === 'closed') throw new errors.ClientClosedError();
      client = this.client();
      if (longPoll) this.polling.add(client);
      // undici closes the connection after a GET with a body (for servers that would not read
      // it) unless told otherwise; Propolis's state monitor is such a GET and reads its body,
      // so every long poll would cost a new connection (at 1,000 instances, ~2,000 connects).
      res = await httpCall(client, { method, path, body, timeoutMs, signal, reset: false });
    } catch (err) {
      throw this.transport(what, err, signal);
    } finally {
      if (longPoll && client !== undefined) this.polling.delete(client);
    }
    const { text } = res;
    if (!expected.includes(res.status)) {
      throw new PropolisError('HTTP', `Propolis at ${this.origin} answered ${what} with ${res.status}: ${errorMessage(text)}`, res.status);
    }
    if (text.length === 0) return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new PropolisError('PROTOCOL', `Propolis at ${this.origin} answered ${what} with a body that is not JSON: ${truncate(text)}`, res.status, { cause: err });
    }
  }

  private transport(what: string, err: unknown, signal: AbortSignal | undefined): PropolisError {
    if (signal?.aborted) return this.aborted(what, signal.reason);
    // An answer, not an absence of one: asking again would get the same.
    if (err instanceof AnswerTooLargeError) {
      return new PropolisError('PROTOCOL', `Propolis at ${this.origin} answered ${what} with more than ${MAX_ANSWER_BYTES} bytes`, null, { cause: err });
    }
    const code = (err as { code?: unknown } | null)?.code;
    const detail = err instanceof Error ? err.message : String(err);
    return new PropolisError(
      'UNREACHABLE',
      `cannot reach Propolis at ${this.origin} for ${what}: ${typeof code === 'string' && !detail.includes(code) ? `${code}: ` : ''}${detail}`,
      null,
      { cause: err },
    );
  }

  private aborted(what: string, reason: unknown): PropolisError {
    return new PropolisError('ABORTED', `${what} to Propolis at ${this.origin} was aborted`, null, { cause: reason });
  }

  private protocol(method: string, path: string, expected: string, body: unknown): PropolisError {
    return new PropolisError('PROTOCOL', `Propolis at ${this.origin} answered ${method} ${path} with ${truncate(JSON.stringify(body) ?? 'nothing')}: ${expected}`, null);
  }
}

/** The dropshot envelope's message if the body is one, else the body itself. */
function errorMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (parsed !== null && typeof parsed === 'object' && typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON: the text as it came
  }
  return truncate(text) || '(no body)';
}

function truncate(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
