// The simulated host's OPTE: the xde ports of one simulated sled and the dataplane they make,
// enforcing what the driver enforces (src/host/index.ts HostNetwork; reference opte.md §1.5-1.10),
// so that a VPC policy can be checked end to end without hardware.
//
// The kernel's state is one plain JSON object (SimOpteState) that the sim host persists with the
// rest of its state: ports outlive the agent, as they do in the kernel. Each HostNetwork call is
// one opteadm run (a fork+exec), so it waits out a modelled latency before it acts.
//
// The dataplane (trace) follows the oxide-vpc layers of a port (lib/oxide-vpc/src/engine/):
//   out: firewall -> router -> nat -> overlay (V2P), then xde: local delivery or the underlay
//   in:  overlay -> nat -> router (allows) -> firewall
// firewall: inbound default deny, outbound default stateful allow; an allow is stateful (both
//   directions of the flow pass from then on); lower priority wins, deny wins a tie; setting the
//   rules clears the port's flows (Layer::set_rules "invalidates all flows").
//   A `vni` host filter matches only inbound packets that came over the VPC: OPTE tests a meta
//   value the overlay's decap sets, which outbound packets (firewall first) and packets from
//   outside the rack (through an external IP) do not have.
// router: outbound only; no matching entry denies (reported as no_route); the entry of highest
//   priority wins, where priority = ((32 - prefix) << 1 | system) + 10 (router.rs), so the
//   longest prefix wins and custom beats system; at equal priority a drop wins.
// nat: on a port with external IPs (the agent gives them to the primary NIC's port only): an
//   outbound packet to an internet_gateway route leaves with a floating IP, else the ephemeral
//   IP, else the SNAT IP and a port of its block; a reply keeps the address its flow came in on.
//   An inbound packet to the ephemeral or a floating IP becomes one to the private IP; to the
//   SNAT IP only replies pass.
// overlay: a VPC destination (a vpc_subnet or ip target) needs a V2P entry for (vni, ip); one that
//   names this sled's underlay address is delivered to the local port with that (vni, MAC), as
//   xde does when the outer source and destination are equal.
//
// Not modelled: the gateway layer beyond ICMP to the gateway address (ARP, DHCP), V2B (boundary
// services are assumed present for internet_gateway traffic), ICMP type filters, flow expiry by
// time (flows are kept, the oldest dropped past FLOW_LIMIT per port), IPv6 guests.
import { isIPv6 } from 'node:net';
import { canonicalIpv6 } from '../common/ipv6.js';
import { firewallRuleText } from '../host/firewall.js';
import {
  hostError,
  type ExternalIps,
  type FirewallHost,
  type FirewallRule,
  type HostNetwork,
  type PortInfo,
  type PortSpec,
  type RouterEntry,
  type RouterTarget,
  type V2PMapping,
} from '../host/index.js';

// ---- configuration ----

/**
 * One opteadm run: fork+exec of a small program that opens /dev/xde and makes one ioctl. Not
 * measured on a sled; the shape of a small exec on illumos (issue 11 suggests 5-10 ms).
 */
export const OPTEADM_CALL_MS = 7;

/** Flows kept per port; the oldest goes first (OPTE expires idle flows after 60 s instead). */
export const FLOW_LIMIT = 4096;

/** The `state` of every port in list-ports. */
export const PORT_STATE = 'running';

// ---- persisted state ----

export interface SimOptePort {
  /** As created, with `external` replaced by the last setExternalIps. */
  spec: PortSpec;
  /** In the order added (duplicates kept, as the driver's rule table does). */
  routes: RouterEntry[];
  rules: FirewallRule[];
}

export interface FlowEndpoint {
  ip: string;
  port: number;
}

/** A firewall-layer flow: both directions of it pass the port's firewall without the rules. */
export interface SimFirewallFlow {
  kind: 'firewall';
  port: string;
  /** flowKey() of the outbound direction, and of the inbound one. */
  out: string;
  in: string;
  /** Which direction's packet made it, and the rule that allowed that packet (opteadm text or "default"). */
  direction: 'in' | 'out';
  rule: string;
}

/** A NAT-layer flow: the guest's side and the address it has outside. */
export interface SimNatFlow {
  kind: 'nat';
  port: string;
  protocol: 'tcp' | 'udp' | 'icmp';
  private: FlowEndpoint;
  external: FlowEndpoint;
  remote: FlowEndpoint;
  via: 'floating' | 'ephemeral' | 'snat';
}

export type SimFlow = SimFirewallFlow | SimNatFlow;

/** The kernel's OPTE state on one sled: what survives the agent. */
export interface SimOpteState {
  /** set-xde-underlay's two links; null until set. */
  underlay: string[] | null;
  ports: SimOptePort[];
  /** Keyed by (vni, virtualIp): setting one replaces it. */
  v2p: V2PMapping[];
  flows: SimFlow[];
}

export function emptySimOpteState(): SimOpteState {
  return { underlay: null, ports: [], v2p: [], flows: [] };
}

export interface SimOpteOptions {
  /** The state to act on (kept by reference), or a getter for it. Default: a new empty state. */
  state?: SimOpteState | (() => SimOpteState);
  /** Awaited at the start of every call (the sim host: loaded and not closed). */
  ready?: () => Promise<void>;
  /** Waits out one opteadm run. Default: `callMs` by a timer. */
  latency?: (op: string, port: string | null) => Promise<void>;
  /** ms per opteadm run when `latency` is not given. Default 0. */
  callMs?: number;
  /** Awaited after every change to the state (the sim host writes its state file). */
  persist?: () => Promise<void>;
  /** Whether a VNIC or zone holds the port (then delete-xde fails with EBUSY). Default: never. */
  isPortBusy?: (name: string) => boolean;
  /** Whether the host has a link of that name (any kind). Default: not checked (underlay links are taken as given). */
  linkExists?: (name: string) => boolean;
  /** Set: no xde driver here, for this reason; every call fails with OPTE_UNAVAILABLE. */
  unavailable?: string;
}

