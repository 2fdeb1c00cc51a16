/*
 * keyd_pkey.c: private keys that are only handles (keyd_client.h).
 *
 * A built-in OpenSSL 3 provider, "keyd", in a library context of its own,
 * offers key management for RSA and EC, signatures (RSA PKCS#1 v1.5,
 * RSA-PSS, ECDSA), RSA decryption (PKCS#1 v1.5, OAEP) and ECDH.  Its keys
 * hold the certificate's public key (a default-provider EVP_PKEY) and the
 * handle: the client and the certificate's SHA-256.  Every private
 * operation becomes one keyproto request; digests are made here, so the
 * key process only ever signs a digest of the declared size.
 *
 * Why its own library context: an operation on a key of this provider is
 * first tried with the default provider's implementation (OpenSSL fetches
 * by name), which needs the key exported with its private part; our
 * export refuses that, so OpenSSL falls back to this provider's own
 * implementation.  In the default context our algorithms, named "RSA" and
 * "EC" like the default ones, could be picked for ordinary keys; in their
 * own context they cannot.
 */
#include "autoconfig.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/async.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/lib.h"
#include "proto/proto.h"

#include "keyd_client.h"
#include "keyd_ec.h"

#define PARAM_FP	"keyd-fp"
#define PARAM_CLIENT	"keyd-client"
#define NAMES_RSA	"RSA:rsaEncryption:1.2.840.113549.1.1.1"
#define NAMES_EC	"EC:id-ecPublicKey:1.2.840.10045.2.1"
#define PROPS		"provider=keyd"

enum ktype { KT_RSA = 1, KT_EC };

/* A key of the provider. */
struct kkey {
	enum ktype		 type;
	EVP_PKEY		*pub;	/* default provider, public part only */
	struct keyd_client	*client; /* NULL: no private key */
	uint8_t			 fp[KEYPROTO_FP];
};

static OSSL_LIB_CTX *keyd_libctx;
static pthread_once_t keyd_once = PTHREAD_ONCE_INIT;

/* Put an error on OpenSSL's queue, where CMS and TLS callers look. */
static void
kerr(const char *what)
{
	ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "keyd: %s", what);
}

/* ---- helpers ---- */

/* The KP_MD_* of a digest name; 0 if the protocol has none. */
static uint8_t
md_code(const char *name)
{
	EVP_MD *md;
	int nid;

	if (name == NULL || (md = EVP_MD_fetch(NULL, name, NULL)) == NULL) {
		ERR_clear_error();
		return 0;
	}
	nid = EVP_MD_get_type(md);
	EVP_MD_free(md);
	switch (nid) {
	case NID_sha1:
		return KP_MD_SHA1;
	case NID_sha224:
		return KP_MD_SHA224;
	case NID_sha256:
		return KP_MD_SHA256;
	case NID_sha384:
		return KP_MD_SHA384;
	case NID_sha512:
		return KP_MD_SHA512;
	default:
		return 0;
	}
}

/* The digest of a given size (a precomputed digest's length). */
static uint8_t
md_by_size(size_t len)
{
	uint8_t md;

	for (md = KP_MD_SHA1; md <= KP_MD_SHA512; md++)
		if (keyproto_md_size(md) == len)
			return md;
	return 0;
}

/* ASYNC_WAIT_CTX's cleanup of our descriptor: the job was abandoned (its
 * SSL freed while it waited), so is the request. */
static void
remote_abandon(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd,
    void *arg)
{
	(void)ctx;
	(void)key;
	(void)fd;
	keyd_async_free(arg);
}

/*
 * The request from inside an OpenSSL ASYNC job (SSL_MODE_ASYNC: a TLS
 * handshake on the event loop): send it, then pause the job until the
 * answer is in, so that the loop goes on meanwhile.  0, or -1 (err set).
 */
static int
remote_async(ASYNC_JOB *job, const struct kkey *k,
    const struct keyproto_req *req, uint8_t *out, size_t *outlen, char *err,
    size_t errlen)
{
	ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(job);
	struct keyd_async *a;
	int rc;

	if ((a = keyd_client_start(k->client, req, &rc, err, errlen)) == NULL)
		return -1;
	if (wctx == NULL || !ASYNC_WAIT_CTX_set_wait_fd(wctx, k, keyd_async_fd(a),
	    a, remote_abandon)) {
		snprintf(err, errlen, "cannot wait for the key process");
		keyd_async_free(a);
		return -1;
	}
	while (!keyd_async_done(a))
		if (!ASYNC_pause_job()) {
			snprintf(err, errlen, "cannot pause the TLS job");
			break;
		}
	/* done (or the pause failed): take the descriptor back */
	ASYNC_WAIT_CTX_clear_fd(wctx, k);
	rc = keyd_async_done(a) ? keyd_async_result(a, out, outlen, err,
	    errlen) : -1;
	keyd_async_free(a);
	return rc == 0 ? 0 : -1;
}

/* One request on k's handle; 0 with the answer in out, -1 with an error
 * on OpenSSL's queue.  Inside an ASYNC job it does not block. */
