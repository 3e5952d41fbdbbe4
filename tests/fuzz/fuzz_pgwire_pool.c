/*
 * fuzz_pgwire_pool.c - libFuzzer target for what the PostgreSQL pooler
 * parses from the network and from its auth_file.
 *
 * The first byte picks a mode: 0 a client's byte stream (startup-phase
 * packets, then regular messages through pgw_frame with the readers the
 * pooler uses on Parse/Bind/Describe/Close, the result cache's reader of a
 * whole request, and rewriting them as the
 * pooler would), 1 a server's stream driving the response queue
 * (pgs_q_on_server) after a fixed set of pushes, 2 the auth_file parser,
 * 3 SCRAM messages to the server side. Checks beyond memory safety: a
 * frame never claims less than its header, and a rewritten Parse/Bind
 * re-reads to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/pgauth.h"
#include "hotpath/pgstmt.h"
#include "hotpath/pgwire.h"

static void client_stream(const uint8_t *d, size_t n)
{
	struct pgw_startup st;
	const char *why;
	struct buf out;
	size_t off = 0;
	int k;

	buf_init(&out, 1 << 16);
	for (int i = 0; i < 4; i++) {
		k = pgw_startup_parse(d + off, n - off, &st, &why);
		if (k <= 0)
			break;
		off += (size_t)k;
		if (st.code == PGW_PROTO_V3)
			break;
	}
	while (off < n) {
		size_t total;
		char type;
		const uint8_t *m = d + off;
		struct pgw_batch bt;

		/* the result cache's look at a whole request from here */
		if (pgw_parse_batch(m, n - off, 1 << 16, &bt) == 1 &&
		    (bt.total > n - off || !bt.bind.stmt || !bt.portal ||
		     (bt.desc && !bt.desc_name) || (bt.has_parse && !bt.parse.rest)))
			abort();

		if (pgw_frame(m, n - off, 1 << 16, &type, &total) != 0 || total > n - off)
			break;
		if (total < PGW_HDR)
			abort();
		buf_reset(&out);
		if (type == 'P') {
			struct pgw_parse p, q;

			if (pgw_parse_parse(m + 5, total - 5, &p) == 0 &&
			    pgw_put_parse(&out, "hp_0123", p.rest, p.rest_len) == 0) {
				if (pgw_parse_parse((const uint8_t *)buf_head(&out) + 5,
						    buf_used(&out) - 5, &q) != 0 ||
				    q.rest_len != p.rest_len || strcmp(q.name, "hp_0123"))
					abort();
			}
		} else if (type == 'B') {
			struct pgw_bind b, c;

			if (pgw_parse_bind(m + 5, total - 5, &b) == 0 &&
			    pgw_put_bind(&out, b.portal, "hp_1", b.rest, b.rest_len) == 0) {
				if (pgw_parse_bind((const uint8_t *)buf_head(&out) + 5,
						   buf_used(&out) - 5, &c) != 0 ||
				    c.rest_len != b.rest_len || strcmp(c.stmt, "hp_1"))
					abort();
			}
		} else if (type == 'D' || type == 'C') {
			struct pgw_target t;

			(void)pgw_parse_target(m + 5, total - 5, &t);
		} else if (type == 'E' || type == 'N') {
			(void)pgw_error_field(m + 5, total - 5, 'M');
		}
		off += total;
	}
	buf_free(&out);
}

static void server_stream(const uint8_t *d, size_t n)
{
	static const enum pgs_kind kinds[] = { PGS_PARSE, PGS_PARSE_HIDDEN, PGS_BIND,
		PGS_PARSE_FAKE, PGS_DESC_STMT, PGS_EXECUTE, PGS_CLOSE_HIDDEN, PGS_SYNC,
		PGS_QUERY, PGS_QUERY_HIDDEN, PGS_DESC_PORTAL, PGS_CLOSE_FAKE, PGS_SYNC };
	struct pgs_set s;
	struct pgs_queue q;
	struct buf out;

	if (pgs_set_init(&s, 2) || pgs_q_init(&q, 8, &s))
		abort();
	buf_init(&out, 4096);
	for (size_t i = 0; i < n; i++) {
		uint64_t done;
		bool herr;

		if (d[i] & 0x80) {
			struct pgs_id id = pgs_id_of(&d[i], 1);

			(void)!pgs_q_push(&q, kinds[d[i] % HP_ARRAY_SIZE(kinds)], &id, 1);
			pgs_set_add(&s, &id, false, &id);
		} else {
			(void)pgs_q_on_server(&q, (char)d[i], &done, &herr);
		}
		(void)!pgs_q_drain_fake(&q, &out);
		buf_reset(&out);
		if (q.n > q.cap || s.n >= s.cap)
			abort();
	}
	buf_free(&out);
	pgs_q_free(&q);
	pgs_set_free(&s);
}

static void scram_msgs(const uint8_t *d, size_t n)
{
	static struct pga_scram_secret sec;
	static int init;
	struct pga_scram_server sv;
	char out[PGA_MSG_MAX];
	size_t cut = n ? d[0] % (n + 1) : 0;

	if (!init) {
		init = 1;
		if (pga_scram_make_secret("pw", (const uint8_t *)"salt", 4, 16, &sec))
			abort();
	}
	if (pga_scram_server_first(&sv, &sec, (const char *)d, cut, "SN", out, sizeof(out)) > 0)
		(void)pga_scram_server_final(&sv, (const char *)d + cut, n - cut, out, sizeof(out),
					     NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct pga_userlist *l;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		client_stream(data + 1, size - 1);
		break;
	case 1:
		server_stream(data + 1, size - 1);
		break;
	case 2:
		l = pga_userlist_parse((const char *)data + 1, size - 1, "fuzz", err, sizeof(err));
		pga_userlist_free(l);
		break;
	default:
		scram_msgs(data + 1, size - 1);
		break;
	}
	return 0;
}
