/*
 * pgadvise.h - the query advisor: EXPLAIN plans of the slow fingerprints
 * the pooler measured (qstats.h), run with their sampled parameters on a
 * libpq connection of its own, the plans' findings (pgplan.h), and index
 * recommendations costed with HypoPG, ranked by measured time saved.
 * Also result-cache suggestions, and the optimisation jobs behind POST
 * /api/v2/performance/optimize.
 *
 * Analyses run as tasks on the shared task processor (tasks.h), one at a
 * time: on a timer (query_analysis.interval) and when a job asks. Results
 * replace the previous ones when a run ends; readers get copies.
 */
#ifndef HOTPATH_PGADVISE_H
#define HOTPATH_PGADVISE_H

#include <stdint.h>
#include <jansson.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

struct pgadvise;
struct hp_daemon;

/* Start the advisor for d->pooler (needs d->tasks). NULL when the pooler
 * or its statistics are off (nothing to advise on) or on ENOMEM. */
struct pgadvise *pgadvise_start(struct hp_daemon *d);
/* Stop the timer; a running analysis finishes first. NULL no-op. */
void pgadvise_stop(struct pgadvise *a);
struct hp_config;
/* SIGHUP: take the reloadable [query_analysis] keys and
 * query_cache.fingerprints from c (a running analysis keeps the options
 * it started with). NULL no-op. */
void pgadvise_reload(struct pgadvise *a, const struct hp_config *c);

/*
 * GET /api/v2/performance/recommendations: scope "db" (index and plan
 * findings), "cache" (result-cache suggestions) or "all"; fingerprints
 * seen within the last since_ms of wall time (0 = all). New reference.
 */
json_t *pgadvise_recommendations_json(struct pgadvise *a, const char *scope, uint64_t period_ms);

/* Job types for pgadvise_submit. */
#define PGADVISE_JOB_INDEX  "index_recommendations"
#define PGADVISE_JOB_RESET  "reset_query_stats"

/*
 * Queue an optimisation job: `type` one of the PGADVISE_JOB_* names,
 * `db` a configured database or NULL for all. The id goes to id (a job of
 * the same type and database already queued or running is returned
 * instead of a new one). 0; -EINVAL bad type/db (message in err);
 * -EAGAIN the task queue is full; -ENOMEM.
 */
int pgadvise_submit(struct pgadvise *a, const char *type, const char *db, char *id, size_t idlen,
		    char *err, size_t errlen) HP_MUST_CHECK;
/* The job `id` as JSON (new reference), NULL if unknown. */
json_t *pgadvise_job_json(struct pgadvise *a, const char *id);
/* Wait for job `id` to end (tests, hotpathctl --wait). 0, -ETIMEDOUT, -ENOENT. */
int pgadvise_job_wait(struct pgadvise *a, const char *id, uint64_t timeout_ms) HP_MUST_CHECK;

/* Prometheus families: hotpath_query_* and hotpath_advisor_*. */
int pgadvise_metrics_render(struct hp_daemon *d, struct buf *b) HP_MUST_CHECK;

#endif
