// The simulated host (src/sim/host.ts): zones and their events, waits, the in-zone command set,
// SMF and simulated Propolis servers, links, datasets, the latency model, and persistence across
// a new SimHost on the same directory.
import { randomUUID } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSocketAddr } from '../src/common/address.js';
import * as cmd from '../src/host/commands.js';
import { isHostError, type ZoneSpec, type ZoneStateEvent } from '../src/host/index.js';
import { PropolisClient, PropolisError, type InstanceEnsureRequest } from '../src/propolis-client.js';
import { REALISTIC_LATENCIES, SimHost, SIM_HOST_STATE_FILE, ZERO_LATENCIES } from '../src/sim/host.js';
import { simHostsPerTest } from './support/sim-hosts.js';
import { monitorUntil } from './support/propolis-monitor.js';

const NIL = '00000000-0000-0000-0000-000000000000';
const PROPOLIS_IMAGE = cmd.zoneImage('propolis-server');
const POOL = 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b';

const { tempDir, openHost } = simHostsPerTest('sim-host-');
const clients: PropolisClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.destroy();
});

function spec(name: string, nets: string[] = []): ZoneSpec {
  return { name, brand: 'omicron1', zonepath: `/zone/${name}`, autoboot: false, nets: nets.map((physical) => ({ physical })), devices: [], datasets: [] };
}

/** A zone configured, installed and booted, with its network milestone online. */
async function runningZone(host: SimHost, name: string, options: { image?: string; vnic?: string } = {}): Promise<void> {
  const nets: string[] = [];
  if (options.vnic !== undefined) {
    await host.links.createVnic({ name: options.vnic, link: 'stub0' });
    nets.push(options.vnic);
  }
  await host.zones.configure(spec(name, nets));
  await host.zones.install(name, options.image ?? '/opt/oxide/test.tar.gz');
  await host.zones.boot(name);
  await host.events.waitForService(name, cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 5000 });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => null, (e: unknown) => e);
  if (!isHostError(err)) throw new Error(`expected a HostError, got ${String(err)}`);
  return err.code;
}

async function errorOf(p: Promise<unknown>): Promise<Error & { code: string }> {
  const err = await p.then(() => null, (e: unknown) => e);
  if (!isHostError(err)) throw new Error(`expected a HostError, got ${String(err)}`);
  return err;
}

function ensureRequest(id: string): InstanceEnsureRequest {
  return {
    properties: { id, name: 'vm0', description: 'Test description', image_id: NIL, bootrom_id: NIL, memory: 512, vcpus: 1 },
    nics: [],
    disks: [],
    migrate: null,
    cloud_init_bytes: null,
  };
}

/** The agent's steps 4-5 (reference §7) for a Propolis zone: address, SMF instance, enable. */
async function startPropolis(host: SimHost, zone: string, vnic: string, ip: string): Promise<{ fmri: string; addr: string }> {
  const fmri = `${cmd.PROPOLIS_SERVICE}:vm-${zone.slice(-4)}`;
  const addr = `[${ip}]:12400`;
  await host.zones.exec(zone, cmd.ipadmCreateLinkLocal(vnic));
  await host.zones.exec(zone, cmd.ipadmCreateStatic(`${vnic}/${cmd.ADDROBJ_STATIC6}`, `${ip}/64`));
  await host.zones.exec(zone, cmd.svccfgAddInstance(cmd.PROPOLIS_SERVICE, `vm-${zone.slice(-4)}`));
  await host.zones.exec(zone, cmd.svccfgAddPg(fmri, 'config', 'astring'));
  await host.zones.exec(zone, cmd.svccfgSetProp(fmri, 'config/server_addr', addr));
  await host.zones.exec(zone, cmd.svccfgRefresh(fmri));
  await host.zones.exec(zone, cmd.svcadmEnable(fmri));
  return { fmri, addr };
}

async function clientFor(host: SimHost, zone: string, addr: string): Promise<PropolisClient> {
  const c = new PropolisClient(await host.reachable(zone, parseSocketAddr(addr)));
  clients.push(c);
  return c;
}

