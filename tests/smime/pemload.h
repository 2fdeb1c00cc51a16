/* pemload.h: PEM loading for the S/MIME test and bench tools (exit 2 on
 * failure, with OpenSSL's error queue). */
#ifndef SMRELAY_PEMLOAD_H
#define SMRELAY_PEMLOAD_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/* pemload.c */
X509 *load_cert(const char *);
EVP_PKEY *load_key(const char *);
void load_certs(STACK_OF(X509) *, const char *);

#endif
