"""
Query statistics and result caching behind the pooler in the cases issue #6
left open, against a real PostgreSQL 15 started with pg_stat_statements
(pgserver.PgServer, one per module):

- named prepared statements (pgbench -M prepared, psycopg 3 prepare=True)
  counted per execution under their fingerprint in session AND transaction
  pooling, checked against what was sent and against pg_stat_statements;
- the result cache for the extended protocol (Parse/Bind/Describe/Execute/
  Sync, unnamed and named statements, text and binary parameters and
  results): answers byte-identical to the server's, per-parameter keys,
  never stale after a write through the pooler;
- [query_analysis]/[query_cache] keys reloaded on SIGHUP.
"""
import os
import re
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from pgserver import PgServer, PGBIN, free_port

psycopg = pytest.importorskip("psycopg")

PGBENCH = os.path.join(PGBIN, "pgbench")
ABAL = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"


@pytest.fixture(scope="module")
def pg():
    server = PgServer(settings={"shared_preload_libraries": "'pg_stat_statements'",
                                "pg_stat_statements.track": "top"}).start()
    server.sql("CREATE ROLE app LOGIN PASSWORD 'secret'")
    server.sql("CREATE DATABASE app OWNER app")
    server.sql("CREATE EXTENSION pg_stat_statements", db="app")
    r = subprocess.run([PGBENCH, "-i", "-s", "1", "-q", "-h", server.sock, "-p",
                        str(server.port), "-U", "app", "app"], capture_output=True, text=True,
                       env=dict(os.environ, PGPASSWORD="secret"))
    assert r.returncode == 0, r.stderr
    server.sql("SET ROLE app; CREATE TABLE products (id int PRIMARY KEY, name text, "
               "price numeric); INSERT INTO products SELECT g, 'p' || g, g * 1.5 "
               "FROM generate_series(1, 100) g", db="app")
    yield server
    server.cleanup()


def start(hotpath_factory, pg, mode="transaction", extra="", size=4):
    port = free_port()
    d = tempfile.mkdtemp(prefix="hotpath-pgq-")
    users = os.path.join(d, "users.txt")
    with open(users, "w") as f:
        f.write('"app" "secret"\n')
    ini = """
[pooler]
listen = 127.0.0.1:%d
auth_type = scram-sha-256
auth_file = %s
pool_mode = %s
default_pool_size = %d
[query_analysis]
interval = 0
%s
[database.app]
host = 127.0.0.1
port = %d
dbname = app
user = app
password = secret
""" % (port, users, mode, size, extra, pg.port)
    dm = hotpath_factory(ini_extra=ini, bpf=False)
    dm.pool_port = port
    assert dm.wait_log("pooler: listening"), dm.log_text()
    return dm


def conninfo(port):
    return "host=127.0.0.1 port=%d user=app password=secret dbname=app sslmode=disable" % port


def queries(dm):
    st, j = dm.api_json("GET", "/api/v2/performance/queries?source=pooler", token_name="reader")
    assert st == 200, j
    return j


def entry(dm, needle, calls=None, timeout=10):
    """The pooler's fingerprint whose text holds `needle` (waiting until it has
    `calls` calls when given)."""
    deadline = time.time() + timeout
    while True:
        q = [x for x in queries(dm)["queries"] if needle in x["query"]]
        if q and (calls is None or q[0]["calls"] >= calls):
            return q[0]
        if time.time() > deadline:
            return q[0] if q else None
        time.sleep(0.1)


def pgss_calls(pg, needle):
    out = pg.sql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%s%%'"
                 % needle.replace("'", "''"), db="app")
    return int(out)


def pgbench(port, *args):
    r = subprocess.run([PGBENCH, "-n", *args, conninfo(port)], capture_output=True, text=True,
                       timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "number of failed transactions: 0" in out, out
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m, out
    return int(m.group(1))


# ---- 1. named prepared statements in both pooling modes --------------------------------

@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_named_statements_counted_per_execution(hotpath_factory, pg, mode):
    dm = start(hotpath_factory, pg, mode=mode)
    pg.sql("SELECT pg_stat_statements_reset()", db="app")
    sent = pgbench(dm.pool_port, "-M", "prepared", "-S", "-c", "4", "-j", "2", "-t", "50")
    assert sent == 200
    q = entry(dm, "pgbench_accounts", calls=sent)
    assert q is not None, (queries(dm), dm.log_text())
    assert q["calls"] == sent, q
    assert q["errors"] == 0 and q["rows"] == sent, q
    assert q["total_ms"] > 0 and q["p50_ms"] > 0 and q["max_ms"] >= q["p50_ms"], q
    assert q["query"].startswith("SELECT abalance FROM pgbench_accounts WHERE aid = $1"), q
    # what the server counted for the same statement
    assert pgss_calls(pg, ABAL) == sent

    # psycopg 3: prepare once, Bind/Execute many times; Close forgets the name
    with psycopg.connect(conninfo(dm.pool_port), autocommit=True) as conn:
        for i in range(25):
            conn.execute("SELECT name FROM products WHERE id = %s AND price > 0", (i + 1,),
                         prepare=True).fetchall()
    q = entry(dm, "price > $2", calls=25)
    assert q is not None and q["calls"] == 25 and q["rows"] == 25, q
