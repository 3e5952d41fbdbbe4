/*
 * tokens.h - bearer tokens of the REST API: the tokens file and verification.
 *
 * The tokens file holds one token a line, `NAME SHA256-HEX-OF-TOKEN
 * SCOPE,SCOPE` (`#` starts a comment, blank lines are ignored). Only the
 * SHA-256 of a token is stored, so the file can be read by the daemon
 * without holding anything a reader could replay. A presented token is
 * hashed and compared against every stored hash in constant time.
 *
 * Pure logic: no daemon state, no logging (errors come back as text), so
 * tests and fuzzers link it alone (with libcrypto).
 */
#ifndef HOTPATH_TOKENS_H
#define HOTPATH_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

/* Scopes, one bit each. */
#define TOKENS_SCOPE_PERF_READ        (1u << 0)
#define TOKENS_SCOPE_PERF_OPTIMIZE    (1u << 1)
#define TOKENS_SCOPE_PROFILE_READ     (1u << 2)
#define TOKENS_SCOPE_CACHE_ADMIN      (1u << 3)
#define TOKENS_SCOPE_CACHE_INVALIDATE (1u << 4)
#define TOKENS_SCOPE_CACHE_READ       (1u << 5)
#define TOKENS_SCOPE_CACHE_POLICY     (1u << 6)
#define TOKENS_SCOPE_METRICS_READ     (1u << 7)
#define TOKENS_SCOPE_COUNT            8
#define TOKENS_SCOPE_ALL              ((1u << TOKENS_SCOPE_COUNT) - 1)   /* "*" */

#define TOKENS_HASH_LEN   32        /* SHA-256 */
#define TOKENS_NAME_MAX   64        /* including the NUL */
#define TOKENS_MAX        4096      /* entries in one file */
#define TOKENS_FILE_MAX   (1u << 20)
#define TOKENS_LINE_MAX   4096
#define TOKENS_TOKEN_MAX  1024      /* longest presented token accepted */
#define TOKENS_RANDOM_LEN 32        /* bytes of a generated token */

struct tokens;

/*
 * Parse tokens-file text. `srcname` prefixes messages ("FILE:LINE: ...").
 * On success returns 0 and *out (caller frees with tokens_free); empty text
 * gives an empty set. On failure returns -EINVAL (malformed line, bad hex,
 * duplicate name or hash, unknown scope, too many entries) or -ENOMEM,
 * writes one line per problem to err (bounded, NUL-terminated) and leaves
 * *out NULL.
 */
int tokens_parse(const char *text, size_t len, const char *srcname, struct tokens **out,
		 char *err, size_t errlen) HP_MUST_CHECK;

/*
 * Read and parse `path`. Refuses (-EPERM) a file other users may read or
 * write (mode & 0007), with the chmod to run in err; -errno when it cannot
 * be read, -EFBIG over TOKENS_FILE_MAX; otherwise as tokens_parse.
 */
int tokens_load_file(const char *path, struct tokens **out, char *err,
		     size_t errlen) HP_MUST_CHECK;

/* Number of tokens in the set (0 for NULL). */
unsigned tokens_count(const struct tokens *t);

/*
 * Check a presented token: SHA-256 of it compared with every stored hash
 * using CRYPTO_memcmp, visiting all of them whatever matches. Returns 0 and
 * fills *scopes and name (may be NULL) on a match, -EACCES otherwise
 * (including an empty/NULL set or a token longer than TOKENS_TOKEN_MAX).
 */
int tokens_verify(const struct tokens *t, const char *token, size_t len, uint32_t *scopes,
		  char *name, size_t namelen) HP_MUST_CHECK;

/* Free a set. NULL is a no-op. */
void tokens_free(struct tokens *t);

/*
 * Parse "cache:read,perf:read" or "*" into a bit set. 0, or -EINVAL with
 * the offending scope named in err.
 */
int tokens_scopes_parse(const char *s, size_t len, uint32_t *out, char *err,
			size_t errlen) HP_MUST_CHECK;
/* Name of one scope bit ("cache:read"), NULL if not exactly one known bit. */
const char *tokens_scope_name(uint32_t bit);
/* Render a bit set as "a,b" or "*" into out (truncated, NUL-terminated). */
void tokens_scopes_format(uint32_t scopes, char *out, size_t outlen);
/* True if `s` is a usable token name: 1..63 of [A-Za-z0-9_.@-]. */
bool tokens_name_valid(const char *s, size_t len);

/* SHA-256 of `token` as 64 lowercase hex digits + NUL. 0 or -EIO. */
int tokens_hash_hex(const char *token, size_t len, char out[2 * TOKENS_HASH_LEN + 1]) HP_MUST_CHECK;
/*
 * Fresh token: TOKENS_RANDOM_LEN random bytes from the kernel CSPRNG,
 * base64url without padding (43 characters). `out` needs 44 bytes.
 * 0, -ENOSPC if outlen is too small, or -errno from getrandom.
 */
int tokens_generate(char *out, size_t outlen) HP_MUST_CHECK;

#endif
