"""
Query analysis behind the pooler, against a real PostgreSQL 15 with HypoPG
(pgserver.PgServer, one per module): per-fingerprint statistics from the
pooler's timing (REST and /metrics), EXPLAIN with sampled parameters, the
index recommendation for a seeded table queried by a column without an
index - and the proof: after creating the recommended index, the mean time
of that query, measured here through the pooler before and after, falls by
more than half. Also: parameters taken from an extended-protocol Bind
(pgbench -M extended), the optimize route's jobs and its 400s, hotpathctl
recommendations/optimize, and result caching with invalidation on writes.
"""
import json
import os
import random
import re
import subprocess
import tempfile
import time

import pytest

from conftest import HOTPATHCTL
from pgserver import PgServer, PGBIN, free_port, start_pooler

psycopg2 = pytest.importorskip("psycopg2")

PGBENCH = os.path.join(PGBIN, "pgbench")
ROWS = 400000
SLOW_SQL = "SELECT id, status FROM orders WHERE customer_id = %s"


@pytest.fixture(scope="module")
def pg():
    server = PgServer().start()
    server.sql("CREATE ROLE app LOGIN PASSWORD 'secret'")
    server.sql("CREATE DATABASE app OWNER app")
    # HypoPG is not a trusted extension: the superuser creates it once
    server.sql("CREATE EXTENSION hypopg", db="app")
    server.sql("SET ROLE app; CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT "
               "NULL, status text NOT NULL, total numeric NOT NULL, note text); "
               "INSERT INTO orders (customer_id, status, total, note) SELECT (g::bigint * 7919) %% 20000, "
               "CASE WHEN g %% 10 = 0 THEN 'open' ELSE 'done' END, g %% 1000, "
               "repeat('x', 40) FROM generate_series(1, %d) g; "
               "CREATE TABLE products (id int PRIMARY KEY, name text); "
               "INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 100) g; "
               "ANALYZE orders; ANALYZE products;" % ROWS, db="app")
    yield server
    server.cleanup()


def start(hotpath_factory, pg, extra=""):
    users = os.path.join(tempfile.mkdtemp(prefix="hotpath-pgopt-"), "users.txt")
    with open(users, "w") as f:
        f.write('"app" "secret"\n')
    return start_pooler(hotpath_factory, pg, users, extra="[query_analysis]\n"
                        "slow_query_threshold = 1ms\ninterval = 0\n" + extra)


def connect(port):
    c = psycopg2.connect(host="127.0.0.1", port=port, user="app", password="secret",
                         dbname="app", sslmode="disable", connect_timeout=10)
    c.autocommit = True
    return c


def timed_mean_ms(conn, n, rng):
    cur = conn.cursor()
    t0 = time.perf_counter()
    for _ in range(n):
        cur.execute(SLOW_SQL, (rng.randrange(20000),))
        cur.fetchall()
    return (time.perf_counter() - t0) * 1000.0 / n


def optimize(dm, body, token="admin", timeout=120):
    st, j = dm.api_json("POST", "/api/v2/performance/optimize", token_name=token, body=body)
    assert st == 202, j
    job = j["job"]
    assert job["status"] in ("queued", "running", "succeeded")
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, j = dm.api_json("GET", job["status_url"], token_name="reader")
        assert st == 200, j
        if j["job"]["status"] not in ("queued", "running"):
            return j["job"]
        time.sleep(0.2)
    raise AssertionError("job did not finish: %r" % j)


