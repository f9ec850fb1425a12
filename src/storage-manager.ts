// Zpools and the datasets on them (omicron storage_manager.rs, reference §11): the configured
// `oxp_<uuid>` pools are reported to Nexus, and PUT /filesystem makes a dataset of a kind
// (cockroachdb, crucible, clickhouse) on a pool with a zone that serves it.
//
// What we do differently from the original, on purpose:
// - An unknown pool is a 404 naming the pools this sled has (the original: a 500), a bad address
//   a 400, and a second request for the same dataset with another address a 409.
// - The "is its zone already running" check works: datasets are tracked by id and their zone is
//   `oxz_<kind>_<pool>`, the name actually installed (the original looked for a prefix
//   `oxz_<pool>/<ds>_` that never matched, so every repeat re-did the work).
// - The DatasetInfo record (JSON, `<dataDir>/<pool uuid>/<dataset uuid>.json`, written
//   atomically) is written BEFORE the zone work, after the ZFS dataset has its oxide:uuid, so a
//   crash half-way leaves a claimed dataset whose zone start() finishes, never an orphan; it
//   records the control VNIC so adoption reuses it.
// - After a restart, zones of known datasets are adopted (ensureZoneRunning), not deleted and
//   re-made; one dataset's failure does not stop the others; a missing pool is a warning.
// - Nexus hears about pools and datasets through the notifier (ordered, coalesced, retried), and
//   only once reportTo() says the sled is registered; a dataset_put always follows its pool's
//   zpool_put. PUT /filesystem never waits for Nexus (RSS calls it before Nexus exists).
// - The Crucible agent's config/uuid is the dataset id, stable across restarts (the original
//   made a new random one each time the zone was set up).
import { randomUUID } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { datasetAddress, parseSocketAddr } from './common/address.js';
import { invalidRequest, conflict, objectNotFound, serviceUnavailable } from './common/errors.js';
import type { NexusNotifier } from './common/nexus-notifier.js';
import { fsyncDir, readJsonIfExists, writeJsonAtomic } from './common/persist.js';
import type { Host, PoolInfo } from './host/index.js';
import {
  siteManifest, svcadmEnable, svccfgImport, svccfgRefresh, svccfgSetProp, zoneImage,
} from './host/commands.js';
import { retryingRefusals, type NexusClient } from './nexus-client.js';
import { NEXUS_DATASET_KIND, type DatasetEnsureBody, type DatasetKind } from './params.js';
import { OXIDE_UUID_PROPERTY } from './host/names.js';
import { addDefaultRoute, ensurePropertyGroup } from './services.js';
import {
  ensureAddress, ensureZoneRunning, waitForOnline, zoneName,
  type Phase, type ReadinessOptions, type VnicNames,
} from './zone.js';

export const ZPOOL_PREFIX = 'oxp_';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The child dataset of each kind: `<pool>/<name>`, so at most one of each kind per pool. */
export const DATASET_NAME: Record<DatasetKind['type'], string> = {
  cockroach_db: 'cockroachdb',
  crucible: 'crucible',
  clickhouse: 'clickhouse',
};


/** What is on file per dataset (the original's DatasetInfo, plus id and control VNIC). */
export interface DatasetInfo {
  /** "[ip]:port" it serves on. */
  address: string;
  kind: DatasetKind;
  name: { pool_name: string; dataset_name: string };
  id: string;
  control_vnic: string;
}

export interface StorageManagerOptions {
  host: Host;
  log: Logger;
  /** DatasetInfo records live in `<dataDir>/<pool uuid>/<dataset uuid>.json`. */
  dataDir: string;
  sledId: string;
  /** The config's pool names, `oxp_<uuid>`. */
  zpools: string[];
  nexus: NexusClient;
  notifier: NexusNotifier;
  vnics: VnicNames;
  zoneRoot: string;
  controlLink: string;
  wait: Omit<ReadinessOptions, 'signal'>;
  /** The zones' default route, when known. */
  underlayAddress?: string;
}

export interface StorageStartSummary {
  /** Ids of the configured pools found on the host. */
  zpools: string[];
  /** Configured pools the host does not have (skipped). */
  missingZpools: string[];
  /** Datasets (by full name) whose zone was still there and was picked up. */
  adopted: string[];
  /** Datasets whose zone was gone and was made again. */
  recreated: string[];
  failed: Array<{ dataset: string; error: string }>;
}

interface Pool {
  id: string;
  name: string;
  info: PoolInfo;
  /** Set once the zpool_put was queued: resolves true when Nexus accepted it. */
  reported: Promise<boolean> | null;
}

