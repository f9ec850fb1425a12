// Zone bundles: when a zone is torn down because something went wrong (the zone went away,
// Propolis went to maintenance, provisioning or a service's set-up failed), the evidence goes
// with it. So before the teardown the agent collects what an operator would have looked at, into
// `<data_dir>/bundles/<zone>/<id>.tar.gz` (GET /zones/bundles lists them, GET
// /zones/bundles/{zone}/{id} downloads one):
//
//   bundle.json            zone, id, time, cause, host backend, and each step below: its file,
//                          whether it worked, and if not, why
//   ledger.json            the ledger's record of what the zone serves
//   agent.log              the agent's own recent log lines about the zone and instance (JSON)
//   host/zone.json         the zone's state and configuration as the host has them
//   host/links.json        its VNICs (those its configuration and the ledger name), their ports
//   host/datasets.json     the zone dataset, the zone's own and the datasets delegated to it
//   smf/svcs.txt           `svcs -a -H -o state,fmri` in the zone
//   smf/svcs-xv.txt        `svcs -xv`: what is not running, and why
//   smf/logs/<log file>    `tail -n 1000` of the SMF log of the zone's service, and of any
//                          instance svcs found failing
//
// Collection is best effort: each step has a deadline, a step that fails is recorded in
// bundle.json and the rest goes on, and collect() never throws, so a bundle can never stop a
// teardown (a lost zone has no SMF to ask: those steps say so). The bundles together stay within
// `[bundles] max_bytes`, the oldest removed first.
import { randomUUID } from 'node:crypto';
import { open, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Logger } from 'pino';
import { mkdirDurable, writeFileAtomic } from './common/persist.js';
import { tarArchive, type TarEntry } from './common/tar.js';
import { NETWORK_MILESTONE, svcLogFile, svcsExplain, svcsStates, tailLines } from './host/commands.js';
import type { Host } from './host/index.js';
import { ZONENAME_REGEXP } from './host/names.js';
import type { InstanceRecord } from './instance.js';
import { portOfVnic } from './port-manager.js';
import { propolisFmri } from './zone.js';
import { instanceKey, recentLogs, zoneKey, type RecentLogs } from './recent-logs.js';
import type { ServiceRecord } from './services.js';

/** `[bundles] max_bytes` when the config does not say. */
export const DEFAULT_BUNDLE_MAX_BYTES = 32 * 1024 * 1024;
/** Lines of each SMF log taken. */
export const SERVICE_LOG_LINES = 1000;
/** Each step's deadline: a hung zlogin or host call must not hold the teardown. */
const STEP_TIMEOUT_MS = 10_000;
/** SMF logs taken besides the zone's own service's (a zone has dozens of services). */
const MAX_FAILING_LOGS = 8;
/** Dataset properties shown. */
const DATASET_PROPS = ['mountpoint', 'zoned', 'quota', 'reservation', 'oxide:uuid'];

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Where the bundles of an agent with this data directory live. */
export const bundleDir = (dataDir: string): string => join(dataDir, 'bundles');

/** What went wrong with which zone, and what the agent knows of it. */
export interface BundleSubject {
  zone: string;
  /** What went wrong, as the agent logged it. */
  cause: string;
  /** The ledger and its record for what the zone serves. */
  ledger: { file: string; record: unknown };
  /** Also the agent's log lines about this instance (those about the zone are always taken). */
  instance?: string;
  /** SMF instances whose logs to take (any that svcs finds failing are added). */
  fmris: string[];
  /** VNICs the ledger names for the zone, besides those in its configuration. */
  vnics: string[];
}

/** One bundle, as GET /zones/bundles lists it. */
export interface BundleInfo {
  zone: string;
  id: string;
  /** When it was collected (ISO 8601); bundles are ordered by it. */
  time: string;
  /** Bytes of the archive. */
  size: number;
  cause: string;
}

/** What bundle.json says of each step. */
export interface BundleStep {
  step: string;
  file: string | null;
  ok: boolean;
  error?: string;
}

