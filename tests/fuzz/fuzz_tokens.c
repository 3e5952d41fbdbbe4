/*
 * fuzz_tokens.c - libFuzzer target for the tokens file parser and
 * verification (agent/api/tokens.c).
 *
 * The whole input is parsed as a tokens file. Properties checked on every
 * run: a refusal leaves no set and a non-empty, NUL-terminated message; an
 * accepted set has at most TOKENS_MAX entries; verifying the input itself
 * and a few slices of it as presented tokens never crashes and returns 0 or
 * -EACCES; the scope list parser agrees with its formatter (format(parse(x))
 * parses back to the same bits). A violation aborts so the fuzzer records it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct tokens *t = NULL;
	char err[512], name[TOKENS_NAME_MAX];
	uint32_t scopes, again;
	int rc;

	err[0] = 'x';
	rc = tokens_parse(text, size, "fuzz", &t, err, sizeof(err));
	if (rc) {
		if (t || (rc != -EINVAL && rc != -ENOMEM) || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		if (rc == -EINVAL && err[0] == '\0')
			abort();
	} else {
		if (!t || tokens_count(t) > TOKENS_MAX)
			abort();
		for (size_t cut = 0; cut <= size && cut < 64; cut += 7) {
			rc = tokens_verify(t, text + cut, size - cut, &scopes, name, sizeof(name));
			if (rc != 0 && rc != -EACCES)
				abort();
			if (rc == 0 && (scopes & ~TOKENS_SCOPE_ALL))
				abort();
		}
		tokens_free(t);
	}
	/* Scope lists: parse -> format -> parse is stable. */
	if (size < 512 && tokens_scopes_parse(text, size, &scopes, err, sizeof(err)) == 0) {
		char out[256];
		tokens_scopes_format(scopes, out, sizeof(out));
		if (tokens_scopes_parse(out, strlen(out), &again, err, sizeof(err)) != 0 ||
		    again != scopes)
			abort();
	}
	(void)tokens_name_valid(text, size);
	return 0;
}
