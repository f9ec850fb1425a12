// The guest-networking checks both agents share (src/common/network-checks.ts): each refusal names
// the field, and a body of the pinned shape is read as "no external addressing, no rules, slot 0
// is primary".
import { describe, expect, it } from 'vitest';
import { ApiError } from '../src/common/errors.js';
import {
  checkFirewallRulesEnsure, checkInstanceHardware, checkV2P, ipv4Subnet, isGuestMac, MAX_FIREWALL_OPTE_RULES, MAX_FIREWALL_PORT_VALUES,
  parsePortRange, vniOfRules,
} from '../src/common/network-checks.js';
import { opteFirewallRules } from '../src/host/firewall.js';
import { instanceRuntime } from './support/sim.js';
import { nic, networkedHardware, rule, v2pBody, VNI_1, VNI_2 } from './support/networking.js';

const SLED = 'fb0f7546-4d46-40ca-9d56-cbb810684ca7';
const hardware = (fields: Record<string, unknown>): any => ({ runtime: instanceRuntime(SLED), disks: [], nics: [], ...fields });

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).statusCode).toBe(400);
    expect((err as ApiError).errorCode).toBe('InvalidRequest');
    return (err as ApiError).message;
  }
  throw new Error('not refused');
}

describe('guest MACs, subnets, port ranges', () => {
  it('knows the guest MAC range, in either case', () => {
    expect(isGuestMac('A8:40:25:F0:00:00')).toBe(true);
    expect(isGuestMac('a8:40:25:fe:ff:ff')).toBe(true);
    expect(isGuestMac('A8:40:25:EF:FF:FF')).toBe(false);
    expect(isGuestMac('A8:40:25:FF:00:00')).toBe(false); // system range
    expect(isGuestMac('A8:40:26:F0:00:00')).toBe(false);
  });

  it('reads an IPv4 subnet as its network and prefix, and nothing else as one', () => {
    expect(ipv4Subnet('172.30.0.0/22')).toEqual({ net: (172 * 256 + 30) * 65536, prefix: 22 });
    expect(ipv4Subnet('192.168.1.9/32')).toEqual({ net: ((192 * 256 + 168) * 256 + 1) * 256 + 9, prefix: 32 });
    expect(ipv4Subnet('0.0.0.0/0')).toEqual({ net: 0, prefix: 0 });
    for (const bad of ['fd00:1:2::/64', '172.30.0.0', '172.30.0.0/33', '172.30.0.0/x', '172.30.0.0/', '172.30.0/22', '/22']) {
      expect(ipv4Subnet(bad)).toBeNull();
    }
  });

  it('takes a NIC address anywhere in its subnet, up to the last address', () => {
    expect(() => checkInstanceHardware(hardware({ nics: [nic({ ip: '172.30.3.255' })] }))).not.toThrow();
    expect(refusal(() => checkInstanceHardware(hardware({ nics: [nic({ ip: '172.30.4.0' })] })))).toMatch(/is outside its subnet 172\.30\.0\.0\/22$/);
  });

  it('parses port ranges and says what is wrong with a bad one', () => {
    expect(parsePortRange('22')).toEqual({ first: 22, last: 22 });
    expect(parsePortRange('8000-8080')).toEqual({ first: 8000, last: 8080 });
    expect(parsePortRange('1-65535')).toEqual({ first: 1, last: 65535 });
    expect(parsePortRange('0-22')).toEqual({ error: 'names port 0; ports are 1 to 65535' });
    expect(parsePortRange('80-22')).toEqual({ error: 'has its first port above its last' });
    expect(parsePortRange('70000')).toEqual({ error: 'names a port above 65535' });
    expect(parsePortRange('1-65536')).toEqual({ error: 'names a port above 65535' });
  });
});

