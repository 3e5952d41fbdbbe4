/*
 * pgauth.h - PostgreSQL authentication for the pooler: the auth_file
 * (PgBouncer's userlist.txt format), SCRAM-SHA-256 (RFC 5802/7677) as
 * server (clients logging in to the pooler) and as client (the pooler
 * logging in to PostgreSQL), and md5 password hashing.
 */
#ifndef HOTPATH_PGAUTH_H
#define HOTPATH_PGAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

#define PGA_NAME_MAX 64                 /* user names: NAMEDATALEN */
#define PGA_PASS_MAX 1024               /* password or secret text */
#define PGA_SALT_MAX 64
#define PGA_KEY_LEN 32                  /* SHA-256 */
#define PGA_SCRAM_ITER_MAX 1000000u     /* refuse costlier secrets */
#define PGA_MSG_MAX 1024                /* one SCRAM message */
#define PGA_NONCE_LEN 24                /* random bytes before base64 */

/* A SCRAM-SHA-256 verifier: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey> */
struct pga_scram_secret {
	unsigned iterations;
	size_t salt_len;
	uint8_t salt[PGA_SALT_MAX];
	uint8_t stored_key[PGA_KEY_LEN];
	uint8_t server_key[PGA_KEY_LEN];
};

enum pga_kind { PGA_PLAIN = 0, PGA_MD5, PGA_SCRAM };

struct pga_user {
	char name[PGA_NAME_MAX];
	enum pga_kind kind;
	char pass[PGA_PASS_MAX];        /* plaintext, or "md5" + 32 hex */
	struct pga_scram_secret scram;  /* PGA_SCRAM, and derived for PGA_PLAIN */
};

struct pga_userlist;

/*
 * Parse userlist text: `"user" "password-or-md5-or-SCRAM-secret"` a line,
 * `""` inside quotes for one quote, blank lines and lines starting with
 * '#' or ';' ignored, anything after the second field ignored (as
 * PgBouncer does). Plaintext passwords get a SCRAM secret derived once
 * here (random salt, 4096 iterations), so a login never runs PBKDF2.
 * Bounded: 1 MiB of text, 4096-byte lines, 10000 users. Returns a list
 * (free with pga_userlist_free) or NULL with "NAME:LINE: reason" in err.
 */
struct pga_userlist *pga_userlist_parse(const char *text, size_t len, const char *name,
					char *err, size_t errlen);
/* Read and parse a file; NULL with the reason in err. */
struct pga_userlist *pga_userlist_load(const char *path, char *err, size_t errlen);
void pga_userlist_free(struct pga_userlist *l);
/* The entry for `user`, or NULL. Valid until the list is freed. */
const struct pga_user *pga_userlist_find(const struct pga_userlist *l, const char *user);
unsigned pga_userlist_count(const struct pga_userlist *l);

/* Parse a SCRAM-SHA-256 secret. 0 or -EINVAL. */
int pga_scram_parse_secret(const char *s, struct pga_scram_secret *out) HP_MUST_CHECK;
/* Derive a secret from a password (SASLprep is not applied: ASCII passwords
 * are unchanged by it, which is what PostgreSQL does for the rest too when
 * normalisation fails). 0 or -EINVAL/-ENOMEM. */
int pga_scram_make_secret(const char *password, const uint8_t *salt, size_t salt_len,
			  unsigned iterations, struct pga_scram_secret *out) HP_MUST_CHECK;

/* ---- SCRAM server side (a client logs in to the pooler) ---- */
struct pga_scram_server {
	int state;                      /* 0 fresh, 1 first sent, 2 done */
	struct pga_scram_secret secret;
	char gs2[64];                   /* "n,," or "y,," as the client sent it */
	char client_first_bare[PGA_MSG_MAX];
	char server_first[PGA_MSG_MAX];
	char nonce[PGA_MSG_MAX];        /* client nonce + server nonce */
};
/*
 * Take the client-first-message, write the server-first-message into out
 * (NUL-terminated). server_nonce NULL: random. Returns its length, or
 * -EPROTO (malformed), -EOPNOTSUPP (channel binding asked: we serve no TLS).
 */
int pga_scram_server_first(struct pga_scram_server *s, const struct pga_scram_secret *secret,
			   const char *msg, size_t len, const char *server_nonce,
			   char *out, size_t outlen) HP_MUST_CHECK;
/*
 * Take the client-final-message; on a valid proof write the
 * server-final-message ("v=...") into out and return its length; -EACCES
 * for a wrong password, -EPROTO for a malformed message or nonce mismatch.
 * *client_key (if non-NULL) receives the client's ClientKey on success.
 */
int pga_scram_server_final(struct pga_scram_server *s, const char *msg, size_t len,
			   char *out, size_t outlen, uint8_t *client_key) HP_MUST_CHECK;

/* ---- SCRAM client side (the pooler logs in to PostgreSQL) ---- */
struct pga_scram_client {
	int state;
	char client_nonce[256];
	char client_first_bare[PGA_MSG_MAX];
	uint8_t server_signature[PGA_KEY_LEN];
};
/* "n,,n=,r=<nonce>" into out; nonce NULL: random. Length or -ENOBUFS. */
int pga_scram_client_first(struct pga_scram_client *c, const char *nonce, char *out,
			   size_t outlen) HP_MUST_CHECK;
/*
 * Take the server-first-message and answer it with the client-final-
 * message, proving knowledge of `password`. Length, or -EPROTO (malformed,
 * nonce not extending ours, iterations over PGA_SCRAM_ITER_MAX).
 */
int pga_scram_client_final(struct pga_scram_client *c, const char *password,
			   const char *msg, size_t len, char *out, size_t outlen) HP_MUST_CHECK;
/* Check the server-final-message. 0, -EACCES (wrong signature: not the
 * real server), -EPROTO. */
int pga_scram_client_verify(struct pga_scram_client *c, const char *msg, size_t len)
	HP_MUST_CHECK;

/* ---- md5 ---- */
/* "md5" + hex(md5(password + user)) into out[36]. */
void pga_md5_stored(const char *user, const char *password, char out[36]);
/* The md5 response to a salt: "md5" + hex(md5(hex-part-of-stored + salt)),
 * from a stored "md5..." hash. out[36]. */
void pga_md5_response(const char *stored, const uint8_t salt[4], char out[36]);

#endif