def queries(dm, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    st, j = dm.api_json("GET", "/api/v2/performance/queries?" + q, token_name="reader")
    assert st == 200, j
    return j


def test_index_recommendation_is_proven_by_measurement(hotpath_factory, pg):
    dm = start(hotpath_factory, pg)
    conn = connect(dm.pool_port)
    rng = random.Random(6)
    conn.cursor().execute("SELECT name FROM products WHERE id = 5")   # a fast query
    before = timed_mean_ms(conn, 30, rng)

    # the pooler's own statistics for the fingerprint
    deadline = time.time() + 10
    while True:
        j = queries(dm, source="pooler")
        slow = [q for q in j["queries"] if "orders" in q["query"]]
        if slow and slow[0]["calls"] >= 30 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert len(slow) == 1, j
    q = slow[0]
    assert q["source"] == "pooler" and q["database"] == "app" and q["kind"] == "select"
    assert q["query"] == "SELECT id, status FROM orders WHERE customer_id = $1"
    assert re.fullmatch(r"[0-9a-f]{16}", q["fingerprint"])
    assert q["calls"] == 30 and q["errors"] == 0 and q["rows"] == 30 * (ROWS // 20000)
    assert q["tables_read"] == ["orders"]
    assert 0 < q["p50_ms"] <= q["p95_ms"] <= q["p99_ms"] and q["max_ms"] > 0
    assert abs(q["mean_ms"] * 30 - q["total_ms"]) < 0.01 * q["total_ms"] + 0.01
    fp = q["fingerprint"]
    m = dm.metrics()
    assert 'hotpath_query_calls_total{database="app",fingerprint="%s"} 30' % fp in m, m

    job = optimize(dm, {"optimization_type": "index_recommendations", "scope": "db"})
    assert job["status"] == "succeeded", job
    assert job["result"]["recommendations"] >= 1, job
    st, r = dm.api_json("GET", "/api/v2/performance/recommendations?scope=db&analysis_period=1h",
                        token_name="reader")
    assert st == 200, r
    recs = [x for x in r["recommendations"] if x["fingerprint"] == fp]
    assert len(recs) == 1, r
    rec = recs[0]
    assert rec["type"] == "index" and rec["table"] == "public.orders"
    assert rec["columns"] == ["customer_id"], rec
    assert rec["statement"] == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id)"
    ev = rec["evidence"]
    assert ev["cost_after"] < ev["cost_before"] / 2, ev
    assert ev["plan_before"] != "" and "btree" in ev["hypothetical_index"]
    assert rec["sample"]["params"] and rec["sample"]["params_from_bind"] is False
    assert rec["estimated_time_saved_ms"] > 0 and 0.5 < rec["estimated_fraction_saved"] < 1
    # the plan analysis saw the seq scan under a selective filter
    plans = [p for p in r["analysed_queries"] if p["fingerprint"] == fp]
    assert plans and plans[0]["analyzed"] is True
    kinds = [f["type"] for f in plans[0]["plan"]["findings"]]
    assert "seq_scan" in kinds, plans[0]
    # the fast query is not analysed unless slow: products is tiny
    assert not [x for x in r["recommendations"] if x["table"] == "public.products"]

    # apply it through the pooler, then measure again
    conn.cursor().execute(rec["statement"])
    after = timed_mean_ms(conn, 30, rng)
    print("mean through the pooler: %.3f ms before, %.3f ms after the index" % (before, after))
    assert after < 0.5 * before, (before, after)

    # analysed again: nothing left to recommend for that query
    job = optimize(dm, {"optimization_type": "index_recommendations"})
    assert job["status"] == "succeeded", job
    st, r = dm.api_json("GET", "/api/v2/performance/recommendations", token_name="reader")
    assert not [x for x in r["recommendations"] if x["fingerprint"] == fp], r
    conn.cursor().execute("DROP INDEX orders_customer_id_idx")
    conn.close()


def test_bind_parameters_and_composite_candidate(hotpath_factory, pg, tmp_path):
    dm = start(hotpath_factory, pg)
    script = tmp_path / "q.sql"
    script.write_text("\\set c random(0, 19999)\n"
                      "SELECT id FROM orders WHERE customer_id = :c AND status = 'open' "
                      "ORDER BY total DESC LIMIT 5;\n")
    r = subprocess.run([PGBENCH, "-n", "-M", "extended", "-t", "15", "-c", "1", "-f", str(script),
                        "-h", "127.0.0.1", "-p", str(dm.pool_port), "-U", "app", "app"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PGPASSWORD="secret"))
    assert r.returncode == 0, r.stderr
    job = optimize(dm, {"optimization_type": "index_recommendations",
                        "scope": "database:app"})
    assert job["status"] == "succeeded" and job["scope"] == "app", job
    st, j = dm.api_json("GET", "/api/v2/performance/recommendations", token_name="reader")
    recs = [x for x in j["recommendations"] if "ORDER BY" in x["query"]]
    assert len(recs) == 1, j
    rec = recs[0]
    assert rec["sample"]["params_from_bind"] is True
    assert re.fullmatch(r"\d+", rec["sample"]["params"][0]), rec["sample"]
    assert rec["columns"][0] == "customer_id", rec
    assert rec["statement"].startswith("CREATE INDEX CONCURRENTLY ON public.orders (customer_id")
    # statistics name the extended-protocol statement with its $1
    q = [x for x in queries(dm, source="pooler")["queries"] if "ORDER BY" in x["query"]]
    assert len(q) == 1 and q[0]["calls"] == 15 and q[0]["rows"] <= 15 * 5, q


def test_optimize_route_errors_and_scopes(hotpath_factory, pg):
    dm = start(hotpath_factory, pg)
    for body, needle in [
            ({}, "'optimization_type' is required"),
            ({"optimization_type": 5}, "must be a string"),
            ({"optimization_type": "vacuum"}, "unknown 'optimization_type'"),
            ({"optimization_type": "index_recommendations", "scope": "disk"}, "'scope' must be"),
            ({"optimization_type": "index_recommendations", "scope": "database:nope"},
             "no [database.nope]"),
            ({"optimization_type": "index_recommendations", "extra": 1}, "extra")]:
        st, j = dm.api_json("POST", "/api/v2/performance/optimize", body=body)
        assert st == 400, (body, j)
        assert j["error"]["code"] == "invalid_body" and needle in j["error"]["message"], j
    st, hd, payload = dm.api("POST", "/api/v2/performance/optimize", token_name="admin",
                             raw_body=b"{not json")
    assert st == 400
    # scopes: perf:optimize to start, perf:read (or optimize) to read
    st, j = dm.api_json("POST", "/api/v2/performance/optimize", token_name="reader",
                        body={"optimization_type": "reset_query_stats"})
    assert st == 403, j
    st, j = dm.api_json("POST", "/api/v2/performance/optimize", token_name="nobody",
                        body={"optimization_type": "reset_query_stats"})
    assert st == 202 and j["job"]["id"].startswith("job-"), j
    st, j = dm.api_json("GET", "/api/v2/performance/optimize/job-999", token_name="reader")
    assert st == 404, j
    st, j = dm.api_json("GET", "/api/v2/performance/recommendations?scope=disk",
                        token_name="reader")
    assert st == 400 and "scope must be db, cache or all" in j["error"]["message"], j
    st, j = dm.api_json("GET", "/api/v2/performance/recommendations?analysis_period=forever",
                        token_name="reader")
    assert st == 400 and "analysis_period" in j["error"]["message"], j
    st, j = dm.api_json("GET", "/api/v2/performance/queries?source=disk", token_name="reader")
    assert st == 400, j


def test_reset_and_cache_suggestion(hotpath_factory, pg):
    dm = start(hotpath_factory, pg)
    conn = connect(dm.pool_port)
    cur = conn.cursor()
    for i in range(40):
        cur.execute("SELECT name FROM products WHERE id = %s", (i % 100 + 1,))
    st, j = dm.api_json("GET", "/api/v2/performance/recommendations?scope=cache",
                        token_name="reader")
    assert st == 200, j
    sug = [x for x in j["recommendations"] if x["type"] == "query_cache"]
    assert len(sug) == 1 and sug[0]["tables"] == ["products"] and sug[0]["calls"] == 40, j
    assert sug[0]["config"].startswith("[query_cache] fingerprints = ")
    # writes to the table take the suggestion away
    for i in range(10):
        cur.execute("UPDATE products SET name = name WHERE id = %s", (i + 1,))
    st, j = dm.api_json("GET", "/api/v2/performance/recommendations?scope=cache",
                        token_name="reader")
    assert not [x for x in j["recommendations"] if x["type"] == "query_cache"], j
    job = optimize(dm, {"optimization_type": "reset_query_stats"})
    assert job["status"] == "succeeded"
    assert queries(dm, source="pooler")["queries"] == []
    conn.close()


def ctl(dm, *args):
    env = dict(os.environ, HOTPATH_TOKEN=dm.tokens["admin"])
    return subprocess.run([HOTPATHCTL, "--url", "http://127.0.0.1:%d" % dm.api_port] +
                          list(args), capture_output=True, text=True, timeout=180, env=env)


def test_hotpathctl_optimize_and_recommendations(hotpath_factory, pg):
    dm = start(hotpath_factory, pg)
    conn = connect(dm.pool_port)
    timed_mean_ms(conn, 5, random.Random(1))
    r = ctl(dm, "--timeout", "120", "optimize", "index_recommendations", "--scope", "db")
    assert r.returncode == 0, r.stderr
    assert "succeeded" in r.stdout and "recommendations" in r.stdout, r.stdout
    r = ctl(dm, "recommendations", "--scope", "db")
    assert r.returncode == 0, r.stderr
    assert "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);" in r.stdout, r.stdout
    assert "sampled parameters:" in r.stdout and "seq_scan" in r.stdout, r.stdout
    r = ctl(dm, "--json", "recommendations")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["scope"] == "all" and doc["recommendations"], doc
    r = ctl(dm, "--json", "queries")
    assert r.returncode == 0 and json.loads(r.stdout)["queries"], r.stderr
    r = ctl(dm, "recommendations", "--scope", "disk")
    assert r.returncode == 1
    conn.close()


def cache_stats(dm):
    return queries(dm, source="pooler")["query_cache"]


def test_result_cache_hit_and_invalidation_on_write(hotpath_factory, pg):
    sel = "SELECT name FROM products WHERE id = 5"
    # learn the fingerprint from a first daemon's statistics
    dm = start(hotpath_factory, pg)
    conn = connect(dm.pool_port)
    conn.cursor().execute(sel)
    deadline = time.time() + 10
    while not [x for x in queries(dm, source="pooler")["queries"] if "products" in x["query"]]:
        assert time.time() < deadline
        time.sleep(0.1)
    fp = [x for x in queries(dm, source="pooler")["queries"] if "products" in x["query"]][0]
    conn.close()
    dm.stop()

    dm = start(hotpath_factory, pg, extra="[query_cache]\nfingerprints = %s\nttl = 60s\n" %
               fp["fingerprint"])
    conn = connect(dm.pool_port)
    cur = conn.cursor()
    cur.execute("UPDATE products SET name = 'p5' WHERE id = 5")
    cur.execute(sel)
    assert cur.fetchall() == [("p5",)]
    s = cache_stats(dm)
    assert s["misses"] == 1 and s["stores"] == 1 and s["hits"] == 0, s
    for _ in range(3):
        cur.execute(sel)
        assert cur.fetchall() == [("p5",)]
    s = cache_stats(dm)
    assert s["hits"] == 3 and s["misses"] == 1, s
    # answered by the pooler: the server ran the SELECT once
    time.sleep(0.3)
    q = [x for x in queries(dm, source="pooler")["queries"] if x["fingerprint"] == fp["fingerprint"]]
    assert q[0]["calls"] == 1, q
    m = dm.metrics()
    assert 'hotpath_query_cache_events_total{event="hit"} 3' in m

    # a write through the pooler drops it: the next read is fresh
    cur.execute("UPDATE products SET name = 'changed' WHERE id = 5")
    assert cache_stats(dm)["invalidations"] >= 1
    cur.execute(sel)
    assert cur.fetchall() == [("changed",)]
    cur.execute(sel)
    assert cur.fetchall() == [("changed",)]
    s = cache_stats(dm)
    assert s["misses"] == 2 and s["hits"] == 4, s

    # a write inside a transaction: the entry cached in between is dropped at COMMIT
    tx = connect(dm.pool_port)
    tx.autocommit = False
    tcur = tx.cursor()
    tcur.execute("UPDATE products SET name = 'in-tx' WHERE id = 5")
    cur.execute(sel)            # another client, outside the transaction: old value, cached
    assert cur.fetchall() == [("changed",)]
    tx.commit()
    cur.execute(sel)
    assert cur.fetchall() == [("in-tx",)], cache_stats(dm)
    # inside a transaction block nothing is answered from the cache
    before = cache_stats(dm)
    tcur.execute(sel)
    assert tcur.fetchall() == [("in-tx",)]
    tx.commit()
    after = cache_stats(dm)
    assert after["hits"] == before["hits"] and after["misses"] == before["misses"], after
    # other fingerprints are never cached
    cur.execute("SELECT name FROM products WHERE id = 6 AND name IS NOT NULL")
    assert cache_stats(dm)["misses"] == after["misses"]
    tx.close()
    conn.close()


def test_pooler_and_kernel_figures_merged(hotpath_factory, pg):
    """With kernel observation running, a fingerprint both sides saw is one
    entry: the pooler's figures, and the kernel's under "kernel"."""
    if os.geteuid() != 0:
        pytest.skip("kernel observation needs root")
    port = free_port()
    d = tempfile.mkdtemp(prefix="hotpath-pgopt-")
    users = os.path.join(d, "users.txt")
    with open(users, "w") as f:
        f.write('"app" "secret"\n')
    dm = hotpath_factory(ini_extra="""
[pooler]
listen = 127.0.0.1:%d
auth_type = scram-sha-256
auth_file = %s
[database.app]
host = 127.0.0.1
port = %d
dbname = app
user = app
password = secret
""" % (port, users, pg.port), bpf=True)
    st, h = dm.api_json("GET", "/api/v2/health", token_name="reader")
    feats = {f["name"]: f["available"] for f in h.get("features", [])}
    if not (feats.get("bpf") and feats.get("tracefs")) or "observe: watching" not in dm.log_text():
        pytest.skip("kernel observation is not running here")
    conn = connect(port)
    cur = conn.cursor()
    for i in range(20):
        cur.execute("SELECT count(*) FROM products WHERE id < %s", (i + 10,))
    deadline = time.time() + 15
    merged = []
    while time.time() < deadline:
        j = queries(dm)
        merged = [q for q in j["queries"] if "products" in q["query"] and
                  q["source"] == "pooler+kernel"]
        if merged and merged[0]["kernel"]["calls"] >= 20:
            break
        time.sleep(0.5)
    assert merged, j
    q = merged[0]
    assert q["calls"] == 20 and q["kernel"]["calls"] >= 20, q
    assert q["kernel"]["side"] == "client"
    # the kernel's client-side view is merged; only its other side (PostgreSQL's
    # listener, when discovered) may still be listed on its own
    assert all(x["side"] == "server" for x in j["queries"] if x.get("source") == "kernel" and
               x.get("fingerprint") == q["fingerprint"]), j
    conn.close()