static int
remote(const struct kkey *k, struct keyproto_req *req, uint8_t *out,
    size_t *outlen)
{
	ASYNC_JOB *job;
	char err[256];
	int rc;

	if (k->client == NULL) {
		kerr("no private key handle");
		return -1;
	}
	memcpy(req->fp, k->fp, KEYPROTO_FP);
	if ((job = ASYNC_get_current_job()) != NULL)
		rc = remote_async(job, k, req, out, outlen, err, sizeof(err));
	else
		rc = keyd_client_call(k->client, req, out, outlen, err,
		    sizeof(err)) == 0 ? 0 : -1;
	if (rc != 0) {
		kerr(err);
		return -1;
	}
	return 0;
}

/* Read a mode given as an integer or as one of names[] (values vals[]). */
static int
get_mode(const OSSL_PARAM *p, const char *const *names, const int *vals,
    int *v)
{
	char *s = NULL;
	long l;
	int i, ok = 0;

	if (p->data_type != OSSL_PARAM_UTF8_STRING)
		return OSSL_PARAM_get_int(p, v);
	if (!OSSL_PARAM_get_utf8_string(p, &s, 0))
		return 0;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0) {
			*v = vals[i];
			ok = 1;
		}
	if (!ok && s[0] >= '0' && s[0] <= '9' &&
	    (l = strtol(s, NULL, 10)) < 65536) {
		*v = (int)l;
		ok = 1;
	}
	free(s);
	return ok;
}

/* Write a mode as the integer or the name the caller asked for. */
static int
set_mode(OSSL_PARAM *p, int v, const char *name)
{
	char num[16];

	if (p->data_type != OSSL_PARAM_UTF8_STRING)
		return OSSL_PARAM_set_int(p, v);
	if (name == NULL) {
		snprintf(num, sizeof(num), "%d", v);
		name = num;
	}
	return OSSL_PARAM_set_utf8_string(p, name);
}

static const char *const pad_names[] = { "pkcs1", "none", "oaep", "x931",
    "pss", NULL };
static const int pad_vals[] = { RSA_PKCS1_PADDING, RSA_NO_PADDING,
    RSA_PKCS1_OAEP_PADDING, RSA_X931_PADDING, RSA_PKCS1_PSS_PADDING };
static const char *const salt_names[] = { "digest", "max", "auto", NULL };
static const int salt_vals[] = { RSA_PSS_SALTLEN_DIGEST, RSA_PSS_SALTLEN_MAX,
    RSA_PSS_SALTLEN_AUTO };

static const char *
pad_name(int pad)
{
	int i;

	for (i = 0; pad_names[i] != NULL; i++)
		if (pad_vals[i] == pad)
			return pad_names[i];
	return NULL;
}

/* Copy a UTF-8 parameter into a fixed buffer. */
static int
get_name(const OSSL_PARAM *p, char *buf, size_t len)
{
	return OSSL_PARAM_get_utf8_string(p, &buf, len);
}

/* ---- key management ---- */

static void *
km_new(enum ktype type)
{
	struct kkey *k = OPENSSL_zalloc(sizeof(*k));

	if (k != NULL)
		k->type = type;
	return k;
}

static void *
km_new_rsa(void *provctx)
{
	(void)provctx;
	return km_new(KT_RSA);
}

static void *
km_new_ec(void *provctx)
{
	(void)provctx;
	return km_new(KT_EC);
}

static void
km_free(void *kd)
{
	struct kkey *k = kd;

	if (k == NULL)
		return;
	EVP_PKEY_free(k->pub);
	if (k->client != NULL)
		keyd_client_unref(k->client);
	OPENSSL_free(k);
}

static int
km_has(const void *kd, int selection)
{
	const struct kkey *k = kd;
	int ok = 1;

	if (k == NULL)
		return 0;
	if (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY |
	    OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS))
		ok = ok && k->pub != NULL;
	if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
		ok = ok && k->client != NULL;
	return ok;
}

static int
km_match(const void *kd1, const void *kd2, int selection)
{
	const struct kkey *a = kd1, *b = kd2;

	if (a->pub == NULL || b->pub == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) &&
	    !(selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) &&
	    (a->client == NULL || b->client == NULL ||
	    memcmp(a->fp, b->fp, KEYPROTO_FP) != 0))
		return 0;
	return EVP_PKEY_eq(a->pub, b->pub) == 1;
}

/* The public part of params as a default-provider key in k->pub. */
static int
km_import_pub(struct kkey *k, int selection, const OSSL_PARAM params[])
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;
	int ok;

	selection &= ~OSSL_KEYMGMT_SELECT_PRIVATE_KEY;
	if (k->type == KT_EC && (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY))
		selection |= OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS;
	if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0 &&
	    k->type == KT_RSA)
		return 1;	/* RSA has no domain parameters */
	ctx = EVP_PKEY_CTX_new_from_name(NULL, k->type == KT_RSA ? "RSA" :
	    "EC", NULL);
	ok = ctx != NULL && EVP_PKEY_fromdata_init(ctx) > 0 &&
	    EVP_PKEY_fromdata(ctx, &pk, selection, (OSSL_PARAM *)params) > 0;
	EVP_PKEY_CTX_free(ctx);
	if (ok) {
		EVP_PKEY_free(k->pub);
		k->pub = pk;
	}
	return ok;
}

