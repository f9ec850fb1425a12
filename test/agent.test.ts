// The real agent on the simulated host, over real HTTP, as Nexus drives it: the whole instance
// lifecycle, what reaches the host (zone, VNICs, address, Propolis with the real properties),
// what reaches Nexus, failures at every phase, Nexus being down, and restarts.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GEN_LEASE } from '../src/instance.js';
import { Ledger, readLedgerFile, type Change } from '../src/ledger.js';
import { SimPropolis } from '../src/sim/propolis.js';
import { expectSchema } from './support/contract.js';
import { failLedgerWrites, holdLedgerWrites } from './support/ledger-faults.js';
import { simZoneRecord } from './support/counting-host.js';
import {
  POOL, ensureBody, instancePuts, nexusSees, propolisFmriOf, realRuntime, runInstance, startTestAgent, withZones, zoneOf, zoneReachesRunning, type TestAgent,
} from './support/agent.js';

let t: TestAgent | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('instance lifecycle', () => {
  it('provisions a running instance: zone, VNICs, address, Propolis with the real properties; Nexus sees running', async () => {
    t = await startTestAgent();
    const id = randomUUID();
    const runtime = realRuntime();
    const nic = { name: 'net0', ip: '172.16.0.5', mac: 'a8:40:25:f0:00:01', subnet: '172.16.0.0/22', vni: 10, slot: 0 };
    const res = await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime, [nic]));
    expect(res.status).toBe(200);
    expectSchema('sled-agent.json', 'InstanceRuntimeState', res.body);
    expect(res.body).toMatchObject({ run_state: 'starting', gen: 2 });

    const running = await nexusSees(t.nexus, id, 'running');
    expectSchema('nexus-internal.json', 'InstanceRuntimeState', running.body);
    expect(running.body.propolis_addr).toBe('[fd00:1122:3344:101::10]:12400');
    expect(running.body.gen).toBeGreaterThan(2);

    const zone = zoneOf(t, id);
    expect(zone).toMatch(/^oxz_propolis-server_[0-9a-f-]{36}$/);
    expect((await t.host.zones.list()).find((z) => z.name === zone)?.state).toBe('running');
    const config = await t.host.zones.config(zone);
    expect(config.brand).toBe('omicron1');
    expect(config.zonepath).toBe(`/zone/${zone}`);
    expect(config.devices.map((d) => d.match)).toEqual(['/dev/vmm/*', '/dev/vmmctl', '/dev/viona']);
    const nets = config.nets.map((n) => n.physical);
    expect(nets).toHaveLength(2);
    expect(nets[0]).toMatch(/^vopte\d+$/);
    expect(nets[1]).toMatch(/^oxControlInstance\d+$/);
    const vnics = await t.host.links.listVnics();
    expect(vnics.find((v) => v.name === nets[0])?.mac).toBe('a8:40:25:f0:00:01');
    const addr = await t.host.zones.exec(zone, ['ipadm', 'show-addr', '-p', '-o', 'ADDR', `${nets[1]}/omicron6`]);
    expect(addr.stdout.trim()).toBe('fd00:1122:3344:101::10/64');

    // Its Propolis SMF instance is named after the zone (vm-<the zone's id>), online, and
    // listening on the wildcard at the Propolis port, not on the instance's address.
    const smf = (await simZoneRecord(t.host, zone))?.services?.['svc:/system/illumos/propolis-server'];
    const vmId = propolisFmriOf(zone).split(':').at(-1)!;
    expect(Object.keys(smf?.instances ?? {})).toEqual([vmId]);
    expect(smf.instances[vmId]).toMatchObject({ state: 'online', pgs: { config: { props: { server_addr: '[::]:12400' } } } });

    const vm = await t.host.propolisFor(zone)!.snapshot();
    expect(vm.state).toBe('Running');
    expect(vm.request?.properties).toEqual({
      id,
      name: 'vm-one',
      description: expect.stringContaining(id),
      image_id: '00000000-0000-0000-0000-000000000000',
      bootrom_id: '00000000-0000-0000-0000-000000000000',
      memory: 2048,
      vcpus: 4,
    });
    expect(vm.request?.nics).toEqual([{ name: nets[0], slot: 0 }]);
  });

  it('stops: Nexus sees stopping then stopped, and the zone and VNICs are gone', async () => {
    t = await startTestAgent();
    const { id, runtime, zone } = await runInstance(t);
    expect((await t.host.zones.list()).map((z) => z.name)).toContain(zone);
    const stop = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    expect(stop.status).toBe(200);
    expect(stop.body.run_state).toBe('stopping');
    await nexusSees(t.nexus, id, 'stopped');
    await t.running.agent.instances.whenGone(id);
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    expect((await t.host.links.listVnics()).filter((v) => /^(ox|vopte)/.test(v.name))).toEqual([]);
    const gens = t.nexus.matching('PUT', `/instances/${id}`).map((r) => r.body.gen);
    expect(gens).toEqual([...gens].sort((a, b) => a - b));
    expect(new Set(gens).size).toBe(gens.length);
  });

  it('a run asked while the stop is under way waits for the teardown, then runs in a new zone', async () => {
    // Propolis takes 300 ms per VM step, so the run arrives while the old VM is still going down.
    t = await startTestAgent({ config: { host: { latency: { vm_step: 300 } } } });
    const { id, runtime, zone } = await runInstance(t);
    const stop = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    expect(stop.body.run_state).toBe('stopping');
    const run = await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    expect(run.status).toBe(200);
    expect(run.body.run_state).toBe('starting');
    const running = await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running' && r.body.gen > run.body.gen, 20_000);
    const states = t.nexus.matching('PUT', `/instances/${id}`).map((r) => r.body.run_state);
    expect(states).not.toContain('failed');
    // The old VM went down first: Nexus heard it stopped before it heard the new one run.
    expect(states.lastIndexOf('stopped')).toBeGreaterThan(states.indexOf('starting'));
    expect(states.lastIndexOf('stopped')).toBeLessThan(states.lastIndexOf('running'));
    const now = zoneOf(t, id);
    expect(now).not.toBe(zone);
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
    expect((await t.host.propolisFor(now)!.snapshot()).state).toBe('Running');
    expect(running.body.gen).toBe(Math.max(...t.nexus.matching('PUT', `/instances/${id}`).map((r) => r.body.gen)));
  });

  it('reboots a running instance and comes back to running', async () => {
    t = await startTestAgent();
    const { id, runtime, report: first } = await runInstance(t);
    const res = await t.request('PUT', `/instances/${id}`, ensureBody('reboot', runtime));
    expect(res.body.run_state).toBe('rebooting');
    await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running' && r.body.gen > first.body.gen + 1, 20_000);
  });

  it('provisions a migration target: zone and Propolis with the migrate request, no Run, Nexus told as it arrives', async () => {
    t = await startTestAgent();
    const id = randomUUID();
    const migrationId = randomUUID();
    const srcPropolis = randomUUID();
    const dst = randomUUID();
    const runtime = realRuntime({ run_state: 'migrating', migration_id: migrationId, propolis_id: dst, dst_propolis_id: dst });
    const body = {
      ...ensureBody('migrating', runtime),
      target: { run_state: 'migrating', migration_params: { migration_id: migrationId, dst_propolis_id: dst } },
      migrate: { src_propolis_id: srcPropolis, src_propolis_addr: '[fd00:1122:3344:102::10]:12400' },
    };
    const res = await t.request('PUT', `/instances/${id}`, body);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ run_state: 'migrating', migration_id: migrationId, gen: runtime.gen });
    // The zone is named (its own id, not the Propolis id) by the time the PUT is answered.
    const zone = zoneOf(t, id);
    // Events all the way: the zone running (subscribed before its state is read), its Propolis SMF
    // instance online, then the ensure.
    await zoneReachesRunning(t.host, zone);
    await t.host.events.waitForService(zone, propolisFmriOf(zone), ['online'], { timeoutMs: 20_000 });
    const propolis = t.host.propolisFor(zone)!;
    expect((await propolis.ensured()).migrate).toEqual({
      migration_id: migrationId, src_addr: '[fd00:1122:3344:102::10]:12400', src_uuid: srcPropolis,
    });
    // The VM comes from the source: the agent does not Run it.
    expect(propolis.state).toBe('Creating');
    // As it arrives (Propolis migrating, then running), Nexus hears it one generation at a time
    // from the one it sent: no skip (the restart rule's) for a target that just arrived.
    propolis.forceState('Migrating');
    propolis.forceState('Running');
    await nexusSees(t.nexus, id, 'running');
    const gens = t.nexus.matching('PUT', `/instances/${id}`).map((r) => r.body.gen);
    expect(gens).toEqual(gens.map((_, i) => runtime.gen + 1 + i));
  });

  it('keeps a migration\'s source on this sled across a restart until its VM has left, then removes its zone', async () => {
    t = await startTestAgent();
    const { id, zone: source, report } = await runInstance(t);
    const migrationId = randomUUID();
    const dst = randomUUID();
    // Nexus: the source first (running -> migrating), then the target, here on the same sled.
    const src = await t.request('PUT', `/instances/${id}`, {
      ...ensureBody('migrating', { ...report.body }),
      target: { run_state: 'migrating', migration_params: { migration_id: migrationId, dst_propolis_id: dst } },
    });
    expect(src.status).toBe(200);
    const runtime = realRuntime({
      run_state: 'migrating', migration_id: migrationId, propolis_id: dst, dst_propolis_id: dst, gen: src.body.gen + 1,
      propolis_addr: '[fd00:1122:3344:101::11]:12400',
    });
    const res = await t.request('PUT', `/instances/${id}`, {
      ...ensureBody('migrating', runtime),
      target: { run_state: 'migrating', migration_params: { migration_id: migrationId, dst_propolis_id: dst } },
      migrate: { src_propolis_id: report.body.propolis_id, src_propolis_addr: '[fd00:1122:3344:101::10]:12400' },
    });
    expect(res.status).toBe(200);
    const target = zoneOf(t, id);
    expect(target).not.toBe(source);
    await zoneReachesRunning(t.host, target);
    // A second migration of it on this sled while the source is still here: refused, saying why.
    const again = await t.request('PUT', `/instances/${id}`, {
      ...ensureBody('migrating', { ...runtime, propolis_id: randomUUID() }),
      migrate: { src_propolis_id: dst, src_propolis_addr: '[fd00:1122:3344:101::11]:12400' },
    });
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/the source .* has not left yet/);

    // Killed mid-migration: the source's zone is claimed, so it is adopted, not removed.
    t = await t.restart();
    expect(t.running.summary.removedZones).not.toContain(source);
    expect(t.running.summary.adopted).toEqual(expect.arrayContaining([source, target]));
    expect(t.running.agent.instances.get(id)?.zone).toBe(target);

    // The VM leaves the source: its zone goes, and so does its record; the target stays.
    await zoneReachesRunning(t.host, source);
    await t.host.events.waitForService(source, propolisFmriOf(source), ['online'], { timeoutMs: 20_000 });
    t.host.propolisFor(source)!.forceState('Destroyed');
    await vi.waitFor(async () => expect((await t!.host.zones.list()).map((z) => z.name)).not.toContain(source), { timeout: 20_000, interval: 50 });
    await t.running.agent.instances.idle();
    expect(t.running.agent.instances.claimedZones().has(source)).toBe(false);
    expect(t.running.agent.instances.get(id)?.zone).toBe(target);
  });

  it('refuses what the original panicked on or got wrong, with a 400 and the envelope, and stays up', async () => {
    t = await startTestAgent();
    const noAddr = await t.request('PUT', `/instances/${randomUUID()}`, ensureBody('running', realRuntime({ propolis_addr: null })));
    expect(noAddr.status).toBe(400);
    expectSchema('sled-agent.json', 'Error', noAddr.body);
    expect(noAddr.body.message).toMatch(/propolis_addr is required/);
    // It goes on the zone's control VNIC as <ip>/64, and the sled reaches Propolis there.
    const v4 = await t.request('PUT', `/instances/${randomUUID()}`, ensureBody('running', realRuntime({ propolis_addr: '127.0.0.1:12400' })));
    expect(v4.status).toBe(400);
    expect(v4.body.message).toBe('initial.runtime.propolis_addr "127.0.0.1:12400" must be an IPv6 socket address ([ip]:port)');
    const elsewhere = await t.request('PUT', `/instances/${randomUUID()}`, ensureBody('running', realRuntime({ propolis_addr: '[fd00:1122:3344:102::10]:12400' })));
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body.message).toBe('initial.runtime.propolis_addr "[fd00:1122:3344:102::10]:12400" is not in this sled\'s subnet fd00:1122:3344:101::/64: Propolis must be reachable from the sled');
    expect(t.running.agent.instances.size).toBe(0);
    const badTransition = await t.request('PUT', `/instances/${randomUUID()}`, ensureBody('reboot'));
    expect(badTransition.status).toBe(400);
    expect(badTransition.body.message).toMatch(/cannot reboot instance in state "creating"/);
    const ok = await t.request('PUT', `/instances/${randomUUID()}`, ensureBody('stopped'));
    expect(ok.status).toBe(200);
  });

  it('refuses to run a new instance Nexus believes up (it has no VM here), and stops or destroys one at once', async () => {
    t = await startTestAgent();
    for (const [initial, target] of [['running', 'running'], ['starting', 'running'], ['rebooting', 'reboot'], ['stopping', 'running']] as const) {
      const id = randomUUID();
      const res = await t.request('PUT', `/instances/${id}`, ensureBody(target, realRuntime({ run_state: initial, gen: 5 })));
      expect(res.status, `${initial} -> ${target}`).toBe(400);
      expectSchema('sled-agent.json', 'Error', res.body);
      expect(res.body.message).toContain(`initial.runtime.run_state is "${initial}", but instance ${id} has no VM on this sled`);
      expect(t.running.agent.instances.get(id)).toBeUndefined();
    }
    for (const [initial, target] of [['stopping', 'stopped'], ['running', 'stopped'], ['migrating', 'destroyed']] as const) {
      const id = randomUUID();
      const res = await t.request('PUT', `/instances/${id}`, ensureBody(target, realRuntime({ run_state: initial, gen: 5 })));
      expect(res.status, `${initial} -> ${target}`).toBe(200);
      expect(res.body).toMatchObject({ run_state: target, gen: 6 });
      await t.running.agent.instances.whenGone(id);
    }
    // Nothing was made for any of them: no zone beyond the warm pool's, no instance left.
    expect(t.running.agent.instances.size).toBe(0);
    const claimed = t.running.agent.instances.claimedZones();
    expect((await t.host.zones.list()).map((z) => z.name).filter((n) => !claimed.has(n))).toEqual([]);
    // A new instance from "stopped" (Nexus starting one it stopped before) still runs.
    const id = randomUUID();
    const runtime = realRuntime({ run_state: 'stopped', gen: 5 });
    expect((await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime))).body).toMatchObject({ run_state: 'starting', gen: 6 });
    await nexusSees(t.nexus, id, 'running');
  });

  it('answers 500 and leaves nothing on the host when the request cannot be recorded', async () => {
    t = await startTestAgent();
    // A first write, so the instance ledger has a journal to append to.
    expect((await t.request('PUT', `/instances/${randomUUID()}`, ensureBody('stopped'))).status).toBe(200);
    await t.running.agent.instances.idle();
    // The journal cannot be made durable (its appends use datasync, which nothing else here
    // does), and the snapshot's place is taken by a non-empty directory, so a compaction's atomic
    // rename cannot land either.
    const ledger = join(t.config.data_dir, 'instances.json');
    rmSync(ledger, { force: true });
    mkdirSync(join(ledger, 'blocker'), { recursive: true });
    const probePath = join(t.config.data_dir, 'probe');
    const probe = await open(probePath, 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    rmSync(probePath);
    const datasync = proto.datasync;
    proto.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    try {
      const id = randomUUID();
      const res = await t.request('PUT', `/instances/${id}`, ensureBody('running'));
      expect(res.status).toBe(500);
      expectSchema('sled-agent.json', 'Error', res.body);
      await t.running.agent.instances.idle();
      expect(t.running.agent.instances.get(id)).toBeUndefined();
      expect((await t.host.zones.list()).filter((z) => z.name.startsWith('oxz_'))).toEqual([]);
      expect((await t.host.links.listVnics()).filter((v) => /^(ox|vopte)/.test(v.name))).toEqual([]);
    } finally {
      proto.datasync = datasync;
      rmSync(ledger, { recursive: true, force: true });
    }
  });

  it('answers a repeated PUT only once the first one is recorded, and refuses both when it is not', async () => {
    t = await startTestAgent();
    const writes = holdLedgerWrites();
    try {
      const id = randomUUID();
      const first = t.request('PUT', `/instances/${id}`, ensureBody('running'));
      await vi.waitFor(() => expect(t!.running.agent.instances.get(id)).toBeDefined());
      const instance = t.running.agent.instances.get(id)!;
      const ensure = instance.ensure.bind(instance);
      let entered!: () => void;
      const repeated = new Promise<void>((r) => { entered = r; });
      instance.ensure = (target) => {
        const answer = ensure(target);
        entered();
        return answer;
      };
      const repeat = t.request('PUT', `/instances/${id}`, ensureBody('running'));
      await repeated;
      writes.release();
      expect((await first).status).toBe(500);
      expect((await repeat).status).toBe(500);
    } finally {
      writes.restore();
    }
  });

  it('answers a request repeated after its write failed only once a write of it lands', async () => {
    t = await startTestAgent();
    const { id, runtime } = await runInstance(t);
    const restore = failLedgerWrites();
    try {
      expect((await t.request('PUT', `/instances/${id}`, ensureBody('reboot', runtime))).status).toBe(500);
      // In memory the reboot is asked; on disk it is not. Nexus's retry finds nothing to change,
      // which is no reason to call it recorded.
      const again = await t.request('PUT', `/instances/${id}`, ensureBody('reboot', runtime));
      expect(again.status).toBe(500);
      expectSchema('sled-agent.json', 'Error', again.body);
    } finally {
      restore();
    }
    expect((await t.request('PUT', `/instances/${id}`, ensureBody('reboot', runtime))).status).toBe(200);
  });

  it('refuses a request on a running instance it cannot record, and leaves the VM running', async () => {
    t = await startTestAgent();
    const { id, runtime, zone } = await runInstance(t);
    const restore = failLedgerWrites();
    try {
      const res = await t.request('PUT', `/instances/${id}`, ensureBody('reboot', runtime));
      expect(res.status).toBe(500);
      expectSchema('sled-agent.json', 'Error', res.body);
      await t.running.agent.instances.idle();
    } finally {
      restore();
    }
    expect((await t.host.zones.list()).find((z) => z.name === zone)?.state).toBe('running');
    // Not left stuck: the next request is carried out.
    expect((await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime))).status).toBe(200);
    await nexusSees(t.nexus, id, 'stopped');
    await t.running.agent.instances.whenGone(id);
    expect((await t.host.zones.list()).map((z) => z.name)).not.toContain(zone);
  });

  it('implements PUT /disks (the original panicked): attach reaches Nexus as attached', async () => {
    t = await startTestAgent();
    const disk = randomUUID();
    const instance = randomUUID();
    const res = await t.request('PUT', `/disks/${disk}`, {
      initial_runtime: { disk_state: { state: 'detached' }, gen: 1, time_updated: '2022-06-08T21:14:44.000Z' },
      target: { state: 'attached', instance },
    });
    expect(res.status).toBe(200);
    expect(res.body.disk_state).toEqual({ state: 'attaching', instance });
    const put = await t.nexus.waitFor((r) => r.method === 'PUT' && r.url === `/disks/${disk}`);
    expectSchema('nexus-internal.json', 'DiskRuntimeState', put.body);
    expect(put.body.disk_state).toEqual({ state: 'attached', instance });
  });
});

