/*
 * log.h - leveled logging to stderr and, under systemd, the journal.
 *
 * One line per event, prefixed with time, level and the subsystem given by
 * the caller's format. Thread-safe; the level can change at runtime
 * (SIGHUP reload).
 */
#ifndef HOTPATH_LOG_H
#define HOTPATH_LOG_H

#include <stdbool.h>
#include "hotpath/common.h"

enum hp_log_level {
	HP_LOG_ERROR = 0,
	HP_LOG_WARN = 1,
	HP_LOG_INFO = 2,
	HP_LOG_DEBUG = 3,
};

/* Start logging. `journal` sends lines to the systemd journal as well as
 * stderr (when stderr is not already the journal). */
void log_init(enum hp_log_level level, bool journal);
void log_set_level(enum hp_log_level level);
enum hp_log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns -EINVAL for anything else. */
int log_level_parse(const char *s, enum hp_log_level *out) HP_MUST_CHECK;
const char *log_level_name(enum hp_log_level l);
void log_msg(enum hp_log_level level, const char *fmt, ...) HP_PRINTF(2, 3);
void log_free(void);

#define log_error(...) log_msg(HP_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(HP_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(HP_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= HP_LOG_DEBUG) log_msg(HP_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
