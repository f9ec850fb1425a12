// SimHosts for a test file that opens them directly: each on a temporary state directory unless
// the test gives one (to open a second host on the first one's state), all closed and their
// directories removed after each test.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { SimHost, type SimHostOptions } from '../../src/sim/host.js';

/**
 * Call at a test file's top level, before registering an afterEach that must run first (vitest
 * runs after-hooks in reverse order): e.g. destroying clients of these hosts' Propolis servers.
 * `defaults` are the file's options for every host; a test's own override them.
 */
export function simHostsPerTest(prefix: string, defaults: Partial<SimHostOptions> = {}): {
  tempDir(): Promise<string>;
  openHost(options?: Partial<SimHostOptions>): Promise<SimHost>;
} {
  const dirs: string[] = [];
  const hosts: SimHost[] = [];
  afterEach(async () => {
    // Hosts first: a host still open may write its state into its directory.
    for (const h of hosts.splice(0)) await h.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  }
  async function openHost(options: Partial<SimHostOptions> = {}): Promise<SimHost> {
    const host = await SimHost.open({ ...defaults, ...options, stateDir: options.stateDir ?? (await tempDir()) });
    hosts.push(host);
    return host;
  }
  return { tempDir, openHost };
}
