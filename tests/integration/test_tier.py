"""
Tiered cache (L1 + L2 Redis / Redis Cluster) against real redis-server
processes started here on free loopback ports: read-through with TTLs,
write-through, coherence with a writer that bypasses the agent (client
tracking), pattern invalidation across two agents, the breaker when Redis
dies and the flush when it comes back, and a real 3-node Redis Cluster
(slot routing, MOVED after a slot migration, failover to a replica).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

from conftest import die_with_us, free_port


def cluster_port():
    """A free port whose bus port (+10000) is free too: Redis Cluster needs
    both, so the port must be at most 55535."""
    import random
    for _ in range(200):
        p = random.randint(20000, 55000)
        try:
            for q in (p, p + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class RedisProc:
    def __init__(self, port=None, cluster=False, extra=()):
        self.port = port or (cluster_port() if cluster else free_port())
        self.dir = tempfile.mkdtemp(prefix="hotpath-tier-redis-")
        self.cluster = cluster
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--protected-mode", "no"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     os.path.join(self.dir, "nodes.conf"), "--cluster-node-timeout", "1000"]
        self.proc = subprocess.Popen(args + self.extra, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=die_with_us)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start on %d" % self.port)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_proc():
    procs = []

    def make(**kw):
        p = RedisProc(**kw)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.close()


def l2_ini(port, **extra):
    lines = ["[redis]", "address = 127.0.0.1:%d" % port, "command_timeout = 300ms",
             "connect_timeout = 300ms", "breaker_open_time = 500ms"]
    lines += ["%s = %s" % kv for kv in extra.items()]
    return "\n".join(lines) + "\n"


def wait_until(fn, timeout=5.0, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def tracking_up(hp):
    return wait_until(lambda: "invalidation connection to" in hp.log_text() and
                      " up " in hp.log_text(), 5)


def test_read_through_ttl_and_write_through(hotpath_factory, redis_proc):
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(l2_ini(rp.port, l1_ttl="5s"))
    assert tracking_up(hp)
    c = hp.redis()
    direct.set("user:1", "alice", px=60000)
    direct.set("user:2", "bob")
    # L1 miss -> L2 hit, copied into L1 with TTL capped at l1_ttl
    assert c.get("user:1") == b"alice"
    assert c.get("user:1") == b"alice"
    assert c.get("missing") is None
    st, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert st == 200, body
    assert body["tier"]["l2_hits"] >= 1 and body["tier"]["l1_hits"] >= 1
    assert body["tier"]["l2_misses"] >= 1
    assert body["l2"]["nodes"][0]["tracking"] is True
    # TTL reads go to Redis (source of truth)
    assert 50000 < c.pttl("user:1") <= 60000
    # writes go through to Redis and leave L1
    assert c.set("user:1", "carol") is True
    assert direct.get("user:1") == b"carol"
    assert c.get("user:1") == b"carol"
    assert c.incr("counter") == 1 and direct.get("counter") == b"1"
    assert c.delete("user:2") == 1 and direct.exists("user:2") == 0
    assert c.get("user:2") is None
    assert c.mget("user:1", "nope", "counter") == [b"carol", None, b"1"]


def test_bypassing_writer_is_seen(hotpath_factory, redis_proc):
    """A second client writes straight to Redis: once Redis has sent the
    invalidation, the agent never serves the old value."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(l2_ini(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    c = hp.redis()
    for i in range(20):
        direct.set("k%d" % i, "v0")
        assert c.get("k%d" % i) == b"v0"      # now cached in L1 (1 h)
        assert c.get("k%d" % i) == b"v0"
    for rnd in range(1, 4):
        for i in range(20):
            direct.set("k%d" % i, "v%d" % rnd)
        # invalidations travel on another connection: allow them to land
        for i in range(20):
            assert wait_until(lambda: c.get("k%d" % i) == b"v%d" % rnd, 2), (i, rnd)
    # FLUSHALL done by someone else empties L1 too
    direct.flushall()
    assert wait_until(lambda: c.get("k3") is None, 2)
    st, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["l2"]["invalidations"] >= 60


