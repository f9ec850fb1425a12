import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { combine, split } from 'shamir-secret-sharing';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  combineShares,
  createRackSecret,
  decodeShare,
  establishQuorum,
  fetchShare,
  parseShareRequest,
  readShareFile,
  shareResponseBody,
  TrustQuorumError,
  verifyShare,
  writeShareFile,
  type ShareDistribution,
} from '../src/bootstrap/trust-quorum.js';
import { spyOnDirSyncs } from './support/dir-syncs.js';

// ---------------------------------------------------------------------------------------------
// An independent GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), which is the
// field the library's tables are built for (see node_modules/shamir-secret-sharing/src/index.ts).
// Bitwise "Russian peasant" multiplication: no tables shared with the library.
// ---------------------------------------------------------------------------------------------
function gfMul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 8; i++) {
    if (b & 1) p ^= a;
    const hi = a & 0x80;
    a = (a << 1) & 0xff;
    if (hi) a ^= 0x1b;
    b >>= 1;
  }
  return p;
}
function gfInv(a: number): number {
  // a^254 = a^-1 in GF(256)
  let r = 1;
  for (let i = 0; i < 254; i++) r = gfMul(r, a);
  return r;
}
/** Evaluates coefficients c0 + c1 x + c2 x^2 + ... at x. */
function gfEval(coeffs: number[], x: number): number {
  let y = 0;
  let xp = 1;
  for (const c of coeffs) {
    y ^= gfMul(c, xp);
    xp = gfMul(xp, x);
  }
  return y;
}
/** Independent Lagrange interpolation at 0 over points (x_i, y_i). */
function gfInterpolateAtZero(points: Array<[number, number]>): number {
  let acc = 0;
  for (const [i, [xi, yi]] of points.entries()) {
    let basis = 1;
    for (const [j, [xj]] of points.entries()) {
      if (i === j) continue;
      // (0 - xj) / (xi - xj); subtraction is xor
      basis = gfMul(basis, gfMul(xj, gfInv(xi ^ xj)));
    }
    acc ^= gfMul(yi, basis);
  }
  return acc;
}
/**
 * Builds a share in the library's layout: one y byte per secret byte, then the x-coordinate as
 * the LAST byte. polys[i] are the coefficients for secret byte i (polys[i][0] is the secret byte).
 */
