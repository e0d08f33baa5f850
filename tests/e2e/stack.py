"""stack.py - start and stop a whole Switchyard stack for end-to-end tests.

Every stack lives in its own short temporary directory (the working directory
of every process, so no stray .env is read, with BUS_DIR inside it), uses free
ports (found by binding port 0), and starts the real binaries from
$SWITCHYARD_BIN_DIR (default build/asan/bin, the sanitizer build) with
subprocess.Popen, stdout and stderr to files in the temp dir. Processes are
stopped by PID: SIGTERM, a bounded wait, SIGKILL as a fallback. stop() returns
the problems found (sanitizer reports in a stderr file, a non-zero exit after
SIGTERM, a process that had to be SIGKILLed) so the fixture can fail the test.

Readiness is waited for by polling a condition with a deadline (wait_until),
never by sleeping a fixed time.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.path.abspath(os.environ.get("SWITCHYARD_BIN_DIR") or os.path.join(REPO, "build", "asan", "bin"))

# Actors of a whole stack, in start order (the gateway last, so that /ready
# depends on the others having come up).
ACTORS = ("router", "balancer", "apid", "healthd", "statsd", "chatd", "gateway")

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")

STOP_TIMEOUT = 15.0  # seconds a process may take to exit after SIGTERM
START_TIMEOUT = 20.0  # seconds a stack may take to become ready (sanitizer build)

BACKEND_A = {"name": "Server A", "region": "1", "service": "server-a"}
BACKEND_B = {"name": "Server B", "region": "2", "service": "server-b"}


class WaitTimeout(AssertionError):
    pass


def pause(seconds):
    """Let time pass between two checks of a condition (or to pace a load).

    Never a synchronisation by itself: callers poll a condition with a
    deadline (wait_until) or pace requests whose outcome they check."""
    threading.Event().wait(seconds)


def wait_until(cond, timeout, interval=0.02, what=None):
    """Poll cond() until it returns a truthy value, at most `timeout` seconds.

    Returns that value; raises WaitTimeout (an AssertionError) naming `what`
    and the last exception cond raised, if any, when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - a poll may fail until ready
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what or getattr(cond, "__name__", "condition"))
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise WaitTimeout(msg)
        pause(interval)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (all held open until all found)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def closed_port():
    """A port on 127.0.0.1 with nothing listening (found free, then released)."""
    return free_ports(1)[0]


def sanitizer_env():
    env = {}
    env["ASAN_OPTIONS"] = os.environ.get(
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:exitcode=23:strict_string_checks=1:"
        "detect_stack_use_after_return=1:check_initialization_order=1",
    )
    env["UBSAN_OPTIONS"] = os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=24")
    if os.environ.get("LSAN_OPTIONS"):
        env["LSAN_OPTIONS"] = os.environ["LSAN_OPTIONS"]
    return env


