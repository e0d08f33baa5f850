#!/usr/bin/env bash
# bench/bench.sh - `make bench` (SPEC §12): Switchyard next to nginx and HAProxy.
#
# One machine, loopback only. wrk is the client (-t1, keep-alive, --latency), the
# demo backend (bin/demo-backend --body-bytes 1024) answers GET / with 1 KiB behind
# every proxy. Targets:
#   direct            wrk -> backend (the ceiling)
#   nginx             worker_processes 1, upstream keepalive      (bench/nginx.conf.in)
#   haproxy           nbthread 1, http-reuse always               (bench/haproxy.cfg.in)
#   switchyard-lease  gateway with GATEWAY_LEASE_TTL=1s (the default)
#   switchyard-ttl0   gateway with GATEWAY_LEASE_TTL=0 (asks router+balancer per request)
# The Switchyard stack is all seven actors on one ipc bus (BUS_DIR in the private
# temp dir). The two modes are two gateway processes on the same bus, started once:
# each measured configuration sends its traffic to exactly one gateway process, the
# other one sits idle (its CPU during the run is measured and reported). This is
# simpler and less noisy than restarting a gateway between modes, and it keeps the
# rounds interleaved.
#
# Each (connections, target) is run BENCH_ROUNDS (>= 3) times, interleaved (round 1:
# every configuration, round 2: every configuration, ...; the target order rotates
# per round), after one warm-up run each; medians are reported (ratios: the median
# of the ratios within each round). CPU per request is
# utime+stime from /proc/<pid>/stat (all threads) before/after each run, divided by
# the requests wrk counted. Then the bus cost: `switchyard ping` round trips, the p50
# latency of lease vs ttl0 mode at one connection (one decide = gateway -> router ->
# balancer -> router -> gateway), and the CPU the other actors spend per request in
# each mode. Last, the lease-mode gateway is profiled under load (perf with DWARF
# call graphs, else valgrind --tool=callgrind) and the top functions go into the
# report, with the system calls per request of each proxy; the report says so
# explicitly when lease mode is below 0.8x nginx at 50 connections.
#
# Settings (environment):
#   BENCH_DURATION  seconds per measured run (default 10)
#   BENCH_ROUNDS    rounds, at least 3 (default 5)
#   BENCH_CONNS     connection counts (default "50 256")
#   BENCH_OUT       report file (default docs/performance.md; "-" = do not write)
#   BENCH_PROFILE   always (default), auto (only when lease < 0.8x nginx at 50), never
#   BENCH_PROFILER  auto (perf if it works, else callgrind), perf, callgrind
#   BENCH_BIN       where the Switchyard binaries are (default bin)
#   BENCH_KEEP      1 = keep the temp dir (logs, configs, raw wrk output)
#   BENCH_EXTRA_ROUTES  more routes in the router's table (default 0; 100000 to compare)
#   BENCH_BIG_CONNS, BENCH_IDLE_CONNS  the large-response and idle-connection rows
#   BENCH_ONLY      empty (default): everything; "chat": only the chat rows (quick; the
#                   report goes to BENCH_OUT only when it is set, default "-")
#   BENCH_CHAT_SESSIONS  idle chat sessions held (default 10000)
#   BENCH_CHAT_PAIRS     sender/receiver session pairs of the delivery rows (default 100)
#   BENCH_CHAT_RATE      messages/s, all senders together (default 10000)
#   BENCH_CHAT_SECONDS   seconds per delivery run (default BENCH_DURATION)
#   BENCH_CHAT_ROUNDS    delivery runs (default 3)
#   BENCH_ONLY=tls  only the HTTPS and route-policy rows (issue 11; printed unless BENCH_OUT is set)
#   BENCH_TLS_ROUNDS     rounds of the HTTPS/policy rows (default BENCH_ROUNDS; 1-20, < 3 only for a look)
#   BENCH_TLS_CLIENTS    openssl s_time processes run in parallel per handshake run (default 2)
#   BENCH_TLS_HS_SECONDS seconds per handshake run (default BENCH_DURATION, at most 5)
#   BENCH_TLS_IR_REQUESTS  route-policy rows: requests per route counted under callgrind (default 2000)
#   BENCH_TLS_POLICY_DELAY_MS  route-policy rows: each wrk connection waits this long between
#                        its requests (default 5: ~7,000 req/s at 50 connections; 0: flat out)
# The chat rows (issue 10): bench/chat_load.c (bin/chat-load) against a stack of
# its own on its own bus: redis-server, two chatd and two gateways (REGION 1 and 2).
# The HTTPS and route-policy rows (issue 11, tls_bench below): a stack of their own
# with one EC P-256 certificate for nginx, HAProxy and the gateway's HTTPS listener.
# Everything started here is stopped by PID on exit; the temp dir is removed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=${BENCH_BIN:-${BENCH_BIN_DIR:-bin}}
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac
DURATION=${BENCH_DURATION:-10}
BIG_BYTES=1048576                   # the large-response rows: 1 MiB bodies
BIG_CONNS=${BENCH_BIG_CONNS:-16}    # ... at this many connections
EXTRA_ROUTE_COUNT=${BENCH_EXTRA_ROUTES:-0} # more routes in the router's table
IDLE_CONNS=${BENCH_IDLE_CONNS:-9000} # idle keep-alive connections held per proxy (HAProxy can hold 9900 here)
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNS:-"50 256"}
ONLY=${BENCH_ONLY:-}
OUT=${BENCH_OUT:-docs/performance.md}
[[ $ONLY == chat || $ONLY == tls ]] && OUT=${BENCH_OUT:--} # a partial run never rewrites the full report by default
CHAT_SESSIONS=${BENCH_CHAT_SESSIONS:-10000}
CHAT_PAIRS=${BENCH_CHAT_PAIRS:-100}
CHAT_RATE=${BENCH_CHAT_RATE:-10000}
CHAT_SECONDS=${BENCH_CHAT_SECONDS:-$DURATION}
CHAT_ROUNDS=${BENCH_CHAT_ROUNDS:-3}
CHAT_VHOST=chat.bench
TLS_ROUNDS=${BENCH_TLS_ROUNDS:-$ROUNDS}
TLS_CLIENTS=${BENCH_TLS_CLIENTS:-2}
TLS_HS_SECONDS=${BENCH_TLS_HS_SECONDS:-$((DURATION < 5 ? DURATION : 5))}
TLS_POLICY_DELAY=${BENCH_TLS_POLICY_DELAY_MS:-5}
TLS_IR_REQUESTS=${BENCH_TLS_IR_REQUESTS:-2000}
PROFILE=${BENCH_PROFILE:-always}
KEEP=${BENCH_KEEP:-0}
PROFILER=${BENCH_PROFILER:-auto}
TARGETS=(direct nginx haproxy switchyard-lease switchyard-ttl0)
ACTORS=(router balancer healthd statsd chatd apid)
HOST_HEADER=bench.local
BODY_BYTES=1024

die() {
    echo "bench: $*" >&2
    exit 1
}
say() { echo "bench: $*" >&2; }

[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 1 && DURATION <= 600)) \
    || die "BENCH_DURATION must be 1-600 seconds, not '$DURATION'"
[[ $EXTRA_ROUTE_COUNT =~ ^[0-9]+$ ]] && ((EXTRA_ROUTE_COUNT <= 1000000)) \
    || die "BENCH_EXTRA_ROUTES must be 0-1000000, not '$EXTRA_ROUTE_COUNT'"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 3 && ROUNDS <= 20)) \
    || die "BENCH_ROUNDS must be 3-20 (SPEC §12: at least 3 runs each), not '$ROUNDS'"
for c in $CONNS; do
    [[ $c =~ ^[0-9]+$ ]] && ((c >= 1 && c <= 10000)) || die "BENCH_CONNS: bad value '$c'"
done
case "$PROFILE" in auto | always | never) ;; *) die "BENCH_PROFILE must be auto, always or never" ;; esac
case "$ONLY" in "" | chat | tls) ;; *) die "BENCH_ONLY must be empty, chat or tls, not '$ONLY'" ;; esac
[[ $TLS_ROUNDS =~ ^[0-9]+$ ]] && ((TLS_ROUNDS >= 1 && TLS_ROUNDS <= 20)) \
    || die "BENCH_TLS_ROUNDS must be 1-20, not '$TLS_ROUNDS'"
[[ $TLS_CLIENTS =~ ^[0-9]+$ ]] && ((TLS_CLIENTS >= 1 && TLS_CLIENTS <= 16)) \
    || die "BENCH_TLS_CLIENTS must be 1-16, not '$TLS_CLIENTS'"
[[ $TLS_HS_SECONDS =~ ^[0-9]+$ ]] && ((TLS_HS_SECONDS >= 1 && TLS_HS_SECONDS <= 600)) \
    || die "BENCH_TLS_HS_SECONDS must be 1-600, not '$TLS_HS_SECONDS'"
[[ $TLS_POLICY_DELAY =~ ^[0-9]+$ ]] && ((TLS_POLICY_DELAY <= 1000)) \
    || die "BENCH_TLS_POLICY_DELAY_MS must be 0-1000, not '$TLS_POLICY_DELAY'"
[[ $CHAT_SESSIONS =~ ^[0-9]+$ ]] && ((CHAT_SESSIONS >= 1 && CHAT_SESSIONS <= 19000)) \
    || die "BENCH_CHAT_SESSIONS must be 1-19000, not '$CHAT_SESSIONS'"
[[ $CHAT_PAIRS =~ ^[0-9]+$ ]] && ((CHAT_PAIRS >= 1 && CHAT_PAIRS <= 5000)) \
    || die "BENCH_CHAT_PAIRS must be 1-5000, not '$CHAT_PAIRS'"
[[ $CHAT_RATE =~ ^[0-9]+$ ]] && ((CHAT_RATE >= 1 && CHAT_RATE <= 100000)) \
    || die "BENCH_CHAT_RATE must be 1-100000, not '$CHAT_RATE'"
[[ $CHAT_SECONDS =~ ^[0-9]+$ ]] && ((CHAT_SECONDS >= 1 && CHAT_SECONDS <= 600)) \
    || die "BENCH_CHAT_SECONDS must be 1-600, not '$CHAT_SECONDS'"
[[ $CHAT_ROUNDS =~ ^[0-9]+$ ]] && ((CHAT_ROUNDS >= 1 && CHAT_ROUNDS <= 20)) \
    || die "BENCH_CHAT_ROUNDS must be 1-20, not '$CHAT_ROUNDS'"
case "$PROFILER" in auto | perf | callgrind) ;; *) die "BENCH_PROFILER must be auto, perf or callgrind" ;; esac

# ---------------------------------------------------------------------------
# Tools and binaries; refuse a sanitizer build.

NEED_TOOLS=(wrk nginx haproxy curl awk sed sort redis-server redis-cli openssl)
[[ $ONLY == chat ]] && NEED_TOOLS=(curl awk sed sort redis-server redis-cli)
for tool in "${NEED_TOOLS[@]}"; do
    command -v "$tool" >/dev/null || die "'$tool' not found (run: scripts/deps.sh bench)"
done
SY_BINS=(gateway router balancer healthd statsd chatd apid demo-backend switchyard chat-load)
for b in "${SY_BINS[@]}"; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing (run: make build-rel)"
done
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------
# Private temp dir, processes, cleanup.

TMP=$(mktemp -d /tmp/syb.XXXXXX) # short: the ipc socket paths live under it
chmod 755 "$TMP"                 # nginx workers may run as another user
BUS=$TMP/bus
mkdir -p "$BUS" "$TMP/nginx-tmp" "$TMP/wrk" "$TMP/bin"

declare -A PID=()     # name -> pid of every process we started
declare -A LOGFILE=() # name -> its stdout+stderr
STARTED=()          # names in start order