// ---- the packet trace ----

export type TraceProtocol = 'TCP' | 'UDP' | 'ICMP';

export interface TracePacket {
  vni: number;
  src_ip: string;
  dst_ip: string;
  protocol: TraceProtocol;
  /** TCP/UDP; default 0 (an ICMP packet has none). */
  src_port?: number;
  dst_port?: number;
  direction: 'out' | 'in';
}

export type TraceVerdict = 'allow' | 'deny' | 'no_route' | 'no_port';
export type TraceLayer = 'gateway' | 'firewall' | 'router' | 'nat' | 'overlay';

export type TraceNext =
  /** Delivered to a port on this sled: trace it 'in' here. */
  | { local_port: string }
  /** Encapsulated to that sled (its underlay address): trace it 'in' there. */
  | { underlay: string }
  /** Out of the rack through boundary services, with this source. */
  | { internet_gateway: { src_ip: string; src_port?: number; via: 'floating' | 'ephemeral' | 'snat' } }
  /** Answered by the port's virtual gateway. */
  | { gateway: string };

export interface TraceAnswer {
  verdict: TraceVerdict;
  /** The port that evaluated the packet; null for no_port. */
  port: string | null;
  /** The layer that decided; for an allowed packet, the firewall (the policy that let it through). */
  layer: TraceLayer | null;
  /** What decided: a firewall rule or router entry in opteadm's syntax, "flow", or "default". */
  rule: string;
  /** Why, in words. */
  reason: string;
  /** For rule "flow": the flow's first packet's direction and the rule that allowed it. */
  flow?: { direction: 'in' | 'out'; rule: string };
  /** Outbound past the firewall: the router entry that matched. */
  route?: string;
  /** Inbound to an external IP: the packet as the guest sees it. */
  translated?: { dst_ip: string; dst_port?: number };
  /** An allowed outbound packet: where it goes next. */
  next?: TraceNext;
}

// ---- IPv4 ----

const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

function ipv4(text: string): number | null {
  if (typeof text !== 'string' || !IPV4.test(text)) return null;
  return text.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function ipv4Text(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

interface Cidr4 {
  net: number;
  prefix: number;
}

function cidr4(text: string): Cidr4 | null {
  if (typeof text !== 'string') return null;
  const m = /^([^/]+)\/([0-9]{1,2})$/.exec(text);
  if (m === null) return null;
  const addr = ipv4(m[1]!);
  const prefix = Number(m[2]);
  if (addr === null || prefix > 32) return null;
  return { net: maskTo(addr, prefix), prefix };
}

function maskTo(addr: number, prefix: number): number {
  if (prefix === 0) return 0;
  const size = 2 ** (32 - prefix);
  return addr - (addr % size);
}

function inCidr(addr: number, c: Cidr4): boolean {
  return maskTo(addr, c.prefix) === c.net;
}

function cidrText(c: Cidr4): string {
  return `${ipv4Text(c.net)}/${c.prefix}`;
}

/** IPv6 CIDR, canonical text, or null. */
function cidr6(text: string): string | null {
  if (typeof text !== 'string') return null;
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(text);
  if (m === null || !isIPv6(m[1]!) || Number(m[2]) > 128) return null;
  return `${canonicalIpv6(m[1]!)}/${Number(m[2])}`;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

// ---- validation (what opteadm refuses to parse: EINVAL) ----

function einval(message: string): never {
  throw hostError('EINVAL', message);
}

function checkLinkName(name: unknown, what: string): string {
  // dladm_valid_linkname: the underlay links are datalinks.
  if (typeof name !== 'string' || name.length === 0 || name.length > 31 || !/^[A-Za-z_.][A-Za-z0-9_.]*[0-9]$/.test(name)) {
    einval(`invalid ${what} ${JSON.stringify(name)}: a link name (at most 31 characters, ending in a digit)`);
  }
  return name;
}

const PORT_NAME = /^opte(0|[1-9][0-9]*)$/;

function checkPortName(name: unknown): string {
  if (typeof name !== 'string' || !PORT_NAME.test(name)) einval(`invalid port name ${JSON.stringify(name)}: opte<N>`);
  return name;
}

/** opteN by N, as opteadm list-ports orders them. */
function portNumber(name: string): number {
  return Number(name.slice('opte'.length));
}

function checkMac(mac: unknown, what: string): string {
  const lower = typeof mac === 'string' ? mac.toLowerCase() : '';
  if (!MAC.test(lower)) einval(`invalid ${what} ${JSON.stringify(mac)}: expected xx:xx:xx:xx:xx:xx`);
  return lower;
}

function checkIpv4(ip: unknown, what: string): string {
  if (typeof ip !== 'string' || ipv4(ip) === null) einval(`invalid ${what} ${JSON.stringify(ip)}: expected an IPv4 address`);
  return ip;
}

function checkIpv6(ip: unknown, what: string): string {
  if (typeof ip !== 'string' || !isIPv6(ip) || ip.includes('%')) einval(`invalid ${what} ${JSON.stringify(ip)}: expected an IPv6 address`);
  return canonicalIpv6(ip);
}

function checkVni(vni: unknown): number {
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 0xffffff) einval(`invalid VNI ${String(vni)}: 24 bits`);
  return vni;
}

function checkL4Port(p: unknown, what: string, min = 0): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < min || p > 65535) einval(`invalid ${what} ${String(p)}: expected ${min} to 65535`);
  return p;
}

