// Configuration of the simulated sled agent: a built-in default, optionally overlaid by a TOML
// file, then by the CLI's positional arguments. Every field is validated before anything starts,
// and a bad one is reported by name.
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { Type, type Static } from 'typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parseSocketAddr } from '../common/address.js';
import { StringEnum } from '../params.js';
import { CONTRACT_FORMATS, REQUEST_BODY_MAX_BYTES } from '../server.js';

const Address = Type.String({ minLength: 1 });

/** `[updates]`, the same in the sim's and the sled agent's configs. */
export const UpdatesTable = Type.Object({
  artifact_dir: Type.String({ minLength: 1 }),
}, { additionalProperties: false });

/** `[nexus]`: the Nexus client's timeout and the notifier's retry backoff, both configs. */
export const NexusTable = Type.Object({
  timeout_ms: Type.Integer({ minimum: 1 }),
  backoff_initial_ms: Type.Integer({ minimum: 1 }),
  backoff_max_ms: Type.Integer({ minimum: 1 }),
}, { additionalProperties: false });

export const SimConfigSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  sim_mode: StringEnum(['auto', 'explicit']),
  nexus_address: Address,
  dropshot: Type.Object({
    bind_address: Address,
    request_body_max_bytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
  }, { additionalProperties: false }),
  log: Type.Object({
    level: StringEnum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  }, { additionalProperties: false }),
  sim: Type.Object({
    /** Auto mode: delay before each simulated step (the original's 1500 ms). */
    auto_delay_ms: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  }, { additionalProperties: false }),
  storage: Type.Object({
    /** Address the simulated Crucible agents listen on. */
    ip: Type.String({ format: 'ip' }),
    zpools: Type.Array(Type.Object({
      /** Fixed id, so a restarted sim reports the same pools; random when absent. */
      id: Type.Optional(Type.String({ format: 'uuid' })),
      size: Type.Integer({ format: 'uint64' }),
    }, { additionalProperties: false }), { maxItems: 256 }),
  }, { additionalProperties: false }),
  updates: UpdatesTable,
  nexus: NexusTable,
}, { additionalProperties: false });

export type SimConfig = Static<typeof SimConfigSchema>;

export const DEFAULT_SLED_ID = 'fb0f7546-4d46-40ca-9d56-cbb810684ca7';

/** The built-in configuration: what `npm start` runs. */
export function defaultSimConfig(): SimConfig {
  return {
    id: DEFAULT_SLED_ID,
    sim_mode: 'auto',
    nexus_address: '127.0.0.1:12221',
    dropshot: { bind_address: '127.0.0.1:12345', request_body_max_bytes: REQUEST_BODY_MAX_BYTES },
    log: { level: 'info' },
    sim: { auto_delay_ms: 1500 },
    // The original CLI creates ten 1 TiB pools.
    storage: { ip: '127.0.0.1', zpools: Array.from({ length: 10 }, () => ({ size: 2 ** 40 })) },
    // Where the original's updates.rs puts them, and where Nexus's update test reads them back.
    updates: { artifact_dir: '/var/tmp/zones' },
    nexus: { timeout_ms: 10_000, backoff_initial_ms: 250, backoff_max_ms: 30_000 },
  };
}

/**
 * The validator every config file goes through: all errors at once (each with the value it is
 * about, for the message), the contract's formats.
 */
export function configAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: false, formats: CONTRACT_FORMATS });
  const addFormats = ((addFormatsModule as unknown as { default?: (a: Ajv) => void }).default
    ?? (addFormatsModule as unknown as (a: Ajv) => void));
  addFormats(ajv);
  return ajv;
}

