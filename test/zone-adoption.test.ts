// ensureZoneRunning (src/zone.ts) from each zone state a killed agent can leave behind, on both
// backends: in particular a zone left "ready" by a boot whose zoneadm died with the agent, which
// zoneadmd completes; booting it again is refused by the host and used to fail the instance.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host, ZoneStateEvent } from '../src/host/index.js';
import type { NativeAddon } from '../src/illumos/addon.js';
import { IllumosHost } from '../src/illumos/host.js';
import { SimHost, ZERO_LATENCIES } from '../src/sim/host.js';
import { ensureZoneRunning, removeZone, type OwnedZoneSpec, type Phase } from '../src/zone.js';
import { FAKE_BIN_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';

const IMAGE = '/opt/oxide/propolis-server.tar.gz';
const WAIT = { readiness: 'event' as const, timeoutMs: 20_000 };
const log = pino({ level: 'silent' });

function spec(name: string, link: string): OwnedZoneSpec {
  return { name, image: IMAGE, controlVnic: 'oxControlInstance0', controlLink: link, zoneRoot: '/zone' };
}

async function stateOf(host: Host, name: string) {
  return (await host.zones.list()).find((z) => z.name === name)?.state ?? null;
}

/** Resolves with the first event for `zone` that `pred` accepts. */
function nextEvent(host: Host, zone: string, pred: (e: ZoneStateEvent) => boolean): Promise<ZoneStateEvent> {
  return new Promise((resolve) => {
    const off = host.events.subscribe((e) => {
      if (e.zonename !== zone || !pred(e)) return;
      off();
      resolve(e);
    });
  });
}

interface Backend {
  name: string;
  /** The link control VNICs go over. */
  link: string;
  /** A host whose boots stay "ready" for a while, as a real zone's do. */
  open(): Promise<{ host: Host; reopen(): Promise<Host>; cleanup(): Promise<void> }>;
}

let addon: NativeAddon;
let images: string;

beforeAll(() => {
  addon = fakeIllumos();
  images = mkdtempSync(join(tmpdir(), 'zone-adoption-images-'));
  writeFileSync(join(images, basename(IMAGE)), 'not really a tarball');
});
afterAll(() => {
  rmSync(images, { recursive: true, force: true });
  delete process.env.FAKE_ILLUMOS_BOOT_DELAY_MS;
});

const backends: Backend[] = [
  {
    name: 'sim',
    link: 'stub0',
    async open() {
      const stateDir = mkdtempSync(join(tmpdir(), 'zone-adoption-sim-'));
      const options = { stateDir, links: ['stub0'], latencies: { ...ZERO_LATENCIES, boot: 400 } };
      let host: Host = await SimHost.open(options);
      return {
        host,
        // A new SimHost on the directory is the host as a restarted agent finds it.
        async reopen() {
          await host.close();
          host = await SimHost.open(options);
          return host;
        },
        async cleanup() {
          await host.close();
          rmSync(stateDir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'fake illumos',
    link: 'net0',
    async open() {
      const fake = freshFakeHost();
      process.env.FAKE_ILLUMOS_BOOT_DELAY_MS = '400';
      const make = () => IllumosHost.open({
        addon,
        zoneadm: join(FAKE_BIN_DIR, 'zoneadm'),
        zlogin: join(FAKE_BIN_DIR, 'zlogin'),
        sbin: FAKE_BIN_DIR,
        resolveImage: (image) => join(images, basename(image)),
      });
      let host: Host = await make();
      return {
        host,
        async reopen() {
          await host.close();
          host = await make();
          return host;
        },
        async cleanup() {
          for (const z of await host.zones.list()) await removeZone(host, z.name, [], log).catch(() => {});
          await host.close();
          delete process.env.FAKE_ILLUMOS_BOOT_DELAY_MS;
          fake.remove();
        },
      };
    },
  },
];

describe.each(backends)('ensureZoneRunning on the $name host', (backend) => {
  it('waits for a zone found "ready" (a boot under way) instead of booting it again', async () => {
    const t = await backend.open();
    try {
      const name = 'oxz_propolis-server_ready';
      await t.host.links.createVnic({ name: 'oxControlInstance0', link: backend.link });
      await t.host.zones.configure({ name, brand: 'omicron1', zonepath: `/zone/${name}`, nets: [{ physical: 'oxControlInstance0' }], devices: [], datasets: [] });
      await t.host.zones.install(name, IMAGE);
      // The agent asked for the boot and died: the zone is "ready" and its boot goes on.
      const readied = nextEvent(t.host, name, (e) => e.newstate === 'ready');
      const boot = t.host.zones.boot(name).catch(() => {});
      await readied;
      const host = await t.reopen();
      expect(await stateOf(host, name)).toBe('ready');

      const phases: Phase[] = [];
      await ensureZoneRunning(host, spec(name, backend.link), WAIT, (p) => phases.push(p));
      expect(await stateOf(host, name)).toBe('running');
      expect(phases).not.toContain('boot');
      await boot;
    } finally {
      await t.cleanup();
    }
  }, 30_000);

  it.each(['none', 'configured', 'installed', 'running'] as const)('brings a zone found %s to running', async (found) => {
    const t = await backend.open();
    try {
      const name = `oxz_propolis-server_${found}`;
      const host = t.host;
      if (found !== 'none') {
        await host.links.createVnic({ name: 'oxControlInstance0', link: backend.link });
        await host.zones.configure({ name, brand: 'omicron1', zonepath: `/zone/${name}`, nets: [{ physical: 'oxControlInstance0' }], devices: [], datasets: [] });
        if (found !== 'configured') await host.zones.install(name, IMAGE);
        if (found === 'running') await host.zones.boot(name);
      }
      expect(await stateOf(host, name)).toBe(found === 'none' ? null : found);
      const made = await ensureZoneRunning(host, spec(name, backend.link), WAIT);
      expect(await stateOf(host, name)).toBe('running');
      // No profile in the spec: none written (the Host suite and warm-pool.test.ts cover one).
      expect(made).toEqual({ booted: found !== 'running', profiled: false });
    } finally {
      await t.cleanup();
    }
  }, 30_000);
});

describe('ensureZoneRunning on the sim host, a halt under way', () => {
  it('waits for the halt to end, then boots the zone again', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'zone-adoption-halt-'));
    const host = await SimHost.open({ stateDir, links: ['stub0'], latencies: { ...ZERO_LATENCIES, halt: 300 } });
    try {
      const name = 'oxz_propolis-server_halting';
      await host.links.createVnic({ name: 'oxControlInstance0', link: 'stub0' });
      await host.zones.configure({ name, brand: 'omicron1', zonepath: `/zone/${name}`, nets: [{ physical: 'oxControlInstance0' }], devices: [], datasets: [] });
      await host.zones.install(name, IMAGE);
      await host.zones.boot(name);
      const halting = nextEvent(host, name, (e) => e.newstate === 'shutting_down');
      const halt = host.zones.halt(name);
      await halting;
      expect(await stateOf(host, name)).toBe('shutting_down');
      const phases: Phase[] = [];
      expect(await ensureZoneRunning(host, spec(name, 'stub0'), WAIT, (p) => phases.push(p))).toEqual({ booted: true, profiled: false });
      await halt;
      expect(phases).toContain('boot');
      expect(await stateOf(host, name)).toBe('running');
    } finally {
      await host.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
