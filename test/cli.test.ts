// The sled-agent command as a user runs it: usage errors, a real simulated agent process on
// loopback that announces its port, registers with Nexus, logs one JSON line per request and
// shuts down cleanly on SIGTERM.
//
// Children start from dist/ (built by the global setup), one at a time: a `node --import tsx`
// child compiles every module it loads, and ten of them at once took 13-18 s each on a busy
// 2-core machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { testConfig, writeConfigToml } from './support/agent.js';
import { FakeNexus } from './support/fake-nexus.js';
import { instanceEnsure } from './support/sim.js';

const CLI = ['dist/bin/sled-agent.js'];

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A directory under the OS temp dir, removed after the tests. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sled-agent-cli-'));
  tempDirs.push(dir);
  return dir;
}

const running = new Set<ChildProcess>();
afterEach(() => {
  // A child that should have exited and did not (the failure under test) must not outlive it.
  for (const child of running) child.kill('SIGKILL');
});

/** Runs the CLI to completion: its exit status, stdout and stderr. */
function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.on('exit', () => running.delete(child));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('usage errors exit 2 with the usage on stderr', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['no arguments', [], /Usage: sled-agent/],
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['sim without arguments', ['sim'], /missing required argument 'SLED_ID'/],
    ['a bad sled id', ['sim', 'not-a-uuid', '127.0.0.1:0', '127.0.0.1:1'], /\/id: must match format "uuid"/],
    ['a host name for an address', ['sim', randomUUID(), 'localhost:0', '127.0.0.1:1'], /BIND_ADDR:PORT: "localhost:0" is not a socket address/],
    ['an unbracketed IPv6 address', ['sim', randomUUID(), '127.0.0.1:0', '::1:12221'], /NEXUS_ADDR:PORT/],
    ['a bad sim mode', ['sim', randomUUID(), '127.0.0.1:0', '127.0.0.1:1', '--sim-mode', 'lazy'], /Allowed choices are auto, explicit/],
    ['an unknown API', ['openapi', 'nexus'], /unknown API "nexus": try one of \{sled, sim, bootstrap\}/],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const res = await runCli(args);
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(message);
    expect(res.stderr).toMatch(/Usage: sled-agent/);
    expect(res.stdout).toBe('');
  });

});

describe('configuration errors exit 2 with the problem alone, not the usage', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['an rss config that does not exist', ['rss', '/nonexistent/config-rss.toml'], /^error: cannot read RSS configuration file \/nonexistent\/config-rss.toml/],
    ['a bootstrap config that does not exist', ['bootstrap', '/nonexistent/b.toml'], /^error: cannot read configuration file \/nonexistent\/b.toml/],
    ['a run config that does not exist', ['run', '/nonexistent/sled-agent.toml'], /^error: cannot read configuration file \/nonexistent\/sled-agent.toml/],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const res = await runCli(args);
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(message);
    expect(res.stderr).not.toMatch(/Usage:/);
    expect(res.stdout).toBe('');
  });

  it('refuses a config file that is not valid TOML, naming the file', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.toml');
    writeFileSync(file, 'sim_mode = \n');
    const res = await runCli(['sim', randomUUID(), '127.0.0.1:0', '127.0.0.1:1', '--config', file]);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain(`configuration file ${file} is not valid TOML`);
    expect(res.stderr).not.toMatch(/Usage:/);
  });

  it('lists the allowed values of a bad choice, also of a choice or a table', async () => {
    const dir = tempDir();
    const file = join(dir, 'config.toml');
    writeFileSync(file, [
      'id = "fb0f7546-4d46-40ca-9d56-cbb810684ca7"', 'nexus_address = "127.0.0.1:12221"', `data_dir = "${join(dir, 'data')}"`,
      '[host]', 'latency = "realstic"', '[log]', 'level = "verbose"', '',
    ].join('\n'));
    const res = await runCli(['run', file]);
    expect(res.status).toBe(2);
    expect(res.stderr).toBe(`error: invalid configuration (${file}):\n`
      + '  /host/latency: must be one of: zero, realistic, a table (it is "realstic")\n'
      + '  /log/level: must be one of: trace, debug, info, warn, error, fatal, silent (it is "verbose")\n');
  });

  it('names the bad field of a table given for a choice or a table', async () => {
    const dir = tempDir();
    const file = join(dir, 'config.toml');
    writeFileSync(file, [
      'id = "fb0f7546-4d46-40ca-9d56-cbb810684ca7"', 'nexus_address = "127.0.0.1:12221"', `data_dir = "${join(dir, 'data')}"`,
      '[host]', 'latency = { install = "slow", instal = 5 }', '',
    ].join('\n'));
    const res = await runCli(['run', file]);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('/host/latency: unknown field "instal"');
    expect(res.stderr).toContain('/host/latency/install: must be integer');
    expect(res.stderr).not.toContain('must be one of');
  });

  it('lists the allowed values in a sim config file too', async () => {
    const dir = tempDir();
    const file = join(dir, 'sim.toml');
    writeFileSync(file, '[log]\nlevel = "verbose"\n');
    const res = await runCli(['sim', randomUUID(), '127.0.0.1:0', '127.0.0.1:1', '--config', file]);
    expect(res.status).toBe(2);
    expect(res.stderr).toBe(`error: invalid configuration (${file}):\n`
      + '  /log/level: must be one of: trace, debug, info, warn, error, fatal, silent (it is "verbose")\n');
  });
});