/* Private key material is never imported: only the handle. */
static int
km_import(void *kd, int selection, const OSSL_PARAM params[])
{
	struct kkey *k = kd;
	const OSSL_PARAM *fp, *cl;
	struct keyd_client *client;

	if (k == NULL || !km_import_pub(k, selection, params))
		return 0;
	if (!(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
		return 1;
	fp = OSSL_PARAM_locate_const(params, PARAM_FP);
	cl = OSSL_PARAM_locate_const(params, PARAM_CLIENT);
	if (fp == NULL || cl == NULL)
		return 1;	/* a public key, e.g. a certificate's */
	if (fp->data_type != OSSL_PARAM_OCTET_STRING ||
	    fp->data_size != KEYPROTO_FP ||
	    cl->data_type != OSSL_PARAM_OCTET_STRING ||
	    cl->data_size != sizeof(client))
		return 0;
	memcpy(&client, cl->data, sizeof(client));
	keyd_client_ref(client);
	if (k->client != NULL)
		keyd_client_unref(k->client);
	k->client = client;
	memcpy(k->fp, fp->data, KEYPROTO_FP);
	return 1;
}

/* The public part only: a private key never leaves the key process, and
 * refusing it makes OpenSSL use this provider's operations. */
static int
km_export(void *kd, int selection, OSSL_CALLBACK *cb, void *arg)
{
	struct kkey *k = kd;
	OSSL_PARAM *params = NULL;
	int ok;

	if (k == NULL || k->pub == NULL ||
	    (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
		return 0;
	if (EVP_PKEY_todata(k->pub, selection, &params) <= 0)
		return 0;
	ok = cb(params, arg);
	OSSL_PARAM_free(params);
	return ok;
}

static const OSSL_PARAM km_types[] = {
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
	    NULL, 0),
	OSSL_PARAM_octet_string(PARAM_FP, NULL, 0),
	OSSL_PARAM_octet_string(PARAM_CLIENT, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
km_types_fn(int selection)
{
	(void)selection;
	return km_types;
}

static const OSSL_PARAM km_gettable[] = {
	OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
km_gettable_fn(void *provctx)
{
	(void)provctx;
	return km_gettable;
}

static int
km_get_params(void *kd, OSSL_PARAM params[])
{
	struct kkey *k = kd;

	return k->pub != NULL && EVP_PKEY_get_params(k->pub, params);
}

static const OSSL_PARAM km_settable[] = {
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
km_settable_fn(void *provctx)
{
	(void)provctx;
	return km_settable;
}

/* A peer's point set on a copy of our parameters (CMS key agreement). */
static int
km_set_params(void *kd, const OSSL_PARAM params[])
{
	struct kkey *k = kd;

	if (OSSL_PARAM_locate_const(params,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY) == NULL)
		return 1;
	if (k->pub == NULL || k->client != NULL)
		return 0;	/* a handle's public key stays its own */
	return EVP_PKEY_set_params(k->pub, (OSSL_PARAM *)params);
}

static void *
km_dup(const void *kd, int selection)
{
	const struct kkey *k = kd;
	struct kkey *n;

	if ((n = km_new(k->type)) == NULL)
		return NULL;
	if (k->pub != NULL && (n->pub = EVP_PKEY_dup(k->pub)) == NULL) {
		km_free(n);
		return NULL;
	}
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) &&
	    k->client != NULL) {
		keyd_client_ref(k->client);
		n->client = k->client;
		memcpy(n->fp, k->fp, KEYPROTO_FP);
	}
	return n;
}

/* A public key is checked as the default provider would (a peer's point
 * in key agreement); the private part is the key process's business. */
static int
km_validate(const void *kd, int selection, int checktype)
{
	const struct kkey *k = kd;
	EVP_PKEY_CTX *ctx;
	int ok = 1;

	(void)checktype;
	if (k->pub == NULL)
		return 0;
	if (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) {
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pub, NULL);
		ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
		ok = ok && k->client != NULL;
	return ok;
}

static const char *
km_opname_rsa(int op)
{
	(void)op;
	return "RSA";
}

static const char *
km_opname_ec(int op)
{
	return op == OSSL_OP_KEYEXCH ? "ECDH" : "ECDSA";
}

#define KM_COMMON \
	{ OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free }, \
	{ OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has }, \
	{ OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match }, \
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import }, \
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))km_types_fn }, \
	{ OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export }, \
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))km_types_fn }, \
	{ OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params }, \
	{ OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))km_gettable_fn }, \
	{ OSSL_FUNC_KEYMGMT_SET_PARAMS, (void (*)(void))km_set_params }, \
	{ OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, (void (*)(void))km_settable_fn }, \
	{ OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup }, \
	{ OSSL_FUNC_KEYMGMT_VALIDATE, (void (*)(void))km_validate }

static const OSSL_DISPATCH km_rsa_fns[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new_rsa },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
	    (void (*)(void))km_opname_rsa },
	KM_COMMON,
	{ 0, NULL }
};

static const OSSL_DISPATCH km_ec_fns[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new_ec },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
	    (void (*)(void))km_opname_ec },
	KM_COMMON,
	{ 0, NULL }
};

/* ---- signatures ---- */

