/*
 * test_config.c - unit tests of the configuration module (agent/core/config.c).
 *
 * Links config.c alone. Covers the defaults, every value parser with its
 * edge cases (overflow, suffix case, empty, decimals), each error message
 * with its line number, error collection and its cap, named sections, the
 * checks across keys, reloadable flags, config_diff_restart, and the round
 * trip config_write_ini -> config_parse_string. Case files under
 * tests/unit/data/config/ are read too: good_*.ini must parse, bad_*.ini
 * must fail with exactly the messages their `#! expect: ` lines list.
 *
 * Drift tests compare etc/hotpath.ini and docs/configuration.md with what
 * the table generates now; they run from the repository root (as `make
 * test` does) and are skipped with a message when the files are not found.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "hotpath/config.h"
#include "hotpath/log.h"

#define ERRLEN 8192
#define DATA_DIR "tests/unit/data/config"

static char err[ERRLEN];

static int parse(struct hp_config *c, const char *text)
{
	return config_parse_string(c, text, strlen(text), "hotpath.ini", err, sizeof err);
}

/* Parse text that must be valid; print the errors if it is not. */
static void parse_ok(struct hp_config *c, const char *text)
{
	int r = parse(c, text);

	if (r != 0)
		print_error("unexpected errors:\n%s", err);
	assert_int_equal(r, 0);
	assert_string_equal(err, "");
}

/* Parse text that must fail with exactly `want` (all messages). */
static void parse_fails(const char *text, const char *want)
{
	struct hp_config c;

	assert_int_equal(parse(&c, text), -EINVAL);
	assert_string_equal(err, want);
}

static unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static char *write_ini_string(const struct hp_config *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	assert_non_null(f);
	config_write_ini(c, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static char *write_md_string(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	assert_non_null(f);
	config_write_markdown(f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* Read a whole file; NULL if it can't be opened. Caller frees. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* ---- defaults ----------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct hp_config c;

	(void)state;
	config_defaults(&c);
	assert_int_equal(c.log_level, HP_LOG_INFO);
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.shutdown_timeout_ms, 5000);
	assert_string_equal(c.resp_listen, "127.0.0.1:6479");
	assert_int_equal(c.resp_max_clients, 10000);
	assert_int_equal(c.resp_idle_timeout_s, 300);
	assert_int_equal(c.resp_max_key_len, 512);
	assert_int_equal(c.resp_max_value_size, 1 << 20);
	assert_int_equal(c.resp_max_args, 1024);
	assert_int_equal(c.resp_max_query_buffer, 8 << 20);
	assert_int_equal(c.resp_max_output_buffer, 64 << 20);
	assert_string_equal(c.api_listen, "127.0.0.1:9479");
	assert_string_equal(c.api_tokens_file, "");
	assert_false(c.api_metrics_auth);
	assert_int_equal(c.api_max_body, 1 << 20);
	assert_int_equal(c.api_max_connections, 256);
	assert_int_equal(c.l1_max_memory, 256ULL << 20);
	assert_int_equal(c.eviction, HP_EVICT_S3FIFO);
	assert_int_equal(c.l1_shards, 64);
	assert_int_equal(c.active_expire_hz, 10);
	assert_true(c.memory_pressure);
	assert_int_equal(c.max_ttl_ms, 0);
	assert_true(c.l0_enabled);
	assert_false(c.l0_remote);
	assert_true(c.bpf_enabled);
	assert_string_equal(c.bpf_pin_path, "/sys/fs/bpf/hotpath");
	assert_string_equal(c.redis_address, "");
	assert_string_equal(c.redis_cluster, "");
	assert_string_equal(c.http_listen, "127.0.0.1:8479");
	assert_string_equal(c.http_upstream, "");
	assert_string_equal(c.pooler_listen, "127.0.0.1:5479");
	assert_int_equal(c.pooler_auth_type, HP_AUTH_SCRAM);
	assert_string_equal(c.pooler_auth_file, "");
	assert_int_equal(c.pooler_pool_mode, HP_POOL_TRANSACTION);
	assert_int_equal(c.n_partitions, 0);
	assert_int_equal(c.n_upstreams, 0);
	assert_int_equal(c.n_databases, 0);
	assert_int_equal(c.n_services, 0);
	assert_string_equal(c.source, "");
}

static void test_empty_file_is_defaults(void **state)
{
	struct hp_config c, d;

	(void)state;
	config_defaults(&d);
	memset(&c, 0xa5, sizeof c);
	parse_ok(&c, "");
	assert_memory_equal(&c, &d, sizeof c);
	memset(&c, 0xa5, sizeof c);
	parse_ok(&c, "# only a comment\n\n; and another\n   \n");
	assert_memory_equal(&c, &d, sizeof c);
	/* sections without keys */
	parse_ok(&c, "[core]\n[resp]\n[cache]\n");
	assert_memory_equal(&c, &d, sizeof c);
	assert_int_equal(config_parse_string(&c, NULL, 0, NULL, NULL, 0), 0);
}

/* ---- value parsers ------------------------------------------------------ */

struct num_case {
	const char *in;
	int ret;
	uint64_t want;
};

static void test_parse_size(void **state)
{
	static const struct num_case cases[] = {
		{ "0", 0, 0 },
		{ "100", 0, 100 },
		{ "100b", 0, 100 },
		{ "100B", 0, 100 },
		{ "512k", 0, 512 << 10 },
		{ "512kb", 0, 512 << 10 },
		{ "512KB", 0, 512 << 10 },
		{ "512Kb", 0, 512 << 10 },
		{ "256mb", 0, 256ULL << 20 },
		{ "256MB", 0, 256ULL << 20 },
		{ "256m", 0, 256ULL << 20 },
		{ "256 mb", 0, 256ULL << 20 },
		{ "1gb", 0, 1ULL << 30 },
		{ "1G", 0, 1ULL << 30 },
		{ "2tb", 0, 2ULL << 40 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "16777215tb", 0, 16777215ULL << 40 },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "99999999999999999999999", -ERANGE, 0 },
		{ "16777216tb", -ERANGE, 0 },
		{ "17179869184gb", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "mb", -EINVAL, 0 },
		{ "12xb", -EINVAL, 0 },
		{ "1.5gb", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 },
		{ " 1kb", -EINVAL, 0 },
		{ "1kbb", -EINVAL, 0 },
		{ "1 k b", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 },
		{ "99999999999999999999999x", -EINVAL, 0 },
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		v = 12345;
		int r = config_parse_size(cases[i].in, &v);

		if (r != cases[i].ret)
			print_error("size '%s': got %d, want %d\n", cases[i].in, r, cases[i].ret);
		assert_int_equal(r, cases[i].ret);
		if (r == 0)
			assert_int_equal(v, cases[i].want);
		else
			assert_int_equal(v, 12345);     /* untouched on failure */
	}
	assert_int_equal(config_parse_size(NULL, &v), -EINVAL);
}

static void test_parse_duration(void **state)
{
	static const struct num_case cases[] = {
		{ "0", 0, 0 },
		{ "100", 0, 100 },             /* plain number = milliseconds */
		{ "500ms", 0, 500 },
		{ "500MS", 0, 500 },
		{ "30s", 0, 30000 },
		{ "30S", 0, 30000 },
		{ "5m", 0, 300000 },
		{ "5M", 0, 300000 },           /* minutes, never months */
		{ "1h", 0, 3600000 },
		{ "2d", 0, 172800000 },
		{ "2 d", 0, 172800000 },
		{ "213503982334d", 0, 213503982334ULL * 86400000ULL },
		{ "213503982335d", -ERANGE, 0 },
		{ "18446744073709551616ms", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "5x", -EINVAL, 0 },
		{ "5sec", -EINVAL, 0 },
		{ "1w", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "5s ", -EINVAL, 0 },
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = config_parse_duration_ms(cases[i].in, &v);

		if (r != cases[i].ret)
			print_error("duration '%s': got %d, want %d\n", cases[i].in, r,
				    cases[i].ret);
		assert_int_equal(r, cases[i].ret);
		if (r == 0)
			assert_int_equal(v, cases[i].want);
	}
}

static void test_parse_hostport(void **state)
{
	static const struct {
		const char *in;
		const char *host;
		unsigned port;
	} good[] = {
		{ "127.0.0.1:6479", "127.0.0.1", 6479 },
		{ "localhost:1", "localhost", 1 },
		{ "redis-1.example.com:65535", "redis-1.example.com", 65535 },
		{ "[::1]:6479", "::1", 6479 },
		{ "[::]:80", "::", 80 },
		{ "[fe80::1%eth0]:80", "fe80::1%eth0", 80 },
		{ "[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80 },
		{ "0.0.0.0:080", "0.0.0.0", 80 },
		{ "127.0.0.1:0", "127.0.0.1", 0 },   /* listen on a free port */
	};
	static const char *const bad[] = {
		"", ":80", "host", "host:", "host:65536", "host:99999999",
		"host:abc", "host:-1", "host:+80", "host:80x", "::1:80", "[::1]", "[::1]80",
		"[]:80", "[::1:80", "[host]:80", "ho st:80", "host/x:80", "[::1]:",
		"a:b:c", "host:80 ",
	};
	char host[HP_ADDR_MAX];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		port = 0;
		assert_int_equal(config_parse_hostport(good[i].in, host, sizeof host, &port), 0);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = config_parse_hostport(bad[i], host, sizeof host, &port);

		if (r != -EINVAL)
			print_error("hostport '%s' accepted\n", bad[i]);
		assert_int_equal(r, -EINVAL);
	}
	/* host buffer too small, NULL outputs, NULL input */
	assert_int_equal(config_parse_hostport("localhost:1", host, 9, &port), -EINVAL);
	assert_int_equal(config_parse_hostport("localhos:1", host, 9, &port), 0);
	assert_int_equal(config_parse_hostport("localhost:1", NULL, 0, NULL), 0);
	assert_int_equal(config_parse_hostport(NULL, host, sizeof host, &port), -EINVAL);
}

static void test_bool_and_enum_values(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "True", "on", "1" };
	static const char *const no[] = { "no", "No", "false", "FALSE", "off", "0" };
	struct hp_config c;
	char text[128];

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		snprintf(text, sizeof text, "[l0]\nenabled = %s\n", no[i]);
		parse_ok(&c, text);
		assert_false(c.l0_enabled);
		snprintf(text, sizeof text, "[api]\nmetrics_auth = %s\n", yes[i]);
		parse_ok(&c, text);
		assert_true(c.api_metrics_auth);
	}
	parse_fails("[l0]\nenabled = maybe\n",
		    "hotpath.ini:2: invalid boolean 'maybe' for l0.enabled (use yes or no)\n");
	parse_fails("[l0]\nenabled =\n", "hotpath.ini:2: missing value for l0.enabled\n");

	parse_ok(&c, "[cache]\neviction = LRU\n[core]\nlog_level = Debug\n");
	assert_int_equal(c.eviction, HP_EVICT_LRU);
	assert_int_equal(c.log_level, HP_LOG_DEBUG);
	parse_ok(&c, "[pooler]\nauth_type = md5\npool_mode = session\n");
	assert_int_equal(c.pooler_auth_type, HP_AUTH_MD5);
	assert_int_equal(c.pooler_pool_mode, HP_POOL_SESSION);
	parse_fails("[cache]\neviction = fifo\n",
		    "hotpath.ini:2: invalid value 'fifo' for cache.eviction (use s3fifo or lru)\n");
	parse_fails("[core]\nlog_level = trace\n",
		    "hotpath.ini:2: invalid value 'trace' for core.log_level (use error, "
		    "warn, info or debug)\n");

	assert_string_equal(config_eviction_name(HP_EVICT_S3FIFO), "s3fifo");
	assert_string_equal(config_eviction_name(HP_EVICT_LRU), "lru");
	assert_string_equal(config_eviction_name(2), "unknown");
	assert_string_equal(config_eviction_name(-1), "unknown");
	assert_string_equal(config_priority_name(HP_PRIO_LOW), "low");
	assert_string_equal(config_priority_name(HP_PRIO_NORMAL), "normal");
	assert_string_equal(config_priority_name(HP_PRIO_HIGH), "high");
	assert_string_equal(config_priority_name(3), "unknown");
}

