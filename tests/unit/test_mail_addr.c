/* test_mail_addr.c: golden tests for the From as a reader takes it
 * (proto/mail_addr.c). */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "golden.h"
#include "proto/mail_addr.h"

/* The From fields of one side: values separated by newlines. */
static void
read_side(char *s, struct mail_from *f, FILE *out, const char *label)
{
	char *nl;

	memset(f, 0, sizeof(*f));
	for (;;) {
		if ((nl = strchr(s, '\n')) != NULL)
			*nl = '\0';
		mail_from_add(f, s);
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	fprintf(out, "  %s: fields=%d boxes=%d spoof=%d first=", label,
	    f->fields, f->boxes, f->spoof);
	if (f->have)
		golden_escape(out, f->addr, strlen(f->addr));
	else
		fputs("(none)", out);
	fputs("\n", out);
}

/*
 * "key ADDR": mail_addr_key() of ADDR.
 * "OUTER" or "OUTER || INNER": the From field values of a message (and
 * of its signed entity), several separated by \n; what they say, and the
 * verdict's reasons.
 */
static void
from_case(const char *line, FILE *out)
{
	static char buf[16384];
	struct mail_from o, i;
	const char *why;
	char *sep;

	buf[golden_unescape(line, buf)] = '\0';
	fprintf(out, "%s\n", line);
	if (strncmp(buf, "key ", 4) == 0) {
		char kb[MAIL_ADDR_MAX];
		const char *k = mail_addr_key(buf + 4, kb, sizeof(kb));

		fputs("  key: ", out);
		golden_escape(out, k, strlen(k));
		fprintf(out, "%s\n", k == buf + 4 ? " (as it stands)" : "");
		return;
	}
	if ((sep = strstr(buf, " || ")) != NULL)
		*sep = '\0';
	read_side(buf, &o, out, "outer");
	why = mail_from_ambiguous(&o);
	fprintf(out, "  ambiguous: %s\n", why != NULL ? why : "no");
	if (sep == NULL)
		return;
	read_side(sep + 4, &i, out, "inner");
	why = mail_from_inner(&o, &i);
	fprintf(out, "  inner: %s\n", why != NULL ? why : "agrees");
}

int
main(void)
{
	return golden_main("mail_addr", from_case);
}
