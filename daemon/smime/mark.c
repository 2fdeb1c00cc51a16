/* mark.c: the loop-guard mark bound to the content (see mark.h). */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "keys.h"
#include "lib/lib.h"
#include "mark.h"
#include "policy/policy.h"
#include "smime_msg.h"

#define MARK_LABEL	"smrelay-mark-1"
#define MAC_HEX		(2 * KEYS_MARK_LEN)

/* What the MAC covers besides host and actions. */
struct content {
	unsigned char	 digest[32];
	int		 ok;
};

/* The first Content-Type value, its blanks left out (refolding by a later
 * hop changes nothing). */
static int
ct_fn(const char *v, void *arg)
{
	EVP_MD_CTX *md = arg;

	for (; *v != '\0'; v++)
		if (*v != ' ' && *v != '\t')
			EVP_DigestUpdate(md, v, 1);
	return 1;
}

/* SHA-256 of the top-level Content-Type, a NUL, and the body with CRs
 * and the line breaks at its end left out. */
static void
content_digest(const char *m, size_t len, struct content *c)
{
	EVP_MD_CTX *md;
	size_t off = smime_msg_body(m, len), end = len, i;
	unsigned int dl = 0;

	c->ok = 0;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto done;
	smime_msg_fields(m, len, "Content-Type", ct_fn, md);
	EVP_DigestUpdate(md, "", 1);
	while (end > off && (m[end - 1] == '\n' || m[end - 1] == '\r'))
		end--;
	for (i = off; i < end; i++)
		if (m[i] == '\r') {
			EVP_DigestUpdate(md, m + off, i - off);
			off = i + 1;
		}
	EVP_DigestUpdate(md, m + off, end - off);
	c->ok = EVP_DigestFinal_ex(md, c->digest, &dl) == 1 && dl == 32;
 done:
	EVP_MD_CTX_free(md);
}

/* The MAC of host, the canonical actions and the content. */
static int
mark_mac(struct keys *ks, const char *host, unsigned actions,
    const struct content *c, unsigned char mac[KEYS_MARK_LEN])
{
	char buf[512], acts[64];
	size_t n, i;
	int k;

	if (!c->ok)
		return -1;
	policy_actions_str(actions, acts, sizeof(acts));
	k = snprintf(buf, sizeof(buf), "%s%c%s%c%s%c", MARK_LABEL, 0, host,
	    0, acts, 0);
	if (k < 0 || (size_t)k + sizeof(c->digest) > sizeof(buf))
		return -1;
	n = (size_t)k;
	for (i = 0; i < n; i++)         /* host names compare without case */
		buf[i] = (char)tolower((unsigned char)buf[i]);
	memcpy(buf + n, c->digest, sizeof(c->digest));
	return keys_mark(ks, buf, n + sizeof(c->digest), mac);
}

/* content_digest() of a body read in pieces: line breaks at its end are
 * held until a byte shows they are not the end. */
struct body_md {
	EVP_MD_CTX	*md;
	size_t		 nl;		/* LFs held (CRs never count) */
};

/* Digest a piece of the body: CRs left out, LFs held (see above); the
 * text between line breaks gathered in runs (memchr finds their ends)
 * into one buffer, digested a buffer at a time rather than a line at a
 * time (4 % of the network process's CPU relaying signed mail). */
static void
body_md_feed(struct body_md *b, const char *p, size_t n)
{
	char buf[8192];
	const char *q;
	size_t i = 0, o = 0, k;

	while (i < n) {
		if (p[i] == '\r') {
			i++;
			continue;
		}
		if (p[i] == '\n') {
			b->nl++;
			i++;
			continue;
		}
		for (; b->nl > 0; b->nl--) {	/* they were not the end */
			if (o == sizeof(buf)) {
				EVP_DigestUpdate(b->md, buf, o);
				o = 0;
			}
			buf[o++] = '\n';
		}
		k = n - i < sizeof(buf) ? n - i : sizeof(buf);
		if ((q = memchr(p + i, '\n', k)) != NULL)
			k = (size_t)(q - (p + i));
		if ((q = memchr(p + i, '\r', k)) != NULL)
			k = (size_t)(q - (p + i));
		if (o + k > sizeof(buf)) {
			EVP_DigestUpdate(b->md, buf, o);
			o = 0;
		}
		memcpy(buf + o, p + i, k);
		o += k;
		i += k;
	}
	if (o > 0)
		EVP_DigestUpdate(b->md, buf, o);
}