static void test_number_keys(void **state)
{
	struct hp_config c;

	(void)state;
	parse_ok(&c, "[resp]\nmax_args = 1048576\nidle_timeout = 0\nmax_key_len = 1kb\n"
		 "[core]\nworkers = 64\nshutdown_timeout = 250ms\n"
		 "[cache]\nl1_max_memory = 1GB\nmax_ttl = 7d\nl1_shards = 1\n");
	assert_int_equal(c.resp_max_args, 1048576);
	assert_int_equal(c.resp_idle_timeout_s, 0);
	assert_int_equal(c.resp_max_key_len, 1024);
	assert_int_equal(c.workers, 64);
	assert_int_equal(c.shutdown_timeout_ms, 250);
	assert_int_equal(c.l1_max_memory, 1ULL << 30);
	assert_int_equal(c.max_ttl_ms, 7ULL * 86400000);
	assert_int_equal(c.l1_shards, 1);

	parse_ok(&c, "[resp]\nidle_timeout = 2h\n");
	assert_int_equal(c.resp_idle_timeout_s, 7200);
	parse_ok(&c, "[resp]\nidle_timeout = 3000\n");      /* ms, whole seconds */
	assert_int_equal(c.resp_idle_timeout_s, 3);

	parse_fails("[resp]\nmax_args = 0\n",
		    "hotpath.ini:2: value 0 out of range for resp.max_args (1..1048576)\n");
	parse_fails("[resp]\nmax_args = 1048577\n",
		    "hotpath.ini:2: value 1048577 out of range for resp.max_args (1..1048576)\n");
	parse_fails("[resp]\nmax_args = 99999999999999999999999\n",
		    "hotpath.ini:2: value 99999999999999999999999 out of range for "
		    "resp.max_args (1..1048576)\n");
	parse_fails("[resp]\nmax_args = ten\n",
		    "hotpath.ini:2: invalid number 'ten' for resp.max_args\n");
	parse_fails("[resp]\nmax_args = -1\n",
		    "hotpath.ini:2: invalid number '-1' for resp.max_args\n");
	parse_fails("[resp]\nmax_args = 10k\n",
		    "hotpath.ini:2: invalid number '10k' for resp.max_args\n");
	parse_fails("[core]\nworkers = 65\n",
		    "hotpath.ini:2: value 65 out of range for core.workers (0..64)\n");
	parse_fails("[resp]\nidle_timeout = 1500ms\n",
		    "hotpath.ini:2: value 1500ms for resp.idle_timeout is not a whole "
		    "number of seconds\n");
	parse_fails("[resp]\nidle_timeout = 31d\n",
		    "hotpath.ini:2: value 31d out of range for resp.idle_timeout (0..30d)\n");
	parse_fails("[cache]\nl1_max_memory = 12xb\n",
		    "hotpath.ini:2: invalid size '12xb' for cache.l1_max_memory (use e.g. 256mb)\n");
	parse_fails("[cache]\nl1_max_memory = 1.5gb\n",
		    "hotpath.ini:2: invalid size '1.5gb' for cache.l1_max_memory (whole "
		    "numbers only: write 1536mb, not 1.5gb)\n");
	parse_fails("[cache]\nl1_max_memory = 1kb\n",
		    "hotpath.ini:2: value 1kb out of range for cache.l1_max_memory (64kb..4tb)\n");
	parse_fails("[cache]\nl1_max_memory = 99999999999tb\n",
		    "hotpath.ini:2: value 99999999999tb out of range for cache.l1_max_memory "
		    "(64kb..4tb)\n");
	parse_fails("[core]\nshutdown_timeout = 5x\n",
		    "hotpath.ini:2: invalid duration '5x' for core.shutdown_timeout (use e.g. "
		    "500ms, 30s, 5m, 1h, 2d)\n");
	parse_fails("[core]\nshutdown_timeout = 1.5s\n",
		    "hotpath.ini:2: invalid duration '1.5s' for core.shutdown_timeout (whole "
		    "numbers only: write 1500ms, not 1.5s)\n");
	parse_fails("[core]\nshutdown_timeout = 2h\n",
		    "hotpath.ini:2: value 2h out of range for core.shutdown_timeout (0..1h)\n");
	parse_fails("[cache]\nl1_shards = 48\n",
		    "hotpath.ini:2: value 48 for cache.l1_shards is not a power of two\n");
	parse_fails("[cache]\nl1_shards = 0\n",
		    "hotpath.ini:2: value 0 out of range for cache.l1_shards (1..1024)\n");
	parse_fails("[cache]\nl1_shards = 2048\n",
		    "hotpath.ini:2: value 2048 out of range for cache.l1_shards (1..1024)\n");
	parse_fails("[cache]\nactive_expire_hz = 501\n",
		    "hotpath.ini:2: value 501 out of range for cache.active_expire_hz (1..500)\n");
	parse_fails("[resp]\nmax_clients =\n",
		    "hotpath.ini:2: missing value for resp.max_clients\n");
}

