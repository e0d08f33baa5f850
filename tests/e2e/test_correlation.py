"""End-to-end tests of request correlation (issue 8, item 4): a request id sent
by the client is in the gateway's access line and, at debug level, in a line
of every other actor that received a message about that request (router and
balancer for the decision, balancer and statsd for its metadata, healthd and
balancer for a failed upstream attempt); `switchyard tap --request-id ID`
shows exactly the bus messages about that one request: the decide, the pick,
the leases and the request.done batch that carries it.

GATEWAY_LEASE_TTL=0 makes every request ask for a decision, so the decide
and lease of the request are its own.
"""

import json
import os
import subprocess
import uuid

from stack import BIN_DIR, SANITIZER_MARKERS, sanitizer_env, wait_until

WAIT = 10.0  # seconds for a line to appear (sanitizer build)


def json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def lines_about(stack, name, rid):
    return [e for e in json_lines(stack.logs(name)) if e.get("request_id") == rid]


def has(stack, name, rid, msg, **fields):
    return any(
        e.get("msg") == msg and all(e.get(k) == v for k, v in fields.items()) for e in lines_about(stack, name, rid)
    )


class Tap:
    """`switchyard tap` as a subprocess, stopped by PID."""

    def __init__(self, stack, args):
        self.out_path = os.path.join(stack.dir, "tap-%s.out" % uuid.uuid4().hex[:8])
        self.err_path = self.out_path + ".err"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "BUS_DIR": stack.bus_dir}
        env.update(sanitizer_env())
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN_DIR, "switchyard"), "tap"] + list(args),
            env=env,
            cwd=stack.dir,
            stdout=self.out,
            stderr=self.err,
        )

    def lines(self):
        with open(self.out_path) as f:
            return json_lines(f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()
        with open(self.err_path) as f:
            err = f.read()
        for marker in SANITIZER_MARKERS:
            assert marker not in err, err
        assert self.proc.returncode == 0, err


def attached(stack, names):
    return all(any(e.get("msg") == "tap attached" for e in json_lines(stack.logs(n))) for n in names)


def test_request_id_in_every_actor_and_in_tap(make_stack):
    stack = make_stack(actor_env={"LOG_LEVEL": "debug"}, gateway_env={"GATEWAY_LEASE_TTL": "0"})
    rid = "corr-" + uuid.uuid4().hex
    tap = Tap(stack, ["--request-id", rid])
    try:
        wait_until(
            lambda: attached(stack, ("gateway", "router", "balancer", "statsd")), WAIT, what="tap attached everywhere"
        )
        r = stack.get("/", host=stack.DEMO_VHOST, headers={"X-Request-Id": rid})
        assert r.status_code == 200
        assert r.headers.get("X-Request-Id") == rid

        # the access line, and a debug line in every actor the request's messages reached
        wait_until(lambda: has(stack, "gateway", rid, "access", status=200), WAIT, what="access line")
        wait_until(
            lambda: has(stack, "router", rid, "bus message received", type="decide"), WAIT, what="router's line"
        )
        wait_until(
            lambda: has(stack, "balancer", rid, "bus message received", type="pick"), WAIT, what="balancer's pick line"
        )
        wait_until(
            lambda: has(stack, "balancer", rid, "request metadata received", type="request.done"),
            WAIT,
            what="balancer's request.done line",
        )
        wait_until(
            lambda: has(stack, "statsd", rid, "request metadata received", type="request.done", status=200),
            WAIT,
            what="statsd's line",
        )
        assert has(stack, "gateway", rid, "bus message sent", type="decide")

        # the tap: the decision's messages and the batch carrying the request
        want = {
            ("gateway", "out", "decide"),
            ("router", "in", "decide"),
            ("router", "out", "pick"),
            ("balancer", "in", "pick"),
            ("balancer", "out", "lease"),
            ("gateway", "in", "lease"),
            ("gateway", "out", "request.done"),
            ("statsd", "in", "request.done"),
        }

        def seen():
            return {(e["actor"], e["dir"], e["type"]) for e in tap.lines()}

        wait_until(lambda: want <= seen(), WAIT, what="tap lines %s" % sorted(want))
        for e in tap.lines():
            msg = e["msg"]
            if e["type"] == "request.done":
                assert rid in [item["rid"] for item in msg["items"]], e
            else:
                assert msg["rid"] == rid, e
    finally:
        tap.stop()

    # another request: none of its messages is shown by that tap, and its id is not ours
    other = "corr-" + uuid.uuid4().hex
    assert stack.get("/", host=stack.DEMO_VHOST, headers={"X-Request-Id": other}).status_code == 200
    assert not any(other in json.dumps(e) for e in tap.lines())


def test_failed_attempt_reaches_healthd_with_request_id(make_stack):
    # a backend that answers its health checks but not this request in time:
    # the attempt times out, and upstream.failed carries the request id
    stack = make_stack(actor_env={"LOG_LEVEL": "debug"})
    vhost = "corr-slow.test"
    stack.put_route(vhost, [stack.backend("a")], timeoutMs=300, retries=0)
    stack.wait_served(vhost)
    rid = "corr-" + uuid.uuid4().hex
    r = stack.get("/slow?ms=3000", host=vhost, headers={"X-Request-Id": rid})
    assert r.status_code == 504, r.text
    assert r.headers.get("X-Request-Id") == rid
    wait_until(
        lambda: has(stack, "healthd", rid, "bus message received", type="upstream.failed"),
        WAIT,
        what="healthd's line about the failed attempt",
    )
    assert has(stack, "gateway", rid, "upstream timeout")
    # the access line is written once the response is out: the client may read it first
    wait_until(lambda: has(stack, "gateway", rid, "access", status=504), WAIT, what="the access line")
