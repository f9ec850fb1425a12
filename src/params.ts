// Wire types of the sled agent API, field for field from test/contracts/omicron/sled-agent.json
// (and the Nexus internal and Crucible agent types the sim sends or serves). The guest networking
// types come from test/contracts/omicron/sled-agent-networking.json (omicron 56a586d367 and
// bea1af3c74), which supersedes the pinned InstanceHardware, NetworkInterface and Ipv4Net. The
// schemas are what fastify validates requests with and what `sled-agent openapi sled` publishes;
// the contract test compares them structurally with the contracts, so any drift here fails a test.
import { Type, type Static, type TSchema } from 'typebox';

// The contract spells tags as single-value enums and unions as oneOf; TypeBox would emit `const`
// and `anyOf`, so these helpers keep the published document in the contract's shape.
export function StringEnum<const T extends readonly string[]>(values: T, options: object = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export function OneOf<T extends TSchema[]>(schemas: [...T], options: object = {}) {
  return Type.Unsafe<Static<T[number]>>({ oneOf: schemas, ...options });
}

// OpenAPI 3.0 nullability (`nullable: true` beside `type`), which fastify's ajv understands.
export function Nullable<T extends TSchema>(schema: T, options: object = {}) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true, ...options });
}

// Every variant of a tagged union is an object; saying so at the top (redundant for the
// contract) lets ajv use the tag to name the bad field instead of "must match one schema".
const TAGGED_ON = (propertyName: string) => ({ type: 'object', discriminator: { propertyName } });

const Uuid = (options: object = {}) => Type.String({ format: 'uuid', ...options });
const Uint = (format: 'uint8' | 'uint16' | 'uint32' | 'uint64', options: object = {}) =>
  Type.Integer({ format, minimum: 0, ...options });

export const Generation = Uint('uint64', {
  description: 'Generation numbers stored in the database, used for optimistic concurrency control',
});
export const ByteCount = Uint('uint64', { description: 'A count of bytes' });
export const InstanceCpuCount = Uint('uint16', { description: 'The number of CPUs in an Instance' });

export const INSTANCE_STATES = [
  'creating', 'starting', 'running', 'stopping', 'stopped',
  'rebooting', 'migrating', 'repairing', 'failed', 'destroyed',
] as const;
export const InstanceState = StringEnum(INSTANCE_STATES);
export type InstanceState = Static<typeof InstanceState>;

export const INSTANCE_STATES_REQUESTED = ['running', 'stopped', 'reboot', 'migrating', 'destroyed'] as const;
export const InstanceStateRequested = StringEnum(INSTANCE_STATES_REQUESTED);
export type InstanceStateRequested = Static<typeof InstanceStateRequested>;

export const InstanceRuntimeState = Type.Object({
  run_state: InstanceState,
  sled_id: Uuid(),
  propolis_id: Uuid(),
  dst_propolis_id: Type.Optional(Nullable(Uuid())),
  propolis_addr: Type.Optional(Nullable(Type.String())),
  migration_id: Type.Optional(Nullable(Uuid())),
  ncpus: InstanceCpuCount,
  memory: ByteCount,
  hostname: Type.String({ description: 'RFC1035-compliant hostname for the Instance.' }),
  gen: Generation,
  time_updated: Type.String({ format: 'date-time' }),
}, { description: 'Runtime state of the Instance, including the actual running state and minimal metadata' });
export type InstanceRuntimeState = Static<typeof InstanceRuntimeState>;

export const InstanceRuntimeStateMigrateParams = Type.Object({
  migration_id: Uuid(),
  dst_propolis_id: Uuid(),
});
export type InstanceRuntimeStateMigrateParams = Static<typeof InstanceRuntimeStateMigrateParams>;

export const InstanceRuntimeStateRequested = Type.Object({
  run_state: InstanceStateRequested,
  migration_params: Type.Optional(Nullable(InstanceRuntimeStateMigrateParams)),
});
export type InstanceRuntimeStateRequested = Static<typeof InstanceRuntimeStateRequested>;

export const MacAddr = Type.String({
  pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$', minLength: 17, maxLength: 17,
});
export const Name = Type.String({ pattern: '[a-z](|[a-zA-Z0-9-]*[a-zA-Z0-9])', maxLength: 63 });
// The networking document's general Ipv4Net: the pinned pattern accepted only 10/8 (malformed),
// 172.16.x.x and 192.168/16, so Nexus's default VPC subnet 172.30.0.0/22 was refused.
const Ipv4Net = Type.String({
  pattern: '^(([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\\.){3}([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])/([8-9]|1[0-9]|2[0-9]|3[0-2])$',
  description: 'An IPv4 subnet, including prefix and subnet mask',
});
const Ipv6Net = Type.String({
  pattern: '^(fd|FD)[0-9a-fA-F]{2}:((([0-9a-fA-F]{1,4}\\:){6}[0-9a-fA-F]{1,4})|(([0-9a-fA-F]{1,4}:){1,6}:))/(6[4-9]|[7-9][0-9]|1[0-1][0-9]|12[0-6])$',
  maxLength: 43,
});
export const IpNet = OneOf([Ipv4Net, Ipv6Net]);

