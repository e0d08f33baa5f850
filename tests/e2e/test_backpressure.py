"""End-to-end tests of per-route backpressure (SPEC §3, HAProxy semantics):
at most `reqActiveLength` requests of a route in flight upstream per gateway,
then up to `reqQueueLength` waiting in a FIFO for at most `queueTimeoutMs`,
then 503 `Service Unavailable - queue full` with `Retry-After`; a queued
request whose client goes away leaves the queue.

The backend's /slow?ms=N holds requests in flight; the gateway's pong
counters (queue.active, queue.waiting, ...) say when the places are taken,
so nothing here waits on a sleep.
"""

import collections
import threading
import time

from stack import RawConn, wait_until

FULL = "Service Unavailable - queue full"


def gw(stack):
    """The gateway's pong counters; `ping -v` leaves out the ones at 0."""
    return collections.defaultdict(int, stack.pong("gateway")[0])


def in_threads(stack, vhost, path, n):
    """Start n requests in threads; returns (threads, results list of (status, body, seconds))."""
    results = []
    lock = threading.Lock()

    def one():
        t0 = time.monotonic()
        r = stack.get(path, host=vhost, timeout=30)
        with lock:
            results.append((r.status_code, r.text, time.monotonic() - t0))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_active_then_queue_then_503(stack):
    vhost = "bp.test"
    stack.put_route(vhost, [stack.backend("a")], reqActiveLength=2, reqQueueLength=2, queueTimeoutMs=10000)
    stack.wait_served(vhost)
    before = gw(stack)
    busy, results = in_threads(stack, vhost, "/slow?ms=1500", 2)
    wait_until(lambda: gw(stack)["queue.active"] == 2, 10, what="2 in flight")
    queued, results2 = in_threads(stack, vhost, "/slow?ms=10", 2)
    wait_until(lambda: gw(stack)["queue.waiting"] == 2, 10, what="2 queued")

    # places and queue taken: refused at once
    t0 = time.monotonic()
    r = stack.get("/", host=vhost, timeout=10)
    assert (r.status_code, r.text) == (503, FULL), (r.status_code, r.text)
    assert r.headers.get("Retry-After") == "1", r.headers
    assert r.headers.get("X-Request-Id"), r.headers
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    assert time.monotonic() - t0 < 1.0

    # another route is not held back by this one
    assert stack.get("/", host=stack.DEMO_VHOST, timeout=10).status_code == 200

    for t in busy + queued:
        t.join(30)
    assert [s for s, _, _ in results] == [200, 200], results
    # the queued ones went when the slow ones finished, in order, and were served
    assert [s for s, _, _ in results2] == [200, 200], results2
    assert all(sec >= 1.2 for _, _, sec in results2), results2
    after = gw(stack)
    assert after["queue.queued"] - before["queue.queued"] == 2
    assert after["queue.refused"] - before["queue.refused"] == 1
    assert after["queue.active"] == 0 and after["queue.waiting"] == 0


def test_queue_timeout_is_503(stack):
    vhost = "bp-timeout.test"
    stack.put_route(vhost, [stack.backend("a")], reqActiveLength=1, reqQueueLength=5, queueTimeoutMs=300)
    stack.wait_served(vhost)
    before = gw(stack)
    busy, results = in_threads(stack, vhost, "/slow?ms=2500", 1)
    wait_until(lambda: gw(stack)["queue.active"] == 1, 10, what="1 in flight")
    t0 = time.monotonic()
    r = stack.get("/", host=vhost, timeout=10)
    waited = time.monotonic() - t0
    assert (r.status_code, r.text) == (503, FULL), (r.status_code, r.text)
    assert r.headers.get("Retry-After") == "1"
    assert 0.25 <= waited < 2.0, waited
    for t in busy:
        t.join(30)
    assert results[0][0] == 200
    after = gw(stack)
    assert after["queue.timeouts"] - before["queue.timeouts"] == 1


def test_client_gone_leaves_the_queue(stack):
    vhost = "bp-gone.test"
    stack.put_route(vhost, [stack.backend("a")], reqActiveLength=1, reqQueueLength=1, queueTimeoutMs=10000)
    stack.wait_served(vhost)
    before = gw(stack)
    busy, results = in_threads(stack, vhost, "/slow?ms=1500", 1)
    wait_until(lambda: gw(stack)["queue.active"] == 1, 10, what="1 in flight")
    c = RawConn(stack.http_port)
    c.send(b"GET / HTTP/1.1\r\nHost: " + vhost.encode() + b"\r\n\r\n")
    wait_until(lambda: gw(stack)["queue.waiting"] == 1, 10, what="1 queued")
    c.close()
    wait_until(lambda: gw(stack)["queue.waiting"] == 0, 10, what="the queue emptied")
    # its place in the queue is free again: the next request queues rather than 503
    queued, results2 = in_threads(stack, vhost, "/", 1)
    for t in busy + queued:
        t.join(30)
    assert results[0][0] == 200 and results2[0][0] == 200, (results, results2)
    after = gw(stack)
    assert after["queue.abandoned"] - before["queue.abandoned"] == 1
    assert after["queue.refused"] == before["queue.refused"]