describe('what an operator asks the command', () => {
  const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

  it.each(['--version', '-V'])('%s prints the version', async (flag) => {
    const res = await runCli([flag]);
    expect(res).toEqual({ status: 0, stdout: `sled-agent ${version}\n`, stderr: '' });
  });

  it('<command> --help prints that command\'s usage on stdout', async () => {
    for (const command of ['sim', 'run', 'bootstrap', 'rss', 'openapi']) {
      const res = await runCli([command, '--help']);
      expect({ command, status: res.status, stderr: res.stderr }).toEqual({ command, status: 0, stderr: '' });
      expect(res.stdout).toMatch(new RegExp(`^Usage: sled-agent ${command} `));
      if (command !== 'rss' && command !== 'openapi') expect(res.stdout).toContain('SIGINT or SIGTERM stops it gracefully');
    }
  }, 60_000);

  it('openapi piped into a reader that stops early (| head) exits 0 without a stack trace', async () => {
    const child = spawn(process.execPath, [...CLI, 'openapi', 'sled'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    // The reader is gone before the document is written (as `head` is after its lines).
    child.stdout!.destroy();
    const [code] = await once(child, 'exit') as [number | null];
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  }, 30_000);
});

describe('sled-agent run', () => {
  it('refuses a config with a bad field, naming every problem, before touching anything', async () => {
    const dir = tempDir();
    const file = join(dir, 'config.toml');
    writeFileSync(file, [
      'id = "not-a-uuid"', 'nexus_address = "127.0.0.1:12221"', 'zpools = ["tank"]', '',
      '[host]', 'backend = "solaris"', '', '[instances]', 'readiness = "sometimes"', '',
    ].join('\n'));
    const res = await runCli(['run', file]);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain(`invalid configuration (${file})`);
    for (const field of ['/id', '/zpools/0', '/host/backend', '/instances/readiness']) expect(res.stderr).toContain(field);
    expect(res.stderr).not.toMatch(/Usage:/);
    expect(res.stdout).toBe('');
  });
});

describe('one agent per directory', () => {
  const children: ChildProcess[] = [];
  let nexus: FakeNexus | undefined;
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await nexus?.close();
  });

  /** Starts `sled-agent run` on `config` and waits for its "listening on" line. */
  async function runAgent(config: string) {
    const child = spawn(process.execPath, [...CLI, 'run', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const first = await Promise.race([
      once(createInterface({ input: child.stdout! }), 'line').then(([line]) => line as string),
      once(child, 'exit').then(([code]) => `exited ${code}: ${stderr}`),
    ]);
    expect(first).toMatch(/^listening on http:\/\/127\.0\.0\.1:\d+$/);
    return child;
  }

  it('refuses a second sled agent on a data directory, naming it and the holder, and not after the holder was SIGKILLed', async () => {
    nexus = await FakeNexus.start();
    const dir = tempDir();
    const config = join(dir, 'config.toml');
    writeConfigToml(config, testConfig(dir, nexus.address));
    const first = await runAgent(config);

    const second = await runCli(['run', config]);
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`data directory ${join(dir, 'var-oxide')} is in use by another sled agent (pid ${first.pid})`);
    expect(second.stdout).toBe('');

    first.kill('SIGKILL');
    await once(first, 'exit');
    const third = await runAgent(config);
    third.kill('SIGTERM');
    const [code] = await once(third, 'exit');
    expect(code).toBe(0);
  }, 60_000);

  it('refuses a second simulated host on a state directory', async () => {
    nexus = await FakeNexus.start();
    const dir = tempDir();
    const shared = { host: { backend: 'sim', state_dir: join(dir, 'sim-host'), latency: 'zero' } };
    const a = join(dir, 'a.toml');
    const b = join(dir, 'b.toml');
    writeConfigToml(a, testConfig(dir, nexus.address, { data_dir: join(dir, 'a'), ...shared }));
    writeConfigToml(b, testConfig(dir, nexus.address, { data_dir: join(dir, 'b'), ...shared }));
    const first = await runAgent(a);
    const second = await runCli(['run', b]);
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`state directory ${join(dir, 'sim-host')} is in use by another simulated host (pid ${first.pid})`);
  }, 60_000);
});

