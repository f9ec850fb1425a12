// What native/zonecfg.cc exports: libzonecfg on its one dedicated thread. Every function returns
// a Promise; argument type errors throw synchronously (TypeError, code ERR_INVALID_ARG_TYPE, or
// ERR_INVALID_ARG_VALUE for a string with a NUL byte). Rejections are NativeErrors whose code is
// the Z_* constant's name (Z_NO_ZONE, Z_NAME_IN_USE, Z_BAD_ZONE_STATE, Z_TOO_BIG, ...) and whose
// message is zonecfg_strerror()'s text, or ENOLIB when libzonecfg is not loaded.

/** A NIC: `add net; set physical=...` (exclusive-IP: allowed-address and defrouter optional). */
export interface NativeZoneNet {
  /** The link (a VNIC); at most 31 bytes (LIFNAMSIZ). */
  physical: string;
  /** At most 45 bytes (INET6_ADDRSTRLEN). Absent when not set. */
  allowedAddress?: string;
  /** At most 45 bytes. Absent when not set. */
  defrouter?: string;
}

/** `add device; set match=...` (at most 1023 bytes). */
export interface NativeZoneDevice {
  match: string;
}

/** `add dataset; set name=...` (at most 255 bytes). */
export interface NativeZoneDataset {
  name: string;
}

/** `add fs; set special=...; set dir=...; set type=...; add options [...]`. */
export interface NativeZoneFs {
  /** At most 1023 bytes. */
  special: string;
  /** The mount point in the zone; at most 1023 bytes. */
  dir: string;
  /** "lofs", "zfs", ...; at most 15 bytes (FSTYPSZ). */
  type: string;
  /** Mount options, each at most 1023 bytes. */
  options: string[];
}

/** A zone configuration, as zoneConfigure takes it and zoneConfig returns it. */
export interface NativeZoneDesc {
  /** The zone name (zonecfg_validate_zonename: Z_BOGUS_ZONE_NAME otherwise). */
  name: string;
  /** At most 255 bytes. */
  brand: string;
  /** An absolute path (Z_BAD_PROPERTY otherwise), at most 1023 bytes. */
  zonepath: string;
  autoboot: boolean;
  ipType: 'exclusive' | 'shared';
  nets: NativeZoneNet[];
  devices: NativeZoneDevice[];
  datasets: NativeZoneDataset[];
  fs: NativeZoneFs[];
}

/** What zoneConfigure accepts: autoboot defaults to false, ipType to exclusive, lists to []. */
export type NativeZoneDescInput = Pick<NativeZoneDesc, 'name' | 'brand' | 'zonepath'> &
  Partial<Pick<NativeZoneDesc, 'autoboot' | 'ipType' | 'nets' | 'devices' | 'datasets'>> & {
    fs?: Array<Omit<NativeZoneFs, 'options'> & { options?: string[] }>;
  };

/** A zone state as zone_state_str() names it. */
export type ZoneState =
  | 'configured'
  | 'incomplete'
  | 'installed'
  | 'ready'
  | 'running'
  | 'shutting_down'
  | 'down'
  | 'mounted'
  | 'unknown';

/** One entry of the zone index (including "global"), with its current state. */
export interface NativeZoneListEntry {
  name: string;
  /** zone_get_state(): the kernel's view for a zone that exists there, else the index's. */
  state: ZoneState;
  path: string;
  /** Absent until the zone is installed. */
  uuid?: string;
  brand: string;
}

export interface ZonecfgNative {
  /**
   * Creates a zone configuration from a template ("SUNWblank"), as `zonecfg create -b`.
   * Rejects with Z_NAME_IN_USE if a zone of that name exists (libzonecfg itself would overwrite
   * it), Z_BOGUS_ZONE_NAME for a name libzonecfg refuses, Z_TOO_BIG when a value does not fit
   * its field (the message names the field), Z_BAD_PROPERTY for a relative zonepath.
   */
  zoneConfigure(desc: NativeZoneDescInput): Promise<void>;
  /** Reads a configuration back (Z_NO_ZONE if there is none). */
  zoneConfig(name: string): Promise<NativeZoneDesc>;
  /** Every zone in the index, with its state. */
  zoneList(): Promise<NativeZoneListEntry[]>;
  /**
   * zone_get_state(name) for one zone (the kernel's view if it exists there, else the index's);
   * null if there is no such zone. Reads that zone alone, where zoneList reads each zone's
   * configuration for its brand.
   */
  zoneState(name: string): Promise<ZoneState | null>;
  /**
   * zonecfg_destroy(name, force): Z_NO_ZONE if unknown; Z_BAD_ZONE_STATE if the zone is above
   * installed, or above configured without `force`.
   */
  zoneDelete(name: string, force?: boolean): Promise<void>;
}
