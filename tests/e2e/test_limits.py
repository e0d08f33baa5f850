"""End-to-end tests of SPEC §3's limits the other files leave out, through the
public listener: 413 for a body over the route's `maxBodyBytes` (declared or
chunked), 504 `Gateway Timeout` (route `timeoutMs`) with its exact body, and
GATEWAY_MAX_CONNECTIONS (over it a connection is accepted and closed at once,
and counted in pong as connections.rejected; below it again, served).
"""

import collections
import socket

from stack import RawConn, wait_until


def test_body_over_max_body_bytes_is_413(stack):
    vhost = "small-body.test"
    stack.put_route(vhost, [stack.backend("a")], maxBodyBytes=1000)
    stack.wait_served(vhost)
    # declared too big: refused before any byte goes upstream
    with RawConn(stack.http_port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: " + vhost.encode() + b"\r\nContent-Length: 5000\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (413, b"Payload Too Large"), (r.status, r.body)
        assert r.header("X-Request-Id")
    # chunked, found too big while it streams
    with RawConn(stack.http_port) as c:
        chunk = b"x" * 600
        c.send(b"POST /echo HTTP/1.1\r\nHost: " + vhost.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
        r = c.read_response()
        assert r.status == 413, (r.status, r.body)
    # at the limit: served (on a connection of its own)
    with RawConn(stack.http_port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: " + vhost.encode() + b"\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000)
        r = c.read_response()
        assert r.status == 200, (r.status, r.body)


def test_upstream_timeout_is_504(stack):
    vhost = "timeout.test"
    stack.put_route(vhost, [stack.backend("a")], timeoutMs=300, retries=0)
    stack.wait_served(vhost)
    r = stack.get("/slow?ms=3000", host=vhost, timeout=10)
    assert (r.status_code, r.text) == (504, "Gateway Timeout"), (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("text/plain")
    assert r.headers.get("X-Request-Id")


def test_max_connections(make_stack):
    limit = 6
    stack = make_stack(gateway_env={"GATEWAY_MAX_CONNECTIONS": str(limit)})
    before = collections.defaultdict(int, stack.pong("gateway")[0])
    held, rejected = [], 0
    try:
        for _ in range(limit + 4):
            s = socket.create_connection(("127.0.0.1", stack.http_port), timeout=5)
            s.settimeout(0.3)
            try:
                closed = s.recv(1) == b""  # accepted and closed at once: over the limit
            except socket.timeout:
                closed = False  # open and waiting for a request
            if closed:
                rejected += 1
                s.close()
            else:
                held.append(s)
        assert rejected >= 4, (rejected, len(held))
        assert len(held) <= limit
        after = collections.defaultdict(int, stack.pong("gateway")[0])
        assert after["connections.rejected"] - before["connections.rejected"] == rejected
    finally:
        for s in held:
            s.close()
    # below the limit again: served
    wait_until(lambda: stack.get("/", host=stack.DEMO_VHOST, timeout=5).status_code == 200, 10, what="served again")


def test_pipelined_bytes_behind_a_slow_request_are_bounded(stack):
    # a request being served, and a client that keeps sending behind it: the
    # gateway holds at most 64 KiB of what follows, then stops reading (the
    # kernel's buffers fill and the client's send blocks) until the response
    # is done, instead of reading everything into memory
    c = socket.create_connection(("127.0.0.1", stack.http_port), timeout=10)
    try:
        c.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: " + stack.DEMO_VHOST.encode() + b"\r\n\r\n")
        junk = b"x" * (1 << 20)
        c.settimeout(1.0)
        sent = 0
        try:
            while sent < 64 << 20:
                sent += c.send(junk)
        except socket.timeout:
            pass
        assert sent < 64 << 20, "the gateway read 64 MiB behind a request it was still serving"
    finally:
        c.close()
    assert stack.get("/", host=stack.DEMO_VHOST, timeout=5).status_code == 200
