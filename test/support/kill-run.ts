// A randomized kill run of the real agent (issue 10): many instances with guest NICs, started,
// stopped, destroyed and started again in bursts, while the agent's process group is SIGKILLed
// at chosen moments (while zones boot, inside a stop/destroy burst, the instant Nexus reads a
// `stopped` report, the instant Nexus reads any report, at a random time) and started again on
// the same state. The driver acts as Nexus does: it keeps the latest runtime each instance
// reported, sends it as `initial`, and re-sends a request only when it got no answer.
//
// At the end, with the agent stopped, it checks what the issue names: every instance in its last
// requested state as Nexus, the agent's ledger and the host see it; one zone and the right VNICs
// per live instance and nothing else with our prefixes; per instance, reports with strictly
// rising generations and no generation naming two states (answers included); no 5xx; nothing in
// the ledger for instances that left. Seeded: the same seed gives the same plan (timing varies).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Host } from '../../src/host/index.js';
import { mulberry32 } from '../../src/common/random.js';
import { readLedgerFile } from '../../src/ledger.js';
import { IllumosHost } from '../../src/illumos/host.js';
import { SimHost } from '../../src/sim/host.js';
import { testConfig, writeConfigToml } from './agent.js';
import { FAKE_BIN_DIR, fakeIllumos, freshFakeHost } from './fake-illumos.js';
import { FakeNexus, type Recorded } from './fake-nexus.js';
import { gone, simHostPid } from './processes.js';
import { PropolisFarm } from './propolis-farm.js';
import { defaultVpcRules } from './vpc-rules.js';

export type KillKind = 'take' | 'boot' | 'burst' | 'stopped-report' | 'report' | 'random';
export type Backend = 'sim' | 'illumos';

/** Each instance's NICs get a /24 of 172.16.0.0/12 of their own: 4,096 of them. */
export const MAX_INSTANCES = 4096;

export interface KillRunOptions {
  backend: Backend;
  seed: number;
  /** 1 to MAX_INSTANCES. */
  instances: number;
  /** Kill rounds; the first four are the issue's windows, in order: boot, burst, stopped-report, report. */
  kills: number;
  /** Scratch directory (the run's state lives under it). */
  dir: string;
  /** [zones] warm_pool; with a pool, zones are also cloned from a template. Default 2, as the agent's. */
  pool?: number;
  /** The sim backend's `[host] simulation`: the simulated host in the agent's process (default) or its own. */
  simulation?: 'in-process' | 'process';
  /** Progress lines (what was killed when), for a person reading a failure. */
  log?: (line: string) => void;
}

export interface KillRunResult {
  problems: string[];
  /** What happened, per round: the kill and what it interrupted. */
  rounds: string[];
  final: Record<string, 'running' | 'stopped' | 'destroyed'>;
}

type Target = 'running' | 'stopped' | 'destroyed';

interface Vm {
  id: string;
  propolisId: string;
  nics: unknown[];
  target: Target;
  answered: boolean;
  /** The runtime Nexus holds: the newest generation it got in a report or an answer. */
  runtime: Record<string, any>;
  sending: boolean;
  /** What happened to it, in order, for a person reading a failure. */
  history: string[];
}

interface Seen {
  gen: number;
  state: string;
  from: 'report' | 'answer';
}

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'src', 'bin', 'sled-agent.ts');
const ILLUMOS_MAIN = join(REPO, 'test', 'support', 'illumos-agent-main.ts');
const SLED = 'fb0f7546-4d46-40ca-9d56-cbb810684ca7';
const IMAGE = 'propolis-server.tar.gz';


class AgentProcess {
  readonly child: ChildProcess;
  url = '';
  #stderr = '';
  #simHostPid: number | null = null;
  #lineWaiters: Array<{ re: RegExp; resolve: () => void }> = [];
  readonly exited: Promise<void>;

