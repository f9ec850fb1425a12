// The rack setup plan: which sled gets which subnet, datasets and services, and (once RSS runs)
// how far executing it has got. Address rules from omicron common/src/address.rs:
// - AZ /48, rack /56, sled /64;
// - sled i (0-based, config order) gets the rack /56 with byte 7 set to i + 1
//   (`get_64_subnet(rack, i + 1)`), and its sled agent listens on index 1 of that /64, port 12345;
// - DNS: for i < DNS_REDUNDANCY, sled i also runs "internal-dns" on index 1 of reserved DNS /64
//   number i + 1 (the AZ's first /56, the "reserved rack", with byte 7 = i + 1), with the global
//   zone's address at index 2. For rack fd00:1122:3344:0100:: that is fd00:1122:3344:1::1 and ::2.
import { BlockList } from 'node:net';
import { Type } from 'typebox';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { formatSocketAddr, parseSocketAddr } from '../common/address.js';
import { Nullable, OneOf, StringEnum } from '../params.js';
import { CONTRACT_FORMATS } from '../server.js';
import type { RssConfig } from './config.js';
import { formatIpv6, networkOf, parseIpv6, setByte } from '../common/ipv6.js';
import type { DatasetEnsureBody, ServiceRequest, SledAgentRequest } from '../params.js';

export const AZ_PREFIX = 48;
export const RACK_PREFIX = 56;
export const SLED_PREFIX = 64;
export const SLED_AGENT_PORT = 12345;
export const DNS_REDUNDANCY = 1;
export const PLAN_VERSION = 1;

/** The /64 at `index` (0..255) of a rack /56: byte 7 of the rack's network set to `index`. */
export function get64Subnet(rackSubnet: string, index: number): string {
  const rack = networkOf(parseIpv6(rackSubnet), RACK_PREFIX);
  return formatIpv6(setByte(rack, 7, index));
}

/** Sled i's (0-based) /64 network address: subnet index i + 1 of the rack. */
export function sledSubnet(rackSubnet: string, sledIndex: number): string {
  return get64Subnet(rackSubnet, sledIndex + 1);
}

/** "fd00:1122:3344:101::/64": the contract's Ipv6Net spelling of a /64. */
export function formatSubnet(network: string, prefix = SLED_PREFIX): string {
  return `${network}/${prefix}`;
}

/** The address at `index` within a network ("fd00:1122:3344:101::" + 1 → "fd00:1122:3344:101::1"). */
export function addressInSubnet(network: string, index: number): string {
  return formatIpv6(parseIpv6(network) + BigInt(index));
}

/** The sled agent's default address: index 1 of the sled's /64, port 12345. */
export function defaultSledAddress(sledSubnetNetwork: string): string {
  return formatSocketAddr({ host: addressInSubnet(sledSubnetNetwork, 1), port: SLED_AGENT_PORT });
}

/** Reserved DNS /64 number i + 1: the AZ /48's first /56 with byte 7 = i + 1. */
export function dnsSubnet(rackSubnet: string, dnsIndex: number): string {
  const reservedRack = networkOf(parseIpv6(rackSubnet), AZ_PREFIX);
  return formatIpv6(setByte(reservedRack, 7, dnsIndex + 1));
}

/** The internal-dns service for DNS subnet `dnsIndex`: zone address ::1, global-zone address ::2. */
export function internalDnsService(rackSubnet: string, dnsIndex: number): ServiceRequest {
  const net = dnsSubnet(rackSubnet, dnsIndex);
  return { name: 'internal-dns', addresses: [addressInSubnet(net, 1)], gz_addresses: [addressInSubnet(net, 2)] };
}

export const STEP_NAMES = ['start_sleds', 'dns_services', 'datasets', 'services'] as const;
export type StepName = (typeof STEP_NAMES)[number];

/** What one step of the original's order is, for logs and errors. */
export const STEP_TITLES: Record<StepName, string> = {
  start_sleds: 'step 4: PUT /start_sled to each bootstrap agent',
  dns_services: 'step 5: PUT /services with the DNS services',
  datasets: 'step 6: PUT /filesystem for each dataset',
  services: 'step 7: PUT /services with all services plus DNS',
};

export interface PlannedSled {
  /** 0-based position in the config; the subnet index is index + 1. */
  index: number;
  bootstrap_address: string;
  /** Where RSS reaches this sled's agent for steps 5–7. */
  sled_address: string;
  /** The PUT /start_sled body. */
  request: SledAgentRequest;
  datasets: DatasetEnsureBody[];
  services: ServiceRequest[];
  /** The config's dns_service entries plus, for sleds below DNS_REDUNDANCY, internal-dns. */
  dns_services: ServiceRequest[];
  /** The sled agent's id, from start_sled's answer; null until then. */
  id: string | null;
}

export interface StepRecord {
  name: StepName;
  /** ISO time the whole step finished, or null. */
  completed_at: string | null;
  /** Calls of this step that succeeded (see callKey), so a resumed run skips exactly those. */
  done: string[];
}

/** The persisted plan: rss-plan.json, renamed rss-plan-completed.json when all steps are done. */
export interface RssPlan {
  version: typeof PLAN_VERSION;
  /** "fd00:1122:3344:100::/56" */
  rack_subnet: string;
  created_at: string;
  sleds: PlannedSled[];
  /** Always the four STEP_NAMES, in order. */
  steps: StepRecord[];
}

/** Names one call within a step: "sled 0", or "sled 0 dataset 2" for step 6. */
export function callKey(sledIndex: number, datasetIndex?: number): string {
  return datasetIndex === undefined ? `sled ${sledIndex}` : `sled ${sledIndex} dataset ${datasetIndex}`;
}

