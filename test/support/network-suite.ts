// The suite every backend's network part (HostNetwork, src/host/index.ts) passes: OPTE ports,
// router entries, firewall rules, external IPs and V2P, through the public methods only, with
// the semantics OPTE has (reference opte.md §1.4-1.10): a port is a link a VNIC can go over and
// is busy while one does; (VNI, guest MAC) is unique; router entries are appended; rules and
// external IPs are replaced as whole sets; the port's own V2P entry comes and goes with it;
// list-ports reports ports in opteadm's order (opteN by N) with OPTE's state "running". A
// backend's test file calls networkSuite() with a fixture that makes a fresh host whose xde
// driver is present and whose underlay is not yet set. What only one backend can show (the exact
// opteadm command lines, a dataplane) is in that backend's own tests.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  OPTE_GATEWAY_MAC,
  type ExternalIps,
  type FirewallRule,
  type HostLinks,
  type HostNetwork,
  type PortSpec,
  type RouterEntry,
  type V2PMapping,
} from '../../src/host/index.js';
import { rejection } from './host-suite.js';

export interface NetworkFixture {
  network: HostNetwork;
  /** The same host's links: a VNIC is created over a port as over any link. */
  links: HostLinks;
  /** Two links of this host that set-xde-underlay accepts. */
  underlay: readonly [string, string];
  cleanup(): Promise<void>;
}

export const SLED_UNDERLAY = 'fd00:1122:3344:101::1';
export const NO_EXTERNAL: ExternalIps = { snat: null, ephemeralIp: null, floatingIps: [] };

/** A port in VPC 1234's subnet 172.30.0.0/22; `n` picks its name, MAC and address. */
export function portSpec(n: number, over: Partial<PortSpec> = {}): PortSpec {
  return {
    name: `opte${n}`,
    guestMac: `a8:40:25:f0:00:${(n + 1).toString(16).padStart(2, '0')}`,
    privateIp: `172.30.0.${n + 5}`,
    subnet: '172.30.0.0/22',
    gatewayMac: OPTE_GATEWAY_MAC,
    gatewayIp: '172.30.0.1',
    vni: 1234,
    underlayAddr: SLED_UNDERLAY,
    external: NO_EXTERNAL,
    ...over,
  };
}

/** Nexus's default VPC rules as OPTE takes them (§1.7), for VNI 1234. */
export const DEFAULT_VPC_RULES: FirewallRule[] = [
  { direction: 'in', action: 'allow', priority: 65534, hosts: { type: 'vni', vni: 1234 }, protocol: 'any', ports: 'any' },
  { direction: 'in', action: 'allow', priority: 65534, hosts: { type: 'any' }, protocol: 'tcp', ports: [22] },
  { direction: 'in', action: 'allow', priority: 65534, hosts: { type: 'any' }, protocol: 'icmp', ports: 'any' },
  { direction: 'in', action: 'allow', priority: 65534, hosts: { type: 'any' }, protocol: 'tcp', ports: [3389] },
];

const SUBNET_ROUTE: RouterEntry = { dest: '172.30.0.0/22', target: { type: 'vpc_subnet', subnet: '172.30.0.0/22' }, class: 'system' };

const byKey = (m: V2PMapping) => `${m.vni} ${m.virtualIp}`;
const sorted = (ms: V2PMapping[]) => [...ms].sort((a, b) => byKey(a).localeCompare(byKey(b)));

