// The commands the agent runs in a zone (src/host/commands.ts), as a simulated zone runs them:
// ipadm over the zone's own links and addresses, svccfg, svcadm and svcs over its SMF services
// (smf.ts), tail over their restarter logs (smf.ts), route; in the global zone, ipadm over the
// host's links. Anything else is "command not found". On illumos these are the real programs behind zlogin (zones.ts); here zones.ts's exec
// hands them to run() and turns a CommandFailure into zlogin's ECOMMAND.
import { isIP, isIPv6 } from 'node:net';
import { GLOBAL_ZONE } from '../host/index.js';
import { ADDROBJ_NAME_MAX, PROPOLIS_SERVICE, svcLogFile } from '../host/commands.js';
import type { SimMachine } from './machine.js';
import { splitFmri, type SimSmf, type SmfPg } from './smf.js';
import type { SimLinks } from './vnic.js';
import type { KernelRuntime, ZoneRecord } from './zones.js';

export interface ZoneAddress {
  type: 'static' | 'addrconf';
  /** "<ip>/<prefix>" */
  addr: string;
}

/** A command's non-zero exit, with its stderr. */
export class CommandFailure extends Error {
  constructor(
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(stderr);
  }
}

const fail = (stderr: string, exitCode = 1): never => {
  throw new CommandFailure(exitCode, stderr.endsWith('\n') ? stderr : `${stderr}\n`);
};

/** An EUI-64 link-local address from a MAC. */
function linkLocalFor(mac: string): string {
  const b = mac.split(':').map((x) => Number.parseInt(x, 16));
  const g = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `fe80::${g((b[0] ?? 0) ^ 2, b[1] ?? 0)}:${g(b[2] ?? 0, 0xff)}:${g(0xfe, b[3] ?? 0)}:${g(b[4] ?? 0, b[5] ?? 0)}`;
}

function cidrProblem(cidr: string): string | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return 'not <address>/<prefix>';
  const family = isIP(m[1]!);
  if (family === 0) return `${m[1]} is not an IP address`;
  if (Number(m[2]) > (family === 4 ? 32 : 128)) return `prefix /${m[2]} is too long`;
  return null;
}

const ADDROBJ_RE = new RegExp(`^([A-Za-z][A-Za-z0-9_.]*[0-9])/([A-Za-z][A-Za-z0-9]{0,${ADDROBJ_NAME_MAX - 1}})$`);
const PG_RE = /^[A-Za-z][-_A-Za-z0-9]*$/;
const INSTANCE_RE = /^[A-Za-z0-9_][-_.,+A-Za-z0-9]*$/;
const SITE_MANIFEST_RE = /^\/var\/svc\/manifest\/site\/([A-Za-z0-9][-_.A-Za-z0-9]*)\/manifest\.xml$/;
/** Manifests not named <svc>/manifest.xml (src/host/commands.ts): the service each defines, and whether with :default. */
const KNOWN_MANIFESTS = new Map<string, { service: string; defaultInstance: boolean }>([
  ['/var/svc/manifest/site/crucible/agent.xml', { service: 'svc:/oxide/crucible/agent', defaultInstance: true }],
  ['/var/svc/manifest/site/crucible/downstairs.xml', { service: 'svc:/oxide/crucible/downstairs', defaultInstance: false }],
]);

export class SimInZone {
  /** Persisted: the global zone's addresses (exec in GLOBAL_ZONE). */
  global: { addresses: Record<string, ZoneAddress> } = { addresses: {} };

  constructor(
    private readonly m: SimMachine,
    private readonly smf: SimSmf,
    private readonly links: SimLinks,
  ) {}

  /** Absent in state files older than the global zone's addresses. */
  restore(global: { addresses: Record<string, ZoneAddress> } | undefined): void {
    this.global = global ?? { addresses: {} };
  }

