// Update artifacts (omicron sled-agent/src/updates.rs): fetch one from Nexus and store it under
// the artifact directory, atomically. Fixed on purpose against the original: the name is checked
// before it becomes a path, a non-2xx answer is an error rather than an artifact, and a partial
// download never replaces a good file.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { invalidRequest, objectNotFound, serviceUnavailable } from './common/errors.js';
import { fsyncDir, mkdirDurable } from './common/persist.js';
import { unencodableText } from './common/unicode.js';
import { NexusError, type NexusClient } from './nexus-client.js';
import type { UpdateArtifact } from './params.js';

/** Longest file name most filesystems (ZFS, ext4, APFS) accept. */
const MAX_NAME_BYTES = 255;

/** Throws a 400 unless `name` is a plain file name that stays inside the artifact directory. */
export function checkArtifactName(name: string): void {
  // Before the byte count: Buffer.byteLength counts a lone surrogate as the 3 bytes of U+FFFD.
  const unencodable = unencodableText(name);
  const problem =
    name.length === 0 ? 'is empty'
    : unencodable ? `contains ${unencodable}; send the name as valid Unicode`
    : name.includes('\0') ? 'contains a NUL byte'
    : /[/\\]/.test(name) ? 'contains a path separator'
    : name === '.' || name === '..' || name.includes('..') ? 'contains ".."'
    : Buffer.byteLength(name) > MAX_NAME_BYTES ? `is longer than ${MAX_NAME_BYTES} bytes`
    : null;
  if (problem) throw invalidRequest(`artifact name ${JSON.stringify(name)} ${problem}`);
}

export interface DownloadResult {
  path: string;
  bytes: number;
}

export async function downloadArtifact(
  artifact: UpdateArtifact,
  nexus: NexusClient,
  artifactDir: string,
  log: Logger,
): Promise<DownloadResult> {
  checkArtifactName(artifact.name);
  const label = `${artifact.kind}/${artifact.name} version ${artifact.version}`;
  const started = performance.now();
  let body;
  try {
    body = await nexus.artifactDownload(artifact.kind, artifact.name, artifact.version);
  } catch (err) {
    if (err instanceof NexusError && err.status === 404) {
      throw objectNotFound(`Nexus has no artifact ${label}`);
    }
    throw serviceUnavailable(`cannot download artifact ${label}: ${(err as Error).message}`);
  }

  try {
    await mkdirDurable(artifactDir);
  } catch (err) {
    // Nothing will read the answer now: let its connection go (undici's body reports that as
    // an abort, which is expected here).
    body.on('error', () => {});
    body.destroy();
    throw serviceUnavailable(`cannot store artifact ${label}: the artifact directory ${artifactDir} cannot be made: ${(err as Error).message}`);
  }
  const finalPath = join(artifactDir, artifact.name);
  const tmpPath = join(artifactDir, `.${artifact.name}.${randomBytes(6).toString('hex')}.tmp`);
  let bytes = 0;
  body.on('data', (chunk: Buffer) => { bytes += chunk.length; });
  try {
    // Flushed before the rename and the rename made durable before the answer: Nexus is told the
    // artifact is in place, so a crash must not leave an empty file under its name.
    await pipeline(body, createWriteStream(tmpPath, { flags: 'wx', mode: 0o644, flush: true }));
    // A 204, or a 200 with no body, is no zone image; whatever was in place stays.
    if (bytes === 0) throw new Error('Nexus sent no bytes');
    await rename(tmpPath, finalPath);
  } catch (err) {
    await rm(tmpPath, { force: true });
    throw serviceUnavailable(`download of artifact ${label} failed after ${bytes} bytes: ${(err as Error).message}`);
  }
  await fsyncDir(artifactDir);
  log.info({ artifact: label, path: finalPath, bytes, ms: Math.round(performance.now() - started) }, 'artifact downloaded');
  return { path: finalPath, bytes };
}