struct ksig {
	struct kkey	*key;
	int		 pad;		/* RSA: RSA_PKCS1{,_PSS}_PADDING */
	int		 saltlen;	/* PSS: RSA_PSS_SALTLEN_* or bytes */
	char		 md[64];	/* "" until set */
	char		 mgf1[64];	/* PSS: "" means md */
	EVP_MD_CTX	*mdctx;		/* digest_sign_* */
};

static void *
sig_newctx(void *provctx, const char *propq)
{
	struct ksig *s = OPENSSL_zalloc(sizeof(*s));

	(void)provctx;
	(void)propq;
	if (s != NULL) {
		s->pad = RSA_PKCS1_PADDING;
		s->saltlen = RSA_PSS_SALTLEN_DIGEST;
	}
	return s;
}

static void
sig_freectx(void *ctx)
{
	struct ksig *s = ctx;

	EVP_MD_CTX_free(s->mdctx);
	OPENSSL_free(s);
}

static void *
sig_dupctx(void *ctx)
{
	struct ksig *s = ctx, *n;

	if ((n = OPENSSL_memdup(s, sizeof(*s))) == NULL)
		return NULL;
	n->mdctx = NULL;
	if (s->mdctx != NULL && ((n->mdctx = EVP_MD_CTX_new()) == NULL ||
	    !EVP_MD_CTX_copy_ex(n->mdctx, s->mdctx))) {
		sig_freectx(n);
		return NULL;
	}
	return n;
}

static int
sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	struct ksig *s = ctx;
	const OSSL_PARAM *p;

	if (params == NULL)
		return 1;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_SIGNATURE_PARAM_DIGEST)) != NULL &&
	    !get_name(p, s->md, sizeof(s->md)))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL &&
	    !get_mode(p, pad_names, pad_vals, &s->pad))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL &&
	    !get_mode(p, salt_names, salt_vals, &s->saltlen))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL &&
	    !get_name(p, s->mgf1, sizeof(s->mgf1)))
		return 0;
	if (s->pad != RSA_PKCS1_PADDING && s->pad != RSA_PKCS1_PSS_PADDING) {
		kerr("only PKCS#1 v1.5 and PSS signatures");
		return 0;
	}
	return 1;
}

static const OSSL_PARAM sig_settable[] = {
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
sig_settable_fn(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return sig_settable;
}

/* A default-provider verification context on the public key with the
 * same parameters: it says the AlgorithmIdentifier and verifies. */
static EVP_PKEY_CTX *
sig_shadow(const struct ksig *s)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, s->key->pub, NULL);
	EVP_MD *md = EVP_MD_fetch(NULL, s->md[0] != '\0' ? s->md : "SHA256",
	    NULL);
	EVP_MD *mgf1 = s->mgf1[0] != '\0' ? EVP_MD_fetch(NULL, s->mgf1,
	    NULL) : NULL;
	int ok;

	ok = pc != NULL && md != NULL && EVP_PKEY_verify_init(pc) > 0 &&
	    EVP_PKEY_CTX_set_signature_md(pc, md) > 0;
	if (ok && s->key->type == KT_RSA)
		ok = EVP_PKEY_CTX_set_rsa_padding(pc, s->pad) > 0;
	if (ok && s->key->type == KT_RSA && s->pad == RSA_PKCS1_PSS_PADDING)
		ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, s->saltlen) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, mgf1 != NULL ? mgf1 :
		    md) > 0;
	EVP_MD_free(md);
	EVP_MD_free(mgf1);
	if (!ok) {
		EVP_PKEY_CTX_free(pc);
		return NULL;
	}
	return pc;
}

