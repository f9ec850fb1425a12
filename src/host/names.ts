// The OS naming rules every Host backend enforces before it touches anything: link, zone and
// dataset names, MAC addresses, ZFS property names and maps, SMF service instance FMRIs. They are
// the system's own limits (dladm_valid_linkname, ZONENAME_REGEXP, zfs_namecheck.c, libscf), kept
// here rather than in src/illumos/ because the simulated host must refuse exactly what a sled
// would; and the names the agent claims as its own (the "ox"/"vopte" VNIC prefixes, oxide:uuid),
// which the managers need without naming a backend.
import type { SmfProfileInstance } from './index.js';

/** How a refused value appears in these errors: strings quoted, anything else as best it prints. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return typeof value === 'bigint' || typeof value === 'symbol' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// ---- links ----

/** MAXLINKNAMELEN: names are at most 31 characters. */
export const MAXLINKNAMELEN = 32;
/** Every VNIC the agent creates itself starts with this (omicron's VNIC_PREFIX). */
export const VNIC_PREFIX = 'ox';
/** Control-plane VNICs (omicron's VNIC_PREFIX_CONTROL). */
export const VNIC_PREFIX_CONTROL = 'oxControl';
/** Guest VNICs over OPTE ports (omicron's VNIC_PREFIX_GUEST). */
export const VNIC_PREFIX_GUEST = 'vopte';
/** The prefixes of VNICs the agent owns and removes at start-up. */
export const OWNED_VNIC_PREFIXES: readonly string[] = [VNIC_PREFIX, VNIC_PREFIX_GUEST];

/** A link name the rules refuse; nothing was asked of the system. */
export class InvalidLinkNameError extends Error {
  readonly code = 'ERR_INVALID_LINK_NAME';
  constructor(
    readonly linkName: unknown,
    reason: string,
  ) {
    super(`invalid link name ${describeValue(linkName)}: ${reason}`);
    this.name = 'InvalidLinkNameError';
  }
}

/** A VNIC argument other than a name that is refused before anything is asked of the system. */
export class InvalidVnicArgumentError extends Error {
  constructor(
    readonly code: 'ERR_INVALID_MAC' | 'ERR_OUT_OF_RANGE' | 'ERR_INVALID_ARG_TYPE',
    message: string,
  ) {
    super(message);
    this.name = 'InvalidVnicArgumentError';
  }
}

/**
 * Why `name` is not a valid link name, or null if it is. The rules of illumos's
 * dladm_valid_linkname: shorter than MAXLINKNAMELEN, not starting with a digit, ending in a number
 * without leading zeroes ("net0", "net10", not "net00"), only [A-Za-z0-9_.].
 */
export function linkNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'not a string';
  if (name.length === 0) return 'empty';
  if (name.length >= MAXLINKNAMELEN) return `longer than ${MAXLINKNAMELEN - 1} characters`;
  if (!/^[A-Za-z0-9_.]+$/.test(name)) return 'only letters, digits, "_" and "." are allowed';
  if (/^[0-9]/.test(name)) return 'starts with a digit';
  const number = /[0-9]+$/.exec(name)?.[0];
  if (number === undefined) return 'does not end in a digit';
  if (number.length > 1 && number.startsWith('0')) return 'its number has a leading zero';
  return null;
}

/** Returns `name` if it is a valid link name, else throws InvalidLinkNameError. */
export function validateLinkName(name: unknown): string {
  const problem = linkNameProblem(name);
  if (problem !== null) throw new InvalidLinkNameError(name, problem);
  return name as string;
}

const MAC_RE = /^[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}$/;

/** "a8:40:25:0:1:2" -> "a8:40:25:00:01:02"; throws InvalidVnicArgumentError if malformed. */
export function normalizeMac(mac: unknown): string {
  if (typeof mac !== 'string' || !MAC_RE.test(mac)) {
    throw new InvalidVnicArgumentError('ERR_INVALID_MAC', `invalid MAC address ${describeValue(mac)}: expected xx:xx:xx:xx:xx:xx`);
  }
  return mac
    .split(':')
    .map((octet) => octet.toLowerCase().padStart(2, '0'))
    .join(':');
}

