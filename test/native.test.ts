// The addon builds on install and loads; on this platform it says it is not illumos.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/native.js';

describe('native addon', () => {
  it('loads and reports what it was built for', () => {
    const addon = loadNative();
    expect(addon.platform).toBe(process.platform === 'sunos' ? 'illumos' : 'other');
    expect(addon.napiVersion).toBe(8);
  });
});
