// Wire types of the endpoints an operator uses and the 2022 contract does not have: the agent's
// view of its instances (GET /instances, /instances/{id}), the sled's inventory (GET /inventory)
// and its health (GET /health). Both agents serve them; what only the real agent knows (zones,
// VNICs, OPTE ports, the host backend) is optional, absent on the simulated sled agent.
import { Type, type Static } from 'typebox';
import { ByteCount, InstanceRuntimeState, InstanceRuntimeStateRequested, Nullable, StringEnum } from './params.js';

const Uuid = (options: object = {}) => Type.String({ format: 'uuid', ...options });

export const InstanceView = Type.Object({
  id: Uuid(),
  runtime: InstanceRuntimeState,
  desired: Nullable(InstanceRuntimeStateRequested, { description: 'what Nexus asked for and is not reached yet' }),
  zone: Type.Optional(Type.String({ description: 'the Propolis zone, oxz_propolis-server_<propolis_id> (real agent)' })),
  control_vnic: Type.Optional(Nullable(Type.String(), { description: 'null until named (real agent)' })),
  guest_vnics: Type.Optional(Type.Array(Type.String(), { description: 'one vopte<N> per guest NIC, in slot order (real agent)' })),
  opte_ports: Type.Optional(Type.Array(Type.String(), { description: 'the OPTE port under each guest VNIC, opte<N> (real agent)' })),
}, { description: 'An instance as this sled agent sees it now: the state it reports to Nexus, and where it lives on the host' });
export type InstanceView = Static<typeof InstanceView>;

export const InstanceViewList = Type.Array(InstanceView, { description: 'every instance on this sled, by id' });

const LibraryStatus = Type.Object({
  library: Type.String(),
  soname: Type.String(),
  loaded: Type.Boolean(),
  path: Nullable(Type.String()),
  error: Nullable(Type.String()),
  missing: Type.Array(Type.String(), { description: 'symbols the library lacks' }),
});

export const HostInventory = Type.Object({
  backend: StringEnum(['illumos', 'sim'] as const),
  reason: Type.String({ description: 'why this backend was chosen (as logged at start-up)' }),
  addon: Nullable(Type.Object({
    dir: Nullable(Type.String({ description: 'where the libraries were loaded from; null for the runtime linker\'s search' })),
    libraries: Type.Array(LibraryStatus),
  }), { description: 'the native addon\'s capabilities, with the illumos backend' }),
  opte: Type.Object({ available: Type.Boolean(), reason: Nullable(Type.String()) }),
});

export const ZoneServes = Type.Object({
  kind: StringEnum(['instance', 'service', 'dataset', 'warm_pool'] as const),
  id: Type.String({ description: 'the instance id, the service name, the dataset id, or for the warm pool "pool" (a zone waiting for an instance) or "template"' }),
});

export type ZoneServes = Static<typeof ZoneServes>;

export const ZoneInventory = Type.Object({
  name: Type.String(),
  state: Nullable(Type.String(), { description: 'as zoneadm names it; null: claimed by a ledger but not on the host (being made, or lost)' }),
  serves: Nullable(ZoneServes, { description: 'null: an oxz_ zone no ledger claims (removed at the next start)' }),
});
export type ZoneInventory = Static<typeof ZoneInventory>;

export const ZpoolInventory = Type.Object({
  id: Uuid(),
  name: Type.String(),
  found: Type.Boolean({ description: 'whether the host has it' }),
  size: Nullable(ByteCount),
  allocated: Nullable(ByteCount),
  free: Nullable(ByteCount),
  health: Nullable(Type.String()),
});

export const DatasetInventory = Type.Object({
  id: Uuid(),
  zpool_id: Uuid(),
  kind: Type.String({ description: 'crucible, cockroach_db or clickhouse' }),
  address: Type.String(),
  name: Type.Optional(Type.String({ description: 'the ZFS dataset, <pool>/<kind> (real agent)' })),
  zone: Type.Optional(Type.String({ description: 'the zone serving it (real agent)' })),
});
export type DatasetInventory = Static<typeof DatasetInventory>;

export const ServiceInventory = Type.Object({
  name: Type.String(),
  addresses: Type.Array(Type.String()),
  gz_addresses: Type.Array(Type.String()),
  zone: Type.Optional(Type.String()),
  control_vnic: Type.Optional(Type.String()),
});

export const OptePortInventory = Type.Object({
  name: Type.String(),
  mac: Type.String(),
  ip4: Nullable(Type.String()),
  state: Type.String(),
  instance: Nullable(Uuid(), { description: 'the instance whose guest VNIC is over it; null: none claims it' }),
});

export const StartupInventory = Type.Object({
  at: Type.String({ format: 'date-time' }),
  adopted_zones: Type.Array(Type.String()),
  removed_zones: Type.Array(Type.String()),
  removed_vnics: Type.Array(Type.String()),
  zones_to_recreate: Type.Array(Type.String()),
  adopted_ports: Type.Array(Type.String()),
  removed_ports: Type.Array(Type.String()),
}, { description: 'what the last start-up found on the host: kept, removed as orphans, or to make again' });

export const SledInventory = Type.Object({
  sled_id: Uuid(),
  agent: StringEnum(['sled-agent', 'simulated'] as const),
  version: Type.String({ description: 'of this package' }),
  addresses: Type.Object({
    api: Type.String({ description: 'where this API listens' }),
    underlay: Nullable(Type.String(), { description: 'the sled\'s underlay IPv6 address, when configured' }),
    nexus: Type.String(),
  }),
  sim_mode: Type.Optional(StringEnum(['auto', 'explicit'] as const)),
  host: Type.Optional(HostInventory),
  zpools: Type.Array(ZpoolInventory),
  datasets: Type.Array(DatasetInventory),
  zones: Type.Optional(Type.Array(ZoneInventory, { description: 'every oxz_ zone on the host, and every zone a ledger claims' })),
  instances: InstanceViewList,
  services: Type.Array(ServiceInventory),
  opte_ports: Type.Optional(Type.Array(OptePortInventory)),
  startup: Type.Optional(StartupInventory),
}, { description: 'What this sled has and runs, as its agent knows it' });
export type SledInventory = Static<typeof SledInventory>;

export const Health = Type.Object({
  status: StringEnum(['ok'] as const),
  sled_id: Uuid(),
  host_backend: Nullable(Type.String(), { description: 'illumos or sim; null on the simulated sled agent, which has no host' }),
  nexus_registered: Type.Boolean({ description: 'informational: Nexus being down does not make the agent unhealthy' }),
  nexus_queue: Type.Integer({ minimum: 0, description: 'objects with a state Nexus has not accepted yet' }),
}, { description: 'The agent is serving and its host backend answers' });
export type Health = Static<typeof Health>;
