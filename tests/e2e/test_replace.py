"""End-to-end tests of gateways sharing their ports (SO_REUSEPORT) and of a
gateway replaced under load with no failed request (docs/operations-replace.md).

- Two gateways started with the same configuration both serve: the kernel
  spreads new connections over them (access lines of each), and the admin
  port, shared too, keeps answering when one of them drains.
- Replacement: while four client threads send requests without pause (two
  over keep-alive connections, two on a new connection each), gateway N+1
  starts on the same public port, is waited for (its own /ready), serves
  beside gateway N, then gateway N is SIGTERMed by PID, and the load goes on
  (a second at least) against the new one alone; three times in a row.
  No request may fail (refused, reset, closed without an answer, a status
  other than 200); each old gateway exits 0 within its drain timeout having
  drained (not cut); both served during each overlap.

The replacement runs in a network namespace of its own with
net.ipv4.tcp_migrate_req=1 (Linux >= 5.14): without it the kernel resets the
connections queued on a listener that closes (the gateway accepts what is
queued before closing, which narrows that window but cannot close it). The
namespace is the test thread's own (unshare(CLONE_NEWNET), needs root): every
process and client thread the test starts is inside it, the host's setting is
never touched, and the thread goes back to its namespace afterwards.
"""

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import socket
import struct
import threading
import time

import pytest
import requests

from stack import RawConn, free_ports, wait_until

HELLO = ("Hello from Server A (Region 1)", "Hello from Server B (Region 2)")
VHOST = "demo.test"
DRAIN_S = 5.0  # GATEWAY_DRAIN_TIMEOUT of every gateway here
WAIT = 15.0  # seconds for a condition (sanitizer build)
ROUNDS = 3  # replacements in a row
AFTER_S = 1.0  # load kept on the new gateway alone after each replacement
MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


# ---------------------------------------------------------------------- helpers


def access_lines(stack, name):
    """The access lines of one gateway process, as dicts."""
    out = []
    for line in stack.logs(name).splitlines():
        if '"access"' not in line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg") == "access":
            out.append(e)
    return out


def log_msgs(stack, name):
    out = []
    for line in stack.logs(name).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def start_gateway(stack, name, admin_port=None):
    """Another gateway with the stack's configuration (same public port; the
    same admin port unless admin_port is given), in stack.procs so teardown
    stops it by PID and checks its exit and stderr."""
    env = stack._actor_env("gateway")
    env["INSTANCE_ID"] = "%s-e2e" % name
    if admin_port is not None:
        env["GATEWAY_ADMIN_ADDR"] = "127.0.0.1:%d" % admin_port
    return stack._spawn(name, "gateway", env_extra=env)


def wait_listening(stack, name):
    def up():
        assert stack.procs[name].alive(), "%s exited: %s" % (name, stack.logs(name)[-1500:])
        return {e.get("listener") for e in log_msgs(stack, name) if e.get("msg") == "listening"} >= {"http", "admin"}

    wait_until(up, WAIT, what="%s listening" % name)


class NetNs:
    """A fresh network namespace for the calling thread (and every process and
    thread it starts meanwhile), its loopback up; left on exit."""

    def __init__(self):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.saved = None

    def __enter__(self):
        self.saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if self.libc.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            os.close(self.saved)
            self.saved = None
            raise OSError(e, "unshare(CLONE_NEWNET): %s" % os.strerror(e))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            rc = self.libc.setns(self.saved, CLONE_NEWNET)
            os.close(self.saved)
            self.saved = None
            assert rc == 0, "setns back: %s" % os.strerror(ctypes.get_errno())


@pytest.fixture
def migrate_ns():
    """A network namespace with net.ipv4.tcp_migrate_req=1 for this test."""
    if not os.path.exists(MIGRATE):
        pytest.fail("kernel without net.ipv4.tcp_migrate_req (Linux < 5.14): the replacement cannot be shown")
    ns = NetNs()
    try:
        ns.__enter__()
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        pytest.fail("needs root for a network namespace (unshare: %s); make test runs as root, as CI does" % e)
    try:
        with open(MIGRATE, "w") as f:  # this namespace's, not the host's
            f.write("1")
        with open(MIGRATE) as f:
            assert f.read().strip() == "1"
        yield ns
    finally:
        ns.__exit__()