export const Vni = Uint('uint32', { description: 'A Geneve Virtual Network Identifier' });

export const NetworkInterface = Type.Object({
  name: Name,
  ip: Type.String({ format: 'ip' }),
  mac: MacAddr,
  subnet: IpNet,
  vni: Vni,
  // Required since omicron 56a586d367; optional here so a body of the pinned shape still passes
  // (then the NIC in slot 0 is the primary one: src/common/network-checks.ts).
  primary: Type.Optional(Type.Boolean()),
  slot: Uint('uint8'),
}, { description: 'Information required to construct a virtual network interface for a guest' });
export type NetworkInterface = Static<typeof NetworkInterface>;

export const L4PortRange = Type.String({
  pattern: '^[0-9]{1,5}(-[0-9]{1,5})?$', minLength: 1, maxLength: 11,
  description: 'An inclusive-inclusive range of IP ports. The second port may be omitted to represent a single port',
});
export type L4PortRange = Static<typeof L4PortRange>;

export const VpcFirewallRuleProtocol = StringEnum(['TCP', 'UDP', 'ICMP'] as const);
export const VpcFirewallRule = Type.Object({
  status: StringEnum(['disabled', 'enabled'] as const),
  direction: StringEnum(['inbound', 'outbound'] as const),
  targets: Type.Array(NetworkInterface),
  filter_hosts: Type.Optional(Nullable(Type.Array(IpNet))),
  filter_ports: Type.Optional(Nullable(Type.Array(L4PortRange))),
  filter_protocols: Type.Optional(Nullable(Type.Array(VpcFirewallRuleProtocol))),
  action: StringEnum(['allow', 'deny'] as const),
  priority: Uint('uint16'),
}, { description: 'VPC firewall rule after object name resolution has been performed by Nexus' });
export type VpcFirewallRule = Static<typeof VpcFirewallRule>;

export const SourceNatConfig = Type.Object({
  ip: Type.String({ format: 'ip', description: 'The external address provided to the instance' }),
  first_port: Uint('uint16', { description: 'The first port used for instance NAT, inclusive.' }),
  last_port: Uint('uint16', { description: 'The last port used for instance NAT, also inclusive.' }),
}, { description: 'An IP address and port range used for instance source NAT, i.e., making outbound network connections from guests.' });
export type SourceNatConfig = Static<typeof SourceNatConfig>;

export const CrucibleOpts = Type.Object({
  target: Type.Array(Type.String()),
  lossy: Type.Boolean(),
  key: Type.Optional(Nullable(Type.String())),
  cert_pem: Type.Optional(Nullable(Type.String())),
  key_pem: Type.Optional(Nullable(Type.String())),
  root_cert_pem: Type.Optional(Nullable(Type.String())),
  control: Type.Optional(Nullable(Type.String())),
});

// VolumeConstructionRequest is recursive, so it is the one type published as a shared schema
// (registered with fastify under its $id) and referenced by name.
export type VolumeConstructionRequest =
  | { type: 'volume'; block_size: number; sub_volumes: VolumeConstructionRequest[]; read_only_parent?: VolumeConstructionRequest | null }
  | { type: 'url'; block_size: number; url: string }
  | { type: 'region'; block_size: number; opts: Static<typeof CrucibleOpts>; gen: number }
  | { type: 'file'; block_size: number; path: string };
const VcrRef = Type.Unsafe<VolumeConstructionRequest>({ $ref: 'VolumeConstructionRequest#' });
export const VolumeConstructionRequestSchema = {
  $id: 'VolumeConstructionRequest',
  ...OneOf([
    Type.Object({
      type: StringEnum(['volume']),
      block_size: Uint('uint64'),
      sub_volumes: Type.Array(VcrRef),
      read_only_parent: Type.Optional(Type.Unsafe<VolumeConstructionRequest | null>({ type: 'object', nullable: true, allOf: [VcrRef] })),
    }),
    Type.Object({ type: StringEnum(['url']), block_size: Uint('uint64'), url: Type.String() }),
    Type.Object({ type: StringEnum(['region']), block_size: Uint('uint64'), opts: CrucibleOpts, gen: Uint('uint64') }),
    Type.Object({ type: StringEnum(['file']), block_size: Uint('uint64'), path: Type.String() }),
  ], TAGGED_ON('type')),
};

export const DiskRequest = Type.Object({
  name: Type.String(),
  slot: Uint('uint8'),
  read_only: Type.Boolean(),
  device: Type.String(),
  gen: Uint('uint64'),
  volume_construction_request: VcrRef,
});

