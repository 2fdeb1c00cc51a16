/* test_smtp_data.c: golden tests for the DATA end-of-data detector. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "proto/smtp_data.h"

#define MAXIN   4096

struct result {
	char    out[MAXIN];
	size_t  outlen;
	size_t  consumed;
	int     done;
	unsigned flags;
};

static size_t maxline = 998;

/* Feed `in` in chunks ending at the offsets in cuts[] (ascending). */
static void
feed_split(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    struct result *r)
{
	struct smtp_data_rd rd;
	size_t off = 0, end, c, olen, k;
	char out[MAXIN];

	memset(r, 0, sizeof(*r));
	smtp_data_init(&rd, maxline);
	for (k = 0; k <= ncuts && !r->done; k++) {
		end = k < ncuts ? cuts[k] : len;
		c = smtp_data_feed(&rd, in + off, end - off, out, &olen,
		    &r->done);
		if (olen > end - off)
			golden_fail("output %zu > input %zu", olen, end - off);
		memcpy(r->out + r->outlen, out, olen);
		r->outlen += olen;
		if (!r->done && c != end - off)
			golden_fail("consumed %zu of %zu without done", c,
			    end - off);
		off += c;
	}
	r->consumed = off;
	r->flags = rd.flags;
}

/* Whether two runs agree on everything the caller sees. */
static int
same(const struct result *a, const struct result *b)
{
	return a->outlen == b->outlen && a->consumed == b->consumed &&
	    a->done == b->done && a->flags == b->flags &&
	    memcmp(a->out, b->out, a->outlen) == 0;
}

/* Check split invariance: every 1-byte split, every 2-way, random 3-way. */
static void
check_splits(const char *line, const char *in, size_t len,
    const struct result *whole)
{
	static size_t cuts[MAXIN];
	struct result r;
	size_t i, k;
	unsigned seed = 1;

	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	feed_split(in, len, cuts, len ? len - 1 : 0, &r);
	if (!same(whole, &r))
		golden_fail("1-byte feeds differ: %s", line);
	for (i = 1; i < len; i++) {
		cuts[0] = i;
		feed_split(in, len, cuts, 1, &r);
		if (!same(whole, &r))
			golden_fail("split at %zu differs: %s", i, line);
	}
	for (k = 0; k < 200 && len > 2; k++) {
		cuts[0] = golden_rand(&seed) % len;
		cuts[1] = cuts[0] + golden_rand(&seed) % (len - cuts[0]);
		feed_split(in, len, cuts, 2, &r);
		if (!same(whole, &r))
			golden_fail("split at %zu,%zu differs: %s", cuts[0],
			    cuts[1], line);
	}
}

/* Print SMTP_DATA_* flags by name. */
static void
print_flags(FILE *out, unsigned f)
{
	static const struct { unsigned f; const char *name; } names[] = {
		{ SMTP_DATA_BARE_LF, "BARE_LF" },
		{ SMTP_DATA_BARE_CR, "BARE_CR" },
		{ SMTP_DATA_LONG_LINE, "LONG_LINE" }, { SMTP_DATA_NUL, "NUL" },
		{ SMTP_DATA_8BIT, "8BIT" },
	};
	size_t i;
	const char *sep = "";

	if (f == 0)
		fputs("-", out);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (f & names[i].f) {
			fprintf(out, "%s%s", sep, names[i].name);
			sep = ",";
		}
	}
}

/* One case: escaped wire bytes, or "!maxline N". */
static void
data_case(const char *line, FILE *out)
{
	static char in[MAXIN];
	struct result whole;
	size_t len;

	if (strncmp(line, "!maxline ", 9) == 0) {
		maxline = strtoul(line + 9, NULL, 10);
		fprintf(out, "%s\n", line);
		return;
	}
	len = golden_unescape(line, in);
	feed_split(in, len, NULL, 0, &whole);
	check_splits(line, in, len, &whole);
	fprintf(out, "%s\n  => done=%d consumed=%zu/%zu flags=", line,
	    whole.done, whole.consumed, len);
	print_flags(out, whole.flags);
	fputs(" out=", out);
	golden_escape(out, whole.out, whole.outlen);
	fputs("\n", out);
}

int
main(void)
{
	return golden_main("smtp_data", data_case);
}
