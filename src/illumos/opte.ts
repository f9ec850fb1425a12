// Guest networking on illumos (the Host's network part, src/host/index.ts): OPTE through
// `opteadm`, exec'd with argument arrays, never a shell. opteadm ships in the same package as the
// xde driver, so it always speaks the driver's API version; talking to /dev/xde directly would
// mean pinning one (reference opte.md §3.2). The syntax is opteadm's at opte 21df7210 (§3.1).
//
// Every argument is checked here before anything runs (EINVAL), so a malformed value never
// reaches opteadm's own parser. opteadm answers with human-readable text only: list-ports and
// dump-v2p are parsed from their tables, and its errors ("Error: <anyhow message>" on stderr,
// exit 1) are mapped to the Host's codes by their text (opteadmErrorCode).
//
// Two places where the driver differs from what the Host promises, and what is done about it:
// - clear-v2p succeeds whether or not there is a mapping, so clearV2P looks with dump-v2p first
//   (the agent is the only writer of V2P on its sled).
// - A taken port name fails in dlmgmtd, before the driver's PortExists check could, when opteadm
//   allocates the port's link id ("netadm failed dlmgmtd: link id creation failed: 17"); both
//   texts map to OPTE_PORT_EXISTS.
import { failureDetail, runCommand, type CommandFailure, type CommandResult } from './exec.js';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import {
  hostError,
  isHostError,
  type ExternalIps,
  type FirewallRule,
  type HostError,
  type HostNetwork,
  type PortInfo,
  type PortSpec,
  type RouterEntry,
  type V2PMapping,
} from '../host/index.js';
import { describeValue, linkNameProblem, normalizeMac } from '../host/names.js';

export const DEFAULT_OPTEADM = '/opt/oxide/opte/bin/opteadm';
/** The xde driver's configuration; omicron refuses to go on without it (NoXdeConf). */
export const DEFAULT_XDE_CONF = '/kernel/drv/xde.conf';
/** OPTE_LINK_PREFIX: every port is `opte<N>`. */
export const OPTE_PORT_PREFIX = 'opte';
/** Vni: 24 bits. */
export const VNI_MAX = 0xff_ff_ff;

const DEFAULT_TIMEOUT_MS = 60_000;

export interface IllumosNetworkOptions {
  /** Absolute path of opteadm (default /opt/oxide/opte/bin/opteadm). */
  opteadm?: string;
  /** Whose existence says the xde driver is installed (default /kernel/drv/xde.conf). */
  xdeConf?: string;
  /** Deadline for each opteadm run (default 60 s); past it the run is killed and rejects ETIMEDOUT. */
  timeoutMs?: number;
}

// ---- running opteadm ----

/** An opteadm run that failed: its code (see opteadmErrorCode), exit status and own stderr. */
export class OpteadmError extends Error {
  constructor(
    readonly code: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    detail: string,
  ) {
    super(`opteadm ${args.join(' ')}: ${detail}`);
    this.name = 'OpteadmError';
  }
}

/**
 * The Host code for a failed opteadm run, from its subcommand, exit status and stderr. The texts
 * are opteadm's (anyhow's "Error: " and the Debug form of opte-ioctl's and OpteError's variants).
 */
