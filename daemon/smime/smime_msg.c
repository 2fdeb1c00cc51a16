/* smime_msg.c: S/MIME on whole messages: the MIME layer (proto/mime*.c),
 * the CMS engine (proto/cms.c) and the certificate store put together. */
#include "autoconfig.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/buffer.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "certcache.h"
#include "harvest.h"
#include "keys.h"
#include "proto/proto.h"
#include "smime_msg.h"
#include "smime_msg_priv.h"
#include "store/store.h"
#include "lib/lib.h"

#define ADDR_MAX	320	/* an address, with room to spare */
#define MIME_VERSION	"MIME-Version: 1.0\r\n"
#define SIG_SLACK	65536	/* multipart/signed wrapper, signature, chain */

/* A growing output buffer. */
struct obuf {
	char	*p;
	size_t	 len, cap;
};

/* Append bytes. */
static void
ob_add(struct obuf *b, const char *s, size_t n)
{
	if (b->cap - b->len <= n) {
		b->cap = b->cap * 2 + n + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append a C string. */
static void
ob_str(struct obuf *b, const char *s)
{
	ob_add(b, s, strlen(s));
}

/* Append with every bare LF made CRLF. */
static void
ob_crlf(struct obuf *b, const char *s, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (s[i] != '\n' || (i > 0 && s[i - 1] == '\r'))
			continue;
		ob_add(b, s + start, i - start);
		ob_add(b, "\r\n", 2);
		start = i + 1;
	}
	ob_add(b, s + start, n - start);
}

/* Where the header fields end (*hlen) and the body starts (*body). */
static void
hdr_split(const char *m, size_t len, size_t *hlen, size_t *body)
{
	const char *nl;
	size_t off = 0;

	while (off < len) {
		if (m[off] == '\n' || (m[off] == '\r' && off + 1 < len &&
		    m[off + 1] == '\n')) {
			*hlen = off;
			*body = off + (m[off] == '\r' ? 2 : 1);
			return;
		}
		if ((nl = memchr(m + off, '\n', len - off)) == NULL)
			break;
		off = (size_t)(nl - m) + 1;
	}
	*hlen = *body = len;
}

/* End of the field starting at off, continuation lines included. */
static size_t
field_end(const char *m, size_t hlen, size_t off)
{
	const char *nl;

	for (;;) {
		if ((nl = memchr(m + off, '\n', hlen - off)) == NULL)
			return hlen;
		off = (size_t)(nl - m) + 1;
		if (off >= hlen || (m[off] != ' ' && m[off] != '\t'))
			return off;
	}
}

/* The value of field [off, end) if it is called name, else NULL. */
static const char *
field_value(const char *m, size_t off, size_t end, const char *name)
{
	size_t n = strlen(name);

	if (end - off <= n || strncasecmp(m + off, name, n) != 0)
		return NULL;
	for (off += n; off < end && (m[off] == ' ' || m[off] == '\t'); off++)
		;
	return off < end && m[off] == ':' ? m + off + 1 : NULL;
}

/* Whether an Authentication-Results value [p, e) names host first. */
static int
ar_is_ours(const char *p, const char *e, const char *host)
{
	const char *id;
	int depth = 0;

	for (; p < e; p++) {
		if (depth > 0) {
			if (*p == '\\' && p + 1 < e)
				p++;
			else
				depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
		} else if (*p == '(')
			depth = 1;
		else if (strchr(" \t\r\n", *p) == NULL)
			break;
	}
	if (p < e && *p == '"') {
		for (id = ++p; p < e && *p != '"'; p++)
			;
	} else
		for (id = p; p < e && strchr(";( \t\r\n", *p) == NULL; p++)
			;
	return (size_t)(p - id) == strlen(host) &&
	    strncasecmp(id, host, (size_t)(p - id)) == 0;
}

/*
 * Copy the header fields [0, hlen) of m, leaving out the
 * Authentication-Results of host and, with outer, the Content-* and
 * MIME-Version fields; with crlf, line ends made CRLF.
 */
static int given_again(const char *, size_t, size_t, const char *, size_t);

static void
copy_fields(struct obuf *b, const char *m, size_t hlen, const char *host,
    int outer, int crlf, const char *ent, size_t n)
{
	const char *v;
	size_t off, end;

	for (off = 0; off < hlen; off = end) {
		end = field_end(m, hlen, off);
		if ((v = field_value(m, off, end, "Authentication-Results")) !=
		    NULL && ar_is_ours(v, m + end, host))
			continue;
		if (outer && (strncasecmp(m + off, "Content-", 8) == 0 ||
		    field_value(m, off, end, "MIME-Version") != NULL))
			continue;
		if (ent != NULL && given_again(m, off, end, ent, n))
			continue;
		if (crlf)
			ob_crlf(b, m + off, end - off);
		else
			ob_add(b, m + off, end - off);
		if (m[end - 1] != '\n')
			ob_add(b, "\r\n", 2);
	}
}

/* Fields a message has at most once (RFC 5322 3.6). */
static const char *const once_fields[] = { "From", "Sender", "Reply-To",
    "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "In-Reply-To",
    "References" };

static int
has_field_fn(const char *value, void *arg)
{
	(void)value;
	*(int *)arg = 1;
	return 1;
}

/* Whether field [off, end) of m is one a message has once and the
 * header block ent[0..n) has as well. */
static int
given_again(const char *m, size_t off, size_t end, const char *ent,
    size_t n)
{
	size_t i;
	int has = 0;

	for (i = 0; i < sizeof(once_fields) / sizeof(once_fields[0]); i++)
		if (field_value(m, off, end, once_fields[i]) != NULL) {
			smime_msg_fields(ent, n, once_fields[i], has_field_fn,
			    &has);
			return has;
		}
	return 0;
}

/*
 * An unwrapped entity (or just its header block) as it follows our
 * MIME-Version: without its own MIME-Version fields, so that the message
 * has exactly one, and without Authentication-Results (a sender's claim
 * inside the envelope is no verdict of ours); malloc'd.
 */
char *
smime_msg_unwrapped_fields(const char *e, size_t n, size_t *outlen)
{
	char *v, *a;
	size_t vlen;

	v = mime_drop_field(e, n, "MIME-Version", &vlen);
	a = mime_drop_field(v, vlen, "Authentication-Results", outlen);
	free(v);
	return a;
}

/* Whether an entity starting with ent[0..n) has a header block: a field
 * name and a colon first. */
int
smime_msg_has_fields(const char *ent, size_t n)
{
	size_t i;

	for (i = 0; i < n && ent[i] != ':' && ent[i] != ' ' && ent[i] !=
	    '\t' && ent[i] != '\r' && ent[i] != '\n'; i++)
		;
	return i > 0 && i < n && ent[i] == ':';
}

/* A field value [v, e) without its line breaks (unfolded), malloc'd. */
static char *
unfold(const char *v, const char *e)
{
	char *u = xmalloc((size_t)(e - v) + 1);
	size_t n = 0;

	for (; v < e; v++)
		if (*v != '\r' && *v != '\n')
			u[n++] = *v;
	u[n] = '\0';
	return u;
}

/* Call fn with the value of each top-level header field called name. */
int
smime_msg_fields(const char *m, size_t len, const char *name,
    int (*fn)(const char *, void *), void *arg)
{
	const char *v;
	char *u;
	size_t hlen, body, off, end;
	int r;

	hdr_split(m, len, &hlen, &body);
	for (off = 0; off < hlen; off = end) {
		end = field_end(m, hlen, off);
		if ((v = field_value(m, off, end, name)) == NULL)
			continue;
		r = fn(u = unfold(v, m + end), arg);
		free(u);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Where the body of m starts (after the blank line; len if none). */
size_t
smime_msg_body(const char *m, size_t len)
{
	size_t hlen, body;

	hdr_split(m, len, &hlen, &body);
	return body;
}

/*
 * m without the top-level fields called name for which drop(value, arg)
 * says 1 (value unfolded as smime_msg_fields gives it): a new message
 * (*outlen bytes), or NULL when no field was dropped.
 */
char *
smime_msg_drop_fields(const char *m, size_t len, const char *name,
    int (*drop)(const char *value, void *arg), void *arg, size_t *outlen)
{
	struct obuf b = { NULL, 0, 0 };
	const char *v;
	char *u;
	size_t hlen, body, off, end;
	int r, dropped = 0;

	hdr_split(m, len, &hlen, &body);
	for (off = 0; off < hlen; off = end) {
		end = field_end(m, hlen, off);
		if ((v = field_value(m, off, end, name)) != NULL) {
			r = drop(u = unfold(v, m + end), arg);
			free(u);
			if (r) {
				if (!dropped)
					ob_add(&b, m, off);
				dropped = 1;
				continue;
			}
		}
		if (dropped)
			ob_add(&b, m + off, end - off);
	}
	if (!dropped)
		return NULL;
	ob_add(&b, m + hlen, len - hlen);
	*outlen = b.len;
	return b.p;
}

/* smime_msg_fields callback: each From value into a struct mail_from. */
static int
from_fn(const char *value, void *arg)
{
	mail_from_add(arg, value);
	return 0;
}

void
smime_msg_from_read(const char *m, size_t len, struct mail_from *f)
{
	memset(f, 0, sizeof(*f));
	smime_msg_fields(m, len, "From", from_fn, f);
}

struct first_arg {
	char	*buf;
	size_t	 buflen;
	int	 r;
};

/* smime_msg_fields callback: the first From field's first mailbox; stop
 * there (what mail_from_add() keeps as .addr, without the rules' work). */
static int
first_fn(const char *value, void *arg)
{
	struct first_arg *a = arg;

	a->r = mail_addr_first(value, a->buf, a->buflen);
	return 1;
}

int
smime_msg_from(const char *m, size_t len, char *buf, size_t buflen)
{
	struct first_arg a = { buf, buflen, -1 };

	if (buflen == 0)
		return -1;
	buf[0] = '\0';
	smime_msg_fields(m, len, "From", first_fn, &a);
	return a.r;
}

const char *
smime_msg_inner_from(const struct mail_from *outer, const char *inner,
    size_t ilen)
{
	struct mail_from i;

	smime_msg_from_read(inner, ilen, &i);
	return mail_from_inner(outer, &i);
}

/* Release a result. */
void
smime_msg_res_free(struct smime_msg_res *res)
{
	cms_links_free(res->undecided, &res->nundecided);
}

/* Sign the canonical entity read from bin as from, the result to out. */
int
smime_msg_sign_bio(const struct certsrc *src, BIO *bin, const char *from,
    const struct smime_msg_opts *o, BIO *out, struct smime_msg_res *res)
{
	static const struct smime_msg_opts defaults;
	struct store_key *k;
	int r;

	if (o == NULL)
		o = &defaults;
	if (from == NULL || *from == '\0') {
		snprintf(res->err, sizeof(res->err),
		    "no sender address to sign as");
		return -1;
	}
	k = keys_signing(certcache_keys(src->cc), from, time(NULL));
	if (k == NULL) {
		snprintf(res->err, sizeof(res->err), "no signing key for %s "
		    "(none imported, or none valid now)", from);
		return -1;
	}
	r = cms_sign(bin, k->cert, k->pkey, k->chain,
	    (o->opaque ? SMIME_OPT_OPAQUE : 0) | (o->pss ? SMIME_OPT_PSS : 0),
	    out, res->err, sizeof(res->err));
	store_key_free(k);
	return r;
}

/* Add x to the recipients unless it is there already; takes x. */
static void
rcpt_push(STACK_OF(X509) *to, X509 *x)
{
	int i;

	for (i = 0; i < sk_X509_num(to); i++)
		if (X509_cmp(sk_X509_value(to, i), x) == 0) {
			X509_free(x);
			return;
		}
	if (sk_X509_push(to, x) <= 0)
		abort();
}

/*
 * The recipients' certificates; *gcm when every one allows AES-GCM.  NULL
 * with res->err listing the addresses without a usable certificate.
 */
static STACK_OF(X509) *
rcpt_certs(const struct certsrc *src, const char *from, const char *const *rcpts,
    size_t n, const struct smime_msg_opts *o, int *gcm,
    struct smime_msg_res *res)
{
	STACK_OF(X509) *to = sk_X509_new_null();
	struct store_key *k;
	struct obuf miss = { NULL, 0, 0 };
	char why[160];
	X509 *x;
	size_t i;
	int caps;

	*gcm = n > 0;
	for (i = 0; i < n && to != NULL; i++) {
		caps = 0;
		if ((x = certcache_cert_for(src, rcpts[i], &caps)) == NULL) {
			ob_str(&miss, miss.len ? ", " : "");
			ob_str(&miss, rcpts[i]);
			if (certcache_refused(src, rcpts[i], why, sizeof(why))) {
				ob_str(&miss, " (");
				ob_str(&miss, why);
				ob_str(&miss, ")");
			}
			continue;
		}
		if (!(caps & STORE_CAP_GCM))
			*gcm = 0;
		rcpt_push(to, x);
	}
	if (to != NULL && miss.len == 0 && o->include_sender_cert) {
		if (from == NULL || (k = keys_signing(certcache_keys(src->cc),
		    from, time(NULL))) == NULL)
			ob_str(&miss, from ? from : "the sender (no address)");
		else {
			X509_up_ref(k->cert);
			rcpt_push(to, k->cert);
			store_key_free(k);
		}
	}
	if (to == NULL || miss.len > 0 || n == 0) {
		snprintf(res->err, sizeof(res->err), "%s%s", n == 0 ?
		    "no recipients" : "no usable certificate for ",
		    miss.p ? miss.p : "");
		sk_X509_pop_free(to, X509_free);
		to = NULL;
	}
	free(miss.p);
	return to;
}

/* Encrypt the canonical entity read from bin for the recipients into
 * out. */
int
smime_msg_encrypt_bio(const struct certsrc *src, BIO *bin, const char *from,
    const char *const *rcpts, size_t n, const struct smime_msg_opts *o,
    BIO *out, struct smime_msg_res *res)
{
	static const struct smime_msg_opts defaults;
	STACK_OF(X509) *to;
	int gcm, r;

	if (o == NULL)
		o = &defaults;
	if ((to = rcpt_certs(src, from, rcpts, n, o, &gcm, res)) == NULL)
		return -1;
	if (o->cipher != SMIME_MSG_AUTO)
		gcm = o->cipher == SMIME_MSG_GCM;
	r = cms_encrypt(bin, to, gcm ? SMIME_OPT_GCM : 0, out,
	    res->err, sizeof(res->err));
	res->gcm = r == 0 && gcm;
	sk_X509_pop_free(to, X509_free);
	return r;
}

/* Release what trust_build() made. */
static void
trust_free(struct cms_trust *t)
{
	X509_STORE_free(t->store);
	sk_X509_CRL_pop_free(t->crls, X509_CRL_free);
	sk_X509_pop_free(t->certs, X509_free);
	memset(t, 0, sizeof(*t));
}

/*
 * What a signature is checked against: the store's anchors, its CRLs (so
 * the engine checks revocation when there are any) and, for signatures
 * that carry no certificate, the stored certificates of the From address.
 */
static int
trust_build(const struct certsrc *src, const char *from,
    struct cms_trust *t)
{
	memset(t, 0, sizeof(*t));
	t->revocation = certcache_revocation(src->cc);
	t->ocsp = certcache_ocsp;
	t->crl_source = certcache_crl_source;
	t->ocsp_arg = (void *)src;
	t->memo = certcache_memo(src->cc);
	if ((t->store = certcache_trust(src, &t->crls)) == NULL ||
	    (t->certs = *from != '\0' ? certcache_certs_of(src, from) :
	    sk_X509_new_null()) == NULL ||
	    certcache_add_intermediates(src, t->certs) == -1) {
		trust_free(t);
		return -1;
	}
	return 0;
}

/* Harvest the signer of a passed signature, with its GCM capability. */
static void
harvest(const struct certsrc *src, const struct cms_verify *v,
    struct smime_msg_res *res)
{
	int caps = (v->caps & SMIME_CAP_AES256_GCM) ? STORE_CAP_GCM : 0;
	int64_t id;

	if (v->signer == NULL)
		return;
	if ((id = harvest_signer(src, v->signer, v->certs, caps)) > 0)
		res->harvested = id;
}

/* Check a detached signature (der) over the content read from `content`
 * (rewindable: a bare-LF copy is tried again canonicalised by the engine). */
void
smime_msg_check_bio(const struct certsrc *src, BIO *content,
    const unsigned char *der, size_t derlen, const char *from,
    struct cms_verify *v)
{
	struct cms_trust t;
	BIO *d;

	if (trust_build(src, from, &t) == -1) {
		v->outcome = SMIME_FAIL;
		snprintf(v->reason, sizeof(v->reason),
		    "trust store unavailable");
		return;
	}
	if (derlen > INT_MAX || (d = BIO_new_mem_buf(der, (int)derlen)) ==
	    NULL) {
		v->outcome = SMIME_FAIL;
		snprintf(v->reason, sizeof(v->reason),
		    "message too large, or out of memory");
	} else {
		cms_verify(content, d, &t, from, NULL, v);
		BIO_free(d);
	}
	trust_free(&t);
}

/* The end of a verification: harvest a pass, fill res, write the
 * Authentication-Results field (without CRLF) into ar; frees v. */
void
smime_msg_verdict(const struct certsrc *src, struct cms_verify *v,
    const char *host, struct smime_msg_res *res, char *ar, size_t arlen)
{
	if (v->outcome == SMIME_PASS)
		harvest(src, v, res);
	res->outcome = v->outcome;
	res->verified = v->outcome != SMIME_NONE;
	snprintf(res->reason, sizeof(res->reason), "%s", v->reason);
	snprintf(res->identity, sizeof(res->identity), "%s", v->identity);
	cms_auth_results(ar, arlen, host, v);
	memcpy(res->undecided, v->undecided, sizeof(res->undecided));
	res->nundecided = v->nundecided;
	v->nundecided = 0;      /* moved */
	cms_verify_free(v);
}

/* The header of a decrypted message: the received fields without
 * Content-*, MIME-Version and host's Authentication-Results, CRLF, then
 * MIME-Version; and "\r\n" in *blank when the entity ent (its first n
 * bytes) needs an empty header block.  A field a message has once (From,
 * To, Subject, ...) that the entity's own header block (ent, when it is
 * that) gives again is left to it: the unwrapped message has one From,
 * the one inside the envelope or signature (RFC 9788 header protection),
 * not the outer one besides.  malloc'd. */
char *
smime_msg_open_head(const char *hdr, size_t hlen, const char *host,
    const char *ent, size_t n, size_t *outlen)
{
	struct obuf b = { NULL, 0, 0 };

	copy_fields(&b, hdr, hlen, host, 1, 1, ent, n);
	ob_str(&b, "MIME-Version: 1.0\r\n");
	if (n > 0 && ent[0] != '\r' && ent[0] != '\n' &&
	    !smime_msg_has_fields(ent, n))
		ob_add(&b, "\r\n", 2);
	*outlen = b.len;
	return b.p != NULL ? b.p : xstrdup("");
}

/* The header of a verified message that is not unwrapped: ar on top, the
 * fields without host's Authentication-Results; malloc'd. */
char *
smime_msg_verify_head(const char *hdr, size_t hlen, const char *host,
    const char *ar, size_t *outlen)
{
	struct obuf b = { NULL, 0, 0 };
	const char *nl = memchr(hdr, '\n', hlen);
	int crlf = nl == NULL || (nl > hdr && nl[-1] == '\r');

	ob_str(&b, ar);
	ob_str(&b, crlf ? "\r\n" : "\n");
	copy_fields(&b, hdr, hlen, host, 0, 0, NULL, 0);
	*outlen = b.len;
	return b.p;
}

/* Open the envelope read from der with the first of our keys that
 * fits, the content to out; -1 (err set). */
int
smime_msg_open_bio(const struct certsrc *src, BIO *der, BIO *out,
    struct smime_msg_res *res)
{
	struct store_key **keys;
	struct cms_identity *ids;
	size_t i, n = 0;
	int r = -1;

	keys = keys_decrypting(certcache_keys(src->cc), &n);
	if (keys == NULL || n == 0) {
		snprintf(res->err, sizeof(res->err),
		    "no private key in the store to decrypt with");
		store_keys_free(keys);
		return -1;
	}
	ids = xcalloc(n, sizeof(*ids));
	for (i = 0; i < n; i++) {
		ids[i].cert = keys[i]->cert;
		ids[i].key = keys[i]->pkey;
	}
	if (cms_decrypt(der, ids, n, out, res->err, sizeof(res->err)) >= 0)
		r = 0;
	free(ids);
	store_keys_free(keys);
	return r;
}

