"""
Kernel observation (agent/observe/observe.c + bpf/observe.bpf.c) against
real servers on this kernel: a Python HTTP service with a 1 ms and a 20 ms
endpoint, a real PostgreSQL 15 cluster (initdb'd here, pg_stat_statements
preloaded) driven over the simple and the extended protocol, and a real
redis-server. Everything is read from the running daemon's REST routes
(/api/v2/performance/services, /metrics, /queries) and /metrics.

What is compared:
- request counts: exactly what the clients sent (and what
  pg_stat_statements counted);
- p50 of each HTTP endpoint within 10% of the time the server measured
  around its own recv/send (inbound) and the client around its send/recv
  (outbound); these are "exact" quantiles, from per-request events kept
  under budget (if other traffic on the host spent the budget, the log2
  histogram estimate must land within its factor-2 bucket instead);
- PostgreSQL means within 10% of pg_stat_statements' mean_exec_time.
"""
import ctypes
import json
import mmap
import os
import platform
import pwd
import select
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
import http.client
import http.server

import pytest

from conftest import Daemon, die_with_us

PGBIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_listener():
    """A listening socket on a free loopback port, served by the test."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s, s.getsockname()[1]


def serve_http(lsock, respond):
    """Accept on lsock until it is closed; on each connection, read
    request heads (a request line and headers, no body) and call
    respond(conn, request_line) for each, in order."""
    def serve(conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                line, _, buf = buf.partition(b"\r\n\r\n")
                respond(conn, line.split(b"\r\n", 1)[0])

    def accept():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def wait_listening(port, seconds=5.0):
    """Until a server started in the background accepts on port."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def need_root():
    if os.geteuid() != 0:
        pytest.skip("kernel observation needs root")


# Where sends and reads are seen ([bpf] observe_send_hook and
# observe_recv_hook, set alike): auto takes tcp:tcp_sendmsg_locked and
# skb:skb_copy_datagram_iovec on this kernel; socket is what older kernels
# get, sock:sock_send_length and sock:sock_recv_length. The tests that send
# and read in every way run on both.
SEND_HOOKS = ["auto", "socket"]


class Observer:
    """A hotpathd with `ini_text` added, read through its REST API."""

    def __init__(self, ini_text, workdir):
        self.d = Daemon(workdir, ini_extra=ini_text)
        if "observe: watching" not in self.d.log_text():
            self.d.stop()
            pytest.fail("observation did not start:\n" + self.d.log_text())
        self.pin = self.d.pin_path

    def _get(self, path):
        st, _, body = self.d.api("GET", path, token_name="reader")
        assert st == 200, (path, st, body[:500])
        return json.loads(body)

    def dump(self, range_ms=0):
        q = "?time_range=%dms" % range_ms if range_ms else ""
        return {
            "services": self._get("/api/v2/performance/services"),
            "metrics": self._get("/api/v2/performance/metrics" + q),
            "queries": self._get("/api/v2/performance/queries"),
            "prometheus": self.d.metrics(),
        }

    def bpftool(self, name):
        r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", os.path.join(self.pin, name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def kernel_endpoints(self):
        """The kernel's endpoint entries, from both of its tables (the
        direct-mapped obs_ep_table and the obs_endpoints hash map), as
        {"key": obs_ep_key, "value": obs_ep_stats}: what docs/inspect.md
        shows how to read with bpftool."""
        eps = [e["formatted"] for e in self.bpftool("obs_endpoints")]
        for e in self.bpftool("obs_ep_table"):
            v = e["formatted"]["value"]
            if v["tag"] and v["st"]["first_ns"]:
                eps.append({"key": v["key"], "value": v["st"]})
        return eps

    def close(self):
        assert self.d.stop() == 0, self.d.log_text()[-3000:]
        for m in ("obs_endpoints", "obs_ep_table"):
            assert not os.path.exists(os.path.join(self.pin, m)), "pin left behind"


def metrics_of(dump, name, direction):
    for s in dump["metrics"]["services"]:
        if s["name"] == name and s["direction"] == direction:
            return s
    return None


def endpoint(svc, name):
    for e in svc["endpoints"]:
        if e["endpoint"] == name:
            return e
    raise AssertionError("no endpoint %r in %r" % (name, [e["endpoint"] for e in svc["endpoints"]]))


# ---- HTTP -------------------------------------------------------------------

HTTP_SERVER = r"""
import http.server, io, json, sys, time
timings = {"fast": [], "slow": []}

class Raw(io.RawIOBase):
    # the socket under rfile/wfile, noting when each recv/send returned:
    # the server's own measure of a request, around the same syscalls
    def __init__(self, h):
        self.h = h
    def readable(self):
        return True
    def writable(self):
        return True
    def readinto(self, b):
        n = self.h.connection.recv_into(b)
        self.h.t_recv = time.perf_counter()
        return n
    def write(self, b):
        n = self.h.connection.send(b)
        self.h.t_sent = time.perf_counter()
        return n

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def setup(self):
        super().setup()
        # head and body leave in one write: the kernel's time ends at the
        # response's first write
        self.rfile = io.BufferedReader(Raw(self))
        self.wfile = io.BufferedWriter(Raw(self))
    def do_GET(self):
        if self.path == "/timings":
            body = json.dumps(timings).encode()
        else:
            key, delay = ("slow", 0.020) if self.path.startswith("/slow/") else ("fast", 0.001)
            time.sleep(delay)
            body = b"x" * 64
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.path != "/timings":
            timings[key].append(self.t_sent - self.t_recv)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("up", flush=True)
srv.serve_forever()
"""


@pytest.fixture
def http_service():
    """The timed HTTP service in its own process (no GIL shared with the
    client, so its own handler timings are a fair reference)."""
    port = free_port()
    p = subprocess.Popen(["/usr/bin/python3", "-c", HTTP_SERVER, str(port)],
                         stdout=subprocess.PIPE, text=True, preexec_fn=die_with_us)
    assert p.stdout.readline().strip() == "up"

    def timings():
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/timings")
        t = json.loads(c.getresponse().read())
        c.close()
        return t
    yield port, timings
    p.terminate()
    p.wait()


