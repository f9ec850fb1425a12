// Zones: configuration through libzonecfg (the addon, on its own thread), and the lifecycle
// operations that have no library route (illumos-abi.md §2) through zoneadm and zlogin, exec'd
// with argument arrays, never a shell. Every zone name is checked against the system's own rules
// (src/host/names.ts) before anything is called. RunningZone owns a zone the way omicron's
// running_zone.rs does: release() halts, uninstalls and deletes it.
import { basename, join } from 'node:path';
import { GLOBAL_COMMANDS } from '../host/index.js';
import { validateZoneName } from '../host/names.js';
import { loadNative } from './addon.js';
import { failureDetail, runCommand, type CommandFailure, type CommandResult } from './exec.js';
import type {
  NativeZoneDesc,
  NativeZoneDescInput,
  NativeZoneListEntry,
  ZonecfgNative,
  ZoneState,
} from './native-types/zonecfg.js';

/** What configureZone takes (autoboot defaults to false, ipType to 'exclusive', lists to []). */
export type ZoneDescription = NativeZoneDescInput;
/** A configuration as read back: every field present. */
export type ZoneConfig = NativeZoneDesc;
/** A zone as listZones reports it. */
export type ZoneInfo = NativeZoneListEntry;

export const DEFAULT_ZONEADM = '/usr/sbin/zoneadm';
export const DEFAULT_ZLOGIN = '/usr/bin/zlogin';
export const DEFAULT_SBIN = '/usr/sbin';

/** A zoneadm or zlogin run that failed: its exit status and its own stderr. */
export class ZoneCommandError extends Error {
  /** 'ECOMMAND' when the program ran and failed; the spawn error's code (ENOENT, ...) otherwise. */
  readonly code: string;
  constructor(
    readonly program: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stdout: string,
    readonly stderr: string,
    code: string,
    detail: string,
  ) {
    super(`${basename(program)} ${args.join(' ')}: ${detail}`);
    this.name = 'ZoneCommandError';
    this.code = code;
  }
}

export type { CommandResult } from './exec.js';

async function run(program: string, args: readonly string[], timeoutMs: number, interrupt?: NodeJS.Signals): Promise<CommandResult> {
  try {
    return await runCommand(program, args, { timeoutMs, ...(interrupt === undefined ? {} : { interrupt }) });
  } catch (err) {
    const f = err as CommandFailure;
    const code = f.spawnCode ?? 'ECOMMAND';
    throw new ZoneCommandError(program, args, f.exitCode, f.signal, f.stdout, f.stderr, code, f.spawnCode ? f.message : failureDetail(f, timeoutMs));
  }
}

