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
# The chat rows (issue 10): bench/chat_load.c (bin/chat-load) against a stack of
# its own on its own bus: redis-server, two chatd and two gateways (REGION 1 and 2).
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
[[ $ONLY == chat ]] && OUT=${BENCH_OUT:--} # a chat-only run never rewrites the full report by default
CHAT_SESSIONS=${BENCH_CHAT_SESSIONS:-10000}
CHAT_PAIRS=${BENCH_CHAT_PAIRS:-100}
CHAT_RATE=${BENCH_CHAT_RATE:-10000}
CHAT_SECONDS=${BENCH_CHAT_SECONDS:-$DURATION}
CHAT_ROUNDS=${BENCH_CHAT_ROUNDS:-3}
CHAT_VHOST=chat.bench
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
case "$ONLY" in "" | chat) ;; *) die "BENCH_ONLY must be empty or chat, not '$ONLY'" ;; esac
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

NEED_TOOLS=(wrk nginx haproxy curl awk sed sort redis-server redis-cli)
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

# wait_http NAME URL [HOST]: until URL answers 200 (10 s)
wait_http() {
    local name=$1 url=$2 host=${3:-$HOST_HEADER} i
    for ((i = 0; i < 100; i++)); do
        alive "$name" || die "$name exited at start: $(tail -n 5 "${LOGFILE[$name]}")"
        if [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "$url" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer 200 at $url within 10 s; its log: $(tail -n 5 "${LOGFILE[$name]}")"
}

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

# nginx: the master and its worker(s) (children found by their parent pid in /proc)
children_of() {
    local f
    for f in /proc/[0-9]*/stat; do
        sed 's/^\([0-9]*\) .*) [A-Za-z] \([0-9]*\) .*/\1 \2/' "$f" 2>/dev/null || true
    done | awk -v p="$1" '$2 == p {printf "%s ", $1}'
}
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

# cpu_ticks PID...: utime+stime (clock ticks, all threads) summed over the pids
cpu_ticks() {
    local p sum=0 v
    for p in "$@"; do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

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

# ---------------------------------------------------------------------------
# Aggregate.

median() { sort -g | awk '{v[NR] = $1} END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# col RESULTS-column C TARGET
col() { awk -F'\t' -v c="$2" -v t="$3" -v k="$1" '$2 == c && $3 == t {print $k}' "$RESULTS" | median; }
sumcol() { awk -F'\t' -v c="$2" -v t="$3" -v k="$1" '$2 == c && $3 == t {s += $k} END {print s + 0}' "$RESULTS"; }
actor_med() { awk -F'\t' -v c="$1" -v t="$2" -v a="$3" '$2 == c && $3 == t && $4 == a {print $5}' "$ACTOR_CPU" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "nan" || v < 0) print "-"; else printf f, v }'; }

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
    BENCH_CHAT_SESSIONS BENCH_CHAT_PAIRS BENCH_CHAT_RATE BENCH_CHAT_SECONDS BENCH_CHAT_ROUNDS; do
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
- Client \`$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')\`, $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>/dev/null | head -n 1 | awk '{print "HAProxy " $3}').
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
