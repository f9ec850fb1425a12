// Propolis servers for agents on the fake illumos, run by the test process, so that they outlive
// an agent killed with SIGKILL as the real ones do (each is its zone's SMF service, not the
// agent's child). The fake svcadm starts no server: the farm watches the fake SMF state
// ($FAKE_ILLUMOS_STATE/smf/<zone>/<fmri>) and starts a simulated Propolis when a zone's
// propolis-server instance goes online, and stops it when the zone halts (which clears the
// zone's SMF state, as a halt ends every process in it).
//
// Where each one listens is a function of the zone's name alone (propolisAddressFor), a loopback
// address of its own, so an agent in another process can be told with a plain function
// (IllumosHost's `reachable`) and a restarted agent finds the same server.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { SocketAddr } from '../../src/common/address.js';
import { SimPropolis, type SimPropolisLatencies } from '../../src/sim/propolis.js';

const PORT = 12400;

/** 127.1.0.0 - 127.254.255.255, by the zone's name: one address per zone, on loopback. */
export function propolisAddressFor(zone: string): SocketAddr {
  const h = createHash('sha256').update(zone).digest();
  return { host: `127.${1 + (h[0]! % 254)}.${h[1]}.${h[2]}`, port: PORT };
}

export class PropolisFarm {
  readonly #smf: string;
  readonly #servers = new Map<string, Promise<SimPropolis | null>>();
  readonly #watchers = new Map<string, FSWatcher>();
  #root: FSWatcher | null = null;
  #closed = false;
  /** Every zone a server was started for (the test's own record). */
  readonly started: string[] = [];

  private constructor(fakeState: string, private readonly latencies: Partial<SimPropolisLatencies>) {
    this.#smf = join(fakeState, 'smf');
  }

  static start(fakeState: string, latencies: Partial<SimPropolisLatencies> = {}): PropolisFarm {
    const farm = new PropolisFarm(fakeState, latencies);
    mkdirSync(farm.#smf, { recursive: true });
    farm.#root = watch(farm.#smf, () => farm.#scan());
    farm.#scan();
    return farm;
  }

  get(zone: string): Promise<SimPropolis | null> | undefined {
    return this.#servers.get(zone);
  }

  #scan(): void {
    if (this.#closed) return;
    let zones: string[] = [];
    try {
      zones = readdirSync(this.#smf);
    } catch {
      // removed with the fake's state at the end of a test
    }
    for (const zone of zones) {
      if (!this.#watchers.has(zone)) {
        try {
          this.#watchers.set(zone, watch(join(this.#smf, zone), () => this.#check(zone)));
        } catch {
          continue; // gone again already
        }
      }
      this.#check(zone);
    }
    for (const zone of [...this.#watchers.keys()]) {
      if (!zones.includes(zone)) this.#check(zone);
    }
  }

  /** The zone's Propolis runs iff its SMF says so. */
  #check(zone: string): void {
    if (this.#closed) return;
    const dir = join(this.#smf, zone);
    let online = false;
    if (existsSync(dir)) {
      try {
        online = readdirSync(dir).some((f) => f.includes('propolis-server') && readFileSync(join(dir, f), 'utf8').trim() === 'online');
      } catch {
        online = false;
      }
    } else {
      this.#watchers.get(zone)?.close();
      this.#watchers.delete(zone);
    }
    const running = this.#servers.get(zone);
    if (online && running === undefined) {
      this.started.push(zone);
      const addr = propolisAddressFor(zone);
      this.#servers.set(zone, SimPropolis.start({ host: addr.host, port: addr.port, latencies: this.latencies }).catch(() => null));
    } else if (!online && running !== undefined && !existsSync(dir)) {
      this.#servers.delete(zone);
      void running.then((server) => server?.close());
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#root?.close();
    for (const w of this.#watchers.values()) w.close();
    const all = [...this.#servers.values()];
    this.#servers.clear();
    await Promise.all(all.map((p) => p.then((s) => s?.close())));
  }
}
