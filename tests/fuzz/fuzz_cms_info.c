/* fuzz_cms_info.c: libFuzzer harness for proto/cms_info.c, the read-only
 * description of a CMS object the sink's inbox shows (content type,
 * content cipher, recipient infos matched against known certificates).
 * Nothing may crash or leak; what is described must fit its fields.
 * Seeded with tests/fuzz/corpus_cms (signed, enveloped, authenveloped). */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "proto/cms_info.h"

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static STACK_OF(X509) *known;

/* One known certificate (self-signed EC, "CN=smrelay fuzz", serial 1) so
 * that the matching code runs against every recipient. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *k;
	X509 *x;
	X509_NAME *n;

	(void)argc;
	(void)argv;
	if ((k = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL ||
	    (known = sk_X509_new_null()) == NULL) {
		fprintf(stderr, "fuzz_cms_info: setup failed\n");
		exit(1);
	}
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"smrelay fuzz", -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	sk_X509_push(known, x);
	EVP_PKEY_free(k);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct cms_info ci;
	char err[256];
	size_t i;

	if (cms_info_describe(data, len, known, &ci, err, sizeof(err)) == 0) {
		if (ci.nrecips > CMS_INFO_RECIPS_MAX ||
		    ci.nrecips > ci.nrecips_total)
			abort();
		for (i = 0; i < ci.nrecips; i++)
			if (ci.recips[i].known >= sk_X509_num(known) ||
			    strlen(ci.recips[i].issuer) >=
			    sizeof(ci.recips[i].issuer))
				abort();
	}
	return 0;
}
