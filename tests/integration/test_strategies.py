"""
Per key-pattern strategies, loaders and warming against a real PostgreSQL 15
(pgserver.PgServer) and the real daemon over its RESP and REST sockets:
read-through through a SQL loader (captures as parameters), single-flight
(loader calls counted by the daemon and by PostgreSQL itself),
write-through, write-behind (retry while the database is down, bounded
queue, dead letters), stale-while-revalidate, stale-if-error,
refresh-ahead, an HTTP origin loader, warm jobs from each source and the
warm restart across a daemon restart.
"""
import http.server
import os
import threading
import time

import pytest

from conftest import encode
from pgserver import PgServer
from test_l2_async import hit_latencies, send_raw


@pytest.fixture(scope="module")
def pg():
    server = PgServer().start()
    server.sql("CREATE TABLE users (id int PRIMARY KEY, data text NOT NULL)")
    server.sql("CREATE TABLE calls (n int)")
    yield server
    server.cleanup()


def dsn(pg):
    return "host=%s port=%d user=postgres dbname=postgres" % (pg.sock, pg.port)


def reset(pg, rows):
    pg.sql("TRUNCATE users; TRUNCATE calls")
    for k, v in rows.items():
        pg.sql("INSERT INTO users VALUES (%d, '%s')" % (k, v))


def ini(pg, strategy="", loader="", extra=""):
    return """
[loader.users]
dsn = %s
query = SELECT data FROM users WHERE id = $1::int
write_query = INSERT INTO users VALUES ($1::int, $2) ON CONFLICT (id) DO UPDATE SET data = $2
delete_query = DELETE FROM users WHERE id = $1::int
warm_query = SELECT 'user:' || id, data FROM users ORDER BY id
timeout = 2s
%s
[strategy.users]
pattern = user:*
loader = users
%s
%s
""" % (dsn(pg), loader, strategy, extra)


def strat(dm, name):
    st, j = dm.api_json("GET", "/api/v2/cache/strategies")
    assert st == 200, j
    return [s for s in j["strategies"] if s["name"] == name][0], j