describe('sled-agent sim', () => {
  let child: ChildProcess | undefined;
  let nexus: FakeNexus | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await nexus?.close();
  });

  interface StartOptions {
    env?: NodeJS.ProcessEnv;
    mode?: 'auto' | 'explicit';
    extra?: string[];
    /** False: nothing reads the agent's stderr (the pipe stays open). */
    readStderr?: boolean;
    /** Instead of a FakeNexus. */
    nexusAddress?: string;
  }

  async function start(bind: string, options: StartOptions = {}) {
    nexus = await FakeNexus.start();
    const id = randomUUID();
    child = spawn(process.execPath, [...CLI, 'sim', id, bind, options.nexusAddress ?? nexus.address, '--sim-mode', options.mode ?? 'explicit', ...options.extra ?? []], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    if (options.readStderr !== false) createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
    const lines = createInterface({ input: child.stdout! });
    const [first] = await once(lines, 'line') as [string];
    const port = Number(/^listening on http:\/\/.*:(\d+)$/.exec(first)?.[1]);
    return { id, first, port, stderr, child };
  }

  it('serves its Crucible agents on its own address, and tells Nexus so, as sled-agent-sim does', async () => {
    const { child: proc } = await start('127.0.0.2:0');
    const put = await nexus!.waitFor((r) => r.method === 'PUT' && /\/dataset\//.test(r.url));
    expect(put.body.address).toMatch(/^127\.0\.0\.2:\d+$/);
    const port = Number(/:(\d+)$/.exec(put.body.address)![1]);
    expect((await fetch(`http://127.0.0.2:${port}/crucible/0/regions`)).status).toBe(200);
    proc.kill('SIGTERM');
    await once(proc, 'exit');
  });

  it('announces its real port, registers, serves, logs one JSON line per request and stops on SIGTERM', async () => {
    const { id, first, stderr, child: proc } = await start('127.0.0.1:0');
    const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(first);
    expect(m, first).not.toBeNull();
    const port = Number(m![1]);
    expect(port).toBeGreaterThan(0);

    const reg = await nexus!.waitFor((r) => r.url === `/sled_agents/${id}`);
    expect(reg.body).toEqual({ sa_address: `127.0.0.1:${port}` });

    const res = await fetch(`http://127.0.0.1:${port}/instances/${randomUUID()}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(instanceEnsure(id, 'running')),
    });
    expect(res.status).toBe(200);
    expect((await res.json()).run_state).toBe('starting');

    proc.kill('SIGTERM');
    const [code] = await once(proc, 'exit');
    expect(code).toBe(0);
    const records = stderr.map((l) => JSON.parse(l));
    const completed = records.filter((r) => r.msg === 'request completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ level: 30, method: 'PUT', status: 200 });
    expect(typeof completed[0].req_id).toBe('string');
    expect(records.some((r) => r.msg === 'simulated sled agent stopped')).toBe(true);
  });

  it('honours LOG_LEVEL over the configured level', async () => {
    const { id, first, stderr, child: proc } = await start('127.0.0.1:0', { env: { LOG_LEVEL: 'warn' } });
    const port = Number(/:(\d+)$/.exec(first)![1]);
    await nexus!.waitFor((r) => r.url === `/sled_agents/${id}`);
    const res = await fetch(`http://127.0.0.1:${port}/disks/not-a-uuid/poke`, { method: 'POST' });
    expect(res.status).toBe(400);
    proc.kill('SIGTERM');
    await once(proc, 'exit');
    expect(stderr.map((l) => JSON.parse(l)).filter((r) => r.level < 40)).toEqual([]);
  });

  it('stops on SIGTERM in auto mode after its log reader went away (EPIPE)', async () => {
    const dir = tempDir();
    const config = join(dir, 'sim.toml');
    writeFileSync(config, '[sim]\nauto_delay_ms = 20\n');
    const { id, port, child: proc } = await start('127.0.0.1:0', { mode: 'auto', extra: ['--config', config] });
    await nexus!.waitFor((r) => r.url === `/sled_agents/${id}`);
    const instance = randomUUID();
    const put = await fetch(`http://127.0.0.1:${port}/instances/${instance}`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(instanceEnsure(id, 'running')),
    });
    expect(put.status).toBe(200);
    proc.stderr!.destroy();
    proc.kill('SIGTERM');
    const [code, signal] = await once(proc, 'exit');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });

  it('stops on SIGTERM while its log reader has stopped reading (a full pipe)', async () => {
    const { port, child: proc } = await start('127.0.0.1:0', { readStderr: false });
    // Each request is logged with its URL: these are more than the pipe and this end's buffer hold.
    for (let i = 0; i < 48; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/nothing?${'x'.repeat(8000)}`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
    }
    proc.kill('SIGTERM');
    const [code, signal] = await once(proc, 'exit');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    proc.stderr!.destroy();
  });

  it('stops on SIGTERM within its shutdown deadlines while a request waits on a Nexus that never answers', async () => {
    // A Nexus that takes registration but never answers an artifact download.
    const hanging: ServerResponse[] = [];
    const silent = createServer((req, res) => {
      if (req.url?.startsWith('/artifacts/')) hanging.push(res);
      else res.writeHead(204).end();
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const dir = tempDir();
      const config = join(dir, 'sim.toml');
      writeFileSync(config, `[nexus]\ntimeout_ms = 600000\n[updates]\nartifact_dir = "${join(dir, 'zones')}"\n`);
      const { port, stderr, child: proc } = await start('127.0.0.1:0', {
        extra: ['--config', config], nexusAddress: `127.0.0.1:${(silent.address() as AddressInfo).port}`,
      });
      const update = fetch(`http://127.0.0.1:${port}/update`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', version: 1, kind: 'zone' }),
      }).catch((err: unknown) => err);
      while (hanging.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      proc.kill('SIGTERM');
      const [code, signal] = await once(proc, 'exit');
      await update;
      expect({ code, signal }).toEqual({ code: 1, signal: null });
      const late = stderr.map((l) => JSON.parse(l)).filter((r) => r.msg === 'shutdown step did not finish in time; going on without it');
      expect(late.map((r) => r.step)).toContain('stop serving');
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  }, 60_000);

  const hasIpv6Loopback = Object.values(networkInterfaces()).flat().some((i) => i?.address === '::1');
  it.runIf(hasIpv6Loopback)('accepts a bracketed IPv6 bind address', async () => {
    const { first, child: proc, stderr } = await start('[::1]:0');
    expect(first).toMatch(/^listening on http:\/\/\[::1\]:\d+$/);
    proc.kill('SIGTERM');
    const [code, sig] = await once(proc, 'exit');
    expect({ code, sig }, stderr.join('\n')).toEqual({ code: 0, sig: null });
  });
});