def test_race_read_vs_invalidation(hotpath_factory, redis_proc):
    """Readers hammer a key while a bypassing writer keeps changing it: after
    the writer stops and its last invalidation landed, every reader sees the
    last value (a value read before an invalidation was never cached after
    it)."""
    import threading
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(l2_ini(rp.port, l1_ttl="1h"))
    assert tracking_up(hp)
    stop = threading.Event()

    def reader():
        c = hp.redis()
        while not stop.is_set():
            c.get("hot")

    ts = [threading.Thread(target=reader) for _ in range(4)]
    for t in ts:
        t.start()
    for i in range(300):
        direct.set("hot", "v%d" % i)
    time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join()
    c = hp.redis()
    for _ in range(20):
        assert c.get("hot") == b"v299"


def test_redis_killed_breaker_and_recovery(hotpath_factory, redis_proc):
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(l2_ini(rp.port, l1_ttl="1h", stale_if_error="3s"))
    assert tracking_up(hp)
    c = hp.redis()
    direct.set("cached", "yes")
    assert c.get("cached") == b"yes"
    rp.kill()
    # cached keys keep being served within stale_if_error
    t0 = time.time()
    assert c.get("cached") == b"yes"
    # others get a clear error, quickly
    errs = 0
    for i in range(30):
        s = time.time()
        try:
            c.get("other%d" % i)
        except redis.exceptions.ResponseError as e:
            assert "L2DOWN" in str(e)
            errs += 1
        assert time.time() - s < 1.0
    assert errs == 30
    st, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["breaker"]["state"] == "open", body
    assert body["tier"]["breaker"]["opened"] >= 1
    assert body["tier"]["l2_rejected"] > 0         # refused at once while open
    assert c.get("cached") == b"yes"
    assert time.time() - t0 < 3
    # after the stale_if_error window L1 is flushed: no more stale answers
    time.sleep(3.2)
    with pytest.raises(redis.exceptions.ResponseError):
        c.get("cached")
    # restart: the breaker closes, L1 starts from what Redis has
    rp.start()
    direct = rp.client()
    direct.set("cached", "fresh")
    assert wait_until(lambda: _try_get(c, "cached") == b"fresh", 6)
    # half-open probes succeed: closed again
    def closed():
        _try_get(c, "probe")
        return hp.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]["breaker"]["state"] == "closed"
    assert wait_until(closed, 3)
    st, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["flushes"] >= 1
    assert wait_until(lambda: hp.api_json("GET", "/api/v2/cache/tiers")[1]["tier"]["coherent"], 3)


def test_restart_within_window_flushes_l1(hotpath_factory, redis_proc):
    """Redis restarts (data changed meanwhile) before stale_if_error ends:
    the agent must not keep the old copy, since invalidations were lost."""
    rp = redis_proc()
    direct = rp.client()
    hp = hotpath_factory(l2_ini(rp.port, l1_ttl="1h", stale_if_error="30s"))
    assert tracking_up(hp)
    c = hp.redis()
    direct.set("a", "old")
    assert c.get("a") == b"old"
    rp.kill()
    assert c.get("a") == b"old"                     # stale-if-error
    rp.start()
    rp.client().set("a", "new")                       # a write we could not hear about
    assert wait_until(lambda: _try_get(c, "a") == b"new", 6)


def _try_get(c, k):
    try:
        return c.get(k)
    except redis.exceptions.RedisError:
        return None


