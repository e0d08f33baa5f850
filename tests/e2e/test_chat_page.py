"""End-to-end test of the chat page (client/index.html, SPEC §9) in a real
Chromium: tests/browser/chat_page.mjs (playwright-core) drives two pages, alice
on gateway 1 (region 1) and bob on gateway 2 (region 2), through a stack with
a real redis-server.

The stack: a redis-server on a free port; every actor with REDIS_URL; both demo
backends serving client/ (--static-dir), so /chat.html is the page; a second
gateway (REGION=2, its own ports) and a second chatd (REGION=2, its own
INSTANCE_ID), both on the stack's bus.

The route's vHost is 127.0.0.1, the Host a browser sends for
http://127.0.0.1:<port>/ (the gateway strips the port before matching): an
exact vHost, so no tenant prefix on the Redis keys (a wildcard `*` would also
match, but would make the keys tenant-prefixed). Its backends are A (region 1)
and B (region 2), and chatPath is /chat: a page loaded from gateway 1 comes
from A, one loaded from gateway 2 from B, and both connect to /chat on the
gateway they came from.

The browser or playwright-core missing is a failure, not a skip: scripts/deps.sh
test installs them (chromium, nodejs, npm ci in tests/browser).
"""

import os
import shutil
import subprocess
import time

import pytest
import requests

from node_script import NodeScript
from stack import REPO, wait_until
from test_chat import Redis
from test_hop import Gateway

