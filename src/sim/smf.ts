// SMF in a simulated zone: services and their instances with property groups, enabled
// persistently or for the zone's life (svcadm -t), and the restarter that takes an enabled
// instance offline -> online after its modelled start-up, once the network milestone is online.
// A propolis-server instance's start runs a simulated Propolis (propolis.ts) on a loopback port,
// with its VM as last persisted, so a restarted agent finds its VMs where they were: in this
// process, or (propolis: 'process') in the host's Propolis farm, one child process for all of
// them (propolis-farm.ts). What the zone's svccfg and svcadm do with it is in inzone.ts; waits on
// an instance's state in events.ts.
import type { LevelWithSilent } from 'pino';
import type { SmfState } from '../host/index.js';
import { hostError } from '../host/index.js';
import { NETWORK_MILESTONE, PROPOLIS_SERVICE, zoneImage } from '../host/commands.js';
import { parseSocketAddr, type SocketAddr } from '../common/address.js';
import { anySignal } from '../common/signals.js';
import type { SimMachine } from './machine.js';
import { PropolisFarm } from './propolis-farm.js';
import { SimPropolis, type SimPropolisSnapshot } from './propolis.js';
import type { KernelRuntime, ZoneRecord } from './zones.js';

export interface SmfPg {
  type: string;
  props: Record<string, string>;
}

export interface SmfInstance {
  /** general/enabled (persistent). */
  enabled: boolean;
  /** svcadm -t's override until the zone halts; null when none. */
  temporary: boolean | null;
  /** restarter/state; null while the zone is not running. */
  state: SmfState | null;
  pgs: Record<string, SmfPg>;
}

export interface SmfService {
  pgs: Record<string, SmfPg>;
  instances: Record<string, SmfInstance>;
}

/** What SimSmf uses of a Propolis server: a SimPropolis, or a FarmPropolis in the farm. */
export interface PropolisServer {
  /** Where it really listens (reachable() maps the zone's address to it). */
  readonly address: SocketAddr;
  close(): Promise<void>;
  crash(): Promise<void>;
}

/** A propolis-server instance's process (not persisted: its VM is, in ZoneRecord.vms). */
export interface RunningPropolis {
  server: PropolisServer;
  /** The process that serves it: this one, or the Propolis farm's. */
  pid: number;
  addr: SocketAddr;
  /** False once the server is being stopped: its VM changes are no longer recorded. */
  live: boolean;
}

/** What a simulated Propolis calls back into its host with. */
interface PropolisHandlers {
  /** The latency its VM drew for the next step, after the onChange of the change that scheduled it. */
  drawn(ms: number): void;
  onChange(snapshot: SimPropolisSnapshot): void;
  /** Its process died under it (the farm's, in process mode). */
  gone(): void;
}

export interface SimSmfOptions {
  /** Where Propolis servers run: here, or all in one child process (SimHostOptions.propolis). Default 'in-process'. */
  propolis?: 'in-process' | 'process';
  /** The host's jitter fraction, which a farm server applies to its VM's steps itself. Default 0. */
  jitter?: number;
  /** A seed from the host's generator, for each farm server's own. Default 0. */
  seed?: () => number;
}

export function splitFmri(fmri: string): { service: string; instance: string | null } {
  const i = fmri.lastIndexOf(':');
  if (i > 'svc:'.length) return { service: fmri.slice(0, i), instance: fmri.slice(i + 1) };
  return { service: fmri, instance: null };
}


/** The services a zone installed from `image` comes with. */
export function imageServices(image: string): Record<string, SmfService> {
  const milestone = splitFmri(NETWORK_MILESTONE);
  const services: Record<string, SmfService> = {
    [milestone.service]: { pgs: {}, instances: { [milestone.instance!]: { enabled: true, temporary: null, state: null, pgs: {} } } },
  };
  if (image === zoneImage('propolis-server')) services[PROPOLIS_SERVICE] = { pgs: {}, instances: {} };
  return services;
}

/** Lines kept of an instance's restarter log (svc.startd rotates its logs; this only bounds memory). */
const LOG_LINES_KEPT = 1000;

/**
 * The restarter log line for a change from `old` to `state` (the table in src/host/commands.ts,
 * which the fake illumos's common.c shares); null for none: a first state of "disabled" is an
 * instance just defined, not one stopped.
 */
