"""End-to-end test of the dashboard (web/dashboard/, SPEC §14,
docs/dashboard.md) in a real Chromium: tests/browser/dashboard_page.mjs
(playwright-core) drives the page against a whole stack with ADMIN_TOKEN set.

The stack: every actor, the two demo backends and the route demo.test
(backend-a in region 1, backend-b in region 2); healthd probes every 500 ms
(a killed backend must show dead within that, plus the event's way); apid
serves the page from the repository's web/ (APID_WEB_DIR).

First the static side through the gateway's admin listener, without a token:
/dashboard is a 301 to /dashboard/, every file of web/dashboard/ comes back
byte for byte with its type, ETag, no-cache and nosniff, a matching
If-None-Match is a 304, HEAD has GET's length, a traversal is a 404, while
/api/... still needs the token.

Then the script. It prints "NEED <what>" when the stack must do something a
page cannot, and this test does it and answers "OK ..." on its stdin:
traffic to demo.test, SIGKILL of backend B, two route PUTs (it answers their
versions and the vHost the second one added), apid killed and started again
with a route PUT made while the page's stream is down (the reconnect, with
Last-Event-ID of the old apid's run, gets `reset` and the page reads its
state again), and the router stopped and started again (a call failing with
the API's own message). Afterwards the
test checks through the API what the page did: backend-a out of maintenance
again, and the rollback as the current version (the second change undone).

Screenshots (1280x800 and 375x667, viewport and whole page) are saved in the
test's tmp_path under screenshots/, and their paths printed, as the chat page
test does; the script's output is in dashboard_page.log beside them. With
DASHBOARD_README_PNG=<path> the script also saves the README's 1280x800
screenshot there (at most 150 KB).

The browser, node or playwright-core missing is a failure, not a skip
(scripts/deps.sh test installs them).
"""

import os
import threading
import time

import requests

from node_script import NodeScript
from stack import REPO, RawConn, wait_until
from test_chat_page import BROWSER_DIR, CHROMIUM, check_tools, node_binary

WAIT = 15.0
TOKEN = "dashboard-e2e-token"
WEB_DIR = os.path.join(REPO, "web")
PAGE_DIR = os.path.join(WEB_DIR, "dashboard")
SCRIPT = os.path.join(BROWSER_DIR, "dashboard_page.mjs")
SCRIPT_TIMEOUT = 300.0  # the whole browser script
HEALTH_MS = 500
ENV = {
    "HEALTHD_INTERVAL": "%dms" % HEALTH_MS,
    "HEALTHD_TIMEOUT": "400ms",
    "HEALTHD_RECOVERY_INTERVAL": "%dms" % HEALTH_MS,
    "APID_WEB_DIR": WEB_DIR,
}
TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}


def page_files():
    """Every file of web/dashboard/ as a path below it ('views/routes.js')."""
    out = []
    for root, dirs, files in os.walk(PAGE_DIR):
        dirs.sort()
        for name in sorted(files):
            out.append(os.path.relpath(os.path.join(root, name), PAGE_DIR))
    return out


def check_static(stack):
    """The page's files through the admin listener, no token needed."""
    admin = stack.admin_url
    r = requests.get(admin + "/dashboard", allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["Location"] == "/dashboard/", (r.status_code, r.headers)
    files = page_files()
    assert "index.html" in files and "app.js" in files, files
    for rel in files + [""]:
        with open(os.path.join(PAGE_DIR, rel or "index.html"), "rb") as f:
            want = f.read()
        r = requests.get(admin + "/dashboard/" + rel, timeout=5)
        assert r.status_code == 200, (rel, r.status_code, r.text[:200])
        assert r.content == want, rel
        ctype = TYPES[os.path.splitext(rel or "index.html")[1]]
        assert r.headers["Content-Type"].startswith(ctype), (rel, r.headers)
        assert r.headers["Cache-Control"] == "no-cache", (rel, r.headers)
        assert r.headers["X-Content-Type-Options"] == "nosniff", (rel, r.headers)
        etag = r.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"'), etag
        # the ETag is a hash of the bytes: the same bytes, the same ETag
        again = requests.get(admin + "/dashboard/" + rel, timeout=5)
        assert again.headers["ETag"] == etag, rel
        r304 = requests.get(admin + "/dashboard/" + rel, headers={"If-None-Match": etag}, timeout=5)
        assert r304.status_code == 304 and r304.content == b"", (rel, r304.status_code)
        head = requests.head(admin + "/dashboard/" + rel, timeout=5)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(want)), (rel, head.headers)
    r = requests.get(admin + "/dashboard/", timeout=5)
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], r.headers
    # anything not loaded, and every traversal, is a 404 (raw: no client normalizes the path)
    for path in ("/dashboard/nope.js", "/dashboard/..%2f..%2fetc%2fpasswd", "/dashboard/../api/v1/routes",
                 "/dashboard/%2e%2e/README.md", "/dashboard/.hidden", "/dashboard/views/"):
        with RawConn(stack.admin_port) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n" % path).encode())
            resp = c.read_response()
        assert resp.status == 404, (path, resp)
    r = requests.post(admin + "/dashboard/", timeout=5)
    assert r.status_code == 405 and "GET" in r.headers.get("Allow", ""), (r.status_code, r.headers)
    # the page holds no data; the API it calls does
    assert requests.get(admin + "/api/v1/routes", timeout=5).status_code == 401


