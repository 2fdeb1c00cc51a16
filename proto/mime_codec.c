/* mime_codec.c: streaming base64 and quoted-printable codecs (RFC 2045). */
#include "autoconfig.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/lib.h"
#include "mime.h"
#include "text.h"

#define B64_LINE 76     /* output characters per base64 line */
#define QP_LINE  76     /* output characters per QP line, soft break incl. */

/* QP decoder states. */
enum {
	QD_TEXT = 0,
	QD_CR,          /* a CR is held */
	QD_EQ,          /* after "=" */
	QD_EQ1,         /* after "=" and one hex digit */
	QD_EQWS,        /* after "=" and blanks: a soft break, if a line end */
	QD_EQCR         /* after "=", blanks and CR */
};

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hexchars[] = "0123456789ABCDEF";

/* Start a base64 encoder. */
void
mime_b64enc_init(struct mime_b64enc *e)
{
	memset(e, 0, sizeof(*e));
}

/* Room needed to encode len bytes in one feed plus end. */
size_t
mime_b64enc_max(size_t len)
{
	size_t chars = (len + 2 + 2) / 3 * 4 + 4;

	return chars + (chars / B64_LINE + 2) * 2;
}

/* Write one group of four characters, breaking lines at 76. */
static size_t
b64_quad(struct mime_b64enc *e, const unsigned char *in, int n, char *out)
{
	unsigned v = (unsigned)in[0] << 16 |
	    (n > 1 ? (unsigned)in[1] << 8 : 0) | (n > 2 ? in[2] : 0);
	size_t o = 0;

	out[o++] = b64chars[v >> 18 & 63];
	out[o++] = b64chars[v >> 12 & 63];
	out[o++] = n > 1 ? b64chars[v >> 6 & 63] : '=';
	out[o++] = n > 2 ? b64chars[v & 63] : '=';
	e->col += 4;
	if (e->col >= B64_LINE) {
		out[o++] = '\r';
		out[o++] = '\n';
		e->col = 0;
	}
	return o;
}

/* Encode bytes; out needs mime_b64enc_max(len).  Returns bytes written. */
size_t
mime_b64enc_feed(struct mime_b64enc *e, const char *in, size_t len,
    char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		e->hold[e->nhold++] = (unsigned char)in[i];
		if (e->nhold == 3) {
			o += b64_quad(e, e->hold, 3, out + o);
			e->nhold = 0;
		}
	}
	return o;
}

/* Flush with "=" padding and end the last line with CRLF (out: 8). */
size_t
mime_b64enc_end(struct mime_b64enc *e, char *out)
{
	size_t o = 0;

	if (e->nhold > 0)
		o += b64_quad(e, e->hold, e->nhold, out);
	if (e->col > 0) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	mime_b64enc_init(e);
	return o;
}

/* Start a base64 decoder. */
void
mime_b64dec_init(struct mime_b64dec *d)
{
	memset(d, 0, sizeof(*d));
}

/* Value of each byte in the base64 alphabet, -1 for anything else. */
static const signed char b64tab[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* Each character's value already in its place within a group of four
 * (b64grp[k][c]: the k-th character of a group), bit 24 set for any
 * character outside the alphabet: a group decodes with four loads and a
 * test.  Made once, from b64chars. */
static uint32_t b64grp[4][256];
static pthread_once_t b64grp_once = PTHREAD_ONCE_INIT;

/* Fill b64grp. */
static void
b64grp_init(void)
{
	int c, k;

	for (k = 0; k < 4; k++)
		for (c = 0; c < 256; c++)
			b64grp[k][c] = b64tab[c] < 0 ? 1u << 24 :
			    (uint32_t)b64tab[c] << (18 - 6 * k);
}

/*
 * Decode base64; characters outside the alphabet are skipped (RFC 2045
 * 6.8), and "=" ends the data.  out needs len + 3 bytes.  Returns bytes
 * written.  Whole groups of four alphabet characters (nearly all of a
 * body: lines are multiples of four) are decoded without the
 * per-character state; anything else, line ends included, goes one
 * character at a time.
 */
size_t
mime_b64dec_feed(struct mime_b64dec *d, const char *in, size_t len,
    char *out)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t i = 0, o = 0;
	uint32_t w;
	int v;

	(void)pthread_once(&b64grp_once, b64grp_init);
	while (i < len && !d->done) {
		if (d->n == 0) {
			while (i + 4 <= len && ((w = b64grp[0][u[i]] |
			    b64grp[1][u[i + 1]] | b64grp[2][u[i + 2]] |
			    b64grp[3][u[i + 3]]) >> 24) == 0) {
				out[o++] = (char)(w >> 16 & 0xff);
				out[o++] = (char)(w >> 8 & 0xff);
				out[o++] = (char)(w & 0xff);
				i += 4;
			}
			if (i == len)
				break;
		}
		if (u[i] == '=') {
			d->done = 1;
			break;
		}
		if ((v = b64tab[u[i++]]) < 0)
			continue;
		d->acc = d->acc << 6 | (unsigned)v;
		if (++d->n == 4) {
			out[o++] = (char)(d->acc >> 16 & 0xff);
			out[o++] = (char)(d->acc >> 8 & 0xff);
			out[o++] = (char)(d->acc & 0xff);
			d->acc = 0;
			d->n = 0;
		}
	}
	return o;
}

