"""WebSocket tunnels and chat sessions over the HTTPS listener (wss://,
SPEC §3, §9, §11; docs/architecture.md "TLS").

The gateway keeps the TLS record layer: a chat session's WebSocket (gw_ws)
and a tunnel's client side (gw_tunnel) read and write through the
connection's SSL; the backend side stays plain TCP. The clients are
websocket-client over Python's ssl (certificate checks off: the default
certificate `*` is self-signed) and, where the bytes must be exact, a raw
TLS socket with frames built here. The chat stack is test_chat's (chatd, a
real redis-server), the tunnel's backend test_websocket's echo server
(python3-websockets).

- chat: one user over wss://, one over ws://, messages both ways with their
  acks, server pings answered past the idle bound, the close handshake
  (1000 answered, then the TLS and TCP ends), 1009 over wss without a reset,
  frames that came in the same TLS records as the upgrade request
- tunnel: text and binary echoes of many sizes (past TLS records, socket
  buffers and the gateway's high-water mark), several in flight at once,
  frames sent with the upgrade request, the close started by either side
- a client that reads slowly (a tiny receive buffer): the gateway's writes
  wait for it (the tunnel's SSL_write gets WANT_WRITE and repeats the same
  bytes), nothing is lost or reordered; a chat message past a turn's read
  budget
- a client that vanishes mid-session (no close frame; a reset too): the
  session or tunnel ends, the gateway stays healthy (the stack fixture finds
  no sanitizer report at teardown)
- SIGTERM: chat sessions over wss get 1001; one that never answers, and an
  open tunnel, are cut at GATEWAY_DRAIN_TIMEOUT; the gateway exits 0
"""

import json
import os
import signal
import socket
import ssl
import struct
import threading
import time

import websocket

from stack import free_ports, wait_until
from test_chat import VHOST as CHAT_VHOST, chat_stack, close_code, next_frame
from test_chat import redis  # noqa: F401 - the fixture
from test_tls import post_cert, served_cn
from test_websocket import VHOST as WS_VHOST, EchoBackend, access_lines, request_id

WAIT = 10.0
SSLOPT = {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}


def https_env():
    (port,) = free_ports(1)
    return port, {"GATEWAY_HTTPS_ADDR": "127.0.0.1:%d" % port}


def with_default_cert(stack, port, vhost):
    """The self-signed default certificate `*`, once the gateway serves it."""
    post_cert(stack, "*", "default")
    wait_until(lambda: served_cn(port, vhost) == "default", WAIT, what="default certificate served")


def wss(port, vhost, path, **kw):
    return websocket.create_connection(
        "wss://127.0.0.1:%d%s" % (port, path), host=vhost, timeout=WAIT, sslopt=dict(SSLOPT), **kw
    )


TINY_RCVBUF = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)  # set before connect: a small window


def ws_plain(stack, vhost, path, **kw):
    return websocket.create_connection(
        "ws://127.0.0.1:%d%s" % (stack.http_port, path), host=vhost, timeout=WAIT, **kw
    )


# ---------------------------------------------------------------- raw frames over TLS


def client_frame(opcode, payload, fin=True):
    """A masked client frame (RFC 6455 §5.2), built here, independent of both libraries."""
    key = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class RawTls:
    """A TLS socket with an HTTP head and server frames read by hand."""

    def __init__(self, port, sni):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.s = ctx.wrap_socket(raw, server_hostname=sni)
        self.buf = b""

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("server closed")
        self.buf += chunk

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head.decode()

    def frame(self):
        """(opcode, payload) of the next server frame (unmasked, final)."""
        while len(self.buf) < 2:
            self._fill()
        n, hl = self.buf[1] & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill()
            n, hl = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill()
            n, hl = struct.unpack(">Q", self.buf[2:10])[0], 10
        while len(self.buf) < hl + n:
            self._fill()
        op, payload, self.buf = self.buf[0] & 0x0F, self.buf[hl : hl + n], self.buf[hl + n :]
        return op, payload

    def close(self):
        self.s.close()


def upgrade_head(vhost, path):
    return (
        "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % (path, vhost)
    ).encode()


# ------------------------------------------------------------------------------- chat


def chat_sessions(stack):
    return stack.pong("gateway")[0].get("chat.sessions", 0)


