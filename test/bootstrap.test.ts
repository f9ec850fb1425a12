// The bootstrap agent over real HTTP: start_sled starts the sled agent, persists the request and
// is idempotent; a restart brings the sled agent back from the persisted request; request_share
// gives this sled's share only to its peers, and a threshold of peers rebuilds the rack secret.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { checkBootstrapConfig, type BootstrapConfig } from '../src/bootstrap/config.js';
import { startBootstrap, type RunningBootstrap } from '../src/bootstrap/server.js';
import { createRackSecret, writeShareFile } from '../src/bootstrap/trust-quorum.js';
import { expectSchema } from './support/contract.js';
import { ensureBody, testConfig, writeConfigToml } from './support/agent.js';
import { FakeNexus } from './support/fake-nexus.js';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const SUBNET = 'fd00:1122:3344:101::/64';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function fakeNexus() {
  const nexus = await FakeNexus.start();
  cleanup.push(() => nexus.close());
  return nexus;
}

function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'bootstrap-test-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function config(nexus: FakeNexus, dataDir: string, extra: Record<string, unknown> = {}): BootstrapConfig {
  return checkBootstrapConfig({
    id: randomUUID(),
    bind_address: '127.0.0.1:0',
    data_dir: dataDir,
    sled_address: '127.0.0.1:0',
    sled_agent: {
      nexus_address: nexus.address,
      sim_mode: 'explicit',
      storage: { ip: '127.0.0.1', zpools: [] },
      nexus: { timeout_ms: 2000, backoff_initial_ms: 5, backoff_max_ms: 50 },
    },
    ...extra,
  }, 'test');
}

async function start(cfg: BootstrapConfig) {
  const b = await startBootstrap(cfg, log);
  cleanup.push(() => b.close());
  return b;
}

