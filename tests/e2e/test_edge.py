"""A route's edge policy (SPEC §4, gateway/gw_edge): autoHttps, CORS,
securityHeaders, auth basic and bearer, the rate limit — each applied by the
gateway before any byte goes upstream, through the public port with real
clients (requests, raw sockets, Python's ssl).

The demo backend's /echo shows what reached the upstream; a small Python
backend in the test (a thread) answers with fields of its own, to show which
of the backend's fields the edge keeps and which it replaces.
"""

import hashlib
import http.server
import json
import socket
import ssl
import subprocess
import threading

import pytest

from stack import free_ports, wait_until

EDGE = "edge.test"


def lower_headers(echo):
    return {k.lower(): v for k, v in echo["headers"].items()}


def crypt_hash(password, scheme="-6"):
    """A crypt(3) hash made by `openssl passwd` (SHA-512 or SHA-256 crypt)."""
    out = subprocess.run(["openssl", "passwd", scheme, password], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class FieldsBackend:
    """A backend that answers every request with fixed extra fields."""

    def __init__(self, fields):
        (self.port,) = free_ports(1)
        extra = dict(fields)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = b"fields backend\n"
                self.send_response(200)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fields_backend():
    made = []

    def make(fields):
        b = FieldsBackend(fields)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def wait_status(stack, vhost, path, status, headers=None):
    """Until the gateway's lease has the route's new policy (a config change
    reaches every gateway at once; polled, not slept)."""
    wait_until(
        lambda: stack.get(path, host=vhost, headers=headers, allow_redirects=False).status_code == status,
        5.0,
        what="%s%s answers %d" % (vhost, path, status),
    )


# --------------------------------------------------------------------------- autoHttps


def test_auto_https_redirects_plain_http_with_the_https_port(make_stack):
    (https_port,) = free_ports(1)
    stack = make_stack(gateway_env={"GATEWAY_HTTPS_ADDR": "127.0.0.1:%d" % https_port})
    stack.put_route(EDGE, [stack.backend("a")], autoHttps=True)
    wait_status(stack, EDGE, "/echo", 308)
    r = stack.get("/a/b?x=1&y=%20", host=EDGE, allow_redirects=False)
    assert r.status_code == 308
    assert r.headers["Location"] == "https://%s:%d/a/b?x=1&y=%%20" % (EDGE, https_port)
    # any method: 308 keeps it (a POST body is never sent upstream over plain HTTP)
    r = stack.request("POST", "/form", host=EDGE, data=b"secret=1", allow_redirects=False)
    assert r.status_code == 308
    assert r.headers["Location"] == "https://%s:%d/form" % (EDGE, https_port)
    # another route without autoHttps is untouched
    assert stack.get("/echo", host=stack.DEMO_VHOST).status_code == 200
    # over HTTPS (the default certificate) the route is served, X-Forwarded-Proto https
    from test_tls import make_cert  # same certificates as the TLS tests

    cert, key = make_cert("default")
    r = stack.api("POST", "/api/v1/certificates", {"domain": "*", "cert": cert, "key": key})
    assert r.status_code in (200, 201), r.text

    def https_echo():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", https_port), timeout=5), server_hostname=EDGE) as s:
                s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % EDGE.encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            return data
        except (ssl.SSLError, OSError):
            return b""

    wait_until(lambda: https_echo().startswith(b"HTTP/1.1 200"), 2.0, what="HTTPS served")
    head, _, body = https_echo().partition(b"\r\n\r\n")
    assert lower_headers(json.loads(body))["x-forwarded-proto"] == "https"


def test_auto_https_without_an_https_listener_points_at_443(make_stack):
    stack = make_stack()
    stack.put_route(EDGE, [stack.backend("a")], autoHttps=True)
    wait_status(stack, EDGE, "/x", 308)
    r = stack.get("/x?q", host=EDGE, allow_redirects=False)
    assert r.headers["Location"] == "https://%s/x?q" % EDGE


# --------------------------------------------------------------------------- security headers


def test_security_headers_added_unless_the_backend_sets_them(make_stack, fields_backend):
    stack = make_stack()
    stack.put_route(EDGE, [stack.backend("a")], securityHeaders=True)
    wait_until(lambda: "X-Content-Type-Options" in stack.get("/echo", host=EDGE).headers, 5.0, what="policy")
    r = stack.get("/echo", host=EDGE)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in r.headers  # never over plain HTTP
    # the gateway's own answers carry them too
    r = stack.get("/status/404", host=EDGE)
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    # the backend's own policy wins
    fb = fields_backend({"X-Frame-Options": "DENY"})
    stack.put_route("own.test", [{"id": "fb", "hostname": "127.0.0.1", "port": fb.port}], securityHeaders=True)
    wait_status(stack, "own.test", "/", 200)
    r = stack.get("/", host="own.test")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    # a route without the flag gets none
    assert "X-Content-Type-Options" not in stack.get("/echo", host=stack.DEMO_VHOST).headers


# --------------------------------------------------------------------------- CORS


CORS = {
    "origins": ["https://app.example.com"],
    "methods": ["GET", "POST"],
    "headers": ["Content-Type", "X-Api-Key"],
    "exposeHeaders": ["X-Request-Id"],
    "maxAge": 120,
}


def preflight(stack, origin, method="POST", headers=None, host=EDGE):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return stack.request("OPTIONS", "/echo", host=host, headers=h)


def test_cors_preflight_answered_at_the_edge(make_stack):
    stack = make_stack()
    r = stack.put_route(EDGE, [stack.backend("a")], cors=CORS)
    assert r["cors"]["credentials"] is False  # normalized with its defaults
    wait_until(lambda: preflight(stack, "https://app.example.com").status_code == 204, 5.0, what="policy")
    r = preflight(stack, "https://app.example.com", "POST", "content-type, x-api-key")
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type, X-Api-Key"
    assert r.headers["Access-Control-Max-Age"] == "120"
    assert r.headers["Vary"] == "Origin"
    assert r.content == b""  # not the backend's /echo: it never saw the preflight
    # refused: another origin, a method or a header not allowed
    assert preflight(stack, "https://evil.example.com").status_code == 403
    assert preflight(stack, "https://app.example.com", "DELETE").status_code == 403
    assert preflight(stack, "https://app.example.com", "POST", "Content-Type, X-Other").status_code == 403
    # an OPTIONS that is not a preflight goes upstream
    r = stack.request("OPTIONS", "/echo", host=EDGE)
    assert r.status_code == 200 and r.json()["method"] == "OPTIONS"


def test_cors_fields_on_real_responses_replace_the_backends(make_stack, fields_backend):
    stack = make_stack()
    stack.put_route(EDGE, [stack.backend("a")], cors=CORS)
    ok = {"Origin": "https://app.example.com"}
    wait_until(lambda: "Access-Control-Allow-Origin" in stack.get("/echo", host=EDGE, headers=ok).headers, 5.0, what="policy")
    r = stack.get("/echo", host=EDGE, headers=ok)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "X-Request-Id"
    assert r.headers["Vary"] == "Origin"
    # another origin: proxied (the browser decides), without the fields
    r = stack.get("/echo", host=EDGE, headers={"Origin": "https://evil.example.com"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    # a backend's own Access-Control-Allow-Origin is replaced, not doubled
    fb = fields_backend({"Access-Control-Allow-Origin": "*"})
    stack.put_route("own.test", [{"id": "fb", "hostname": "127.0.0.1", "port": fb.port}], cors=CORS)
    wait_until(
        lambda: stack.get("/", host="own.test", headers=ok).headers.get("Access-Control-Allow-Origin") == "https://app.example.com",
        5.0,
        what="policy",
    )
    raw = socket.create_connection(("127.0.0.1", stack.http_port), timeout=5)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: own.test\r\nOrigin: https://app.example.com\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        data += chunk
    raw.close()
    assert data.lower().count(b"access-control-allow-origin:") == 1, data


def test_cors_validation_errors_name_the_field(make_stack):
    stack = make_stack()
    cases = [
        ({"methods": ["GET"]}, "cors.origins"),
        ({"origins": ["app.example.com"]}, "cors.origins[0]"),
        ({"origins": ["*", "https://a.example"]}, "cors.origins[0]"),
        ({"origins": ["*"], "credentials": True}, "cors.credentials"),
        ({"origins": ["https://a.example"], "methods": ["GET POST"]}, "cors.methods[0]"),
        ({"origins": ["https://a.example"], "maxAge": -1}, "cors.maxAge"),
        ({"origins": ["https://a.example"], "bogus": 1}, "cors.bogus"),
    ]
    for cors, field in cases:
        r = stack.api("PUT", "/api/v1/routes/bad.test", {"vHost": "bad.test", "backends": [], "cors": cors})
        assert r.status_code == 400, (cors, r.text)
        assert r.json()["error"]["field"] == field, (cors, r.text)


# --------------------------------------------------------------------------- auth


def test_basic_auth(make_stack):
    stack = make_stack()
    users = {"alice": crypt_hash("wonderland"), "bob": crypt_hash("builder", "-5")}
    stack.put_route(EDGE, [stack.backend("a")], auth={"type": "basic", "users": users})
    wait_status(stack, EDGE, "/echo", 401)
    r = stack.get("/echo", host=EDGE)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert stack.get("/echo", host=EDGE, auth=("alice", "wrong")).status_code == 401
    assert stack.get("/echo", host=EDGE, auth=("carol", "wonderland")).status_code == 401
    assert stack.get("/echo", host=EDGE, headers={"Authorization": "Basic !!!"}).status_code == 401
    assert stack.get("/echo", host=EDGE, headers={"Authorization": "Bearer abc"}).status_code == 401
    # right: through, and the backend learns the user; a client's own X-User-Id never passes
    for user, password in (("alice", "wonderland"), ("bob", "builder"), ("alice", "wonderland")):
        r = stack.get("/echo", host=EDGE, auth=(user, password), headers={"X-User-Id": "mallory"})
        assert r.status_code == 200, r.text
        assert lower_headers(r.json())["x-user-id"] == user
    # a route without auth is untouched
    assert stack.get("/echo", host=stack.DEMO_VHOST).status_code == 200
    counters, _ = stack.pong("gateway")
    assert counters.get("auth.refused", 0) >= 5


def test_bearer_auth(make_stack):
    stack = make_stack()
    token = "s3cr3t-token-for-the-test"
    digest = hashlib.sha256(token.encode()).hexdigest()
    stack.put_route(EDGE, [stack.backend("a")], auth={"type": "bearer", "tokens": [digest.upper()]})
    wait_status(stack, EDGE, "/echo", 401)
    r = stack.get("/echo", host=EDGE)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert stack.get("/echo", host=EDGE, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = stack.get("/echo", host=EDGE, headers={"Authorization": "Bearer " + token, "X-User-Id": "mallory"})
    assert r.status_code == 200
    assert "x-user-id" not in lower_headers(r.json())
    # the credentials change: the old token stops working at once
    other = "another-token"
    stack.put_route(EDGE, [stack.backend("a")], auth={"type": "bearer", "tokens": [hashlib.sha256(other.encode()).hexdigest()]})
    wait_status(stack, EDGE, "/echo", 401, headers={"Authorization": "Bearer " + token})
    assert stack.get("/echo", host=EDGE, headers={"Authorization": "Bearer " + other}).status_code == 200


def test_preflight_needs_no_credentials(make_stack):
    stack = make_stack()
    token = "t"
    stack.put_route(
        EDGE,
        [stack.backend("a")],
        cors=CORS,
        auth={"type": "bearer", "tokens": [hashlib.sha256(token.encode()).hexdigest()]},
    )
    wait_status(stack, EDGE, "/echo", 401)
    assert preflight(stack, "https://app.example.com").status_code == 204
    r = stack.get("/echo", host=EDGE, headers={"Origin": "https://app.example.com"})
    assert r.status_code == 401
    # a browser reads the 401 only with the CORS fields on it
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


# --------------------------------------------------------------------------- rate limits


def rl_fields(r):
    return {k: r.headers.get(k) for k in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")}


def test_rate_limit_in_memory(make_stack):
    stack = make_stack()  # no REDIS_URL: each gateway counts in memory, not degraded
    stack.put_route(EDGE, [stack.backend("a")], rateLimit={"requests": 3, "windowSeconds": 3600})
    wait_until(lambda: "RateLimit-Limit" in stack.get("/echo", host=EDGE).headers, 5.0, what="policy")
    # that poll used the first request(s); count the rest of the window
    seen = []
    for _ in range(6):
        r = stack.get("/echo", host=EDGE)
        seen.append(r.status_code)
        f = rl_fields(r)
        assert f["RateLimit-Limit"] == "3"
        assert 1 <= int(f["RateLimit-Reset"]) <= 3600
        if r.status_code == 429:
            assert f["RateLimit-Remaining"] == "0"
            assert 1 <= int(f["Retry-After"]) <= 3600
            assert r.text.startswith("Too Many Requests")
        else:
            assert f["Retry-After"] is None
    assert seen[-3:] == [429, 429, 429] and seen.count(200) <= 2, seen
    # another route is not limited, and the tier names resolve (seed 004)
    assert "RateLimit-Limit" not in stack.get("/echo", host=stack.DEMO_VHOST).headers
    stack.put_route("tier.test", [stack.backend("a")], rateLimit={"tier": "strict"})
    wait_until(lambda: stack.get("/echo", host="tier.test").headers.get("RateLimit-Limit") == "20", 5.0, what="tier")
    health = stack.api("GET", "/api/health").json()
    assert not any("rate limits" in reason for reason in health["reasons"]), health


def test_rate_limit_by_user_after_auth(make_stack):
    stack = make_stack()
    users = {"alice": crypt_hash("a"), "bob": crypt_hash("b")}
    stack.put_route(
        EDGE,
        [stack.backend("a")],
        auth={"type": "basic", "users": users},
        rateLimit={"requests": 2, "windowSeconds": 3600, "key": "user"},
    )
    wait_status(stack, EDGE, "/echo", 401)
    alice = [stack.get("/echo", host=EDGE, auth=("alice", "a")).status_code for _ in range(3)]
    bob = [stack.get("/echo", host=EDGE, auth=("bob", "b")).status_code for _ in range(3)]
    assert alice == [200, 200, 429] and bob == [200, 200, 429], (alice, bob)
    # a wrong password is refused by auth, never counted against the user
    assert stack.get("/echo", host=EDGE, auth=("alice", "nope")).status_code == 401


def test_rate_limit_shared_by_two_gateways_and_memory_fallback(make_stack, tmp_path):
    from test_chat import Redis, start_gateway

    redis = Redis(str(tmp_path))
    try:
        stack = make_stack(gateway_env={"REDIS_URL": redis.url})
        port2 = start_gateway(stack, "gateway-two", "1")

        def get2(path):
            return requests_get(port2, path)

        limit = 10
        stack.put_route(EDGE, [stack.backend("a")], rateLimit={"requests": limit, "windowSeconds": 3600})
        wait_until(lambda: "RateLimit-Limit" in stack.get("/echo", host=EDGE).headers, 5.0, what="policy, gateway 1")
        wait_until(lambda: "RateLimit-Limit" in get2("/echo").headers, 5.0, what="policy, gateway 2")
        # use up the limit through gateway 1
        ok1 = 2 + sum(stack.get("/echo", host=EDGE).status_code == 200 for _ in range(limit))
        assert ok1 <= limit + 1, ok1
        # gateway 2 learns the shared count within a sync (50 ms): 429 without
        # more than a request or two of its own
        ok2 = 0

        def refused_on_two():
            nonlocal ok2
            r = get2("/echo")
            ok2 += r.status_code == 200
            return r.status_code == 429

        # one request per 250 ms, longer than a sync (50 ms) and its round trip:
        # gateway 2 admits at most the one that shows it others' count
        wait_until(refused_on_two, 5.0, interval=0.25, what="gateway 2 refuses")
        assert ok2 <= 2 and ok1 + ok2 <= limit + 3, (ok1, ok2)
        health = stack.api("GET", "/api/health").json()
        assert not any("rate limits" in reason for reason in health["reasons"]), health

        # Redis gone: each gateway counts in memory (a new route's limit holds
        # per gateway) and /api/health says degraded
        redis.stop()
        wait_until(
            lambda: any("rate limits" in reason for reason in stack.api("GET", "/api/health").json()["reasons"]),
            10.0,
            what="/api/health degraded",
        )
        health = stack.api("GET", "/api/health").json()
        assert health["status"] == "degraded", health
        stack.put_route("fallback.test", [stack.backend("a")], rateLimit={"requests": 2, "windowSeconds": 3600})
        wait_until(lambda: "RateLimit-Limit" in stack.get("/echo", host="fallback.test").headers, 5.0, what="policy")
        codes = [stack.get("/echo", host="fallback.test").status_code for _ in range(3)]
        assert codes[-1] == 429, codes
        # Redis back: not degraded any more
        redis.restart()
        wait_until(
            lambda: not any("rate limits" in reason for reason in stack.api("GET", "/api/health").json()["reasons"]),
            15.0,
            what="/api/health healthy again",
        )
    finally:
        redis.stop()


def requests_get(port, path, host=EDGE):
    import requests

    return requests.get("http://127.0.0.1:%d%s" % (port, path), headers={"Host": host}, timeout=10)


# --------------------------------------------------------------------------- authProvider


class Provider:
    """An authProvider (SPEC §4) in the test: answers by the Authorization it
    is sent, and keeps every query it got."""

    def __init__(self):
        (self.port,) = free_ports(1)
        self.queries = []
        self.release = threading.Event()
        queries, release = self.queries, self.release

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                q = json.loads(body)
                q["_content_type"] = self.headers.get("Content-Type")
                queries.append(q)
                auth = q["headers"]["authorization"] or ""
                status, extra = 401, {}
                if auth == "Bearer good":
                    status, extra = 200, {"X-User-Id": "u-42"}
                elif auth == "Bearer forbidden":
                    status = 403
                elif auth == "Bearer boom":
                    status = 500
                elif auth == "Bearer slow":
                    release.wait(10)
                    status = 200
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/check" % self.port

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.close()


def test_auth_provider(make_stack, provider):
    stack = make_stack()
    stack.put_route(EDGE, [stack.backend("a")], authProvider=provider.url, authCacheMs=60000)
    wait_status(stack, EDGE, "/echo", 401)

    def call(token, path="/echo", **kw):
        h = {"Authorization": "Bearer " + token} if token else {}
        h.update(kw.pop("headers", {}))
        return stack.get(path, host=EDGE, headers=h, **kw)

    r = call("good", "/echo?x=1", headers={"Cookie": "sid=abc", "X-User-Id": "mallory"})
    assert r.status_code == 200, r.text
    assert lower_headers(r.json())["x-user-id"] == "u-42"  # the provider's, never the client's
    q = provider.queries[-1]
    assert q["_content_type"] == "application/json"
    assert (q["method"], q["host"], q["path"], q["clientIp"]) == ("GET", EDGE, "/echo?x=1", "127.0.0.1")
    assert q["headers"] == {"authorization": "Bearer good", "cookie": "sid=abc"}
    assert call("forbidden").status_code == 403
    assert call("nope").status_code == 401
    assert call(None).status_code == 401
    assert call("boom").status_code == 503
    # answers are cached per (credentials, route) for authCacheMs: no new call
    n = len(provider.queries)
    for _ in range(3):
        assert call("good", headers={"Cookie": "sid=abc"}).status_code == 200
        assert call("forbidden").status_code == 403
    assert len(provider.queries) == n
    # 503s are never cached
    assert call("boom").status_code == 503
    assert len(provider.queries) == n + 1


def test_auth_provider_timeout_and_unreachable(make_stack, provider):
    stack = make_stack()
    stack.put_route(EDGE, [stack.backend("a")], authProvider=provider.url, authCacheMs=0)
    wait_status(stack, EDGE, "/echo", 401)
    # no answer within 2 s: 503 (and the request never went upstream)
    r = stack.get("/echo", host=EDGE, headers={"Authorization": "Bearer slow"}, timeout=10)
    assert r.status_code == 503, r.text
    assert 1.8 <= r.elapsed.total_seconds() < 5, r.elapsed
    # a client that goes away while its check is out: cancelled, nothing else happens
    before = len(provider.queries)
    raw = socket.create_connection(("127.0.0.1", stack.http_port), timeout=5)
    raw.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer slow\r\n\r\n" % EDGE.encode())
    wait_until(lambda: len(provider.queries) > before, 5.0, what="the provider asked")
    raw.close()
    provider.release.set()
    assert stack.get("/echo", host=EDGE, headers={"Authorization": "Bearer good"}).status_code == 200
    # a provider that refuses connections: 503 at once
    from stack import closed_port

    stack.put_route("gone.test", [stack.backend("a")], authProvider="http://127.0.0.1:%d/check" % closed_port())
    wait_status(stack, "gone.test", "/echo", 503)
    counters, _ = stack.pong("gateway")
    assert counters.get("authp.timeouts", 0) >= 1 and counters.get("authp.failures", 0) >= 2, counters
