// The Propolis farm (src/sim/propolis-farm.ts): a sim host's Propolis servers in one child
// process (propolis: 'process'), reached over real HTTP, their VMs persisted and their drawn
// latencies recorded by the parent, and a child that never outlives its parent, not even one
// killed with SIGKILL.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSocketAddr, type SocketAddr } from '../src/common/address.js';
import * as cmd from '../src/host/commands.js';
import { PropolisClient, PropolisError, type InstanceEnsureRequest } from '../src/propolis-client.js';
import type { SimHost } from '../src/sim/host.js';
import { PropolisFarm } from '../src/sim/propolis-farm.js';
import { alive, gone, withParentScript } from './support/processes.js';
import { simHostsPerTest } from './support/sim-hosts.js';
import { monitorUntil } from './support/propolis-monitor.js';

const NIL = '00000000-0000-0000-0000-000000000000';
const REPO = join(import.meta.dirname, '..');
/** Generous: a child started through tsx compiles its modules first, on a shared, busy machine. */
const PROCESS_MS = 60_000;

const { openHost } = simHostsPerTest('sim-propolis-farm-', { propolis: 'process' });
const clients: PropolisClient[] = [];
const farms: PropolisFarm[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.destroy();
  for (const f of farms.splice(0)) await f.close();
});

/** A propolis-server zone running, with the address the agent gives Propolis, the instance enabled and online. */
async function runningPropolis(host: SimHost, zone: string, vnic: string, ip: string): Promise<{ fmri: string; addr: string }> {
  await host.links.createVnic({ name: vnic, link: 'stub0' });
  await host.zones.configure({ name: zone, brand: 'omicron1', zonepath: `/zone/${zone}`, autoboot: false, nets: [{ physical: vnic }], devices: [], datasets: [] });
  await host.zones.install(zone, cmd.zoneImage('propolis-server'));
  await host.zones.boot(zone);
  await host.events.waitForService(zone, cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 5000 });
  const fmri = `${cmd.PROPOLIS_SERVICE}:vm-1`;
  const addr = `[${ip}]:12400`;
  await host.zones.exec(zone, cmd.ipadmCreateLinkLocal(vnic));
  await host.zones.exec(zone, cmd.ipadmCreateStatic(`${vnic}/${cmd.ADDROBJ_STATIC6}`, `${ip}/64`));
  await host.zones.exec(zone, cmd.svccfgAddInstance(cmd.PROPOLIS_SERVICE, 'vm-1'));
  await host.zones.exec(zone, cmd.svccfgAddPg(fmri, 'config', 'astring'));
  await host.zones.exec(zone, cmd.svccfgSetProp(fmri, 'config/server_addr', addr));
  await host.zones.exec(zone, cmd.svccfgRefresh(fmri));
  await host.zones.exec(zone, cmd.svcadmEnable(fmri));
  await host.events.waitForService(zone, fmri, ['online'], { timeoutMs: PROCESS_MS });
  return { fmri, addr };
}

function clientFor(address: SocketAddr): PropolisClient {
  const c = new PropolisClient(address);
  clients.push(c);
  return c;
}

function ensureRequest(): InstanceEnsureRequest {
  const id = randomUUID();
  return {
    properties: { id, name: 'vm0', description: 'farm test', image_id: NIL, bootrom_id: NIL, memory: 512, vcpus: 1 },
    nics: [],
    disks: [],
    migrate: null,
    cloud_init_bytes: null,
  };
}

