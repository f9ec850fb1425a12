// Per-operation latency of the addon against the fake illumos, side by side with spawning
// /bin/true (the least any exec'd CLI such as dladm or zfs can cost): `npm run bench:native`.
// Target: addon calls at least 50 times faster than a spawn. The fakes do real file I/O under a
// lock, so these figures are the binding's cost plus a small, honest library stand-in.
import { execFile } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadNative } from '../src/illumos/addon.js';
import { createVnic, deleteVnic } from '../src/illumos/vnic.js';
import { createDataset, destroyDataset } from '../src/illumos/zfs.js';
import { Zones } from '../src/illumos/zones.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 300);
const SPAWNS = Number(process.env.BENCH_SPAWNS ?? 100);
const TARGET = 50;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
execFileSync('make', ['-s', '-C', join(root, 'test', 'fake-illumos')], { stdio: 'inherit' });
const state = mkdtempSync(join(tmpdir(), 'bench-native-'));
process.env.FAKE_ILLUMOS_STATE = state;
const addon = loadNative();
const report = addon.load(join(root, 'build', 'fake-illumos', 'lib'));
const missing = Object.entries(report.libraries).filter(([, l]) => !l.loaded).map(([k, l]) => `${k}: ${l.error ?? l.missing.join(', ')}`);
if (missing.length > 0) {
  process.stderr.write(`bench:native: libraries not usable: ${missing.join('; ')}\n`);
  process.exit(1);
}

interface Result { name: string; samples: number[] }

async function measure(name: string, n: number, op: (i: number) => Promise<unknown>): Promise<Result> {
  for (let i = 0; i < Math.min(10, n); i++) await op(-1 - i); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await op(i);
    samples.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  return { name, samples };
}

const pct = (s: number[], p: number) => [...s].sort((a, b) => a - b)[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
const mean = (s: number[]) => s.reduce((a, b) => a + b, 0) / s.length;

const zones = new Zones({ addon });
const run = promisify(execFile);
try {
  const results = [
    // The binding's own floor: a promise settled from the library's thread, no library work.
    await measure('addon round trip', ITERATIONS, () => addon.dladmAbi()),
    await measure('VNIC create + delete', ITERATIONS, async (i) => {
      const name = i < 0 ? `oxWarm${-i}` : `oxBench${i}`;
      await createVnic({ name, link: 'net0' });
      await deleteVnic(name);
    }),
    await measure('zone list', ITERATIONS, () => zones.listZones()),
    await measure('dataset create + destroy', ITERATIONS, async (i) => {
      const name = `rpool/bench${i < 0 ? `w${-i}` : i}`;
      await createDataset(name, {});
      await destroyDataset(name);
    }),
  ];
  const spawn = await measure('spawn /bin/true', SPAWNS, () => run('/bin/true', []));
  const spawnMean = mean(spawn.samples);

  const rows = [...results, spawn].map((r) => ({
    op: r.name,
    n: r.samples.length,
    mean: mean(r.samples),
    p50: pct(r.samples, 50),
    p99: pct(r.samples, 99),
  }));
  process.stdout.write(`bench:native  node ${process.version}, fake illumos in ${state}\n\n`);
  process.stdout.write(`${'operation'.padEnd(26)}${'n'.padStart(6)}${'mean µs'.padStart(11)}${'p50 µs'.padStart(10)}${'p99 µs'.padStart(10)}${'spawn / op'.padStart(12)}\n`);
  let worst = Infinity;
  for (const row of rows) {
    const ratio = spawnMean / row.mean;
    if (row.op !== 'spawn /bin/true' && row.op !== 'addon round trip') worst = Math.min(worst, ratio);
    process.stdout.write(`${row.op.padEnd(26)}${String(row.n).padStart(6)}${row.mean.toFixed(1).padStart(11)}${row.p50.toFixed(1).padStart(10)}${row.p99.toFixed(1).padStart(10)}${(row.op === 'spawn /bin/true' ? '1.0' : ratio.toFixed(1)).padStart(12)}\n`);
  }
  process.stdout.write(`\nslowest addon operation is ${worst.toFixed(1)}x faster than spawning /bin/true (target >= ${TARGET}x: ${worst >= TARGET ? 'met' : 'NOT met'})\n`);
} finally {
  rmSync(state, { recursive: true, force: true });
}