// The networking document requires source_nat, external_ips and firewall_rules; a body of the
// pinned shape without them means no external addressing and no rules.
export const InstanceHardware = Type.Object({
  runtime: InstanceRuntimeState,
  nics: Type.Array(NetworkInterface),
  source_nat: Type.Optional(SourceNatConfig),
  external_ips: Type.Optional(Type.Array(Type.String({ format: 'ip' }), {
    description: 'Zero or more external IP addresses (either floating or ephemeral), provided to an instance to allow inbound connectivity.',
  })),
  firewall_rules: Type.Optional(Type.Array(VpcFirewallRule)),
  disks: Type.Array(DiskRequest),
  cloud_init_bytes: Type.Optional(Nullable(Type.String())),
}, { description: 'Describes the instance hardware.' });
export type InstanceHardware = Static<typeof InstanceHardware>;

export const InstanceMigrateParams = Type.Object({
  src_propolis_id: Uuid(),
  src_propolis_addr: Type.String(),
});

export const InstanceEnsureBody = Type.Object({
  initial: InstanceHardware,
  target: InstanceRuntimeStateRequested,
  migrate: Type.Optional(Nullable(InstanceMigrateParams)),
}, { description: 'Sent to a sled agent to establish the runtime state of an Instance' });
export type InstanceEnsureBody = Static<typeof InstanceEnsureBody>;

// PUT /vpc/{vpc_id}/firewall/rules. `vni` is from omicron 8f8da3da67 (#3352), where it is
// required; optional here, as the 2022 body lacks it (then the rules' targets must name the VNI).
export const VpcFirewallRulesEnsureBody = Type.Object({
  vni: Type.Optional(Vni),
  rules: Type.Array(VpcFirewallRule),
}, { description: 'Update firewall rules for a VPC' });
export type VpcFirewallRulesEnsureBody = Static<typeof VpcFirewallRulesEnsureBody>;

export const SetVirtualNetworkInterfaceHost = Type.Object({
  virtual_ip: Type.String({ format: 'ip' }),
  virtual_mac: MacAddr,
  physical_host_ip: Type.String({ format: 'ipv6' }),
  vni: Vni,
}, { description: 'A mapping from a virtual NIC to a physical host' });
export type SetVirtualNetworkInterfaceHost = Static<typeof SetVirtualNetworkInterfaceHost>;

/** One entry of GET /v2p (not in the 2022-23 contract; omicron's #5568 later listed the same fields without the id). */
export const V2pMapping = Type.Object({
  interface_id: Uuid(),
  virtual_ip: Type.String({ format: 'ip' }),
  virtual_mac: MacAddr,
  physical_host_ip: Type.String({ format: 'ipv6' }),
  vni: Vni,
}, { description: 'A mapping this sled holds from a virtual NIC to the physical host it is on' });
export type V2pMapping = Static<typeof V2pMapping>;

const instanceTag = <const S extends string>(state: S) =>
  Type.Object({ state: StringEnum([state]), instance: Uuid() });
const plainTag = <const S extends string>(state: S) => Type.Object({ state: StringEnum([state]) });

export const DiskState = OneOf([
  plainTag('creating'),
  plainTag('detached'),
  instanceTag('attaching'),
  instanceTag('attached'),
  instanceTag('detaching'),
  plainTag('destroyed'),
  plainTag('faulted'),
], { ...TAGGED_ON('state'), description: 'State of a Disk (primarily: attached or not)' });
export type DiskState = Static<typeof DiskState>;

export const DiskStateRequested = OneOf([
  plainTag('detached'),
  instanceTag('attached'),
  plainTag('destroyed'),
  plainTag('faulted'),
], { ...TAGGED_ON('state'), description: 'Used to request a Disk state change' });
export type DiskStateRequested = Static<typeof DiskStateRequested>;

export const DiskRuntimeState = Type.Object({
  disk_state: DiskState,
  gen: Generation,
  time_updated: Type.String({ format: 'date-time' }),
});
export type DiskRuntimeState = Static<typeof DiskRuntimeState>;

export const DiskEnsureBody = Type.Object({
  initial_runtime: DiskRuntimeState,
  target: DiskStateRequested,
});
export type DiskEnsureBody = Static<typeof DiskEnsureBody>;

export const UpdateArtifactKind = StringEnum(['zone']);
export const UpdateArtifact = Type.Object({
  name: Type.String(),
  version: Type.Integer({ format: 'int64' }),
  kind: UpdateArtifactKind,
});
export type UpdateArtifact = Static<typeof UpdateArtifact>;