class Proc:
    """One started process: its Popen, log files, and how it was ended."""

    def __init__(self, name, argv, env, cwd, logdir, generation):
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        suffix = "" if generation == 0 else ".%d" % generation
        self.stdout_path = os.path.join(logdir, name + suffix + ".out")
        self.stderr_path = os.path.join(logdir, name + suffix + ".err")
        self.killed = False  # SIGKILLed on purpose by a test
        self.forced = False  # SIGKILLed by stop() because SIGTERM did not end it
        self.returncode = None
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def kill(self):
        """SIGKILL on purpose (its exit code is then not checked)."""
        self.killed = True
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.returncode = self.popen.wait(timeout=STOP_TIMEOUT)

    def stop(self):
        """SIGTERM, wait, SIGKILL fallback. Returns the exit code."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.forced = True
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=STOP_TIMEOUT)
        self.returncode = self.popen.returncode
        return self.returncode

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def problems(self):
        out = []
        err = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            if marker in err:
                idx = err.index(marker)
                start = max(0, err.rfind("\n", 0, max(0, idx - 200)))
                out.append(
                    "%s (pid %d): sanitizer report %r in %s:\n%s"
                    % (self.name, self.pid, marker, self.stderr_path, err[start : idx + 1500])
                )
                break
        if self.killed:
            return out
        if self.forced:
            out.append("%s (pid %d) did not exit within %.0fs of SIGTERM; SIGKILLed" % (self.name, self.pid, STOP_TIMEOUT))
        elif self.returncode != 0:
            tail = err[-1500:]
            out.append(
                "%s (pid %d) exited with %r after SIGTERM (expected 0); stderr tail:\n%s"
                % (self.name, self.pid, self.returncode, tail)
            )
        return out


class Stack:
    """A whole stack: two demo backends (A region 1, B region 2) and every actor.

    gateway_env / actor_env: extra settings (e.g. {"GATEWAY_LEASE_TTL": "0"}).
    The route DEMO_VHOST (backends A and B) is created by start() unless
    demo_route=False. static_dir: both backends serve it (--static-dir).
    """

    DEMO_VHOST = "demo.test"

    def __init__(
        self, gateway_env=None, actor_env=None, region="1", demo_route=True, actors=ACTORS, bin_dir=None, static_dir=None
    ):
        self.bin_dir = bin_dir or BIN_DIR
        self.gateway_env = dict(gateway_env or {})
        self.actor_env = dict(actor_env or {})
        self.region = region
        self.demo_route = demo_route
        self.static_dir = static_dir
        self.actors = tuple(actors)
        self.dir = tempfile.mkdtemp(prefix="sy", dir="/tmp")
        self.bus_dir = os.path.join(self.dir, "bus")
        self.state_file = os.path.join(self.dir, "state.json")
        os.makedirs(self.bus_dir)
        (self.http_port, self.admin_port, self.port_a, self.port_b) = free_ports(4)
        self.http_url = "http://127.0.0.1:%d" % self.http_port
        self.admin_url = "http://127.0.0.1:%d" % self.admin_port
        self.procs = {}  # name -> current Proc
        self.history = []  # every Proc ever started
        self.generation = {}
        self.session = requests.Session()
        self.admin_token = self.gateway_env.get("ADMIN_TOKEN")
        self.stopped = False
        self.problems = []

    # ------------------------------------------------------------------ processes

    def _base_env(self):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.dir,
            "LANG": "C.UTF-8",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": os.environ.get("E2E_LOG_LEVEL", "info"),
            "BUS_DIR": self.bus_dir,
            "REGION": self.region,
        }
        env.update(sanitizer_env())
        return env

    def _spawn(self, name, binary, args=(), env_extra=None):
        path = os.path.join(self.bin_dir, binary)
        if not os.access(path, os.X_OK):
            raise RuntimeError("binary %s not found (set SWITCHYARD_BIN_DIR or run make build-asan)" % path)
        env = self._base_env()
        env.update(env_extra or {})
        gen = self.generation.get(name, 0)
        self.generation[name] = gen + 1
        proc = Proc(name, [path] + list(args), env, self.dir, self.dir, gen)
        self.procs[name] = proc
        self.history.append(proc)
        return proc

    def _actor_env(self, kind):
        env = dict(self.actor_env)
        env["INSTANCE_ID"] = "%s-e2e-%d" % (kind, self.generation.get(kind, 0))
        if kind == "router":
            env["ROUTER_STATE_FILE"] = self.state_file
        if kind == "apid":
            env.setdefault("APID_WEB_DIR", os.path.join(REPO, "web"))
        if kind == "gateway":
            env["GATEWAY_HTTP_ADDR"] = "127.0.0.1:%d" % self.http_port
            env["GATEWAY_ADMIN_ADDR"] = "127.0.0.1:%d" % self.admin_port
            env.update(self.gateway_env)
        return env

    def start_actor(self, kind):
        return self._spawn(kind, kind, env_extra=self._actor_env(kind))

    def start_backend(self, name, port, info):
        args = ["--port", str(port), "--name", info["name"], "--region", info["region"], "--service", info["service"]]
        if self.static_dir:
            args += ["--static-dir", self.static_dir]
        return self._spawn(name, "demo-backend", args, {"LOG_LEVEL": "warn"})

    def start(self):
        try:
            self.start_backend("backend-a", self.port_a, BACKEND_A)
            self.start_backend("backend-b", self.port_b, BACKEND_B)
            for kind in self.actors:
                self.start_actor(kind)
            self.wait_backend(self.port_a)
            self.wait_backend(self.port_b)
            self.wait_ready()
            self.wait_api()
            if self.demo_route:
                self.put_route(self.DEMO_VHOST, [self.backend("a"), self.backend("b")])
                self.wait_served(self.DEMO_VHOST)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, name):
        """SIGKILL a process on purpose; returns its Proc."""
        proc = self.procs[name]
        proc.kill()
        return proc

    def terminate(self, name):
        """SIGTERM a process and wait for it; returns its exit code."""
        return self.procs[name].stop()

    def restart(self, kind):
        """Start a new instance of an actor whose previous one has ended."""
        old = self.procs.get(kind)
        assert old is None or not old.alive(), "%s is still running" % kind
        return self.start_actor(kind)

    def check_alive(self):
        """Names of processes that died without a test asking for it."""
        return [p.name for p in self.procs.values() if not p.alive() and not p.killed and p.returncode is None]

    def stop(self):
        """Stop every process (gateway first) and return the problems found."""
        if self.stopped:
            return self.problems
        self.stopped = True
        try:
            self.session.close()
        except Exception:  # noqa: BLE001
            pass
        problems = []
        died = [p for p in self.procs.values() if not p.killed and p.returncode is None and not p.alive()]
        for p in died:
            problems.append(
                "%s (pid %d) had died before teardown with exit code %r; stderr tail:\n%s"
                % (p.name, p.pid, p.popen.returncode, p.stderr_text()[-1500:])
            )
        order = ["gateway"] + [k for k in self.actors if k != "gateway"] + ["backend-a", "backend-b"]
        for name in order + [n for n in self.procs if n not in order]:
            p = self.procs.get(name)
            if p is not None and not p.killed:
                p.stop()
        for p in self.history:
            if p.popen.poll() is None:  # an older generation still around: never leave it behind
                p.stop()
            if p in died:
                problems.extend(x for x in p.problems() if "after SIGTERM" not in x)
            else:
                problems.extend(p.problems())
        if not problems and not os.environ.get("E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.problems = problems
        return problems

    # ------------------------------------------------------------------ readiness

    def wait_backend(self, port, timeout=START_TIMEOUT):
        def up():
            r = requests.get("http://127.0.0.1:%d/health" % port, timeout=1)
            return r.status_code == 200

        wait_until(up, timeout, what="demo backend on port %d" % port)

    def wait_ready(self, timeout=START_TIMEOUT):
        def ready():
            self._assert_running()
            r = requests.get(self.admin_url + "/ready", timeout=2)
            return r.status_code == 200

        wait_until(ready, timeout, interval=0.05, what="gateway /ready 200")

    def wait_api(self, timeout=START_TIMEOUT):
        """apid answering through the admin listener."""

        def up():
            self._assert_running()
            return self.api("GET", "/api/v1/routes", timeout=2).status_code == 200

        wait_until(up, timeout, interval=0.05, what="GET /api/v1/routes 200")

    def wait_served(self, vhost, timeout=5.0, expect=200):
        def served():
            self._assert_running()
            return self.get("/", host=vhost, timeout=2).status_code == expect

        return wait_until(served, timeout, interval=0.02, what="%s answering %d" % (vhost, expect))

    def _assert_running(self):
        dead = [p for p in self.procs.values() if not p.killed and p.returncode is None and not p.alive()]
        if dead:
            raise AssertionError(
                "; ".join(
                    "%s exited with %r: %s" % (p.name, p.popen.returncode, p.stderr_text()[-800:]) for p in dead
                )
            )

    # ------------------------------------------------------------------ clients

    def backend(self, which, **kw):
        """A backend entry for a route: which is 'a' or 'b'."""
        port, region = (self.port_a, "1") if which == "a" else (self.port_b, "2")
        b = {"id": "backend-" + which, "hostname": "127.0.0.1", "port": port, "region": region}
        b.update(kw)
        return b

    def api(self, method, path, body=None, raw=None, token=True, headers=None, timeout=10):
        """A call on the admin listener (requests). body is JSON-encoded; raw is sent as is."""
        h = dict(headers or {})
        if token and self.admin_token:
            h.setdefault("Authorization", "Bearer " + self.admin_token)
        data = None
        if body is not None:
            data = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        elif raw is not None:
            data = raw
            h.setdefault("Content-Type", "application/json")
        return requests.request(method, self.admin_url + path, data=data, headers=h, timeout=timeout)

    def put_route(self, vhost, backends, **fields):
        route = {"vHost": vhost, "backends": backends}
        route.update(fields)
        r = self.api("PUT", "/api/v1/routes/" + vhost, route)
        assert r.status_code in (200, 201), "PUT route %s: %d %s" % (vhost, r.status_code, r.text)
        return r.json()

    def get(self, path, host=None, headers=None, timeout=10, session=None, **kw):
        """A request on the public listener (requests)."""
        h = dict(headers or {})
        if host is not None:
            h["Host"] = host
        return (session or requests).get(self.http_url + path, headers=h, timeout=timeout, **kw)

    def request(self, method, path, host=None, headers=None, timeout=10, session=None, **kw):
        h = dict(headers or {})
        if host is not None:
            h["Host"] = host
        return (session or requests).request(method, self.http_url + path, headers=h, timeout=timeout, **kw)

    def pong(self, kind):
        """The counters of the first `kind` instance from `switchyard ping -v`
        ({name: int}) and the whole output."""
        p = subprocess.run(
            [os.path.join(self.bin_dir, "switchyard"), "ping", "-v", "--bus-dir", self.bus_dir, "--timeout", "3s"],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=self.dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir, "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
        )
        lines = p.stdout.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(kind + " ") and i + 1 < len(lines):
                return {k: int(v) for k, v in re.findall(r"(\S+)=(\d+)", lines[i + 1])}, p.stdout
        raise AssertionError(
            "no %s in `switchyard ping -v` (exit %d):\n%s\n%s" % (kind, p.returncode, p.stdout, p.stderr)
        )

    def logs(self, name):
        return self.procs[name].stdout_text() + self.procs[name].stderr_text()


# ---------------------------------------------------------------------- raw HTTP


class RawResponse:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name lower-case, value)
        self.body = body
        self.version = version

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return "<RawResponse %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers, self.body[:200])


class RawConn:
    """A raw TCP connection that sends bytes and parses HTTP/1.1 responses.

    Every read has a deadline (the socket timeout); closed() tells whether the
    peer has closed the connection (EOF) within a deadline.
    """

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("read deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_until(self, marker, deadline):
        while marker not in self.buf:
            if not self._fill(deadline):
                raise EOFError("connection closed before %r; have %r" % (marker, self.buf[:300]))
        idx = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:idx], self.buf[idx:]
        return out

    def _read_n(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise EOFError("connection closed with %d of %d body bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, timeout=None, head_request=False):
        deadline = time.monotonic() + (timeout or self.timeout)
        head = self._read_until(b"\r\n\r\n", deadline).decode("latin-1")
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        resp = RawResponse(int(code), reason, headers, b"", version)
        status = resp.status
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size_line = self._read_until(b"\r\n", deadline)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until the empty line
                    while self._read_until(b"\r\n", deadline) != b"\r\n":
                        pass
                    break
                body += self._read_n(size, deadline)
                self._read_n(2, deadline)
            resp.body = body
        elif cl is not None:
            resp.body = self._read_n(int(cl), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed(self, timeout=3.0):
        """True when the peer closes (EOF or reset) within timeout with no more data."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            return False
        except OSError:
            return True
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