static void test_text_keys(void **state)
{
	struct hp_config c;
	char text[HP_PATH_MAX + 64];

	(void)state;
	parse_ok(&c, "[resp]\nlisten = [::1]:7000\n[api]\ntokens_file = /etc/hotpath/tokens\n"
		 "[redis]\naddress = redis.local:6379\n[bpf]\npin_path = /sys/fs/bpf/x\n");
	assert_string_equal(c.resp_listen, "[::1]:7000");
	assert_string_equal(c.api_tokens_file, "/etc/hotpath/tokens");
	assert_string_equal(c.redis_address, "redis.local:6379");
	assert_string_equal(c.bpf_pin_path, "/sys/fs/bpf/x");

	/* lists are normalised without blanks */
	parse_ok(&c, "[redis]\ncluster = 10.0.0.1:7000 , 10.0.0.2:7000,[::1]:7002\n");
	assert_string_equal(c.redis_cluster, "10.0.0.1:7000,10.0.0.2:7000,[::1]:7002");

	parse_fails("[resp]\nlisten = localhost\n",
		    "hotpath.ini:2: invalid host:port 'localhost' for resp.listen: missing "
		    "':PORT'\n");
	/* listeners may ask for a free port; addresses to connect to may not */
	parse_ok(&c, "[resp]\nlisten = 127.0.0.1:0\n[api]\nlisten = 127.0.0.1:0\n");
	assert_string_equal(c.resp_listen, "127.0.0.1:0");
	parse_fails("[redis]\naddress = 127.0.0.1:0\n",
		    "hotpath.ini:2: invalid host:port '127.0.0.1:0' for redis.address: port "
		    "must be 1..65535\n");
	parse_fails("[resp]\nlisten = ::1:6479\n",
		    "hotpath.ini:2: invalid host:port '::1:6479' for resp.listen: IPv6 "
		    "addresses need brackets, e.g. [::1]:6479\n");
	parse_fails("[resp]\nlisten = :6479\n",
		    "hotpath.ini:2: invalid host:port ':6479' for resp.listen: empty host\n");
	parse_fails("[resp]\nlisten =\n", "hotpath.ini:2: missing value for resp.listen\n");
	parse_fails("[redis]\ncluster = a:1,,b:2\n",
		    "hotpath.ini:2: empty entry in list for redis.cluster\n");
	parse_fails("[redis]\ncluster = a:1,\n",
		    "hotpath.ini:2: empty entry in list for redis.cluster\n");
	parse_fails("[redis]\ncluster = a:1,b\n",
		    "hotpath.ini:2: invalid host:port 'b' in redis.cluster: missing ':PORT'\n");
	parse_fails("[bpf]\npin_path = hotpath\n",
		    "hotpath.ini:2: bpf.pin_path must be an absolute path, not 'hotpath'\n");
	parse_fails("[http]\nupstream = a b\n",
		    "hotpath.ini:2: invalid name 'a b' for http.upstream (use letters, "
		    "digits, '_' and '-')\n");

	/* the longest path that fits, and one byte more */
	memset(text, 0, sizeof text);
	strcpy(text, "[api]\ntokens_file = /");
	memset(text + strlen(text), 'x', HP_PATH_MAX - 2);
	strcat(text, "\n");
	parse_ok(&c, text);
	assert_int_equal(strlen(c.api_tokens_file), HP_PATH_MAX - 1);
	text[strlen(text) - 1] = 'x';
	strcat(text, "\n");
	parse_fails(text, "hotpath.ini:2: value too long for api.tokens_file (max 511 bytes)\n");
}

/* ---- syntax ------------------------------------------------------------- */

/* A database section needs pooler auth; tests that only want the section
 * for its string keys start with this. */
#define TRUST "[pooler]\nauth_type = trust\n"

