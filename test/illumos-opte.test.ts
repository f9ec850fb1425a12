// The illumos network part (src/illumos/opte.ts) on the fake illumos: the shared network suite,
// then what only this backend has: the exact command lines and stdin opteadm receives (through
// the opteadm-record wrapper in front of the fake opteadm), the mapping of opteadm's error texts,
// the parsers of its tables, the fake's own fidelity, an unavailable xde, IllumosHost's wiring
// and the config that reaches it.
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkAgentConfig } from '../src/config.js';
import { opteFirewallRules } from '../src/host/firewall.js';
import type { NativeAddon } from '../src/illumos/addon.js';
import { IllumosHost } from '../src/illumos/host.js';
import {
  DEFAULT_OPTEADM,
  DEFAULT_XDE_CONF,
  IllumosNetwork,
  firewallRuleLine,
  opteadmErrorCode,
  parseDumpV2P,
  parseListPorts,
} from '../src/illumos/opte.js';
import { FAKE_BIN_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';
import { rejection } from './support/host-suite.js';
import { DEFAULT_VPC_RULES, NO_EXTERNAL, SLED_UNDERLAY, networkSuite, portSpec } from './support/network-suite.js';

const OPTEADM = join(FAKE_BIN_DIR, 'opteadm');
const RECORDER = join(FAKE_BIN_DIR, 'opteadm-record');

let addon: NativeAddon;
beforeAll(() => {
  addon = fakeIllumos();
});

/** A fresh fake host with the xde driver (its xde.conf), and an IllumosHost over it. */
async function openHost(opteadm = OPTEADM) {
  const fake = freshFakeHost();
  const xdeConf = join(fake.state, 'xde.conf');
  writeFileSync(xdeConf, 'name="xde" parent="pseudo" instance=0;\n');
  const log = join(fake.state, 'opteadm.log');
  process.env.FAKE_ILLUMOS_OPTEADM_LOG = log;
  const host = await IllumosHost.open({ addon, opteadm, xdeConf });
  return {
    host,
    net: host.network,
    state: fake.state,
    xdeConf,
    /** What opteadm was given since the last call, oldest first. */
    calls(): Array<{ argv: string[]; stdin: string }> {
      let text = '';
      try {
        text = readFileSync(log, 'utf8');
      } catch {
        return [];
      }
      rmSync(log, { force: true });
      return text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { argv: string[]; stdin: string });
    },
    async cleanup(): Promise<void> {
      delete process.env.FAKE_ILLUMOS_OPTEADM_LOG;
      await host.close();
      fake.remove();
    },
  };
}

/** Runs the fake opteadm itself: its exit status and output, as opteadm's caller sees them. */
function opteadm(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(OPTEADM, args, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr }),
    );
    child.stdin?.on('error', () => {}); // EPIPE when it fails before reading: its status tells
    child.stdin?.end(stdin);
  });
}

networkSuite('illumos (fake opteadm)', async () => {
  const h = await openHost();
  return { network: h.net, links: h.host.links, underlay: ['net0', 'net1'], cleanup: () => h.cleanup() };
});

