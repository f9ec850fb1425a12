// A Host over a SimHost that records the calls that change things (VNICs created, zones
// configured and installed, commands run in zones) and can make chosen ones fail, so tests can
// tell "adopted" from "made again" and a no-op from a repeat, and can break one zone of many.
import { readFile } from 'node:fs/promises';
import type { Host } from '../../src/host/index.js';
import { hostError } from '../../src/host/index.js';
import type { SimHost } from '../../src/sim/host.js';

export interface Calls {
  createVnic: string[];
  configure: string[];
  install: Array<{ zone: string; image: string }>;
  exec: Array<{ zone: string; argv: string[] }>;
}

export interface CountingHost {
  host: Host;
  calls: Calls;
  /**
   * Zones whose next installs fail (ECOMMAND), until removed from the set: by name, or every
   * zone a pattern matches (for a zone whose name the agent chooses, such as an instance's).
   */
  failInstall: Set<string | RegExp>;
  reset(): void;
}

export function countingHost(sim: SimHost): CountingHost {
  const calls: Calls = { createVnic: [], configure: [], install: [], exec: [] };
  const ch: CountingHost = {
    calls,
    failInstall: new Set(),
    reset() {
      calls.createVnic.length = 0;
      calls.configure.length = 0;
      calls.install.length = 0;
      calls.exec.length = 0;
    },
    host: undefined as unknown as Host,
  };
  ch.host = {
    kind: sim.kind,
    links: {
      ...sim.links,
      createVnic: (spec) => {
        calls.createVnic.push(spec.name);
        return sim.links.createVnic(spec);
      },
    },
    zones: {
      ...sim.zones,
      configure: (spec) => {
        calls.configure.push(spec.name);
        return sim.zones.configure(spec);
      },
      install: async (name, image) => {
        calls.install.push({ zone: name, image });
        if ([...ch.failInstall].some((f) => (typeof f === 'string' ? f === name : f.test(name)))) throw hostError('ECOMMAND', `zoneadm -z ${name} install: injected failure`);
        return sim.zones.install(name, image);
      },
      exec: async (zone, argv, options) => {
        calls.exec.push({ zone, argv: [...argv] });
        return sim.zones.exec(zone, argv, options);
      },
    },
    datasets: sim.datasets,
    network: sim.network,
    events: sim.events,
    reachable: (zone, addr) => sim.reachable(zone, addr),
    close: () => sim.close(),
  };
  return ch;
}

/** The SimHost's persisted record of a zone (addresses, routes, SMF), read from its state file. */
export async function simZoneRecord(sim: SimHost, zone: string): Promise<any> {
  await sim.flush();
  const state = JSON.parse(await readFile(sim.stateFile, 'utf8'));
  return state.zones.find((z: any) => z.spec.name === zone);
}
