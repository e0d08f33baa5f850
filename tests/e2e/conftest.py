"""Fixtures of the end-to-end tests: one whole stack per test.

`stack`       a started stack with default settings and the route demo.test
              (backend A in region 1, backend B in region 2)
`make_stack`  a factory for stacks with other settings:
              make_stack(gateway_env={"GATEWAY_LEASE_TTL": "0"}, demo_route=False)
`timings`     records a measured duration; all of them are printed at the end

At teardown every process is stopped by PID (SIGTERM, then SIGKILL after a
deadline); the test errors if an actor's stderr holds a sanitizer report, if
an actor did not exit 0 after SIGTERM (processes a test SIGKILLed on purpose
are exempt from the exit-code check only), or if one died by itself.
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from stack import BIN_DIR, Stack  # noqa: E402

_TIMINGS = []


def pytest_configure(config):
    missing = [
        b
        for b in ("gateway", "router", "balancer", "apid", "healthd", "statsd", "chatd", "demo-backend")
        if not os.access(os.path.join(BIN_DIR, b), os.X_OK)
    ]
    if missing:
        raise pytest.UsageError(
            "binaries missing in %s: %s (run `make build-asan` or set SWITCHYARD_BIN_DIR)" % (BIN_DIR, ", ".join(missing))
        )


@pytest.fixture
def make_stack(request):
    stacks = []

    def factory(**kw):
        # A free port found by binding port 0 can be taken by someone else's
        # outgoing connection before our process binds it: start again on new
        # ports when a listener reports "Address already in use".
        for attempt in range(3):
            s = Stack(**kw)
            try:
                s.start()
            except BaseException:
                clash = any("Address already in use" in p.stdout_text() + p.stderr_text() for p in s.history)
                if clash and attempt < 2:
                    shutil.rmtree(s.dir, ignore_errors=True)
                    continue
                stacks.append(s)
                raise
            stacks.append(s)
            return s

    yield factory
    problems = []
    for s in stacks:
        found = s.stop()
        if found:
            problems.append("stack in %s (kept for inspection):\n  %s" % (s.dir, "\n  ".join(found)))
    if problems:
        pytest.fail("teardown found problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def stack(make_stack):
    return make_stack()


class _Timings:
    def __init__(self, nodeid):
        self.nodeid = nodeid

    def record(self, what, seconds):
        _TIMINGS.append((self.nodeid, what, seconds))
        print("timing: %s: %.3f s" % (what, seconds))


@pytest.fixture
def timings(request):
    return _Timings(request.node.nodeid)


def pytest_terminal_summary(terminalreporter):
    if not _TIMINGS:
        return
    terminalreporter.write_sep("-", "measured times (sanitizer build: %s)" % BIN_DIR)
    for nodeid, what, seconds in _TIMINGS:
        terminalreporter.write_line("%7.3f s  %s  [%s]" % (seconds, what, nodeid.split("::", 1)[-1]))