@pytest.mark.parametrize("send_hook", SEND_HOOKS)
def test_http_latency_and_counts(http_service, tmp_path, send_hook):
    need_root()
    port, server_timings = http_service
    # observe_local_callers: this local client's side is timed too (by
    # default only the service's own socket times a local caller)
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n"
                   "[bpf]\nobserve_local_callers = yes\nobserve_send_hook = %s\n"
                   "observe_recv_hook = %s\n" % (port, send_hook, send_hook), str(tmp_path))
    try:
        # a keep-alive client on a plain socket, timing the same syscalls the
        # kernel sees: from handing the request over to the first response bytes
        client_t = {"fast": [], "slow": []}
        sock = socket.create_connection(("127.0.0.1", port))
        plan = [("fast", "/fast/%d" % i) for i in range(300)] + \
               [("slow", "/slow/%08x-%04x-4abc-8def-%012x" % (i, i, i)) for i in range(60)]
        for key, path in plan:
            req = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode()
            t0 = time.perf_counter()
            sock.sendall(req)
            got = sock.recv(65536)
            client_t[key].append(time.perf_counter() - t0)
            while b"\r\n\r\n" not in got:
                got += sock.recv(65536)
            head, _, body = got.partition(b"\r\n\r\n")
            clen = int([h.split(b":")[1] for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")][0])
            while len(body) < clen:
                body += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200")
        sock.close()
        time.sleep(0.3)
        d = obs.dump()
        server_t = server_timings()
        inb = metrics_of(d, "web", "inbound")
        outb = metrics_of(d, "web", "outbound")
        assert inb and outb, d["metrics"]
        print()
        for svc, ref, side in ((inb, server_t, "server"), (outb, client_t, "client")):
            for key, name in (("fast", "GET /fast/{id}"), ("slow", "GET /slow/{id}")):
                e = endpoint(svc, name)
                want = statistics.median(ref[key]) * 1000
                err = abs(e["p50_ms"] - want) / want
                print("  %-8s %-15s n=%d (sent %d) p50 %.3f ms, %s measured %.3f ms: %+.1f%% [%s]"
                      % (svc["direction"], name, e["requests"], len(client_t[key]), e["p50_ms"],
                         side, want, 100 * (e["p50_ms"] - want) / want, e["quantiles"]))
                assert e["requests"] == len(client_t[key])
                assert e["errors"] == 0
                if e["quantiles"] == "exact":
                    assert err <= 0.10
                else:
                    # other traffic on the host spent the event budget: the
                    # estimate comes from log2 buckets, right within a bucket
                    assert want / 2 <= e["p50_ms"] <= want * 2
        # the kernel's histograms are what bpftool shows
        vals = [el["value"] for el in obs.kernel_endpoints()]
        total = sum(v["count"] for v in vals)
        assert total >= 2 * len(plan)
        assert all(len(v["hist_us"]) == 32 for v in vals)
        # Prometheus histogram lines for the endpoint
        assert 'endpoint="GET /fast/{id}"' in d["prometheus"]
        assert "hotpath_observe_request_duration_seconds_count" in d["prometheus"]
        # discovery: the service shows up with the process that listens
        svcs = d["services"]["services"]
        web = [s for s in svcs if s["name"] == "web" and s["direction"] == "inbound"][0]
        assert web["observed_protocol"] == "http" and web["listening"]
    finally:
        obs.close()


def test_event_budget_counts_what_it_drops(http_service, tmp_path):
    """Past its per-CPU event budget a fast request's event is dropped and
    counted: in its CPU's bucket first, moved to obs_drops 64 at a time,
    each counted once whichever of the two holds it; the budget is
    refilled each second."""
    need_root()
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n"
                   "[bpf]\nobserve_events_per_sec = 4\n" % port, str(tmp_path))

    def run(n):
        c = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(n):
            c.request("GET", "/fast/%d" % i)
            assert c.getresponse().read() is not None
        c.close()

    try:
        n = 200
        t0 = time.monotonic()
        run(n)
        took = time.monotonic() - t0
        time.sleep(0.3)
        d = obs.dump()
        ep = endpoint(metrics_of(d, "web", "inbound"), "GET /fast/{id}")
        assert ep["requests"] == n, ep
        # 4 tokens a CPU a second, fast requests take them while more than
        # a quarter are left: 3 events a CPU a second at most
        sent_max = 3 * os.cpu_count() * (int(took) + 2)
        fast = d["metrics"]["dropped"]["events_over_budget_fast"]
        assert n - sent_max <= fast <= n, (fast, took)
        assert ep["quantiles"] == "histogram", ep
        # bpftool's obs_drops has them but for fewer than 64 a CPU
        kernel = sum(cpu["value"]["ev_fast_dropped"]
                     for cpu in obs.bpftool("obs_drops")[0]["formatted"]["values"])
        assert kernel % 64 == 0 and fast - 64 * os.cpu_count() < kernel <= fast, (kernel, fast)
        # a second later the buckets refill: a few more requests, a few more events
        time.sleep(1.1)
        run(4)
        time.sleep(0.3)
        again = obs.dump()["metrics"]["dropped"]["events_over_budget_fast"]
        assert fast <= again <= fast + 4, (fast, again)
    finally:
        obs.close()


def test_http_errors_counted(tmp_path):
    need_root()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            code = 503 if self.path.startswith("/bad") else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    obs = Observer("[service.api]\nport = %d\nprotocol = auto\n" % port, str(tmp_path))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(20):
            conn.request("GET", "/bad/%d" % i if i % 4 == 0 else "/good")
            conn.getresponse().read()
        conn.close()
        time.sleep(0.3)
        d = obs.dump()
        inb = metrics_of(d, "api", "inbound")
        assert inb["requests"] == 20
        assert inb["errors"] == 5
        assert endpoint(inb, "GET /bad/{id}")["error_rate"] == 1.0
    finally:
        obs.close()
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("send_hook", SEND_HOOKS)
def test_peeked_requests_counted_once(tmp_path, send_hook):
    """A server that looks at a request with MSG_PEEK before it reads it
    (protocol detection, as some proxies do) makes the kernel copy the
    same bytes twice; a request is still one request, timed once, and its
    response pairs with it (none unmatched). With reads seen in the socket
    buffer the second copy starts before what was seen (copied_seq); at
    sock_recv_length the peek's flag says so."""
    need_root()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    port = ls.getsockname()[1]

    def serve():
        c, _ = ls.accept()
        with c:
            while True:
                head = c.recv(8, socket.MSG_PEEK)
                if not head:
                    return
                assert head.startswith(b"GET "), head
                req = b""
                while b"\r\n\r\n" not in req:
                    req += c.recv(4096)
                time.sleep(0.002)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    threading.Thread(target=serve, daemon=True).start()
    obs = Observer("[service.peek]\nport = %d\nprotocol = http\n"
                   "[bpf]\nobserve_send_hook = %s\nobserve_recv_hook = %s\n"
                   % (port, send_hook, send_hook), str(tmp_path))
    try:
        c = socket.create_connection(("127.0.0.1", port))
        for i in range(30):
            c.sendall(b"GET /peek/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            got = b""
            while not got.endswith(b"ok"):
                got += c.recv(4096)
        c.close()
        time.sleep(0.3)
        d = obs.dump()
        inb = metrics_of(d, "peek", "inbound")
        ep = endpoint(inb, "GET /peek/{id}")
        assert ep["requests"] == 30, inb
        assert 2.0 <= ep["p50_ms"] <= 20.0, ep
        assert d["metrics"]["dropped"]["unmatched_responses"] == 0, d["metrics"]["dropped"]
    finally:
        obs.close()
        ls.close()


@pytest.mark.parametrize("send_hook", SEND_HOOKS)
def test_response_sends_of_every_shape(tmp_path, send_hook):
    """A response leaves by send, sendmsg or writev with several iovecs, in
    one send or in parts, larger than the kernel's copy loop takes in one
    round (tcp_sendmsg_locked fires per round, and again after waiting for
    room; see the next test), or from a non-blocking socket that takes it in several partial
    sends: each is one response, with its status read from the first
    iovec."""
    need_root()
    lsock, port = loopback_listener()

    def respond(conn, line):
        kind = line.split(b" ")[1].split(b"/")[1]
        size = {b"big": 300000, b"part": 4 << 20}.get(kind, 32)
        body = b"y" * size
        head = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (
            b"503 Busy" if kind == b"bad" else b"200 OK", size)
        if kind in (b"vec", b"bad"):
            conn.sendmsg([head, body[:10], body[10:]])
        elif kind == b"writev":
            os.writev(conn.fileno(), [head, body])
        elif kind == b"split":
            conn.sendall(head)
            conn.sendall(body)
        elif kind == b"part":
            # a small send buffer: the 4 MiB go out in many sends
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            conn.setblocking(False)
            out, sends = head + body, 0
            while out:
                try:
                    out = out[conn.send(out):]
                    sends += 1
                except BlockingIOError:
                    select.select([], [conn], [], 5)
            conn.setblocking(True)
            partial_sends.append(sends)
        else:
            conn.sendall(head + body)

    partial_sends = []
    serve_http(lsock, respond)
    obs = Observer("[service.shapes]\nport = %d\nprotocol = http\n"
                   "[bpf]\nobserve_send_hook = %s\nobserve_recv_hook = %s\n"
                   % (port, send_hook, send_hook), str(tmp_path))
    try:
        btf = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                             capture_output=True, text=True).stdout
        in_tcp = send_hook == "auto" and "'btf_trace_tcp_sendmsg_locked'" in btf
        assert ("sends at tcp:tcp_sendmsg_locked" if in_tcp else "sends at sock:sock_send_length") \
            in obs.d.log_text()
        assert ("reads at skb:skb_copy_datagram_iovec" if send_hook == "auto" else
                "reads at sock:sock_recv_length") in obs.d.log_text(), obs.d.log_text()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

        pending = [b""]

        def read_response():
            got = pending[0]
            while b"\r\n\r\n" not in got:
                got += sock.recv(65536)
            head, _, body = got.partition(b"\r\n\r\n")
            clen = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            while len(body) < clen:
                body += sock.recv(1 << 20)
            pending[0] = body[clen:]
            return head

        kinds = ["vec", "bad", "writev", "split", "big", "part", "plain"]
        for i in range(8):
            for k in kinds:
                sock.sendall(b"GET /%s/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (k.encode(), i))
                assert read_response().startswith(b"HTTP/1.1 ")
        sock.close()
        assert max(partial_sends) > 1, "the non-blocking response never went out in parts"
        time.sleep(0.3)
        inb = metrics_of(obs.dump(), "shapes", "inbound")
        got = {e["endpoint"]: (e["requests"], e["errors"]) for e in inb["endpoints"]}
        assert got == {"GET /%s/{id}" % k: (8, 8 if k == "bad" else 0) for k in kinds}
    finally:
        obs.close()
        lsock.close()


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%(port)d;
        root %(d)s/www;
        location /fail { return 503; }
    }
}
"""


@pytest.mark.parametrize("send_hook", SEND_HOOKS)
def test_nginx_counts_and_statuses(tmp_path, send_hook):
    """A real nginx, as packaged, serving static files the way it does by
    default (the response head with writev, the body with sendfile, which
    the kernel sends as pages: not looked at), a 404 and a 503: each
    endpoint gets exactly the requests sent, and only the 5xx count as
    errors."""
    need_root()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is missing: make deps installs it")
    d = tmp_path / "nginx"
    (d / "www").mkdir(parents=True)
    (d / "www" / "index.html").write_bytes(b"x" * 1024)
    (d / "www" / "big.bin").write_bytes(os.urandom(300000))
    port = free_port()
    (d / "nginx.conf").write_text(NGINX_CONF % {"d": d, "port": port})
    srv = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                           preexec_fn=die_with_us)
    try:
        wait_listening(port)
        obs = Observer("[service.nginx]\nport = %d\nprotocol = http\n"
                       "[bpf]\nobserve_send_hook = %s\nobserve_recv_hook = %s\n"
                       % (port, send_hook, send_hook), str(tmp_path))
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            plan = [("/index.html", 200)] * 60 + [("/big.bin", 200)] * 10 + \
                   [("/missing/%d" % i, 404) for i in range(15)] + \
                   [("/fail/%d" % i, 503) for i in range(5)]
            for path, status in plan:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                assert r.status == status, (path, r.status)
            conn.close()
            time.sleep(0.3)
            inb = metrics_of(obs.dump(), "nginx", "inbound")
            got = {e["endpoint"]: (e["requests"], e["errors"]) for e in inb["endpoints"]}
            assert got == {"GET /index.html": (60, 0), "GET /big.bin": (10, 0),
                           "GET /missing/{id}": (15, 0), "GET /fail/{id}": (5, 5)}
        finally:
            obs.close()
    finally:
        srv.terminate()
        srv.wait(10)


@pytest.mark.parametrize("send_hook", SEND_HOOKS)
def test_reply_sent_in_rounds_is_one_response(tmp_path, send_hook):
    """A RESP server has read two commands (two reads: two requests
    outstanding), GET then EXISTS, and answers the GET with a 16 MB bulk
    string of '+' bytes in one send. The kernel copies it in several
    rounds of tcp_sendmsg_locked's loop, each starting with a '+' that
    reads as a reply type: only the send's first round may count, or
    EXISTS would be matched with the middle of GET's reply, microseconds
    after the first round, instead of its own, which leaves after the
    16 MB, which the client reads 30 ms late (the server measures how
    long after it read EXISTS)."""
    need_root()
    lsock, port = loopback_listener()
    read_one = threading.Event()
    big = b"+" * (16 << 20)
    server_t = []

    def serve():
        c, _ = lsock.accept()
        with c:
            for _ in range(5):
                assert c.recv(4096).startswith(b"*2\r\n$3\r\nGET")
                read_one.set()
                assert c.recv(4096).startswith(b"*2\r\n$6\r\nEXISTS")
                t0 = time.perf_counter()
                c.sendall(b"$%d\r\n%s\r\n" % (len(big), big))
                server_t.append(time.perf_counter() - t0)
                c.sendall(b":1\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    obs = Observer("[service.kv]\nport = %d\nprotocol = resp\n"
                   "[bpf]\nobserve_send_hook = %s\nobserve_recv_hook = %s\n"
                   % (port, send_hook, send_hook), str(tmp_path))
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        want = b"$%d\r\n%s\r\n:1\r\n" % (len(big), big)
        for _ in range(5):
            read_one.clear()
            sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
            assert read_one.wait(5)
            time.sleep(0.02)
            sock.sendall(b"*2\r\n$6\r\nEXISTS\r\n$1\r\nb\r\n")
            time.sleep(0.03)        # the 16 MB wait for room meanwhile
            got = bytearray()
            while len(got) < len(want):
                got += sock.recv(1 << 20)
            assert got == want
        sock.close()
        t.join(5)
        time.sleep(0.3)
        inb = metrics_of(obs.dump(), "kv", "inbound")
        get, exists = endpoint(inb, "GET"), endpoint(inb, "EXISTS")
        print("\n  EXISTS mean %.3f ms, the server's 16 MB sends took %s ms"
              % (exists["mean_ms"], " ".join("%.3f" % (x * 1000) for x in server_t)))
        assert get["requests"] == 5 and exists["requests"] == 5
        # the mean comes from the kernel's sum and count, exact whatever
        # the event budget
        assert exists["mean_ms"] >= 0.9 * statistics.mean(server_t) * 1000
    finally:
        obs.close()
        lsock.close()


# ---- the kernel's tables: endpoint slots, connection slots --------------------------

M64 = (1 << 64) - 1


def resp_cmd_hash(name):
    """observe.bpf.c's endpoint hash of a RESP command (FNV-1a, upper case)."""
    h = 0xcbf29ce484222325
    for c in name.upper():
        h = ((h ^ c) * 0x100000001b3) & M64
    return h


