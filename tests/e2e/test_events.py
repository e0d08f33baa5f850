"""End-to-end tests of GET /api/v1/events (SPEC §14, docs/dashboard.md):
Server-Sent Events from apid through the gateway's admin listener, each
event type produced by a real change, Last-Event-ID replay, reset, the
token, a slow reader dropped, apid's death ending the stream.
"""

import json
import socket
import time

import requests

from stack import wait_until

DEMO = "demo.test"


class SSE:
    """A Server-Sent Events client on a raw socket: the head, then events
    parsed as a browser would (id, event, data lines; comments)."""

    def __init__(self, port, token=None, last_id=None, rcvbuf=None, path="/api/v1/events"):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        head = "GET %s HTTP/1.1\r\nHost: admin\r\nAccept: text/event-stream\r\n" % path
        if token:
            head += "Authorization: Bearer %s\r\n" % token
        if last_id:
            head += "Last-Event-ID: %s\r\n" % last_id
        self.sock.sendall((head + "\r\n").encode())
        self.buf = b""
        self.comments = []
        self.last_id = None
        raw = self._until(b"\r\n\r\n", 10)
        lines = raw.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def _until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %r within %.1f s" % (marker, timeout))
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the stream closed")
            self.buf += chunk
        i = self.buf.index(marker)
        out, self.buf = self.buf[:i], self.buf[i + len(marker) :]
        return out

    def body_text(self, timeout=5):
        """For a non-stream answer: its whole body (Content-Length)."""
        n = int(self.headers.get("content-length", "0"))
        deadline = time.monotonic() + timeout
        while len(self.buf) < n and time.monotonic() < deadline:
            self.buf += self.sock.recv(65536)
        return self.buf[:n].decode()

    def next(self, timeout=10):
        """The next event as (event, data, id); comments are collected."""
        while True:
            block = self._until(b"\n\n", timeout).decode()
            event, data, eid = "message", [], None
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("id:"):
                    eid = line[3:].strip()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line.startswith("retry:"):
                    pass
            if eid is not None:
                self.last_id = eid
            if data:
                return event, json.loads("\n".join(data)), eid

    def wait_for(self, pred, timeout=10, what=None):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %.1f s; saw %s" % (what or "event", timeout, seen[-8:]))
            ev = self.next(left)
            seen.append(ev[0])
            if pred(*ev):
                return ev

    def closed(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                continue
            if not chunk:
                return True
        return False

    def close(self):
        self.sock.close()


def test_stream_head_and_every_event_type(stack):
    ev = SSE(stack.admin_port)
    try:
        assert ev.status == 200
        assert ev.headers["content-type"] == "text/event-stream"
        assert ev.headers["cache-control"] == "no-cache"
        assert ev.headers["connection"] == "close"
        assert "content-length" not in ev.headers and "transfer-encoding" not in ev.headers
        assert ev.headers.get("x-request-id")
        # a new stream sees the fleet at once
        _, actors, aid = ev.wait_for(lambda e, d, i: e == "actors", 5, "actors")
        assert aid is None
        kinds = {x["kind"] for x in actors["instances"]}
        assert {"gateway", "router", "balancer", "healthd", "statsd", "apid"} <= kinds, kinds
        up = [x for x in actors["instances"] if x["status"] == "up"]
        assert all(x["rttMs"] >= 0 and x["instance"] and "region" in x for x in up)

        # config: a route PUT through the API
        stack.put_route("ev.test", [{"id": "b1", "hostname": "127.0.0.1", "port": stack.port_a}])
        _, cfg, cid = ev.wait_for(lambda e, d, i: e == "config" and d["key"] == "ev.test", 5, "config")
        assert cfg["what"] == "route" and cfg["by"] == "local" and cfg["summary"] == "PUT route ev.test"
        assert cfg["version"] >= 2 and cfg["at"].endswith("Z")
        assert cid and cid.endswith(":%d" % int(cid.rsplit(":", 1)[1]))

        # backend: marked dead (maintenance) and alive again
        r = stack.api("POST", "/api/v1/routes/%s/backends/backend-a/dead" % DEMO)
        assert r.status_code == 200, r.text
        _, b, bid = ev.wait_for(
            lambda e, d, i: e == "backend" and d["backend"] == "backend-a" and d["state"] == "maintenance",
            10,
            "backend maintenance",
        )
        assert b["route"] == DEMO and b["since"].endswith("Z") and bid
        r = stack.api("POST", "/api/v1/routes/%s/backends/backend-a/alive" % DEMO)
        assert r.status_code == 200, r.text
        ev.wait_for(
            lambda e, d, i: e == "backend" and d["backend"] == "backend-a" and d["state"] == "alive",
            10,
            "backend alive",
        )

        # stats: traffic moves the route's figures
        _, before, _ = ev.wait_for(lambda e, d, i: e == "stats", 5, "stats")
        n0 = sum(x["requests"] for x in before["routes"] if x["vHost"] == DEMO)
        for _ in range(20):
            assert stack.get("/", host=DEMO).status_code == 200

        def moved(e, d, i):
            if e != "stats":
                return False
            route = [x for x in d["routes"] if x["vHost"] == DEMO]
            return route and route[0]["requests"] >= n0 + 20

        _, after, _ = ev.wait_for(moved, 10, "stats after traffic")
        route = [x for x in after["routes"] if x["vHost"] == DEMO][0]
        assert route["rps"] > 0 and route["p99"] >= route["p50"] > 0, route
        assert set(route["errors"]) == {"4xx", "5xx"}
        assert set(after["chat"]) == {"sessions", "messages", "wsConnections"}
    finally:
        ev.close()


def test_last_event_id_replay_and_reset(stack):
    ev = SSE(stack.admin_port)
    stack.put_route("r1.test", [{"hostname": "127.0.0.1", "port": 9}])
    _, _, first = ev.wait_for(lambda e, d, i: e == "config" and d["key"] == "r1.test", 5, "config r1")
    ev.close()
    # missed while away
    for name in ("r2.test", "r3.test"):
        stack.put_route(name, [{"hostname": "127.0.0.1", "port": 9}])
    again = SSE(stack.admin_port, last_id=first)
    try:
        keys = []
        while len(keys) < 2:
            e, d, i = again.next(5)
            if e == "config":
                keys.append(d["key"])
                assert int(i.rsplit(":", 1)[1]) > int(first.rsplit(":", 1)[1])
        assert keys == ["r2.test", "r3.test"], keys
        # and live ones after the replay
        stack.put_route("r4.test", [{"hostname": "127.0.0.1", "port": 9}])
        again.wait_for(lambda e, d, i: e == "config" and d["key"] == "r4.test", 5, "live after replay")
    finally:
        again.close()
    # an id of another apid run (or garbage) cannot be replayed: reset
    for bad in ("apid-other.123:5", "nonsense", first.rsplit(":", 1)[0] + ":999999"):
        s = SSE(stack.admin_port, last_id=bad)
        try:
            e, d, i = s.next(5)
            assert (e, d, i) == ("reset", {}, None), (bad, e, d)
        finally:
            s.close()
    counters, _ = stack.pong("apid")
    # r3 may come live rather than replayed (apid hears config.changed after the PUT answers)
    assert counters["events.resets"] >= 3 and counters["events.replayed"] >= 1, counters


def test_token_and_methods(make_stack):
    token = "events-token"
    s = make_stack(gateway_env={"ADMIN_TOKEN": token})
    ev = SSE(s.admin_port)
    assert ev.status == 401, ev.status
    ev.close()
    ev = SSE(s.admin_port, token="wrong")
    assert ev.status == 401
    ev.close()
    ev = SSE(s.admin_port, token=token)
    assert ev.status == 200 and ev.headers["content-type"] == "text/event-stream"
    ev.close()
    r = requests.post(s.admin_url + "/api/v1/events", headers={"Authorization": "Bearer " + token}, timeout=5)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["Allow"] == "GET, HEAD"
    r = requests.head(s.admin_url + "/api/v1/events", headers={"Authorization": "Bearer " + token}, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"


def test_many_clients_one_push_per_gateway_and_close_counted(stack):
    clients = [SSE(stack.admin_port) for _ in range(5)]
    try:
        for c in clients:
            assert c.status == 200
        wait_until(lambda: stack.pong("apid")[0].get("events.streams", 0) == 5, 5, what="apid counts 5 streams")
        pushed0 = stack.pong("apid")[0]["events.pushed"]
        stack.put_route("many.test", [{"hostname": "127.0.0.1", "port": 9}])
        for c in clients:
            c.wait_for(lambda e, d, i: e == "config" and d["key"] == "many.test", 5, "config to each")
        # one gateway: one push for the config event, whatever the number of clients
        # (stats/actors pushes may fall in between, one per gateway too)
        pushed = stack.pong("apid")[0]["events.pushed"] - pushed0
        assert pushed <= 8, pushed
        for c in clients[:3]:
            c.close()
        wait_until(lambda: stack.pong("apid")[0].get("events.streams", 0) == 2, 5, what="closes told to apid")
        g, _ = stack.pong("gateway")
        assert g["events.streams"] == 2 and g["events.streams.total"] >= 5, g
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: stack.pong("apid")[0].get("events.streams", 0) == 0, 5, what="all closes told")


def test_slow_reader_dropped_and_counted(stack):
    slow = SSE(stack.admin_port, rcvbuf=4096)
    fast = SSE(stack.admin_port)
    try:
        assert slow.status == 200
        # long vHosts make long events; the slow client never reads
        session = requests.Session()
        n = 0
        deadline = time.monotonic() + 60
        while stack.pong("gateway")[0].get("events.dropped", 0) == 0:
            assert time.monotonic() < deadline, "the slow reader was never dropped"
            for _ in range(100):
                label = ("%05d" % n) + "x" * 58
                vhost = ".".join([label, "y" * 63, "z" * 63, "slow"])
                r = session.put(
                    stack.admin_url + "/api/v1/routes/" + vhost,
                    json={"vHost": vhost, "backends": [{"hostname": "127.0.0.1", "port": 9}]},
                    timeout=10,
                )
                assert r.status_code in (200, 201), r.text
                n += 1
        assert slow.closed(10), "the slow reader's connection was not closed"
        # the fast one kept everything, in order
        last = None
        seen = 0
        while True:
            e, d, i = fast.next(10)
            if e == "config" and d["key"].endswith(".slow"):
                num = int(d["key"][:5])
                assert last is None or num == last + 1, (last, num)
                last, seen = num, seen + 1
                if num == n - 1:
                    break
        assert seen == n
        wait_until(lambda: stack.pong("apid")[0].get("events.streams", 0) == 1, 5, what="the drop told to apid")
    finally:
        slow.close()
        fast.close()


def test_apid_killed_ends_the_stream_and_a_new_one_resets(stack):
    ev = SSE(stack.admin_port)
    stack.put_route("k1.test", [{"hostname": "127.0.0.1", "port": 9}])
    _, _, eid = ev.wait_for(lambda e, d, i: e == "config" and d["key"] == "k1.test", 5, "config")
    stack.kill("apid")
    assert ev.closed(10), "the stream outlived its apid"
    ev.close()
    stack.restart("apid")
    stack.wait_api()

    def reconnected():
        s = SSE(stack.admin_port, last_id=eid)
        ok = s.status == 200
        if ok:
            e, d, i = s.next(5)
            assert e == "reset", (e, d)
        s.close()
        return ok

    wait_until(reconnected, 10, what="a new stream from the new apid")


def test_drain_closes_streams(make_stack):
    s = make_stack()
    ev = SSE(s.admin_port)
    assert ev.status == 200
    ev.wait_for(lambda e, d, i: e == "actors", 5, "actors")
    s.terminate("gateway")
    assert ev.closed(5), "the stream held the drain"
    ev.close()


def test_dashboard_files_without_the_token(make_stack):
    token = "dash-token"
    s = make_stack(gateway_env={"ADMIN_TOKEN": token})
    r = requests.get(s.admin_url + "/dashboard", allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["Location"] == "/dashboard/", (r.status_code, r.headers)
    r = requests.get(s.admin_url + "/dashboard/", timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["X-Content-Type-Options"] == "nosniff"
    etag = r.headers["ETag"]
    assert etag.startswith('"') and "<html" in r.text.lower()
    r2 = requests.get(s.admin_url + "/dashboard/", headers={"If-None-Match": etag}, timeout=5)
    assert r2.status_code == 304 and r2.content == b"" and r2.headers["ETag"] == etag
    h = requests.head(s.admin_url + "/dashboard/", timeout=5)
    assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(r.content)
    r = requests.get(s.admin_url + "/dashboard/app.js", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    for bad in ("/dashboard/../README.md", "/dashboard/%2e%2e/x", "/dashboard/nope.js", "/dashboard/.hidden"):
        assert requests.get(s.admin_url + bad, timeout=5).status_code == 404, bad
    # the data stays behind the token
    assert requests.get(s.admin_url + "/api/v1/routes", timeout=5).status_code == 401


def test_heartbeat_comment_every_15_s(stack):
    """A quiet stream still carries a comment line every 15 s (proxies and
    browsers keep it open; the page counts 45 s of silence as a drop)."""
    ev = SSE(stack.admin_port)
    try:
        t0 = time.monotonic()
        while "heartbeat" not in ev.comments:
            assert time.monotonic() - t0 < 17.5, "no heartbeat comment within 17.5 s: %s" % ev.comments
            try:
                ev.next(max(0.1, 17.5 - (time.monotonic() - t0)))  # stats/actors events come meanwhile
            except TimeoutError:
                break
        took = time.monotonic() - t0
        assert "heartbeat" in ev.comments, ev.comments
        assert 10.0 < took < 17.5, took  # 15 s after the stream opened, not at once
    finally:
        ev.close()
