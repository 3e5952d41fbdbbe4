/*
 * observe.c - loader and aggregator for bpf/observe.bpf.c: request latency
 * of the host's services (inbound) and of their calls to databases and
 * caches (outbound), and PostgreSQL query statistics.
 *
 * What is counted where. The kernel counts every request it pairs with a
 * response in its endpoint's statistics, in obs_ep_table (mapped here and
 * read in place) or obs_endpoints (per service and endpoint: log2 µs
 * histogram in hist.h's layout, count, sum, errors, rows, max, first/last
 * seen); those counts are complete whatever the load, and reading them is
 * the only thing userspace must do (once a second, by the thread started
 * here, or on demand before a report). Individual requests arrive as ring
 * buffer events under a per-CPU budget (ev_per_sec, refilled each second,
 * last quarter reserved for requests slower than slow_ns); events over
 * budget or finding the ring full are dropped and counted in obs_drops, never
 * queued. Each endpoint keeps the exact durations of its last
 * OBS_SAMPLES events: a report whose range holds exactly as many events as
 * the kernel counted requests computes p50/p95/p99 from them ("quantiles":
 * "exact"); otherwise from the histogram, interpolated within log2 buckets
 * ("histogram", up to a factor-2 bucket's error). Ranges come from
 * snapshots of the cumulative counts: every 2 s for the last minute, every
 * minute for the last hour; a longer or older range is reported since
 * start, with the range actually covered.
 *
 * Endpoints are named from the kernel's text events: HTTP method and route
 * (httproute.c, verified against the kernel's hash), RESP command name,
 * PostgreSQL query text fingerprinted and normalised by libpg_query
 * (pgquery.c); statements with the same fingerprint are one row of
 * observe_queries_json and one endpoint of the metrics. A text event lost
 * to a full ring is asked for again through obs_wanttext.
 *
 * Services: [service.NAME] (inbound, and outbound for local clients),
 * [database.NAME] and [redis] (outbound), PostgreSQL 5432 and Redis 6379
 * (outbound, always), and every listening TCP socket of the host every
 * DISCOVER_MS (sockets.c: sock_diag, its owner from a cache of /proc;
 * inbound, protocol guessed from the port or, for "auto", sniffed by the
 * kernel from the first request).
 *
 * What not: no TLS, no HTTP/2, no per-connection or per-client breakdown,
 * at most OBS_MAX_EP endpoints tracked in userspace (the rest are counted
 * as untracked). Needs root (CAP_BPF + CAP_PERFMON) and tracefs.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/types.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hotpath/api_body.h"
#include "hotpath/bpfmap.h"
#include "hotpath/cgroup.h"
#include "hotpath/config.h"
#include "hotpath/hist.h"
#include "hotpath/httproute.h"
#include "hotpath/log.h"
#include "hotpath/observe.h"
#include "hotpath/observe_events.h"
#include "hotpath/pgquery.h"
#include "hotpath/pgmsg.h"
#include "hotpath/sockets.h"
#include "hotpath/wireproto.h"
#include "observe.skel.h"

_Static_assert(OBS_HIST_BUCKETS == HIST_BUCKETS, "kernel and userspace histograms differ");

#define OBS_DEFAULT_PIN "/sys/fs/bpf/hotpath"
#define OBS_MAX_SVC 256
#define OBS_MAX_EP 1024
#define OBS_EP_BUCKETS 1024
#define OBS_SAMPLES 2048
#define SNAP_FINE 30
#define SNAP_FINE_MS 2000
#define SNAP_COARSE 60
#define SNAP_COARSE_MS 60000
#define REFRESH_MS 1000
#define DISCOVER_MS 5000
#define TEXT_RETRY_MS 5000
#define OBS_SVC_PIDS 4
#define OBS_MAX_LISTENERS 1024

struct obs_svc {
	char name[HP_NAME_MAX + 24];
	uint16_t port;
	uint8_t dir;                 /* OBS_DIR_* */
	int protocol;                /* told to the kernel, OBS_PROTO_AUTO = sniff */
	const char *proto_from;      /* "config", "port", "traffic" */
	const char *source;          /* "config", "database", "redis", "default", "discovered" */
	bool watched;                /* present in obs_watched */
	bool present;                /* inbound: seen listening at the last discovery */
	unsigned npids;
	int32_t pids[OBS_SVC_PIDS];
	char comm[16];
	uint32_t only_pid;           /* [service] pid, 0 = any */
	char only_cgroup[HP_PATH_MAX]; /* [service] cgroup as configured */
	uint64_t cgroup_id;          /* its cgroup v2 id (inode), 0 = any */
	uint32_t cgroup_level;       /* its depth below the root */
};

struct snap {
	uint64_t t_ms;
	uint64_t count, sum_us, errors, rows, ev;
	uint64_t hist[HIST_BUCKETS];
};

struct obs_ep {
	struct obs_ep *next;
	uint32_t service_id;
	uint64_t hash;
	int protocol;
	char key[40];                /* grouping key: name, or PG fingerprint */
	char name[1024];             /* "GET /users/{id}", "GET", normalised SQL: valid UTF-8 */
	bool have_text;
	bool truncated;
	uint64_t text_asked_ms;
	/* the kernel entry as last read, and its incarnation */
	uint64_t k_first_ns;
	struct obs_ep_stats k_last;
	/* accumulated since start */
	struct hist acc;
	uint64_t errors, rows, max_us, first_ns, last_ns;
	uint64_t ev;                 /* event samples received */
	uint32_t *samples;           /* ring of the last OBS_SAMPLES, µs */
	struct snap *fine, *coarse;
	uint64_t nfine, ncoarse;
};

struct observe {
	struct observe_bpf *skel;
	struct ring_buffer *rb;
	pthread_t thread;
	bool thread_started;
	volatile bool stop;
	int wake_fd;                /* eventfd: observe_stop wakes the thread */
	pthread_mutex_t lock;
	char pin_path[HP_PATH_MAX];
	bool pinned;
	bool send_in_tcp;            /* hp_obs_sendmsg rather than hp_obs_send */
	bool recv_in_skb;            /* hp_obs_rx rather than hp_obs_recv */
	int self;                    /* the agent's pid: its listeners are not discovered */
	int ncpus;
	uint64_t start_ms;

	struct obs_svc svc[OBS_MAX_SVC];
	unsigned nsvc;
	bool local_callers;          /* [bpf] observe_local_callers */
	bool discover;               /* [bpf] observe_discover */

	struct obs_ep_slot *ep_table;  /* obs_ep_table, mapped */
	size_t ep_table_len;

	struct obs_ep *ep_tab[OBS_EP_BUCKETS];
	unsigned nep;
	uint64_t untracked;
	uint64_t hash_mismatch;
	uint64_t last_refresh_ms, last_discover_ms;
	unsigned frag_state;         /* the kernel's OBS_FRAG_*, as last logged: */
	unsigned user_state;         /* socket buffers', user memory's */
};

/* ---- services ---------------------------------------------------------------- */

static int svc_find(struct observe *o, uint16_t port, uint8_t dir)
{
	for (unsigned i = 0; i < o->nsvc; i++)
		if (o->svc[i].port == port && o->svc[i].dir == dir)
			return (int)i;
	return -1;
}

static int svc_add(struct observe *o, const char *name, uint16_t port, uint8_t dir, int protocol,
		   const char *proto_from, const char *source)
{
	struct obs_svc *s;

	if (!port || svc_find(o, port, dir) >= 0 || o->nsvc >= OBS_MAX_SVC)
		return -1;
	s = &o->svc[o->nsvc];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->port = port;
	s->dir = dir;
	s->protocol = protocol;
	s->proto_from = proto_from;
	s->source = source;
	s->present = true;
	return (int)o->nsvc++;
}

/*
 * A cgroup v2 path as configured ("/system.slice/x.service", with or
 * without the hierarchy's mount point in front) to the id the kernel compares
 * (bpf_get_current_ancestor_cgroup_id: the directory's inode number) and
 * its depth. -errno when it does not exist.
 */
