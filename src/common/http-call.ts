// One HTTP exchange with a small JSON body each way, as the Propolis and Nexus clients make them,
// through undici's dispatch() rather than its request(): request() wraps every answer in a
// Readable stream, an AsyncResource and a parsed header object that these callers never use, and
// a start makes ~7 such exchanges (measured outside the agent: ~40 µs of CPU saved per exchange
// in a fresh process; bench:scale's figures in docs/benchmarks.md).
import type { Dispatcher } from 'undici';

export interface HttpCall {
  method: Dispatcher.HttpMethod;
  path: string;
  /** Sent as JSON when not undefined. */
  body?: unknown;
  /** Headers and body timeout, ms; 0 for none. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** undici's `reset`: false keeps the connection after a GET with a body (see propolis-client.ts). */
  reset?: boolean;
  /** Default MAX_ANSWER_BYTES. */
  maxAnswerBytes?: number;
}

export interface HttpAnswer {
  status: number;
  /** The body as UTF-8 text ('' when there is none). */
  text: string;
}

const JSON_HEADERS = ['content-type', 'application/json'];

/**
 * The most an answer may carry. Propolis's and Nexus's answers here are a few KiB; one that runs
 * on (a server gone wrong) would otherwise grow the agent's heap until it dies, and every instance
 * with it. Past this the call fails as unanswered, and the connection is dropped.
 */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/** An answer longer than MAX_ANSWER_BYTES (or than the call's own limit). */
export class AnswerTooLargeError extends Error {
  readonly code = 'ANSWER_TOO_LARGE';
  constructor(limit: number) {
    super(`the answer is longer than ${limit} bytes`);
    this.name = 'AnswerTooLargeError';
  }
}

/**
 * Sends `call` on `dispatcher` and resolves with the whole answer. Rejects with undici's error
 * when no answer came, and with the signal's reason (or undici's RequestAbortedError) once the
 * signal fires; the caller tells these apart as it did with request().
 */
export function httpCall(dispatcher: Dispatcher, call: HttpCall): Promise<HttpAnswer> {
  const { signal } = call;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<HttpAnswer>((resolve, reject) => {
    const limit = call.maxAnswerBytes ?? MAX_ANSWER_BYTES;
    let status = 0;
    let size = 0;
    let chunks: Buffer[] = [];
    let abort: ((reason?: Error) => void) | null = null;
    let done = false;
    const onAbort = (): void => {
      if (abort !== null) abort(signal!.reason as Error);
      else finish(signal!.reason);
    };
    const finish = (err: unknown, answer?: HttpAnswer): void => {
      if (done) return;
      done = true;
      signal?.removeEventListener('abort', onAbort);
      if (answer === undefined) reject(err);
      else resolve(answer);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    dispatcher.dispatch({
      method: call.method,
      path: call.path,
      headers: call.body === undefined ? [] : JSON_HEADERS,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      headersTimeout: call.timeoutMs,
      bodyTimeout: call.timeoutMs,
      reset: call.reset,
    }, {
      onConnect(abortRequest) {
        // Aborted while queued: undici calls onError once the abort is taken.
        if (done) abortRequest(signal?.reason as Error);
        else abort = abortRequest;
      },
      onHeaders(statusCode) {
        status = statusCode;
        return true;
      },
      onData(chunk) {
        size += chunk.length;
        if (size > limit) {
          chunks = [];
          const err = new AnswerTooLargeError(limit);
          finish(err);
          abort?.(err);
          return false;
        }
        chunks.push(chunk);
        return true;
      },
      onComplete() {
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        chunks = [];
        finish(null, { status, text });
      },
      onError(err) {
        finish(err);
      },
    });
  });
}
