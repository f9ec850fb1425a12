// The fake illumos (test/fake-illumos/, built by global-setup.ts): where its libraries and
// programs are, and a fresh state directory per test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, type NativeAddon } from '../../src/illumos/addon.js';
import { IllumosHost, type IllumosHostOptions } from '../../src/illumos/host.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** SLED_AGENT_ASAN=1 selects the sanitizer build (npm run test:asan). */
export const FAKE_ROOT = join(repo, 'build', process.env.SLED_AGENT_ASAN === '1' ? 'fake-illumos-asan' : 'fake-illumos');
export const FAKE_LIB_DIR = join(FAKE_ROOT, 'lib');
export const FAKE_BIN_DIR = join(FAKE_ROOT, 'bin');

/**
 * A new, empty fake host: sets FAKE_ILLUMOS_STATE (read by the fakes at each call) and puts this
 * process in the fake's global zone (FAKE_ILLUMOS_ZONE=global: what it execs directly, such as
 * ipadm from FAKE_BIN_DIR, acts there; the fake zlogin sets its zone for what runs inside one);
 * returns its path and a remover.
 */
export function freshFakeHost(): { state: string; remove(): void } {
  const state = mkdtempSync(join(tmpdir(), 'fake-illumos-'));
  process.env.FAKE_ILLUMOS_STATE = state;
  process.env.FAKE_ILLUMOS_ZONE = 'global';
  return { state, remove: () => rmSync(state, { recursive: true, force: true }) };
}

/** The addon with the fake libraries loaded (once per test file's process). */
export function fakeIllumos(): NativeAddon {
  const addon = loadNative();
  addon.load(FAKE_LIB_DIR);
  return addon;
}

/**
 * An IllumosHost over the fake libraries and programs (zoneadm, zlogin, ipadm and the rest from
 * FAKE_BIN_DIR), installing zone images from `images` by their file name; `extra` adds options.
 */
export function openFakeIllumosHost(addon: NativeAddon, images: string, extra: Partial<IllumosHostOptions> = {}): Promise<IllumosHost> {
  return IllumosHost.open({
    addon,
    zoneadm: join(FAKE_BIN_DIR, 'zoneadm'),
    zlogin: join(FAKE_BIN_DIR, 'zlogin'),
    sbin: FAKE_BIN_DIR,
    resolveImage: (image) => join(images, basename(image)),
    ...extra,
  });
}
