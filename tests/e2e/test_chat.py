"""End-to-end tests of chat (SPEC §9, docs/chat.md): the real gateway, chatd
and a real redis-server, with websocket-client (python3-websocket) as the
independent client.

A route with `chatPath: /chat` and no backends: a WebSocket upgrade to it is
a chat session terminated by the gateway (identity checked before the 101),
its frames handled by chatd through Redis.
"""

import json
import os
import signal
import subprocess
import time

import pytest
import requests
import websocket

from stack import free_ports, wait_until

WAIT = 10.0
VHOST = "chat.test"
SECRET = "0123456789abcdef0123456789abcdef-test"


class Redis:
    """A redis-server on a free port, stopped by PID."""

    def __init__(self, workdir):
        (self.port,) = free_ports(1)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1", "--dir", workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        wait_until(self._answers, WAIT, what="redis-server answering")

    def _answers(self):
        p = subprocess.run(["redis-cli", "-p", str(self.port), "PING"], capture_output=True, text=True)
        return p.stdout.strip() == "PONG"

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=WAIT)


@pytest.fixture
def redis(tmp_path):
    r = Redis(str(tmp_path))
    yield r
    r.stop()


def chat_stack(make_stack, redis, **gateway_env):
    env = {"REDIS_URL": redis.url}
    stack = make_stack(actor_env=env, gateway_env=gateway_env, demo_route=False)
    stack.put_route(VHOST, [], chatPath="/chat")
    # the gateway knows a chatd (it subscribed to its address on the gateway's bus)
    wait_until(lambda: stack.pong("gateway")[0].get("chat.chatd", 0) >= 1, WAIT, what="a chatd reachable")
    return stack


def connect(stack, query, headers=None):
    url = "ws://127.0.0.1:%d/chat?%s" % (stack.http_port, query)
    return websocket.create_connection(url, host=VHOST, header=headers or [], timeout=WAIT)


