/*
 * observe_cli.c - drives agent/observe/observe.c without the daemon, for
 * tests/integration/test_observe.py (which compiles it against
 * build/libhotpath.a).
 *
 *   observe_cli [-c CONFIG] [-p PIN_PATH]
 *
 * Prints "ready" once the kernel programs are attached (or "unavailable:
 * REASON" and exits 2), then reads commands on stdin, one a line:
 *   dump [RANGE_MS] [SERVICE]  one JSON line: services, metrics, queries,
 *                              prometheus text
 *   quit                       stop cleanly (also on EOF)
 */
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "hotpath/buf.h"
#include "hotpath/config.h"
#include "hotpath/observe.h"

int main(int argc, char **argv)
{
	const char *conf = NULL, *pin = "/sys/fs/bpf/hotpath";
	struct hp_config *cfg = calloc(1, sizeof(*cfg));
	char why[256], line[512], err[2048];
	struct observe *o;
	int c;

	if (!cfg)
		return 1;
	while ((c = getopt(argc, argv, "c:p:")) != -1) {
		if (c == 'c')
			conf = optarg;
		else if (c == 'p')
			pin = optarg;
		else
			return 1;
	}
	config_defaults(cfg);
	if (conf && config_load_file(cfg, conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	o = observe_start(cfg, pin, why, sizeof(why));
	if (!o) {
		printf("unavailable: %s\n", why);
		free(cfg);
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long range = 0;
		char svc[128] = "";

		if (!strncmp(line, "quit", 4))
			break;
		if (strncmp(line, "dump", 4) != 0)
			continue;
		if (sscanf(line + 4, "%llu %127s", &range, svc) < 1)
			range = 0;
		json_t *root = json_object();
		struct buf prom;

		buf_init(&prom, 16u << 20);
		json_object_set_new(root, "services", observe_services_json(o));
		json_object_set_new(root, "metrics", observe_metrics_json(o, svc[0] ? svc : NULL, range));
		json_object_set_new(root, "queries", observe_queries_json(o, 50));
		if (observe_write_prometheus(o, &prom) == 0 && buf_append(&prom, "", 1) == 0)
			json_object_set_new(root, "prometheus", json_string(buf_head(&prom)));
		buf_free(&prom);
		char *s = json_dumps(root, JSON_COMPACT);

		printf("%s\n", s ? s : "{}");
		fflush(stdout);
		free(s);
		json_decref(root);
	}
	observe_stop(o);
	free(cfg);
	return 0;
}
