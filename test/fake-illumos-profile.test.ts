// The fake illumos's SMF site profile (test/fake-illumos/zoneadm.c): install and clone make the
// zone's root (<zonepath>/root/var/svc/profile), boot applies <zonepath>/root/var/svc/profile/site.xml
// to the boot's fake repository as manifest-import does (instances enabled by it start once the
// network milestone is online), clone copies it and uninstall removes it. Zones are configured
// through the addon (fake libzonecfg) and driven with the fake zoneadm and zlogin, with zonepaths
// under a fresh temporary directory so their roots can be made.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SmfState } from '../src/host/index.js';
import { waitForServiceState } from '../src/illumos/smf.js';
import { FAKE_BIN_DIR, fakeIllumosFiles, freshFakeHost } from './support/fake-illumos.js';

const run = promisify(execFile);
const ZONEADM = join(FAKE_BIN_DIR, 'zoneadm');
const ZLOGIN = join(FAKE_BIN_DIR, 'zlogin');
const NETWORK = 'svc:/milestone/network:default';
const PROPOLIS = 'svc:/system/illumos/propolis-server';

const files = fakeIllumosFiles('profile-test-');
let host: { state: string; remove(): void };
let zoneRoot: string; // the zonepaths' parent, fresh per test

beforeEach(() => {
  host = freshFakeHost();
  zoneRoot = mkdtempSync(join(files.images, 'zone-'));
});
afterEach(async () => {
  // halt what runs, so no detached start outlives the test's state directory
  const { stdout } = await run(ZONEADM, ['list']);
  for (const name of stdout.split('\n').filter((n) => n !== '' && n !== 'global')) await run(ZONEADM, ['-z', name, 'halt']);
  host.remove();
});

const zonepath = (name: string) => join(zoneRoot, name);
const profileDir = (name: string) => join(zonepath(name), 'root', 'var', 'svc', 'profile');
const siteXml = (name: string) => join(profileDir(name), 'site.xml');

async function zoneadm(name: string, args: string[], env: Record<string, string> = {}) {
  return run(ZONEADM, ['-z', name, ...args], { env: { ...process.env, ...env } });
}

/** A configured, installed zone (not booted). */
async function installed(name: string, path = zonepath(name)): Promise<void> {
  await files.addon.zoneConfigure({ name, brand: 'omicron1', zonepath: path });
  await zoneadm(name, ['install', join(files.images, 'propolis-server.tar.gz')]);
}