describe('zones: lifecycle, events and errors', () => {
  it('configure -> install -> boot -> halt -> uninstall -> delete, with the kernel events in order', async () => {
    const host = await openHost();
    const events: ZoneStateEvent[] = [];
    const unsubscribe = host.events.subscribe((e) => events.push(e));
    await host.zones.configure(spec('oxz_a'));
    expect(await host.zones.list()).toEqual([{ name: 'oxz_a', state: 'configured' }]);
    expect(await host.zones.config('oxz_a')).toEqual(spec('oxz_a'));
    await host.zones.install('oxz_a', '/opt/oxide/test.tar.gz');
    expect(await host.zones.list()).toEqual([{ name: 'oxz_a', state: 'installed' }]);
    expect(events).toEqual([]);
    await host.zones.boot('oxz_a');
    expect(await host.zones.list()).toEqual([{ name: 'oxz_a', state: 'running' }]);
    await host.zones.halt('oxz_a');
    expect(await host.zones.list()).toEqual([{ name: 'oxz_a', state: 'installed' }]);
    await host.zones.boot('oxz_a');
    await host.zones.halt('oxz_a');
    await host.zones.uninstall('oxz_a');
    expect(await host.zones.list()).toEqual([{ name: 'oxz_a', state: 'configured' }]);
    await host.zones.delete('oxz_a');
    expect(await host.zones.list()).toEqual([]);
    unsubscribe();

    const pairs = events.map((e) => `${e.oldstate}->${e.newstate}`);
    const boot = ['uninitialized->initialized', 'initialized->ready', 'ready->running'];
    const halt = ['running->shutting_down', 'shutting_down->uninitialized'];
    expect(pairs).toEqual([...boot, ...halt, ...boot, ...halt]);
    expect(new Set(events.map((e) => e.zonename))).toEqual(new Set(['oxz_a']));
    // One id per boot, a new one for the next boot; `when` never goes back.
    const ids = events.map((e) => e.zoneid);
    expect(new Set(ids.slice(0, 5)).size).toBe(1);
    expect(new Set(ids.slice(5)).size).toBe(1);
    expect(ids[5]).toBeGreaterThan(ids[0]!);
    for (let i = 1; i < events.length; i++) expect(events[i]!.when >= events[i - 1]!.when).toBe(true);
  });

  it('refuses operations in the wrong state with Z_BAD_ZONE_STATE, unknown zones with Z_NO_ZONE, taken names with Z_NAME_IN_USE', async () => {
    const host = await openHost();
    await host.zones.configure(spec('oxz_b'));
    expect(await codeOf(host.zones.configure(spec('oxz_b')))).toBe('Z_NAME_IN_USE');
    expect(await codeOf(host.zones.boot('oxz_b'))).toBe('Z_BAD_ZONE_STATE');
    expect(await codeOf(host.zones.uninstall('oxz_b'))).toBe('Z_BAD_ZONE_STATE');
    expect(await codeOf(host.zones.halt('oxz_b'))).toBe('Z_BAD_ZONE_STATE');
    await host.zones.install('oxz_b', '/opt/oxide/test.tar.gz');
    expect(await codeOf(host.zones.install('oxz_b', '/opt/oxide/test.tar.gz'))).toBe('Z_BAD_ZONE_STATE');
    expect(await codeOf(host.zones.delete('oxz_b'))).toBe('Z_BAD_ZONE_STATE');
    // Halting a zone that is not running succeeds and does nothing (zoneadm's "already halted").
    await host.zones.halt('oxz_b');
    await host.zones.boot('oxz_b');
    const err = await errorOf(host.zones.boot('oxz_b'));
    expect(err.code).toBe('Z_BAD_ZONE_STATE');
    expect(err.message).toContain('boot operation is invalid for running zones');
    expect(await codeOf(host.zones.uninstall('oxz_b'))).toBe('Z_BAD_ZONE_STATE');
    expect(await codeOf(host.zones.delete('oxz_b'))).toBe('Z_BAD_ZONE_STATE');
    for (const op of [host.zones.boot('oxz_none'), host.zones.install('oxz_none', '/x'), host.zones.config('oxz_none'), host.zones.delete('oxz_none')]) {
      expect(await codeOf(op)).toBe('Z_NO_ZONE');
    }
    // Names are checked as the illumos layer checks them, before anything happens.
    await expect(host.zones.configure(spec('global'))).rejects.toMatchObject({ code: 'Z_BOGUS_ZONE_NAME' });
    await expect(host.zones.boot('bad name')).rejects.toMatchObject({ code: 'Z_BOGUS_ZONE_NAME' });
    expect((await host.zones.list()).map((z) => z.name)).toEqual(['oxz_b']);
  });

  it('models latency in phases: incomplete while installing, running before the network milestone', async () => {
    const host = await openHost({ latencies: { install: 40, network: 60_000 } });
    await host.zones.configure(spec('oxz_c'));
    const install = host.zones.install('oxz_c', '/opt/oxide/test.tar.gz');
    await new Promise((r) => setImmediate(r));
    expect(await host.zones.list()).toEqual([{ name: 'oxz_c', state: 'incomplete' }]);
    await install;
    expect(await host.zones.list()).toEqual([{ name: 'oxz_c', state: 'installed' }]);
    await host.zones.boot('oxz_c');
    await host.events.waitForZoneRunning('oxz_c', { timeoutMs: 0 });
    // The zone runs; its network milestone is still coming up.
    await expect(host.events.waitForService('oxz_c', cmd.NETWORK_MILESTONE, ['offline'], { timeoutMs: 1000 })).resolves.toBe('offline');
    expect(await codeOf(host.events.waitForService('oxz_c', cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 20 }))).toBe('ETIMEDOUT');
  });

  it('orders the phases of a start as a sled does: running event, network online, then the service enabled after it', async () => {
    const host = await openHost({ latencies: { boot: 5, network: 30, serviceStart: 5 } });
    const order: string[] = [];
    host.events.subscribe((e) => order.push(`zone ${e.newstate}`));
    await host.zones.configure(spec('oxz_d'));
    await host.zones.install('oxz_d', '/opt/oxide/test.tar.gz');
    const network = host.events.waitForService('oxz_d', cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 5000 }).then(() => order.push('network online'));
    await host.zones.boot('oxz_d');
    order.push('boot returned');
    await host.zones.exec('oxz_d', cmd.svccfgImport(cmd.siteManifest('crucible')));
    const fmri = 'svc:/system/illumos/crucible:default';
    await host.zones.exec('oxz_d', cmd.svcadmEnable(fmri));
    // Enabled before the network is up: it waits for the milestone.
    await host.events.waitForService('oxz_d', fmri, ['online'], { timeoutMs: 5000 });
    order.push('service online');
    await network;
    expect(order).toEqual(['zone initialized', 'zone ready', 'zone running', 'boot returned', 'network online', 'service online']);
  });
});