  constructor(argv: string[], env: NodeJS.ProcessEnv, logPath: string) {
    // Its own process group, so the kill takes whatever it runs (zoneadm, zlogin) with it, as
    // SIGKILL of an SMF contract would; the fakes' zoneadmd and SMF are detached, as real ones are.
    this.child = spawn(process.execPath, ['--import', 'tsx', ...argv], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    // Exited with the simulated host's process, when it forked one (`simulation = "process"`):
    // the next agent may not open the state directory before that has let go of it.
    this.exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve())).then(async () => {
      if (this.#simHostPid !== null) await gone(this.#simHostPid);
    });
    // Every process's log is kept beside the run's state, for a failed run to be read.
    const file = createWriteStream(logPath);
    this.child.stderr!.pipe(file);
    this.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      this.#stderr = (this.#stderr + text).slice(-200_000);
      // Logged at start-up, long gone from the kept tail by the end of a run.
      this.#simHostPid ??= simHostPid(this.#stderr);
      for (const w of [...this.#lineWaiters]) {
        if (w.re.test(text)) {
          this.#lineWaiters.splice(this.#lineWaiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  get stderr(): string {
    return this.#stderr;
  }

  listening(): Promise<void> {
    return new Promise((resolve, reject) => {
      let out = '';
      this.child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m && this.url === '') {
          this.url = m[1]!;
          resolve();
        }
      });
      void this.exited.then(() => reject(new Error(`agent exited before listening: ${this.#stderr.slice(-3000)}`)));
    });
  }

