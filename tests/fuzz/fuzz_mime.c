/* fuzz_mime.c: libFuzzer harness for the MIME splitter, tree, canonical
 * form, S/MIME detection, transfer-encoding codecs and the From rules. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mail_addr.h"
#include "proto/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Running hash of the event stream: equal streams, equal hashes. */
struct evhash {
	uint64_t h;
	size_t   n;
};

/* Mix bytes into the hash (FNV-1a). */
static void
mix(struct evhash *e, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++)
		e->h = (e->h ^ s[i]) * 1099511628211ULL;
}

/* Event sink: hash everything the caller sees. */
static void
hash_event(void *arg, const struct mime_event *ev)
{
	struct evhash *e = arg;
	size_t v[4] = { ev->type, (size_t)ev->depth, ev->off, ev->end };

	e->n++;
	mix(e, v, sizeof(v));
	if (ev->type == MIME_EV_HEADER) {
		mix(e, ev->name, ev->namelen);
		mix(e, ev->value, ev->valuelen);
	} else if (ev->type == MIME_EV_HEADERS_END) {
		mix(e, ev->ct, sizeof(*ev->ct));
		mix(e, &ev->cte, sizeof(ev->cte));
		mix(e, &ev->hflags, sizeof(ev->hflags));
	} else if (ev->type == MIME_EV_PART_END) {
		mix(e, &ev->hflags, sizeof(ev->hflags));
	} else if (ev->data != NULL) {
		if (ev->end - ev->off != ev->len)
			abort();
		mix(e, ev->data, ev->len);
	}
	mix(e, &ev->close, sizeof(ev->close));
}

/* Split in chunks: first, then step-sized ones. */
static void
split(const char *in, size_t len, size_t first, size_t step,
    struct evhash *e)
{
	struct mime_rd *rd;
	size_t off = 0, n;

	if ((rd = malloc(sizeof(*rd))) == NULL)
		abort();
	e->h = 14695981039346656037ULL;
	e->n = 0;
	mime_rd_init(rd, hash_event, e);
	while (off < len) {
		n = off == 0 && first != 0 ? first : step;
		if (n > len - off)
			n = len - off;
		mime_rd_feed(rd, in + off, n);
		off += n;
	}
	mime_rd_end(rd);
	free(rd);
}

/*
 * Canonical form: CRLF line ends only; for a message without anomalies
 * (flags 0) also a fixed point.
 */
static void
canon(const char *in, size_t len, unsigned flags)
{
	char *o, *i, *o2, *i2, *msg;
	size_t ol, il, ol2, il2, k;

	if (mime_canon(in, len, &o, &ol, &i, &il) == -1)
		return;
	/* Header fields keep their bytes (8bit, RFC 6532): check line ends. */
	for (k = 0; k < il; k++)
		if ((i[k] == '\n' && (k == 0 || i[k - 1] != '\r')) ||
		    (i[k] == '\r' && (k + 1 == il || i[k + 1] != '\n')))
			abort();
	if ((msg = malloc(ol + il + 1)) == NULL)
		abort();
	memcpy(msg, o, ol);
	memcpy(msg + ol, i, il);
	if (flags == 0 &&
	    mime_canon(msg, ol + il, &o2, &ol2, &i2, &il2) == 0) {
		if (il2 != il || memcmp(i2, i, il) != 0)
			abort();
		free(o2);
		free(i2);
	}
	free(msg);
	free(o);
	free(i);
}

/* A message read through mime_io in pieces of at most step bytes. */
struct sio {
	const char *m;
	size_t  len, step;
	char   *o[2];
	size_t  n[2];
};

/* mime_io read callback. */
static ssize_t
sio_read(void *arg, char *buf, size_t len, size_t off)
{
	struct sio *s = arg;

	if (off >= s->len)
		return 0;
	if (len > s->step)
		len = s->step;
	if (len > s->len - off)
		len = s->len - off;
	memcpy(buf, s->m + off, len);
	return (ssize_t)len;
}

/* mime_io write callback: collect each output. */
static int
sio_write(void *arg, int which, const char *buf, size_t len)
{
	struct sio *s = arg;

	if ((s->o[which] = realloc(s->o[which], s->n[which] + len + 1)) ==
	    NULL)
		abort();
	memcpy(s->o[which] + s->n[which], buf, len);
	s->n[which] += len;
	return 0;
}

/*
 * The streaming path (tree built from pieces, canonical form and S/MIME
 * detection read through callbacks) agrees with the whole-buffer one.
 */
