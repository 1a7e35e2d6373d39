#!/usr/bin/env bash
# Builds the addon's Debug configuration (AddressSanitizer + UBSan, see
# binding.gyp) into build/asan/, apart from build/Release, and runs test files
# against it: every process (vitest's workers and each spawned fixture) loads
# that build through SHMCHAN_ADDON_PATH, with libasan preloaded into node. The C
# programs the C tests build (libshmchan, examples/c) get the sanitizers too.
#
#   scripts/test-asan.sh [vitest file filters...]     npm run test:asan
#
# Fails on any sanitizer report: the sanitizers write them to files (so reports
# from fixtures whose stderr a test swallows are not missed), and the script
# prints them and exits 1. Node itself leaks by LeakSanitizer's standards, so
# leak detection is off; the leak tests cover shmchan's own resources.
set -uo pipefail
cd "$(dirname "$0")/.."

src=build/asan
mkdir -p "$src"
ln -sfn ../../binding.gyp "$src/binding.gyp"
ln -sfn ../../native "$src/native"
if ! npx --no-install node-gyp rebuild --debug -C "$src" >"$src/build.log" 2>&1; then
  cat "$src/build.log"
  echo "test:asan: the sanitizer build failed"
  exit 1
fi

libasan=$(gcc -print-file-name=libasan.so)
reports=$(mktemp -d)
chmod 1777 "$reports" # fixtures that run as nobody write reports too
trap 'rm -rf "$reports"' EXIT
export SHMCHAN_ADDON_PATH="$PWD/$src/build/Debug/shmchan.node"
# the C library and example programs that test/c-*.test.ts build, sanitized too
export SHMCHAN_TEST_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
export LD_PRELOAD="$libasan"
# handle_sigbus=0: shmchan's own SIGBUS guard must see faults on truncated segments.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:handle_sigbus=0:detect_odr_violation=0:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"

npx --no-install vitest run "$@"
status=$?
unset LD_PRELOAD

if compgen -G "$reports/*" >/dev/null; then
  for report in "$reports"/*; do
    echo "=== $report"
    cat "$report"
  done
  echo "test:asan: sanitizer reports (above)"
  exit 1
fi
[ $status -eq 0 ] && echo "test:asan: no sanitizer report"
exit $status
