/*
 * resp_cmd.c - command table and executor of the RESP cache front
 * (see include/hotpath/resp_cmd.h).
 *
 * What: the string-command subset of Redis 7.0 that a cache needs (GET,
 * SET with every option, MGET/MSET, TTL commands, INCR family, KEYS/SCAN,
 * FLUSH*) plus the connection and introspection commands that clients and
 * tools send on their own (PING, HELLO, CLIENT, COMMAND, CONFIG GET, INFO,
 * SELECT 0, QUIT, RESET). Replies, argument checks and error texts follow
 * redis-server 7.0 byte for byte, so redis-cli, redis-benchmark and client
 * libraries cannot tell the difference for these commands.
 *
 * How: one static table describes every command (name, Redis arity, key
 * positions, flags and ACL categories for COMMAND, handler); container
 * commands (CLIENT, CONFIG, COMMAND) carry a sub-table. resp_exec() finds
 * the entry by a linear scan that compares the length first; GET and SET
 * lead the table so the hot path costs one or two short compares. Generic
 * checks (arity, key length limit) run before the handler, which talks to
 * the L1 store and writes straight into the client's output buffer: values
 * are copied into the reply from inside the store's callback, so a GET
 * makes exactly one copy. TTLs arrive as Redis relative or unix times and
 * are converted to the store's monotonic deadlines here, capped by
 * ctx->max_ttl_ms. The table index is the stats index (resp_command_name).
 *
 * What not: no data types other than strings, no MULTI, pub/sub, scripts,
 * blocking commands or RESP3 (HELLO 3 is refused, so clients fall back to
 * RESP2). MSET is not atomic against the memory limit: Redis refuses the
 * whole command up front when over maxmemory, while here a pair that does
 * not fit stops the loop with the OOM error after earlier pairs were
 * stored. Replies that must be counted before they are written (KEYS,
 * SCAN) are built in a scratch buffer bounded by the output limit.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "hotpath/resp_cmd.h"
#include "hotpath/tier.h"
#include "hotpath/version.h"

/* The Redis version we emulate, as HELLO reports it. */
#define RESP_REDIS_VERSION "7.0.0"
/* INFO/CONFIG name for the store's eviction: every key is a candidate and
 * the algorithm is hotpath's own (S3-FIFO or LRU, set in hotpath.ini). */
/* maxmemory-policy as Redis spells it: every key may be evicted, by L1's
 * policy ("allkeys-lru" is Redis's own name; "allkeys-s3fifo" ours). */
#define RESP_POLICY_FMT "allkeys-%s"

#define CF_KEYLIMIT (1u << 0)  /* check key lengths against max_key_len */

struct rx;
typedef int (*cmd_fn)(struct rx *x);

struct cmd_def {
	const char *name;          /* lowercase token matched against argv */
	size_t nlen;
	const char *full;          /* "get", "client|setname": used in errors */
	int arity;                 /* Redis: n exact, -n at least n */
	unsigned flags;            /* CF_* */
	int first, last, step;     /* key positions, as COMMAND reports them */
	const char *rflags;        /* Redis command flags, space separated */
	const char *acl;           /* ACL categories, space separated */
	cmd_fn fn;
	const struct cmd_def *subs;
	unsigned nsubs;
};

/* One command being executed. */
struct rx {
	struct resp_ctx *ctx;
	struct resp_client *cl;
	struct buf *out;
	const char *const *argv;
	const size_t *len;
	size_t argc;
	const struct cmd_def *def;
};

static const char ERR_SYNTAX[] = "ERR syntax error";
static const char ERR_NOTINT[] = "ERR value is not an integer or out of range";
static const char ERR_OOM[] = "OOM command not allowed when used memory > 'maxmemory'.";

/* ---- small helpers ------------------------------------------------------- */

static int reply_arity(struct rx *x)
{
	return resp_add_errorf(x->out, "ERR wrong number of arguments for '%s' command",
			       x->def->full);
}

static int reply_expire_time(struct rx *x)
{
	return resp_add_errorf(x->out, "ERR invalid expire time in '%s' command", x->def->full);
}

/* Error reply for a negative errno from the store. */
static int reply_store_err(struct rx *x, int rc)
{
	switch (rc) {
	case -ENOMEM:
		return resp_add_error(x->out, ERR_OOM);
	case -E2BIG:
		return resp_add_error(x->out, "ERR value is too large for the cache (E2BIG)");
	case -EINVAL:
		return resp_add_error(x->out, ERR_NOTINT);
	case -ERANGE:
		return resp_add_error(x->out, "ERR increment or decrement would overflow");
	default:
		return resp_add_errorf(x->out, "ERR cache error: %s", strerror(-rc));
	}
}

static bool arg_is(const struct rx *x, size_t i, const char *lit)
{
	return resp_arg_is(x->argv[i], x->len[i], lit);
}

/* Reply "ERR value is too large" if argument i exceeds max_value_size. */
static bool value_too_big(struct rx *x, size_t i, int *rc)
{
	uint64_t max = x->ctx->max_value_size;

	if (!max || x->len[i] <= max)
		return false;
	*rc = resp_add_errorf(x->out, "ERR value is too large (max %llu bytes)",
			      (unsigned long long)max);
	return true;
}

/* Append a C-string-limited view of an argument, as Redis's "%.*s" does. */
static size_t arg_cstrlen(const char *p, size_t n, size_t max)
{
	const char *z = memchr(p, '\0', n);

	if (z)
		n = (size_t)(z - p);
	return n < max ? n : max;
}

/* Store callback: append the value as a bulk reply. Runs under the shard
 * lock, so it only copies. */
struct sink {
	struct buf *out;
	int err;
	bool found;
};

static void sink_bulk(const char *val, size_t len, uint64_t expire_at_ms, void *arg)
{
	struct sink *s = arg;

	(void)expire_at_ms;
	s->found = true;
	s->err = resp_add_bulk(s->out, val, len);
}

/*
 * Deadline on the store's monotonic clock for a TTL of rel_ms from now.
 * rel_ms <= 0 gives a deadline already in the past (never L1_NO_TTL).
 */
static uint64_t ttl_deadline(const struct resp_ctx *ctx, long long rel_ms)
{
	uint64_t now = hp_now_ms(), back;

	if (rel_ms <= 0) {
		back = rel_ms == 0 ? 1 : 0 - (uint64_t)rel_ms;
		return now > back ? now - back : 1;
	}
	if (ctx->max_ttl_ms && (uint64_t)rel_ms > ctx->max_ttl_ms)
		rel_ms = (long long)ctx->max_ttl_ms;
	return now + (uint64_t)rel_ms;
}

/* ---- strings ------------------------------------------------------------- */

static int cmd_get(struct rx *x)
{
	struct sink s = { x->out, 0, false };

	if (!l1_get(x->ctx->l1, x->argv[1], x->len[1], sink_bulk, &s))
		return resp_add_null(x->out);
	return s.err;
}

static int cmd_getdel(struct rx *x)
{
	struct sink s = { x->out, 0, false };

	if (!l1_getdel(x->ctx->l1, x->argv[1], x->len[1], sink_bulk, &s))
		return resp_add_null(x->out);
	return s.err;
}

enum ttl_kind { TTL_NONE = 0, TTL_EX, TTL_PX, TTL_EXAT, TTL_PXAT };

/*
 * Redis's getExpireMillisecondsOrReply for the SET family: 0 and the TTL in
 * ms from now (<= 0: already expired), -EINVAL not an integer, -ERANGE
 * invalid expire time.
 */