describe('disks over HTTP', () => {
  it('a disk request it cannot record is refused as if it never came: the retry runs it, and Nexus hears the result', async () => {
    t = await startTestAgent();
    const disk = randomUUID();
    const instance = randomUUID();
    const body = {
      initial_runtime: { disk_state: { state: 'detached' }, gen: 1, time_updated: '2022-06-08T21:14:44.000Z' },
      target: { state: 'attached', instance },
    };
    expect((await t.request('PUT', `/disks/${disk}`, { ...body, target: { state: 'detached' } })).status).toBe(200);
    const restore = failLedgerWrites();
    try {
      expect((await t.request('PUT', `/disks/${disk}`, body)).status).toBe(500);
    } finally {
      restore();
    }
    const retry = await t.request('PUT', `/disks/${disk}`, body);
    expect(retry.status).toBe(200);
    expect(retry.body.disk_state).toEqual({ state: 'attaching', instance });
    const put = await t.nexus.waitFor((r) => r.method === 'PUT' && r.url === `/disks/${disk}` && r.body.disk_state.state === 'attached');
    expect(put.body.disk_state).toEqual({ state: 'attached', instance });
  });
});

describe('services and storage over HTTP', () => {
  it('PUT /services starts a zone per service; a request dropping one is a 409 naming it', async () => {
    t = await startTestAgent();
    const services = [{ name: 'internal-dns', addresses: ['fd00:1122:3344:1::1'], gz_addresses: ['fd00:1122:3344:1::2'] }];
    const res = await t.request('PUT', '/services', { services });
    expect(res.status).toBe(204);
    expect((await t.host.zones.list()).find((z) => z.name === 'oxz_internal-dns')?.state).toBe('running');
    const again = await t.request('PUT', '/services', { services: [{ name: 'nexus', addresses: ['fd00:1122:3344:1::3'] }] });
    expect(again.status).toBe(409);
    expectSchema('sled-agent.json', 'Error', again.body);
    expect(again.body.message).toContain('internal-dns');
  });

  it('PUT /filesystem makes the dataset and its zone; Nexus gets zpool_put before dataset_put', async () => {
    t = await startTestAgent();
    await t.running.registered;
    const res = await t.request('PUT', '/filesystem', {
      zpool_id: 'd462a7f7-b628-40fe-80ff-4e4189e2d62b', dataset_kind: { type: 'crucible' }, address: '[fd00:1122:3344:101::20]:32345',
    });
    expect(res.status).toBe(204);
    const datasetPut = await t.nexus.waitFor((r) => r.method === 'PUT' && r.url.startsWith('/zpools/d462a7f7-b628-40fe-80ff-4e4189e2d62b/dataset/'));
    expect(datasetPut.body).toEqual({ address: '[fd00:1122:3344:101::20]:32345', kind: 'crucible' });
    const zpoolPut = t.nexus.requests.findIndex((r) => r.method === 'PUT' && r.url === `/sled_agents/${t!.config.id}/zpools/d462a7f7-b628-40fe-80ff-4e4189e2d62b`);
    expect(zpoolPut).toBeGreaterThanOrEqual(0);
    expect(zpoolPut).toBeLessThan(t.nexus.requests.indexOf(datasetPut));
    expect(await t.host.datasets.exists(`${POOL}/crucible`)).toBe(true);
    const unknown = await t.request('PUT', '/filesystem', {
      zpool_id: randomUUID(), dataset_kind: { type: 'crucible' }, address: '[fd00:1122:3344:101::21]:32345',
    });
    expect(unknown.status).toBe(404);
  });
});