def wait_until(fn, timeout=10, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def test_read_through_sql_loader(pg, hotpath_factory):
    reset(pg, {1: "alice", 2: "bob"})
    dm = hotpath_factory(ini(pg, "ttl = 60s"))
    r = dm.redis()
    assert r.get("user:1") == b"alice"
    assert r.get("user:2") == b"bob"
    assert r.get("user:999") is None
    # cached: a change behind the cache's back is not seen while fresh
    pg.sql("UPDATE users SET data = 'changed' WHERE id = 1")
    assert r.get("user:1") == b"alice"
    # a capture the query cannot take is a loader error, not an injection
    with pytest.raises(Exception) as e:
        r.get("user:1;DROP TABLE users")
    assert "LOADFAIL" in str(e.value)
    assert pg.sql("SELECT count(*) FROM users") == "2"
    # keys of no strategy stay plain L1
    r.set("other", "x")
    assert r.get("other") == b"x"
    s, j = strat(dm, "users")
    assert s["loads"] == 4 and s["not_found"] == 1 and s["load_errors"] == 1
    ld = j["loaders"][0]
    assert ld["found"] == 2 and ld["pool"]["open"] >= 1
    assert dm.metric("hotpath_loader_calls_total", {"loader": "users", "result": "found"}) == 2


def concurrent_gets(dm, key, n=24):
    out = []
    barrier = threading.Barrier(n)

    def one():
        c = dm.redis()
        barrier.wait()
        out.append(c.get(key))
    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_single_flight_one_load(pg, hotpath_factory):
    reset(pg, {7: "seven"})
    # the loader records each call in the database itself
    pg.sql("CREATE OR REPLACE FUNCTION slow_get(k int) RETURNS text LANGUAGE sql AS "
           "$$ INSERT INTO calls VALUES (1); SELECT pg_sleep(0.4); "
           "SELECT data FROM users WHERE id = k $$")
    dm = hotpath_factory("""
[loader.slow]
dsn = %s
query = SELECT slow_get($1::int)
[strategy.slow]
pattern = s:*
loader = slow
[core]
workers = 4
""" % dsn(pg))
    got = concurrent_gets(dm, "s:7")
    assert got == [b"seven"] * 24
    assert pg.sql("SELECT count(*) FROM calls") == "1"
    s, _ = strat(dm, "slow")
    assert s["loads"] == 1 and s["coalesced"] >= 1


def test_without_single_flight_loads_repeat(pg, hotpath_factory):
    """The control for the test above: the same storm without single-flight
    calls the loader more than once, so the count above can fail."""
    reset(pg, {7: "seven"})
    pg.sql("CREATE OR REPLACE FUNCTION slow_get(k int) RETURNS text LANGUAGE sql AS "
           "$$ INSERT INTO calls VALUES (1); SELECT pg_sleep(0.4); "
           "SELECT data FROM users WHERE id = k $$")
    dm = hotpath_factory("""
[loader.slow]
dsn = %s
query = SELECT slow_get($1::int)
[strategy.slow]
pattern = s:*
loader = slow
single_flight = no
[core]
workers = 4
""" % dsn(pg))
    got = concurrent_gets(dm, "s:7")
    assert got == [b"seven"] * 24
    assert int(pg.sql("SELECT count(*) FROM calls")) >= 2


def test_write_through(pg, hotpath_factory):
    reset(pg, {})
    dm = hotpath_factory(ini(pg, "write = through\nttl = 60s"))
    r = dm.redis()
    assert r.set("user:5", "five") is True
    assert pg.sql("SELECT data FROM users WHERE id = 5") == "five"
    assert r.get("user:5") == b"five"
    assert r.delete("user:5") == 1
    assert pg.sql("SELECT count(*) FROM users WHERE id = 5") == "0"
    assert r.get("user:5") is None
    with pytest.raises(Exception) as e:
        r.incr("user:5")
    assert "only SET and DEL" in str(e.value)
    # the database refuses: the client hears it and the cache keeps the old value
    r.set("user:6", "old")
    pg.stop()
    try:
        with pytest.raises(Exception) as e:
            r.set("user:6", "new")
        assert "WRITEFAIL" in str(e.value)
        assert r.get("user:6") == b"old"
    finally:
        pg.start()


def test_write_behind_retries_until_the_database_is_back(pg, hotpath_factory):
    reset(pg, {})
    dm = hotpath_factory(ini(pg, "write = behind\nbatch_max = 50\nqueue_max = 100\nmax_attempts = 30",
                             extra="[tasks]\nbackoff_base = 100ms\nbackoff_max = 400ms"))
    r = dm.redis()
    for i in range(20):
        assert r.set("user:%d" % i, "v%d" % i) is True
    assert wait_until(lambda: pg.sql("SELECT count(*) FROM users") == "20")
    # now the database goes away: writes are accepted, cached, and land later
    pg.stop()
    try:
        for i in range(20, 30):
            assert r.set("user:%d" % i, "late%d" % i) is True
        assert r.get("user:25") == b"late25"
        time.sleep(1.0)
        s, _ = strat(dm, "users")
        assert s["write_behind"]["pending"] == 10
        assert s["write_behind"]["failed_attempts"] >= 1
    finally:
        pg.start()
    assert wait_until(lambda: pg.sql("SELECT count(*) FROM users") == "30", timeout=15)
    assert pg.sql("SELECT data FROM users WHERE id = 25") == "late25"
    s, _ = strat(dm, "users")
    assert s["write_behind"]["written"] == 30 and s["write_behind"]["dead"] == 0
    assert s["write_behind"]["pending"] == 0


def test_write_behind_queue_pushes_back_and_dead_letters(pg, hotpath_factory):
    reset(pg, {})
    dm = hotpath_factory(ini(pg, "write = behind\nqueue_max = 3\nmax_attempts = 2",
                             extra="[tasks]\nbackoff_base = 200ms\nbackoff_max = 200ms"))
    r = dm.redis()
    pg.stop()
    try:
        for i in range(3):
            assert r.set("user:%d" % i, "x") is True
        with pytest.raises(Exception) as e:
            r.set("user:9", "y")
        assert "BUSY" in str(e.value)
        # the refused write changed nothing: the key is not cached (and
        # reading it would ask the stopped database)
        st, j = dm.api_json("GET", "/api/v2/cache/keys/user:9")
        assert st == 200 and j["keys"] == []
        # two attempts, then the batch is a dead letter
        def dead():
            s, _ = strat(dm, "users")
            return s["write_behind"]["dead"] >= 1 and s["write_behind"]["pending"] < 3
        assert wait_until(dead, timeout=15)
        st, j = dm.api_json("GET", "/api/v2/cache/tiers")
        dl = [d for d in j["tasks"]["dead_letters"] if d["kind"] == "write-behind"]
        assert dl and "users:" in dl[0]["label"]
        assert dm.metric("hotpath_strategy_write_behind_total",
                         {"strategy": "users", "result": "rejected"}) == 1
    finally:
        pg.start()


def test_stale_while_revalidate_and_stale_if_error(pg, hotpath_factory):
    reset(pg, {1: "one", 2: "two"})
    dm = hotpath_factory(ini(pg, "ttl = 600ms\nstale_while_revalidate = 30s", extra="""
[strategy.sie]
pattern = sie:*
loader = users
ttl = 600ms
stale_if_error = 30s
"""))
    r = dm.redis()
    assert r.get("user:1") == b"one"
    assert r.get("sie:2") == b"two"
    pg.sql("UPDATE users SET data = 'uno' WHERE id = 1")
    time.sleep(0.8)
    # past ttl, within SWR: the old value at once, a reload behind it
    assert r.get("user:1") == b"one"
    assert wait_until(lambda: r.get("user:1") == b"uno")
    s, _ = strat(dm, "users")
    assert s["stale_served"] >= 1
    # stale-if-error: the database is down, the stale value is still served
    pg.stop()
    try:
        time.sleep(0.8)
        assert r.get("sie:2") == b"two"
        s, _ = strat(dm, "sie")
        assert s["stale_if_error_served"] >= 1
        # a key never loaded has nothing stale to give
        with pytest.raises(Exception) as e:
            r.get("sie:3")
        assert "LOADFAIL" in str(e.value)
    finally:
        pg.start()


def test_refresh_ahead(pg, hotpath_factory):
    reset(pg, {1: "a"})
    dm = hotpath_factory(ini(pg, "ttl = 2s\nrefresh_ahead = 50"))
    r = dm.redis()
    assert r.get("user:1") == b"a"
    pg.sql("UPDATE users SET data = 'b' WHERE id = 1")
    time.sleep(1.2)
    # still fresh (before 2s) but past 50%: served, and refreshed behind
    assert r.get("user:1") == b"a"
    assert wait_until(lambda: r.get("user:1") == b"b", timeout=0.7)
    s, _ = strat(dm, "users")
    assert s["refreshes_queued"] >= 1 and s["loads"] == 2


class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/items/") and self.path != "/items/404":
            body = ("item %s" % self.path[7:]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *a):
        pass


def test_http_origin_loader(hotpath_factory):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        dm = hotpath_factory("""
[loader.web]
url = http://127.0.0.1:%d/items/{1}
[strategy.web]
pattern = item:*
loader = web
""" % srv.server_address[1])
        r = dm.redis()
        assert r.get("item:42") == b"item 42"
        assert r.get("item:a b") == b"item a%20b"
        assert r.get("item:404") is None
    finally:
        srv.shutdown()


def warm(dm, body):
    st, j = dm.api_json("POST", "/api/v2/performance/cache/warm", body=body)
    assert st == 202, j
    jid = j["job_id"]

    def done():
        st, s = dm.api_json("GET", "/api/v2/performance/cache/warm/%d" % jid)
        return s if s["status"] in ("done", "failed") else None
    return wait_until(done, timeout=15)


def l1_keys(dm):
    st, j = dm.api_json("GET", "/api/v2/cache/keys?count=1000")
    assert st == 200, j
    return sorted(k["key"] for k in j["keys"])


def test_warm_from_keys_sql_and_pattern(pg, hotpath_factory, redis_server):
    reset(pg, {1: "a", 2: "b", 3: "c"})
    dm = hotpath_factory(ini(pg, "ttl = 60s"))
    s = warm(dm, {"cache_scope": "l1", "data_sources": [
        {"type": "keys", "keys": ["user:1", "user:2", "user:77"]}]})
    assert s["status"] == "done" and s["keys_warmed"] == 2 and s["keys_missing"] == 1
    assert l1_keys(dm) == ["user:1", "user:2"]
    s = warm(dm, {"data_sources": [{"type": "sql", "loader": "users"}]})
    assert s["status"] == "done" and s["keys_warmed"] == 3
    assert "user:3" in l1_keys(dm)
    # bad bodies: specific 400s
    for body, needle in [({}, "data_sources"), ({"data_sources": []}, "data_sources"),
                         ({"data_sources": [{"type": "nope"}]}, "type"),
                         ({"data_sources": [{"type": "keys", "keys": [1]}]}, "keys[0]"),
                         ({"data_sources": [{"type": "sql", "loader": "none"}]}, "loader.none"),
                         ({"data_sources": [{"type": "pattern", "pattern": "x*"}]}, "redis"),
                         ({"cache_scope": "l9", "data_sources": [{"type": "snapshot"}]},
                          "cache_scope")]:
        st, j = dm.api_json("POST", "/api/v2/performance/cache/warm", body=body)
        assert st == 400 and needle in j["error"]["message"], (body, j)
    st, j = dm.api_json("POST", "/api/v2/performance/cache/warm", token_name="reader",
                        body={"data_sources": [{"type": "snapshot"}]})
    assert st == 403
    # pattern over L2
    import redis
    rc = redis.Redis(host="127.0.0.1", port=redis_server)
    rc.set("wp:1", "x1")
    rc.set("wp:2", "x2")
    dm2 = hotpath_factory("[redis]\naddress = 127.0.0.1:%d" % redis_server)
    s = warm(dm2, {"data_sources": [{"type": "pattern", "pattern": "wp:*"}]})
    assert s["status"] == "done" and s["keys_warmed"] == 2
    assert [k for k in l1_keys(dm2) if k.startswith("wp:")] == ["wp:1", "wp:2"]


def test_warm_restart_from_snapshot(hotpath_factory, tmp_path):
    snap = str(tmp_path / "state" / "hotkeys.snap")
    extra = "[warm]\nsnapshot_file = %s\nsnapshot_keys = 3" % snap
    dm = hotpath_factory(extra)
    r = dm.redis()
    for i in range(5):
        r.set("k%d" % i, "value%d" % i, ex=3600 if i else None)
    for i in range(5):
        for _ in range(i + 1):        # k4 hottest, k0 coldest
            r.get("k%d" % i)
    assert dm.stop() == 0
    assert "saved 3 hot keys" in dm.log_text()
    data = open(snap, "rb").read()
    assert data[:6] == b"HPSNAP"
    dm2 = hotpath_factory(extra)
    r2 = dm2.redis()
    assert wait_until(lambda: r2.get("k4") == b"value4")
    assert r2.get("k3") == b"value3" and r2.get("k2") == b"value2"
    assert r2.get("k0") is None and r2.get("k1") is None
    assert 3000 < r2.ttl("k4") <= 3600
    # a corrupted snapshot is refused whole, with a reason
    dm2.stop()
    with open(snap, "r+b") as f:
        f.seek(30)
        f.write(b"\xff")
    dm3 = hotpath_factory(extra)
    assert dm3.wait_log("checksum mismatch")
    assert dm3.redis().get("k4") is None


# ---- asynchronous loads: a slow origin does not hold the worker ------------------------

def slow_ini(pg, secs, extra=""):
    pg.sql("CREATE OR REPLACE FUNCTION slow_get(k int) RETURNS text LANGUAGE sql AS "
           "$$ INSERT INTO calls VALUES (1); SELECT pg_sleep(%s); "
           "SELECT data FROM users WHERE id = k $$" % secs)
    return """
[loader.slow]
dsn = %s
query = SELECT slow_get($1::int)
timeout = 10s
[strategy.slow]
pattern = s:*
loader = slow
[core]
workers = 1
%s
""" % (dsn(pg), extra)


def blocked_clients(r):
    return r.info("clients")["blocked_clients"]


def test_slow_load_does_not_delay_other_connections(pg, hotpath_factory):
    """One worker thread: while a miss waits 3 s for its loader, another
    connection of the same worker gets its L1 hits answered. With the load
    on the worker thread the hits would wait for it and the parked client
    would have its answer before they finish."""
    reset(pg, {7: "seven"})
    dm = hotpath_factory(slow_ini(pg, 3))
    other = dm.redis()
    for i in range(50):
        other.set("plain:%d" % i, "v%d" % i)
    got = []
    slow = threading.Thread(target=lambda: got.append(dm.redis().get("s:7")))
    slow.start()
    assert wait_until(lambda: blocked_clients(other) == 1)
    for i in range(50):
        assert other.get("plain:%d" % i) == b"v%d" % i
    # the slow client is still waiting for its loader: nothing above waited
    assert slow.is_alive() and got == []
    assert blocked_clients(other) == 1
    slow.join(15)
    assert got == [b"seven"]
    assert blocked_clients(other) == 0
    s, _ = strat(dm, "slow")
    assert s["parked"] == 1 and s["loads"] == 1
    # loaded once, now an L1 hit answered at once
    assert other.get("s:7") == b"seven"
    assert pg.sql("SELECT count(*) FROM calls") == "1"


def test_slow_write_through_does_not_delay_other_connections(pg, hotpath_factory):
    """One worker thread: a SET and a DEL of write-through keys wait a
    second each for the loader's write; L1 hits of another connection on
    the same worker are answered meanwhile, and a GET pipelined behind the
    SET on its connection sees the new value."""
    reset(pg, {3: "old"})
    pg.sql("CREATE OR REPLACE FUNCTION slow_put(k int, v text) RETURNS void LANGUAGE sql AS "
           "$$ SELECT pg_sleep(1); INSERT INTO users VALUES (k, v) ON CONFLICT (id) "
           "DO UPDATE SET data = v $$")
    pg.sql("CREATE OR REPLACE FUNCTION slow_del(k int) RETURNS void LANGUAGE sql AS "
           "$$ SELECT pg_sleep(1); DELETE FROM users WHERE id = k $$")
    dm = hotpath_factory("""
[loader.sw]
dsn = %s
query = SELECT data FROM users WHERE id = $1::int
write_query = SELECT slow_put($1::int, $2)
delete_query = SELECT slow_del($1::int)
timeout = 10s
[strategy.sw]
pattern = w:*
loader = sw
write = through
ttl = 60s
[core]
workers = 1
""" % dsn(pg))
    other = dm.redis()
    other.set("plain", "p")
    got = {}

    def pipe():
        got["set"] = send_raw(dm.resp_port, encode("SET", "w:3", "new") + encode("GET", "w:3"),
                              2)

    def delete():
        got["del"] = dm.redis().delete("w:4")

    ts = [threading.Thread(target=pipe), threading.Thread(target=delete)]
    t0 = time.time()
    for t in ts:
        t.start()
    assert wait_until(lambda: blocked_clients(other) == 2, 2)
    worst, n = hit_latencies(other, "plain", b"p", t0 + 0.8)
    for t in ts:
        t.join(15)
    assert n >= 20 and worst < 0.25, (n, worst)
    assert got["set"] == ["+OK", b"new"], got
    assert got["del"] == 0, got
    assert pg.sql("SELECT data FROM users WHERE id = 3") == "new"
    assert other.get("w:3") == b"new"
    s, _ = strat(dm, "sw")
    assert s["parked"] >= 2, s


def test_pipelined_replies_keep_their_order_behind_a_load(pg, hotpath_factory):
    reset(pg, {8: "eight", 9: "nine"})
    dm = hotpath_factory(slow_ini(pg, 0.3))
    r = dm.redis()
    r.set("plain", "p")
    p = r.pipeline(transaction=False)
    p.get("s:8")            # parks
    p.get("plain")          # waits behind it
    p.set("plain", "q")
    p.get("s:9")            # parks again, after the first load
    p.get("s:404")          # not found at the origin
    p.get("plain")
    p.ping()
    assert p.execute() == [b"eight", b"p", True, b"nine", None, b"q", True]
    # the same through the raw socket, several misses in one packet
    from conftest import resp_roundtrip
    data = resp_roundtrip(dm.resp_port,
                          b"GET s:8\r\nGET s:10\r\nECHO x\r\nGET s:9\r\n", 4, timeout=10)
    assert data == b"$5\r\neight\r\n$-1\r\n$1\r\nx\r\n$4\r\nnine\r\n"


def test_mget_of_strategy_keys_parks_once(pg, hotpath_factory):
    """An MGET whose strategy keys need their loader parks its client (one
    worker: the other connection's hits go on) and answers in key order,
    mixing loaded values, a key the origin lacks, L1 hits and keys no
    strategy covers; an MGET of hits answers inline."""
    reset(pg, {1: "one", 2: "two"})
    dm = hotpath_factory(slow_ini(pg, 1))
    other = dm.redis()
    other.set("plain", "p")
    got = []
    t = threading.Thread(target=lambda: got.append(
        dm.redis().mget("s:1", "plain", "s:404", "nope", "s:2", "s:1")))
    t0 = time.time()
    t.start()
    assert wait_until(lambda: blocked_clients(other) == 1)
    for _ in range(20):
        assert other.get("plain") == b"p"
    assert time.time() - t0 < 0.9 and t.is_alive()
    t.join(15)
    assert got == [[b"one", b"p", None, None, b"two", b"one"]]
    s, _ = strat(dm, "slow")
    assert s["loads"] == 3 and s["coalesced"] >= 1, s     # s:1 twice: one load
    assert blocked_clients(other) == 0
    parked = s["parked"]
    assert other.mget("s:1", "plain", "s:2") == [b"one", b"p", b"two"]
    assert strat(dm, "slow")[0]["parked"] == parked      # all hits: inline


def test_parked_clients_are_capped(pg, hotpath_factory):
    reset(pg, {1: "one", 2: "two"})
    dm = hotpath_factory(slow_ini(pg, 2, "[resp]\nmax_parked_clients = 1"))
    got = []
    first = threading.Thread(target=lambda: got.append(dm.redis().get("s:1")))
    first.start()
    r = dm.redis()
    assert wait_until(lambda: blocked_clients(r) == 1)
    with pytest.raises(Exception) as e:
        r.get("s:2")
    assert "BUSY too many clients waiting for loads" in str(e.value)
    first.join(15)
    assert got == [b"one"]
    # room again: the refused key loads now
    assert r.get("s:2") == b"two"
    s, _ = strat(dm, "slow")
    assert s["park_refused"] == 1 and s["parked"] == 2


def test_client_gone_while_parked(pg, hotpath_factory):
    """A client that disconnects while its load runs: the reply is dropped,
    the load still fills the cache, the daemon serves on and stops cleanly."""
    import socket
    reset(pg, {5: "five"})
    dm = hotpath_factory(slow_ini(pg, 0.5))
    s = socket.create_connection(("127.0.0.1", dm.resp_port))
    s.sendall(b"GET s:5\r\nGET s:5\r\n")
    r = dm.redis()
    assert wait_until(lambda: blocked_clients(r) == 1)
    s.close()
    assert wait_until(lambda: blocked_clients(r) == 0)
    assert r.get("s:5") == b"five"
    assert pg.sql("SELECT count(*) FROM calls") == "1"
    # a client parked when the daemon is told to stop still gets its answer
    got = []
    t = threading.Thread(target=lambda: got.append(dm.redis().get("s:6")))
    pg.sql("INSERT INTO users VALUES (6, 'six')")
    t.start()
    assert wait_until(lambda: blocked_clients(r) == 1)
    assert dm.stop() == 0
    t.join(10)
    assert got == [b"six"]


# ---- SIGHUP replaces strategies and loaders --------------------------------------------

def test_reload_replaces_strategies_and_loaders(pg, hotpath_factory):
    reset(pg, {1: "alice", 2: "bob"})
    pg.sql("CREATE OR REPLACE FUNCTION slow_get(k int) RETURNS text LANGUAGE sql AS "
           "$$ INSERT INTO calls VALUES (1); SELECT pg_sleep(1.5); "
           "SELECT data FROM users WHERE id = k $$")
    first = ini(pg, "ttl = 60s\nwrite = behind") + """
[loader.slow]
dsn = %s
query = SELECT slow_get($1::int)
timeout = 10s
[strategy.slow]
pattern = s:*
loader = slow
[core]
workers = 1
""" % dsn(pg)
    dm = hotpath_factory(first)
    r = dm.redis()
    assert r.get("user:1") == b"alice"
    # a client parked on the old set's loader across the reload
    got = []
    t = threading.Thread(target=lambda: got.append(dm.redis().get("s:2")))
    t.start()
    assert wait_until(lambda: blocked_clients(r) == 1)
    # a write-behind write queued in the old set
    assert r.set("user:5", "eve")
    dm.write_config("""
[loader.shout]
dsn = %s
query = SELECT upper(data) FROM users WHERE id = $1::int
[strategy.members]
pattern = member:*
loader = shout
ttl = 60s
[core]
workers = 1
""" % dsn(pg))
    dm.reload()
    assert dm.wait_log("reload: strategies and loaders replaced")
    assert r.get("member:2") == b"BOB"                    # new pattern, new loader
    assert r.get("user:2") is None                        # no strategy covers it now
    st, j = dm.api_json("GET", "/api/v2/cache/strategies")
    assert [s["name"] for s in j["strategies"]] == ["members"]
    assert [l["name"] for l in j["loaders"]] == ["shout"]
    t.join(15)
    assert got == [b"bob"]                                 # answered by the old set
    # the old set wrote its queue, then was freed
    assert wait_until(lambda: pg.sql("SELECT data FROM users WHERE id = 5") == "eve")
    assert dm.wait_log("strategies: a replaced set has drained and is freed")

    # a set the strategies cannot be built from keeps the running one
    dm.write_config("""
[loader.shout]
dsn = %s
query = SELECT upper(data) FROM users WHERE id = $1::int
[strategy.members]
pattern = m:*:*:*:*:*:*:*:*:*
loader = shout
[core]
workers = 1
""" % dsn(pg))
    dm.reload()
    assert dm.wait_log("reload: strategies/loaders rejected")
    assert r.get("member:1") == b"ALICE"
    st, j = dm.api_json("GET", "/api/v2/cache/strategies")
    assert [s["pattern"] for s in j["strategies"]] == ["member:*"]

    # no strategies at all: the keys are plain L1 again
    dm.write_config("[core]\nworkers = 1\n")
    dm.reload()
    assert wait_until(lambda: dm.api_json("GET", "/api/v2/cache/strategies")[1]["strategies"] == [])
    assert r.get("member:2") == b"BOB"                    # still in L1
    r.set("member:9", "plain")
    assert r.get("member:9") == b"plain"
    assert dm.stop() == 0


# ---- strategies with L2, the loader breaker, chunked origins, warming into L2 ------------

def test_strategy_with_l2(pg, hotpath_factory, redis_server):
    import redis
    rc = redis.Redis(host="127.0.0.1", port=redis_server)
    rc.delete("user:1", "user:2", "user:3")
    reset(pg, {1: "alice", 2: "bob", 3: "carol"})
    dm = hotpath_factory(ini(pg, "ttl = 60s\nstale_if_error = 30s") +
                         "[redis]\naddress = 127.0.0.1:%d\n" % redis_server)
    r = dm.redis()
    # a loaded value is stored in L2 for ttl + the stale window
    assert r.get("user:1") == b"alice"
    assert rc.get("user:1") == b"alice"
    assert 80000 < rc.pttl("user:1") <= 90000
    # a strategy miss asks L2 before the loader
    rc.set("user:2", "from-redis")
    assert r.get("user:2") == b"from-redis"
    s, _ = strat(dm, "users")
    assert s["loads"] == 1
    # L2's copy was taken into L1 with L2's TTL
    rc.set("user:2", "changed-in-redis")      # tracking drops our copy
    assert wait_until(lambda: r.get("user:2") == b"changed-in-redis")
    # a miss in both tiers goes to the loader and fills both
    assert r.get("user:3") == b"carol" and rc.get("user:3") == b"carol"
    s, _ = strat(dm, "users")
    assert s["loads"] == 2
    # another agent sharing the Redis gets the loaded value without loading
    dm2 = hotpath_factory(ini(pg, "ttl = 60s") +
                          "[redis]\naddress = 127.0.0.1:%d\n" % redis_server)
    assert dm2.redis().get("user:1") == b"alice"
    assert strat(dm2, "users")[0]["loads"] == 0


def test_strategy_l2_read_does_not_hold_the_worker(pg, hotpath_factory):
    """The L2 read a strategy makes before its loader parks the client: with
    Redis frozen for a second, L1 hits of other clients on the same (only)
    worker go on, and the parked reads finish from L2 or from the loader."""
    import signal
    from test_tier import RedisProc, tracking_up
    rp = RedisProc()
    try:
        reset(pg, {1: "alice", 2: "bob"})
        dm = hotpath_factory(ini(pg, "ttl = 60s") + "[core]\nworkers = 1\n[redis]\n"
                             "address = 127.0.0.1:%d\ncommand_timeout = 3s\n" % rp.port)
        assert tracking_up(dm)
        r = dm.redis()
        assert r.get("user:1") == b"alice"           # loaded: L1 and L2
        # (Redis's tracking invalidation for our own store may drop the L1
        # copy once: read until it is an L1 hit)
        for _ in range(40):
            h = strat(dm, "users")[0]["fresh_hits"]
            assert r.get("user:1") == b"alice"
            if strat(dm, "users")[0]["fresh_hits"] > h:
                break
            time.sleep(0.05)
        else:
            pytest.fail("user:1 never became an L1 hit")
        rp.client().set("user:9", "from-redis")       # only in L2
        got = {}

        def get(k):
            got[k] = dm.redis().get(k)

        rp.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.time()
            ts = [threading.Thread(target=get, args=(k,)) for k in ("user:9", "user:2")]
            for t in ts:
                t.start()
            time.sleep(0.05)
            worst, n = hit_latencies(r, "user:1", b"alice", t0 + 0.8)
            time.sleep(max(0, t0 + 1.0 - time.time()))
        finally:
            rp.proc.send_signal(signal.SIGCONT)
        for t in ts:
            t.join(10)
        assert n >= 20 and worst < 0.25, (n, worst)
        assert got == {"user:9": b"from-redis", "user:2": b"bob"}, got
        s, _ = strat(dm, "users")
        assert s["loads"] == 2 and s["parked"] >= 2, s
    finally:
        rp.close()


class FlakyOrigin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail = False
    hits = 0

    def do_GET(self):
        cls = type(self)
        cls.hits += 1
        if self.path.startswith("/c/"):
            # chunked: the body in pieces, with an extension and a trailer
            name = self.path[3:]
            body = ("chunked %s " % name).encode() + b"x" * (100000 if name == "big" else 10)
            if name == "bad":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"zz\r\nnot hex\r\n0\r\n\r\n")
                return
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 777):
                part = body[i:i + 777]
                ext = b";ext=1" if i == 0 else b""
                self.wfile.write(b"%x%s\r\n%s\r\n" % (len(part), ext, part))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
            return
        if cls.fail:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("ok %s" % self.path[3:]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def loader_state(dm, name):
    st, j = dm.api_json("GET", "/api/v2/cache/strategies")
    return [l for l in j["loaders"] if l["name"] == name][0]["breaker"]


def test_loader_breaker_and_chunked_origin(hotpath_factory):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyOrigin)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    port = srv.server_address[1]
    try:
        dm = hotpath_factory("""
[loader.chunks]
url = http://127.0.0.1:%d/c/{1}
[strategy.chunks]
pattern = c:*
loader = chunks
[loader.flaky]
url = http://127.0.0.1:%d/e/{1}
breaker_failure_pct = 50
breaker_open_time = 1s
[strategy.flaky]
pattern = f:*
loader = flaky
""" % (port, port))
        r = dm.redis()
        assert r.get("c:small") == b"chunked small " + b"x" * 10
        assert r.get("c:big") == b"chunked big " + b"x" * 100000
        with pytest.raises(Exception) as e:
            r.get("c:bad")
        assert "LOADFAIL" in str(e.value) and "chunked" in str(e.value)

        FlakyOrigin.fail = True
        errors = []
        for i in range(10):
            try:
                r.get("f:%d" % i)
            except Exception as ex:
                errors.append(str(ex))
        assert len(errors) == 10
        assert "failed" in errors[0]
        assert "unavailable" in errors[-1] and "circuit breaker open" in errors[-1]
        b = loader_state(dm, "flaky")
        assert b["state"] == "open" and b["opened"] == 1 and b["rejected"] >= 1
        hits = FlakyOrigin.hits
        with pytest.raises(Exception):
            r.get("f:100")
        assert FlakyOrigin.hits == hits          # refused without calling the origin
        assert dm.metric("hotpath_loader_breaker_state", {"loader": "flaky"}) == 1
        # the origin heals: after breaker_open_time probes close it again
        FlakyOrigin.fail = False
        time.sleep(1.2)
        assert r.get("f:200") == b"ok 200"
        assert r.get("f:201") == b"ok 201"
        assert wait_until(lambda: loader_state(dm, "flaky")["state"] == "closed")
        assert r.get("f:202") == b"ok 202"
        # the other loader never noticed
        assert loader_state(dm, "chunks")["opened"] == 0
    finally:
        srv.shutdown()


