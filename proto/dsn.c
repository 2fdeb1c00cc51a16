/* dsn.c: delivery status notifications (RFC 3464, 3461, 6522), pure code. */
#include "autoconfig.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/lib.h"
#include "dsn.h"
#include "text.h"

#define FOLD_AT         78      /* preferred header and text line length */
#define HARD_AT         990     /* below the 998 limit of RFC 5322 */
#define DIAG_MAX        900     /* a reply is cut to this many bytes */

/* A growable output buffer; allocation failure aborts. */
struct buf {
	char   *p;
	size_t  len, cap;
};

static const char *actions[] = { "failed", "delayed", "delivered",
    "relayed", "expanded" };

/* Append n bytes. */
static void
buf_add(struct buf *b, const void *s, size_t n)
{
	if (b->cap - b->len <= n) {
		while (b->cap - b->len <= n)
			b->cap = b->cap * 2 + 1024;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append a string. */
static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Append formatted text. */
static void __attribute__((format(printf, 2, 3)))
buf_fmt(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[512], *big;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	if ((size_t)n < sizeof(small)) {
		buf_add(b, small, (size_t)n);
		return;
	}
	big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)n);
	free(big);
}

/* Copy a reason into err. */
static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Name of an action for the Action field. */
const char *
dsn_action_name(enum dsn_action a)
{
	if ((unsigned)a >= sizeof(actions) / sizeof(actions[0]))
		return "failed";
	return actions[a];
}

/*
 * RFC 3461 says hexchar uses upper-case digits; lower case is accepted
 * because it cannot mean anything else, as Postfix does.
 */
int
dsn_xtext_decode(const char *in, char *buf, size_t buflen)
{
	size_t o = 0;
	unsigned char c;
	int hi, lo;

	if (in == NULL || buf == NULL || buflen == 0)
		return -1;
	while ((c = (unsigned char)*in) != '\0') {
		if (c < '!' || c > '~' || c == '=')
			return -1;
		if (c == '+') {
			if ((hi = hexval(in[1])) < 0 || (lo = hexval(in[2])) < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			if (c == '\0')
				return -1;
			in += 3;
		} else
			in++;
		if (o + 1 >= buflen || o >= INT32_MAX)
			return -1;
		buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return (int)o;
}

/* ASCII case-insensitive equality of a token of n bytes with a keyword. */
static int
token_is(const char *s, size_t n, const char *kw)
{
	size_t i;

	if (strlen(kw) != n)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		if (c != kw[i])
			return 0;
	}
	return 1;
}

#define NOTIFY_SUCCESS  0x1
#define NOTIFY_FAILURE  0x2
#define NOTIFY_DELAY    0x4
#define NOTIFY_NEVER    0x8

/* NOTIFY keywords as a bit set, -1 if malformed (RFC 3461 4.1). */
static int
notify_parse(const char *s)
{
	const char *e;
	size_t n;
	int bits = 0, bit;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strcspn(s, ",");
		n = (size_t)(e - s);
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (token_is(s, n, "SUCCESS"))
			bit = NOTIFY_SUCCESS;
		else if (token_is(s, n, "FAILURE"))
			bit = NOTIFY_FAILURE;
		else if (token_is(s, n, "DELAY"))
			bit = NOTIFY_DELAY;
		else if (token_is(s, n, "NEVER"))
			bit = NOTIFY_NEVER;
		else
			return -1;
		bits |= bit;
		if (*e == '\0')
			break;
		s = e + 1;
	}
	if ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER)
		return -1;
	return bits;
}

/*
 * Absent and malformed both mean FAILURE,DELAY: the server should have
 * refused a bad NOTIFY at RCPT, and a lost failure notice is worse than
 * an unwanted one.
 */
