// Datasets and pools through the addon (libzfs + libnvpair on the zfs thread) against the fake
// illumos: every call's success and failure paths, the typed layer's checks before any native
// call, state that outlives the process, the library being absent, the fake libnvpair's own
// semantics (a C harness), and a randomized fuzz of datasetCreate/datasetGet.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NativeAddon } from '../src/illumos/addon.js';
import type { ZfsNative } from '../src/illumos/native-types/zfs.js';
import {
  InvalidDatasetNameError,
  InvalidZfsPropertyError,
  OXIDE_UUID_PROPERTY,
  datasetNameProblem,
  isUserPropertyName,
  parentDataset,
  validateDatasetName,
  validatePropertyMap,
} from '../src/host/names.js';
import {
  DatasetMismatchError,
  ZfsError,
  byteCount,
  createDataset,
  datasetExists,
  destroyDataset,
  ensureDataset,
  getDatasetProperties,
  getDatasetPropertySources,
  listChildDatasets,
  listPools,
  mountDataset,
  setDatasetProperties,
  unmountDataset,
} from '../src/illumos/zfs.js';
import { FAKE_LIB_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';
import { runChild } from './support/child.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const ADDON_PATH = process.env.SLED_AGENT_ADDON || join(repo, 'build', 'Release', 'sled_agent_native.node');
const OXP = 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b';
const RPOOL_SIZE = 107374182400;
const OXP_SIZE = 1099511627776;
const DS_BYTES = 24576; // what every fake filesystem uses

let addon: NativeAddon;
let host: { state: string; remove(): void };
const cleanup: (() => void)[] = [];

beforeAll(() => {
  addon = fakeIllumos();
});
beforeEach(() => {
  host = freshFakeHost();
});
afterEach(() => {
  host.remove();
  while (cleanup.length > 0) cleanup.pop()!();
});

/** The rejection of `p` (or null if it resolved). */
async function failure(p: Promise<unknown>): Promise<(Error & { code?: string }) | null> {
  try {
    await p;
    return null;
  } catch (err) {
    return err as Error & { code?: string };
  }
}

const CHILD_PRELUDE = `const { createRequire } = await import('node:module');
  const a = createRequire(import.meta.url)(process.env.ADDON);
  const caps = a.load(process.env.LIBS);
  const attempt = (p) => p.then((v) => ({ ok: v === undefined ? null : v }), (e) => ({ code: e.code, message: e.message }));`;

/** A native object whose every call fails the test: proves the typed layer refused first. */
type Mocked = { [K in keyof ZfsNative]: ReturnType<typeof vi.fn> };
function untouchableNative(): ZfsNative & Mocked {
  const fail = () => vi.fn(() => Promise.reject(new Error('the native layer must not be called')));
  return {
    datasetCreate: fail(),
    datasetMount: fail(),
    datasetUnmount: fail(),
    datasetGet: fail(),
    datasetSet: fail(),
    datasetList: fail(),
    datasetDestroy: fail(),
    poolList: fail(),
  } as never;
}

describe('dataset names and property maps (typed layer, no native call)', () => {
  it('accepts valid filesystem names, up to 255 bytes', () => {
    for (const name of [
      'rpool',
      'rpool/zone',
      `${OXP}/crypt/zone/oxz_switch`,
      'a/b c/d-e_f.g:h',
      `rpool/${'x'.repeat(255 - 'rpool/'.length)}`,
    ]) {
      expect(validateDatasetName(name)).toBe(name);
      expect(datasetNameProblem(name)).toBeNull();
    }
  });

  it('refuses invalid names with the reason', () => {
    const cases: [unknown, RegExp][] = [
      ['', /empty/],
      [42, /not a string/],
      [`rpool/${'x'.repeat(256 - 'rpool/'.length)}`, /longer than 255 bytes/],
      [`rpool/${'é'.repeat(125)}`, /longer than 255 bytes/], // 256 bytes in UTF-8
      ['rpool/a@snap', /'@'/],
      ['rpool/a#mark', /'#'/],
      ['rpool/a%tmp', /'%'/],
      ['/rpool/a', /leading slash/],
      ['rpool/a/', /trailing slash/],
      ['rpool//a', /empty component/],
      ['rpool/./a', /"\." component/],
      ['rpool/../a', /"\.\." component/],
      ['rpool/a\0b', /invalid character/],
      ['rpool/a*b', /invalid character "\*"/],
      ['rpool/é', /invalid character "é"/],
      ['1pool/a', /must begin with a letter/],
    ];
    for (const [name, why] of cases) {
      expect(datasetNameProblem(name)).toMatch(why);
      expect(() => validateDatasetName(name)).toThrow(InvalidDatasetNameError);
    }
  });

  it('knows user property names and checks property maps', () => {
    expect(isUserPropertyName('oxide:uuid')).toBe(true);
    expect(isUserPropertyName('com.example:a-b_c.d')).toBe(true);
    expect(isUserPropertyName('Oxide:UUID')).toBe(false);
    expect(isUserPropertyName('oxideuuid')).toBe(false);
    expect(isUserPropertyName(`a:${'b'.repeat(254)}`)).toBe(false);
    expect(validatePropertyMap({ mountpoint: '/data', 'oxide:uuid': 'x' })).toEqual({ mountpoint: '/data', 'oxide:uuid': 'x' });
    expect(() => validatePropertyMap({ quota: 10 })).toThrow(InvalidZfsPropertyError);
    expect(() => validatePropertyMap({ '': 'x' })).toThrow(/empty property name/);
    expect(() => validatePropertyMap({ 'Oxide:UUID': 'x' })).toThrow(/lowercase/);
    expect(() => validatePropertyMap({ 'oxide:uuid': 'x'.repeat(1024) })).toThrow(/longer than 1023 bytes/);
    expect(() => validatePropertyMap({ mountpoint: '/a\0b' })).toThrow(/NUL/);
    expect(() => validatePropertyMap(['mountpoint'])).toThrow(InvalidZfsPropertyError);
    expect(parentDataset('rpool/a/b')).toBe('rpool/a');
    expect(parentDataset('rpool')).toBeNull();
  });

  it('refuses bad names and properties before any native call', async () => {
    const n = untouchableNative();
    await expect(createDataset('rpool/a@b', {}, n)).rejects.toBeInstanceOf(InvalidDatasetNameError);
    await expect(createDataset('rpool', {}, n)).rejects.toThrow(/needs a parent/);
    await expect(createDataset('rpool/a', { quota: 5 as never }, n)).rejects.toBeInstanceOf(InvalidZfsPropertyError);
    await expect(mountDataset('rpool//a', n)).rejects.toBeInstanceOf(InvalidDatasetNameError);
    await expect(unmountDataset('', n)).rejects.toBeInstanceOf(InvalidDatasetNameError);
    await expect(getDatasetProperties('rpool/a/', ['name'], n)).rejects.toBeInstanceOf(InvalidDatasetNameError);
    await expect(getDatasetProperties('rpool/a', [''], n)).rejects.toBeInstanceOf(InvalidZfsPropertyError);
    await expect(setDatasetProperties('rpool/a', { 'Bad:Name': 'x' }, n)).rejects.toBeInstanceOf(InvalidZfsPropertyError);
    await expect(listChildDatasets('/rpool', n)).rejects.toBeInstanceOf(InvalidDatasetNameError);
    await expect(destroyDataset('rpool/../x', n)).rejects.toBeInstanceOf(InvalidDatasetNameError);
    await expect(ensureDataset('rpool/a', { mountpoint: 'relative' }, n)).rejects.toBeInstanceOf(InvalidZfsPropertyError);
    for (const fn of Object.values(n)) expect(fn).not.toHaveBeenCalled();
  });
});

describe('datasetCreate', () => {
  it('creates a filesystem with native and user properties, unmounted', async () => {
    await addon.datasetCreate('rpool/data', { mountpoint: '/data', quota: '10G', 'oxide:uuid': 'u-1' });
    const got = await addon.datasetGet('rpool/data', ['name', 'type', 'mountpoint', 'quota', 'oxide:uuid', 'mounted', 'zoned']);
    expect(got).toEqual({
      name: 'rpool/data',
      type: 'filesystem',
      mountpoint: '/data',
      quota: String(10 * 1024 ** 3),
      'oxide:uuid': 'u-1',
      mounted: 'no',
      zoned: 'off',
    });
    await expect(addon.datasetList('rpool')).resolves.toEqual(['rpool/data']);
    // The typed layer, and no properties at all.
    await createDataset('rpool/plain');
    await expect(datasetExists('rpool/plain')).resolves.toBe(true);
    await expect(datasetExists('rpool/nothing')).resolves.toBe(false);
  });

  it('fails EZFS_NOENT for a missing parent or pool, EZFS_EXISTS for a duplicate', async () => {
    const parent = await failure(addon.datasetCreate('rpool/missing/child', {}));
    expect(parent).toMatchObject({ code: 'EZFS_NOENT', message: 'parent does not exist' });
    const pool = await failure(addon.datasetCreate('nopool/child', {}));
    expect(pool).toMatchObject({ code: 'EZFS_NOENT', message: "no such pool 'nopool'" });
    await addon.datasetCreate('rpool/dup', {});
    const dup = await failure(addon.datasetCreate('rpool/dup', { mountpoint: '/elsewhere' }));
    expect(dup).toMatchObject({ code: 'EZFS_EXISTS', message: 'dataset already exists' });
    // The typed layer keeps the code and says what it was doing, like the zfs command.
    const typed = await failure(createDataset('rpool/dup'));
    expect(typed).toBeInstanceOf(ZfsError);
    expect(typed).toMatchObject({ code: 'EZFS_EXISTS', message: "cannot create 'rpool/dup': dataset already exists" });
    expect(await addon.datasetGet('rpool/dup', ['mountpoint'])).toEqual({ mountpoint: '/rpool/dup' });
  });

  it('fails EZFS_INVALIDNAME for names libzfs refuses (bypassing the typed layer)', async () => {
    const cases: [string, string][] = [
      ['rpool', 'missing dataset name'],
      ['rpool/a@b', "snapshot delimiter '@' is not expected here"],
      ['rpool/a#b', "bookmark delimiter '#' is not expected here"],
      ['rpool/a%b', 'invalid character % in name'],
      ['rpool/a*b', "invalid character '*' in name"],
      ['rpool//a', 'empty component in name'],
      ['rpool/a/', 'trailing slash in name'],
      ['/rpool/a', 'leading slash in name'],
      ['rpool/..', "parent reference, '..' is found in name"],
      [`rpool/${'x'.repeat(250)}`, 'name is too long'],
      ['', 'empty component in name'],
    ];
    for (const [name, message] of cases) {
      expect(await failure(addon.datasetCreate(name, {}))).toMatchObject({ code: 'EZFS_INVALIDNAME', message });
    }
    await expect(addon.datasetList('rpool')).resolves.toEqual([]);
  });

  it('fails on bad properties and creates nothing', async () => {
    const cases: [Record<string, string>, string, string][] = [
      [{ bogus: 'x' }, 'EZFS_BADPROP', "invalid property 'bogus'"],
      [{ oxideuuid: 'x' }, 'EZFS_BADPROP', "invalid property 'oxideuuid'"], // a user property needs ':'
      [{ 'Oxide:UUID': 'x' }, 'EZFS_BADPROP', "invalid property 'Oxide:UUID'"], // and lowercase
      [{ zoned: 'maybe' }, 'EZFS_BADPROP', "'zoned' must be one of 'on | off'"],
      [{ canmount: 'yes' }, 'EZFS_BADPROP', "'canmount' must be one of 'on | off | noauto'"],
      [{ used: '1' }, 'EZFS_PROPREADONLY', "'used' is readonly"],
      [{ quota: 'lots' }, 'EZFS_BADPROP', "bad numeric value 'lots'"],
      [{ quota: '10Q' }, 'EZFS_BADPROP', "invalid numeric suffix 'Q'"],
      [{ quota: '99999999999999999999' }, 'EZFS_BADPROP', 'numeric value is too large'],
      [{ recordsize: '1000' }, 'EZFS_BADPROP', "'recordsize' must be power of 2 from 512B to 1M"],
      [{ mountpoint: 'data' }, 'EZFS_BADPROP', "'mountpoint' must be an absolute path, 'none', or 'legacy'"],
      [{ 'oxide:big': 'v'.repeat(1024) }, 'EZFS_BADPROP', `property value '${'v'.repeat(1024)}' is too long`.slice(0, 1023)],
      [{ reservation: '200G' }, 'EZFS_PROPSPACE', 'size is greater than available space'],
    ];
    for (const [props, code, message] of cases) {
      expect(await failure(addon.datasetCreate('rpool/bad', props))).toMatchObject({ code, message });
    }
    await expect(addon.datasetList('rpool')).resolves.toEqual([]);
  });

  it('allows mountpoint with zoned=on at creation, but not under a zoned parent', async () => {
    await addon.datasetCreate('rpool/zone', { zoned: 'on', mountpoint: '/zone' });
    expect(await addon.datasetGet('rpool/zone', ['zoned', 'mountpoint'])).toEqual({ zoned: 'on', mountpoint: '/zone' });
    const under = await failure(addon.datasetCreate('rpool/zone/child', { mountpoint: '/x' }));
    expect(under).toMatchObject({ code: 'EZFS_ZONED', message: "'mountpoint' cannot be set on dataset in a non-global zone" });
    await addon.datasetCreate('rpool/zone/child', {});
    expect(await addon.datasetGet('rpool/zone/child', ['zoned'])).toEqual({ zoned: 'on' }); // inherited
  });

  it('rejects bad arguments with TypeError ERR_INVALID_ARG_TYPE (a Promise, never a throw)', async () => {
    const calls: (() => Promise<unknown>)[] = [
      () => addon.datasetCreate(42 as never, {}),
      () => addon.datasetCreate('rpool/a', { quota: 10 } as never),
      () => addon.datasetCreate('rpool/a', ['x'] as never),
      () => addon.datasetCreate('rpool/a\0b', {}),
      () => addon.datasetCreate('rpool/a', { 'a\0b:c': 'x' }),
      () => addon.datasetCreate('rpool/a', { mountpoint: '/x\0y' }),
      () => addon.datasetGet('rpool', 'name' as never),
      () => addon.datasetGet('rpool', [1] as never),
      () => addon.datasetGet('rpool', ['name'], 'sources' as never),
      () => addon.datasetSet('rpool', null as never),
      () => (addon.datasetMount as (...a: unknown[]) => Promise<unknown>)(),
    ];
    for (const call of calls) {
      const p = call();
      expect(p).toBeInstanceOf(Promise);
      const err = await failure(p);
      expect(err).toBeInstanceOf(TypeError);
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    }
    await expect(addon.datasetList('rpool')).resolves.toEqual([]);
  });

  it('serialises concurrent calls on the zfs thread: one of many racing creates wins', async () => {
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => addon.datasetCreate('rpool/race', {})));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'EZFS_EXISTS' });
    }
    await Promise.all(Array.from({ length: 20 }, (_, i) => addon.datasetCreate(`rpool/race/c${i}`, {})));
    expect(await addon.datasetList('rpool/race')).toHaveLength(20);
  });
});

