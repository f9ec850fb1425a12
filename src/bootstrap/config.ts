// Configuration of the bootstrap agent (`sled-agent bootstrap <config.toml>`). The sled agent it
// starts is either the real one, from a `sled-agent run` config file (`sled_agent_config`), or the
// simulated one, described by a `[sled_agent]` table in the sim's own config format; either way its
// id is this sled's id and its address comes from start_sled.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type, type Static } from 'typebox';
import {
  ConfigError, assertSocketAddrs, assertValid, configAjv, defaultSimConfig, mergeSimConfig, readTomlFile, type SimConfig,
} from '../sim/config.js';

/** The original's bootstrap port; the address itself is configurable (no fdb0:… on a laptop). */
export const BOOTSTRAP_PORT = 12346;
/** The original's sled agent port, at index 1 of the sled's subnet. */
export const SLED_AGENT_PORT = 12345;

const TopLevel = Type.Object({
  id: Type.String({ format: 'uuid' }),
  bind_address: Type.String({ minLength: 1 }),
  data_dir: Type.String({ minLength: 1 }),
  /** Where the sled agent listens, instead of [subnet index 1]:12345 (a dev machine cannot). */
  sled_address: Type.Optional(Type.String({ minLength: 1 })),
  sled_agent: Type.Optional(Type.Object({}, { additionalProperties: true })),
  /**
   * A `sled-agent run` config file: start_sled then starts the real sled agent from it (its id
   * and bind address replaced by this sled's, its underlay address set from the subnet) instead
   * of the simulated one `[sled_agent]` describes.
   */
  sled_agent_config: Type.Optional(Type.String({ minLength: 1 })),
  trust_quorum: Type.Optional(Type.Object({
    /** This sled's share (written by the rack's dealer), mode 0600. */
    share_file: Type.String({ minLength: 1 }),
    /** Bootstrap addresses of the peers to gather shares from. */
    peers: Type.Array(Type.String({ minLength: 1 })),
    /** Identities (UTF-8) allowed to fetch this sled's share: the peers' sled ids. */
    allowed_identities: Type.Array(Type.String({ minLength: 1 })),
  }, { additionalProperties: false })),
}, { additionalProperties: false });

export type BootstrapConfig = Omit<Static<typeof TopLevel>, 'sled_agent'> & {
  /** Template of the sled agent's config; `id` and the bind address are filled in at start. */
  sled_agent: SimConfig;
};

const validate = configAjv().compile(TopLevel);

export function defaultBootstrapConfig(id: string): Record<string, unknown> {
  return { id, bind_address: `127.0.0.1:${BOOTSTRAP_PORT}`, data_dir: join(tmpdir(), 'sled-agent-bootstrap', id) };
}

export function checkBootstrapConfig(raw: Record<string, unknown>, source: string): BootstrapConfig {
  assertValid(validate, raw, source);
  const top = raw as Static<typeof TopLevel>;
  assertSocketAddrs([
    ['bind_address', top.bind_address],
    ...(top.sled_address === undefined ? [] : [['sled_address', top.sled_address] as const]),
    ...(top.trust_quorum?.peers ?? []).map((p, i) => [`trust_quorum.peers[${i}]`, p] as const),
  ], source);
  const template = { ...(top.sled_agent ?? {}) } as Record<string, unknown>;
  if ('id' in template) throw new ConfigError(`invalid configuration (${source}): sled_agent.id: the sled agent's id is this sled's id; set the top-level "id"`);
  const base = { ...defaultSimConfig(), id: top.id };
  const sledAgent = mergeSimConfig(base, template, `${source} [sled_agent]`);
  return { ...top, sled_agent: sledAgent };
}

export function loadBootstrapConfigFile(path: string): BootstrapConfig {
  const raw = readTomlFile(path);
  const id = typeof raw.id === 'string' ? raw.id : '';
  return checkBootstrapConfig({ ...defaultBootstrapConfig(id), ...raw }, path);
}