function checkExternal(ext: unknown): ExternalIps {
  if (typeof ext !== 'object' || ext === null) einval('external IPs must be an object');
  const e = ext as ExternalIps;
  let snat: ExternalIps['snat'] = null;
  if (e.snat !== null && e.snat !== undefined) {
    const ip = checkIpv4(e.snat.ip, 'SNAT IP');
    const firstPort = checkL4Port(e.snat.firstPort, 'SNAT first port');
    const lastPort = checkL4Port(e.snat.lastPort, 'SNAT last port');
    if (firstPort > lastPort) einval(`SNAT ports ${firstPort}-${lastPort} run downwards`);
    snat = { ip, firstPort, lastPort };
  }
  const ephemeralIp = e.ephemeralIp === null || e.ephemeralIp === undefined ? null : checkIpv4(e.ephemeralIp, 'ephemeral IP');
  if (!Array.isArray(e.floatingIps)) einval('floating IPs must be a list');
  const floatingIps = e.floatingIps.map((ip) => checkIpv4(ip, 'floating IP'));
  return { snat, ephemeralIp, floatingIps };
}

function checkPortSpec(spec: unknown): PortSpec {
  if (typeof spec !== 'object' || spec === null) einval('the port spec must be an object');
  const s = spec as PortSpec;
  const subnet = cidr4(s.subnet);
  if (subnet === null) einval(`invalid VPC subnet ${JSON.stringify(s.subnet)}: expected an IPv4 CIDR`);
  if (cidrText(subnet) !== s.subnet) einval(`invalid VPC subnet ${s.subnet}: host bits are set (${cidrText(subnet)}?)`);
  const privateIp = checkIpv4(s.privateIp, 'private IP');
  if (!inCidr(ipv4(privateIp)!, subnet)) einval(`private IP ${privateIp} is outside the VPC subnet ${s.subnet}`);
  return {
    name: checkPortName(s.name),
    guestMac: checkMac(s.guestMac, 'guest MAC'),
    privateIp,
    subnet: s.subnet,
    gatewayMac: checkMac(s.gatewayMac, 'gateway MAC'),
    gatewayIp: checkIpv4(s.gatewayIp, 'gateway IP'),
    vni: checkVni(s.vni),
    underlayAddr: checkIpv6(s.underlayAddr, 'underlay address'),
    external: checkExternal(s.external),
  };
}

function checkRouterEntry(entry: unknown): RouterEntry {
  if (typeof entry !== 'object' || entry === null) einval('the router entry must be an object');
  const e = entry as RouterEntry;
  const d4 = cidr4(e.dest);
  const dest = d4 !== null ? cidrText(d4) : cidr6(e.dest);
  if (dest === null) einval(`invalid router destination ${JSON.stringify(e.dest)}: expected a CIDR`);
  const v4 = d4 !== null;
  if (e.class !== 'system' && e.class !== 'custom') einval(`invalid router class ${JSON.stringify(e.class)}: system or custom`);
  const t = e.target as RouterTarget | undefined;
  let target: RouterTarget;
  // valid_router_dest_target_pair: drop and internet gateways go anywhere; an ip or subnet target
  // must be of the destination's family.
  switch (t?.type) {
    case 'drop':
    case 'internet_gateway':
      target = { type: t.type };
      break;
    case 'ip': {
      const ok = v4 ? ipv4(t.ip) !== null : typeof t.ip === 'string' && isIPv6(t.ip);
      if (!ok) einval(`invalid router target ip ${JSON.stringify(t.ip)} for destination ${dest}`);
      target = { type: 'ip', ip: v4 ? t.ip : canonicalIpv6(t.ip) };
      break;
    }
    case 'vpc_subnet': {
      const s4 = cidr4(t.subnet);
      const sub = v4 ? (s4 === null ? null : cidrText(s4)) : cidr6(t.subnet);
      if (sub === null) einval(`invalid router target subnet ${JSON.stringify(t.subnet)} for destination ${dest}`);
      target = { type: 'vpc_subnet', subnet: sub };
      break;
    }
    default:
      einval(`invalid router target ${JSON.stringify(t)}`);
  }
  return { dest, target, class: e.class };
}

function checkFirewallHost(h: unknown): FirewallHost {
  const x = h as FirewallHost | null;
  switch (x?.type) {
    case 'any':
      return { type: 'any' };
    case 'ip':
      if (typeof x.ip !== 'string' || (ipv4(x.ip) === null && !isIPv6(x.ip))) einval(`invalid firewall host ip ${JSON.stringify(x.ip)}`);
      return { type: 'ip', ip: x.ip };
    case 'subnet': {
      const s4 = cidr4(x.subnet);
      const s = s4 !== null ? cidrText(s4) : cidr6(x.subnet);
      if (s === null) einval(`invalid firewall host subnet ${JSON.stringify(x.subnet)}`);
      return { type: 'subnet', subnet: s };
    }
    case 'vni':
      return { type: 'vni', vni: checkVni(x.vni) };
    default:
      einval(`invalid firewall hosts ${JSON.stringify(h)}`);
  }
}

