"""
L1 misses that need Redis (L2) do not hold up the thread that took them:
the RESP front parks the client and the L2 dispatcher reads for it, so a
stalled Redis (SIGSTOP for a second) delays only the clients waiting for
it. Real redis-server processes; one RESP worker, so every client shares
the thread a blocking lookup would hold.
"""
import contextlib
import signal
import socket
import threading
import time

import pytest
import redis

from conftest import encode
from test_tier import l2_ini, redis_proc, tracking_up, wait_until  # noqa: F401

STALL = 1.0


def one_worker(port, **extra):
    kw = {"command_timeout": "3s"}
    kw.update(extra)
    return "[core]\nworkers = 1\n" + l2_ini(port, **kw)


def hot_agent(hotpath_factory, redis_proc, **kw):
    """A redis-server and a one-worker agent in front of it (l1_ttl 1h and
    `kw`) holding "hot" = b"h" in L1: (Redis, a client of Redis, the agent,
    a client of the agent)."""
    rp = redis_proc()
    direct = rp.client()
    kw.setdefault("l1_ttl", "1h")
    hp = hotpath_factory(one_worker(rp.port, **kw))
    assert tracking_up(hp)
    direct.set("hot", "h")
    fast = hp.redis()
    assert fast.get("hot") == b"h"                 # now in L1
    return rp, direct, hp, fast


class Stall:
    """SIGSTOP the redis-server for `secs`, then SIGCONT (also on exit)."""

    def __init__(self, rp, secs=STALL):
        self.rp, self.secs = rp, secs

    def __enter__(self):
        self.rp.proc.send_signal(signal.SIGSTOP)
        self.t0 = time.time()
        self.timer = threading.Timer(self.secs, self.rp.proc.send_signal, (signal.SIGCONT,))
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.join()
        self.rp.proc.send_signal(signal.SIGCONT)


def hit_latencies(c, key, want, until):
    """GET key (an L1 hit) in a loop until `until`; the worst latency."""
    worst, n = 0.0, 0
    while time.time() < until:
        s = time.time()
        assert c.get(key) == want
        worst = max(worst, time.time() - s)
        n += 1
        time.sleep(0.005)
    return worst, n


def stalled_hits(rp, fast, key, want, jobs):
    """Freeze Redis for STALL, start `jobs` (each parks a client on the one
    worker), GET key (an L1 hit) on `fast` for most of the stall, then
    wait for the jobs. The worst hit latency and the number of hits."""
    with Stall(rp) as st:
        ts = [threading.Thread(target=j) for j in jobs]
        for t in ts:
            t.start()
        time.sleep(0.05)                            # all parked on the worker
        worst, n = hit_latencies(fast, key, want, st.t0 + STALL * 0.8)
        for t in ts:
            t.join(10)
    return worst, n


def stalled_calls(hp, rp, fast, keys, call):
    """Freeze Redis for STALL; meanwhile call(client, key) for each key on a
    connection of its own, and GET "hot" (an L1 hit holding b"h") on `fast`.
    The worst hit latency, and {key: (reply or error text, seconds)}."""
    results = {}

    def one(k):
        c = hp.redis()
        s = time.time()
        try:
            results[k] = (call(c, k), time.time() - s)
        except redis.exceptions.ResponseError as e:
            results[k] = (str(e), time.time() - s)

    with Stall(rp) as st:
        ts = [threading.Thread(target=one, args=(k,)) for k in keys]
        for t in ts:
            t.start()
        worst, n = hit_latencies(fast, "hot", b"h", st.t0 + STALL * 0.8)
        for t in ts:
            t.join(10)
    return worst, results


def test_stalled_l2_does_not_delay_l1_hits(hotpath_factory, redis_proc):
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    direct.set("hot", "h")
    direct.mset({"cold1": "c1", "cold2": "c2", "cold3": "c3"})
    fast, slow = hp.redis(), hp.redis()
    assert fast.get("hot") == b"h"                 # now in L1
    got = {}

    def miss():
        s = time.time()
        got["get"] = slow.get("cold1")
        got["get_s"] = time.time() - s

    def mmiss():
        c = hp.redis()
        got["mget"] = c.mget("hot", "cold2", "nope", "cold3", "hot")

    worst, n = stalled_hits(rp, fast, "hot", b"h", [miss, mmiss])
    # the hits went on at L1 speed while Redis was frozen ...
    assert n >= 20
    assert worst < 0.25 * STALL, worst
    # ... and the parked readers got their values once it was back
    assert got["get"] == b"c1" and got["get_s"] >= 0.5 * STALL
    assert got["mget"] == [b"h", b"c2", None, b"c3", b"h"]
    st_, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["l2_parked"] >= 2
    assert body["tier"]["l2_async_reads"] >= 4
    assert body["l2"]["dispatcher"]["batches"] >= 1


