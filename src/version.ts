// This package's version, for `sled-agent --version`, GET /inventory and the metrics' info line.
// package.json is one level above both src/ and dist/.
import { readFileSync } from 'node:fs';

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
