// Requests a fuzzer sent both agents over HTTP on 2026-12-07, each of which was a 200 that failed
// later, a 500, or a state kept for good with nothing behind it: each is now a 4xx with the
// omicron envelope, nothing is kept, and the agent goes on serving.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { expectSchema } from './support/contract.js';
import { ensureBody, realRuntime, startTestAgent, type TestAgent } from './support/agent.js';
import { nic, rule, v2pBody, VNI_1 } from './support/networking.js';
import { startTestSim, type TestSim } from './support/sim.js';

type Case = [what: string, method: string, path: string, body?: string];

const POOL_ID = 'd462a7f7-b628-40fe-80ff-4e4189e2d62b';
const json = (value: unknown) => JSON.stringify(value);
const instance = () => `/instances/${randomUUID()}`;

/** A Crucible volume `depth` sub-volumes deep, as text: JSON.stringify itself runs out of stack on it. */
function deepVolumeBody(depth: number): string {
  const volume = `${'{"type":"volume","block_size":512,"sub_volumes":['.repeat(depth)}{"type":"file","block_size":512,"path":"/x"}${']}'.repeat(depth)}`;
  const disk = `{"name":"d","slot":0,"read_only":false,"device":"nvme","gen":1,"volume_construction_request":${volume}}`;
  return json(ensureBody('stopped')).replace('"disks":[]', `"disks":[${disk}]`);
}

/** 1.7 KB on the wire; every port, TCP and UDP, from 100 subnets: 13 million port values unrolled. */
const hugeRule = () => rule({ filter_hosts: Array.from({ length: 100 }, (_, i) => `10.0.${i}.0/24`), filter_ports: ['1-65535'], filter_protocols: ['TCP', 'UDP'] });