cleanup() {
    local rc=$? i name p tries
    trap - EXIT INT TERM
    [[ -n ${TAP_PID:-} ]] && kill -TERM "$TAP_PID" 2>/dev/null # a tap of the tap rounds
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        p=${PID[${STARTED[$i]}]}
        kill -TERM "$p" 2>/dev/null || true
    done
    for name in "${STARTED[@]}"; do
        p=${PID[$name]}
        for ((tries = 0; tries < 50; tries++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$p" 2>/dev/null; then
            say "$name (pid $p) did not stop on SIGTERM within 5 s; SIGKILL"
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run copies of the binaries: other engineers may rebuild bin/ while the bench
# runs, and perf needs the very file the gateway was started from.
SRC_BIN=$BIN
for b in "${SY_BINS[@]}"; do cp -p "$SRC_BIN/$b" "$TMP/bin/$b"; done
BIN=$TMP/bin
# Refuse a sanitizer build (ASan/UBSan/TSan/MSan symbols or runtime libraries).
for b in "${SY_BINS[@]}"; do
    syms=$(nm -D "$BIN/$b" 2>/dev/null || true)
    libs=$(ldd "$BIN/$b" 2>/dev/null || true)
    if grep -qE '__(asan|ubsan|tsan|msan)_' <<<"$syms" || grep -qE 'lib(asan|ubsan|tsan|msan)\.' <<<"$libs"; then
        die "$SRC_BIN/$b is a sanitizer build; the bench measures the release build only (make build-rel)"
    fi
done


# start NAME LOGFILE CMD... : run in the background, stdout+stderr appended to LOGFILE
start() {
    local name=$1 log=$2
    shift 2
    "$@" >>"$log" 2>&1 &
    PID[$name]=$!
    LOGFILE[$name]=$log
    STARTED+=("$name")
}

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

# Every process we started must still be running.
check_alive() {
    local name
    for name in "${STARTED[@]}"; do
        alive "$name" || die "$name (pid ${PID[$name]}) has exited; its log: $(tail -n 5 "${LOGFILE[$name]}" 2>/dev/null)"
    done
}

declare -A USED_PORT=()
# free_port VAR: a port nothing listens on (and not handed out before)
free_port() {
    local -n out=$1
    local i p
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + RANDOM % 12000))
        [[ -n ${USED_PORT[$p]:-} ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORT[$p]=1
            out=$p
            return 0
        fi
    done
    die "no free port found"
}

# wait_http NAME URL [HOST]: until URL answers 200 (10 s; an https URL's certificate is not checked)
wait_http() {
    local name=$1 url=$2 host=${3:-$HOST_HEADER} i
    for ((i = 0; i < 100; i++)); do
        alive "$name" || die "$name exited at start: $(tail -n 5 "${LOGFILE[$name]}")"
        if [[ $(curl -sk -o /dev/null -w '%{http_code}' -H "Host: $host" "$url" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer 200 at $url within 10 s; its log: $(tail -n 5 "${LOGFILE[$name]}")"
}

# ---------------------------------------------------------------------------
# Measurement helpers (the proxy rows, the chat rows and the HTTPS rows).

# children_of PID: the pids of its children (nginx's workers; found by their parent pid in /proc)
children_of() {
    local f
    for f in /proc/[0-9]*/stat; do
        sed 's/^\([0-9]*\) .*) [A-Za-z] \([0-9]*\) .*/\1 \2/' "$f" 2>/dev/null || true
    done | awk -v p="$1" '$2 == p {printf "%s ", $1}'
}

# cpu_ticks PID...: utime+stime (clock ticks, all threads) summed over the pids
cpu_ticks() {
    local p sum=0 v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# wrk_parse FILE: "rps p50_ms p99_ms requests non2xx sockerr"
wrk_parse() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(",", ""); sock = $4 + $6 + $8 + $10 }
        END { printf "%s %s %s %s %d %d\n", rps, p50, p99, reqs, non2xx, sock }
    ' "$1"
}

# busy ticks of the whole machine (/proc/stat) and of this shell's waited-for
# children (wrk): what is left after our processes is someone else's load
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
self_children() { sed 's/^.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }

# median: of the numbers on stdin, one a line ("nan" for none)
median() { sort -g | awk '{v[NR] = $1} END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# fmt VALUE PRINTF-FORMAT: "-" for nan or a negative value
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "nan" || v < 0) print "-"; else printf f, v }'; }

# ---------------------------------------------------------------------------
# Chat (issue 10): idle sessions and delivery across two regions. A stack of its
# own on its own bus (CHAT_BUS), so the proxy rows' actors see none of it:
# redis-server, router, balancer, healthd, statsd, apid, chatd-1 and gateway gw-chat-1
# in REGION 1, chatd-2 and gw-chat-2 in REGION 2. A gateway prefers a chatd of its own
# region (docs/chat.md), so a message from a session on gw-chat-1 to one on gw-chat-2
# goes gw-chat-1 -> chatd-1 -> Redis -> chatd-2 -> gw-chat-2. The client is
# bin/chat-load (bench/chat_load.c: libev + wslay's client API).

# chat_pong INSTANCE COUNTER: the counter of that instance from `switchyard ping -v` (0 when
# the instance omits it, "" when the instance does not answer)
chat_pong() {
    BUS_DIR=$CHAT_BUS "$BIN/switchyard" ping -v --timeout 2s 2>/dev/null | awk -v i="$1" -v k="$2" '
        $2 == i { want = 1; next }
        want { v = 0; for (f = 1; f <= NF; f++) { split($f, kv, "="); if (kv[1] == k) v = kv[2] } print v; exit }'
}
# chat_wait_pong INSTANCE COUNTER OP VALUE SECONDS: until the counter OP VALUE (awk op)
chat_wait_pong() {
    local i v="" n=$(($5 * 5))
    for ((i = 0; i < n; i++)); do
        v=$(chat_pong "$1" "$2")
        [[ -n $v ]] && awk -v a="$v" -v b="$4" "BEGIN { exit !(a $3 b) }" && return 0
        sleep 0.2
    done
    die "$1's $2 is '${v}', not $3 $4 within $5 s"
}
chat_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # whole machine, ticks
chat_rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
chat_ticks() { { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{print $12 + $13} END { if (!NR) print 0 }'; }
# kv LINE KEY: the value of KEY=value in a chat-load result line
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2; exit}'; }

# chat_line FILE PREFIX SECONDS PID: the first line of FILE starting with PREFIX, waiting for it
# (polled every 20 ms) while PID runs; "" if it does not come
chat_line() {
    local i n=$(($3 * 50)) l
    for ((i = 0; i < n; i++)); do
        l=$(grep -m 1 "^$2" "$1" 2>/dev/null || true)
        [[ -n $l ]] && { echo "$l"; return 0; }
        kill -0 "$4" 2>/dev/null || { grep -m 1 "^$2" "$1" 2>/dev/null || true; return 0; }
        sleep 0.02
    done
}

CHAT_TEXT=""
chat_bench() {
    local cb_tmp=$TMP/chat pr pa1 pa2 ph1 ph2 a i line code
    CHAT_BUS=$TMP/chatbus
    mkdir -p "$CHAT_BUS" "$cb_tmp"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= CHAT_SESSIONS + 100)) \
        || die "chat: $CHAT_SESSIONS sessions need more open files than $(ulimit -n)"
    free_port pr
    free_port ph1
    free_port pa1
    free_port ph2
    free_port pa2
    CHAT_PORTS="redis :$pr, gw-chat-1 :$ph1 (admin :$pa1), gw-chat-2 :$ph2 (admin :$pa2)"
    say "chat: stack on its own bus $CHAT_BUS: $CHAT_PORTS"
    start chat-redis "$cb_tmp/redis.log" redis-server --port "$pr" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$cb_tmp" --maxclients 1000
    for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli -p "$pr" PING 2>/dev/null) == PONG ]] && break
        alive chat-redis || die "redis-server exited: $(tail -n 5 "$cb_tmp/redis.log")"
        sleep 0.1
    done
    [[ $(redis-cli -p "$pr" PING 2>/dev/null) == PONG ]] || die "redis-server does not answer on :$pr"
    local -a env=(BUS_DIR="$CHAT_BUS" LOG_FORMAT=json LOG_LEVEL=warn REDIS_URL="redis://127.0.0.1:$pr")
    for a in router balancer healthd statsd apid; do
        start "chat-$a" "$cb_tmp/$a.log" env "${env[@]}" REGION=1 INSTANCE_ID="chat-$a" \
            ROUTER_STATE_FILE="$cb_tmp/state.json" "$BIN/$a"
    done
    for i in 1 2; do
        start "chat-chatd-$i" "$cb_tmp/chatd-$i.log" env "${env[@]}" REGION=$i INSTANCE_ID="chat-chatd-$i" "$BIN/chatd"
    done
    # env execs the program: PID[...] is the actor's own pid
    start chat-gw-1 "$cb_tmp/gw-1.log" env "${env[@]}" REGION=1 INSTANCE_ID=chat-gw-1 \
        GATEWAY_HTTP_ADDR="127.0.0.1:$ph1" GATEWAY_ADMIN_ADDR="127.0.0.1:$pa1" "$BIN/gateway"
    start chat-gw-2 "$cb_tmp/gw-2.log" env "${env[@]}" REGION=2 INSTANCE_ID=chat-gw-2 \
        GATEWAY_HTTP_ADDR="127.0.0.1:$ph2" GATEWAY_ADMIN_ADDR="127.0.0.1:$pa2" "$BIN/gateway"
    wait_http chat-gw-1 "http://127.0.0.1:$pa1/ready" 127.0.0.1
    wait_http chat-gw-2 "http://127.0.0.1:$pa2/ready" 127.0.0.1
    code=$(curl -s -o "$cb_tmp/put.txt" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        -d "{\"vHost\": \"$CHAT_VHOST\", \"backends\": [], \"chatPath\": \"/chat\"}" \
        "http://127.0.0.1:$pa1/api/v1/routes/$CHAT_VHOST")
    [[ $code == 200 || $code == 201 ]] || die "chat: PUT route $CHAT_VHOST: $code $(cat "$cb_tmp/put.txt")"
    # each gateway sees both chatd (their subscriptions) and serves the route (not 404)
    chat_wait_pong chat-gw-1 chat.chatd '>=' 2 10
    chat_wait_pong chat-gw-2 chat.chatd '>=' 2 10
    for p in "$ph1" "$ph2"; do
        for ((i = 0; i < 100; i++)); do
            code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $CHAT_VHOST" "http://127.0.0.1:$p/chat?userId=probe")
            [[ $code != 404 && $code != 000 ]] && break
            sleep 0.1
        done
        [[ $code != 404 && $code != 000 ]] || die "chat: the gateway on :$p does not serve $CHAT_VHOST/chat"
    done
    check_alive
    local gw1=${PID[chat-gw-1]} cd1=${PID[chat-chatd-1]} rd=${PID[chat-redis]}

    # 1. idle sessions: RSS of gateway 1 and chatd 1 before, with all of them open and
    #    acknowledged by chatd (chat.sessions), and after they closed
    local gb cbf rb gd cd rdd ga ca word open failed t0 t1
    sleep 1
    gb=$(chat_rss_kb "$gw1") cbf=$(chat_rss_kb "$cd1") rb=$(chat_rss_kb "$rd")
    say "chat: opening $CHAT_SESSIONS idle sessions on gw-chat-1"
    t0=$(date +%s.%N)
    "$BIN/chat-load" idle --url "ws://127.0.0.1:$ph1/chat" --host "$CHAT_VHOST" \
        --sessions "$CHAT_SESSIONS" --hold-seconds 600 >"$cb_tmp/chat-load-idle.out" 2>>"$cb_tmp/chat-load-idle.err" &
    local idle_pid=$!
    read -r word open failed <<<"$(chat_line "$cb_tmp/chat-load-idle.out" ready 180 "$idle_pid")"
    t1=$(date +%s.%N)
    [[ ${word:-} == ready ]] || die "chat-load idle did not report: $(tail -n 5 "$cb_tmp/chat-load-idle.err")"
    open=${open#open=} failed=${failed#failed=}
    ((open == CHAT_SESSIONS)) || die "chat: only $open of $CHAT_SESSIONS idle sessions opened ($failed failed): $(tail -n 8 "$cb_tmp/chat-load-idle.err")"
    chat_wait_pong chat-chatd-1 chat.sessions '==' "$CHAT_SESSIONS" 60
    chat_wait_pong chat-gw-1 chat.sessions '==' "$CHAT_SESSIONS" 10
    sleep 2 # settled
    gd=$(chat_rss_kb "$gw1") cd=$(chat_rss_kb "$cd1") rdd=$(chat_rss_kb "$rd")
    kill -TERM "$idle_pid" 2>/dev/null || true
    [[ -n $(chat_line "$cb_tmp/chat-load-idle.out" closed 30 "$idle_pid") ]] \
        || die "chat-load idle did not close its sessions: $(tail -n 5 "$cb_tmp/chat-load-idle.err")"
    wait "$idle_pid" 2>/dev/null || true
    chat_wait_pong chat-chatd-1 chat.sessions '==' 0 60
    sleep 2
    ga=$(chat_rss_kb "$gw1") ca=$(chat_rss_kb "$cd1")
    check_alive
    local bgw bcd
    bgw=$(((gd - gb) * 1024 / CHAT_SESSIONS)) bcd=$(((cd - cbf) * 1024 / CHAT_SESSIONS))
    CHAT_IDLE_ROW="| $CHAT_SESSIONS | $gb → $gd → $ga | $cbf → $cd → $ca | $bgw | $bcd | **$((bgw + bcd))** | 10240 | $( ((bgw + bcd <= 10240)) && echo pass || echo FAIL) | $(((rdd - rb) * 1024 / CHAT_SESSIONS)) | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') |"
    say "chat: idle: gateway $bgw B/session, chatd $bcd B/session, sum $((bgw + bcd)) (target <= 10240)"

    # 2. delivery: CHAT_PAIRS senders on gw-chat-1 (region 1) -> receivers on gw-chat-2
    #    (region 2), CHAT_RATE messages/s, CHAT_SECONDS per run, CHAT_ROUNDS runs. CPU of
    #    each actor from /proc/PID/stat between chat-load's "sending" and "sent" lines.
    local -a cpu_names=(chat-gw-1 chat-gw-2 chat-chatd-1 chat-chatd-2 chat-redis)
    local r res n sent
    CHAT_RUNS=$cb_tmp/deliver.tsv
    : >"$CHAT_RUNS"
    local us_tick=$((1000000 / CLK_TCK))
    for ((r = 1; r <= CHAT_ROUNDS; r++)); do
        check_alive
        say "chat: delivery run $r/$CHAT_ROUNDS: $CHAT_PAIRS pairs, $CHAT_RATE msg/s, ${CHAT_SECONDS}s"
        local out=$cb_tmp/chat-load-deliver-$r.out
        "$BIN/chat-load" deliver --send-url "ws://127.0.0.1:$ph1/chat" --recv-url "ws://127.0.0.1:$ph2/chat" \
            --host "$CHAT_VHOST" --pairs "$CHAT_PAIRS" --rate "$CHAT_RATE" --seconds "$CHAT_SECONDS" \
            >"$out" 2>>"$cb_tmp/chat-load-deliver.err" &
        local del_pid=$!
        local -A c0=() c1=()
        [[ -n $(chat_line "$out" sending 120 "$del_pid") ]] \
            || die "chat-load deliver did not start sending: $(tail -n 5 "$cb_tmp/chat-load-deliver.err")"
        for n in "${cpu_names[@]}"; do c0[$n]=$(chat_ticks "${PID[$n]}"); done
        local m0 m1 w0 w1
        m0=$(chat_busy) w0=$(date +%s.%N)
        [[ -n $(chat_line "$out" sent $((CHAT_SECONDS + 30)) "$del_pid") ]] || die "chat-load deliver did not finish sending"
        for n in "${cpu_names[@]}"; do c1[$n]=$(chat_ticks "${PID[$n]}"); done
        m1=$(chat_busy) w1=$(date +%s.%N)
        res=$(chat_line "$out" pairs= 60 "$del_pid")
        [[ -n $res ]] || die "chat-load deliver gave no result: $(tail -n 5 "$cb_tmp/chat-load-deliver.err")"
        wait "$del_pid" 2>/dev/null || true
        echo "$res" >>"$cb_tmp/deliver-results.txt"
        sent=$(kv "$res" sent)
        ((sent > 0)) || die "chat-load deliver sent nothing: $res"
        line="$r"
        for k in rate p50_ms p99_ms max_ms sent acked received lost unacked dup error_frames dropped_sessions; do
            line+=$'\t'$(kv "$res" "$k")
        done
        local ours=0
        for n in "${cpu_names[@]}"; do
            ours=$((ours + c1[$n] - c0[$n]))
            line+=$'\t'$(awk -v d="$((c1[$n] - c0[$n]))" -v u="$us_tick" -v q="$sent" 'BEGIN { printf "%.1f", d * u / q }')
        done
        # chat-load's own CPU over the same span (getrusage, in its result line); the sum of the
        # five; ack p99 (sender -> gateway 1 -> chatd 1 -> Redis and back); the CPUs busy with
        # something else than these six processes during the run (/proc/stat minus ours)
        local lcpu
        lcpu=$(kv "$res" cpu_us)
        line+=$'\t'$(awk -v d="$lcpu" -v q="$sent" 'BEGIN { printf "%.1f", d / q }')
        line+=$'\t'$(awk -v d="$ours" -v u="$us_tick" -v q="$sent" 'BEGIN { printf "%.1f", d * u / q }')
        line+=$'\t'$(kv "$res" ack_p99_ms)
        line+=$'\t'$(awk -v m="$((m1 - m0 - ours))" -v l="$lcpu" -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" \
            'BEGIN { o = m / hz - l / 1e6; if (o < 0) o = 0; printf "%.2f", o / (b - a) }')
        echo "$line" >>"$CHAT_RUNS"
        say "chat: run $r: $res"
        sleep 1
    done
    chat_table
}

# the chat report (CHAT_TEXT) from CHAT_IDLE_ROW and CHAT_RUNS
chat_med_col() { # chat_med_col K: the median of column K of CHAT_RUNS
    awk -F'\t' -v k="$1" '{print $k}' "$CHAT_RUNS" | sort -g \
        | awk '{v[NR] = $1} END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
chat_table() {
    local p99 rate lost
    p99=$(chat_med_col 4) rate=$(chat_med_col 2)
    lost=$(awk -F'\t' '{s += $9} END {print s + 0}' "$CHAT_RUNS")
    local rows
    rows=$(awk -F'\t' '{printf "| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
        $1, $2, $3, $4, $5, $21, $6, $7, $8, $9, $12, $13, $14, $15, $16, $17, $18, $20, $19, $22}' "$CHAT_RUNS")
    CHAT_TEXT="Issue 10's targets. A stack of its own on its own bus: redis-server, router, balancer,
healthd, statsd, apid, **two gateways and two chatd**, gw-chat-1 and chatd-1 with \`REGION=1\`,
gw-chat-2 and chatd-2 with \`REGION=2\` (a gateway prefers a chatd of its own region), one route
\`{\"vHost\": \"$CHAT_VHOST\", \"backends\": [], \"chatPath\": \"/chat\"}\` (admin API PUT). The client is
\`bin/chat-load\` (bench/chat_load.c: libev, wslay's client API, one process).

Idle sessions: \`chat-load idle --sessions $CHAT_SESSIONS\` opens sessions \`?userId=idle<i>\` on gw-chat-1
(paced: ≤ 2000 new a second, ≤ 256 handshakes in flight) and holds them; RSS (VmRSS) of gw-chat-1
and chatd-1 before, when every session is open and chatd-1's \`chat.sessions\` (its pong counter) is
$CHAT_SESSIONS plus 2 s, and 2 s after chatd-1 counted them all closed. Target: gateway + chatd ≤
10 KiB (10240 bytes) per session (Centrifugo: ~30 KB).

| sessions | gateway RSS kB (before → held → after) | chatd RSS kB (before → held → after) | gateway B/session | chatd B/session | gateway + chatd B/session | target | result | redis-server B/session (not in the target) | seconds to open all |
| ---: | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |
$CHAT_IDLE_ROW

Delivery across two regions: \`chat-load deliver --pairs $CHAT_PAIRS --rate $CHAT_RATE --seconds $CHAT_SECONDS\`:
senders s0..s$((CHAT_PAIRS - 1)) on gw-chat-1 (region 1), receivers r0..r$((CHAT_PAIRS - 1)) on gw-chat-2 (region 2); s<i> sends
\`{\"type\":\"message:send\",\"to\":\"r<i>\",\"text\":\"<send time ns>\",\"id\":\"<unique>\"}\` round robin over the
pairs at $CHAT_RATE messages/s in total (paced every millisecond; one warm-up message per pair
first); latency = receive time − the send time in the text (CLOCK_MONOTONIC, one process), so it
includes the client's own queueing. Lost = acked but never received (within 5 s after the last send).
CPU µs per message: utime+stime from /proc/PID/stat between the first and the last send, divided
by the messages sent (\"the five\": both gateways, both chatd and redis-server together). \"ack p99\": send →
ack (sender → gw-chat-1 → chatd-1 → Redis and back). \"other load\": CPUs busy with anything else than
these six processes during the run (/proc/stat; other work on this machine makes the latencies
unreliable). $CHAT_ROUNDS runs; target p99 ≤ 5 ms at 10,000 messages/s, 0 lost.

| result | rate reached (median) | p99 ms (median) | lost (all runs) |
| --- | ---: | ---: | ---: |
| $(awk -v p="$p99" -v r="$rate" -v l="$lost" -v t="$CHAT_RATE" 'BEGIN { print (p <= 5 && l == 0 && r >= 0.98 * t && t >= 10000) ? "pass" : "FAIL" }') | $(awk -v v="$rate" 'BEGIN { printf "%.0f", v }') / $CHAT_RATE | $(awk -v v="$p99" 'BEGIN { printf "%.2f", v }') | $lost |

| run | msgs/s | p50 ms | p99 ms | max ms | ack p99 ms | sent | acked | received | lost | error frames | sessions dropped | gw-chat-1 µs/msg | gw-chat-2 µs/msg | chatd-1 µs/msg | chatd-2 µs/msg | redis-server µs/msg | the five | chat-load µs/msg | other load (CPUs) |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$rows"
}

if [[ $ONLY == chat ]]; then
    chat_bench
    echo
    echo "$CHAT_TEXT"
    [[ $OUT == - ]] && exit 0
    mkdir -p "$(dirname "$OUT")"
    cat >"$OUT.tmp" <<EOF
# Performance: chat only

Generated by \`BENCH_ONLY=chat bench/bench.sh\` (bench/README.md): only the chat rows of \`make bench\`.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); Switchyard $(git rev-parse --short HEAD 2>/dev/null || echo unknown), binaries from $SRC_BIN.
- Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r); $(redis-server --version | awk '{print $1, $2, $3}').

## Chat

$CHAT_TEXT
EOF
    mv "$OUT.tmp" "$OUT"
    say "wrote $OUT"
    exit 0
fi

# ---------------------------------------------------------------------------
# HTTPS and route policy (issue 11; BENCH_ONLY=tls runs only this). A stack of its
# own: one EC P-256 self-signed certificate for localhost (openssl req, in the temp
# dir) served by nginx (bench/nginx.conf.in plus `listen ... ssl` and the ssl_*
# lines), HAProxy (bench/haproxy.cfg.in plus `ssl crt`) and a gateway's HTTPS
# listener (certificate installed through the admin API), each in front of one
# demo backend of its own (1 KiB); the Switchyard side is all seven actor kinds on
# their own bus (TLS_BUS) with redis-server (REDIS_URL: the rate limit's sync).
# Same TLS settings everywhere: TLS 1.2 and 1.3, the gateway's TLS 1.2 cipher list
# with server preference, OpenSSL's default TLS 1.3 suites and groups, tickets on.
#   1. HTTPS keep-alive: wrk -t1 -c<conns> --latency over https, as the HTTP rows.
#   2. Handshakes: TLS_CLIENTS `openssl s_time` processes in parallel against one
#      server: full TLS 1.3 handshakes (-new), resumed TLS 1.2 (-reuse -tls1_2) and
#      resumed TLS 1.3 (-reuse -www: s_time reads only with -www, and a TLS 1.3
#      ticket arrives after the handshake, so without a read nothing resumes; the
#      request is GET / with a Host header, one proxied 1 KiB response). The server
#      process's CPU per handshake too: on 2 cores the clients, not the server, set
#      the pace (the table says how busy the server was).
#   3. Route policy: plain HTTP keep-alive to the same gateway, on four routes that
#      differ only in their policy (none, rateLimit, bearer, basic); the gateway's
#      (and redis-server's) CPU per request, and the difference to the plain route
#      within each round.
TLS_TEXT=""
TLS_TARGETS=(nginx haproxy switchyard)
TLS_MODES=(full13 resumed12 resumed13)
POLICY_ROUTES=(plain ratelimit bearer basic)
# the gateway's TLS 1.2 list (gateway/gw_tls.c S_CIPHERS), for nginx and HAProxy too
TLS12_CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
TLS_TOKEN=bench-token-0b5e3f1c9a7d
TLS_BASIC_USER=bench
TLS_BASIC_PASS=bench-password-7c41
# s_time -www PATH sends "GET PATH HTTP/1.0\r\n\r\n": this PATH adds a Host header
TLS_WWW=$'/ HTTP/1.0\r\nHost: '"$HOST_HEADER"$'\r\nX-Bench: s_time'
declare -A TLS_PORT=() TLS_URL=() POL_HOST=() POL_AUTH=() POL_WHAT=()

# tls_server_pids TARGET: the server process(es) of a target (nginx: master and worker)
tls_server_pids() {
    case $1 in
    nginx) echo "${PID[tls-nginx]} $TLS_NGINX_WORKERS" ;;
    haproxy) echo "${PID[tls-haproxy]}" ;;
    *) echo "${PID[tls-gw]}" ;;
    esac
}
TLS_CPU_NAMES=(nginx haproxy switchyard backend redis "${ACTORS[@]}")
# tls_snap ARRAYNAME: CPU ticks of every process of the TLS stack, by name
# shellcheck disable=SC2034
tls_snap() {
    local -n tsnap=$1
    local n
    for n in "${TLS_CPU_NAMES[@]}"; do
        # shellcheck disable=SC2046
        case $n in
        nginx | haproxy | switchyard) tsnap[$n]=$(cpu_ticks $(tls_server_pids "$n")) ;;
        *) tsnap[$n]=$(cpu_ticks "${PID[tls-$n]}") ;;
        esac
    done
}
# the access logs are emptied before each run (HAProxy's goes on at its old offset, a hole)
tls_log_reset() { : >"$TLS_TMP/nginx-access.log"; : >"${LOGFILE[tls-haproxy]}"; : >"${LOGFILE[tls-gw]}"; }
tls_access_lines() { # tls_access_lines TARGET: access lines in its log since the reset
    local f
    case $1 in
    nginx) f=$TLS_TMP/nginx-access.log ;;
    haproxy) f=${LOGFILE[tls-haproxy]} ;;
    *) f=${LOGFILE[tls-gw]} ;;
    esac
    grep -ac '"msg":"access"' "$f" || true
}

# tls_wrk ROUND CONNS TARGET SECONDS [record]: wrk over https, keep-alive
declare -A TT0=() TT1=()
tls_wrk() {
    local r=$1 c=$2 t=$3 d=$4 rec=${5:-record} n
    local out=$TLS_TMP/wrk/https-$t-c$c-r$r.txt m0 m1 w0 w1
    check_alive
    tls_log_reset
    m0=$(machine_busy) w0=$(self_children)
    tls_snap TT0
    wrk -t1 -c"$c" -d"${d}s" --latency -H "Host: $HOST_HEADER" "${TLS_URL[$t]}" >"$out" 2>&1 \
        || die "wrk failed against $t over https: $(cat "$out")"
    tls_snap TT1
    m1=$(machine_busy) w1=$(self_children)
    check_alive
    local rps p50 p99 reqs non2xx sock lines
    read -r rps p50 p99 reqs non2xx sock < <(wrk_parse "$out")
    [[ -n $reqs && $reqs -gt 0 ]] || die "wrk did no https requests against $t: $(cat "$out")"
    lines=$(tls_access_lines "$t")
    ((lines > 0)) || die "$t wrote no access lines over https"
    [[ $rec == record ]] || return 0
    local ours=0 all=-1
    for n in "${TLS_CPU_NAMES[@]}"; do ours=$((ours + TT1[$n] - TT0[$n])); done
    if [[ $t == switchyard ]]; then
        all=$((TT1[switchyard] - TT0[switchyard]))
        for n in "${ACTORS[@]}"; do all=$((all + TT1[$n] - TT0[$n])); done
    fi
    awk -v r="$r" -v c="$c" -v t="$t" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v q="$reqs" -v n2="$non2xx" \
        -v se="$sock" -v px="$((TT1[$t] - TT0[$t]))" -v al="$all" -v be="$((TT1[backend] - TT0[backend]))" \
        -v u="$((1000000 / CLK_TCK))" -v oc="$((m1 - m0 - ours - (w1 - w0)))" -v hz="$CLK_TCK" -v d="$d" -v ll="$lines" \
        'BEGIN { if (oc < 0) oc = 0
                 printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%s\n", r, c, t, rps, p50, p99, q, n2, se,
                     px * u / q, (al < 0 ? -1 : al * u / q), be * u / q, oc / hz / d, ll }' >>"$TLS_HTTPS"
    printf 'bench: tls round %s https c=%-4s %-10s %10.0f req/s  p99 %7.2f ms  non-2xx %s  socket errors %s\n' \
        "$r" "$c" "$t" "$rps" "$p99" "$non2xx" "$sock" >&2
}

# tls_stime ROUND MODE TARGET SECONDS [record]: TLS_CLIENTS s_time processes at once
tls_stime() {
    local r=$1 mode=$2 t=$3 d=$4 rec=${5:-record} i p rc=0
    local -a args=() clients=()
    case $mode in
    full13) args=(-new) ;;
    resumed12) args=(-reuse -tls1_2) ;;
    resumed13) args=(-reuse -www "$TLS_WWW") ;;
    esac
    local out=$TLS_TMP/hs/$mode-$t-r$r s0 s1 c0 c1 w0 w1
    check_alive
    tls_log_reset
    # shellcheck disable=SC2046
    s0=$(cpu_ticks $(tls_server_pids "$t"))
    c0=$(self_children) w0=$(date +%s.%N)
    for ((i = 0; i < TLS_CLIENTS; i++)); do
        openssl s_time -connect "127.0.0.1:${TLS_PORT[$t]}" "${args[@]}" -time "$d" >"$out.$i" 2>&1 &
        clients+=($!)
    done
    for p in "${clients[@]}"; do wait "$p" || rc=$?; done
    w1=$(date +%s.%N) c1=$(self_children)
    # shellcheck disable=SC2046
    s1=$(cpu_ticks $(tls_server_pids "$t"))
    check_alive
    ((rc == 0)) || die "openssl s_time ${args[*]} against $t failed (exit $rc): $(tail -n 5 "$out.0")"
    [[ $rec == record ]] || return 0
    # "N connections in T real seconds, B bytes read per connection" per client; the
    # progress line has one character per connection: r resumed, * not
    local res
    res=$(awk '/ connections in [0-9]+ real seconds/ { n += $1; for (i = 2; i < NF; i++) if ($(i + 1) == "bytes") b += $1 * $i }
        /^[*rt3]+$/ { resumed += gsub(/r/, "r"); other += gsub(/[*t3]/, "*") }
        END { printf "%d %d %d %.0f", n, resumed, other, (n > 0 ? b / n : 0) }' "$out".*)
    local n resumed other bytes
    read -r n resumed other bytes <<<"$res"
    ((n > 0)) || die "openssl s_time made no connections to $t ($mode): $(tail -n 5 "$out.0")"
    awk -v r="$r" -v m="$mode" -v t="$t" -v n="$n" -v a="$w0" -v b="$w1" -v s="$((s1 - s0))" -v c="$((c1 - c0))" \
        -v u="$((1000000 / CLK_TCK))" -v hz="$CLK_TCK" -v rs="$resumed" -v ot="$other" -v by="$bytes" \
        'BEGIN { printf "%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%d\t%d\t%s\n", r, m, t, n, n / (b - a), s * u / n, c * u / n,
                     s / hz / (b - a), rs, ot, by }' >>"$TLS_HS"
    printf 'bench: tls round %s %-9s %-10s %8.0f handshakes/s  server %6.1f µs/handshake  resumed %s of %s\n' \
        "$r" "$mode" "$t" "$(tail -n 1 "$TLS_HS" | cut -f 5)" "$(tail -n 1 "$TLS_HS" | cut -f 6)" "$resumed" "$((resumed + other))" >&2
}

# run_ns PID...: time on a CPU (ns, user + system) of every thread of the pids
# (/proc/PID/task/*/schedstat, first field): finer than utime+stime's ticks
run_ns() {
    local p
    for p in "$@"; do cat "/proc/$p/task/"*/schedstat 2>/dev/null || true; done | awk '{s += $1} END {printf "%.0f\n", s}'
}
# tls_policy ROUND ROUTE SECONDS [record]: plain HTTP keep-alive to the gateway, one route,
# each connection pausing TLS_POLICY_DELAY ms between its requests (a wrk script's delay())
tls_policy() {
    local r=$1 rt=$2 d=$3 rec=${4:-record} n g0 g1 d0 d1
    local out=$TLS_TMP/wrk/policy-$rt-r$r.txt
    local -a hdr=(-H "Host: ${POL_HOST[$rt]}") script=()
    [[ -n ${POL_AUTH[$rt]} ]] && hdr+=(-H "Authorization: ${POL_AUTH[$rt]}")
    ((TLS_POLICY_DELAY > 0)) && script=(-s "$TLS_TMP/delay.lua")
    check_alive
    tls_log_reset
    tls_snap TT0
    g0=$(run_ns "${PID[tls-gw]}") d0=$(run_ns "${PID[tls-redis]}")
    wrk -t1 -c"$TLS_POLICY_CONNS" -d"${d}s" --latency "${script[@]}" "${hdr[@]}" "http://127.0.0.1:$TLS_GW_HTTP/" \
        >"$out" 2>&1 || die "wrk failed against the $rt route: $(cat "$out")"
    g1=$(run_ns "${PID[tls-gw]}") d1=$(run_ns "${PID[tls-redis]}")
    tls_snap TT1
    check_alive
    local rps p50 p99 reqs non2xx sock all
    read -r rps p50 p99 reqs non2xx sock < <(wrk_parse "$out")
    [[ -n $reqs && $reqs -gt 0 ]] || die "wrk did no requests on the $rt route: $(cat "$out")"
    [[ $rec == record ]] || return 0
    all=0
    for n in "${ACTORS[@]}"; do all=$((all + TT1[$n] - TT0[$n])); done
    awk -v r="$r" -v rt="$rt" -v rps="$rps" -v p99="$p99" -v q="$reqs" -v e="$((non2xx + sock))" \
        -v gw="$((g1 - g0))" -v rd="$((d1 - d0))" -v al="$all" -v u="$((1000000 / CLK_TCK))" \
        'BEGIN { printf "%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.3f\n", r, rt, rps, p99, q, e, gw / 1000 / q, rd / 1000 / q, al * u / q }' >>"$TLS_POL"
    printf 'bench: tls round %s policy %-9s %10.0f req/s  p99 %7.2f ms  gateway %6.2f µs/req  errors %s\n' \
        "$r" "$rt" "$rps" "$p99" "$(tail -n 1 "$TLS_POL" | cut -f 7)" "$((non2xx + sock))" >&2
}

# tls_params PORT OPTS...: "protocol, cipher, key exchange" a client negotiates (s_client -brief)
tls_params() {
    local port=$1
    shift
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief "$@" </dev/null 2>&1 | awk -F': ' '
        /^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 } /^Server Temp Key/ { k = $2; sub(/,.*/, "", k) }
        /^Signature type/ { s = $2 }
        END { if (p == "") print "(no handshake)"; else printf "%s, %s, %s, %s\n", p, c, k, s }'
}
# tls_resume PORT OPTS...: "<yes|no> <ticket bytes>": does a second connection with the
# first one's session resume (s_client -sess_out/-sess_in, "Reused,"), and how long is
# the ticket the client kept (0: none). Each connection does GET / and reads the answer
# to the end (a TLS 1.3 ticket comes after the handshake).
tls_resume() {
    local port=$1 sess=$TLS_TMP/sess.pem reused bytes
    shift
    rm -f "$sess"
    printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$HOST_HEADER" \
        | timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" -sess_out "$sess" -ign_eof >/dev/null 2>&1 || true
    [[ -s $sess ]] || { echo "no 0"; return 0; }
    bytes=$(openssl sess_id -in "$sess" -noout -text 2>/dev/null | awk '
        /TLS session ticket:/ { on = 1; next }
        on && /^ +[0-9a-f][0-9a-f][0-9a-f][0-9a-f] - / { s = substr($0, 12, 48); n += gsub(/[0-9a-f][0-9a-f]/, "", s); next }
        { on = 0 } END { print n + 0 }')
    reused=$(printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$HOST_HEADER" \
        | timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" -sess_in "$sess" -ign_eof 2>/dev/null \
        | grep -c '^Reused,' || true)
    echo "$([[ ${reused:-0} -gt 0 ]] && echo yes || echo no) $bytes"
}

# tls_close_notify PORT: does the server send close_notify before it closes (GET / HTTP/1.0)
tls_close_notify() {
    local o
    o=$(printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$HOST_HEADER" \
        | timeout 10 openssl s_client -connect "127.0.0.1:$1" -ign_eof 2>&1 || true)
    if grep -q 'unexpected eof' <<<"$o"; then
        echo "**no**: a TCP close, which an OpenSSL client takes as an error and drops the session"
    else
        echo yes
    fi
}

# tls_put_route VHOST EXTRA-JSON: a route to the TLS backend through the admin API
tls_put_route() {
    local code
    code=$(curl -s -o "$TLS_TMP/put.txt" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        -d "{\"vHost\": \"$1\", \"strategy\": \"ROUND_ROBIN\", \"reqActiveLength\": 100000, \"reqQueueLength\": 0,
             \"backends\": [{\"id\": \"demo\", \"hostname\": \"127.0.0.1\", \"port\": $TLS_BACKEND, \"weight\": 1, \"region\": \"1\"}]$2}" \
        "http://127.0.0.1:$TLS_GW_ADMIN/api/v1/routes/$1")
    [[ $code == 200 || $code == 201 ]] || die "tls: PUT route $1: $code $(cat "$TLS_TMP/put.txt")"
}
# tls_wait_code EXPECTED ARGS...: until curl ARGS answers EXPECTED (10 s; routes are live within 1 s)
tls_wait_code() {
    local want=$1 i code=""
    shift
    for ((i = 0; i < 100; i++)); do
        code=$(curl -sk -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true)
        [[ $code == "$want" ]] && return 0
        sleep 0.1
    done
    die "tls: curl $* answers $code, not $want (within 10 s)"
}

tls_bench() {
    local tb=$TMP/tls i a p t c r k rt mode code
    TLS_TMP=$tb
    TLS_BUS=$TMP/tlsbus
    mkdir -p "$tb/nginx-tmp" "$tb/wrk" "$tb/hs" "$TLS_BUS"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    TLS_HTTPS=$tb/https.tsv TLS_HS=$tb/handshakes.tsv TLS_POL=$tb/policy.tsv TLS_POLIR=$tb/policy-ir.tsv
    : >"$TLS_HTTPS"
    : >"$TLS_HS"
    : >"$TLS_POL"
    TLS_POLICY_CONNS=${CONNS%% *}
    echo "function delay() return $TLS_POLICY_DELAY end" >"$tb/delay.lua"

    # the certificate, the same for all three
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -days 2 \
        -keyout "$tb/key.pem" -out "$tb/cert.pem" >"$tb/openssl-req.log" 2>&1 \
        || die "tls: openssl req failed: $(cat "$tb/openssl-req.log")"
    cat "$tb/cert.pem" "$tb/key.pem" >"$tb/cert-and-key.pem" # HAProxy's crt
    TLS_CERT_TEXT=$(openssl x509 -in "$tb/cert.pem" -noout -text | awk -F': ' '
        /Public Key Algorithm/ { a = $2 } /NIST CURVE/ { n = $2 } /Signature Algorithm/ { s = $2 }
        END { printf "%s %s, signed %s", a, n, s }')

    local pb pn ph pg pgs pga pr
    free_port pb
    free_port pn
    free_port ph
    free_port pg
    free_port pgs
    free_port pga
    free_port pr
    TLS_BACKEND=$pb TLS_GW_HTTP=$pg TLS_GW_ADMIN=$pga
    TLS_PORT=([nginx]=$pn [haproxy]=$ph [switchyard]=$pgs)
    TLS_URL=([nginx]="https://127.0.0.1:$pn/" [haproxy]="https://127.0.0.1:$ph/" [switchyard]="https://127.0.0.1:$pgs/")
    TLS_PORTS="backend :$pb, nginx :$pn, haproxy :$ph, gateway https :$pgs (http :$pg, admin :$pga), redis :$pr"
    say "tls: stack on its own bus $TLS_BUS: $TLS_PORTS"

    start tls-backend "$tb/backend.log" "$BIN/demo-backend" --port "$pb" --body-bytes "$BODY_BYTES" \
        --log-level warn --log-format json
    wait_http tls-backend "http://127.0.0.1:$pb/"

    # nginx: bench/nginx.conf.in with its paths in $tb, the listener with ssl
    local ul="" sp="        "
    [[ $(id -u) -eq 0 ]] && ul="user root;"
    sed -e "s|@TMP@|$tb|g" -e "s|@PORT@|$pn|g" -e "s|@BACKEND_PORT@|$pb|g" -e "s|@USER_LINE@|$ul|" \
        -e "s|^ *listen 127.0.0.1:$pn;\$|${sp}listen 127.0.0.1:$pn ssl;\n${sp}ssl_certificate $tb/cert.pem;\n${sp}ssl_certificate_key $tb/key.pem;\n${sp}ssl_protocols TLSv1.2 TLSv1.3;\n${sp}ssl_ciphers $TLS12_CIPHERS;\n${sp}ssl_prefer_server_ciphers on;\n${sp}ssl_session_tickets on;|" \
        bench/nginx.conf.in >"$tb/nginx.conf"
    grep -q "listen 127.0.0.1:$pn ssl;" "$tb/nginx.conf" \
        || die "tls: bench/nginx.conf.in has no 'listen 127.0.0.1:@PORT@;' line to add ssl to"
    nginx -p "$tb/" -c "$tb/nginx.conf" -t >"$tb/nginx-check.log" 2>&1 \
        || die "tls: nginx -t failed: $(cat "$tb/nginx-check.log")"
    start tls-nginx "$tb/nginx.log" nginx -p "$tb/" -c "$tb/nginx.conf" -g 'daemon off;'
    wait_http tls-nginx "${TLS_URL[nginx]}"
    TLS_NGINX_WORKERS=""
    for ((i = 0; i < 50; i++)); do
        TLS_NGINX_WORKERS=$(children_of "${PID[tls-nginx]}")
        [[ $(wc -w <<<"$TLS_NGINX_WORKERS") -eq 1 ]] && break
        sleep 0.1
    done
    TLS_NGINX_WORKERS=${TLS_NGINX_WORKERS% }
    [[ $(wc -w <<<"$TLS_NGINX_WORKERS") -eq 1 ]] || die "tls: expected one nginx worker, found: '$TLS_NGINX_WORKERS'"

    # HAProxy: bench/haproxy.cfg.in, the bind with ssl, X-Forwarded-Proto https
    sed -e "s|@TMP@|$tb|g" -e "s|@PORT@|$ph|g" -e "s|@BACKEND_PORT@|$pb|g" \
        -e "s|^\( *bind 127.0.0.1:$ph\)\$|\1 ssl crt $tb/cert-and-key.pem ssl-min-ver TLSv1.2 ciphers $TLS12_CIPHERS alpn http/1.1|" \
        -e "s|X-Forwarded-Proto http\$|X-Forwarded-Proto https|" bench/haproxy.cfg.in >"$tb/haproxy.cfg"
    grep -q " ssl crt " "$tb/haproxy.cfg" && grep -q "X-Forwarded-Proto https" "$tb/haproxy.cfg" \
        || die "tls: bench/haproxy.cfg.in has no 'bind 127.0.0.1:@PORT@' or 'X-Forwarded-Proto http' line to change"
    haproxy -c -q -f "$tb/haproxy.cfg" >"$tb/haproxy-check.log" 2>&1 \
        || die "tls: haproxy -c failed: $(cat "$tb/haproxy-check.log")"
    start tls-haproxy "$tb/haproxy-access.log" haproxy -f "$tb/haproxy.cfg" -db
    wait_http tls-haproxy "${TLS_URL[haproxy]}"

    # redis-server and the Switchyard stack
    TLS_REDIS_PORT=$pr
    start tls-redis "$tb/redis.log" redis-server --port "$pr" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$tb" --maxclients 1000
    for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli -p "$pr" PING 2>/dev/null) == PONG ]] && break
        alive tls-redis || die "tls: redis-server exited: $(tail -n 5 "$tb/redis.log")"
        sleep 0.1
    done
    [[ $(redis-cli -p "$pr" PING 2>/dev/null) == PONG ]] || die "tls: redis-server does not answer on :$pr"
    local -a env=(BUS_DIR="$TLS_BUS" LOG_FORMAT=json REGION=1 REDIS_URL="redis://127.0.0.1:$pr")
    for a in "${ACTORS[@]}"; do
        start "tls-$a" "$tb/$a.log" env "${env[@]}" LOG_LEVEL=warn INSTANCE_ID="tls-$a" \
            ROUTER_STATE_FILE="$tb/state.json" "$BIN/$a"
    done
    start tls-gw "$tb/gw.log" env "${env[@]}" LOG_LEVEL=info INSTANCE_ID=tls-gw GATEWAY_HTTP_ADDR="127.0.0.1:$pg" \
        GATEWAY_HTTPS_ADDR="127.0.0.1:$pgs" GATEWAY_ADMIN_ADDR="127.0.0.1:$pga" GATEWAY_LEASE_TTL=1s \
        GATEWAY_ACCESS_LOG=true "$BIN/gateway"
    wait_http tls-gw "http://127.0.0.1:$pga/ready" 127.0.0.1

    # routes (admin API): the HTTPS rows' route and the four policy routes
    local digest basic_hash
    digest=$(printf '%s' "$TLS_TOKEN" | sha256sum | awk '{print $1}')
    basic_hash=$(openssl passwd -6 "$TLS_BASIC_PASS")
    POL_HOST=([plain]=plain.bench [ratelimit]=ratelimit.bench [bearer]=bearer.bench [basic]=basic.bench)
    POL_AUTH=([plain]="" [ratelimit]="" [bearer]="Bearer $TLS_TOKEN"
        [basic]="Basic $(printf '%s:%s' "$TLS_BASIC_USER" "$TLS_BASIC_PASS" | base64 -w0)")
    POL_WHAT=([plain]="none"
        [ratelimit]="\`\"rateLimit\": {\"requests\": 1000000000, \"windowSeconds\": 3600}\` (never reached; key: ip)"
        [bearer]="\`\"auth\": {\"type\": \"bearer\", \"tokens\": [\"<sha256 hex>\"]}\`, \`Authorization: Bearer <token>\`"
        [basic]="\`\"auth\": {\"type\": \"basic\", \"users\": {\"$TLS_BASIC_USER\": \"<openssl passwd -6>\"}}\`, \`Authorization: Basic ...\`")
    tls_put_route "$HOST_HEADER" ""
    tls_put_route plain.bench ""
    tls_put_route ratelimit.bench ', "rateLimit": {"requests": 1000000000, "windowSeconds": 3600}'
    tls_put_route bearer.bench ", \"auth\": {\"type\": \"bearer\", \"tokens\": [\"$digest\"]}"
    tls_put_route basic.bench ", \"auth\": {\"type\": \"basic\", \"users\": {\"$TLS_BASIC_USER\": \"$basic_hash\"}}"
    # the certificate (domain "*": the default), then poll a handshake until it is live
    local body resp
    body=$(printf '{"domain": "*", "cert": "%s", "key": "%s"}' \
        "$(awk '{printf "%s\\n", $0}' "$tb/cert.pem")" "$(awk '{printf "%s\\n", $0}' "$tb/key.pem")")
    code=$(curl -s -o "$tb/cert-post.txt" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$body" "http://127.0.0.1:$pga/api/v1/certificates")
    [[ $code == 200 || $code == 201 ]] || die "tls: POST /api/v1/certificates: $code $(cat "$tb/cert-post.txt")"
    for ((i = 0; i < 100; i++)); do
        resp=$(timeout 5 openssl s_client -connect "127.0.0.1:$pgs" -brief </dev/null 2>&1 || true)
        grep -q '^Protocol version' <<<"$resp" && break
        sleep 0.1
    done
    ((i < 100)) || die "tls: no TLS handshake with the gateway's HTTPS listener :$pgs within 10 s of the certificate"
    wait_http tls-gw "${TLS_URL[switchyard]}"

    # the same work everywhere: what reaches the backend and what comes back
    local echo_body
    for t in "${TLS_TARGETS[@]}"; do
        echo_body=$(curl -sk -H "Host: $HOST_HEADER" "${TLS_URL[$t]}echo")
        for h in x-request-id x-forwarded-for x-forwarded-host x-real-ip; do
            grep -qi "\"$h\"" <<<"$echo_body" || die "tls: $t does not send $h upstream: $echo_body"
        done
        grep -qi '"x-forwarded-proto":"https"' <<<"$echo_body" \
            || die "tls: $t does not send X-Forwarded-Proto: https upstream: $echo_body"
        resp=$(curl -sk -D - -o "$tb/body.$t" -H "Host: $HOST_HEADER" "${TLS_URL[$t]}")
        grep -q '^HTTP/1.1 200' <<<"$resp" || die "tls: $t: not 200: $resp"
        grep -qi '^x-request-id:' <<<"$resp" || die "tls: $t does not return X-Request-Id: $resp"
        [[ $(stat -c %s "$tb/body.$t") -eq $BODY_BYTES ]] || die "tls: $t: body is not $BODY_BYTES bytes"
    done
    # the policy routes are live and do what they say (wrong or missing credentials: 401)
    local gwu="http://127.0.0.1:$pg/"
    tls_wait_code 200 -H "Host: plain.bench" "$gwu"
    tls_wait_code 200 -H "Host: ratelimit.bench" "$gwu"
    resp=$(curl -s -D - -o /dev/null -H "Host: ratelimit.bench" "$gwu")
    grep -qi '^ratelimit-limit:' <<<"$resp" || die "tls: the rate-limited route answers without RateLimit-Limit: $resp"
    tls_wait_code 401 -H "Host: bearer.bench" "$gwu"
    tls_wait_code 401 -H "Host: bearer.bench" -H "Authorization: Bearer not-$TLS_TOKEN" "$gwu"
    tls_wait_code 200 -H "Host: bearer.bench" -H "Authorization: ${POL_AUTH[bearer]}" "$gwu"
    tls_wait_code 401 -H "Host: basic.bench" "$gwu"
    tls_wait_code 401 -H "Host: basic.bench" -u "$TLS_BASIC_USER:not-$TLS_BASIC_PASS" "$gwu"
    tls_wait_code 200 -H "Host: basic.bench" -H "Authorization: ${POL_AUTH[basic]}" "$gwu"

    # what each server negotiates, and how it resumes
    TLS_PARAMS_TABLE="| server | TLS 1.3 (default client) | TLS 1.2 (\`-tls1_2\`) | TLS 1.2 resumption: ticket | TLS 1.2 resumption: session-ID cache (\`-no_ticket\`) | TLS 1.3 resumption | TLS 1.3 ticket kept by the client | close_notify when it closes |
| --- | --- | --- | --- | --- | --- | --- | --- |"
    local p13 p12 r12 r12n r13 b12 b13 kind cn
    for t in "${TLS_TARGETS[@]}"; do
        p=${TLS_PORT[$t]}
        p13=$(tls_params "$p")
        p12=$(tls_params "$p" -tls1_2)
        read -r r12 b12 <<<"$(tls_resume "$p" -tls1_2)"
        read -r r12n _ <<<"$(tls_resume "$p" -tls1_2 -no_ticket)"
        read -r r13 b13 <<<"$(tls_resume "$p")"
        kind="no ticket"
        ((b13 > 0)) && kind="$b13 bytes ($( ((b13 > 64)) && echo "stateless: the session, encrypted" || echo "stateful: an id into the server's cache"))"
        cn=$(tls_close_notify "$p")
        TLS_PARAMS_TABLE+=$'\n'"| $t | $p13 | $p12 | $r12 ($( ((b12 > 0)) && echo "$b12-byte ticket" || echo "no ticket")) | $r12n | $r13 | $kind | $cn |"
        say "tls: $t: $p13; $p12; TLS 1.2 ticket resumption $r12 ($b12 bytes), session-ID resumption $r12n; TLS 1.3 resumption $r13 ($b13 bytes); close_notify ${cn%%:*}"
    done
    check_alive

    # warm-up, then interleaved rounds
    local warm=$((DURATION < 3 ? DURATION : 3)) nt=${#TLS_TARGETS[@]} np=${#POLICY_ROUTES[@]}
    say "tls: warm-up ${warm}s per configuration"
    for c in $CONNS; do
        for t in "${TLS_TARGETS[@]}"; do tls_wrk 0 "$c" "$t" "$warm" warmup; done
    done
    for t in "${TLS_TARGETS[@]}"; do tls_stime 0 full13 "$t" 1 warmup; done
    for rt in "${POLICY_ROUTES[@]}"; do tls_policy 0 "$rt" "$warm" warmup; done
    say "tls: $TLS_ROUNDS rounds: https keep-alive ${DURATION}s, handshakes ${TLS_HS_SECONDS}s ($TLS_CLIENTS s_time clients), policy ${DURATION}s"
    for ((r = 1; r <= TLS_ROUNDS; r++)); do
        for c in $CONNS; do
            for ((k = 0; k < nt; k++)); do
                tls_wrk "$r" "$c" "${TLS_TARGETS[$(((k + r - 1) % nt))]}" "$DURATION"
                sleep 0.5
            done
        done
        for mode in "${TLS_MODES[@]}"; do
            for ((k = 0; k < nt; k++)); do
                tls_stime "$r" "$mode" "${TLS_TARGETS[$(((k + r - 1) % nt))]}" "$TLS_HS_SECONDS"
                sleep 0.5
            done
        done
        # each policy route between two runs of the plain one: plain A plain B plain C plain
        tls_policy "$r" plain "$DURATION"
        for ((k = 1; k < np; k++)); do
            sleep 0.5
            tls_policy "$r" "${POLICY_ROUTES[$((1 + (k + r - 2) % (np - 1)))]}" "$DURATION"
            sleep 0.5
            tls_policy "$r" plain "$DURATION"
        done
    done
    tls_policy_ir
    tls_table
}

# tls_policy_ir: the policy's cost in instructions, which do not wander with the machine's
# load as CPU time does (the wrk rows' run-to-run spread is about ±3 µs on a 25 µs
# request). A second gateway on the same bus runs under callgrind; each route gets
# TLS_IR_REQUESTS keep-alive requests from one curl (URL globbing), the counters zeroed
# before and dumped after (callgrind_control), so each route's instructions per request
# are the gateway's own for that route; every route is sent the same Authorization
# header (the bearer one; basic: its own), so only the policy differs.
tls_policy_ir() {
    local tb=$TLS_TMP pcg pcga rt n f ir i
    command -v callgrind_control >/dev/null || die "tls: callgrind_control not found (scripts/deps.sh bench installs valgrind)"
    free_port pcg
    free_port pcga
    start tls-gwcg "$tb/gwcg.log" env BUS_DIR="$TLS_BUS" LOG_FORMAT=json REGION=1 LOG_LEVEL=info \
        INSTANCE_ID=tls-gwcg GATEWAY_HTTP_ADDR="127.0.0.1:$pcg" GATEWAY_ADMIN_ADDR="127.0.0.1:$pcga" \
        GATEWAY_LEASE_TTL=60s GATEWAY_ACCESS_LOG=true REDIS_URL="redis://127.0.0.1:$TLS_REDIS_PORT" \
        valgrind --tool=callgrind --callgrind-out-file="$tb/cg.out.%p" "$BIN/gateway"
    for ((i = 0; i < 600; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$pcga/ready") == 200 ]] && break
        alive tls-gwcg || die "tls: the callgrind gateway exited: $(tail -n 5 "$tb/gwcg.log")"
        sleep 0.1
    done
    ((i < 600)) || die "tls: the callgrind gateway is not ready within 60 s"
    : >"$TLS_POLIR"
    for rt in "${POLICY_ROUTES[@]}"; do
        local auth=${POL_AUTH[bearer]}
        [[ $rt == basic ]] && auth=${POL_AUTH[basic]}
        local -a hdr=(-H "Host: ${POL_HOST[$rt]}" -H "Authorization: $auth")
        # warm: lease, credentials' cache, buffers
        curl -s -o /dev/null "${hdr[@]}" "http://127.0.0.1:$pcg/?w=[1-200]" || die "tls: curl (warm-up) failed on $rt"
        callgrind_control -z "${PID[tls-gwcg]}" >/dev/null || die "tls: callgrind_control -z failed"
        curl -s -o /dev/null -w '%{http_code}\n' "${hdr[@]}" "http://127.0.0.1:$pcg/?n=[1-$TLS_IR_REQUESTS]" \
            >"$tb/cg-codes.txt" || die "tls: curl failed on $rt"
        n=$(grep -c '^200$' "$tb/cg-codes.txt")
        ((n == TLS_IR_REQUESTS)) || die "tls: $rt: $n of $TLS_IR_REQUESTS requests answered 200 under callgrind"
        callgrind_control -d "${PID[tls-gwcg]}" >/dev/null || die "tls: callgrind_control -d failed"
        f=$(ls -t "$tb"/cg.out.* | head -n 1)
        ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
        [[ -n $ir ]] || die "tls: no instruction count in $f"
        printf '%s\t%s\n' "$rt" "$(awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.0f", ir / n }')" >>"$TLS_POLIR"
        say "tls: callgrind: $rt $(tail -n 1 "$TLS_POLIR" | cut -f 2) gateway instructions per request"
    done
    kill "${PID[tls-gwcg]}" 2>/dev/null
    wait "${PID[tls-gwcg]}" 2>/dev/null || true
    local -a keep=()
    for n in "${STARTED[@]}"; do [[ $n == tls-gwcg ]] || keep+=("$n"); done
    STARTED=("${keep[@]}")
}

# the HTTPS/policy report (TLS_TEXT) from TLS_HTTPS, TLS_HS and TLS_POL
tls_table() {
    local c t mode rt v x
    # tmed FILE FILTER-COLUMN-VALUES... : see the calls; median of column K where columns match
    tls_med() { # tls_med FILE K AWK-CONDITION
        awk -F'\t' -v k="$2" "$3 {print \$k}" "$1" | median
    }
    # tls_ratio FILE KEYCOL KEYVAL TCOL T REFT VCOL [inverse]: median over rounds of v(T)/v(REF)
    tls_ratio() {
        awk -F'\t' -v kc="$2" -v kv="$3" -v tc="$4" -v t="$5" -v ref="$6" -v vc="$7" -v inv="${8:-0}" '
            $kc == kv && $tc == t { a[$1] = $vc } $kc == kv && $tc == ref { b[$1] = $vc }
            END { for (r in a) if (r in b && a[r] > 0 && b[r] > 0) print (inv ? b[r] / a[r] : a[r] / b[r]) }' "$1" | median
    }
    tls_pass() { awk -v v="$1" -v op="$2" -v lim="$3" 'BEGIN { if (v == "nan" || v == "") print "-"; else if ((op == ">=") ? (v >= lim) : (v < lim)) print "pass"; else print "FAIL" }'; }

    local https_tab="| target | conns | req/s (median) | × nginx | target ≥ 1.0× | p99 ms | CPU µs/req (proxy process) | CPU µs/req (all actors) | backend µs/req | errors (non-2xx + socket) |
| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
    for c in $CONNS; do
        for t in "${TLS_TARGETS[@]}"; do
            local cond="\$2 == $c && \$3 == \"$t\""
            x=$(tls_ratio "$TLS_HTTPS" 2 "$c" 3 "$t" nginx 4)
            https_tab+=$'\n'"| $t | $c | $(fmt "$(tls_med "$TLS_HTTPS" 4 "$cond")" %.0f) | $(fmt "$x" %.2f) | $([[ $t == switchyard ]] && tls_pass "$x" '>=' 1 || echo -) | $(fmt "$(tls_med "$TLS_HTTPS" 6 "$cond")" %.2f) | $(fmt "$(tls_med "$TLS_HTTPS" 10 "$cond")" %.1f) | $(fmt "$(tls_med "$TLS_HTTPS" 11 "$cond")" %.1f) | $(fmt "$(tls_med "$TLS_HTTPS" 12 "$cond")" %.1f) | $(awk -F'\t' "$cond {s += \$8 + \$9} END {print s + 0}" "$TLS_HTTPS") |"
        done
    done

    local hs_tab="| handshakes | server | handshakes/s (median) | × nginx | server CPU µs per handshake | capacity × nginx (nginx µs ÷ µs) | target ≥ 1.0× | server busy (CPUs) | s_time CPU µs per handshake | resumed | bytes read per connection |
| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    local -A mode_name=([full13]="new, full (TLS 1.3)" [resumed12]="resumed (TLS 1.2)" [resumed13]="resumed (TLS 1.3) + GET /")
    for mode in "${TLS_MODES[@]}"; do
        for t in "${TLS_TARGETS[@]}"; do
            local cond="\$2 == \"$mode\" && \$3 == \"$t\"" xr xc
            xr=$(tls_ratio "$TLS_HS" 2 "$mode" 3 "$t" nginx 5)
            xc=$(tls_ratio "$TLS_HS" 2 "$mode" 3 "$t" nginx 6 1)
            v=$(awk -F'\t' -v m="$mode" "$cond {r += \$9; o += \$10}
                END { if (r + o) printf \"%.1f %%%s\", 100 * r / (r + o), (m != \"full13\" && r < 0.9 * (r + o)) ? \" (**not resumed**)\" : \"\"; else print \"-\" }" "$TLS_HS")
            hs_tab+=$'\n'"| ${mode_name[$mode]} | $t | $(fmt "$(tls_med "$TLS_HS" 5 "$cond")" %.0f) | $(fmt "$xr" %.2f) | $(fmt "$(tls_med "$TLS_HS" 6 "$cond")" %.1f) | $(fmt "$xc" %.2f) | $([[ $t == switchyard && $mode == full13 ]] && echo "$(tls_pass "$xr" '>=' 1) (rate), $(tls_pass "$xc" '>=' 1) (capacity)" || echo -) | $(fmt "$(tls_med "$TLS_HS" 8 "$cond")" %.2f) | $(fmt "$(tls_med "$TLS_HS" 7 "$cond")" %.1f) | $v | $(fmt "$(tls_med "$TLS_HS" 11 "$cond")" %.0f) |"
        done
    done

    local pol_tab="| route | policy | req/s (median) | p99 ms | gateway µs/req | extra vs plain: gateway | extra vs plain: gateway + redis-server | each run's extra, gateway + redis-server (min … max) | target < 2 µs | redis-server µs/req | other actors µs/req | errors |
| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"
    for rt in "${POLICY_ROUTES[@]}"; do
        local cond="\$2 == \"$rt\"" dg dgr rng
        # each run of this route minus the mean of the plain runs just before and after it
        local diffs
        diffs=$(awk -F'\t' -v rt="$rt" '{ n++; r[n] = $1; t[n] = $2; g[n] = $7; a[n] = $7 + $8 }
            END { for (i = 2; i < n; i++)
                      if (t[i] == rt && t[i - 1] == "plain" && t[i + 1] == "plain" && r[i - 1] == r[i] && r[i + 1] == r[i])
                          printf "%.3f %.3f\n", g[i] - (g[i - 1] + g[i + 1]) / 2, a[i] - (a[i - 1] + a[i + 1]) / 2 }' "$TLS_POL")
        dg=$(awk '{print $1}' <<<"$diffs" | median)
        dgr=$(awk '{print $2}' <<<"$diffs" | median)
        rng=$(awk 'NR == 1 { lo = hi = $2 } { if ($2 < lo) lo = $2; if ($2 > hi) hi = $2 } END { if (NR) printf "%.2f … %.2f", lo, hi; else print "-" }' <<<"$diffs")
        if [[ $rt == plain ]]; then
            dg="-" dgr="-" rng="-"
        else
            dg=$(awk -v v="$dg" 'BEGIN { printf "%+.2f", v }') dgr=$(awk -v v="$dgr" 'BEGIN { printf "%+.2f", v }')
        fi
        pol_tab+=$'\n'"| ${POL_HOST[$rt]} | ${POL_WHAT[$rt]} | $(fmt "$(tls_med "$TLS_POL" 3 "$cond")" %.0f) | $(fmt "$(tls_med "$TLS_POL" 4 "$cond")" %.2f) | $(fmt "$(tls_med "$TLS_POL" 7 "$cond")" %.2f) | $dg | $dgr | $rng | $([[ $rt == plain ]] && echo - || tls_pass "$dgr" '<' 2) | $(fmt "$(tls_med "$TLS_POL" 8 "$cond")" %.3f) | $(fmt "$(tls_med "$TLS_POL" 9 "$cond")" %.2f) | $(awk -F'\t' "$cond {s += \$6} END {print s + 0}" "$TLS_POL") |"
    done

    # instructions (callgrind): extra per request over plain, and in µs at the rate the plain
    # route's instructions ran natively in the wrk rows (gateway µs/req ÷ instructions/req)
    local ir_tab="| route | gateway instructions per request (callgrind) | extra vs plain | ≈ extra µs (× plain's native µs per instruction) | target < 2 µs |
| --- | ---: | ---: | ---: | --- |" ir_plain us_plain
    ir_plain=$(awk -F'\t' '$1 == "plain" { print $2 }' "$TLS_POLIR")
    us_plain=$(tls_med "$TLS_POL" 7 '$2 == "plain"')
    for rt in "${POLICY_ROUTES[@]}"; do
        local ir ex us
        ir=$(awk -F'\t' -v rt="$rt" '$1 == rt { print $2 }' "$TLS_POLIR")
        if [[ $rt == plain || -z $ir || -z $ir_plain ]]; then
            ex="-" us="-"
        else
            ex=$(awk -v a="$ir" -v b="$ir_plain" 'BEGIN { printf "%+d", a - b }')
            us=$(awk -v a="$ir" -v b="$ir_plain" -v u="$us_plain" 'BEGIN { if (b > 0 && u > 0) printf "%+.2f", (a - b) * u / b; else print "nan" }')
        fi
        ir_tab+=$'\n'"| ${POL_HOST[$rt]} | ${ir:--} | $ex | $us | $([[ $rt == plain ]] && echo - || tls_pass "${us#+}" '<' 2) |"
    done
    TLS_IR_TEXT="Instructions per request (the same routes, a second gateway on the same bus under \`valgrind
--tool=callgrind\`, $TLS_IR_REQUESTS keep-alive requests per route from one \`curl\`, the counters zeroed
before and dumped after with \`callgrind_control\`; every route sent the same \`Authorization\` header so
that only the policy differs). Instruction counts do not move with the machine's load as CPU time
does; \"≈ extra µs\" prices them at the plain route's native cost per instruction in the rows above
(its gateway µs/req ÷ its instructions/req).

$ir_tab"

    local pol_script="" pol_rate="wrk flat out: the rates differ, and with them how many requests share one wakeup."
    if ((TLS_POLICY_DELAY > 0)); then
        pol_script="-s delay.lua "
        pol_rate="\`delay.lua\` is \`function delay() return $TLS_POLICY_DELAY end\`: each connection waits $TLS_POLICY_DELAY ms after
each response before its next request, a moderate rate (the same for every route, the gateway far
from saturated), so that the CPU per request is not moved by how many requests share a wakeup."
    fi
    local few=""
    ((TLS_ROUNDS < 3)) && few="
**Only $TLS_ROUNDS round(s)** (BENCH_TLS_ROUNDS): a quick look, not a measurement (SPEC §12 wants at least 3)."
    TLS_TEXT="Issue 11's targets: HTTPS keep-alive requests/s and new full handshakes/s ≥ 1.0× nginx with the
same certificate; resumed handshakes/s; the extra CPU per request of a rate-limited and of an
authenticated route < 2 µs. A stack of its own: one certificate, $TLS_CERT_TEXT,
self-signed for CN=localhost (\`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1
-nodes -subj /CN=localhost -days 2\`), served by **nginx** (bench/nginx.conf.in with \`listen ... ssl\`,
\`ssl_certificate\`, \`ssl_protocols TLSv1.2 TLSv1.3\`, \`ssl_ciphers\` = the gateway's TLS 1.2 list,
\`ssl_prefer_server_ciphers on\`, \`ssl_session_tickets on\`; no \`ssl_session_cache\`, i.e. nginx's default
\`none\`), **HAProxy** (bench/haproxy.cfg.in with \`bind ... ssl crt <cert+key> ssl-min-ver TLSv1.2
ciphers <the same list> alpn http/1.1\`, \`X-Forwarded-Proto https\`; its default session cache) and
the **Switchyard gateway's HTTPS listener** (\`GATEWAY_HTTPS_ADDR\`, the certificate as domain \`*\`
through \`POST /api/v1/certificates\`), each in front of one demo backend (1 KiB) with the same work per
request as the HTTP rows (request id, X-Forwarded-*, a JSON access line to a file; checked through
/echo, including \`X-Forwarded-Proto: https\`). The Switchyard side is all seven actor kinds on a bus of
their own with redis-server (the gateway's \`REDIS_URL\`). TLS 1.3 suites and key-exchange groups are
OpenSSL's defaults on every side. $TLS_ROUNDS interleaved rounds (the order rotates per round), medians;
ratios are the median of the ratios within each round.$few

What a client negotiates with each server (\`openssl s_client -brief\`), and how each resumes
(\`s_client -sess_out\` then \`-sess_in\`, \"Reused,\" in the output; \`-no_ticket\` leaves only a
server-side session cache; each connection does GET / and reads the answer to the end, which is when
a TLS 1.3 ticket arrives):

$TLS_PARAMS_TABLE

HTTPS keep-alive: \`wrk -t1 -c<conns> -d${DURATION}s --latency -H 'Host: $HOST_HEADER' https://127.0.0.1:PORT/\`
(TLS 1.3; the URL's host is 127.0.0.1, so each server answers with its default certificate):

$https_tab

Handshakes: $TLS_CLIENTS \`openssl s_time\` processes at once against one server for ${TLS_HS_SECONDS}s,
connections summed over the clients and divided by the wall time: **new** \`s_time -connect
127.0.0.1:PORT -new -time ${TLS_HS_SECONDS}\` (a full TLS 1.3 handshake per connection, nothing else);
**resumed (TLS 1.2)** \`-reuse -tls1_2\` (an abbreviated handshake per connection with the first one's
session, nothing else); **resumed (TLS 1.3) + GET /** \`-reuse -www '/ HTTP/1.0<CRLF>Host:
$HOST_HEADER<CRLF>X-Bench: s_time'\` (s_time reads only with \`-www\`, and a TLS 1.3 ticket arrives after
the handshake, so without a read every \"resumed\" connection is a full one; each connection
therefore also carries one proxied 1 KiB request, HTTP/1.0, closed by the server; a server that
closes without close_notify, see the table above, gets no resumption from s_time: OpenSSL marks
the session not resumable on the unexpected EOF). \"resumed\": the connections s_time reports as
reused (its \`r\` marks). \"server CPU µs per handshake\": utime+stime
of the server process(es) (nginx: master + worker) divided by the connections; on this 2-CPU machine
the s_time processes need about as much CPU per handshake as the server, so the handshakes/s are set
by the clients and the CPU the server gets; the server's CPU per handshake does not depend on that
(\"capacity\": how many handshakes a CPU-second of the server does, relative to nginx). \"server busy\":
its CPU-seconds per second of the run (1.00 = one core saturated).

$hs_tab

Route policy: plain HTTP keep-alive to the same gateway, \`wrk -t1 -c$TLS_POLICY_CONNS -d${DURATION}s --latency
$pol_script-H 'Host: <route>' [-H 'Authorization: ...'] http://127.0.0.1:PORT/\`, four routes to the same backend
that differ only in their policy. $pol_rate CPU: the time on a CPU of every
thread of the gateway (and of redis-server, which gets the rate limit's counts every 50 ms), from
/proc/PID/task/*/schedstat (ns; utime+stime's 10 ms ticks are too coarse for tenths of a µs),
divided by the requests; the other actors (router, balancer, healthd, statsd, chatd, apid) in
utime+stime. Each round runs plain, A, plain, B, plain, C, plain (A, B, C: the policy routes, the
order rotating per round), so every policy run sits between two plain runs: \"extra vs plain\" is
the median over the rounds of (the run − the mean of its two plain neighbours), which cancels a
machine that drifts; the target is judged on gateway + redis-server (redis-server's share is paid
per sync, every 50 ms, not per request: per request it shrinks as the rate grows). Run-to-run noise on this
shared 2-CPU machine is of the order of the target: read each run's extra (the range) with it. The bearer route keeps the
token's SHA-256 (hex); the basic route's hash is SHA-512 crypt (\`openssl passwd -6\`), and the gateway
caches verified Basic headers, so its steady state is a SHA-256 and a lookup too.

$pol_tab

$TLS_IR_TEXT"
}

if [[ $ONLY == tls ]]; then
    tls_bench
    echo
    echo "$TLS_TEXT"
    [[ $OUT == - ]] && exit 0
    mkdir -p "$(dirname "$OUT")"
    cat >"$OUT.tmp" <<EOF
# Performance: HTTPS and route policy only

Generated by \`BENCH_ONLY=tls bench/bench.sh\` (bench/README.md): only the HTTPS and route-policy rows of \`make bench\`.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); Switchyard $(git rev-parse --short HEAD 2>/dev/null || echo unknown), binaries from $SRC_BIN.
- Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r).
- $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -n 1 | awk '{print "HAProxy " $3}'), $(openssl version), $(redis-server --version | awk '{print $1, $2, $3}').

## HTTPS and route policy

$TLS_TEXT
EOF
    mv "$OUT.tmp" "$OUT"
    say "wrote $OUT"
    exit 0
fi

# ---------------------------------------------------------------------------
# Start everything.

free_port P_BACKEND
free_port P_NGINX
free_port P_HAPROXY
free_port P_LEASE
free_port P_LEASE_ADMIN
free_port P_TTL0
free_port P_TTL0_ADMIN

say "temp dir $TMP; backend :$P_BACKEND nginx :$P_NGINX haproxy :$P_HAPROXY" \
    "gateway lease :$P_LEASE (admin :$P_LEASE_ADMIN) ttl0 :$P_TTL0 (admin :$P_TTL0_ADMIN)"

# the idle connections per proxy (below) need descriptors: as many as allowed
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# /big.bin: the large-response rows (a static file of the backend)
mkdir -p "$TMP/static"
head -c "$BIG_BYTES" /dev/zero | tr '\0' 'b' >"$TMP/static/big.bin"
start backend "$TMP/backend.log" "$BIN/demo-backend" --port "$P_BACKEND" --body-bytes "$BODY_BYTES" \
    --static-dir "$TMP/static" --log-level warn --log-format json
wait_http backend "http://127.0.0.1:$P_BACKEND/"

# nginx: its own config, pid file, temp paths and logs under $TMP, foreground.
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"
sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$P_NGINX|g" -e "s|@BACKEND_PORT@|$P_BACKEND|g" \
    -e "s|@USER_LINE@|$user_line|" bench/nginx.conf.in >"$TMP/nginx.conf"
nginx -p "$TMP/" -c "$TMP/nginx.conf" -t >"$TMP/nginx-check.log" 2>&1 \
    || die "nginx -t failed: $(cat "$TMP/nginx-check.log")"
start nginx "$TMP/nginx.log" nginx -p "$TMP/" -c "$TMP/nginx.conf" -g 'daemon off;'
wait_http nginx "http://127.0.0.1:$P_NGINX/"

sed -e "s|@TMP@|$TMP|g" -e "s|@PORT@|$P_HAPROXY|g" -e "s|@BACKEND_PORT@|$P_BACKEND|g" \
    bench/haproxy.cfg.in >"$TMP/haproxy.cfg"
haproxy -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 \
    || die "haproxy -c failed: $(cat "$TMP/haproxy-check.log")"
start haproxy "$TMP/haproxy-access.log" haproxy -f "$TMP/haproxy.cfg" -db
wait_http haproxy "http://127.0.0.1:$P_HAPROXY/"

# BENCH_EXTRA_ROUTES more routes (other vHosts, no backends: nothing for
# healthd to probe, which on one machine would load the one demo backend) in
# the table: the bench route's figures with 100,000 routes against 1 (issue
# 9's target: within 5 %).
EXTRA_ROUTES=$(awk -v n="$EXTRA_ROUTE_COUNT" 'BEGIN {
    for (i = 0; i < n; i++)
        printf ",\n{\"vHost\": \"r%d.extra.bench\", \"backends\": []}", i }')
# The route: written into the router's file store before the router starts.
# Backpressure wide open (reqActiveLength far above the connection counts):
# nginx and HAProxy run without a per-route limit here, so the gateway does too.
cat >"$TMP/state.json" <<EOF
{"format": 1, "version": 1,
 "routes": [{"id": "bench", "vHost": "$HOST_HEADER", "strategy": "ROUND_ROBIN",
             "reqActiveLength": 100000, "reqQueueLength": 0,
             "backends": [{"id": "demo", "hostname": "127.0.0.1", "port": $P_BACKEND, "weight": 1,
                           "region": "1"}]}$EXTRA_ROUTES],
 "regions": [],
 "history": [{"version": 1, "at": "2026-01-01T00:00:00.000Z", "by": "bench", "summary": "bench route"}]}
EOF

export BUS_DIR=$BUS REGION=1 LOG_FORMAT=json LOG_LEVEL=info
for a in "${ACTORS[@]}"; do
    INSTANCE_ID=bench-$a ROUTER_STATE_FILE=$TMP/state.json start "$a" "$TMP/$a.log" "$BIN/$a"
done
INSTANCE_ID=bench-gw-lease GATEWAY_HTTP_ADDR=127.0.0.1:$P_LEASE GATEWAY_ADMIN_ADDR=127.0.0.1:$P_LEASE_ADMIN \
    GATEWAY_LEASE_TTL=1s GATEWAY_ACCESS_LOG=true start gw-lease "$TMP/gw-lease.log" "$BIN/gateway"
INSTANCE_ID=bench-gw-ttl0 GATEWAY_HTTP_ADDR=127.0.0.1:$P_TTL0 GATEWAY_ADMIN_ADDR=127.0.0.1:$P_TTL0_ADMIN \
    GATEWAY_LEASE_TTL=0 GATEWAY_ACCESS_LOG=true start gw-ttl0 "$TMP/gw-ttl0.log" "$BIN/gateway"
wait_http gw-lease "http://127.0.0.1:$P_LEASE_ADMIN/ready" 127.0.0.1
wait_http gw-ttl0 "http://127.0.0.1:$P_TTL0_ADMIN/ready" 127.0.0.1
wait_http gw-lease "http://127.0.0.1:$P_LEASE/"
wait_http gw-ttl0 "http://127.0.0.1:$P_TTL0/"

declare -A URL=(
    [direct]="http://127.0.0.1:$P_BACKEND/"
    [nginx]="http://127.0.0.1:$P_NGINX/"
    [haproxy]="http://127.0.0.1:$P_HAPROXY/"
    [switchyard-lease]="http://127.0.0.1:$P_LEASE/"
    [switchyard-ttl0]="http://127.0.0.1:$P_TTL0/"
)
# the proxy process(es) of each target, and the access log it writes
declare -A GW_OF=([switchyard-lease]=gw-lease [switchyard-ttl0]=gw-ttl0)
# Access logs are emptied before each run. nginx and the gateways write with
# O_APPEND, so they start again at 0; HAProxy clears O_APPEND on its stdout (it
# sets O_NONBLOCK) and goes on at its old offset, leaving a hole: its new lines
# start at the size the file had before it was emptied.
declare -A LOG_OFF=()
log_reset() { # log_reset TARGET
    local log=${LOG_OF[$1]}
    LOG_OFF[$1]=0
    [[ $1 == haproxy ]] && LOG_OFF[$1]=$(stat -c %s "$log")
    : >"$log"
}
log_new() { tail -c +"$((LOG_OFF[$1] + 1))" "${LOG_OF[$1]}"; } # the lines since log_reset
declare -A LOG_OF=([nginx]="$TMP/nginx-access.log" [haproxy]="$TMP/haproxy-access.log"
    [switchyard-lease]="$TMP/gw-lease.log" [switchyard-ttl0]="$TMP/gw-ttl0.log")

# Every actor on the bus must answer (the report names them with their pids).
ping_out=""
for ((i = 0; i < 50; i++)); do
    if ping_out=$("$BIN/switchyard" ping --timeout 2s 2>&1) \
        && [[ $(grep -cE '^(gateway|router|balancer|healthd|statsd|chatd|apid) ' <<<"$ping_out") -ge 8 ]]; then
        break
    fi
    sleep 0.2
done
for k in gateway router balancer healthd statsd chatd apid; do
    grep -q "^$k " <<<"$ping_out" || die "actor $k does not answer on the bus: $ping_out"
done
ACTOR_TABLE=$(awk '/^(gateway|router|balancer|healthd|statsd|chatd|apid) / {printf "| %s | %s | %s |\n", $1, $2, $3}' <<<"$ping_out")

NGINX_WORKERS=""
for ((i = 0; i < 50; i++)); do
    NGINX_WORKERS=$(children_of "${PID[nginx]}")
    [[ $(wc -w <<<"$NGINX_WORKERS") -eq 1 ]] && break
    sleep 0.1
done
NGINX_WORKERS=${NGINX_WORKERS% }
[[ $(wc -w <<<"$NGINX_WORKERS") -eq 1 ]] || die "expected one nginx worker, found: '$NGINX_WORKERS'"
nginx_pids() { echo "${PID[nginx]} $NGINX_WORKERS"; }

# ---------------------------------------------------------------------------
# The same work everywhere: check what reaches the backend (/echo) and what the
# client gets back, once per proxy.

for t in nginx haproxy switchyard-lease switchyard-ttl0; do
    echo_body=$(curl -s -H "Host: $HOST_HEADER" "${URL[$t]}echo")
    for h in x-request-id x-forwarded-for x-forwarded-proto x-forwarded-host x-real-ip; do
        grep -qi "\"$h\"" <<<"$echo_body" || die "$t does not send $h upstream: $echo_body"
    done
    resp=$(curl -s -D - -o "$TMP/body.$t" -H "Host: $HOST_HEADER" "${URL[$t]}")
    grep -qi '^x-request-id:' <<<"$resp" || die "$t does not return X-Request-Id: $resp"
    [[ $(stat -c %s "$TMP/body.$t") -eq $BODY_BYTES ]] || die "$t: body is not $BODY_BYTES bytes"
    grep -q '^HTTP/1.1 200' <<<"$resp" || die "$t: not 200: $resp"
done

# ---------------------------------------------------------------------------
# Measurement.


CPU_NAMES=(backend nginx haproxy gw-lease gw-ttl0 "${ACTORS[@]}")
declare -A T0=() T1=()
# snapshot ARRAYNAME: CPU ticks of every process, by name (snap is a nameref)
# shellcheck disable=SC2034
snapshot() {
    local -n snap=$1
    local n
    for n in "${CPU_NAMES[@]}"; do
        if [[ $n == nginx ]]; then
            # shellcheck disable=SC2046
            snap[$n]=$(cpu_ticks $(nginx_pids))
        else
            snap[$n]=$(cpu_ticks "${PID[$n]}")
        fi
    done
}



# bus_msgs: "instance msgs_in msgs_out" for every instance (switchyard ping -v)
bus_msgs() {
    "$BIN/switchyard" ping -v --timeout 2s 2>/dev/null | awk '
        /^(gateway|router|balancer|healthd|statsd|chatd|apid) / { inst = $2; next }
        /msgs_in=/ { i = o = 0
            for (k = 1; k <= NF; k++) { split($k, kv, "="); if (kv[1] == "msgs_in") i = kv[2]; if (kv[1] == "msgs_out") o = kv[2] }
            print inst, i, o }' || true
}
BUSMSG=$TMP/busmsg.tsv # round conns target instance in_per_req out_per_req
: >"$BUSMSG"

RESULTS=$TMP/results.tsv # round conns target rps p50 p99 reqs non2xx sockerr cpu_proxy cpu_all cpu_backend loglines badlog other_cpus
ACTOR_CPU=$TMP/actors.tsv # round conns target actor us_per_req
: >"$RESULTS"
: >"$ACTOR_CPU"

# run_one ROUND CONNS TARGET DURATION [record]
run_one() {
    local round=$1 c=$2 t=$3 d=$4 record=${5:-record}
    local out="$TMP/wrk/$t-c$c-r$round.txt" log=${LOG_OF[$t]:-} n
    check_alive
    [[ -n $log ]] && log_reset "$t"
    local m0 m1 w0 w1 b0="" b1=""
    [[ $t == switchyard-* && $record == record ]] && b0=$(bus_msgs)
    m0=$(machine_busy)
    w0=$(self_children)
    snapshot T0
    wrk -t1 -c"$c" -d"${d}s" --latency -H "Host: $HOST_HEADER" "${URL[$t]}" >"$out" 2>&1 \
        || die "wrk failed against $t: $(cat "$out")"
    snapshot T1
    m1=$(machine_busy)
    w1=$(self_children)
    [[ -n $b0 ]] && b1=$(bus_msgs)
    check_alive
    [[ $record == record ]] || return 0
    local rps p50 p99 reqs non2xx sock
    read -r rps p50 p99 reqs non2xx sock < <(wrk_parse "$out")
    [[ -n $reqs && $reqs -gt 0 ]] || die "wrk did no requests against $t: $(cat "$out")"
    local loglines=0 badlog=0
    if [[ -n $log ]]; then
        # access lines, and those whose status or body size is not what the backend sent
        read -r loglines badlog < <(log_new "$t" | awk -v bytes="\"bytes\":$BODY_BYTES" -v cb="$([[ $t == haproxy ]] && echo 0 || echo 1)" '
            index($0, "\"msg\":\"access\"") { n++; if (!index($0, "\"status\":200") || (cb && !index($0, bytes))) odd++ }
            END { print n + 0, odd + 0 }')
    fi
    # µs of CPU per request: ticks -> µs is 1e6/CLK_TCK
    local us_tick=$((1000000 / CLK_TCK))
    declare -A d_=()
    for n in "${CPU_NAMES[@]}"; do
        d_[$n]=$((T1[$n] - T0[$n]))
        awk -v r="$round" -v c="$c" -v t="$t" -v n="$n" -v dt="${d_[$n]}" -v u="$us_tick" -v q="$reqs" \
            'BEGIN { printf "%s\t%s\t%s\t%s\t%.2f\n", r, c, t, n, dt * u / q }' >>"$ACTOR_CPU"
    done
    if [[ -n $b0 && -n $b1 ]]; then
        awk -v r="$round" -v c="$c" -v t="$t" -v q="$reqs" '
            NR == FNR { i0[$1] = $2; o0[$1] = $3; next }
            ($1 in i0) { printf "%s\t%s\t%s\t%s\t%.4f\t%.4f\n", r, c, t, $1, ($2 - i0[$1]) / q, ($3 - o0[$1]) / q }
        ' <(echo "$b0") <(echo "$b1") >>"$BUSMSG"
    fi
    local proxy=-1 all=-1 other ours=0
    for n in "${CPU_NAMES[@]}"; do ours=$((ours + d_[$n])); done
    other=$((m1 - m0 - ours - (w1 - w0)))
    ((other > 0)) || other=0
    case $t in
    nginx) proxy=${d_[nginx]} ;;
    haproxy) proxy=${d_[haproxy]} ;;
    switchyard-*)
        proxy=${d_[${GW_OF[$t]}]}
        all=$proxy
        for n in "${ACTORS[@]}"; do all=$((all + d_[$n])); done
        ;;
    esac
    awk -v r="$round" -v c="$c" -v t="$t" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v q="$reqs" \
        -v n2="$non2xx" -v se="$sock" -v px="$proxy" -v al="$all" -v be="${d_[backend]}" -v u="$us_tick" \
        -v ll="$loglines" -v bl="$badlog" -v oc="$other" -v hz="$CLK_TCK" -v d="$d" \
        'BEGIN { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.2f\n", r, c, t, rps, p50, p99, q,
                 n2, se, px < 0 ? -1 : px * u / q, al < 0 ? -1 : al * u / q, be * u / q, ll, bl, oc / hz / d }' >>"$RESULTS"
    printf 'bench: round %s c=%-4s %-17s %10.0f req/s  p99 %7.2f ms  non-2xx %s  socket errors %s  other load %s CPUs\n' \
        "$round" "$c" "$t" "$rps" "$p99" "$non2xx" "$sock" "$(tail -n 1 "$RESULTS" | cut -f 15)" >&2
}

WARM=$((DURATION < 3 ? DURATION : 3))
say "warm-up: ${WARM}s per configuration"
for c in $CONNS; do
    for t in "${TARGETS[@]}"; do run_one 0 "$c" "$t" "$WARM" warmup; done
done

say "measuring: $ROUNDS rounds x $(wc -w <<<"$CONNS") connection counts x ${#TARGETS[@]} targets x ${DURATION}s"
for ((r = 1; r <= ROUNDS; r++)); do
    for c in $CONNS; do
        for ((k = 0; k < ${#TARGETS[@]}; k++)); do
            t=${TARGETS[$(((k + r - 1) % ${#TARGETS[@]}))]}
            run_one "$r" "$c" "$t" "$DURATION"
            sleep 0.5
        done
    done
done

# ---------------------------------------------------------------------------
# Bus cost.

# 1. switchyard ping: one ping per instance on a fresh DEALER (includes the ipc
#    connect and ZMTP handshake: an upper bound of one hop's round trip).
PING_RTT=$TMP/ping.tsv
: >"$PING_RTT"
for ((i = 0; i < 9; i++)); do
    "$BIN/switchyard" ping --timeout 2s 2>/dev/null \
        | awk '$5 == "ms" {print $1 "\t" $4}' >>"$PING_RTT" || true
done
# 2. one connection, lease vs ttl0: the p50 difference is one decide (gateway ->
#    router -> balancer -> router -> gateway) as a request sees it, warm sockets.
HOP=$TMP/hop.tsv
: >"$HOP"
HOP_D=$((DURATION < 5 ? DURATION : 5))
for ((r = 1; r <= ROUNDS; r++)); do
    for t in switchyard-lease switchyard-ttl0; do
        out="$TMP/wrk/hop-$t-r$r.txt"
        check_alive
        log_reset "$t"
        wrk -t1 -c1 -d"${HOP_D}s" --latency -H "Host: $HOST_HEADER" "${URL[$t]}" >"$out" 2>&1 \
            || die "wrk failed: $(cat "$out")"
        read -r rps p50 p99 reqs non2xx sock < <(wrk_parse "$out")
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$p50" "$((non2xx + sock))" >>"$HOP"
    done
done

# 3. Taps: actors mirror bus messages only while a tap is subscribed, so an
#    idle bus (no tap) pays one integer test per message. Measured: lease mode
#    at the first connection count, no tap against one `switchyard tap`
#    attached to every actor (its output thrown away), interleaved rounds.
TAPM=$TMP/tap.tsv
: >"$TAPM"
TAP_D=$((DURATION < 5 ? DURATION : 5))
TAP_PID=""
tap_stop() {
    [[ -n $TAP_PID ]] || return 0
    kill -TERM "$TAP_PID" 2>/dev/null || true
    wait "$TAP_PID" 2>/dev/null || true
    TAP_PID=""
}
tap_wait() { # tap_wait attached|detached: the lease gateway logged it (bounded)
    local i
    for ((i = 0; i < 100; i++)); do
        log_new switchyard-lease | grep -q "\"msg\":\"tap $1\"" && return 0
        sleep 0.05
    done
    die "the lease gateway did not log 'tap $1' within 5 s"
}
C1_TAP=${CONNS%% *}
us_tick=$((1000000 / CLK_TCK))
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in idle attached; do
        check_alive
        log_reset switchyard-lease
        if [[ $mode == attached ]]; then
            "$BIN/switchyard" tap >/dev/null 2>>"$TMP/tap.err" &
            TAP_PID=$!
            tap_wait attached
        fi
        out="$TMP/wrk/tap-$mode-r$r.txt"
        snapshot T0
        tp0=0
        [[ -n $TAP_PID ]] && tp0=$(cpu_ticks "$TAP_PID")
        wrk -t1 -c"$C1_TAP" -d"${TAP_D}s" --latency -H "Host: $HOST_HEADER" "${URL[switchyard-lease]}" >"$out" 2>&1 \
            || die "wrk failed: $(cat "$out")"
        snapshot T1
        tp1=0
        [[ -n $TAP_PID ]] && tp1=$(cpu_ticks "$TAP_PID")
        if [[ $mode == attached ]]; then
            tap_stop
            tap_wait detached
        fi
        read -r rps p50 p99 reqs non2xx sock < <(wrk_parse "$out")
        [[ -n $reqs && $reqs -gt 0 ]] || die "wrk did no requests (tap $mode): $(cat "$out")"
        all=$((T1[gw-lease] - T0[gw-lease]))
        for n in "${ACTORS[@]}"; do all=$((all + T1[$n] - T0[$n])); done
        awk -v r="$r" -v m="$mode" -v rps="$rps" -v p99="$p99" -v q="$reqs" -v u="$us_tick" \
            -v gw="$((T1[gw-lease] - T0[gw-lease]))" -v all="$all" -v tp="$((tp1 - tp0))" -v e="$((non2xx + sock))" \
            'BEGIN { printf "%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\n", r, m, rps, p99, gw * u / q, all * u / q, tp * u / q, e }' >>"$TAPM"
        sleep 0.5
    done
done

# 4. Large responses: GET /big.bin (1 MiB) through each proxy, interleaved
#    rounds; MiB/s is the requests/s (one MiB each) and the proxy's CPU is per
#    MiB relayed.
BIGM=$TMP/big.tsv
: >"$BIGM"
BIG_D=$((DURATION < 5 ? DURATION : 5))
BIG_TARGETS=(nginx haproxy switchyard-lease)
for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < ${#BIG_TARGETS[@]}; k++)); do
        t=${BIG_TARGETS[$(((k + r - 1) % ${#BIG_TARGETS[@]}))]}
        check_alive
        out="$TMP/wrk/big-$t-r$r.txt"
        snapshot T0
        wrk -t1 -c"$BIG_CONNS" -d"${BIG_D}s" --latency -H "Host: $HOST_HEADER" "${URL[$t]}big.bin" \
            >"$out" 2>&1 || die "wrk failed against $t (1 MiB): $(cat "$out")"
        snapshot T1
        read -r rps p50 p99 reqs non2xx sock < <(wrk_parse "$out")
        [[ -n $reqs && $reqs -gt 0 ]] || die "wrk did no 1 MiB requests against $t: $(cat "$out")"
        case $t in
        nginx) n=nginx ;;
        haproxy) n=haproxy ;;
        *) n=${GW_OF[$t]} ;;
        esac
        awk -v r="$r" -v t="$t" -v rps="$rps" -v p99="$p99" -v q="$reqs" -v u="$us_tick" \
            -v px="$((T1[$n] - T0[$n]))" -v e="$((non2xx + sock))" \
            'BEGIN { printf "%s\t%s\t%s\t%s\t%.1f\t%s\n", r, t, rps, p99, px * u / q, e }' >>"$BIGM"
        sleep 0.5
    done
done

# 5. Idle keep-alive connections: IDLE_CONNS connections that each served one
#    request, held idle (bench/idle_conns.py); the proxy process's RSS before,
#    while they are held, and after they closed (is the memory given back?).
IDLEM=$TMP/idle.tsv
: >"$IDLEM"
rss_kb() { # rss_kb PID...: summed VmRSS in kB
    local p sum=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
for t in nginx haproxy switchyard-lease; do
    check_alive
    case $t in
    nginx) pids=$NGINX_WORKERS port=$P_NGINX ;;
    haproxy) pids=${PID[haproxy]} port=$P_HAPROXY ;;
    *) pids=${PID[${GW_OF[$t]}]} port=$P_LEASE ;;
    esac
    # shellcheck disable=SC2086
    before=$(rss_kb $pids)
    coproc IDLE { /usr/bin/python3 "$ROOT/bench/idle_conns.py" 127.0.0.1 "$port" "$IDLE_CONNS" "$HOST_HEADER"; }
    read -r word held <&"${IDLE[0]}" || die "idle_conns.py did not start against $t"
    [[ $word == ready ]] || die "idle_conns.py against $t: $word $held"
    for ((i = 0; i < 20; i++)); do sleep 0.1; done # settled: what the last batch used is given back
    # shellcheck disable=SC2086
    during=$(rss_kb $pids)
    echo >&"${IDLE[1]}"
    while read -r word _ <&"${IDLE[0]}"; do [[ $word == closed ]] && break; done
    wait "$IDLE_PID" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do sleep 0.1; done # the proxy notices the closes
    # shellcheck disable=SC2086
    after=$(rss_kb $pids)
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$held" "$before" "$during" "$after" >>"$IDLEM"
done

# 6. Chat (issue 10): idle chat sessions and delivery across two regions (chat_bench above)
chat_bench

# 7. HTTPS and route policy (issue 11): a stack of its own (tls_bench above)
tls_bench

# ---------------------------------------------------------------------------
# Aggregate.

# col RESULTS-column C TARGET
col() { awk -F'\t' -v c="$2" -v t="$3" -v k="$1" '$2 == c && $3 == t {print $k}' "$RESULTS" | median; }
sumcol() { awk -F'\t' -v c="$2" -v t="$3" -v k="$1" '$2 == c && $3 == t {s += $k} END {print s + 0}' "$RESULTS"; }
actor_med() { awk -F'\t' -v c="$1" -v t="$2" -v a="$3" '$2 == c && $3 == t && $4 == a {print $5}' "$ACTOR_CPU" | median; }

# ratio CONNS TARGET REF: median over the rounds of req/s(TARGET) / req/s(REF) in the same
# round (the two runs are minutes apart at most: robust to a machine that drifts)
ratio() {
    awk -F'\t' -v c="$1" -v t="$2" -v ref="$3" '
        $2 == c && $3 == t { a[$1] = $4 }
        $2 == c && $3 == ref { b[$1] = $4 }
        END { for (r in a) if (r in b && b[r] > 0) print a[r] / b[r] }' "$RESULTS" | median
}
TABLE="| target | conns | req/s (median) | × nginx | × direct | p99 ms | CPU µs/req (proxy process) | CPU µs/req (all actors) | backend µs/req | errors (non-2xx + socket) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
declare -A RPS=()
for c in $CONNS; do
    for t in "${TARGETS[@]}"; do RPS[$c,$t]=$(col 4 "$c" "$t"); done
    for t in "${TARGETS[@]}"; do
        rps=${RPS[$c,$t]}
        xn=$(fmt "$(ratio "$c" "$t" nginx)" %.2f)
        xd=$(fmt "$(ratio "$c" "$t" direct)" %.2f)
        errs=$(($(sumcol 8 "$c" "$t") + $(sumcol 9 "$c" "$t")))
        TABLE+=$'\n'"| $t | $c | $(fmt "$rps" %.0f) | $xn | $xd | $(fmt "$(col 6 "$c" "$t")" %.2f) | $(fmt "$(col 10 "$c" "$t")" %.1f) | $(fmt "$(col 11 "$c" "$t")" %.1f) | $(fmt "$(col 12 "$c" "$t")" %.1f) | $errs |"
    done
done

ACTOR_HDR="| target | conns | gateway (serving) | router | balancer | healthd | statsd | chatd | apid | other gateway (idle) | all actors |"
ACTORS_TABLE="$ACTOR_HDR
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $CONNS; do
    for t in switchyard-lease switchyard-ttl0; do
        gw=${GW_OF[$t]}
        other="gw-lease"
        [[ $gw == gw-lease ]] && other="gw-ttl0"
        row="| $t | $c | $(fmt "$(actor_med "$c" "$t" "$gw")" %.1f)"
        for a in "${ACTORS[@]}"; do row+=" | $(fmt "$(actor_med "$c" "$t" "$a")" %.2f)"; done
        row+=" | $(fmt "$(actor_med "$c" "$t" "$other")" %.2f) | $(fmt "$(col 11 "$c" "$t")" %.1f) |"
        ACTORS_TABLE+=$'\n'"$row"
    done
done

RAW="| round | conns | target | req/s | p50 ms | p99 ms | requests | non-2xx | socket errors | access lines | odd lines | CPU µs/req proxy | all actors | backend | other load (CPUs) |
| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
RAW+=$'\n'$(sort -t$'\t' -k2,2n -k3,3 -k1,1n "$RESULTS" \
    | awk -F'\t' 'function f(v) { return v < 0 ? "-" : sprintf("%.1f", v) }
        {printf "| %s | %s | %s | %.0f | %.3f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %.2f |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9,
         ($3 == "direct" ? "-" : $13), ($3 == "direct" ? "-" : $14), f($10), f($11), f($12), $15}')

# bus cost figures
ping_med() { awk -F'\t' -v k="$1" '$1 == k {print $2}' "$PING_RTT" | median; }
PING_LINE=""
for k in gateway router balancer; do PING_LINE+="$k $(fmt "$(ping_med "$k")" %.2f) ms, "; done
PING_LINE=${PING_LINE%, }
HOP_LEASE=$(awk -F'\t' '$2 == "switchyard-lease" {print $4}' "$HOP" | median)
HOP_TTL0=$(awk -F'\t' '$2 == "switchyard-ttl0" {print $4}' "$HOP" | median)
HOP_RPS_LEASE=$(awk -F'\t' '$2 == "switchyard-lease" {print $3}' "$HOP" | median)
HOP_RPS_TTL0=$(awk -F'\t' '$2 == "switchyard-ttl0" {print $3}' "$HOP" | median)
HOP_ERRS=$(awk -F'\t' '{s += $5} END {print s + 0}' "$HOP")
HOP_DIFF_US=$(awk -v a="$HOP_TTL0" -v b="$HOP_LEASE" 'BEGIN { printf "%.0f", (a - b) * 1000 }')
C1=$(awk '{print $1}' <<<"$CONNS")
# bus messages per request (median over rounds): busm CONNS TARGET INSTANCE in|out
busm() { awk -F'\t' -v c="$1" -v t="$2" -v i="$3" -v k="$([[ $4 == in ]] && echo 5 || echo 6)" \
    '$2 == c && $3 == t && $4 == i {print $k}' "$BUSMSG" | median; }
MSG_TABLE="| target | conns | serving gateway: messages out per request | router: in | balancer: in | healthd: in | statsd: in |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $CONNS; do
    for t in switchyard-lease switchyard-ttl0; do
        gi=bench-${GW_OF[$t]}
        MSG_TABLE+=$'\n'"| $t | $c | $(fmt "$(busm "$c" "$t" "$gi" out)" %.3f) | $(fmt "$(busm "$c" "$t" bench-router in)" %.3f) | $(fmt "$(busm "$c" "$t" bench-balancer in)" %.3f) | $(fmt "$(busm "$c" "$t" bench-healthd in)" %.3f) | $(fmt "$(busm "$c" "$t" bench-statsd in)" %.3f) |"
    done
done
meta() { # meta CONNS TARGET: router+balancer+healthd+statsd µs/req
    local s=0 a v
    for a in router balancer healthd statsd; do
        v=$(actor_med "$1" "$2" "$a")
        s=$(awk -v s="$s" -v v="$v" 'BEGIN { print s + v }')
    done
    echo "$s"
}
META_LEASE=$(meta "$C1" switchyard-lease)
META_TTL0=$(meta "$C1" switchyard-ttl0)
GW_LEASE_US=$(actor_med "$C1" switchyard-lease gw-lease)
GW_TTL0_US=$(actor_med "$C1" switchyard-ttl0 gw-ttl0)
BUS_TEXT="- \`switchyard ping\` round trip over ipc, median of 9 (each ping on a fresh DEALER, so it
  includes the ipc connect and the ZMTP handshake; an upper bound of one hop): $PING_LINE.
- One connection, median of $ROUNDS × ${HOP_D}s: p50 latency $(fmt "$HOP_LEASE" %.3f) ms in lease mode,
  $(fmt "$HOP_TTL0" %.3f) ms with GATEWAY_LEASE_TTL=0 ($(fmt "$HOP_RPS_LEASE" %.0f) vs $(fmt "$HOP_RPS_TTL0" %.0f) req/s;
  errors $HOP_ERRS): one decide (gateway → router → balancer → router → gateway, two bus round trips
  plus the router's and balancer's work) adds **${HOP_DIFF_US} µs** to a request.
- CPU the metadata consumers (router + balancer + healthd + statsd) spend per request at $C1
  connections: $(fmt "$META_LEASE" %.2f) µs in lease mode (request.done batches only), $(fmt "$META_TTL0" %.2f) µs with
  TTL 0 (plus a decide and a pick per request, or per coalesced group of requests). The serving gateway:
  $(fmt "$GW_LEASE_US" %.1f) µs/req in lease mode, $(fmt "$GW_TTL0_US" %.1f) µs/req with TTL 0.
- Bus messages per request (\`switchyard ping -v\` msgs_in/msgs_out before and after each run,
  median of the rounds). In lease mode the gateway sends only request.done batches; with TTL 0
  also one decide per ask (asks are coalesced: waiting requests share one), and the router
  receives the decides and the balancer's leases:

$MSG_TABLE"

# statsd + healthd: the observability budget (issue 8: <= 1 µs per request)
OBS_LEASE=$(awk -v a="$(actor_med "$C1" switchyard-lease statsd)" -v b="$(actor_med "$C1" switchyard-lease healthd)" 'BEGIN { print a + b }')
OBS_TTL0=$(awk -v a="$(actor_med "$C1" switchyard-ttl0 statsd)" -v b="$(actor_med "$C1" switchyard-ttl0 healthd)" 'BEGIN { print a + b }')
tapcol() { awk -F'\t' -v m="$1" -v k="$2" '$2 == m {print $k}' "$TAPM" | median; }
TAP_ERRS=$(awk -F'\t' '{s += $8} END {print s + 0}' "$TAPM")
TAP_TEXT="- statsd + healthd, CPU per proxied request at $C1 connections (median of the rounds; budget
  1 µs): $(fmt "$OBS_LEASE" %.2f) µs in lease mode, $(fmt "$OBS_TTL0" %.2f) µs with TTL 0. statsd decodes every
  request.done batch and adds each request to its windows and histograms; healthd's probes do not
  depend on traffic.
- Taps, lease mode at $C1_TAP connections, $ROUNDS interleaved rounds × ${TAP_D}s (\`switchyard tap >/dev/null\`
  subscribed to every actor, against no tap; errors $TAP_ERRS):

| tap | req/s | p99 ms | serving gateway µs/req | all actors µs/req | the tap process µs/req |
| --- | ---: | ---: | ---: | ---: | ---: |
| none (idle bus) | $(fmt "$(tapcol idle 3)" %.0f) | $(fmt "$(tapcol idle 4)" %.2f) | $(fmt "$(tapcol idle 5)" %.2f) | $(fmt "$(tapcol idle 6)" %.2f) | - |
| one attached | $(fmt "$(tapcol attached 3)" %.0f) | $(fmt "$(tapcol attached 4)" %.2f) | $(fmt "$(tapcol attached 5)" %.2f) | $(fmt "$(tapcol attached 6)" %.2f) | $(fmt "$(tapcol attached 7)" %.2f) |

  With no tap, mirroring is one integer test per message (proto_bus's tap count): the idle row is
  the ordinary lease-mode cost. An attached tap adds, in each actor, one zmq send per bus message
  (the difference between the rows); the tap process itself decodes and prints every message."
BUS_TEXT+=$'\n\n'"$TAP_TEXT"

bigcol() { awk -F'\t' -v t="$1" -v k="$2" '$2 == t {print $k}' "$BIGM" | median; }
BIG_NGINX=$(bigcol nginx 3)
BIG_TABLE="| target | MiB/s (median) | × nginx | p99 ms | proxy CPU µs per MiB | errors |
| --- | ---: | ---: | ---: | ---: | ---: |"
for t in nginx haproxy switchyard-lease; do
    v=$(bigcol "$t" 3)
    BIG_TABLE+=$'\n'"| $t | $(fmt "$v" %.0f) | $(awk -v a="$v" -v b="$BIG_NGINX" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }') | $(fmt "$(bigcol "$t" 4)" %.2f) | $(fmt "$(bigcol "$t" 5)" %.1f) | $(awk -F'\t' -v t="$t" '$2 == t {s += $6} END {print s + 0}' "$BIGM") |"
done
IDLE_TABLE="| proxy | connections held | RSS before (kB) | RSS while held (kB) | bytes per idle connection | RSS after they closed (kB) |
| --- | ---: | ---: | ---: | ---: | ---: |"
while IFS=$'\t' read -r t held before during after; do
    IDLE_TABLE+=$'\n'"| $t | $held | $before | $during | $(awk -v h="$held" -v b="$before" -v d="$during" 'BEGIN { if (h > 0) printf "%.0f", (d - b) * 1024 / h; else print "-" }') | $after |"
done <"$IDLEM"
LARGE_TEXT="Large responses: \`wrk -t1 -c$BIG_CONNS -d${BIG_D}s\` on GET /big.bin (1 MiB, a static file
of the backend), $ROUNDS interleaved rounds, medians:

$BIG_TABLE

Idle keep-alive connections: $IDLE_CONNS connections that each served one request, then held
idle (\`bench/idle_conns.py\`); the proxy process's RSS (nginx: its worker) before, while held
(2 s after the last one served its request, the same wait for every proxy), and 2 s after they
all closed:

$IDLE_TABLE"

# ---------------------------------------------------------------------------
# Profile the gateway when lease mode is below 0.8x nginx at 50 connections.

LEASE50=${RPS[50,switchyard-lease]:-}
NGINX50=${RPS[50,nginx]:-}
BELOW=0
X50=nan
if [[ -n $LEASE50 && -n $NGINX50 ]]; then
    X50=$(ratio 50 switchyard-lease nginx)
    BELOW=$(awk -v x="$X50" 'BEGIN { print (x < 0.8) ? 1 : 0 }')
fi
PROFILE_TEXT=""
if [[ $PROFILE == always || ($PROFILE == auto && $BELOW == 1) ]]; then
    PROF_D=$((DURATION < 5 ? 5 : DURATION))
    gwpid=${PID[gw-lease]}
    log_reset switchyard-lease
    if [[ $PROFILER != callgrind ]] && command -v perf >/dev/null \
        && perf record -e cpu-clock -o "$TMP/perf-check.data" -- true >/dev/null 2>&1; then
        PERF_D=$((PROF_D < 6 ? PROF_D : 6)) # dwarf call graphs: ~10 MB of samples a second
        say "profiling the lease-mode gateway (pid $gwpid) with perf for ${PERF_D}s under wrk -c50"
        wrk -t1 -c50 -d"$((PERF_D + 2))s" -H "Host: $HOST_HEADER" "${URL[switchyard-lease]}" >"$TMP/wrk/profile.txt" 2>&1 &
        wrkpid=$!
        sleep 1
        perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$gwpid" -o "$TMP/perf.data" \
            -- sleep "$PERF_D" >"$TMP/perf-record.log" 2>&1 || true
        wait "$wrkpid" || true
        preport() { perf report -i "$TMP/perf.data" --stdio -g none "$@" 2>/dev/null | grep -v '^#' \
            | sed -e 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' -e 's/[[:space:]]*$//' | awk 'NF'; }
        preport --no-children --sort dso | awk '$1 + 0 >= 0.5' | head -n 10 >"$TMP/perf-dso.txt" || true
        preport --no-children --sort dso,symbol | head -n 25 >"$TMP/perf-self.txt" || true
        preport --children --sort dso,symbol | awk '$3 == "gateway"' \
            | grep -vE '\] (main|_start|proto_actor_run)$' | head -n 25 >"$TMP/perf-incl.txt" || true
        # system calls per request: the gateway, nginx's worker, haproxy, each under wrk -c50
        SYSC=""
        if perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
            for t in switchyard-lease nginx haproxy; do
                case $t in
                nginx) spid=$NGINX_WORKERS ;;
                haproxy) spid=${PID[haproxy]} ;;
                *) spid=$gwpid ;;
                esac
                wrk -t1 -c50 -d5s -H "Host: $HOST_HEADER" "${URL[$t]}" >"$TMP/wrk/syscalls-$t.txt" 2>&1 &
                wrkpid=$!
                sleep 1
                log_reset "$t"
                l0=$(log_new "$t" | grep -ac '"msg":"access"' || true)
                perf stat -x, -e raw_syscalls:sys_enter -p "$spid" -o "$TMP/perf-stat-$t.txt" -- sleep 3 >/dev/null 2>&1 || true
                l1=$(log_new "$t" | grep -ac '"msg":"access"' || true)
                wait "$wrkpid" || true
                n=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$TMP/perf-stat-$t.txt")
                SYSC+="$t $(awk -v n="${n:-0}" -v r="$((l1 - l0))" 'BEGIN { printf "%.1f", (r > 0 ? n / r : 0) }'), "
            done
            SYSC=${SYSC%, }
        fi
        PROFILE_TEXT="Profile of the lease-mode gateway (pid $gwpid) under \`wrk -t1 -c50\`:
\`perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p PID -- sleep $PERF_D\` (the software
clock: this VM has no hardware counters; bench/README.md says how to reproduce it).

Self time by object:

\`\`\`
$(cat "$TMP/perf-dso.txt")
\`\`\`

Self time, top functions:

\`\`\`
$(cat "$TMP/perf-self.txt")
\`\`\`

Inclusive time (children) of the gateway's own functions (first column; inlined ones are
marked, two \`s_put_field\` are the log's and the proxy's):

\`\`\`
$(cat "$TMP/perf-incl.txt")
\`\`\`"
        [[ -n $SYSC ]] && PROFILE_TEXT+="

System calls per request under \`wrk -t1 -c50\` (\`perf stat -e raw_syscalls:sys_enter\` on the
proxy process for 3 s, divided by the access lines written meanwhile): $SYSC."
    elif command -v valgrind >/dev/null; then
        free_port P_CG
        free_port P_CG_ADMIN
        say "profiling a gateway under valgrind --tool=callgrind (:$P_CG; perf unavailable or not chosen)"
        INSTANCE_ID=bench-gw-callgrind GATEWAY_HTTP_ADDR=127.0.0.1:$P_CG GATEWAY_ADMIN_ADDR=127.0.0.1:$P_CG_ADMIN \
            GATEWAY_LEASE_TTL=1s GATEWAY_ACCESS_LOG=true start gw-callgrind "$TMP/gw-callgrind.log" \
            valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" "$BIN/gateway"
        for ((i = 0; i < 300; i++)); do
            [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST_HEADER" "http://127.0.0.1:$P_CG/") == 200 ]] && break
            sleep 0.1
        done
        wrk -t1 -c50 -d"${PROF_D}s" -H "Host: $HOST_HEADER" "http://127.0.0.1:$P_CG/" >"$TMP/wrk/profile.txt" 2>&1 || true
        kill -TERM "${PID[gw-callgrind]}"
        for ((i = 0; i < 200; i++)); do kill -0 "${PID[gw-callgrind]}" 2>/dev/null || break; sleep 0.1; done
        callgrind_annotate "$TMP/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {on = 1} on && !/^-+$/ && NF' \
            | sed "s|$TMP/bin/||" | head -n 30 >"$TMP/callgrind.txt" || true
        PROFILE_TEXT="Profile of a lease-mode gateway under valgrind --tool=callgrind and \`wrk -t1 -c50\` (instructions, self):

\`\`\`
$(cat "$TMP/callgrind.txt")
\`\`\`"
    else
        PROFILE_TEXT="(no profiler available: neither perf nor valgrind works here)"
    fi
fi

# ---------------------------------------------------------------------------
# Report.

echo
echo "$TABLE"
echo
echo "CPU µs per request, each actor (median; serving gateway = the process wrk talks to):"
echo
echo "$ACTORS_TABLE"
echo
echo "Bus cost:"
echo "$BUS_TEXT"
echo
echo "Chat:"
echo "$CHAT_TEXT"
echo
echo "HTTPS and route policy:"
echo "$TLS_TEXT"
echo
echo "Actors (kind, instance, pid):"
echo "$ACTOR_TABLE"
echo "Also: backend pid ${PID[backend]}, nginx master ${PID[nginx]} worker $NGINX_WORKERS, haproxy ${PID[haproxy]}"
if [[ -n $PROFILE_TEXT ]]; then
    echo
    echo "$PROFILE_TEXT"
fi

[[ $OUT == - ]] && exit 0

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
CMD="make bench"
env_used=""
for v in BENCH_DURATION BENCH_ROUNDS BENCH_CONNS BENCH_PROFILE BENCH_BIN BENCH_EXTRA_ROUTES \
    BENCH_CHAT_SESSIONS BENCH_CHAT_PAIRS BENCH_CHAT_RATE BENCH_CHAT_SECONDS BENCH_CHAT_ROUNDS \
    BENCH_TLS_ROUNDS BENCH_TLS_CLIENTS BENCH_TLS_HS_SECONDS; do
    [[ -n ${!v:-} ]] && env_used+="$v=${!v} "
done
[[ -n $env_used ]] && CMD="$env_used$CMD"
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$([[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]] && echo " (with uncommitted changes)" || true)

# Hand-written notes between the markers survive a re-run.
NOTES="<!-- notes: hand-written, kept by bench/bench.sh -->
<!-- end of notes -->"
if [[ -f $OUT ]] && grep -q '^<!-- notes: hand-written' "$OUT"; then
    NOTES=$(awk '/^<!-- notes: hand-written/ {on = 1} on {print} /^<!-- end of notes -->/ {on = 0}' "$OUT")
fi

mkdir -p "$(dirname "$OUT")"
cat >"$OUT.tmp" <<EOF
# Performance

Generated by \`bench/bench.sh\` (\`make bench\`, SPEC §12); bench/README.md says what it
does and how to reproduce the profile. Do not edit by hand except between the notes markers.

## Command and machine

\`\`\`
$CMD
\`\`\`

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); Switchyard $GIT_REV$GIT_DIRTY, release build (\`make build-rel\`, -O2).
- Machine: $(nproc) CPUs ($CPU_MODEL), $MEM, Linux $(uname -r).
- Client \`$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')\`, $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -n 1 | awk '{print "HAProxy " $3}'), $(openssl version) (openssl s_time, s_client).
- $ROUNDS rounds × ${DURATION}s per configuration, interleaved (the target order rotates per round),
  after a ${WARM}s warm-up each; medians. \`wrk -t1 -c<conns> -d${DURATION}s --latency -H 'Host: $HOST_HEADER'\`.

## What is measured

- Backend: \`bin/demo-backend --body-bytes $BODY_BYTES\` (one thread, libev): GET / answers exactly
  1 KiB. The same process is behind every proxy; **direct** is wrk against it with no proxy.
- **nginx**: \`worker_processes 1\`, upstream keepalive (bench/nginx.conf.in). **HAProxy**: \`nbthread 1\`,
  \`http-reuse always\` (bench/haproxy.cfg.in). Both do the gateway's work per request: a request
  id upstream (X-Request-Id, X-Correlation-Id) and back to the client, X-Forwarded-For/-Proto/-Host
  and X-Real-IP upstream, one JSON access line per request written to a file. The bench checks the
  headers through the backend's /echo before measuring.
- **switchyard-lease**: one gateway process, \`GATEWAY_LEASE_TTL=1s\` (the default), access log on (to
  its stdout, a file). **switchyard-ttl0**: another gateway process on the same bus with
  \`GATEWAY_LEASE_TTL=0\`: it asks router → balancer for every request (coalesced while an ask is in
  flight). Both gateways run during the whole bench; each measured run sends traffic to exactly one
  of them (the idle one's CPU is in the per-actor table). All seven actor kinds run on one ipc bus;
  the route (\`$HOST_HEADER\` → the backend, ROUND_ROBIN) is in the router's file store.
- CPU per request: utime+stime from /proc/PID/stat (all threads; ${CLK_TCK} Hz ticks) before and after
  each run, divided by the requests wrk counted. "proxy process": nginx master+worker, haproxy,
  the serving gateway. "all actors": the serving gateway + router, balancer, healthd, statsd, chatd,
  apid.
- Ratios (× nginx, × direct): the median over the rounds of the ratio within each round (runs of
  one round are close in time), which is robust to a machine whose speed drifts; the req/s column
  is the plain median.
- Errors: wrk's "Non-2xx or 3xx responses" and socket errors (connect, read, write, timeout),
  summed over the measured runs.
- Load from outside the bench during the measured runs: median $(cut -f 15 "$RESULTS" | median) CPUs,
  max $(cut -f 15 "$RESULTS" | sort -g | tail -n 1) (per run in "Every run" below).

## Results

$TABLE

CPU µs per request, each Switchyard actor (median of the rounds):

$ACTORS_TABLE

## Bus cost (metadata and decisions)

$BUS_TEXT

## Large responses and idle connections

$LARGE_TEXT

## Chat

$CHAT_TEXT

## HTTPS and route policy

$TLS_TEXT

## Actors running (from \`switchyard ping\`)

| kind | instance | pid |
| --- | --- | --- |
$ACTOR_TABLE

Also running: demo-backend (pid ${PID[backend]}), nginx (master ${PID[nginx]}, worker $NGINX_WORKERS), haproxy (pid ${PID[haproxy]}).
$(if [[ -n $PROFILE_TEXT ]]; then
    echo
    echo "## Where the gateway's time goes"
    echo
    if [[ $BELOW == 1 ]]; then
        echo "Lease mode is below 0.8× nginx at 50 connections ($(fmt "$X50" %.2f)×; medians $(fmt "$LEASE50" %.0f) vs $(fmt "$NGINX50" %.0f) req/s)."
    elif [[ $X50 != nan ]]; then
        echo "Lease mode is at $(fmt "$X50" %.2f)× nginx at 50 connections (not below 0.8×); the profile is taken anyway."
    fi
    echo
    echo "$PROFILE_TEXT"
fi)

## Notes

$NOTES

## Every run

"access lines": access-log lines written during the run; they should match the requests, plus
up to one per connection for the requests in flight when wrk stops (logged as 499 or with a
partial body). "odd lines": access lines whose status is not 200, or (nginx, Switchyard) whose
\`bytes\` is not $BODY_BYTES; HAProxy's \`%B\` counts the response head too, so only its status is checked.
"other load": CPUs busy with something else than the bench's processes and wrk during the run
(/proc/stat minus ours; includes kernel threads such as ksoftirqd): other work on the machine
makes a run's figures unreliable.

$RAW
EOF
mv "$OUT.tmp" "$OUT"
say "wrote $OUT"
