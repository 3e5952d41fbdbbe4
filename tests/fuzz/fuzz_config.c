/*
 * fuzz_config.c - libFuzzer target for the configuration parser.
 *
 * Feeds arbitrary bytes to config_parse_string and checks what must hold for
 * any input: no crash, hang or leak (ASan/UBSan do that part), the error
 * text stays NUL-terminated inside its buffer, and every accepted input
 * survives the round trip through config_write_ini: the written file parses
 * back, with no error, into exactly the same struct. The value parsers are
 * also called directly on a NUL-terminated copy of short inputs, and
 * config_visit / config_diff_restart run on every accepted config.
 *
 * Run: build/fuzz/fuzz_config -max_total_time=60 (optionally with a corpus
 * directory such as tests/unit/data/config).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/config.h"

static void fuzz_visit(const char *section, const char *key, const char *value,
		       bool reloadable, void *arg)
{
	size_t *n = arg;

	*n += strlen(section) + strlen(key) + strlen(value) + reloadable;
}

static void fuzz_values(const uint8_t *data, size_t size)
{
	char s[256], host[HP_ADDR_MAX];
	uint64_t v;
	uint16_t port;

	if (size >= sizeof s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)!config_parse_size(s, &v);
	(void)!config_parse_duration_ms(s, &v);
	/* port 0 is accepted (listen on a free port); a host never empty */
	if (config_parse_hostport(s, host, sizeof host, &port) == 0 && !host[0])
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hp_config c, back, defaults;
	static char err[4096];
	char *ini = NULL;
	size_t len = 0, visited = 0;
	FILE *f;

	fuzz_values(data, size);

	memset(err, 'x', sizeof err);
	if (config_parse_string(&c, (const char *)data, size, "fuzz.ini", err, sizeof err) != 0) {
		if (!memchr(err, '\0', sizeof err))
			abort();
		return 0;
	}
	if (err[0])
		abort();

	config_visit(&c, fuzz_visit, &visited);
	config_defaults(&defaults);
	(void)config_diff_restart(&defaults, &c, err, sizeof err);

	f = open_memstream(&ini, &len);
	if (!f)
		return 0;
	config_write_ini(&c, f);
	if (fclose(f) != 0) {
		free(ini);
		return 0;
	}
	if (config_parse_string(&back, ini, len, "written.ini", err, sizeof err) != 0) {
		fprintf(stderr, "written config does not parse:\n%s\n", err);
		abort();
	}
	if (memcmp(&back, &c, sizeof c) != 0) {
		fprintf(stderr, "round trip changed the config\n");
		abort();
	}
	free(ini);
	return 0;
}
