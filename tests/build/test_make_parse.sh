#!/usr/bin/env bash
# tests/build/test_make_parse.sh - reading the Makefile runs no pkg-config.
#
# On a fresh machine `make test` installs the libraries (scripts/deps.sh)
# before it builds; if make asked pkg-config while reading the Makefile, the
# user would see "Package libcares was not found" before the install line.
# A pkg-config that fails loudly stands in for the missing packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
shim=$(mktemp -d /tmp/sy-make-parse.XXXXXX)
trap 'rm -rf "$shim"' EXIT
printf '#!/bin/sh\necho "pkg-config called: $*" >&2\nexit 1\n' >"$shim/pkg-config"
chmod +x "$shim/pkg-config"
# -n: print what would run; deps and spec-check read the Makefile in full
out=$(PATH="$shim:$PATH" make -n --no-print-directory deps 2>&1)
if printf '%s\n' "$out" | grep -q 'pkg-config called'; then
    printf '%s\n' "$out"
    echo "FAIL: make ran pkg-config while reading the Makefile"
    exit 1
fi
echo "[  PASSED  ] 1 test(s): reading the Makefile runs no pkg-config"
