// src/sim/opte.ts: the simulated sled's OPTE, as a driver (opteadm's operations and their errors)
// and as a dataplane (trace), alone and as two sleds composed through V2P; then as the sim host's
// network part (SimHost.network): the shared network suite, persistence, ports held by VNICs and
// zones, the modelled opteadm latency.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { opteFirewallRules, type VpcFirewallRule } from '../src/host/firewall.js';
import { OPTE_GATEWAY_MAC, type ExternalIps, type FirewallRule, type PortSpec, type RouterEntry } from '../src/host/index.js';
import { SimHost, SIM_HOST_STATE_FILE } from '../src/sim/host.js';
import { emptySimOpteState, SimOpte, type SimOpteOptions, type TraceAnswer, type TracePacket } from '../src/sim/opte.js';
import { rejection } from './support/host-suite.js';
import { networkSuite } from './support/network-suite.js';
import { simHostsPerTest } from './support/sim-hosts.js';
import { allowTcpInbound, defaultVpcRules } from './support/vpc-rules.js';

const SUBNET = '172.30.0.0/22';
const VNI1 = 1001;
const VNI2 = 2002;
const SLED1 = 'fd00:1122:3344:101::1';
const SLED2 = 'fd00:1122:3344:102::1';
const NO_EXTERNAL: ExternalIps = { snat: null, ephemeralIp: null, floatingIps: [] };
const SUBNET_ROUTE: RouterEntry = { dest: SUBNET, target: { type: 'vpc_subnet', subnet: SUBNET }, class: 'system' };
const DEFAULT_ROUTE: RouterEntry = { dest: '0.0.0.0/0', target: { type: 'internet_gateway' }, class: 'system' };

function spec(name: string, ip: string, mac: string, over: Partial<PortSpec> = {}): PortSpec {
  return {
    name,
    guestMac: mac,
    privateIp: ip,
    subnet: SUBNET,
    gatewayMac: OPTE_GATEWAY_MAC,
    gatewayIp: '172.30.0.1',
    vni: VNI1,
    underlayAddr: SLED1,
    external: NO_EXTERNAL,
    ...over,
  };
}

async function sled(options: SimOpteOptions = {}): Promise<SimOpte> {
  const opte = new SimOpte(options);
  await opte.setUnderlay(['net0', 'net1']);
  return opte;
}

/** A guest NIC as the agent sets it up: port, subnet route, the NIC's rules out of its VPC's. */
async function guest(opte: SimOpte, s: PortSpec, vpcRules: readonly VpcFirewallRule[] = []): Promise<void> {
  await opte.createPort(s);
  await opte.addRouterEntry(s.name, { dest: s.subnet, target: { type: 'vpc_subnet', subnet: s.subnet }, class: 'system' });
  await opte.setFirewallRules(s.name, opteFirewallRules(vpcRules, { vni: s.vni, mac: s.guestMac }));
}

function tcp(from: string, to: string, dport: number, sport = 40000, vni = VNI1): Omit<TracePacket, 'direction'> {
  return { vni, src_ip: from, dst_ip: to, protocol: 'TCP', src_port: sport, dst_port: dport };
}

function reply(p: Omit<TracePacket, 'direction'>): Omit<TracePacket, 'direction'> {
  return { ...p, src_ip: p.dst_ip, dst_ip: p.src_ip, src_port: p.dst_port, dst_port: p.src_port };
}

/**
 * A packet through the rack: out at the sled of its source, then in where the answer says it
 * goes (a local port, or the sled whose underlay address V2P named). What a real rack does with
 * one packet; `in` is absent when it never arrived anywhere.
 */
async function send(rack: Map<string, SimOpte>, from: string, p: Omit<TracePacket, 'direction'>): Promise<{ out: TraceAnswer; in?: TraceAnswer }> {
  const here = rack.get(from)!;
  const out = await here.trace({ ...p, direction: 'out' });
  if (out.verdict !== 'allow' || out.next === undefined) return { out };
  if ('local_port' in out.next) return { out, in: await here.trace({ ...p, direction: 'in' }) };
  if ('underlay' in out.next) {
    const there = rack.get(out.next.underlay);
    if (there === undefined) throw new Error(`no sled ${out.next.underlay} in this rack`);
    return { out, in: await there.trace({ ...p, direction: 'in' }) };
  }
  return { out };
}