int
dsn_notify_allows(const char *notify, enum dsn_action a)
{
	int bits = -1;

	if (notify != NULL && *notify != '\0')
		bits = notify_parse(notify);
	if (bits < 0)
		bits = NOTIFY_FAILURE | NOTIFY_DELAY;
	switch (a) {
	case DSN_FAILED:
		return (bits & NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (bits & NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
	case DSN_RELAYED:
	case DSN_EXPANDED:
		return (bits & NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

/* 1 if any byte of s is 8-bit. */
int
dsn_is_8bit(const char *s, size_t n)
{
	return text_has_8bit(s, n);
}

/* 1 if every byte of s is printable US-ASCII (space included). */
static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* An address: non-empty, no control bytes (8-bit is SMTPUTF8). */
static int
addr_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

/* A host name or address literal: non-empty visible US-ASCII. */
static int
host_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* RFC 3463 status-code: class "." 1*3digit "." 1*3digit. */
static int
status_ok(const char *s, enum dsn_action a)
{
	int i, n;

	if (s == NULL)
		return 0;
	switch (a) {
	case DSN_FAILED:
		if (s[0] != '4' && s[0] != '5')
			return 0;
		break;
	case DSN_DELAYED:
		if (s[0] != '4')
			return 0;
		break;
	default:
		if (s[0] != '2')
			return 0;
		break;
	}
	s++;
	for (i = 0; i < 2; i++) {
		if (*s++ != '.')
			return 0;
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			n++;
		if (n < 1 || n > 3)
			return 0;
	}
	return *s == '\0';
}

/* Decode one UTF-8 sequence; an invalid one is its first byte alone. */
static size_t
utf8_next(const unsigned char *s, unsigned long *cp)
{
	unsigned long c = s[0];
	int n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 1, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, c &= 0x07;
	else
		n = 0;
	for (i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = s[0];
			return 1;
		}
		c = (c << 6) | (s[i] & 0x3f);
	}
	*cp = c;
	return (size_t)n + 1;
}

/*
 * A one-line US-ASCII copy of a text from outside (a reply): line ends,
 * tabs and controls become one space, a UTF-8 character (or a stray
 * 8-bit byte) "?", ends trimmed,
 * at most max bytes.
 */
static char *
clean(const char *s, size_t max)
{
	char *o, *p;
	unsigned char c;
	unsigned long cp;

	o = p = xmalloc(strlen(s) + 1);
	for (; *s != '\0' && (size_t)(p - o) < max; s++) {
		c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f) {
			if (p > o && p[-1] != ' ')
				*p++ = ' ';
			continue;
		}
		if (c == ' ' && (p == o || p[-1] == ' '))
			continue;
		if (c >= 0x80) {
			s += utf8_next((const unsigned char *)s, &cp) - 1;
			*p++ = '?';
		} else
			*p++ = (char)c;
	}
	while (p > o && p[-1] == ' ')
		p--;
	*p = '\0';
	return o;
}

/* RFC 5322 date-time in UTC. */
static void
fmt_date(int64_t t, char *out, size_t len)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * Append "Name: value" folded before spaces near FOLD_AT columns (value
 * unchanged when unfolded); a word running past HARD_AT is broken.
 */
static void
hdr_fold(struct buf *b, const char *name, const char *v)
{
	size_t col, sp, w, k;
	int words = 0;          /* words on the current line */

	buf_fmt(b, "%s:", name);
	col = strlen(name) + 1;
	while (*v == ' ')
		v++;
	sp = 1;                 /* the space after the colon */
	while (*v != '\0') {
		w = strcspn(v, " ");
		if (words > 0 && col + sp + w > FOLD_AT) {
			buf_str(b, "\r\n");
			col = 0;
			words = 0;
		}
		for (; sp > 0; sp--, col++)
			buf_str(b, " ");
		while (w > 0) {
			k = w < HARD_AT - col ? w : HARD_AT - col;
			buf_add(b, v, k);
			v += k;
			w -= k;
			col += k;
			if (w > 0) {
				buf_str(b, "\r\n ");
				col = 1;
			}
		}
		words++;
		for (sp = 0; *v == ' '; v++)
			sp++;
	}
	buf_str(b, "\r\n");
}

/* Append a text line wrapped at FOLD_AT, later lines indented by indent. */
static void
text_wrap(struct buf *b, const char *s, size_t indent)
{
	size_t col = 0, w;
	int first = 1;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		w = strcspn(s, " ");
		if (!first && col + 1 + w > FOLD_AT) {
			buf_str(b, "\r\n");
			buf_add(b, "    ", indent);
			col = indent;
		} else if (!first) {
			buf_str(b, " ");
			col++;
		}
		buf_add(b, s, w);
		col += w;
		s += w;
		first = 0;
	}
	buf_str(b, "\r\n");
}

/*
 * An address for Final-Recipient: "rfc822; addr" when US-ASCII, else
 * "utf-8; " with the utf-8-addr-xtext of RFC 6533 3 (non-ASCII, "+", "="
 * and "\" as \x{HEX}), which message/delivery-status can carry.
 */
static void
addr_typed(struct buf *b, const char *a)
{
	const unsigned char *s = (const unsigned char *)a;
	unsigned long cp;
	char c;

	if (printable(a)) {
		buf_fmt(b, "rfc822; %s", a);
		return;
	}
	buf_str(b, "utf-8; ");
	while (*s != '\0') {
		s += utf8_next(s, &cp);
		if (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' &&
		    cp != '\\') {
			c = (char)cp;
			buf_add(b, &c, 1);
		} else
			buf_fmt(b, "\\x{%lX}", cp);
	}
}

/*
 * The value of an xtext parameter for the DSN: decoded (RFC 3461 6.3 has
 * the ENVID and ORCPT values appear in the DSN), or as received when the
 * decoded form would not be printable US-ASCII; NULL when neither is.
 */
static char *
xtext_value(const char *x)
{
	char *d;
	size_t n = strlen(x) + 1;

	d = xmalloc(n);
	if (dsn_xtext_decode(x, d, n) >= 0 && *d != '\0' && printable(d))
		return d;
	if (*x != '\0' && printable(x)) {
		memcpy(d, x, n);
		return d;
	}
	free(d);
	return NULL;
}

/*
 * Original-Recipient from ORCPT "addr-type;xtext": the address decoded,
 * except for the utf-8 type whose RFC 6533 form is already the DSN's.
 * A malformed ORCPT gives no field.
 */
static void
orcpt_field(struct buf *b, const char *orcpt)
{
	struct buf v = { NULL, 0, 0 };
	const char *semi = strchr(orcpt, ';');
	size_t i, tl;
	char *addr;

	if (semi == NULL || semi == orcpt)
		return;
	tl = (size_t)(semi - orcpt);
	for (i = 0; i < tl; i++)
		if (orcpt[i] <= ' ' || orcpt[i] > '~' || orcpt[i] == ':')
			return;
	if (token_is(orcpt, tl, "UTF-8"))
		addr = host_ok(semi + 1) ? strdup(semi + 1) : NULL;
	else
		addr = xtext_value(semi + 1);
	if (addr == NULL)
		return;
	buf_add(&v, orcpt, tl);
	buf_fmt(&v, ";%s", addr);
	hdr_fold(b, "Original-Recipient", v.p);
	free(v.p);
	free(addr);
}

/* Check the caller's input before anything is built. */
static int
check(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n,
    char *err, size_t errlen)
{
	size_t i;

	if (m->sender == NULL || *m->sender == '\0')
		return fail(err, errlen, "no DSN to the null sender");
	if (!addr_ok(m->sender))
		return fail(err, errlen, "bad sender address");
	if (!host_ok(m->reporting_mta))
		return fail(err, errlen, "bad reporting MTA name");
	if (m->msgid_domain != NULL && !host_ok(m->msgid_domain))
		return fail(err, errlen, "bad Message-ID domain");
	if (m->from_mta != NULL && *m->from_mta != '\0' &&
	    !host_ok(m->from_mta))
		return fail(err, errlen, "bad Received-From-MTA name");
	if (n == 0 || r == NULL)
		return fail(err, errlen, "no recipients");
	for (i = 0; i < n; i++) {
		if ((unsigned)r[i].action > DSN_EXPANDED)
			return fail(err, errlen, "recipient %zu: bad action",
			    i + 1);
		if (!addr_ok(r[i].rcpt))
			return fail(err, errlen, "recipient %zu: bad address",
			    i + 1);
		if (!status_ok(r[i].status, r[i].action))
			return fail(err, errlen, "recipient %zu: bad status "
			    "\"%s\" for action %s", i + 1,
			    r[i].status != NULL ? r[i].status : "(null)",
			    dsn_action_name(r[i].action));
		if (r[i].remote_mta != NULL && *r[i].remote_mta != '\0' &&
		    !host_ok(r[i].remote_mta))
			return fail(err, errlen, "recipient %zu: bad remote "
			    "MTA name", i + 1);
	}
	return 0;
}

/* The most severe action reported: what the Subject says. */
static enum dsn_action
worst(const struct dsn_rcpt *r, size_t n)
{
	enum dsn_action w = DSN_DELIVERED;
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].action == DSN_FAILED)
			return DSN_FAILED;
		if (r[i].action == DSN_DELAYED)
			w = DSN_DELAYED;
	}
	return w;
}