export function restarterLogText(old: SmfState | null, state: SmfState | null): string | null {
  switch (state) {
    case 'offline': return 'Executing start method.';
    case 'online': return 'Method "start" exited with status 0.';
    case 'degraded': return 'Service degraded.';
    case 'maintenance': return 'Service failed: now in maintenance.';
    case 'disabled': return old === null ? null : 'Stopping because service disabled.';
    default: return null;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** svc.startd's time stamp, strftime's "%b %e %H:%M:%S" in local time. */
function restarterTime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export class SimSmf {
  /** Propolis servers started ahead (prestartPropolis), each taken by the next fresh VM. */
  private readonly spares: Array<{ server: PropolisServer; pid: number; bind(handlers: PropolisHandlers): void }> = [];
  /** The Propolis farm (propolis: 'process'), forked at the first server; null until then and after it ends. */
  private farmStart: Promise<PropolisFarm> | null = null;
  /**
   * Each instance's restarter log (/var/svc/log/...), by zone and FMRI, with the state its last
   * line was for. In memory only: a restarted simulated host starts the logs afresh.
   */
  private readonly logs = new Map<string, Map<string, { last: SmfState | null; lines: string[] }>>();

  constructor(
    private readonly m: SimMachine,
    private readonly options: SimSmfOptions = {},
  ) {}

  /**
   * Writes a log line for each instance of the zone whose state changed since the last call.
   * Called where the zone's waits are re-checked (SimZoneEvents.notify): every state change is
   * followed by that, as a waiter must see it, so this is the one place that sees them all. The
   * logs go with the zone's root: at uninstall, or when the zone is deleted.
   */
  logChanges(zone: string, rec: ZoneRecord | undefined): void {
    if (rec === undefined || rec.state === 'configured' || rec.state === 'incomplete') {
      this.logs.delete(zone);
      return;
    }
    let logs = this.logs.get(zone);
    for (const [svc, service] of Object.entries(rec.services)) {
      for (const [name, inst] of Object.entries(service.instances)) {
        const fmri = `${svc}:${name}`;
        const log = logs?.get(fmri);
        const last = log?.last ?? null;
        if (inst.state === last) continue;
        const text = restarterLogText(last, inst.state);
        if (logs === undefined) this.logs.set(zone, (logs = new Map()));
        const entry = log ?? { last: null, lines: [] };
        logs.set(fmri, entry);
        entry.last = inst.state;
        if (text === null) continue;
        entry.lines.push(`[ ${restarterTime(new Date())} ${text} ]`);
        if (entry.lines.length > LOG_LINES_KEPT) entry.lines.splice(0, entry.lines.length - LOG_LINES_KEPT);
      }
    }
  }

  /** The instance's restarter log lines, oldest first; undefined if it has none. */
  logLines(zone: string, fmri: string): readonly string[] | undefined {
    const lines = this.logs.get(zone)?.get(fmri)?.lines;
    return lines === undefined || lines.length === 0 ? undefined : lines;
  }

  instance(rec: ZoneRecord, fmri: string): SmfInstance | undefined {
    const { service, instance } = splitFmri(fmri);
    if (instance === null) return undefined;
    return rec.services[service]?.instances[instance];
  }

  networkOnline(rec: ZoneRecord): boolean {
    return this.instance(rec, NETWORK_MILESTONE)?.state === 'online';
  }

  /** An enabled instance goes offline, then online after its start-up (after the network milestone). */
  startInstance(rec: ZoneRecord, rt: KernelRuntime, svc: string, name: string): void {
    const inst = rec.services[svc]?.instances[name];
    if (inst === undefined) return;
    const fmri = `${svc}:${name}`;
    rt.starting.get(fmri)?.abort();
    const ctl = new AbortController();
    rt.starting.set(fmri, ctl);
    inst.state = 'offline';
    const milestone = fmri === NETWORK_MILESTONE;
    const propolis = svc === PROPOLIS_SERVICE;
    const { signal, dispose } = anySignal([rt.ctl.signal, ctl.signal]);
    // Drawn as the start begins (after the network milestone for a service enabled before it, as
    // one a site profile enables at boot), so a recorded draw lies where its time is spent.
    const draw = (): number => this.m.lat(milestone ? 'network' : propolis ? 'propolisStart' : 'serviceStart', rec.spec.name,
      milestone ? 'network milestone' : propolis ? 'propolis start' : `service start ${fmri}`);
    const online = (): void => {
      rt.starting.delete(fmri);
      if (milestone) {
        const deferred = rt.afterNetwork.splice(0);
        for (const fn of deferred) fn();
      }
      this.m.changed(rec.spec.name);
    };
    const go = (): void => {
      const ms = draw();
      if (propolis) {
        // The server's own start-up counts towards the modelled latency.
        this.m.after(0, signal, async () => {
          try {
            await this.startPropolis(rec, rt, fmri, signal, ms);
            if (!signal.aborted) online();
          } finally {
            dispose();
          }
        });
        return;
      }
      this.m.after(ms, signal, () => {
        dispose();
        inst.state = 'online';
        online();
      });
    };
    if (milestone || this.networkOnline(rec)) go();
    else rt.afterNetwork.push(go);
  }

  /**
   * A Propolis server for the instance (with its persisted VM, if any), online `totalMs` after
   * this was called; maintenance instead without a usable config/server_addr.
   */
  async startPropolis(rec: ZoneRecord, rt: KernelRuntime, fmri: string, signal?: AbortSignal, totalMs = 0): Promise<void> {
    const begun = performance.now();
    const inst = this.instance(rec, fmri);
    if (inst === undefined) return;
    let addr: SocketAddr;
    try {
      addr = parseSocketAddr(inst.pgs.config?.props.server_addr ?? '');
    } catch (err) {
      this.m.log.warn({ err, zone: rec.spec.name, fmri }, 'propolis-server has no usable config/server_addr');
      await this.m.sleep(totalMs - (performance.now() - begun), ...(signal ? [signal] : [])).catch(() => {});
      if (!signal?.aborted) inst.state = 'maintenance';
      return;
    }
    const entry: RunningPropolis = { server: undefined as unknown as PropolisServer, pid: process.pid, addr, live: true };
    // The VM's state as the server last reported it: which step its next latency is for.
    let vmState = rec.vms[fmri]?.state ?? 'Creating';
    const handlers: PropolisHandlers = {
      drawn: (ms) => this.m.recordDrawn(rec.spec.name, vmState === 'Starting' ? 'vmBoot' : 'vmStep', `vm ${vmState} -> next`, ms),
      onChange: (snapshot) => {
        vmState = snapshot.state;
        if (!entry.live) return;
        rec.vms[fmri] = snapshot;
        void this.m.persist().catch(() => {});
      },
      // The farm died: to SMF, as crashPropolis, this instance's process exited.
      gone: () => {
        if (!entry.live) return;
        this.exited(rec, rt, fmri, entry);
        this.m.changed(rec.spec.name);
      },
    };
    const spare = rec.vms[fmri] === undefined ? this.spares.shift() : undefined;
    spare?.bind(handlers);
    let started: { server: PropolisServer; pid: number };
    try {
      started = spare ?? await this.launch(() => handlers, { zone: rec.spec.name, propolis: fmri }, rec.vms[fmri]);
    } catch (err) {
      // No process to run it (the farm could not be forked, or died as it started): SMF's answer
      // is maintenance, which the agent's wait sees, rather than an instance offline for good.
      this.m.log.error({ err, zone: rec.spec.name, fmri }, 'the simulated Propolis could not be started');
      this.exited(rec, rt, fmri, entry);
      this.m.changed(rec.spec.name);
      return;
    }
    entry.server = started.server;
    entry.pid = started.pid;
    const startup = performance.now() - begun;
    // A server slower to start than the modelled latency: that extra is the sim's time too.
    if (startup > totalMs && totalMs > 0) this.m.recordDrawn(rec.spec.name, 'propolisStart', 'propolis start (server start-up over the drawn latency)', startup - totalMs);
    const stillWanted = await this.m.sleep(totalMs - (performance.now() - begun), rt.ctl.signal, ...(signal ? [signal] : [])).then(
      () => true,
      () => false,
    );
    if (!stillWanted) {
      entry.live = false;
      await entry.server.close();
      return;
    }
    // Its farm died while it started: gone() has put the instance in maintenance.
    if (!entry.live) return;
    rt.propolis.set(fmri, entry);
    inst.state = 'online';
  }

  /**
   * Starts a server, here or in the farm, whose VM reports to `handlers()` (null: not yet bound,
   * a spare); `warm`: see SimPropolisOptions.warm.
   */
  private async launch(
    handlers: () => PropolisHandlers | null,
    log: Record<string, string>,
    initial: SimPropolisSnapshot | undefined,
    warm = false,
  ): Promise<{ server: PropolisServer; pid: number }> {
    const latencies = { vmBoot: this.m.latencies.vmBoot, vmStep: this.m.latencies.vmStep };
    if (this.options.propolis === 'process') {
      const farm = await this.farm();
      const server = await farm.startServer({
        latencies,
        ...(initial ? { initial } : {}),
        jitter: this.options.jitter ?? 0,
        seed: this.options.seed?.() ?? 0,
        warm,
        log,
        onChange: (snapshot) => handlers()?.onChange(snapshot),
        onDrawn: (ms) => handlers()?.drawn(ms),
        onGone: () => {
          const spare = this.spares.findIndex((s) => s.server === server);
          if (spare >= 0) this.spares.splice(spare, 1);
          else handlers()?.gone();
        },
      });
      return { server, pid: farm.pid };
    }
    const server = await SimPropolis.start({
      warm,
      logger: this.m.log.child(log),
      latencies,
      jitter: (ms) => {
        const drawn = this.m.jittered(ms);
        handlers()?.drawn(drawn);
        return drawn;
      },
      onChange: (snapshot) => handlers()?.onChange(snapshot),
      ...(initial ? { initial } : {}),
    });
    return { server, pid: process.pid };
  }

  /** The Propolis farm, forked on first use and again after it died; ECANCELED once the host is closed. */
  private farm(): Promise<PropolisFarm> {
    if (this.m.closed.aborted) return Promise.reject(this.m.closed.reason);
    this.farmStart ??= PropolisFarm.start({
      logLevel: this.m.log.level as LevelWithSilent,
      onExit: (why) => {
        this.m.log.error({ why }, 'the simulated Propolis farm died; its Propolis instances go to maintenance');
        this.farmStart = null;
      },
    }).catch((err: unknown) => {
      this.farmStart = null;
      throw err;
    });
    return this.farmStart;
  }

  async stopPropolis(rec: ZoneRecord, rt: KernelRuntime, fmri: string): Promise<void> {
    const p = rt.propolis.get(fmri);
    delete rec.vms[fmri];
    if (p === undefined) return;
    p.live = false;
    rt.propolis.delete(fmri);
    await p.server.close();
  }

  /** After a restart of the agent: services of a running zone are as they were, Propolis servers come back. */
  async reviveServices(rec: ZoneRecord, rt: KernelRuntime): Promise<void> {
    for (const [svc, service] of Object.entries(rec.services)) {
      for (const [name, inst] of Object.entries(service.instances)) {
        const fmri = `${svc}:${name}`;
        if (!(inst.temporary ?? inst.enabled)) {
          inst.state = 'disabled';
        } else if (inst.state === 'online' && svc === PROPOLIS_SERVICE) {
          await this.startPropolis(rec, rt, fmri);
        } else if (inst.state !== 'online' && inst.state !== 'maintenance') {
          this.startInstance(rec, rt, svc, name);
        }
      }
    }
  }

  /** Stops every Propolis of a zone leaving the kernel; their VMs are not recorded any more. */
  async stopAllPropolis(rt: KernelRuntime): Promise<void> {
    const stops = [...rt.propolis.values()].map((p) => {
      p.live = false;
      return p.server.close();
    });
    rt.propolis.clear();
    await Promise.allSettled(stops);
  }

  /** close(): every Propolis stops, the spares too, then the farm; the VMs stay as last recorded. */
  async closeServers(runtimes: Iterable<KernelRuntime>): Promise<void> {
    const stops = [...runtimes].map((rt) => this.stopAllPropolis(rt));
    for (const spare of this.spares.splice(0)) stops.push(spare.server.close());
    await Promise.allSettled(stops);
    const farm = this.farmStart;
    this.farmStart = null;
    await farm?.then((f) => f.close(), () => {});
  }

  /** See SimHost.prestartPropolis. */
  async prestartPropolis(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      let handlers: PropolisHandlers | null = null;
      const { server, pid } = await this.launch(() => handlers, { component: 'sim-propolis' }, undefined, true);
      this.spares.push({ server, pid, bind: (h) => { handlers = h; } });
    }
  }

  /** See SimHost.crashPropolis. */
  async crashPropolis(zone: string, rec: ZoneRecord | undefined, rt: KernelRuntime | undefined, fmri?: string): Promise<void> {
    const key = fmri ?? [...(rt?.propolis.keys() ?? [])][0];
    const p = key === undefined ? undefined : rt?.propolis.get(key);
    if (rt === undefined || rec === undefined || key === undefined || p === undefined) {
      throw hostError('ENOTFOUND', `no simulated Propolis runs in zone ${zone}${fmri ? ` for ${fmri}` : ''}`);
    }
    // Out of reach first, so nothing it does while it dies is recorded or reached.
    p.live = false;
    rt.propolis.delete(key);
    await p.server.crash();
    this.exited(rec, rt, key, p);
    this.m.notify(zone);
    await this.m.persist();
  }

  /** A Propolis process ended under its instance (crashed, its farm died, never started): maintenance, VM gone. */
  private exited(rec: ZoneRecord, rt: KernelRuntime, fmri: string, entry: RunningPropolis): void {
    entry.live = false;
    if (rt.propolis.get(fmri) === entry) rt.propolis.delete(fmri);
    delete rec.vms[fmri];
    const inst = this.instance(rec, fmri);
    if (inst) inst.state = 'maintenance';
  }
}
