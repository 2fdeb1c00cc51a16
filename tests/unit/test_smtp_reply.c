/* test_smtp_reply.c: golden tests for the SMTP reply parser. */
#include "autoconfig.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "golden.h"
#include "proto/smtp_reply.h"

/* Print EXT_* flags by name. */
static void
print_ext(FILE *out, unsigned ext)
{
	static const struct { unsigned f; const char *name; } names[] = {
		{ EXT_PIPELINING, "PIPELINING" }, { EXT_SIZE, "SIZE" },
		{ EXT_8BITMIME, "8BITMIME" }, { EXT_STARTTLS, "STARTTLS" },
		{ EXT_ENHANCED, "ENHANCEDSTATUSCODES" }, { EXT_DSN, "DSN" },
		{ EXT_SMTPUTF8, "SMTPUTF8" }, { EXT_CHUNKING, "CHUNKING" },
	};
	size_t i;
	const char *sep = "";

	if (ext == 0)
		fputs("-", out);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (ext & names[i].f) {
			fprintf(out, "%s%s", sep, names[i].name);
			sep = ",";
		}
	}
}

/*
 * One case: the reply's lines, escaped and joined by "\n"; each is fed in
 * turn until the parser says complete or malformed.  A trailing "\n"
 * followed by more lines feeds them to the same struct (a second reply).
 */
static void
reply_case(const char *line, FILE *out)
{
	static char buf[8192];
	struct smtp_reply r;
	size_t len, off = 0, n;
	int ret;
	const char *sep = "", *nl;

	len = golden_unescape(line, buf);
	smtp_reply_init(&r);
	fprintf(out, "%s\n  => feed=", line);
	while (off <= len) {
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		ret = smtp_reply_feed(&r, buf + off, n);
		fprintf(out, "%s%d", sep, ret);
		sep = ",";
		off += n + 1;
		if (ret == -1)
			break;
	}
	fprintf(out, " code=%d enh=%s nlines=%d ext=", r.code,
	    r.enh[0] ? r.enh : "-", r.nlines);
	print_ext(out, r.ext);
	fprintf(out, " size=%" PRIu64 " text=", r.size_limit);
	golden_escape(out, r.text, strlen(r.text));
	fputs("\n", out);
}

int
main(void)
{
	return golden_main("smtp_reply", reply_case);
}
