// What a SIGKILL can leave in the ledger and on the host, set up exactly, and what the restarted
// agent makes of it (issue 10): a stopped instance whose teardown did not end, a stop landing
// while Propolis is being ensured, a failed instance across a restart, and a stop request for an
// instance the sled had already forgotten.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../src/instance.js';
import { readLedgerFile } from '../src/ledger.js';
import { SimHost } from '../src/sim/host.js';
import { ensureBody, instancePuts, nexusSees, realRuntime, runInstance, startTestAgent, withZones, zoneOf, type TestAgent } from './support/agent.js';

let t: TestAgent | undefined;
let servers: Server[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  servers = [];
});

const ledgerPath = (agent: TestAgent) => join(agent.dir, 'var-oxide', 'instances.json');
const ledger = (agent: TestAgent): Record<string, InstanceRecord> =>
  (readLedgerFile(ledgerPath(agent)) as { instances: Record<string, InstanceRecord> }).instances;
/** Replaces the (stopped) agent's instance ledger: the snapshot, with no journal after it. */
function writeLedger(agent: TestAgent, records: Record<string, InstanceRecord>): void {
  writeFileSync(ledgerPath(agent), JSON.stringify({ instances: records }));
  rmSync(`${ledgerPath(agent)}.log`, { force: true });
}
const ownedVnics = async (agent: TestAgent) => (await agent.host.links.listVnics()).map((v) => v.name).filter((n) => /^(ox|vopte)/.test(n) && n !== 'underlay0');
/** The agent's ledger record of `id` as a kill at some moment would leave it: its state and what is desired. */
function rewriteRecord(agent: TestAgent, id: string, runState: string, desired: string | null): InstanceRecord {
  const records = ledger(agent);
  records[id] = {
    ...records[id]!,
    runtime: { ...records[id]!.runtime, run_state: runState as InstanceRecord['runtime']['run_state'] },
    desired: desired === null ? null : { run_state: desired as 'stopped', migration_params: null },
  };
  writeLedger(agent, records);
  return records[id]!;
}
/** Halts a zone of the (stopped) agent's simulated host. */
async function haltZone(agent: TestAgent, zone: string): Promise<void> {
  const host = await SimHost.open({ stateDir: join(agent.dir, 'sim-host') });
  try {
    await host.zones.halt(zone);
  } finally {
    await host.close();
  }
}
const nic = (slot: number) => ({ name: `net${slot}`, ip: `172.16.0.${5 + slot}`, mac: `a8:40:25:f0:00:0${slot + 1}`, subnet: '172.16.0.0/22', vni: 10, slot });

