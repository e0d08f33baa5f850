"""End-to-end tests of the hop marker (SPEC §3, §7): a request forwarded to
another region's public address carries `X-Switchyard-Hop: 1`; a request
that carries it from a trusted peer (GATEWAY_TRUSTED_PROXIES) is served by
that gateway's own region and never forwarded again (503 `Service
Unavailable - VM not responding` when nothing is healthy there); from any
other peer the marker means nothing and is removed.

Two gateways on one bus (one router, one balancer): the stack's gateway in
region 1 and a second one in region 2 (start_gateway below), whose HTTP
address is region 2's public address. The access lines of each gateway,
keyed by the X-Request-Id the client sends (the forwarding gateway passes it
on), count how many times each one saw a request.
"""

import json
import uuid

import requests

from stack import free_ports, wait_until

HOP = "hop.test"
HELLO_A = "Hello from Server A (Region 1)"
HELLO_B = "Hello from Server B (Region 2)"
VM_503 = "Service Unavailable - VM not responding"
TRUSTED = {"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
WAIT = 10.0  # seconds (sanitizer build)


class Gateway:
    """Another gateway process on the stack's bus (a name in stack.procs, so
    the stack stops it and checks its exit and stderr like the others)."""

    def __init__(self, stack, name, region, env):
        self.stack = stack
        self.name = name
        http_port, admin_port = free_ports(2)
        self.address = "127.0.0.1:%d" % http_port
        self.http_url = "http://" + self.address
        self.admin_url = "http://127.0.0.1:%d" % admin_port
        e = stack._actor_env("gateway")
        e.update(env)
        e["REGION"] = region
        e["INSTANCE_ID"] = "%s-e2e" % name
        e["GATEWAY_HTTP_ADDR"] = self.address
        e["GATEWAY_ADMIN_ADDR"] = "127.0.0.1:%d" % admin_port
        stack._spawn(name, "gateway", env_extra=e)
        wait_until(
            lambda: requests.get(self.admin_url + "/ready", timeout=2).status_code == 200,
            WAIT,
            interval=0.05,
            what="%s /ready 200" % name,
        )

    def get(self, path, host, headers=None, timeout=10):
        h = dict(headers or {})
        h["Host"] = host
        return requests.get(self.http_url + path, headers=h, timeout=timeout)


def start_gateway(stack, name="gateway2", region="2", env=None):
    return Gateway(stack, name, region, dict(env or {}))


def access_lines(stack, name, rid):
    out = []
    for line in stack.logs(name).splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg") == "access" and e.get("request_id") == rid:
            out.append(e)
    return out


def put_region(stack, region, address):
    r = stack.api("PUT", "/api/v1/regions/" + region, {"publicAddress": address})
    assert r.status_code in (200, 201), r.text


def new_rid():
    return "hop-" + uuid.uuid4().hex[:12]


def test_forwarded_once_and_served_locally(make_stack):
    # long leases: the region-1 gateway keeps its decision (a hop to region
    # 2) after backend B dies, so the dead case really reaches region 2
    stack = make_stack(
        gateway_env=dict(TRUSTED, GATEWAY_LEASE_TTL="120s"),
        actor_env={"HEALTHD_INTERVAL": "200ms", "HEALTHD_TIMEOUT": "300ms", "HEALTHD_RECOVERY_INTERVAL": "300ms"},
        demo_route=False,
    )
    gw2 = start_gateway(stack)
    put_region(stack, "2", gw2.address)
    stack.put_route(HOP, [stack.backend("b")])

    # x-region 2 at the region-1 gateway: forwarded to region 2's public
    # address (gateway 2), which serves it from B
    rid = new_rid()
    r = stack.get("/", host=HOP, headers={"x-region": "2", "X-Request-Id": rid}, timeout=5)
    assert (r.status_code, r.text) == (200, HELLO_B)
    wait_until(lambda: access_lines(stack, "gateway", rid) and access_lines(stack, "gateway2", rid), WAIT, what="both access lines")
    (one,) = access_lines(stack, "gateway", rid)
    assert (one["status"], one["upstream"]) == (200, "hop:2"), one
    (two,) = access_lines(stack, "gateway2", rid)
    assert (two["status"], two["upstream"]) == (200, "backend-b"), two
    print("forwarded: gateway %s -> gateway2 %s" % (one, two))

    # B dies: healthd says so, gateway 2 drops its lease holding B; gateway
    # 1's lease (a hop, not B) is kept, so it still forwards
    stack.kill("backend-b")
    wait_until(
        lambda: gw2.get("/", HOP, timeout=5).text == VM_503,
        WAIT,
        what="gateway 2 answering 503 for region 2",
    )
    rid = new_rid()
    r = stack.get("/", host=HOP, headers={"x-region": "2", "X-Request-Id": rid}, timeout=10)
    assert (r.status_code, r.text) == (503, VM_503)
    wait_until(lambda: access_lines(stack, "gateway", rid) and access_lines(stack, "gateway2", rid), WAIT, what="both access lines")
    # one request at each gateway: gateway 2 did not send it back
    lines1 = access_lines(stack, "gateway", rid)
    lines2 = access_lines(stack, "gateway2", rid)
    assert [(e["status"], e["upstream"]) for e in lines1] == [(503, "hop:2")], lines1
    assert [(e["status"], e["upstream"]) for e in lines2] == [(503, "")], lines2
    print("B dead: gateway %s\n        gateway2 %s" % (lines1, lines2))


def test_trusted_marker_is_never_forwarded_again(make_stack):
    # both regions have a public address (each gateway's) and a backend
    stack = make_stack(gateway_env=TRUSTED, demo_route=False)
    gw2 = start_gateway(stack)
    put_region(stack, "1", "127.0.0.1:%d" % stack.http_port)
    put_region(stack, "2", gw2.address)
    stack.put_route(HOP, [stack.backend("a"), stack.backend("b")])

    # unmarked, x-region 1 at gateway 2: forwarded to region 1 (gateway 1, A)
    rid = new_rid()
    r = gw2.get("/", HOP, headers={"x-region": "1", "X-Request-Id": rid})
    assert (r.status_code, r.text) == (200, HELLO_A)
    wait_until(lambda: access_lines(stack, "gateway", rid) and access_lines(stack, "gateway2", rid), WAIT, what="both access lines")
    assert [e["upstream"] for e in access_lines(stack, "gateway2", rid)] == ["hop:1"]

    # marked, from a trusted peer: gateway 2 serves it from its own region
    # (B) whatever the requested region, and gateway 1 never sees it
    rid = new_rid()
    marked = {"x-region": "1", "X-Request-Id": rid, "X-Switchyard-Hop": "1"}
    r = gw2.get("/", HOP, headers=marked)
    assert (r.status_code, r.text) == (200, HELLO_B)
    wait_until(lambda: access_lines(stack, "gateway2", rid), WAIT, what="gateway2's access line")
    assert [e["upstream"] for e in access_lines(stack, "gateway2", rid)] == ["backend-b"]
    assert access_lines(stack, "gateway", rid) == []

    # B in maintenance: 503 from gateway 2, still not forwarded to region 1
    r = stack.api("POST", "/api/v1/routes/%s/backends/backend-b/dead" % HOP)
    assert r.status_code == 200, r.text
    wait_until(lambda: gw2.get("/", HOP, headers=dict(marked, **{"X-Request-Id": new_rid()})).status_code == 503, WAIT)
    rid = new_rid()
    r = gw2.get("/", HOP, headers=dict(marked, **{"X-Request-Id": rid}))
    assert (r.status_code, r.text) == (503, VM_503)
    wait_until(lambda: access_lines(stack, "gateway2", rid), WAIT, what="gateway2's access line")
    assert [(e["status"], e["upstream"]) for e in access_lines(stack, "gateway2", rid)] == [(503, "")]
    assert access_lines(stack, "gateway", rid) == []
    # the same request without the marker still goes to region 1
    r = gw2.get("/", HOP, headers={"x-region": "1"})
    assert (r.status_code, r.text) == (200, HELLO_A)


def test_untrusted_marker_is_removed(make_stack):
    # gateway 1 trusts nobody; gateway 2 trusts 127.0.0.1 (gateway 1)
    stack = make_stack(demo_route=False)
    gw2 = start_gateway(stack, env=TRUSTED)
    put_region(stack, "2", gw2.address)
    stack.put_route(HOP, [stack.backend("a"), stack.backend("b")])

    # a client's marker means nothing at gateway 1: x-region 2 is routed as
    # usual (a hop to region 2, where gateway 1's own marker is believed),
    # not served by region 1 as a forwarded request would be
    rid = new_rid()
    r = stack.get("/", host=HOP, headers={"x-region": "2", "X-Request-Id": rid, "X-Switchyard-Hop": "1"})
    assert (r.status_code, r.text) == (200, HELLO_B)
    wait_until(lambda: access_lines(stack, "gateway", rid) and access_lines(stack, "gateway2", rid), WAIT, what="both access lines")
    assert [e["upstream"] for e in access_lines(stack, "gateway", rid)] == ["hop:2"]
    assert [e["upstream"] for e in access_lines(stack, "gateway2", rid)] == ["backend-b"]

    # and it does not reach the backend
    r = stack.get("/echo", host=HOP, headers={"X-Switchyard-Hop": "1"})
    assert r.status_code == 200, r.text
    headers = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert "x-switchyard-hop" not in headers, headers
    assert r.json().get("path") == "/echo"
