"""End-to-end tests of chat (SPEC §9, docs/chat.md): the real gateway, chatd
and a real redis-server, with websocket-client (python3-websocket) as the
independent client.

A route with `chatPath: /chat` and no backends: a WebSocket upgrade to it is
a chat session terminated by the gateway (identity checked before the 101),
its frames handled by chatd through Redis.
"""

import json
import os
import re
import signal
import struct
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
    """A redis-server on a free port (or the port given: a restart), stopped by PID."""

    def __init__(self, workdir, port=None):
        self.workdir = workdir
        (self.port,) = (port,) if port else free_ports(1)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1", "--dir", workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        wait_until(self._answers, WAIT, what="redis-server answering")

    def numsub(self, channel):
        """Subscribers of a channel (PUBSUB NUMSUB): chatd has subscribed once it is 1."""
        p = subprocess.run(["redis-cli", "-p", str(self.port), "PUBSUB", "NUMSUB", channel],
                           capture_output=True, text=True)
        lines = p.stdout.split()
        return int(lines[1]) if len(lines) == 2 else 0

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

    def restart(self):
        """The same port again, empty (no persistence): what chatd meets after an outage."""
        self.stop()
        self.__init__(self.workdir, self.port)


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
    wait_until(lambda: stack.pong("gateway")[0].get("chat.chatd", 0) == 0
               and stack.pong("gateway")[0].get("peers.chatd", 0) == 0, WAIT, what="chatd gone")
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


# ------------------------------------------------------------------ more instances


def pongs(stack):
    """Every instance's counters from `switchyard ping -v`: {instance: {name: int}}."""
    _, out = stack.pong("chatd")
    found, name = {}, None
    for line in out.splitlines():
        m = re.match(r"^(\w+)\s+(\S+)\s+\d+\s", line)
        if m:
            name = m.group(2)
            found[name] = {}
        elif name and line.startswith(" "):
            found[name].update({k: int(v) for k, v in re.findall(r"(\S+)=(\d+)", line)})
    return found


def start_chatd(stack, name, region):
    """Another chatd on the stack's bus (stopped and checked like the others)."""
    env = stack._actor_env("chatd")
    env.update({"REGION": region, "INSTANCE_ID": name})
    stack._spawn(name, "chatd", env_extra=env)
    wait_until(lambda: name in pongs(stack), WAIT, what="%s answering" % name)


def start_gateway(stack, name, region):
    """Another gateway (its own ports) on the stack's bus; returns its HTTP port."""
    http_port, admin_port = free_ports(2)
    env = stack._actor_env("gateway")
    env.update({"REGION": region, "INSTANCE_ID": name, "GATEWAY_HTTP_ADDR": "127.0.0.1:%d" % http_port,
                "GATEWAY_ADMIN_ADDR": "127.0.0.1:%d" % admin_port})
    stack._spawn(name, "gateway", env_extra=env)
    wait_until(lambda: requests.get("http://127.0.0.1:%d/ready" % admin_port, timeout=2).status_code == 200,
               WAIT, what="%s /ready" % name)
    return http_port


def connect_to(port, query):
    url = "ws://127.0.0.1:%d/chat?%s" % (port, query)
    return websocket.create_connection(url, host=VHOST, timeout=WAIT)


def sessions(stack, instance):
    return pongs(stack).get(instance, {}).get("chat.sessions", 0)


def send_until_acked(ws, frame, attempts=20):
    """What a client does: send, and send the same id again until it is acked
    (an `unavailable` error or no ack within 1 s). Delivery is idempotent by id."""
    ws.settimeout(1.0)
    try:
        for _ in range(attempts):
            ws.send(json.dumps(frame))
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    got = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    break
                if got.get("type") == "ack" and got.get("id") == frame["id"]:
                    return
                if got.get("type") == "error" and got.get("id") == frame["id"]:
                    assert got["code"] == "unavailable", got
                    time.sleep(0.1)  # pacing a retry, not synchronisation: the next try is checked
                    break
        raise AssertionError("%s never acked" % frame["id"])
    finally:
        ws.settimeout(WAIT)


