/**
 * Trust quorum: a rack secret split with Shamir secret sharing, one share per sled.
 *
 * The original omicron bootstrap agent (reference §13) split a rack secret with vsss-rs, stored each
 * sled's `ShareDistribution {threshold, total_shares, verifier, share}` in `share.json`, and fetched
 * shares from peers to rebuild the secret. This module does the same for real, with the audited
 * `shamir-secret-sharing` package (GF(2^8), AES polynomial x^8 + x^4 + x^3 + x + 1; a share is the
 * secret's length of y-bytes followed by one x-coordinate byte, x in 1..255).
 *
 * ## The verifier, and the threat model without a hardware root of trust
 *
 * Plain Shamir has no integrity: combining a forged or corrupted share silently yields a wrong
 * secret. Every share file therefore carries a `Verifier` written by the dealer:
 *   - `share_digests`: SHA-256 (hex) of every dealt share, in dealing order. A holder accepts a share
 *     from a peer only if its digest is in this list, so a peer cannot inject a share of its own
 *     making, and a damaged share is dropped instead of poisoning the result. Digests reveal
 *     nothing useful: each share has as many uniformly random bytes as the secret.
 *   - `secret_digest`: SHA-256 (hex) of the secret. After combining, the result is checked against
 *     it, so a wrong secret is never returned. The secret is random and at least 16 bytes (32 by
 *     default), so the digest cannot be brute-forced.
 * The dealer is trusted (the verifier is not a commitment a peer could check against a dishonest
 * dealer; vsss-rs's Feldman verifier is, but that only matters with an untrusted dealer).
 *
 * What this does NOT protect against, because there is no RoT to anchor anything:
 *   - Identity is a claim. `request_share` gives the share to anyone presenting an identity in the
 *     configured peer list; nothing proves the requester owns it (the original meant to use an
 *     RoT-signed identity and SPDM). Anyone who can reach the bootstrap port and knows a peer's
 *     identity can collect shares, and with `threshold` of them, the secret.
 *   - Shares travel in clear over plain HTTP; an on-path attacker sees them.
 *   - A share file at rest is protected only by its mode 0600 and the host's root account. Whoever
 *     reads `threshold` share files (for example disk images or backups of several sleds) has the
 *     secret; a single file gives nothing.
 *   - Anyone who can write the local share file can replace the verifier too; the verifier only
 *     protects against peers and the network, not against the local host.
 *   - A peer can withhold its share (availability), and an on-path attacker can drop requests.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, open, rename, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { combine, split } from 'shamir-secret-sharing';
import { request, type Dispatcher } from 'undici';
import { fsyncDir } from '../common/persist.js';

export type TrustQuorumErrorCode =
  /** Bad arguments to createRackSecret and friends. */
  | 'INVALID_ARGUMENT'
  /** Fewer distinct valid shares than the threshold. */
  | 'BELOW_THRESHOLD'
  /** A share that is not one of the dealt shares. */
  | 'BAD_SHARE'
  /** The combined secret does not match the verifier's digest. */
  | 'VERIFY_FAILED'
  /** The share file does not exist. */
  | 'NOT_FOUND'
  /** The share file is malformed or inconsistent. */
  | 'BAD_FILE'
  /** The share file is readable or writable by group or others. */
  | 'BAD_PERMISSIONS'
  /** A malformed `request_share` request body (server side). */
  | 'BAD_REQUEST'
  /** A peer address that is not "ip:port" or "[v6]:port". */
  | 'BAD_ADDRESS'
  /** The peer answered with a non-2xx status. */
  | 'PEER_ERROR'
  /** The peer answered 2xx with a body that is not a ShareResponse. */
  | 'PEER_BAD_RESPONSE'
  /** The peer could not be reached (connection refused, reset, ...). */
  | 'PEER_UNREACHABLE'
  /** The peer did not answer in time. */
  | 'PEER_TIMEOUT';

export class TrustQuorumError extends Error {
  override name = 'TrustQuorumError';
  readonly code: TrustQuorumErrorCode;
  /** HTTP status, for PEER_ERROR. */
  readonly status: number | undefined;
  /** The peers that failed, for BELOW_THRESHOLD from establishQuorum. */
  readonly failed: PeerFailure[] | undefined;

  constructor(
    code: TrustQuorumErrorCode,
    message: string,
    opts: { cause?: unknown; status?: number; failed?: PeerFailure[] } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = opts.status;
    this.failed = opts.failed;
  }
}