static int set_expire_rel(enum ttl_kind kind, const char *a, size_t alen, long long *rel)
{
	long long v, wall = (long long)hp_wall_ms();

	if (resp_arg_ll(a, alen, &v) != 0)
		return -EINVAL;
	if (v <= 0)
		return -ERANGE;
	if (kind == TTL_EX || kind == TTL_EXAT) {
		if (v > LLONG_MAX / 1000)
			return -ERANGE;
		v *= 1000;
	}
	if (kind == TTL_EX || kind == TTL_PX) {
		if (v > LLONG_MAX - wall)
			return -ERANGE;
		*rel = v;
	} else {
		*rel = v - wall;
	}
	return 0;
}

#define SETR_OK_NIL   0   /* SET: +OK / $-1 */
#define SETR_ONE_ZERO 1   /* SETNX: :1 / :0 */

/*
 * Shared body of SET, SETNX, SETEX, PSETEX once options are parsed.
 * `ttl_arg` is the argv index of the expiry (0: none).
 */
static int set_generic(struct rx *x, size_t ki, size_t vi, unsigned flags, bool get,
		       enum ttl_kind kind, size_t ttl_arg, int reply_mode, int prio)
{
	struct sink s = { x->out, 0, false };
	uint64_t deadline = L1_NO_TTL;
	size_t mark;
	int rc;

	if (kind != TTL_NONE) {
		long long rel;

		rc = set_expire_rel(kind, x->argv[ttl_arg], x->len[ttl_arg], &rel);
		if (rc == -EINVAL)
			return resp_add_error(x->out, ERR_NOTINT);
		if (rc)
			return reply_expire_time(x);
		/* A past time (EXAT/PXAT) is a deadline the store treats as
		 * expired: it drops the key and reports success, as Redis. */
		deadline = ttl_deadline(x->ctx, rel);
	}
	if (value_too_big(x, vi, &rc))
		return rc;
	if (get)
		flags |= L1_SET_GET;
	mark = x->out->len;
	/* With GET the store hands the old value to sink_bulk, which writes
	 * it as the reply, also when NX/XX prevented the write. */
	rc = l1_set(x->ctx->l1, x->argv[ki], x->len[ki], x->argv[vi], x->len[vi], deadline,
		    prio, flags, get ? sink_bulk : NULL, get ? &s : NULL);
	if (rc < 0) {
		x->out->len = mark;
		return reply_store_err(x, rc);
	}
	if (get)
		return s.err ? s.err : s.found ? 0 : resp_add_null(x->out);
	if (reply_mode == SETR_ONE_ZERO)
		return resp_add_int(x->out, rc);
	return rc ? resp_add_simple(x->out, "OK") : resp_add_null(x->out);
}

static int cmd_set(struct rx *x)
{
	enum ttl_kind kind = TTL_NONE;
	unsigned flags = 0;
	size_t j, ttl_arg = 0;
	bool get = false;
	int prio = L1_PRIO_DEFAULT;

	for (j = 3; j < x->argc; j++) {
		bool next = j + 1 < x->argc;

		/* hotpath extension: SET ... PRIORITY low|normal|high sets the
		 * entry's eviction class (low leaves first); without it the
		 * partition's default applies. */
		if (next && arg_is(x, j, "priority") && prio == L1_PRIO_DEFAULT) {
			j++;
			if (arg_is(x, j, "low"))
				prio = L1_PRIO_LOW;
			else if (arg_is(x, j, "normal"))
				prio = L1_PRIO_NORMAL;
			else if (arg_is(x, j, "high"))
				prio = L1_PRIO_HIGH;
			else
				return resp_add_error(x->out, ERR_SYNTAX);
			continue;
		}
		if (arg_is(x, j, "nx") && !(flags & L1_SET_XX)) {
			flags |= L1_SET_NX;
		} else if (arg_is(x, j, "xx") && !(flags & L1_SET_NX)) {
			flags |= L1_SET_XX;
		} else if (arg_is(x, j, "get")) {
			get = true;
		} else if (arg_is(x, j, "keepttl") && kind == TTL_NONE) {
			flags |= L1_SET_KEEPTTL;
		} else if (next && !(flags & L1_SET_KEEPTTL) &&
			   ((arg_is(x, j, "ex") && (kind == TTL_NONE || kind == TTL_EX)) ||
			    (arg_is(x, j, "px") && (kind == TTL_NONE || kind == TTL_PX)) ||
			    (arg_is(x, j, "exat") && (kind == TTL_NONE || kind == TTL_EXAT)) ||
			    (arg_is(x, j, "pxat") && (kind == TTL_NONE || kind == TTL_PXAT)))) {
			if (arg_is(x, j, "ex"))
				kind = TTL_EX;
			else if (arg_is(x, j, "px"))
				kind = TTL_PX;
			else if (arg_is(x, j, "exat"))
				kind = TTL_EXAT;
			else
				kind = TTL_PXAT;
			ttl_arg = ++j;
		} else {
			return resp_add_error(x->out, ERR_SYNTAX);
		}
	}
	return set_generic(x, 1, 2, flags, get, kind, ttl_arg, SETR_OK_NIL, prio);
}

static int cmd_setnx(struct rx *x)
{
	return set_generic(x, 1, 2, L1_SET_NX, false, TTL_NONE, 0, SETR_ONE_ZERO, L1_PRIO_DEFAULT);
}

static int cmd_setex(struct rx *x)
{
	return set_generic(x, 1, 3, 0, false, TTL_EX, 2, SETR_OK_NIL, L1_PRIO_DEFAULT);
}

static int cmd_psetex(struct rx *x)
{
	return set_generic(x, 1, 3, 0, false, TTL_PX, 2, SETR_OK_NIL, L1_PRIO_DEFAULT);
}

static int cmd_mget(struct rx *x)
{
	size_t i;
	int rc = resp_add_array(x->out, (long long)(x->argc - 1));

	for (i = 1; i < x->argc && rc == 0; i++) {
		struct sink s = { x->out, 0, false };

		if (!l1_get(x->ctx->l1, x->argv[i], x->len[i], sink_bulk, &s))
			rc = resp_add_null(x->out);
		else
			rc = s.err;
	}
	return rc;
}

static int cmd_mset(struct rx *x)
{
	size_t i;
	int rc;

	if (x->argc % 2 == 0)
		return reply_arity(x);
	for (i = 2; i < x->argc; i += 2)
		if (value_too_big(x, i, &rc))
			return rc;
	for (i = 1; i < x->argc; i += 2) {
		rc = l1_set(x->ctx->l1, x->argv[i], x->len[i], x->argv[i + 1], x->len[i + 1],
			    L1_NO_TTL, L1_PRIO_DEFAULT, 0, NULL, NULL);
		if (rc < 0)
			return reply_store_err(x, rc);
	}
	return resp_add_simple(x->out, "OK");
}

static int incr_generic(struct rx *x, long long delta)
{
	int64_t result;
	int rc = l1_incrby(x->ctx->l1, x->argv[1], x->len[1], delta, &result);

	if (rc < 0)
		return reply_store_err(x, rc);
	return resp_add_int(x->out, result);
}

static int cmd_incr(struct rx *x)
{
	return incr_generic(x, 1);
}

static int cmd_decr(struct rx *x)
{
	return incr_generic(x, -1);
}

static int cmd_incrby(struct rx *x)
{
	long long v;

	if (resp_arg_ll(x->argv[2], x->len[2], &v) != 0)
		return resp_add_error(x->out, ERR_NOTINT);
	return incr_generic(x, v);
}

static int cmd_decrby(struct rx *x)
{
	long long v;

	if (resp_arg_ll(x->argv[2], x->len[2], &v) != 0)
		return resp_add_error(x->out, ERR_NOTINT);
	if (v == LLONG_MIN)
		return resp_add_error(x->out, "ERR decrement would overflow");
	return incr_generic(x, -v);
}