describe('restart after a kill', () => {
  it('finishes the teardown of an instance killed between Propolis\'s Stopped and the zone\'s removal, reports it and forgets it', async () => {
    t = await startTestAgent();
    const { id, zone } = await runInstance(t, [nic(0), nic(1)]);
    expect((await t.host.zones.list()).map((z) => z.name)).toContain(zone);
    await t.stop();
    // The ledger as the monitor leaves it on observing Stopped (desired stopped reached), with
    // the zone and its three VNICs still there: the kill came before the teardown ended.
    const limit = rewriteRecord(t, id, 'stopped', null).reported_gen_limit!;
    const seen = t.nexus.requests.length;

    t = await t.restart();
    await t.running.agent.instances.whenGone(id);
    await t.running.agent.instances.idle();
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    expect(await ownedVnics(t)).toEqual([]);
    await t.stop();
    expect(ledger(t)[id]).toBeUndefined();
    const report = await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.indexOf(r) >= seen);
    expect(report.body).toMatchObject({ run_state: 'stopped' });
    expect(report.body.gen).toBeGreaterThan(limit);
  });

  it('reports stopped before forgetting an instance that reached it before the restart (Nexus may never have heard it)', async () => {
    t = await startTestAgent();
    const { id, runtime } = await runInstance(t);
    await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    await t.running.agent.instances.whenGone(id);
    await t.stop();
    // As the kill leaves it when it lands after Destroyed was recorded, before the report went
    // out: stopped, with the stop still desired, and Nexus holding stopping.
    const stopped = t.nexus.requests.filter((r) => instancePuts(id)(r) && r.body.run_state === 'stopped');
    for (const r of stopped) t.nexus.requests.splice(t.nexus.requests.indexOf(r), 1);
    const records = ledger(t);
    records[id] = { id, hardware: ensureBody('running', runtime).initial as never, migrate: null, guest_vnics: [], control_vnic: null, zone: null,
      runtime: { ...runtime, run_state: 'stopped', gen: 9 } as never, desired: { run_state: 'stopped', migration_params: null }, reported_gen_limit: 25 };
    writeLedger(t, records);

    t = await t.restart();
    const report = await nexusSees(t.nexus, id, 'stopped');
    expect(report.body.gen).toBeGreaterThan(25);
    await t.running.agent.instances.whenGone(id);
    await t.stop();
    expect(ledger(t)[id]).toBeUndefined();
  });

  it('finishes a stop whose VM was still starting when the agent was killed', async () => {
    t = await startTestAgent();
    const { id, zone } = await runInstance(t);
    await t.stop();
    // The monitor saw Starting after the stop was asked (desired stopped), then the kill came.
    rewriteRecord(t, id, 'starting', 'stopped');

    t = await t.restart();
    await nexusSees(t.nexus, id, 'stopped');
    await t.running.agent.instances.whenGone(id);
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    await t.stop();
    expect(ledger(t)[id]).toBeUndefined();
  });

  it('stays for a run asked while it was leaving the sled (the request came during its teardown)', async () => {
    t = await startTestAgent();
    const { id, runtime } = await runInstance(t);
    await t.stop();
    rewriteRecord(t, id, 'stopped', null);

    // The restarted agent tears the zone down to leave; Nexus asks for a run meanwhile.
    let halting: () => void = () => {};
    const halted = new Promise<void>((resolve) => { halting = resolve; });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => { release = resolve; });
    const dir = t.dir;
    const nexus = t.nexus;
    t = await startTestAgent({
      dir, nexus,
      wrapHost: (host) => withZones(host, { halt: async (name: string) => { halting(); await released; return host.zones.halt(name); } }),
    });
    await halted;
    const again = await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    expect(again.status).toBe(200);
    expect(again.body.run_state).toBe('starting');
    release();
    await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running' && r.body.gen > again.body.gen, 20_000);
    await t.running.agent.instances.idle();
    expect(t.running.agent.instances.get(id)?.current.run_state).toBe('running');
    // Its zone (the one it had, or a new one if the teardown had removed that) is running.
    expect((await t.host.zones.list()).map((z) => `${z.name}:${z.state}`)).toContain(`${zoneOf(t, id)}:running`);
  });

  it('keeps a failed instance failed across a restart: not provisioned again, still refusing a stop, destroyable', async () => {
    t = await startTestAgent();
    const { id, runtime, zone } = await runInstance(t);
    await t.host.crashPropolis(zone);
    const failed = await nexusSees(t.nexus, id, 'failed');
    await t.running.agent.instances.idle();
    expect(ledger(t)[id]).toMatchObject({ runtime: { run_state: 'failed' }, desired: null });
    const seen = t.nexus.requests.length;

    t = await t.restart();
    await t.running.agent.instances.idle();
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    expect(ledger(t)[id]?.runtime.run_state).toBe('failed');
    const again = await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.indexOf(r) >= seen);
    expect(again.body.run_state).toBe('failed');
    expect(again.body.gen).toBeGreaterThan(failed.body.gen);
    // Not provisioned again: nothing after the restart says starting or running.
    const after = t.nexus.requests.slice(seen).filter(instancePuts(id)).map((r) => r.body.run_state);
    expect(after).not.toContain('starting');
    expect(after).not.toContain('running');

    const stop = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    expect(stop.status).toBe(400);
    expect(stop.body.message).toMatch(/cannot stop instance in state "failed"/);
    const destroy = await t.request('PUT', `/instances/${id}`, ensureBody('destroyed', runtime));
    expect(destroy.status).toBe(200);
    expect(destroy.body.run_state).toBe('destroyed');
    await t.running.agent.instances.whenGone(id);
    await t.stop();
    expect(ledger(t)[id]).toBeUndefined();
  });

  it('fails a running instance whose VM went with its zone while the agent was down, rather than booting it again unasked', async () => {
    t = await startTestAgent();
    const { id, zone } = await runInstance(t);
    await t.stop();
    // As after the sled rebooted: zones have autoboot off, so the zone is only installed.
    await haltZone(t, zone);
    const seen = t.nexus.requests.length;

    t = await t.restart();
    const failed = await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.indexOf(r) >= seen && r.body.run_state === 'failed');
    expect(failed.body.run_state).toBe('failed');
    await t.running.agent.instances.idle();
    expect(ledger(t)[id]).toMatchObject({ runtime: { run_state: 'failed' }, desired: null });
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    const after = t.nexus.requests.slice(seen).filter(instancePuts(id)).map((r) => r.body.run_state);
    expect(after).not.toContain('starting');
  });

  it('runs again a VM that was rebooting when its zone went with the agent down: a reboot boots it afresh anyway', async () => {
    t = await startTestAgent();
    const { id, zone } = await runInstance(t);
    await t.stop();
    // The monitor had seen Rebooting (which clears what was desired), then the sled went down.
    rewriteRecord(t, id, 'rebooting', null);
    await haltZone(t, zone);
    const seen = t.nexus.requests.length;

    t = await t.restart();
    await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.indexOf(r) >= seen && r.body.run_state === 'running');
    expect(t.running.agent.instances.get(id)?.current.run_state).toBe('running');
  });

  it('a failure clears what was desired, so an old ledger with failed + stopped desired settles too', async () => {
    t = await startTestAgent();
    const { id, runtime, zone } = await runInstance(t);
    await t.stop();
    rewriteRecord(t, id, 'failed', 'stopped');

    t = await t.restart();
    await t.running.agent.instances.idle();
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    expect(await ownedVnics(t)).toEqual([]);
    expect(ledger(t)[id]).toMatchObject({ runtime: { run_state: 'failed' }, desired: null });
  });
});

