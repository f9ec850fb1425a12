// Guest NIC ports on this sled (omicron's PortManager, illumos-utils/src/opte/port_manager.rs):
// one OPTE port `opte<N>` per guest NIC with its subnet route, the firewall rules of its VPC and,
// on the primary NIC, the instance's external IPs; the VPC rule sets Nexus pushes; the V2P
// mappings of guests on other sleds.
//
// Which ports exist is the instances' business: an instance names its ports in its own ledger
// record (`vopte<N>` VNICs over `opte<N>` ports) before it makes them, and each step here is
// idempotent, so provisioning after a crash completes what is half-made. This manager keeps
// what outlives instances in its own ledger (ports.json): each VPC's rules as last pushed, and
// every V2P mapping Nexus set, so a restart re-applies them (both are whole-set operations in
// OPTE, so re-applying is safe). Fixed on purpose, relative to the original: rules for one VPC
// touch only that VPC's ports (omicron #3336); a V2P delete really deletes, and never the
// driver's own entry for a local port; ports are adopted across a restart, not deleted (#725);
// a port whose delete fails is retried and logged until it is gone (#1364, #7726).
import type { Logger } from 'pino';
import type { FirewallRule, HostNetwork, PortSpec, RouterEntry, V2PMapping } from './host/index.js';
import { isHostError, OPTE_GATEWAY_MAC } from './host/index.js';
import { opteFirewallRules, type VpcFirewallRule as WireFirewallRule } from './host/firewall.js';
import { ipv4Subnet, ipv4Text, sameIp, sameMapping, vniOfRules } from './common/network-checks.js';
import { LatestWrite } from './common/latest-write.js';
import { Ledger } from './ledger.js';

/** A guest NIC as the instance ensure body gives it (NetworkInterface). */
export interface GuestNic {
  name: string;
  ip: string;
  mac: string;
  subnet: string;
  vni: number;
  slot: number;
  primary?: boolean;
  id?: string;
}

/** InstanceHardware's external addressing (the 2022 shape: source_nat, external_ips). */
export interface InstanceExternal {
  source_nat?: { ip: string; first_port: number; last_port: number } | null;
  external_ips?: string[];
}

export interface V2PBody {
  virtual_ip: string;
  virtual_mac: string;
  physical_host_ip: string;
  vni: number;
}

interface PortsLedger {
  /** Each VPC's rules, by VNI, as Nexus last sent them (in a rules PUT or an instance's ensure). */
  vpc_rules: Record<string, WireFirewallRule[]>;
  /** What Nexus set with PUT /v2p/{interface_id}, by interface id. */
  v2p: Record<string, V2PBody>;
}

/** A port of a live instance: what a VPC rules update needs to find and filter for it. */
interface LivePort {
  instance: string;
  vni: number;
  mac: string;
}

const DELETE_RETRY_INITIAL_MS = 200;
const DELETE_RETRY_MAX_MS = 30_000;

/** The port a guest VNIC goes over: `vopte3` is over `opte3`. */
export function portOfVnic(vnic: string): string {
  return vnic.startsWith('v') ? vnic.slice(1) : vnic;
}

export class PortManager {
  readonly #live = new Map<string, LivePort>();
  /** Ports whose delete failed, retried in the background. */
  readonly #reaping = new Map<string, NodeJS.Timeout>();
  #closed = false;
  readonly #writes = new LatestWrite();

  private constructor(
    private readonly network: HostNetwork,
    private readonly ledger: Ledger<PortsLedger>,
    private readonly underlayAddr: string | undefined,
    private readonly log: Logger,
  ) {}

  static async open(options: { network: HostNetwork; ledgerPath: string; underlayAddress?: string; log: Logger }): Promise<PortManager> {
    const ledger = await Ledger.open<PortsLedger>(options.ledgerPath, () => ({ vpc_rules: {}, v2p: {} }), (raw) => {
      const value = raw as PortsLedger | null;
      if (typeof value?.vpc_rules !== 'object' || typeof value.v2p !== 'object') {
        throw new Error(`${options.ledgerPath}: not a ports ledger (it needs "vpc_rules" and "v2p")`);
      }
      return value;
    });
    return new PortManager(options.network, ledger, options.underlayAddress, options.log.child({ component: 'port-manager' }));
  }

