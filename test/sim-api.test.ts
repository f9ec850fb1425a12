// The simulated sled agent over real HTTP, as Nexus drives it: instance and disk lifecycles in
// explicit and auto mode, what Nexus receives, and every refusal the API makes.
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { expectSchema } from './support/contract.js';
import type { Recorded } from './support/fake-nexus.js';
import { diskEnsure, instanceEnsure, instanceRuntime, startTestSim, type TestSim } from './support/sim.js';

let t: TestSim;
afterEach(async () => { await t?.close(); });

const instancePuts = (id: string) => (r: Recorded) => r.method === 'PUT' && r.url === `/instances/${id}`;
const diskPuts = (id: string) => (r: Recorded) => r.method === 'PUT' && r.url === `/disks/${id}`;
const registrations = (sledId: string) => (r: Recorded) => r.method === 'POST' && r.url === `/sled_agents/${sledId}`;
const storagePuts = (r: Recorded) => r.method === 'PUT' && /^\/(sled_agents\/[^/]+\/zpools|zpools\/[^/]+\/dataset)\//.test(r.url);

async function putInstance(id: string, runState: string, runtime?: object) {
  const res = await t.request('PUT', `/instances/${id}`, instanceEnsure(t.config.id, runState, runtime as any));
  if (res.status === 200) expectSchema('sled-agent.json', 'InstanceRuntimeState', res.body);
  else expectSchema('sled-agent.json', 'Error', res.body);
  return res;
}

async function poke(kind: 'instances' | 'disks', id: string) {
  const res = await t.request('POST', `/${kind}/${id}/poke`);
  expect(res.status).toBe(204);
}

describe('instances, explicit mode', () => {
  it('answers a poke once Nexus has the state it reports, as the original does', async () => {
    t = await startTestSim({ mode: 'explicit' });
    // A slow Nexus: a poke that did not wait would be answered long before this one is.
    t.nexus.respond = async () => {
      await new Promise((r) => setTimeout(r, 300));
      return { status: 204 };
    };
    const id = randomUUID();
    await putInstance(id, 'running');
    await poke('instances', id);
    expect(t.nexus.requests.filter(instancePuts(id)).map((r) => r.body.run_state)).toEqual(['running']);
    const disk = randomUUID();
    expect((await t.request('PUT', `/disks/${disk}`, diskEnsure({ state: 'attached', instance: randomUUID() }))).status).toBe(200);
    await poke('disks', disk);
    expect(t.nexus.requests.filter(diskPuts(disk)).map((r) => r.body.disk_state.state)).toEqual(['attached']);
  });

  it('takes an instance new to it that Nexus thinks is rebooting on to starting at the next poke, as the original does', async () => {
    t = await startTestSim({ mode: 'explicit' });
    const id = randomUUID();
    // running asked of a rebooting instance is a no-op: nothing is desired.
    expect((await putInstance(id, 'running', instanceRuntime(t.config.id, { run_state: 'rebooting', gen: 5 }))).body).toMatchObject({ run_state: 'rebooting', gen: 5 });
    await poke('instances', id);
    const [report] = await t.nexus.waitForCount(instancePuts(id), 1);
    expect(report!.body).toMatchObject({ run_state: 'starting', gen: 6 });
  });

  it('runs the original Nexus flow: create, reboot, stop, with strictly increasing generations', async () => {
    t = await startTestSim({ mode: 'explicit' });
    const id = randomUUID();
    const seen: string[] = [];
    const step = async (expected: string, count: number) => {
      const puts = await t.nexus.waitForCount(instancePuts(id), count);
      const last = puts[count - 1]!;
      expectSchema('nexus-internal.json', 'InstanceRuntimeState', last.body);
      expect(last.body.run_state).toBe(expected);
      seen.push(last.body.run_state);
    };

    expect((await putInstance(id, 'running')).body).toMatchObject({ run_state: 'starting', gen: 2 });
    await poke('instances', id);
    await step('running', 1);
    expect((await putInstance(id, 'reboot')).body).toMatchObject({ run_state: 'rebooting', gen: 4 });
    await poke('instances', id);
    await step('starting', 2);
    await poke('instances', id);
    await step('running', 3);
    expect((await putInstance(id, 'stopped')).body).toMatchObject({ run_state: 'stopping', gen: 7 });
    await poke('instances', id);
    await step('stopped', 4);

    const gens = t.nexus.requests.filter(instancePuts(id)).map((r) => r.body.gen);
    expect(gens).toEqual([3, 5, 6, 8]);
    expect(seen).toEqual(['running', 'starting', 'running', 'stopped']);
    // The response carries the state Nexus stores; it is newer than what Nexus had.
    const runtime = t.nexus.requests.filter(instancePuts(id)).at(-1)!.body;
    expect(runtime).toMatchObject({ sled_id: t.config.id, ncpus: 2, memory: 1 << 30, hostname: 'vm' });
    expect(Date.parse(runtime.time_updated)).toBeGreaterThan(Date.parse('2022-06-08T21:14:44.000Z'));
  });

  it('treats a repeated request as a no-op that keeps the generation', async () => {
    t = await startTestSim();
    const id = randomUUID();
    const first = await putInstance(id, 'running');
    const again = await putInstance(id, 'running');
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
  });

  it('uses `initial` only for an instance it has not seen', async () => {
    t = await startTestSim();
    const id = randomUUID();
    await putInstance(id, 'running', instanceRuntime(t.config.id, { ncpus: 4 }));
    const later = await putInstance(id, 'running', instanceRuntime(t.config.id, { ncpus: 64, gen: 100 }));
    expect(later.body).toMatchObject({ ncpus: 4, gen: 2 });
  });

  it('ends a running instance asked for "destroyed" in "stopped", and destroys a stopped one at once', async () => {
    t = await startTestSim();
    const id = randomUUID();
    await putInstance(id, 'running');
    await poke('instances', id);
    expect((await putInstance(id, 'destroyed')).body.run_state).toBe('stopping');
    await poke('instances', id);
    const puts = await t.nexus.waitForCount(instancePuts(id), 2);
    expect(puts[1]!.body.run_state).toBe('stopped');
    expect((await putInstance(id, 'destroyed')).body.run_state).toBe('destroyed');
  });

  it('refuses an invalid transition with 400 InvalidRequest and the original message, keeping the state', async () => {
    t = await startTestSim();
    const id = randomUUID();
    const stopped = await putInstance(id, 'stopped');
    expect(stopped.body).toMatchObject({ run_state: 'stopped', gen: 2 });
    const res = await putInstance(id, 'reboot');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error_code: 'InvalidRequest', message: 'cannot reboot instance in state "stopped"' });
    expect(typeof res.body.request_id).toBe('string');
    expect((await putInstance(id, 'stopped')).body).toEqual(stopped.body);
  });

  it('does not keep a new instance whose first request was refused', async () => {
    t = await startTestSim();
    const id = randomUUID();
    expect((await putInstance(id, 'reboot')).status).toBe(400);
    const res = await t.request('POST', `/instances/${id}/poke`);
    expect(res.status).toBe(404);
  });
});

