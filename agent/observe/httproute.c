/*
 * httproute.c - HTTP route normalisation and hashing (see httproute.h).
 *
 * Why here and in the kernel: per-endpoint histograms live in a BPF map
 * keyed by a hash the kernel computes while the request line is in its
 * hands, so both sides must agree on what an endpoint is. The rule is
 * deliberately simple enough for a bounded BPF loop: split on '/', a
 * segment that is all digits, long hex (>= 8, with a digit: commit ids,
 * object ids) or a uuid is an identifier and hashes as "{id}". Segments
 * hash independently, so hashing the normalised route "/users/{id}" gives
 * the same value as hashing "/users/42". What not: no router-specific
 * patterns (slugs, dates, base64 ids stay distinct endpoints), no
 * percent-decoding.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "hotpath/httproute.h"

#define FNV_OFF 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_byte(uint64_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool route_is_id_segment(const char *seg, size_t len)
{
	size_t digits = 0, hex = 0, dashes = 0;

	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)seg[i];

		if (c >= '0' && c <= '9')
			digits++;
		if (is_hex(c))
			hex++;
		else if (c == '-')
			dashes++;
	}
	return digits == len || (len >= 8 && hex == len && digits) ||
	       (len == 36 && dashes == 4 && hex + dashes == len && digits);
}

/* Bytes of the path proper: up to '?', '#', a space or control end. */
static size_t path_len(const char *p, size_t len)
{
	size_t i;

	if (len > ROUTE_PATH_MAX)
		len = ROUTE_PATH_MAX;
	for (i = 0; i < len; i++)
		if (p[i] == '?' || p[i] == '#' || p[i] == ' ' || p[i] == '\r' || p[i] == '\n' ||
		    p[i] == '\0')
			break;
	return i;
}

int route_normalise(const char *path, size_t len, char *out, size_t outlen)
{
	size_t n = path_len(path, len), o = 0, start = 0;

	if (!outlen)
		return -ENOBUFS;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && path[i] != '/')
			continue;
		if (i > start) {
			const char *seg = path + start;
			size_t sl = i - start;

			if (route_is_id_segment(seg, sl)) {
				seg = "{id}";
				sl = 4;
			}
			if (o + sl >= outlen)
				goto full;
			memcpy(out + o, seg, sl);
			o += sl;
		}
		if (i < n) {
			if (o + 1 >= outlen)
				goto full;
			out[o++] = '/';
		}
		start = i + 1;
	}
	out[o] = '\0';
	return (int)o;
full:
	out[0] = '\0';
	return -ENOBUFS;
}

static uint64_t seg_mix(uint64_t h, const char *seg, size_t len)
{
	uint64_t s = FNV_OFF;

	if (!len)
		return h;
	if (route_is_id_segment(seg, len)) {
		seg = "{id}";
		len = 4;
	}
	for (size_t i = 0; i < len; i++)
		s = fnv_byte(s, (unsigned char)seg[i]);
	return (h ^ s) * FNV_PRIME;
}

uint64_t route_hash(const char *method, size_t mlen, const char *path, size_t plen)
{
	uint64_t h = FNV_OFF;
	size_t n = path_len(path, plen), start = 0;

	if (mlen > 8)
		mlen = 8;
	for (size_t i = 0; i < mlen; i++)
		h = fnv_byte(h, (unsigned char)method[i]);
	h = fnv_byte(h, ' ');
	for (size_t i = 0; i <= n; i++) {
		if (i < n && path[i] != '/')
			continue;
		h = seg_mix(h, path + start, i - start);
		if (i < n)
			h = fnv_byte(h, '/');
		start = i + 1;
	}
	return h;
}