/* Flush a partial group (2 or 3 characters; 1 is dropped).  out: 2. */
size_t
mime_b64dec_end(struct mime_b64dec *d, char *out)
{
	size_t o = 0;

	if (d->n == 2)
		out[o++] = (char)(d->acc >> 4 & 0xff);
	else if (d->n == 3) {
		out[o++] = (char)(d->acc >> 10 & 0xff);
		out[o++] = (char)(d->acc >> 2 & 0xff);
	}
	mime_b64dec_init(d);
	return o;
}

/* Start a quoted-printable encoder (text: line ends become hard breaks). */
void
mime_qpenc_init(struct mime_qpenc *e)
{
	memset(e, 0, sizeof(*e));
}

/* Room needed to encode len bytes in one feed plus end. */
size_t
mime_qpenc_max(size_t len)
{
	/* Worst case "=XX" per byte plus a soft break every 24 bytes. */
	return len * 3 + (len / 20 + 2) * 3 + 16;
}

/*
 * Write one input byte as a literal or as =XX.  Every "F" at the start of
 * an output line is encoded, so no line can start with "From ", and so is
 * a "-" right after a soft break: text from the middle of a line must not
 * start one with "--", where it could be read as the enclosing multipart's
 * boundary (a sender's "...--b" would end the part and open another whose
 * header fields are the sender's next lines).
 */
static size_t
qp_put(struct mime_qpenc *e, unsigned char c, int lit, char *out)
{
	size_t o = 0;
	int n = lit ? 1 : 3, soft = 0;

	if (e->col + n > QP_LINE - 1) {
		out[o++] = '=';
		out[o++] = '\r';
		out[o++] = '\n';
		e->col = 0;
		soft = 1;
	}
	if (e->col == 0 && (c == 'F' || (soft && c == '-')))
		lit = 0, n = 3;
	if (lit)
		out[o++] = (char)c;
	else {
		out[o++] = '=';
		out[o++] = hexchars[c >> 4];
		out[o++] = hexchars[c & 15];
	}
	e->col += n;
	return o;
}

/* Write a held blank: literal if more follows on the line, else =20/=09. */
static size_t
qp_flush_ws(struct mime_qpenc *e, int eol, char *out)
{
	size_t o = 0;

	if (e->ws != 0)
		o = qp_put(e, (unsigned char)e->ws, !eol, out);
	e->ws = 0;
	return o;
}

/* One byte that is not part of a line end. */
static size_t
qp_byte(struct mime_qpenc *e, unsigned char c, char *out)
{
	size_t o;

	o = qp_flush_ws(e, 0, out);
	if (c == ' ' || c == '\t')
		e->ws = c;
	else
		o += qp_put(e, c, c >= 33 && c <= 126 && c != '=', out + o);
	return o;
}

/*
 * Encode text as quoted-printable: CRLF and bare LF become CRLF hard
 * breaks, a bare CR becomes =0D, a blank before a line end =20 or =09.
 * Lines are at most 76 characters.  out needs mime_qpenc_max(len).
 */
size_t
mime_qpenc_feed(struct mime_qpenc *e, const char *in, size_t len,
    char *out)
{
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if (e->cr) {
			e->cr = 0;
			if (c != '\n')
				o += qp_byte(e, '\r', out + o);
		}
		if (c == '\r')
			e->cr = 1;
		else if (c == '\n') {
			o += qp_flush_ws(e, 1, out + o);
			out[o++] = '\r';
			out[o++] = '\n';
			e->col = 0;
		} else
			o += qp_byte(e, c, out + o);
	}
	return o;
}

