/*
 * pgauth.c - authentication for the PostgreSQL pooler.
 *
 * What: (1) the auth_file, PgBouncer's userlist.txt format, where each
 * user's password is plaintext, an md5 hash ("md5" + 32 hex) or a
 * SCRAM-SHA-256 secret as PostgreSQL stores it in pg_authid; (2) the
 * SCRAM-SHA-256 exchange of RFC 5802 / RFC 7677 in both roles: as server
 * when a client logs in to the pooler, as client when the pooler logs in
 * to PostgreSQL; (3) md5 password hashing for the older method.
 *
 * How: the cryptographic primitives are OpenSSL's libcrypto (PBKDF2,
 * HMAC-SHA-256, SHA-256, MD5, base64, RAND_bytes, CRYPTO_memcmp for
 * constant-time comparison). What is written here is the message
 * grammar of SCRAM, which no Debian library offers as a server (libpq
 * only has the client role, inside its own connection object; Cyrus SASL
 * would pull in a daemon-style plugin system for one mechanism).
 * Plaintext userlist entries get their SCRAM secret derived once when the
 * file is loaded, so a login costs a few HMACs, never 4096 PBKDF2 rounds.
 *
 * Not here: channel binding (the pooler answers SSLRequest with 'N', so
 * SCRAM-SHA-256-PLUS never applies), SASLprep normalisation of non-ASCII
 * passwords, authzid, and auth_query (looking users up in the database).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "hotpath/pgauth.h"

#define PGA_FILE_MAX (1024 * 1024)
#define PGA_LINE_MAX 4096
#define PGA_USERS_MAX 10000
#define PGA_DEFAULT_ITER 4096

struct pga_userlist {
	unsigned n, cap;
	struct pga_user *users;
	/* open addressing on the name: user index + 1, 0 empty; at most
	 * half full. A login looks its user up in O(1), not by a walk over
	 * up to PGA_USERS_MAX names. */
	uint32_t *idx;
	unsigned nidx;                  /* power of two */
};

/* ---- base64 ------------------------------------------------------------- */

static int b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
	if (outlen < 4 * ((n + 2) / 3) + 1)
		return -ENOBUFS;
	return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Strict base64 (padding required, no blanks). Returns bytes or -EINVAL. */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
	uint8_t tmp[PGA_MSG_MAX];
	size_t pad = 0;
	int r;

	if (n == 0 || n % 4 || n / 4 * 3 > sizeof(tmp))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';

		if (ch == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (!ok || pad)
			return -EINVAL;
	}
	r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
	if (r < 0 || (size_t)r < pad || (size_t)r - pad > outlen)
		return -EINVAL;
	memcpy(out, tmp, (size_t)r - pad);
	return r - (int)pad;
}

/* ---- primitives --------------------------------------------------------- */

static void hmac256(const uint8_t *key, size_t klen, const void *msg, size_t mlen,
		    uint8_t out[PGA_KEY_LEN])
{
	unsigned olen = PGA_KEY_LEN;

	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen);
}

static void sha256(const uint8_t *in, size_t n, uint8_t out[PGA_KEY_LEN])
{
	SHA256(in, n, out);
}

int pga_scram_make_secret(const char *password, const uint8_t *salt, size_t salt_len,
			  unsigned iterations, struct pga_scram_secret *out)
{
	uint8_t salted[PGA_KEY_LEN], client_key[PGA_KEY_LEN];

	if (!password || salt_len == 0 || salt_len > PGA_SALT_MAX || iterations == 0 ||
	    iterations > PGA_SCRAM_ITER_MAX)
		return -EINVAL;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
			      (int)iterations, EVP_sha256(), PGA_KEY_LEN, salted) != 1)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	out->iterations = iterations;
	out->salt_len = salt_len;
	memcpy(out->salt, salt, salt_len);
	hmac256(salted, PGA_KEY_LEN, "Client Key", 10, client_key);
	sha256(client_key, PGA_KEY_LEN, out->stored_key);
	hmac256(salted, PGA_KEY_LEN, "Server Key", 10, out->server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return 0;
}

