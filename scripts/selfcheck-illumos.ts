// For a real illumos host (Helios, OmniOS, SmartOS): does this OS image match the addon's own
// declarations (native/abi/*.h)? `node --import tsx scripts/selfcheck-illumos.ts [--cc CC]`
//  1. every library loads by soname and every symbol the addon uses resolves (the addon's own
//     loader report, so this checks exactly what the agent would use);
//  2. a tiny C program compiled against the system headers, where they are installed, prints the
//     sizes, offsets and constants the addon hard-codes, and each is compared with ours;
//  3. dladm_vnic_create's arity is told by which call form the header accepts.
// libdlvnic.h, which (2) and (3) need for the VNIC rows, is private to libdladm: illumos-gate
// installs it into its proto area only, no stock image ships it, so those rows are normally
// marked SKIP with that reason and a note under the table says so.
// It prints one table and exits 1 if anything differs. It cannot run on Linux (the headers and
// libraries are illumos'); there it says so and exits 0.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadNative } from '../src/illumos/addon.js';

const { values } = parseArgs({ options: { cc: { type: 'string', default: 'gcc' }, include: { type: 'string', default: '/usr/include' } } });
const cc = values.cc!;
const include = values.include!;

interface Row { check: string; expected: string; actual: string; ok: boolean | null }
const rows: Row[] = [];
const add = (check: string, expected: string, actual: string, ok: boolean | null) => rows.push({ check, expected, actual, ok });

if (process.platform !== 'sunos') {
  process.stdout.write(`selfcheck-illumos: this is ${process.platform}, not illumos; run it on the sled's OS image.\n`);
  process.exit(0);
}

// 1. Symbols, through the addon's loader.
const report = loadNative().load(null);
for (const [key, lib] of Object.entries(report.libraries)) {
  add(`${lib.soname} loads`, 'yes', lib.error ? `no: ${lib.error}` : 'yes', lib.error === null);
  add(`${lib.soname} symbols`, 'all resolved', lib.missing.length === 0 ? 'all resolved' : `missing: ${lib.missing.join(', ')}`, lib.missing.length === 0 && lib.error === null);
  void key;
}

// 2. Layouts and constants: each probe needs its header; a missing private header is reported, not failed.
interface Probe { header: string; expr: string; expected: number | [number, number]; label: string }
const PROBES: Probe[] = [
  { header: 'libzonecfg.h', label: 'sizeof(struct zoneent)', expr: 'sizeof (struct zoneent)', expected: 1172 },
  { header: 'libzonecfg.h', label: 'sizeof(struct zone_nwiftab)', expr: 'sizeof (struct zone_nwiftab)', expected: 170 },
  { header: 'libzonecfg.h', label: 'sizeof(struct zone_devtab)', expr: 'sizeof (struct zone_devtab)', expected: 1024 },
  { header: 'libzonecfg.h', label: 'sizeof(struct zone_fstab)', expr: 'sizeof (struct zone_fstab)', expected: 3096 },
  { header: 'libzonecfg.h', label: 'offsetof(zone_fstab, zone_fs_options)', expr: 'offsetof(struct zone_fstab, zone_fs_options)', expected: 2064 },
  { header: 'libzonecfg.h', label: 'sizeof(struct zone_dstab)', expr: 'sizeof (struct zone_dstab)', expected: 256 },
  { header: 'libzonecfg.h', label: 'Z_NO_ZONE', expr: 'Z_NO_ZONE', expected: 16 },
  { header: 'libzonecfg.h', label: 'Z_INVALID_PROPERTY', expr: 'Z_INVALID_PROPERTY', expected: 50 },
  { header: 'libzonecfg.h', label: 'ZONE_STATE_RUNNING', expr: 'ZONE_STATE_RUNNING', expected: 4 },
  { header: 'libdlvnic.h', label: 'sizeof(dladm_vnic_attr_t) (ours: a 64 KiB buffer)', expr: 'sizeof (dladm_vnic_attr_t)', expected: [60, 65536] },
  { header: 'libdlvnic.h', label: 'offsetof(dladm_vnic_attr_t, va_mac_addr)', expr: 'offsetof(dladm_vnic_attr_t, va_mac_addr)', expected: 16 },
  { header: 'libdlvnic.h', label: 'offsetof(dladm_vnic_attr_t, va_vid)', expr: 'offsetof(dladm_vnic_attr_t, va_vid)', expected: 44 },
  { header: 'libdlvnic.h', label: 'offsetof(dladm_vnic_attr_t, va_af)', expr: 'offsetof(dladm_vnic_attr_t, va_af)', expected: 56 },
  { header: 'libdladm.h', label: 'DLADM_STATUS_NOTFOUND', expr: 'DLADM_STATUS_NOTFOUND', expected: 5 },
  { header: 'libdladm.h', label: 'DLADM_STATUS_EXIST', expr: 'DLADM_STATUS_EXIST', expected: 8 },
  { header: 'libdladm.h', label: 'DLADM_OPT_ACTIVE', expr: 'DLADM_OPT_ACTIVE', expected: 1 },
  // The three statuses that tell dladm_vnic_create's arity apart (dladm.cc ProbeVnicCreateAbi).
  { header: 'libdladm.h', label: 'DLADM_STATUS_NOTSUP', expr: 'DLADM_STATUS_NOTSUP', expected: 4 },
  { header: 'libdladm.h', label: 'DLADM_STATUS_INVALIDMACADDRTYPE', expr: 'DLADM_STATUS_INVALIDMACADDRTYPE', expected: 23 },
  { header: 'libdladm.h', label: 'DLADM_STATUS_VIDINVAL', expr: 'DLADM_STATUS_VIDINVAL', expected: 25 },
  { header: 'libzfs.h', label: 'EZFS_EXISTS', expr: 'EZFS_EXISTS', expected: 2008 },
  { header: 'libzfs.h', label: 'EZFS_NOENT', expr: 'EZFS_NOENT', expected: 2009 },
  // The zpool_prop_t values zfs.cc passes directly (the zfs_prop_t ones it resolves by name).
  { header: 'libzfs.h', label: 'ZPOOL_PROP_SIZE', expr: 'ZPOOL_PROP_SIZE', expected: 1 },
  { header: 'libzfs.h', label: 'ZPOOL_PROP_HEALTH', expr: 'ZPOOL_PROP_HEALTH', expected: 4 },
  { header: 'libzfs.h', label: 'ZPOOL_PROP_FREE', expr: 'ZPOOL_PROP_FREE', expected: 16 },
  { header: 'libzfs.h', label: 'ZPOOL_PROP_ALLOCATED', expr: 'ZPOOL_PROP_ALLOCATED', expected: 17 },
  { header: 'sys/nvpair.h', label: 'DATA_TYPE_STRING', expr: 'DATA_TYPE_STRING', expected: 9 },
  { header: 'sys/nvpair.h', label: 'DATA_TYPE_UINT64', expr: 'DATA_TYPE_UINT64', expected: 8 },
  { header: 'libscf.h', label: 'SCF_ERROR_NOT_FOUND', expr: 'SCF_ERROR_NOT_FOUND', expected: 1003 },
];