class Load:
    """Client threads sending GET / to the public port without pause: `keep`
    over one keep-alive session each (requests), `fresh` on a new connection
    each (raw sockets, Connection: close). Every request carries its own
    X-Request-Id; done[rid] = (start, end) (monotonic) for each that got a
    200 from a demo backend, failures lists every other outcome."""

    def __init__(self, port, keep=2, fresh=2):
        self.port = port
        self.url = "http://127.0.0.1:%d/" % port
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()
        self.done = {}
        self.failures = []
        self.threads = [threading.Thread(target=self._keep, args=(i,), daemon=True) for i in range(keep)]
        self.threads += [threading.Thread(target=self._fresh, args=(keep + i,), daemon=True) for i in range(fresh)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_evt.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"

    def count(self):
        with self.lock:
            return len(self.done)

    def snapshot(self):
        with self.lock:
            return dict(self.done)

    def ended_after(self, t):
        with self.lock:
            return sum(1 for _, end in self.done.values() if end > t)

    def _record(self, rid, start, ok, what):
        end = time.monotonic()
        with self.lock:
            if ok:
                self.done[rid] = (start, end)
            else:
                self.failures.append("%s at +%.3fs: %s" % (rid, start, what))

    def _keep(self, tid):
        session = requests.Session()
        seq = 0
        while not self.stop_evt.is_set():
            seq += 1
            rid = "rk-%d-%06d" % (tid, seq)
            start = time.monotonic()
            try:
                r = session.get(self.url, headers={"Host": VHOST, "X-Request-Id": rid}, timeout=10)
                ok = r.status_code == 200 and r.text in HELLO
                self._record(rid, start, ok, "%d %r" % (r.status_code, r.text[:80]))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                self._record(rid, start, False, repr(e))
        session.close()

    def _fresh(self, tid):
        seq = 0
        while not self.stop_evt.is_set():
            seq += 1
            rid = "rf-%d-%06d" % (tid, seq)
            start = time.monotonic()
            try:
                with RawConn(self.port, timeout=10) as c:
                    c.send(
                        (
                            "GET / HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n" % (VHOST, rid)
                        ).encode()
                    )
                    r = c.read_response()
                    body = r.body.decode("utf-8", "replace")
                    self._record(rid, start, r.status == 200 and body in HELLO, "%d %r" % (r.status, body[:80]))
            except Exception as e:  # noqa: BLE001
                self._record(rid, start, False, repr(e))


# ---------------------------------------------------------------------- tests


def test_two_gateways_share_the_ports(make_stack):
    stack = make_stack()
    # the same configuration: same public and admin ports
    start_gateway(stack, "gateway2")
    wait_listening(stack, "gateway2")
    logs = log_msgs(stack, "gateway2")
    assert not [e for e in logs if e.get("level") == "error"], logs

    # gateway2 is ready once it answered a request from the shared port
    # (until then a new connection may land on either)
    def served_by_2():
        r = RawConn(stack.http_port, timeout=5)
        with r:
            r.send(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % VHOST).encode())
            r.read_response()
        return any(e["status"] == 200 for e in access_lines(stack, "gateway2"))

    wait_until(served_by_2, WAIT, what="gateway2 serving on the shared port")

    n = 200
    for i in range(n):
        rid = "spread-%04d" % i
        with RawConn(stack.http_port, timeout=10) as c:
            c.send(
                ("GET / HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n" % (VHOST, rid)).encode()
            )
            r = c.read_response()
            assert r.status == 200 and r.body.decode() in HELLO, (rid, r)

    def counts():
        c = [
            sum(1 for e in access_lines(stack, name) if e["request_id"].startswith("spread-"))
            for name in ("gateway", "gateway2")
        ]
        return c if sum(c) == n else None

    c = wait_until(counts, WAIT, what="an access line for each of the %d requests" % n)
    print("%d new connections: gateway %d, gateway2 %d" % (n, c[0], c[1]))
    assert c[0] > 0 and c[1] > 0, c

    # the admin port is shared too: when gateway 1 drains, gateway 2 answers it
    assert stack.terminate("gateway") == 0
    r = requests.get(stack.admin_url + "/ready", timeout=5)
    assert r.status_code == 200, r.text
    r = requests.get(stack.http_url + "/", headers={"Host": VHOST}, timeout=5)
    assert r.status_code == 200 and r.text in HELLO