export class StorageManager {
  readonly #options: StorageManagerOptions;
  readonly #host: Host;
  readonly #log: Logger;
  /** Configured pools: uuid -> name. */
  readonly #configured: Map<string, string>;
  /** Configured pools found on the host (filled by start()). */
  readonly #pools = new Map<string, Pool>();
  /** DatasetInfo records by dataset id. */
  readonly #datasets = new Map<string, DatasetInfo>();
  /** Datasets whose zone set-up completed in this process. */
  readonly #up = new Set<string>();
  /** Per full dataset name: one operation at a time. */
  readonly #locks = new Map<string, Promise<void>>();
  #discovered: Promise<void> | null = null;
  #started: Promise<StorageStartSummary> | null = null;
  #reporting = false;
  /** Per dataset id: its dataset_put, once queued. */
  readonly #datasetReported = new Map<string, Promise<void>>();

  private constructor(options: StorageManagerOptions, configured: Map<string, string>) {
    this.#options = options;
    this.#host = options.host;
    this.#log = options.log.child({ component: 'StorageManager' });
    this.#configured = configured;
  }

  /** Reads the DatasetInfo records of the configured pools (no host work: see start()). */
  static async open(options: StorageManagerOptions): Promise<StorageManager> {
    const configured = new Map<string, string>();
    for (const name of options.zpools) {
      const id = name.startsWith(ZPOOL_PREFIX) ? name.slice(ZPOOL_PREFIX.length) : '';
      if (!UUID_RE.test(id)) throw new Error(`zpool "${name}" is not named ${ZPOOL_PREFIX}<uuid>`);
      configured.set(id.toLowerCase(), name);
    }
    const manager = new StorageManager(options, configured);
    await manager.#load();
    options.vnics.reserve([...manager.#datasets.values()].map((d) => d.control_vnic));
    return manager;
  }

  async #load(): Promise<void> {
    for (const [poolId, poolName] of this.#configured) {
      const dir = join(this.#options.dataDir, poolId);
      let entries: string[];
      try {
        entries = await readdir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const entry of entries.filter((e) => e.endsWith('.json') && !e.startsWith('.')).sort()) {
        const path = join(dir, entry);
        try {
          const info = checkDatasetInfo(await readJsonIfExists(path), poolName, entry.slice(0, -'.json'.length));
          this.#datasets.set(info.id, info);
        } catch (err) {
          // One bad record must not keep the sled from starting; its zone will look orphaned.
          this.#log.error({ path, err: errMessage(err) }, 'ignoring unusable dataset record');
        }
      }
    }
    this.#log.info({ datasets: [...this.#datasets.values()].map(fullName) }, 'dataset records loaded');
  }

  /** Ids of the configured pools found on the host (empty before start()). */
  zpoolIds(): string[] {
    return [...this.#pools.keys()];
  }

  /** The dataset records (copies). */
  datasets(): DatasetInfo[] {
    return [...this.#datasets.values()].map((d) => structuredClone(d));
  }

  /** The zones this manager owns according to its records, with their VNICs. */
  claimedZones(): Map<string, string[]> {
    return new Map([...this.#datasets.values()].map((d) => [datasetZone(d), [d.control_vnic]]));
  }

  /**
   * Finds the configured pools on the host (a missing one is logged and skipped), then adopts
   * the zone of every dataset that is both on a pool (with its oxide:uuid) and on file. Call
   * once, after orphans were removed; later calls return the first call's result, unless it
   * failed: then they start again (a PUT /filesystem does, finding the pools not yet known).
   */
  start(): Promise<StorageStartSummary> {
    this.#started ??= this.#start().catch((err: unknown) => {
      this.#started = null;
      throw err;
    });
    return this.#started;
  }

  async #start(): Promise<StorageStartSummary> {
    const summary: StorageStartSummary = { zpools: [], missingZpools: [], adopted: [], recreated: [], failed: [] };
    this.#discovered = this.#discover(summary);
    await this.#discovered;

    const owned: DatasetInfo[] = [];
    for (const pool of this.#pools.values()) {
      const children = await this.#host.datasets.listChildren(pool.name);
      const seen = new Set<string>();
      for (const child of children) {
        const id = (await this.#host.datasets.get(child, [OXIDE_UUID_PROPERTY]))[OXIDE_UUID_PROPERTY];
        const info = id ? this.#datasets.get(id.toLowerCase()) : undefined;
        if (!info || fullName(info) !== child) {
          this.#log.info({ dataset: child, id }, 'dataset on the pool is not one of ours (no matching record): left alone');
          continue;
        }
        seen.add(info.id);
        owned.push(info);
      }
      for (const info of this.#datasets.values()) {
        if (info.name.pool_name === pool.name && !seen.has(info.id)) {
          this.#log.warn({ dataset: fullName(info), id: info.id }, 'dataset on file is not on the pool (or has another oxide:uuid): not started');
        }
      }
    }

    await Promise.all(owned.map((info) => this.#withLock(fullName(info), async () => {
      try {
        const how = await this.#bringUp(info);
        (how === 'adopted' ? summary.adopted : summary.recreated).push(fullName(info));
        void this.#reportDataset(info);
      } catch (err) {
        summary.failed.push({ dataset: fullName(info), error: errMessage(err) });
      }
    })));
    summary.adopted.sort();
    summary.recreated.sort();
    summary.failed.sort((a, b) => a.dataset.localeCompare(b.dataset));
    this.#log[summary.failed.length > 0 || summary.missingZpools.length > 0 ? 'warn' : 'info'](summary, 'storage started');
    return summary;
  }

  async #discover(summary: StorageStartSummary): Promise<void> {
    const present = new Map((await this.#host.datasets.listPools()).map((p) => [p.name, p]));
    for (const [id, name] of this.#configured) {
      const info = present.get(name);
      if (!info) {
        summary.missingZpools.push(id);
        this.#log.warn({ zpool: name }, 'configured zpool is not on this host: skipped (its datasets are not started)');
        continue;
      }
      if (info.health !== 'ONLINE') this.#log.warn({ zpool: name, health: info.health }, 'zpool is not ONLINE');
      const pool: Pool = { id, name, info, reported: null };
      this.#pools.set(id, pool);
      summary.zpools.push(id);
      this.#reportPool(pool);
    }
  }

  /**
   * Lets reports reach Nexus (call once the sled is registered): every pool's zpool_put, then
   * each of its running datasets' dataset_put, and from now on everything new as it comes.
   * Resolves when what is known now was delivered (or refused); Nexus being down means it
   * waits, so do not block start-up on it.
   */
  async reportTo(): Promise<void> {
    this.#reporting = true;
    const pending: Array<Promise<unknown>> = [];
    for (const pool of this.#pools.values()) pending.push(this.#reportPool(pool));
    for (const info of this.#datasets.values()) {
      if (this.#up.has(info.id)) pending.push(this.#reportDataset(info));
    }
    await Promise.all(pending);
  }

  #reportPool(pool: Pool): Promise<boolean> {
    if (!this.#reporting) return Promise.resolve(false);
    pool.reported ??= this.#options.notifier
      // Retried whatever Nexus answers, as the original's (storage_manager.rs maps every error to
      // BackoffError::transient): a pool or dataset not reported stays unknown to Nexus for good.
      .push(`zpool:${pool.id}`, 'zpool_put', retryingRefusals(() => this.#options.nexus.zpoolPut(this.#options.sledId, pool.id, { size: Number(pool.info.size) })))
      .then((outcome) => outcome === 'delivered');
    return pool.reported;
  }

  /** Queues the dataset_put behind its pool's zpool_put, once per dataset; never throws. */
  #reportDataset(info: DatasetInfo): Promise<void> {
    if (!this.#reporting) return Promise.resolve();
    const poolId = poolIdOf(info);
    const pool = this.#pools.get(poolId);
    if (!pool) return Promise.resolve();
    const known = this.#datasetReported.get(info.id);
    if (known) return known;
    const reported = this.#reportPool(pool).then(async (ok) => {
      if (!ok) {
        this.#log.warn({ zpool: pool.name, dataset: info.id }, 'zpool_put not delivered before shutdown: dataset_put not sent');
        return;
      }
      const body = { address: info.address, kind: NEXUS_DATASET_KIND[info.kind.type] };
      await this.#options.notifier.push(`dataset:${info.id}`, 'dataset_put', retryingRefusals(() => this.#options.nexus.datasetPut(poolId, info.id, body)));
    });
    this.#datasetReported.set(info.id, reported);
    return reported;
  }

  /**
   * PUT /filesystem: a dataset of `dataset_kind` on pool `zpool_id` with its zone running the
   * kind's service at `address`. A repeat of a request that already took effect does nothing.
   */
  async filesystemEnsure(body: DatasetEnsureBody): Promise<void> {
    const kind = body.dataset_kind;
    const child = DATASET_NAME[kind?.type];
    if (child === undefined) throw invalidRequest(`unknown dataset kind ${JSON.stringify(kind?.type)}`);
    const ip = datasetAddress(body, { usable: true }).host;

    if (this.#discovered === null) throw serviceUnavailable('storage is not started yet');
    // The host's pools could not be listed at start-up: tried again now, rather than have every
    // request fail until a restart.
    await this.#discovered.catch(() => this.start()).catch((err: unknown) => {
      throw serviceUnavailable(`the sled's zpools could not be listed (${err instanceof Error ? err.message : String(err)}); each request tries again`);
    });
    const poolId = String(body.zpool_id).toLowerCase();
    const pool = this.#pools.get(poolId);
    if (!pool) {
      const known = [...this.#pools.keys()];
      throw objectNotFound(`no zpool with id ${body.zpool_id} on this sled (it has ${known.length > 0 ? known.join(', ') : 'none'})`);
    }
    const name = `${pool.name}/${child}`;

    await this.#withLock(name, async () => {
      let info = [...this.#datasets.values()].find((d) => fullName(d) === name);
      if (info && info.address !== body.address) {
        throw conflict(`dataset ${name} already exists serving at ${info.address}; it cannot be moved to ${body.address}`);
      }

      // ZFS first: the dataset and its id (an existing oxide:uuid is kept).
      const datasets = this.#host.datasets;
      let id: string;
      if (!(await datasets.exists(name))) {
        id = info?.id ?? randomUUID();
        await datasets.create(name, { zoned: 'on', mountpoint: '/data', [OXIDE_UUID_PROPERTY]: id });
        this.#log.info({ dataset: name, id }, 'dataset created');
      } else {
        const current = (await datasets.get(name, [OXIDE_UUID_PROPERTY]))[OXIDE_UUID_PROPERTY];
        if (current) {
          id = current.toLowerCase();
        } else {
          id = info?.id ?? randomUUID();
          await datasets.set(name, { [OXIDE_UUID_PROPERTY]: id });
        }
      }
      let replaced: DatasetInfo | undefined;
      if (info && info.id !== id) {
        // The host is the source of truth: the record followed an older dataset of that name.
        this.#log.warn({ dataset: name, record: info.id, zfs: id }, 'dataset record names another id than ZFS: replacing it');
        // Its file goes, durably, before the new one is written: with both on disk a restart
        // would load two records for one dataset, and nothing on file says which is current.
        // A crash in between leaves neither: the request was not answered, the zone looks
        // orphaned at restart, and the retried request writes the record from what ZFS says.
        const path = this.#recordPath(info);
        await rm(path, { force: true });
        await fsyncDir(dirname(path));
        this.#datasets.delete(info.id);
        this.#up.delete(info.id);
        replaced = info;
        info = undefined;
      }

      // Then the record, before any zone work, so a crash from here on is finished at restart.
      if (!info) {
        info = {
          address: body.address,
          kind: structuredClone(kind),
          name: { pool_name: pool.name, dataset_name: child },
          id,
          // The zone of this name, which the new record adopts if it runs, was made on the old
          // record's VNIC: a new one would not be in it.
          control_vnic: replaced?.control_vnic ?? this.#options.vnics.control('Storage'),
        };
        await writeJsonAtomic(this.#recordPath(info), info);
        this.#datasets.set(id, info);
      }

      const zone = datasetZone(info);
      if (this.#up.has(id) && (await this.#host.zones.state(zone)) === 'running') {
        this.#log.debug({ dataset: name, zone }, 'dataset already served: nothing to do');
        return;
      }
      await this.#bringUp(info);
      void this.#reportDataset(info);
    });
  }

  /** Zone, address, route and the kind's SMF set-up; each step idempotent, so it also adopts. */
  async #bringUp(info: DatasetInfo): Promise<'adopted' | 'recreated'> {
    const host = this.#host;
    const { wait } = this.#options;
    const zone = datasetZone(info);
    const dataset = fullName(info);
    const log = this.#log.child({ dataset, zone, kind: info.kind.type });
    const { host: ip } = parseSocketAddr(info.address);
    const started = Date.now();
    let made = false;
    try {
      await ensureZoneRunning(host, {
        name: zone,
        image: zoneImage(info.name.dataset_name),
        controlVnic: info.control_vnic,
        controlLink: this.#options.controlLink,
        zoneRoot: this.#options.zoneRoot,
        datasets: [dataset],
      }, wait, (phase: Phase) => {
        if (phase === 'configure' || phase === 'install') made = true;
        log.debug({ phase }, 'zone phase');
      });
      await ensureAddress(host, zone, info.control_vnic, `${ip}/64`);
      if (this.#options.underlayAddress !== undefined) await addDefaultRoute(host, zone, this.#options.underlayAddress);
      else log.warn('no underlay address: the zone gets no default route');

      const exec = (argv: string[]) => host.zones.exec(zone, argv);
      let fmri: string;
      switch (info.kind.type) {
        case 'cockroach_db':
          fmri = 'svc:/system/illumos/cockroachdb:default';
          await exec(svccfgImport(siteManifest('cockroachdb')));
          await ensurePropertyGroup(host, zone, fmri, 'config');
          await exec(svccfgSetProp(fmri, 'config/listen_addr', info.address));
          await exec(svccfgSetProp(fmri, 'config/store', '/data'));
          // As the original (its TODO #727): the join addresses are not wired yet.
          await exec(svccfgSetProp(fmri, 'config/join_addrs', 'unknown'));
          await exec(svccfgRefresh(fmri));
          break;
        case 'clickhouse':
          fmri = 'svc:/system/illumos/clickhouse:default';
          await exec(svccfgImport(siteManifest('clickhouse')));
          await ensurePropertyGroup(host, zone, fmri, 'config');
          await exec(svccfgSetProp(fmri, 'config/listen_host', ip));
          await exec(svccfgSetProp(fmri, 'config/store', '/data'));
          await exec(svccfgRefresh(fmri));
          break;
        case 'crucible':
          fmri = 'svc:/oxide/crucible/agent:default';
          await exec(svccfgImport('/var/svc/manifest/site/crucible/agent.xml'));
          await exec(svccfgImport('/var/svc/manifest/site/crucible/downstairs.xml'));
          await ensurePropertyGroup(host, zone, fmri, 'config');
          await exec(svccfgSetProp(fmri, 'config/listen', info.address));
          await exec(svccfgSetProp(fmri, 'config/dataset', dataset));
          await exec(svccfgSetProp(fmri, 'config/uuid', info.id));
          await exec(svccfgRefresh(fmri));
          break;
      }
      await exec(svcadmEnable(fmri));
      await waitForOnline(host, zone, fmri, wait);
      // The original then polled CockroachDB's http://[ip]:8080/health?ready=1 and ran
      // dbwipe.sql and dbinit.sql with `cockroach sql`. Not here: a simulated host has no
      // CockroachDB to ask or to initialise; SMF online is where this agent's job ends.
    } catch (err) {
      log.error({ err: errMessage(err), code: (err as { code?: unknown }).code }, 'dataset zone set-up failed');
      throw err;
    }
    this.#up.add(info.id);
    const how = made ? 'recreated' : 'adopted';
    log.info({ how, address: info.address, vnic: info.control_vnic, ms: Date.now() - started }, 'dataset zone online');
    return how;
  }

  #recordPath(info: DatasetInfo): string {
    return join(this.#options.dataDir, poolIdOf(info), `${info.id}.json`);
  }

  #withLock<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.then(() => {}, () => {});
    this.#locks.set(key, tail);
    void tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return run;
  }
}

/** `oxz_<kind dataset>_<pool>`, e.g. oxz_crucible_oxp_<uuid>. */
export function datasetZone(info: DatasetInfo): string {
  return zoneName(info.name.dataset_name, info.name.pool_name);
}

function fullName(info: DatasetInfo): string {
  return `${info.name.pool_name}/${info.name.dataset_name}`;
}

function poolIdOf(info: DatasetInfo): string {
  return info.name.pool_name.slice(ZPOOL_PREFIX.length).toLowerCase();
}

function checkDatasetInfo(raw: unknown, poolName: string, fileId: string): DatasetInfo {
  const d = raw as Partial<DatasetInfo> | null;
  if (typeof d !== 'object' || d === null) throw new Error('not an object');
  if (typeof d.id !== 'string' || d.id.toLowerCase() !== fileId.toLowerCase()) throw new Error(`id ${JSON.stringify(d.id)} does not match the file name`);
  if (typeof d.address !== 'string') throw new Error('no address');
  parseSocketAddr(d.address);
  const type = d.kind?.type;
  if (typeof type !== 'string' || !(type in DATASET_NAME)) throw new Error(`unknown kind ${JSON.stringify(type)}`);
  if (d.name?.pool_name !== poolName) throw new Error(`pool_name ${JSON.stringify(d.name?.pool_name)} is not ${poolName}`);
  if (d.name.dataset_name !== DATASET_NAME[type as DatasetKind['type']]) throw new Error(`dataset_name ${JSON.stringify(d.name.dataset_name)} does not fit kind ${type}`);
  if (typeof d.control_vnic !== 'string' || !/^oxControl[A-Za-z]+\d+$/.test(d.control_vnic)) throw new Error('bad control_vnic');
  return { ...(d as DatasetInfo), id: d.id.toLowerCase() };
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
