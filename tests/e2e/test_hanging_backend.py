"""End-to-end tests of issue 14, item 1 (part): a backend that hangs after
accepting.

A backend of the test's own (a Python socket server on a port it holds open)
accepts connections and then never answers: in one variant it reads the
request and holds the socket, in the other it never reads at all. It sits
next to a healthy demo backend in one ROUND_ROBIN route with `timeoutMs`
500 and the default `retries`.

The contract (SPEC §3, §6; gateway/gw_proxy.c s_on_up_timer):

* A response timeout is not among the failures that are retried ("refused,
  reset before any response byte, connect timeout"): the client gets
  504 `Gateway Timeout` once `timeoutMs` has passed, for a GET as for a
  POST, and the request is not repeated on the healthy backend. A POST that
  was sent is never repeated anyway.
* No request waits much longer than `timeoutMs`; the gateway closes its
  connection to the hung backend when it answers 504 (its descriptors do not
  grow).
* healthd declares the backend dead (probes time out after HEALTHD_TIMEOUT;
  the gateway also reports each response timeout as a passive failure), and
  from then on every request is served by the healthy backend at once.

Deterministic: every wait is a poll with a deadline; the hung backend's port
is bound (port 0) by the test and held; everything is stopped by PID (the
stack) or by closing the test's own sockets (the hung backend).
"""

import os
import re
import selectors
import socket
import threading
import time

import pytest
import requests

from stack import pause, wait_until

VHOST = "hang.test"
HELLO_A = "Hello from Server A (Region 1)"
TIMEOUT_MS = 500
TIMEOUT_S = TIMEOUT_MS / 1000.0
MARGIN_S = 1.0  # a 504 may come this late after timeoutMs (sanitizer build)
CLIENT_TIMEOUT_S = TIMEOUT_S + MARGIN_S + 1.0  # a request still unanswered then has hung
FAST_S = 0.25  # a request served by the healthy backend never waits for the timeout

# Probes at 3 s: at most one probe failure falls into the ~1.5 s in which the
# test sends its first GET and POST to the hung backend, so healthd cannot
# declare it dead before both have been observed (3 failures in a row needed).
HEALTH_ENV = {
    "HEALTHD_INTERVAL": "3s",
    "HEALTHD_TIMEOUT": "400ms",
    "HEALTHD_RECOVERY_INTERVAL": "10s",
}
GATEWAY_ENV = {"GATEWAY_UPSTREAM_IDLE_TIMEOUT": "1s"}  # the pool drains quickly for the fd count
VERDICT_DEADLINE_S = 15.0

REQUEST_LINE = re.compile(rb"(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH) (\S+) HTTP/1\.[01]\r\n")


class HangingBackend:
    """Accepts every connection and never answers.

    reads=True: reads what arrives (recording request lines) and holds the
    socket until the peer closes it. reads=False: never reads; the accepted
    sockets are held until stop().
    """

    def __init__(self, reads):
        self.reads = reads
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.closed_by_peer = 0
        self.request_lines = []  # (method, target) seen, in order (reads=True)
        self._data = {}
        self._held = []
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.lsock, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="hanging-backend", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                if key.data is None:
                    try:
                        conn, _ = self.lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    conn.setblocking(False)
                    with self.lock:
                        self.accepted += 1
                        self._held.append(conn)
                    if self.reads:
                        self._data[conn] = b""
                        self._sel.register(conn, selectors.EVENT_READ, "conn")
                    continue
                conn = key.fileobj
                try:
                    chunk = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self._sel.unregister(conn)
                    with self.lock:
                        self.closed_by_peer += 1
                        self._held.remove(conn)
                    self._data.pop(conn, None)
                    conn.close()
                    continue
                buf = self._data[conn] + chunk
                # record complete request lines; keep the tail that may be partial
                last = 0
                for m in REQUEST_LINE.finditer(buf):
                    with self.lock:
                        self.request_lines.append((m.group(1).decode(), m.group(2).decode()))
                    last = m.end()
                self._data[conn] = buf[last:][-8192:]

    def seen(self, method, target):
        with self.lock:
            return sum(1 for m, t in self.request_lines if m == method and t == target)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        with self.lock:
            for conn in self._held:
                try:
                    conn.close()
                except OSError:
                    pass
            self._held = []
        self._sel.close()
        self.lsock.close()


