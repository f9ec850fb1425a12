// The simulated sled agent's guest-networking API over real HTTP: InstanceHardware of both
// shapes, firewall rules per VPC, V2P mappings that can be listed and really deleted, and every
// refusal a 400 that names the field in omicron's error envelope.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectSchema } from './support/contract.js';
import { defaultVpcRules, networkedHardware, nic, rule, v2pBody, VNI_1, VNI_2 } from './support/networking.js';
import { instanceEnsure, startTestSim, type TestSim } from './support/sim.js';

let t: TestSim;
beforeEach(async () => { t = await startTestSim(); });
afterEach(async () => { await t.close(); });

function ensureWith(fields: Record<string, unknown>) {
  const body = instanceEnsure(t.config.id, 'running');
  return { ...body, initial: { ...body.initial, ...fields } };
}

async function refused(method: string, path: string, body: unknown) {
  const res = await t.request(method, path, body);
  expect(res.status, res.text).toBe(400);
  expectSchema('sled-agent.json', 'Error', res.body);
  expect(res.body.error_code).toBe('InvalidRequest');
  return res.body.message as string;
}

describe('PUT /instances/{id} with guest networking', () => {
  it('accepts the networking shape (56a586d367), in Nexus\'s default VPC subnet 172.30.0.0/22', async () => {
    const body = ensureWith(networkedHardware([nic(), nic({ name: 'net1', ip: '172.30.0.6', mac: 'A8:40:25:F0:00:02', primary: false, slot: 1 })]));
    // The fixture is the contract's shape (InstanceEnsureBody itself has a schema ajv cannot compile).
    const { nics, source_nat, firewall_rules } = body.initial as any;
    for (const n of nics) expectSchema('sled-agent-combined.json', 'NetworkInterface', n);
    expectSchema('sled-agent-combined.json', 'SourceNatConfig', source_nat);
    for (const r of firewall_rules) expectSchema('sled-agent-combined.json', 'VpcFirewallRule', r);
    const res = await t.request('PUT', `/instances/${randomUUID()}`, body);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ run_state: 'starting', gen: 2 });
  });

  it('accepts a body of the pinned shape with a NIC (no primary, no external addressing, no rules)', async () => {
    const { primary: _, ...pinnedNic } = nic({ subnet: '192.168.1.0/24', ip: '192.168.1.5' });
    const body = ensureWith({ nics: [pinnedNic] });
    expectSchema('sled-agent.json', 'NetworkInterface', pinnedNic);
    const res = await t.request('PUT', `/instances/${randomUUID()}`, body);
    expect(res.status, res.text).toBe(200);
  });

  const second = { name: 'net1', ip: '172.30.0.6', mac: 'A8:40:25:F0:00:02', primary: false, slot: 1 };
  it.each([
    ['a MAC outside the guest range', { nics: [nic({ mac: 'A8:40:25:FF:00:01' })] }, 'body/initial/nics/0/mac A8:40:25:FF:00:01 is outside the guest MAC range A8:40:25:F0:00:00-A8:40:25:FE:FF:FF'],
    ['a VNI above 2^24-1', { nics: [nic({ vni: 16777216 })] }, 'body/initial/nics/0/vni is 16777216'],
    ['a NIC IP outside its subnet', { nics: [nic({ ip: '172.30.9.1' })] }, 'body/initial/nics/0/ip 172.30.9.1 is outside its subnet 172.30.0.0/22'],
    ['two NICs with one slot', { nics: [nic(), nic({ ...second, slot: 0 })] }, 'body/initial/nics/1/slot 0 is also the slot of nics/0'],
    ['two primary NICs', { nics: [nic(), nic({ ...second, primary: true })] }, 'body/initial/nics/1/primary: nics/0 is primary too'],
    ['an unaligned source NAT block', { source_nat: { ip: '192.168.1.31', first_port: 100, last_port: 16483 } }, 'body/initial/source_nat ports 100-16483 are not a block of 16384 ports'],
    ['a port range "80-22"', { firewall_rules: [rule({ filter_ports: ['80-22'] })] }, 'body/initial/firewall_rules/0/filter_ports/0 "80-22" has its first port above its last'],
    ['a port "70000"', { firewall_rules: [rule({ filter_ports: ['70000'] })] }, 'body/initial/firewall_rules/0/filter_ports/0 "70000" names a port above 65535'],
    ['a subnet prefix the contract refuses', { nics: [nic({ subnet: '172.30.0.0/33' })] }, 'body/initial/nics/0/subnet'],
  ])('refuses %s with a 400 naming the field', async (_what, fields, message) => {
    const id = randomUUID();
    expect(await refused('PUT', `/instances/${id}`, ensureWith({ ...networkedHardware(), ...fields }))).toContain(message);
    // Refused before anything was made: the sled does not know the instance.
    expect((await t.request('POST', `/instances/${id}/poke`)).status).toBe(404);
  });
});

