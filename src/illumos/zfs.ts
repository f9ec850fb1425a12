// ZFS datasets and pools over the addon's libzfs binding (native/zfs.cc): names and property maps
// checked against the rules (src/host/names.ts) before any native call, and ensureDataset(), the
// create-or-verify step of omicron's storage manager (a dataset that exists must have the
// expected mountpoint and zoned setting, and its `oxide:uuid` must be the expected one; a missing
// uuid is written, a different one is refused).
import {
  describeValue,
  InvalidDatasetNameError,
  InvalidZfsPropertyError,
  OXIDE_UUID_PROPERTY,
  parentDataset,
  validateDatasetName,
  validatePropertyList,
  validatePropertyMap,
} from '../host/names.js';
import { isNativeError, loadNative } from './addon.js';
import type { NativeMountState, NativePool, NativeZfsPropertyValue, ZfsNative } from './native-types/zfs.js';

/**
 * A libzfs failure, with the library's EZFS_ code (EZFS_EXISTS, EZFS_NOENT, ...; or ENOLIB) and
 * its message prefixed by what was being done, as the zfs command prints it.
 */
export class ZfsError extends Error {
  constructor(
    readonly code: string,
    readonly action: string,
    readonly description: string,
    options?: { cause?: unknown },
  ) {
    super(`${action}: ${description}`, options);
    this.name = 'ZfsError';
  }
}

/** ensureDataset found the dataset, but not as asked; nothing was changed. */
export class DatasetMismatchError extends Error {
  readonly code = 'ERR_DATASET_MISMATCH';
  constructor(
    readonly datasetName: string,
    readonly property: string,
    readonly expected: string,
    readonly actual: string | null,
  ) {
    super(
      property === OXIDE_UUID_PROPERTY
        ? `dataset ${datasetName} belongs to ${actual ?? '(none)'}, not ${expected}: refusing to reuse it`
        : `dataset ${datasetName} exists with ${property}=${actual ?? '(unset)'}, expected ${expected}`,
    );
    this.name = 'DatasetMismatchError';
  }
}

// Native failures become ZfsError with the same code, prefixed like the zfs command's messages.
async function call<T>(action: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isNativeError(err) && err.code !== 'ERR_INVALID_ARG_TYPE') throw new ZfsError(err.code, action, err.message, { cause: err });
    throw err;
  }
}

function native(n?: ZfsNative): ZfsNative {
  return n ?? loadNative();
}

/**
 * Creates a filesystem (not its parents; not mounted: see mountDataset). The name must have a
 * parent ("pool/name"). Rejects InvalidDatasetNameError / InvalidZfsPropertyError before any
 * native call; ZfsError EZFS_NOENT (no pool, no parent), EZFS_EXISTS, EZFS_BADPROP, ...
 */
export async function createDataset(name: string, props: Record<string, string> = {}, zfs?: ZfsNative): Promise<void> {
  validateDatasetName(name);
  if (parentDataset(name) === null) throw new InvalidDatasetNameError(name, 'a pool name alone: a dataset needs a parent');
  const checked = validatePropertyMap(props);
  await call(`cannot create '${name}'`, () => native(zfs).datasetCreate(name, checked));
}

/**
 * Mounts a filesystem at its mountpoint. Resolves {mounted: false} (and does nothing) when it may
 * not be mounted here, as libzfs does: mountpoint none/legacy, canmount=off, or zoned=on from the
 * global zone (a zone mounts its delegated datasets itself).
 */
export async function mountDataset(name: string, zfs?: ZfsNative): Promise<NativeMountState> {
  validateDatasetName(name);
  return call(`cannot mount '${name}'`, () => native(zfs).datasetMount(name));
}

/** Unmounts a filesystem if it is mounted. */
export async function unmountDataset(name: string, zfs?: ZfsNative): Promise<NativeMountState> {
  validateDatasetName(name);
  return call(`cannot unmount '${name}'`, () => native(zfs).datasetUnmount(name));
}

/**
 * Property values in `zfs get -Hp` form (sizes in bytes, "on"/"off"); null for an unset user
 * property. Native names are checked by the library (EZFS_BADPROP "invalid property").
 */
export async function getDatasetProperties(name: string, props: string[], zfs?: ZfsNative): Promise<Record<string, string | null>> {
  validateDatasetName(name);
  const list = validatePropertyList(props);
  return call(`cannot get properties of '${name}'`, () => native(zfs).datasetGet(name, list));
}

/** As getDatasetProperties, with each value's source ("local", "inherited" from a dataset, ...). */
export async function getDatasetPropertySources(
  name: string,
  props: string[],
  zfs?: ZfsNative,
): Promise<Record<string, NativeZfsPropertyValue | null>> {
  validateDatasetName(name);
  const list = validatePropertyList(props);
  return call(`cannot get properties of '${name}'`, () => native(zfs).datasetGet(name, list, { sources: true }));
}

/** Sets properties, all at once (all or none). */
export async function setDatasetProperties(name: string, props: Record<string, string>, zfs?: ZfsNative): Promise<void> {
  validateDatasetName(name);
  const checked = validatePropertyMap(props);
  await call(`cannot set property for '${name}'`, () => native(zfs).datasetSet(name, checked));
}

/** The direct child filesystems of `parent` (full names, sorted). */
export async function listChildDatasets(parent: string, zfs?: ZfsNative): Promise<string[]> {
  validateDatasetName(parent);
  return call(`cannot list '${parent}'`, () => native(zfs).datasetList(parent));
}

