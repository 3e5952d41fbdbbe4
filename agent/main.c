/*
 * main.c - hotpathd: start every subsystem in order, run the control loop,
 * stop them in reverse.
 *
 * Start order: log -> config -> kernel feature probes -> L1 -> BPF
 * programs -> RESP front -> REST API -> time series -> READY=1. The main
 * thread then only runs control work on a signalfd + timerfd epoll loop:
 * SIGHUP reloads the config (a bad file keeps the old one and says why;
 * keys that need a restart are named), SIGTERM/SIGINT drain and exit, the
 * timer drives L1 active expiry, the per-second time series, memory
 * pressure checks and the systemd watchdog. Request traffic never touches
 * this thread. Shutdown frees every subsystem (valgrind-clean exit).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include "hotpath/api.h"
#include "hotpath/bpf_accept.h"
#include "hotpath/config.h"
#include "hotpath/daemon.h"
#include "hotpath/features.h"
#include "hotpath/l0.h"
#include "hotpath/l1.h"
#include "hotpath/log.h"
#include "hotpath/observe.h"
#include "hotpath/pooler.h"
#include "hotpath/pgadvise.h"
#include "hotpath/pressure.h"
#include "hotpath/profile.h"
#include "hotpath/proxy.h"
#include "hotpath/server.h"
#include "hotpath/tier.h"
#include "hotpath/timeseries.h"
#include "hotpath/version.h"

#define DEFAULT_CONFIG "/etc/hotpath/hotpath.ini"
#define TIMESERIES_SECONDS 3600
#define ERRBUF 8192

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hotpathd [-c FILE] [-t] [-v] [--config-ini] [--config-doc] [--config-man]\n"
		"                [--version]\n"
		"  -c FILE        configuration file (default %s if it exists, else built-in defaults)\n"
		"  -t             check the configuration and exit (0 if valid)\n"
		"  -v             verbose: log at debug level (overrides core.log_level)\n"
		"  --config-ini   print the fully commented default configuration\n"
		"  --config-doc   print the configuration reference (markdown)\n"
		"  --config-man   print the hotpath.ini(5) man page (roff)\n"
		"  --version      print the version\n",
		DEFAULT_CONFIG);
}

static int load_config(struct hp_config *c, const char *path, bool explicit_path)
{
	static char err[ERRBUF];
	int rc;

	config_defaults(c);
	if (!explicit_path && access(path, F_OK) != 0)
		return 0; /* no file: built-in defaults */
	err[0] = '\0';
	rc = config_load_file(c, path, err, sizeof(err));
	if (rc == -EINVAL) {
		fprintf(stderr, "%s", err);
		if (err[0] && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
	} else if (rc) {
		fprintf(stderr, "hotpathd: cannot read %s: %s\n", path, strerror(-rc));
	}
	return rc;
}

/*
 * L1 splits its memory evenly over its shards and an entry lives in one
 * shard, so a shard's share must hold the largest value the RESP front
 * accepts. With a small l1_max_memory, use fewer shards rather than
 * refuse values the config says are fine.
 */
static unsigned l1_shards_for(const struct hp_config *c)
{
	uint64_t need = c->resp_max_value_size + c->resp_max_key_len + 1024;
	unsigned shards = c->l1_shards ? c->l1_shards : 64;

	while (c->l1_max_memory && shards > 1 && c->l1_max_memory / shards < need)
		shards /= 2;
	if (shards != c->l1_shards)
		log_info("cache: using %u L1 shards instead of %u so that one shard's share "
			 "of l1_max_memory holds a value of resp.max_value_size", shards,
			 c->l1_shards);
	return shards;
}

static struct l1 *start_l1(const struct hp_config *c)
{
	struct l1_options o = {
		.max_memory = c->l1_max_memory,
		.policy = c->eviction == HP_EVICT_LRU ? L1_POLICY_LRU : L1_POLICY_S3FIFO,
		.shards = l1_shards_for(c),
	};