static int cmd_strlen(struct rx *x)
{
	return resp_add_int(x->out, (long long)l1_strlen(x->ctx->l1, x->argv[1], x->len[1]));
}

/* ---- keys ---------------------------------------------------------------- */

static int cmd_del(struct rx *x)
{
	long long n = 0;
	size_t i;

	for (i = 1; i < x->argc; i++)
		n += l1_del(x->ctx->l1, x->argv[i], x->len[i]) > 0;
	return resp_add_int(x->out, n);
}

static int cmd_exists(struct rx *x)
{
	long long n = 0;
	size_t i;

	for (i = 1; i < x->argc; i++)
		n += l1_exists(x->ctx->l1, x->argv[i], x->len[i]) > 0;
	return resp_add_int(x->out, n);
}

static int cmd_type(struct rx *x)
{
	return resp_add_simple(x->out, l1_exists(x->ctx->l1, x->argv[1], x->len[1]) > 0 ?
				       "string" : "none");
}

/* EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (Redis expireGenericCommand). */
static int expire_generic(struct rx *x, bool at, bool seconds)
{
	bool nx = false, xx = false, gt = false, lt = false;
	long long when, rel, wall;
	unsigned flags = 0;
	size_t j;

	for (j = 3; j < x->argc; j++) {
		if (arg_is(x, j, "nx"))
			nx = true;
		else if (arg_is(x, j, "xx"))
			xx = true;
		else if (arg_is(x, j, "gt"))
			gt = true;
		else if (arg_is(x, j, "lt"))
			lt = true;
		else
			return resp_add_errorf(x->out, "ERR Unsupported option %.*s",
					       (int)arg_cstrlen(x->argv[j], x->len[j], 1024),
					       x->argv[j]);
	}
	if (nx && (xx || gt || lt))
		return resp_add_error(x->out, "ERR NX and XX, GT or LT options at the same "
				      "time are not compatible");
	if (gt && lt)
		return resp_add_error(x->out, "ERR GT and LT options at the same time are "
				      "not compatible");
	if (resp_arg_ll(x->argv[2], x->len[2], &when) != 0)
		return resp_add_error(x->out, ERR_NOTINT);
	if (seconds) {
		if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000)
			return reply_expire_time(x);
		when *= 1000;
	}
	wall = (long long)hp_wall_ms();
	if (!at) {
		if (when > LLONG_MAX - wall)
			return reply_expire_time(x);
		rel = when;
	} else {
		rel = when <= 0 ? -1 : when - wall;
	}
	flags = (nx ? L1_EXPIRE_NX : 0) | (xx ? L1_EXPIRE_XX : 0) |
		(gt ? L1_EXPIRE_GT : 0) | (lt ? L1_EXPIRE_LT : 0);
	return resp_add_int(x->out, l1_expire(x->ctx->l1, x->argv[1], x->len[1],
					      ttl_deadline(x->ctx, rel), flags) > 0);
}

static int cmd_expire(struct rx *x)    { return expire_generic(x, false, true); }
static int cmd_pexpire(struct rx *x)   { return expire_generic(x, false, false); }
static int cmd_expireat(struct rx *x)  { return expire_generic(x, true, true); }
static int cmd_pexpireat(struct rx *x) { return expire_generic(x, true, false); }

static int cmd_persist(struct rx *x)
{
	return resp_add_int(x->out, l1_persist(x->ctx->l1, x->argv[1], x->len[1]) > 0);
}

static int cmd_pttl(struct rx *x)
{
	return resp_add_int(x->out, l1_pttl(x->ctx->l1, x->argv[1], x->len[1]));
}

static int cmd_ttl(struct rx *x)
{
	int64_t ms = l1_pttl(x->ctx->l1, x->argv[1], x->len[1]);

	return resp_add_int(x->out, ms < 0 ? ms : (ms + 500) / 1000);
}

/* Keys collected for a reply whose length must precede them. */
struct keycol {
	struct buf tmp;
	long long n;
	int err;
	bool skip;      /* SCAN TYPE other than string: visit, return nothing */
};

static bool keycol_add(const char *key, size_t klen, void *arg)
{
	struct keycol *c = arg;

	if (c->skip)
		return true;
	c->err = resp_add_bulk(&c->tmp, key, klen);
	if (c->err)
		return false;
	c->n++;
	return true;
}

static void keycol_init(struct keycol *c, const struct buf *out)
{
	size_t max = out->max;

	memset(c, 0, sizeof(*c));
	/* The collected keys must still fit the output buffer. */
	buf_init(&c->tmp, max > out->len ? max - out->len : 1);
}

/* Pattern for the store: NULL for "*" so it skips matching entirely. */
static void pattern_arg(const char *p, size_t n, const char **pat, size_t *plen)
{
	if (n == 1 && p[0] == '*') {
		*pat = NULL;
		*plen = 0;
	} else {
		*pat = p;
		*plen = n;
	}
}

static int cmd_keys(struct rx *x)
{
	struct keycol c;
	const char *pat;
	size_t plen;
	uint64_t cursor = 0;
	int rc;

	keycol_init(&c, x->out);
	pattern_arg(x->argv[1], x->len[1], &pat, &plen);
	do {
		cursor = l1_scan(x->ctx->l1, cursor, 1024, pat, plen, keycol_add, &c);
	} while (cursor != 0 && c.err == 0);
	rc = c.err;
	if (!rc)
		rc = resp_add_array(x->out, c.n);
	if (!rc)
		rc = buf_append(x->out, buf_head(&c.tmp), buf_used(&c.tmp));
	buf_free(&c.tmp);
	return rc;
}

static int cmd_scan(struct rx *x)
{
	const char *pat = NULL, *a = x->argv[1];
	size_t plen = 0, i, n = x->len[1];
	unsigned long long cursor = 0;
	long long count = 10;
	bool skip = false;
	struct keycol c;
	char tmp[24];
	int rc;

	if (n == 0 || n > 20)
		return resp_add_error(x->out, "ERR invalid cursor");
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(a[i] - '0');

		if (d > 9 || cursor > (ULLONG_MAX - d) / 10)
			return resp_add_error(x->out, "ERR invalid cursor");
		cursor = cursor * 10 + d;
	}
	for (i = 2; i < x->argc; i += 2) {
		bool more = i + 1 < x->argc;

		if (more && arg_is(x, i, "count")) {
			if (resp_arg_ll(x->argv[i + 1], x->len[i + 1], &count) != 0)
				return resp_add_error(x->out, ERR_NOTINT);
			if (count < 1)
				return resp_add_error(x->out, ERR_SYNTAX);
		} else if (more && arg_is(x, i, "match")) {
			pattern_arg(x->argv[i + 1], x->len[i + 1], &pat, &plen);
		} else if (more && arg_is(x, i, "type")) {
			skip = !arg_is(x, i + 1, "string");
		} else {
			return resp_add_error(x->out, ERR_SYNTAX);
		}
	}
	keycol_init(&c, x->out);
	c.skip = skip;
	cursor = l1_scan(x->ctx->l1, cursor, (size_t)count, pat, plen, keycol_add, &c);
	rc = c.err;
	if (!rc)
		rc = resp_add_array(x->out, 2);
	if (!rc)
		rc = resp_add_bulk(x->out, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%llu", cursor));
	if (!rc)
		rc = resp_add_array(x->out, c.n);
	if (!rc)
		rc = buf_append(x->out, buf_head(&c.tmp), buf_used(&c.tmp));
	buf_free(&c.tmp);
	return rc;
}

static int cmd_dbsize(struct rx *x)
{
	return resp_add_int(x->out, (long long)l1_dbsize(x->ctx->l1));
}