async function call(b: RunningBootstrap, method: 'GET' | 'PUT', path: string, body: unknown) {
  const res = await request(`http://${b.address}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const json = await res.body.json() as any;
  if (res.statusCode >= 400) expectSchema('bootstrap-agent.json', 'Error', json);
  return { status: res.statusCode, body: json };
}

describe('PUT /start_sled', () => {
  it('starts the sled agent, persists the request, and is idempotent for the same subnet', async () => {
    const nexus = await fakeNexus();
    const cfg = config(nexus, tempDir());
    const b = await start(cfg);
    expect(b.agent.sledAgent).toBeNull();

    const res = await call(b, 'PUT', '/start_sled', { subnet: { net: SUBNET } });
    expect(res.status).toBe(200);
    expectSchema('bootstrap-agent.json', 'SledAgentResponse', res.body);
    expect(res.body).toEqual({ id: cfg.id });
    const sled = b.agent.sledAgent!;
    await nexus.waitFor((r) => r.url === `/sled_agents/${cfg.id}` && r.body.sa_address === sled.address);
    expect(JSON.parse(readFileSync(b.agent.requestPath, 'utf8'))).toEqual({ subnet: { net: SUBNET } });

    const again = await call(b, 'PUT', '/start_sled', { subnet: { net: 'fd00:1122:3344:0101:0000::/64' } });
    expect(again).toEqual({ status: 200, body: { id: cfg.id } });
    expect(b.agent.sledAgent).toBe(sled);
  });

  it('starts the real sled agent from sled_agent_config, on the sim host, under this sled id', async () => {
    const nexus = await fakeNexus();
    const dir = tempDir();
    const agentConfig = join(dir, 'sled-agent.toml');
    writeConfigToml(agentConfig, testConfig(dir, nexus.address));
    const cfg = config(nexus, join(dir, 'bootstrap'), { sled_agent_config: agentConfig });
    const b = await start(cfg);
    expect((await call(b, 'PUT', '/start_sled', { subnet: { net: SUBNET } })).status).toBe(200);
    const sled = b.agent.sledAgent!;
    await nexus.waitFor((r) => r.url === `/sled_agents/${cfg.id}` && r.body.sa_address === sled.address);
    // It is the real agent: /poke is not served, and an instance gets a zone.
    const id = randomUUID();
    const put = await request(`http://${sled.address}/instances/${id}`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running')),
    });
    expect(put.statusCode).toBe(200);
    await put.body.dump();
    await nexus.waitFor((r) => r.url === `/instances/${id}` && r.body.run_state === 'running');
    const poke = await request(`http://${sled.address}/instances/${id}/poke`, { method: 'POST' });
    expect(poke.statusCode).toBe(404);
    await poke.body.dump();
  });

  it('refuses a different subnet naming both, and a subnet that is not a /64', async () => {
    const nexus = await fakeNexus();
    const b = await start(config(nexus, tempDir()));
    expect((await call(b, 'PUT', '/start_sled', { subnet: { net: SUBNET } })).status).toBe(200);
    const moved = await call(b, 'PUT', '/start_sled', { subnet: { net: 'fd00:1122:3344:102::/64' } });
    expect(moved.status).toBe(409);
    expect(moved.body.message).toBe(
      'the sled agent is already running on subnet fd00:1122:3344:101::/64; refusing to move it to fd00:1122:3344:102::/64');
    const wide = await call(b, 'PUT', '/start_sled', { subnet: { net: 'fd00:1122:3344:101::/72' } });
    expect(wide.status).toBe(400);
    expect(wide.body.message).toMatch(/a sled's subnet is a \/64, not \/72/);
    const bad = await call(b, 'PUT', '/start_sled', { subnet: { net: '10.0.0.0/8' } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/body\/subnet\/net: "10\.0\.0\.0" is not an IPv6 address/);
  });

  it.each([
    ['fd00:1122:3344:100::/56', /^body\/subnet\/net: a sled's subnet is a \/64, not \/56 \("fd00:1122:3344:100::\/56"\); for example fd00:1122:3344:101::\/64$/],
    ['fd00:1122:3344:101::/48', /is a \/64, not \/48/],
    ['fd00:1122:3344:101::1/64', /"fd00:1122:3344:101::1\/64" has host bits set below \/64/],
    ['fc00:1122:3344:101::/64', /"fc00:1122:3344:101::\/64" is not in fd00::\/8/],
    ['fd00:1122:3344:101:/64', /"fd00:1122:3344:101:" is not an IPv6 address/],
    ['fd00::/64', /"fd00::\/64" is a sled subnet, but spelled in a form the API does not take: write all eight groups, or at least the first two followed by "::" at the end/],
    ['fd00::1122:0:0:0:0/64', /spelled in a form the API does not take/],
    ['subnet', /"subnet" is not an IPv6 subnet \(ADDRESS\/PREFIX\)/],
  ])('refuses %s with a 400 that says what a sled subnet is, not the contract\'s pattern', async (net, message) => {
    const nexus = await fakeNexus();
    const b = await start(config(nexus, tempDir()));
    const res = await call(b, 'PUT', '/start_sled', { subnet: { net } });
    expect(res.status).toBe(400);
    expect(res.body.error_code).toBe('InvalidRequest');
    expect(res.body.message).toMatch(message);
    expect(res.body.message).not.toMatch(/pattern|\^\(/);
    expect(b.agent.sledAgent).toBeNull();
  });

  it('still names a missing field the usual way', async () => {
    const nexus = await fakeNexus();
    const b = await start(config(nexus, tempDir()));
    const res = await call(b, 'PUT', '/start_sled', { subnet: {} });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('body/subnet/net is required');
  });

  it('serialises concurrent requests into one sled agent', async () => {
    const nexus = await fakeNexus();
    const b = await start(config(nexus, tempDir()));
    const results = await Promise.all([1, 2, 3].map(() => call(b, 'PUT', '/start_sled', { subnet: { net: SUBNET } })));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    await nexus.waitFor((r) => r.url.startsWith('/sled_agents/'));
    expect(nexus.requests.filter((r) => r.url.startsWith('/sled_agents/'))).toHaveLength(1);
  });

  it('explains a sled address this machine does not have, and persists nothing', async () => {
    const nexus = await fakeNexus();
    const cfg = config(nexus, tempDir());
    delete (cfg as { sled_address?: string }).sled_address;
    const b = await start(cfg);
    const res = await call(b, 'PUT', '/start_sled', { subnet: { net: SUBNET } });
    expect(res.status).toBe(500);
    expect(res.body.message).toMatch(/cannot start the sled agent on \[fd00:1122:3344:101::1\]:12345: .*set sled_address/);
    expect(() => readFileSync(b.agent.requestPath)).toThrow(/ENOENT/);
  });

  it('starts the sled agent from the persisted request after a restart, without RSS', async () => {
    const nexus = await fakeNexus();
    const dataDir = tempDir();
    const cfg = config(nexus, dataDir);
    const first = await startBootstrap(cfg, log);
    expect((await call(first, 'PUT', '/start_sled', { subnet: { net: SUBNET } })).status).toBe(200);
    await first.close();
    const registrations = nexus.requests.filter((r) => r.url === `/sled_agents/${cfg.id}`).length;

    const second = await start(cfg);
    expect(second.agent.sledAgent).not.toBeNull();
    await nexus.waitForCount((r) => r.url === `/sled_agents/${cfg.id}`, registrations + 1);
    // And it still knows its subnet.
    expect((await call(second, 'PUT', '/start_sled', { subnet: { net: 'fd00:1122:3344:102::/64' } })).status).toBe(409);
  });

  it('logs the sled agent it starts with one component key per line', async () => {
    const nexus = await fakeNexus();
    const lines: string[] = [];
    const b = await startBootstrap(config(nexus, tempDir(), {
      sled_agent: {
        nexus_address: nexus.address,
        sim_mode: 'explicit',
        storage: { ip: '127.0.0.1', zpools: [{ size: 2 ** 40 }] },
        nexus: { timeout_ms: 2000, backoff_initial_ms: 5, backoff_max_ms: 50 },
      },
    }), pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } }));
    cleanup.push(() => b.close());
    expect((await call(b, 'PUT', '/start_sled', { subnet: { net: SUBNET } })).status).toBe(200);
    await nexus.waitFor((r) => r.url.includes('/dataset/'));
    expect(lines.some((l) => l.includes('"component":"crucible-agent"'))).toBe(true);
    for (const line of lines) expect(line.match(/"component":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
  });

  it('refuses to start on a persisted request it cannot read', async () => {
    const nexus = await fakeNexus();
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'sled-agent-request.json'), '{"subnet": ');
    await expect(startBootstrap(config(nexus, dataDir), log)).rejects.toThrow(/sled-agent-request.json is not valid JSON/);
  });
});

