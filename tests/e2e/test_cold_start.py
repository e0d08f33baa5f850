"""Cold start, the way a new user meets the product.

Every actor starts at once (no waiting between them, in two orders), the test
polls /ready until 200, creates a route, and at once sends requests: each of
them must be served. Before the discovery and readiness fixes, requests in
about the first second after /ready got 503 (the router had not yet found the
balancer). The time from the last actor's start to the first served request
is recorded (release-build figures are in the issue's closing note).
"""

import time

import pytest
import requests

from stack import ACTORS, Stack, pause

ORDERS = {
    "gateway-last": ACTORS,
    "gateway-first": ("gateway",) + tuple(a for a in ACTORS if a != "gateway"),
    "balancer-last": tuple(a for a in ACTORS if a != "balancer") + ("balancer",),
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_first_requests_after_ready_are_served(order, timings):
    st = Stack(demo_route=False, actors=ORDERS[order])
    try:
        st.start_backend("backend-a", st.port_a, {"name": "Server A", "region": "1", "service": "a"})
        st.wait_backend(st.port_a)
        for kind in st.actors:
            st.start_actor(kind)
        t0 = time.monotonic()
        # /ready, polled tightly: the first 200 is when a user would go
        deadline = t0 + 30
        while True:
            st._assert_running()
            try:
                if requests.get(st.admin_url + "/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "/ready never answered 200"
            pause(0.005)  # between two polls of /ready
        t_ready = time.monotonic()
        # at once: a route, then requests, each on a new connection
        st.put_route("cold.test", [st.backend("a")])
        statuses = [st.get("/", host="cold.test", timeout=5).status_code]
        t_first = time.monotonic()
        statuses += [st.get("/", host="cold.test", timeout=5).status_code for _ in range(49)]
        assert statuses == [200] * 50, "statuses after /ready and PUT: %s" % statuses
        timings.record("last actor start -> /ready 200 (%s)" % order, t_ready - t0)
        timings.record("last actor start -> first request served (%s)" % order, t_first - t0)
    finally:
        problems = st.stop()
    assert not problems, "\n".join(problems)
