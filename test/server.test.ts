// The fastify app factory shared by every API: what each app gets regardless of its routes.
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DiskRuntimeState } from '../src/params.js';
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
});
