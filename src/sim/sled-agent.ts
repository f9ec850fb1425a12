// The simulated sled agent (omicron sim/sled_agent.rs): instances and disks as SimCollections
// over the shared state machines, simulated storage, update downloads, the firewall rules and
// V2P mappings Nexus sends, and every simulated state change pushed to Nexus through the notifier.
import type { Logger } from 'pino';
import { datasetAddress } from '../common/address.js';
import { objectNotFound } from '../common/errors.js';
import type { NexusNotifier } from '../common/nexus-notifier.js';
import type { NexusClient } from '../nexus-client.js';
import type { InstanceView, SledInventory } from '../operator-params.js';
import type {
  DatasetEnsureBody, DiskRuntimeState, DiskStateRequested, InstanceHardware, InstanceRuntimeState,
  InstanceRuntimeStateRequested, ServiceRequest, SetVirtualNetworkInterfaceHost, UpdateArtifact, V2pMapping,
  VpcFirewallRule,
} from '../params.js';
import { downloadArtifact } from '../updates.js';
import { VERSION } from '../version.js';
import { SimCollection, type SimMode } from './collection.js';
import { SimDisk } from './disk.js';
import { SimInstance } from './instance.js';
import { SimNetworking } from './networking.js';
import { SimServices } from './services.js';
import type { SimStorage } from './storage.js';

/** How long a poke waits for Nexus to take the state it reports before it answers anyway. */
const POKE_REPORT_WAIT_MS = 10_000;

export interface SimSledAgentOptions {
  id: string;
  mode: SimMode;
  autoDelayMs: number;
  artifactDir: string;
  log: Logger;
  nexus: NexusClient;
  notifier: NexusNotifier;
  storage: SimStorage;
  /** Where Nexus is, "ip:port" (for GET /inventory). */
  nexusAddress: string;
}

export class SimSledAgent {
  readonly id: string;
  readonly instances: SimCollection<InstanceRuntimeState, InstanceRuntimeStateRequested, SimInstance>;
  readonly disks: SimCollection<DiskRuntimeState, DiskStateRequested, SimDisk>;
  readonly storage: SimStorage;
  readonly services: SimServices;
  readonly networking = new SimNetworking();
  /** Where the API listens (set once listening). */
  address: string | null = null;
  /** Nexus accepted this sled's registration. */
  registered = false;

  constructor(private readonly options: SimSledAgentOptions) {
    const { log, nexus, notifier, mode, autoDelayMs } = options;
    this.id = options.id;
    this.storage = options.storage;
    this.services = new SimServices(log.child({ component: 'services' }));
    this.instances = new SimCollection({
      kind: 'instance', mode, autoDelayMs, log,
      notify: (id, state) => notifier.push(`instance:${id}`, `instance gen ${state.gen}`, () => nexus.instancePut(id, state)),
    }, (_id, initial) => new SimInstance(initial));
    this.disks = new SimCollection({
      kind: 'disk', mode, autoDelayMs, log,
      notify: (id, state) => notifier.push(`disk:${id}`, `disk gen ${state.gen}`, () => nexus.diskPut(id, state)),
    }, (_id, initial) => new SimDisk(initial));
  }

  /** `initial.runtime` is used only for an instance this sled has not seen; `migrate` is ignored, as in the original sim. */
  instanceEnsure(id: string, initial: InstanceHardware, target: InstanceRuntimeStateRequested): InstanceRuntimeState {
    return this.instances.ensure(id, initial.runtime, target);
  }

  /** One simulated step; resolves once Nexus has the state it reports (at most POKE_REPORT_WAIT_MS). */
  async instancePoke(id: string): Promise<void> {
    await this.#reported(this.instances.poke(id), `instance ${id}`);
  }

  diskEnsure(id: string, initial: DiskRuntimeState, target: DiskStateRequested): DiskRuntimeState {
    return this.disks.ensure(id, initial, target);
  }

  async diskPoke(id: string): Promise<void> {
    await this.#reported(this.disks.poke(id), `disk ${id}`);
  }

  /**
   * Nexus's tests poke, then read the state from Nexus at once, as the original's poke answers
   * only after its notify; with Nexus down the report keeps being retried, but the poke does
   * not wait for it past the bound.
   */
  async #reported(outcome: Promise<unknown>, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), POKE_REPORT_WAIT_MS); });
    const result = await Promise.race([outcome, late]);
    clearTimeout(timer);
    if (result === 'late') this.options.log.warn({ object: what, waited_ms: POKE_REPORT_WAIT_MS }, 'poke answered before Nexus took the state it reports; still retrying');
  }

  servicesEnsure(services: ServiceRequest[]): void {
    this.services.ensure(services);
  }

  filesystemEnsure(body: DatasetEnsureBody): void {
    datasetAddress(body); // its addresses checked as the original's serde did; the sim keeps the text
    this.storage.ensureDataset(body.zpool_id, body.dataset_kind, body.address, this.options.nexus, this.options.notifier);
  }

  firewallRulesEnsure(vpcId: string, vni: number | undefined, rules: VpcFirewallRule[]): void {
    this.networking.firewallRulesEnsure(vpcId, vni, rules);
  }

  setV2P(interfaceId: string, mapping: SetVirtualNetworkInterfaceHost): void {
    this.networking.setV2P(interfaceId, mapping);
  }

  deleteV2P(interfaceId: string, mapping: SetVirtualNetworkInterfaceHost): void {
    this.networking.deleteV2P(interfaceId, mapping);
  }

  listV2P(): V2pMapping[] {
    return this.networking.listV2P();
  }

  /** Objects with a state Nexus has not accepted yet. */
  get nexusQueue(): number {
    return this.options.notifier.backlog;
  }

  /** GET /instances/{id}; 404 for an id this sled does not have. */
  instanceView(id: string): InstanceView {
    const instance = this.instances.get(id);
    if (instance === undefined) throw objectNotFound(`no instance with id ${id} on this sled`);
    return { id, runtime: instance.current, desired: instance.desired };
  }

  instanceViews(): InstanceView[] {
    return [...this.instances.entries()].map(([id, i]) => ({ id, runtime: i.current, desired: i.desired }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** GET /inventory: the simulated sled has no host, so no zones, VNICs or ports to show. */
  inventory(): SledInventory {
    const pool = (id: string) => `oxp_${id}`;
    return {
      sled_id: this.id,
      agent: 'simulated',
      version: VERSION,
      addresses: { api: this.address ?? '(not listening)', underlay: null, nexus: this.options.nexusAddress },
      sim_mode: this.options.mode,
      zpools: this.storage.zpools.map((z) => ({
        id: z.id, name: pool(z.id), found: true, size: z.size, allocated: null, free: null, health: null,
      })),
      datasets: [
        ...this.storage.zpools.map((z) => ({ id: z.dataset.id, zpool_id: z.id, kind: 'crucible', address: z.dataset.address })),
        ...this.storage.requested.map((d) => ({ id: d.id, zpool_id: d.zpoolId, kind: d.kind.type, address: d.address })),
      ],
      instances: this.instanceViews(),
      services: this.services.list().map((s) => ({ name: s.name, addresses: s.addresses, gz_addresses: s.gz_addresses ?? [] })),
    };
  }

  async updateArtifact(artifact: UpdateArtifact): Promise<void> {
    await downloadArtifact(artifact, this.options.nexus, this.options.artifactDir, this.options.log);
  }

  close(): void {
    this.instances.close();
    this.disks.close();
  }
}