describe('checkInstanceHardware', () => {
  it('reads the pinned shape as no external addressing, no rules, and the NIC in slot 0 primary', () => {
    const { primary: _p, ...pinned0 } = nic({ slot: 0 });
    const { primary: _q, ...pinned1 } = nic({ slot: 1, name: 'net1', ip: '172.30.0.6', mac: 'A8:40:25:F0:00:02' });
    const resolved = checkInstanceHardware(hardware({ nics: [pinned1, pinned0] }));
    expect(resolved.nics.map((n) => [n.slot, n.primary])).toEqual([[1, false], [0, true]]);
    expect(resolved.external_ips).toEqual([]);
    expect(resolved.firewall_rules).toEqual([]);
    expect(resolved.source_nat).toBeUndefined();
  });

  it('keeps what the networking shape says', () => {
    const nics = [nic({ slot: 0, primary: false }), nic({ slot: 1, primary: true, name: 'net1', ip: '172.30.0.6', mac: 'A8:40:25:F0:00:02' })];
    const resolved = checkInstanceHardware(hardware(networkedHardware(nics)));
    expect(resolved.nics.map((n) => n.primary)).toEqual([false, true]);
    expect(resolved.external_ips).toEqual(['192.168.1.32']);
    expect(resolved.firewall_rules).toHaveLength(4);
    expect(resolved.source_nat).toEqual({ ip: '192.168.1.31', first_port: 16384, last_port: 32767 });
  });

  it('accepts every aligned 16384-port source NAT block', () => {
    for (const first of [0, 16384, 32768, 49152]) {
      expect(() => checkInstanceHardware(hardware({ ...networkedHardware(), source_nat: { ip: '192.168.1.31', first_port: first, last_port: first + 16383 } }))).not.toThrow();
    }
  });

  const second = { name: 'net1', ip: '172.30.0.6', mac: 'A8:40:25:F0:00:02', slot: 1, primary: false };
  it.each([
    ['a MAC outside the guest range', { nics: [nic({ mac: 'A8:40:25:FF:00:01' })] }, /^body\/initial\/nics\/0\/mac A8:40:25:FF:00:01 is outside the guest MAC range A8:40:25:F0:00:00-A8:40:25:FE:FF:FF$/],
    ['a VNI above 2^24-1', { nics: [nic({ vni: 0x100_0000 })] }, /^body\/initial\/nics\/0\/vni is 16777216: a VNI has 24 bits, so at most 16777215$/],
    ['a NIC IP outside its subnet', { nics: [nic({ ip: '172.30.4.1' })] }, /^body\/initial\/nics\/0\/ip 172.30.4.1 is outside its subnet 172.30.0.0\/22$/],
    ['a NIC IP of the other family', { nics: [nic({ ip: 'fd00::5' })] }, /^body\/initial\/nics\/0\/ip fd00::5 is not IPv4: guest NICs are IPv4 only/],
    ['an IPv6 NIC', { nics: [nic({ ip: 'fd00:aaaa::5', subnet: 'fd00:aaaa::/64' })] }, /^body\/initial\/nics\/0\/ip fd00:aaaa::5 is not IPv4/],
    ['a subnet with host bits set', { nics: [nic({ subnet: '172.30.0.5/22' })] }, /^body\/initial\/nics\/0\/subnet 172.30.0.5\/22 has host bits set: the subnet is 172.30.0.0\/22$/],
    ['an IPv6 source NAT address', { source_nat: { ip: 'fd00::31', first_port: 16384, last_port: 32767 } }, /^body\/initial\/source_nat\/ip fd00::31 is not IPv4/],
    ['an IPv6 external address', { external_ips: ['192.168.1.32', 'fd00::32'] }, /^body\/initial\/external_ips\/1 fd00::32 is not IPv4/],
    ['a subnet with no room for a gateway', { nics: [nic({ ip: '172.30.0.5', subnet: '172.30.0.4/31' })] }, /^body\/initial\/nics\/0\/subnet 172.30.0.4\/31 is not an IPv4 subnet of \/30 or larger/],
    ['two NICs with one slot', { nics: [nic(), nic({ ...second, slot: 0 })] }, /^body\/initial\/nics\/1\/slot 0 is also the slot of nics\/0/],
    ['two NICs with one MAC', { nics: [nic(), nic({ ...second, mac: 'a8:40:25:f0:00:01' })] }, /^body\/initial\/nics\/1\/mac a8:40:25:f0:00:01 is also the MAC of nics\/0$/],
    ['two primary NICs', { nics: [nic(), nic({ ...second, primary: true })] }, /^body\/initial\/nics\/1\/primary: nics\/0 is primary too/],
    ['a NIC silent on primary beside one that says', { nics: [nic(), (({ primary: _, ...n }) => n)(nic(second))] }, /^body\/initial\/nics\/1\/primary is required/],
    ['external addresses with no primary NIC', { nics: [nic({ primary: false })], external_ips: ['192.168.1.32'] }, /^body\/initial\/nics: no NIC is primary/],
    ['a source NAT block not aligned on 16384', { source_nat: { ip: '192.168.1.31', first_port: 1, last_port: 16384 } }, /^body\/initial\/source_nat ports 1-16384 are not a block of 16384 ports starting at a multiple of 16384/],
    ['a source NAT block of the wrong size', { source_nat: { ip: '192.168.1.31', first_port: 0, last_port: 1023 } }, /^body\/initial\/source_nat ports 0-1023 are not a block/],
    ['a port range "80-22"', { firewall_rules: [rule({ filter_ports: ['22', '80-22'] })] }, /^body\/initial\/firewall_rules\/0\/filter_ports\/1 "80-22" has its first port above its last$/],
    ['a port "70000"', { firewall_rules: [rule(), rule({ filter_ports: ['70000'] })] }, /^body\/initial\/firewall_rules\/1\/filter_ports\/0 "70000" names a port above 65535$/],
    ['a rule target with a system MAC', { firewall_rules: [rule({ targets: [nic({ mac: 'A8:40:25:FF:77:77' })] })] }, /^body\/initial\/firewall_rules\/0\/targets\/0\/mac A8:40:25:FF:77:77 is outside the guest MAC range/],
  ])('refuses %s, naming the field', (_what, fields, message) => {
    expect(refusal(() => checkInstanceHardware(hardware({ nics: [nic()], ...fields })))).toMatch(message);
  });
});

