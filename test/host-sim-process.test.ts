// The simulated host in a process of its own (src/sim/host-process.ts, `[host] simulation =
// "process"`) through the shared Host suite: every call, error, event and wait crosses the IPC
// channel to a SimHost in a child process. One child for the file, a fresh host and state
// directory in it per test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryInUseError, lockDirectory } from '../src/common/dir-lock.js';
import { RemoteSimHost, SimHostProcess } from '../src/sim/host-process.js';
import { hostSuite, simHostFixture } from './support/host-suite.js';

let proc: SimHostProcess;
beforeAll(async () => {
  proc = await SimHostProcess.start(pino({ level: 'silent' }));
});
afterAll(async () => {
  await proc?.end();
});

hostSuite('sim in its own process', simHostFixture('host-sim-process-', (stateDir, links) => proc.open({ stateDir, links, logLevel: 'silent' })));

describe('RemoteSimHost', () => {
  it('tells its owner when the process dies under it, and every call after fails with ECANCELED', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'host-sim-process-'));
    // Told when the child's exit is seen, which may come after the wait below has failed: its
    // message is still queued when the kill lands (sent on the next turn), and fails as soon as
    // its write does.
    let told!: (why: string) => void;
    const lost = new Promise<string>((resolve) => { told = resolve; });
    const host = await RemoteSimHost.start({ stateDir, links: ['stub0'], logLevel: 'silent' }, pino({ level: 'silent' }), { onLost: (why) => told(why) });
    try {
      await host.links.createVnic({ name: 'oxControlTest0', link: 'stub0' });
      const wait = host.events.waitForZoneRunning('oxz_never', { timeoutMs: 60_000 });
      process.kill(host.pid!, 'SIGKILL');
      await expect(wait).rejects.toMatchObject({ code: 'ECANCELED' });
      expect(await lost).toMatch(/exited \(SIGKILL\)/);
      await expect(host.links.listVnics()).rejects.toMatchObject({ code: 'ECANCELED' });
      await host.close();
      // What it had made is on disk: the next host finds it, as after an agent crash.
      const again = await proc.open({ stateDir, links: ['stub0'], logLevel: 'silent' });
      try {
        expect((await again.links.listVnics()).map((v) => v.name)).toEqual(['oxControlTest0']);
      } finally {
        await again.close();
      }
    } finally {
      await host.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('holds the state directory\'s lock it was given for as long as it lives', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'host-sim-process-'));
    const lock = lockDirectory(stateDir, 'simulated host', 'state directory');
    const host = await RemoteSimHost.start({ stateDir, logLevel: 'silent' }, pino({ level: 'silent' }), { holdFds: [lock.fd] });
    try {
      // The agent's copy is gone (as when it is SIGKILLed): the child's still holds the lock.
      lock.release();
      expect(() => lockDirectory(stateDir, 'simulated host', 'state directory')).toThrow(DirectoryInUseError);
    } finally {
      await host.close();
    }
    // Its process has exited: the directory is free.
    lockDirectory(stateDir, 'simulated host', 'state directory').release();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('the process runs only the Host interfaces\' methods, whatever a call names', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'host-sim-process-'));
    const host = await proc.open({ stateDir, logLevel: 'silent' });
    try {
      const refused: Array<[string, string, RegExp]> = [
        ['zones', 'toString', /no host method zones\.toString/],
        ['zones', 'constructor', /no host method zones\.constructor/],
        ['links', '__proto__', /no host method links\.__proto__/],
        ['events', 'subscribe', /no host method events\.subscribe/],
        // The host's own close is the parent's to decide (close()), not a call's.
        ['host', 'close', /no host method host\.close/],
        ['kernel', 'list', /no host part kernel/],
      ];
      for (const [part, method, message] of refused) {
        await expect(proc.call(part as never, method, []), `${part}.${method}`).rejects.toThrow(message);
      }
      await expect((host.zones as unknown as { toString(): Promise<unknown> }).toString()).rejects.toThrow(/no host method zones\.toString/);
      // Still open and answering.
      await expect(host.zones.list()).resolves.toEqual([]);
    } finally {
      await host.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('a wait aborted here rejects with ABORT_ERR at once and is cancelled in the process', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'host-sim-process-'));
    const host = await proc.open({ stateDir, logLevel: 'silent' });
    try {
      const ctl = new AbortController();
      const wait = host.events.waitForService('oxz_none', 'svc:/milestone/network:default', ['online'], { timeoutMs: 60_000, signal: ctl.signal });
      const reason = new Error('stop waiting');
      ctl.abort(reason);
      await expect(wait).rejects.toMatchObject({ code: 'ABORT_ERR', name: 'AbortError', cause: reason });
      // The host goes on answering.
      await expect(host.zones.list()).resolves.toEqual([]);
    } finally {
      await host.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