  /** Resolves at the next stderr chunk matching `re` (from now on). */
  logs(re: RegExp): Promise<void> {
    return new Promise((resolve) => this.#lineWaiters.push({ re, resolve }));
  }

  kill(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

export async function killRun(options: KillRunOptions): Promise<KillRunResult> {
  const { backend, seed, dir } = options;
  if (!Number.isInteger(options.instances) || options.instances < 1 || options.instances > MAX_INSTANCES) {
    throw new Error(`instances must be an integer from 1 to ${MAX_INSTANCES}, not ${options.instances}`);
  }
  const poolSize = options.pool ?? 2;
  const say = options.log ?? (() => {});
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const problems: string[] = [];
  const rounds: string[] = [];
  const seen = new Map<string, Seen[]>();
  const reportOrder = new Map<string, number[]>();

  mkdirSync(dir, { recursive: true });
  const nexus = await FakeNexus.start();
  let agent: AgentProcess | null = null;
  /** Armed by a round: kills the agent the instant Nexus reads a matching report. */
  let killOnReport: ((r: Recorded) => boolean) | null = null;
  let killed: (() => void) | null = null;

  const vms: Vm[] = Array.from({ length: options.instances }, (_, i) => {
    const propolisId = randomUUIDFrom(random);
    const count = Math.floor(random() * 3);
    return {
      id: randomUUIDFrom(random),
      propolisId,
      nics: Array.from({ length: count }, (_, slot) => ({
        // A /24 of its own in 172.16.0.0/12: valid up to MAX_INSTANCES (at 256 and more, "172.16.${i}" was not an address).
        name: `net${slot}`, ip: `172.${16 + (i >> 8)}.${i & 0xff}.${5 + slot}`, mac: `a8:40:25:f${slot}:${hex2(i >> 8)}:${hex2(i & 0xff)}`,
        subnet: `172.${16 + (i >> 8)}.${i & 0xff}.0/24`, vni: 1024 + i, slot,
      })),
      target: 'stopped',
      answered: true,
      sending: false,
      history: [],
      runtime: {
        run_state: 'creating', sled_id: SLED, propolis_id: propolisId, dst_propolis_id: null,
        propolis_addr: `[fd00:1122:3344:101::${(0x100 + i).toString(16)}]:12400`, migration_id: null,
        ncpus: 2, memory: 1024 ** 3, hostname: `vm${i}`, gen: 1, time_updated: '2022-06-08T00:00:00Z',
      },
    };
  });
  const byId = new Map(vms.map((vm) => [vm.id, vm]));

  const note = (vm: Vm, body: any, from: Seen['from']) => {
    if (typeof body?.gen !== 'number') return;
    const list = seen.get(vm.id) ?? [];
    list.push({ gen: body.gen, state: body.run_state, from });
    seen.set(vm.id, list);
    if (body.gen > vm.runtime.gen) vm.runtime = body;
  };

  nexus.respond = (r) => {
    const m = /^\/instances\/([0-9a-f-]+)$/.exec(r.url);
    const vm = m ? byId.get(m[1]!) : undefined;
    if (r.method === 'PUT' && vm) {
      vm.history.push(`report ${r.body?.run_state} ${r.body?.gen}`);
      note(vm, r.body, 'report');
      const order = reportOrder.get(vm.id) ?? [];
      order.push(r.body?.gen);
      reportOrder.set(vm.id, order);
      if (killOnReport?.(r)) {
        killOnReport = null;
        agent?.kill();
        killed?.();
      }
    }
    return { status: 204 };
  };

  // ---- the host ----
  let fake: { state: string; remove(): void } | null = null;
  let farm: PropolisFarm | null = null;
  const simState = join(dir, 'sim-host');
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  writeFileSync(join(images, IMAGE), 'not really a tarball');
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'debug' };
  if (backend === 'illumos') {
    fake = freshFakeHost();
    writeFileSync(join(fake.state, 'xde.conf'), '# the fake xde driver is attached\n');
    Object.assign(env, {
      FAKE_ILLUMOS_STATE: fake.state,
      FAKE_ILLUMOS_ZONE: 'global',
      FAKE_ILLUMOS_INSTALL_DELAY_MS: '300',
      FAKE_ILLUMOS_BOOT_DELAY_MS: '200',
      FAKE_ILLUMOS_NETWORK_DELAY_MS: '100',
      FAKE_ILLUMOS_SERVICE_START_MS: '50',
    });
    farm = PropolisFarm.start(fake.state, { vmBoot: 100, vmStep: 40 });
  }
  const configPath = join(dir, 'config.toml');
  writeConfigToml(configPath, testConfig(dir, nexus.address, {
    log: { level: 'debug' },
    ...(backend === 'sim'
      ? { host: { backend: 'sim', state_dir: simState, simulation: options.simulation ?? 'in-process', latency: { install: 400, clone: 120, boot: 250, network: 150, propolis_start: 150, vm_step: 50, jitter: 0.3 } } }
      : { zones: { control_link: 'net0', root: join(fake!.state, 'zone'), ready_timeout_ms: 60_000, warm_pool: poolSize, template: poolSize > 0 } }),
    ...(backend === 'sim' ? { zones: { ready_timeout_ms: 60_000, warm_pool: poolSize, template: poolSize > 0 } } : {}),
    nexus: { timeout_ms: 5_000, backoff_initial_ms: 20, backoff_max_ms: 500 },
  }));

  /** Until GET /metrics counts the whole pool ready (a problem after 60 s). */
  const poolFull = async (when: string) => {
    const full = new RegExp(`sled_agent_warm_pool_zones\\{[^}]*state="ready"[^}]*\\} ${poolSize}\\b`);
    const until = Date.now() + 60_000;
    while (poolSize > 0) {
      const text = await fetch(`${agent!.url}/metrics`).then((r) => r.text(), () => '');
      if (full.test(text)) return;
      if (Date.now() > until) {
        problems.push(`pool: not ${poolSize} ready zones within 60 s, ${when}`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  let starts = 0;
  const start = async () => {
    const argv = backend === 'sim' ? [CLI, 'run', configPath] : [ILLUMOS_MAIN, configPath, images];
    starts += 1;
    agent = new AgentProcess(argv, env, join(dir, `agent-${starts}.log`));
    await agent.listening();
  };

  /** PUT /instances/{id} as Nexus sends it; an answer updates what Nexus holds. */
  const send = async (vm: Vm, target: Target) => {
    vm.target = target;
    vm.answered = false;
    vm.history.push(`round ${round}: PUT ${target} (initial ${vm.runtime.run_state} ${vm.runtime.gen})`);
    const url = agent!.url;
    const body = {
      initial: {
        runtime: vm.runtime, nics: vm.nics, disks: [], cloud_init_bytes: null,
        firewall_rules: vm.nics.length === 0 ? [] : defaultVpcRules([(vm.nics[0] as { subnet: string }).subnet]),
      },
      target: { run_state: target, migration_params: null },
      migrate: null,
    };
    let res: Response;
    try {
      res = await fetch(`${url}/instances/${vm.id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    } catch {
      vm.history.push(`no answer to ${target}`);
      return; // no answer: the agent died; re-sent after the restart
    }
    const text = await res.text().catch(() => null);
    if (text === null) {
      vm.history.push(`no answer to ${target}`);
      return;
    }
    if (vm.target !== target) return; // a newer request was made meanwhile
    if (res.status !== 200) {
      problems.push(`PUT ${target} for ${vm.id} answered ${res.status}: ${text}`);
      vm.answered = true;
      return;
    }
    const answer = JSON.parse(text);
    vm.history.push(`answer to ${target}: ${answer.run_state} ${answer.gen}`);
    note(vm, answer, 'answer');
    vm.answered = true;
  };

  const resendUnanswered = async () => {
    await Promise.all(vms.filter((vm) => !vm.answered).map((vm) => send(vm, vm.target)));
  };

  const killNow = async (why: string) => {
    agent!.kill();
    await agent!.exited;
    rounds.push(why);
    say(`killed: ${why}`);
    for (const vm of vms) vm.history.push(`(killed: ${why})`);
  };

  // With a pool, the first round's starts take its zones: killed the instant one is taken (before
  // or after the ledger write that moves it), or while its guest VNICs are handed over.
  const killKinds: KillKind[] = poolSize > 0 ? ['take', 'boot', 'burst', 'stopped-report', 'report'] : ['boot', 'burst', 'stopped-report', 'report'];
  let round = 0;
  try {
    await start();
    if (poolSize > 0) await poolFull('before the first round');
    for (; round < options.kills; round += 1) {
      const kind: KillKind = killKinds[round] ?? pick(['boot', 'burst', 'stopped-report', 'report', 'random'] as const);
      // What Nexus asks for this round.
      const live = vms.filter((vm) => vm.target !== 'destroyed');
      let burst: Array<[Vm, Target]>;
      if (round === 0) {
        burst = vms.map((vm) => [vm, 'running']);
      } else {
        burst = [];
        for (const vm of live) {
          const r = random();
          if (vm.target === 'running' && r < 0.25) burst.push([vm, 'stopped']);
          else if (r >= 0.25 && r < 0.45) burst.push([vm, 'destroyed']);
          else if (vm.target === 'stopped' && r >= 0.45 && r < 0.8) burst.push([vm, 'running']);
        }
      }
      const sendBurst = async (killAfter: number | null) => {
        const inFlight: Promise<void>[] = [];
        for (const [i, [vm, target]] of burst.entries()) {
          if (killAfter === i) {
            await killNow(`round ${round}: inside a burst of ${burst.length}, after sending ${i}`);
            break;
          }
          inFlight.push(send(vm, target));
          // Requests go out one after another, as Nexus's sagas send them, not all in one tick.
          await new Promise((r) => setTimeout(r, 2 + random() * 8));
        }
        await Promise.all(inFlight);
      };

      const trigger = new Promise<string>((resolve) => {
        killed = () => resolve('report');
        if (kind === 'boot') void agent!.logs(/"phase":"boot"/).then(() => resolve('boot'));
        if (kind === 'take') void agent!.logs(/taken from the warm pool|"phase":"handover"/).then(() => resolve('take'));
        if (kind === 'random') setTimeout(() => resolve('random'), 50 + random() * 1500);
      });
      if (kind === 'stopped-report') killOnReport = (r) => r.body?.run_state === 'stopped';
      if (kind === 'report') {
        let n = 1 + Math.floor(random() * 8);
        killOnReport = () => --n === 0;
      }
      if (kind === 'burst') {
        await sendBurst(Math.floor(random() * Math.max(1, burst.length)));
        if (burst.length === 0) await killNow(`round ${round}: an empty burst, at once`);
      } else {
        const sent = sendBurst(null);
        const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('deadline'), 20_000));
        const why = await Promise.race([trigger, deadline]);
        killOnReport = null;
        if (why === 'report') {
          await agent!.exited;
          rounds.push(`round ${round}: the instant Nexus read a ${kind === 'stopped-report' ? 'stopped ' : ''}report`);
          say(rounds.at(-1)!);
        } else {
          await killNow(`round ${round}: ${why === 'deadline' ? `no ${kind} moment within 20 s, at the deadline` : kind === 'boot' ? 'while a zone boots' : kind === 'take' ? 'as a pool zone was taken' : 'at a random moment'}`);
        }
        await sent;
      }
      killed = null;
      await start();
      await resendUnanswered();
      // Some progress before the next round.
      await new Promise((r) => setTimeout(r, 100 + random() * 600));
    }
    await resendUnanswered();

    // Until every instance is where Nexus asked, as Nexus sees it.
    const final: Record<string, Target> = Object.fromEntries(vms.map((vm) => [vm.id, vm.target]));
    const reached = (vm: Vm) => {
      const state = vm.runtime.run_state;
      return vm.target === 'running' ? state === 'running'
        : vm.target === 'stopped' ? state === 'stopped'
          : state === 'stopped' || state === 'destroyed';
    };
    const until = Date.now() + 90_000;
    while (!vms.every(reached) && Date.now() < until) {
      await nexus.waitFor(() => vms.every(reached), Math.max(1, until - Date.now())).catch(() => {});
    }
    for (const vm of vms.filter((v) => !reached(v))) {
      problems.push(`instance ${vm.id} (target ${vm.target}): Nexus holds ${vm.runtime.run_state} gen ${vm.runtime.gen}; history: ${vm.history.join(', ')}`);
    }
    // Reports of instances that leave go out before they are forgotten; give the last ones time to land.
    await new Promise((r) => setTimeout(r, 500));
    // The pool refills behind the starts: what the host holds is checked once it is full again.
    await poolFull('after the last instance reached its target');
    agent!.child.kill('SIGTERM');
    await agent!.exited;
    if (agent!.child.exitCode !== 0) problems.push(`the agent exited with ${agent!.child.exitCode} on SIGTERM: ${agent!.stderr.slice(-2000)}`);

    // The agent's view: its ledger.
    const ledgerFile = readLedgerFile(join(dir, 'var-oxide', 'instances.json')) as { instances: Record<string, any>; pool?: unknown };
    const ledger = ledgerFile.instances as Record<string, any>;
    const pool = (ledgerFile.pool ?? { zones: {}, template: null }) as { zones: Record<string, { name: string; control_vnic: string }>; template: string | null };
    if (Object.keys(pool.zones).length !== poolSize) problems.push(`ledger: the pool holds ${Object.keys(pool.zones).length} zones, not ${poolSize}`);
    for (const vm of vms) {
      const record = ledger[vm.id];
      if (vm.target === 'running') {
        if (record?.runtime.run_state !== 'running') problems.push(`ledger: ${vm.id} should be running, holds ${record ? record.runtime.run_state : 'nothing'}`);
      } else if (record !== undefined) {
        problems.push(`ledger: ${vm.id} (target ${vm.target}) is still there as ${record.runtime.run_state} (desired ${record.desired?.run_state ?? 'none'})`);
      }
    }
    for (const id of Object.keys(ledger)) if (!byId.has(id)) problems.push(`ledger: unknown instance ${id}`);

    // The host's view.
    const host: Host = backend === 'sim'
      ? await SimHost.open({ stateDir: simState, links: ['stub0', 'net0', 'net1'] })
      : await IllumosHost.open({
        addon: fakeIllumos(), zoneadm: join(FAKE_BIN_DIR, 'zoneadm'), zlogin: join(FAKE_BIN_DIR, 'zlogin'), sbin: FAKE_BIN_DIR,
        resolveImage: (i) => join(images, basename(i)), opteadm: join(FAKE_BIN_DIR, 'opteadm'), xdeConf: join(fake!.state, 'xde.conf'),
      });
    try {
      const zones = (await host.zones.list()).filter((z) => z.name.startsWith('oxz_'));
      // Each running instance's zone is the one its ledger record names (an id of its own).
      const want = new Map<string, Vm>();
      for (const vm of vms.filter((v) => v.target === 'running')) {
        const zone = ledger[vm.id]?.zone;
        if (typeof zone !== 'string' || !/^oxz_propolis-server_[0-9a-f-]{36}$/.test(zone)) {
          problems.push(`ledger: running instance ${vm.id} names no zone of its own (zone ${JSON.stringify(zone)})`);
        } else if (want.has(zone)) {
          problems.push(`ledger: instances ${want.get(zone)!.id} and ${vm.id} both name zone ${zone}`);
        } else {
          want.set(zone, vm);
        }
      }
      // Every zone is exactly one running instance's, the pool's, or the template.
      for (const zone of Object.keys(pool.zones)) {
        if (want.has(zone)) problems.push(`ledger: zone ${zone} is both the pool's and instance ${want.get(zone)!.id}'s`);
      }
      for (const z of zones) {
        if (z.name === pool.template) {
          if (z.state !== 'installed') problems.push(`host: the template ${z.name} is ${z.state}, not installed`);
        } else if (pool.zones[z.name] !== undefined) {
          if (z.state !== 'running') problems.push(`host: pool zone ${z.name} is ${z.state}`);
        } else if (!want.has(z.name)) {
          problems.push(`host: zone ${z.name} (${z.state}) belongs to no running instance and is not the pool's`);
        } else if (z.state !== 'running') {
          problems.push(`host: zone ${z.name} is ${z.state}`);
        }
      }
      if (poolSize > 0 && !zones.some((z) => z.name === pool.template)) problems.push(`host: no template zone (${pool.template})`);
      const vnicsInZones: string[] = [];
      for (const { name, control_vnic: control } of Object.values(pool.zones)) {
        if (!zones.some((z) => z.name === name)) {
          problems.push(`host: no zone for pool zone ${name}`);
          continue;
        }
        const nets = (await host.zones.config(name)).nets.map((n) => n.physical);
        if (JSON.stringify(nets) !== JSON.stringify([control])) problems.push(`host: pool zone ${name} has NICs ${nets.join(',')}, not only ${control}`);
        vnicsInZones.push(control);
      }
      for (const [zone, vm] of want) {
        if (!zones.some((z) => z.name === zone)) {
          problems.push(`host: no zone for running instance ${vm.id}`);
          continue;
        }
        const record = ledger[vm.id];
        const own = [...(record.guest_vnics as string[]), record.control_vnic as string];
        if (own.length !== vm.nics.length + 1) problems.push(`ledger: ${vm.id} has VNICs ${own.join(',')} for ${vm.nics.length} guest NICs + control`);
        // A pool zone was configured with its control VNIC only; its guest VNICs were given to it running.
        const configured = record.pooled ? [record.control_vnic] : own;
        const nets = (await host.zones.config(zone)).nets.map((n) => n.physical);
        if (JSON.stringify(nets) !== JSON.stringify(configured)) problems.push(`host: zone ${zone} has NICs ${nets.join(',')}, not ${configured.join(',')}`);
        vnicsInZones.push(...own);
      }
      const vnics = await host.links.listVnics();
      const owned = vnics.map((v) => v.name).filter((n) => /^(ox|vopte)/.test(n) && n !== 'underlay0').sort();
      if (JSON.stringify(owned) !== JSON.stringify([...vnicsInZones].sort())) {
        problems.push(`host: VNICs ${owned.join(',')} are not those of the running zones (${[...vnicsInZones].sort().join(',')})`);
      }
      // One OPTE port per guest NIC of a running instance, each under its zone's vopte VNIC,
      // with the instance's rules in force (the default VPC rules: inbound SSH passes).
      const ports = await host.network.listPorts();
      const wanted = [...want.values()].flatMap((vm) => vm.nics as Array<{ ip: string; mac: string; vni: number }>);
      const portIps = ports.map((p) => p.ip4 ?? '?').sort();
      if (JSON.stringify(portIps) !== JSON.stringify(wanted.map((n) => n.ip).sort())) {
        problems.push(`host: OPTE ports for ${portIps.join(',')}, but the running instances' NICs are ${wanted.map((n) => n.ip).sort().join(',')}`);
      }
      for (const port of ports) {
        const over = vnics.filter((v) => v.link === port.name).map((v) => v.name);
        if (over.length !== 1 || !vnicsInZones.includes(over[0]!)) problems.push(`host: port ${port.name} has VNICs ${over.join(',') || 'none'} over it, not one in a running zone`);
      }
      if (host.network.trace !== undefined) {
        for (const nic of wanted) {
          const answer = await host.network.trace({ vni: nic.vni, src_ip: '10.9.9.9', dst_ip: nic.ip, protocol: 'TCP', src_port: 40000, dst_port: 22, direction: 'in' });
          if (answer.verdict !== 'allow') problems.push(`host: SSH to ${nic.ip} is ${answer.verdict} (${answer.reason}): the instance's rules are not in force`);
        }
      }
    } finally {
      await host.close();
    }

    // Nexus's view of the generations.
    for (const vm of vms) {
      const order = reportOrder.get(vm.id) ?? [];
      for (let i = 1; i < order.length; i += 1) {
        if (!(order[i]! > order[i - 1]!)) {
          problems.push(`generations: ${vm.id} reported gen ${order[i]} after ${order[i - 1]}`);
          break;
        }
      }
      const byGen = new Map<number, Seen>();
      for (const s of seen.get(vm.id) ?? []) {
        const other = byGen.get(s.gen);
        if (other && other.state !== s.state) problems.push(`generations: ${vm.id} gen ${s.gen} named ${other.state} (${other.from}) and ${s.state} (${s.from})`);
        byGen.set(s.gen, s);
      }
    }
    return { problems, rounds, final };
  } finally {
    if (agent !== null && (agent as AgentProcess).child.exitCode === null) (agent as AgentProcess).kill();
    await nexus.close();
    await farm?.close();
    fake?.remove();
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** A v4 UUID from the seeded generator, so a seed names the same instances. */
function randomUUIDFrom(random: () => number): string {
  const bytes = Array.from({ length: 16 }, () => Math.floor(random() * 256));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const h = bytes.map(hex2).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
