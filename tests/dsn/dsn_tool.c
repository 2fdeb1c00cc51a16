/* dsn_tool.c: build one DSN with proto/dsn.c for tests/dsn/t_parse.sh.
 *
 * dsn_tool [-f] [-e ENVID] [-s SENDER] [-m FROM_MTA] [-n NOW]
 *          -r 'RCPT|ORCPT|ACTION|STATUS|REMOTE|DIAG' ... [ORIGINAL]
 *
 * -f: RET=FULL.  Each -r is one recipient; empty ORCPT, REMOTE or DIAG
 * fields are absent, ACTION is failed/delayed/delivered/relayed/expanded,
 * "\n" in DIAG is a line break.  The DSN goes to stdout; exit 1 with the
 * reason on stderr when dsn_build refuses, 2 on usage errors. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/dsn.h"
#include "golden.h"

#define MAXRCPT 16

/* Next "|"-separated field of s, NULL when empty. */
static char *
field(char **s)
{
	char *f = *s, *e;

	if (f == NULL)
		return NULL;
	if ((e = strchr(f, '|')) != NULL) {
		*e = '\0';
		*s = e + 1;
	} else
		*s = NULL;
	return *f == '\0' ? NULL : f;
}

/* Turn the two characters "\n" into CRLF-free line breaks. */
static void
unescape(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*o++ = '\n';
			s++;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

/* Parse one -r argument. */
static int
parse_rcpt(char *arg, struct dsn_rcpt *r)
{
	static const char *names[] = { "failed", "delayed", "delivered",
	    "relayed", "expanded" };
	char *act;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->rcpt = field(&arg);
	r->orcpt = field(&arg);
	act = field(&arg);
	r->status = field(&arg);
	r->remote_mta = field(&arg);
	r->diag = field(&arg);
	if (r->diag != NULL)
		unescape((char *)r->diag);
	if (act == NULL)
		return -1;
	for (i = 0; i < 5; i++)
		if (strcmp(act, names[i]) == 0)
			break;
	if (i == 5)
		return -1;
	r->action = (enum dsn_action)i;
	r->last_attempt = 1740830400 - 60;
	if (r->action == DSN_DELAYED)
		r->retry_until = 1740830400 + 4 * 86400;
	return 0;
}

int
main(int argc, char **argv)
{
	struct dsn_msg m;
	struct dsn_rcpt r[MAXRCPT];
	size_t n = 0, len;
	char err[256], *out;
	int ch;

	memset(&m, 0, sizeof(m));
	m.reporting_mta = "gw.example";
	m.sender = "alice@example.org";
	m.now = 1740830400;
	m.arrival = m.now - 3600;
	while ((ch = getopt(argc, argv, "fe:s:m:n:r:")) != -1) {
		switch (ch) {
		case 'f':
			m.ret_full = 1;
			break;
		case 'e':
			m.envid = optarg;
			break;
		case 's':
			m.sender = optarg;
			break;
		case 'm':
			m.from_mta = optarg;
			break;
		case 'n':
			m.now = strtoll(optarg, NULL, 10);
			break;
		case 'r':
			if (n == MAXRCPT || parse_rcpt(optarg, &r[n++]) != 0) {
				fprintf(stderr, "dsn_tool: bad -r %s\n", optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: dsn_tool [-f] [-e envid] "
			    "[-s sender] [-m from-mta] [-n now] -r spec ... "
			    "[original]\n");
			return 2;
		}
	}
	if (optind < argc &&
	    (m.orig = golden_slurp(argv[optind], &m.origlen)) == NULL) {
		perror(argv[optind]);
		return 2;
	}
	if (dsn_build(&m, r, n, &out, &len, err, sizeof(err)) != 0) {
		fprintf(stderr, "dsn_tool: %s\n", err);
		return 1;
	}
	if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0)
		return 2;
	fprintf(stderr, "8bit=%d\n", dsn_is_8bit(out, len));
	free(out);
	free((char *)m.orig);
	return 0;
}
