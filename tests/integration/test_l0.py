"""
L0: GETs of hot keys answered by the kernel (bpf/l0.bpf.c), on the real
kernel, through real sockets. Local IPv4 clients' writes are answered on
their send side (sk_msg); IPv6 clients, which the send side cannot serve
(like remote ones), are answered by the front's sk_skb verdict program
through the relay socket (docs/l0.md); both with values of any length
(l0_value() sizes some values as the old length rule needed; any size
works). What must hold: the kernel really answers (counted in its own map), values are right, a
write is never followed by the old value, TTLs hold, replies never change
order on a connection whatever mix of kernel and daemon answers a pipeline
gets (50 connections, pipelined), no connection stalls, and L0 can be
switched off at runtime.
"""
import json
import os
import random
import re
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import encode, split_replies

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="L0 needs root (BPF, sock_ops)")


def l0_value(key, text):
    """`text` padded or cut so that GET key's reply is as long as the request."""
    req = len(encode("GET", key))
    for n in range(1, 4096):
        if len(b"$%d\r\n" % n) + n + 2 == req:
            return (text + "." * n)[:n]
    raise AssertionError("no value length fits key %r" % key)


def l0_hits(d):
    return d.metric("hotpath_cache_hits_total", {"tier": "l0"}) or 0


def make_hot(d, keys, rounds=6, client=None):
    r = client or d.redis()
    for _ in range(rounds):
        p = r.pipeline(transaction=False)
        for k in keys:
            p.get(k)
        p.execute()


def wait_in_l0(d, n, timeout=6):
    end = time.time() + timeout
    while time.time() < end:
        if (d.metric("hotpath_cache_keys", {"tier": "l0"}) or 0) >= n:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def l0d(hotpath_factory):
    d = hotpath_factory()
    if "l0: kernel tier on" not in d.log_text():
        pytest.fail("L0 did not start:\n" + d.log_text())
    return d


