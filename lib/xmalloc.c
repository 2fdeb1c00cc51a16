/* xmalloc.c: allocation wrappers and the one allocation-failure policy of
 * the whole tree: log and exit, from every layer (proto/ included). */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

/* Out of memory (or an allocation inside a library such as OpenSSL failed):
 * not a state we can serve from; the format names the allocation. */
void
alloc_fail(const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fatalx("out of memory: %s", what);
}

/* Allocate or die: running out of memory is not a state we can serve from. */
void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		alloc_fail("malloc %zu", n);
	return p;
}

/* Zeroed allocation or die. */
void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		alloc_fail("calloc %zu*%zu", n, sz);
	return p;
}

/* Resize or die. */
void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		alloc_fail("realloc %zu", n);
	return q;
}

/* Resize an array with overflow check, or die. */
void *
xreallocarray(void *p, size_t n, size_t sz)
{
	if (sz != 0 && n > SIZE_MAX / sz)
		alloc_fail("reallocarray %zu*%zu overflows", n, sz);
	return xrealloc(p, n * sz);
}

/* Duplicate a string or die. */
char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		alloc_fail("strdup");
	return p;
}

/* Duplicate at most n bytes of a string or die; `s` need not be
 * NUL-terminated within n (ASan's strndup reads one byte past it). */
char *
xstrndup(const char *s, size_t n)
{
	const char *nul = n > 0 ? memchr(s, '\0', n) : NULL;
	char *p;

	if (nul != NULL)
		n = (size_t)(nul - s);
	p = xmalloc(n + 1);
	if (n > 0)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* printf into a fresh allocation or die. */
char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		alloc_fail("vasprintf");
	return p;
}