/** Quotes one word for sh: zlogin joins its command words with spaces and runs them with `su -c`. */
export function shellQuote(word: string): string {
  if (word.includes('\0')) throw new TypeError('a command word must not contain NUL bytes');
  if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Checks an argument list: strings without NUL bytes; with `paths`, absolute paths (so none reads as an option). */
function checkWords(what: string, words: unknown, paths: boolean): readonly string[] {
  if (!Array.isArray(words)) throw new TypeError(`${what} must be an array of strings`);
  for (const w of words) {
    if (typeof w !== 'string' || w.includes('\0')) throw new TypeError(`${what} must be strings without NUL bytes`);
    if (paths && !w.startsWith('/')) throw new TypeError(`${what} must be absolute paths (got ${JSON.stringify(w)})`);
  }
  return words as readonly string[];
}

/** States in which the zone exists in the kernel (zone_get_state's "active" range). */
const ACTIVE: ReadonlySet<ZoneState> = new Set<ZoneState>(['ready', 'running', 'shutting_down', 'down', 'mounted']);

export interface ZonesOptions {
  /** The addon (default: loadNative(), with whatever libraries load() found). */
  addon?: ZonecfgNative;
  /** Default /usr/sbin/zoneadm. */
  zoneadm?: string;
  /** Default /usr/bin/zlogin. */
  zlogin?: string;
  /** Where the global zone's commands (ipadm) are; default /usr/sbin. */
  sbin?: string;
  /** Deadline for each exec'd command (default 10 minutes: installs can be slow). */
  commandTimeoutMs?: number;
}

export class Zones {
  readonly zoneadmPath: string;
  readonly zloginPath: string;
  readonly sbinDir: string;
  readonly commandTimeoutMs: number;
  #addon: ZonecfgNative | undefined;

  constructor(options: ZonesOptions = {}) {
    this.#addon = options.addon;
    this.zoneadmPath = options.zoneadm ?? DEFAULT_ZONEADM;
    this.zloginPath = options.zlogin ?? DEFAULT_ZLOGIN;
    this.sbinDir = options.sbin ?? DEFAULT_SBIN;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 10 * 60_000;
  }

  get #native(): ZonecfgNative {
    this.#addon ??= loadNative();
    return this.#addon;
  }

  /** Creates a zone configuration (Z_NAME_IN_USE if the name is taken). */
  async configureZone(desc: ZoneDescription): Promise<void> {
    if (typeof desc !== 'object' || desc === null) throw new TypeError('the zone description must be an object');
    validateZoneName(desc.name);
    // zonecfg(8) verify refuses this, and libzonecfg would store it but never read it back
    if (desc.ipType === 'shared' && desc.nets?.some((n) => n.allowedAddress)) {
      throw new TypeError('allowedAddress is for exclusive-IP zones only');
    }
    await this.#native.zoneConfigure(desc);
  }

  /** A zone's configuration (Z_NO_ZONE if there is none). */
  async getZoneConfig(name: string): Promise<ZoneConfig> {
    validateZoneName(name);
    return this.#native.zoneConfig(name);
  }

  /** The non-global zones with their states (the global zone too with includeGlobal). */
  async listZones(options: { includeGlobal?: boolean } = {}): Promise<ZoneInfo[]> {
    const zones = await this.#native.zoneList();
    return options.includeGlobal ? zones : zones.filter((z) => z.name !== 'global');
  }

  /** One zone's state, or undefined if there is no such zone: that zone alone is read, not the list. */
  async zoneState(name: string): Promise<ZoneState | undefined> {
    validateZoneName(name);
    return (await this.#native.zoneState(name)) ?? undefined;
  }

  /** Deletes a configuration: refused (Z_BAD_ZONE_STATE) while the zone is installed, unless force, or active. */
  async deleteZone(name: string, options: { force?: boolean } = {}): Promise<void> {
    validateZoneName(name);
    await this.#native.zoneDelete(name, options.force ?? false);
  }

  /** `zoneadm -z NAME install IMAGE...`: configured -> installed. Images are absolute paths. */
  async installZone(name: string, images: readonly string[] = []): Promise<CommandResult> {
    validateZoneName(name);
    const paths = checkWords('images', images, true);
    return run(this.zoneadmPath, ['-z', name, 'install', ...paths], this.commandTimeoutMs);
  }

  /**
   * `zoneadm -z NAME clone SOURCE`: configured -> installed from SOURCE's zonepath (a ZFS clone
   * when it is a dataset, else a copy), instead of unpacking an image. SOURCE must be installed
   * and not running; zoneadm says so on stderr otherwise.
   */
  async cloneZone(name: string, source: string): Promise<CommandResult> {
    validateZoneName(name);
    validateZoneName(source);
    return run(this.zoneadmPath, ['-z', name, 'clone', source], this.commandTimeoutMs);
  }

  /** `zoneadm -z NAME boot`: the zone is running (not yet its services) when this resolves. */
  async bootZone(name: string): Promise<CommandResult> {
    validateZoneName(name);
    return run(this.zoneadmPath, ['-z', name, 'boot'], this.commandTimeoutMs);
  }

  /** `zoneadm -z NAME halt` (succeeds for a zone that is installed but not running). */
  async haltZone(name: string): Promise<CommandResult> {
    validateZoneName(name);
    return run(this.zoneadmPath, ['-z', name, 'halt'], this.commandTimeoutMs);
  }

  /** `zoneadm -z NAME uninstall -F`: installed -> configured. */
  async uninstallZone(name: string): Promise<CommandResult> {
    validateZoneName(name);
    return run(this.zoneadmPath, ['-z', name, 'uninstall', '-F'], this.commandTimeoutMs);
  }

  /**
   * Runs `argv` in the zone with zlogin and resolves with its output; rejects with a
   * ZoneCommandError (its stderr and exit status) if it fails. Each word is quoted for the
   * shell zlogin hands the command to, so it arrives exactly as given.
   */
  async zlogin(name: string, argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<CommandResult> {
    validateZoneName(name);
    const words = checkWords('argv', argv, false);
    if (words.length === 0) throw new TypeError('argv must name a command');
    // At its deadline: SIGINT, which zlogin passes on to the command in the zone.
    return run(this.zloginPath, [name, ...words.map(shellQuote)], options.timeoutMs ?? this.commandTimeoutMs, 'SIGINT');
  }

  /**
   * Runs one of GLOBAL_COMMANDS in the global zone, from sbinDir, with its arguments as they
   * are (no shell); rejects as zlogin() does.
   */
  async global(argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const words = checkWords('argv', argv, false);
    const command = words[0];
    if (command === undefined || !GLOBAL_COMMANDS.includes(command)) {
      throw new TypeError(`the global zone runs only ${GLOBAL_COMMANDS.join(', ')}, not ${JSON.stringify(command ?? '')}`);
    }
    return run(join(this.sbinDir, command), words.slice(1), options.timeoutMs ?? this.commandTimeoutMs);
  }
}

/**
 * A zone this process created and booted; release() takes it all down again (halt, uninstall,
 * delete), whatever state it has reached, and is idempotent. Also an AsyncDisposable, for
 * `await using zone = await RunningZone.start(...)`.
 */
export class RunningZone implements AsyncDisposable {
  #releasing: Promise<void> | null = null;
  #released = false;

  private constructor(
    readonly zones: Zones,
    readonly name: string,
  ) {}

  /** Configures, installs and boots a zone; on failure, removes whatever it had made and rethrows. */
  static async start(zones: Zones, desc: ZoneDescription, images: readonly string[] = []): Promise<RunningZone> {
    if (typeof desc !== 'object' || desc === null) throw new TypeError('the zone description must be an object');
    validateZoneName(desc.name);
    checkWords('images', images, true);
    await zones.configureZone(desc); // nothing to undo if this fails: the name was free or not ours
    const zone = new RunningZone(zones, desc.name);
    try {
      await zones.installZone(desc.name, images);
      await zones.bootZone(desc.name);
    } catch (err) {
      try {
        await zone.release();
      } catch (cleanup) {
        throw new AggregateError([err, cleanup], `starting zone ${desc.name} failed, and so did removing it`);
      }
      throw err;
    }
    return zone;
  }

  get released(): boolean {
    return this.#released;
  }

  /** Runs a command in the zone (see Zones.zlogin). */
  zlogin(argv: readonly string[], options: { timeoutMs?: number } = {}): Promise<CommandResult> {
    if (this.#released) return Promise.reject(new Error(`zone ${this.name} has been released`));
    return this.zones.zlogin(this.name, argv, options);
  }

  /** Halts, uninstalls and deletes the zone. Concurrent calls share one attempt; after success, a no-op. */
  release(): Promise<void> {
    if (this.#released) return Promise.resolve();
    this.#releasing ??= this.#takeDown().then(
      () => {
        this.#released = true;
      },
      (err: unknown) => {
        this.#releasing = null; // a later call may try again
        throw err;
      },
    );
    return this.#releasing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  async #takeDown(): Promise<void> {
    let state = await this.zones.zoneState(this.name);
    if (state !== undefined && ACTIVE.has(state)) {
      await this.zones.haltZone(this.name);
      state = await this.zones.zoneState(this.name);
    }
    if (state === 'installed' || state === 'incomplete') {
      await this.zones.uninstallZone(this.name);
      state = await this.zones.zoneState(this.name);
    }
    if (state !== undefined) await this.zones.deleteZone(this.name, { force: true });
  }
}
