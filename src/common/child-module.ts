// How to fork a module of this tree as a child process: its TypeScript source through tsx when the
// caller is TypeScript itself (vitest, `node --import tsx`), its compiled .js with plain node after
// `npm run build`.
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** `name` (without extension) beside the module at `from` (its import.meta.url). */
export function childModule(from: string, name: string): { main: string; execArgv: string[] } {
  if (from.endsWith('.ts')) {
    // tsx by its path, not its name: `--import tsx` would resolve from whatever the cwd is.
    const tsx = pathToFileURL(createRequire(from).resolve('tsx')).href;
    return { main: fileURLToPath(new URL(`./${name}.ts`, from)), execArgv: ['--import', tsx] };
  }
  return { main: fileURLToPath(new URL(`./${name}.js`, from)), execArgv: [] };
}
