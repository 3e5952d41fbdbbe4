"""
REST API, /metrics and hotpathctl against the real hotpathd.

Uses the `hotpath` / `hotpath_factory` fixtures of conftest.py: a daemon on
free loopback ports with the tokens "admin" (*), "reader"
(cache:read,perf:read), "policy" (cache:policy) and "nobody"
(perf:optimize). Only the standard library and python3-redis.
"""
import hashlib
import http.client
import json
import math
import os
import re
import secrets
import socket
import subprocess
import time

import pytest

from conftest import HOTPATHCTL


def jbody(payload):
    return json.loads(payload.decode())


def assert_error(status, headers, payload, want_status, want_code=None, needle=None):
    assert status == want_status, payload
    assert headers.get("content-type", "").startswith("application/json"), headers
    err = jbody(payload)["error"]
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    if want_code:
        assert err["code"] == want_code, err
    if needle:
        assert needle in err["message"], err
    return err


# --- health, auth and the error contract ------------------------------------------

def test_health_needs_no_token(hotpath):
    st, hd, payload = hotpath.api("GET", "/api/v2/health")
    assert st == 200
    h = jbody(payload)
    assert h["status"] in ("ok", "degraded")
    assert h["version"]
    assert h["uptime_seconds"] >= 0
    assert isinstance(h["features"], list) and h["features"]
    for f in h["features"]:
        assert isinstance(f["name"], str) and isinstance(f["available"], bool)


