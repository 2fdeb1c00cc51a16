/* keyd_p11_uri.c: the RFC 7512 pkcs11: URI parser of keyd_p11.h, pure
 * (no file, no module: keyd_p11.c does those), so that it can be fuzzed. */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "keyd_p11.h"
#include "lib/lib.h"

#define SCHEME		"pkcs11:"

/* Where an attribute's value goes: a string of at most max bytes, or the
 * id's bytes (buf NULL). */
struct attr {
	const char	*name;
	unsigned int	 bit;
	int		 query;		/* 1: after '?', 0: in the path */
	size_t		 off;		/* of the buffer in keyd_p11_uri */
	size_t		 max;
};

#define STR(name, bit, query, field, max) \
	{ name, bit, query, offsetof(struct keyd_p11_uri, field), max }

static const struct attr attrs[] = {
	STR("token", KEYD_P11_TOKEN, 0, token, KEYD_P11_MAX_TOKEN),
	STR("manufacturer", KEYD_P11_MANUFACTURER, 0, manufacturer,
	    KEYD_P11_MAX_TOKEN),
	STR("serial", KEYD_P11_SERIAL, 0, serial, KEYD_P11_MAX_MODEL),
	STR("model", KEYD_P11_MODEL, 0, model, KEYD_P11_MAX_MODEL),
	STR("object", KEYD_P11_OBJECT, 0, object, KEYD_P11_MAX_LABEL),
	STR("id", KEYD_P11_ID, 0, id, KEYD_P11_MAX_ID),
	{ "type", KEYD_P11_TYPE, 0, 0, 16 },	/* set_type */
	STR("module-path", KEYD_P11_MODULE_PATH, 1, module_path,
	    KEYD_P11_MAX_PATH),
	STR("pin-value", KEYD_P11_PIN_VALUE, 1, pin, KEYD_P11_MAX_PIN),
	STR("pin-source", KEYD_P11_PIN_SOURCE, 1, pin_file,
	    KEYD_P11_MAX_PATH),
};

/* Attributes of RFC 7512 (and its successors) we know but do not do:
 * refused with a reason rather than as unknown. */
static const char *const known_unsupported[] = {
	"library-manufacturer", "library-description", "library-version",
	"slot-manufacturer", "slot-description", "slot-id", "module-name",
	NULL
};

/*
 * Percent-decode s[0..n) into out (at most max bytes): its length, -1 on
 * a bad escape or a character a URI may not hold literally (controls,
 * space, non-ASCII, '#', '%' alone), -2 when it is longer than max.
 */
static long
pct_decode(const char *s, size_t n, uint8_t *out, size_t max)
{
	size_t i, len = 0;
	int hi, lo;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3)
				return -1;
			if ((hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c <= ' ' || c >= 0x7f || c == '#' || c == '"' ||
		    c == '<' || c == '>' || c == '\\' || c == '^' ||
		    c == '`' || c == '{' || c == '}')
			return -1;
		if (len == max)
			return -2;
		out[len++] = c;
	}
	return (long)len;
}

/* The attribute called name[0..n), NULL if we have none of that name. */
static const struct attr *
attr_find(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (strlen(attrs[i].name) == n &&
		    memcmp(attrs[i].name, name, n) == 0)
			return &attrs[i];
	return NULL;
}

/* Why an attribute we do not take is refused. */
static void
attr_refuse(const char *name, size_t n, int query, char *err,
    size_t errlen)
{
	const struct attr *a;
	int i;

	if (n > 40)
		n = 40;
	for (i = 0; known_unsupported[i] != NULL; i++)
		if (strlen(known_unsupported[i]) == n &&
		    memcmp(known_unsupported[i], name, n) == 0) {
			snprintf(err, errlen, "pkcs11 URI: %.*s= is not "
			    "supported%s", (int)n, name,
			    strncmp(name, "module-name", n) == 0 ?
			    " (give module-path=)" : "");
			return;
		}
	if ((a = attr_find(name, n)) != NULL)
		snprintf(err, errlen, "pkcs11 URI: %s= belongs in the %s",
		    a->name, a->query ? "query (after '?')" :
		    "path (before '?')");
	else
		snprintf(err, errlen, "pkcs11 URI: unsupported %s attribute "
		    "'%.*s'", query ? "query" : "path", (int)n, name);
}

/* type= (decoded, n bytes): only what the key process can use. */
static int
set_type(struct keyd_p11_uri *u, const uint8_t *v, size_t n, char *err,
    size_t errlen)
{
	if (n == 7 && memcmp(v, "private", 7) == 0)
		u->type = KEYD_P11_PRIVATE;
	else if (n == 4 && memcmp(v, "cert", 4) == 0)
		u->type = KEYD_P11_CERT;
	else {
		snprintf(err, errlen, "pkcs11 URI: type= must be private or "
		    "cert (public keys, secret keys and data are no use "
		    "here)");
		return -1;
	}
	return 0;
}

/* pin-source=: a file: URI (RFC 8089: file:/p, file:///p,
 * file://localhost/p) of an absolute path; nothing else is run or read. */