int pga_scram_parse_secret(const char *s, struct pga_scram_secret *out)
{
	const char *p = s, *colon, *dollar;
	char *end;
	unsigned long it;
	int n;

	if (strncmp(p, "SCRAM-SHA-256$", 14) != 0)
		return -EINVAL;
	p += 14;
	memset(out, 0, sizeof(*out));
	it = strtoul(p, &end, 10);
	if (end == p || *end != ':' || it == 0 || it > PGA_SCRAM_ITER_MAX)
		return -EINVAL;
	out->iterations = (unsigned)it;
	p = end + 1;
	dollar = strchr(p, '$');
	if (!dollar)
		return -EINVAL;
	n = b64_decode(p, (size_t)(dollar - p), out->salt, sizeof(out->salt));
	if (n <= 0)
		return -EINVAL;
	out->salt_len = (size_t)n;
	p = dollar + 1;
	colon = strchr(p, ':');
	if (!colon)
		return -EINVAL;
	if (b64_decode(p, (size_t)(colon - p), out->stored_key, PGA_KEY_LEN) != PGA_KEY_LEN ||
	    b64_decode(colon + 1, strlen(colon + 1), out->server_key, PGA_KEY_LEN) != PGA_KEY_LEN)
		return -EINVAL;
	return 0;
}

/* ---- userlist ------------------------------------------------------------ */

static void ul_err(char *err, size_t errlen, const char *name, unsigned line, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s:%u: %s", name, line, why);
}

/* One "quoted" field at *pp into out; "" is a literal quote. */
static const char *ul_field(const char **pp, const char *end, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t n = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p >= end || *p != '"')
		return "expected a \"quoted\" field";
	p++;
	for (;;) {
		if (p >= end)
			return "unterminated quote";
		if (*p == '"') {
			if (p + 1 < end && p[1] == '"') {
				p++;
			} else {
				p++;
				break;
			}
		} else if (*p == '\0') {
			return "NUL byte in field";
		}
		if (n + 1 >= outlen)
			return "field too long";
		out[n++] = *p++;
	}
	out[n] = '\0';
	*pp = p;
	return NULL;
}