export interface Verifier {
  /** Always 'sha256' for now; lets a later format change be detected. */
  algorithm: 'sha256';
  /** SHA-256 of the rack secret, lowercase hex. */
  secret_digest: string;
  /** SHA-256 of every dealt share (y-bytes then x byte), lowercase hex, in dealing order. */
  share_digests: string[];
}

/** What `share.json` holds: this sled's share plus what it needs to check peers' shares. */
export interface ShareDistribution {
  threshold: number;
  total_shares: number;
  verifier: Verifier;
  /** This sled's share, standard base64. */
  share: string;
}

export const MIN_SECRET_BYTES = 16;
export const MAX_SECRET_BYTES = 1024;
/** The library's limit: x-coordinates are the non-zero bytes. */
export const MAX_SHARES = 255;

const HEX64 = /^[0-9a-f]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A plain Uint8Array copy: the library rejects Buffers (it checks `constructor === Uint8Array`). */
function plain(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `a string (${JSON.stringify(v.slice(0, 40))})` : `a ${typeof v}`;
}

function validateCounts(threshold: unknown, total: unknown): string | undefined {
  if (!isInt(threshold)) return `threshold must be an integer, got ${describe(threshold)}`;
  if (!isInt(total)) return `total shares must be an integer, got ${describe(total)}`;
  if (threshold < 2) return `threshold must be at least 2, got ${threshold}`;
  if (total < threshold) return `total shares (${total}) must be at least the threshold (${threshold})`;
  if (total > MAX_SHARES) return `total shares must be at most ${MAX_SHARES}, got ${total}`;
  return undefined;
}

/**
 * Makes a random rack secret of `secretBytes` bytes and deals `total` shares, any `threshold` of
 * which rebuild it. `distributions[i]` is what sled i stores with writeShareFile.
 */
export async function createRackSecret(
  threshold: number,
  total: number,
  secretBytes = 32,
): Promise<{ secret: Uint8Array; distributions: ShareDistribution[] }> {
  const problem = validateCounts(threshold, total);
  if (problem !== undefined) {
    throw new TrustQuorumError('INVALID_ARGUMENT', `createRackSecret: ${problem} (need 2 <= threshold <= total <= ${MAX_SHARES})`);
  }
  if (!isInt(secretBytes) || secretBytes < MIN_SECRET_BYTES || secretBytes > MAX_SECRET_BYTES) {
    throw new TrustQuorumError(
      'INVALID_ARGUMENT',
      `createRackSecret: secretBytes must be an integer from ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES}, got ${String(secretBytes)}`,
    );
  }
  const secret = plain(randomBytes(secretBytes));
  const shares = await split(secret, total, threshold);
  const verifier: Verifier = {
    algorithm: 'sha256',
    secret_digest: sha256Hex(secret),
    share_digests: shares.map(sha256Hex),
  };
  const distributions = shares.map((share) => ({
    threshold,
    total_shares: total,
    verifier: { ...verifier, share_digests: [...verifier.share_digests] },
    share: Buffer.from(share).toString('base64'),
  }));
  return { secret, distributions };
}

/** This sled's own share, decoded. */
export function decodeShare(dist: ShareDistribution): Uint8Array {
  return plain(Buffer.from(dist.share, 'base64'));
}

/** True when `share` is one of the shares the dealer dealt (its SHA-256 is in the verifier). */
export function verifyShare(dist: ShareDistribution, share: Uint8Array): boolean {
  if (!(share instanceof Uint8Array) || share.byteLength < 2) return false;
  const digest = sha256Hex(share);
  return dist.verifier.share_digests.includes(digest);
}

/**
 * Rebuilds the rack secret. Shares that are not dealt shares are dropped, and a share given twice
 * counts once. Throws BELOW_THRESHOLD ("have N valid shares, need T") when fewer than the threshold
 * remain, and VERIFY_FAILED if the result does not match the verifier's secret digest.
 */
