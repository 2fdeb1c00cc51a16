/* mail_addr.c: the From of RFC 5322 as a reader takes it (mail_addr.h).
 * Lenient where readers are lenient, and counting every reading a reader
 * might take: a verdict speaks for the one mailbox a reader shows. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "lib/lib.h"
#include "mail_addr.h"
#include "mime.h"

/* In a quoted-string or comment of an address list: step over *p (a
 * quoted-pair whole) and say 1; 0 when *p is at top level. */
static int
in_quote_or_comment(const char **p, int *quote, int *depth)
{
	if (!*quote && !*depth)
		return 0;
	if (**p == '\\' && (*p)[1] != '\0')
		(*p)++;
	else if (*quote)
		*quote = **p != '"';
	else
		*depth += **p == '(' ? 1 : **p == ')' ? -1 : 0;
	return 1;
}

int
mail_addr_first(const char *v, char *buf, size_t buflen)
{
	const char *p, *lt = NULL;
	size_t n = 0;
	int quote = 0, depth = 0;

	if (buflen == 0)
		return -1;
	for (p = v; *p != '\0' && lt == NULL; p++) {
		if (in_quote_or_comment(&p, &quote, &depth))
			continue;
		if (*p == '"')
			quote = 1;
		else if (*p == '(')
			depth = 1;
		else if (*p == '<')
			lt = p + 1;
		else if (*p == ',')
			break;
	}
	if (lt != NULL) {
		for (p = lt; *p == ' ' || *p == '\t'; p++)
			;
		for (; *p != '\0' && *p != '>' && *p != ' ' && n + 1 < buflen;
		    p++)
			buf[n++] = *p;
	} else {
		quote = depth = 0;
		for (p = v; *p != '\0' && n + 1 < buflen; p++) {
			if (!quote && depth == 0 && *p == ',')
				break;
			if (!quote && *p == '(')
				depth++;
			else if (!quote && depth > 0 && *p == ')')
				depth--;
			else if (depth == 0 && (quote || (*p != ' ' &&
			    *p != '\t'))) {
				if (*p == '"')
					quote = !quote;
				buf[n++] = *p;
			}
		}
	}
	buf[n] = '\0';
	return n > 0 && strchr(buf, '@') != NULL ? 0 : -1;
}

/* Items at top level (outside quoted strings, comments and <...>). */
int
mail_addr_count(const char *v)
{
	const char *p;
	int n = 0, item = 0, quote = 0, depth = 0, angle = 0, addrs = 0;
	int after = 0;		/* text after "<...>": "Bob <b@x> ceo" */

	for (p = v; *p != '\0'; p++) {
		if (in_quote_or_comment(&p, &quote, &depth))
			continue;
		switch (*p) {
		case '"':
			quote = item = 1;
			break;
		case '(':
			depth = 1;
			break;
		case '<':
			if (!angle && addrs++ > 0)	/* "a <x> <y>": two */
				n++;
			angle = item = 1;
			break;
		case '>':
			if (angle)
				after = 1;
			angle = 0;
			break;
		case ',':
			if (!angle) {
				n += item;
				item = addrs = after = 0;
			}
			break;
		case ' ':
		case '\t':
			break;
		default:
			if (after == 1 && !angle) {	/* read as another */
				n++;
				after = 2;
			}
			item = 1;
		}
	}
	return n + item;
}

/* UTF-8 look-alikes of the two characters that make text an address. */
static const struct {
	const char *seq;
	char	    ascii;
} lookalike[] = {
	{ "\xef\xbc\xa0", '@' },	/* U+FF20 FULLWIDTH COMMERCIAL AT */
	{ "\xef\xb9\xab", '@' },	/* U+FE6B SMALL COMMERCIAL AT */
	{ "\xef\xbc\x8e", '.' },	/* U+FF0E FULLWIDTH FULL STOP */
	{ "\xef\xb9\x92", '.' },	/* U+FE52 SMALL FULL STOP */
	{ "\xef\xbd\xa1", '.' },	/* U+FF61 HALFWIDTH IDEOGRAPHIC F. S. */
	{ "\xe3\x80\x82", '.' },	/* U+3002 IDEOGRAPHIC FULL STOP */
	{ "\xe2\x80\xa4", '.' },	/* U+2024 ONE DOT LEADER */
};

/* s with the look-alikes made ASCII, in place (it only shrinks). */
static void
unlookalike(char *s)
{
	char *w = s;
	size_t i;

	while (*s != '\0') {
		for (i = 0; i < sizeof(lookalike) / sizeof(lookalike[0]); i++)
			if (strncmp(s, lookalike[i].seq, 3) == 0)
				break;
		if (i < sizeof(lookalike) / sizeof(lookalike[0])) {
			*w++ = lookalike[i].ascii;
			s += 3;
		} else
			*w++ = *s++;
	}
	*w = '\0';
}

