// Rack Setup Service: config-rss.toml parsing, the address plan, and runs over real HTTP against
// fake bootstrap and sled agents (test/support/rss-fakes.ts): request order and bodies, the plan
// persisted before acting, a completed plan left alone, a half-done plan resumed, 4xx fail-fast,
// one run per state directory.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DirectoryInUseError, lockDirectory } from '../src/common/dir-lock.js';
import { ConfigError, loadRssConfig, parseRssConfig, type RssConfig } from '../src/rack-setup/config.js';
import { canonicalIpv6, formatIpv6, parseIpv6 } from '../src/common/ipv6.js';
import {
  buildPlan, checkPlan, defaultSledAddress, dnsSubnet, formatSubnet, internalDnsService, sledSubnet,
  type RssPlan,
} from '../src/rack-setup/plan.js';
import {
  COMPLETED_PLAN_FILE, LOCK_FILE, PLAN_FILE, RackSetupError, runRackSetup,
} from '../src/rack-setup/service.js';
import { formatRackSetupSummary } from '../src/rack-setup/index.js';
import { CONTRACTS_DIR } from './support/contract.js';
import { spyOnDirSyncs } from './support/dir-syncs.js';
import { expectBootstrapSchema, startFakeRack, type FakeRack } from './support/rss-fakes.js';

// The real lock, which a test can make do something just as RSS takes it.
vi.mock(import('../src/common/dir-lock.js'), async (importOriginal) => {
  const real = await importOriginal();
  return { ...real, lockDirectory: vi.fn(real.lockDirectory) };
});
const { lockDirectory: realLockDirectory } = await vi.importActual<typeof import('../src/common/dir-lock.js')>('../src/common/dir-lock.js');

const log = pino({ level: 'silent' });
const EXAMPLE = join(CONTRACTS_DIR, 'omicron', 'sled-agent-smf-config-rss.toml');
const RACK = 'fd00:1122:3344:0100::';
const IDS = [
  '11111111-1111-4111-8111-111111111111',
  '22222222-2222-4222-8222-222222222222',
  '33333333-3333-4333-8333-333333333333',
];
const FAST = { retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5 }, timeoutMs: 5_000 };

/** The original example with `bootstrap_address` (and optionally sled_address) added to each [[request]]. */
function exampleWith(bootstrap: string, sled?: string): string {
  const extra = `bootstrap_address = "${bootstrap}"${sled ? `\nsled_address = "${sled}"` : ''}`;
  return readFileSync(EXAMPLE, 'utf8').replace(/^\[\[request\]\]$/m, `[[request]]\n${extra}`);
}