describe('registration', () => {
  it('retries a registration Nexus refused with a 4xx, as the original does, then reports storage', async () => {
    const { FakeNexus, refusingFirst } = await import('./support/fake-nexus.js');
    const nexus = await FakeNexus.start();
    nexus.respond = refusingFirst((r) => r.method === 'POST' && r.url.startsWith('/sled_agents/'), 2);
    t = await startTestAgent({ nexus });
    await t.running.registered;
    const posts = t.nexus.requests.filter((r) => r.method === 'POST' && r.url === `/sled_agents/${t!.config.id}`);
    expect(posts).toHaveLength(3);
    expect(t.running.agent.registered).toBe(true);
    const zpoolPut = await t.nexus.waitFor((r) => r.method === 'PUT' && r.url.startsWith(`/sled_agents/${t!.config.id}/zpools/`));
    expect(t.nexus.requests.indexOf(zpoolPut)).toBeGreaterThan(t.nexus.requests.indexOf(posts[2]!));
  });
});

describe('storage start-up', () => {
  it('lists the pools again at the next PUT /filesystem when the host could not list them at start-up', async () => {
    let failures = 1;
    t = await startTestAgent({
      wrapHost: (host) => ({
        ...withZones(host, {}),
        datasets: Object.assign(Object.create(host.datasets) as typeof host.datasets, {
          listPools: () => (failures-- > 0 ? Promise.reject(Object.assign(new Error('zpool list: EAGAIN'), { code: 'EAGAIN' })) : host.datasets.listPools()),
        }),
      }),
    });
    await t.running.registered;
    const res = await t.request('PUT', '/filesystem', {
      zpool_id: 'd462a7f7-b628-40fe-80ff-4e4189e2d62b', dataset_kind: { type: 'crucible' }, address: '[fd00:1122:3344:101::20]:32345',
    });
    expect(res.status).toBe(204);
    await t.nexus.waitFor((r) => r.method === 'PUT' && r.url === `/sled_agents/${t!.config.id}/zpools/d462a7f7-b628-40fe-80ff-4e4189e2d62b`);
    await t.nexus.waitFor((r) => r.method === 'PUT' && r.url.startsWith('/zpools/d462a7f7-b628-40fe-80ff-4e4189e2d62b/dataset/'));
  });
});

