"""End-to-end tests of healthd (SPEC §6) on the whole stack: a backend killed
under traffic is declared dead by healthd (the warn line), balancers stop
offering it and the gateway drops the leases holding it, so requests go to the
other backend; with no backend left in the region the client sees 503
`Service Unavailable - VM not responding` (SPEC §3) rather than a 502 from
trying dead backends; a restarted backend comes back within a bounded time.
"""

import json
import time

import requests

from stack import BACKEND_A, BACKEND_B, wait_until

PAIR = "pair.test"
HEALTH_ENV = {
    "HEALTHD_INTERVAL": "200ms",
    "HEALTHD_TIMEOUT": "300ms",
    "HEALTHD_RECOVERY_INTERVAL": "300ms",
}


def log_lines(stack, name):
    out = []
    for line in stack.logs(name).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def has_line(stack, name, msg, level=None, **fields):
    for entry in log_lines(stack, name):
        if entry.get("msg") != msg or (level and entry.get("level") != level):
            continue
        if all(entry.get(k) == v for k, v in fields.items()):
            return True
    return False


def served_by(stack, n=6):
    """The bodies of n requests to pair.test (status, text)."""
    return [(r.status_code, r.text) for r in (stack.get("/", host=PAIR, timeout=5) for _ in range(n))]


def test_backend_killed_under_traffic_then_back(make_stack, timings):
    stack = make_stack(actor_env=HEALTH_ENV)
    route = stack.put_route(PAIR, [stack.backend("a"), stack.backend("b", region="1")])
    route_id = route.get("id", PAIR)
    stack.wait_served(PAIR)
    hello_a = "Hello from Server A (Region 1)"
    hello_b = "Hello from Server B (Region 2)"
    wait_until(lambda: {t for _, t in served_by(stack)} == {hello_a, hello_b}, 10, what="both backends serve")

    # B is killed under traffic: every request still gets an answer from A
    # (the gateway retries), healthd declares B dead, balancers drop it
    t0 = time.monotonic()
    stack.kill("backend-b")
    seen = []
    dead_at = None
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        seen.extend(served_by(stack, 1))
        if dead_at is None and has_line(stack, "healthd", "backend dead", level="warn", backend="backend-b"):
            dead_at = time.monotonic()
    assert all(s == (200, hello_a) for s in seen), seen
    wait_until(
        lambda: has_line(stack, "healthd", "backend dead", level="warn", backend="backend-b", reason="refused"),
        3,
        what="healthd's warn line for backend-b",
    )
    dead_at = dead_at or time.monotonic()
    timings.record("backend killed -> healthd dead (warn line seen)", dead_at - t0)
    assert dead_at - t0 < 1.5  # refused: dead after 1 probe (interval 200 ms) or 1 passive failure
    wait_until(
        lambda: has_line(stack, "balancer", "backend down", level="warn", backend="backend-b"),
        2,
        what="balancer applied it (warn)",
    )
    timings.record("backend killed -> balancer down", time.monotonic() - t0)
    assert served_by(stack, 10) == [(200, hello_a)] * 10

    # the API shows healthd's verdict as the backend's runtime state (SPEC §4)
    def runtime(backend_id):
        r = stack.api("GET", "/api/v1/routes/" + PAIR)
        assert r.status_code == 200, r.text
        return [b for b in r.json()["backends"] if b["id"] == backend_id][0]

    b = wait_until(lambda: (lambda b: b if b["isDead"] else None)(runtime("backend-b")), 2, what="isDead in GET")
    assert b["failureCount"] >= 1 and isinstance(b["deadSince"], int), b
    assert b["deadSince"] >= int((time.time() - 10) * 1000), b
    assert runtime("backend-a")["isDead"] is False

    # A too: nobody left in region 1 -> 503 VM not responding (not a 502 after
    # trying dead backends)
    t1 = time.monotonic()
    stack.kill("backend-a")
    wait_until(
        lambda: stack.get("/", host=PAIR, timeout=5).text == "Service Unavailable - VM not responding",
        3,
        what="503 VM not responding",
    )
    timings.record("last backend killed -> 503", time.monotonic() - t1)
    r = stack.get("/", host=PAIR, timeout=5)
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.text == "Service Unavailable - VM not responding"
    assert has_line(stack, "healthd", "backend dead", level="warn", backend="backend-a")
    # the gateway held leases with A: dropped at once, said at warn
    wait_until(
        lambda: has_line(stack, "gateway", "backend down: leases dropped", level="warn", backend="backend-a"),
        2,
        what="the gateway's warn line for its leases",
    )

    # B comes back: alive after 2 recovery probes, served again within seconds
    t2 = time.monotonic()
    stack.start_backend("backend-b", stack.port_b, BACKEND_B)
    stack.wait_backend(stack.port_b)
    wait_until(lambda: stack.get("/", host=PAIR, timeout=5).text == hello_b, 5, what="backend-b serves again")
    timings.record("backend restarted -> served", time.monotonic() - t2)
    assert has_line(stack, "healthd", "backend alive", level="warn", backend="backend-b")
    assert served_by(stack, 6) == [(200, hello_b)] * 6
    b = wait_until(lambda: (lambda b: b if not b["isDead"] else None)(runtime("backend-b")), 2, what="alive in GET")
    assert b["deadSince"] is None and b["failureCount"] == 0, b
    # and A as well
    stack.start_backend("backend-a", stack.port_a, BACKEND_A)
    stack.wait_backend(stack.port_a)
    wait_until(lambda: {t for _, t in served_by(stack)} == {hello_a, hello_b}, 5, what="both serve again")


def test_healthd_restart_no_flap(make_stack):
    """A new healthd rebuilds its verdicts without publishing a live backend
    down or a dead one up: traffic is unaffected across the restart."""
    stack = make_stack(actor_env=HEALTH_ENV)
    stack.put_route(PAIR, [stack.backend("a"), stack.backend("b", region="1")])
    stack.wait_served(PAIR)
    stack.kill("backend-b")
    wait_until(lambda: has_line(stack, "healthd", "backend dead", backend="backend-b"), 3, what="b dead")
    assert stack.terminate("healthd") == 0
    stack.restart("healthd")
    wait_until(lambda: has_line(stack, "healthd", "backends to probe"), 5, what="new healthd configured")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        r = stack.get("/", host=PAIR, timeout=5)
        assert (r.status_code, r.text) == (200, "Hello from Server A (Region 1)")
    new = log_lines(stack, "healthd")  # the new instance's lines only
    assert any(e.get("msg") == "backend dead" and e.get("backend") == "backend-b" for e in new)
    alive_b = [e for e in new if e.get("msg") == "backend alive" and e.get("backend") == "backend-b"]
    dead_a = [e for e in new if e.get("msg") == "backend dead" and e.get("backend") == "backend-a"]
    assert alive_b == [] and dead_a == [], (alive_b, dead_a)
    assert requests.get(stack.admin_url + "/ready", timeout=5).status_code == 200
