/* keyd_keyring.c: the key process's private keys and the operations on
 * them (keyd_keyring.h), with the OpenSSL 3 EVP API only. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "keyd_ec.h"
#include "keyd_keyring.h"
#include "keyd_p11.h"
#include "lib/lib.h"
#include "store/store.h"

struct keyd_key {
	uint8_t		 fp[KEYPROTO_FP];
	EVP_PKEY	*pkey;
	int		 slow;		/* RSA, or on a token */
};

struct keyd_keyring {
	struct keyd_key	*v;
	size_t		 n;
	int		 refs;		/* keyd_keyring_ref; atomic */
	unsigned char	*mark;		/* the loop-guard secret (secure heap),
					 * NULL: none */
};

/* Start OpenSSL's secure heap for key numbers (see keyd_keyring.h). */
int
keyd_secure_heap(size_t size)
{
	int rc;

	if (CRYPTO_secure_malloc_initialized())
		return 0;
	rc = CRYPTO_secure_malloc_init(size, 16);
	ERR_clear_error();
	return rc == 1 ? 0 : rc == 2 ? 1 : -1;
}

/* An empty keyring. */
struct keyd_keyring *
keyd_keyring_new(void)
{
	struct keyd_keyring *kr = xcalloc(1, sizeof(*kr));

	kr->refs = 1;
	return kr;
}

/* Another reference (a job on a worker thread uses it). */
struct keyd_keyring *
keyd_keyring_ref(struct keyd_keyring *kr)
{
	__atomic_add_fetch(&kr->refs, 1, __ATOMIC_RELAXED);
	return kr;
}

/* Drop a reference; the last frees the keyring and its references to the
 * keys. */
void
keyd_keyring_free(struct keyd_keyring *kr)
{
	size_t i;

	if (kr == NULL || __atomic_sub_fetch(&kr->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < kr->n; i++)
		EVP_PKEY_free(kr->v[i].pkey);
	free(kr->v);
	if (kr->mark != NULL)
		OPENSSL_secure_clear_free(kr->mark, KEYPROTO_MAC_LEN);
	free(kr);
}

/* Hold the loop-guard secret (len must be KEYPROTO_MAC_LEN); -1 if not. */
int
keyd_keyring_set_mark(struct keyd_keyring *kr, const unsigned char *m,
    size_t len)
{
	if (len != KEYPROTO_MAC_LEN)
		return -1;
	if (kr->mark == NULL &&
	    (kr->mark = OPENSSL_secure_malloc(KEYPROTO_MAC_LEN)) == NULL)
		alloc_fail("OPENSSL_secure_malloc");
	memcpy(kr->mark, m, len);
	return 0;
}

/* How many keys it holds. */
size_t
keyd_keyring_count(const struct keyd_keyring *kr)
{
	return kr->n;
}

/* The key with fingerprint fp, or NULL. */
static EVP_PKEY *
keyring_find(const struct keyd_keyring *kr, const uint8_t *fp)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		if (memcmp(kr->v[i].fp, fp, KEYPROTO_FP) == 0)
			return kr->v[i].pkey;
	return NULL;
}

/* Hold key under its certificate's SHA-256 fingerprint. */
int
keyd_keyring_add(struct keyd_keyring *kr, X509 *cert, EVP_PKEY *key,
    char *err, size_t errlen)
{
	uint8_t fp[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the key does not match its certificate");
		return -1;
	}
	if (!X509_digest(cert, EVP_sha256(), fp, &n) || n != KEYPROTO_FP) {
		ERR_clear_error();
		snprintf(err, errlen, "cannot hash the certificate");
		return -1;
	}
	if (keyring_find(kr, fp) != NULL)
		return 0;
	if (!EVP_PKEY_up_ref(key))
		alloc_fail("EVP_PKEY_up_ref");
	kr->v = xreallocarray(kr->v, kr->n + 1, sizeof(*kr->v));
	memcpy(kr->v[kr->n].fp, fp, KEYPROTO_FP);
	kr->v[kr->n].pkey = key;
	kr->v[kr->n].slow = !EVP_PKEY_is_a(key, "EC");
	kr->n++;
	return 0;
}

int
keyd_keyring_has(const struct keyd_keyring *kr, const uint8_t *fp)
{
	return keyring_find(kr, fp) != NULL;
}

