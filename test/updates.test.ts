// POST /update (reference §12, issue 2): the artifact comes from Nexus's
// GET /artifacts/{kind}/{name}/{version} and lands atomically in the artifact directory, with the
// original's defects fixed: a non-2xx answer is an error, and a name that is not a plain file name
// is refused before anything is fetched.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from '../src/common/errors.js';
import { checkArtifactName } from '../src/updates.js';
import { expectSchema } from './support/contract.js';
import type { Recorded, Responder } from './support/fake-nexus.js';
import { startTestAgent } from './support/agent.js';
import { startTestSim, type TestSim } from './support/sim.js';

let sim: TestSim;
/** What the fake Nexus serves at /artifacts/..., by URL. */
let artifacts: Map<string, { status: number; body: Buffer | string }>;

const artifactUrl = (name: string, version: number, kind = 'zone') =>
  `/artifacts/${kind}/${encodeURIComponent(name)}/${version}`;
const isArtifactGet = (r: Recorded) => r.method === 'GET' && r.url.startsWith('/artifacts');

const responder: Responder = (r) => {
  if (r.method === 'GET' && r.url.startsWith('/artifacts/')) {
    const answer = artifacts.get(r.url);
    if (!answer) return { status: 404, body: JSON.stringify({ message: 'not found' }), headers: { 'content-type': 'application/json' } };
    return { status: answer.status, body: answer.body, headers: { 'content-type': 'application/octet-stream' } };
  }
  return { status: 204 };
};

beforeAll(async () => {
  sim = await startTestSim();
  sim.nexus.respond = responder;
  await sim.sim.registered;
});

afterAll(async () => {
  await sim?.close();
});

beforeEach(() => {
  artifacts = new Map();
});