function configError(text: string): string {
  try {
    parseRssConfig(text, 'test.toml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config-rss.toml', () => {
  it('parses the original example with bootstrap addresses injected', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rss-config-'));
    try {
      const path = join(dir, 'config-rss.toml');
      writeFileSync(path, exampleWith('127.0.0.1:12346'));
      const config = loadRssConfig(path);
      expect(config.rack_subnet).toBe('fd00:1122:3344:100::');
      expect(config.requests).toHaveLength(1);
      const [req] = config.requests;
      expect(req!.bootstrap_address).toBe('127.0.0.1:12346');
      expect(req!.sled_address).toBeNull();
      expect(req!.datasets.map((d) => d.dataset_kind.type)).toEqual(['crucible', 'crucible', 'crucible', 'cockroach_db', 'clickhouse']);
      expect(req!.datasets[0]).toEqual({
        zpool_id: 'd462a7f7-b628-40fe-80ff-4e4189e2d62b',
        dataset_kind: { type: 'crucible' },
        address: '[fd00:1122:3344:101::6]:32345',
      });
      expect(req!.datasets[3]!.dataset_kind).toEqual({ type: 'cockroach_db', all_addresses: ['[fd00:1122:3344:101::2]:32221'] });
      expect(req!.services).toEqual([
        { name: 'nexus', addresses: ['fd00:1122:3344:101::3'], gz_addresses: [] },
        { name: 'oximeter', addresses: ['fd00:1122:3344:101::4'], gz_addresses: [] },
      ]);
      expect(req!.dns_services).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without bootstrap_address the example is refused, naming the field', () => {
    expect(configError(readFileSync(EXAMPLE, 'utf8'))).toContain('request[0].bootstrap_address: missing (required)');
  });

  it('gz_addresses defaults to [], dns_service entries are kept, IPv6 sled_address is canonicalised', () => {
    const config = parseRssConfig(`
rack_subnet = "${RACK}"
[[request]]
bootstrap_address = "[fdb0::1]:12346"
sled_address = "[FD00:1122:3344:0101:0:0:0:1]:12345"
[[request.service]]
name = "nexus"
addresses = ["fd00:1122:3344:0101::3"]
[[request.dns_service]]
name = "extra-dns"
addresses = ["fd00:1122:3344:2::1"]
gz_addresses = ["fd00:1122:3344:2::2"]
`, 't');
    expect(config.requests[0]).toEqual({
      bootstrap_address: '[fdb0::1]:12346',
      sled_address: '[fd00:1122:3344:101::1]:12345',
      datasets: [],
      services: [{ name: 'nexus', addresses: ['fd00:1122:3344:101::3'], gz_addresses: [] }],
      dns_services: [{ name: 'extra-dns', addresses: ['fd00:1122:3344:2::1'], gz_addresses: ['fd00:1122:3344:2::2'] }],
    });
  });

  it('reports unknown fields and bad values by field path', () => {
    const msg = configError(`
rack_subnet = "${RACK}"
colour = "blue"
[[request]]
bootstrap_address = "127.0.0.1:1"
sled_adress = "127.0.0.1:2"
[[request.dataset]]
zpool_id = "not-a-uuid"
address = "[fd00:1122:3344:0101::6]:32345"
dataset_kind.type = "cockroachdb"
[[request.dataset]]
zpool_id = "d462a7f7-b628-40fe-80ff-4e4189e2d62b"
address = "[fd00:1122:3344:0101::6]:32345"
dataset_kind.type = "crucible"
dataset_kind.all_addresses = []
[[request.service]]
name = "nexus"
addresses = ["10.0.0.1"]
`);
    expect(msg).toContain('colour: unknown field');
    expect(msg).toContain('request[0].sled_adress: unknown field');
    expect(msg).toContain('request[0].dataset[0].zpool_id: "not-a-uuid" is not a valid uuid');
    expect(msg).toContain('request[0].dataset[0].dataset_kind.type: "cockroachdb" is not one of cockroach_db, crucible, clickhouse');
    expect(msg).toContain('request[0].dataset[1].dataset_kind.all_addresses: unknown field');
    expect(msg).toContain('request[0].service[0].addresses[0]: "10.0.0.1" is not a valid ipv6');
  });

  it('checks addresses, the rack subnet and duplicates after the schema', () => {
    const msg = configError(`
rack_subnet = "fd00:1122:3344:0101::"
[[request]]
bootstrap_address = "127.0.0.1"
[[request.dataset]]
zpool_id = "d462a7f7-b628-40fe-80ff-4e4189e2d62b"
address = "10.0.0.1:32345"
dataset_kind.type = "cockroach_db"
dataset_kind.all_addresses = ["[fd00::1]:99999"]
[[request.dataset]]
zpool_id = "d462a7f7-b628-40fe-80ff-4e4189e2d62b"
address = "[fd00:1122:3344:0101::7]:32345"
dataset_kind.type = "cockroach_db"
dataset_kind.all_addresses = []
[[request]]
bootstrap_address = "127.0.0.1:7"
sled_address = "127.0.0.1:0"
[[request]]
bootstrap_address = "127.0.0.1:7"
`);
    expect(msg).toContain('rack_subnet: fd00:1122:3344:0101:: has bits set below its /56 prefix (did you mean fd00:1122:3344:100::?)');
    expect(msg).toContain('request[0].bootstrap_address: "127.0.0.1" is not a socket address');
    expect(msg).toContain('request[0].dataset[0].address: "10.0.0.1:32345" is not an IPv6 socket address');
    expect(msg).toContain('request[0].dataset[0].dataset_kind.all_addresses[0]: "[fd00::1]:99999" is not a socket address: port 99999 is above 65535');
    expect(msg).toContain('request[0].dataset[1]: zpool d462a7f7-b628-40fe-80ff-4e4189e2d62b already has a cockroach_db dataset (request[0].dataset[0])');
    expect(msg).toContain('request[1].sled_address: "127.0.0.1:0" has port 0');
    expect(msg).toContain('request[2].bootstrap_address: 127.0.0.1:7 is also request[1].bootstrap_address');
  });

  it('refuses a rack subnet outside fd00::/8, an empty request list and bad TOML', () => {
    expect(configError('rack_subnet = "fc00:1122:3344:100::"\n[[request]]\nbootstrap_address = "127.0.0.1:1"\n'))
      .toContain('rack_subnet: fc00:1122:3344:100:: is not in fd00::/8');
    expect(configError(`rack_subnet = "${RACK}"\nrequest = []\n`)).toContain('request: must NOT have fewer than 1 items');
    expect(configError('rack_subnet = \n')).toContain('is not valid TOML');
  });
});

describe('IPv6 arithmetic', () => {
  it('round-trips and prints RFC 5952 text', () => {
    expect(formatIpv6(parseIpv6('fd00:1122:3344:0101::'))).toBe('fd00:1122:3344:101::');
    expect(canonicalIpv6('FD00:0:0:0:0:0:0:1')).toBe('fd00::1');
    expect(canonicalIpv6('::')).toBe('::');
    expect(canonicalIpv6('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(canonicalIpv6('1:0:2:3:4:5:6:7')).toBe('1:0:2:3:4:5:6:7');
    expect(canonicalIpv6('::ffff:1.2.3.4')).toBe('::ffff:102:304');
    expect(() => parseIpv6('1.2.3.4')).toThrow('not an IPv6 address');
  });
});

describe('the address plan', () => {
  it('sled i gets the rack /56 with byte 7 = i + 1', () => {
    const cases: Array<[number, string]> = [
      [0, 'fd00:1122:3344:101::'],
      [1, 'fd00:1122:3344:102::'],
      [14, 'fd00:1122:3344:10f::'],
      [15, 'fd00:1122:3344:110::'],
      [254, 'fd00:1122:3344:1ff::'],
    ];
    for (const [i, net] of cases) {
      expect(sledSubnet(RACK, i)).toBe(net);
      // What start_sled gets must satisfy the bootstrap contract's Ipv6Net pattern.
      expectBootstrapSchema('SledAgentRequest', { subnet: { net: formatSubnet(net) } });
    }
    expect(sledSubnet('fd12:3456:7800::', 0)).toBe('fd12:3456:7800:1::');
    expectBootstrapSchema('SledAgentRequest', { subnet: { net: formatSubnet(sledSubnet('fd12:3456:7800::', 0)) } });
    expect(() => sledSubnet(RACK, 255)).toThrow('not in 0..255');
    expect(defaultSledAddress(sledSubnet(RACK, 0))).toBe('[fd00:1122:3344:101::1]:12345');
  });

  it('internal DNS lives in the reserved rack: AZ /48 with the 4th group = i + 1, ::1 and ::2', () => {
    expect(dnsSubnet(RACK, 0)).toBe('fd00:1122:3344:1::');
    expect(internalDnsService(RACK, 0)).toEqual({
      name: 'internal-dns', addresses: ['fd00:1122:3344:1::1'], gz_addresses: ['fd00:1122:3344:1::2'],
    });
    expect(internalDnsService(RACK, 1).addresses).toEqual(['fd00:1122:3344:2::1']);
  });

  it('builds the plan for the example: subnet, default sled address, datasets, services, DNS on sled 0 only', () => {
    const config = parseRssConfig(exampleWith('127.0.0.1:12346'), 'example');
    const second = { ...config.requests[0]!, bootstrap_address: '127.0.0.1:12347', datasets: [], services: [] };
    const plan = buildPlan({ ...config, requests: [...config.requests, second] });
    expect(plan.rack_subnet).toBe('fd00:1122:3344:100::/56');
    expect(plan.sleds.map((s) => s.request.subnet.net)).toEqual(['fd00:1122:3344:101::/64', 'fd00:1122:3344:102::/64']);
    expect(plan.sleds.map((s) => s.sled_address)).toEqual(['[fd00:1122:3344:101::1]:12345', '[fd00:1122:3344:102::1]:12345']);
    expect(plan.sleds[0]!.datasets).toHaveLength(5);
    expect(plan.sleds[0]!.dns_services).toEqual([internalDnsService(RACK, 0)]);
    expect(plan.sleds[1]!.dns_services).toEqual([]);
    expect(plan.steps.map((s) => [s.name, s.completed_at, s.done])).toEqual([
      ['start_sleds', null, []], ['dns_services', null, []], ['datasets', null, []], ['services', null, []],
    ]);
    // A plan survives the trip through its own file check.
    expect(checkPlan(JSON.parse(JSON.stringify(plan)), 'p')).toEqual(plan);
    expect(() => checkPlan({ ...plan, steps: plan.steps.slice(1) }, 'p.json')).toThrow('RSS plan p.json is not a valid plan');
  });
});

describe('running RSS against fake agents', () => {
  let rack: FakeRack;
  let stateDir: string;

  beforeEach(async () => {
    rack = await startFakeRack(IDS);
    stateDir = mkdtempSync(join(tmpdir(), 'rss-state-'));
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await rack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  /** Three sleds: sled 0 has the example's datasets and services, sled 1 one crucible, sled 2 nothing. */
  function rackConfig(): RssConfig {
    const example = parseRssConfig(exampleWith(rack.bootstrap[0]!.address, rack.sleds[0]!.address), 'example');
    return {
      rack_subnet: example.rack_subnet,
      requests: [
        example.requests[0]!,
        {
          bootstrap_address: rack.bootstrap[1]!.address,
          sled_address: rack.sleds[1]!.address,
          datasets: [{ zpool_id: 'a462a7f7-b628-40fe-80ff-4e4189e2d62b', dataset_kind: { type: 'crucible' }, address: '[fd00:1122:3344:102::6]:32345' }],
          services: [{ name: 'oximeter', addresses: ['fd00:1122:3344:102::4'], gz_addresses: [] }],
          dns_services: [],
        },
        { bootstrap_address: rack.bootstrap[2]!.address, sled_address: rack.sleds[2]!.address, datasets: [], services: [], dns_services: [] },
      ],
    };
  }

  const planPath = () => join(stateDir, PLAN_FILE);
  const completedPath = () => join(stateDir, COMPLETED_PLAN_FILE);
  const readPlan = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as RssPlan;

  it('sends every call in the original order with contract-valid bodies, and reports each sled', async () => {
    const config = rackConfig();
    const result = await runRackSetup(config, stateDir, log, FAST);

    expect(rack.log.violations).toEqual([]);
    expect(rack.log.lines()).toEqual([
      'PUT /start_sled @bootstrap 0',
      'PUT /start_sled @bootstrap 1',
      'PUT /start_sled @bootstrap 2',
      'PUT /services @sled 0', // step 5: DNS
      'PUT /filesystem @sled 0',
      'PUT /filesystem @sled 0',
      'PUT /filesystem @sled 0',
      'PUT /filesystem @sled 0',
      'PUT /filesystem @sled 0',
      'PUT /filesystem @sled 1',
      'PUT /services @sled 0', // step 7: all services plus DNS
      'PUT /services @sled 1',
      'PUT /services @sled 2',
    ]);
    const bodies = rack.log.requests.map((r) => r.body);
    expect(bodies.slice(0, 3)).toEqual([
      { subnet: { net: 'fd00:1122:3344:101::/64' } },
      { subnet: { net: 'fd00:1122:3344:102::/64' } },
      { subnet: { net: 'fd00:1122:3344:103::/64' } },
    ]);
    const dns = { name: 'internal-dns', addresses: ['fd00:1122:3344:1::1'], gz_addresses: ['fd00:1122:3344:1::2'] };
    expect(bodies[3]).toEqual({ services: [dns] });
    expect(bodies.slice(4, 9)).toEqual(config.requests[0]!.datasets);
    expect(bodies[9]).toEqual(config.requests[1]!.datasets[0]);
    expect(bodies[10]).toEqual({ services: [...config.requests[0]!.services, dns] });
    expect(bodies[11]).toEqual({ services: config.requests[1]!.services });
    expect(bodies[12]).toEqual({ services: [] });

    expect(result.status).toBe('completed');
    expect(result.plan_path).toBe(completedPath());
    expect(result.sleds).toEqual(IDS.map((id, i) => ({
      index: i,
      subnet: `fd00:1122:3344:10${i + 1}::/64`,
      bootstrap_address: rack.bootstrap[i]!.address,
      sled_address: rack.sleds[i]!.address,
      id,
    })));

    // Step 8: the plan is renamed, every step recorded, no temp file left behind (the lock file
    // stays, unlocked).
    expect(existsSync(planPath())).toBe(false);
    const done = readPlan(completedPath());
    expect(done.steps.every((s) => s.completed_at !== null)).toBe(true);
    expect(done.steps.map((s) => s.done)).toEqual([
      ['sled 0', 'sled 1', 'sled 2'],
      ['sled 0'],
      ['sled 0 dataset 0', 'sled 0 dataset 1', 'sled 0 dataset 2', 'sled 0 dataset 3', 'sled 0 dataset 4', 'sled 1 dataset 0'],
      ['sled 0', 'sled 1', 'sled 2'],
    ]);
    expect(done.sleds.map((s) => s.id)).toEqual(IDS);
    expect(readdirSync(stateDir).sort()).toEqual([LOCK_FILE, COMPLETED_PLAN_FILE].sort());
  });

  it('takes a config file path too', async () => {
    const path = join(stateDir, 'config-rss.toml');
    writeFileSync(path, exampleWith(rack.bootstrap[0]!.address, rack.sleds[0]!.address));
    const result = await runRackSetup(path, join(stateDir, 'state'), log, FAST);
    expect(result.sleds).toEqual([{
      index: 0, subnet: 'fd00:1122:3344:101::/64', bootstrap_address: rack.bootstrap[0]!.address,
      sled_address: rack.sleds[0]!.address, id: IDS[0],
    }]);
    expect(rack.log.requests).toHaveLength(1 + 1 + 5 + 1);
    expect(rack.log.violations).toEqual([]);
  });

  it('persists the plan before the first start_sled is sent', async () => {
    const seen: Array<{ exists: boolean; plan?: RssPlan }> = [];
    rack.bootstrap[0]!.override = () => {
      const exists = existsSync(planPath());
      seen.push(exists ? { exists, plan: readPlan(planPath()) } : { exists });
      return undefined;
    };
    await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.exists).toBe(true);
    expect(seen[0]!.plan!.sleds.map((s) => s.request.subnet.net)).toHaveLength(3);
    expect(seen[0]!.plan!.steps.every((s) => s.completed_at === null && s.done.length === 0)).toBe(true);
  });

  it('does nothing when the plan is already complete', async () => {
    const first = await runRackSetup(rackConfig(), stateDir, log, FAST);
    rack.log.clear();
    const again = await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(rack.log.requests).toEqual([]);
    expect(again).toEqual({ ...first, status: 'already-complete' });
    const printed = formatRackSetupSummary(again).split('\n');
    expect(printed[0]).toBe('rack setup was already complete: 3 sleds (nothing sent)');
    expect(printed[1]).toBe(`sled 0: id ${IDS[0]} subnet fd00:1122:3344:101::/64 sled agent ${rack.sleds[0]!.address} bootstrap agent ${rack.bootstrap[0]!.address}`);
    expect(printed.at(-1)).toBe(`plan: ${completedPath()}`);
    expect(formatRackSetupSummary(first).split('\n')[0]).toBe('rack setup complete: 3 sleds');
  });

  it('a run that fails in the middle records its progress, and the next run resumes without re-sending', async () => {
    let failing = true;
    rack.sleds[1]!.override = (req) => (failing && req.url === '/filesystem'
      ? { status: 500, body: { request_id: 'r1', error_code: 'Internal', message: 'zpool a462a7f7 is not found' } }
      : undefined);

    const err = await runRackSetup(rackConfig(), stateDir, log, FAST).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RackSetupError);
    const failure = err as RackSetupError;
    expect(failure.sledIndex).toBe(1);
    expect(failure.step).toBe('datasets');
    expect(failure.status).toBe(500);
    expect(failure.attempts).toBe(3);
    expect(failure.message).toContain('sled 1 (sled agent at');
    expect(failure.message).toContain(`PUT http://${rack.sleds[1]!.address}/filesystem`);
    expect(failure.message).toContain('answered 500: Internal: zpool a462a7f7 is not found');
    expect(failure.message).toContain('gave up after 3 attempts');
    // Three tries at sled 1's dataset, then nothing more (step 7 never started).
    expect(rack.log.lines().slice(-3)).toEqual(Array(3).fill('PUT /filesystem @sled 1'));
    expect(rack.log.lines().filter((l) => l === 'PUT /services @sled 1')).toEqual([]);

    const half = readPlan(planPath());
    expect(existsSync(completedPath())).toBe(false);
    expect(half.sleds.map((s) => s.id)).toEqual(IDS);
    expect(half.steps.map((s) => [s.name, s.completed_at !== null, s.done])).toEqual([
      ['start_sleds', true, ['sled 0', 'sled 1', 'sled 2']],
      ['dns_services', true, ['sled 0']],
      ['datasets', false, ['sled 0 dataset 0', 'sled 0 dataset 1', 'sled 0 dataset 2', 'sled 0 dataset 3', 'sled 0 dataset 4']],
      ['services', false, []],
    ]);

    failing = false;
    rack.log.clear();
    const result = await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(rack.log.violations).toEqual([]);
    expect(rack.log.lines()).toEqual([
      'PUT /filesystem @sled 1',
      'PUT /services @sled 0',
      'PUT /services @sled 1',
      'PUT /services @sled 2',
    ]);
    expect(result.status).toBe('completed');
    expect(result.sleds.map((s) => s.id)).toEqual(IDS);
    expect(existsSync(planPath())).toBe(false);
  });

  it('resumes inside step 4: sleds already started are not asked again', async () => {
    rack.bootstrap[2]!.override = () => ({ status: 503, body: { request_id: 'x', message: 'not ready' } });
    await expect(runRackSetup(rackConfig(), stateDir, log, FAST)).rejects.toThrow(/sled 2 \(bootstrap agent at .*\).*answered 503: not ready/);
    expect(readPlan(planPath()).steps[0]!.done).toEqual(['sled 0', 'sled 1']);
    expect(readPlan(planPath()).sleds.map((s) => s.id)).toEqual([IDS[0], IDS[1], null]);

    rack.bootstrap[2]!.override = () => undefined;
    rack.log.clear();
    await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(rack.log.lines().filter((l) => l.startsWith('PUT /start_sled'))).toEqual(['PUT /start_sled @bootstrap 2']);
  });

  it('retries a transient failure and carries on', async () => {
    let failures = 2;
    rack.sleds[0]!.override = (req) => (req.url === '/services' && failures-- > 0 ? { status: 503, body: { request_id: 'x', message: 'busy' } } : undefined);
    const result = await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(result.status).toBe('completed');
    expect(rack.log.lines().slice(3, 6)).toEqual(Array(3).fill('PUT /services @sled 0'));
  });

  it('retries an agent that is not listening yet, then names it when retries run out', async () => {
    const config = rackConfig();
    await rack.sleds[2]!.stop();
    const err = await runRackSetup(config, stateDir, log, FAST).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RackSetupError);
    expect((err as RackSetupError).status).toBeNull();
    expect((err as Error).message).toMatch(/step 7.*failed for sled 2 \(sled agent at 127\.0\.0\.1:\d+\).*got no answer: .*ECONNREFUSED.*gave up after 3 attempts/);
    await rack.sleds[2]!.start(); // so afterEach can stop it
  });

  it('fails fast on a 4xx with the agent\'s message', async () => {
    rack.bootstrap[1]!.override = () => ({
      status: 400,
      body: { request_id: 'r7', error_code: 'InvalidRequest', message: 'sled agent already running on fd00:1122:3344:109::/64, not fd00:1122:3344:102::/64' },
    });
    const err = await runRackSetup(rackConfig(), stateDir, log, { ...FAST, retry: { attempts: 5, initialDelayMs: 1, maxDelayMs: 1 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RackSetupError);
    const failure = err as RackSetupError;
    expect(failure.status).toBe(400);
    expect(failure.attempts).toBe(1);
    expect(failure.sledIndex).toBe(1);
    expect(failure.message).toContain('step 4');
    expect(failure.message).toContain('sled 1 (bootstrap agent at');
    expect(failure.message).toContain('/start_sled');
    expect(failure.message).toContain('InvalidRequest: sled agent already running on fd00:1122:3344:109::/64, not fd00:1122:3344:102::/64');
    expect(failure.message).toContain('a 4xx is not retried');
    expect(rack.log.lines()).toEqual(['PUT /start_sled @bootstrap 0', 'PUT /start_sled @bootstrap 1']);
  });

  it('refuses a start_sled answer without an id', async () => {
    rack.bootstrap[0]!.override = () => ({ status: 200, body: { ident: 'x' } });
    await expect(runRackSetup(rackConfig(), stateDir, log, FAST)).rejects.toThrow('not a SledAgentResponse');
    expect(rack.log.requests).toHaveLength(1);
  });

  it('reports a corrupt plan file', async () => {
    writeFileSync(planPath(), '{"version": 1');
    await expect(runRackSetup(rackConfig(), stateDir, log, FAST)).rejects.toThrow(`RSS plan ${planPath()} is not JSON`);
    writeFileSync(planPath(), '{"version": 2}');
    await expect(runRackSetup(rackConfig(), stateDir, log, FAST)).rejects.toThrow(`RSS plan ${planPath()} is not a valid plan`);
    expect(rack.log.requests).toEqual([]);
  });

  it('refuses to run while another run holds the lock, naming the directory and its pid', async () => {
    const held = realLockDirectory(stateDir, 'rack setup', 'RSS state directory');
    try {
      expect(held.file).toBe(join(stateDir, LOCK_FILE));
      const err = await runRackSetup(rackConfig(), stateDir, log, FAST).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DirectoryInUseError);
      expect((err as Error).message).toContain(`RSS state directory ${stateDir} is in use by another rack setup (pid ${process.pid})`);
      expect(rack.log.requests).toEqual([]);
      expect(existsSync(planPath())).toBe(false);
    } finally {
      held.release();
    }
    expect((await runRackSetup(rackConfig(), stateDir, log, FAST)).status).toBe('completed');
  });

  it('is not blocked by the pid in a lock file nobody holds, nor by an older version\'s rss.lock', async () => {
    // Pids of live processes, as a killed run's may be by the next run (after a reboot, say):
    // this process's in the lock file, init's in an older version's pid file.
    writeFileSync(join(stateDir, LOCK_FILE), `${process.pid}\n`);
    writeFileSync(join(stateDir, 'rss.lock'), '1\n');
    const result = await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(result.status).toBe('completed');
    expect(rack.log.requests).toHaveLength(13);
  });

  it('of two runs starting together over a dead run\'s lock file, exactly one sets the rack up', async () => {
    // The second starts 0 to 11 file-system round trips after the first, across the window in
    // which a pid file let both through (each removing the dead run's lock, one the other's).
    const exited = spawnSync(process.execPath, ['-e', '']);
    for (let trips = 0; trips < 12; trips += 1) {
      const dir = join(stateDir, `trips-${trips}`);
      mkdirSync(dir);
      writeFileSync(join(dir, LOCK_FILE), `${exited.pid}\n`);
      rack.log.clear();
      const later = async () => {
        for (let t = 0; t < trips; t += 1) await stat(dir);
        return runRackSetup(rackConfig(), dir, log, FAST);
      };
      const runs = await Promise.allSettled([runRackSetup(rackConfig(), dir, log, FAST), later()]);
      expect(runs.map((r) => r.status).sort(), `${trips} round trips apart`).toEqual(['fulfilled', 'rejected']);
      expect(rack.log.requests, `${trips} round trips apart`).toHaveLength(13);
      expect(String((runs.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toMatch(/another rack setup \(pid \d+\)/);
    }
  });

  it('does not apply a plan again that another run completed while this one was taking the lock', async () => {
    const first = await runRackSetup(rackConfig(), stateDir, log, FAST);
    const completed = readFileSync(completedPath(), 'utf8');
    // Not there yet when this run looks first; renamed into place by the time it holds the lock.
    rmSync(completedPath());
    let locked = false;
    vi.mocked(lockDirectory).mockImplementationOnce((...args) => {
      writeFileSync(completedPath(), completed);
      locked = true;
      return realLockDirectory(...args);
    });
    rack.log.clear();
    const again = await runRackSetup(rackConfig(), stateDir, log, FAST);
    expect(locked).toBe(true);
    expect(rack.log.requests).toEqual([]);
    expect(again).toEqual({ ...first, status: 'already-complete' });
    expect(readFileSync(completedPath(), 'utf8')).toBe(completed);
    expect(existsSync(planPath())).toBe(false);
  });

  it('makes a new state directory durable in its parent', async () => {
    const fresh = join(stateDir, 'new', 'rss');
    const syncs = await spyOnDirSyncs();
    await runRackSetup(rackConfig(), fresh, log, FAST);
    for (const dir of [stateDir, join(stateDir, 'new')]) expect(await syncs.synced(dir)).toBe(true);
  });
});
