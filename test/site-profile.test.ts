// The illumos backend's SMF site profile (src/illumos/site-profile.ts): omicron's XML, and a
// write into a zone's root that never follows a symbolic link the zone may have left there.
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { siteProfileXml, writeSiteProfile } from '../src/illumos/site-profile.js';

describe('siteProfileXml', () => {
  it('writes omicron\'s profile format: one service element per service, values escaped', () => {
    const xml = siteProfileXml([
      { fmri: 'svc:/system/illumos/propolis-server:vm-1', enabled: true, properties: { 'config/server_addr': '[::]:12400', 'config/x': 'a&b"c<d>\'' } },
      { fmri: 'svc:/system/illumos/propolis-server:vm-2', enabled: false, properties: {} },
    ]);
    expect(xml).toBe([
      '<?xml version="1.0"?>',
      '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">',
      '<service_bundle type="profile" name="sled-agent">',
      '  <service version="1" type="service" name="system/illumos/propolis-server">',
      '    <instance enabled="true" name="vm-1">',
      '      <property_group type="application" name="config">',
      '        <propval type="astring" name="server_addr" value="[::]:12400"/>',
      '        <propval type="astring" name="x" value="a&amp;b&quot;c&lt;d&gt;&apos;"/>',
      '      </property_group>',
      '    </instance>',
      '    <instance enabled="false" name="vm-2">',
      '    </instance>',
      '  </service>',
      '</service_bundle>',
      '',
    ].join('\n'));
  });

  it('refuses an FMRI without an instance and a property not named pg/prop', () => {
    for (const fmri of ['svc:/system/illumos/propolis-server', 'system/illumos/propolis-server:vm-1', 'svc:/a:b"c']) {
      expect(() => siteProfileXml([{ fmri, enabled: true, properties: {} }]), fmri).toThrow(TypeError);
    }
    for (const key of ['server_addr', 'config/a/b', 'config/a"b', '/x']) {
      expect(() => siteProfileXml([{ fmri: 'svc:/a/b:c', enabled: true, properties: { [key]: 'v' } }]), key).toThrow(TypeError);
    }
  });
});

describe('writeSiteProfile', () => {
  let dir: string;
  let zonepath: string;
  let outside: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'site-profile-'));
    zonepath = join(dir, 'zone');
    outside = join(dir, 'outside');
    mkdirSync(outside);
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes site.xml into the root of an installed zone, replacing the one before', async () => {
    mkdirSync(join(zonepath, 'root/var/svc/profile'), { recursive: true });
    await writeSiteProfile(zonepath, 'first');
    await writeSiteProfile(zonepath, 'second');
    expect(readFileSync(join(zonepath, 'root/var/svc/profile/site.xml'), 'utf8')).toBe('second');
  });

  it('refuses a zone without a root, and a directory on the way that is a symbolic link, writing nothing', async () => {
    await expect(writeSiteProfile(zonepath, 'x')).rejects.toMatchObject({ code: 'EBADZONEROOT', message: expect.stringMatching(/missing/) });
    // A zone that ran could have made its /var/svc a link to anywhere in the global zone.
    mkdirSync(join(zonepath, 'root/var'), { recursive: true });
    mkdirSync(join(outside, 'profile'));
    symlinkSync(outside, join(zonepath, 'root/var/svc'));
    await expect(writeSiteProfile(zonepath, 'x')).rejects.toMatchObject({ code: 'EBADZONEROOT', message: expect.stringMatching(/symbolic link/) });
    expect(() => lstatSync(join(outside, 'profile/site.xml'))).toThrow();
  });

  it('replaces a site.xml that is a symbolic link, leaving what it pointed at alone', async () => {
    mkdirSync(join(zonepath, 'root/var/svc/profile'), { recursive: true });
    const target = join(outside, 'passwd');
    writeFileSync(target, 'global zone file');
    symlinkSync(target, join(zonepath, 'root/var/svc/profile/site.xml'));
    await writeSiteProfile(zonepath, 'profile');
    expect(readFileSync(target, 'utf8')).toBe('global zone file');
    expect(lstatSync(join(zonepath, 'root/var/svc/profile/site.xml')).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(zonepath, 'root/var/svc/profile/site.xml'), 'utf8')).toBe('profile');
  });
});
