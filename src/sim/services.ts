// Simulated service zones (the sim's stand-in for omicron's ServiceManager, services.rs): the
// requested services are recorded as running. As in the original, a request only adds: a
// service already running is left alone, so RSS may send the whole list again.
import type { Logger } from 'pino';
import { conflict } from '../common/errors.js';
import type { ServiceRequest } from '../params.js';

export class SimServices {
  private readonly running = new Map<string, ServiceRequest>();

  constructor(private readonly log: Logger) {}

  ensure(requests: ServiceRequest[]): void {
    const normalized = requests.map((r) => ({ ...r, gz_addresses: r.gz_addresses ?? [] }));
    // Check everything before changing anything, so a refused request changes nothing.
    for (const request of normalized) {
      const existing = this.running.get(request.name);
      if (existing && !sameService(existing, request)) {
        throw conflict(`service "${request.name}" is already running with addresses `
          + `${JSON.stringify(existing.addresses)} and gz_addresses ${JSON.stringify(existing.gz_addresses)}; `
          + 'a running service cannot be changed');
      }
    }
    for (const request of normalized) {
      if (this.running.has(request.name)) continue;
      this.running.set(request.name, request);
      this.log.info({ service: request.name, addresses: request.addresses }, 'service started (simulated)');
    }
  }

  list(): ServiceRequest[] {
    return [...this.running.values()];
  }
}

function sameService(a: ServiceRequest, b: ServiceRequest): boolean {
  const same = (x: string[] = [], y: string[] = []) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.addresses, b.addresses) && same(a.gz_addresses, b.gz_addresses);
}
