/* log.c: one line per event, to syslog or stderr. */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

#include "lib.h"

static int log_fg = 1;
static int log_lvl = LOG_LVL_INFO;
static int log_stamped;
static char log_pfx[32];
static size_t log_plen;

static void log_vemit(int, const char *, va_list, const char *)
    __attribute__((format(printf, 2, 0)));

/* "2026-12-06T08:30:01.123+01:00 " (local time, ISO 8601 with
 * milliseconds) into buf; "" when timestamps are off. */
static void
log_stamp_fmt(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	char date[24], zone[8];

	buf[0] = '\0';
	if (!log_stamped || gettimeofday(&tv, NULL) == -1 ||
	    localtime_r(&tv.tv_sec, &tm) == NULL)
		return;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	if (strftime(zone, sizeof(zone), "%z", &tm) != 5)
		snprintf(zone, sizeof(zone), "+0000");
	snprintf(buf, len, "%s.%03ld%.3s:%.2s ", date,
	    (long)(tv.tv_usec / 1000) % 1000, zone, zone + 3);
}

/* Format and emit one line if the level passes. */
static void
log_vemit(int lvl, const char *fmt, va_list ap, const char *errstr)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048], ts[64];

	if (lvl > log_lvl)
		return;
	vsnprintf(msg + log_plen, sizeof(msg) - log_plen, fmt, ap);
	memcpy(msg, log_pfx, log_plen);
	if (log_fg) {
		log_stamp_fmt(ts, sizeof(ts));
		if (errstr)
			fprintf(stderr, "%s%s: %s\n", ts, msg, errstr);
		else
			fprintf(stderr, "%s%s\n", ts, msg);
		fflush(stderr);
	} else if (errstr)
		syslog(prio[lvl], "%s: %s", msg, errstr);
	else
		syslog(prio[lvl], "%s", msg);
}

/* One line at an explicit level (for messages of other libraries). */
void
log_at(int lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(lvl, fmt, ap, NULL);
	va_end(ap);
}

/* Set up logging: stderr when in the foreground, else syslog (mail facility). */
void
log_init(const char *progname, int foreground, int level)
{
	log_fg = foreground;
	log_lvl = level;
	if (!foreground)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
	tzset();
}

/* Begin every line with p (one of several processes says which, issue
 * 18); at most 31 bytes. */
void
log_prefix(const char *p)
{
	log_plen = strlen(p);
	if (log_plen >= sizeof(log_pfx))
		log_plen = sizeof(log_pfx) - 1;
	memcpy(log_pfx, p, log_plen);
}

/* Begin each stderr line with the time (a daemon under -f; syslog has its
 * own). */
void
log_timestamps(int on)
{
	log_stamped = on;
}

/* Change the verbosity at run time (SIGHUP, -v). */
void
log_setlevel(int level)
{
	log_lvl = level;
}

/* Current verbosity. */
int
log_getlevel(void)
{
	return log_lvl;
}

/* Map a log_level config value to its level; -1 if unknown. */
int
log_level_parse(const char *s)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Warning with errno's text appended. */
void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_WARN, fmt, ap, e);
	va_end(ap);
}

/* Warning without errno. */
void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_WARN, fmt, ap, NULL);
	va_end(ap);
}

/* Informational event. */
void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_INFO, fmt, ap, NULL);
	va_end(ap);
}

/* Debug detail (-v or log_level = debug). */
void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

/* Cannot go on: log with errno and exit. */
void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, fmt, ap, e);
	va_end(ap);
	exit(1);
}

/* Cannot go on: log and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
