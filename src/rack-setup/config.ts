// config-rss.toml: the Rack Setup Service's input, in the original's format
// (sled-agent/src/rack_setup/config.rs and the SledRequest it embeds):
//
//   rack_subnet = "fd00:1122:3344:0100::"      # the rack's /56 (which implies the AZ's /48)
//   [[request]]                                 # one per sled, in sled order
//   [[request.dataset]]  zpool_id, address = "[v6]:port", dataset_kind.type (+ all_addresses)
//   [[request.service]]  name, addresses, gz_addresses (default [])
//   [[request.dns_service]]  same shape; extra DNS services, sent with the step-5 DNS request
//
// plus one extension, because this agent has no multicast peer discovery to learn who the
// sleds are: every [[request]] names `bootstrap_address = "IP:PORT"` (where its bootstrap agent
// listens; required) and may name `sled_address = "IP:PORT"` (where its sled agent will be
// reachable once started; default "[<sled subnet>::1]:12345", as in the original).
//
// Unlike the original (serde without deny_unknown_fields) an unknown field is an error, and
// every problem is reported by its field path, e.g. `request[0].dataset[2].dataset_kind.type`.
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { Type } from 'typebox';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { formatSocketAddr, parseSocketAddr } from '../common/address.js';
import { OneOf, StringEnum } from '../params.js';
import { CONTRACT_FORMATS } from '../server.js';
import { ConfigError } from '../sim/config.js';
import { canonicalIpv6, formatIpv6, networkOf, parseIpv6 } from '../common/ipv6.js';
import type { DatasetEnsureBody, DatasetKind, ServiceRequest } from '../params.js';

// One ConfigError class for every config file, so the CLI's `instanceof ConfigError` (exit 2)
// covers this one too.
export { ConfigError };

export const RACK_PREFIX = 56;
/** At most 255 sleds: sled i's subnet sets byte 7 of the rack /56 to i + 1. */
export const MAX_SLEDS = 255;

const Ipv6 = Type.String({ format: 'ipv6' });
const ServiceRequestSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
  addresses: Type.Array(Ipv6),
  gz_addresses: Type.Optional(Type.Array(Ipv6)),
}, { additionalProperties: false });

const DatasetKindSchema = OneOf([
  Type.Object({
    type: StringEnum(['cockroach_db']),
    all_addresses: Type.Array(Type.String({ minLength: 1 })),
  }, { additionalProperties: false }),
  Type.Object({ type: StringEnum(['crucible']) }, { additionalProperties: false }),
  Type.Object({ type: StringEnum(['clickhouse']) }, { additionalProperties: false }),
], { type: 'object', discriminator: { propertyName: 'type' } });

const DatasetSchema = Type.Object({
  zpool_id: Type.String({ format: 'uuid' }),
  address: Type.String({ minLength: 1 }),
  dataset_kind: DatasetKindSchema,
}, { additionalProperties: false });

const SledRequestSchema = Type.Object({
  bootstrap_address: Type.String({ minLength: 1 }),
  sled_address: Type.Optional(Type.String({ minLength: 1 })),
  dataset: Type.Optional(Type.Array(DatasetSchema)),
  service: Type.Optional(Type.Array(ServiceRequestSchema)),
  dns_service: Type.Optional(Type.Array(ServiceRequestSchema)),
}, { additionalProperties: false });

export const RssConfigFileSchema = Type.Object({
  rack_subnet: Ipv6,
  request: Type.Array(SledRequestSchema, { minItems: 1, maxItems: MAX_SLEDS }),
}, { additionalProperties: false });

interface RawService { name: string; addresses: string[]; gz_addresses?: string[] }
interface RawDataset { zpool_id: string; address: string; dataset_kind: DatasetKind }
interface RawRequest {
  bootstrap_address: string;
  sled_address?: string;
  dataset?: RawDataset[];
  service?: RawService[];
  dns_service?: RawService[];
}
interface RawConfig { rack_subnet: string; request: RawRequest[] }

