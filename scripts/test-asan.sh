#!/usr/bin/env bash
# The addon and the fake illumos built with AddressSanitizer + UndefinedBehaviorSanitizer, and the
# native tests run against them: `npm run test:asan`. Any sanitizer report fails the run.
# The addon is built in build-asan/ (a copy of binding.gyp and native/), so the normal build in
# build/ is left alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/build-asan"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

rm -rf "$work"
mkdir -p "$work/reports"
cp "$root/binding.gyp" "$work/"
cp -r "$root/native" "$work/native"
ln -s "$root/node_modules" "$work/node_modules"
(cd "$work" && CFLAGS="$san" CXXFLAGS="$san" LDFLAGS="-fsanitize=address,undefined" npx node-gyp rebuild >"$work/build.log" 2>&1) || {
  tail -30 "$work/build.log"; echo "test:asan: building the sanitized addon failed (log: $work/build.log)"; exit 1; }
make -s -C "$root/test/fake-illumos" SANITIZE=1

export SLED_AGENT_ADDON="$work/build/Release/sled_agent_native.node"
export SLED_AGENT_ASAN=1
# Node itself is not built with ASan, so the runtime must be loaded first (libubsan then comes in
# as the addon's own dependency; preloading it too silences LeakSanitizer).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=0:log_path=$work/reports/asan:detect_odr_violation=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$work/reports/ubsan"

tests=(test/native.test.ts test/host-illumos.test.ts)
for t in "$root"/test/illumos-*.test.ts; do [ -e "$t" ] && tests+=("test/$(basename "$t")"); done
status=0
(cd "$root" && npx vitest run --pool=forks "${tests[@]}") || status=$?

unset LD_PRELOAD
(cd "$root" && npx tsx scripts/check-sanitizer-reports.ts "$work/reports") || { echo "test:asan: sanitizer reports in our code"; exit 1; }
[ "$status" -eq 0 ] || { echo "test:asan: the tests failed under the sanitizers"; exit "$status"; }
echo "test:asan: clean (${#tests[@]} test files)"