describe('PUT /vpc/{vpc_id}/firewall/rules', () => {
  it('replaces the rules of that VPC only, taking the VNI from the body or the rules\' targets', async () => {
    const vpc1 = randomUUID();
    const vpc2 = randomUUID();
    const nic2 = nic({ vni: VNI_2, subnet: '172.30.4.0/22', ip: '172.30.4.5' });
    expect((await t.request('PUT', `/vpc/${vpc1}/firewall/rules`, { vni: VNI_1, rules: defaultVpcRules([]) })).status).toBe(204);
    expect((await t.request('PUT', `/vpc/${vpc2}/firewall/rules`, { rules: defaultVpcRules([nic2], '172.30.4.0/22') })).status).toBe(204);
    expect(t.sim.agent.networking.firewallRules(vpc1)).toEqual({ vni: VNI_1, rules: defaultVpcRules([]) });
    expect(t.sim.agent.networking.firewallRules(vpc2)?.vni).toBe(VNI_2);

    const http = rule({ filter_ports: ['80'], targets: [nic()] });
    expect((await t.request('PUT', `/vpc/${vpc1}/firewall/rules`, { rules: [http] })).status).toBe(204);
    expect(t.sim.agent.networking.firewallRules(vpc1)).toEqual({ vni: VNI_1, rules: [http] });
    expect(t.sim.agent.networking.firewallRules(vpc2)).toEqual({ vni: VNI_2, rules: defaultVpcRules([nic2], '172.30.4.0/22') });
  });

  it('says vni is needed when the rules do not name exactly one VNI, and changes nothing', async () => {
    const vpc = randomUUID();
    expect(await refused('PUT', `/vpc/${vpc}/firewall/rules`, { rules: defaultVpcRules([]) })).toMatch(/^body\/vni is needed/);
    expect(await refused('PUT', `/vpc/${vpc}/firewall/rules`, { rules: [rule({ targets: [nic()] }), rule({ targets: [nic({ vni: VNI_2 })] })] }))
      .toMatch(/^body\/vni is needed: the rules' targets name 2 VNIs/);
    expect(t.sim.agent.networking.firewallRules(vpc)).toBeUndefined();
  });

  it.each([
    ['a VNI above 2^24-1', { vni: 16777216, rules: [] }, 'body/vni is 16777216'],
    ['a target in another VPC', { vni: VNI_2, rules: [rule({ targets: [nic()] })] }, `body/rules/0/targets/0/vni is ${VNI_1}, but the rules are for VNI ${VNI_2}`],
    ['a port range "80-22"', { vni: VNI_1, rules: [rule({ filter_ports: ['80-22'] })] }, 'body/rules/0/filter_ports/0 "80-22"'],
    ['a target MAC outside the guest range', { vni: VNI_1, rules: [rule({ targets: [nic({ mac: '02:00:00:00:00:01' })] })] }, 'body/rules/0/targets/0/mac 02:00:00:00:00:01 is outside'],
    ['an unknown protocol', { vni: VNI_1, rules: [rule({ filter_protocols: ['SCTP'] })] }, 'body/rules/0/filter_protocols/0 must be one of: TCP, UDP, ICMP'],
    ['a vpc_id that is not a uuid', null, 'params/vpc_id must be a valid uuid'],
  ])('refuses %s with a 400 naming the field', async (_what, body, message) => {
    const path = body === null ? '/vpc/default/firewall/rules' : `/vpc/${randomUUID()}/firewall/rules`;
    expect(await refused('PUT', path, body ?? { vni: VNI_1, rules: [] })).toContain(message);
  });
});

describe('V2P mappings', () => {
  it('sets, lists, moves and really deletes a mapping; a delete of what is not held is a no-op', async () => {
    const a = '00000000-0000-4000-8000-00000000000a';
    const b = '00000000-0000-4000-8000-00000000000b';
    expect((await t.request('GET', '/v2p')).body).toEqual([]);
    expect((await t.request('PUT', `/v2p/${a}`, v2pBody())).status).toBe(204);
    expect((await t.request('PUT', `/v2p/${b}`, v2pBody({ virtual_ip: '172.30.0.7', virtual_mac: 'A8:40:25:F0:00:03' }))).status).toBe(204);
    expect((await t.request('PUT', `/v2p/${a}`, v2pBody())).status).toBe(204); // idempotent
    const listed = await t.request('GET', '/v2p');
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual([
      { interface_id: a, ...v2pBody() },
      { interface_id: b, ...v2pBody({ virtual_ip: '172.30.0.7', virtual_mac: 'A8:40:25:F0:00:03' }) },
    ]);

    // The instance moved: the newer host replaces the older one.
    const moved = v2pBody({ physical_host_ip: 'fd00:1122:3344:103::1' });
    expect((await t.request('PUT', `/v2p/${a}`, moved)).status).toBe(204);
    // A late delete naming the host it left leaves the mapping where it is now.
    expect((await t.request('DELETE', `/v2p/${a}`, v2pBody())).status).toBe(204);
    expect((await t.request('GET', '/v2p')).body).toContainEqual({ interface_id: a, ...moved });

    // The same mapping spelled otherwise is the same mapping.
    const respelled = { ...moved, virtual_mac: moved.virtual_mac.toLowerCase(), physical_host_ip: 'fd00:1122:3344:0103:0:0:0:1' };
    expect((await t.request('DELETE', `/v2p/${a}`, respelled)).status).toBe(204);
    expect((await t.request('GET', '/v2p')).body.map((m: any) => m.interface_id)).toEqual([b]);
    expect((await t.request('DELETE', `/v2p/${a}`, moved)).status).toBe(204);
    expect((await t.request('DELETE', `/v2p/${randomUUID()}`, moved)).status).toBe(204);
    expect((await t.request('GET', '/v2p')).body.map((m: any) => m.interface_id)).toEqual([b]);
  });

  it('holds one mapping per virtual address in a VPC, as OPTE does: a newer interface with the address replaces the older', async () => {
    const old = randomUUID();
    const fresh = randomUUID();
    await t.request('PUT', `/v2p/${old}`, v2pBody());
    await t.request('PUT', `/v2p/${fresh}`, v2pBody({ virtual_mac: 'A8:40:25:F0:00:09' }));
    await t.request('PUT', `/v2p/${randomUUID()}`, v2pBody({ vni: VNI_2 })); // same address, other VPC: kept
    const listed = (await t.request('GET', '/v2p')).body as any[];
    expect(listed.map((m) => m.interface_id)).not.toContain(old);
    expect(listed.filter((m) => m.vni === VNI_1)).toEqual([{ interface_id: fresh, ...v2pBody({ virtual_mac: 'A8:40:25:F0:00:09' }) }]);
    expect(listed).toHaveLength(2);
  });

  it.each([
    ['PUT', 'a virtual MAC outside the guest range', v2pBody({ virtual_mac: 'A8:40:25:FF:00:02' }), 'body/virtual_mac A8:40:25:FF:00:02 is outside the guest MAC range'],
    ['PUT', 'a VNI above 2^24-1', v2pBody({ vni: 16777216 }), 'body/vni is 16777216'],
    ['PUT', 'an IPv4 physical host', v2pBody({ physical_host_ip: '10.0.0.1' }), 'body/physical_host_ip must be a valid ipv6'],
    ['DELETE', 'a VNI above 2^24-1', v2pBody({ vni: 16777216 }), 'body/vni is 16777216'],
    ['DELETE', 'a missing virtual_ip', (({ virtual_ip: _, ...rest }) => rest)(v2pBody()), 'body/virtual_ip is required'],
  ])('%s refuses %s with a 400 naming the field', async (method, _what, body, message) => {
    expect(await refused(method, `/v2p/${randomUUID()}`, body)).toContain(message);
    expect((await t.request('GET', '/v2p')).body).toEqual([]);
  });

  it('wants the DELETE\'s body', async () => {
    const res = await t.request('DELETE', `/v2p/${randomUUID()}`);
    expect(res.status).toBe(400);
    expectSchema('sled-agent.json', 'Error', res.body);
  });
});