function handShare(polys: number[][], x: number): Uint8Array {
  const share = new Uint8Array(polys.length + 1);
  polys.forEach((coeffs, i) => {
    share[i] = gfEval(coeffs, x);
  });
  share[polys.length] = x;
  return share;
}
/** Library share → independent reconstruction of the secret. */
function independentCombine(shares: Uint8Array[]): Uint8Array {
  const len = shares[0]!.length - 1;
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    out[i] = gfInterpolateAtZero(shares.map((s) => [s[len]!, s[i]!]));
  }
  return out;
}
function subsets<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [first, ...rest] = items as [T, ...T[]];
  return [...subsets(rest, k - 1).map((s) => [first, ...s]), ...subsets(rest, k)];
}
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function expectTQ(p: Promise<unknown>, code: string, ...fragments: (string | RegExp)[]): Promise<TrustQuorumError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a TrustQuorumError ${code}`).toBeInstanceOf(TrustQuorumError);
  const e = caught as TrustQuorumError;
  expect(e.code, e.message).toBe(code);
  for (const f of fragments) {
    if (typeof f === 'string') expect(e.message).toContain(f);
    else expect(e.message).toMatch(f);
  }
  return e;
}

describe('GF(256) helper self-check (FIPS-197 §4.2 examples)', () => {
  it('multiplies like the AES field', () => {
    expect(gfMul(0x57, 0x83)).toBe(0xc1);
    expect(gfMul(0x57, 0x13)).toBe(0xfe);
    expect(gfMul(0x53, 0xca)).toBe(0x01); // {53} and {ca} are inverses
    expect(gfInv(0x53)).toBe(0xca);
  });
});

describe('shamir-secret-sharing known-answer tests', () => {
  it('combines a hand-derived threshold-2 vector for secret 0x2a', async () => {
    // f(x) = 0x2a + 0x57·x. From FIPS-197: {57}·{01} = {57}, {57}·{83} = {c1}, {57}·{13} = {fe}.
    // So f(0x01) = 0x2a^0x57 = 0x7d, f(0x83) = 0x2a^0xc1 = 0xeb, f(0x13) = 0x2a^0xfe = 0xd4.
    const a = Uint8Array.from([0x7d, 0x01]);
    const b = Uint8Array.from([0xeb, 0x83]);
    const c = Uint8Array.from([0xd4, 0x13]);
    for (const pair of [[a, b], [b, a], [a, c], [b, c]]) {
      expect(hex(await combine(pair))).toBe('2a');
    }
  });

  it('combines hand-built threshold-3 shares of a known 8-byte secret, for every 3-subset', async () => {
    const secret = Buffer.from('OXIDE-TQ', 'ascii');
    // Fixed, arbitrary coefficients per byte: f_i(x) = s_i + c1_i x + c2_i x^2.
    const polys = [...secret].map((s, i) => [s, (0x31 * (i + 1)) & 0xff, (0xa7 + 13 * i) & 0xff || 1]);
    const xs = [1, 2, 7, 0x80, 0xc9, 0xff];
    const shares = xs.map((x) => handShare(polys, x));
    for (const subset of subsets(shares, 3)) {
      expect(Buffer.from(await combine(subset)).toString('ascii')).toBe('OXIDE-TQ');
    }
    // 4 or more points of a degree-2 polynomial still give the same value at 0.
    expect(Buffer.from(await combine(shares)).toString('ascii')).toBe('OXIDE-TQ');
    // Two points of a degree-2 polynomial do not.
    for (const pair of subsets(shares, 2)) {
      expect(Buffer.from(await combine(pair)).toString('ascii')).not.toBe('OXIDE-TQ');
    }
  });

  it("split() output is reconstructed by an independent interpolation (layout: y bytes, then x)", async () => {
    const secret = Uint8Array.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 5) & 0xff));
    const shares = await split(secret, 5, 3);
    expect(shares).toHaveLength(5);
    const xsSeen = new Set(shares.map((s) => s[32]));
    expect(xsSeen.size).toBe(5);
    expect(xsSeen.has(0)).toBe(false);
    for (const subset of subsets(shares, 3)) {
      expect(hex(independentCombine(subset))).toBe(hex(secret));
    }
  });
});

describe('createRackSecret', () => {
  it.each([
    [2, 2],
    [2, 5],
    [3, 5],
    [5, 8],
    [10, 12],
  ])('threshold %i of %i: every threshold subset rebuilds the secret, threshold-1 shares do not', async (t, n) => {
    const { secret, distributions } = await createRackSecret(t, n);
    expect(secret).toHaveLength(32);
    expect(distributions).toHaveLength(n);
    const shares = distributions.map(decodeShare);
    expect(new Set(shares.map(hex)).size).toBe(n);
    for (const d of distributions) {
      expect(d.threshold).toBe(t);
      expect(d.total_shares).toBe(n);
      expect(d.verifier.secret_digest).toBe(createHash('sha256').update(secret).digest('hex'));
      expect(d.verifier.share_digests).toEqual(distributions[0]!.verifier.share_digests);
    }
    const enough = n <= 8 ? subsets(shares, t) : [shares.slice(0, t), shares.slice(n - t)];
    for (const subset of enough) {
      expect(hex(await combine(subset))).toBe(hex(secret));
      expect(hex(await combineShares(distributions[0]!, subset))).toBe(hex(secret));
    }
    const tooFew = n <= 8 ? subsets(shares, t - 1) : [shares.slice(0, t - 1), shares.slice(1, t)];
    for (const subset of tooFew) {
      if (subset.length >= 2) expect(hex(await combine(subset))).not.toBe(hex(secret));
      await expectTQ(combineShares(distributions[0]!, subset), 'BELOW_THRESHOLD', `have ${t - 1} valid shares, need ${t}`);
    }
  });

  it('handles the maximum of 255 shares', async () => {
    const { secret, distributions } = await createRackSecret(3, 255, 16);
    const shares = distributions.map(decodeShare);
    expect(new Set(shares.map((s) => s[16])).size).toBe(255);
    expect(hex(await combineShares(distributions[100]!, [shares[254]!, shares[0]!, shares[77]!]))).toBe(hex(secret));
  });

  it.each([
    [1, 3, 32, 'threshold must be at least 2'],
    [0, 0, 32, 'threshold must be at least 2'],
    [4, 3, 32, 'total shares (3) must be at least the threshold (4)'],
    [2, 256, 32, 'total shares must be at most 255'],
    [2.5, 3, 32, 'threshold must be an integer'],
    [2, 3, 8, 'secretBytes must be an integer from 16'],
    [2, 3, 1.5, 'secretBytes must be an integer from 16'],
  ])('rejects threshold %s, total %s, secretBytes %s', async (t, n, b, msg) => {
    await expectTQ(createRackSecret(t, n, b), 'INVALID_ARGUMENT', msg);
  });
});

describe('verifyShare', () => {
  let dists: ShareDistribution[];
  beforeAll(async () => {
    dists = (await createRackSecret(3, 4)).distributions;
  });

  it('accepts every dealt share, from any holder', () => {
    for (const holder of dists) {
      for (const d of dists) expect(verifyShare(holder, decodeShare(d))).toBe(true);
    }
  });

  it('rejects a share with one flipped bit, in a y byte or in the x byte', () => {
    const share = decodeShare(dists[1]!);
    for (const pos of [0, 15, share.length - 1]) {
      const bad = Uint8Array.from(share);
      bad[pos] = bad[pos]! ^ 0x01;
      expect(verifyShare(dists[0]!, bad)).toBe(false);
    }
  });

  it("rejects another rack's share, an empty and a truncated share", async () => {
    const other = (await createRackSecret(3, 4)).distributions;
    expect(verifyShare(dists[0]!, decodeShare(other[0]!))).toBe(false);
    expect(verifyShare(dists[0]!, new Uint8Array(0))).toBe(false);
    expect(verifyShare(dists[0]!, decodeShare(dists[1]!).subarray(1))).toBe(false);
  });
});

describe('combineShares', () => {
  let secret: Uint8Array;
  let dists: ShareDistribution[];
  let shares: Uint8Array[];
  beforeAll(async () => {
    ({ secret, distributions: dists } = await createRackSecret(3, 5));
    shares = dists.map(decodeShare);
  });

  it('works with exactly the threshold', async () => {
    expect(hex(await combineShares(dists[0]!, [shares[4]!, shares[2]!, shares[0]!]))).toBe(hex(secret));
  });

  it('works with more than the threshold', async () => {
    expect(hex(await combineShares(dists[3]!, shares))).toBe(hex(secret));
  });

  it('accepts Buffers (which the library itself rejects)', async () => {
    const bufs = shares.slice(0, 3).map((s) => Buffer.from(s));
    await expect(combine(bufs)).rejects.toThrow();
    expect(hex(await combineShares(dists[0]!, bufs))).toBe(hex(secret));
  });

  it('counts a duplicated share once', async () => {
    await expectTQ(
      combineShares(dists[0]!, [shares[0]!, shares[1]!, Uint8Array.from(shares[1]!), shares[0]!]),
      'BELOW_THRESHOLD',
      'have 2 valid shares, need 3',
    );
    expect(hex(await combineShares(dists[0]!, [shares[0]!, shares[0]!, shares[1]!, shares[1]!, shares[2]!]))).toBe(
      hex(secret),
    );
  });

  it('ignores a forged share, even one placed first and reusing a real x-coordinate', async () => {
    const forged = Uint8Array.from(shares[3]!);
    forged[0] = forged[0]! ^ 0xff; // same x as share 3, different y
    const random = Uint8Array.from(shares[2]!).fill(0x42);
    expect(hex(await combineShares(dists[0]!, [forged, random, shares[0]!, shares[1]!, shares[2]!]))).toBe(hex(secret));
    await expectTQ(
      combineShares(dists[0]!, [forged, shares[0]!, shares[1]!]),
      'BELOW_THRESHOLD',
      'have 2 valid shares, need 3',
      '1 invalid share ignored',
    );
  });

  it('says how many shares it has and needs when below the threshold', async () => {
    await expectTQ(combineShares(dists[0]!, []), 'BELOW_THRESHOLD', 'have 0 valid shares, need 3');
    await expectTQ(combineShares(dists[0]!, [shares[0]!]), 'BELOW_THRESHOLD', 'have 1 valid shares, need 3');
  });

  it('refuses a result that does not match the secret digest', async () => {
    const lying: ShareDistribution = {
      ...dists[0]!,
      verifier: { ...dists[0]!.verifier, secret_digest: 'ab'.repeat(32) },
    };
    await expectTQ(combineShares(lying, shares.slice(0, 3)), 'VERIFY_FAILED', 'does not match the verifier');
  });
});

describe('share files', () => {
  let dir: string;
  let dists: ShareDistribution[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tq-test-'));
    dists = (await createRackSecret(3, 4)).distributions;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes mode 0600, leaves no temp file, and reads back the same distribution', async () => {
    const path = join(dir, 'fresh.json');
    await writeShareFile(path, dists[2]!);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.includes('fresh'))).toEqual(['fresh.json']);
    expect(await readShareFile(path)).toEqual(dists[2]);
  });

  it('overwrites an existing 0644 file and leaves it 0600', async () => {
    const path = join(dir, 'loose.json');
    await writeFile(path, 'old contents');
    await chmod(path, 0o644);
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    await writeShareFile(path, dists[1]!);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readShareFile(path)).toEqual(dists[1]);
  });

  it('fails when the directory sync fails (EIO), and not where directories cannot be synced (EINVAL)', async () => {
    const path = join(dir, 'unsynced.json');
    const syncs = await spyOnDirSyncs();
    try {
      // Renamed into place, but maybe not on disk: the caller must not be told it is written.
      syncs.fail = 'EIO';
      await expect(writeShareFile(path, dists[3]!)).rejects.toMatchObject({ code: 'EIO' });
      syncs.fail = 'EINVAL';
      await writeShareFile(path, dists[3]!);
    } finally {
      vi.restoreAllMocks();
    }
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readShareFile(path)).toEqual(dists[3]);
  });

  it('refuses to write an inconsistent distribution', async () => {
    const path = join(dir, 'never.json');
    await expectTQ(writeShareFile(path, { ...dists[0]!, share: dists[0]!.share.slice(4) }), 'INVALID_ARGUMENT', path);
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it.each([0o644, 0o640, 0o604, 0o660])('refuses a file with mode %o and says to chmod 600', async (mode) => {
    const path = join(dir, `mode-${mode.toString(8)}.json`);
    await writeShareFile(path, dists[0]!);
    await chmod(path, mode);
    await expectTQ(readShareFile(path), 'BAD_PERMISSIONS', path, `chmod 600 ${path}`, mode.toString(8));
  });

  it('reports a missing file as NOT_FOUND', async () => {
    const path = join(dir, 'missing.json');
    await expectTQ(readShareFile(path), 'NOT_FOUND', path);
  });

  async function writeRaw(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text, { mode: 0o600 });
    await chmod(path, 0o600);
    return path;
  }

  it('refuses truncated JSON, naming the file', async () => {
    await writeShareFile(join(dir, 'good.json'), dists[0]!);
    const good = await readFile(join(dir, 'good.json'), 'utf8');
    const path = await writeRaw('truncated.json', good.slice(0, good.length / 2));
    await expectTQ(readShareFile(path), 'BAD_FILE', path, 'not valid JSON');
  });

  const cases: Array<[string, (d: Record<string, unknown>) => unknown, string]> = [
    ['threshold as a string', (d) => ({ ...d, threshold: '3' }), '"threshold" must be an integer'],
    ['total_shares as a float', (d) => ({ ...d, total_shares: 4.5 }), '"total_shares" must be an integer'],
    ['threshold above total', (d) => ({ ...d, threshold: 5 }), 'must be at least the threshold'],
    ['share as a number', (d) => ({ ...d, share: 12 }), '"share" must be a base64 string'],
    ['share not base64', (d) => ({ ...d, share: 'not base64!' }), '"share" is not valid base64'],
    ['verifier as a string', (d) => ({ ...d, verifier: 'x' }), '"verifier" must be an object'],
    [
      'share_digests as an object',
      (d) => ({ ...d, verifier: { ...(d.verifier as object), share_digests: {} } }),
      '"verifier.share_digests" must be an array',
    ],
    [
      'share_digests too short',
      (d) => ({ ...d, verifier: { ...(d.verifier as object), share_digests: ['00'.repeat(32)] } }),
      'has 1 entries but "total_shares" is 4',
    ],
    [
      'secret_digest not hex',
      (d) => ({ ...d, verifier: { ...(d.verifier as object), secret_digest: 'zz' } }),
      '"verifier.secret_digest" must be 64 lowercase hex digits',
    ],
    ['missing share', ({ share: _s, ...rest }) => rest, 'missing field "share"'],
    ['an array', () => [], 'expected a JSON object'],
  ];
  it.each(cases)('refuses %s', async (_name, mutate, msg) => {
    const path = await writeRaw('bad.json', JSON.stringify(mutate({ ...dists[0]! } as unknown as Record<string, unknown>)));
    await expectTQ(readShareFile(path), 'BAD_FILE', path, msg);
  });

  it("refuses a share that is not in the file's own verifier", async () => {
    const other = (await createRackSecret(3, 4)).distributions[0]!;
    const path = await writeRaw('mixed.json', JSON.stringify({ ...dists[0]!, share: other.share }));
    await expectTQ(readShareFile(path), 'BAD_FILE', path, 'does not match any digest');
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP: real node:http servers on loopback standing in for peers' bootstrap agents.
// ---------------------------------------------------------------------------------------------

type Mode = 'share' | 'garbage' | 'hang';
interface Peer {
  server: Server;
  address: string;
  requests: Array<{ method: string; contentType: string | undefined; body: string }>;
}
const servers: Server[] = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * A peer that answers GET /request_share only when the request is a GET with content-type
 * application/json and a JSON body whose identity is one of `allowed`; otherwise it answers
 * the contract's error envelope with 400 or 403.
 */
async function startPeer(
  share: Uint8Array,
  allowed: Uint8Array[],
  opts: { mode?: Mode; delayMs?: number; host?: string } = {},
): Promise<Peer> {
  const requests: Peer['requests'] = [];
  let n = 0;
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      requests.push({ method: req.method ?? '', contentType: req.headers['content-type'], body });
      const requestId = `req-${++n}`;
      if (opts.mode === 'hang') return;
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      if (req.method !== 'GET' || req.url !== '/request_share') {
        return sendJson(res, 400, { request_id: requestId, error_code: 'BadRequest', message: `unexpected ${req.method} ${req.url}` });
      }
      if (req.headers['content-type'] !== 'application/json') {
        return sendJson(res, 400, { request_id: requestId, error_code: 'BadRequest', message: 'content-type' });
      }
      let identity: unknown;
      try {
        identity = (JSON.parse(body) as { identity?: unknown }).identity;
      } catch {
        return sendJson(res, 400, { request_id: requestId, error_code: 'BadRequest', message: 'body is not JSON' });
      }
      if (!allowed.some((a) => JSON.stringify(Array.from(a)) === JSON.stringify(identity))) {
        return sendJson(res, 403, {
          request_id: requestId,
          error_code: 'Forbidden',
          message: 'identity is not a configured peer',
        });
      }
      if (opts.mode === 'garbage') return sendJson(res, 200, { shared_secret: 'nope' });
      sendJson(res, 200, { shared_secret: Array.from(share) });
    })();
  });
  servers.push(server);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, requests };
}

/** An address where nothing listens: a port that was just bound and released. */
async function closedAddress(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

const ME = new TextEncoder().encode('sled-0');
const STRANGER = new TextEncoder().encode('mallory');

describe('fetchShare', () => {
  it('sends a GET with a JSON identity body and returns the share', async () => {
    const share = Uint8Array.from([1, 2, 3, 250, 7]);
    const peer = await startPeer(share, [ME]);
    expect(Array.from(await fetchShare(peer.address, ME, 2000))).toEqual([1, 2, 3, 250, 7]);
    expect(peer.requests).toHaveLength(1);
    expect(peer.requests[0]!.method).toBe('GET');
    expect(peer.requests[0]!.contentType).toBe('application/json');
    expect(JSON.parse(peer.requests[0]!.body)).toEqual({ identity: Array.from(ME) });
  });

  it('reports a 403 with its status and the server message', async () => {
    const peer = await startPeer(Uint8Array.from([1, 2]), [ME]);
    const err = await expectTQ(fetchShare(peer.address, STRANGER, 2000), 'PEER_ERROR', 'HTTP 403', 'identity is not a configured peer', peer.address);
    expect(err.status).toBe(403);
  });

  it('reports a closed port as unreachable', async () => {
    const addr = await closedAddress();
    await expectTQ(fetchShare(addr, ME, 2000), 'PEER_UNREACHABLE', addr, 'ECONNREFUSED');
  });

  it('times out on a peer that never answers', async () => {
    const peer = await startPeer(Uint8Array.from([1, 2]), [ME], { mode: 'hang' });
    const t0 = Date.now();
    await expectTQ(fetchShare(peer.address, ME, 300), 'PEER_TIMEOUT', peer.address, '300 ms');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('rejects a 200 without a byte-array shared_secret', async () => {
    const peer = await startPeer(Uint8Array.from([1, 2]), [ME], { mode: 'garbage' });
    await expectTQ(fetchShare(peer.address, ME, 2000), 'PEER_BAD_RESPONSE', 'shared_secret');
  });

  it('talks to an IPv6 peer given as [v6]:port', async (ctx) => {
    let peer: Peer;
    try {
      peer = await startPeer(Uint8Array.from([9, 8, 7]), [ME], { host: '::1' });
    } catch {
      ctx.skip(); // no IPv6 loopback on this host
      return;
    }
    expect(peer.address).toMatch(/^\[::1\]:\d+$/);
    expect(Array.from(await fetchShare(peer.address, ME, 2000))).toEqual([9, 8, 7]);
  });

  it.each(['localhost:80', '127.0.0.1', '::1:80', '[127.0.0.1]:80', '127.0.0.1:0', '127.0.0.1:70000', '[::1]'])(
    'rejects the address %s',
    async (addr) => {
      await expectTQ(fetchShare(addr, ME, 100), 'BAD_ADDRESS', JSON.stringify(addr));
    },
  );
});

describe('request_share wire helpers (for the server side)', () => {
  it('round-trips with what fetchShare sends and expects', () => {
    expect(parseShareRequest({ identity: [0, 255, 7] })).toEqual(Uint8Array.from([0, 255, 7]));
    expect(shareResponseBody(Uint8Array.from([3, 4]))).toEqual({ shared_secret: [3, 4] });
  });
  it.each([[undefined], [null], [{}], [{ identity: 'abc' }], [{ identity: [256] }], [{ identity: [-1] }], [{ identity: [1.5] }]])(
    'rejects %j',
    (body) => {
      expect(() => parseShareRequest(body)).toThrow(TrustQuorumError);
    },
  );
});

describe('establishQuorum', () => {
  let secret: Uint8Array;
  let dists: ShareDistribution[];
  let shares: Uint8Array[];
  beforeAll(async () => {
    ({ secret, distributions: dists } = await createRackSecret(3, 5));
    shares = dists.map(decodeShare);
  });

  it('reaches quorum with every peer up', async () => {
    const peers = await Promise.all([1, 2, 3, 4].map((i) => startPeer(shares[i]!, [ME])));
    const r = await establishQuorum(dists[0]!, shares[0]!, peers.map((p) => p.address), ME, { timeoutMs: 2000 });
    expect(hex(r.secret)).toBe(hex(secret));
    expect(r.used).toEqual(peers.map((p) => p.address));
    expect(r.failed).toEqual([]);
  });

  it('reaches quorum with some peers down, and says which and why', async () => {
    const up1 = await startPeer(shares[1]!, [ME]);
    const up2 = await startPeer(shares[2]!, [ME]);
    const refusing = await startPeer(shares[3]!, [STRANGER]);
    const down = await closedAddress();
    const peers = [down, up1.address, refusing.address, up2.address];
    const r = await establishQuorum(dists[0]!, shares[0]!, peers, ME, { timeoutMs: 2000 });
    expect(hex(r.secret)).toBe(hex(secret));
    expect(r.used).toEqual([up1.address, up2.address]);
    expect(r.failed.map((f) => [f.peer, f.error.code])).toEqual([
      [down, 'PEER_UNREACHABLE'],
      [refusing.address, 'PEER_ERROR'],
    ]);
  });

  it('fails with BELOW_THRESHOLD listing the failures when too many peers are down', async () => {
    const up = await startPeer(shares[1]!, [ME]);
    const refusing = await startPeer(shares[2]!, [STRANGER]);
    const hanging = await startPeer(shares[3]!, [ME], { mode: 'hang' });
    const down = await closedAddress();
    const peers = [up.address, refusing.address, hanging.address, down];
    const err = await expectTQ(
      establishQuorum(dists[0]!, shares[0]!, peers, ME, { timeoutMs: 300 }),
      'BELOW_THRESHOLD',
      'have 2 valid shares, need 3',
      `${refusing.address} answered HTTP 403`,
      `${hanging.address} did not answer`,
      `${down} unreachable`,
    );
    expect(err.message).not.toContain(`${up.address} `);
    expect(err.failed?.map((f) => f.peer)).toEqual([refusing.address, hanging.address, down]);
  });

  it('does not count forged shares or a peer echoing an already-held share', async () => {
    const forged = Uint8Array.from(shares[1]!);
    forged[3] = forged[3]! ^ 0x10;
    const liar = await startPeer(forged, [ME]);
    const echo = await startPeer(shares[0]!, [ME]); // returns our own share
    const good = await startPeer(shares[2]!, [ME]);
    const err = await expectTQ(
      establishQuorum(dists[0]!, shares[0]!, [liar.address, echo.address, good.address], ME, { timeoutMs: 2000 }),
      'BELOW_THRESHOLD',
      'have 2 valid shares, need 3',
      'not one of the dealt shares',
      'same share as our own share',
    );
    expect(err.failed?.map((f) => [f.peer, f.error.code])).toEqual([
      [liar.address, 'BAD_SHARE'],
      [echo.address, 'BAD_SHARE'],
    ]);
    const other = await startPeer(shares[4]!, [ME]);
    const r = await establishQuorum(dists[0]!, shares[0]!, [liar.address, echo.address, good.address, other.address], ME, {
      timeoutMs: 2000,
    });
    expect(hex(r.secret)).toBe(hex(secret));
    expect(r.used).toEqual([good.address, other.address]);
  });

  it('asks the peers concurrently', async () => {
    const peers = await Promise.all([1, 2, 3].map((i) => startPeer(shares[i]!, [ME], { delayMs: 400 })));
    const t0 = Date.now();
    const r = await establishQuorum(dists[0]!, shares[0]!, peers.map((p) => p.address), ME, { timeoutMs: 3000 });
    expect(Date.now() - t0).toBeLessThan(1000); // sequential would take >= 1200 ms
    expect(r.used).toHaveLength(3);
  });

  it('refuses an own share that is not in the verifier', async () => {
    const other = (await createRackSecret(3, 5)).distributions[0]!;
    await expectTQ(establishQuorum(dists[0]!, decodeShare(other), [], ME), 'BAD_SHARE', 'own share');
  });
});