/* Whether an operation with the key named by fp takes long enough to be
 * worth a thread: RSA (hundreds of microseconds) and token keys (a device
 * round trip) are; an EC key in memory (tens) is not. */
int
keyd_keyring_slow(const struct keyd_keyring *kr, const uint8_t *fp)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		if (memcmp(kr->v[i].fp, fp, KEYPROTO_FP) == 0)
			return kr->v[i].slow;
	return 0;
}

/* What keyd_keyring_load_keyfile is adding, and the first failure. */
struct load {
	struct keyd_keyring *kr;
	int		 added;
	char		*err;
	size_t		 errlen;
	int		 failed;
};

/* keyfile_cb: hold one key: from the file, or from its PKCS#11 token. */
static int
load_entry(const struct keyfile_entry *e, void *arg)
{
	struct load *l = arg;
	char why[512];
	int rc;

	if (e->pkey == NULL && e->uri == NULL)
		return 0;
	if (e->pkey != NULL)
		rc = keyd_keyring_add(l->kr, e->cert, e->pkey, why,
		    sizeof(why));
	else
		rc = keyd_keyring_add_pkcs11(l->kr, e->uri, why, sizeof(why));
	if (rc == 0)
		l->added++;
	else if (l->failed++ == 0)
		snprintf(l->err, l->errlen, "key %s: %s", e->fingerprint, why);
	return 0;
}

/* Every key of the key file. */
int
keyd_keyring_load_keyfile(struct keyd_keyring *kr, struct keyfile *kf,
    char *err, size_t errlen)
{
	struct load l = { kr, 0, err, errlen, 0 };
	char why[512];

	unsigned char m[KEYPROTO_MAC_LEN];

	if (keyfile_foreach(kf, load_entry, &l, why, sizeof(why)) != 0 &&
	    l.failed++ == 0)
		snprintf(err, errlen, "%s", why);
	switch (keyfile_secret(kf, "mark", m, sizeof(m), why, sizeof(why))) {
	case 1:
		keyd_keyring_set_mark(kr, m, sizeof(m));
		break;
	case -1:
		if (l.failed++ == 0)
			snprintf(err, errlen, "%s", why);
		break;
	}
	OPENSSL_cleanse(m, sizeof(m));
	return l.failed ? -1 : l.added;
}

/* The EVP digest of a KP_MD_*. */
static const EVP_MD *
kp_md(uint8_t md)
{
	switch (md) {
	case KP_MD_SHA1:
		return EVP_sha1();
	case KP_MD_SHA224:
		return EVP_sha224();
	case KP_MD_SHA256:
		return EVP_sha256();
	case KP_MD_SHA384:
		return EVP_sha384();
	case KP_MD_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/* A context on key k for one operation. */
static EVP_PKEY_CTX *
op_ctx(EVP_PKEY *k)
{
	EVP_PKEY_CTX *ctx;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL)) == NULL)
		alloc_fail("EVP_PKEY_CTX_new_from_pkey");
	return ctx;
}

/* The RSA signature scheme: the digest algorithm goes into the DigestInfo
 * (PKCS#1 v1.5); PSS salts with as many bytes as the digest, MGF1 alike. */
static int
sign_setup(EVP_PKEY_CTX *ctx, const struct keyproto_req *r, const EVP_MD *md)
{
	if (r->alg == KP_ALG_RSA_PKCS1)
		return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 ? 0 : -1;
	if (r->alg == KP_ALG_RSA_PSS)
		return EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_PKCS1_PSS_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 &&
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
		    RSA_PSS_SALTLEN_DIGEST) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 ? 0 : -1;
	return EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 ? 0 : -1;
}

