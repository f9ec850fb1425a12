// Nexus's VPC firewall rules as OPTE takes them, for one port (reference opte.md §1.7, omicron's
// illumos-utils/src/opte/firewall_rules.rs). Nexus sends a VPC's rules whole; each port gets only
// the enabled rules that target it, unrolled into one OPTE rule per (protocol, host), because an
// OPTE rule holds a single host filter and a single protocol. Both Host backends and the agent
// use this, so the sim's dataplane and the illumos `set-fw-rules` stdin see the same list.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpv6, networkOf, parseIpv6 } from '../common/ipv6.js';
import { ipv4Text, ipv4Value } from '../common/network-checks.js';
import { hostError, type FirewallHost, type FirewallRule } from './index.js';

/** A host filter as Nexus sends it: an IpNet string (2022 wire shape), or a HostIdentifier (2023 on). */
export type VpcFirewallHost = string | { type: 'ip'; value: string } | { type: 'vpc'; value: number };

/** The NIC fields a rule's targets are matched by. */
export interface VpcFirewallTarget {
  mac: string;
  vni: number;
}

/** `VpcFirewallRule` of sled-agent-networking.json (other NetworkInterface fields of a target are ignored). */
export interface VpcFirewallRule {
  status: 'enabled' | 'disabled';
  direction: 'inbound' | 'outbound';
  targets: readonly VpcFirewallTarget[];
  filter_hosts?: readonly VpcFirewallHost[] | null;
  /** L4PortRange: "22" or "8000-8080". */
  filter_ports?: readonly string[] | null;
  filter_protocols?: ReadonlyArray<'TCP' | 'UDP' | 'ICMP'> | null;
  action: 'allow' | 'deny';
  priority: number;
}

/** The port the rules are for: a rule targets it by (VNI, guest MAC), which is unique per port. */
export interface FirewallPortKey {
  vni: number;
  mac: string;
}

const L4_PORT_RANGE = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;

/**
 * The ports of one L4PortRange ("22" -> [22], "8000-8002" -> [8000, 8001, 8002]). Ports are
 * 1..65535 (omicron's L4Port is a NonZeroU16) and a range runs upwards; anything else is EINVAL
 * naming `field`.
 */
export function expandPortRange(range: string, field = 'filter_ports'): number[] {
  const m = typeof range === 'string' ? L4_PORT_RANGE.exec(range) : null;
  if (m === null) throw hostError('EINVAL', `${field}: ${JSON.stringify(range)} is not a port or a range of ports like "8000-8080"`);
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  for (const p of [first, last]) {
    if (p < 1 || p > 65535) throw hostError('EINVAL', `${field}: port ${p} in "${range}" is not from 1 to 65535`);
  }
  if (first > last) throw hostError('EINVAL', `${field}: the range "${range}" runs downwards`);
  const out: number[] = [];
  for (let p = first; p <= last; p++) out.push(p);
  return out;
}

function prefixOf(net: string, field: string): { ip: string; prefix: number; v6: boolean } {
  const slash = typeof net === 'string' ? net.indexOf('/') : -1;
  const ip = slash < 0 ? net : net.slice(0, slash);
  const v6 = isIPv6(ip) && !ip.includes('%');
  if (!v6 && !isIPv4(ip)) throw hostError('EINVAL', `${field}: ${JSON.stringify(net)} is not an IP network`);
  const max = v6 ? 128 : 32;
  const text = slash < 0 ? String(max) : net.slice(slash + 1);
  const prefix = /^[0-9]{1,3}$/.test(text) ? Number(text) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw hostError('EINVAL', `${field}: ${JSON.stringify(net)} has a bad prefix length`);
  return { ip, prefix, v6 };
}

/** The network of `ip`/`prefix`: its host bits cleared. */
function maskedNetwork(ip: string, prefix: number, v6: boolean): string {
  if (v6) return formatIpv6(networkOf(parseIpv6(ip), prefix));
  const size = 2 ** (32 - prefix);
  const value = ipv4Value(ip) as number;
  return ipv4Text(value - (value % size));
}

/**
 * One Nexus host filter as OPTE's Address: a host prefix (/32, /128) is an address, any other a
 * subnet. A subnet with host bits set ("10.0.0.5/24") is its network, as omicron's sled agent
 * passed it to OPTE's Ipv4Cidr::new / Ipv6Cidr::new, which mask it (opte-api ip.rs).
 */
