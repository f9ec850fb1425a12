// The Rack Setup Service (the original's sled-agent/src/rack_setup/service.rs), driven from a
// config file instead of multicast peer discovery:
//   1. <stateDir>/rss-plan-completed.json exists → nothing to do.
//   2. Load <stateDir>/rss-plan.json, or build the plan from the config;
//   3. persist it (atomically) before acting;
//   4. PUT /start_sled to every bootstrap agent;
//   5. PUT /services with the DNS services, to the sleds that have them;
//   6. PUT /filesystem for each dataset;
//   7. PUT /services with all services plus DNS, to every sled;
//   8. rename the plan to rss-plan-completed.json.
// Every call that succeeds is recorded in the plan file (atomically) before the next one is made,
// so a run that stops half way resumes exactly where it stopped and never re-sends a call that
// already succeeded. Calls go one at a time, in sled order, so a rack comes up in a predictable
// order and the log reads top to bottom.
import { readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import { loadRssConfig, type RssConfig } from './config.js';
import {
  buildPlan, callKey, checkPlan, planContent, planWarnings, STEP_NAMES, STEP_TITLES,
  type PlannedSled, type RssPlan, type StepName,
} from './plan.js';
import { lockDirectory } from '../common/dir-lock.js';
import { fsyncDir, mkdirDurable, writeJsonAtomic } from '../common/persist.js';
import type { ServiceEnsureBody, SledAgentResponse } from '../params.js';

export const PLAN_FILE = 'rss-plan.json';
export const COMPLETED_PLAN_FILE = 'rss-plan-completed.json';
/** lockDirectory's file for the holder "rack setup"; it stays after a run, unlocked. */
export const LOCK_FILE = 'rack-setup.lock';

export interface RetryPolicy {
  /** Tries per call, including the first (>= 1). */
  attempts: number;
  /** Wait after the first failure; doubles after each further one. */
  initialDelayMs: number;
  /** Cap on the wait between tries. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 10, initialDelayMs: 250, maxDelayMs: 10_000 };
/** Per request: connect, headers and body each (the original's RSS client used 60 s). */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface RackSetupOptions {
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number;
  /** Stops the run between calls or during a backoff wait; progress so far stays recorded. */
  signal?: AbortSignal;
}

export interface RssSledSummary {
  index: number;
  /** "fd00:1122:3344:101::/64" */
  subnet: string;
  bootstrap_address: string;
  sled_address: string;
  /** The sled agent's id, as start_sled answered. */
  id: string;
}

export interface RackSetupResult {
  status: 'completed' | 'already-complete';
  /** The completed plan file. */
  plan_path: string;
  sleds: RssSledSummary[];
}

/** A call that failed for good: a 4xx, a bad answer, or a transient failure after every retry. */
export class RackSetupError extends Error {
  constructor(
    message: string,
    readonly step: StepName,
    readonly sledIndex: number,
    /** e.g. "PUT http://127.0.0.1:12346/start_sled" */
    readonly call: string,
    /** HTTP status of the last answer, or null when none arrived. */
    readonly status: number | null,
    readonly attempts: number,
  ) {
    super(message);
    this.name = 'RackSetupError';
  }
}

/**
 * Runs (or resumes, or confirms) rack setup. `config` is a config-rss.toml path or a checked
 * config; it is validated even when the plan already exists. Throws ConfigError for a bad
 * config, RackSetupError for a call that failed, and an Error for an unreadable state file.
 */
export async function runRackSetup(
  config: string | RssConfig,
  stateDir: string,
  log: Logger,
  options: RackSetupOptions = {},
): Promise<RackSetupResult> {
  const rssConfig = typeof config === 'string' ? loadRssConfig(config) : config;
  const retry = checkRetry({ ...DEFAULT_RETRY, ...options.retry });
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const planPath = join(stateDir, PLAN_FILE);
  const completedPath = join(stateDir, COMPLETED_PLAN_FILE);
  const alreadyComplete = async (): Promise<RackSetupResult> => {
    const plan = await readPlan(completedPath);
    log.info({ plan: completedPath }, 'RSS: rack setup already completed; nothing to do');
    return { status: 'already-complete', plan_path: completedPath, sleds: summarize(plan, completedPath) };
  };

  // Also before the lock, which writes: a completed rack is reported even from a state directory
  // this user cannot write.
  if (await exists(completedPath)) return alreadyComplete();

  await mkdirDurable(stateDir);
  // flock(2), not a pid file: the kernel drops it when its holder dies, so a killed run never
  // blocks the next (even once its pid is another process's), and of two runs starting together
  // exactly one gets it. The rss.lock pid file of older versions is another file: it blocks nothing.
  const lock = lockDirectory(stateDir, 'rack setup', 'RSS state directory');
  const agent = new Agent({ connect: { timeout: timeoutMs }, keepAliveTimeout: 1_000 });
  try {
    // A run that held the lock may have completed the plan since the check above; applying it
    // again would re-send every call and overwrite the completed plan.
    if (await exists(completedPath)) return await alreadyComplete();

    let plan: RssPlan;
    if (await exists(planPath)) {
      plan = await readPlan(planPath);
      const done = plan.steps.map((s) => `${s.name}: ${s.completed_at ? 'done' : `${s.done.length} calls done`}`);
      log.info({ plan: planPath, progress: done }, 'RSS: resuming the persisted plan');
      if (!isDeepStrictEqual(planContent(plan), planContent(buildPlan(rssConfig)))) {
        log.warn({ plan: planPath }, 'RSS: the configuration differs from the persisted plan; following the plan (delete it to re-plan)');
      }
    } else {
      plan = buildPlan(rssConfig);
      await writeJsonAtomic(planPath, plan);
      log.info({ plan: planPath, sleds: plan.sleds.length, rack_subnet: plan.rack_subnet }, 'RSS: plan created and persisted');
    }
    for (const warning of planWarnings(plan)) log.warn(`RSS: ${warning}`);

    const runner = new StepRunner(plan, planPath, agent, retry, timeoutMs, log, options.signal);
    for (const step of STEP_NAMES) await runner.run(step);

    await rename(planPath, completedPath);
    await fsyncDir(stateDir);
    log.info({ plan: completedPath }, 'RSS: rack setup complete (step 8: plan marked complete)');
    return { status: 'completed', plan_path: completedPath, sleds: summarize(plan, completedPath) };
  } finally {
    await agent.close().catch(() => {});
    lock.release();
  }
}

interface Call {
  key: string;
  sled: PlannedSled;
  target: 'bootstrap agent' | 'sled agent';
  address: string;
  path: string;
  body: unknown;
  /** For logs and errors: "dataset 2 (crucible on zpool …)". */
  what: string;
}

function callsFor(step: StepName, plan: RssPlan): Call[] {
  const calls: Call[] = [];
  for (const sled of plan.sleds) {
    const toSled = { sled, target: 'sled agent' as const, address: sled.sled_address };
    switch (step) {
      case 'start_sleds':
        calls.push({
          key: callKey(sled.index), sled, target: 'bootstrap agent', address: sled.bootstrap_address,
          path: '/start_sled', body: sled.request, what: `subnet ${sled.request.subnet.net}`,
        });
        break;
      case 'dns_services':
        if (sled.dns_services.length > 0) {
          const body: ServiceEnsureBody = { services: sled.dns_services };
          calls.push({ ...toSled, key: callKey(sled.index), path: '/services', body, what: serviceNames(body) });
        }
        break;
      case 'datasets':
        sled.datasets.forEach((dataset, j) => calls.push({
          ...toSled, key: callKey(sled.index, j), path: '/filesystem', body: dataset,
          what: `dataset ${j} (${dataset.dataset_kind.type} on zpool ${dataset.zpool_id} at ${dataset.address})`,
        }));
        break;
      case 'services': {
        const body: ServiceEnsureBody = { services: [...sled.services, ...sled.dns_services] };
        calls.push({ ...toSled, key: callKey(sled.index), path: '/services', body, what: serviceNames(body) });
        break;
      }
    }
  }
  return calls;
}

function serviceNames(body: ServiceEnsureBody): string {
  return body.services.length === 0 ? 'no services' : `services ${body.services.map((s) => s.name).join(', ')}`;
}

class StepRunner {
  constructor(
    private readonly plan: RssPlan,
    private readonly planPath: string,
    private readonly agent: Dispatcher,
    private readonly retry: RetryPolicy,
    private readonly timeoutMs: number,
    private readonly log: Logger,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async run(step: StepName): Promise<void> {
    const record = this.plan.steps.find((s) => s.name === step)!;
    if (record.completed_at !== null) {
      this.log.info({ step }, `RSS: ${STEP_TITLES[step]}: already done`);
      return;
    }
    this.log.info({ step }, `RSS: ${STEP_TITLES[step]}`);
    for (const call of callsFor(step, this.plan)) {
      if (record.done.includes(call.key)) {
        this.log.info({ step, sled: call.sled.index }, `RSS: ${call.key}: already done, not re-sent`);
        continue;
      }
      this.signal?.throwIfAborted();
      const answer = await this.send(step, call);
      if (step === 'start_sleds') {
        call.sled.id = (answer as SledAgentResponse).id;
        this.log.info({ sled: call.sled.index, id: call.sled.id, subnet: call.sled.request.subnet.net, sled_address: call.sled.sled_address }, 'RSS: sled agent started');
      }
      record.done.push(call.key);
      await writeJsonAtomic(this.planPath, this.plan);
    }
    record.completed_at = new Date().toISOString();
    await writeJsonAtomic(this.planPath, this.plan);
  }

  /** PUTs one call, retrying transient failures; returns the parsed body of a 2xx (or null). */
  private async send(step: StepName, call: Call): Promise<unknown> {
    const url = `http://${call.address}${call.path}`;
    const label = `PUT ${url}`;
    const who = `sled ${call.sled.index} (${call.target} at ${call.address})`;
    const fail = (detail: string, status: number | null, attempts: number) => new RackSetupError(
      `RSS ${STEP_TITLES[step]} failed for ${who}: ${label} [${call.what}] ${detail}`,
      step, call.sled.index, label, status, attempts,
    );
    for (let attempt = 1; ; attempt += 1) {
      let outcome: { status: number; text: string } | { error: string };
      try {
        const res = await request(url, {
          method: 'PUT',
          dispatcher: this.agent,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(call.body),
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
          signal: this.signal,
        });
        outcome = { status: res.statusCode, text: await res.body.text() };
      } catch (err) {
        this.signal?.throwIfAborted();
        outcome = { error: errorText(err) };
      }

      if ('status' in outcome && outcome.status >= 200 && outcome.status < 300) {
        this.log.debug({ step, sled: call.sled.index, url, status: outcome.status }, `RSS: ${call.what}: done`);
        if (step !== 'start_sleds') return null;
        const id = parseStartSledAnswer(outcome.text);
        if (id === null) {
          throw fail(`answered ${outcome.status} with a body that is not a SledAgentResponse {id: uuid}: ${truncate(outcome.text)}`, outcome.status, attempt);
        }
        return { id };
      }
      const detail = 'status' in outcome
        ? `answered ${outcome.status}: ${agentMessage(outcome.text)}`
        : `got no answer: ${outcome.error}`;
      const status = 'status' in outcome ? outcome.status : null;
      if (status !== null && status >= 400 && status < 500) {
        throw fail(`${detail} (a 4xx is not retried)`, status, attempt);
      }
      if (attempt >= this.retry.attempts) {
        throw fail(`${detail} (gave up after ${attempt} attempt${attempt === 1 ? '' : 's'})`, status, attempt);
      }
      const delay = Math.min(this.retry.initialDelayMs * 2 ** (attempt - 1), this.retry.maxDelayMs);
      this.log.warn({ step, sled: call.sled.index, url, attempt, retry_in_ms: delay }, `RSS: ${call.what}: ${detail}; retrying`);
      await sleep(delay, undefined, { signal: this.signal });
    }
  }
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function parseStartSledAnswer(text: string): string | null {
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body === 'object' && body !== null && 'id' in body && typeof body.id === 'string' && UUID_RE.test(body.id)) {
      return body.id.toLowerCase();
    }
  } catch {
    // not JSON
  }
  return null;
}

/** The dropshot error envelope's message (and error_code), else the raw body, shortened. */
function agentMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown; error_code?: unknown };
    if (typeof body.message === 'string') {
      return typeof body.error_code === 'string' ? `${body.error_code}: ${body.message}` : body.message;
    }
  } catch {
    // not JSON
  }
  return text.trim() === '' ? '(empty body)' : truncate(text);
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  const code = (err as { code?: unknown }).code ?? (cause as { code?: unknown } | undefined)?.code;
  const base = cause instanceof Error && cause.message && !err.message.includes(cause.message)
    ? `${err.message}: ${cause.message}` : err.message || err.name;
  return typeof code === 'string' && !base.includes(code) ? `${base} (${code})` : base;
}

function truncate(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

function checkRetry(policy: RetryPolicy): RetryPolicy {
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1) throw new Error(`retry.attempts must be an integer >= 1, not ${policy.attempts}`);
  if (!(policy.initialDelayMs >= 0)) throw new Error(`retry.initialDelayMs must be >= 0, not ${policy.initialDelayMs}`);
  if (!(policy.maxDelayMs >= policy.initialDelayMs)) throw new Error('retry.maxDelayMs must be >= retry.initialDelayMs');
  return policy;
}

function summarize(plan: RssPlan, source: string): RssSledSummary[] {
  return plan.sleds.map((sled) => {
    if (sled.id === null) throw new Error(`RSS plan ${source}: sled ${sled.index} has no id although the plan is complete`);
    return {
      index: sled.index,
      subnet: sled.request.subnet.net,
      bootstrap_address: sled.bootstrap_address,
      sled_address: sled.sled_address,
      id: sled.id,
    };
  });
}

async function readPlan(path: string): Promise<RssPlan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read RSS plan ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`RSS plan ${path} is not JSON: ${(err as Error).message}`);
  }
  return checkPlan(value, path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
