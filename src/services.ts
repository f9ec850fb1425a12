// Service zones (omicron services.rs, reference §10): PUT /services asks for a set of named
// services (nexus, oximeter, internal-dns, ...), each in its own zone `oxz_<name>` with its
// addresses and its SMF service online.
//
// What we do differently from the original, on purpose:
// - The set is kept in a JSON ledger that is committed BEFORE any host work, so a crash half-way
//   leaves a record from which resume() finishes the job at the next start; the original wrote
//   its TOML after the work, so a crash lost the services it had already made.
// - A request that is not a superset of the ledger is a 409 naming exactly the services that are
//   missing or changed, not a vague 500 ("Services already configured for this Sled Agent").
// - Names are validated (they become zone names and file paths) before anything changes: 400.
// - After a restart zones are adopted (ensureZoneRunning picks a zone up from any state), not
//   deleted and re-made; the control VNIC of each service is recorded so adoption reuses it.
// - A service whose set-up failed is retried by the next PUT /services (RSS retries on failure)
//   instead of being skipped because its name is already on file.
// - Concurrent calls are serialised; the per-service work of one call runs in parallel.
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { conflict, invalidRequest } from './common/errors.js';
import { canonicalIpv6, formatIpv6, parseIpv6, unusableOnUnderlay } from './common/ipv6.js';
import type { Host } from './host/index.js';
import { GLOBAL_ZONE, isHostError } from './host/index.js';
import {
  ADDROBJ_LINKLOCAL, ADDROBJ_NAME_MAX, ADDROBJ_SLED6, ADDROBJ_STATIC6,
  routeAddDefault6, siteManifest, svcadmEnable, svccfgAddPg, svccfgImport, svccfgRefresh, svccfgSetProp, zoneImage,
} from './host/commands.js';
import { Ledger } from './ledger.js';
import type { ServiceRequest } from './params.js';
import {
  ensureAddress, ensureZoneRunning, waitForOnline, zoneName,
  type Phase, type ReadinessOptions, type VnicNames,
} from './zone.js';
import { serviceBundle, type ZoneBundles } from './zone-bundle.js';

/**
 * What a service name may be. It becomes the zone name `oxz_<name>` and the paths
 * `/opt/oxide/<name>.tar.gz` and `/var/svc/manifest/site/<name>/manifest.xml`, so: lower case,
 * no "/", "." or "_" (an "_" could make `oxz_<name>` collide with a storage zone
 * `oxz_<kind>_<pool>` or an instance zone), and short enough that the zone name stays well inside
 * ZONENAME_MAX (63 characters).
 */
export const SERVICE_NAME_RE = /^[a-z][a-z0-9-]{0,40}$/;

/** The address object name a service's gz_addresses go under: libipadm takes letters and digits only. */
export function gzAddrobjName(service: string): string {
  return service.replace(/[-_]/g, '');
}

/** DNS ports (reference §1). */
export const DNS_PORT = 53;
export const DNS_SERVER_PORT = 5353;

/** One service as the ledger records it. */
export interface ServiceRecord {
  name: string;
  addresses: string[];
  /**
   * Global-zone addresses the request asked for: put on the underlay VNIC in the global zone
   * and the first made the zone's gateway (see bringUp()); part of the superset rule.
   */
  gz_addresses: string[];
  /** The zone's control VNIC, so adoption after a restart reuses it rather than making another. */
  control_vnic: string;
}

export interface ServicesLedger {
  services: ServiceRecord[];
}

export interface ServiceManagerOptions {
  host: Host;
  log: Logger;
  /** e.g. /var/oxide/services.json */
  ledgerPath: string;
  vnics: VnicNames;
  /** Parent of the zonepaths, e.g. "/zone". */
  zoneRoot: string;
  /** The link control VNICs go over, e.g. "stub0". */
  controlLink: string;
  wait: Omit<ReadinessOptions, 'signal'>;
  /** The sled's underlay IPv6 address: the zones' default route when a request names no gz_address. */
  underlayAddress?: string;
  /** The global zone's VNIC gz_addresses go on (`<vnic>/<service name without - and _>`), e.g. "underlay0". */
  underlayVnic: string;
  /** Optional: where the evidence of a failed set-up goes (the zone is left for the next try to reuse). */
  bundles?: ZoneBundles;
}

export interface ResumeSummary {
  /** Services whose zone still existed and was picked up. */
  adopted: string[];
  /** Services whose zone was gone (or never finished) and was made again. */
  recreated: string[];
  failed: Array<{ name: string; error: string }>;
}

