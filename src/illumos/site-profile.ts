// A zone's SMF site profile (`<zonepath>/root/var/svc/profile/site.xml`), which the zone's
// manifest-import applies as it boots: omicron writes one into each zone it boots (sled-agent
// src/profile.rs, ProfileBuilder::add_to_zone) rather than configuring services over zlogin. The
// XML is omicron's: one element per line, property groups of type application, single values as
// <propval>.
import { lstat, open, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hostError, type SmfProfileInstance } from '../host/index.js';
import { validateSmfProfile } from '../host/names.js';

/** Where in a zonepath the profile goes. */
const PROFILE_DIR = ['root', 'var', 'svc', 'profile'] as const;

function attr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** The profile's XML (TypeError for a profile validateSmfProfile refuses). */
export function siteProfileXml(profile: readonly SmfProfileInstance[]): string {
  const services = new Map<string, string[]>();
  for (const inst of validateSmfProfile(profile)) {
    const colon = inst.fmri.lastIndexOf(':');
    const service = inst.fmri.slice('svc:/'.length, colon);
    const groups = new Map<string, Array<[string, string]>>();
    for (const [key, value] of Object.entries(inst.properties)) {
      const [pg, prop] = key.split('/') as [string, string];
      let props = groups.get(pg);
      if (props === undefined) groups.set(pg, props = []);
      props.push([prop, value]);
    }
    const lines = [`    <instance enabled="${inst.enabled}" name="${attr(inst.fmri.slice(colon + 1))}">`];
    for (const [pg, props] of groups) {
      lines.push(`      <property_group type="application" name="${attr(pg)}">`);
      for (const [prop, value] of props) lines.push(`        <propval type="astring" name="${attr(prop)}" value="${attr(value)}"/>`);
      lines.push('      </property_group>');
    }
    lines.push('    </instance>');
    const known = services.get(service);
    if (known === undefined) services.set(service, lines);
    else known.push(...lines);
  }
  const body = [...services].flatMap(([service, lines]) => [
    `  <service version="1" type="service" name="${attr(service)}">`, ...lines, '  </service>',
  ]);
  return [
    '<?xml version="1.0"?>',
    '<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">',
    '<service_bundle type="profile" name="sled-agent">',
    ...body,
    '</service_bundle>',
    '',
  ].join('\n');
}

/**
 * Writes the profile into a zone's root, which must not be in the kernel (the caller checks):
 * nothing in the zone can change its files meanwhile. A zone that ran before may have left
 * symbolic links in its root, which the global zone must not follow out of it: every directory
 * from the zonepath down is checked to be a real one, the file is written beside its final name
 * and renamed over it (rename replaces a link, never follows it). EBADZONEROOT if the root is not
 * as an installed zone's is.
 */
export async function writeSiteProfile(zonepath: string, xml: string): Promise<void> {
  let dir = zonepath;
  for (const part of PROFILE_DIR) {
    dir = join(dir, part);
    const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
      throw hostError('EBADZONEROOT', `cannot write the site profile: ${dir}: ${err.code === 'ENOENT' ? 'missing (is the zone installed?)' : err.message}`);
    });
    if (!st.isDirectory()) throw hostError('EBADZONEROOT', `cannot write the site profile: ${dir} is not a directory (a ${st.isSymbolicLink() ? 'symbolic link' : 'file'})`);
  }
  const path = join(dir, 'site.xml');
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    try {
      await handle.writeFile(xml);
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // Nothing of a failed write is left beside the profile (a rename that failed left the file).
    await rm(tmp, { force: true });
    throw err;
  }
}