describe('IllumosNetwork', () => {
  let cleanup: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await cleanup?.();
    cleanup = null;
  });
  async function open(opteadmPath = RECORDER) {
    const h = await openHost(opteadmPath);
    cleanup = h.cleanup;
    return h;
  }

  it('gives opteadm exactly these arguments, and the rules on stdin', async () => {
    const { net, calls } = await open();
    await net.setUnderlay(['net0', 'net1']);
    await net.createPort(
      portSpec(0, {
        guestMac: 'A8:40:25:F0:00:01',
        external: { snat: { ip: '192.168.1.31', firstPort: 16384, lastPort: 32767 }, ephemeralIp: '192.168.1.32', floatingIps: ['192.168.1.40', '192.168.1.41'] },
      }),
    );
    await net.createPort(portSpec(1));
    await net.addRouterEntry('opte0', { dest: '172.30.0.0/22', target: { type: 'vpc_subnet', subnet: '172.30.0.0/22' }, class: 'system' });
    await net.setFirewallRules('opte0', DEFAULT_VPC_RULES);
    await net.setFirewallRules('opte1', []);
    await net.setExternalIps('opte0', { snat: null, ephemeralIp: null, floatingIps: ['192.168.1.50'] });
    await net.setExternalIps('opte1', NO_EXTERNAL);
    const remote = { virtualIp: '172.30.0.20', virtualMac: 'A8:40:25:F0:00:20', physicalHostIp: 'fd00:1122:3344:102::1', vni: 1234 };
    await net.setV2P(remote);
    await net.clearV2P(remote);
    await net.listPorts();
    await net.delRouterEntry('opte0', { dest: '172.30.0.0/22', target: { type: 'vpc_subnet', subnet: '172.30.0.0/22' }, class: 'system' });
    await net.deletePort('opte1');
    const nic = (name: string, mac: string, ip: string) => [
      'create-xde', name, '--guest-mac', mac, '--private-ip', ip, '--vpc-subnet', '172.30.0.0/22',
      '--gateway-mac', 'a8:40:25:ff:77:77', '--gateway-ip', '172.30.0.1', '--vpc-vni', '1234', '--src-underlay-addr', SLED_UNDERLAY,
    ];
    expect(calls()).toEqual([
      { argv: ['set-xde-underlay', 'net0', 'net1'], stdin: '' },
      {
        argv: [
          ...nic('opte0', 'a8:40:25:f0:00:01', '172.30.0.5'),
          '--snat-ip', '192.168.1.31', '--snat-start', '16384', '--snat-end', '32767',
          '--ephemeral-ip', '192.168.1.32', '--floating-ip', '192.168.1.40', '--floating-ip', '192.168.1.41',
        ],
        stdin: '',
      },
      { argv: nic('opte1', 'a8:40:25:f0:00:02', '172.30.0.6'), stdin: '' },
      { argv: ['add-router-entry', '-p', 'opte0', '172.30.0.0/22', 'sub4=172.30.0.0/22', 'system'], stdin: '' },
      {
        argv: ['set-fw-rules', '-p', 'opte0'],
        stdin:
          'dir=in action=allow priority=65534 hosts=vni=1234 protocol=any port=any\n' +
          'dir=in action=allow priority=65534 hosts=any protocol=tcp port=22\n' +
          'dir=in action=allow priority=65534 hosts=any protocol=icmp port=any\n' +
          'dir=in action=allow priority=65534 hosts=any protocol=tcp port=3389\n',
      },
      { argv: ['set-fw-rules', '-p', 'opte1'], stdin: '' },
      { argv: ['set-external-ips', '-p', 'opte0', '--floating-ip', '192.168.1.50'], stdin: '' },
      { argv: ['set-external-ips', '-p', 'opte1'], stdin: '' },
      { argv: ['set-v2p', '172.30.0.20', 'a8:40:25:f0:00:20', 'fd00:1122:3344:102::1', '1234'], stdin: '' },
      { argv: ['dump-v2p'], stdin: '' },
      { argv: ['clear-v2p', '172.30.0.20', 'a8:40:25:f0:00:20', 'fd00:1122:3344:102::1', '1234'], stdin: '' },
      { argv: ['list-ports'], stdin: '' },
      { argv: ['del-router-entry', '-p', 'opte0', '172.30.0.0/22', 'sub4=172.30.0.0/22', 'system'], stdin: '' },
      { argv: ['delete-xde', 'opte1'], stdin: '' },
    ]);
  });

  it('spells every router target and class as opteadm parses them', async () => {
    const { net, calls } = await open();
    await net.setUnderlay(['net0', 'net1']);
    await net.createPort(portSpec(0));
    calls();
    await net.addRouterEntry('opte0', { dest: '0.0.0.0/0', target: { type: 'internet_gateway' }, class: 'system' });
    await net.addRouterEntry('opte0', { dest: '10.1.0.0/16', target: { type: 'drop' }, class: 'custom' });
    await net.addRouterEntry('opte0', { dest: '10.2.0.0/16', target: { type: 'ip', ip: '172.30.0.9' }, class: 'custom' });
    await net.addRouterEntry('opte0', { dest: 'fd00:1::/64', target: { type: 'ip', ip: 'fd00:1::9' }, class: 'system' });
    await net.addRouterEntry('opte0', { dest: 'fd00:2::/64', target: { type: 'vpc_subnet', subnet: 'fd00:2::/64' }, class: 'system' });
    expect(calls().map((c) => c.argv.slice(3))).toEqual([
      ['0.0.0.0/0', 'ig', 'system'],
      ['10.1.0.0/16', 'drop', 'custom'],
      ['10.2.0.0/16', 'ip4=172.30.0.9', 'custom'],
      ['fd00:1::/64', 'ip6=fd00:1::9', 'system'],
      ['fd00:2::/64', 'sub6=fd00:2::/64', 'system'],
    ]);
    // a target of the other family is the driver's InvalidRouterEntry: refused before it runs
    await rejection(net.addRouterEntry('opte0', { dest: '10.3.0.0/16', target: { type: 'ip', ip: 'fd00::1' }, class: 'system' }), 'EINVAL');
    expect(calls()).toEqual([]);
  });

  it('gets a Nexus host filter with host bits set as its network, as the simulated host takes it', async () => {
    const { net, calls } = await open();
    await net.setUnderlay(['net0', 'net1']);
    await net.createPort(portSpec(0));
    calls();
    const nexusRule = {
      status: 'enabled', direction: 'inbound', targets: [], filter_hosts: ['10.0.0.5/24', 'fd00:1122:3344:101::9/48'],
      filter_ports: ['22'], filter_protocols: ['TCP'], action: 'allow', priority: 100,
    } as const;
    await net.setFirewallRules('opte0', opteFirewallRules([nexusRule], { vni: 1234, mac: portSpec(0).guestMac }));
    expect(calls()).toEqual([{
      argv: ['set-fw-rules', '-p', 'opte0'],
      stdin:
        'dir=in action=allow priority=100 hosts=subnet=10.0.0.0/24 protocol=tcp port=22\n' +
        'dir=in action=allow priority=100 hosts=subnet=fd00:1122:3344::/48 protocol=tcp port=22\n',
    }]);
  });

  it('writes each kind of firewall host, protocol and port list as set-fw-rules reads it', () => {
    const base = { direction: 'out', action: 'deny', priority: 7, protocol: 'udp' } as const;
    expect(firewallRuleLine({ ...base, hosts: { type: 'ip', ip: '10.0.0.1' }, ports: [53, 123] })).toBe(
      'dir=out action=deny priority=7 hosts=ip=10.0.0.1 protocol=udp port=53,123',
    );
    expect(firewallRuleLine({ ...base, hosts: { type: 'subnet', subnet: '10.0.0.0/8' }, ports: 'any' })).toBe(
      'dir=out action=deny priority=7 hosts=subnet=10.0.0.0/8 protocol=udp port=any',
    );
    expect(firewallRuleLine({ ...base, hosts: { type: 'ip', ip: 'fd00::1' }, ports: 'any' })).toBe(
      'dir=out action=deny priority=7 hosts=ip=fd00::1 protocol=udp port=any',
    );
  });

  it('runs nothing when an argument is malformed', async () => {
    const { net, calls } = await open();
    await rejection(net.createPort(portSpec(0, { vni: -1 })), 'EINVAL', /vni/);
    await rejection(net.setFirewallRules('opte0', [{ ...DEFAULT_VPC_RULES[0]!, direction: 'both' as 'in' }]), 'EINVAL', /rules\[0\]\.direction/);
    await rejection(net.clearV2P({ virtualIp: 'x', virtualMac: 'a8:40:25:f0:00:20', physicalHostIp: 'fd00::1', vni: 1 }), 'EINVAL', /virtualIp/);
    expect(calls()).toEqual([]);
  });

  it('counts an underlay already set as done, and says which link is missing', async () => {
    const { net, calls } = await open();
    await rejection(net.setUnderlay(['net0', 'net7']), 'ECOMMAND', /failed to get linkid for net7/);
    await net.setUnderlay(['net0', 'net1']);
    await net.setUnderlay(['net0', 'net1']);
    expect(calls().map((c) => c.argv)).toEqual([
      ['set-xde-underlay', 'net0', 'net7'],
      ['set-xde-underlay', 'net0', 'net1'],
      ['set-xde-underlay', 'net0', 'net1'],
    ]);
  });

  it('makes ports from several calls at once, each a link of its own', async () => {
    const { net, host } = await open(OPTEADM);
    await net.setUnderlay(['net0', 'net1']);
    await Promise.all([0, 1, 2, 3, 4, 5].map((n) => net.createPort(portSpec(n))));
    expect((await net.listPorts()).map((p) => p.name)).toEqual(['opte0', 'opte1', 'opte2', 'opte3', 'opte4', 'opte5']);
    // each a datalink of class misc (what dlmgmtd makes for an xde port), with an id of its own
    const links = await Promise.all([0, 1, 2, 3, 4, 5].map((n) => addon.linkLookup(`opte${n}`)));
    expect(links.map((l) => [l.class, l.flags])).toEqual(Array(6).fill(['misc', 1]));
    expect(new Set(links.map((l) => l.linkId)).size).toBe(6);
    await Promise.all([0, 1, 2, 3, 4, 5].map((n) => net.deletePort(`opte${n}`)));
    expect(await net.listPorts()).toEqual([]);
    expect(await host.links.linkExists('opte3')).toBe(false);
  });

  it('is unavailable without xde.conf, and every call says OPTE is missing', async () => {
    const { net, xdeConf } = await open(OPTEADM);
    rmSync(xdeConf);
    expect(await net.available()).toEqual({ available: false, reason: `No xde driver configuration file exists at '${xdeConf}'` });
    await rejection(net.listPorts(), 'OPTE_UNAVAILABLE', /OPTE driver is not attached/);
    await rejection(net.createPort(portSpec(0)), 'OPTE_UNAVAILABLE');
    await rejection(net.setUnderlay(['net0', 'net1']), 'OPTE_UNAVAILABLE');
  });

  it('is unavailable without opteadm', async () => {
    const { state, xdeConf } = await open(OPTEADM);
    const net = new IllumosNetwork({ opteadm: join(state, 'no-opteadm'), xdeConf });
    const a = await net.available();
    expect(a.available).toBe(false);
    expect(a.available ? '' : a.reason).toContain(join(state, 'no-opteadm'));
    await rejection(net.listPorts(), 'OPTE_UNAVAILABLE', /cannot be run/);
  });
});