export async function combineShares(dist: ShareDistribution, shares: Uint8Array[]): Promise<Uint8Array> {
  const byDigest = new Map<string, Uint8Array>();
  let invalid = 0;
  for (const share of shares) {
    if (!verifyShare(dist, share)) {
      invalid += 1;
      continue;
    }
    const digest = sha256Hex(share);
    if (!byDigest.has(digest)) byDigest.set(digest, plain(share));
  }
  const valid = [...byDigest.values()];
  if (valid.length < dist.threshold) {
    const dropped = invalid > 0 ? ` (${invalid} invalid share${invalid === 1 ? '' : 's'} ignored)` : '';
    throw new TrustQuorumError(
      'BELOW_THRESHOLD',
      `cannot rebuild the rack secret: have ${valid.length} valid shares, need ${dist.threshold}${dropped}`,
    );
  }
  // Exactly `threshold` points determine the polynomial; more would only cost time.
  const secret = await combine(valid.slice(0, dist.threshold));
  const expected = Buffer.from(dist.verifier.secret_digest, 'hex');
  const actual = createHash('sha256').update(secret).digest();
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw new TrustQuorumError(
      'VERIFY_FAILED',
      'the combined rack secret does not match the verifier (share file inconsistent with its verifier?)',
    );
  }
  return secret;
}

/** Checks a parsed share file; returns a problem description or undefined. */
function validateDistribution(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `expected a JSON object, got ${describe(value)}`;
  }
  const v = value as Record<string, unknown>;
  for (const key of ['threshold', 'total_shares', 'verifier', 'share']) {
    if (!(key in v)) return `missing field "${key}"`;
  }
  if (!isInt(v.threshold)) return `"threshold" must be an integer, got ${describe(v.threshold)}`;
  if (!isInt(v.total_shares)) return `"total_shares" must be an integer, got ${describe(v.total_shares)}`;
  const counts = validateCounts(v.threshold, v.total_shares);
  if (counts !== undefined) return counts;
  const ver = v.verifier;
  if (typeof ver !== 'object' || ver === null || Array.isArray(ver)) {
    return `"verifier" must be an object, got ${describe(ver)}`;
  }
  const vv = ver as Record<string, unknown>;
  if (vv.algorithm !== 'sha256') return `"verifier.algorithm" must be "sha256", got ${describe(vv.algorithm)}`;
  if (typeof vv.secret_digest !== 'string' || !HEX64.test(vv.secret_digest)) {
    return `"verifier.secret_digest" must be 64 lowercase hex digits, got ${describe(vv.secret_digest)}`;
  }
  const digests = vv.share_digests;
  if (!Array.isArray(digests)) return `"verifier.share_digests" must be an array, got ${describe(digests)}`;
  if (digests.length !== v.total_shares) {
    return `"verifier.share_digests" has ${digests.length} entries but "total_shares" is ${v.total_shares}`;
  }
  for (const [i, d] of digests.entries()) {
    if (typeof d !== 'string' || !HEX64.test(d)) {
      return `"verifier.share_digests[${i}]" must be 64 lowercase hex digits, got ${describe(d)}`;
    }
  }
  if (new Set(digests).size !== digests.length) return '"verifier.share_digests" has duplicate entries';
  if (typeof v.share !== 'string') return `"share" must be a base64 string, got ${describe(v.share)}`;
  if (!BASE64.test(v.share)) return '"share" is not valid base64';
  const share = Buffer.from(v.share, 'base64');
  if (share.length < 2) return `"share" decodes to ${share.length} bytes; a share has at least 2`;
  if (share[share.length - 1] === 0) return '"share" has x-coordinate 0, which is never dealt';
  if (!(digests as string[]).includes(sha256Hex(share))) {
    return '"share" does not match any digest in "verifier.share_digests"';
  }
  return undefined;
}

/**
 * Writes a share file atomically: a temporary file in the same directory, created with mode 0600,
 * written and fsynced, renamed over `path`, then chmod 0600 and the directory fsynced. Rejects when
 * that sync fails (EIO): the file is in place, but whether it survives a power loss is unknown.
 */
