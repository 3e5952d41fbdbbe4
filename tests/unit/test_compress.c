/*
 * test_compress.c - Accept-Encoding parsing and negotiation (RFC 9110
 * 12.5.3), media-type filter, derived ETags, the encoders (decoded back
 * with the reference decoders) and the compressed stored object.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>
#include "hotpath/compress.h"
#include "hotpath/http_cache.h"

static const enum hc_coding pref[] = { HC_CODING_BR, HC_CODING_ZSTD, HC_CODING_GZIP };

/* The coding chosen for a header value, or -1 if it does not parse. */
static int choose(const char *v)
{
	struct compress_accept a;
	const char *why = NULL;

	compress_accept_init(&a);
	if (compress_accept_parse(&a, v, strlen(v), &why) != 0) {
		assert_non_null(why);
		return -1;
	}
	return (int)compress_choose(&a, pref, 3);
}

static void test_negotiation_table(void **state)
{
	static const struct { const char *v; int want; } cases[] = {
		{ "", HC_CODING_IDENTITY },                /* empty: no coding wanted */
		{ "gzip", HC_CODING_GZIP },
		{ "GZip", HC_CODING_GZIP },                /* codings are case-insensitive */
		{ "x-gzip", HC_CODING_GZIP },
		{ "gzip, deflate, br, zstd", HC_CODING_BR },   /* ties: server order */
		{ "gzip, zstd", HC_CODING_ZSTD },
		{ "gzip;q=0.5, br;q=0.8, zstd;q=0.1", HC_CODING_BR },
		{ "gzip;q=1.0, br;q=0.999", HC_CODING_GZIP },
		{ "gzip ; q=0.7 ,br;Q=0.2", HC_CODING_GZIP },
		{ "gzip;q=0", HC_CODING_IDENTITY },
		{ "br;q=0, gzip", HC_CODING_GZIP },
		{ "*", HC_CODING_BR },
		{ "*;q=0.3, br;q=0", HC_CODING_ZSTD },     /* star covers what is not named */
		{ "*;q=0", HC_CODING_IDENTITY },
		{ "identity", HC_CODING_IDENTITY },
		{ "identity;q=1, gzip;q=0.5", HC_CODING_IDENTITY },
		{ "identity;q=0.2, gzip;q=0.5", HC_CODING_GZIP },
		{ "identity;q=0, deflate", HC_CODING_IDENTITY },  /* nothing offered fits */
		{ "deflate, compress", HC_CODING_IDENTITY },
		{ "gzip;q=0.5, gzip;q=0", HC_CODING_GZIP },  /* first weight wins */
		{ ",, gzip ,", HC_CODING_GZIP },          /* empty list elements are allowed */
		{ "gzip;q=1.", HC_CODING_GZIP },           /* "1." is a valid qvalue */
		{ "gzip;q=0.", HC_CODING_IDENTITY },       /* and "0." is zero */
		/* malformed */
		{ "gzip;q=2", -1 }, { "gzip;q=1.001", -1 }, { "gzip;q=0.0001", -1 },
		{ "gzip;q=", -1 }, { "gzip;q=.5", -1 }, { "gzip;level=1", -1 },
		{ "gzip br", -1 }, { "gz\"ip", -1 }, { "gzip;", -1 }, { ";q=1", -1 },
		{ "gzip;q=0.5x", -1 }, { "gzip;q=-1", -1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = choose(cases[i].v);

		if (got != cases[i].want)
			fail_msg("'%s': got %d, want %d", cases[i].v, got, cases[i].want);
	}
}

static void test_accept_bounds_and_lines(void **state)
{
	struct compress_accept a;
	const char *why = NULL;
	char *big = malloc(COMPRESS_ACCEPT_MAX + 2);

	(void)state;
	memset(big, ' ', COMPRESS_ACCEPT_MAX + 1);
	memcpy(big, "gzip", 4);
	big[COMPRESS_ACCEPT_MAX + 1] = '\0';
	compress_accept_init(&a);
	assert_int_equal(compress_accept_parse(&a, big, COMPRESS_ACCEPT_MAX + 1, &why), -EINVAL);
	assert_string_equal(why, "Accept-Encoding value too long");
	free(big);
	/* two field lines form one list */
	compress_accept_init(&a);
	assert_int_equal(compress_accept_parse(&a, "gzip;q=0.2", 10, &why), 0);
	assert_int_equal(compress_accept_parse(&a, "zstd;q=0.4", 10, &why), 0);
	assert_int_equal(a.q[HC_CODING_GZIP], 200);
	assert_int_equal(a.q[HC_CODING_ZSTD], 400);
	assert_int_equal(a.q[HC_CODING_BR], -1);
	assert_int_equal(compress_choose(&a, pref, 3), HC_CODING_ZSTD);
	/* only offered codings are chosen */
	assert_int_equal(compress_choose(&a, pref + 2, 1), HC_CODING_GZIP);
	/* the value is length-delimited: bytes past n are not read */
	compress_accept_init(&a);
	assert_int_equal(compress_accept_parse(&a, "gzip;q=0.5XXXX", 10, &why), 0);
	assert_int_equal(a.q[HC_CODING_GZIP], 500);
}

static void test_options_and_types(void **state)
{
	struct compress_options o;
	const char *why = NULL;

	(void)state;
	compress_options_default(&o);
	assert_int_equal(compress_parse_list(&o, "gzip, zstd", &why), 0);
	assert_int_equal(o.npref, 2);
	assert_int_equal(o.pref[0], HC_CODING_GZIP);
	assert_int_equal(o.pref[1], HC_CODING_ZSTD);
	assert_int_equal(compress_parse_list(&o, "", &why), 0);
	assert_int_equal(o.npref, 0);
	assert_int_equal(compress_parse_list(&o, "gzip,deflate", &why), -EINVAL);
	assert_string_equal(why, "unknown coding (gzip, br and zstd are offered)");
	assert_int_equal(compress_parse_list(&o, "gzip,x-gzip", &why), -EINVAL);
	assert_string_equal(why, "a coding is named twice");
	assert_int_equal(compress_parse_list(&o, "identity", &why), -EINVAL);

	compress_options_default(&o);
	assert_true(compress_type_ok("text/html; charset=utf-8", 24, o.types));
	assert_true(compress_type_ok("Text/CSS", 8, o.types));
	assert_true(compress_type_ok(" application/json ", 18, o.types));
	assert_true(compress_type_ok("application/problem+json", 24, o.types));
	assert_true(compress_type_ok("image/svg+xml", 13, o.types));
	assert_false(compress_type_ok("image/png", 9, o.types));
	assert_false(compress_type_ok("application/octet-stream", 24, o.types));
	assert_false(compress_type_ok("", 0, o.types));
	assert_false(compress_type_ok("; charset=x", 11, o.types));
}

static void test_etag(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(compress_etag("\"abc\"", 5, HC_CODING_GZIP, out, sizeof(out)), 10);
	assert_string_equal(out, "\"abc-gzip\"");
	assert_int_equal(compress_etag("W/\"x\"", 5, HC_CODING_BR, out, sizeof(out)), 8);
	assert_string_equal(out, "W/\"x-br\"");
	assert_int_equal(compress_etag("\"\"", 2, HC_CODING_ZSTD, out, sizeof(out)), 7);
	assert_string_equal(out, "\"-zstd\"");
	/* malformed tags, or no room: no tag */
	assert_int_equal(compress_etag("abc", 3, HC_CODING_GZIP, out, sizeof(out)), 0);
	assert_int_equal(compress_etag("\"a\"b\"", 5, HC_CODING_GZIP, out, sizeof(out)), 0);
	assert_int_equal(compress_etag("\"a b\"", 5, HC_CODING_GZIP, out, sizeof(out)), 0);
	assert_int_equal(compress_etag("W/", 2, HC_CODING_GZIP, out, sizeof(out)), 0);
	assert_int_equal(compress_etag("\"abc\"", 5, HC_CODING_GZIP, out, 10), 0);
}

static size_t decode(enum hc_coding c, const char *in, size_t n, char *out, size_t cap)
{
	switch (c) {
	case HC_CODING_GZIP: {
		z_stream z;
		size_t got;

		memset(&z, 0, sizeof(z));
		assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
		z.next_in = (Bytef *)(uintptr_t)in;
		z.avail_in = (uInt)n;
		z.next_out = (Bytef *)out;
		z.avail_out = (uInt)cap;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		got = cap - z.avail_out;
		inflateEnd(&z);
		return got;
	}
	case HC_CODING_BR: {
		size_t got = cap;

		assert_int_equal(BrotliDecoderDecompress(n, (const uint8_t *)in, &got,
							 (uint8_t *)out), BROTLI_DECODER_RESULT_SUCCESS);
		return got;
	}
	case HC_CODING_ZSTD: {
		size_t got = ZSTD_decompress(out, cap, in, n);

		assert_false(ZSTD_isError(got));
		return got;
	}
	default:
		fail();
	}
	return 0;
}

static void test_encoders_round_trip_and_no_gain(void **state)
{
	size_t n = 100000;
	char *text = malloc(n), *back = malloc(n + 16), *noise = malloc(4096);
	uint64_t x = 88172645463325252ull;

	(void)state;
	for (size_t i = 0; i < n; i++)
		text[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
	for (size_t i = 0; i < 4096; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;     /* xorshift: incompressible */
		noise[i] = (char)x;
	}
	for (enum hc_coding c = HC_CODING_GZIP; c < HC_CODINGS; c++) {
		struct buf out;
		int level = c == HC_CODING_GZIP ? 6 : c == HC_CODING_BR ? 5 : 3;

		buf_init(&out, n);
		assert_int_equal(compress_encode(c, level, text, n, &out), 0);
		assert_true(buf_used(&out) < n / 50);
		assert_int_equal(decode(c, buf_head(&out), buf_used(&out), back, n + 16), n);
		assert_memory_equal(back, text, n);
		buf_free(&out);
		/* random bytes do not shrink: -ENOSPC, nothing appended */
		buf_init(&out, 1 << 20);
		assert_int_equal(compress_encode(c, level, noise, 4096, &out), -ENOSPC);
		assert_int_equal(buf_used(&out), 0);
		/* too small to gain anything */
		assert_int_equal(compress_encode(c, level, "aaaaaaaa", 8, &out), -ENOSPC);
		buf_free(&out);
		/* the output bound is respected */
		buf_init(&out, 100);
		assert_int_equal(compress_encode(c, level, text, n, &out), -ENOBUFS);
		buf_free(&out);
	}
	{
		struct buf out;

		buf_init(&out, n);
		assert_int_equal(compress_encode(HC_CODING_IDENTITY, 1, text, n, &out), -EINVAL);
		buf_free(&out);
	}
	free(text);
	free(back);
	free(noise);
}

static void test_stream_round_trip(void **state)
{
	size_t n = 200000;
	char *text = malloc(n), *back = malloc(n + 16);

	(void)state;
	for (size_t i = 0; i < n; i++)
		text[i] = "stream me, stream me again; "[i % 28];
	for (enum hc_coding c = HC_CODING_GZIP; c < HC_CODINGS; c++) {
		struct compress_stream *zs = compress_stream_new(c, 3);
		struct buf out, all;
		size_t off = 0, piece = 1;

		assert_non_null(zs);
		buf_init(&all, n);
		buf_init(&out, 1 << 20);
		/* uneven pieces, and an empty feed in the middle */
		while (off < n) {
			size_t k = piece < n - off ? piece : n - off;

			buf_reset(&out);
			assert_int_equal(compress_stream_feed(zs, text + off, k, false, &out), 0);
			/* every feed is flushed: something comes out for it */
			assert_true(buf_used(&out) > 0);
			assert_int_equal(buf_append(&all, buf_head(&out), buf_used(&out)), 0);
			off += k;
			piece = piece * 7 + 3;
		}
		buf_reset(&out);
		assert_int_equal(compress_stream_feed(zs, NULL, 0, false, &out), 0);
		assert_int_equal(buf_append(&all, buf_head(&out), buf_used(&out)), 0);
		buf_reset(&out);
		assert_int_equal(compress_stream_feed(zs, NULL, 0, true, &out), 0);
		assert_int_equal(buf_append(&all, buf_head(&out), buf_used(&out)), 0);
		/* finished: more input is refused, an empty finish is a no-op */
		assert_int_equal(compress_stream_feed(zs, "x", 1, false, &out), -EINVAL);
		assert_int_equal(compress_stream_feed(zs, NULL, 0, true, &out), 0);
		assert_true(buf_used(&all) < n / 20);
		assert_int_equal(decode(c, buf_head(&all), buf_used(&all), back, n + 16), n);
		assert_memory_equal(back, text, n);
		compress_stream_free(zs);
		buf_free(&out);
		buf_free(&all);
	}
	assert_null(compress_stream_new(HC_CODING_IDENTITY, 1));
	compress_stream_free(NULL);
	free(text);
	free(back);
}

static void test_encoded_object(void **state)
{
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			   "Cache-Control: max-age=60\r\nETag: \"e1\"\r\nContent-Length: 5\r\n\r\n";
	struct http_limits lim;
	struct http_msg m;
	struct http_cc cc;
	struct buf id, enc;
	struct hc_view v, ev;
	struct hc_obj o;

	(void)state;
	http_limits_default(&lim);
	assert_int_equal(http_parse_head(resp, strlen(resp), false, HTTP_M_GET, &lim, &m),
			 HTTP_PARSE_OK);
	http_cc_parse(&m, &cc);
	buf_init(&id, 1 << 16);
	assert_int_equal(hc_build(&id, &m, &cc, "hello", 5, 1000, 1001, false, "sig", 3), 0);
	memcpy(&o, buf_head(&id), sizeof(o));
	o.flags |= HC_F_COMPRESSIBLE | HC_F_VARY_AE;
	memcpy(buf_head(&id), &o, sizeof(o));
	assert_int_equal(hc_view(buf_head(&id), buf_used(&id), &v), 0);
	buf_init(&enc, 1 << 16);
	assert_int_equal(hc_build_encoded(&enc, &v, "gzip", "\"e1-gzip\"", 9, "XY", 2), 0);
	assert_int_equal(hc_view(buf_head(&enc), buf_used(&enc), &ev), 0);
	assert_true(ev.o->flags & HC_F_COMPRESSED);
	assert_false(ev.o->flags & (HC_F_COMPRESSIBLE | HC_F_VARY_AE));
	assert_int_equal(ev.o->lifetime, 60);
	assert_int_equal(ev.o->response_time, 1001);
	assert_int_equal(ev.o->body_len, 2);
	assert_memory_equal(ev.body, "XY", 2);
	assert_int_equal(ev.o->vary_len, 3);
	assert_memory_equal(ev.vary_sig, "sig", 3);
	assert_int_equal(ev.o->etag_len, 9);
	assert_memory_equal(ev.head + ev.o->etag_off, "\"e1-gzip\"", 9);
	assert_non_null(memmem(ev.head, ev.o->head_len, "Content-Encoding: gzip\r\n", 24));
	assert_non_null(memmem(ev.head, ev.o->head_len, "Vary: Accept-Encoding\r\n", 23));
	assert_null(memmem(ev.head, ev.o->head_len, "\"e1\"", 4));
	assert_non_null(memmem(ev.head, ev.o->head_len, "Content-Type: text/plain\r\n", 26));
	buf_free(&enc);
	/* no tag when the identity's could not be derived */
	buf_init(&enc, 1 << 16);
	assert_int_equal(hc_build_encoded(&enc, &v, "br", NULL, 0, "XY", 2), 0);
	assert_int_equal(hc_view(buf_head(&enc), buf_used(&enc), &ev), 0);
	assert_int_equal(ev.o->etag_len, 0);
	assert_null(memmem(ev.head, ev.o->head_len, "ETag", 4));
	buf_free(&enc);
	/* no-transform is seen */
	{
		const char *r2 = "HTTP/1.1 200 OK\r\nCache-Control: max-age=1, no-transform\r\n"
				 "Content-Length: 0\r\n\r\n";

		assert_int_equal(http_parse_head(r2, strlen(r2), false, HTTP_M_GET, &lim, &m),
				 HTTP_PARSE_OK);
		http_cc_parse(&m, &cc);
		assert_true(cc.no_transform);
	}
	buf_free(&id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiation_table),
		cmocka_unit_test(test_accept_bounds_and_lines),
		cmocka_unit_test(test_options_and_types),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_encoders_round_trip_and_no_gain),
		cmocka_unit_test(test_stream_round_trip),
		cmocka_unit_test(test_encoded_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