function checkFirewallRule(rule: unknown, i: number): FirewallRule {
  if (typeof rule !== 'object' || rule === null) einval(`firewall rule ${i} must be an object`);
  const r = rule as FirewallRule;
  if (r.direction !== 'in' && r.direction !== 'out') einval(`firewall rule ${i}: dir must be in or out`);
  if (r.action !== 'allow' && r.action !== 'deny') einval(`firewall rule ${i}: action must be allow or deny`);
  if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 65535) einval(`firewall rule ${i}: priority must be a u16`);
  if (!['any', 'tcp', 'udp', 'icmp'].includes(r.protocol)) einval(`firewall rule ${i}: protocol must be any, tcp, udp or icmp`);
  let ports: FirewallRule['ports'];
  if (r.ports === 'any') ports = 'any';
  else if (Array.isArray(r.ports) && r.ports.length > 0) ports = r.ports.map((p) => checkL4Port(p, `firewall rule ${i} port`, 1));
  else einval(`firewall rule ${i}: ports must be "any" or a non-empty list`);
  return { direction: r.direction, action: r.action, priority: r.priority, hosts: checkFirewallHost(r.hosts), protocol: r.protocol, ports };
}

function checkV2P(m: unknown): V2PMapping {
  if (typeof m !== 'object' || m === null) einval('the V2P mapping must be an object');
  const v = m as V2PMapping;
  return {
    virtualIp: checkIpv4(v.virtualIp, 'virtual IP'),
    virtualMac: checkMac(v.virtualMac, 'virtual MAC'),
    physicalHostIp: checkIpv6(v.physicalHostIp, 'physical host IP'),
    vni: checkVni(v.vni),
  };
}

// ---- text ----

function targetText(t: RouterTarget, v4: boolean): string {
  switch (t.type) {
    case 'drop':
      return 'drop';
    case 'internet_gateway':
      return 'ig';
    case 'ip':
      return `${v4 ? 'ip4' : 'ip6'}=${t.ip}`;
    case 'vpc_subnet':
      return `${v4 ? 'sub4' : 'sub6'}=${t.subnet}`;
  }
}

/** A router entry as opteadm add-router-entry's arguments: `172.30.0.0/22 sub4=172.30.0.0/22 system`. */
export function routerEntryText(e: RouterEntry): string {
  return `${e.dest} ${targetText(e.target, !e.dest.includes(':'))} ${e.class}`;
}

function sameTarget(a: RouterTarget, b: RouterTarget): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'ip') return a.ip === (b as typeof a).ip;
  if (a.type === 'vpc_subnet') return a.subnet === (b as typeof a).subnet;
  return true;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

// ---- the model ----

interface Packet {
  vni: number;
  protocol: 'tcp' | 'udp' | 'icmp';
  src: FlowEndpoint;
  dst: FlowEndpoint;
  direction: 'out' | 'in';
}

function flowKey(protocol: string, src: FlowEndpoint, dst: FlowEndpoint): string {
  return `${protocol} ${src.ip}:${src.port} > ${dst.ip}:${dst.port}`;
}

function hasPorts(protocol: Packet['protocol']): boolean {
  return protocol === 'tcp' || protocol === 'udp';
}

export class SimOpte implements HostNetwork {
  private readonly getState: () => SimOpteState;
  private readonly readyHook: () => Promise<void>;
  private readonly latencyHook: (op: string, port: string | null) => Promise<void>;
  private readonly persistHook: () => Promise<void>;
  private readonly isPortBusy: (name: string) => boolean;
  private readonly linkExists: ((name: string) => boolean) | null;
  private readonly unavailable: string | null;

  constructor(options: SimOpteOptions = {}) {
    const s = options.state;
    if (typeof s === 'function') this.getState = s;
    else {
      const state = s ?? emptySimOpteState();
      this.getState = () => state;
    }
    const callMs = options.callMs ?? 0;
    if (!(callMs >= 0 && Number.isFinite(callMs))) throw new TypeError(`callMs must be a number of ms >= 0, got ${String(callMs)}`);
    this.readyHook = options.ready ?? (() => Promise.resolve());
    this.latencyHook = options.latency ?? (() => (callMs > 0 ? new Promise((resolve) => setTimeout(resolve, callMs)) : Promise.resolve()));
    this.persistHook = options.persist ?? (() => Promise.resolve());
    this.isPortBusy = options.isPortBusy ?? (() => false);
    this.linkExists = options.linkExists ?? null;
    this.unavailable = options.unavailable ?? null;
  }

  /** The kernel state (by reference; for the sim host and tests). */
  get state(): SimOpteState {
    return this.getState();
  }

  // ---- HostNetwork ----

  async available(): Promise<{ available: true } | { available: false; reason: string }> {
    await this.readyHook();
    return this.unavailable === null ? { available: true } : { available: false, reason: this.unavailable };
  }

  async setUnderlay(links: readonly [string, string]): Promise<void> {
    if (!Array.isArray(links) || links.length !== 2) einval('set-xde-underlay takes two links');
    for (const l of links) checkLinkName(l, 'underlay link');
    await this.enter('set-xde-underlay', null);
    const st = this.state;
    // The driver cannot say what its underlay is and refuses a second set (EEXIST): done.
    if (st.underlay !== null) return;
    for (const l of links) if (this.linkExists !== null && !this.linkExists(l)) einval(`underlay link ${l} does not exist`);
    st.underlay = [links[0], links[1]];
    await this.persistHook();
  }

