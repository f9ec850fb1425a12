// Client of the Nexus internal API (test/contracts/omicron/nexus-internal.json): the calls a
// sled agent makes, each one HTTP request and no policy. Retrying and ordering belong to
// common/nexus-notifier.ts; this file only says what a response means.
import { Pool, type Dispatcher } from 'undici';
import { httpCall, type HttpAnswer } from './common/http-call.js';
import type {
  DatasetPutRequest, DiskRuntimeState, InstanceRuntimeState, SledAgentStartupInfo, ZpoolPutRequest,
} from './params.js';

/** A Nexus answer that was not 2xx, or a request that never got one. */
export class NexusError extends Error {
  constructor(
    message: string,
    /** HTTP status, or null when no response arrived (connection refused, timeout, ...). */
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'NexusError';
  }

  /** 4xx: Nexus understood and refused; sending the same thing again will not help. */
  get permanent(): boolean {
    return this.status !== null && this.status >= 400 && this.status < 500;
  }
}

/**
 * A send whose refusals are retried like any other failure. The original retries its
 * registration whatever Nexus answers (omicron's server.rs and sim/server.rs map every error to
 * `BackoffError::transient`): a Nexus not ready for the sled may refuse it, and a sled that stops
 * asking is never registered. The refusal goes on as the cause, so the retry's log names it.
 */
export function retryingRefusals(send: () => Promise<void>): () => Promise<void> {
  return () => send().catch((err: unknown) => {
    throw err instanceof NexusError && err.permanent ? new Error(err.message, { cause: err }) : err;
  });
}

export interface NexusClientOptions {
  /** Per-request timeout for headers and body, ms. */
  timeoutMs?: number;
}

export class NexusClient {
  readonly origin: string;
  private readonly pool: Pool;
  private readonly timeoutMs: number;

  /** `address` is "host:port" or "[v6]:port". */
  constructor(address: string, options: NexusClientOptions = {}) {
    this.origin = `http://${address}`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.pool = new Pool(this.origin, { connections: 16, pipelining: 1 });
  }

  private async send(method: Dispatcher.HttpMethod, path: string, body: unknown): Promise<void> {
    let res: HttpAnswer;
    try {
      res = await httpCall(this.pool, { method, path, body, timeoutMs: this.timeoutMs });
    } catch (err) {
      throw this.unreachable(method, path, err);
    }
    if (res.status < 200 || res.status >= 300) {
      throw new NexusError(`Nexus answered ${method} ${path} with ${res.status}: ${truncate(res.text)}`, res.status);
    }
  }

  private unreachable(method: string, path: string, err: unknown): NexusError {
    const cause = err instanceof Error ? err.message : String(err);
    return new NexusError(`cannot reach Nexus at ${this.origin} for ${method} ${path}: ${cause}`, null);
  }

  sledAgentPost(sledId: string, info: SledAgentStartupInfo): Promise<void> {
    return this.send('POST', `/sled_agents/${sledId}`, info);
  }

  instancePut(instanceId: string, state: InstanceRuntimeState): Promise<void> {
    return this.send('PUT', `/instances/${instanceId}`, state);
  }

  diskPut(diskId: string, state: DiskRuntimeState): Promise<void> {
    return this.send('PUT', `/disks/${diskId}`, state);
  }

  zpoolPut(sledId: string, zpoolId: string, body: ZpoolPutRequest): Promise<void> {
    return this.send('PUT', `/sled_agents/${sledId}/zpools/${zpoolId}`, body);
  }

  datasetPut(zpoolId: string, datasetId: string, body: DatasetPutRequest): Promise<void> {
    return this.send('PUT', `/zpools/${zpoolId}/dataset/${datasetId}`, body);
  }

  /**
   * Starts downloading an update artifact. Resolves once Nexus answered 2xx, with the body as a
   * stream for the caller to write; any other status is a NexusError (the original wrote a 404
   * page to disk as if it were the artifact).
   */
  async artifactDownload(kind: string, name: string, version: number) {
    const path = `/artifacts/${encodeURIComponent(kind)}/${encodeURIComponent(name)}/${version}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({ method: 'GET', path, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    } catch (err) {
      throw this.unreachable('GET', path, err);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw new NexusError(`Nexus answered GET ${path} with ${res.statusCode}: ${truncate(await opening(res.body))}`, res.statusCode);
    }
    return res.body;
  }

  /**
   * Ends the client, cutting off a request still in flight (its caller gets an error): closed
   * once the notifier has drained, when nothing on the wire will be waited for. A graceful close
   * would wait out a Nexus that does not answer, up to the request timeout.
   */
  close(): Promise<void> {
    return this.pool.destroy();
  }
}

/**
 * The first few hundred characters of an error answer, for its message; the rest is not read and
 * the connection is dropped, so an error page that runs on costs nothing (the reports' answers
 * are capped in http-call.ts, and this is the one answer read through a stream).
 */
async function opening(body: Dispatcher.ResponseData['body']): Promise<string> {
  let text = '';
  body.setEncoding('utf8');
  try {
    for await (const chunk of body) {
      text += chunk as string;
      if (text.length > TRUNCATE_AT) break;
    }
  } catch {
    // cut short: what came is enough for a message
  }
  return text;
}

const TRUNCATE_AT = 200;

function truncate(text: string, max = TRUNCATE_AT): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
