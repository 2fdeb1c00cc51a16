/*
 * cms_fast.c: the common shapes of CMS opened and checked without
 * building OpenSSL's CMS object, for cms_verify() and cms_decrypt().
 *
 * Nearly every signed message arrives in one shape: DER, one SignerInfo
 * identified by issuer and serial number (or subject key identifier), a
 * SHA-2 digest, signed attributes, an RSA or ECDSA signature, the
 * signer's certificates attached.  Parsing that into a CMS_ContentInfo,
 * re-encoding the signed attributes and setting up OpenSSL's digest BIOs
 * costs a third of what the signature check itself does.  Here the DER
 * is walked in place, the certificates come from the memo, the content
 * is digested once, and the signature is checked over the signed
 * attributes exactly as received (RFC 5652 5.4: the DER of the SET).
 * Likewise nearly every envelope is RSA key transport to a recipient
 * named by issuer and serial, and AES-CBC or AES-GCM: its RecipientInfos
 * are read in place, the content key unwrapped with our key, and the
 * cipher set up from prefetched algorithms.
 *
 * Anything else, anything unusual, and every failure answers "not
 * handled": the caller then does what it always did, so a message the
 * fast path does not pass gets OpenSSL's verdict and OpenSSL's reason.
 * The fast path only ever says yes to a signature it checked itself:
 * the content digest equals the messageDigest attribute, the content
 * type attribute names the encapsulated type, and the signer's public
 * key verifies the signed attributes.  An envelope it opens is still
 * only as good as its content's decryption (CBC padding, the GCM tag),
 * which the caller checks as before.
 */
#include "autoconfig.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cms.h"

#define SD_MAX		(1u << 20)	/* bigger SignedData: the slow path */
#define SD_ATTRS_MAX	32		/* signed attributes */
#define SD_CHUNK	8192		/* content read per step */

/*
 * Per thread, the contexts of the last key used, ready to copy: making a
 * context and initialising it fetches its methods every time (about 1.5
 * us each, over 1% of a 4 KB decrypt+verify).  A context holds its key,
 * so no other key can have that address while it is kept.  Freed when
 * the thread exits.
 */
struct tl_md {
	EVP_MD_CTX	*c;		/* initialised for key and md */
	const EVP_PKEY	*key;
	const EVP_MD	*md;
};

struct fast_tl {
	EVP_PKEY_CTX	*dec;		/* decrypt: PKCS#1 v1.5 padding */
	unsigned int	 dec_klen;	/* and CMS_PARAM_UNWRAP_KEYLEN */
	struct tl_md	 ver;		/* DigestVerify */
	struct tl_md	 sig;		/* DigestSign */
	X509		*pcert;		/* the last certificate and key found */
	EVP_PKEY	*pkey;		/* to match (both held) */
};

void
cms_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(err, errlen, "%s: %s", what, r);
	else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
}

static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static pthread_key_t tl_key;
static int tl_ok;

static void
tl_free(void *p)
{
	struct fast_tl *t = p;

	EVP_PKEY_CTX_free(t->dec);
	EVP_MD_CTX_free(t->ver.c);
	EVP_MD_CTX_free(t->sig.c);
	X509_free(t->pcert);
	EVP_PKEY_free(t->pkey);
	free(t);
}

static void
tl_init(void)
{
	tl_ok = pthread_key_create(&tl_key, tl_free) == 0;
}

/* This thread's contexts; NULL when there can be none. */
static struct fast_tl *
tl_get(void)
{
	struct fast_tl *t;

	if (pthread_once(&tl_once, tl_init) != 0 || !tl_ok)
		return NULL;
	if ((t = pthread_getspecific(tl_key)) == NULL &&
	    (t = calloc(1, sizeof(*t))) != NULL &&
	    pthread_setspecific(tl_key, t) != 0) {
		free(t);
		t = NULL;
	}
	return t;
}

/* A decryption context for key (PKCS#1 v1.5) telling its provider the
 * content key's length klen (CMS_PARAM_UNWRAP_KEYLEN), copied from the
 * thread's slot when it was made for both; NULL on error. */