static bool is_md5_hash(const char *s)
{
	if (strncmp(s, "md5", 3) != 0 || strlen(s) != 35)
		return false;
	for (int i = 3; i < 35; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* Slot of `user` in l->idx: its entry, or the empty slot it would take. */
static unsigned idx_slot(const struct pga_userlist *l, const char *user)
{
	unsigned i = (unsigned)name_hash(user) & (l->nidx - 1);

	while (l->idx[i] && strcmp(l->users[l->idx[i] - 1].name, user) != 0)
		i = (i + 1) & (l->nidx - 1);
	return i;
}

/* Room in the index for one more user. 0 or -ENOMEM. */
static int idx_grow(struct pga_userlist *l)
{
	unsigned n = l->nidx ? l->nidx : 32;
	uint32_t *old = l->idx;
	unsigned oldn = l->nidx;

	if ((l->n + 1) * 2 <= l->nidx)
		return 0;
	while ((l->n + 1) * 2 > n)
		n *= 2;
	l->idx = calloc(n, sizeof(*l->idx));
	if (!l->idx) {
		l->idx = old;
		return -ENOMEM;
	}
	l->nidx = n;
	for (unsigned i = 0; i < oldn; i++)
		if (old[i])
			l->idx[idx_slot(l, l->users[old[i] - 1].name)] = old[i];
	free(old);
	return 0;
}

struct pga_userlist *pga_userlist_parse(const char *text, size_t len, const char *name,
					char *err, size_t errlen)
{
	struct pga_userlist *l;
	const char *p = text, *end = text + len;
	unsigned line = 0;

	if (err && errlen)
		err[0] = '\0';
	if (len > PGA_FILE_MAX) {
		ul_err(err, errlen, name, 0, "file larger than 1 MiB");
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *q, *why;
		struct pga_user u;

		if (!eol)
			eol = end;
		line++;
		if (eol - p > PGA_LINE_MAX) {
			ul_err(err, errlen, name, line, "line longer than 4096 bytes");
			goto fail;
		}
		q = p;
		while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q == eol || *q == '#' || *q == ';') {
			p = eol + (eol < end);
			continue;
		}
		memset(&u, 0, sizeof(u));
		why = ul_field(&q, eol, u.name, sizeof(u.name));
		if (!why && !u.name[0])
			why = "empty user name";
		if (!why)
			why = ul_field(&q, eol, u.pass, sizeof(u.pass));
		if (why) {
			ul_err(err, errlen, name, line, why);
			goto fail;
		}
		if (strncmp(u.pass, "SCRAM-SHA-256$", 14) == 0) {
			u.kind = PGA_SCRAM;
			if (pga_scram_parse_secret(u.pass, &u.scram) != 0) {
				ul_err(err, errlen, name, line, "malformed SCRAM-SHA-256 secret "
				       "(expected SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY)");
				goto fail;
			}
		} else if (is_md5_hash(u.pass)) {
			u.kind = PGA_MD5;
		} else {
			uint8_t salt[16];

			u.kind = PGA_PLAIN;
			if (RAND_bytes(salt, sizeof(salt)) != 1 ||
			    pga_scram_make_secret(u.pass, salt, sizeof(salt), PGA_DEFAULT_ITER,
						  &u.scram) != 0) {
				ul_err(err, errlen, name, line, "cannot derive a SCRAM secret");
				goto fail;
			}
		}
		if (pga_userlist_find(l, u.name)) {
			ul_err(err, errlen, name, line, "user listed twice");
			goto fail;
		}
		if (l->n == PGA_USERS_MAX) {
			ul_err(err, errlen, name, line, "more than 10000 users");
			goto fail;
		}
		if (l->n == l->cap) {
			unsigned ncap = l->cap ? l->cap * 2 : 16;
			struct pga_user *nu = realloc(l->users, ncap * sizeof(*nu));

			if (!nu) {
				ul_err(err, errlen, name, line, "out of memory");
				goto fail;
			}
			l->users = nu;
			l->cap = ncap;
		}
		if (idx_grow(l) != 0) {
			ul_err(err, errlen, name, line, "out of memory");
			goto fail;
		}
		l->users[l->n++] = u;
		l->idx[idx_slot(l, u.name)] = l->n;
		OPENSSL_cleanse(&u, sizeof(u));
		p = eol + (eol < end);
	}
	return l;
fail:
	pga_userlist_free(l);
	return NULL;
}

struct pga_userlist *pga_userlist_load(const char *path, char *err, size_t errlen)
{
	struct pga_userlist *l;
	struct stat st;
	char *text;
	ssize_t got;
	size_t used = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || st.st_size > PGA_FILE_MAX) {
		snprintf(err, errlen, "%s: %s", path,
			 st.st_size > PGA_FILE_MAX ? "larger than 1 MiB" : strerror(errno));
		close(fd);
		return NULL;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	while (used < (size_t)st.st_size &&
	       (got = read(fd, text + used, (size_t)st.st_size - used)) > 0)
		used += (size_t)got;
	close(fd);
	l = pga_userlist_parse(text, used, path, err, errlen);
	OPENSSL_cleanse(text, used);
	free(text);
	return l;
}

void pga_userlist_free(struct pga_userlist *l)
{
	if (!l)
		return;
	if (l->users)
		OPENSSL_cleanse(l->users, l->cap * sizeof(*l->users));
	free(l->users);
	free(l->idx);
	free(l);
}

const struct pga_user *pga_userlist_find(const struct pga_userlist *l, const char *user)
{
	unsigned i;

	if (!l || !l->nidx)
		return NULL;
	i = idx_slot(l, user);
	return l->idx[i] ? &l->users[l->idx[i] - 1] : NULL;
}

unsigned pga_userlist_count(const struct pga_userlist *l)
{
	return l ? l->n : 0;
}

/* ---- SCRAM: shared ------------------------------------------------------- */

/* Value of attribute `a` ("r=...") in a comma list, copied into out. */
static int scram_attr(const char *msg, size_t len, char a, char *out, size_t outlen)
{
	const char *p = msg, *end = msg + len;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t n;

		if (!comma)
			comma = end;
		if (comma - p >= 2 && p[0] == a && p[1] == '=') {
			n = (size_t)(comma - p - 2);
			if (n + 1 > outlen)
				return -EPROTO;
			memcpy(out, p + 2, n);
			out[n] = '\0';
			return 0;
		}
		p = comma + 1;
	}
	return -EPROTO;
}