/* 1 if action a belongs to group g (failed, delayed, or any success). */
static int
in_group(enum dsn_action a, enum dsn_action g)
{
	if (g == DSN_FAILED || g == DSN_DELAYED)
		return a == g;
	return a != DSN_FAILED && a != DSN_DELAYED;
}

/* One recipient's line of the human part. */
static void
text_rcpt(struct buf *b, const struct dsn_rcpt *r)
{
	struct buf l = { NULL, 0, 0 };
	char *a = clean(r->rcpt, DIAG_MAX), *d = NULL, date[64];

	buf_fmt(&l, "<%s>:", a);
	if (r->diag != NULL && *(d = clean(r->diag, DIAG_MAX)) != '\0') {
		if (r->remote_mta != NULL && *r->remote_mta != '\0')
			buf_fmt(&l, " host %s said:", r->remote_mta);
		buf_fmt(&l, " %s", d);
	} else if (r->action == DSN_RELAYED)
		buf_fmt(&l, " relayed to %s, which does not send delivery "
		    "notifications", r->remote_mta != NULL &&
		    *r->remote_mta != '\0' ? r->remote_mta : "another system");
	else if (r->action == DSN_EXPANDED)
		buf_str(&l, " expanded to other recipients");
	else
		buf_fmt(&l, " %s (status %s)", r->action == DSN_DELIVERED ?
		    "delivered" : r->action == DSN_DELAYED ?
		    "not delivered yet" : "delivery failed", r->status);
	if (r->action == DSN_DELAYED && r->retry_until > 0) {
		fmt_date(r->retry_until, date, sizeof(date));
		buf_fmt(&l, " (will retry until %s)", date);
	}
	buf_str(b, "\r\n");
	text_wrap(b, l.p, 4);
	free(l.p);
	free(a);
	free(d);
}

