#!/usr/bin/env bash
# The bigger hardening run (not part of npm test; run it by hand or nightly):
#   1. the C fuzz target for SHMCHAN_STRESS_FUZZ_SECONDS (default 600)
#   2. test/stress/: SHMCHAN_STRESS_CORRUPTION_ROUNDS rounds of random
#      corruption (default 1000) and SHMCHAN_STRESS_CRASH_ROUNDS rounds of the
#      crash harness (default 150, at least 100 kills)
#   3. the whole test suite against the ASan + UBSan build
#
#   scripts/test-stress.sh            npm run test:stress
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
start=$SECONDS

echo "== stress: fuzz"
scripts/fuzz.sh "${SHMCHAN_STRESS_FUZZ_SECONDS:-600}" || failed+=(fuzz)
echo "== stress: corruption and crash rounds"
npx --no-install tsc -p . && npx --no-install vitest run -c vitest.stress.config.mts || failed+=(vitest)
echo "== stress: the test suite under ASan + UBSan"
scripts/test-asan.sh || failed+=(asan)

echo "== stress: $(((SECONDS - start) / 60)) min; ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
