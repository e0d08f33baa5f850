"""Stale-while-revalidate of the gateway's leases (issue 14, item 1).

With router and/or balancer stopped (SIGSTOP: connected but silent, the
worst case for a gateway, which cannot tell them from slow ones), a known
route must cost its clients nothing: every request 200, and none of them
waits for the decision timeout when its lease's TTL runs out. The lease TTL
is short (200 ms) so that the 2 s of load cross it many times, and the
decision timeout long (1 s) so that a request that waited for an ask would
stand out. The gateway asks at most once per key while an ask runs and
once per retry pause after a failed one (never per request), and marks the
requests it served after a failed ask as stale (access line `stale`, pong
requests.stale). After SIGCONT requests are fresh again and a route change
is served within a few TTLs.

With GATEWAY_LEASE_TTL=0 every request asks and waits for its answer; so
the one request whose ask finds the deciders gone waits the decision
timeout, and then no other does (docs/request-path.md).

Latencies are of the sanitizer build and recorded; the bound asserted is
well above them and well below the decision timeout.
"""

import json
import os
import signal
import time
import uuid

import pytest
import requests

from stack import pause, wait_until

DEMO = "demo.test"
HELLO_A = "Hello from Server A (Region 1)"
HELLO_B = "Hello from Server B (Region 2)"
TTL_S = 0.2
TIMEOUT_S = 1.0
GATEWAY_ENV = {"GATEWAY_LEASE_TTL": "200ms", "GATEWAY_DECISION_TIMEOUT": "1s"}
LOAD_S = 2.0  # ten TTLs
BOUND_S = 0.150  # every request under this (a waited ask would take TIMEOUT_S)
MAX_ASKS = 5  # decides sent during the load (one per key per timeout + pause)
VICTIMS = [("router", "balancer"), ("router",), ("balancer",)]
VICTIM_IDS = ["+".join(v) for v in VICTIMS]


def counters(stack):
    return stack.pong("gateway")[0]


def access_stale(stack, rids):
    """{rid: the access line's stale flag} for those of rids already logged."""
    want = set(rids)
    out = {}
    for line in stack.logs("gateway").splitlines():
        if '"access"' not in line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg") == "access" and e.get("request_id") in want:
            out[e["request_id"]] = e.get("stale")
    return out


class Load:
    """Paced requests for demo.test on one keep-alive connection for LOAD_S
    while the victims are SIGSTOPped (SIGCONTed at the end, whatever
    happens). Each request has its own X-Request-Id (to find its access
    line); its latency and when it was sent are kept."""

    def __init__(self, stack, victims):
        self.stack = stack
        self.name = "+".join(victims)
        self.pids = [stack.procs[v].popen.pid for v in victims]
        self.tag = "swr-" + uuid.uuid4().hex[:8]
        self.rids = []
        self.latencies = []
        self.sent_at = []  # s after the stop
        self.failures = []
        self.t_cont = None

    def run(self):
        stopped = []
        try:
            for pid in self.pids:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            t_stop = time.monotonic()
            with requests.Session() as sess:
                while time.monotonic() - t_stop < LOAD_S:
                    rid = "%s-%d" % (self.tag, len(self.rids))
                    self.rids.append(rid)
                    self.sent_at.append(time.monotonic() - t_stop)
                    t0 = time.perf_counter()
                    try:
                        r = self.stack.get("/", host=DEMO, session=sess, timeout=5, headers={"X-Request-Id": rid})
                        good = r.status_code == 200 and r.text == HELLO_A
                        what = (r.status_code, r.text[:80])
                    except requests.RequestException as exc:
                        good, what = False, repr(exc)
                    self.latencies.append(time.perf_counter() - t0)
                    if not good:
                        self.failures.append((len(self.rids) - 1, round(self.sent_at[-1], 3), what))
                    pause(0.01)  # pacing of the load, not synchronisation
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            self.t_cont = time.monotonic()
        return self

    def record(self, timings, label=""):
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        what = "%s SIGSTOPped%s" % (self.name, label)
        timings.record("%s: p50 of %d requests" % (what, len(ordered)), p50)
        timings.record("%s: p99" % what, p99)
        timings.record("%s: max" % what, ordered[-1])

    def check_served(self):
        assert self.failures == [], "%d of %d requests failed with %s stopped: %r" % (
            len(self.failures),
            len(self.rids),
            self.name,
            self.failures[:10],
        )

    def slow(self):
        """(index, sent at, latency) of the requests at or over BOUND_S."""
        return [(i, round(self.sent_at[i], 3), round(d, 3)) for i, d in enumerate(self.latencies) if d >= BOUND_S]

    def stale_flags(self):
        logged = wait_until(
            lambda: (lambda m: m if len(m) == len(self.rids) else None)(access_stale(self.stack, self.rids)),
            5.0,
            what="the access lines of the load",
        )
        return [logged[r] for r in self.rids]


def fresh_again(stack, tag):
    """Requests until one is served fresh (its access line not stale)."""
    n = [0]

    def one():
        rid = "%s-back-%d" % (tag, n[0])
        n[0] += 1
        r = stack.get("/", host=DEMO, timeout=5, headers={"X-Request-Id": rid})
        assert r.status_code == 200 and r.text == HELLO_A, (r.status_code, r.text)
        flags = wait_until(lambda: access_stale(stack, [rid]), 5.0, what="the access line of " + rid)
        return flags[rid] is False

    wait_until(one, 10.0, interval=0.02, what="requests fresh again after SIGCONT")