let counter = 0;
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++counter}.tar.gz`;

function update(name: string, version: number | unknown = 1, kind: unknown = 'zone') {
  return sim.request('POST', '/update', { name, version, kind });
}

function expectEnvelope(res: { status: number; body: any }, status: number, code?: string): void {
  expect(res.status).toBe(status);
  expectSchema('sled-agent.json', 'Error', res.body);
  expect(Object.keys(res.body).sort()).toEqual(['error_code', 'message', 'request_id']);
  expect(res.body.request_id).not.toBe('');
  if (code) expect(res.body.error_code).toBe(code);
}

/** Leftovers of a download: temp files are dot-files ending in .tmp. */
function tempFiles(): string[] {
  if (!existsSync(sim.artifactDir)) return [];
  return readdirSync(sim.artifactDir).filter((f) => f.endsWith('.tmp') || f.startsWith('.'));
}

describe('POST /update', () => {
  it('downloads the artifact from Nexus into <artifactDir>/<name>, atomically', async () => {
    const name = uniqueName('propolis');
    const bytes = randomBytes(300_000);
    artifacts.set(artifactUrl(name, 3), { status: 200, body: bytes });

    const res = await update(name, 3);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');

    const gets = sim.nexus.requests.filter((r) => isArtifactGet(r) && r.url.includes(encodeURIComponent(name)));
    expect(gets.map((r) => r.url)).toEqual([`/artifacts/zone/${name}/3`]);
    expect(readFileSync(join(sim.artifactDir, name)).equals(bytes)).toBe(true);
    expect(readdirSync(sim.artifactDir).filter((f) => f.includes(name))).toEqual([name]);
    expect(tempFiles()).toEqual([]);
  });

  it('replaces the artifact when a newer version is downloaded', async () => {
    const name = uniqueName('zone');
    const v1 = Buffer.from('first version of the zone image\n');
    const v2 = randomBytes(70_000);
    artifacts.set(artifactUrl(name, 1), { status: 200, body: v1 });
    artifacts.set(artifactUrl(name, 2), { status: 200, body: v2 });

    expect((await update(name, 1)).status).toBe(204);
    expect(readFileSync(join(sim.artifactDir, name)).equals(v1)).toBe(true);

    expect((await update(name, 2)).status).toBe(204);
    expect(readFileSync(join(sim.artifactDir, name)).equals(v2)).toBe(true);
    expect(readdirSync(sim.artifactDir).filter((f) => f.includes(name))).toEqual([name]);
    expect(tempFiles()).toEqual([]);
  });

  it('answers 404 ObjectNotFound when Nexus has no such artifact, and writes nothing', async () => {
    const name = uniqueName('missing');
    const res = await update(name, 7);
    expectEnvelope(res, 404, 'ObjectNotFound');
    expect(res.body.message).toContain(name);
    // Nexus was asked.
    expect(sim.nexus.requests.some((r) => isArtifactGet(r) && r.url === artifactUrl(name, 7))).toBe(true);
    expect(existsSync(join(sim.artifactDir, name))).toBe(false);
    if (existsSync(sim.artifactDir)) {
      expect(readdirSync(sim.artifactDir).filter((f) => f.includes(name))).toEqual([]);
    }
  });

  it('answers a 5xx naming the artifact when Nexus fails, and keeps the good file', async () => {
    const name = uniqueName('flaky');
    const good = Buffer.from('the good artifact');
    artifacts.set(artifactUrl(name, 1), { status: 200, body: good });
    artifacts.set(artifactUrl(name, 2), { status: 500, body: 'internal error in nexus' });

    expect((await update(name, 1)).status).toBe(204);
    const res = await update(name, 2);
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(res.status).toBeLessThan(600);
    expectEnvelope(res, res.status);
    expect(res.body.message).toContain(name);

    expect(sim.nexus.requests.some((r) => isArtifactGet(r) && r.url === artifactUrl(name, 2))).toBe(true);
    expect(readFileSync(join(sim.artifactDir, name)).equals(good)).toBe(true);
    expect(readdirSync(sim.artifactDir).filter((f) => f.includes(name))).toEqual([name]);
    expect(tempFiles()).toEqual([]);
  });

  it('does not store a 404 page when Nexus 404s an artifact that exists locally', async () => {
    const name = uniqueName('kept');
    const good = Buffer.from('kept bytes');
    artifacts.set(artifactUrl(name, 1), { status: 200, body: good });
    expect((await update(name, 1)).status).toBe(204);
    expectEnvelope(await update(name, 2), 404, 'ObjectNotFound');
    expect(readFileSync(join(sim.artifactDir, name)).equals(good)).toBe(true);
  });

  it('stores no empty artifact when Nexus answers 204 or 200 with no body, and keeps the one in place', async () => {
    const name = uniqueName('empty');
    const good = Buffer.from('kept bytes');
    artifacts.set(artifactUrl(name, 1), { status: 200, body: good });
    expect((await update(name, 1)).status).toBe(204);
    artifacts.set(artifactUrl(name, 2), { status: 204, body: '' });
    artifacts.set(artifactUrl(name, 3), { status: 200, body: Buffer.alloc(0) });
    for (const version of [2, 3]) {
      const res = await update(name, version);
      expectEnvelope(res, 503);
      expect(res.body.message).toBe(`download of artifact zone/${name} version ${version} failed after 0 bytes: Nexus sent no bytes`);
    }
    expect(readFileSync(join(sim.artifactDir, name)).equals(good)).toBe(true);
    const fresh = uniqueName('never');
    artifacts.set(artifactUrl(fresh, 1), { status: 204, body: '' });
    expectEnvelope(await update(fresh, 1), 503);
    expect(existsSync(join(sim.artifactDir, fresh))).toBe(false);
    expect(tempFiles()).toEqual([]);
  });

  it('keeps the good file when the download breaks off part way', async () => {
    const name = uniqueName('truncated');
    const good = Buffer.from('complete artifact');
    artifacts.set(artifactUrl(name, 1), { status: 200, body: good });
    expect((await update(name, 1)).status).toBe(204);

    // Nexus promises 100000 bytes and sends 10; the sim gives up after its Nexus timeout (2 s here).
    const respond = sim.nexus.respond;
    sim.nexus.respond = (r) => r.url === artifactUrl(name, 2)
      ? { status: 200, body: Buffer.from('0123456789'), headers: { 'content-length': '100000' } }
      : respond(r);
    try {
      const res = await update(name, 2);
      expect(res.status).toBeGreaterThanOrEqual(500);
      expectEnvelope(res, res.status);
      expect(res.body.message).toContain(name);
    } finally {
      sim.nexus.respond = respond;
    }
    expect(readFileSync(join(sim.artifactDir, name)).equals(good)).toBe(true);
    expect(tempFiles()).toEqual([]);
  });

  it('leaves one complete version and no temp files after concurrent updates of the same name', async () => {
    const name = uniqueName('concurrent');
    const payloads = [1, 2, 3, 4, 5].map((v) => {
      const body = Buffer.alloc(50_000 + v, v);
      artifacts.set(artifactUrl(name, v), { status: 200, body });
      return body;
    });
    const results = await Promise.all(payloads.map((_, i) => update(name, i + 1)));
    expect(results.map((r) => r.status)).toEqual([204, 204, 204, 204, 204]);
    const stored = readFileSync(join(sim.artifactDir, name));
    expect(payloads.some((p) => p.equals(stored))).toBe(true);
    expect(readdirSync(sim.artifactDir).filter((f) => f.includes(name))).toEqual([name]);
    expect(tempFiles()).toEqual([]);
  });

  it('encodes the name in the Nexus URL', async () => {
    const name = `zone image?v=2#frag%2e-${++counter}`;
    const bytes = Buffer.from('odd name');
    artifacts.set(artifactUrl(name, 4), { status: 200, body: bytes });
    expect((await update(name, 4)).status).toBe(204);
    expect(sim.nexus.requests.some((r) => isArtifactGet(r) && r.url === artifactUrl(name, 4))).toBe(true);
    expect(readFileSync(join(sim.artifactDir, name)).equals(bytes)).toBe(true);
  });

  // A lone surrogate has no UTF-8 form: neither a URL nor a file name can carry it.
  const BAD_NAMES = ['a/b', '..', '../x', 'a\\b', 'x\u0000y', '', '.', '/etc/passwd', '\ud800', 'zone-\udfff.tar.gz'];

  it.each(BAD_NAMES.map((n) => [JSON.stringify(n), n]))('refuses the name %s with 400 InvalidRequest', async (_label, name) => {
    const res = await update(name, 1);
    expectEnvelope(res, 400, 'InvalidRequest');
  });

  it('asks Nexus for nothing when the name is refused', async () => {
    const before = sim.nexus.requests.length;
    for (const name of BAD_NAMES) {
      expectEnvelope(await update(name, 1), 400, 'InvalidRequest');
    }
    // A good update afterwards: its GET proves Nexus would have seen the earlier ones by now.
    const name = uniqueName('after-bad');
    artifacts.set(artifactUrl(name, 1), { status: 200, body: Buffer.from('ok') });
    expect((await update(name, 1)).status).toBe(204);
    await sim.nexus.waitFor((r) => isArtifactGet(r) && r.url === artifactUrl(name, 1));

    const since = sim.nexus.requests.slice(before).filter(isArtifactGet);
    expect(since.map((r) => r.url)).toEqual([artifactUrl(name, 1)]);
    // And nothing was written outside the artifact directory's own files.
    expect(existsSync(join(sim.artifactDir, '..', 'x'))).toBe(false);
    expect(existsSync(join(sim.artifactDir, 'a'))).toBe(false);
  });

  it('refuses an unknown kind with a 400 naming the field', async () => {
    const before = sim.nexus.requests.length;
    const res = await update(uniqueName('os'), 1, 'os');
    expectEnvelope(res, 400, 'InvalidRequest');
    expect(res.body.message).toContain('kind');
    expect(sim.nexus.requests.slice(before).filter(isArtifactGet)).toEqual([]);
  });

  it.each([
    ['a string', '1'],
    ['a fraction', 1.5],
    ['null', null],
    ['a bool', true],
  ])('refuses a version that is %s with a 400 naming the field', async (_label, version) => {
    const res = await update(uniqueName('ver'), version);
    expectEnvelope(res, 400, 'InvalidRequest');
    expect(res.body.message).toContain('version');
  });

  it('refuses a body without a name with a 400 naming the field', async () => {
    const res = await sim.request('POST', '/update', { version: 1, kind: 'zone' });
    expectEnvelope(res, 400, 'InvalidRequest');
    expect(res.body.message).toContain('name');
  });
});

