// GET /metrics on both agents over real HTTP: the exposition format, each agent counting only
// its own requests although several share this process, and what an operator graphs (requests
// by route and status, instances by state, provisioning phases, host calls by operation, the
// Nexus queue with its retries and refusals, ledger writes, the event loop). Counts are
// asserted, never durations.
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NexusNotifier } from '../src/common/nexus-notifier.js';
import { hostError } from '../src/host/index.js';
import { instrumentHost, Metrics } from '../src/metrics.js';
import { NexusError } from '../src/nexus-client.js';
import { countingHost, type CountingHost } from './support/counting-host.js';
import { FakeNexus } from './support/fake-nexus.js';
import { ensureBody, nexusSees, realRuntime, startTestAgent, type TestAgent } from './support/agent.js';
import { instanceEnsure, startTestSim, type TestSim } from './support/sim.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (enough of format 0.0.4 for these tests). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample named `name` whose labels include `labels`; undefined if none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

async function scrape(request: (method: string, path: string) => Promise<{ status: number; body: any }>): Promise<Sample[]> {
  const res = await request('GET', '/metrics');
  expect(res.status).toBe(200);
  return parse(res.body as string);
}

const log = pino({ level: 'silent' });

describe('simulated sled agent', () => {
  const sims: TestSim[] = [];
  afterEach(async () => {
    await Promise.all(sims.splice(0).map((s) => s.close()));
  });

  it('serves the text exposition format with its own metrics and the process\'s', async () => {
    const t = await startTestSim({ mode: 'explicit' });
    sims.push(t);
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toContain('# TYPE sled_agent_http_request_duration_seconds histogram');
    const samples = parse(text);
    expect(value(samples, 'sled_agent_info', { sled_id: t.config.id, agent: 'simulated', host_backend: 'none' })).toBe(1);
    // The event-loop delay comes with prom-client's default metrics.
    expect(value(samples, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
    expect(value(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('counts requests by route and status, instances by state and Nexus updates', async () => {
    const t = await startTestSim({ mode: 'explicit' });
    sims.push(t);
    await t.sim.registered;
    const id = randomUUID();
    expect((await t.request('PUT', `/instances/${id}`, instanceEnsure(t.config.id, 'running'))).status).toBe(200);
    expect((await t.request('PUT', `/instances/${id}`, instanceEnsure(t.config.id, 'running'))).status).toBe(200);
    expect((await t.request('POST', `/instances/${randomUUID()}/poke`)).status).toBe(404);
    expect((await t.request('GET', '/no/such/route')).status).toBe(404);
    let samples = await scrape(t.request);
    const count = (route: string, method: string, status: string) =>
      value(samples, 'sled_agent_http_request_duration_seconds_count', { route, method, status_code: status });
    expect(count('/instances/{instance_id}', 'PUT', '200')).toBe(2);
    expect(count('/instances/{instance_id}/poke', 'POST', '404')).toBe(1);
    // Unmatched paths share one series, so a scanner cannot blow up the label space.
    expect(count('unmatched', 'GET', '404')).toBe(1);
    expect(value(samples, 'sled_agent_instances', { state: 'starting' })).toBe(1);
    expect(value(samples, 'sled_agent_instances', { state: 'running' })).toBe(0);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'sled', outcome: 'delivered' })).toBe(1);

    await t.request('POST', `/instances/${id}/poke`);
    await t.nexus.waitFor((r) => r.url === `/instances/${id}` && r.body?.run_state === 'running');
    samples = await scrape(t.request);
    expect(value(samples, 'sled_agent_instances', { state: 'running' })).toBe(1);
    expect(value(samples, 'sled_agent_instances', { state: 'starting' })).toBe(0);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'instance', outcome: 'delivered' })).toBe(1);
    expect(value(samples, 'sled_agent_nexus_queue_depth')).toBe(0);
  });

  it('keeps one registry per agent: two sims in one process count only their own requests', async () => {
    const [a, b] = await Promise.all([startTestSim(), startTestSim()]);
    sims.push(a, b);
    for (let i = 0; i < 3; i++) await a.request('GET', '/instances');
    await b.request('GET', '/instances');
    const route = { route: '/instances', method: 'GET', status_code: '200' };
    expect(value(await scrape(a.request), 'sled_agent_http_request_duration_seconds_count', route)).toBe(3);
    expect(value(await scrape(b.request), 'sled_agent_http_request_duration_seconds_count', route)).toBe(1);
    expect(value(await scrape(b.request), 'sled_agent_info', { sled_id: b.config.id })).toBe(1);
    expect(value(await scrape(b.request), 'sled_agent_info', { sled_id: a.config.id })).toBeUndefined();
  });

  it('counts retries while Nexus fails, and refusals', async () => {
    const nexus = await FakeNexus.start();
    let failures = 2;
    nexus.respond = (req) => {
      if (req.url.startsWith('/sled_agents/') && failures > 0) {
        failures -= 1;
        return { status: 503 };
      }
      // Nexus refuses this instance's updates (a 4xx is not retried).
      if (req.url.startsWith('/instances/')) return { status: 400, body: '{"message":"no"}' };
      return { status: 204 };
    };
    const t = await startTestSim({ mode: 'explicit', nexus });
    sims.push(t);
    await t.sim.registered;
    const id = randomUUID();
    await t.request('PUT', `/instances/${id}`, instanceEnsure(t.config.id, 'running'));
    await t.request('POST', `/instances/${id}/poke`);
    await t.nexus.waitFor((r) => r.url === `/instances/${id}`);
    await t.sim.notifier.drain(5_000);
    const samples = await scrape(t.request);
    expect(value(samples, 'sled_agent_nexus_update_retries_total', { kind: 'sled' })).toBe(2);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'sled', outcome: 'delivered' })).toBe(1);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'instance', outcome: 'refused' })).toBe(1);
  });
});