describe('instances, auto mode', () => {
  it('goes all the way to the desired state, including through a reboot', async () => {
    t = await startTestSim({ mode: 'auto', autoDelayMs: 10 });
    const id = randomUUID();
    await putInstance(id, 'running');
    await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running');
    const before = t.nexus.requests.filter(instancePuts(id)).length;
    expect((await putInstance(id, 'reboot')).body.run_state).toBe('rebooting');
    // The original stops in "starting" here; the reboot must reach "running" again.
    const puts = await t.nexus.waitForCount(instancePuts(id), before + 2);
    expect(puts.slice(before).map((r) => r.body.run_state)).toEqual(['starting', 'running']);
    const gens = puts.map((r) => r.body.gen);
    expect([...gens].sort((a, b) => a - b)).toEqual(gens);
    expect(new Set(gens).size).toBe(gens.length);
  });
});

describe('disks', () => {
  it('attaches, detaches and destroys, reporting each step to Nexus', async () => {
    t = await startTestSim();
    const id = randomUUID();
    const instance = randomUUID();
    const put = async (target: Record<string, unknown>) => {
      const res = await t.request('PUT', `/disks/${id}`, diskEnsure(target));
      expect(res.status).toBe(200);
      expectSchema('sled-agent.json', 'DiskRuntimeState', res.body);
      return res.body;
    };
    expect(await put({ state: 'attached', instance })).toMatchObject({ disk_state: { state: 'attaching', instance }, gen: 2 });
    await poke('disks', id);
    let puts = await t.nexus.waitForCount(diskPuts(id), 1);
    expectSchema('nexus-internal.json', 'DiskRuntimeState', puts[0]!.body);
    expect(puts[0]!.body).toMatchObject({ disk_state: { state: 'attached', instance }, gen: 3 });
    expect(await put({ state: 'attached', instance })).toMatchObject({ gen: 3 });
    const other = await t.request('PUT', `/disks/${id}`, diskEnsure({ state: 'attached', instance: randomUUID() }));
    expect(other.status).toBe(400);
    expect(other.body.message).toBe('disk is already attached');
    expect(await put({ state: 'destroyed' })).toMatchObject({ disk_state: { state: 'detaching', instance }, gen: 4 });
    await poke('disks', id);
    puts = await t.nexus.waitForCount(diskPuts(id), 2);
    expect(puts[1]!.body).toMatchObject({ disk_state: { state: 'destroyed' }, gen: 5 });
    // A destroyed disk with nothing pending is forgotten.
    expect((await t.request('POST', `/disks/${id}/poke`)).status).toBe(404);
  });
});