	return l1_new(&o);
}

static int apply_partitions(struct l1 *l, const struct hp_config *c)
{
	struct l1_partition parts[HP_MAX_PARTITIONS];

	for (unsigned i = 0; i < c->n_partitions; i++) {
		memset(&parts[i], 0, sizeof(parts[i]));
		snprintf(parts[i].name, sizeof(parts[i].name), "%s", c->partitions[i].name);
		snprintf(parts[i].prefix, sizeof(parts[i].prefix), "%s", c->partitions[i].prefix);
		parts[i].max_memory = c->partitions[i].max_memory;
		parts[i].default_ttl_ms = c->partitions[i].default_ttl_ms;
		parts[i].priority = c->partitions[i].priority;
	}
	return l1_set_partitions(l, parts, c->n_partitions);
}

struct daemon_state {
	struct hp_daemon d;
	struct api *api;
	const char *config_path;
	bool explicit_path;
	bool verbose;
	unsigned pressure_permille;
};

static void reload(struct daemon_state *st)
{
	struct hp_daemon *d = &st->d;
	struct hp_config *nc = malloc(sizeof(*nc)), *old;
	char restart[1024];
	int rc;

	sd_notify(0, "RELOADING=1");
	if (!nc) {
		log_error("reload: out of memory, keeping the current configuration");
		goto out;
	}
	if (load_config(nc, st->config_path, st->explicit_path) != 0) {
		log_error("reload: %s is invalid (errors above), keeping the current configuration",
			  st->config_path);
		d->reload_failures++;
		free(nc);
		goto out;
	}
	if (config_diff_restart(d->cfg, nc, restart, sizeof(restart)) > 0)
		log_warn("reload: these changes take effect only after a restart: %s", restart);
	/* Keys that need a restart keep their running values. */
	{
		struct hp_config *fresh = nc;

		nc = malloc(sizeof(*nc));
		if (!nc) {
			free(fresh);
			log_error("reload: out of memory, keeping the current configuration");
			goto out;
		}
		*nc = *d->cfg;
		config_apply_reloadable(nc, fresh);
		free(fresh);
	}
	if (st->api && api_reload(st->api, nc) != 0) {
		log_error("reload: tokens file rejected, keeping the current configuration");
		d->reload_failures++;
		free(nc);
		goto out;
	}
	/* Policies set through POST /cache/policies stay until the file's
	 * [partition.*] sections themselves change. */
	if (nc->n_partitions != d->cfg->n_partitions ||
	    memcmp(nc->partitions, d->cfg->partitions,
		   nc->n_partitions * sizeof(nc->partitions[0])) != 0) {
		rc = apply_partitions(d->l1, nc);
		if (rc) {
			log_error("reload: partitions rejected (%s), keeping the current "
				  "configuration", strerror(-rc));
			d->reload_failures++;
			free(nc);
			goto out;
		}
		log_info("reload: L1 partitions replaced by the file's [partition.*] sections");
	}
	if (tier_strategies_changed(d->cfg, nc)) {
		char serr[256];

		if (tier_reload_strategies(d, nc, serr, sizeof(serr)) != 0) {
			log_error("reload: strategies/loaders rejected (%s), keeping the current "
				  "configuration", serr);
			d->reload_failures++;
			free(nc);
			goto out;
		}
		log_info("reload: strategies and loaders replaced by the file's [strategy.*] and "
			 "[loader.*] sections");
	}
	if (!st->verbose)
		log_set_level(nc->log_level);
	l1_set_max_memory(d->l1, nc->l1_max_memory);
	l1_set_policy(d->l1, nc->eviction == HP_EVICT_LRU ? L1_POLICY_LRU : L1_POLICY_S3FIFO);
	resp_server_reload(d->resp, nc);
	pooler_reload(d->pooler, nc);
	pgadvise_reload(d->advisor, nc);
	if (d->l0 && nc->l0_enabled != d->cfg->l0_enabled) {
		char why[200];

		if (l0_set_enabled(d->l0, nc->l0_enabled, why, sizeof(why)) != 0)
			log_warn("reload: L0 stays off: %s", why);
		else
			log_info("reload: L0 %s", nc->l0_enabled ? "switched on" :
				 "switched off and emptied");
	}
	if (d->l0 && nc->l0_remote != d->cfg->l0_remote) {
		char why[200];

		if (l0_set_remote(d->l0, nc->l0_remote, why, sizeof(why)) != 0)
			log_warn("reload: L0 leaves remote clients to the daemon: %s", why);
		else
			log_info("reload: L0 %s", nc->l0_remote ?
				 "answers remote clients through the relay socket" :
				 "leaves remote clients to the daemon");
	}
	pthread_rwlock_wrlock(&d->cfg_lock);
	old = d->cfg;
	d->cfg = nc;
	pthread_rwlock_unlock(&d->cfg_lock);
	free(old);
	d->reloads++;
	log_info("reload: configuration reloaded from %s", st->config_path);
out:
	sd_notify(0, "READY=1");
}

