// The warm pool (src/warm-pool.ts) on the real agent over the simulated host: the pool fills
// from a template, a start takes a healthy pool zone and hands it the guest VNICs, the pool
// refills, is adopted after a restart and shrinks with its target; an unhealthy pool zone is
// replaced, never handed out; a start that fails after taking one removes it. And the cold path:
// zones cloned from the template, or installed without one.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Host } from '../src/host/index.js';
import { observeHost, type HostCall } from '../src/host/observe.js';
import { ipadmCreateStatic } from '../src/host/commands.js';
import { GLOBAL_ZONE, isHostError } from '../src/host/index.js';
import { Ledger, readLedgerFile, type Change } from '../src/ledger.js';
import type { Phase } from '../src/zone.js';
import { propolisFmri, TEMPLATE_ZONE } from '../src/zone.js';
import {
  ensureBody, nexusSees, realRuntime, runInstance, startTestAgent, withZones, type TestAgent, type TestAgentOptions,
} from './support/agent.js';

let t: TestAgent | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const NIC = { name: 'net0', ip: '172.16.0.5', mac: 'a8:40:25:f0:00:01', subnet: '172.16.0.0/22', vni: 10, slot: 0 };

function pooled(extra: Record<string, unknown> = {}, options: TestAgentOptions = {}): TestAgentOptions {
  return { ...options, config: { zones: { ready_timeout_ms: 20_000, warm_pool: 2, template: true, ...extra }, ...options.config } };
}

function ledger(t: TestAgent): { instances: Record<string, any>; pool: { zones: Record<string, { name: string; control_vnic: string }>; template: string | null } } {
  return readLedgerFile(join(t.config.data_dir, 'instances.json')) as ReturnType<typeof ledger>;
}

async function zoneStates(host: Host): Promise<Map<string, string>> {
  return new Map((await host.zones.list()).map((z) => [z.name, z.state]));
}

/** Phases each instance went through, in order. */
function phaseLog(): { phases: Map<string, string[]>; onPhase: (id: string, p: Phase | 'running') => void } {
  const phases = new Map<string, string[]>();
  return { phases, onPhase: (id, p) => phases.set(id, [...(phases.get(id) ?? []), p]) };
}

