// What native/zfs.cc exports. Every function returns a Promise and never throws: bad arguments
// reject with a TypeError (code ERR_INVALID_ARG_TYPE: not a string, a non-string property value,
// a string containing NUL); library failures reject with an Error whose code is the EZFS_
// constant's name from libzfs_errno() (EZFS_EXISTS, EZFS_NOENT, EZFS_INVALIDNAME, EZFS_BADPROP,
// EZFS_ZONED, ...; "EZFS_<n>" for a number this build does not know) and whose message is
// libzfs_error_description() ("dataset already exists", "parent does not exist", ...); ENOLIB
// when libzfs.so.1 or libnvpair.so.1 is absent; an errno name (ENOENT, EACCES, ...) when
// libzfs_init() fails (no /dev/zfs). Naming rules are not checked here (see ../zfs.ts).

/** Where a property's value comes from (zprop_source_t). */
export type ZfsPropertySource = 'local' | 'default' | 'inherited' | 'temporary' | 'received' | 'none';

export interface NativeZfsPropertyValue {
  /** The library's literal (parsable) form, as `zfs get -Hp` prints it: sizes in bytes, "on"/"off". */
  value: string;
  source: ZfsPropertySource;
  /** For "inherited": the dataset the value is set on. */
  from: string | null;
}

export interface NativeMountState {
  mounted: boolean;
  /** Where it is mounted; null when not mounted. */
  mountpoint: string | null;
}

/**
 * A size in bytes: a number when below 2^53 (exact), else its decimal string (pools of 8 PiB and
 * more), so no figure is ever rounded.
 */
export type NativeByteCount = number | string;

export interface NativePool {
  name: string;
  size: NativeByteCount;
  allocated: NativeByteCount;
  free: NativeByteCount;
  /** ZPOOL_PROP_HEALTH: "ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "REMOVED", "UNAVAIL". */
  health: string;
}

export interface ZfsNative {
  /**
   * zfs_create(ZFS_TYPE_FILESYSTEM) with `props` as an nvlist of strings in user form
   * ("mountpoint" -> "/data", "zoned" -> "on", "quota" -> "10G", "oxide:uuid" -> "..."). Does not
   * mount. Fails EZFS_NOENT (missing pool or parent), EZFS_EXISTS, EZFS_INVALIDNAME,
   * EZFS_BADPROP, EZFS_PROPREADONLY, EZFS_ZONED, ...
   */
  datasetCreate(name: string, props?: Record<string, string>): Promise<void>;
  /**
   * zfs_mount(name, NULL, 0). Like libzfs (not the CLI), succeeds WITHOUT mounting when the
   * dataset may not be mounted here (mountpoint none/legacy, canmount=off, zoned=on seen from the
   * global zone); the result says whether it is mounted. Mounting a mounted dataset fails
   * EZFS_MOUNTFAILED.
   */
  datasetMount(name: string): Promise<NativeMountState>;
  /** zfs_unmount if mounted (a no-op otherwise). */
  datasetUnmount(name: string): Promise<NativeMountState>;
  /**
   * Native properties (zfs_prop_get, literal) and user properties (inherited ones included);
   * null for an unset user property or a property that does not apply. An unknown native name
   * rejects EZFS_BADPROP.
   */
  datasetGet(name: string, props: string[], options?: { sources?: false }): Promise<Record<string, string | null>>;
  datasetGet(
    name: string,
    props: string[],
    options: { sources: true },
  ): Promise<Record<string, NativeZfsPropertyValue | null>>;
  /** zfs_prop_set_list: every property in one ioctl, so all are set or none is. */
  datasetSet(name: string, props: Record<string, string>): Promise<void>;
  /** The full names of `parent`'s direct child filesystems (zfs_iter_filesystems), sorted. */
  datasetList(parent: string): Promise<string[]>;
  /**
   * Unmounts (if mounted) then zfs_destroy(B_FALSE). Not recursive: a dataset with children
   * fails EZFS_EXISTS ("dataset already exists", the kernel's EEXIST).
   */
  datasetDestroy(name: string): Promise<void>;
  /** zpool_iter: every imported pool, sorted by name. */
  poolList(): Promise<NativePool[]>;
}