export async function writeShareFile(path: string, dist: ShareDistribution): Promise<void> {
  const problem = validateDistribution(dist);
  if (problem !== undefined) {
    throw new TrustQuorumError('INVALID_ARGUMENT', `refusing to write share file ${path}: ${problem}`);
  }
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const data = JSON.stringify(
    { threshold: dist.threshold, total_shares: dist.total_shares, verifier: dist.verifier, share: dist.share },
    null,
    2,
  ) + '\n';
  const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    try {
      await fh.chmod(0o600); // in case the mode given to open was widened somehow; umask only narrows
      await fh.writeFile(data, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await chmod(path, 0o600);
  await fsyncDir(dir);
}

/**
 * Reads and validates a share file. Refuses a file readable or writable by group or others
 * (BAD_PERMISSIONS), a missing file (NOT_FOUND) and a malformed one (BAD_FILE); every message
 * names the file.
 */
export async function readShareFile(path: string): Promise<ShareDistribution> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TrustQuorumError('NOT_FOUND', `share file ${path} does not exist`, { cause: err });
    }
    throw err;
  }
  let text: string;
  try {
    const st = await fh.stat(); // fstat of the opened file: no window between check and read
    if (!st.isFile()) throw new TrustQuorumError('BAD_FILE', `share file ${path} is not a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new TrustQuorumError(
        'BAD_PERMISSIONS',
        `share file ${path} has mode ${mode.toString(8).padStart(4, '0')}, which group or others can access; ` +
          `it holds a rack secret share: run "chmod 600 ${path}"`,
      );
    }
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TrustQuorumError('BAD_FILE', `share file ${path} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const problem = validateDistribution(parsed);
  if (problem !== undefined) throw new TrustQuorumError('BAD_FILE', `share file ${path}: ${problem}`);
  const p = parsed as ShareDistribution;
  return {
    threshold: p.threshold,
    total_shares: p.total_shares,
    verifier: {
      algorithm: 'sha256',
      secret_digest: p.verifier.secret_digest,
      share_digests: [...p.verifier.share_digests],
    },
    share: p.share,
  };
}

// --- wire format of GET /request_share (contract: ShareRequest / ShareResponse) ---

function toByteArray(value: unknown): Uint8Array | undefined {
  if (!Array.isArray(value)) return undefined;
  const out = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const b: unknown = value[i];
    if (!isInt(b) || b < 0 || b > 255) return undefined;
    out[i] = b;
  }
  return out;
}

/** Server side: the identity from a `request_share` body `{"identity": [bytes...]}`. */
export function parseShareRequest(body: unknown): Uint8Array {
  const identity =
    typeof body === 'object' && body !== null ? toByteArray((body as Record<string, unknown>).identity) : undefined;
  if (identity === undefined) {
    throw new TrustQuorumError('BAD_REQUEST', 'request body must be {"identity": [integers 0..255]}');
  }
  return identity;
}

/** Server side: the 200 body `{"shared_secret": [bytes...]}` for this sled's share. */
export function shareResponseBody(share: Uint8Array): { shared_secret: number[] } {
  return { shared_secret: Array.from(share) };
}

/** Parses "ip:port" or "[v6]:port"; returns the URL authority to use. */
function peerAuthority(address: string): string {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  const family = host === undefined ? 0 : isIP(host);
  if (m === null || host === undefined || family === 0 || (m[1] !== undefined) !== (family === 6) || port < 1 || port > 65535) {
    throw new TrustQuorumError('BAD_ADDRESS', `peer address ${JSON.stringify(address)} is not "ip:port" or "[ipv6]:port"`);
  }
  return family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Largest response body read from a peer; a share is a few dozen bytes. */
const MAX_RESPONSE_BYTES = 64 * 1024;

async function readCapped(body: Dispatcher.ResponseData['body'], address: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > MAX_RESPONSE_BYTES) {
      body.destroy();
      throw new TrustQuorumError('PEER_BAD_RESPONSE', `peer ${address}: response larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface FetchShareOptions {
  /** undici dispatcher (for tests or a dedicated agent); the global one by default. */
  dispatcher?: Dispatcher;
}

/**
 * Asks a peer's bootstrap agent for its share: `GET http://ADDRESS/request_share` with the JSON
 * body `{"identity": [...]}`, expecting 200 `{"shared_secret": [...]}`. The share is returned as
 * received; check it with verifyShare (combineShares and establishQuorum do).
 */
export async function fetchShare(
  address: string,
  identity: Uint8Array,
  timeoutMs: number,
  opts: FetchShareOptions = {},
): Promise<Uint8Array> {
  const authority = peerAuthority(address);
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(`http://${authority}/request_share`, {
      method: 'GET',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ identity: Array.from(identity) }),
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(opts.dispatcher === undefined ? {} : { dispatcher: opts.dispatcher }),
    });
    const text = await readCapped(res.body, address);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      const msg =
        typeof json === 'object' && json !== null && typeof (json as Record<string, unknown>).message === 'string'
          ? ((json as Record<string, unknown>).message as string)
          : text.slice(0, 200) || '(empty body)';
      throw new TrustQuorumError('PEER_ERROR', `peer ${address} answered HTTP ${res.statusCode}: ${msg}`, {
        status: res.statusCode,
      });
    }
    const share =
      typeof json === 'object' && json !== null ? toByteArray((json as Record<string, unknown>).shared_secret) : undefined;
    if (share === undefined) {
      throw new TrustQuorumError(
        'PEER_BAD_RESPONSE',
        `peer ${address} answered HTTP ${res.statusCode} without a {"shared_secret": [bytes]} body`,
      );
    }
    return share;
  } catch (err) {
    if (err instanceof TrustQuorumError) throw err;
    const e = err as { name?: string; code?: string; message?: string };
    if (signal.aborted || e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
      throw new TrustQuorumError('PEER_TIMEOUT', `peer ${address} did not answer within ${timeoutMs} ms`, { cause: err });
    }
    const causeCode = (err as { cause?: { code?: string } }).cause?.code;
    const detail = causeCode ?? e.code ?? e.message ?? String(err);
    throw new TrustQuorumError('PEER_UNREACHABLE', `peer ${address} unreachable: ${detail}`, { cause: err });
  }
}