describe('datasetMount / datasetUnmount', () => {
  it('mounts at the (inherited) mountpoint, and refuses a second mount', async () => {
    await addon.datasetCreate('rpool/m', { mountpoint: '/m' });
    await addon.datasetCreate('rpool/m/kid', {});
    await expect(addon.datasetMount('rpool/m/kid')).resolves.toEqual({ mounted: true, mountpoint: '/m/kid' });
    expect(await addon.datasetGet('rpool/m/kid', ['mounted'])).toEqual({ mounted: 'yes' });
    const again = await failure(addon.datasetMount('rpool/m/kid'));
    expect(again).toMatchObject({ code: 'EZFS_MOUNTFAILED', message: 'mountpoint or dataset is busy' });
    await expect(addon.datasetUnmount('rpool/m/kid')).resolves.toEqual({ mounted: false, mountpoint: null });
    await expect(addon.datasetUnmount('rpool/m/kid')).resolves.toEqual({ mounted: false, mountpoint: null });
    expect(await addon.datasetGet('rpool/m/kid', ['mounted'])).toEqual({ mounted: 'no' });
  });

  it('succeeds without mounting what libzfs will not mount here: zoned, none, legacy, canmount=off', async () => {
    await addon.datasetCreate('rpool/zoned', { zoned: 'on', mountpoint: '/z' });
    await addon.datasetCreate('rpool/none', { mountpoint: 'none' });
    await addon.datasetCreate('rpool/legacy', { mountpoint: 'legacy' });
    await addon.datasetCreate('rpool/off', { canmount: 'off' });
    for (const name of ['rpool/zoned', 'rpool/none', 'rpool/legacy', 'rpool/off']) {
      await expect(addon.datasetMount(name)).resolves.toEqual({ mounted: false, mountpoint: null });
      expect(await addon.datasetGet(name, ['mounted'])).toEqual({ mounted: 'no' });
    }
    await addon.datasetCreate('rpool/noauto', { canmount: 'noauto' }); // explicit mounts still work
    await expect(mountDataset('rpool/noauto')).resolves.toEqual({ mounted: true, mountpoint: '/rpool/noauto' });
  });

  it('fails EZFS_NOENT for a missing dataset', async () => {
    expect(await failure(addon.datasetMount('rpool/absent'))).toMatchObject({ code: 'EZFS_NOENT', message: 'dataset does not exist' });
    expect(await failure(unmountDataset('rpool/absent'))).toMatchObject({
      code: 'EZFS_NOENT',
      message: "cannot unmount 'rpool/absent': dataset does not exist",
    });
  });
});