/* The AlgorithmIdentifier of the signature (CMS asks for it). */
static int
sig_get_aid(const struct ksig *s, OSSL_PARAM *p)
{
	EVP_PKEY_CTX *pc = sig_shadow(s);
	OSSL_PARAM one[2] = { *p, OSSL_PARAM_END };
	int ok;

	ok = pc != NULL && EVP_PKEY_CTX_get_params(pc, one) > 0;
	p->return_size = one[0].return_size;
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static int
sig_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	struct ksig *s = ctx;
	OSSL_PARAM *p;
	const char *md = s->md[0] != '\0' ? s->md : "SHA256";

	if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) !=
	    NULL && !OSSL_PARAM_set_utf8_string(p, md))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) !=
	    NULL && !set_mode(p, s->pad, pad_name(s->pad)))
		return 0;
	if ((p = OSSL_PARAM_locate(params,
	    OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL &&
	    !set_mode(p, s->saltlen, s->saltlen == RSA_PSS_SALTLEN_DIGEST ?
	    "digest" : NULL))
		return 0;
	if ((p = OSSL_PARAM_locate(params,
	    OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL &&
	    !OSSL_PARAM_set_utf8_string(p, s->mgf1[0] != '\0' ? s->mgf1 : md))
		return 0;
	if ((p = OSSL_PARAM_locate(params,
	    OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) != NULL && !sig_get_aid(s, p))
		return 0;
	return 1;
}

static const OSSL_PARAM sig_gettable[] = {
	OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
sig_gettable_fn(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return sig_gettable;
}

static int
sig_sign_init(void *ctx, void *kd, const OSSL_PARAM params[])
{
	struct ksig *s = ctx;

	s->key = kd;
	return sig_set_ctx_params(s, params);
}

/* How the key process is to sign a digest of md, as KP_ALG_*; 0 when the
 * protocol cannot (PSS with another salt or MGF1 digest). */
static uint8_t
sig_alg(const struct ksig *s, uint8_t md)
{
	if (s->key->type == KT_EC)
		return KP_ALG_ECDSA;
	if (s->pad == RSA_PKCS1_PADDING)
		return KP_ALG_RSA_PKCS1;
	if (s->saltlen != RSA_PSS_SALTLEN_DIGEST &&
	    (s->saltlen < 0 || (size_t)s->saltlen != keyproto_md_size(md)))
		return 0;
	if (s->mgf1[0] != '\0' && md_code(s->mgf1) != md)
		return 0;
	return KP_ALG_RSA_PSS;
}

/* Sign the digest dgst of md through the key process. */
static int
sig_remote(struct ksig *s, uint8_t md, const uint8_t *dgst, size_t dlen,
    unsigned char *sig, size_t *siglen, size_t sigsize)
{
	struct keyproto_req req;

	memset(&req, 0, sizeof(req));
	req.type = KP_SIGN;
	req.md = md;
	if (md == 0 || dlen != keyproto_md_size(md)) {
		kerr("a signed digest must be SHA-1 or SHA-2, of its size");
		return 0;
	}
	if ((req.alg = sig_alg(s, md)) == 0) {
		kerr("RSA-PSS only with salt and MGF1 digest as the digest");
		return 0;
	}
	req.data = dgst;
	req.len = dlen;
	*siglen = sigsize;
	return remote(s->key, &req, sig, siglen) == 0;
}

/* Sign a digest made by the caller (EVP_PKEY_sign). */
static int
sig_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
    const unsigned char *tbs, size_t tbslen)
{
	struct ksig *s = ctx;
	uint8_t md;

	if (sig == NULL) {
		*siglen = (size_t)EVP_PKEY_get_size(s->key->pub);
		return 1;
	}
	if (s->md[0] != '\0')
		md = md_code(s->md);
	else if (s->key->type == KT_EC)
		md = md_by_size(tbslen);
	else {
		kerr("RSA signature without a digest algorithm");
		return 0;
	}
	return sig_remote(s, md, tbs, tbslen, sig, siglen, sigsize);
}

static int
sig_digest_init(void *ctx, const char *mdname, void *kd,
    const OSSL_PARAM params[])
{
	struct ksig *s = ctx;
	EVP_MD *md;
	int ok;

	s->key = kd;
	snprintf(s->md, sizeof(s->md), "%s", mdname != NULL && *mdname ?
	    mdname : "SHA256");
	if (!sig_set_ctx_params(s, params))
		return 0;
	if (md_code(s->md) == 0) {
		kerr("digest not supported by the key process");
		return 0;
	}
	if (s->mdctx == NULL && (s->mdctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	if ((md = EVP_MD_fetch(NULL, s->md, NULL)) == NULL)
		return 0;
	ok = EVP_DigestInit_ex2(s->mdctx, md, NULL);
	EVP_MD_free(md);
	return ok;
}

static int
sig_digest_update(void *ctx, const unsigned char *data, size_t len)
{
	struct ksig *s = ctx;

	return s->mdctx != NULL && EVP_DigestUpdate(s->mdctx, data, len);
}

static int
sig_digest_final(void *ctx, unsigned char *sig, size_t *siglen,
    size_t sigsize)
{
	struct ksig *s = ctx;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen;

	if (sig == NULL) {
		*siglen = (size_t)EVP_PKEY_get_size(s->key->pub);
		return 1;
	}
	if (s->mdctx == NULL || !EVP_DigestFinal_ex(s->mdctx, dgst, &dlen))
		return 0;
	return sig_remote(s, md_code(s->md), dgst, dlen, sig, siglen,
	    sigsize);
}

/* Verification is public: done here, by the default provider. */
static int
sig_verify(void *ctx, const unsigned char *sig, size_t siglen,
    const unsigned char *tbs, size_t tbslen)
{
	EVP_PKEY_CTX *pc = sig_shadow(ctx);
	int ok;

	ok = pc != NULL && EVP_PKEY_verify(pc, sig, siglen, tbs, tbslen) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static int
sig_digest_verify_final(void *ctx, const unsigned char *sig, size_t siglen)
{
	struct ksig *s = ctx;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen;

	if (s->mdctx == NULL || !EVP_DigestFinal_ex(s->mdctx, dgst, &dlen))
		return 0;
	return sig_verify(s, sig, siglen, dgst, dlen);
}

static const OSSL_DISPATCH sig_fns[] = {
	{ OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))sig_sign_init },
	{ OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))sig_verify },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
	    (void (*)(void))sig_digest_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,
	    (void (*)(void))sig_digest_update },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,
	    (void (*)(void))sig_digest_verify_final },
	{ OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_newctx },
	{ OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx },
	{ OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx },
	{ OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sig_sign_init },
	{ OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,
	    (void (*)(void))sig_digest_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE,
	    (void (*)(void))sig_digest_update },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL,
	    (void (*)(void))sig_digest_final },
	{ OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,
	    (void (*)(void))sig_get_ctx_params },
	{ OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
	    (void (*)(void))sig_gettable_fn },
	{ OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,
	    (void (*)(void))sig_set_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
	    (void (*)(void))sig_settable_fn },
	{ 0, NULL }
};

