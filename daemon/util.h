/* util.h: allocation wrappers that abort, small string helpers. */
#ifndef SMRELAY_UTIL_H
#define SMRELAY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* util.c */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
int write_full(int, const void *, size_t);
size_t strlcpy_s(char *, const char *, size_t);
int strcasecmp_ascii(const char *, const char *);
void sockaddr_str(const struct sockaddr *, char *, size_t);
uint64_t new_session_id(void);
void rfc5322_date(char *, size_t);

#endif