  async createPort(spec: PortSpec): Promise<void> {
    const s = checkPortSpec(spec);
    await this.enter('create-xde', s.name);
    const st = this.state;
    if (st.underlay === null) throw hostError('OPTE_NO_UNDERLAY', `cannot create port ${s.name}: the xde underlay is not set (set-xde-underlay first)`);
    if (st.ports.some((p) => p.spec.name === s.name)) throw hostError('OPTE_PORT_EXISTS', `cannot create port ${s.name}: PortExists`);
    // An xde port is a datalink: dlmgmtd refuses a name another link has.
    if (this.linkExists?.(s.name) === true) throw hostError('OPTE_PORT_EXISTS', `cannot create port ${s.name}: a link of that name exists`);
    const twin = st.ports.find((p) => p.spec.vni === s.vni && p.spec.guestMac === s.guestMac);
    if (twin !== undefined) throw hostError('OPTE_MAC_EXISTS', `cannot create port ${s.name}: MacExists (port ${twin.spec.name} has VNI ${s.vni} and MAC ${s.guestMac})`);
    st.ports.push({ spec: s, routes: [], rules: [] });
    st.ports.sort((a, b) => portNumber(a.spec.name) - portNumber(b.spec.name));
    // xde adds the port's own V2P entry itself (opte.md §1.9).
    this.putV2P({ virtualIp: s.privateIp, virtualMac: s.guestMac, physicalHostIp: s.underlayAddr, vni: s.vni });
    await this.persistHook();
  }

  async deletePort(name: string): Promise<void> {
    checkPortName(name);
    await this.enter('delete-xde', name);
    const st = this.state;
    const i = st.ports.findIndex((p) => p.spec.name === name);
    if (i < 0) throw hostError('OPTE_NO_PORT', `cannot delete port ${name}: no such port`);
    if (this.isPortBusy(name)) throw hostError('OPTE_PORT_BUSY', `cannot delete port ${name}: a VNIC or zone holds it (EBUSY)`);
    const [port] = st.ports.splice(i, 1);
    // ... and takes it away by (vni, ip), whatever the entry says by now (opte#368).
    const own = st.v2p.findIndex((m) => m.vni === port!.spec.vni && m.virtualIp === port!.spec.privateIp);
    if (own >= 0) st.v2p.splice(own, 1);
    st.flows = st.flows.filter((f) => f.port !== name);
    await this.persistHook();
  }

  async listPorts(): Promise<PortInfo[]> {
    await this.enter('list-ports', null);
    return this.state.ports.map((p) => ({
      name: p.spec.name,
      mac: p.spec.guestMac,
      ip4: p.spec.privateIp,
      ephemeralIp4: p.spec.external.ephemeralIp,
      floatingIp4: [...p.spec.external.floatingIps],
      state: PORT_STATE,
    }));
  }

  async addRouterEntry(port: string, entry: RouterEntry): Promise<void> {
    checkPortName(port);
    const e = checkRouterEntry(entry);
    await this.enter('add-router-entry', port);
    this.port(port).routes.push(e);
    await this.persistHook();
  }

  async delRouterEntry(port: string, entry: RouterEntry): Promise<void> {
    checkPortName(port);
    const e = checkRouterEntry(entry);
    await this.enter('del-router-entry', port);
    const p = this.port(port);
    const i = p.routes.findIndex((r) => r.dest === e.dest && r.class === e.class && sameTarget(r.target, e.target));
    if (i < 0) throw hostError('OPTE_NO_ENTRY', `cannot delete router entry ${routerEntryText(e)} on ${port}: no matching rule found`);
    p.routes.splice(i, 1);
    await this.persistHook();
  }

  async setFirewallRules(port: string, rules: readonly FirewallRule[]): Promise<void> {
    checkPortName(port);
    if (!Array.isArray(rules)) einval('firewall rules must be a list');
    const checked = rules.map((r, i) => checkFirewallRule(r, i));
    await this.enter('set-fw-rules', port);
    const p = this.port(port);
    p.rules = checked;
    this.state.flows = this.state.flows.filter((f) => !(f.kind === 'firewall' && f.port === port));
    await this.persistHook();
  }

  async setExternalIps(port: string, external: ExternalIps): Promise<void> {
    checkPortName(port);
    const e = checkExternal(external);
    await this.enter('set-external-ips', port);
    const p = this.port(port);
    p.spec.external = e;
    this.state.flows = this.state.flows.filter((f) => !(f.kind === 'nat' && f.port === port));
    await this.persistHook();
  }

  async setV2P(mapping: V2PMapping): Promise<void> {
    const m = checkV2P(mapping);
    await this.enter('set-v2p', null);
    this.putV2P(m);
    await this.persistHook();
  }

  async clearV2P(mapping: V2PMapping): Promise<void> {
    const m = checkV2P(mapping);
    await this.enter('clear-v2p', null);
    const st = this.state;
    // VpcMappings::del looks up by (vni, ip) only and removes whatever is there, a local port's
    // own entry included: the agent must not ask for that; the driver does not stop it.
    const i = st.v2p.findIndex((x) => x.vni === m.vni && x.virtualIp === m.virtualIp);
    if (i < 0) throw hostError('OPTE_NO_ENTRY', `cannot clear V2P for ${m.virtualIp} in VNI ${m.vni}: no such mapping`);
    st.v2p.splice(i, 1);
    await this.persistHook();
  }

  async dumpV2P(): Promise<V2PMapping[]> {
    await this.enter('dump-v2p', null);
    return this.state.v2p.map((m) => ({ ...m }));
  }

  // ---- test and development aids (not opteadm) ----

  /** A port's routes and rules as the driver holds them (`dump-layer`). */
  async dumpPort(name: string): Promise<{ spec: PortSpec; routes: RouterEntry[]; rules: FirewallRule[] }> {
    await this.readyHook();
    return clone(this.port(name));
  }

