// Guest networking end to end on the real agent over real HTTP (issue 11): two sleds on the
// simulated host, guests in two VPCs, OPTE ports made for their NICs, and the simulated dataplane
// (POST /sim/net/trace) saying why a packet passes. The addresses in requests are data.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { instancePuts, nexusSees, realRuntime, startTestAgent, type TestAgent } from './support/agent.js';
import { FakeNexus } from './support/fake-nexus.js';
import { allowTcpInbound, defaultVpcRules } from './support/vpc-rules.js';

const VPC1 = { id: randomUUID(), vni: 1024, subnet: '172.30.0.0/22' };
const VPC2 = { id: randomUUID(), vni: 2048, subnet: '172.31.0.0/22' };
const SLED_A = 'fd00:1122:3344:101::1';
const SLED_B = 'fd00:1122:3344:102::1';

let agents: TestAgent[] = [];
let nexus: FakeNexus | undefined;
afterEach(async () => {
  for (const a of agents) {
    await a.stop();
    rmSync(a.dir, { recursive: true, force: true });
  }
  await nexus?.close();
  agents = [];
  nexus = undefined;
});

interface Guest {
  id: string;
  runtime: Record<string, unknown>;
  nic: Record<string, unknown>;
}

/** A guest for the sled whose underlay address is `sled`: its Propolis address is in that sled's /64. */
function guest(vpc: typeof VPC1, host: number, mac: string, sled = SLED_A): Guest {
  const [a, b, c] = vpc.subnet.split('.');
  return {
    id: randomUUID(),
    runtime: realRuntime({ propolis_addr: `[${sled.replace(/::1$/, '::10')}]:12400` }),
    nic: { name: 'net0', ip: `${a}.${b}.${c}.${host}`, mac, subnet: vpc.subnet, vni: vpc.vni, primary: true, slot: 0 },
  };
}

function body(g: Guest, target: string, vpc: typeof VPC1) {
  return {
    initial: {
      runtime: g.runtime, nics: [g.nic], disks: [], cloud_init_bytes: null,
      source_nat: { ip: '192.168.1.31', first_port: 16384, last_port: 32767 },
      external_ips: [],
      firewall_rules: defaultVpcRules([vpc.subnet]),
    },
    target: { run_state: target, migration_params: null },
    migrate: null,
  };
}

async function sleds(): Promise<[TestAgent, TestAgent]> {
  nexus = await FakeNexus.start();
  const a = await startTestAgent({ nexus, config: { underlay_address: SLED_A } });
  agents.push(a);
  const b = await startTestAgent({ nexus, config: { underlay_address: SLED_B } });
  agents.push(b);
  return [a, b];
}

const tcp = (src: Guest | string, dst: Guest | string, port: number, direction: 'out' | 'in', vni: number) => ({
  vni, protocol: 'TCP', src_port: 40000, dst_port: port, direction,
  src_ip: typeof src === 'string' ? src : src.nic.ip, dst_ip: typeof dst === 'string' ? dst : dst.nic.ip,
});