/* Part 1: the explanation for a person. */
static void
part_text(struct buf *b, const struct dsn_msg *m, const struct dsn_rcpt *r,
    size_t n)
{
	static const struct {
		enum dsn_action g;
		const char *intro;
	} groups[] = {
		{ DSN_FAILED, "Your message could not be delivered to the "
		    "recipients below; the mail system has given up. Check "
		    "the addresses, or ask the postmaster of the receiving "
		    "system about the reply it gave." },
		{ DSN_DELAYED, "Your message has not been delivered yet to "
		    "the recipients below. The mail system keeps trying; you "
		    "do not need to send it again." },
		{ DSN_DELIVERED, "Your message was successfully handed on "
		    "for the recipients below." },
	};
	size_t g, i, k;

	buf_fmt(b, "This is the mail system at host %s.\r\n", m->reporting_mta);
	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		for (i = k = 0; i < n; i++) {
			if (!in_group(r[i].action, groups[g].g))
				continue;
			if (k++ == 0) {
				buf_str(b, "\r\n");
				text_wrap(b, groups[g].intro, 0);
			}
			text_rcpt(b, &r[i]);
		}
	}
	if (m->orig != NULL && m->origlen > 0) {
		buf_str(b, "\r\n");
		text_wrap(b, m->ret_full ? "The delivery report and your "
		    "message are attached." : "The delivery report and the "
		    "header section of your message are attached.", 0);
	}
}

