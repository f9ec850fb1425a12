// Loads the C++ addon built by binding.gyp on install. It exports what native.d.ts-style typing
// below declares, nothing more; the illumos bindings (issue 3) extend both together.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  /** "illumos" when built on illumos, else "other". */
  readonly platform: 'illumos' | 'other';
  readonly napiVersion: number;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function loadNative(): NativeAddon {
  const require = createRequire(import.meta.url);
  return require(join(root, 'build', 'Release', 'sled_agent_native.node')) as NativeAddon;
}
