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

from pgserver import PgServer, PGBIN, pooler_ini, start_pooler

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


QA = "[query_analysis]\ninterval = 0\n"       # the advisor runs only when asked


def qa_ini(pg, port, users, mode="transaction", extra="", size=4):
    return pooler_ini(pg, port, users, mode=mode, size=size, extra=QA + extra)


def start(hotpath_factory, pg, mode="transaction", extra="", size=4):
    users = os.path.join(tempfile.mkdtemp(prefix="hotpath-pgq-"), "users.txt")
    with open(users, "w") as f:
        f.write('"app" "secret"\n')
    return start_pooler(hotpath_factory, pg, users, mode=mode, size=size, extra=QA + extra)


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
    out = pg.sql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%%%s%%'"
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


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_executes_before_one_sync_each_counted(hotpath_factory, pg, mode):
    dm = start_trust(hotpath_factory, pg, mode, "")
    pg.sql("SELECT pg_stat_statements_reset()", db="app")
    c = Raw(dm.pool_port)
    div = "SELECT 100 / $1::int AS q, 'div' AS tag"
    assert types(c.send(parse(div, name="d") + SYNC)) == "1Z"
    r = c.send(b"".join(bind([b"%d" % i], stmt="d") + EXEC for i in (1, 2, 4, 5, 10)) + SYNC)
    assert types(r) == "2DC" * 5 + "Z", r
    q = entry(dm, "::int AS q", calls=5)
    assert (q["calls"], q["rows"], q["errors"]) == (5, 5, 0), q
    # an error in the middle: the server skips the rest up to Sync, and
    # those are not counted
    r = c.send(bind([b"1"], stmt="d") + EXEC + bind([b"0"], stmt="d") + EXEC +
               bind([b"2"], stmt="d") + EXEC + SYNC)
    assert types(r) == "2DC2EZ", r
    q = entry(dm, "::int AS q", calls=7)
    assert (q["calls"], q["rows"], q["errors"]) == (7, 6, 1), q
    c.close()
    assert pgss_calls(pg, "::int AS q") == 6      # the failed one is not in pgss

    # psycopg 3's executemany pipelines every Execute before one Sync
    with psycopg.connect(conninfo(dm.pool_port), autocommit=True) as conn:
        conn.cursor().executemany("UPDATE products SET price = price WHERE id = %s",
                                  [(i,) for i in range(1, 21)])
    q = entry(dm, "SET price = price", calls=20)
    assert (q["calls"], q["rows"]) == (20, 20), q
    assert pgss_calls(pg, "UPDATE products SET price = price") == 20


# ---- 2. the result cache for the extended protocol --------------------------------------

def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