static int cmd_flushall(struct rx *x)
{
	if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "sync") && !arg_is(x, 1, "async")))
		return resp_add_error(x->out, ERR_SYNTAX);
	l1_flush(x->ctx->l1);
	return resp_add_simple(x->out, "OK");
}

/* ---- connection ---------------------------------------------------------- */

static int cmd_ping(struct rx *x)
{
	if (x->argc > 2)
		return reply_arity(x);
	if (x->argc == 2)
		return resp_add_bulk(x->out, x->argv[1], x->len[1]);
	return resp_add_simple(x->out, "PONG");
}

static int cmd_echo(struct rx *x)
{
	return resp_add_bulk(x->out, x->argv[1], x->len[1]);
}

static int cmd_select(struct rx *x)
{
	long long id;

	if (resp_arg_ll(x->argv[1], x->len[1], &id) != 0 || id < INT_MIN || id > INT_MAX)
		return resp_add_error(x->out, ERR_NOTINT);
	if (id != 0)
		return resp_add_error(x->out, "ERR DB index is out of range");
	return resp_add_simple(x->out, "OK");
}

static int cmd_quit(struct rx *x)
{
	x->cl->quit = true;
	return resp_add_simple(x->out, "OK");
}

static int cmd_reset(struct rx *x)
{
	x->cl->name[0] = '\0';
	return resp_add_simple(x->out, "RESET");
}

/* No password is configured: what Redis answers in that case. */
static int cmd_auth(struct rx *x)
{
	if (x->argc > 3)
		return resp_add_error(x->out, ERR_SYNTAX);
	if (x->argc == 2)
		return resp_add_error(x->out, "ERR AUTH <password> called without any password "
				      "configured for the default user. Are you sure your "
				      "configuration is correct?");
	if (!arg_is(x, 1, "default") || x->len[1] != 7 || memcmp(x->argv[1], "default", 7))
		return resp_add_error(x->out, "WRONGPASS invalid username-password pair or user "
				      "is disabled.");
	return resp_add_simple(x->out, "OK");
}

/* Redis's rule for client names: printable, no spaces. */
static int client_check_name(struct rx *x, size_t i, int *rc)
{
	size_t k;

	for (k = 0; k < x->len[i]; k++) {
		unsigned char ch = (unsigned char)x->argv[i][k];

		if (ch < '!' || ch > '~') {
			*rc = resp_add_error(x->out, "ERR Client names cannot contain spaces, "
					     "newlines or special characters.");
			return -1;
		}
	}
	if (x->len[i] >= sizeof(x->cl->name)) {
		*rc = resp_add_errorf(x->out, "ERR Client name is too long (max %zu bytes)",
				      sizeof(x->cl->name) - 1);
		return -1;
	}
	return 0;
}

static void client_set_name(struct resp_client *cl, const char *p, size_t n)
{
	memcpy(cl->name, p, n);
	cl->name[n] = '\0';
}

static int hello_reply(struct rx *x)
{
	int rc = resp_add_array(x->out, 14);

	rc = rc ? rc : resp_add_bulk_str(x->out, "server");
	rc = rc ? rc : resp_add_bulk_str(x->out, "redis");
	rc = rc ? rc : resp_add_bulk_str(x->out, "version");
	rc = rc ? rc : resp_add_bulk_str(x->out, RESP_REDIS_VERSION);
	rc = rc ? rc : resp_add_bulk_str(x->out, "proto");
	rc = rc ? rc : resp_add_int(x->out, 2);
	rc = rc ? rc : resp_add_bulk_str(x->out, "id");
	rc = rc ? rc : resp_add_int(x->out, (long long)x->cl->id);
	rc = rc ? rc : resp_add_bulk_str(x->out, "mode");
	rc = rc ? rc : resp_add_bulk_str(x->out, "standalone");
	rc = rc ? rc : resp_add_bulk_str(x->out, "role");
	rc = rc ? rc : resp_add_bulk_str(x->out, "master");
	rc = rc ? rc : resp_add_bulk_str(x->out, "modules");
	rc = rc ? rc : resp_add_array(x->out, 0);
	return rc;
}

static int cmd_hello(struct rx *x)
{
	long long ver = 0;
	size_t j, setname = 0;
	int rc;

	j = 1;
	if (x->argc >= 2) {
		if (resp_arg_ll(x->argv[1], x->len[1], &ver) != 0)
			return resp_add_error(x->out, "ERR Protocol version is not an integer or "
					      "out of range");
		if (ver < 2 || ver > 3)
			return resp_add_error(x->out, "NOPROTO unsupported protocol version");
		j = 2;
	}
	for (; j < x->argc; j++) {
		size_t more = x->argc - 1 - j;

		if (arg_is(x, j, "auth") && more >= 2) {
			if (!arg_is(x, j + 1, "default") || memcmp(x->argv[j + 1], "default", 7))
				return resp_add_error(x->out, "WRONGPASS invalid username-password "
						      "pair or user is disabled.");
			j += 2;
		} else if (arg_is(x, j, "setname") && more >= 1) {
			if (client_check_name(x, j + 1, &rc))
				return rc;
			setname = ++j;
		} else {
			return resp_add_errorf(x->out, "ERR Syntax error in HELLO option '%.*s'",
					       (int)arg_cstrlen(x->argv[j], x->len[j], 1024),
					       x->argv[j]);
		}
	}
	if (ver == 3)
		return resp_add_error(x->out, "NOPROTO this server speaks only RESP2 "
				      "(HELLO 3 is not supported)");
	if (setname)
		client_set_name(x->cl, x->argv[setname], x->len[setname]);
	return hello_reply(x);
}

/* Subcommand dispatch for CLIENT, CONFIG, COMMAND. */
static int cmd_run(struct rx *x);

static int cmd_container(struct rx *x)
{
	const struct cmd_def *d = x->def, *s;
	unsigned i;

	for (i = 0; i < d->nsubs; i++) {
		s = &d->subs[i];
		if (s->nlen == x->len[1] && resp_arg_is(x->argv[1], x->len[1], s->name)) {
			x->def = s;
			return cmd_run(x);
		}
	}
	{
		char up[16];
		size_t k;

		for (k = 0; k < d->nlen && k < sizeof(up) - 1; k++)
			up[k] = (char)(d->name[k] & ~0x20);
		up[k] = '\0';
		return resp_add_errorf(x->out, "ERR unknown subcommand '%.*s'. Try %s HELP.",
				       (int)arg_cstrlen(x->argv[1], x->len[1], 128), x->argv[1],
				       up);
	}
}

static int reply_help(struct rx *x, const char *const *lines, size_t n)
{
	int rc = resp_add_array(x->out, (long long)n);
	size_t i;

	for (i = 0; i < n && !rc; i++)
		rc = resp_add_simple(x->out, lines[i]);
	return rc;
}

static int client_line(struct rx *x, struct buf *t)
{
	uint64_t now = hp_wall_ms();
	unsigned long long age = now > x->cl->created_ms ? (now - x->cl->created_ms) / 1000 : 0;

	return buf_printf(t, "id=%llu addr=%s laddr= fd=-1 name=%s age=%llu idle=0 flags=N "
			  "db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 "
			  "multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r "
			  "cmd=%s user=default redir=-1 resp=2\n",
			  (unsigned long long)x->cl->id, x->cl->addr, x->cl->name, age,
			  x->def->full);
}

static int cmd_client_info(struct rx *x)
{
	struct buf t;
	int rc;

	buf_init(&t, 4096);
	rc = client_line(x, &t);
	if (!rc)
		rc = resp_add_bulk(x->out, buf_head(&t), buf_used(&t));
	buf_free(&t);
	return rc;
}

static int cmd_client_id(struct rx *x)
{
	return resp_add_int(x->out, (long long)x->cl->id);
}

