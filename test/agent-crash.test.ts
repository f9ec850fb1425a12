// The real agent as a process, killed with SIGKILL in the middle of provisioning and started
// again on the same state: every instance is adopted or completed and reaches running, orphans
// are removed, and no zone or VNIC is leaked. With the simulated host in the agent's process and
// in a process of its own (`[host] simulation = "process"`), which dies with the agent.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLedgerFile } from '../src/ledger.js';
import { SimHost } from '../src/sim/host.js';
import { ensureBody, instancePuts, ledgerZone, realRuntime, testConfig, writeConfigToml } from './support/agent.js';
import { FakeNexus } from './support/fake-nexus.js';
import { alive, gone, simHostPid } from './support/processes.js';

const CLI = ['--import', 'tsx', 'src/bin/sled-agent.ts'];

interface Agent {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  /** Resolves when a stderr line matches. */
  logged(pattern: RegExp, count?: number): Promise<void>;
}

function startAgent(configPath: string): Promise<Agent> {
  const child = spawn(process.execPath, [...CLI, 'run', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'debug' } });
  let err = '';
  const waiters: Array<() => void> = [];
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters]) w();
  });
  const agent: Agent = {
    child,
    url: '',
    stderr: () => err,
    logged(pattern, count = 1) {
      const global = new RegExp(pattern.source, 'g');
      const enough = () => (err.match(global)?.length ?? 0) >= count;
      if (enough()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!enough()) return;
          waiters.splice(waiters.indexOf(check), 1);
          resolve();
        };
        waiters.push(check);
        child.once('exit', (code) => reject(new Error(`agent exited (${code}) before logging ${pattern}: ${err.slice(-2000)}`)));
      });
    },
  };
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m && agent.url === '') {
        agent.url = m[1]!;
        resolve(agent);
      }
    });
    child.once('exit', (code) => reject(new Error(`agent exited with ${code} before listening: ${err.slice(-3000)}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** The simulated host process's pid, which the agent logged. */
function simHostPidOf(agent: Agent): number {
  const pid = simHostPid(agent.stderr());
  if (pid === null) throw new Error('no "simulated host: in its own process" line');
  return pid;
}

let dir: string;
let nexus: FakeNexus;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sled-agent-crash-'));
  nexus = await FakeNexus.start();
});

afterAll(async () => {
  await nexus?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.each(['in-process', 'process'] as const)('sled-agent run, killed with SIGKILL mid-provisioning (simulation = "%s")', (simulation) => {
  it('adopts or completes every instance after a restart, removes orphans, leaks nothing', async () => {
    const run = join(dir, simulation);
    const configPath = join(run, 'config.toml');
    mkdirSync(run, { recursive: true });
    // Slow enough installs that the kill lands in the middle of provisioning.
    writeConfigToml(configPath, testConfig(run, nexus.address, {
      log: { level: 'debug' },
      host: { backend: 'sim', state_dir: join(run, 'sim-host'), simulation, latency: { install: 400, boot: 50, network: 50, propolis_start: 50, vm_step: 10 } },
    }));
    const ids = Array.from({ length: 4 }, () => randomUUID());
    const runtimes = ids.map(() => realRuntime());
    const first = await startAgent(configPath);
    try {
      for (const [i, id] of ids.entries()) {
        const res = await fetch(`${first.url}/instances/${id}`, {
          method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ensureBody('running', runtimes[i])),
        });
        expect(res.status).toBe(200);
      }
      // Every instance is installing: zones configured, none running yet.
      await first.logged(/"phase":"install"/, ids.length);
      if (simulation === 'process') expect(alive(simHostPidOf(first))).toBe(true);
    } finally {
      first.child.kill('SIGKILL');
      await exited(first.child);
    }
    // The simulated host's process goes with the agent, as the in-process host does.
    if (simulation === 'process') await gone(simHostPidOf(first));
    expect(nexus.requests.filter((r) => ids.some((id) => instancePuts(id)(r)) && r.body?.run_state === 'running')).toEqual([]);
    // Each instance's zone (an id of its own) was in the ledger before anything was made for it.
    const dataDir = join(run, 'var-oxide');
    const zones = ids.map((id) => ledgerZone(dataDir, id));
    expect(new Set(zones).size).toBe(ids.length);
    for (const zone of zones) expect(zone).toMatch(/^oxz_propolis-server_[0-9a-f-]{36}$/);

    // Meanwhile, someone leaves an orphan zone and VNIC with our prefixes on the host.
    const host = await SimHost.open({ stateDir: join(run, 'sim-host') });
    await host.links.createVnic({ name: 'oxControlInstance99', link: 'stub0' });
    await host.zones.configure({ name: 'oxz_propolis-server_orphan', brand: 'omicron1', zonepath: '/zone/orphan', nets: [{ physical: 'oxControlInstance99' }], devices: [], datasets: [] });
    await host.close();

    const second = await startAgent(configPath);
    try {
      await Promise.all(ids.map((id) => nexus.waitFor((r) => instancePuts(id)(r) && r.body.run_state === 'running', 30_000)));
      await second.logged(/start-up: adopted \d+ zone\(s\) and 0 OPTE port\(s\), removed 1 orphan zone\(s\), 0 orphan VNIC\(s\)/);
    } finally {
      second.child.kill('SIGTERM');
      expect(await exited(second.child)).toBe(0);
    }
    // A stopped agent closes the host and ends its process.
    if (simulation === 'process') await gone(simHostPidOf(second));

    const after = await SimHost.open({ stateDir: join(run, 'sim-host') });
    try {
      // The same zones as before the kill, adopted or completed, and nothing else.
      expect(ids.map((id) => ledgerZone(dataDir, id))).toEqual(zones);
      const states = (await after.zones.list()).map((z) => `${z.name}:${z.state}`).sort();
      expect(states).toEqual(zones.map((zone) => `${zone}:running`).sort());
      const all = (await after.links.listVnics()).map((v) => v.name).sort();
      // The global zone's underlay VNIC is the agent's too, and no orphan.
      expect(all).toContain('underlay0');
      const vnics = all.filter((v) => v !== 'underlay0');
      expect(vnics).toHaveLength(ids.length);
      const inZones = (await Promise.all(zones.map((zone) => after.zones.config(zone))))
        .flatMap((c) => c.nets.map((n) => n.physical)).sort();
      expect(vnics).toEqual(inZones);
    } finally {
      await after.close();
    }
    // Nothing half-written is left beside the ledgers.
    expect(readdirSync(join(run, 'var-oxide')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const ledger = readLedgerFile(join(run, 'var-oxide', 'instances.json')) as { instances: Record<string, any> };
    expect(Object.keys(ledger.instances).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(ledger.instances[id].runtime.run_state).toBe('running');
  }, 90_000);
});

describe('sled-agent run with the simulated host in its own process', () => {
  it('exits, saying why, when that process dies under it (a restart adopts what is on disk)', async () => {
    const run = join(dir, 'lost');
    const configPath = join(run, 'config.toml');
    mkdirSync(run, { recursive: true });
    writeConfigToml(configPath, testConfig(run, nexus.address, {
      log: { level: 'info' },
      host: { backend: 'sim', state_dir: join(run, 'sim-host'), simulation: 'process', latency: 'zero' },
    }));
    const agent = await startAgent(configPath);
    const pid = simHostPidOf(agent);
    process.kill(pid, 'SIGKILL');
    expect(await exited(agent.child)).toBe(1);
    expect(agent.stderr()).toMatch(/"level":60[^\n]*"msg":"the simulated host process died; exiting so that a restart adopts the host again"/);
  }, 60_000);
});
