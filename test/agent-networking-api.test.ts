// The real agent's guest-networking API over real HTTP on the simulated host: the endpoints of
// sled-agent-networking.json and GET /v2p answer as the contract says, and every bad body is a
// 400 naming the field, refused before anything reaches the host. What the ports do with the
// rules and mappings is the PortManager's, tested with it.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLedgerFile } from '../src/ledger.js';
import { expectSchema } from './support/contract.js';
import { holdLedgerWrites } from './support/ledger-faults.js';
import { ensureBody, nexusSees, realRuntime, startTestAgent, type TestAgent } from './support/agent.js';
import { networkedHardware, nic, rule, v2pBody, VNI_1, VNI_2 } from './support/networking.js';

let t: TestAgent;
beforeEach(async () => { t = await startTestAgent(); });
afterEach(async () => { await t.close(); });

function ensureWith(fields: Record<string, unknown>) {
  const body = ensureBody('running', realRuntime());
  return { ...body, initial: { ...body.initial, ...fields } };
}

async function refused(method: string, path: string, body: unknown) {
  const res = await t.request(method, path, body);
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expectSchema('sled-agent.json', 'Error', res.body);
  expect(res.body.error_code).toBe('InvalidRequest');
  return res.body.message as string;
}

describe('PUT /instances/{id} with guest networking', () => {
  const second = { name: 'net1', ip: '172.30.0.6', mac: 'A8:40:25:F0:00:02', primary: false, slot: 1 };
  it.each([
    ['a MAC outside the guest range', { nics: [nic({ mac: 'A8:40:25:FF:00:01' })] }, 'body/initial/nics/0/mac A8:40:25:FF:00:01 is outside the guest MAC range'],
    ['a VNI above 2^24-1', { nics: [nic({ vni: 16777216 })] }, 'body/initial/nics/0/vni is 16777216'],
    ['a NIC IP outside its subnet', { nics: [nic({ ip: '10.0.0.1' })] }, 'body/initial/nics/0/ip 10.0.0.1 is outside its subnet 172.30.0.0/22'],
    ['two NICs with one slot', { nics: [nic(), nic({ ...second, slot: 0 })] }, 'body/initial/nics/1/slot 0 is also the slot of nics/0'],
    ['two primary NICs', { nics: [nic(), nic({ ...second, primary: true })] }, 'body/initial/nics/1/primary: nics/0 is primary too'],
    ['a source NAT block of the wrong size', { source_nat: { ip: '192.168.1.31', first_port: 0, last_port: 16384 } }, 'body/initial/source_nat ports 0-16384 are not a block of 16384'],
    ['a port range "80-22"', { firewall_rules: [rule({ filter_ports: ['80-22'] })] }, 'body/initial/firewall_rules/0/filter_ports/0 "80-22"'],
    ['a port "70000"', { firewall_rules: [rule({ filter_ports: ['70000'] })] }, 'body/initial/firewall_rules/0/filter_ports/0 "70000"'],
  ])('refuses %s with a 400 naming the field, and nothing reaches the host', async (_what, fields, message) => {
    expect(await refused('PUT', `/instances/${randomUUID()}`, ensureWith({ ...networkedHardware(), ...fields }))).toContain(message);
    expect(await t.host.zones.list()).toEqual([]);
    expect(await t.host.links.listVnics()).not.toContainEqual(expect.objectContaining({ name: expect.stringMatching(/^vopte/) }));
  });
});

describe('PUT /vpc/{vpc_id}/firewall/rules', () => {
  it('takes a VPC\'s rules with or without vni, when the targets name its VNI', async () => {
    expect((await t.request('PUT', `/vpc/${randomUUID()}/firewall/rules`, { vni: VNI_1, rules: [rule()] })).status).toBe(204);
    expect((await t.request('PUT', `/vpc/${randomUUID()}/firewall/rules`, { rules: [rule({ targets: [nic({ vni: VNI_2 })] })] })).status).toBe(204);
  });

  it.each([
    ['no vni and no target', { rules: [rule()] }, /^body\/vni is needed/],
    ['no vni and targets in two VPCs', { rules: [rule({ targets: [nic()] }), rule({ targets: [nic({ vni: VNI_2 })] })] }, /^body\/vni is needed/],
    ['a target in another VPC than vni', { vni: VNI_2, rules: [rule({ targets: [nic()] })] }, /^body\/rules\/0\/targets\/0\/vni is/],
    ['a VNI above 2^24-1', { vni: 16777216, rules: [] }, /^body\/vni is 16777216/],
    ['a port "70000"', { vni: VNI_1, rules: [rule({ filter_ports: ['70000'] })] }, /^body\/rules\/0\/filter_ports\/0 "70000"/],
  ])('refuses %s with a 400 naming the field', async (_what, body, message) => {
    expect(await refused('PUT', `/vpc/${randomUUID()}/firewall/rules`, body)).toMatch(message);
  });
});

