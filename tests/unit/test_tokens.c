/*
 * test_tokens.c - the tokens file parser and verification (tokens.c),
 * linked alone with libcrypto: good files, every refusal with its line
 * number, file permissions, constant-time verification results, and the
 * generator used by `hotpathctl token new`.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "hotpath/tokens.h"

/* sha256("alpha-token") and sha256("beta-token"), computed in setup. */
static char h_alpha[65], h_beta[65];

static int setup(void **state)
{
	(void)state;
	assert_int_equal(tokens_hash_hex("alpha-token", 11, h_alpha), 0);
	assert_int_equal(tokens_hash_hex("beta-token", 10, h_beta), 0);
	return 0;
}

static struct tokens *parse_ok(const char *text)
{
	struct tokens *t = NULL;
	char err[1024];
	int rc = tokens_parse(text, strlen(text), "t", &t, err, sizeof(err));

	if (rc)
		fail_msg("unexpected refusal: %s", err);
	assert_non_null(t);
	return t;
}

/* Parse must fail with -EINVAL and the message must contain `needle`. */
static void parse_bad(const char *text, const char *needle)
{
	struct tokens *t = (struct tokens *)1;
	char err[1024];
	int rc = tokens_parse(text, strlen(text), "t", &t, err, sizeof(err));

	assert_int_equal(rc, -EINVAL);
	assert_null(t);
	if (!strstr(err, needle))
		fail_msg("message '%s' lacks '%s'", err, needle);
}

