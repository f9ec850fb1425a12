// GET /health over real HTTP: 200 while serving with a host that answers; 503 in the omicron
// envelope, with the reason, when the host fails or does not answer in time; cheap enough to
// poll every second (answers are reused, and a host call that hangs is not asked again on top
// of itself). Deadlines are shortened by options; no test asserts a duration.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HEALTH_PROBE_ZONE, HostHealth } from '../src/health.js';
import { hostError, type Host, type ZoneState } from '../src/host/index.js';
import type { SimHost } from '../src/sim/host.js';
import { expectSchema } from './support/contract.js';
import { startTestAgent, type TestAgent } from './support/agent.js';
import { startTestSim, type TestSim } from './support/sim.js';

/** The simulated host with a zone state query (what the check asks) the test can break or hold. */
function controllable(sim: SimHost) {
  const control = {
    calls: 0,
    /** The zones asked about. */
    asked: [] as string[],
    fail: null as Error | null,
    hold: null as Promise<void> | null,
    host: undefined as unknown as Host,
  };
  control.host = {
    ...sim,
    kind: sim.kind,
    links: sim.links,
    datasets: sim.datasets,
    network: sim.network,
    events: sim.events,
    reachable: (zone, addr) => sim.reachable(zone, addr),
    close: () => sim.close(),
    zones: {
      ...sim.zones,
      state: async (name: string): Promise<ZoneState | null> => {
        control.calls += 1;
        control.asked.push(name);
        if (control.hold) await control.hold;
        if (control.fail) throw control.fail;
        return sim.zones.state(name);
      },
    },
  };
  return control;
}

describe('sled agent', () => {
  let t: TestAgent | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('answers 200 with the sled, its backend and Nexus as it sees them', async () => {
    t = await startTestAgent();
    await t.running.registered;
    const res = await t.request('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', sled_id: t.config.id, host_backend: 'sim', nexus_registered: true, nexus_queue: expect.any(Number) });
  });

  it('answers 503 with the reason while the host fails, and 200 again once it answers', async () => {
    let control!: ReturnType<typeof controllable>;
    t = await startTestAgent({
      agent: { health: { cacheMs: 0, deadlineMs: 5_000 } },
      wrapHost: (sim) => (control = controllable(sim)).host,
    });
    await t.running.registered;
    control.fail = hostError('ENOLIB', 'libzonecfg.so.1 is gone');
    const res = await t.request('GET', '/health');
    expect(res.status).toBe(503);
    expectSchema('sled-agent.json', 'Error', res.body);
    expect(res.body.error_code).toBe('ServiceUnavailable');
    expect(res.body.message).toBe('the sim host backend failed a zone state query: libzonecfg.so.1 is gone');
    control.fail = null;
    expect((await t.request('GET', '/health')).status).toBe(200);
  });

  it('answers 503 when the host does not answer in time, without piling up calls on a host that hangs', async () => {
    let control!: ReturnType<typeof controllable>;
    t = await startTestAgent({
      agent: { health: { cacheMs: 0, deadlineMs: 200 } },
      wrapHost: (sim) => (control = controllable(sim)).host,
    });
    // Start-up's own zone calls are done (and it has no instance), so every state query from here
    // on is the health check's.
    await t.running.registered;
    await t.running.agent.instances.idle();
    let release!: () => void;
    control.hold = new Promise((resolve) => { release = resolve; });
    const before = control.calls;
    const late = await t.request('GET', '/health');
    expect(late.status).toBe(503);
    expect(late.body.message).toBe('the sim host backend did not answer a zone state query within 200 ms');
    const stuck = await t.request('GET', '/health');
    expect(stuck.status).toBe(503);
    expect(stuck.body.message).toMatch(/^the sim host backend has not answered a zone state query for \d+ ms$/);
    expect(control.calls - before).toBe(1);
    // One zone's state, a zone no one makes: not a list of every zone on the sled.
    expect(control.asked.at(-1)).toBe(HEALTH_PROBE_ZONE);
    control.hold = null;
    release();
    // The held call settles; later checks ask the host again (retried: a loaded machine may
    // take longer than the deadline once).
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) status = (await t.request('GET', '/health')).status;
    expect(status).toBe(200);
  });
});

describe('HostHealth', () => {
  it('asks the host once for any number of checks within the cache time', async () => {
    let calls = 0;
    const host = { kind: 'sim', zones: { state: async () => { calls += 1; return null; } } } as unknown as Host;
    const health = new HostHealth(host, pino({ level: 'silent' }), { cacheMs: 60_000 });
    const results = await Promise.all(Array.from({ length: 10 }, () => health.check()));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(await health.check()).toEqual({ ok: true });
    expect(calls).toBe(1);
  });

  it('logs a change of health once, not on every check', async () => {
    const lines: any[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    let fail = true;
    const host = { kind: 'sim', zones: { state: async () => { if (fail) throw new Error('down'); return null; } } } as unknown as Host;
    const health = new HostHealth(host, log, { cacheMs: 0 });
    for (let i = 0; i < 3; i++) expect((await health.check()).ok).toBe(false);
    fail = false;
    for (let i = 0; i < 3; i++) expect((await health.check()).ok).toBe(true);
    expect(lines.map((l) => l.msg)).toEqual([
      'health: unhealthy: the sim host backend failed a zone state query: down',
      'health: the host backend answers again',
    ]);
  });
});

describe('simulated sled agent', () => {
  let t: TestSim | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('answers 200 while serving: it has no host to ask', async () => {
    t = await startTestSim();
    await t.sim.registered;
    const res = await t.request('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', sled_id: t.config.id, host_backend: null, nexus_registered: true, nexus_queue: 0 });
  });
});
