// The warm pool on the illumos backend, end to end on Linux (the addon against the fake
// libraries, the fake zoneadm, zlogin and opteadm): the template installed and cloned by
// `zoneadm clone`, a pool zone booted with only its control VNIC, and a start that takes it and
// gives the guest's VNIC to the running zone through the `zone` link property (libdladm).
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isHostError } from '../src/host/index.js';
import { TEMPLATE_ZONE } from '../src/zone.js';
import { ensureBody, nexusSees, realRuntime } from './support/agent.js';
import { FAKE_BIN_DIR, fakeIllumosFiles, freshFakeHost, startFakeIllumosAgent } from './support/fake-illumos.js';

const files = fakeIllumosFiles('warm-pool-illumos-');

describe('warm pool on the illumos host (fake illumos)', () => {
  it('clones pool zones from the template; a start takes one and hands it the guest VNIC over its OPTE port', async () => {
    const fake = freshFakeHost();
    writeFileSync(join(fake.state, 'xde.conf'), 'name="xde" parent="pseudo" instance=0;\n');
    const phases = new Map<string, string[]>();
    // The fake svcadm starts no server: one simulated Propolis answers for every zone.
    const { agent, host, nexus, propolis, close } = await startFakeIllumosAgent({
      addon: files.addon, images: files.images, fake,
      host: (propolis) => ({ opteadm: join(FAKE_BIN_DIR, 'opteadm'), xdeConf: join(fake.state, 'xde.conf'), reachable: () => propolis.address }),
      config: {
        data_dir: join(files.images, 'var-oxide'),
        zones: { control_link: 'net0', ready_timeout_ms: 20_000, warm_pool: 2, template: true },
        underlay_address: 'fd00:1122:3344:101::1',
      },
      agent: { onPhase: (id, p) => phases.set(id, [...(phases.get(id) ?? []), p]) },
    });
    try {
      await agent.agent.pool.ready();
      const zones = new Map((await host.zones.list()).map((z) => [z.name, z.state]));
      expect(zones.get(TEMPLATE_ZONE)).toBe('installed');
      const pool = [...agent.agent.pool.claimedZones()].filter(([name]) => name !== TEMPLATE_ZONE);
      expect(pool).toHaveLength(2);
      for (const [name, vnics] of pool) {
        expect(zones.get(name)).toBe('running');
        expect((await host.zones.config(name)).nets.map((n) => n.physical)).toEqual(vnics);
      }

      const id = randomUUID();
      const nic = { name: 'net0', ip: '172.30.0.5', mac: 'A8:40:25:F0:00:01', subnet: '172.30.0.0/22', vni: 1234, primary: true, slot: 0 };
      const put = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', realRuntime(), [nic])),
      });
      expect(put.status).toBe(200);
      await nexusSees(nexus, id, 'running', 30_000);
      const instance = agent.agent.instances.get(id)!;
      const zone = instance.zone as string;
      expect(pool.map(([name]) => name)).toContain(zone);
      expect(phases.get(id)).toEqual(expect.arrayContaining(['pool', 'ports', 'vnic', 'handover', 'address', 'propolis']));
      expect(phases.get(id)).not.toContain('boot');
      expect((await host.links.listVnics()).find((v) => v.name === 'vopte0')?.link).toBe('opte0');
      expect(propolis.snapshot().request?.nics).toEqual([{ name: 'vopte0', slot: 0 }]);
      const addr = await host.zones.exec(zone, ['ipadm', 'show-addr', '-p', '-o', 'ADDR', `${instance.record.control_vnic}/omicron6`]);
      expect(addr.stdout.trim()).toBe('fd00:1122:3344:101::10/64');

      // The fake kernel holds vopte0 for that zone: another running zone is refused it.
      await agent.agent.pool.ready();
      const other = [...agent.agent.pool.claimedZones().keys()].find((name) => name !== TEMPLATE_ZONE) as string;
      const busy = await host.links.setZone('vopte0', other).then(() => null, (err: unknown) => err);
      expect(isHostError(busy, 'DLADM_STATUS_LINKBUSY')).toBe(true);

      // Its teardown halts the zone (which gives the link back), then the VNIC, then the port.
      const stop = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('stopped', realRuntime(), [nic])),
      });
      expect(stop.status).toBe(200);
      await agent.agent.instances.whenGone(id);
      expect((await host.zones.list()).map((z) => z.name)).not.toContain(zone);
      expect((await host.links.listVnics()).map((v) => v.name)).not.toContain('vopte0');
      expect(await host.network.listPorts()).toEqual([]);
    } finally {
      await close();
    }
  }, 90_000);

  it('polls on illumos too: readiness = "poll" (zero-deadline checks) fills the pool and starts an instance', async () => {
    // The deadline of each readiness wait (a zone running, a service online): an agent that
    // ignored the setting would make event waits with the whole deadline and still start.
    const deadlines: number[] = [];
    const { agent, nexus, close } = await startFakeIllumosAgent({
      onHost: (host) => {
        const events = host.events;
        const { waitForZoneRunning, waitForService } = events;
        events.waitForZoneRunning = (zone, o) => {
          deadlines.push(o.timeoutMs);
          return waitForZoneRunning.call(events, zone, o);
        };
        events.waitForService = (zone, fmri, states, o) => {
          if (states.includes('online')) deadlines.push(o.timeoutMs);
          return waitForService.call(events, zone, fmri, states, o);
        };
      },
      addon: files.addon, images: files.images,
      config: {
        data_dir: join(files.images, 'var-oxide-poll'),
        zones: { control_link: 'net0', ready_timeout_ms: 20_000, warm_pool: 1, template: false },
        instances: { readiness: 'poll', steps: 'serial' },
        underlay_address: 'fd00:1122:3344:101::1',
      },
    });
    try {
      // Poll mode asks the illumos host with zero deadlines (the Host suite holds their
      // semantics); here the whole of it: the pool's zones and an instance, by polling.
      await agent.agent.pool.ready();
      const id = randomUUID();
      const put = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', realRuntime())),
      });
      expect(put.status).toBe(200);
      await nexusSees(nexus, id, 'running', 30_000);
      expect(deadlines.length).toBeGreaterThan(0);
      expect(new Set(deadlines)).toEqual(new Set([0]));
    } finally {
      await close();
    }
  }, 90_000);
});
