// Socket addresses as omicron writes them: "a.b.c.d:port" or "[v6]:port".
import { isIPv4, isIPv6 } from 'node:net';

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
