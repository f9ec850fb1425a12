// Simulated storage (omicron sim/storage.rs): configured zpools, one Crucible dataset on each
// with its own Crucible agent HTTP server, all reported to Nexus once the sled is registered.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { formatSocketAddr } from '../common/address.js';
import type { NexusNotifier } from '../common/nexus-notifier.js';
import { objectNotFound } from '../common/errors.js';
import type { NexusClient } from '../nexus-client.js';
import { NEXUS_DATASET_KIND, type DatasetKind } from '../params.js';
import type { App } from '../server.js';
import { CrucibleData, crucibleAgentApp } from './crucible-agent.js';

export interface SimZpool {
  id: string;
  size: number;
  dataset: SimDataset;
}

export interface SimDataset {
  id: string;
  address: string;
  crucible: CrucibleData;
  app: App;
}

/** A dataset asked for with PUT /filesystem (RSS): recorded and reported, nothing served. */
export interface RequestedDataset {
  id: string;
  zpoolId: string;
  kind: DatasetKind;
  address: string;
}

export class SimStorage {
  readonly zpools: SimZpool[] = [];
  readonly requested: RequestedDataset[] = [];
  /**
   * Settles once every pool has been reported (report()); until the sled is registered it stays
   * pending, so a dataset asked for before then waits for its pool rather than reach Nexus first.
   */
  private readonly reported: Promise<void>;
  private reportedNow!: (all: Promise<void>) => void;
  private readonly log: Logger;

  /**
   * `log` is the sim's, without a component: the Crucible agents' loggers are made from it, as a
   * pino child repeats a binding its parent already has rather than replacing it.
   */
  constructor(
    private readonly sledId: string,
    private readonly ip: string,
    private readonly parentLog: Logger,
  ) {
    this.log = parentLog.child({ component: 'storage' });
    this.reported = new Promise((resolve) => { this.reportedNow = resolve; });
  }

  /** Creates the pools and starts one Crucible agent per pool's dataset; all or none. */
  async start(pools: ReadonlyArray<{ id?: string; size: number }>): Promise<void> {
    const started = await Promise.allSettled(pools.map(async (pool): Promise<SimZpool> => {
      const crucible = new CrucibleData();
      const datasetId = randomUUID();
      const app = crucibleAgentApp(crucible, this.parentLog.child({ component: 'crucible-agent', dataset: datasetId }));
      try {
        await app.listen({ host: this.ip, port: 0 });
      } catch (err) {
        await app.close();
        throw err;
      }
      const { port } = app.server.address() as { port: number };
      return {
        id: pool.id ?? randomUUID(),
        size: pool.size,
        dataset: { id: datasetId, address: formatSocketAddr({ host: this.ip, port }), crucible, app },
      };
    }));
    for (const result of started) if (result.status === 'fulfilled') this.zpools.push(result.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.close();
      throw new Error(`cannot start a simulated Crucible agent on ${this.ip}: ${(failed.reason as Error).message}`);
    }
  }

  /** Reports every pool, then its dataset, to Nexus; resolves when all were delivered. */
  report(nexus: NexusClient, notifier: NexusNotifier): Promise<void> {
    const all = this.reportAll(nexus, notifier);
    this.reportedNow(all);
    return all;
  }

  /**
   * PUT /filesystem: ensures a dataset of `kind` on the pool (one per kind per pool, as the
   * original names datasets by kind) and reports it to Nexus once the pools are reported.
   * Returns false if it already existed.
   */
  ensureDataset(zpoolId: string, kind: DatasetKind, address: string, nexus: NexusClient, notifier: NexusNotifier): boolean {
    if (!this.zpools.some((pool) => pool.id === zpoolId)) {
      throw objectNotFound(`no zpool with id ${zpoolId} on this sled (it has ${this.zpools.map((p) => p.id).join(', ') || 'none'})`);
    }
    if (this.requested.some((d) => d.zpoolId === zpoolId && d.kind.type === kind.type)) return false;
    const dataset: RequestedDataset = { id: randomUUID(), zpoolId, kind, address };
    this.requested.push(dataset);
    this.log.info({ zpool: zpoolId, dataset: dataset.id, kind: kind.type, address }, 'dataset created (simulated)');
    // Nexus must know the pool before it can take a dataset on it.
    void this.reported.then(() => notifier.push(`dataset:${dataset.id}`, 'dataset_put',
      () => nexus.datasetPut(zpoolId, dataset.id, { address, kind: NEXUS_DATASET_KIND[kind.type] })));
    return true;
  }

  private async reportAll(nexus: NexusClient, notifier: NexusNotifier): Promise<void> {
    await Promise.all(this.zpools.map(async (pool) => {
      const zpool = await notifier.push(`zpool:${pool.id}`, 'zpool_put',
        () => nexus.zpoolPut(this.sledId, pool.id, { size: pool.size }));
      if (zpool !== 'delivered') return;
      await notifier.push(`dataset:${pool.dataset.id}`, 'dataset_put',
        () => nexus.datasetPut(pool.id, pool.dataset.id, { address: pool.dataset.address, kind: 'crucible' }));
    }));
    this.log.info({ zpools: this.zpools.length }, 'storage reported to Nexus');
  }

  async close(): Promise<void> {
    await Promise.all(this.zpools.map((pool) => pool.dataset.app.close()));
    this.zpools.length = 0;
  }
}
