/* fuzz_smtp_data.c: libFuzzer harness for the DATA reader and stuffer. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	char    *out;
	size_t   outlen;
	size_t   consumed;
	int      done;
	unsigned flags;
};

/*
 * Read `in` in chunks of at most `step` bytes, starting with one of
 * `first` bytes (0: no special first chunk).  Aborts on a contract breach.
 */
static void
read_chunks(const char *in, size_t len, size_t first, size_t step,
    struct run *r)
{
	struct smtp_data_rd rd;
	size_t off = 0, n, c, olen;
	char *out;

	if ((out = malloc(len + 1)) == NULL)
		abort();
	r->outlen = 0;
	r->done = 0;
	smtp_data_init(&rd, 16);
	while (off < len && !r->done) {
		n = first != 0 && off == 0 ? first : step;
		if (n > len - off)
			n = len - off;
		c = smtp_data_feed(&rd, in + off, n, out, &olen, &r->done);
		if (olen > n || c > n || (!r->done && c != n))
			abort();
		memcpy(r->out + r->outlen, out, olen);
		r->outlen += olen;
		off += c;
	}
	r->consumed = off;
	r->flags = rd.flags;
	free(out);
}

/* The reader one byte at a time, as it was first written (maxline 16):
 * what smtp_data_feed's runs must give, whole input at once. */
static void
ref_read(const char *in, size_t len, struct run *r)
{
	enum { BOL, TEXT, CR, DOT, DOTCR, DONE } st = BOL;
	size_t i, linelen = 0;
	unsigned char c;

	r->outlen = 0;
	r->flags = 0;
#define COUNT(ch) do {							\
	linelen++;							\
	if (linelen > 16)						\
		r->flags |= SMTP_DATA_LONG_LINE;			\
	if ((ch) == '\0')						\
		r->flags |= SMTP_DATA_NUL;				\
	else if ((ch) >= 0x80)						\
		r->flags |= SMTP_DATA_8BIT;				\
	else if ((ch) == '\n')						\
		r->flags |= SMTP_DATA_BARE_LF;				\
} while (0)
#define TEXTB(ch) do {							\
	if (st == CR) {							\
		if ((ch) == '\n') {					\
			st = BOL;					\
			linelen = 0;					\
			r->out[r->outlen++] = (char)(ch);		\
			break;						\
		}							\
		r->flags |= SMTP_DATA_BARE_CR;				\
		COUNT('\r');						\
	}								\
	if ((ch) == '\r')						\
		st = CR;						\
	else {								\
		st = TEXT;						\
		COUNT(ch);						\
	}								\
	r->out[r->outlen++] = (char)(ch);				\
} while (0)
	for (i = 0; i < len && st != DONE; i++) {
		c = (unsigned char)in[i];
		switch (st) {
		case BOL:
			if (c == '.') {
				st = DOT;
				COUNT(c);
				break;
			}
			st = TEXT;
			TEXTB(c);
			break;
		case DOT:
			if (c == '\r') {
				st = DOTCR;
				break;
			}
			st = TEXT;
			TEXTB(c);
			break;
		case DOTCR:
			if (c == '\n') {
				st = DONE;
				break;
			}
			r->flags |= SMTP_DATA_BARE_CR;
			COUNT('\r');
			st = TEXT;
			TEXTB(c);
			break;
		default:
			TEXTB(c);
			break;
		}
	}
#undef COUNT
#undef TEXTB
	r->consumed = i;
	r->done = st == DONE;
}

/* Whether two runs saw the same thing. */
static int
same(const struct run *a, const struct run *b)
{
	return a->outlen == b->outlen && a->consumed == b->consumed &&
	    a->done == b->done && a->flags == b->flags &&
	    memcmp(a->out, b->out, a->outlen) == 0;
}

/* The stuffer one byte at a time, as it was first written: what
 * smtp_stuff_feed's runs must give, byte for byte. */
static size_t
stuff_ref(const char *in, size_t len, char *out)
{
	enum { BOL, TEXT, CR } s = BOL;
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s == CR) {
			out[o++] = '\r';
			out[o++] = '\n';
			s = BOL;
			if (in[i] == '\n')
				continue;
		}
		if (in[i] == '\r')
			s = CR;
		else if (in[i] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			s = BOL;
		} else {
			if (in[i] == '.' && s == BOL)
				out[o++] = '.';
			out[o++] = in[i];
			s = TEXT;
		}
	}
	if (s != BOL) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	return o;
}

/* Stuff `in`, read it back: it must end exactly at the end, without flags;
 * and it must be what stuff_ref() makes. */
static void
roundtrip(const char *in, size_t len, size_t cut)
{
	struct smtp_stuff st;
	struct run r;
	char *wire, *ref;
	size_t n;

	if ((wire = malloc(2 * len + 16)) == NULL ||
	    (r.out = malloc(2 * len + 16)) == NULL)
		abort();
	smtp_stuff_init(&st);
	n = smtp_stuff_feed(&st, in, cut, wire);
	n += smtp_stuff_feed(&st, in + cut, len - cut, wire + n);
	n += smtp_stuff_end(&st, wire + n);
	if ((ref = malloc(2 * len + 16)) == NULL)
		abort();
	if (stuff_ref(in, len, ref) != n || memcmp(ref, wire, n) != 0)
		abort();
	free(ref);
	read_chunks(wire, n, cut % 7 + 1, 7, &r);
	if (!r.done || r.consumed != n ||
	    (r.flags & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF)))
		abort();
	free(r.out);
	free(wire);
}

/*
 * The first two bytes choose a split point; the rest is the wire input.
 * Whole, split in two, and byte-by-byte feeding must agree exactly.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, split, bytes, ref;
	const char *in;
	size_t len, cut;

	if (size < 2 || size > 65536)
		return 0;
	cut = ((size_t)data[0] << 8 | data[1]);
	in = (const char *)data + 2;
	len = size - 2;
	cut = len ? cut % (len + 1) : 0;
	if ((whole.out = malloc(len + 1)) == NULL ||
	    (split.out = malloc(len + 1)) == NULL ||
	    (bytes.out = malloc(len + 1)) == NULL ||
	    (ref.out = malloc(len + 1)) == NULL)
		abort();
	read_chunks(in, len, 0, len ? len : 1, &whole);
	read_chunks(in, len, cut, len ? len : 1, &split);
	read_chunks(in, len, 0, 1, &bytes);
	ref_read(in, len, &ref);
	if (!same(&whole, &split) || !same(&whole, &bytes) ||
	    !same(&whole, &ref))
		abort();
	free(ref.out);
	roundtrip(in, len, cut);
	free(whole.out);
	free(split.out);
	free(bytes.out);
	return 0;
}