describe('construction and the latency table', () => {
  it('new SimHost(options) + start() is the same as SimHost.open; bad options are refused', async () => {
    const stateDir = await tempDir();
    const host = new SimHost({ stateDir });
    try {
      await host.start();
      await host.start();
      expect(host.kind).toBe('sim');
      expect(await host.zones.list()).toEqual([]);
    } finally {
      await host.close();
    }
    expect(() => new SimHost({ stateDir, jitter: 2 })).toThrow(/jitter/);
    expect(() => new SimHost({ stateDir, latencies: { boot: -1 } })).toThrow(/boot/);
    expect(() => new SimHost({ stateDir, links: ['not a link'] })).toThrow();
  });

  it('exports zero latencies for tests and the shape of a real sled for benchmarks', () => {
    expect(Object.values(ZERO_LATENCIES).every((v) => v === 0)).toBe(true);
    expect(REALISTIC_LATENCIES).toMatchObject({ configure: 10, install: 1500, boot: 600, network: 1300, propolisStart: 500 });
    expect(Object.keys(REALISTIC_LATENCIES).sort()).toEqual(Object.keys(ZERO_LATENCIES).sort());
  });

  it('with jitter, every phase still happens in order', async () => {
    const host = await openHost({ latencies: { install: 5, boot: 5, network: 5 }, jitter: 0.5, seed: 42 });
    const order: string[] = [];
    host.events.subscribe((e) => order.push(e.newstate));
    await runningZone(host, 'oxz_j');
    order.push('network online');
    expect(order).toEqual(['initialized', 'ready', 'running', 'network online']);
  });
});

describe('waits', () => {
  it('waitForZoneRunning: at once when running, else on the boot event; timeout and abort', async () => {
    const host = await openHost({ latencies: { boot: 20 } });
    await host.zones.configure(spec('oxz_w'));
    await host.zones.install('oxz_w', '/opt/oxide/test.tar.gz');
    expect(await codeOf(host.events.waitForZoneRunning('oxz_w', { timeoutMs: 10 }))).toBe('ETIMEDOUT');
    const ctl = new AbortController();
    const aborted = codeOf(host.events.waitForZoneRunning('oxz_w', { timeoutMs: 5000, signal: ctl.signal }));
    ctl.abort();
    expect(await aborted).toBe('ABORT_ERR');
    let resolved = false;
    const waiting = host.events.waitForZoneRunning('oxz_w', { timeoutMs: 5000 }).then(() => {
      resolved = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false);
    await host.zones.boot('oxz_w');
    await waiting;
    await host.events.waitForZoneRunning('oxz_w', { timeoutMs: 0 });
    expect(await codeOf(host.events.waitForZoneRunning('oxz_nope', { timeoutMs: 1000 }))).toBe('ZONE_GONE');
  });

  it('rejects waits with ZONE_GONE when the zone fails from outside, with the halt events', async () => {
    const host = await openHost({ latencies: { network: 60_000 } });
    await host.zones.configure(spec('oxz_f'));
    await host.zones.install('oxz_f', '/opt/oxide/test.tar.gz');
    await host.zones.boot('oxz_f');
    const events: string[] = [];
    host.events.subscribe((e) => events.push(`${e.oldstate}->${e.newstate}`));
    const service = errorOf(host.events.waitForService('oxz_f', cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 5000 }));
    await host.simulateZoneFailure('oxz_f');
    const err = await service;
    expect(err.code).toBe('ZONE_GONE');
    expect(events).toEqual(['running->shutting_down', 'shutting_down->uninitialized']);
    expect(await host.zones.list()).toEqual([]);
  });

  it('rejects a zone wait with ZONE_GONE when the zone is halted while waiting for a service', async () => {
    const host = await openHost({ latencies: { network: 60_000 } });
    await host.zones.configure(spec('oxz_h'));
    await host.zones.install('oxz_h', '/opt/oxide/test.tar.gz');
    await host.zones.boot('oxz_h');
    const wait = codeOf(host.events.waitForService('oxz_h', cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 5000 }));
    await host.zones.halt('oxz_h');
    expect(await wait).toBe('ZONE_GONE');
  });

  it('close() ends pending waits (ECANCELED)', async () => {
    const host = await openHost();
    await host.zones.configure(spec('oxz_x'));
    const wait = codeOf(host.events.waitForZoneRunning('oxz_x', { timeoutMs: 5000 }));
    await host.close();
    expect(await wait).toBe('ECANCELED');
  });
});