def test_chat_over_wss(make_stack, redis):  # noqa: F811 - the fixture
    port, env = https_env()
    env.update({"CHAT_PING_INTERVAL": "1s", "CHAT_IDLE_TIMEOUT": "3s"})
    stack = chat_stack(make_stack, redis, **env)
    with_default_cert(stack, port, CHAT_VHOST)
    alice = wss(port, CHAT_VHOST, "/chat?userId=alice")  # wss://
    bob = ws_plain(stack, CHAT_VHOST, "/chat?userId=bob")  # ws://
    try:
        assert alice.sock.version() in ("TLSv1.2", "TLSv1.3")
        wait_until(lambda: stack.pong("chatd")[0].get("chat.sessions", 0) == 2, WAIT, what="2 sessions")
        wait_until(lambda: redis.numsub("chat:bob") == 1 and redis.numsub("chat:alice") == 1, WAIT,
                   what="both users subscribed")
        # messages both ways, each acked to its sender
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "hi bob", "id": "a1"}))
        assert next_frame(alice, "ack")["id"] == "a1"
        got = next_frame(bob, "message:received")
        assert (got["from"], got["text"], got["id"]) == ("alice", "hi bob", "a1"), got
        bob.send(json.dumps({"type": "message:send", "to": "alice", "text": "hi alice", "id": "b1"}))
        assert next_frame(bob, "ack")["id"] == "b1"
        got = next_frame(alice, "message:received")
        assert (got["from"], got["text"]) == ("bob", "hi alice"), got
        # text as large as chatd takes (64 KiB): several TLS records each way
        big = "é" * 32000
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": big, "id": "a2"}))
        assert next_frame(alice, "ack")["id"] == "a2"
        assert next_frame(bob, "message:received")["text"] == big
        bob.send(json.dumps({"type": "message:send", "to": "alice", "text": big, "id": "b2"}))
        assert next_frame(alice, "message:received")["text"] == big
        # keepalive: the client's ping answered; the server's pings (every
        # second) answered by the client keep it open past the idle bound (3 s)
        alice.ping(b"still there?")
        while True:
            op, frame = alice.recv_data_frame(control_frame=True)
            if op == websocket.ABNF.OPCODE_PONG:
                assert frame.data == b"still there?"
                break
        pings = {alice: 0, bob: 0}
        for w in pings:
            w.settimeout(0.2)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for w in pings:  # bob (ws://) has to answer too: the bound is everyone's
                try:
                    op, _ = w.recv_data_frame(control_frame=True)  # the library answers a ping
                except websocket.WebSocketTimeoutException:
                    continue
                if op == websocket.ABNF.OPCODE_PING:
                    pings[w] += 1
        for w in pings:
            w.settimeout(WAIT)
        assert pings[alice] >= 2 and pings[bob] >= 2, pings
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "after the pings", "id": "a3"}))
        assert next_frame(alice, "ack")["id"] == "a3"
        assert next_frame(bob, "message:received")["text"] == "after the pings"
        # the close handshake: our 1000 answered with 1000, then the TLS and TCP ends
        alice.send_close(websocket.STATUS_NORMAL)
        while True:
            op, data = alice.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
        assert struct.unpack(">H", data[:2])[0] == 1000, data
        assert alice.sock.recv(1) == b""  # close_notify (or FIN), not a reset
        wait_until(lambda: chat_sessions(stack) == 1, WAIT, what="alice's session closed")
    finally:
        alice.shutdown()
        bob.close()


