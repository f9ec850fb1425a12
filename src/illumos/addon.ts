// The C++ addon (native/), loaded once. NativeAddon declares exactly what it exports: the core
// below plus one interface per library, each beside its binding's typed module.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DladmNative } from './native-types/dladm.js';
import type { EventsNative } from './native-types/events.js';
import type { ScfNative } from './native-types/scf.js';
import type { ZfsNative } from './native-types/zfs.js';
import type { ZonecfgNative } from './native-types/zonecfg.js';

/** One library's load result. */
export interface LibraryStatus {
  soname: string;
  /** Opened, and every symbol the addon uses resolved. */
  loaded: boolean;
  /** What was passed to dlopen (null before load()). */
  path: string | null;
  /** dlopen's error, if it failed. */
  error: string | null;
  /** Symbols the library lacks. */
  missing: string[];
}

export interface Capabilities {
  /** The directory the libraries were loaded from; null for the runtime linker's search. */
  dir: string | null;
  libraries: Record<string, LibraryStatus>;
}

/** An Error from the addon: `code` is the library's constant (Z_NO_ZONE, DLADM_STATUS_NOTFOUND, ...) or ENOLIB. */
export interface NativeError extends Error {
  code: string;
}

export interface CoreNative {
  /** "illumos" when built on illumos, else "other". */
  readonly platform: 'illumos' | 'other';
  readonly napiVersion: number;
  /** dlopen every library (from `dir`, else by soname). Never throws for a missing library. */
  load(dir?: string | null): Capabilities;
  capabilities(): Capabilities;
}

export type NativeAddon = CoreNative & ZonecfgNative & DladmNative & ZfsNative & ScfNative & EventsNative;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let addon: NativeAddon | null = null;

/** SLED_AGENT_ADDON points at another build of the addon (the sanitizer build of npm run test:asan). */
export function loadNative(): NativeAddon {
  const path = process.env.SLED_AGENT_ADDON || join(root, 'build', 'Release', 'sled_agent_native.node');
  addon ??= createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}

/** True for an error the addon produced with this code. */
export function isNativeError(err: unknown, code?: string): err is NativeError {
  return err instanceof Error && typeof (err as NativeError).code === 'string' && (code === undefined || (err as NativeError).code === code);
}