describe('exec: the in-zone command set', () => {
  it('leaves no abort listeners on its long-lived signals once commands and service starts end', async () => {
    // The host's close signal and a zone's run signal live as long as the host and the zone;
    // what each step hangs on them must go when the step ends, or a long-running agent grows.
    const host = await openHost({ latencies: { ...ZERO_LATENCIES, exec: 1, serviceStart: 1 } });
    await runningZone(host, 'oxz_l');
    const internals = host as unknown as { closeCtl: AbortController; simZones: { runtime(zone: string): { ctl: AbortController } | undefined } };
    const longLived = [internals.closeCtl.signal, internals.simZones.runtime('oxz_l')!.ctl.signal];
    const before = longLived.map((s) => getEventListeners(s, 'abort').length);
    await host.zones.exec('oxz_l', cmd.svccfgImport(cmd.siteManifest('crucible')));
    const fmri = 'svc:/system/illumos/crucible:default';
    for (let i = 0; i < 20; i++) {
      await host.zones.exec('oxz_l', cmd.ipadmShowAddr('oxControl0/omicron6'), { timeoutMs: 5000 }).catch(() => {});
      await host.zones.exec('oxz_l', cmd.svcadmEnable(fmri));
      await host.events.waitForService('oxz_l', fmri, ['online'], { timeoutMs: 5000 });
      await host.zones.exec('oxz_l', cmd.svcadmDisable(fmri));
      await host.events.waitForService('oxz_l', fmri, ['disabled'], { timeoutMs: 5000 });
    }
    expect(longLived.map((s) => getEventListeners(s, 'abort').length)).toEqual(before);
  });

  it('ipadm: addresses per zone with the documented exits and messages', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_e', { vnic: 'oxControl0' });
    const obj = `oxControl0/${cmd.ADDROBJ_STATIC6}`;
    const missing = await errorOf(host.zones.exec('oxz_e', cmd.ipadmShowAddr(obj)));
    expect(missing.code).toBe('ECOMMAND');
    expect(missing.message).toContain('ipadm: Address object not found');
    await host.zones.exec('oxz_e', cmd.ipadmCreateLinkLocal('oxControl0'));
    expect((await host.zones.exec('oxz_e', cmd.ipadmShowAddr('oxControl0/linklocal'))).stdout).toMatch(/^fe80::[0-9a-f:]+\/10\n$/);
    await host.zones.exec('oxz_e', cmd.ipadmCreateStatic(obj, 'fd00:1122:3344:101::7/64'));
    expect(await host.zones.exec('oxz_e', cmd.ipadmShowAddr(obj))).toEqual({ stdout: 'fd00:1122:3344:101::7/64\n', stderr: '' });
    const again = await errorOf(host.zones.exec('oxz_e', cmd.ipadmCreateStatic(obj, 'fd00:1122:3344:101::8/64')));
    expect(again.message).toContain('Address object already exists');
    const otherLink = await errorOf(host.zones.exec('oxz_e', cmd.ipadmCreateStatic('oxOther0/omicron6', 'fd00::9/64')));
    expect(otherLink.code).toBe('ECOMMAND');
    await host.zones.exec('oxz_e', cmd.ipadmDeleteAddr(obj));
    expect(await codeOf(host.zones.exec('oxz_e', cmd.ipadmShowAddr(obj)))).toBe('ECOMMAND');
    expect(await codeOf(host.zones.exec('oxz_e', cmd.ipadmDeleteAddr(obj)))).toBe('ECOMMAND');
    expect((await host.zones.exec('oxz_e', cmd.routeAddDefault6('fd00:1122:3344:101::1'))).stdout).toContain('fd00:1122:3344:101::1');
    expect(await codeOf(host.zones.exec('oxz_e', cmd.routeAddDefault6('10.0.0.1')))).toBe('ECOMMAND');
  });

  it('svccfg and svcadm: import, add, properties, enable and disable, with waits on restarter/state', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_s');
    const service = 'svc:/system/illumos/crucible';
    const fmri = `${service}:default`;
    expect(await codeOf(host.zones.exec('oxz_s', cmd.svcadmEnable(fmri)))).toBe('ECOMMAND');
    await host.zones.exec('oxz_s', cmd.svccfgImport(cmd.siteManifest('crucible')));
    await expect(host.events.waitForService('oxz_s', fmri, ['disabled'], { timeoutMs: 0 })).resolves.toBe('disabled');
    await host.zones.exec('oxz_s', cmd.svccfgAddInstance(service, 'pool1'));
    const dup = await errorOf(host.zones.exec('oxz_s', cmd.svccfgAddInstance(service, 'pool1')));
    expect(dup.code).toBe('ECOMMAND');
    expect(dup.message).toContain('already exists');
    expect(await codeOf(host.zones.exec('oxz_s', cmd.svccfgAddInstance('svc:/system/illumos/nothing', 'x')))).toBe('ECOMMAND');
    const inst = `${service}:pool1`;
    expect(await codeOf(host.zones.exec('oxz_s', cmd.svccfgSetProp(inst, 'config/datalink', 'oxControl0')))).toBe('ECOMMAND');
    await host.zones.exec('oxz_s', cmd.svccfgAddPg(inst, 'config', 'astring'));
    await host.zones.exec('oxz_s', cmd.svccfgSetProp(inst, 'config/datalink', 'oxControl0'));
    await host.zones.exec('oxz_s', cmd.svccfgRefresh(inst));
    await host.zones.exec('oxz_s', cmd.svcadmEnable(inst));
    await expect(host.events.waitForService('oxz_s', inst, ['online'], { timeoutMs: 5000 })).resolves.toBe('online');
    await host.zones.exec('oxz_s', cmd.svcadmDisable(inst));
    await expect(host.events.waitForService('oxz_s', inst, ['disabled'], { timeoutMs: 0 })).resolves.toBe('disabled');
  });

  it('anything else is "command not found"; a zone that is not running refuses zlogin', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_n');
    const nf = await errorOf(host.zones.exec('oxz_n', ['ls', '/']));
    expect(nf.code).toBe('ECOMMAND');
    expect(nf.message).toContain('ls: command not found');
    expect(await codeOf(host.zones.exec('oxz_n', ['ipadm', 'show-if']))).toBe('ECOMMAND');
    await host.zones.halt('oxz_n');
    const halted = await errorOf(host.zones.exec('oxz_n', cmd.ipadmShowAddr('x0/y')));
    expect(halted.code).toBe('ECOMMAND');
    expect(halted.message).toContain("zlogin: login allowed only to running zones (oxz_n is 'installed').");
    expect(await codeOf(host.zones.exec('oxz_nobody', ['true']))).toBe('ECOMMAND');
  });

  it('a command slower than its timeout fails with ECOMMAND and has no effect', async () => {
    const host = await openHost({ latencies: { address: 60_000 } });
    await runningZone(host, 'oxz_t', { vnic: 'oxControl3' });
    const err = await errorOf(host.zones.exec('oxz_t', cmd.ipadmCreateStatic('oxControl3/omicron6', 'fd00::3/64'), { timeoutMs: 10 }));
    expect(err.code).toBe('ECOMMAND');
    expect(err.message).toMatch(/timed out/);
    expect(await codeOf(host.zones.exec('oxz_t', cmd.ipadmShowAddr('oxControl3/omicron6')))).toBe('ECOMMAND');
  });

  it('halting a zone clears its addresses and temporary enables; svccfg additions stay', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_r', { vnic: 'oxControl4' });
    await host.zones.exec('oxz_r', cmd.ipadmCreateStatic('oxControl4/omicron6', 'fd00::4/64'));
    await host.zones.exec('oxz_r', cmd.svccfgImport(cmd.siteManifest('oximeter')));
    const fmri = 'svc:/system/illumos/oximeter:default';
    await host.zones.exec('oxz_r', cmd.svcadmEnable(fmri));
    await host.events.waitForService('oxz_r', fmri, ['online'], { timeoutMs: 5000 });
    await host.zones.halt('oxz_r');
    await host.zones.boot('oxz_r');
    await host.events.waitForService('oxz_r', cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 5000 });
    expect(await codeOf(host.zones.exec('oxz_r', cmd.ipadmShowAddr('oxControl4/omicron6')))).toBe('ECOMMAND');
    await expect(host.events.waitForService('oxz_r', fmri, ['disabled'], { timeoutMs: 0 })).resolves.toBe('disabled');
  });
});

