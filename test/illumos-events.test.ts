// Zone-state events through the addon's libsysevent binding (native/events.cc) and the typed
// layer (src/illumos/events.ts), against the fake channel (test/fake-illumos/sysevent.c), which
// delivers the lines appended to $FAKE_ILLUMOS_STATE/zone-events.log from its own thread, woken
// by inotify.
//
// Most tests write the kernel's events into the log themselves, in the format
// fake_emit_zone_event uses; the last block drives the fake zoneadm (boot, halt) end to end,
// together with the SMF wait for the zone's network milestone.
// A C harness (compiled here against the fake libraries) checks the fake channel's own contract:
// EAGAIN redelivery, EDEADLK from the callback thread, unsubscribe waiting for an in-flight
// callback, subscriber id clashes, and zonecfg_notify_bind built on it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isNativeError, type NativeAddon } from '../src/illumos/addon.js';
import { waitForZoneState, ZoneEvents, type ZoneStateEvent } from '../src/illumos/events.js';
import type { NativeZoneEvent } from '../src/illumos/native-types/events.js';
import { getServiceState, waitForServiceState } from '../src/illumos/smf.js';
import { FAKE_BIN_DIR, FAKE_LIB_DIR, fakeIllumos, freshFakeHost } from './support/fake-illumos.js';
import { runChild } from './support/child.js';
import { threadFailPreload } from './support/thread-fail.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const ADDON_PATH = process.env.SLED_AGENT_ADDON || join(repo, 'build', 'Release', 'sled_agent_native.node');

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

let clock = 1_000_000n;
/** Appends one kernel zone status event, as fake_emit_zone_event does. */
function emit(state: string, zonename: string, zoneid: number, newstate: string, oldstate: string): void {
  clock += 1000n;
  appendFileSync(join(state, 'zone-events.log'), `${zonename} ${zoneid} ${newstate} ${oldstate} ${clock}\n`);
}

