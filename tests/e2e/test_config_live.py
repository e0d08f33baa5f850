"""End-to-end tests of what a configuration change does to live traffic and
what a crash does to the file store (issue 7, item 2 and 3):

- a keep-alive client connection of a route that a change does not touch
  stays open and keeps serving across changes of other routes, regions and
  certificates (no reload, no reconnect), and the change is live on the
  public port as soon as the 2xx is back;
- the router SIGKILLed at arbitrary moments while changes stream in: it
  always starts again from its state file (never corrupt), and every change
  that was answered 2xx is there (durable before the answer).
"""

import random
import threading

import requests

from stack import RawConn, wait_until

DEMO = "demo.test"


def test_unaffected_keep_alive_connection_survives_changes(stack, timings):
    with RawConn(stack.http_port) as c:
        c.send(b"GET /echo?i=0 HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        assert c.read_response().status == 200
        for i in range(5):
            r = stack.api("PUT", "/api/v1/routes/other%d.test" % i, {"backends": [stack.backend("b")]})
            assert r.status_code == 201, r.text
            r = stack.api("PUT", "/api/v1/regions/r%d" % i, {"publicAddress": "10.0.0.%d" % (i + 1)})
            assert r.status_code == 201, r.text
            # the new route is live on the public port at once (polled, measured)
            host = "other%d.test" % i
            wait_until(lambda: stack.get("/", host=host).status_code == 200, 1.0, interval=0.005, what=host)
            assert not c.closed(timeout=0.01), "a change closed an unaffected keep-alive connection"
            c.send(b"GET /echo?i=%d HTTP/1.1\r\nHost: demo.test\r\n\r\n" % (i + 1))
            resp = c.read_response()
            assert resp.status == 200, resp
            assert (resp.header("connection") or "").lower() != "close"
        r = stack.api("DELETE", "/api/v1/routes/other0.test")
        assert r.status_code == 204
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        assert c.read_response().status == 200
        assert not c.closed(timeout=0.1)


def test_router_sigkilled_during_changes_keeps_every_answered_change(stack):
    rng = random.Random(7)  # deterministic moments
    answered = {}  # vhost -> True (2xx) for changes that were answered
    writers = []
    for round_ in range(4):
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                vhost = "k%d-%d.test" % (round_, i)
                try:
                    r = stack.api("PUT", "/api/v1/routes/" + vhost, {"backends": [stack.backend("a")]}, timeout=5)
                except requests.RequestException:
                    return
                if r.status_code in (200, 201):
                    answered[vhost] = True
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        writers.append(t)
        # let some changes through, then kill at an arbitrary moment
        target = len(answered) + rng.randint(1, 6)
        wait_until(lambda: len(answered) >= target, 10.0, interval=0.001, what="changes answered")
        stack.kill("router")
        stop.set()  # its last request may wait for apid's timeout: not joined here
        stack.restart("router")
        stack.wait_ready()
        r = stack.api("GET", "/api/v1/routes")
        assert r.status_code == 200, r.text
        have = {rt["vHost"] for rt in r.json()}
        missing = [v for v in list(answered) if v not in have]
        assert missing == [], "answered 2xx but lost after SIGKILL: %s" % missing
    for t in writers:
        t.join(10)
    have = {rt["vHost"] for rt in stack.api("GET", "/api/v1/routes").json()}
    assert [v for v in answered if v not in have] == []
    assert len(answered) >= 4