static void pressure_tick(struct daemon_state *st)
{
	struct pressure_sample s;
	unsigned next;

	if (!st->d.cfg->memory_pressure || pressure_read(&s) != 0)
		next = 1000;
	else
		next = pressure_next_permille(st->pressure_permille, &s);
	if (next != st->pressure_permille) {
		if (next < st->pressure_permille)
			log_warn("memory pressure: shrinking L1 to %u%% of l1_max_memory", next / 10);
		else
			log_info("memory pressure easing: L1 budget back to %u%%", next / 10);
		st->pressure_permille = next;
		l1_set_pressure_limit(st->d.l1, next);
	}
}

static int run_loop(struct daemon_state *st)
{
	struct hp_daemon *d = &st->d;
	struct epoll_event ev, evs[4];
	struct itimerspec its = { 0 };
	uint64_t wd_usec = 0, last_sec = hp_now_ms(), last_wd = 0;
	int epfd = -1, sfd = -1, tfd = -1, rc = 0;
	unsigned hz = d->cfg->active_expire_hz ? d->cfg->active_expire_hz : 10;
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || epfd < 0) {
		log_error("control loop: %s", strerror(errno));
		rc = -errno;
		goto out;
	}
	its.it_interval.tv_nsec = 1000000000L / hz;
	its.it_value = its.it_interval;
	timerfd_settime(tfd, 0, &its, NULL);
	ev.events = EPOLLIN;
	ev.data.fd = sfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
	if (sd_watchdog_enabled(0, &wd_usec) <= 0)
		wd_usec = 0;

	for (;;) {
		int n = epoll_wait(epfd, evs, HP_ARRAY_SIZE(evs), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("control loop: epoll_wait: %s", strerror(errno));
			rc = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == sfd) {
				struct signalfd_siginfo si;

				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) {
						log_info("SIGHUP: reloading %s", st->config_path);
						reload(st);
					} else {
						log_info("%s: draining and exiting",
							 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
						goto out;
					}
				}
			} else {
				uint64_t ticks, now;

				if (read(tfd, &ticks, sizeof(ticks)) < 0)
					continue;
				l1_active_expire(d->l1, 200);
				now = hp_now_ms();
				if (now - last_sec >= 1000) {
					last_sec = now;
					if (d->ts)
						timeseries_tick(d->ts, d);
					pressure_tick(st);
					if (d->l0)
						l0_refresh(d->l0);
				}
				if (wd_usec && (now - last_wd) * 1000 >= wd_usec / 2) {
					last_wd = now;
					sd_notify(0, "WATCHDOG=1");
				}
			}
		}
	}
