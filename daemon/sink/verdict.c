/* verdict.c: what the sink's inbox shows of one captured message: its
 * envelope and header fields, the S/MIME verdict of every layer (signed by
 * whom, chain and revocation; encrypted to whom, with which cipher; the
 * decrypted content when a --key fits), its MIME tree and the text of its
 * text parts.  Messages are hostile input: everything here is bounded, and
 * all of it leaves as JSON strings that the page inserts as text. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "lib/lib.h"
#include "sink_priv.h"

/* One analysis: what it knows and the buffers it made. */
struct verdict {
	const struct sink_keys *keys;
	char	 from[MAIL_ADDR_MAX];	/* From: address, for the signer */
	struct mail_from mf;		/* what the From fields say */
	BIO	*outs[VERDICT_LAYERS_MAX];	/* decrypted/unwrapped entities */
	int	 nouts;
	json_t	*layers;
};

/* ------------------------------------------------------------ keys */

/* Nothing loaded yet: an empty trust store. */
void
verdict_keys_init(struct sink_keys *k)
{
	memset(k, 0, sizeof(*k));
	k->known = sk_X509_new_null();
	k->crls = sk_X509_CRL_new_null();
	if ((k->store = X509_STORE_new()) == NULL || k->known == NULL ||
	    k->crls == NULL)
		fatalx("sink: out of memory");
}

void
verdict_keys_free(struct sink_keys *k)
{
	size_t i;

	for (i = 0; i < k->nids; i++) {
		X509_free(k->ids[i].cert);
		EVP_PKEY_free(k->ids[i].key);
	}
	free(k->ids);
	sk_X509_pop_free(k->known, X509_free);
	sk_X509_CRL_pop_free(k->crls, X509_CRL_free);
	X509_STORE_free(k->store);
	memset(k, 0, sizeof(*k));
}

