"""End-to-end tests of `switchyard routes` (tools/cli_routes.c): the control
API's routes from a terminal, against a whole stack.

The CLI runs as a subprocess from $SWITCHYARD_BIN_DIR in the stack's own
directory (so no stray .env is read), pointed at the stack's admin listener
through GATEWAY_ADMIN_ADDR or --admin. Its stderr must hold no sanitizer
report.
"""

import json
import os
import subprocess

import requests

from stack import BIN_DIR, SANITIZER_MARKERS, closed_port, sanitizer_env

CLI_TIMEOUT = 30  # seconds one CLI run may take (sanitizer build)


def run_cli(args, stack=None, env=None, stdin=None, cwd=None):
    """Run `switchyard routes ARGS`; returns (exit code, stdout, stderr)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    e.update(sanitizer_env())
    if stack is not None:
        e["GATEWAY_ADMIN_ADDR"] = "127.0.0.1:%d" % stack.admin_port
        cwd = cwd or stack.dir
    e.update(env or {})
    p = subprocess.run(
        [os.path.join(BIN_DIR, "switchyard"), "routes"] + list(args),
        env=e,
        cwd=cwd or "/",
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def write_json(stack, name, doc):
    path = os.path.join(stack.dir, name)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_apply_list_get_and_serve(stack):
    one = {"vHost": "one.cli.test", "strategy": "ROUND_ROBIN", "backends": [stack.backend("a")]}
    # a wildcard vHost: '*' travels percent-encoded in the path
    wild = {"vHost": "*.wild.cli.test", "backends": [stack.backend("b", region="1")]}
    path = write_json(stack, "routes.json", [one, wild])

    rc, out, err = run_cli(["apply", path], stack)
    assert rc == 0, err
    assert out.splitlines() == ["created one.cli.test", "created *.wild.cli.test"], out

    # again, one object from stdin: an update
    rc, out, err = run_cli(["apply", "-"], stack, stdin=json.dumps(one))
    assert rc == 0, err
    assert out.splitlines() == ["updated one.cli.test"], out

    rc, out, err = run_cli(["list"], stack)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["VHOST", "STRATEGY", "BACKENDS"], out
    row = [line for line in lines if line.startswith("one.cli.test ")]
    assert len(row) == 1, out
    assert "ROUND_ROBIN" in row[0]
    assert "backend-a=127.0.0.1:%d up" % stack.port_a in row[0], out
    row = [line for line in lines if line.startswith("*.wild.cli.test ")]
    assert len(row) == 1, out
    assert "backend-b=127.0.0.1:%d up" % stack.port_b in row[0], out

    rc, out, err = run_cli(["list", "--json"], stack)
    assert rc == 0, err
    routes = json.loads(out)
    assert {"one.cli.test", "*.wild.cli.test", stack.DEMO_VHOST} <= {r["vHost"] for r in routes}
    assert out.startswith("[\n"), "pretty-printed: %r" % out[:40]

    rc, out, err = run_cli(["get", "*.wild.cli.test"], stack)
    assert rc == 0, err
    route = json.loads(out)
    assert route["vHost"] == "*.wild.cli.test"
    assert [b["port"] for b in route["backends"]] == [stack.port_b]

    # --admin instead of GATEWAY_ADMIN_ADDR (which points nowhere here)
    rc, out, err = run_cli(
        ["get", "one.cli.test", "--admin", stack.admin_url + "/"],
        stack,
        env={"GATEWAY_ADMIN_ADDR": "127.0.0.1:%d" % closed_port()},
    )
    assert rc == 0, err
    assert json.loads(out)["backends"][0]["id"] == "backend-a"

    # the routes serve through the public listener
    stack.wait_served("one.cli.test")
    r = stack.get("/", host="one.cli.test", timeout=5)
    assert r.status_code == 200 and "Server A" in r.text, r.text
    stack.wait_served("x.wild.cli.test")
    r = stack.get("/", host="x.wild.cli.test", timeout=5)
    assert r.status_code == 200 and "Server B" in r.text, r.text


def test_apply_bad_file(stack):
    good = {"vHost": "good.cli.test", "backends": [stack.backend("a")]}
    bad = {"vHost": "bad.cli.test", "backends": [{"hostname": "127.0.0.1", "port": 70000}]}
    after = {"vHost": "after.cli.test", "backends": [stack.backend("a")]}
    path = write_json(stack, "bad.json", [good, bad, after])
    rc, out, err = run_cli(["apply", path], stack)
    assert rc == 1, (out, err)
    assert out.splitlines() == ["created good.cli.test"], out
    assert "400" in err and "backends[0].port" in err, err
    assert "/api/v1/routes/bad.cli.test" in err, err
    # stopped at the first error: nothing after it
    assert stack.api("GET", "/api/v1/routes/bad.cli.test").status_code == 404
    assert stack.api("GET", "/api/v1/routes/after.cli.test").status_code == 404

    # a route without vHost is named by its index, and nothing is sent
    path = write_json(stack, "novhost.json", [{"vHost": "first.cli.test", "backends": []}, {"backends": []}])
    rc, out, err = run_cli(["apply", path], stack)
    assert rc == 1
    assert "route [1] has no vHost" in err, err
    assert out == ""
    assert stack.api("GET", "/api/v1/routes/first.cli.test").status_code == 404

    # not JSON, duplicate keys, a missing file
    for name, text in (("broken.json", "[{"), ("dup.json", '{"vHost": "a.test", "vHost": "b.test", "backends": []}')):
        rc, out, err = run_cli(["apply", write_json(stack, name, text)], stack)
        assert rc == 1 and name in err, err
    rc, out, err = run_cli(["apply", os.path.join(stack.dir, "missing.json")], stack)
    assert rc == 1 and "missing.json" in err, err

    rc, out, err = run_cli(["get", "bad.cli.test"], stack)
    assert rc == 1
    assert "404" in err and "bad.cli.test" in err, err


def test_delete(stack):
    path = write_json(stack, "one.json", {"vHost": "gone.cli.test", "backends": [stack.backend("a")]})
    rc, out, err = run_cli(["apply", path], stack)
    assert rc == 0, err
    rc, out, err = run_cli(["delete", "gone.cli.test"], stack)
    assert rc == 0, err
    assert out.strip() == "deleted gone.cli.test"
    assert stack.api("GET", "/api/v1/routes/gone.cli.test").status_code == 404

    r = stack.api("DELETE", "/api/v1/routes/gone.cli.test")
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    rc, out, err = run_cli(["delete", "gone.cli.test"], stack)
    assert rc == 1
    assert "404" in err and message in err, err
    # the demo route is untouched
    rc, out, err = run_cli(["get", stack.DEMO_VHOST], stack)
    assert rc == 0, err


def test_admin_token(make_stack):
    token = "cli-e2e-token"
    s = make_stack(gateway_env={"ADMIN_TOKEN": token})
    r = requests.get(s.admin_url + "/api/v1/routes", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 401
    message = r.json()["error"]["message"]

    rc, out, err = run_cli(["list"], s, env={"ADMIN_TOKEN": token})
    assert rc == 0, err
    assert s.DEMO_VHOST in out

    rc, out, err = run_cli(["list", "--token", "wrong"], s, env={"ADMIN_TOKEN": token})
    assert rc == 1
    assert "401" in err and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert token not in err and "wrong" not in err

    rc, out, err = run_cli(["list"], s)
    assert rc == 1 and "401" in err, err

    path = write_json(s, "r.json", {"vHost": "tok.cli.test", "backends": [s.backend("a")]})
    rc, out, err = run_cli(["apply", path, "--token", "wrong"], s)
    assert rc == 1 and "401" in err, err
    assert s.api("GET", "/api/v1/routes/tok.cli.test").status_code == 404
    rc, out, err = run_cli(["apply", path, "--token", token], s)
    assert rc == 0 and out.strip() == "created tok.cli.test", err


def test_usage_and_connection_errors(tmp_path):
    cwd = str(tmp_path)
    for args in (
        [],
        ["frob"],
        ["get"],
        ["delete"],
        ["apply"],
        ["get", "a.test", "b.test"],
        ["list", "extra"],
        ["get", ""],
        ["list", "--timeout", "soon"],
        ["list", "--no-such-flag"],
        ["list", "--admin", "ftp://127.0.0.1:1"],
        ["list", "--admin-addr", "nowhere"],
    ):
        rc, out, err = run_cli(args, cwd=cwd)
        assert rc == 2, (args, rc, out, err)
        assert err.strip(), args
        assert out == "", (args, out)

    rc, out, err = run_cli(["--help"], cwd=cwd)
    assert rc == 0 and "apply" in out and "ADMIN_TOKEN" in out, out

    port = closed_port()
    rc, out, err = run_cli(["list", "--admin", "http://127.0.0.1:%d" % port, "--timeout", "2s"], cwd=cwd)
    assert rc == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "http://127.0.0.1:%d/api/v1/routes" % port in err, err
    rc, out, err = run_cli(["delete", "a.test"], env={"GATEWAY_ADMIN_ADDR": "127.0.0.1:%d" % port}, cwd=cwd)
    assert rc == 1 and "http://127.0.0.1:%d/api/v1/routes/a.test" % port in err, err
