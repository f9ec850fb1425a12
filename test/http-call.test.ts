// src/common/http-call.ts: one exchange over undici's dispatch(), as the Propolis and Nexus
// clients make them, against a real HTTP server on loopback.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerTooLargeError, httpCall } from '../src/common/http-call.js';
import { NexusClient } from '../src/nexus-client.js';
import { PropolisClient } from '../src/propolis-client.js';

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

let server: Server | null = null;
let client: Client | null = null;

afterEach(async () => {
  await client?.destroy();
  client = null;
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve())));
  server = null;
});

/** A server whose `answer` is called once each request's body is in; `seen` lists them. */
async function serve(answer: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void): Promise<{ seen: Seen[]; origin: string }> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, contentType: req.headers['content-type'], body };
      seen.push(s);
      answer(req, res, s);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new Client(origin, { pipelining: 1 });
  return { seen, origin };
}

describe('httpCall', () => {
  it('sends the body as JSON and gives back the status and the whole answer, however it was split', async () => {
    const { seen } = await serve((_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.write('{"migrate":');
      setTimeout(() => res.end('null,"é":1}'), 20);
    });
    const answer = await httpCall(client!, { method: 'PUT', path: '/instance', body: { a: [1, 'ü'] }, timeoutMs: 5_000 });
    expect(answer).toEqual({ status: 201, text: '{"migrate":null,"é":1}' });
    expect(seen).toEqual([{ method: 'PUT', url: '/instance', contentType: 'application/json', body: '{"a":[1,"ü"]}' }]);
  });

  it('sends no body and no content type without one, and gives back an empty answer as ""', async () => {
    const { seen } = await serve((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    expect(await httpCall(client!, { method: 'GET', path: '/x', timeoutMs: 5_000 })).toEqual({ status: 204, text: '' });
    expect(seen[0]).toMatchObject({ method: 'GET', contentType: undefined, body: '' });
  });

  it('an abort in flight rejects with the reason and drops the connection', async () => {
    let closed!: () => void;
    let arrived!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const there = new Promise<void>((resolve) => (arrived = resolve));
    await serve((req) => {
      req.socket.once('close', closed);
      arrived();
    });
    const ctl = new AbortController();
    const call = httpCall(client!, { method: 'GET', path: '/hang', timeoutMs: 0, signal: ctl.signal });
    await there;
    const reason = new Error('not wanted any more');
    ctl.abort(reason);
    await expect(call).rejects.toBe(reason);
    await gone;
  });

  it('an abort while queued behind another call rejects at once; the call before it still answers', async () => {
    let release!: () => void;
    let arrived!: () => void;
    const there = new Promise<void>((resolve) => (arrived = resolve));
    const { seen } = await serve((req, res) => {
      if (req.url === '/first') {
        release = () => res.end('first');
        arrived();
      } else {
        res.end('later');
      }
    });
    const first = httpCall(client!, { method: 'GET', path: '/first', timeoutMs: 0 });
    const ctl = new AbortController();
    const second = httpCall(client!, { method: 'GET', path: '/second', timeoutMs: 0, signal: ctl.signal });
    await there;
    ctl.abort(new Error('gave up waiting'));
    await expect(second).rejects.toThrow('gave up waiting');
    release();
    expect(await first).toEqual({ status: 200, text: 'first' });
    // One connection, in order: had the aborted call been sent after all, it would be before this one.
    await httpCall(client!, { method: 'GET', path: '/third', timeoutMs: 5_000 });
    expect(seen.map((s) => s.url)).toEqual(['/first', '/third']);
  });

  it('an aborted signal rejects before anything is sent', async () => {
    const { seen } = await serve((_req, res) => res.end());
    const ctl = new AbortController();
    ctl.abort(new Error('already'));
    await expect(httpCall(client!, { method: 'GET', path: '/', timeoutMs: 0, signal: ctl.signal })).rejects.toThrow('already');
    await httpCall(client!, { method: 'GET', path: '/after', timeoutMs: 5_000 });
    expect(seen.map((s) => s.url)).toEqual(['/after']);
  });

  it("rejects with undici's error when no answer comes: nothing listening, or no headers in time", async () => {
    const { origin } = await serve(() => {});
    await expect(httpCall(client!, { method: 'GET', path: '/slow', timeoutMs: 100 })).rejects.toMatchObject({ code: 'UND_ERR_HEADERS_TIMEOUT' });
    server!.closeAllConnections();
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = null;
    const fresh = new Client(origin);
    try {
      await expect(httpCall(fresh, { method: 'GET', path: '/', timeoutMs: 1_000 })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await fresh.destroy();
    }
  });

  it('an answer that runs past the limit fails the call and drops the connection; the next call gets a new one', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let stopped = false;
    let closed!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const { seen } = await serve((req, res) => {
      if (req.url !== '/endless') {
        res.end('small');
        return;
      }
      res.writeHead(200);
      const more = (): void => {
        if (stopped || res.destroyed) return;
        res.write(chunk, more);
      };
      res.on('close', () => {
        stopped = true;
        closed();
      });
      more();
    });
    const err = await httpCall(client!, { method: 'GET', path: '/endless', timeoutMs: 5_000, maxAnswerBytes: 1024 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnswerTooLargeError);
    expect((err as Error).message).toBe('the answer is longer than 1048576 bytes');
    await gone;
    expect(await httpCall(client!, { method: 'GET', path: '/after', timeoutMs: 5_000 })).toEqual({ status: 200, text: 'small' });
    expect(seen.map((s) => s.url)).toEqual(['/endless', '/after']);
  });

  it('PropolisClient: an answer past the limit is PROTOCOL (not worth asking again), not UNREACHABLE', async () => {
    const chunk = Buffer.alloc(256 * 1024, ' ');
    const { origin } = await serve((_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      const more = (): void => {
        if (!res.destroyed) res.write(chunk, more);
      };
      more();
    });
    const propolis = new PropolisClient(origin.slice('http://'.length));
    try {
      const err = await propolis.get().catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'PropolisError', code: 'PROTOCOL', status: null });
      expect((err as Error).message).toContain('answered GET /instance with more than 8388608 bytes');
    } finally {
      await propolis.destroy();
    }
  });

  it('NexusClient: an artifact download answered with an error page that runs on fails with its opening, and the connection is dropped', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'e');
    let closed!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const { origin } = await serve((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.on('close', () => closed());
      const more = (): void => {
        if (!res.destroyed) res.write(chunk, more);
      };
      more();
    });
    const nexus = new NexusClient(origin.slice('http://'.length));
    try {
      const err = await nexus.artifactDownload('zone', 'propolis', 1).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'NexusError', status: 500 });
      expect((err as Error).message).toBe(`Nexus answered GET /artifacts/zone/propolis/1 with 500: ${'e'.repeat(200)}...`);
      await gone;
    } finally {
      await nexus.close();
    }
  });
});
