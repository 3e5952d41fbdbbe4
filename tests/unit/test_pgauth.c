/*
 * test_pgauth.c - SCRAM-SHA-256 (the RFC 7677 test vector, both roles
 * talking to each other, refusals), md5 hashing and the auth_file parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/pgauth.h"

#define MD5_RESP "md5bb41a296aab6baccb36ff243a562abff"
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_FIRST "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void rfc_secret(struct pga_scram_secret *s)
{
	static const unsigned char salt[] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
					      0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };

	assert_int_equal(pga_scram_make_secret("pencil", salt, sizeof(salt), 4096, s), 0);
}

static void test_scram_rfc7677_server(void **state)
{
	struct pga_scram_secret sec;
	struct pga_scram_server sv;
	char out[PGA_MSG_MAX];
	int n;

	(void)state;
	rfc_secret(&sec);
	n = pga_scram_server_first(&sv, &sec, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
				   RFC_SNONCE, out, sizeof(out));
	assert_int_equal(n, (int)strlen(RFC_SERVER_FIRST));
	assert_string_equal(out, RFC_SERVER_FIRST);
	n = pga_scram_server_final(&sv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
				   sizeof(out), NULL);
	assert_int_equal(n, (int)strlen(RFC_SERVER_FINAL));
	assert_string_equal(out, RFC_SERVER_FINAL);
}

static void test_scram_secret_text(void **state)
{
	struct pga_scram_secret a, b;

	(void)state;
	rfc_secret(&a);
	/* the same verifier as PostgreSQL prints it in pg_authid */
	assert_int_equal(pga_scram_parse_secret("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", &b), 0);
	assert_int_equal(b.iterations, 4096);
	assert_memory_equal(a.salt, b.salt, 16);
	assert_memory_equal(a.stored_key, b.stored_key, PGA_KEY_LEN);
	assert_memory_equal(a.server_key, b.server_key, PGA_KEY_LEN);
	assert_int_equal(pga_scram_parse_secret("SCRAM-SHA-256$0:AAAA$x:y", &b), -EINVAL);
	assert_int_equal(pga_scram_parse_secret("SCRAM-SHA-256$4096:W22Z$short:short", &b), -EINVAL);
	assert_int_equal(pga_scram_parse_secret("md5abc", &b), -EINVAL);
}

static void test_scram_roundtrip_and_refusals(void **state)
{
	static const unsigned char salt[] = "0123456789abcdef";
	struct pga_scram_secret sec;
	struct pga_scram_server sv;
	struct pga_scram_client cl;
	char c1[PGA_MSG_MAX], s1[PGA_MSG_MAX], c2[PGA_MSG_MAX], s2[PGA_MSG_MAX];
	int n1, n2, n3, n4;

	(void)state;
	assert_int_equal(pga_scram_make_secret("s3cret", salt, 16, 4096, &sec), 0);
	n1 = pga_scram_client_first(&cl, NULL, c1, sizeof(c1));
	assert_true(n1 > 0);
	n2 = pga_scram_server_first(&sv, &sec, c1, (size_t)n1, NULL, s1, sizeof(s1));
	assert_true(n2 > 0);
	n3 = pga_scram_client_final(&cl, "s3cret", s1, (size_t)n2, c2, sizeof(c2));
	assert_true(n3 > 0);
	n4 = pga_scram_server_final(&sv, c2, (size_t)n3, s2, sizeof(s2), NULL);
	assert_true(n4 > 0);
	assert_int_equal(pga_scram_client_verify(&cl, s2, (size_t)n4), 0);

	/* wrong password: the server refuses with -EACCES */
	n1 = pga_scram_client_first(&cl, NULL, c1, sizeof(c1));
	n2 = pga_scram_server_first(&sv, &sec, c1, (size_t)n1, NULL, s1, sizeof(s1));
	n3 = pga_scram_client_final(&cl, "wrong", s1, (size_t)n2, c2, sizeof(c2));
	assert_int_equal(pga_scram_server_final(&sv, c2, (size_t)n3, s2, sizeof(s2), NULL),
			 -EACCES);
	/* channel binding asked, authzid, malformed */
	assert_int_equal(pga_scram_server_first(&sv, &sec, "p=tls-server-end-point,,n=,r=x", 30,
						NULL, s1, sizeof(s1)), -EOPNOTSUPP);
	assert_int_equal(pga_scram_server_first(&sv, &sec, "n,a=bob,n=,r=x", 14, NULL, s1,
						sizeof(s1)), -EPROTO);
	assert_int_equal(pga_scram_server_first(&sv, &sec, "n,,n=,r=", 8, NULL, s1, sizeof(s1)),
			 -EPROTO);
	/* a server that does not extend our nonce is refused */
	n1 = pga_scram_client_first(&cl, "abc", c1, sizeof(c1));
	assert_int_equal(pga_scram_client_final(&cl, "x", "r=zzz,s=AAAA,i=4096", 19, c2,
						sizeof(c2)), -EPROTO);
}