def test_warm_scope_all_into_l2_and_hotpathctl_warm_sql(pg, hotpath_factory, redis_server):
    import redis
    import subprocess
    from conftest import HOTPATHCTL
    rc = redis.Redis(host="127.0.0.1", port=redis_server)
    for k in rc.keys("seed:*") + rc.keys("user:*"):
        rc.delete(k)
    reset(pg, {1: "a", 2: "b", 3: "c"})
    dm = hotpath_factory(ini(pg, "ttl = 60s") + """
[loader.seed]
dsn = %s
query = SELECT data FROM users WHERE id = $1::int
warm_query = SELECT 'seed:' || id, data FROM users ORDER BY id
[redis]
address = 127.0.0.1:%d
""" % (dsn(pg), redis_server))
    # cache_scope l1: rows of no strategy go to L1 only
    s = warm(dm, {"cache_scope": "l1", "data_sources": [{"type": "sql", "loader": "seed"}]})
    assert s["status"] == "done" and s["keys_warmed"] == 3
    assert [k for k in l1_keys(dm) if k.startswith("seed:")] == ["seed:1", "seed:2", "seed:3"]
    assert rc.keys("seed:*") == []
    # hotpathctl warm sql LOADER asks for cache_scope all: L2 gets them too
    dm.redis().execute_command("HOTPATH.INVALIDATE", "seed:*", "LOCAL")
    env = dict(os.environ, HOTPATH_TOKEN=dm.tokens["admin"])
    out = subprocess.run([HOTPATHCTL, "--url", "http://127.0.0.1:%d" % dm.api_port, "--json",
                          "warm", "sql", "seed"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    import json
    jid = json.loads(out.stdout)["job_id"]

    def done():
        st, j = dm.api_json("GET", "/api/v2/performance/cache/warm/%d" % jid)
        return j if j["status"] in ("done", "failed") else None
    j = wait_until(done, timeout=15)
    assert j["status"] == "done" and j["keys_warmed"] == 3, j
    assert sorted(rc.keys("seed:*")) == [b"seed:1", b"seed:2", b"seed:3"]
    assert rc.get("seed:2") == b"b"
    assert [k for k in l1_keys(dm) if k.startswith("seed:")] == ["seed:1", "seed:2", "seed:3"]
    # a key of a strategy warms through its loader into both tiers
    out = subprocess.run([HOTPATHCTL, "--url", "http://127.0.0.1:%d" % dm.api_port,
                          "warm", "keys", "user:1", "user:2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    assert wait_until(lambda: rc.get("user:2") == b"b")
    # an unknown loader is refused with a reason
    out = subprocess.run([HOTPATHCTL, "--url", "http://127.0.0.1:%d" % dm.api_port,
                          "warm", "sql", "nope"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30, env=env)
    assert out.returncode != 0 and "nope" in out.stdout + out.stderr