int observe_cgroup_resolve(const char *path, uint64_t *id, uint32_t *level)
{
	char root[512], full[HP_PATH_MAX + 512];
	const char *rel = path;
	size_t rl;
	struct stat st;
	uint32_t depth = 0;

	if (cgroup2_mountpoint(root, sizeof(root)) != 0)
		return -ENOENT;
	rl = strlen(root);
	if (!strncmp(rel, root, rl) && (rel[rl] == '/' || rel[rl] == '\0'))
		rel += rl;
	while (*rel == '/')
		rel++;
	if (strstr(rel, "..") != NULL)
		return -EINVAL;
	snprintf(full, sizeof(full), "%s/%s", root, rel);
	if (stat(full, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	for (const char *c = rel; *c; c++)
		if (*c != '/' && (c == rel || c[-1] == '/'))
			depth++;
	*id = (uint64_t)st.st_ino;
	*level = depth;
	return 0;
}

/* [service] pid and cgroup: a service limited to them stays unwatched (with
 * a warning) when its cgroup is missing, rather than watching everyone. */
static void svc_restrict(struct obs_svc *s, const struct hp_service_conf *sc)
{
	int err;

	s->only_pid = sc->pid;
	snprintf(s->only_cgroup, sizeof(s->only_cgroup), "%s", sc->cgroup);
	if (!sc->cgroup[0])
		return;
	err = observe_cgroup_resolve(sc->cgroup, &s->cgroup_id, &s->cgroup_level);
	if (err) {
		log_warn("observe: service %s: cgroup %s: %s; not watched", sc->name, sc->cgroup,
			 strerror(-err));
		s->present = false;
	}
}

static int guessed(unsigned port, const char **from)
{
	int p = wire_guess_port(port);

	*from = p ? "port" : "traffic";
	return p;
}

static void services_from_config(struct observe *o, const struct hp_config *cfg)
{
	const char *from;

	for (unsigned i = 0; i < cfg->n_services; i++) {
		const struct hp_service_conf *sc = &cfg->services[i];
		int p = sc->protocol;

		from = "config";
		if (p == HP_PROTO_AUTO)
			p = guessed(sc->port, &from);
		for (uint8_t dir = OBS_DIR_IN; dir <= OBS_DIR_OUT; dir++) {
			int id = svc_add(o, sc->name, (uint16_t)sc->port, dir, p, from, "config");

			/* pid and cgroup say which process is the service:
			 * its callers (the outbound side) are anyone */
			if (id >= 0 && dir == OBS_DIR_IN)
				svc_restrict(&o->svc[id], sc);
		}
	}
	for (unsigned i = 0; i < cfg->n_databases; i++) {
		const struct hp_database_conf *d = &cfg->databases[i];

		svc_add(o, d->name, (uint16_t)(d->port ? d->port : 5432), OBS_DIR_OUT,
			OBS_PROTO_POSTGRES, "config", "database");
	}
	if (cfg->redis_address[0]) {
		char host[HP_ADDR_MAX];
		uint16_t port;

		if (config_parse_hostport(cfg->redis_address, host, sizeof(host), &port) == 0)
			svc_add(o, "redis", port, OBS_DIR_OUT, OBS_PROTO_RESP, "config", "redis");
	}
	svc_add(o, "postgres", 5432, OBS_DIR_OUT, OBS_PROTO_POSTGRES, "port", "default");
	svc_add(o, "redis", 6379, OBS_DIR_OUT, OBS_PROTO_RESP, "port", "default");
}

/* Push the service table into obs_watched and make the kernel re-classify
 * cached fds. Called with the lock held. */
static void watched_sync(struct observe *o)
{
	int fd = bpf_map__fd(o->skel->maps.obs_watched);
	static __u64 bits[2][65536 / 64], server_side[65536 / 64];

	for (unsigned i = 0; i < o->nsvc; i++) {
		struct obs_svc *s = &o->svc[i];
		struct obs_watch_key k = { .port = s->port, .dir = s->dir };
		struct obs_watch v = { .service_id = i, .protocol = (__u32)s->protocol,
				       .pid = s->only_pid, .cgroup_level = s->cgroup_level,
				       .cgroup_id = s->cgroup_id };

		if (s->present && !s->watched) {
			if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) == 0)
				s->watched = true;
			else
				log_debug("observe: cannot watch port %u: %s", s->port, strerror(errno));
		} else if (!s->present && s->watched) {
			bpf_map_delete_elem(fd, &k);
			s->watched = false;
		}
	}
	/* The kernel's first test on every socket transfer: word by word,
	 * so a port that stays watched is never seen clear. */
	memset(bits, 0, sizeof(bits));
	memset(server_side, 0, sizeof(server_side));
	for (unsigned i = 0; i < o->nsvc; i++) {
		const struct obs_svc *s = &o->svc[i];

		if (!s->watched)
			continue;
		bits[s->dir & 1][s->port >> 6] |= 1ULL << (s->port & 63);
		/* A [service] port anyone may serve: its local callers are
		 * timed by its own socket (observe.bpf.c, server_side_bits). */
		if (!o->local_callers && s->dir == OBS_DIR_IN && !strcmp(s->source, "config") &&
		    !s->only_pid && !s->cgroup_id)
			server_side[s->port >> 6] |= 1ULL << (s->port & 63);
	}
	for (unsigned d = 0; d < 2; d++)
		for (unsigned w = 0; w < 65536 / 64; w++)
			__atomic_store_n(&o->skel->bss->watch_bits[d][w], bits[d][w], __ATOMIC_RELAXED);
	for (unsigned w = 0; w < 65536 / 64; w++)
		__atomic_store_n(&o->skel->bss->server_side_bits[w], server_side[w], __ATOMIC_RELAXED);
	__atomic_add_fetch(&o->skel->bss->watch_gen, 1, __ATOMIC_RELAXED);
}

/* Apply a discovery scan (lock held): one listener per socket, so a port
 * may come several times (IPv4 and IPv6, SO_REUSEPORT, forked workers).
 * With [bpf] observe_discover = no the scan still runs, for the pids and
 * comm of the declared services, but adds no service of its own. */
static void discover_apply(struct observe *o, const struct sock_listener *ls, int n)
{
	bool seen[OBS_MAX_SVC] = { false };
	bool changed = false;

	for (int i = 0; i < n; i++) {
		int id = svc_find(o, ls[i].port, OBS_DIR_IN);
		struct obs_svc *s;
		bool have = false;

		if (id < 0) {
			char name[HP_NAME_MAX + 24];
			const char *from;
			int p;

			/* Not the agent's own listeners (its RESP front, HTTP
			 * cache, pooler, API): it counts their requests itself,
			 * and kernel timing would cost its own hot path. A
			 * [service.NAME] on one of them is still watched. */
			if (!o->discover || ls[i].pid == o->self)
				continue;
			p = guessed(ls[i].port, &from);

			snprintf(name, sizeof(name), "%s:%u", ls[i].comm[0] ? ls[i].comm : "port",
				 ls[i].port);
			id = svc_add(o, name, ls[i].port, OBS_DIR_IN, p, from, "discovered");
			if (id < 0)
				continue;
			changed = true;
		}
		s = &o->svc[id];
		if (!seen[id]) {
			seen[id] = true;
			s->npids = 0;
			s->comm[0] = '\0';
		}
		for (unsigned j = 0; j < s->npids; j++)
			if (s->pids[j] == ls[i].pid)
				have = true;
		if (ls[i].pid > 0 && !have && s->npids < OBS_SVC_PIDS)
			s->pids[s->npids++] = ls[i].pid;
		if (!s->comm[0] && ls[i].comm[0])
			memcpy(s->comm, ls[i].comm, sizeof(s->comm));
		if (!s->present) {
			s->present = true;
			changed = true;
		}
	}
	for (unsigned i = 0; i < o->nsvc; i++) {
		struct obs_svc *s = &o->svc[i];

		if (s->dir == OBS_DIR_IN && !seen[i])
			s->npids = 0;
		if (s->dir == OBS_DIR_IN && !strcmp(s->source, "discovered") && s->present && !seen[i]) {
			s->present = false;
			changed = true;
		}
	}
	if (changed)
		watched_sync(o);
}

static void discover_run(struct observe *o)
{
	struct sock_listener *ls = calloc(OBS_MAX_LISTENERS, sizeof(*ls));
	int n;

	if (!ls)
		return;
	n = sockets_listeners(ls, OBS_MAX_LISTENERS);
	if (n >= 0) {
		pthread_mutex_lock(&o->lock);
		discover_apply(o, ls, n);
		pthread_mutex_unlock(&o->lock);
	}
	free(ls);
}

/* ---- endpoints -------------------------------------------------------------- */

static unsigned ep_slot(uint32_t sid, uint64_t hash)
{
	return (unsigned)((hash ^ ((uint64_t)sid * 0x9e3779b97f4a7c15ULL)) % OBS_EP_BUCKETS);
}

