/* msgbuf.c: a message body in memory up to a threshold, spilled to an
 * unlinked temporary file beyond it, so many concurrent 50 MB messages
 * cost disk, not RAM. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/lib.h"
#include "msgbuf.h"

struct msgbuf {
	char *tmpdir;
	size_t mem_limit;
	char *mem;              /* NULL once spilled */
	size_t cap;
	size_t len;
	int fd;                 /* -1 while in memory */
	int refs;               /* msgbuf_ref(); freed at 0 */
};

/* A new, empty body; spills into tmpdir past mem_limit bytes. */
struct msgbuf *
msgbuf_new(const char *tmpdir, size_t mem_limit)
{
	struct msgbuf *mb = xcalloc(1, sizeof(*mb));

	mb->tmpdir = xstrdup(tmpdir ? tmpdir : "/tmp");
	mb->mem_limit = mem_limit ? mem_limit : MSGBUF_MEM_DEFAULT;
	mb->fd = -1;
	mb->refs = 1;
	return mb;
}

/* A read-only body over an existing file (a spooled message). */
struct msgbuf *
msgbuf_open(const char *path)
{
	struct msgbuf *mb;
	struct stat sb;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &sb) == -1) {
		close(fd);
		return NULL;
	}
	mb = msgbuf_new(NULL, 0);
	mb->fd = fd;
	mb->len = (size_t)sb.st_size;
	return mb;
}

/* One more holder (a worker job reading it); msgbuf_free() drops one. */
struct msgbuf *
msgbuf_ref(struct msgbuf *mb)
{
	mb->refs++;
	return mb;
}


/* Move the in-memory bytes into a fresh unlinked file. */
static int
msgbuf_spill(struct msgbuf *mb)
{
	char *path = xasprintf("%s/smrelay-body.XXXXXX", mb->tmpdir);
	int fd, saved;

	fd = mkostemp(path, O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		free(path);
		errno = saved;
		return -1;
	}
	unlink(path);
	free(path);
	if (write_full(fd, mb->mem, mb->len) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	free(mb->mem);
	mb->mem = NULL;
	mb->cap = 0;
	mb->fd = fd;
	return 0;
}

/* Append bytes; -1 with errno on I/O error (the body is then unusable). */
int
msgbuf_append(struct msgbuf *mb, const void *data, size_t len)
{
	size_t ncap;

	if (len == 0)
		return 0;
	if (mb->fd == -1 && mb->len + len > mb->mem_limit) {
		if (msgbuf_spill(mb) == -1)
			return -1;
	}
	if (mb->fd != -1) {
		if (write_full(mb->fd, data, len) == -1)
			return -1;
		mb->len += len;
		return 0;
	}
	if (mb->len + len > mb->cap) {
		ncap = mb->cap ? mb->cap : 8192;
		while (ncap < mb->len + len)
			ncap *= 2;
		if (ncap > mb->mem_limit)
			ncap = mb->mem_limit;
		mb->mem = xrealloc(mb->mem, ncap);
		mb->cap = ncap;
	}
	memcpy(mb->mem + mb->len, data, len);
	mb->len += len;
	return 0;
}

/* Total bytes appended so far. */
size_t
msgbuf_size(const struct msgbuf *mb)
{
	return mb->len;
}

/* Read up to len bytes at off: bytes read, 0 at the end, -1 on error. */
ssize_t
msgbuf_pread(struct msgbuf *mb, void *buf, size_t len, size_t off)
{
	ssize_t n;

	if (off >= mb->len)
		return 0;
	if (len > mb->len - off)
		len = mb->len - off;
	if (mb->fd == -1) {
		memcpy(buf, mb->mem + off, len);
		return (ssize_t)len;
	}
	do {
		n = pread(mb->fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n;
}

/* The in-memory bytes, or NULL when the body lives in a file. */
const char *
msgbuf_mem(const struct msgbuf *mb)
{
	return mb->fd == -1 ? (mb->mem ? mb->mem : "") : NULL;
}

/* The whole body in one new NUL-terminated buffer; NULL on a read error. */
char *
msgbuf_slurp(struct msgbuf *mb, size_t *lenp)
{
	char *p = xmalloc(mb->len + 1);
	size_t off = 0;
	ssize_t n;

	while (off < mb->len) {
		if ((n = msgbuf_pread(mb, p + off, mb->len - off, off)) <= 0) {
			free(p);
			return NULL;
		}
		off += (size_t)n;
	}
	p[off] = '\0';
	*lenp = off;
	return p;
}

/* Drop a reference; the last one releases the body and its file. */
void
msgbuf_free(struct msgbuf *mb)
{
	if (mb == NULL || --mb->refs > 0)
		return;
	if (mb->fd != -1)
		close(mb->fd);
	free(mb->mem);
	free(mb->tmpdir);
	free(mb);
}