def send_raw(port, payload, nreplies, timeout=10):
    """Write a whole pipeline at once, read `nreplies` RESP2 replies."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(payload)
    data = b""
    out = []
    while len(out) < nreplies:
        chunk = s.recv(65536)
        assert chunk, "connection closed after %d replies" % len(out)
        data += chunk
        out, rest = parse_replies(data)
    s.close()
    return out


def parse_one(data, i):
    end = data.index(b"\r\n", i)
    t, line = data[i:i + 1], data[i + 1:end]
    i = end + 2
    if t in (b"+", b"-", b":"):
        return (t + line).decode(), i
    if t == b"$":
        n = int(line)
        if n < 0:
            return None, i
        if len(data) < i + n + 2:
            raise IndexError
        return data[i:i + n], i + n + 2
    if t == b"*":
        items = []
        for _ in range(int(line)):
            v, i = parse_one(data, i)
            items.append(v)
        return items, i
    raise AssertionError("bad reply %r" % data[i - 1:i + 20])


def parse_replies(data):
    out, i = [], 0
    while i < len(data):
        try:
            v, j = parse_one(data, i)
        except (ValueError, IndexError):
            break
        out.append(v)
        i = j
    return out, data[i:]


def send_round(hp, rp, payload, nreplies, stall):
    """send_raw(), with Redis frozen for half a second if `stall`."""
    with Stall(rp, 0.5) if stall else contextlib.nullcontext():
        return send_raw(hp.resp_port, payload, nreplies)


def test_pipeline_of_hits_and_parked_misses_keeps_order(hotpath_factory, redis_proc):
    """One write carrying L1 hits, L2 hits, L2 misses and MGETs mixing
    them: the replies come back in command order, also while Redis is
    frozen (the hits behind a parked miss wait for it)."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    c = hp.redis()
    for i in range(4):
        direct.set("h%d" % i, "hv%d" % i)
        assert c.get("h%d" % i) == b"hv%d" % i     # L1 from now on
    for rnd in range(3):
        expect, payload = [], b""
        for i in range(30):
            k = "r%d:m%d" % (rnd, i)
            direct.set(k, "mv%d" % i)
            payload += encode("GET", "h%d" % (i % 4))
            expect.append(b"hv%d" % (i % 4))
            payload += encode("GET", k)
            expect.append(b"mv%d" % i)
            payload += encode("GET", "r%d:absent%d" % (rnd, i))
            expect.append(None)
            payload += encode("MGET", "h%d" % ((i + 1) % 4), k, "r%d:zz%d" % (rnd, i))
            expect.append([b"hv%d" % ((i + 1) % 4), b"mv%d" % i, None])
            payload += encode("PING")
            expect.append("+PONG")
        got = send_round(hp, rp, payload, len(expect), stall=rnd == 1)
        assert got == expect, rnd


def test_mget_one_batch_and_single_flight(hotpath_factory, redis_proc):
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    c = hp.redis()
    direct.set("a", "1")
    assert c.get("a") == b"1"
    keys = ["k%d" % i for i in range(50)]
    direct.mset({k: "v" + k for k in keys[::2]})   # every other key exists
    before = hp.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]
    got = c.mget(["a"] + keys + ["a", "k0"])
    assert got == [b"1"] + [b"v" + k.encode() if i % 2 == 0 else None
                            for i, k in enumerate(keys)] + [b"1", b"vk0"]
    after = hp.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]
    assert after["l2_parked"] - before["l2_parked"] == 1          # one parked client
    # 50 distinct keys looked up in one turn; the repeated k0 joined its
    # read, or (when that read was already back) found it in L1
    reads = after["l2_async_reads"] - before["l2_async_reads"]
    joined = after["l2_coalesced"] - before["l2_coalesced"]
    assert reads in (50, 51) and reads + joined <= 51, (reads, joined)
    # the values found are in L1 now: all hits, answered inline
    assert c.mget(keys[::2]) == [b"v" + k.encode() for k in keys[::2]]
    again = hp.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]
    assert again["l2_parked"] == after["l2_parked"]
    # many clients missing the same key during a stall: one read
    direct.set("shared", "s")
    res = []
    with Stall(rp, 0.5):
        ts = [threading.Thread(target=lambda: res.append(hp.redis()
                                                         .get("shared")))
              for _ in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
    assert res == [b"s"] * 20
    last = hp.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]
    assert last["l2_async_reads"] - again["l2_async_reads"] <= 2
    assert last["l2_coalesced"] - again["l2_coalesced"] >= 18