static struct obs_ep *ep_get(struct observe *o, uint32_t sid, uint64_t hash, bool create)
{
	unsigned slot = ep_slot(sid, hash);
	struct obs_ep *e;

	for (e = o->ep_tab[slot]; e; e = e->next)
		if (e->service_id == sid && e->hash == hash)
			return e;
	if (!create || sid >= o->nsvc)
		return NULL;
	if (o->nep >= OBS_MAX_EP) {
		o->untracked++;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->samples = calloc(OBS_SAMPLES, sizeof(*e->samples));
	e->fine = calloc(SNAP_FINE, sizeof(*e->fine));
	e->coarse = calloc(SNAP_COARSE, sizeof(*e->coarse));
	if (!e->samples || !e->fine || !e->coarse) {
		free(e->samples);
		free(e->fine);
		free(e->coarse);
		free(e);
		return NULL;
	}
	e->service_id = sid;
	e->hash = hash;
	e->protocol = o->svc[sid].protocol;
	snprintf(e->key, sizeof(e->key), "h:%016" PRIx64, hash);
	snprintf(e->name, sizeof(e->name), "(endpoint %016" PRIx64 ")", hash);
	e->next = o->ep_tab[slot];
	o->ep_tab[slot] = e;
	o->nep++;
	return e;
}

static void ep_free_all(struct observe *o)
{
	for (unsigned i = 0; i < OBS_EP_BUCKETS; i++) {
		struct obs_ep *e = o->ep_tab[i];

		while (e) {
			struct obs_ep *nx = e->next;

			free(e->samples);
			free(e->fine);
			free(e->coarse);
			free(e);
			e = nx;
		}
		o->ep_tab[i] = NULL;
	}
	o->nep = 0;
}

/*
 * Copy len bytes of wire text into dst (dstlen > 4) as valid UTF-8, which
 * a JSON string must be: a NUL, or a byte that starts no valid sequence,
 * becomes '?'. Text that does not fit is cut on a character boundary and
 * ends with an ellipsis (U+2026). Returns true when it was cut.
 */
static bool text_set(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t o = 0, i = 0, room = dstlen - 1, end;

	while (i < len) {
		size_t k = api_utf8_seq(src + i, len - i);
		bool keep = k && src[i];

		if (o + (keep ? k : 1) > room)
			break;
		if (keep)
			memcpy(dst + o, src + i, k);
		else
			dst[o] = '?';
		o += keep ? k : 1;
		i += k ? k : 1;
	}
	if (i < len) {
		/* back to a character boundary with room for the ellipsis */
		end = o;
		while (o > room - 3 || (o < end && ((unsigned char)dst[o] & 0xc0) == 0x80))
			o--;
		memcpy(dst + o, "\xe2\x80\xa6", 3);
		o += 3;
	}
	dst[o] = '\0';
	return i < len;
}

/* Name an endpoint from the first bytes of one of its requests. */
static void ep_name(struct observe *o, struct obs_ep *e, int protocol, const char *t, size_t n)
{
	/* a normalised query is longer than its text (each literal a $n):
	 * room for that of an OBS_TEXT_MAX text, then cut to fit e->name */
	char route[ROUTE_PATH_MAX + 16], buf[4 * OBS_TEXT_MAX] = "";

	e->protocol = protocol;
	if (protocol == OBS_PROTO_HTTP) {
		const char *m, *p;
		size_t ml, pl;

		if (wire_http_request(t, n, &m, &ml, &p, &pl) != 0)
			return;
		if (route_normalise(p, pl, route, sizeof(route)) < 0)
			return;
		if (route_hash(m, ml, p, pl) != e->hash)
			o->hash_mismatch++;
		snprintf(buf, sizeof(buf), "%.*s %s", (int)ml, m, route);
		snprintf(e->key, sizeof(e->key), "h:%016" PRIx64, e->hash);
	} else if (protocol == OBS_PROTO_RESP) {
		if (wire_resp_command(t, n, buf, OBS_CMD_MAX + 1) < 0)
			return;
	} else if (protocol == OBS_PROTO_POSTGRES) {
		const char *q;
		size_t ql;
		bool trunc;
		uint64_t fp = 0;
		int r = pgmsg_query_text(t, n, &q, &ql, &trunc);

		if (r == -ENOENT && n > 5 && t[0] == 'B') {
			int nl = (int)strnlen(t + 5, n - 5);

			snprintf(buf, sizeof(buf), "(prepared statement \"%.*s\")", nl > 60 ? 60 : nl,
				 t + 5);
		} else if (r == 0) {
			/* the raw text when libpg_query cannot parse it */
			if (pgquery_fingerprint(q, ql, &fp, buf, sizeof(buf)) == 0)
				snprintf(e->key, sizeof(e->key), "fp:%016" PRIx64, fp);
			e->truncated = trunc || strlen(buf) == sizeof(buf) - 1;
		} else {
			return;
		}
	}
	if (buf[0] && text_set(e->name, sizeof(e->name), buf, strlen(buf)))
		e->truncated = true;
	e->have_text = true;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct observe *o = ctx;
	uint32_t kind;

	if (size < sizeof(kind))
		return 0;
	memcpy(&kind, data, sizeof(kind));
	if (kind == OBS_EV_TEXT && size >= sizeof(struct obs_text_event)) {
		const struct obs_text_event *t = data;
		struct obs_ep *e = ep_get(o, t->service_id, t->ep_hash, true);

		if (e)
			ep_name(o, e, (int)t->protocol, t->text,
				t->len < OBS_TEXT_MAX ? t->len : OBS_TEXT_MAX);
	} else if (kind == OBS_EV_REQ && size >= sizeof(struct obs_req_event)) {
		const struct obs_req_event *r = data;
		struct obs_ep *e = ep_get(o, r->service_id, r->ep_hash, true);
		uint64_t us = r->dur_ns / 1000;

		if (!e)
			return 0;
		for (unsigned i = 0; i < (r->n ? r->n : 1u); i++)
			e->samples[e->ev++ % OBS_SAMPLES] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	}
	return 0;
}

static void snap_take(struct obs_ep *e, struct snap *s, uint64_t now)
{
	s->t_ms = now;
	s->count = e->acc.count;
	s->sum_us = e->acc.sum;
	s->errors = e->errors;
	s->rows = e->rows;
	s->ev = e->ev;
	memcpy(s->hist, e->acc.buckets, sizeof(s->hist));
}

/* One kernel endpoint entry, as read, into its accumulator (lock held). */
static void absorb(struct observe *o, const struct obs_ep_key *k, const struct obs_ep_stats *v,
		   uint64_t now)
{
	int wfd = bpf_map__fd(o->skel->maps.obs_wanttext);
	struct obs_ep *e = ep_get(o, k->service_id, k->ep_hash, true);
	const struct obs_ep_stats *p;

	if (!e)
		return;
	if (v->first_ns != e->k_first_ns) {      /* new kernel incarnation */
		memset(&e->k_last, 0, sizeof(e->k_last));
		e->k_first_ns = v->first_ns;
		if (!e->first_ns)
			e->first_ns = v->first_ns;
	}
	p = &e->k_last;
	if (v->count < p->count)
		return;                          /* torn read; next time */
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		e->acc.buckets[i] += v->hist_us[i] - p->hist_us[i];
	e->acc.count += v->count - p->count;
	e->acc.sum += v->sum_us - p->sum_us;
	e->errors += v->errors - p->errors;
	e->rows += v->rows - p->rows;
	if (v->max_us > e->max_us)
		e->max_us = v->max_us;
	if (v->last_ns > e->last_ns)
		e->last_ns = v->last_ns;
	if (e->protocol == OBS_PROTO_AUTO)
		e->protocol = (int)v->protocol;
	e->k_last = *v;
	if (!e->have_text && v->count && now - e->text_asked_ms >= TEXT_RETRY_MS) {
		__u32 one = 1;

		bpf_map_update_elem(wfd, k, &one, BPF_ANY);
		e->text_asked_ms = now;
		/* the kernel's known-endpoint caches look again */
		__atomic_add_fetch(&o->skel->bss->text_gen, 1, __ATOMIC_RELAXED);
	}
}

static const char *inplace_name(unsigned state)
{
	switch (state) {
	case OBS_FRAG_ON: return "in_place";
	case OBS_FRAG_OFF: return "copied";
	default: return "learning";
	}
}

/* Log once where one kind of in-place read settled (OBS_FRAG_ON or
 * OBS_FRAG_OFF; *last: the state last logged): "observe: <what> read in
 * place (<how>, then checked on N reads)" or "... read through the
 * kernel's <copy> (<why>)". */
static void inplace_settled(unsigned st, unsigned *last, unsigned checks, const char *what,
			    const char *how, const char *copy, const char *why)
{
	if (st == *last || (st != OBS_FRAG_ON && st != OBS_FRAG_OFF))
		return;
	*last = st;
	if (st == OBS_FRAG_ON)
		log_info("observe: %s read in place (%s, then checked on %u reads)", what, how, checks);
	else
		log_info("observe: %s read through the kernel's %s (%s)", what, copy, why);
}

/* Log once where the kernel side settled on reading socket buffers and
 * user memory: in place, or through the kernel's copy (observe.bpf.c,
 * skb_read() and user_read()). */
static void inplace_note(struct observe *o)
{
	const char *unknown = "this kernel's memory layout is not known here";
	bool known = o->skel->rodata->ram_span != 0;

	if (o->recv_in_skb)
		inplace_settled(__atomic_load_n(&o->skel->bss->frag.state, __ATOMIC_RELAXED),
				&o->frag_state, o->skel->bss->frag.count, "socket buffers are",
				"their pages' kernel addresses learnt", "copy",
				known ? "their pages' kernel addresses were not learnt" : unknown);
	inplace_settled(__atomic_load_n(&o->skel->bss->user.state, __ATOMIC_RELAXED),
			&o->user_state, o->skel->bss->user.count, "user memory is",
			"through the page tables and the kernel's direct map, its base learnt",
			"user copy", known ? "the kernel's direct map was not found" : unknown);
}

/* The top of RAM, rounded up to 1 GiB: the end of /proc/iomem's highest
 * "System RAM" range (observe.bpf.c's ram_span). 0 where the addresses
 * are hidden (shown as 0 without CAP_SYS_ADMIN) or the file cannot be
 * read: socket buffers are then read through the kernel's copy. */
static uint64_t ram_top(void)
{
	FILE *f = fopen("/proc/iomem", "re");
	char line[256];
	uint64_t top = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		int at = 0;

		if (line[0] == ' ' || sscanf(line, "%llx-%llx : %n", &lo, &hi, &at) != 2 || !at ||
		    strncmp(line + at, "System RAM", 10) != 0)
			continue;
		if (hi + 1 > top)
			top = hi + 1;
	}
	fclose(f);
	return (top + (1ULL << 30) - 1) & ~((1ULL << 30) - 1);
}