/** True if `name` starts with one of the prefixes the agent owns. */
export function isOwnedVnicName(name: string, prefixes: readonly string[] = OWNED_VNIC_PREFIXES): boolean {
  return prefixes.some((p) => p.length > 0 && name.startsWith(p));
}

/** Which of the agent's kinds a VNIC name is, as omicron's VnicKind::from_name. */
export type VnicKind = 'oxide' | 'guest';

export function vnicKind(name: string): VnicKind | null {
  if (name.startsWith(VNIC_PREFIX)) return 'oxide';
  if (name.startsWith(VNIC_PREFIX_GUEST)) return 'guest';
  return null;
}

// ---- zones ----

/** ZONENAME_MAX (sys/zone.h), including the NUL. */
export const ZONENAME_MAX = 64;
/** ZONENAME_REGEXP (libzonecfg): what zonecfg_validate_zonename accepts. */
export const ZONENAME_REGEXP = /^[a-zA-Z0-9][-_.a-zA-Z0-9]{0,62}$/;

/** A name the system would refuse; thrown before any library call or exec. */
export class InvalidZoneNameError extends TypeError {
  readonly code = 'Z_BOGUS_ZONE_NAME';
  constructor(
    readonly zoneName: unknown,
    reason: string,
  ) {
    super(`invalid zone name ${typeof zoneName === 'string' ? JSON.stringify(zoneName) : String(zoneName)}: ${reason}`);
    this.name = 'InvalidZoneNameError';
  }
}

/**
 * Throws InvalidZoneNameError unless `name` is a zone name the system accepts: at most 63
 * characters (ZONENAME_MAX 64 with the NUL), ZONENAME_REGEXP, not "global" and not starting with
 * "SUNW" (reserved: zonecfg and zoneadm refuse them).
 */
export function validateZoneName(name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new InvalidZoneNameError(name, 'must be a string');
  if (name.length === 0) throw new InvalidZoneNameError(name, 'must not be empty');
  if (name.length >= ZONENAME_MAX) throw new InvalidZoneNameError(name, `must be at most ${ZONENAME_MAX - 1} characters`);
  if (!ZONENAME_REGEXP.test(name)) {
    throw new InvalidZoneNameError(name, 'must start with a letter or digit and contain only letters, digits, "-", "_" and "."');
  }
  if (name === 'global') throw new InvalidZoneNameError(name, '"global" is the global zone');
  if (name.startsWith('SUNW')) throw new InvalidZoneNameError(name, 'names starting with "SUNW" are reserved');
}

function invalidArgument(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_VALUE' });
}

/**
 * Throws a TypeError (code ERR_INVALID_ARG_VALUE) unless `zone` matches ZONENAME_REGEXP. Looser
 * than validateZoneName: where a zone is only observed (its SMF state, its events), "global" and
 * reserved names are legitimate.
 */
export function assertZoneName(zone: unknown): asserts zone is string {
  if (typeof zone !== 'string' || !ZONENAME_REGEXP.test(zone)) {
    throw invalidArgument(`invalid zone name ${JSON.stringify(zone)}: expected [a-zA-Z0-9][-_.a-zA-Z0-9]{0,62}`);
  }
}

// ---- datasets ----

/** ZFS_MAX_DATASET_NAME_LEN counts the NUL: names are at most 255 bytes. */
export const ZFS_MAX_DATASET_NAME_LEN = 256;
/** ZAP_MAXNAMELEN: user property names are at most 255 bytes. */
export const ZFS_MAX_PROPERTY_NAME_LEN = 256;
/** ZFS_MAXPROPLEN: user property values are at most 1023 bytes. */
export const ZFS_MAX_PROPERTY_VALUE_LEN = 1024;
/** The user property holding the id of the control-plane object a dataset belongs to. */
export const OXIDE_UUID_PROPERTY = 'oxide:uuid';

