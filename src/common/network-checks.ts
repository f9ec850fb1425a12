// Guest-networking input that a JSON schema cannot judge, checked once for both the sled agent
// and the simulated one, so both refuse the same bodies with the same 400. Every message starts
// with the field, spelled as the schema errors spell it ("body/initial/nics/1/mac ..."), so a
// person can find it in the body they sent.
import { invalidRequest } from './errors.js';
import { canonicalIpv6 } from './ipv6.js';
import type {
  InstanceHardware, NetworkInterface, SetVirtualNetworkInterfaceHost, SourceNatConfig, VpcFirewallRule,
  VpcFirewallRulesEnsureBody,
} from '../params.js';

/** Guest MACs (omicron's MacAddr::{MIN,MAX}_GUEST_ADDR); the rest of A8:40:25 is for the system. */
export const GUEST_MAC_FIRST = 'A8:40:25:F0:00:00';
export const GUEST_MAC_LAST = 'A8:40:25:FE:FF:FF';
/** A Geneve VNI has 24 bits. */
export const MAX_VNI = 0xff_ffff;
/** omicron's NUM_SOURCE_NAT_PORTS: each instance gets one aligned block of this many ports. */
export const SOURCE_NAT_PORTS = 1 << 14;

export type ResolvedNetworkInterface = NetworkInterface & { primary: boolean };

/** InstanceHardware with the pinned shape's omissions made explicit: which NIC is primary, no external IPs, no rules. */
export type ResolvedInstanceHardware = InstanceHardware & {
  nics: ResolvedNetworkInterface[];
  external_ips: string[];
  firewall_rules: VpcFirewallRule[];
};

const macValue = (mac: string) => Number.parseInt(mac.replaceAll(':', ''), 16);

export function isGuestMac(mac: string): boolean {
  const value = macValue(mac);
  return value >= macValue(GUEST_MAC_FIRST) && value <= macValue(GUEST_MAC_LAST);
}

