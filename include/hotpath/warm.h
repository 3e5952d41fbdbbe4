/*
 * warm.h - cache warming: jobs from the API (POST
 * /api/v2/performance/cache/warm) and the warm restart from the hot-key
 * snapshot (warm.snapshot_file).
 *
 * A job is a list of sources - a key list, a glob over L2 (SCAN), a
 * loader's warm_query (rows of key, value), or the snapshot file - run in
 * the background as one task on the task processor. For each key it uses
 * the best origin there is: the key's strategy loader, else L2, else (for
 * snapshot entries) the saved value with its remaining TTL. Progress is
 * kept per job (the last WARM_JOBS_KEPT jobs) and read with warm_job_get.
 */
#ifndef HOTPATH_WARM_H
#define HOTPATH_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

#define WARM_JOBS_KEPT 32
#define WARM_MAX_SOURCES 16
#define WARM_MAX_KEYS 10000          /* keys in one "keys" source */
#define WARM_LIMIT_DEFAULT 10000     /* keys per pattern/sql source */
#define WARM_LIMIT_MAX 1000000
#define WARM_KEY_MAX 4096
#define WARM_PATTERN_MAX 1024

struct hp_daemon;

enum warm_src_type { WARM_SRC_KEYS = 0, WARM_SRC_PATTERN, WARM_SRC_SQL, WARM_SRC_SNAPSHOT };

struct warm_source {
	int type;                        /* enum warm_src_type */
	char **keys;                     /* WARM_SRC_KEYS: malloc'd copies */
	size_t *klens;
	unsigned nkeys;
	char pattern[WARM_PATTERN_MAX];  /* WARM_SRC_PATTERN */
	size_t plen;
	char loader[64];                 /* WARM_SRC_SQL */
	uint64_t limit;                  /* pattern/sql: most keys */
};

struct warm_request {
	bool scope_all;                  /* also write loaded values to L2 */
	unsigned n;
	struct warm_source src[WARM_MAX_SOURCES];
};

/* Frees the key lists and the request. NULL no-op. */
void warm_request_free(struct warm_request *rq);

enum warm_status { WARM_QUEUED = 0, WARM_RUNNING, WARM_DONE, WARM_FAILED };
const char *warm_status_name(int s);

struct warm_job_info {
	uint64_t id;
	int status;                      /* enum warm_status */
	bool scope_all;
	unsigned n_sources;
	uint64_t seen, warmed, missing, failed;
	uint64_t created_wall_ms, finished_wall_ms;
	char error[200];                 /* first failure, "" if none */
};

/*
 * Queue a job (takes rq, also on failure). 0 and *id, -EINVAL (a source
 * names an unknown loader, or needs an L2 that is not configured),
 * -EAGAIN (task queue full, or WARM_JOBS_KEPT jobs still running), with
 * the reason in err.
 */
int warm_submit(struct hp_daemon *d, struct warm_request *rq, uint64_t *id, char *err,
		size_t errlen) HP_MUST_CHECK;
bool warm_job_get(uint64_t id, struct warm_job_info *out);
/* i-th kept job, newest first. */
bool warm_job_at(unsigned i, struct warm_job_info *out);

struct warm_totals {
	uint64_t done, failed, keys;
};
void warm_totals(struct warm_totals *out);

/*
 * Warm restart. warm_snapshot_save writes the hottest L1 keys to
 * warm.snapshot_file (at shutdown, before L1 goes); warm_restore_start
 * queues a snapshot job (at start). Both are no-ops without a file
 * configured; failures are logged, never fatal. save returns the number
 * of keys written or -errno.
 */
long warm_snapshot_save(struct hp_daemon *d);
void warm_restore_start(struct hp_daemon *d);

#endif