  /** Whether guest NICs can be given ports here; the reason if not (logged at start-up). */
  available(): ReturnType<HostNetwork['available']> {
    return this.network.available();
  }

  /**
   * Makes the ports of an instance's guest NICs, or completes ports a crash left half-made: each
   * port (with the external IPs, on the primary NIC only), then its subnet route, then the rules.
   * The NICs' ports are independent, so they are made at once. `rules`: the instance's firewall
   * rules as Nexus sent them, which are its VPCs' current ones when `fresh` (a request); after a
   * restart the VPC's rules as last recorded win (a rules PUT may have come since). `unused`: the
   * ports' names are new to the host (see Instance), so it is not asked which ports it has
   * (on illumos an `opteadm list-ports` of every port on the sled).
   */
  async ensurePorts(instance: string, nics: ReadonlyArray<{ port: string; nic: GuestNic; primary: boolean }>,
    external: InstanceExternal, rules: readonly WireFirewallRule[], fresh: boolean, unused = false): Promise<void> {
    if (nics.length === 0) return;
    const status = await this.network.available();
    if (!status.available) {
      throw Object.assign(new Error(`instance ${instance} has guest NICs, but OPTE is missing on this sled: ${status.reason}`), { code: 'OPTE_UNAVAILABLE' });
    }
    const underlayAddr = this.underlayAddr;
    if (underlayAddr === undefined) {
      throw Object.assign(new Error('guest NICs need the sled\'s underlay address for their OPTE ports: set underlay_address in the config'),
        { code: 'OPTE_NO_UNDERLAY' });
    }
    let changed = false;
    for (const { nic } of nics) {
      const known = this.ledger.value.vpc_rules[String(nic.vni)];
      const own = known === undefined || (fresh && rules.length > 0);
      if (own && rules.length > 0 && JSON.stringify(known) !== JSON.stringify(rules)) {
        this.ledger.value.vpc_rules[String(nic.vni)] = [...rules];
        changed = true;
      }
    }
    if (changed) await this.#commit();
    const present = new Set(unused ? [] : (await this.network.listPorts()).map((p) => p.name));
    await Promise.all(nics.map(async ({ port, nic, primary }) => {
      this.#live.set(port, { instance, vni: nic.vni, mac: nic.mac });
      const spec: PortSpec = {
        name: port,
        guestMac: nic.mac,
        privateIp: nic.ip,
        subnet: nic.subnet,
        gatewayMac: OPTE_GATEWAY_MAC,
        gatewayIp: firstHost(nic.subnet),
        vni: nic.vni,
        underlayAddr,
        external: primary ? externalOf(external) : { snat: null, ephemeralIp: null, floatingIps: [] },
      };
      const route: RouterEntry = { dest: nic.subnet, target: { type: 'vpc_subnet', subnet: nic.subnet }, class: 'system' };
      if (!present.has(port)) {
        await this.network.createPort(spec);
        await this.network.addRouterEntry(port, route);
      } else {
        // Adopted (or made before a crash): whether its route went in is unknown, and adding an
        // entry is not idempotent (it appends), so take out the one there may be first.
        try {
          await this.network.delRouterEntry(port, route);
        } catch (err) {
          if (!isHostError(err, 'OPTE_NO_ENTRY')) throw err;
        }
        await this.network.addRouterEntry(port, route);
        if (primary) await this.network.setExternalIps(port, spec.external);
      }
      // The VPC's rules as recorded now, not as they were before the port was made: a rules PUT
      // meanwhile recorded its rules and, finding no port yet, left them to this.
      await this.network.setFirewallRules(port, this.#rulesFor(this.ledger.value.vpc_rules[String(nic.vni)] ?? [], nic));
    }));
  }

  /**
   * Deletes a port (after the zone and the VNIC over it are gone). A port that will not go is
   * retried in the background and logged each time, never forgotten; a restart finds it as an
   * orphan if it is still there.
   */
  async removePort(port: string): Promise<void> {
    this.#live.delete(port);
    try {
      await this.#delete(port);
    } catch (err) {
      this.log.error({ err, port }, 'cannot delete OPTE port; retrying in the background');
      this.#reap(port, DELETE_RETRY_INITIAL_MS);
    }
  }

  /** Every port this process still tries to delete (the inventory shows them). */
  get reaping(): string[] {
    return [...this.#reaping.keys()];
  }

  async #delete(port: string): Promise<void> {
    try {
      await this.network.deletePort(port);
    } catch (err) {
      if (!isHostError(err, 'OPTE_NO_PORT')) throw err;
    }
  }

  #reap(port: string, delay: number): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#reaping.delete(port);
      this.#delete(port).then(() => this.log.info({ port }, 'OPTE port deleted after retrying'), (err: unknown) => {
        this.log.error({ err, port, retryInMs: Math.min(delay * 2, DELETE_RETRY_MAX_MS) }, 'cannot delete OPTE port; retrying');
        this.#reap(port, Math.min(delay * 2, DELETE_RETRY_MAX_MS));
      });
    }, delay);
    timer.unref();
    this.#reaping.set(port, timer);
  }

  /**
   * PUT /vpc/{vpc_id}/firewall/rules: the VPC's whole rule set, on this sled's ports of that VNI
   * and on no other port. Recorded first, so a restart (or a port made later) applies it too.
   */
  async firewallRulesEnsure(vpcId: string, bodyVni: number | undefined, rules: readonly WireFirewallRule[]): Promise<void> {
    const vni = vniOfRules(bodyVni, [...rules] as Parameters<typeof vniOfRules>[1]);
    this.ledger.value.vpc_rules[String(vni)] = [...rules];
    await this.#commit();
    const ports = [...this.#live].filter(([, p]) => p.vni === vni);
    for (const [port, p] of ports) {
      try {
        await this.network.setFirewallRules(port, this.#rulesFor(rules, p));
      } catch (err) {
        // Still being made: it takes the VPC's rules from the ledger once it is.
        if (!isHostError(err, 'OPTE_NO_PORT')) throw err;
      }
    }
    this.log.info({ vpc: vpcId, vni, rules: rules.length, ports: ports.map(([name]) => name) }, 'VPC firewall rules applied');
  }

  #rulesFor(rules: readonly WireFirewallRule[], port: { vni: number; mac: string }): FirewallRule[] {
    return opteFirewallRules(rules, { vni: port.vni, mac: port.mac });
  }

  /** A ledger write of the value as it is now. */
  #commit(): Promise<void> {
    return this.#writes.track(this.ledger.commit());
  }

  /**
   * PUT /v2p/{interface_id}. One mapping per interface and, as in OPTE, one per (VNI, virtual
   * IP): an interface that takes an address replaces the mapping of the one that held it.
   */
  async setV2P(interfaceId: string, body: V2PBody): Promise<void> {
    const held = this.ledger.value.v2p;
    for (const [other, m] of Object.entries(held)) {
      if (other !== interfaceId && m.vni === body.vni && sameIp(m.virtual_ip, body.virtual_ip)) delete held[other];
    }
    held[interfaceId] = { ...body };
    await this.#commit();
    await this.network.setV2P(mappingOf(body));
  }

  /**
   * DELETE /v2p/{interface_id}: really deletes the mapping (omicron's was a no-op) if it is the
   * one named, so a late delete for a sled the guest has left does not cut it off where it is
   * now; deleting what is not held is a no-op (a retried delete succeeds). Never the driver's own
   * entry for a port on this sled (OPTE clears by (VNI, IP) whatever is there).
   */
  async deleteV2P(interfaceId: string, body: V2PBody): Promise<void> {
    const held = this.ledger.value.v2p[interfaceId];
    if (held === undefined || !sameMapping(held, body)) {
      // Gone already, perhaps by a delete whose write is still in flight: answered once that is
      // durable, as that delete is (and refused if it fails, as that one is).
      await this.#writes.landed(() => this.#commit());
      return;
    }
    delete this.ledger.value.v2p[interfaceId];
    try {
      await this.#commit();
    } catch (err) {
      // Not on disk: held again, so Nexus's retry deletes it (and records that) rather than find
      // it gone and answer at once. Unless it was set again meanwhile.
      this.ledger.value.v2p[interfaceId] ??= held;
      throw err;
    }
    try {
      const ports = await this.network.listPorts();
      const local = ports.some((p) => p.ip4 === body.virtual_ip && [...this.#live].some(([name, l]) => name === p.name && l.vni === body.vni));
      if (local) {
        this.log.info({ interface: interfaceId, ip: body.virtual_ip, vni: body.vni }, 'V2P mapping forgotten; the local port keeps its own entry');
        return;
      }
      await this.network.clearV2P(mappingOf(body)).catch((err: unknown) => {
        if (!isHostError(err, 'OPTE_NO_ENTRY')) throw err;
      });
    } catch (err) {
      // Still on the host: held again (and recorded so), so Nexus's retry clears it rather than
      // find it gone and answer at once, leaving the host routing to where the guest was.
      if (this.ledger.value.v2p[interfaceId] === undefined) {
        this.ledger.value.v2p[interfaceId] = held;
        await this.#commit().catch((write: unknown) => this.log.error({ err: write, interface: interfaceId }, 'cannot record a V2P mapping the host still has'));
      }
      throw err;
    }
  }

  /** GET /v2p: the mappings Nexus set on this sled. */
  listV2P(): Array<V2PBody & { interface_id: string }> {
    return Object.entries(this.ledger.value.v2p).map(([id, m]) => ({ interface_id: id, ...m }));
  }

  /**
   * Start-up, before the API: the mappings Nexus set are in force again (OPTE's V2P survives an
   * agent restart, but not a reboot), and every port no instance claims is removed, the VNICs
   * over it first. Returns the ports adopted and removed, for the start-up summary.
   */
  async reconcile(claimed: ReadonlySet<string>, deleteVnicsOver: (port: string) => Promise<void>): Promise<{ adopted: string[]; removed: string[] }> {
    const status = await this.network.available();
    if (!status.available) return { adopted: [], removed: [] };
    const adopted: string[] = [];
    const removed: string[] = [];
    for (const port of await this.network.listPorts()) {
      if (!/^opte\d+$/.test(port.name)) continue;
      if (claimed.has(port.name)) {
        adopted.push(port.name);
        continue;
      }
      await deleteVnicsOver(port.name);
      await this.#delete(port.name);
      removed.push(port.name);
    }
    for (const body of Object.values(this.ledger.value.v2p)) await this.network.setV2P(mappingOf(body));
    return { adopted, removed };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#reaping.values()) clearTimeout(timer);
    this.#reaping.clear();
    await this.ledger.settled();
  }
}

function externalOf(external: InstanceExternal): PortSpec['external'] {
  const snat = external.source_nat;
  const [ephemeral, ...floating] = external.external_ips ?? [];
  return {
    snat: snat ? { ip: snat.ip, firstPort: snat.first_port, lastPort: snat.last_port } : null,
    // The 2022 shape's external_ips: the first is the ephemeral IP, the rest floating.
    ephemeralIp: ephemeral ?? null,
    floatingIps: floating,
  };
}

function mappingOf(body: V2PBody): V2PMapping {
  return { virtualIp: body.virtual_ip, virtualMac: body.virtual_mac, physicalHostIp: body.physical_host_ip, vni: body.vni };
}

/** The subnet's first host, the guest's gateway (RFD 21): 172.30.0.0/22 -> 172.30.0.1. */
export function firstHost(subnet: string): string {
  const parsed = ipv4Subnet(subnet);
  if (parsed === null || parsed.prefix > 30) {
    throw Object.assign(new Error(`${subnet} is not an IPv4 subnet with room for a gateway`), { code: 'EINVAL' });
  }
  const size = 2 ** (32 - parsed.prefix);
  return ipv4Text(parsed.net - (parsed.net % size) + 1);
}