export interface ZoneBundlesOptions {
  /** bundleDir(data_dir). */
  dir: string;
  maxBytes: number;
  host: Host;
  log: Logger;
  /** The dataset zonepaths are on ([zones] dataset). */
  zoneDataset: string;
  /** Default: the process's (fed by createLogger's loggers). */
  logs?: RecentLogs;
}

export class ZoneBundles {
  readonly dir: string;
  readonly #options: ZoneBundlesOptions;
  readonly #logs: RecentLogs;
  readonly #log: Logger;
  /** Writes and evictions one at a time, so the size bound holds under concurrent failures. */
  #store: Promise<unknown> = Promise.resolve();
  /** The last bundle's time: two in one millisecond still sort in the order they were made. */
  #lastTime = 0;

  constructor(options: ZoneBundlesOptions) {
    this.dir = options.dir;
    this.#options = options;
    this.#logs = options.logs ?? recentLogs;
    this.#log = options.log.child({ component: 'zone-bundles' });
  }

  /**
   * Collects and stores a bundle for `subject`; resolves with it, or with null if it could not
   * be stored (logged). Never rejects.
   */
  async collect(subject: BundleSubject): Promise<BundleInfo | null> {
    const { zone } = subject;
    const id = randomUUID();
    const log = this.#log.child({ zone, bundle: id });
    try {
      const at = Math.max(Date.now(), this.#lastTime + 1);
      this.#lastTime = at;
      const time = new Date(at);
      const { entries, steps } = await this.#gather(subject, time);
      const meta = {
        zone, id, time: time.toISOString(), cause: subject.cause, host: this.#options.host.kind,
        ...(subject.instance === undefined ? {} : { instance: subject.instance }), steps,
      };
      entries.unshift({ name: 'bundle.json', data: json(meta), mtime: time });
      const archive = await promisify(gzip)(tarArchive(entries));
      const info: BundleInfo = { zone, id, time: meta.time, size: archive.length, cause: subject.cause };
      await this.#serial(() => this.#store1(info, archive));
      const failed = steps.filter((s) => !s.ok).map((s) => s.step);
      log.info({ bytes: info.size, cause: subject.cause, failed_steps: failed }, `zone bundle collected${failed.length > 0 ? ` (${failed.length} step(s) failed)` : ''}`);
      return info;
    } catch (err) {
      log.error({ err }, 'zone bundle could not be stored');
      return null;
    }
  }

  /** Every step, each on its own: a failure is recorded and the next one runs. */
  async #gather(subject: BundleSubject, mtime: Date): Promise<{ entries: TarEntry[]; steps: BundleStep[] }> {
    const { host, zoneDataset } = this.#options;
    const { zone } = subject;
    const entries: TarEntry[] = [];
    const steps: BundleStep[] = [];
    const step = async (name: string, file: string | null, fn: () => Promise<Buffer | string>): Promise<boolean> => {
      try {
        const data = await deadline(fn(), `${name} took longer than ${STEP_TIMEOUT_MS} ms`);
        if (file !== null) entries.push({ name: file, data: Buffer.from(data), mtime });
        steps.push({ step: name, file, ok: true });
        return true;
      } catch (err) {
        steps.push({ step: name, file, ok: false, error: errMessage(err) });
        return false;
      }
    };
    const exec = async (argv: string[]) => (await host.zones.exec(zone, argv, { timeoutMs: STEP_TIMEOUT_MS })).stdout;

    await step('ledger record', 'ledger.json', async () => json(subject.ledger));
    await step('agent log', 'agent.log', async () => {
      const keys = [zoneKey(zone), ...(subject.instance === undefined ? [] : [instanceKey(subject.instance)])];
      return this.#logs.lines(keys).map((l) => `${l}\n`).join('');
    });

    let config: Awaited<ReturnType<Host['zones']['config']>> | null = null;
    await step('zone', 'host/zone.json', async () => {
      const state = await host.zones.state(zone);
      let configuration: unknown;
      try {
        config = await host.zones.config(zone);
        configuration = config;
      } catch (err) {
        configuration = { error: errMessage(err) };
      }
      return json({ name: zone, state, configuration });
    });
    const cfg = config as Awaited<ReturnType<Host['zones']['config']>> | null;
    const vnicNames = [...new Set([...(cfg?.nets.map((n) => n.physical) ?? []), ...subject.vnics])];
    await step('links', 'host/links.json', async () => {
      const all = await host.links.listVnics();
      const vnics = all.filter((v) => vnicNames.includes(v.name));
      const ports = vnicNames.filter((v) => v.startsWith('vopte')).map(portOfVnic);
      let opte: unknown = [];
      if (ports.length > 0) {
        try {
          opte = (await host.network.listPorts()).filter((p) => ports.includes(p.name));
        } catch (err) {
          opte = { error: errMessage(err) };
        }
      }
      return json({ vnics, missing: vnicNames.filter((n) => !vnics.some((v) => v.name === n)), ports: opte });
    });
    await step('datasets', 'host/datasets.json', async () => {
      const names = [zoneDataset, `${zoneDataset}/${zone}`, ...(cfg?.datasets.map((d) => d.name) ?? [])];
      const datasets = [];
      for (const name of names) {
        if (!(await host.datasets.exists(name))) {
          datasets.push({ name, exists: false });
          continue;
        }
        datasets.push({ name, exists: true, properties: await host.datasets.get(name, DATASET_PROPS) });
      }
      return json(datasets);
    });

    let states = '';
    await step('svcs', 'smf/svcs.txt', async () => (states = await exec(svcsStates())));
    await step('svcs -xv', 'smf/svcs-xv.txt', () => exec(svcsExplain()));
    const failing = states.split('\n').map((l) => l.split(' '))
      .filter(([state, fmri]) => fmri !== undefined && (state === 'maintenance' || state === 'offline' || state === 'degraded'))
      .map(([, fmri]) => fmri as string);
    const fmris = [...new Set([...subject.fmris, ...failing.slice(0, MAX_FAILING_LOGS)])];
    for (const fmri of fmris) {
      const file = svcLogFile(fmri);
      await step(`log of ${fmri}`, `smf/logs/${file.slice(file.lastIndexOf('/') + 1)}`, () => exec(tailLines(SERVICE_LOG_LINES, file)));
    }
    return { entries, steps };
  }

