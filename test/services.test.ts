// ServiceManager (src/services.ts, reference §10) against the simulated host: zones made with the
// right name, VNIC, address, route and SMF instance online; the superset rule; validation before
// any change; and a restart on the same ledger and host state, which adopts running zones and
// re-makes one that went away.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from '../src/common/errors.js';
import type { ServiceRequest } from '../src/params.js';
import { ServiceManager } from '../src/services.js';
import { SimHost } from '../src/sim/host.js';
import { VnicNames } from '../src/zone.js';
import { countingHost, simZoneRecord, type CountingHost } from './support/counting-host.js';

const log = pino({ level: 'silent' });
const WAIT = { readiness: 'event' as const, timeoutMs: 10_000 };
const UNDERLAY = 'fd00:1122:3344:101::1';
const NEXUS: ServiceRequest = { name: 'nexus', addresses: ['fd00:1122:3344:101::3'], gz_addresses: [] };
const OXIMETER: ServiceRequest = { name: 'oximeter', addresses: ['fd00:1122:3344:101::4'] };
const DNS: ServiceRequest = { name: 'internal-dns', addresses: ['fd00:1122:3344:101::5'], gz_addresses: ['fd00:1122:3344:101::6'] };

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Env {
  dir: string;
  sim: SimHost;
  ch: CountingHost;
  vnics: VnicNames;
  ledgerPath: string;
  manager: ServiceManager;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'services-test-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A SimHost on `dir` (new or as an earlier one left it) and a manager on `dir`'s ledger. */
async function openEnv(dir?: string): Promise<Env> {
  dir ??= await tempDir();
  const sim = await SimHost.open({ stateDir: join(dir, 'host'), links: ['stub0'], pools: [] });
  cleanup.push(() => sim.close());
  // The global zone's VNIC on the etherstub, as the agent makes it at start-up (ensureUnderlay).
  if (!(await sim.links.linkExists('underlay0'))) await sim.links.createVnic({ name: 'underlay0', link: 'stub0' });
  const ch = countingHost(sim);
  const vnics = new VnicNames();
  const ledgerPath = join(dir, 'services.json');
  const manager = await ServiceManager.open({
    host: ch.host, log, ledgerPath, vnics, zoneRoot: '/zone', controlLink: 'stub0', wait: WAIT, underlayAddress: UNDERLAY,
    underlayVnic: 'underlay0',
  });
  return { dir, sim, ch, vnics, ledgerPath, manager };
}

/** The VNICs on the host but the global zone's underlay0 (which openEnv makes). */
async function serviceVnics(sim: SimHost) {
  return (await sim.links.listVnics()).filter((v) => v.name !== 'underlay0');
}

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

async function ledger(env: Env): Promise<any> {
  return JSON.parse(await readFile(env.ledgerPath, 'utf8'));
}

async function serviceState(sim: SimHost, zone: string, service: string): Promise<string | null> {
  const rec = await simZoneRecord(sim, zone);
  return rec?.services?.[`svc:/system/illumos/${service}`]?.instances?.default?.state ?? null;
}

describe('ServiceManager.ensure', () => {
  it('makes one zone per service with its VNIC, address, default route and SMF instance online', async () => {
    const env = await openEnv();
    await env.manager.ensure([NEXUS, OXIMETER]);

    const zones = await env.sim.zones.list();
    expect(zones).toContainEqual({ name: 'oxz_nexus', state: 'running' });
    expect(zones).toContainEqual({ name: 'oxz_oximeter', state: 'running' });

    const onFile = await ledger(env);
    expect(onFile.services.map((s: any) => s.name)).toEqual(['nexus', 'oximeter']);
    const vnicOf = new Map<string, string>(onFile.services.map((s: any) => [s.name, s.control_vnic]));
    expect(new Set(vnicOf.values()).size).toBe(2);
    for (const [name, vnic] of vnicOf) {
      expect(vnic).toMatch(/^oxControlService\d+$/);
      const config = await env.sim.zones.config(`oxz_${name}`);
      expect(config.nets).toEqual([{ physical: vnic }]);
      expect(config.datasets).toEqual([]);
      expect(config.zonepath).toBe(`/zone/oxz_${name}`);
    }
    expect((await serviceVnics(env.sim)).map((v) => [v.name, v.link]).sort())
      .toEqual([...vnicOf.values()].map((v) => [v, 'stub0']).sort());
    expect(env.manager.claimedZones()).toEqual(new Map([
      ['oxz_nexus', [vnicOf.get('nexus')]], ['oxz_oximeter', [vnicOf.get('oximeter')]],
    ]));

    const nexus = await simZoneRecord(env.sim, 'oxz_nexus');
    expect(nexus.image).toBe('/opt/oxide/nexus.tar.gz');
    expect(nexus.addresses[`${vnicOf.get('nexus')}/omicron6`]).toEqual({ type: 'static', addr: `${NEXUS.addresses[0]}/64` });
    expect(nexus.routes).toEqual([UNDERLAY]);
    expect(await serviceState(env.sim, 'oxz_nexus', 'nexus')).toBe('online');
    expect(await serviceState(env.sim, 'oxz_oximeter', 'oximeter')).toBe('online');
    expect(env.ch.calls.exec).toContainEqual({ zone: 'oxz_nexus', argv: ['svcadm', 'enable', '-t', 'svc:/system/illumos/nexus:default'] });
  });

  it('configures internal-dns from its first address and routes via the first gz_address', async () => {
    const env = await openEnv();
    await env.manager.ensure([DNS]);
    const rec = await simZoneRecord(env.sim, 'oxz_internal-dns');
    const inst = rec.services['svc:/system/illumos/internal-dns'].instances.default;
    expect(inst.state).toBe('online');
    expect(inst.pgs.config.props).toEqual({
      server_address: `[${DNS.addresses[0]}]:5353`,
      dns_address: `[${DNS.addresses[0]}]:53`,
    });
    expect(rec.routes).toEqual([DNS.gz_addresses![0]]);
    // The gateway exists: the gz_address is on the underlay VNIC in the global zone, with its link-local.
    expect(env.ch.calls.exec).toContainEqual({
      zone: 'global', argv: ['ipadm', 'create-addr', '-t', '-T', 'static', '-a', `${DNS.gz_addresses![0]}/64`, 'underlay0/internaldns'],
    });
    expect((await env.sim.zones.exec('global', ['ipadm', 'show-addr', '-p', '-o', 'ADDR', 'underlay0/internaldns'])).stdout)
      .toBe(`${DNS.gz_addresses![0]}/64\n`);
    expect((await env.sim.zones.exec('global', ['ipadm', 'show-addr', '-p', '-o', 'ADDR', 'underlay0/linklocal'])).stdout).toMatch(/^fe80::/);
    expect((await ledger(env)).services[0].gz_addresses).toEqual(DNS.gz_addresses);
  });

  it('keeps only the last of several addresses (the original addrobj quirk)', async () => {
    const env = await openEnv();
    const two = { name: 'nexus', addresses: ['fd00:1122:3344:101::3', 'fd00:1122:3344:101::7'] };
    await env.manager.ensure([two]);
    const rec = await simZoneRecord(env.sim, 'oxz_nexus');
    const statics = Object.values(rec.addresses).filter((a: any) => a.type === 'static');
    expect(statics).toEqual([{ type: 'static', addr: 'fd00:1122:3344:101::7/64' }]);
  });

  it('does nothing for a repeated request, and only adds the new services of a superset', async () => {
    const env = await openEnv();
    await env.manager.ensure([NEXUS]);
    env.ch.reset();
    await env.manager.ensure([NEXUS]);
    expect(env.ch.calls).toEqual({ createVnic: [], configure: [], install: [], exec: [] });

    await env.manager.ensure([OXIMETER, NEXUS]);
    expect(env.ch.calls.configure).toEqual(['oxz_oximeter']);
    expect(env.ch.calls.exec.every((c) => c.zone === 'oxz_oximeter')).toBe(true);
    expect((await ledger(env)).services.map((s: any) => s.name)).toEqual(['nexus', 'oximeter']);
  });

  it('refuses with 409 a request that drops or changes a configured service, naming them, and changes nothing', async () => {
    const env = await openEnv();
    await env.manager.ensure([NEXUS, OXIMETER]);
    const before = await readFile(env.ledgerPath, 'utf8');
    env.ch.reset();

    const dropped = await rejection(env.manager.ensure([NEXUS, DNS]));
    expect(dropped.statusCode).toBe(409);
    expect(dropped.message).toContain('missing "oximeter"');
    expect(dropped.message).not.toContain('"nexus"');

    const moved = await rejection(env.manager.ensure([{ ...NEXUS, addresses: ['fd00:1122:3344:101::9'] }, OXIMETER]));
    expect(moved.statusCode).toBe(409);
    expect(moved.message).toContain('changed "nexus"');
    expect(moved.message).not.toContain('oximeter');

    const gz = await rejection(env.manager.ensure([NEXUS, { ...OXIMETER, gz_addresses: ['fd00:1122:3344:101::a'] }]));
    expect(gz.message).toContain('changed "oximeter"');

    expect(await readFile(env.ledgerPath, 'utf8')).toBe(before);
    expect(env.ch.calls).toEqual({ createVnic: [], configure: [], install: [], exec: [] });
    expect((await env.sim.zones.list()).map((z) => z.name).sort()).toEqual(['oxz_nexus', 'oxz_oximeter']);
  });

  it('rejects an invalid service name with 400 naming it, before changing anything', async () => {
    const env = await openEnv();
    for (const name of ['../etc', 'Nexus', 'a_b', 'x'.repeat(42), '', 'nexus/../x']) {
      const err = await rejection(env.manager.ensure([NEXUS, { name, addresses: ['fd00::1'] }]));
      expect(err.statusCode).toBe(400);
      expect(err.message).toContain(JSON.stringify(name));
    }
    const badAddr = await rejection(env.manager.ensure([{ name: 'nexus', addresses: ['10.0.0.1'] }]));
    expect(badAddr.statusCode).toBe(400);
    expect(badAddr.message).toContain('10.0.0.1');
    const dup = await rejection(env.manager.ensure([NEXUS, NEXUS]));
    expect(dup.statusCode).toBe(400);

    await expect(readFile(env.ledgerPath, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await env.sim.zones.list()).toEqual([]);
    expect(await serviceVnics(env.sim)).toEqual([]);
    expect(env.manager.claimedZones().size).toBe(0);
  });

  it('refuses, before recording anything, a gz_address the name makes no address object for, and two names that make one', async () => {
    const env = await openEnv();
    const gz = (name: string, n: number) => ({ name, addresses: [`fd00:1122:3344:101::1${n}`], gz_addresses: [`fd00:1122:3344:101::a${n}`] });
    const long = 'abcdefghij-abcdefghij-abcdefghij-kl';
    const tooLong = await rejection(env.manager.ensure([NEXUS, gz(long, 1)]));
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.message).toBe(`service "${long}": its gz_addresses go on the address object underlay0/abcdefghijabcdefghijabcdefghijkl `
      + '(the name without "-"), and illumos takes at most 31 characters after the "/": shorten the name by 1');
    const twins = await rejection(env.manager.ensure([gz('int-dns', 1), NEXUS, gz('intdns', 2)]));
    expect(twins.statusCode).toBe(400);
    expect(twins.message).toBe('services "int-dns" and "intdns" would both put their gz_addresses on the address object underlay0/intdns '
      + '(the name without "-"), so one would replace the other\'s: rename one of them');
    await expect(readFile(env.ledgerPath, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await env.sim.zones.list()).toEqual([]);

    // Without gz_addresses a name makes no address object; 31 characters without "-" fit.
    await env.manager.ensure([{ name: long, addresses: ['fd00:1122:3344:101::b'] }, gz('int-dns', 2), gz(long.slice(0, -1), 3)]);
    expect((await env.sim.zones.exec('global', ['ipadm', 'show-addr', '-p', '-o', 'ADDR', 'underlay0/abcdefghijabcdefghijabcdefghijk'])).stdout)
      .toBe('fd00:1122:3344:101::a3/64\n');
  });

  it('refuses, before recording anything, a name whose gz_addresses would take over an address object of the agent\'s', async () => {
    const env = await openEnv();
    const showAddr = (addrobj: string) => env.sim.zones.exec('global', ['ipadm', 'show-addr', '-p', '-o', 'ADDR', addrobj]);
    // The sled's own underlay address, as the agent makes it at start-up (ensureUnderlay).
    await env.sim.zones.exec('global', ['ipadm', 'create-addr', '-t', '-T', 'addrconf', 'underlay0/linklocal']);
    await env.sim.zones.exec('global', ['ipadm', 'create-addr', '-t', '-T', 'static', '-a', `${UNDERLAY}/64`, 'underlay0/sled6']);
    const linkLocal = (await showAddr('underlay0/linklocal')).stdout;

    for (const [name, addrobj, use] of [
      ['sled6', 'sled6', 'the sled\'s own underlay address'],
      ['sled-6', 'sled6', 'the sled\'s own underlay address'],
      ['linklocal', 'linklocal', 'the link-local address every static IPv6 address on the VNIC needs'],
      ['link-local', 'linklocal', 'the link-local address every static IPv6 address on the VNIC needs'],
      ['omicron6', 'omicron6', 'the agent\'s static IPv6 addresses'],
    ] as const) {
      const err = await rejection(env.manager.ensure([NEXUS, { name, addresses: ['fd00:1122:3344:101::7'], gz_addresses: ['fd00:1122:3344:101::8'] }]));
      expect(err.statusCode).toBe(400);
      expect(err.message).toBe(`service "${name}": its gz_addresses would go on the address object underlay0/${addrobj} (the name without "-"), `
        + `which the agent uses for ${use}: rename the service`);
    }
    await expect(readFile(env.ledgerPath, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await env.sim.zones.list()).toEqual([]);
    expect((await showAddr('underlay0/sled6')).stdout).toBe(`${UNDERLAY}/64\n`);
    expect((await showAddr('underlay0/linklocal')).stdout).toBe(linkLocal);
  });

  it('refuses with 400, before recording anything, addresses that could never be brought up, naming service, field and address', async () => {
    const env = await openEnv();
    const nexus = (addresses: string[], gz_addresses: string[] = []) => ({ name: 'nexus', addresses, gz_addresses });
    const unusable = (field: string, a: string, what: string) => `service "nexus": ${field} entry "${a}" is ${what}, `
      + 'which no service can be reached at on the underlay: give it a unicast address from the sled\'s underlay subnet';
    const twice = (where: string, other: string) => `${where} is ${other}, and an address can be on the underlay only once `
      + '(ipadm would refuse the second with "Address already in use"): give every address once, and none that the sled has';
    const cases: Array<[ServiceRequest[], string]> = [
      [[{ name: 'internal-dns', addresses: [] }], 'service "internal-dns": addresses has 0 entries, and it needs exactly one: '
        + 'DNS is served on it (ports 5353 and 53), and only one address is configured in its zone'],
      [[{ name: 'internal-dns', addresses: ['fd00:1122:3344:101::5', 'fd00:1122:3344:101::7'] }],
        'service "internal-dns": addresses has 2 entries, and it needs exactly one: '
        + 'DNS is served on it (ports 5353 and 53), and only one address is configured in its zone'],
      [[nexus(['fd00:1122:3344:101::3%underlay0'])], 'service "nexus": addresses entry "fd00:1122:3344:101::3%underlay0" has a zone '
        + 'index ("%underlay0"), which an underlay address does not take: give it as "fd00:1122:3344:101::3"'],
      [[nexus(['fe80::1%x'])], unusable('addresses', 'fe80::1%x', 'a link-local address (fe80::/10)')],
      [[nexus(['::'])], unusable('addresses', '::', 'the unspecified address (::/128)')],
      [[nexus(['::1'])], unusable('addresses', '::1', 'the loopback address (::1/128)')],
      [[nexus(['::10.0.0.1'])], unusable('addresses', '::10.0.0.1', 'a deprecated IPv4-compatible address (::/96)')],
      [[nexus(['::ffff:10.0.0.1'])], unusable('addresses', '::ffff:10.0.0.1', 'an IPv4-mapped address (::ffff:0:0/96)')],
      [[nexus(['ff02::1'])], unusable('addresses', 'ff02::1', 'a multicast address (ff00::/8)')],
      [[nexus(['fd00:1122:3344:101::3'], ['FEBF::1'])], unusable('gz_addresses', 'FEBF::1', 'a link-local address (fe80::/10)')],
      [[nexus(['fd00:1122:3344:101::3'], ['fd00:1122:3344:0101:0::1'])],
        twice('service "nexus": gz_addresses entry "fd00:1122:3344:0101:0::1"', 'the sled\'s own underlay address (on underlay0/sled6)')],
      [[nexus([UNDERLAY])], twice(`service "nexus": addresses entry "${UNDERLAY}"`, 'the sled\'s own underlay address (on underlay0/sled6)')],
      [[nexus(['fd00:1122:3344:101::3', 'FD00:1122:3344:101::3'])],
        twice('service "nexus": addresses entry "FD00:1122:3344:101::3"', 'already in the addresses of service "nexus"')],
      [[nexus(['fd00:1122:3344:101::3'], ['fd00:1122:3344:101::3'])],
        twice('service "nexus": gz_addresses entry "fd00:1122:3344:101::3"', 'already in the addresses of service "nexus"')],
      [[DNS, { name: 'oximeter', addresses: ['fd00:1122:3344:101::6'] }],
        twice('service "oximeter": addresses entry "fd00:1122:3344:101::6"', 'already in the gz_addresses of service "internal-dns"')],
      [[NEXUS, DNS, { ...OXIMETER, gz_addresses: ['fd00:1122:3344:101::6'] }],
        twice('service "oximeter": gz_addresses entry "fd00:1122:3344:101::6"', 'already in the gz_addresses of service "internal-dns"')],
    ];
    for (const [request, message] of cases) {
      const err = await rejection(env.manager.ensure(request));
      expect(err.statusCode).toBe(400);
      expect(err.message).toBe(message);
    }
    await expect(readFile(env.ledgerPath, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await env.sim.zones.list()).toEqual([]);
    expect(await serviceVnics(env.sim)).toEqual([]);
  });

  it('records and configures addresses in canonical text, and takes other spellings of them as the same request', async () => {
    const env = await openEnv();
    const spelt = { name: 'internal-dns', addresses: ['FD00:1122:3344:0101:0:0:0:5'], gz_addresses: ['fd00:1122:3344:101:0000::6'] };
    await env.manager.ensure([spelt]);
    expect((await ledger(env)).services[0]).toMatchObject({ addresses: DNS.addresses, gz_addresses: DNS.gz_addresses });
    expect(env.manager.list()[0]).toMatchObject({ addresses: DNS.addresses, gz_addresses: DNS.gz_addresses });
    const created = env.ch.calls.exec.filter((c) => c.argv[1] === 'create-addr' && c.argv[4] === 'static').map((c) => c.argv[6]);
    expect(created.sort()).toEqual([`${DNS.addresses[0]}/64`, `${DNS.gz_addresses![0]}/64`]);
    const rec = await simZoneRecord(env.sim, 'oxz_internal-dns');
    expect(rec.services['svc:/system/illumos/internal-dns'].instances.default.pgs.config.props.server_address).toBe(`[${DNS.addresses[0]}]:5353`);
    expect(rec.routes).toEqual(DNS.gz_addresses);

    env.ch.reset();
    await env.manager.ensure([spelt]);
    await env.manager.ensure([DNS]);
    expect(env.ch.calls.exec).toEqual([]);
  });

  it('the simulated host takes the address object names libipadm takes, and no others', async () => {
    const env = await openEnv();
    const create = (name: string, n: number) =>
      env.sim.zones.exec('global', ['ipadm', 'create-addr', '-t', '-T', 'static', '-a', `fd00:1122:3344:101::${n}/64`, `underlay0/${name}`]);
    await create(`a${'1'.repeat(30)}`, 1);
    for (const [i, name] of [`a${'1'.repeat(31)}`, 'a_b', '1ab', ''].entries()) {
      await expect(create(name, i + 2)).rejects.toMatchObject({ code: 'ECOMMAND', message: expect.stringContaining('Invalid argument') });
    }
  });

  it('records a service before its zone is made: a failed set-up is reported and finished by the next request', async () => {
    const env = await openEnv();
    env.ch.failInstall.add('oxz_oximeter');
    const err = await env.manager.ensure([NEXUS, OXIMETER]).then(() => null, (e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain('oximeter');
    expect(err!.message).not.toContain('nexus:');
    expect((await ledger(env)).services.map((s: any) => s.name)).toEqual(['nexus', 'oximeter']);
    expect(await serviceState(env.sim, 'oxz_nexus', 'nexus')).toBe('online');

    env.ch.failInstall.clear();
    env.ch.reset();
    await env.manager.ensure([NEXUS, OXIMETER]);
    expect(await serviceState(env.sim, 'oxz_oximeter', 'oximeter')).toBe('online');
    // nexus was already up: left alone. oximeter reused its recorded VNIC.
    expect(env.ch.calls.exec.every((c) => c.zone === 'oxz_oximeter')).toBe(true);
    expect(env.ch.calls.createVnic).toEqual([]);
  });

  it('serialises concurrent requests: each service is recorded once with one VNIC', async () => {
    const env = await openEnv();
    await Promise.all([env.manager.ensure([NEXUS]), env.manager.ensure([NEXUS, OXIMETER]), env.manager.ensure([OXIMETER, NEXUS])]);
    expect((await ledger(env)).services.map((s: any) => s.name)).toEqual(['nexus', 'oximeter']);
    expect(await serviceVnics(env.sim)).toHaveLength(2);
    expect(env.ch.calls.configure.sort()).toEqual(['oxz_nexus', 'oxz_oximeter']);
  });
});

describe('ServiceManager after a restart', () => {
  it('claims its zones and adopts those still running, re-making one deleted meanwhile with its recorded VNIC', async () => {
    const first = await openEnv();
    await first.manager.ensure([NEXUS, OXIMETER, DNS]);
    const vnicsBefore = (await first.sim.links.listVnics()).map((v) => v.name).sort();
    const recorded = new Map<string, string>((await ledger(first)).services.map((s: any) => [s.name, s.control_vnic]));
    await first.sim.close();

    const second = await openEnv(first.dir);
    await second.sim.simulateZoneFailure('oxz_oximeter');
    expect(second.manager.claimedZones()).toEqual(new Map([
      ['oxz_nexus', [recorded.get('nexus')]],
      ['oxz_oximeter', [recorded.get('oximeter')]],
      ['oxz_internal-dns', [recorded.get('internal-dns')]],
    ]));

    const summary = await second.manager.resume();
    expect(summary).toEqual({ adopted: ['internal-dns', 'nexus'], recreated: ['oximeter'], failed: [] });
    expect(second.ch.calls.createVnic).toEqual([]);
    expect(second.ch.calls.configure).toEqual(['oxz_oximeter']);
    expect((await second.sim.links.listVnics()).map((v) => v.name).sort()).toEqual(vnicsBefore);
    expect((await second.sim.zones.config('oxz_oximeter')).nets).toEqual([{ physical: recorded.get('oximeter') }]);
    for (const [zone, svc] of [['oxz_nexus', 'nexus'], ['oxz_oximeter', 'oximeter'], ['oxz_internal-dns', 'internal-dns']] as const) {
      expect(await serviceState(second.sim, zone, svc)).toBe('online');
    }
    const oximeter = await simZoneRecord(second.sim, 'oxz_oximeter');
    expect(oximeter.addresses[`${recorded.get('oximeter')}/omicron6`].addr).toBe(`${OXIMETER.addresses[0]}/64`);

    // Up again: the same request is a no-op, a new service gets a VNIC name never used before.
    second.ch.reset();
    await second.manager.ensure([NEXUS, OXIMETER, DNS]);
    expect(second.ch.calls.exec).toEqual([]);
    await second.manager.ensure([NEXUS, OXIMETER, DNS, { name: 'clickhouse-keeper', addresses: ['fd00:1122:3344:101::8'] }]);
    expect(second.ch.calls.createVnic).toHaveLength(1);
    expect(vnicsBefore).not.toContain(second.ch.calls.createVnic[0]);
  });

  it('re-creates a VNIC that is gone under the recorded name, and one failure does not stop the others', async () => {
    const first = await openEnv();
    await first.manager.ensure([NEXUS, OXIMETER]);
    const recorded = new Map<string, string>((await ledger(first)).services.map((s: any) => [s.name, s.control_vnic]));
    await first.sim.close();

    const second = await openEnv(first.dir);
    await second.sim.simulateZoneFailure('oxz_nexus');
    await second.sim.simulateZoneFailure('oxz_oximeter');
    await second.sim.links.deleteVnic(recorded.get('nexus')!);
    second.ch.failInstall.add('oxz_oximeter');

    const summary = await second.manager.resume();
    expect(summary.recreated).toEqual(['nexus']);
    expect(summary.adopted).toEqual([]);
    expect(summary.failed).toHaveLength(1);
    expect(summary.failed[0]!.name).toBe('oximeter');
    expect(summary.failed[0]!.error).toContain('injected failure');
    expect(second.ch.calls.createVnic).toEqual([recorded.get('nexus')]);
    expect(await serviceState(second.sim, 'oxz_nexus', 'nexus')).toBe('online');

    // The failed one is still claimed and is finished by the next request.
    second.ch.failInstall.clear();
    await second.manager.ensure([NEXUS, OXIMETER]);
    expect(await serviceState(second.sim, 'oxz_oximeter', 'oximeter')).toBe('online');
  });

  it('refuses a ledger it cannot trust rather than acting on it', async () => {
    const dir = await tempDir();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'services.json'), JSON.stringify({ services: [{ name: '../x', addresses: [], gz_addresses: [], control_vnic: 'oxControlService0' }] }));
    await expect(openEnv(dir)).rejects.toThrow(/services ledger .* is not usable/);
  });

  it('refuses a ledger whose address is not an IPv6 address, naming it', async () => {
    const dir = await tempDir();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'services.json'), JSON.stringify({ services: [{ name: 'nexus', addresses: [], gz_addresses: ['nope'], control_vnic: 'oxControlService0' }] }));
    await expect(openEnv(dir)).rejects.toThrow(/services ledger .* is not usable: service "nexus": gz_addresses entry "nope" is not an IPv6 address$/);
  });

  it('reads a ledger written with other spellings of addresses as canonical: resume leaves running addresses alone', async () => {
    const first = await openEnv();
    await first.manager.ensure([NEXUS, DNS]);
    await first.sim.close();
    // As a ledger from before addresses were canonicalised holds them, while ipadm prints them canonical.
    const { writeFile } = await import('node:fs/promises');
    const old = await ledger(first);
    const spelling = new Map([[NEXUS.addresses[0], 'FD00:1122:3344:101::3'], [DNS.addresses[0], 'fd00:1122:3344:0101::5'],
      [DNS.gz_addresses![0], 'fd00:1122:3344:101:0:0:0:6']]);
    for (const s of old.services) {
      s.addresses = s.addresses.map((a: string) => spelling.get(a));
      s.gz_addresses = s.gz_addresses.map((a: string) => spelling.get(a));
    }
    await writeFile(first.ledgerPath, JSON.stringify(old));

    const second = await openEnv(first.dir);
    expect(second.manager.list().map((s) => [s.addresses, s.gz_addresses]))
      .toEqual([[NEXUS.addresses, []], [DNS.addresses, DNS.gz_addresses]]);
    expect(await second.manager.resume()).toEqual({ adopted: ['internal-dns', 'nexus'], recreated: [], failed: [] });
    expect(second.ch.calls.exec.filter((c) => c.argv[0] === 'ipadm' && c.argv[1] !== 'show-addr')).toEqual([]);

    // The request that wrote it, and its canonical form, are both the same services.
    second.ch.reset();
    await second.manager.ensure([{ ...NEXUS, addresses: ['FD00:1122:3344:101::3'] },
      { name: 'internal-dns', addresses: ['fd00:1122:3344:0101::5'], gz_addresses: ['fd00:1122:3344:101:0:0:0:6'] }]);
    await second.manager.ensure([NEXUS, DNS]);
    expect(second.ch.calls.exec).toEqual([]);
  });
});