describe('stop while Propolis is being ensured', () => {
  it('is a cancellation: the instance ends stopped, not failed, and leaves the sled', async () => {
    t = await startTestAgent();
    // A Propolis that takes PUT /instance and never answers: the stop lands while it is in flight.
    let ensured: () => void = () => {};
    const arrived = new Promise<void>((resolve) => { ensured = resolve; });
    const stuck = createServer((req) => {
      if (req.method === 'PUT' && req.url === '/instance') ensured();
    });
    servers.push(stuck);
    stuck.listen(0, '127.0.0.1');
    await once(stuck, 'listening');
    const port = (stuck.address() as { port: number }).port;
    t.host.reachable = async () => ({ host: '127.0.0.1', port });

    const id = randomUUID();
    const runtime = realRuntime();
    await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    await arrived;
    const zone = zoneOf(t, id);
    expect((await t.host.zones.list()).map((z) => z.name)).toContain(zone);
    const stop = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    expect(stop.status).toBe(200);
    expect(stop.body.run_state).toBe('stopping');
    await nexusSees(t.nexus, id, 'stopped');
    await t.running.agent.instances.whenGone(id);
    const states = t.nexus.requests.filter(instancePuts(id)).map((r) => r.body.run_state);
    expect(states).not.toContain('failed');
    expect(states.at(-1)).toBe('stopped');
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    await t.stop();
    expect(ledger(t)[id]).toBeUndefined();
  });
});

describe('a request Nexus sent before it heard the instance leave', () => {
  it('continues from the last state the sled reported, not the older initial, so no generation goes out twice', async () => {
    t = await startTestAgent();
    const { id, runtime } = await runInstance(t);
    await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    const stopped = await nexusSees(t.nexus, id, 'stopped');
    await t.running.agent.instances.whenGone(id);
    const last = Math.max(...t.nexus.requests.filter(instancePuts(id)).map((r) => r.body.gen));
    // Sent with the runtime Nexus had before the stop's reports reached it.
    const again = await t.request('PUT', `/instances/${id}`, ensureBody('running', { ...runtime, run_state: 'running', gen: 3 }));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ run_state: 'starting' });
    expect(again.body.gen).toBeGreaterThan(last);
    expect(again.body.gen).toBeGreaterThan(stopped.body.gen);
    await nexusSees(t.nexus, id, 'running');
    const gens = t.nexus.requests.filter(instancePuts(id)).map((r) => r.body.gen);
    expect(gens).toEqual([...gens].sort((x, y) => x - y));
  });
});

describe('a stop for an instance the sled no longer has', () => {
  it('answers with the state Nexus sent and keeps nothing in the ledger', async () => {
    t = await startTestAgent();
    const id = randomUUID();
    const runtime = realRuntime({ run_state: 'stopped', gen: 7 });
    const res = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ run_state: 'stopped', gen: 7 });
    await t.running.agent.instances.whenGone(id);
    expect(t.running.agent.instances.get(id)).toBeUndefined();
    await t.stop();
    expect(ledger(t)[id]).toBeUndefined();
  });
});
