#!/usr/bin/env bash
# tests/run.sh UNIT_TEST... [-- INTEGRATION_TEST... [-- END_TO_END_SUITE...]]
#
# Runs each test binary (sanitizer build) with a hard timeout, prints its
# output, and ends with one summary line "N passed, N failed". Exit 0 only
# when every test binary passed.
set -uo pipefail
cd "$(dirname "$0")/.."

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=24"
export SWITCHYARD_BIN_DIR="${SWITCHYARD_BIN_DIR:-$PWD/build/asan/bin}"
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
IT_TIMEOUT=${IT_TIMEOUT:-300}
E2E_TIMEOUT=${E2E_TIMEOUT:-900}

passed=0
failed=0
failures=()
timeout_s=$UNIT_TIMEOUT
phase=0
for t in "$@"; do
    if [ "$t" = "--" ]; then
        phase=$((phase + 1))
        if [ $phase -eq 1 ]; then timeout_s=$IT_TIMEOUT; else timeout_s=$E2E_TIMEOUT; fi
        continue
    fi
    name=${t#build/asan/}
    start=$(date +%s%N)
    out=$(timeout --kill-after=10 "$timeout_s" "$t" 2>&1)
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    secs="$((ms / 1000)).$(((ms % 1000) / 100))"
    # a skipped test is not a passing test
    if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^\[  S[K]IPPED \]'; then
        rc=77
    fi
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED|S[K]IPPED) |test\(s\) run' | sed "s|^|  $name: |"
        echo "PASS $name (${secs}s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf '%s\n' "$out"
        [ $rc -eq 124 ] && echo "TIMEOUT after ${timeout_s}s"
        echo "FAIL $name (exit $rc, ${secs}s)"
    fi
done
if [ $failed -ne 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