/* A byte of a local part or domain as a reader shows one: ASCII letters
 * and digits, and every byte of a non-ASCII character (RFC 6532). */
static int
addr_byte(unsigned char c, const char *more)
{
	return isalnum(c) || c >= 0x80 || (c != '\0' && strchr(more, c));
}

/* Whether text shows an address (local@domain.tld) other than addr. */
static int
shows_other(const char *text, const char *addr)
{
	char span[MAIL_ADDR_MAX], ks[MAIL_ADDR_MAX], ka[MAIL_ADDR_MAX];
	const char *at, *l, *r, *akey = NULL;
	size_t alen = strlen(addr);
	int dot, keyed = 0;

	for (at = strchr(text, '@'); at != NULL; at = strchr(at + 1, '@')) {
		for (l = at; l > text && addr_byte((unsigned char)l[-1],
		    "._%+-'"); l--)
			;
		for (r = at + 1, dot = 0; addr_byte((unsigned char)*r, ".-");
		    r++)
			dot |= *r == '.';
		while (r > at + 1 && r[-1] == '.')
			r--;
		if (l == at || r == at + 1 || !dot)
			continue;
		if ((size_t)(r - l) == alen && strncasecmp(l, addr, alen) == 0)
			continue;
		/* the same address with its domain in other labels?  (a
		 * few times: a display name that repeats it more is no
		 * plain display name, and each costs an IDNA conversion) */
		if ((size_t)(r - l) >= sizeof(span) || ++keyed > 4)
			return 1;
		memcpy(span, l, (size_t)(r - l));
		span[r - l] = '\0';
		if (akey == NULL)
			akey = mail_addr_key(addr, ka, sizeof(ka));
		if (strcasecmp(mail_addr_key(span, ks, sizeof(ks)), akey) != 0)
			return 1;
	}
	return 0;
}

int
mail_addr_shows_other(const char *value, const char *addr)
{
	size_t n = strlen(value);
	char *shown, a[MAIL_ADDR_MAX];
	int r;

	shown = xmalloc(2 * n + 1);
	mime_decode2047(value, shown, 2 * n + 1);
	unlookalike(shown);
	strlcpy_s(a, addr, sizeof(a));
	unlookalike(a);
	r = shows_other(shown, a);
	free(shown);
	return r;
}

const char *
mail_addr_key(const char *addr, char *buf, size_t buflen)
{
	const char *at, *p;
	char *ascii = NULL;
	int n;

	if (addr == NULL || (at = strrchr(addr, '@')) == NULL ||
	    at[1] == '[')
		return addr;
	for (p = at + 1; *p != '\0' && (unsigned char)*p < 0x80; p++)
		;
	if (*p == '\0')
		return addr;			/* ASCII: as it stands */
	if (idn2_to_ascii_8z(at + 1, &ascii, IDN2_NFC_INPUT |
	    IDN2_NONTRANSITIONAL) != IDN2_OK || ascii == NULL) {
		idn2_free(ascii);
		return addr;
	}
	n = snprintf(buf, buflen, "%.*s@%s", (int)(at - addr), addr, ascii);
	idn2_free(ascii);
	return n > 0 && (size_t)n < buflen ? buf : addr;
}

void
mail_from_add(struct mail_from *f, const char *value)
{
	char addr[MAIL_ADDR_MAX];

	f->fields++;
	f->boxes += mail_addr_count(value);
	if (mail_addr_first(value, addr, sizeof(addr)) == -1)
		return;
	if (f->fields == 1) {
		memcpy(f->addr, addr, sizeof(addr));
		f->have = 1;
	}
	/* any other address a reader may show: in the display name, or in
	 * a comment that stands in for one */
	f->spoof |= mail_addr_shows_other(value, addr);
}

const char *
mail_from_ambiguous(const struct mail_from *f)
{
	if (f->fields > 1)
		return "more than one From field";
	if (f->boxes > 1)
		return "the From field names more than one mailbox";
	if (f->spoof)
		return "the From display name shows another address";
	return NULL;
}

const char *
mail_from_inner(const struct mail_from *outer, const struct mail_from *inner)
{
	char ko[MAIL_ADDR_MAX], ki[MAIL_ADDR_MAX];

	if (inner->fields == 0)
		return NULL;
	if (inner->fields > 1 || inner->boxes > 1)
		return "the signed part names more than one From";
	if (inner->spoof)
		return "the From display name of the signed part shows "
		    "another address";
	if (!inner->have || !outer->have ||
	    strcasecmp(mail_addr_key(outer->addr, ko, sizeof(ko)),
	    mail_addr_key(inner->addr, ki, sizeof(ki))) != 0)
		return "the From of the signed part is not the message's";
	return NULL;
}
