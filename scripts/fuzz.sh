#!/usr/bin/env bash
# Fuzzes what reads a segment another process can write, for a bounded time:
# first the C target, native/fuzz/fuzz_segment.c (the open paths' header
# validation and the ring's record parsing, with the fan-out readers and
# releasers), built with AddressSanitizer and UBSan, with libFuzzer when clang
# has it, else with gcc and the seeded random driver (native/fuzz/fuzz_main.c);
# then the consumer's peek and tryReceive in TypeScript, scripts/fuzz-peek.mjs,
# in every mode, with a fan-out producer's trySend (needs dist/: npx tsc -p .).
# Each gets half of the time.
#
#   scripts/fuzz.sh [SECONDS]        default 60; npm run fuzz
#
# Exits non-zero on any sanitizer report, crash, hang (libFuzzer -timeout, the
# peek fuzzer's per-call deadline) or a wrong answer from the peek fuzzer.
# Crash inputs are kept in build/fuzz/artifacts/ for replay:
#   build/fuzz/fuzz_segment build/fuzz/artifacts/crash-...
# The seeded drivers print their seed: fuzz_segment_loop -seed S, fuzz-peek.mjs --seed S.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
c_seconds=$(((seconds + 1) / 2))
peek_seconds=$((seconds - c_seconds > 0 ? seconds - c_seconds : 1))
out=build/fuzz
mkdir -p "$out/artifacts" "$out/corpus"
sources=(native/fuzz/fuzz_segment.c native/src/header.c native/src/sysv.c native/src/posix.c native/src/guard.c native/src/owners.c native/src/ring.c native/src/mpsc.c native/src/fanout.c native/src/wait.c)
flags=(-std=c11 -DSHMCHAN_FUZZ_LOADS -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Wall -Wextra)
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
  clang -x c -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
  rm -f "$out/probe"
  clang "${flags[@]}" -fsanitize=fuzzer "${sources[@]}" -o "$out/fuzz_segment"
  echo "fuzz: libFuzzer, ${c_seconds} s"
  # -timeout turns a loop that never ends into a failure; -rss_limit_mb an allocation that never ends.
  "$out/fuzz_segment" -max_total_time="$c_seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/" "$out/corpus" 2>&1 | grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' || exit "${PIPESTATUS[0]}"
else
  cc=$(command -v gcc || command -v cc)
  "$cc" "${flags[@]}" "${sources[@]}" native/fuzz/fuzz_main.c -o "$out/fuzz_segment_loop"
  echo "fuzz: no libFuzzer (install clang for coverage-guided fuzzing); seeded random inputs, ${c_seconds} s"
  timeout --signal=KILL $((c_seconds + 60)) "$out/fuzz_segment_loop" -seconds "$c_seconds"
fi
echo "fuzz: the consumer's peek and tryReceive (and fan-out trySend), ${peek_seconds} s"
# its own deadline stops a call that never returns; this one a native call that blocks
timeout --signal=KILL $((peek_seconds + 60)) node scripts/fuzz-peek.mjs --seconds "$peek_seconds"
