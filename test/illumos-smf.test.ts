// SMF service state in a zone through the addon's libscf binding (native/scf.cc) and the typed
// layer (src/illumos/smf.ts), against the fake libscf (test/fake-illumos/scf.c): the repository
// is "$FAKE_ILLUMOS_STATE/smf/<zone>/<fmri with / and : as _>", replaced atomically by whoever
// changes a state (here: this file, or a child process), and the wait is the property-group wait
// (inotify on the zone's repository directory in the fake).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isNativeError, type NativeAddon } from '../src/illumos/addon.js';
import { getServiceState, waitForServiceState } from '../src/illumos/smf.js';
import { FAKE_LIB_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';
import { runChild } from './support/child.js';
import { threadFailPreload } from './support/thread-fail.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const ADDON_PATH = process.env.SLED_AGENT_ADDON || join(repo, 'build', 'Release', 'sled_agent_native.node');

const NET = 'svc:/milestone/network:default';
const SSH = 'svc:/network/ssh:default';

let addon: NativeAddon;
let host: { state: string; remove(): void };
let cleanup: Array<() => Promise<void> | void> = [];

beforeAll(() => {
  addon = fakeIllumos();
});

afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
  host?.remove();
});

function fresh(): string {
  host = freshFakeHost();
  return host.state;
}

function smfFile(state: string, zone: string, fmri: string): string {
  return join(state, 'smf', zone, fmri.replace(/[/:]/g, '_'));
}

/** fake_smf_set_state: write a temp file, rename it over the instance's file. */
function setState(state: string, zone: string, fmri: string, value: string): void {
  mkdirSync(join(state, 'smf', zone), { recursive: true });
  const file = smfFile(state, zone, fmri);
  writeFileSync(`${file}.tmp.${process.pid}`, value);
  renameSync(`${file}.tmp.${process.pid}`, file);
}

