/* util.c: small string, socket and time helpers. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib.h"

/* Write all of buf to fd, retrying short writes; -1 with errno on error. */
int
write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Bounded copy that always terminates; returns strlen(src). */
size_t
strlcpy_s(char *dst, const char *src, size_t dsz)
{
	size_t n = strlen(src);

	if (dsz > 0) {
		size_t c = n < dsz - 1 ? n : dsz - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

/* ASCII-only case-insensitive compare (locale-independent). */
int
strcasecmp_ascii(const char *a, const char *b)
{
	unsigned char ca, cb;

	do {
		ca = (unsigned char)*a++;
		cb = (unsigned char)*b++;
		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
	} while (ca && ca == cb);
	return ca - cb;
}

/* Format an address as "1.2.3.4" or "IPv6:..." without port. */
void
sockaddr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    tmp, sizeof(tmp));
		snprintf(buf, len, "%s", tmp);
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    tmp, sizeof(tmp));
		snprintf(buf, len, "IPv6:%s", tmp);
		break;
	case AF_UNIX:
		snprintf(buf, len, "local");
		break;
	default:
		snprintf(buf, len, "unknown");
	}
}

/* A random 64-bit id for a session or message, for logs and headers. */
uint64_t
new_session_id(void)
{
	uint64_t id;

	if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
		fatalx("RAND_bytes failed");
	return id;
}

/* Current time as an RFC 5322 date-time. */
void
rfc5322_date(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	if (strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0 && len)
		buf[0] = '\0';
}

const char *
tmp_dir(void)
{
	const char *t = getenv("TMPDIR");

	return t != NULL && *t != '\0' ? t : "/tmp";
}