/* Does this CPU have the feature (a word of /proc/cpuinfo's flags)? */
static bool cpu_flag(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[8192];
	size_t n = strlen(flag);
	bool has = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		const char *p = line;

		if (strncmp(line, "flags", 5) != 0)
			continue;
		while (!has && (p = strstr(p, flag)) != NULL) {
			has = p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n' || p[n] == 0);
			p += n;
		}
		break;
	}
	fclose(f);
	return has;
}

/* The page-table levels of this x86-64 kernel (observe.bpf.c's
 * user_levels): 5 where the CPU has LA57 and the kernel was not told
 * no5lvl, else 4. A wrong guess is caught where the programs check what
 * they learn (user_learn()), and user memory is then read with the call. */
static unsigned paging_levels(void)
{
	char cmd[4096] = "";
	FILE *f = fopen("/proc/cmdline", "re");

	if (f) {
		if (!fgets(cmd, sizeof(cmd), f))
			cmd[0] = 0;
		fclose(f);
	}
	return cpu_flag("la57") && !strstr(cmd, "no5lvl") ? 5 : 4;
}

/* Read the kernel's endpoint tables into the accumulators (lock held):
 * obs_ep_table in place (a slot is used once its first_ns is set, which
 * its creator writes last), then obs_endpoints, the hash map for the
 * endpoints whose slot another holds. */
static void refresh(struct observe *o)
{
	int fd = bpf_map__fd(o->skel->maps.obs_endpoints);
	struct obs_ep_key k, next;
	struct obs_ep_stats v;
	uint64_t now = hp_now_ms();
	bool first = true;

	ring_buffer__consume(o->rb);
	for (unsigned i = 0; o->ep_table && i < OBS_EP_SLOTS; i++) {
		const struct obs_ep_slot *p = &o->ep_table[i];
		struct obs_ep_slot sl;

		if (!__atomic_load_n(&p->st.first_ns, __ATOMIC_ACQUIRE))
			continue;
		memcpy(&sl, p, sizeof(sl));
		if (sl.tag != obs_ep_tag(sl.key.service_id, sl.key.ep_hash))
			continue;                        /* being taken; next time */
		absorb(o, &sl.key, &sl.st, now);
	}
	while (bpf_map_get_next_key(fd, first ? NULL : &k, &next) == 0) {
		first = false;
		k = next;
		if (bpf_map_lookup_elem(fd, &k, &v) != 0)
			continue;
		absorb(o, &k, &v, now);
	}
	/* snapshots for time ranges */
	for (unsigned i = 0; i < OBS_EP_BUCKETS; i++) {
		for (struct obs_ep *e = o->ep_tab[i]; e; e = e->next) {
			struct snap *lf = e->nfine ? &e->fine[(e->nfine - 1) % SNAP_FINE] : NULL;
			struct snap *lc = e->ncoarse ? &e->coarse[(e->ncoarse - 1) % SNAP_COARSE] : NULL;

			if (!lf || now - lf->t_ms >= SNAP_FINE_MS)
				snap_take(e, &e->fine[e->nfine++ % SNAP_FINE], now);
			if (!lc || now - lc->t_ms >= SNAP_COARSE_MS)
				snap_take(e, &e->coarse[e->ncoarse++ % SNAP_COARSE], now);
		}
	}
	o->last_refresh_ms = now;
	inplace_note(o);
}

/*
 * The thread sleeps until the next refresh or discovery is due, or until
 * the kernel has a 64 KiB batch of events (rb_flags in observe.bpf.c), or
 * until observe_stop: it does not poll. Every wake-up of the agent may take
 * a core from the services it watches (on a 2-vCPU machine, the one nginx
 * or its client was about to run on), and reports refresh on demand, so
 * events need not be drained more often than the counts are read.
 */
