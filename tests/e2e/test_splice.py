"""Large response bodies spliced backend -> pipe -> client (gateway/gw_splice).

A body with a known length and at least 64 KiB left after the first read
leaves the gateway's memory path: these tests check what a client sees
(every byte, in order, on a keep-alive connection that goes on), a client
that reads slowly (the pipe fills and the backend waits), a client that
leaves mid-body and a backend that ends early (the pipes are given back or
closed: the gateway's descriptors do not grow), all with the gateway's own
counters (splice.*) showing the path was taken.
"""

import hashlib
import os
import socket
import threading
import time

from stack import RawConn, free_ports, wait_until

VHOST = "splice.test"


def body_bytes(n):
    """n bytes that differ by position, so a lost or repeated piece shows."""
    block = b"".join(b"%08x" % i for i in range(8192))  # 64 KiB
    out = block * (n // len(block) + 1)
    return out[:n]


class BigBackend:
    """A keep-alive HTTP/1.1 backend: GET /N answers N bytes of body_bytes;
    GET /N/cut/M announces N but closes after M body bytes."""

    def __init__(self):
        (self.port,) = free_ports(1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.accepted = 0
        self.lock = threading.Lock()
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    path = head.split(b" ")[1].decode()
                    parts = path.strip("/").split("/")
                    if not parts[0].isdigit():  # health probes and the like
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        continue
                    n = int(parts[0])
                    body = body_bytes(n)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                              b"Content-Length: %d\r\n\r\n" % n)
                    if len(parts) == 3 and parts[1] == "cut":
                        c.sendall(body[: int(parts[2])])
                        c.shutdown(socket.SHUT_RDWR)
                        c.close()
                        return
                    c.sendall(body)
        except OSError:
            return

    def stop(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


def _setup(stack):
    backend = BigBackend()
    stack.put_route(VHOST, [{"id": "big", "hostname": "127.0.0.1", "port": backend.port, "region": "1"}])
    stack.wait_served(VHOST, expect=200)
    return backend


def _splice(stack):
    counters, _ = stack.pong("gateway")
    return {k: counters.get("splice." + k, 0) for k in ("transfers", "bytes", "fallbacks", "pipes")}


def _gateway_fds(stack):
    return len(os.listdir("/proc/%d/fd" % stack.procs["gateway"].pid))


def test_big_bodies_intact_on_one_connection(stack):
    backend = _setup(stack)
    try:
        before = _splice(stack)
        accepted = backend.accepted
        sizes = [3 * 1024 * 1024 + 17, 65536 * 2 + 1, 1000, 5 * 1024 * 1024]
        session = stack.session.__class__()  # one client connection for all of them
        for n in sizes:
            r = stack.get("/%d" % n, host=VHOST, session=session)
            assert r.status_code == 200
            assert len(r.content) == n
            assert hashlib.sha256(r.content).digest() == hashlib.sha256(body_bytes(n)).digest()
            assert r.headers.get("X-Request-Id")
        after = _splice(stack)
        # the three large ones were spliced, the 1000-byte one was not
        assert after["transfers"] - before["transfers"] == 3
        assert after["bytes"] - before["bytes"] > (3 + 5) * 1024 * 1024 - 3 * 65536
        assert after["fallbacks"] == before["fallbacks"]
        # the backend connection went back to the pool after each one
        assert backend.accepted - accepted <= 1
        assert after["pipes"] <= 2
    finally:
        backend.stop()


def test_slow_reader_gets_every_byte(stack):
    backend = _setup(stack)
    try:
        n = 8 * 1024 * 1024
        before = _splice(stack)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        s.settimeout(20)
        s.connect(("127.0.0.1", stack.http_port))
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, VHOST.encode()))
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        h = hashlib.sha256(body)
        total = len(body)
        reads = 0
        while total < n:
            chunk = s.recv(min(2048, n - total))  # small reads: the gateway keeps waiting for us
            assert chunk, "closed after %d of %d bytes" % (total, n)
            h.update(chunk)
            total += len(chunk)
            reads += 1
        s.close()
        assert h.digest() == hashlib.sha256(body_bytes(n)).digest()
        assert reads > 100
        assert _splice(stack)["transfers"] - before["transfers"] == 1
    finally:
        backend.stop()


def test_client_leaves_mid_body(stack):
    backend = _setup(stack)
    try:
        stack.get("/%d" % (1 << 20), host=VHOST)  # one pipe made, now idle
        fds = _gateway_fds(stack)
        for _ in range(20):
            c = RawConn(stack.http_port)
            c.send(b"GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (16 << 20, VHOST.encode()))
            c._fill(time.monotonic() + 10)  # some of the head and body, then the client is gone
            c.close()
        # the gateway closes those requests, their backend connections and pipes
        wait_until(lambda: _gateway_fds(stack) <= fds + 2, 10, what="gateway descriptors back to %d" % fds)
        r = stack.get("/%d" % (2 << 20), host=VHOST)
        assert r.status_code == 200 and len(r.content) == 2 << 20
        assert _splice(stack)["pipes"] <= 3
    finally:
        backend.stop()


def test_backend_ends_mid_body(stack):
    backend = _setup(stack)
    try:
        before = _splice(stack)
        c = RawConn(stack.http_port)
        c.send(b"GET /%d/cut/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (4 << 20, 1 << 20, VHOST.encode()))
        # the client sees the connection end short of the announced length, never a hang
        assert c.closed(timeout=10)
        c.close()
        assert _splice(stack)["transfers"] - before["transfers"] == 1
        r = stack.get("/%d" % (1 << 20), host=VHOST)
        assert r.status_code == 200 and len(r.content) == 1 << 20
    finally:
        backend.stop()