describe('simulated Propolis in a zone', () => {
  it('svcadm enable starts a Propolis that reachable() maps to loopback; a VM runs; halt ends it', async () => {
    const host = await openHost({ latencies: { propolisStart: 5 } });
    await runningZone(host, 'oxz_propolis-server_p1', { image: PROPOLIS_IMAGE, vnic: 'oxControlInstance0' });
    const { fmri, addr } = await startPropolis(host, 'oxz_propolis-server_p1', 'oxControlInstance0', 'fd00:1122:3344:101::10');
    await host.events.waitForService('oxz_propolis-server_p1', fmri, ['online'], { timeoutMs: 5000 });
    const mapped = await host.reachable('oxz_propolis-server_p1', parseSocketAddr(addr));
    expect(mapped.host).toBe('127.0.0.1');
    expect(mapped).toEqual(host.propolisFor('oxz_propolis-server_p1')!.address);
    // Another spelling of the same address maps too; another port does not.
    await expect(host.reachable('oxz_propolis-server_p1', { host: 'fd00:1122:3344:101:0::10', port: 12400 })).resolves.toEqual(mapped);
    await expect(host.reachable('oxz_propolis-server_p1', { host: 'fd00:1122:3344:101::10', port: 1 })).rejects.toMatchObject({ code: 'ENOTFOUND' });

    const client = await clientFor(host, 'oxz_propolis-server_p1', addr);
    await client.ensure(ensureRequest(randomUUID()));
    await client.putState('Run');
    expect((await monitorUntil(client, 'Running')).gen).toBe(2);

    await host.zones.halt('oxz_propolis-server_p1');
    expect(host.propolisFor('oxz_propolis-server_p1')).toBeUndefined();
    await expect(host.reachable('oxz_propolis-server_p1', parseSocketAddr(addr))).rejects.toMatchObject({ code: 'ZONE_GONE' });
    const err = await client.get().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PropolisError);
    expect((err as PropolisError).code).toBe('UNREACHABLE');
  });

  it('an instance without config/server_addr goes to maintenance instead of online', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_propolis-server_p2', { image: PROPOLIS_IMAGE });
    const fmri = `${cmd.PROPOLIS_SERVICE}:vm-p2`;
    await host.zones.exec('oxz_propolis-server_p2', cmd.svccfgAddInstance(cmd.PROPOLIS_SERVICE, 'vm-p2'));
    await host.zones.exec('oxz_propolis-server_p2', cmd.svcadmEnable(fmri));
    await expect(host.events.waitForService('oxz_propolis-server_p2', fmri, ['online', 'maintenance'], { timeoutMs: 5000 })).resolves.toBe('maintenance');
    expect(host.propolisFor('oxz_propolis-server_p2')).toBeUndefined();
    await expect(host.reachable('oxz_propolis-server_p2', { host: 'fd00::2', port: 12400 })).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('the propolis-server service exists only in zones from its image', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_other');
    expect(await codeOf(host.zones.exec('oxz_other', cmd.svccfgAddInstance(cmd.PROPOLIS_SERVICE, 'vm-1')))).toBe('ECOMMAND');
  });

  it('crashPropolis: the server stops answering and its instance goes to maintenance', async () => {
    const host = await openHost();
    await runningZone(host, 'oxz_propolis-server_p3', { image: PROPOLIS_IMAGE, vnic: 'oxControlInstance3' });
    const { fmri, addr } = await startPropolis(host, 'oxz_propolis-server_p3', 'oxControlInstance3', 'fd00::33');
    await host.events.waitForService('oxz_propolis-server_p3', fmri, ['online'], { timeoutMs: 5000 });
    const client = await clientFor(host, 'oxz_propolis-server_p3', addr);
    await client.ensure(ensureRequest(randomUUID()));
    await host.crashPropolis('oxz_propolis-server_p3');
    const err = await client.get().then(() => null, (e: unknown) => e);
    expect((err as PropolisError).code).toBe('UNREACHABLE');
    await expect(host.events.waitForService('oxz_propolis-server_p3', fmri, ['maintenance'], { timeoutMs: 0 })).resolves.toBe('maintenance');
    expect(await codeOf(host.crashPropolis('oxz_propolis-server_p3'))).toBe('ENOTFOUND');
  });
});