/** What both agents refuse the same way. */
function sharedCases(): Case[] {
  return [
    ['JSON nested 200,000 deep', 'PUT', instance(), `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
    ['a Crucible volume 3,000 sub-volumes deep', 'PUT', instance(), deepVolumeBody(3000)],
    ['an IPv6 guest NIC', 'PUT', instance(), json({ ...ensureBody('running'), initial: { ...ensureBody('running').initial, nics: [nic({ ip: 'fd00:aaaa::5', subnet: 'fd00:aaaa::/64' })] } })],
    ['a guest subnet with no room for its gateway', 'PUT', instance(), json({ ...ensureBody('running'), initial: { ...ensureBody('running').initial, nics: [nic({ ip: '172.30.0.5', subnet: '172.30.0.4/31' })] } })],
    ['a guest subnet with host bits set', 'PUT', instance(), json({ ...ensureBody('running'), initial: { ...ensureBody('running').initial, nics: [nic({ subnet: '172.30.0.5/22' })] } })],
    ['an IPv6 source NAT address', 'PUT', instance(),
      json({ ...ensureBody('running'), initial: { ...ensureBody('running').initial, nics: [nic()], source_nat: { ip: 'fd00::31', first_port: 16384, last_port: 32767 } } })],
    ['an IPv6 V2P address', 'PUT', `/v2p/${randomUUID()}`, json(v2pBody({ virtual_ip: 'fd00::5' }))],
    ['a dataset address that is not one', 'PUT', '/filesystem', json({ zpool_id: POOL_ID, dataset_kind: { type: 'clickhouse' }, address: 'x' })],
    ['a CockroachDB peer that is not an address', 'PUT', '/filesystem',
      json({ zpool_id: POOL_ID, dataset_kind: { type: 'cockroach_db', all_addresses: ['nope'] }, address: '[fd00:1122:3344:101::42]:32221' })],
    ['a method the path does not take', 'DELETE', instance()],
    ['VPC firewall rules that unroll past the bound', 'PUT', `/vpc/${randomUUID()}/firewall/rules`, json({ vni: VNI_1, rules: [hugeRule()] })],
    ['instance firewall rules that unroll past the bound', 'PUT', instance(),
      json({ ...ensureBody('running'), initial: { ...ensureBody('running').initial, firewall_rules: [hugeRule()] } })],
  ];
}

/** What only the sled agent refuses: the simulated one, as omicron's, runs no VM to be wrong about. */
function agentCases(): Case[] {
  return [
    ['a new instance Nexus believes running, asked to run', 'PUT', instance(), json(ensureBody('running', realRuntime({ run_state: 'running', gen: 5 })))],
    ['a new instance Nexus believes rebooting, asked to reboot', 'PUT', instance(), json(ensureBody('reboot', realRuntime({ run_state: 'rebooting', gen: 5 })))],
    ['an IPv4 Propolis address', 'PUT', instance(), json(ensureBody('running', realRuntime({ propolis_addr: '127.0.0.1:12400' })))],
    ['a Propolis address outside the sled\'s /64', 'PUT', instance(), json(ensureBody('running', realRuntime({ propolis_addr: '[fd00:1122:3344:102::10]:12400' })))],
  ];
}

async function expectRefused(url: string, [what, method, path, body]: Case): Promise<void> {
  const res = await fetch(`${url}${path}`, { method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  expect(res.status, `${what}: ${text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${what}: ${text.slice(0, 300)}`).toBeLessThan(500);
  const envelope = JSON.parse(text);
  expectSchema('sled-agent.json', 'Error', envelope);
  expect(envelope.request_id).toBe(res.headers.get('x-request-id'));
}

let agent: TestAgent | undefined;
let sim: TestSim | undefined;
afterEach(async () => {
  await agent?.close();
  await sim?.close();
  agent = undefined;
  sim = undefined;
});

describe('hostile and malformed requests', () => {
  it('the sled agent answers each with a 4xx and the envelope, keeps nothing, and stays up', async () => {
    agent = await startTestAgent();
    const url = `http://${agent.running.address}`;
    for (const c of [...sharedCases(), ...agentCases()]) await expectRefused(url, c);
    expect(agent.running.agent.instances.size).toBe(0);
    expect((await agent.request('GET', '/health')).status).toBe(200);
  });

  it('the simulated sled agent answers each it shares with a 4xx and the envelope, keeps nothing, and stays up', async () => {
    sim = await startTestSim({ zpools: [{ id: POOL_ID, size: 1 << 30 }] });
    for (const c of sharedCases()) await expectRefused(sim.url, c);
    expect((await sim.request('GET', '/instances')).body).toEqual([]);
    expect(sim.sim.agent.storage.requested).toEqual([]);
    expect((await sim.request('GET', '/health')).status).toBe(200);
  });

  it('refuses a dataset address no zone could take, as PUT /services does, and takes the corrected one after it', async () => {
    agent = await startTestAgent();
    const cases = [
      [{ type: 'clickhouse' }, '[::1]:8123', 'address', /the loopback address/],
      [{ type: 'clickhouse' }, '[ff02::1]:8123', 'address', /a multicast address/],
      [{ type: 'cockroach_db', all_addresses: ['[fe80::1]:32221'] }, '[fd00:1122:3344:101::3]:32221', 'dataset_kind.all_addresses', /a link-local address/],
    ] as const;
    for (const [kind, address, field, what] of cases) {
      const res = await agent.request('PUT', '/filesystem', { zpool_id: POOL_ID, dataset_kind: kind, address });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.message).toMatch(new RegExp(`^${field.replace(/\./g, '\\.')} "`));
      expect(res.body.message).toMatch(what);
    }
    const fixed = await agent.request('PUT', '/filesystem', { zpool_id: POOL_ID, dataset_kind: { type: 'clickhouse' }, address: '[fd00:1122:3344:101::9]:8123' });
    expect(fixed.status, JSON.stringify(fixed.body)).toBe(204);
  });

  it('refuses an address with a zone (scope) id, naming the field, and takes the corrected one after it', async () => {
    agent = await startTestAgent();
    const scoped = [
      ['PUT', instance(), ensureBody('running', realRuntime({ propolis_addr: '[fd00:1122:3344:101::5%1]:12400' })), 'initial.runtime.propolis_addr'],
      ['PUT', '/filesystem', { zpool_id: POOL_ID, dataset_kind: { type: 'clickhouse' }, address: '[fd00:1122:3344:101::9%foo]:32345' }, 'address'],
      ['PUT', '/filesystem', { zpool_id: POOL_ID, dataset_kind: { type: 'cockroach_db', all_addresses: ['[fd00:1122:3344:101::3%2]:32221'] }, address: '[fd00:1122:3344:101::3]:32221' },
        'dataset_kind.all_addresses'],
    ] as const;
    for (const [method, path, body, field] of scoped) {
      const res = await agent.request(method, path, body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.message).toMatch(new RegExp(`^${field.replace(/\./g, '\\.')} "[^"]+%[^"]+" has a zone \\(scope\\) id`));
    }
    expect(agent.running.agent.instances.size).toBe(0);
    const fixed = await agent.request('PUT', '/filesystem', { zpool_id: POOL_ID, dataset_kind: { type: 'clickhouse' }, address: '[fd00:1122:3344:101::9]:32345' });
    expect(fixed.status, JSON.stringify(fixed.body)).toBe(204);

    sim = await startTestSim({ zpools: [{ id: POOL_ID, size: 1 << 30 }] });
    const res = await sim.request('PUT', '/filesystem', scoped[1][2]);
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/^address "\[fd00:1122:3344:101::9%foo\]:32345" has a zone \(scope\) id/);
    expect(sim.sim.agent.storage.requested).toEqual([]);
  });
});