export function firewallHost(host: VpcFirewallHost, field = 'filter_hosts'): FirewallHost {
  if (typeof host === 'object' && host !== null && host.type === 'vpc') {
    const vni = host.value;
    if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw hostError('EINVAL', `${field}: VNI ${String(vni)} is not from 0 to 16777215`);
    return { type: 'vni', vni };
  }
  const net = typeof host === 'object' && host !== null && host.type === 'ip' ? host.value : host;
  if (typeof net !== 'string') throw hostError('EINVAL', `${field}: ${JSON.stringify(host)} is neither an IP network nor {type: "vpc", value: <vni>}`);
  const { ip, prefix, v6 } = prefixOf(net, field);
  if (prefix === (v6 ? 128 : 32)) return { type: 'ip', ip };
  return { type: 'subnet', subnet: `${maskedNetwork(ip, prefix, v6)}/${prefix}` };
}

function sameMac(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/**
 * The OPTE rules for one port out of a VPC's rules (opte.md §1.7): the enabled rules whose
 * targets are empty (the whole VPC) or name this port's (VNI, MAC), each unrolled into
 * protocols × hosts (an empty or null list is "any"), port ranges expanded.
 *
 * One deliberate difference from omicron: omicron keeps the port list only for TCP and UDP and
 * drops it for "any protocol", which widens "port 22, any protocol" to every packet. Here an
 * any-protocol rule keeps its ports; OPTE's port predicate then matches only TCP and UDP packets
 * to those ports, which is what the rule says. ICMP has no ports, so an ICMP rule's list is
 * dropped, as omicron does (otherwise it would match nothing).
 */
export function opteFirewallRules(rules: readonly VpcFirewallRule[], port: FirewallPortKey): FirewallRule[] {
  const out: FirewallRule[] = [];
  rules.forEach((rule, i) => {
    const at = `rules[${i}]`;
    if (rule.status !== 'enabled') {
      if (rule.status !== 'disabled') throw hostError('EINVAL', `${at}.status must be "enabled" or "disabled"`);
      return;
    }
    const targeted = rule.targets.length === 0 || rule.targets.some((t) => t.vni === port.vni && sameMac(t.mac, port.mac));
    if (!targeted) return;
    if (rule.direction !== 'inbound' && rule.direction !== 'outbound') throw hostError('EINVAL', `${at}.direction must be "inbound" or "outbound"`);
    if (rule.action !== 'allow' && rule.action !== 'deny') throw hostError('EINVAL', `${at}.action must be "allow" or "deny"`);
    if (!Number.isInteger(rule.priority) || rule.priority < 0 || rule.priority > 65535) {
      throw hostError('EINVAL', `${at}.priority must be an integer from 0 to 65535`);
    }
    const hosts: FirewallHost[] =
      rule.filter_hosts == null || rule.filter_hosts.length === 0
        ? [{ type: 'any' }]
        : rule.filter_hosts.map((h, j) => firewallHost(h, `${at}.filter_hosts[${j}]`));
    const protocols: Array<FirewallRule['protocol']> =
      rule.filter_protocols == null || rule.filter_protocols.length === 0
        ? ['any']
        : rule.filter_protocols.map((p, j) => {
            if (p !== 'TCP' && p !== 'UDP' && p !== 'ICMP') throw hostError('EINVAL', `${at}.filter_protocols[${j}] must be TCP, UDP or ICMP`);
            return p.toLowerCase() as 'tcp' | 'udp' | 'icmp';
          });
    let ports: 'any' | number[] = 'any';
    if (rule.filter_ports != null && rule.filter_ports.length > 0) {
      const set = new Set<number>();
      rule.filter_ports.forEach((r, j) => {
        for (const p of expandPortRange(r, `${at}.filter_ports[${j}]`)) set.add(p);
      });
      ports = [...set].sort((a, b) => a - b);
    }
    for (const protocol of protocols) {
      for (const h of hosts) {
        out.push({
          direction: rule.direction === 'inbound' ? 'in' : 'out',
          action: rule.action,
          priority: rule.priority,
          hosts: { ...h },
          protocol,
          ports: protocol === 'icmp' || ports === 'any' ? 'any' : [...ports],
        });
      }
    }
  });
  return out;
}

function hostText(h: FirewallHost): string {
  switch (h.type) {
    case 'any':
      return 'any';
    case 'ip':
      return `ip=${h.ip}`;
    case 'subnet':
      return `subnet=${h.subnet}`;
    case 'vni':
      return `vni=${h.vni}`;
  }
}

/**
 * A rule as one line of `opteadm set-fw-rules` stdin (opte.md §3.1):
 * `dir=in action=allow priority=65534 hosts=vni=1234 protocol=tcp port=22`.
 */
export function firewallRuleText(rule: FirewallRule): string {
  const ports = rule.ports === 'any' ? 'any' : rule.ports.join(',');
  return `dir=${rule.direction} action=${rule.action} priority=${rule.priority} hosts=${hostText(rule.hosts)} protocol=${rule.protocol} port=${ports}`;
}