def test_hot_keys_answered_in_kernel(l0d):
    r = l0d.redis()
    keys = ["hot:%d" % i for i in range(20)]
    vals = {k: l0_value(k, "value-of-" + k) for k in keys}
    for k in keys:
        r.set(k, vals[k])
    make_hot(l0d, keys)
    assert wait_in_l0(l0d, 20), l0d.metrics()
    before = l0_hits(l0d)
    c = l0d.redis()
    for _ in range(50):
        for k in keys:
            assert c.get(k) == vals[k].encode()
    got = l0_hits(l0d) - before
    # a GET is answered by the daemon only while the connection still has
    # an earlier command in it; plain request/response GETs all qualify
    assert got >= 0.9 * 50 * len(keys), (got, l0d.metrics())
    # pipelined GETs are answered in the kernel too
    p = c.pipeline(transaction=False)
    for _ in range(16):
        p.get(keys[0])
    assert p.execute() == [vals[keys[0]].encode()] * 16
    # the pinned map shows the key as text
    out = subprocess.run(["bpftool", "map", "dump", "pinned",
                          os.path.join(l0d.pin_path, "l0_cache")],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and '"hot:1' in out.stdout, out.stdout[:2000]


def test_keys_stay_while_the_kernel_serves_them(l0d):
    """GETs answered in the kernel never reach L1; they are credited to the
    keys' heat so the keys stay in L0 under a steady load (they used to cool
    and leave within seconds, then come back: L0 served in waves)."""
    r = l0d.redis()
    keys = ["steady:%d" % i for i in range(20)]
    for k in keys:
        r.set(k, "v-" + k)
    make_hot(l0d, keys)
    assert wait_in_l0(l0d, 20), l0d.metrics()
    c = l0d.redis()
    before, gets, low = l0_hits(l0d), 0, 20
    end = time.time() + 6      # several refreshes and heat halvings
    while time.time() < end:
        for k in keys:
            assert c.get(k) == ("v-" + k).encode()
        gets += len(keys)
        low = min(low, l0d.metric("hotpath_cache_keys", {"tier": "l0"}) or 0)
    got = l0_hits(l0d) - before
    assert low == 20, (low, l0d.metrics())
    assert got >= 0.95 * gets, (got, gets, l0d.metrics())


def kernel_serves(d, key, value, timeout=6):
    """Make `key` hot and wait until a GET of it is answered by the kernel."""
    r = d.redis()
    end = time.time() + timeout
    while time.time() < end:
        make_hot(d, [key], rounds=3)
        h = l0_hits(d)
        assert r.get(key) == value
        if l0_hits(d) > h:
            return True
        time.sleep(0.3)
    return False


def test_writes_never_leave_old_values(l0d):
    a, b = l0d.redis(), l0d.redis()
    v = [l0_value("k", "v%d-" % i) for i in range(6)]
    a.set("k", v[0])
    # a value in L0 is replaced, from another connection and the same one
    for i in range(1, 6):
        assert kernel_serves(l0d, "k", v[i - 1].encode()), l0d.metrics()
        assert a.set("k", v[i])
        assert b.get("k") == v[i].encode()   # other connection, right after the ack
        assert a.get("k") == v[i].encode()   # same connection
    # many writes in a row while readers hammer it
    for i in range(6, 300):
        assert a.set("k", "v%d" % i)
        assert b.get("k") == b"v%d" % i
    # pipelined write then read on one connection, with the key in L0
    a.set("k", v[5])
    assert kernel_serves(l0d, "k", v[5].encode())
    s = l0d.sock()
    s.sendall(encode("GET", "k") + encode("SET", "k", "piped") + encode("GET", "k") +
              encode("DEL", "k") + encode("GET", "k") + encode("SET", "k", "again") +
              encode("GET", "k"))
    data = b""
    while len(split_replies(data)) < 7:
        data += s.recv(65536)
    assert split_replies(data) == [b"$%d\r\n%s\r\n" % (len(v[5]), v[5].encode()), b"+OK\r\n",
                                   b"$5\r\npiped\r\n",
                                   b":1\r\n", b"$-1\r\n", b"+OK\r\n", b"$5\r\nagain\r\n"]
    # counters and TTL changes go through the same hook
    # a counter whose reply is as long as the request: 10**(n-1) has n digits
    key = "ctr"
    nd = len(l0_value(key, ""))
    start = 10 ** (nd - 1)
    a.set(key, str(start))
    assert kernel_serves(l0d, key, str(start).encode())
    assert a.incr(key) == start + 1 and b.get(key) == str(start + 1).encode()
    assert kernel_serves(l0d, key, str(start + 1).encode())
    assert a.pexpire(key, 1)
    time.sleep(0.05)
    assert b.get(key) is None
    # FLUSHALL empties L0 too
    fv = l0_value("f", "flushed")
    a.set("f", fv)
    assert kernel_serves(l0d, "f", fv.encode())
    a.flushall()
    assert b.get("f") is None


def test_ttl_is_honoured_in_kernel(l0d):
    r = l0d.redis()
    tv = l0_value("t", "soon-gone")
    # TTL long enough that the key is surely still alive when kernel_serves()
    # returns on a loaded machine (it reads the key itself)
    r.set("t", tv, px=5000)
    t0 = time.time()
    assert kernel_serves(l0d, "t", tv.encode(), timeout=4)
    time.sleep(max(0, 5.1 - (time.time() - t0)))
    # the kernel checks the deadline itself: the key is still in L0 until
    # L1's expiry removes it, yet it must not be served
    assert r.get("t") is None


def _client(port, hot, n_rounds, seed, errors, lock, value_of=None, s=None):
    value_of = value_of or (lambda k: l0_value(k, "hotvalue:" + k))
    rnd = random.Random(seed)
    if s is None:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.settimeout(20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    own = "own:%d" % seed
    counter = "ctr:%d" % seed
    val = None
    ctr = 0
    try:
        for rnd_i in range(n_rounds):
            cmds, expect = [], []
            for _ in range(rnd.randint(1, 24)):
                kind = rnd.random()
                if kind < 0.5:
                    k = rnd.choice(hot)
                    cmds.append(encode("GET", k))
                    v = value_of(k).encode()
                    expect.append(b"$%d\r\n%s\r\n" % (len(v), v))
                elif kind < 0.6:
                    cmds.append(encode("GET", "missing:%d" % rnd.randint(0, 9)))
                    expect.append(b"$-1\r\n")
                elif kind < 0.75:
                    val = "v%d-%d" % (seed, rnd.randint(0, 10 ** 6))
                    cmds.append(encode("SET", own, val))
                    expect.append(b"+OK\r\n")
                elif kind < 0.85:
                    cmds.append(encode("GET", own))
                    expect.append(b"$-1\r\n" if val is None else
                                  b"$%d\r\n%s\r\n" % (len(val), val.encode()))
                else:
                    ctr += 1
                    cmds.append(encode("INCR", counter))
                    expect.append(b":%d\r\n" % ctr)
            payload = b"".join(cmds)
            mode = rnd.random()
            if mode < 0.5:
                # one segment per command, without waiting for replies: a
                # GET the kernel could answer arrives while earlier
                # commands are still in the daemon
                for c in cmds:
                    s.sendall(c)
            elif mode < 0.65 and len(payload) > 2:
                # split the pipeline at a random byte
                cut = rnd.randint(1, len(payload) - 1)
                s.sendall(payload[:cut])
                time.sleep(0.001)
                s.sendall(payload[cut:])
            else:
                s.sendall(payload)
            data = b""
            while len(split_replies(data)) < len(expect):
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("connection closed")
                data += chunk
            got = split_replies(data)
            if got != expect:
                with lock:
                    errors.append((seed, rnd_i, cmds, expect, got))
                return
    except Exception as e:  # noqa: BLE001 - reported below
        with lock:
            errors.append((seed, "exception", repr(e)))
    finally:
        s.close()


def mixed_clients(d, hot, rounds, seed, timeout, value_of=None, socks=None):
    """50 connections (new ones, or `socks`) running _client at once: none
    stalls, no reply is wrong or out of order, and the kernel answered enough
    GETs among them for that to test its ordering."""
    h0, a0 = l0_hits(d), local_answered(d)
    errors, lock = [], threading.Lock()
    socks = socks or [None] * 50
    threads = [threading.Thread(target=_client, args=(d.resp_port, hot, rounds, seed + i,
                                                      errors, lock, value_of, socks[i]))
               for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a connection stalled"
    assert not errors, errors[:2]
    got = l0_hits(d) - h0
    print("kernel-answered GETs during the mixed run: %d (%d writes)" %
          (got, local_answered(d) - a0))
    assert got > 500, "the kernel answered too few GETs to test ordering"


def test_pipelined_order_under_many_connections(l0d):
    r = l0d.redis()
    hot = ["hk:%d" % i for i in range(32)]
    for k in hot:
        r.set(k, l0_value(k, "hotvalue:" + k))
    make_hot(l0d, hot)
    assert wait_in_l0(l0d, 32)
    mixed_clients(l0d, hot, 40, 0, 120)


def test_unread_daemon_reply_is_not_overtaken(l0d):
    """Kernel answers go into the client's receive side, which recv() reads
    before TCP's queue: a GET sent while a daemon reply is still unread must
    not be answered by the kernel (it would be read first)."""
    r = l0d.redis()
    r.set("hot", "kernel-value")
    r.set("cold", "daemon-value")
    assert kernel_serves(l0d, "hot", b"kernel-value"), l0d.metrics()
    busy = l0d.metric("hotpath_l0_passed_total", {"reason": "busy"}) or 0
    s = l0d.sock()
    for i in range(20):
        s.sendall(encode("GET", "cold-%d" % i) if i % 2 else encode("SET", "cold", "d%d" % i))
        time.sleep(0.05)        # the daemon answers; its reply waits unread
        s.sendall(encode("GET", "hot"))
        want = [b"$-1\r\n" if i % 2 else b"+OK\r\n", b"$12\r\nkernel-value\r\n"]
        got = b""
        while len(split_replies(got)) < 2:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            got += chunk
        assert split_replies(got) == want, (i, got)
    s.close()
    assert (l0d.metric("hotpath_l0_passed_total", {"reason": "busy"}) or 0) > busy
    # and once it has read everything, the kernel answers again
    assert kernel_serves(l0d, "hot", b"kernel-value"), l0d.metrics()


def test_redis_benchmark_pipelined_gets(l0d):
    port = str(l0d.resp_port)
    # key:000000000NNN GETs are 36 bytes; "$29\r\n" + 29 + "\r\n" is too
    assert len(l0_value("key:000000000042", "")) == 29
    subprocess.run(["redis-benchmark", "-p", port, "-t", "set", "-n", "2000", "-r", "100",
                    "-d", "29", "-q"], capture_output=True, timeout=60, check=True)
    subprocess.run(["redis-benchmark", "-p", port, "-t", "get", "-n", "5000", "-r", "100",
                    "-q"], capture_output=True, timeout=60, check=True)
    time.sleep(1.3)
    h0 = l0_hits(l0d)
    res = subprocess.run(["redis-benchmark", "-p", port, "-t", "get", "-n", "50000", "-r",
                          "100", "-c", "50", "-P", "16", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert re.search(r"GET: [\d.]+ requests per second", res.stdout), res.stdout
    assert l0_hits(l0d) - h0 > 10000, l0d.metrics()


def get_rounds(s, keys, vals, rounds, pipeline=1):
    """rounds writes of `pipeline` GETs each (keys in turn) on s, each
    write's replies read and compared with vals before the next write."""
    i = 0
    for r in range(rounds):
        ks = [keys[(i + j) % len(keys)] for j in range(pipeline)]
        i += pipeline
        s.sendall(b"".join(encode("GET", k) for k in ks))
        want = b"".join(b"$%d\r\n%s\r\n" % (len(vals[k]), vals[k].encode()) for k in ks)
        data = b""
        while len(data) < len(want):
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        assert data == want, (r, data[:80])


def local_answered(d):
    return d.metric("hotpath_l0_local_answered_total") or 0


@pytest.mark.parametrize("vlen", [1, 100, 1000])
def test_values_of_any_length_answered_in_kernel(l0d, vlen):
    """128-byte keys with 1-, 100- and 1000-byte values: a local client's
    GETs are answered in the kernel whatever the reply's length, and a fast
    request/response loop of thousands of GETs on one connection never
    stalls (the old length rule's failure)."""
    r = l0d.redis()
    keys = [("%03d" % i) * 43 for i in range(4)]
    keys = [k[:128] for k in keys]
    assert all(len(k) == 128 for k in keys)
    vals = {k: (k[:3] + "v" * vlen)[:vlen] for k in keys}
    for k in keys:
        r.set(k, vals[k])
    make_hot(l0d, keys)
    assert wait_in_l0(l0d, len(keys)), l0d.metrics()
    s = l0d.sock()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5)
    h0, a0 = l0_hits(l0d), local_answered(l0d)
    n = 5000
    get_rounds(s, keys, vals, n)
    # pipelined: 16 GETs in one write, answered together by the kernel
    # (with 1000-byte values the replies fill four pages)
    h1 = l0_hits(l0d)
    get_rounds(s, keys, vals, 1, pipeline=16)
    assert l0_hits(l0d) - h1 == 16, l0d.metrics()
    got = l0_hits(l0d) - h0
    # the kernel answers all but the GETs that raced a refresh of L0
    assert got >= 0.9 * n, (got, l0d.metrics())
    assert local_answered(l0d) - a0 >= 0.9 * n
    # the connection is still in step: a write and a read through the daemon
    s.sendall(encode("SET", keys[0], "after") + encode("GET", keys[0]))
    data = b""
    while len(split_replies(data)) < 2:
        data += s.recv(65536)
    assert split_replies(data) == [b"+OK\r\n", b"$5\r\nafter\r\n"]


def test_long_values_never_stale_after_write(l0d):
    """A 1000-byte value answered by the kernel is replaced by a write: the
    next GET, on the writer's connection or another, sees the new value."""
    a, b = l0d.redis(), l0d.redis()
    key = "big:" + "k" * 100
    for i in range(8):
        v = ("%d" % i) * 1000
        assert kernel_serves(l0d, key, None if i == 0 else prev.encode()) or i == 0
        assert a.set(key, v)
        assert b.get(key) == v.encode()
        assert a.get(key) == v.encode()
        prev = v
    # pipelined on one connection: GET (kernel), SET, GET, DEL, GET
    assert kernel_serves(l0d, key, prev.encode())
    s = l0d.sock()
    s.sendall(encode("GET", key) + encode("SET", key, "n" * 700) + encode("GET", key) +
              encode("DEL", key) + encode("GET", key))
    data = b""
    while len(split_replies(data)) < 5:
        data += s.recv(65536)
    assert split_replies(data) == [b"$1000\r\n" + prev.encode() + b"\r\n", b"+OK\r\n",
                                   b"$700\r\n" + b"n" * 700 + b"\r\n", b":1\r\n",
                                   b"$-1\r\n"]


def test_pipelined_order_with_long_values(l0d):
    """50 connections, pipelined mixes of kernel-answered GETs of values
    from 1 to 1000 bytes, misses, SETs, GETs of keys being written and
    INCRs, split at random bytes or sent one command per write: every reply
    in order, none lost, no connection stalled."""
    r = l0d.redis()
    hot = ["lv:%d:%s" % (i, "x" * (i * 3)) for i in range(32)]   # keys up to 99 bytes

    def value_of(k):
        i = int(k.split(":")[1])
        n = 1 + i * 32
        return (k + "=" + "v" * n)[:n]
    for k in hot:
        r.set(k, value_of(k))
    make_hot(l0d, hot)
    assert wait_in_l0(l0d, 32)
    mixed_clients(l0d, hot, 60, 1000, 180, value_of)


@pytest.fixture
def l0d6(hotpath_factory):
    """The front on [::1]: its IPv6 clients are the connections the send side
    cannot serve (send-side answers need IPv4), as a remote client's are;
    the front's verdict program and the relay socket answer them."""
    d = hotpath_factory("[resp]\nlisten = [::1]:0\n[l0]\nremote = yes\n")
    if "l0: kernel tier on" not in d.log_text():
        pytest.fail("L0 did not start:\n" + d.log_text())
    return d


def redis6(d):
    import redis
    return redis.Redis(host="::1", port=d.resp_port, socket_timeout=10)


def socks6(d, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("::1", d.resp_port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    return socks


def relay_answered(d):
    return d.metric("hotpath_l0_relay_answered_total") or 0


def relay_answers(d, keys, vals, rounds=200, s=None):
    """The relay is up and answers a fresh (or the given) IPv6 connection's
    GETs: most of `rounds` round trips relayed, every reply right."""
    if s is None:
        (s,) = socks6(d, 1)
    s.settimeout(5)
    a0 = relay_answered(d)
    get_rounds(s, keys, vals, rounds)
    assert relay_answered(d) - a0 >= 0.75 * rounds, d.metrics()
    assert d.metric("hotpath_l0_relay_up") == 1


@pytest.mark.parametrize("vlen", [1, 100, 1000])
def test_remote_clients_get_kernel_answers_of_any_length(l0d6, vlen):
    """A connection the send side cannot serve (a remote client's; here a local
    one opened while L0 was off) is answered by the front's verdict program:
    the segment goes, unchanged, to the daemon's relay socket, whose sk_msg
    program writes the replies on the connection. Values of 1, 100 and 1000
    bytes under 16-byte keys, thousands of round trips without a stall, 16
    pipelined GETs in one segment, and the connection stays in step (TCP's
    accounting of it exact: nothing left to read, not readable)."""
    l0d = l0d6
    r = redis6(l0d)
    keys = ["rk:%013d" % i for i in range(4)]
    assert all(len(k) == 16 for k in keys)
    vals = {k: (k[-1] + "w" * vlen)[:vlen] for k in keys}
    for k in keys:
        r.set(k, vals[k])
    make_hot(l0d, keys, client=r)
    assert wait_in_l0(l0d, len(keys)), l0d.metrics()
    (s,) = socks6(l0d, 1)
    s.settimeout(5)
    seg0, rel0, loc0 = (l0d.metric("hotpath_l0_segments_answered_total") or 0,
                        relay_answered(l0d), local_answered(l0d))
    n = 3000
    get_rounds(s, keys, vals, n)
    get_rounds(s, keys, vals, 1, pipeline=16)
    segs = (l0d.metric("hotpath_l0_segments_answered_total") or 0) - seg0
    rel = relay_answered(l0d) - rel0
    # the kernel answers all but the GETs that raced a refresh of L0
    assert segs >= 0.9 * (n + 1), (segs, l0d.metrics())
    assert rel >= segs - 1, (rel, segs)
    assert local_answered(l0d) == loc0     # not the send side
    # large writes right behind kernel answers (passed through the relay
    # when the answer is still on its way, in many pieces)
    p0 = l0d.metric("hotpath_l0_relay_passed_total") or 0
    big = "b" * 300000
    for i in range(20):
        k = keys[i % len(keys)]
        s.sendall(encode("GET", k))
        s.sendall(encode("SET", "big", big) + encode("STRLEN", "big"))
        want = [b"$%d\r\n%s\r\n" % (vlen, vals[k].encode()), b"+OK\r\n", b":300000\r\n"]
        data = b""
        while len(split_replies(data)) < 3:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        assert split_replies(data) == want, (i, data[:200])
    print("large writes passed through the relay: %d" %
          ((l0d.metric("hotpath_l0_relay_passed_total") or 0) - p0))
    # in step: a write and a read through the daemon, then nothing left over
    s.sendall(encode("SET", keys[0], "after") + encode("GET", keys[0]))
    data = b""
    while len(split_replies(data)) < 2:
        data += s.recv(65536)
    assert split_replies(data) == [b"+OK\r\n", b"$5\r\nafter\r\n"]
    time.sleep(0.2)
    assert select.select([s], [], [], 0)[0] == []
    s.close()
    assert (l0d.metric("hotpath_l0_relay_lost_total") or 0) == 0


def test_remote_clients_keep_order_under_many_connections(l0d6):
    """50 IPv6 connections (not enrolled on their side) run the pipelined mix of kernel-answered GETs
    (values of 1 to 1000 bytes), misses, SETs and INCRs, one command per
    segment or split at random bytes: segments for the daemon that follow
    kernel answers still on their way through the relay are passed through
    it, behind them. Every reply in order, none lost, no stall."""
    l0d = l0d6
    r = redis6(l0d)
    hot = ["rv:%d:%s" % (i, "x" * (i * 3)) for i in range(32)]

    def value_of(k):
        i = int(k.split(":")[1])
        n = 1 + i * 32
        return (k + "=" + "v" * n)[:n]
    for k in hot:
        r.set(k, value_of(k))
    make_hot(l0d, hot, client=r)
    assert wait_in_l0(l0d, 32)
    socks = socks6(l0d, 50)
    p0, a0 = l0d.metric("hotpath_l0_relay_passed_total") or 0, relay_answered(l0d)
    mixed_clients(l0d, hot, 40, 2000, 180, value_of, socks=socks)
    assert relay_answered(l0d) - a0 > 500
    print("relay: %d answered, %d passed through" % (
        relay_answered(l0d) - a0, (l0d.metric("hotpath_l0_relay_passed_total") or 0) - p0))
    assert (l0d.metric("hotpath_l0_relay_lost_total") or 0) == 0


def test_relay_survives_clients_that_vanish(l0d6):
    """Clients that send GETs and reset their connection at once (their answers
    may still be on their way through the relay): the answers are discarded,
    and the relay keeps answering the other connections (if the kernel
    stopped the relay socket, the daemon replaces it within a second)."""
    l0d = l0d6
    r = redis6(l0d)
    keys = ["gone:%d" % i for i in range(8)]
    for k in keys:
        r.set(k, "v" * 300)
    make_hot(l0d, keys, client=r)
    assert wait_in_l0(l0d, len(keys))
    socks = socks6(l0d, 201)
    burst = b"".join(encode("GET", keys[i % 8]) for i in range(16))
    for s in socks[:200]:
        s.sendall(burst)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(2.5)             # a failed relay socket is replaced by now
    relay_answers(l0d, keys, {k: "v" * 300 for k in keys}, rounds=500, s=socks[200])
    print("relay: %d lost with their clients; replaced: %s" % (
        l0d.metric("hotpath_l0_relay_lost_total") or 0,
        "relay socket failed" in l0d.log_text()))


def test_connections_whose_relayed_answers_are_lost_are_closed(l0d6):
    """A client that resets its connection while its answer is being written
    can make the kernel stop the relay socket (the reset lands between
    hp_l0_relay's check of the front's socket and the write). Provoked here
    for real: bursts of 200 clients sending 16 GETs and resetting at once,
    while 8 clients loop on pipelined GETs. The relay stopped within a few
    seconds in each of 10 runs here (2-35 s with the bursts alone); if it
    does not within 90 s the test is skipped (a race cannot be ordered). The
    answers and requests queued on it are lost; the daemon replaces it and
    shuts those connections down, so every looping client either gets right
    replies or sees its connection end and reconnects: none stalls."""
    d = l0d6
    r = redis6(d)
    keys = ["lost:%d" % i for i in range(8)]
    vals = {k: k[-1] * 300 for k in keys}
    for k in keys:
        r.set(k, vals[k])
    make_hot(d, keys, client=r)
    assert wait_in_l0(d, len(keys))
    stop = threading.Event()
    seen = {"closed": 0, "stalled": 0, "wrong": 0, "rounds": 0}
    lock = threading.Lock()

    def loop(n):
        s = None
        while not stop.is_set():
            if s is None:
                (s,) = socks6(d, 1)
                s.settimeout(5)
            try:
                get_rounds(s, keys[n % 8:] + keys[:n % 8], vals, 1, pipeline=16)
                with lock:
                    seen["rounds"] += 1
            except (AssertionError, ConnectionResetError) as e:
                if "connection closed" not in str(e) and \
                        not isinstance(e, ConnectionResetError):
                    with lock:
                        seen["wrong"] += 1      # a wrong reply
                    return
                with lock:
                    seen["closed"] += 1
                s.close()
                s = None
            except socket.timeout:
                with lock:
                    seen["stalled"] += 1
                return
        s.close()

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    burst = b"".join(encode("GET", keys[i % 8]) for i in range(16))
    end = time.time() + 90
    try:
        while time.time() < end and "relay socket failed" not in d.log_text():
            for s in socks6(d, 200):
                s.sendall(burst)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
        time.sleep(3)           # the looping clients' last rounds end
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    line = [x for x in d.log_text().splitlines() if "relay socket failed" in x]
    assert seen["stalled"] == 0 and seen["wrong"] == 0, (seen, line)
    if not line:
        pytest.skip("the relay socket did not stop within 90 s (a race): nothing to test")
    print(line[0], seen)
    assert re.search(r"\d+ client connections? waiting for them closed", line[0]), line
    assert d.metric("hotpath_l0_relay_closed_total") >= seen["closed"], d.metrics()
    relay_answers(d, keys, vals)


def test_redis_benchmark_on_remote_connections(l0d6):
    """redis-benchmark's 50 IPv6 connections pipelining 16 GETs of 100-byte
    values: answered by the relay socket, and the run completes."""
    l0d = l0d6
    port = str(l0d.resp_port)
    subprocess.run(["redis-benchmark", "-h", "::1", "-p", port, "-t", "set", "-n", "2000",
                    "-r", "100", "-d", "100", "-q"], capture_output=True, timeout=60, check=True)
    subprocess.run(["redis-benchmark", "-h", "::1", "-p", port, "-t", "get", "-n", "5000",
                    "-r", "100", "-q"], capture_output=True, timeout=60, check=True)
    assert wait_in_l0(l0d, 100), l0d.metrics()
    a0 = relay_answered(l0d)
    res = subprocess.run(["redis-benchmark", "-h", "::1", "-p", port, "-t", "get", "-n",
                          "200000", "-r", "100", "-c", "50", "-P", "16", "-q"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert re.search(r"GET: [\d.]+ requests per second", res.stdout), res.stdout
    assert relay_answered(l0d) - a0 > 5000, l0d.metrics()


def passed_remote(d):
    return d.metric("hotpath_l0_passed_total", {"reason": "remote"}) or 0


def relay_counters(d):
    return [d.metric(m) or 0 for m in ("hotpath_l0_relay_answered_total",
                                        "hotpath_l0_relay_passed_total",
                                        "hotpath_l0_relay_lost_total",
                                        "hotpath_l0_segments_answered_total")]


def daemon_answers_remote(d, keys, vals, n=300):
    """n single GETs and one segment of 16 pipelined ones on a new IPv6
    connection, replies checked; asserts the relay did none of them and
    the verdict program passed every segment as reason="remote"."""
    (s,) = socks6(d, 1)
    s.settimeout(5)
    r0, p0, h0 = relay_counters(d), passed_remote(d), l0_hits(d)
    get_rounds(s, keys, vals, n)
    get_rounds(s, keys, vals, 1, pipeline=16)
    s.close()
    assert relay_counters(d) == r0, (r0, d.metrics())
    assert l0_hits(d) == h0
    assert passed_remote(d) - p0 >= n + 1, d.metrics()
    assert d.metric("hotpath_l0_relay_up") == 0


def test_remote_no_leaves_remote_clients_to_the_daemon(hotpath_factory):
    """[l0] remote = no: no relay socket is created, an IPv6 client's GETs of
    keys in L0 are all answered by the daemon (nothing relayed, replies
    right, each segment counted as passed, reason="remote"), while local
    IPv4 clients still get send-side answers."""
    d = hotpath_factory("[resp]\nlisten = [::1]:0\n")     # remote = no by default
    assert "l0: kernel tier on" in d.log_text(), d.log_text()
    r = redis6(d)
    keys = ["nr:%013d" % i for i in range(4)]
    vals = {k: (k[-1] + "v" * 100)[:100] for k in keys}
    for k in keys:
        r.set(k, vals[k])
    make_hot(d, keys, client=r)
    assert wait_in_l0(d, len(keys)), d.metrics()
    daemon_answers_remote(d, keys, vals)


def test_remote_switched_at_runtime(l0d6):
    """remote = no by reload: new relayed answers stop at once (the relay
    socket stays open, idle); yes again: the relay answers again."""
    d = l0d6
    r = redis6(d)
    keys = ["nrr:%012d" % i for i in range(4)]
    vals = {k: (k[-1] + "w" * 300)[:300] for k in keys}
    for k in keys:
        r.set(k, vals[k])
    make_hot(d, keys, client=r)
    assert wait_in_l0(d, len(keys)), d.metrics()
    assert d.metric("hotpath_l0_relay_up") == 1
    d.write_config("[resp]\nlisten = [::1]:0\n[l0]\nremote = no\n")
    d.reload()
    assert d.wait_log("L0 leaves remote clients to the daemon")
    daemon_answers_remote(d, keys, vals)
    d.write_config("[resp]\nlisten = [::1]:0\n[l0]\nremote = yes\n")
    d.reload()
    assert d.wait_log("L0 answers remote clients through the relay socket")
    relay_answers(d, keys, vals)


def test_switched_off_at_runtime(l0d):
    r = l0d.redis()
    sv = l0_value("s", "x")
    r.set("s", sv)
    make_hot(l0d, ["s"])
    assert wait_in_l0(l0d, 1)
    l0d.write_config("[l0]\nenabled = no\n")
    l0d.reload()
    assert l0d.wait_log("L0 switched off")
    time.sleep(0.2)
    assert l0d.metric("hotpath_l0_enabled") == 0
    assert (l0d.metric("hotpath_cache_keys", {"tier": "l0"}) or 0) == 0
    h0 = l0_hits(l0d)
    for _ in range(100):
        assert r.get("s") == sv.encode()
    assert l0_hits(l0d) == h0
    l0d.write_config("[l0]\nenabled = yes\n")
    l0d.reload()
    assert l0d.wait_log("L0 switched on")
    make_hot(l0d, ["s"])
    assert wait_in_l0(l0d, 1)
    for _ in range(20):
        assert r.get("s") == sv.encode()
    assert l0_hits(l0d) > h0


def sockops_ids(d):
    """The ids of the sock_ops programs the daemon holds (its fds)."""
    return {int(p["prog_id"]) for p in d.bpf_fds("prog")
            if p.get("prog_type") == "13"}                   # BPF_PROG_TYPE_SOCK_OPS


def attached_to_cgroups():
    """The ids of the sock_ops programs attached anywhere (bpftool cgroup tree)."""
    out = subprocess.run(["bpftool", "-j", "cgroup", "tree"], capture_output=True, text=True,
                         check=True).stdout
    return {p["id"] for cg in json.loads(out) for p in cg.get("programs", [])
            if "sock_ops" in p.get("attach_type", "")}


def test_sock_ops_attached_only_while_on(hotpath_factory):
    """With [l0] enabled = no the daemon loads L0 but leaves its sock_ops
    program off the root cgroup (it would run for every TCP connection of
    the host); switching L0 on attaches it, off detaches it again."""
    d = hotpath_factory("[l0]\nenabled = no\n")
    assert "l0: kernel tier loaded but switched off" in d.log_text(), d.log_text()
    ours = sockops_ids(d)
    assert len(ours) == 1, ours
    assert not ours & attached_to_cgroups()
    d.write_config("[l0]\nenabled = yes\n")
    d.reload()
    assert d.wait_log("L0 switched on")
    assert ours <= attached_to_cgroups()
    r = d.redis()
    sv = l0_value("s", "x")
    r.set("s", sv)
    make_hot(d, ["s"])
    assert wait_in_l0(d, 1)
    h0 = l0_hits(d)
    r2 = d.redis()                      # connected while on: enrolled
    for _ in range(20):
        assert r2.get("s") == sv.encode()
    assert l0_hits(d) > h0
    d.write_config("[l0]\nenabled = no\n")
    d.reload()
    assert d.wait_log("L0 switched off")
    assert not ours & attached_to_cgroups()
    for _ in range(20):
        assert r2.get("s") == sv.encode()  # from the daemon

