"""End-to-end tests of the configuration calls of the control API (SPEC §5):
certificates, configuration versions, diff and rollback, through the admin
listener with an independent HTTP client (requests), on the real binaries.

- certificates made at test time with the openssl CLI (EC P-256): POST 201
  new / 200 replaced with the public view and never the key, wildcard and
  default ("*") domains, GET lists them without any private key, a key of
  another certificate and a garbage PEM are 400 on their field, DELETE 204
  then 404, and they survive a router restart;
- versions: every change is listed newest first with version/at/by/summary
  (by "local" without a token, the token's id, never the token, with one);
  GET /config/versions/:v is the whole configuration then, keys redacted;
- diff: routes, backends, regions and certificates added, removed, changed;
- rollback: a new version, the traffic follows (a route added after v is 404
  again, a backend removed after v serves again), rolling back the rollback
  restores, an unknown version is 404 and changes nothing;
- many distinct bad requests: each answered with the error shape naming the
  field, and nothing changed (versions, routes, regions, certificates); a
  route's ssl pair is checked like a certificate body (BAD_PAIRS);
- the same on the PostgreSQL store, across a router restart.

One module-scoped stack serves every test but two (the admin token, and
PostgreSQL); the tests run in file order on it, each on its own names.
"""

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import psycopg2
import pytest

from pg import PgTmp
from stack import Stack, wait_until

HELLO_A = "Hello from Server A (Region 1)"
HELLO_B = "Hello from Server B (Region 2)"
DEMO = "demo.test"
API = "/api/v1"
RUNTIME = ("isDead", "deadSince", "failureCount", "latencyMs")
PUBLIC_CERT_FIELDS = {"domain", "issuer", "subject", "notBefore", "notAfter"}


# ---------------------------------------------------------------------- fixtures


def _start_stack(**kw):
    # as conftest.make_stack: a free port may be taken before our process
    # binds it; start again on new ports when a listener says so
    for attempt in range(3):
        s = Stack(**kw)
        try:
            return s.start()
        except BaseException:
            clash = any("Address already in use" in p.stdout_text() + p.stderr_text() for p in s.history)
            if clash and attempt < 2:
                shutil.rmtree(s.dir, ignore_errors=True)
                continue
            raise


@pytest.fixture(scope="module")
def mstack():
    """One stack for the module (file store, route demo.test)."""
    s = _start_stack()
    yield s
    problems = s.stop()
    if problems:
        pytest.fail("teardown found problems (stack kept in %s):\n  %s" % (s.dir, "\n  ".join(problems)), pytrace=False)