def test_queue_full_refuses_fast_and_loses_nothing(hotpath_factory, redis_proc):
    rp, direct, hp, fast = hot_agent(hotpath_factory, redis_proc, queue_max="16")
    keys = ["q%d" % i for i in range(48)]
    direct.mset({k: "v" + k for k in keys})
    worst, results = stalled_calls(hp, rp, fast, keys, lambda c, k: c.get(k))
    assert worst < 0.25 * STALL, worst
    busy = [k for k, (v, _) in results.items() if isinstance(v, str)]
    ok = [k for k, (v, _) in results.items() if not isinstance(v, str)]
    assert len(results) == len(keys)
    # the queue took 16 reads (they were answered once Redis was back)...
    assert 0 < len(ok) <= 16 and len(busy) == len(keys) - len(ok)
    for k in ok:
        assert results[k][0] == b"v" + k.encode()
    # ...the others heard at once why, and may retry
    for k in busy:
        v, took = results[k]
        assert v.startswith("BUSY") and "redis.queue_max" in v, v
        assert took < 0.5 * STALL, (k, took)
    # (the frozen second made the queued reads slow calls, so the breaker
    # may have opened: retries succeed once it closes again)
    def retry(k):
        try:
            return fast.get(k)
        except redis.exceptions.ResponseError:
            return None
    for k in busy:
        assert wait_until(lambda: retry(k) == b"v" + k.encode(), 5), k
    st_, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["l2_queue_full"] >= len(busy)
    assert body["l2"]["dispatcher"]["rejected"] + body["tier"]["l2_queue_full"] >= len(busy)
    text = hp.metrics_text() if hasattr(hp, "metrics_text") else None
    if text is None:
        import urllib.request
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % hp.api_port,
                                      timeout=5).read().decode()
    assert "hotpath_l2_dispatcher_queue_depth" in text
    assert "hotpath_l2_dispatcher_rejected_total" in text
    assert "hotpath_l2_dispatcher_inflight" in text
    assert "hotpath_l2_dispatcher_batches_total" in text


def test_redis_killed_misses_fail_fast_hits_go_on(hotpath_factory, redis_proc):
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h", stale_if_error="30s",
                                    command_timeout="300ms"))
    assert tracking_up(hp)
    c = hp.redis()
    direct.set("hot", "h")
    assert c.get("hot") == b"h"
    rp.kill()
    for i in range(40):
        s = time.time()
        got = c.mget("hot", "gone%d" % i)
        assert got[0] == b"h"
        assert isinstance(got[1], redis.exceptions.ResponseError), got
        assert "L2DOWN" in str(got[1])
        with pytest.raises(redis.exceptions.ResponseError, match="L2DOWN"):
            c.get("gone%d" % i)
        assert time.time() - s < 0.5
        assert c.get("hot") == b"h"
    st_, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["breaker"]["state"] == "open", body["tier"]["breaker"]
    assert body["tier"]["l2_rejected"] > 0


