"""
Integration-test harness: starts the real hotpathd (and a real
redis-server to compare against) on free loopback ports, drives them over
their real sockets, and stops them cleanly.

Fixtures
- ``hotpath``: a running daemon with the default test config.
- ``hotpath_factory(ini_extra="", tokens=None, tokens_mode=0o600, ...)``:
  start daemons with extra INI text; all are stopped at the end of the test.
- ``redis_server``: a real redis-server (session-wide) for differential
  tests: the same bytes sent to both must get the same reply bytes.
"""
import ctypes
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import http.client
import json

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.environ.get("OUT", "build")
HOTPATHD = os.path.join(ROOT, OUT, "hotpathd")
HOTPATHCTL = os.path.join(ROOT, OUT, "hotpathctl")

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_us():
    """preexec_fn for every server a test starts: it gets SIGTERM when the
    test process dies (a killed or timed-out run), so no daemon outlives the
    run with its BPF programs attached to every socket of the host, watching
    whatever runs next. The kernel clears this on a change of credentials,
    so a daemon started through setpriv as another user is not covered."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


DEFAULT_TOKENS = {
    "admin": "*",
    "reader": "cache:read,perf:read",
    "policy": "cache:policy",
    "nobody": "perf:optimize",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One hotpathd process with its own config, tokens and pin path."""

    def __init__(self, workdir, ini_extra="", tokens=None, tokens_mode=0o600,
                 sections=None, user=None, valgrind=False, wait_ready=True,
                 bpf=True):
        self.workdir = workdir
        self.tokens = {}
        self.token_scopes = tokens if tokens is not None else DEFAULT_TOKENS
        self.tokens_path = os.path.join(workdir, "tokens")
        lines = ["# test tokens"]
        for name, scopes in self.token_scopes.items():
            tok = secrets.token_hex(16)
            self.tokens[name] = tok
            lines.append("%s %s %s" % (name, hashlib.sha256(tok.encode()).hexdigest(), scopes))
        with open(self.tokens_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.tokens_path, tokens_mode)
        self.pin_path = "/sys/fs/bpf/hotpath-test-%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.config_path = os.path.join(workdir, "hotpath.ini")
        self.base_sections = sections or {}
        self.ini_extra = ini_extra
        self.bpf = bpf
        self.write_config(ini_extra)
        self.lines = []
        self.lock = threading.Lock()
        cmd = [HOTPATHD, "-c", self.config_path]
        if valgrind:
            self.valgrind_log = os.path.join(workdir, "valgrind.log")
            cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                   "--log-file=" + self.valgrind_log] + cmd
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all"] + cmd
            os.chmod(workdir, 0o755)
            os.chown(self.tokens_path, user, user)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=ROOT, preexec_fn=die_with_us)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.resp_port = None
        self.api_port = None
        if wait_ready:
            self.wait_ready(60 if valgrind else 15)

    def write_config(self, ini_extra):
        base = {
            "core": {"workers": "2", "shutdown_timeout": "3s"},
            "resp": {"listen": "127.0.0.1:0"},
            "api": {"listen": "127.0.0.1:0", "tokens_file": self.tokens_path},
            "cache": {"l1_max_memory": "64mb"},
            "bpf": {"enabled": "yes" if self.bpf else "no", "pin_path": self.pin_path},
        }
        for sec, kv in self.base_sections.items():
            base.setdefault(sec, {}).update(kv)
        # the file allows each section once: merge ini_extra into the base
        cur = None
        for line in ini_extra.splitlines():
            t = line.strip()
            if not t or t.startswith(("#", ";")):
                continue
            if t.startswith("[") and t.endswith("]"):
                cur = base.setdefault(t[1:-1], {})
            elif "=" in t and cur is not None:
                k, v = t.split("=", 1)
                cur[k.strip()] = v.strip()
        text = []
        for sec, kv in base.items():
            text.append("[%s]" % sec)
            text.extend("%s = %s" % (k, v) for k, v in kv.items())
        with open(self.config_path, "w") as f:
            f.write("\n".join(text) + "\n")

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)

    def log_text(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_log(self, needle, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if needle in self.log_text():
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return needle in self.log_text()
            time.sleep(0.05)
        return False

    def wait_ready(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                for line in self.lines:
                    if "ready: RESP on port" in line:
                        parts = line.split()
                        self.resp_port = int(parts[parts.index("RESP") + 3].rstrip(","))
                        self.api_port = int(parts[parts.index("API") + 3])
                        return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("hotpathd did not become ready:\n" + self.log_text())

    # --- clients -----------------------------------------------------------
    def redis(self, **kw):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.resp_port, socket_timeout=10, **kw)

    def sock(self):
        s = socket.create_connection(("127.0.0.1", self.resp_port), timeout=10)
        return s

    def api(self, method, path, token_name=None, body=None, raw_body=None, headers=None,
            token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=15)
        hdrs = dict(headers or {})
        if token_name is not None:
            hdrs["Authorization"] = "Bearer " + self.tokens[token_name]
        elif token is not None:
            hdrs["Authorization"] = "Bearer " + token
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
        conn.close()
        return out

    def api_json(self, method, path, token_name="admin", body=None):
        st, hd, payload = self.api(method, path, token_name=token_name, body=body)
        return st, json.loads(payload) if payload else None

    def metrics(self):
        st, _, payload = self.api("GET", "/metrics")
        assert st == 200, payload
        return payload.decode()

    def metric(self, name, labels=None):
        """Sum of the samples of `name` whose labels include `labels`."""
        total = None
        for line in self.metrics().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            head, _, val = line.rpartition(" ")
            mname = head.split("{", 1)[0]
            if mname != name:
                continue
            if labels:
                lab = head[len(mname):]
                if not all('%s="%s"' % (k, v) in lab for k, v in labels.items()):
                    continue
            total = (total or 0) + float(val)
        return total

    # --- lifecycle ---------------------------------------------------------
    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def bpf_fds(self, kind):
        """The fdinfo (as a dict) of each BPF program ("prog") or map
        ("map") the daemon holds an fd of."""
        out = []
        fdinfo = "/proc/%d/fdinfo" % self.proc.pid
        for fd in os.listdir(fdinfo):
            try:
                with open(os.path.join(fdinfo, fd)) as f:
                    info = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            except OSError:
                continue
            info = {k.strip(): v.strip() for k, v in info.items()}
            if kind + "_id" in info:
                out.append(info)
        return out

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        if os.path.isdir(self.pin_path):
            try:
                os.rmdir(self.pin_path)
            except OSError:
                pass
        return self.proc.returncode


@pytest.fixture
def hotpath_factory():
    daemons = []
    dirs = []

    def make(ini_extra="", tokens=None, tokens_mode=0o600, **kw):
        d = tempfile.mkdtemp(prefix="hotpath-it-")
        dirs.append(d)
        dm = Daemon(d, ini_extra=ini_extra, tokens=tokens, tokens_mode=tokens_mode, **kw)
        daemons.append(dm)
        return dm

    yield make
    for dm in daemons:
        dm.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def hotpath(hotpath_factory):
    return hotpath_factory()


@pytest.fixture(scope="session")
def redis_server():
    exe = shutil.which("redis-server")
    if not exe:
        pytest.fail("redis-server is not installed (make deps installs it)")
    port = free_port()
    d = tempfile.mkdtemp(prefix="hotpath-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", d, "--daemonize", "no",
                             "--protected-mode", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_us)
    end = time.time() + 10
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield port
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def resp_roundtrip(port, payload, nreplies, timeout=5):
    """Send raw bytes, read until `nreplies` complete RESP replies arrived."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(payload)
    data = b""
    end = time.time() + timeout
    while time.time() < end:
        n = count_replies(data)
        if n is not None and n >= nreplies:
            break
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def _parse_one(data, i):
    """Return the index after one complete reply starting at i, or None."""
    if i >= len(data):
        return None
    t = data[i:i + 1]
    e = data.find(b"\r\n", i)
    if e < 0:
        return None
    if t in (b"+", b"-", b":"):
        return e + 2
    if t == b"$":
        n = int(data[i + 1:e])
        if n < 0:
            return e + 2
        end = e + 2 + n + 2
        return end if end <= len(data) else None
    if t == b"*":
        n = int(data[i + 1:e])
        j = e + 2
        for _ in range(max(n, 0)):
            j = _parse_one(data, j)
            if j is None:
                return None
        return j
    raise ValueError("bad RESP at %d: %r" % (i, data[i:i + 20]))


def count_replies(data):
    i, n = 0, 0
    while i < len(data):
        j = _parse_one(data, i)
        if j is None:
            return n
        i, n = j, n + 1
    return n


def split_replies(data):
    out, i = [], 0
    while i < len(data):
        j = _parse_one(data, i)
        if j is None:
            break
        out.append(data[i:j])
        i = j
    return out


def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
