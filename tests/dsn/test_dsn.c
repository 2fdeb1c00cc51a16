/* test_dsn.c: delivery status notifications (proto/dsn.c): golden DSNs
 * (tests/dsn/NAME.ref, UPDATE_GOLDEN=1 rewrites them), properties of every
 * DSN, refusals, the NOTIFY table and xtext decoding. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/dsn.h"
#include "golden.h"

#define T0      1740830400      /* Sat, 01 Mar 2025 12:00:00 +0000 */

static const char orig_crlf[] =
    "Received: from client.example by gw.example; Sat, 01 Mar 2025\r\n"
    "\t11:00:00 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net, carol@example.net\r\n"
    "Subject: quarterly report\r\n"
    "Message-ID: <q1@example.org>\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "\r\n"
    "the report is attached.\r\n";

static const char orig_lf[] =
    "From: alice@example.org\n"
    "To: bob@example.net\n"
    "Subject: bare LF\n"
    "\n"
    "line one\n"
    "line two with a bare CR\rhere\n"
    "no final line end";

static const char orig_8bit[] =
    "From: alice@example.org\r\n"
    "To: bob@example.net\r\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Gr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen\r\n";

static const char long_diag[] =
    "550-5.1.1 The email account that you tried to reach does not exist. "
    "Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or "
    "unnecessary spaces. Learn more at\r\n"
    "550 5.1.1 https://support.example.com/mail/answer/6596/"
    "a-very-long-path-without-any-space-in-it-at-all-to-see-how-it-is-kept "
    "x12si3456789abc.123 - gsmtp";

/* A message from alice, arrived an hour before T0. */
static struct dsn_msg
base_msg(const char *orig, size_t len, int full)
{
	struct dsn_msg m;

	memset(&m, 0, sizeof(m));
	m.reporting_mta = "gw.example";
	m.sender = "alice@example.org";
	m.ret_full = full;
	m.arrival = T0 - 3600;
	m.now = T0;
	m.msgid_domain = "gw.example";
	m.orig = orig;
	m.origlen = len;
	m.from_mta = "client.example";
	return m;
}

/* Print a DSN line by line (CRLF shown as a line end, all else escaped). */
static void
dump(FILE *out, const char *s, size_t n)
{
	size_t i = 0, e;

	while (i < n) {
		for (e = i; e + 1 < n && !(s[e] == '\r' && s[e + 1] == '\n');
		    e++)
			;
		if (e + 1 >= n)
			e = n;
		golden_escape(out, s + i, e - i);
		fputc('\n', out);
		i = e + 2;
	}
}

/* Properties every DSN has: CRLF only, short lines, one boundary. */
static void
check_props(const char *name, const char *s, size_t n)
{
	const char *b, *p;
	char boundary[128], delim[140];
	size_t i, col = 0, k;
	int inhdr = 1;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			golden_fail("%s: bare LF at %zu", name, i);
		if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
			golden_fail("%s: bare CR at %zu", name, i);
		if (s[i] == '\r')
			continue;
		if (s[i] == '\n') {
			if (inhdr && col > 78)
				golden_fail("%s: header line of %zu bytes", name, col);
			if (col == 0)
				inhdr = 0;
			col = 0;
			continue;
		}
		if (++col > 998)
			golden_fail("%s: line over 998 bytes at %zu", name, i);
	}
	if (n < 2 || memcmp(s + n - 2, "\r\n", 2) != 0)
		golden_fail("%s: no final CRLF", name);
	if ((b = strstr(s, "boundary=\"")) == NULL) {
		golden_fail("%s: no boundary", name);
		return;
	}
	b += 10;
	k = strcspn(b, "\"");
	if (k == 0 || k >= sizeof(boundary)) {
		golden_fail("%s: bad boundary", name);
		return;
	}
	memcpy(boundary, b, k);
	boundary[k] = '\0';
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	for (k = 0, p = s; (p = strstr(p, delim)) != NULL; p++)
		k++;
	if (k < 3 || k > 4)
		golden_fail("%s: %zu delimiters", name, k);
	snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", boundary);
	if (n < strlen(delim) ||
	    strcmp(s + n - strlen(delim), delim) != 0)
		golden_fail("%s: no close delimiter at the end", name);
	if (strncmp(s, "From: Mail Delivery System <MAILER-DAEMON@", 42) != 0)
		golden_fail("%s: From", name);
	if (strstr(s, "\r\nAuto-Submitted: auto-replied\r\n") == NULL)
		golden_fail("%s: Auto-Submitted", name);
}

