// The wire contract (test/contracts/, verbatim copies of the team's contracts, byte-checked when that folder is beside the clone), with an ajv that validates values against
// its component schemas, and a structural normaliser for comparing schemas across documents.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { CONTRACT_FORMATS } from '../../src/server.js';

const here = dirname(fileURLToPath(import.meta.url));
export const CONTRACTS_DIR = join(here, '..', 'contracts');
/** The authoritative copies, beside the repository (absent on a clone elsewhere). */
export const SHARED_CONTRACTS_DIR = join(here, '..', '..', '..', 'shared', 'contracts');

export function loadContract(rel: string): any {
  return JSON.parse(readFileSync(join(CONTRACTS_DIR, rel), 'utf8'));
}

export const sledAgentContract = loadContract('omicron/sled-agent.json');
export const nexusContract = loadContract('omicron/nexus-internal.json');
export const crucibleContract = loadContract('crucible/crucible-agent.json');
export const bootstrapContract = loadContract('omicron/bootstrap-agent.json');
export const networkingContract = loadContract('omicron/sled-agent-networking.json');

/** The schemas of sled-agent.json that sled-agent-networking.json replaces (reference/opte.md §2). */
export const SUPERSEDED_BY_NETWORKING = ['InstanceHardware', 'NetworkInterface', 'Ipv4Net'] as const;

/**
 * The sled agent API both agents serve: sled-agent.json with the networking document's paths and
 * new schemas added and the schemas it supersedes replaced. InstanceHardware and NetworkInterface
 * grew; the pinned Ipv4Net refuses most private subnets. The two documents also disagree on
 * schemas the networking one does not supersede (its later CrucibleOpts, Name, Ipv6Net, ...):
 * there the pinned one stands, as the five pinned paths must keep serving it.
 */
export const combinedSledAgentContract = (() => {
  const pinned = sledAgentContract.components.schemas;
  const schemas = { ...pinned };
  for (const [name, schema] of Object.entries(networkingContract.components.schemas as Record<string, unknown>)) {
    if (!(name in pinned) || (SUPERSEDED_BY_NETWORKING as readonly string[]).includes(name)) schemas[name] = schema;
  }
  return {
    ...sledAgentContract,
    paths: { ...sledAgentContract.paths, ...networkingContract.paths },
    components: { ...sledAgentContract.components, schemas },
  };
})();

const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv) => void;
const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false, formats: CONTRACT_FORMATS });
addFormats(ajv);
ajv.addSchema(sledAgentContract, 'sled-agent.json');
ajv.addSchema(nexusContract, 'nexus-internal.json');
ajv.addSchema(crucibleContract, 'crucible-agent.json');
ajv.addSchema(bootstrapContract, 'bootstrap-agent.json');
ajv.addSchema(combinedSledAgentContract, 'sled-agent-combined.json');

const cache = new Map<string, ValidateFunction>();

/** Throws with ajv's errors unless `value` is a valid `doc#/components/schemas/name`. */
export function expectSchema(doc: 'sled-agent.json' | 'sled-agent-combined.json' | 'nexus-internal.json' | 'crucible-agent.json' | 'bootstrap-agent.json', name: string, value: unknown): void {
  const ref = `${doc}#/components/schemas/${name}`;
  let validate = cache.get(ref);
  if (!validate) {
    validate = ajv.compile({ $ref: ref });
    cache.set(ref, validate);
  }
  if (!validate(value)) {
    throw new Error(`value is not a valid ${name}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
  }
}

const ANNOTATIONS = new Set(['description', 'title', 'example', 'discriminator']);

/**
 * A schema reduced to what it accepts: $refs resolved (a cycle becomes {$cycle: name}),
 * annotations dropped, one-element allOf merged into its parent, `required` sorted, and a
 * `type` beside a oneOf whose every branch has that type dropped as redundant.
 */
export function normalize(schema: any, doc: any, stack: string[] = []): any {
  if (Array.isArray(schema)) return schema.map((s) => normalize(s, doc, stack));
  if (schema === null || typeof schema !== 'object') return schema;
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace(/^#\/components\/schemas\//, '');
    if (stack.includes(name)) return { $cycle: name };
    const target = doc.components?.schemas?.[name];
    if (!target) throw new Error(`unresolved $ref ${schema.$ref}`);
    const { $ref: _ignored, ...rest } = schema;
    return normalize({ ...target, ...rest }, doc, [...stack, name]);
  }
  let s: any = { ...schema };
  if (Array.isArray(s.allOf) && s.allOf.length === 1) {
    const [inner] = s.allOf;
    delete s.allOf;
    const resolved = normalize(inner, doc, stack);
    s = { ...resolved, ...normalizeShallow(s, doc, stack) };
  }
  const out: any = {};
  for (const [key, value] of Object.entries(s)) {
    if (ANNOTATIONS.has(key) || key === '$id') continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as object).map(([k, v]) => [k, normalize(v, doc, stack)]),
      );
    } else if (key === 'required') {
      out.required = [...(value as string[])].sort();
    } else {
      out[key] = normalize(value, doc, stack);
    }
  }
  if (out.oneOf && out.type && out.oneOf.every((b: any) => b.type === out.type)) delete out.type;
  if (out.$cycle && out.type && out.type === effectiveType(doc.components.schemas[out.$cycle])) delete out.type;
  return out;
}

/** The type every value of `schema` has, if its own `type` or all its oneOf branches say so. */
function effectiveType(schema: any): string | undefined {
  if (schema?.type) return schema.type;
  const types = new Set((schema?.oneOf ?? []).map((b: any) => b.type));
  return types.size === 1 ? ([...types][0] as string) : undefined;
}

function normalizeShallow(s: any, doc: any, stack: string[]): any {
  const out: any = {};
  for (const [k, v] of Object.entries(s)) if (!ANNOTATIONS.has(k)) out[k] = normalize(v, doc, stack);
  return out;
}
