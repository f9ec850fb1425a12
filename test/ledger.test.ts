// Ledgers (src/ledger.ts): group commit, the journaled ledger's appends, compactions and what
// open makes of each thing a crash can leave (a torn append, a compaction cut short) or of a
// journal that is corrupt, and the directory fsyncs a commit depends on.
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Ledger, observeLedgerCommits, readLedgerFile } from '../src/ledger.js';
import { spyOnDirSyncs } from './support/dir-syncs.js';

interface Value {
  instances: Record<string, unknown>;
  pool?: unknown;
}

const dirs: string[] = [];
const ledgers: Array<Ledger<Value>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const l of ledgers.splice(0)) await l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ledger-test-'));
  dirs.push(d);
  return d;
}

async function openLedger(path: string, journal = true): Promise<Ledger<Value>> {
  const ledger = await Ledger.open<Value>(path, () => ({ instances: {} }), (raw) => {
    if (typeof (raw as Value | null)?.instances !== 'object') throw new Error(`${path}: no instances table`);
    return raw as Value;
  }, { journal });
  ledgers.push(ledger);
  return ledger;
}

const read = (path: string) => readFileSync(path, 'utf8');
const lines = (path: string) => read(path).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A ledger with one instance written in a snapshot, then `a` set, `b` added, `gone` deleted and the pool changed in appends. */
async function withAppends(path: string): Promise<Ledger<Value>> {
  const ledger = await openLedger(path);
  ledger.value.instances = { a: { n: 1 }, gone: { n: 0 } };
  await ledger.commit();
  ledger.value.instances.a = { n: 2 };
  await ledger.commit(['instances', 'a']);
  ledger.value.instances.b = { n: 3 };
  delete ledger.value.instances.gone;
  ledger.value.pool = { zones: { z: 1 } };
  await Promise.all([ledger.commit(['instances', 'b']), ledger.commit(['instances', 'gone']), ledger.commit(['pool'])]);
  return ledger;
}

const expected: Value = { instances: { a: { n: 2 }, b: { n: 3 } }, pool: { zones: { z: 1 } } };

describe('group commit', () => {
  it.each([true, false])('many concurrent commits cost two writes, each resolving once its change is on disk (journal: %s)', async (journal) => {
    const dir = tempDir();
    const path = join(dir, 'instances.json');
    const ledger = await openLedger(path, journal);
    const writes: string[] = [];
    const stop = observeLedgerCommits(dir, (p) => writes.push(p));
    try {
      const done = Array.from({ length: 100 }, (_, i) => {
        ledger.value.instances[`i${i}`] = { i };
        return ledger.commit(['instances', `i${i}`]).then(() => (readLedgerFile(path) as Value).instances[`i${i}`]);
      });
      expect(await Promise.all(done)).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })));
      expect(writes).toEqual([path, path]);
      expect(existsSync(`${path}.log`)).toBe(journal);
    } finally {
      stop();
    }
  });
});

