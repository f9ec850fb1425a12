// `npm run openapi [-- [--out DIR] [sled|sim|bootstrap ...]]`: writes the OpenAPI documents of
// the APIs this code serves, one file each (default: all three, into openapi/, which git
// ignores). Each document is what `sled-agent openapi <API>` prints, run through the CLI itself so
// the two cannot differ; that command is also the way to print one document on stdout.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'src', 'bin', 'sled-agent.ts');

/** API name as the CLI takes it → file name (the sled agent's as in the omicron contracts). */
const FILES: Record<string, string> = {
  sled: 'sled-agent.json',
  sim: 'sled-agent-sim.json',
  bootstrap: 'bootstrap-agent.json',
};

const USAGE = `usage: npm run openapi -- [--out DIR] [${Object.keys(FILES).join('|')} ...]
  writes each API's OpenAPI document to DIR (default openapi/), all three unless some are named;
  to print one on stdout: npm run sled-agent -- openapi <API>`;

function usage(message: string): never {
  process.stderr.write(`openapi: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({ options: { out: { type: 'string' } }, allowPositionals: true });
} catch (err) {
  usage((err as Error).message);
}
const apis = parsed.positionals.length > 0 ? [...new Set(parsed.positionals)] : Object.keys(FILES);
const unknown = apis.filter((api) => !(api in FILES));
if (unknown.length > 0) usage(`unknown API ${unknown.map((a) => `"${a}"`).join(', ')}`);
const outDir = resolve(parsed.values.out ?? join(ROOT, 'openapi'));

const run = promisify(execFile);
const documents = await Promise.all(apis.map(async (api) => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CLI, 'openapi', api], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  }).catch((err: Error & { stderr?: string }) => {
    process.stderr.write(`openapi: sled-agent openapi ${api} failed: ${err.stderr?.trim() || err.message}\n`);
    process.exit(1);
  });
  return { api, text: stdout };
}));

mkdirSync(outDir, { recursive: true });
for (const { api, text } of documents) {
  const path = join(outDir, FILES[api]!);
  writeFileSync(path, text);
  const shown = relative(process.cwd(), path);
  process.stdout.write(`${api}: ${shown.startsWith('..') ? path : shown}\n`);
}