  /** ipadm in the global zone: its stdout, or a CommandFailure. */
  runGlobal(argv: readonly string[], signal: AbortSignal): Promise<string> {
    const [cmd, ...args] = argv as [string, ...string[]];
    const usage = (): never => fail(`${cmd}: unsupported arguments in the simulated global zone: ${args.join(' ')}`, 2);
    return this.ipadm(this.globalZone(), args, signal, usage);
  }

  /** The global zone as the in-zone commands see a zone: its links are the host's. */
  private globalZone(): ZoneRecord {
    const links = this.links.linkNames();
    return {
      spec: { name: GLOBAL_ZONE, brand: 'global', zonepath: '/', nets: links.map((physical) => ({ physical })), devices: [], datasets: [] },
      state: 'running',
      image: null,
      zoneid: 0,
      addresses: this.global.addresses,
      routes: [],
      services: {},
      vms: {},
    };
  }

  /** Runs `argv` in a running zone: its stdout, or a CommandFailure. */
  async run(rec: ZoneRecord, rt: KernelRuntime, argv: readonly string[], signal: AbortSignal): Promise<string> {
    const [cmd, ...args] = argv as [string, ...string[]];
    const usage = (): never => fail(`${cmd}: unsupported arguments in a simulated zone: ${args.join(' ')}`, 2);
    switch (cmd) {
      case 'ipadm':
        return this.ipadm(rec, args, signal, usage);
      case 'svccfg':
        return this.svccfg(rec, args, usage);
      case 'svcadm':
        return this.svcadm(rec, rt, args, usage);
      case 'svcs':
        return this.svcs(rec, args, usage);
      case 'tail':
        return this.tail(rec, args, usage);
      case 'route': {
        if (args.length !== 5 || args[0] !== 'add' || args[1] !== '-inet6' || args[2] !== 'default' || args[3] !== '-inet6') return usage();
        const gw = args[4]!;
        if (!isIPv6(gw)) fail(`route: bad address: ${gw}`);
        if (!rec.routes.includes(gw)) rec.routes.push(gw);
        return `add net default: gateway ${gw}\n`;
      }
      default:
        return fail(`${cmd}: command not found`, 127);
    }
  }

  private async ipadm(rec: ZoneRecord, args: readonly string[], signal: AbortSignal, usage: () => never): Promise<string> {
    const sub = args[0];
    if (sub === 'show-addr') {
      if (args.length !== 5 || args[1] !== '-p' || args[2] !== '-o' || args[3] !== 'ADDR') return usage();
      const a = rec.addresses[args[4]!];
      if (a === undefined) fail('ipadm: Address object not found');
      return `${a!.addr}\n`;
    }
    if (sub === 'delete-addr') {
      if (args.length !== 2) return usage();
      if (rec.addresses[args[1]!] === undefined) fail('ipadm: Could not delete address: Address object not found');
      delete rec.addresses[args[1]!];
      return '';
    }
    if (sub !== 'create-addr' || args[1] !== '-t' || args[2] !== '-T') return usage();
    let address: ZoneAddress;
    let addrobj: string;
    if (args[3] === 'addrconf' && args.length === 5) {
      addrobj = args[4]!;
      address = { type: 'addrconf', addr: '' };
    } else if (args[3] === 'static' && args.length === 7 && args[4] === '-a') {
      addrobj = args[6]!;
      const problem = cidrProblem(args[5]!);
      if (problem !== null) fail(`ipadm: Invalid argument provided: ${args[5]}: ${problem}`);
      address = { type: 'static', addr: args[5]! };
    } else {
      return usage();
    }
    const m = ADDROBJ_RE.exec(addrobj);
    if (!m) fail(`ipadm: Invalid argument provided: address object name ${addrobj}`);
    const vnic = m![1]!;
    const check = (): void => {
      // The zone's NICs: those of its configuration, and those given to this boot of it.
      if (!rec.spec.nets.some((n) => n.physical === vnic) && this.links.zoneHolding(vnic) !== rec.spec.name) {
        fail('ipadm: Could not create address: No such interface');
      }
      if (rec.addresses[addrobj] !== undefined) fail('ipadm: Could not create address: Address object already exists');
      if (address.type === 'static') {
        const ip = address.addr.split('/')[0]!;
        if (Object.values(rec.addresses).some((a) => a.addr.split('/')[0] === ip)) fail('ipadm: Could not create address: Address already in use');
      }
    };
    check();
    await this.m.sleep(this.m.lat('address', rec.spec.name, 'ipadm create-addr'), signal);
    check();
    if (address.type === 'addrconf') {
      const mac = this.links.vnic(vnic)?.mac ?? '02:08:20:00:00:00';
      address = { type: 'addrconf', addr: `${linkLocalFor(mac)}/10` };
    }
    rec.addresses[addrobj] = address;
    return '';
  }

