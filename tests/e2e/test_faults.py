"""Fault suite (issue 14, item 1; SPEC §13): under a bounded load, every
non-gateway actor is SIGKILLed (then restarted) and SIGSTOPped (then
SIGCONTed) in turn, two at once, and Redis and PostgreSQL are stopped and
restarted.

One stack (short lease TTL, short health intervals, REDIS_URL) is shared by
the actor and Redis faults; each fault restores it (every process running,
/ready 200, `switchyard ping` finding every current instance, chatd
connected to Redis) before the next. During each fault:

- HTTP: 3 client threads against the demo route (two keep-alive sessions,
  one opening a new connection per request), paced ~10 ms: every answer
  must be 200 from a demo backend, and none may take BOUND_S or more (the
  gateway serves its last good decisions while router/balancer are away).
- chat: alice and bob (one gateway) each send a numbered message to the
  other every ~20 ms; a message answered `unavailable` or not acked within
  1 s is sent again with the same id (SPEC §9: idempotent by id). Each
  recipient must get exactly the sender's messages, each once, in order.

PostgreSQL (DATABASE_URL, tests/e2e/pg.py) gets its own stack: paused
(stopped, data kept) under the same HTTP load, then resumed; the router must
reconnect (a route PUT after the resume is served).

No sleep is a synchronisation: conditions are polled with deadlines; the
fixed pauses are the faults' durations and the pacing of the load.
"""

import json
import os
import queue
import shutil
import signal
import threading
import time
import uuid

import pytest
import requests
import websocket

from pg import pg_cluster  # noqa: F401  (fixture)
from stack import ACTORS, Stack, pause, wait_until
from test_chat import Redis, pongs

DEMO = "demo.test"
CHAT_VHOST = "chat.test"
HELLO = ("Hello from Server A (Region 1)", "Hello from Server B (Region 2)")
BOUND_S = 0.300  # max latency of any HTTP request during a fault (sanitizer build)
STOP_S = 1.5  # how long a SIGSTOPped process stays stopped
GONE_S = 1.0  # how long a SIGKILLed actor stays away before its restart
ACK_WAIT_S = 1.0  # a chat message not acked within this is sent again
HEAL_S = 20.0  # deadline for the stack to be healthy again after a fault
ACTOR_ENV = {
    "HEALTHD_INTERVAL": "200ms",
    "HEALTHD_TIMEOUT": "200ms",
    "HEALTHD_RECOVERY_INTERVAL": "500ms",
}
GATEWAY_ENV = {"GATEWAY_LEASE_TTL": "200ms"}


# ---------------------------------------------------------------------- load


class HttpLoad:
    """3 threads of paced requests for demo.test until stop(): two on a
    keep-alive session each, one on a new connection per request."""

    def __init__(self, stack):
        self.stack = stack
        self.lock = threading.Lock()
        self.results = []  # (t sent, latency, ok, what, thread)
        self.stopping = threading.Event()
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(3)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, i):
        sess = requests.Session() if i < 2 else None
        try:
            while not self.stopping.is_set():
                t = time.monotonic()
                try:
                    h = {} if sess else {"Connection": "close"}
                    r = self.stack.get("/", host=DEMO, session=sess, timeout=5, headers=h)
                    ok = r.status_code == 200 and r.text in HELLO
                    what = (r.status_code, r.text[:80])
                except requests.RequestException as exc:
                    ok, what = False, repr(exc)
                d = time.monotonic() - t
                with self.lock:
                    self.results.append((t - self.t0, d, ok, what, i))
                pause(0.01)  # pacing of the load, not synchronisation
        finally:
            if sess:
                sess.close()

    def count(self):
        with self.lock:
            return len(self.results)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)