/* SIGN: a digest of exactly its algorithm's size (the codec checked it). */
static int
op_sign(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t outsize, size_t *outlen, const char **why)
{
	const EVP_MD *md = kp_md(r->md);
	EVP_PKEY_CTX *ctx;
	size_t siglen = 0;
	int ok;

	ok = r->alg == KP_ALG_ECDSA ? EVP_PKEY_is_a(k, "EC") :
	    EVP_PKEY_is_a(k, "RSA") ||
	    (r->alg == KP_ALG_RSA_PSS && EVP_PKEY_is_a(k, "RSA-PSS"));
	if (!ok || md == NULL || r->len != (size_t)EVP_MD_get_size(md)) {
		*why = "the key cannot sign with that algorithm";
		return KP_E_KEYTYPE;
	}
	ctx = op_ctx(k);
	ok = EVP_PKEY_sign_init(ctx) > 0 && sign_setup(ctx, r, md) == 0 &&
	    EVP_PKEY_sign(ctx, NULL, &siglen, r->data, r->len) > 0 &&
	    siglen <= outsize &&
	    EVP_PKEY_sign(ctx, out, &siglen, r->data, r->len) > 0;
	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		*why = "signing failed";
		return KP_E_FAILED;
	}
	*outlen = siglen;
	return 0;
}

/* The RSA decryption padding: OAEP with its digests, or PKCS#1 v1.5 with
 * implicit rejection where OpenSSL has it (3.2 and later): a bad padding
 * then unwraps to a random-looking key instead of an error, so the answer
 * says nothing about the padding. */
static int
decrypt_setup(EVP_PKEY_CTX *ctx, const struct keyproto_req *r)
{
#ifdef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
	unsigned int on = 1;
	OSSL_PARAM p[2];
#endif

	if (r->alg == KP_PAD_OAEP)
		return EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_PKCS1_OAEP_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, kp_md(r->md)) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, kp_md(r->md2)) > 0 ?
		    0 : -1;
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
		return -1;
#ifdef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
	p[0] = OSSL_PARAM_construct_uint(
	    OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &on);
	p[1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_CTX_set_params(ctx, p) <= 0)
		return -1;
#endif
	return 0;
}

/* DECRYPT: unwrap a content-encryption key (at most KEYD_MAX_UNWRAP). */
static int
op_decrypt_plain(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t *outlen, const char **why)
{
	EVP_PKEY_CTX *ctx;
	unsigned char *buf;
	size_t size, len;
	int ok;

	size = len = (size_t)EVP_PKEY_get_size(k);
	if ((buf = OPENSSL_secure_malloc(size)) == NULL)
		alloc_fail("OPENSSL_secure_malloc");
	ctx = op_ctx(k);
	ok = EVP_PKEY_decrypt_init(ctx) > 0 && decrypt_setup(ctx, r) == 0 &&
	    EVP_PKEY_decrypt(ctx, buf, &len, r->data, r->len) > 0;
	EVP_PKEY_CTX_free(ctx);
	if (ok && len > KEYD_MAX_UNWRAP) {
		ok = 0;
		*why = "unwrapped key too long";
	} else if (!ok)
		*why = "unwrap failed";
	else {
		memcpy(out, buf, len);
		*outlen = len;
	}
	OPENSSL_secure_clear_free(buf, size);
	return ok ? 0 : KP_E_FAILED;
}

/* Constant-time masks on size_t: all ones or all zeros. */
static size_t
ct_msb(size_t a)
{
	return (size_t)0 - (a >> (sizeof(a) * 8 - 1));
}

static size_t
ct_is_zero(size_t a)
{
	return ct_msb(~a & (a - 1));
}

static size_t
ct_eq(size_t a, size_t b)
{
	return ct_is_zero(a ^ b);
}

static size_t
ct_lt(size_t a, size_t b)
{
	return ct_msb(a ^ ((a ^ b) | ((a - b) ^ b)));
}

/* The stand-in for a key that does not unwrap: HMAC-SHA-256 of the key's
 * fingerprint and the ciphertext under a secret of this process, so the
 * same ciphertext always gets the same stand-in. */
static unsigned char ir_secret[32];
static int ir_ready;

static int
ir_standin(const struct keyproto_req *r, unsigned char syn[32])
{
	unsigned char msg[KEYPROTO_FP + KEYPROTO_MAX_DATA];
	size_t n = 0;

	if (!ir_ready) {	/* keyd's unwraps run on its loop only */
		if (RAND_priv_bytes(ir_secret, sizeof(ir_secret)) != 1)
			return -1;
		ir_ready = 1;
	}
	memcpy(msg, r->fp, KEYPROTO_FP);
	memcpy(msg + KEYPROTO_FP, r->data, r->len);
	return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ir_secret,
	    sizeof(ir_secret), msg, KEYPROTO_FP + r->len, syn, 32, &n) ==
	    NULL || n != 32 ? -1 : 0;
}

