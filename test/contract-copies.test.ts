// The tests read the contracts from test/contracts/; they must be the same bytes as the
// authoritative ../shared/contracts/ whenever that folder is beside the repository (as in CI).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTRACTS_DIR, SHARED_CONTRACTS_DIR } from './support/contract.js';

const FILES = [
  'omicron/sled-agent.json',
  'omicron/sled-agent-networking.json',
  'omicron/bootstrap-agent.json',
  'omicron/nexus-internal.json',
  'omicron/sled-agent-smf-config-rss.toml',
  'crucible/crucible-agent.json',
];

describe.runIf(existsSync(SHARED_CONTRACTS_DIR))('contract copies', () => {
  it.each(FILES)('%s is identical to ../shared/contracts', (file) => {
    expect(readFileSync(join(CONTRACTS_DIR, file)).equals(readFileSync(join(SHARED_CONTRACTS_DIR, file)))).toBe(true);
  });
});