/* Build one case, check its properties and compare with NAME.ref. */
static void
golden_case(const char *dir, const char *name, const struct dsn_msg *m,
    const struct dsn_rcpt *r, size_t n, int want8)
{
	char path[4200], err[256], *out, *got;
	size_t outlen, gotlen;
	FILE *mem;
	int before = golden_failures();

	if (dsn_build(m, r, n, &out, &outlen, err, sizeof(err)) != 0) {
		golden_fail("%s: dsn_build: %s", name, err);
		printf("not ok dsn/%s\n", name);
		return;
	}
	if (strlen(out) != outlen)
		golden_fail("%s: length %zu, NUL inside", name, outlen);
	check_props(name, out, outlen);
	if (dsn_is_8bit(out, outlen) != want8)
		golden_fail("%s: dsn_is_8bit is %d", name, !want8);
	if ((mem = open_memstream(&got, &gotlen)) == NULL)
		abort();
	dump(mem, out, outlen);
	fclose(mem);
	snprintf(path, sizeof(path), "%s/%s.ref", dir, name);
	golden_check(path, got, gotlen);
	printf("%s dsn/%s\n", golden_failures() > before ? "not ok" : "ok",
	    name);
	free(got);
	free(out);
}

/* The golden DSNs. */
static void
golden_cases(const char *dir)
{
	struct dsn_msg m;
	struct dsn_rcpt r[3];

	memset(r, 0, sizeof(r));
	r[0].rcpt = "bob@example.net";
	r[0].orcpt = "rfc822;Bob+2BFilter@Example.NET";
	r[0].action = DSN_FAILED;
	r[0].status = "5.1.1";
	r[0].diag = "550 5.1.1 <bob@example.net>: no such user";
	r[0].remote_mta = "mx.example.net";
	r[0].last_attempt = T0 - 60;
	r[1].rcpt = "carol@example.net";
	r[1].action = DSN_FAILED;
	r[1].status = "4.4.7";
	r[1].diag = "451 4.4.1 connection timed out";
	r[1].remote_mta = "mx.example.net";
	r[1].last_attempt = T0 - 120;

	m = base_msg(orig_crlf, sizeof(orig_crlf) - 1, 0);
	golden_case(dir, "fail2_hdrs", &m, r, 2, 0);
	m.ret_full = 1;
	m.envid = "QQ+2B314159";
	golden_case(dir, "fail2_full_envid", &m, r, 2, 0);

	m = base_msg(orig_crlf, sizeof(orig_crlf) - 1, 0);
	m.from_mta = NULL;
	r[0].action = DSN_DELAYED;
	r[0].status = "4.4.1";
	r[0].diag = "421 4.4.1 try again later";
	r[0].retry_until = T0 + 4 * 86400;
	golden_case(dir, "delay", &m, r, 1, 0);

	m = base_msg(orig_lf, sizeof(orig_lf) - 1, 1);
	r[0].action = DSN_FAILED;
	r[0].status = "5.1.1";
	r[0].orcpt = NULL;
	r[0].retry_until = 0;
	r[0].diag = long_diag;
	golden_case(dir, "barelf_longdiag", &m, r, 1, 0);

	m = base_msg(orig_8bit, sizeof(orig_8bit) - 1, 1);
	m.envid = "not+20printable";  /* decodes to a space: kept */
	r[0].diag = "554 5.6.0 message r\xc3\xa9jected\r\n";
	r[1].rcpt = "j\xc3\xb6rg+x=y@b\xc3\xbc" "cher.example";
	r[1].orcpt = "utf-8;j\\x{F6}rg\\x{2B}x\\x{3D}y@b\\x{FC}cher.example";
	r[1].status = "5.1.2";
	golden_case(dir, "8bit_full_utf8rcpt", &m, r, 2, 1);
	m.ret_full = 0;
	golden_case(dir, "8bit_hdrs", &m, r, 1, 0);

	m = base_msg(NULL, 0, 0);
	r[0].rcpt = "dave@example.com";
	r[0].action = DSN_DELIVERED;
	r[0].status = "2.0.0";
	r[0].diag = "250 2.0.0 OK queued as 12345";
	r[1].rcpt = "erin@example.com";
	r[1].orcpt = "bogus";
	r[1].action = DSN_RELAYED;
	r[1].status = "2.0.0";
	r[1].diag = NULL;
	r[2].rcpt = "frank@example.com";
	r[2].action = DSN_DELAYED;
	r[2].status = "4.2.2";
	r[2].diag = "452 4.2.2 mailbox full";
	golden_case(dir, "mixed_noorig", &m, r, 3, 0);
}

