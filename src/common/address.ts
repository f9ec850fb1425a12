// Socket addresses as omicron writes them: "a.b.c.d:port" or "[v6]:port".
import { isIPv4, isIPv6 } from 'node:net';
import { invalidRequest } from './errors.js';
import { parseIpv6, unusableOnUnderlay } from './ipv6.js';
import type { DatasetEnsureBody } from '../params.js';

export interface SocketAddr {
  host: string;
  port: number;
}

/** Parses "ip:port" / "[ip6]:port" (port 0..65535); throws an Error saying what is wrong. */
export function parseSocketAddr(text: string): SocketAddr {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) {
    throw new Error(`"${text}" is not a socket address: expected IPV4:PORT or [IPV6]:PORT`);
  }
  const host = m[1]!;
  const port = Number(m[2]);
  const bracketed = text.startsWith('[');
  if (bracketed ? !isIPv6(host) : !isIPv4(host)) {
    throw new Error(`"${text}" is not a socket address: "${host}" is not an IPv${bracketed ? 6 : 4} address`);
  }
  if (port > 65535) throw new Error(`"${text}" is not a socket address: port ${port} is above 65535`);
  return { host, port };
}

export function formatSocketAddr({ host, port }: SocketAddr): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A request's SocketAddrV6 field, "[ipv6]:port"; anything else is a 400 naming the field (`where`). */
export function requestSocketAddrV6(text: string, where: string): SocketAddr {
  let addr: SocketAddr;
  try {
    addr = parseSocketAddr(text);
  } catch (err) {
    throw invalidRequest(`${where}: ${(err as Error).message}`);
  }
  if (!isIPv6(addr.host)) throw invalidRequest(`${where} "${text}" must be an IPv6 socket address ([ip]:port)`);
  // node's isIPv6 takes "fd00::5%1" (and "%anything"), which the rest of the agent cannot parse,
  // and these addresses are underlay ones, global, where a scope means nothing.
  const scope = addr.host.indexOf('%');
  if (scope !== -1) {
    throw invalidRequest(`${where} "${text}" has a zone (scope) id "${addr.host.slice(scope)}": give the address without it, as [${addr.host.slice(0, scope)}]:${addr.port}`);
  }
  return addr;
}

/**
 * PUT /filesystem's addresses, for the sled agent and the simulated one: the dataset's own, and
 * CockroachDB's peers, SocketAddrV6 all as the original's serde took them (it used no peer yet,
 * and neither does this agent, which is no reason to keep what it refused). Returns the dataset's.
 */
export function datasetAddress(body: DatasetEnsureBody, { usable = false } = {}): SocketAddr {
  const check = usable ? usableSocketAddr : requestSocketAddrV6;
  const addr = check(body.address, 'address');
  const kind = body.dataset_kind;
  if (kind.type === 'cockroach_db') for (const peer of kind.all_addresses) check(peer, 'dataset_kind.all_addresses');
  return addr;
}

/**
 * The real agent's check (`usable`; the sim keeps the original's plain parse): a dataset's
 * address is recorded before its zone is made and every later request must repeat it, so one its
 * zone could never take (loopback, multicast, ...) is refused, as PUT /services refuses it.
 */

function usableSocketAddr(text: string, field: string): SocketAddr {
  const addr = requestSocketAddrV6(text, field);
  const unusable = unusableOnUnderlay(parseIpv6(addr.host));
  if (unusable !== null) {
    throw invalidRequest(`${field} ${JSON.stringify(text)} is ${unusable}, which nothing can be reached at on the underlay: `
      + 'give a unicast address from the sled\'s underlay subnet');
  }
  return addr;
}