describe('sled-agent bootstrap', () => {
  let nexus: FakeNexus | undefined;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await nexus?.close();
  });

  async function startBootstrap(configPath: string) {
    const child = spawn(process.execPath, [...CLI, 'bootstrap', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const [first] = await once(createInterface({ input: child.stdout! }), 'line') as [string];
    const m = /^listening on http:\/\/(127\.0\.0\.1:\d+)$/.exec(first);
    expect(m, first).not.toBeNull();
    return { child, address: m![1]! };
  }

  it('starts the sled agent on start_sled, and after being killed brings it back from the persisted request', async () => {
    nexus = await FakeNexus.start();
    const dir = tempDir();
    const id = randomUUID();
    const configPath = join(dir, 'bootstrap.toml');
    writeFileSync(configPath, [
      `id = "${id}"`,
      'bind_address = "127.0.0.1:0"',
      `data_dir = "${join(dir, 'data')}"`,
      'sled_address = "127.0.0.1:0"',
      '[sled_agent]',
      `nexus_address = "${nexus.address}"`,
      'sim_mode = "explicit"',
      '[sled_agent.storage]',
      'ip = "127.0.0.1"',
      'zpools = []',
      '',
    ].join('\n'));

    const first = await startBootstrap(configPath);
    const twice = await runCli(['bootstrap', configPath]);
    expect(twice.status).toBe(1);
    expect(twice.stderr).toContain(`data directory ${join(dir, 'data')} is in use by another bootstrap agent (pid ${first.child.pid})`);

    const res = await fetch(`http://${first.address}/start_sled`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ subnet: { net: 'fd00:1122:3344:101::/64' } }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id });
    await nexus.waitForCount((r) => r.url === `/sled_agents/${id}`, 1);

    // No graceful shutdown: the persisted request must be enough.
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    const second = await startBootstrap(configPath);
    const [, reg] = await nexus.waitForCount((r) => r.url === `/sled_agents/${id}`, 2);
    // The sled agent it started is up and serving.
    const poke = await fetch(`http://${reg!.body.sa_address}/instances/${randomUUID()}/poke`, { method: 'POST' });
    expect(poke.status).toBe(404);
    second.child.kill('SIGTERM');
    const [code] = await once(second.child, 'exit');
    expect(code).toBe(0);
  }, 60_000);
});