static void test_comments_and_quotes(void **state)
{
	struct hp_config c;

	(void)state;
	parse_ok(&c, "# comment\n; comment\n  # indented comment\n[resp] # trailing\n"
		 "max_clients = 500  # peak is 300\n");
	assert_int_equal(c.resp_max_clients, 500);
	parse_fails("[resp]\nmax_args=7;x\n",
		    "hotpath.ini:2: invalid number '7;x' for resp.max_args\n");
	parse_ok(&c, "[resp]\nmax_args = 7 ; seven\n");
	assert_int_equal(c.resp_max_args, 7);

	/* '#' inside a word is kept; after a blank it starts a comment */
	parse_ok(&c, TRUST "[database.a]\npassword = pa#ss;word # the password\n");
	assert_string_equal(c.databases[0].password, "pa#ss;word");
	/* a value that starts with '#' is a comment: empty */
	parse_ok(&c, TRUST "[database.a]\npassword = #secret\n");
	assert_string_equal(c.databases[0].password, "");
	/* quotes keep everything; \" and \\ are the escapes */
	parse_ok(&c, TRUST "[database.a]\npassword = \"  a # b ; c  \" # comment\n");
	assert_string_equal(c.databases[0].password, "  a # b ; c  ");
	parse_ok(&c, TRUST "[database.a]\npassword = \"q\\\"b\\\\s\\n\"\n");
	assert_string_equal(c.databases[0].password, "q\"b\\s\\n");
	parse_ok(&c, TRUST "[database.a]\npassword = \"\"\n");
	assert_string_equal(c.databases[0].password, "");
	/* tabs, CRLF, BOM */
	parse_ok(&c, "\xEF\xBB\xBF[resp]\r\n\tmax_args\t=\t9\t\r\n");
	assert_int_equal(c.resp_max_args, 9);
	/* '=' in a value */
	parse_ok(&c, TRUST "[database.a]\npassword = a=b\n");
	assert_string_equal(c.databases[0].password, "a=b");

	parse_fails(TRUST "[database.a]\npassword = \"abc\n",
		    "hotpath.ini:4: missing closing quote for key 'password'\n");
	parse_fails(TRUST "[database.a]\npassword = \"abc\" def\n",
		    "hotpath.ini:4: unexpected text after closing quote for key 'password'\n");
	parse_fails(TRUST "[database.a]\npassword = a\x01" "b\n",
		    "hotpath.ini:4: control character in value for key 'password'\n");
}

static void test_syntax_errors(void **state)
{
	char *big;

	(void)state;
	parse_fails("[resp]\nfoo = 1\n", "hotpath.ini:2: unknown key 'foo' in [resp]\n");
	parse_fails("[resp]\nlisen = 1\n",
		    "hotpath.ini:2: unknown key 'lisen' in [resp] (did you mean 'listen'?)\n");
	parse_fails("[resp]\nListen = 127.0.0.1:1\n",
		    "hotpath.ini:2: unknown key 'Listen' in [resp] (did you mean 'listen'?)\n");
	parse_fails("[bogus]\nfoo = 1\n", "hotpath.ini:1: unknown section [bogus]\n");
	parse_fails("[cahce]\n", "hotpath.ini:1: unknown section [cahce] (did you mean [cache]?)\n");
	parse_fails("[bogus.x]\n", "hotpath.ini:1: unknown section [bogus.x]\n");
	parse_fails("[resp]\nlisten = 127.0.0.1:1\n[core]\n[resp]\n",
		    "hotpath.ini:4: duplicate section [resp] (first at line 1)\n");
	parse_fails("[resp]\nmax_args = 1\n\nmax_args = 2\n",
		    "hotpath.ini:4: duplicate key 'max_args' in [resp] (first set at line 2)\n");
	parse_fails("[resp]\nmax_args 5\n",
		    "hotpath.ini:2: missing '=' in 'max_args 5' (expected key = value)\n");
	parse_fails("[resp]\n= 5\n", "hotpath.ini:2: missing key before '='\n");
	parse_fails("max_args = 5\n[resp]\n",
		    "hotpath.ini:1: key 'max_args' outside of any section (add a [section] "
		    "line above it)\n");
	parse_fails("[resp\n", "hotpath.ini:1: missing ']' in section header '[resp'\n");
	parse_fails("[resp] x\n", "hotpath.ini:1: unexpected text 'x' after section header\n");
	parse_fails("[]\n", "hotpath.ini:1: empty section name []\n");
	parse_fails("[ ]\n", "hotpath.ini:1: empty section name []\n");

	/* NUL byte: the line is reported and skipped */
	{
		static const char text[] = "[resp]\nmax_args = 1\0x\nmax_clients = 0\n";
		struct hp_config c;

		assert_int_equal(config_parse_string(&c, text, sizeof text - 1, "hotpath.ini",
						     err, sizeof err), -EINVAL);
		assert_string_equal(err, "hotpath.ini:2: NUL byte in line\n"
				    "hotpath.ini:3: value 0 out of range for resp.max_clients "
				    "(1..1000000)\n");
	}

	/* a 4096-byte line is fine, 4097 is not */
	big = malloc(8192);
	assert_non_null(big);
	strcpy(big, "[resp]\n#");
	memset(big + 8, 'x', 4095);
	strcpy(big + 8 + 4095, "\n");
	parse_fails(strcat(big, "max_args = 0\n"),
		    "hotpath.ini:3: value 0 out of range for resp.max_args (1..1048576)\n");
	strcpy(big, "[resp]\n#");
	memset(big + 8, 'x', 4096);
	strcpy(big + 8 + 4096, "\r\n");
	parse_fails(big, "hotpath.ini:2: line too long (4097 bytes, max 4096)\n");
	free(big);

	/* file too big */
	{
		size_t n = 1024 * 1024 + 1;
		char *text = malloc(n);
		struct hp_config c;

		assert_non_null(text);
		memset(text, '\n', n);
		assert_int_equal(config_parse_string(&c, text, n, "hotpath.ini", err,
						     sizeof err), -EINVAL);
		assert_string_equal(err, "hotpath.ini: file too big (1048577 bytes, max "
				    "1048576)\n");
		assert_int_equal(config_parse_string(&c, text, n - 1, "hotpath.ini", err,
						     sizeof err), 0);
		free(text);
	}
}

static void test_errors_collected(void **state)
{
	struct hp_config c;
	char text[4096];
	size_t used = 0;

	(void)state;
	parse_fails("[resp]\nfoo = 1\nmax_args = 0\n[bogus]\nx = 1\ny = 2\n[cache]\n"
		    "eviction = fifo\nl1_max_memory = 12xb\n",
		    "hotpath.ini:2: unknown key 'foo' in [resp]\n"
		    "hotpath.ini:3: value 0 out of range for resp.max_args (1..1048576)\n"
		    "hotpath.ini:4: unknown section [bogus]\n"
		    "hotpath.ini:8: invalid value 'fifo' for cache.eviction (use s3fifo or lru)\n"
		    "hotpath.ini:9: invalid size '12xb' for cache.l1_max_memory (use e.g. "
		    "256mb)\n");

	/* capped: 20 messages and a last line saying it stopped */
	used = (size_t)snprintf(text, sizeof text, "[resp]\n");
	for (int i = 0; i < 50; i++)
		used += (size_t)snprintf(text + used, sizeof text - used, "bad%d = 1\n", i);
	assert_int_equal(parse(&c, text), -EINVAL);
	assert_int_equal(count_lines(err), 21);
	assert_non_null(strstr(err, "hotpath.ini:21: unknown key 'bad19' in [resp]\n"));
	assert_non_null(strstr(err, "hotpath.ini: too many errors, stopped after 20\n"));

	/* a small buffer is cut but stays NUL-terminated; NULL is fine too */
	{
		char small[16];

		memset(small, 'z', sizeof small);
		assert_int_equal(config_parse_string(&c, text, strlen(text), "hotpath.ini",
						     small, sizeof small), -EINVAL);
		assert_int_equal(strlen(small), sizeof small - 1);
		assert_int_equal(config_parse_string(&c, text, strlen(text), "x", NULL, 0),
				 -EINVAL);
	}
}

