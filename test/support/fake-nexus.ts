// A fake Nexus: a real HTTP server on 127.0.0.1:0 that records every request and answers with
// whatever the test says, so tests see exactly what the agent puts on the wire.
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface Recorded {
  method: string;
  url: string;
  body: any;
  raw: string;
}

export interface Answer {
  status: number;
  body?: string | Buffer;
  headers?: Record<string, string>;
}

/** An answer, or a promise of one (a slow Nexus): the request is recorded once it is answered. */
export type Responder = (req: Recorded) => Answer | Promise<Answer>;

/**
 * A responder that answers the first `times` requests `matching` with `status` and the omicron
 * error envelope (message "not yet"), and 204 to everything else: a Nexus not ready for them.
 */
export function refusingFirst(matching: (req: Recorded) => boolean, times: number, status = 400): Responder {
  let refused = 0;
  return (req) => {
    if (!matching(req) || refused >= times) return { status: 204 };
    refused += 1;
    return { status, body: JSON.stringify({ request_id: String(refused), error_code: 'InvalidRequest', message: 'not yet' }) };
  };
}

export class FakeNexus {
  readonly requests: Recorded[] = [];
  private readonly events = new EventEmitter();
  private server!: Server;
  /** Decides each answer; defaults to 204 for PUT/POST. */
  respond: Responder = () => ({ status: 204 });
  address = '';

  static async start(): Promise<FakeNexus> {
    const nexus = new FakeNexus();
    nexus.server = createServer((req, res) => {
      void readBody(req).then(async (raw) => {
        const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', raw, body: parse(raw) };
        const answer = await nexus.respond(rec);
        nexus.requests.push(rec);
        nexus.events.emit('request', rec);
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body);
      });
    });
    nexus.server.listen(0, '127.0.0.1');
    await once(nexus.server, 'listening');
    const { port } = nexus.server.address() as { port: number };
    nexus.address = `127.0.0.1:${port}`;
    return nexus;
  }

  matching(method: string, prefix: string): Recorded[] {
    return this.requests.filter((r) => r.method === method && r.url.startsWith(prefix));
  }

  /** Resolves with the first request (already received or future) for which `pred` holds. */
  waitFor(pred: (r: Recorded) => boolean, timeoutMs = 10_000, what = 'request'): Promise<Recorded> {
    const seen = this.requests.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('request', onRequest);
        reject(new Error(`fake Nexus: no ${what} within ${timeoutMs} ms; got ${this.requests.map((r) => `${r.method} ${r.url}`).join(', ')}`));
      }, timeoutMs);
      const onRequest = (r: Recorded) => {
        if (!pred(r)) return;
        clearTimeout(timer);
        this.events.off('request', onRequest);
        resolve(r);
      };
      this.events.on('request', onRequest);
    });
  }

  /** Resolves once `count` requests matched `pred`. */
  async waitForCount(pred: (r: Recorded) => boolean, count: number, timeoutMs = 10_000): Promise<Recorded[]> {
    await this.waitFor(() => this.requests.filter(pred).length >= count, timeoutMs, `${count} matching requests`);
    return this.requests.filter(pred);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function parse(raw: string): unknown {
  try {
    return raw ? JSON.parse(raw) : undefined;
  } catch {
    return raw;
  }
}