describe('npm run sled-agent (the scripts README offers: npm start, npm run agent)', () => {
  let npm: ChildProcess | undefined;
  let agentPid: number | undefined;
  let nexus: FakeNexus | undefined;
  afterEach(async () => {
    if (npm && npm.exitCode === null) npm.kill('SIGKILL');
    // An agent orphaned by npm (the failure under test) must not outlive the test.
    if (agentPid !== undefined) {
      try {
        process.kill(agentPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await nexus?.close();
  });

  it('runs each long-lived script as npm\'s own child, so the signals npm relays reach it', () => {
    // npm runs a script as `sh -c '<script>'` and relays SIGTERM/SIGINT to that shell; dash
    // dies of it, leaving `node` orphaned, unless the shell has become node (exec).
    const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    for (const name of ['start', 'agent', 'sled-agent', 'rack']) expect(scripts[name], name).toMatch(/^exec node /);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('%s to npm stops the agent and frees its port', async (signal) => {
    nexus = await FakeNexus.start();
    const id = randomUUID();
    npm = spawn('npm', ['run', '--silent', 'sled-agent', '--', 'sim', id, '127.0.0.1:0', nexus.address, '--sim-mode', 'explicit'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const records: Array<Record<string, unknown>> = [];
    createInterface({ input: npm.stderr! }).on('line', (line) => {
      try {
        records.push(JSON.parse(line));
      } catch {
        // npm's own notices
      }
    });
    let port = 0;
    for await (const line of createInterface({ input: npm.stdout! })) {
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
      if (m) {
        port = Number(m[1]);
        break;
      }
    }
    await nexus.waitFor((r) => r.url === `/sled_agents/${id}`);
    agentPid = records.find((r) => typeof r.pid === 'number')?.pid as number;
    expect(agentPid).toBeGreaterThan(0);
    expect(agentPid).not.toBe(npm.pid);

    npm.kill(signal);
    // 'close' comes once every holder of npm's pipes has exited: the agent too.
    await once(npm, 'close');
    expect(records.some((r) => r.msg === 'simulated sled agent stopped')).toBe(true);
    const refused = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(refused).toBe('ECONNREFUSED');
  }, 60_000);
});
