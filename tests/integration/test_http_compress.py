"""
Compression in the HTTP proxy, over its real socket in front of a real
backend (python http.server): gzip, br and zstd negotiated from
Accept-Encoding with q-values, compressed variants built once from the
stored identity response and served from the cache afterwards, their own
ETags, Vary: Accept-Encoding, and the cases that must stay identity
(no-transform, already encoded, ranges, small bodies, other media types,
uncacheable responses). Bodies are decoded with the reference libraries
(zlib, brotli, zstandard) to prove the bytes are right.
"""
import gzip
import http.client
import http.server
import re
import threading

import brotli
import zstandard

from conftest import free_port
from test_http import get, raw, start_proxy

TEXT = b"".join(b"<p>line %d of a compressible page, said again and again</p>\n" % i
                for i in range(60))


class TextBackend:
    """Serves a few fixed representations; counts requests per path."""

    def __init__(self):
        self.port = free_port()
        self.hits = {}
        self.lock = threading.Lock()
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                with owner.lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                p, body = self.path, TEXT
                hdrs = [("Content-Type", "text/html; charset=utf-8"),
                        ("Cache-Control", "max-age=60"), ("ETag", '"t1"')]
                if p == "/notransform":
                    hdrs[1] = ("Cache-Control", "max-age=60, no-transform")
                elif p == "/encoded":
                    body = gzip.compress(TEXT)
                    hdrs.append(("Content-Encoding", "gzip"))
                    hdrs.append(("Vary", "Accept-Encoding"))
                elif p == "/small":
                    body = b"tiny text"
                elif p == "/png":
                    hdrs[0] = ("Content-Type", "image/png")
                elif p == "/private":
                    hdrs[1] = ("Cache-Control", "private, max-age=60")
                elif p == "/weak":
                    hdrs[2] = ("ETag", 'W/"w1"')
                elif p == "/json":
                    hdrs[0] = ("Content-Type", "application/problem+json")
                    body = b'{"k": "%s"}' % (b"v" * 2000)
                self.send_response(200)
                for k, v in hdrs:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        class S(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.srv = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


DECODE = {"gzip": gzip.decompress, "br": brotli.decompress,
          "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}


def ae(port, path, accept, conn=None, **kw):
    headers = dict(kw.pop("headers", {}))
    if accept is not None:
        headers["Accept-Encoding"] = accept
    return get(port, path, headers=headers, conn=conn, **kw)


def vary_names(h):
    return [v.strip().lower() for v in h.get("vary", "").split(",") if v.strip()]


def test_negotiated_variants_are_built_once_and_cached(hotpath_factory):
    b = TextBackend()
    try:
        d = start_proxy(hotpath_factory, [b])
        port = d.http_port
        # the miss is compressed on the way (chunked, weak tag: streamed bytes
        # differ from the variant built later) and stored as identity
        st, h, body = ae(port, "/page", "gzip")
        assert st == 200 and h["content-encoding"] == "gzip" and gzip.decompress(body) == TEXT
        assert h["transfer-encoding"] == "chunked" and "content-length" not in h
        assert h["etag"] == 'W/"t1-gzip"'
        assert "accept-encoding" in vary_names(h)
        assert h["cache-status"].startswith("hotpath; fwd=uri-miss; stored")
        # identity hit without Accept-Encoding
        st, h, body = ae(port, "/page", None)
        assert body == TEXT and "content-encoding" not in h and h["etag"] == '"t1"'
        assert "accept-encoding" in vary_names(h)
        for coding in ("gzip", "br", "zstd"):
            for round_ in range(2):
                st, h, body = ae(port, "/page", coding)
                assert st == 200, (coding, st)
                assert h["content-encoding"] == coding
                assert DECODE[coding](body) == TEXT
                assert len(body) < len(TEXT) // 3
                assert int(h["content-length"]) == len(body)
                assert h["etag"] == '"t1-%s"' % coding
                assert "accept-encoding" in vary_names(h)
                assert h["cache-status"].startswith("hotpath; hit")
        assert b.count("/page") == 1
        # q-values pick the highest; equal ones follow http.compress's order
        assert ae(port, "/page", "gzip;q=0.5, br;q=0.8, zstd;q=0.1")[1]["content-encoding"] == "br"
        assert ae(port, "/page", "gzip, zstd")[1]["content-encoding"] == "zstd"
        assert ae(port, "/page", "gzip, br, zstd")[1]["content-encoding"] == "br"
        assert ae(port, "/page", "x-gzip")[1]["content-encoding"] == "gzip"
        assert ae(port, "/page", "*;q=0.3, br;q=0")[1]["content-encoding"] == "zstd"
        # refusals and junk: identity
        for accept in ("gzip;q=0", "identity", "deflate", "", "gzip;q=2", "gzip;level=1",
                       "gz ip", "*;q=0, identity;q=0.5"):
            st, h, body = ae(port, "/page", accept)
            assert st == 200 and body == TEXT and "content-encoding" not in h, accept
        # identity refused and nothing we offer accepted: identity anyway
        st, h, body = ae(port, "/page", "identity;q=0, deflate")
        assert body == TEXT and "content-encoding" not in h
        # a conditional with the variant's tag gets a 304 naming it; the weak
        # tag of the streamed copy matches it too (weak comparison)
        st, h, body = ae(port, "/page", "gzip", headers={"If-None-Match": '"t1-gzip"'})
        assert st == 304 and h["etag"] == '"t1-gzip"' and body == b""
        st, h, body = ae(port, "/page", "gzip", headers={"If-None-Match": 'W/"t1-gzip"'})
        assert st == 304
        # ... and the identity tag does not match the gzip representation
        st, h, body = ae(port, "/page", "gzip", headers={"If-None-Match": '"t1"'})
        assert st == 200 and h["content-encoding"] == "gzip"
        # ranges are served from the identity bytes
        st, h, body = ae(port, "/page", "gzip", headers={"Range": "bytes=0-9"})
        assert st == 206 and body == TEXT[:10] and "content-encoding" not in h
        # HEAD describes the compressed representation
        st, h, body = ae(port, "/page", "br", method="HEAD")
        assert st == 200 and body == b"" and h["content-encoding"] == "br"
        assert int(h["content-length"]) < len(TEXT) // 3
        # weak tags stay weak; structured-syntax media types are compressed
        assert ae(port, "/weak", None)[1]["etag"] == 'W/"w1"'
        assert ae(port, "/weak", "gzip")[1]["etag"] == 'W/"w1-gzip"'
        ae(port, "/json", None)
        st, h, body = ae(port, "/json", "zstd")
        assert h["cache-status"].startswith("hotpath; hit")
        assert h["content-encoding"] == "zstd" and DECODE["zstd"](body).startswith(b'{"k"')
        # stats: each variant built once, bandwidth saved counted
        st, doc = d.api_json("GET", "/api/v2/backends", token_name="reader")
        comp = doc["compression"]
        assert comp["responses"]["gzip"] >= 3 and comp["responses"]["br"] >= 4
        assert comp["built"] == 5, comp           # page x3, weak gzip, json zstd
        assert comp["streamed"] == 1, comp        # the first miss
        assert comp["saved_bytes"] > 5 * len(TEXT)
        assert comp["in_bytes"] > comp["out_bytes"] > 0
        assert d.metric("hotpath_http_compressed_total", {"coding": "gzip"}) >= 3
        assert d.metric("hotpath_http_compression_saved_bytes_total") > 0
        # purging the URL purges its variants with it
        d.redis().delete("http:GET:127.0.0.1:%d/page" % port)
        st, h, body = ae(port, "/page", "gzip")
        assert h["cache-status"].startswith("hotpath; fwd=uri-miss") and b.count("/page") == 2
        assert h["etag"] == 'W/"t1-gzip"'
        st, h, body = ae(port, "/page", "gzip")
        assert h["content-encoding"] == "gzip" and DECODE["gzip"](body) == TEXT
    finally:
        b.stop()


def test_what_is_never_compressed(hotpath_factory):
    b = TextBackend()
    try:
        d = start_proxy(hotpath_factory, [b])
        port = d.http_port
        for path in ("/notransform", "/small", "/png"):
            for _ in range(2):
                st, h, body = ae(port, path, "gzip, br, zstd")
                assert st == 200 and "content-encoding" not in h, path
                assert body == (b"tiny text" if path == "/small" else TEXT), path
                assert "accept-encoding" not in vary_names(h), path
        # already encoded by the backend: passed through as it came, once Varied
        for _ in range(2):
            st, h, body = ae(port, "/encoded", "gzip")
            assert h["content-encoding"] == "gzip" and gzip.decompress(body) == TEXT
            assert vary_names(h).count("accept-encoding") == 1
        # a response that is never stored is compressed on the way, every time
        for coding in ("gzip", "br", "zstd"):
            st, h, body = ae(port, "/private", coding)
            assert h["content-encoding"] == coding and DECODE[coding](body) == TEXT
            assert "accept-encoding" in vary_names(h)
            assert h["cache-status"].startswith("hotpath; fwd=uri-miss")
        st, h, body = ae(port, "/private", None)
        assert body == TEXT and "content-encoding" not in h
        assert "accept-encoding" in vary_names(h)
        # HTTP/1.0 gets it close-delimited
        out = raw(port, b"GET /private HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
        head, _, payload = out.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head and b"Transfer-Encoding" not in head
        assert gzip.decompress(payload) == TEXT
        st, doc = d.api_json("GET", "/api/v2/backends", token_name="reader")
        assert doc["compression"]["built"] == 0
        assert doc["compression"]["streamed"] == 4
    finally:
        b.stop()


def start_with(factory, b, http_extra):
    d = factory(ini_extra="""
[http]
listen = 127.0.0.1:0
upstream = web
%s
[upstream.web]
servers = 127.0.0.1:%d
""" % (http_extra, b.port))
    m = re.search(r"http: proxy on port (\d+)", d.log_text())
    assert m, d.log_text()
    return int(m.group(1))


def test_compression_settings(hotpath_factory):
    b = TextBackend()
    try:
        port = start_with(hotpath_factory, b, "compress = gzip\ncompress_level_gzip = 9\n")
        ae(port, "/page", None)
        assert ae(port, "/page", "br")[1].get("content-encoding") is None
        st, h, body = ae(port, "/page", "br, gzip;q=0.1")
        assert h["content-encoding"] == "gzip" and gzip.decompress(body) == TEXT
        port = start_with(hotpath_factory, b, "compress =\n")
        for _ in range(2):
            st, h, body = ae(port, "/page", "gzip")
            assert body == TEXT and "vary" not in h and "content-encoding" not in h
        port = start_with(hotpath_factory, b, "compress_min_size = 64kb\n")
        for _ in range(2):
            st, h, body = ae(port, "/page", "gzip")
            assert "content-encoding" not in h
        # no streaming encoders: misses go out identity, hits compressed
        port = start_with(hotpath_factory, b, "compress_streams = 0\n")
        st, h, body = ae(port, "/page", "gzip")
        assert "content-encoding" not in h and "accept-encoding" in vary_names(h)
        st, h, body = ae(port, "/page", "gzip")
        assert h["content-encoding"] == "gzip"
    finally:
        b.stop()