  /** Writes the bundle (archive, then its listing entry), then keeps the total within the bound. */
  async #store1(info: BundleInfo, archive: Buffer): Promise<void> {
    const dir = join(this.dir, info.zone);
    await mkdirDurable(dir);
    // Each written aside, synced and renamed, so neither is ever seen half written, not even
    // after a power loss; the listing entry first, as the archive is what makes a bundle listed.
    await writeFileAtomic(join(dir, `${info.id}.json`), json(info), 0o644, false);
    await writeFileAtomic(join(dir, `${info.id}.tar.gz`), archive, 0o644, false);
    await this.#evict();
  }

  /** Oldest first, until the bundles together are within max_bytes; those the listing leaves out count too. */
  async #evict(): Promise<void> {
    const all = await scanBundles(this.dir);
    let total = all.reduce((n, b) => n + b.size, 0);
    for (const b of all) {
      if (total <= this.#options.maxBytes) break;
      await removeBundle(this.dir, b);
      total -= b.size;
      this.#log.info({ zone: b.zone, bundle: b.id, bytes: b.size, max_bytes: this.#options.maxBytes }, 'zone bundle removed to stay within max_bytes');
    }
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#store.then(task, task);
    this.#store = run.catch(() => {});
    return run;
  }
}

/** What a failed instance's bundle is about. */
export function instanceBundle(instance: { id: string; zone: string; record: InstanceRecord; vnics: string[] }, why: string, err: unknown): BundleSubject {
  return {
    zone: instance.zone,
    cause: `${why}: ${errMessage(err)}`,
    ledger: { file: 'instances.json', record: structuredClone(instance.record) },
    instance: instance.id,
    fmris: [propolisFmri(instance.zone), NETWORK_MILESTONE],
    vnics: instance.vnics,
  };
}

