/*
 * pgmsg.h - PostgreSQL wire-protocol (v3) message walking, for the
 * query texts and responses the kernel side captures (bpf/observe.bpf.c).
 * Pure functions over a byte range; nothing allocated, nothing read past len.
 */
#ifndef HOTPATH_PGMSG_H
#define HOTPATH_PGMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgmsg_msg {
	char type;                  /* 'Q', 'P', 'C', 'Z', ... */
	uint32_t len;               /* body bytes (the length field minus 4) */
	const char *body;           /* may hold fewer than len bytes if truncated */
	size_t avail;               /* body bytes present in the buffer */
};

/*
 * Read the typed message at b. Returns the bytes it spans in the buffer
 * (> 0; a truncated last message spans what is there and has avail < len),
 * 0 if fewer than 5 bytes remain, -EINVAL if the length field is invalid.
 */
int pgmsg_next(const char *b, size_t len, struct pgmsg_msg *m);

/*
 * Query text of a frontend buffer starting with 'Q' (simple) or 'P' (Parse,
 * extended). Sets *text and *tlen (not NUL-terminated) and *truncated when the
 * capture ended before the text's NUL. 0, or -EINVAL / -ENOENT (a message
 * that carries no query text, such as 'B' alone).
 */
int pgmsg_query_text(const char *b, size_t len, const char **text, size_t *tlen,
		      bool *truncated);

/* Row count of a CommandComplete tag ("SELECT 5", "INSERT 0 3"), -1 if none. */
int64_t pgmsg_tag_rows(const char *tag, size_t len);

struct pgmsg_summary {
	unsigned messages;
	unsigned errors;            /* ErrorResponse ('E') seen */
	int64_t rows;               /* from the last CommandComplete, -1 if none */
	bool ready;                 /* ReadyForQuery ('Z') seen */
	char status;                /* its transaction status: 'I', 'T', 'E' */
};

/* Walk a backend buffer. 0, or -EINVAL at the first malformed message
 * (the summary then covers the messages before it). */
int pgmsg_summarise_backend(const char *b, size_t len, struct pgmsg_summary *s);

#endif
