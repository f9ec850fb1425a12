// Multi-environment stress of the addon's Schedule (run by test/native.test.ts): main + workers
// calling concurrently, workers ending normally, by process.exit() inside, and by terminate()
// with calls in flight. Plain JS: tsx's loader does not reach worker threads on Node 20.
// Env: ADDON (the .node file), LIB (library directory), ROUNDS, MODES, FAKE_ILLUMOS_STATE.
import { Worker, isMainThread, workerData, parentPort, threadId } from 'node:worker_threads';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const addon = require(process.env.ADDON);
addon.load(process.env.LIB);

async function burst(tag, n) {
  const ps = [];
  for (let i = 0; i < n; i++) {
    ps.push(addon.dladmAbi().then((r) => { if (r.vnicCreateArgs !== 15 && r.vnicCreateArgs !== 14) throw new Error('bad abi'); }));
    ps.push(addon.zoneList().then((z) => { if (!Array.isArray(z)) throw new Error('bad zones'); }));
    ps.push(addon.linkLookup(`nx${tag}x${i}`).then(() => { throw new Error('should reject'); }, (e) => { if (e.code !== 'DLADM_STATUS_NOTFOUND') throw e; }));
    ps.push(addon.poolList());
    const name = `v${tag}x${i}`.slice(0, 30);
    ps.push(addon.vnicCreate({ name, link: 'net0' }).then(() => addon.vnicDelete(name)));
  }
  await Promise.all(ps);
}

if (!isMainThread) {
  const { mode, tag } = workerData;
  if (mode === 'complete') {
    await burst(tag, 30);
    parentPort.postMessage('done');
    // and then just end: an unref'd channel must not keep the worker alive
  } else if (mode === 'exit') {
    burst(tag, 200).catch(() => {});
    setTimeout(() => process.exit(0), Math.random() * 5);
  } else if (mode === 'terminate') {
    burst(tag, 200).catch(() => {});
    parentPort.postMessage('started');
  } else if (mode === 'fire') {
    // calls in flight and nothing else: the worker must stay alive until they settle
    let settled = 0;
    const n = 300;
    for (let i = 0; i < n; i++) addon.zoneList().then(() => { if (++settled === n) parentPort.postMessage('all-settled'); });
  }
} else {
  const rounds = Number(process.env.ROUNDS ?? 20);
  const t0 = Date.now();
  let workersDone = 0, allSettled = 0;
  for (let r = 0; r < rounds; r++) {
    const ws = [];
    const modes = (process.env.MODES ?? 'complete,exit,terminate,fire,terminate,complete').split(',');
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[k];
      const w = new Worker(new URL(import.meta.url), { workerData: { mode, tag: `${r}w${k}` }, execArgv: [] });
      const exited = new Promise((resolve, reject) => {
        w.on('error', reject);
        w.on('exit', resolve);
        w.on('message', (m) => {
          if (m === 'done') workersDone++;
          if (m === 'all-settled') allSettled++;
          if (m === 'started') setTimeout(() => w.terminate(), Math.random() * 8);
        });
      });
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`worker ${mode} ${r}/${k} did not exit`)), 30000).unref());
      ws.push(Promise.race([exited, timeout]));
    }
    await Promise.all([burst(`m${r}`, 40), ...ws]);
  }
  await burst('final', 50);
  const want = (m) => (process.env.MODES ?? 'complete,exit,terminate,fire,terminate,complete').split(',').filter((x) => x === m).length * rounds;
  if (workersDone !== want('complete')) throw new Error(`complete workers: ${workersDone}`);
  if (allSettled !== want('fire')) throw new Error(`fire workers settled: ${allSettled}`);
  console.log(`multienv ok: ${rounds} rounds, ${rounds} x [${process.env.MODES ?? 'all modes'}] workers, ${Date.now() - t0} ms`);
}