  /** The service or instance an FMRI names, or exit 1 as svccfg does. */
  private smfEntity(rec: ZoneRecord, fmri: string): { pgs: Record<string, SmfPg> } {
    const service = rec.services[fmri];
    if (service !== undefined) return service;
    const inst = this.smf.instance(rec, fmri);
    if (inst !== undefined) return inst;
    return fail(`svccfg: Pattern '${fmri}' doesn't match any instances or services`);
  }

  private svccfg(rec: ZoneRecord, args: readonly string[], usage: () => never): string {
    if (args[0] === 'import') {
      if (args.length !== 2) return usage();
      const known = KNOWN_MANIFESTS.get(args[1]!);
      const m = SITE_MANIFEST_RE.exec(args[1]!);
      if (known === undefined && !m) fail(`svccfg: failed to open "${args[1]}": No such file or directory`);
      const svc = known?.service ?? `svc:/system/illumos/${m![1]}`;
      const service = (rec.services[svc] ??= { pgs: {}, instances: {} });
      if (known?.defaultInstance ?? true) service.instances.default ??= { enabled: false, temporary: null, state: 'disabled', pgs: {} };
      return '';
    }
    if (args[0] !== '-s' || args.length < 3) return usage();
    const fmri = args[1]!;
    const verb = args[2];
    switch (verb) {
      case 'add': {
        if (args.length !== 4) return usage();
        const service = rec.services[fmri];
        if (service === undefined) fail(`svccfg: Pattern '${fmri}' doesn't match any services`);
        const name = args[3]!;
        if (!INSTANCE_RE.test(name)) fail(`svccfg: Invalid name "${name}".`);
        if (service!.instances[name] !== undefined) fail(`svccfg: Instance "${name}" already exists`);
        service!.instances[name] = { enabled: false, temporary: null, state: 'disabled', pgs: {} };
        return '';
      }
      case 'addpg': {
        if (args.length !== 5) return usage();
        const entity = this.smfEntity(rec, fmri);
        const [pg, type] = [args[3]!, args[4]!];
        if (!PG_RE.test(pg)) fail(`svccfg: Invalid property group name "${pg}".`);
        entity.pgs[pg] ??= { type, props: {} };
        return '';
      }
      case 'setprop': {
        if (args.length !== 4) return usage();
        const entity = this.smfEntity(rec, fmri);
        const m = /^([^/=]+)\/([^=]+)=(.*)$/s.exec(args[3]!);
        if (!m) return usage();
        const group = entity.pgs[m[1]!];
        if (group === undefined) fail(`svccfg: No such property group "${m[1]}".`);
        group!.props[m[2]!] = m[3]!;
        return '';
      }
      case 'refresh':
        if (args.length !== 3) return usage();
        this.smfEntity(rec, fmri);
        return '';
      default:
        return usage();
    }
  }

