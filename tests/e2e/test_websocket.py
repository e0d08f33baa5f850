"""End-to-end tests of WebSocket tunnels through the gateway (issue 9 item 7,
SPEC §3 "WebSocket").

The client is websocket-client (python3-websocket), the backend is an echo
server of websockets (python3-websockets) running in a thread with its own
asyncio loop: two independent RFC 6455 implementations, with the gateway
between them relaying bytes it does not parse. The backend records what each
handshake carried (the request's headers, by path) and how each session
closed, so the tests can see both ends.
"""

import asyncio
import json
import os
import signal
import threading
import time
from http import HTTPStatus

import pytest
import websocket
import websockets

from stack import RawConn, free_ports, pause, wait_until

WAIT = 10.0
VHOST = "ws.test"


class EchoBackend:
    """A WebSocket echo server: every text or binary message comes back as
    is. A message "close-me" makes the server start the close handshake.
    GET /reject answers 400 instead of upgrading; GET /headers (no upgrade
    needed) answers 200 with the request's headers as JSON."""

    def __init__(self):
        (self.port,) = free_ports(1)
        self.handshakes = []  # (path, {lower-case name: value})
        self.closes = []  # (path, close code) as the server saw them
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(WAIT), "echo backend did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.stop_future = self.loop.create_future()
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self):
        async with websockets.serve(
            self._handler,
            "127.0.0.1",
            self.port,
            process_request=self._process_request,
            max_size=None,
            ping_interval=None,
        ):
            self.started.set()
            await self.stop_future

    async def _process_request(self, path, headers):
        hdrs = {k.lower(): v for k, v in headers.raw_items()}
        with self.lock:
            self.handshakes.append((path, hdrs))
        if path == "/reject":
            return HTTPStatus.BAD_REQUEST, [("Content-Type", "text/plain")], b"no upgrade here\n"
        if path == "/headers":
            return HTTPStatus.OK, [("Content-Type", "application/json")], json.dumps(hdrs).encode()
        return None

    async def _handler(self, ws, path=None):
        path = path or ws.path
        try:
            async for msg in ws:
                if msg == "close-me":
                    await ws.close(code=1000, reason="server bye")
                    break
                if isinstance(msg, str) and msg.startswith("flood "):
                    chunk = bytes(range(256)) * 4096  # 1 MiB
                    for _ in range(int(msg.split()[1])):
                        await ws.send(chunk)
                    continue
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        with self.lock:
            self.closes.append((path, ws.close_code))

    def headers_of(self, path):
        with self.lock:
            return [h for p, h in self.handshakes if p == path]

    def closes_of(self, path):
        with self.lock:
            return [c for p, c in self.closes if p == path]

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_future.set_result, None)
        self.thread.join(WAIT)


def ws_stack(make_stack, gateway_env=None):
    stack = make_stack(demo_route=False, gateway_env=gateway_env)
    backend = EchoBackend()
    stack.put_route(VHOST, [{"id": "echo", "hostname": "127.0.0.1", "port": backend.port, "region": "1"}])
    wait_until(lambda: stack.get("/headers", host=VHOST).status_code == 200, WAIT, what="route served")
    return stack, backend


def connect(stack, path="/echo", **kw):
    return websocket.create_connection(
        "ws://127.0.0.1:%d%s" % (stack.http_port, path), host=VHOST, timeout=WAIT, **kw
    )


def access_lines(stack, rid):
    out = []
    for line in stack.logs("gateway").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg") == "access" and e.get("request_id") == rid:
            out.append(e)
    return out


def request_id(ws):
    h = {k.lower(): v for k, v in ws.getheaders().items()}
    return h["x-request-id"]


