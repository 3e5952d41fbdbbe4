"""
Admission control in the HTTP proxy, over its real socket in front of a
real (slow) backend: a limit on requests in flight to the backends, a
bounded queue per worker served highest priority class first, the lowest
class shed first (503 with Retry-After) when the queue is full, when
CoDel finds it standing, or after queue_timeout; counted in the API and
/metrics.
"""
import http.client
import re
import threading
import time

from test_http import Backend, get


def hammer(port, path, stop, results, headers=None):
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            st, h, body = get(port, path, conn=conn, headers=headers)
            results.append((st, h.get("retry-after"), h.get("cache-status", "")))
            if h.get("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            results.append((0, None, repr(e)))
            conn = None


def test_high_class_keeps_succeeding_while_low_is_shed(hotpath_factory):
    b = Backend(delay=0.15, name="slow")
    try:
        d = hotpath_factory(ini_extra="""
[http]
listen = 127.0.0.1:0
upstream = web
max_inflight = 2
queue_size = 3
queue_timeout = 5s
queue_target = 2s
retry_after = 7
priority_high = /high/*, header:X-Priority=high
priority_low = /low/*
[upstream.web]
servers = 127.0.0.1:%d
""" % b.port)
        port = int(re.search(r"http: proxy on port (\d+)", d.log_text()).group(1))
        stop = threading.Event()
        high, low, viahdr = [], [], []
        threads = [threading.Thread(target=hammer, args=(port, "/low/x", stop, low))
                   for _ in range(12)]
        threads += [threading.Thread(target=hammer, args=(port, "/high/x", stop, high))
                    for _ in range(2)]
        threads += [threading.Thread(target=hammer, args=(port, "/other", stop, viahdr,
                                                          {"X-Priority": "high"}))]
        for t in threads:
            t.start()
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join(15)
        # the high class is never shed and keeps being served under overload
        assert len(high) >= 8, high
        assert all(st == 200 for st, _, _ in high), [r for r in high if r[0] != 200]
        assert viahdr and all(st == 200 for st, _, _ in viahdr), viahdr
        # the low class is shed, with Retry-After and a Cache-Status that says so
        shed = [r for r in low if r[0] == 503]
        assert shed, low[:5]
        assert all(ra == "7" and 'detail="shed"' in cs for _, ra, cs in shed), shed[:3]
        assert any(st == 200 for st, _, _ in low)
        assert all(st in (200, 503) for st, _, _ in low), [r for r in low if r[0] not in (200, 503)]
        st, doc = d.api_json("GET", "/api/v2/backends", token_name="reader")
        adm = doc["admission"]
        assert adm["classes"]["high"]["shed"] == 0, adm
        assert adm["classes"]["low"]["shed"] == len(shed), adm
        assert adm["classes"]["high"]["admitted"] >= len(high) - 2, adm
        assert adm["shed_queue_full"] > 0, adm
        assert adm["inflight"] == 0 and adm["queued"] == 0, adm   # all drained
        assert d.metric("hotpath_http_admission_total",
                        {"class": "low", "outcome": "shed"}) == len(shed)
        assert d.metric("hotpath_http_admission_shed_total", {"reason": "queue_full"}) > 0
        # the backend never saw more than the limit at once
        assert b.max_concurrent <= 2, b.max_concurrent
    finally:
        b.stop()


class SaturatingBackend(Backend):
    """At most two requests served at once, 20 ms each: latency grows with load."""

    def __init__(self):
        self.sem = threading.Semaphore(2)
        super().__init__(name="sat")

    def start(self):
        super().start()
        handler = self.srv.RequestHandlerClass
        orig = handler._get
        sem = self.sem

        def _get(h):
            with sem:
                time.sleep(0.02)
                orig(h)
        handler._get = _get


def test_gradient_limit_falls_when_the_backend_saturates(hotpath_factory):
    b = SaturatingBackend()
    try:
        # one worker: each worker learns its own limit, and the warm-up
        # client below talks to one of them
        d = hotpath_factory(ini_extra="""
[core]
workers = 1
[http]
listen = 127.0.0.1:0
upstream = web
max_inflight = 64
inflight_limit = gradient
queue_size = 64
queue_timeout = 10s
queue_target = 5s
[upstream.web]
servers = 127.0.0.1:%d
""" % b.port)
        port = int(re.search(r"http: proxy on port (\d+)", d.log_text()).group(1))
        st, doc = d.api_json("GET", "/api/v2/backends", token_name="reader")
        start_limit = doc["admission"]["limit"]
        assert start_limit == 20, doc["admission"]       # it starts at 20
        stop = threading.Event()
        res = []
        # light load first: the limit learns what the backend takes unloaded
        warm = threading.Thread(target=hammer, args=(port, "/x", stop, res))
        warm.start()
        time.sleep(1.5)
        threads = [threading.Thread(target=hammer, args=(port, "/x", stop, res))
                   for _ in range(24)]
        for t in threads:
            t.start()
        threads.append(warm)
        time.sleep(5)
        st, doc = d.api_json("GET", "/api/v2/backends", token_name="reader")
        stop.set()
        for t in threads:
            t.join(15)
        # latency rose with the load, so the limit came down from where it started
        assert doc["admission"]["limit"] < start_limit / 2, doc["admission"]
        assert d.metric("hotpath_http_admission_limit") >= 2
        assert res and all(st in (200, 503) for st, _, _ in res), res[:3]
        assert sum(1 for st, _, _ in res if st == 200) > 20
    finally:
        b.stop()
