#!/usr/bin/env python3
"""
bench/tier_zipf.py - hit ratio per tier on a Zipf(0.99) read workload.

Starts redis-server (L2, empty) and hotpathd with [redis] on free loopback
ports. The client plays the application with a cache-aside loader: GET
through hotpathd; on a miss it "calls the loader" (counted) and SETs the
value through hotpathd (write-through to Redis). L1 is sized to hold 20%
of the key space: a calibration run measures L1 bytes per entry first.
Reports, over the measured reads (after a warm-up of the same length):
L1 hits, L2 hits, loader calls, and the share of reads answered without
a loader call. Run by bench/tier.sh.
"""
import bisect
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HOTPATHD = os.path.join(ROOT, os.environ.get("OUT", "build"), "hotpathd")
KEYS = int(os.environ.get("KEYS", "20000"))
READS = int(os.environ.get("READS", "200000"))
VALUE = int(os.environ.get("VALUE", "100"))
ALPHA = float(os.environ.get("ALPHA", "0.99"))
SEED = int(os.environ.get("SEED", "1"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, t=10):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def metrics(api):
    out = {}
    for line in urllib.request.urlopen("http://127.0.0.1:%d/metrics" % api).read().decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, _, v = line.rpartition(" ")
        out[k] = float(v)
    return out


def start_agent(tmp, rport, l1_bytes):
    hport, aport = free_port(), free_port()
    ini = os.path.join(tmp, "hp.ini")
    with open(ini, "w") as f:
        f.write("[core]\nworkers = 1\nlog_level = warn\n[resp]\nlisten = 127.0.0.1:%d\n"
                "[api]\nlisten = 127.0.0.1:%d\n[cache]\nl1_max_memory = %d\nl1_shards = 1\n"
                "memory_pressure = no\n[bpf]\nenabled = no\n[redis]\naddress = 127.0.0.1:%d\n"
                "l1_ttl = 1h\n" % (hport, aport, l1_bytes, rport))
    p = subprocess.Popen([HOTPATHD, "-c", ini], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_port(hport)
    wait_port(aport)
    time.sleep(0.3)
    return p, hport, aport


def zipf_cdf(n, a):
    w = [1.0 / (i ** a) for i in range(1, n + 1)]
    tot = sum(w)
    acc, cdf = 0.0, []
    for x in w:
        acc += x / tot
        cdf.append(acc)
    return cdf


def main():
    tmp = tempfile.mkdtemp(prefix="hotpath-bench-tier-")
    rport = free_port()
    rs = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", tmp],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = None
    try:
        wait_port(rport)
        val = "x" * VALUE
        # calibration: bytes per L1 entry of this key/value shape
        agent, hport, aport = start_agent(tmp, rport, 256 << 20)
        c = redis.Redis(port=hport)
        for i in range(2000):
            c.set("item:%d" % i, val)
            c.get("item:%d" % i)
        m = metrics(aport)
        per = m['hotpath_cache_memory_bytes{tier="l1"}'] / max(1, m['hotpath_cache_keys{tier="l1"}'])
        agent.send_signal(signal.SIGTERM)
        agent.wait(10)
        redis.Redis(port=rport).flushall()
        l1_bytes = max(64 << 10, int(per * KEYS * 0.20))
        agent, hport, aport = start_agent(tmp, rport, l1_bytes)
        c = redis.Redis(port=hport)
        rng = random.Random(SEED)
        cdf = zipf_cdf(KEYS, ALPHA)
        # random rank -> key mapping so hot keys are spread over the key space
        perm = list(range(KEYS))
        rng.shuffle(perm)

        def run(n):
            loads = 0
            for _ in range(n):
                k = "item:%d" % perm[bisect.bisect_left(cdf, rng.random())]
                if c.get(k) is None:
                    loads += 1          # the loader: origin read, then cache it
                    c.set(k, val)
            return loads

        run(READS)                      # warm-up
        m0 = metrics(aport)
        t0 = time.time()
        loads = run(READS)
        dt = time.time() - t0
        m1 = metrics(aport)

        def d(name):
            return m1.get(name, 0) - m0.get(name, 0)
        l1 = d('hotpath_tier_reads_total{result="l1_hit"}')
        l2 = d('hotpath_tier_reads_total{result="l2_hit"}')
        miss = d('hotpath_tier_reads_total{result="l2_miss"}')
        keys_in_l1 = m1['hotpath_cache_keys{tier="l1"}']
        print("keys=%d reads=%d zipf=%.2f value=%dB l1_max_memory=%d (~%d keys, %.0f%% of the key space; %d held)"
              % (KEYS, READS, ALPHA, VALUE, l1_bytes, int(l1_bytes / per),
                 100.0 * l1_bytes / per / KEYS, keys_in_l1))
        print("L1 hits      %7d  %5.1f%%" % (l1, 100 * l1 / READS))
        print("L2 hits      %7d  %5.1f%%" % (l2, 100 * l2 / READS))
        print("loader calls %7d  %5.1f%%   (L2 misses seen by the agent: %d)"
              % (loads, 100 * loads / READS, miss))
        print("answered without a loader call: %.1f%%   (%.0f reads/s, one unpipelined client)"
              % (100.0 * (READS - loads) / READS, READS / dt))
    finally:
        if agent:
            agent.send_signal(signal.SIGTERM)
            agent.wait(10)
        rs.terminate()
        rs.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
