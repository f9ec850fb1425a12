// The one suite every Host backend passes (src/host/index.ts): links, zones, the in-zone command
// set of src/host/commands.ts, datasets, zone events and the event waits, exercised through the
// Host's public methods only. A backend's test file calls hostSuite() with a fixture that makes a
// fresh, empty host for each test: `link` is a physical link or etherstub VNICs can go over and
// `pool` an imported pool. Nothing here sleeps or polls: every wait is on an event or a promise,
// with a deadline that only bounds a failing test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ADDROBJ_LINKLOCAL,
  ADDROBJ_STATIC6,
  NETWORK_MILESTONE,
  PROPOLIS_SERVICE,
  ipadmCreateLinkLocal,
  ipadmCreateStatic,
  ipadmDeleteAddr,
  ipadmShowAddr,
  routeAddDefault6,
  siteManifest,
  svcadmDisable,
  svcadmEnable,
  svccfgAddInstance,
  svccfgAddPg,
  svccfgImport,
  svccfgRefresh,
  svccfgSetProp,
  zoneImage,
} from '../../src/host/commands.js';
import { GLOBAL_ZONE, type Host, type ZoneSpec, type ZoneStateEvent } from '../../src/host/index.js';
import { DEFAULT_SIM_POOLS } from '../../src/sim/host.js';

export interface HostFixture {
  host: Host;
  /** A physical link or etherstub that VNICs can be created over. */
  link: string;
  /** An imported pool. */
  pool: string;
  /** A directory zonepaths can be made under (a zone's root, for its site profile). */
  zoneRoot: string;
  cleanup(): Promise<void>;
}

/**
 * A fixture for a simulated host (in this process or in its own): a fresh state directory per
 * test, with links stub0 (VNICs go over it) and net0 and the default pools, removed after.
 */
export function simHostFixture(prefix: string, open: (stateDir: string, links: string[]) => Promise<Host>): () => Promise<HostFixture> {
  return async () => {
    const stateDir = mkdtempSync(join(tmpdir(), prefix));
    const host = await open(stateDir, ['stub0', 'net0']);
    return {
      host,
      link: 'stub0',
      pool: DEFAULT_SIM_POOLS[1]!.name,
      zoneRoot: join(stateDir, 'zones'),
      async cleanup(): Promise<void> {
        try {
          await host.close();
        } finally {
          rmSync(stateDir, { recursive: true, force: true });
        }
      },
    };
  };
}

/** The zone image every zone here is installed from. */
export const SUITE_IMAGE = zoneImage('propolis-server');
/** Bounds a wait that should end long before; never reached by a passing test. */
const DEADLINE_MS = 10_000;

/** The error `p` rejects with; fails the test if it resolves or rejects without `code`. */
export async function rejection(p: Promise<unknown>, code: string, message?: RegExp): Promise<Error & { code: string }> {
  let caught: unknown = undefined;
  let resolved = false;
  try {
    await p;
    resolved = true;
  } catch (err) {
    caught = err;
  }
  expect(resolved, `expected a rejection with code ${code}`).toBe(false);
  expect(caught).toBeInstanceOf(Error);
  expect((caught as { code?: unknown }).code, String((caught as Error).message)).toBe(code);
  if (message !== undefined) expect((caught as Error).message).toMatch(message);
  return caught as Error & { code: string };
}

