/* lib.h: the lowest layer, used by every other folder and including nothing
 * of ours: logging (one line per event, to syslog or stderr), allocation
 * wrappers that abort on failure, small string helpers. */
#ifndef SMRELAY_LIB_H
#define SMRELAY_LIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* xmalloc.c */
void alloc_fail(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

/* util.c */
int write_full(int, const void *, size_t);
size_t strlcpy_s(char *, const char *, size_t);
int strcasecmp_ascii(const char *, const char *);
int hexval(int);
double mono_now(void);
void sockaddr_str(const struct sockaddr *, char *, size_t);
uint64_t new_session_id(void);
void rfc5322_date(char *, size_t);
/* Where a tool spills temporary files: $TMPDIR when set and not empty,
 * else /tmp. */
const char *tmp_dir(void);

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* log.c */
void log_init(const char *progname, int foreground, int level);
void log_timestamps(int on);
void log_prefix(const char *);
void log_setlevel(int level);
int log_getlevel(void);
int log_level_parse(const char *);
void log_at(int, const char *, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