def test_stall_longer_than_command_timeout(hotpath_factory, redis_proc):
    """Redis frozen past command_timeout: the parked misses fail with
    -L2DOWN after about command_timeout (not after the stall), L1 hits go
    on, and once Redis is back the dispatcher reconnects and reads again."""
    rp, direct, hp, fast = hot_agent(hotpath_factory, redis_proc, command_timeout="300ms",
                                     breaker_open_time="200ms")
    direct.set("cold", "c")
    res = {}

    def miss():
        c = hp.redis()
        s = time.time()
        try:
            res["v"] = c.get("cold")
        except redis.exceptions.ResponseError as e:
            res["v"] = str(e)
        res["t"] = time.time() - s

    with Stall(rp, 1.5) as st:
        th = threading.Thread(target=miss)
        th.start()
        worst, n = hit_latencies(fast, "hot", b"h", st.t0 + 1.0)
        th.join(5)
    assert worst < 0.25, worst
    assert res["v"].startswith("L2DOWN") and "timed out" in res["v"], res
    assert 0.2 < res["t"] < 1.0, res
    st_, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["l2"]["dispatcher"]["timeouts"] >= 1

    def back():
        try:
            return fast.get("cold") == b"c"
        except redis.exceptions.ResponseError:
            return False
    assert wait_until(back, 5)


def test_stalled_write_does_not_delay_l1_hits(hotpath_factory, redis_proc):
    """A SET and a DEL written through to a frozen Redis park their
    clients: another client's L1 hits on the same worker go on, and once
    Redis answers, the writes are acknowledged and nobody sees the old
    values any more."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    direct.mset({"hot": "h", "w": "old", "d": "old"})
    fast, other = hp.redis(), hp.redis()
    for k, v in (("hot", b"h"), ("w", b"old"), ("d", b"old")):
        assert fast.get(k) == v                     # now in L1
    got = {}

    def write(name, fn):
        def job():
            c = hp.redis()
            s = time.time()
            got[name] = fn(c)
            got[name + "_s"] = time.time() - s
        return job

    worst, n = stalled_hits(rp, fast, "hot", b"h",
                            [write("set", lambda c: c.set("w", "new")),
                             write("del", lambda c: c.delete("d"))])
    assert n >= 20
    assert worst < 0.25 * STALL, worst
    assert got["set"] is True and got["set_s"] >= 0.5 * STALL, got
    assert got["del"] == 1 and got["del_s"] >= 0.5 * STALL, got
    assert other.get("w") == b"new" and other.get("d") is None
    assert direct.get("w") == b"new" and direct.get("d") is None
    # a Redis error reply still reaches the client as it is
    with pytest.raises(redis.exceptions.ResponseError, match="invalid expire"):
        other.execute_command("SET", "w", "x", "EX", "0")
    assert other.get("w") == b"new"
    st_, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["l2_parked"] >= 2


def test_pipelined_write_then_read_keeps_order(hotpath_factory, redis_proc):
    """SET then GET (and DEL then GET) of a key held in L1, in one write on
    one connection: +OK then the new value, also while Redis is frozen."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    c = hp.redis()
    for rnd in range(3):
        k, d = "pw%d" % rnd, "pd%d" % rnd
        direct.mset({k: "old", d: "old"})
        assert c.get(k) == b"old" and c.get(d) == b"old"   # L1 from now on
        payload = (encode("SET", k, "new%d" % rnd) + encode("GET", k) + encode("DEL", d) +
                   encode("GET", d) + encode("PING"))
        expect = ["+OK", b"new%d" % rnd, ":1", None, "+PONG"]
        got = send_round(hp, rp, payload, len(expect), stall=rnd == 1)
        assert got == expect, rnd
        assert c.get(k) == b"new%d" % rnd and c.get(d) is None


# Every command with keys the front forwards to Redis, but GET/MGET (above):
# (name, command, the reply expected once Redis answers). The keys "n...",
# "e...", "m..." are set by setup_families() and held in L1 before.
FAMILIES = [
    ("incr", ("INCR", "n1"), 6),
    ("incrby", ("INCRBY", "n2", "10"), 15),
    ("decr", ("DECR", "n3"), 4),
    ("decrby", ("DECRBY", "n4", "2"), 3),
    ("expire", ("EXPIRE", "e1", "100"), 1),
    ("pexpire", ("PEXPIRE", "e2", "1"), 1),
    ("expireat", ("EXPIREAT", "e3", "1"), 1),
    ("pexpireat", ("PEXPIREAT", "e4", str(int(time.time() * 1000) + 3600000)), 1),
    ("persist", ("PERSIST", "e5"), 1),
    ("mset", ("MSET", "m1", "new1", "m2", "new2"), True),
    ("getdel", ("GETDEL", "m3"), b"old"),
    ("setex", ("SETEX", "m4", "100", "new4"), True),
    ("psetex", ("PSETEX", "m5", "100000", "new5"), True),
    ("setnx", ("SETNX", "m6", "new6"), 1),
    ("del", ("DEL", "m7", "m8"), 2),
    ("unlink", ("UNLINK", "m9"), 1),
    ("ttl", ("TTL", "t1"), 1000),
    ("pttl", ("PTTL", "t1"), None),            # checked by range below
    ("exists", ("EXISTS", "t1", "nope", "t1"), 2),
    ("type", ("TYPE", "t1"), b"string"),
    ("strlen", ("STRLEN", "t1"), 3),
    ("invalidate", ("HOTPATH.INVALIDATE", "pi:*"), None),
]

