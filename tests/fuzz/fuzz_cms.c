/* fuzz_cms.c: libFuzzer harness for the CMS input path of the S/MIME
 * engine (proto/cms.c): the input, as DER, goes to cms_decrypt() and
 * to cms_verify() both as an opaque signature and as the detached
 * signature of a fixed entity, and to cms_structure_nid().  Nothing may
 * crash or leak.
 *
 * The one identity, an RSA-2048 key with a self-signed certificate, is
 * made in-process at start-up.  Its issuer and serial number are fixed
 * ("CN=smrelay fuzz", 1) so that the seeds of corpus_cms/, enveloped for
 * another key under that name (gen-corpus-cms.sh), match a RecipientInfo
 * and take decryption past the recipient lookup. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proto/cms.h"

/*
 * The structure check (cms_structure_nid): with every subtree kept whole
 * it decides as d2i of the whole input does wherever it decides at all,
 * and with 16-byte subtrees (most OCTET STRINGs passed over) a type it
 * names is the type d2i finds: passing over content never makes a
 * malformed object look signed or enveloped.
 */
static void
fuzz_kind(const uint8_t *data, size_t size)
{
	static const size_t keeps[] = { 16, (size_t)1 << 30 };
	const unsigned char *p = data;
	CMS_ContentInfo *cms;
	char err[256];
	size_t i;
	BIO *b;
	int whole = NID_undef, nid;

	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)size)) != NULL) {
		whole = OBJ_obj2nid(CMS_get0_type(cms));
		CMS_ContentInfo_free(cms);
	}
	ERR_clear_error();
	for (i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
		if ((b = BIO_new_mem_buf(data, (int)size)) == NULL)
			abort();
		err[0] = '\0';
		nid = cms_structure_nid_keep(b, keeps[i], err, sizeof(err));
		BIO_free(b);
		if (nid == NID_undef && err[0] == '\0')
			abort();        /* malformed without a word */
		if (nid != NID_undef && nid != whole)
			abort();        /* a type d2i does not find */
	}
}

/* The entity the detached seeds sign; gen-corpus-cms.sh writes the same. */
#define FUZZ_ENTITY	"Content-Type: text/plain\r\n\r\nfuzz\r\n"
#define FUZZ_NAME	"smrelay fuzz"
#define FUZZ_FROM	"fuzz@example.com"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct cms_identity	 fuzz_id;
static struct cms_trust	 fuzz_trust;

/* Report a start-up error and exit. */
static void
fuzz_fatal(const char *what)
{
	fprintf(stderr, "fuzz_cms: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* A self-signed certificate for `key`, named FUZZ_NAME, serial 1. */
static X509 *
fuzz_cert(EVP_PKEY *key)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	X509_NAME *name;
	X509 *x;

	if ((x = X509_new()) == NULL || !X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -86400) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400) == NULL ||
	    !X509_set_pubkey(x, key))
		fuzz_fatal("cannot make the certificate");
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)FUZZ_NAME, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name))
		fuzz_fatal("cannot name the certificate");
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "email:" FUZZ_FROM)) == NULL || !X509_add_ext(x, ext, -1))
		fuzz_fatal("cannot add the subjectAltName");
	X509_EXTENSION_free(ext);
	if (X509_sign(x, key, EVP_sha256()) == 0)
		fuzz_fatal("cannot sign the certificate");
	return x;
}

/* Make the identity and the trust it anchors, once. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((fuzz_id.key = EVP_RSA_gen(2048)) == NULL)
		fuzz_fatal("cannot generate the RSA key");
	fuzz_id.cert = fuzz_cert(fuzz_id.key);
	if ((fuzz_trust.store = X509_STORE_new()) == NULL ||
	    X509_STORE_add_cert(fuzz_trust.store, fuzz_id.cert) != 1 ||
	    (fuzz_trust.crls = sk_X509_CRL_new_null()) == NULL ||
	    (fuzz_trust.certs = sk_X509_new_null()) == NULL ||
	    !X509_up_ref(fuzz_id.cert) ||
	    !sk_X509_push(fuzz_trust.certs, fuzz_id.cert) ||
	    (fuzz_trust.memo = cms_memo_new(CMS_MEMO_CERTS,
	    CMS_MEMO_CHAINS)) == NULL)	/* as the daemon verifies */
		fuzz_fatal("cannot set up the trust store");
	return 0;
}

