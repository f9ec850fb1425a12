// The Rack Setup Service's public surface, for the CLI (`sled-agent rss <config-rss.toml>`) and
// the local-rack script.
export {
  ConfigError, checkRssConfig, loadRssConfig, parseRssConfig, MAX_SLEDS,
  type RssConfig, type RssSledRequest,
} from './config.js';
export {
  addressInSubnet, buildPlan, callKey, checkPlan, defaultSledAddress, dnsSubnet, formatSubnet, get64Subnet,
  internalDnsService, sledSubnet, AZ_PREFIX, DNS_REDUNDANCY, RACK_PREFIX, SLED_AGENT_PORT, SLED_PREFIX,
  STEP_NAMES, type PlannedSled, type RssPlan, type StepName, type StepRecord,
} from './plan.js';
export {
  runRackSetup, RackSetupError, COMPLETED_PLAN_FILE, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS,
  LOCK_FILE, PLAN_FILE, type RackSetupOptions, type RackSetupResult, type RetryPolicy, type RssSledSummary,
} from './service.js';

import type { RackSetupResult } from './service.js';

/** What `sled-agent rss` prints on stdout: one line per sled, then where the plan is. */
export function formatRackSetupSummary(result: RackSetupResult): string {
  const head = result.status === 'completed'
    ? `rack setup complete: ${result.sleds.length} sled${result.sleds.length === 1 ? '' : 's'}`
    : `rack setup was already complete: ${result.sleds.length} sled${result.sleds.length === 1 ? '' : 's'} (nothing sent)`;
  const lines = result.sleds.map((s) =>
    `sled ${s.index}: id ${s.id} subnet ${s.subnet} sled agent ${s.sled_address} bootstrap agent ${s.bootstrap_address}`);
  return [head, ...lines, `plan: ${result.plan_path}`].join('\n');
}
