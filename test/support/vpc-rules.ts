// Nexus's default VPC firewall rules (nexus/defaults/src/lib.rs, 2022; reference opte.md §1.7), in
// the wire shape of sled-agent-networking.json: all inbound, priority 65534, targeting the whole
// VPC (empty targets: Nexus resolves "the VPC" to every NIC in it, and a port is only ever sent
// its own VPC's rules).
import type { VpcFirewallHost, VpcFirewallRule } from '../../src/host/firewall.js';

/**
 * `internal`: how allow-internal-inbound names the VPC's hosts. In the 2022 wire shape Nexus
 * resolved the VPC to its subnets' IpNets (e.g. ["172.30.0.0/22"]); from 2023 it is
 * [{type: "vpc", value: <vni>}].
 */
export function defaultVpcRules(internal: readonly VpcFirewallHost[]): VpcFirewallRule[] {
  return [
    { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: [...internal], filter_ports: null, filter_protocols: null, action: 'allow', priority: 65534 },
    { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: ['22'], filter_protocols: ['TCP'], action: 'allow', priority: 65534 },
    { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: null, filter_protocols: ['ICMP'], action: 'allow', priority: 65534 },
    { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: ['3389'], filter_protocols: ['TCP'], action: 'allow', priority: 65534 },
  ];
}

/** A rule that lets TCP `port` in from anywhere, as a user would add it for a web server. */
export function allowTcpInbound(port: number, priority = 100): VpcFirewallRule {
  return { status: 'enabled', direction: 'inbound', targets: [], filter_hosts: null, filter_ports: [String(port)], filter_protocols: ['TCP'], action: 'allow', priority };
}
