/* pemload.c: PEM loading for the S/MIME test and bench tools. */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "pemload.h"

/* Report an unreadable file with the OpenSSL queue and exit 2. */
static void
pem_die(const char *f)
{
	fprintf(stderr, "%s: %s\n", program_invocation_short_name, f);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* One PEM certificate, or exit. */
X509 *
load_cert(const char *f)
{
	BIO *b = BIO_new_file(f, "r");
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (x == NULL)
		pem_die(f);
	return x;
}

/* One PEM private key (unencrypted), or exit. */
EVP_PKEY *
load_key(const char *f)
{
	BIO *b = BIO_new_file(f, "r");
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (k == NULL)
		pem_die(f);
	return k;
}

/* Every certificate in a PEM file, appended to sk. */
void
load_certs(STACK_OF(X509) *sk, const char *f)
{
	BIO *b = BIO_new_file(f, "r");
	X509 *x;

	if (b == NULL)
		pem_die(f);
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
}
