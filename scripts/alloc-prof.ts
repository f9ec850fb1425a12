// bench:scale --alloc-prof DIR: what the agent allocates over one wave, garbage included. node's
// own --heap-prof keeps only the objects still alive when it stops, which for a wave of starts is
// ~17 KB per instance of the ~200 KB each allocates; what costs a fresh agent its collections is
// the rest. So a preload in the agent starts V8's sampling heap profiler on SIGUSR2 with
// collected objects included, and writes the profile on the next SIGUSR2. The benchmark sends
// the first just before its PUTs and the second once all are running. The files are
// .heapprofile (Chrome DevTools: Memory, "Allocation sampling"). Each is summarized here by the
// innermost frame of the agent's own code on each sample's stack.
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { watch } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** CommonJS, on the agent's argv with --require: it needs nothing but Node. */
export function allocProfPreload(dir: string): string {
  return `
const inspector = require('node:inspector');
const { renameSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const dir = ${JSON.stringify(dir)};
const session = new inspector.Session();
session.connect();
let sampling = false;
process.on('SIGUSR2', () => {
  if (!sampling) {
    session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }, (err) => {
      if (err) return void process.stderr.write('alloc-prof: cannot start the sampling heap profiler: ' + err.message + '\\n');
      sampling = true;
      writeFileSync(join(dir, '.sampling-' + process.pid), '');
    });
    return;
  }
  session.post('HeapProfiler.getSamplingProfile', (err, res) => {
    session.post('HeapProfiler.stopSampling');
    sampling = false;
    const tmp = join(dir, '.profile-' + process.pid + '.tmp');
    writeFileSync(tmp, JSON.stringify(err ? { error: err.message } : res.profile));
    renameSync(tmp, join(dir, '.profile-' + process.pid));
  });
});
`;
}

/** How long the agent is given to start or write a profile; a busy machine may be slow. */
const WAIT_MS = 60_000;

/** The profiled process: its pid, and a promise that settles when it exits. */
export interface Profiled {
  pid: number;
  exited: Promise<unknown>;
}

/**
 * Signals `target` and waits for the preload's answer, `path` (made whole by a create or a
 * rename), watching its directory rather than polling; fails at once if the process exits
 * (without the preload, SIGUSR2's default action ends it), and after WAIT_MS.
 */
async function signalAndWait(target: Profiled, path: string, what: string): Promise<void> {
  rmSync(path, { force: true });
  const stop = new AbortController();
  const name = basename(path);
  const appeared = (async () => {
    for await (const event of watch(dirname(path), { signal: stop.signal })) if (event.filename === name && existsSync(path)) return;
  })();
  // Settles after the abort below whichever way the wait ended: nobody needs its error.
  appeared.catch(() => {});
  try {
    process.kill(target.pid, 'SIGUSR2');
    await Promise.race([
      appeared,
      target.exited.then(() => {
        throw new Error(`--alloc-prof: process ${target.pid} exited (was it started with the preload?): ${what}`);
      }),
      delay(WAIT_MS, undefined, { signal: stop.signal }).then(() => {
        throw new Error(`--alloc-prof: ${what} within ${WAIT_MS / 1000} s (no ${path})`);
      }),
    ]);
  } finally {
    stop.abort();
  }
}

/** Asks the agent (started with the preload) to start sampling, and waits until it has. */
export async function startAllocSampling(target: Profiled, dir: string): Promise<void> {
  const marker = join(dir, `.sampling-${target.pid}`);
  await signalAndWait(target, marker, 'the agent did not start sampling');
  rmSync(marker, { force: true });
}

export interface AllocSummary {
  file: string;
  /** Sampled bytes allocated in the window per instance started, KiB. */
  kibPerInstance: number;
  /** The agent's own functions (innermost on each sample's stack), and what had none of them on its stack. */
  top: Array<{ frame: string; kibPerInstance: number }>;
}

/** Asks the agent to write the profile, copies it to `file`, and summarizes it per instance. */
export async function stopAllocSampling(target: Profiled, dir: string, file: string, instances: number): Promise<AllocSummary> {
  const written = join(dir, `.profile-${target.pid}`);
  await signalAndWait(target, written, 'the agent did not write its profile');
  // Not a rename: `file` may be on another filesystem than the run directory.
  copyFileSync(written, file);
  rmSync(written, { force: true });
  return summarize(file, instances);
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

/** The agent's own code: its compiled dist/ or its src/, not a dependency's. */
const AGENT_URL = /\/(dist|src)\//;

export function summarize(file: string, instances: number, count = 12): AllocSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { head?: ProfileNode; error?: string };
  if (profile.head === undefined) throw new Error(`--alloc-prof: the agent could not take the profile: ${profile.error ?? 'no samples'}`);
  const byFrame = new Map<string, number>();
  let total = 0;
  // Iterative: a deep async stack would overflow a recursive walk.
  const stack: Array<{ node: ProfileNode; agent: string | null }> = [{ node: profile.head, agent: null }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { node } = next;
    const { functionName, url, lineNumber } = node.callFrame;
    const agent = AGENT_URL.test(url) && !url.includes('/node_modules/')
      ? `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist|src)\//, '$1/')}:${lineNumber + 1}`
      : next.agent;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const key = agent ?? '(no agent frame: node, libraries)';
      byFrame.set(key, (byFrame.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children) stack.push({ node: child, agent });
  }
  const kib = (bytes: number) => bytes / 1024 / instances;
  return {
    file,
    kibPerInstance: kib(total),
    top: [...byFrame].sort((a, b) => b[1] - a[1]).slice(0, count).map(([frame, bytes]) => ({ frame, kibPerInstance: kib(bytes) })),
  };
}