describe('a journaled ledger', () => {
  it('appends what changed, leaving the snapshot as it was; a reopen sees every change, deletions and whole entries too', async () => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await openLedger(path);
    ledger.value.instances = { a: { n: 1 }, gone: { n: 0 } };
    await ledger.commit();
    const snapshot = read(path);
    expect(JSON.parse(snapshot)).toEqual({ instances: { a: { n: 1 }, gone: { n: 0 } } });
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(snapshot) }]);

    ledger.value.instances.a = { n: 2 };
    await ledger.commit(['instances', 'a']);
    const afterOne = statSync(`${path}.log`).size;
    ledger.value.instances.b = { n: 3 };
    delete ledger.value.instances.gone;
    ledger.value.pool = { zones: { z: 1 } };
    await Promise.all([ledger.commit(['instances', 'b']), ledger.commit(['instances', 'gone']), ledger.commit(['pool'])]);

    expect(read(path)).toBe(snapshot);
    expect(statSync(`${path}.log`).size).toBeGreaterThan(afterOne);
    expect(lines(`${path}.log`).slice(1)).toEqual([
      { t: 'instances', k: 'a', v: { n: 2 } }, { c: 1 },
      { t: 'instances', k: 'b', v: { n: 3 } }, { c: 1 },
      { t: 'instances', k: 'gone' }, { t: 'pool', v: { zones: { z: 1 } } }, { c: 2 },
    ]);
    await ledger.close();

    const again = await openLedger(path);
    expect(again.value).toEqual(expected);
    expect(again.loaded).toBe(true);
    // Opened on a log with entries: compacted at once, so appends start on a log of none.
    expect(JSON.parse(read(path))).toEqual(expected);
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(read(path)) }]);
  });

  it('writes the whole entry when a table is deleted or replaced', async () => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await openLedger(path);
    ledger.value.pool = { zones: {} };
    await ledger.commit();
    delete ledger.value.pool;
    await ledger.commit(['pool']);
    ledger.value.instances = { x: 1 };
    await ledger.commit(['instances']);
    await ledger.close();
    expect(lines(`${path}.log`).slice(1)).toEqual([{ t: 'pool' }, { c: 1 }, { t: 'instances', v: { x: 1 } }, { c: 1 }]);
    expect(readLedgerFile(path)).toEqual({ instances: { x: 1 } });
    expect((await openLedger(path)).value).toEqual({ instances: { x: 1 } });
  });

  it('compacts once the log outgrows its threshold: a new snapshot, a log of no entries, the same value', async () => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await openLedger(path);
    await ledger.commit();
    const first = read(path);
    const big = 'x'.repeat(20_000);
    let compacted = -1;
    for (let i = 0; i < 40 && compacted < 0; i++) {
      ledger.value.instances[`i${i % 5}`] = { i, big };
      await ledger.commit(['instances', `i${i % 5}`]);
      if (read(path) !== first) compacted = i;
    }
    // Five records of 20 kB: a snapshot of ~100 kB, so the threshold is the 256 KiB floor, 13 appends or so.
    expect(compacted).toBeGreaterThan(10);
    expect(compacted).toBeLessThan(20);
    expect(JSON.parse(read(path))).toEqual(ledger.value);
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(read(path)) }]);
    // And it appends again afterwards.
    ledger.value.instances.after = { ok: true };
    await ledger.commit(['instances', 'after']);
    expect(lines(`${path}.log`)).toHaveLength(3);
    const value = structuredClone(ledger.value);
    await ledger.close();
    expect((await openLedger(path)).value).toEqual(value);
  });

  it('writes a snapshot for a commit that names no change', async () => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await withAppends(path);
    const before = read(path);
    ledger.value.instances.c = { n: 4 };
    await ledger.commit();
    expect(read(path)).not.toBe(before);
    expect(JSON.parse(read(path))).toEqual({ ...expected, instances: { ...expected.instances, c: { n: 4 } } });
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(read(path)) }]);
  });

  it.each([
    ['cut short', '{"t":"instances","k":"torn","v":{"n":'],
    ['that does not parse', '\u0000\u0000\u0000\n'],
  ])('drops a last line %s on open (a write never acknowledged), then compacts', async (_, torn) => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    appendFileSync(`${path}.log`, torn);
    expect(readLedgerFile(path)).toEqual(expected);
    const ledger = await openLedger(path);
    expect(ledger.value).toEqual(expected);
    expect(JSON.parse(read(path))).toEqual(expected);
    expect(read(`${path}.log`)).toBe(`${JSON.stringify({ ledger: 2, snapshot: sha256(read(path)) })}\n`);
  });

  it('writes only the fields named of a key, and the key whole when it is also named whole or is gone', async () => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await openLedger(path);
    const big = 'x'.repeat(10_000);
    ledger.value.instances = { a: { hw: big, state: 'starting', gen: 1, limit: 5 }, b: { hw: big, state: 'starting' }, c: { hw: big } };
    await ledger.commit();
    const before = statSync(`${path}.log`).size;
    const a = ledger.value.instances.a as Record<string, unknown>;
    a.state = 'running';
    a.gen = 2;
    delete a.limit;
    await ledger.commit(['instances', 'a', 'state'], ['instances', 'a', 'gen'], ['instances', 'a', 'limit']);
    // Fields, not the 10 kB the record carries.
    expect(statSync(`${path}.log`).size - before).toBeLessThan(200);
    expect(lines(`${path}.log`).slice(1)).toEqual([
      { t: 'instances', k: 'a', f: 'state', v: 'running' }, { t: 'instances', k: 'a', f: 'gen', v: 2 }, { t: 'instances', k: 'a', f: 'limit' }, { c: 3 },
    ]);

    // One write: a key named whole and by a field, in either order, goes whole; a key deleted goes as a deletion.
    (ledger.value.instances.b as Record<string, unknown>).state = 'running';
    ledger.value.instances.b = { ...(ledger.value.instances.b as object), zone: 'z' };
    (ledger.value.instances.a as Record<string, unknown>).gen = 3;
    delete ledger.value.instances.c;
    ledger.touch(['instances', 'b', 'state']);
    ledger.touch(['instances', 'b']);
    ledger.touch(['instances', 'a']);
    ledger.touch(['instances', 'a', 'gen']);
    await ledger.commit(['instances', 'c', 'state']);
    const last = lines(`${path}.log`).slice(5);
    expect(last).toEqual([
      { t: 'instances', k: 'b', v: { hw: big, state: 'running', zone: 'z' } }, { t: 'instances', k: 'a', v: { hw: big, state: 'running', gen: 3 } },
      { t: 'instances', k: 'c' }, { c: 3 },
    ]);

    const want = { instances: { a: { hw: big, state: 'running', gen: 3 }, b: { hw: big, state: 'running', zone: 'z' } } };
    expect(readLedgerFile(path)).toEqual(want);
    await ledger.close();
    expect((await openLedger(path)).value).toEqual(want);
  });

  it('refuses a field entry for a key that is not an object, naming the line', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    appendFileSync(`${path}.log`, '{"t":"instances","k":"nobody","f":"state","v":1}\n{"c":1}\n');
    await expect(openLedger(path)).rejects.toThrow(`${path}.log:9: field "state" of instances["nobody"], which is not an object; the ledger is corrupt`);
    expect(() => readLedgerFile(path)).toThrow(`${path}.log:9`);
  });

  it('reads a log of version 1, and compacts one into version 2 before appending', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    // As an agent before field entries left it: the same entries under a version 1 header.
    writeFileSync(`${path}.log`, read(`${path}.log`).replace('"ledger":2', '"ledger":1'));
    expect(readLedgerFile(path)).toEqual(expected);
    const ledger = await openLedger(path);
    expect(ledger.value).toEqual(expected);
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(read(path)) }]);

    // A version 1 log with no entries is replaced too, rather than appended to.
    await ledger.close();
    writeFileSync(`${path}.log`, `${JSON.stringify({ ledger: 1, snapshot: sha256(read(path)) })}\n`);
    const again = await openLedger(path);
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(read(path)) }]);
    (again.value.instances.a as Record<string, unknown>).n = 7;
    await again.commit(['instances', 'a', 'n']);
    expect(readLedgerFile(path)).toEqual({ ...expected, instances: { ...expected.instances, a: { n: 7 } } });
  });

  it('refuses a log of a version it does not know, saying it may be a newer agent\'s', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    writeFileSync(`${path}.log`, read(`${path}.log`).replace('"ledger":2', '"ledger":3'));
    await expect(openLedger(path)).rejects.toThrow('written by a newer agent');
  });

  it('drops the entries of a write whose end line is missing: a write lands whole or not at all', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    // Cut after a complete line, as a kill in the middle of a large write(2) can.
    appendFileSync(`${path}.log`, '{"t":"instances","k":"half","v":1}\n{"t":"pool","v":null}\n');
    expect(readLedgerFile(path)).toEqual(expected);
    expect((await openLedger(path)).value).toEqual(expected);
  });

  it('refuses to open on a corrupt line with lines after it, naming the file and line', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    const log = read(`${path}.log`).split('\n');
    log[2] = 'garbage';
    writeFileSync(`${path}.log`, log.join('\n'));
    await expect(openLedger(path)).rejects.toThrow(`${path}.log:3: not a ledger journal entry (garbage)`);
    expect(() => readLedgerFile(path)).toThrow(`${path}.log:3`);
    // Nothing was rewritten: the evidence stays for the operator.
    expect(read(`${path}.log`)).toBe(log.join('\n'));
  });

  it('refuses a log whose first line is not a header', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    writeFileSync(`${path}.log`, read(`${path}.log`).replace(/^[^\n]*/, '{"t":"instances","k":"a"}'));
    await expect(openLedger(path)).rejects.toThrow(`${path}.log: line 1 is not a ledger journal header`);
  });

  it('ignores a log that names another snapshot: a compaction cut short after its snapshot, before its log', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    const oldLog = read(`${path}.log`);
    // The compaction's new snapshot has everything, and more than the old log: were the log
    // replayed onto it, `a` would go back to n: 2.
    const newer = { ...expected, instances: { ...expected.instances, a: { n: 9 } } };
    writeFileSync(path, JSON.stringify(newer));
    expect(readLedgerFile(path)).toEqual(newer);
    expect(read(`${path}.log`)).toBe(oldLog);
    const ledger = await openLedger(path);
    expect(ledger.value).toEqual(newer);
    // Replaced at open by a log that continues the snapshot on disk.
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(read(path)) }]);
    ledger.value.instances.d = 1;
    await ledger.commit(['instances', 'd']);
    expect(readLedgerFile(path)).toEqual({ ...newer, instances: { ...newer.instances, d: 1 } });
  });

  it('starts from nothing when there is a log but no snapshot, and removes the log', async () => {
    const path = join(tempDir(), 'instances.json');
    await (await withAppends(path)).close();
    rmSync(path);
    const ledger = await openLedger(path);
    expect(ledger.loaded).toBe(false);
    expect(ledger.value).toEqual({ instances: {} });
    expect(existsSync(`${path}.log`)).toBe(false);
  });

  it('makes its first write a snapshot, and a log for a snapshot that has none', async () => {
    const dir = tempDir();
    const path = join(dir, 'instances.json');
    const ledger = await openLedger(path);
    expect(readdirSync(dir)).toEqual([]);
    ledger.value.instances.a = 1;
    await ledger.commit(['instances', 'a']);
    expect(JSON.parse(read(path))).toEqual({ instances: { a: 1 } });
    expect(lines(`${path}.log`)).toHaveLength(1);
    await ledger.close();

    // A snapshot written by a plain ledger (or an older agent): the journal starts beside it.
    rmSync(`${path}.log`);
    const text = read(path);
    const again = await openLedger(path);
    expect(read(path)).toBe(text);
    expect(lines(`${path}.log`)).toEqual([{ ledger: 2, snapshot: sha256(text) }]);
    again.value.instances.b = 2;
    await again.commit(['instances', 'b']);
    expect(read(path)).toBe(text);
    expect(readLedgerFile(path)).toEqual({ instances: { a: 1, b: 2 } });
  });

  it('agrees with readLedgerFile, before and after a reopen', async () => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await withAppends(path);
    expect(readLedgerFile(path)).toEqual(ledger.value);
    await ledger.close();
    const again = await openLedger(path);
    expect(again.value).toEqual(expected);
    expect(readLedgerFile(path)).toEqual(again.value);
  });

  it('removes snapshot and log', async () => {
    const dir = tempDir();
    const path = join(dir, 'instances.json');
    const ledger = await withAppends(path);
    expect(readdirSync(dir).sort()).toEqual(['instances.json', 'instances.json.log']);
    await ledger.remove();
    expect(readdirSync(dir)).toEqual([]);
    expect((await openLedger(path)).loaded).toBe(false);
  });

  it('removes the temp files a kill left', async () => {
    const dir = tempDir();
    const path = join(dir, 'instances.json');
    await (await withAppends(path)).close();
    writeFileSync(join(dir, '.instances.json.log.0123456789ab.tmp'), '{"ledger":1,"snapshot":"x"}\n');
    writeFileSync(join(dir, '.instances.json.0123456789ab.tmp'), '{}');
    expect((await openLedger(path)).value).toEqual(expected);
    expect(readdirSync(dir).sort()).toEqual(['instances.json', 'instances.json.log']);
  });
});