def test_pattern_invalidation_two_agents(hotpath_factory, redis_proc):
    rp = redis_proc()
    direct = rp.client()
    a = hotpath_factory(l2_ini(rp.port, l1_ttl="1h", tracking="no"))
    b = hotpath_factory(l2_ini(rp.port, l1_ttl="1h", tracking="no"))
    ca, cb = a.redis(), b.redis()
    for i in range(50):
        direct.set("prod:%d" % i, "p%d" % i)
    direct.set("keep:1", "k")
    for i in range(50):
        assert ca.get("prod:%d" % i) == b"p%d" % i
        assert cb.get("prod:%d" % i) == b"p%d" % i
    assert cb.get("keep:1") == b"k"
    # without tracking b would serve its copies for 1 h; the pattern
    # invalidation on a reaches it over the channel
    n = ca.execute_command("HOTPATH.INVALIDATE", "prod:*")
    assert n >= 50
    assert direct.exists("prod:1") == 0 and direct.get("keep:1") == b"k"
    for i in range(50):
        assert ca.get("prod:%d" % i) is None       # right after the ack
    assert wait_until(lambda: cb.get("prod:7") is None, 3)
    assert cb.get("keep:1") == b"k"
    st, body = b.api_json("GET", "/api/v2/cache/tiers")
    assert body["tier"]["peer_messages_in"] >= 1
    # REST: invalidate and clear reach L2 as well
    direct.set("prod:x", "1")
    direct.set("prod:y", "1")
    assert ca.get("prod:x") == b"1"
    st, body = a.api_json("DELETE", "/api/v2/performance/cache/invalidate",
                          body={"invalidation_pattern": "prod:*", "scope": "all"})
    assert st == 200, body
    assert body["invalidated"]["l2"] == 2
    assert direct.exists("prod:x", "prod:y") == 0 and ca.get("prod:x") is None
    st, body = a.api_json("POST", "/api/v2/cache/clear",
                          body={"cache_scope": "all", "clear_pattern": "keep:*"})
    assert st == 200, body
    assert body["deleted"]["l2"] == 1 and direct.exists("keep:1") == 0
    assert wait_until(lambda: cb.get("keep:1") is None, 3)


def test_hotpath_invalidate_errors(hotpath_factory, redis_proc):
    rp = redis_proc()
    hp = hotpath_factory(l2_ini(rp.port))
    c = hp.redis()
    with pytest.raises(redis.exceptions.ResponseError, match="wrong number"):
        c.execute_command("HOTPATH.INVALIDATE")
    with pytest.raises(redis.exceptions.ResponseError, match="scope"):
        c.execute_command("HOTPATH.INVALIDATE", "x*", "everywhere")
    assert c.execute_command("HOTPATH.INVALIDATE", "x*", "LOCAL") == 0


def test_metrics_show_tiers_and_tasks(hotpath_factory, redis_proc):
    rp = redis_proc()
    hp = hotpath_factory(l2_ini(rp.port))
    c = hp.redis()
    rp.client().set("m", "1")
    c.get("m")
    c.get("m")
    assert hp.metric("hotpath_tier_reads_total", {"result": "l2_hit"}) >= 1
    assert hp.metric("hotpath_tier_reads_total", {"result": "l1_hit"}) >= 1
    assert hp.metric("hotpath_l2_breaker_state") == 0
    assert hp.metric("hotpath_tasks_queue_depth") == 0
    assert hp.metric("hotpath_tasks_workers") >= 1


# ---- Redis Cluster ---------------------------------------------------------

def redis_cli(*args, timeout=30):
    return subprocess.run(["redis-cli"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout)


def cluster_ok(port, nodes):
    out = redis_cli("-p", port, "cluster", "info").stdout
    if "cluster_state:ok" not in out:
        return False
    return "cluster_known_nodes:%d" % nodes in out


@pytest.fixture
def cluster(redis_proc):
    nodes = [redis_proc(cluster=True) for _ in range(3)]
    r = redis_cli("--cluster", "create", *["127.0.0.1:%d" % n.port for n in nodes],
                  "--cluster-yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: all(cluster_ok(n.port, 3) for n in nodes), 15)
    return nodes


def cluster_client(nodes):
    from redis.cluster import RedisCluster, ClusterNode
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in nodes],
                        socket_timeout=5)


