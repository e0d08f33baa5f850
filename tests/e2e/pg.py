"""pg.py - a throwaway PostgreSQL 15 cluster for tests, over tests/lib/pgtmp.sh.

    from pg import PgTmp, pg_cluster  # noqa: F401  (pg_cluster is a fixture)

    def test_something(pg_cluster):
        url = pg_cluster.url          # postgres://postgres@127.0.0.1:PORT/switchyard
        pg_cluster.pause()            # server stopped, data kept: connections fail
        pg_cluster.resume()           # the same port and data again
        # teardown stops it and removes its directory

Or by hand: c = PgTmp(); url = c.start(); ...; c.stop(). A conftest that
wants it for every test of a folder imports the fixture the same way.

Every step runs the script (which polls pg_isready up to a deadline) and
raises PgTmpError with the script's stderr when it fails. As root the
cluster runs as the `postgres` user (the script does that); the directory
is a fresh short one under /tmp (its unix socket path must stay short).
"""

import os
import subprocess
import tempfile

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(REPO, "tests", "lib", "pgtmp.sh")
STEP_TIMEOUT = 120  # seconds one script run may take (its own deadlines are 30 s)


class PgTmpError(RuntimeError):
    pass


class PgTmp:
    """One throwaway cluster: start() -> url, pause(), resume(), stop()."""

    def __init__(self, dir=None):
        # mkdtemp makes the directory; the script wants it empty and chowns it
        self.dir = dir or tempfile.mkdtemp(prefix="pg", dir="/tmp")
        self.url = None
        self.pid = None
        self.port = None
        self.running = False

    def _run(self, command):
        p = subprocess.run(
            [SCRIPT, command, self.dir],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if p.returncode != 0:
            raise PgTmpError("pgtmp.sh %s %s exited %d:\n%s" % (command, self.dir, p.returncode, p.stderr))
        values = {}
        for line in p.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
        return values

    def _started(self, values):
        self.url = values["DATABASE_URL"]
        self.pid = int(values["PGPID"])
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.running = True
        return self.url

    def start(self):
        """initdb, start on a free port, create database switchyard. Returns the URL."""
        return self._started(self._run("start"))

    def pause(self):
        """Stop the server (pg_ctl stop -m fast), keeping data and port."""
        self._run("pause")
        self.running = False

    def resume(self):
        """Start the paused server again on the same port. Returns the URL."""
        return self._started(self._run("resume"))

    def stop(self):
        """Stop the server and remove its directory. Safe to call twice."""
        self._run("stop")
        self.running = False

    def env(self):
        """{"DATABASE_URL": url}, to merge into an actor's environment."""
        return {"DATABASE_URL": self.url}


@pytest.fixture
def pg_cluster():
    """A started throwaway cluster, stopped and removed at teardown."""
    cluster = PgTmp()
    try:
        cluster.start()
    except BaseException:
        try:
            cluster.stop()
        except PgTmpError:
            pass  # the start's error is the one to see
        raise
    yield cluster
    cluster.stop()