describe('datasetGet / datasetSet', () => {
  it('round-trips user properties, and reports inherited values with their source', async () => {
    await addon.datasetCreate('rpool/p', { mountpoint: '/p', 'oxide:uuid': 'parent-id' });
    await addon.datasetCreate('rpool/p/c', {});
    const value = 'a value with spaces, = signs, % signs,\nnewlines and ünïcödé';
    await setDatasetProperties('rpool/p/c', { 'oxide:note': value, 'com.example:x': '' });
    expect(await getDatasetProperties('rpool/p/c', ['oxide:note', 'com.example:x', 'oxide:unset'])).toEqual({
      'oxide:note': value,
      'com.example:x': '',
      'oxide:unset': null,
    });
    expect(await getDatasetPropertySources('rpool/p/c', ['mountpoint', 'oxide:uuid', 'oxide:note', 'zoned'])).toEqual({
      mountpoint: { value: '/p/c', source: 'inherited', from: 'rpool/p' },
      'oxide:uuid': { value: 'parent-id', source: 'inherited', from: 'rpool/p' },
      'oxide:note': { value, source: 'local', from: null },
      zoned: { value: 'off', source: 'default', from: null },
    });
    await setDatasetProperties('rpool/p/c', { 'oxide:uuid': 'child-id' });
    expect(await getDatasetProperties('rpool/p/c', ['oxide:uuid'])).toEqual({ 'oxide:uuid': 'child-id' });
    expect(await getDatasetProperties('rpool/p', ['oxide:uuid'])).toEqual({ 'oxide:uuid': 'parent-id' });
  });

  it('reports space figures in bytes and resolves property names at run time', async () => {
    await addon.datasetCreate('rpool/s', {});
    await addon.datasetCreate('rpool/s/a', {});
    await addon.datasetCreate('rpool/s/b', { canmount: 'noauto' });
    const got = await addon.datasetGet('rpool/s', ['used', 'referenced', 'available', 'avail', 'creation', 'guid']);
    expect(got.used).toBe(String(3 * DS_BYTES));
    expect(got.referenced).toBe(String(DS_BYTES));
    expect(got.available).toBe(String(RPOOL_SIZE - 4 * DS_BYTES)); // the pool root + 3
    expect(got.avail).toBe(got.available);
    expect(Number(got.creation)).toBeGreaterThan(1_600_000_000);
    expect(got.guid).toMatch(/^[1-9][0-9]*$/);
    // canmount is zfs_prop_t 29 on Helios (28 upstream): only name resolution gets it right.
    expect(await addon.datasetGet('rpool/s/b', ['canmount', 'recordsize', 'compression'])).toEqual({
      canmount: 'noauto',
      recordsize: '131072',
      compression: 'off',
    });
    await setDatasetProperties('rpool/s', { quota: '1G' });
    const q = await addon.datasetGet('rpool/s', ['quota', 'available']);
    expect(q).toEqual({ quota: String(1024 ** 3), available: String(1024 ** 3 - 3 * DS_BYTES) });
  });

  it('fails EZFS_BADPROP for an unknown native property, EZFS_NOENT for a missing dataset', async () => {
    expect(await failure(addon.datasetGet('rpool', ['nonsense']))).toMatchObject({
      code: 'EZFS_BADPROP',
      message: "invalid property 'nonsense'",
    });
    expect(await failure(addon.datasetGet('rpool', ['Oxide:uuid']))).toMatchObject({ code: 'EZFS_BADPROP' });
    expect(await failure(getDatasetProperties('rpool/none', ['name']))).toMatchObject({
      code: 'EZFS_NOENT',
      message: "cannot get properties of 'rpool/none': dataset does not exist",
    });
    await expect(addon.datasetGet('rpool', [])).resolves.toEqual({});
    await expect(addon.datasetGet('rpool', ['origin'])).resolves.toEqual({ origin: null }); // not a clone
  });

  it('sets several properties at once, or none of them', async () => {
    await addon.datasetCreate('rpool/set', {});
    await addon.datasetSet('rpool/set', { atime: 'off', compression: 'lz4', 'oxide:a': '1' });
    expect(await addon.datasetGet('rpool/set', ['atime', 'compression', 'oxide:a'])).toEqual({
      atime: 'off',
      compression: 'lz4',
      'oxide:a': '1',
    });
    const bad = await failure(addon.datasetSet('rpool/set', { atime: 'on', 'oxide:a': '2', zoned: 'bogus' }));
    expect(bad).toMatchObject({ code: 'EZFS_BADPROP', message: "'zoned' must be one of 'on | off'" });
    expect(await addon.datasetGet('rpool/set', ['atime', 'oxide:a'])).toEqual({ atime: 'off', 'oxide:a': '1' });
    expect(await failure(addon.datasetSet('rpool/set', { used: '5' }))).toMatchObject({ code: 'EZFS_PROPREADONLY' });
    expect(await failure(addon.datasetSet('rpool/set', { quota: '1K' }))).toMatchObject({
      code: 'EZFS_PROPSPACE',
      message: 'size is less than current used or reserved space',
    });
    expect(await failure(addon.datasetSet('rpool/gone', { atime: 'on' }))).toMatchObject({ code: 'EZFS_NOENT' });
    await expect(addon.datasetSet('rpool/set', {})).resolves.toBeUndefined();
  });

  it('refuses a mountpoint on a zoned dataset from the global zone, and follows a moved mount', async () => {
    await addon.datasetCreate('rpool/zz', { zoned: 'on' });
    expect(await failure(setDatasetProperties('rpool/zz', { mountpoint: '/elsewhere' }))).toMatchObject({
      code: 'EZFS_ZONED',
      message: "cannot set property for 'rpool/zz': 'mountpoint' cannot be set on dataset in a non-global zone",
    });
    await addon.datasetCreate('rpool/mv', { mountpoint: '/before' });
    await addon.datasetMount('rpool/mv');
    await addon.datasetSet('rpool/mv', { mountpoint: '/after' });
    await expect(addon.datasetUnmount('rpool/mv')).resolves.toEqual({ mounted: false, mountpoint: null });
    await addon.datasetMount('rpool/mv');
    expect(await addon.datasetGet('rpool/mv', ['mounted', 'mountpoint'])).toEqual({ mounted: 'yes', mountpoint: '/after' });
    await addon.datasetSet('rpool/mv', { zoned: 'on' }); // no longer mountable here: unmounted
    expect(await addon.datasetGet('rpool/mv', ['mounted'])).toEqual({ mounted: 'no' });
  });
});

