// The real agent on the illumos backend, end to end on Linux: the native addon against the fake
// illumos libraries, the fake zoneadm/zlogin and in-zone commands, a fake Nexus, and a simulated
// Propolis standing in for the one the zone's SMF would start (the fake svcadm starts no server).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAgentConfig } from '../src/config.js';
import type { NativeAddon } from '../src/illumos/addon.js';
import { IllumosHost } from '../src/illumos/host.js';
import { SimPropolis } from '../src/sim/propolis.js';
import { startAgent } from '../src/sled-agent.js';
import { ensureBody, instancePuts, nexusSees, realRuntime, testConfig } from './support/agent.js';
import { expectSchema } from './support/contract.js';
import { FAKE_BIN_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';
import { FakeNexus } from './support/fake-nexus.js';

let addon: NativeAddon;
let dir: string;

beforeAll(() => {
  addon = fakeIllumos();
  dir = mkdtempSync(join(tmpdir(), 'agent-illumos-'));
  writeFileSync(join(dir, 'propolis-server.tar.gz'), 'not really a tarball');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('sled agent on the illumos host (fake illumos)', () => {
  it('runs an instance through start and stop: zone, VNIC, address, SMF, Propolis; Nexus sees each state', async () => {
    const fake = freshFakeHost();
    const nexus = await FakeNexus.start();
    const propolis = await SimPropolis.start({ host: '127.0.0.1', port: 0 });
    const reached: string[] = [];
    const host = await IllumosHost.open({
      addon,
      zoneadm: join(FAKE_BIN_DIR, 'zoneadm'),
      zlogin: join(FAKE_BIN_DIR, 'zlogin'),
      sbin: FAKE_BIN_DIR,
      resolveImage: (image) => join(dir, basename(image)),
      reachable: (zone) => {
        reached.push(zone);
        return propolis.address;
      },
    });
    const config = checkAgentConfig(testConfig(dir, nexus.address, {
      data_dir: join(dir, 'var-oxide'),
      host: { backend: 'illumos' },
      zones: { control_link: 'net0', ready_timeout_ms: 20_000 },
      underlay_address: 'fd00:1122:3344:101::1',
    }), 'test');
    const agent = await startAgent(config, host, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
    try {
      const id = randomUUID();
      const runtime = realRuntime();
      const zone = `oxz_propolis-server_${runtime.propolis_id}`;
      const put = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', runtime)),
      });
      expect(put.status).toBe(200);
      const running = await nexusSees(nexus, id, 'running', 30_000);
      expectSchema('nexus-internal.json', 'InstanceRuntimeState', running.body);
      expect(reached).toContain(zone);

      // The global zone's underlay VNIC with the sled's address, through the fake ipadm.
      expect((await host.links.listVnics()).find((v) => v.name === 'underlay0')?.link).toBe('net0');
      expect((await host.zones.exec('global', ['ipadm', 'show-addr', '-p', '-o', 'ADDR', 'underlay0/sled6'])).stdout).toBe('fd00:1122:3344:101::1/64\n');

      // What the fake kernel and the zone's SMF now hold.
      expect((await host.zones.list()).find((z) => z.name === zone)?.state).toBe('running');
      const cfg = await host.zones.config(zone);
      expect(cfg.brand).toBe('omicron1');
      const control = cfg.nets[0]!.physical;
      expect(control).toMatch(/^oxControlInstance\d+$/);
      expect((await host.links.listVnics()).map((v) => v.name)).toContain(control);
      const addr = await host.zones.exec(zone, ['ipadm', 'show-addr', '-p', '-o', 'ADDR', `${control}/omicron6`]);
      expect(addr.stdout.trim()).toBe('fd00:1122:3344:101::10/64');
      expect(propolis.snapshot().request?.properties).toMatchObject({ id, memory: 2048, vcpus: 4, name: 'vm-one' });

      const stop = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('stopped', runtime)),
      });
      expect((await stop.json()).run_state).toBe('stopping');
      await nexusSees(nexus, id, 'stopped', 30_000);
      await agent.agent.instances.whenGone(id);
      expect((await host.zones.list()).map((z) => z.name)).not.toContain(zone);
      expect((await host.links.listVnics()).map((v) => v.name)).not.toContain(control);
      const gens = nexus.requests.filter(instancePuts(id)).map((r) => r.body.gen);
      expect(gens).toEqual([...gens].sort((a, b) => a - b));
    } finally {
      await agent.close();
      await propolis.close();
      await nexus.close();
      fake.remove();
    }
  }, 60_000);
});
