// The fastify app factory shared by every API: what each app gets regardless of its routes.
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DiskRuntimeState, InstanceEnsureBody, InstanceRuntimeState, VolumeConstructionRequestSchema } from '../src/params.js';
import { createServer } from '../src/server.js';

describe('createServer', () => {
  afterEach(() => vi.restoreAllMocks());

  it('serializes a union holding a contract format without ajv warning about the format', async () => {
    const warn = vi.spyOn(console, 'warn');
    const app = createServer({ logger: pino({ level: 'silent' }) });
    // fast-json-stringify validates a oneOf's branches with its own ajv when it serializes.
    app.get('/disk', { schema: { response: { 200: DiskRuntimeState } } }, async () => ({
      disk_state: { state: 'attached' as const, instance: '11111111-2222-3333-4444-555555555555' },
      gen: 3,
      time_updated: '2022-06-08T00:00:00Z',
    }));
    try {
      const res = await app.inject({ method: 'GET', url: '/disk' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ disk_state: { state: 'attached' }, gen: 3 });
    } finally {
      await app.close();
    }
    expect(warn.mock.calls.map((args) => String(args[0])).filter((m) => m.includes('unknown format'))).toEqual([]);
  });

  it('compiles a route schema once per process: a second app validates and serializes with the same functions', async () => {
    const apps = [0, 1].map(() => createServer({ logger: pino({ level: 'silent' }), sharedSchemas: [VolumeConstructionRequestSchema] }));
    const seen: Array<{ validate: unknown; serialize: unknown }> = [];
    for (const app of apps) {
      app.put('/instances/:id', { schema: { body: InstanceEnsureBody, response: { 200: InstanceRuntimeState } } }, async (request, reply) => {
        seen.push({ validate: request.getValidationFunction('body'), serialize: reply.getSerializationFunction('200') });
        return request.body.initial.runtime;
      });
    }
    const runtime = {
      run_state: 'creating', sled_id: '11111111-2222-3333-4444-555555555555', propolis_id: '11111111-2222-3333-4444-666666666666',
      dst_propolis_id: null, propolis_addr: '[fd00:1122:3344:101::1]:12400', migration_id: null, ncpus: 2, memory: 1 << 30,
      hostname: 'one', gen: 1, time_updated: '2022-06-08T00:00:00Z',
    };
    const body = {
      initial: { runtime, nics: [], source_nat: { ip: '10.0.0.1', first_port: 0, last_port: 16383 }, external_ips: [], firewall_rules: [], disks: [], cloud_init_bytes: null },
      target: { run_state: 'running', migration_params: null },
      migrate: null,
    };
    try {
      for (const app of apps) {
        const ok = await app.inject({ method: 'PUT', url: '/instances/1', payload: body });
        expect(ok.statusCode).toBe(200);
        expect(ok.json()).toEqual(runtime);
        // Shared, the validator still refuses in every app, with its own message.
        const bad = await app.inject({ method: 'PUT', url: '/instances/1', payload: { ...body, target: { run_state: 'flying' } } });
        expect(bad.statusCode).toBe(400);
        expect(bad.json().message).toMatch(/run_state/);
      }
      expect(seen).toHaveLength(2);
      expect(seen[0]!.validate).toBeTypeOf('function');
      expect(seen[1]!.validate).toBe(seen[0]!.validate);
      expect(seen[0]!.serialize).toBeTypeOf('function');
      expect(seen[1]!.serialize).toBe(seen[0]!.serialize);
    } finally {
      await Promise.all(apps.map((app) => app.close()));
    }
  });

  it('answers a path it serves with another method 405, naming the methods it takes, and an unknown path 404', async () => {
    const app = createServer({ logger: pino({ level: 'silent' }) });
    app.put('/instances/:id', async () => ({}));
    app.get('/instances/:id', async () => ({}));
    app.register(async (child) => {
      child.delete('/v2p/:id', async () => ({}));
    });
    try {
      const wrong = await app.inject({ method: 'DELETE', url: '/instances/11111111-2222-3333-4444-555555555555?x=1' });
      expect(wrong.statusCode).toBe(405);
      expect(wrong.headers.allow).toBe('GET, HEAD, PUT');
      expect(wrong.json()).toMatchObject({
        error_code: 'MethodNotAllowed',
        message: 'DELETE is not allowed on /instances/11111111-2222-3333-4444-555555555555; it takes GET, HEAD, PUT',
      });
      expect(wrong.json().request_id).toBe(wrong.headers['x-request-id']);
      // A route a plugin registered counts too.
      expect((await app.inject({ method: 'GET', url: '/v2p/1' })).statusCode).toBe(405);
      // One segment is one parameter: a deeper path is not the route's.
      const deeper = await app.inject({ method: 'DELETE', url: '/instances/1/state' });
      expect(deeper.statusCode).toBe(404);
      expect(deeper.json()).toMatchObject({ error_code: 'NotFound', message: 'no route for DELETE /instances/1/state' });
      expect((await app.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
    } finally {
      await app.close();
    }
  });

  it('refuses JSON nested deeper than serde_json takes (127 levels) with a 400, however deep, and still refuses prototype poisoning', async () => {
    const app = createServer({ logger: pino({ level: 'silent' }) });
    app.put('/echo', async (request) => ({ ok: request.body !== undefined }));
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
    const put = (payload: string) => app.inject({ method: 'PUT', url: '/echo', payload, headers: { 'content-type': 'application/json; charset=utf-8' } });
    try {
      expect((await put(nested(127))).statusCode).toBe(200);
      expect((await put(`{"a":${nested(126)}}`)).statusCode).toBe(200);
      for (const payload of [nested(128), `{"a":${nested(127)}}`, nested(200_000)]) {
        const res = await put(payload);
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({
          error_code: 'InvalidRequest',
          message: 'unable to parse JSON body: recursion limit exceeded: arrays and objects nested more than 127 deep',
        });
      }
      const poisoned = await put('{"__proto__":{"admin":true}}');
      expect(poisoned.statusCode).toBe(400);
      expect(poisoned.json().message).toMatch(/^unable to parse JSON body/);
      expect((await put('{"a":')).statusCode).toBe(400);
    } finally {
      await app.close();
    }
  });

  it('refuses a path that does not decode, or a parameter past the router limit, with the envelope', async () => {
    const app = createServer({ logger: pino({ level: 'silent' }) });
    app.get('/v2p/:id', async () => ({}));
    app.put('/zones/bundles/:zone/:id', async () => ({}));
    app.put('/disks/:id', async () => ({}));
    try {
      for (const url of ['/v2p/%zz', '/zones/bundles/oxz_a/%E0%A4%A']) {
        const res = await app.inject({ method: url.startsWith('/v2p') ? 'GET' : 'PUT', url });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toEqual({
          request_id: res.headers['x-request-id'],
          error_code: 'InvalidRequest',
          message: `the path ${url} does not decode: each % must start a two-hex-digit escape, and the escapes must form UTF-8`,
        });
      }
      const long = `/disks/${'a'.repeat(101)}`;
      const res = await app.inject({ method: 'PUT', url: `${long}?x=1` });
      expect(res.statusCode).toBe(414);
      expect(res.json()).toEqual({
        request_id: res.headers['x-request-id'],
        error_code: 'UriTooLong',
        message: `the path ${long} has a parameter longer than 100 characters; no parameter of this API is that long`,
      });
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await app.close();
    }
  });

  it('answers a request that arrives while closing 503 with the envelope, finishes the one in flight, and closes', async () => {
    const app = createServer({ logger: pino({ level: 'silent' }) });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const inFlight = new Promise<void>((resolve) => (started = resolve));
    app.get('/slow', async () => {
      started();
      await released;
      return { done: true };
    });
    app.get('/fast', async () => ({ fast: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    // The second request comes on the connection the first keeps busy, so close() cannot reap it.
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    await once(socket, 'connect');
    socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await inFlight;
    const closed = app.close();
    const second = once(app.server, 'request');
    socket.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    await second;
    release();
    await closed;
    await once(socket, 'close');
    const responses = received.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(responses[0]).toContain('{"done":true}');
    expect(responses[1]).toMatch(/^HTTP\/1\.1 503 /);
    expect(responses[1]).toMatch(/\r\nconnection: close\r\n/i);
    const id = /\r\nx-request-id: ([^\r]+)\r\n/i.exec(responses[1]!)?.[1];
    const body = JSON.parse(responses[1]!.slice(responses[1]!.indexOf('\r\n\r\n') + 4));
    expect(body).toEqual({
      request_id: id,
      error_code: 'ServiceUnavailable',
      message: 'the sled agent is shutting down and takes no new requests; retry against it once it is back',
    });
  });
});