describe('datasetList / datasetDestroy', () => {
  it('lists direct children only, sorted', async () => {
    for (const n of ['rpool/b', 'rpool/a', 'rpool/a/x', 'rpool/a/x/deep', 'rpool/c d']) await addon.datasetCreate(n, {});
    await expect(listChildDatasets('rpool')).resolves.toEqual(['rpool/a', 'rpool/b', 'rpool/c d']);
    await expect(addon.datasetList('rpool/a')).resolves.toEqual(['rpool/a/x']);
    await expect(addon.datasetList('rpool/b')).resolves.toEqual([]);
    await expect(addon.datasetList(OXP)).resolves.toEqual([]);
    expect(await failure(addon.datasetList('rpool/nope'))).toMatchObject({ code: 'EZFS_NOENT', message: 'dataset does not exist' });
  });

  it('destroys a leaf; a dataset with children fails EZFS_EXISTS; a mounted one is unmounted first', async () => {
    await addon.datasetCreate('rpool/d', {});
    await addon.datasetCreate('rpool/d/kid', {});
    await addon.datasetMount('rpool/d/kid');
    const withKids = await failure(destroyDataset('rpool/d'));
    expect(withKids).toMatchObject({ code: 'EZFS_EXISTS', message: "cannot destroy 'rpool/d': dataset already exists" });
    await expect(destroyDataset('rpool/d/kid')).resolves.toBeUndefined();
    await expect(addon.datasetList('rpool/d')).resolves.toEqual([]);
    await expect(addon.datasetDestroy('rpool/d')).resolves.toBeUndefined();
    await expect(datasetExists('rpool/d')).resolves.toBe(false);
    expect(await failure(addon.datasetDestroy('rpool/d'))).toMatchObject({ code: 'EZFS_NOENT', message: 'dataset does not exist' });
    // The name is free again, and its old properties are gone.
    await addon.datasetCreate('rpool/d', {});
    expect(await addon.datasetGet('rpool/d', ['mounted', 'oxide:uuid'])).toEqual({ mounted: 'no', 'oxide:uuid': null });
  });
});

