// IllumosHost (src/illumos/host.ts) on the fake illumos: the shared Host suite, then what only
// this backend has: illumosAvailable(), the options (reachable, resolveImage), the SMF wait's
// retry while a zone's configd is not up, close(), and the fake in-zone commands' own semantics
// (test/fake-illumos/{ipadm,svccfg,svcadm,route}.c).
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  NETWORK_MILESTONE,
  PROPOLIS_SERVICE,
  ipadmCreateStatic,
  routeAddDefault6,
  siteManifest,
  svccfgAddInstance,
  svccfgAddPg,
  svccfgImport,
  svccfgSetProp,
} from '../src/host/commands.js';
import type { Capabilities, LibraryStatus, NativeAddon } from '../src/illumos/addon.js';
import { IllumosHost, illumosAvailable, type IllumosHostOptions } from '../src/illumos/host.js';
import { FAKE_BIN_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';
import { SUITE_IMAGE, hostSuite, rejection } from './support/host-suite.js';

const OXP = 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b';

let addon: NativeAddon;
let images: string;

beforeAll(() => {
  addon = fakeIllumos();
  images = mkdtempSync(join(tmpdir(), 'host-illumos-images-'));
  writeFileSync(join(images, basename(SUITE_IMAGE)), 'not really a tarball');
});
afterAll(() => {
  if (images) rmSync(images, { recursive: true, force: true });
});

/** A fresh fake host and an IllumosHost on it; cleanup halts what runs (so the fakes' delayed
 * service start-ups find nothing to do), closes the host and removes the state. */
async function openHost(extra: Partial<IllumosHostOptions> = {}) {
  const fake = freshFakeHost();
  const host = await IllumosHost.open({
    addon,
    zoneadm: join(FAKE_BIN_DIR, 'zoneadm'),
    zlogin: join(FAKE_BIN_DIR, 'zlogin'),
    sbin: FAKE_BIN_DIR,
    commandTimeoutMs: 15_000,
    resolveImage: (image) => join(images, basename(image)),
    ...extra,
  });
  return {
    host,
    state: fake.state,
    async cleanup(): Promise<void> {
      try {
        for (const z of await host.zones.list()) {
          if (z.state === 'running' || z.state === 'ready') await host.zones.halt(z.name);
        }
      } finally {
        await host.close();
        fake.remove();
      }
    },
  };
}

hostSuite('illumos (fake)', async () => {
  const { host, cleanup, state } = await openHost();
  return { host, link: 'net0', pool: OXP, zoneRoot: join(state, 'zoneroot'), cleanup };
});

describe('illumosAvailable', () => {
  const lib = (soname: string, over: Partial<LibraryStatus> = {}): LibraryStatus => ({
    soname,
    loaded: true,
    path: `/lib/${soname}`,
    error: null,
    missing: [],
    ...over,
  });
  const report = (libs: Record<string, LibraryStatus>): Pick<NativeAddon, 'capabilities'> => ({
    capabilities: (): Capabilities => ({ dir: null, libraries: libs }),
  });
  const all = (): Record<string, LibraryStatus> => ({
    zonecfg: lib('libzonecfg.so.1'),
    dladm: lib('libdladm.so.1'),
    nvpair: lib('libnvpair.so.1'),
    zfs: lib('libzfs.so.1'),
    scf: lib('libscf.so.1'),
    sysevent: lib('libsysevent.so.1'),
  });

  it('says yes for the fake illumos', () => {
    expect(illumosAvailable(addon)).toEqual({ available: true, reason: null, problems: [] });
  });

  it('names each library that failed, and the missing symbols', () => {
    const libs = all();
    libs.scf = lib('libscf.so.1', { loaded: false, missing: ['_scf_pg_wait', 'scf_pg_update'] });
    libs.dladm = lib('libdladm.so.1', { loaded: false, error: 'ld.so.1: libdladm.so.1: open failed: No such file or directory' });
    libs.zonecfg = lib('libzonecfg.so.1', { loaded: false, path: null });
    delete (libs as Record<string, unknown>).sysevent;
    const r = illumosAvailable(report(libs));
    expect(r.available).toBe(false);
    expect(r.problems).toEqual([
      'libzonecfg.so.1 has not been loaded (addon.load() was not called)',
      'libdladm.so.1 could not be loaded: ld.so.1: libdladm.so.1: open failed: No such file or directory',
      'libscf.so.1 lacks _scf_pg_wait, scf_pg_update',
      'the addon does not bind sysevent',
    ]);
    expect(r.reason).toMatch(/^the illumos host is unavailable: libzonecfg\.so\.1 .*; the addon does not bind sysevent$/);
  });
});

describe('IllumosHost', () => {
  let cleanup: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await cleanup?.();
    cleanup = null;
  });

  async function open(extra: Partial<IllumosHostOptions> = {}) {
    const h = await openHost(extra);
    cleanup = h.cleanup;
    return h;
  }

  /** A running zone oxz_t with VNIC oxControlT0. */
  async function zone(host: IllumosHost, name = 'oxz_t'): Promise<string> {
    await host.links.createVnic({ name: 'oxControlT0', link: 'net0' });
    await host.zones.configure({ name, brand: 'omicron1', zonepath: `/zone/${name}`, nets: [{ physical: 'oxControlT0' }], devices: [], datasets: [] });
    await host.zones.install(name, SUITE_IMAGE);
    await host.zones.boot(name);
    return name;
  }

  it('maps reachable() only when given a mapping', async () => {
    const { host } = await open();
    const addr = { host: 'fd00:1122:3344:101::5', port: 12400 };
    await expect(host.reachable('oxz_t', addr)).resolves.toEqual(addr);
    const mapped = await IllumosHost.open({ addon, reachable: (z, a) => ({ host: '127.0.0.1', port: a.port + z.length }) });
    try {
      await expect(mapped.reachable('oxz_t', addr)).resolves.toEqual({ host: '127.0.0.1', port: 12405 });
    } finally {
      await mapped.close();
    }
  });

  it('installs from the path the agent names unless resolveImage says where images are', async () => {
    const { host } = await open({ resolveImage: (image) => image });
    await host.zones.configure({ name: 'oxz_t', brand: 'omicron1', zonepath: '/zone/oxz_t', nets: [], devices: [], datasets: [] });
    await rejection(host.zones.install('oxz_t', join(images, 'nosuch.tar.gz')), 'ECOMMAND', /cannot read image/);
    await host.zones.install('oxz_t', join(images, basename(SUITE_IMAGE)));
    expect(await host.zones.list()).toEqual([{ name: 'oxz_t', state: 'installed' }]);
  });

  it('refuses to delete an installed zone, as zonecfg delete does', async () => {
    const { host } = await open();
    await host.zones.configure({ name: 'oxz_t', brand: 'omicron1', zonepath: '/zone/oxz_t', nets: [], devices: [], datasets: [] });
    await host.zones.install('oxz_t', SUITE_IMAGE);
    await rejection(host.zones.delete('oxz_t'), 'Z_BAD_ZONE_STATE', /installed/);
    await host.zones.uninstall('oxz_t');
    await host.zones.delete('oxz_t');
    expect(await host.zones.list()).toEqual([]);
  });

  it("retries the SMF wait, logged, while the zone's configd is not up, and resolves once it is", async () => {
    const retries: unknown[] = [];
    let firstRetry!: () => void;
    const retried = new Promise<void>((resolve) => {
      firstRetry = resolve;
    });
    const log = pino({ level: 'debug' }, { write: () => {} });
    const debug = log.debug.bind(log);
    log.debug = ((obj: unknown, ...rest: unknown[]) => {
      retries.push(obj);
      firstRetry();
      return (debug as (...a: unknown[]) => void)(obj, ...rest);
    }) as typeof log.debug;
    const { host, state } = await open({ log, smfRetry: { initialMs: 5, maxMs: 20 } });
    const z = await zone(host);
    await host.events.waitForService(z, NETWORK_MILESTONE, ['online'], { timeoutMs: 10_000 });
    // Take the zone's repository away, as if its svc.configd were not running yet.
    const repo = join(state, 'smf', z);
    const aside = join(state, 'smf-aside');
    renameSync(repo, aside);
    const wait = host.events.waitForService(z, NETWORK_MILESTONE, ['online'], { timeoutMs: 10_000 });
    await retried;
    expect(retries[0]).toMatchObject({ zone: z, fmri: NETWORK_MILESTONE, code: 'SCF_ERROR_NO_SERVER', attempt: 1 });
    renameSync(aside, repo);
    expect(await wait).toBe('online');
  });

  it('rejects pending waits with ECLOSED when closed', async () => {
    const h = await openHost();
    const { host } = h;
    try {
      await host.zones.configure({ name: 'oxz_t', brand: 'omicron1', zonepath: '/zone/oxz_t', nets: [], devices: [], datasets: [] });
      const closed = rejection(host.events.waitForZoneRunning('oxz_t', { timeoutMs: 10_000 }), 'ECLOSED');
      await host.close();
      await closed;
      await rejection(host.events.waitForZoneRunning('oxz_t', { timeoutMs: 10_000 }), 'ECLOSED');
    } finally {
      await h.cleanup();
    }
  });

  describe('fake in-zone commands', () => {
    it('svccfg keeps properties (listprop); setprop needs the property group', async () => {
      const { host } = await open();
      const z = await zone(host);
      const fmri = `${PROPOLIS_SERVICE}:vm-1`;
      await host.zones.exec(z, svccfgAddInstance(PROPOLIS_SERVICE, 'vm-1'));
      await rejection(host.zones.exec(z, svccfgSetProp(fmri, 'config/server_addr', '[::1]:12400')), 'ECOMMAND', /No such property group "config"/);
      await host.zones.exec(z, svccfgAddPg(fmri, 'config', 'astring'));
      await host.zones.exec(z, svccfgSetProp(fmri, 'config/server_addr', '[fd00::5]:12400'));
      await host.zones.exec(z, svccfgSetProp(fmri, 'config/note', 'two words'));
      expect((await host.zones.exec(z, ['svccfg', '-s', fmri, 'listprop', 'config'])).stdout).toBe(
        'config astring\nconfig/server_addr astring [fd00::5]:12400\nconfig/note astring two words\n',
      );
    });

    it('route needs the gateway on a link, and refuses a route that exists', async () => {
      const { host } = await open();
      const z = await zone(host);
      await rejection(host.zones.exec(z, routeAddDefault6('fd00:1122:3344:101::1')), 'ECOMMAND', /Network is unreachable/);
      await host.zones.exec(z, ipadmCreateStatic('oxControlT0/omicron6', 'fd00:1122:3344:101::5/64'));
      await host.zones.exec(z, routeAddDefault6('fd00:1122:3344:101::1'));
      await rejection(host.zones.exec(z, routeAddDefault6('fd00:1122:3344:101::1')), 'ECOMMAND', /entry exists/);
      expect((await host.zones.exec(z, ['route', '-n', 'get', '-inet6', 'default'])).stdout).toMatch(/gateway: fd00:1122:3344:101::1\n/);
    });

    it('forgets addresses, routes and instances when the zone reboots', async () => {
      const { host } = await open();
      const z = await zone(host);
      await host.zones.exec(z, ipadmCreateStatic('oxControlT0/omicron6', 'fd00:1122:3344:101::5/64'));
      await host.zones.exec(z, svccfgAddInstance(PROPOLIS_SERVICE, 'vm-1'));
      await host.zones.halt(z);
      await host.zones.boot(z);
      await rejection(host.zones.exec(z, ['ipadm', 'show-addr', '-p', '-o', 'ADDR', 'oxControlT0/omicron6']), 'ECOMMAND', /Address object not found/);
      await host.zones.exec(z, svccfgAddInstance(PROPOLIS_SERVICE, 'vm-1'));
    });

    it('run only in a zone of the fake (FAKE_ILLUMOS_ZONE from zlogin)', async () => {
      const { execFile } = await import('node:child_process');
      const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = execFile(join(FAKE_BIN_DIR, 'ipadm'), ['show-addr'], { env: { ...process.env, FAKE_ILLUMOS_ZONE: '' } }, (err, _stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr }),
        );
        child.stdin?.end();
      });
      expect(out.code).toBe(1);
      expect(out.stderr).toMatch(/^ipadm: not in a zone of the fake illumos/);
    });

    it('svcadm enable -s waits for the start-up; other zones are not affected', async () => {
      const { host, state } = await open();
      const z = await zone(host);
      const fmri = 'svc:/system/illumos/nexus:default';
      await host.zones.exec(z, svccfgImport(siteManifest('nexus')));
      await host.zones.exec(z, ['svcadm', 'enable', '-s', fmri]);
      // no wait needed: -s returned after the instance went online
      expect(await addon.smfState(z, fmri)).toBe('online');
      mkdirSync(join(state, 'smf', 'oxz_other'), { recursive: true });
      await rejection(addon.smfState('oxz_other', fmri), 'SCF_ERROR_NOT_FOUND');
    });
  });
});
