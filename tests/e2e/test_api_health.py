"""End-to-end tests of the deep health endpoints (SPEC §10, seed 004's three
states), through the gateway's admin listener, with the real actors:

- a whole stack is healthy: every instance listed with its round trip;
- an actor that stops answering (SIGSTOP) or dies makes the answer degraded
  (200) — a balancer or router gone makes it unhealthy (503) — and it comes
  back when the actor does;
- PostgreSQL stopped under a router that uses it: degraded, db-pool says
  down; back when it is back;
- the sub-endpoints (live, ready, system, sockets, db-pool, comprehensive,
  metrics) answer their shapes; unknown ones 404, other methods 405.
"""

import os
import signal

import pytest
import requests

from pg import PgTmp
from stack import wait_until

KINDS = ("gateway", "router", "balancer", "apid", "healthd", "statsd", "chatd")


def health(stack, path="/api/health"):
    r = stack.api("GET", path, timeout=10)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    return r


def test_whole_stack_is_healthy(stack):
    r = health(stack)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "healthy", body
    assert body["reasons"] == []
    assert body["region"] == "1"
    kinds = {i["kind"] for i in body["instances"]}
    assert kinds == set(KINDS), kinds
    for inst in body["instances"]:
        assert inst["status"] == "up", inst
        assert inst["rttMs"] >= 0 and inst["rttMs"] < 1000, inst
        assert inst["instance"] and inst["pid"] > 0, inst
    for kind in KINDS:
        assert body["actors"][kind]["up"] == 1, body["actors"]
    assert body["services"] == {"postgresql": "not_configured", "redis": {"status": "not_configured"}}
    assert body["responseTimeMs"] < 1000


def test_stopped_actor_degrades_then_recovers(stack):
    pid = stack.procs["statsd"].popen.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        r = health(stack)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "degraded", body
        assert any("statsd" in why for why in body["reasons"]), body["reasons"]
        down = [i for i in body["instances"] if i["kind"] == "statsd"]
        assert down and down[0]["status"] == "down", down
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: health(stack).json()["status"] == "healthy", 5.0, what="healthy again")


def test_no_balancer_is_unhealthy(stack):
    pid = stack.procs["balancer"].popen.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        r = health(stack)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] == "unhealthy", body
        assert "no balancer answers" in body["reasons"], body["reasons"]
        r = health(stack, "/api/health/ready")
        assert r.status_code == 503 and r.json()["balancer"] is False, r.text
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: health(stack).status_code == 200, 5.0, what="200 again")


def test_dead_actor_is_noticed(stack):
    stack.kill("healthd")
    # found but silent until discovery forgets it, then "no healthd is running"
    r = health(stack)
    assert r.status_code == 200
    assert r.json()["status"] == "degraded", r.text
    wait_until(lambda: "no healthd is running" in health(stack).json()["reasons"], 5.0, what="healthd forgotten")
    stack.restart("healthd")
    wait_until(lambda: health(stack).json()["status"] == "healthy", 5.0, what="healthy with a new healthd")


def test_sub_endpoints(stack):
    r = health(stack, "/api/health/live")
    assert r.status_code == 200 and r.json()["status"] == "alive"
    r = health(stack, "/api/health/ready")
    assert r.status_code == 200 and r.json() == {"status": "ready", "router": True, "balancer": True}
    sysinfo = health(stack, "/api/health/system").json()
    assert sysinfo["cpus"] >= 1 and sysinfo["memory"]["totalBytes"] > 0 and len(sysinfo["loadAverage"]) == 3
    sockets = health(stack, "/api/health/sockets").json()
    assert len(sockets["gateways"]) == 1 and len(sockets["chatd"]) == 1, sockets
    db = health(stack, "/api/health/db-pool").json()
    assert db["status"] == "not_configured"
    assert db["routers"][0]["store"] == "file" and db["routers"][0]["loaded"] is True, db
    full = health(stack, "/api/health/comprehensive").json()
    assert full["status"] == "healthy"
    assert {"system", "sockets", "dbPool", "instances"} <= set(full), full.keys()
    assert all("counters" in i for i in full["instances"] if i["kind"] != "apid")
    assert health(stack, "/api/health/").json()["status"] == "healthy"  # one trailing slash
    r = stack.api("GET", "/api/health/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = stack.api("POST", "/api/health")
    assert r.status_code == 405


def test_metrics_alias_is_statsds_metrics(make_stack):
    s = make_stack(gateway_env={"GATEWAY_ADMIN_TIMEOUT": "2s"})
    a = requests.get(s.admin_url + "/metrics", timeout=10)
    b = s.api("GET", "/api/health/metrics")
    assert a.status_code == b.status_code, (a.status_code, b.status_code, b.text)
    if a.status_code == 200:
        assert a.headers["Content-Type"] == b.headers["Content-Type"]
        assert "# TYPE" in b.text


@pytest.fixture(scope="module")
def cluster():
    c = PgTmp()
    c.start()
    yield c
    c.stop()


def test_postgres_loss_is_degraded(make_stack, cluster):
    s = make_stack(actor_env={"DATABASE_URL": cluster.url})
    body = health(s).json()
    assert body["status"] == "healthy", body
    assert body["services"]["postgresql"] == "up"
    cluster.pause()
    try:
        def degraded():
            b = health(s).json()
            return b["status"] == "degraded" and any("PostgreSQL" in why for why in b["reasons"]) and b
        body = wait_until(degraded, 5.0, what="degraded with PostgreSQL down")
        assert body["services"]["postgresql"] == "down"
        assert health(s).status_code == 200
        db = health(s, "/api/health/db-pool").json()
        assert db["status"] == "down" and db["routers"][0]["connected"] is False, db
    finally:
        cluster.resume()
    wait_until(lambda: health(s).json()["status"] == "healthy", 10.0, what="healthy again")
