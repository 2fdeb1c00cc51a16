/* xforward.c: Postfix's XFORWARD extension: the EHLO attribute list, and
 * the command's NAME=xtext arguments, decoded and checked one way, encoded
 * and split into bounded lines the other. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "xforward.h"

static const char *const attr_names[XF_NATTR] = {
	"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"
};

/* The name of an attribute. */
const char *
xforward_attr_name(enum xforward_attr a)
{
	return (unsigned)a < XF_NATTR ? attr_names[a] : "?";
}

/* The attribute called tok[0..n), case-insensitively; -1 if none. */
static int
attr_lookup(const char *tok, size_t n)
{
	int i;

	for (i = 0; i < XF_NATTR; i++)
		if (strlen(attr_names[i]) == n &&
		    strncasecmp(tok, attr_names[i], n) == 0)
			return i;
	return -1;
}

/* The attribute set of an EHLO XFORWARD line's arguments. */
unsigned
xforward_ehlo_attrs(const char *args, size_t n)
{
	unsigned set = 0;
	size_t i = 0, start;
	int a;

	while (i < n) {
		while (i < n && args[i] == ' ')
			i++;
		start = i;
		while (i < n && args[i] != ' ')
			i++;
		if (i > start && (a = attr_lookup(args + start, i - start)) >= 0)
			set |= XF_BIT(a);
	}
	return set;
}

/* What we offer in EHLO to clients allowed to use XFORWARD. */
const char *
xforward_ehlo_line(void)
{
	return "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE";
}

/* Value of one hex digit, -1 if c is none. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode xtext s[0..n) into out (XF_VALUE_MAX + 1 bytes); -1 if it is
 * malformed, too long, or decodes to anything but printable ASCII. */
static int
xtext_decode(const char *s, size_t n, char *out)
{
	size_t i, o = 0;
	int hi, lo;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '=')
			return -1;
		if (c == '+') {
			if (i + 2 >= n)
				return -1;
			if ((hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c < 0x21 || c > 0x7e || o >= XF_VALUE_MAX)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* 1 if every byte of s is a letter, digit or one of `also`. */
static int
all_of(const char *s, const char *also)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr(also, *s) != NULL))
			return 0;
	return 1;
}

/* Check (and for ADDR normalise) a decoded value of attribute a in v;
 * NULL if good, else why not. */
static const char *
value_check(int a, char *v)
{
	unsigned char bin[16];
	unsigned long port;
	char *end;

	switch (a) {
	case XF_NAME:
	case XF_HELO:
		/* a host name or an address literal: nothing that could end
		 * a comment or a header field where it is written */
		return all_of(v, ".-_:[]") ? NULL : "not a host name";
	case XF_ADDR:
		if (strncasecmp(v, "IPV6:", 5) == 0) {
			memmove(v, v + 5, strlen(v + 5) + 1);
			return inet_pton(AF_INET6, v, bin) == 1 ? NULL :
			    "not an IPv6 address";
		}
		if (inet_pton(AF_INET, v, bin) == 1 ||
		    inet_pton(AF_INET6, v, bin) == 1)
			return NULL;
		return "not an IP address";
	case XF_PORT:
		if (v[0] == '\0' || strlen(v) > 5)
			return "not a port number";
		for (port = 0, end = v; *end >= '0' && *end <= '9'; end++)
			port = port * 10 + (unsigned long)(*end - '0');
		return *end == '\0' && port <= 65535 ? NULL :
		    "not a port number";
	case XF_PROTO:
		return strlen(v) <= 32 && all_of(v, "") ? NULL :
		    "not a protocol name";
	case XF_SOURCE:
		return strcasecmp(v, "LOCAL") == 0 ||
		    strcasecmp(v, "REMOTE") == 0 ? NULL :
		    "neither LOCAL nor REMOTE";
	case XF_IDENT:
		return all_of(v, ".-_:@/!#$%&*+=?^`{|}~") ? NULL :
		    "bad characters";
	default:
		return "unknown attribute";
	}
}

/* Length of v encoded as xtext (see xtext_encode). */
static size_t
xtext_len(const char *v)
{
	size_t n = 0;
	unsigned char c;

	for (; *v != '\0'; v++) {
		c = (unsigned char)*v;
		n += c < 0x21 || c > 0x7e || c == '+' || c == '=' ? 3 : 1;
	}
	return n;
}