describe('SimOpte as a driver', () => {
  it('refuses ports until the xde underlay is set, and a second set is a no-op', async () => {
    const opte = new SimOpte();
    await rejection(opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01')), 'OPTE_NO_UNDERLAY');
    await opte.setUnderlay(['net0', 'net1']);
    await opte.setUnderlay(['net2', 'net3']);
    expect(opte.state.underlay).toEqual(['net0', 'net1']);
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    expect((await opte.listPorts()).map((p) => p.name)).toEqual(['opte0']);
  });

  it('refuses an underlay link the host does not have', async () => {
    const opte = new SimOpte({ linkExists: (l) => l === 'net0' });
    await rejection(opte.setUnderlay(['net0', 'net1']), 'EINVAL', /net1/);
    expect(opte.state.underlay).toBeNull();
  });

  it('keeps port names unique, and (VNI, guest MAC) unique', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await rejection(opte.createPort(spec('opte0', '172.30.0.6', 'a8:40:25:f0:00:02')), 'OPTE_PORT_EXISTS');
    await rejection(opte.createPort(spec('opte1', '172.30.0.6', 'A8:40:25:F0:00:01')), 'OPTE_MAC_EXISTS', /opte0/);
    // The same MAC in another VPC is another NIC.
    await opte.createPort(spec('opte1', '172.30.0.5', 'a8:40:25:f0:00:01', { vni: VNI2 }));
    expect(await opte.listPorts()).toEqual([
      { name: 'opte0', mac: 'a8:40:25:f0:00:01', ip4: '172.30.0.5', ephemeralIp4: null, floatingIp4: [], state: 'running' },
      { name: 'opte1', mac: 'a8:40:25:f0:00:01', ip4: '172.30.0.5', ephemeralIp4: null, floatingIp4: [], state: 'running' },
    ]);
  });

  it('adds the port’s own V2P entry with the port and takes it with the port', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { underlayAddr: 'fd00:1122:3344:0101:0::1' }));
    expect(await opte.dumpV2P()).toEqual([{ virtualIp: '172.30.0.5', virtualMac: 'a8:40:25:f0:00:01', physicalHostIp: SLED1, vni: VNI1 }]);
    await opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    await opte.deletePort('opte0');
    expect(await opte.dumpV2P()).toEqual([{ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 }]);
  });

  it('deletes by (vni, ip) whatever entry is there when the port goes (opte#368)', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    // The NIC moved to another sled (migration) and Nexus said so before the old port went.
    await opte.setV2P({ virtualIp: '172.30.0.5', virtualMac: 'a8:40:25:f0:00:01', physicalHostIp: SLED2, vni: VNI1 });
    await opte.deletePort('opte0');
    expect(await opte.dumpV2P()).toEqual([]);
  });

  it('refuses to delete a port a VNIC holds, and a port that is not there', async () => {
    const held = new Set(['opte0']);
    const opte = await sled({ isPortBusy: (n) => held.has(n) });
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await rejection(opte.deletePort('opte0'), 'OPTE_PORT_BUSY');
    expect((await opte.listPorts()).length).toBe(1);
    held.delete('opte0');
    await opte.deletePort('opte0');
    expect(await opte.listPorts()).toEqual([]);
    await rejection(opte.deletePort('opte0'), 'OPTE_NO_PORT');
  });

  it('appends router entries (twice is two) and deletes one at a time', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await opte.addRouterEntry('opte0', SUBNET_ROUTE);
    await opte.addRouterEntry('opte0', { ...SUBNET_ROUTE, dest: '172.30.0.1/22' });
    expect((await opte.dumpPort('opte0')).routes).toEqual([SUBNET_ROUTE, SUBNET_ROUTE]);
    await opte.delRouterEntry('opte0', SUBNET_ROUTE);
    expect((await opte.dumpPort('opte0')).routes).toEqual([SUBNET_ROUTE]);
    // A different class or target is another entry.
    await rejection(opte.delRouterEntry('opte0', { ...SUBNET_ROUTE, class: 'custom' }), 'OPTE_NO_ENTRY');
    await rejection(opte.delRouterEntry('opte0', { ...SUBNET_ROUTE, target: { type: 'drop' } }), 'OPTE_NO_ENTRY');
    await opte.delRouterEntry('opte0', SUBNET_ROUTE);
    await rejection(opte.delRouterEntry('opte0', SUBNET_ROUTE), 'OPTE_NO_ENTRY', /no matching rule/);
    await rejection(opte.addRouterEntry('opte9', SUBNET_ROUTE), 'OPTE_NO_PORT');
  });

  it('replaces firewall rules and external IPs as whole sets', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { external: { snat: null, ephemeralIp: '10.0.0.5', floatingIps: ['10.0.0.6'] } }));
    const a: FirewallRule = { direction: 'in', action: 'allow', priority: 1, hosts: { type: 'any' }, protocol: 'tcp', ports: [22] };
    const b: FirewallRule = { ...a, ports: [80] };
    await opte.setFirewallRules('opte0', [a]);
    await opte.setFirewallRules('opte0', [b]);
    expect((await opte.dumpPort('opte0')).rules).toEqual([b]);
    await opte.setFirewallRules('opte0', []);
    expect((await opte.dumpPort('opte0')).rules).toEqual([]);
    await opte.setExternalIps('opte0', { snat: { ip: '10.0.0.7', firstPort: 16384, lastPort: 32767 }, ephemeralIp: null, floatingIps: [] });
    const [info] = await opte.listPorts();
    expect([info!.ephemeralIp4, info!.floatingIp4]).toEqual([null, []]);
    expect((await opte.dumpPort('opte0')).spec.external.snat).toEqual({ ip: '10.0.0.7', firstPort: 16384, lastPort: 32767 });
  });

  it('clears a V2P entry by (vni, ip), a local port’s own too; a missing one is OPTE_NO_ENTRY', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    // Another MAC and host in the request: the driver looks at (vni, ip) only.
    await opte.clearV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:0a', physicalHostIp: SLED1, vni: VNI1 });
    await rejection(opte.clearV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 }), 'OPTE_NO_ENTRY');
    await rejection(opte.clearV2P({ virtualIp: '172.30.0.5', virtualMac: 'a8:40:25:f0:00:01', physicalHostIp: SLED1, vni: VNI2 }), 'OPTE_NO_ENTRY');
    await opte.clearV2P({ virtualIp: '172.30.0.5', virtualMac: 'a8:40:25:f0:00:01', physicalHostIp: SLED1, vni: VNI1 });
    expect(await opte.dumpV2P()).toEqual([]);
  });

  it('refuses malformed arguments with EINVAL before touching anything', async () => {
    const opte = await sled();
    await rejection(opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { vni: 2 ** 24 })), 'EINVAL', /VNI/);
    await rejection(opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00')), 'EINVAL', /guest MAC/);
    await rejection(opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { subnet: '172.30.0.0' })), 'EINVAL', /subnet/);
    await rejection(opte.createPort(spec('opte0', 'fd00::5', 'a8:40:25:f0:00:01')), 'EINVAL', /private IP/);
    await rejection(opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { underlayAddr: '10.0.0.1' })), 'EINVAL', /underlay/);
    await rejection(opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { external: { snat: { ip: '10.0.0.1', firstPort: 9, lastPort: 1 }, ephemeralIp: null, floatingIps: [] } })), 'EINVAL', /SNAT/);
    await rejection(opte.createPort(spec('0pte0', '172.30.0.5', 'a8:40:25:f0:00:01')), 'EINVAL', /port name/);
    expect(await opte.listPorts()).toEqual([]);
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    // An IPv4 destination routed to an IPv6 subnet (valid_router_dest_target_pair).
    await rejection(opte.addRouterEntry('opte0', { dest: SUBNET, target: { type: 'vpc_subnet', subnet: 'fd00::/64' }, class: 'system' }), 'EINVAL');
    await rejection(opte.addRouterEntry('opte0', { dest: SUBNET, target: { type: 'ip', ip: 'fd00::1' }, class: 'system' }), 'EINVAL');
    await rejection(opte.addRouterEntry('opte0', { ...SUBNET_ROUTE, class: 'other' as 'system' }), 'EINVAL');
    await rejection(opte.setFirewallRules('opte0', [{ direction: 'in', action: 'allow', priority: 65536, hosts: { type: 'any' }, protocol: 'any', ports: 'any' }]), 'EINVAL');
    await rejection(opte.setFirewallRules('opte0', [{ direction: 'in', action: 'allow', priority: 1, hosts: { type: 'any' }, protocol: 'any', ports: [] }]), 'EINVAL');
    await rejection(opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: '10.1.1.1', vni: VNI1 }), 'EINVAL');
    const dump = await opte.dumpPort('opte0');
    expect([dump.routes, dump.rules]).toEqual([[], []]);
  });

  it('says why OPTE is missing and fails every call with OPTE_UNAVAILABLE', async () => {
    const opte = new SimOpte({ unavailable: 'no /kernel/drv/xde.conf' });
    expect(await opte.available()).toEqual({ available: false, reason: 'no /kernel/drv/xde.conf' });
    await rejection(opte.setUnderlay(['net0', 'net1']), 'OPTE_UNAVAILABLE');
    await rejection(opte.listPorts(), 'OPTE_UNAVAILABLE');
    await rejection(opte.dumpV2P(), 'OPTE_UNAVAILABLE');
    expect(await new SimOpte().available()).toEqual({ available: true });
  });

  it('waits out one modelled opteadm run per call before it acts', async () => {
    const calls: Array<[string, string | null]> = [];
    let release: () => void = () => {};
    let gate: Promise<void> | null = null;
    const opte = new SimOpte({
      latency: (op, port) => {
        calls.push([op, port]);
        return gate ?? Promise.resolve();
      },
    });
    await opte.setUnderlay(['net0', 'net1']);
    gate = new Promise<void>((resolve) => (release = resolve));
    const creating = opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(opte.state.ports).toEqual([]);
    release();
    await creating;
    gate = null;
    expect(opte.state.ports.length).toBe(1);
    await opte.addRouterEntry('opte0', SUBNET_ROUTE);
    await opte.setFirewallRules('opte0', []);
    await opte.setExternalIps('opte0', NO_EXTERNAL);
    await opte.listPorts();
    await opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    await opte.clearV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    await opte.dumpV2P();
    await opte.delRouterEntry('opte0', SUBNET_ROUTE);
    await opte.deletePort('opte0');
    expect(calls).toEqual([
      ['set-xde-underlay', null],
      ['create-xde', 'opte0'],
      ['add-router-entry', 'opte0'],
      ['set-fw-rules', 'opte0'],
      ['set-external-ips', 'opte0'],
      ['list-ports', null],
      ['set-v2p', null],
      ['clear-v2p', null],
      ['dump-v2p', null],
      ['del-router-entry', 'opte0'],
      ['delete-xde', 'opte0'],
    ]);
  });

  it('persists after every change, and a new instance over the saved JSON carries on', async () => {
    const state = emptySimOpteState();
    let saved = '';
    let writes = 0;
    const persist = (): Promise<void> => {
      saved = JSON.stringify(state);
      writes += 1;
      return Promise.resolve();
    };
    const opte = await sled({ state, persist });
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), defaultVpcRules([{ type: 'vpc', value: VNI1 }]));
    await guest(opte, spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02'), defaultVpcRules([{ type: 'vpc', value: VNI1 }]));
    const before = writes;
    await opte.listPorts();
    expect(writes).toBe(before);
    // An outbound flow, so the reply is allowed only through the flow table.
    expect((await opte.trace({ ...tcp('172.30.0.5', '172.30.0.6', 8080), direction: 'out' })).verdict).toBe('allow');
    expect(writes).toBe(before + 1);
    const again = new SimOpte({ state: JSON.parse(saved) });
    await rejection(again.createPort(spec('opte0', '172.30.0.7', 'a8:40:25:f0:00:07')), 'OPTE_PORT_EXISTS');
    const back = await again.trace({ ...reply(tcp('172.30.0.5', '172.30.0.6', 8080)), vni: VNI1, direction: 'in' });
    expect([back.verdict, back.rule]).toEqual(['allow', 'flow']);
  });
});

