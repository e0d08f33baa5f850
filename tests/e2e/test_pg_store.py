"""End-to-end tests of the PostgreSQL config store (SPEC §5, §8): a real,
throwaway PostgreSQL 15 cluster (tests/lib/pgtmp.sh, one per module, a fresh
database per test), the real binaries.

- changes are in the project's switchyard_* tables before the 2xx and survive
  a router restart; the migration is recorded once;
- two stacks (each its own gateway, router, balancer and apid) on one
  database: a change made through either is served by the other's gateway
  within 1 s (LISTEN/NOTIFY), measured;
- concurrent changes through both routers all succeed with distinct,
  consecutive versions (the loser of a race reloads and runs again), and both
  end with the same configuration;
- PostgreSQL stopped mid-test: known routes keep serving, a change is 503 with
  the error shape and changes nothing, and after PostgreSQL is back changes
  work again without restarting anything;
- a router started while PostgreSQL is down is not ready (/ready 503, no 404
  for routes that exist) until it has loaded the configuration.
"""

import threading
import time

import psycopg2
import pytest
import requests

from pg import PgTmp
from stack import wait_until

HELLO_A = "Hello from Server A (Region 1)"


@pytest.fixture(scope="module")
def cluster():
    c = PgTmp()
    c.start()
    yield c
    c.stop()


_DB_SEQ = [0]


@pytest.fixture
def db_url(cluster):
    """A new empty database on the module's cluster."""
    if not cluster.running:
        cluster.resume()
    _DB_SEQ[0] += 1
    name = "sy_%d_%d" % (int(time.time() * 1000) % 100000, _DB_SEQ[0])
    conn = psycopg2.connect(cluster.url)
    conn.autocommit = True
    conn.cursor().execute("CREATE DATABASE %s" % name)
    conn.close()
    yield cluster.url.rsplit("/", 1)[0] + "/" + name
    if not cluster.running:
        cluster.resume()


def sql(url, query, *args):
    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute(query, args)
        return cur.fetchall()
    finally:
        conn.close()


def body(r):
    return r.text


def test_changes_are_in_the_tables_and_survive_a_restart(make_stack, db_url):
    s = make_stack(actor_env={"DATABASE_URL": db_url})
    # the demo route was made through the API: it is in the tables
    assert sql(db_url, "SELECT vhost FROM switchyard_routes") == [("demo.test",)]
    backends = sql(db_url, "SELECT id FROM switchyard_backends ORDER BY position")
    assert backends == [("backend-a",), ("backend-b",)]
    assert sql(db_url, "SELECT version FROM switchyard_schema_migrations ORDER BY version") == [(1,), (2,)]
    r = s.api("PUT", "/api/v1/regions/2", {"publicAddress": "10.0.0.2"})
    assert r.status_code == 201, r.text
    version = int(r.headers["X-Config-Version"])
    assert sql(db_url, "SELECT version FROM switchyard_config") == [(version,)]
    assert sql(db_url, "SELECT public_address FROM switchyard_regions WHERE id = '2'") == [("10.0.0.2:80",)]
    rows = sql(db_url, "SELECT version, summary FROM switchyard_config_versions ORDER BY version")
    assert [v for v, _ in rows] == list(range(1, version + 1))

    # a new router reads it all back; the migration is not run twice
    s.terminate("router")
    s.restart("router")
    s.wait_ready()
    assert s.get("/", host="demo.test").status_code == 200
    r = s.api("GET", "/api/v1/regions")
    assert r.json() == [{"id": "2", "publicAddress": "10.0.0.2:80"}]
    r = s.api("GET", "/api/v1/config/versions")
    assert r.status_code == 200, r.text
    assert [v["version"] for v in r.json()] == list(range(version, 0, -1))
    assert sql(db_url, "SELECT count(*) FROM switchyard_schema_migrations") == [(2,)]