def test_401_missing_and_invalid_token(hotpath):
    st, hd, payload = hotpath.api("GET", "/api/v2/cache/status")
    assert_error(st, hd, payload, 401, "unauthorized")
    assert hd["www-authenticate"].startswith("Bearer")
    st, hd, payload = hotpath.api("GET", "/api/v2/cache/status", token="not-a-token")
    assert_error(st, hd, payload, 401, "unauthorized", "invalid")
    assert "invalid_token" in hd["www-authenticate"]
    st, hd, payload = hotpath.api("GET", "/api/v2/cache/status",
                                  headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert_error(st, hd, payload, 401)


def test_403_names_the_scope(hotpath):
    st, hd, payload = hotpath.api("GET", "/api/v2/cache/status", token_name="policy")
    assert_error(st, hd, payload, 403, "forbidden", "cache:read")
    st, hd, payload = hotpath.api("POST", "/api/v2/cache/clear", token_name="reader", body={})
    assert_error(st, hd, payload, 403, "forbidden", "cache:admin")
    st, hd, payload = hotpath.api("DELETE", "/api/v2/performance/cache/invalidate",
                                  token_name="nobody", body={"invalidation_pattern": "*"})
    assert_error(st, hd, payload, 403, "forbidden", "cache:invalidate")


def test_404_and_405(hotpath):
    st, hd, payload = hotpath.api("GET", "/api/v2/nothing-here", token_name="admin")
    assert_error(st, hd, payload, 404, "not_found")
    st, hd, payload = hotpath.api("GET", "/", token_name="admin")
    assert_error(st, hd, payload, 404)
    st, hd, payload = hotpath.api("POST", "/api/v2/cache/status", token_name="admin", body={})
    assert_error(st, hd, payload, 405, "method_not_allowed")
    assert "GET" in hd["allow"]
    st, hd, payload = hotpath.api("GET", "/api/v2/cache/clear", token_name="admin")
    assert_error(st, hd, payload, 405)
    assert hd["allow"] == "POST"
    st, hd, payload = hotpath.api("PUT", "/api/v2/performance/cache/invalidate", token_name="admin")
    assert_error(st, hd, payload, 405)
    assert hd["allow"] == "DELETE"


def test_400_bodies_and_queries(hotpath):
    cases = [
        ("POST", "/api/v2/cache/clear", b"{not json", "invalid_json", "malformed JSON"),
        ("POST", "/api/v2/cache/clear", b"", "invalid_json", "empty"),
        ("POST", "/api/v2/cache/clear", b"[1,2]", "invalid_json", "object"),
        ("POST", "/api/v2/cache/clear", b'{"cache_scope":"all","cache_scope":"l1"}',
         "invalid_json", "duplicate"),
        ("POST", "/api/v2/cache/clear", b'{"cache_scope":"all","bogus":1}', "invalid_body", "bogus"),
        ("POST", "/api/v2/cache/clear", b'{"cache_scope":7}', "invalid_body", "cache_scope"),
        ("POST", "/api/v2/cache/clear", b"{" + b'"a":[' * 40 + b"1" + b"]" * 40 + b"}",
         "invalid_json", "nested"),
        ("DELETE", "/api/v2/performance/cache/invalidate", b'{"scope":"all"}', "invalid_body",
         "invalidation_pattern"),
        ("POST", "/api/v2/cache/policies", b'{"policy_definitions":[{"name":"a","prefix":"a:",'
         b'"priority":"urgent"}]}', "invalid_body", "priority"),
        ("POST", "/api/v2/cache/policies", b'{"policy_definitions":[{"name":"a","prefix":"a:",'
         b'"max_memory":"lots"}]}', "invalid_body", "max_memory"),
    ]
    for method, path, raw, code, needle in cases:
        st, hd, payload = hotpath.api(method, path, token_name="admin", raw_body=raw,
                                      headers={"Content-Type": "application/json"})
        assert_error(st, hd, payload, 400, code, needle)
    for q, needle in [("cache_tier=l9", "cache_tier"), ("time_range=2h", "time_range"),
                      ("time_range=5m&granularity=500ms", "granularity"),
                      ("granularity=abc", "granularity"), ("colour=blue", "colour")]:
        st, hd, payload = hotpath.api("GET", "/api/v2/cache/statistics?" + q, token_name="admin")
        assert_error(st, hd, payload, 400, "invalid_query", needle)
    for q, needle in [("count=0", "count"), ("count=1001", "count"), ("cursor=-1", "cursor"),
                      ("cursor=%zz", "cursor")]:
        st, hd, payload = hotpath.api("GET", "/api/v2/cache/keys/*?" + q, token_name="admin")
        assert_error(st, hd, payload, 400, None, needle)


def _raw_request(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    return out


def test_413_content_length_and_streamed(hotpath_factory):
    d = hotpath_factory(sections={"api": {"max_body": "4kb"}})
    body = json.dumps({"clear_pattern": "x" * 8000}).encode()
    st, hd, payload = d.api("POST", "/api/v2/cache/clear", token_name="admin", raw_body=body,
                            headers={"Content-Type": "application/json"})
    assert_error(st, hd, payload, 413, "payload_too_large")
    # Chunked upload without Content-Length: refused while streaming.
    conn = http.client.HTTPConnection("127.0.0.1", d.api_port, timeout=15)
    conn.request("POST", "/api/v2/cache/clear", body=iter([b"{" + b" " * 1000] * 10 + [b"}"]),
                 headers={"Authorization": "Bearer " + d.tokens["admin"],
                          "Content-Type": "application/json"}, encode_chunked=True)
    r = conn.getresponse()
    payload = r.read()
    assert_error(r.status, {k.lower(): v for k, v in r.getheaders()}, payload, 413)
    conn.close()
    # Small bodies still work.
    st, _, payload = d.api("POST", "/api/v2/cache/clear", token_name="admin", body={})
    assert st == 200, payload


def test_501_for_subsystems_not_running(hotpath):
    # kernel observation answers when it runs (root, BPF), else says why
    st, hd, payload = hotpath.api("GET", "/api/v2/performance/metrics", token_name="admin")
    if st == 200:
        assert "services" in json.loads(payload)
    else:
        assert "not running" in assert_error(st, hd, payload, 501, "not_implemented")["message"]
    for method, path, body in [("POST", "/api/v2/performance/optimize",
                                {"optimization_type": "cache", "scope": "all"}),
                               ("GET", "/api/v2/performance/recommendations", None)]:
        st, hd, payload = hotpath.api(method, path, token_name="admin", body=body)
        err = assert_error(st, hd, payload, 501, "not_implemented")
        assert "not running" in err["message"]
    # background profiles (test_profile.py): a bad id is a 400 when the
    # profiler runs, else the route says it is not running
    st, hd, payload = hotpath.api("GET", "/api/v2/performance/profiling/abc", token_name="admin")
    if st == 400:
        assert "decimal" in assert_error(st, hd, payload, 400, "bad_request")["message"]
    else:
        assert "not running" in assert_error(st, hd, payload, 501, "not_implemented")["message"]
    # warming runs (test_strategies.py); a body without sources is a 400
    st, hd, payload = hotpath.api("POST", "/api/v2/performance/cache/warm", token_name="admin",
                                  body={"cache_scope": "l1"})
    assert "data_sources" in assert_error(st, hd, payload, 400, "bad_request")["message"]
    # Authentication still comes first.
    st, hd, payload = hotpath.api("GET", "/api/v2/performance/recommendations")
    assert st == 401


# --- cache routes ----------------------------------------------------------------

def test_cache_status(hotpath):
    r = hotpath.redis()
    for i in range(10):
        r.set("st:%d" % i, "v" * 100)
    st, s = hotpath.api_json("GET", "/api/v2/cache/status", token_name="reader")
    assert st == 200, s
    l1 = s["tiers"]["l1"]
    assert l1["present"] is True
    assert l1["keys"] == 10
    assert l1["memory_bytes"] > 1000
    assert l1["max_memory_bytes"] == 64 * 1024 * 1024
    assert l1["policy"] in ("s3fifo", "lru")
    assert any(p["prefix"] == "" for p in s["partitions"])


def test_cache_clear_all_and_pattern(hotpath):
    r = hotpath.redis()
    for i in range(5):
        r.set("a:%d" % i, "1")
        r.set("b:%d" % i, "1")
    st, res = hotpath.api_json("POST", "/api/v2/cache/clear", token_name="admin",
                               body={"cache_scope": "l1", "clear_pattern": "a:*"})
    assert st == 200, res
    assert res["deleted"]["l1"] == 5 and res["total"] == 5
    assert r.dbsize() == 5
    st, res = hotpath.api_json("POST", "/api/v2/cache/clear", token_name="admin",
                               body={"cache_scope": "all"})
    assert st == 200 and res["deleted"]["l1"] == 5
    assert r.dbsize() == 0


def test_invalidate(hotpath):
    r = hotpath.redis()
    for i in range(7):
        r.set("user:%d" % i, "x")
    r.set("order:1", "x")
    st, res = hotpath.api_json("DELETE", "/api/v2/performance/cache/invalidate",
                               token_name="admin",
                               body={"invalidation_pattern": "user:*", "scope": "all"})
    assert st == 200, res
    assert res["invalidated"]["l1"] == 7 and res["total"] == 7
    assert r.exists("user:3") == 0 and r.exists("order:1") == 1


def test_statistics_totals_and_series(hotpath):
    r = hotpath.redis()
    r.set("s:1", "v")
    for _ in range(3):
        r.get("s:1")
    r.get("s:missing")
    time.sleep(2.5)  # let the per-second sampler tick
    st, s = hotpath.api_json("GET", "/api/v2/cache/statistics?cache_tier=l1&time_range=1m"
                             "&granularity=10s", token_name="reader")
    assert st == 200, s
    assert s["time_range_seconds"] == 60 and s["granularity_seconds"] == 10
    t = s["totals"]["l1"]
    assert t["hits"] == 3 and t["misses"] == 1 and t["sets"] == 1
    assert abs(t["hit_ratio"] - 0.75) < 1e-9
    assert isinstance(s["partitions"], list) and s["partitions"]
    series = s["series"]
    assert 1 <= len(series) <= 6
    assert all(p["timestamp_ms"] > 0 for p in series)
    assert [p["timestamp_ms"] for p in series] == sorted(p["timestamp_ms"] for p in series)
    assert series[-1]["keys"] == 1
    assert sum(p["sets"] for p in series) <= 1
    # 1-second granularity over the ring's maximum is accepted; more is not.
    st, s = hotpath.api_json("GET", "/api/v2/cache/statistics?time_range=1h&granularity=1s",
                             token_name="reader")
    assert st == 200 and s["granularity_seconds"] == 1


def test_policies_applied_live(hotpath):
    body = {"policy_definitions": [
        {"name": "sessions", "prefix": "sess:", "max_memory": "8mb", "default_ttl": "30s",
         "priority": "high"},
        {"name": "images", "prefix": "img:", "max_memory": 1048576, "default_ttl": 5000},
    ]}
    st, res = hotpath.api_json("POST", "/api/v2/cache/policies", token_name="policy", body=body)
    assert st == 200, res
    table = {p["name"]: p for p in res["partitions"]}
    assert table["sessions"]["prefix"] == "sess:"
    assert table["sessions"]["max_memory_bytes"] == 8 * 1024 * 1024
    assert table["sessions"]["default_ttl_ms"] == 30000
    assert table["sessions"]["priority"] == "high"
    assert table["images"]["default_ttl_ms"] == 5000
    r = hotpath.redis()
    r.set("sess:abc", "v")
    r.set("img:1", "v")
    r.set("plain", "v")
    assert 0 < r.pttl("sess:abc") <= 30000
    assert 0 < r.pttl("img:1") <= 5000
    assert r.pttl("plain") == -1
    st, s = hotpath.api_json("GET", "/api/v2/cache/status", token_name="reader")
    assert {p["name"] for p in s["partitions"]} >= {"sessions", "images"}
    # Replacing the table with an empty one removes the defaults for new keys.
    st, res = hotpath.api_json("POST", "/api/v2/cache/policies", token_name="policy",
                               body={"policy_definitions": []})
    assert st == 200
    r.set("sess:new", "v")
    assert r.pttl("sess:new") == -1


def test_keys_pagination(hotpath):
    r = hotpath.redis()
    want = set()
    pipe = r.pipeline(transaction=False)
    for i in range(250):
        k = "page:%03d" % i
        want.add(k)
        pipe.set(k, "v")
    pipe.set("other:1", "v")
    pipe.execute()
    r.set("page:ttl", "v", px=60000)
    want.add("page:ttl")
    got, cursor, pages = [], "0", 0
    while True:
        st, res = hotpath.api_json("GET", "/api/v2/cache/keys/page:*?count=50&cursor=" + cursor,
                                   token_name="reader")
        assert st == 200, res
        pages += 1
        assert len(res["keys"]) <= 4 * 50
        got.extend(k["key"] for k in res["keys"])
        for k in res["keys"]:
            if k["key"] == "page:ttl":
                assert 0 < k["ttl_ms"] <= 60000
            else:
                assert k["ttl_ms"] is None
        cursor = res["next_cursor"]
        assert isinstance(cursor, str)
        if cursor == "0":
            assert res["complete"] is True
            break
        assert pages < 500
    assert set(got) == want
    assert pages >= 2


def test_keys_pattern_decoding_and_binary(hotpath):
    r = hotpath.redis()
    r.set("dir/a b", "v")
    r.set(b"bin\xff\x00key", "v")
    st, res = hotpath.api_json("GET", "/api/v2/cache/keys/dir%2Fa%20*", token_name="reader")
    assert st == 200, res
    assert res["pattern"] == "dir/a *"
    assert [k["key"] for k in res["keys"]] == ["dir/a b"]
    st, res = hotpath.api_json("GET", "/api/v2/cache/keys/bin*", token_name="reader")
    assert st == 200, res
    assert len(res["keys"]) == 1
    k = res["keys"][0]
    import base64
    assert base64.b64decode(k["key_base64"]) == b"bin\xff\x00key"
    assert "\ufffd" in k["key"]
    # No pattern means every key.
    st, res = hotpath.api_json("GET", "/api/v2/cache/keys/?count=1000", token_name="reader")
    assert st == 200 and len(res["keys"]) >= 1


def test_config_view_redacts_secrets(hotpath_factory):
    d = hotpath_factory("[database.main]\nhost = 127.0.0.1\nport = 5432\ndbname = app\n"
                        "user = app\npassword = hunter2\n",
                        sections={"pooler": {"auth_type": "trust"}})
    st, res = d.api_json("GET", "/api/v2/config", token_name="reader")
    assert st == 200, res
    assert "hunter2" not in json.dumps(res)
    assert res["sections"]["database.main"]["password"]["value"] == "<redacted>"
    assert res["sections"]["cache"]["l1_max_memory"]["value"]
    st, hd, payload = d.api("GET", "/api/v2/config", token_name="policy")
    assert_error(st, hd, payload, 403, "forbidden", "perf:read or cache:read")


# --- /metrics -----------------------------------------------------------------------

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_metrics(text):
    """Strict parser for text format 0.0.4: returns {family: type}, [(name, labels, value)]."""
    types, samples, helped = {}, [], set()
    assert text.endswith("\n")
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, "HELP twice: " + name
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped")
            assert name not in types, "TYPE twice: " + name
            types[name] = typ
            continue
        assert line and not line.startswith("#"), repr(line)
        m = SAMPLE_RE.match(line)
        assert m, "bad sample line: %r" % line
        name, labels_s, value = m.group(1), m.group(3) or "", m.group(4)
        labels, pos = {}, 0
        while pos < len(labels_s):
            lm = LABEL_RE.match(labels_s, pos)
            assert lm, "bad labels in %r" % line
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        v = float(value)
        assert not math.isnan(v)
        fam = re.sub(r'_(bucket|sum|count)$', '', name) if name not in types else name
        assert fam in types, "sample before its TYPE: " + line
        samples.append((name, labels, v))
    return types, samples


def test_metrics_format_and_content(hotpath):
    r = hotpath.redis()
    r.set("m:1", "v")
    r.get("m:1")
    r.get("m:2")
    st, hd, payload = hotpath.api("GET", "/metrics")
    assert st == 200
    assert hd["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    types, samples = parse_metrics(payload.decode("utf-8"))
    for fam, typ in [("hotpath_cache_operations_total", "counter"),
                     ("hotpath_cache_hits_total", "counter"),
                     ("hotpath_cache_misses_total", "counter"),
                     ("hotpath_cache_evictions_total", "counter"),
                     ("hotpath_cache_expired_total", "counter"),
                     ("hotpath_cache_keys", "gauge"),
                     ("hotpath_cache_memory_bytes", "gauge"),
                     ("hotpath_cache_max_memory_bytes", "gauge"),
                     ("hotpath_resp_connections", "gauge"),
                     ("hotpath_resp_connections_total", "counter"),
                     ("hotpath_resp_connections_rejected_total", "counter"),
                     ("hotpath_resp_connections_closed_total", "counter"),
                     ("hotpath_resp_commands_total", "counter"),
                     ("hotpath_resp_command_duration_seconds", "histogram"),
                     ("hotpath_resp_received_bytes_total", "counter"),
                     ("hotpath_resp_sent_bytes_total", "counter"),
                     ("hotpath_feature_available", "gauge"),
                     ("hotpath_config_reloads_total", "counter"),
                     ("hotpath_uptime_seconds", "gauge"),
                     ("hotpath_build_info", "gauge")]:
        assert types.get(fam) == typ, fam

    def value(name, **labels):
        vals = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
        assert vals, (name, labels)
        return sum(vals)

    assert value("hotpath_cache_hits_total", tier="l1") == 1
    assert value("hotpath_cache_misses_total", tier="l1") == 1
    assert value("hotpath_cache_keys", tier="l1") == 1
    assert value("hotpath_resp_commands_total", command="get") == 2
    assert value("hotpath_build_info") == 1

    # Histograms: cumulative buckets ending in +Inf == _count, per command.
    buckets = {}
    for n, l, v in samples:
        if n == "hotpath_resp_command_duration_seconds_bucket":
            buckets.setdefault(l["command"], []).append((l["le"], v))
    assert "get" in buckets and "set" in buckets
    for cmd, bs in buckets.items():
        assert bs[-1][0] == "+Inf"
        les = [float(le) for le, _ in bs[:-1]]
        assert les == sorted(les) and len(set(les)) == len(les)
        counts = [v for _, v in bs]
        assert counts == sorted(counts), (cmd, counts)
        assert counts[-1] == value("hotpath_resp_command_duration_seconds_count", command=cmd)
        assert value("hotpath_resp_command_duration_seconds_sum", command=cmd) >= 0
    assert buckets["get"][-1][1] == 2


def test_metrics_auth_when_configured(hotpath_factory):
    d = hotpath_factory(sections={"api": {"metrics_auth": "yes"}},
                        tokens={"admin": "*", "scraper": "metrics:read", "reader": "cache:read"})
    st, hd, payload = d.api("GET", "/metrics")
    assert_error(st, hd, payload, 401)
    st, hd, payload = d.api("GET", "/metrics", token_name="reader")
    assert_error(st, hd, payload, 403, "forbidden", "metrics:read")
    st, hd, payload = d.api("GET", "/metrics", token_name="scraper")
    assert st == 200 and payload.startswith(b"# HELP")


# --- tokens file ---------------------------------------------------------------------

def test_world_readable_tokens_file_refused(hotpath_factory):
    d = hotpath_factory(tokens_mode=0o644, wait_ready=False)
    assert d.proc.wait(15) != 0
    log = d.log_text()
    assert "chmod 600" in log, log


def test_bad_tokens_file_refused_with_line(hotpath_factory):
    d = hotpath_factory(tokens={"ok": "cache:read", "bad": "cache:reed"}, wait_ready=False)
    assert d.proc.wait(15) != 0
    log = d.log_text()
    assert ":3:" in log and "cache:reed" in log, log


def test_empty_tokens_file_answers_401(hotpath_factory):
    d = hotpath_factory(tokens={})
    assert d.wait_log("every authenticated route answers 401")
    st, hd, payload = d.api("GET", "/api/v2/cache/status", token="anything")
    assert_error(st, hd, payload, 401)
    st, _, _ = d.api("GET", "/api/v2/health")
    assert st == 200


def test_reload_tokens_keeps_old_set_on_error(hotpath):
    tok = secrets.token_urlsafe(32)
    with open(hotpath.tokens_path) as f:
        original = f.read()
    with open(hotpath.tokens_path, "a") as f:
        f.write("late %s cache:read\n" % hashlib.sha256(tok.encode()).hexdigest())
    hotpath.reload()
    deadline = time.time() + 10
    while time.time() < deadline:
        st, _, _ = hotpath.api("GET", "/api/v2/cache/status", token=tok)
        if st == 200:
            break
        time.sleep(0.1)
    assert st == 200
    with open(hotpath.tokens_path, "w") as f:
        f.write(original + "broken line\n")
    hotpath.reload()
    assert hotpath.wait_log("keeping the")
    st, _, _ = hotpath.api("GET", "/api/v2/cache/status", token=tok)
    assert st == 200
    st, _, _ = hotpath.api("GET", "/api/v2/cache/status", token_name="reader")
    assert st == 200


# --- hotpathctl -----------------------------------------------------------------------

def ctl(d, *args, token=None, port=None):
    env = dict(os.environ)
    env.pop("HOTPATH_TOKEN", None)
    if token:
        env["HOTPATH_TOKEN"] = token
    url = "http://127.0.0.1:%d" % (port or d.api_port)
    return subprocess.run([HOTPATHCTL, "--url", url] + list(args), env=env,
                          capture_output=True, text=True, timeout=30)


def test_hotpathctl(hotpath):
    r = hotpath.redis()
    for i in range(30):
        r.set("ctl:%d" % i, "v")
    p = ctl(hotpath, "status", token=hotpath.tokens["reader"])
    assert p.returncode == 0, p.stderr
    assert "l1: 30 keys" in p.stdout
    p = ctl(hotpath, "stats", token=hotpath.tokens["reader"])
    assert p.returncode == 0, p.stderr
    p = ctl(hotpath, "keys", "ctl:*", token=hotpath.tokens["reader"])
    assert p.returncode == 0, p.stderr
    assert len([l for l in p.stdout.splitlines() if l.startswith("ctl:")]) == 30
    p = ctl(hotpath, "--json", "keys", "ctl:1*", token=hotpath.tokens["reader"])
    assert p.returncode == 0 and json.loads(p.stdout)["keys"] is not None
    p = ctl(hotpath, "invalidate", "ctl:*", token=hotpath.tokens["reader"])
    assert p.returncode == 3 and "403" in p.stderr and "cache:invalidate" in p.stderr
    p = ctl(hotpath, "invalidate", "ctl:*", token="wrong")
    assert p.returncode == 3 and "401" in p.stderr
    p = ctl(hotpath, "invalidate", "ctl:*", token=hotpath.tokens["admin"])
    assert p.returncode == 0 and "30 key(s)" in p.stdout
    # No daemon listening there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    p = ctl(hotpath, "status", token="x", port=closed_port)
    assert p.returncode == 2 and "Connection refused" in p.stderr


def test_hotpathctl_token_new():
    p = subprocess.run([HOTPATHCTL, "token", "new", "ci-bot", "cache:read,metrics:read"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    tok = lines[0].split(": ", 1)[1]
    name, digest, scopes = lines[-1].split(" ")
    assert name == "ci-bot" and scopes == "cache:read,metrics:read"
    assert digest == hashlib.sha256(tok.encode()).hexdigest()
    assert len(tok) >= 43
    p = subprocess.run([HOTPATHCTL, "token", "new", "x", "cache:everything"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "unknown scope" in p.stderr