describe('refusals', () => {
  const valid = (sledId: string) => instanceEnsure(sledId, 'running');

  it('names the field of a bad UUID, a missing field, a wrong type and a bad enum', async () => {
    t = await startTestSim();
    const cases: Array<[string, unknown, RegExp]> = [
      ['/instances/not-a-uuid', valid(t.config.id), /params\/instance_id must be a valid uuid/],
      [`/instances/${randomUUID()}`, { target: { run_state: 'running' } }, /body\/initial is required/],
      [`/instances/${randomUUID()}`, { ...valid(t.config.id), target: { run_state: 'bogus' } }, /body\/target\/run_state must be one of: running, stopped, reboot, migrating, destroyed/],
      [`/instances/${randomUUID()}`, instanceEnsure(t.config.id, 'running', instanceRuntime(t.config.id, { gen: '5' })), /body\/initial\/runtime\/gen must be integer/],
      [`/instances/${randomUUID()}`, instanceEnsure(t.config.id, 'running', instanceRuntime(t.config.id, { ncpus: 70000 })), /body\/initial\/runtime\/ncpus must be a valid uint16/],
      [`/instances/${randomUUID()}`, instanceEnsure(t.config.id, 'running', instanceRuntime(t.config.id, { memory: 2 ** 60 })), /body\/initial\/runtime\/memory must be a valid uint64/],
      [`/instances/${randomUUID()}`, instanceEnsure(t.config.id, 'running', instanceRuntime(t.config.id, { sled_id: 'x' })), /body\/initial\/runtime\/sled_id must be a valid uuid/],
      [`/disks/${randomUUID()}`, diskEnsure({ state: 'attached' }), /body\/target\/instance is required/],
      [`/disks/${randomUUID()}`, diskEnsure({ state: 'gone' }), /body\/target\/state has an unknown value/],
    ];
    for (const [path, body, message] of cases) {
      const res = await t.request('PUT', path, body);
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expectSchema('sled-agent.json', 'Error', res.body);
      expect(res.body.error_code).toBe('InvalidRequest');
      expect(res.body.message).toMatch(message);
    }
  });

  it('refuses malformed JSON, an empty body, a wrong content type and an oversized body with 4xx envelopes', async () => {
    t = await startTestSim();
    const path = `/instances/${randomUUID()}`;
    const bad = await t.request('PUT', path, '{"initial": ');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/unable to parse JSON body/);
    const empty = await t.request('PUT', path, '');
    expect(empty.status).toBe(400);
    const text = await t.request('PUT', path, 'hello', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(text.body.message).toMatch(/application\/json/);
    const big = await t.request('PUT', path, JSON.stringify({ pad: 'x'.repeat(1 << 20) }));
    expect(big.status).toBe(413);
    expect(big.body.message).toMatch(/larger than the limit of 1048576 bytes/);
    const proto = await t.request('PUT', path, '{"__proto__": {"x": 1}, "initial": {}}');
    expect(proto.status).toBe(400);
    for (const res of [bad, empty, text, big, proto]) expectSchema('sled-agent.json', 'Error', res.body);
  });

  it('answers 404 for a poke of an unknown id and for an unknown route', async () => {
    t = await startTestSim();
    for (const kind of ['instances', 'disks']) {
      const res = await t.request('POST', `/${kind}/${randomUUID()}/poke`);
      expect(res.status).toBe(404);
      expect(res.body.error_code).toBe('ObjectNotFound');
    }
    const route = await t.request('GET', '/nowhere');
    expect(route.status).toBe(404);
    expectSchema('sled-agent.json', 'Error', route.body);
  });

  it('loses nothing already accepted while refusing bad input', async () => {
    t = await startTestSim();
    const id = randomUUID();
    const accepted = await putInstance(id, 'running');
    await t.request('PUT', `/instances/${id}`, '{broken');
    await t.request('PUT', `/instances/${id}`, { initial: 1, target: 2 });
    expect((await putInstance(id, 'migrating')).status).toBe(400);
    const again = await putInstance(id, 'running');
    expect(again.body).toEqual(accepted.body);
    await poke('instances', id);
    const [put] = await t.nexus.waitForCount(instancePuts(id), 1);
    expect(put!.body).toMatchObject({ run_state: 'running', gen: 3 });
  });
});