  /**
   * Evaluates one packet at the port on this sled it belongs to (`src_ip` for out, `dst_ip` for
   * in, with its VNI) and says what the port does with it. An allowed packet leaves flow state
   * behind, as a real one does: its reply passes the firewall from then on.
   */
  async trace(packet: TracePacket): Promise<TraceAnswer> {
    const pkt = checkPacket(packet);
    await this.readyHook();
    if (this.unavailable !== null) throw hostError('OPTE_UNAVAILABLE', `OPTE is not available: ${this.unavailable}`);
    const { answer, changed } = pkt.direction === 'out' ? this.traceOut(pkt) : this.traceIn(pkt);
    if (changed) await this.persistHook();
    return answer;
  }

  // ---- internals ----

  private async enter(op: string, port: string | null): Promise<void> {
    await this.readyHook();
    if (this.unavailable !== null) throw hostError('OPTE_UNAVAILABLE', `opteadm ${op}: OPTE is not available: ${this.unavailable}`);
    await this.latencyHook(op, port);
  }

  private port(name: string): SimOptePort {
    const p = this.state.ports.find((x) => x.spec.name === name);
    if (p === undefined) throw hostError('OPTE_NO_PORT', `no port ${name}`);
    return p;
  }

  private putV2P(m: V2PMapping): void {
    const st = this.state;
    const i = st.v2p.findIndex((x) => x.vni === m.vni && x.virtualIp === m.virtualIp);
    if (i >= 0) st.v2p[i] = m;
    else st.v2p.push(m);
  }

  private addFlow(flow: SimFlow): void {
    const st = this.state;
    st.flows.push(flow);
    let count = 0;
    for (const f of st.flows) if (f.port === flow.port && f.kind === flow.kind) count++;
    if (count > FLOW_LIMIT) {
      const oldest = st.flows.findIndex((f) => f.port === flow.port && f.kind === flow.kind);
      st.flows.splice(oldest, 1);
    }
  }

  /** The firewall layer: a flow, else the winning rule, else the default. */
  private firewall(port: SimOptePort, pkt: Packet, vpcOrigin: boolean): { allow: boolean; rule: string; flow?: SimFirewallFlow } {
    const key = flowKey(pkt.protocol, pkt.src, pkt.dst);
    const flow = this.state.flows.find(
      (f): f is SimFirewallFlow => f.kind === 'firewall' && f.port === port.spec.name && (pkt.direction === 'out' ? f.out === key : f.in === key),
    );
    if (flow !== undefined) return { allow: true, rule: 'flow', flow };
    let best: FirewallRule | null = null;
    for (const r of port.rules) {
      if (!ruleMatches(r, pkt, vpcOrigin)) continue;
      // Lower priority value wins; at equal priority a deny wins; else the first.
      if (best === null || r.priority < best.priority || (r.priority === best.priority && r.action === 'deny' && best.action === 'allow')) best = r;
    }
    if (best === null) return { allow: pkt.direction === 'out', rule: 'default' };
    return { allow: best.action === 'allow', rule: firewallRuleText(best) };
  }

  private recordFirewallFlow(port: SimOptePort, pkt: Packet, rule: string): void {
    const fwd = flowKey(pkt.protocol, pkt.src, pkt.dst);
    const rev = flowKey(pkt.protocol, pkt.dst, pkt.src);
    this.addFlow({
      kind: 'firewall',
      port: port.spec.name,
      out: pkt.direction === 'out' ? fwd : rev,
      in: pkt.direction === 'out' ? rev : fwd,
      direction: pkt.direction,
      rule,
    });
  }

  private traceOut(pkt: Packet): { answer: TraceAnswer; changed: boolean } {
    const st = this.state;
    const port = st.ports.find((p) => p.spec.vni === pkt.vni && p.spec.privateIp === pkt.src.ip);
    if (port === undefined) {
      return { answer: noPort(`no port on this sled has IP ${pkt.src.ip} in VNI ${pkt.vni}`), changed: false };
    }
    const name = port.spec.name;
    if (pkt.protocol === 'icmp' && pkt.dst.ip === port.spec.gatewayIp) {
      return {
        answer: { verdict: 'allow', port: name, layer: 'gateway', rule: 'default', reason: 'the virtual gateway answers ICMP to its address', next: { gateway: port.spec.gatewayIp } },
        changed: false,
      };
    }
    const fw = this.firewall(port, pkt, false);
    if (!fw.allow) {
      return { answer: { verdict: 'deny', port: name, layer: 'firewall', rule: fw.rule, reason: `denied outbound by ${fw.rule === 'default' ? 'the default' : 'a rule'}` }, changed: false };
    }
    const dst = ipv4(pkt.dst.ip)!;
    const route = bestRoute(port.routes, dst);
    if (route === null) {
      return { answer: { verdict: 'no_route', port: name, layer: 'router', rule: 'default', reason: `no router entry matches ${pkt.dst.ip}` }, changed: false };
    }
    const routeText = routerEntryText(route);
    if (route.target.type === 'drop') {
      return { answer: { verdict: 'deny', port: name, layer: 'router', rule: routeText, reason: `the route to ${route.dest} drops` }, changed: false };
    }
    let next: TraceNext;
    let nat: SimNatFlow | null = null;
    if (route.target.type === 'internet_gateway') {
      const out = this.natOut(port, pkt);
      if ('problem' in out) {
        return { answer: { verdict: 'no_route', port: name, layer: 'nat', rule: 'default', reason: out.problem, route: routeText }, changed: false };
      }
      nat = out.fresh ? out.flow : null;
      const ig: { src_ip: string; src_port?: number; via: SimNatFlow['via'] } = { src_ip: out.flow.external.ip, via: out.flow.via };
      if (hasPorts(pkt.protocol)) ig.src_port = out.flow.external.port;
      next = { internet_gateway: ig };
    } else {
      const vip = route.target.type === 'ip' ? route.target.ip : pkt.dst.ip;
      const m = st.v2p.find((x) => x.vni === pkt.vni && x.virtualIp === vip);
      if (m === undefined) {
        return { answer: { verdict: 'no_route', port: name, layer: 'overlay', rule: 'default', reason: `no V2P mapping for ${vip} in VNI ${pkt.vni}`, route: routeText }, changed: false };
      }
      if (m.physicalHostIp === port.spec.underlayAddr) {
        const local = st.ports.find((p) => p.spec.vni === pkt.vni && p.spec.guestMac === m.virtualMac);
        if (local === undefined) {
          return {
            answer: { verdict: 'no_route', port: name, layer: 'overlay', rule: 'default', reason: `V2P puts ${vip} on this sled, but no port here has MAC ${m.virtualMac} in VNI ${pkt.vni}`, route: routeText },
            changed: false,
          };
        }
        next = { local_port: local.spec.name };
      } else {
        next = { underlay: m.physicalHostIp };
      }
    }
    if (fw.flow === undefined) this.recordFirewallFlow(port, pkt, fw.rule);
    if (nat !== null) this.addFlow(nat);
    const answer: TraceAnswer = {
      verdict: 'allow',
      port: name,
      layer: 'firewall',
      rule: fw.rule,
      reason: allowReason(fw),
      route: routeText,
      next,
    };
    if (fw.flow !== undefined) answer.flow = { direction: fw.flow.direction, rule: fw.flow.rule };
    return { answer, changed: fw.flow === undefined || nat !== null };
  }