def close_code(ws):
    """The status code of the server's close frame. websocket-client answers the
    close with its own: after a 1009 the gateway still reads (and drops) the rest
    of the client's message (lingering close), so that answer meets no reset."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack(">H", data[:2])[0]
    raise AssertionError("no close frame")


# ------------------------------------------------------------------ the rest of SPEC §9


def test_rooms_typing_presence_and_errors(make_stack, redis):
    stack = chat_stack(make_stack, redis)
    alice = connect(stack, "userId=alice")
    bob = connect(stack, "userId=bob")
    try:
        # typing is not kept for later: send it once bob's chatd listens on his channel
        wait_until(lambda: redis.numsub("chat:bob") == 1, WAIT, what="chat:bob subscribed")
        alice.send(json.dumps({"type": "typing:start", "to": "bob"}))
        got = next_frame(bob, "typing")
        assert (got["from"], got["state"]) == ("alice", "start"), got
        alice.send(json.dumps({"type": "typing:stop", "to": "bob"}))
        assert next_frame(bob, "typing")["state"] == "stop"
        # rooms: both join; alice hears bob arrive (presence to the user's rooms)
        alice.send(json.dumps({"type": "join:room", "room": "lobby"}))
        wait_until(lambda: redis.numsub("chat:room:lobby") == 1, WAIT, what="room joined")
        bob.send(json.dumps({"type": "join:room", "room": "lobby"}))
        got = next_frame(alice, "presence:updated")
        assert (got["userId"], got["status"]) == ("bob", "online"), got
        alice.send(json.dumps({"type": "message:send", "room": "lobby", "text": "hello room", "id": "r1"}))
        assert next_frame(alice, "ack")["id"] == "r1"
        got = next_frame(bob, "message:received")
        assert (got["from"], got["room"], got["text"], got["id"]) == ("alice", "lobby", "hello room", "r1"), got
        assert "to" not in got
        bob.send(json.dumps({"type": "typing:start", "room": "lobby"}))
        got = next_frame(alice, "typing")
        assert (got["from"], got["room"], got["state"]) == ("bob", "lobby", "start"), got
        # presence: bob away, alice hears it in the room
        bob.send(json.dumps({"type": "presence:update", "status": "away"}))
        got = next_frame(alice, "presence:updated")
        assert (got["userId"], got["status"]) == ("bob", "away"), got
        # bob leaves: room messages no longer reach him, direct ones do
        bob.send(json.dumps({"type": "leave:room", "room": "lobby"}))
        bob.send(json.dumps({"type": "message:send", "room": "lobby", "text": "x", "id": "b1"}))
        err = next_frame(bob, "error")
        assert (err["code"], err["id"]) == ("bad_frame", "b1") and "join the room" in err["message"], err
        alice.send(json.dumps({"type": "message:send", "room": "lobby", "text": "gone?", "id": "r2"}))
        next_frame(alice, "ack")
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "direct", "id": "d1"}))
        next_frame(alice, "ack")
        assert next_frame(bob, "message:received")["id"] == "d1"  # not r2
        # every error code; the session stays open after each
        cases = [
            ("{not json", "bad_json"),
            (json.dumps({"type": "message:delete"}), "bad_type"),
            (json.dumps({"text": "no type"}), "bad_type"),
            (json.dumps({"type": "message:send", "to": "bob", "room": "lobby", "text": "x"}), "bad_frame"),
            (json.dumps({"type": "message:send", "to": "bob", "text": ""}), "bad_frame"),
            (json.dumps({"type": "message:send", "to": "bob", "text": "x" * 65537}), "bad_frame"),
            (json.dumps({"type": "presence:update", "status": "sleeping"}), "bad_frame"),
            (json.dumps({"type": "join:room", "room": "bad room"}), "bad_frame"),
            (json.dumps({"type": "message:send", "to": "bob", "text": "x", "id": "bad id!"}), "bad_frame"),
        ]
        for text, code in cases:
            alice.send(text)
            err = next_frame(alice, "error")
            assert err["code"] == code, (text[:80], err)
            assert err["message"], err
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "still open", "id": "d2"}))
        assert next_frame(alice, "ack")["id"] == "d2"
        # over 1 MiB: the gateway closes the session with 1009
        alice.send("x" * (1024 * 1024 + 1))
        assert close_code(alice) == 1009
    finally:
        alice.close()
        bob.close()


def test_redis_stopped_and_restarted_mid_session(make_stack, redis):
    stack = chat_stack(make_stack, redis)
    alice = connect(stack, "userId=alice")
    bob = connect(stack, "userId=bob")
    try:
        send_until_acked(alice, {"type": "message:send", "to": "bob", "text": "before", "id": "p1"})
        assert next_frame(bob, "message:received")["id"] == "p1"
        redis.stop()
        wait_until(lambda: stack.pong("chatd")[0].get("redis.up", 0) == 0, WAIT, what="chatd sees Redis down")
        # sessions stay open; a send gets `unavailable`, never a silent drop
        alice.send(json.dumps({"type": "message:send", "to": "bob", "text": "during", "id": "p2"}))
        err = next_frame(alice, "error")
        assert (err["code"], err.get("id")) == ("unavailable", "p2"), err
        redis.restart()
        # reconnect after 1 s (then 2, 4, ...): within a few seconds
        wait_until(lambda: stack.pong("chatd")[0].get("redis.up", 0) == 1, 15, interval=0.2, what="Redis back")
        send_until_acked(alice, {"type": "message:send", "to": "bob", "text": "during", "id": "p2"})
        assert next_frame(bob, "message:received")["id"] == "p2"  # bob's channel was subscribed again
        send_until_acked(bob, {"type": "message:send", "to": "alice", "text": "after", "id": "p3"})
        assert next_frame(alice, "message:received")["id"] == "p3"
    finally:
        alice.close()
        bob.close()


def test_two_chatd_killed_mid_conversation_nothing_lost(make_stack, redis):
    """alice's session on chatd region 1, bob's on chatd region 2 (the region each asks
    for). bob's chatd is SIGKILLed mid-conversation, then a new one starts, then alice's
    is SIGKILLed: every message alice got an ack for reaches bob once, in order."""
    stack = chat_stack(make_stack, redis)
    start_chatd(stack, "chatd-r2", "2")
    wait_until(lambda: stack.pong("gateway")[0].get("chat.chatd", 0) == 2, WAIT, what="2 chatd")
    alice = connect(stack, "userId=alice&region=1")
    bob = connect(stack, "userId=bob&region=2")
    got = []

    def drain(until_id):
        bob.settimeout(WAIT)
        while not got or got[-1] != until_id:
            frame = json.loads(bob.recv())
            if frame.get("type") == "message:received":
                got.append(frame["id"])

    try:
        wait_until(lambda: sessions(stack, "chatd-r2") == 1 and sessions(stack, "chatd-e2e-0") == 1,
                   WAIT, what="one session on each chatd")
        sent = []
        for i in range(30):
            if i == 10:
                stack.kill("chatd-r2")  # bob's chatd
            if i == 18:
                start_chatd(stack, "chatd-r2b", "2")
            if i == 22:
                stack.kill("chatd")  # alice's (and now bob's) chatd
            mid = "k%02d" % i
            send_until_acked(alice, {"type": "message:send", "to": "bob", "text": "m%d" % i, "id": mid})
            sent.append(mid)
        drain(sent[-1])
        assert got == sent, got
        gw = stack.pong("gateway")[0]
        assert gw.get("chat.moved", 0) >= 3, gw  # bob once, then both
        assert sessions(stack, "chatd-r2b") == 2
    finally:
        alice.close()
        bob.close()


def test_two_regions_through_one_redis(make_stack, redis):
    """Two gateways (REGION 1 and 2), each with its region's chatd: a session goes to
    its own region's chatd, and messages cross through Redis."""
    stack = chat_stack(make_stack, redis)
    start_chatd(stack, "chatd-r2", "2")
    port2 = start_gateway(stack, "gateway-r2", "2")
    wait_until(lambda: pongs(stack).get("gateway-r2", {}).get("chat.chatd", 0) == 2, WAIT, what="gw 2 knows 2 chatd")
    alice = connect(stack, "userId=alice")  # gateway region 1
    bob = connect_to(port2, "userId=bob")  # gateway region 2
    try:
        wait_until(lambda: sessions(stack, "chatd-e2e-0") == 1 and sessions(stack, "chatd-r2") == 1,
                   WAIT, what="each region's chatd holds its session")
        send_until_acked(alice, {"type": "message:send", "to": "bob", "text": "from region 1", "id": "x1"})
        got = next_frame(bob, "message:received")
        assert (got["from"], got["text"]) == ("alice", "from region 1")
        send_until_acked(bob, {"type": "message:send", "to": "alice", "text": "from region 2", "id": "x2"})
        got = next_frame(alice, "message:received")
        assert (got["from"], got["text"]) == ("bob", "from region 2")
        # a region with no chatd of its own falls back to any chatd
        carol = connect_to(port2, "userId=carol&region=9")
        try:
            wait_until(lambda: sessions(stack, "chatd-e2e-0") + sessions(stack, "chatd-r2") == 3, WAIT,
                       what="carol served")
        finally:
            carol.close()
    finally:
        alice.close()
        bob.close()


def test_cold_start_first_session_right_after_ready(make_stack, redis):
    """The first chat session right after /ready (and the route's PUT) is accepted,
    whether or not the gateway has seen chatd's subscription yet, and works."""
    stack = make_stack(actor_env={"REDIS_URL": redis.url}, demo_route=False)
    stack.put_route(VHOST, [], chatPath="/chat")
    bob = connect(stack, "userId=bob")  # no wait for chatd: a user would not wait either
    alice = connect(stack, "userId=alice")
    try:
        send_until_acked(alice, {"type": "message:send", "to": "bob", "text": "first", "id": "c1"})
        assert next_frame(bob, "message:received")["text"] == "first"
    finally:
        alice.close()
        bob.close()