def test_port_held_by_another_program_fails_clearly(make_stack):
    """A socket without SO_REUSEPORT on the public port: the gateway exits
    non-zero, saying which listener and why."""
    stack = make_stack()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        port = holder.getsockname()[1]
        env = stack._actor_env("gateway")
        env["INSTANCE_ID"] = "gateway-held-e2e"
        env["GATEWAY_HTTP_ADDR"] = "127.0.0.1:%d" % port
        env["GATEWAY_ADMIN_ADDR"] = "127.0.0.1:%d" % free_ports(1)[0]
        p = stack._spawn("gateway-held", "gateway", env_extra=env)
        wait_until(lambda: not p.alive(), WAIT, what="the gateway refusing to start")
        p.returncode = p.popen.returncode
        assert p.returncode != 0
        p.killed = True  # exited by itself on purpose: not a teardown problem
        lines = [e for e in log_msgs(stack, "gateway-held") if e.get("msg") == "cannot listen"]
        assert lines and lines[0]["listener"] == "http" and "Address already in use" in lines[0]["error"], lines
        assert "SO_REUSEPORT" in lines[0]["hint"], lines
    finally:
        holder.close()


def test_replace_under_load(migrate_ns, make_stack, timings):
    stack = make_stack(gateway_env={"GATEWAY_DRAIN_TIMEOUT": "%ds" % DRAIN_S})
    names = ["gateway"] + ["gateway%d" % (i + 2) for i in range(ROUNDS)]
    # in the namespace, with the setting on: no warning from the gateway
    assert not [e for e in log_msgs(stack, "gateway") if "tcp_migrate_req" in e.get("msg", "")]

    load = Load(stack.http_port).start()
    try:
        wait_until(lambda: load.count() >= 50, WAIT, what="the load running")
        overlaps = []
        for i in range(ROUNDS):
            old, new = names[i], names[i + 1]
            admin_port = free_ports(1)[0]
            start_gateway(stack, new, admin_port=admin_port)
            wait_until(
                lambda: requests.get("http://127.0.0.1:%d/ready" % admin_port, timeout=2).status_code == 200,
                WAIT,
                interval=0.05,
                what="%s /ready 200" % new,
            )
            t_ready = time.monotonic()

            # both serve: each has answered a request begun after the new one was ready
            def both_served():
                done = load.snapshot()
                begun = {rid for rid, (start, _) in done.items() if start > t_ready}
                got = [sum(1 for e in access_lines(stack, name) if e["request_id"] in begun) for name in (old, new)]
                return got if min(got) > 0 else None

            served = wait_until(both_served, WAIT, what="%s and %s both serving" % (old, new))

            t_term = time.monotonic()
            proc = stack.procs[old]
            rc = proc.stop()  # SIGTERM by PID, then waits for the exit
            took = time.monotonic() - t_term
            timings.record("%s drained (SIGTERM to exit) under load" % old, took)
            assert rc == 0, proc.stderr_text()[-1500:]
            assert took < DRAIN_S, "%s took %.2fs to exit" % (old, took)
            msgs = [e.get("msg") for e in log_msgs(stack, old)]
            assert "drain timeout: cutting what is left" not in msgs, msgs[-20:]

            # the load goes on against the new one alone: a second and 100 requests at least
            t_gone = time.monotonic()
            wait_until(
                lambda: load.ended_after(t_gone) >= 100 and time.monotonic() - t_gone >= AFTER_S,
                WAIT,
                what="load served after %s left" % old,
            )
            overlaps.append((old, new, served, took))
    finally:
        load.stop()

    total = load.count()
    for old, new, served, took in overlaps:
        print("%s -> %s: both served during the overlap %s, old exited %.3fs after SIGTERM" % (old, new, served, took))
    per_gateway = {name: len(access_lines(stack, name)) for name in names}
    print("requests: %d ok, %d failed; access lines per gateway: %s" % (total, len(load.failures), per_gateway))
    assert load.failures == [], "%d failed requests:\n%s" % (len(load.failures), "\n".join(load.failures[:30]))
    assert all(per_gateway[name] > 0 for name in names), per_gateway
    # every request answered was logged by exactly one gateway
    rids = [e["request_id"] for name in names for e in access_lines(stack, name) if e["request_id"] in load.done]
    assert len(rids) == len(set(rids)), "a request logged twice"