/** Records `zone`'s events from now on; until() resolves on the first recorded event matching. */
function recordEvents(host: Host, zone: string) {
  const seen: ZoneStateEvent[] = [];
  const pending: Array<{ match: (ev: ZoneStateEvent) => boolean; resolve: (ev: ZoneStateEvent) => void }> = [];
  const unsubscribe = host.events.subscribe((ev) => {
    if (ev.zonename !== zone) return;
    seen.push(ev);
    for (const p of pending.splice(0)) {
      if (p.match(ev)) p.resolve(ev);
      else pending.push(p);
    }
  });
  return {
    seen,
    unsubscribe,
    until(match: (ev: ZoneStateEvent) => boolean): Promise<ZoneStateEvent> {
      const earlier = seen.find(match);
      if (earlier !== undefined) return Promise.resolve(earlier);
      return new Promise<ZoneStateEvent>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event for zone ${zone} within ${DEADLINE_MS} ms`)), DEADLINE_MS);
        pending.push({
          match,
          resolve: (ev) => {
            clearTimeout(timer);
            resolve(ev);
          },
        });
      });
    },
  };
}

export function hostSuite(name: string, fixture: () => Promise<HostFixture>): void {
  describe(`Host suite: ${name}`, () => {
    let fx: HostFixture;
    let host: Host;

    beforeEach(async () => {
      fx = await fixture();
      host = fx.host;
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    const ZONE = 'oxz_suite_a';
    const VNIC = 'oxControlSuite0';

    function spec(zone: string, over: Partial<ZoneSpec> = {}): ZoneSpec {
      return { name: zone, brand: 'omicron1', zonepath: `/zone/${zone}`, autoboot: false, nets: [], devices: [], datasets: [], ...over };
    }

    /** A VNIC and a zone with it as its NIC, installed. */
    async function installedZone(zone = ZONE, vnic = VNIC): Promise<void> {
      await host.links.createVnic({ name: vnic, link: fx.link });
      await host.zones.configure(spec(zone, { nets: [{ physical: vnic }] }));
      await host.zones.install(zone, SUITE_IMAGE);
    }

    async function runningZone(zone = ZONE, vnic = VNIC): Promise<void> {
      await installedZone(zone, vnic);
      await host.zones.boot(zone);
    }

    async function zoneState(zone: string): Promise<string | undefined> {
      return (await host.zones.list()).find((z) => z.name === zone)?.state;
    }

    const exec = (argv: readonly string[], zone = ZONE) => host.zones.exec(zone, argv);

    describe('links', () => {
      it('creates, lists and deletes a VNIC', async () => {
        expect(await host.links.linkExists(fx.link)).toBe(true);
        const info = await host.links.createVnic({ name: 'oxSuite0', link: fx.link, mac: 'a8:40:25:f0:00:01' });
        expect(info).toEqual({ name: 'oxSuite0', link: fx.link, mac: 'a8:40:25:f0:00:01', vlan: 0 });
        const tagged = await host.links.createVnic({ name: 'vopteSuite1', link: fx.link, vlan: 12 });
        expect(tagged).toMatchObject({ name: 'vopteSuite1', link: fx.link, vlan: 12 });
        expect(tagged.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        const listed = await host.links.listVnics();
        expect(listed).toEqual(expect.arrayContaining([info, tagged]));
        expect(listed.filter((v) => v.name === 'oxSuite0' || v.name === 'vopteSuite1')).toHaveLength(2);
        expect(await host.links.linkExists('oxSuite0')).toBe(true);

        await host.links.deleteVnic('oxSuite0');
        expect((await host.links.listVnics()).map((v) => v.name)).not.toContain('oxSuite0');
        expect(await host.links.linkExists('oxSuite0')).toBe(false);
        expect((await host.links.listVnics()).map((v) => v.name)).toContain('vopteSuite1');
      });

      it('refuses a taken name (DLADM_STATUS_EXIST), an unknown link and a missing VNIC (DLADM_STATUS_NOTFOUND)', async () => {
        await host.links.createVnic({ name: 'oxSuite0', link: fx.link, mac: 'a8:40:25:f0:00:01' });
        await rejection(host.links.createVnic({ name: 'oxSuite0', link: fx.link }), 'DLADM_STATUS_EXIST');
        await rejection(host.links.createVnic({ name: 'oxSuite1', link: 'nosuchlink7' }), 'DLADM_STATUS_NOTFOUND');
        await rejection(host.links.deleteVnic('oxSuite9'), 'DLADM_STATUS_NOTFOUND');
        // the failed calls changed nothing
        expect((await host.links.listVnics()).filter((v) => v.name.startsWith('oxSuite'))).toEqual([
          { name: 'oxSuite0', link: fx.link, mac: 'a8:40:25:f0:00:01', vlan: 0 },
        ]);
      });

      it('refuses invalid link names before making anything', async () => {
        const before = await host.links.listVnics();
        await rejection(host.links.createVnic({ name: 'oxSuite', link: fx.link }), 'ERR_INVALID_LINK_NAME'); // no number
        await rejection(host.links.createVnic({ name: `ox${'a'.repeat(30)}0`, link: fx.link }), 'ERR_INVALID_LINK_NAME'); // 33 bytes
        await rejection(host.links.createVnic({ name: 'ox-bad0', link: fx.link }), 'ERR_INVALID_LINK_NAME');
        await rejection(host.links.createVnic({ name: 'oxSuite0', link: 'bad link0' }), 'ERR_INVALID_LINK_NAME');
        await rejection(host.links.deleteVnic('0bad'), 'ERR_INVALID_LINK_NAME');
        expect(await host.links.listVnics()).toEqual(before);
      });
    });

    describe('giving a link to a running zone (links.setZone)', () => {
      const GUEST = 'vopteSuite0';
      const obj = `${GUEST}/${ADDROBJ_STATIC6}`;

      it('gives a VNIC to a running zone as a NIC until the zone halts; not in its configuration', async () => {
        await runningZone();
        await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS });
        await host.links.createVnic({ name: GUEST, link: fx.link });
        // not the zone's before
        await rejection(exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::5/64')), 'ECOMMAND');

        await host.links.setZone(GUEST, ZONE);
        await exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::5/64'));
        expect((await exec(ipadmShowAddr(obj))).stdout).toBe('fd00:1122:3344:101::5/64\n');
        await host.links.setZone(GUEST, ZONE); // the zone has it already: nothing to do
        expect((await host.zones.config(ZONE)).nets).toEqual([{ physical: VNIC }]);
        expect(await host.links.linkExists(GUEST)).toBe(true);

        // a halt gives it back, and the next boot does not take it again
        await host.zones.halt(ZONE);
        expect(await host.links.linkExists(GUEST)).toBe(true);
        await host.zones.boot(ZONE);
        await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS });
        await rejection(exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::6/64')), 'ECOMMAND');
        await host.links.setZone(GUEST, ZONE);
        await exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::6/64'));
      });

      it('refuses an unknown link (DLADM_STATUS_NOTFOUND)', async () => {
        await runningZone();
        await rejection(host.links.setZone('vopteSuite9', ZONE), 'DLADM_STATUS_NOTFOUND');
      });

      it('refuses a zone that is not ready or running, or does not exist (DLADM_STATUS_BADVAL)', async () => {
        await installedZone();
        await host.links.createVnic({ name: GUEST, link: fx.link });
        await rejection(host.links.setZone(GUEST, ZONE), 'DLADM_STATUS_BADVAL');
        await rejection(host.links.setZone(GUEST, 'oxz_suite_none'), 'DLADM_STATUS_BADVAL');
        // nothing was given: once the zone runs, the link is still free to give
        await host.zones.boot(ZONE);
        await host.links.setZone(GUEST, ZONE);
      });

      it('refuses a link another running zone has (DLADM_STATUS_LINKBUSY)', async () => {
        await runningZone();
        await runningZone('oxz_suite_b', 'oxControlSuite1');
        await host.links.createVnic({ name: GUEST, link: fx.link });
        await host.links.setZone(GUEST, ZONE);
        await rejection(host.links.setZone(GUEST, 'oxz_suite_b'), 'DLADM_STATUS_LINKBUSY');
        // once the first zone halts, the link can go to the other
        await host.zones.halt(ZONE);
        await host.links.setZone(GUEST, 'oxz_suite_b');
      });
    });

    describe('zones', () => {
      it('configures a zone and reads the configuration back (nets, devices, datasets)', async () => {
        await host.links.createVnic({ name: VNIC, link: fx.link });
        await host.links.createVnic({ name: 'vopteSuite0', link: fx.link });
        const desired = spec(ZONE, {
          nets: [{ physical: 'vopteSuite0' }, { physical: VNIC }],
          devices: [{ match: '/dev/vmm/*' }, { match: '/dev/vmmctl' }, { match: '/dev/viona' }],
          datasets: [{ name: `${fx.pool}/crypt/zone` }],
        });
        await host.zones.configure(desired);
        expect(await host.zones.config(ZONE)).toEqual(desired);
        expect(await host.zones.list()).toContainEqual({ name: ZONE, state: 'configured' });
        await rejection(host.zones.configure(spec(ZONE)), 'Z_NAME_IN_USE');
        expect(await host.zones.config(ZONE)).toEqual(desired); // unchanged by the refused configure
        await rejection(host.zones.config('oxz_nosuch'), 'Z_NO_ZONE');
        await rejection(host.zones.configure(spec('bad/zone')), 'Z_BOGUS_ZONE_NAME');
        await rejection(host.zones.configure(spec('SUNWsuite')), 'Z_BOGUS_ZONE_NAME');
        expect((await host.zones.list()).map((z) => z.name)).toEqual([ZONE]);
      });

      it('installs and boots: configured -> installed -> running', async () => {
        await host.zones.configure(spec(ZONE));
        expect(await zoneState(ZONE)).toBe('configured');
        await host.zones.install(ZONE, SUITE_IMAGE);
        expect(await zoneState(ZONE)).toBe('installed');
        await host.zones.boot(ZONE);
        expect(await zoneState(ZONE)).toBe('running');
        expect(await host.zones.list()).toEqual([{ name: ZONE, state: 'running' }]);
      });

      it('answers one zone\'s state as list() has it, null for a zone that does not exist', async () => {
        await expect(host.zones.state(ZONE)).resolves.toBeNull();
        await host.zones.configure(spec(ZONE));
        await expect(host.zones.state(ZONE)).resolves.toBe('configured');
        await host.zones.install(ZONE, SUITE_IMAGE);
        await expect(host.zones.state(ZONE)).resolves.toBe('installed');
        await host.zones.boot(ZONE);
        await expect(host.zones.state(ZONE)).resolves.toBe(await zoneState(ZONE));
        await host.zones.halt(ZONE);
        await expect(host.zones.state(ZONE)).resolves.toBe('installed');
        await rejection(host.zones.state('bad/zone'), 'Z_BOGUS_ZONE_NAME');
      });

      it('delivers the zone events of a boot and a halt, in order', async () => {
        await installedZone();
        const rec = recordEvents(host, ZONE);
        try {
          await host.zones.boot(ZONE);
          await host.zones.halt(ZONE);
          await rec.until((ev) => ev.newstate === 'uninitialized');
          const key = rec.seen.map((ev) => ev.newstate).filter((s) => s === 'running' || s === 'shutting_down' || s === 'uninitialized');
          expect(key).toEqual(['running', 'shutting_down', 'uninitialized']);
          for (const [i, ev] of rec.seen.entries()) {
            expect(ev.oldstate).not.toBe(ev.newstate);
            expect(typeof ev.when).toBe('bigint');
            expect(typeof ev.zoneid).toBe('number');
            if (i > 0) {
              expect(ev.when >= rec.seen[i - 1]!.when).toBe(true);
              expect(ev.oldstate).toBe(rec.seen[i - 1]!.newstate);
            }
          }
          const running = rec.seen.find((ev) => ev.newstate === 'running')!;
          expect(rec.seen.every((ev) => ev.zoneid === running.zoneid)).toBe(true);
        } finally {
          rec.unsubscribe();
        }
      });

      it('stops delivering to a listener once unsubscribed', async () => {
        await installedZone();
        const late: ZoneStateEvent[] = [];
        const unsubscribe = host.events.subscribe((ev) => late.push(ev));
        unsubscribe();
        const rec = recordEvents(host, ZONE);
        try {
          await host.zones.boot(ZONE);
          await rec.until((ev) => ev.newstate === 'running');
          expect(late).toEqual([]);
        } finally {
          rec.unsubscribe();
        }
      });

      it('halts, uninstalls and deletes; refuses to delete a running zone', async () => {
        await runningZone();
        await rejection(host.zones.delete(ZONE), 'Z_BAD_ZONE_STATE');
        expect(await zoneState(ZONE)).toBe('running');
        await host.zones.halt(ZONE);
        expect(await zoneState(ZONE)).toBe('installed');
        await host.zones.uninstall(ZONE);
        expect(await zoneState(ZONE)).toBe('configured');
        await host.zones.delete(ZONE);
        expect(await host.zones.list()).toEqual([]);
        await rejection(host.zones.config(ZONE), 'Z_NO_ZONE');
        // the zone's VNIC is the agent's to delete, and still there
        expect(await host.links.linkExists(VNIC)).toBe(true);
      });

      const TEMPLATE = 'oxz_suite_template';

      it('clones an installed template: configured -> installed, its own configuration, bootable; the template untouched', async () => {
        await host.zones.configure(spec(TEMPLATE));
        await host.zones.install(TEMPLATE, SUITE_IMAGE);
        await host.links.createVnic({ name: VNIC, link: fx.link });
        const own = spec(ZONE, { nets: [{ physical: VNIC }], devices: [{ match: '/dev/vmmctl' }] });
        await host.zones.configure(own);
        await host.zones.clone(ZONE, TEMPLATE);
        expect(await zoneState(ZONE)).toBe('installed');
        expect(await zoneState(TEMPLATE)).toBe('installed');
        expect(await host.zones.config(ZONE)).toEqual(own);
        await host.zones.boot(ZONE);
        expect(await zoneState(ZONE)).toBe('running');
        expect(await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS })).toBe('online');
        // one template serves many: a second clone while the first runs
        await host.zones.configure(spec('oxz_suite_b'));
        await host.zones.clone('oxz_suite_b', TEMPLATE);
        expect(await zoneState('oxz_suite_b')).toBe('installed');
        expect(await zoneState(TEMPLATE)).toBe('installed');
      });

      it('refuses to clone from a source that is not installed, or is running', async () => {
        await host.zones.configure(spec(TEMPLATE));
        await host.zones.configure(spec(ZONE));
        await rejection(host.zones.clone(ZONE, TEMPLATE), 'Z_BAD_ZONE_STATE', /zone oxz_suite_template is configured; installed is required/);
        expect(await zoneState(ZONE)).toBe('configured');
        await host.zones.install(TEMPLATE, SUITE_IMAGE);
        await host.zones.boot(TEMPLATE);
        await rejection(host.zones.clone(ZONE, TEMPLATE), 'Z_BAD_ZONE_STATE', /clone operation is invalid for running zones/);
        expect(await zoneState(ZONE)).toBe('configured');
        expect(await zoneState(TEMPLATE)).toBe('running');
      });

      it('refuses to clone into a zone that is not configured, or does not exist', async () => {
        await host.zones.configure(spec(TEMPLATE));
        await host.zones.install(TEMPLATE, SUITE_IMAGE);
        await host.zones.configure(spec(ZONE));
        await host.zones.install(ZONE, SUITE_IMAGE);
        await rejection(host.zones.clone(ZONE, TEMPLATE), 'Z_BAD_ZONE_STATE', /is already installed/);
        expect(await zoneState(ZONE)).toBe('installed');
        await rejection(host.zones.clone('oxz_suite_nosuch', TEMPLATE), 'Z_NO_ZONE');
        expect((await host.zones.list()).map((z) => z.name).sort()).toEqual([ZONE, TEMPLATE].sort());
      });

      it('refuses to clone from a zone that does not exist, or is of another brand', async () => {
        await host.zones.configure(spec(ZONE));
        await rejection(host.zones.clone(ZONE, 'oxz_suite_nosuch'), 'Z_NO_ZONE', /oxz_suite_nosuch/);
        expect(await zoneState(ZONE)).toBe('configured');
        await rejection(host.zones.clone(ZONE, 'bad/zone'), 'Z_BOGUS_ZONE_NAME');
        await host.zones.configure(spec(TEMPLATE, { brand: 'sparse' }));
        await host.zones.install(TEMPLATE, SUITE_IMAGE);
        await rejection(host.zones.clone(ZONE, TEMPLATE), 'Z_INVAL', /Zones 'oxz_suite_template' and 'oxz_suite_a' have different brand types/);
        expect(await zoneState(ZONE)).toBe('configured');
      });
    });

    describe('site profile (zones.setProfile)', () => {
      const FMRI = `${PROPOLIS_SERVICE}:vm-p1`;
      const PROFILE = [{ fmri: FMRI, enabled: true, properties: { 'config/server_addr': '[::]:12400' } }];

      /** Installed, with a zonepath the host can make (its root holds the profile). */
      async function installedWithRoot(zone = ZONE, vnic = VNIC): Promise<void> {
        await host.links.createVnic({ name: vnic, link: fx.link });
        await host.zones.configure(spec(zone, { zonepath: join(fx.zoneRoot, zone), nets: [{ physical: vnic }] }));
        await host.zones.install(zone, SUITE_IMAGE);
      }

      it('makes, configures and enables an instance as the zone boots, with no command in the zone', async () => {
        await installedWithRoot();
        await host.zones.setProfile(ZONE, PROFILE);
        await host.zones.boot(ZONE);
        expect(await host.events.waitForService(ZONE, FMRI, ['online', 'maintenance'], { timeoutMs: DEADLINE_MS })).toBe('online');
        // Started as a dependent of the network milestone, as propolis-server is.
        expect(await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: 0 })).toBe('online');
      });

      it('sets the properties it names: Propolis without server_addr goes to maintenance; a disabled instance stays so', async () => {
        await installedWithRoot();
        await host.zones.setProfile(ZONE, [
          { fmri: `${PROPOLIS_SERVICE}:vm-bare`, enabled: true, properties: {} },
          { fmri: `${PROPOLIS_SERVICE}:vm-off`, enabled: false, properties: { 'config/server_addr': '[::]:12401' } },
        ]);
        await host.zones.boot(ZONE);
        const bare = await host.events.waitForService(ZONE, `${PROPOLIS_SERVICE}:vm-bare`, ['online', 'maintenance'], { timeoutMs: DEADLINE_MS });
        expect(bare).toBe('maintenance');
        expect(await host.events.waitForService(ZONE, `${PROPOLIS_SERVICE}:vm-off`, ['disabled'], { timeoutMs: DEADLINE_MS })).toBe('disabled');
      });

      it('replaces a profile written before; a clone boots with its source\'s', async () => {
        const TEMPLATE = 'oxz_suite_tmpl';
        await installedWithRoot(TEMPLATE, 'oxControlSuite7');
        await host.zones.setProfile(TEMPLATE, [{ fmri: `${PROPOLIS_SERVICE}:vm-old`, enabled: true, properties: { 'config/server_addr': '[::]:12400' } }]);
        await host.zones.setProfile(TEMPLATE, PROFILE);
        await host.zones.configure(spec(ZONE, { zonepath: join(fx.zoneRoot, ZONE) }));
        await host.zones.clone(ZONE, TEMPLATE);
        await host.zones.boot(ZONE);
        expect(await host.events.waitForService(ZONE, FMRI, ['online', 'maintenance'], { timeoutMs: DEADLINE_MS })).toBe('online');
        // Not there at all (in any state it would answer at once): the second profile replaced the first.
        await rejection(host.events.waitForService(ZONE, `${PROPOLIS_SERVICE}:vm-old`, ['online', 'offline', 'disabled', 'maintenance'], { timeoutMs: 0 }), 'ETIMEDOUT');
      });

      it('is refused for a zone in the kernel, one not installed and one that does not exist', async () => {
        await installedWithRoot();
        await host.zones.configure(spec('oxz_suite_cfg', { zonepath: join(fx.zoneRoot, 'oxz_suite_cfg') }));
        await rejection(host.zones.setProfile('oxz_suite_cfg', PROFILE), 'Z_BAD_ZONE_STATE');
        await rejection(host.zones.setProfile('oxz_suite_none', PROFILE), 'Z_NO_ZONE');
        await host.zones.boot(ZONE);
        await rejection(host.zones.setProfile(ZONE, PROFILE), 'Z_BAD_ZONE_STATE');
        // (A TypeError where the host is in this process; its message is what crosses to another.)
        await expect(host.zones.setProfile(ZONE, [{ fmri: 'propolis-server', enabled: true, properties: {} }])).rejects.toThrow(/svc:\/<service>:<instance>/);
      });
    });

    describe('waitForZoneRunning', () => {
      it('resolves at once for a running zone', async () => {
        await runningZone();
        await host.events.waitForZoneRunning(ZONE, { timeoutMs: DEADLINE_MS });
      });

      it('resolves on the boot when waiting before it', async () => {
        await installedZone();
        const wait = host.events.waitForZoneRunning(ZONE, { timeoutMs: DEADLINE_MS });
        await host.zones.boot(ZONE);
        await wait;
        expect(await zoneState(ZONE)).toBe('running');
      });

      it('rejects ETIMEDOUT when the zone does not boot in time', async () => {
        await installedZone();
        await rejection(host.events.waitForZoneRunning(ZONE, { timeoutMs: 30 }), 'ETIMEDOUT');
      });

      it('rejects ABORT_ERR when aborted, and at once for an aborted signal', async () => {
        await installedZone();
        const ctl = new AbortController();
        const aborted = rejection(host.events.waitForZoneRunning(ZONE, { timeoutMs: DEADLINE_MS, signal: ctl.signal }), 'ABORT_ERR');
        ctl.abort(new Error('no longer wanted'));
        await aborted;
        await rejection(host.events.waitForZoneRunning(ZONE, { timeoutMs: DEADLINE_MS, signal: ctl.signal }), 'ABORT_ERR');
      });

      it('rejects ZONE_GONE for a zone that does not exist', async () => {
        await rejection(host.events.waitForZoneRunning('oxz_nosuch', { timeoutMs: DEADLINE_MS }), 'ZONE_GONE');
      });
    });

    describe('zone events for one zone (events.subscribe with a zone)', () => {
      it('delivers that zone\'s events only, beside a listener for all', async () => {
        const mine: string[] = [];
        const all = new Set<string>();
        let sawRunning = () => {};
        const running = new Promise<void>((resolve) => { sawRunning = resolve; });
        const off = host.events.subscribe((ev) => {
          mine.push(`${ev.zonename}:${ev.newstate}`);
          if (ev.newstate === 'running') sawRunning();
        }, 'oxz_suite_b');
        const offAll = host.events.subscribe((ev) => all.add(ev.zonename));
        try {
          await runningZone();
          await runningZone('oxz_suite_b', 'oxControlSuite1');
          await running;
        } finally {
          off();
          offAll();
        }
        expect(all.has(ZONE)).toBe(true);
        expect(mine.length).toBeGreaterThan(0);
        expect(mine.every((e) => e.startsWith('oxz_suite_b:'))).toBe(true);
        expect(mine).toContain('oxz_suite_b:running');
      });
    });

    describe('a zero deadline reads the present state once', () => {
      it('resolves for a running zone and an online service; ETIMEDOUT for a zone or service not in the state', async () => {
        await runningZone();
        await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS });
        await host.events.waitForZoneRunning(ZONE, { timeoutMs: 0 });
        expect(await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: 0 })).toBe('online');
        await rejection(host.events.waitForService(ZONE, NETWORK_MILESTONE, ['maintenance', 'disabled'], { timeoutMs: 0 }), 'ETIMEDOUT');
        await installedZone('oxz_suite_b', 'oxControlSuite1');
        await rejection(host.events.waitForZoneRunning('oxz_suite_b', { timeoutMs: 0 }), 'ETIMEDOUT');
        await rejection(host.events.waitForZoneRunning('oxz_nosuch', { timeoutMs: 0 }), 'ZONE_GONE');
      });
    });

    describe('commands in a zone', () => {
      it('creates, shows and deletes addresses; refuses a duplicate and a link the zone does not have', async () => {
        await runningZone();
        await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS });
        await exec(ipadmCreateLinkLocal(VNIC));
        expect((await exec(ipadmShowAddr(`${VNIC}/${ADDROBJ_LINKLOCAL}`))).stdout).toMatch(/^fe80:[0-9a-f:]+\/10\n$/);

        const obj = `${VNIC}/${ADDROBJ_STATIC6}`;
        await exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::5/64'));
        expect(await exec(ipadmShowAddr(obj))).toEqual({ stdout: 'fd00:1122:3344:101::5/64\n', stderr: '' });
        await rejection(exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::6/64')), 'ECOMMAND', /Address object already exists/);
        expect((await exec(ipadmShowAddr(obj))).stdout).toBe('fd00:1122:3344:101::5/64\n');
        // the fixture's link is not one of the zone's
        await rejection(exec(ipadmCreateStatic(`${fx.link}/${ADDROBJ_STATIC6}`, 'fd00:1122:3344:102::5/64')), 'ECOMMAND');
        await exec(routeAddDefault6('fd00:1122:3344:101::1'));

        await exec(ipadmDeleteAddr(obj));
        await rejection(exec(ipadmShowAddr(obj)), 'ECOMMAND', /Address object not found/);
        await rejection(exec(ipadmDeleteAddr(obj)), 'ECOMMAND');
        // the name is free again
        await exec(ipadmCreateStatic(obj, 'fd00:1122:3344:101::7/64'));
        expect((await exec(ipadmShowAddr(obj))).stdout).toBe('fd00:1122:3344:101::7/64\n');
      });

      it('has the network milestone online after boot', async () => {
        await runningZone();
        expect(await host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS })).toBe('online');
      });

      it('waits through the boot for a service of a zone that is not running yet', async () => {
        await installedZone();
        // not an error while the zone is down: the wait runs out
        await rejection(host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: 50 }), 'ETIMEDOUT');
        const wait = host.events.waitForService(ZONE, NETWORK_MILESTONE, ['online'], { timeoutMs: DEADLINE_MS });
        await host.zones.boot(ZONE);
        expect(await wait).toBe('online');
      });

      it('adds a Propolis instance, configures and enables it: waitForService sees it online, then disabled', async () => {
        await runningZone();
        const fmri = `${PROPOLIS_SERVICE}:vm-1`;
        await exec(svccfgAddInstance(PROPOLIS_SERVICE, 'vm-1'));
        await rejection(exec(svccfgAddInstance(PROPOLIS_SERVICE, 'vm-1')), 'ECOMMAND', /already exists/);
        await exec(svccfgAddPg(fmri, 'config', 'astring'));
        await exec(svccfgSetProp(fmri, 'config/server_addr', '[fd00:1122:3344:101::5]:12400'));
        await exec(svccfgRefresh(fmri));
        expect(await host.events.waitForService(ZONE, fmri, ['disabled'], { timeoutMs: DEADLINE_MS })).toBe('disabled');
        await exec(svcadmEnable(fmri));
        expect(await host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: DEADLINE_MS })).toBe('online');
        await exec(svcadmDisable(fmri));
        expect(await host.events.waitForService(ZONE, fmri, ['disabled'], { timeoutMs: DEADLINE_MS })).toBe('disabled');
      });

      it('puts a Propolis instance without a usable config/server_addr in maintenance', async () => {
        await runningZone();
        const fmri = `${PROPOLIS_SERVICE}:vm-2`;
        await exec(svccfgAddInstance(PROPOLIS_SERVICE, 'vm-2'));
        await exec(svcadmEnable(fmri));
        expect(await host.events.waitForService(ZONE, fmri, ['online', 'maintenance'], { timeoutMs: DEADLINE_MS })).toBe('maintenance');
      });

      it('waits for an instance that does not exist yet', async () => {
        await runningZone();
        const fmri = 'svc:/system/illumos/oximeter:default';
        // not an error while the instance does not exist: the wait runs out
        await rejection(host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: 50 }), 'ETIMEDOUT');
        const wait = host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: DEADLINE_MS });
        await exec(svccfgImport(siteManifest('oximeter')));
        await exec(svcadmEnable(fmri));
        expect(await wait).toBe('online');
      });

      it('imports a site manifest and enables its default instance', async () => {
        await runningZone();
        await exec(svccfgImport(siteManifest('oximeter')));
        const fmri = 'svc:/system/illumos/oximeter:default';
        await exec(svcadmEnable(fmri));
        expect(await host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: DEADLINE_MS })).toBe('online');
      });

      it('refuses unknown services and instances', async () => {
        await runningZone();
        await rejection(exec(svccfgAddInstance('svc:/system/illumos/nosuch', 'default')), 'ECOMMAND', /doesn't match/);
        await rejection(exec(svcadmEnable(`${PROPOLIS_SERVICE}:vm-9`)), 'ECOMMAND', /doesn't match/);
      });

      it('waitForService rejects ETIMEDOUT, ABORT_ERR, and ZONE_GONE when the zone halts', async () => {
        await runningZone();
        const fmri = `${PROPOLIS_SERVICE}:vm-3`;
        await exec(svccfgAddInstance(PROPOLIS_SERVICE, 'vm-3')); // disabled, never enabled
        await rejection(host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: 30 }), 'ETIMEDOUT');
        const ctl = new AbortController();
        const aborted = rejection(host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: DEADLINE_MS, signal: ctl.signal }), 'ABORT_ERR');
        ctl.abort();
        await aborted;

        const gone = rejection(host.events.waitForService(ZONE, fmri, ['online'], { timeoutMs: DEADLINE_MS }), 'ZONE_GONE');
        await host.zones.halt(ZONE);
        await gone;
      });

      it('runs ipadm in the global zone over the host\'s links, and nothing but ipadm there', async () => {
        await host.links.createVnic({ name: 'underlay0', link: fx.link });
        const gz = (argv: string[]) => host.zones.exec(GLOBAL_ZONE, argv);
        await gz(ipadmCreateLinkLocal('underlay0'));
        expect((await gz(ipadmShowAddr(`underlay0/${ADDROBJ_LINKLOCAL}`))).stdout).toMatch(/^fe80:[0-9a-f:]+\/10\n$/);
        await gz(ipadmCreateStatic('underlay0/sled6', 'fd00:1122:3344:101::1/64'));
        expect(await gz(ipadmShowAddr('underlay0/sled6'))).toEqual({ stdout: 'fd00:1122:3344:101::1/64\n', stderr: '' });
        await rejection(gz(ipadmCreateStatic('underlay0/sled6', 'fd00:1122:3344:101::2/64')), 'ECOMMAND', /already exists/);
        await rejection(gz(ipadmCreateStatic('nosuch0/sled6', 'fd00:1122:3344:101::3/64')), 'ECOMMAND', /Interface does not exist|No such interface/);
        await gz(ipadmDeleteAddr('underlay0/sled6'));
        await rejection(gz(ipadmShowAddr('underlay0/sled6')), 'ECOMMAND', /not found/);
        await expect(gz(['svcadm', 'enable', 'x'])).rejects.toThrow(/global zone runs only ipadm/);
      });

      it('fails with ECOMMAND in a zone that is not running, and for an unknown command', async () => {
        await installedZone();
        await rejection(exec(ipadmShowAddr(`${VNIC}/${ADDROBJ_STATIC6}`)), 'ECOMMAND', /running/);
        await host.zones.boot(ZONE);
        await rejection(exec(['no-such-command-here', '-x']), 'ECOMMAND');
        await rejection(host.zones.exec('oxz_nosuch', ['true']), 'ECOMMAND', /unknown/);
      });
    });

    describe('datasets', () => {
      it('creates with properties, gets, sets, lists and destroys', async () => {
        const parent = `${fx.pool}/suite`;
        const child = `${parent}/zone`;
        const uuid = '3f9c0a5e-2c43-4f2e-9d0e-6f1f6c1d2b7a';
        await host.datasets.create(parent, { mountpoint: '/data/suite', zoned: 'off', 'oxide:uuid': uuid });
        await host.datasets.create(child, { zoned: 'on' });
        expect(await host.datasets.exists(parent)).toBe(true);
        expect(await host.datasets.exists(`${fx.pool}/nosuch`)).toBe(false);
        expect(await host.datasets.get(parent, ['mountpoint', 'zoned', 'oxide:uuid', 'oxide:unset'])).toEqual({
          mountpoint: '/data/suite',
          zoned: 'off',
          'oxide:uuid': uuid,
          'oxide:unset': null,
        });
        expect(await host.datasets.get(child, ['zoned'])).toEqual({ zoned: 'on' });

        await host.datasets.set(parent, { 'oxide:uuid': 'e4d5c6b7-0000-4000-8000-000000000001' });
        expect(await host.datasets.get(parent, ['oxide:uuid'])).toEqual({ 'oxide:uuid': 'e4d5c6b7-0000-4000-8000-000000000001' });

        expect(await host.datasets.listChildren(fx.pool)).toContain(parent);
        expect(await host.datasets.listChildren(parent)).toEqual([child]);

        await rejection(host.datasets.create(parent, {}), 'EZFS_EXISTS');
        await rejection(host.datasets.create(`${fx.pool}/nosuch/child`, {}), 'EZFS_NOENT');
        await rejection(host.datasets.get(`${fx.pool}/nosuch`, ['zoned']), 'EZFS_NOENT');
        await rejection(host.datasets.create(`${fx.pool}//bad`, {}), 'ERR_INVALID_DATASET_NAME');
        expect(await host.datasets.exists(`${fx.pool}/nosuch`)).toBe(false);

        await host.datasets.destroy(child);
        expect(await host.datasets.listChildren(parent)).toEqual([]);
        await host.datasets.destroy(parent);
        expect(await host.datasets.exists(parent)).toBe(false);
        expect(await host.datasets.listChildren(fx.pool)).not.toContain(parent);
      });

      it('lists the pools with sizes in bytes', async () => {
        const pools = await host.datasets.listPools();
        const pool = pools.find((p) => p.name === fx.pool);
        expect(pool).toBeDefined();
        expect(typeof pool!.size).toBe('bigint');
        expect(pool!.size > 0n).toBe(true);
        expect(pool!.allocated + pool!.free).toBeLessThanOrEqual(pool!.size);
        expect(pool!.health).toBe('ONLINE');
      });
    });
  });
}
