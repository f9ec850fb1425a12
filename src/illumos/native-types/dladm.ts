// What native/dladm.cc exports. Every function returns a Promise and never throws: bad arguments
// reject with a TypeError (code ERR_INVALID_ARG_TYPE, or ERR_INVALID_ARG_VALUE for an empty name,
// one with NUL, or a malformed MAC) or a RangeError (ERR_OUT_OF_RANGE: a name of 32 bytes or more,
// vlan outside 0..65535, mtu outside 1..2^32-1); library failures reject with an Error whose code
// is the dladm_status_t constant (DLADM_STATUS_NOTFOUND, DLADM_STATUS_EXIST, ...) and whose message
// is dladm_status2str's text; ENOLIB when libdladm.so.1 is absent; EABI when its
// dladm_vnic_create is a form we do not call. Naming rules are not checked here (see ../vnic.ts).

/** A link's class (datalink_class_t), as a string. */
export type LinkClass =
  | 'phys'
  | 'vlan'
  | 'aggr'
  | 'vnic'
  | 'etherstub'
  | 'simnet'
  | 'bridge'
  | 'iptun'
  | 'part'
  | 'overlay'
  | 'misc'
  | 'unknown';

export interface NativeVnicCreateOptions {
  /** The new VNIC's name (1..31 bytes). */
  name: string;
  /** The link it goes over: a physical link or an etherstub. */
  link: string;
  /** "xx:xx:xx:xx:xx:xx" for a fixed MAC; a random one (prefix 02:08:20) when absent. */
  mac?: string | null;
  /** VLAN id; 0 or absent for untagged. */
  vlan?: number | null;
  /** MTU, set on the active link after creation. */
  mtu?: number | null;
}

export interface NativeVnic {
  name: string;
  linkId: number;
  /** The name of the link it is over (null if that link is gone). */
  overLink: string | null;
  overLinkId: number;
  /** Lower-case, colon-separated. */
  mac: string;
  /** null when untagged. */
  vlan: number | null;
  /** The current MTU, or null if the library would not say. */
  mtu: number | null;
}

export interface NativeLinkInfo {
  name: string;
  linkId: number;
  class: LinkClass;
  /** DLMGMT_ACTIVE 0x1 | DLMGMT_PERSIST 0x2 | DLMGMT_TRANSIENT 0x4. */
  flags: number;
}

export interface DladmNative {
  /** A temporary (DLADM_OPT_ACTIVE only) VNIC. A failure after creation deletes it again. */
  vnicCreate(options: NativeVnicCreateOptions): Promise<NativeVnic>;
  /** Deletes a VNIC by name (DLADM_STATUS_NOTFOUND if there is no such link). */
  vnicDelete(name: string): Promise<void>;
  /** Every active VNIC. */
  vnicList(): Promise<NativeVnic[]>;
  /** Any link by name. */
  linkLookup(name: string): Promise<NativeLinkInfo>;
  /**
   * Gives a link to a ready or running zone (the active `zone` link property, as
   * `dladm set-linkprop -t -p zone=<zone>`). DLADM_STATUS_NOTFOUND for an unknown link,
   * DLADM_STATUS_BADVAL for a zone not in the kernel (or shared-IP). A zone name of 64 bytes or
   * more is a RangeError (ZONENAME_MAX).
   */
  linkSetZone(link: string, zone: string): Promise<void>;
  /** The zone a link is in (the `zone` property); null in the global zone. */
  linkZone(link: string): Promise<string | null>;
  /** Which dladm_vnic_create form the library has (probed once per handle, without side effects). */
  dladmAbi(): Promise<{ vnicCreateArgs: 14 | 15 }>;
}
