#!/usr/bin/env bash
# tests/demo/test_demo_apart.sh - the demo backend shares no code with the proxy.
#
# demo/README.md's rule: demo-backend is built from demo/ alone plus
# libproto's config, log and util helpers; nothing from gateway/ or any other
# actor, nothing of the bus. Checked three ways: the quoted includes of
# demo/*.[ch], the program's sources as the Makefile sees them, and the
# linked binary ($SWITCHYARD_BIN_DIR/demo-backend): every libproto symbol it
# defines is declared in one of the three allowed headers, and it needs no
# bus library (libzmq, msgpack).
set -euo pipefail
cd "$(dirname "$0")/../.."
# (proto_url comes with proto_config: it checks the URL settings)
ALLOWED_HEADERS="protocol/proto_config.h protocol/proto_log.h protocol/proto_util.h protocol/proto_url.h"
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}

# 1. includes: demo's own headers and the three allowed ones
while IFS= read -r line; do
    header=$(printf '%s\n' "$line" | sed -E 's/.*#include "([^"]+)".*/\1/')
    case "$header" in
    demo_*.h | proto_config.h | proto_log.h | proto_util.h) ;;
    *) bad "$line (demo/ includes only demo_*.h, proto_config.h, proto_log.h, proto_util.h)" ;;
    esac
done < <(grep -nE '^\s*#\s*include\s+"' demo/*.[ch])

# 2. sources: all in demo/
# shellcheck disable=SC2016 # $(...) is make's, expanded by make
srcs=$(make -s --no-print-directory --eval='demo-srcs: ; @echo $(demo-backend_SRCS)' demo-srcs)
[ -n "$srcs" ] || bad "demo-backend_SRCS is empty"
for s in $srcs; do
    case "$s" in
    demo/*) ;;
    *) bad "demo-backend_SRCS has $s (only demo/ files)" ;;
    esac
done

# 3. the binary
bin="${SWITCHYARD_BIN_DIR:-build/asan/bin}/demo-backend"
if [ ! -x "$bin" ]; then
    bad "no $bin (build it first)"
else
    for sym in $(nm --defined-only -g "$bin" | awk '$3 ~ /^proto_/ {print $3}'); do
        # shellcheck disable=SC2086
        grep -qw "$sym" $ALLOWED_HEADERS || bad "$bin defines $sym (not from proto_config/log/util/url)"
    done
    if nm --defined-only "$bin" | awk '{print $3}' | grep -qE '^(gw|rt|bal|hd|st|chat|api)_'; then
        bad "$bin holds actor code: $(nm --defined-only "$bin" | awk '{print $3}' \
            | grep -E '^(gw|rt|bal|hd|st|chat|api)_' | head -3 | tr '\n' ' ')"
    fi
    needed=$(readelf -d "$bin" | awk '/NEEDED/ {print $NF}')
    if printf '%s\n' "$needed" | grep -qE 'libzmq|libmsgpack'; then
        bad "$bin needs a bus library: $(printf '%s\n' "$needed" | grep -E 'libzmq|libmsgpack' | tr '\n' ' ')"
    fi
fi

[ $fail -eq 0 ] || exit 1
echo "[  PASSED  ] 3 test(s): demo includes, demo sources, demo-backend binary apart from the proxy"