describe('trust quorum', () => {
  async function rack(n: number, threshold: number) {
    const nexus = await fakeNexus();
    const { secret, distributions } = await createRackSecret(threshold, n);
    const ids = Array.from({ length: n }, () => randomUUID());
    const dirs = ids.map(() => tempDir());
    for (let i = 0; i < n; i++) await writeShareFile(join(dirs[i]!, 'share.json'), distributions[i]!);
    // Bind first so every agent knows its peers' addresses: start, note address, restart on it.
    const agents: RunningBootstrap[] = [];
    for (let i = 0; i < n; i++) {
      agents.push(await start(config(nexus, dirs[i]!, {
        id: ids[i],
        trust_quorum: { share_file: join(dirs[i]!, 'share.json'), peers: [], allowed_identities: ids.filter((_, j) => j !== i) },
      })));
    }
    return { secret, ids, dirs, agents, nexus };
  }

  it('gives this sled\'s share to a peer, 403 to a stranger, 400 to a malformed request', async () => {
    const { ids, agents } = await rack(3, 2);
    const [a] = agents;
    const ok = await call(a!, 'GET', '/request_share', { identity: [...new TextEncoder().encode(ids[1]!)] });
    expect(ok.status).toBe(200);
    expectSchema('bootstrap-agent.json', 'ShareResponse', ok.body);
    expect(ok.body.shared_secret.length).toBeGreaterThan(16);
    const stranger = await call(a!, 'GET', '/request_share', { identity: [...new TextEncoder().encode(randomUUID())] });
    expect(stranger.status).toBe(403);
    expect(stranger.body.message).toMatch(/is not a trust-quorum peer of this sled/);
    const self = await call(a!, 'GET', '/request_share', { identity: [...new TextEncoder().encode(ids[0]!)] });
    expect(self.status).toBe(403);
    const bad = await call(a!, 'GET', '/request_share', { identity: [256] });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/body\/identity\/0 must be a valid uint8/);
  });

  it('answers 404 when the sled holds no share', async () => {
    const nexus = await fakeNexus();
    const b = await start(config(nexus, tempDir()));
    const res = await call(b, 'GET', '/request_share', { identity: [1] });
    expect(res.status).toBe(404);
    expect(res.body.message).toBe('this sled holds no trust-quorum share');
  });

  it('rebuilds the rack secret from a threshold of peers, and refuses below it', async () => {
    const { secret, ids, dirs, agents } = await rack(3, 3);
    // A fourth process for sled 0, configured with its peers' real addresses.
    const nexus = await fakeNexus();
    const cfg = config(nexus, tempDir(), {
      id: ids[0],
      trust_quorum: { share_file: join(dirs[0]!, 'share.json'), peers: [agents[1]!.address, agents[2]!.address], allowed_identities: [] },
    });
    const sled0 = await start(cfg);
    const result = await sled0.agent.establishQuorum(2_000);
    expect(Buffer.from(result.secret).equals(Buffer.from(secret))).toBe(true);
    expect(result.used.sort()).toEqual([agents[1]!.address, agents[2]!.address].sort());

    await agents[2]!.close();
    await expect(sled0.agent.establishQuorum(2_000)).rejects.toThrow(/have 2 valid shares, need 3/);
  });
});