export function opteadmErrorCode(subcommand: string, exitCode: number | null, stderr: string): string {
  // clap refused the command line: our checks should have caught it first
  if (exitCode === 2 && /^error: /m.test(stderr)) return 'EINVAL';
  if (/OPTE driver is not attached/.test(stderr)) return 'OPTE_UNAVAILABLE';
  if (/\bPortExists\(/.test(stderr)) return 'OPTE_PORT_EXISTS';
  if (subcommand === 'create-xde' && /link id creation failed: 17\b/.test(stderr)) return 'OPTE_PORT_EXISTS';
  if (/\bMacExists \{/.test(stderr)) return 'OPTE_MAC_EXISTS';
  if (/\bPortNotFound\(/.test(stderr)) return 'OPTE_NO_PORT';
  // delete-xde looks the link up in dlmgmtd before it asks the driver
  if (subcommand === 'delete-xde' && /not found: link \S+ not found/.test(stderr)) return 'OPTE_NO_PORT';
  // dls_devnet_destroy refuses while a VNIC (or a zone) holds the link; the driver rolls back
  if (subcommand === 'delete-xde' && /errno: 16\b/.test(stderr)) return 'OPTE_PORT_BUSY';
  if (/underlay not initialized/.test(stderr)) return 'OPTE_NO_UNDERLAY';
  if (subcommand === 'set-xde-underlay' && /underlay already initialized|errno: 17\b/.test(stderr)) return 'EEXIST';
  if (/no matching rule found/.test(stderr)) return 'OPTE_NO_ENTRY';
  if (/^Error: Invalid rule: /m.test(stderr)) return 'EINVAL';
  return 'ECOMMAND';
}

async function run(program: string, args: readonly string[], stdin: string, timeoutMs: number): Promise<CommandResult> {
  try {
    return await runCommand(program, args, { timeoutMs, stdin });
  } catch (err) {
    const f = err as CommandFailure;
    if (f.spawnCode === 'ENOENT' || f.spawnCode === 'EACCES') {
      throw new OpteadmError('OPTE_UNAVAILABLE', args, null, '', `opteadm cannot be run from ${program}: ${f.message}`);
    }
    const code = f.exitCode !== null ? opteadmErrorCode(args[0] ?? '', f.exitCode, f.stderr) : f.timedOut ? 'ETIMEDOUT' : 'ECOMMAND';
    throw new OpteadmError(code, args, f.exitCode, f.stderr, failureDetail(f, timeoutMs));
  }
}

// ---- argument checks (EINVAL before anything runs) ----

function invalid(message: string): HostError {
  return hostError('EINVAL', message);
}

/** `opte<N>` (no leading zeroes), a valid link name. */
export function validatePortName(name: unknown): string {
  if (typeof name !== 'string' || !/^opte(0|[1-9][0-9]*)$/.test(name)) {
    throw invalid(`invalid OPTE port name ${describeValue(name)}: expected opte<N>`);
  }
  const problem = linkNameProblem(name);
  if (problem !== null) throw invalid(`invalid OPTE port name ${describeValue(name)}: ${problem}`);
  return name;
}

function mac(what: string, value: unknown): string {
  try {
    return normalizeMac(value);
  } catch {
    throw invalid(`${what}: invalid MAC address ${describeValue(value)}: expected xx:xx:xx:xx:xx:xx`);
  }
}

function ipv4(what: string, value: unknown): string {
  if (typeof value !== 'string' || !isIPv4(value)) throw invalid(`${what}: ${describeValue(value)} is not an IPv4 address`);
  return value;
}

function ipv6(what: string, value: unknown): string {
  if (typeof value !== 'string' || !isIPv6(value) || value.includes('%')) {
    throw invalid(`${what}: ${describeValue(value)} is not an IPv6 address`);
  }
  return value;
}

function ipAny(what: string, value: unknown): string {
  if (typeof value === 'string' && isIPv4(value)) return value;
  return ipv6(what, value);
}

function integer(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${what}: ${describeValue(value)} is not an integer from ${min} to ${max}`);
  }
  return value;
}

function v4bits(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function v6bits(ip: string): bigint {
  const [head, tail] = ip.includes('::') ? (ip.split('::') as [string, string]) : [ip, undefined];
  const groups = (part: string | undefined): string[] => {
    if (part === undefined || part === '') return [];
    const g = part.split(':');
    const last = g[g.length - 1]!;
    if (last.includes('.')) {
      const b = v4bits(last);
      g.splice(g.length - 1, 1, Math.floor(b / 65536).toString(16), (b % 65536).toString(16));
    }
    return g;
  };
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** A CIDR ("a.b.c.d/n" or "<v6>/n") whose host bits are clear; returns its family. */
function cidr(what: string, value: unknown, family?: 4 | 6): 4 | 6 {
  const m = typeof value === 'string' ? /^([^/]+)\/(0|[1-9][0-9]{0,2})$/.exec(value) : null;
  const ip = m?.[1];
  const prefix = m === null ? NaN : Number(m[2]);
  const f = ip !== undefined && isIPv4(ip) ? 4 : ip !== undefined && isIPv6(ip) && !ip.includes('%') ? 6 : null;
  if (f === null || prefix > (f === 4 ? 32 : 128) || (family !== undefined && f !== family)) {
    const kind = family === 4 ? 'an IPv4 CIDR' : family === 6 ? 'an IPv6 CIDR' : 'a CIDR';
    throw invalid(`${what}: ${describeValue(value)} is not ${kind} (address/prefix length)`);
  }
  const hostBitsClear =
    f === 4
      ? prefix === 0
        ? v4bits(ip!) === 0
        : v4bits(ip!) % 2 ** (32 - prefix) === 0
      : (v6bits(ip!) & ((1n << BigInt(128 - prefix)) - 1n)) === 0n;
  if (!hostBitsClear) throw invalid(`${what}: ${describeValue(value)} has host bits set: give the network address`);
  return f;
}

function inSubnet(ip: string, subnet: string): boolean {
  const [net, len] = subnet.split('/') as [string, string];
  const prefix = Number(len);
  const size = 2 ** (32 - prefix);
  return Math.floor(v4bits(ip) / size) === Math.floor(v4bits(net) / size);
}

function checkExternal(what: string, external: unknown): ExternalIps {
  if (typeof external !== 'object' || external === null) throw invalid(`${what} must be an object`);
  const e = external as ExternalIps;
  if (e.snat !== null) {
    if (typeof e.snat !== 'object') throw invalid(`${what}.snat must be an object or null`);
    ipv4(`${what}.snat.ip`, e.snat.ip);
    const first = integer(`${what}.snat.firstPort`, e.snat.firstPort, 0, 65535);
    const last = integer(`${what}.snat.lastPort`, e.snat.lastPort, 0, 65535);
    if (first > last) throw invalid(`${what}.snat: the port range ${first}-${last} is empty`);
  }
  if (e.ephemeralIp !== null) ipv4(`${what}.ephemeralIp`, e.ephemeralIp);
  if (!Array.isArray(e.floatingIps)) throw invalid(`${what}.floatingIps must be an array`);
  e.floatingIps.forEach((ip, i) => ipv4(`${what}.floatingIps[${i}]`, ip));
  return e;
}

function checkPortSpec(spec: unknown): PortSpec {
  if (typeof spec !== 'object' || spec === null) throw invalid('the port spec must be an object');
  const s = spec as PortSpec;
  validatePortName(s.name);
  mac('guestMac', s.guestMac);
  mac('gatewayMac', s.gatewayMac);
  ipv4('privateIp', s.privateIp);
  cidr('subnet', s.subnet, 4);
  if (!inSubnet(s.privateIp, s.subnet)) throw invalid(`privateIp: ${s.privateIp} is not in subnet ${s.subnet}`);
  ipv4('gatewayIp', s.gatewayIp);
  if (!inSubnet(s.gatewayIp, s.subnet)) throw invalid(`gatewayIp: ${s.gatewayIp} is not in subnet ${s.subnet}`);
  integer('vni', s.vni, 0, VNI_MAX);
  ipv6('underlayAddr', s.underlayAddr);
  checkExternal('external', s.external);
  return s;
}

function checkLinkName(what: string, name: unknown): string {
  const problem = linkNameProblem(name);
  if (problem !== null) throw invalid(`${what}: invalid link name ${describeValue(name)}: ${problem}`);
  return name as string;
}

// ---- argument builders ----

function externalArgs(e: ExternalIps): string[] {
  const args: string[] = [];
  if (e.snat !== null) args.push('--snat-ip', e.snat.ip, '--snat-start', String(e.snat.firstPort), '--snat-end', String(e.snat.lastPort));
  if (e.ephemeralIp !== null) args.push('--ephemeral-ip', e.ephemeralIp);
  // clap's Vec without a delimiter: one flag per address (opte.md §7 leaves a comma list unconfirmed)
  for (const ip of e.floatingIps) args.push('--floating-ip', ip);
  return args;
}

function routerTarget(entry: RouterEntry, what: string): string {
  const t = entry.target as RouterEntry['target'] | undefined;
  switch (t?.type) {
    case 'drop':
      return 'drop';
    case 'internet_gateway':
      return 'ig';
    case 'ip':
      return isIPv4(t.ip) ? `ip4=${t.ip}` : `ip6=${ipv6(`${what}.target.ip`, t.ip)}`;
    case 'vpc_subnet':
      return cidr(`${what}.target.subnet`, t.subnet) === 4 ? `sub4=${t.subnet}` : `sub6=${t.subnet}`;
    default:
      throw invalid(`${what}.target: ${describeValue(t)} is not drop, internet_gateway, ip or vpc_subnet`);
  }
}

function routerArgs(subcommand: string, port: string, entry: RouterEntry): string[] {
  validatePortName(port);
  if (typeof entry !== 'object' || entry === null) throw invalid('the router entry must be an object');
  const family = cidr('entry.dest', entry.dest);
  const target = routerTarget(entry, 'entry');
  // the driver refuses an address target of the other family (InvalidRouterEntry)
  if (/^(ip|sub)[46]=/.test(target) && !target.includes(String(family))) {
    throw invalid(`entry.target: ${target} is not of the IPv${family} family of ${entry.dest}`);
  }
  if (entry.class !== 'system' && entry.class !== 'custom') throw invalid(`entry.class: ${describeValue(entry.class)} is not system or custom`);
  return [subcommand, '-p', port, entry.dest, target, entry.class];
}

/** One rule as set-fw-rules reads it: `dir= action= priority= hosts= protocol= port=`. */
export function firewallRuleLine(rule: FirewallRule, what = 'rule'): string {
  if (typeof rule !== 'object' || rule === null) throw invalid(`${what} must be an object`);
  if (rule.direction !== 'in' && rule.direction !== 'out') throw invalid(`${what}.direction: ${describeValue(rule.direction)} is not in or out`);
  if (rule.action !== 'allow' && rule.action !== 'deny') throw invalid(`${what}.action: ${describeValue(rule.action)} is not allow or deny`);
  integer(`${what}.priority`, rule.priority, 0, 65535);
  const h = rule.hosts as FirewallRule['hosts'] | undefined;
  let hosts: string;
  switch (h?.type) {
    case 'any':
      hosts = 'any';
      break;
    case 'ip':
      hosts = `ip=${ipAny(`${what}.hosts.ip`, h.ip)}`;
      break;
    case 'subnet':
      cidr(`${what}.hosts.subnet`, h.subnet);
      hosts = `subnet=${h.subnet}`;
      break;
    case 'vni':
      hosts = `vni=${integer(`${what}.hosts.vni`, h.vni, 0, VNI_MAX)}`;
      break;
    default:
      throw invalid(`${what}.hosts: ${describeValue(h)} is not any, ip, subnet or vni`);
  }
  if (!['any', 'tcp', 'udp', 'icmp'].includes(rule.protocol)) throw invalid(`${what}.protocol: ${describeValue(rule.protocol)} is not any, tcp, udp or icmp`);
  let ports: string;
  if (rule.ports === 'any') {
    ports = 'any';
  } else if (Array.isArray(rule.ports) && rule.ports.length > 0) {
    // port 0 is OPTE's DYNAMIC_PORT, which a rule may not name
    ports = rule.ports.map((p, i) => integer(`${what}.ports[${i}]`, p, 1, 65535)).join(',');
  } else {
    throw invalid(`${what}.ports: ${describeValue(rule.ports)} is not "any" or a non-empty list of ports`);
  }
  return `dir=${rule.direction} action=${rule.action} priority=${rule.priority} hosts=${hosts} protocol=${rule.protocol} port=${ports}`;
}

function v2pArgs(subcommand: string, m: V2PMapping): string[] {
  if (typeof m !== 'object' || m === null) throw invalid('the V2P mapping must be an object');
  return [
    subcommand,
    ipAny('virtualIp', m.virtualIp),
    mac('virtualMac', m.virtualMac),
    ipv6('physicalHostIp', m.physicalHostIp),
    String(integer('vni', m.vni, 0, VNI_MAX)),
  ];
}

// ---- output parsers ----

function protocolError(what: string, detail: string): HostError {
  return hostError('EPROTO', `unexpected opteadm ${what} output: ${detail}`);
}

const LIST_PORTS_COLUMNS = [
  'LINK',
  'MAC ADDRESS',
  'IPv4 ADDRESS',
  'EPHEMERAL IPv4',
  'FLOATING IPv4',
  'IPv6 ADDRESS',
  'EXTERNAL IPv6',
  'FLOATING IPv6',
  'STATE',
] as const;

const orNull = (cell: string): string | null => (cell === 'None' || cell === '' ? null : cell);

/**
 * `opteadm list-ports`: a tabwriter table whose columns start where the header's labels do. A
 * port with several floating IPs has the rest on continuation rows (only that column filled),
 * then a row of blanks; `None` is a missing value.
 */
export function parseListPorts(stdout: string): PortInfo[] {
  const lines = stdout.split('\n');
  const header = lines.findIndex((l) => l.trim() !== '');
  if (header < 0) throw protocolError('list-ports', 'no header');
  const starts: number[] = [];
  let from = 0;
  for (const label of LIST_PORTS_COLUMNS) {
    const at = lines[header]!.indexOf(label, from);
    if (at < 0 || (starts.length === 0 && at !== 0)) throw protocolError('list-ports', `no ${label} column in ${JSON.stringify(lines[header])}`);
    starts.push(at);
    from = at + label.length;
  }
  const ports: PortInfo[] = [];
  for (const line of lines.slice(header + 1)) {
    if (line.trim() === '') continue;
    const cells = starts.map((s, i) => line.slice(s, i + 1 < starts.length ? starts[i + 1] : undefined).trim());
    const [name, macCell, ip4, ephemeral, floating, , , , state] = cells as [string, string, string, string, string, string, string, string, string];
    if (name === '') {
      const last = ports[ports.length - 1];
      if (last === undefined || cells.some((c, i) => i !== 4 && i !== 7 && c !== '')) {
        throw protocolError('list-ports', `a continuation row ${JSON.stringify(line)} outside a port`);
      }
      if (floating !== '') last.floatingIp4.push(floating);
      continue;
    }
    let normalized: string;
    try {
      normalized = normalizeMac(macCell);
    } catch {
      throw protocolError('list-ports', `bad MAC address in ${JSON.stringify(line)}`);
    }
    const fip = orNull(floating);
    ports.push({ name, mac: normalized, ip4: orNull(ip4), ephemeralIp4: orNull(ephemeral), floatingIp4: fip === null ? [] : [fip], state });
  }
  return ports;
}

/**
 * `opteadm dump-v2p`: per VPC ("VPC <vni>"), an IPv4 and an IPv6 table of
 * `VPC_IP  VPC MAC ADDR  UNDERLAY IP` rows, between titles and rules.
 */
export function parseDumpV2P(stdout: string): V2PMapping[] {
  const out: V2PMapping[] = [];
  let vni: number | null = null;
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (line === '' || /^[=-]+$/.test(line) || line === 'Virtual to Physical Mappings' || /^IPv[46] mappings$/.test(line)) continue;
    if (/^VPC_IP\s/.test(line)) continue;
    const vpc = /^VPC (\d+)$/.exec(line);
    if (vpc !== null) {
      vni = Number(vpc[1]);
      continue;
    }
    const fields = line.split(/\s+/);
    if (vni === null || fields.length !== 3) throw protocolError('dump-v2p', JSON.stringify(raw));
    const [virtualIp, macCell, physicalHostIp] = fields as [string, string, string];
    let virtualMac: string;
    try {
      virtualMac = normalizeMac(macCell);
    } catch {
      throw protocolError('dump-v2p', JSON.stringify(raw));
    }
    if (!(isIPv4(virtualIp) || isIPv6(virtualIp)) || !isIPv6(physicalHostIp)) throw protocolError('dump-v2p', JSON.stringify(raw));
    out.push({ virtualIp, virtualMac, physicalHostIp, vni });
  }
  return out;
}

// ---- the network part ----

export class IllumosNetwork implements HostNetwork {
  readonly opteadmPath: string;
  readonly xdeConfPath: string;
  readonly timeoutMs: number;

  constructor(options: IllumosNetworkOptions = {}) {
    this.opteadmPath = options.opteadm ?? DEFAULT_OPTEADM;
    this.xdeConfPath = options.xdeConf ?? DEFAULT_XDE_CONF;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!this.opteadmPath.startsWith('/')) throw new TypeError(`opteadm must be an absolute path, not ${JSON.stringify(this.opteadmPath)}`);
  }

  #run(args: readonly string[], stdin = ''): Promise<CommandResult> {
    return run(this.opteadmPath, args, stdin, this.timeoutMs);
  }

  async available(): Promise<{ available: true } | { available: false; reason: string }> {
    try {
      await access(this.xdeConfPath, constants.F_OK);
    } catch {
      // omicron's NoXdeConf text
      return { available: false, reason: `No xde driver configuration file exists at '${this.xdeConfPath}'` };
    }
    try {
      await access(this.opteadmPath, constants.X_OK);
    } catch (err) {
      return { available: false, reason: `opteadm cannot be run from ${this.opteadmPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    return { available: true };
  }

  async setUnderlay(links: readonly [string, string]): Promise<void> {
    if (!Array.isArray(links) || links.length !== 2) throw invalid('the underlay is two links');
    const [u1, u2] = [checkLinkName('underlay link', links[0]), checkLinkName('underlay link', links[1])];
    try {
      await this.#run(['set-xde-underlay', u1, u2]);
    } catch (err) {
      // The driver cannot say which underlay it has: already set counts as done (omicron does the same).
      if (isHostError(err, 'EEXIST')) return;
      throw err;
    }
  }

  async createPort(spec: PortSpec): Promise<void> {
    const s = checkPortSpec(spec);
    await this.#run([
      'create-xde',
      s.name,
      '--guest-mac',
      normalizeMac(s.guestMac),
      '--private-ip',
      s.privateIp,
      '--vpc-subnet',
      s.subnet,
      '--gateway-mac',
      normalizeMac(s.gatewayMac),
      '--gateway-ip',
      s.gatewayIp,
      '--vpc-vni',
      String(s.vni),
      '--src-underlay-addr',
      s.underlayAddr,
      ...externalArgs(s.external),
    ]);
  }

  async deletePort(name: string): Promise<void> {
    await this.#run(['delete-xde', validatePortName(name)]);
  }

  async listPorts(): Promise<PortInfo[]> {
    return parseListPorts((await this.#run(['list-ports'])).stdout);
  }

  async addRouterEntry(port: string, entry: RouterEntry): Promise<void> {
    await this.#run(routerArgs('add-router-entry', port, entry));
  }

  async delRouterEntry(port: string, entry: RouterEntry): Promise<void> {
    await this.#run(routerArgs('del-router-entry', port, entry));
  }

  async setFirewallRules(port: string, rules: readonly FirewallRule[]): Promise<void> {
    validatePortName(port);
    if (!Array.isArray(rules)) throw invalid('rules must be an array');
    const lines = rules.map((r, i) => firewallRuleLine(r, `rules[${i}]`));
    // one rule per line; no rules at all (empty stdin) clears the set
    await this.#run(['set-fw-rules', '-p', port], lines.map((l) => `${l}\n`).join(''));
  }

  async setExternalIps(port: string, external: ExternalIps): Promise<void> {
    validatePortName(port);
    await this.#run(['set-external-ips', '-p', port, ...externalArgs(checkExternal('external', external))]);
  }

  async setV2P(mapping: V2PMapping): Promise<void> {
    await this.#run(v2pArgs('set-v2p', mapping));
  }

  async clearV2P(mapping: V2PMapping): Promise<void> {
    const args = v2pArgs('clear-v2p', mapping);
    const present = (await this.dumpV2P()).some((m) => m.vni === mapping.vni && sameIp(m.virtualIp, mapping.virtualIp));
    if (!present) throw hostError('OPTE_NO_ENTRY', `no V2P mapping for ${mapping.virtualIp} in VNI ${mapping.vni}`);
    await this.#run(args);
  }

  async dumpV2P(): Promise<V2PMapping[]> {
    return parseDumpV2P((await this.#run(['dump-v2p'])).stdout);
  }
}

function sameIp(a: string, b: string): boolean {
  if (isIPv4(a) || isIPv4(b)) return a === b;
  return isIPv6(a) && isIPv6(b) && v6bits(a) === v6bits(b);
}