class Script(NodeScript):
    """dashboard_page.mjs running (tests/e2e/node_script.py)."""

    def __init__(self, admin_url, out_dir, log_path):
        env = dict(os.environ, ADMIN_TOKEN=TOKEN, HEALTH_MS=str(HEALTH_MS), CHROMIUM=CHROMIUM)
        env.pop("README_PNG", None)
        if os.environ.get("DASHBOARD_README_PNG"):
            env["README_PNG"] = os.path.abspath(os.environ["DASHBOARD_README_PNG"])
        super().__init__([node_binary(), SCRIPT, admin_url, out_dir], BROWSER_DIR, env, log_path)

    def next_need(self, deadline):
        """The next "NEED <what>" line's what; None when the script ended (or the deadline passed)."""
        return self.next_line(lambda line: line[5:].strip() if line.startswith("NEED ") else None, deadline)

    def answer(self, text):
        self.write(text)


class Driver:
    """What the script asks of the stack."""

    def __init__(self, stack):
        self.stack = stack
        self.traffic = None
        self.statuses = []
        self.changes = None

    def _send_traffic(self):
        session = requests.Session()
        for _ in range(300):
            self.statuses.append(self.stack.get("/", host=self.stack.DEMO_VHOST, session=session, timeout=5).status_code)
            time.sleep(0.005)  # paced: about 2 s of requests
        session.close()

    def do(self, what):
        if what == "traffic":
            self.traffic = threading.Thread(target=self._send_traffic, daemon=True)
            self.traffic.start()
            return "OK"
        if what == "kill backend-b":
            # the traffic has ended first: backend B is found dead by healthd's probes
            self.traffic.join(timeout=60)
            assert self.statuses.count(200) == len(self.statuses) == 300, self.statuses
            self.stack.kill("backend-b")
            return "OK"
        if what == "config changes":
            versions = []
            for name in ("extra-1.dashboard.test", "extra-2.dashboard.test"):
                route = {"vHost": name, "backends": [self.stack.backend("a")]}
                r = self.stack.api("PUT", "/api/v1/routes/" + name, route)
                assert r.status_code == 201, (r.status_code, r.text)
                versions.append(int(r.headers["x-config-version"]))
            assert versions[1] == versions[0] + 1, versions
            self.changes = versions
            return "OK %d %d extra-2.dashboard.test" % (versions[0], versions[1])
        if what == "restart apid":
            # the page's stream ends with its apid; the change below is made
            # before the page is back (its retry is 2 s), so only the
            # reconnect (reset: another apid's run) can make it show
            self.stack.kill("apid")
            self.stack.restart("apid")
            self.stack.wait_api()
            name = "extra-3.dashboard.test"
            r = self.stack.api("PUT", "/api/v1/routes/" + name, {"vHost": name, "backends": [self.stack.backend("a")]})
            assert r.status_code == 201, (r.status_code, r.text)
            return "OK " + name
        if what == "stop router":
            self.stack.kill("router")
            # apid has forgotten it: a call answers 503 at once
            wait_until(lambda: self.stack.api("GET", "/api/v1/routes", timeout=5).status_code == 503, WAIT,
                       what="GET /api/v1/routes 503 without a router")
            return "OK"
        if what == "start router":
            self.stack.restart("router")
            self.stack.wait_api()
            return "OK"
        raise AssertionError("the script needs %r, which this test does not know" % what)


def test_dashboard_page(make_stack, tmp_path, timings):
    check_tools()
    stack = make_stack(gateway_env={"ADMIN_TOKEN": TOKEN}, actor_env=ENV)
    check_static(stack)

    out_dir = str(tmp_path / "screenshots")
    log_path = str(tmp_path / "dashboard_page.log")
    print("dashboard page: %s/dashboard; output in %s" % (stack.admin_url, tmp_path))
    driver = Driver(stack)
    started = time.monotonic()
    deadline = started + SCRIPT_TIMEOUT
    script = Script(stack.admin_url, out_dir, log_path)
    rc = None
    try:
        while True:
            need = script.next_need(deadline)
            if need is None:
                break
            script.answer(driver.do(need))
    finally:
        rc = script.finish(60)
        print(script.text())
        print("screenshots: %s" % ", ".join(sorted(os.path.join(out_dir, n) for n in os.listdir(out_dir)))
              if os.path.isdir(out_dir) else "screenshots: none")
    assert rc == 0, "dashboard_page.mjs failed (exit %r); its output is above and in %s" % (rc, log_path)
    timings.record("dashboard page script, load to every step passed", time.monotonic() - started)
    for name in ("dashboard_1280x800.png", "dashboard_375x667.png"):
        assert os.path.getsize(os.path.join(out_dir, name)) > 0, name

    # what the page did, as the API sees it
    route = stack.api("GET", "/api/v1/routes/" + stack.DEMO_VHOST).json()
    a = [b for b in route["backends"] if b["id"] == "backend-a"][0]
    assert a["isDead"] is False, a  # marked dead, then alive again from the page
    versions = stack.api("GET", "/api/v1/config/versions").json()
    v1, v2 = driver.changes
    rollbacks = [v for v in versions if v["version"] > v2 and "rollback" in v["summary"].lower()]
    assert len(rollbacks) == 1, versions[:4]
    assert stack.api("GET", "/api/v1/routes/extra-2.dashboard.test").status_code == 404
    assert stack.api("GET", "/api/v1/routes/extra-1.dashboard.test").status_code == 200
    assert stack.api("GET", "/api/v1/routes/extra-3.dashboard.test").status_code == 200