# ---------------------------------------------------------------------- the gateway's descriptors


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def conns_to(pid, port):
    """The gateway's TCP sockets whose remote port is `port` (any state)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


# ---------------------------------------------------------------------- requests


def timed(stack, method, path, **kw):
    """(status, text, seconds) of one request on a fresh connection; a request
    unanswered after CLIENT_TIMEOUT_S fails the test as hung."""
    t0 = time.monotonic()
    try:
        r = stack.request(method, path, host=VHOST, timeout=CLIENT_TIMEOUT_S, **kw)
    except requests.exceptions.ReadTimeout:
        raise AssertionError(
            "%s %s hung: no answer within %.1f s (timeoutMs %d)" % (method, path, CLIENT_TIMEOUT_S, TIMEOUT_MS)
        )
    return r.status_code, r.text, time.monotonic() - t0


def check_outcome(method, path, status, text, secs):
    """Every answer is the healthy backend's, fast, or 504 after timeoutMs."""
    if status == 504:
        assert text == "Gateway Timeout", (method, path, text)
        assert TIMEOUT_S - 0.05 <= secs <= TIMEOUT_S + MARGIN_S, (method, path, "504 after %.3f s" % secs)
        return "504"
    assert status == 200, (method, path, status, text, secs)
    assert secs < FAST_S, (method, path, "200 after %.3f s" % secs)
    return "200"


def runtime(stack, backend_id):
    r = stack.api("GET", "/api/v1/routes/" + VHOST)
    assert r.status_code == 200, r.text
    return [b for b in r.json()["backends"] if b["id"] == backend_id][0]


def has_line(stack, name, msg, **fields):
    import json

    for line in stack.logs(name).splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg") == msg and all(e.get(k) == v for k, v in fields.items()):
            return e
    return None


@pytest.mark.parametrize("reads", [True, False], ids=["reads-then-holds", "never-reads"])
def test_hanging_backend(make_stack, timings, reads):
    hung = HangingBackend(reads=reads)
    try:
        _scenario(make_stack, timings, hung)
    finally:
        hung.stop()


def _scenario(make_stack, timings, hung):
    stack = make_stack(actor_env=HEALTH_ENV, gateway_env=GATEWAY_ENV, demo_route=False)
    gw = stack.procs["gateway"].pid
    stack.put_route(VHOST, [stack.backend("a", region="1")], strategy="ROUND_ROBIN", timeoutMs=TIMEOUT_MS)
    stack.wait_served(VHOST)
    route = stack.api("GET", "/api/v1/routes/" + VHOST).json()
    assert route["retries"] == 2 and route["timeoutMs"] == TIMEOUT_MS, route  # retries: the default

    # baseline: the gateway's descriptors once its pool to A has drained
    for _ in range(3):
        assert check_outcome("GET", "/", *timed(stack, "GET", "/")) == "200"
    wait_until(lambda: conns_to(gw, stack.port_a) == 0, 5, what="the pool to A drained (upstream idle 1 s)")
    fds_before = fd_count(gw)

    # the hung backend joins the route (live within 1 s, SPEC §5)
    r = stack.api(
        "POST",
        "/api/v1/routes/%s/backends" % VHOST,
        {"id": "hung", "hostname": "127.0.0.1", "port": hung.port, "region": "1"},
    )
    assert r.status_code == 201, r.text
    t_added = time.monotonic()

    # GET: once the lease holds the hung backend, every other GET goes there and
    # gets 504 after timeoutMs (a response timeout is not retried: SPEC §3)
    outcomes = []
    deadline = time.monotonic() + 3.0
    while True:
        path = "/?get=%d" % len(outcomes)
        status, text, secs = timed(stack, "GET", path)
        outcomes.append(check_outcome("GET", path, status, text, secs))
        if status == 504:
            get_504_secs = secs
            get_504_path = path
            break
        assert text == HELLO_A, text
        assert time.monotonic() < deadline, "no request reached the hung backend in 3 s: %r" % outcomes
    timings.record("GET to the hung backend -> 504 (timeoutMs %d)" % TIMEOUT_MS, get_504_secs)
    timings.record("backend added -> first 504", time.monotonic() - t_added)
    if hung.reads:
        assert hung.seen("GET", get_504_path) == 1, hung.request_lines
    # the gateway closed its connection to the hung backend with the 504
    wait_until(lambda: conns_to(gw, hung.port) == 0, 0.5, what="gateway's connection to the hung backend closed")

    # POST (not idempotent, sent): never repeated; 504 after timeoutMs. The
    # healthy backend would have answered 200, so a 504 means no retry there.
    body = b"x" * 2048
    post_504 = None
    for i in range(4):
        path = "/echo?post=%d" % i
        status, text, secs = timed(stack, "POST", path, data=body)
        check_outcome("POST", path, status, text, secs)
        if status == 504:
            post_504 = (path, secs)
            break
    assert post_504 is not None, "no POST reached the hung backend in 4 round-robin turns"
    timings.record("POST to the hung backend -> 504", post_504[1])
    if hung.reads:
        wait_until(lambda: hung.seen("POST", post_504[0]) == 1, 1, what="the POST at the hung backend")
        pause(0.2)
        assert hung.seen("POST", post_504[0]) == 1, hung.request_lines  # sent once, never again
    wait_until(lambda: conns_to(gw, hung.port) == 0, 0.5, what="gateway's connection to the hung backend closed")

    # the verdict: requests keep coming (a concurrent burst, then one by one);
    # every one is answered in time until healthd declares the backend dead
    t_verdict0 = time.monotonic()
    burst = []

    def one(i):
        path = "/?burst=%d" % i
        burst.append((path,) + timed(stack, "GET", path))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_TIMEOUT_S + 5)
    assert len(burst) == 6 and not any(t.is_alive() for t in threads), burst
    counts = {"200": 0, "504": 0}
    for path, status, text, secs in burst:
        counts[check_outcome("GET", path, status, text, secs)] += 1
    # (no count of 504s is asserted: one probe failure plus the GET and the
    # POST above may already have made 3 in a row, so the verdict may be in)
    print("burst before the verdict: %r" % counts)

    n = 0
    while not runtime(stack, "hung")["isDead"]:
        assert time.monotonic() - t_verdict0 < VERDICT_DEADLINE_S, "hung backend never declared dead"
        path = "/?wait=%d" % n
        n += 1
        check_outcome("GET", path, *timed(stack, "GET", path))
    dead = wait_until(lambda: has_line(stack, "healthd", "backend dead", backend="hung"), 2, what="healthd's line")
    timings.record("verdict (healthd dead, reason %r)" % dead.get("reason"), time.monotonic() - t_verdict0)
    assert dead.get("level") == "warn", dead
    wait_until(lambda: has_line(stack, "balancer", "backend down", backend="hung"), 2, what="balancer applied it")
    wait_until(
        lambda: has_line(stack, "gateway", "backend down: leases dropped", backend="hung"), 2, what="gateway's leases"
    )

    # after the verdict every request goes to the healthy backend at once
    for i in range(20):
        path = "/?after=%d" % i
        status, text, secs = timed(stack, "GET", path)
        assert (status, text) == (200, HELLO_A) and secs < FAST_S, (path, status, text, secs)
    status, text, secs = timed(stack, "POST", "/echo?after=1", data=body)
    assert status == 200 and secs < FAST_S, (status, text, secs)
    if hung.reads:
        with hung.lock:
            late = [t for m, t in hung.request_lines if t.startswith("/?after=") or t == "/echo?after=1"]
        assert late == [], late

    # descriptors: no connection to the hung backend left, none leaked
    wait_until(lambda: conns_to(gw, hung.port) == 0, 1, what="no gateway connection to the hung backend")
    fds_after = wait_until(
        lambda: (lambda n: n if n <= fds_before + 1 else None)(fd_count(gw)),
        5,
        what="the gateway's fds back near %d (now %d)" % (fds_before, fd_count(gw)),
    )
    print("gateway fds: %d before the hung backend, %d after" % (fds_before, fds_after))
    assert stack.procs["gateway"].alive()


