// The sled agent's config (`sled-agent run`): the original's file works as it is, the shipped
// example is valid, relative paths follow the file, and bad values are named.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBootstrapConfigFile } from '../src/bootstrap/config.js';
import { checkAgentConfig, loadAgentConfigFile } from '../src/config.js';
import { loadRssConfig } from '../src/rack-setup/config.js';
import { simLatencies } from '../src/host/open.js';
import { REALISTIC_LATENCIES } from '../src/sim/host.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('sled agent config', () => {
  it('takes the original sled-agent-smf-config.toml as it is, with our defaults for the rest', () => {
    const config = loadAgentConfigFile('test/contracts/omicron/sled-agent-smf-config.toml');
    expect(config.id).toBe('fb0f7546-4d46-40ca-9d56-cbb810684ca7');
    expect(config.nexus_address).toBe('[fd00:1122:3344:0101::3]:12221');
    expect(config.zpools).toHaveLength(3);
    expect(config.log.level).toBe('info');
    expect(config.host.backend).toBe('auto');
    expect(config.zones).toMatchObject({ dataset: 'rpool/zone', root: '/zone', control_link: 'stub0' });
    expect(config.instances.readiness).toBe('event');
    expect(config.data_dir).toBe('/var/oxide');
  });

  it('accepts the shipped example', () => {
    const config = loadAgentConfigFile('config/sled-agent.toml');
    expect(config.dropshot.bind_address).toBe('127.0.0.1:12345');
    expect(config.host.latency).toBe('realistic');
  });

  it('accepts the other shipped examples: a bootstrap agent and the RSS input that sets it up', () => {
    const bootstrap = loadBootstrapConfigFile('config/bootstrap-agent.toml');
    const rss = loadRssConfig('config/config-rss.toml');
    expect(rss.requests.length).toBeGreaterThan(0);
    // The RSS input's datasets are on the zpools the bootstrap config gives its sled agent.
    const pools = JSON.stringify(bootstrap);
    for (const request of rss.requests) {
      for (const dataset of request.datasets) expect(pools).toContain(dataset.zpool_id);
    }
  });

  it('resolves relative paths against the file\'s directory', () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-config-'));
    const file = join(dir, 'c.toml');
    writeFileSync(file, 'id = "fb0f7546-4d46-40ca-9d56-cbb810684ca7"\nnexus_address = "127.0.0.1:1"\ndata_dir = "state"\n[host]\nstate_dir = "sim"\n');
    const config = loadAgentConfigFile(file);
    expect(config.data_dir).toBe(join(dir, 'state'));
    expect(config.host.state_dir).toBe(join(dir, 'sim'));
  });

  it.each([
    [{ nexus_address: 'localhost:1' }, /nexus_address/],
    [{ zpools: ['tank'] }, /\/zpools\/0/],
    [{ zpools: ['oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b', 'oxp_d462a7f7-b628-40fe-80ff-4e4189e2d62b'] }, /listed more than once/],
    [{ instances: { readiness: 'sometimes' } }, /\/instances\/readiness/],
    [{ host: { latency: { boot: -1 } } }, /\/host\/latency/],
    [{ vlan: 4095 }, /\/vlan/],
    [{ host: { zoneadm: 'zoneadm' } }, /\/host\/zoneadm/],
    [{ frobnicate: true }, /unknown field "frobnicate"/],
  ])('refuses %j', (partial, message) => {
    expect(() => checkAgentConfig({ id: 'fb0f7546-4d46-40ca-9d56-cbb810684ca7', nexus_address: '127.0.0.1:1', ...partial }, 'test'))
      .toThrow(message);
  });

  it('takes the underlay address in the form ipadm prints it', () => {
    const config = checkAgentConfig({ id: 'fb0f7546-4d46-40ca-9d56-cbb810684ca7', nexus_address: '127.0.0.1:1', underlay_address: 'FD00:1122:3344:0101:0::1' }, 'test');
    expect(config.underlay_address).toBe('fd00:1122:3344:101::1');
  });

  it('refuses link names the OS would refuse, and an underlay VNIC the start-up sweep would remove as an orphan', () => {
    const base = { id: 'fb0f7546-4d46-40ca-9d56-cbb810684ca7', nexus_address: '127.0.0.1:1' };
    expect(() => checkAgentConfig({ ...base, zones: { underlay_vnic: 'oxUnderlay0' } }, 'test'))
      .toThrow(/zones\.underlay_vnic: "oxUnderlay0" starts with "ox" or "vopte"/);
    expect(() => checkAgentConfig({ ...base, zones: { underlay_vnic: 'vopte3' } }, 'test')).toThrow(/zones\.underlay_vnic/);
    expect(() => checkAgentConfig({ ...base, zones: { underlay_vnic: 'under lay0' } }, 'test'))
      .toThrow(/zones\.underlay_vnic: "under lay0" is not a link name: only letters/);
    expect(() => checkAgentConfig({ ...base, zones: { control_link: 'stub' } }, 'test'))
      .toThrow(/zones\.control_link: "stub" is not a link name: does not end in a digit/);
    expect(checkAgentConfig({ ...base, zones: { underlay_vnic: 'underlay1' } }, 'test').zones.underlay_vnic).toBe('underlay1');
  });

  it('maps the latency settings onto the simulated host', () => {
    expect(simLatencies('realistic').latencies).toEqual(REALISTIC_LATENCIES);
    expect(simLatencies('zero').latencies.install).toBe(0);
    const table = simLatencies({ install: 300, clone: 120, network: 50, jitter: 0.1 });
    expect(table.latencies).toMatchObject({ install: 300, clone: 120, network: 50, boot: 0 });
    expect(table.jitter).toBe(0.1);
  });
});
