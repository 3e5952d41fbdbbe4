"""
HTTP objects in L2: two hotpathd sharing one real redis-server store
their cached responses through the shared tier, so the second answers a
hit that the first stored (Cache-Status says l2), compressed variants
included; purging the URL through one agent's RESP front (DEL, the
shared invalidation path) or banning a pattern through the REST API
removes it from Redis and from both agents.
"""
import gzip
import re
import time

import redis

from test_http import Backend, get
from test_http_compress import TEXT, TextBackend


def agent(factory, redis_port, backend_port):
    d = factory(ini_extra="""
[redis]
address = 127.0.0.1:%d
[http]
listen = 127.0.0.1:0
upstream = web
[upstream.web]
servers = 127.0.0.1:%d
""" % (redis_port, backend_port))
    m = re.search(r"http: proxy on port (\d+)", d.log_text())
    assert m, d.log_text()
    assert "cached responses are also stored in L2" in d.log_text()
    d.http_port = int(m.group(1))
    return d


def wait_until(fn, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.05)
    return fn()


def test_second_agent_answers_from_l2(hotpath_factory, redis_server):
    b = Backend(name="origin")
    tb = TextBackend()
    try:
        a1 = agent(hotpath_factory, redis_server, b.port)
        a2 = agent(hotpath_factory, redis_server, b.port)
        direct = redis.Redis(port=redis_server)
        st, h, body = get(a1.http_port, "/fresh/shared")
        assert st == 200 and h["cache-status"].startswith("hotpath; fwd=uri-miss; stored")
        assert direct.exists("http:GET:127.0.0.1:%d/fresh/shared" % a1.http_port) == 1
        # keys name the Host the client sent: one Host for both agents
        st, h, body = get(a1.http_port, "/fresh/x", headers={"Host": "shop.example"})
        assert direct.exists("http:GET:shop.example/fresh/x") == 1
        assert 0 < direct.pttl("http:GET:shop.example/fresh/x") <= 3600 * 1000 + 60000
        st, h2, body2 = get(a2.http_port, "/fresh/x", headers={"Host": "shop.example"})
        assert st == 200 and body2 == body
        assert h2["cache-status"].startswith("hotpath; hit; detail=l2"), h2
        assert b.count("/fresh/x") == 1
        # now in a2's L1 as well
        st, h3, _ = get(a2.http_port, "/fresh/x", headers={"Host": "shop.example"})
        assert h3["cache-status"].startswith("hotpath; hit; detail=l1"), h3
        st, doc = a2.api_json("GET", "/api/v2/backends", token_name="reader")
        assert doc["cache"]["l2_hits"] >= 1 and doc["cache"]["l2_errors"] == 0
        assert a1.metric("hotpath_http_cache_l2_total", {"op": "stored"}) >= 2
        # purge through a2's RESP front: gone from Redis and from both agents
        assert a2.redis().delete("http:GET:shop.example/fresh/x") == 1
        assert direct.exists("http:GET:shop.example/fresh/x") == 0
        assert wait_until(lambda: get(a1.http_port, "/fresh/x",
                                      headers={"Host": "shop.example"})[1]["cache-status"]
                          .startswith("hotpath; fwd=uri-miss")), "a1 still serves it"
        assert b.count("/fresh/x") == 2
        # ban a pattern through the REST API of a1
        get(a1.http_port, "/fresh/y", headers={"Host": "shop.example"})
        assert direct.exists("http:GET:shop.example/fresh/y") == 1
        st, out = a1.api_json("DELETE", "/api/v2/performance/cache/invalidate",
                              body={"invalidation_pattern": "http:GET:shop.example/fresh/*",
                                    "scope": "all"})
        assert st == 200, out
        assert direct.exists("http:GET:shop.example/fresh/y") == 0
        # compressed variants are shared too
        t1 = agent(hotpath_factory, redis_server, tb.port)
        t2 = agent(hotpath_factory, redis_server, tb.port)
        hdr = {"Host": "text.example", "Accept-Encoding": "gzip"}
        get(t1.http_port, "/page", headers=hdr)                 # miss, stored
        st, h, body = get(t1.http_port, "/page", headers=hdr)  # builds the gzip variant
        assert h["content-encoding"] == "gzip"
        st, h, body = get(t2.http_port, "/page", headers=hdr)
        assert h["content-encoding"] == "gzip" and gzip.decompress(body) == TEXT
        assert h["cache-status"].startswith("hotpath; hit; detail=l2"), h
        st, doc = t2.api_json("GET", "/api/v2/backends", token_name="reader")
        assert doc["compression"]["built"] == 0          # t1's variant was used
        assert tb.count("/page") == 1
    finally:
        b.stop()
        tb.stop()