static void test_failure_leaves_config(void **state)
{
	struct hp_config c, before;

	(void)state;
	parse_ok(&c, "[resp]\nmax_args = 7\n");
	memcpy(&before, &c, sizeof c);
	assert_int_equal(parse(&c, "[resp]\nmax_args = 8\nmax_clients = 0\n"), -EINVAL);
	assert_memory_equal(&c, &before, sizeof c);
}

/* ---- named sections ----------------------------------------------------- */

static void test_named_sections(void **state)
{
	struct hp_config c;

	(void)state;
	parse_ok(&c,
		 "[partition.sessions]\nprefix = session:\nmax_memory = 64mb\n"
		 "default_ttl = 30m\npriority = high\n"
		 "[partition.users]\nprefix = user:\n"
		 "[upstream.web]\nservers = 10.0.0.11:8080, 10.0.0.12:8080\nbalance = ewma\n"
		 "[http]\nupstream = web\n"
		 "[database.app]\nport = 6432\nuser = app\npassword_file = /run/pw\n"
		 "[database.reports]\nhost = /var/run/postgresql\ndbname = rep\n"
		 "[pooler]\nauth_type = trust\n"
		 "[service.shop]\nport = 8080\nprotocol = http\n"
		 "[service.cache-2]\nport = 6379\n");
	assert_int_equal(c.n_partitions, 2);
	assert_string_equal(c.partitions[0].name, "sessions");
	assert_string_equal(c.partitions[0].prefix, "session:");
	assert_int_equal(c.partitions[0].max_memory, 64 << 20);
	assert_int_equal(c.partitions[0].default_ttl_ms, 1800000);
	assert_int_equal(c.partitions[0].priority, HP_PRIO_HIGH);
	assert_string_equal(c.partitions[1].name, "users");
	assert_int_equal(c.partitions[1].max_memory, 0);
	assert_int_equal(c.partitions[1].default_ttl_ms, 0);
	assert_int_equal(c.partitions[1].priority, HP_PRIO_NORMAL);
	assert_int_equal(c.n_upstreams, 1);
	assert_string_equal(c.upstreams[0].servers, "10.0.0.11:8080,10.0.0.12:8080");
	assert_int_equal(c.upstreams[0].balance, HP_BAL_EWMA);
	assert_string_equal(c.http_upstream, "web");
	assert_int_equal(c.n_databases, 2);
	assert_string_equal(c.databases[0].host, "127.0.0.1");
	assert_int_equal(c.databases[0].port, 6432);
	assert_string_equal(c.databases[0].dbname, "app");      /* NAME by default */
	assert_string_equal(c.databases[0].user, "app");
	assert_string_equal(c.databases[0].password_file, "/run/pw");
	assert_string_equal(c.databases[1].host, "/var/run/postgresql");
	assert_int_equal(c.databases[1].port, 5432);
	assert_string_equal(c.databases[1].dbname, "rep");
	assert_int_equal(c.n_services, 2);
	assert_int_equal(c.services[0].port, 8080);
	assert_int_equal(c.services[0].protocol, HP_PROTO_HTTP);
	assert_string_equal(c.services[1].name, "cache-2");
	assert_int_equal(c.services[1].protocol, HP_PROTO_AUTO);

	parse_fails("[partition]\n",
		    "hotpath.ini:1: section [partition] needs a name: [partition.NAME]\n");
	parse_fails("[partition.a b]\nprefix = x\n",
		    "hotpath.ini:1: invalid section name 'a b' in [partition.a b] (use 1..63 "
		    "letters, digits, '_' and '-')\n");
	parse_fails("[partition.]\n",
		    "hotpath.ini:1: invalid section name '' in [partition.] (use 1..63 "
		    "letters, digits, '_' and '-')\n");
	parse_fails("[partition.a.b]\n",
		    "hotpath.ini:1: invalid section name 'a.b' in [partition.a.b] (use 1..63 "
		    "letters, digits, '_' and '-')\n");
	parse_fails("[partition.a]\nprefix = a:\n[partition.a]\nprefix = b:\n",
		    "hotpath.ini:3: duplicate section [partition.a] (first at line 1)\n");
	parse_fails("[partition.a]\nmax_memory = 1mb\n",
		    "hotpath.ini:1: [partition.a] needs prefix = ...\n");
	parse_fails("[partition.a]\nprefix =\n",
		    "hotpath.ini:2: missing value for partition.a.prefix\n");
	parse_fails("[upstream.web]\nbalance = hash\n",
		    "hotpath.ini:1: [upstream.web] needs servers = ...\n");
	parse_fails("[service.x]\n", "hotpath.ini:1: [service.x] needs port = ...\n");
	parse_fails("[service.x]\nport = 70000\n",
		    "hotpath.ini:2: value 70000 out of range for service.x.port (1..65535)\n");
	parse_fails("[partition.a]\nprefix = a\nfoo = 1\nprefix = b\n",
		    "hotpath.ini:3: unknown key 'foo' in [partition.a]\n"
		    "hotpath.ini:4: duplicate key 'prefix' in [partition.a] (first set at "
		    "line 2)\n");
	parse_fails("[upstream.web]\nservers = a:1,b\n",
		    "hotpath.ini:2: invalid host:port 'b' in upstream.web.servers: missing "
		    "':PORT'\n");
	parse_fails("[database.d]\nhost = bad host\n[pooler]\nauth_type = trust\n",
		    "hotpath.ini:2: invalid host 'bad host' for database.d.host (a host name, "
		    "an IP address or a socket directory)\n");
}

static void test_named_limits(void **state)
{
	struct hp_config c;
	size_t cap = 64 * 64 + 256, used = 0;
	char *text = malloc(cap);

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < HP_MAX_SERVICES; i++)
		used += (size_t)snprintf(text + used, cap - used, "[service.s%d]\nport = %d\n",
					 i, 1000 + i);
	parse_ok(&c, text);
	assert_int_equal(c.n_services, HP_MAX_SERVICES);
	snprintf(text + used, cap - used, "[service.more]\nport = 1\n");
	parse_fails(text, "hotpath.ini:129: too many [service.NAME] sections (max 64)\n");
	free(text);

	/* a 63-byte name fits, 64 does not */
	{
		char t[256], name[80];

		memset(name, 'n', 63);
		name[63] = '\0';
		snprintf(t, sizeof t, "[service.%s]\nport = 1\n", name);
		parse_ok(&c, t);
		assert_string_equal(c.services[0].name, name);
		snprintf(t, sizeof t, "[service.%sn]\nport = 1\n", name);
		assert_int_equal(parse(&c, t), -EINVAL);
		assert_non_null(strstr(err, "invalid section name"));
	}
}

/* ---- checks across keys ------------------------------------------------- */