/*
 * DECRYPT with PKCS#1 v1.5 for a key of known length (r->keylen): implicit
 * rejection (as OpenSSL 3.2 does, which Debian 12's 3.0 does not).  The
 * block is opened raw and its padding checked in constant time; a bad
 * padding, or a key of another length, answers a stand-in of the asked
 * length instead of an error.  Neither the network process nor, through
 * it, a sender can tell the two apart, and nothing here counts failures
 * for the unwrap limit to give away.  A token that will not do raw RSA
 * unwraps with its own PKCS#1 and the stand-in replaces an error.
 */
static int
op_decrypt_ir(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t *outlen, const char **why)
{
	EVP_PKEY_CTX *ctx;
	unsigned char *em, syn[32];
	size_t n = (size_t)EVP_PKEY_get_size(k), len = n, i, klen = r->keylen;
	size_t good, found = 0, zero = 0, z, m;
	int raw;

	if (klen == 0 || klen > sizeof(syn) || n < 11 + klen) {
		*why = "no key of that length fits the block";
		return KP_E_FAILED;
	}
	if (ir_standin(r, syn) == -1) {
		*why = "HMAC failed";
		return KP_E_FAILED;
	}
	if ((em = OPENSSL_secure_zalloc(n)) == NULL)
		alloc_fail("OPENSSL_secure_zalloc");
	ctx = op_ctx(k);
	raw = EVP_PKEY_decrypt_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) > 0 &&
	    r->len == n && EVP_PKEY_decrypt(ctx, em, &len, r->data, r->len) >
	    0 && len == n;
	EVP_PKEY_CTX_free(ctx);
	if (!raw && r->len == n) {
		/* not the padding (none was looked at yet): a block over
		 * the modulus, which is the sender's, or the key's or the
		 * token's failure, which is said (the stand-in answers all
		 * the same: the network process must not learn which) */
		static char note[200];
		unsigned long e = ERR_peek_last_error();
		const char *rs = ERR_reason_error_string(e);
		int big = ERR_GET_LIB(e) == ERR_LIB_RSA &&
		    ERR_GET_REASON(e) == RSA_R_DATA_TOO_LARGE_FOR_MODULUS;

		if (!big)
			snprintf(note, sizeof(note), "raw RSA decryption "
			    "failed (%s): a stand-in answered",
			    rs != NULL ? rs : "no reason given");
		if (keyd_p11_refused()) {
			/* the token's PKCS#1 v1.5 (CKM_RSA_PKCS); its
			 * answer is placed where a raw block would be */
			unsigned char tok[KEYD_MAX_UNWRAP];

			OPENSSL_secure_clear_free(em, n);
			ERR_clear_error();
			if (op_decrypt_plain(k, r, tok, outlen, why) == 0 &&
			    *outlen == klen)
				memcpy(out, tok, klen);
			else
				memcpy(out, syn, klen);
			*why = NULL;	/* a bad padding is no failure */
			OPENSSL_cleanse(tok, sizeof(tok));
			OPENSSL_cleanse(syn, sizeof(syn));
			*outlen = klen;
			return 0;
		}
		if (!big)
			*why = note;
	}
	ERR_clear_error();
	/* 0x00 0x02, at least eight non-zero bytes, 0x00, then the key */
	good = ct_eq(em[0], 0) & ct_eq(em[1], 2) & (raw ? ~(size_t)0 : 0);
	for (i = 2; i < n; i++) {
		z = ct_is_zero(em[i]);
		zero = (~found & z & i) | (~(~found & z) & zero);
		found |= z;
	}
	m = n - zero - 1;
	good &= found & ~ct_lt(zero, 10) & ct_eq(m, klen);
	for (i = 0; i < klen; i++)
		out[i] = (uint8_t)((good & em[n - klen + i]) |
		    (~good & syn[i]));
	*outlen = klen;
	OPENSSL_cleanse(syn, sizeof(syn));
	OPENSSL_secure_clear_free(em, n);
	return 0;
}