/* An original holding the first boundary choice gets another one. */
static void
boundary_case(void)
{
	struct dsn_msg m = base_msg(orig_crlf, sizeof(orig_crlf) - 1, 1);
	struct dsn_rcpt r = { "bob@example.net", NULL, DSN_FAILED, "5.0.0",
	    NULL, NULL, 0, 0 };
	char err[128], *out, *out2, b1[64], b2[64], *evil;
	size_t len, len2, k;
	const char *p;

	if (dsn_build(&m, &r, 1, &out, &len, err, sizeof(err)) != 0) {
		golden_fail("boundary: %s", err);
		return;
	}
	p = strstr(out, "boundary=\"") + 10;
	k = strcspn(p, "\"");
	snprintf(b1, sizeof(b1), "%.*s", (int)k, p);
	if (asprintf(&evil, "%s--%s\r\n--%s_1--\r\n", orig_crlf, b1, b1) < 0)
		abort();
	m.orig = evil;
	m.origlen = strlen(evil);
	if (dsn_build(&m, &r, 1, &out2, &len2, err, sizeof(err)) != 0) {
		golden_fail("boundary: %s", err);
		free(out);
		free(evil);
		return;
	}
	p = strstr(out2, "boundary=\"") + 10;
	k = strcspn(p, "\"");
	snprintf(b2, sizeof(b2), "%.*s", (int)k, p);
	if (strcmp(b1, b2) == 0 || strstr(evil, b2) != NULL)
		golden_fail("boundary: %s kept although the original holds it", b2);
	check_props("boundary", out2, len2);
	printf("%s dsn/boundary (%s -> %s)\n", strcmp(b1, b2) ? "ok" :
	    "not ok", b1, b2);
	free(out);
	free(out2);
	free(evil);
}

/* Input dsn_build must refuse, with a reason. */
static void
refusals(void)
{
	static const struct {
		const char *what, *sender, *rcpt, *status, *remote, *host;
		enum dsn_action action;
		size_t n;
		const char *errpart;
	} cases[] = {
		{ "empty sender", "", "b@x", "5.1.1", NULL, "gw", DSN_FAILED,
		    1, "null sender" },
		{ "null sender", NULL, "b@x", "5.1.1", NULL, "gw", DSN_FAILED,
		    1, "null sender" },
		{ "no recipients", "a@x", "b@x", "5.1.1", NULL, "gw",
		    DSN_FAILED, 0, "no recipients" },
		{ "empty rcpt", "a@x", "", "5.1.1", NULL, "gw", DSN_FAILED,
		    1, "bad address" },
		{ "CRLF in rcpt", "a@x", "b@x\r\nBcc: c@y", "5.1.1", NULL,
		    "gw", DSN_FAILED, 1, "bad address" },
		{ "LF in sender", "a@x\nX: y", "b@x", "5.1.1", NULL, "gw",
		    DSN_FAILED, 1, "bad sender" },
		{ "space in host", "a@x", "b@x", "5.1.1", NULL, "g w",
		    DSN_FAILED, 1, "reporting MTA" },
		{ "no host", "a@x", "b@x", "5.1.1", NULL, NULL, DSN_FAILED,
		    1, "reporting MTA" },
		{ "CR in remote", "a@x", "b@x", "5.1.1", "mx\r", "gw",
		    DSN_FAILED, 1, "remote MTA" },
		{ "bad status", "a@x", "b@x", "5.1", NULL, "gw", DSN_FAILED,
		    1, "bad status" },
		{ "long status", "a@x", "b@x", "5.1.1234", NULL, "gw",
		    DSN_FAILED, 1, "bad status" },
		{ "no status", "a@x", "b@x", NULL, NULL, "gw", DSN_FAILED,
		    1, "bad status" },
		{ "2xx failed", "a@x", "b@x", "2.0.0", NULL, "gw", DSN_FAILED,
		    1, "bad status" },
		{ "5xx delayed", "a@x", "b@x", "5.0.0", NULL, "gw",
		    DSN_DELAYED, 1, "bad status" },
		{ "4xx delivered", "a@x", "b@x", "4.0.0", NULL, "gw",
		    DSN_DELIVERED, 1, "bad status" },
		{ "bad action", "a@x", "b@x", "5.0.0", NULL, "gw",
		    (enum dsn_action)7, 1, "bad action" },
	};
	struct dsn_msg m;
	struct dsn_rcpt r;
	char err[256], *out;
	size_t i, len;
	int rc, before = golden_failures();

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = base_msg(orig_crlf, sizeof(orig_crlf) - 1, 0);
		m.sender = cases[i].sender;
		m.reporting_mta = cases[i].host;
		memset(&r, 0, sizeof(r));
		r.rcpt = cases[i].rcpt;
		r.status = cases[i].status;
		r.remote_mta = cases[i].remote;
		r.action = cases[i].action;
		err[0] = '\0';
		out = (char *)"x";
		rc = dsn_build(&m, &r, cases[i].n, &out, &len, err,
		    sizeof(err));
		if (rc != -1 || out != NULL)
			golden_fail("refusal %s: accepted", cases[i].what);
		else if (strstr(err, cases[i].errpart) == NULL)
			golden_fail("refusal %s: error \"%s\"", cases[i].what, err);
		if (rc == 0)
			free(out);
	}
	printf("%s dsn/refusals (%zu cases)\n",
	    golden_failures() > before ? "not ok" : "ok", i);
}