/* One verification; `content` NULL for an opaque signature.  The entity
 * of a pass into *passed (malloc'd, *plen bytes) when passed is set. */
static void
fuzz_verify(const uint8_t *data, size_t size, const char *content,
    char **passed, size_t *plen)
{
	struct cms_verify res;
	BIO *der, *in = NULL, *out;
	char line[1024], *p;
	long n;

	if ((der = BIO_new_mem_buf(data, (int)size)) == NULL ||
	    (out = BIO_new(BIO_s_mem())) == NULL ||
	    (content != NULL &&
	    (in = BIO_new_mem_buf(content, -1)) == NULL))
		abort();
	cms_verify(in, der, &fuzz_trust, FUZZ_FROM, out, &res);
	if (res.outcome == SMIME_NONE ||
	    (res.outcome == SMIME_PASS) != (res.reason[0] == '\0'))
		abort();
	cms_auth_results(line, sizeof(line), "fuzz.example", &res);
	if (passed != NULL && res.outcome == SMIME_PASS) {
		n = BIO_get_mem_data(out, &p);
		*plen = n > 0 ? (size_t)n : 0;
		if ((*passed = malloc(*plen + 1)) == NULL)
			abort();
		memcpy(*passed, p, *plen);
	}
	cms_verify_free(&res);
	BIO_free(in);
	BIO_free(der);
	BIO_free(out);
}

/*
 * The input as opaque signed data split for streaming: an error says why;
 * a split's detached signature verifies over its content, and when both
 * that and the whole-object verification pass, they give the same entity.
 */
static void
fuzz_split(const uint8_t *data, size_t size, const char *whole,
    size_t wlen)
{
	BIO *der, *content;
	unsigned char *sig;
	size_t siglen;
	char err[512], *p, *passed = NULL;
	size_t plen = 0;
	long n;
	int r;

	if ((der = BIO_new_mem_buf(data, (int)size)) == NULL ||
	    (content = BIO_new(BIO_s_mem())) == NULL)
		abort();
	err[0] = '\0';
	r = cms_opaque_split(der, content, &sig, &siglen, err, sizeof(err));
	if ((r != 0 && (err[0] == '\0' || sig != NULL)) ||
	    (r == 0 && sig == NULL))
		abort();
	if (r == 0) {
		n = BIO_get_mem_data(content, &p);
		if ((p = n > 0 ? strndup(p, (size_t)n) : strdup("")) == NULL)
			abort();
		fuzz_verify(sig, siglen, p, &passed, &plen);
		if (passed != NULL && whole != NULL && (plen != wlen ||
		    memcmp(passed, whole, wlen) != 0))
			abort();
		free(passed);
		free(p);
	}
	free(sig);
	BIO_free(der);
	BIO_free(content);
}

/* The input as enveloped data, opaque and detached signed data. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BIO *der, *out;
	char err[512], *whole = NULL;
	size_t wlen = 0;

	if (size > INT32_MAX)
		return 0;
	if ((der = BIO_new_mem_buf(data, (int)size)) == NULL ||
	    (out = BIO_new(BIO_s_mem())) == NULL)
		abort();
	err[0] = '\0';
	if (cms_decrypt(der, &fuzz_id, 1, out, err, sizeof(err)) == -1 &&
	    err[0] == '\0')
		abort();
	BIO_free(der);
	BIO_free(out);
	fuzz_verify(data, size, NULL, &whole, &wlen);
	fuzz_split(data, size, whole, wlen);
	free(whole);
	fuzz_verify(data, size, FUZZ_ENTITY, NULL, NULL);
	fuzz_kind(data, size);
	ERR_clear_error();
	return 0;
}