const work = mkdtempSync(join(tmpdir(), 'selfcheck-illumos-'));
function compileAndRun(source: string): string | null {
  const c = join(work, 'probe.c');
  const exe = join(work, 'probe');
  writeFileSync(c, source);
  try {
    execFileSync(cc, ['-m64', '-D__EXTENSIONS__', '-I', include, '-o', exe, c], { stdio: ['ignore', 'ignore', 'pipe'] });
    return execFileSync(exe, { encoding: 'utf8' });
  } catch {
    return null;
  }
}

const haveVnicHeader = existsSync(join(include, 'libdlvnic.h'));
const NO_VNIC_HEADER = 'skipped: no libdlvnic.h (a stock image ships none)';

try {
  for (const probe of PROBES) {
    if (!existsSync(join(include, probe.header))) {
      add(probe.label, String(probe.expected), probe.header === 'libdlvnic.h' ? NO_VNIC_HEADER : `${probe.header} not installed`, null);
      continue;
    }
    const out = compileAndRun(`#include <stddef.h>\n#include <stdio.h>\n#include <${probe.header}>\nint main(void) { printf("%lld\\n", (long long)(${probe.expr})); return 0; }\n`);
    if (out === null) {
      add(probe.label, String(probe.expected), 'does not compile', false);
      continue;
    }
    const actual = Number(out.trim());
    const ok = Array.isArray(probe.expected)
      ? actual >= probe.expected[0] && actual <= probe.expected[1]
      : actual === probe.expected;
    add(probe.label, Array.isArray(probe.expected) ? `${probe.expected[0]}..${probe.expected[1]}` : String(probe.expected), String(actual), ok);
  }

  // 3. dladm_vnic_create arity: the 15-argument form (errlist before flags) or the older 14.
  if (haveVnicHeader) {
    const call = (args: number) => `#include <libdlvnic.h>\nint f(dladm_handle_t h) { return dladm_vnic_create(h, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0${args === 15 ? ', 0' : ''}, 0); }\nint main(void) { return 0; }\n`;
    const arity = compileAndRun(call(15)) !== null ? '15' : compileAndRun(call(14)) !== null ? '14' : 'neither';
    add('dladm_vnic_create arguments (the addon probes at run time)', '14 or 15', arity, arity !== 'neither');
  } else {
    add('dladm_vnic_create arguments', '14 or 15', `${NO_VNIC_HEADER}; the addon probes at run time`, null);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const width = Math.max(...rows.map((r) => r.check.length));
process.stdout.write(`${'check'.padEnd(width)}  ${'expected'.padEnd(14)}  result\n`);
for (const r of rows) {
  const mark = r.ok === null ? 'SKIP' : r.ok ? 'ok  ' : 'FAIL';
  process.stdout.write(`${r.check.padEnd(width)}  ${r.expected.padEnd(14)}  ${mark} ${r.actual}\n`);
}
if (!haveVnicHeader) {
  process.stdout.write(`\nThe libdlvnic.h rows (the dladm_vnic_attr_t size and offsets, dladm_vnic_create's arity) were\n`
    + `skipped: this image has no ${join(include, 'libdlvnic.h')}, as no stock illumos image does. To check them,\n`
    + `point --include at an illumos-gate proto area's usr/include that has it, built for this release.\n`);
}
const failed = rows.filter((r) => r.ok === false).length;
process.stdout.write(`\n${failed === 0 ? 'the OS image matches the addon\'s declarations' : `${failed} mismatch(es): do not run the agent's native backend on this image`}\n`);
process.exit(failed === 0 ? 0 : 1);
