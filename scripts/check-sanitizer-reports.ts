// Reads the AddressSanitizer/UBSan report files test-asan.sh collected and decides: any memory
// error or undefined behaviour fails; a leak fails if any frame of its allocation stack is in our
// code (the addon or the fake illumos), and is only listed otherwise (Node and V8 are not built
// with ASan and keep some allocations until exit). Exit 0 when clean.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: check-sanitizer-reports.ts REPORT_DIR\n');
  process.exit(2);
}
const OURS = /sled_agent_native\.node|fake-illumos|\/native\/|test\/fake-illumos\//;

let failures = 0;
let foreignLeaks = 0;
for (const file of readdirSync(dir).sort()) {
  const text = readFileSync(join(dir, file), 'utf8');
  // Leak reports are blocks starting "Direct leak of" / "Indirect leak of", ending at a blank line.
  const leakBlocks = text.split(/\n(?=(?:Direct|Indirect) leak of )/).filter((b) => /^(Direct|Indirect) leak of /.test(b));
  const otherErrors = /ERROR: AddressSanitizer: (?!detected memory leaks)|runtime error:/.test(text);
  const ourLeaks = leakBlocks.filter((b) => OURS.test(b.split('\n\n')[0] ?? ''));
  foreignLeaks += leakBlocks.length - ourLeaks.length;
  if (otherErrors || ourLeaks.length > 0) {
    failures += 1;
    process.stdout.write(`== ${file}\n${otherErrors ? text.slice(0, 6000) : ourLeaks.join('\n').slice(0, 6000)}\n`);
  }
}
if (foreignLeaks > 0) process.stdout.write(`(${foreignLeaks} leak(s) with no frame in our code, from Node/V8 themselves: not counted)\n`);
process.stdout.write(failures === 0 ? 'sanitizers: no reports in our code\n' : `sanitizers: ${failures} report file(s) with errors in our code\n`);
process.exit(failures === 0 ? 0 : 1);