export function networkSuite(name: string, open: () => Promise<NetworkFixture>): void {
  describe(`Network suite: ${name}`, () => {
    let fx: NetworkFixture;
    let net: HostNetwork;

    beforeEach(async () => {
      fx = await open();
      net = fx.network;
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    async function ready(): Promise<void> {
      await net.setUnderlay(fx.underlay);
    }

    it('says OPTE is available', async () => {
      expect(await net.available()).toEqual({ available: true });
    });

    it('makes no port before the underlay is set; setting it again counts as done', async () => {
      await rejection(net.createPort(portSpec(0)), 'OPTE_NO_UNDERLAY');
      expect(await net.listPorts()).toEqual([]);
      await net.setUnderlay(fx.underlay);
      await net.setUnderlay(fx.underlay);
      await net.createPort(portSpec(0));
      expect((await net.listPorts()).map((p) => p.name)).toEqual(['opte0']);
    });

    it('lists what it made, in opteN order, each with its own V2P entry', async () => {
      await ready();
      await net.createPort(portSpec(10));
      await net.createPort(portSpec(2));
      expect(await net.listPorts()).toEqual([
        { name: 'opte2', mac: 'a8:40:25:f0:00:03', ip4: '172.30.0.7', ephemeralIp4: null, floatingIp4: [], state: 'running' },
        { name: 'opte10', mac: 'a8:40:25:f0:00:0b', ip4: '172.30.0.15', ephemeralIp4: null, floatingIp4: [], state: 'running' },
      ]);
      expect(sorted(await net.dumpV2P())).toEqual(
        sorted([
          { virtualIp: '172.30.0.7', virtualMac: 'a8:40:25:f0:00:03', physicalHostIp: SLED_UNDERLAY, vni: 1234 },
          { virtualIp: '172.30.0.15', virtualMac: 'a8:40:25:f0:00:0b', physicalHostIp: SLED_UNDERLAY, vni: 1234 },
        ]),
      );
    });

    it('takes a MAC in either case and reports it in lowercase', async () => {
      await ready();
      await net.createPort(portSpec(0, { guestMac: 'A8:40:25:F0:0A:BC' }));
      expect((await net.listPorts())[0]!.mac).toBe('a8:40:25:f0:0a:bc');
    });

    it('refuses a taken name and a taken (VNI, MAC); the same MAC in another VNI is another port', async () => {
      await ready();
      await net.createPort(portSpec(0));
      await rejection(net.createPort(portSpec(0, { guestMac: 'a8:40:25:f0:00:99', privateIp: '172.30.0.99' })), 'OPTE_PORT_EXISTS');
      await rejection(net.createPort(portSpec(1, { guestMac: portSpec(0).guestMac })), 'OPTE_MAC_EXISTS');
      await net.createPort(portSpec(1, { guestMac: portSpec(0).guestMac, vni: 4321 }));
      expect((await net.listPorts()).map((p) => [p.name, p.mac])).toEqual([
        ['opte0', 'a8:40:25:f0:00:01'],
        ['opte1', 'a8:40:25:f0:00:01'],
      ]);
    });

    it('deletes a port with its own V2P entry; its name and MAC are free again', async () => {
      await ready();
      await net.createPort(portSpec(0));
      await net.createPort(portSpec(1));
      await net.deletePort('opte0');
      expect((await net.listPorts()).map((p) => p.name)).toEqual(['opte1']);
      expect((await net.dumpV2P()).map((m) => m.virtualIp)).toEqual(['172.30.0.6']);
      await rejection(net.deletePort('opte0'), 'OPTE_NO_PORT');
      await net.createPort(portSpec(0));
      expect((await net.listPorts()).map((p) => p.name)).toEqual(['opte0', 'opte1']);
    });

    it('is a link: a VNIC goes over it with the guest MAC, and the port is busy until the VNIC goes', async () => {
      await ready();
      const spec = portSpec(0);
      expect(await fx.links.linkExists('opte0')).toBe(false);
      await rejection(fx.links.createVnic({ name: 'vopte0', link: 'opte0', mac: spec.guestMac }), 'DLADM_STATUS_NOTFOUND');
      await net.createPort(spec);
      expect(await fx.links.linkExists('opte0')).toBe(true);
      const vnic = await fx.links.createVnic({ name: 'vopte0', link: 'opte0', mac: spec.guestMac });
      expect(vnic).toMatchObject({ name: 'vopte0', link: 'opte0', mac: spec.guestMac });
      expect((await fx.links.listVnics()).map((v) => v.name)).toEqual(['vopte0']);
      await rejection(net.deletePort('opte0'), 'OPTE_PORT_BUSY');
      expect((await net.listPorts()).map((p) => p.name)).toEqual(['opte0']);
      await fx.links.deleteVnic('vopte0');
      await net.deletePort('opte0');
      expect(await fx.links.linkExists('opte0')).toBe(false);
      expect(await net.listPorts()).toEqual([]);
    });

    it('shows external IPs, several floating ones included, and replaces them as a whole', async () => {
      await ready();
      await net.createPort(
        portSpec(0, {
          external: { snat: { ip: '192.168.1.31', firstPort: 0, lastPort: 16383 }, ephemeralIp: '192.168.1.32', floatingIps: ['192.168.1.40', '192.168.1.41', '192.168.1.42'] },
        }),
      );
      await net.createPort(portSpec(1));
      const [p0, p1] = await net.listPorts();
      expect(p0).toMatchObject({ name: 'opte0', ephemeralIp4: '192.168.1.32', floatingIp4: ['192.168.1.40', '192.168.1.41', '192.168.1.42'] });
      expect(p1).toMatchObject({ name: 'opte1', ephemeralIp4: null, floatingIp4: [] });
      await net.setExternalIps('opte0', { snat: null, ephemeralIp: null, floatingIps: ['192.168.1.50', '192.168.1.51'] });
      expect((await net.listPorts())[0]).toMatchObject({ ephemeralIp4: null, floatingIp4: ['192.168.1.50', '192.168.1.51'] });
      await net.setExternalIps('opte0', NO_EXTERNAL);
      expect((await net.listPorts())[0]).toMatchObject({ ephemeralIp4: null, floatingIp4: [] });
      await rejection(net.setExternalIps('opte7', NO_EXTERNAL), 'OPTE_NO_PORT');
    });

    it('appends router entries: one added twice is there twice', async () => {
      await ready();
      await net.createPort(portSpec(0));
      await rejection(net.delRouterEntry('opte0', SUBNET_ROUTE), 'OPTE_NO_ENTRY');
      await net.addRouterEntry('opte0', SUBNET_ROUTE);
      await net.addRouterEntry('opte0', SUBNET_ROUTE);
      await net.addRouterEntry('opte0', { dest: '0.0.0.0/0', target: { type: 'internet_gateway' }, class: 'system' });
      await net.delRouterEntry('opte0', SUBNET_ROUTE);
      await net.delRouterEntry('opte0', SUBNET_ROUTE);
      await rejection(net.delRouterEntry('opte0', SUBNET_ROUTE), 'OPTE_NO_ENTRY');
      // the class is part of the entry
      await rejection(net.delRouterEntry('opte0', { dest: '0.0.0.0/0', target: { type: 'internet_gateway' }, class: 'custom' }), 'OPTE_NO_ENTRY');
      await net.delRouterEntry('opte0', { dest: '0.0.0.0/0', target: { type: 'internet_gateway' }, class: 'system' });
      await rejection(net.addRouterEntry('opte7', SUBNET_ROUTE), 'OPTE_NO_PORT');
    });

    it('takes a whole set of firewall rules, or none, for a port that exists', async () => {
      await ready();
      await net.createPort(portSpec(0));
      await net.setFirewallRules('opte0', DEFAULT_VPC_RULES);
      await net.setFirewallRules('opte0', [
        { direction: 'out', action: 'deny', priority: 10, hosts: { type: 'subnet', subnet: '10.0.0.0/8' }, protocol: 'udp', ports: [53, 123] },
        { direction: 'in', action: 'deny', priority: 0, hosts: { type: 'ip', ip: '172.30.0.9' }, protocol: 'any', ports: 'any' },
      ]);
      await net.setFirewallRules('opte0', []);
      await rejection(net.setFirewallRules('opte7', DEFAULT_VPC_RULES), 'OPTE_NO_PORT');
    });

    it('sets, replaces and clears V2P mappings; clearing one that is not there is OPTE_NO_ENTRY', async () => {
      const remote: V2PMapping = { virtualIp: '172.30.0.20', virtualMac: 'a8:40:25:f0:00:20', physicalHostIp: 'fd00:1122:3344:102::1', vni: 1234 };
      await net.setV2P(remote);
      expect(await net.dumpV2P()).toEqual([remote]);
      const moved = { ...remote, physicalHostIp: 'fd00:1122:3344:103::1' };
      await net.setV2P(moved);
      await net.setV2P({ ...remote, vni: 99 });
      expect(sorted(await net.dumpV2P())).toEqual(sorted([moved, { ...remote, vni: 99 }]));
      await net.clearV2P(moved);
      expect(await net.dumpV2P()).toEqual([{ ...remote, vni: 99 }]);
      await rejection(net.clearV2P(moved), 'OPTE_NO_ENTRY');
    });

    describe('refuses malformed arguments (EINVAL) and changes nothing', () => {
      const rule: FirewallRule = DEFAULT_VPC_RULES[1]!;
      const cases: Array<[string, (n: HostNetwork) => Promise<unknown>]> = [
        ['a port not named opteN', (n) => n.createPort(portSpec(0, { name: 'vopte0' }))],
        ['a port number with a leading zero', (n) => n.createPort(portSpec(0, { name: 'opte01' }))],
        ['a malformed guest MAC', (n) => n.createPort(portSpec(0, { guestMac: 'a8:40:25:f0:00' }))],
        ['a VNI above 2^24-1', (n) => n.createPort(portSpec(0, { vni: 2 ** 24 }))],
        ['an IPv6 private address', (n) => n.createPort(portSpec(0, { privateIp: 'fd00::5' }))],
        ['a private address outside the subnet', (n) => n.createPort(portSpec(0, { privateIp: '172.30.4.5' }))],
        ['a subnet with host bits set', (n) => n.createPort(portSpec(0, { subnet: '172.30.0.5/22' }))],
        ['an IPv4 underlay address', (n) => n.createPort(portSpec(0, { underlayAddr: '10.0.0.1' }))],
        ['an empty SNAT port range', (n) => n.createPort(portSpec(0, { external: { ...NO_EXTERNAL, snat: { ip: '192.168.1.31', firstPort: 100, lastPort: 99 } } }))],
        ['a malformed floating IP', (n) => n.createPort(portSpec(0, { external: { ...NO_EXTERNAL, floatingIps: ['192.168.1'] } }))],
        ['a bad port name to delete', (n) => n.deletePort('net0')],
        ['a rule priority above 65535', (n) => n.setFirewallRules('opte0', [{ ...rule, priority: 65536 }])],
        ['a rule on port 0', (n) => n.setFirewallRules('opte0', [{ ...rule, ports: [0] }])],
        ['a rule with an empty port list', (n) => n.setFirewallRules('opte0', [{ ...rule, ports: [] }])],
        ['a rule VNI above 2^24-1', (n) => n.setFirewallRules('opte0', [{ ...rule, hosts: { type: 'vni', vni: 2 ** 24 } }])],
        ['a route to a malformed CIDR', (n) => n.addRouterEntry('opte0', { ...SUBNET_ROUTE, dest: '172.30.0.0' })],
        ['a route of an unknown class', (n) => n.addRouterEntry('opte0', { ...SUBNET_ROUTE, class: 'main' as 'system' })],
        ['a V2P mapping to an IPv4 host', (n) => n.setV2P({ virtualIp: '172.30.0.20', virtualMac: 'a8:40:25:f0:00:20', physicalHostIp: '10.0.0.2', vni: 1234 })],
        ['an underlay of one link', (n) => n.setUnderlay(['net0'] as unknown as [string, string])],
      ];
      it.each(cases)('%s', async (_what, call) => {
        await ready();
        await net.createPort(portSpec(0));
        const before = { ports: await net.listPorts(), v2p: await net.dumpV2P() };
        await rejection(call(net), 'EINVAL');
        expect({ ports: await net.listPorts(), v2p: await net.dumpV2P() }).toEqual(before);
      });
    });
  });
}