/** Builds the plan for a checked config. Nothing is done yet: every step is pending. */
export function buildPlan(config: RssConfig, now: Date = new Date()): RssPlan {
  const sleds = config.requests.map((req, i): PlannedSled => {
    const network = sledSubnet(config.rack_subnet, i);
    const dns = [...req.dns_services];
    if (i < DNS_REDUNDANCY) dns.push(internalDnsService(config.rack_subnet, i));
    return {
      index: i,
      bootstrap_address: req.bootstrap_address,
      sled_address: req.sled_address ?? defaultSledAddress(network),
      request: { subnet: { net: formatSubnet(network) } },
      datasets: req.datasets,
      services: req.services,
      dns_services: dns,
      id: null,
    };
  });
  return {
    version: PLAN_VERSION,
    rack_subnet: formatSubnet(config.rack_subnet, RACK_PREFIX),
    created_at: now.toISOString(),
    sleds,
    steps: STEP_NAMES.map((name) => ({ name, completed_at: null, done: [] })),
  };
}

/**
 * Things worth a warning but not a refusal: a dataset or service address outside its sled's
 * /64 (the original does not check either; on a real rack such a zone would not be routable
 * through that sled).
 */
export function planWarnings(plan: RssPlan): string[] {
  const warnings: string[] = [];
  for (const sled of plan.sleds) {
    const [net, prefix] = sled.request.subnet.net.split('/');
    const inSubnet = new BlockList();
    inSubnet.addSubnet(net!, Number(prefix), 'ipv6');
    const check = (what: string, ip: string) => {
      if (!inSubnet.check(ip, 'ipv6')) warnings.push(`sled ${sled.index}: ${what} ${ip} is outside its subnet ${sled.request.subnet.net}`);
    };
    sled.datasets.forEach((d, j) => check(`dataset ${j} (${d.dataset_kind.type}) address`, d.address.replace(/^\[(.*)\]:\d+$/, '$1')));
    sled.services.forEach((s) => s.addresses.forEach((a) => check(`service ${s.name} address`, a)));
  }
  return warnings;
}

/** The sleds' own content (what a config determines), for telling whether a config changed. */
export function planContent(plan: RssPlan): unknown {
  return {
    rack_subnet: plan.rack_subnet,
    sleds: plan.sleds.map(({ id: _id, ...rest }) => rest),
  };
}

// ---- the plan file, read back ----

const ServiceSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  addresses: Type.Array(Type.String({ format: 'ipv6' })),
  gz_addresses: Type.Array(Type.String({ format: 'ipv6' })),
}, { additionalProperties: false });

const PlanSchema = Type.Object({
  version: Type.Integer({ minimum: PLAN_VERSION, maximum: PLAN_VERSION }),
  rack_subnet: Type.String({ minLength: 1 }),
  created_at: Type.String({ format: 'date-time' }),
  sleds: Type.Array(Type.Object({
    index: Type.Integer({ minimum: 0, maximum: 254 }),
    bootstrap_address: Type.String({ minLength: 1 }),
    sled_address: Type.String({ minLength: 1 }),
    request: Type.Object({
      subnet: Type.Object({ net: Type.String({ pattern: '^[0-9a-fA-F:]+/64$' }) }, { additionalProperties: false }),
    }, { additionalProperties: false }),
    datasets: Type.Array(Type.Object({
      zpool_id: Type.String({ format: 'uuid' }),
      address: Type.String({ minLength: 1 }),
      dataset_kind: OneOf([
        Type.Object({ type: StringEnum(['cockroach_db']), all_addresses: Type.Array(Type.String()) }, { additionalProperties: false }),
        Type.Object({ type: StringEnum(['crucible']) }, { additionalProperties: false }),
        Type.Object({ type: StringEnum(['clickhouse']) }, { additionalProperties: false }),
      ], { type: 'object', discriminator: { propertyName: 'type' } }),
    }, { additionalProperties: false })),
    services: Type.Array(ServiceSchema),
    dns_services: Type.Array(ServiceSchema),
    id: Nullable(Type.String({ format: 'uuid' })),
  }, { additionalProperties: false }), { minItems: 1 }),
  steps: Type.Array(Type.Object({
    name: StringEnum(STEP_NAMES),
    completed_at: Nullable(Type.String({ format: 'date-time' })),
    done: Type.Array(Type.String()),
  }, { additionalProperties: false })),
}, { additionalProperties: false });

const ajv = new Ajv({ allErrors: true, strict: false, discriminator: true, formats: CONTRACT_FORMATS });
(addFormatsModule as unknown as { default: (a: Ajv) => void }).default?.(ajv)
  ?? (addFormatsModule as unknown as (a: Ajv) => void)(ajv);
const validatePlan = ajv.compile(PlanSchema);

/** Checks a plan read back from disk; throws an Error naming the file and what is wrong. */
export function checkPlan(value: unknown, source: string): RssPlan {
  const bad = (what: string): never => {
    throw new Error(`RSS plan ${source} is not a valid plan: ${what}`);
  };
  if (!validatePlan(value)) bad(ajv.errorsText(validatePlan.errors, { dataVar: 'plan' }));
  const plan = value as RssPlan;
  if (plan.steps.map((s) => s.name).join() !== STEP_NAMES.join()) {
    bad(`steps must be ${STEP_NAMES.join(', ')} in that order`);
  }
  plan.sleds.forEach((sled, i) => {
    if (sled.index !== i) bad(`sleds[${i}].index is ${sled.index}`);
    for (const field of ['bootstrap_address', 'sled_address'] as const) {
      try {
        parseSocketAddr(sled[field]);
      } catch (err) {
        bad(`sleds[${i}].${field}: ${(err as Error).message}`);
      }
    }
  });
  return plan;
}
