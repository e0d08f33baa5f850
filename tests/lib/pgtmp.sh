#!/usr/bin/env bash
# pgtmp.sh - a throwaway PostgreSQL 15 cluster for tests.
#
# Usage: tests/lib/pgtmp.sh start  DIR   create DIR, initdb, start on a free 127.0.0.1 port,
#                                        create database `switchyard`; prints on stdout
#                                          DATABASE_URL=postgres://postgres@127.0.0.1:PORT/switchyard
#                                          PGPID=PID
#        tests/lib/pgtmp.sh stop   DIR   stop the server (pg_ctl stop -m fast; SIGKILL by the
#                                        pid file if that fails) and remove DIR
#        tests/lib/pgtmp.sh pause  DIR   stop the server, keep DIR (data, port)
#        tests/lib/pgtmp.sh resume DIR   start it again on the same port; prints the same lines
#        tests/lib/pgtmp.sh url    DIR   print DATABASE_URL=... (no server needed)
#
# DIR holds data/ (the cluster), postgres.log, port and the unix socket
# (-k DIR); its parent must be searchable by the postgres user (/tmp is).
# As root, DIR is chowned to `postgres` and initdb, postgres and pg_ctl run
# as that user (runuser), since PostgreSQL refuses to run as root; as any
# other user they run as that user. Authentication is trust (-A trust),
# fsync is off: for tests only. Readiness is polled with pg_isready up to a
# deadline, never waited for with a fixed sleep.
#
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin), PGTMP_TIMEOUT
# (seconds to wait for start or stop, default 30), PGTMP_PORT_TRIES (ports
# tried when the chosen one is taken meanwhile, default 5).
# Exit status: 0 done, 1 failed (the reason, and the server log's tail, on
# stderr), 2 usage.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
TIMEOUT="${PGTMP_TIMEOUT:-30}"
PORT_TRIES="${PGTMP_PORT_TRIES:-5}"
DB_NAME=switchyard
DB_USER=postgres
MARKER=.pgtmp # a DIR this script made; stop removes no other

die() {
    echo "pgtmp.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: pgtmp.sh start|stop|pause|resume|url DIR" >&2
    exit 2
}

# Run a command as the cluster's owner, in DIR (the caller's working
# directory may be unreadable to postgres).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

log_tail() {
    if [ -f "$dir/postgres.log" ]; then
        echo "pgtmp.sh: last lines of $dir/postgres.log:" >&2
        tail -n 20 "$dir/postgres.log" >&2
    fi
}