class Peer:
    """One chat user: a reader thread (acks/errors to a queue, received
    messages to a list) and a writer thread sending numbered messages to
    `to` until stop(), each until acked."""

    def __init__(self, stack, user, to, tag):
        self.user, self.to, self.tag = user, to, tag
        url = "ws://127.0.0.1:%d/chat?userId=%s" % (stack.http_port, user)
        self.ws = websocket.create_connection(url, host=CHAT_VHOST, timeout=10)
        self.ws.settimeout(0.2)
        self.replies = queue.Queue()
        self.received = []  # (from, id) of message:received, in arrival order
        self.sent = []  # ids acked, in order
        self.resends = 0
        self.max_delay = 0.0  # longest first send -> ack of a message
        self.unavailable = 0
        self.problems = []
        self.stopping = threading.Event()
        self.closing = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer = threading.Thread(target=self._write, daemon=True)

    def start(self):
        self.reader.start()
        self.writer.start()
        return self

    def _read(self):
        while not self.closing.is_set():
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as exc:  # noqa: BLE001
                if not self.closing.is_set():
                    self.problems.append("%s: session read failed: %r" % (self.user, exc))
                return
            try:
                f = json.loads(raw)
            except ValueError:
                self.problems.append("%s: not JSON: %r" % (self.user, raw[:200]))
                continue
            if f.get("type") == "message:received":
                self.received.append((f.get("from"), f.get("id")))
            elif f.get("type") in ("ack", "error"):
                self.replies.put(f)

    def _write(self):
        i = 0
        while not self.stopping.is_set():
            mid = "%s-%s-%04d" % (self.tag, self.user[0], i)
            frame = json.dumps({"type": "message:send", "to": self.to, "text": "m%d" % i, "id": mid})
            t_first = time.monotonic()
            deadline = t_first + 30.0
            acked = False
            first = True
            while not acked and time.monotonic() < deadline:
                if not first:
                    self.resends += 1
                first = False
                try:
                    self.ws.send(frame)
                except Exception as exc:  # noqa: BLE001
                    self.problems.append("%s: send of %s failed: %r" % (self.user, mid, exc))
                    return
                wait_end = time.monotonic() + ACK_WAIT_S
                while time.monotonic() < wait_end:
                    try:
                        f = self.replies.get(timeout=max(0.001, wait_end - time.monotonic()))
                    except queue.Empty:
                        break
                    if f.get("id") != mid:
                        continue  # a late reply to an earlier copy of an acked message
                    if f["type"] == "ack":
                        acked = True
                        break
                    if f.get("code") != "unavailable":
                        self.problems.append("%s: %s answered %r" % (self.user, mid, f))
                        return
                    self.unavailable += 1
                    pause(0.05)  # pacing of a retry; its outcome is checked
                    break
            if not acked:
                self.problems.append("%s: %s never acked within 30 s" % (self.user, mid))
                return
            self.sent.append(mid)
            self.max_delay = max(self.max_delay, time.monotonic() - t_first)
            i += 1
            pause(0.02)  # pacing of the conversation

    def stop_sending(self):
        self.stopping.set()
        self.writer.join(40)

    def close(self):
        self.stopping.set()
        self.closing.set()
        self.reader.join(5)
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass

    def got_from(self, other):
        return [mid for frm, mid in list(self.received) if frm == other.user and mid.startswith(self.tag)]


# ---------------------------------------------------------------------- stack


def current_instances(stack):
    return {k: stack.procs[k].env["INSTANCE_ID"] for k in ACTORS}


def healthy(stack):
    """Every actor running, /ready 200, `switchyard ping` finds every current
    instance, the gateway knows a chatd and chatd has Redis."""
    stack._assert_running()
    for k in ACTORS:
        assert stack.procs[k].alive(), "%s not running" % k
    if requests.get(stack.admin_url + "/ready", timeout=2).status_code != 200:
        return False
    if api_health(stack) != "healthy":
        return False
    found = pongs(stack)
    want = current_instances(stack)
    if not all(name in found for name in want.values()):
        return False
    return found[want["gateway"]].get("chat.chatd", 0) >= 1 and found[want["chatd"]].get("redis.up", 0) == 1


def api_health(stack):
    return stack.api("GET", "/api/health", timeout=5).json()["status"]


def wait_healthy(stack, timeout=HEAL_S):
    wait_until(lambda: healthy(stack), timeout, interval=0.1, what="stack healthy (/ready, ping, chatd+Redis)")


@pytest.fixture(scope="module")
def chat_redis(tmp_path_factory):
    r = Redis(str(tmp_path_factory.mktemp("redis")))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def fault_stack(chat_redis):
    env = dict(ACTOR_ENV, REDIS_URL=chat_redis.url)
    s = None
    for attempt in range(3):  # a free port may be taken before it is bound (as make_stack)
        s = Stack(actor_env=env, gateway_env=GATEWAY_ENV)
        try:
            s.start()
            break
        except BaseException:
            clash = any("Address already in use" in p.stdout_text() + p.stderr_text() for p in s.history)
            if clash and attempt < 2:
                shutil.rmtree(s.dir, ignore_errors=True)
                continue
            raise
    s.put_route(CHAT_VHOST, [], chatPath="/chat")
    wait_healthy(s)
    yield s
    problems = s.stop()
    if problems:
        pytest.fail("teardown found problems (stack in %s):\n  %s" % (s.dir, "\n  ".join(problems)), pytrace=False)