/* dsn_notify_allows over NOTIFY values and actions. */
static void
notify_table(void)
{
	/* expected: failed delayed delivered relayed expanded */
	static const struct {
		const char *notify;
		const char *want;
	} cases[] = {
		{ NULL,                         "11000" },
		{ "",                           "11000" },
		{ "NEVER",                      "00000" },
		{ "never",                      "00000" },
		{ "SUCCESS",                    "00111" },
		{ "FAILURE",                    "10000" },
		{ "DELAY",                      "01000" },
		{ "FAILURE,DELAY",              "11000" },
		{ "SUCCESS,FAILURE",            "10111" },
		{ "success,failure,delay",      "11111" },
		{ "DELAY, SUCCESS",             "01111" },
		{ "NEVER,SUCCESS",              "11000" },  /* malformed */
		{ "FAILURE,",                   "11000" },  /* malformed */
		{ "BOGUS",                      "11000" },  /* malformed */
		{ "FAILUREX",                   "11000" },  /* malformed */
	};
	size_t i, a;
	int before = golden_failures(), got;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (a = 0; a < 5; a++) {
			got = dsn_notify_allows(cases[i].notify,
			    (enum dsn_action)a);
			if (got != cases[i].want[a] - '0')
				golden_fail("notify \"%s\" %s: %d",
				    cases[i].notify ? cases[i].notify : "NULL",
				    dsn_action_name((enum dsn_action)a), got);
		}
	printf("%s dsn/notify (%zu values x 5 actions)\n",
	    golden_failures() > before ? "not ok" : "ok", i);
}

/* dsn_xtext_decode, well-formed and malformed. */
static void
xtext_table(void)
{
	static const struct {
		const char *in;
		int want;               /* length, or -1 */
		const char *out;
	} cases[] = {
		{ "",                   0,  "" },
		{ "bob@example.net",    15, "bob@example.net" },
		{ "QQ+2B314159",        9,  "QQ+314159" },
		{ "a+3Db",              3,  "a=b" },
		{ "+2B+2B",             2,  "++" },
		{ "sp+20ace",           6,  "sp ace" },
		{ "l+2bow",             4,  "l+ow" },       /* lower case hex */
		{ "utf+C3+BC",          5,  "utf\xc3\xbc" },
		{ "a+",                 -1, NULL },
		{ "a+4",                -1, NULL },
		{ "a+4G",               -1, NULL },
		{ "a+00b",              -1, NULL },
		{ "a=b",                -1, NULL },
		{ "a b",                -1, NULL },
		{ "a\tb",               -1, NULL },
		{ "a\r\nb",             -1, NULL },
		{ "\xc3\xbc",           -1, NULL },
		{ "a\x7f",              -1, NULL },
	};
	char buf[64];
	size_t i;
	int before = golden_failures(), got;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = dsn_xtext_decode(cases[i].in, buf, sizeof(buf));
		if (got != cases[i].want)
			golden_fail("xtext case %zu: %d, want %d", i, got,
			    cases[i].want);
		else if (got >= 0 && strcmp(buf, cases[i].out) != 0)
			golden_fail("xtext case %zu: \"%s\"", i, buf);
	}
	if (dsn_xtext_decode("abcd", buf, 4) != -1)
		golden_fail("xtext: no room for the NUL not detected");
	if (dsn_xtext_decode("abc", buf, 4) != 3)
		golden_fail("xtext: exact fit refused");
	if (dsn_xtext_decode("+41+42", buf, 3) != 2 || strcmp(buf, "AB"))
		golden_fail("xtext: exact fit with hexchars");
	printf("%s dsn/xtext (%zu cases)\n",
	    golden_failures() > before ? "not ok" : "ok", i + 3);
}

int
main(void)
{
	const char *srcdir = getenv("srcdir");
	char dir[4096];

	if (srcdir == NULL || *srcdir == '\0')
		srcdir = ".";
	snprintf(dir, sizeof(dir), "%s/tests/dsn", srcdir);
	golden_cases(dir);
	boundary_case();
	refusals();
	notify_table();
	xtext_table();
	return golden_failures() ? 1 : 0;
}