describe('firewall rule updates', () => {
  it('takes the VNI from the body, or else from the one VNI the targets name', () => {
    expect(vniOfRules(VNI_2, [rule({ targets: [nic()] })])).toBe(VNI_2);
    expect(vniOfRules(undefined, [rule({ targets: [nic()] }), rule(), rule({ targets: [nic({ slot: 1 })] })])).toBe(VNI_1);
  });

  it('says vni is needed when the targets name no VNI or several', () => {
    expect(refusal(() => vniOfRules(undefined, []))).toMatch(/^body\/vni is needed: no rule has a target/);
    expect(refusal(() => vniOfRules(undefined, [rule()]))).toMatch(/^body\/vni is needed/);
    expect(refusal(() => vniOfRules(undefined, [rule({ targets: [nic()] }), rule({ targets: [nic({ vni: VNI_2 })] })])))
      .toMatch(`body/vni is needed: the rules' targets name 2 VNIs (${VNI_2}, ${VNI_1})`);
  });

  it('refuses a target in another VPC than the body names, a VNI above 2^24-1 and a bad port range', () => {
    expect(refusal(() => checkFirewallRulesEnsure({ vni: VNI_2, rules: [rule({ targets: [nic()] })] })))
      .toBe(`body/rules/0/targets/0/vni is ${VNI_1}, but the rules are for VNI ${VNI_2} (body/vni)`);
    expect(refusal(() => checkFirewallRulesEnsure({ vni: 0x100_0000, rules: [] }))).toMatch(/^body\/vni is 16777216/);
    expect(refusal(() => checkFirewallRulesEnsure({ rules: [rule({ filter_ports: ['80-22'] })] }))).toMatch(/^body\/rules\/0\/filter_ports\/0 "80-22"/);
    expect(() => checkFirewallRulesEnsure({ vni: VNI_1, rules: [rule({ targets: [nic()] })] })).not.toThrow();
  });
});

