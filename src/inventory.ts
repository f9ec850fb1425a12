// The real agent's view for operators: GET /instances and /instances/{id} (from its own state,
// no host call), and GET /inventory (what the sled has and runs: its own records beside what the
// host says now, so a zone a ledger claims but the host lacks, or an oxz_ zone nobody claims,
// shows up as such).
import { objectNotFound, serviceUnavailable } from './common/errors.js';
import * as endpoints from './endpoints.js';
import { loadNative } from './illumos/addon.js';
import type { Instance } from './instance.js';
import type {
  DatasetInventory, InstanceView, SledInventory, ZoneInventory,
} from './operator-params.js';
import { portOfVnic } from './port-manager.js';
import type { App } from './server.js';
import type { SledAgent } from './sled-agent.js';
import { datasetZone } from './storage-manager.js';
import { VERSION } from './version.js';
import { ZONE_PREFIX, zoneName } from './zone.js';

export function instanceView(instance: Instance): InstanceView {
  const { record } = instance;
  return {
    id: instance.id,
    runtime: instance.current,
    desired: instance.states.desired,
    ...(instance.zone === null ? {} : { zone: instance.zone }),
    control_vnic: record.control_vnic,
    guest_vnics: [...record.guest_vnics],
    opte_ports: record.guest_vnics.map(portOfVnic),
  };
}

/** A host call the inventory needs: its failure is the host's (503), not a bug of ours (500). */
async function ask<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw serviceUnavailable(`the host could not list ${what}: ${(err as Error)?.message ?? String(err)}`);
  }
}

export async function agentInventory(agent: SledAgent): Promise<SledInventory> {
  const { config, host } = agent;
  const instances = agent.instances.list();
  const services = agent.services.list();
  const datasets = agent.storage.datasets();
  const opte = await agent.ports.available();
  const [zones, pools, ports] = await Promise.all([
    ask('its zones', () => host.zones.list()),
    ask('its zpools', () => host.datasets.listPools()),
    opte.available ? ask('its OPTE ports', () => host.network.listPorts()) : Promise.resolve([]),
  ]);

  const serves = agent.zoneServes();
  const owned = zones.filter((z) => z.name.startsWith(ZONE_PREFIX));
  const present = new Set(owned.map((z) => z.name));
  const zoneList: ZoneInventory[] = [
    ...owned.map((z) => ({ name: z.name, state: z.state, serves: serves.get(z.name) ?? null })),
    ...[...serves].filter(([name]) => !present.has(name)).map(([name, s]) => ({ name, state: null, serves: s })),
  ].sort((a, b) => a.name.localeCompare(b.name));

  const portOwner = new Map<string, string>();
  for (const i of instances) for (const vnic of i.record.guest_vnics) portOwner.set(portOfVnic(vnic), i.id);

  const poolsByName = new Map(pools.map((p) => [p.name, p]));
  const zpools = config.zpools.map((name) => {
    const info = poolsByName.get(name);
    return {
      id: name.slice('oxp_'.length),
      name,
      found: info !== undefined,
      size: info === undefined ? null : Number(info.size),
      allocated: info === undefined ? null : Number(info.allocated),
      free: info === undefined ? null : Number(info.free),
      health: info?.health ?? null,
    };
  });

  const datasetList: DatasetInventory[] = datasets.map((d) => ({
    id: d.id,
    zpool_id: d.name.pool_name.slice('oxp_'.length),
    kind: d.kind.type,
    address: d.address,
    name: `${d.name.pool_name}/${d.name.dataset_name}`,
    zone: datasetZone(d),
  }));

  const startup = agent.startup;
  return {
    sled_id: config.id,
    agent: 'sled-agent',
    version: VERSION,
    addresses: { api: agent.address ?? config.dropshot.bind_address, underlay: config.underlay_address ?? null, nexus: config.nexus_address },
    host: {
      backend: host.kind,
      reason: agent.hostReason,
      addon: host.kind === 'illumos' ? addonCapabilities() : null,
      opte: opte.available ? { available: true, reason: null } : { available: false, reason: opte.reason },
    },
    zpools,
    datasets: datasetList,
    zones: zoneList,
    instances: instances.map(instanceView).sort((a, b) => a.id.localeCompare(b.id)),
    services: services.map((s) => ({
      name: s.name, addresses: s.addresses, gz_addresses: s.gz_addresses, zone: zoneName(s.name), control_vnic: s.control_vnic,
    })),
    opte_ports: ports.map((p) => ({ name: p.name, mac: p.mac, ip4: p.ip4, state: p.state, instance: portOwner.get(p.name) ?? null })),
    ...(startup === null ? {} : {
      startup: {
        at: startup.at,
        adopted_zones: startup.adopted,
        removed_zones: startup.removedZones,
        removed_vnics: startup.removedVnics,
        zones_to_recreate: startup.missing,
        adopted_ports: startup.adoptedPorts,
        removed_ports: startup.removedPorts,
      },
    }),
  };
}

function addonCapabilities(): NonNullable<NonNullable<SledInventory['host']>['addon']> {
  const report = loadNative().capabilities();
  return {
    dir: report.dir,
    libraries: Object.entries(report.libraries).map(([library, s]) => ({
      library, soname: s.soname, loaded: s.loaded, path: s.path, error: s.error, missing: [...s.missing],
    })),
  };
}

/** `agentOf` is a getter so the OpenAPI document can be built with no agent behind it. */
export function inventoryRoutes(app: App, agentOf: () => SledAgent): void {
  app.get('/instances', { schema: endpoints.instanceList }, async () =>
    agentOf().instances.list().map(instanceView).sort((a, b) => a.id.localeCompare(b.id)));

  app.get('/instances/:instance_id', { schema: endpoints.instanceGet }, async (request) => {
    const instance = agentOf().instances.get(request.params.instance_id);
    if (instance === undefined) throw objectNotFound(`no instance with id ${request.params.instance_id} on this sled`);
    return instanceView(instance);
  });

  app.get('/inventory', { schema: endpoints.inventoryGet }, async () => agentInventory(agentOf()));
}
