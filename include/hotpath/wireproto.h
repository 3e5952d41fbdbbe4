/*
 * wireproto.h - first-bytes classifiers for HTTP/1.x and RESP, the
 * userspace twins of the recognisers in bpf/observe.bpf.c (which can't
 * share C with userspace). Pure functions over a byte range; nothing is
 * allocated and nothing is read past len.
 */
#ifndef HOTPATH_WIREPROTO_H
#define HOTPATH_WIREPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values match enum hp_protocol / OBS_PROTO_*. */
enum wire_proto { WIRE_UNKNOWN = 0, WIRE_HTTP = 1, WIRE_RESP = 2, WIRE_POSTGRES = 3 };

/* What a client's first bytes look like (the kernel's "auto" sniff). */
enum wire_proto wire_sniff(const char *b, size_t len);
/* Length of the HTTP method if b starts a request line ("GET " ...), else 0. */
size_t wire_http_method_len(const char *b, size_t len);
/* Split a request line: method and path (up to the next space or end).
 * 0 on success, -EINVAL if b is not an HTTP/1.x request. */
int wire_http_request(const char *b, size_t len, const char **method, size_t *mlen,
		      const char **path, size_t *plen);
/* Status code of a response head "HTTP/1.x NNN", or -EINVAL. */
int wire_http_status(const char *b, size_t len);
/* Upper-cased command name of a RESP request (array or inline) into out
 * (NUL-terminated, truncated to outlen-1). Returns its length or -EINVAL. */
int wire_resp_command(const char *b, size_t len, char *out, size_t outlen);
/* True if b starts a RESP reply; *is_error set for '-' and '!'. */
bool wire_resp_reply(const char *b, size_t len, bool *is_error);
/* Protocol guessed from a well-known port (WIRE_UNKNOWN if none). */
enum wire_proto wire_guess_port(unsigned port);
/* "http", "resp", "postgres", "auto". */
const char *wire_proto_name(int p);

#endif
