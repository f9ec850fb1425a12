// VNICs and links over the addon's libdladm binding (native/dladm.cc): every argument checked
// against the link rules (src/host/names.ts) before any native call, the `ox<Scope><n>` allocator
// of omicron's illumos/vnic.rs, and an RAII-style Vnic that deletes its link once.
import {
  InvalidLinkNameError,
  InvalidVnicArgumentError,
  isOwnedVnicName,
  normalizeMac,
  OWNED_VNIC_PREFIXES,
  validateLinkName,
  validateZoneName,
  VNIC_PREFIX,
  vnicKind,
  type VnicKind,
} from '../host/names.js';
import { loadNative } from './addon.js';
import type { DladmNative, NativeLinkInfo, NativeVnic } from './native-types/dladm.js';

function checkInteger(what: string, value: unknown, lo: number, hi: number): number {
  if (typeof value !== 'number') throw new InvalidVnicArgumentError('ERR_INVALID_ARG_TYPE', `${what} must be a number`);
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new InvalidVnicArgumentError('ERR_OUT_OF_RANGE', `${what} must be an integer from ${lo} to ${hi}, got ${value}`);
  }
  return value;
}

export interface CreateVnicOptions {
  name: string;
  /** The physical link or etherstub it goes over. */
  link: string;
  /** Fixed MAC "xx:xx:xx:xx:xx:xx"; random (02:08:20:...) when absent. */
  mac?: string;
  /** 802.1Q VLAN id, 1..4094; untagged when absent. */
  vlan?: number;
  /** MTU to set on the new VNIC (the library checks it against the link's range). */
  mtu?: number;
}

function dladm(native?: DladmNative): DladmNative {
  return native ?? loadNative();
}

/** Creates a temporary VNIC. Every argument is checked before any native call. */
export async function createVnic(options: CreateVnicOptions, native?: DladmNative): Promise<NativeVnic> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidVnicArgumentError('ERR_INVALID_ARG_TYPE', 'options must be an object');
  }
  const name = validateLinkName(options.name);
  const link = validateLinkName(options.link);
  const mac = options.mac === undefined ? undefined : normalizeMac(options.mac);
  const vlan = options.vlan === undefined ? undefined : checkInteger('vlan', options.vlan, 1, 4094);
  const mtu = options.mtu === undefined ? undefined : checkInteger('mtu', options.mtu, 68, 65535);
  return dladm(native).vnicCreate({ name, link, mac, vlan, mtu });
}

/** Deletes a VNIC by name. */
export async function deleteVnic(name: string, native?: DladmNative): Promise<void> {
  await dladm(native).vnicDelete(validateLinkName(name));
}

/** Every VNIC on the system. */
export async function listVnics(native?: DladmNative): Promise<NativeVnic[]> {
  return dladm(native).vnicList();
}

/** Any link (physical, etherstub, VNIC, ...) by name. */
export async function lookupLink(name: string, native?: DladmNative): Promise<NativeLinkInfo> {
  return dladm(native).linkLookup(validateLinkName(name));
}

/**
 * Gives a link to a ready or running exclusive-IP zone until the zone halts, as zoneadmd does for
 * each `net` of the zone's configuration when it readies the zone (native/dladm.cc says what was
 * confirmed). The zone's configuration is not changed.
 */
export async function setLinkZone(link: string, zone: string, native?: DladmNative): Promise<void> {
  validateZoneName(zone);
  await dladm(native).linkSetZone(validateLinkName(link), zone);
}

/** The zone a link is in now; null in the global zone. */
export async function linkZone(link: string, native?: DladmNative): Promise<string | null> {
  return dladm(native).linkZone(validateLinkName(link));
}

/**
 * The VNICs an earlier run of the agent left behind (omicron deletes every VNIC starting with
 * "ox" or "vopte" at start-up). Wrap them with Vnic.wrapExisting to release them.
 */