def test_echo_text_binary_ping_and_client_close(make_stack):
    stack, backend = ws_stack(make_stack)
    try:
        ws = connect(stack)
        rid = request_id(ws)
        # the upgrade went upstream with its two hop-by-hop fields renewed
        (hdrs,) = backend.headers_of("/echo")
        assert hdrs["connection"].lower() == "upgrade", hdrs
        assert hdrs["upgrade"].lower() == "websocket", hdrs
        assert hdrs["x-request-id"] == rid and "sec-websocket-key" in hdrs, hdrs
        assert "x-forwarded-for" in hdrs, hdrs
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send_binary(b"\x00\x01\xfe\xff" * 10)
        assert ws.recv() == b"\x00\x01\xfe\xff" * 10
        ws.ping(b"are you there")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"are you there"
        pong = stack.pong("gateway")[0]
        assert pong.get("tunnels.open") == 1 and pong.get("tunnels.total") == 1, pong
        ws.close(status=1000)  # the client starts the close handshake
        wait_until(lambda: backend.closes_of("/echo"), WAIT, what="backend saw the close")
        assert backend.closes_of("/echo") == [1000]
        (line,) = wait_until(lambda: access_lines(stack, rid), WAIT, what="access line after close")
        assert line["status"] == 101, line
        # both echoes and the pong came back through the tunnel, plus the frames' headers
        assert line["bytes"] >= len("hello") + 40 + len("are you there"), line
        assert line["duration_ms"] > 0, line
        wait_until(lambda: stack.pong("gateway")[0].get("tunnels.open", 0) == 0, WAIT, what="tunnel counted closed")
    finally:
        backend.stop()


def test_large_messages_both_ways_and_server_close(make_stack):
    stack, backend = ws_stack(make_stack)
    try:
        ws = connect(stack, "/big")
        rid = request_id(ws)
        msgs = [os.urandom(1 << 20) for _ in range(4)]  # 4 MiB each way: above every buffer bound
        got = []

        def reader():
            for _ in msgs:
                got.append(ws.recv())

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for m in msgs:
            ws.send_binary(m)
        t.join(60)
        assert not t.is_alive(), "echo of the large messages did not come back"
        assert len(got) == len(msgs) and all(a == b for a, b in zip(got, msgs))
        # the server starts the close handshake; the client answers it
        ws.send("close-me")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, opcode
        assert frame.data[:2] == (1000).to_bytes(2, "big") and frame.data[2:] == b"server bye"
        # the backend shuts its side (RFC 6455 §7.1.1: the server closes the TCP
        # connection first); that EOF reaches the client, which then closes
        assert ws.sock.recv(1) == b""
        ws.shutdown()  # close() sends nothing more after a close frame was answered
        wait_until(lambda: backend.closes_of("/big") == [1000], WAIT, what="backend closed")
        (line,) = wait_until(lambda: access_lines(stack, rid), WAIT, what="access line after server close")
        assert line["status"] == 101 and line["bytes"] >= 4 << 20, line
    finally:
        backend.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_slow_client_backpressure(make_stack):
    """A client that does not read: the gateway stops reading the backend
    instead of buffering what it sends (bounded memory), then relays it all."""
    stack, backend = ws_stack(make_stack)
    try:
        ws = connect(stack, "/flood")
        ws.send("warm")
        assert ws.recv() == "warm"
        pid = stack.procs["gateway"].pid
        before = rss_kib(pid)
        ws.send("flood 64")  # 64 MiB towards a client that reads nothing for now
        pause(1.5)
        grown = rss_kib(pid) - before
        assert grown < 16 * 1024, "gateway grew by %d KiB while the client did not read" % grown
        chunk = bytes(range(256)) * 4096
        for i in range(64):
            assert ws.recv() == chunk, i
        ws.send("after")
        assert ws.recv() == "after"
        ws.close()
    finally:
        backend.stop()