static bool scram_nonce_ok(const char *n)
{
	if (!*n)
		return false;
	for (; *n; n++)
		if (*n < 0x21 || *n > 0x7e || *n == ',')
			return false;
	return true;
}

static int scram_random_nonce(char *out, size_t outlen)
{
	uint8_t raw[PGA_NONCE_LEN];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	return b64_encode(raw, sizeof(raw), out, outlen) < 0 ? -ENOBUFS : 0;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static int scram_auth_message(char *out, size_t outlen, const char *cfb, const char *sf,
			      const char *cf, size_t cflen)
{
	int n = snprintf(out, outlen, "%s,%s,%.*s", cfb, sf, (int)cflen, cf);

	return n < 0 || (size_t)n >= outlen ? -EPROTO : n;
}

/* ---- SCRAM: server -------------------------------------------------------- */

int pga_scram_server_first(struct pga_scram_server *s, const struct pga_scram_secret *secret,
			   const char *msg, size_t len, const char *server_nonce,
			   char *out, size_t outlen)
{
	char cnonce[PGA_MSG_MAX], snonce[PGA_MSG_MAX], salt64[PGA_SALT_MAX * 2];
	const char *p = msg, *end = msg + len, *bare;
	int n;

	memset(s, 0, sizeof(*s));
	s->secret = *secret;
	if (len == 0 || len >= PGA_MSG_MAX || memchr(msg, '\0', len))
		return -EPROTO;
	/* gs2-header: cbind-flag "," [authzid] "," */
	if (*p == 'p')
		return -EOPNOTSUPP;
	if ((*p != 'n' && *p != 'y') || end - p < 3 || p[1] != ',')
		return -EPROTO;
	if (p[2] != ',')
		return -EPROTO;         /* authzid: not supported */
	bare = p + 3;
	memcpy(s->gs2, msg, 3);
	s->gs2[3] = '\0';
	n = (int)(end - bare);
	memcpy(s->client_first_bare, bare, (size_t)n);
	s->client_first_bare[n] = '\0';
	/* client-first-bare: [reserved-mext ","] username "," nonce ["," ext] */
	if (strncmp(s->client_first_bare, "m=", 2) == 0)
		return -EPROTO;
	if (strncmp(s->client_first_bare, "n=", 2) != 0 ||
	    scram_attr(s->client_first_bare, (size_t)n, 'r', cnonce, sizeof(cnonce)) != 0 ||
	    !scram_nonce_ok(cnonce))
		return -EPROTO;
	if (server_nonce)
		snprintf(snonce, sizeof(snonce), "%s", server_nonce);
	else if (scram_random_nonce(snonce, sizeof(snonce)) != 0)
		return -EIO;
	if (b64_encode(secret->salt, secret->salt_len, salt64, sizeof(salt64)) < 0)
		return -EPROTO;
	n = snprintf(s->nonce, sizeof(s->nonce), "%s%s", cnonce, snonce);
	if (n < 0 || (size_t)n >= sizeof(s->nonce))
		return -EPROTO;
	n = snprintf(s->server_first, sizeof(s->server_first), "r=%s,s=%s,i=%u", s->nonce,
		     salt64, secret->iterations);
	if (n < 0 || (size_t)n >= sizeof(s->server_first) || (size_t)n >= outlen)
		return -EPROTO;
	memcpy(out, s->server_first, (size_t)n + 1);
	s->state = 1;
	return n;
}

int pga_scram_server_final(struct pga_scram_server *s, const char *msg, size_t len,
			   char *out, size_t outlen, uint8_t *client_key_out)
{
	char cbind[128], gs2_64[128], nonce[PGA_MSG_MAX], proof64[128], am[3 * PGA_MSG_MAX];
	uint8_t proof[PGA_KEY_LEN], sig[PGA_KEY_LEN], client_key[PGA_KEY_LEN], stored[PGA_KEY_LEN];
	const char *pp;
	int amlen, n;

	if (s->state != 1 || len == 0 || len >= PGA_MSG_MAX || memchr(msg, '\0', len))
		return -EPROTO;
	s->state = 2;
	/* proof is the last attribute */
	pp = NULL;
	for (size_t i = len; i >= 3; i--)
		if (msg[i - 3] == ',' && msg[i - 2] == 'p' && msg[i - 1] == '=') {
			pp = msg + i - 3;
			break;
		}
	if (!pp || strncmp(msg, "c=", 2) != 0)
		return -EPROTO;
	if (scram_attr(msg, (size_t)(pp - msg), 'c', cbind, sizeof(cbind)) != 0 ||
	    scram_attr(msg, (size_t)(pp - msg), 'r', nonce, sizeof(nonce)) != 0 ||
	    scram_attr(pp + 1, len - (size_t)(pp + 1 - msg), 'p', proof64, sizeof(proof64)) != 0)
		return -EPROTO;
	if (b64_encode((const uint8_t *)s->gs2, strlen(s->gs2), gs2_64, sizeof(gs2_64)) < 0 ||
	    strcmp(cbind, gs2_64) != 0)
		return -EPROTO;
	if (strcmp(nonce, s->nonce) != 0)
		return -EPROTO;
	if (b64_decode(proof64, strlen(proof64), proof, sizeof(proof)) != PGA_KEY_LEN)
		return -EPROTO;
	amlen = scram_auth_message(am, sizeof(am), s->client_first_bare, s->server_first, msg,
				   (size_t)(pp - msg));
	if (amlen < 0)
		return amlen;
	hmac256(s->secret.stored_key, PGA_KEY_LEN, am, (size_t)amlen, sig);
	for (int i = 0; i < PGA_KEY_LEN; i++)
		client_key[i] = proof[i] ^ sig[i];
	sha256(client_key, PGA_KEY_LEN, stored);
	if (CRYPTO_memcmp(stored, s->secret.stored_key, PGA_KEY_LEN) != 0)
		return -EACCES;
	if (client_key_out)
		memcpy(client_key_out, client_key, PGA_KEY_LEN);
	hmac256(s->secret.server_key, PGA_KEY_LEN, am, (size_t)amlen, sig);
	if (outlen < 3)
		return -ENOBUFS;
	memcpy(out, "v=", 2);
	n = b64_encode(sig, PGA_KEY_LEN, out + 2, outlen - 2);
	if (n < 0)
		return n;
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return n + 2;
}

/* ---- SCRAM: client --------------------------------------------------------- */

int pga_scram_client_first(struct pga_scram_client *c, const char *nonce, char *out,
			   size_t outlen)
{
	int n;

	memset(c, 0, sizeof(*c));
	if (nonce)
		snprintf(c->client_nonce, sizeof(c->client_nonce), "%s", nonce);
	else if (scram_random_nonce(c->client_nonce, sizeof(c->client_nonce)) != 0)
		return -EIO;
	snprintf(c->client_first_bare, sizeof(c->client_first_bare), "n=,r=%s", c->client_nonce);
	n = snprintf(out, outlen, "n,,%s", c->client_first_bare);
	if (n < 0 || (size_t)n >= outlen)
		return -ENOBUFS;
	c->state = 1;
	return n;
}

int pga_scram_client_final(struct pga_scram_client *c, const char *password, const char *msg,
			   size_t len, char *out, size_t outlen)
{
	char nonce[PGA_MSG_MAX], salt64[PGA_MSG_MAX], iter[16], sf[PGA_MSG_MAX];
	char cfwp[PGA_MSG_MAX + 16], am[3 * PGA_MSG_MAX + 32], proof64[64];
	uint8_t salt[PGA_SALT_MAX], salted[PGA_KEY_LEN], ck[PGA_KEY_LEN], sk[PGA_KEY_LEN];
	uint8_t stored[PGA_KEY_LEN], sig[PGA_KEY_LEN], proof[PGA_KEY_LEN];
	char *end;
	unsigned long it;
	int saltlen, cflen, amlen, n;

	if (c->state != 1 || len == 0 || len >= sizeof(sf) || memchr(msg, '\0', len))
		return -EPROTO;
	memcpy(sf, msg, len);
	sf[len] = '\0';
	if (scram_attr(sf, len, 'r', nonce, sizeof(nonce)) ||
	    scram_attr(sf, len, 's', salt64, sizeof(salt64)) ||
	    scram_attr(sf, len, 'i', iter, sizeof(iter)))
		return -EPROTO;
	if (strncmp(nonce, c->client_nonce, strlen(c->client_nonce)) != 0 ||
	    strlen(nonce) <= strlen(c->client_nonce) || !scram_nonce_ok(nonce))
		return -EPROTO;
	it = strtoul(iter, &end, 10);
	if (*end || it == 0 || it > PGA_SCRAM_ITER_MAX)
		return -EPROTO;
	saltlen = b64_decode(salt64, strlen(salt64), salt, sizeof(salt));
	if (saltlen <= 0)
		return -EPROTO;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, saltlen, (int)it,
			      EVP_sha256(), PGA_KEY_LEN, salted) != 1)
		return -ENOMEM;
	hmac256(salted, PGA_KEY_LEN, "Client Key", 10, ck);
	hmac256(salted, PGA_KEY_LEN, "Server Key", 10, sk);
	sha256(ck, PGA_KEY_LEN, stored);
	cflen = snprintf(cfwp, sizeof(cfwp), "c=biws,r=%s", nonce);
	if (cflen < 0 || (size_t)cflen >= sizeof(cfwp))
		return -EPROTO;
	amlen = scram_auth_message(am, sizeof(am), c->client_first_bare, sf, cfwp, (size_t)cflen);
	if (amlen < 0)
		return amlen;
	hmac256(stored, PGA_KEY_LEN, am, (size_t)amlen, sig);
	for (int i = 0; i < PGA_KEY_LEN; i++)
		proof[i] = ck[i] ^ sig[i];
	hmac256(sk, PGA_KEY_LEN, am, (size_t)amlen, c->server_signature);
	if (b64_encode(proof, PGA_KEY_LEN, proof64, sizeof(proof64)) < 0)
		return -EPROTO;
	n = snprintf(out, outlen, "%s,p=%s", cfwp, proof64);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(ck, sizeof(ck));
	if (n < 0 || (size_t)n >= outlen)
		return -ENOBUFS;
	c->state = 2;
	return n;
}