/* Every certificate and CRL of a PEM file. */
static STACK_OF(X509_INFO) *
verdict_read_pem(const char *file, char *err, size_t errlen)
{
	STACK_OF(X509_INFO) *inf;
	BIO *b;

	ERR_clear_error();
	if ((b = BIO_new_file(file, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open", file);
		return NULL;
	}
	inf = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	if (inf == NULL)
		snprintf(err, errlen, "%s: not a PEM file", file);
	ERR_clear_error();
	return inf;
}

/* --key: a private key and the certificate that goes with it. */
int
verdict_load_key(struct sink_keys *k, const char *file, char *err,
    size_t errlen)
{
	STACK_OF(X509_INFO) *inf;
	EVP_PKEY *key;
	X509 *cert = NULL;
	BIO *b;
	int i;

	ERR_clear_error();
	if ((b = BIO_new_file(file, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open", file);
		return -1;
	}
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (key == NULL) {
		snprintf(err, errlen, "%s: no unencrypted PEM private key",
		    file);
		ERR_clear_error();
		return -1;
	}
	if ((inf = verdict_read_pem(file, err, errlen)) == NULL) {
		EVP_PKEY_free(key);
		return -1;
	}
	for (i = 0; i < sk_X509_INFO_num(inf) && cert == NULL; i++) {
		X509 *x = sk_X509_INFO_value(inf, i)->x509;

		if (x != NULL && X509_check_private_key(x, key) == 1) {
			X509_up_ref(x);
			cert = x;
		}
	}
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	ERR_clear_error();
	if (cert == NULL) {
		snprintf(err, errlen, "%s: no certificate for its key", file);
		EVP_PKEY_free(key);
		return -1;
	}
	k->ids = xreallocarray(k->ids, k->nids + 1, sizeof(*k->ids));
	k->ids[k->nids].cert = cert;
	k->ids[k->nids++].key = key;
	X509_up_ref(cert);
	sk_X509_push(k->known, cert);
	return 0;
}

/* --cert: certificates whose holders we name as recipients. */
int
verdict_load_certs(struct sink_keys *k, const char *file, char *err,
    size_t errlen)
{
	STACK_OF(X509_INFO) *inf;
	int i, n = 0;

	if ((inf = verdict_read_pem(file, err, errlen)) == NULL)
		return -1;
	for (i = 0; i < sk_X509_INFO_num(inf); i++) {
		X509 *x = sk_X509_INFO_value(inf, i)->x509;

		if (x != NULL) {
			X509_up_ref(x);
			sk_X509_push(k->known, x);
			n++;
		}
	}
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	if (n == 0) {
		snprintf(err, errlen, "%s: no certificate in it", file);
		return -1;
	}
	return 0;
}

/* --trust: anchors for signers' chains, and any CRLs. */
int
verdict_load_trust(struct sink_keys *k, const char *file, char *err,
    size_t errlen)
{
	STACK_OF(X509_INFO) *inf;
	X509_INFO *xi;
	int i, n = 0;

	if ((inf = verdict_read_pem(file, err, errlen)) == NULL)
		return -1;
	for (i = 0; i < sk_X509_INFO_num(inf); i++) {
		xi = sk_X509_INFO_value(inf, i);
		if (xi->x509 != NULL) {
			X509_STORE_add_cert(k->store, xi->x509);
			n++;
		}
		if (xi->crl != NULL) {
			X509_CRL_up_ref(xi->crl);
			sk_X509_CRL_push(k->crls, xi->crl);
		}
	}
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	ERR_clear_error();
	if (n == 0) {
		snprintf(err, errlen, "%s: no certificate in it", file);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ JSON */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned c = s[0];

	if (c < 0x80)
		return c == 0 ? 0 : 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

/* A JSON string of bytes that may not be UTF-8. */
json_t *
verdict_jstr(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out;
	size_t i = 0, o = 0, l;
	json_t *j;

	out = xmalloc(n * 3 + 1);
	while (i < n) {
		if ((l = utf8_seq(u + i, n - i)) == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);	/* U+FFFD */
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, l);
		o += l;
		i += l;
	}
	j = json_stringn(out, o);
	free(out);
	return j != NULL ? j : json_string("");
}

static json_t *
jstr(const char *s)
{
	return verdict_jstr(s, strlen(s));
}

/* A certificate as the page shows it: subject, issuer, serial, e-mails,
 * validity. */
static json_t *
verdict_cert(X509 *x)
{
	STACK_OF(OPENSSL_STRING) *em;
	char buf[512];
	json_t *o, *emails;
	const ASN1_TIME *t;
	BIO *b;
	int i, n;

	o = json_object();
	X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
	json_object_set_new(o, "subject", jstr(buf));
	X509_NAME_oneline(X509_get_issuer_name(x), buf, sizeof(buf));
	json_object_set_new(o, "issuer", jstr(buf));
	emails = json_array();
	if ((em = X509_get1_email(x)) != NULL) {
		for (i = 0; i < sk_OPENSSL_STRING_num(em) && i < 8; i++)
			json_array_append_new(emails,
			    jstr(sk_OPENSSL_STRING_value(em, i)));
		X509_email_free(em);
	}
	json_object_set_new(o, "emails", emails);
	if ((b = BIO_new(BIO_s_mem())) != NULL) {
		t = X509_get0_notAfter(x);
		if (ASN1_TIME_print(b, t) == 1 &&
		    (n = BIO_read(b, buf, sizeof(buf) - 1)) > 0) {
			buf[n] = '\0';
			json_object_set_new(o, "not_after", jstr(buf));
		}
		BIO_free(b);
	}
	return o;
}

/* ------------------------------------------------------------ headers */

/* The unfolded value of a raw field [off, end) of msg, cut at max bytes. */
static size_t
verdict_unfold(const char *msg, const struct mime_hdr *h, char *out,
    size_t max)
{
	const char *p = msg + h->off + h->namelen, *end = msg + h->end;
	size_t o = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && *p == ':')
		p++;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (; p < end && o < max; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		out[o++] = *p;
	}
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	out[o] = '\0';
	return o;
}

/* The first field named name of a part, unfolded into out ("" if none). */
static int
verdict_field(const char *msg, const struct mime_part *p, const char *name,
    char *out, size_t max)
{
	size_t i, nl = strlen(name);

	out[0] = '\0';
	for (i = 0; i < p->nhdrs; i++)
		if (p->hdrs[i].namelen == nl &&
		    strncasecmp(msg + p->hdrs[i].off, name, nl) == 0) {
			verdict_unfold(msg, &p->hdrs[i], out, max);
			return 1;
		}
	return 0;
}

/* The addr-spec of a From-like value: inside the last <>, else the value. */
static void
verdict_addr(const char *v, char *out, size_t len)
{
	const char *lt = strrchr(v, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL &&
	    (size_t)(gt - lt) < len) {
		memcpy(out, lt + 1, gt - lt - 1);
		out[gt - lt - 1] = '\0';
		return;
	}
	strlcpy_s(out, v, len);
}

/* What the From fields of a part's header say (values whole, not cut). */
static void
verdict_from_read(const char *msg, const struct mime_part *p,
    struct mail_from *mf)
{
	char *buf;
	size_t i;

	memset(mf, 0, sizeof(*mf));
	for (i = 0; i < p->nhdrs; i++) {
		const struct mime_hdr *h = &p->hdrs[i];

		if (h->namelen != 4 || strncasecmp(msg + h->off, "From", 4))
			continue;
		buf = xmalloc(h->end - h->off + 1);
		verdict_unfold(msg, h, buf, h->end - h->off);
		mail_from_add(mf, buf);
		free(buf);
	}
}

/* A field's value, encoded-words decoded, as a JSON string. */
static json_t *
verdict_jdecoded(const char *v)
{
	char *d = xmalloc(2 * VERDICT_VALUE_MAX + 1);
	json_t *j;

	mime_decode2047(v, d, 2 * VERDICT_VALUE_MAX + 1);
	j = jstr(d);
	free(d);
	return j;
}

/* The top header fields, the envelope (Return-Path, Delivered-To: the
 * sink writes them first) and the common fields. */
static void
verdict_headers(json_t *o, const char *msg, const struct mime_part *root,
    struct mail_from *mf, char *from, size_t fromlen)
{
	json_t *hdrs, *to, *pair;
	char *v;
	size_t i, nl;

	v = xmalloc(VERDICT_VALUE_MAX + 1);
	hdrs = json_array();
	to = json_array();
	for (i = 0; i < root->nhdrs; i++) {
		const struct mime_hdr *h = &root->hdrs[i];
		const char *name = msg + h->off;

		nl = h->namelen;
		verdict_unfold(msg, h, v, VERDICT_VALUE_MAX);
		if (i < VERDICT_FIELDS_MAX) {
			pair = json_array();
			json_array_append_new(pair, verdict_jstr(name, nl));
			json_array_append_new(pair, jstr(v));
			json_array_append_new(hdrs, pair);
		}
		if (nl == 12 && strncasecmp(name, "Delivered-To", nl) == 0 &&
		    json_array_size(to) < 100)
			json_array_append_new(to, jstr(v));
		if (nl == 11 && strncasecmp(name, "Return-Path", nl) == 0 &&
		    json_object_get(o, "envelope_from") == NULL) {
			char a[320];

			verdict_addr(v, a, sizeof(a));
			json_object_set_new(o, "envelope_from", jstr(a));
		}
	}
	json_object_set_new(o, "headers", hdrs);
	json_object_set_new(o, "headers_total", json_integer(root->nhdrs));
	json_object_set_new(o, "envelope_to", to);
	if (json_object_get(o, "envelope_from") == NULL)
		json_object_set_new(o, "envelope_from", json_string(""));
	verdict_field(msg, root, "Subject", v, VERDICT_VALUE_MAX);
	json_object_set_new(o, "subject", verdict_jdecoded(v));
	verdict_field(msg, root, "To", v, VERDICT_VALUE_MAX);
	json_object_set_new(o, "to", verdict_jdecoded(v));
	verdict_field(msg, root, "Date", v, VERDICT_VALUE_MAX);
	json_object_set_new(o, "date", jstr(v));
	verdict_field(msg, root, "Message-ID", v, VERDICT_VALUE_MAX);
	json_object_set_new(o, "message_id", jstr(v));
	verdict_field(msg, root, "From", v, VERDICT_VALUE_MAX);
	json_object_set_new(o, "from", verdict_jdecoded(v));
	free(v);
	verdict_from_read(msg, root, mf);
	strlcpy_s(from, mf->have ? mf->addr : "", fromlen);
}

/* ------------------------------------------------------------ MIME */

/* Decoded body of a leaf: base64 and quoted-printable undone. */
static char *
verdict_decode(const char *body, size_t len, enum mime_cte cte,
    size_t *outlen)
{
	char *out;

	if (cte == MIME_CTE_BASE64)
		return (char *)mime_b64_decode(body, len, outlen);
	if (cte == MIME_CTE_QP)
		return mime_qp_decode(body, len, outlen);
	out = xmalloc(len + 1);
	memcpy(out, body, len);
	*outlen = len;
	return out;
}

/* The filename of a part: Content-Disposition's, else Content-Type's name. */
static void
verdict_filename(const char *msg, const struct mime_part *p, json_t *n)
{
	char v[1024], buf[1100];
	struct mime_ct ct;
	const char *f = NULL;

	if (verdict_field(msg, p, "Content-Disposition", v, sizeof(v) - 1)) {
		/* Content-Disposition has Content-Type's parameter syntax. */
		snprintf(buf, sizeof(buf), "x/%s", v);
		if (mime_ct_parse(buf, strlen(buf), &ct) == 0)
			f = mime_ct_param(&ct, "filename");
		if (f != NULL) {
			json_object_set_new(n, "filename", jstr(f));
			return;
		}
	}
	if ((f = mime_ct_param(&p->ct, "name")) != NULL)
		json_object_set_new(n, "filename", jstr(f));
}

/* One node of the tree, then its children (depth first). */
static void
verdict_node(const char *msg, const struct mime_part *p, json_t *tree,
    json_t *texts)
{
	const struct mime_part *c;
	const char *cs;
	char type[2 * MIME_TOKEN_MAX + 2];
	json_t *n, *t;
	size_t len;
	char *dec;

	if (json_array_size(tree) >= VERDICT_PARTS_MAX)
		return;
	n = json_object();
	snprintf(type, sizeof(type), "%s/%s", p->ct.type, p->ct.subtype);
	json_object_set_new(n, "index", json_integer(json_array_size(tree)));
	json_object_set_new(n, "depth", json_integer(p->depth));
	json_object_set_new(n, "type", jstr(type));
	json_object_set_new(n, "encoding", jstr(p->cte == MIME_CTE_NONE ?
	    "7bit" : mime_cte_name(p->cte)));
	json_object_set_new(n, "size",
	    json_integer((json_int_t)(p->body_end - p->body_start)));
	if ((cs = mime_ct_param(&p->ct, "charset")) != NULL)
		json_object_set_new(n, "charset", jstr(cs));
	verdict_filename(msg, p, n);
	json_array_append_new(tree, n);
	if (!p->container && strcmp(p->ct.type, "text") == 0 &&
	    json_array_size(texts) < VERDICT_TEXT_PARTS) {
		dec = verdict_decode(msg + p->body_start,
		    p->body_end - p->body_start, p->cte, &len);
		t = json_object();
		json_object_set_new(t, "index",
		    json_integer(json_array_size(tree) - 1));
		json_object_set_new(t, "type", jstr(type));
		json_object_set_new(t, "truncated",
		    json_boolean(len > VERDICT_TEXT_MAX));
		json_object_set_new(t, "text", verdict_jstr(dec != NULL ? dec :
		    "", dec == NULL ? 0 : len > VERDICT_TEXT_MAX ?
		    VERDICT_TEXT_MAX : len));
		free(dec);
		json_array_append_new(texts, t);
	}
	for (c = p->child; c != NULL; c = c->next)
		verdict_node(msg, c, tree, texts);
}

/* The MIME tree of an entity and its text parts. */
static void
verdict_mime(json_t *o, const char *key, const char *msg, size_t len,
    int texts)
{
	struct mime_tree tree;
	json_t *nodes = json_array(), *tx = json_array();

	if (mime_parse(msg, len, &tree) == 0 && tree.root != NULL) {
		verdict_node(msg, tree.root, nodes, tx);
		json_object_set_new(o, "mime_parts_total",
		    json_integer(tree.nparts));
	}
	mime_tree_free(&tree);
	json_object_set_new(o, key, nodes);
	if (texts)
		json_object_set_new(o, "text_parts", tx);
	else
		json_decref(tx);
}

/* ------------------------------------------------------------ S/MIME */

static void verdict_layers(struct verdict *, const char *, size_t, int,
    const char **, size_t *);

/* A new memory BIO for an unwrapped entity, owned by the analysis. */
static BIO *
verdict_out(struct verdict *v)
{
	BIO *b;

	if (v->nouts >= VERDICT_LAYERS_MAX ||
	    (b = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	v->outs[v->nouts++] = b;
	return b;
}

/* Names of the content ciphers a signer announced. */
static json_t *
verdict_caps(unsigned caps)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ SMIME_CAP_AES256_GCM, "AES-256-GCM" },
		{ SMIME_CAP_AES128_GCM, "AES-128-GCM" },
		{ SMIME_CAP_AES256_CBC, "AES-256-CBC" },
		{ SMIME_CAP_AES192_CBC, "AES-192-CBC" },
		{ SMIME_CAP_AES128_CBC, "AES-128-CBC" },
		{ SMIME_CAP_DES3_CBC, "DES-EDE3-CBC" },
	};
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (caps & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	return a;
}

/* A signature: verify it (content NULL: opaque); the signed entity in
 * *inner on pass or policy. */
static json_t *
verdict_signed(struct verdict *v, const char *content, size_t clen,
    const unsigned char *der, size_t dlen, BIO **inner)
{
	struct cms_trust trust;
	struct cms_verify res;
	BIO *cb = NULL, *db, *out;
	json_t *l, *chain;
	int i;

	memset(&trust, 0, sizeof(trust));
	trust.store = v->keys->store;
	trust.crls = v->keys->crls;
	trust.certs = v->keys->known;
	trust.revocation = CMS_REV_SOFT;
	memset(&res, 0, sizeof(res));
	out = verdict_out(v);
	if (content != NULL)
		cb = BIO_new_mem_buf(content, (int)clen);
	db = BIO_new_mem_buf(der, (int)dlen);
	cms_verify(cb, db, &trust, v->from[0] ? v->from : NULL, out, &res);
	BIO_free(cb);
	BIO_free(db);
	l = json_object();
	json_object_set_new(l, "layer", json_string("signed"));
	json_object_set_new(l, "form", json_string(content != NULL ?
	    "detached" : "opaque"));
	json_object_set_new(l, "outcome",
	    json_string(cms_outcome_name(res.outcome)));
	json_object_set_new(l, "reason", jstr(res.reason));
	json_object_set_new(l, "revocation", jstr(res.revocation));
	json_object_set_new(l, "identity", jstr(res.identity));
	if (res.signer != NULL)
		json_object_set_new(l, "signer", verdict_cert(res.signer));
	chain = json_array();
	for (i = 0; res.certs != NULL && i < sk_X509_num(res.certs) &&
	    i < 10; i++)
		json_array_append_new(chain,
		    verdict_cert(sk_X509_value(res.certs, i)));
	json_object_set_new(l, "certificates", chain);
	if (res.has_caps)
		json_object_set_new(l, "capabilities", verdict_caps(res.caps));
	*inner = (res.outcome == SMIME_PASS || res.outcome == SMIME_POLICY) ?
	    out : NULL;
	cms_verify_free(&res);
	return l;
}

/* An (Auth)EnvelopedData: who it is for, how; decrypted with a --key. */
static json_t *
verdict_enveloped(struct verdict *v, const struct cms_info *ci,
    const unsigned char *der, size_t dlen, BIO **inner)
{
	const struct cms_info_recip *r;
	json_t *l, *rs, *ro;
	char err[512];
	BIO *db, *out;
	size_t i;
	int idx;

	*inner = NULL;
	l = json_object();
	json_object_set_new(l, "layer", json_string("encrypted"));
	json_object_set_new(l, "content_type", jstr(ci->content_type));
	json_object_set_new(l, "auth_enveloped",
	    json_boolean(ci->type == CMS_INFO_AUTHENVELOPED));
	json_object_set_new(l, "cipher", jstr(ci->cipher));
	rs = json_array();
	for (i = 0; i < ci->nrecips; i++) {
		r = &ci->recips[i];
		ro = json_object();
		json_object_set_new(ro, "kind", jstr(r->kind));
		json_object_set_new(ro, "issuer", jstr(r->issuer));
		json_object_set_new(ro, "serial", jstr(r->serial));
		json_object_set_new(ro, "ski", jstr(r->ski));
		json_object_set_new(ro, "known", r->known < 0 ? json_null() :
		    verdict_cert(sk_X509_value(v->keys->known, r->known)));
		json_array_append_new(rs, ro);
	}
	json_object_set_new(l, "recipients", rs);
	json_object_set_new(l, "recipients_total",
	    json_integer((json_int_t)ci->nrecips_total));
	if (v->keys->nids == 0) {
		json_object_set_new(l, "decrypted", json_false());
		json_object_set_new(l, "decrypt_error",
		    json_string("no --key given"));
		return l;
	}
	if ((out = verdict_out(v)) == NULL)
		return l;
	db = BIO_new_mem_buf(der, (int)dlen);
	idx = cms_decrypt(db, v->keys->ids, v->keys->nids, out, err,
	    sizeof(err));
	BIO_free(db);
	json_object_set_new(l, "decrypted", json_boolean(idx >= 0));
	if (idx < 0) {
		json_object_set_new(l, "decrypt_error", jstr(err));
		return l;
	}
	json_object_set_new(l, "decrypted_with",
	    verdict_cert(v->keys->ids[idx].cert));
	*inner = out;
	return l;
}

/*
 * A signed layer whose structure a reader can take another way
 * (mime_smime_ambiguity()) is no pass, as smrelayd says it: the outcome
 * becomes permerror, with the reason, and the layer says why.
 */
static void
verdict_ambiguity(json_t *l, const char *msg, size_t len,
    enum mime_smime_kind kind)
{
	struct mime_tree t;
	const char *why = NULL, *o;
	char reason[256];

	o = json_string_value(json_object_get(l, "outcome"));
	if (o == NULL || (strcmp(o, "pass") != 0 && strcmp(o, "policy") != 0))
		return;
	if (mime_parse(msg, len, &t) == 0)
		why = mime_smime_ambiguity(&t, kind);
	if (why != NULL) {
		snprintf(reason, sizeof(reason), "ambiguous structure: %s",
		    why);
		json_object_set_new(l, "outcome", json_string("permerror"));
		json_object_set_new(l, "reason", jstr(reason));
		json_object_set_new(l, "ambiguous", jstr(why));
	}
	mime_tree_free(&t);
}

/*
 * A signature that passes speaks for one From: the message's From fields
 * must name one mailbox and show no other, and the signed entity's own
 * From (entity, n bytes: what the signer wrote, shown by readers of
 * protected fields), when it has one, must be the same (as smrelayd's
 * stream_verify).  Otherwise the layer's outcome becomes policy.
 */
static void
verdict_from_rules(const struct verdict *v, json_t *l, const char *entity,
    size_t n)
{
	struct mime_tree t;
	struct mail_from inner;
	const char *why, *o;

	o = json_string_value(json_object_get(l, "outcome"));
	if (o == NULL || strcmp(o, "pass") != 0)
		return;
	if ((why = mail_from_ambiguous(&v->mf)) == NULL && entity != NULL &&
	    mime_parse(entity, n, &t) == 0) {
		if (t.root != NULL) {
			verdict_from_read(entity, t.root, &inner);
			why = mail_from_inner(&v->mf, &inner);
		}
		mime_tree_free(&t);
	}
	if (why != NULL) {
		json_object_set_new(l, "outcome", json_string("policy"));
		json_object_set_new(l, "reason", jstr(why));
	}
}

/* Peel the S/MIME layers of an entity; the innermost in *inner. */
static void
verdict_layers(struct verdict *v, const char *msg, size_t len, int level,
    const char **inner, size_t *innerlen)
{
	struct mime_smime sm;
	struct cms_info ci;
	enum mime_smime_kind kind;
	json_t *l = NULL;
	BIO *next = NULL;
	char err[256], *data;
	long n;

	*inner = msg;
	*innerlen = len;
	if (level >= VERDICT_LAYERS_MAX)
		return;
	memset(&sm, 0, sizeof(sm));
	kind = mime_smime_detect(msg, len, &sm);
	if (kind == MIME_SMIME_NONE) {
		mime_smime_clear(&sm);
		return;
	}
	if (kind == MIME_SMIME_BAD) {
		l = json_object();
		json_object_set_new(l, "layer", json_string("malformed"));
		json_object_set_new(l, "error", json_string("looks like "
		    "S/MIME but cannot be parsed"));
	} else if (kind == MIME_SMIME_SIGNED) {
		l = verdict_signed(v, msg + sm.content_off, sm.content_len,
		    sm.der, sm.derlen, &next);
		verdict_from_rules(v, l, msg + sm.content_off, sm.content_len);
	}
	else if (cms_info_describe(sm.der, sm.derlen, v->keys->known, &ci,
	    err, sizeof(err)) == -1) {
		l = json_object();
		json_object_set_new(l, "layer", json_string("malformed"));
		json_object_set_new(l, "error", jstr(err));
	} else if (ci.type == CMS_INFO_SIGNED)
		l = verdict_signed(v, NULL, 0, sm.der, sm.derlen, &next);
	else if (ci.type == CMS_INFO_ENVELOPED ||
	    ci.type == CMS_INFO_AUTHENVELOPED)
		l = verdict_enveloped(v, &ci, sm.der, sm.derlen, &next);
	else {
		l = json_object();
		json_object_set_new(l, "layer", json_string("other"));
		json_object_set_new(l, "content_type", jstr(ci.content_type));
	}
	if (sm.smime_type[0] != '\0')
		json_object_set_new(l, "smime_type", jstr(sm.smime_type));
	verdict_ambiguity(l, msg, len, kind);
	json_array_append_new(v->layers, l);
	mime_smime_clear(&sm);
	if (next != NULL && (n = BIO_get_mem_data(next, &data)) > 0)
		verdict_layers(v, data, (size_t)n, level + 1, inner, innerlen);
}

/* Badges for the list: one per layer. */
static json_t *
verdict_badges(json_t *layers)
{
	json_t *b = json_array(), *l, *x;
	const char *kind;
	char text[160];
	size_t i;

	json_array_foreach(layers, i, l) {
		kind = json_string_value(json_object_get(l, "layer"));
		x = json_object();
		if (kind != NULL && strcmp(kind, "signed") == 0) {
			const char *oc = json_string_value(json_object_get(l,
			    "outcome"));

			snprintf(text, sizeof(text), "signed: %s", oc);
			json_object_set_new(x, "state", jstr(oc));
		} else if (kind != NULL && strcmp(kind, "encrypted") == 0) {
			int dec = json_is_true(json_object_get(l,
			    "decrypted"));

			snprintf(text, sizeof(text), "encrypted: %s%s",
			    json_string_value(json_object_get(l, "cipher")),
			    dec ? ", decrypted" : "");
			json_object_set_new(x, "state",
			    json_string(dec ? "decrypted" : "locked"));
		} else {
			snprintf(text, sizeof(text), "%s",
			    kind != NULL ? kind : "?");
			json_object_set_new(x, "state", json_string("bad"));
		}
		json_object_set_new(x, "kind", jstr(kind != NULL ? kind : ""));
		json_object_set_new(x, "text", jstr(text));
		json_array_append_new(b, x);
	}
	return b;
}

/* ------------------------------------------------------------ entry */

/* Analyse a captured message (see sink_priv.h). */
json_t *
verdict_analyse(const struct sink_keys *keys, const char *msg, size_t len,
    size_t total)
{
	struct verdict v;
	struct mime_tree tree;
	const char *inner;
	size_t innerlen;
	json_t *o;
	int i;

	memset(&v, 0, sizeof(v));
	v.keys = keys;
	v.layers = json_array();
	o = json_object();
	json_object_set_new(o, "size", json_integer((json_int_t)total));
	json_object_set_new(o, "analysed", json_boolean(len == total));
	if (mime_parse(msg, len, &tree) == 0 && tree.root != NULL)
		verdict_headers(o, msg, tree.root, &v.mf, v.from,
		    sizeof(v.from));
	mime_tree_free(&tree);
	if (len != total) {
		/* Too big to analyse: its header fields only. */
		json_object_set_new(o, "layers", v.layers);
		json_object_set_new(o, "badges", json_array());
		return o;
	}
	verdict_mime(o, "outer_mime", msg, len, 0);
	verdict_layers(&v, msg, len, 0, &inner, &innerlen);
	verdict_mime(o, "mime", inner, innerlen, 1);
	json_object_set_new(o, "inner_is_outer", json_boolean(inner == msg));
	json_object_set_new(o, "badges", verdict_badges(v.layers));
	json_object_set_new(o, "layers", v.layers);
	for (i = 0; i < v.nouts; i++)
		BIO_free(v.outs[i]);
	return o;
}

/* The fields of the list, from a full analysis. */
json_t *
verdict_summary(json_t *full)
{
	static const char *keys[] = { "envelope_from", "envelope_to", "from",
	    "to", "subject", "date", "size", "badges", NULL };
	json_t *s = json_object(), *x;
	int i;

	for (i = 0; keys[i] != NULL; i++)
		if ((x = json_object_get(full, keys[i])) != NULL)
			json_object_set(s, keys[i], x);
	return s;
}
