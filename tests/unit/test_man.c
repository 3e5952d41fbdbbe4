/*
 * test_man.c - hotpath.ini(5) stays what the config table generates.
 *
 * docs/man/hotpath.ini.5 is checked in (the packages install it) and is
 * produced by `hotpathd --config-man` (config_write_man). Like the drift
 * tests of etc/hotpath.ini and docs/configuration.md, this fails when the
 * file and the table differ, naming the command that regenerates it. A
 * second case checks the roff itself: every control line is one of the
 * man(7) macros the writer uses, so doc text that starts with '.' or '\''
 * cannot turn into a request (the writer must escape it). Whether groff
 * renders it without warnings is checked by tests/integration/
 * test_packaging.py (lintian runs `man --warnings` on it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/config.h"

#define MAN_PATH "docs/man/hotpath.ini.5"

static char *gen_man(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	assert_non_null(f);
	config_write_man(f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* Whole file, NUL-terminated; NULL if it can't be opened. Caller frees. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

static void test_man_drift(void **state)
{
	size_t want_len, have_len = 0;
	char *want = gen_man(&want_len), *have = slurp(MAN_PATH, &have_len);

	(void)state;
	if (!have) {
		print_message("[  SKIP    ] %s not found (run from the repository root)\n", MAN_PATH);
		free(want);
		skip();
	}
	if (have_len != want_len || memcmp(have, want, want_len) != 0)
		print_error("%s differs from what the config table generates; regenerate it "
			    "with `build/hotpathd --config-man > %s`\n", MAN_PATH, MAN_PATH);
	assert_int_equal(have_len, want_len);
	assert_memory_equal(have, want, want_len);
	free(want);
	free(have);
}

static void test_man_control_lines(void **state)
{
	static const char *const macros[] = {
		".\\\" ", ".TH ", ".SH ", ".SS ", ".TP\n", ".PP\n", ".RS ", ".RE\n",
		".nf\n", ".fi\n", ".br\n", ".IP ", NULL,
	};
	size_t len;
	char *text = gen_man(&len);
	unsigned n_sh = 0;

	(void)state;
	for (char *line = text; line && *line; ) {
		char *nl = strchr(line, '\n');

		if (*line == '.' || *line == '\'') {
			int ok = 0;

			for (int i = 0; macros[i] && !ok; i++)
				ok = strncmp(line, macros[i], strlen(macros[i])) == 0;
			if (!ok)
				print_error("unexpected control line: %.*s\n",
					    (int)(nl ? nl - line : (long)strlen(line)), line);
			assert_true(ok);
			n_sh += strncmp(line, ".SH ", 4) == 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	assert_non_null(strstr(text, ".SS [core]\n"));
	assert_non_null(strstr(text, ".SS [partition.NAME]\n"));
	assert_true(n_sh >= 6);     /* NAME SYNOPSIS DESCRIPTION SECTIONS ... SEE ALSO */
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_man_drift),
		cmocka_unit_test(test_man_control_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
