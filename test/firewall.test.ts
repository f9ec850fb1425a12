// src/host/firewall.ts: Nexus's VPC rules to the OPTE rule list of one port (opte.md §1.7).
import { describe, expect, it } from 'vitest';
import { expandPortRange, firewallHost, firewallRuleText, opteFirewallRules, type VpcFirewallRule } from '../src/host/firewall.js';
import { isHostError } from '../src/host/index.js';
import { defaultVpcRules } from './support/vpc-rules.js';

const PORT = { vni: 1234, mac: 'a8:40:25:f0:00:01' };

function rule(over: Partial<VpcFirewallRule>): VpcFirewallRule {
  return { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: null, filter_protocols: null, action: 'allow', priority: 100, ...over };
}

function einval(fn: () => unknown, field: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isHostError(caught, 'EINVAL'), String(caught)).toBe(true);
  expect((caught as Error).message).toMatch(field);
}

describe('expandPortRange', () => {
  it('expands a single port and an inclusive range', () => {
    expect(expandPortRange('22')).toEqual([22]);
    expect(expandPortRange('8000-8003')).toEqual([8000, 8001, 8002, 8003]);
    expect(expandPortRange('65535')).toEqual([65535]);
  });

  it('refuses what omicron refuses, naming the field', () => {
    einval(() => expandPortRange('80-22', 'rules[0].filter_ports[1]'), /rules\[0\]\.filter_ports\[1\].*downwards/);
    einval(() => expandPortRange('70000'), /70000/);
    einval(() => expandPortRange('0'), /port 0/);
    einval(() => expandPortRange('22,80'), /not a port/);
    einval(() => expandPortRange(''), /not a port/);
  });
});

describe('firewallHost', () => {
  it('makes a host prefix an address, any other prefix a subnet, a VPC a VNI', () => {
    expect(firewallHost('10.1.2.3/32')).toEqual({ type: 'ip', ip: '10.1.2.3' });
    expect(firewallHost('172.30.0.0/22')).toEqual({ type: 'subnet', subnet: '172.30.0.0/22' });
    expect(firewallHost('fd00::1/128')).toEqual({ type: 'ip', ip: 'fd00::1' });
    expect(firewallHost('fd00::/64')).toEqual({ type: 'subnet', subnet: 'fd00::/64' });
    expect(firewallHost({ type: 'ip', value: '10.0.0.0/8' })).toEqual({ type: 'subnet', subnet: '10.0.0.0/8' });
    expect(firewallHost({ type: 'vpc', value: 77 })).toEqual({ type: 'vni', vni: 77 });
  });

  it('takes a subnet with host bits set as its network, as OPTE\'s Ipv4Cidr::new and Ipv6Cidr::new do', () => {
    expect(firewallHost('10.0.0.5/24')).toEqual({ type: 'subnet', subnet: '10.0.0.0/24' });
    expect(firewallHost({ type: 'ip', value: '172.30.3.255/22' })).toEqual({ type: 'subnet', subnet: '172.30.0.0/22' });
    expect(firewallHost('10.1.2.3/0')).toEqual({ type: 'subnet', subnet: '0.0.0.0/0' });
    expect(firewallHost('fd00:1122:3344:101::9/48')).toEqual({ type: 'subnet', subnet: 'fd00:1122:3344::/48' });
  });

  it('refuses a malformed network or VNI', () => {
    einval(() => firewallHost('10.0.0.0/33'), /prefix/);
    einval(() => firewallHost('fe80::1%1/64'), /not an IP network/);
    einval(() => firewallHost('nope/8'), /not an IP network/);
    einval(() => firewallHost({ type: 'vpc', value: 2 ** 24 }), /VNI/);
  });
});