describe('storage reports', () => {
  it('retries a zpool_put and a dataset_put Nexus refused with a 4xx, as the original does', async () => {
    const { FakeNexus, refusingFirst } = await import('./support/fake-nexus.js');
    const nexus = await FakeNexus.start();
    const zpool = refusingFirst((r) => r.method === 'PUT' && /^\/sled_agents\/[^/]+\/zpools\//.test(r.url), 1, 404);
    const dataset = refusingFirst((r) => r.method === 'PUT' && r.url.includes('/dataset/'), 1, 404);
    nexus.respond = (r) => (r.url.includes('/dataset/') ? dataset(r) : zpool(r));
    t = await startTestAgent({ nexus });
    await t.running.registered;
    expect((await t.request('PUT', '/filesystem', {
      zpool_id: 'd462a7f7-b628-40fe-80ff-4e4189e2d62b', dataset_kind: { type: 'crucible' }, address: '[fd00:1122:3344:101::20]:32345',
    })).status).toBe(204);
    await t.nexus.waitForCount((r) => r.method === 'PUT' && r.url.startsWith('/zpools/d462a7f7-b628-40fe-80ff-4e4189e2d62b/dataset/'), 2);
    const zpoolPuts = t.nexus.requests.filter((r) => r.method === 'PUT' && r.url === `/sled_agents/${t!.config.id}/zpools/d462a7f7-b628-40fe-80ff-4e4189e2d62b`);
    expect(zpoolPuts).toHaveLength(2);
  });
});

describe('failures', () => {
  it('marks the instance failed and tells Nexus when its zone is deleted before Propolis is up', async () => {
    // A long network milestone leaves time to pull the zone away mid-provisioning.
    t = await startTestAgent({ config: { host: { latency: { network: 60_000 } } } });
    const id = randomUUID();
    const runtime = realRuntime();
    await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    // Named when the PUT is answered (no warm pool); running at once if it is already.
    const zone = zoneOf(t, id);
    await zoneReachesRunning(t.host, zone);
    await t.host.simulateZoneFailure(zone);
    const failed = await nexusSees(t.nexus, id, 'failed');
    expectSchema('nexus-internal.json', 'InstanceRuntimeState', failed.body);
    await t.running.agent.instances.idle();
    expect((await t.host.links.listVnics()).filter((v) => /^(ox|vopte)/.test(v.name))).toEqual([]);
    // Still tracked, so Nexus can destroy it.
    const destroy = await t.request('PUT', `/instances/${id}`, ensureBody('destroyed', runtime));
    expect(destroy.status).toBe(200);
    expect(destroy.body.run_state).toBe('destroyed');
  });

  it('marks the instance failed when its zone goes away while it runs', async () => {
    t = await startTestAgent();
    const { id } = await runInstance(t);
    await t.host.simulateZoneFailure(zoneOf(t, id));
    await nexusSees(t.nexus, id, 'failed');
  });

  it('keeps monitoring through a Propolis outage it recovers from', async () => {
    t = await startTestAgent();
    const { id, runtime, zone } = await runInstance(t);
    // Propolis stops answering for a while (its SMF instance stays online), then is back on the
    // same address with the same VM.
    const propolis = t.host.propolisFor(zone)!;
    const { host, port } = propolis.address;
    const snapshot = propolis.snapshot();
    await propolis.crash();
    await new Promise((r) => setTimeout(r, 300));
    const revived = await SimPropolis.start({ host, port, initial: snapshot });
    try {
      // The monitor is still there: a stop goes through Propolis and its states reach Nexus.
      const stop = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
      expect(stop.body.run_state).toBe('stopping');
      await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'stopped', 20_000);
      expect(revived.snapshot().state).not.toBe('Running');
    } finally {
      await revived.close();
    }
  });

  it('marks the instance failed when Propolis dies (its SMF instance leaves online)', async () => {
    t = await startTestAgent();
    const { id } = await runInstance(t);
    await t.host.crashPropolis(zoneOf(t, id));
    const failed = await nexusSees(t.nexus, id, 'failed');
    expect(failed.body.gen).toBeGreaterThan(2);
  });

  it('still notices Propolis dying after its watch reached its deadline (a timer lasts at most 24.8 days)', async () => {
    let expired = 0;
    t = await startTestAgent({
      wrapHost: (host) => ({
        ...host, kind: host.kind, links: host.links, datasets: host.datasets, zones: host.zones, network: host.network,
        reachable: (zone, addr) => host.reachable(zone, addr), close: () => host.close(),
        events: {
          ...host.events,
          subscribe: (listener, zone) => host.events.subscribe(listener, zone),
          waitForZoneRunning: (zone, options) => host.events.waitForZoneRunning(zone, options),
          // The first wait for Propolis to leave online reaches its deadline at once, as one
          // armed for 2^31 - 1 ms does after 24.8 days.
          waitForService: (zone, fmri, states, options) => {
            if (states.includes('maintenance') && expired++ === 0) {
              return Promise.reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
            }
            return host.events.waitForService(zone, fmri, states, options);
          },
        },
      }),
    });
    const { id } = await runInstance(t);
    await vi.waitFor(() => expect(expired).toBe(2), { timeout: 10_000 });
    await t.host.crashPropolis(zoneOf(t, id));
    await nexusSees(t.nexus, id, 'failed');
  });

  it('delivers the latest state once Nexus comes back after being down', async () => {
    t = await startTestAgent();
    const id = randomUUID();
    const runtime = realRuntime();
    let down = true;
    t.nexus.respond = (r) => (down && r.url.startsWith('/instances/') ? { status: 503, body: 'down' } : { status: 204 });
    await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    await t.nexus.waitForCount((r) => instancePuts(id)(r), 3);
    down = false;
    const ok = await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running' && t!.nexus.requests.indexOf(r) > 0, 20_000);
    expect(ok.body.run_state).toBe('running');
    // Nothing older arrives after the newest.
    await t.running.agent.instances.idle();
    const after = t.nexus.matching('PUT', `/instances/${id}`);
    expect(after.at(-1)!.body.gen).toBe(Math.max(...after.map((r) => r.body.gen)));
  });
});