describe("a sim host's Propolis servers in the farm process (propolis: 'process')", () => {
  it('a VM runs over HTTP in another process, its state is persisted, and closing the host ends the child', async () => {
    const host = await openHost({ latencies: { vmBoot: 20, vmStep: 5 }, jitter: 0.2, seed: 7, recordLatencies: true });
    const zone = 'oxz_propolis-server_f1';
    const { fmri, addr } = await runningPropolis(host, zone, 'oxControlInstance0', 'fd00:1122:3344:101::10');
    const pid = host.propolisPid(zone)!;
    expect(pid).toBeTypeOf('number');
    expect(pid).not.toBe(process.pid);
    expect(alive(pid)).toBe(true);
    // Its SimPropolis is not in this process: only the documented hooks reach it.
    expect(host.propolisFor(zone)).toBeUndefined();

    const client = clientFor(await host.reachable(zone, parseSocketAddr(addr)));
    await client.ensure(ensureRequest());
    await client.putState('Run');
    expect(await monitorUntil(client, 'Running')).toEqual({ gen: 2, state: 'Running' });

    // The change messages came back: the VM is persisted, and the boot latency the child drew
    // (vmBoot 20 ms ± 20 %) is recorded for the zone's modelled time.
    await host.flush();
    const state = JSON.parse(await readFile(host.stateFile, 'utf8')) as { zones: Array<{ spec: { name: string }; vms: Record<string, { state: string; gen: number }> }> };
    expect(state.zones.find((z) => z.spec.name === zone)?.vms[fmri]).toMatchObject({ state: 'Running', gen: 2 });
    const boot = host.modelled(zone).filter((d) => d.step === 'vmBoot');
    expect(boot).toHaveLength(1);
    expect(boot[0]!.op).toBe('vm Starting -> next');
    expect(boot[0]!.ms).toBeGreaterThanOrEqual(16);
    expect(boot[0]!.ms).toBeLessThanOrEqual(24);

    await host.close();
    await gone(pid, PROCESS_MS);
    const err = await client.get().then(() => null, (e: unknown) => e);
    expect((err as PropolisError).code).toBe('UNREACHABLE');

    // A new host on the same directory brings the server back, with its VM, in a new farm.
    const again = await openHost({ stateDir: join(host.stateFile, '..') });
    const revivedPid = again.propolisPid(zone)!;
    expect(revivedPid).not.toBe(pid);
    expect(revivedPid).not.toBe(process.pid);
    const revived = clientFor(await again.reachable(zone, parseSocketAddr(addr)));
    expect(await revived.stateMonitor(0)).toEqual({ gen: 2, state: 'Running' });
  }, PROCESS_MS * 3);

  it('crashPropolis: the server in the farm stops answering, its instance goes to maintenance, the farm stays', async () => {
    const host = await openHost();
    const zone = 'oxz_propolis-server_f2';
    const { fmri, addr } = await runningPropolis(host, zone, 'oxControlInstance1', 'fd00::21');
    const pid = host.propolisPid(zone)!;
    const client = clientFor(await host.reachable(zone, parseSocketAddr(addr)));
    await client.ensure(ensureRequest());
    await host.crashPropolis(zone);
    const err = await client.get().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PropolisError);
    expect((err as PropolisError).code).toBe('UNREACHABLE');
    await expect(host.events.waitForService(zone, fmri, ['maintenance'], { timeoutMs: 0 })).resolves.toBe('maintenance');
    expect(host.propolisPid(zone)).toBeUndefined();
    await expect(host.crashPropolis(zone)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    // One server crashed, not the process that serves them all.
    expect(alive(pid)).toBe(true);
  }, PROCESS_MS * 2);

  it('a farm that dies takes its instances to maintenance, and the next Propolis gets a new farm', async () => {
    const host = await openHost();
    const zone = 'oxz_propolis-server_f4';
    const { fmri } = await runningPropolis(host, zone, 'oxControlInstance4', 'fd00::41');
    const pid = host.propolisPid(zone)!;
    process.kill(pid, 'SIGKILL');
    await expect(host.events.waitForService(zone, fmri, ['maintenance'], { timeoutMs: PROCESS_MS })).resolves.toBe('maintenance');
    expect(host.propolisPid(zone)).toBeUndefined();
    const other = 'oxz_propolis-server_f5';
    await runningPropolis(host, other, 'oxControlInstance5', 'fd00::51');
    const again = host.propolisPid(other)!;
    expect(again).not.toBe(pid);
    expect(alive(again)).toBe(true);
  }, PROCESS_MS * 3);

  it('prestartPropolis puts the spares in the farm, and the next fresh VM takes one', async () => {
    const host = await openHost();
    await host.prestartPropolis(2);
    const zone = 'oxz_propolis-server_f3';
    const { addr } = await runningPropolis(host, zone, 'oxControlInstance2', 'fd00::31');
    expect(host.propolisPid(zone)).not.toBe(process.pid);
    const client = clientFor(await host.reachable(zone, parseSocketAddr(addr)));
    await client.ensure(ensureRequest());
    await client.putState('Run');
    expect((await monitorUntil(client, 'Running')).state).toBe('Running');
  }, PROCESS_MS * 2);
});

describe('PropolisFarm without a host', () => {
  it('starts standalone servers that answer from the farm, and close() ends it', async () => {
    const farm = await PropolisFarm.start();
    farms.push(farm);
    const changes: string[] = [];
    const server = await farm.startServer({ latencies: { vmBoot: 5, vmStep: 1 }, warm: true, onChange: (s) => changes.push(s.state) });
    expect(server.pid).toBe(farm.pid);
    const client = clientFor(server.address);
    await client.ensure(ensureRequest());
    await client.putState('Run');
    await monitorUntil(client, 'Running');
    expect(changes).toEqual(['Creating', 'Starting', 'Running']);
    expect(server.snapshot()).toMatchObject({ state: 'Running', gen: 2 });
    // Signals to the agent's process group (^C, a stop) are the agent's: the farm waits to be closed.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.kill(farm.pid, signal);
    await new Promise((r) => setTimeout(r, 500));
    expect(await client.stateMonitor(0)).toEqual({ gen: 2, state: 'Running' });
    await server.close();
    expect(server.closed).toBe(true);
    await farm.close();
    await gone(farm.pid, PROCESS_MS);
    await expect(farm.startServer()).rejects.toThrow(/closed/);
  }, PROCESS_MS * 2);

  it('the farm exits by itself when its parent is killed with SIGKILL', async () => {
    // The parent: a farm with one server, which prints the farm's pid and the server's address.
    const farmModule = pathToFileURL(join(REPO, 'src', 'sim', 'propolis-farm.ts')).href;
    const script = [
      `const { PropolisFarm } = await import(${JSON.stringify(farmModule)});`,
      'const farm = await PropolisFarm.start();',
      'const server = await farm.startServer();',
      'console.log(JSON.stringify({ farm: farm.pid, address: server.address }));',
      'setInterval(() => {}, 60_000);',
    ];
    await withParentScript<{ farm: number; address: SocketAddr }>(script, async ({ farm, address }, parent) => {
      expect(farm).not.toBe(parent.pid);
      expect(alive(farm)).toBe(true);
      const res = await fetch(`http://${address.host}:${address.port}/instance`);
      expect(res.status).toBe(500); // answered: no instance yet
      await parent.kill();
      await gone(farm, PROCESS_MS);
    });
  }, PROCESS_MS * 3);
});

