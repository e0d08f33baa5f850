"""End-to-end test of a full disk under the router's file store (issue 14;
SPEC §5: a change is in the store before its 2xx; §13: degrade, never crash).

The router's ROUTER_STATE_FILE is put on a small tmpfs mounted for the test
(we are root), and the tmpfs is filled with a filler file. Then:

- a route PUT and a route POST are refused with 503 and the error shape
  (code "unavailable"), and nothing changed: the routes, the configuration
  version (X-Config-Version, the versions list), the traffic of the existing
  route, and the state file on disk (the same bytes, valid JSON, no temp
  file left behind); the router stays alive and answers ping;
- with the filler deleted, the same change succeeds (201), is served, is in
  the state file, and a restarted router loads it.
"""

import errno
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from stack import Stack, wait_until

API = "/api/v1"
DEMO = "demo.test"
NEW = "diskfull.test"
HELLO_A = "Hello from Server A (Region 1)"


def _mount_tmpfs(size="256k"):
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (make test runs as root, as CI does)")
    d = tempfile.mkdtemp(prefix="sydisk", dir="/tmp")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", d], capture_output=True, text=True)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.fail("cannot mount a tmpfs: %s" % p.stderr.strip())
    return d


def _umount(d):
    subprocess.run(["umount", d], capture_output=True)
    if os.path.ismount(d):
        subprocess.run(["umount", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def disk():
    d = _mount_tmpfs()
    try:
        yield d
    finally:
        _umount(d)


@pytest.fixture
def dstack(disk):
    """A started stack whose router keeps its state file on the tmpfs."""
    stacks = []
    s = None
    try:
        for attempt in range(3):
            s = Stack()
            s.state_file = os.path.join(disk, "state", "state.json")  # read by _actor_env at spawn
            stacks.append(s)
            try:
                s.start()
                break
            except BaseException:
                clash = any("Address already in use" in p.stdout_text() + p.stderr_text() for p in s.history)
                if clash and attempt < 2:
                    shutil.rmtree(s.dir, ignore_errors=True)
                    continue
                raise
        yield s
    finally:
        # stop the router before the tmpfs is unmounted (the disk fixture's
        # finalizer runs after this one)
        problems = []
        for st in stacks:
            problems.extend(st.stop())
        if problems:
            pytest.fail("teardown found problems:\n  %s" % "\n  ".join(problems), pytrace=False)


def fill(directory):
    """Fill the file system of directory to the last byte; returns the filler's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    if os.write(fd, block) < len(block):
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    st = os.statvfs(directory)
    assert st.f_bavail == 0, "the tmpfs still has %d blocks free" % st.f_bavail
    # a new file cannot get a byte
    probe = os.path.join(directory, "probe")
    with pytest.raises(OSError) as e:
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
    assert e.value.errno == errno.ENOSPC, e.value
    os.unlink(probe)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def assert_unavailable(r):
    assert r.status_code == 503, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    err = r.json()["error"]
    assert set(err) >= {"code", "message", "field"}, err
    assert err["code"] == "unavailable", err
    assert isinstance(err["message"], str) and "nothing changed" in err["message"], err
    assert err["field"] is None, err
    return err


def snapshot(s):
    routes = s.api("GET", API + "/routes")
    assert routes.status_code == 200, routes.text
    versions = s.api("GET", API + "/config/versions")
    assert versions.status_code == 200, versions.text
    return {
        "routes": sorted(r["vHost"] for r in routes.json()),
        "demo": _strip(s.api("GET", API + "/routes/" + DEMO).json()),
        "version": int(routes.headers["X-Config-Version"]),
        "versions": versions.json(),
    }


def _strip(route):
    route = dict(route)
    route["backends"] = [
        {k: v for k, v in b.items() if k not in ("isDead", "deadSince", "failureCount", "latencyMs")}
        for b in route.get("backends", [])
    ]
    return route


def test_disk_full_refuses_the_change_and_keeps_the_old_state(dstack, disk):
    s = dstack
    state_dir = os.path.dirname(s.state_file)
    assert os.path.ismount(disk)
    before_bytes = read(s.state_file)
    before_doc = json.loads(before_bytes)
    assert [r["vHost"] for r in before_doc["routes"]] == [DEMO]
    before = snapshot(s)
    assert before["routes"] == [DEMO] and before["version"] == before_doc["version"]
    assert s.get("/", host=DEMO).status_code == 200

    filler = fill(disk)
    route = {"vHost": NEW, "backends": [s.backend("a")]}

    # ---- full: every change refused, nothing changed
    refused = [
        s.api("PUT", API + "/routes/" + NEW, route),
        s.api("POST", API + "/routes", route),
        s.api("PUT", API + "/routes/" + DEMO, {"vHost": DEMO, "backends": [s.backend("a")]}),
        s.api("DELETE", API + "/routes/" + DEMO),
    ]
    for r in refused:
        assert_unavailable(r)
        if "X-Config-Version" in r.headers:
            assert int(r.headers["X-Config-Version"]) == before["version"], r.headers
    assert snapshot(s) == before
    assert s.api("GET", API + "/routes/" + NEW).status_code == 404
    assert read(s.state_file) == before_bytes
    assert json.loads(read(s.state_file)) == before_doc
    assert sorted(os.listdir(state_dir)) == ["state.json"], os.listdir(state_dir)  # no temp file left
    # the traffic: the old route served, the refused one not
    for _ in range(5):
        r = s.get("/", host=DEMO)
        assert r.status_code == 200, r.text
    assert s.get("/", host=NEW).status_code == 404
    # the router did not crash and still answers
    assert s.procs["router"].alive()
    pong, out = s.pong("router")
    assert pong, out
    log = s.logs("router")
    assert "cannot save the configuration" in log and "No space left on device" in log, log[-2000:]

    # ---- space again: the same change succeeds and is stored
    os.unlink(filler)
    r = s.api("PUT", API + "/routes/" + NEW, route)
    assert r.status_code == 201, r.text
    after = snapshot(s)
    assert after["version"] == before["version"] + 1
    assert after["routes"] == sorted([DEMO, NEW])
    assert after["versions"][0]["version"] == after["version"]
    s.wait_served(NEW)
    assert HELLO_A in s.get("/", host=NEW).text
    doc = json.loads(read(s.state_file))
    assert doc["version"] == after["version"]
    assert sorted(r["vHost"] for r in doc["routes"]) == sorted([DEMO, NEW])
    assert sorted(os.listdir(state_dir)) == ["state.json"]

    # ---- a restarted router loads it
    assert s.terminate("router") == 0
    s.restart("router")

    def loaded():
        r = s.api("GET", API + "/routes/" + NEW, timeout=2)
        return r.status_code == 200 and int(r.headers["X-Config-Version"]) == after["version"]

    wait_until(loaded, 10, interval=0.05, what="the restarted router serving version %d" % after["version"])
    assert snapshot(s)["versions"] == after["versions"]
    s.wait_served(NEW)
    assert HELLO_A in s.get("/", host=NEW).text
    assert s.get("/", host=DEMO).status_code == 200