static int
op_decrypt(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t *outlen, const char **why)
{
	if (!EVP_PKEY_is_a(k, "RSA")) {
		*why = "the key cannot decrypt";
		return KP_E_KEYTYPE;
	}
	if (r->alg == KP_PAD_PKCS1 && r->keylen != 0)
		return op_decrypt_ir(k, r, out, outlen, why);
	return op_decrypt_plain(k, r, out, outlen, why);
}

/* DERIVE: ECDH with a peer key on our curve, given as DER SPKI. */
static int
op_derive(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t outsize, size_t *outlen, const char **why)
{
	const unsigned char *p = r->data;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *peer;
	size_t len = 0;
	int ok;

	if (!EVP_PKEY_is_a(k, "EC")) {
		*why = "the key cannot derive";
		return KP_E_KEYTYPE;
	}
	if ((peer = keyd_ec_peer(k, r->data, r->len)) == NULL)
		peer = d2i_PUBKEY(NULL, &p, (long)r->len);
	else
		p = r->data + r->len;
	if (peer == NULL || p != r->data + r->len ||
	    !EVP_PKEY_is_a(peer, "EC") || EVP_PKEY_parameters_eq(k, peer) != 1) {
		EVP_PKEY_free(peer);
		*why = "the peer key is not an EC key on our curve";
		return KP_E_FAILED;
	}
	ctx = op_ctx(k);
	ok = EVP_PKEY_derive_init(ctx) > 0 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
	    EVP_PKEY_derive(ctx, NULL, &len) > 0 && len <= outsize &&
	    EVP_PKEY_derive(ctx, out, &len) > 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	if (!ok) {
		*why = "derivation failed";
		return KP_E_FAILED;
	}
	*outlen = len;
	return 0;
}

/* MAC: HMAC-SHA-256 under the loop-guard secret. */
static int
op_mac(struct keyd_keyring *kr, const struct keyproto_req *r, uint8_t *out,
    size_t outsize, size_t *outlen, const char **why)
{
	size_t len = 0;

	if (kr->mark == NULL) {
		*why = "no mark secret";
		return KP_E_NOKEY;
	}
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, kr->mark,
	    KEYPROTO_MAC_LEN, r->data, r->len, out, outsize, &len) == NULL ||
	    len != KEYPROTO_MAC_LEN) {
		*why = "HMAC failed";
		return KP_E_FAILED;
	}
	*outlen = len;
	return 0;
}

/* Carry out one decoded request on the key it names. */
int
keyd_keyring_op(struct keyd_keyring *kr, const struct keyproto_req *r,
    uint8_t *out, size_t outsize, size_t *outlen, const char **why)
{
	EVP_PKEY *k;
	int code;

	*outlen = 0;
	if (r->type == KP_MAC)
		return op_mac(kr, r, out, outsize, outlen, why);
	if ((k = keyring_find(kr, r->fp)) == NULL) {
		*why = "no key with that fingerprint";
		return KP_E_NOKEY;
	}
	ERR_clear_error();
	switch (r->type) {
	case KP_SIGN:
		code = op_sign(k, r, out, outsize, outlen, why);
		break;
	case KP_DECRYPT:
		code = op_decrypt(k, r, out, outlen, why);
		break;
	case KP_DERIVE:
		code = op_derive(k, r, out, outsize, outlen, why);
		break;
	default:
		*why = "not a key operation";
		code = KP_E_FAILED;
		break;
	}
	if (code == KP_E_FAILED && keyd_p11_refused()) {
		*why = "the token does not allow that with this key";
		code = KP_E_KEYTYPE;
	}
	ERR_clear_error();
	return code;
}

/* A key on a PKCS#11 token (keyd_p11.h), under the fingerprint of the
 * token's certificate for it. */
int
keyd_keyring_add_pkcs11(struct keyd_keyring *kr, const char *uri,
    char *err, size_t errlen)
{
	EVP_PKEY *key;
	X509 *cert;
	int rc = -1;

	if (keyd_p11_load(uri, &key, &cert, err, errlen) == -1)
		return -1;
	if (cert == NULL)
		snprintf(err, errlen, "the token has no certificate for the "
		    "key (put it there with the key's id)");
	else if ((rc = keyd_keyring_add(kr, cert, key, err, errlen)) == 0)
		kr->v[kr->n - 1].slow = 1;
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