def test_chat_over_wss_1009_and_bytes_with_the_upgrade(make_stack, redis):  # noqa: F811
    port, env = https_env()
    stack = chat_stack(make_stack, redis, **env)
    with_default_cert(stack, port, CHAT_VHOST)
    bob = ws_plain(stack, CHAT_VHOST, "/chat?userId=bob")
    try:
        wait_until(lambda: redis.numsub("chat:bob") == 1, WAIT, what="bob subscribed")
        # frames in the same TLS records as the upgrade request: read (and
        # decrypted) with the head, or still held by OpenSSL at the hand-over
        for i, size in enumerate((10, 3000, 20000, 60000)):
            c = RawTls(port, CHAT_VHOST)
            try:
                text = "x" * size
                msg = json.dumps({"type": "message:send", "to": "bob", "text": text, "id": "r%d" % i})
                c.s.sendall(upgrade_head(CHAT_VHOST, "/chat?userId=raw%d" % i) + client_frame(0x1, msg.encode()))
                head = c.head()
                assert head.startswith("HTTP/1.1 101"), head
                op, payload = c.frame()
                while json.loads(payload).get("type") != "ack":
                    op, payload = c.frame()
                assert op == 0x1 and json.loads(payload)["id"] == "r%d" % i, payload
                got = next_frame(bob, "message:received")
                assert (got["from"], len(got["text"])) == ("raw%d" % i, size)
                c.s.sendall(client_frame(0x8, struct.pack(">H", 1000)))
                op, payload = c.frame()
                assert op == 0x8 and payload[:2] == struct.pack(">H", 1000), (op, payload)
            finally:
                c.close()
        # a message over 1 MiB over wss: closed with 1009; the rest of the
        # message is read and dropped (lingering close), so no reset reaches
        # the client before it has read the close frame and the end
        alice = wss(port, CHAT_VHOST, "/chat?userId=alice")
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "before", "id": "a1"}))
        assert next_frame(alice, "ack")["id"] == "a1"
        alice.send("x" * (1024 * 1024 + 1))
        assert close_code(alice) == 1009
        assert alice.sock.recv(1) == b""  # close_notify (or FIN), not ECONNRESET
        alice.shutdown()
        wait_until(lambda: chat_sessions(stack) == 1, WAIT, what="only bob's session left")
        assert next_frame(bob, "message:received")["text"] == "before"
    finally:
        bob.close()


def test_chat_client_vanishes_over_wss(make_stack, redis):  # noqa: F811
    port, env = https_env()
    stack = chat_stack(make_stack, redis, **env)
    with_default_cert(stack, port, CHAT_VHOST)
    # mid-message (half a frame), without close frame or close_notify
    alice = wss(port, CHAT_VHOST, "/chat?userId=alice")
    alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "x", "id": "a1"}))
    assert next_frame(alice, "ack")["id"] == "a1"
    frame = client_frame(0x1, b"y" * 5000)
    alice.sock.sendall(frame[:2000])
    alice.sock.close()
    # reset: SO_LINGER 0 makes the close an RST
    carol = wss(port, CHAT_VHOST, "/chat?userId=carol")
    carol.send(json.dumps({"type": "message:send", "to": "bob", "text": "x", "id": "c1"}))
    assert next_frame(carol, "ack")["id"] == "c1"
    carol.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    carol.sock.close()
    # right after the TLS handshake, before any request
    c = RawTls(port, CHAT_VHOST)
    c.close()
    wait_until(lambda: chat_sessions(stack) == 0, WAIT, what="sessions of vanished clients closed")
    # the gateway goes on: a new session over wss works
    dave = wss(port, CHAT_VHOST, "/chat?userId=dave")
    dave.send(json.dumps({"type": "message:send", "to": "bob", "text": "x", "id": "d1"}))
    assert next_frame(dave, "ack")["id"] == "d1"
    dave.close()
    assert stack.get("/health").status_code == 200