static void
streamed(const char *in, size_t len, size_t step)
{
	struct mime_tree t;
	struct mime_tb *tb;
	struct mime_io io;
	struct mime_smime a, b;
	struct sio s;
	char *o, *i;
	size_t ol, il, k;
	int r1, r2;

	memset(&s, 0, sizeof(s));
	s.m = in;
	s.len = len;
	s.step = step;
	tb = mime_tree_begin(&t);
	for (k = 0; k < len; k += step)
		mime_tree_feed(tb, in + k, len - k < step ? len - k : step);
	r1 = mime_tree_end(tb);
	r2 = mime_canon(in, len, &o, &ol, &i, &il);
	if ((r1 == -1) != (r2 == -1))
		abort();
	if (r1 == -1)
		return;
	io.read = sio_read;
	io.rarg = &s;
	io.write = sio_write;
	io.warg = &s;
	if (mime_canon_stream(&t, &io) == -1 || s.n[0] != ol ||
	    s.n[1] != il || (ol && memcmp(s.o[0], o, ol) != 0) ||
	    (il && memcmp(s.o[1], i, il) != 0))
		abort();
	mime_smime_detect(in, len, &a);
	mime_smime_detect_tree(&t, &io, 65536, &b);
	if (a.kind != b.kind || (a.kind == MIME_SMIME_SIGNED &&
	    (a.content_off != b.content_off || a.content_len != b.content_len ||
	    a.derlen != b.derlen || memcmp(a.der, b.der, a.derlen) != 0)))
		abort();
	mime_smime_clear(&a);
	mime_smime_clear(&b);
	mime_tree_free(&t);
	free(o);
	free(i);
	free(s.o[0]);
	free(s.o[1]);
}

/* Codecs: encode/decode round trips. */
static void from_check(char *);

static void
codecs(const char *in, size_t len)
{
	unsigned char *d;
	char *e, *q, *qd;
	size_t el, dl, ql, qdl, k, n = 0;

	e = mime_b64_encode(in, len, &el);
	d = mime_b64_decode(e, el, &dl);
	if (dl != len || memcmp(d, in, len) != 0)
		abort();
	free(e);
	free(d);
	q = mime_qp_encode(in, len, &ql);
	qd = mime_qp_decode(q, ql, &qdl);
	/* Back as text: every line end CRLF, nothing else changed. */
	if ((e = malloc(2 * len + 1)) == NULL)
		abort();
	for (k = 0; k < len; k++) {
		if (in[k] == '\n' && (k == 0 || in[k - 1] != '\r'))
			e[n++] = '\r';
		e[n++] = in[k];
	}
	if (qdl != n || memcmp(qd, e, n) != 0)
		abort();
	free(e);
	free(q);
	free(qd);
	free(mime_qp_decode(in, len, &qdl));
	/* RFC 2047: NUL-terminated in, bounded out (a small one too) */
	if ((e = malloc(len + 1)) == NULL || (q = malloc(2 * len + 2)) ==
	    NULL)
		abort();
	memcpy(e, in, len);
	e[len] = '\0';
	mime_decode2047(e, q, 2 * len + 2);
	if (strlen(q) > 2 * len + 1)
		abort();
	mime_decode2047(e, q, 1 + len % 7);
	if (strlen(q) > len % 7)
		abort();
	from_check(e);
	free(e);
	free(q);
}

/* The input as From field values (split at newlines): the address rules
 * hold what they say. */
static void
from_check(char *v)
{
	struct mail_from f, g;
	char *nl, addr[MAIL_ADDR_MAX], key[MAIL_ADDR_MAX];
	const char *k;

	memset(&f, 0, sizeof(f));
	for (;;) {
		if ((nl = strchr(v, '\n')) != NULL)
			*nl = '\0';
		if (mail_addr_first(v, addr, sizeof(addr)) == 0 &&
		    strchr(addr, '@') == NULL)
			abort();
		k = mail_addr_key(v, key, sizeof(key));
		if (k != v && (k != key || strchr(k, '@') == NULL ||
		    strlen(k) >= sizeof(key)))
			abort();
		mail_from_add(&f, v);
		if (nl == NULL)
			break;
		v = nl + 1;
	}
	if (f.have && strlen(f.addr) >= sizeof(f.addr))
		abort();
	if (f.fields > 1 && mail_from_ambiguous(&f) == NULL)
		abort();
	g = f;
	if (mail_from_inner(&f, &g) != NULL && f.fields == 1 &&
	    f.boxes == 1 && !f.spoof && f.have)
		abort();
}

/*
 * The first two bytes choose a split point; the rest is a message.
 * Whole, split and byte-by-byte splitting must give the same events.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evhash whole, cut, bytes;
	struct mime_tree t;
	struct mime_smime r;
	const char *in;
	size_t len, at;

	if (size < 2 || size > 65536)
		return 0;
	at = (size_t)data[0] << 8 | data[1];
	in = (const char *)data + 2;
	len = size - 2;
	at = len ? at % (len + 1) : 0;
	split(in, len, 0, len ? len : 1, &whole);
	split(in, len, at, 7, &cut);
	split(in, len, 0, 1, &bytes);
	if (whole.h != cut.h || whole.n != cut.n || whole.h != bytes.h ||
	    whole.n != bytes.n)
		abort();
	if (mime_parse(in, len, &t) == 0 && t.root == NULL)
		abort();
	mime_tree_free(&t);
	canon(in, len, t.flags);
	mime_smime_detect(in, len, &r);
	if (r.kind == MIME_SMIME_SIGNED &&
	    r.content_off + r.content_len > len)
		abort();
	mime_smime_clear(&r);
	streamed(in, len, 1 + at % 13);
	codecs(in, len);
	return 0;
}