/* content_digest() of a message whose header block is hdr and whose
 * body rd() reads from bodyoff on, in pieces; c->ok 0 when it could not
 * be read. */
static void
content_digest_read(const char *hdr, size_t hlen,
    ssize_t (*rd)(void *arg, char *buf, size_t len, size_t off), void *arg,
    size_t bodyoff, struct content *c)
{
	struct body_md b;
	unsigned int dl = 0;
	size_t off = bodyoff;
	ssize_t n;
	char *buf;

	c->ok = 0;
	b.nl = 0;
	if ((b.md = EVP_MD_CTX_new()) == NULL)
		return;
	buf = xmalloc(65536);
	if (EVP_DigestInit_ex(b.md, EVP_sha256(), NULL) == 1) {
		smime_msg_fields(hdr, hlen, "Content-Type", ct_fn, b.md);
		EVP_DigestUpdate(b.md, "", 1);
		while ((n = rd(arg, buf, 65536, off)) > 0) {
			body_md_feed(&b, buf, (size_t)n);
			off += (size_t)n;
		}
		c->ok = n == 0 && EVP_DigestFinal_ex(b.md, c->digest, &dl) ==
		    1 && dl == 32;
	}
	free(buf);
	EVP_MD_CTX_free(b.md);
}

/* mark_make() of a message whose header block (through the blank line)
 * is hdr and whose body rd() reads from bodyoff on, in pieces. */
int
mark_make_read(struct keys *ks, const char *host, unsigned actions,
    const char *hdr, size_t hlen,
    ssize_t (*rd)(void *arg, char *buf, size_t len, size_t off), void *arg,
    size_t bodyoff, char *field, size_t fieldlen)
{
	struct content c;
	unsigned char mac[KEYS_MARK_LEN];
	char hex[MAC_HEX + 1], acts[64];
	size_t i;
	int k;

	content_digest_read(hdr, hlen, rd, arg, bodyoff, &c);
	if (mark_mac(ks, host, actions, &c, mac) == -1)
		return -1;
	for (i = 0; i < sizeof(mac); i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	policy_actions_str(actions, acts, sizeof(acts));
	k = snprintf(field, fieldlen, "%s: %s; %s;\r\n mac=%s\r\n",
	    MARK_FIELD, host, acts, hex);
	return k < 0 || (size_t)k >= fieldlen ? -1 : 0;
}

int
mark_make(struct keys *ks, const char *host, unsigned actions,
    const char *msg, size_t len, char *field, size_t fieldlen)
{
	struct content c;
	unsigned char mac[KEYS_MARK_LEN];
	char hex[MAC_HEX + 1], acts[64];
	size_t i;
	int n;

	content_digest(msg, len, &c);
	if (mark_mac(ks, host, actions, &c, mac) == -1)
		return -1;
	for (i = 0; i < sizeof(mac); i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	policy_actions_str(actions, acts, sizeof(acts));
	n = snprintf(field, fieldlen, "%s: %s; %s;\r\n mac=%s\r\n",
	    MARK_FIELD, host, acts, hex);
	return n < 0 || (size_t)n >= fieldlen ? -1 : 0;
}

/* A mark value: host first; 1 if it is host's. */
static int
is_ours(const char *v, const char *host)
{
	size_t hl = strlen(host);

	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, host, hl) != 0)
		return 0;
	v += hl;
	while (*v == ' ' || *v == '\t')
		v++;
	return *v == ';' || *v == '\0';
}

/* Split "HOST; ACTIONS; mac=HEX" (host already matched): the actions and
 * the MAC; -1 when it is not of that form. */
