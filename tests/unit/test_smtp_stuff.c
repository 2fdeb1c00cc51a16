/* test_smtp_stuff.c: golden tests for outbound dot-stuffing. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "proto/smtp_data.h"

#define MAXIN   2048

/* Stuff `in` fed in two chunks split at `cut`; returns the wire length. */
static size_t
stuff_split(const char *in, size_t len, size_t cut, char *wire)
{
	struct smtp_stuff st;
	size_t n;

	smtp_stuff_init(&st);
	n = smtp_stuff_feed(&st, in, cut, wire);
	if (n > 2 * cut + 2)
		golden_fail("feed wrote %zu for %zu bytes", n, cut);
	n += smtp_stuff_feed(&st, in + cut, len - cut, wire + n);
	n += smtp_stuff_end(&st, wire + n);
	return n;
}

/* Stuff `in` one byte a call. */
static size_t
stuff_bytes(const char *in, size_t len, char *wire)
{
	struct smtp_stuff st;
	size_t n = 0, i, k;

	smtp_stuff_init(&st);
	for (i = 0; i < len; i++) {
		k = smtp_stuff_feed(&st, in + i, 1, wire + n);
		if (k > 4)
			golden_fail("1-byte feed wrote %zu", k);
		n += k;
	}
	n += smtp_stuff_end(&st, wire + n);
	return n;
}

/* Reference model: every line end made CRLF, a final CRLF added. */
static size_t
normalize(const char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			out[o++] = '\r';
			out[o++] = '\n';
		} else
			out[o++] = in[i];
	}
	if (o > 0 && out[o - 1] != '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

/* The wire form must read back, through the inbound reader, as the input. */
static void
check_roundtrip(const char *line, const char *in, size_t len,
    const char *wire, size_t wlen)
{
	static char back[4 * MAXIN], norm[4 * MAXIN];
	struct smtp_data_rd rd;
	size_t blen, nlen, c;
	int done;

	smtp_data_init(&rd, 0);
	c = smtp_data_feed(&rd, wire, wlen, back, &blen, &done);
	nlen = normalize(in, len, norm);
	if (!done || c != wlen)
		golden_fail("wire form does not end exactly once: %s", line);
	if (rd.flags & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF))
		golden_fail("wire form has bare CR/LF: %s", line);
	if (blen != nlen || memcmp(back, norm, nlen) != 0)
		golden_fail("round trip differs: %s", line);
}

/* One case: escaped message bytes. */
static void
stuff_case(const char *line, FILE *out)
{
	static char in[MAXIN], wire[4 * MAXIN + 8], alt[4 * MAXIN + 8];
	size_t len, wlen, alen, cut;

	len = golden_unescape(line, in);
	wlen = stuff_split(in, len, len, wire);
	alen = stuff_bytes(in, len, alt);
	if (alen != wlen || memcmp(alt, wire, wlen) != 0)
		golden_fail("1-byte feeds differ: %s", line);
	for (cut = 0; cut <= len; cut++) {
		alen = stuff_split(in, len, cut, alt);
		if (alen != wlen || memcmp(alt, wire, wlen) != 0)
			golden_fail("split at %zu differs: %s", cut, line);
	}
	check_roundtrip(line, in, len, wire, wlen);
	fprintf(out, "%s\n  => ", line);
	golden_escape(out, wire, wlen);
	fputs("\n", out);
}

int
main(void)
{
	return golden_main("smtp_stuff", stuff_case);
}
