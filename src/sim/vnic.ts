// Links on the simulated host: the physical links and etherstubs it was given, and the VNICs
// over them, with dladm's error codes (as the illumos backend's vnic.ts over libdladm). The VNICs
// are persisted; a VNIC cannot go over another VNIC. OPTE's xde ports (opte.ts) are links too: a
// VNIC (vopteN) can go over one, and no VNIC can take a port's name.
//
// A link can be given to a ready or running zone (setZone, the `zone` link property). As on the
// fake libdladm, the assignment records the boot (kernel id) of the zone it was given to, and
// holds only while that boot is in the kernel: a halt gives the link back without the zones
// having to know about links.
import { randomInt } from 'node:crypto';
import { hostError, type VnicInfo, type VnicSpec } from '../host/index.js';
import { InvalidVnicArgumentError, normalizeMac, validateLinkName, validateZoneName } from '../host/names.js';
import type { SimMachine } from './machine.js';

/** A link given to a zone: which boot of it. */
export interface LinkZone {
  zone: string;
  zoneid: number;
}

/** What the links need to know of a zone: its kernel id while it is ready or running. */
export type ZoneKernelId = (zone: string) => number | null;

export class SimLinks {
  /** Physical links and etherstubs VNICs can go over. */
  readonly physical: readonly string[];
  /** By name, in creation order; persisted. A Map: a start asks whether a link exists several times, among thousands of VNICs at scale. */
  #vnics = new Map<string, VnicInfo>();
  /** Links given to zones, by link; persisted. An entry whose boot has left the kernel is stale. */
  zoneOf: Record<string, LinkZone> = {};

  constructor(
    private readonly m: SimMachine,
    physical: readonly string[],
    /** Whether an xde port of that name exists. */
    private readonly isPort: (name: string) => boolean = () => false,
    private readonly kernelId: ZoneKernelId = () => null,
  ) {
    this.physical = physical.map((l) => validateLinkName(l));
  }

  restore(vnics: VnicInfo[], zoneOf: Record<string, LinkZone> = {}): void {
    this.#vnics = new Map(vnics.map((v) => [v.name, v]));
    this.zoneOf = zoneOf;
  }

  /** What is persisted: the VNICs in creation order. */
  get vnics(): VnicInfo[] {
    return [...this.#vnics.values()];
  }

  /** The zone `link` is in now, or null (the global zone). */
  zoneHolding(link: string): string | null {
    const z = this.zoneOf[link];
    return z !== undefined && this.kernelId(z.zone) === z.zoneid ? z.zone : null;
  }

  /** The links given to this boot of `zone` (not those of its configuration). */
  givenTo(zone: string): string[] {
    return Object.keys(this.zoneOf).filter((l) => this.zoneHolding(l) === zone);
  }

  /** See HostLinks.setZone; the checks are libdladm's check_zone and set_zone (native/dladm.cc). */
  async setZone(link: string, zone: string): Promise<void> {
    validateLinkName(link);
    validateZoneName(zone);
    await this.m.opened();
    // A door call to dlmgmtd and an ioctl, as a VNIC create costs (no figure of its own yet).
    await this.m.sleep(this.m.lat('vnic', link, 'link set zone'));
    if (!this.linkExists(link)) throw hostError('DLADM_STATUS_NOTFOUND', `cannot give link ${link} to zone ${zone}: object not found`);
    const zoneid = this.kernelId(zone);
    if (zoneid === null) throw hostError('DLADM_STATUS_BADVAL', `cannot give link ${link} to zone ${zone}: invalid value (the zone is not ready or running)`);
    const now = this.zoneHolding(link);
    if (now === zone) return;
    if (now !== null) throw hostError('DLADM_STATUS_LINKBUSY', `cannot give link ${link} to zone ${zone}: link busy (zone ${now} has it)`);
    this.zoneOf[link] = { zone, zoneid };
    await this.m.persist();
  }

  async createVnic(spec: VnicSpec): Promise<VnicInfo> {
    if (typeof spec !== 'object' || spec === null) throw new InvalidVnicArgumentError('ERR_INVALID_ARG_TYPE', 'the VNIC spec must be an object');
    const name = validateLinkName(spec.name);
    const link = validateLinkName(spec.link);
    const mac = spec.mac === undefined ? randomMac() : normalizeMac(spec.mac);
    const vlan = spec.vlan ?? 0;
    if (typeof vlan !== 'number' || !Number.isInteger(vlan) || vlan < 0 || vlan > 4094) {
      throw new InvalidVnicArgumentError('ERR_OUT_OF_RANGE', `vlan must be an integer from 0 to 4094, got ${String(vlan)}`);
    }
    await this.m.opened();
    this.m.resetDrawn(name);
    await this.m.sleep(this.m.lat('vnic', name, 'vnic create'));
    if (this.linkExists(name)) {
      throw hostError('DLADM_STATUS_EXIST', `cannot create VNIC ${name}: object already exists`);
    }
    if (!this.physical.includes(link) && !this.isPort(link)) {
      if (this.#vnics.has(link)) {
        throw hostError('DLADM_STATUS_LINKINVAL', `cannot create VNIC ${name} over ${link}: invalid link (a VNIC)`);
      }
      throw hostError('DLADM_STATUS_NOTFOUND', `cannot create VNIC ${name} over ${link}: object not found`);
    }
    const info: VnicInfo = { name, link, mac, vlan };
    this.#vnics.set(name, info);
    await this.m.persist();
    return { ...info };
  }

  async deleteVnic(name: string): Promise<void> {
    validateLinkName(name);
    await this.m.opened();
    await this.m.sleep(this.m.lat('vnic', name, 'vnic delete'));
    if (!this.#vnics.delete(name)) throw hostError('DLADM_STATUS_NOTFOUND', `cannot delete VNIC ${name}: object not found`);
    delete this.zoneOf[name];
    await this.m.persist();
  }

  listVnics(): VnicInfo[] {
    return [...this.#vnics.values()].map((v) => ({ ...v }));
  }

  linkExists(name: string): boolean {
    return this.#vnics.has(name) || this.physical.includes(name) || this.isPort(name);
  }

  /** Whether a VNIC goes over `link`. */
  hasVnicOver(link: string): boolean {
    for (const v of this.#vnics.values()) if (v.link === link) return true;
    return false;
  }

  vnic(name: string): VnicInfo | undefined {
    return this.#vnics.get(name);
  }

  /** Every link, physical first: what the global zone has. */
  linkNames(): string[] {
    return [...this.physical, ...this.#vnics.keys()];
  }
}

function randomMac(): string {
  // randomInt draws from a cached pool: randomBytes(3) cost 5-60 µs a call here, 5 ms of the
  // agent's loop when 100 VNICs are made at once.
  const n = randomInt(0, 2 ** 24);
  return ['02', '08', '20', ...[n >> 16, (n >> 8) & 0xff, n & 0xff].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}
