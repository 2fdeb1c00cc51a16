/* test_xforward.c: golden tests for the XFORWARD codec (proto/xforward.c). */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "golden.h"
#include "proto/xforward.h"

/* Print the attributes of a set. */
static void
print_set(FILE *out, unsigned set)
{
	int a;

	for (a = 0; a < XF_NATTR; a++)
		if (set & XF_BIT(a))
			fprintf(out, " %s", xforward_attr_name(a));
}

/* Print what xf knows, then the lines we would send to a server offering
 * `offered`, each parsed back. */
static void
print_xf(FILE *out, const struct xforward *xf, unsigned offered)
{
	char line[XF_LINE_MAX + 1], err[200];
	struct xforward back;
	int a, pos = 0;

	for (a = 0; a < XF_NATTR; a++)
		if (xf->val[a][0] != '\0')
			fprintf(out, "  %s=%s\n", xforward_attr_name(a),
			    xf->val[a]);
	memset(&back, 0, sizeof(back));
	while (xforward_format(xf, offered, &pos, line, sizeof(line))) {
		fprintf(out, "  > %s (%zu bytes)\n", line, strlen(line));
		if (strlen(line) > XF_LINE_MAX)
			golden_fail("line over %d bytes", XF_LINE_MAX);
		if (xforward_parse(&back, line + 9, err, sizeof(err)) != 0)
			golden_fail("our own line does not parse: %s", err);
	}
	for (a = 0; a < XF_NATTR; a++)
		if ((offered & XF_BIT(a)) && strcmp(back.val[a], xf->val[a]))
			golden_fail("%s does not survive the round trip",
			    xforward_attr_name(a));
}

/*
 * "ehlo ARGS": the set an EHLO line offers.  "cmd ARGS": one command into
 * an empty state, then what we would send to a server offering everything.
 * "to ATTR,ATTR ARGS": the same to a server offering only those.
 */
static void
xforward_case(const char *line, FILE *out)
{
	static char buf[8192];
	struct xforward xf;
	char err[200], *sp;
	unsigned offered = ~0u;
	const char *args;

	buf[golden_unescape(line, buf)] = '\0';
	memset(&xf, 0, sizeof(xf));
	fprintf(out, "%s\n", line);
	if (strncmp(buf, "ehlo ", 5) == 0) {
		fputs("  =>", out);
		print_set(out, xforward_ehlo_attrs(buf + 5, strlen(buf + 5)));
		fputs("\n", out);
		return;
	}
	if (strncmp(buf, "to ", 3) == 0) {
		if ((sp = strchr(buf + 3, ' ')) == NULL) {
			golden_fail("to: no arguments: %s", line);
			return;
		}
		*sp = '\0';
		for (char *c = buf + 3; *c; c++)
			if (*c == ',')
				*c = ' ';
		offered = xforward_ehlo_attrs(buf + 3, strlen(buf + 3));
		args = sp + 1;
	} else if (strncmp(buf, "cmd ", 4) == 0)
		args = buf + 4;
	else {
		golden_fail("unknown case: %s", line);
		return;
	}
	if (xforward_parse(&xf, args, err, sizeof(err)) == -1) {
		fprintf(out, "  => error: %s\n", err);
		return;
	}
	fputs("  => ok\n", out);
	print_xf(out, &xf, offered);
}

int
main(void)
{
	return golden_main("xforward", xforward_case);
}
