// A Host whose calls are watched: each asynchronous call of its links, zones, datasets, network
// and events parts is reported once it settles, with its arguments and how long it took. One
// wrapper for whoever needs to see the host's calls (the agent's metrics, the boot benchmark),
// made where the host is handed over, so the managers know nothing of it.
import type { Host } from './index.js';

export interface HostCall {
  /** `<part>.<method>`, e.g. `zones.install`. */
  op: string;
  args: readonly unknown[];
  /** process.hrtime.bigint() at the call and at its settling. */
  start: bigint;
  end: bigint;
  /** What it rejected with; null if it resolved. */
  error: unknown;
}

export function observeHost(host: Host, onCall: (call: HostCall) => void): Host {
  const wrap = <T extends object>(part: string, target: T): T => {
    const cache = new Map<PropertyKey, unknown>();
    return new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop) as unknown;
        if (typeof value !== 'function') return value;
        let wrapped = cache.get(prop);
        if (wrapped === undefined) {
          const fn = value as (...args: unknown[]) => unknown;
          const op = `${part}.${String(prop)}`;
          wrapped = (...args: unknown[]) => {
            const start = process.hrtime.bigint();
            const out = fn.apply(t, args);
            // Synchronous members (events.subscribe) are not calls into the host.
            if (!(out instanceof Promise)) return out;
            out.then(
              () => onCall({ op, args, start, end: process.hrtime.bigint(), error: null }),
              (error: unknown) => onCall({ op, args, start, end: process.hrtime.bigint(), error }),
            );
            return out;
          };
          cache.set(prop, wrapped);
        }
        return wrapped;
      },
    });
  };
  return {
    kind: host.kind,
    links: wrap('links', host.links),
    zones: wrap('zones', host.zones),
    datasets: wrap('datasets', host.datasets),
    network: wrap('network', host.network),
    events: wrap('events', host.events),
    reachable: (zone, addr) => host.reachable(zone, addr),
    close: () => host.close(),
  };
}
