/*
 * tokens.c - the REST API's bearer tokens (see include/hotpath/tokens.h).
 *
 * The file is parsed line by line into a flat array of {name, sha256,
 * scopes}. Parsing is strict on purpose: a token file is security
 * configuration, so anything we do not fully understand (an unknown scope,
 * a hash of the wrong length, a name defined twice, the same token under
 * two names) refuses the whole file with the line number, rather than
 * silently granting or dropping access. A file that other users can read or
 * write is refused too: the hashes cannot be replayed, but a writable file
 * lets anyone grant themselves `*`, and a readable one invites offline
 * guessing of weak tokens.
 *
 * Verification hashes the presented token with OpenSSL's EVP SHA-256 and
 * compares it with every stored hash using CRYPTO_memcmp, remembering the
 * match with masks instead of returning early, so the time taken does not
 * depend on which entry (if any) matched. Tokens we generate are 32 bytes
 * from getrandom(2), so a plain (unsalted) SHA-256 is enough; the file is
 * not meant for human-chosen passwords.
 *
 * Nothing here logs or touches daemon state; api.c decides what to do with
 * the messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "hotpath/tokens.h"

struct token_entry {
	char name[TOKENS_NAME_MAX];
	uint8_t hash[TOKENS_HASH_LEN];
	uint32_t scopes;
	unsigned line;
};

struct tokens {
	unsigned n, cap;
	struct token_entry *v;
};

static const char *const scope_names[TOKENS_SCOPE_COUNT] = {
	"perf:read", "perf:optimize", "profile:read", "cache:admin",
	"cache:invalidate", "cache:read", "cache:policy", "metrics:read",
};

/* Append one formatted line to err, keeping it NUL-terminated. */
static void HP_PRINTF(3, 4) err_add(char *err, size_t errlen, const char *fmt, ...)
{
	size_t used;
	va_list ap;

	if (!err || errlen == 0)
		return;
	used = strnlen(err, errlen);
	if (used + 1 >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
	used = strnlen(err, errlen);
	if (used + 1 < errlen) {
		err[used] = '\n';
		err[used + 1] = '\0';
	}
}

/* Drop the trailing newline err_add leaves, for single-line consumers. */
static void err_trim(char *err, size_t errlen)
{
	size_t n;

	if (!err || errlen == 0)
		return;
	n = strnlen(err, errlen);
	while (n > 0 && err[n - 1] == '\n')
		err[--n] = '\0';
}

bool tokens_name_valid(const char *s, size_t len)
{
	if (!s || len == 0 || len >= TOKENS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == '@'))
			return false;
	}
	return true;
}

const char *tokens_scope_name(uint32_t bit)
{
	for (unsigned i = 0; i < TOKENS_SCOPE_COUNT; i++)
		if (bit == (1u << i))
			return scope_names[i];
	return NULL;
}

void tokens_scopes_format(uint32_t scopes, char *out, size_t outlen)
{
	size_t used = 0;

	if (!out || outlen == 0)
		return;
	out[0] = '\0';
	if ((scopes & TOKENS_SCOPE_ALL) == TOKENS_SCOPE_ALL) {
		snprintf(out, outlen, "*");
		return;
	}
	for (unsigned i = 0; i < TOKENS_SCOPE_COUNT; i++) {
		int n;

		if (!(scopes & (1u << i)))
			continue;
		n = snprintf(out + used, outlen - used, "%s%s", used ? "," : "", scope_names[i]);
		if (n < 0 || (size_t)n >= outlen - used)
			return;
		used += (size_t)n;
	}
}

int tokens_scopes_parse(const char *s, size_t len, uint32_t *out, char *err, size_t errlen)
{
	uint32_t set = 0;
	size_t i = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!s || len == 0) {
		if (err && errlen)
			snprintf(err, errlen, "no scopes given");
		return -EINVAL;
	}
	while (i <= len) {
		size_t j = i, n;
		bool known = false;

		while (j < len && s[j] != ',')
			j++;
		n = j - i;
		if (n == 0) {
			if (err && errlen)
				snprintf(err, errlen, "empty scope in list (stray comma)");
			return -EINVAL;
		}
		if (n == 1 && s[i] == '*') {
			set |= TOKENS_SCOPE_ALL;
			known = true;
		}
		for (unsigned k = 0; !known && k < TOKENS_SCOPE_COUNT; k++) {
			if (strlen(scope_names[k]) == n && memcmp(scope_names[k], s + i, n) == 0) {
				set |= 1u << k;
				known = true;
			}
		}
		if (!known) {
			if (err && errlen) {
				int shown = n > 64 ? 64 : (int)n;
				snprintf(err, errlen,
					 "unknown scope '%.*s' (known: perf:read perf:optimize profile:read "
					 "cache:admin cache:invalidate cache:read cache:policy metrics:read *)",
					 shown, s + i);
				/* Keep control bytes out of log lines. */
				for (char *p = err; *p; p++)
					if ((unsigned char)*p < 0x20 || *p == 0x7f)
						*p = '?';
			}
			return -EINVAL;
		}
		i = j + 1;
	}
	*out = set;
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int sha256(const char *data, size_t len, uint8_t out[TOKENS_HASH_LEN])
{
	unsigned int outlen = 0;

	if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 || outlen != TOKENS_HASH_LEN)
		return -EIO;
	return 0;
}