describe('warm pool', () => {
  it('fills from an installed template: each pool zone running, with its control VNIC and Propolis listening on the wildcard', async () => {
    t = await startTestAgent(pooled());
    const pool = t.running.agent.pool;
    await pool.ready();
    expect(pool.counts()).toEqual({ target: 2, ready: 2, warming: 0 });
    const recorded = Object.values(ledger(t).pool.zones);
    expect(recorded).toHaveLength(2);
    expect(ledger(t).pool.template).toBe(TEMPLATE_ZONE);
    const states = await zoneStates(t.host);
    // The template is installed and never booted: zoneadm clone refuses a running source.
    expect(states.get(TEMPLATE_ZONE)).toBe('installed');
    const vnics = new Set((await t.host.links.listVnics()).map((v) => v.name));
    for (const zone of recorded) {
      expect(zone.name).toMatch(/^oxz_propolis-server_[0-9a-f-]{36}$/);
      expect(states.get(zone.name)).toBe('running');
      expect(vnics.has(zone.control_vnic)).toBe(true);
      expect((await t.host.zones.config(zone.name)).nets.map((n) => n.physical)).toEqual([zone.control_vnic]);
      const fmri = propolisFmri(zone.name);
      await expect(t.host.events.waitForService(zone.name, fmri, ['online'], { timeoutMs: 0 })).resolves.toBe('online');
      // Bound to the wildcard: nothing answers on an address until the zone has it.
      const addr = { host: 'fd00:1122:3344:101::99', port: 12400 };
      await expect(t.host.reachable(zone.name, addr)).rejects.toMatchObject({ code: 'ENOTFOUND' });
      await t.host.zones.exec(zone.name, ipadmCreateStatic(`${zone.control_vnic}/probe`, `${addr.host}/64`));
      expect((await t.host.reachable(zone.name, addr)).host).toBe('127.0.0.1');
      await t.host.zones.exec(zone.name, ['ipadm', 'delete-addr', `${zone.control_vnic}/probe`]);
    }
    const inventory = await t.request('GET', '/inventory');
    const serving = new Map((inventory.body.zones as Array<{ name: string; serves: unknown }>).map((z) => [z.name, z.serves]));
    expect(serving.get(TEMPLATE_ZONE)).toEqual({ kind: 'warm_pool', id: 'template' });
    for (const zone of recorded) expect(serving.get(zone.name)).toEqual({ kind: 'warm_pool', id: 'pool' });
    const metrics = await fetch(`http://${t.running.address}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/sled_agent_warm_pool_zones\{[^}]*state="ready"[^}]*\} 2/);
  });

  it('a start takes a pool zone: no zone is made, the guest VNIC is given to the running zone, the pool refills', async () => {
    const { phases, onPhase } = phaseLog();
    // Zones the pool was warming at each of the start's phases: the refill waits for the start.
    const warming: number[] = [];
    t = await startTestAgent(pooled({}, {
      agent: {
        onPhase: (id, p) => {
          onPhase(id, p);
          warming.push(t?.running.agent.pool.counts().warming ?? 0);
        },
      },
    }));
    await t.running.agent.pool.ready();
    const before = Object.keys(ledger(t).pool.zones);
    const { id, zone } = await runInstance(t, [NIC]);

    const instance = t.running.agent.instances.get(id)!;
    expect(before).toContain(zone);
    expect(instance.record.pooled).toBe(true);
    const seen = phases.get(id)!;
    expect(seen).toContain('pool');
    expect(seen).toContain('handover');
    for (const made of ['configure', 'install', 'clone', 'boot', 'service']) expect(seen).not.toContain(made);
    expect(warming).toEqual(seen.map(() => 0));
    // In the ledger: the instance's, and no longer the pool's.
    const after = ledger(t);
    expect(after.instances[id].zone).toBe(zone);
    expect(after.pool.zones[zone]).toBeUndefined();

    // The guest VNIC is the zone's: another zone cannot have it.
    const guest = instance.record.guest_vnics[0] as string;
    await t.running.agent.pool.ready();
    const other = Object.keys(ledger(t).pool.zones)[0] as string;
    const busy = await t.host.links.setZone(guest, other).then(() => null, (err: unknown) => err as Error);
    expect(isHostError(busy, 'DLADM_STATUS_LINKBUSY')).toBe(true);
    expect(busy?.message).toContain(zone);

    // Propolis answers on the instance's address, which the zone now has.
    const addr = await t.host.zones.exec(zone, ['ipadm', 'show-addr', '-p', '-o', 'ADDR', `${instance.record.control_vnic}/omicron6`]);
    expect(addr.stdout.trim()).toBe('fd00:1122:3344:101::10/64');
    expect((await t.host.propolisFor(zone)!.snapshot()).state).toBe('Running');

    // Refilled behind the start: two ready zones again, none of them the instance's.
    expect(t.running.agent.pool.counts().ready).toBe(2);
    expect(Object.keys(ledger(t).pool.zones)).not.toContain(zone);
  });

  it('records the take in the write that answers the start: the zone is the instance\'s on disk and no longer the pool\'s', async () => {
    t = await startTestAgent(pooled());
    await t.running.agent.pool.ready();
    const before = Object.keys(ledger(t).pool.zones);
    const id = randomUUID();
    const res = await t.request('PUT', `/instances/${id}`, ensureBody('running', realRuntime(), [NIC]));
    expect(res.status).toBe(200);
    // As a kill right after the answer would leave it: the pool has not refilled (nor written) yet.
    const onDisk = ledger(t);
    const zone = onDisk.instances[id].zone as string;
    expect(before).toContain(zone);
    expect(Object.keys(onDisk.pool.zones)).toEqual(before.filter((z) => z !== zone));
  });

  it('changes a zone taken from the pool only once the write that took it has landed', async () => {
    const events: string[] = [];
    let handedOver!: () => void;
    const handover = new Promise<void>((r) => { handedOver = r; });
    t = await startTestAgent(pooled({}, {
      wrapHost: (host) => ({
        ...host, kind: host.kind, zones: host.zones, datasets: host.datasets, events: host.events, network: host.network,
        reachable: (zone, addr) => host.reachable(zone, addr), close: () => host.close(),
        links: {
          ...host.links,
          setZone: (link, zone) => {
            events.push(`setZone ${zone}`);
            handedOver();
            return host.links.setZone(link, zone);
          },
        },
      }),
    }));
    await t.running.agent.pool.ready();
    const original = Ledger.prototype.commit;
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    Ledger.prototype.commit = async function heldCommit(this: Ledger<unknown>, ...changed: Change[]) {
      await held;
      await original.apply(this, changed);
      events.push('landed');
    };
    let answer;
    try {
      const id = randomUUID();
      answer = t.request('PUT', `/instances/${id}`, ensureBody('running', realRuntime(), [NIC]));
      // Without the wait, the handover comes within milliseconds; half a second is plenty to see it.
      await Promise.race([handover, new Promise((r) => setTimeout(r, 500))]);
    } finally {
      release();
      Ledger.prototype.commit = original;
    }
    expect((await answer).status).toBe(200);
    await handover;
    expect(events.indexOf('landed')).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('landed')).toBeLessThan(events.findIndex((e) => e.startsWith('setZone')));
  });

  it('is adopted after a restart with the instance that took a zone, and shrinks when its target does', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
    t = await startTestAgent(pooled({}, { log }));
    await t.running.agent.pool.ready();
    const { id, zone } = await runInstance(t, [NIC]);
    await t.running.agent.pool.ready();
    const pool = Object.keys(ledger(t).pool.zones).sort();

    lines.length = 0;
    t = await t.restart();
    expect([...t.running.summary.adopted].sort()).toEqual([...pool, TEMPLATE_ZONE, zone].sort());
    // The start-up line says which zone serves what: the zone's name no longer does.
    const startup = lines.map((l) => JSON.parse(l)).find((l) => String(l.msg).startsWith('start-up:'));
    expect(startup.serving).toEqual({
      [zone]: { kind: 'instance', id }, [TEMPLATE_ZONE]: { kind: 'warm_pool', id: 'template' },
      ...Object.fromEntries(pool.map((z) => [z, { kind: 'warm_pool', id: 'pool' }])),
    });
    expect(t.running.summary.removedZones).toEqual([]);
    await t.running.agent.pool.ready();
    expect(Object.keys(ledger(t).pool.zones).sort()).toEqual(pool);
    expect(t.running.agent.instances.get(id)?.zone).toBe(zone);

    const dir = t.dir;
    const nexus = t.nexus;
    await t.stop();
    t = await startTestAgent(pooled({ warm_pool: 1 }, { dir, nexus }));
    await t.running.agent.pool.ready();
    await t.running.agent.instances.idle();
    const kept = Object.keys(ledger(t).pool.zones);
    expect(kept).toHaveLength(1);
    expect(pool).toContain(kept[0]);
    // Its removal (from the host, then the ledger) is part of the start-up that ready() awaited:
    // nothing to wait for here.
    const states = await zoneStates(t.host);
    const gone = pool.filter((z) => z !== kept[0]);
    expect(gone).toHaveLength(1);
    expect(states.has(gone[0] as string)).toBe(false);
    expect(states.get(zone)).toBe('running');
  });

  it('drops the names of a refill it could not record, and refills at the next start', async () => {
    t = await startTestAgent(pooled({ warm_pool: 1, template: false }));
    const pool = t.running.agent.pool;
    await pool.ready();
    // The refill's write naming the new zone fails, once.
    const original = Ledger.prototype.commit;
    let failed = 0;
    Ledger.prototype.commit = async function onceFailing(this: Ledger<unknown>, ...changed: Change[]) {
      if (failed === 0 && changed.some((c) => c[0] === 'pool')) {
        failed += 1;
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      }
      return original.apply(this, changed);
    };
    try {
      await runInstance(t);
      await expect.poll(() => failed, { timeout: 10_000 }).toBe(1);
      // Nothing is warming under names the disk does not have.
      await expect.poll(() => pool.counts()).toEqual({ target: 1, ready: 0, warming: 0 });
    } finally {
      Ledger.prototype.commit = original;
    }
    // The next start ends, and the pool is made up again.
    await runInstance(t);
    await pool.ready();
    expect(Object.keys(ledger(t).pool.zones)).toHaveLength(1);
  });

  it('refills after the readiness deadline even while a start never ends (its VM stuck in Starting)', async () => {
    // Each VM step takes a minute: the start's Propolis stays in Creating and Starting.
    t = await startTestAgent(pooled({ warm_pool: 1, template: false, ready_timeout_ms: 1_500 }, {
      config: { host: { latency: { vm_step: 60_000 } } },
    }));
    const pool = t.running.agent.pool;
    await pool.ready();
    const id = randomUUID();
    expect((await t.request('PUT', `/instances/${id}`, ensureBody('running', realRuntime(), [NIC]))).status).toBe(200);
    await expect.poll(() => t!.running.agent.instances.get(id)?.record.pooled).toBe(true);
    await pool.ready();
    expect(t.running.agent.instances.get(id)?.current.run_state).toBe('starting');
    expect(Object.keys(ledger(t).pool.zones)).toHaveLength(1);
  });

  it('replaces a pool zone that went away, and never hands out one whose Propolis is down', async () => {
    t = await startTestAgent(pooled());
    const pool = t.running.agent.pool;
    await pool.ready();
    const [first, second] = Object.keys(ledger(t).pool.zones) as [string, string];

    await t.host.simulateZoneFailure(first);
    await expect.poll(() => pool.counts().ready === 2 && ledger(t!).pool.zones[first] === undefined).toBe(true);
    expect(Object.keys(ledger(t).pool.zones)).toContain(second);

    // Its Propolis crashes while it waits: the health check at take time skips it.
    await t.host.crashPropolis(second);
    const { zone } = await runInstance(t);
    expect(zone).not.toBe(second);
    expect(zone).not.toBe(first);
    await expect.poll(async () => (await zoneStates(t!.host)).has(second)).toBe(false);
    await pool.ready();
    expect(Object.keys(ledger(t).pool.zones)).not.toContain(second);
  });

  it('a start that fails after taking a pool zone removes that zone; the instance is failed and the pool refilled', async () => {
    let failAddress = true;
    t = await startTestAgent(pooled({}, {
      wrapHost: (host) => withZones(host, {
        exec: async (zone: string, argv: string[]) => {
          if (failAddress && zone !== GLOBAL_ZONE && argv[1] === 'create-addr' && argv.includes('static')) throw new Error('ipadm: injected failure');
          return host.zones.exec(zone, argv);
        },
      }),
    }));
    await t.running.agent.pool.ready();
    const pool = Object.keys(ledger(t).pool.zones);
    const id = randomUUID();
    await t.request('PUT', `/instances/${id}`, ensureBody('running', realRuntime()));
    await nexusSees(t.nexus, id, 'failed');
    await t.running.agent.instances.idle();
    failAddress = false;
    const taken = pool.filter((z) => ledger(t!).pool.zones[z] === undefined);
    expect(taken).toHaveLength(1);
    expect((await zoneStates(t.host)).has(taken[0] as string)).toBe(false);
    expect(ledger(t).instances[id].zone).toBeNull();
    await t.running.agent.pool.ready();
    expect(t.running.agent.pool.counts().ready).toBe(2);
  });

  it('fills from the image when the template cannot be made', async () => {
    t = await startTestAgent(pooled({}, {
      wrapHost: (host) => withZones(host, {
        install: async (name: string, image: string) => {
          if (name === TEMPLATE_ZONE) throw new Error('zoneadm: injected failure');
          return host.zones.install(name, image);
        },
      }),
    }));
    await t.running.agent.pool.ready();
    expect(t.running.agent.pool.counts().ready).toBe(2);
    expect(t.running.agent.pool.template()).toBeNull();
  });
});

describe('cold path', () => {
  it('clones new zones from the template, and installs them without one', async () => {
    const { phases, onPhase } = phaseLog();
    t = await startTestAgent(pooled({ warm_pool: 0 }, { agent: { onPhase } }));
    await t.running.agent.pool.ready();
    const { id: cloned, zone } = await runInstance(t, [NIC]);
    expect(phases.get(cloned)).toContain('clone');
    expect(phases.get(cloned)).not.toContain('install');
    expect(phases.get(cloned)).not.toContain('pool');
    // A cold zone is configured with its guest VNIC, as the original's were.
    expect((await t.host.zones.config(zone)).nets.map((n) => n.physical)[0]).toMatch(/^vopte\d+$/);

    // Without a template: installed from the image; the template zone is removed.
    const dir = t.dir;
    const nexus = t.nexus;
    await t.stop();
    t = await startTestAgent(pooled({ warm_pool: 0, template: false }, { dir, nexus, agent: { onPhase } }));
    await t.running.agent.pool.ready();
    expect(ledger(t).pool.template).toBeNull();
    expect((await zoneStates(t.host)).has(TEMPLATE_ZONE)).toBe(false);
    const installed = randomUUID();
    await t.request('PUT', `/instances/${installed}`, ensureBody('running', realRuntime({ propolis_addr: '[fd00:1122:3344:101::11]:12400' })));
    await nexusSees(t.nexus, installed, 'running');
    expect(phases.get(installed)).toContain('install');
    expect(phases.get(installed)).not.toContain('clone');
  });

  it('asks the host nothing about the names a start or a refill just made up; a restart asks about each', async () => {
    const calls: HostCall[] = [];
    const options = pooled({ warm_pool: 1 }, { wrapHost: (sim) => observeHost(sim, (call) => calls.push(call)) });
    t = await startTestAgent(options);
    await t.running.agent.pool.ready();
    const asked = (op: string) => calls.filter((c) => c.op === op).map((c) => c.args[0] as string);
    // The refill named the pool zone and its control VNIC itself.
    const [poolZone] = Object.values(ledger(t).pool.zones);
    expect(asked('zones.state')).not.toContain(poolZone!.name);
    expect(asked('links.linkExists')).not.toContain(poolZone!.control_vnic);
    expect(calls.filter((c) => c.op === 'links.createVnic').map((c) => (c.args[0] as { name: string }).name)).toContain(poolZone!.control_vnic);
    // Its propolis-server came from the site profile written before its boot: no svccfg, no svcadm.
    const run = (zone: string) => calls.filter((c) => c.op === 'zones.exec' && c.args[0] === zone).map((c) => (c.args[1] as string[])[0]);
    expect(calls.some((c) => c.op === 'zones.setProfile' && c.args[0] === poolZone!.name)).toBe(true);
    expect(run(poolZone!.name)).toEqual(['ipadm']);

    // Two starts: one takes the pool zone, one has a zone cloned for it; each has a guest NIC.
    // (Start-up lists every zone, VNIC and port, to find what it owns: not counted from here.)
    calls.length = 0;
    const [warm, cold] = [await runInstance(t, [NIC]), await runInstance(t, [{ ...NIC, ip: '172.16.0.6', mac: 'a8:40:25:f0:00:02' }])];
    expect(warm.zone).toBe(poolZone!.name);
    const records = ledger(t).instances;
    const names = [warm, cold].flatMap(({ id }) => [records[id].zone, records[id].control_vnic, ...records[id].guest_vnics]);
    expect(names).toHaveLength(6);
    expect(asked('links.linkExists').filter((n) => names.includes(n))).toEqual([]);
    expect(asked('zones.state')).not.toContain(cold.zone);
    expect(calls.some((c) => c.op === 'network.listPorts')).toBe(false);
    // The cold zone's Propolis came from its site profile; ipadm for its addresses is all it ran.
    expect(asked('zones.setProfile')).toEqual([cold.zone]);
    expect(new Set(run(cold.zone))).toEqual(new Set(['ipadm']));
    expect(new Set(run(warm.zone))).toEqual(new Set(['ipadm']));
    // The taken pool zone is not the start's own making: its health is asked.
    expect(asked('zones.state')).toContain(warm.zone);

    // After a restart nothing is new: adopting each instance asks about its zone, VNICs and ports.
    await t.stop();
    calls.length = 0;
    t = await startTestAgent({ ...options, dir: t.dir, nexus: t.nexus });
    await t.running.agent.instances.idle();
    for (const { zone } of [warm, cold]) expect(asked('zones.state')).toContain(zone);
    for (const vnic of [records[warm.id].guest_vnics[0], records[cold.id].guest_vnics[0], records[cold.id].control_vnic]) {
      expect(asked('links.linkExists')).toContain(vnic);
    }
    expect(calls.some((c) => c.op === 'network.listPorts')).toBe(true);
  });
});
