/* smtp_reply.c: SMTP reply parser (client side) and EHLO keywords. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_reply.h"
#include "xforward.h"

static const struct ehlo_ext {
	const char      *name;
	unsigned         flag;
} ehlo_exts[] = {
	{ "PIPELINING",                 EXT_PIPELINING },
	{ "SIZE",                       EXT_SIZE },
	{ "8BITMIME",                   EXT_8BITMIME },
	{ "STARTTLS",                   EXT_STARTTLS },
	{ "ENHANCEDSTATUSCODES",        EXT_ENHANCED },
	{ "DSN",                        EXT_DSN },
	{ "SMTPUTF8",                   EXT_SMTPUTF8 },
	{ "CHUNKING",                   EXT_CHUNKING },
	{ "XFORWARD",                   EXT_XFORWARD },
};

#define NEXTS   (sizeof(ehlo_exts) / sizeof(ehlo_exts[0]))

/* Start a new reply. */
void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* ASCII case-insensitive equality of a token of n bytes with a name. */
static int
token_is(const char *tok, size_t n, const char *name)
{
	size_t i;
	unsigned char a, b;

	if (strlen(name) != n)
		return 0;
	for (i = 0; i < n; i++) {
		a = (unsigned char)tok[i];
		b = (unsigned char)name[i];
		if (a >= 'a' && a <= 'z')
			a -= 'a' - 'A';
		if (a != b)
			return 0;
	}
	return 1;
}

/*
 * Length of an RFC 3463 enhanced status code at the start of s: class
 * "." 1*3digit "." 1*3digit, followed by SP or the end.  The class must be
 * the reply's first digit.  Returns 0 if there is none.
 */
static size_t
enh_len(const char *s, size_t n, char class)
{
	size_t i = 0, part, d;

	if (class != '2' && class != '4' && class != '5')
		return 0;
	if (n < 5 || s[0] != class || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (d = 0; i < n && d < 4 && s[i] >= '0' && s[i] <= '9'; d++)
			i++;
		if (d == 0 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

/* Note the EHLO keyword at the start of a continuation line's text. */
static void
ehlo_keyword(struct smtp_reply *r, const char *s, size_t n)
{
	size_t i, kw, alen;
	uint64_t v = 0;
	const char *arg;

	kw = 0;
	while (kw < n && s[kw] != ' ')
		kw++;
	for (i = 0; i < NEXTS; i++)
		if (token_is(s, kw, ehlo_exts[i].name))
			break;
	if (i == NEXTS)
		return;
	r->ext |= ehlo_exts[i].flag;
	if (ehlo_exts[i].flag == EXT_XFORWARD) {
		r->xforward |= xforward_ehlo_attrs(s + kw, n - kw);
		return;
	}
	if (ehlo_exts[i].flag != EXT_SIZE || kw + 1 >= n)
		return;
	/* "SIZE 10240000"; a malformed number means no known limit. */
	arg = s + kw + 1;
	alen = n - kw - 1;
	for (i = 0; i < alen; i++) {
		if (arg[i] < '0' || arg[i] > '9' ||
		    v > (UINT64_MAX - (uint64_t)(arg[i] - '0')) / 10) {
			r->size_limit = 0;
			return;
		}
		v = v * 10 + (uint64_t)(arg[i] - '0');
	}
	r->size_limit = v;
}

/*
 * Append a line's text, "\n"-joined, truncating.  Control bytes are
 * replaced by "?" so a peer's reply can never inject a line end when it is
 * logged or passed back to our own client.
 */
static void
text_append(struct smtp_reply *r, const char *s, size_t n)
{
	size_t used = strlen(r->text), i;
	unsigned char c;

	if (r->nlines > 1 && used + 1 < sizeof(r->text))
		r->text[used++] = '\n';
	for (i = 0; i < n && used + 1 < sizeof(r->text); i++) {
		c = (unsigned char)s[i];
		r->text[used++] = (c < 0x20 && c != '\t') || c == 0x7f ?
		    '?' : (char)c;
	}
	r->text[used] = '\0';
}

/* Feed one reply line without CRLF; see smtp_reply.h. */
int
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	int code, more;
	size_t el;

	if (r->complete)
		smtp_reply_init(r);
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	more = len > 3 && line[3] == '-';
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return -1;
	r->code = code;
	r->nlines++;
	line += len > 3 ? 4 : 3;
	len -= len > 3 ? 4 : 3;
	if ((el = enh_len(line, len, (char)('0' + code / 100))) > 0) {
		if (r->nlines == 1) {
			memcpy(r->enh, line, el);
			r->enh[el] = '\0';
		}
		if (el < len)
			el++;
		line += el;
		len -= el;
	}
	text_append(r, line, len);
	if (r->nlines > 1 && code == 250)
		ehlo_keyword(r, line, len);
	if (more)
		return 0;
	r->complete = 1;
	return 1;
}
