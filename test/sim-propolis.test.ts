// The simulated Propolis server over real HTTP, through the Propolis client: ensure, the state
// machine, the state-monitor long poll, errors, export/import of the VM, and the client's error
// classification (UNREACHABLE / HTTP / ABORTED).
import { randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { createServer as createNetServer } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { PropolisInstanceState } from '../src/common/instance.js';
import { PropolisClient, PropolisError, type InstanceEnsureRequest } from '../src/propolis-client.js';
import { SimPropolis, type SimPropolisSnapshot } from '../src/sim/propolis.js';
import { monitorUntil } from './support/propolis-monitor.js';

const NIL = '00000000-0000-0000-0000-000000000000';

function ensureRequest(overrides: Partial<InstanceEnsureRequest> = {}): InstanceEnsureRequest {
  return {
    properties: { id: randomUUID(), name: 'vm0', description: 'Test description', image_id: NIL, bootrom_id: NIL, memory: 1024, vcpus: 2 },
    nics: [{ name: 'vopte0', slot: 0 }],
    disks: [],
    migrate: null,
    cloud_init_bytes: null,
    ...overrides,
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(options: Parameters<typeof SimPropolis.start>[0] = {}): Promise<{ server: SimPropolis; client: PropolisClient }> {
  const server = await SimPropolis.start(options);
  const client = new PropolisClient(server.address);
  cleanups.push(() => server.close(), () => client.destroy());
  return { server, client };
}

async function rejection(p: Promise<unknown>): Promise<PropolisError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(PropolisError);
  return err as PropolisError;
}

describe('simulated Propolis: PUT /instance', () => {
  it('creates the instance (201 {migrate: null}), accepts the same properties again, and refuses different ones with 500', async () => {
    const { server, client } = await start();
    const req = ensureRequest();
    await expect(client.ensure(req)).resolves.toEqual({ migrate: null });
    expect(server.hasInstance).toBe(true);
    // Same properties, other NICs: still 201.
    await expect(client.ensure({ ...req, nics: [] })).resolves.toEqual({ migrate: null });
    const err = await rejection(client.ensure({ ...req, properties: { ...req.properties, memory: 2048 } }));
    expect(err.code).toBe('HTTP');
    expect(err.status).toBe(500);
    expect(err.message).toContain('Cannot update running server');
    const got = await client.get();
    expect(got.instance).toEqual({ properties: req.properties, state: 'Creating', disks: [], nics: [] });
  });

  it('answers a migration request with its migration id', async () => {
    const { client } = await start();
    const migration_id = randomUUID();
    const res = await client.ensure(ensureRequest({ migrate: { migration_id, src_addr: '[fd00::1]:12400', src_uuid: randomUUID() } }));
    expect(res).toEqual({ migrate: { migration_id } });
  });

  it('refuses a malformed ensure body with 400 naming the field', async () => {
    const { client } = await start();
    const bad = ensureRequest();
    (bad.properties as unknown as Record<string, unknown>).vcpus = 'two';
    const err = await rejection(client.ensure(bad));
    expect(err.code).toBe('HTTP');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/vcpus/);
  });

  it('GET /instance, state-monitor and PUT /instance/state are 500 before any instance exists', async () => {
    const { client } = await start();
    for (const call of [client.get(), client.stateMonitor(0), client.putState('Run')]) {
      const err = await rejection(call);
      expect(err.code).toBe('HTTP');
      expect(err.status).toBe(500);
      expect(err.message).toMatch(/not initialized/);
    }
  });
});

describe('simulated Propolis: the VM and the state monitor', () => {
  it('answers at once for a generation it has reached, with {gen 0, Creating} after ensure', async () => {
    const { client } = await start();
    await client.ensure(ensureRequest());
    await expect(client.stateMonitor(0)).resolves.toEqual({ gen: 0, state: 'Creating' });
  });

  it('blocks a long poll for a later generation until the state changes, then answers with it', async () => {
    const { server, client } = await start({ latencies: { vmBoot: 0, vmStep: 0 } });
    await client.ensure(ensureRequest());
    let answered = false;
    const poll = client.stateMonitor(1).then((r) => {
      answered = true;
      return r;
    });
    // The poll is parked on the server, not answered.
    await waitUntil(() => server.waiterCount === 1);
    expect(answered).toBe(false);
    await client.putState('Run');
    await expect(poll).resolves.toEqual({ gen: 1, state: 'Starting' });
    expect(server.waiterCount).toBe(0);
  });

  it('the client keeps one connection through ensure, Run and state-monitor long polls (a GET with a body)', async () => {
    const { client } = await start({ latencies: { vmBoot: 20, vmStep: 5 } });
    let connections = 0;
    const onConnect = () => { connections += 1; };
    diagnostics.subscribe('undici:client:connected', onConnect);
    try {
      await client.ensure(ensureRequest());
      await client.putState('Run');
      await monitorUntil(client, 'Running', 0);
      await client.stateMonitor(0);
    } finally {
      diagnostics.unsubscribe('undici:client:connected', onConnect);
    }
    expect(connections).toBe(1);
  });

  // The monitor answers with the latest state (as Propolis's watch does: a slow poller may skip
  // one); the complete history is what onChange reports.
  it('Run goes Creating -> Starting -> Running, one generation per step', async () => {
    const history: Array<[number, PropolisInstanceState]> = [];
    const { client } = await start({ onChange: (s) => history.push([s.gen, s.state]) });
    await client.ensure(ensureRequest());
    await client.putState('Run');
    expect(await monitorUntil(client, 'Running', 1)).toEqual({ gen: 2, state: 'Running' });
    expect(history).toEqual([[0, 'Creating'], [1, 'Starting'], [2, 'Running']]);
    // Run again while running: accepted, nothing changes.
    await client.putState('Run');
    expect((await client.get()).instance.state).toBe('Running');
    await expect(client.stateMonitor(0)).resolves.toEqual({ gen: 2, state: 'Running' });
    expect(history).toHaveLength(3);
  });

  it('Stop ends in Destroyed through Stopping and Stopped; Run afterwards is refused', async () => {
    const history: Array<[number, PropolisInstanceState]> = [];
    const { client } = await start({ onChange: (s) => history.push([s.gen, s.state]) });
    await client.ensure(ensureRequest());
    await client.putState('Run');
    await monitorUntil(client, 'Running', 1);
    await client.putState('Stop');
    expect(await monitorUntil(client, 'Destroyed', 3)).toEqual({ gen: 5, state: 'Destroyed' });
    expect(history.slice(3)).toEqual([[3, 'Stopping'], [4, 'Stopped'], [5, 'Destroyed']]);
    const err = await rejection(client.putState('Run'));
    expect(err.status).toBe(500);
    // Stop again: nothing to do, accepted.
    await client.putState('Stop');
    expect(history).toHaveLength(6);
  });

  it('Reboot goes Rebooting -> Starting -> Running; MigrateStart goes Migrating -> Running', async () => {
    const history: PropolisInstanceState[] = [];
    const { client } = await start({ onChange: (s) => history.push(s.state) });
    await client.ensure(ensureRequest());
    await client.putState('Run');
    await monitorUntil(client, 'Running', 1);
    await client.putState('Reboot');
    expect(await monitorUntil(client, 'Running', 3)).toEqual({ gen: 5, state: 'Running' });
    await client.putState('MigrateStart');
    expect(await monitorUntil(client, 'Running', 6)).toEqual({ gen: 7, state: 'Running' });
    expect(history).toEqual(['Creating', 'Starting', 'Running', 'Rebooting', 'Starting', 'Running', 'Migrating', 'Running']);
  });

  it('a Reboot before the VM runs is refused (500) and changes nothing', async () => {
    const { server, client } = await start();
    await client.ensure(ensureRequest());
    const err = await rejection(client.putState('Reboot'));
    expect(err.status).toBe(500);
    expect(server.state).toBe('Creating');
    expect(server.gen).toBe(0);
  });

  it('Stop while Starting goes to Stopping at once: the boot never completes', async () => {
    const { server, client } = await start({ latencies: { vmBoot: 60_000 } });
    await client.ensure(ensureRequest());
    await client.putState('Run');
    await client.putState('Stop');
    // Starting (gen 1) was replaced by Stopping (gen 2) without any boot.
    expect(await monitorUntil(client, 'Destroyed', 2)).toEqual({ gen: 4, state: 'Destroyed' });
    expect(server.state).toBe('Destroyed');
  });

  it('refuses a state body that is not one of Run, Stop, Reboot, MigrateStart with 400', async () => {
    const { server, client } = await start();
    await client.ensure(ensureRequest());
    const err = await rejection(client.putState('Start' as 'Run'));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/must be one of: Run, Stop, Reboot, MigrateStart/);
    expect(server.state).toBe('Creating');
  });

  it('steps take their configured latency: a long VM boot keeps it Starting', async () => {
    const { server, client } = await start({ latencies: { vmBoot: 60_000, vmStep: 0 } });
    await client.ensure(ensureRequest());
    await client.putState('Run');
    await expect(client.stateMonitor(1)).resolves.toEqual({ gen: 1, state: 'Starting' });
    // Still Starting: the boot has not completed.
    expect(server.state).toBe('Starting');
    expect((await client.get()).instance.state).toBe('Starting');
  });

  it('forgets a long poll whose client went away (abort), and the client says ABORTED', async () => {
    const { server, client } = await start();
    await client.ensure(ensureRequest());
    const ctl = new AbortController();
    const poll = client.stateMonitor(5, ctl.signal);
    await waitUntil(() => server.waiterCount === 1);
    ctl.abort();
    const err = await rejection(poll);
    expect(err.code).toBe('ABORTED');
    await waitUntil(() => server.waiterCount === 0);
    // The server is still fine.
    await expect(client.stateMonitor(0)).resolves.toEqual({ gen: 0, state: 'Creating' });
  });
});