/* Finish: a held CR or blank is encoded; no line end is added.  out: 16. */
size_t
mime_qpenc_end(struct mime_qpenc *e, char *out)
{
	size_t o = 0;

	if (e->cr)
		o += qp_byte(e, '\r', out);
	o += qp_flush_ws(e, 1, out + o);
	mime_qpenc_init(e);
	return o;
}

/* Start a quoted-printable decoder. */
void
mime_qpdec_init(struct mime_qpdec *d)
{
	memset(d, 0, sizeof(*d));
}

/* Write the held blanks: they were not trailing after all. */
static size_t
qd_flush_ws(struct mime_qpdec *d, char *out)
{
	size_t n = d->nws;

	memcpy(out, d->ws, n);
	d->nws = 0;
	return n;
}

/* One byte in state QD_TEXT. */
static size_t
qd_text(struct mime_qpdec *d, char c, char *out)
{
	size_t o = 0;

	if (c == ' ' || c == '\t') {
		if (d->nws == sizeof(d->ws))
			o += qd_flush_ws(d, out);
		d->ws[d->nws++] = c;
		return o;
	}
	if (c == '\r') {
		d->state = QD_CR;
		return 0;
	}
	if (c == '\n') {
		/* RFC 2045 6.7 (3): trailing blanks are transport padding. */
		d->nws = 0;
		out[o++] = '\n';
		return o;
	}
	o += qd_flush_ws(d, out);
	if (c == '=')
		d->state = QD_EQ;
	else
		out[o++] = c;
	return o;
}

/* One byte after "=" (states QD_EQ to QD_EQCR); may hand c back. */
static size_t
qd_escape(struct mime_qpdec *d, char c, char *out, int *again)
{
	size_t o = 0;

	*again = 0;
	if (d->state == QD_EQ && hexval(c) >= 0) {
		d->hex = c;
		d->state = QD_EQ1;
		return 0;
	}
	if (d->state == QD_EQ1 && hexval(c) >= 0) {
		out[o++] = (char)(hexval(d->hex) << 4 | hexval(c));
		d->state = QD_TEXT;
		return o;
	}
	if (d->state != QD_EQ1 && (c == ' ' || c == '\t') &&
	    d->state != QD_EQCR) {
		d->state = QD_EQWS;
		return 0;
	}
	if (d->state != QD_EQ1 && c == '\r' && d->state != QD_EQCR) {
		d->state = QD_EQCR;
		return 0;
	}
	if (d->state != QD_EQ1 && c == '\n') {
		d->state = QD_TEXT;     /* soft line break */
		return 0;
	}
	/* Not an escape: keep the "=" (and a lone hex digit) as text. */
	out[o++] = '=';
	if (d->state == QD_EQ1)
		out[o++] = d->hex;
	d->state = QD_TEXT;
	*again = 1;
	return o;
}

/*
 * Decode quoted-printable: soft breaks vanish, =XX (either case) becomes
 * a byte, blanks before a line end are dropped, line ends are kept as
 * they are.  Malformed "=" sequences pass through.  out needs len + 80.
 */
size_t
mime_qpdec_feed(struct mime_qpdec *d, const char *in, size_t len, char *out)
{
	size_t i, o = 0;
	int again;
	char c;

	for (i = 0; i < len; i++) {
		c = in[i];
		if (d->state == QD_CR) {
			d->state = QD_TEXT;
			if (c == '\n') {
				d->nws = 0;
				out[o++] = '\r';
				out[o++] = '\n';
				continue;
			}
			o += qd_flush_ws(d, out + o);
			out[o++] = '\r';
		}
		if (d->state == QD_TEXT) {
			o += qd_text(d, c, out + o);
			continue;
		}
		o += qd_escape(d, c, out + o, &again);
		if (again)
			o += qd_text(d, c, out + o);
	}
	return o;
}

/* Finish: a dangling "=" is kept, trailing blanks dropped.  out: 80. */
size_t
mime_qpdec_end(struct mime_qpdec *d, char *out)
{
	size_t o = 0;

	if (d->state == QD_CR) {
		o += qd_flush_ws(d, out);
		out[o++] = '\r';
	} else if (d->state == QD_EQ || d->state == QD_EQWS ||
	    d->state == QD_EQCR)
		out[o++] = '=';
	else if (d->state == QD_EQ1) {
		out[o++] = '=';
		out[o++] = d->hex;
	}
	mime_qpdec_init(d);
	return o;
}