def ep_table_slot(service_id, ep_hash):
    """obs_ep_slot_of(): an endpoint's slot in obs_ep_table (4096)."""
    tag = (ep_hash ^ ((service_id * 0x9E3779B97F4A7C15) & M64)) | 1
    return ((tag * 0xC2B2AE3D27D4EB4F) & M64) >> 52


def resp_server(lsock, stop):
    """Answers +OK to every read, on every connection, until stop is set."""
    def conn(c):
        with c:
            while True:
                try:
                    if not c.recv(4096):
                        return
                    c.sendall(b"+OK\r\n")
                except OSError:
                    return

    def accept():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = lsock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=conn, args=(c,), daemon=True).start()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    return t


def test_endpoints_sharing_a_table_slot(tmp_path):
    """Two endpoints whose slot in obs_ep_table is the same: the first
    takes it, the second is kept in the obs_endpoints hash map, and both
    count every request (service id 0: the first configured service)."""
    need_root()
    seen, pair = {}, None
    for i in range(100000):
        name = b"X%05d" % i
        slot = ep_table_slot(0, resp_cmd_hash(name))
        if slot in seen:
            pair = (seen[slot], name)
            break
        seen[slot] = name
    lsock, port = loopback_listener()
    stop = threading.Event()
    srv = resp_server(lsock, stop)
    obs = Observer("[service.kv]\nport = %d\nprotocol = resp\n" % port, str(tmp_path))
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        for i in range(40):
            name = pair[i % 2]
            sock.sendall(b"*1\r\n$%d\r\n%s\r\n" % (len(name), name))
            assert sock.recv(100) == b"+OK\r\n"
        sock.close()
        time.sleep(0.3)
        inb = metrics_of(obs.dump(), "kv", "inbound")
        for name in pair:
            assert endpoint(inb, name.decode())["requests"] == 20, inb
        hashed = [e["formatted"]["key"]["ep_hash"] for e in obs.bpftool("obs_endpoints")]
        table = [e["formatted"]["value"]["key"]["ep_hash"] for e in obs.bpftool("obs_ep_table")
                 if e["formatted"]["value"]["tag"]]
        want = sorted(resp_cmd_hash(n) for n in pair)
        assert sorted([h for h in hashed + table if h in want]) == want
        assert len([h for h in table if h in want]) == 1
    finally:
        obs.close()
        stop.set()
        srv.join(5)
        lsock.close()


def slots_in_use(obs):
    """Connection slots owned by a socket now, in this agent's obs_slots
    (not pinned: found among the maps its fds hold, whatever other agents
    run on the host)."""
    for i in {m["map_id"] for m in obs.d.bpf_fds("map")}:
        r = subprocess.run(["bpftool", "-j", "map", "show", "id", i], capture_output=True, text=True)
        if r.returncode == 0 and json.loads(r.stdout).get("name") == "obs_slots":
            r = subprocess.run(["bpftool", "-j", "map", "dump", "id", i],
                               capture_output=True, text=True, check=True)
            return sum(1 for e in json.loads(r.stdout) if e["formatted"]["value"]["cookie"])
    raise AssertionError("the agent holds no obs_slots map")


def test_reply_heads_of_one_and_two_bytes(tmp_path):
    """Reply heads are read as strings (the last byte given up for the
    NUL) unless one byte long: a server that writes a reply's type byte
    alone, or a two-byte reply, is still seen."""
    need_root()
    lsock, port = loopback_listener()

    def serve():
        c, _ = lsock.accept()
        with c:
            for i in range(20):
                assert c.recv(100).startswith(b"*1\r\n")
                if i % 2:
                    c.sendall(b":")            # the type byte alone
                    time.sleep(0.002)
                    c.sendall(b"1\r\n")
                else:
                    c.sendall(b"+\n")         # two bytes
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    obs = Observer("[service.kv]\nport = %d\nprotocol = resp\n" % port, str(tmp_path))
    try:
        s = socket.create_connection(("127.0.0.1", port))
        for i in range(20):
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            want = b":1\r\n" if i % 2 else b"+\n"
            got = b""
            while len(got) < len(want):
                got += s.recv(100)
        s.close()
        t.join(5)
        time.sleep(0.3)
        inb = metrics_of(obs.dump(), "kv", "inbound")
        assert endpoint(inb, "PING")["requests"] == 20, inb
    finally:
        obs.close()
        lsock.close()