static void test_cross_checks(void **state)
{
	struct hp_config c;

	(void)state;
	parse_fails("[http]\nupstream = web\n",
		    "hotpath.ini:2: http.upstream names [upstream.web], which is not defined\n");
	parse_fails("[redis]\naddress = a:1\ncluster = b:1\n",
		    "hotpath.ini:3: set redis.address or redis.cluster, not both\n");
	parse_fails("[http]\ncompress = gzip,deflate\n",
		    "hotpath.ini:2: http.compress: unknown coding (gzip, br and zstd are offered)\n");
	parse_fails("[http]\ncompress = br, br\n",
		    "hotpath.ini:2: http.compress: a coding is named twice\n");
	parse_fails("[http]\ncompress_min_size = 2mb\n",
		    "hotpath.ini:2: http.compress_min_size is larger than http.compress_max_size\n");
	parse_ok(&c, "[http]\ncompress = zstd, gzip\ncompress_level_br = 11\n");
	parse_ok(&c, "[http]\ncompress =\n");
	parse_fails("[http]\npriority_low = /a/*, header:X-Class\n",
		    "hotpath.ini:2: http.priority_low: a header rule is header:NAME=GLOB\n");
	parse_ok(&c, "[http]\nmax_inflight = 64\npriority_high = /api/*,header:X-P=1\n");
	parse_ok(&c, "[upstream.w]\nservers = a:1\nbreaker_window_type = time\n"
		 "breaker_window = 60\nbreaker_min_calls = 100\n");
	assert_int_equal(c.upstreams[0].breaker_window_type, 1);
	assert_int_equal(c.upstreams[0].breaker_min_calls, 100);
	parse_fails("[upstream.w]\nservers = a:1\nbreaker_window_type = sliding\n",
		    "hotpath.ini:3: invalid value 'sliding' for upstream.w.breaker_window_type "
		    "(use count or time)\n");
	parse_fails("[partition.a]\nprefix = x:\n[partition.b]\nprefix = x:\n",
		    "hotpath.ini:4: partition.b.prefix is the same as partition.a.prefix\n");
	parse_fails("[partition.a]\nprefix = x:\nmax_memory = 512mb\n",
		    "hotpath.ini:3: partition.a.max_memory (512mb) exceeds "
		    "cache.l1_max_memory (256mb)\n");
	parse_ok(&c, "[cache]\nl1_max_memory = 1gb\n[partition.a]\nprefix = x:\n"
		 "max_memory = 512mb\n");
	parse_fails("[partition.a]\nprefix = x:\ndefault_ttl = 2h\n[cache]\nmax_ttl = 1h\n",
		    "hotpath.ini:5: partition.a.default_ttl (2h) exceeds cache.max_ttl (1h)\n");
	parse_ok(&c, "[partition.a]\nprefix = x:\ndefault_ttl = 2h\n");  /* no cap */
	parse_fails("[resp]\nmax_value_size = 16mb\n",
		    "hotpath.ini:2: resp.max_query_buffer (8mb) must hold resp.max_key_len "
		    "+ resp.max_value_size (16777728)\n");
	parse_ok(&c, "[resp]\nmax_value_size = 16mb\nmax_query_buffer = 17mb\n");
	parse_fails("[resp]\nmax_output_buffer = 64kb\nmax_value_size = 128kb\n",
		    "hotpath.ini:3: resp.max_output_buffer (64kb) is smaller than "
		    "resp.max_value_size (128kb)\n");
	parse_fails("[api]\nlisten = 127.0.0.1:6479\n",
		    "hotpath.ini:2: resp.listen and api.listen both use port 6479\n");
	parse_fails("[api]\nlisten = 0.0.0.0:6479\n",
		    "hotpath.ini:2: resp.listen and api.listen both use port 6479\n");
	parse_ok(&c, "[api]\nlisten = 127.0.0.2:6479\n");
	/* inactive listeners do not conflict */
	parse_ok(&c, "[http]\nlisten = 127.0.0.1:6479\n[pooler]\nlisten = 127.0.0.1:6479\n");
	parse_fails("[upstream.w]\nservers = a:1\n[http]\nlisten = 127.0.0.1:6479\n"
		    "upstream = w\n",
		    "hotpath.ini:4: resp.listen and http.listen both use port 6479\n");
	parse_fails("[database.d]\npassword = x\npassword_file = /p\n[pooler]\n"
		    "auth_type = trust\n",
		    "hotpath.ini:3: set database.d.password or database.d.password_file, "
		    "not both\n");
	parse_fails("[database.d]\n",
		    "hotpath.ini:1: pooler.auth_type = scram-sha-256 needs pooler.auth_file "
		    "(or use trust)\n");
	parse_ok(&c, "[database.d]\n[pooler]\nauth_file = /etc/hotpath/userlist.txt\n");
	parse_fails("[service.a]\nport = 80\n[service.b]\nport = 80\n",
		    "hotpath.ini:4: service.b.port is the same as service.a.port (80)\n");
}

/* ---- reload ------------------------------------------------------------- */