export async function listOwnedVnics(
  prefixes: readonly string[] = OWNED_VNIC_PREFIXES,
  native?: DladmNative,
): Promise<NativeVnic[]> {
  const all = await dladm(native).vnicList();
  return all.filter((v) => isOwnedVnicName(v.name, prefixes));
}

/**
 * A VNIC the agent owns: release() deletes it, once. Ownership is by convention; another process
 * in the global zone could still delete it. Use with `await using` (Symbol.asyncDispose) or call
 * release() in a finally.
 */
export class Vnic {
  #release: Promise<void> | null = null;

  private constructor(
    readonly name: string,
    readonly kind: VnicKind,
    readonly info: NativeVnic | null,
    private readonly native: DladmNative | undefined,
  ) {}

  /** Creates a VNIC and owns it. Its name must have an owned prefix ("ox", "vopte"). */
  static async create(options: CreateVnicOptions, native?: DladmNative): Promise<Vnic> {
    const name = validateLinkName(options.name);
    const kind = vnicKind(name);
    if (kind === null) throw new InvalidLinkNameError(name, `not a name the agent owns (${OWNED_VNIC_PREFIXES.join(', ')})`);
    const info = await createVnic(options, native);
    return new Vnic(info.name, kind, info, native);
  }

  /** Takes ownership of an existing VNIC (start-up adoption); throws for a name the agent does not own. */
  static wrapExisting(vnic: string | NativeVnic, native?: DladmNative): Vnic {
    const name = typeof vnic === 'string' ? vnic : vnic.name;
    validateLinkName(name);
    const kind = vnicKind(name);
    if (kind === null) throw new InvalidLinkNameError(name, 'not a VNIC the sled agent manages');
    return new Vnic(name, kind, typeof vnic === 'string' ? null : vnic, native);
  }

  get released(): boolean {
    return this.#release !== null;
  }

  /** Deletes the VNIC the first time; every later call returns that same outcome. */
  release(): Promise<void> {
    this.#release ??= deleteVnic(this.name, this.native);
    return this.#release;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/**
 * Allocates VNIC names unique within a scope, as omicron's VnicAllocator: `ox<Scope><n>` with
 * one counter shared by an allocator and its superscopes (new VnicAllocator("Foo") gives oxFoo0,
 * oxFoo1; its superscope "Baz" then gives oxBazFoo2).
 */
export class VnicAllocator {
  readonly #counter: { value: number };

  constructor(
    readonly scope: string,
    /** The physical link or etherstub its VNICs go over. */
    readonly link: string,
    private readonly native?: DladmNative,
    counter?: { value: number },
  ) {
    // The scope sits between the prefix and the counter: it must not end in a digit, or the
    // counter would merge into its number (and "oxFoo0" + 5 would be the invalid "oxFoo05").
    if (!/^[A-Za-z_.]([A-Za-z0-9_.]*[A-Za-z_.])?$|^$/.test(scope)) {
      throw new InvalidLinkNameError(scope, 'an allocator scope is [A-Za-z0-9_.]* and does not begin or end with a digit');
    }
    this.#counter = counter ?? { value: 0 };
  }

  /** A new allocator sharing this one's counter, with `scope` before this one's. */
  newSuperscope(scope: string): VnicAllocator {
    return new VnicAllocator(`${scope}${this.scope}`, this.link, this.native, this.#counter);
  }

  /** The next name, e.g. "oxFoo0"; it must still be a valid link name when used. */
  next(): string {
    return `${VNIC_PREFIX}${this.scope}${this.#counter.value++}`;
  }

  /** A control-plane VNIC (`oxControl<Scope><n>`) over this allocator's link. */
  async newControl(mac?: string): Promise<Vnic> {
    const name = this.newSuperscope('Control').next();
    return Vnic.create({ name, link: this.link, ...(mac === undefined ? {} : { mac }) }, this.native);
  }
}
