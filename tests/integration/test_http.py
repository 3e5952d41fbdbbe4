"""
The HTTP caching reverse proxy, driven over its real socket in front of
real backends: python http.server subclasses on free loopback ports,
started by each test. Covers keep-alive, pipelining, chunked both ways,
100-continue, request-smuggling refusals, caching headers and
Cache-Status, revalidation, invalidation, coalescing, a backend killed
under load (bounded errors, then none, back through slow start), breaker
and backend state over the API and /metrics, and the public HTTP cache
test suite (http-cache-tests) with a floor that only rises.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import ROOT, die_with_us, free_port

SUITE_DIR = os.path.join(ROOT, "tests", "http-cache-tests")


class Backend:
    """A real HTTP/1.1 server in a thread; counts requests per path."""

    def __init__(self, port=None, delay=0.0, name="b"):
        self.port = port or free_port()
        self.delay = delay
        self.name = name
        self.hits = {}
        self.seen = []
        self.socks = []
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_concurrent = 0     # most GETs handled at once
        self.start()

    def start(self):
        owner = self

        class S(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass    # clients (the proxy, health checks) may hang up early

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with owner.lock:
                    owner.socks.append(self.connection)

            def _count(self):
                with owner.lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                    owner.seen.append((self.command, self.path, dict(self.headers)))
                    return owner.hits[self.path]

            def _send(self, status, body, headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("X-Backend", owner.name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                with owner.lock:
                    owner.inflight += 1
                    owner.max_concurrent = max(owner.max_concurrent, owner.inflight)
                try:
                    self._get()
                finally:
                    with owner.lock:
                        owner.inflight -= 1

            def _get(self):
                n = self._count()
                if owner.delay:
                    time.sleep(owner.delay)
                p = self.path
                if p.startswith("/fresh"):
                    self._send(200, b"fresh %d" % n, [("Cache-Control", "max-age=60")])
                elif p.startswith("/etag"):
                    if self.headers.get("If-None-Match") == '"v1"':
                        self.send_response(304)
                        self.send_header("ETag", '"v1"')
                        self.send_header("Cache-Control", "max-age=3")
                        self.send_header("X-Revalidated", "yes")
                        self.end_headers()
                        return
                    self._send(200, b"etag body", [("Cache-Control", "max-age=3"),
                                                  ("ETag", '"v1"')])
                elif p.startswith("/chunked"):
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Cache-Control", "max-age=60")
                    self.end_headers()
                    for part in (b"hello ", b"chunked ", b"world"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
                elif p.startswith("/health"):
                    self._send(200, b"ok")
                else:
                    self._send(200, ("%s %s %d" % (owner.name, p, n)).encode(),
                               [("Cache-Control", "no-store")])

            def do_POST(self):
                self._count()
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(200, b"echo:" + data)

        self.srv = S(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        """Like a killed process: the listener and every open connection go."""
        self.srv.shutdown()
        self.srv.server_close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.socks = []

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)


def start_proxy(factory, backends, balance="round_robin", extra=""):
    servers = ",".join("127.0.0.1:%d" % b.port for b in backends)
    d = factory(ini_extra="""