describe('SimOpte as a dataplane', () => {
  const vpcRules = defaultVpcRules([{ type: 'vpc', value: VNI1 }]);

  it('delivers to a guest in its VPC on the same sled under the default rules', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), vpcRules);
    await guest(opte, spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02'), vpcRules);
    const rack = new Map([[SLED1, opte]]);
    const { out, in: inb } = await send(rack, SLED1, tcp('172.30.0.5', '172.30.0.6', 5432));
    expect(out).toEqual({
      verdict: 'allow',
      port: 'opte0',
      layer: 'firewall',
      rule: 'default',
      reason: expect.any(String),
      route: '172.30.0.0/22 sub4=172.30.0.0/22 system',
      next: { local_port: 'opte1' },
    });
    expect(inb).toMatchObject({ verdict: 'allow', port: 'opte1', layer: 'firewall', rule: 'dir=in action=allow priority=65534 hosts=vni=1001 protocol=any port=any' });
  });

  it('denies inbound by default: a port with no rules receives nothing new', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), vpcRules);
    await guest(opte, spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02'), []);
    const { out, in: inb } = await send(new Map([[SLED1, opte]]), SLED1, tcp('172.30.0.5', '172.30.0.6', 22));
    expect(out.verdict).toBe('allow');
    expect(inb).toMatchObject({ verdict: 'deny', port: 'opte1', layer: 'firewall', rule: 'default' });
  });

  it('denies TCP 80 from outside the VPC until a rule allows it; SSH passes all along', async () => {
    const opte = await sled();
    const s = spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { external: { snat: null, ephemeralIp: '203.0.113.5', floatingIps: [] } });
    await guest(opte, s, vpcRules);
    const web = { vni: VNI1, src_ip: '198.51.100.7', dst_ip: '203.0.113.5', protocol: 'TCP' as const, src_port: 50000, dst_port: 80, direction: 'in' as const };
    expect(await opte.trace(web)).toMatchObject({ verdict: 'deny', port: 'opte0', layer: 'firewall', rule: 'default', translated: { dst_ip: '172.30.0.5', dst_port: 80 } });
    expect(await opte.trace({ ...web, dst_port: 22 })).toMatchObject({ verdict: 'allow', rule: 'dir=in action=allow priority=65534 hosts=any protocol=tcp port=22' });
    await opte.setFirewallRules('opte0', opteFirewallRules([...vpcRules, allowTcpInbound(80)], { vni: VNI1, mac: s.guestMac }));
    expect(await opte.trace(web)).toMatchObject({ verdict: 'allow', rule: 'dir=in action=allow priority=100 hosts=any protocol=tcp port=80' });
  });

  it('lets a reply in through the flow an outbound packet made, and only that reply', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), []);
    const p = tcp('172.30.0.5', '172.30.0.6', 443, 41000);
    await opte.setV2P({ virtualIp: '172.30.0.6', virtualMac: 'a8:40:25:f0:00:02', physicalHostIp: SLED2, vni: VNI1 });
    expect(await opte.trace({ ...reply(p), direction: 'in' })).toMatchObject({ verdict: 'deny', rule: 'default' });
    expect(await opte.trace({ ...p, direction: 'out' })).toMatchObject({ verdict: 'allow', rule: 'default', next: { underlay: SLED2 } });
    expect(await opte.trace({ ...reply(p), direction: 'in' })).toMatchObject({ verdict: 'allow', rule: 'flow', flow: { direction: 'out', rule: 'default' } });
    // Another source port is another flow.
    expect(await opte.trace({ ...reply(p), dst_port: 41001, direction: 'in' })).toMatchObject({ verdict: 'deny' });
    // New rules invalidate the port's flows (Layer::set_rules).
    await opte.setFirewallRules('opte0', []);
    expect(await opte.trace({ ...reply(p), direction: 'in' })).toMatchObject({ verdict: 'deny', rule: 'default' });
  });

  it('lets a reply out through the flow an inbound packet made, past an outbound deny', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), [
      allowTcpInbound(80),
      { status: 'enabled', direction: 'outbound', targets: [], filter_hosts: null, filter_ports: null, filter_protocols: null, action: 'deny', priority: 10 },
    ]);
    await opte.setV2P({ virtualIp: '172.30.0.6', virtualMac: 'a8:40:25:f0:00:02', physicalHostIp: SLED2, vni: VNI1 });
    const p = tcp('172.30.0.6', '172.30.0.5', 80, 50123);
    expect(await opte.trace({ ...reply(p), direction: 'out' })).toMatchObject({ verdict: 'deny', rule: 'dir=out action=deny priority=10 hosts=any protocol=any port=any' });
    expect(await opte.trace({ ...p, direction: 'in' })).toMatchObject({ verdict: 'allow' });
    expect(await opte.trace({ ...reply(p), direction: 'out' })).toMatchObject({ verdict: 'allow', rule: 'flow', flow: { direction: 'in' }, next: { underlay: SLED2 } });
  });

  it('picks the lowest priority value, and a deny at a tie', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    const allow = (priority: number): FirewallRule => ({ direction: 'in', action: 'allow', priority, hosts: { type: 'any' }, protocol: 'tcp', ports: [80] });
    const deny = (priority: number): FirewallRule => ({ ...allow(priority), action: 'deny' });
    const p = { ...tcp('172.30.0.6', '172.30.0.5', 80), direction: 'in' as const };
    const cases: Array<[FirewallRule[], string]> = [
      [[allow(200), deny(100)], 'deny'],
      [[deny(200), allow(100)], 'allow'],
      [[allow(100), deny(100)], 'deny'],
      [[deny(100), allow(100)], 'deny'],
    ];
    for (const [rules, verdict] of cases) {
      await opte.setFirewallRules('opte0', rules);
      expect((await opte.trace(p)).verdict, JSON.stringify(rules)).toBe(verdict);
    }
  });

  it('filters rules by host, protocol and port; a port filter never matches ICMP', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    const only = async (rule: Omit<FirewallRule, 'direction' | 'action' | 'priority'>): Promise<void> =>
      opte.setFirewallRules('opte0', [{ direction: 'in', action: 'allow', priority: 1, ...rule }]);
    const from = (src: string, protocol: TracePacket['protocol'] = 'TCP', dport = 80): TracePacket =>
      protocol === 'ICMP'
        ? { vni: VNI1, src_ip: src, dst_ip: '172.30.0.5', protocol, direction: 'in' }
        : { vni: VNI1, src_ip: src, dst_ip: '172.30.0.5', protocol, src_port: 1234, dst_port: dport, direction: 'in' };
    const verdict = async (p: TracePacket): Promise<string> => (await opte.trace(p)).verdict;

    await only({ hosts: { type: 'ip', ip: '172.30.0.9' }, protocol: 'any', ports: 'any' });
    expect([await verdict(from('172.30.0.9')), await verdict(from('172.30.0.10'))]).toEqual(['allow', 'deny']);
    await only({ hosts: { type: 'subnet', subnet: '172.30.1.0/24' }, protocol: 'any', ports: 'any' });
    expect([await verdict(from('172.30.1.200')), await verdict(from('172.30.2.1'))]).toEqual(['allow', 'deny']);
    await only({ hosts: { type: 'any' }, protocol: 'udp', ports: 'any' });
    expect([await verdict(from('172.30.0.9', 'UDP')), await verdict(from('172.30.0.9', 'TCP'))]).toEqual(['allow', 'deny']);
    await only({ hosts: { type: 'any' }, protocol: 'any', ports: [80, 443] });
    expect([await verdict(from('172.30.0.9', 'TCP', 443)), await verdict(from('172.30.0.9', 'TCP', 8080)), await verdict(from('172.30.0.9', 'ICMP'))]).toEqual([
      'allow',
      'deny',
      'deny',
    ]);
    await only({ hosts: { type: 'any' }, protocol: 'icmp', ports: 'any' });
    expect([await verdict(from('172.30.0.9', 'ICMP')), await verdict(from('172.30.0.9', 'UDP'))]).toEqual(['allow', 'deny']);
  });

  it('matches a vni host filter only on packets that came over that VPC', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { external: { snat: null, ephemeralIp: '203.0.113.5', floatingIps: [] } }));
    await opte.setFirewallRules('opte0', [
      { direction: 'in', action: 'allow', priority: 1, hosts: { type: 'vni', vni: VNI1 }, protocol: 'any', ports: 'any' },
      { direction: 'out', action: 'deny', priority: 1, hosts: { type: 'vni', vni: VNI1 }, protocol: 'any', ports: 'any' },
    ]);
    expect((await opte.trace({ ...tcp('172.30.0.9', '172.30.0.5', 8080), direction: 'in' })).verdict).toBe('allow');
    // From outside the rack through the ephemeral IP: the overlay set no VNI for the filter.
    expect((await opte.trace({ ...tcp('198.51.100.7', '203.0.113.5', 8080), direction: 'in' })).verdict).toBe('deny');
    // Outbound, the firewall runs before the overlay: the deny does not match.
    await opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    expect(await opte.trace({ ...tcp('172.30.0.5', '172.30.0.9', 9090), direction: 'out' })).toMatchObject({ verdict: 'allow', rule: 'default' });
  });

  it('routes by the longest prefix, custom over system, a drop at a tie; no route is no_route', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { external: { snat: { ip: '203.0.113.1', firstPort: 0, lastPort: 16383 }, ephemeralIp: null, floatingIps: [] } }));
    await opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    const out = (dst: string): Promise<TraceAnswer> => opte.trace({ ...tcp('172.30.0.5', dst, 80), direction: 'out' });
    expect(await out('172.30.0.9')).toMatchObject({ verdict: 'no_route', layer: 'router', rule: 'default' });
    await opte.addRouterEntry('opte0', DEFAULT_ROUTE);
    await opte.addRouterEntry('opte0', SUBNET_ROUTE);
    expect(await out('172.30.0.9')).toMatchObject({ verdict: 'allow', route: '172.30.0.0/22 sub4=172.30.0.0/22 system', next: { underlay: SLED2 } });
    expect(await out('8.8.8.8')).toMatchObject({ verdict: 'allow', route: '0.0.0.0/0 ig system', next: { internet_gateway: { src_ip: '203.0.113.1', via: 'snat' } } });
    await opte.addRouterEntry('opte0', { dest: '172.30.0.9/32', target: { type: 'drop' }, class: 'custom' });
    expect(await out('172.30.0.9')).toMatchObject({ verdict: 'deny', layer: 'router', rule: '172.30.0.9/32 drop custom' });
    expect((await out('172.30.0.10')).verdict).toBe('no_route'); // routed, but no V2P
    // Same prefix: the custom entry beats the system one.
    await opte.addRouterEntry('opte0', { dest: '8.8.8.0/24', target: { type: 'drop' }, class: 'system' });
    await opte.addRouterEntry('opte0', { dest: '8.8.8.0/24', target: { type: 'internet_gateway' }, class: 'custom' });
    expect(await out('8.8.8.8')).toMatchObject({ verdict: 'allow', route: '8.8.8.0/24 ig custom' });
    // Same prefix and class: the drop wins.
    await opte.addRouterEntry('opte0', { dest: '8.8.8.0/24', target: { type: 'drop' }, class: 'custom' });
    expect(await out('8.8.8.8')).toMatchObject({ verdict: 'deny', rule: '8.8.8.0/24 drop custom' });
  });

  it('sends a packet to an ip target where V2P puts that ip', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await opte.addRouterEntry('opte0', { dest: '10.99.0.0/16', target: { type: 'ip', ip: '172.30.0.9' }, class: 'custom' });
    expect(await opte.trace({ ...tcp('172.30.0.5', '10.99.1.1', 80), direction: 'out' })).toMatchObject({ verdict: 'no_route', layer: 'overlay' });
    await opte.setV2P({ virtualIp: '172.30.0.9', virtualMac: 'a8:40:25:f0:00:09', physicalHostIp: SLED2, vni: VNI1 });
    expect(await opte.trace({ ...tcp('172.30.0.5', '10.99.1.1', 80), direction: 'out' })).toMatchObject({ verdict: 'allow', next: { underlay: SLED2 } });
  });

  it('reaches a guest on another sled once V2P is set, not before, and not after it is cleared', async () => {
    const s1 = await sled();
    const s2 = await sled();
    const a = spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { underlayAddr: SLED1 });
    const b = spec('opte0', '172.30.0.6', 'a8:40:25:f0:00:02', { underlayAddr: SLED2 });
    await guest(s1, a, vpcRules);
    await guest(s2, b, vpcRules);
    const rack = new Map([
      [SLED1, s1],
      [SLED2, s2],
    ]);
    const p = tcp('172.30.0.5', '172.30.0.6', 5432);
    expect((await send(rack, SLED1, p)).out).toMatchObject({ verdict: 'no_route', layer: 'overlay', reason: expect.stringMatching(/no V2P mapping/) });

    const toB = { virtualIp: b.privateIp, virtualMac: b.guestMac, physicalHostIp: SLED2, vni: VNI1 };
    const toA = { virtualIp: a.privateIp, virtualMac: a.guestMac, physicalHostIp: SLED1, vni: VNI1 };
    await s1.setV2P(toB);
    const there = await send(rack, SLED1, p);
    expect(there.out).toMatchObject({ verdict: 'allow', port: 'opte0', next: { underlay: SLED2 } });
    expect(there.in).toMatchObject({ verdict: 'allow', port: 'opte0', rule: 'dir=in action=allow priority=65534 hosts=vni=1001 protocol=any port=any' });

    // The reply: sled 2 needs its own V2P entry for A to send it back at all.
    expect((await send(rack, SLED2, reply(p))).out).toMatchObject({ verdict: 'no_route', layer: 'overlay' });
    await s2.setV2P(toA);
    const back = await send(rack, SLED2, reply(p));
    expect(back.out).toMatchObject({ verdict: 'allow', rule: 'flow', flow: { direction: 'in' }, next: { underlay: SLED1 } });
    expect(back.in).toMatchObject({ verdict: 'allow', rule: 'flow', flow: { direction: 'out' } });

    await s1.clearV2P(toB);
    expect((await send(rack, SLED1, p)).out).toMatchObject({ verdict: 'no_route', layer: 'overlay' });
  });

  it('cannot deliver locally once the local port’s own V2P entry is cleared (why the agent must not)', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), vpcRules);
    await guest(opte, spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02'), vpcRules);
    await opte.clearV2P({ virtualIp: '172.30.0.6', virtualMac: 'a8:40:25:f0:00:02', physicalHostIp: SLED1, vni: VNI1 });
    expect(await opte.trace({ ...tcp('172.30.0.5', '172.30.0.6', 22), direction: 'out' })).toMatchObject({ verdict: 'no_route', layer: 'overlay' });
  });

  it('keeps VPCs apart: rules for one VNI never reach another VNI’s ports, nor its packets', async () => {
    const opte = await sled();
    const v1 = spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01');
    const v1b = spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02');
    // VPC 2 reuses the same subnet, addresses and even a MAC.
    const v2 = spec('opte2', '172.30.0.5', 'a8:40:25:f0:00:01', { vni: VNI2 });
    const v2b = spec('opte3', '172.30.0.6', 'a8:40:25:f0:00:03', { vni: VNI2 });
    const rules1 = [...defaultVpcRules([{ type: 'vpc', value: VNI1 }]), { ...allowTcpInbound(80), targets: [{ vni: VNI1, mac: v1b.guestMac }] }];
    const rules2 = defaultVpcRules([{ type: 'vpc', value: VNI2 }]);
    for (const [s, r] of [
      [v1, rules1],
      [v1b, rules1],
      [v2, rules2],
      [v2b, rules2],
    ] as const) {
      await guest(opte, s, r);
    }
    const rack = new Map([[SLED1, opte]]);
    // The VPC 1 rule for TCP 80 targets one NIC of VPC 1: VPC 2's port with the same IP gets none.
    expect((await opte.dumpPort('opte1')).rules.length).toBe(5);
    expect((await opte.dumpPort('opte3')).rules.length).toBe(4);
    expect(await opte.trace({ ...tcp('172.30.0.5', '172.30.0.6', 80, 1, VNI1), direction: 'in' })).toMatchObject({
      verdict: 'allow',
      port: 'opte1',
      rule: 'dir=in action=allow priority=100 hosts=any protocol=tcp port=80',
    });
    expect(await opte.trace({ ...tcp('172.30.0.5', '172.30.0.6', 80, 1, VNI2), direction: 'in' })).toMatchObject({
      verdict: 'allow',
      port: 'opte3',
      rule: 'dir=in action=allow priority=65534 hosts=vni=2002 protocol=any port=any',
    });
    // Same addresses, other VNI: each packet stays in its VPC.
    expect((await send(rack, SLED1, tcp('172.30.0.5', '172.30.0.6', 22, 40000, VNI1))).out.next).toEqual({ local_port: 'opte1' });
    expect((await send(rack, SLED1, tcp('172.30.0.5', '172.30.0.6', 22, 40000, VNI2))).out.next).toEqual({ local_port: 'opte3' });
    // A VPC 1 update applied the way the agent must (to VNI 1's ports only) leaves VPC 2 as it was.
    const before = await opte.dumpPort('opte3');
    for (const s of [v1, v1b]) await opte.setFirewallRules(s.name, opteFirewallRules([], { vni: s.vni, mac: s.guestMac }));
    expect(await opte.dumpPort('opte3')).toEqual(before);
    expect((await send(rack, SLED1, tcp('172.30.0.5', '172.30.0.6', 22, 40001, VNI1))).in?.verdict).toBe('deny');
    expect((await send(rack, SLED1, tcp('172.30.0.5', '172.30.0.6', 22, 40001, VNI2))).in?.verdict).toBe('allow');
  });

  it('says no_port for an address or VNI no port here has, and refuses a malformed packet', async () => {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    expect(await opte.trace({ ...tcp('172.30.0.7', '172.30.0.5', 80), direction: 'out' })).toMatchObject({ verdict: 'no_port', port: null, layer: null });
    expect(await opte.trace({ ...tcp('172.30.0.7', '172.30.0.5', 80, 1, VNI2), direction: 'in' })).toMatchObject({ verdict: 'no_port' });
    const ok: TracePacket = { ...tcp('172.30.0.5', '172.30.0.6', 80), direction: 'out' };
    await rejection(opte.trace({ ...ok, dst_port: undefined }), 'EINVAL', /dst_port/);
    await rejection(opte.trace({ ...ok, dst_port: 70000 }), 'EINVAL');
    await rejection(opte.trace({ ...ok, src_ip: '172.30.0.256' }), 'EINVAL');
    await rejection(opte.trace({ ...ok, protocol: 'SCTP' as 'TCP' }), 'EINVAL');
    await rejection(opte.trace({ ...ok, direction: 'up' as 'in' }), 'EINVAL');
    await rejection(opte.trace({ vni: VNI1, src_ip: '172.30.0.5', dst_ip: '172.30.0.6', protocol: 'ICMP', dst_port: 1, direction: 'out' }), 'EINVAL', /ICMP/);
  });

  it('answers ICMP to the virtual gateway at the gateway layer', async () => {
    const opte = await sled();
    await opte.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    expect(await opte.trace({ vni: VNI1, src_ip: '172.30.0.5', dst_ip: '172.30.0.1', protocol: 'ICMP', direction: 'out' })).toMatchObject({
      verdict: 'allow',
      layer: 'gateway',
      next: { gateway: '172.30.0.1' },
    });
  });
});