def test_chat_over_wss_slow_reader_and_drain(make_stack, redis):  # noqa: F811
    port, env = https_env()
    env["GATEWAY_DRAIN_TIMEOUT"] = "2s"
    stack = chat_stack(make_stack, redis, **env)
    with_default_cert(stack, port, CHAT_VHOST)
    alice = ws_plain(stack, CHAT_VHOST, "/chat?userId=alice")
    bob = wss(port, CHAT_VHOST, "/chat?userId=bob", sockopt=TINY_RCVBUF)  # reads late
    carol = wss(port, CHAT_VHOST, "/chat?userId=carol")  # never answers the drain's close
    try:
        wait_until(lambda: redis.numsub("chat:bob") == 1, WAIT, what="bob subscribed")
        # 3 MB for bob while he reads nothing: the gateway's writes wait for
        # room (below gw_chat's 4 MiB bound for a slow client)
        texts = ["%04d" % i + chr(0x41 + i % 26) * 59996 for i in range(50)]
        for i, text in enumerate(texts):
            alice.send(json.dumps({"type": "message:send", "to": "bob", "text": text, "id": "s%d" % i}))
            assert next_frame(alice, "ack")["id"] == "s%d" % i
        for text in texts:
            assert next_frame(bob, "message:received")["text"] == text
        # a frame larger than a turn's read budget (64 KiB), over wss: read
        # whole (chatd refuses text over 64 KiB: its error proves it came)
        bob.send(json.dumps({"type": "message:send", "to": "alice", "text": "y" * 200000, "id": "b1"}))
        err = next_frame(bob, "error")
        assert (err["code"], err.get("id")) == ("bad_frame", "b1"), err
        bob.send(json.dumps({"type": "message:send", "to": "alice", "text": "still here", "id": "b2"}))
        assert next_frame(bob, "ack")["id"] == "b2"
        assert next_frame(alice, "message:received")["text"] == "still here"

        # SIGTERM: 1001 to every session; bob answers it, carol does not and
        # is cut at the drain deadline (her SSL and socket ended by gw_ws)
        gw = stack.procs["gateway"]
        os.kill(gw.pid, signal.SIGTERM)
        assert close_code(bob) == 1001
        assert bob.sock.recv(1) == b""
        wait_until(lambda: not gw.alive(), WAIT, what="gateway exited after the drain deadline")
        assert stack.terminate("gateway") == 0
    finally:
        for w in (alice, bob, carol):
            w.shutdown()


# ----------------------------------------------------------------------------- tunnel


def tls_ws_stack(make_stack):
    port, env = https_env()
    stack = make_stack(demo_route=False, gateway_env=env)
    backend = EchoBackend()
    stack.put_route(WS_VHOST, [{"id": "echo", "hostname": "127.0.0.1", "port": backend.port, "region": "1"}])
    wait_until(lambda: stack.get("/headers", host=WS_VHOST).status_code == 200, WAIT, what="route served")
    with_default_cert(stack, port, WS_VHOST)
    return stack, backend, port


def tunnels_open(stack):
    return stack.pong("gateway")[0].get("tunnels.open", 0)


def test_tunnel_over_wss_echo_sizes_and_close_both_ways(make_stack):
    stack, backend, port = tls_ws_stack(make_stack)
    try:
        ws = wss(port, WS_VHOST, "/echo")
        rid = request_id(ws)
        (hdrs,) = backend.headers_of("/echo")
        assert hdrs["upgrade"].lower() == "websocket" and hdrs["x-forwarded-proto"] == "https", hdrs
        # one at a time: sizes around the frame length forms, TLS records
        # (16 KiB), socket buffers and the gateway's high-water mark (256 KiB)
        sizes = (0, 1, 125, 126, 4096, 16383, 16384, 16385, 65535, 65536, 70000, 300000, (1 << 20) + 7)
        for n in sizes:
            text = "t" * n
            ws.send(text)
            assert ws.recv() == text, n
            data = os.urandom(n)
            ws.send_binary(data)
            assert ws.recv() == data, n
        # many in flight both ways at once
        msgs = [os.urandom(n) for n in (200000, 5, 1 << 20, 65536, 777777, 3)]
        got = []

        def reader():
            for _ in msgs:
                got.append(ws.recv())

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for m in msgs:
            ws.send_binary(m)
        t.join(60)
        assert not t.is_alive(), "the echoes did not come back"
        assert got == msgs
        ws.ping(b"ping over tls")
        op, frame = ws.recv_data_frame(control_frame=True)
        assert op == websocket.ABNF.OPCODE_PONG and frame.data == b"ping over tls"
        assert tunnels_open(stack) == 1
        # the client starts the close handshake
        ws.close(status=1000)
        wait_until(lambda: backend.closes_of("/echo") == [1000], WAIT, what="backend saw the close")
        (line,) = wait_until(lambda: access_lines(stack, rid), WAIT, what="access line after close")
        assert line["status"] == 101 and line["bytes"] >= 2 * sum(sizes) + sum(len(m) for m in msgs), line

        # the backend starts it: its close frame, then its FIN as close_notify and FIN
        ws = wss(port, WS_VHOST, "/big")
        ws.send("close-me")
        op, frame = ws.recv_data_frame(control_frame=True)
        assert op == websocket.ABNF.OPCODE_CLOSE and frame.data == (1000).to_bytes(2, "big") + b"server bye"
        assert ws.sock.recv(1) == b""
        ws.shutdown()
        wait_until(lambda: backend.closes_of("/big") == [1000], WAIT, what="backend closed")
        wait_until(lambda: tunnels_open(stack) == 0, WAIT, what="tunnels closed")
    finally:
        backend.stop()


