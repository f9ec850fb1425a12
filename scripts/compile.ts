// Compiling a benchmark and the agent's src/ with tsc, as `npm run build` compiles what ships,
// so the benchmark measures that rather than src/ through tsx's loader (which, among other
// things, wraps each nested function in a `__name(fn, "…")` call as it is made and turns source
// maps on; dist/ has neither).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Runs the project's tsc; tsc emits despite type errors, so those are printed and the build used. */
export function tsc(root: string, args: string[], cwd: string, what: string): void {
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const text = String((err as { stdout?: Buffer }).stdout ?? '').trim().split('\n').slice(0, 5).join('\n');
    console.log(`note: tsc reported errors in ${what} (the build is used anyway):\n${text}`);
  }
}

/**
 * Compiles `entries` (paths under `project`) and what they import into `<out>/<outName>`,
 * keeping the tree's layout (scripts/, src/, test/ side by side), with the project's compiler
 * options. The compiled tree gets links to `root`'s package.json, node_modules and build/
 * (the native addon), which src/ finds beside itself. Returns the compiled tree's directory.
 */
export function compileTree(root: string, project: string, out: string, outName: string, entries: string[], what: string): string {
  const dir = join(out, outName);
  const tsconfig = join(out, `tsconfig.${outName}.json`);
  writeFileSync(tsconfig, JSON.stringify({
    extends: join(project, 'tsconfig.json'),
    compilerOptions: { noEmit: false, rootDir: project, outDir: dir, declaration: false, sourceMap: false },
    include: entries.map((e) => join(project, e)),
  }));
  tsc(root, ['-p', tsconfig], project, what);
  mkdirSync(dir, { recursive: true });
  for (const name of ['package.json', 'node_modules', 'build']) {
    if (existsSync(join(root, name)) && !existsSync(join(dir, name))) symlinkSync(join(root, name), join(dir, name));
  }
  return dir;
}
