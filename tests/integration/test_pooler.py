"""
The PostgreSQL pooler against a real PostgreSQL 15 (pgserver.PgServer, one
per module): logins (SCRAM with a plaintext or a SCRAM-secret entry, md5),
refusals (wrong password, sslmode=require), transaction pooling under
pgbench -M simple/extended/prepared with fewer server connections than
clients, cancel through the pooler, the wait-queue timeout error, the
session-mode reset query, statistics over REST and /metrics, and clients
that outlive a server restart. Every test is bounded (pgbench -T 3).
"""
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest

from pgserver import PgServer, PGBIN, start_pooler

psycopg2 = pytest.importorskip("psycopg2")
import psycopg2.extensions  # noqa: E402

PSQL = os.path.join(PGBIN, "psql")
PGBENCH = os.path.join(PGBIN, "pgbench")


@pytest.fixture(scope="module")
def pg():
    server = PgServer().start()
    server.sql("CREATE ROLE app LOGIN PASSWORD 'secret'")
    server.sql("CREATE DATABASE app OWNER app")
    r = subprocess.run([PGBENCH, "-i", "-s", "1", "-q", "-h", server.sock, "-p",
                        str(server.port), "-U", "app", "app"], capture_output=True, text=True,
                       env=dict(os.environ, PGPASSWORD="secret"))
    assert r.returncode == 0, r.stderr
    yield server
    server.cleanup()


def auth_file(pg, path):
    md5 = "md5" + hashlib.md5(b"secretmd5user").hexdigest()
    with open(path, "w") as f:
        f.write('# users of the pooler\n')
        f.write('"app" "secret"\n')
        f.write('"scramuser" "%s"\n' % pg.scram_secret("app"))
        f.write('"md5user" "%s"\n' % md5)
    return path


def start(hotpath_factory, pg, auth_type="scram-sha-256", mode="transaction", size=4,
          extra=""):
    users = auth_file(pg, os.path.join(tempfile.mkdtemp(prefix="hotpath-pool-"), "users.txt"))
    return start_pooler(hotpath_factory, pg, users, auth_type=auth_type, mode=mode, size=size,
                        extra=extra)


def psql(port, sql, user="app", password="secret", sslmode="disable", timeout=20):
    conn = "host=127.0.0.1 port=%d user=%s dbname=app sslmode=%s" % (port, user, sslmode)
    return subprocess.run([PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", conn, "-c", sql],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PGPASSWORD=password))


def connect(port, user="app", password="secret", **kw):
    return psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password,
                            dbname="app", sslmode="disable", connect_timeout=10, **kw)


def pools(dm):
    st, j = dm.api_json("GET", "/api/v2/pools", token_name="reader")
    assert st == 200, j
    return {p["user"]: p for p in j["pools"]}


def test_logins_and_refusals(hotpath_factory, pg):
    dm = start(hotpath_factory, pg)
    r = psql(dm.pool_port, "SELECT current_user, 40 + 2")
    assert r.returncode == 0, r.stderr + dm.log_text()
    assert r.stdout.strip() == "app|42"
    # a SCRAM secret copied from pg_authid works the same
    r = psql(dm.pool_port, "SELECT 1", user="scramuser")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    r = psql(dm.pool_port, "SELECT 1", password="wrong")
    assert r.returncode != 0
    assert 'password authentication failed for user "app"' in r.stderr
    r = psql(dm.pool_port, "SELECT 1", user="nobody")
    assert 'password authentication failed for user "nobody"' in r.stderr
    # no TLS: require fails clearly, prefer falls back to clear text
    r = psql(dm.pool_port, "SELECT 1", sslmode="require")
    assert r.returncode != 0 and "server does not support SSL" in r.stderr, r.stderr
    r = psql(dm.pool_port, "SELECT 1", sslmode="prefer")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    # unknown database
    r = subprocess.run([PSQL, "-X", "-At", "host=127.0.0.1 port=%d user=app dbname=other "
                        "sslmode=disable" % dm.pool_port, "-c", "SELECT 1"],
                       capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, PGPASSWORD="secret"))
    assert 'database "other" is not served by this pooler' in r.stderr
    st, j = dm.api_json("GET", "/api/v2/pools", token_name="reader")
    assert st == 200 and j["clients"]["auth_failures"] >= 2 and j["clients"]["ssl_refused"] >= 2
    st, _ = dm.api_json("GET", "/api/v2/pools", token_name="policy")
    assert st == 403