def node_of_slot(nodes, slot):
    for n in nodes:
        out = redis_cli("-p", n.port, "cluster", "slots").stdout
        # parsing the raw output is awkward: ask the node directly
        c = n.client()
        for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                for m in nodes:
                    if m.port == master[1]:
                        return m
        del out
    return None


def test_cluster_routing_moved_and_failover(hotpath_factory, redis_proc, cluster):
    nodes = cluster
    seeds = ",".join("127.0.0.1:%d" % n.port for n in nodes)
    hp = hotpath_factory("[redis]\ncluster = %s\ncommand_timeout = 500ms\n"
                         "connect_timeout = 300ms\nbreaker_open_time = 300ms\n"
                         "l1_ttl = 1h\n" % seeds)
    cc = cluster_client(nodes)
    c = hp.redis()
    keys = ["key:%d" % i for i in range(200)]
    for k in keys:
        cc.set(k, "v-" + k)
    # reads routed by slot to all three masters
    for k in keys:
        assert c.get(k) == ("v-" + k).encode()
    # writes through the agent land on the right master
    for k in keys[:50]:
        assert c.set(k, "w-" + k) is True
    for k in keys[:50]:
        assert cc.get(k) == ("w-" + k).encode()
        assert c.get(k) == ("w-" + k).encode()
    # hash tags keep multi-key commands in one slot
    assert c.mset({"{u1}:a": "1", "{u1}:b": "2"}) is True
    assert cc.get("{u1}:b") == b"2"
    # a bypassing writer on the cluster invalidates the agent's copy
    assert wait_until(lambda: "invalidation connection to" in hp.log_text(), 5)
    cc.set("key:77", "changed")
    assert wait_until(lambda: c.get("key:77") == b"changed", 3)
    # cluster-wide pattern invalidation
    assert c.execute_command("HOTPATH.INVALIDATE", "key:1*") >= 111
    assert cc.get("key:150") is None and c.get("key:150") is None
    assert c.get("key:20") is not None

    # migrate one slot to another master: the agent follows MOVED
    key = "key:5"
    slot = cc.keyslot(key)
    src = node_of_slot(nodes, slot)
    dst = [n for n in nodes if n is not src][0]
    sid = src.client().execute_command("CLUSTER", "MYID").decode()
    did = dst.client().execute_command("CLUSTER", "MYID").decode()
    dst.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", sid)
    src.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", did)
    # while migrating, a key not yet moved is served by the source, a new key
    # of that slot is answered with ASK by the source
    moved_keys = src.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
    for mk in moved_keys:
        src.client().execute_command("MIGRATE", "127.0.0.1", dst.port, mk, 0, 5000)
    for n in nodes:
        n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", did)
    # a write right away goes to the old owner first, which answers MOVED
    assert c.set(key, "after-move") is True
    assert dst.client().get(key) == b"after-move"
    assert c.get(key) == b"after-move"
    st, body = hp.api_json("GET", "/api/v2/cache/tiers")
    assert body["l2"]["cluster"] is True
    assert body["l2"]["moved"] + body["l2"]["ask"] + body["l2"]["topology_refreshes"] >= 1

    # failover: give the master of a key a replica, kill the master
    key = "key:42"
    victim = node_of_slot(nodes, cc.keyslot(key))
    vid = victim.client().execute_command("CLUSTER", "MYID").decode()
    rep = redis_proc(cluster=True)
    r = redis_cli("--cluster", "add-node", "127.0.0.1:%d" % rep.port,
                  "127.0.0.1:%d" % victim.port, "--cluster-slave", "--cluster-master-id", vid)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: rep.client().info("replication").get("master_link_status")
                      == "up", 15)
    victim.kill()
    # the replica is promoted after cluster-node-timeout; the agent finds it
    def write_ok():
        try:
            return c.set(key, "after-failover") is True
        except redis.exceptions.RedisError:
            return False
    assert wait_until(write_ok, 20, step=0.2)
    assert rep.client().get(key) == b"after-failover"
    assert c.get(key) == b"after-failover"