class Pem:
    """A key and a self-signed certificate made by the openssl CLI."""

    def __init__(self, directory, name, cn, ecparam=False):
        self.key_path = os.path.join(directory, name + ".key")
        self.cert_path = os.path.join(directory, name + ".crt")
        subj = ["-subj", "/CN=" + cn, "-days", "30", "-out", self.cert_path]
        if ecparam:  # the key as `openssl ecparam -genkey` writes it: EC PARAMETERS, then EC PRIVATE KEY
            steps = [
                ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-out", self.key_path],
                ["openssl", "req", "-x509", "-key", self.key_path] + subj,
            ]
        else:
            steps = [["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", self.key_path] + subj]  # fmt: skip
        for argv in steps:
            subprocess.run(argv, check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        with open(self.key_path) as f:
            self.key = f.read()
        with open(self.cert_path) as f:
            self.cert = f.read()
        self.cn = cn

    def body(self, domain):
        return {"domain": domain, "key": self.key, "cert": self.cert}

    def cert_lines(self):
        return [ln for ln in self.cert.splitlines() if ln and not ln.startswith("-----")]

    def key_lines(self):
        """The base64 lines of the private key (none may appear in an answer)."""
        return [ln for ln in self.key.splitlines() if ln and not ln.startswith("-----")]


@pytest.fixture(scope="module")
def pems():
    d = tempfile.mkdtemp(prefix="cfgpem", dir="/tmp")
    out = {}
    try:
        for name, cn in (
            ("api", "api.cfg.test"),
            ("api2", "api.cfg.test"),
            ("wild", "*.wild.cfg.test"),
            ("default", "default.cfg.test"),
            ("other", "other.cfg.test"),
            ("ver", "ver.cfg.test"),
            ("diff1", "diff.cfg.test"),
            ("diff2", "diff.cfg.test"),
            ("pg", "pg.cfg.test"),
        ):
            out[name] = Pem(d, name, cn)
        out["ecparam"] = Pem(d, "ecparam", "ecparam.cfg.test", ecparam=True)
        assert out["ecparam"].key.startswith("-----BEGIN EC PARAMETERS-----"), out["ecparam"].key[:40]
        enc = subprocess.run(
            ["openssl", "pkey", "-in", out["other"].key_path, "-aes256", "-passout", "pass:e2e"],
            check=True, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        out["encrypted_key"] = enc.stdout
        assert "ENCRYPTED" in enc.stdout
        yield out
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------- helpers


def assert_error(r, status, field):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    err = r.json()["error"]
    assert set(err) >= {"code", "message", "field"}, err
    assert isinstance(err["code"], str) and err["code"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["field"] == field, err
    return err


def ok(r, *statuses):
    assert r.status_code in statuses, (r.request.method, r.request.url, r.status_code, r.text)
    return r


def get_json(s, path):
    return ok(s.api("GET", API + path), 200).json()


def versions(s):
    return get_json(s, "/config/versions")


def current_version(s):
    return versions(s)[0]["version"]


def header_version(r):
    return int(r.headers["X-Config-Version"])


def strip_runtime(routes):
    return [dict(rt, backends=[{k: v for k, v in b.items() if k not in RUNTIME} for b in rt["backends"]]) for rt in routes]


def snapshot(s):
    """The configuration as the API shows it (runtime backend state left out)."""
    return {
        "version": current_version(s),
        "routes": strip_runtime(get_json(s, "/routes")),
        "regions": get_json(s, "/regions"),
        "certificates": get_json(s, "/certificates"),
    }


def assert_same_config(got, want):
    """routes, regions and certificates equal, each reported apart."""
    # GET /routes and /regions list in insertion order, but a rollback
    # rebuilds the configuration sorted by key (SPEC §5 is silent on the
    # order): compared regardless of order
    for kind, key in (("regions", "id"), ("certificates", "domain")):
        assert sorted(got[kind], key=lambda x: x[key]) == sorted(want[kind], key=lambda x: x[key]), (kind, got[kind], want[kind])
    g = {rt["vHost"]: rt for rt in got["routes"]}
    w = {rt["vHost"]: rt for rt in want["routes"]}
    assert sorted(g) == sorted(w), (sorted(g), sorted(w))
    for vhost in w:
        assert g[vhost] == w[vhost], (vhost, g[vhost], w[vhost])


def by_domain(certs):
    return {c["domain"]: c for c in certs}


def served_text(s, vhost, text, timeout=3.0):
    def check():
        r = s.get("/", host=vhost, timeout=2)
        return r.status_code == 200 and r.text == text

    wait_until(check, timeout, what="%s served by %r" % (vhost, text))


def assert_no_private_key(text, *pems):
    assert "PRIVATE KEY" not in text, text[:500]
    for p in pems:
        for line in p.key_lines():
            assert line not in text, "key material of %s in the answer" % p.cn


def parse_at(at):
    assert isinstance(at, str) and at.endswith("Z"), at
    return datetime.datetime.strptime(at.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")


def restart_router(s):
    assert s.terminate("router") == 0
    s.restart("router")
    s.wait_ready(timeout=20)
    wait_until(lambda: s.api("GET", API + "/routes", timeout=2).status_code == 200, 20.0, what="apid after restart")


# ---------------------------------------------------------------------- 1. certificates


def test_certificates_post_get_delete_and_restart(mstack, pems):
    s = mstack
    api, api2, wild, default, other = pems["api"], pems["api2"], pems["wild"], pems["default"], pems["other"]

    r = ok(s.api("POST", API + "/certificates", api.body("api.cfg.test")), 201)
    body = r.json()
    assert set(body) == PUBLIC_CERT_FIELDS, body
    assert body["domain"] == "api.cfg.test"
    assert body["subject"] == "CN=api.cfg.test" and body["issuer"] == "CN=api.cfg.test", body
    not_before, not_after = parse_at(body["notBefore"]), parse_at(body["notAfter"])
    assert datetime.timedelta(days=29) < not_after - not_before <= datetime.timedelta(days=31), body
    assert_no_private_key(r.text, api)
    v1 = header_version(r)

    # again, another key and certificate for the same domain, in another case: replaced
    r = ok(s.api("POST", API + "/certificates", api2.body("API.Cfg.Test")), 200)
    assert r.json()["domain"] == "api.cfg.test"
    assert set(r.json()) == PUBLIC_CERT_FIELDS
    assert header_version(r) == v1 + 1
    assert_no_private_key(r.text, api, api2)
    # and the very same body once more: 200 again
    r = ok(s.api("POST", API + "/certificates", api2.body("api.cfg.test")), 200)
    assert r.json()["domain"] == "api.cfg.test"

    r = ok(s.api("POST", API + "/certificates", wild.body("*.wild.cfg.test")), 201)
    assert r.json()["domain"] == "*.wild.cfg.test" and r.json()["subject"] == "CN=*.wild.cfg.test"
    r = ok(s.api("POST", API + "/certificates", default.body("*")), 201)
    assert r.json()["domain"] == "*"

    # a key written by `openssl ecparam -genkey` (EC PARAMETERS, then EC PRIVATE KEY)
    r = ok(s.api("POST", API + "/certificates", {"domain": "ecparam.cfg.test", "key": pems["ecparam"].key, "cert": pems["ecparam"].cert}), 201)
    assert r.json()["subject"] == "CN=ecparam.cfg.test"
    assert_no_private_key(r.text, pems["ecparam"])
    ok(s.api("DELETE", API + "/certificates/ecparam.cfg.test"), 204)

    r = ok(s.api("GET", API + "/certificates"), 200)
    assert r.headers["Content-Type"].startswith("application/json")
    assert_no_private_key(r.text, api, api2, wild, default)
    listed = by_domain(r.json())
    for c in r.json():
        assert set(c) == PUBLIC_CERT_FIELDS, c
    assert {"api.cfg.test", "*.wild.cfg.test", "*"} <= set(listed), listed
    # the replacement is what is listed (its own notBefore/notAfter came from api2's certificate)
    assert listed["api.cfg.test"]["subject"] == "CN=api.cfg.test"

    before = snapshot(s)
    # the key of another certificate
    r = s.api("POST", API + "/certificates", {"domain": "api.cfg.test", "key": other.key, "cert": api2.cert})
    err = assert_error(r, 400, "key")
    assert_no_private_key(r.text, other, api2)
    assert "BEGIN" not in err["message"], err
    # garbage PEM
    r = s.api("POST", API + "/certificates", {"domain": "garbage.cfg.test", "key": api.key, "cert": "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"})
    assert_error(r, 400, "cert")
    r = s.api("POST", API + "/certificates", {"domain": "garbage.cfg.test", "key": api.key, "cert": "hello"})
    assert_error(r, 400, "cert")
    assert snapshot(s) == before

    # DELETE 204, then 404
    r = ok(s.api("DELETE", API + "/certificates/*.wild.cfg.test"), 204)
    assert r.content == b""
    r = s.api("DELETE", API + "/certificates/%2A.wild.cfg.test")
    assert_error(r, 404, None)
    assert "*.wild.cfg.test" not in by_domain(get_json(s, "/certificates"))

    # survives a router restart (the file store)
    kept = get_json(s, "/certificates")
    kept_versions = versions(s)
    then = get_json(s, "/config/versions/%d" % (v1 + 1))
    restart_router(s)
    assert get_json(s, "/certificates") == kept
    assert versions(s) == kept_versions
    # the history behind the versions too: an older configuration and a diff
    assert get_json(s, "/config/versions/%d" % (v1 + 1)) == then
    d = get_json(s, "/config/diff?from=%d&to=%d" % (v1 - 1, kept_versions[0]["version"]))
    assert d["certificates"]["added"] == ["*", "api.cfg.test"], d
    s.wait_served(DEMO, timeout=5.0)


# ---------------------------------------------------------------------- 2. versions


def test_versions_list_and_configuration_then(mstack, pems):
    s = mstack
    ver = pems["ver"]
    v0 = current_version(s)
    start = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=5)
    steps = [
        ("PUT", "/routes/ver.cfg.test", {"backends": [s.backend("a")]}, 201, "ver.cfg.test"),
        ("POST", "/routes/ver.cfg.test/backends", s.backend("b"), 201, "backend-b"),
        ("PUT", "/regions/ver7", {"publicAddress": "r7.cfg.test:8080"}, 201, "ver7"),
        ("POST", "/certificates", ver.body("ver.cfg.test"), 201, "ver.cfg.test"),
        ("POST", "/routes/ver.cfg.test/backends/backend-b/dead", None, 200, "backend-b"),
    ]
    for i, (method, path, body, status, _) in enumerate(steps):
        r = ok(s.api(method, API + path, body), status)
        assert header_version(r) == v0 + 1 + i, (path, r.headers)

    listed = versions(s)
    nums = [e["version"] for e in listed]
    assert nums == sorted(nums, reverse=True) and len(set(nums)) == len(nums), nums
    assert nums[:5] == [v0 + 5, v0 + 4, v0 + 3, v0 + 2, v0 + 1], nums
    for entry, (_, _, _, _, name) in zip(listed[:5], reversed(steps)):
        assert set(entry) == {"version", "at", "by", "summary"}, entry
        assert entry["by"] == "local", entry
        assert parse_at(entry["at"]) >= start, entry
        assert isinstance(entry["summary"], str) and name in entry["summary"], entry
    ats = [parse_at(e["at"]) for e in listed[:5]]
    assert ats == sorted(ats, reverse=True), ats

    # the whole configuration as of the version with the certificate (before maintenance)
    r = ok(s.api("GET", API + "/config/versions/%d" % (v0 + 4)), 200)
    assert_no_private_key(r.text, ver, pems["api"], pems["api2"], pems["default"])
    then = r.json()
    assert then["version"] == v0 + 4
    routes = {rt["vHost"]: rt for rt in then["routes"]}
    assert [b["id"] for b in routes["ver.cfg.test"]["backends"]] == ["backend-a", "backend-b"]
    assert {"id": "ver7", "publicAddress": "r7.cfg.test:8080"} in then["regions"]
    certs = by_domain(then["certificates"])
    assert certs["ver.cfg.test"]["key"] == "[redacted]"
    assert "BEGIN CERTIFICATE" in certs["ver.cfg.test"]["cert"]
    assert all(c["key"] == "[redacted]" for c in then["certificates"]), then["certificates"]

    # the version before the region: no region, no certificate, one backend
    then = get_json(s, "/config/versions/%d" % (v0 + 2))
    routes = {rt["vHost"]: rt for rt in then["routes"]}
    assert [b["id"] for b in routes["ver.cfg.test"]["backends"]] == ["backend-a", "backend-b"]
    assert "ver7" not in [g["id"] for g in then["regions"]]
    assert "ver.cfg.test" not in by_domain(then["certificates"])
    then = get_json(s, "/config/versions/%d" % v0)
    assert "ver.cfg.test" not in [rt["vHost"] for rt in then["routes"]]
    # the current version is the current configuration
    now = get_json(s, "/config/versions/%d" % (v0 + 5))
    assert sorted(rt["vHost"] for rt in now["routes"]) == sorted(rt["vHost"] for rt in get_json(s, "/routes"))

    # a route's secrets are redacted too: ssl.key, the users' hashes, the token digests
    hash_, digest = "$1$e2esalt$abcdefghijklmnopqrstuv", "0f" * 32
    ok(s.api("PUT", API + "/routes/sec.cfg.test", {
        "backends": [], "ssl": {"key": ver.key, "cert": ver.cert},
        "auth": {"type": "basic", "users": {"alice": hash_, "bob": hash_}},
    }), 201)  # fmt: skip
    # GET never shows the route's key; sent back as it came, the stored key is kept
    got = ok(s.api("GET", API + "/routes/sec.cfg.test"), 200).json()
    assert got["ssl"]["key"] == "[redacted]"
    assert_no_private_key(ok(s.api("GET", API + "/routes"), 200).text, ver)
    got["timeoutMs"] = 12345
    ok(s.api("PUT", API + "/routes/sec.cfg.test", got), 200)
    with open(s.state_file) as f:
        assert ver.key.strip().splitlines()[1] in f.read()  # the real key is still stored
    other = dict(got, ssl={"key": "[redacted]", "cert": pems["other"].cert})
    err = s.api("PUT", API + "/routes/sec.cfg.test", other)
    assert err.status_code == 400 and err.json()["error"]["field"] == "ssl.key", err.text
    ok(s.api("PUT", API + "/routes/tok.cfg.test", {"backends": [], "auth": {"type": "bearer", "tokens": [digest, "1e" * 32]}}), 201)
    v = current_version(s)
    r = ok(s.api("GET", API + "/config/versions/%d" % v), 200)
    assert_no_private_key(r.text, ver)
    assert hash_ not in r.text and digest not in r.text
    routes = {rt["vHost"]: rt for rt in r.json()["routes"]}
    assert routes["sec.cfg.test"]["ssl"]["key"] == "[redacted]"
    assert "BEGIN CERTIFICATE" in routes["sec.cfg.test"]["ssl"]["cert"]
    assert routes["sec.cfg.test"]["auth"]["users"] == {"alice": "[redacted]", "bob": "[redacted]"}
    assert routes["tok.cfg.test"]["auth"]["tokens"] == ["[redacted]", "[redacted]"]
    r = ok(s.api("GET", API + "/config/diff?from=%d&to=%d" % (v0, v)), 200)
    assert_no_private_key(r.text, ver)
    assert hash_ not in r.text and digest not in r.text
    assert r.json()["routes"]["added"] == ["sec.cfg.test", "tok.cfg.test", "ver.cfg.test"]
    ok(s.api("DELETE", API + "/routes/sec.cfg.test"), 204)
    ok(s.api("DELETE", API + "/routes/tok.cfg.test"), 204)

    # a version with leading zeros is the same version; one trailing slash is ignored
    assert get_json(s, "/config/versions/%05d" % (v0 + 4)) == get_json(s, "/config/versions/%d" % (v0 + 4))
    assert get_json(s, "/config/versions/") == versions(s)

    assert_error(s.api("GET", API + "/config/versions/999999"), 404, None)
    assert_error(s.api("GET", API + "/config/versions/abc"), 400, "version")


def test_versions_by_is_the_token_id_not_the_token(make_stack):
    token = "cfg-e2e-Secret-Token-0123456789"
    TOKEN_ID = "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
    s = make_stack(gateway_env={"ADMIN_TOKEN": token})
    r = ok(s.api("PUT", API + "/regions/t1", {"publicAddress": "t1.cfg.test"}), 201)
    r = ok(s.api("GET", API + "/config/versions"), 200)
    assert token not in r.text
    listed = r.json()
    assert listed[0]["summary"].startswith("PUT region t1"), listed
    for entry in listed:
        # the token's id: "token-" and 12 hex digits of its SHA-256, never the token
        assert entry["by"] == TOKEN_ID, entry
        assert entry["by"] != token
    r = ok(s.api("GET", API + "/config/versions/%d" % listed[0]["version"]), 200)
    assert token not in r.text
    assert r.json()["by"] == TOKEN_ID
    # without the token: 401, and a rollback without it changes nothing
    r = s.api("GET", API + "/config/versions", token=False)
    assert_error(r, 401, None)
    r = s.api("POST", API + "/config/rollback/%d" % (listed[0]["version"] - 1), token=False)
    assert_error(r, 401, None)
    assert ok(s.api("GET", API + "/config/versions"), 200).json() == listed
    assert get_json(s, "/regions") == [{"id": "t1", "publicAddress": "t1.cfg.test:80"}]


# ---------------------------------------------------------------------- 3. diff


def test_diff_names_what_changed(mstack, pems):
    s = mstack
    d1, d2 = pems["diff1"], pems["diff2"]
    s.put_route("keep.diff.test", [s.backend("a"), s.backend("b")])
    s.put_route("gone.diff.test", [s.backend("a")])
    ok(s.api("PUT", API + "/regions/d11", {"publicAddress": "d11.cfg.test"}), 201)
    ok(s.api("PUT", API + "/regions/d13", {"publicAddress": "d13.cfg.test"}), 201)
    ok(s.api("POST", API + "/certificates", d1.body("old.diff.test")), 201)
    ok(s.api("POST", API + "/certificates", d1.body("drop.diff.test")), 201)
    a = current_version(s)

    s.put_route("new.diff.test", [s.backend("a")])
    ok(s.api("DELETE", API + "/routes/gone.diff.test"), 204)
    s.put_route(
        "keep.diff.test",
        [s.backend("a", weight=5), {"id": "c", "hostname": "127.0.0.1", "port": s.port_b, "region": "2"}],
        strategy="RANDOM",
    )
    ok(s.api("PUT", API + "/regions/d11", {"publicAddress": "d11.cfg.test:8443"}), 200)
    ok(s.api("PUT", API + "/regions/d12", {"publicAddress": "d12.cfg.test"}), 201)
    ok(s.api("DELETE", API + "/regions/d13"), 204)
    ok(s.api("POST", API + "/certificates", d2.body("old.diff.test")), 200)
    ok(s.api("POST", API + "/certificates", d2.body("new.diff.test")), 201)
    ok(s.api("DELETE", API + "/certificates/drop.diff.test"), 204)
    b = current_version(s)
    assert b == a + 9

    r = ok(s.api("GET", API + "/config/diff?from=%d&to=%d" % (a, b)), 200)
    assert_no_private_key(r.text, d1, d2)
    diff = r.json()
    assert diff["from"] == a and diff["to"] == b
    assert diff["routes"]["added"] == ["new.diff.test"]
    assert diff["routes"]["removed"] == ["gone.diff.test"]
    [changed] = diff["routes"]["changed"]
    assert changed["vHost"] == "keep.diff.test"
    assert changed["fields"] == ["strategy"], changed
    assert changed["backends"] == {
        "added": ["c"],
        "removed": ["backend-b"],
        "changed": [{"id": "backend-a", "fields": ["weight"]}],
    }, changed
    assert diff["regions"] == {
        "added": ["d12"],
        "removed": ["d13"],
        "changed": [{"id": "d11", "fields": ["publicAddress"]}],
    }
    assert diff["certificates"]["added"] == ["new.diff.test"]
    assert diff["certificates"]["removed"] == ["drop.diff.test"]
    [cert] = diff["certificates"]["changed"]
    assert cert["domain"] == "old.diff.test"
    assert {"cert", "key"} <= set(cert["fields"]), cert

    # the other way round: added and removed swap
    back = get_json(s, "/config/diff?from=%d&to=%d" % (b, a))
    assert back["routes"]["added"] == ["gone.diff.test"] and back["routes"]["removed"] == ["new.diff.test"]
    assert back["routes"]["changed"][0]["backends"]["added"] == ["backend-b"]
    assert back["regions"]["added"] == ["d13"] and back["regions"]["removed"] == ["d12"]
    assert back["certificates"]["added"] == ["drop.diff.test"]
    # from a version to itself: nothing
    same = get_json(s, "/config/diff?from=%d&to=%d" % (b, b))
    for kind in ("routes", "regions", "certificates"):
        assert same[kind] == {"added": [], "removed": [], "changed": []}, same

    assert_error(s.api("GET", API + "/config/diff?from=%d" % a), 400, "to")
    assert_error(s.api("GET", API + "/config/diff?from=%d&to=%d&verbose=1" % (a, b)), 400, "verbose")


# ---------------------------------------------------------------------- 4. rollback


def test_rollback_and_rollback_of_the_rollback(mstack, pems):
    s = mstack
    s.put_route("keep.rb.test", [s.backend("a"), s.backend("b")])
    served_text(s, "keep.rb.test", HELLO_A)
    v = current_version(s)
    at_v = snapshot(s)

    # after v: a new route, backend A removed from keep.rb.test (region 2 then
    # serves it), backend B of demo.test in maintenance, a certificate deleted
    s.put_route("new.rb.test", [s.backend("a")])
    ok(s.api("DELETE", API + "/routes/keep.rb.test/backends/backend-a"), 204)
    ok(s.api("POST", API + "/routes/demo.test/backends/backend-b/dead"), 200)
    ok(s.api("DELETE", API + "/certificates/API.CFG.TEST"), 204)
    s.wait_served("new.rb.test", timeout=2.0)
    served_text(s, "keep.rb.test", HELLO_B)
    changed = snapshot(s)
    assert changed["version"] == v + 4
    assert "api.cfg.test" not in by_domain(changed["certificates"])

    r = ok(s.api("POST", API + "/config/rollback/%d" % v), 200)
    assert r.json() == {"version": v + 5, "rolledBackTo": v, "changes": 4}, r.text
    assert header_version(r) == v + 5
    listed = versions(s)
    assert listed[0]["version"] == v + 5 and listed[0]["by"] == "local"
    assert "rollback" in listed[0]["summary"] and str(v) in listed[0]["summary"], listed[0]
    # the traffic follows: the route added after v is gone, the removed backend serves again
    s.wait_served("new.rb.test", timeout=2.0, expect=404)
    assert s.get("/", host="new.rb.test").text == "Service Not Found"
    served_text(s, "keep.rb.test", HELLO_A, timeout=2.0)
    after = snapshot(s)
    assert after["version"] == v + 5
    assert_same_config(after, at_v)
    assert_error(s.api("GET", API + "/routes/new.rb.test"), 404, None)
    demo = get_json(s, "/routes/demo.test")
    assert [b["isDead"] for b in demo["backends"]] == [False, False], demo
    assert "api.cfg.test" in by_domain(after["certificates"])
    # the store holds the certificate's real key again, never the redaction mark
    with open(s.state_file) as f:
        stored = f.read()
    assert "[redacted]" not in stored
    # (router/rt_store.h: the file's "certificates" are the current ones, with their keys)
    current = by_domain(json.loads(stored)["certificates"])
    assert pems["api2"].key_lines()[0] in current["api.cfg.test"]["key"].replace("\n", ""), "not api2's key"

    # rolling back the rollback restores what was there before it
    r = ok(s.api("POST", API + "/config/rollback/%d" % (v + 4)), 200)
    assert r.json() == {"version": v + 6, "rolledBackTo": v + 4, "changes": 4}, r.text
    s.wait_served("new.rb.test", timeout=2.0)
    served_text(s, "keep.rb.test", HELLO_B, timeout=2.0)
    again = snapshot(s)
    assert again["version"] == v + 6
    assert_same_config(again, changed)
    listed = versions(s)
    assert [e["version"] for e in listed[:2]] == [v + 6, v + 5]
    assert all("rollback" in e["summary"] for e in listed[:2]), listed[:2]
    # the configuration recorded for the new version is the one rolled back to
    then, now = get_json(s, "/config/versions/%d" % (v + 4)), get_json(s, "/config/versions/%d" % (v + 6))
    for k in ("routes", "regions", "certificates"):
        assert then[k] == now[k], k

    # an unknown version: 404, nothing changes
    r = s.api("POST", API + "/config/rollback/999999")
    assert_error(r, 404, None)
    assert snapshot(s) == again
    s.wait_served("new.rb.test", timeout=1.0)
    # end of the test: demo.test's backend B out of maintenance again
    ok(s.api("POST", API + "/routes/demo.test/backends/backend-b/alive"), 200)
    ok(s.api("POST", API + "/certificates", pems["api2"].body("api.cfg.test")), 201)


# ---------------------------------------------------------------------- 5. bad requests

SHA = "a" * 64


def _body(spec, pems):
    return spec(pems) if callable(spec) else spec


# (id, method, path, json body (or a function of the pems), raw body, status, field)
BAD = [
    # routes
    ("route-weight-zero", "PUT", "/routes/bad.cfg.test", {"backends": [{"hostname": "127.0.0.1", "port": 80, "weight": 0}]}, None, 400, "backends[0].weight"),
    ("route-retries-over", "PUT", "/routes/bad.cfg.test", {"backends": [], "retries": 11}, None, 400, "retries"),
    ("route-timeout-fraction", "PUT", "/routes/bad.cfg.test", {"backends": [], "timeoutMs": 1.5}, None, 400, "timeoutMs"),
    ("route-max-body-zero", "PUT", "/routes/bad.cfg.test", {"backends": [], "maxBodyBytes": 0}, None, 400, "maxBodyBytes"),
    ("route-header-connection", "PUT", "/routes/bad.cfg.test", {"backends": [], "headers": {"Connection": "close"}}, None, 400, "headers.Connection"),
    ("route-rate-limit-tier", "PUT", "/routes/bad.cfg.test", {"backends": [], "rateLimit": {"tier": "lenient"}}, None, 400, "rateLimit.tier"),
    ("route-auth-token-not-hex", "PUT", "/routes/bad.cfg.test", {"backends": [], "auth": {"type": "bearer", "tokens": ["zz"]}}, None, 400, "auth.tokens[0]"),
    ("route-auth-provider-ftp", "PUT", "/routes/bad.cfg.test", {"backends": [], "authProvider": "ftp://auth.cfg.test/"}, None, 400, "authProvider"),
    ("route-chat-path-relative", "PUT", "/routes/bad.cfg.test", {"backends": [], "chatPath": "chat"}, None, 400, "chatPath"),
    ("route-ssl-without-cert", "PUT", "/routes/bad.cfg.test", {"backends": [], "ssl": {"key": "-----BEGIN PRIVATE KEY-----"}}, None, 400, "ssl.cert"),
    ("route-probe-udp", "PUT", "/routes/bad.cfg.test", {"backends": [{"hostname": "127.0.0.1", "port": 80, "probe": "udp"}]}, None, 400, "backends[0].probe"),
    ("route-default-id-collides", "PUT", "/routes/bad.cfg.test", {"backends": [{"hostname": "h.cfg.test", "port": 1}, {"id": "h.cfg.test:1", "hostname": "h.cfg.test", "port": 2}]}, None, 400, "backends[1].id"),
    ("route-path-vhost-invalid", "PUT", "/routes/-bad.cfg.test", {"backends": []}, None, 400, "vHost"),
    ("route-body-array", "PUT", "/routes/bad.cfg.test", None, "[]", 400, None),
    ("route-body-empty", "PUT", "/routes/bad.cfg.test", None, "", 400, None),
    ("route-delete-unknown", "DELETE", "/routes/nothing.cfg.test", None, None, 404, None),
    ("route-get-unknown", "GET", "/routes/nothing.cfg.test", None, None, 404, None),
    # backends
    ("backend-missing-port", "POST", "/routes/demo.test/backends", {"hostname": "127.0.0.1"}, None, 400, "port"),
    ("backend-unknown-field", "POST", "/routes/demo.test/backends", {"host": "127.0.0.1", "hostname": "127.0.0.1", "port": 80}, None, 400, "host"),
    ("backend-hostname-space", "POST", "/routes/demo.test/backends", {"hostname": "a b", "port": 80}, None, 400, "hostname"),
    ("backend-region-space", "POST", "/routes/demo.test/backends", {"hostname": "127.0.0.1", "port": 80, "region": "a b"}, None, 400, "region"),
    ("backend-route-unknown", "POST", "/routes/nothing.cfg.test/backends", {"hostname": "127.0.0.1", "port": 80}, None, 404, None),
    ("backend-delete-unknown", "DELETE", "/routes/demo.test/backends/nothing", None, None, 404, None),
    ("backend-dead-unknown", "POST", "/routes/demo.test/backends/nothing/dead", None, None, 404, None),
    ("backend-alive-unknown-route", "POST", "/routes/nothing.cfg.test/backends/backend-a/alive", None, None, 404, None),
    # regions
    ("region-delete-bad-id", "DELETE", "/regions/a%20b", None, None, 400, "id"),
    ("region-address-null", "PUT", "/regions/9", {"publicAddress": None}, None, 400, "publicAddress"),
    ("region-port-not-a-number", "PUT", "/regions/9", {"publicAddress": "r9.cfg.test:http"}, None, 400, "publicAddress"),
    # certificates
    ("cert-missing-domain", "POST", "/certificates", lambda p: {"key": p["other"].key, "cert": p["other"].cert}, None, 400, "domain"),
    ("cert-domain-with-port", "POST", "/certificates", lambda p: p["other"].body("other.cfg.test:443"), None, 400, "domain"),
    ("cert-unknown-field", "POST", "/certificates", lambda p: dict(p["other"].body("other.cfg.test"), chain=""), None, 400, "chain"),
    ("cert-not-a-string", "POST", "/certificates", lambda p: {"domain": "other.cfg.test", "key": p["other"].key, "cert": 5}, None, 400, "cert"),
    ("cert-key-encrypted", "POST", "/certificates", lambda p: {"domain": "other.cfg.test", "key": p["encrypted_key"], "cert": p["other"].cert}, None, 400, "key"),
    ("cert-key-is-a-certificate", "POST", "/certificates", lambda p: {"domain": "other.cfg.test", "key": p["other"].cert, "cert": p["other"].cert}, None, 400, "key"),
    ("cert-chain-over-10", "POST", "/certificates", lambda p: {"domain": "other.cfg.test", "key": p["other"].key, "cert": p["other"].cert * 11}, None, 400, "cert"),
    ("cert-duplicate-key", "POST", "/certificates", None, lambda p: '{"domain": "other.cfg.test", "domain": "x.cfg.test", "key": %s, "cert": %s}' % (json.dumps(p["other"].key), json.dumps(p["other"].cert)), 400, "domain"),
    ("cert-body-over-1mib", "POST", "/certificates", lambda p: dict(p["other"].body("other.cfg.test"), pad="x" * (1024 * 1024 + 10)), None, 413, None),
    ("cert-delete-unknown", "DELETE", "/certificates/nothing.cfg.test", None, None, 404, None),
    ("cert-delete-bad-domain", "DELETE", "/certificates/a..b", None, None, 400, "domain"),
    ("cert-get-one-405", "PUT", "/certificates", lambda p: p["other"].body("other.cfg.test"), None, 405, None),
    # versions
    ("versions-negative", "GET", "/config/versions/-1", None, None, 400, "version"),
    ("versions-over-64-bits", "GET", "/config/versions/18446744073709551616", None, None, 400, "version"),
    ("versions-post-405", "POST", "/config/versions", {}, None, 405, None),
    # diff
    ("diff-missing-from", "GET", "/config/diff?to=1", None, None, 400, "from"),
    ("diff-from-twice", "GET", "/config/diff?from=1&from=2&to=1", None, None, 400, "from"),
    ("diff-from-not-a-version", "GET", "/config/diff?from=one&to=1", None, None, 400, "from"),
    ("diff-to-unknown-version", "GET", "/config/diff?from=1&to=999999", None, None, 404, None),
    # rollback
    ("rollback-not-a-version", "POST", "/config/rollback/abc", None, None, 400, "version"),
    ("rollback-signed-version", "POST", "/config/rollback/+1", None, None, 400, "version"),
    ("rollback-with-a-body", "POST", "/config/rollback/1", {"version": 1}, None, 400, None),
    ("rollback-unknown-version", "POST", "/config/rollback/999999", None, None, 404, None),
    ("rollback-get-405", "GET", "/config/rollback/1", None, None, 405, None),
]


# A route's `ssl` pair is checked as POST /certificates checks it (SPEC §4, §5).
BAD_PAIRS = [
    ("route-ssl-key-of-another-certificate", "PUT", "/routes/bad.cfg.test",
     lambda p: {"backends": [], "ssl": {"key": p["other"].key, "cert": p["api"].cert}}, None, 400, "ssl.key"),
]  # fmt: skip

PARAMS = [pytest.param(*c[1:], id=c[0]) for c in BAD + BAD_PAIRS]


@pytest.mark.parametrize("method,path,body,raw,status,field", PARAMS)
def test_bad_request_changes_nothing(mstack, pems, method, path, body, raw, status, field):
    s = mstack
    before = snapshot(s)
    r = s.api(method, API + path, _body(body, pems), raw=_body(raw, pems))
    if r.status_code < 300 and method == "PUT" and path.startswith("/routes/"):
        # accepted by mistake (a known gap): take it away for the next test
        ok(s.api("DELETE", API + path), 204)
    err = assert_error(r, status, field)
    if status == 405:
        assert r.headers.get("Allow"), r.headers
    # never the PEM quoted (a message may name the block it expected)
    for line in pems["other"].key_lines() + pems["other"].cert_lines():
        assert line not in r.text, err
    assert snapshot(s) == before


# ---------------------------------------------------------------------- 6. PostgreSQL


@pytest.fixture(scope="module")
def pg_url():
    c = PgTmp()
    try:
        c.start()
        conn = psycopg2.connect(c.url)
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE sy_cfg_api")
        conn.close()
        yield c.url.rsplit("/", 1)[0] + "/sy_cfg_api"
    finally:
        c.stop()


def pg_sql(url, query):
    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute(query)
        return cur.fetchall()
    finally:
        conn.close()


def test_postgres_store_certificates_versions_rollback(make_stack, pg_url, pems):
    s = make_stack(actor_env={"DATABASE_URL": pg_url})
    pem = pems["pg"]
    # certificates
    r = ok(s.api("POST", API + "/certificates", pem.body("pg.cfg.test")), 201)
    assert set(r.json()) == PUBLIC_CERT_FIELDS and r.json()["subject"] == "CN=pg.cfg.test"
    ok(s.api("POST", API + "/certificates", pem.body("PG.cfg.test")), 200)
    ok(s.api("POST", API + "/certificates", pems["default"].body("*")), 201)
    r = ok(s.api("GET", API + "/certificates"), 200)
    assert_no_private_key(r.text, pem, pems["default"])
    assert sorted(c["domain"] for c in r.json()) == ["*", "pg.cfg.test"]
    assert_error(s.api("POST", API + "/certificates", {"domain": "pg.cfg.test", "key": pems["other"].key, "cert": pem.cert}), 400, "key")

    # versions
    v = current_version(s)
    s.put_route("new.pg.test", [s.backend("a")])
    ok(s.api("DELETE", API + "/certificates/pg.cfg.test"), 204)
    s.wait_served("new.pg.test", timeout=2.0)
    listed = versions(s)
    assert [e["version"] for e in listed] == list(range(v + 2, 0, -1))
    assert all(e["by"] == "local" for e in listed), listed
    assert [e["summary"] for e in listed[:2]] == ["DELETE certificate pg.cfg.test", "PUT route new.pg.test"], listed
    r = ok(s.api("GET", API + "/config/versions/%d" % v), 200)
    assert_no_private_key(r.text, pem, pems["default"])
    assert sorted(c["domain"] for c in r.json()["certificates"]) == ["*", "pg.cfg.test"]
    assert all(c["key"] == "[redacted]" for c in r.json()["certificates"])
    assert "new.pg.test" not in [rt["vHost"] for rt in r.json()["routes"]]

    # rollback (the certificate is back, with its real key in the table), and
    # the rollback of the rollback
    r = ok(s.api("POST", API + "/config/rollback/%d" % v), 200)
    assert r.json() == {"version": v + 3, "rolledBackTo": v, "changes": 2}
    s.wait_served("new.pg.test", timeout=2.0, expect=404)
    assert "pg.cfg.test" in by_domain(get_json(s, "/certificates"))
    [(key,)] = pg_sql(pg_url, "SELECT key FROM switchyard_certificates WHERE domain = 'pg.cfg.test'")
    assert pem.key_lines()[0] in key.replace("\n", ""), key[:40]
    r = ok(s.api("POST", API + "/config/rollback/%d" % (v + 2)), 200)
    assert r.json()["version"] == v + 4
    s.wait_served("new.pg.test", timeout=2.0)
    assert "pg.cfg.test" not in by_domain(get_json(s, "/certificates"))
    assert_error(s.api("POST", API + "/config/rollback/999999"), 404, None)
    assert current_version(s) == v + 4
    ok(s.api("POST", API + "/config/rollback/%d" % v), 200)
    s.wait_served("new.pg.test", timeout=2.0, expect=404)

    # a router restart keeps certificates, versions and the history behind them
    certs, listed = get_json(s, "/certificates"), versions(s)
    assert sorted(certs, key=lambda c: c["domain"]) == certs and len(certs) == 2
    then = get_json(s, "/config/versions/%d" % (v + 2))
    restart_router(s)
    assert get_json(s, "/certificates") == certs
    assert versions(s) == listed
    assert get_json(s, "/config/versions/%d" % (v + 2)) == then
    s.wait_served("new.pg.test", timeout=5.0, expect=404)
    # and a rollback still works from the history read back
    r = ok(s.api("POST", API + "/config/rollback/%d" % (v + 1)), 200)
    assert r.json()["version"] == v + 6
    s.wait_served("new.pg.test", timeout=2.0)
