#!/usr/bin/env bash
# Builds native/fuzz/fuzz_segment.c with AddressSanitizer and UBSan and runs it
# for a bounded time: with libFuzzer when clang has it, else with gcc and the
# seeded random driver (native/fuzz/fuzz_main.c).
#
#   scripts/fuzz.sh [SECONDS]        default 60; npm run fuzz
#
# Exits non-zero on any sanitizer report, crash, or hang (libFuzzer -timeout).
# Crash inputs are kept in build/fuzz/artifacts/ for replay:
#   build/fuzz/fuzz_segment build/fuzz/artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
out=build/fuzz
mkdir -p "$out/artifacts" "$out/corpus"
sources=(native/fuzz/fuzz_segment.c native/src/header.c native/src/sysv.c native/src/posix.c native/src/guard.c native/src/owners.c native/src/ring.c native/src/mpsc.c native/src/wait.c)
flags=(-std=c11 -DSHMCHAN_FUZZ_LOADS -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Wall -Wextra)
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
  clang -x c -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
  rm -f "$out/probe"
  clang "${flags[@]}" -fsanitize=fuzzer "${sources[@]}" -o "$out/fuzz_segment"
  echo "fuzz: libFuzzer, ${seconds} s"
  # -timeout turns a loop that never ends into a failure; -rss_limit_mb an allocation that never ends.
  "$out/fuzz_segment" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/" "$out/corpus" 2>&1 | grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' || exit "${PIPESTATUS[0]}"
else
  cc=$(command -v gcc || command -v cc)
  "$cc" "${flags[@]}" "${sources[@]}" native/fuzz/fuzz_main.c -o "$out/fuzz_segment_loop"
  echo "fuzz: no libFuzzer (install clang for coverage-guided fuzzing); seeded random inputs, ${seconds} s"
  timeout --signal=KILL $((seconds + 60)) "$out/fuzz_segment_loop" -seconds "$seconds"
fi
