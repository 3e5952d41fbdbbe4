"""
The daemon around the cache: kernel programs and their pinned maps, running
without privileges, clean exit under valgrind.
"""
import os
import shutil
import subprocess
import time

import pytest


def have_bpf():
    return os.geteuid() == 0 and os.path.exists("/sys/kernel/btf/vmlinux")


@pytest.mark.skipif(not have_bpf(), reason="needs root and a BTF kernel")
def test_bpf_counts_accepts(hotpath):
    assert "bpf: accept counter attached" in hotpath.log_text(), hotpath.log_text()
    before = hotpath.metric("hotpath_bpf_accepted_closed_total") or 0
    socks = [hotpath.sock() for _ in range(25)]
    for s in socks:
        s.close()
    time.sleep(0.3)
    kernel = hotpath.metric("hotpath_bpf_accepts_total")
    user = hotpath.metric("hotpath_resp_connections_total")
    assert user is not None and user >= 25
    # the kernel counts every connection to the process's listeners (RESP
    # and API sockets)
    assert kernel is not None and kernel >= user
    # ... and sees the 25 closed (the agent closes on EOF; the metrics
    # requests' own connections may still be open)
    deadline = time.time() + 5
    while (hotpath.metric("hotpath_bpf_accepted_closed_total") or 0) < before + 25:
        assert time.time() < deadline, "closed connections not counted"
        time.sleep(0.1)
    assert hotpath.metric("hotpath_bpf_accepted_closed_total") <= hotpath.metric("hotpath_bpf_accepts_total")
    pinned = os.path.join(hotpath.pin_path, "accept_stats")
    assert os.path.exists(pinned)
    out = subprocess.run(["bpftool", "map", "dump", "pinned", pinned], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert '"accepted"' in out.stdout or "accepted" in out.stdout
    hotpath.stop()
    assert not os.path.exists(pinned), "the pin must be removed on exit"


def test_runs_without_privileges(hotpath_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    d = hotpath_factory(user=65534)
    log = d.log_text()
    assert "feature bpf unavailable" in log, log
    assert log.count("feature bpf unavailable") == 1
    r = d.redis()
    assert r.set("k", "v") and r.get("k") == b"v"
    st, _, _ = d.api("GET", "/api/v2/health")
    assert st == 200
    assert d.stop() == 0


def test_bpf_disabled_by_config(hotpath_factory):
    d = hotpath_factory(bpf=False)
    assert "switched off by bpf.enabled = no" in d.log_text()
    assert d.redis().ping()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind missing")
def test_valgrind_clean_exit(hotpath_factory):
    d = hotpath_factory(valgrind=True, bpf=False)
    r = d.redis()
    for i in range(200):
        r.set("k%d" % i, "v" * (i + 1), ex=100)
        r.get("k%d" % i)
    r.incr("n")
    list(r.scan_iter(match="k1*"))
    d.api("GET", "/metrics")
    d.api("GET", "/api/v2/cache/status", token_name="admin")
    c = d.sock()  # left open: the drain must close it
    rc = d.stop(timeout=60)
    c.close()
    log = open(d.valgrind_log).read()
    assert rc == 0, log[-3000:]
    assert "ERROR SUMMARY: 0 errors" in log, log[-3000:]
    assert "definitely lost: 0 bytes" in log or "no leaks are possible" in log, log[-3000:]