export const ServiceRequest = Type.Object({
  name: Type.String(),
  addresses: Type.Array(Type.String({ format: 'ipv6' })),
  gz_addresses: Type.Optional(Type.Array(Type.String({ format: 'ipv6' }), { default: [] })),
});
export type ServiceRequest = Static<typeof ServiceRequest>;

export const ServiceEnsureBody = Type.Object({
  services: Type.Array(ServiceRequest),
}, { description: 'Used to request that the Sled initialize certain services on initialization.' });
export type ServiceEnsureBody = Static<typeof ServiceEnsureBody>;

export const DatasetKind = OneOf([
  Type.Object({ type: StringEnum(['cockroach_db']), all_addresses: Type.Array(Type.String()) }),
  Type.Object({ type: StringEnum(['crucible']) }),
  Type.Object({ type: StringEnum(['clickhouse']) }),
], TAGGED_ON('type'));
export type DatasetKind = Static<typeof DatasetKind>;

export const DatasetEnsureBody = Type.Object({
  zpool_id: Uuid(),
  dataset_kind: DatasetKind,
  address: Type.String(),
}, { description: 'Used to request a new dataset kind exists within a zpool.' });
export type DatasetEnsureBody = Static<typeof DatasetEnsureBody>;

export const ApiError = Type.Object({
  request_id: Type.String(),
  error_code: Type.Optional(Type.String()),
  message: Type.String(),
}, { description: 'Error information from a response.' });
export type ApiError = Static<typeof ApiError>;

/** A 204 response: @fastify/swagger publishes `type: 'null'` as a response with no content. */
export const NoContent = (description: string) => Type.Unsafe<void>({ type: 'null', description });

export const InstancePathParam = Type.Object({ instance_id: Uuid() });
export const DiskPathParam = Type.Object({ disk_id: Uuid() });
export const VpcPathParam = Type.Object({ vpc_id: Uuid() });
export const InterfacePathParam = Type.Object({ interface_id: Uuid() });

// Crucible agent (test/contracts/crucible/crucible-agent.json), served by the sim per dataset.
export const RegionState = StringEnum(['requested', 'created', 'tombstoned', 'destroyed', 'failed']);
export const RegionId = Type.String();
export const CreateRegion = Type.Object({
  id: RegionId,
  block_size: Uint('uint64'),
  extent_size: Uint('uint64'),
  extent_count: Uint('uint64'),
  encrypted: Type.Boolean(),
  cert_pem: Type.Optional(Nullable(Type.String())),
  key_pem: Type.Optional(Nullable(Type.String())),
  root_pem: Type.Optional(Nullable(Type.String())),
});
export type CreateRegion = Static<typeof CreateRegion>;
export const Region = Type.Object({
  id: RegionId,
  state: RegionState,
  block_size: Uint('uint64'),
  extent_size: Uint('uint64'),
  extent_count: Uint('uint64'),
  port_number: Uint('uint16'),
  encrypted: Type.Boolean(),
  cert_pem: Type.Optional(Nullable(Type.String())),
  key_pem: Type.Optional(Nullable(Type.String())),
  root_pem: Type.Optional(Nullable(Type.String())),
});
export type Region = Static<typeof Region>;
export const RegionPathParam = Type.Object({ id: RegionId });

// Bootstrap agent API (test/contracts/omicron/bootstrap-agent.json).
export const Ipv6Subnet = Type.Object({ net: Ipv6Net }, {
  description: 'Wraps an [`Ipv6Network`] with a compile-time prefix length.',
});
export const SledAgentRequest = Type.Object({ subnet: Ipv6Subnet }, {
  description: 'Configuration information for launching a Sled Agent.',
});
export type SledAgentRequest = Static<typeof SledAgentRequest>;
export const SledAgentResponse = Type.Object({ id: Uuid() }, {
  description: 'Describes the Sled Agent running on the device.',
});
export type SledAgentResponse = Static<typeof SledAgentResponse>;
export const ByteArray = Type.Array(Uint('uint8'));
export const ShareRequest = Type.Object({ identity: ByteArray }, {
  description: 'Identity signed by local RoT and Oxide certificate chain.',
});
export const ShareResponse = Type.Object({ shared_secret: ByteArray }, {
  description: 'Sent between bootstrap agents to establish trust quorum.',
});

// Nexus internal API bodies the agent sends (test/contracts/omicron/nexus-internal.json).
export interface SledAgentStartupInfo { sa_address: string }
export interface ZpoolPutRequest { size: number }
export type NexusDatasetKind = 'crucible' | 'cockroach' | 'clickhouse';
/** The sled agent API spells dataset kinds one way, the Nexus internal API another. */
export const NEXUS_DATASET_KIND: Record<DatasetKind['type'], NexusDatasetKind> = {
  cockroach_db: 'cockroach',
  crucible: 'crucible',
  clickhouse: 'clickhouse',
};
export interface DatasetPutRequest { address: string; kind: NexusDatasetKind }