describe('POST /update with an artifact directory that cannot be made', () => {
  it('answers 503 naming the directory, and keeps serving', async () => {
    const own = await startTestSim();
    try {
      own.nexus.respond = () => ({ status: 200, body: 'an artifact', headers: { 'content-type': 'application/octet-stream' } });
      // A file where the directory should go.
      writeFileSync(own.artifactDir, 'not a directory');
      const res = await own.request('POST', '/update', { name: uniqueName('nodir'), version: 1, kind: 'zone' });
      expectEnvelope(res, 503, 'ServiceUnavailable');
      expect(res.body.message).toContain(own.artifactDir);
      expect((await own.request('GET', '/health')).status).toBe(200);
    } finally {
      await own.close();
    }
  });
});

describe('POST /update on the real agent', () => {
  it('refuses a name with a lone surrogate with 400 InvalidRequest, asking Nexus for nothing', async () => {
    const agent = await startTestAgent();
    try {
      const before = agent.nexus.requests.length;
      const res = await agent.request('POST', '/update', { name: 'zone-\ud800.tar.gz', version: 1, kind: 'zone' });
      expectEnvelope({ status: res.status, body: res.body }, 400, 'InvalidRequest');
      expect(res.body.message).toContain('surrogate');
      expect(agent.nexus.requests.slice(before).filter(isArtifactGet)).toEqual([]);
    } finally {
      await agent.close();
    }
  });
});

describe('checkArtifactName', () => {
  it.each(['zone.tar.gz', 'propolis-server', 'a', '.hidden', 'x'.repeat(255), 'é'.repeat(127), 'zone-\u{1f600}.tar.gz'])('accepts %j', (name) => {
    expect(() => checkArtifactName(name)).not.toThrow();
  });

  it.each([
    ['', 'empty'],
    ['a/b', 'separator'],
    ['/abs', 'separator'],
    ['a\\b', 'separator'],
    ['..', '..'],
    ['../x', ''],
    ['x/..', ''],
    ['.', ''],
    ['x\u0000y', 'NUL'],
    ['x'.repeat(256), '255'],
    ['é'.repeat(128), '255'], // 256 bytes in UTF-8
    ['\ud800', 'lone UTF-16 surrogate U+D800'],
    ['a\udc00b', 'lone UTF-16 surrogate U+DC00'],
    ['\udbff', 'no UTF-8 encoding'],
  ])('refuses %j with a 400 InvalidRequest saying why', (name, why) => {
    let err: unknown;
    try {
      checkArtifactName(name);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    const api = err as ApiError;
    expect(api.statusCode).toBe(400);
    expect(api.errorCode).toBe('InvalidRequest');
    expect(api.message).toContain(why);
    expect(api.message).toContain(JSON.stringify(name));
  });
});