/** One sled's part of the configuration, checked and with addresses in canonical form. */
export interface RssSledRequest {
  /** "IP:PORT" of this sled's bootstrap agent. */
  bootstrap_address: string;
  /** "IP:PORT" where its sled agent will listen; null = the original's default (subnet ::1, port 12345). */
  sled_address: string | null;
  datasets: DatasetEnsureBody[];
  services: ServiceRequest[];
  dns_services: ServiceRequest[];
}

export interface RssConfig {
  /** The rack /56's network address, canonical ("fd00:1122:3344:100::"). */
  rack_subnet: string;
  /** One per sled, in sled order (sled i gets subnet index i + 1). */
  requests: RssSledRequest[];
}

const ajv = new Ajv({ allErrors: true, strict: false, discriminator: true, verbose: true, formats: CONTRACT_FORMATS });
(addFormatsModule as unknown as { default: (a: Ajv) => void }).default?.(ajv)
  ?? (addFormatsModule as unknown as (a: Ajv) => void)(ajv);
const validate = ajv.compile(RssConfigFileSchema);

/** "/request/0/dataset/2/address" → "request[0].dataset[2].address". */
function fieldPath(pointer: string, child?: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const part of parts) {
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out || '(top level)';
}

function describe(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${fieldPath(e.instancePath, String(params.additionalProperty))}: unknown field`;
    case 'required':
      return `${fieldPath(e.instancePath, String(params.missingProperty))}: missing (required)`;
    case 'discriminator': {
      const where = fieldPath(e.instancePath, String(params.tag));
      return params.tagValue === undefined || typeof params.tagValue !== 'string'
        ? `${where}: missing or not a string (one of ${DATASET_KIND_LIST})`
        : `${where}: "${params.tagValue}" is not one of ${DATASET_KIND_LIST}`;
    }
    case 'enum':
      return `${fieldPath(e.instancePath)}: must be one of ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'format':
      return `${fieldPath(e.instancePath)}: ${JSON.stringify(e.data)} is not a valid ${String(params.format)}`;
    default:
      return `${fieldPath(e.instancePath)}: ${e.message ?? 'is invalid'}`;
  }
}
const DATASET_KIND_LIST = 'cockroach_db, crucible, clickhouse';