describe('poolList', () => {
  it('lists the seeded pools with size, allocated, free and health', async () => {
    const pools = await listPools();
    expect(pools).toEqual([
      { name: OXP, size: OXP_SIZE, allocated: DS_BYTES, free: OXP_SIZE - DS_BYTES, health: 'ONLINE' },
      { name: 'rpool', size: RPOOL_SIZE, allocated: DS_BYTES, free: RPOOL_SIZE - DS_BYTES, health: 'ONLINE' },
    ]);
    await addon.datasetCreate(`${OXP}/crypt`, {});
    await addon.datasetCreate(`${OXP}/crypt/zone`, {});
    const oxp = (await addon.poolList()).find((p) => p.name === OXP)!;
    expect(oxp).toEqual({ name: OXP, size: OXP_SIZE, allocated: 3 * DS_BYTES, free: OXP_SIZE - 3 * DS_BYTES, health: 'ONLINE' });
  });

  it('takes its pools from FAKE_ILLUMOS_POOLS; sizes from 2^53 up come back as exact strings', async () => {
    const saved = process.env.FAKE_ILLUMOS_POOLS;
    cleanup.push(() => {
      if (saved === undefined) delete process.env.FAKE_ILLUMOS_POOLS;
      else process.env.FAKE_ILLUMOS_POOLS = saved;
    });
    process.env.FAKE_ILLUMOS_POOLS = 'big:18014398509481984:DEGRADED,small:1048576';
    const pools = await addon.poolList();
    expect(pools).toEqual([
      { name: 'big', size: '18014398509481984', allocated: DS_BYTES, free: '18014398509457408', health: 'DEGRADED' },
      { name: 'small', size: 1048576, allocated: DS_BYTES, free: 1048576 - DS_BYTES, health: 'ONLINE' },
    ]);
    expect(byteCount(pools[0]!.size)).toBe(2n ** 54n);
    expect(byteCount(pools[1]!.free)).toBe(BigInt(1048576 - DS_BYTES));
    await expect(addon.datasetCreate('rpool/x', {})).rejects.toMatchObject({ code: 'EZFS_NOENT', message: "no such pool 'rpool'" });
  });
});