def test_probe_timeouts_alone_declare_it_dead(make_stack, timings):
    """No client traffic at all: healthd's probes time out (HEALTHD_TIMEOUT)
    and, after 3 in a row (SPEC §6), the hung backend is dead; requests then
    never reach it."""
    hung = HangingBackend(reads=True)
    try:
        env = {"HEALTHD_INTERVAL": "300ms", "HEALTHD_TIMEOUT": "200ms", "HEALTHD_RECOVERY_INTERVAL": "10s"}
        stack = make_stack(actor_env=env, demo_route=False)
        t0 = time.monotonic()
        stack.put_route(
            VHOST,
            [stack.backend("a", region="1"), {"id": "hung", "hostname": "127.0.0.1", "port": hung.port, "region": "1"}],
            strategy="ROUND_ROBIN",
            timeoutMs=TIMEOUT_MS,
        )
        dead = wait_until(
            lambda: has_line(stack, "healthd", "backend dead", backend="hung"), 5, what="healthd's dead line"
        )
        timings.record("probes only: route put -> dead (reason %r)" % dead.get("reason"), time.monotonic() - t0)
        assert dead.get("reason") == "timeout" and dead.get("level") == "warn", dead
        assert hung.seen("GET", "/") >= 3, hung.request_lines  # the probes did reach it
        wait_until(lambda: runtime(stack, "hung")["isDead"], 2, what="isDead in GET")
        wait_until(lambda: has_line(stack, "balancer", "backend down", backend="hung"), 2, what="balancer applied it")
        for i in range(10):
            path = "/?probe-only=%d" % i
            status, text, secs = timed(stack, "GET", path)
            assert (status, text) == (200, HELLO_A) and secs < FAST_S, (path, status, text, secs)
        with hung.lock:
            assert [t for m, t in hung.request_lines if t != "/"] == [], hung.request_lines
    finally:
        hung.stop()