static int cmd_client_getname(struct rx *x)
{
	if (!x->cl->name[0])
		return resp_add_null(x->out);
	return resp_add_bulk_str(x->out, x->cl->name);
}

static int cmd_client_setname(struct rx *x)
{
	int rc;

	if (client_check_name(x, 2, &rc))
		return rc;
	client_set_name(x->cl, x->argv[2], x->len[2]);
	return resp_add_simple(x->out, "OK");
}

/* CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2, sent by new clients). */
static int cmd_client_setinfo(struct rx *x)
{
	if (!arg_is(x, 2, "lib-name") && !arg_is(x, 2, "lib-ver"))
		return resp_add_errorf(x->out, "ERR Unrecognized option '%.*s'",
				       (int)arg_cstrlen(x->argv[2], x->len[2], 128), x->argv[2]);
	return resp_add_simple(x->out, "OK");
}

/* NO-EVICT / NO-TOUCH ON|OFF: accepted, nothing to change here. */
static int cmd_client_onoff(struct rx *x)
{
	if (!arg_is(x, 2, "on") && !arg_is(x, 2, "off"))
		return resp_add_error(x->out, ERR_SYNTAX);
	return resp_add_simple(x->out, "OK");
}

static int cmd_client_reply(struct rx *x)
{
	if (arg_is(x, 2, "on"))
		return resp_add_simple(x->out, "OK");
	if (arg_is(x, 2, "off") || arg_is(x, 2, "skip"))
		return resp_add_error(x->out, "ERR CLIENT REPLY OFF|SKIP is not supported by "
				      "hotpath");
	return resp_add_error(x->out, ERR_SYNTAX);
}

static int cmd_client_help(struct rx *x)
{
	static const char *const lines[] = {
		"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"GETNAME", "    Return the name of the current connection.",
		"ID", "    Return the ID of the current connection.",
		"INFO", "    Return information about the current client connection.",
		"LIST", "    Return information about client connections (this one only).",
		"NO-EVICT (ON|OFF)", "    Accepted for compatibility.",
		"NO-TOUCH (ON|OFF)", "    Accepted for compatibility.",
		"REPLY ON", "    Only ON is supported.",
		"SETINFO (LIB-NAME|LIB-VER) <value>", "    Accepted for compatibility.",
		"SETNAME <name>", "    Assign the name <name> to the current connection.",
		"HELP", "    Print this help.",
	};

	return reply_help(x, lines, HP_ARRAY_SIZE(lines));
}

/* ---- introspection ------------------------------------------------------- */

/* The table is defined at the end (it names every handler). */
static const struct cmd_def *cmd_tab(unsigned *n);

static const struct cmd_def *cmd_find(const struct cmd_def *tab, unsigned n,
				      const char *name, size_t len)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (tab[i].nlen == len && resp_arg_is(name, len, tab[i].name))
			return &tab[i];
	return NULL;
}

/* "container|sub" or a plain name. */
static const struct cmd_def *cmd_find_full(const char *name, size_t len)
{
	const char *bar = memchr(name, '|', len);
	const struct cmd_def *d;

	unsigned n;
	const struct cmd_def *tab = cmd_tab(&n);

	if (!bar)
		return cmd_find(tab, n, name, len);
	d = cmd_find(tab, n, name, (size_t)(bar - name));
	if (!d || !d->nsubs)
		return NULL;
	return cmd_find(d->subs, d->nsubs, bar + 1, len - (size_t)(bar - name) - 1);
}

/* Space-separated words as an array of status replies, each with prefix. */
static int add_words(struct buf *out, const char *words)
{
	const char *p = words, *e;
	long long n = 0;
	char w[64];
	int rc;

	for (p = words; *p; p = *e ? e + 1 : e) {
		e = strchr(p, ' ');
		if (!e)
			e = p + strlen(p);
		n += e > p;
	}
	rc = resp_add_array(out, n);
	for (p = words; *p && !rc; p = *e ? e + 1 : e) {
		size_t l;

		e = strchr(p, ' ');
		if (!e)
			e = p + strlen(p);
		l = (size_t)(e - p);
		if (!l || l >= sizeof(w))
			continue;
		memcpy(w, p, l);
		w[l] = '\0';
		rc = resp_add_simple(out, w);
	}
	return rc;
}

/* One COMMAND entry in Redis 7 form. */
static int command_entry(struct buf *out, const struct cmd_def *d)
{
	unsigned i;
	int rc = resp_add_array(out, 10);

	rc = rc ? rc : resp_add_bulk_str(out, d->full);
	rc = rc ? rc : resp_add_int(out, d->arity);
	rc = rc ? rc : add_words(out, d->rflags);
	rc = rc ? rc : resp_add_int(out, d->first);
	rc = rc ? rc : resp_add_int(out, d->last);
	rc = rc ? rc : resp_add_int(out, d->step);
	rc = rc ? rc : add_words(out, d->acl);
	rc = rc ? rc : resp_add_array(out, 0);     /* tips */
	rc = rc ? rc : resp_add_array(out, 0);     /* key specs */
	rc = rc ? rc : resp_add_array(out, d->nsubs);
	for (i = 0; i < d->nsubs && !rc; i++)
		rc = command_entry(out, &d->subs[i]);
	return rc;
}

static int command_all(struct rx *x)
{
	unsigned i, n;
	const struct cmd_def *tab = cmd_tab(&n);
	int rc = resp_add_array(x->out, n);

	for (i = 0; i < n && !rc; i++)
		rc = command_entry(x->out, &tab[i]);
	return rc;
}

static int cmd_command(struct rx *x)
{
	if (x->argc > 1)
		return cmd_container(x);
	return command_all(x);
}

static int cmd_command_count(struct rx *x)
{
	unsigned n;

	cmd_tab(&n);
	return resp_add_int(x->out, n);
}

static int cmd_command_info(struct rx *x)
{
	size_t i;
	int rc;

	if (x->argc == 2)
		return command_all(x);
	rc = resp_add_array(x->out, (long long)(x->argc - 2));
	for (i = 2; i < x->argc && !rc; i++) {
		const struct cmd_def *d = cmd_find_full(x->argv[i], x->len[i]);

		rc = d ? command_entry(x->out, d) : resp_add_null(x->out);
	}
	return rc;
}

static int cmd_command_docs(struct rx *x)
{
	return resp_add_array(x->out, 0);
}

static int cmd_command_list(struct rx *x)
{
	unsigned i, k, ntab;
	const struct cmd_def *tab = cmd_tab(&ntab);
	long long n = ntab;
	int rc;

	for (i = 0; i < ntab; i++)
		n += tab[i].nsubs;
	rc = resp_add_array(x->out, n);
	for (i = 0; i < ntab && !rc; i++) {
		rc = resp_add_bulk_str(x->out, tab[i].full);
		for (k = 0; k < tab[i].nsubs && !rc; k++)
			rc = resp_add_bulk_str(x->out, tab[i].subs[k].full);
	}
	return rc;
}

static bool arity_ok(int arity, size_t argc)
{
	return arity >= 0 ? argc == (size_t)arity : argc >= (size_t)-arity;
}

static int cmd_command_getkeys(struct rx *x)
{
	unsigned ntab;
	const struct cmd_def *tab = cmd_tab(&ntab);
	const struct cmd_def *d = cmd_find(tab, ntab, x->argv[2], x->len[2]);
	size_t argc = x->argc - 2, last, i;
	int rc;

	if (!d)
		return resp_add_error(x->out, "ERR Invalid command specified");
	if (!arity_ok(d->arity, argc))
		return resp_add_error(x->out, "ERR Invalid number of arguments specified for "
				      "command");
	if (d->first == 0)
		return resp_add_error(x->out, "ERR The command has no key arguments");
	last = d->last < 0 ? argc - (size_t)(-d->last) : (size_t)d->last;
	if (last >= argc)
		last = argc - 1;
	rc = resp_add_array(x->out, (long long)((last - (size_t)d->first) / (size_t)d->step + 1));
	for (i = (size_t)d->first; i <= last && !rc; i += (size_t)d->step)
		rc = resp_add_bulk(x->out, x->argv[2 + i], x->len[2 + i]);
	return rc;
}