describe('SimOpte external addressing', () => {
  const internet = (sport = 40000): Omit<TracePacket, 'direction'> => tcp('172.30.0.5', '93.184.216.34', 443, sport);

  async function primary(external: ExternalIps): Promise<SimOpte> {
    const opte = await sled();
    await guest(opte, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01', { external }), defaultVpcRules([{ type: 'vpc', value: VNI1 }]));
    await guest(opte, spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02'), defaultVpcRules([{ type: 'vpc', value: VNI1 }]));
    for (const p of ['opte0', 'opte1']) await opte.addRouterEntry(p, DEFAULT_ROUTE);
    return opte;
  }

  it('leaves with a floating IP, else the ephemeral IP, else the SNAT IP and a port of its block', async () => {
    const snat = { ip: '203.0.113.1', firstPort: 16384, lastPort: 32767 };
    const opte = await primary({ snat, ephemeralIp: '203.0.113.5', floatingIps: ['203.0.113.9'] });
    expect((await opte.trace({ ...internet(), direction: 'out' })).next).toEqual({ internet_gateway: { src_ip: '203.0.113.9', src_port: 40000, via: 'floating' } });
    await opte.setExternalIps('opte0', { snat, ephemeralIp: '203.0.113.5', floatingIps: [] });
    expect((await opte.trace({ ...internet(), direction: 'out' })).next).toEqual({ internet_gateway: { src_ip: '203.0.113.5', src_port: 40000, via: 'ephemeral' } });
    await opte.setExternalIps('opte0', { snat, ephemeralIp: null, floatingIps: [] });
    expect((await opte.trace({ ...internet(40000), direction: 'out' })).next).toEqual({ internet_gateway: { src_ip: '203.0.113.1', src_port: 16384, via: 'snat' } });
    expect((await opte.trace({ ...internet(40001), direction: 'out' })).next).toEqual({ internet_gateway: { src_ip: '203.0.113.1', src_port: 16385, via: 'snat' } });
    // The same flow again keeps its port.
    expect((await opte.trace({ ...internet(40000), direction: 'out' })).next).toEqual({ internet_gateway: { src_ip: '203.0.113.1', src_port: 16384, via: 'snat' } });
  });

  it('gives a port without external IPs (a secondary NIC) no way out', async () => {
    const opte = await primary({ snat: { ip: '203.0.113.1', firstPort: 0, lastPort: 16383 }, ephemeralIp: null, floatingIps: [] });
    expect(await opte.trace({ ...tcp('172.30.0.6', '93.184.216.34', 443), direction: 'out' })).toMatchObject({ verdict: 'no_route', port: 'opte1', layer: 'nat' });
  });

  it('lets a reply to a SNAT flow in, translated back; nothing else comes in on the SNAT IP', async () => {
    const opte = await primary({ snat: { ip: '203.0.113.1', firstPort: 16384, lastPort: 32767 }, ephemeralIp: null, floatingIps: [] });
    const unsolicited = { vni: VNI1, src_ip: '93.184.216.34', dst_ip: '203.0.113.1', protocol: 'TCP' as const, src_port: 443, dst_port: 16384, direction: 'in' as const };
    expect(await opte.trace(unsolicited)).toMatchObject({ verdict: 'deny', port: 'opte0', layer: 'nat' });
    await opte.trace({ ...internet(40000), direction: 'out' });
    expect(await opte.trace(unsolicited)).toMatchObject({ verdict: 'allow', port: 'opte0', rule: 'flow', translated: { dst_ip: '172.30.0.5', dst_port: 40000 } });
    expect((await opte.trace({ ...unsolicited, dst_port: 16385 })).verdict).toBe('deny');
    // Outside the port's block, nobody on this sled has it.
    expect((await opte.trace({ ...unsolicited, dst_port: 80 })).verdict).toBe('no_port');
  });

  it('takes a packet to the ephemeral IP in as one to the private IP; the reply leaves from the ephemeral IP', async () => {
    const opte = await primary({ snat: null, ephemeralIp: '203.0.113.5', floatingIps: ['203.0.113.9'] });
    const ssh = { vni: VNI1, src_ip: '198.51.100.7', dst_ip: '203.0.113.5', protocol: 'TCP' as const, src_port: 50000, dst_port: 22, direction: 'in' as const };
    expect(await opte.trace(ssh)).toMatchObject({ verdict: 'allow', port: 'opte0', translated: { dst_ip: '172.30.0.5', dst_port: 22 } });
    const back = await opte.trace({ vni: VNI1, src_ip: '172.30.0.5', dst_ip: '198.51.100.7', protocol: 'TCP', src_port: 22, dst_port: 50000, direction: 'out' });
    expect(back).toMatchObject({ verdict: 'allow', rule: 'flow', next: { internet_gateway: { src_ip: '203.0.113.5', src_port: 22, via: 'ephemeral' } } });
    // A floating IP receives too.
    expect(await opte.trace({ ...ssh, dst_ip: '203.0.113.9' })).toMatchObject({ verdict: 'allow', translated: { dst_ip: '172.30.0.5' } });
    // Changing the external IPs drops the NAT state: the reply now leaves by the floating IP.
    await opte.setExternalIps('opte0', { snat: null, ephemeralIp: '203.0.113.5', floatingIps: ['203.0.113.9'] });
    const later = await opte.trace({ vni: VNI1, src_ip: '172.30.0.5', dst_ip: '198.51.100.7', protocol: 'TCP', src_port: 22, dst_port: 50000, direction: 'out' });
    expect(later.next).toEqual({ internet_gateway: { src_ip: '203.0.113.9', src_port: 22, via: 'floating' } });
  });
});

// ---- as the sim host's network part ----

const { tempDir, openHost } = simHostsPerTest('sim-opte-', { links: ['stub0', 'net0', 'net1'] });

networkSuite('sim', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'sim-opte-suite-'));
  const host = await SimHost.open({ stateDir, links: ['stub0', 'net0', 'net1'] });
  return {
    network: host.network,
    links: host.links,
    underlay: ['net0', 'net1'],
    async cleanup(): Promise<void> {
      try {
        await host.close();
      } finally {
        await rm(stateDir, { recursive: true, force: true });
      }
    },
  };
});