describe('generations reported ahead of the ledger', () => {
  /** The instance's record as the ledger on disk has it now. */
  const onDisk = (t: TestAgent, id: string) =>
    (readLedgerFile(join(t.config.data_dir, 'instances.json')) as { instances: Record<string, unknown> }).instances[id] as
      { runtime: { gen: number }; reported_gen_limit?: number } | undefined;

  it('reports without waiting for the ledger write, but never past the limit already on disk', async () => {
    // Every ledger write takes 150 ms more here, so reports and writes visibly overlap.
    const original = Ledger.prototype.commit;
    Ledger.prototype.commit = async function slowCommit(this: Ledger<unknown>, ...changed: Change[]) {
      await new Promise((r) => setTimeout(r, 150));
      return original.apply(this, changed);
    };
    try {
      t = await startTestAgent();
      const id = randomUUID();
      const runtime = realRuntime();
      const seen: Array<{ state: string; gen: number; diskGen: number; diskLimit: number }> = [];
      t.nexus.respond = (rec) => {
        if (instancePuts(id)(rec)) {
          const record = onDisk(t!, id);
          seen.push({
            state: rec.body.run_state, gen: rec.body.gen,
            diskGen: record?.runtime.gen ?? 0, diskLimit: record ? record.reported_gen_limit ?? record.runtime.gen + 1 : 0,
          });
        }
        return { status: 204 };
      };
      await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
      const first = await nexusSees(t.nexus, id, 'running');
      await t.request('PUT', `/instances/${id}`, ensureBody('reboot', runtime));
      await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running' && r.body.gen > first.body.gen, 20_000);
      expect(seen.length).toBeGreaterThanOrEqual(3);
      // The safety rule: Nexus never hears a generation the ledger on disk does not cover.
      expect(seen.filter((r) => r.gen > r.diskLimit)).toEqual([]);
      // And the point of it: during the reboot, reports ran more than one generation ahead of
      // the runtime on disk (waiting for each write allows one at most).
      expect(Math.max(...seen.map((r) => r.gen - r.diskGen))).toBeGreaterThanOrEqual(2);
    } finally {
      Ledger.prototype.commit = original;
    }
  });

  it('holds a report past the limit on disk while its write fails, and sends it once a write succeeds', async () => {
    t = await startTestAgent();
    const { id, report: first } = await runInstance(t);
    const instance = t.running.agent.instances.get(id)!;
    await instance.idle();
    const limit = onDisk(t, id)!.reported_gen_limit!;
    const seen: Array<{ gen: number; diskLimit: number }> = [];
    t.nexus.respond = (rec) => {
      if (instancePuts(id)(rec)) seen.push({ gen: rec.body.gen, diskLimit: onDisk(t!, id)!.reported_gen_limit! });
      return { status: 204 };
    };
    const restore = failLedgerWrites();
    try {
      // Reboots until the instance's generation passes the limit on disk; each request is
      // refused (it cannot be recorded), and each reboot goes on.
      while (instance.current.gen <= limit) {
        if (instance.current.run_state === 'running') {
          expect((await t.request('PUT', `/instances/${id}`, ensureBody('reboot', realRuntime({ gen: first.body.gen })))).status).toBe(500);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      restore();
    }
    const past = await t.nexus.waitFor((r) => instancePuts(id)(r) && r.body.gen > limit, 20_000);
    expect(past.body.gen).toBeGreaterThan(limit);
    // Nexus never heard a generation the ledger on disk did not cover.
    expect(seen.filter((r) => r.gen > r.diskLimit)).toEqual([]);
    await nexusSees(t.nexus, id, 'running');
  });

  it('continues above the limit on disk after a restart, so Nexus never sees an old generation again', async () => {
    t = await startTestAgent();
    const { id, report: before } = await runInstance(t);
    const count = t.nexus.matching('PUT', `/instances/${id}`).length;
    await t.stop();
    const limit = onDisk(t, id)!.reported_gen_limit!;
    expect(limit).toBe(before.body.gen + GEN_LEASE);

    t = await t.restart();
    const again = await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.filter(instancePuts(id)).indexOf(r) >= count);
    expect(again.body.run_state).toBe('running');
    expect(again.body.gen).toBeGreaterThan(limit);
  });
});

describe('the instance ledger', () => {
  it('journals an observed state as the record\'s state fields, not the record with its cloud-init again', async () => {
    t = await startTestAgent();
    const id = randomUUID();
    const cloudInit = Buffer.alloc(24 * 1024, 7).toString('base64');
    const body = ensureBody('running');
    await t.request('PUT', `/instances/${id}`, { ...body, initial: { ...body.initial, cloud_init_bytes: cloudInit } });
    const running = await nexusSees(t.nexus, id, 'running');
    // A graceful stop lets the writes in flight land, and leaves the journal as it is (an open compacts it).
    const count = t.nexus.matching('PUT', `/instances/${id}`).length;
    await t.stop();

    const path = join(t.config.data_dir, 'instances.json');
    const entries = readFileSync(`${path}.log`, 'utf8').split('\n').filter((l) => l !== '').slice(1)
      .map((l) => JSON.parse(l) as { t?: string; k?: string; f?: string; v?: any });
    const mine = entries.filter((e) => e.k === id);
    // The request's write carried the record whole (into the snapshot, the ledger's first write,
    // or the log); every observation after it only its state fields.
    const firstField = mine.findIndex((e) => e.f !== undefined);
    expect(firstField).toBeGreaterThanOrEqual(0);
    expect(mine.slice(firstField).filter((e) => e.f === undefined)).toEqual([]);
    expect(mine.filter((e) => JSON.stringify(e).includes(cloudInit)).length).toBeLessThanOrEqual(1);
    const fields = mine.filter((e) => e.f !== undefined);
    expect(fields.length).toBeGreaterThan(0);
    expect(new Set(fields.map((e) => e.f))).toEqual(new Set(['runtime', 'desired', 'reported_gen_limit']));
    expect(fields.filter((e) => e.f === 'runtime').at(-1)?.v).toMatchObject({ run_state: 'running', gen: running.body.gen });

    // Read back as a restart reads it: the latest state, with the hardware as it was requested.
    const record = (readLedgerFile(path) as { instances: Record<string, any> }).instances[id];
    expect(record.runtime).toMatchObject({ run_state: 'running', gen: running.body.gen });
    expect(record.hardware.cloud_init_bytes).toBe(cloudInit);
    t = await startTestAgent({ dir: t.dir, nexus: t.nexus });
    const again = await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.filter(instancePuts(id)).indexOf(r) >= count);
    expect(again.body).toMatchObject({ run_state: 'running' });
    expect(again.body.gen).toBeGreaterThan(running.body.gen);
  });
});

