// The addon builds on install and loads; without the illumos libraries it says what is missing
// instead of failing, and with the fakes every library and symbol resolves.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/illumos/addon.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChild } from './support/child.js';
import { threadFailPreload } from './support/thread-fail.js';
import { FAKE_LIB_DIR, freshFakeHost } from './support/fake-illumos.js';

const LIBRARIES = ['dladm', 'nvpair', 'scf', 'sysevent', 'zfs', 'zonecfg'];
const ADDON_PATH = process.env.SLED_AGENT_ADDON || join(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'Release', 'sled_agent_native.node');

describe('native addon', () => {
  it('survives Node environments coming and going with calls in flight (workers ending, exiting, terminated)', async () => {
    const fake = freshFakeHost();
    try {
      const root = join(dirname(fileURLToPath(import.meta.url)), '..');
      // Under the sanitizers a worker torn down with calls in flight (terminate(), and exit()
      // when its random delay ends before the calls do) leaves Node's own promise holders behind,
      // which the report check cannot tell from ours: that build runs the modes that end cleanly.
      const modes = process.env.SLED_AGENT_ASAN === '1' ? 'complete,fire,complete' : 'complete,exit,terminate,fire,terminate,complete';
      const res = await runChild(`await import(${JSON.stringify(join(root, 'test', 'support', 'multienv-stress.mjs'))});`, {
        ADDON: process.env.SLED_AGENT_ADDON || join(root, 'build', 'Release', 'sled_agent_native.node'),
        LIB: FAKE_LIB_DIR,
        ROUNDS: '4',
        MODES: modes,
        FAKE_ILLUMOS_STATE: fake.state,
      }, 60_000);
      expect(res.stderr).not.toMatch(/terminate called|Abort|Segmentation/);
      expect(res.signal).toBeNull();
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/multienv ok: 4 rounds/);
    } finally {
      fake.remove();
    }
  }, 90_000);

  it('reports what it was built for', () => {
    const addon = loadNative();
    expect(addon.platform).toBe(process.platform === 'sunos' ? 'illumos' : 'other');
    expect(addon.napiVersion).toBe(8);
  });

  it('loads from a directory without the libraries, saying per library what failed', () => {
    // A child process: a library that failed to load stays retryable, but this test wants a clean slate.
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', `
      import('./src/illumos/addon.ts').then(async ({ loadNative }) => {
        const a = loadNative();
        const report = a.load('/nonexistent-illumos');
        const call = await a.vnicList().then(() => 'resolved', (e) => e.code + ': ' + e.message);
        process.stdout.write(JSON.stringify({ report, call }));
      });`], { encoding: 'utf8', env: { ...process.env, SLED_AGENT_ADDON: process.env.SLED_AGENT_ADDON ?? '' } });
    const { report, call } = JSON.parse(out);
    expect(Object.keys(report.libraries).sort()).toEqual(LIBRARIES);
    for (const lib of Object.values<any>(report.libraries)) {
      expect(lib.loaded).toBe(false);
      expect(lib.path).toBe(`/nonexistent-illumos/${lib.soname}`);
      expect(lib.error).toMatch(/No such file or directory/);
    }
    expect(call).toMatch(/^ENOLIB: libdladm\.so\.1 is not usable: .*No such file or directory/);
  });

  it('loads every library and symbol from the fake illumos', () => {
    const report = loadNative().load(FAKE_LIB_DIR);
    expect(report.dir).toBe(FAKE_LIB_DIR);
    for (const key of LIBRARIES) {
      expect(report.libraries[key], key).toMatchObject({ loaded: true, error: null, missing: [] });
    }
    expect(loadNative().capabilities()).toEqual(report);
  });

  it("capabilities() during another environment's load() sees that load whole, never half done", async () => {
    const fake = freshFakeHost();
    const dir = mkdtempSync(join(tmpdir(), 'slow-illumos-'));
    try {
      // The fake libraries, but libscf.so.1 a stand-in whose constructor holds dlopen (marking
      // that it has begun) until told to go on, or 2 s have passed.
      writeFileSync(join(dir, 'hold.c'), String.raw`
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        __attribute__((constructor)) static void hold(void) {
          char path[4096];
          snprintf(path, sizeof path, "%s/entered", getenv("SLOW_DIR"));
          FILE *f = fopen(path, "w");
          if (f) fclose(f);
          snprintf(path, sizeof path, "%s/release", getenv("SLOW_DIR"));
          for (int i = 0; i < 200 && access(path, F_OK) != 0; i++) usleep(10000);
        }`);
      const lib = join(dir, 'lib');
      mkdirSync(lib);
      for (const soname of ['libzonecfg.so.1', 'libdladm.so.1', 'libnvpair.so.1', 'libzfs.so.1', 'libsysevent.so.1']) {
        symlinkSync(join(FAKE_LIB_DIR, soname), join(lib, soname));
      }
      execFileSync('cc', ['-shared', '-fPIC', '-o', join(lib, 'libscf.so.1'), join(dir, 'hold.c')]);
      // Nothing loads from /nonexistent-illumos, so every library is tried again by the worker's load().
      const worker = `require(process.env.ADDON).load(process.env.LIBS);`;
      const res = await runChild(
        `const { createRequire } = await import('node:module');
         const { Worker } = await import('node:worker_threads');
         const { existsSync, writeFileSync } = await import('node:fs');
         const a = createRequire(import.meta.url)(process.env.ADDON);
         a.load('/nonexistent-illumos');
         const w = new Worker(${JSON.stringify(worker)}, { eval: true, execArgv: [] });
         const exited = new Promise((resolve, reject) => { w.on('error', reject); w.on('exit', resolve); });
         while (!existsSync(process.env.SLOW_DIR + '/entered')) await new Promise((r) => setTimeout(r, 5));
         const caps = a.capabilities();
         writeFileSync(process.env.SLOW_DIR + '/release', '');
         await exited;
         console.log(JSON.stringify(caps));`,
        { ADDON: ADDON_PATH, LIBS: lib, SLOW_DIR: dir, FAKE_ILLUMOS_STATE: fake.state },
        20_000,
      );
      expect(res.stderr).toBe('');
      expect(res.code).toBe(0);
      const caps = JSON.parse(res.stdout);
      expect(caps.dir).toBe(lib);
      for (const key of LIBRARIES) {
        const status = caps.libraries[key];
        expect(status.path, key).toBe(join(lib, status.soname));
        expect(status.error, key).toBeNull();
        expect(status.loaded, key).toBe(key !== 'scf');
      }
      expect(caps.libraries.scf.missing).toContain('_scf_pg_wait');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      fake.remove();
    }
  }, 30_000);

  it('exits cleanly when a library\'s thread cannot start to close its handle at teardown', async () => {
    const cleanup: Array<() => void> = [];
    try {
      // No call was made, so no library thread runs: the cleanup hooks' close must start one,
      // and pthread_create fails by then.
      const res = await runChild(
        `const { createRequire } = await import('node:module');
         const a = createRequire(import.meta.url)(process.env.ADDON);
         a.load(process.env.LIBS);
         process.env.SLED_TEST_FAIL_THREADS = '1';
         console.log('loaded');`,
        { ADDON: ADDON_PATH, LIBS: FAKE_LIB_DIR, LD_PRELOAD: threadFailPreload(cleanup) },
        15_000,
      );
      expect(res.stderr).toBe('');
      expect(res.stdout).toBe('loaded\n');
      expect(res.code).toBe(0);
    } finally {
      for (const c of cleanup) c();
    }
  }, 30_000);
});
