"""End-to-end tests of the regions registry (SPEC §5 `/regions`, §7): PUT
new (201) and again (200), GET lists it, bad bodies are 400 naming the
field with nothing changed, DELETE 204 then 404, the registry survives a
router restart (state file), and new leases carry the current public
address (SPEC §3: a request for region 2 at a region-1 gateway goes to
region 2's public address).
"""

import requests

from stack import closed_port, wait_until

HELLO_B = "Hello from Server B (Region 2)"
DEMO = "demo.test"
REGIONS = "/api/v1/regions"


def assert_error(r, status, field):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    err = r.json()["error"]
    assert err["field"] == field, err
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    return err


def regions(stack):
    r = stack.api("GET", REGIONS)
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    return r.json()


def test_regions_put_get_delete(stack):
    assert regions(stack) == []
    r = stack.api("PUT", REGIONS + "/2", {"publicAddress": "r2.example.net"})
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "2", "publicAddress": "r2.example.net:80"}
    v1 = int(r.headers["X-Config-Version"])
    r = stack.api("PUT", REGIONS + "/2", {"publicAddress": "10.9.0.2:8080"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "2", "publicAddress": "10.9.0.2:8080"}
    assert int(r.headers["X-Config-Version"]) == v1 + 1
    # GET -> edit -> PUT: the id sent back is accepted
    r = stack.api("PUT", REGIONS + "/3", {"id": "3", "publicAddress": "[2001:db8::3]"})
    assert r.status_code == 201, r.text
    assert regions(stack) == [
        {"id": "2", "publicAddress": "10.9.0.2:8080"},
        {"id": "3", "publicAddress": "[2001:db8::3]:80"},
    ]

    before = stack.api("GET", REGIONS)
    bad = [
        ("/2", {"publicAddress": "a.example:0"}, None, "publicAddress"),
        ("/2", {"publicAddress": "a.example:65536"}, None, "publicAddress"),
        ("/2", {"publicAddress": 80}, None, "publicAddress"),
        ("/2", {"publicAddress": "::1"}, None, "publicAddress"),
        ("/2", {"publicAddress": ""}, None, "publicAddress"),
        ("/2", {}, None, "publicAddress"),
        ("/2", {"publicAddress": "a.example", "extra": True}, None, "extra"),
        ("/2", {"id": "9", "publicAddress": "a.example"}, None, "id"),
        ("/2", None, '{"publicAddress": "a.example", "publicAddress": "b.example"}', "publicAddress"),
        ("/2", None, '{"publicAddress": ', None),
        ("/2", None, "[]", None),
        ("/a%20b", {"publicAddress": "a.example"}, None, "id"),
    ]
    for path, body, raw, field in bad:
        r = stack.api("PUT", REGIONS + path, body, raw=raw)
        assert_error(r, 400, field)
    after = stack.api("GET", REGIONS)
    assert after.json() == before.json()
    assert after.headers["X-Config-Version"] == before.headers["X-Config-Version"]

    r = stack.api("DELETE", REGIONS + "/3")
    assert r.status_code == 204, r.text
    assert r.content == b""
    r = stack.api("DELETE", REGIONS + "/3")
    assert_error(r, 404, None)
    assert regions(stack) == [{"id": "2", "publicAddress": "10.9.0.2:8080"}]

    # wrong methods and unknown paths
    r = stack.api("POST", REGIONS, {"publicAddress": "a.example"})
    assert r.status_code == 405, r.text
    r = stack.api("GET", REGIONS + "/2/x")
    assert_error(r, 404, None)


def test_regions_survive_a_router_restart(stack):
    r = stack.api("PUT", REGIONS + "/2", {"publicAddress": "r2.example.net:8443"})
    assert r.status_code == 201, r.text
    assert stack.terminate("router") == 0
    stack.restart("router")
    stack.wait_ready(timeout=20)
    wait_until(
        lambda: stack.api("GET", REGIONS, timeout=2).status_code == 200,
        20.0,
        what="GET /regions after the router restart",
    )
    assert regions(stack) == [{"id": "2", "publicAddress": "r2.example.net:8443"}]
    r = stack.api("DELETE", REGIONS + "/2")
    assert r.status_code == 204, r.text
    assert regions(stack) == []


def test_new_leases_carry_the_new_public_address(stack):
    # the gateway is in region 1; backend B is in region 2: a request for
    # region 2 is sent to region 2's public address once it has one
    def served_by_b():
        r = stack.get("/", host=DEMO, headers={"x-region": "2"}, timeout=2)
        return r.status_code == 200 and r.text == HELLO_B

    wait_until(served_by_b, 5.0, what="region 2 served by B directly")

    dead = closed_port()
    r = stack.api("PUT", REGIONS + "/2", {"publicAddress": "127.0.0.1:%d" % dead})
    assert r.status_code == 201, r.text

    def not_served():
        r = stack.get("/", host=DEMO, headers={"x-region": "2"}, timeout=5)
        return r.status_code >= 500

    # the closed public address is used: region 2 no longer answers
    wait_until(not_served, 5.0, what="region 2 sent to the closed public address")

    r = stack.api("PUT", REGIONS + "/2", {"publicAddress": "127.0.0.1:%d" % stack.port_b})
    assert r.status_code == 200, r.text
    wait_until(served_by_b, 15.0, what="region 2 served through its new public address")
    assert regions(stack) == [{"id": "2", "publicAddress": "127.0.0.1:%d" % stack.port_b}]
    # direct requests to region 1 are unaffected
    r = stack.get("/", host=DEMO, headers={"x-region": "1"}, timeout=5)
    assert r.status_code == 200, r.text