static int cmd_command_help(struct rx *x)
{
	static const char *const lines[] = {
		"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"(no subcommand)", "    Return details about all commands.",
		"COUNT", "    Return the total number of commands.",
		"DOCS [<command-name> ...]", "    Empty: no documentation is served.",
		"GETKEYS <full-command>", "    Return the keys from a full command.",
		"INFO [<command-name> ...]", "    Return details about the given commands.",
		"LIST", "    Return the names of all commands.",
		"HELP", "    Print this help.",
	};

	return reply_help(x, lines, HP_ARRAY_SIZE(lines));
}

/* CONFIG GET: a fixed view of the settings clients and tools ask for. */
static int config_value(struct rx *x, unsigned i, char *v, size_t vcap)
{
	const struct resp_ctx *c = x->ctx;
	struct l1_stats *st;

	switch (i) {
	case 0: snprintf(v, vcap, "%s", ""); break;                 /* save */
	case 1: snprintf(v, vcap, "no"); break;                     /* appendonly */
	case 2:                                                       /* maxmemory */
		st = malloc(sizeof(*st));
		if (!st)
			return -ENOMEM;
		l1_get_stats(c->l1, st);
		snprintf(v, vcap, "%llu", (unsigned long long)st->max_memory);
		free(st);
		break;
	case 3:                                                       /* maxmemory-policy */
		st = malloc(sizeof(*st));
		if (!st)
			return -ENOMEM;
		l1_get_stats(c->l1, st);
		snprintf(v, vcap, RESP_POLICY_FMT, l1_policy_name((enum l1_policy)st->policy));
		free(st);
		break;
	case 4: snprintf(v, vcap, "1"); break;                      /* databases */
	case 5:                                                       /* proto-max-bulk-len */
		snprintf(v, vcap, "%llu", (unsigned long long)(c->max_value_size ?
							     c->max_value_size : c->lim.max_bulk));
		break;
	case 6: snprintf(v, vcap, "%zu", c->lim.max_query); break;  /* client-query-buffer-limit */
	case 7: snprintf(v, vcap, "no"); break;                     /* cluster-enabled */
	default: return -ENOENT;
	}
	return 0;
}

static const char *const config_names[] = {
	"save", "appendonly", "maxmemory", "maxmemory-policy", "databases",
	"proto-max-bulk-len", "client-query-buffer-limit", "cluster-enabled",
};

static int cmd_config_get(struct rx *x)
{
	bool want[HP_ARRAY_SIZE(config_names)] = { false };
	long long n = 0;
	unsigned i;
	size_t j;
	int rc;

	for (i = 0; i < HP_ARRAY_SIZE(config_names); i++) {
		for (j = 2; j < x->argc && !want[i]; j++)
			want[i] = glob_match(x->argv[j], x->len[j], config_names[i],
					     strlen(config_names[i]), true);
		n += want[i];
	}
	rc = resp_add_array(x->out, n * 2);
	for (i = 0; i < HP_ARRAY_SIZE(config_names) && !rc; i++) {
		char v[64];

		if (!want[i])
			continue;
		rc = config_value(x, i, v, sizeof(v));
		rc = rc ? rc : resp_add_bulk_str(x->out, config_names[i]);
		rc = rc ? rc : resp_add_bulk_str(x->out, v);
	}
	return rc;
}

static int cmd_config_unsupported(struct rx *x)
{
	return resp_add_errorf(x->out, "ERR CONFIG %s is not supported by hotpath; edit "
			       "hotpath.ini and reload", x->def->name);
}

static int cmd_config_set(struct rx *x)
{
	return resp_add_error(x->out, "ERR CONFIG SET is not supported by hotpath; edit "
			      "hotpath.ini and reload");
}

static int cmd_config_help(struct rx *x)
{
	static const char *const lines[] = {
		"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"GET <pattern>", "    Return parameters matching the glob-like <pattern>.",
		"SET, RESETSTAT, REWRITE", "    Not supported: edit hotpath.ini and reload.",
		"HELP", "    Print this help.",
	};

	return reply_help(x, lines, HP_ARRAY_SIZE(lines));
}

/* ---- INFO ---------------------------------------------------------------- */

enum {
	INFO_SERVER, INFO_CLIENTS, INFO_MEMORY, INFO_PERSISTENCE, INFO_STATS,
	INFO_REPLICATION, INFO_CPU, INFO_CLUSTER, INFO_KEYSPACE, INFO_N
};

static const char *const info_names[INFO_N] = {
	"server", "clients", "memory", "persistence", "stats",
	"replication", "cpu", "cluster", "keyspace",
};
static const char *const info_titles[INFO_N] = {
	"Server", "Clients", "Memory", "Persistence", "Stats",
	"Replication", "CPU", "Cluster", "Keyspace",
};

static void bytes_human(char *s, size_t n, uint64_t b)
{
	double d = (double)b;

	if (b < 1024)
		snprintf(s, n, "%lluB", (unsigned long long)b);
	else if (b < 1024ULL * 1024)
		snprintf(s, n, "%.2fK", d / 1024);
	else if (b < 1024ULL * 1024 * 1024)
		snprintf(s, n, "%.2fM", d / (1024.0 * 1024));
	else if (b < 1024ULL * 1024 * 1024 * 1024)
		snprintf(s, n, "%.2fG", d / (1024.0 * 1024 * 1024));
	else
		snprintf(s, n, "%.2fT", d / (1024.0 * 1024 * 1024 * 1024));
}