def chat_metrics(stack):
    text = requests.get(stack.admin_url + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("switchyard_ws_connections", "switchyard_chat_sessions",
                    "switchyard_chat_messages_total", "switchyard_chat_rooms"):
            out[name] = int(float(value))
    return out


def next_frame(ws, want_type):
    """The next frame of type want_type (others before it are skipped)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv())
        if frame.get("type") == want_type:
            return frame
    raise AssertionError("no %s frame" % want_type)


def test_two_users_both_ways(make_stack, redis):
    stack = chat_stack(make_stack, redis)
    alice = connect(stack, "userId=alice")
    bob = connect(stack, "userId=bob")
    try:
        wait_until(lambda: stack.pong("chatd")[0].get("chat.sessions", 0) == 2, WAIT, what="2 sessions")
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "hi bob", "id": "a1"}))
        assert next_frame(alice, "ack")["id"] == "a1"
        got = next_frame(bob, "message:received")
        assert (got["from"], got["to"], got["text"], got["id"]) == ("alice", "bob", "hi bob", "a1")
        assert isinstance(got["ts"], int)
        bob.send(json.dumps({"type": "message:send", "to": "alice", "text": "hi alice"}))
        next_frame(bob, "ack")
        got = next_frame(alice, "message:received")
        assert (got["from"], got["text"]) == ("bob", "hi alice")
        # a bad frame gets an error frame naming the field; the session stays
        alice.send(json.dumps({"type": "message:send", "to": "no one", "text": "x"}))
        err = next_frame(alice, "error")
        assert err["code"] == "bad_frame" and "'to'" in err["message"], err
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "still here"}))
        next_frame(alice, "ack")
        assert next_frame(bob, "message:received")["text"] == "still here"
        # /metrics (statsd, from the actors' counters, every PROC_STATS_INTERVAL)
        bob.send(json.dumps({"type": "join:room", "room": "lobby"}))
        want = {"switchyard_ws_connections": 2, "switchyard_chat_sessions": 2,
                "switchyard_chat_messages_total": 3, "switchyard_chat_rooms": 1}
        wait_until(lambda: chat_metrics(stack) == want, 15, interval=0.5, what="chat metrics %s" % want)
        # /api/health/sockets: each gateway's and chatd's chat figures, live (pong)
        sockets = requests.get(stack.admin_url + "/api/health/sockets", timeout=10).json()
        (gw,) = sockets["gateways"]
        (cd,) = sockets["chatd"]
        assert gw["chat"]["chat.sessions"] == 2 and gw["chat"]["chat.chatd"] == 1, sockets
        assert cd["chat"]["chat.sessions"] == 2 and cd["chat"]["chat.rooms"] == 1, sockets
        assert cd["redis"]["redis.up"] == 1, sockets
    finally:
        alice.close()
        bob.close()
    wait_until(lambda: stack.pong("chatd")[0].get("chat.sessions", 0) == 0, WAIT, what="sessions closed")
    # the access line of a session: 101
    lines = [json.loads(l) for l in stack.logs("gateway").splitlines() if l.startswith("{")]
    assert any(e.get("msg") == "access" and e.get("status") == 101 and e.get("path", "").startswith("/chat")
               for e in lines)


def test_offline_user_gets_the_inbox_on_connect(make_stack, redis):
    stack = chat_stack(make_stack, redis)
    alice = connect(stack, "userId=alice")
    try:
        for i in range(3):
            alice.send(json.dumps({"type": "message:send", "to": "dave", "text": "m%d" % i}))
            next_frame(alice, "ack")
        dave = connect(stack, "userId=dave")
        try:
            assert [next_frame(dave, "message:received")["text"] for _ in range(3)] == ["m0", "m1", "m2"]
        finally:
            dave.close()
    finally:
        alice.close()


def test_identity_checked_before_the_upgrade(make_stack, redis):
    stack = chat_stack(make_stack, redis)
    for query in ("", "userId=", "userId=bad%20name", "userId=a:b"):
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            connect(stack, query)
        assert e.value.status_code == 401, query


def test_jwt(make_stack, redis):
    stack = chat_stack(make_stack, redis, CHAT_JWT_SECRET=SECRET)
    token = hs256({"sub": "erin", "exp": int(time.time()) + 60}, SECRET)
    ws = connect(stack, "token=" + token)
    try:
        ws.send(json.dumps({"type": "message:send", "to": "frank", "text": "hello frank", "id": "j1"}))
        assert next_frame(ws, "ack")["id"] == "j1"
    finally:
        ws.close()
    # the user is the token's sub, whatever userId says; the header works too
    frank = hs256({"sub": "frank", "exp": int(time.time()) + 60}, SECRET)
    ws = connect(stack, "userId=mallory", headers=["Authorization: Bearer " + frank])
    try:
        got = next_frame(ws, "message:received")
        assert (got["from"], got["to"], got["text"]) == ("erin", "frank", "hello frank")
    finally:
        ws.close()
    bad = [
        hs256({"sub": "erin", "exp": int(time.time()) - 1}, SECRET),  # expired
        hs256({"sub": "erin", "exp": int(time.time()) + 60}, "another secret of enough length!!"),
        hs256({"sub": "erin"}, SECRET),  # no exp
    ]
    for t in bad + [""]:
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            connect(stack, "token=" + t + "&userId=erin")
        assert e.value.status_code == 401


def hs256(claims, secret):
    """A JWT made here with the standard library (an independent writer)."""
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64(sig))


def test_no_chatd_means_503_and_a_killed_chatd_moves_nothing_lost(make_stack, redis):
    stack = chat_stack(make_stack, redis)
    bob = connect(stack, "userId=bob")
    stack.kill("chatd")
    wait_until(lambda: stack.pong("gateway")[0].get("chat.chatd", 0) == 0, WAIT, what="chatd gone")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        connect(stack, "userId=alice")
    assert e.value.status_code == 503
    # bob's session stayed open; a frame now gets "unavailable"
    bob.send(json.dumps({"type": "message:send", "to": "alice", "text": "x", "id": "n1"}))
    assert next_frame(bob, "error")["code"] == "unavailable"
    # chatd back: bob's session is attached to it without reconnecting
    stack.start_actor("chatd")
    wait_until(lambda: stack.pong("gateway")[0].get("chat.moved", 0) >= 1, WAIT, what="session moved")
    alice = connect(stack, "userId=alice")
    try:
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "you there?"}))
        next_frame(alice, "ack")
        assert next_frame(bob, "message:received")["text"] == "you there?"
    finally:
        alice.close()
        bob.close()