/* Part 2: the message/delivery-status fields (RFC 3464 2.2, 2.3). */
static void
part_status(struct buf *b, const struct dsn_msg *m,
    const struct dsn_rcpt *r, size_t n)
{
	struct buf v = { NULL, 0, 0 };
	char date[64], *x;
	size_t i;

	if (m->envid != NULL && (x = xtext_value(m->envid)) != NULL) {
		hdr_fold(b, "Original-Envelope-Id", x);
		free(x);
	}
	buf_fmt(b, "Reporting-MTA: dns; %s\r\n", m->reporting_mta);
	if (m->from_mta != NULL && *m->from_mta != '\0')
		buf_fmt(b, "Received-From-MTA: dns; %s\r\n", m->from_mta);
	if (m->arrival > 0) {
		fmt_date(m->arrival, date, sizeof(date));
		buf_fmt(b, "Arrival-Date: %s\r\n", date);
	}
	for (i = 0; i < n; i++) {
		buf_str(b, "\r\n");
		if (r[i].orcpt != NULL)
			orcpt_field(b, r[i].orcpt);
		v.len = 0;
		addr_typed(&v, r[i].rcpt);
		hdr_fold(b, "Final-Recipient", v.p);
		buf_fmt(b, "Action: %s\r\n", dsn_action_name(r[i].action));
		buf_fmt(b, "Status: %s\r\n", r[i].status);
		if (r[i].remote_mta != NULL && *r[i].remote_mta != '\0')
			buf_fmt(b, "Remote-MTA: dns; %s\r\n", r[i].remote_mta);
		if (r[i].diag != NULL) {
			x = clean(r[i].diag, DIAG_MAX);
			if (*x != '\0') {
				v.len = 0;
				buf_fmt(&v, "smtp; %s", x);
				hdr_fold(b, "Diagnostic-Code", v.p);
			}
			free(x);
		}
		if (r[i].last_attempt > 0) {
			fmt_date(r[i].last_attempt, date, sizeof(date));
			buf_fmt(b, "Last-Attempt-Date: %s\r\n", date);
		}
		if (r[i].action == DSN_DELAYED && r[i].retry_until > 0) {
			fmt_date(r[i].retry_until, date, sizeof(date));
			buf_fmt(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
	free(v.p);
}

/*
 * Part 3: the original with every line end made CRLF (bare LF and bare
 * CR alike), cut after its header section unless ret_full.
 */
static void
part_orig(struct buf *b, const struct dsn_msg *m)
{
	const char *s = m->orig;
	size_t i, start = 0;
	int bol = 1;

	for (i = 0; i < m->origlen; i++) {
		if (s[i] != '\r' && s[i] != '\n') {
			bol = 0;
			continue;
		}
		buf_add(b, s + start, i - start);
		buf_str(b, "\r\n");
		if (s[i] == '\r' && i + 1 < m->origlen && s[i + 1] == '\n')
			i++;
		start = i + 1;
		if (bol && !m->ret_full) {
			b->len -= 2;    /* the empty line ends the header */
			b->p[b->len] = '\0';
			return;
		}
		bol = 1;
	}
	if (start < m->origlen) {
		buf_add(b, s + start, m->origlen - start);
		buf_str(b, "\r\n");
	}
}

/* 64-bit FNV-1a, the seed of the Message-ID and the boundary. */
static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * A hash of the envelope and the time, so equal input gives equal output;
 * the original is left out, which only the boundary check depends on.
 */
static uint64_t
seed(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	h = fnv(h, m->sender, strlen(m->sender) + 1);
	h = fnv(h, &m->now, sizeof(m->now));
	h = fnv(h, &m->arrival, sizeof(m->arrival));
	for (i = 0; i < n; i++) {
		h = fnv(h, r[i].rcpt, strlen(r[i].rcpt) + 1);
		h = fnv(h, r[i].status, strlen(r[i].status) + 1);
	}
	if (m->envid != NULL)
		h = fnv(h, m->envid, strlen(m->envid) + 1);
	return h;
}

/* 1 if needle occurs in any of the parts. */
static int
occurs(const char *needle, struct buf *parts, size_t nparts)
{
	size_t i;

	for (i = 0; i < nparts; i++)
		if (parts[i].len > 0 && memmem(parts[i].p, parts[i].len,
		    needle, strlen(needle)) != NULL)
			return 1;
	return 0;
}

/* The top-level header section. */
static void
top_header(struct buf *b, const struct dsn_msg *m, enum dsn_action w,
    uint64_t h, const char *boundary, int eight)
{
	char date[64], stamp[32];
	time_t tt = (time_t)m->now;
	struct tm tm;

	fmt_date(m->now, date, sizeof(date));
	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	buf_fmt(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    m->reporting_mta);
	hdr_fold(b, "To", m->sender);
	buf_fmt(b, "Subject: %s\r\n", w == DSN_FAILED ?
	    "Undelivered Mail Returned to Sender" : w == DSN_DELAYED ?
	    "Delayed Mail (still being retried)" :
	    "Successful Mail Delivery Report");
	buf_fmt(b, "Date: %s\r\n", date);
	buf_fmt(b, "Message-ID: <%s.%016llx.dsn@%s>\r\n", stamp,
	    (unsigned long long)h, m->msgid_domain != NULL ?
	    m->msgid_domain : m->reporting_mta);
	buf_str(b, "MIME-Version: 1.0\r\n");
	buf_str(b, "Auto-Submitted: auto-replied\r\n");
	buf_fmt(b, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	if (eight)
		buf_str(b, "Content-Transfer-Encoding: 8bit\r\n");
	buf_str(b, "\r\n");
}

/*
 * The boundary is varied until it occurs in no part: an original may hold
 * anything, even an earlier DSN of ours.
 */
int
dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n,
    char **out, size_t *outlen, char *err, size_t errlen)
{
	struct buf parts[3], b = { NULL, 0, 0 };
	char boundary[64];
	enum dsn_action w;
	uint64_t h;
	unsigned k;
	int eight, have_orig;

	*out = NULL;
	*outlen = 0;
	if (m == NULL)
		return fail(err, errlen, "no message");
	if (check(m, r, n, err, errlen) == -1)
		return -1;
	memset(parts, 0, sizeof(parts));
	part_text(&parts[0], m, r, n);
	part_status(&parts[1], m, r, n);
	have_orig = m->orig != NULL && m->origlen > 0;
	if (have_orig)
		part_orig(&parts[2], m);
	eight = dsn_is_8bit(parts[2].p, parts[2].len);
	h = seed(m, r, n);
	for (k = 0;; k++) {
		if (k == 0)
			snprintf(boundary, sizeof(boundary), "=_dsn_%016llx",
			    (unsigned long long)h);
		else
			snprintf(boundary, sizeof(boundary), "=_dsn_%016llx_%u",
			    (unsigned long long)h, k);
		if (!occurs(boundary, parts, 3))
			break;
	}
	w = worst(r, n);
	top_header(&b, m, w, h, boundary, eight);
	buf_str(&b, "This is a MIME-encapsulated message.\r\n");
	buf_fmt(&b, "\r\n--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	buf_add(&b, parts[0].p, parts[0].len);
	buf_fmt(&b, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	buf_add(&b, parts[1].p, parts[1].len);
	if (have_orig) {
		buf_fmt(&b, "\r\n--%s\r\nContent-Description: %s%s\r\n"
		    "Content-Type: %s\r\n", boundary,
		    w == DSN_FAILED || w == DSN_DELAYED ? "Undelivered " : "",
		    m->ret_full ? "Message" : "Message Headers",
		    m->ret_full ? "message/rfc822" : "text/rfc822-headers");
		if (eight)
			buf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
		buf_str(&b, "\r\n");
		if (parts[2].len > 0)
			buf_add(&b, parts[2].p, parts[2].len);
	}
	buf_fmt(&b, "\r\n--%s--\r\n", boundary);
	free(parts[0].p);
	free(parts[1].p);
	free(parts[2].p);
	*out = b.p;
	*outlen = b.len;
	return 0;
}