def test_tunnel_survives_route_change_and_idle_timeout(make_stack):
    stack, backend = ws_stack(make_stack, gateway_env={"GATEWAY_IDLE_TIMEOUT": "1s"})
    try:
        ws = connect(stack, "/keep")
        rid = request_id(ws)
        ws.send("before")
        assert ws.recv() == "before"
        # config.changed: the route again, with a header; a new handshake shows it applies
        stack.put_route(
            VHOST,
            [{"id": "echo", "hostname": "127.0.0.1", "port": backend.port, "region": "1"}],
            headers={"X-Ws-Gen": "2"},
        )

        def new_config_seen():
            w = connect(stack, "/probe")
            w.close()
            return any(h.get("x-ws-gen") == "2" for h in backend.headers_of("/probe"))

        wait_until(new_config_seen, WAIT, interval=0.2, what="the changed route in use")
        ws.send("after change")
        assert ws.recv() == "after change"
        # silent both ways for more than twice GATEWAY_IDLE_TIMEOUT
        pause(2.5)
        ws.send("after silence")
        assert ws.recv() == "after silence"
        # the backend closes and the client never closes its half: the tunnel
        # lets it go after GATEWAY_IDLE_TIMEOUT, not 60 times that
        ws.send("close-me")
        assert ws.recv_data_frame(control_frame=True)[0] == websocket.ABNF.OPCODE_CLOSE
        assert ws.sock.recv(1) == b""
        (line,) = wait_until(lambda: access_lines(stack, rid), 5.0, what="half-closed tunnel let go")
        assert line["status"] == 101, line
        ws.shutdown()
    finally:
        backend.stop()


def test_backend_refuses_upgrade(make_stack):
    stack, backend = ws_stack(make_stack)
    try:
        with RawConn(stack.http_port) as c:
            c.send(
                b"GET /reject HTTP/1.1\r\nHost: " + VHOST.encode() + b"\r\nConnection: Upgrade\r\n"
                b"Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            r = c.read_response()
            assert r.status == 400 and r.body == b"no upgrade here\n", (r.status, r.body)
            assert r.header("upgrade") is None, r.headers
        # websocket-client sees a refused handshake, not a tunnel
        try:
            connect(stack, "/reject")
            raise AssertionError("a 400 became a tunnel")
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == 400
        assert stack.pong("gateway")[0].get("tunnels.total", 0) == 0
    finally:
        backend.stop()


def test_other_upgrade_is_dropped(make_stack):
    stack, backend = ws_stack(make_stack)
    try:
        with RawConn(stack.http_port) as c:
            c.send(
                b"GET /headers HTTP/1.1\r\nHost: " + VHOST.encode() + b"\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            )
            r = c.read_response()
            assert r.status == 200, (r.status, r.body)
            seen = json.loads(r.body)
            assert "upgrade" not in seen and "http2-settings" not in seen, seen
            assert seen.get("connection", "").lower() != "upgrade", seen
        # a websocket upgrade that is not a GET is not one either
        with RawConn(stack.http_port) as c:
            c.send(
                b"POST /headers HTTP/1.1\r\nHost: " + VHOST.encode() + b"\r\nConnection: upgrade\r\n"
                b"Upgrade: websocket\r\nContent-Length: 0\r\n\r\n"
            )
            r = c.read_response()
            assert r.status != 101, (r.status, r.body)
        assert stack.pong("gateway")[0].get("tunnels.total", 0) == 0
    finally:
        backend.stop()


def test_drain_keeps_tunnel_until_deadline(make_stack):
    stack, backend = ws_stack(make_stack, gateway_env={"GATEWAY_DRAIN_TIMEOUT": "2s"})
    try:
        ws = connect(stack, "/drain")
        rid = request_id(ws)
        ws.send("x")
        assert ws.recv() == "x"
        gw = stack.procs["gateway"]
        t0 = time.monotonic()
        os.kill(gw.pid, signal.SIGTERM)
        pause(0.5)
        ws.send("still here")  # draining: the tunnel is not closed at once
        assert ws.recv() == "still here"
        # at the drain deadline the tunnel is cut (opaque bytes: no close frame
        # can be made up) and the gateway exits 0
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            ws.recv()
        assert time.monotonic() - t0 >= 1.5
        wait_until(lambda: not gw.alive(), WAIT, what="gateway exited after the drain deadline")
        assert stack.terminate("gateway") == 0
        (line,) = access_lines(stack, rid)
        assert line["status"] == 101, line
    finally:
        backend.stop()
