// The commands the agent runs inside a zone (reference §7 steps 4-5, §10, §11), built here once
// as argument arrays. The illumos host hands them to zlogin; the sim host interprets exactly
// this set (src/sim/inzone.ts), and the fake illumos ships programs of the same names that act on
// its state (test/fake-illumos/). Anything else is "command not found" in a simulated zone.
//
// Semantics both backends honour (exit status 0 unless said):
//   ipadm show-addr -p -o ADDR <vnic>/<name>   stdout "<ip>/<prefix>\n"; exit 1, stderr
//                                              "ipadm: Address object not found" if absent
//   ipadm create-addr -t -T addrconf <vnic>/linklocal
//   ipadm create-addr -t -T static -a <ip>/<prefix> <vnic>/<name>
//                                              exit 1 "ipadm: Could not create address: Address
//                                              object already exists" if the addrobj exists;
//                                              exit 1 if <vnic> is not one of the zone's links
//   ipadm delete-addr <vnic>/<name>            exit 1 if absent
//   svccfg import <manifest.xml>               /var/svc/manifest/site/<svc>/manifest.xml
//                                              defines svc:/system/illumos/<svc> with instance
//                                              :default (disabled); besides, Crucible's
//                                              /var/svc/manifest/site/crucible/agent.xml defines
//                                              svc:/oxide/crucible/agent with :default (disabled)
//                                              and .../crucible/downstairs.xml defines
//                                              svc:/oxide/crucible/downstairs without instances;
//                                              any other path: exit 1. Importing again keeps the
//                                              instances and their states. The propolis-server
//                                              service exists in every zone installed from
//                                              propolis-server's image
//   svccfg -s <service fmri> add <instance>    exit 1 if the service is unknown or the instance exists
//   svccfg -s <instance fmri> addpg <pg> <type>
//   svccfg -s <instance fmri> setprop <pg>/<prop>=<value>
//   svccfg -s <instance fmri> refresh
//   svcadm enable -t <instance fmri>           the instance goes online (after its start-up);
//                                              restarter/state is what waitForService watches
//   svcadm disable -t <instance fmri>          the instance goes disabled
//   route add -inet6 default -inet6 <ip>
//   svcadm mark maintenance <instance fmri>    the instance goes maintenance at once (a Propolis
//                                              process stops): an operator's way to fail it
//   svcs -a -H -o state,fmri                   "<state> <fmri>\n" per instance, by FMRI;
//                                              "uninitialized" before its restarter acted
//   svcs -xv                                   per instance offline, degraded or in maintenance,
//                                              by FMRI: "<fmri>\n State: <state>\n   See: <log
//                                              file>\nImpact: This service is not running.\n\n"
//                                              (degraded: "is degraded."); nothing if all is well
//   tail -n <N> <log file>                     the last N lines of the instance's restarter log:
//                                              "[ <Mmm dd HH:MM:SS> <text> ]" per state change,
//                                              the text by new state: offline "Executing start
//                                              method.", online "Method "start" exited with
//                                              status 0.", degraded "Service degraded.",
//                                              maintenance "Service failed: now in
//                                              maintenance.", disabled (not as a first state)
//                                              "Stopping because service disabled."; kept from
//                                              the zone's install to its uninstall. exit 1
//                                              "tail: cannot open input" if it has no line or
//                                              names no instance of the zone
// where <log file> is svcLogFile(<instance fmri>). Real zones have many more services and their
// logs carry the services' own output too; the agent only reads them (zone bundles).

export const NETWORK_MILESTONE = 'svc:/milestone/network:default';
export const PROPOLIS_SERVICE = 'svc:/system/illumos/propolis-server';

/** The addrobj names omicron uses: static IPv6, link-local, and the sled's underlay address in the global zone. */
export const ADDROBJ_STATIC6 = 'omicron6';
export const ADDROBJ_LINKLOCAL = 'linklocal';
export const ADDROBJ_SLED6 = 'sled6';
/**
 * The longest name after the "/" of an address object: libipadm (i_ipadm_is_user_aobjname_valid)
 * takes a letter, then letters and digits, fewer than IPADM_AOBJ_USTRSIZ (32) in all.
 */
export const ADDROBJ_NAME_MAX = 31;

export const ipadmShowAddr = (addrobj: string): string[] => ['ipadm', 'show-addr', '-p', '-o', 'ADDR', addrobj];
export const ipadmCreateLinkLocal = (vnic: string): string[] =>
  ['ipadm', 'create-addr', '-t', '-T', 'addrconf', `${vnic}/${ADDROBJ_LINKLOCAL}`];
export const ipadmCreateStatic = (addrobj: string, cidr: string): string[] =>
  ['ipadm', 'create-addr', '-t', '-T', 'static', '-a', cidr, addrobj];
export const ipadmDeleteAddr = (addrobj: string): string[] => ['ipadm', 'delete-addr', addrobj];

export const svccfgImport = (manifest: string): string[] => ['svccfg', 'import', manifest];
export const svccfgAddInstance = (service: string, instance: string): string[] => ['svccfg', '-s', service, 'add', instance];
export const svccfgAddPg = (fmri: string, pg: string, type: string): string[] => ['svccfg', '-s', fmri, 'addpg', pg, type];
export const svccfgSetProp = (fmri: string, prop: string, value: string): string[] => ['svccfg', '-s', fmri, 'setprop', `${prop}=${value}`];
export const svccfgRefresh = (fmri: string): string[] => ['svccfg', '-s', fmri, 'refresh'];
export const svcadmEnable = (fmri: string): string[] => ['svcadm', 'enable', '-t', fmri];
export const svcadmDisable = (fmri: string): string[] => ['svcadm', 'disable', '-t', fmri];
export const routeAddDefault6 = (gateway: string): string[] => ['route', 'add', '-inet6', 'default', '-inet6', gateway];
export const svcadmMarkMaintenance = (fmri: string): string[] => ['svcadm', 'mark', 'maintenance', fmri];
export const svcsStates = (): string[] => ['svcs', '-a', '-H', '-o', 'state,fmri'];
export const svcsExplain = (): string[] => ['svcs', '-xv'];
export const tailLines = (lines: number, file: string): string[] => ['tail', '-n', String(lines), file];

/** `/var/svc/log/<service without svc:/, '/' as '-'>:<instance>.log`, where svc.startd logs an instance. */
export const svcLogFile = (fmri: string): string => `/var/svc/log/${fmri.replace(/^svc:\//, '').replaceAll('/', '-')}.log`;

/** `/var/svc/manifest/site/<service>/manifest.xml` */
export const siteManifest = (service: string): string => `/var/svc/manifest/site/${service}/manifest.xml`;
/** `/opt/oxide/<service>.tar.gz`, the zone image of a service (reference §7). */
export const zoneImage = (service: string): string => `/opt/oxide/${service}.tar.gz`;