[http]
listen = 127.0.0.1:0
upstream = web
connect_timeout = 500ms
upstream_timeout = 5s
[upstream.web]
servers = %s
balance = %s
%s
""" % (servers, balance, extra))
    m = re.search(r"http: proxy on port (\d+)", d.log_text())
    assert m, d.log_text()
    d.http_port = int(m.group(1))
    return d


def get(port, path, headers=None, conn=None, method="GET", body=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    if conn is None:
        c.close()
    return r.status, hdrs, data


def raw(port, payload, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(payload)
    out = b""
    end = time.time() + timeout
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.stop()


def test_keepalive_cache_hit_and_cache_status(hotpath_factory, backend):
    d = start_proxy(hotpath_factory, [backend])
    conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=10)
    st, h, body = get(d.http_port, "/fresh/a", conn=conn)
    assert st == 200 and body == b"fresh 1"
    assert h["cache-status"].startswith("hotpath; fwd=uri-miss")
    st, h, body = get(d.http_port, "/fresh/a", conn=conn)
    assert st == 200 and body == b"fresh 1"
    assert h["cache-status"].startswith("hotpath; hit")
    assert "age" in h
    assert backend.count("/fresh/a") == 1
    # uncacheable responses say so and reach the backend every time
    for i in range(3):
        st, h, body = get(d.http_port, "/nostore", conn=conn)
        assert h["cache-status"].startswith("hotpath; fwd=uri-miss")
    assert backend.count("/nostore") == 3
    # HEAD from the stored GET
    st, h, body = get(d.http_port, "/fresh/a", conn=conn, method="HEAD")
    assert st == 200 and body == b"" and h["content-length"] == "7"
    conn.close()
    # the L1 key is visible through the shared cache API
    r = d.redis()
    assert r.exists("http:GET:127.0.0.1:%d/fresh/a" % d.http_port)


def test_pipelining_in_order(hotpath_factory, backend):
    d = start_proxy(hotpath_factory, [backend])
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    reqs += b"GET /fresh/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw(d.http_port, reqs)
    bodies = re.findall(rb"b /p(\d) 1", out)
    assert bodies == [b"0", b"1", b"2", b"3", b"4"], out
    assert out.count(b"HTTP/1.1 200") == 6
    assert out.endswith(b"fresh 1")


def test_chunked_both_ways_and_100_continue(hotpath_factory, backend):
    d = start_proxy(hotpath_factory, [backend])
    st, h, body = get(d.http_port, "/chunked")
    assert st == 200 and body == b"hello chunked world"
    st, h, body = get(d.http_port, "/chunked")
    assert body == b"hello chunked world" and h["cache-status"].startswith("hotpath; hit")
    out = raw(d.http_port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nT: 1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"echo:abcdefg"), out
    # Expect: 100-continue is answered by the proxy before the body is sent
    s = socket.create_connection(("127.0.0.1", d.http_port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
              b"Connection: close\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(b"hello")
    data = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"echo:hello")


@pytest.mark.parametrize("payload,status", [
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) +
     b"\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", 413),
])
def test_smuggling_and_limits_refused(hotpath_factory, backend, payload, status):
    d = start_proxy(hotpath_factory, [backend])
    out = raw(d.http_port, payload)
    assert out.startswith(b"HTTP/1.1 %d " % status), out
    assert b"Connection: close" in out
    assert backend.seen == []


def test_revalidation_and_client_conditionals(hotpath_factory, backend):
    d = start_proxy(hotpath_factory, [backend])
    st, h, body = get(d.http_port, "/etag")
    assert body == b"etag body" and h["etag"] == '"v1"'
    st, h, body = get(d.http_port, "/etag", headers={"If-None-Match": '"v1"'})
    assert st == 304 and h["cache-status"].startswith("hotpath; hit")
    # Ages count in whole seconds (Date has no finer grain): apparent age and
    # resident time each round up to a second, so max-age=3 stays fresh for
    # the two requests above however the second boundaries fall, and 3.2 s
    # of real time makes it stale for certain.
    time.sleep(3.2)
    st, h, body = get(d.http_port, "/etag")
    assert st == 200 and body == b"etag body"
    assert "fwd=stale" in h["cache-status"] and "fwd-status=304" in h["cache-status"]
    assert h.get("x-revalidated") == "yes"   # header updated from the 304
    assert backend.seen[-1][2].get("If-None-Match") == '"v1"'
    assert backend.count("/etag") == 2


def test_invalidation_after_post(hotpath_factory, backend):
    d = start_proxy(hotpath_factory, [backend])
    assert get(d.http_port, "/fresh/inv")[2] == b"fresh 1"
    assert get(d.http_port, "/fresh/inv")[2] == b"fresh 1"
    st, h, body = get(d.http_port, "/fresh/inv", method="POST", body=b"x")
    assert st == 200
    assert get(d.http_port, "/fresh/inv")[2] == b"fresh 3"


def test_concurrent_misses_coalesce(hotpath_factory):
    b = Backend(delay=0.5)
    try:
        d = start_proxy(hotpath_factory, [b])
        results = []

        def one():
            results.append(get(d.http_port, "/fresh/hot"))
        ts = [threading.Thread(target=one) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert len(results) == 8 and all(r[2] == b"fresh 1" for r in results)
        assert b.count("/fresh/hot") == 1
        assert sum("collapsed" in r[1]["cache-status"] for r in results) >= 1
    finally:
        b.stop()


def test_backend_killed_under_load_then_returns(hotpath_factory):
    bs = [Backend(name="b%d" % i) for i in range(3)]
    d = start_proxy(hotpath_factory, bs, balance="least_request",
                    extra="eject_consecutive = 3\neject_time = 500ms\nslow_start = 1s\n"
                          "breaker_open_time = 500ms\n"
                          "health_path = /health\nhealth_interval = 200ms\nhealth_fall = 2\n"
                          "health_rise = 1\n")
    errors, oks, stop = [], [], threading.Event()

    def load():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=5)
                st, h, body = get(d.http_port, "/load", conn=conn)
                (oks if st == 200 else errors).append(time.time())
            except (OSError, http.client.HTTPException):
                errors.append(time.time())
                conn = None
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    killed_at = time.time()
    port = bs[1].port
    bs[1].stop()
    time.sleep(2.0)
    late_errors = [e for e in errors if e > killed_at + 1.0]
    # back on the same port: health checks and slow start bring it back
    bs[1] = Backend(port=port, name="b1-again")
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(10)
    for b in bs:
        b.stop()
    assert len(oks) > 100
    assert len(errors) <= 5, "errors after the kill: %d" % len(errors)
    assert late_errors == []
    st, doc = d.api_json("GET", "/api/v2/backends", token_name="reader")
    assert bs[1].count("/load") > 0, ("returned backend got no traffic", doc,
                                      d.api_json("GET", "/api/v2/breakers", token_name="reader"))
    assert st == 200 and len(doc["backends"]) == 3
    st, doc = d.api_json("GET", "/api/v2/breakers", token_name="reader")
    assert st == 200 and len(doc["breakers"]) == 3
    whats = {(t["what"], t["to"]) for t in doc["transitions"]}
    assert ("health", "unhealthy") in whats or ("ejection", "ejected") in whats, doc
    text = d.metrics()
    assert "hotpath_http_backend_breaker_state" in text
    assert d.metric("hotpath_http_requests_total") > 100


def test_breaker_opens_and_recovers(hotpath_factory):
    b = Backend(name="solo")
    port = b.port
    d = start_proxy(hotpath_factory, [b], extra="eject_consecutive = 1000\npanic_percent = 1\n"
                    "breaker_window = 4\nbreaker_open_time = 500ms\nbreaker_probes = 1\n")
    assert get(d.http_port, "/x")[0] == 200
    b.stop()
    for _ in range(4):
        assert get(d.http_port, "/x")[0] in (502, 503)
    st, doc = d.api_json("GET", "/api/v2/breakers", token_name="reader")
    assert doc["breakers"][0]["state"] == "open", doc
    assert get(d.http_port, "/x")[0] == 503          # refused without trying
    b = Backend(port=port, name="solo")
    time.sleep(0.7)
    assert get(d.http_port, "/x")[0] == 200          # half-open probe succeeds
    st, doc = d.api_json("GET", "/api/v2/breakers", token_name="reader")
    assert doc["breakers"][0]["state"] == "closed"
    tos = [t["to"] for t in doc["transitions"] if t["what"] == "breaker"]
    assert "open" in tos and "closed" in tos
    b.stop()


def test_http_cache_tests_suite_floor(hotpath_factory):
    """cache-tests.fyi's suite, run with its own origin server; the floor only rises."""
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(SUITE_DIR, "node_modules", "http-cache-tests")):
        pytest.fail("http-cache-tests is not installed: run `make deps` (npm ci in %s)" % SUITE_DIR)
    floor = int(open(os.path.join(SUITE_DIR, "FLOOR")).read().split()[0])
    port = free_port()
    pkg = os.path.join(SUITE_DIR, "node_modules", "http-cache-tests")
    env = dict(os.environ, npm_config_protocol="http", npm_config_port=str(port),
               npm_config_pidfile="/dev/null")
    origin = subprocess.Popen([node, "server/server.mjs"], cwd=pkg, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=die_with_us)
    try:
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        origin_backend = type("O", (), {"port": port})()
        d = start_proxy(hotpath_factory, [origin_backend])
        out = subprocess.run([node, "run.mjs", "http://127.0.0.1:%d" % d.http_port],
                             cwd=SUITE_DIR, capture_output=True, timeout=120)
        summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
    finally:
        origin.terminate()
        origin.wait(10)
    print("http-cache-tests: %d of %d required passed" % (summary["required_passed"],
                                                          summary["required_total"]))
    assert summary["required_passed"] >= floor, summary["failed_required"]