describe('simulated Propolis: servers sharing one app', () => {
  it('each server answers for its own VM and logs its requests to its own logger', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    const a = await start({ logger: pino({ level: 'info' }, sink).child({ zone: 'a' }) });
    const b = await start({ logger: pino({ level: 'info' }, sink).child({ zone: 'b' }) });
    await a.client.ensure(ensureRequest());
    await a.client.putState('Run');
    // b has no instance: its answers are its own, not a's.
    const err = await rejection(b.client.stateMonitor(0));
    expect(err.status).toBe(500);
    expect(b.server.hasInstance).toBe(false);
    await expect(monitorUntil(a.client, 'Running', 0)).resolves.toMatchObject({ state: 'Running' });
    // Closing one leaves the other answering.
    await b.server.close();
    await expect(a.client.stateMonitor(0)).resolves.toMatchObject({ state: 'Running' });
    const byZone = (zone: string) => lines.filter((l) => l.zone === zone && l.msg === 'request completed').map((l) => `${String(l.method)} ${String(l.url)}`);
    expect(byZone('a')).toContain('PUT /instance');
    expect(byZone('a')).toContain('PUT /instance/state');
    expect(byZone('b')).toEqual(['GET /instance/state-monitor']);
    expect(lines.some((l) => l.zone === 'b' && l.msg === 'request failed')).toBe(true);
  });
});