static EVP_PKEY_CTX *
tl_dec(EVP_PKEY *key, unsigned int klen)
{
	struct fast_tl *t = tl_get();
	EVP_PKEY_CTX *c;
	OSSL_PARAM p[2];

	if (t != NULL && t->dec != NULL && EVP_PKEY_CTX_get0_pkey(t->dec) ==
	    key && t->dec_klen == klen &&
	    (c = EVP_PKEY_CTX_dup(t->dec)) != NULL)
		return c;
	p[0] = OSSL_PARAM_construct_uint(CMS_PARAM_UNWRAP_KEYLEN, &klen);
	p[1] = OSSL_PARAM_construct_end();
	if ((c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
	    EVP_PKEY_decrypt_init(c) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1) {
		EVP_PKEY_CTX_free(c);
		return NULL;
	}
	(void)EVP_PKEY_CTX_set_params(c, p);	/* others ignore it */
	ERR_clear_error();
	if (t != NULL) {
		EVP_PKEY_CTX_free(t->dec);
		t->dec = EVP_PKEY_CTX_dup(c);
		t->dec_klen = klen;
	}
	return c;
}

/* A DigestVerify (sign 0) or DigestSign (sign 1) context for key and
 * md, copied from the thread's slot when it was made for them; NULL on
 * error. */
static EVP_MD_CTX *
tl_md_ctx(struct tl_md *slot, EVP_PKEY *key, const EVP_MD *md, int sign)
{
	EVP_MD_CTX *c;

	if ((c = EVP_MD_CTX_new()) == NULL)
		return NULL;
	if (slot != NULL && slot->c != NULL && slot->key == key &&
	    slot->md == md && EVP_MD_CTX_copy_ex(c, slot->c) == 1)
		return c;
	if ((sign ? EVP_DigestSignInit(c, NULL, md, NULL, key) :
	    EVP_DigestVerifyInit(c, NULL, md, NULL, key)) != 1) {
		EVP_MD_CTX_free(c);
		return NULL;
	}
	if (slot != NULL) {
		EVP_MD_CTX_free(slot->c);
		slot->key = NULL;
		if ((slot->c = EVP_MD_CTX_new()) != NULL &&
		    EVP_MD_CTX_copy_ex(slot->c, c) == 1) {
			slot->key = key;
			slot->md = md;
		} else {
			EVP_MD_CTX_free(slot->c);
			slot->c = NULL;
		}
	}
	return c;
}

/* A DigestVerify context for key and md; NULL on error. */
static EVP_MD_CTX *
tl_ver(EVP_PKEY *key, const EVP_MD *md)
{
	struct fast_tl *t = tl_get();

	return tl_md_ctx(t != NULL ? &t->ver : NULL, key, md, 0);
}

/* A DER value: its content [p, end); tag and the whole TLV's start;
 * indef when its length was indefinite (its end-of-contents follows
 * end). */
struct dv {
	const unsigned char *p, *end;
	const unsigned char *tlv;
	unsigned char	 tag;
	int		 indef;
};

#define DV_DEPTH	8	/* indefinite lengths nested */

static int dv_get(struct dv *, struct dv *, int);

/* The end of an indefinite-length value whose content starts at v->p:
 * its children walked up to the end-of-contents.  0 or -1. */
static int
dv_indef(struct dv *r, struct dv *v, int depth)
{
	struct dv in = { v->p, r->end, NULL, 0, 0 }, c;

	if (depth >= DV_DEPTH)
		return -1;
	for (;;) {
		if (in.end - in.p >= 2 && in.p[0] == 0 && in.p[1] == 0)
			break;
		if (dv_get(&in, &c, depth + 1) == -1)
			return -1;
	}
	v->end = in.p;
	v->indef = 1;
	r->p = in.p + 2;
	return 0;
}

/* The next TLV of r into v, at indefinite-length depth `depth`; 0, or
 * -1 on anything but BER with a low tag number, definite lengths in
 * their shortest form or constructed values of indefinite length. */
static int
dv_get(struct dv *r, struct dv *v, int depth)
{
	const unsigned char *p = r->p;
	size_t len, n;

	if (r->end - p < 2 || (p[0] & 0x1f) == 0x1f)
		return -1;
	v->tlv = p;
	v->tag = *p++;
	v->indef = 0;
	n = *p++;
	if (n == 0x80) {
		if (!(v->tag & V_ASN1_CONSTRUCTED))
			return -1;
		v->p = p;
		return dv_indef(r, v, depth);
	}
	if (n & 0x80) {
		n &= 0x7f;
		if (n > 3 || (size_t)(r->end - p) < n || *p == 0)
			return -1;
		for (len = 0; n > 0; n--)
			len = len << 8 | *p++;
		if (len < 0x80)
			return -1;
	} else
		len = n;
	if ((size_t)(r->end - p) < len)
		return -1;
	v->p = p;
	v->end = p + len;
	r->p = v->end;
	return 0;
}

/* The next TLV of r into v; 0 or -1. */
static int
dv_next(struct dv *r, struct dv *v)
{
	return dv_get(r, v, 0);
}

/* The next TLV of r, which must carry `tag`; 0 or -1. */
static int
dv_want(struct dv *r, unsigned char tag, struct dv *v)
{
	return dv_next(r, v) == 0 && v->tag == tag ? 0 : -1;
}

/* A CMS structure's version and the identifier that goes with it (RFC
 * 5652: a SignerIdentifier or RecipientIdentifier), read from r: version
 * v_isn with an IssuerAndSerialNumber, or v_ski with a [0]
 * SubjectKeyIdentifier.  0 or -1. */
static int
dv_id(struct dv *r, unsigned char v_isn, unsigned char v_ski, struct dv *id)
{
	struct dv ver;

	if (dv_want(r, V_ASN1_INTEGER, &ver) == -1 || ver.end - ver.p != 1 ||
	    dv_next(r, id) == -1)
		return -1;
	return (ver.p[0] == v_isn && id->tag == (V_ASN1_SEQUENCE |
	    V_ASN1_CONSTRUCTED)) || (ver.p[0] == v_ski && id->tag ==
	    V_ASN1_CONTEXT_SPECIFIC) ? 0 : -1;
}

/* Whether v (an OBJECT IDENTIFIER's content) is the OID of nid. */
static int
dv_oid(const struct dv *v, int nid)
{
	const ASN1_OBJECT *o = OBJ_nid2obj(nid);
	size_t n;

	if (o == NULL || OBJ_length(o) == 0)
		return 0;
	n = OBJ_length(o);
	return (size_t)(v->end - v->p) == n &&
	    memcmp(v->p, OBJ_get0_data(o), n) == 0;
}

/* An AlgorithmIdentifier (the SEQUENCE's content in a): its OID into
 * oid; *params 0 without parameters, 1 with NULL, 2 with others.  0 or
 * -1. */
static int
dv_alg(struct dv *a, struct dv *oid, int *params)
{
	struct dv p;

	if (dv_want(a, V_ASN1_OBJECT, oid) == -1)
		return -1;
	*params = 0;
	if (a->p == a->end)
		return 0;
	if (dv_next(a, &p) == -1 || a->p != a->end)
		return -1;
	*params = p.tag == V_ASN1_NULL && p.p == p.end ? 1 : 2;
	return 0;
}

/* SMIMECapabilities bits for the algorithms we choose among. */
static const struct {
	int		 nid;
	unsigned	 cap;
} cap_map[] = {
	{ NID_aes_256_gcm, SMIME_CAP_AES256_GCM },
	{ NID_aes_128_gcm, SMIME_CAP_AES128_GCM },
	{ NID_aes_256_cbc, SMIME_CAP_AES256_CBC },
	{ NID_aes_192_cbc, SMIME_CAP_AES192_CBC },
	{ NID_aes_128_cbc, SMIME_CAP_AES128_CBC },
	{ NID_des_ede3_cbc, SMIME_CAP_DES3_CBC },
};

const int cms_caps_ours[5] = {
	NID_aes_256_gcm, NID_aes_128_gcm, NID_aes_256_cbc, NID_aes_192_cbc,
	NID_aes_128_cbc
};

unsigned
cms_cap_bit(int nid)
{
	size_t k;

	for (k = 0; k < sizeof(cap_map) / sizeof(cap_map[0]); k++)
		if (cap_map[k].nid == nid)
			return cap_map[k].cap;
	return 0;
}

/* The SMIMECapabilities value (a SEQUENCE's content) into f; one that
 * is malformed counts as absent, as in cms_get_caps(). */
static void
sd_caps(struct dv seq, struct cms_sd_fast *f)
{
	struct dv c, oid;
	unsigned caps = 0;
	size_t k;
	int params;

	while (seq.p < seq.end) {
		if (dv_want(&seq, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &c) ==
		    -1 || dv_alg(&c, &oid, &params) == -1)
			return;
		for (k = 0; k < sizeof(cap_map) / sizeof(cap_map[0]); k++)
			if (dv_oid(&oid, cap_map[k].nid))
				caps |= cap_map[k].cap;
	}
	f->has_caps = 1;
	f->caps = caps;
}

/* What the signed attributes must say. */
struct sd_attrs {
	struct dv	 ctype;		/* contentType's value (an OID) */
	struct dv	 digest;	/* messageDigest's value (octets) */
	int		 nctype, ndigest, ncaps;
};

/* Walk the signed attributes (the [0]'s content): each once at most,
 * contentType and messageDigest with one value each; 0 or -1. */
static int
sd_attrs(struct dv set, struct sd_attrs *a, struct cms_sd_fast *f)
{
	struct dv attr, oid, vals, v;
	int n = 0;

	memset(a, 0, sizeof(*a));
	while (set.p < set.end) {
		if (++n > SD_ATTRS_MAX || dv_want(&set, V_ASN1_SEQUENCE |
		    V_ASN1_CONSTRUCTED, &attr) == -1 ||
		    dv_want(&attr, V_ASN1_OBJECT, &oid) == -1 ||
		    dv_want(&attr, V_ASN1_SET | V_ASN1_CONSTRUCTED, &vals) ==
		    -1 || attr.p != attr.end || dv_next(&vals, &v) == -1)
			return -1;
		if (dv_oid(&oid, NID_pkcs9_contentType)) {
			if (v.tag != V_ASN1_OBJECT || vals.p != vals.end)
				return -1;
			a->ctype = v;
			a->nctype++;
		} else if (dv_oid(&oid, NID_pkcs9_messageDigest)) {
			if (v.tag != V_ASN1_OCTET_STRING || vals.p != vals.end)
				return -1;
			a->digest = v;
			a->ndigest++;
		} else if (dv_oid(&oid, NID_SMIMECapabilities)) {
			if (a->ncaps++ > 0 || vals.p != vals.end)
				return -1;
			if (v.tag == (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED))
				sd_caps(v, f);
		}
	}
	return a->nctype == 1 && a->ndigest == 1 ? 0 : -1;
}

/* SHA-256, -384 and -512, fetched once for the process (an EVP_MD that is
 * not fetched costs a fetch in every EVP_DigestInit). */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha2[3];

static void
md_fetch(void)
{
	md_sha2[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_sha2[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	md_sha2[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}

/* The digest algorithm (an AlgorithmIdentifier's content): SHA-2 only. */
static const EVP_MD *
sd_md(struct dv alg)
{
	struct dv oid;
	int params;

	if (dv_alg(&alg, &oid, &params) == -1 || params == 2 ||
	    pthread_once(&md_once, md_fetch) != 0)
		return NULL;
	if (dv_oid(&oid, NID_sha256))
		return md_sha2[0];
	if (dv_oid(&oid, NID_sha384))
		return md_sha2[1];
	if (dv_oid(&oid, NID_sha512))
		return md_sha2[2];
	return NULL;
}

/* The signature algorithm, for the key type it needs (EVP_PKEY_RSA or
 * EVP_PKEY_EC), consistent with the digest; 0 for anything else. */
static int
sd_sigalg(struct dv alg, const EVP_MD *md)
{
	static const struct {
		int	 nid, md, type;
	} map[] = {
		{ NID_rsaEncryption, 0, EVP_PKEY_RSA },
		{ NID_sha256WithRSAEncryption, NID_sha256, EVP_PKEY_RSA },
		{ NID_sha384WithRSAEncryption, NID_sha384, EVP_PKEY_RSA },
		{ NID_sha512WithRSAEncryption, NID_sha512, EVP_PKEY_RSA },
		{ NID_ecdsa_with_SHA256, NID_sha256, EVP_PKEY_EC },
		{ NID_ecdsa_with_SHA384, NID_sha384, EVP_PKEY_EC },
		{ NID_ecdsa_with_SHA512, NID_sha512, EVP_PKEY_EC },
	};
	struct dv oid;
	size_t k;
	int params;

	if (dv_alg(&alg, &oid, &params) == -1)
		return 0;
	for (k = 0; k < sizeof(map) / sizeof(map[0]); k++)
		if (dv_oid(&oid, map[k].nid)) {
			/* RSA: NULL or no parameters; ECDSA: none (RFC
			 * 5758 3.2) */
			if ((map[k].md != 0 && map[k].md != EVP_MD_get_type(md)) ||
			    params == 2 || (params == 1 &&
			    map[k].type == EVP_PKEY_EC))
				return 0;
			return map[k].type;
		}
	return 0;
}

/* The OBJECT IDENTIFIER oid (a TLV) decoded; NULL when it is not one. */
static ASN1_OBJECT *
dv_obj(const struct dv *oid)
{
	const unsigned char *q = oid->tlv;
	ASN1_OBJECT *o;

	if ((o = d2i_ASN1_OBJECT(NULL, &q, oid->end - oid->tlv)) == NULL)
		ERR_clear_error();
	return o;
}

/* The name (else the dotted OID) of an AlgorithmIdentifier's algorithm
 * (its content in alg) into buf. */
static void
env_cipher_name(struct dv alg, char *buf, size_t buflen)
{
	ASN1_OBJECT *o;
	struct dv oid;

	snprintf(buf, buflen, "?");
	if (dv_want(&alg, V_ASN1_OBJECT, &oid) == 0 &&
	    (o = dv_obj(&oid)) != NULL) {
		OBJ_obj2txt(buf, (int)buflen, o, 0);
		ASN1_OBJECT_free(o);
	}
}

/* Whether x's issuer is the Name TLV name: byte for byte, else as
 * OpenSSL compares names (another string type, other spaces). */
static int
dv_is_issuer(X509 *x, const struct dv *name)
{
	const unsigned char *der, *q = name->tlv;
	X509_NAME *n;
	size_t dlen;
	int r;

	if (X509_NAME_get0_der(X509_get_issuer_name(x), &der, &dlen) &&
	    dlen == (size_t)(name->end - name->tlv) &&
	    memcmp(der, name->tlv, dlen) == 0)
		return 1;
	if ((n = d2i_X509_NAME(NULL, &q, name->end - name->tlv)) == NULL) {
		ERR_clear_error();
		return 0;
	}
	r = X509_NAME_cmp(n, X509_get_issuer_name(x)) == 0;
	X509_NAME_free(n);
	ERR_clear_error();
	return r;
}

/* Whether x is the certificate sid (a SignerIdentifier TLV) names:
 * issuer's encoding byte for byte and serial, or subject key id. */
static int
sd_is_signer(X509 *x, const struct dv *sid)
{
	const ASN1_OCTET_STRING *ski;
	const ASN1_INTEGER *xs;
	ASN1_INTEGER *s;
	const unsigned char *q;
	struct dv in = *sid, name, serial;
	int r;

	if (sid->tag == (V_ASN1_CONTEXT_SPECIFIC | 0)) {
		ski = X509_get0_subject_key_id(x);
		return ski != NULL && (size_t)ASN1_STRING_length(ski) ==
		    (size_t)(sid->end - sid->p) && memcmp(ASN1_STRING_get0_data(
		    ski), sid->p, (size_t)(sid->end - sid->p)) == 0;
	}
	if (sid->tag != (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED) ||
	    dv_want(&in, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &name) == -1 ||
	    dv_want(&in, V_ASN1_INTEGER, &serial) == -1 || in.p != in.end)
		return 0;
	/* the serial first, its bytes against a positive one's (the other
	 * certificates of a chain stop here, before the issuer's names are
	 * decoded to be compared); zero, negative: OpenSSL compares */
	xs = X509_get0_serialNumber(x);
	if (ASN1_STRING_type(xs) == V_ASN1_INTEGER &&
	    ASN1_STRING_length(xs) > 0 && ASN1_STRING_get0_data(xs)[0] != 0) {
		const unsigned char *v = serial.p;
		size_t vl = (size_t)(serial.end - serial.p);

		if (vl > 1 && v[0] == 0 && (v[1] & 0x80)) {
			v++;
			vl--;
		}
		if (vl == 0 || (v[0] & 0x80) ||
		    vl != (size_t)ASN1_STRING_length(xs) ||
		    memcmp(v, ASN1_STRING_get0_data(xs), vl) != 0)
			return 0;
		return dv_is_issuer(x, &name);
	}
	if (!dv_is_issuer(x, &name))
		return 0;
	q = serial.tlv;
	if ((s = d2i_ASN1_INTEGER(NULL, &q, serial.end - serial.tlv)) ==
	    NULL) {
		ERR_clear_error();
		return 0;
	}
	r = ASN1_INTEGER_cmp(s, xs) == 0;
	ASN1_INTEGER_free(s);
	return r;
}

/* The one certificate of certs, then of known, that sid names; NULL when
 * none or more than one do (OpenSSL would choose; so may it). */
static X509 *
sd_signer(STACK_OF(X509) *certs, STACK_OF(X509) *known, const struct dv *sid)
{
	X509 *found = NULL, *x;
	int i, n = 0;

	for (i = 0; i < sk_X509_num(certs); i++)
		if (sd_is_signer(x = sk_X509_value(certs, i), sid)) {
			found = x;
			n++;
		}
	for (i = 0; i < sk_X509_num(known); i++)
		if (sd_is_signer(x = sk_X509_value(known, i), sid) &&
		    (found == NULL || X509_cmp(x, found) != 0)) {
			found = x;
			n++;
		}
	return n == 1 ? found : NULL;
}

/* The content's digest equals want; the content read once.  0 or -1. */
static int
sd_content(BIO *content, const EVP_MD *md, const struct dv *want)
{
	unsigned char buf[SD_CHUNK], d[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	EVP_MD_CTX *c;
	int n, r = -1;

	if ((c = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c, md, NULL) != 1)
		goto done;
	while ((n = BIO_read(content, buf, sizeof(buf))) > 0)
		if (EVP_DigestUpdate(c, buf, (size_t)n) != 1)
			goto done;
	if (n < 0 && !BIO_eof(content))
		goto done;
	if (EVP_DigestFinal_ex(c, d, &dlen) == 1 &&
	    (size_t)(want->end - want->p) == dlen &&
	    CRYPTO_memcmp(d, want->p, dlen) == 0)
		r = 0;
 done:
	EVP_MD_CTX_free(c);
	return r;
}

/* The signature over the signed attributes, their [0] tag read as the
 * SET's (RFC 5652 5.4), with the signer's key; 0 or -1. */
static int
sd_signature(X509 *signer, int type, const EVP_MD *md, const struct dv *attrs,
    const struct dv *sig)
{
	static const unsigned char set = V_ASN1_SET | V_ASN1_CONSTRUCTED;
	EVP_PKEY *pk = X509_get0_pubkey(signer);
	EVP_MD_CTX *c;
	int r = -1;

	if (pk == NULL || EVP_PKEY_get_base_id(pk) != type ||
	    (c = tl_ver(pk, md)) == NULL)
		return -1;
	if (EVP_DigestVerifyUpdate(c, &set, 1) == 1 &&
	    EVP_DigestVerifyUpdate(c, attrs->tlv + 1,
	    (size_t)(attrs->end - attrs->tlv - 1)) == 1 &&
	    EVP_DigestVerifyFinal(c, sig->p, (size_t)(sig->end - sig->p)) == 1)
		r = 0;
	EVP_MD_CTX_free(c);
	return r;
}

/* The certificates of the [0] set into f->certs, from the memo. */
static int
sd_certs(struct dv set, struct cms_memo *memo, struct cms_sd_fast *f)
{
	struct dv c;
	X509 *x;

	while (set.p < set.end) {
		if (dv_want(&set, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &c) ==
		    -1 || c.indef || sk_X509_num(f->certs) >= CMS_SD_CERTS_MAX ||
		    (x = cms_memo_cert(memo, c.tlv, (size_t)(c.end - c.tlv))) ==
		    NULL)
			return -1;
		if (sk_X509_push(f->certs, x) <= 0) {
			X509_free(x);
			return -1;
		}
	}
	return 0;
}

/* The SignerInfo (a SEQUENCE's content) checked against f->certs and
 * known, the content digested; f->signer set.  0 or -1. */
static int
sd_signer_info(struct dv si, BIO *content, const struct dv *ctype,
    STACK_OF(X509) *known, struct cms_sd_fast *f)
{
	struct dv sid, dalg, attrs, salg, sig, rest;
	struct sd_attrs a;
	const EVP_MD *md;
	int type;

	if (dv_id(&si, 1, 3, &sid) == -1 ||
	    dv_want(&si, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &dalg) == -1 ||
	    dv_want(&si, V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED,
	    &attrs) == -1 ||
	    dv_want(&si, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &salg) == -1 ||
	    dv_want(&si, V_ASN1_OCTET_STRING, &sig) == -1)
		return -1;
	/* unsignedAttrs [1] may follow; they are not signed */
	if (si.p != si.end && (dv_want(&si, V_ASN1_CONTEXT_SPECIFIC |
	    V_ASN1_CONSTRUCTED | 1, &rest) == -1 || si.p != si.end))
		return -1;
	if (attrs.indef || (md = sd_md(dalg)) == NULL ||
	    (type = sd_sigalg(salg, md)) == 0 ||
	    sd_attrs(attrs, &a, f) == -1 ||
	    a.ctype.end - a.ctype.p != ctype->end - ctype->p ||
	    memcmp(a.ctype.p, ctype->p, (size_t)(ctype->end - ctype->p)) != 0 ||
	    (f->signer = sd_signer(f->certs, known, &sid)) == NULL)
		return -1;
	if (sd_content(content, md, &a.digest) == -1 ||
	    sd_signature(f->signer, type, md, &attrs, &sig) == -1) {
		f->signer = NULL;
		return -1;
	}
	return 0;
}

/* Empty f (certs released) and say "not handled". */
static int
sd_give_up(struct cms_sd_fast *f)
{
	sk_X509_pop_free(f->certs, X509_free);
	memset(f, 0, sizeof(*f));
	ERR_clear_error();
	return 0;
}

int
cms_sd_fast(const unsigned char *der, size_t len, BIO *content,
    STACK_OF(X509) *known, struct cms_memo *memo, struct cms_sd_fast *f)
{
	struct dv r = { der, der + len, der, 0, 0 }, ci, oid, x0, sd, v, dalgs,
	    eci, ctype, certs, sis, si;

	memset(f, 0, sizeof(*f));
	if (memo == NULL || content == NULL || len > SD_MAX ||
	    (f->certs = sk_X509_new_null()) == NULL)
		return sd_give_up(f);
	/* ContentInfo { signedData, [0] SignedData { version, digest
	 * algorithms, { eContentType } (detached), [0] certificates,
	 * { one SignerInfo } } } and nothing after */
	if (dv_want(&r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &ci) == -1 ||
	    r.p != r.end || dv_want(&ci, V_ASN1_OBJECT, &oid) == -1 ||
	    !dv_oid(&oid, NID_pkcs7_signed) ||
	    dv_want(&ci, V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED, &x0) ==
	    -1 || ci.p != ci.end ||
	    dv_want(&x0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &sd) == -1 ||
	    x0.p != x0.end ||
	    dv_want(&sd, V_ASN1_INTEGER, &v) == -1 ||
	    dv_want(&sd, V_ASN1_SET | V_ASN1_CONSTRUCTED, &dalgs) == -1 ||
	    dv_want(&sd, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &eci) == -1 ||
	    dv_want(&eci, V_ASN1_OBJECT, &ctype) == -1 || eci.p != eci.end ||
	    dv_next(&sd, &certs) == -1)
		return sd_give_up(f);
	if (certs.tag == (V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED)) {
		if (sd_certs(certs, memo, f) == -1 || dv_next(&sd, &sis) == -1)
			return sd_give_up(f);
	} else
		sis = certs;
	/* no CRLs ([1]), exactly one SignerInfo, nothing after */
	if (sis.tag != (V_ASN1_SET | V_ASN1_CONSTRUCTED) || sd.p != sd.end ||
	    dv_want(&sis, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &si) == -1 ||
	    sis.p != sis.end)
		return sd_give_up(f);
	if (sd_signer_info(si, content, &ctype, known, f) == -1) {
		/* the content may have been read: back to its start for the
		 * slow path, or no slow path (the caller says so) */
		if (BIO_method_type(content) == BIO_TYPE_MEM ?
		    BIO_reset(content) != 1 : BIO_seek(content, 0) != 0) {
			sd_give_up(f);
			return -1;
		}
		return sd_give_up(f);
	}
	return 1;
}

/* ------------------------------------------------------------ envelopes */

/* AES in CBC (EnvelopedData) and GCM (AuthEnvelopedData) by key size,
 * fetched once for the process. */
static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *aes_cbc[3], *aes_gcm[3];

static void
cipher_fetch(void)
{
	aes_cbc[0] = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
	aes_cbc[1] = EVP_CIPHER_fetch(NULL, "AES-192-CBC", NULL);
	aes_cbc[2] = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	aes_gcm[0] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	aes_gcm[1] = EVP_CIPHER_fetch(NULL, "AES-192-GCM", NULL);
	aes_gcm[2] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

/* The content-encryption algorithm (an AlgorithmIdentifier's content)
 * into f: for an EnvelopedData a CBC cipher the default provider has
 * (AES fetched once; 3DES, Camellia, ARIA ... fetched for the message,
 * f->owned) with an IV of its length, for an AuthEnvelopedData AES-GCM
 * with a 1 to 16-byte nonce (RFC 5084; 12 is the usual); 0 or -1. */
static int
env_cipher(struct dv alg, int auth, struct cms_env_fast *f)
{
	static const int cbc[3] = { NID_aes_128_cbc, NID_aes_192_cbc,
	    NID_aes_256_cbc };
	static const int gcm[3] = { NID_aes_128_gcm, NID_aes_192_gcm,
	    NID_aes_256_gcm };
	struct dv oid, p, nonce, icv;
	ASN1_OBJECT *o;
	const char *sn;
	size_t ivlen;
	int k, nid;

	if (pthread_once(&cipher_once, cipher_fetch) != 0 ||
	    dv_want(&alg, V_ASN1_OBJECT, &oid) == -1 ||
	    dv_next(&alg, &p) == -1 || alg.p != alg.end)
		return -1;
	for (k = 0; k < 3; k++)
		if (dv_oid(&oid, auth ? gcm[k] : cbc[k]))
			break;
	if (k < 3)
		f->cipher = auth ? aes_gcm[k] : aes_cbc[k];
	else if (!auth) {
		/* another CBC cipher, by its OID's short name */
		if ((o = dv_obj(&oid)) == NULL)
			return -1;
		nid = OBJ_obj2nid(o);
		ASN1_OBJECT_free(o);
		if (nid == NID_undef || (sn = OBJ_nid2sn(nid)) == NULL ||
		    (f->owned = EVP_CIPHER_fetch(NULL, sn, NULL)) == NULL) {
			ERR_clear_error();
			return -1;
		}
		f->cipher = f->owned;
		if (EVP_CIPHER_get_mode(f->cipher) != EVP_CIPH_CBC_MODE)
			return -1;
	}
	if (f->cipher == NULL)
		return -1;
	if (!auth) {
		ivlen = (size_t)EVP_CIPHER_get_iv_length(f->cipher);
		if (p.tag != V_ASN1_OCTET_STRING || ivlen == 0 ||
		    ivlen > sizeof(f->iv) || (size_t)(p.end - p.p) != ivlen ||
		    (size_t)EVP_CIPHER_get_key_length(f->cipher) >
		    sizeof(f->key))
			return -1;
		memcpy(f->iv, p.p, ivlen);
		f->ivlen = ivlen;
		return 0;
	}
	if (p.tag != (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED) ||
	    dv_want(&p, V_ASN1_OCTET_STRING, &nonce) == -1 ||
	    nonce.end - nonce.p < 1 || nonce.end - nonce.p > 16)
		return -1;
	if (p.p != p.end && (dv_want(&p, V_ASN1_INTEGER, &icv) == -1 ||
	    p.p != p.end || icv.end - icv.p != 1 || icv.p[0] < 12 ||
	    icv.p[0] > 16))
		return -1;
	memcpy(f->iv, nonce.p, (size_t)(nonce.end - nonce.p));
	f->ivlen = (size_t)(nonce.end - nonce.p);
	return 0;
}

/* Whether the KeyTransRecipientInfo (a SEQUENCE's content) is for cert
 * and made with rsaEncryption (PKCS#1 v1.5, whatever its parameters, as
 * OpenSSL reads it): its encrypted key into ek.  Its version is not held
 * against it: what OpenSSL would open with our key, we must. */
static int
env_ktri_for(struct dv ri, X509 *cert, struct dv *ek)
{
	struct dv ver, rid, alg, oid;
	int params;

	if (dv_want(&ri, V_ASN1_INTEGER, &ver) == -1 ||
	    dv_next(&ri, &rid) == -1 ||
	    dv_want(&ri, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &alg) == -1 ||
	    dv_want(&ri, V_ASN1_OCTET_STRING, ek) == -1 ||
	    dv_alg(&alg, &oid, &params) == -1 ||
	    !dv_oid(&oid, NID_rsaEncryption))
		return 0;
	return sd_is_signer(cert, &rid);
}

/* The content key from ek with key into f; when it does not open or is
 * not the cipher's length, a random key of that length and f->rejected
 * (see cms_env_fast() in cms.h); 0, or -1 when no key could be made. */
static int
env_unwrap(EVP_PKEY *key, const struct dv *ek, struct cms_env_fast *f)
{
	unsigned char out[512];
	size_t outlen = sizeof(out), klen;
	EVP_PKEY_CTX *c;
	int ok;

	klen = (size_t)EVP_CIPHER_get_key_length(f->cipher);
	if (klen == 0 || klen > sizeof(f->key))
		return -1;
	f->keylen = klen;
	if ((c = tl_dec(key, (unsigned int)klen)) == NULL)
		return -1;
	ok = EVP_PKEY_decrypt(c, out, &outlen, ek->p,
	    (size_t)(ek->end - ek->p)) == 1 && outlen == klen;
	/* the stand-in is drawn only here: the key process answers a bad
	 * padding with one of its own (implicit rejection), so this is a
	 * key it refused or a key in this process, whose padding check
	 * OpenSSL does in constant time */
	if (ok)
		memcpy(f->key, out, klen);
	else if (RAND_bytes(f->key, (int)klen) != 1) {
		OPENSSL_cleanse(out, sizeof(out));
		EVP_PKEY_CTX_free(c);
		ERR_clear_error();
		return -1;
	}
	f->rejected = !ok;
	OPENSSL_cleanse(out, sizeof(out));
	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return 0;
}

int
cms_env_fast(const unsigned char *head, size_t len,
    const struct cms_identity *ids, size_t nids, struct cms_env_fast *f)
{
	struct dv r = { head, head + len, head, 0, 0 }, ci, oid, x0, ed, v,
	    ris, ri, eci, ctype, alg, ek;
	size_t i;
	int auth, cipher_ok;

	memset(f, 0, sizeof(*f));
	/* ContentInfo { (auth)envelopedData, [0] { version,
	 * recipientInfos, { contentType, contentEncryptionAlgorithm ... */
	if (dv_want(&r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &ci) == -1 ||
	    dv_want(&ci, V_ASN1_OBJECT, &oid) == -1 ||
	    (!(auth = dv_oid(&oid, NID_id_smime_ct_authEnvelopedData)) &&
	    !dv_oid(&oid, NID_pkcs7_enveloped)) ||
	    dv_want(&ci, V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED, &x0) ==
	    -1 || dv_want(&x0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &ed) ==
	    -1 || dv_want(&ed, V_ASN1_INTEGER, &v) == -1 ||
	    dv_next(&ed, &ris) == -1)
		return 0;
	if (ris.tag == (V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED) &&
	    dv_next(&ed, &ris) == -1)	/* originatorInfo: not used here */
		return 0;
	if (ris.tag != (V_ASN1_SET | V_ASN1_CONSTRUCTED) ||
	    dv_want(&ed, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &eci) == -1 ||
	    dv_want(&eci, V_ASN1_OBJECT, &ctype) == -1 ||
	    dv_want(&eci, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &alg) == -1)
		return 0;
	cipher_ok = env_cipher(alg, auth, f) == 0;
	f->gcm = auth;
	/* each identity in turn, as cms_decrypt() tries them; the first
	 * RecipientInfo naming it (OpenSSL's choice too).  Every RSA key
	 * transport to one of our RSA identities is opened here, none by
	 * OpenSSL: only here does the key process get the key's length,
	 * which makes a bad padding look like any other key (implicit
	 * rejection, keyd_keyring.c) and keeps its unwrap limit out of
	 * a sender's reach */
	for (i = 0; i < nids; i++) {
		struct dv all = ris;

		/* RSA identities with certificates only: an envelope none of
		 * them opens is for OpenSSL's path (EC keys, no certificate) */
		if (ids[i].cert == NULL || ids[i].key == NULL ||
		    !EVP_PKEY_is_a(ids[i].key, "RSA") ||
		    EVP_PKEY_get_size(ids[i].key) > 512)
			continue;
		while (all.p < all.end) {
			if (dv_next(&all, &ri) == -1)
				goto notours;
			if (ri.tag != (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED) ||
			    !env_ktri_for(ri, ids[i].cert, &ek))
				continue;
			if (!cipher_ok) {
				cms_env_fast_done(f);
				env_cipher_name(alg, f->cipher_name,
				    sizeof(f->cipher_name));
				return -1;
			}
			if (env_unwrap(ids[i].key, &ek, f) == 0) {
				f->id = i;
				return 1;
			}
			/* no key could be made up: refused, not OpenSSL's */
			cms_env_fast_done(f);
			ERR_clear_error();
			return -2;
		}
	}
 notours:
	cms_env_fast_done(f);
	return 0;
}

void
cms_env_fast_done(struct cms_env_fast *f)
{
	EVP_CIPHER_free(f->owned);
	OPENSSL_cleanse(f, sizeof(*f));		/* zeroes it */
}

/* ------------------------------------------------------------- signing */

/* A growing DER buffer; err set once anything failed. */
struct db {
	unsigned char	*p;
	size_t		 len, cap;
	int		 err;
};

static void
db_put(struct db *d, const void *p, size_t n)
{
	unsigned char *q;
	size_t cap;

	if (d->err)
		return;
	if (d->len + n > d->cap) {
		cap = d->cap ? d->cap : 1024;
		while (cap < d->len + n)
			cap *= 2;
		if ((q = realloc(d->p, cap)) == NULL) {
			d->err = 1;
			return;
		}
		d->p = q;
		d->cap = cap;
	}
	memcpy(d->p + d->len, p, n);
	d->len += n;
}

/* A tag and a definite length n. */
static void
db_head(struct db *d, unsigned char tag, size_t n)
{
	unsigned char h[6];
	size_t k = 0;

	h[k++] = tag;
	if (n < 0x80)
		h[k++] = (unsigned char)n;
	else if (n < 0x100) {
		h[k++] = 0x81;
		h[k++] = (unsigned char)n;
	} else if (n < 0x10000) {
		h[k++] = 0x82;
		h[k++] = (unsigned char)(n >> 8);
		h[k++] = (unsigned char)n;
	} else if (n < 0x1000000) {
		h[k++] = 0x83;
		h[k++] = (unsigned char)(n >> 16);
		h[k++] = (unsigned char)(n >> 8);
		h[k++] = (unsigned char)n;
	} else {
		d->err = 1;
		return;
	}
	db_put(d, h, k);
}

/* A whole TLV. */
static void
db_tlv(struct db *d, unsigned char tag, const void *p, size_t n)
{
	db_head(d, tag, n);
	db_put(d, p, n);
}

/* src wrapped in tag, appended to d; src freed. */
static void
db_wrap(struct db *d, unsigned char tag, struct db *src)
{
	if (src->err)
		d->err = 1;
	else
		db_tlv(d, tag, src->p, src->len);
	free(src->p);
	memset(src, 0, sizeof(*src));
}

/* An OBJECT IDENTIFIER by NID. */
static void
db_oid(struct db *d, int nid)
{
	const ASN1_OBJECT *o = OBJ_nid2obj(nid);

	if (o == NULL || OBJ_length(o) == 0) {
		d->err = 1;
		return;
	}
	db_tlv(d, V_ASN1_OBJECT, OBJ_get0_data(o), OBJ_length(o));
}

/* An AlgorithmIdentifier: the OID, with a NULL parameter or none. */
static void
db_alg(struct db *d, int nid, int null)
{
	struct db a = { 0 };

	db_oid(&a, nid);
	if (null)
		db_put(&a, "\x05\x00", 2);
	db_wrap(d, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &a);
}

/* DER order of two encodings in a SET OF (X.690 11.6: as octet strings,
 * the shorter padded with zeros). */
struct elem {
	const unsigned char *p;
	size_t		 n;
};

static int
elem_cmp(const void *a, const void *b)
{
	const struct elem *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);

	if (c != 0)
		return c;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* A SET OF (tag) the n encodings, sorted. */
static void
db_set(struct db *d, unsigned char tag, struct elem *e, size_t n)
{
	size_t i, len = 0;

	qsort(e, n, sizeof(*e), elem_cmp);
	for (i = 0; i < n; i++)
		len += e[i].n;
	db_head(d, tag, len);
	for (i = 0; i < n; i++)
		db_put(d, e[i].p, e[i].n);
}

/* An attribute: SEQUENCE { type, SET { one value } }, its value's
 * encoding taken from val (emptied). */
static void
db_attr(struct db *d, int nid, struct db *val)
{
	struct db a = { 0 };

	db_oid(&a, nid);
	db_wrap(&a, V_ASN1_SET | V_ASN1_CONSTRUCTED, val);
	db_wrap(d, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &a);
}

/* The signed attributes' encodings: content type data, signing time now,
 * the message digest, our SMIMECapabilities (cms_caps_ours, as
 * cms_add_caps() announces them); each into its own buffer. */
static void
sd_sign_attrs(const unsigned char *md, size_t mdlen, struct db at[4])
{
	struct db v = { 0 }, c = { 0 };
	struct tm tm;
	time_t now = time(NULL);
	char t[32];
	size_t i;

	memset(at, 0, 4 * sizeof(*at));
	db_oid(&v, NID_pkcs7_data);
	db_attr(&at[0], NID_pkcs9_contentType, &v);
	if (gmtime_r(&now, &tm) == NULL)
		at[1].err = 1;
	else if (tm.tm_year >= 50 && tm.tm_year < 150) {
		/* UTCTime, 1950-2049 (RFC 5280 4.1.2.5) */
		snprintf(t, sizeof(t), "%02d%02d%02d%02d%02d%02dZ",
		    tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		db_tlv(&v, V_ASN1_UTCTIME, t, strlen(t));
	} else {
		snprintf(t, sizeof(t), "%04d%02d%02d%02d%02d%02dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		db_tlv(&v, V_ASN1_GENERALIZEDTIME, t, strlen(t));
	}
	db_attr(&at[1], NID_pkcs9_signingTime, &v);
	db_tlv(&v, V_ASN1_OCTET_STRING, md, mdlen);
	db_attr(&at[2], NID_pkcs9_messageDigest, &v);
	for (i = 0; i < sizeof(cms_caps_ours) / sizeof(cms_caps_ours[0]); i++)
		db_alg(&c, cms_caps_ours[i], 0);
	db_wrap(&v, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &c);
	db_attr(&at[3], NID_SMIMECapabilities, &v);
}

/* Whether key is the private half of cert's public key, remembered per
 * thread for the last pair (both held while remembered). */
static int
sd_pair_ok(X509 *cert, EVP_PKEY *key)
{
	struct fast_tl *t = tl_get();

	if (t != NULL && t->pcert == cert && t->pkey == key)
		return 1;
	if (X509_check_private_key(cert, key) != 1)
		return 0;
	if (t != NULL && X509_up_ref(cert) && EVP_PKEY_up_ref(key)) {
		X509_free(t->pcert);
		EVP_PKEY_free(t->pkey);
		t->pcert = cert;
		t->pkey = key;
	}
	return 1;
}

/* A DigestSign context for key and md; NULL on error. */
static EVP_MD_CTX *
tl_sig(EVP_PKEY *key, const EVP_MD *md)
{
	struct fast_tl *t = tl_get();

	return tl_md_ctx(t != NULL ? &t->sig : NULL, key, md, 1);
}

/* The signature over the signed attributes (their SET encoding). */
static int
sd_sign_sig(EVP_PKEY *key, const EVP_MD *md, const struct db *attrs,
    struct db *sig)
{
	EVP_MD_CTX *c;
	unsigned char *s = NULL;
	size_t n = 0;
	int r = -1;

	if ((c = tl_sig(key, md)) == NULL)
		return -1;
	if (EVP_DigestSign(c, NULL, &n, attrs->p, attrs->len) == 1 &&
	    (s = malloc(n)) != NULL &&
	    EVP_DigestSign(c, s, &n, attrs->p, attrs->len) == 1) {
		db_put(sig, s, n);
		r = sig->err ? -1 : 0;
	}
	free(s);
	EVP_MD_CTX_free(c);
	return r;
}

int
cms_sign_fast(BIO *in, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
    BIO *out, unsigned char **der, size_t *derlen, char *err, size_t errlen)
{
	struct elem ce[CMS_SD_CERTS_MAX + 1], ae[4];
	X509 *added[CMS_SD_CERTS_MAX + 1];
	struct db at[4], attrs = { 0 }, si = { 0 }, sd = { 0 }, ci = { 0 },
	    tmp = { 0 }, sig = { 0 }, certs[CMS_SD_CERTS_MAX + 1];
	unsigned char buf[8192], md[EVP_MAX_MD_SIZE], *q;
	const unsigned char *name;
	const EVP_MD *sha256;
	EVP_MD_CTX *mc = NULL;
	X509 *x;
	size_t namelen, nc = 0, i;
	unsigned mdlen;
	int rsa, n, j, k, r = -1;

	*der = NULL;
	*derlen = 0;
	memset(at, 0, sizeof(at));
	memset(certs, 0, sizeof(certs));
	rsa = EVP_PKEY_is_a(key, "RSA");
	if ((!rsa && !EVP_PKEY_is_a(key, "EC")) ||
	    (rsa && EVP_PKEY_get_size(key) > 512) ||
	    sk_X509_num(chain) > CMS_SD_CERTS_MAX ||
	    pthread_once(&md_once, md_fetch) != 0 ||
	    (sha256 = md_sha2[0]) == NULL ||
	    !X509_NAME_get0_der(X509_get_issuer_name(cert), &name, &namelen))
		return 0;
	if (!sd_pair_ok(cert, key)) {
		snprintf(err, errlen, "signer key does not match certificate");
		ERR_clear_error();
		return -1;
	}
	/* the content, to out as it is digested */
	if ((mc = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(mc, sha256, NULL) != 1)
		goto fail;
	while ((n = BIO_read(in, buf, sizeof(buf))) > 0)
		if (EVP_DigestUpdate(mc, buf, (size_t)n) != 1 ||
		    BIO_write(out, buf, n) != n) {
			snprintf(err, errlen, "write error");
			goto done;
		}
	if (n < 0 && !BIO_eof(in)) {
		snprintf(err, errlen, "read error");
		goto done;
	}
	if (EVP_DigestFinal_ex(mc, md, &mdlen) != 1)
		goto fail;
	/* signed attributes, DER-sorted, signed as a SET */
	sd_sign_attrs(md, mdlen, at);
	for (i = 0; i < 4; i++) {
		if (at[i].err)
			goto fail;
		ae[i].p = at[i].p;
		ae[i].n = at[i].len;
	}
	db_set(&attrs, V_ASN1_SET | V_ASN1_CONSTRUCTED, ae, 4);
	if (attrs.err || sd_sign_sig(key, sha256, &attrs, &sig) == -1)
		goto fail;
	/* SignerInfo: version 1, issuerAndSerialNumber, sha256, [0] the
	 * attributes, the signature algorithm, the signature */
	db_tlv(&si, V_ASN1_INTEGER, "\x01", 1);
	db_put(&tmp, name, namelen);
	q = NULL;
	if ((k = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &q)) <= 0)
		goto fail;
	db_put(&tmp, q, (size_t)k);
	OPENSSL_free(q);
	db_wrap(&si, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &tmp);
	db_alg(&si, NID_sha256, 0);
	db_put(&si, "\xa0", 1);
	db_put(&si, attrs.p + 1, attrs.len - 1);	/* [0] IMPLICIT */
	if (rsa)
		db_alg(&si, NID_rsaEncryption, 1);
	else
		db_alg(&si, NID_ecdsa_with_SHA256, 0);
	db_tlv(&si, V_ASN1_OCTET_STRING, sig.p, sig.len);
	/* SignedData: version 1, { sha256 }, { data } (detached), [0] the
	 * certificates (signer first in the chain's order, no repeats,
	 * DER-sorted), { the SignerInfo } */
	db_tlv(&sd, V_ASN1_INTEGER, "\x01", 1);
	db_alg(&tmp, NID_sha256, 0);
	db_wrap(&sd, V_ASN1_SET | V_ASN1_CONSTRUCTED, &tmp);
	db_oid(&tmp, NID_pkcs7_data);
	db_wrap(&sd, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &tmp);
	for (j = -1; j < sk_X509_num(chain); j++) {
		x = j < 0 ? cert : sk_X509_value(chain, j);
		for (i = 0; i < nc; i++)
			if (X509_cmp(x, added[i]) == 0)
				break;
		if (i < nc)
			continue;
		added[nc] = x;
		q = NULL;
		if ((k = i2d_X509(x, &q)) <= 0)
			goto fail;
		db_put(&certs[nc], q, (size_t)k);
		OPENSSL_free(q);
		if (certs[nc].err)
			goto fail;
		ce[nc].p = certs[nc].p;
		ce[nc].n = certs[nc].len;
		nc++;
	}
	db_set(&sd, V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED, ce, nc);
	db_wrap(&tmp, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &si);
	db_wrap(&sd, V_ASN1_SET | V_ASN1_CONSTRUCTED, &tmp);
	/* ContentInfo { signedData, [0] SignedData } */
	db_oid(&ci, NID_pkcs7_signed);
	db_wrap(&tmp, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &sd);
	db_wrap(&ci, V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED, &tmp);
	db_wrap(&tmp, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &ci);
	if (tmp.err)
		goto fail;
	*der = tmp.p;
	*derlen = tmp.len;
	tmp.p = NULL;
	r = 1;
	goto done;
 fail:
	/* the reason OpenSSL or the key process gave */
	cms_err(err, errlen, "signing failed");
 done:
	ERR_clear_error();
	EVP_MD_CTX_free(mc);
	for (i = 0; i < 4; i++)
		free(at[i].p);
	for (i = 0; i <= CMS_SD_CERTS_MAX; i++)
		free(certs[i].p);
	free(attrs.p);
	free(si.p);
	free(sd.p);
	free(ci.p);
	free(tmp.p);
	free(sig.p);
	return r;
}