describe('restart', () => {
  it('adopts a running instance after a graceful restart: same zone, same VNICs, state reported again', async () => {
    t = await startTestAgent();
    const { id, runtime, zone, report: before } = await runInstance(t);
    const vnicsBefore = (await t.host.links.listVnics()).map((v) => v.name).sort();
    const count = t.nexus.matching('PUT', `/instances/${id}`).length;

    t = await t.restart();
    expect(zoneOf(t, id)).toBe(zone);
    expect(t.running.summary.adopted).toContain(zone);
    expect(t.running.summary.removedZones).toEqual([]);
    const again = await t.nexus.waitFor((r) => instancePuts(id)(r) && t!.nexus.requests.filter(instancePuts(id)).indexOf(r) >= count);
    expect(again.body.run_state).toBe('running');
    expect(again.body.gen).toBeGreaterThan(before.body.gen);
    expect((await t.host.links.listVnics()).map((v) => v.name).sort()).toEqual(vnicsBefore);
    // And it still answers for the instance.
    const stop = await t.request('PUT', `/instances/${id}`, ensureBody('stopped', runtime));
    expect(stop.body.run_state).toBe('stopping');
    await nexusSees(t.nexus, id, 'stopped');
  });

  it('removes only orphans: zones and VNICs with our prefixes that no ledger claims', async () => {
    t = await startTestAgent();
    await t.host.links.createVnic({ name: 'oxControlInstance77', link: 'stub0' });
    await t.host.zones.configure({ name: 'oxz_orphan', brand: 'omicron1', zonepath: '/zone/oxz_orphan', nets: [{ physical: 'oxControlInstance77' }], devices: [], datasets: [] });
    await t.host.zones.install('oxz_orphan', '/opt/oxide/orphan.tar.gz');
    await t.host.zones.configure({ name: 'not-ours', brand: 'omicron1', zonepath: '/zone/not-ours', nets: [], devices: [], datasets: [] });
    await t.host.links.createVnic({ name: 'oxStray3', link: 'stub0' });
    t = await t.restart();
    expect(t.running.summary.removedZones).toEqual(['oxz_orphan']);
    expect(t.running.summary.removedVnics).toEqual(['oxStray3']);
    const zones = (await t.host.zones.list()).map((z) => z.name);
    expect(zones).toEqual(['not-ours']);
    // The global zone's underlay VNIC is not an orphan.
    expect((await t.host.links.listVnics()).map((v) => v.name)).toEqual(['underlay0']);
  });

  it('starts though an orphan cannot be removed, removing the others and trying it again at the next start', async () => {
    t = await startTestAgent();
    for (const name of ['oxz_stuck', 'oxz_orphan']) {
      await t.host.zones.configure({ name, brand: 'omicron1', zonepath: `/zone/${name}`, nets: [], devices: [], datasets: [] });
      await t.host.zones.install(name, '/opt/oxide/orphan.tar.gz');
    }
    await t.host.links.createVnic({ name: 'oxStuck1', link: 'stub0' });
    await t.host.links.createVnic({ name: 'oxStray3', link: 'stub0' });
    await t.stop();
    const busy = Object.assign(new Error('zone is busy'), { code: 'EBUSY' });
    t = await startTestAgent({
      dir: t.dir, nexus: t.nexus,
      wrapHost: (host) => ({
        ...withZones(host, { uninstall: (name: string) => (name === 'oxz_stuck' ? Promise.reject(busy) : host.zones.uninstall(name)) }),
        links: { ...host.links, deleteVnic: (name: string) => (name === 'oxStuck1' ? Promise.reject(busy) : host.links.deleteVnic(name)) },
      }),
    });
    expect(t.running.summary.removedZones).toEqual(['oxz_orphan']);
    expect(t.running.summary.removedVnics).toEqual(['oxStray3']);
    expect((await t.request('GET', '/instances')).status).toBe(200);
    await t.stop();
    t = await startTestAgent({ dir: t.dir, nexus: t.nexus });
    expect(t.running.summary.removedZones).toEqual(['oxz_stuck']);
    expect(t.running.summary.removedVnics).toEqual(['oxStuck1']);
  });

  it('makes the underlay VNIC and puts the sled\'s underlay address on it in the global zone, once', async () => {
    t = await startTestAgent({ config: { underlay_address: 'fd00:1122:3344:101::1' } });
    const show = (obj: string) => t!.host.zones.exec('global', ['ipadm', 'show-addr', '-p', '-o', 'ADDR', obj]);
    expect((await t.host.links.listVnics()).map((v) => [v.name, v.link])).toEqual([['underlay0', 'stub0']]);
    expect((await show('underlay0/sled6')).stdout).toBe('fd00:1122:3344:101::1/64\n');
    expect((await show('underlay0/linklocal')).stdout).toMatch(/^fe80::/);
    // A restart finds both in place and changes nothing.
    t = await t.restart();
    expect((await show('underlay0/sled6')).stdout).toBe('fd00:1122:3344:101::1/64\n');
    expect((await t.host.links.listVnics()).map((v) => v.name)).toEqual(['underlay0']);
  });
});