static void test_reloadable(void **state)
{
	static const char *const yes[][2] = {
		{ "core", "log_level" }, { "core", "shutdown_timeout" },
		{ "resp", "max_clients" }, { "resp", "idle_timeout" },
		{ "resp", "max_key_len" }, { "resp", "max_value_size" },
		{ "resp", "max_args" }, { "resp", "max_query_buffer" },
		{ "resp", "max_output_buffer" }, { "api", "metrics_auth" },
		{ "api", "max_body" }, { "cache", "l1_max_memory" }, { "cache", "eviction" },
		{ "cache", "active_expire_hz" }, { "cache", "memory_pressure" },
		{ "cache", "max_ttl" }, { "l0", "enabled" }, { "l0", "remote" },
		{ "partition", "prefix" }, { "partition.users", "max_memory" },
		{ "partition.x", "default_ttl" }, { "partition.x", "priority" },
	};
	static const char *const no[][2] = {
		{ "core", "workers" }, { "resp", "listen" }, { "api", "listen" },
		{ "api", "max_connections" },
		{ "cache", "l1_shards" }, { "bpf", "enabled" }, { "bpf", "pin_path" },
		{ "redis", "address" }, { "redis", "cluster" }, { "http", "listen" },
		{ "http", "upstream" }, { "pooler", "listen" }, { "pooler", "auth_type" },
		{ "pooler", "auth_file" }, { "pooler", "pool_mode" },
		{ "upstream.web", "servers" }, { "upstream", "balance" },
		{ "database.app", "host" }, { "service.s", "port" },
		{ "resp", "nope" }, { "nope", "listen" }, { "partition.x", "nope" },
		{ "", "" }, { "partitionx.y", "prefix" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (!config_key_reloadable(yes[i][0], yes[i][1]))
			print_error("%s.%s should be reloadable\n", yes[i][0], yes[i][1]);
		assert_true(config_key_reloadable(yes[i][0], yes[i][1]));
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if (config_key_reloadable(no[i][0], no[i][1]))
			print_error("%s.%s should not be reloadable\n", no[i][0], no[i][1]);
		assert_false(config_key_reloadable(no[i][0], no[i][1]));
	}
	assert_false(config_key_reloadable(NULL, "x"));
	assert_false(config_key_reloadable("resp", NULL));
}

static void test_diff_restart(void **state)
{
	struct hp_config a, b;
	char out[256];

	(void)state;
	parse_ok(&a, "[upstream.web]\nservers = a:1\n[upstream.old]\nservers = c:1\n"
		 "[partition.p]\nprefix = p:\n");
	memcpy(&b, &a, sizeof a);
	assert_int_equal(config_diff_restart(&a, &b, out, sizeof out), 0);
	assert_string_equal(out, "");

	/* reloadable changes only */
	parse_ok(&b, "[upstream.web]\nservers = a:1\n[upstream.old]\nservers = c:1\n"
		 "[partition.q]\nprefix = q:\n[resp]\nmax_clients = 5\n[core]\n"
		 "log_level = debug\n[cache]\neviction = lru\n");
	assert_int_equal(config_diff_restart(&a, &b, out, sizeof out), 0);
	assert_string_equal(out, "");

	parse_ok(&b, "[upstream.web]\nservers = a:1,b:2\n[upstream.new]\nservers = d:1\n"
		 "[resp]\nlisten = 127.0.0.1:7000\nmax_clients = 5\n[cache]\nl1_shards = 8\n"
		 "[redis]\naddress = r:6379\n");
	assert_int_equal(config_diff_restart(&a, &b, out, sizeof out), 6);
	assert_string_equal(out, "resp.listen\ncache.l1_shards\nredis.address\n"
			    "upstream.web.servers\nupstream.new\nupstream.old\n");
	/* count stays complete when out is short or NULL */
	assert_int_equal(config_diff_restart(&a, &b, out, 20), 6);
	assert_string_equal(out, "resp.listen\ncache.l");
	assert_int_equal(config_diff_restart(&a, &b, NULL, 0), 6);
}

/* ---- visit and writers -------------------------------------------------- */

struct visit_acc {
	unsigned n, reloadable;
	char text[8192];
	size_t used;
};

static void visit_cb(const char *section, const char *key, const char *value,
		     bool reloadable, void *arg)
{
	struct visit_acc *a = arg;

	a->n++;
	a->reloadable += reloadable;
	assert_true(config_key_reloadable(section, key) == reloadable);
	a->used += (size_t)snprintf(a->text + a->used, sizeof a->text - a->used, "%s.%s=%s\n",
				    section, key, value);
	assert_true(a->used < sizeof a->text);
}

static void test_visit(void **state)
{
	struct hp_config c;
	struct visit_acc *a = calloc(1, sizeof *a);

	(void)state;
	assert_non_null(a);
	config_defaults(&c);
	config_visit(&c, visit_cb, a);
	assert_int_equal(a->n, 124);          /* every key of every plain section */
	assert_int_equal(a->reloadable, 45);
	assert_non_null(strstr(a->text, "core.log_level=info\n"));
	assert_non_null(strstr(a->text, "bpf.observe_send_hook=auto\n"));
	assert_non_null(strstr(a->text, "bpf.observe_recv_hook=auto\n"));
	assert_non_null(strstr(a->text, "core.shutdown_timeout=5s\n"));
	assert_non_null(strstr(a->text, "resp.idle_timeout=300s\n"));
	assert_non_null(strstr(a->text, "cache.l1_max_memory=256mb\n"));
	assert_non_null(strstr(a->text, "api.tokens_file=\n"));

	memset(a, 0, sizeof *a);
	parse_ok(&c, "[resp]\nidle_timeout = 90s\n[cache]\nl1_max_memory = 1024mb\n"
		 "max_ttl = 90000\n[core]\nshutdown_timeout = 1500\n"
		 "[database.app]\npassword = s3cret\n[database.b]\n"
		 "[pooler]\nauth_type = trust\n[partition.p]\nprefix = p:\n");
	config_visit(&c, visit_cb, a);
	assert_int_equal(a->n, 124 + 6 + 6 + 4);
	assert_int_equal(a->reloadable, 45 + 4);
	assert_non_null(strstr(a->text, "resp.idle_timeout=90s\n"));
	assert_non_null(strstr(a->text, "cache.l1_max_memory=1gb\n"));
	assert_non_null(strstr(a->text, "cache.max_ttl=90s\n"));
	assert_non_null(strstr(a->text, "core.shutdown_timeout=1500ms\n"));
	assert_non_null(strstr(a->text, "database.app.password=********\n"));
	assert_non_null(strstr(a->text, "database.b.password=\n"));
	assert_non_null(strstr(a->text, "database.app.dbname=app\n"));
	assert_non_null(strstr(a->text, "partition.p.prefix=p:\n"));
	assert_null(strstr(a->text, "s3cret"));
	free(a);
}

static void assert_round_trip(const struct hp_config *c)
{
	struct hp_config back;
	size_t len;
	char *ini = write_ini_string(c, &len);
	int r = config_parse_string(&back, ini, len, "written.ini", err, sizeof err);

	if (r != 0)
		print_error("written config does not parse:\n%s\n---\n%s", err, ini);
	assert_int_equal(r, 0);
	memcpy(back.source, c->source, sizeof back.source);
	assert_memory_equal(&back, c, sizeof back);
	free(ini);
}

static void test_round_trip(void **state)
{
	struct hp_config c;

	(void)state;
	config_defaults(&c);
	assert_round_trip(&c);

	parse_ok(&c,
		 "[core]\nlog_level = warn\nworkers = 3\nshutdown_timeout = 1500\n"
		 "[resp]\nlisten = [::1]:7000\nidle_timeout = 61s\nmax_key_len = 1000\n"
		 "max_value_size = 3mb\n"
		 "[api]\ntokens_file = \" /odd path#1;x \"\nmetrics_auth = yes\n"
		 "[cache]\nl1_max_memory = 1025kb\neviction = lru\nl1_shards = 2\n"
		 "max_ttl = 36h\nmemory_pressure = off\n"
		 "[l0]\nenabled = no\n[bpf]\nenabled = false\n"
		 "[redis]\ncluster = a:1, b:2\n"
		 "[upstream.web]\nservers = a:80\nbalance = hash\n[http]\nupstream = web\n"
		 "[pooler]\nauth_type = md5\nauth_file = /etc/u.txt\npool_mode = session\n"
		 "[partition.p1]\nprefix = \"#p \"\nmax_memory = 1mb\ndefault_ttl = 1d\n"
		 "priority = low\n[partition.p2]\nprefix = \"q\\\"\\\\\"\n"
		 "[database.db1]\nhost = ::1\nuser = u\npassword = \"a \\\\ b\"\n"
		 "[database.db2]\ndbname = other\npassword_file = pw\n"
		 "[service.s1]\nport = 1\n[service.s2]\nport = 65535\nprotocol = postgres\n");
	assert_string_equal(c.api_tokens_file, " /odd path#1;x ");
	assert_string_equal(c.partitions[1].prefix, "q\"\\");
	assert_string_equal(c.databases[0].password, "a \\ b");
	assert_round_trip(&c);
}

static void test_write_ini_shape(void **state)
{
	struct hp_config c;
	size_t len;
	char *ini;

	(void)state;
	config_defaults(&c);
	ini = write_ini_string(&c, &len);
	/* every section in order, named kinds as commented examples */
	const char *order[] = { "\n[core]\n", "\n[resp]\n", "\n[api]\n", "\n[cache]\n",
				"\n[l0]\n", "\n[bpf]\n", "\n[redis]\n", "\n[http]\n",
				"\n[pooler]\n", "\n# [partition.sessions]\n",
				"\n# [upstream.web]\n", "\n# [database.app]\n",
				"\n# [service.shop]\n" };
	const char *at = ini;

	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		const char *p = strstr(at, order[i]);

		if (!p)
			print_error("'%s' missing or out of order\n", order[i]);
		assert_non_null(p);
		at = p;
	}
	assert_non_null(strstr(ini, "\nl1_max_memory = 256mb\n"));
	assert_non_null(strstr(ini, "\ntokens_file =\n"));
	assert_null(strstr(ini, " \n"));               /* no trailing blanks */
	free(ini);

	parse_ok(&c, "[service.x]\nport = 9\n");
	memcpy(c.source, "/etc/hotpath.ini", sizeof "/etc/hotpath.ini");
	ini = write_ini_string(&c, &len);
	assert_non_null(strstr(ini, "read from /etc/hotpath.ini"));
	assert_non_null(strstr(ini, "\n[service.x]\nport = 9\nprotocol = auto\n"));
	assert_null(strstr(ini, "# [service.shop]"));
	free(ini);
}

