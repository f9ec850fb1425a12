// Starts a simulated sled agent in-process against a fake Nexus, both on 127.0.0.1 port 0, and
// gives tests a small HTTP client for it.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { defaultSimConfig, type SimConfig } from '../../src/sim/config.js';
import { startSim, type RunningSim } from '../../src/sim/server.js';
import { FakeNexus } from './fake-nexus.js';

export interface TestSim {
  sim: RunningSim;
  nexus: FakeNexus;
  config: SimConfig;
  url: string;
  artifactDir: string;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; text: string }>;
  close(): Promise<void>;
}

export interface TestSimOptions {
  mode?: 'auto' | 'explicit';
  autoDelayMs?: number;
  zpools?: SimConfig['storage']['zpools'];
  /** Configure the fake Nexus before the sim starts (e.g. to make it fail). */
  nexus?: FakeNexus;
  /** The sim's logger (default: silent, or TEST_LOG_LEVEL). */
  log?: Logger;
}

export async function startTestSim(options: TestSimOptions = {}): Promise<TestSim> {
  const nexus = options.nexus ?? await FakeNexus.start();
  const artifactDir = mkdtempSync(join(tmpdir(), 'sled-agent-test-'));
  const base = defaultSimConfig();
  const config: SimConfig = {
    ...base,
    id: randomUUID(),
    sim_mode: options.mode ?? 'explicit',
    nexus_address: nexus.address,
    dropshot: { ...base.dropshot, bind_address: '127.0.0.1:0' },
    sim: { auto_delay_ms: options.autoDelayMs ?? 20 },
    storage: { ip: '127.0.0.1', zpools: options.zpools ?? [] },
    updates: { artifact_dir: join(artifactDir, 'zones') },
    nexus: { timeout_ms: 2_000, backoff_initial_ms: 5, backoff_max_ms: 50 },
  };
  const sim = await startSim(config, options.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  const url = `http://${sim.address}`;
  return {
    sim,
    nexus,
    config,
    url,
    artifactDir: config.updates.artifact_dir,
    async request(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' || body instanceof Uint8Array ? body as string : JSON.stringify(body);
        (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${url}${path}`, init);
      const text = await res.text();
      let parsed: any;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
      return { status: res.status, body: parsed, text };
    },
    async close() {
      await sim.close();
      await nexus.close();
      rmSync(artifactDir, { recursive: true, force: true });
    },
  };
}

export const TIME = '2022-06-08T21:14:44.000Z';

export function instanceRuntime(sledId: string, overrides: Record<string, unknown> = {}) {
  return {
    run_state: 'creating',
    sled_id: sledId,
    propolis_id: randomUUID(),
    dst_propolis_id: null,
    propolis_addr: null,
    migration_id: null,
    ncpus: 2,
    memory: 1 << 30,
    hostname: 'vm',
    gen: 1,
    time_updated: TIME,
    ...overrides,
  };
}

/** An InstanceEnsureBody as Nexus sends it. */
export function instanceEnsure(sledId: string, runState: string, runtime = instanceRuntime(sledId)) {
  return {
    initial: { runtime, nics: [], disks: [], cloud_init_bytes: null },
    target: { run_state: runState, migration_params: null },
    migrate: null,
  };
}

export function diskEnsure(target: Record<string, unknown>, initialState: Record<string, unknown> = { state: 'detached' }) {
  return {
    initial_runtime: { disk_state: initialState, gen: 1, time_updated: TIME },
    target,
  };
}