static int
parse_mark(const char *v, unsigned *actions, unsigned char mac[KEYS_MARK_LEN])
{
	char acts[64], err[128];
	const char *a, *e;
	size_t n, i;
	unsigned x;

	if ((a = strchr(v, ';')) == NULL || (e = strchr(++a, ';')) == NULL)
		return -1;
	while (a < e && (*a == ' ' || *a == '\t'))
		a++;
	for (n = (size_t)(e - a); n > 0 && (a[n - 1] == ' ' ||
	    a[n - 1] == '\t'); n--)
		;
	if (n == 0 || n >= sizeof(acts))
		return -1;
	memcpy(acts, a, n);
	acts[n] = '\0';
	if (policy_actions_parse(acts, actions, err, sizeof(err)) == -1)
		return -1;
	for (e++; *e == ' ' || *e == '\t'; e++)
		;
	if (strncmp(e, "mac=", 4) != 0)
		return -1;
	for (e += 4, i = 0; i < KEYS_MARK_LEN; i++, e += 2) {
		if (!isxdigit((unsigned char)e[0]) ||
		    !isxdigit((unsigned char)e[1]) ||
		    sscanf(e, "%2x", &x) != 1)
			return -1;
		mac[i] = (unsigned char)x;
	}
	while (*e == ' ' || *e == '\t')
		e++;
	return *e == '\0' ? 0 : -1;
}

struct read_arg {
	struct keys		*ks;
	int			 all;           /* strip: valid ones too */
	const char		*host;
	struct content		 c;
	unsigned		 done;
	int			 forged;
};

/* One mark of host: 1 when it does not verify. */
static int
check_mark(struct read_arg *r, const char *v)
{
	unsigned char got[KEYS_MARK_LEN], want[KEYS_MARK_LEN];
	unsigned actions;

	if (parse_mark(v, &actions, got) == 0 &&
	    mark_mac(r->ks, r->host, actions, &r->c, want) == 0 &&
	    CRYPTO_memcmp(got, want, sizeof(got)) == 0) {
		r->done |= actions;
		return 0;
	}
	r->forged++;
	return 1;
}

/* smime_msg_fields/drop_fields callback: host's marks only. */
static int
read_fn(const char *v, void *arg)
{
	struct read_arg *r = arg;

	if (!is_ours(v, r->host))
		return 0;
	return check_mark(r, v) || r->all;
}

/* Every field read, none stops the walk. */
static int
read_all_fn(const char *v, void *arg)
{
	read_fn(v, arg);
	return 0;
}

unsigned
mark_read(struct keys *ks, const char *host, const char *msg, size_t len,
    int *forged)
{
	struct read_arg r;

	memset(&r, 0, sizeof(r));
	r.ks = ks;
	r.host = host;
	content_digest(msg, len, &r.c);
	smime_msg_fields(msg, len, MARK_FIELD, read_all_fn, &r);
	*forged = r.forged;
	return r.done;
}

char *
mark_strip(struct keys *ks, const char *host, const char *msg, size_t len,
    int all, size_t *outlen)
{
	struct read_arg r;

	memset(&r, 0, sizeof(r));
	r.all = all;
	r.ks = ks;
	r.host = host;
	content_digest(msg, len, &r.c);
	return smime_msg_drop_fields(msg, len, MARK_FIELD, read_fn, &r,
	    outlen);
}

/* mark_read() and mark_strip() at once, of a message read in pieces. */
char *
mark_read_strip(struct keys *ks, const char *host, unsigned actions,
    const char *hdr, size_t hlen,
    ssize_t (*rd)(void *arg, char *buf, size_t len, size_t off), void *arg,
    size_t bodyoff, unsigned *done, int *forged, size_t *outlen)
{
	struct read_arg r;
	unsigned todo;

	memset(&r, 0, sizeof(r));
	r.ks = ks;
	r.host = host;
	content_digest_read(hdr, hlen, rd, arg, bodyoff, &r.c);
	smime_msg_fields(hdr, hlen, MARK_FIELD, read_all_fn, &r);
	*done = r.done;
	*forged = r.forged;
	todo = actions & ~r.done;
	/* as the whole-message path (read_marks): forged ones go, and all
	 * of ours when a new mark will replace them */
	if (r.forged == 0 && (r.done == 0 || todo == 0))
		return NULL;
	r.all = todo != 0;
	r.done = 0;
	r.forged = 0;
	return smime_msg_drop_fields(hdr, hlen, MARK_FIELD, read_fn, &r,
	    outlen);
}
