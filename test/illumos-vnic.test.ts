// Links through the addon's libdladm binding and the typed layer (src/illumos/vnic.ts), against
// the fake libdladm (test/fake-illumos/dladm.c): every call's success and failure, naming rules
// refused before any native call, the MAXLINKNAMELEN bound that keeps the library from
// truncating a name, state shared with a second process, a host without libdladm, concurrent
// creates through the one dladm thread, both dladm_vnic_create arities, and a fuzz.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NativeAddon } from '../src/illumos/addon.js';
import type { DladmNative } from '../src/illumos/native-types/dladm.js';
import { linkNameProblem, normalizeMac, validateLinkName } from '../src/host/names.js';
import {
  Vnic,
  VnicAllocator,
  createVnic,
  deleteVnic,
  linkZone,
  listOwnedVnics,
  listVnics,
  lookupLink,
  setLinkZone,
} from '../src/illumos/vnic.js';
import { FAKE_LIB_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Rejects with an error carrying `code` (and returns it for more checks). */
async function rejection(p: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a rejection with ${code}`).toBeInstanceOf(Error);
  expect((caught as { code?: unknown }).code).toBe(code);
  return caught as Error & { code: string };
}

/** A DladmNative that records every call and forwards to `inner` (or fails the test if none). */
function recording(inner?: DladmNative): { native: DladmNative; calls: string[] } {
  const calls: string[] = [];
  const native = new Proxy({} as DladmNative, {
    get(_t, prop: string) {
      return (...args: unknown[]) => {
        calls.push(prop);
        if (inner === undefined) throw new Error(`unexpected native call ${prop}`);
        return (inner as unknown as Record<string, (...a: unknown[]) => unknown>)[prop]!(...args);
      };
    },
  });
  return { native, calls };
}

interface ChildResult {
  capabilities: { libraries: Record<string, { loaded: boolean; error: string | null }> };
  results: Array<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>;
}

/**
 * Runs `ops` in a fresh Node process (node --import tsx) that loads the addon from `libDir` and
 * prints what each op returned. ops: [name, ...args] where name is a DladmNative method, or
 * "ts:createVnic" / "ts:listOwnedVnics" for the typed layer.
 */
async function inChild(libDir: string, env: Record<string, string>, ops: Array<[string, ...unknown[]]>): Promise<ChildResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vnic-child-'));
  try {
    const script = join(dir, 'child.mts');
    const addonUrl = pathToFileURL(join(REPO, 'src/illumos/addon.ts')).href;
    const vnicUrl = pathToFileURL(join(REPO, 'src/illumos/vnic.ts')).href;
    writeFileSync(
      script,
      `import { loadNative } from ${JSON.stringify(addonUrl)};
import * as vnic from ${JSON.stringify(vnicUrl)};
const addon = loadNative();
const capabilities = addon.load(process.argv[2]);
const ops = JSON.parse(process.argv[3]);
const results = [];
for (const [name, ...args] of ops) {
  try {
    const value = name.startsWith('ts:') ? await vnic[name.slice(3)](...args) : await addon[name](...args);
    results.push({ ok: true, value: value ?? null });
  } catch (err) {
    results.push({ ok: false, code: err.code, message: err.message });
  }
}
process.stdout.write(JSON.stringify({ capabilities, results }));
`,
    );
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', script, libDir, JSON.stringify(ops)],
        { cwd: REPO, env: { ...process.env, ...env }, timeout: 15_000 },
        (err, out, errOut) => (err ? reject(new Error(`child failed: ${err.message}\n${errOut}`)) : resolve(out)),
      );
    });
    return JSON.parse(stdout) as ChildResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('link names (validateLinkName, the rules of dladm_valid_linkname)', () => {
  it('accepts names that end in a number without leading zeroes', () => {
    for (const name of ['net0', 'net10', 'oxFoo0', 'vopte12', 'oxControlInstance0', 'a.b_c9', `${'a'.repeat(30)}1`]) {
      expect(linkNameProblem(name), name).toBeNull();
      expect(validateLinkName(name)).toBe(name);
    }
  });

  it('refuses everything else, saying why', () => {
    const bad: Array<[unknown, RegExp]> = [
      ['', /empty/],
      ['0net', /starts with a digit/],
      ['net', /does not end in a digit/],
      ['net00', /leading zero/],
      ['net-0', /only letters/],
      ['nét0', /only letters/],
      ['net0\0', /only letters/],
      [`${'a'.repeat(31)}1`, /longer than 31/],
      [5, /not a string/],
      [null, /not a string/],
    ];
    for (const [name, why] of bad) {
      expect(linkNameProblem(name), String(name)).toMatch(why);
      expect(() => validateLinkName(name)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LINK_NAME' }));
    }
  });

  it('normalizes MAC addresses and refuses malformed ones', () => {
    expect(normalizeMac('A8:40:25:FA:0:1')).toBe('a8:40:25:fa:00:01');
    for (const mac of ['', 'a8:40:25:fa:00', 'a8:40:25:fa:00:01:02', 'a8-40-25-fa-00-01', 'g8:40:25:fa:00:01', '123:40:25:fa:00:01']) {
      expect(() => normalizeMac(mac), mac).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MAC' }));
    }
  });
});

describe('VnicAllocator (omicron illumos/vnic.rs)', () => {
  it('allocates oxFoo0, oxFoo1, oxFoo2', () => {
    const allocator = new VnicAllocator('Foo', 'mystub0');
    expect([allocator.next(), allocator.next(), allocator.next()]).toEqual(['oxFoo0', 'oxFoo1', 'oxFoo2']);
  });

  it('shares its counter with a superscope: oxFoo0 then oxBazFoo1', () => {
    const allocator = new VnicAllocator('Foo', 'mystub0');
    expect(allocator.next()).toBe('oxFoo0');
    const baz = allocator.newSuperscope('Baz');
    expect(baz.next()).toBe('oxBazFoo1');
    expect(allocator.next()).toBe('oxFoo2');
  });

  it('refuses a scope that would merge into the counter', () => {
    for (const scope of ['Foo0', '1Foo', 'Fo-o']) {
      expect(() => new VnicAllocator(scope, 'net0'), scope).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LINK_NAME' }));
    }
    expect(new VnicAllocator('', 'net0').next()).toBe('ox0');
  });
});

describe('links over the fake libdladm', () => {
  let addon: NativeAddon;
  let host: { state: string; remove(): void };

  beforeAll(() => {
    addon = fakeIllumos();
  });
  beforeEach(() => {
    host = freshFakeHost();
  });
  afterEach(() => {
    delete process.env.FAKE_ILLUMOS_ETHERSTUBS;
    host.remove();
  });

  it('loads libdladm with every symbol the binding uses', () => {
    expect(addon.capabilities().libraries.dladm).toMatchObject({ loaded: true, error: null, missing: [] });
  });

  it('looks up links by name, and rejects a missing one with DLADM_STATUS_NOTFOUND', async () => {
    expect(await lookupLink('net0')).toEqual({ name: 'net0', linkId: 1, class: 'phys', flags: 3 });
    expect(await lookupLink('net1')).toMatchObject({ linkId: 2, class: 'phys' });
    const err = await rejection(lookupLink('net7'), 'DLADM_STATUS_NOTFOUND');
    expect(err.message).toMatch(/^object not found/);
  });

  it('creates a temporary VNIC with a random 02:08:20 MAC, lists it, deletes it once', async () => {
    const v = await createVnic({ name: 'oxFoo0', link: 'net0' });
    expect(v).toMatchObject({ name: 'oxFoo0', overLink: 'net0', overLinkId: 1, vlan: null, mtu: 9000 });
    expect(v.mac).toMatch(/^02:08:20(:[0-9a-f]{2}){3}$/);
    expect(v.linkId).toBe(3);
    expect(await listVnics()).toEqual([v]);
    // Temporary: active only, not persistent.
    expect(await lookupLink('oxFoo0')).toEqual({ name: 'oxFoo0', linkId: 3, class: 'vnic', flags: 1 });
    await deleteVnic('oxFoo0');
    expect(await listVnics()).toEqual([]);
    await rejection(deleteVnic('oxFoo0'), 'DLADM_STATUS_NOTFOUND');
    await rejection(lookupLink('oxFoo0'), 'DLADM_STATUS_NOTFOUND');
  });

  it('rejects a duplicate VNIC with DLADM_STATUS_EXIST and keeps the first', async () => {
    const first = await createVnic({ name: 'oxDup0', link: 'net0' });
    const err = await rejection(createVnic({ name: 'oxDup0', link: 'net1' }), 'DLADM_STATUS_EXIST');
    expect(err.message).toMatch(/^object already exists/);
    expect(await listVnics()).toEqual([first]);
  });

  it('rejects a VNIC over a missing link with DLADM_STATUS_NOTFOUND and creates nothing', async () => {
    await rejection(createVnic({ name: 'oxFoo0', link: 'net9' }), 'DLADM_STATUS_NOTFOUND');
    expect(await listVnics()).toEqual([]);
  });

  it('refuses a VNIC over a VNIC (DLADM_STATUS_BADARG) and deleting a physical link', async () => {
    await createVnic({ name: 'oxLower0', link: 'net0' });
    const err = await rejection(createVnic({ name: 'oxUpper0', link: 'oxLower0' }), 'DLADM_STATUS_BADARG');
    expect(err.message).toMatch(/^invalid argument/);
    await rejection(deleteVnic('net0'), 'DLADM_STATUS_BADARG');
    expect(await lookupLink('net0')).toMatchObject({ class: 'phys' });
    expect((await listVnics()).map((v) => v.name)).toEqual(['oxLower0']);
  });

  it('puts VNICs over an etherstub, which is busy while they exist', async () => {
    process.env.FAKE_ILLUMOS_ETHERSTUBS = 'stub0';
    const stub = await lookupLink('stub0');
    expect(stub).toMatchObject({ class: 'etherstub' });
    const v = await createVnic({ name: 'oxControlInstance0', link: 'stub0' });
    expect(v).toMatchObject({ overLink: 'stub0', overLinkId: stub.linkId });
    await rejection(addon.vnicDelete('stub0'), 'DLADM_STATUS_LINKBUSY');
    await deleteVnic('oxControlInstance0');
    await addon.vnicDelete('stub0');
    await rejection(lookupLink('stub0'), 'DLADM_STATUS_NOTFOUND');
  });

  it('round-trips a fixed MAC and a VLAN through the list', async () => {
    const v = await createVnic({ name: 'vopte0', link: 'net1', mac: 'A8:40:25:FA:0:1', vlan: 42 });
    expect(v).toMatchObject({ mac: 'a8:40:25:fa:00:01', vlan: 42, overLink: 'net1' });
    const listed = await listVnics();
    expect(listed).toEqual([v]);
    expect(listed[0]).toMatchObject({ name: 'vopte0', mac: 'a8:40:25:fa:00:01', vlan: 42, overLinkId: 2 });
  });

  it('rejects MACs the link will not take, with the library status', async () => {
    await createVnic({ name: 'oxA0', link: 'net0', mac: 'a8:40:25:fa:00:01' });
    await rejection(createVnic({ name: 'oxB0', link: 'net0', mac: 'a8:40:25:fa:00:01' }), 'DLADM_STATUS_INVALIDMACADDRINUSE');
    await rejection(createVnic({ name: 'oxC0', link: 'net0', mac: '01:00:5e:00:00:01' }), 'DLADM_STATUS_INVALIDMACADDR');
    await rejection(createVnic({ name: 'oxD0', link: 'net0', mac: '00:00:00:00:00:00' }), 'DLADM_STATUS_INVALIDMACADDR');
    // The same MAC over another link is fine.
    await createVnic({ name: 'oxE0', link: 'net1', mac: 'a8:40:25:fa:00:01' });
    expect((await listVnics()).map((v) => v.name)).toEqual(['oxA0', 'oxE0']);
  });

  it('sets the MTU after creating, and removes the VNIC again if the link refuses it', async () => {
    expect(await createVnic({ name: 'oxMtu0', link: 'net0', mtu: 1500 })).toMatchObject({ mtu: 1500 });
    expect(await createVnic({ name: 'oxMtu1', link: 'net0' })).toMatchObject({ mtu: 9000 });
    expect((await listVnics()).map((v) => [v.name, v.mtu])).toEqual([
      ['oxMtu0', 1500],
      ['oxMtu1', 9000],
    ]);
    const err = await rejection(createVnic({ name: 'oxMtu2', link: 'net0', mtu: 9001 }), 'DLADM_STATUS_BADVAL');
    expect(err.message).toMatch(/^invalid value/);
    expect((await listVnics()).map((v) => v.name)).toEqual(['oxMtu0', 'oxMtu1']);
    // Nothing of oxMtu2 is left: the name is free again.
    expect(await createVnic({ name: 'oxMtu2', link: 'net0' })).toMatchObject({ name: 'oxMtu2' });
  });

  it('refuses bad names and arguments in TypeScript, before any native call', async () => {
    const { native, calls } = recording();
    const badNames = ['', '0ox', 'oxFoo', 'oxFoo00', 'ox-Foo0', 'oxFöo0', `ox${'a'.repeat(29)}1`, 'ox\0Foo0'];
    for (const name of badNames) {
      await rejection(createVnic({ name, link: 'net0' }, native), 'ERR_INVALID_LINK_NAME');
      await rejection(createVnic({ name: 'oxOk0', link: name }, native), 'ERR_INVALID_LINK_NAME');
      await rejection(deleteVnic(name, native), 'ERR_INVALID_LINK_NAME');
      await rejection(lookupLink(name, native), 'ERR_INVALID_LINK_NAME');
      await rejection(Vnic.create({ name, link: 'net0' }, native), 'ERR_INVALID_LINK_NAME');
    }
    await rejection(createVnic({ name: 'oxOk0', link: 'net0', mac: '02:08:20:zz:00:01' }, native), 'ERR_INVALID_MAC');
    await rejection(createVnic({ name: 'oxOk0', link: 'net0', vlan: 0 }, native), 'ERR_OUT_OF_RANGE');
    await rejection(createVnic({ name: 'oxOk0', link: 'net0', vlan: 4095 }, native), 'ERR_OUT_OF_RANGE');
    await rejection(createVnic({ name: 'oxOk0', link: 'net0', mtu: 1500.5 }, native), 'ERR_OUT_OF_RANGE');
    await rejection(createVnic(null as never, native), 'ERR_INVALID_ARG_TYPE');
    // Names the agent does not own are refused for an owned Vnic.
    await rejection(Vnic.create({ name: 'net5', link: 'net0' }, native), 'ERR_INVALID_LINK_NAME');
    expect(() => Vnic.wrapExisting('net0', native)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_LINK_NAME' }));
    expect(calls).toEqual([]);
  });

  it('bounds names at MAXLINKNAMELEN in the binding, so the library never truncates one', async () => {
    // The library copies names into 32-byte buffers: the fake, like the real one, would take
    // the first 31 characters of a longer name, here a valid name of its own.
    const prefix = `ox${'a'.repeat(28)}1`;
    expect(prefix).toHaveLength(31);
    const long = `${prefix}0000000`;
    const err = await rejection(addon.vnicCreate({ name: long, link: 'net0' }), 'ERR_OUT_OF_RANGE');
    expect(err).toBeInstanceOf(RangeError);
    expect(await addon.vnicList()).toEqual([]);
    await addon.vnicCreate({ name: prefix, link: 'net0' });
    await rejection(addon.linkLookup(`${prefix}x`), 'ERR_OUT_OF_RANGE');
    await rejection(addon.vnicDelete(`${prefix}x`), 'ERR_OUT_OF_RANGE');
    // An embedded NUL would make the C string a different name ("net0").
    await rejection(addon.linkLookup('net0\0garbage'), 'ERR_INVALID_ARG_VALUE');
    await rejection(addon.linkLookup(''), 'ERR_INVALID_ARG_VALUE');
    expect((await addon.vnicList()).map((v) => v.name)).toEqual([prefix]);
    // The library's own rule still applies to names the binding lets through.
    const bad = await rejection(addon.vnicCreate({ name: 'oxFoo', link: 'net0' }), 'DLADM_STATUS_BADARG');
    expect(bad.message).toMatch(/^invalid argument/);
  });

  it('rejects bad argument types as Promise rejections, never synchronous throws', async () => {
    const cases: Array<[() => Promise<unknown>, string, ErrorConstructor]> = [
      [() => addon.vnicCreate(undefined as never), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => addon.vnicCreate({ name: 5, link: 'net0' } as never), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => addon.vnicCreate({ name: 'oxA0' } as never), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', mac: 5 } as never), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', mac: 'zz' }), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', mac: '' }), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', vlan: '7' } as never), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', vlan: -1 }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', vlan: 65536 }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', vlan: 1.5 }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', mtu: 0 }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => addon.vnicCreate({ name: 'oxA0', link: 'net0', mtu: Number.NaN }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => addon.linkLookup(undefined as never), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => addon.vnicDelete({} as never), 'ERR_INVALID_ARG_TYPE', TypeError],
    ];
    for (const [call, code, type] of cases) {
      let p: Promise<unknown> | undefined;
      expect(() => {
        p = call();
      }).not.toThrow();
      const err = await rejection(p!, code);
      expect(err).toBeInstanceOf(type);
    }
    // The library kept a VLAN id the kernel refuses from becoming a truncated uint16.
    await rejection(addon.vnicCreate({ name: 'oxA0', link: 'net0', vlan: 4095 }), 'DLADM_STATUS_BADARG');
    expect(await addon.vnicList()).toEqual([]);
  });

  it('releases an owned Vnic exactly once, also through await using', async () => {
    const { native, calls } = recording(addon);
    const v = await Vnic.create({ name: 'oxRaii0', link: 'net0' }, native);
    expect(v).toMatchObject({ name: 'oxRaii0', kind: 'oxide', released: false });
    const first = v.release();
    const second = v.release();
    expect(second).toBe(first);
    await first;
    await v.release();
    expect(v.released).toBe(true);
    expect(calls.filter((c) => c === 'vnicDelete')).toHaveLength(1);
    expect(await listVnics()).toEqual([]);

    {
      await using scoped = await Vnic.create({ name: 'vopte3', link: 'net1' }, native);
      expect(scoped.kind).toBe('guest');
      expect((await listVnics()).map((x) => x.name)).toEqual(['vopte3']);
    }
    expect(await listVnics()).toEqual([]);

    // Deleted behind its back: release reports it, once, and does not ask again.
    const gone = await Vnic.create({ name: 'oxRaii1', link: 'net0' }, native);
    await addon.vnicDelete('oxRaii1');
    const before = calls.length;
    await rejection(gone.release(), 'DLADM_STATUS_NOTFOUND');
    await rejection(gone.release(), 'DLADM_STATUS_NOTFOUND');
    expect(calls.length - before).toBe(1);
  });

  it('creates control VNICs through the allocator and adopts owned VNICs at start-up', async () => {
    const allocator = new VnicAllocator('Instance', 'net0');
    const control = await allocator.newControl();
    expect(control.name).toBe('oxControlInstance0');
    expect(await lookupLink('oxControlInstance0')).toMatchObject({ class: 'vnic' });
    await createVnic({ name: 'vopte0', link: 'net1' });
    await createVnic({ name: 'other0', link: 'net1' });
    const owned = await listOwnedVnics();
    expect(owned.map((v) => v.name)).toEqual(['oxControlInstance0', 'vopte0']);
    expect((await listOwnedVnics(['other'])).map((v) => v.name)).toEqual(['other0']);
    for (const v of owned) await Vnic.wrapExisting(v).release();
    expect((await listVnics()).map((v) => v.name)).toEqual(['other0']);
  });

  it('creates 20 VNICs at once from JavaScript, distinct names and link ids, through the one dladm thread', async () => {
    const allocator = new VnicAllocator('Conc', 'net0');
    const names = Array.from({ length: 20 }, () => allocator.next());
    // The fake aborts the process if its handle is used from two threads at once.
    const created = await Promise.all([
      ...names.map((name, i) => createVnic({ name, link: i % 2 === 0 ? 'net0' : 'net1' })),
      ...names.map(() => lookupLink('net0')),
    ]);
    const vnics = created.slice(0, 20) as Awaited<ReturnType<typeof createVnic>>[];
    expect(new Set(vnics.map((v) => v.name)).size).toBe(20);
    expect(new Set(vnics.map((v) => v.linkId)).size).toBe(20);
    expect(new Set(vnics.map((v) => v.mac)).size).toBe(20);
    const listed = await listVnics();
    expect(listed.map((v) => v.name).sort()).toEqual([...names].sort());
    await Promise.all(names.map((name) => deleteVnic(name)));
    expect(await listVnics()).toEqual([]);
  });

  it('gives a link to a zone in the kernel (the zone property) until that boot of the zone is gone', async () => {
    const native = addon as unknown as DladmNative;
    // The fake kernel's zone table, as the fake zoneadm keeps it (test/fake-illumos/zonecfg.c).
    const kernel = (zones: string) => {
      mkdirSync(join(host.state, 'zones'), { recursive: true });
      writeFileSync(join(host.state, 'zones', 'kernel'), `nextid 9\n${zones}`);
    };
    kernel('zone oxz_a 4 running\nzone oxz_b 5 ready\nzone oxz_c 6 shutting_down\n');
    await createVnic({ name: 'vopte0', link: 'net0' });
    expect(await native.linkZone('vopte0')).toBeNull();

    await setLinkZone('vopte0', 'oxz_a');
    expect(await linkZone('vopte0')).toBe('oxz_a');
    await setLinkZone('vopte0', 'oxz_a'); // already there: no change, no error
    expect(await rejection(setLinkZone('vopte0', 'oxz_b'), 'DLADM_STATUS_LINKBUSY')).toHaveProperty('message', expect.stringMatching(/^link busy/));
    expect(await linkZone('vopte0')).toBe('oxz_a');

    // a zone not in the kernel, or on its way out: check_zone's BADVAL; an unknown link: NOTFOUND
    const bad = await rejection(setLinkZone('net1', 'oxz_none'), 'DLADM_STATUS_BADVAL');
    expect(bad.message).toMatch(/^invalid value/);
    await rejection(setLinkZone('net1', 'oxz_c'), 'DLADM_STATUS_BADVAL');
    await rejection(setLinkZone('vopte7', 'oxz_a'), 'DLADM_STATUS_NOTFOUND');
    await rejection(native.linkZone('vopte7'), 'DLADM_STATUS_NOTFOUND');
    expect(await linkZone('net1')).toBeNull();
    // a ready zone takes links (zoneadmd gives them while readying)
    await setLinkZone('net1', 'oxz_b');
    expect(await linkZone('net1')).toBe('oxz_b');

    // oxz_a halted and booted again (a new id): the link went back to the global zone
    kernel('zone oxz_a 7 running\nzone oxz_b 5 ready\n');
    expect(await linkZone('vopte0')).toBeNull();
    await setLinkZone('vopte0', 'oxz_b');
    expect(await linkZone('vopte0')).toBe('oxz_b');
    // still a VNIC like any other: listed, and deleted
    expect((await listVnics()).map((v) => v.name)).toContain('vopte0');
    await deleteVnic('vopte0');
  });

  it('checks the zone name in the binding (ZONENAME_MAX) and in TypeScript', async () => {
    const native = addon as unknown as DladmNative;
    const long = await native.linkSetZone('net0', `z${'a'.repeat(63)}`).then(
      () => null,
      (e: unknown) => e,
    );
    expect(long).toBeInstanceOf(RangeError);
    expect(long).toHaveProperty('code', 'ERR_OUT_OF_RANGE');
    await rejection(native.linkSetZone('net0', ''), 'ERR_INVALID_ARG_VALUE');
    await rejection(native.linkSetZone('net0', 5 as unknown as string), 'ERR_INVALID_ARG_TYPE');
    await expect(setLinkZone('net0', 'bad zone')).rejects.toThrow();
    expect(await linkZone('net0')).toBeNull();
  });

  it('says which dladm_vnic_create form the library has: the 15-argument one', async () => {
    expect(await addon.dladmAbi()).toEqual({ vnicCreateArgs: 15 });
  });

  it('keeps state for a second process: same ids, MACs, VLANs and MTUs; and sees what it made', async () => {
    const mine = await createVnic({ name: 'oxPersist0', link: 'net0', mac: 'a8:40:25:00:00:99', vlan: 12, mtu: 1500 });
    const child = await inChild(FAKE_LIB_DIR, { FAKE_ILLUMOS_STATE: host.state }, [
      ['vnicList'],
      ['linkLookup', 'oxPersist0'],
      ['vnicCreate', { name: 'oxChild0', link: 'net1' }],
    ]);
    expect(child.results[0]).toEqual({ ok: true, value: [mine] });
    expect(child.results[1]).toEqual({ ok: true, value: { name: 'oxPersist0', linkId: mine.linkId, class: 'vnic', flags: 1 } });
    expect(child.results[2]).toMatchObject({ ok: true, value: { name: 'oxChild0', overLink: 'net1' } });
    const theirs = (child.results[2] as { value: { linkId: number } }).value;
    expect(theirs.linkId).toBeGreaterThan(mine.linkId);
    expect(await listVnics()).toEqual([mine, (child.results[2] as { value: unknown }).value]);
    // A fresh host has neither.
    const other = freshFakeHost();
    try {
      expect(await listVnics()).toEqual([]);
    } finally {
      other.remove();
      process.env.FAKE_ILLUMOS_STATE = host.state;
    }
  });

  it('uses the 14-argument dladm_vnic_create of an older libdladm correctly', async () => {
    const child = await inChild(FAKE_LIB_DIR, { FAKE_ILLUMOS_STATE: host.state, FAKE_ILLUMOS_DLADM_ABI: '14' }, [
      ['dladmAbi'],
      ['vnicCreate', { name: 'oxOld0', link: 'net0', vlan: 5, mtu: 1500 }],
      ['vnicList'],
      ['vnicDelete', 'oxOld0'],
      ['vnicList'],
    ]);
    expect(child.results[0]).toEqual({ ok: true, value: { vnicCreateArgs: 14 } });
    expect(child.results[1]).toMatchObject({ ok: true, value: { name: 'oxOld0', vlan: 5, mtu: 1500 } });
    expect(child.results[2]).toMatchObject({ ok: true, value: [{ name: 'oxOld0' }] });
    expect(child.results[3]).toEqual({ ok: true, value: null });
    expect(child.results[4]).toEqual({ ok: true, value: [] });
  });

  it('rejects every call with ENOLIB on a host without libdladm, without crashing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-illumos-'));
    try {
      const child = await inChild(empty, { FAKE_ILLUMOS_STATE: host.state }, [
        ['vnicCreate', { name: 'oxFoo0', link: 'net0' }],
        ['vnicDelete', 'oxFoo0'],
        ['vnicList'],
        ['linkLookup', 'net0'],
        ['dladmAbi'],
        ['ts:createVnic', { name: 'oxFoo0', link: 'net0' }],
        ['ts:listOwnedVnics'],
      ]);
      expect(child.capabilities.libraries.dladm).toMatchObject({ loaded: false });
      expect(child.capabilities.libraries.dladm!.error).toMatch(/libdladm\.so\.1/);
      expect(child.results).toHaveLength(7);
      for (const r of child.results) {
        expect(r).toMatchObject({ ok: false, code: 'ENOLIB' });
        expect((r as { message: string }).message).toMatch(/libdladm\.so\.1 is not usable/);
      }
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  describe('fuzz', () => {
    const odd = fc.oneof(
      fc.string(),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ minLength: 28, maxLength: 80 }),
      fc.stringMatching(/^[A-Za-z_.][A-Za-z0-9_.]{0,30}$/),
      fc.constantFrom('', '\0', 'net0\0', 'net0', 'net1', 'oxF0', 'é0', 'net00', `${'a'.repeat(31)}`, `${'a'.repeat(30)}1`),
    );
    const native = /^(ERR_INVALID_ARG_TYPE|ERR_INVALID_ARG_VALUE|ERR_OUT_OF_RANGE|DLADM_STATUS_[A-Z_]+)$/;

    function cleanRejection(err: unknown, codes: RegExp): void {
      expect(err).toBeInstanceOf(Error);
      expect((err as { code?: unknown }).code).toMatch(codes);
      expect(typeof (err as Error).message).toBe('string');
      expect((err as Error).message.length).toBeGreaterThan(0);
    }

    it('vnicCreate and linkLookup with odd strings: success or a clean rejection', async () => {
      await fc.assert(
        fc.asyncProperty(
          odd,
          fc.oneof(odd, fc.constantFrom('net0', 'net1')),
          fc.option(fc.oneof(odd, fc.constant('a8:40:25:00:00:01')), { nil: undefined }),
          fc.option(fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.double()), { nil: undefined }),
          fc.option(fc.oneof(fc.integer({ min: -5, max: 10_000 }), fc.constant(1500)), { nil: undefined }),
          async (name, link, mac, vlan, mtu) => {
            try {
              const v = await addon.vnicCreate({ name, link, mac, vlan, mtu });
              // Whatever the library took is a valid link name by the TypeScript rules too.
              expect(linkNameProblem(name)).toBeNull();
              expect(v.name).toBe(name);
              await addon.vnicDelete(name);
            } catch (err) {
              cleanRejection(err, native);
            }
            try {
              const l = await addon.linkLookup(name);
              expect(l.name).toBe(name);
            } catch (err) {
              cleanRejection(err, native);
            }
          },
        ),
        { numRuns: 300 },
      );
      expect(await addon.vnicList()).toEqual([]);
    });

    it('the TypeScript rules and the library agree on which names a VNIC may have', async () => {
      await fc.assert(
        fc.asyncProperty(odd.filter((name) => name !== 'net0' && name !== 'net1'), async (name) => {
          let created = false;
          try {
            await addon.vnicCreate({ name, link: 'net0' });
            created = true;
            await addon.vnicDelete(name);
          } catch (err) {
            cleanRejection(err, native);
          }
          expect(created, JSON.stringify(name)).toBe(linkNameProblem(name) === null);
        }),
        { numRuns: 300 },
      );
    });

    it('the typed layer with anything at all: success or a clean rejection', async () => {
      const typed = /^(ERR_INVALID_LINK_NAME|ERR_INVALID_MAC|ERR_OUT_OF_RANGE|ERR_INVALID_ARG_TYPE|DLADM_STATUS_[A-Z_]+)$/;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.anything(), fc.record({ name: fc.oneof(odd, fc.anything()), link: fc.oneof(odd, fc.constant('net0')), mac: fc.anything(), vlan: fc.anything() }, { requiredKeys: ['name', 'link'] })),
          async (options) => {
            try {
              const v = await createVnic(options as never);
              await deleteVnic(v.name);
            } catch (err) {
              cleanRejection(err, typed);
            }
          },
        ),
        { numRuns: 300 },
      );
      expect(await listVnics()).toEqual([]);
    });
  });
});

afterAll(() => {
  delete process.env.FAKE_ILLUMOS_ETHERSTUBS;
});