describe('ensureDataset (typed layer)', () => {
  it('creates and mounts a dataset, then finds it again unchanged', async () => {
    const first = await ensureDataset(`${OXP}/crypt`, { mountpoint: '/crypt', uuid: 'id-1' });
    expect(first).toEqual({ name: `${OXP}/crypt`, created: true, mounted: true, mountpoint: '/crypt' });
    const again = await ensureDataset(`${OXP}/crypt`, { mountpoint: '/crypt', uuid: 'id-1' });
    expect(again).toEqual({ name: `${OXP}/crypt`, created: false, mounted: true, mountpoint: '/crypt' });
    expect(await getDatasetProperties(`${OXP}/crypt`, [OXIDE_UUID_PROPERTY, 'zoned'])).toEqual({ 'oxide:uuid': 'id-1', zoned: 'off' });
  });

  it('creates a zoned dataset without mounting it', async () => {
    await ensureDataset(`${OXP}/crypt`, {});
    const r = await ensureDataset(`${OXP}/crypt/zone`, { zoned: true, mountpoint: '/zone', uuid: 'z-1' });
    expect(r).toEqual({ name: `${OXP}/crypt/zone`, created: true, mounted: false, mountpoint: null });
    expect(await getDatasetProperties(`${OXP}/crypt/zone`, ['zoned', 'mounted', 'mountpoint'])).toEqual({
      zoned: 'on',
      mounted: 'no',
      mountpoint: '/zone',
    });
  });

  it('refuses a dataset that belongs to another uuid, and changes nothing', async () => {
    await ensureDataset('rpool/owned', { uuid: 'old-owner' });
    const err = await failure(ensureDataset('rpool/owned', { uuid: 'new-owner' }));
    expect(err).toBeInstanceOf(DatasetMismatchError);
    expect(err).toMatchObject({ code: 'ERR_DATASET_MISMATCH', property: 'oxide:uuid', expected: 'new-owner', actual: 'old-owner' });
    expect(err!.message).toBe('dataset rpool/owned belongs to old-owner, not new-owner: refusing to reuse it');
    expect(await getDatasetProperties('rpool/owned', [OXIDE_UUID_PROPERTY])).toEqual({ 'oxide:uuid': 'old-owner' });
  });

  it('writes a missing uuid, ignoring one inherited from an ancestor', async () => {
    await addon.datasetCreate('rpool/anon', {});
    await ensureDataset('rpool/anon', { uuid: 'adopted' });
    expect(await getDatasetProperties('rpool/anon', [OXIDE_UUID_PROPERTY])).toEqual({ 'oxide:uuid': 'adopted' });
    await addon.datasetCreate('rpool/anon/kid', {}); // inherits "adopted"
    await ensureDataset('rpool/anon/kid', { uuid: 'kid-id' });
    expect(await getDatasetPropertySources('rpool/anon/kid', [OXIDE_UUID_PROPERTY])).toEqual({
      'oxide:uuid': { value: 'kid-id', source: 'local', from: null },
    });
  });

  it('refuses an existing dataset with another mountpoint or zoned setting', async () => {
    await addon.datasetCreate('rpool/mp', { mountpoint: '/one' });
    await expect(ensureDataset('rpool/mp', { mountpoint: '/two' })).rejects.toMatchObject({
      code: 'ERR_DATASET_MISMATCH',
      message: 'dataset rpool/mp exists with mountpoint=/one, expected /two',
    });
    await expect(ensureDataset('rpool/mp', { zoned: true })).rejects.toMatchObject({ property: 'zoned', expected: 'on', actual: 'off' });
    expect(await addon.datasetGet('rpool/mp', ['mounted'])).toEqual({ mounted: 'no' });
  });

  it('passes library failures through as ZfsError', async () => {
    await expect(ensureDataset('rpool/no/parent', {})).rejects.toMatchObject({ code: 'EZFS_NOENT', name: 'ZfsError' });
    await expect(ensureDataset('rpool/badprop', { props: { quota: 'many' } })).rejects.toMatchObject({ code: 'EZFS_BADPROP' });
  });
});