/** A child process that sets the states in turn, `delayMs` apart, then exits. */
function setStatesLater(state: string, zone: string, fmri: string, values: string[], delayMs: number) {
  const file = smfFile(state, zone, fmri);
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs'); const values = ${JSON.stringify(values)}; let i = 0;
       const step = () => { const tmp = ${JSON.stringify(file)} + '.tmp.' + process.pid;
         fs.writeFileSync(tmp, values[i]); fs.renameSync(tmp, ${JSON.stringify(file)});
         if (++i < values.length) setTimeout(step, ${delayMs}); };
       setTimeout(step, ${delayMs});`,
    ],
    { stdio: 'ignore' },
  );
  cleanup.push(() => {
    child.kill('SIGKILL');
  });
  return new Promise<number | null>((resolve) => child.on('exit', resolve));
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SMF state (native)', () => {
  it('reads restarter/state of an instance in a zone', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'online');
    setState(state, 'oxz_a', SSH, 'offline');
    await expect(addon.smfState('oxz_a', NET)).resolves.toBe('online');
    await expect(addon.smfState('oxz_a', SSH)).resolves.toBe('offline');
    setState(state, 'oxz_a', SSH, 'maintenance');
    await expect(addon.smfState('oxz_a', SSH)).resolves.toBe('maintenance');
  });

  it('rejects with the libscf error for a missing zone, instance or bad FMRI', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'online');
    const err = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as Error & { code: string });
    const noZone = await err(addon.smfState('oxz_missing', NET));
    expect(noZone).toMatchObject({ code: 'SCF_ERROR_NOT_FOUND' });
    expect(noZone!.message).toContain('entity not found');
    expect(noZone!.message).toContain('scf_handle_decorate');
    const noInstance = await err(addon.smfState('oxz_a', 'svc:/system/nothing:default'));
    expect(noInstance).toMatchObject({ code: 'SCF_ERROR_NOT_FOUND' });
    expect(noInstance!.message).toContain('scf_handle_decode_fmri');
    await expect(addon.smfState('oxz_a', 'svc:/milestone/network')).rejects.toMatchObject({ code: 'SCF_ERROR_CONSTRAINT_VIOLATED' });
    await expect(addon.smfState('oxz_a', 'network')).rejects.toMatchObject({ code: 'SCF_ERROR_INVALID_ARGUMENT' });
    expect(() => addon.smfState('oxz_a', 5 as never)).toThrow(TypeError);
  });

  it('wait resolves at once when the state already is one of the wanted ones', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'degraded');
    const wait = addon.smfWaitState('oxz_a', NET, { states: ['online', 'degraded'], timeoutMs: 5000 });
    await expect(wait.promise).resolves.toBe('degraded');
    expect(wait.cancel()).toBe(false);
  });

  it('wait resolves when another process changes the state, skipping unwanted states', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'uninitialized');
    const wait = addon.smfWaitState('oxz_a', NET, { states: ['online'], timeoutMs: 10_000 });
    const writer = setStatesLater(state, 'oxz_a', NET, ['offline', 'online'], 100);
    await expect(wait.promise).resolves.toBe('online');
    expect(await writer).toBe(0);
  });

  it('wait rejects with ETIMEDOUT at the deadline (whole seconds natively), with the last state', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    const started = Date.now();
    const e = (await addon.smfWaitState('oxz_a', NET, { states: ['online'], timeoutMs: 200 }).promise.catch((x: unknown) => x)) as Error;
    expect(isNativeError(e, 'ETIMEDOUT')).toBe(true);
    expect(e.message).toContain('offline');
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  it('cancel() interrupts a pending wait (ECANCELED); a second cancel() is false', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    const wait = addon.smfWaitState('oxz_a', NET, { states: ['online'] }); // no deadline at all
    await tick(50);
    expect(wait.cancel()).toBe(true);
    expect(wait.cancel()).toBe(false);
    await expect(wait.promise).rejects.toMatchObject({ code: 'ECANCELED' });
    // Cancelling straight away (before the wait thread has bound its handle) works too.
    const early = addon.smfWaitState('oxz_a', NET, { states: ['online'] });
    expect(early.cancel()).toBe(true);
    await expect(early.promise).rejects.toMatchObject({ code: 'ECANCELED' });
  });

  it('waits for two services concurrently, each resolving on its own change', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    setState(state, 'oxz_b', SSH, 'offline');
    const order: string[] = [];
    const net = addon.smfWaitState('oxz_a', NET, { states: ['online'], timeoutMs: 10_000 });
    const ssh = addon.smfWaitState('oxz_b', SSH, { states: ['online'], timeoutMs: 10_000 });
    const both = Promise.all([net.promise.then((s) => order.push(`net:${s}`)), ssh.promise.then((s) => order.push(`ssh:${s}`))]);
    await tick(50);
    setState(state, 'oxz_b', SSH, 'online');
    await ssh.promise;
    setState(state, 'oxz_a', NET, 'online');
    await both;
    expect(order).toEqual(['ssh:online', 'net:online']);
  });

  it('pending waits do not stall reads, and the event loop keeps running', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    setState(state, 'oxz_a', SSH, 'online');
    const waits = Array.from({ length: 4 }, () => addon.smfWaitState('oxz_a', NET, { states: ['online'] }));
    cleanup.push(async () => {
      for (const w of waits) w.cancel();
      await Promise.allSettled(waits.map((w) => w.promise));
    });
    await expect(addon.smfState('oxz_a', SSH)).resolves.toBe('online');
    // Satisfied by a change made from this (JS) thread while all four are blocked in the wait.
    await tick(20);
    setState(state, 'oxz_a', NET, 'online');
    await expect(Promise.all(waits.map((w) => w.promise))).resolves.toEqual(['online', 'online', 'online', 'online']);
  });

  it('a wait fails with SCF_ERROR_DELETED when the zone goes away underneath it', async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    const wait = addon.smfWaitState('oxz_a', NET, { states: ['online'], timeoutMs: 10_000 });
    await tick(50);
    rmSync(join(state, 'smf', 'oxz_a'), { recursive: true, force: true }); // fake_smf_clear_zone
    await expect(wait.promise).rejects.toMatchObject({ code: 'SCF_ERROR_DELETED' });
  });

  it('checks its arguments on the JS thread', () => {
    fresh();
    expect(() => addon.smfWaitState('z', NET, { states: [] })).toThrow(TypeError);
    expect(() => addon.smfWaitState('z', NET, { states: ['online'], timeoutMs: -1 })).toThrow(TypeError);
    expect(() => addon.smfWaitState('z', NET, { states: [1 as never] })).toThrow(TypeError);
  });

  it('rejects with ENOLIB when libscf is absent, without crashing', async () => {
    const state = fresh();
    const empty = mkdtempSync(join(tmpdir(), 'no-illumos-'));
    cleanup.push(() => rmSync(empty, { recursive: true, force: true }));
    const r = await runChild(
      `const { createRequire } = await import('node:module');
       const a = createRequire(import.meta.url)(process.env.ADDON);
       const caps = a.load(process.env.LIBS);
       console.log(JSON.stringify({ loaded: caps.libraries.scf.loaded }));
       const calls = [() => a.smfState('z', 'svc:/a:default'), () => a.smfWaitState('z', 'svc:/a:default', { states: ['online'] }).promise];
       for (const call of calls) {
         try { await call(); console.log('resolved?!'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
       }`,
      { ADDON: ADDON_PATH, LIBS: empty, FAKE_ILLUMOS_STATE: state },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({ loaded: false });
    for (const l of lines.slice(1)) {
      expect(l).toMatchObject({ code: 'ENOLIB' });
      expect(String(l.message)).toContain('libscf.so.1');
    }
    expect(lines).toHaveLength(3);
  });

  it("a worker's environment going away leaves this one's waits pending", async () => {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    // The worker reads, waits and cancels a wait of its own, all settled before it ends.
    const worker = `const { parentPort } = require('node:worker_threads');
      const a = require(process.env.ADDON);
      a.load(process.env.LIBS);
      const done = a.smfWaitState('oxz_a', process.env.FMRI, { states: ['offline'] });
      const cancelled = a.smfWaitState('oxz_a', process.env.FMRI, { states: ['online'] });
      cancelled.cancel();
      Promise.all([a.smfState('oxz_a', process.env.FMRI), done.promise, cancelled.promise.catch((e) => e.code)])
        .then((r) => parentPort.postMessage(r.join(' ')));`;
    const r = await runChild(
      `const { createRequire } = await import('node:module');
       const { Worker } = await import('node:worker_threads');
       const { renameSync, writeFileSync } = await import('node:fs');
       const a = createRequire(import.meta.url)(process.env.ADDON);
       a.load(process.env.LIBS);
       const wait = a.smfWaitState('oxz_a', process.env.FMRI, { states: ['online'], timeoutMs: 5000 });
       const w = new Worker(${JSON.stringify(worker)}, { eval: true, execArgv: [] });
       w.on('message', (m) => console.log('worker ' + m));
       await new Promise((resolve, reject) => { w.on('error', reject); w.on('exit', resolve); });
       console.log('worker gone');
       writeFileSync(process.env.SMF_FILE + '.tmp', 'online');
       renameSync(process.env.SMF_FILE + '.tmp', process.env.SMF_FILE);
       console.log(await wait.promise.then((s) => 'resolved ' + s, (e) => 'rejected ' + e.code));`,
      { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: state, FMRI: NET, SMF_FILE: smfFile(state, 'oxz_a', NET) },
      15_000,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['worker offline offline ECANCELED', 'worker gone', 'resolved online']);
    expect(r.code).toBe(0);
  });

  /**
   * `body` in a child with the addon loaded (as `a`) and oxz_a's NET offline, whose
   * pthread_create fails on the main thread while SLED_TEST_FAIL_THREADS is set.
   */
  function withFailingThreads(body: string) {
    const state = fresh();
    setState(state, 'oxz_a', NET, 'offline');
    return runChild(
      `const { createRequire } = await import('node:module');
       const a = createRequire(import.meta.url)(process.env.ADDON);
       a.load(process.env.LIBS);
       ${body}`,
      { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: state, FMRI: NET, LD_PRELOAD: threadFailPreload(cleanup) },
      10_000,
    );
  }

  it('a wait whose thread cannot start rejects, without aborting the process or holding it open', async () => {
    const r = await withFailingThreads(
      `process.env.SLED_TEST_FAIL_THREADS = '1';
       const wait = a.smfWaitState('oxz_a', process.env.FMRI, { states: ['online'] });
       delete process.env.SLED_TEST_FAIL_THREADS;
       console.log('cancel ' + wait.cancel());
       console.log(await wait.promise.then((s) => 'resolved ' + s, (e) => 'rejected ' + e.code + ': ' + e.message));`);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      'cancel false',
      `rejected EINTERNAL: cannot start the wait for ${NET} in zone oxz_a: Resource temporarily unavailable`,
    ]);
    expect(r.code).toBe(0);
  });

  it('a cancel whose thread cannot start still cancels (from the JS thread)', async () => {
    // The wait has bound its handle by the time cancel() runs, so the unbind is handed to the
    // cancel thread, which the first cancel starts: that pthread_create fails.
    const r = await withFailingThreads(
      `const wait = a.smfWaitState('oxz_a', process.env.FMRI, { states: ['online'] });
       await new Promise((resolve) => setTimeout(resolve, 200));
       process.env.SLED_TEST_FAIL_THREADS = '1';
       const pending = wait.cancel();
       delete process.env.SLED_TEST_FAIL_THREADS;
       console.log('cancel ' + pending);
       console.log(await wait.promise.then((s) => 'resolved ' + s, (e) => 'rejected ' + e.code));`);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['cancel true', 'rejected ECANCELED']);
    expect(r.code).toBe(0);
  });
});

describe('getServiceState / waitForServiceState (typed layer)', () => {
  it('reads a state', async () => {
    const state = fresh();
    setState(state, 'global', SSH, 'online');
    await expect(getServiceState('global', SSH)).resolves.toBe('online');
  });

  it('waits for a state written later, and resolves at once if it is already there', async () => {
    const state = fresh();
    setState(state, 'oxz_t', NET, 'offline');
    const writer = setStatesLater(state, 'oxz_t', NET, ['online'], 100);
    await expect(waitForServiceState('oxz_t', NET, ['online', 'degraded'], { timeoutMs: 10_000 })).resolves.toBe('online');
    await writer;
    await expect(waitForServiceState('oxz_t', NET, ['online'], { timeoutMs: 10_000 })).resolves.toBe('online');
  });

  it('rejects with ETIMEDOUT at the exact deadline', async () => {
    const state = fresh();
    setState(state, 'oxz_t', NET, 'offline');
    const err = await waitForServiceState('oxz_t', NET, ['online'], { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(isNativeError(err, 'ETIMEDOUT')).toBe(true);
    expect((err as Error).message).toContain('150 ms');
  });

  it('honours an AbortSignal, before and during the wait', async () => {
    const state = fresh();
    setState(state, 'oxz_t', NET, 'offline');
    const ac = new AbortController();
    const waiting = waitForServiceState('oxz_t', NET, ['online'], { timeoutMs: 10_000, signal: ac.signal });
    await tick(30);
    ac.abort(new Error('shutting down'));
    const err = (await waiting.catch((e: unknown) => e)) as Error & { code?: string; cause?: unknown };
    expect(err.name).toBe('AbortError');
    expect(err.code).toBe('ABORT_ERR');
    expect((err.cause as Error).message).toBe('shutting down');
    await expect(waitForServiceState('oxz_t', NET, ['online'], { timeoutMs: 10_000, signal: ac.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
  });

  it('validates zone names, FMRIs and states before any library call', async () => {
    fresh();
    const bad = { code: 'ERR_INVALID_ARG_VALUE' };
    await expect(getServiceState('', NET)).rejects.toMatchObject(bad);
    await expect(getServiceState('a'.repeat(64), NET)).rejects.toMatchObject(bad);
    await expect(getServiceState('zone/../x', NET)).rejects.toMatchObject(bad);
    await expect(getServiceState('z', 'network/ssh')).rejects.toMatchObject(bad);
    await expect(getServiceState('z', 'svc:/network/ssh')).rejects.toMatchObject(bad);
    await expect(getServiceState('z', 'svc:/network/ssh:default/:properties/restarter')).rejects.toMatchObject(bad);
    await expect(waitForServiceState('z', NET, [], { timeoutMs: 10 })).rejects.toMatchObject(bad);
    await expect(waitForServiceState('z', NET, ['running' as never], { timeoutMs: 10 })).rejects.toMatchObject(bad);
    await expect(waitForServiceState('z', NET, ['online'], { timeoutMs: Number.NaN })).rejects.toMatchObject(bad);
  });

  it('passes the library error through (missing zone)', async () => {
    fresh();
    await expect(getServiceState('oxz_nowhere', NET)).rejects.toMatchObject({ code: 'SCF_ERROR_NOT_FOUND' });
    await expect(waitForServiceState('oxz_nowhere', NET, ['online'], { timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'SCF_ERROR_NOT_FOUND',
    });
  });
});