export interface PeerFailure {
  peer: string;
  error: TrustQuorumError;
}

export interface EstablishQuorumOptions extends FetchShareOptions {
  /** Per-peer timeout; default 5000 ms. */
  timeoutMs?: number;
}

export interface QuorumResult {
  secret: Uint8Array;
  /** Peers whose shares were valid and distinct (the own share is not listed). */
  used: string[];
  /** Peers that failed, and why (unreachable, HTTP error, invalid or duplicate share). */
  failed: PeerFailure[];
}

/**
 * Fetches shares from every peer concurrently, keeps the valid, distinct ones, and combines them
 * with this sled's own share. Logs nothing: the caller gets `used` and `failed`. Throws
 * BELOW_THRESHOLD (with `failed` on the error and in its message) when there are too few. Retrying
 * until enough peers are up, as the original did, is the caller's choice.
 */
export async function establishQuorum(
  dist: ShareDistribution,
  ownShare: Uint8Array,
  peers: string[],
  identity: Uint8Array,
  opts: EstablishQuorumOptions = {},
): Promise<QuorumResult> {
  if (!verifyShare(dist, ownShare)) {
    throw new TrustQuorumError('BAD_SHARE', 'our own share does not match the verifier in the share file');
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  const fetchOpts: FetchShareOptions = opts.dispatcher === undefined ? {} : { dispatcher: opts.dispatcher };
  const results = await Promise.allSettled(peers.map((peer) => fetchShare(peer, identity, timeoutMs, fetchOpts)));

  const seen = new Map<string, string>([[sha256Hex(ownShare), 'our own share']]);
  const shares: Uint8Array[] = [ownShare];
  const used: string[] = [];
  const failed: PeerFailure[] = [];
  results.forEach((r, i) => {
    const peer = peers[i] as string;
    if (r.status === 'rejected') {
      const err =
        r.reason instanceof TrustQuorumError
          ? r.reason
          : new TrustQuorumError('PEER_UNREACHABLE', `peer ${peer}: ${String(r.reason)}`, { cause: r.reason });
      failed.push({ peer, error: err });
      return;
    }
    const share = r.value;
    if (!verifyShare(dist, share)) {
      failed.push({ peer, error: new TrustQuorumError('BAD_SHARE', `peer ${peer} sent a share that is not one of the dealt shares`) });
      return;
    }
    const digest = sha256Hex(share);
    const dup = seen.get(digest);
    if (dup !== undefined) {
      failed.push({ peer, error: new TrustQuorumError('BAD_SHARE', `peer ${peer} sent the same share as ${dup}`) });
      return;
    }
    seen.set(digest, `peer ${peer}`);
    shares.push(share);
    used.push(peer);
  });

  if (shares.length < dist.threshold) {
    const why = failed.length === 0 ? 'no failures' : failed.map((f) => f.error.message).join('; ');
    throw new TrustQuorumError(
      'BELOW_THRESHOLD',
      `trust quorum not reached: have ${shares.length} valid shares, need ${dist.threshold} ` +
        `(own share + ${used.length} of ${peers.length} peers); ${why}`,
      { failed },
    );
  }
  const secret = await combineShares(dist, shares);
  return { secret, used, failed };
}