describe('simulated Propolis: export, import and crash', () => {
  it('reports every change through onChange, and a server started from a snapshot continues a transition', async () => {
    const changes: SimPropolisSnapshot[] = [];
    const { server, client } = await start({ latencies: { vmBoot: 60_000 }, onChange: (s) => changes.push(s) });
    const req = ensureRequest();
    await client.ensure(req);
    await client.putState('Run');
    expect(changes.map((c) => [c.gen, c.state])).toEqual([[0, 'Creating'], [1, 'Starting']]);
    const snap = server.snapshot();
    expect(snap).toEqual({ request: req, state: 'Starting', gen: 1 });
    await server.crash();

    // The same VM on a new server (a new port): it finishes booting.
    const revived = await start({ initial: snap, latencies: { vmBoot: 0 } });
    expect(revived.server.address.port).not.toBe(server.address.port);
    await expect(revived.client.stateMonitor(2)).resolves.toEqual({ gen: 2, state: 'Running' });
    expect((await revived.client.get()).instance.properties).toEqual(req.properties);
    // The same properties are still accepted; others are not.
    await expect(revived.client.ensure(req)).resolves.toEqual({ migrate: null });
  });

  it('crash() cuts a parked long poll and the port stops answering: the client says UNREACHABLE', async () => {
    const { server, client } = await start();
    await client.ensure(ensureRequest());
    const poll = client.stateMonitor(9);
    await waitUntil(() => server.waiterCount === 1);
    await server.crash();
    const err = await rejection(poll);
    expect(err.code).toBe('UNREACHABLE');
    expect(err.status).toBeNull();
    expect(err.transient).toBe(true);
    const again = await rejection(client.get());
    expect(again.code).toBe('UNREACHABLE');
  });

  it('forceState() moves the VM at once (a fault), visible to a parked poll', async () => {
    const { server, client } = await start();
    await client.ensure(ensureRequest());
    const poll = client.stateMonitor(1);
    await waitUntil(() => server.waiterCount === 1);
    server.forceState('Failed');
    await expect(poll).resolves.toEqual({ gen: 1, state: 'Failed' });
  });
});

describe('Propolis client errors', () => {
  it('UNREACHABLE with no status on a port where nothing listens', async () => {
    const port = await freePort();
    const client = new PropolisClient({ host: '127.0.0.1', port });
    cleanups.push(() => client.destroy());
    const err = await rejection(client.get());
    expect(err.code).toBe('UNREACHABLE');
    expect(err.status).toBeNull();
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('HTTP with the status and the body message for a non-2xx answer', async () => {
    const { client } = await start();
    const err = await rejection(client.get());
    expect(err.code).toBe('HTTP');
    expect(err.status).toBe(500);
    expect(err.transient).toBe(false);
  });

  it('an aborted signal rejects before sending anything', async () => {
    const { client } = await start();
    const ctl = new AbortController();
    ctl.abort();
    expect((await rejection(client.stateMonitor(0, ctl.signal))).code).toBe('ABORTED');
  });

  it('a configured monitor timeout ends a long poll as UNREACHABLE (transient), not a hang', async () => {
    const server = await SimPropolis.start();
    const client = new PropolisClient(server.address, { monitorTimeoutMs: 50 });
    cleanups.push(() => server.close(), () => client.destroy());
    await client.ensure(ensureRequest());
    const err = await rejection(client.stateMonitor(3));
    expect(err.code).toBe('UNREACHABLE');
    expect(err.message).toMatch(/timeout/i);
  });
});

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Resolves once `cond` holds, checking after each turn of the event loop (test helper only). */
async function waitUntil(cond: () => boolean, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 2));
  }
}