int pga_scram_client_verify(struct pga_scram_client *c, const char *msg, size_t len)
{
	char v[128];
	uint8_t sig[PGA_KEY_LEN];

	if (c->state != 2 || len >= sizeof(v))
		return -EPROTO;
	if (scram_attr(msg, len, 'e', v, sizeof(v)) == 0)
		return -EACCES;
	if (scram_attr(msg, len, 'v', v, sizeof(v)) != 0 ||
	    b64_decode(v, strlen(v), sig, sizeof(sig)) != PGA_KEY_LEN)
		return -EPROTO;
	c->state = 3;
	return CRYPTO_memcmp(sig, c->server_signature, PGA_KEY_LEN) == 0 ? 0 : -EACCES;
}

/* ---- md5 ------------------------------------------------------------------- */

/* OpenSSL 3 looks a digest up in its provider store on every
 * EVP_DigestInit_ex(EVP_md5()) (about half of an md5 login's hashing
 * time); fetched once here, the lookup goes. Kept for the process's life. */
static EVP_MD *md5_md;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void md5_fetch(void)
{
	md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
}

static void md5_hex(const void *a, size_t al, const void *b, size_t bl, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[16];
	unsigned dl = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	memset(d, 0, sizeof(d));
	pthread_once(&md5_once, md5_fetch);
	if (ctx) {
		if (md5_md)
			EVP_DigestInit_ex2(ctx, md5_md, NULL);
		else
			EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
		EVP_DigestUpdate(ctx, a, al);
		EVP_DigestUpdate(ctx, b, bl);
		EVP_DigestFinal_ex(ctx, d, &dl);
		EVP_MD_CTX_free(ctx);
	}
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[32] = '\0';
}

void pga_md5_stored(const char *user, const char *password, char out[36])
{
	memcpy(out, "md5", 3);
	md5_hex(password, strlen(password), user, strlen(user), out + 3);
}

void pga_md5_response(const char *stored, const uint8_t salt[4], char out[36])
{
	memcpy(out, "md5", 3);
	md5_hex(stored + 3, 32, salt, 4, out + 3);
}