describe('links', () => {
  it('creates, lists and deletes VNICs with dladm status codes', async () => {
    const host = await openHost({ links: ['stub0', 'net0'] });
    const a = await host.links.createVnic({ name: 'oxControl0', link: 'stub0' });
    expect(a.mac).toMatch(/^02:08:20(:[0-9a-f]{2}){3}$/);
    expect(a).toMatchObject({ name: 'oxControl0', link: 'stub0', vlan: 0 });
    const b = await host.links.createVnic({ name: 'vopte0', link: 'net0', mac: 'A8:40:25:F0:0:1', vlan: 5 });
    expect(b).toEqual({ name: 'vopte0', link: 'net0', mac: 'a8:40:25:f0:00:01', vlan: 5 });
    expect(await codeOf(host.links.createVnic({ name: 'oxControl0', link: 'stub0' }))).toBe('DLADM_STATUS_EXIST');
    expect(await codeOf(host.links.createVnic({ name: 'net0', link: 'stub0' }))).toBe('DLADM_STATUS_EXIST');
    expect(await codeOf(host.links.createVnic({ name: 'oxControl1', link: 'stub9' }))).toBe('DLADM_STATUS_NOTFOUND');
    await expect(host.links.createVnic({ name: 'oxControl', link: 'stub0' })).rejects.toMatchObject({ code: 'ERR_INVALID_LINK_NAME' });
    expect((await host.links.listVnics()).map((v) => v.name)).toEqual(['oxControl0', 'vopte0']);
    expect(await host.links.linkExists('stub0')).toBe(true);
    expect(await host.links.linkExists('vopte0')).toBe(true);
    expect(await host.links.linkExists('stub9')).toBe(false);
    await host.links.deleteVnic('vopte0');
    expect(await codeOf(host.links.deleteVnic('vopte0'))).toBe('DLADM_STATUS_NOTFOUND');
    expect(await host.links.linkExists('vopte0')).toBe(false);
  });
});

describe('datasets', () => {
  it('creates filesystems under configured pools with inherited mountpoints and user properties', async () => {
    const host = await openHost({ pools: [{ name: 'rpool', size: 1 << 30 }, { name: POOL, size: 2 ** 40 }] });
    expect(await host.datasets.exists(POOL)).toBe(true);
    await host.datasets.create(`${POOL}/crucible`, { 'oxide:uuid': 'u-1' });
    await host.datasets.create(`${POOL}/crucible/regions`, {});
    await host.datasets.create(`${POOL}/cockroachdb`, { mountpoint: '/data', zoned: 'on' });
    await host.datasets.create(`${POOL}/cockroachdb/x`, {});
    expect(await host.datasets.get(`${POOL}/crucible`, ['mountpoint', 'zoned', 'oxide:uuid', 'oxide:other', 'type', 'name'])).toEqual({
      mountpoint: `/${POOL}/crucible`,
      zoned: 'off',
      'oxide:uuid': 'u-1',
      'oxide:other': null,
      type: 'filesystem',
      name: `${POOL}/crucible`,
    });
    // Inherited from the parent: the user property and (relative) mountpoint, zoned.
    expect(await host.datasets.get(`${POOL}/crucible/regions`, ['mountpoint', 'oxide:uuid'])).toEqual({ mountpoint: `/${POOL}/crucible/regions`, 'oxide:uuid': 'u-1' });
    expect(await host.datasets.get(`${POOL}/cockroachdb/x`, ['mountpoint', 'zoned'])).toEqual({ mountpoint: '/data/x', zoned: 'on' });
    await host.datasets.set(`${POOL}/crucible`, { 'oxide:uuid': 'u-2', quota: '1G' });
    expect(await host.datasets.get(`${POOL}/crucible`, ['oxide:uuid', 'quota'])).toEqual({ 'oxide:uuid': 'u-2', quota: String(2 ** 30) });
    expect(await host.datasets.listChildren(POOL)).toEqual([`${POOL}/cockroachdb`, `${POOL}/crucible`]);
    expect(await host.datasets.listChildren(`${POOL}/crucible`)).toEqual([`${POOL}/crucible/regions`]);

    expect(await codeOf(host.datasets.create(`${POOL}/crucible`, {}))).toBe('EZFS_EXISTS');
    expect(await codeOf(host.datasets.create(`${POOL}/nope/child`, {}))).toBe('EZFS_NOENT');
    expect(await codeOf(host.datasets.create('otherpool/a', {}))).toBe('EZFS_NOENT');
    expect(await codeOf(host.datasets.create(`${POOL}/bad`, { colour: 'red' }))).toBe('EZFS_BADPROP');
    expect(await codeOf(host.datasets.set(`${POOL}/crucible`, { used: '5' }))).toBe('EZFS_PROPREADONLY');
    expect(await codeOf(host.datasets.get(`${POOL}/missing`, ['name']))).toBe('EZFS_NOENT');
    expect(await codeOf(host.datasets.destroy(`${POOL}/crucible`))).toBe('EZFS_EXISTS');
    await host.datasets.destroy(`${POOL}/crucible/regions`);
    await host.datasets.destroy(`${POOL}/crucible`);
    expect(await host.datasets.exists(`${POOL}/crucible`)).toBe(false);
    expect(await codeOf(host.datasets.destroy(`${POOL}/crucible`))).toBe('EZFS_NOENT');
    await expect(host.datasets.create('rpool/bad@snap', {})).rejects.toMatchObject({ code: 'ERR_INVALID_DATASET_NAME' });

    const pools = await host.datasets.listPools();
    expect(pools.map((p) => p.name)).toEqual(['rpool', POOL]);
    const oxp = pools[1]!;
    expect(oxp.size).toBe(2n ** 40n);
    expect(oxp.allocated > 0n && oxp.allocated + oxp.free === oxp.size).toBe(true);
    expect(oxp.health).toBe('ONLINE');
  });
});