/* Our own lines for section s (without the title). */
static int info_own(struct rx *x, unsigned s, const struct l1_stats *st, struct buf *t)
{
	char h1[32], h2[32];
	struct rusage ru;
	uint64_t ev = 0;
	unsigned i;

	switch (s) {
	case INFO_SERVER:
		if (x->ctx->info)
			return 0;
		return buf_printf(t, "redis_version:%s\r\nhotpath_version:%s\r\n"
				  "redis_mode:standalone\r\n", RESP_REDIS_VERSION,
				  HOTPATH_VERSION);
	case INFO_MEMORY:
		bytes_human(h1, sizeof(h1), st->memory);
		bytes_human(h2, sizeof(h2), st->max_memory);
		return buf_printf(t, "used_memory:%llu\r\nused_memory_human:%s\r\n"
				  "maxmemory:%llu\r\nmaxmemory_human:%s\r\n"
				  "maxmemory_policy:" RESP_POLICY_FMT "\r\n"
				  "hotpath_effective_maxmemory:%llu\r\n",
				  (unsigned long long)st->memory, h1,
				  (unsigned long long)st->max_memory, h2,
				  l1_policy_name((enum l1_policy)st->policy),
				  (unsigned long long)st->effective_max_memory);
	case INFO_PERSISTENCE:
		return buf_printf(t, "loading:0\r\nasync_loading:0\r\n"
				  "rdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\n"
				  "rdb_last_bgsave_status:ok\r\naof_enabled:0\r\n"
				  "aof_rewrite_in_progress:0\r\n");
	case INFO_STATS:
		for (i = 0; i < L1_EVICT_REASONS; i++)
			ev += st->evictions[i];
		return buf_printf(t, "keyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
				  "evicted_keys:%llu\r\nexpired_keys:%llu\r\n",
				  (unsigned long long)st->hits, (unsigned long long)st->misses,
				  (unsigned long long)ev,
				  (unsigned long long)(st->expired_lazy + st->expired_active));
	case INFO_REPLICATION:
		return buf_printf(t, "role:master\r\nconnected_slaves:0\r\n"
				  "master_repl_offset:0\r\n");
	case INFO_CPU:
		if (getrusage(RUSAGE_SELF, &ru) != 0)
			return 0;
		return buf_printf(t, "used_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n",
				  (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
				  (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
	case INFO_CLUSTER:
		return buf_printf(t, "cluster_enabled:0\r\n");
	case INFO_KEYSPACE:
		if (st->keys == 0)
			return 0;
		return buf_printf(t, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n",
				  (unsigned long long)st->keys,
				  (unsigned long long)st->keys_with_ttl);
	default:
		return 0;
	}
}

/* Drop trailing blank lines a callback may leave after its section. */
static void info_trim(struct buf *t)
{
	while (t->len >= 4 && !memcmp(buf_head(t) + t->len - 4, "\r\n\r\n", 4))
		t->len -= 2;
}

static int cmd_info(struct rx *x)
{
	bool want[INFO_N] = { false };
	struct l1_stats *st;
	struct buf text, sec;
	bool from_cb;
	size_t j, hdr = 0;
	unsigned s;
	int rc = 0;

	if (x->argc == 1)
		memset(want, 1, sizeof(want));
	for (j = 1; j < x->argc; j++) {
		if (arg_is(x, j, "default") || arg_is(x, j, "all") || arg_is(x, j, "everything")) {
			memset(want, 1, sizeof(want));
			continue;
		}
		for (s = 0; s < INFO_N; s++)
			if (arg_is(x, j, info_names[s]))
				want[s] = true;
	}
	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	l1_get_stats(x->ctx->l1, st);
	buf_init(&text, x->out->max);
	buf_init(&sec, x->out->max);
	for (s = 0; s < INFO_N && !rc; s++) {
		if (!want[s])
			continue;
		buf_reset(&sec);
		if (x->ctx->info)
			x->ctx->info(&sec, info_names[s], x->ctx->info_arg);
		info_trim(&sec);
		from_cb = buf_used(&sec) > 0;
		if (!from_cb) {
			rc = buf_printf(&sec, "# %s\r\n", info_titles[s]);
			hdr = buf_used(&sec);
		}
		rc = rc ? rc : info_own(x, s, st, &sec);
		/* A bare title only for Keyspace, as Redis prints it empty. */
		if (rc || (!from_cb && buf_used(&sec) == hdr && s != INFO_KEYSPACE))
			continue;
		if (buf_used(&text))
			rc = buf_append(&text, "\r\n", 2);
		rc = rc ? rc : buf_append(&text, buf_head(&sec), buf_used(&sec));
	}
	if (!rc)
		rc = resp_add_bulk(x->out, buf_head(&text), buf_used(&text));
	buf_free(&text);
	buf_free(&sec);
	free(st);
	return rc;
}

/* ---- the table ----------------------------------------------------------- */

#define CMD(n, ar, fl, f, l, s, rf, acl, fn) \
	{ n, sizeof(n) - 1, n, ar, fl, f, l, s, rf, acl, fn, NULL, 0 }
#define SUB(parent, n, ar, rf, acl, fn) \
	{ n, sizeof(n) - 1, parent "|" n, ar, 0, 0, 0, 0, rf, acl, fn, NULL, 0 }
#define CONTAINER(n, ar, rf, acl, fn, subs) \
	{ n, sizeof(n) - 1, n, ar, 0, 0, 0, 0, rf, acl, fn, subs, HP_ARRAY_SIZE(subs) }

static const struct cmd_def client_subs[] = {
	SUB("client", "id", 2, "noscript loading stale", "@slow @connection", cmd_client_id),
	SUB("client", "getname", 2, "noscript loading stale", "@slow @connection",
	    cmd_client_getname),
	SUB("client", "setname", 3, "noscript loading stale", "@slow @connection",
	    cmd_client_setname),
	SUB("client", "setinfo", 4, "noscript loading stale", "@slow @connection",
	    cmd_client_setinfo),
	SUB("client", "info", 2, "noscript loading stale", "@slow @connection",
	    cmd_client_info),
	SUB("client", "list", -2, "admin noscript loading stale", "@admin @slow @dangerous "
	    "@connection", cmd_client_info),
	SUB("client", "no-evict", 3, "admin noscript loading stale", "@admin @slow @dangerous "
	    "@connection", cmd_client_onoff),
	SUB("client", "no-touch", 3, "noscript loading stale", "@slow @connection",
	    cmd_client_onoff),
	SUB("client", "reply", 3, "noscript loading stale", "@slow @connection",
	    cmd_client_reply),
	SUB("client", "help", 2, "loading stale", "@slow @connection", cmd_client_help),
};

static const struct cmd_def config_subs[] = {
	SUB("config", "get", -3, "admin noscript loading stale", "@admin @slow @dangerous",
	    cmd_config_get),
	SUB("config", "set", -4, "admin noscript loading stale", "@admin @slow @dangerous",
	    cmd_config_set),
	SUB("config", "resetstat", 2, "admin noscript loading stale",
	    "@admin @slow @dangerous", cmd_config_unsupported),
	SUB("config", "rewrite", 2, "admin noscript loading stale", "@admin @slow @dangerous",
	    cmd_config_unsupported),
	SUB("config", "help", 2, "loading stale", "@slow", cmd_config_help),
};

static const struct cmd_def command_subs[] = {
	SUB("command", "count", 2, "loading stale", "@slow @connection", cmd_command_count),
	SUB("command", "info", -2, "loading stale", "@slow @connection", cmd_command_info),
	SUB("command", "docs", -2, "loading stale", "@slow @connection", cmd_command_docs),
	SUB("command", "list", -2, "loading stale", "@slow @connection", cmd_command_list),
	SUB("command", "getkeys", -3, "loading stale", "@slow @connection",
	    cmd_command_getkeys),
	SUB("command", "help", 2, "loading stale", "@slow @connection", cmd_command_help),
};

/* Order is the stats index: keep the hot commands first. */
static const struct cmd_def cmd_table[] = {
	CMD("get", 2, 0, 1, 1, 1, "readonly fast", "@read @string @fast", cmd_get),
	CMD("set", -3, CF_KEYLIMIT, 1, 1, 1, "write denyoom", "@write @string @slow", cmd_set),
	CMD("mget", -2, 0, 1, -1, 1, "readonly fast", "@read @string @fast", cmd_mget),
	CMD("mset", -3, CF_KEYLIMIT, 1, -1, 2, "write denyoom", "@write @string @slow",
	    cmd_mset),
	CMD("del", -2, 0, 1, -1, 1, "write", "@keyspace @write @slow", cmd_del),
	CMD("unlink", -2, 0, 1, -1, 1, "write fast", "@keyspace @write @fast", cmd_del),
	CMD("exists", -2, 0, 1, -1, 1, "readonly fast", "@keyspace @read @fast", cmd_exists),
	CMD("getdel", 2, 0, 1, 1, 1, "write fast", "@write @string @fast", cmd_getdel),
	CMD("incr", 2, CF_KEYLIMIT, 1, 1, 1, "write denyoom fast", "@write @string @fast",
	    cmd_incr),
	CMD("decr", 2, CF_KEYLIMIT, 1, 1, 1, "write denyoom fast", "@write @string @fast",
	    cmd_decr),
	CMD("incrby", 3, CF_KEYLIMIT, 1, 1, 1, "write denyoom fast", "@write @string @fast",
	    cmd_incrby),
	CMD("decrby", 3, CF_KEYLIMIT, 1, 1, 1, "write denyoom fast", "@write @string @fast",
	    cmd_decrby),
	CMD("expire", -3, 0, 1, 1, 1, "write fast", "@keyspace @write @fast", cmd_expire),
	CMD("pexpire", -3, 0, 1, 1, 1, "write fast", "@keyspace @write @fast", cmd_pexpire),
	CMD("expireat", -3, 0, 1, 1, 1, "write fast", "@keyspace @write @fast", cmd_expireat),
	CMD("pexpireat", -3, 0, 1, 1, 1, "write fast", "@keyspace @write @fast",
	    cmd_pexpireat),
	CMD("persist", 2, 0, 1, 1, 1, "write fast", "@keyspace @write @fast", cmd_persist),
	CMD("ttl", 2, 0, 1, 1, 1, "readonly fast", "@keyspace @read @fast", cmd_ttl),
	CMD("pttl", 2, 0, 1, 1, 1, "readonly fast", "@keyspace @read @fast", cmd_pttl),
	CMD("strlen", 2, 0, 1, 1, 1, "readonly fast", "@read @string @fast", cmd_strlen),
	CMD("setnx", 3, CF_KEYLIMIT, 1, 1, 1, "write denyoom fast", "@write @string @fast",
	    cmd_setnx),
	CMD("setex", 4, CF_KEYLIMIT, 1, 1, 1, "write denyoom", "@write @string @slow",
	    cmd_setex),
	CMD("psetex", 4, CF_KEYLIMIT, 1, 1, 1, "write denyoom", "@write @string @slow",
	    cmd_psetex),
	CMD("type", 2, 0, 1, 1, 1, "readonly fast", "@keyspace @read @fast", cmd_type),
	CMD("keys", 2, 0, 0, 0, 0, "readonly", "@keyspace @read @slow @dangerous", cmd_keys),
	CMD("scan", -2, 0, 0, 0, 0, "readonly", "@keyspace @read @slow", cmd_scan),
	CMD("dbsize", 1, 0, 0, 0, 0, "readonly fast", "@keyspace @read @fast", cmd_dbsize),
	CMD("flushall", -1, 0, 0, 0, 0, "write", "@keyspace @write @slow @dangerous",
	    cmd_flushall),
	CMD("flushdb", -1, 0, 0, 0, 0, "write", "@keyspace @write @slow @dangerous",
	    cmd_flushall),
	CMD("ping", -1, 0, 0, 0, 0, "fast", "@fast @connection", cmd_ping),
	CMD("echo", 2, 0, 0, 0, 0, "fast", "@fast @connection", cmd_echo),
	CMD("select", 2, 0, 0, 0, 0, "loading stale fast", "@fast @connection", cmd_select),
	CMD("hello", -1, 0, 0, 0, 0, "noscript loading stale fast no_auth allow_busy",
	    "@fast @connection", cmd_hello),
	CMD("auth", -2, 0, 0, 0, 0, "noscript loading stale fast no_auth allow_busy",
	    "@fast @connection", cmd_auth),
	CMD("quit", -1, 0, 0, 0, 0, "noscript loading stale fast no_auth allow_busy",
	    "@fast @connection", cmd_quit),
	CMD("reset", 1, 0, 0, 0, 0, "noscript loading stale fast no_auth allow_busy",
	    "@fast @connection", cmd_reset),
	CMD("info", -1, 0, 0, 0, 0, "loading stale", "@slow @dangerous", cmd_info),
	CONTAINER("client", -2, "", "@slow", cmd_container, client_subs),
	CONTAINER("config", -2, "", "@slow", cmd_container, config_subs),
	CONTAINER("command", -1, "", "@slow", cmd_command, command_subs),
};

#define cmd_table_len ((unsigned)HP_ARRAY_SIZE(cmd_table))

static const struct cmd_def *cmd_tab(unsigned *n)
{
	*n = cmd_table_len;
	return cmd_table;
}

unsigned resp_command_count(void)
{
	return cmd_table_len;
}

const char *resp_command_name(unsigned i)
{
	return i < cmd_table_len ? cmd_table[i].name : NULL;
}

/* ---- executor ------------------------------------------------------------ */

/* Arity, key-length limit, then the handler. */
static int cmd_run(struct rx *x)
{
	const struct cmd_def *d = x->def;

	if (hp_unlikely(!arity_ok(d->arity, x->argc)))
		return reply_arity(x);
	if ((d->flags & CF_KEYLIMIT) && x->ctx->max_key_len) {
		size_t last = d->last < 0 ? x->argc - (size_t)(-d->last) : (size_t)d->last, i;

		for (i = (size_t)d->first; i <= last && i < x->argc; i += (size_t)d->step)
			if (x->len[i] > x->ctx->max_key_len)
				return resp_add_errorf(x->out, "ERR key is too long (max %llu bytes)",
						       (unsigned long long)x->ctx->max_key_len);
	}
	/* With an L2 the tiers answer reads and take writes (tier.h). */
	{
		struct tier *t = tier_current();

		if (t && tier_routes(t)) {
			int trc = tier_exec(t, d->full, x->argv, x->len, x->argc, d->first, d->last,
					    d->step, strstr(d->rflags, "write") != NULL, x->out,
					    x->ctx->defer);

			if (trc == TIER_PARKED)
				return RESP_PARKED;
			if (trc != TIER_LOCAL)
				return trc;
		}
	}
	return d->fn(x);
}

/* Redis 7's text, arguments quoted and cut after ~128 bytes. */
static int reply_unknown(struct rx *x)
{
	char args[300];
	size_t alen = 0, i;

	args[0] = '\0';
	for (i = 1; i < x->argc && alen < 128; i++) {
		size_t n = arg_cstrlen(x->argv[i], x->len[i], 128 - alen);
		int w = snprintf(args + alen, sizeof(args) - alen, "'%.*s' ", (int)n, x->argv[i]);

		if (w < 0 || (size_t)w >= sizeof(args) - alen)
			break;
		alen += (size_t)w;
	}
	return resp_add_errorf(x->out, "ERR unknown command '%.*s', with args beginning with: %s",
			       (int)arg_cstrlen(x->argv[0], x->len[0], 128), x->argv[0], args);
}

int resp_exec(struct resp_ctx *ctx, struct resp_client *cl, const struct resp_cmd *cmd,
	      struct buf *out)
{
	struct rx x = { ctx, cl, out, cmd->argv, cmd->argvlen, cmd->argc, NULL };
	struct resp_cmdstat *st;
	uint64_t t0 = 0;
	size_t mark;
	int rc;

	if (cmd->argc == 0)
		return 0;
	x.def = cmd_find(cmd_table, cmd_table_len, cmd->argv[0], cmd->argvlen[0]);
	if (hp_unlikely(!x.def)) {
		if (ctx->ext && ctx->ext(ctx, cl, cmd, out) == 1)
			return 0;
		rc = tier_resp_ext(ctx, cl, cmd, out);     /* HOTPATH.INVALIDATE */
		if (rc == TIER_PARKED)
			return RESP_PARKED;
		if (rc == 1)
			return 0;
		return reply_unknown(&x);
	}
	if (!ctx->stats)
		return cmd_run(&x);
	st = &ctx->stats[x.def - cmd_table];
	mark = buf_used(out);
	t0 = ctx->clock_us ? ctx->clock_us : hp_now_us();
	rc = cmd_run(&x);
	ctx->clock_us = hp_now_us();
	hist_record_local(&st->usec, ctx->clock_us - t0);
	__atomic_store_n(&st->calls, st->calls + 1, __ATOMIC_RELAXED);
	if (buf_used(out) > mark && buf_head(out)[mark] == '-')
		__atomic_store_n(&st->failed, st->failed + 1, __ATOMIC_RELAXED);
	return rc;
}