describe("opteadm's texts", () => {
  it('maps each error opteadm prints to the Host code', () => {
    const cases: Array<[string, number, string, string]> = [
      ['list-ports', 1, 'Error: OPTE driver is not attached\n', 'OPTE_UNAVAILABLE'],
      ['create-xde', 1, 'Error: command CreateXde failed: PortExists("opte0")\n', 'OPTE_PORT_EXISTS'],
      ['create-xde', 1, 'Error: netadm failed dlmgmtd: link id creation failed: 17\n', 'OPTE_PORT_EXISTS'],
      ['create-xde', 1, 'Error: netadm failed dlmgmtd: link id creation failed: 22\n', 'ECOMMAND'],
      [
        'create-xde',
        1,
        'Error: command CreateXde failed: MacExists { port: "opte1", vni: Vni { inner: 1234 }, mac: MacAddr { inner: A8:40:25:F0:00:01 } }\n',
        'OPTE_MAC_EXISTS',
      ],
      ['create-xde', 1, 'Error: command CreateXde failed: System { errno: 22, msg: "underlay not initialized" }\n', 'OPTE_NO_UNDERLAY'],
      ['delete-xde', 1, 'Error: netadm failed not found: link opte9 not found\n', 'OPTE_NO_PORT'],
      ['delete-xde', 1, 'Error: command DeleteXde failed: PortNotFound("net0")\n', 'OPTE_NO_PORT'],
      ['delete-xde', 1, 'Error: command DeleteXde failed: System { errno: 16, msg: "failed to destroy DLS devnet: 16" }\n', 'OPTE_PORT_BUSY'],
      ['set-fw-rules', 1, 'Error: command SetFwRules failed: PortNotFound("opte3")\n', 'OPTE_NO_PORT'],
      ['set-fw-rules', 1, "Error: Invalid rule: missing 'priority' key\n", 'EINVAL'],
      ['del-router-entry', 1, 'Error: could not delete entry -- no matching rule found\n', 'OPTE_NO_ENTRY'],
      ['set-xde-underlay', 1, 'Error: command SetXdeUnderlay failed: System { errno: 17, msg: "underlay already initialized" }\n', 'EEXIST'],
      ['create-xde', 2, "error: invalid value 'x' for '--vpc-vni <VPC_VNI>': VNI string could not be parsed as a valid u32\n", 'EINVAL'],
      ['list-ports', 1, 'Error: error interacting with device: Permission denied (os error 13)\n', 'ECOMMAND'],
    ];
    for (const [sub, code, stderr, want] of cases) expect([sub, stderr, opteadmErrorCode(sub, code, stderr)]).toEqual([sub, stderr, want]);
  });

  it("are the fake's, for each error it can reach", async () => {
    const h = await openHost();
    try {
      const create = (name: string, mac: string, ip: string) => [
        'create-xde', name, '--guest-mac', mac, '--private-ip', ip, '--vpc-subnet', '172.30.0.0/22', '--gateway-mac', 'a8:40:25:ff:77:77',
        '--gateway-ip', '172.30.0.1', '--vpc-vni', '1234', '--src-underlay-addr', SLED_UNDERLAY,
      ];
      const expectError = async (args: string[], stderr: string, code: string, stdin = '') => {
        const r = await opteadm(args, stdin);
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr });
        expect(opteadmErrorCode(args[0]!, r.code, r.stderr)).toBe(code);
      };
      await expectError(create('opte0', 'a8:40:25:f0:00:01', '172.30.0.5'), 'Error: command CreateXde failed: System { errno: 22, msg: "underlay not initialized" }\n', 'OPTE_NO_UNDERLAY');
      expect((await opteadm(['set-xde-underlay', 'net0', 'net1'])).code).toBe(0);
      await expectError(['set-xde-underlay', 'net0', 'net1'], 'Error: command SetXdeUnderlay failed: System { errno: 17, msg: "underlay already initialized" }\n', 'EEXIST');
      expect((await opteadm(create('opte0', 'a8:40:25:f0:00:01', '172.30.0.5'))).code).toBe(0);
      await expectError(create('opte0', 'a8:40:25:f0:00:02', '172.30.0.6'), 'Error: netadm failed dlmgmtd: link id creation failed: 17\n', 'OPTE_PORT_EXISTS');
      await expectError(
        create('opte1', 'A8:40:25:F0:00:01', '172.30.0.6'),
        'Error: command CreateXde failed: MacExists { port: "opte1", vni: Vni { inner: 1234 }, mac: MacAddr { inner: A8:40:25:F0:00:01 } }\n',
        'OPTE_MAC_EXISTS',
      );
      await expectError(['delete-xde', 'opte9'], 'Error: netadm failed not found: link opte9 not found\n', 'OPTE_NO_PORT');
      await expectError(['delete-xde', 'net0'], 'Error: command DeleteXde failed: PortNotFound("net0")\n', 'OPTE_NO_PORT');
      await h.host.links.createVnic({ name: 'vopte0', link: 'opte0', mac: 'a8:40:25:f0:00:01' });
      await expectError(['delete-xde', 'opte0'], 'Error: command DeleteXde failed: System { errno: 16, msg: "failed to destroy DLS devnet: 16" }\n', 'OPTE_PORT_BUSY');
      await expectError(['set-fw-rules', '-p', 'opte0'], 'Error: Invalid rule: bad token: \n', 'EINVAL', '\n');
      await expectError(['set-fw-rules', '-p', 'opte0'], "Error: Invalid rule: missing 'priority' key\n", 'EINVAL', 'dir=in action=allow hosts=any\n');
      await expectError(['set-fw-rules', '-p', 'opte0'], 'Error: Invalid rule: invalid port: 0\n', 'EINVAL', 'dir=in action=allow priority=1 port=0\n');
      await expectError(['set-fw-rules', '-p', 'opte0'], 'Error: Invalid rule: invalid key: ports=22\n', 'EINVAL', 'dir=in action=allow priority=1 ports=22\n');
      await expectError(['set-fw-rules', '-p', 'opte5'], 'Error: command SetFwRules failed: PortNotFound("opte5")\n', 'OPTE_NO_PORT', 'dir=in action=allow priority=1\n');
      await expectError(['del-router-entry', '-p', 'opte0', '0.0.0.0/0', 'ig', 'system'], 'Error: could not delete entry -- no matching rule found\n', 'OPTE_NO_ENTRY');
      rmSync(h.xdeConf);
      await expectError(['list-ports'], 'Error: OPTE driver is not attached\n', 'OPTE_UNAVAILABLE');
    } finally {
      await h.cleanup();
    }
  });

  it("the fake's list-ports and dump-v2p are laid out as opteadm's tabwriter lays them out", async () => {
    const h = await openHost();
    try {
      await h.net.setUnderlay(['net0', 'net1']);
      await h.net.createPort(portSpec(0, { external: { snat: null, ephemeralIp: '10.1.1.1', floatingIps: ['10.0.0.1', '10.0.0.2'] } }));
      await h.net.createPort(portSpec(12));
      expect((await opteadm(['list-ports'])).stdout).toBe(
        [
          'LINK    MAC ADDRESS        IPv4 ADDRESS  EPHEMERAL IPv4  FLOATING IPv4  IPv6 ADDRESS  EXTERNAL IPv6  FLOATING IPv6  STATE',
          'opte0   A8:40:25:F0:00:01  172.30.0.5    10.1.1.1        10.0.0.1       None          None           None           running',
          '                                                         10.0.0.2                                                   ',
          '                                                                                                                    ',
          'opte12  A8:40:25:F0:00:0D  172.30.0.17   None            None           None          None           None           running',
          '',
        ].join('\n'),
      );
      const hr = '-'.repeat(70);
      expect((await opteadm(['dump-v2p'])).stdout).toBe(
        [
          'Virtual to Physical Mappings',
          '='.repeat(70),
          '',
          'VPC 1234',
          hr,
          '',
          'IPv4 mappings',
          hr,
          'VPC_IP       VPC MAC ADDR       UNDERLAY IP',
          '172.30.0.5   A8:40:25:F0:00:01  fd00:1122:3344:101::1',
          '172.30.0.17  A8:40:25:F0:00:0D  fd00:1122:3344:101::1',
          '',
          'IPv6 mappings',
          hr,
          'VPC_IP  VPC MAC ADDR  UNDERLAY IP',
          '',
        ].join('\n'),
      );
    } finally {
      await h.cleanup();
    }
  });

  it('parses list-ports: None, continuation rows of floating IPs, an IPv6 port', () => {
    const text = [
      'LINK   MAC ADDRESS        IPv4 ADDRESS  EPHEMERAL IPv4  FLOATING IPv4  IPv6 ADDRESS  EXTERNAL IPv6  FLOATING IPv6  STATE',
      'opte0  A8:40:25:F0:00:01  172.30.0.5    10.1.1.1        10.0.0.1       None          None           None           running',
      '                                                        10.0.0.2                                                   ',
      '                                                        10.0.0.3                                                   ',
      '                                                                                                                   ',
      'opte1  A8:40:25:F0:00:02  None          None            None           fd00::5       None           None           ready',
      'opte2  A8:40:25:F0:00:03  172.30.0.7    None            None           None          None           None           running',
      '',
    ].join('\n');
    expect(parseListPorts(text)).toEqual([
      { name: 'opte0', mac: 'a8:40:25:f0:00:01', ip4: '172.30.0.5', ephemeralIp4: '10.1.1.1', floatingIp4: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], state: 'running' },
      { name: 'opte1', mac: 'a8:40:25:f0:00:02', ip4: null, ephemeralIp4: null, floatingIp4: [], state: 'ready' },
      { name: 'opte2', mac: 'a8:40:25:f0:00:03', ip4: '172.30.0.7', ephemeralIp4: null, floatingIp4: [], state: 'running' },
    ]);
    expect(parseListPorts('LINK  MAC ADDRESS  IPv4 ADDRESS  EPHEMERAL IPv4  FLOATING IPv4  IPv6 ADDRESS  EXTERNAL IPv6  FLOATING IPv6  STATE\n')).toEqual([]);
    expect(() => parseListPorts('NAME  MAC\n')).toThrow(/unexpected opteadm list-ports output/);
  });

  it('parses dump-v2p across VPCs and both families', () => {
    const hr = '-'.repeat(70);
    const text = [
      'Virtual to Physical Mappings', '='.repeat(70), '',
      'VPC 99', hr, '', 'IPv4 mappings', hr, 'VPC_IP      VPC MAC ADDR       UNDERLAY IP',
      '172.30.0.7  A8:40:25:F0:00:02  fd00:1122:3344:101::1', '',
      'IPv6 mappings', hr, 'VPC_IP     VPC MAC ADDR       UNDERLAY IP', 'fd00:a::5  A8:40:25:F0:00:03  fd00:1122:3344:102::1', '',
      'VPC 1234', hr, '', 'IPv4 mappings', hr, 'VPC_IP  VPC MAC ADDR  UNDERLAY IP', '',
      'IPv6 mappings', hr, 'VPC_IP  VPC MAC ADDR  UNDERLAY IP',
    ].join('\n');
    expect(parseDumpV2P(text)).toEqual([
      { virtualIp: '172.30.0.7', virtualMac: 'a8:40:25:f0:00:02', physicalHostIp: 'fd00:1122:3344:101::1', vni: 99 },
      { virtualIp: 'fd00:a::5', virtualMac: 'a8:40:25:f0:00:03', physicalHostIp: 'fd00:1122:3344:102::1', vni: 99 },
    ]);
    expect(() => parseDumpV2P('172.30.0.7  A8:40:25:F0:00:02  fd00::1\n')).toThrow(/unexpected opteadm dump-v2p output/);
  });
});