describe('persistence', () => {
  it('a new SimHost on the same directory finds zones, VNICs, datasets, addresses, SMF and the VM as they were', async () => {
    const stateDir = await tempDir();
    const zone = 'oxz_propolis-server_pp';
    const first = await openHost({ stateDir });
    await runningZone(first, zone, { image: PROPOLIS_IMAGE, vnic: 'oxControlInstance0' });
    await first.zones.configure(spec('oxz_idle'));
    await first.datasets.create(`${POOL}/crucible`, { 'oxide:uuid': 'kept' });
    const { fmri, addr } = await startPropolis(first, zone, 'oxControlInstance0', 'fd00::77');
    await first.events.waitForService(zone, fmri, ['online'], { timeoutMs: 5000 });
    const id = randomUUID();
    const c1 = await clientFor(first, zone, addr);
    await c1.ensure(ensureRequest(id));
    await c1.putState('Run');
    const running = await monitorUntil(c1, 'Running');
    const events: ZoneStateEvent[] = [];
    first.events.subscribe((e) => events.push(e));
    await first.close();
    // The agent went away; the zone did not halt.
    expect(events).toEqual([]);
    const onDisk = JSON.parse(await readFile(join(stateDir, SIM_HOST_STATE_FILE), 'utf8')) as { zones: Array<{ spec: { name: string }; state: string }> };
    expect(onDisk.zones.map((z) => [z.spec.name, z.state])).toEqual([[zone, 'running'], ['oxz_idle', 'configured']]);

    const second = await openHost({ stateDir });
    expect(await second.zones.list()).toEqual([{ name: zone, state: 'running' }, { name: 'oxz_idle', state: 'configured' }]);
    expect((await second.links.listVnics()).map((v) => v.name)).toEqual(['oxControlInstance0']);
    expect(await second.datasets.get(`${POOL}/crucible`, ['oxide:uuid'])).toEqual({ 'oxide:uuid': 'kept' });
    expect((await second.zones.exec(zone, cmd.ipadmShowAddr(`oxControlInstance0/${cmd.ADDROBJ_STATIC6}`))).stdout).toBe('fd00::77/64\n');
    await second.events.waitForService(zone, cmd.NETWORK_MILESTONE, ['online'], { timeoutMs: 0 });
    await second.events.waitForService(zone, fmri, ['online'], { timeoutMs: 0 });
    // The same VM, on a new server: same properties, same state and generation.
    const c2 = await clientFor(second, zone, addr);
    await expect(c2.stateMonitor(0)).resolves.toEqual(running);
    expect((await c2.get()).instance.properties.id).toBe(id);
    await expect(c2.ensure(ensureRequest(id))).resolves.toEqual({ migrate: null });
  });

  it('a link given to a running zone is still the zone\'s for a new SimHost, and goes back at the halt', async () => {
    const stateDir = await tempDir();
    const zone = 'oxz_given';
    const first = await openHost({ stateDir });
    await runningZone(first, zone, { vnic: 'oxControlInstance0' });
    await first.links.createVnic({ name: 'vopte0', link: 'stub0' });
    await first.links.setZone('vopte0', zone);
    await first.close();

    const second = await openHost({ stateDir });
    const obj = `vopte0/${cmd.ADDROBJ_STATIC6}`;
    await second.zones.exec(zone, cmd.ipadmCreateStatic(obj, 'fd00::9/64'));
    await second.zones.halt(zone);
    await second.zones.boot(zone);
    await expect(second.zones.exec(zone, cmd.ipadmCreateStatic(obj, 'fd00::9/64'))).rejects.toMatchObject({ code: 'ECOMMAND' });
  });

  it('a VM in the middle of booting finishes booting on its revived Propolis', async () => {
    const stateDir = await tempDir();
    const zone = 'oxz_propolis-server_mb';
    const first = await openHost({ stateDir, latencies: { vmBoot: 60_000 } });
    await runningZone(first, zone, { image: PROPOLIS_IMAGE, vnic: 'oxControlInstance1' });
    const { fmri, addr } = await startPropolis(first, zone, 'oxControlInstance1', 'fd00::78');
    await first.events.waitForService(zone, fmri, ['online'], { timeoutMs: 5000 });
    const c1 = await clientFor(first, zone, addr);
    await c1.ensure(ensureRequest(randomUUID()));
    await c1.putState('Run');
    expect(await c1.stateMonitor(1)).toEqual({ gen: 1, state: 'Starting' });
    await first.close();

    const second = await openHost({ stateDir });
    const c2 = await clientFor(second, zone, addr);
    await expect(monitorUntil(c2, 'Running')).resolves.toEqual({ gen: 2, state: 'Running' });
  });

  it('an install cut short by close() leaves the zone incomplete; a boot cut short completes on the next start', async () => {
    const stateDir = await tempDir();
    const first = await openHost({ stateDir, latencies: { install: 60_000, boot: 60_000 } });
    await first.zones.configure(spec('oxz_i'));
    await first.zones.configure(spec('oxz_b'));
    const install = codeOf(first.zones.install('oxz_i', '/opt/oxide/test.tar.gz'));
    await new Promise((r) => setImmediate(r));
    expect(await first.zones.list()).toEqual([{ name: 'oxz_i', state: 'incomplete' }, { name: 'oxz_b', state: 'configured' }]);
    await first.close();
    expect(await install).toBe('ECANCELED');

    const second = await openHost({ stateDir, latencies: { boot: 60_000 } });
    expect(await second.zones.list()).toEqual([{ name: 'oxz_i', state: 'incomplete' }, { name: 'oxz_b', state: 'configured' }]);
    expect(await codeOf(second.zones.boot('oxz_i'))).toBe('Z_BAD_ZONE_STATE');
    await second.zones.uninstall('oxz_i');
    await second.zones.install('oxz_b', '/opt/oxide/test.tar.gz');
    const boot = codeOf(second.zones.boot('oxz_b'));
    await new Promise((r) => setImmediate(r));
    expect(await second.zones.list()).toContainEqual({ name: 'oxz_b', state: 'ready' });
    await second.close();
    expect(await boot).toBe('ECANCELED');

    const third = await openHost({ stateDir });
    await third.events.waitForZoneRunning('oxz_b', { timeoutMs: 5000 });
    expect(await third.zones.list()).toEqual([{ name: 'oxz_i', state: 'configured' }, { name: 'oxz_b', state: 'running' }]);
  });

  it("a clone takes the clone latency and has the template's services; one cut short by close() stays incomplete", async () => {
    const stateDir = await tempDir();
    const first = await openHost({ stateDir, recordLatencies: true, latencies: { clone: 7 } });
    await first.zones.configure(spec('oxz_tmpl'));
    await first.zones.install('oxz_tmpl', '/opt/oxide/test.tar.gz');
    // given to the template, so in its SMF repository, which the clone copies with the zonepath
    await first.zones.boot('oxz_tmpl');
    await first.zones.exec('oxz_tmpl', cmd.svccfgImport(cmd.siteManifest('crucible')));
    await first.zones.halt('oxz_tmpl');
    await first.zones.configure(spec('oxz_c'));
    await first.zones.clone('oxz_c', 'oxz_tmpl');
    expect(first.modelled('oxz_c').map((d) => [d.step, d.op, d.ms])).toContainEqual(['clone', 'zone clone', 7]);
    expect(first.modelled('oxz_c').map((d) => d.step)).not.toContain('install');
    await first.zones.boot('oxz_c');
    const fmri = 'svc:/system/illumos/crucible:default';
    await first.zones.exec('oxz_c', cmd.svcadmEnable(fmri));
    expect(await first.events.waitForService('oxz_c', fmri, ['online'], { timeoutMs: 5000 })).toBe('online');
    await first.close();

    const second = await openHost({ stateDir, latencies: { clone: 60_000 } });
    await second.zones.configure(spec('oxz_k'));
    const clone = codeOf(second.zones.clone('oxz_k', 'oxz_tmpl'));
    await new Promise((r) => setImmediate(r));
    expect(await second.zones.list()).toContainEqual({ name: 'oxz_k', state: 'incomplete' });
    await second.close();
    expect(await clone).toBe('ECANCELED');

    const third = await openHost({ stateDir });
    expect(await third.zones.list()).toContainEqual({ name: 'oxz_k', state: 'incomplete' });
    expect(await codeOf(third.zones.boot('oxz_k'))).toBe('Z_BAD_ZONE_STATE');
    expect(await codeOf(third.zones.clone('oxz_k', 'oxz_tmpl'))).toBe('Z_BAD_ZONE_STATE');
    await third.zones.uninstall('oxz_k');
    await third.zones.clone('oxz_k', 'oxz_tmpl');
    expect(await third.zones.list()).toContainEqual({ name: 'oxz_k', state: 'installed' });
  });

  it('concurrent changes are all written (writes serialized, none lost)', async () => {
    const stateDir = await tempDir();
    const first = await openHost({ stateDir });
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => first.links.createVnic({ name: `oxTest${i}`, link: 'stub0' })),
      ...Array.from({ length: 10 }, (_, i) => first.datasets.create(`rpool/ds${i}`, {})),
      ...Array.from({ length: 10 }, (_, i) => first.zones.configure(spec(`oxz_c${i}`))),
    ]);
    await first.close();
    const second = await openHost({ stateDir });
    expect((await second.links.listVnics()).length).toBe(20);
    expect((await second.datasets.listChildren('rpool')).length).toBe(10);
    expect((await second.zones.list()).length).toBe(10);
  });

  it('simulateZoneFailure is persisted: the zone is gone for the next SimHost too', async () => {
    const stateDir = await tempDir();
    const first = await openHost({ stateDir });
    await runningZone(first, 'oxz_gone');
    await first.simulateZoneFailure('oxz_gone');
    await first.close();
    const second = await openHost({ stateDir });
    expect(await second.zones.list()).toEqual([]);
  });
});