describe('a plain ledger', () => {
  it('writes the whole value to one file, and no log, whatever the commit names', async () => {
    const dir = tempDir();
    const path = join(dir, 'services.json');
    const ledger = await openLedger(path, false);
    ledger.value.instances.a = 1;
    await ledger.commit(['instances', 'a']);
    ledger.value.pool = 2;
    await ledger.commit(['instances', 'a']);
    expect(readdirSync(dir)).toEqual(['services.json']);
    expect(read(path)).toBe('{"instances":{"a":1},"pool":2}');
    await ledger.remove();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes a journal it finds into its snapshot and drops it, rather than losing what it holds', async () => {
    const dir = tempDir();
    const path = join(dir, 'instances.json');
    await (await withAppends(path)).close();
    const ledger = await openLedger(path, false);
    expect(ledger.value).toEqual(expected);
    expect(readdirSync(dir)).toEqual(['instances.json']);
    expect(JSON.parse(read(path))).toEqual(expected);
  });
});

describe('directory fsyncs', () => {
  it('makes the directories open creates (a first boot\'s data_dir) durable in their parents', async () => {
    const root = tempDir();
    const syncs = await spyOnDirSyncs();
    const ledger = await openLedger(join(root, 'data', 'ledgers', 'instances.json'));
    expect(await syncs.synced(root)).toBe(true);
    expect(await syncs.synced(join(root, 'data'))).toBe(true);
    ledger.value.instances.a = 1;
    await ledger.commit(['instances', 'a']);
    expect(await syncs.synced(join(root, 'data', 'ledgers'))).toBe(true);
  });

  it.each([true, false])('rejects a commit whose directory fsync fails with EIO (journal: %s)', async (journal) => {
    const path = join(tempDir(), 'instances.json');
    const ledger = await openLedger(path, journal);
    const syncs = await spyOnDirSyncs();
    syncs.fail = 'EIO';
    ledger.value.instances.a = 1;
    await expect(ledger.commit()).rejects.toMatchObject({ code: 'EIO' });
    // Once the directory syncs again, the next commit writes everything again and resolves.
    syncs.fail = undefined;
    ledger.value.instances.b = 2;
    await ledger.commit(['instances', 'b']);
    expect(readLedgerFile(path)).toEqual({ instances: { a: 1, b: 2 } });
  });
});