/** An IPv4 address as its 32-bit value, dotted. */
export function ipv4Text(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** "a.b.c.d/prefix" as its network's 32-bit value and prefix length; null if it is not an IPv4 subnet. */
export function ipv4Subnet(text: string): { net: number; prefix: number } | null {
  const slash = text.lastIndexOf('/');
  const digits = text.slice(slash + 1);
  const net = slash < 0 ? null : ipv4Value(text.slice(0, slash));
  const prefix = Number(digits);
  if (net === null || !/^[0-9]{1,2}$/.test(digits) || prefix > 32) return null;
  return { net, prefix };
}

/** A dotted IPv4 address as its 32-bit value; null if it is not one. */
export function ipv4Value(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** An L4PortRange ("22", "8000-8080") as numbers, or why it is not one. */
export function parsePortRange(text: string): { first: number; last: number } | { error: string } {
  const match = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(text);
  if (!match) return { error: 'must be a port or "first-last"' };
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  if (first > 0xffff || last > 0xffff) return { error: 'names a port above 65535' };
  // omicron's L4Port is a NonZeroU16, and src/host/firewall.ts refuses 0 when it expands the range.
  if (first === 0) return { error: 'names port 0; ports are 1 to 65535' };
  if (first > last) return { error: 'has its first port above its last' };
  return { first, last };
}

function checkVni(vni: number, where: string): void {
  if (vni > MAX_VNI) throw invalidRequest(`${where} is ${vni}: a VNI has 24 bits, so at most ${MAX_VNI}`);
}

function checkGuestMac(mac: string, where: string): void {
  if (!isGuestMac(mac)) {
    throw invalidRequest(`${where} ${mac} is outside the guest MAC range ${GUEST_MAC_FIRST}-${GUEST_MAC_LAST}`);
  }
}

/** A guest NIC, wherever it appears (an instance's NICs, a firewall rule's targets). */
export function checkNetworkInterface(nic: NetworkInterface, where: string): void {
  checkGuestMac(nic.mac, `${where}/mac`);
  checkVni(nic.vni, `${where}/vni`);
  // Guest ports are IPv4 only (the original's port allocator refused IPv6 as "not yet
  // supported"), and a port's gateway is its subnet's first host: found out here, not after the
  // instance's zone was made.
  const ip = ipv4Value(nic.ip);
  if (ip === null) throw invalidRequest(`${where}/ip ${nic.ip} is not IPv4: guest NICs are IPv4 only (OPTE takes no IPv6 guest address)`);
  const subnet = ipv4Subnet(nic.subnet);
  if (subnet === null || subnet.prefix > 30) {
    throw invalidRequest(`${where}/subnet ${nic.subnet} is not an IPv4 subnet of /30 or larger: a guest's subnet holds its gateway (the first host) and the guest`);
  }
  const { net, prefix } = subnet;
  const size = 2 ** (32 - prefix);
  if (net % size !== 0) {
    throw invalidRequest(`${where}/subnet ${nic.subnet} has host bits set: the subnet is ${ipv4Text(net - (net % size))}/${prefix}`);
  }
  if (Math.floor(ip / size) !== net / size) throw invalidRequest(`${where}/ip ${nic.ip} is outside its subnet ${nic.subnet}`);
}

export function checkSourceNat(snat: SourceNatConfig, where: string): void {
  if (ipv4Value(snat.ip) === null) throw invalidRequest(`${where}/ip ${snat.ip} is not IPv4: a guest's external addresses are IPv4 only`);
  const { first_port: first, last_port: last } = snat;
  if (first % SOURCE_NAT_PORTS !== 0 || last !== first + SOURCE_NAT_PORTS - 1) {
    throw invalidRequest(`${where} ports ${first}-${last} are not a block of ${SOURCE_NAT_PORTS} ports starting at a multiple of ${SOURCE_NAT_PORTS} (e.g. ${SOURCE_NAT_PORTS}-${2 * SOURCE_NAT_PORTS - 1})`);
  }
}

/**
 * What one port's rules may unroll to (src/host/firewall.ts): an OPTE rule per (protocol, host)
 * of each enabled rule, each with its own list of every port its ranges name, written out again
 * as `port=1,2,...` for opteadm. Neither OPTE (its ioctl copy-in has no upper bound yet) nor
 * Nexus (1024 rules of 256 hosts and 256 port ranges each) bounds that product, and at about 8
 * bytes a port value in the agent's heap one 1.7 KB rule took 106 MB. These bounds are far past
 * Nexus's default rules (four OPTE rules) and still take every port, TCP and UDP, from two hosts:
 * about 6 MB of heap and 1.5 MB of opteadm input for a port at the port-value bound, 14 MB at the
 * rule bound.
 */
export const MAX_FIREWALL_OPTE_RULES = 1 << 16;
export const MAX_FIREWALL_PORT_VALUES = 1 << 18;

/** How many distinct ports `ranges` name, as the expansion dedups them. */
function distinctPorts(ranges: Array<{ first: number; last: number }>): number {
  let count = 0;
  let end = 0;
  for (const { first, last } of [...ranges].sort((a, b) => a.first - b.first)) {
    if (last > end) {
      count += last - Math.max(first - 1, end);
      end = last;
    }
  }
  return count;
}

const plural = (n: number, one: string) => `${n.toLocaleString('en-US')} ${one}${n === 1 ? '' : 's'}`;

export function checkFirewallRules(rules: VpcFirewallRule[], where: string): void {
  // Counted over every enabled rule, whatever its targets: a port the rules all target gets them all.
  let opteRules = 0;
  let portValues = 0;
  rules.forEach((rule, i) => {
    rule.targets.forEach((target, j) => checkNetworkInterface(target, `${where}/${i}/targets/${j}`));
    const ranges = (rule.filter_ports ?? []).map((range, k) => {
      const parsed = parsePortRange(range);
      if ('error' in parsed) throw invalidRequest(`${where}/${i}/filter_ports/${k} "${range}" ${parsed.error}`);
      return parsed;
    });
    if (rule.status !== 'enabled') return;
    const hosts = Math.max(1, rule.filter_hosts?.length ?? 0);
    const protocols = rule.filter_protocols?.length ? rule.filter_protocols : ['any'];
    // ICMP has no ports, so its OPTE rules carry none.
    const withPorts = ranges.length === 0 ? 0 : protocols.filter((p) => p !== 'ICMP').length;
    const ports = distinctPorts(ranges);
    const ownRules = hosts * protocols.length;
    const ownValues = hosts * withPorts * ports;
    opteRules += ownRules;
    portValues += ownValues;
    const over = (total: number, own: number, limit: number, what: string, product: string, advice: string) => {
      const before = total > own ? `, ${total.toLocaleString('en-US')} with the rules before it` : '';
      return invalidRequest(`${where}/${i} expands to ${plural(own, what)} on a port (${product})${before}: ${(total - limit).toLocaleString('en-US')} over the limit of ${limit.toLocaleString('en-US')} for a port's rules; ${advice}`);
    };
    if (portValues > MAX_FIREWALL_PORT_VALUES) {
      throw over(portValues, ownValues, MAX_FIREWALL_PORT_VALUES, 'port value', `${plural(hosts, 'host')} × ${plural(withPorts, 'protocol')} with ports × ${plural(ports, 'port')}`,
        'name fewer hosts or ports, or leave filter_ports empty to match every port');
    }
    if (opteRules > MAX_FIREWALL_OPTE_RULES) {
      throw over(opteRules, ownRules, MAX_FIREWALL_OPTE_RULES, 'OPTE rule', `${plural(hosts, 'host')} × ${plural(protocols.length, 'protocol')}`,
        'name fewer hosts or protocols in each rule (a subnet covers many hosts)');
    }
  });
}

/**
 * Checks an instance's hardware and says what a body of the pinned shape leaves unsaid. Either
 * every NIC says whether it is primary (the networking shape) or none does (the pinned shape,
 * where the NIC in slot 0 is primary); a mix is refused rather than guessed.
 */
export function checkInstanceHardware(hardware: InstanceHardware, where = 'body/initial'): ResolvedInstanceHardware {
  const { nics } = hardware;
  const slots = new Map<number, number>();
  const macs = new Map<string, number>();
  nics.forEach((nic, i) => {
    const at = `${where}/nics/${i}`;
    checkNetworkInterface(nic, at);
    const sameSlot = slots.get(nic.slot);
    if (sameSlot !== undefined) throw invalidRequest(`${at}/slot ${nic.slot} is also the slot of nics/${sameSlot}: each NIC needs its own slot`);
    slots.set(nic.slot, i);
    // Two ports with one MAC in a VPC are refused by OPTE (MacExists) after the zone is half made.
    const sameMac = macs.get(nic.mac.toLowerCase());
    if (sameMac !== undefined) throw invalidRequest(`${at}/mac ${nic.mac} is also the MAC of nics/${sameMac}`);
    macs.set(nic.mac.toLowerCase(), i);
  });

  const saying = nics.filter((nic) => nic.primary !== undefined).length;
  if (saying > 0 && saying < nics.length) {
    const silent = nics.findIndex((nic) => nic.primary === undefined);
    throw invalidRequest(`${where}/nics/${silent}/primary is required: another NIC says whether it is primary`);
  }
  const resolved = nics.map((nic) => ({ ...nic, primary: saying > 0 ? nic.primary === true : nic.slot === 0 }));
  const primaries = resolved.flatMap((nic, i) => (nic.primary ? [i] : []));
  if (primaries.length > 1) {
    throw invalidRequest(`${where}/nics/${primaries[1]}/primary: nics/${primaries[0]} is primary too, and an instance has one primary NIC`);
  }

  if (hardware.source_nat !== undefined) checkSourceNat(hardware.source_nat, `${where}/source_nat`);
  const externalIps = hardware.external_ips ?? [];
  // They go on the primary NIC's port, which, like the guest behind it, is IPv4 only.
  externalIps.forEach((ip, i) => {
    if (ipv4Value(ip) === null) throw invalidRequest(`${where}/external_ips/${i} ${ip} is not IPv4: a guest's external addresses are IPv4 only`);
  });
  // External addresses live on the primary NIC's port; with NICs but none primary they would be dropped silently.
  if (nics.length > 0 && primaries.length === 0 && (externalIps.length > 0 || hardware.source_nat !== undefined)) {
    throw invalidRequest(`${where}/nics: no NIC is primary, so source_nat and external_ips have no port to go on`);
  }
  const rules = hardware.firewall_rules ?? [];
  checkFirewallRules(rules, `${where}/firewall_rules`);
  return { ...hardware, nics: resolved, external_ips: externalIps, firewall_rules: rules };
}

/** PUT /vpc/{vpc_id}/firewall/rules. A target in another VPC than `vni` says would never match one of its ports. */
export function checkFirewallRulesEnsure(body: VpcFirewallRulesEnsureBody, where = 'body'): void {
  if (body.vni !== undefined) checkVni(body.vni, `${where}/vni`);
  checkFirewallRules(body.rules, `${where}/rules`);
  if (body.vni === undefined) return;
  body.rules.forEach((rule, i) => rule.targets.forEach((target, j) => {
    if (target.vni !== body.vni) {
      throw invalidRequest(`${where}/rules/${i}/targets/${j}/vni is ${target.vni}, but the rules are for VNI ${body.vni} (${where}/vni)`);
    }
  }));
}

/**
 * The VNI a firewall update is for: the body's, or else the one VNI the rules' targets name. The
 * rules replace those on this sled's ports with that VNI and no others (omicron before #3352
 * replaced them on every port of the sled, #3336).
 */
export function vniOfRules(vni: number | undefined, rules: VpcFirewallRule[]): number {
  if (vni !== undefined) return vni;
  const named = [...new Set(rules.flatMap((rule) => rule.targets.map((target) => target.vni)))].sort((a, b) => a - b);
  if (named.length === 1) return named[0] as number;
  throw invalidRequest(named.length === 0
    ? 'body/vni is needed: no rule has a target, so the rules do not say which VPC\'s ports they are for'
    : `body/vni is needed: the rules' targets name ${named.length} VNIs (${named.join(', ')}), so which VPC's ports they are for is ambiguous`);
}

export function checkV2P(body: SetVirtualNetworkInterfaceHost, where = 'body'): void {
  checkGuestMac(body.virtual_mac, `${where}/virtual_mac`);
  checkVni(body.vni, `${where}/vni`);
  if (ipv4Value(body.virtual_ip) === null) throw invalidRequest(`${where}/virtual_ip ${body.virtual_ip} is not IPv4: guests' addresses are IPv4 only`);
}

/** Spellings that mean the same mapping compare equal ("A8:40:25:F0:00:01" and lower case, "fd00::0:1" and "fd00::1"). */
export function sameMapping(a: SetVirtualNetworkInterfaceHost, b: SetVirtualNetworkInterfaceHost): boolean {
  return a.vni === b.vni
    && a.virtual_mac.toLowerCase() === b.virtual_mac.toLowerCase()
    && sameIp(a.virtual_ip, b.virtual_ip)
    && sameIp(a.physical_host_ip, b.physical_host_ip);
}

export function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return canonicalIpv6(a) === canonicalIpv6(b);
  } catch {
    return false; // IPv4 spellings are canonical already
  }
}
