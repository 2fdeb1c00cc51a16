/* msgbuf.c: a message body in memory up to a threshold, spilled to an
 * unlinked temporary file beyond it, so many concurrent 50 MB messages
 * cost disk, not RAM. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>

#include "lib/lib.h"
#include "msgbuf.h"

#define MSGBUF_WBUF	(64 * 1024)	/* appends held before a write */

struct msgbuf {
	char *tmpdir;
	size_t mem_limit;
	char *mem;              /* NULL once spilled */
	size_t cap;
	size_t len;
	int fd;                 /* -1 while in memory */
	char *wbuf;             /* spilled: appends held before a write */
	size_t wlen;            /* bytes in wbuf (counted in len) */
	atomic_int refs;        /* msgbuf_ref(); freed at 0; workers
				 * drop theirs off the loop */
};

/* A new, empty body; spills into tmpdir past mem_limit bytes. */
struct msgbuf *
msgbuf_new(const char *tmpdir, size_t mem_limit)
{
	struct msgbuf *mb = xcalloc(1, sizeof(*mb));

	mb->tmpdir = xstrdup(tmpdir ? tmpdir : "/tmp");
	mb->mem_limit = mem_limit ? mem_limit : MSGBUF_MEM_DEFAULT;
	mb->fd = -1;
	atomic_init(&mb->refs, 1);
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
	atomic_fetch_add(&mb->refs, 1);
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

/* Write the appends held in wbuf to the file. */
static int
msgbuf_flush(struct msgbuf *mb)
{
	if (mb->wlen == 0)
		return 0;
	if (write_full(mb->fd, mb->wbuf, mb->wlen) == -1)
		return -1;
	mb->wlen = 0;
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
		/* many small appends (a CMS encoder writes lines) cost one
		 * write per MSGBUF_WBUF bytes */
		if (mb->wlen + len > MSGBUF_WBUF && msgbuf_flush(mb) == -1)
			return -1;
		if (len >= MSGBUF_WBUF) {
			if (write_full(mb->fd, data, len) == -1)
				return -1;
		} else {
			if (mb->wbuf == NULL)
				mb->wbuf = xmalloc(MSGBUF_WBUF);
			memcpy(mb->wbuf + mb->wlen, data, len);
			mb->wlen += len;
		}
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

/*
 * Read up to len bytes at off: bytes read, 0 at the end, -1 on error.
 * Only reads: the bytes still held in wbuf are copied from there, so
 * workers may read one body at the same time.
 */
ssize_t
msgbuf_pread(struct msgbuf *mb, void *buf, size_t len, size_t off)
{
	size_t filed, fromfile;
	ssize_t n = 0;

	if (off >= mb->len)
		return 0;
	if (len > mb->len - off)
		len = mb->len - off;
	if (mb->fd == -1) {
		memcpy(buf, mb->mem + off, len);
		return (ssize_t)len;
	}
	filed = mb->len - mb->wlen;     /* written to the file so far */
	fromfile = off < filed ? (len < filed - off ? len : filed - off) : 0;
	if (fromfile > 0) {
		do {
			n = pread(mb->fd, buf, fromfile, (off_t)off);
		} while (n < 0 && errno == EINTR);
		if (n < 0 || (size_t)n < fromfile)
			return n;
	}
	if (len > fromfile)
		memcpy((char *)buf + fromfile, mb->wbuf + (off + fromfile -
		    filed), len - fromfile);
	return (ssize_t)len;
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
	if (mb == NULL || atomic_fetch_sub(&mb->refs, 1) > 1)
		return;
	if (mb->fd != -1)
		close(mb->fd);
	free(mb->wbuf);
	free(mb->mem);
	free(mb->tmpdir);
	free(mb);
}

/* A BIO over a msgbuf: a range read front to back (rewindable), or
 * bytes appended. */
struct mb_bio {
	struct msgbuf	*mb;		/* our reference */
	size_t		 start, end, pos;
};

static BIO_METHOD *mb_reader_meth, *mb_writer_meth;
static pthread_once_t mb_once = PTHREAD_ONCE_INIT;

/* Read from the range. */
static int
mb_read(BIO *b, char *buf, int len)
{
	struct mb_bio *m = BIO_get_data(b);
	size_t want;
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (len <= 0 || m->pos >= m->end)
		return 0;
	want = m->end - m->pos < (size_t)len ? m->end - m->pos : (size_t)len;
	if ((n = msgbuf_pread(m->mb, buf, want, m->pos)) <= 0)
		return -1;
	m->pos += (size_t)n;
	return (int)n;
}

/* Append to the body. */
static int
mb_write(BIO *b, const char *buf, int len)
{
	struct mb_bio *m = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (msgbuf_append(m->mb, buf, (size_t)len) == -1)
		return -1;
	return len;
}

/* Append a string. */
static int
mb_puts(BIO *b, const char *s)
{
	size_t n = strlen(s);

	return n > INT_MAX ? -1 : mb_write(b, s, (int)n);
}

/* Rewind, end, pending, flush. */
static long
mb_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct mb_bio *m = BIO_get_data(b);

	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_RESET:
		m->pos = m->start;
		return 1;
	case BIO_C_FILE_SEEK:           /* BIO_seek(): 0 on success */
		if (num < 0 || (size_t)num > m->end - m->start)
			return -1;
		m->pos = m->start + (size_t)num;
		return 0;
	case BIO_CTRL_EOF:
		return m->pos >= m->end;
	case BIO_CTRL_PENDING:
		return m->end > m->pos ? (long)(m->end - m->pos) : 0;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

/* Release the BIO's reference. */
static int
mb_destroy(BIO *b)
{
	struct mb_bio *m = BIO_get_data(b);

	if (m != NULL) {
		msgbuf_free(m->mb);
		free(m);
	}
	BIO_set_data(b, NULL);
	return 1;
}

/* The two methods, made once. */
static void
mb_init(void)
{
	BIO_METHOD *r, *w;

	r = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "msgbuf reader");
	w = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "msgbuf writer");
	if (r == NULL || w == NULL)
		abort();
	BIO_meth_set_read(r, mb_read);
	BIO_meth_set_ctrl(r, mb_ctrl);
	BIO_meth_set_destroy(r, mb_destroy);
	BIO_meth_set_write(w, mb_write);
	BIO_meth_set_puts(w, mb_puts);
	BIO_meth_set_ctrl(w, mb_ctrl);
	BIO_meth_set_destroy(w, mb_destroy);
	mb_reader_meth = r;
	mb_writer_meth = w;
}

/* A BIO over mb, a writer or a reader; NULL when out of memory. */
static BIO *
mb_bio(struct msgbuf *mb, int writer, size_t start, size_t end)
{
	struct mb_bio *m;
	BIO *b;

	pthread_once(&mb_once, mb_init);
	if ((b = BIO_new(writer ? mb_writer_meth : mb_reader_meth)) == NULL)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->mb = msgbuf_ref(mb);
	m->start = m->pos = start;
	m->end = end;
	BIO_set_data(b, m);
	BIO_set_init(b, 1);
	return b;
}

/* A BIO reading [start, end) of mb, rewindable with BIO_reset(). */
BIO *
msgbuf_bio_reader(struct msgbuf *mb, size_t start, size_t end)
{
	if (end > mb->len)
		end = mb->len;
	if (start > end)
		start = end;
	return mb_bio(mb, 0, start, end);
}

/* A BIO appending to mb. */
BIO *
msgbuf_bio_writer(struct msgbuf *mb)
{
	return mb_bio(mb, 1, 0, 0);
}