# ---------------------------------------------------------------------- faults


def sigkill(*names):
    def fault(stack, redis):
        for n in names:
            stack.kill(n)
        pause(GONE_S)  # the fault: the actors stay away this long
        for n in names:
            stack.restart(n)

    return fault


def sigstop(*names):
    def fault(stack, redis):
        pids = [stack.procs[n].pid for n in names]
        stopped = []
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            pause(STOP_S)  # the fault
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)

    return fault


def redis_kill(stack, redis):
    redis.proc.send_signal(signal.SIGKILL)
    redis.proc.wait(timeout=10)
    wait_until(lambda: pongs(stack)[current_instances(stack)["chatd"]].get("redis.up", 0) == 0, 10,
               interval=0.1, what="chatd sees Redis down")
    pause(GONE_S)  # the fault: Redis stays away this long
    redis.__init__(redis.workdir, redis.port)  # the same port again, empty


def redis_stop(stack, redis):
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        pause(STOP_S)
    finally:
        redis.proc.send_signal(signal.SIGCONT)


FAULTS = {}
for _a in ("router", "balancer", "healthd", "statsd", "chatd", "apid"):
    FAULTS["sigkill-" + _a] = sigkill(_a)
    FAULTS["sigstop-" + _a] = sigstop(_a)
for _pair in (("router", "balancer"), ("healthd", "statsd"), ("chatd", "router")):
    FAULTS["sigkill-" + "+".join(_pair)] = sigkill(*_pair)
    FAULTS["sigstop-" + "+".join(_pair)] = sigstop(*_pair)
FAULTS["redis-sigkill-restart"] = redis_kill
FAULTS["redis-sigstop"] = redis_stop