describe('opteFirewallRules', () => {
  it('keeps enabled rules only', () => {
    const out = opteFirewallRules([rule({ status: 'disabled', priority: 1 }), rule({ priority: 2 })], PORT);
    expect(out.map((r) => r.priority)).toEqual([2]);
  });

  it('keeps rules with no targets or a target with this port (VNI, MAC), whatever the MAC case', () => {
    const mine = { vni: 1234, mac: 'A8:40:25:F0:00:01' };
    const sameMacOtherVpc = { vni: 999, mac: 'A8:40:25:F0:00:01' };
    const otherNic = { vni: 1234, mac: 'A8:40:25:F0:00:02' };
    const out = opteFirewallRules(
      [
        rule({ priority: 1, targets: [] }),
        rule({ priority: 2, targets: [otherNic, mine] }),
        rule({ priority: 3, targets: [sameMacOtherVpc] }),
        rule({ priority: 4, targets: [otherNic] }),
      ],
      PORT,
    );
    expect(out.map((r) => r.priority)).toEqual([1, 2]);
  });

  it('unrolls protocols × hosts, with the rule fields carried over', () => {
    const out = opteFirewallRules(
      [rule({ direction: 'outbound', action: 'deny', priority: 7, filter_protocols: ['TCP', 'UDP'], filter_hosts: ['10.0.0.1/32', '10.1.0.0/16'], filter_ports: ['53'] })],
      PORT,
    );
    expect(out).toEqual([
      { direction: 'out', action: 'deny', priority: 7, hosts: { type: 'ip', ip: '10.0.0.1' }, protocol: 'tcp', ports: [53] },
      { direction: 'out', action: 'deny', priority: 7, hosts: { type: 'subnet', subnet: '10.1.0.0/16' }, protocol: 'tcp', ports: [53] },
      { direction: 'out', action: 'deny', priority: 7, hosts: { type: 'ip', ip: '10.0.0.1' }, protocol: 'udp', ports: [53] },
      { direction: 'out', action: 'deny', priority: 7, hosts: { type: 'subnet', subnet: '10.1.0.0/16' }, protocol: 'udp', ports: [53] },
    ]);
  });

  it('treats empty and null filters as any', () => {
    for (const empty of [null, []]) {
      const out = opteFirewallRules([rule({ filter_hosts: empty, filter_protocols: empty, filter_ports: empty })], PORT);
      expect(out).toEqual([{ direction: 'in', action: 'allow', priority: 100, hosts: { type: 'any' }, protocol: 'any', ports: 'any' }]);
    }
  });

  it('expands port ranges into one sorted list without duplicates', () => {
    const [out] = opteFirewallRules([rule({ filter_protocols: ['TCP'], filter_ports: ['8002-8004', '22', '8003'] })], PORT);
    expect(out!.ports).toEqual([22, 8002, 8003, 8004]);
  });

  it('drops ports for ICMP, keeps them for TCP, UDP and any protocol', () => {
    const out = opteFirewallRules([rule({ filter_protocols: ['ICMP', 'TCP'], filter_ports: ['22'] }), rule({ filter_ports: ['80'] })], PORT);
    expect(out.map((r) => [r.protocol, r.ports])).toEqual([
      ['icmp', 'any'],
      ['tcp', [22]],
      ['any', [80]],
    ]);
  });

  it('refuses a bad port range, priority or protocol, naming the rule', () => {
    einval(() => opteFirewallRules([rule({}), rule({ filter_ports: ['80-22'] })], PORT), /rules\[1\]\.filter_ports\[0\]/);
    einval(() => opteFirewallRules([rule({ priority: 70000 })], PORT), /rules\[0\]\.priority/);
    einval(() => opteFirewallRules([rule({ filter_protocols: ['SCTP' as 'TCP'] })], PORT), /rules\[0\]\.filter_protocols\[0\]/);
  });

  it('does not validate a rule for another port beyond its targets (it is not this port’s to refuse)', () => {
    expect(opteFirewallRules([rule({ targets: [{ vni: 1, mac: 'a8:40:25:f0:00:09' }], filter_ports: ['80-22'] })], PORT)).toEqual([]);
  });

  it('turns the default VPC rules into four inbound rules at 65534', () => {
    const out = opteFirewallRules(defaultVpcRules([{ type: 'vpc', value: PORT.vni }]), PORT);
    expect(out.map(firewallRuleText)).toEqual([
      'dir=in action=allow priority=65534 hosts=vni=1234 protocol=any port=any',
      'dir=in action=allow priority=65534 hosts=any protocol=tcp port=22',
      'dir=in action=allow priority=65534 hosts=any protocol=icmp port=any',
      'dir=in action=allow priority=65534 hosts=any protocol=tcp port=3389',
    ]);
    const legacy = opteFirewallRules(defaultVpcRules(['172.30.0.0/22']), PORT);
    expect(firewallRuleText(legacy[0]!)).toBe('dir=in action=allow priority=65534 hosts=subnet=172.30.0.0/22 protocol=any port=any');
  });
});

describe('firewallRuleText', () => {
  it('writes the set-fw-rules line, ports comma-separated', () => {
    expect(firewallRuleText({ direction: 'out', action: 'deny', priority: 5, hosts: { type: 'ip', ip: '1.2.3.4' }, protocol: 'udp', ports: [53, 853] })).toBe(
      'dir=out action=deny priority=5 hosts=ip=1.2.3.4 protocol=udp port=53,853',
    );
  });
});