class Raw:
    """A protocol-level client (the pooler with auth_type = trust): sends the
    exact messages given and returns the exact bytes up to ReadyForQuery."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = struct.pack("!I", 196608) + cstr("user") + cstr("app") + cstr("database") + \
            cstr("app") + b"\0"
        self.s.sendall(struct.pack("!I", len(body) + 4) + body)
        self.buf = b""
        self.until_ready()

    def read_msg(self):
        while True:
            if len(self.buf) >= 5:
                n = struct.unpack("!I", self.buf[1:5])[0]
                if len(self.buf) >= n + 1:
                    m, self.buf = self.buf[:n + 1], self.buf[n + 1:]
                    return m
            chunk = self.s.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk

    def until_ready(self):
        out = b""
        while True:
            m = self.read_msg()
            out += m
            if m[:1] == b"Z":
                return out

    def send(self, data):
        self.s.sendall(data)
        return self.until_ready()

    def close(self):
        self.s.sendall(msg(b"X"))
        self.s.close()


def parse(sql, name="", types=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(params, stmt="", pfmt=0, rfmt=0):
    b = cstr("") + cstr(stmt) + struct.pack("!HH", 1, pfmt) + struct.pack("!H", len(params))
    for p in params:
        b += struct.pack("!I", len(p)) + p
    return msg(b"B", b + struct.pack("!HH", 1, rfmt))


DESC_P = msg(b"D", b"P\0")
EXEC = msg(b"E", b"\0" + struct.pack("!I", 0))
SYNC = msg(b"S")


def rows(reply):
    """The DataRow messages of a reply."""
    out, i = [], 0
    while i < len(reply):
        n = struct.unpack("!I", reply[i + 1:i + 5])[0]
        if reply[i:i + 1] == b"D":
            out.append(reply[i:i + 1 + n])
        i += 1 + n
    return out


def types(reply):
    out, i = [], 0
    while i < len(reply):
        n = struct.unpack("!I", reply[i + 1:i + 5])[0]
        out.append(reply[i:i + 1].decode())
        i += 1 + n
    return "".join(out)


def cache_stats(dm):
    return queries(dm)["query_cache"]


SEL = "SELECT name, price FROM products WHERE id = $1"
UPD = "UPDATE products SET name = $1 WHERE id = $2"


def learn_fingerprint(hotpath_factory, pg, sql, params):
    dm = start(hotpath_factory, pg)
    with psycopg.connect(conninfo(dm.pool_port), autocommit=True) as conn:
        conn.execute(sql.replace("$1", "%s"), params).fetchall()
    q = entry(dm, sql.split(" WHERE")[0], calls=1)
    dm.stop()
    return q["fingerprint"]


def start_trust(hotpath_factory, pg, mode, extra):
    return start_pooler(hotpath_factory, pg, auth_type="trust", mode=mode, extra=QA + extra)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_result_cache_extended_protocol(hotpath_factory, pg, mode):
    fp = learn_fingerprint(hotpath_factory, pg, SEL, (5,))
    dm = start_trust(hotpath_factory, pg, mode, "[query_cache]\nfingerprints = %s\nttl = 60s\n" % fp)
    pg.sql("UPDATE products SET name = 'p' || id", db="app")
    c = Raw(dm.pool_port)
    unnamed = parse(SEL) + bind([b"5"]) + DESC_P + EXEC + SYNC
    first = c.send(unnamed)
    assert types(first) == "12TDCZ" and b"p5" in first, first
    s = cache_stats(dm)
    assert (s["misses"], s["stores"], s["hits"]) == (1, 1, 0), s
    again = c.send(unnamed)
    assert again == first                  # byte for byte what the server sent
    assert cache_stats(dm)["hits"] == 1
    # the key holds the parameters, their formats, the result formats and
    # which messages came: each of these is a miss first, then a hit
    variants = [
        parse(SEL) + bind([b"6"]) + DESC_P + EXEC + SYNC,                      # other value
        parse(SEL) + bind([struct.pack("!i", 5)], pfmt=1) + DESC_P + EXEC + SYNC,  # binary
        parse(SEL, types=(23,)) + bind([b"5"]) + DESC_P + EXEC + SYNC,         # typed
        parse(SEL) + bind([b"5"], rfmt=1) + DESC_P + EXEC + SYNC,              # binary rows
        parse(SEL) + bind([b"5"]) + EXEC + SYNC,                               # no Describe
        parse(SEL) + bind([b"5"]) + msg(b"D", b"S\0") + EXEC + SYNC,           # Describe S
    ]
    answers = []
    for v in variants:
        before = cache_stats(dm)
        a = c.send(v)
        b = c.send(v)
        after = cache_stats(dm)
        assert a == b, (v, a, b)
        assert after["misses"] == before["misses"] + 1 and after["hits"] == before["hits"] + 1
        answers.append(a)
    assert b"p6" in answers[0] and b"p5" not in answers[0]
    assert rows(answers[1]) == rows(first) and rows(answers[2]) == rows(first)
    assert rows(answers[3]) != rows(first)                  # numeric in binary
    assert types(answers[4]) == "12DCZ" and rows(answers[4]) == rows(first)
    assert types(answers[5]) == "12tTDCZ" and rows(answers[5]) == rows(first)

    # after a hit the server never saw that Parse: a Bind of the unnamed
    # statement without a Parse of its own still runs it
    c.send(unnamed)
    nop = c.send(bind([b"7"]) + DESC_P + EXEC + SYNC)
    assert types(nop) == "2TDCZ" and b"p7" in nop, nop

    # a named statement prepared earlier: same answer minus ParseComplete
    assert types(c.send(parse(SEL, name="s1") + SYNC)) == "1Z"
    named = bind([b"5"], stmt="s1") + DESC_P + EXEC + SYNC
    before = cache_stats(dm)
    n1 = c.send(named)
    n2 = c.send(named)
    assert n1 == n2 == first[5:], (n1, first)
    after = cache_stats(dm)
    assert after["misses"] == before["misses"] + 1 and after["hits"] == before["hits"] + 1

    # writes through the pooler: extended protocol, named statement, simple
    # query, other client - the next read is never stale
    w = Raw(dm.pool_port)
    assert types(w.send(parse(UPD, name="upd") + SYNC)) == "1Z"
    for i in range(10):
        val = ("v%d" % i).encode()
        if i % 5 == 0:
            r = w.send(parse(UPD) + bind([val, b"5"]) + EXEC + SYNC)
        elif i % 5 == 1:
            r = w.send(bind([val, b"5"], stmt="upd") + EXEC + SYNC)
        elif i % 5 == 2:
            r = w.send(msg(b"Q", cstr("UPDATE products SET name = '%s' WHERE id = 5" %
                                       val.decode())))
        elif i % 5 == 3:        # what EXECUTE runs is not in its text
            r = w.send(msg(b"Q", cstr("PREPARE u(text) AS UPDATE products SET name = $1 "
                                       "WHERE id = 5; EXECUTE u('%s'); DEALLOCATE u" %
                                       val.decode())))
        else:
            r = w.send(msg(b"Q", cstr("DO $$BEGIN UPDATE products SET name = '%s' "
                                       "WHERE id = 5; END$$" % val.decode())))
        assert "E" not in types(r) and (b"UPDATE 1" in r or b"DO" in r), r
        for q in (unnamed, named):
            got = c.send(q)
            assert val in got and rows(got) == rows(c.send(q)), (i, got)
    # a privilege change: the answer cached before must not outlive it
    c.send(unnamed)
    assert "E" not in types(w.send(msg(b"Q", cstr("REVOKE SELECT ON products FROM app"))))
    denied = c.send(unnamed)
    assert types(denied) == "1E" + "Z" and b"permission denied" in denied, denied
    assert "E" not in types(w.send(msg(b"Q", cstr("GRANT SELECT ON products TO app"))))
    assert b"v9" in c.send(unnamed)
    # inside a transaction block nothing is answered from the cache
    before = cache_stats(dm)
    tx = c.send(msg(b"Q", cstr("BEGIN")))
    assert tx.endswith(b"T")
    c.send(unnamed)
    c.send(unnamed)
    c.send(msg(b"Q", cstr("COMMIT")))
    after = cache_stats(dm)
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"]), after
    # the server ran the SELECT only on misses (and the two in the
    # transaction, and the Bind without a Parse, which is not looked up)
    q = entry(dm, "FROM products WHERE id", calls=after["misses"] + 3)
    assert q["calls"] == after["misses"] + 3, (q, after)
    w.close()
    c.close()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_result_cache_psycopg_and_pgbench(hotpath_factory, pg, mode, tmp_path):
    fp = learn_fingerprint(hotpath_factory, pg, SEL, (5,))
    dm = start(hotpath_factory, pg, mode=mode,
               extra="[query_cache]\nfingerprints = %s\nttl = 60s\n" % fp)
    pg.sql("UPDATE products SET name = 'p' || id", db="app")
    sql = SEL.replace("$1", "%s")
    direct = psycopg.connect("host=127.0.0.1 port=%d user=app password=secret dbname=app "
                             "sslmode=disable" % pg.port, autocommit=True)
    conn = psycopg.connect(conninfo(dm.pool_port), autocommit=True)
    # text and binary, unnamed and prepared: the same rows as the server's, every time
    for binary in (False, True):
        for prepare in (False, True):
            for i in (5, 6, 5, 6):
                want = direct.execute(sql, (i,), binary=binary).fetchall()
                cur = conn.execute(sql, (i,), binary=binary, prepare=prepare)
                assert cur.fetchall() == want
                assert [d.type_code for d in cur.description] == \
                    [d.type_code for d in direct.execute(sql, (i,), binary=binary).description]
    s = cache_stats(dm)
    assert s["hits"] >= 8 and s["misses"] >= 4, s
    # never stale: a write through the pooler (another client, extended
    # protocol) is seen by the next read
    other = psycopg.connect(conninfo(dm.pool_port), autocommit=True)
    for k in range(10):
        other.execute("UPDATE products SET name = %s WHERE id = %s", ("w%d" % k, 5),
                      prepare=k % 2 == 0)
        for binary in (False, True):
            assert conn.execute(sql, (5,), binary=binary).fetchall()[0][0] == "w%d" % k
    other.close()

    # pgbench, extended and prepared, reading 100 rows at random
    script = tmp_path / "sel.sql"
    script.write_text("\\set id random(1, 100)\nSELECT name, price FROM products WHERE id = :id;\n")
    for m in ("extended", "prepared"):
        before = cache_stats(dm)
        assert pgbench(dm.pool_port, "-M", m, "-f", str(script), "-c", "2", "-t", "200") == 400
        after = cache_stats(dm)
        assert after["hits"] - before["hits"] >= 200, (m, before, after)
        assert after["hits"] + after["misses"] - before["hits"] - before["misses"] == 400
    conn.close()
    direct.close()


# ---- 3. [query_analysis] and [query_cache] reloaded on SIGHUP -------------------------

def recommendations(dm):
    st, j = dm.api_json("GET", "/api/v2/performance/recommendations?scope=db",
                        token_name="reader")
    assert st == 200, j
    return j["analysis"]


def optimize(dm):
    st, j = dm.api_json("POST", "/api/v2/performance/optimize",
                        body={"optimization_type": "index_recommendations",
                              "scope": "database:app"})
    assert st == 202, j
    deadline = time.time() + 60
    while time.time() < deadline:
        st, j = dm.api_json("GET", j["job"]["status_url"], token_name="reader")
        if j["job"]["status"] not in ("queued", "running"):
            return j["job"]
        time.sleep(0.2)
    raise AssertionError(j)


def reload_with(dm, pg, extra, needle):
    n = dm.log_text().count(needle)
    dm.write_config(qa_ini(pg, dm.pool_port, dm.users, extra=extra))
    dm.reload()
    deadline = time.time() + 10
    while dm.log_text().count(needle) <= n:
        assert time.time() < deadline, dm.log_text()
        time.sleep(0.05)


def test_reload_query_analysis_and_cache(hotpath_factory, pg):
    fp = learn_fingerprint(hotpath_factory, pg, SEL, (5,))
    dm = start(hotpath_factory, pg, extra="slow_query_threshold = 1h\ncreate_extension = no\n")
    pg.sql("UPDATE products SET name = 'p' || id", db="app")
    conn = psycopg.connect(conninfo(dm.pool_port), autocommit=True)
    sql = SEL.replace("$1", "%s")
    for _ in range(3):
        conn.execute(sql, (5,)).fetchall()
    assert cache_stats(dm)["fingerprints"] == 0
    assert recommendations(dm)["slow_query_threshold_ms"] == 3600000
    job = optimize(dm)
    assert job["result"]["queries_analysed"] == 0
    assert not [e for e in job["result"]["errors"] if fp in e], job

    # add a cached fingerprint and lower the slow threshold: both apply at once
    reload_with(dm, pg, "slow_query_threshold = 0\ncreate_extension = no\n"
                "[query_cache]\nfingerprints = %s\nttl = 30s\n" % fp,
                "pooler: reload: result cache on for")
    assert cache_stats(dm)["fingerprints"] == 1
    for binary in (True, False, True, False):     # text last: the advisor's sample
        # prepare=False: psycopg would otherwise switch to a named statement
        # (another request shape, another key) after a few executions
        assert conn.execute(sql, (5,), binary=binary, prepare=False).fetchall()[0][0] == "p5"
    s = cache_stats(dm)
    assert (s["misses"], s["hits"]) == (2, 2), str(s)
    assert recommendations(dm)["slow_query_threshold_ms"] == 0
    # now the query is slow enough to be taken (analysed, or named with the
    # reason it could not be: its latest sample may have binary values)
    job = optimize(dm)
    assert job["status"] == "succeeded", job
    assert job["result"]["queries_analysed"] >= 1 or \
        [e for e in job["result"]["errors"] if fp in e], job
    # writes are watched from the reload on
    conn.execute("UPDATE products SET name = 'r5' WHERE id = 5")
    assert conn.execute(sql, (5,), prepare=False).fetchall()[0][0] == "r5"
    conn.execute("UPDATE products SET name = 'p5' WHERE id = 5")

    # a key that needs a restart is named, the rest still applies
    reload_with(dm, pg, "max_fingerprints = 50\nslow_query_threshold = 1h\n"
                "[query_cache]\nfingerprints =\n", "pooler: reload: result cache off")
    assert "take effect only after a restart: query_analysis.max_fingerprints" in dm.log_text()
    assert recommendations(dm)["slow_query_threshold_ms"] == 3600000
    before = cache_stats(dm)
    assert before["fingerprints"] == 0
    for _ in range(3):
        assert conn.execute(sql, (5,), prepare=False).fetchall()[0][0] == "p5"
    after = cache_stats(dm)
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"]), after
    conn.close()


def test_result_cache_l2_stall_does_not_stall_the_pooler(hotpath_factory, pg):
    """With Redis behind the result cache, a lookup that misses L1 waits for
    Redis off the pooler's thread: while Redis is frozen for a second, other
    clients' queries (cached or not) go on at once, and the parked request
    gets its answer from L2 once Redis is back."""
    import signal
    import threading
    from test_tier import RedisProc, tracking_up
    rp = RedisProc()
    try:
        fp = learn_fingerprint(hotpath_factory, pg, SEL, (5,))
        dm = start_trust(hotpath_factory, pg, "transaction",
                         "[query_cache]\nfingerprints = %s\nttl = 60s\n"
                         "[redis]\naddress = 127.0.0.1:%d\ncommand_timeout = 3s\n"
                         "breaker_open_time = 500ms\n" % (fp, rp.port))
        assert tracking_up(dm)           # L2 values are cacheable in L1 from now on
        pg.sql("UPDATE products SET name = 'p' || id", db="app")
        direct = rp.client()
        a, b = Raw(dm.pool_port), Raw(dm.pool_port)
        q5 = parse(SEL) + bind([b"5"]) + DESC_P + EXEC + SYNC
        q6 = parse(SEL) + bind([b"6"]) + DESC_P + EXEC + SYNC
        first = a.send(q5)
        assert b"p5" in first
        # the store reaches Redis without the pooler waiting for it
        deadline = time.time() + 5
        while not direct.keys("hpq:*") and time.time() < deadline:
            time.sleep(0.02)
        assert direct.keys("hpq:*"), "the answer was not stored in Redis"
        b.send(q6)                       # q6: stored too

        def l1_hits():
            return dm.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]["l1_hits"]
        # read back from L2 into L1 (a fill may be skipped once: Redis's
        # invalidation for our own store may land after the read began)
        for _ in range(20):
            h = l1_hits()
            b.send(q6)
            if l1_hits() > h:
                break
        else:
            pytest.fail("q6 never became an L1 hit")
        got = {}

        def parked():
            s = time.time()
            got["a"] = a.send(q5)        # L1 miss (the store dropped it): Redis
            got["t"] = time.time() - s

        rp.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.time()
            th = threading.Thread(target=parked)
            th.start()
            time.sleep(0.05)
            worst, n = 0.0, 0
            while time.time() < t0 + 0.8:
                s = time.time()
                r = b.send(msg(b"Q", cstr("SELECT 1")))     # not cached: the server
                assert b"E" not in r[:1]
                r6 = b.send(q6)                             # cached in L1
                assert b"p6" in r6
                worst = max(worst, time.time() - s)
                n += 1
            time.sleep(max(0, t0 + 1.0 - time.time()))
        finally:
            rp.proc.send_signal(signal.SIGCONT)
        th.join(10)
        assert n >= 10 and worst < 0.25, (n, worst)
        assert got["a"] == first and got["t"] >= 0.5, got.get("t")
        s = cache_stats(dm)
        assert s["l2_waits"] >= 2 and s["hits"] >= 3, s
        a.close()
        b.close()
    finally:
        rp.close()