# What no tier may serve any more once the command was acknowledged.
AFTER = {"n1": b"6", "n2": b"15", "n3": b"4", "n4": b"3", "e2": None, "e3": None,
         "m1": b"new1", "m2": b"new2", "m3": None, "m4": b"new4", "m5": b"new5",
         "m6": b"new6", "m7": None, "m8": None, "m9": None, "pi:1": None, "pi:2": None}


def setup_families(direct, c):
    """Redis holds the keys the families touch; the agent holds them in L1."""
    direct.mset({"n1": "5", "n2": "5", "n3": "5", "n4": "5", "m1": "old", "m2": "old",
                 "m3": "old", "m4": "old", "m5": "old", "m7": "old", "m8": "old",
                 "m9": "old", "e1": "v", "e2": "v", "e3": "v", "e4": "v", "e5": "v",
                 "t1": "abc", "pi:1": "p", "pi:2": "p"})
    direct.delete("m6")
    direct.expire("e5", 100)
    direct.expire("t1", 1000)
    for k in list(AFTER) + ["e1", "e4", "e5", "t1"]:
        if k != "m6":
            assert c.get(k) is not None, k          # now in L1


def check_family(name, got):
    if name == "pttl":
        assert 990000 < got <= 1000000, got
    elif name == "ttl":
        assert 990 < got <= 1000, got
    elif name == "invalidate":
        assert got >= 2, got                       # Redis' and L1's copies
    else:
        want = dict((f[0], f[2]) for f in FAMILIES)[name]
        assert got == want, (name, got)


def test_stalled_commands_of_every_family_do_not_delay_l1_hits(hotpath_factory, redis_proc):
    """Each command with keys the front forwards to a frozen Redis (writes,
    reads of key metadata, a pattern invalidation) parks only its own
    client: another client's L1 hits on the one worker go on. Once Redis
    answers, every command got its own reply, and no tier serves a value
    a write replaced."""
    rp, direct, hp, fast = hot_agent(hotpath_factory, redis_proc, slow_call="10s")
    setup_families(direct, fast)
    got = {}

    def job(name, cmd):
        def run():
            c = hp.redis()
            s = time.time()
            got[name] = c.execute_command(*cmd)
            got[name + "_s"] = time.time() - s
        return run

    worst, n = stalled_hits(rp, fast, "hot", b"h",
                            [job(name, cmd) for name, cmd, _ in FAMILIES])
    assert n >= 20
    assert worst < 0.25 * STALL, worst
    for name, _, _ in FAMILIES:
        assert name in got, name
        check_family(name, got[name])
        assert got[name + "_s"] >= 0.5 * STALL, (name, got[name + "_s"])
    time.sleep(0.01)                                # PEXPIRE e2 1
    other = hp.redis()
    for k, v in AFTER.items():
        assert other.get(k) == v, k
        assert direct.get(k) == v, k
    assert direct.ttl("e1") > 90 and direct.ttl("e5") == -1
    st_, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["l2_parked"] >= len(FAMILIES)