static void *observe_thread(void *arg)
{
	struct observe *o = arg;
	int rb_fd = ring_buffer__epoll_fd(o->rb), epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };

	if (epfd >= 0) {
		ev.data.fd = rb_fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, rb_fd, &ev) != 0 ||
		    (ev.data.fd = o->wake_fd, epoll_ctl(epfd, EPOLL_CTL_ADD, o->wake_fd, &ev)) != 0) {
			log_warn("observe: epoll_ctl: %s; polling the ring buffer every 100 ms instead",
				 strerror(errno));
			close(epfd);
			epfd = -1;
		}
	}
	while (!o->stop) {
		uint64_t now = hp_now_ms(), due;
		int timeout = 100;

		if (epfd >= 0) {
			due = o->last_refresh_ms + REFRESH_MS;
			if (o->last_discover_ms + DISCOVER_MS < due)
				due = o->last_discover_ms + DISCOVER_MS;
			timeout = due > now ? (int)(due - now) : 0;
		}
		(void)epoll_wait(epfd >= 0 ? epfd : rb_fd, &ev, 1, timeout);
		if (o->stop)
			break;
		pthread_mutex_lock(&o->lock);
		ring_buffer__consume(o->rb);
		now = hp_now_ms();
		if (now - o->last_refresh_ms >= REFRESH_MS)
			refresh(o);
		pthread_mutex_unlock(&o->lock);
		if (now - o->last_discover_ms >= DISCOVER_MS) {
			o->last_discover_ms = now;
			discover_run(o);
		}
	}
	if (epfd >= 0)
		close(epfd);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int probe_bpf(char *why, size_t whylen)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 4, 1, NULL);

	if (fd < 0) {
		int err = -errno;

		snprintf(why, whylen, "cannot use BPF: %s%s", strerror(-err),
			 err == -EPERM ? " (needs root, or CAP_BPF and CAP_PERFMON)" : "");
		return err;
	}
	close(fd);
	if (access("/sys/kernel/tracing/events/syscalls", F_OK) != 0 &&
	    access("/sys/kernel/debug/tracing/events/syscalls", F_OK) != 0) {
		if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) != 0 ||
		    access("/sys/kernel/tracing/events/syscalls", F_OK) != 0) {
			snprintf(why, whylen, "no syscall tracepoints: tracefs is not mounted "
				 "and cannot be (%s)", strerror(errno));
			return -ENOENT;
		}
	}
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[HP_PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A pinned map reused from an earlier run keeps its entries: empty it. */
static void map_clear(struct bpf_map *m)
{
	int fd = bpf_map__fd(m);
	char key[64], next[64];

	if (bpf_map__key_size(m) > sizeof(key))
		return;
	while (bpf_map_get_next_key(fd, NULL, next) == 0) {
		memcpy(key, next, sizeof(key));
		if (bpf_map_delete_elem(fd, key) != 0)
			break;
	}
}

/* The maps observe.bpf.o pins by name under the pin directory. */
static const char *const obs_pinned[] = {
	"obs_watched", "obs_endpoints", "obs_ep_table", "obs_drops",
};

/* Remove pins that an earlier run left (it did not stop cleanly) and that
 * this build cannot reuse: a map whose layout changed between versions
 * makes libbpf refuse the whole object. Returns how many were removed. */
static int unpin_stale(const char *dir)
{
	char path[HP_PATH_MAX + 32];
	int n = 0;

	for (size_t i = 0; i < sizeof(obs_pinned) / sizeof(obs_pinned[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, obs_pinned[i]);
		if (unlink(path) == 0)
			n++;
	}
	return n;
}

/* Open and load observe.bpf.o with one of its two read programs and one of
 * its two send programs. */
static int observe_load(struct observe *o, const struct hp_config *cfg,
			const struct bpf_object_open_opts *opts)
{
	int err;

	o->skel = observe_bpf__open_opts(opts);
	if (!o->skel)
		return -errno;
	o->skel->rodata->slow_ns = cfg->observe_slow_threshold_ms * 1000000ULL;
	o->skel->rodata->ev_per_sec = cfg->observe_events_per_sec;
#if defined(__x86_64__)
	o->skel->rodata->ram_span = ram_top();
	o->skel->rodata->user_levels = paging_levels();
	/* With INVLPGB, the kernel flushes a process's TLB entries by
	 * broadcast and its batched unmaps (reclaim, migration) leave the
	 * address space's TLB generation as it was: walks are not
	 * remembered there (observe.bpf.c, obs_xlat). */
	o->skel->rodata->xlat_on = !cpu_flag("invlpgb");
#endif
	/* 0 = socket storage only: a one-slot table the programs never use */
	o->skel->rodata->conn_slots = cfg->observe_conn_slots;
	bpf_map__set_max_entries(o->skel->maps.obs_slots,
				 cfg->observe_conn_slots ? cfg->observe_conn_slots : 1);
	bpf_map__set_max_entries(o->skel->maps.obs_tokens, (__u32)o->ncpus);
	bpf_program__set_autoload(o->send_in_tcp ? o->skel->progs.hp_obs_send :
						   o->skel->progs.hp_obs_sendmsg, false);
	bpf_program__set_autoload(o->recv_in_skb ? o->skel->progs.hp_obs_recv :
						   o->skel->progs.hp_obs_rx, false);
	err = observe_bpf__load(o->skel);
	if (err) {
		observe_bpf__destroy(o->skel);
		o->skel = NULL;
	}
	return err;
}

struct observe *observe_start(const struct hp_config *cfg, const char *pin_path, char *why,
			      size_t whylen)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	const char *send_at, *recv_at;
	struct observe *o;
	int err;

	o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	o->start_ms = hp_now_ms();
	o->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (o->wake_fd < 0) {
		snprintf(why, whylen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (probe_bpf(why, whylen) != 0)
		goto fail;
	o->ncpus = libbpf_num_possible_cpus();
	if (o->ncpus <= 0) {
		snprintf(why, whylen, "cannot count possible CPUs");
		goto fail;
	}
	snprintf(o->pin_path, sizeof(o->pin_path), "%s",
		 pin_path && pin_path[0] ? pin_path : OBS_DEFAULT_PIN);
	err = mkdir_p(o->pin_path);
	if (err) {
		snprintf(why, whylen, "cannot create pin directory %s: %s", o->pin_path,
			 strerror(-err));
		goto fail;
	}
	opts.pin_root_path = o->pin_path;
	/* Sends are seen inside tcp_sendmsg_locked() where the kernel has
	 * that tracepoint (6.16 on): the message's iovecs are kernel memory
	 * there. Older kernels, or one that refuses that program, take
	 * sock_send_length and the saved registers. */
	o->send_in_tcp = cfg->observe_send_hook == HP_SEND_HOOK_AUTO &&
			 libbpf_find_vmlinux_btf_id("tcp_sendmsg_locked", BPF_TRACE_RAW_TP) > 0;
	send_at = o->send_in_tcp ? "tcp:tcp_sendmsg_locked" :
		  cfg->observe_send_hook == HP_SEND_HOOK_SOCKET ?
		  "sock:sock_send_length ([bpf] observe_send_hook = socket)" :
		  "sock:sock_send_length (this kernel has no tcp:tcp_sendmsg_locked)";
	/* Reads are seen in the socket buffer where the kernel lets a
	 * tracing program read one; else at sock_recv_length. */
	o->recv_in_skb = cfg->observe_recv_hook == HP_SEND_HOOK_AUTO;
	recv_at = o->recv_in_skb ? "skb:skb_copy_datagram_iovec" :
		  "sock:sock_recv_length ([bpf] observe_recv_hook = socket)";
	err = observe_load(o, cfg, &opts);
	if (err == -EINVAL && unpin_stale(o->pin_path)) {
		log_warn("observe: removed pinned maps under %s that an earlier version left "
			 "(their layout differs)", o->pin_path);
		err = observe_load(o, cfg, &opts);
	}
	/* A kernel that refuses a program of the newer hooks gets the socket
	 * tracepoints instead: for reads first, then for sends. */
	while (err && err != -EPERM && (o->recv_in_skb || o->send_in_tcp)) {
		bool reads = o->recv_in_skb;

		log_warn("observe: the kernel refused the %s program (%s); %s at %s",
			 reads ? "skb:skb_copy_datagram_iovec" : "tcp:tcp_sendmsg_locked",
			 strerror(-err), reads ? "reads" : "sends",
			 reads ? "sock:sock_recv_length" : "sock:sock_send_length");
		if (reads) {
			o->recv_in_skb = false;
			recv_at = "sock:sock_recv_length (skb:skb_copy_datagram_iovec refused)";
		} else {
			o->send_in_tcp = false;
			send_at = "sock:sock_send_length (tcp:tcp_sendmsg_locked refused)";
		}
		err = observe_load(o, cfg, &opts);
	}
	if (err) {
		snprintf(why, whylen, "kernel refused to load observe: %s%s", strerror(-err),
			 err == -EPERM ? " (needs CAP_BPF/CAP_SYS_ADMIN)" : "");
		goto fail;
	}
	o->pinned = true;
	map_clear(o->skel->maps.obs_watched);
	map_clear(o->skel->maps.obs_endpoints);
	o->ep_table = bpf_array_mmap(o->skel->maps.obs_ep_table, &o->ep_table_len, why, whylen);
	if (!o->ep_table)
		goto fail;
	memset(o->ep_table, 0, o->ep_table_len);   /* pinned by an earlier run */
	{
		struct obs_drops *zero = calloc((size_t)o->ncpus, sizeof(*zero));
		__u32 key = 0;

		if (zero) {
			if (bpf_map_update_elem(bpf_map__fd(o->skel->maps.obs_drops), &key, zero,
						BPF_ANY) != 0)
				log_debug("observe: cannot reset obs_drops: %s", strerror(errno));
			free(zero);
		}
	}
	err = observe_bpf__attach(o->skel);
	if (err) {
		snprintf(why, whylen, "cannot attach the socket tracepoints: %s", strerror(-err));
		goto fail;
	}
	log_info("observe: reads at %s, sends at %s", recv_at, send_at);
	o->rb = ring_buffer__new(bpf_map__fd(o->skel->maps.obs_events), on_event, o, NULL);
	if (!o->rb) {
		snprintf(why, whylen, "cannot open the observe ring buffer: %s", strerror(errno));
		goto fail;
	}
	o->local_callers = cfg->observe_local_callers;
	o->self = (int)getpid();
	o->discover = cfg->observe_discover;
	services_from_config(o, cfg);
	watched_sync(o);
	discover_run(o);
	o->last_discover_ms = hp_now_ms();
	err = pthread_create(&o->thread, NULL, observe_thread, o);
	if (err) {
		snprintf(why, whylen, "cannot start the observe thread: %s", strerror(err));
		goto fail;
	}
	o->thread_started = true;
	return o;
fail:
	observe_stop(o);
	return NULL;
}

void observe_stop(struct observe *o)
{
	if (!o)
		return;
	if (o->thread_started) {
		uint64_t one = 1;

		o->stop = true;
		if (write(o->wake_fd, &one, sizeof(one)) != sizeof(one))
			log_debug("observe: cannot wake the thread: %s", strerror(errno));
		pthread_join(o->thread, NULL);
	}
	if (o->wake_fd >= 0)
		close(o->wake_fd);
	ring_buffer__free(o->rb);
	if (o->ep_table)
		munmap(o->ep_table, o->ep_table_len);
	if (o->skel) {
		if (o->pinned) {
			bpf_map__unpin(o->skel->maps.obs_watched, NULL);
			bpf_map__unpin(o->skel->maps.obs_endpoints, NULL);
			bpf_map__unpin(o->skel->maps.obs_ep_table, NULL);
			bpf_map__unpin(o->skel->maps.obs_drops, NULL);
		}
		observe_bpf__destroy(o->skel);
	}
	ep_free_all(o);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

/* ---- reports ------------------------------------------------------------------ */

/* What one endpoint did over a range. */
struct win {
	struct hist h;
	uint64_t errors, rows, ev, since_ms;
	bool exact;
	uint64_t max_us;
};

static const struct snap *snap_for(const struct obs_ep *e, uint64_t from_ms)
{
	const struct snap *best = NULL;

	/* newest snapshot taken at or before from_ms, fine ones first */
	for (uint64_t i = 0; i < SNAP_FINE && i < e->nfine; i++) {
		const struct snap *s = &e->fine[(e->nfine - 1 - i) % SNAP_FINE];

		if (s->t_ms <= from_ms)
			return s;
	}
	for (uint64_t i = 0; i < SNAP_COARSE && i < e->ncoarse; i++) {
		const struct snap *s = &e->coarse[(e->ncoarse - 1 - i) % SNAP_COARSE];

		if (s->t_ms <= from_ms) {
			best = s;
			break;
		}
	}
	return best;
}

static void ep_window(const struct observe *o, const struct obs_ep *e, uint64_t range_ms,
		      uint64_t now, struct win *w)
{
	const struct snap *s = NULL;

	memset(w, 0, sizeof(*w));
	w->h = e->acc;
	w->errors = e->errors;
	w->rows = e->rows;
	w->ev = e->ev;
	w->since_ms = o->start_ms;
	w->max_us = e->max_us;
	if (range_ms && now > range_ms)
		s = snap_for(e, now - range_ms);
	if (s) {
		for (unsigned i = 0; i < HIST_BUCKETS; i++)
			w->h.buckets[i] -= s->hist[i];
		w->h.count -= s->count;
		w->h.sum -= s->sum_us;
		w->errors -= s->errors;
		w->rows -= s->rows;
		w->ev -= s->ev;
		w->since_ms = s->t_ms;
	}
	w->exact = w->h.count > 0 && w->ev == w->h.count && w->ev <= OBS_SAMPLES &&
		   w->ev <= e->ev;
	if (w->exact) {
		w->max_us = 0;
		for (uint64_t i = 0; i < w->ev; i++) {
			uint32_t v = e->samples[(e->ev - 1 - i) % OBS_SAMPLES];

			if (v > w->max_us)
				w->max_us = v;
		}
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* A group of endpoints reported as one (same service and key). */
struct group {
	uint32_t service_id;
	const struct obs_ep *first;
	struct win w;
	uint32_t *vals;               /* exact samples when w.exact */
	size_t nvals;
	uint64_t max_us, first_ns, last_ns;
	unsigned members;
};

static double q_ms(const struct group *g, double q)
{
	if (g->w.exact && g->nvals) {
		size_t idx = (size_t)ceil(q * (double)g->nvals);

		if (idx < 1)
			idx = 1;
		if (idx > g->nvals)
			idx = g->nvals;
		return g->vals[idx - 1] / 1000.0;
	}
	return hist_quantile(&g->w.h, q) / 1000.0;
}

static void group_add(struct group *g, const struct observe *o, const struct obs_ep *e,
		      uint64_t range_ms, uint64_t now)
{
	struct win w;

	ep_window(o, e, range_ms, now, &w);
	if (!g->members) {
		g->service_id = e->service_id;
		g->first = e;
		g->w = w;
		g->w.exact = true;
		g->first_ns = e->first_ns;
	} else {
		hist_merge(&g->w.h, &w.h);
		g->w.errors += w.errors;
		g->w.rows += w.rows;
		g->w.ev += w.ev;
		if (w.since_ms < g->w.since_ms)
			g->w.since_ms = w.since_ms;
		if (e->first_ns && (!g->first_ns || e->first_ns < g->first_ns))
			g->first_ns = e->first_ns;
	}
	if (w.max_us > g->max_us)
		g->max_us = w.max_us;
	if (e->last_ns > g->last_ns)
		g->last_ns = e->last_ns;
	g->members++;
	if (!w.h.count)
		return;
	if (!w.exact) {
		g->w.exact = false;
		return;
	}
	if (g->w.exact) {
		uint32_t *nv = realloc(g->vals, (g->nvals + w.ev) * sizeof(*nv));

		if (!nv) {
			g->w.exact = false;
			return;
		}
		g->vals = nv;
		for (uint64_t i = 0; i < w.ev; i++)
			g->vals[g->nvals++] = e->samples[(e->ev - 1 - i) % OBS_SAMPLES];
	}
}

static void groups_free(struct group *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(g[i].vals);
	free(g);
}

/* Group the endpoints passing `want` by (service, key). Lock held. */
static struct group *groups_build(const struct observe *o, bool (*want)(const struct observe *,
									  const struct obs_ep *,
									  const void *),
				  const void *arg, bool by_side_only, uint64_t range_ms,
				  size_t *out_n)
{
	struct group *g = calloc(o->nep ? o->nep : 1, sizeof(*g));
	uint64_t now = hp_now_ms();
	size_t n = 0;

	*out_n = 0;
	if (!g)
		return NULL;
	for (unsigned i = 0; i < OBS_EP_BUCKETS; i++) {
		for (const struct obs_ep *e = o->ep_tab[i]; e; e = e->next) {
			size_t j;

			if (!want(o, e, arg) || !e->acc.count)
				continue;
			for (j = 0; j < n; j++) {
				const struct obs_ep *f = g[j].first;
				bool same = by_side_only ?
					o->svc[f->service_id].dir == o->svc[e->service_id].dir :
					f->service_id == e->service_id;

				if (same && !strcmp(f->key, e->key))
					break;
			}
			if (j == n)
				n++;
			group_add(&g[j], o, e, range_ms, now);
		}
	}
	for (size_t j = 0; j < n; j++)
		if (g[j].w.exact && g[j].nvals)
			qsort(g[j].vals, g[j].nvals, sizeof(*g[j].vals), cmp_u32);
		else
			g[j].w.exact = false;
	*out_n = n;
	return g;
}

static void report_prepare(struct observe *o)
{
	refresh(o);
}

static double round3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

static uint64_t mono_ns_to_wall_ms(uint64_t ns)
{
	uint64_t now_mono = hp_now_ms(), wall = hp_wall_ms(), ms = ns / 1000000u;

	return ms > now_mono ? wall : wall - (now_mono - ms);
}

static int set_new(json_t *obj, const char *k, json_t *v)
{
	return json_object_set_new(obj, k, v ? v : json_null());
}

static void stats_into(json_t *j, const struct group *g, double secs)
{
	uint64_t c = g->w.h.count;

	set_new(j, "requests", json_integer((json_int_t)c));
	set_new(j, "request_rate", json_real(round3(secs > 0 ? (double)c / secs : 0.0)));
	set_new(j, "errors", json_integer((json_int_t)g->w.errors));
	set_new(j, "error_rate", json_real(c ? round3((double)g->w.errors / (double)c) : 0.0));
	set_new(j, "mean_ms", json_real(c ? round3((double)g->w.h.sum / (double)c / 1000.0) : 0.0));
	set_new(j, "p50_ms", json_real(round3(q_ms(g, 0.50))));
	set_new(j, "p95_ms", json_real(round3(q_ms(g, 0.95))));
	set_new(j, "p99_ms", json_real(round3(q_ms(g, 0.99))));
	set_new(j, "max_ms", json_real(round3((double)g->max_us / 1000.0)));
	set_new(j, "quantiles", json_string(g->w.exact ? "exact" : "histogram"));
}

static const char *dir_name(int dir)
{
	return dir == OBS_DIR_IN ? "inbound" : "outbound";
}

json_t *observe_services_json(struct observe *o)
{
	json_t *root = json_object(), *arr = json_array();

	if (!root || !arr) {
		json_decref(root);
		json_decref(arr);
		return NULL;
	}
	pthread_mutex_lock(&o->lock);
	report_prepare(o);
	for (unsigned i = 0; i < o->nsvc; i++) {
		const struct obs_svc *s = &o->svc[i];
		json_t *j = json_object(), *pids = json_array();
		int observed = 0;
		uint64_t reqs = 0;

		if (!j || !pids) {
			json_decref(j);
			json_decref(pids);
			continue;
		}
		for (unsigned b = 0; b < OBS_EP_BUCKETS; b++)
			for (const struct obs_ep *e = o->ep_tab[b]; e; e = e->next)
				if (e->service_id == i) {
					reqs += e->acc.count;
					if (e->protocol && e->protocol != OBS_PROTO_NONE)
						observed = e->protocol;
				}
		for (unsigned p = 0; p < s->npids; p++)
			json_array_append_new(pids, json_integer(s->pids[p]));
		set_new(j, "name", json_string(s->name));
		set_new(j, "port", json_integer(s->port));
		set_new(j, "direction", json_string(dir_name(s->dir)));
		set_new(j, "protocol", json_string(wire_proto_name(s->protocol)));
		set_new(j, "protocol_from", json_string(s->proto_from));
		set_new(j, "observed_protocol", observed ? json_string(wire_proto_name(observed)) : json_null());
		set_new(j, "source", json_string(s->source));
		set_new(j, "watched", json_boolean(s->watched));
		set_new(j, "listening", json_boolean(s->dir == OBS_DIR_IN && s->npids > 0));
		set_new(j, "process", s->comm[0] ? json_string(s->comm) : json_null());
		set_new(j, "pids", pids);
		set_new(j, "only_pid", s->only_pid ? json_integer(s->only_pid) : json_null());
		set_new(j, "only_cgroup", s->only_cgroup[0] ? json_string(s->only_cgroup) : json_null());
		set_new(j, "requests", json_integer((json_int_t)reqs));
		json_array_append_new(arr, j);
	}
	pthread_mutex_unlock(&o->lock);
	set_new(root, "services", arr);
	/* null: reads are seen at sock_recv_length, in the user's buffer */
	set_new(root, "socket_buffer_reads", !o->recv_in_skb ? json_null() :
		json_string(inplace_name(__atomic_load_n(&o->skel->bss->frag.state, __ATOMIC_RELAXED))));
	set_new(root, "user_memory_reads", !o->skel->rodata->user_levels ? json_null() :
		json_string(inplace_name(__atomic_load_n(&o->skel->bss->user.state, __ATOMIC_RELAXED))));
	return root;
}

struct svc_filter {
	const char *name;
	uint32_t sid;
};

static bool want_service(const struct observe *o, const struct obs_ep *e, const void *arg)
{
	(void)o;
	return e->service_id == ((const struct svc_filter *)arg)->sid;
}

static void drops_read(struct observe *o, struct obs_drops *sum)
{
	struct obs_drops *vals = calloc((size_t)o->ncpus, sizeof(*vals));
	__u32 key = 0;

	memset(sum, 0, sizeof(*sum));
	if (!vals)
		return;
	if (bpf_map_lookup_elem(bpf_map__fd(o->skel->maps.obs_drops), &key, vals) == 0) {
		for (int i = 0; i < o->ncpus; i++) {
			sum->ev_fast_dropped += vals[i].ev_fast_dropped;
			sum->ev_slow_dropped += vals[i].ev_slow_dropped;
			sum->ringbuf_full += vals[i].ringbuf_full;
			sum->fifo_full += vals[i].fifo_full;
			sum->text_dropped += vals[i].text_dropped;
			sum->unmatched += vals[i].unmatched;
			sum->ep_evicted += vals[i].ep_evicted;
		}
	}
	/* the fast requests' drops not yet moved to obs_drops */
	for (__u32 cpu = 0; cpu < (__u32)o->ncpus; cpu++) {
		struct obs_bucket b;

		if (bpf_map_lookup_elem(bpf_map__fd(o->skel->maps.obs_tokens), &cpu, &b) == 0)
			sum->ev_fast_dropped += b.fast_dropped;
	}
	free(vals);
}

static json_t *drops_json(struct observe *o)
{
	struct obs_drops d;
	json_t *j = json_object();

	if (!j)
		return NULL;
	drops_read(o, &d);
	set_new(j, "events_over_budget_fast", json_integer((json_int_t)d.ev_fast_dropped));
	set_new(j, "events_over_budget_slow", json_integer((json_int_t)d.ev_slow_dropped));
	set_new(j, "ring_buffer_full", json_integer((json_int_t)d.ringbuf_full));
	set_new(j, "fifo_full", json_integer((json_int_t)d.fifo_full));
	set_new(j, "text_events_lost", json_integer((json_int_t)d.text_dropped));
	set_new(j, "unmatched_responses", json_integer((json_int_t)d.unmatched));
	set_new(j, "endpoints_evicted", json_integer((json_int_t)d.ep_evicted));
	set_new(j, "endpoints_untracked", json_integer((json_int_t)o->untracked));
	return j;
}

json_t *observe_metrics_json(struct observe *o, const char *service, uint64_t range_ms)
{
	json_t *root = json_object(), *arr = json_array();
	uint64_t now;

	if (!root || !arr) {
		json_decref(root);
		json_decref(arr);
		return NULL;
	}
	pthread_mutex_lock(&o->lock);
	report_prepare(o);
	now = hp_now_ms();
	for (unsigned i = 0; i < o->nsvc; i++) {
		const struct obs_svc *s = &o->svc[i];
		struct svc_filter f = { .name = service, .sid = i };
		struct group *g, total = { 0 };
		json_t *js, *eps;
		size_t n;
		double secs;

		if (service && service[0] && strcmp(service, s->name) != 0)
			continue;
		g = groups_build(o, want_service, &f, false, range_ms, &n);
		if (!g)
			continue;
		if (!n) {
			groups_free(g, n);
			continue;
		}
		js = json_object();
		eps = json_array();
		if (!js || !eps) {
			json_decref(js);
			json_decref(eps);
			groups_free(g, n);
			continue;
		}
		/* service totals: merge the groups (exact if all are) */
		total.w.exact = true;
		total.w.since_ms = now;
		for (size_t j = 0; j < n; j++) {
			hist_merge(&total.w.h, &g[j].w.h);
			total.w.errors += g[j].w.errors;
			if (g[j].max_us > total.max_us)
				total.max_us = g[j].max_us;
			if (g[j].w.since_ms < total.w.since_ms)
				total.w.since_ms = g[j].w.since_ms;
			if (!g[j].w.exact) {
				total.w.exact = false;
			} else if (total.w.exact) {
				uint32_t *nv = realloc(total.vals, (total.nvals + g[j].nvals) * sizeof(*nv));

				if (!nv) {
					total.w.exact = false;
				} else {
					total.vals = nv;
					memcpy(total.vals + total.nvals, g[j].vals, g[j].nvals * sizeof(*nv));
					total.nvals += g[j].nvals;
				}
			}
		}
		if (total.w.exact && total.nvals)
			qsort(total.vals, total.nvals, sizeof(*total.vals), cmp_u32);
		else
			total.w.exact = false;
		secs = (double)(now - total.w.since_ms) / 1000.0;
		set_new(js, "name", json_string(s->name));
		set_new(js, "port", json_integer(s->port));
		set_new(js, "direction", json_string(dir_name(s->dir)));
		set_new(js, "protocol", json_string(wire_proto_name(g[0].first->protocol ?
								   g[0].first->protocol : s->protocol)));
		set_new(js, "range_ms", json_integer((json_int_t)(now - total.w.since_ms)));
		stats_into(js, &total, secs);
		free(total.vals);
		for (size_t j = 0; j < n; j++) {
			json_t *je = json_object();
			double es = (double)(now - g[j].w.since_ms) / 1000.0;

			if (!je)
				continue;
			set_new(je, "endpoint", json_string(g[j].first->name));
			if (g[j].first->protocol == OBS_PROTO_POSTGRES)
				set_new(je, "fingerprint", json_string(g[j].first->key));
			stats_into(je, &g[j], es);
			json_array_append_new(eps, je);
		}
		set_new(js, "endpoints", eps);
		json_array_append_new(arr, js);
		groups_free(g, n);
	}
	set_new(root, "range_ms", json_integer((json_int_t)range_ms));
	set_new(root, "services", arr);
	set_new(root, "dropped", drops_json(o));
	pthread_mutex_unlock(&o->lock);
	return root;
}

static bool want_pg(const struct observe *o, const struct obs_ep *e, const void *arg)
{
	(void)o;
	(void)arg;
	return e->protocol == OBS_PROTO_POSTGRES;
}

static int cmp_total(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	return x->w.h.sum < y->w.h.sum ? 1 : x->w.h.sum > y->w.h.sum ? -1 : 0;
}

json_t *observe_queries_json(struct observe *o, unsigned limit)
{
	json_t *root = json_object(), *arr = json_array();
	struct group *g;
	size_t n;

	if (!root || !arr) {
		json_decref(root);
		json_decref(arr);
		return NULL;
	}
	pthread_mutex_lock(&o->lock);
	report_prepare(o);
	g = groups_build(o, want_pg, NULL, true, 0, &n);
	if (g) {
		qsort(g, n, sizeof(*g), cmp_total);
		for (size_t j = 0; j < n && (!limit || j < limit); j++) {
			const struct obs_ep *e = g[j].first;
			json_t *jq = json_object();
			uint64_t c = g[j].w.h.count;

			if (!jq)
				continue;
			set_new(jq, "fingerprint", json_string(strncmp(e->key, "fp:", 3) ? "" : e->key + 3));
			set_new(jq, "query", json_string(e->name));
			set_new(jq, "truncated", json_boolean(e->truncated));
			set_new(jq, "side", json_string(o->svc[e->service_id].dir == OBS_DIR_IN ?
							"server" : "client"));
			set_new(jq, "service", json_string(o->svc[e->service_id].name));
			set_new(jq, "calls", json_integer((json_int_t)c));
			set_new(jq, "errors", json_integer((json_int_t)g[j].w.errors));
			set_new(jq, "rows", json_integer((json_int_t)g[j].w.rows));
			set_new(jq, "total_ms", json_real(round3((double)g[j].w.h.sum / 1000.0)));
			set_new(jq, "mean_ms", json_real(c ? round3((double)g[j].w.h.sum / (double)c / 1000.0) : 0));
			set_new(jq, "p50_ms", json_real(round3(q_ms(&g[j], 0.50))));
			set_new(jq, "p95_ms", json_real(round3(q_ms(&g[j], 0.95))));
			set_new(jq, "p99_ms", json_real(round3(q_ms(&g[j], 0.99))));
			set_new(jq, "max_ms", json_real(round3((double)g[j].max_us / 1000.0)));
			set_new(jq, "quantiles", json_string(g[j].w.exact ? "exact" : "histogram"));
			set_new(jq, "first_seen_ms", json_integer((json_int_t)mono_ns_to_wall_ms(g[j].first_ns)));
			set_new(jq, "last_seen_ms", json_integer((json_int_t)mono_ns_to_wall_ms(g[j].last_ns)));
			json_array_append_new(arr, jq);
		}
		groups_free(g, n);
	}
	set_new(root, "queries", arr);
	set_new(root, "dropped", drops_json(o));
	pthread_mutex_unlock(&o->lock);
	return root;
}

/* Prometheus label value: backslash, quote and newline escaped. */
static int prom_label(struct buf *out, const char *s)
{
	for (; *s; s++) {
		int err;

		if (*s == '\\' || *s == '"')
			err = buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			err = buf_append_str(out, "\\n");
		else
			err = buf_append(out, s, 1);
		if (err)
			return err;
	}
	return 0;
}

static bool want_all(const struct observe *o, const struct obs_ep *e, const void *arg)
{
	(void)o;
	(void)arg;
	(void)e;
	return true;
}

#define PROM_BUCKETS 25                  /* le up to 2^24 µs (16.8 s), then +Inf */

static int prom_labels(struct buf *out, const struct observe *o, const struct group *g)
{
	const struct obs_svc *s = &o->svc[g->service_id];
	const struct obs_ep *e = g->first;
	int err;

	err = buf_append_str(out, "service=\"");
	if (!err)
		err = prom_label(out, s->name);
	if (!err)
		err = buf_printf(out, "\",direction=\"%s\",protocol=\"%s\",endpoint=\"",
				 dir_name(s->dir), wire_proto_name(e->protocol));
	if (!err)
		err = prom_label(out, e->protocol == OBS_PROTO_POSTGRES ? e->key : e->name);
	if (!err)
		err = buf_append_str(out, "\"");
	return err;
}

int observe_write_prometheus(struct observe *o, struct buf *out)
{
	struct group *g;
	struct obs_drops d;
	size_t n;
	int err = 0;

	pthread_mutex_lock(&o->lock);
	report_prepare(o);
	g = groups_build(o, want_all, NULL, false, 0, &n);
	if (!g) {
		pthread_mutex_unlock(&o->lock);
		return -ENOMEM;
	}
	err = buf_append_str(out,
		"# HELP hotpath_observe_request_duration_seconds Request latency seen by the kernel "
		"(inbound: server side, outbound: client side).\n"
		"# TYPE hotpath_observe_request_duration_seconds histogram\n");
	for (size_t j = 0; j < n && !err; j++) {
		uint64_t cum = 0;

		for (unsigned b = 0; b < PROM_BUCKETS && !err; b++) {
			cum += g[j].w.h.buckets[b];
			err = buf_append_str(out, "hotpath_observe_request_duration_seconds_bucket{");
			if (!err)
				err = prom_labels(out, o, &g[j]);
			if (!err)
				err = buf_printf(out, ",le=\"%g\"} %" PRIu64 "\n",
						 (double)hist_bucket_upper(b) / 1e6, cum);
		}
		if (!err)
			err = buf_append_str(out, "hotpath_observe_request_duration_seconds_bucket{");
		if (!err)
			err = prom_labels(out, o, &g[j]);
		if (!err)
			err = buf_printf(out, ",le=\"+Inf\"} %" PRIu64 "\n", g[j].w.h.count);
		if (!err)
			err = buf_append_str(out, "hotpath_observe_request_duration_seconds_sum{");
		if (!err)
			err = prom_labels(out, o, &g[j]);
		if (!err)
			err = buf_printf(out, "} %.6f\n", (double)g[j].w.h.sum / 1e6);
		if (!err)
			err = buf_append_str(out, "hotpath_observe_request_duration_seconds_count{");
		if (!err)
			err = prom_labels(out, o, &g[j]);
		if (!err)
			err = buf_printf(out, "} %" PRIu64 "\n", g[j].w.h.count);
	}
	if (!err)
		err = buf_append_str(out,
			"# HELP hotpath_observe_request_errors_total Requests answered with an error "
			"(HTTP 5xx, RESP error, PostgreSQL ErrorResponse).\n"
			"# TYPE hotpath_observe_request_errors_total counter\n");
	for (size_t j = 0; j < n && !err; j++) {
		err = buf_append_str(out, "hotpath_observe_request_errors_total{");
		if (!err)
			err = prom_labels(out, o, &g[j]);
		if (!err)
			err = buf_printf(out, "} %" PRIu64 "\n", g[j].w.errors);
	}
	groups_free(g, n);
	drops_read(o, &d);
	if (!err)
		err = buf_printf(out,
			"# HELP hotpath_observe_dropped_total What the kernel side did not report, by reason.\n"
			"# TYPE hotpath_observe_dropped_total counter\n"
			"hotpath_observe_dropped_total{reason=\"budget_fast\"} %llu\n"
			"hotpath_observe_dropped_total{reason=\"budget_slow\"} %llu\n"
			"hotpath_observe_dropped_total{reason=\"ringbuf_full\"} %llu\n"
			"hotpath_observe_dropped_total{reason=\"fifo_full\"} %llu\n"
			"hotpath_observe_dropped_total{reason=\"text_lost\"} %llu\n"
			"hotpath_observe_dropped_total{reason=\"unmatched_response\"} %llu\n",
			(unsigned long long)d.ev_fast_dropped, (unsigned long long)d.ev_slow_dropped,
			(unsigned long long)d.ringbuf_full, (unsigned long long)d.fifo_full,
			(unsigned long long)d.text_dropped, (unsigned long long)d.unmatched);
	pthread_mutex_unlock(&o->lock);
	return err;
}