/** A dataset name the rules refuse; nothing was asked of the system. */
export class InvalidDatasetNameError extends Error {
  readonly code = 'ERR_INVALID_DATASET_NAME';
  constructor(
    readonly datasetName: unknown,
    readonly reason: string,
  ) {
    super(`invalid dataset name ${describeValue(datasetName)}: ${reason}`);
    this.name = 'InvalidDatasetNameError';
  }
}

/** A property map or list refused before anything is asked of the system. */
export class InvalidZfsPropertyError extends Error {
  readonly code = 'ERR_INVALID_ZFS_PROPERTY';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidZfsPropertyError';
  }
}

// valid_char() of usr/src/common/zfs/zfs_namecheck.c: letters, digits, '-', '_', '.', ':', ' '.
const COMPONENT_RE = /^[A-Za-z0-9\-_.: ]+$/;

/**
 * Why `name` is not a valid filesystem name, or null if it is. The rules of zfs_namecheck.c
 * (entity_namecheck) and zfs_validate_name for filesystems: 1..255 bytes, components separated
 * by '/' (no leading, trailing or doubled '/'), each of letters, digits, '-', '_', '.', ':' and
 * spaces, none "." or ".."; no '@' (snapshots) or '#' (bookmarks) or '%' (temporary clones); the
 * first component, the pool, begins with a letter (zpool_name_valid).
 */
export function datasetNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'not a string';
  if (name.length === 0) return 'empty';
  if (byteLength(name) >= ZFS_MAX_DATASET_NAME_LEN) return `longer than ${ZFS_MAX_DATASET_NAME_LEN - 1} bytes`;
  if (name.includes('@')) return "'@' (a snapshot) is not allowed in a filesystem name";
  if (name.includes('#')) return "'#' (a bookmark) is not allowed in a filesystem name";
  if (name.includes('%')) return "'%' is not allowed";
  if (name.startsWith('/')) return 'leading slash';
  if (name.endsWith('/')) return 'trailing slash';
  const components = name.split('/');
  for (const c of components) {
    if (c.length === 0) return 'empty component';
    if (c === '.' || c === '..') return `"${c}" component`;
    if (!COMPONENT_RE.test(c)) {
      const bad = [...c].find((ch) => !COMPONENT_RE.test(ch)) ?? '?';
      return `invalid character ${JSON.stringify(bad)}`;
    }
  }
  if (!/^[A-Za-z]/.test(name)) return 'the pool name must begin with a letter';
  return null;
}

/** Returns `name` if it is a valid filesystem name, else throws InvalidDatasetNameError. */
export function validateDatasetName(name: unknown): string {
  const problem = datasetNameProblem(name);
  if (problem !== null) throw new InvalidDatasetNameError(name, problem);
  return name as string;
}

/** The parent of "pool/a/b" is "pool/a"; a pool's root dataset has none. */
export function parentDataset(name: string): string | null {
  const i = name.lastIndexOf('/');
  return i < 0 ? null : name.slice(0, i);
}

/**
 * A user property name as zfs_prop_user() accepts it: lowercase letters, digits, '-', '_', '.',
 * ':', with at least one ':' ("oxide:uuid"), shorter than 256 bytes.
 */
export function isUserPropertyName(name: string): boolean {
  return /^[a-z0-9\-_.:]*:[a-z0-9\-_.:]*$/.test(name) && byteLength(name) < ZFS_MAX_PROPERTY_NAME_LEN;
}

function propertyNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty property name';
  if (name.includes('\0')) return `property name ${JSON.stringify(name)} contains NUL`;
  if (name.includes(':') && !isUserPropertyName(name)) {
    return `user property name ${JSON.stringify(name)} must be lowercase letters, digits, "-", "_", ".", ":" and shorter than 256 bytes`;
  }
  if (name === '__proto__') return 'property name "__proto__" is not allowed';
  return null;
}