WAIT = 15.0
VHOST = "127.0.0.1"
CLIENT_DIR = os.path.join(REPO, "client")
BROWSER_DIR = os.path.join(REPO, "tests", "browser")
SCRIPT = os.path.join(BROWSER_DIR, "chat_page.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCRIPT_TIMEOUT = 240.0  # the whole browser script, both holds included


@pytest.fixture
def redis(tmp_path):
    r = Redis(str(tmp_path))
    yield r
    r.stop()


def node_binary():
    return shutil.which("node") or shutil.which("nodejs")


def check_tools():
    """The browser, node and playwright-core, or a failure saying how to get them."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append("%s (Debian package chromium)" % CHROMIUM)
    if node_binary() is None:
        missing.append("node (Debian package nodejs)")
    if not os.path.isfile(os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")):
        missing.append("tests/browser/node_modules/playwright-core (npm ci --prefix tests/browser)")
    if missing:
        pytest.fail("missing: %s; run scripts/deps.sh test" % ", ".join(missing), pytrace=False)


def ping_all(stack, kind):
    """[(instance line, {counter: int})] of every `kind` instance in `switchyard ping -v`."""
    p = subprocess.run(
        [os.path.join(stack.bin_dir, "switchyard"), "ping", "-v", "--bus-dir", stack.bus_dir, "--timeout", "3s"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=stack.dir,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": stack.dir, "LANG": "C.UTF-8"},
        stdin=subprocess.DEVNULL,
    )
    lines = p.stdout.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith(kind + " ") and i + 1 < len(lines):
            counters = {}
            for word in lines[i + 1].split():
                k, _, v = word.partition("=")
                if v.isdigit():
                    counters[k] = int(v)
            out.append((line.split()[1], counters))
    return out


def redis_cli(redis, *args):
    p = subprocess.run(["redis-cli", "-p", str(redis.port)] + list(args), capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    return p.stdout


class Script(NodeScript):
    """chat_page.mjs running (tests/e2e/node_script.py)."""

    def __init__(self, url_a, url_b, out_dir, log_path):
        env = dict(os.environ, CHAT_PAGE_HOLD="1", CHROMIUM=CHROMIUM)
        super().__init__([node_binary(), SCRIPT, url_a, url_b, out_dir], BROWSER_DIR, env, log_path)

    def wait_line(self, want, deadline):
        """True when a line `want` came before the deadline; False when the script ended first."""
        return self.next_line(lambda line: True if line.strip() == want else None, deadline) is True

    def release(self):
        self.write("go")


def test_chat_page_two_regions(make_stack, redis, tmp_path, timings):
    check_tools()
    with open(os.path.join(CLIENT_DIR, "index.html"), "rb") as f:
        index_html = f.read()
    env = {"REDIS_URL": redis.url}
    stack = make_stack(actor_env=env, demo_route=False, static_dir=CLIENT_DIR)
    gw2 = Gateway(stack, "gateway2", "2", {})
    chatd2_env = stack._actor_env("chatd")
    chatd2_env.update({"REGION": "2", "INSTANCE_ID": "chatd-e2e-region2"})
    stack._spawn("chatd2", "chatd", env_extra=chatd2_env)
    stack.put_route(VHOST, [stack.backend("a"), stack.backend("b")], chatPath="/chat")

    # each gateway serves the page (from its own region's backend) and knows both chatd
    for url in (stack.http_url, gw2.http_url):
        wait_until(lambda: requests.get(url + "/chat.html", timeout=5).content == index_html, WAIT,
                   what="%s/chat.html serving client/index.html" % url)
    r = requests.get(stack.http_url + "/chat.js", timeout=5)
    assert r.headers["Content-Type"].startswith("text/javascript"), r.headers
    r = requests.get(gw2.http_url + "/chat.css", timeout=5)
    assert r.headers["Content-Type"].startswith("text/css"), r.headers
    wait_until(lambda: len([c for _, c in ping_all(stack, "gateway") if c.get("chat.chatd", 0) >= 2]) == 2, WAIT,
               what="both gateways reaching both chatd")

    out_dir = str(tmp_path / "screenshots")
    log_path = str(tmp_path / "chat_page.log")
    url_a = stack.http_url + "/chat.html"
    url_b = gw2.http_url + "/chat.html"
    print("chat page: A %s, B %s; output in %s" % (url_a, url_b, tmp_path))
    started = time.monotonic()
    script = Script(url_a, url_b, out_dir, log_path)
    held = False
    try:
        held = script.wait_line("HOLD", time.monotonic() + SCRIPT_TIMEOUT)
        if held:
            timings.record("chat page script, load to every step passed", time.monotonic() - started)
            check_stack_side(stack, redis)
    finally:
        script.release()
        rc = script.finish(60 if held else 20)
        print(script.text())
        print("screenshots: %s" % ", ".join(sorted(os.path.join(out_dir, n) for n in os.listdir(out_dir)))
              if os.path.isdir(out_dir) else "screenshots: none")
    assert held and rc == 0, "chat_page.mjs failed (exit %r); its output is above and in %s" % (rc, log_path)
    # the pages are gone: every session closed
    wait_until(lambda: all(c.get("chat.sessions", 0) == 0 for _, c in ping_all(stack, "chatd")), WAIT,
               what="chat sessions closed")


def check_stack_side(stack, redis):
    """While both pages are connected: chatd's sessions and what Redis carried."""
    chatd = dict(ping_all(stack, "chatd"))
    print("chatd counters: %s" % chatd)
    assert set(chatd) == {"chatd-e2e-0", "chatd-e2e-region2"}, chatd
    sessions = {name: c.get("chat.sessions", 0) for name, c in chatd.items()}
    assert sum(sessions.values()) == 2, chatd
    assert sum(c.get("chat.messages", 0) for c in chatd.values()) >= 4, chatd  # 3 to users, 1 to the room
    assert all(c.get("redis.up") == 1 for c in chatd.values()), chatd

    # Redis carried the messages: each user's inbox, the room's members, bob's presence
    inbox_bob = redis_cli(redis, "XRANGE", "chat:inbox:bob", "-", "+")
    assert "hello bob" in inbox_bob and "still here" in inbox_bob, inbox_bob
    inbox_alice = redis_cli(redis, "XRANGE", "chat:inbox:alice", "-", "+")
    assert "hi alice" in inbox_alice, inbox_alice
    members = set(redis_cli(redis, "SMEMBERS", "chat:members:lobby").split())
    assert members == {"alice", "bob"}, members
    assert redis_cli(redis, "GET", "chat:presence:bob").strip() == "away"
    # last: the gateway gives a session to a chatd of the region asked for (region=1 / region=2)
    assert sessions == {"chatd-e2e-0": 1, "chatd-e2e-region2": 1}, "sessions per chatd: %s" % sessions