/** Unmounts and destroys a filesystem; not recursive (children: ZfsError EZFS_EXISTS). */
export async function destroyDataset(name: string, zfs?: ZfsNative): Promise<void> {
  validateDatasetName(name);
  await call(`cannot destroy '${name}'`, () => native(zfs).datasetDestroy(name));
}

/** Whether the filesystem exists (any failure other than EZFS_NOENT is thrown). */
export async function datasetExists(name: string, zfs?: ZfsNative): Promise<boolean> {
  try {
    await getDatasetProperties(name, ['name'], zfs);
    return true;
  } catch (err) {
    if (err instanceof ZfsError && err.code === 'EZFS_NOENT') return false;
    throw err;
  }
}

/** Every imported pool: size, allocated and free in bytes (numbers; decimal strings from 2^53 up). */
export async function listPools(zfs?: ZfsNative): Promise<NativePool[]> {
  return call('cannot list pools', () => native(zfs).poolList());
}

/** A pool figure as a bigint, whichever form it came in. */
export function byteCount(value: number | string): bigint {
  return BigInt(value);
}

export interface EnsureDatasetOptions {
  /** zoned=on: delegated to a zone, which mounts it itself (never mounted here). Default false. */
  zoned?: boolean;
  /** The mountpoint (an absolute path, "none" or "legacy"); unchecked and inherited if absent. */
  mountpoint?: string;
  /** The expected `oxide:uuid`; written if the dataset has none of its own, refused if different. */
  uuid?: string;
  /** Other properties to create it with (not checked on an existing dataset). */
  props?: Record<string, string>;
}

export interface EnsureDatasetResult {
  name: string;
  /** True if this call created it. */
  created: boolean;
  /** Mounted after the call (never for a zoned dataset). */
  mounted: boolean;
  mountpoint: string | null;
}

/**
 * Makes sure a filesystem exists as described, as omicron's storage manager does before using a
 * dataset: created (with zoned, mountpoint, oxide:uuid and `props`) if absent; if present, its
 * mountpoint and zoned setting must match (DatasetMismatchError otherwise) and its own
 * `oxide:uuid`, if it has one, must be `uuid` (DatasetMismatchError, nothing changed) - an
 * inherited uuid belongs to an ancestor and does not count; a missing one is written. A dataset
 * that is not zoned is then mounted (a no-op if it already is or may not be).
 */
export async function ensureDataset(name: string, options: EnsureDatasetOptions = {}, zfs?: ZfsNative): Promise<EnsureDatasetResult> {
  validateDatasetName(name);
  const zoned = options.zoned ?? false;
  const { mountpoint, uuid } = options;
  if (mountpoint !== undefined && mountpoint !== 'none' && mountpoint !== 'legacy' && !mountpoint.startsWith('/')) {
    throw new InvalidZfsPropertyError(`mountpoint must be an absolute path, "none" or "legacy", got ${describeValue(mountpoint)}`);
  }
  const createProps: Record<string, string> = { ...validatePropertyMap(options.props ?? {}), zoned: zoned ? 'on' : 'off' };
  if (mountpoint !== undefined) createProps.mountpoint = mountpoint;
  if (uuid !== undefined) {
    if (uuid.length === 0) throw new InvalidZfsPropertyError('uuid must not be empty');
    createProps[OXIDE_UUID_PROPERTY] = uuid;
  }
  validatePropertyMap(createProps);

  let created = false;
  let current: Record<string, NativeZfsPropertyValue | null> | null = null;
  try {
    current = await getDatasetPropertySources(name, ['zoned', 'mountpoint', OXIDE_UUID_PROPERTY], zfs);
  } catch (err) {
    if (!(err instanceof ZfsError && err.code === 'EZFS_NOENT')) throw err;
  }
  if (current === null) {
    try {
      await createDataset(name, createProps, zfs);
      created = true;
    } catch (err) {
      // Someone else created it in between: verify it like any existing dataset.
      if (!(err instanceof ZfsError && err.code === 'EZFS_EXISTS')) throw err;
      current = await getDatasetPropertySources(name, ['zoned', 'mountpoint', OXIDE_UUID_PROPERTY], zfs);
    }
  }
  if (current !== null) {
    const actualZoned = current.zoned?.value ?? null;
    if (actualZoned !== (zoned ? 'on' : 'off')) throw new DatasetMismatchError(name, 'zoned', zoned ? 'on' : 'off', actualZoned);
    const actualMountpoint = current.mountpoint?.value ?? null;
    if (mountpoint !== undefined && actualMountpoint !== mountpoint) {
      throw new DatasetMismatchError(name, 'mountpoint', mountpoint, actualMountpoint);
    }
    if (uuid !== undefined) {
      const own = current[OXIDE_UUID_PROPERTY];
      const ownUuid = own !== null && own !== undefined && own.source === 'local' ? own.value : null;
      if (ownUuid !== null && ownUuid !== uuid) throw new DatasetMismatchError(name, OXIDE_UUID_PROPERTY, uuid, ownUuid);
      if (ownUuid === null) await setDatasetProperties(name, { [OXIDE_UUID_PROPERTY]: uuid }, zfs);
    }
  }
  let state: NativeMountState = { mounted: false, mountpoint: null };
  if (!zoned) state = await mountOrKeep(name, zfs);
  return { name, created, mounted: state.mounted, mountpoint: state.mountpoint };
}

async function mountOrKeep(name: string, zfs?: ZfsNative): Promise<NativeMountState> {
  // Already mounted (at boot, or by an earlier call): that is what was wanted.
  const now = await getDatasetProperties(name, ['mounted', 'mountpoint'], zfs);
  if (now.mounted === 'yes') return { mounted: true, mountpoint: now.mountpoint ?? null };
  return mountDataset(name, zfs);
}