describe('state, processes, and the library being absent', () => {
  it('keeps datasets in $FAKE_ILLUMOS_STATE for a second process, and sees what that one made', async () => {
    await addon.datasetCreate('rpool/persist', { mountpoint: '/persist', 'oxide:uuid': 'p-1' });
    await addon.datasetMount('rpool/persist');
    const r = await runChild(
      `${CHILD_PRELUDE}
       console.log(JSON.stringify({
         loaded: caps.libraries.zfs.loaded,
         list: await attempt(a.datasetList('rpool')),
         get: await attempt(a.datasetGet('rpool/persist', ['mountpoint', 'oxide:uuid', 'mounted'])),
         create: await attempt(a.datasetCreate('rpool/persist/child', { 'oxide:uuid': 'c-1' })),
         dup: await attempt(a.datasetCreate('rpool/persist', {})),
       }));`,
      { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: host.state },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      loaded: true,
      list: { ok: ['rpool/persist'] },
      get: { ok: { mountpoint: '/persist', 'oxide:uuid': 'p-1', mounted: 'yes' } },
      create: { ok: null },
      dup: { code: 'EZFS_EXISTS', message: 'dataset already exists' },
    });
    await expect(addon.datasetList('rpool/persist')).resolves.toEqual(['rpool/persist/child']);
    expect(await addon.datasetGet('rpool/persist/child', ['oxide:uuid'])).toEqual({ 'oxide:uuid': 'c-1' });
    // The state files are what the fake's header says.
    const props = readFileSync(join(host.state, 'zfs', 'ds', 'rpool!persist'), 'utf8');
    expect(props).toContain('mountpoint=/persist\n');
    expect(props).toContain('oxide:uuid=p-1\n');
    expect(props).toContain('@mounted=yes\n');
    expect(readFileSync(join(host.state, 'zfs', 'pools'), 'utf8')).toMatch(/^rpool\t107374182400\tONLINE\t[0-9]+\n/);
  });

  it('rejects every call with ENOLIB when libzfs is absent, without crashing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-illumos-'));
    cleanup.push(() => rmSync(empty, { recursive: true, force: true }));
    const r = await runChild(
      `${CHILD_PRELUDE}
       console.log(JSON.stringify({ zfs: caps.libraries.zfs.loaded, nvpair: caps.libraries.nvpair.loaded }));
       for (const p of [a.datasetCreate('rpool/x', {}), a.datasetGet('rpool', ['name']), a.datasetMount('rpool'),
                        a.datasetSet('rpool', {}), a.datasetList('rpool'), a.datasetDestroy('rpool/x'), a.poolList()]) {
         console.log(JSON.stringify(await attempt(p)));
       }`,
      { ADDON: ADDON_PATH, LIBS: empty, FAKE_ILLUMOS_STATE: host.state },
    );
    expect(r.code).toBe(0);
    const [caps, ...results] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(caps).toEqual({ zfs: false, nvpair: false });
    expect(results).toHaveLength(7);
    for (const result of results) {
      expect(result.code).toBe('ENOLIB');
      expect(String(result.message)).toContain('libzfs.so.1');
    }
  });

  it('reports a failed libzfs_init by its errno, and retries it at the next call', async () => {
    const r = await runChild(
      `${CHILD_PRELUDE}
       console.log(JSON.stringify(await attempt(a.poolList())));
       process.env.FAKE_ILLUMOS_STATE = process.env.LATER_STATE; // "/dev/zfs" appears
       console.log(JSON.stringify(await attempt(a.poolList())));`,
      { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: '', LATER_STATE: host.state },
    );
    expect(r.code).toBe(0);
    const [before, after] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { code?: string; message?: string; ok?: unknown[] });
    expect(before).toEqual({ code: 'ENOENT', message: 'libzfs_init failed (cannot open /dev/zfs): No such file or directory' });
    expect(after!.ok).toHaveLength(2);
  });

  it('the typed layer reports ENOLIB as a ZfsError', async () => {
    const enolib = Object.assign(new Error('libzfs.so.1 is not usable: cannot open'), { code: 'ENOLIB' });
    const n = untouchableNative();
    n.poolList.mockImplementation(() => Promise.reject(enolib));
    const err = await failure(listPools(n));
    expect(err).toBeInstanceOf(ZfsError);
    expect(err).toMatchObject({ code: 'ENOLIB', message: 'cannot list pools: libzfs.so.1 is not usable: cannot open' });
    expect((err as ZfsError).cause).toBe(enolib);
  });
});

describe('the fake libnvpair (C harness)', () => {
  it('has the illumos data_type_t values, NV_UNIQUE_NAME semantics and errno returns', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvpair-harness-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, 'harness.c'),
      `#include <errno.h>
#include <stdint.h>
#include <stdio.h>
typedef struct nvlist nvlist_t; typedef struct nvpair nvpair_t;
int nvlist_alloc(nvlist_t **, unsigned, int); void nvlist_free(nvlist_t *); int nvlist_dup(nvlist_t *, nvlist_t **, int);
int nvlist_add_string(nvlist_t *, const char *, const char *); int nvlist_add_int32(nvlist_t *, const char *, int32_t);
int nvlist_add_uint64(nvlist_t *, const char *, uint64_t); int nvlist_add_boolean_value(nvlist_t *, const char *, int);
int nvlist_add_nvlist(nvlist_t *, const char *, nvlist_t *);
int nvlist_lookup_string(nvlist_t *, const char *, char **); int nvlist_lookup_int32(nvlist_t *, const char *, int32_t *);
int nvlist_lookup_uint64(nvlist_t *, const char *, uint64_t *); int nvlist_lookup_boolean_value(nvlist_t *, const char *, int *);
nvpair_t *nvlist_next_nvpair(nvlist_t *, nvpair_t *); char *nvpair_name(nvpair_t *); int nvpair_type(nvpair_t *);
int nvpair_value_string(nvpair_t *, char **); int nvpair_value_uint64(nvpair_t *, uint64_t *);
int main(void) {
  nvlist_t *u = NULL, *m = NULL, *d = NULL; char *s = NULL; int32_t i = 0; uint64_t v = 0; int b = 0;
  /* One call per statement: C leaves the order of evaluation of arguments unspecified. */
  int r1 = nvlist_alloc(&u, 1, 0), r2 = nvlist_alloc(&m, 0, 0);
  printf("alloc %d %d\\n", r1, r2);
  int a1 = nvlist_add_string(u, "k", "one"); int a2 = nvlist_add_string(u, "k", "two"); int a3 = nvlist_add_int32(u, "i", -7);
  int a4 = nvlist_add_uint64(u, "big", 18446744073709551615ULL); int a5 = nvlist_add_boolean_value(u, "b", 1);
  printf("add %d %d %d %d %d\\n", a1, a2, a3, a4, a5);
  int r = nvlist_lookup_string(u, "k", &s); printf("lookup k %d %s\\n", r, s);
  r = nvlist_lookup_int32(u, "i", &i); printf("lookup i %d %d\\n", r, i);
  r = nvlist_lookup_uint64(u, "big", &v); printf("lookup big %d %llu\\n", r, (unsigned long long)v);
  r = nvlist_lookup_boolean_value(u, "b", &b); printf("lookup b %d %d\\n", r, b);
  int w1 = nvlist_lookup_int32(u, "k", &i); int w2 = nvlist_lookup_string(u, "x", &s);
  int w3 = nvlist_add_string(u, NULL, "x"); int w4 = nvlist_add_boolean_value(u, "bb", 7);
  printf("wrong type %d missing %d null %d badbool %d\\n", w1, w2, w3, w4);
  nvlist_add_string(m, "k", "one"); nvlist_add_string(m, "k", "two");
  printf("non-unique lookup %d\\n", nvlist_lookup_string(m, "k", &s));
  int n1 = nvlist_add_nvlist(u, "self", u); int n2 = nvlist_add_nvlist(u, "m", m);
  printf("self %d nested %d\\n", n1, n2);
  printf("dup %d\\n", nvlist_dup(u, &d, 0));
  for (nvpair_t *p = nvlist_next_nvpair(d, NULL); p != NULL; p = nvlist_next_nvpair(d, p)) {
    printf("pair %s %d", nvpair_name(p), nvpair_type(p));
    if (nvpair_type(p) == 9) { nvpair_value_string(p, &s); printf(" %s", s); }
    printf(" asuint64 %d\\n", nvpair_value_uint64(p, &v));
  }
  nvlist_free(u); nvlist_free(m); nvlist_free(d); nvlist_free(NULL);
  printf("EINVAL=%d ENOENT=%d ENOTSUP=%d\\n", EINVAL, ENOENT, ENOTSUP);
  return 0;
}
`,
    );
    execFileSync('cc', ['-o', join(dir, 'harness'), join(dir, 'harness.c'), join(FAKE_LIB_DIR, 'libnvpair.so.1'), `-Wl,-rpath,${FAKE_LIB_DIR}`]);
    const out = execFileSync(join(dir, 'harness'), { encoding: 'utf8' });
    expect(out).toBe(
      [
        'alloc 0 0',
        'add 0 0 0 0 0',
        'lookup k 0 two',
        'lookup i 0 -7',
        'lookup big 0 18446744073709551615',
        'lookup b 0 1',
        'wrong type 2 missing 2 null 22 badbool 22',
        'non-unique lookup 95',
        'self 22 nested 0',
        'dup 0',
        'pair k 9 two asuint64 22',
        'pair i 5 asuint64 22',
        'pair big 8 asuint64 0',
        'pair b 21 asuint64 22',
        'pair m 19 asuint64 22',
        'EINVAL=22 ENOENT=2 ENOTSUP=95',
        '',
      ].join('\n'),
    );
  });
});