int tokens_hash_hex(const char *token, size_t len, char out[2 * TOKENS_HASH_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t h[TOKENS_HASH_LEN];
	int rc = sha256(token, len, h);

	if (rc)
		return rc;
	for (unsigned i = 0; i < TOKENS_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[2 * TOKENS_HASH_LEN] = '\0';
	return 0;
}

int tokens_generate(char *out, size_t outlen)
{
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t raw[TOKENS_RANDOM_LEN + 2] = { 0 };
	size_t got = 0, o = 0;
	const size_t need = (TOKENS_RANDOM_LEN * 4 + 2) / 3;   /* 43, unpadded */

	if (!out || outlen < need + 1)
		return -ENOSPC;
	while (got < TOKENS_RANDOM_LEN) {
		ssize_t n = getrandom(raw + got, TOKENS_RANDOM_LEN - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < TOKENS_RANDOM_LEN; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		size_t left = TOKENS_RANDOM_LEN - i;
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (left > 1)
			out[o++] = b64url[(v >> 6) & 63];
		if (left > 2)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

static int tokens_push(struct tokens *t, const struct token_entry *e)
{
	if (t->n == t->cap) {
		unsigned ncap = t->cap ? t->cap * 2 : 16;
		struct token_entry *nv = realloc(t->v, (size_t)ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = ncap;
	}
	t->v[t->n++] = *e;
	return 0;
}

/* Split off the next whitespace-separated field of [*p, end). */
static bool next_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end)
		return false;
	*f = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*flen = (size_t)(s - *f);
	*p = s;
	return true;
}

/* Parse one non-comment line into e. 0 or -EINVAL with a message. */
static int parse_line(const char *s, size_t len, const char *src, unsigned line,
		      struct token_entry *e, char *err, size_t errlen)
{
	const char *p = s, *end = s + len, *f[4];
	size_t fl[4];
	unsigned nf = 0;
	char why[256];

	while (nf < 4 && next_field(&p, end, &f[nf], &fl[nf]))
		nf++;
	if (nf != 3) {
		err_add(err, errlen, "%s:%u: expected 'NAME SHA256-HEX SCOPE,SCOPE', found %s fields",
			src, line, nf > 3 ? "more than 3" : nf == 2 ? "2" : "1");
		return -EINVAL;
	}
	if (!tokens_name_valid(f[0], fl[0])) {
		err_add(err, errlen, "%s:%u: bad token name (1-63 characters of A-Z a-z 0-9 _ . @ -)",
			src, line);
		return -EINVAL;
	}
	memcpy(e->name, f[0], fl[0]);
	e->name[fl[0]] = '\0';
	if (fl[1] != 2 * TOKENS_HASH_LEN) {
		err_add(err, errlen, "%s:%u: token '%s': hash must be %u hex digits (SHA-256), found %zu "
			"characters", src, line, e->name, 2 * TOKENS_HASH_LEN, fl[1]);
		return -EINVAL;
	}
	for (unsigned i = 0; i < TOKENS_HASH_LEN; i++) {
		int hi = hexval((unsigned char)f[1][2 * i]), lo = hexval((unsigned char)f[1][2 * i + 1]);
		if (hi < 0 || lo < 0) {
			err_add(err, errlen, "%s:%u: token '%s': hash is not hexadecimal", src, line,
				e->name);
			return -EINVAL;
		}
		e->hash[i] = (uint8_t)(hi << 4 | lo);
	}
	if (tokens_scopes_parse(f[2], fl[2], &e->scopes, why, sizeof(why))) {
		err_add(err, errlen, "%s:%u: token '%s': %s", src, line, e->name, why);
		return -EINVAL;
	}
	e->line = line;
	return 0;
}

int tokens_parse(const char *text, size_t len, const char *srcname, struct tokens **out,
		 char *err, size_t errlen)
{
	struct tokens *t;
	const char *src = srcname ? srcname : "tokens";
	size_t pos = 0;
	unsigned line = 0;
	int rc = 0;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (len > TOKENS_FILE_MAX) {
		err_add(err, errlen, "%s: larger than %u bytes", src, TOKENS_FILE_MAX);
		err_trim(err, errlen);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - s) : len - pos;
		const char *hash;
		struct token_entry e;

		pos += l + (nl ? 1 : 0);
		line++;
		if (l > TOKENS_LINE_MAX) {
			err_add(err, errlen, "%s:%u: line longer than %u bytes", src, line, TOKENS_LINE_MAX);
			rc = -EINVAL;
			continue;
		}
		if (memchr(s, '\0', l)) {
			err_add(err, errlen, "%s:%u: NUL byte in line", src, line);
			rc = -EINVAL;
			continue;
		}
		hash = memchr(s, '#', l);
		if (hash)
			l = (size_t)(hash - s);
		while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		while (l > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			l--;
		}
		if (l == 0)
			continue;
		memset(&e, 0, sizeof(e));
		if (parse_line(s, l, src, line, &e, err, errlen)) {
			rc = -EINVAL;
			continue;
		}
		for (unsigned i = 0; i < t->n; i++) {
			if (strcmp(t->v[i].name, e.name) == 0) {
				err_add(err, errlen, "%s:%u: duplicate token name '%s' (first on line %u)",
					src, line, e.name, t->v[i].line);
				rc = -EINVAL;
				break;
			}
			if (memcmp(t->v[i].hash, e.hash, TOKENS_HASH_LEN) == 0) {
				err_add(err, errlen, "%s:%u: token '%s' has the same hash as '%s' (line %u): "
					"one token, two names", src, line, e.name, t->v[i].name,
					t->v[i].line);
				rc = -EINVAL;
				break;
			}
		}
		if (rc)
			continue;
		if (t->n >= TOKENS_MAX) {
			err_add(err, errlen, "%s:%u: more than %u tokens", src, line, TOKENS_MAX);
			rc = -EINVAL;
			break;
		}
		if (tokens_push(t, &e)) {
			rc = -ENOMEM;
			break;
		}
	}
	if (rc) {
		tokens_free(t);
		err_trim(err, errlen);
		return rc;
	}
	*out = t;
	return 0;
}

int tokens_load_file(const char *path, struct tokens **out, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd, rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	/* Check the file we opened, not the name (no race with a rename). */
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		if (err && errlen)
			snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 0007) {
		rc = -EPERM;
		if (err && errlen)
			snprintf(err, errlen, "%s: mode %04o lets other users %s the tokens; run: chmod 600 %s",
				 path, (unsigned)(st.st_mode & 07777),
				 (st.st_mode & 0002) ? "modify" : "read", path);
		goto out;
	}
	if (st.st_size > (off_t)TOKENS_FILE_MAX) {
		rc = -EFBIG;
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than %u bytes", path, TOKENS_FILE_MAX);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			if (err && errlen)
				snprintf(err, errlen, "%s: read: %s", path, strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;          /* shrank under us: parse what we have */
		got += (size_t)n;
	}
	rc = tokens_parse(text, got, path, out, err, errlen);
out:
	if (text) {
		OPENSSL_cleanse(text, got);
		free(text);
	}
	close(fd);
	return rc;
}

unsigned tokens_count(const struct tokens *t)
{
	return t ? t->n : 0;
}

int tokens_verify(const struct tokens *t, const char *token, size_t len, uint32_t *scopes,
		  char *name, size_t namelen)
{
	uint8_t h[TOKENS_HASH_LEN];
	size_t found = 0, idx = 0;

	if (!t || t->n == 0 || !token || len == 0 || len > TOKENS_TOKEN_MAX)
		return -EACCES;
	if (sha256(token, len, h))
		return -EACCES;
	for (size_t i = 0; i < t->n; i++) {
		/* eq is 1 on a match, 0 otherwise; mask is all ones or zero. */
		size_t eq = (size_t)(CRYPTO_memcmp(h, t->v[i].hash, TOKENS_HASH_LEN) == 0);
		size_t mask = (size_t)0 - eq;
		idx = (idx & ~mask) | (i & mask);
		found |= eq;
	}
	OPENSSL_cleanse(h, sizeof(h));
	if (!found)
		return -EACCES;
	if (scopes)
		*scopes = t->v[idx].scopes;
	if (name && namelen)
		snprintf(name, namelen, "%s", t->v[idx].name);
	return 0;
}

void tokens_free(struct tokens *t)
{
	if (!t)
		return;
	free(t->v);
	free(t);
}