/** Validates a parsed config-rss document; throws ConfigError naming every bad field. */
export function checkRssConfig(value: unknown, source: string): RssConfig {
  const fail = (problems: string[]): never => {
    throw new ConfigError(`invalid RSS configuration (${source}):\n  ${problems.join('\n  ')}`);
  };
  if (!validate(value)) {
    const seen = new Set<string>();
    const problems = (validate.errors ?? []).map(describe).filter((p) => !seen.has(p) && seen.add(p));
    fail(problems);
  }
  const raw = value as RawConfig;
  const problems: string[] = [];
  const canonical = (field: string, text: string): string => {
    try {
      return canonicalIpv6(text);
    } catch (err) {
      problems.push(`${field}: ${(err as Error).message}`);
      return text;
    }
  };
  const socketAddr = (field: string, text: string, v6Only: boolean): string => {
    try {
      const addr = parseSocketAddr(text);
      if (v6Only && !text.startsWith('[')) throw new Error(`"${text}" is not an IPv6 socket address ([IPV6]:PORT)`);
      if (addr.port === 0) throw new Error(`"${text}" has port 0`);
      const host = text.startsWith('[') ? canonicalIpv6(addr.host) : addr.host;
      return formatSocketAddr({ host, port: addr.port });
    } catch (err) {
      problems.push(`${field}: ${(err as Error).message}`);
      return text;
    }
  };

  // The rack subnet: a /56 inside fd00::/8 (the contract's Ipv6Net, which start_sled takes,
  // only accepts "fdxx:" networks), given as its network address.
  let rackSubnet = raw.rack_subnet;
  try {
    const addr = parseIpv6(raw.rack_subnet);
    if (addr >> 120n !== 0xfdn) {
      problems.push(`rack_subnet: ${raw.rack_subnet} is not in fd00::/8 (the bootstrap agent's Ipv6Net only accepts fdxx: subnets)`);
    } else if (networkOf(addr, RACK_PREFIX) !== addr) {
      problems.push(`rack_subnet: ${raw.rack_subnet} has bits set below its /${RACK_PREFIX} prefix (did you mean ${formatIpv6(networkOf(addr, RACK_PREFIX))}?)`);
    }
    rackSubnet = formatIpv6(networkOf(addr, RACK_PREFIX));
  } catch (err) {
    problems.push(`rack_subnet: ${(err as Error).message}`);
  }

  const service = (field: string, s: RawService): ServiceRequest => ({
    name: s.name,
    addresses: s.addresses.map((a, k) => canonical(`${field}.addresses[${k}]`, a)),
    gz_addresses: (s.gz_addresses ?? []).map((a, k) => canonical(`${field}.gz_addresses[${k}]`, a)),
  });

  const requests = raw.request.map((r, i): RssSledRequest => {
    const at = `request[${i}]`;
    const kindsByPool = new Map<string, number>();
    const datasets = (r.dataset ?? []).map((d, j): DatasetEnsureBody => {
      const field = `${at}.dataset[${j}]`;
      const key = `${d.zpool_id.toLowerCase()}/${d.dataset_kind.type}`;
      const earlier = kindsByPool.get(key);
      if (earlier !== undefined) {
        problems.push(`${field}: zpool ${d.zpool_id} already has a ${d.dataset_kind.type} dataset (${at}.dataset[${earlier}]); a sled keeps one dataset of each kind per zpool`);
      } else {
        kindsByPool.set(key, j);
      }
      const kind: DatasetKind = d.dataset_kind.type === 'cockroach_db'
        ? {
            type: 'cockroach_db',
            all_addresses: d.dataset_kind.all_addresses.map((a, k) =>
              socketAddr(`${field}.dataset_kind.all_addresses[${k}]`, a, true)),
          }
        : { type: d.dataset_kind.type };
      return {
        zpool_id: d.zpool_id.toLowerCase(),
        dataset_kind: kind,
        address: socketAddr(`${field}.address`, d.address, true),
      };
    });
    return {
      bootstrap_address: socketAddr(`${at}.bootstrap_address`, r.bootstrap_address, false),
      sled_address: r.sled_address === undefined ? null : socketAddr(`${at}.sled_address`, r.sled_address, false),
      datasets,
      services: (r.service ?? []).map((s, j) => service(`${at}.service[${j}]`, s)),
      dns_services: (r.dns_service ?? []).map((s, j) => service(`${at}.dns_service[${j}]`, s)),
    };
  });

  // Two sleds cannot share a bootstrap agent, and no two explicit sled addresses may coincide.
  for (const field of ['bootstrap_address', 'sled_address'] as const) {
    const first = new Map<string, number>();
    requests.forEach((r, i) => {
      const value = r[field];
      if (value === null) return;
      const earlier = first.get(value);
      if (earlier !== undefined) {
        problems.push(`request[${i}].${field}: ${value} is also request[${earlier}].${field}`);
      } else {
        first.set(value, i);
      }
    });
  }

  if (problems.length > 0) fail(problems);
  return { rack_subnet: rackSubnet, requests };
}

/** Parses config-rss.toml text. `source` names it in errors. */
export function parseRssConfig(text: string, source: string): RssConfig {
  let parsed: unknown;
  try {
    parsed = parseToml(text);
  } catch (err) {
    throw new ConfigError(`RSS configuration ${source} is not valid TOML: ${(err as Error).message}`);
  }
  return checkRssConfig(parsed, source);
}

/** Reads and checks a config-rss.toml file. */
export function loadRssConfig(path: string): RssConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read RSS configuration file ${path}: ${(err as Error).message}`);
  }
  return parseRssConfig(text, path);
}