const validate = configAjv().compile(SimConfigSchema);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Throws ConfigError listing every field `validate` refused (ajv with allErrors and verbose). */
export function assertValid(validate: ValidateFunction, config: unknown, source: string): void {
  if (validate(config)) return;
  const errors = validate.errors ?? [];
  // A union's branches each add their own errors; a person needs those of the branch the value
  // has the shape of (a table with a bad field), or else the choices.
  const inUnion = new Set<ErrorObject>();
  const problems: string[] = [];
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    const branches = new Map<string, ErrorObject[]>();
    for (const b of errors) {
      if (b === e || !b.schemaPath.startsWith(`${e.schemaPath}/`)) continue;
      inUnion.add(b);
      const index = b.schemaPath.slice(e.schemaPath.length + 1).split('/')[0]!;
      branches.set(index, [...branches.get(index) ?? [], b]);
    }
    const shaped = [...branches.values()].find((bs) => !bs.some((b) => b.instancePath === e.instancePath
      && (b.keyword === 'type' || b.keyword === 'enum')));
    if (shaped) {
      problems.push(...shaped.map(describeError));
      continue;
    }
    // Per branch, its allowed values, or else the type it wants.
    const choices = [...branches.values()].flatMap((bs) => {
      const here = bs.filter((b) => b.instancePath === e.instancePath);
      const allowed = here.find((b) => b.keyword === 'enum');
      if (allowed) return (allowed.params as { allowedValues: unknown[] }).allowedValues.map(String);
      const type = String((here.find((b) => b.keyword === 'type')?.params as { type?: string } | undefined)?.type ?? '');
      return type === '' ? [] : [TYPE_NAMES[type] ?? type];
    });
    problems.push(`${e.instancePath || '(top level)'}: must be one of: ${[...new Set(choices)].join(', ')} (it is ${JSON.stringify(e.data)})`);
  }
  for (const e of errors) {
    if (!inUnion.has(e) && e.keyword !== 'anyOf' && e.keyword !== 'oneOf') problems.push(describeError(e));
  }
  throw new ConfigError(`invalid configuration (${source}):\n  ${[...new Set(problems)].join('\n  ')}`);
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a table', array: 'an array', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false',
};

function describeError(e: ErrorObject): string {
  const where = e.instancePath || '(top level)';
  if (e.keyword === 'additionalProperties') {
    return `${where}: unknown field "${String((e.params as { additionalProperty: string }).additionalProperty)}"`;
  }
  if (e.keyword === 'enum') {
    return `${where}: must be one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ')} (it is ${JSON.stringify(e.data)})`;
  }
  return `${where}: ${e.message ?? 'is invalid'}`;
}

/** Throws ConfigError naming the first of `fields` that is not "ip:port" / "[ipv6]:port". */
export function assertSocketAddrs(fields: ReadonlyArray<readonly [string, string]>, source: string): void {
  for (const [field, value] of fields) {
    try {
      parseSocketAddr(value);
    } catch (err) {
      throw new ConfigError(`invalid configuration (${source}): ${field}: ${(err as Error).message}`);
    }
  }
}

/** Validates a complete config; throws ConfigError listing every bad field. */
export function checkSimConfig(config: unknown, source: string): SimConfig {
  assertValid(validate, config, source);
  const checked = config as SimConfig;
  assertSocketAddrs([['nexus_address', checked.nexus_address], ['dropshot.bind_address', checked.dropshot.bind_address]], source);
  const ids = checked.storage.zpools.map((pool) => pool.id).filter((id) => id !== undefined);
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate) {
    throw new ConfigError(`invalid configuration (${source}): storage.zpools: zpool id ${duplicate} is given more than once`);
  }
  if (checked.nexus.backoff_max_ms < checked.nexus.backoff_initial_ms) {
    throw new ConfigError(`invalid configuration (${source}): nexus.backoff_max_ms is below nexus.backoff_initial_ms`);
  }
  return checked;
}

/** The default config with a TOML file's tables merged over it (one level deep). */
export function loadSimConfigFile(path: string, base: SimConfig = defaultSimConfig()): SimConfig {
  return mergeSimConfig(base, readTomlFile(path), path);
}

/** Reads a TOML file into a plain object; errors name the file. */
export function readTomlFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`configuration file ${path} is not valid TOML: ${(err as Error).message}`);
  }
}

/** `partial`'s tables merged over `base` (one level deep), then validated. */
export function mergeSimConfig(base: SimConfig, partial: Record<string, unknown>, source: string): SimConfig {
  return checkSimConfig(mergeTables(base as unknown as Record<string, unknown>, partial), source);
}

/**
 * `partial` over `base`, tables merged one level deep. Built with defineProperty semantics
 * (fromEntries), so a "__proto__" key in a file is an unknown field for validation to name, not
 * a prototype to swap in.
 */
export function mergeTables(base: Record<string, unknown>, partial: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries([
    ...Object.entries(base).filter(([key]) => !Object.hasOwn(partial, key)),
    ...Object.entries(partial).map(([key, value]) => {
      const old = Object.hasOwn(base, key) ? base[key] : undefined;
      return [key, isPlainObject(old) && isPlainObject(value)
        ? Object.fromEntries([...Object.entries(old), ...Object.entries(value)])
        : value];
    }),
  ]);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