/* Apply one command's arguments; all or nothing. */
int
xforward_parse(struct xforward *xf, const char *args, char *err,
    size_t errlen)
{
	struct xforward next = *xf;
	unsigned seen = 0;
	const char *p = args, *tok, *eq, *why;
	size_t tlen;
	int a, n = 0;
	char *v;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		tok = p;
		while (*p != '\0' && *p != ' ')
			p++;
		tlen = (size_t)(p - tok);
		if ((eq = memchr(tok, '=', tlen)) == NULL) {
			snprintf(err, errlen, "attribute without a value: %.*s",
			    (int)(tlen > 40 ? 40 : tlen), tok);
			return -1;
		}
		if ((a = attr_lookup(tok, (size_t)(eq - tok))) < 0) {
			snprintf(err, errlen, "unknown attribute: %.*s",
			    (int)(eq - tok > 40 ? 40 : eq - tok), tok);
			return -1;
		}
		if (seen & XF_BIT(a)) {
			snprintf(err, errlen, "%s given twice", attr_names[a]);
			return -1;
		}
		seen |= XF_BIT(a);
		n++;
		v = next.val[a];
		tlen -= (size_t)(eq + 1 - tok);
		if ((tlen == 13 && strncasecmp(eq + 1, "[UNAVAILABLE]", 13) == 0) ||
		    (tlen == 13 && strncasecmp(eq + 1, "[TEMPUNAVAIL]", 13) == 0)) {
			v[0] = '\0';
			continue;
		}
		if (tlen == 0 || xtext_decode(eq + 1, tlen, v) == -1) {
			snprintf(err, errlen, "%s: bad or over-long xtext value "
			    "(at most %d bytes)", attr_names[a], XF_VALUE_MAX);
			return -1;
		}
		if ((why = value_check(a, v)) != NULL) {
			snprintf(err, errlen, "%s: %s", attr_names[a], why);
			return -1;
		}
		/* what we accept we must be able to pass on: one value,
		 * encoded, fits one line of its own */
		if (sizeof("XFORWARD ") - 1 + strlen(attr_names[a]) + 1 +
		    (a == XF_ADDR && strchr(v, ':') != NULL ? 5 : 0) +
		    xtext_len(v) > XF_LINE_MAX) {
			snprintf(err, errlen, "%s: too long once encoded "
			    "(one line is at most %d bytes)", attr_names[a],
			    XF_LINE_MAX);
			return -1;
		}
	}
	if (n == 0) {
		snprintf(err, errlen, "no attributes");
		return -1;
	}
	*xf = next;
	return 0;
}

/* Encode v as xtext into out (at least 3 * strlen(v) + 1 bytes). */
static size_t
xtext_encode(const char *v, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;
	size_t o = 0;

	for (; *v != '\0'; v++) {
		c = (unsigned char)*v;
		if (c < 0x21 || c > 0x7e || c == '+' || c == '=') {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return o;
}

/* The next XFORWARD line for a server that offers `offered`. */
int
xforward_format(const struct xforward *xf, unsigned offered, int *pos,
    char *line, size_t linelen)
{
	char enc[3 * XF_VALUE_MAX + 16];
	const char *v;
	size_t len, need, lim;
	int a, n = 0;

	lim = linelen - 1 < XF_LINE_MAX ? linelen - 1 : XF_LINE_MAX;
	if (lim < sizeof("XFORWARD ") - 1)
		return 0;
	len = (size_t)snprintf(line, linelen, "XFORWARD");
	for (a = *pos; a < XF_NATTR; a++) {
		if (!(offered & XF_BIT(a)))
			continue;
		v = xf->val[a];
		if (v[0] == '\0')
			snprintf(enc, sizeof(enc), "[UNAVAILABLE]");
		else if (a == XF_ADDR && strchr(v, ':') != NULL) {
			memcpy(enc, "IPV6:", 5);
			xtext_encode(v, enc + 5);
		} else
			xtext_encode(v, enc);
		need = 1 + strlen(attr_names[a]) + 1 + strlen(enc);
		if (len + need > lim) {
			if (n == 0)     /* parse refuses what cannot fit */
				continue;
			break;
		}
		len += (size_t)snprintf(line + len, linelen - len, " %s=%s",
		    attr_names[a], enc);
		n++;
	}
	*pos = a;
	return n > 0;
}
