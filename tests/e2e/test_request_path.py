"""End-to-end tests of the issue "The request path": routing by Host and
region, live route changes, proxying (keep-alive, pipelining, chunked bodies,
forwarded headers, correlation ids, hop-by-hop headers), strict parsing,
timeouts, failed backends, and crash isolation of router and balancer.

Every test starts its own stack (conftest.py) and talks to it only through
its public ports: requests for ordinary HTTP, raw sockets where the bytes on
the wire matter.
"""

import hashlib
import json
import os
import re
import select
import threading
import time

import pytest
import requests

from stack import RawConn, closed_port, pause, wait_until

HELLO_A = "Hello from Server A (Region 1)"
HELLO_B = "Hello from Server B (Region 2)"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DEMO = "demo.test"


def echo(stack, path="/echo", host=DEMO, headers=None, **kw):
    r = stack.get(path, host=host, headers=headers, **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    return r, r.json()


def raw_request(stack, data, timeout=10.0):
    """Send bytes on a fresh connection; return (response, closed-afterwards)."""
    with RawConn(stack.http_port, timeout=timeout) as c:
        c.send(data)
        resp = c.read_response()
        return resp, c.closed(timeout=3.0)


def first_answer(stack, host, unless=(404,), timeout=2.0, headers=None, what=None):
    """Poll GET / on host until the status is not in `unless`; return that response.

    (A requests.Response is falsy for 4xx/5xx, so it is boxed for wait_until.)
    """

    def poll():
        r = stack.get("/", host=host, headers=headers, timeout=2)
        return None if r.status_code in unless else [r]

    return wait_until(poll, timeout, what=what or "%s answering other than %r" % (host, unless))[0]


# ====================================================================== regions


def test_region_header_1_is_served_by_a(stack):
    for _ in range(5):
        r = stack.get("/", host=DEMO, headers={"x-region": "1"})
        assert r.status_code == 200
        assert r.text == HELLO_A


def test_region_header_2_is_served_by_b(stack):
    for _ in range(5):
        r = stack.get("/", host=DEMO, headers={"x-region": "2"})
        assert r.status_code == 200
        assert r.text == HELLO_B


def test_region_query_parameter_2_is_served_by_b(stack):
    for _ in range(5):
        r = stack.get("/?region=2", host=DEMO)
        assert r.status_code == 200
        assert r.text == HELLO_B


def test_region_header_wins_over_query_parameter(stack):
    r = stack.get("/?region=2", host=DEMO, headers={"x-region": "1"})
    assert r.status_code == 200
    assert r.text == HELLO_A


def test_no_region_uses_the_gateways_region(stack):
    for _ in range(5):
        r = stack.get("/", host=DEMO)
        assert r.status_code == 200
        assert r.text == HELLO_A


def test_gateway_in_region_2_defaults_to_b(make_stack):
    s = make_stack(gateway_env={"REGION": "2"})
    for _ in range(3):
        r = s.get("/", host=DEMO)
        assert r.status_code == 200
        assert r.text == HELLO_B


def test_host_match_ignores_port_and_case(stack):
    r = stack.get("/", host="DEMO.Test:%d" % stack.http_port)
    assert r.status_code == 200
    assert r.text == HELLO_A


def test_unknown_host_is_404_service_not_found(stack):
    r = stack.get("/", host="nobody.test")
    assert r.status_code == 404
    assert r.text == "Service Not Found"
    assert r.headers.get("X-Request-Id"), r.headers
    assert UUID4.match(r.headers["X-Request-Id"])


def test_region_without_backends_is_served_by_regions_that_have_them(stack):
    # SPEC §3: no backends in the requested region at all -> the regions that do
    # have them serve it (docs/request-path.md: the gateway's own region first).
    for _ in range(5):
        r = stack.get("/", host=DEMO, headers={"x-region": "3"})
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.text in (HELLO_A, HELLO_B)
        assert r.text == HELLO_A  # gateway's own region (1) has a healthy backend


def test_region_without_backends_falls_back_to_another_region(stack):
    stack.put_route("onlyb.test", [stack.backend("b")])
    stack.wait_served("onlyb.test")
    for region in ("1", "3"):
        r = stack.get("/", host="onlyb.test", headers={"x-region": region})
        assert r.status_code == 200, (region, r.status_code, r.text)
        assert r.text == HELLO_B


def test_route_without_backends_is_503(stack):
    stack.put_route("empty.test", [])
    r = first_answer(stack, "empty.test")
    assert r.status_code == 503
    assert r.text == "Service Unavailable - VM not responding"
    assert r.headers.get("X-Request-Id")


def test_wildcard_route_sends_tenant(stack):
    stack.put_route("*.wild.test", [stack.backend("a")])
    stack.wait_served("acme.wild.test")
    r, body = echo(stack, host="acme.wild.test")
    assert body["headers"].get("x-tenant-id") == "acme"
    assert stack.get("/", host="wild.test").status_code == 404


# ====================================================================== live route changes


def test_put_route_is_live_within_1s(stack, timings):
    assert stack.get("/", host="new.test").status_code == 404
    r = stack.api("PUT", "/api/v1/routes/new.test", {"vHost": "new.test", "backends": [stack.backend("a")]})
    t0 = time.monotonic()
    assert r.status_code == 201, r.text
    wait_until(lambda: stack.get("/", host="new.test", timeout=2).text == HELLO_A, 5.0, what="new.test served")
    elapsed = time.monotonic() - t0
    timings.record("PUT route -> served", elapsed)
    assert elapsed < 1.0, "new route served only after %.3f s" % elapsed


def test_delete_route_is_404_within_1s(stack, timings):
    assert stack.get("/", host=DEMO).status_code == 200
    r = stack.api("DELETE", "/api/v1/routes/" + DEMO)
    t0 = time.monotonic()
    assert r.status_code == 204, r.text
    wait_until(lambda: stack.get("/", host=DEMO, timeout=2).status_code == 404, 5.0, what="demo.test 404")
    elapsed = time.monotonic() - t0
    timings.record("DELETE route -> 404", elapsed)
    assert elapsed < 1.0, "deleted route still served for %.3f s" % elapsed
    assert stack.api("GET", "/api/v1/routes/" + DEMO).status_code == 404
    assert stack.api("DELETE", "/api/v1/routes/" + DEMO).status_code == 404


def test_replaced_route_is_live_within_1s(stack, timings):
    # demo.test region 1 -> A; replace A by B in region 1.
    assert stack.get("/", host=DEMO).text == HELLO_A
    r = stack.api("PUT", "/api/v1/routes/" + DEMO, {"vHost": DEMO, "backends": [stack.backend("b", region="1")]})
    t0 = time.monotonic()
    assert r.status_code == 200, r.text
    wait_until(lambda: stack.get("/", host=DEMO, timeout=2).text == HELLO_B, 5.0, what="demo.test -> B")
    elapsed = time.monotonic() - t0
    timings.record("PUT replace route -> served by new backend", elapsed)
    assert elapsed < 1.0


def test_added_backend_is_live_within_1s(stack, timings):
    stack.put_route("grow.test", [stack.backend("a")])
    stack.wait_served("grow.test")
    assert stack.get("/", host="grow.test", headers={"x-region": "2"}).text == HELLO_A  # no region-2 backend yet
    r = stack.api("POST", "/api/v1/routes/grow.test/backends", stack.backend("b"))
    t0 = time.monotonic()
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "backend-b"
    wait_until(
        lambda: stack.get("/", host="grow.test", headers={"x-region": "2"}, timeout=2).text == HELLO_B,
        5.0,
        what="grow.test region 2 -> B",
    )
    elapsed = time.monotonic() - t0
    timings.record("POST backend -> served", elapsed)
    assert elapsed < 1.0
    assert stack.api("POST", "/api/v1/routes/grow.test/backends", stack.backend("b")).status_code == 409
    r = stack.api("DELETE", "/api/v1/routes/grow.test/backends/backend-b")
    assert r.status_code == 204, r.text
    wait_until(
        lambda: stack.get("/", host="grow.test", headers={"x-region": "2"}, timeout=2).text == HELLO_A,
        5.0,
        what="grow.test back to A",
    )


def test_maintenance_dead_gives_503_and_alive_restores(stack):
    r = stack.api("POST", "/api/v1/routes/%s/backends/backend-a/dead" % DEMO)
    assert r.status_code == 200, r.text
    r = first_answer(stack, DEMO, unless=(200,), headers={"x-region": "1"}, what="503 with backend-a in maintenance")
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.text == "Service Unavailable - VM not responding"
    assert r.headers.get("X-Request-Id")
    assert stack.get("/", host=DEMO, headers={"x-region": "2"}).text == HELLO_B
    listed = stack.api("GET", "/api/v1/routes/" + DEMO).json()
    assert [b["isDead"] for b in listed["backends"] if b["id"] == "backend-a"] == [True]
    assert stack.api("POST", "/api/v1/routes/%s/backends/backend-a/alive" % DEMO).status_code == 200
    wait_until(lambda: stack.get("/", host=DEMO, timeout=2).text == HELLO_A, 2.0, what="backend-a back")


def test_post_existing_route_is_409(stack):
    r = stack.api("POST", "/api/v1/routes", {"vHost": DEMO, "backends": []})
    assert r.status_code == 409, r.text
    assert "error" in r.json()
    r = stack.api("POST", "/api/v1/routes", {"vHost": "DEMO.TEST", "backends": []})
    assert r.status_code == 409, r.text
    # and nothing changed
    assert stack.get("/", host=DEMO).text == HELLO_A


def test_post_new_route_is_201(stack):
    r = stack.api("POST", "/api/v1/routes", {"vHost": "Posted.Test", "backends": [stack.backend("a")]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["vHost"] == "posted.test"
    assert body["id"] == "posted.test"
    assert body["strategy"] == "ROUND_ROBIN"
    assert body["backends"][0]["weight"] == 1
    stack.wait_served("posted.test", timeout=2.0)


BAD_BODIES = [
    ("port out of range", {"vHost": "bad.test", "backends": [{"hostname": "127.0.0.1", "port": 70000}]}, "backends[0].port"),
    ("port zero", {"vHost": "bad.test", "backends": [{"hostname": "127.0.0.1", "port": 0}]}, "backends[0].port"),
    ("port wrong type", {"vHost": "bad.test", "backends": [{"hostname": "127.0.0.1", "port": "80"}]}, "backends[0].port"),
    ("empty hostname", {"vHost": "bad.test", "backends": [{"hostname": "", "port": 80}]}, "backends[0].hostname"),
    ("missing vHost", {"backends": []}, "vHost"),
    ("missing backends", {"vHost": "bad.test"}, "backends"),
    ("unknown strategy", {"vHost": "bad.test", "strategy": "FASTEST", "backends": []}, "strategy"),
    ("unknown field", {"vHost": "bad.test", "backends": [], "bogus": 1}, "bogus"),
    (
        "duplicate backend id",
        {
            "vHost": "bad.test",
            "backends": [
                {"id": "x", "hostname": "127.0.0.1", "port": 80},
                {"id": "x", "hostname": "127.0.0.1", "port": 81},
            ],
        },
        "backends[1].id",
    ),
    (
        "first bad field in document order",
        {"vHost": "bad.test", "backends": [{"hostname": "h", "port": 1}, {"hostname": "", "port": 99999}]},
        "backends[1].hostname",
    ),
]


@pytest.mark.parametrize("case,body,field", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_route_body_is_400_naming_the_field(stack, case, body, field):
    r = stack.api("POST", "/api/v1/routes", body)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    err = r.json()["error"]
    assert set(err) >= {"code", "message", "field"}, err
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["field"] == field, (case, err)
    # changes nothing
    assert stack.api("GET", "/api/v1/routes/bad.test").status_code == 404


def test_invalid_json_and_duplicate_keys_are_400(stack):
    for raw in ('{"vHost": "bad.test", "backends": [', '{"vHost": "bad.test", "vHost": "x.test", "backends": []}'):
        r = stack.api("POST", "/api/v1/routes", raw=raw)
        assert r.status_code == 400, (raw, r.status_code, r.text)
        err = r.json()["error"]
        assert set(err) >= {"code", "message", "field"}, err
    assert stack.api("GET", "/api/v1/routes/bad.test").status_code == 404
    assert stack.api("GET", "/api/v1/routes/x.test").status_code == 404


def test_put_with_mismatched_vhost_is_400_on_vhost(stack):
    r = stack.api("PUT", "/api/v1/routes/one.test", {"vHost": "two.test", "backends": []})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "vHost"


def test_get_routes_lists_runtime_fields(stack):
    r = stack.api("GET", "/api/v1/routes")
    assert r.status_code == 200
    routes = r.json()
    assert isinstance(routes, list)
    demo = [x for x in routes if x["vHost"] == DEMO]
    assert len(demo) == 1, routes
    route = demo[0]
    for key in ("id", "vHost", "strategy", "retries", "timeoutMs", "maxBodyBytes", "backends"):
        assert key in route, key
    assert {b["id"] for b in route["backends"]} == {"backend-a", "backend-b"}
    for b in route["backends"]:
        for key in ("isDead", "deadSince", "failureCount", "latencyMs", "hostname", "port", "weight", "region"):
            assert key in b, (key, b)
        assert b["isDead"] is False
    one = stack.api("GET", "/api/v1/routes/" + DEMO)
    assert one.status_code == 200
    assert one.json()["vHost"] == DEMO
    missing = stack.api("GET", "/api/v1/routes/none.test")
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_get_edit_put_round_trip(stack):
    route = stack.api("GET", "/api/v1/routes/" + DEMO).json()
    route["retries"] = 1
    r = stack.api("PUT", "/api/v1/routes/" + DEMO, route)  # read-only runtime fields sent back are ignored
    assert r.status_code == 200, r.text
    assert r.json()["retries"] == 1


# ====================================================================== proxying


def test_keep_alive_two_requests_on_one_connection(stack):
    with RawConn(stack.http_port) as c:
        for i in range(2):
            c.send(b"GET /echo?i=%d HTTP/1.1\r\nHost: demo.test\r\n\r\n" % i)
            resp = c.read_response()
            assert resp.status == 200, resp
            assert json.loads(resp.body)["query"] == "i=%d" % i
            assert (resp.header("connection") or "").lower() != "close"
        assert not c.closed(timeout=0.3), "gateway closed a keep-alive connection"


def test_connection_close_is_honoured(stack):
    with RawConn(stack.http_port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body.decode() == HELLO_A
        assert c.closed(timeout=3.0)


def test_http10_request_is_answered_and_closed(stack):
    with RawConn(stack.http_port) as c:
        c.send(b"GET / HTTP/1.0\r\nHost: demo.test\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body.decode() == HELLO_A
        assert c.closed(timeout=3.0)


def test_pipelining_three_requests_answered_in_order(stack):
    with RawConn(stack.http_port) as c:
        c.send(
            b"GET /echo?n=1 HTTP/1.1\r\nHost: demo.test\r\n\r\n"
            b"GET /slow?ms=200 HTTP/1.1\r\nHost: demo.test\r\n\r\n"
            b"GET /echo?n=3 HTTP/1.1\r\nHost: demo.test\r\n\r\n"
        )
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        assert (r1.status, r2.status, r3.status) == (200, 200, 200)
        assert json.loads(r1.body)["query"] == "n=1"
        assert json.loads(r3.body)["query"] == "n=3"
        ids = [r.header("x-request-id") for r in (r1, r2, r3)]
        assert len(set(ids)) == 3, ids


def test_pipelined_post_bodies_stay_separate(stack):
    with RawConn(stack.http_port) as c:
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            b"GET /echo?last=1 HTTP/1.1\r\nHost: demo.test\r\n\r\n"
        )
        bodies = [json.loads(c.read_response().body) for _ in range(3)]
        assert bodies[0]["bodyBytes"] == 5
        assert bodies[0]["bodySha256"] == hashlib.sha256(b"hello").hexdigest()
        assert bodies[1]["bodyBytes"] == 3
        assert bodies[1]["bodySha256"] == hashlib.sha256(b"abc").hexdigest()
        assert bodies[2]["query"] == "last=1"


def test_chunked_request_body_reaches_backend_intact(stack):
    chunks = [os.urandom(1000 + i * 37) for i in range(200)]
    expected = b"".join(chunks)

    def gen():
        yield from chunks

    r = stack.request("POST", "/echo", host=DEMO, data=gen())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "POST"
    assert body["bodyBytes"] == len(expected)
    assert body["bodySha256"] == hashlib.sha256(expected).hexdigest()


def test_large_content_length_body_reaches_backend_intact(stack):
    data = os.urandom(3 * 1024 * 1024 + 17)
    r = stack.request("PUT", "/echo", host=DEMO, data=data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "PUT"
    assert body["bodyBytes"] == len(data)
    assert body["bodySha256"] == hashlib.sha256(data).hexdigest()


def test_chunked_response_is_relayed(stack):
    n, size = 7, 3000
    r = stack.get("/chunked?n=%d&size=%d" % (n, size), host=DEMO)
    assert r.status_code == 200
    expected = b"".join(bytes([ord("a") + i % 26]) * size for i in range(n))
    assert r.content == expected
    # the same on a raw connection, then a second request on it (framing kept)
    with RawConn(stack.http_port) as c:
        c.send(b"GET /chunked?n=3&size=10 HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"a" * 10 + b"b" * 10 + b"c" * 10
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        assert c.read_response().body.decode() == HELLO_A


def test_large_chunked_response_is_relayed(stack):
    n, size = 64, 65536
    r = stack.get("/chunked?n=%d&size=%d" % (n, size), host=DEMO)
    assert r.status_code == 200
    assert len(r.content) == n * size
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(
        b"".join(bytes([ord("a") + i % 26]) * size for i in range(n))
    ).hexdigest()


def test_backend_status_codes_are_relayed(stack):
    for code in (201, 204, 301, 404, 418, 500, 503):
        r = stack.get("/status/%d" % code, host=DEMO, allow_redirects=False)
        assert r.status_code == code


def test_head_request(stack):
    with RawConn(stack.http_port) as c:
        c.send(b"HEAD / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        resp = c.read_response(head_request=True)
        assert resp.status == 200
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        assert c.read_response().body.decode() == HELLO_A


def test_forwarded_headers_seen_by_backend(stack):
    r, body = echo(stack, "/echo?x=1")
    h = body["headers"]
    assert h.get("x-forwarded-for") == "127.0.0.1"
    assert h.get("x-real-ip") == "127.0.0.1"
    assert h.get("x-forwarded-proto") == "http"
    assert h.get("x-forwarded-host") == DEMO
    rid = r.headers.get("X-Request-Id")
    assert rid and UUID4.match(rid), rid
    assert h.get("x-request-id") == rid
    assert h.get("x-correlation-id") == rid
    assert body["path"] == "/echo"
    assert body["query"] == "x=1"


def test_forged_forwarded_headers_from_untrusted_client_are_replaced(stack):
    r, body = echo(
        stack,
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.test",
        },
    )
    h = body["headers"]
    assert h.get("x-forwarded-for") == "127.0.0.1", h
    assert h.get("x-real-ip") == "127.0.0.1", h
    assert h.get("x-forwarded-proto") == "http", h
    assert h.get("x-forwarded-host") == DEMO, h


def test_forwarded_for_from_trusted_proxy_is_kept_and_appended(make_stack):
    s = make_stack(gateway_env={"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"})
    r, body = echo(s, headers={"X-Forwarded-For": "6.6.6.6"})
    xff = [p.strip() for p in body["headers"].get("x-forwarded-for", "").split(",")]
    assert xff == ["6.6.6.6", "127.0.0.1"], body["headers"]
    r, body = echo(s, headers={"X-Forwarded-For": "10.0.0.1, 6.6.6.6"})
    xff = [p.strip() for p in body["headers"].get("x-forwarded-for", "").split(",")]
    assert xff == ["10.0.0.1", "6.6.6.6", "127.0.0.1"], body["headers"]


def test_incoming_request_id_is_kept_and_echoed(stack):
    rid = "client-id.42:abc_DEF-9"
    r, body = echo(stack, headers={"X-Request-Id": rid})
    assert body["headers"].get("x-request-id") == rid
    assert body["headers"].get("x-correlation-id") == rid
    assert r.headers.get("X-Request-Id") == rid


def test_incoming_correlation_id_is_kept_and_echoed(stack):
    cid = "corr-123"
    r, body = echo(stack, headers={"X-Correlation-Id": cid})
    assert body["headers"].get("x-request-id") == cid
    assert body["headers"].get("x-correlation-id") == cid
    assert r.headers.get("X-Request-Id") == cid
    assert r.headers.get("X-Correlation-Id") == cid


def test_request_id_wins_over_different_correlation_id(stack):
    r, body = echo(stack, headers={"X-Request-Id": "rid-1", "X-Correlation-Id": "cid-2"})
    assert body["headers"].get("x-request-id") == "rid-1"
    assert body["headers"].get("x-correlation-id") == "rid-1"
    assert r.headers.get("X-Request-Id") == "rid-1"


@pytest.mark.parametrize(
    "bad_id", ["has space", "semi;colon", "x" * 129, "slash/inside", "ümlaut"], ids=["space", "semicolon", "129chars", "slash", "non-ascii"]
)
def test_invalid_request_id_is_replaced_by_uuid4(stack, bad_id):
    raw = bad_id.encode("utf-8")
    with RawConn(stack.http_port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: demo.test\r\nX-Request-Id: " + raw + b"\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200, resp
    h = json.loads(resp.body)["headers"]
    rid = resp.header("x-request-id")
    assert rid and UUID4.match(rid), rid
    assert h.get("x-request-id") == rid
    assert h.get("x-correlation-id") == rid


def test_request_id_of_128_chars_is_kept(stack):
    rid = "a" * 128
    r, body = echo(stack, headers={"X-Request-Id": rid})
    assert r.headers.get("X-Request-Id") == rid
    assert body["headers"].get("x-request-id") == rid


def test_hop_by_hop_headers_are_not_forwarded(stack):
    with RawConn(stack.http_port) as c:
        c.send(
            b"GET /echo HTTP/1.1\r\nHost: demo.test\r\nConnection: keep-alive, foo\r\nfoo: bar\r\n"
            b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n"
        )
        resp = c.read_response()
    assert resp.status == 200, resp
    h = json.loads(resp.body)["headers"]
    assert "foo" not in h, h
    assert "keep-alive" not in h, h
    assert "proxy-connection" not in h, h
    assert "foo" not in h.get("connection", "").lower(), h
    assert h.get("x-kept") == "yes", h


def test_hop_by_hop_headers_of_the_backend_are_not_relayed(stack):
    # the demo backend answers keep-alive itself; whatever it says about its own
    # connection must not leak into ours: a Connection header we get back names
    # at most keep-alive/close.
    with RawConn(stack.http_port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        resp = c.read_response()
    conn = (resp.header("connection") or "keep-alive").lower()
    assert conn in ("keep-alive", "close"), resp.headers
    assert resp.header("transfer-encoding") is None or resp.header("content-length") is None


def test_route_custom_headers_are_sent_upstream(stack):
    stack.put_route("hdr.test", [stack.backend("a")], headers={"X-Env": "e2e"})
    stack.wait_served("hdr.test")
    r, body = echo(stack, host="hdr.test")
    assert body["headers"].get("x-env") == "e2e"


# ====================================================================== malformed requests

MALFORMED = [
    (
        "CL and TE",
        b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("duplicate Content-Length", b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    (
        "differing Content-Length",
        b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    ("Content-Length list", b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("bare LF everywhere", b"GET / HTTP/1.1\nHost: demo.test\n\n"),
    ("bare LF in one field", b"GET / HTTP/1.1\r\nHost: demo.test\nX-A: b\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: demo.test\r\nX-A: a\r\n  folded\r\n\r\n"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : demo.test\r\n\r\n"),
    ("space before colon in other field", b"GET / HTTP/1.1\r\nHost: demo.test\r\nX-A : b\r\n\r\n"),
    ("NUL in header value", b"GET / HTTP/1.1\r\nHost: demo.test\r\nX-A: a\x00b\r\n\r\n"),
    ("CR in header value", b"GET / HTTP/1.1\r\nHost: demo.test\r\nX-A: a\rb\r\n\r\n"),
    (
        "bad chunk size",
        b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ),
    ("TE not chunked", b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nTransfer-Encoding: gzip\r\n\r\nhello"),
    ("bad Content-Length", b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: -1\r\n\r\n"),
    ("garbage request line", b"HELLO\r\n\r\n"),
]


@pytest.mark.parametrize("case,data", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_is_400_and_closed(stack, case, data):
    resp, closed = raw_request(stack, data)
    assert resp.status == 400, (case, resp)
    assert resp.body == b"Bad Request", (case, resp)
    assert resp.header("x-request-id"), resp
    assert closed, "%s: connection not closed after 400" % case
    # and the gateway still serves
    assert stack.get("/", host=DEMO).text == HELLO_A


def test_malformed_second_request_on_keep_alive_connection(stack):
    with RawConn(stack.http_port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
        resp = c.read_response()
        assert resp.status == 400
        assert c.closed(timeout=3.0)


def test_smuggled_request_never_reaches_backend(stack):
    # A CL+TE request that hides a second request in its body: the gateway must
    # answer one 400 and close, never a second answer.
    smuggled = b"GET /echo?smuggled=1 HTTP/1.1\r\nHost: demo.test\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    data = (
        b"POST /echo HTTP/1.1\r\nHost: demo.test\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
    ) + body
    with RawConn(stack.http_port) as c:
        c.send(data)
        resp = c.read_response()
        assert resp.status == 400
        assert c.closed(timeout=3.0)
        assert c.buf == b"", "bytes after the 400: %r" % c.buf


def test_request_line_over_8k_is_414(stack):
    resp, _ = raw_request(stack, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: demo.test\r\n\r\n")
    assert resp.status == 414, resp
    assert resp.header("x-request-id")


def test_request_line_under_8k_is_served(stack):
    path = b"/echo?" + b"q" * 7000
    resp, _ = raw_request(stack, b"GET " + path + b" HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n\r\n")
    assert resp.status == 200, resp
    assert json.loads(resp.body)["query"] == "q" * 7000


def test_over_100_header_fields_is_431(stack):
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(101))
    resp, _ = raw_request(stack, b"GET / HTTP/1.1\r\nHost: demo.test\r\n" + fields + b"\r\n")
    assert resp.status == 431, resp
    assert resp.header("x-request-id")


def test_header_section_over_16k_is_431(stack):
    fields = b"".join(b"X-Big%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    resp, _ = raw_request(stack, b"GET / HTTP/1.1\r\nHost: demo.test\r\n" + fields + b"\r\n")
    assert resp.status == 431, resp
    assert resp.header("x-request-id")


def test_many_moderate_headers_are_served(stack):
    # 60 fields, about 6 KiB: under both limits
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 90) for i in range(59))
    resp, _ = raw_request(stack, b"GET /echo HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n" + fields + b"\r\n")
    assert resp.status == 200, resp
    assert json.loads(resp.body)["headers"]["x-f58"] == "v" * 90


def test_incomplete_headers_get_408_after_header_timeout(make_stack, timings):
    s = make_stack(gateway_env={"GATEWAY_HEADER_TIMEOUT": "1s"})
    with RawConn(s.http_port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n")
        resp = c.read_response(timeout=8)
        elapsed = time.monotonic() - t0
        timings.record("incomplete headers -> 408 (GATEWAY_HEADER_TIMEOUT=1s)", elapsed)
        assert resp.status == 408, resp
        assert resp.header("x-request-id")
        assert 0.8 <= elapsed < 4.0, elapsed
        assert c.closed(timeout=3.0)


def test_slowly_trickled_headers_get_408(make_stack):
    # headers must be complete within the timeout, however steadily lines arrive
    s = make_stack(gateway_env={"GATEWAY_HEADER_TIMEOUT": "1s"})
    with RawConn(s.http_port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n")
        i = 0
        while time.monotonic() - t0 < 4.0:  # one header line every 100 ms, at most 4 s
            readable, _, _ = select.select([c.sock], [], [], 0.1)
            if readable:
                break
            try:
                c.send(b"X-Slow-%d: v\r\n" % i)
            except OSError:
                break
            i += 1
        resp = c.read_response(timeout=5)
        elapsed = time.monotonic() - t0
        assert resp.status == 408, resp
        assert elapsed < 4.0, elapsed


def test_silent_new_connection_is_closed_after_header_timeout(make_stack):
    # a connection that never sends a byte is not kept for ever (SPEC §2: the
    # header timeout runs from accept for a connection's first request); a 408
    # before the close is allowed, nothing else.
    s = make_stack(gateway_env={"GATEWAY_HEADER_TIMEOUT": "1s"})
    with RawConn(s.http_port, timeout=10) as c:
        t0 = time.monotonic()
        assert c.closed(timeout=5.0), "silent connection still open after 5 s"
        assert time.monotonic() - t0 >= 0.8
        assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 408 "), c.buf


def test_header_timeout_does_not_cut_a_fast_request(make_stack):
    s = make_stack(gateway_env={"GATEWAY_HEADER_TIMEOUT": "1s"})
    with RawConn(s.http_port) as c:
        for _ in range(3):
            c.send(b"GET /slow?ms=600 HTTP/1.1\r\nHost: demo.test\r\n\r\n")
            assert c.read_response().status == 200


def test_idle_keep_alive_connection_is_closed_silently(make_stack, timings):
    s = make_stack(gateway_env={"GATEWAY_IDLE_TIMEOUT": "1s"})
    with RawConn(s.http_port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed(timeout=5.0), "idle connection not closed"
        elapsed = time.monotonic() - t0
        timings.record("idle keep-alive close (GATEWAY_IDLE_TIMEOUT=1s)", elapsed)
        assert c.buf == b"", "idle close must be silent, got %r" % c.buf
        assert 0.8 <= elapsed < 4.0


def test_public_health_path_answered_by_gateway(stack):
    for host in (DEMO, "nobody.test", "127.0.0.1"):
        r = stack.get("/health", host=host)
        assert r.status_code == 200, (host, r.status_code, r.text)
        body = r.json()
        assert body["service"] == "gateway", body
        assert body["status"] == "healthy"
        assert body["region"] == "1"
        for key in ("timestamp", "uptime"):
            assert key in body
    # other paths are routed
    assert stack.get("/", host=DEMO).text == HELLO_A


def test_public_health_path_disabled_when_empty(make_stack):
    s = make_stack(gateway_env={"GATEWAY_PUBLIC_HEALTH_PATH": ""})
    r = s.get("/health", host=DEMO)
    assert r.status_code == 200, r.text
    assert r.json().get("service") == "server-a", r.text  # the demo backend's own /health
    r = s.get("/health", host="nobody.test")
    assert r.status_code == 404
    assert r.text == "Service Not Found"


def test_public_health_path_can_be_moved(make_stack):
    s = make_stack(gateway_env={"GATEWAY_PUBLIC_HEALTH_PATH": "/gw-health"})
    r = s.get("/gw-health", host="nobody.test")
    assert r.status_code == 200
    assert r.json()["service"] == "gateway"
    r = s.get("/health", host=DEMO)
    assert r.json().get("service") == "server-a", r.text


# ====================================================================== failed backends


def test_only_backend_down_is_502(stack):
    stack.put_route("down.test", [{"id": "gone", "hostname": "127.0.0.1", "port": closed_port(), "region": "1"}])
    r = first_answer(stack, "down.test")
    assert r.status_code == 502, (r.status_code, r.text)
    assert r.text == "Bad Gateway"
    assert r.headers.get("X-Request-Id")
    # the refused backend is now dead (SPEC §6: one refusal): 502 again or 503
    for _ in range(3):
        r = stack.get("/", host="down.test")
        assert (r.status_code, r.text) in ((502, "Bad Gateway"), (503, "Service Unavailable - VM not responding"))
        assert r.headers.get("X-Request-Id")


def test_one_of_two_backends_down_every_request_succeeds(stack):
    dead = {"id": "gone", "hostname": "127.0.0.1", "port": closed_port(), "region": "1"}
    stack.put_route("half.test", [dead, stack.backend("a")])
    stack.wait_served("half.test")
    failures = []
    with requests.Session() as sess:
        for i in range(30):
            r = stack.get("/", host="half.test", session=sess)
            if r.status_code != 200 or r.text != HELLO_A:
                failures.append((i, r.status_code, r.text))
            r = stack.request("POST", "/echo", host="half.test", data=b"x" * 100, session=sess)
            if r.status_code != 200 or r.json()["bodyBytes"] != 100:
                failures.append((i, "POST", r.status_code, r.text))
    # fresh connections too
    for i in range(10):
        r = stack.get("/", host="half.test")
        if r.status_code != 200:
            failures.append(("fresh", i, r.status_code, r.text))
    assert failures == []


def test_backend_killed_mid_traffic_other_serves(stack):
    # backend A dies (SIGKILL): requests for region 1 on a route with A and a
    # second region-1 backend (B's process registered in region 1) keep working.
    stack.put_route("pair.test", [stack.backend("a"), stack.backend("b", region="1")])
    stack.wait_served("pair.test")
    stack.kill("backend-a")
    failures = []
    for i in range(20):
        r = stack.get("/", host="pair.test")
        if r.status_code != 200 or r.text != HELLO_B:
            failures.append((i, r.status_code, r.text))
    assert failures == []


# ====================================================================== crash isolation


class Stream:
    """A bounded stream of requests over a few persistent connections.

    `total` requests split over `conns` threads, each with its own requests.Session
    (one keep-alive connection each); the whole stream is bounded by `deadline` s.
    `hook(stream)` runs once, in the thread whose answer makes `at` requests done, while
    the other threads go on sending (so the fault meets requests in flight, and
    never after the stream's end however the test's own thread is scheduled).
    """

    def __init__(self, stack, host, total=400, conns=4, deadline=90.0, at=None, hook=None):
        self.stack = stack
        self.host = host
        self.per_conn = total // conns
        self.conns = conns
        self.deadline = time.monotonic() + deadline
        self.lock = threading.Lock()
        self.done = 0
        self.ok = 0
        self.failures = []
        self.at = at
        self.hook = hook
        self.hooked = threading.Event()
        self.hook_error = None
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(conns)]

    def _run(self, idx):
        with requests.Session() as sess:
            for i in range(self.per_conn):
                if time.monotonic() > self.deadline:
                    with self.lock:
                        self.failures.append((idx, i, "stream deadline passed"))
                    return
                try:
                    r = self.stack.get("/", host=self.host, session=sess, timeout=10)
                    good = r.status_code == 200 and r.text in (HELLO_A, HELLO_B)
                    what = (r.status_code, r.text[:80])
                except requests.RequestException as exc:
                    good, what = False, repr(exc)
                with self.lock:
                    self.done += 1
                    if good:
                        self.ok += 1
                    else:
                        self.failures.append((idx, i, what))
                    run_hook = self.hook is not None and self.done == self.at
                if run_hook:
                    try:
                        self.hook(self)
                    except BaseException as exc:  # the test's thread reports it
                        self.hook_error = exc
                    finally:
                        self.hooked.set()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join(max(0.0, self.deadline - time.monotonic()) + 15)
        assert not any(t.is_alive() for t in self.threads), "request stream did not finish"


LEASE_MODES = [pytest.param({}, id="lease-default-ttl"), pytest.param({"GATEWAY_LEASE_TTL": "0"}, id="lease-ttl-0")]


@pytest.mark.parametrize("victim", ["router", "balancer"])
@pytest.mark.parametrize("gateway_env", LEASE_MODES)
def test_sigkill_mid_stream_loses_no_request_and_actor_rejoins(make_stack, timings, victim, gateway_env):
    s = make_stack(gateway_env=gateway_env)
    total = 400
    fault = {}

    def kill(stream):  # once a quarter of the stream has been answered, from the stream
        fault["done_at_kill"] = stream.done
        fault["killed"] = s.kill(victim)
        fault["killed_at"] = time.monotonic()

    stream = Stream(s, DEMO, total=total, conns=4, at=total // 4, hook=kill).start()
    assert stream.hooked.wait(60.0), "a quarter of the stream was never answered: %r" % stream.failures[:5]
    assert stream.hook_error is None, "the kill failed: %r" % stream.hook_error
    killed, killed_at, done_at_kill = fault["killed"], fault["killed_at"], fault["done_at_kill"]
    stream.join()
    timings.record(
        "%s SIGKILLed after %d of %d requests; stream ended %.3f s later"
        % (victim, done_at_kill, total, time.monotonic() - killed_at),
        time.monotonic() - killed_at,
    )
    assert stream.failures == [], "%d of %d requests failed after SIGKILL of %s (at %d): %r" % (
        len(stream.failures),
        total,
        victim,
        done_at_kill,
        stream.failures[:10],
    )
    assert stream.ok == total
    assert done_at_kill < total, "the stream ended before %s was killed" % victim
    assert killed.returncode == -9
    # Then keep asking until well past the lease TTL (1 s by default), so that
    # the expired lease's fallback is exercised too (bounded by count and time).
    late = []
    with requests.Session() as sess:
        for i in range(1000):  # paced: about one request every 5 ms
            if time.monotonic() - killed_at >= 1.6:
                break
            pause(0.005)  # pacing, not synchronisation
            try:
                r = s.get("/", host=DEMO, session=sess, timeout=5)
                if r.status_code != 200 or r.text != HELLO_A:
                    late.append((i, r.status_code, r.text[:80]))
            except requests.RequestException as exc:
                late.append((i, repr(exc)))
    assert late == [], "requests failed more than the lease TTL after %s died: %r" % (victim, late[:10])
    assert time.monotonic() - killed_at >= 1.6, "the late requests did not reach past the lease TTL"

    # restart with the same settings (same state file) and check that it rejoins
    s.restart(victim)
    s.wait_ready(timeout=15)
    vhost = "after-%s.test" % victim

    def put():
        r = s.api("PUT", "/api/v1/routes/" + vhost, {"vHost": vhost, "backends": [s.backend("b")]}, timeout=6)
        return r if r.status_code in (200, 201) else None

    wait_until(put, 15.0, interval=0.1, what="PUT accepted after %s restart" % victim)
    t0 = time.monotonic()
    wait_until(lambda: s.get("/", host=vhost, timeout=2).text == HELLO_B, 10.0, what="%s served" % vhost)
    elapsed = time.monotonic() - t0
    timings.record("route added after %s restart -> served" % victim, elapsed)
    assert elapsed < 2.0, "new route served %.3f s after its PUT once %s restarted" % (elapsed, victim)
    # the old route still served, and the state file survived (router restarted from it)
    assert s.get("/", host=DEMO).text == HELLO_A
    assert s.api("GET", "/api/v1/routes/" + DEMO).status_code == 200


@pytest.mark.parametrize("gateway_env", LEASE_MODES)
def test_router_down_known_route_still_served_new_route_503(make_stack, gateway_env):
    s = make_stack(gateway_env=gateway_env)
    s.kill("router")
    for _ in range(20):
        r = s.get("/", host=DEMO)
        assert r.status_code == 200 and r.text == HELLO_A, (r.status_code, r.text)
    # a Host the gateway never saw: 503 after the decision deadline, not a hang
    t0 = time.monotonic()
    r = s.get("/", host="never-seen.test", timeout=5)
    assert r.status_code == 503, (r.status_code, r.text)
    assert time.monotonic() - t0 < 2.0
    assert r.headers.get("X-Request-Id")
