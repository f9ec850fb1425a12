// IPv6 addresses as 128-bit bigints: what the rack's address plan and the bootstrap agent need (omicron's
// common/src/address.rs), with no dependency. Text in, text out, RFC 5952 form on the way out
// (lowercase, the longest run of zero groups compressed), which is how the original's
// Ipv6Addr prints and what the contracts' patterns accept.
import { isIPv4, isIPv6 } from 'node:net';

const ALL_ONES = (1n << 128n) - 1n;

/** Parses any textual IPv6 address node accepts (incl. an embedded IPv4 tail); throws otherwise. */
export function parseIpv6(text: string): bigint {
  if (!isIPv6(text) || text.includes('%')) throw new Error(`"${text}" is not an IPv6 address`);
  let groups: string[];
  const parts = text.split(':');
  const last = parts[parts.length - 1]!;
  if (isIPv4(last)) {
    const octets = last.split('.').map(Number);
    parts.splice(parts.length - 1, 1,
      ((octets[0]! << 8) | octets[1]!).toString(16), ((octets[2]! << 8) | octets[3]!).toString(16));
  }
  const joined = parts.join(':');
  const gap = joined.indexOf('::');
  if (gap === -1) {
    groups = joined.split(':');
  } else {
    const head = joined.slice(0, gap).split(':').filter((g) => g !== '');
    const tail = joined.slice(gap + 2).split(':').filter((g) => g !== '');
    groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  }
  if (groups.length !== 8) throw new Error(`"${text}" is not an IPv6 address`);
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952 text: lowercase, no leading zeros, the first longest run (>= 2) of zero groups as "::". */
export function formatIpv6(value: bigint): string {
  if (value < 0n || value > ALL_ONES) throw new Error(`${value} is not a 128-bit value`);
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i += 1; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The canonical spelling of an IPv6 address ("fd00:1122:3344:0101::3" → "fd00:1122:3344:101::3"). */
export function canonicalIpv6(text: string): string {
  return formatIpv6(parseIpv6(text));
}

export function prefixMask(prefix: number): bigint {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 128) throw new Error(`bad prefix length ${prefix}`);
  return ALL_ONES ^ ((1n << BigInt(128 - prefix)) - 1n);
}

/** The network address of `addr` under a /prefix. */
export function networkOf(addr: bigint, prefix: number): bigint {
  return addr & prefixMask(prefix);
}

/** Byte `index` (0 = most significant) of an address. */
export function getByte(addr: bigint, index: number): number {
  return Number((addr >> BigInt(8 * (15 - index))) & 0xffn);
}

/** `addr` with byte `index` (0-based from the most significant) replaced by `value`. */
export function setByte(addr: bigint, index: number, value: number): bigint {
  if (!Number.isInteger(index) || index < 0 || index > 15) throw new Error(`bad byte index ${index}`);
  if (!Number.isInteger(value) || value < 0 || value > 255) throw new Error(`byte value ${value} is not in 0..255`);
  const shift = BigInt(8 * (15 - index));
  return (addr & ~(0xffn << shift)) | (BigInt(value) << shift);
}

export interface Ipv6Net {
  network: bigint;
  prefix: number;
}

/** Parses "addr/prefix"; the address must be the network address (no host bits). */
export function parseIpv6Net(text: string): Ipv6Net {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) throw new Error(`"${text}" is not an IPv6 subnet (ADDRESS/PREFIX)`);
  const prefix = Number(m[2]);
  if (prefix > 128) throw new Error(`"${text}": prefix ${prefix} is above 128`);
  const network = parseIpv6(m[1]!);
  if (networkOf(network, prefix) !== network) throw new Error(`"${text}" has host bits set below /${prefix}`);
  return { network, prefix };
}

export function formatIpv6Net(net: Ipv6Net): string {
  return `${formatIpv6(net.network)}/${net.prefix}`;
}

/** The address at `index` within the subnet (index 1 is the sled's own address). */
export function addressInNet(net: Ipv6Net, index: bigint): string {
  return formatIpv6(net.network + index);
}

export function sameNet(a: Ipv6Net, b: Ipv6Net): boolean {
  return a.network === b.network && a.prefix === b.prefix;
}

const UNUSABLE_ON_UNDERLAY = ([
  ['::/128', 'the unspecified address'],
  ['::1/128', 'the loopback address'],
  ['::/96', 'a deprecated IPv4-compatible address'],
  ['::ffff:0:0/96', 'an IPv4-mapped address'],
  ['ff00::/8', 'a multicast address'],
  ['fe80::/10', 'a link-local address'],
] as const).map(([net, what]) => ({ ...parseIpv6Net(net), what: `${what} (${net})` }));

/** What kind of address `value` is if nothing can be reached at it on the underlay (loopback, multicast, ...); null if it is unicast. */
export function unusableOnUnderlay(value: bigint): string | null {
  return UNUSABLE_ON_UNDERLAY.find((u) => networkOf(value, u.prefix) === u.network)?.what ?? null;
}