def test_pipeline_mixing_every_family_with_gets_keeps_order(hotpath_factory, redis_proc):
    """One write carrying the forwarded commands and GETs of the keys they
    change: replies in command order, each GET after a write sees it, also
    while Redis is frozen."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h", slow_call="10s"))
    assert tracking_up(hp)
    c = hp.redis()
    for rnd in range(2):
        direct.flushall()
        setup_families(direct, c)
        payload, names = b"", []
        for name, cmd, _ in FAMILIES:
            payload += encode(*cmd)
            names.append(name)
            payload += encode("GET", cmd[1])
            names.append(("get", cmd[1]))
        payload += encode("PING")
        got = send_round(hp, rp, payload, len(names) + 1, stall=rnd == 1)
        assert got[-1] == "+PONG"
        for name, g in zip(names, got):
            if isinstance(name, tuple):
                k = name[1]
                if k in AFTER and k not in ("e2", "pi:1"):
                    assert g == AFTER[k], (rnd, k, g)
                continue
            if name in ("ttl", "pttl", "exists", "strlen", "invalidate", "incr", "incrby",
                        "decr", "decrby", "expire", "pexpire", "expireat", "pexpireat",
                        "persist", "setnx", "del", "unlink"):
                assert g.startswith(":"), (rnd, name, g)
                g = int(g[1:])
            elif name == "type":
                assert g == "+string", g
                continue
            elif g == "+OK":
                g = True
            check_family(name, g)


def test_stalled_flushall_parks_only_its_client(hotpath_factory, redis_proc):
    """FLUSHALL (and FLUSHDB) during a frozen Redis: the L1 hits of another
    client go on (the old values: not acknowledged yet); once FLUSHALL
    answers +OK no tier serves anything it dropped."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port, l1_ttl="1h", slow_call="10s"))
    assert tracking_up(hp)
    for cmd in ("FLUSHALL", "FLUSHDB"):
        direct.mset({"hot": "h", "k1": "v1", "k2": "v2"})
        fast = hp.redis()
        for k in ("hot", "k1", "k2"):
            assert fast.get(k) is not None             # now in L1
        got = {}

        def flush():
            c = hp.redis()
            s = time.time()
            got["r"] = c.execute_command(cmd)
            got["s"] = time.time() - s

        worst, n = stalled_hits(rp, fast, "hot", b"h", [flush])
        assert n >= 20 and worst < 0.25 * STALL, (cmd, worst, n)
        assert got["r"] in (True, b"OK"), got
        assert got["s"] >= 0.5 * STALL, got
        for k in ("hot", "k1", "k2"):
            assert fast.get(k) is None, (cmd, k)
            assert direct.get(k) is None, (cmd, k)


def test_queue_full_refuses_writes_and_changes_nothing(hotpath_factory, redis_proc):
    """Past redis.queue_max a forwarded write is refused at once with -BUSY
    and does not reach Redis; the writes the queue took are applied."""
    rp, direct, hp, fast = hot_agent(hotpath_factory, redis_proc, queue_max="16",
                                     slow_call="10s")
    keys = ["ctr%d" % i for i in range(48)]
    worst, results = stalled_calls(hp, rp, fast, keys,
                                   lambda c, k: c.execute_command("INCRBY", k, "7"))
    assert worst < 0.25 * STALL, worst
    busy = [k for k, (v, _) in results.items() if isinstance(v, str)]
    ok = [k for k, (v, _) in results.items() if not isinstance(v, str)]
    assert len(results) == len(keys)
    assert 0 < len(ok) <= 16 and busy, (len(ok), len(busy))
    for k in ok:
        assert results[k][0] == 7 and direct.get(k) == b"7", k
    for k in busy:
        v, took = results[k]
        assert v.startswith("BUSY") and "redis.queue_max" in v, v
        assert took < 0.5 * STALL, (k, took)
        assert direct.get(k) is None, k            # never reached Redis


def test_blocking_commands_never_reach_redis(hotpath_factory, redis_proc):
    """The front has no blocking commands: BLPOP and friends are refused at
    once as unknown (they would hold the dispatcher's shared connection)."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(one_worker(rp.port))
    c = hp.redis()
    for cmd in (("BLPOP", "q", "5"), ("BRPOP", "q", "5"), ("BLMOVE", "q", "r", "LEFT",
                                                           "LEFT", "5"),
                ("BZPOPMIN", "z", "5"), ("XREAD", "BLOCK", "5000", "STREAMS", "s", "$")):
        s = time.time()
        with pytest.raises(redis.exceptions.ResponseError, match="unknown command"):
            c.execute_command(*cmd)
        assert time.time() - s < 0.5, cmd
    info = direct.info("commandstats")
    assert not any(k in info for k in ("cmdstat_blpop", "cmdstat_brpop", "cmdstat_blmove",
                                       "cmdstat_bzpopmin", "cmdstat_xread"))