describe('Nexus conversation', () => {
  it('registers in the background, serving requests while Nexus fails, until Nexus accepts', async () => {
    const { FakeNexus } = await import('./support/fake-nexus.js');
    const nexus = await FakeNexus.start();
    let failing = true;
    nexus.respond = () => ({ status: failing ? 503 : 204 });
    t = await startTestSim({ nexus });
    await nexus.waitForCount((r) => r.url === `/sled_agents/${t.config.id}`, 2);
    // Still unregistered, and serving:
    expect((await putInstance(randomUUID(), 'running')).status).toBe(200);
    failing = false;
    await t.sim.registered;
    const posts = nexus.requests.filter((r) => r.url === `/sled_agents/${t.config.id}`);
    expect(posts.length).toBeGreaterThanOrEqual(3);
    for (const post of posts) {
      expect(post.method).toBe('POST');
      expectSchema('nexus-internal.json', 'SledAgentStartupInfo', post.body);
      expect(post.body.sa_address).toBe(t.sim.address);
    }
  });

  it('retries a registration Nexus refused with a 4xx, as omicron does, saying so, then reports storage', async () => {
    const { FakeNexus, refusingFirst } = await import('./support/fake-nexus.js');
    const nexus = await FakeNexus.start();
    nexus.respond = refusingFirst((r) => r.method === 'POST' && r.url.startsWith('/sled_agents/'), 2);
    const lines: any[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)); } });
    t = await startTestSim({ nexus, zpools: [{ size: 2 ** 30 }], log });
    await t.sim.registered;

    const posts = nexus.requests.filter(registrations(t.config.id));
    expect(posts).toHaveLength(3);
    expect(t.sim.agent.registered).toBe(true);
    const storage = nexus.requests.filter(storagePuts);
    expect(storage.map((r) => r.url.split('/').slice(0, 4).join('/')))
      .toEqual([`/sled_agents/${t.config.id}/zpools`, `/zpools/${t.sim.storage.zpools[0]!.id}/dataset`]);
    for (const r of storage) expect(nexus.requests.indexOf(r)).toBeGreaterThan(nexus.requests.indexOf(posts[2]!));

    // One warning per refusal, naming what failed, Nexus's answer, and that it is retried.
    const failures = lines.filter((l) => l.what === 'sled agent registration' && l.level >= 40);
    expect(failures).toHaveLength(2);
    for (const l of failures) {
      expect(l.level).toBe(40);
      expect(l.msg).toMatch(/will retry/);
      expect(l.err).toContain(`POST /sled_agents/${t.config.id} with 400`);
      expect(l.err).toContain('not yet');
      expect(l.retryInMs).toBeGreaterThanOrEqual(0);
    }
  });

  it('stops retrying a refused registration when closed, never reporting storage', async () => {
    const { FakeNexus } = await import('./support/fake-nexus.js');
    const nexus = await FakeNexus.start();
    nexus.respond = (r) => (r.method === 'POST' && r.url.startsWith('/sled_agents/') ? { status: 404 } : { status: 204 });
    t = await startTestSim({ nexus, zpools: [{ size: 2 ** 30 }] });
    await nexus.waitForCount(registrations(t.config.id), 2);
    expect(t.sim.agent.registered).toBe(false);

    await t.sim.close();
    // `registered` settles only once the notifier has given the registration up, so the retries
    // have ended: nothing is left queued and nothing more will be sent.
    await t.sim.registered;
    expect(t.sim.notifier.backlog).toBe(0);
    expect(t.sim.agent.registered).toBe(false);
    expect(nexus.requests.filter(storagePuts)).toEqual([]);
  });

  it('retries an instance update Nexus failed, delivering the newest state in order', async () => {
    const { FakeNexus } = await import('./support/fake-nexus.js');
    const nexus = await FakeNexus.start();
    let failures = 3;
    nexus.respond = (r) => (r.url.startsWith('/instances/') && failures-- > 0 ? { status: 500 } : { status: 204 });
    t = await startTestSim({ nexus });
    const id = randomUUID();
    await putInstance(id, 'running');
    await poke('instances', id);
    const puts = await nexus.waitForCount(instancePuts(id), 4);
    expect(puts.map((r) => r.body.run_state)).toEqual(['running', 'running', 'running', 'running']);
    expect(puts.map((r) => r.body.gen)).toEqual([3, 3, 3, 3]);
  });
});