static void test_md5(void **state)
{
	static const unsigned char salt[4] = { 1, 2, 3, 4 };
	char stored[36], resp[36];

	(void)state;
	pga_md5_stored("postgres", "secret", stored);
	/* SELECT 'md5' || md5('secretpostgres') */
	assert_string_equal(stored, "md553f48b7c4b76a86ce72276c5755f217d");
	pga_md5_response(stored, salt, resp);
	/* 'md5' || md5('53f48b7c4b76a86ce72276c5755f217d' || E'\\x01020304') */
	assert_string_equal(resp, MD5_RESP);
}

static void test_userlist(void **state)
{
	static const char text[] =
		"# comment\n"
		"; also a comment\n"
		"\n"
		"\"alice\" \"plain pass\"\n"
		"\"bob\" \"md5aabbccddeeff00112233445566778899\" extra ignored\n"
		"\"car\"\"ol\" \"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\"\r\n";
	char err[256];
	struct pga_userlist *l = pga_userlist_parse(text, sizeof(text) - 1, "u.txt", err,
						    sizeof(err));
	const struct pga_user *u;

	(void)state;
	assert_non_null(l);
	assert_int_equal(pga_userlist_count(l), 3);
	u = pga_userlist_find(l, "alice");
	assert_non_null(u);
	assert_int_equal(u->kind, PGA_PLAIN);
	assert_string_equal(u->pass, "plain pass");
	assert_int_equal(u->scram.iterations, 4096);      /* derived once at load */
	u = pga_userlist_find(l, "bob");
	assert_int_equal(u->kind, PGA_MD5);
	u = pga_userlist_find(l, "car\"ol");
	assert_non_null(u);
	assert_int_equal(u->kind, PGA_SCRAM);
	assert_null(pga_userlist_find(l, "nobody"));
	pga_userlist_free(l);

	assert_null(pga_userlist_parse("\"a\" \"x\"\n\"a\" \"y\"\n", 16, "u", err, sizeof(err)));
	assert_string_equal(err, "u:2: user listed twice");
	assert_null(pga_userlist_parse("alice secret\n", 13, "u", err, sizeof(err)));
	assert_string_equal(err, "u:1: expected a \"quoted\" field");
	assert_null(pga_userlist_parse("\"a\" \"open\n", 10, "u", err, sizeof(err)));
	assert_string_equal(err, "u:1: unterminated quote");
	assert_null(pga_userlist_parse("\"a\" \"SCRAM-SHA-256$bad\"\n", 24, "u", err, sizeof(err)));
	assert_non_null(strstr(err, "malformed SCRAM-SHA-256 secret"));
	assert_null(pga_userlist_parse("\"\" \"x\"\n", 7, "u", err, sizeof(err)));
	assert_string_equal(err, "u:1: empty user name");
}

/* Thousands of users: every one is found by name (the index grows and
 * rehashes while the file loads), no other name is, a repeat is refused. */
static void test_userlist_many(void **state)
{
	enum { N = 5000 };
	size_t cap = (size_t)N * 64 + 64, o = 0;
	char *text = malloc(cap), name[32], err[256];
	struct pga_userlist *l;

	(void)state;
	assert_non_null(text);
	for (unsigned i = 0; i < N; i++)
		o += (size_t)snprintf(text + o, cap - o,
				      "\"user%u\" \"md5%032x\"\n", i * 7919u, i);
	l = pga_userlist_parse(text, o, "many", err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(pga_userlist_count(l), N);
	for (unsigned i = 0; i < N; i++) {
		const struct pga_user *u;
		char want[36];

		snprintf(name, sizeof(name), "user%u", i * 7919u);
		snprintf(want, sizeof(want), "md5%032x", i);
		u = pga_userlist_find(l, name);
		assert_non_null(u);
		assert_string_equal(u->name, name);
		assert_string_equal(u->pass, want);
		snprintf(name, sizeof(name), "user%u", i * 7919u + 1);
		assert_null(pga_userlist_find(l, name));
	}
	assert_null(pga_userlist_find(l, ""));
	pga_userlist_free(l);
	o += (size_t)snprintf(text + o, cap - o, "\"user%u\" \"x\"\n", 4999u * 7919u);
	assert_null(pga_userlist_parse(text, o, "many", err, sizeof(err)));
	assert_string_equal(err, "many:5001: user listed twice");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scram_rfc7677_server),
		cmocka_unit_test(test_scram_secret_text),
		cmocka_unit_test(test_scram_roundtrip_and_refusals),
		cmocka_unit_test(test_md5),
		cmocka_unit_test(test_userlist),
		cmocka_unit_test(test_userlist_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