describe('guest networking on two sleds', () => {
  it('ports, rules, V2P and the dataplane: what passes, what does not, and why', async () => {
    const [a, b] = await sleds();
    const a1 = guest(VPC1, 5, 'A8:40:25:F0:00:01');
    const a2 = guest(VPC2, 5, 'A8:40:25:F0:00:02');
    const b1 = guest(VPC1, 6, 'A8:40:25:F0:00:03', SLED_B);
    for (const [sled, g, vpc] of [[a, a1, VPC1], [a, a2, VPC2], [b, b1, VPC1]] as const) {
      expect((await sled.request('PUT', `/instances/${g.id}`, body(g, 'running', vpc))).status).toBe(200);
    }
    for (const g of [a1, a2, b1]) await nexusSees(nexus!, g.id, 'running');

    // One port per guest NIC, with the guest's MAC, and the VNIC over it in the zone.
    const portsA = await a.host.network.listPorts();
    expect(portsA.map((p) => p.ip4).sort()).toEqual(['172.30.0.5', '172.31.0.5']);
    const vnicsA = await a.host.links.listVnics();
    for (const p of portsA) expect(vnicsA.find((v) => v.link === p.name)?.name).toBe(`v${p.name}`);

    // SSH from a1 to b1: no V2P mapping yet, so a1's packet has nowhere to go.
    const trace = async (sled: TestAgent, packet: object) => {
      const res = await sled.request('POST', '/sim/net/trace', packet);
      expect(res.status).toBe(200);
      return res.body;
    };
    expect(await trace(a, tcp(a1, b1, 22, 'out', VPC1.vni))).toMatchObject({ verdict: 'no_route' });
    const setV2P = async (sled: TestAgent, g: Guest, underlay: string) => {
      const res = await sled.request('PUT', `/v2p/${randomUUID()}`, {
        virtual_ip: g.nic.ip, virtual_mac: g.nic.mac, physical_host_ip: underlay, vni: g.nic.vni,
      });
      expect(res.status).toBe(204);
    };
    const interfaceB1 = randomUUID();
    expect((await a.request('PUT', `/v2p/${interfaceB1}`, {
      virtual_ip: b1.nic.ip, virtual_mac: b1.nic.mac, physical_host_ip: SLED_B, vni: VPC1.vni,
    })).status).toBe(204);
    await setV2P(b, a1, SLED_A);
    const out = await trace(a, tcp(a1, b1, 22, 'out', VPC1.vni));
    expect(out).toMatchObject({ verdict: 'allow', next: { underlay: SLED_B } });
    expect(await trace(b, tcp(a1, b1, 22, 'in', VPC1.vni))).toMatchObject({ verdict: 'allow' });
    expect((await a.request('GET', '/v2p')).body).toContainEqual(expect.objectContaining({ interface_id: interfaceB1, virtual_ip: b1.nic.ip }));

    // TCP 80 from outside the VPC: denied inbound by default, allowed once VPC 1's rules say so,
    // and VPC 2's port keeps its own rules.
    expect(await trace(b, tcp('10.9.9.9', b1, 80, 'in', VPC1.vni))).toMatchObject({ verdict: 'deny', rule: 'default' });
    expect(await trace(a, tcp('10.9.9.9', a2, 80, 'in', VPC2.vni))).toMatchObject({ verdict: 'deny' });
    const rules = [...defaultVpcRules([VPC1.subnet]), allowTcpInbound(80)];
    for (const sled of [a, b]) {
      expect((await sled.request('PUT', `/vpc/${VPC1.id}/firewall/rules`, { vni: VPC1.vni, rules })).status).toBe(204);
    }
    expect(await trace(b, tcp('10.9.9.9', b1, 80, 'in', VPC1.vni))).toMatchObject({ verdict: 'allow' });
    expect(await trace(a, tcp('10.9.9.9', a2, 80, 'in', VPC2.vni))).toMatchObject({ verdict: 'deny' });

    // A deleted mapping stops the traffic; the local port's own entry stays.
    expect((await a.request('DELETE', `/v2p/${interfaceB1}`, {
      virtual_ip: b1.nic.ip, virtual_mac: b1.nic.mac, physical_host_ip: SLED_B, vni: VPC1.vni,
    })).status).toBe(204);
    expect(await trace(a, tcp(a1, b1, 22, 'out', VPC1.vni))).toMatchObject({ verdict: 'no_route' });
    expect((await a.host.network.dumpV2P()).some((m) => m.virtualIp === a1.nic.ip)).toBe(true);

    // A destroyed instance leaves no port or VNIC behind.
    expect((await a.request('PUT', `/instances/${a2.id}`, body(a2, 'destroyed', VPC2))).status).toBe(200);
    await a.running.agent.instances.whenGone(a2.id);
    expect((await a.host.network.listPorts()).map((p) => p.ip4)).toEqual(['172.30.0.5']);
    expect((await a.host.links.listVnics()).filter((v) => v.name.startsWith('vopte')).map((v) => v.link))
      .toEqual((await a.host.network.listPorts()).map((p) => p.name));
    expect(nexus!.requests.filter(instancePuts(a2.id)).at(-1)?.body.run_state).toBe('stopped');
  });

  it('adopts its ports across a restart, with their rules in force, and removes orphan ports', async () => {
    const [a] = await sleds();
    const a1 = guest(VPC1, 5, 'A8:40:25:F0:00:01');
    await a.request('PUT', `/instances/${a1.id}`, body(a1, 'running', VPC1));
    await nexusSees(nexus!, a1.id, 'running');
    const rules = [...defaultVpcRules([VPC1.subnet]), allowTcpInbound(80)];
    await a.request('PUT', `/vpc/${VPC1.id}/firewall/rules`, { vni: VPC1.vni, rules });
    const [port] = await a.host.network.listPorts();
    // An orphan: a port (and the VNIC over it) no ledger claims.
    await a.host.network.createPort({
      name: 'opte77', guestMac: 'A8:40:25:F0:00:77', privateIp: '172.30.0.77', subnet: VPC1.subnet, gatewayMac: 'a8:40:25:ff:77:77',
      gatewayIp: '172.30.0.1', vni: VPC1.vni, underlayAddr: SLED_A, external: { snat: null, ephemeralIp: null, floatingIps: [] },
    });
    await a.host.links.createVnic({ name: 'vopte77', link: 'opte77', mac: 'A8:40:25:F0:00:77' });

    const again = await a.restart();
    agents = [again];
    expect(again.running.summary.adoptedPorts).toEqual([port!.name]);
    expect(again.running.summary.removedPorts).toEqual(['opte77']);
    await again.running.agent.instances.idle();
    expect((await again.host.network.listPorts()).map((p) => p.name)).toEqual([port!.name]);
    const res = await again.request('POST', '/sim/net/trace', tcp('10.9.9.9', a1, 80, 'in', VPC1.vni));
    expect(res.body).toMatchObject({ verdict: 'allow' });
    // The subnet route is there once, not once per start.
    const dump = await (again.host.network as unknown as { dumpPort(n: string): Promise<{ routes: unknown[] }> }).dumpPort(port!.name);
    expect(dump.routes).toHaveLength(1);
    // A new NIC gets a name above every port the host has had.
    const a3 = guest(VPC1, 9, 'A8:40:25:F0:00:09');
    await again.request('PUT', `/instances/${a3.id}`, body(a3, 'running', VPC1));
    await nexusSees(nexus!, a3.id, 'running');
    const names = (await again.host.network.listPorts()).map((p) => Number(p.name.slice(4)));
    expect(Math.max(...names)).toBeGreaterThan(77);
  });

  it('a run asked during a stop makes the new port with the VPC\'s rules as they are now, not as the instance was created with', async () => {
    const [a] = await sleds();
    const a1 = guest(VPC1, 5, 'A8:40:25:F0:00:01');
    await a.request('PUT', `/instances/${a1.id}`, body(a1, 'running', VPC1));
    const first = await nexusSees(nexus!, a1.id, 'running');
    const rules = [...defaultVpcRules([VPC1.subnet]), allowTcpInbound(80)];
    expect((await a.request('PUT', `/vpc/${VPC1.id}/firewall/rules`, { vni: VPC1.vni, rules })).status).toBe(204);
    expect((await a.request('POST', '/sim/net/trace', tcp('10.9.9.9', a1, 80, 'in', VPC1.vni))).body).toMatchObject({ verdict: 'allow' });

    const runtime = { ...a1.runtime, ...first.body };
    expect((await a.request('PUT', `/instances/${a1.id}`, { ...body(a1, 'stopped', VPC1), initial: { ...body(a1, 'stopped', VPC1).initial, runtime } })).status).toBe(200);
    expect((await a.request('PUT', `/instances/${a1.id}`, { ...body(a1, 'running', VPC1), initial: { ...body(a1, 'running', VPC1).initial, runtime } })).status).toBe(200);
    await nexus!.waitFor((r) => instancePuts(a1.id)(r) && r.body.run_state === 'running' && r.body.gen > first.body.gen + 1, 20_000);
    await a.running.agent.instances.idle();
    expect((await a.request('POST', '/sim/net/trace', tcp('10.9.9.9', a1, 80, 'in', VPC1.vni))).body).toMatchObject({ verdict: 'allow' });
  });

  it.each(['createPort', 'addRouterEntry'] as const)('a VPC\'s rules PUT while a port is being made (in %s) reach that port', async (step) => {
    nexus = await FakeNexus.start();
    let entered!: () => void;
    const inRoute = new Promise<void>((resolve) => { entered = resolve; });
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    const a = await startTestAgent({
      nexus, config: { underlay_address: SLED_A },
      wrapHost: (host) => {
        const network = Object.create(host.network) as typeof host.network;
        const real = host.network[step].bind(host.network) as (...args: unknown[]) => Promise<void>;
        (network as unknown as Record<string, unknown>)[step] = async (...args: unknown[]) => {
          entered();
          await held;
          return real(...args);
        };
        return { ...host, kind: host.kind, links: host.links, zones: host.zones, datasets: host.datasets, events: host.events,
          network, reachable: (zone, addr) => host.reachable(zone, addr), close: () => host.close() };
      },
    });
    agents.push(a);
    const a1 = guest(VPC1, 5, 'A8:40:25:F0:00:01');
    await a.request('PUT', `/instances/${a1.id}`, body(a1, 'running', VPC1));
    await inRoute;
    const rules = [...defaultVpcRules([VPC1.subnet]), allowTcpInbound(80)];
    try {
      expect((await a.request('PUT', `/vpc/${VPC1.id}/firewall/rules`, { vni: VPC1.vni, rules })).status).toBe(204);
    } finally {
      release();
    }
    await nexusSees(nexus, a1.id, 'running');
    expect((await a.request('POST', '/sim/net/trace', tcp('10.9.9.9', a1, 80, 'in', VPC1.vni))).body).toMatchObject({ verdict: 'allow' });
  });

  it('V2P: a late delete naming a sled the guest has left is a no-op; an interface taking an address replaces the old mapping', async () => {
    const [a] = await sleds();
    const mapping = { virtual_ip: '172.30.0.9', virtual_mac: 'A8:40:25:F0:00:09', physical_host_ip: SLED_B, vni: VPC1.vni };
    const nic = randomUUID();
    expect((await a.request('PUT', `/v2p/${nic}`, mapping)).status).toBe(204);
    // The guest moved to a third sled: Nexus sets the new mapping, then a late delete of the old arrives.
    const moved = { ...mapping, physical_host_ip: 'fd00:1122:3344:103::1' };
    expect((await a.request('PUT', `/v2p/${nic}`, moved)).status).toBe(204);
    expect((await a.request('DELETE', `/v2p/${nic}`, mapping)).status).toBe(204);
    expect((await a.host.network.dumpV2P()).find((m) => m.virtualIp === '172.30.0.9')?.physicalHostIp).toBe('fd00:1122:3344:103::1');
    expect((await a.request('GET', '/v2p')).body).toEqual([expect.objectContaining({ interface_id: nic, physical_host_ip: 'fd00:1122:3344:103::1' })]);
    // Another interface takes the address (the first NIC was deleted without its mapping cleared).
    const other = randomUUID();
    expect((await a.request('PUT', `/v2p/${other}`, { ...mapping, virtual_mac: 'A8:40:25:F0:00:0A' })).status).toBe(204);
    expect((await a.request('GET', '/v2p')).body.map((m: { interface_id: string }) => m.interface_id)).toEqual([other]);
    // The delete that names what is held deletes it; again, it is a no-op.
    for (let i = 0; i < 2; i += 1) {
      expect((await a.request('DELETE', `/v2p/${other}`, { ...mapping, virtual_mac: 'a8:40:25:f0:00:0a' })).status).toBe(204);
    }
    expect((await a.request('GET', '/v2p')).body).toEqual([]);
    expect((await a.host.network.dumpV2P()).some((m) => m.virtualIp === '172.30.0.9')).toBe(false);
  });

  it('retries a port whose delete fails, logging it, until it is gone', async () => {
    const [a] = await sleds();
    const a1 = guest(VPC1, 5, 'A8:40:25:F0:00:01');
    await a.request('PUT', `/instances/${a1.id}`, body(a1, 'running', VPC1));
    await nexusSees(nexus!, a1.id, 'running');
    const network = a.host.network;
    const deletePort = network.deletePort.bind(network);
    let refusals = 2;
    let deleted: () => void = () => {};
    const gone = new Promise<void>((resolve) => { deleted = resolve; });
    network.deletePort = async (name) => {
      if (refusals > 0) {
        refusals -= 1;
        throw Object.assign(new Error(`delete-xde ${name}: busy (injected)`), { code: 'OPTE_PORT_BUSY' });
      }
      await deletePort(name);
      deleted();
    };
    await a.request('PUT', `/instances/${a1.id}`, body(a1, 'stopped', VPC1));
    await a.running.agent.instances.whenGone(a1.id);
    await gone;
    expect(refusals).toBe(0);
    expect(await network.listPorts()).toEqual([]);
    expect(a.running.agent.ports.reaping).toEqual([]);
  });

  it('refuses a trace it cannot evaluate with a 400 naming the field', async () => {
    const [a] = await sleds();
    const bad = await a.request('POST', '/sim/net/trace', { vni: 1 << 24, src_ip: '1.2.3.4', dst_ip: '1.2.3.5', protocol: 'TCP', direction: 'out' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/vni/);
  });
});
