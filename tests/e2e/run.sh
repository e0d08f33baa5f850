#!/usr/bin/env bash
# tests/e2e/run.sh [PYTEST_ARGS...] - the end-to-end tests against the sanitizer build.
#
# Runs `/usr/bin/python3 -m pytest -q tests/e2e` from the repository root with
# the binaries of build/asan/bin (override with SWITCHYARD_BIN_DIR) and the
# sanitizer options of tests/run.sh. Exit 0 only when every test passed and at
# least one was collected (pytest itself exits 5 on zero tests; that is a failure).
set -uo pipefail
cd "$(dirname "$0")/../.."

export SWITCHYARD_BIN_DIR="${SWITCHYARD_BIN_DIR:-$PWD/build/asan/bin}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=24}"
export PYTHONDONTWRITEBYTECODE=1
# no proxy between the tests and the stack on 127.0.0.1
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

if ! /usr/bin/python3 -c 'import pytest, requests' 2>/dev/null; then
    echo "tests/e2e/run.sh: needs python3-pytest and python3-requests (scripts/deps.sh test)" >&2
    exit 2
fi

/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "tests/e2e/run.sh: no tests collected" >&2
    exit 1
fi
exit $rc