/* ---- RSA decryption ---- */

struct kdec {
	struct kkey	*key;
	int		 pad;
	char		 md[64];	/* OAEP, "" means SHA-1 */
	char		 mgf1[64];	/* "" means md */
	unsigned int	 keylen;	/* CMS_PARAM_UNWRAP_KEYLEN, 0: none */
};

static void *
dec_newctx(void *provctx)
{
	struct kdec *d = OPENSSL_zalloc(sizeof(*d));

	(void)provctx;
	if (d != NULL)
		d->pad = RSA_PKCS1_PADDING;
	return d;
}

static void
dec_freectx(void *ctx)
{
	OPENSSL_free(ctx);
}

static void *
dec_dupctx(void *ctx)
{
	return OPENSSL_memdup(ctx, sizeof(struct kdec));
}

/* An OAEP label would need the protocol to carry it: refused. */
static int
dec_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	struct kdec *d = ctx;
	const OSSL_PARAM *p;

	if (params == NULL)
		return 1;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) != NULL &&
	    !get_mode(p, pad_names, pad_vals, &d->pad))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) != NULL &&
	    !get_name(p, d->md, sizeof(d->md)))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) != NULL &&
	    !get_name(p, d->mgf1, sizeof(d->mgf1)))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL)) != NULL && p->data_size > 0) {
		kerr("OAEP labels are not supported");
		return 0;
	}
	if ((p = OSSL_PARAM_locate_const(params,
	    CMS_PARAM_UNWRAP_KEYLEN)) != NULL && (!OSSL_PARAM_get_uint(p,
	    &d->keylen) || d->keylen > KEYPROTO_MAX_KEYLEN)) {
		d->keylen = 0;
		kerr("unwrap key length out of range");
		return 0;
	}
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION)) != NULL) {
		kerr("TLS RSA key exchange is not supported");
		return 0;
	}
	return 1;
}

static const OSSL_PARAM dec_settable[] = {
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS,
	    NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS,
	    NULL, 0),
	OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
	OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
	OSSL_PARAM_uint("implicit-rejection", NULL),
	OSSL_PARAM_uint(CMS_PARAM_UNWRAP_KEYLEN, NULL),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
dec_settable_fn(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return dec_settable;
}

static int
dec_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	struct kdec *d = ctx;
	OSSL_PARAM *p;
	const char *md = d->md[0] != '\0' ? d->md : "SHA1";

	if ((p = OSSL_PARAM_locate(params,
	    OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) != NULL &&
	    !set_mode(p, d->pad, pad_name(d->pad)))
		return 0;
	if ((p = OSSL_PARAM_locate(params,
	    OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) != NULL &&
	    !OSSL_PARAM_set_utf8_string(p, md))
		return 0;
	if ((p = OSSL_PARAM_locate(params,
	    OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) != NULL &&
	    !OSSL_PARAM_set_utf8_string(p, d->mgf1[0] != '\0' ? d->mgf1 : md))
		return 0;
	return 1;
}

static const OSSL_PARAM dec_gettable[] = {
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
dec_gettable_fn(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return dec_gettable;
}

static int
dec_init(void *ctx, void *kd, const OSSL_PARAM params[])
{
	struct kdec *d = ctx;

	d->key = kd;
	if (d->key->type != KT_RSA) {
		kerr("decryption needs an RSA key");
		return 0;
	}
	return dec_set_ctx_params(d, params);
}

static int
dec_decrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
    const unsigned char *in, size_t inlen)
{
	struct kdec *d = ctx;
	struct keyproto_req req;

	if (out == NULL) {
		*outlen = (size_t)EVP_PKEY_get_size(d->key->pub);
		return 1;
	}
	memset(&req, 0, sizeof(req));
	req.type = KP_DECRYPT;
	if (d->pad == RSA_PKCS1_OAEP_PADDING) {
		req.alg = KP_PAD_OAEP;
		req.md = md_code(d->md[0] != '\0' ? d->md : "SHA1");
		req.md2 = d->mgf1[0] != '\0' ? md_code(d->mgf1) : req.md;
	} else if (d->pad == RSA_PKCS1_PADDING) {
		req.alg = KP_PAD_PKCS1;
		req.keylen = (uint8_t)d->keylen;
	} else {
		kerr("only PKCS#1 v1.5 and OAEP decryption");
		return 0;
	}
	req.data = in;
	req.len = inlen;
	*outlen = outsize;
	return remote(d->key, &req, out, outlen) == 0;
}

static const OSSL_DISPATCH dec_fns[] = {
	{ OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))dec_newctx },
	{ OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))dec_freectx },
	{ OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))dec_dupctx },
	{ OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))dec_init },
	{ OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))dec_decrypt },
	{ OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS,
	    (void (*)(void))dec_get_ctx_params },
	{ OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,
	    (void (*)(void))dec_gettable_fn },
	{ OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS,
	    (void (*)(void))dec_set_ctx_params },
	{ OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,
	    (void (*)(void))dec_settable_fn },
	{ 0, NULL }
};

/* ---- ECDH ---- */

