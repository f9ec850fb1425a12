// The simulated sled agent's guest networking: the firewall rules Nexus gave each VPC and the
// V2P mappings it gave each interface, in memory, as omicron's simulated agent kept them
// (illumos-utils opte/non_illumos.rs, sim/sled_agent.rs at bea1af3c74). There are no ports
// here — the simulated host's OPTE model is src/sim/opte.ts — so there is no local entry to
// protect; what is modelled is what Nexus asked for, for its tests to inspect.
import { sameIp, sameMapping, vniOfRules } from '../common/network-checks.js';
import type { SetVirtualNetworkInterfaceHost, V2pMapping, VpcFirewallRule } from '../params.js';

export interface VpcRules {
  vni: number;
  rules: VpcFirewallRule[];
}

export class SimNetworking {
  readonly #rules = new Map<string, VpcRules>();
  readonly #v2p = new Map<string, SetVirtualNetworkInterfaceHost>();

  /** Replaces the VPC's rules; other VPCs' are not touched. */
  firewallRulesEnsure(vpcId: string, vni: number | undefined, rules: VpcFirewallRule[]): void {
    this.#rules.set(vpcId, { vni: vniOfRules(vni, rules), rules: structuredClone(rules) });
  }

  firewallRules(vpcId: string): VpcRules | undefined {
    return this.#rules.get(vpcId);
  }

  /**
   * One mapping per interface, and, as in OPTE, one per (VNI, virtual IP): a newer interface
   * holding an address replaces the mapping of the one that held it before (a NIC deleted
   * while its mapping was never cleared, as omicron's no-op delete left them).
   */
  setV2P(interfaceId: string, mapping: SetVirtualNetworkInterfaceHost): void {
    for (const [other, held] of this.#v2p) {
      if (other !== interfaceId && held.vni === mapping.vni && sameIp(held.virtual_ip, mapping.virtual_ip)) this.#v2p.delete(other);
    }
    this.#v2p.set(interfaceId, { ...mapping });
  }

  /**
   * Removes the interface's mapping if it is the one named; any other is left alone, so a late
   * delete for a host the instance has left does not cut it off where it is now. Deleting what
   * is not held is a no-op, so a retried delete succeeds.
   */
  deleteV2P(interfaceId: string, mapping: SetVirtualNetworkInterfaceHost): void {
    const held = this.#v2p.get(interfaceId);
    if (held && sameMapping(held, mapping)) this.#v2p.delete(interfaceId);
  }

  listV2P(): V2pMapping[] {
    return [...this.#v2p].map(([interface_id, m]) => ({ interface_id, ...m }))
      .sort((a, b) => a.interface_id.localeCompare(b.interface_id));
  }
}