out:
	if (epfd >= 0)
		close(epfd);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config-ini", no_argument, NULL, 'I' },
		{ "config-doc", no_argument, NULL, 'D' },
		{ "config-man", no_argument, NULL, 'M' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_state st = { .config_path = DEFAULT_CONFIG, .pressure_permille = 1000 };
	struct hp_daemon *d = &st.d;
	bool test_only = false;
	char why[256];
	sigset_t mask;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "c:tvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': st.config_path = optarg; st.explicit_path = true; break;
		case 't': test_only = true; break;
		case 'v': st.verbose = true; break;
		case 'I': {
			struct hp_config *c = calloc(1, sizeof(*c));

			if (!c)
				return 1;
			config_defaults(c);
			config_write_ini(c, stdout);
			free(c);
			return 0;
		}
		case 'D': config_write_markdown(stdout); return 0;
		case 'M': config_write_man(stdout); return 0;
		case 'V': printf("hotpathd %s\n", HOTPATH_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	d->version = HOTPATH_VERSION;
	d->cfg = calloc(1, sizeof(*d->cfg));
	if (!d->cfg)
		return 1;
	pthread_rwlock_init(&d->cfg_lock, NULL);
	if (load_config(d->cfg, st.config_path, st.explicit_path) != 0) {
		if (test_only)
			fprintf(stderr, "hotpathd: configuration file %s test failed\n", st.config_path);
		goto out_cfg;
	}
	if (test_only) {
		if (st.verbose)
			config_write_ini(d->cfg, stdout);
		printf("hotpathd: configuration file %s test is successful\n",
		       d->cfg->source[0] ? d->cfg->source : "(built-in defaults)");
		rc = 0;
		goto out_cfg;
	}

	log_init(st.verbose ? HP_LOG_DEBUG : (enum hp_log_level)d->cfg->log_level, true);
	log_info("hotpathd %s starting (config: %s)", HOTPATH_VERSION,
		 d->cfg->source[0] ? d->cfg->source : "built-in defaults");
	/* Signals are taken synchronously by the control loop's signalfd;
	 * block them before any thread starts so every thread inherits it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->start_wall_ms = hp_wall_ms();
	d->start_mono_ms = hp_now_ms();

	features_probe(d, d->cfg->bpf_enabled);

	d->l1 = start_l1(d->cfg);
	if (!d->l1) {
		log_error("cannot create the L1 cache (l1_max_memory=%llu)",
			  (unsigned long long)d->cfg->l1_max_memory);
		goto out;
	}
	if (apply_partitions(d->l1, d->cfg) != 0) {
		log_error("cannot apply the configured partitions");
		goto out;
	}
	if (tier_start(d) != 0)         /* tasks, L2 (Redis), tier for the RESP front */
		goto out;
	if (features_has(d, "bpf")) {
		d->bpf_accept = bpf_accept_start(features_has(d, "bpffs") ? d->cfg->bpf_pin_path : "",
						 why, sizeof(why));
		if (!d->bpf_accept)
			log_warn("bpf: accept counter off: %s", why);
		else
			log_info("bpf: accept counter attached (map pinned under %s)",
				 d->cfg->bpf_pin_path);
	} else if (d->cfg->bpf_enabled) {
		log_warn("bpf: kernel programs off (see the feature lines above)");
	}
	if (features_has(d, "bpf") && features_has(d, "tracefs")) {
		d->observe = observe_start(d->cfg, features_has(d, "bpffs") ? d->cfg->bpf_pin_path : "",
					   why, sizeof(why));
		if (!d->observe)
			log_warn("observe: request and query observation off: %s", why);
		else
			log_info("observe: watching %u configured service(s) and the listeners "
				 "discovered on this host", d->cfg->n_services);
	}
	if (features_has(d, "bpf") && features_has(d, "perf_event")) {
		d->profiler = profiler_new(d->cfg->profile_hz,
					   features_has(d, "bpffs") ? d->cfg->bpf_pin_path : "",
					   why, sizeof(why));
		if (!d->profiler)
			log_warn("profile: CPU profiler off: %s", why);
		else
			log_info("profile: CPU profiler ready (%u Hz per CPU while a window runs)",
				 profiler_hz(d->profiler));
	}
	if (features_has(d, "bpf") && features_has(d, "sockmap")) {
		struct l0_options lo = {
			.pin_path = features_has(d, "bpffs") ? d->cfg->bpf_pin_path : "",
			.max_keys = d->cfg->l0_max_keys,
			.max_value = (unsigned)d->cfg->l0_max_value_size,
			.min_heat = d->cfg->l0_min_hits,
			.enabled = d->cfg->l0_enabled,
			.remote = d->cfg->l0_remote,
		};

		d->l0 = l0_start(d->l1, &lo, why, sizeof(why));
		if (!d->l0)
			log_warn("l0: kernel tier off: %s", why);
	} else if (d->cfg->l0_enabled) {
		log_warn("l0: kernel tier off (needs BPF and sockmap, see the feature lines above)");
	}
	d->resp = resp_server_start(d->cfg, d->l1, d->l0);
	if (!d->resp)
		goto out;
	bpf_accept_add_port(d->bpf_accept, resp_server_port(d->resp));
	if (d->l0) {
		l0_set_port(d->l0, resp_server_port(d->resp));
		log_info("l0: kernel tier %s (up to %u keys of at most %llu bytes)",
			 d->cfg->l0_enabled ? "on" : "loaded but switched off (sock_ops not attached)",
			 d->cfg->l0_max_keys, (unsigned long long)d->cfg->l0_max_value_size);
	}
	if (d->cfg->http_upstream[0]) {
		d->http = proxy_start_config(d->cfg, d->l1);
		if (!d->http)
			goto out;
		bpf_accept_add_port(d->bpf_accept, proxy_port(d->http));
	}
	if (d->cfg->n_databases) {
		d->pooler = pooler_start(d->cfg);
		if (!d->pooler)
			goto out;
		bpf_accept_add_port(d->bpf_accept, pooler_port(d->pooler));
		d->advisor = pgadvise_start(d);    /* NULL when query statistics are off */
	}
	d->ts = timeseries_new(TIMESERIES_SECONDS);
	if (!d->ts) {
		log_error("cannot allocate the statistics history");
		goto out;
	}
	st.api = api_start(d);
	if (!st.api)
		goto out;
	bpf_accept_add_port(d->bpf_accept, api_port(st.api));
	log_info("ready: RESP on port %u, API on port %u", resp_server_port(d->resp),
		 api_port(st.api));
	sd_notifyf(0, "READY=1\nSTATUS=serving RESP on %u, API on %u\nMAINPID=%d",
		   resp_server_port(d->resp), api_port(st.api), (int)getpid());

	rc = run_loop(&st) == 0 ? 0 : 1;
	sd_notify(0, "STOPPING=1");
out:
	if (d->profiler)
		profiler_cancel(d->profiler);   /* a running window ends now */
	api_stop(st.api);
	profiler_free(d->profiler);
	pgadvise_stop(d->advisor);      /* before the pooler: it reads its statistics */
	d->advisor = NULL;
	pooler_stop(d->pooler, d->cfg->shutdown_timeout_ms);
	pooler_free(d->pooler);
	d->pooler = NULL;
	if (d->http) {
		proxy_stop(d->http, d->cfg->shutdown_timeout_ms);
		proxy_free(d->http);
		d->http = NULL;
	}
	if (d->resp) {
		resp_server_stop(d->resp, d->cfg->shutdown_timeout_ms);
		resp_server_free(d->resp);
	}
	l0_stop(d->l0);     /* after the RESP front: no connection uses it now */
	observe_stop(d->observe);       /* after the API: no request reads it now */
	bpf_accept_stop(d->bpf_accept);
	timeseries_free(d->ts);
	tier_stop(d);                   /* after the RESP front, before L1 */
	l1_free(d->l1);
	log_info("hotpathd stopped");
	log_free();
out_cfg:
	pthread_rwlock_destroy(&d->cfg_lock);
	free(d->cfg);
	return rc;
}