describe('sled agent', () => {
  let t: TestAgent | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('times each provisioning phase, the host calls and the ledger writes of an instance start', async () => {
    t = await startTestAgent();
    const id = randomUUID();
    const nic = { name: 'net0', ip: '172.16.0.5', mac: 'a8:40:25:f0:00:01', subnet: '172.16.0.0/22', vni: 10, slot: 0 };
    expect((await t.request('PUT', `/instances/${id}`, ensureBody('running', realRuntime(), [nic]))).status).toBe(200);
    await nexusSees(t.nexus, id, 'running');
    const samples = await scrape(t.request);

    expect(value(samples, 'sled_agent_info', { agent: 'sled-agent', host_backend: 'sim' })).toBe(1);
    expect(value(samples, 'sled_agent_http_request_duration_seconds_count',
      { route: '/instances/{instance_id}', method: 'PUT', status_code: '200' })).toBe(1);
    expect(value(samples, 'sled_agent_instances', { state: 'running' })).toBe(1);
    // A fresh instance goes through every phase once, and once from the first to Propolis running.
    for (const phase of ['ports', 'vnic', 'configure', 'install', 'boot', 'zone_running', 'network', 'address', 'service', 'propolis']) {
      expect(value(samples, 'sled_agent_instance_phase_duration_seconds_count', { phase }), phase).toBe(1);
    }
    expect(value(samples, 'sled_agent_instance_start_duration_seconds_count')).toBe(1);
    expect(value(samples, 'sled_agent_host_call_duration_seconds_count', { op: 'zones.install', result: 'ok' })).toBe(1);
    expect(value(samples, 'sled_agent_host_call_duration_seconds_count', { op: 'zones.boot', result: 'ok' })).toBe(1);
    expect(value(samples, 'sled_agent_host_call_duration_seconds_count', { op: 'network.createPort', result: 'ok' })).toBe(1);
    expect(value(samples, 'sled_agent_host_call_duration_seconds_count', { op: 'zones.list', result: 'ok' })).toBeGreaterThan(0);
    expect(value(samples, 'sled_agent_ledger_commit_duration_seconds_count', { ledger: 'instances' })).toBeGreaterThan(0);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'instance', outcome: 'delivered' })).toBeGreaterThan(0);
    expect(value(samples, 'sled_agent_nexus_queue_depth')).toBeGreaterThanOrEqual(0);
    expect(value(samples, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('labels a failed host call with its error code', async () => {
    let counting: CountingHost | undefined;
    t = await startTestAgent({
      wrapHost: (sim) => {
        counting = countingHost(sim);
        return counting.host;
      },
    });
    const runtime = realRuntime();
    // The instance's zone is named by the agent (an id of its own), so every Propolis zone's
    // install fails; this test's instance is the only one.
    counting!.failInstall.add(/^oxz_propolis-server_/);
    const id = randomUUID();
    await t.request('PUT', `/instances/${id}`, ensureBody('running', runtime));
    await nexusSees(t.nexus, id, 'failed');
    expect(counting!.calls.install.map((c) => c.zone)).toEqual([expect.stringMatching(/^oxz_propolis-server_[0-9a-f-]{36}$/)]);
    const samples = await scrape(t.request);
    expect(value(samples, 'sled_agent_host_call_duration_seconds_count', { op: 'zones.install', result: 'ECOMMAND' })).toBe(1);
    expect(value(samples, 'sled_agent_instances', { state: 'failed' })).toBe(1);
    // Cut short at install: no time to Propolis running was counted.
    expect(value(samples, 'sled_agent_instance_start_duration_seconds_count')).toBe(0);
  });
});

describe('Metrics', () => {
  const histogramCount = async (m: Metrics, name: string, labels: Record<string, string> = {}) =>
    value(parse(await m.registry.metrics()), `${name}_count`, labels);

  it('counts a phase only when the next one starts, and drops one a restart cut short', async () => {
    const m = new Metrics({ sled_id: randomUUID(), agent: 'sled-agent', version: '0', host_backend: 'sim' });
    const name = 'sled_agent_instance_phase_duration_seconds';
    m.phase('a', 'vnic');
    m.phase('a', 'configure');
    m.phase('a', 'install');
    expect(await histogramCount(m, name, { phase: 'vnic' })).toBe(1);
    expect(await histogramCount(m, name, { phase: 'install' })).toBeUndefined();
    // Provisioning failed in install and started over: install is not counted with the gap.
    m.phase('a', 'vnic');
    m.phase('a', 'configure');
    m.phase('a', 'install');
    m.phase('a', 'boot');
    m.phase('a', 'running');
    expect(await histogramCount(m, name, { phase: 'install' })).toBe(1);
    expect(await histogramCount(m, name, { phase: 'configure' })).toBe(2);
    expect(await histogramCount(m, name, { phase: 'boot' })).toBe(1);
    expect(await histogramCount(m, 'sled_agent_instance_start_duration_seconds')).toBe(1);
    // Parallel steps: the guest NICs' ports and VNICs start while the zone is cloned; they are
    // side steps, not counted, and do not cut the clone short.
    m.phase('b', 'vnic');
    m.phase('b', 'configure');
    m.phase('b', 'clone');
    m.phase('b', 'ports');
    m.phase('b', 'vnic');
    expect(await histogramCount(m, name, { phase: 'clone' })).toBeUndefined();
    m.phase('b', 'boot');
    expect(await histogramCount(m, name, { phase: 'clone' })).toBe(1);
    expect(await histogramCount(m, name, { phase: 'ports' })).toBeUndefined();
    m.phase('b', 'running');
    expect(await histogramCount(m, 'sled_agent_instance_start_duration_seconds')).toBe(2);
    // A Running seen again later (the monitor after a reboot) is not another start.
    m.phase('a', 'running');
    expect(await histogramCount(m, 'sled_agent_instance_start_duration_seconds')).toBe(2);
  });

  it('forgets provisioning timings of instances that left when instances are counted', async () => {
    const m = new Metrics({ sled_id: randomUUID(), agent: 'sled-agent', version: '0', host_backend: 'sim' });
    const here = new Set(['a', 'b']);
    m.instances(() => [...here].map((id) => ({ id, state: 'starting' })));
    m.phase('a', 'install');
    m.phase('b', 'install');
    here.delete('b');
    expect(value(parse(await m.registry.metrics()), 'sled_agent_instances', { state: 'starting' })).toBe(1);
    here.add('b');
    // b's install was forgotten with b, so this running closes nothing.
    m.phase('b', 'running');
    m.phase('a', 'running');
    expect(await histogramCount(m, 'sled_agent_instance_phase_duration_seconds', { phase: 'install' })).toBe(1);
  });

  it('has each Nexus update end in one outcome and counts the retries', async () => {
    const m = new Metrics({ sled_id: randomUUID(), agent: 'simulated', version: '0', host_backend: 'none' });
    const notifier = new NexusNotifier(log, { initialMs: 1, maxMs: 2, factor: 2 }, m.notifier);
    let fail = 2;
    expect(await notifier.push('zpool:x', 'a', async () => {
      if (fail-- > 0) throw new NexusError('down', 503);
    })).toBe('delivered');
    expect(await notifier.push('dataset:y', 'b', async () => {
      throw new NexusError('no', 400);
    })).toBe('refused');
    let release!: () => void;
    const first = notifier.push('disk:z', 'gen 1', () => new Promise<void>((resolve) => { release = resolve; }));
    const second = notifier.push('disk:z', 'gen 2', async () => {});
    const third = notifier.push('disk:z', 'gen 3', async () => {});
    expect(await second).toBe('superseded');
    release();
    await Promise.all([first, third]);
    const samples = parse(await m.registry.metrics());
    expect(value(samples, 'sled_agent_nexus_update_retries_total', { kind: 'zpool' })).toBe(2);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'zpool', outcome: 'delivered' })).toBe(1);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'dataset', outcome: 'refused' })).toBe(1);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'disk', outcome: 'superseded' })).toBe(1);
    expect(value(samples, 'sled_agent_nexus_updates_total', { kind: 'disk', outcome: 'delivered' })).toBe(2);
  });

  it('times host calls through the wrapper without changing what they return or throw', async () => {
    const m = new Metrics({ sled_id: randomUUID(), agent: 'sled-agent', version: '0', host_backend: 'sim' });
    const calls: string[] = [];
    const fake = {
      kind: 'sim',
      links: { linkExists: async (name: string) => name === 'stub0' },
      zones: {
        list: async () => [],
        delete: async () => { throw hostError('Z_NO_ZONE', 'no such zone'); },
      },
      datasets: {},
      network: {},
      events: { subscribe: () => { calls.push('subscribe'); return () => {}; } },
      reachable: (_zone: string, addr: unknown) => addr,
      close: async () => {},
    } as any;
    const host = instrumentHost(fake, m);
    expect(await host.links.linkExists('stub0')).toBe(true);
    await expect(host.zones.delete('oxz_x')).rejects.toMatchObject({ code: 'Z_NO_ZONE' });
    const unsubscribe = host.events.subscribe(() => {});
    expect(typeof unsubscribe).toBe('function');
    expect(calls).toEqual(['subscribe']);
    // Same function each time, so callers that compare or cache methods still can.
    expect(host.zones.list).toBe(host.zones.list);
    await new Promise((resolve) => setImmediate(resolve));
    const samples = parse(await m.registry.metrics());
    const name = 'sled_agent_host_call_duration_seconds_count';
    expect(value(samples, name, { op: 'links.linkExists', result: 'ok' })).toBe(1);
    expect(value(samples, name, { op: 'zones.delete', result: 'Z_NO_ZONE' })).toBe(1);
    expect(samples.filter((s) => s.name === name && s.labels.op === 'events.subscribe')).toEqual([]);
  });
});