describe('SimHost.network', () => {
  const rules = defaultVpcRules([{ type: 'vpc', value: VNI1 }]);

  it('keeps ports, rules, routes, V2P and flows across a new SimHost on the directory, as the kernel does', async () => {
    const dir = await tempDir();
    const first = await openHost({ stateDir: dir });
    await first.network.setUnderlay(['net0', 'net1']);
    await guest(first.network, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), rules);
    await first.network.setV2P({ virtualIp: '172.30.0.6', virtualMac: 'a8:40:25:f0:00:02', physicalHostIp: SLED2, vni: VNI1 });
    const p = tcp('172.30.0.5', '172.30.0.6', 8080);
    expect(await first.trace({ ...p, direction: 'out' })).toMatchObject({ verdict: 'allow', next: { underlay: SLED2 } });
    await first.close();

    const second = await openHost({ stateDir: dir });
    expect((await second.network.listPorts()).map((x) => x.name)).toEqual(['opte0']);
    expect((await second.network.dumpV2P()).map((m) => m.virtualIp).sort()).toEqual(['172.30.0.5', '172.30.0.6']);
    expect((await second.network.dumpPort('opte0')).rules.length).toBe(4);
    expect(await second.trace({ ...reply(p), direction: 'in' })).toMatchObject({ verdict: 'allow', rule: 'flow' });
    // The underlay stays set: ports can be made without setting it again.
    await second.network.createPort(spec('opte1', '172.30.0.7', 'a8:40:25:f0:00:07'));
  });

  it('reads a state file from before the network part (no "opte" field) as a host without ports', async () => {
    const dir = await tempDir();
    const first = await openHost({ stateDir: dir });
    await first.close();
    const file = join(dir, SIM_HOST_STATE_FILE);
    const raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(raw.opte).toEqual(emptySimOpteState());
    delete raw.opte;
    await writeFile(file, JSON.stringify(raw));
    const second = await openHost({ stateDir: dir });
    expect(await second.network.listPorts()).toEqual([]);
    await rejection(second.network.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01')), 'OPTE_NO_UNDERLAY');
  });

  it('refuses an underlay link the host does not have', async () => {
    const host = await openHost({ links: ['stub0', 'net0'] });
    await rejection(host.network.setUnderlay(['net0', 'net1']), 'EINVAL', /net1/);
  });

  it('holds a port busy while a zone in the kernel has it as a NIC, not while it is only configured', async () => {
    const host = await openHost();
    await host.network.setUnderlay(['net0', 'net1']);
    await host.network.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await host.network.createPort(spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02'));
    const zone = { name: 'oxz_guest', brand: 'omicron1', zonepath: '/zone/oxz_guest', autoboot: false, nets: [{ physical: 'opte0' }], devices: [], datasets: [] };
    await host.zones.configure(zone);
    await host.zones.install('oxz_guest', '/opt/oxide/test.tar.gz');
    await host.zones.configure({ ...zone, name: 'oxz_idle', zonepath: '/zone/oxz_idle', nets: [{ physical: 'opte1' }] });
    await host.zones.boot('oxz_guest');
    await rejection(host.network.deletePort('opte0'), 'OPTE_PORT_BUSY');
    await host.network.deletePort('opte1');
    await host.zones.halt('oxz_guest');
    await host.network.deletePort('opte0');
    expect(await host.network.listPorts()).toEqual([]);
  });

  it('gives no VNIC a port’s name, and no port a link’s name', async () => {
    const host = await openHost();
    await host.network.setUnderlay(['net0', 'net1']);
    await host.network.createPort(spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'));
    await rejection(host.links.createVnic({ name: 'opte0', link: 'stub0' }), 'DLADM_STATUS_EXIST');
    await host.links.createVnic({ name: 'opte1', link: 'stub0' });
    await rejection(host.network.createPort(spec('opte1', '172.30.0.6', 'a8:40:25:f0:00:02')), 'OPTE_PORT_EXISTS');
  });

  it('models each opteadm run with the "opte" latency, counted in the modelled time of the zone whose VNIC is over the port', async () => {
    const host = await openHost({ latencies: { opte: 7, vnic: 5 }, recordLatencies: true });
    await host.network.setUnderlay(['net0', 'net1']);
    await guest(host.network, spec('opte0', '172.30.0.5', 'a8:40:25:f0:00:01'), rules);
    await host.links.createVnic({ name: 'vopte0', link: 'opte0', mac: 'a8:40:25:f0:00:01' });
    await host.zones.configure({ name: 'oxz_guest', brand: 'omicron1', zonepath: '/zone/oxz_guest', autoboot: false, nets: [{ physical: 'vopte0' }], devices: [], datasets: [] });
    const drawn = host.modelled('oxz_guest').map((d) => [d.step, d.op, d.ms]);
    expect(drawn.filter(([step]) => step === 'opte')).toEqual([
      ['opte', 'opteadm create-xde', 7],
      ['opte', 'opteadm add-router-entry', 7],
      ['opte', 'opteadm set-fw-rules', 7],
    ]);
    expect(drawn).toContainEqual(['vnic', 'vnic create', 5]);
  });
});