@pytest.mark.parametrize("victims", VICTIMS, ids=VICTIM_IDS)
def test_stopped_deciders_cost_known_routes_nothing(make_stack, timings, victims):
    s = make_stack(gateway_env=GATEWAY_ENV)
    # the lease of demo.test is cached (and fresh) before the fault
    with requests.Session() as sess:
        for _ in range(5):
            r = s.get("/", host=DEMO, session=sess, timeout=5)
            assert r.status_code == 200 and r.text == HELLO_A, (r.status_code, r.text)
    before = counters(s)
    load = Load(s, victims).run()
    load.record(timings)
    load.check_served()
    assert load.slow() == [], "requests at or over %.3f s with %s stopped (decision timeout %.1f s): %r" % (
        BOUND_S,
        load.name,
        TIMEOUT_S,
        load.slow(),
    )
    assert len(load.rids) >= 50, "too few requests in %.1f s: %d" % (LOAD_S, len(load.rids))

    # one ask at a time per key, and none per request while the deciders are away
    after = counters(s)
    asks = after.get("leases.asks", 0) - before.get("leases.asks", 0)
    stale = after.get("requests.stale", 0) - before.get("requests.stale", 0)
    print("%s stopped: %d requests, %d asks, %d served stale" % (load.name, len(load.rids), asks, stale))
    assert 1 <= asks <= MAX_ASKS, "%d decides for %d requests with %s stopped" % (asks, len(load.rids), load.name)
    # the requests served after a failed ask are the stale ones (not those
    # served while the first refresh was still running), and a failed
    # refresh keeps them stale until one is answered: in the access log,
    # fresh ones, then stale ones only
    flags = load.stale_flags()
    assert sum(flags) == stale and 0 < stale < len(flags), (sum(flags), stale, len(flags))
    first = flags.index(True)
    assert all(flags[first:]), "a request served fresh after a failed ask: %r" % flags
    timings.record("%s SIGSTOPped -> first request marked stale" % load.name, load.sent_at[first])

    # back, without a change: the next refresh is answered and requests are
    # fresh again within the retry pause (the decision timeout) and a TTL
    fresh_again(s, load.tag)
    back = time.monotonic() - load.t_cont
    timings.record("%s SIGCONTed -> requests fresh again" % load.name, back)
    assert back < 2 * TIMEOUT_S + 2 * TTL_S + 0.5, "still stale %.3f s after SIGCONT" % back

    # and a route change is served within a few TTLs
    s.put_route(DEMO, [s.backend("b")])
    t0 = time.monotonic()
    wait_until(lambda: s.get("/", host=DEMO, timeout=5).text == HELLO_B, 10.0, what="the change served")
    elapsed = time.monotonic() - t0
    timings.record("%s resumed: PUT route -> served" % load.name, elapsed)
    assert elapsed < 5 * TTL_S, "route change served %.3f s after its PUT once %s resumed" % (elapsed, load.name)
    with requests.Session() as sess:
        for _ in range(20):
            r = s.get("/", host=DEMO, session=sess, timeout=5)
            assert r.status_code == 200 and r.text == HELLO_B, (r.status_code, r.text)


@pytest.mark.parametrize("victims", VICTIMS, ids=VICTIM_IDS)
def test_ttl0_waits_once_then_serves_stale_at_once(make_stack, timings, victims):
    s = make_stack(gateway_env={"GATEWAY_LEASE_TTL": "0", "GATEWAY_DECISION_TIMEOUT": "1s"})
    r = s.get("/", host=DEMO, timeout=5)
    assert r.status_code == 200 and r.text == HELLO_A, (r.status_code, r.text)
    before = counters(s)
    load = Load(s, victims).run()
    load.record(timings, " (TTL 0)")
    load.check_served()
    # the first request (give or take the signal's delivery) asks and waits
    # for the ask to fail (the timeout, or the router's 150 ms pick deadline
    # with only the balancer stopped); then the deciders are known away and
    # no request waits again
    slow = load.slow()
    assert len(slow) <= 1 and all(i < 3 and d < TIMEOUT_S + 0.5 for i, _, d in slow), slow
    if "router" in victims:
        assert len(slow) == 1 and slow[0][2] >= TIMEOUT_S - 0.05, slow
    after = counters(s)
    asks = after.get("leases.asks", 0) - before.get("leases.asks", 0)
    assert 1 <= asks <= MAX_ASKS, "%d decides for %d requests with %s stopped" % (asks, len(load.rids), load.name)
    flags = load.stale_flags()
    assert all(flags), "TTL 0: a request served fresh with %s stopped: %r" % (load.name, flags)
    # back: asking on every request again
    fresh_again(s, load.tag)
    timings.record("%s SIGCONTed -> requests fresh again (TTL 0)" % load.name, time.monotonic() - load.t_cont)
    s.put_route(DEMO, [s.backend("b")])
    r = s.get("/", host=DEMO, timeout=5)
    assert r.status_code == 200 and r.text == HELLO_B, (r.status_code, r.text)