/** Collects events; `count(n)` resolves once n have arrived (event-driven, with a deadline). */
class Collector {
  readonly events: NativeZoneEvent[] = [];
  #waiters: Array<{ n: number; resolve: () => void }> = [];
  readonly push = (ev: NativeZoneEvent): void => {
    this.events.push(ev);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.events.length < w.n) return true;
      w.resolve();
      return false;
    });
  };
  count(n: number, timeoutMs = 5000): Promise<void> {
    if (this.events.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${this.events.length} of ${n} events within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function subscribe(c: Collector) {
  const sub = await addon.zoneEventsSubscribe(c.push);
  cleanup.push(() => sub.close());
  return sub;
}

/** Runs a Node ESM script in a child process; resolves with its exit code and output. */
describe('zone state events (native)', () => {
  it('delivers each state change with zonename, zoneid, states and a bigint hrtime', async () => {
    const state = fresh();
    const c = new Collector();
    await subscribe(c);
    emit(state, 'oxz_a', 7, 'initialized', 'uninitialized');
    emit(state, 'oxz_a', 7, 'ready', 'initialized');
    emit(state, 'oxz_a', 7, 'running', 'ready');
    await c.count(3);
    expect(c.events.map((e) => [e.zonename, e.zoneid, e.oldstate, e.newstate])).toEqual([
      ['oxz_a', 7, 'uninitialized', 'initialized'],
      ['oxz_a', 7, 'initialized', 'ready'],
      ['oxz_a', 7, 'ready', 'running'],
    ]);
    for (const e of c.events) expect(typeof e.when).toBe('bigint');
    expect(c.events[0]!.when < c.events[2]!.when).toBe(true);
  });

  it('delivers only events published after the subscription began', async () => {
    const state = fresh();
    emit(state, 'old', 1, 'running', 'ready');
    const c = new Collector();
    await subscribe(c);
    emit(state, 'new', 2, 'initialized', 'uninitialized');
    await c.count(1);
    await tick(50);
    expect(c.events.map((e) => e.zonename)).toEqual(['new']);
  });

  it("drops the kernel's repeated states (ready->ready, shutting_down->shutting_down), per zone", async () => {
    const state = fresh();
    const c = new Collector();
    await subscribe(c);
    emit(state, 'z1', 3, 'initialized', 'uninitialized');
    emit(state, 'z1', 3, 'ready', 'initialized');
    emit(state, 'z2', 4, 'initialized', 'uninitialized');
    emit(state, 'z1', 3, 'ready', 'ready');
    emit(state, 'z1', 3, 'running', 'ready');
    emit(state, 'z1', 3, 'shutting_down', 'running');
    emit(state, 'z1', 3, 'shutting_down', 'shutting_down');
    emit(state, 'z2', 4, 'ready', 'initialized');
    emit(state, 'z1', 3, 'shutting_down', 'shutting_down');
    emit(state, 'z1', 3, 'uninitialized', 'shutting_down');
    // The same newstate twice in a row for a zone is one transition too.
    emit(state, 'z2', 4, 'ready', 'ready');
    emit(state, 'z2', 4, 'running', 'ready');
    await c.count(8);
    await tick(50);
    const seen = (zone: string) => c.events.filter((e) => e.zonename === zone).map((e) => e.newstate);
    expect(seen('z1')).toEqual(['initialized', 'ready', 'running', 'shutting_down', 'uninitialized']);
    expect(seen('z2')).toEqual(['initialized', 'ready', 'running']);
    for (const e of c.events) expect(e.newstate).not.toBe(e.oldstate);
    // After the zone went away, the same state sequence for a new boot is delivered again.
    emit(state, 'z1', 9, 'initialized', 'uninitialized');
    await c.count(9);
    expect(c.events[8]).toMatchObject({ zonename: 'z1', zoneid: 9, newstate: 'initialized' });
  });

  it('does not block the event loop: the change that satisfies a waiter is made from the JS thread', async () => {
    const state = fresh();
    const c = new Collector();
    await subscribe(c);
    let ticks = 0;
    const interval = setInterval(() => ticks++, 1);
    cleanup.push(() => clearInterval(interval));
    await tick(30);
    expect(ticks).toBeGreaterThan(0);
    emit(state, 'zl', 1, 'initialized', 'uninitialized');
    await c.count(1);
    expect(c.events[0]!.zonename).toBe('zl');
  });

  it('close() while events are flowing: both close() calls resolve and nothing is delivered after', async () => {
    const state = fresh();
    const c = new Collector();
    const sub = await addon.zoneEventsSubscribe(c.push);
    // Another process appends events continuously until killed.
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs'); let i = 0;
         const f = ${JSON.stringify(join(state, 'zone-events.log'))};
         const sleep = new Int32Array(new SharedArrayBuffer(4));
         for (;;) { i++; fs.appendFileSync(f, 'zf' + i + ' ' + i + ' ready initialized ' + i + '\\n'); Atomics.wait(sleep, 0, 0, 1); }`,
      ],
      { stdio: 'ignore' },
    );
    cleanup.push(() => {
      writer.kill('SIGKILL');
    });
    await c.count(20);
    const first = sub.close();
    const atClose = c.events.length;
    const second = sub.close();
    await Promise.all([first, second]);
    await tick(100); // the writer keeps writing
    expect(c.events.length).toBe(atClose);
    await expect(sub.close()).resolves.toBeUndefined();
    // In order, none lost before the close: zf1, zf2, ...
    expect(c.events.map((e) => e.zoneid)).toEqual(c.events.map((_, i) => i + 1));
  });

  it('drops events already queued for JS when close() is called', async () => {
    const state = fresh();
    const got: NativeZoneEvent[] = [];
    let closed!: (p: Promise<void>) => void;
    const closing = new Promise<Promise<void>>((resolve) => (closed = resolve));
    const sub = await addon.zoneEventsSubscribe((ev) => {
      got.push(ev);
      if (got.length === 1) {
        // Hold the JS thread so the library's thread queues the rest, then close.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
        closed(sub.close());
      }
    });
    const lines = Array.from({ length: 50 }, (_, i) => `zq ${i + 1} ready initialized ${i + 1}\n`).join('');
    appendFileSync(join(state, 'zone-events.log'), lines);
    await (await closing);
    await tick(50);
    expect(got.map((e) => e.zoneid)).toEqual([1]);
  });

  it('many subscriptions each receive every event, and all close', async () => {
    const state = fresh();
    const collectors = Array.from({ length: 24 }, () => new Collector());
    const subs = await Promise.all(collectors.map((c) => addon.zoneEventsSubscribe(c.push)));
    emit(state, 'zm', 5, 'initialized', 'uninitialized');
    emit(state, 'zm', 5, 'ready', 'initialized');
    await Promise.all(collectors.map((c) => c.count(2)));
    for (const c of collectors) expect(c.events.map((e) => e.newstate)).toEqual(['initialized', 'ready']);
    await Promise.all(subs.map((s) => s.close()));
    emit(state, 'zm', 5, 'running', 'ready');
    await tick(50);
    for (const c of collectors) expect(c.events).toHaveLength(2);
  });

  it('keeps the process alive while subscribed, and lets it exit once unref()ed', async () => {
    const state = fresh();
    // Ref'd: nothing else keeps the child alive, so it only sees the event if the subscription does.
    const common = `const { createRequire } = await import('node:module');
      const a = createRequire(import.meta.url)(process.env.ADDON);
      a.load(process.env.LIBS);`;
    const env = { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: state };
    const refd = await runChild(
      `${common}
       const sub = await a.zoneEventsSubscribe(async (e) => { console.log('event ' + e.zonename); await sub.close(); console.log('closed'); });
       console.log('subscribed');`,
      env,
      10_000,
      (line) => {
        if (line === 'subscribed') emit(state, 'zchild', 3, 'running', 'ready');
      },
    );
    expect(refd.stderr).toBe('');
    expect(refd.stdout.split('\n').filter(Boolean)).toEqual(['subscribed', 'event zchild', 'closed']);
    expect(refd.code).toBe(0);
    // Unref'd: the process exits with the subscription open; teardown unsubscribes cleanly.
    const unrefd = await runChild(
      `${common}
       const sub = await a.zoneEventsSubscribe(() => {});
       sub.unref();
       console.log('subscribed');`,
      env,
    );
    expect(unrefd.stderr).toBe('');
    expect(unrefd.stdout.trim()).toBe('subscribed');
    expect(unrefd.code).toBe(0);
  });

  it('rejects a non-function callback with a TypeError', () => {
    fresh();
    expect(() => addon.zoneEventsSubscribe(42 as never)).toThrow(TypeError);
  });

  it('rejects with ENOLIB when libsysevent is absent, without crashing', async () => {
    const state = fresh();
    const empty = mkdtempSync(join(tmpdir(), 'no-illumos-'));
    cleanup.push(() => rmSync(empty, { recursive: true, force: true }));
    const r = await runChild(
      `const { createRequire } = await import('node:module');
       const a = createRequire(import.meta.url)(process.env.ADDON);
       const caps = a.load(process.env.LIBS);
       console.log(JSON.stringify({ loaded: caps.libraries.sysevent.loaded }));
       try { await a.zoneEventsSubscribe(() => {}); console.log('subscribed?!'); }
       catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`,
      { ADDON: ADDON_PATH, LIBS: empty, FAKE_ILLUMOS_STATE: state },
    );
    expect(r.code).toBe(0);
    const [caps, result] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(caps).toEqual({ loaded: false });
    expect(result).toMatchObject({ code: 'ENOLIB' });
    expect(String(result!.message)).toContain('libsysevent.so.1');
  });

  it("a worker's environment going away closes its own subscriptions and leaves this one's open", async () => {
    const state = fresh();
    // The worker subscribes too and ends with its subscription open (unref'd): its environment's
    // clean-up closes that one, and only that one.
    const worker = `const a = require(process.env.ADDON);
      a.load(process.env.LIBS);
      a.zoneEventsSubscribe(() => {}).then((s) => s.unref());`;
    const r = await runChild(
      `const { createRequire } = await import('node:module');
       const { Worker } = await import('node:worker_threads');
       const { appendFileSync } = await import('node:fs');
       const a = createRequire(import.meta.url)(process.env.ADDON);
       a.load(process.env.LIBS);
       let got;
       const event = new Promise((resolve) => (got = resolve));
       const sub = await a.zoneEventsSubscribe((e) => got('event ' + e.zonename));
       const w = new Worker(${JSON.stringify(worker)}, { eval: true, execArgv: [] });
       await new Promise((resolve, reject) => { w.on('error', reject); w.on('exit', resolve); });
       console.log('worker gone');
       appendFileSync(process.env.FAKE_ILLUMOS_STATE + '/zone-events.log', 'zmain 5 running ready 1\\n');
       const timer = setTimeout(() => got('no event'), 3000);
       console.log(await event);
       clearTimeout(timer);
       await sub.close();
       console.log('closed');`,
      { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: state },
      15_000,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['worker gone', 'event zmain', 'closed']);
    expect(r.code).toBe(0);
  });

  it('a subscribe whose thread cannot start rejects, and leaves nothing holding the process open', async () => {
    const state = fresh();
    // The sysevent thread starts with the first call: that pthread_create fails.
    const r = await runChild(
      `const { createRequire } = await import('node:module');
       const a = createRequire(import.meta.url)(process.env.ADDON);
       a.load(process.env.LIBS);
       process.env.SLED_TEST_FAIL_THREADS = '1';
       const failing = a.zoneEventsSubscribe(() => {});
       delete process.env.SLED_TEST_FAIL_THREADS;
       console.log(await failing.then(() => 'subscribed', (e) => 'rejected ' + e.code));
       const sub = await a.zoneEventsSubscribe(() => {});
       await sub.close();
       console.log('closed');`,
      { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, FAKE_ILLUMOS_STATE: state, LD_PRELOAD: threadFailPreload(cleanup) },
      10_000,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['rejected EINTERNAL', 'closed']);
    expect(r.code).toBe(0);
  });
});

describe('ZoneEvents and waitForZoneState (typed layer)', () => {
  it('emits typed events, keeps the ones before the first listener, closes idempotently', async () => {
    const state = fresh();
    const events = await ZoneEvents.open();
    cleanup.push(() => events.close());
    emit(state, 'zt', 2, 'initialized', 'uninitialized');
    await tick(100); // delivered before anyone listens: kept
    const seen: ZoneStateEvent[] = [];
    const two = new Promise<void>((resolve) => {
      events.on('event', (ev) => {
        seen.push(ev);
        if (seen.length === 2) resolve();
      });
    });
    emit(state, 'zt', 2, 'ready', 'initialized');
    await two;
    expect(seen.map((e) => e.newstate)).toEqual(['initialized', 'ready']);
    let closes = 0;
    events.on('close', () => closes++);
    await Promise.all([events.close(), events.close()]);
    expect(events.closed).toBe(true);
    expect(closes).toBe(1);
  });

  it('waitForZoneState resolves on the event for that zone and state', async () => {
    const state = fresh();
    const events = await ZoneEvents.open();
    cleanup.push(() => events.close());
    const waiting = waitForZoneState('oxz_w', 'running', { timeoutMs: 5000, events });
    emit(state, 'oxz_other', 1, 'running', 'ready');
    emit(state, 'oxz_w', 2, 'ready', 'initialized');
    emit(state, 'oxz_w', 2, 'running', 'ready');
    const ev = await waiting;
    expect(ev).toMatchObject({ zonename: 'oxz_w', zoneid: 2, oldstate: 'ready', newstate: 'running' });
  });

  it('waitForZoneState with its own subscription', async () => {
    const state = fresh();
    const waiting = waitForZoneState('oxz_own', 'shutting_down', { timeoutMs: 5000 });
    // Subscriptions are made in order on the addon's one sysevent thread: once a later one is
    // in place, the wait's own is too.
    const later = await ZoneEvents.open();
    await later.close();
    emit(state, 'oxz_own', 4, 'shutting_down', 'running');
    await expect(waiting).resolves.toMatchObject({ zonename: 'oxz_own', newstate: 'shutting_down' });
  });

  it('waitForZoneState rejects with ETIMEDOUT at the deadline', async () => {
    fresh();
    const events = await ZoneEvents.open();
    cleanup.push(() => events.close());
    const err = await waitForZoneState('oxz_never', 'running', { timeoutMs: 100, events }).catch((e: unknown) => e);
    expect(isNativeError(err, 'ETIMEDOUT')).toBe(true);
  });

  it('waitForZoneState honours an AbortSignal, and closing the subscription', async () => {
    fresh();
    const events = await ZoneEvents.open();
    cleanup.push(() => events.close());
    const ac = new AbortController();
    const waiting = waitForZoneState('oxz_abort', 'running', { timeoutMs: 5000, signal: ac.signal, events });
    ac.abort(new Error('stop'));
    const err = (await waiting.catch((e: unknown) => e)) as Error & { code?: string };
    expect(err.name).toBe('AbortError');
    expect(err.code).toBe('ABORT_ERR');
    const pending = waitForZoneState('oxz_closed', 'running', { timeoutMs: 5000, events });
    await events.close();
    expect(isNativeError(await pending.catch((e: unknown) => e), 'ECLOSED')).toBe(true);
  });

  it('validates the zone name and state', async () => {
    fresh();
    await expect(waitForZoneState('-bad', 'running', { timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(waitForZoneState('ok', 'booted' as never, { timeoutMs: 10 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });
});

// The fake channel's own contract, exercised in C (as a library caller on illumos would).
const HARNESS = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
typedef void *sysevent_t; typedef void evchan_t; typedef struct nvlist nvlist_t;
int sysevent_evc_bind(const char *, evchan_t **, uint32_t);
int sysevent_evc_unbind(evchan_t *);
int sysevent_evc_xsubscribe(evchan_t *, const char *, const char *, int (*)(sysevent_t *, void *), void *, uint32_t, void *);
int sysevent_evc_unsubscribe(evchan_t *, const char *);
int sysevent_get_attr_list(sysevent_t *, nvlist_t **);
int nvlist_lookup_string(nvlist_t *, const char *, char **);
void nvlist_free(nvlist_t *);
int fake_emit_zone_event(const char *, int32_t, const char *, const char *);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int deliveries, in_cb, eagain_left, saw_edeadlk_unsub, saw_edeadlk_unbind;
static char names[64][64];
static evchan_t *g_ch;
static int failures;
#define CHECK(cond, what) do { if (cond) printf("PASS %s\n", what); else { printf("FAIL %s\n", what); failures++; } } while (0)

static int wait_for(int *var, int value) {
  struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts); ts.tv_sec += 5;
  pthread_mutex_lock(&mu);
  while (*var < value) if (pthread_cond_timedwait(&cv, &mu, &ts) != 0) break;
  int ok = *var >= value; pthread_mutex_unlock(&mu); return ok;
}

static int handler(sysevent_t *ev, void *cookie) {
  (void)cookie;
  nvlist_t *nvl = NULL; char *zn = "?";
  if (sysevent_get_attr_list(ev, &nvl) == 0) { nvlist_lookup_string(nvl, "zonename", &zn); }
  char name[64]; snprintf(name, sizeof(name), "%s", zn);
  if (nvl) nvlist_free(nvl);
  if (strcmp(name, "again") == 0 && eagain_left > 0) { pthread_mutex_lock(&mu); eagain_left--; snprintf(names[deliveries++], 64, "%s", name); pthread_mutex_unlock(&mu); return EAGAIN; }
  if (strcmp(name, "deadlock") == 0) {
    saw_edeadlk_unsub = sysevent_evc_unsubscribe(g_ch, "harness1") == EDEADLK;
    saw_edeadlk_unbind = sysevent_evc_unbind(g_ch) == EDEADLK;
  }
  if (strcmp(name, "slow") == 0) {
    pthread_mutex_lock(&mu); in_cb = 1; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
    usleep(300 * 1000);
    pthread_mutex_lock(&mu); in_cb = 0; pthread_mutex_unlock(&mu);
  }
  pthread_mutex_lock(&mu);
  if (deliveries < 64) snprintf(names[deliveries++], 64, "%s", name);
  pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
  return 0;
}

typedef int (*notify_cb)(const char *, int32_t, const char *, const char *, int64_t, void *);
static int notified;
static char notified_state[32];
static int on_notify(const char *zn, int32_t zid, const char *ns, const char *os, int64_t when, void *p) {
  (void)zid; (void)os; (void)when; (void)p;
  if (strcmp(zn, "notified") != 0) return 0;
  pthread_mutex_lock(&mu); snprintf(notified_state, sizeof(notified_state), "%s", ns); notified++;
  pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
  return 0;
}

int main(int argc, char **argv) {
  (void)argc;
  fake_emit_zone_event("before", 1, "running", "ready");
  CHECK(sysevent_evc_bind("com.sun:zones:status", &g_ch, 0) == 0, "bind");
  evchan_t *nochan; CHECK(sysevent_evc_bind("com.example:none", &nochan, 0) == ENOENT, "bind unknown channel ENOENT");
  CHECK(sysevent_evc_xsubscribe(g_ch, "harness1", "status", handler, NULL, 0, NULL) == 0, "xsubscribe");
  CHECK(sysevent_evc_xsubscribe(g_ch, "harness1", "status", handler, NULL, 0, NULL) == EEXIST, "subid clash EEXIST");
  CHECK(sysevent_evc_xsubscribe(g_ch, "0123456789abcdef", "status", handler, NULL, 0, NULL) == EINVAL, "subid too long EINVAL");

  eagain_left = 1;
  fake_emit_zone_event("again", 2, "ready", "initialized");
  fake_emit_zone_event("after", 3, "ready", "initialized");
  CHECK(wait_for(&deliveries, 3), "three deliveries");
  CHECK(strcmp(names[0], "again") == 0 && strcmp(names[1], "again") == 0 && strcmp(names[2], "after") == 0,
        "EAGAIN redelivers the same event before the next (and nothing from before the subscription)");

  fake_emit_zone_event("deadlock", 4, "ready", "initialized");
  CHECK(wait_for(&deliveries, 4), "deadlock event delivered");
  CHECK(saw_edeadlk_unsub, "unsubscribe from the callback thread fails with EDEADLK");
  CHECK(saw_edeadlk_unbind, "unbind from the callback thread fails with EDEADLK");

  fake_emit_zone_event("slow", 5, "ready", "initialized");
  CHECK(wait_for(&in_cb, 1), "slow callback entered");
  CHECK(sysevent_evc_unsubscribe(g_ch, "harness1") == 0, "unsubscribe during a callback");
  pthread_mutex_lock(&mu); int still = in_cb; pthread_mutex_unlock(&mu);
  CHECK(still == 0, "unsubscribe returned only after the in-flight callback finished");
  int before = deliveries;
  fake_emit_zone_event("gone", 6, "ready", "initialized");
  usleep(100 * 1000);
  CHECK(deliveries == before, "nothing delivered after unsubscribe");
  CHECK(sysevent_evc_unsubscribe(g_ch, "harness1") == EINVAL, "unsubscribe unknown id EINVAL");
  CHECK(sysevent_evc_unbind(g_ch) == 0, "unbind");

  void *zc = dlopen(argv[1], RTLD_NOW);
  void *(*nbind)(notify_cb, void *) = zc ? (void *(*)(notify_cb, void *))dlsym(zc, "zonecfg_notify_bind") : NULL;
  void (*nunbind)(void *) = zc ? (void (*)(void *))dlsym(zc, "zonecfg_notify_unbind") : NULL;
  CHECK(nbind != NULL && nunbind != NULL, "zonecfg_notify_bind/unbind exported by libzonecfg");
  if (nbind && nunbind) {
    void *h = nbind(on_notify, NULL);
    CHECK(h != NULL, "zonecfg_notify_bind");
    fake_emit_zone_event("notified", 8, "running", "ready");
    CHECK(wait_for(&notified, 1) && strcmp(notified_state, "running") == 0, "zonecfg_notify callback gets the event");
    if (h) nunbind(h);
  }
  printf("DONE %d\n", failures);
  return failures == 0 ? 0 : 1;
}
`;

describe('the fake event channel (C harness)', () => {
  it('honours EAGAIN, EDEADLK, in-flight callbacks on unsubscribe, subid clashes; zonecfg_notify_bind works on it', () => {
    const state = fresh();
    const dir = mkdtempSync(join(tmpdir(), 'gpec-harness-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'harness.c'), HARNESS);
    const asan = process.env.SLED_AGENT_ASAN === '1' ? ['-fsanitize=address,undefined'] : [];
    execFileSync('cc', [
      '-std=c11', '-pthread', ...asan, '-o', join(dir, 'harness'), join(dir, 'harness.c'),
      join(FAKE_LIB_DIR, 'libsysevent.so.1'), join(FAKE_LIB_DIR, 'libnvpair.so.1'), `-Wl,-rpath,${FAKE_LIB_DIR}`, '-ldl',
    ]);
    const out = execFileSync(join(dir, 'harness'), [join(FAKE_LIB_DIR, 'libzonecfg.so.1')], {
      env: { ...process.env, FAKE_ILLUMOS_STATE: state },
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(out.split('\n').filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(out).toContain('DONE 0');
    expect(out.split('\n').filter((l) => l.startsWith('PASS')).length).toBe(19);
  });
});

describe('boot and halt with the fake zoneadm', () => {
  const run = promisify(execFile);
  const zoneadm = (state: string, ...args: string[]) =>
    run(join(FAKE_BIN_DIR, 'zoneadm'), args, { env: { ...process.env, FAKE_ILLUMOS_STATE: state } });
  const NET = 'svc:/milestone/network:default';

  it('raises boot and halt events (repeats dropped), and the network milestone can be awaited', async () => {
    const state = fresh();
    const name = 'oxz_e2e';
    await addon.zoneConfigure({ name, brand: 'omicron1', zonepath: `/zones/${name}` });
    await zoneadm(state, '-z', name, 'install');
    const events = await ZoneEvents.open();
    cleanup.push(() => events.close());
    const seen: ZoneStateEvent[] = [];
    events.on('event', (ev) => seen.push(ev));

    const running = waitForZoneState(name, 'running', { timeoutMs: 10_000, events });
    await zoneadm(state, '-z', name, 'boot');
    const ev = await running;
    // The network milestone comes online shortly after boot (from a detached process).
    await expect(waitForServiceState(name, NET, ['online'], { timeoutMs: 10_000 })).resolves.toBe('online');
    await expect(getServiceState(name, NET)).resolves.toBe('online');

    const gone = waitForZoneState(name, 'uninitialized', { timeoutMs: 10_000, events });
    await zoneadm(state, '-z', name, 'halt');
    await gone;
    expect(seen.map((e) => `${e.oldstate}->${e.newstate}`)).toEqual([
      'uninitialized->initialized',
      'initialized->ready',
      'ready->running',
      'running->shutting_down',
      'shutting_down->uninitialized',
    ]);
    expect(seen.every((e) => e.zonename === name && e.zoneid === ev.zoneid)).toBe(true);
    // Halted but still configured: its repository is gone (libscf: no server).
    await expect(getServiceState(name, NET)).rejects.toMatchObject({ code: 'SCF_ERROR_NO_SERVER' });
  });

  it('a wait for the network milestone fails with SCF_ERROR_DELETED if the zone is halted first', async () => {
    const state = fresh();
    const name = 'oxz_e2e_halt';
    await addon.zoneConfigure({ name, brand: 'omicron1', zonepath: `/zones/${name}` });
    await zoneadm(state, '-z', name, 'install');
    await run(join(FAKE_BIN_DIR, 'zoneadm'), ['-z', name, 'boot'], {
      env: { ...process.env, FAKE_ILLUMOS_STATE: state, FAKE_ILLUMOS_NETWORK_DELAY_MS: '60000' },
    });
    await expect(getServiceState(name, NET)).resolves.toBe('offline');
    const waiting = waitForServiceState(name, NET, ['online'], { timeoutMs: 10_000 }).catch((e: unknown) => e);
    await tick(50);
    await zoneadm(state, '-z', name, 'halt');
    expect(await waiting).toMatchObject({ code: 'SCF_ERROR_DELETED' });
  });
});