describe('firewall rule expansion', () => {
  const hosts = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const expanded = (rules: any[]) => {
    const out = opteFirewallRules(rules, { vni: VNI_1, mac: 'A8:40:25:F0:00:01' });
    return { rules: out.length, ports: out.reduce((n, r) => n + (r.ports === 'any' ? 0 : r.ports.length), 0) };
  };

  it('refuses a rule whose hosts × protocols × ports pass the bound, saying which rule and by how much', () => {
    // 1.7 KB on the wire; unrolled, 13 million port values.
    const big = rule({ filter_hosts: hosts(100), filter_ports: ['1-65535'], filter_protocols: ['TCP', 'UDP'] });
    expect(refusal(() => checkFirewallRulesEnsure({ vni: VNI_1, rules: [rule(), big] }))).toBe(
      'body/rules/1 expands to 13,107,000 port values on a port (100 hosts × 2 protocols with ports × 65,535 ports), 13,107,001 with the rules before it: '
      + '12,844,857 over the limit of 262,144 for a port\'s rules; name fewer hosts or ports, or leave filter_ports empty to match every port');
    expect(refusal(() => checkInstanceHardware(hardware({ firewall_rules: [big] })))).toMatch(/^body\/initial\/firewall_rules\/0 expands to 13,107,000 port values/);
  });

  it('counts the ports the expansion really makes: distinct ones, none for ICMP or a disabled rule', () => {
    // Every port, TCP and UDP, from two hosts: at the bound, and taken.
    const wide = rule({ filter_hosts: hosts(2), filter_ports: ['1-65535', '22', '100-200'], filter_protocols: ['TCP', 'UDP', 'ICMP'] });
    expect(expanded([wide])).toEqual({ rules: 6, ports: 4 * 65535 });
    expect(4 * 65535).toBeLessThanOrEqual(MAX_FIREWALL_PORT_VALUES);
    expect(() => checkFirewallRulesEnsure({ vni: VNI_1, rules: [wide, rule({ status: 'disabled', filter_ports: ['1-65535'] })] })).not.toThrow();
    expect(refusal(() => checkFirewallRulesEnsure({ vni: VNI_1, rules: [wide, rule({ filter_ports: ['1-5'] })] })))
      .toBe('body/rules/1 expands to 5 port values on a port (1 host × 1 protocol with ports × 5 ports), 262,145 with the rules before it: '
        + '1 over the limit of 262,144 for a port\'s rules; name fewer hosts or ports, or leave filter_ports empty to match every port');
  });

  it('refuses rules that unroll to more OPTE rules than the bound, ports or not', () => {
    const broad = rule({ filter_hosts: hosts(256), filter_ports: null, filter_protocols: ['TCP', 'UDP', 'ICMP'] });
    const fits = Math.floor(MAX_FIREWALL_OPTE_RULES / 768);
    expect(expanded([broad])).toEqual({ rules: 768, ports: 0 });
    expect(() => checkFirewallRulesEnsure({ vni: VNI_1, rules: Array(fits).fill(broad) })).not.toThrow();
    expect(refusal(() => checkFirewallRulesEnsure({ vni: VNI_1, rules: Array(fits + 1).fill(broad) }))).toBe(
      `body/rules/${fits} expands to 768 OPTE rules on a port (256 hosts × 3 protocols), 66,048 with the rules before it: `
      + '512 over the limit of 65,536 for a port\'s rules; name fewer hosts or protocols in each rule (a subnet covers many hosts)');
  });
});

describe('V2P bodies', () => {
  it('refuses a virtual MAC outside the guest range and a VNI above 2^24-1', () => {
    expect(() => checkV2P(v2pBody())).not.toThrow();
    expect(refusal(() => checkV2P(v2pBody({ virtual_mac: 'A8:40:25:FF:00:02' })))).toMatch(/^body\/virtual_mac A8:40:25:FF:00:02 is outside/);
    expect(refusal(() => checkV2P(v2pBody({ vni: 0x100_0000 })))).toMatch(/^body\/vni is 16777216/);
    expect(refusal(() => checkV2P(v2pBody({ virtual_ip: 'fd00::5' })))).toMatch(/^body\/virtual_ip fd00::5 is not IPv4: guests' addresses are IPv4 only$/);
  });
});
