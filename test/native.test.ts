// The addon builds on install and loads; without the illumos libraries it says what is missing
// instead of failing, and with the fakes every library and symbol resolves.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/illumos/addon.js';
import { FAKE_LIB_DIR } from './support/fake-illumos.js';

const LIBRARIES = ['dladm', 'nvpair', 'scf', 'sysevent', 'zfs', 'zonecfg'];

describe('native addon', () => {
  it('reports what it was built for', () => {
    const addon = loadNative();
    expect(addon.platform).toBe(process.platform === 'sunos' ? 'illumos' : 'other');
    expect(addon.napiVersion).toBe(8);
  });

  it('loads from a directory without the libraries, saying per library what failed', () => {
    // A child process: a library that failed to load stays retryable, but this test wants a clean slate.
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', `
      import('./src/illumos/addon.ts').then(async ({ loadNative }) => {
        const a = loadNative();
        const report = a.load('/nonexistent-illumos');
        const call = await a.vnicList().then(() => 'resolved', (e) => e.code + ': ' + e.message);
        process.stdout.write(JSON.stringify({ report, call }));
      });`], { encoding: 'utf8', env: { ...process.env, SLED_AGENT_ADDON: process.env.SLED_AGENT_ADDON ?? '' } });
    const { report, call } = JSON.parse(out);
    expect(Object.keys(report.libraries).sort()).toEqual(LIBRARIES);
    for (const lib of Object.values<any>(report.libraries)) {
      expect(lib.loaded).toBe(false);
      expect(lib.path).toBe(`/nonexistent-illumos/${lib.soname}`);
      expect(lib.error).toMatch(/No such file or directory/);
    }
    expect(call).toMatch(/^ENOLIB: libdladm\.so\.1 is not usable: .*No such file or directory/);
  });

  it('loads every library and symbol from the fake illumos', () => {
    const report = loadNative().load(FAKE_LIB_DIR);
    expect(report.dir).toBe(FAKE_LIB_DIR);
    for (const key of LIBRARIES) {
      expect(report.libraries[key], key).toMatchObject({ loaded: true, error: null, missing: [] });
    }
    expect(loadNative().capabilities()).toEqual(report);
  });
});
