/* smime_stream.c: S/MIME on a message in a msgbuf, in bounded pieces (see
 * smime_stream.h). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "smime_msg_priv.h"
#include "smime_stream.h"

#define SS_CHUNK	65536		/* bytes read at a time */
#define MIME_VERSION	"MIME-Version: 1.0\r\n"

/* msgbuf_pread() with the signature of a read callback. */
ssize_t
smime_stream_read(void *mb, char *buf, size_t len, size_t off)
{
	return msgbuf_pread(mb, buf, len, off);
}

/* Read the header block, piece by piece, until the blank line. */
char *
smime_stream_header(struct msgbuf *mb, size_t max, size_t *hlen,
    size_t *body)
{
	size_t n = 0, cap = 0, ls = 0, i, total = msgbuf_size(mb);
	char *h = NULL;
	ssize_t r;

	for (;;) {
		if (cap - n < SS_CHUNK + 1) {
			cap = cap * 2 + SS_CHUNK + 1;
			h = xrealloc(h, cap);
		}
		if ((r = msgbuf_pread(mb, h + n, SS_CHUNK, n)) < 0) {
			free(h);
			return NULL;
		}
		for (i = n; i < n + (size_t)r; i++) {
			if (h[i] != '\n')
				continue;
			if (i == ls || (i == ls + 1 && h[ls] == '\r')) {
				*hlen = ls;
				*body = i + 1;
				h[i + 1] = '\0';
				return h;
			}
			ls = i + 1;
		}
		n += (size_t)r;
		if (r == 0 || n >= total) {
			*hlen = *body = n;   /* no body */
			h[n] = '\0';
			return h;
		}
		if (n > max) {
			free(h);
			return NULL;
		}
	}
}

/* Parse a message into a tree of offsets, reading it in pieces. */
int
smime_stream_parse(struct msgbuf *mb, struct mime_tree *t)
{
	struct mime_tb *tb = mime_tree_begin(t);
	char *buf = xmalloc(SS_CHUNK);
	size_t off = 0;
	ssize_t r;

	while ((r = msgbuf_pread(mb, buf, SS_CHUNK, off)) > 0) {
		mime_tree_feed(tb, buf, (size_t)r);
		off += (size_t)r;
	}
	free(buf);
	if (mime_tree_end(tb) == -1)
		return -1;
	if (r < 0) {
		mime_tree_free(t);
		return -1;
	}
	return 0;
}

/* Copy src to the end of dst in pieces. */
int
smime_stream_copy(struct msgbuf *dst, struct msgbuf *src)
{
	char *buf = xmalloc(SS_CHUNK);
	size_t off = 0;
	ssize_t r;

	while ((r = msgbuf_pread(src, buf, SS_CHUNK, off)) > 0) {
		if (msgbuf_append(dst, buf, (size_t)r) == -1)
			break;
		off += (size_t)r;
	}
	free(buf);
	return off == msgbuf_size(src) ? 0 : -1;
}

/* Where the canonical form goes: outer fields to the output, the entity
 * to its own spill file. */
struct ss_canon {
	struct msgbuf	*outer, *entity;
};

/* mime_io write callback. */
static int
canon_write(void *arg, int which, const char *buf, size_t len)
{
	struct ss_canon *c = arg;

	return msgbuf_append(which == MIME_IO_OUTER ? c->outer : c->entity,
	    buf, len);
}

/* Run one CMS step: from all of `in` into `out`. */
static int
step(const struct certsrc *src, struct msgbuf *in, struct msgbuf *out,
    int sign, const char *from, const char *const *rcpts, size_t n,
    const struct smime_msg_opts *o, struct smime_msg_res *res)
{
	BIO *r, *w;
	int rc = -1;

	r = msgbuf_bio_reader(in, 0, msgbuf_size(in));
	w = msgbuf_bio_writer(out);
	if (r == NULL || w == NULL)
		snprintf(res->err, sizeof(res->err), "out of memory");
	else if (sign)
		rc = smime_msg_sign_bio(src, r, from, o, w, res);
	else
		rc = smime_msg_encrypt_bio(src, r, from, rcpts, n, o, w, res);
	BIO_free(r);
	BIO_free(w);
	return rc;
}

/* Sign and/or encrypt a message, piece by piece. */
int
smime_stream_wrap(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const char *tmpdir, const char *from,
    const char *const *rcpts, size_t n, const struct smime_msg_opts *o,
    int sign, int enc, struct msgbuf **outp, struct smime_msg_res *res)
{
	struct ss_canon c;
	struct mime_io io;
	struct msgbuf *mid = NULL;
	int r = -1;

	memset(res, 0, sizeof(*res));
	*outp = NULL;
	c.outer = msgbuf_new(tmpdir, 0);
	c.entity = msgbuf_new(tmpdir, 0);
	io.read = smime_stream_read;
	io.rarg = in;
	io.write = canon_write;
	io.warg = &c;
	if (mime_canon_stream(t, &io) == -1 ||
	    msgbuf_append(c.outer, MIME_VERSION, strlen(MIME_VERSION)) == -1) {
		snprintf(res->err, sizeof(res->err), "cannot read the message "
		    "or write its canonical form");
		goto done;
	}
	if (sign && step(src, c.entity, enc ? (mid = msgbuf_new(tmpdir, 0)) :
	    c.outer, 1, from, NULL, 0, o, res) == -1)
		goto done;
	if (enc && step(src, sign ? mid : c.entity, c.outer, 0, from, rcpts, n,
	    o, res) == -1)
		goto done;
	*outp = c.outer;
	c.outer = NULL;
	r = 0;
 done:
	msgbuf_free(c.outer);
	msgbuf_free(c.entity);
	msgbuf_free(mid);
	return r;
}
