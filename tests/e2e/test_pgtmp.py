"""Tests of the throwaway PostgreSQL cluster (tests/lib/pgtmp.sh through
tests/e2e/pg.py): start, connect, pause (connections fail), resume (the data
is still there, on the same port), stop (the server is gone, and so is its
directory).
"""

import os
import pwd
import subprocess

import psycopg2
import pytest

from pg import SCRIPT, PgTmp, PgTmpError, pg_cluster  # noqa: F401  (pg_cluster is a fixture)


def running(pid):
    """True while pid is a live process (a zombie waiting to be reaped is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def connect(url):
    return psycopg2.connect(url, connect_timeout=5)


def test_start_pause_resume_stop():
    cluster = PgTmp()
    try:
        url = cluster.start()
        assert url == "postgres://postgres@127.0.0.1:%d/switchyard" % cluster.port
        assert running(cluster.pid)
        port, pid, directory = cluster.port, cluster.pid, cluster.dir
        if os.getuid() == 0:  # PostgreSQL refuses root: the cluster belongs to postgres
            assert os.stat(directory).st_uid == pwd.getpwnam("postgres").pw_uid

        conn = connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_user")
            assert cur.fetchone() == ("switchyard", "postgres")
            cur.execute("CREATE TABLE kept (id int PRIMARY KEY, name text)")
            cur.execute("INSERT INTO kept VALUES (1, 'one'), (2, 'two')")
        conn.close()

        cluster.pause()
        assert not running(pid)
        assert os.path.isdir(os.path.join(directory, "data"))
        with pytest.raises(psycopg2.OperationalError):
            connect(url).close()

        assert cluster.resume() == url  # the same port
        assert cluster.port == port
        assert running(cluster.pid)
        conn = connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT id, name FROM kept ORDER BY id")
            assert cur.fetchall() == [(1, "one"), (2, "two")]
        conn.close()

        pid = cluster.pid
        cluster.stop()
        assert not running(pid)
        assert not os.path.exists(directory)
        with pytest.raises(psycopg2.OperationalError):
            connect(url).close()
        cluster.stop()  # twice is fine
    finally:
        if os.path.exists(cluster.dir):
            cluster.stop()


def test_fixture_gives_a_database(pg_cluster):
    conn = connect(pg_cluster.url)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()
    assert pg_cluster.env() == {"DATABASE_URL": pg_cluster.url}


def test_two_clusters_side_by_side():
    a, b = PgTmp(), PgTmp()
    try:
        a.start()
        b.start()
        assert a.port != b.port
        for c in (a, b):
            conn = connect(c.url)
            conn.close()
    finally:
        for c in (a, b):
            c.stop()


def test_script_refuses_misuse(tmp_path):
    def run(*args):
        return subprocess.run([SCRIPT] + list(args), capture_output=True, text=True, timeout=60)

    assert run().returncode == 2
    assert run("frob", str(tmp_path)).returncode == 2
    # a directory it did not make is never removed, a non-empty one never used
    (tmp_path / "precious").write_text("x")
    p = run("stop", str(tmp_path))
    assert p.returncode == 1 and "not removing" in p.stderr
    assert (tmp_path / "precious").exists()
    p = run("start", str(tmp_path))
    assert p.returncode == 1 and "not empty" in p.stderr
    p = run("resume", str(tmp_path))
    assert p.returncode == 1
    with pytest.raises(PgTmpError):
        PgTmp(str(tmp_path)).resume()
