#!/usr/bin/env bash
# deps.sh - make sure every Debian package Switchyard needs is installed.
#
# Usage: scripts/deps.sh [build|test|run|bench|fuzz]...   (default: build)
# Checks with dpkg-query (a fraction of a second when nothing is missing).
# As root it installs what is missing with apt-get; otherwise it prints the one
# command to run and exits 1. Called by `make`, `make test`, `make run`, `make bench`,
# `make fuzz`.
set -euo pipefail

# libcurl: `switchyard routes`; libpq: the PostgreSQL config store; wslay: the gateway's chat
# WebSockets; hiredis: chatd's Redis; libjwt: chat tokens (CHAT_JWT_SECRET)
build_pkgs=(gcc make pkg-config libev-dev libzmq3-dev libmsgpack-dev libc-ares-dev
    libhttp-parser-dev libjansson-dev uuid-dev libssl-dev zlib1g-dev libcurl4-openssl-dev libpq-dev
    libwslay-dev libhiredis-dev libjwt-dev)
# postgresql: the throwaway cluster of tests/lib/pgtmp.sh; psycopg2: tests/e2e talk to it
# websocket (client) and websockets (echo backend): tests/e2e/test_websocket.py;
# cryptography: test certificates (tests/e2e/test_tls.py)
# chromium, nodejs (+ npm): the chat page's real-browser test (tests/browser, tests/e2e/test_chat_page.py)
# docker-compose, python3-yaml: tests/e2e/test_deploy.py checks compose.yaml (`docker-compose config`,
# no Docker engine needed) and deploy/k8s
# iproute2, dnsmasq-base: tests/e2e/test_multihost.py's hosts in network namespaces (veths, a bridge)
# and their DNS (dnsmasq's binary only: no system service is started)
test_pkgs=(libcmocka-dev clang-format redis-server curl python3 python3-pytest python3-requests
    procps postgresql python3-psycopg2 python3-websocket python3-websockets python3-cryptography chromium nodejs
    docker-compose python3-yaml iproute2 dnsmasq-base)
run_pkgs=(redis-server curl)
bench_pkgs=(wrk nginx-light haproxy curl redis-server openssl valgrind) # redis-server: chat and rate-limit rows; openssl: TLS rows; valgrind: the policy rows in instructions
fuzz_pkgs=(clang libclang-rt-14-dev) # libFuzzer and the sanitizer runtimes of clang 14

# tests/browser's npm modules (playwright-core, pinned by its package-lock.json): `npm ci`
# when node_modules is missing or older than the lock file (npm writes
# node_modules/.package-lock.json on every install)
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
browser_modules() {
    local stamp="$browser_dir/node_modules/.package-lock.json"
    [ -f "$stamp" ] && ! [ "$browser_dir/package-lock.json" -nt "$stamp" ] && return 0
    echo "deps.sh: npm ci --prefix tests/browser" >&2
    npm ci --prefix "$browser_dir" --no-audit --no-fund --loglevel=error >&2 || {
        echo "deps.sh: npm ci --prefix tests/browser failed" >&2
        exit 1
    }
    touch "$stamp"
}

want=()
modules=0
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case "$group" in
        build) want+=("${build_pkgs[@]}") ;;
        test)
            want+=("${build_pkgs[@]}" "${test_pkgs[@]}")
            # Debian's nodejs comes without npm (its own package); NodeSource's bundles it
            # and conflicts with Debian's npm: ask for the package only when there is no npm
            command -v npm >/dev/null 2>&1 || want+=(npm)
            modules=1
            ;;
        run) want+=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
        bench) want+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
        fuzz) want+=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
        *) echo "deps.sh: unknown group '$group' (build, test, run, bench, fuzz)" >&2; exit 2 ;;
    esac
done

mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
missing=()
while read -r pkg status; do
    [ "$status" = "installed" ] || missing+=("$pkg")
done < <(for p in "${want[@]}"; do
    s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    echo "$p ${s:-none}"
done)

if [ ${#missing[@]} -eq 0 ]; then
    [ $modules -eq 0 ] || browser_modules
    exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
    echo "deps.sh: run: sudo apt-get update && sudo $cmd" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# apt's own chatter goes to a log, shown only when something fails
log=$(mktemp /tmp/switchyard-deps.XXXXXX)
# shellcheck disable=SC2086
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "deps.sh: installing ${missing[*]} failed" >&2
    exit 1
fi
rm -f "$log"
[ $modules -eq 0 ] || browser_modules