// Not a check: what one Propolis costs the agent's process in each mode, printed, for the
// figures in the farm's commit. SIM_PROPOLIS_FARM_MEASURE=100 npx vitest run test/sim-propolis-farm.test.ts -t measure
describe.skipIf(process.env.SIM_PROPOLIS_FARM_MEASURE === undefined)('measure', () => {
  /**
   * In a fresh process per mode (so neither inherits the other's warmed-up code or heap), after
   * one server and VM to warm up: `count` servers started (warmed, as prestartPropolis does),
   * then each one's VM ensured, run and watched to Running by a PropolisClient here. CPU is this
   * process's user + system time; RSS is after a full GC, with the servers still up.
   */
  const script = `
    const url = (p) => new URL(p, ${JSON.stringify(pathToFileURL(join(REPO, 'src') + '/').href)}).href;
    const { SimPropolis } = await import(url('sim/propolis.ts'));
    const { PropolisFarm } = await import(url('sim/propolis-farm.ts'));
    const { PropolisClient } = await import(url('propolis-client.ts'));
    const { formatSocketAddr } = await import(url('common/address.ts'));
    const [mode, count] = [process.argv[1], Number(process.argv[2])];
    const farm = mode === 'process' ? await PropolisFarm.start() : null;
    const start = async () => {
      if (farm) return farm.startServer({ warm: true });
      const server = await SimPropolis.start();
      await fetch('http://' + formatSocketAddr(server.address) + '/instance').then((r) => r.arrayBuffer(), () => {});
      return server;
    };
    const run = async (server) => {
      const client = new PropolisClient(server.address);
      const id = crypto.randomUUID();
      const nil = '00000000-0000-0000-0000-000000000000';
      await client.ensure({ properties: { id, name: 'vm', description: 'measure', image_id: nil, bootrom_id: nil, memory: 512, vcpus: 1 }, nics: [], disks: [], migrate: null, cloud_init_bytes: null });
      await client.putState('Run');
      for (let gen = 0; ;) { const r = await client.stateMonitor(gen); if (r.state === 'Running') break; gen = r.gen + 1; }
      await client.destroy();
    };
    const warm = await start();
    await run(warm);
    // The GC a sample forces is not counted: CPU is read before it, and again after it.
    const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };
    const sample = () => { const at = cpu(); globalThis.gc(); return { at, rss: process.memoryUsage().rss / 1024, after: cpu() }; };
    const before = sample();
    const servers = [];
    for (let i = 0; i < count; i++) servers.push(await start());
    const started = sample();
    await Promise.all(servers.map(run));
    const ran = sample();
    const childRss = farm ? Number(/VmRSS:\\s+(\\d+)/.exec((await import('node:fs')).readFileSync('/proc/' + farm.pid + '/status', 'utf8'))?.[1]) : null;
    console.log(JSON.stringify({ mode, count, start: { cpuMs: (started.at - before.after) / count, rssKiB: (started.rss - before.rss) / count }, startAndRun: { cpuMs: (started.at - before.after + ran.at - started.after) / count, rssKiB: (ran.rss - before.rss) / count }, farmRssKiB: childRss }));
    for (const s of [warm, ...servers]) await s.close();
    await farm?.close();
  `;

  const measure = async (mode: 'in-process' | 'process'): Promise<string> => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--expose-gc', '--input-type=module', '--eval', script, mode, process.env.SIM_PROPOLIS_FARM_MEASURE || '100'], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`the ${mode} measurement exited with code ${code}: ${out}`);
    return out.trim();
  };

  it('measure: the agent-process CPU and RSS per started Propolis, in-process vs process', async () => {
    for (const mode of ['in-process', 'process'] as const) process.stdout.write(`${await measure(mode)}\n`);
  }, 600_000);
});