  /** The source an outbound packet to an internet gateway leaves with. */
  private natOut(port: SimOptePort, pkt: Packet): { flow: SimNatFlow; fresh: boolean } | { problem: string } {
    const name = port.spec.name;
    const existing = this.state.flows.find(
      (f): f is SimNatFlow =>
        f.kind === 'nat' && f.port === name && f.protocol === pkt.protocol && sameEndpoint(f.private, pkt.src) && sameEndpoint(f.remote, pkt.dst),
    );
    if (existing !== undefined) return { flow: existing, fresh: false };
    const ext = port.spec.external;
    const base = { kind: 'nat' as const, port: name, protocol: pkt.protocol, private: { ...pkt.src }, remote: { ...pkt.dst } };
    // Floating IPs first; with one, the ephemeral IP only receives (and replies).
    if (ext.floatingIps.length > 0) return { flow: { ...base, external: { ip: ext.floatingIps[0]!, port: pkt.src.port }, via: 'floating' }, fresh: true };
    if (ext.ephemeralIp !== null) return { flow: { ...base, external: { ip: ext.ephemeralIp, port: pkt.src.port }, via: 'ephemeral' }, fresh: true };
    if (ext.snat !== null) {
      const snat = ext.snat;
      // An ICMP packet here has no ports to translate (OPTE rewrites the echo ident; not modelled).
      if (!hasPorts(pkt.protocol)) return { flow: { ...base, external: { ip: snat.ip, port: pkt.src.port }, via: 'snat' }, fresh: true };
      const used = new Set<number>();
      for (const f of this.state.flows) {
        if (f.kind === 'nat' && f.port === name && f.via === 'snat' && f.protocol === pkt.protocol && f.external.ip === snat.ip) used.add(f.external.port);
      }
      for (let p = snat.firstPort; p <= snat.lastPort; p++) {
        if (!used.has(p)) return { flow: { ...base, external: { ip: snat.ip, port: p }, via: 'snat' }, fresh: true };
      }
      return { problem: `every SNAT port ${snat.firstPort}-${snat.lastPort} of ${snat.ip} is in use` };
    }
    return { problem: `port ${name} has no external IP (no SNAT, ephemeral or floating IP): only the primary NIC's port has them` };
  }

  private traceIn(pkt0: Packet): { answer: TraceAnswer; changed: boolean } {
    const st = this.state;
    let pkt = pkt0;
    let port = st.ports.find((p) => p.spec.vni === pkt.vni && p.spec.privateIp === pkt.dst.ip);
    let nat: SimNatFlow | null = null;
    let freshNat = false;
    if (port === undefined) {
      // Through boundary services to an external address: the nat layer puts the private one in.
      const flow = st.flows.find(
        (f): f is SimNatFlow =>
          f.kind === 'nat' && f.protocol === pkt.protocol && sameEndpoint(f.external, pkt.dst) && sameEndpoint(f.remote, pkt.src),
      );
      const owner = flow === undefined ? undefined : st.ports.find((p) => p.spec.name === flow.port && p.spec.vni === pkt.vni);
      if (flow !== undefined && owner !== undefined) {
        port = owner;
        nat = flow;
      } else {
        const oneToOne = st.ports.find(
          (p) => p.spec.vni === pkt.vni && (p.spec.external.ephemeralIp === pkt.dst.ip || p.spec.external.floatingIps.includes(pkt.dst.ip)),
        );
        if (oneToOne !== undefined) {
          port = oneToOne;
          const via = oneToOne.spec.external.floatingIps.includes(pkt.dst.ip) ? 'floating' : 'ephemeral';
          nat = {
            kind: 'nat',
            port: oneToOne.spec.name,
            protocol: pkt.protocol,
            private: { ip: oneToOne.spec.privateIp, port: pkt.dst.port },
            external: { ...pkt.dst },
            remote: { ...pkt.src },
            via,
          };
          freshNat = true;
        } else {
          const snatPort = st.ports.find((p) => {
            const s = p.spec.external.snat;
            return p.spec.vni === pkt.vni && s !== null && s.ip === pkt.dst.ip && (!hasPorts(pkt.protocol) || (pkt.dst.port >= s.firstPort && pkt.dst.port <= s.lastPort));
          });
          if (snatPort !== undefined) {
            return {
              answer: { verdict: 'deny', port: snatPort.spec.name, layer: 'nat', rule: 'default', reason: `${pkt.dst.ip} is this port's SNAT address: only replies to its own flows come in` },
              changed: false,
            };
          }
          return { answer: noPort(`no port on this sled has IP ${pkt.dst.ip} in VNI ${pkt.vni}`), changed: false };
        }
      }
      pkt = { ...pkt, dst: { ...nat.private } };
    }
    const fw = this.firewall(port, pkt, nat === null);
    const translated = nat === null ? undefined : hasPorts(pkt.protocol) ? { dst_ip: pkt.dst.ip, dst_port: pkt.dst.port } : { dst_ip: pkt.dst.ip };
    if (!fw.allow) {
      const answer: TraceAnswer = { verdict: 'deny', port: port.spec.name, layer: 'firewall', rule: fw.rule, reason: `denied inbound by ${fw.rule === 'default' ? 'the default' : 'a rule'}` };
      if (translated !== undefined) answer.translated = translated;
      return { answer, changed: false };
    }
    if (fw.flow === undefined) this.recordFirewallFlow(port, pkt, fw.rule);
    if (freshNat && nat !== null) this.addFlow(nat);
    const answer: TraceAnswer = { verdict: 'allow', port: port.spec.name, layer: 'firewall', rule: fw.rule, reason: allowReason(fw) };
    if (fw.flow !== undefined) answer.flow = { direction: fw.flow.direction, rule: fw.flow.rule };
    if (translated !== undefined) answer.translated = translated;
    return { answer, changed: fw.flow === undefined || freshNat };
  }
}