def test_two_routers_share_one_database(make_stack, db_url, timings):
    a = make_stack(actor_env={"DATABASE_URL": db_url})
    b = make_stack(actor_env={"DATABASE_URL": db_url}, demo_route=False)
    # b's router loaded what a made
    b.wait_served("demo.test", timeout=5.0)

    # a change through a is served by b's gateway, and the other way round
    for src, dst, vhost in ((a, b, "one.test"), (b, a, "two.test")):
        assert dst.get("/", host=vhost).status_code == 404
        t0 = time.monotonic()
        src.put_route(vhost, [src.backend("a")])
        wait_until(lambda: dst.get("/", host=vhost).status_code == 200, 1.0, interval=0.005, what=vhost + " on the other stack")
        timings.record("change through one router served by the other router's gateway", time.monotonic() - t0)
        assert HELLO_A in dst.get("/", host=vhost).text or dst.get("/", host=vhost).status_code == 200
    # a deletion too
    r = a.api("DELETE", "/api/v1/routes/two.test")
    assert r.status_code == 204, r.text
    wait_until(lambda: b.get("/", host="two.test").status_code == 404, 1.0, interval=0.005, what="deletion seen by b")


def test_concurrent_changes_converge(make_stack, db_url):
    a = make_stack(actor_env={"DATABASE_URL": db_url})
    b = make_stack(actor_env={"DATABASE_URL": db_url}, demo_route=False)
    b.wait_served("demo.test", timeout=5.0)
    start = int(a.api("GET", "/api/v1/config/versions").json()[0]["version"])
    results = []
    lock = threading.Lock()

    def worker(stack, i):
        r = stack.api("PUT", "/api/v1/routes/c%d.test" % i, {"backends": [stack.backend("a")]})
        with lock:
            results.append((i, r.status_code, r.text))

    threads = [threading.Thread(target=worker, args=(a if i % 2 else b, i)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(code for _, code, _ in results) == [201] * 16, results
    versions = [v for (v,) in sql(db_url, "SELECT version FROM switchyard_config_versions ORDER BY version")]
    assert versions == list(range(1, start + 17))

    def same():
        ra = a.api("GET", "/api/v1/routes").json()
        rb = b.api("GET", "/api/v1/routes").json()
        # the same routes, the same content (order: a keeps its own
        # insertion order, b the database's)
        return len(ra) == 17 and sorted(ra, key=lambda r: r["vHost"]) == sorted(rb, key=lambda r: r["vHost"])

    wait_until(same, 2.0, what="both routers serve the same 17 routes")


def test_postgres_outage(make_stack, db_url, cluster):
    s = make_stack(actor_env={"DATABASE_URL": db_url})
    session = requests.Session()
    cluster.pause()
    try:
        # known routes keep serving from the last configuration
        for _ in range(20):
            r = s.get("/", host="demo.test", session=session)
            assert r.status_code == 200, r.text
        # a change is refused, with the error shape, and changes nothing
        r = s.api("PUT", "/api/v1/routes/new.test", {"backends": [s.backend("a")]})
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert "store" in err["message"], err
        assert s.get("/", host="new.test").status_code == 404
    finally:
        cluster.resume()

    # back: changes work again, nothing restarted
    def put_ok():
        r = s.api("PUT", "/api/v1/routes/new.test", {"backends": [s.backend("a")]})
        return r.status_code in (200, 201)

    wait_until(put_ok, 10.0, interval=0.1, what="a change accepted after PostgreSQL is back")
    s.wait_served("new.test", timeout=1.0)
    assert s.check_alive() == []


def test_router_started_while_postgres_is_down(make_stack, db_url, cluster):
    s = make_stack(actor_env={"DATABASE_URL": db_url})
    s.terminate("router")
    cluster.pause()
    try:
        s.restart("router")
        # not ready, and never a 404 for a route that exists
        wait_until(lambda: requests.get(s.admin_url + "/ready", timeout=5).status_code == 503, 5.0, what="/ready 503")
        for _ in range(5):
            r = s.get("/", host="demo.test")
            assert r.status_code in (200, 503), (r.status_code, r.text)
    finally:
        cluster.resume()
    s.wait_ready(timeout=10.0)
    r = s.get("/", host="demo.test")
    assert r.status_code == 200, r.text
