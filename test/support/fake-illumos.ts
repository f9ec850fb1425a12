// The fake illumos (test/fake-illumos/, built by global-setup.ts): where its libraries and
// programs are, and a fresh state directory per test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { checkAgentConfig } from '../../src/config.js';
import { loadNative, type NativeAddon } from '../../src/illumos/addon.js';
import { IllumosHost, type IllumosHostOptions } from '../../src/illumos/host.js';
import { SimPropolis } from '../../src/sim/propolis.js';
import { startAgent, type RunningAgent, type SledAgentOptions } from '../../src/sled-agent.js';
import { testConfig } from './agent.js';
import { fakeIllumosRoot } from './fake-illumos-build.js';
import { FakeNexus } from './fake-nexus.js';

/** SLED_AGENT_ASAN=1 selects the sanitizer build (npm run test:asan). */
export const FAKE_ROOT = fakeIllumosRoot();
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
 * For a test file (call it at its top level): before its tests, the addon with the fake libraries
 * and a directory of zone images (a stand-in propolis-server.tar.gz) made with `prefix`; after
 * them, the directory removed. The fields are set once beforeAll has run.
 */
export function fakeIllumosFiles(prefix: string): { addon: NativeAddon; images: string } {
  const files = { addon: undefined as unknown as NativeAddon, images: '' };
  beforeAll(() => {
    files.addon = fakeIllumos();
    files.images = mkdtempSync(join(tmpdir(), prefix));
    writeFileSync(join(files.images, 'propolis-server.tar.gz'), 'not really a tarball');
  });
  afterAll(() => {
    rmSync(files.images, { recursive: true, force: true });
  });
  return files;
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

export type FakeHost = ReturnType<typeof freshFakeHost>;

export interface FakeIllumosAgentOptions {
  /** The addon with the fake libraries (fakeIllumos()). */
  addon: NativeAddon;
  /** The zone images the host installs from (by file name). */
  images: string;
  /** The directory testConfig's paths are under (default: `images`). */
  dir?: string;
  /** testConfig's extra, with `host: { backend: 'illumos' }` added. */
  config: Record<string, unknown>;
  /** The fake host, if the test prepared it (default: a fresh one); close() removes it either way. */
  fake?: FakeHost;
  /** The host's options beyond the fake's programs (default: every zone reaches `propolis`). */
  host?: (propolis: SimPropolis) => Partial<IllumosHostOptions>;
  /** The agent's logger (default: silent, or TEST_LOG_LEVEL). */
  log?: Logger;
  agent?: SledAgentOptions;
  /** Called with the host before the agent starts on it (to watch or replace its calls). */
  onHost?: (host: IllumosHost) => void;
}

export interface FakeIllumosAgent {
  fake: FakeHost;
  nexus: FakeNexus;
  /** The fake svcadm starts no server: one simulated Propolis answers for every zone. */
  propolis: SimPropolis;
  host: IllumosHost;
  agent: RunningAgent;
  /** Closes the agent, Propolis and Nexus, and removes the fake host's state. */
  close(): Promise<void>;
}

/** The real agent on an IllumosHost over a fresh fake host, with a fake Nexus and a simulated Propolis. */
export async function startFakeIllumosAgent(options: FakeIllumosAgentOptions): Promise<FakeIllumosAgent> {
  const fake = options.fake ?? freshFakeHost();
  const nexus = await FakeNexus.start();
  const propolis = await SimPropolis.start({ host: '127.0.0.1', port: 0 });
  const host = await openFakeIllumosHost(options.addon, options.images, options.host ? options.host(propolis) : { reachable: () => propolis.address });
  options.onHost?.(host);
  // Zonepaths under the fake host's state: the agent writes each Propolis zone's site profile
  // into its root, which the fake zoneadm makes where it can (never directly under /).
  const zones = { root: join(fake.state, 'zone'), ...(options.config.zones as Record<string, unknown> | undefined) };
  const config = checkAgentConfig(testConfig(options.dir ?? options.images, nexus.address, { host: { backend: 'illumos' }, ...options.config, zones }), 'test');
  const agent = await startAgent(config, host, options.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), options.agent);
  return {
    fake, nexus, propolis, host, agent,
    async close() {
      await agent.close();
      await propolis.close();
      await nexus.close();
      fake.remove();
    },
  };
}
