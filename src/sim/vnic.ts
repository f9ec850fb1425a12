// Links on the simulated host: the physical links and etherstubs it was given, and the VNICs
// over them, with dladm's error codes (as the illumos backend's vnic.ts over libdladm). The VNICs
// are persisted; a VNIC cannot go over another VNIC. OPTE's xde ports (opte.ts) are links too: a
// VNIC (vopteN) can go over one, and no VNIC can take a port's name.
import { randomInt } from 'node:crypto';
import { hostError, type VnicInfo, type VnicSpec } from '../host/index.js';
import { InvalidVnicArgumentError, normalizeMac, validateLinkName } from '../host/names.js';
import type { SimMachine } from './machine.js';

export class SimLinks {
  /** Physical links and etherstubs VNICs can go over. */
  readonly physical: readonly string[];
  /** Persisted. */
  vnics: VnicInfo[] = [];

  constructor(
    private readonly m: SimMachine,
    physical: readonly string[],
    /** Whether an xde port of that name exists. */
    private readonly isPort: (name: string) => boolean = () => false,
  ) {
    this.physical = physical.map((l) => validateLinkName(l));
  }

  restore(vnics: VnicInfo[]): void {
    this.vnics = vnics;
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
    if (this.physical.includes(name) || this.isPort(name) || this.vnics.some((v) => v.name === name)) {
      throw hostError('DLADM_STATUS_EXIST', `cannot create VNIC ${name}: object already exists`);
    }
    if (!this.physical.includes(link) && !this.isPort(link)) {
      if (this.vnics.some((v) => v.name === link)) {
        throw hostError('DLADM_STATUS_LINKINVAL', `cannot create VNIC ${name} over ${link}: invalid link (a VNIC)`);
      }
      throw hostError('DLADM_STATUS_NOTFOUND', `cannot create VNIC ${name} over ${link}: object not found`);
    }
    const info: VnicInfo = { name, link, mac, vlan };
    this.vnics.push(info);
    await this.m.persist();
    return { ...info };
  }

  async deleteVnic(name: string): Promise<void> {
    validateLinkName(name);
    await this.m.opened();
    await this.m.sleep(this.m.lat('vnic', name, 'vnic delete'));
    const i = this.vnics.findIndex((v) => v.name === name);
    if (i < 0) throw hostError('DLADM_STATUS_NOTFOUND', `cannot delete VNIC ${name}: object not found`);
    this.vnics.splice(i, 1);
    await this.m.persist();
  }

  listVnics(): VnicInfo[] {
    return this.vnics.map((v) => ({ ...v }));
  }

  linkExists(name: string): boolean {
    return this.physical.includes(name) || this.isPort(name) || this.vnics.some((v) => v.name === name);
  }

  /** Whether a VNIC goes over `link`. */
  hasVnicOver(link: string): boolean {
    return this.vnics.some((v) => v.link === link);
  }

  vnic(name: string): VnicInfo | undefined {
    return this.vnics.find((v) => v.name === name);
  }

  /** Every link, physical first: what the global zone has. */
  linkNames(): string[] {
    return [...this.physical, ...this.vnics.map((v) => v.name)];
  }
}

function randomMac(): string {
  // randomInt draws from a cached pool: randomBytes(3) cost 5-60 µs a call here, 5 ms of the
  // agent's loop when 100 VNICs are made at once.
  const n = randomInt(0, 2 ** 24);
  return ['02', '08', '20', ...[n >> 16, (n >> 8) & 0xff, n & 0xff].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}