/** What a failed service zone's bundle is about. */
export function serviceBundle(zone: string, service: ServiceRecord, err: unknown): BundleSubject {
  return {
    zone,
    cause: `service set-up failed: ${errMessage(err)}`,
    ledger: { file: 'services.json', record: structuredClone(service) },
    fmris: [`svc:/system/illumos/${service.name}:default`, NETWORK_MILESTONE],
    vnics: [service.control_vnic],
  };
}

/**
 * Every bundle under `dir`, oldest first. One whose listing entry cannot be read is left out,
 * and `log` says which: one bad file must not hide the others.
 */
export async function listBundles(dir: string, log?: Logger): Promise<BundleInfo[]> {
  const listed: BundleInfo[] = [];
  for (const { unreadable, ...info } of await scanBundles(dir)) {
    if (unreadable === undefined) listed.push(info);
    else log?.warn({ zone: info.zone, bundle: info.id, err: unreadable }, 'zone bundle left out of the listing: its listing entry cannot be read');
  }
  return listed;
}

/** A bundle found on disk; `unreadable` says why its listing entry could not be read (then time is the archive's mtime). */
type ScannedBundle = BundleInfo & { unreadable?: string };

/** The metadata in a bundle's listing entry: {} if there is none, an Error if it cannot be read or is not an object. */
async function readListingEntry(path: string): Promise<Partial<BundleInfo> | Error> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return err as Error;
  }
  try {
    const meta: unknown = JSON.parse(text);
    if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) return meta as Partial<BundleInfo>;
    return new Error(`${path} holds ${JSON.stringify(meta)}, not an object`);
  } catch (err) {
    return new Error(`${path} is not JSON: ${errMessage(err)}`);
  }
}

async function scanBundles(dir: string): Promise<ScannedBundle[]> {
  const found: ScannedBundle[] = [];
  for (const zone of await readdirIfExists(dir)) {
    if (!ZONENAME_REGEXP.test(zone)) continue;
    for (const file of await readdirIfExists(join(dir, zone))) {
      const m = /^(.+)\.tar\.gz$/.exec(file);
      if (m === null || !UUID_RE.test(m[1]!)) continue;
      const id = m[1]!;
      let size: number;
      let mtime: Date;
      try {
        ({ size, mtime } = await stat(join(dir, zone, file)));
      } catch {
        continue; // removed meanwhile
      }
      const entry = await readListingEntry(join(dir, zone, `${id}.json`));
      const meta = entry instanceof Error ? {} : entry;
      found.push({
        zone, id, size,
        time: typeof meta.time === 'string' ? meta.time : mtime.toISOString(),
        cause: typeof meta.cause === 'string' ? meta.cause : 'unknown (its listing entry is missing)',
        ...(entry instanceof Error ? { unreadable: entry.message } : {}),
      });
    }
  }
  return found.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
}

/**
 * The bundle's archive opened for reading, or null if there is none. Open, it can be read to the
 * end even if eviction removes it meanwhile.
 */
export async function openBundle(dir: string, zone: string, id: string): Promise<{ file: Awaited<ReturnType<typeof open>>; size: number } | null> {
  if (!ZONENAME_REGEXP.test(zone) || !UUID_RE.test(id)) return null;
  try {
    const file = await open(join(dir, zone, `${id}.tar.gz`), 'r');
    return { file, size: (await file.stat()).size };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function removeBundle(dir: string, b: BundleInfo): Promise<void> {
  await rm(join(dir, b.zone, `${b.id}.tar.gz`), { force: true });
  await rm(join(dir, b.zone, `${b.id}.json`), { force: true });
  // The zone's directory goes with its last bundle (rmdir leaves one that is not empty).
  await rmdir(join(dir, b.zone)).catch(() => {});
}

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

function deadline<T>(p: Promise<T>, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), { code: 'ETIMEDOUT' })), STEP_TIMEOUT_MS);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const json = (value: unknown): Buffer => Buffer.from(`${JSON.stringify(value, null, 2)}\n`);

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