struct kexch {
	struct kkey	*key;
	EVP_PKEY	*peer;		/* default provider */
	int		 x963;		/* KDF after the raw secret */
	char		 kdfmd[64];
	size_t		 outlen;
	unsigned char	*ukm;
	size_t		 ukmlen;
};

static void *
ex_newctx(void *provctx)
{
	(void)provctx;
	return OPENSSL_zalloc(sizeof(struct kexch));
}

static void
ex_freectx(void *ctx)
{
	struct kexch *x = ctx;

	EVP_PKEY_free(x->peer);
	OPENSSL_free(x->ukm);
	OPENSSL_free(x);
}

static void *
ex_dupctx(void *ctx)
{
	struct kexch *x = ctx, *n;

	if ((n = OPENSSL_memdup(x, sizeof(*x))) == NULL)
		return NULL;
	n->ukm = NULL;
	if (x->ukm != NULL &&
	    (n->ukm = OPENSSL_memdup(x->ukm, x->ukmlen)) == NULL) {
		OPENSSL_free(n);
		return NULL;
	}
	if (n->peer != NULL)
		EVP_PKEY_up_ref(n->peer);
	return n;
}

static int
ex_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	struct kexch *x = ctx;
	const OSSL_PARAM *p;
	char kdf[32];
	void *ukm = NULL;
	size_t len;

	if (params == NULL)
		return 1;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_EXCHANGE_PARAM_KDF_TYPE)) != NULL) {
		if (!get_name(p, kdf, sizeof(kdf)))
			return 0;
		if (kdf[0] != '\0' && strcasecmp(kdf, OSSL_KDF_NAME_X963KDF)) {
			kerr("only the X9.63 KDF");
			return 0;
		}
		x->x963 = kdf[0] != '\0';
	}
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_EXCHANGE_PARAM_KDF_DIGEST)) != NULL &&
	    !get_name(p, x->kdfmd, sizeof(x->kdfmd)))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_EXCHANGE_PARAM_KDF_OUTLEN)) != NULL &&
	    !OSSL_PARAM_get_size_t(p, &x->outlen))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_EXCHANGE_PARAM_KDF_UKM)) != NULL) {
		if (!OSSL_PARAM_get_octet_string(p, &ukm, 0, &len))
			return 0;
		OPENSSL_free(x->ukm);
		x->ukm = ukm;
		x->ukmlen = len;
	}
	return 1;
}

static const OSSL_PARAM ex_settable[] = {
	OSSL_PARAM_int(OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE, NULL),
	OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_TYPE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST_PROPS, NULL, 0),
	OSSL_PARAM_size_t(OSSL_EXCHANGE_PARAM_KDF_OUTLEN, NULL),
	OSSL_PARAM_octet_string(OSSL_EXCHANGE_PARAM_KDF_UKM, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *
ex_settable_fn(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return ex_settable;
}

static int
ex_init(void *ctx, void *kd, const OSSL_PARAM params[])
{
	struct kexch *x = ctx;

	x->key = kd;
	if (x->key->type != KT_EC) {
		kerr("key agreement needs an EC key");
		return 0;
	}
	return ex_set_ctx_params(x, params);
}

static int
ex_set_peer(void *ctx, void *kd)
{
	struct kexch *x = ctx;
	struct kkey *peer = kd;

	if (peer->pub == NULL || !EVP_PKEY_up_ref(peer->pub))
		return 0;
	EVP_PKEY_free(x->peer);
	x->peer = peer->pub;
	return 1;
}

/* The X9.63 KDF over the shared secret z, as CMS key agreement wants. */
static int
ex_kdf(struct kexch *x, const uint8_t *z, size_t zlen, unsigned char *out)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_X963KDF, NULL);
	EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4], *p = params;
	int ok;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    x->kdfmd[0] != '\0' ? x->kdfmd : "SHA1", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)z, zlen);
	if (x->ukm != NULL)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    x->ukm, x->ukmlen);
	*p = OSSL_PARAM_construct_end();
	ok = kctx != NULL && EVP_KDF_derive(kctx, out, x->outlen, params) > 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ok;
}

static int
ex_derive(void *ctx, unsigned char *secret, size_t *secretlen,
    size_t outlen)
{
	struct kexch *x = ctx;
	struct keyproto_req req;
	uint8_t z[KEYPROTO_MAX_DATA], spki[KEYPROTO_MAX_DATA];
	unsigned char *der = NULL;
	size_t zlen = sizeof(z), want;
	int derlen, ok = 0;

	want = x->x963 ? x->outlen :
	    (size_t)(EVP_PKEY_get_bits(x->key->pub) + 7) / 8;
	if (secret == NULL || x->peer == NULL) {
		*secretlen = want;
		return x->peer != NULL || secret == NULL;
	}
	if (outlen < want || want == 0)
		return 0;
	memset(&req, 0, sizeof(req));
	req.type = KP_DERIVE;
	if ((req.len = keyd_ec_spki(x->key->pub, x->peer, spki,
	    sizeof(spki))) > 0)
		req.data = spki;
	else if ((derlen = i2d_PUBKEY(x->peer, &der)) > 0) {
		req.data = der;
		req.len = (size_t)derlen;
	} else
		return 0;
	if (remote(x->key, &req, z, &zlen) == 0) {
		if (x->x963)
			ok = ex_kdf(x, z, zlen, secret);
		else if ((ok = zlen == want))
			memcpy(secret, z, zlen);
		*secretlen = want;
	}
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_free(der);
	return ok;
}