describe('fuzz (fast-check)', () => {
  const ALLOWED = /^(EZFS_[A-Z_]+|ERR_INVALID_ARG_TYPE)$/;
  const oddChar = fc.constantFrom('a', 'Z', '0', '/', '@', '#', '%', ':', ' ', '.', '-', '_', '\0', '\n', 'é', '😀', '*', '"');
  const oddString = (max: number) =>
    fc.oneof(fc.string({ maxLength: max }), fc.array(oddChar, { maxLength: max }).map((cs) => cs.join('')), fc.string({ unit: 'binary', maxLength: max }));
  const name = fc.oneof(
    // Valid names in a fair share of the runs, so both paths are always exercised.
    fc.stringMatching(/^[a-z][a-z0-9_.:-]{0,10}$/).map((s) => `rpool/${s}`),
    oddString(12).map((s) => `rpool/${s}`),
    oddString(8).map((s) => `${OXP}/${s}`),
    oddString(300),
    fc.constant('rpool/' + 'n'.repeat(260)),
  );
  const propName = fc.oneof(
    fc.constantFrom('mountpoint', 'zoned', 'quota', 'canmount', 'used', 'atime', 'recordsize', 'oxide:uuid', 'com.x:y', 'bogus'),
    oddString(10),
    oddString(6).map((s) => `oxide:${s}`),
  );
  const propValue = fc.oneof(fc.constantFrom('on', 'off', '/data', 'none', '10G', '512', ''), oddString(20), fc.string({ minLength: 1020, maxLength: 1030 }));

  it('datasetCreate/datasetGet with odd strings and property maps: clean success or clean rejection', async () => {
    let created = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(name, fc.oneof(fc.constant<Record<string, string>>({}), fc.dictionary(propName, propValue, { maxKeys: 4 })), fc.array(propName, { maxLength: 5 }), async (n, props, wanted) => {
        const err = await failure(addon.datasetCreate(n, props));
        if (err !== null) {
          rejected++;
          expect(err).toBeInstanceOf(Error);
          expect(err.code).toMatch(ALLOWED);
          expect(typeof err.message).toBe('string');
          expect(err.message.length).toBeGreaterThan(0);
        } else {
          created++;
          // Whatever was accepted reads back exactly (user properties verbatim).
          const users = Object.keys(props).filter((k) => isUserPropertyName(k));
          if (users.length > 0) {
            const back = await addon.datasetGet(n, users);
            for (const k of users) expect(back[k]).toBe(props[k]);
          }
        }
        const got = await failure(addon.datasetGet(n, wanted));
        if (got !== null) expect(got.code).toMatch(ALLOWED);
        // The typed layer: its own errors, or the library's as ZfsError; never anything else.
        const typed = await failure(createDataset(n, props));
        if (typed !== null) {
          expect(typed instanceof InvalidDatasetNameError || typed instanceof InvalidZfsPropertyError || typed instanceof ZfsError).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
    expect(created).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
    // The host still answers normally afterwards.
    await expect(addon.datasetCreate('rpool/after-fuzz', { 'oxide:uuid': 'ok' })).resolves.toBeUndefined();
    expect(await addon.datasetGet('rpool/after-fuzz', ['oxide:uuid'])).toEqual({ 'oxide:uuid': 'ok' });
  });
});