/* ---- files -------------------------------------------------------------- */

static void test_load_file(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	struct hp_config c;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[resp]\nmax_args = 3\n", 20), 20);
	close(fd);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_int_equal(c.resp_max_args, 3);
	assert_string_equal(c.source, path);

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[resp]\nmax_args = x\n", 20), 20);
	close(fd);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, ":2: invalid number 'x' for resp.max_args\n"));
	assert_non_null(strstr(err, path));

	/* over 1 MiB */
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		for (int i = 0; i < 1024 * 1024 / 8 + 1; i++)
			fputs("#comment", f);
		fclose(f);
		assert_int_equal(config_load_file(&c, path, err, sizeof err), -EINVAL);
		assert_non_null(strstr(err, "file too big"));
	}
	unlink(path);

	assert_int_equal(config_load_file(&c, path, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(config_load_file(&c, "/tmp", err, sizeof err), -EISDIR);
	assert_int_equal(config_load_file(&c, path, NULL, 0), -ENOENT);
}

/* Run every case file: good_*.ini must parse; bad_*.ini must fail with
 * exactly the messages of its "#! expect: " lines, in order. */
static void test_data_files(void **state)
{
	struct dirent **names;
	unsigned good = 0, bad = 0;
	int n;

	(void)state;
	n = scandir(DATA_DIR, &names, NULL, alphasort);
	if (n < 0) {
		print_message("[  SKIP    ] %s not found (run from the repository root)\n",
			      DATA_DIR);
		skip();
	}
	for (int i = 0; i < n; i++) {
		char path[512], want[ERRLEN] = "", *text, *line, *save = NULL;
		struct hp_config c;
		size_t len, used = 0;
		const char *fname = names[i]->d_name;
		int r;

		if (strncmp(fname, "good_", 5) && strncmp(fname, "bad_", 4)) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", DATA_DIR, fname);
		text = slurp(path, &len);
		assert_non_null(text);
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (strncmp(line, "#! expect: ", 11) == 0)
				used += (size_t)snprintf(want + used, sizeof want - used, "%s\n",
							 line + 11);
		free(text);
		r = config_load_file(&c, path, err, sizeof err);
		if (fname[0] == 'g') {
			if (r != 0)
				print_error("%s:\n%s", path, err);
			assert_int_equal(r, 0);
			good++;
		} else {
			/* messages name the file as it was given */
			char *w = want, got[ERRLEN];
			size_t gl = 0;

			assert_int_equal(r, -EINVAL);
			for (char *e = err; *e;) {
				char *nl = strchr(e, '\n');
				size_t pl = strlen(DATA_DIR) + 1;

				assert_non_null(nl);
				assert_memory_equal(e, path, pl);
				gl += (size_t)snprintf(got + gl, sizeof got - gl, "%.*s",
						       (int)(nl + 1 - e - pl), e + pl);
				e = nl + 1;
			}
			if (strcmp(got, w) != 0)
				print_error("%s: got\n%swant\n%s", path, got, w);
			assert_string_equal(got, w);
			bad++;
		}
		free(names[i]);
	}
	free(names);
	print_message("[          ] %u good and %u bad case files\n", good, bad);
	assert_true(good > 0 && bad > 0);
}

static void test_drift(const char *path, char *(*gen)(size_t *), const char *how)
{
	size_t want_len, have_len;
	char *want = gen(&want_len), *have = slurp(path, &have_len);

	if (!have) {
		print_message("[  SKIP    ] %s not found (run from the repository root)\n", path);
		free(want);
		skip();
	}
	if (have_len != want_len || memcmp(have, want, want_len) != 0)
		print_error("%s differs from what the config table generates; regenerate "
			    "it with `%s`\n", path, how);
	assert_int_equal(have_len, want_len);
	assert_memory_equal(have, want, want_len);
	free(want);
	free(have);
}

static char *gen_default_ini(size_t *len)
{
	struct hp_config c;

	config_defaults(&c);
	return write_ini_string(&c, len);
}

static void test_drift_ini(void **state)
{
	(void)state;
	test_drift("etc/hotpath.ini", gen_default_ini,
		   "build/hotpathd --config-ini > etc/hotpath.ini");
}

static void test_drift_markdown(void **state)
{
	(void)state;
	test_drift("docs/configuration.md", write_md_string,
		   "build/hotpathd --config-doc > docs/configuration.md");
}

static void test_shipped_ini_is_default(void **state)
{
	struct hp_config c, d;

	(void)state;
	if (access("etc/hotpath.ini", R_OK) != 0) {
		print_message("[  SKIP    ] etc/hotpath.ini not found\n");
		skip();
	}
	assert_int_equal(config_load_file(&c, "etc/hotpath.ini", err, sizeof err), 0);
	config_defaults(&d);
	assert_string_equal(c.source, "etc/hotpath.ini");
	memcpy(d.source, c.source, sizeof d.source);
	assert_memory_equal(&c, &d, sizeof c);
	/* the embedded default: L1 only, no L2, no pooler, no proxy, BPF on */
	assert_string_equal(c.redis_address, "");
	assert_int_equal(c.n_databases, 0);
	assert_string_equal(c.http_upstream, "");
	assert_true(c.bpf_enabled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file_is_defaults),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_hostport),
		cmocka_unit_test(test_bool_and_enum_values),
		cmocka_unit_test(test_number_keys),
		cmocka_unit_test(test_text_keys),
		cmocka_unit_test(test_comments_and_quotes),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_errors_collected),
		cmocka_unit_test(test_failure_leaves_config),
		cmocka_unit_test(test_named_sections),
		cmocka_unit_test(test_named_limits),
		cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_reloadable),
		cmocka_unit_test(test_diff_restart),
		cmocka_unit_test(test_visit),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_write_ini_shape),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_data_files),
		cmocka_unit_test(test_drift_ini),
		cmocka_unit_test(test_drift_markdown),
		cmocka_unit_test(test_shipped_ini_is_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