describe('IllumosHost and the config', () => {
  it('has a network part with the paths it was given, else the system ones', async () => {
    const fake = freshFakeHost();
    const given = await IllumosHost.open({ addon, opteadm: '/x/opteadm', xdeConf: '/x/xde.conf' });
    const plain = await IllumosHost.open({ addon });
    try {
      expect(given.network).toBeInstanceOf(IllumosNetwork);
      expect([given.network.opteadmPath, given.network.xdeConfPath]).toEqual(['/x/opteadm', '/x/xde.conf']);
      expect([plain.network.opteadmPath, plain.network.xdeConfPath]).toEqual([DEFAULT_OPTEADM, DEFAULT_XDE_CONF]);
    } finally {
      await given.close();
      await plain.close();
      fake.remove();
    }
  });

  it('defaults [host] opteadm and [opte] underlay_links, and refuses a relative opteadm or a third link', () => {
    const base = { id: 'fb0f7546-4d46-40ca-9d56-cbb810684ca7', nexus_address: '127.0.0.1:1' };
    const config = checkAgentConfig(base, 'test');
    expect(config.host.opteadm).toBe('/opt/oxide/opte/bin/opteadm');
    expect(config.opte.underlay_links).toEqual(['net0', 'net1']);
    expect(checkAgentConfig({ ...base, opte: { underlay_links: ['cxgbe0', 'cxgbe1'] } }, 'test').opte.underlay_links).toEqual(['cxgbe0', 'cxgbe1']);
    expect(() => checkAgentConfig({ ...base, host: { opteadm: 'opteadm' } }, 'test')).toThrow(/\/host\/opteadm/);
    expect(() => checkAgentConfig({ ...base, opte: { underlay_links: ['net0', 'net1', 'net2'] } }, 'test')).toThrow(/\/opte\/underlay_links/);
    expect(() => checkAgentConfig({ ...base, opte: { underlay_links: ['net0', 'net00'] } }, 'test')).toThrow(/\/opte\/underlay_links\/1/);
  });
});