export class ServiceManager {
  readonly #host: Host;
  readonly #log: Logger;
  readonly #ledger: Ledger<ServicesLedger>;
  readonly #options: ServiceManagerOptions;
  /** Services whose set-up completed in this process (so a repeated request does nothing). */
  readonly #up = new Set<string>();
  /** Serialises ensure() and resume(). */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(options: ServiceManagerOptions, ledger: Ledger<ServicesLedger>) {
    this.#options = options;
    this.#host = options.host;
    this.#log = options.log.child({ component: 'ServiceManager' });
    this.#ledger = ledger;
  }

  static async open(options: ServiceManagerOptions): Promise<ServiceManager> {
    const ledger = await Ledger.open<ServicesLedger>(options.ledgerPath, () => ({ services: [] }),
      (raw) => checkLedger(raw, options.ledgerPath));
    // VNIC names on file must never be handed out again, even if the VNIC itself is gone now.
    options.vnics.reserve(ledger.value.services.map((s) => s.control_vnic));
    const manager = new ServiceManager(options, ledger);
    manager.#log.info({ ledger: options.ledgerPath, services: ledger.value.services.map((s) => s.name) },
      ledger.loaded ? 'services ledger loaded' : 'no services ledger yet');
    return manager;
  }

  /** The services on file (a copy). */
  list(): ServiceRecord[] {
    return this.#ledger.value.services.map((s) => ({ ...s, addresses: [...s.addresses], gz_addresses: [...s.gz_addresses] }));
  }

  /** The zones this manager owns according to its ledger, with their VNICs (for orphan removal at start-up). */
  claimedZones(): Map<string, string[]> {
    return new Map(this.#ledger.value.services.map((s) => [zoneName(s.name), [s.control_vnic]]));
  }

  /**
   * PUT /services. `requests` must include every service already on file, unchanged (409
   * otherwise, naming them); new ones are committed to the ledger, then every requested service
   * not yet up is brought up. Resolves once all of them are online; rejects (a 500) naming the
   * services that failed, which stay on file and are retried by the next call or at restart.
   */
  async ensure(requests: ServiceRequest[]): Promise<void> {
    // Validated before queueing: a bad request changes nothing and waits for nothing.
    const wanted = validateRequests(requests, this.#options);
    return this.#serial(() => this.#ensure(wanted));
  }

  async #ensure(wanted: ServiceRecordInput[]): Promise<void> {
    const ledger = this.#ledger.value;
    const byName = new Map(wanted.map((s) => [s.name, s]));
    const missing: string[] = [];
    const changed: string[] = [];
    for (const known of ledger.services) {
      const asked = byName.get(known.name);
      if (!asked) missing.push(known.name);
      else if (!sameService(known, asked)) changed.push(known.name);
    }
    if (missing.length > 0 || changed.length > 0) {
      const parts: string[] = [];
      if (missing.length > 0) parts.push(`missing ${missing.map((n) => `"${n}"`).join(', ')}`);
      if (changed.length > 0) {
        parts.push(`changed ${changed.map((n) => {
          const k = ledger.services.find((s) => s.name === n)!;
          return `"${n}" (configured with addresses ${JSON.stringify(k.addresses)}, gz_addresses ${JSON.stringify(k.gz_addresses)})`;
        }).join(', ')}`);
      }
      throw conflict(`services are already configured on this sled and a request must include all of them unchanged: ${parts.join('; ')}`);
    }

    const known = new Set(ledger.services.map((s) => s.name));
    const added: ServiceRecord[] = wanted
      .filter((s) => !known.has(s.name))
      .map((s) => ({ ...s, control_vnic: this.#options.vnics.control('Service') }));
    if (added.length > 0) {
      ledger.services.push(...added);
      try {
        await this.#ledger.commit();
      } catch (err) {
        // Keep memory equal to what is on disk: these were never acknowledged.
        ledger.services.splice(ledger.services.length - added.length, added.length);
        throw err;
      }
      this.#log.info({ services: added.map((s) => s.name) }, 'services recorded');
    }

    // Up in this process and still running: nothing to do. Anything else (new, failed before,
    // or a zone that went away under us) is brought up again; every step is idempotent.
    const running = new Set((await this.#host.zones.list()).filter((z) => z.state === 'running').map((z) => z.name));
    const todo = ledger.services.filter((s) => byName.has(s.name) && !(this.#up.has(s.name) && running.has(zoneName(s.name))));
    const results = await Promise.allSettled(todo.map((s) => this.#bringUp(s)));
    const failed = todo
      .map((s, i) => ({ name: s.name, result: results[i]! }))
      .filter((r): r is { name: string; result: PromiseRejectedResult } => r.result.status === 'rejected');
    if (failed.length > 0) {
      throw new Error(`services failed to start (recorded; retried by the next request): ${failed
        .map((f) => `${f.name}: ${errMessage(f.result.reason)}`).join('; ')}`);
    }
  }

  /**
   * At start-up, after orphans were removed: brings every service on file up again, adopting a
   * zone that still runs and re-creating one that is gone. Failures are logged per service and
   * do not stop the others.
   */
  resume(): Promise<ResumeSummary> {
    return this.#serial(async () => {
      const summary: ResumeSummary = { adopted: [], recreated: [], failed: [] };
      const services = this.#ledger.value.services.filter((s) => !this.#up.has(s.name));
      await Promise.all(services.map(async (s) => {
        try {
          const how = await this.#bringUp(s);
          (how === 'adopted' ? summary.adopted : summary.recreated).push(s.name);
        } catch (err) {
          summary.failed.push({ name: s.name, error: errMessage(err) });
        }
      }));
      for (const list of [summary.adopted, summary.recreated]) list.sort();
      summary.failed.sort((a, b) => a.name.localeCompare(b.name));
      const level = summary.failed.length > 0 ? 'warn' : 'info';
      this.#log[level](summary, 'services resumed');
      return summary;
    });
  }

  /** The per-service steps of reference §10, each idempotent so it adopts as well as creates. */
  async #bringUp(s: ServiceRecord): Promise<'adopted' | 'recreated'> {
    const host = this.#host;
    const { wait } = this.#options;
    const zone = zoneName(s.name);
    const log = this.#log.child({ service: s.name, zone });
    const started = Date.now();
    let made = false;
    try {
      await ensureZoneRunning(host, {
        name: zone,
        image: zoneImage(s.name),
        controlVnic: s.control_vnic,
        controlLink: this.#options.controlLink,
        zoneRoot: this.#options.zoneRoot,
      }, wait, (phase: Phase) => {
        if (phase === 'configure' || phase === 'install') made = true;
        log.debug({ phase }, 'zone phase');
      });

      // Quirk kept from the original: every address uses the one addrobj `<vnic>/omicron6`
      // (ensureAddress's scheme), so each replaces the one before and only the LAST address of the
      // list is configured in the zone. RSS sends one address per service, so it does not bite.
      for (const address of s.addresses) await ensureAddress(host, zone, s.control_vnic, `${address}/64`);

      // Global-zone addresses: `<underlay vnic>/<name without - and _>` (reference §10 step 3),
      // the zone's gateway below. That is one addrobj per service, so of several the last stays
      // (RSS sends one).
      for (const address of s.gz_addresses) {
        await ensureAddress(host, GLOBAL_ZONE, this.#options.underlayVnic, `${address}/64`, { name: gzAddrobjName(s.name) });
      }

      const gateway = s.gz_addresses[0] ?? this.#options.underlayAddress;
      if (gateway !== undefined) await addDefaultRoute(host, zone, gateway);
      else log.warn('no gz_address and no underlay address: the zone gets no default route');

      const fmri = `svc:/system/illumos/${s.name}:default`;
      await host.zones.exec(zone, svccfgImport(siteManifest(s.name)));
      if (s.name === 'internal-dns') {
        const addr0 = s.addresses[0];
        if (addr0 === undefined) throw new Error('internal-dns needs an address to serve on');
        await ensurePropertyGroup(host, zone, fmri, 'config');
        await host.zones.exec(zone, svccfgSetProp(fmri, 'config/server_address', `[${addr0}]:${DNS_SERVER_PORT}`));
        await host.zones.exec(zone, svccfgSetProp(fmri, 'config/dns_address', `[${addr0}]:${DNS_PORT}`));
        await host.zones.exec(zone, svccfgRefresh(fmri));
      }
      await host.zones.exec(zone, svcadmEnable(fmri));
      await waitForOnline(host, zone, fmri, wait);
    } catch (err) {
      log.error({ err: errMessage(err), code: (err as { code?: unknown }).code }, 'service set-up failed');
      // The next try reconfigures the zone over whatever it shows now: keep that first. Never throws.
      await this.#options.bundles?.collect(serviceBundle(zone, s, err));
      throw err;
    }
    this.#up.add(s.name);
    const how = made ? 'recreated' : 'adopted';
    log.info({ how, addresses: s.addresses, vnic: s.control_vnic, ms: Date.now() - started }, 'service online');
    return how;
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/**
 * `route add -inet6 default -inet6 <gw>`, tolerating a default route that is already there (a
 * zone adopted after a restart keeps its routes; route(8) refuses with "entry exists").
 */
export async function addDefaultRoute(host: Host, zone: string, gateway: string): Promise<void> {
  try {
    await host.zones.exec(zone, routeAddDefault6(gateway));
  } catch (err) {
    if (isHostError(err, 'ECOMMAND') && /exists/i.test(`${err.message} ${(err as { stderr?: unknown }).stderr ?? ''}`)) return;
    throw err;
  }
}

/**
 * `svccfg -s <fmri> addpg <pg> application`, tolerating a group that exists. The real manifests
 * define `config` themselves; a simulated import defines no property groups (commands.ts), and
 * adding the instance-level group is harmless where the service already has one.
 */
export async function ensurePropertyGroup(host: Host, zone: string, fmri: string, pg: string): Promise<void> {
  try {
    await host.zones.exec(zone, svccfgAddPg(fmri, pg, 'application'));
  } catch (err) {
    if (isHostError(err, 'ECOMMAND') && /already exists/i.test(`${err.message} ${(err as { stderr?: unknown }).stderr ?? ''}`)) return;
    throw err;
  }
}

type ServiceRecordInput = Omit<ServiceRecord, 'control_vnic'>;

/**
 * The global-zone address objects the agent makes for itself on the underlay VNIC. A service whose
 * gz_addresses landed on one would take it over: ensureAddress finds the agent's address there,
 * deletes it and puts the service's in its place, and the agent takes it back at its next start.
 */
const AGENT_ADDROBJS = new Map([
  [ADDROBJ_SLED6, 'the sled\'s own underlay address'],
  [ADDROBJ_LINKLOCAL, 'the link-local address every static IPv6 address on the VNIC needs'],
  [ADDROBJ_STATIC6, 'the agent\'s static IPv6 addresses'],
]);

/**
 * Addresses that pass isIPv6 but that no service can be given on the underlay. ::/96 (but :: and
 * ::1, matched first) and ::ffff:0:0/96 are besides printed by ipadm in dotted form, so even
 * canonical text would never match what show-addr reports and every start would re-make them.
 */
/**
 * Checks every name and address; throws a 400 naming what is wrong. Pure: nothing changes.
 * Whatever passes is recorded before it is brought up and every later request must repeat it, so
 * what could never come up is refused here, and addresses are returned in canonical (RFC 5952)
 * text, which is what `ipadm show-addr` prints and ensureAddress compares against.
 */
function validateRequests(
  requests: ServiceRequest[], options: Pick<ServiceManagerOptions, 'underlayVnic' | 'underlayAddress'>,
): ServiceRecordInput[] {
  const { underlayVnic, underlayAddress } = options;
  if (!Array.isArray(requests)) throw invalidRequest('services must be an array');
  const seen = new Set<string>();
  // Only services with gz_addresses make an address object, so only theirs must fit and differ.
  const addrobjs = new Map<string, string>();
  // The zones and the global zone share one etherstub, so an address may be on one of them once.
  const taken = new Map<string, string>();
  if (underlayAddress !== undefined) {
    taken.set(canonicalIpv6(underlayAddress), `the sled's own underlay address (on ${underlayVnic}/${ADDROBJ_SLED6})`);
  }
  return requests.map((r) => {
    const name: unknown = r?.name;
    if (typeof name !== 'string' || !SERVICE_NAME_RE.test(name)) {
      throw invalidRequest(`invalid service name ${JSON.stringify(name)}: it must match ${SERVICE_NAME_RE.source} `
        + '(lower-case letters, digits and "-", starting with a letter, at most 41 characters)');
    }
    if (seen.has(name)) throw invalidRequest(`service "${name}" is listed more than once`);
    seen.add(name);
    const given = { addresses: r.addresses, gz_addresses: r.gz_addresses ?? [] };
    const canonical: Pick<ServiceRecordInput, 'addresses' | 'gz_addresses'> = { addresses: [], gz_addresses: [] };
    for (const field of ['addresses', 'gz_addresses'] as const) {
      const list: unknown = given[field];
      if (!Array.isArray(list)) throw invalidRequest(`service "${name}": ${field} must be an array`);
      for (const a of list as unknown[]) {
        const where = `service "${name}": ${field} entry ${JSON.stringify(a)}`;
        const address = usableAddress(a, where);
        const other = taken.get(address);
        if (other !== undefined) {
          throw invalidRequest(`${where} is ${other}, and an address can be on the underlay only once (ipadm would refuse `
            + 'the second with "Address already in use"): give every address once, and none that the sled has');
        }
        taken.set(address, `already in the ${field} of service "${name}"`);
        canonical[field].push(address);
      }
    }
    if (name === 'internal-dns' && canonical.addresses.length !== 1) {
      // It serves on its first address, and of several only the last is configured (see bringUp()).
      throw invalidRequest(`service "internal-dns": addresses has ${canonical.addresses.length} entries, and it needs exactly one: `
        + `DNS is served on it (ports ${DNS_SERVER_PORT} and ${DNS_PORT}), and only one address is configured in its zone`);
    }
    if (canonical.gz_addresses.length > 0) {
      const addrobj = gzAddrobjName(name);
      if (addrobj.length > ADDROBJ_NAME_MAX) {
        throw invalidRequest(`service "${name}": its gz_addresses go on the address object ${underlayVnic}/${addrobj} (the name without "-"), `
          + `and illumos takes at most ${ADDROBJ_NAME_MAX} characters after the "/": shorten the name by ${addrobj.length - ADDROBJ_NAME_MAX}`);
      }
      const agents = AGENT_ADDROBJS.get(addrobj);
      if (agents !== undefined) {
        throw invalidRequest(`service "${name}": its gz_addresses would go on the address object ${underlayVnic}/${addrobj} (the name without "-"), `
          + `which the agent uses for ${agents}: rename the service`);
      }
      const other = addrobjs.get(addrobj);
      if (other !== undefined) {
        throw invalidRequest(`services "${other}" and "${name}" would both put their gz_addresses on the address object ${underlayVnic}/${addrobj} `
          + '(the name without "-"), so one would replace the other\'s: rename one of them');
      }
      addrobjs.set(addrobj, name);
    }
    return { name, ...canonical };
  });
}

/** `a` in canonical text if a service can be given it on the underlay; a 400 starting with `where` otherwise. */
function usableAddress(a: unknown, where: string): string {
  if (typeof a !== 'string' || !isIPv6(a)) throw invalidRequest(`${where} is not an IPv6 address`);
  const [text, zoneIndex] = a.split('%') as [string, string?];
  const value = parseIpv6(text);
  const unusable = unusableOnUnderlay(value);
  if (unusable !== null) {
    throw invalidRequest(`${where} is ${unusable}, which no service can be reached at on the underlay: `
      + 'give it a unicast address from the sled\'s underlay subnet');
  }
  if (zoneIndex !== undefined) {
    throw invalidRequest(`${where} has a zone index ("%${zoneIndex}"), which an underlay address does not take: `
      + `give it as ${JSON.stringify(text)}`);
  }
  return formatIpv6(value);
}

/** Both sides hold canonical text (validateRequests, checkLedger), so the same address compares equal. */
function sameService(a: ServiceRecordInput, b: ServiceRecordInput): boolean {
  const same = (x: string[], y: string[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.addresses, b.addresses) && same(a.gz_addresses, b.gz_addresses);
}

function checkLedger(raw: unknown, path: string): ServicesLedger {
  const bad = (why: string) => new Error(`services ledger ${path} is not usable: ${why}`);
  if (typeof raw !== 'object' || raw === null || !Array.isArray((raw as ServicesLedger).services)) {
    throw bad('expected {"services": [...]}');
  }
  const names = new Set<string>();
  for (const s of (raw as ServicesLedger).services as unknown[]) {
    const r = s as Partial<ServiceRecord> | null;
    const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (typeof r !== 'object' || r === null || typeof r.name !== 'string' || !SERVICE_NAME_RE.test(r.name)
      || !strings(r.addresses) || !strings(r.gz_addresses) || typeof r.control_vnic !== 'string'
      || !/^oxControl[A-Za-z]+\d+$/.test(r.control_vnic)) {
      throw bad(`malformed entry ${JSON.stringify(s)}`);
    }
    if (names.has(r.name)) throw bad(`service "${r.name}" appears twice`);
    names.add(r.name);
    // A record written before addresses were canonicalised: resume compares it with what ipadm prints.
    for (const field of ['addresses', 'gz_addresses'] as const) {
      r[field] = r[field]!.map((a) => {
        try {
          return canonicalIpv6(a);
        } catch {
          throw bad(`service "${r.name}": ${field} entry ${JSON.stringify(a)} is not an IPv6 address`);
        }
      });
    }
  }
  return raw as ServicesLedger;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