def test_tunnel_over_wss_bytes_with_the_upgrade(make_stack):
    """Frames sent with the upgrade request: what the connection had read
    (decrypted) goes to the backend first, then what OpenSSL still held,
    then the socket."""
    stack, backend, port = tls_ws_stack(make_stack)
    try:
        for size in (10, 20000, 200000):
            c = RawTls(port, WS_VHOST)
            try:
                payload = os.urandom(size)
                c.s.sendall(upgrade_head(WS_VHOST, "/early") + client_frame(0x2, payload) + client_frame(0x1, b"next"))
                head = c.head()
                assert head.startswith("HTTP/1.1 101"), head
                assert c.frame() == (0x2, payload)
                assert c.frame() == (0x1, b"next")
                c.s.sendall(client_frame(0x8, struct.pack(">H", 1000)))
                op, data = c.frame()
                assert op == 0x8 and data[:2] == struct.pack(">H", 1000)
            finally:
                c.close()
        wait_until(lambda: tunnels_open(stack) == 0, WAIT, what="tunnels closed")
    finally:
        backend.stop()


def test_tunnel_over_wss_slow_reader_and_drain(make_stack):
    """A client that reads nothing for a while: the gateway's SSL_write
    waits for room, reading the backend stops at the high-water mark and
    resumes; every byte arrives in order. Then SIGTERM: the open tunnel is
    cut at GATEWAY_DRAIN_TIMEOUT (opaque bytes: no close frame is made up)."""
    port, env = https_env()
    env["GATEWAY_DRAIN_TIMEOUT"] = "2s"
    stack = make_stack(demo_route=False, gateway_env=env)
    backend = EchoBackend()
    try:
        stack.put_route(WS_VHOST, [{"id": "echo", "hostname": "127.0.0.1", "port": backend.port, "region": "1"}])
        wait_until(lambda: stack.get("/headers", host=WS_VHOST).status_code == 200, WAIT, what="route served")
        with_default_cert(stack, port, WS_VHOST)
        ws = wss(port, WS_VHOST, "/flood", sockopt=TINY_RCVBUF)
        rid = request_id(ws)
        ws.send("flood 16")  # 16 MiB towards a client that reads nothing for now
        wait_until(lambda: tunnels_open(stack) == 1, WAIT, what="tunnel open")
        chunk = bytes(range(256)) * 4096
        for i in range(16):
            assert ws.recv() == chunk, i
        ws.send("after")
        assert ws.recv() == "after"
        gw = stack.procs["gateway"]
        os.kill(gw.pid, signal.SIGTERM)
        ws.send("draining")  # the tunnel is left alone until the deadline
        assert ws.recv() == "draining"
        wait_until(lambda: not gw.alive(), WAIT, what="gateway exited after the drain deadline")
        assert stack.terminate("gateway") == 0
        (line,) = access_lines(stack, rid)
        assert line["status"] == 101 and line["bytes"] >= 16 << 20, line
        ws.shutdown()
    finally:
        backend.stop()


def test_tunnel_client_vanishes_over_wss(make_stack):
    stack, backend, port = tls_ws_stack(make_stack)
    try:
        # in the middle of a message: no close frame, no close_notify
        ws = wss(port, WS_VHOST, "/gone")
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.sock.sendall(client_frame(0x2, b"z" * 100000)[:50000])
        ws.sock.close()
        # a reset while the backend is sending
        ws2 = wss(port, WS_VHOST, "/reset")
        ws2.send("flood 8")
        ws2.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws2.sock.close()
        wait_until(lambda: tunnels_open(stack) == 0, WAIT, what="tunnels of vanished clients closed")
        wait_until(lambda: len(backend.closes_of("/gone")) == 1 and len(backend.closes_of("/reset")) == 1, WAIT,
                   what="backend saw both go")
        # the gateway goes on
        ws = wss(port, WS_VHOST, "/after")
        ws.send("still serving")
        assert ws.recv() == "still serving"
        ws.close()
        assert stack.get("/health").status_code == 200
    finally:
        backend.stop()