/* Base64 of a buffer, 76-character CRLF lines; NUL-terminated. */
char *
mime_b64_encode(const void *in, size_t len, size_t *outlen)
{
	struct mime_b64enc e;
	char *out = xmalloc(mime_b64enc_max(len) + 1);
	size_t o;

	mime_b64enc_init(&e);
	o = mime_b64enc_feed(&e, in, len, out);
	o += mime_b64enc_end(&e, out + o);
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Decoded base64 of a buffer (lenient, see mime_b64dec_feed). */
unsigned char *
mime_b64_decode(const char *in, size_t len, size_t *outlen)
{
	struct mime_b64dec d;
	char *out = xmalloc(len + 3);
	size_t o;

	mime_b64dec_init(&d);
	o = mime_b64dec_feed(&d, in, len, out);
	o += mime_b64dec_end(&d, out + o);
	*outlen = o;
	return (unsigned char *)out;
}

/* Quoted-printable of a text; NUL-terminated. */
char *
mime_qp_encode(const char *in, size_t len, size_t *outlen)
{
	struct mime_qpenc e;
	char *out = xmalloc(mime_qpenc_max(len) + 1);
	size_t o;

	mime_qpenc_init(&e);
	o = mime_qpenc_feed(&e, in, len, out);
	o += mime_qpenc_end(&e, out + o);
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Decoded quoted-printable of a buffer. */
char *
mime_qp_decode(const char *in, size_t len, size_t *outlen)
{
	struct mime_qpdec d;
	char *out = xmalloc(len + 84);
	size_t o;

	mime_qpdec_init(&d);
	o = mime_qpdec_feed(&d, in, len, out);
	o += mime_qpdec_end(&d, out + o);
	*outlen = o;
	return out;
}

/* One RFC 2047 encoded-word's text (B or Q) in UTF-8, appended to out;
 * -1 when it is none we read (charsets: UTF-8, US-ASCII, ISO-8859-1). */
static int
word2047(const char *cs, size_t cslen, char enc, const char *t,
    size_t tlen, char *out, size_t *o, size_t max)
{
	unsigned char *raw;
	size_t n, i;
	int latin1;

	if (cslen == 5 && strncasecmp(cs, "utf-8", 5) == 0)
		latin1 = 0;
	else if ((cslen == 8 && strncasecmp(cs, "us-ascii", 8) == 0) ||
	    (cslen == 10 && strncasecmp(cs, "iso-8859-1", 10) == 0))
		latin1 = 1;
	else
		return -1;
	if (enc == 'b' || enc == 'B')
		raw = mime_b64_decode(t, tlen, &n);
	else if (enc == 'q' || enc == 'Q') {
		char *q = xmalloc(tlen + 1);

		for (i = 0; i < tlen; i++)
			q[i] = t[i] == '_' ? ' ' : t[i];
		raw = (unsigned char *)mime_qp_decode(q, tlen, &n);
		free(q);
	} else
		return -1;
	if (raw == NULL)
		return -1;
	for (i = 0; i < n && *o + 2 < max; i++) {
		if (latin1 && raw[i] >= 0x80) {
			out[(*o)++] = (char)(0xc0 | (raw[i] >> 6));
			out[(*o)++] = (char)(0x80 | (raw[i] & 0x3f));
		} else
			out[(*o)++] = (char)raw[i];
	}
	free(raw);
	return 0;
}

/* A field value with its RFC 2047 encoded-words decoded (others kept),
 * into out (at most max bytes with the NUL). */
void
mime_decode2047(const char *v, char *out, size_t max)
{
	const char *p = v, *q1, *q2, *end, *ws;
	size_t o = 0, save;
	int prev_word = 0;

	while (*p != '\0' && o + 1 < max) {
		if (p[0] == '=' && p[1] == '?' &&
		    (q1 = strchr(p + 2, '?')) != NULL && q1[1] != '\0' &&
		    q1[2] == '?' && (end = strstr(q1 + 3, "?=")) != NULL) {
			q2 = q1 + 2;
			save = o;
			if (word2047(p + 2, (size_t)(q1 - p - 2), q1[1],
			    q2 + 1, (size_t)(end - q2 - 1), out, &o,
			    max) == 0) {
				p = end + 2;
				prev_word = 1;
				continue;
			}
			o = save;
		}
		/* blanks between two encoded-words are dropped */
		if (prev_word && (*p == ' ' || *p == '\t')) {
			for (ws = p; *ws == ' ' || *ws == '\t'; ws++)
				;
			if (ws[0] == '=' && ws[1] == '?') {
				p = ws;
				continue;
			}
		}
		prev_word = 0;
		out[o++] = *p++;
	}
	out[o] = '\0';
}