@pytest.mark.parametrize("slots", [64, 1, 0, 16384])
def test_many_connections_and_reconnects_counted(tmp_path, slots):
    """Connection state is in a table of [bpf] observe_conn_slots slots
    picked from the socket's cookie; a socket whose slot another live one
    holds keeps its state in socket storage (with 0, every socket does),
    and a closed one gives its slot back. 600 connections at once (with 64
    slots, most of them in socket storage), then 400 opened and closed one
    after another: every request counted, and no slot left taken."""
    need_root()
    lsock, port = loopback_listener()
    lsock.listen(1024)
    stop = threading.Event()
    srv = resp_server(lsock, stop)
    obs = Observer("[service.kv]\nport = %d\nprotocol = resp\n"
                   "[bpf]\nobserve_conn_slots = %d\n" % (port, slots), str(tmp_path))
    try:
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(600)]
        for rnd in range(3):
            for c in conns:
                c.sendall(b"*1\r\n$4\r\nPING\r\n")
            for c in conns:
                assert c.recv(100) == b"+OK\r\n"
        # the service's 600 sockets take as many slots as there are
        # (the clients' sockets none: local callers of a service timed by
        # its own socket). With 16384, at least half: cookies come in
        # per-CPU batches of 4096, and two CPUs' batches can share their
        # low bits, a slot each pair (the rest in socket storage).
        in_use = slots_in_use(obs)
        if slots == 16384:
            assert 300 <= in_use <= 600, in_use
        else:
            assert in_use == min(600, max(slots, 1) if slots else 0), in_use
        for c in conns:
            c.close()
        for _ in range(400):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"*1\r\n$4\r\nECHO\r\n")
                assert c.recv(100) == b"+OK\r\n"
        time.sleep(0.3)
        # closed sockets gave their slots back (a few may be connections of
        # other listeners on the host, discovered)
        assert slots_in_use(obs) <= 4
        inb = metrics_of(obs.dump(), "kv", "inbound")
        assert endpoint(inb, "PING")["requests"] == 1800, inb
        assert endpoint(inb, "ECHO")["requests"] == 400, inb
        assert endpoint(inb, "PING")["errors"] == 0
    finally:
        obs.close()
        stop.set()
        srv.join(5)
        lsock.close()


# ---- [service] pid and cgroup ------------------------------------------------------

def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.startswith("cgroup2 ") and pre.split()[3] == "/":
                return pre.split()[4]
    return None


def test_long_and_short_request_lines_one_route(http_service, tmp_path):
    """A request line that fits the kernel's stack head (HTTP_HEAD, 128
    bytes) is hashed there; a longer one goes through the scratch buffer.
    Both must give the same route hash: ids of 3 and of 150 digits count
    under one endpoint, each request once."""
    need_root()
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(20):
            conn.request("GET", "/fast/%d" % (100 + i))
            assert conn.getresponse().read()
            conn.request("GET", "/fast/%d" % (10 ** 149 + i))
            assert conn.getresponse().read()
        conn.close()
        time.sleep(0.3)
        inb = metrics_of(obs.dump(), "web", "inbound")
        assert endpoint(inb, "GET /fast/{id}")["requests"] == 40, inb
    finally:
        obs.close()


