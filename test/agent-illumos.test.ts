// The real agent on the illumos backend, end to end on Linux: the native addon against the fake
// illumos libraries, the fake zoneadm/zlogin and in-zone commands, a fake Nexus, and a simulated
// Propolis standing in for the one the zone's SMF would start (the fake svcadm starts no server).
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { propolisFmri } from '../src/zone.js';
import { ensureBody, instancePuts, nexusSees, realRuntime, zoneOf } from './support/agent.js';
import { expectSchema } from './support/contract.js';
import { FAKE_BIN_DIR, fakeIllumosFiles, freshFakeHost, startFakeIllumosAgent } from './support/fake-illumos.js';

const files = fakeIllumosFiles('agent-illumos-');

describe('sled agent on the illumos host (fake illumos)', () => {
  it('runs an instance through start and stop: zone, VNIC, address, SMF, Propolis; Nexus sees each state', async () => {
    const reached: string[] = [];
    const { agent, host, nexus, propolis, close } = await startFakeIllumosAgent({
      addon: files.addon, images: files.images,
      host: (propolis) => ({
        reachable: (zone) => {
          reached.push(zone);
          return propolis.address;
        },
      }),
      config: {
        data_dir: join(files.images, 'var-oxide'),
        zones: { control_link: 'net0', ready_timeout_ms: 20_000, warm_pool: 0, template: false },
        underlay_address: 'fd00:1122:3344:101::1',
      },
    });
    try {
      const id = randomUUID();
      const runtime = realRuntime();
      const put = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', runtime)),
      });
      expect(put.status).toBe(200);
      const running = await nexusSees(nexus, id, 'running', 30_000);
      // The zone the agent chose (an id of its own), as the agent and GET /instances/{id} have it.
      const zone = zoneOf({ running: agent }, id);
      expect(zone).toMatch(/^oxz_propolis-server_[0-9a-f-]{36}$/);
      expect((await (await fetch(`http://${agent.address}/instances/${id}`)).json()).zone).toBe(zone);
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
      await close();
    }
  }, 60_000);

  it('gives a guest NIC its OPTE port through opteadm, with the exact argv and stdin, and removes it after the zone', async () => {
    const fake = freshFakeHost();
    const xdeConf = join(fake.state, 'xde.conf');
    writeFileSync(xdeConf, 'name="xde" parent="pseudo" instance=0;\n');
    const log = join(fake.state, 'opteadm.log');
    process.env.FAKE_ILLUMOS_OPTEADM_LOG = log;
    const calls = () => {
      const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
      rmSync(log, { force: true });
      return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { argv: string[]; stdin: string });
    };
    const { agent, host, nexus, propolis, close } = await startFakeIllumosAgent({
      addon: files.addon, images: files.images, fake,
      host: (propolis) => ({ opteadm: join(FAKE_BIN_DIR, 'opteadm-record'), xdeConf, reachable: () => propolis.address }),
      config: {
        data_dir: join(files.images, 'var-oxide-nic'),
        zones: { control_link: 'net0', ready_timeout_ms: 20_000, warm_pool: 0, template: false },
        underlay_address: 'fd00:1122:3344:101::1',
      },
    });
    try {
      expect(calls().map((c) => c.argv)).toEqual([['set-xde-underlay', 'net0', 'net1'], ['list-ports']]);
      const id = randomUUID();
      const runtime = realRuntime();
      const nic = { name: 'net0', ip: '172.30.0.5', mac: 'A8:40:25:F0:00:01', subnet: '172.30.0.0/22', vni: 1234, primary: true, slot: 0 };
      const body = ensureBody('running', runtime, [nic]) as { initial: Record<string, unknown> };
      body.initial.source_nat = { ip: '192.168.1.31', first_port: 16384, last_port: 32767 };
      body.initial.external_ips = ['192.168.1.32'];
      body.initial.firewall_rules = [{ status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: ['22'], filter_protocols: ['TCP'], action: 'allow', priority: 65534 }];
      const put = await fetch(`http://${agent.address}/instances/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(put.status).toBe(200);
      await nexusSees(nexus, id, 'running', 30_000);
      // No list-ports first: the port's name is new to this sled (start-up listed them all).
      expect(calls()).toEqual([
        {
          argv: ['create-xde', 'opte0', '--guest-mac', 'a8:40:25:f0:00:01', '--private-ip', '172.30.0.5', '--vpc-subnet', '172.30.0.0/22',
            '--gateway-mac', 'a8:40:25:ff:77:77', '--gateway-ip', '172.30.0.1', '--vpc-vni', '1234', '--src-underlay-addr', 'fd00:1122:3344:101::1',
            '--snat-ip', '192.168.1.31', '--snat-start', '16384', '--snat-end', '32767', '--ephemeral-ip', '192.168.1.32'],
          stdin: '',
        },
        { argv: ['add-router-entry', '-p', 'opte0', '172.30.0.0/22', 'sub4=172.30.0.0/22', 'system'], stdin: '' },
        { argv: ['set-fw-rules', '-p', 'opte0'], stdin: 'dir=in action=allow priority=65534 hosts=any protocol=tcp port=22\n' },
      ]);
      // The guest's VNIC is over the port, in the zone, given to Propolis.
      const zone = zoneOf({ running: agent }, id);
      expect((await host.links.listVnics()).find((v) => v.name === 'vopte0')?.link).toBe('opte0');
      expect((await host.zones.config(zone)).nets[0]?.physical).toBe('vopte0');
      expect(propolis.snapshot().request?.nics).toEqual([{ name: 'vopte0', slot: 0 }]);

      // A VPC rules update reaches this VPC's port, and V2P mappings are set and really cleared.
      const send = (method: string, path: string, json: unknown) => fetch(`http://${agent.address}${path}`, {
        method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(json),
      });
      const web = { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: ['80'], filter_protocols: ['TCP'], action: 'allow', priority: 100 };
      expect((await send('PUT', `/vpc/${randomUUID()}/firewall/rules`, { vni: 1234, rules: [web] })).status).toBe(204);
      expect(calls()).toEqual([{ argv: ['set-fw-rules', '-p', 'opte0'], stdin: 'dir=in action=allow priority=100 hosts=any protocol=tcp port=80\n' }]);
      expect((await send('PUT', `/vpc/${randomUUID()}/firewall/rules`, { vni: 4321, rules: [web] })).status).toBe(204);
      expect(calls()).toEqual([]);
      const mapping = { virtual_ip: '172.30.0.6', virtual_mac: 'A8:40:25:F0:00:02', physical_host_ip: 'fd00:1122:3344:102::1', vni: 1234 };
      const nicId = randomUUID();
      expect((await send('PUT', `/v2p/${nicId}`, mapping)).status).toBe(204);
      expect(calls().map((c) => c.argv)).toEqual([['set-v2p', '172.30.0.6', 'a8:40:25:f0:00:02', 'fd00:1122:3344:102::1', '1234']]);
      expect((await send('DELETE', `/v2p/${nicId}`, mapping)).status).toBe(204);
      expect(calls().map((c) => c.argv)).toEqual([
        ['list-ports'], ['dump-v2p'], ['clear-v2p', '172.30.0.6', 'a8:40:25:f0:00:02', 'fd00:1122:3344:102::1', '1234'],
      ]);

      const stop = await fetch(`http://${agent.address}/instances/${id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('stopped', runtime, [nic])) });
      expect(stop.status).toBe(200);
      await agent.agent.instances.whenGone(id);
      expect(calls().map((c) => c.argv)).toEqual([['delete-xde', 'opte0']]);
      expect(await host.network.listPorts()).toEqual([]);
    } finally {
      delete process.env.FAKE_ILLUMOS_OPTEADM_LOG;
      await close();
    }
  }, 60_000);

  it('without the xde driver, starts an instance without NICs and fails one with NICs, saying OPTE is missing', async () => {
    const fake = freshFakeHost();
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
    const { agent, nexus, close } = await startFakeIllumosAgent({
      addon: files.addon, images: files.images, fake, log,
      host: (propolis) => ({ opteadm: join(FAKE_BIN_DIR, 'opteadm'), xdeConf: join(fake.state, 'xde.conf'), reachable: () => propolis.address }),
      config: { data_dir: join(files.images, 'var-oxide-no-xde'), zones: { control_link: 'net0', ready_timeout_ms: 20_000, warm_pool: 0, template: false } },
    });
    try {
      expect(lines.some((l) => /OPTE is missing: instances with guest NICs cannot start here/.test(l))).toBe(true);
      const plain = randomUUID();
      const withNic = randomUUID();
      const put = (id: string, nics: unknown[]) => fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', realRuntime(), nics)),
      });
      expect((await put(withNic, [{ name: 'net0', ip: '172.30.0.5', mac: 'A8:40:25:F0:00:01', subnet: '172.30.0.0/22', vni: 1234, slot: 0 }])).status).toBe(200);
      await nexusSees(nexus, withNic, 'failed', 30_000);
      expect(lines.some((l) => l.includes(withNic) && /OPTE is missing on this sled/.test(l))).toBe(true);
      expect((await put(plain, [])).status).toBe(200);
      await nexusSees(nexus, plain, 'running', 30_000);
    } finally {
      await close();
    }
  }, 60_000);

  it('configures Propolis in the zone when its root will not take a site profile, and says so', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
    const { agent, host, nexus, close } = await startFakeIllumosAgent({
      addon: files.addon, images: files.images, log,
      config: {
        data_dir: join(files.images, 'var-oxide-no-root'),
        // The fake zoneadm makes no directory right under /: these zones have no root.
        zones: { root: '/zone', control_link: 'net0', ready_timeout_ms: 20_000, warm_pool: 0, template: false },
      },
    });
    try {
      const id = randomUUID();
      const put = await fetch(`http://${agent.address}/instances/${id}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', realRuntime())),
      });
      expect(put.status).toBe(200);
      await nexusSees(nexus, id, 'running', 30_000);
      const zone = zoneOf({ running: agent }, id);
      const warned = lines.map((l) => JSON.parse(l)).find((l) => l.zone === zone && /site profile/.test(l.msg));
      expect(warned?.err?.code).toBe('EBADZONEROOT');
      // The instance svccfg made in the zone, with its address, online.
      const fmri = propolisFmri(zone);
      const listed = await host.zones.exec(zone, ['svccfg', '-s', fmri, 'listprop', 'config/server_addr']);
      expect(listed.stdout).toMatch(/config\/server_addr\s+astring\s+\[::\]:12400/);
      expect(await host.events.waitForService(zone, fmri, ['online'], { timeoutMs: 0 })).toBe('online');
    } finally {
      await close();
    }
  }, 60_000);
});