describe('V2P mappings', () => {
  it('sets, lists and really deletes a mapping to another sled', async () => {
    const id = randomUUID();
    expect((await t.request('PUT', `/v2p/${id}`, v2pBody())).status).toBe(204);
    const listed = await t.request('GET', '/v2p');
    expect(listed.status).toBe(200);
    expect(listed.body).toContainEqual({ interface_id: id, ...v2pBody() });
    expect((await t.request('DELETE', `/v2p/${id}`, v2pBody())).status).toBe(204);
    expect((await t.request('GET', '/v2p')).body).not.toContainEqual(expect.objectContaining({ interface_id: id }));
  });

  it('answers a repeated delete only once the first one is recorded, and refuses both when it is not', async () => {
    const id = randomUUID();
    expect((await t.request('PUT', `/v2p/${id}`, v2pBody())).status).toBe(204);
    const ports = t.running.agent.ports;
    const deleteV2P = ports.deleteV2P.bind(ports);
    let calls = 0;
    let second!: () => void;
    const repeated = new Promise<void>((resolve) => { second = resolve; });
    ports.deleteV2P = (interfaceId, body) => {
      const answer = deleteV2P(interfaceId, body);
      if (++calls === 2) second();
      return answer;
    };
    const writes = holdLedgerWrites();
    try {
      const first = t.request('DELETE', `/v2p/${id}`, v2pBody());
      const again = t.request('DELETE', `/v2p/${id}`, v2pBody());
      await repeated;
      writes.release();
      expect((await first).status).toBe(500);
      expect((await again).status).toBe(500);
    } finally {
      writes.restore();
    }
    // Nexus's retry deletes it for real: on disk too.
    expect((await t.request('DELETE', `/v2p/${id}`, v2pBody())).status).toBe(204);
    const onDisk = readLedgerFile(join(t.config.data_dir, 'ports.json')) as { v2p: Record<string, unknown> };
    expect(onDisk.v2p[id]).toBeUndefined();
  });

  it('keeps a mapping the host failed to clear, so Nexus\'s retried delete clears it', async () => {
    const id = randomUUID();
    expect((await t.request('PUT', `/v2p/${id}`, v2pBody())).status).toBe(204);
    const network = t.host.network;
    const clear = network.clearV2P.bind(network);
    let failing = true;
    network.clearV2P = (m) => (failing ? Promise.reject(Object.assign(new Error('opteadm clear-v2p: EIO'), { code: 'EIO' })) : clear(m));
    expect((await t.request('DELETE', `/v2p/${id}`, v2pBody())).status).toBe(500);
    failing = false;
    expect(await t.host.network.dumpV2P()).toContainEqual(expect.objectContaining({ virtualIp: '172.30.0.6' }));
    const onDisk = readLedgerFile(join(t.config.data_dir, 'ports.json')) as { v2p: Record<string, unknown> };
    expect(onDisk.v2p[id]).toBeDefined();
    expect((await t.request('DELETE', `/v2p/${id}`, v2pBody())).status).toBe(204);
    expect(await t.host.network.dumpV2P()).not.toContainEqual(expect.objectContaining({ virtualIp: '172.30.0.6' }));
  });

  it('reaches the host\'s V2P table, and a delete naming a guest of this sled leaves its port\'s own entry', async () => {
    const id = randomUUID();
    await t.request('PUT', `/instances/${id}`, ensureWith(networkedHardware([nic()])));
    await nexusSees(t.nexus, id, 'running');
    const local = { virtualIp: '172.30.0.5', vni: VNI_1 };
    expect(await t.host.network.dumpV2P()).toContainEqual(expect.objectContaining(local));

    const remote = randomUUID();
    expect((await t.request('PUT', `/v2p/${remote}`, v2pBody())).status).toBe(204);
    expect(await t.host.network.dumpV2P()).toContainEqual(expect.objectContaining({ virtualIp: '172.30.0.6', physicalHostIp: 'fd00:1122:3344:102::1' }));
    expect((await t.request('DELETE', `/v2p/${remote}`, v2pBody())).status).toBe(204);
    expect(await t.host.network.dumpV2P()).not.toContainEqual(expect.objectContaining({ virtualIp: '172.30.0.6' }));

    const ownBody = v2pBody({ virtual_ip: '172.30.0.5', virtual_mac: 'A8:40:25:F0:00:01', physical_host_ip: 'fd00:1122:3344:101::1' });
    expect((await t.request('DELETE', `/v2p/${randomUUID()}`, ownBody)).status).toBe(204);
    expect(await t.host.network.dumpV2P()).toContainEqual(expect.objectContaining(local));
  });

  it.each([
    ['PUT', 'a virtual MAC outside the guest range', v2pBody({ virtual_mac: 'A8:40:25:FF:00:02' }), 'body/virtual_mac A8:40:25:FF:00:02 is outside'],
    ['PUT', 'a VNI above 2^24-1', v2pBody({ vni: 16777216 }), 'body/vni is 16777216'],
    ['DELETE', 'an IPv4 physical host', v2pBody({ physical_host_ip: '10.0.0.1' }), 'body/physical_host_ip must be a valid ipv6'],
    ['DELETE', 'an interface id that is not a uuid', v2pBody(), 'params/interface_id must be a valid uuid'],
  ])('%s refuses %s with a 400 naming the field', async (method, what, body, message) => {
    const path = what.startsWith('an interface id') ? '/v2p/net0' : `/v2p/${randomUUID()}`;
    expect(await refused(method, path, body)).toContain(message);
  });
});