/** Checks a property map's shape (names, string values, no NUL); the backend checks the rest. */
export function validatePropertyMap(props: unknown): Record<string, string> {
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    throw new InvalidZfsPropertyError(`properties must be an object of strings, got ${describeValue(props)}`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(props)) {
    const problem = propertyNameProblem(key);
    if (problem !== null) throw new InvalidZfsPropertyError(problem);
    if (typeof value !== 'string') throw new InvalidZfsPropertyError(`property ${key} must be a string, got ${describeValue(value)}`);
    if (value.includes('\0')) throw new InvalidZfsPropertyError(`property ${key} contains NUL`);
    if (isUserPropertyName(key) && byteLength(value) >= ZFS_MAX_PROPERTY_VALUE_LEN) {
      throw new InvalidZfsPropertyError(`user property ${key} is longer than ${ZFS_MAX_PROPERTY_VALUE_LEN - 1} bytes`);
    }
    out[key] = value;
  }
  return out;
}

/** Checks a list of property names to read. */
export function validatePropertyList(props: unknown): string[] {
  if (!Array.isArray(props)) throw new InvalidZfsPropertyError(`property list must be an array, got ${describeValue(props)}`);
  return props.map((p: unknown) => {
    if (typeof p !== 'string') throw new InvalidZfsPropertyError(`property names must be strings, got ${describeValue(p)}`);
    const problem = propertyNameProblem(p);
    if (problem !== null) throw new InvalidZfsPropertyError(problem);
    return p;
  });
}

// ---- SMF ----

/** The restarter states (libscf.h SCF_STATE_STRING_*; "none" is only ever a next_state). */
export const SMF_STATES = ['uninitialized', 'offline', 'online', 'degraded', 'maintenance', 'disabled', 'legacy_run'] as const;

/** "svc:/<service path>:<instance>", the form scf_handle_decode_fmri takes for an instance. */
const FMRI_RE = /^svc:\/[A-Za-z0-9][-_.,+A-Za-z0-9]*(?:\/[A-Za-z0-9][-_.,+A-Za-z0-9]*)*:[A-Za-z0-9_][-_.,+A-Za-z0-9]*$/;
/** Comfortably under scf_limit(SCF_LIMIT_MAX_FMRI_LENGTH). */
const FMRI_MAX = 1024;

/** Throws a TypeError (code ERR_INVALID_ARG_VALUE) unless `fmri` is a service instance FMRI. */
export function assertInstanceFmri(fmri: unknown): asserts fmri is string {
  if (typeof fmri !== 'string' || fmri.length > FMRI_MAX || !FMRI_RE.test(fmri)) {
    throw invalidArgument(`invalid service instance FMRI ${JSON.stringify(fmri)}: expected svc:/<service>:<instance>`);
  }
}

/** A property group's or a property's name, as svccfg takes them. */
const SMF_NAME_RE = /^[A-Za-z0-9_][-_.,+A-Za-z0-9]*$/;

/**
 * A zone's site profile checked (each instance's FMRI, `enabled`, and properties named `pg/prop`
 * with string values) and copied: what every backend's zones.setProfile takes. TypeError (code
 * ERR_INVALID_ARG_VALUE) otherwise.
 */
export function validateSmfProfile(profile: unknown): SmfProfileInstance[] {
  if (!Array.isArray(profile)) throw invalidArgument('the site profile must be an array of instances');
  return profile.map((inst: Partial<SmfProfileInstance> | null, i) => {
    assertInstanceFmri(inst?.fmri);
    if (typeof inst!.enabled !== 'boolean') throw invalidArgument(`profile[${i}].enabled must be a boolean`);
    const properties = inst!.properties ?? {};
    for (const [key, value] of Object.entries(properties)) {
      const [pg, prop, ...rest] = key.split('/');
      if (rest.length > 0 || !SMF_NAME_RE.test(pg ?? '') || !SMF_NAME_RE.test(prop ?? '') || typeof value !== 'string') {
        throw invalidArgument(`profile[${i}].properties: ${JSON.stringify(key)} must be named pg/prop, with a string value`);
      }
    }
    return { fmri: inst!.fmri, enabled: inst!.enabled, properties: { ...properties } };
  });
}
