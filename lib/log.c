/* log.c: one line per event, to syslog or stderr. */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "lib.h"

static int log_fg = 1;
static int log_lvl = LOG_LVL_INFO;

static void log_vemit(int, const char *, va_list, const char *)
    __attribute__((format(printf, 2, 0)));

/* Format and emit one line if the level passes. */
static void
log_vemit(int lvl, const char *fmt, va_list ap, const char *errstr)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048];

	if (lvl > log_lvl)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_fg) {
		if (errstr)
			fprintf(stderr, "%s: %s\n", msg, errstr);
		else
			fprintf(stderr, "%s\n", msg);
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