def check_http(load, label):
    res = list(load.results)
    fails = [(round(t, 3), w, th) for t, _, ok, w, th in res if not ok]
    lat = sorted(d for _, d, _, _, _ in res)
    slow = [(round(t, 3), round(d, 3), th) for t, d, _, _, th in res if d >= BOUND_S]
    return res, fails, lat, slow


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_fault_costs_nothing(fault_stack, chat_redis, timings, fault):
    s = fault_stack
    wait_healthy(s)
    tag = "f" + uuid.uuid4().hex[:6]
    load = HttpLoad(s).start()
    alice = bob = None
    try:
        alice = Peer(s, "alice", "bob", tag)
        bob = Peer(s, "bob", "alice", tag)
        alice.start()
        bob.start()
        # some traffic before the fault
        wait_until(lambda: load.count() >= 20 and len(alice.sent) >= 5 and len(bob.sent) >= 5, 10,
                   what="load and chat under way")
        t_fault = time.monotonic() - load.t0
        try:
            FAULTS[fault](s, chat_redis)
        finally:
            t_restored = time.monotonic() - load.t0
        wait_healthy(s)
        t_healthy = time.monotonic() - load.t0
        # some traffic after the recovery
        n = load.count()
        na, nb = len(alice.sent), len(bob.sent)
        wait_until(lambda: load.count() >= n + 20 and len(alice.sent) >= na + 5 and len(bob.sent) >= nb + 5, 30,
                   what="load and chat going on after %s" % fault)
        alice.stop_sending()
        bob.stop_sending()
        load.stop()
        # every acked message reaches its recipient: wait for the last ones
        for sender, rcpt in ((alice, bob), (bob, alice)):
            last = sender.sent[-1] if sender.sent else None
            if last:
                wait_until(lambda: last in rcpt.got_from(sender), 10,
                           what="%s's last message %s at %s" % (sender.user, last, rcpt.user))
    finally:
        load.stop()
        for p in (alice, bob):
            if p:
                p.close()
        # never leave the shared stack stopped or short of an actor
        for k in ACTORS:
            proc = s.procs[k]
            if proc.alive():
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            elif proc.killed:
                s.restart(k)
        if chat_redis.proc.poll() is None:
            chat_redis.proc.send_signal(signal.SIGCONT)
        else:
            chat_redis.__init__(chat_redis.workdir, chat_redis.port)

    res, fails, lat, slow = check_http(load, fault)
    timings.record("%s: max of %d requests" % (fault, len(res)), lat[-1])
    timings.record("%s: longest chat send -> ack" % fault, max(alice.max_delay, bob.max_delay))
    print("%s: %d requests, %d failed, p50 %.3f s, max %.3f s; fault at %.2f s, restored %.2f s, healthy %.2f s; "
          "chat alice->bob %d, bob->alice %d, resends %d, unavailable %d, max send->ack %.3f s"
          % (fault, len(res), len(fails), lat[len(lat) // 2], lat[-1], t_fault, t_restored, t_healthy,
             len(alice.sent), len(bob.sent), alice.resends + bob.resends, alice.unavailable + bob.unavailable,
             max(alice.max_delay, bob.max_delay)))
    over = [(round(t, 3), round(d, 3), th) for t, d, _, _, th in res if d >= 0.1]
    if over:
        print("%s: requests of 100 ms or more (sent at, latency, thread): %r" % (fault, over[:20]))
    assert alice.problems + bob.problems == [], alice.problems + bob.problems
    assert fails == [], "%d of %d requests failed during %s (fault at %.2f s): %r" % (
        len(fails), len(res), fault, t_fault, fails[:10])
    assert slow == [], "requests at or over %.3f s during %s (fault at %.2f s, restored at %.2f s): %r" % (
        BOUND_S, fault, t_fault, t_restored, slow[:10])
    for sender, rcpt in ((alice, bob), (bob, alice)):
        got = rcpt.got_from(sender)
        assert got == sender.sent, "%s -> %s during %s: sent %d, received %d; missing %r, duplicated %r, order %s" % (
            sender.user, rcpt.user, fault, len(sender.sent), len(got),
            sorted(set(sender.sent) - set(got))[:10],
            sorted({m for m in got if got.count(m) > 1})[:10],
            "kept" if [m for m in got if m in set(sender.sent)] == sender.sent else "broken")
    assert len(alice.sent) >= 10 and len(bob.sent) >= 10


# ---------------------------------------------------------------------- PostgreSQL


def test_postgres_paused_and_resumed(pg_cluster, make_stack, timings):  # noqa: F811
    s = make_stack(actor_env=dict(ACTOR_ENV, **pg_cluster.env()), gateway_env=GATEWAY_ENV)
    load = HttpLoad(s).start()
    try:
        wait_until(lambda: load.count() >= 20, 10, what="load under way")
        t_fault = time.monotonic() - load.t0
        pg_cluster.pause()
        t_paused = time.monotonic() - load.t0
        n = load.count()
        # the router notices (SPEC §8: /api/health degraded meanwhile)
        wait_until(lambda: api_health(s) == "degraded", 15, interval=0.1, what="/api/health degraded")
        t_degraded = time.monotonic() - load.t0
        wait_until(lambda: load.count() >= n + 50, 20, what="load during the outage")
        pause(1.0)  # the outage goes on (the fault)
        pg_cluster.resume()
        t_resumed = time.monotonic() - load.t0
        # the router reconnects: a route PUT after the resume is served
        def put():
            r = s.api("PUT", "/api/v1/routes/pgback.test",
                      {"vHost": "pgback.test", "backends": [s.backend("b")]}, timeout=5)
            return r.status_code in (200, 201)

        wait_until(put, 30, interval=0.2, what="PUT accepted after PostgreSQL resumed")
        wait_until(lambda: s.get("/", host="pgback.test", timeout=5).status_code == 200, 30, interval=0.1,
                   what="the new route served")
        t_back = time.monotonic() - load.t0
        s.wait_ready()
        wait_until(lambda: api_health(s) == "healthy", 15, interval=0.1, what="/api/health healthy again")
        found = pongs(s)
        assert all(i in found for i in current_instances(s).values()), found
        n = load.count()
        wait_until(lambda: load.count() >= n + 20, 10, what="load after the resume")
    finally:
        load.stop()
    res, fails, lat, slow = check_http(load, "postgres")
    timings.record("postgres paused: max of %d requests" % len(res), lat[-1])
    print("postgres: %d requests, %d failed, p50 %.3f s, max %.3f s; pause at %.2f-%.2f s, degraded %.2f s, "
          "resumed %.2f s, route served %.2f s" % (len(res), len(fails), lat[len(lat) // 2], lat[-1], t_fault,
                                                  t_paused, t_degraded, t_resumed, t_back))
    assert fails == [], "%d of %d requests failed with PostgreSQL paused: %r" % (len(fails), len(res), fails[:10])
    assert slow == [], "requests at or over %.3f s with PostgreSQL paused: %r" % (BOUND_S, slow[:10])
