// Guest-networking request bodies as Nexus sends them (omicron 56a586d367 and bea1af3c74 shapes,
// reference/opte.md §2), for both agents' tests. The addresses are data: nothing connects to them.
import { defaultVpcRules as nexusDefaultVpcRules } from './vpc-rules.js';

export const VNI_1 = 11346697;
export const VNI_2 = 5432101;

/** A guest NIC in Nexus's default VPC subnet, 172.30.0.0/22, which the pinned Ipv4Net refused. */
export function nic(overrides: Record<string, unknown> = {}): any {
  return {
    name: 'net0',
    ip: '172.30.0.5',
    mac: 'A8:40:25:F0:00:01',
    subnet: '172.30.0.0/22',
    vni: VNI_1,
    primary: true,
    slot: 0,
    ...overrides,
  };
}

export function rule(overrides: Record<string, unknown> = {}): any {
  return {
    status: 'enabled',
    direction: 'inbound',
    targets: [],
    filter_hosts: null,
    filter_ports: ['22'],
    filter_protocols: ['TCP'],
    action: 'allow',
    priority: 65534,
    ...overrides,
  };
}

/** Nexus's default VPC rules (test/support/vpc-rules.ts) in `vpcSubnet`, targeting the NICs given. */
export function defaultVpcRules(targets: unknown[], vpcSubnet = '172.30.0.0/22'): any[] {
  return nexusDefaultVpcRules([vpcSubnet]).map((r) => ({ ...r, targets }));
}

/** The networking fields of InstanceHardware as 56a586d367's Nexus fills them. */
export function networkedHardware(nics: unknown[] = [nic()]): Record<string, unknown> {
  return {
    nics,
    source_nat: { ip: '192.168.1.31', first_port: 16384, last_port: 32767 },
    external_ips: ['192.168.1.32'],
    firewall_rules: defaultVpcRules(nics),
  };
}

export function v2pBody(overrides: Record<string, unknown> = {}): any {
  return {
    virtual_ip: '172.30.0.6',
    virtual_mac: 'A8:40:25:F0:00:02',
    physical_host_ip: 'fd00:1122:3344:102::1',
    vni: VNI_1,
    ...overrides,
  };
}