/** The instance's restarter state in the fake SMF ("" when it has none). */
function smfState(zone: string, fmri: string): string {
  const file = join(host.state, 'smf', zone, fmri.replace(/[/:]/g, '_'));
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The instance's state once it is one of `states`: the addon's libscf wait, as the agent waits. */
function reach(zone: string, fmri: string, states: SmfState[]): Promise<SmfState> {
  return waitForServiceState(zone, fmri, states, { timeoutMs: 30_000 });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `svccfg -s <fmri> listprop` in the zone, as lines. */
async function listprop(zone: string, fmri: string): Promise<string[]> {
  const { stdout } = await run(ZLOGIN, [zone, 'svccfg', '-s', fmri, 'listprop']);
  return stdout.split('\n').filter((l) => l !== '');
}

/** `svcs -a -H -o state,fmri` in the zone, as lines. */
async function svcs(zone: string): Promise<string[]> {
  const { stdout } = await run(ZLOGIN, [zone, 'svcs', '-a', '-H', '-o', 'state,fmri']);
  return stdout.split('\n').filter((l) => l !== '');
}

/** omicron's ProfileBuilder format: one element per line. */
function profile(services: Array<{ name: string; instances: Array<{ name: string; enabled: boolean; props?: Record<string, string> }> }>): string {
  const esc = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
  const lines = [
    '<?xml version="1.0"?>',
    '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">',
    '<service_bundle type="profile" name="omicron">',
  ];
  for (const svc of services) {
    lines.push(`  <service version="1" type="service" name="${esc(svc.name)}">`);
    for (const inst of svc.instances) {
      lines.push(`    <instance enabled="${inst.enabled}" name="${esc(inst.name)}">`);
      if (inst.props !== undefined) {
        lines.push('      <property_group type="application" name="config">');
        for (const [k, v] of Object.entries(inst.props)) lines.push(`        <propval type="astring" name="${esc(k)}" value="${esc(v)}"/>`);
        lines.push('      </property_group>');
      }
      lines.push('    </instance>');
    }
    lines.push('  </service>');
  }
  lines.push('</service_bundle>', '');
  return lines.join('\n');
}

const VM = 'vm-0c6a5a35-9fcb-4d1b-a0f4-7b1bd3a2a0c5';

describe('the zone root made by install and clone', () => {
  it('install makes <zonepath>/root/var/svc/profile (the zonepath 0700, the rest 0755)', async () => {
    await installed('oxz_a');
    expect(statSync(profileDir('oxz_a')).isDirectory()).toBe(true);
    expect(statSync(profileDir('oxz_a')).mode & 0o777).toBe(0o755);
    expect(statSync(join(zonepath('oxz_a'), 'root')).mode & 0o777).toBe(0o755);
    expect(statSync(zonepath('oxz_a')).mode & 0o777).toBe(0o700);
    expect(existsSync(siteXml('oxz_a'))).toBe(false);
  });

  it('makes the zonepath\'s missing parents, as mkdir -p', async () => {
    const path = join(zoneRoot, 'a', 'b', 'oxz_deep');
    await installed('oxz_deep', path);
    expect(statSync(join(zoneRoot, 'a')).mode & 0o777).toBe(0o755);
    expect(statSync(path).mode & 0o777).toBe(0o700);
    expect(statSync(join(path, 'root', 'var', 'svc', 'profile')).isDirectory()).toBe(true);
  });

  it('makes no directory right under /, and still installs and boots', async () => {
    const top = `/fake-illumos-profile-${process.pid}-${Date.now()}`;
    expect(existsSync(top)).toBe(false);
    try {
      await installed('oxz_b', join(top, 'oxz_b'));
      const { stdout } = await zoneadm('oxz_b', ['list', '-p']);
      expect(stdout).toMatch(/^-:oxz_b:installed:/);
      expect(existsSync(top)).toBe(false);
      await zoneadm('oxz_b', ['boot']); // there is no profile to apply
      expect(await reach('oxz_b', NETWORK, ['online'])).toBe('online');
      await zoneadm('oxz_b', ['halt']);
      await zoneadm('oxz_b', ['uninstall', '-F']);
      expect(existsSync(top)).toBe(false);
      await installed('oxz_c', top); // a zonepath right under / is not made either
      expect(existsSync(top)).toBe(false);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  it('clone copies the source zone\'s site.xml; uninstall removes it, and only it', async () => {
    await installed('oxz_src');
    const xml = profile([{ name: 'system/illumos/propolis-server', instances: [{ name: VM, enabled: true, props: { server_addr: '[::]:12400' } }] }]);
    writeFileSync(siteXml('oxz_src'), xml);
    await files.addon.zoneConfigure({ name: 'oxz_copy', brand: 'omicron1', zonepath: zonepath('oxz_copy') });
    await zoneadm('oxz_copy', ['clone', 'oxz_src']);
    expect(readFileSync(siteXml('oxz_copy'), 'utf8')).toBe(xml);
    expect(statSync(profileDir('oxz_copy')).mode & 0o777).toBe(0o755);

    // the copy is the clone's own profile: booting it applies it
    await zoneadm('oxz_copy', ['boot']);
    expect(await reach('oxz_copy', `${PROPOLIS}:${VM}`, ['online', 'maintenance'])).toBe('online');
    await zoneadm('oxz_copy', ['halt']);

    await zoneadm('oxz_copy', ['uninstall', '-F']);
    expect(existsSync(siteXml('oxz_copy'))).toBe(false);
    expect(statSync(profileDir('oxz_copy')).isDirectory()).toBe(true);
    expect(readFileSync(siteXml('oxz_src'), 'utf8')).toBe(xml); // the source's stays
  });

  it('a clone of a source without a profile has none', async () => {
    await installed('oxz_src');
    await files.addon.zoneConfigure({ name: 'oxz_copy', brand: 'omicron1', zonepath: zonepath('oxz_copy') });
    await zoneadm('oxz_copy', ['clone', 'oxz_src']);
    expect(statSync(profileDir('oxz_copy')).isDirectory()).toBe(true);
    expect(existsSync(siteXml('oxz_copy'))).toBe(false);
  });
});

describe('the site profile applied at boot', () => {
  it('defines the instance with its properties; it goes online only after the network milestone', async () => {
    await installed('oxz_p');
    writeFileSync(siteXml('oxz_p'), profile([{ name: 'system/illumos/propolis-server', instances: [{ name: VM, enabled: true, props: { server_addr: '[::]:12400' } }] }]));
    const fmri = `${PROPOLIS}:${VM}`;
    await zoneadm('oxz_p', ['boot'], { FAKE_ILLUMOS_NETWORK_DELAY_MS: '2000', FAKE_ILLUMOS_SERVICE_START_MS: '150' });

    // at once: defined, configured, enabled but waiting for its dependency
    expect(await listprop('oxz_p', fmri)).toEqual(['config application', 'config/server_addr astring [::]:12400']);
    expect(smfState('oxz_p', fmri)).toBe('offline');
    expect(smfState('oxz_p', NETWORK)).toBe('offline');
    await sleep(200); // well past the start delay, still before the milestone
    expect(smfState('oxz_p', fmri)).toBe('offline');
    expect(smfState('oxz_p', NETWORK)).toBe('offline');

    // then online, never before the milestone: as the milestone comes online the instance is still
    // offline (its 150 ms start delay runs after it; states only move forward)
    expect(await reach('oxz_p', NETWORK, ['online'])).toBe('online');
    expect(smfState('oxz_p', fmri)).toBe('offline');
    expect(await reach('oxz_p', fmri, ['online', 'maintenance'])).toBe('online');
    expect(await svcs('oxz_p')).toEqual([`online ${NETWORK}`, `online ${fmri}`]);
    const log = readFileSync(join(host.state, 'svclog', 'oxz_p', `${fmri.replace(/[/:]/g, '_')}.log`), 'utf8');
    expect(log).toMatch(/Executing start method\. \]\n.*Method "start" exited with status 0\. \]\n$/);
  });

  it('applies it at each boot (the fake repository lasts one boot), also when zoneadmd boots the zone', async () => {
    await installed('oxz_p');
    writeFileSync(siteXml('oxz_p'), profile([{ name: 'oxide/thing', instances: [{ name: 'default', enabled: true, props: { a: '1' } }] }]));
    await zoneadm('oxz_p', ['boot']);
    expect(await reach('oxz_p', 'svc:/oxide/thing:default', ['online', 'maintenance'])).toBe('online');
    await zoneadm('oxz_p', ['halt']);
    expect(smfState('oxz_p', 'svc:/oxide/thing:default')).toBe('');

    writeFileSync(siteXml('oxz_p'), profile([{ name: 'oxide/thing', instances: [{ name: 'default', enabled: true, props: { a: '2' } }] }]));
    await zoneadm('oxz_p', ['boot'], { FAKE_ILLUMOS_BOOT_DELAY_MS: '50' });
    expect(await listprop('oxz_p', 'svc:/oxide/thing:default')).toEqual(['config application', 'config/a astring 2']);
    expect(await reach('oxz_p', 'svc:/oxide/thing:default', ['online', 'maintenance'])).toBe('online');
  });

  it('puts a propolis-server instance without a usable server_addr in maintenance', async () => {
    await installed('oxz_p');
    writeFileSync(
      siteXml('oxz_p'),
      profile([
        {
          name: 'system/illumos/propolis-server',
          instances: [
            { name: 'vm-none', enabled: true },
            { name: 'vm-bad', enabled: true, props: { server_addr: 'not an address' } },
            { name: 'vm-good', enabled: true, props: { server_addr: '192.0.2.7:12400' } },
          ],
        },
      ]),
    );
    await zoneadm('oxz_p', ['boot']);
    const started = (vm: string) => reach('oxz_p', `${PROPOLIS}:${vm}`, ['online', 'maintenance']);
    expect(await started('vm-none')).toBe('maintenance');
    expect(await started('vm-bad')).toBe('maintenance');
    expect(await started('vm-good')).toBe('online');
    expect(await listprop('oxz_p', `${PROPOLIS}:vm-none`)).toEqual([]);
  });

  it('leaves an instance with enabled="false" disabled, and defines a service it did not have', async () => {
    await installed('oxz_p');
    writeFileSync(
      siteXml('oxz_p'),
      profile([
        { name: 'oxide/off', instances: [{ name: 'default', enabled: false, props: { x: 'y' } }] },
        { name: 'oxide/on', instances: [{ name: 'default', enabled: true }] },
      ]),
    );
    await zoneadm('oxz_p', ['boot'], { FAKE_ILLUMOS_SERVICE_START_MS: '10' });
    expect(smfState('oxz_p', 'svc:/oxide/off:default')).toBe('disabled');
    expect(await reach('oxz_p', 'svc:/oxide/on:default', ['online', 'maintenance'])).toBe('online');
    await sleep(100);
    expect(smfState('oxz_p', 'svc:/oxide/off:default')).toBe('disabled');
    expect(await listprop('oxz_p', 'svc:/oxide/off:default')).toEqual(['config application', 'config/x astring y']);
    expect(await svcs('oxz_p')).toEqual([`online ${NETWORK}`, 'disabled svc:/oxide/off:default', 'online svc:/oxide/on:default']);
  });

  it('decodes XML escapes in attribute values, whatever the attribute order and quotes', async () => {
    await installed('oxz_p');
    const value = `a&b <c> "d" 'e'`;
    writeFileSync(siteXml('oxz_p'), profile([{ name: 'oxide/esc', instances: [{ name: 'default', enabled: true, props: { v: value } }] }]));
    // and by hand: another order, single quotes, numeric references
    const extra = [
      '<service_bundle type="profile" name="omicron">',
      "  <service name='oxide/order' type='service' version='1'>",
      "    <instance name='default' enabled='true'>",
      "      <property_group name='config' type='application'>",
      "        <propval value='x &#65;&#x42; &lt;&gt; &amp;amp;' name='w' type='astring'/>",
      '      </property_group>',
      '    </instance>',
      '  </service>',
      '</service_bundle>',
    ].join('\n');
    writeFileSync(siteXml('oxz_p'), readFileSync(siteXml('oxz_p'), 'utf8') + extra + '\n');
    await zoneadm('oxz_p', ['boot']);
    expect(await listprop('oxz_p', 'svc:/oxide/esc:default')).toEqual(['config application', `config/v astring ${value}`]);
    expect(await listprop('oxz_p', 'svc:/oxide/order:default')).toEqual(['config application', 'config/w astring x AB <> &amp;']);
    expect(await reach('oxz_p', 'svc:/oxide/esc:default', ['online', 'maintenance'])).toBe('online');
    expect(await reach('oxz_p', 'svc:/oxide/order:default', ['online', 'maintenance'])).toBe('online');
  });

  it('an unparseable site.xml does not fail the boot; what was understood is applied', async () => {
    await installed('oxz_p');
    writeFileSync(
      siteXml('oxz_p'),
      [
        'this is not XML at all <<<>>> &&&',
        '<service name="oxide/ok" version="1" type="service">',
        '  <instance name="default" enabled="true">',
        '    <property_group name="config" type="application">',
        '      <propval name="good" type="astring" value="1"/>',
        '      <propval name="no-type" value="2"/>',
        '      <propval name="bad-type" type="nonsense" value="3"/>',
        '      <propval name="unterminated" type="astring" value="4',
        '    </property_group>',
        '  </instance>',
        '  <instance name="bad name!" enabled="true"/>',
        '</service>',
        '<service name="oxide/cut" version="1" type="service">',
        '  <instance name="default" enabled="true"',
      ].join('\n'),
    );
    const { stdout, stderr } = await zoneadm('oxz_p', ['boot']);
    expect([stdout, stderr]).toEqual(['', '']);
    expect((await zoneadm('oxz_p', ['list', '-p'])).stdout).toMatch(/^\d+:oxz_p:running:/);
    expect(await listprop('oxz_p', 'svc:/oxide/ok:default')).toEqual(['config application', 'config/good astring 1']);
    expect(await reach('oxz_p', 'svc:/oxide/ok:default', ['online', 'maintenance'])).toBe('online');
    expect(await svcs('oxz_p')).toEqual([`online ${NETWORK}`, 'online svc:/oxide/ok:default']);
  });

  it('boots with a site.xml that cannot be read (a directory), applying nothing', async () => {
    await installed('oxz_p');
    mkdirSync(siteXml('oxz_p'));
    await zoneadm('oxz_p', ['boot']);
    expect(await reach('oxz_p', NETWORK, ['online'])).toBe('online');
    expect(await svcs('oxz_p')).toEqual([`online ${NETWORK}`]);
  });

  it('does not start an instance disabled while it waited for the network milestone', async () => {
    await installed('oxz_p');
    writeFileSync(siteXml('oxz_p'), profile([{ name: 'oxide/thing', instances: [{ name: 'default', enabled: true }] }]));
    // The milestone late enough that the disable lands before it, on a busy machine too.
    await zoneadm('oxz_p', ['boot'], { FAKE_ILLUMOS_NETWORK_DELAY_MS: '2000' });
    expect(smfState('oxz_p', 'svc:/oxide/thing:default')).toBe('offline');
    await run(ZLOGIN, ['oxz_p', 'svcadm', 'disable', 'svc:/oxide/thing:default']);
    expect(await reach('oxz_p', NETWORK, ['online'])).toBe('online');
    await sleep(100);
    expect(smfState('oxz_p', 'svc:/oxide/thing:default')).toBe('disabled');
  });
});