def test_udp_on_a_watched_port_not_counted(http_service, tmp_path):
    """The port test is by number, and UDP has the same numbers: reads in
    the socket buffer fire for UDP sockets too. HTTP in datagrams to the
    service's port number, sent before the first TCP request (while
    plain_tcp() has learnt no sk_prot) and after, counts nothing, and the
    TCP requests in between count exactly. (A build whose plain_tcp()
    learnt from any socket passed too: a UDP socket's fields where TCP's
    sequence numbers sit stopped it further on. This guards the outcome,
    not that one test.)"""
    need_root()
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
        u.settimeout(5)

        def datagrams(n):
            for i in range(n):
                c.sendto(b"GET /udp/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i, ("127.0.0.1", port))
                data, peer = u.recvfrom(512)
                u.sendto(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", peer)
                assert c.recv(512).startswith(b"HTTP/1.1 200")
        datagrams(50)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(30):
            conn.request("GET", "/fast/%d" % i)
            assert conn.getresponse().read()
        conn.close()
        datagrams(50)
        time.sleep(1.2)
        inb = metrics_of(obs.dump(), "web", "inbound")
        assert endpoint(inb, "GET /fast/{id}")["requests"] == 30, inb
        assert [e["endpoint"] for e in inb["endpoints"]] == ["GET /fast/{id}"], inb
    finally:
        u.close()
        c.close()
        obs.close()


def test_socket_buffers_read_in_place(http_service, tmp_path):
    """Reads are seen in the socket buffer, whose bytes sit in page
    fragments; a response's head is read from the server's memory. The
    kernel side first reads both with calls and learns from those reads
    where the fragments' pages and the kernel's direct map are
    (observe.bpf.c, skb_read() and user_read()); once that is checked it
    reads them in place, which the services report and the log says once
    each. Routes, counts and statuses stay right after, for request lines
    read onto the stack (up to 128 bytes), into the scratch in place (up
    to 256) and through the copy (longer)."""
    need_root()
    if platform.machine() != "x86_64":
        pytest.skip("socket buffers are read in place on x86-64 only")
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    try:
        first = obs.dump()["services"]["socket_buffer_reads"]
        if first is None:
            pytest.skip("reads are seen at sock:sock_recv_length on this kernel (before 6.15)")
        assert first in ("learning", "in_place")
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(200):
            conn.request("GET", "/fast/%d" % i)
            assert conn.getresponse().read()
        deadline = time.monotonic() + 5
        while ("socket buffers are read in place" not in obs.d.log_text() or
               "user memory is read in place" not in obs.d.log_text()):
            assert time.monotonic() < deadline, obs.d.log_text()[-2000:]
            time.sleep(0.1)
        assert obs.dump()["services"]["socket_buffer_reads"] == "in_place"
        assert obs.dump()["services"]["user_memory_reads"] == "in_place"
        plan = {"GET /n/{id}": ["/n/%d" % i for i in range(20)],
                "GET /h/{id}/x": ["/h/%010x/x" % (0xdeadbeef00 + i) for i in range(20)],
                "GET /q/{id}": ["/q/%d" % (10 ** (40 + 10 * (i % 12)) + i) for i in range(24)]}
        for paths in plan.values():
            for path in paths:
                conn.request("GET", path)
                assert conn.getresponse().read()
        # reads that still go through the copy (their last word would run
        # into the next page) do not undo what was learnt
        for i in range(600):
            conn.request("GET", "/fast/%d" % (7 ** (i % 40)), headers={"X-Pad": "p" * (i % 97)})
            assert conn.getresponse().read()
        conn.close()
        time.sleep(1.2)
        d = obs.dump()
        inb = metrics_of(d, "web", "inbound")
        assert endpoint(inb, "GET /fast/{id}")["requests"] == 800, inb
        for name, paths in plan.items():
            assert endpoint(inb, name)["requests"] == len(paths), (name, inb)
        for name in ["GET /fast/{id}"] + list(plan):
            assert endpoint(inb, name)["errors"] == 0, (name, inb)
        still_in_place(obs, d, "skb")
        still_in_place(obs, d, "user")
    finally:
        obs.close()


def get_ok(conn, route, i):
    """GET route/i on conn, answered "ok"."""
    conn.request("GET", "%s/%d" % (route, i))
    assert conn.getresponse().read() == b"ok"


def closed_and_read(obs, conn):
    """Close conn, give the agent time to read the kernel's tables, and
    return its dump and the web service's inbound metrics."""
    conn.close()
    time.sleep(1.2)
    d = obs.dump()
    return d, metrics_of(d, "web", "inbound")


# What observe_until_in_place() waits for: the dump's field, the agent's
# log line once the reads are in place, and why a kernel may not do them.
IN_PLACE = {
    "user": ("user_memory_reads", "user memory is read in place",
             "this kernel's sends are not read through the page tables"),
    "skb": ("socket_buffer_reads", "socket buffers are read in place",
            "reads are seen at sock:sock_recv_length on this kernel (before 6.15)"),
}


def observe_until_in_place(port, tmp_path, route, reads="user"):
    """An Observer of the HTTP service on port and a connection to it,
    once the agent reads user memory (reads="user") or socket buffers
    (reads="skb") in place: GET route/0, route/1... (get_ok) until it
    logs so. Returns the observer, the connection and how many requests
    were sent; skips where this kernel does not read them in place."""
    field, logged, why_not = IN_PLACE[reads]
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    try:
        if obs.dump()["services"][field] is None:
            pytest.skip(why_not)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        sent = 0
        deadline = time.monotonic() + 10
        while logged not in obs.d.log_text():
            assert time.monotonic() < deadline, obs.d.log_text()[-2000:]
            get_ok(conn, route, sent)
            sent += 1
        return obs, conn, sent
    except BaseException:
        obs.close()
        raise


def still_in_place(obs, d, reads):
    """The agent still reads in place (dump d) and has said so once, not
    gone back to the call since (IN_PLACE[reads])."""
    field, logged, _ = IN_PLACE[reads]
    assert d["services"][field] == "in_place"
    # the first words of the log line either way: "... read in place"
    # or "... read through the kernel's copy"
    said = logged[:-len(" in place")]
    assert obs.d.log_text().count(said) == 1, obs.d.log_text()[-2000:]


def test_request_across_two_fragments_after_learning(tmp_path):
    """Once socket buffers are read in place (observe.bpf.c, skb_read()),
    a request whose first bytes sit in two page fragments of its buffer is
    read through the copy instead, and learning is not undone. A loopback
    sender fills a socket buffer from its task's 32 KiB page fragment, and
    a send that runs past the fragment's end goes on in a new one: one
    request in about every 220 of this test's 150-byte requests has its
    bytes in two fragments, most often inside its 100-byte request line.
    Every request is counted under its route."""
    need_root()
    if platform.machine() != "x86_64":
        pytest.skip("socket buffers are read in place on x86-64 only")
    lsock, port = loopback_listener()
    serve_http(lsock, lambda conn, line: conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    obs = None
    try:
        obs, conn, sent = observe_until_in_place(port, tmp_path, "/in", reads="skb")
        # ~7 fragment ends crossed by 1 500 requests of ~150 bytes; the
        # chance that none falls in a request line is below 1 in 1 000
        long = "/across/" + "p" * 76
        for i in range(1500):
            get_ok(conn, long, i)
        d, inb = closed_and_read(obs, conn)
        assert endpoint(inb, "GET /in/{id}")["requests"] == sent, inb
        assert endpoint(inb, "GET %s/{id}" % long)["requests"] == 1500, inb
        still_in_place(obs, d, "skb")
    finally:
        if obs:
            obs.close()
        lsock.close()


def test_response_head_across_a_page_after_learning(tmp_path):
    """Once user memory is read in place (observe.bpf.c, user_read()), a
    response head whose bytes run into the next page of the server's
    memory is read with the call instead, and learning is not undone: a
    server that writes each response from an mmap'd buffer, first within
    a page, then with its status line across a page boundary, every
    fourth a 503, gets every request and error counted either way."""
    need_root()
    if platform.machine() != "x86_64":
        pytest.skip("user memory is read in place on x86-64 only")
    lsock, port = loopback_listener()
    mm = mmap.mmap(-1, 3 * mmap.PAGESIZE)
    place = {"at": 64}

    def respond(conn, line):
        n = int(line.split(b" ")[1].rsplit(b"/", 1)[1])
        resp = b"HTTP/1.1 %s\r\nContent-Length: 2\r\n\r\nok" % (
            b"503 Busy" if n % 4 == 0 else b"200 OK")
        at = place["at"]
        mm[at:at + len(resp)] = resp
        conn.sendall(memoryview(mm)[at:at + len(resp)])

    serve_http(lsock, respond)
    obs = None
    try:
        obs, conn, sent = observe_until_in_place(port, tmp_path, "/in")
        # "HTTP/1" in one page, ".1 503 ..." in the next
        place["at"] = mmap.PAGESIZE - 6
        for i in range(100):
            get_ok(conn, "/across", i)
        d, inb = closed_and_read(obs, conn)
        assert endpoint(inb, "GET /in/{id}")["requests"] == sent, inb
        assert endpoint(inb, "GET /in/{id}")["errors"] == (sent + 3) // 4, inb
        assert endpoint(inb, "GET /across/{id}")["requests"] == 100, inb
        assert endpoint(inb, "GET /across/{id}")["errors"] == 25, inb
        still_in_place(obs, d, "user")
    finally:
        if obs:
            obs.close()
        lsock.close()
        mm.close()


def remembered_pages():
    """The user pages whose walks obs_xlat holds, on any CPU (bpftool)."""
    r = subprocess.run(["bpftool", "-j", "map", "dump", "name", "obs_xlat"],
                       capture_output=True, text=True, check=True)
    pages = set()
    for entry in json.loads(r.stdout):
        for per_cpu in entry["formatted"]["values"]:
            pages.update(e["upage"] for e in per_cpu["value"]["e"] if e["ctx_id"])
    return pages


def test_response_page_replaced_read_anew(tmp_path):
    """User memory read in place remembers each page's translation while
    its address space's TLB generation stands (observe.bpf.c, obs_xlat):
    a server that sends every response from one page, then moves another
    page over it (mremap: the first one freed, its bytes still the old
    responses') and writes 503s there, has every status counted from the
    bytes it sent, before the change and after."""
    need_root()
    if platform.machine() != "x86_64":
        pytest.skip("user memory is read in place on x86-64 only")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mremap.restype = ctypes.c_void_p
    libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                            ctypes.c_void_p]
    prot_rw, map_private, map_anon = 3, 0x02, 0x20
    mremap_maymove, mremap_fixed = 1, 2
    page = mmap.PAGESIZE
    addr = libc.mmap(None, page, prot_rw, map_private | map_anon, -1, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    status = {"line": b"200 OK"}
    lock = threading.Lock()

    def respond(conn, line):
        with lock:
            resp = b"HTTP/1.1 %s\r\nContent-Length: 2\r\n\r\nok" % status["line"]
            buf = (ctypes.c_char * len(resp)).from_address(addr + 256)
            buf.raw = resp
            conn.sendall(buf)

    lsock, port = loopback_listener()
    serve_http(lsock, respond)
    obs = None
    try:
        obs, conn, _ = observe_until_in_place(port, tmp_path, "/learn")
        for i in range(50):             # in place, from the remembered page
            get_ok(conn, "/before", i)
        if "invlpgb" not in open("/proc/cpuinfo").read().split():
            assert addr in remembered_pages(), "the page's walk is not remembered"
        with lock:
            # another page moved over the first (mremap: the first page
            # freed with its 200s in it, not given back to this mapping)
            other = libc.mmap(None, page, prot_rw, map_private | map_anon, -1, 0)
            ctypes.memset(other, 0x20, page)
            got = libc.mremap(other, page, page, mremap_maymove | mremap_fixed, addr)
            assert got == addr, os.strerror(ctypes.get_errno())
            status["line"] = b"503 Busy"
        for i in range(50):
            get_ok(conn, "/after", i)
        d, inb = closed_and_read(obs, conn)
        assert endpoint(inb, "GET /before/{id}")["requests"] == 50, inb
        assert endpoint(inb, "GET /before/{id}")["errors"] == 0, inb
        assert endpoint(inb, "GET /after/{id}")["requests"] == 50, inb
        assert endpoint(inb, "GET /after/{id}")["errors"] == 50, inb
        assert d["services"]["user_memory_reads"] == "in_place"
    finally:
        if obs:
            obs.close()
        lsock.close()
        libc.munmap(addr, page)


def test_route_patterns_kernel_and_userspace_agree(http_service, tmp_path):
    """The kernel hashes a path with its id segments as "{id}" (numeric;
    hex of 8 or more with a digit, either case; uuid) and userspace names
    the endpoint from the same rules (httproute.c). Where they disagreed,
    one route would split into several endpoints or two routes would
    merge: each route here gets exactly its own requests. Each path is
    asked three times in a row (the kernel's per-connection memo of the
    last request line answers the repeats) and three times interleaved
    with the others (the memo never matches)."""
    need_root()
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    routes = {
        "GET /n/{id}": ["/n/7", "/n/12345", "/n/007?x=1"],
        "GET /h/{id}": ["/h/deadbeef01", "/h/0123abcdef", "/h/ABCDEF12"],
        "GET /u/{id}/x": ["/u/123e4567-e89b-12d3-a456-426614174000/x",
                          "/u/00000000-0000-0000-0000-00000000000a/x"],
        "GET /w/deadbeef": ["/w/deadbeef"],
        "GET /w/abc-def": ["/w/abc-def"],
        "GET /w/a1-b2": ["/w/a1-b2"],
        "GET /w/abc1234": ["/w/abc1234"],
        "GET /{id}/index.html": ["/42/index.html", "/43/index.html#top"],
    }
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        everything = [path for paths in routes.values() for path in paths]
        for path in everything:
            for _ in range(3):
                conn.request("GET", path)
                assert conn.getresponse().read()
        for _ in range(3):
            for path in everything:
                conn.request("GET", path)
                assert conn.getresponse().read()
        conn.close()
        time.sleep(0.3)
        inb = metrics_of(obs.dump(), "web", "inbound")
        names = [e["endpoint"] for e in inb["endpoints"]]
        for name, paths in routes.items():
            assert names.count(name) == 1, (name, names)
            assert endpoint(inb, name)["requests"] == 6 * len(paths), (name, inb)
    finally:
        obs.close()


def test_local_callers_timed_once(http_service, tmp_path):
    """By default a request from this host to a [service] port is timed
    once, by the service's socket (inbound): its caller's socket is
    classified once and then left alone. A caller of a [database] port on
    this host is still timed on its side (the pooler's vantage point)."""
    need_root()
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(25):
            conn.request("GET", "/fast/%d" % i)
            assert conn.getresponse().read()
        conn.close()
        time.sleep(0.3)
        d = obs.dump()
        inb = metrics_of(d, "web", "inbound")
        assert endpoint(inb, "GET /fast/{id}")["requests"] == 25
        outb = metrics_of(d, "web", "outbound")
        assert outb is None or outb["requests"] == 0, outb
        # the kernel's table holds the inbound entries only (service ids 0
        # and 1: [service.web] inbound and outbound, config services first)
        kernel = [e for e in obs.kernel_endpoints() if e["key"]["service_id"] in (0, 1)]
        assert sum(v["value"]["count"] for v in kernel) == 25, kernel
        assert all(v["key"]["service_id"] == 0 and v["value"]["dir"] == 1 for v in kernel), kernel
    finally:
        obs.close()


def test_requests_in_flight_survive_watch_list_changes(http_service, tmp_path):
    """Listeners come and go on a host, and each change the agent finds
    (every few seconds) is a new watch list for the kernel. A request in
    flight on a connection whose own classification did not change must
    still be paired with its response: none may be lost (this lost one
    request per change, the one being served, when the state was reset)."""
    need_root()
    port, _ = http_service
    obs = Observer("[service.web]\nport = %d\nprotocol = http\n" % port, str(tmp_path))
    stop = threading.Event()
    changes = []

    def churn():
        # a listener that appears and goes away, so discovery sees a change
        # on each of its passes
        while not stop.is_set():
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            ls.listen(1)
            changes.append(ls.getsockname()[1])
            stop.wait(1.5)
            ls.close()
            stop.wait(1.0)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        sent = 0
        end = time.time() + 11       # two or more discovery passes (5 s)
        while time.time() < end:
            conn.request("GET", "/slow/%d" % sent)
            assert conn.getresponse().read()
            sent += 1
        conn.close()
        stop.set()
        t.join()
        time.sleep(0.3)
        d = obs.dump()
        assert len(changes) >= 4, changes
        inb = metrics_of(d, "web", "inbound")
        assert endpoint(inb, "GET /slow/{id}")["requests"] == sent
    finally:
        stop.set()
        obs.close()


def test_discovery_can_be_turned_off(http_service, tmp_path):
    """Every listening socket of the host but the agent's own is watched by
    default; with [bpf] observe_discover = no only the declared services
    are, and they are still shown listening, with their process."""
    need_root()
    port, _ = http_service
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    other = ls.getsockname()[1]
    try:
        for discover, listed in (("no", False), ("yes", True)):
            os.makedirs(tmp_path / discover)
            obs = Observer("[service.web]\nport = %d\nprotocol = http\n"
                           "[bpf]\nobserve_discover = %s\n" % (port, discover),
                           str(tmp_path / discover))
            try:
                svcs = obs.dump()["services"]["services"]
                web = [s for s in svcs if s["name"] == "web" and s["direction"] == "inbound"]
                assert web and web[0]["listening"] and web[0]["pids"], web
                found = [s for s in svcs if s["port"] == other and s["direction"] == "inbound"]
                assert bool(found) == listed, (discover, svcs)
                if listed:
                    assert found[0]["source"] == "discovered"
                    # never the agent's own listeners (API, RESP front),
                    # which listen by now: a listener opened after the
                    # start is found by a rescan (every 5 s), theirs not
                    late = socket.socket()
                    late.bind(("127.0.0.1", 0))
                    late.listen(1)
                    late_port = late.getsockname()[1]
                    deadline = time.time() + 8
                    try:
                        while time.time() < deadline:
                            svcs = obs.dump()["services"]["services"]
                            if [s for s in svcs if s["port"] == late_port]:
                                break
                            time.sleep(0.25)
                    finally:
                        late.close()
                    assert [s for s in svcs if s["port"] == late_port], svcs
                    own = {obs.d.api_port, obs.d.resp_port}
                    assert not [s for s in svcs if s["port"] in own], svcs
            finally:
                obs.close()
    finally:
        ls.close()


def test_service_restricted_to_pid_and_cgroup(tmp_path):
    """Three HTTP servers; A is moved into a fresh cgroup. A service limited
    to A's pid and cgroup sees A's requests; one on B's port limited to A's
    pid, and one on C's port limited to A's cgroup, see none of theirs, while
    their callers (the outbound side) are still counted."""
    need_root()
    root = cgroup2_root()
    if not root:
        pytest.skip("no cgroup v2 hierarchy")
    cg = "hptest-%d-%s" % (os.getpid(), os.urandom(3).hex())
    os.mkdir(os.path.join(root, cg))
    procs, ports = [], []
    try:
        for _ in range(3):
            port = free_port()
            p = subprocess.Popen(["/usr/bin/python3", "-c", HTTP_SERVER, str(port)],
                                 stdout=subprocess.PIPE, text=True, preexec_fn=die_with_us)
            assert p.stdout.readline().strip() == "up"
            procs.append(p)
            ports.append(port)
        with open(os.path.join(root, cg, "cgroup.procs"), "w") as f:
            f.write(str(procs[0].pid))
        ini = ("[service.a]\nport = %d\nprotocol = http\npid = %d\ncgroup = %s\n"
               "[service.b]\nport = %d\nprotocol = http\npid = %d\n"
               "[service.c]\nport = %d\nprotocol = http\ncgroup = /%s\n"
               % (ports[0], procs[0].pid, os.path.join(root, cg), ports[1], procs[0].pid,
                  ports[2], cg))
        obs = Observer(ini, str(tmp_path))
        try:
            for port in ports:
                conn = http.client.HTTPConnection("127.0.0.1", port)
                for i in range(10):
                    conn.request("GET", "/fast/%d" % i)
                    conn.getresponse().read()
                conn.close()
            time.sleep(0.3)
            d = obs.dump()
            got = {(s["name"], s["direction"]): s["requests"] for s in d["metrics"]["services"]}
            assert got.get(("a", "inbound")) == 10, got
            assert got.get(("b", "inbound"), 0) == 0, got
            assert got.get(("c", "inbound"), 0) == 0, got
            for name in "abc":
                assert got.get((name, "outbound")) == 10, got
            svcs = {(s["name"], s["direction"]): s for s in d["services"]["services"]}
            assert svcs[("a", "inbound")]["only_pid"] == procs[0].pid
            assert svcs[("c", "inbound")]["only_cgroup"] == "/" + cg
        finally:
            obs.close()
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        os.rmdir(os.path.join(root, cg))


def test_service_with_missing_cgroup_is_not_watched(tmp_path):
    need_root()
    port = free_port()
    obs = Observer("[service.gone]\nport = %d\nprotocol = http\ncgroup = /no-such-cgroup-here\n"
                   % port, str(tmp_path))
    try:
        assert "cgroup /no-such-cgroup-here" in obs.d.log_text()
        svcs = {(s["name"], s["direction"]): s for s in obs.dump()["services"]["services"]}
        assert not svcs[("gone", "inbound")]["watched"]
        assert svcs[("gone", "outbound")]["watched"]
    finally:
        obs.close()


# ---- PostgreSQL ----------------------------------------------------------------

class PgClient:
    """The v3 wire protocol by hand: exactly one write per query, so what
    was sent is known byte for byte (trust auth only)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        params = b"user\0postgres\0database\0postgres\0\0"
        self.s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
        self.read_until_ready()

    def _recv(self, n):
        # read in large chunks, as libpq does (the kernel pairs a response
        # by the ReadyForQuery that ends a read)
        while len(self.buf) < n:
            c = self.s.recv(65536)
            if not c:
                raise EOFError
            self.buf += c
        b, self.buf = self.buf[:n], self.buf[n:]
        return b

    def read_until_ready(self):
        msgs = []
        while True:
            t = self._recv(1)
            ln = struct.unpack("!I", self._recv(4))[0]
            body = self._recv(ln - 4)
            msgs.append((t, body))
            if t == b"Z":
                return msgs

    def simple(self, sql):
        q = (sql if isinstance(sql, bytes) else sql.encode()) + b"\0"
        t0 = time.perf_counter()
        self.s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
        m = self.read_until_ready()
        self.last = time.perf_counter() - t0
        return m

    def extended(self, sql, params=()):
        q = b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0)
        msg = b"P" + struct.pack("!I", 4 + len(q)) + q
        b = b"\0\0" + struct.pack("!H", 0) + struct.pack("!H", len(params))
        for p in params:
            pb = p.encode()
            b += struct.pack("!i", len(pb)) + pb
        b += struct.pack("!H", 0)
        msg += b"B" + struct.pack("!I", 4 + len(b)) + b
        e = b"\0" + struct.pack("!I", 0)
        msg += b"E" + struct.pack("!I", 4 + len(e)) + e
        msg += b"S" + struct.pack("!I", 4)
        t0 = time.perf_counter()
        self.s.sendall(msg)
        m = self.read_until_ready()
        self.last = time.perf_counter() - t0
        return m

    def close(self):
        self.s.sendall(b"X" + struct.pack("!I", 4))
        self.s.close()


@pytest.fixture(scope="module")
def postgres():
    if os.geteuid() != 0 or not os.path.exists(os.path.join(PGBIN, "initdb")):
        pytest.skip("needs root and postgresql-15")
    pw = pwd.getpwnam("postgres")
    d = tempfile.mkdtemp(prefix="hp-pg-")
    os.chown(d, pw.pw_uid, pw.pw_gid)
    data = os.path.join(d, "data")
    port = free_port()

    def as_pg(*cmd):
        return subprocess.run(["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                               "--init-groups", "--"] + list(cmd), capture_output=True, text=True,
                              cwd=d)

    r = as_pg(os.path.join(PGBIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-N")
    assert r.returncode == 0, r.stderr
    opts = ("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s "
            "-c shared_preload_libraries=pg_stat_statements -c fsync=off" % (port, d))
    r = as_pg(os.path.join(PGBIN, "pg_ctl"), "-D", data, "-o", opts, "-l",
              os.path.join(d, "log"), "-w", "start")
    assert r.returncode == 0, r.stderr + open(os.path.join(d, "log")).read()
    c = PgClient(port)
    c.simple("CREATE EXTENSION pg_stat_statements")
    c.close()
    yield port
    as_pg(os.path.join(PGBIN, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
    shutil.rmtree(d, ignore_errors=True)


def pgss(port):
    c = PgClient(port)
    msgs = c.simple("SELECT query, calls, mean_exec_time FROM pg_stat_statements")
    c.close()
    rows = {}
    for t, body in msgs:
        if t != b"D":
            continue
        n = struct.unpack("!H", body[:2])[0]
        at, cols = 2, []
        for _ in range(n):
            ln = struct.unpack("!i", body[at:at + 4])[0]
            at += 4
            cols.append(body[at:at + ln].decode())
            at += ln
        # the literal and the $1 form have different queryids, same text
        calls, mean = rows.get(cols[0], (0, 0.0))
        c2, m2 = int(cols[1]), float(cols[2])
        rows[cols[0]] = (calls + c2, (calls * mean + c2 * m2) / (calls + c2))
    return rows


def query_of(d, side, pred):
    found = [q for q in d["queries"]["queries"] if q["side"] == side and pred(q["query"])]
    assert len(found) == 1, "%s side, one query wanted among:\n%s" % (
        side, "\n".join("%6d  %s" % (q["calls"], q["query"]) for q in d["queries"]["queries"]
                        if q["side"] == side))
    return found[0]


@pytest.mark.parametrize("send_hook", SEND_HOOKS)
def test_postgres_queries_both_sides(postgres, tmp_path, send_hook):
    port = postgres
    c0 = PgClient(port)
    c0.simple("SELECT pg_stat_statements_reset()")
    c0.close()
    obs = Observer("[service.pg]\nport = %d\nprotocol = postgres\n"
                   "[bpf]\nobserve_local_callers = yes\nobserve_send_hook = %s\n"
                   "observe_recv_hook = %s\n" % (port, send_hook, send_hook), str(tmp_path))
    try:
        c = PgClient(port)
        N = 40
        client_ms = []
        for _ in range(N):
            c.simple("SELECT pg_sleep(0.01)")
            client_ms.append(c.last * 1000)
        for i in range(N):
            c.extended("SELECT pg_sleep($1)", ["0.01"])
            client_ms.append(c.last * 1000)
        for i in range(25):
            m = c.simple("SELECT * FROM generate_series(1, %d)" % (i % 5 + 1))
            assert m[-2][0] == b"C"
        # Replies longer than what the kernel reads in one go (TAIL, 128
        # bytes): their head and their tail are read apart.
        for i in range(5):
            m = c.simple("SELECT * FROM generate_series(1, 40)")
            assert len(m) == 43 and m[-2][0] == b"C"
        for i in range(15):
            c.extended("SELECT relname FROM pg_class WHERE oid = $1", [str(1259)])
        c.simple("SELECT 1/0")
        m = c.simple("SELECT * FROM no_such_table_" + "x" * 40)
        assert m[0][0] == b"E" and sum(5 + len(b) for _, b in m) > 128, m
        # pgbench -S style: a new literal every query. The kernel groups them
        # under one endpoint (its hash masks literals), so its table stays
        # small; the agent's libpg_query fingerprint does the naming.
        for i in range(60):
            c.simple("SELECT relname FROM pg_class WHERE oid = %d AND relname <> 'x%d'" % (1000 + i, i))
        c.close()
        time.sleep(0.3)
        d = obs.dump()
        stats = pgss(port)
        # service ids 0 and 1: [service.pg] inbound and outbound (config
        # services come first); seven query shapes a side, 146 texts sent
        kernel_eps = [e for e in obs.kernel_endpoints() if e["key"]["service_id"] in (0, 1)]
        assert len(kernel_eps) <= 16, [e["key"] for e in kernel_eps]
        print()
        for side in ("server", "client"):
            sl = query_of(d, side, lambda q: q == "SELECT pg_sleep($1)")
            # simple (literal 0.01) and extended ($1) texts fingerprint alike
            assert sl["calls"] == 2 * N, sl
            gs = query_of(d, side, lambda q: "generate_series" in q)
            assert gs["calls"] == 30
            assert gs["rows"] == sum(i % 5 + 1 for i in range(25)) + 5 * 40
            missing = query_of(d, side, lambda q: "no_such_table" in q)
            assert missing["errors"] == 1 and missing["calls"] == 1, missing
            rel = query_of(d, side, lambda q: "pg_class" in q and "<>" not in q)
            assert rel["calls"] == 15
            err = query_of(d, side, lambda q: "/" in q)
            assert err["errors"] == 1 and err["calls"] == 1
            lit = query_of(d, side, lambda q: "relname <>" in q)
            assert lit["calls"] == 60, lit
            print("  %-6s pg_sleep: calls %d mean %.3f ms p50 %.3f [%s]; generate_series calls %d rows %d"
                  % (side, sl["calls"], sl["mean_ms"], sl["p50_ms"], sl["quantiles"], gs["calls"],
                     gs["rows"]))
        pg_sleep_rows = {q: v for q, v in stats.items() if "pg_sleep" in q}
        total_calls = sum(v[0] for v in pg_sleep_rows.values())
        assert total_calls == 2 * N, pg_sleep_rows
        pg_mean = sum(v[0] * v[1] for v in pg_sleep_rows.values()) / total_calls
        # server side against pg_stat_statements (executor time), client side
        # against what the client itself measured (adds the round trip)
        for side, ref, what in (("server", pg_mean, "pg_stat_statements"),
                                ("client", statistics.mean(client_ms), "client measured")):
            sl = query_of(d, side, lambda q: q == "SELECT pg_sleep($1)")
            print("  %-6s pg_sleep mean %.3f ms vs %s %.3f ms: %+.1f%%"
                  % (side, sl["mean_ms"], what, ref, 100 * (sl["mean_ms"] - ref) / ref))
            assert abs(sl["mean_ms"] - ref) / ref <= 0.10
        gs_pgss = sum(v[0] for q, v in stats.items() if "generate_series" in q)
        assert gs_pgss == 30
    finally:
        obs.close()


def test_postgres_long_and_odd_query_names(postgres, tmp_path):
    """A query's normalised text is shown whole up to 1 KiB (not cut at 255
    bytes, inside a character), cut with an ellipsis and flagged beyond
    that, and always valid UTF-8: a byte that is not becomes '?' rather
    than the entry losing its text (a JSON string must be UTF-8)."""
    port = postgres
    obs = Observer("[service.pg]\nport = %d\nprotocol = postgres\n" % port, str(tmp_path))
    try:
        c = PgClient(port)
        # three fingerprints (libpg_query's: constants and column aliases
        # do not count, tables do)
        cols = ", ".join('%d AS "größe_%02d"' % (i, i) for i in range(24))
        c.simple("SELECT " + cols + " FROM pg_class WHERE oid = 1259")
        want = ("SELECT " + ", ".join('$%d AS "größe_%02d"' % (i + 1, i) for i in range(24))
                + " FROM pg_class WHERE oid = $25")
        assert 256 < len(want.encode()) < 1024
        many = "SELECT oid FROM pg_type WHERE oid IN (" + ",".join(["7"] * 230) + ")"
        assert len(many) < 500                              # whole on the wire
        c.simple(many)
        m = c.simple(b'SELECT 1 AS "bad\xffbyte" FROM pg_namespace')    # refused
        assert m[0][0] == b"E", m
        c.close()
        time.sleep(0.3)
        d = obs.dump()
        long_q = query_of(d, "server", lambda q: q is not None and "größe_23" in q)
        assert long_q["query"] == want and not long_q["truncated"], long_q
        cut = query_of(d, "server", lambda q: q is not None and "pg_type" in q)
        assert cut["query"].startswith("SELECT oid FROM pg_type WHERE oid IN ($1,$2,"), cut
        assert cut["query"].endswith("\u2026") and cut["truncated"], cut
        assert len(cut["query"].encode()) <= 1023 and cut["calls"] == 1
        odd = query_of(d, "server", lambda q: q is not None and "pg_namespace" in q)
        assert odd["query"] == 'SELECT $1 AS "bad?byte" FROM pg_namespace', odd
        assert odd["errors"] == 1, odd
        assert all(q["query"] is not None for q in d["queries"]["queries"])
    finally:
        obs.close()


def test_postgres_queries_of_one_shape(postgres, tmp_path):
    """A connection's queries that differ from its last one only in the
    digits of numeric literals (the last literal's also in their number)
    take that query's hash without a walk of their text (the kernel's
    shape memo); any other difference (one byte of the text, another
    literal's length, a string) is walked and counted as what it is."""
    port = postgres
    obs = Observer("[service.pg]\nport = %d\nprotocol = postgres\n" % port, str(tmp_path))
    try:
        c = PgClient(port)
        for i in range(40):
            # the same shape each time: four-digit literal
            c.simple("SELECT relname FROM pg_class WHERE oid = %d" % (1000 + i))
            if i % 4 == 0:      # one byte of the text differs, same length
                c.simple("SELECT relname FROM pg_class WHERE oid < %d" % (1000 + i))
            if i % 5 == 0:      # the same statement, a shorter literal
                c.simple("SELECT relname FROM pg_class WHERE oid = %d" % i)
            if i % 8 == 0:      # a string: never taken from the memo
                c.simple("SELECT relname FROM pg_class WHERE oid = %d AND relname = 't%d'" % (2000 + i, i))
            if i % 10 == 0:     # digits in a name are not a literal
                c.simple("SELECT relname AS r%d FROM pg_class WHERE oid = %d" % (i % 7, 1000 + i))
        # where the last query had its literal, a name of the same length
        c.simple("SELECT relname FROM pg_class WHERE oid = 1259")
        c.simple("SELECT relname FROM pg_class WHERE oid = oid ")
        # the last literal's digits may be more or fewer (pgbench's ids):
        # the same statement, taken from the memo, as long as what
        # follows the literal is the same, byte for byte
        kinds = ("SELECT relname FROM pg_class WHERE oid = %d",
                 "SELECT relname FROM pg_class WHERE oid = %d AND relkind = relkind",
                 "SELECT relname FROM pg_class WHERE oid = %d AND relname = relname",
                 "SELECT relname FROM pg_class WHERE oid > %d AND relname = relname")
        for i in range(24):
            for k in (0, 0, 1, 1, 2, 2, 3, 0):
                if (i + k) % 3 == 0:
                    c.simple(kinds[k] % (7 * 10 ** ((i * 7 + k) % 6)))
        c.close()
        time.sleep(0.3)
        d = obs.dump()
        sent = [0, 0, 0, 0]
        for i in range(24):
            for k in (0, 0, 1, 1, 2, 2, 3, 0):
                if (i + k) % 3 == 0:
                    sent[k] += 1
        kind = [query_of(d, "server", lambda q, t=t: q == t) for t in
                ("SELECT relname FROM pg_class WHERE oid = $1",
                 "SELECT relname FROM pg_class WHERE oid = $1 AND relkind = relkind",
                 "SELECT relname FROM pg_class WHERE oid = $1 AND relname = relname",
                 "SELECT relname FROM pg_class WHERE oid > $1 AND relname = relname")]
        assert [k["calls"] for k in kind[1:]] == sent[1:], (kind, sent)
        # libpg_query's fingerprint leaves column aliases out: the four
        # aliased queries are counted with the plain ones
        eq = query_of(d, "server", lambda q: q == "SELECT relname FROM pg_class WHERE oid = $1")
        lt = query_of(d, "server", lambda q: q == "SELECT relname FROM pg_class WHERE oid < $1")
        st = query_of(d, "server", lambda q: "relname = $2" in q)
        assert (eq["calls"], lt["calls"], st["calls"]) == (40 + 8 + 4 + 1 + sent[0], 10, 5), (eq, lt, st)
        assert query_of(d, "server", lambda q: "oid = oid" in q)["calls"] == 1
        # the kernel keeps them apart: "=", "<", the string, four aliases,
        # "oid = oid", the three kinds after "=" (a literal's length does
        # not make another endpoint)
        eps = [e for e in obs.kernel_endpoints() if e["key"]["service_id"] == 0]
        assert len(eps) == 11, [e["key"] for e in eps]
        assert sum(e["value"]["count"] for e in eps) == 40 + 8 + 4 + 1 + 10 + 5 + 1 + sum(sent), eps
    finally:
        obs.close()


def test_postgres_statements_in_turn(postgres, tmp_path):
    """A connection that goes through several statements in turn (as
    pgbench's transaction, an application's) misses its memo on every
    query; the kernel then remakes the memo from every fourth one only,
    and keeps the one it has meanwhile. Every query is still counted as
    what it is, through the turns and through runs of one statement; and
    each statement is one endpoint in the kernel, whose walk hashes the
    text as grouped, wherever a literal of another length has moved the
    rest of it."""
    port = postgres
    obs = Observer("[service.pg]\nport = %d\nprotocol = postgres\n" % port, str(tmp_path))
    try:
        c = PgClient(port)
        turn = ("SELECT relname FROM pg_class WHERE oid = %d",
                "SELECT relkind FROM pg_class WHERE oid = %d",
                "SELECT relnatts FROM pg_class WHERE oid > %d",
                "SELECT relpages FROM pg_class WHERE oid = %d",
                "SELECT relname FROM pg_class WHERE oid < %d",
                # text after the literal, a string (never the memo's)
                "SELECT relname FROM pg_class WHERE oid <> %d AND relkind <> 'x' AND relnatts > 1")
        sent = [0] * len(turn)
        for i in range(30):
            for k, q in enumerate(turn):
                # another statement each query: every one misses the memo
                c.simple(q % (3 * 10 ** ((i + k) % 5)))
                sent[k] += 1
            if i % 6 == 5:      # a run of one statement: the memo is made again
                for j in range(5):
                    c.simple(turn[0] % (1000 + j))
                    sent[0] += 1
        c.close()
        time.sleep(0.3)
        d = obs.dump()
        norm = [t.replace("%d", "$1") for t in turn]
        norm[-1] = norm[-1].replace("'x'", "$2").replace("> 1", "> $3")
        got = [query_of(d, "server", lambda q, t=t: q == t)["calls"] for t in norm]
        assert got == sent, (got, sent)
        eps = [e for e in obs.kernel_endpoints() if e["key"]["service_id"] == 0]
        assert len(eps) == len(turn), [e["key"] for e in eps]
        assert sorted(e["value"]["count"] for e in eps) == sorted(sent), (eps, sent)
    finally:
        obs.close()


# ---- Redis -----------------------------------------------------------------------

def test_redis_commands_outbound_pipelined(tmp_path):
    need_root()
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    port = free_port()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                           preexec_fn=die_with_us)
    try:
        wait_listening(port)
        obs = Observer("[redis]\naddress = 127.0.0.1:%d\n" % port, str(tmp_path))
        try:
            s = socket.create_connection(("127.0.0.1", port))

            def cmd(*args):
                out = b"*%d\r\n" % len(args)
                for a in args:
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
                return out
            for i in range(30):
                s.sendall(cmd(b"SET", b"k%d" % i, b"v"))
                assert s.recv(100) == b"+OK\r\n"
            # one write carrying 5 GETs, answered by one write
            s.sendall(b"".join(cmd(b"GET", b"k%d" % i) for i in range(5)))
            got = b""
            while got.count(b"\r\n") < 10:
                got += s.recv(1000)
            s.sendall(cmd(b"NOPE"))
            assert s.recv(200).startswith(b"-")
            s.close()
            time.sleep(0.3)
            d = obs.dump()
            r = metrics_of(d, "redis", "outbound")
            assert endpoint(r, "SET")["requests"] == 30
            assert endpoint(r, "GET")["requests"] == 5
            assert endpoint(r, "NOPE")["errors"] == 1
        finally:
            obs.close()
    finally:
        srv.terminate()
        srv.wait()


# ---- without privileges --------------------------------------------------------------

def test_stale_pins_of_another_layout_replaced(tmp_path):
    """A run that did not stop cleanly leaves its maps pinned; a build whose
    map layout differs (here obs_ep_table with the 344-byte slots of an
    earlier version) removes them with one warning and watches as usual,
    where libbpf alone would refuse the whole object."""
    pin = "/sys/fs/bpf/hotpath-test-stale-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
    os.makedirs(pin)
    stale = os.path.join(pin, "obs_ep_table")
    try:
        r = subprocess.run(["bpftool", "map", "create", stale, "type", "array", "key", "4",
                            "value", "344", "entries", "4096", "name", "obs_ep_table",
                            "flags", "1024"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        d = Daemon(str(tmp_path), ini_extra="[service.web]\nport = 8080\n",
                   sections={"bpf": {"pin_path": pin}})
        try:
            log = d.log_text()
            assert "observe: watching" in log, log
            assert "removed pinned maps under %s" % pin in log, log
            r = subprocess.run(["bpftool", "-j", "map", "show", "pinned", stale],
                               capture_output=True, text=True)
            assert r.returncode == 0 and json.loads(r.stdout)["bytes_value"] == 384, r.stdout
        finally:
            assert d.stop() == 0
        assert not os.path.exists(stale), "pin left behind"
    finally:
        for f in os.listdir(pin):
            os.unlink(os.path.join(pin, f))
        os.rmdir(pin)


def test_unprivileged_one_line_no_crash(hotpath_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    d = hotpath_factory("[service.web]\nport = 8080\n", user=65534)
    log = d.log_text()
    print("\n  unprivileged:", [l for l in log.splitlines() if "observe" in l])
    assert "observe: watching" not in log
    st, _, body = d.api("GET", "/api/v2/performance/metrics", token_name="reader")
    assert st == 501 and b"observation is not running" in body
    assert d.redis().ping()
    assert d.stop() == 0