function noPort(reason: string): TraceAnswer {
  return { verdict: 'no_port', port: null, layer: null, rule: 'default', reason };
}

function allowReason(fw: { rule: string; flow?: SimFirewallFlow }): string {
  if (fw.flow !== undefined) return `part of a flow allowed ${fw.flow.direction === 'out' ? 'outbound' : 'inbound'} earlier`;
  return fw.rule === 'default' ? 'outbound is allowed by default (statefully)' : 'allowed by a rule (statefully)';
}

function sameEndpoint(a: FlowEndpoint, b: FlowEndpoint): boolean {
  return a.ip === b.ip && a.port === b.port;
}

function routePriority(e: RouterEntry): number {
  const prefix = Number(e.dest.slice(e.dest.indexOf('/') + 1));
  return (((32 - prefix) << 1) | (e.class === 'system' ? 1 : 0)) + 10;
}

function bestRoute(routes: readonly RouterEntry[], dst: number): RouterEntry | null {
  let best: RouterEntry | null = null;
  let bestPrio = Infinity;
  for (const r of routes) {
    const c = cidr4(r.dest);
    if (c === null || !inCidr(dst, c)) continue; // IPv6 entries never match an IPv4 packet
    const prio = routePriority(r);
    if (prio < bestPrio || (prio === bestPrio && r.target.type === 'drop' && best!.target.type !== 'drop')) {
      best = r;
      bestPrio = prio;
    }
  }
  return best;
}

function hostMatches(h: FirewallHost, remote: string, pkt: Packet, vpcOrigin: boolean): boolean {
  switch (h.type) {
    case 'any':
      return true;
    case 'ip':
      return h.ip === remote;
    case 'subnet': {
      const c = cidr4(h.subnet);
      const a = ipv4(remote);
      return c !== null && a !== null && inCidr(a, c);
    }
    case 'vni':
      return pkt.direction === 'in' && vpcOrigin && pkt.vni === h.vni;
  }
}

function ruleMatches(r: FirewallRule, pkt: Packet, vpcOrigin: boolean): boolean {
  if (r.direction !== pkt.direction) return false;
  if (r.protocol !== 'any' && r.protocol !== pkt.protocol) return false;
  // The port filter is on the destination port in both directions (InnerDstPort) and needs one.
  if (r.ports !== 'any' && !(hasPorts(pkt.protocol) && r.ports.includes(pkt.dst.port))) return false;
  return hostMatches(r.hosts, pkt.direction === 'out' ? pkt.dst.ip : pkt.src.ip, pkt, vpcOrigin);
}

function checkPacket(p: unknown): Packet {
  if (typeof p !== 'object' || p === null) einval('the packet must be an object');
  const t = p as TracePacket;
  if (t.direction !== 'out' && t.direction !== 'in') einval('direction must be "out" or "in"');
  if (t.protocol !== 'TCP' && t.protocol !== 'UDP' && t.protocol !== 'ICMP') einval('protocol must be TCP, UDP or ICMP');
  const protocol = t.protocol.toLowerCase() as Packet['protocol'];
  const vni = checkVni(t.vni);
  const src = checkIpv4(t.src_ip, 'src_ip');
  const dst = checkIpv4(t.dst_ip, 'dst_ip');
  let sp = 0;
  let dp = 0;
  if (protocol === 'icmp') {
    if (t.src_port !== undefined || t.dst_port !== undefined) einval('an ICMP packet has no ports');
  } else {
    if (t.dst_port === undefined) einval(`a ${t.protocol} packet needs dst_port`);
    dp = checkL4Port(t.dst_port, 'dst_port');
    sp = t.src_port === undefined ? 0 : checkL4Port(t.src_port, 'src_port');
  }
  return { vni, protocol, src: { ip: src, port: sp }, dst: { ip: dst, port: dp }, direction: t.direction };
}