static const OSSL_DISPATCH ex_fns[] = {
	{ OSSL_FUNC_KEYEXCH_NEWCTX, (void (*)(void))ex_newctx },
	{ OSSL_FUNC_KEYEXCH_FREECTX, (void (*)(void))ex_freectx },
	{ OSSL_FUNC_KEYEXCH_DUPCTX, (void (*)(void))ex_dupctx },
	{ OSSL_FUNC_KEYEXCH_INIT, (void (*)(void))ex_init },
	{ OSSL_FUNC_KEYEXCH_SET_PEER, (void (*)(void))ex_set_peer },
	{ OSSL_FUNC_KEYEXCH_DERIVE, (void (*)(void))ex_derive },
	{ OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS,
	    (void (*)(void))ex_set_ctx_params },
	{ OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS,
	    (void (*)(void))ex_settable_fn },
	{ 0, NULL }
};

/* ---- the provider ---- */

static const OSSL_ALGORITHM prov_keymgmt[] = {
	{ NAMES_RSA, PROPS, km_rsa_fns, "keyd RSA handle" },
	{ NAMES_EC, PROPS, km_ec_fns, "keyd EC handle" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM prov_signature[] = {
	{ NAMES_RSA, PROPS, sig_fns, "keyd RSA signature" },
	{ "ECDSA", PROPS, sig_fns, "keyd ECDSA" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM prov_asym[] = {
	{ NAMES_RSA, PROPS, dec_fns, "keyd RSA decryption" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM prov_keyexch[] = {
	{ "ECDH", PROPS, ex_fns, "keyd ECDH" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM *
prov_query(void *provctx, int op, int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (op) {
	case OSSL_OP_KEYMGMT:
		return prov_keymgmt;
	case OSSL_OP_SIGNATURE:
		return prov_signature;
	case OSSL_OP_ASYM_CIPHER:
		return prov_asym;
	case OSSL_OP_KEYEXCH:
		return prov_keyexch;
	default:
		return NULL;
	}
}

static const OSSL_DISPATCH prov_fns[] = {
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query },
	{ 0, NULL }
};

static int
prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx)
{
	(void)handle;
	(void)in;
	*out = prov_fns;
	*provctx = NULL;
	return 1;
}

/* The provider's library context, made once. */
static void
prov_setup(void)
{
	OSSL_LIB_CTX *lc;

	if ((lc = OSSL_LIB_CTX_new()) == NULL)
		return;
	if (!OSSL_PROVIDER_add_builtin(lc, "keyd", prov_init) ||
	    OSSL_PROVIDER_load(lc, "keyd") == NULL) {
		OSSL_LIB_CTX_free(lc);
		return;
	}
	keyd_libctx = lc;
}

/* The handle as a key of the provider: cert's public key plus fp and
 * the client. */
static EVP_PKEY *
pkey_make(const char *type, EVP_PKEY *pub, const uint8_t *fp,
    struct keyd_client *client)
{
	OSSL_PARAM extra[3], *pubp = NULL, *all = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;

	extra[0] = OSSL_PARAM_construct_octet_string(PARAM_FP, (void *)fp,
	    KEYPROTO_FP);
	extra[1] = OSSL_PARAM_construct_octet_string(PARAM_CLIENT, &client,
	    sizeof(client));
	extra[2] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_todata(pub, EVP_PKEY_PUBLIC_KEY, &pubp) > 0 &&
	    (all = OSSL_PARAM_merge(pubp, extra)) != NULL &&
	    (ctx = EVP_PKEY_CTX_new_from_name(keyd_libctx, type, NULL)) !=
	    NULL && EVP_PKEY_fromdata_init(ctx) > 0 &&
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEYPAIR, all) <= 0)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(all);
	OSSL_PARAM_free(pubp);
	return pk;
}

EVP_PKEY *
keyd_client_pkey(struct keyd_client *c, X509 *cert, char *err,
    size_t errlen)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert), *pk;
	uint8_t fp[KEYPROTO_FP];
	unsigned int fplen = sizeof(fp);
	const char *type;

	pthread_once(&keyd_once, prov_setup);
	if (keyd_libctx == NULL) {
		snprintf(err, errlen, "cannot load the keyd provider");
		return NULL;
	}
	if (pub == NULL) {
		snprintf(err, errlen, "certificate without a public key");
		return NULL;
	}
	if (EVP_PKEY_is_a(pub, "RSA"))
		type = "RSA";
	else if (EVP_PKEY_is_a(pub, "EC"))
		type = "EC";
	else {
		snprintf(err, errlen, "%s keys are not supported by the key"
		    " process", EVP_PKEY_get0_type_name(pub));
		return NULL;
	}
	if (!X509_digest(cert, EVP_sha256(), fp, &fplen) ||
	    (pk = pkey_make(type, pub, fp, c)) == NULL) {
		snprintf(err, errlen, "cannot make a key handle: %s",
		    ERR_reason_error_string(ERR_peek_last_error()));
		return NULL;
	}
	return pk;
}