static int
set_pin_file(struct keyd_p11_uri *u, char *err, size_t errlen)
{
	const char *p = u->pin_file;

	if (strncasecmp(p, "file:", 5) != 0) {
		snprintf(err, errlen, "pkcs11 URI: pin-source= must be a "
		    "file: URI (a command or other scheme is not supported)");
		return -1;
	}
	p += 5;
	if (strncmp(p, "//localhost/", 12) == 0)
		p += 11;
	else if (strncmp(p, "///", 3) == 0)
		p += 2;
	if (p[0] != '/' || p[1] == '/') {
		snprintf(err, errlen, "pkcs11 URI: pin-source= must name an "
		    "absolute path (file:/path)");
		return -1;
	}
	memmove(u->pin_file, p, strlen(p) + 1);
	return 0;
}

/* Store the value v[0..n) of attribute a. */
static int
attr_set(struct keyd_p11_uri *u, const struct attr *a, const char *v,
    size_t n, char *err, size_t errlen)
{
	uint8_t type[16], *buf = a->bit == KEYD_P11_TYPE ? type :
	    (uint8_t *)u + a->off;
	long len;

	if (u->have & a->bit) {
		snprintf(err, errlen, "pkcs11 URI: %s= appears twice",
		    a->name);
		return -1;
	}
	u->have |= a->bit;
	if ((len = pct_decode(v, n, buf, a->max)) < 0) {
		snprintf(err, errlen, len == -2 ? "pkcs11 URI: %s= is longer "
		    "than %zu bytes" : "pkcs11 URI: %s= has a bad character "
		    "or %%-escape", a->name, a->max);
		return -1;
	}
	if (a->bit == KEYD_P11_TYPE)
		return set_type(u, type, (size_t)len, err, errlen);
	if (a->bit == KEYD_P11_ID) {
		u->idlen = (size_t)len;
		return 0;
	}
	if (memchr(buf, '\0', (size_t)len) != NULL) {
		snprintf(err, errlen, "pkcs11 URI: %s= holds a NUL", a->name);
		return -1;
	}
	buf[len] = '\0';
	if (a->bit == KEYD_P11_MODULE_PATH && buf[0] != '/') {
		snprintf(err, errlen, "pkcs11 URI: module-path= must be an "
		    "absolute path");
		return -1;
	}
	if (a->bit == KEYD_P11_PIN_SOURCE)
		return set_pin_file(u, err, errlen);
	return 0;
}

/* One attribute "name=value" of s[0..n). */
static int
attr_parse(struct keyd_p11_uri *u, const char *s, size_t n, int query,
    char *err, size_t errlen)
{
	const char *eq = memchr(s, '=', n);
	const struct attr *a;
	size_t namelen;

	if (n == 0) {
		snprintf(err, errlen, "pkcs11 URI: an empty attribute "
		    "(two separators in a row)");
		return -1;
	}
	if (eq == NULL) {
		snprintf(err, errlen, "pkcs11 URI: attribute '%.*s' has no "
		    "'='", (int)(n > 40 ? 40 : n), s);
		return -1;
	}
	namelen = (size_t)(eq - s);
	if ((a = attr_find(s, namelen)) == NULL || a->query != query) {
		attr_refuse(s, namelen, query, err, errlen);
		return -1;
	}
	return attr_set(u, a, eq + 1, n - namelen - 1, err, errlen);
}

/* The attributes of s[0..n), separated by sep. */
static int
attrs_parse(struct keyd_p11_uri *u, const char *s, size_t n, int sep,
    int query, char *err, size_t errlen)
{
	const char *end = s + n, *next;

	if (n == 0)
		return 0;
	for (;;) {
		if ((next = memchr(s, sep, (size_t)(end - s))) == NULL)
			next = end;
		if (attr_parse(u, s, (size_t)(next - s), query, err,
		    errlen) == -1)
			return -1;
		if (next == end)
			return 0;
		s = next + 1;
	}
}

/* Parse a pkcs11: URI (see keyd_p11.h). */
int
keyd_p11_uri_parse(const char *uri, struct keyd_p11_uri *u, char *err,
    size_t errlen)
{
	size_t len = strnlen(uri, KEYD_P11_MAX_URI + 1);
	const char *path, *q;
	int rc;

	memset(u, 0, sizeof(*u));
	if (len > KEYD_P11_MAX_URI) {
		snprintf(err, errlen, "pkcs11 URI: longer than %d bytes",
		    KEYD_P11_MAX_URI);
		return -1;
	}
	if (strncasecmp(uri, SCHEME, strlen(SCHEME)) != 0) {
		snprintf(err, errlen, "not a pkcs11: URI");
		return -1;
	}
	path = uri + strlen(SCHEME);
	len -= strlen(SCHEME);
	if (memchr(path, '#', len) != NULL) {
		snprintf(err, errlen, "pkcs11 URI: a fragment ('#') is not "
		    "allowed");
		return -1;
	}
	q = memchr(path, '?', len);
	rc = attrs_parse(u, path, q != NULL ? (size_t)(q - path) : len, ';',
	    0, err, errlen);
	if (rc == 0 && q != NULL)
		rc = attrs_parse(u, q + 1, len - (size_t)(q + 1 - path), '&',
		    1, err, errlen);
	if (rc == 0 && (u->have & KEYD_P11_PIN_VALUE) &&
	    (u->have & KEYD_P11_PIN_SOURCE)) {
		snprintf(err, errlen, "pkcs11 URI: pin-value= and pin-source= "
		    "together");
		rc = -1;
	}
	if (rc == -1)
		keyd_p11_uri_clear(u);
	return rc;
}

/* Wipe a parsed URI. */
void
keyd_p11_uri_clear(struct keyd_p11_uri *u)
{
	OPENSSL_cleanse(u, sizeof(*u));
}