  /** Every instance of the zone with its state, by FMRI, as svcs lists them. */
  private instances(rec: ZoneRecord): Array<{ fmri: string; state: string }> {
    return Object.entries(rec.services)
      .flatMap(([svc, service]) => Object.entries(service.instances).map(([name, inst]) => ({ fmri: `${svc}:${name}`, state: inst.state ?? 'uninitialized' })))
      .sort((a, b) => (a.fmri < b.fmri ? -1 : a.fmri > b.fmri ? 1 : 0));
  }

  private svcs(rec: ZoneRecord, args: readonly string[], usage: () => never): string {
    if (args.length === 4 && args[0] === '-a' && args[1] === '-H' && args[2] === '-o' && args[3] === 'state,fmri') {
      return this.instances(rec).map((i) => `${i.state} ${i.fmri}\n`).join('');
    }
    if (args.length !== 1 || args[0] !== '-xv') return usage();
    return this.instances(rec)
      .filter((i) => i.state === 'offline' || i.state === 'degraded' || i.state === 'maintenance')
      .map((i) => `${i.fmri}\n State: ${i.state}\n   See: ${svcLogFile(i.fmri)}\n`
        + `Impact: This service is ${i.state === 'degraded' ? 'degraded' : 'not running'}.\n\n`)
      .join('');
  }

  /** tail -n <N> of an instance's restarter log, the only files a simulated zone has. */
  private tail(rec: ZoneRecord, args: readonly string[], usage: () => never): string {
    if (args.length !== 3 || args[0] !== '-n' || !/^\d+$/.test(args[1]!)) return usage();
    const want = Number(args[1]);
    const fmri = this.instances(rec).find((i) => svcLogFile(i.fmri) === args[2])?.fmri;
    const lines = fmri === undefined ? undefined : this.smf.logLines(rec.spec.name, fmri);
    if (lines === undefined) return fail('tail: cannot open input');
    return want === 0 ? '' : lines.slice(-want).map((l) => `${l}\n`).join('');
  }

  private async svcadm(rec: ZoneRecord, rt: KernelRuntime, args: readonly string[], usage: () => never): Promise<string> {
    if (args[0] === 'mark') return this.svcadmMark(rec, rt, args, usage);
    if (args.length !== 3 || (args[0] !== 'enable' && args[0] !== 'disable') || args[1] !== '-t') return usage();
    const fmri = args[2]!;
    const inst = this.smf.instance(rec, fmri);
    if (inst === undefined) return fail(`svcadm: Pattern '${fmri}' doesn't match any instances`);
    const { service, instance } = splitFmri(fmri);
    if (args[0] === 'enable') {
      inst.temporary = true;
      if (inst.state !== 'online' && inst.state !== 'offline') this.smf.startInstance(rec, rt, service, instance!);
    } else {
      inst.temporary = false;
      rt.starting.get(fmri)?.abort();
      rt.starting.delete(fmri);
      if (service === PROPOLIS_SERVICE) await this.smf.stopPropolis(rec, rt, fmri);
      inst.state = 'disabled';
    }
    this.m.notify(rec.spec.name);
    return '';
  }

  /** svcadm mark maintenance|degraded <fmri>: at once; a Propolis in maintenance stops, as its contract is emptied. */
  private async svcadmMark(rec: ZoneRecord, rt: KernelRuntime, args: readonly string[], usage: () => never): Promise<string> {
    if (args.length !== 3 || (args[1] !== 'maintenance' && args[1] !== 'degraded')) return usage();
    const fmri = args[2]!;
    const inst = this.smf.instance(rec, fmri);
    if (inst === undefined) return fail(`svcadm: Pattern '${fmri}' doesn't match any instances`);
    if (args[1] === 'maintenance') {
      rt.starting.get(fmri)?.abort();
      rt.starting.delete(fmri);
      if (splitFmri(fmri).service === PROPOLIS_SERVICE) await this.smf.stopPropolis(rec, rt, fmri);
    }
    inst.state = args[1];
    this.m.notify(rec.spec.name);
    return '';
  }
}