def test_md5_login(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, auth_type="md5")
    r = psql(dm.pool_port, "SELECT current_user", user="md5user")
    assert r.returncode == 0 and r.stdout.strip() == "app", r.stderr
    r = psql(dm.pool_port, "SELECT 1", user="md5user", password="nope")
    assert "password authentication failed" in r.stderr


def test_login_parameters_and_connect_per_transaction(hotpath_factory, pg):
    # Each client sees the pool's ParameterStatus messages, with its own
    # value for the parameters it chose; the server follows in a transaction.
    dm = start(hotpath_factory, pg, auth_type="md5", size=2)
    a = connect(dm.pool_port, application_name="first", client_encoding="LATIN1")
    b = connect(dm.pool_port)
    assert a.get_parameter_status("application_name") == "first"
    assert a.get_parameter_status("client_encoding") == "LATIN1"
    assert b.get_parameter_status("application_name") == ""
    assert b.get_parameter_status("client_encoding") == "UTF8"
    for k in ("server_version", "TimeZone", "DateStyle", "session_authorization"):
        assert a.get_parameter_status(k) and a.get_parameter_status(k) == \
            b.get_parameter_status(k), k
    for conn, want in ((a, "first"), (b, ""), (a, "first")):
        with conn.cursor() as cur:
            cur.execute("SHOW application_name")
            assert cur.fetchone()[0] == want
        conn.rollback()
    a.close()
    b.close()
    # a connection per transaction (client objects are reused): every
    # login still starts clean
    pgbench(dm.pool_port, "-C", "-S")
    c = connect(dm.pool_port)
    assert c.get_parameter_status("application_name") == ""
    with c.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == "app"
    c.close()
    r = psql(dm.pool_port, "SELECT 1", password="nope")
    assert "password authentication failed" in r.stderr
    st, j = dm.api_json("GET", "/api/v2/pools", token_name="reader")
    assert st == 200 and j["clients"]["accepted"] > 50 and j["clients"]["auth_failures"] == 1


