/*
 * log.c - leveled logging to stderr and the systemd journal.
 *
 * One formatted line per call, written with a single write(2) so lines from
 * different threads never interleave. When stderr is already connected to
 * the journal (JOURNAL_STREAM matches, as under systemd) lines go only
 * there, with a "<N>" syslog priority prefix that journald understands;
 * otherwise they go to stderr with a timestamp, and to the journal through
 * sd_journal_send when `journal` was asked for and a journal exists.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-journal.h>
#include "hotpath/log.h"

static _Atomic int log_level = HP_LOG_INFO;
static bool log_to_journal;      /* sd_journal_send in addition to stderr */
static bool stderr_is_journal;   /* stderr is a journald stream */

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int level_syslog[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

static bool detect_journal_stream(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%lu:%lu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_init(enum hp_log_level level, bool journal)
{
	atomic_store(&log_level, level);
	stderr_is_journal = detect_journal_stream();
	log_to_journal = journal && !stderr_is_journal &&
			 access("/run/systemd/journal/socket", W_OK) == 0;
}

void log_set_level(enum hp_log_level level) { atomic_store(&log_level, level); }
enum hp_log_level log_get_level(void) { return atomic_load(&log_level); }

int log_level_parse(const char *s, enum hp_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum hp_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = HP_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_name(enum hp_log_level l)
{
	return (unsigned)l < 4 ? level_names[l] : "unknown";
}

void log_msg(enum hp_log_level level, const char *fmt, ...)
{
	char msg[2048], line[2200];
	va_list ap;
	int n;

	if ((int)level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (stderr_is_journal) {
		n = snprintf(line, sizeof(line), "<%d>%s\n", level_syslog[level], msg);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			     level_names[level], msg);
	}
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report a failed log write */
	}
	if (log_to_journal)
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level_syslog[level],
				"SYSLOG_IDENTIFIER=hotpathd", NULL);
}

void log_free(void)
{
	log_to_journal = false;
}