# A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick
# for port 0), checked once more with a connect probe.
free_port() {
    local port
    for _ in 1 2 3 4 5; do
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# The postmaster's pid from its pid file, or nothing.
server_pid() {
    local pidfile="$dir/data/postmaster.pid"
    if [ -f "$pidfile" ]; then
        head -n 1 "$pidfile" 2>/dev/null || true
    fi
}

# True while pid runs. A zombie counts as gone: the postmaster's parent is
# pg_ctl, which has exited, so it is reaped by whatever adopted it, later.
alive() {
    local pid="$1" state
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

print_url() {
    echo "DATABASE_URL=postgres://$DB_USER@127.0.0.1:$(cat "$dir/port")/$DB_NAME"
}

# Start the server on port $1 and wait until it accepts connections.
# Returns 0 when ready, 3 when the port was taken, 1 on any other failure.
start_server() {
    local port="$1"
    : >"$dir/postgres.log"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/postgres.log"
    if ! as_owner "$PG_BIN/pg_ctl" start -W -D "$dir/data" -l "$dir/postgres.log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null; then
        return 1
    fi
    local deadline=$((SECONDS + TIMEOUT)) pid=""
    while [ $SECONDS -lt "$deadline" ]; do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; then
            return 0
        fi
        # pg_ctl -W returns before the pid file exists; a server that has
        # written it and then died has failed (e.g. the port was taken)
        [ -z "$pid" ] && pid=$(server_pid)
        if [ -n "$pid" ] && ! alive "$pid"; then
            grep -q "could not bind\|Address already in use" "$dir/postgres.log" && return 3
            return 1
        fi
        if [ -z "$pid" ] && grep -q "could not bind\|Address already in use" "$dir/postgres.log"; then
            return 3
        fi
        sleep 0.1
    done
    echo "pgtmp.sh: server not ready on 127.0.0.1:$port within ${TIMEOUT}s" >&2
    return 1
}

# pg_ctl stop -m fast; SIGKILL by the pid file when that does not end it.
stop_server() {
    local pid
    pid=$(server_pid)
    if [ -z "$pid" ] || ! alive "$pid"; then
        return 0
    fi
    as_owner "$PG_BIN/pg_ctl" stop -D "$dir/data" -m fast -w -t "$TIMEOUT" >/dev/null 2>&1 || true
    if alive "$pid"; then
        echo "pgtmp.sh: server $pid did not stop within ${TIMEOUT}s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + TIMEOUT))
        while alive "$pid" && [ $SECONDS -lt "$deadline" ]; do
            sleep 0.1
        done
        alive "$pid" && die "server $pid still running after SIGKILL"
    fi
    return 0
}

cmd_start() {
    [ -x "$PG_BIN/initdb" ] || die "no $PG_BIN/initdb (install postgresql: scripts/deps.sh test)"
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        die "$dir exists and is not empty"
    fi
    mkdir -p "$dir"
    : >"$dir/$MARKER"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no user postgres (install postgresql)"
        chown -R postgres:postgres "$dir"
        chmod 0700 "$dir"
    fi
    if ! as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$DB_USER" -A trust -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed in $dir/data"
    fi
    local port rc
    for ((try = 1; try <= PORT_TRIES; try++)); do
        port=$(free_port) || die "no free port on 127.0.0.1"
        rc=0
        start_server "$port" || rc=$?
        if [ $rc -eq 0 ]; then
            break
        fi
        stop_server
        if [ $rc -ne 3 ]; then
            log_tail
            die "postgres did not start in $dir"
        fi
    done
    [ $rc -eq 0 ] || die "no free port after $PORT_TRIES tries"
    echo "$port" >"$dir/port"
    if ! "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" 2>"$dir/createdb.err"; then
        cat "$dir/createdb.err" >&2
        die "could not create database $DB_NAME"
    fi
    print_url
    echo "PGPID=$(server_pid)"
}

cmd_resume() {
    if [ ! -f "$dir/$MARKER" ] || [ ! -f "$dir/port" ]; then
        die "$dir is not a cluster made by pgtmp.sh start"
    fi
    local pid port rc=0
    pid=$(server_pid)
    alive "$pid" && die "already running (pid $pid)"
    port=$(cat "$dir/port")
    start_server "$port" || rc=$?
    if [ $rc -ne 0 ]; then
        stop_server
        log_tail
        [ $rc -eq 3 ] && die "port $port is taken now; cannot resume"
        die "postgres did not start in $dir"
    fi
    print_url
    echo "PGPID=$(server_pid)"
}

cmd_pause() {
    [ -f "$dir/$MARKER" ] || die "$dir is not a cluster made by pgtmp.sh start"
    stop_server
}

cmd_stop() {
    if [ ! -e "$dir" ]; then
        return 0
    fi
    [ -f "$dir/$MARKER" ] || die "$dir is not a cluster made by pgtmp.sh start; not removing it"
    stop_server
    rm -rf -- "$dir"
}

[ $# -eq 2 ] || usage
[ -n "$2" ] || usage
command="$1"
dir="$2"
case "$dir" in
    /*) ;;
    *) dir="$PWD/$dir" ;;
esac
dir="${dir%/}"
case "$dir" in
    *[[:space:]]*) die "DIR must not contain white space: '$dir'" ;;
esac

case "$command" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    pause) cmd_pause ;;
    resume) cmd_resume ;;
    url)
        [ -f "$dir/port" ] || die "$dir has no cluster"
        print_url
        ;;
    *) usage ;;
esac