static void test_hash_vector(void **state)
{
	char h[65];

	(void)state;
	assert_int_equal(tokens_hash_hex("abc", 3, h), 0);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_parse_good(void **state)
{
	char text[1024];
	struct tokens *t;
	uint32_t scopes = 0;
	char name[TOKENS_NAME_MAX];

	(void)state;
	snprintf(text, sizeof(text),
		 "# comment line\n"
		 "\n"
		 "   \t\n"
		 "alpha %s cache:read,perf:read   # trailing comment\r\n"
		 "\tbeta\t%s\t*\n", h_alpha, h_beta);
	t = parse_ok(text);
	assert_int_equal(tokens_count(t), 2);
	assert_int_equal(tokens_verify(t, "alpha-token", 11, &scopes, name, sizeof(name)), 0);
	assert_string_equal(name, "alpha");
	assert_int_equal(scopes, TOKENS_SCOPE_CACHE_READ | TOKENS_SCOPE_PERF_READ);
	assert_int_equal(tokens_verify(t, "beta-token", 10, &scopes, name, sizeof(name)), 0);
	assert_string_equal(name, "beta");
	assert_int_equal(scopes, TOKENS_SCOPE_ALL);
	tokens_free(t);
}

static void test_parse_uppercase_hex(void **state)
{
	char text[256], up[65];
	struct tokens *t;
	uint32_t scopes;

	(void)state;
	for (int i = 0; i < 65; i++)
		up[i] = (char)(h_alpha[i] >= 'a' && h_alpha[i] <= 'f' ? h_alpha[i] - 32 : h_alpha[i]);
	snprintf(text, sizeof(text), "alpha %s metrics:read", up);
	t = parse_ok(text);                 /* no trailing newline either */
	assert_int_equal(tokens_verify(t, "alpha-token", 11, &scopes, NULL, 0), 0);
	assert_int_equal(scopes, TOKENS_SCOPE_METRICS_READ);
	tokens_free(t);
}

static void test_parse_empty(void **state)
{
	struct tokens *t = parse_ok("# only comments\n\n");

	(void)state;
	assert_int_equal(tokens_count(t), 0);
	assert_int_equal(tokens_verify(t, "alpha-token", 11, NULL, NULL, 0), -EACCES);
	tokens_free(t);
	t = parse_ok("");
	assert_int_equal(tokens_count(t), 0);
	tokens_free(t);
}

static void test_parse_refusals(void **state)
{
	char text[1024];

	(void)state;
	snprintf(text, sizeof(text), "# c\nalpha %s\n", h_alpha);
	parse_bad(text, "t:2: expected 'NAME SHA256-HEX SCOPE,SCOPE'");
	snprintf(text, sizeof(text), "alpha %s cache:read extra\n", h_alpha);
	parse_bad(text, "t:1: expected");
	parse_bad("alpha abcdef cache:read\n", "t:1: token 'alpha': hash must be 64 hex digits");
	snprintf(text, sizeof(text), "alpha %.63sg cache:read\n", h_alpha);
	parse_bad(text, "hash is not hexadecimal");
	snprintf(text, sizeof(text), "alpha %s cache:reed\n", h_alpha);
	parse_bad(text, "t:1: token 'alpha': unknown scope 'cache:reed'");
	snprintf(text, sizeof(text), "alpha %s cache:read,,perf:read\n", h_alpha);
	parse_bad(text, "empty scope");
	snprintf(text, sizeof(text), "alpha %s cache:read,\n", h_alpha);
	parse_bad(text, "empty scope");
	snprintf(text, sizeof(text), "al/pha %s cache:read\n", h_alpha);
	parse_bad(text, "bad token name");
	snprintf(text, sizeof(text), "alpha %s cache:read\n\nalpha %s perf:read\n", h_alpha, h_beta);
	parse_bad(text, "t:3: duplicate token name 'alpha' (first on line 1)");
	snprintf(text, sizeof(text), "alpha %s cache:read\nbeta %s perf:read\n", h_alpha, h_alpha);
	parse_bad(text, "t:2: token 'beta' has the same hash as 'alpha'");
}

static void test_parse_reports_every_line(void **state)
{
	struct tokens *t = NULL;
	char err[1024];
	const char *text = "a 00 x\nb 11 y\n";

	(void)state;
	assert_int_equal(tokens_parse(text, strlen(text), "f", &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "f:1:"));
	assert_non_null(strstr(err, "f:2:"));
	assert_null(t);
}

static void test_parse_nul_and_long_lines(void **state)
{
	struct tokens *t = NULL;
	char err[256], *big;
	const char text[] = "a\0b x y\n";

	(void)state;
	assert_int_equal(tokens_parse(text, sizeof(text) - 1, "f", &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	big = malloc(TOKENS_LINE_MAX + 10);
	memset(big, 'a', TOKENS_LINE_MAX + 9);
	big[TOKENS_LINE_MAX + 9] = '\0';
	assert_int_equal(tokens_parse(big, strlen(big), "f", &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	free(big);
}

static void test_parse_tiny_err_buffer(void **state)
{
	struct tokens *t = NULL;
	char err[8];

	(void)state;
	assert_int_equal(tokens_parse("x y z\n", 6, "a-long-source-name", &t, err, sizeof(err)),
			 -EINVAL);
	assert_true(strlen(err) < sizeof(err));
	assert_int_equal(tokens_parse("x y z\n", 6, "f", &t, NULL, 0), -EINVAL);
}

static void test_verify(void **state)
{
	char text[256];
	struct tokens *t;
	uint32_t scopes = 123;
	char name[8];

	(void)state;
	snprintf(text, sizeof(text), "a-rather-long-name %s profile:read\n", h_alpha);
	t = parse_ok(text);
	assert_int_equal(tokens_verify(t, "alpha-token", 11, &scopes, name, sizeof(name)), 0);
	assert_string_equal(name, "a-rathe");           /* truncated, terminated */
	assert_int_equal(tokens_verify(t, "alpha-tokeN", 11, &scopes, NULL, 0), -EACCES);
	assert_int_equal(tokens_verify(t, "alpha-toke", 10, &scopes, NULL, 0), -EACCES);
	assert_int_equal(tokens_verify(t, "", 0, &scopes, NULL, 0), -EACCES);
	assert_int_equal(tokens_verify(t, NULL, 0, &scopes, NULL, 0), -EACCES);
	assert_int_equal(tokens_verify(NULL, "alpha-token", 11, &scopes, NULL, 0), -EACCES);
	{
		char *huge = malloc(TOKENS_TOKEN_MAX + 1);
		memset(huge, 'x', TOKENS_TOKEN_MAX + 1);
		assert_int_equal(tokens_verify(t, huge, TOKENS_TOKEN_MAX + 1, &scopes, NULL, 0),
				 -EACCES);
		free(huge);
	}
	tokens_free(t);
	tokens_free(NULL);
}

static void test_scopes(void **state)
{
	uint32_t s;
	char out[256], err[256];

	(void)state;
	assert_int_equal(tokens_scopes_parse("*", 1, &s, err, sizeof(err)), 0);
	assert_int_equal(s, TOKENS_SCOPE_ALL);
	tokens_scopes_format(s, out, sizeof(out));
	assert_string_equal(out, "*");
	assert_int_equal(tokens_scopes_parse("metrics:read,cache:read", 23, &s, err, sizeof(err)), 0);
	tokens_scopes_format(s, out, sizeof(out));
	assert_string_equal(out, "cache:read,metrics:read");
	assert_int_equal(tokens_scopes_parse("", 0, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(tokens_scopes_parse("cache:read ", 11, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(tokens_scope_name(TOKENS_SCOPE_CACHE_POLICY), "cache:policy");
	assert_null(tokens_scope_name(3));
	assert_null(tokens_scope_name(0));
	tokens_scopes_format(TOKENS_SCOPE_ALL & ~TOKENS_SCOPE_PERF_READ, out, 12);
	assert_true(strlen(out) < 12);
}

static void test_names(void **state)
{
	(void)state;
	assert_true(tokens_name_valid("ci-bot.prod@eu_1", 16));
	assert_false(tokens_name_valid("", 0));
	assert_false(tokens_name_valid("a b", 3));
	assert_false(tokens_name_valid("a#b", 3));
	{
		char n[TOKENS_NAME_MAX + 1];
		memset(n, 'a', sizeof(n));
		assert_true(tokens_name_valid(n, TOKENS_NAME_MAX - 1));
		assert_false(tokens_name_valid(n, TOKENS_NAME_MAX));
	}
}

static void test_generate(void **state)
{
	char a[64], b[64], small[43];

	(void)state;
	assert_int_equal(tokens_generate(a, sizeof(a)), 0);
	assert_int_equal(tokens_generate(b, sizeof(b)), 0);
	assert_int_equal(strlen(a), 43);
	assert_string_not_equal(a, b);
	for (size_t i = 0; i < strlen(a); i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				       a[i]));
	assert_int_equal(tokens_generate(small, sizeof(small)), -ENOSPC);
}

/* A generated token, its printed line and verification agree end to end. */
static void test_generate_roundtrip(void **state)
{
	char tok[64], hex[65], line[256];
	struct tokens *t;
	uint32_t s;

	(void)state;
	assert_int_equal(tokens_generate(tok, sizeof(tok)), 0);
	assert_int_equal(tokens_hash_hex(tok, strlen(tok), hex), 0);
	snprintf(line, sizeof(line), "ci %s cache:invalidate\n", hex);
	t = parse_ok(line);
	assert_int_equal(tokens_verify(t, tok, strlen(tok), &s, NULL, 0), 0);
	assert_int_equal(s, TOKENS_SCOPE_CACHE_INVALIDATE);
	tokens_free(t);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load_file_modes(void **state)
{
	char dir[] = "/tmp/test_tokens.XXXXXX", path[256], text[256], err[512];
	struct tokens *t = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tokens", dir);
	snprintf(text, sizeof(text), "alpha %s cache:read\n", h_alpha);

	write_file(path, text, 0600);
	assert_int_equal(tokens_load_file(path, &t, err, sizeof(err)), 0);
	assert_int_equal(tokens_count(t), 1);
	tokens_free(t);
	t = NULL;

	write_file(path, text, 0640);       /* group-readable is allowed */
	assert_int_equal(tokens_load_file(path, &t, err, sizeof(err)), 0);
	tokens_free(t);
	t = NULL;

	write_file(path, text, 0644);
	assert_int_equal(tokens_load_file(path, &t, err, sizeof(err)), -EPERM);
	assert_null(t);
	assert_non_null(strstr(err, "chmod 600"));
	assert_non_null(strstr(err, "read"));

	write_file(path, text, 0602);
	assert_int_equal(tokens_load_file(path, &t, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "modify"));

	write_file(path, "alpha zz cache:read\n", 0600);
	assert_int_equal(tokens_load_file(path, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":1:"));
	assert_non_null(strstr(err, path));

	unlink(path);
	assert_int_equal(tokens_load_file(path, &t, err, sizeof(err)), -ENOENT);
	assert_int_equal(tokens_load_file(dir, &t, err, sizeof(err)), -EINVAL);   /* a directory */
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_vector),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_uppercase_hex),
		cmocka_unit_test(test_parse_empty),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_reports_every_line),
		cmocka_unit_test(test_parse_nul_and_long_lines),
		cmocka_unit_test(test_parse_tiny_err_buffer),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_generate_roundtrip),
		cmocka_unit_test(test_load_file_modes),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