def pgbench(port, *args):
    r = subprocess.run([PGBENCH, "-n", "-T", "3", "-c", "8", "-j", "2", *args,
                        "host=127.0.0.1 port=%d user=app dbname=app sslmode=disable" % port],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PGPASSWORD="secret"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "number of failed transactions: 0" in out, out
    assert "error" not in out.lower(), out
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 50, out
    return int(m.group(1))


def test_transaction_pooling_pgbench(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, size=4)
    n = pgbench(dm.pool_port, "-M", "simple")
    n += pgbench(dm.pool_port, "-M", "extended")
    # -M prepared: pgbench prepares with a blocking call, so a TPC-B
    # transaction holding every server connection would stall it (as
    # with any transaction pooler); select-only keeps 8 clients on 4
    # servers and makes statements land on servers that never saw them.
    n += pgbench(dm.pool_port, "-M", "prepared", "-S")
    p = pools(dm)["app"]
    assert p["totals"]["transactions"] >= n
    assert p["servers"]["active"] + p["servers"]["idle"] <= 4
    # the statement was prepared on more than one server connection
    assert p["totals"]["statements_prepared"] + p["totals"]["statements_reprepared"] >= 2
    assert p["query_time"]["count"] > 0 and p["wait_time"]["count"] > 0
    # the balance invariant of pgbench's TPC-B still holds: nothing was
    # lost or doubled through the pooler
    tellers = pg.sql("SELECT sum(tbalance) FROM pgbench_tellers", db="app")
    branches = pg.sql("SELECT sum(bbalance) FROM pgbench_branches", db="app")
    history = pg.sql("SELECT coalesce(sum(delta), 0) FROM pgbench_history", db="app")
    assert tellers == branches == history
    text = dm.metrics()
    assert 'hotpath_pool_transactions_total{database="app",user="app"}' in text
    assert "hotpath_pool_query_seconds_bucket" in text


def test_prepared_tpcb_with_enough_servers(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, size=8)
    pgbench(dm.pool_port, "-M", "prepared")


def test_adaptive_pool_size(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, size=8,
               extra="adaptive_pool_size = yes\nadaptive_min_pool_size = 2")
    pgbench(dm.pool_port, "-M", "simple", "-S")
    p = pools(dm)["app"]
    assert p["size"]["adaptive"] is True and p["size"]["min"] == 2 and p["size"]["max"] == 8
    dec = p["adaptive_decisions"]
    assert dec, p
    assert all(2 <= d["to"] <= 8 for d in dec)
    assert any(d["to"] > d["from"] and "waited" in d["reason"] for d in dec), dec
    assert "pool limit 2 -> " in dm.log_text()


def test_cancel_through_pooler(hotpath_factory, pg):
    dm = start(hotpath_factory, pg)
    conn = connect(dm.pool_port)
    conn.autocommit = True
    err = {}

    def run():
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(30)")
        except Exception as e:  # noqa: BLE001
            err["e"] = e

    t0 = time.time()
    th = threading.Thread(target=run)
    th.start()
    time.sleep(1.0)
    conn.cancel()
    th.join(10)
    assert not th.is_alive()
    assert isinstance(err.get("e"), psycopg2.extensions.QueryCanceledError), err
    assert time.time() - t0 < 8
    with conn.cursor() as cur:
        cur.execute("SELECT 7")
        assert cur.fetchone()[0] == 7
    conn.close()
    st, j = dm.api_json("GET", "/api/v2/pools", token_name="reader")
    assert j["clients"]["cancels_forwarded"] >= 1


def test_wait_queue_timeout(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, size=1, extra="query_wait_timeout = 1s")
    holder = connect(dm.pool_port)
    with holder.cursor() as cur:
        cur.execute("SELECT 1")      # opens a transaction: holds the only server
    # psql prints the FATAL error libpq received before the close
    t0 = time.time()
    r = psql(dm.pool_port, "SELECT 2")
    waited = time.time() - t0
    assert r.returncode != 0
    assert 0.8 < waited < 5, waited
    msg = r.stderr
    assert "query_wait_timeout" in msg and "app/app" in msg and "limit 1" in msg, msg
    holder.rollback()
    holder.close()
    assert pools(dm)["app"]["totals"]["wait_timeouts"] == 1


def test_session_mode_reset(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, mode="session", size=1)
    a = connect(dm.pool_port)
    a.autocommit = True
    with a.cursor() as cur:
        cur.execute("SET work_mem = '7MB'")
        cur.execute("SHOW work_mem")
        assert cur.fetchone()[0] == "7MB"
        cur.execute("SELECT pg_backend_pid()")
        pid_a = cur.fetchone()[0]
    a.close()
    b = connect(dm.pool_port)
    b.autocommit = True
    with b.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] == pid_a          # same server connection ...
        cur.execute("SHOW work_mem")
        assert cur.fetchone()[0] == "4MB"          # ... reset by DISCARD ALL
    b.close()


def test_clients_survive_server_restart(hotpath_factory, pg):
    dm = start(hotpath_factory, pg, extra="query_wait_timeout = 20s")
    conn = connect(dm.pool_port)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        before = cur.fetchone()[0]
    pg.restart()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        after = cur.fetchone()[0]
    assert after != before
    # while the server is down, a query waits and then succeeds
    pg.stop()
    restart = threading.Timer(1.0, pg.start)
    restart.start()
    t0 = time.time()
    with conn.cursor() as cur:
        cur.execute("SELECT 5")
        assert cur.fetchone()[0] == 5
    assert time.time() - t0 < 15
    # pg_ctl start may still be waiting for the server it started to say
    # it is ready: the fixture must not stop the server under it
    restart.join(30)
    conn.close()
    p = pools(dm)["app"]
    assert p["totals"]["servers_closed"] >= 1
