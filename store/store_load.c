/* store_load.c: reading certificates, CRLs and identities to import. */
#include "autoconfig.h"

#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "store.h"
#include "lib/lib.h"

#define MAX_IMPORT_FILE	(16 * 1024 * 1024)

static OSSL_PROVIDER *prov_default, *prov_legacy;

/* The whole file in memory (NUL-terminated, free it); NULL (err set). */
static unsigned char *
read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
	unsigned char *buf;
	struct stat sb;
	size_t n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(f);
		return NULL;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > MAX_IMPORT_FILE) {
		snprintf(err, errlen, "%s: %s", path, S_ISREG(sb.st_mode) ?
		    "file too large" : "not a regular file");
		fclose(f);
		return NULL;
	}
	buf = xmalloc((size_t)sb.st_size + 1);
	n = fread(buf, 1, (size_t)sb.st_size, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*lenp = n;
	return buf;
}

/* 1 if the buffer holds PEM armour. */
static int
is_pem(const unsigned char *buf, size_t len)
{
	return len > 0 && strstr((const char *)buf, "-----BEGIN ") != NULL;
}

/* Every certificate block of a PEM buffer; -1 on a damaged block. */
static int
pem_certs(const unsigned char *buf, size_t len, STACK_OF(X509) *sk)
{
	BIO *b;
	X509 *x;
	unsigned long e;

	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		alloc_fail("BIO_new_mem_buf");
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			alloc_fail("sk_X509_push");
	BIO_free(b);
	e = ERR_peek_last_error();
	ERR_clear_error();
	if (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
		return -1;
	return 0;
}

/* The certificates of a PKCS#7 certs-only bundle (.p7b/.p7c), if it is one. */
static void
pkcs7_certs(const unsigned char *buf, size_t len, STACK_OF(X509) *sk)
{
	const unsigned char *p = buf;
	STACK_OF(X509) *in = NULL;
	PKCS7 *p7;
	BIO *b;
	int i;

	if (is_pem(buf, len)) {
		if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL)
			alloc_fail("BIO_new_mem_buf");
		p7 = PEM_read_bio_PKCS7(b, NULL, NULL, NULL);
		BIO_free(b);
	} else
		p7 = d2i_PKCS7(NULL, &p, (long)len);
	ERR_clear_error();
	if (p7 == NULL)
		return;
	if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL)
		in = p7->d.sign->cert;
	for (i = 0; i < sk_X509_num(in); i++)
		if (!X509_up_ref(sk_X509_value(in, i)) ||
		    !sk_X509_push(sk, sk_X509_value(in, i)))
			alloc_fail("sk_X509_push");
	PKCS7_free(p7);
}

/* Every certificate of a PEM or DER file (or PKCS#7 bundle). */
STACK_OF(X509) *
store_load_certs(const char *path, char *err, size_t errlen)
{
	STACK_OF(X509) *sk;
	const unsigned char *p;
	unsigned char *buf;
	size_t len;
	X509 *x;
	int bad = 0;

	if ((buf = read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	if ((sk = sk_X509_new_null()) == NULL)
		alloc_fail("sk_X509_new_null");
	if (is_pem(buf, len))
		bad = pem_certs(buf, len, sk) == -1;
	else {
		p = buf;
		while (p < buf + len && (x = d2i_X509(NULL, &p,
		    (long)(buf + len - p))) != NULL)
			if (!sk_X509_push(sk, x))
				alloc_fail("sk_X509_push");
		bad = sk_X509_num(sk) > 0 && p < buf + len;
		ERR_clear_error();
	}
	if (sk_X509_num(sk) == 0 && !bad)
		pkcs7_certs(buf, len, sk);
	free(buf);
	if (sk_X509_num(sk) == 0 || bad) {
		if (sk_X509_num(sk) == 0)
			snprintf(err, errlen, "%s: no certificate found "
			    "(expected PEM or DER X.509, or PKCS#7)", path);
		else
			snprintf(err, errlen, "%s: damaged data after "
			    "certificate %d", path, sk_X509_num(sk));
		sk_X509_pop_free(sk, X509_free);
		return NULL;
	}
	return sk;
}

/* Every CRL of PEM text into sk; -1 when something after them is not
 * a CRL. */
static int
pem_crls(const unsigned char *buf, size_t len, STACK_OF(X509_CRL) *sk)
{
	X509_CRL *crl;
	unsigned long e;
	BIO *b;

	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		alloc_fail("BIO_new_mem_buf");
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_CRL_push(sk, crl))
			alloc_fail("sk_X509_CRL_push");
	e = ERR_peek_last_error();
	BIO_free(b);
	ERR_clear_error();
	return ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE ? 0 : -1;
}

/* Every CRL of a PEM or DER file (several may follow each other). */
STACK_OF(X509_CRL) *
store_load_crls(const char *path, char *err, size_t errlen)
{
	STACK_OF(X509_CRL) *sk;
	const unsigned char *p;
	unsigned char *buf;
	X509_CRL *crl;
	size_t len;
	int bad = 0;

	if ((buf = read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	if ((sk = sk_X509_CRL_new_null()) == NULL)
		alloc_fail("sk_X509_CRL_new_null");
	if (is_pem(buf, len))
		bad = pem_crls(buf, len, sk) == -1;
	else {
		p = buf;
		while (p < buf + len && (crl = d2i_X509_CRL(NULL, &p,
		    (long)(buf + len - p))) != NULL)
			if (!sk_X509_CRL_push(sk, crl))
				alloc_fail("sk_X509_CRL_push");
		bad = p < buf + len;
		ERR_clear_error();
	}
	free(buf);
	if (sk_X509_CRL_num(sk) == 0 || bad) {
		if (sk_X509_CRL_num(sk) == 0)
			snprintf(err, errlen, "%s: no CRL found (expected PEM "
			    "or DER X.509 CRL)", path);
		else
			snprintf(err, errlen, "%s: damaged data after CRL %d",
			    path, sk_X509_CRL_num(sk));
		sk_X509_CRL_pop_free(sk, X509_CRL_free);
		return NULL;
	}
	return sk;
}

/* First line of a password file. */
char *
store_load_password(const char *path, char *err, size_t errlen)
{
	unsigned char *buf;
	size_t len;
	char *pw;

	if ((buf = read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	buf[strcspn((char *)buf, "\r\n")] = '\0';
	pw = xstrdup((char *)buf);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return pw;
}

/* Load the legacy provider (RC2, 3DES-era PKCS#12) and keep the default. */
static int
load_legacy(void)
{
	if (prov_legacy != NULL)
		return 1;
	if (prov_default == NULL)
		prov_default = OSSL_PROVIDER_load(NULL, "default");
	prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
	ERR_clear_error();
	return prov_legacy != NULL ? 1 : -1;
}

/* Unload the providers load_legacy loaded. */
void
store_load_cleanup(void)
{
	if (prov_legacy != NULL)
		OSSL_PROVIDER_unload(prov_legacy);
	if (prov_default != NULL)
		OSSL_PROVIDER_unload(prov_default);
	prov_legacy = prov_default = NULL;
}

/* Move the certificate matching pkey out of sk into *cert; -1 if none. */
static int
take_matching(EVP_PKEY *pkey, STACK_OF(X509) *sk, X509 **cert)
{
	int i;

	for (i = 0; i < sk_X509_num(sk); i++) {
		if (X509_check_private_key(sk_X509_value(sk, i), pkey) == 1) {
			*cert = sk_X509_delete(sk, i);
			ERR_clear_error();
			return 0;
		}
	}
	ERR_clear_error();
	return -1;
}

/* The password that opens the MAC: given one, or "" / NULL; -1 if none. */
static int
p12_password(PKCS12 *p12, const char *given, const char **pass)
{
	if (!PKCS12_mac_present(p12)) {
		*pass = given ? given : "";
		return 0;
	}
	if (given != NULL) {
		*pass = given;
		return PKCS12_verify_mac(p12, given, -1) ? 0 : -1;
	}
	*pass = "";
	if (PKCS12_verify_mac(p12, "", 0))
		return 0;
	*pass = NULL;
	return PKCS12_verify_mac(p12, NULL, 0) ? 0 : -1;
}

/* Key, certificate and chain from a PKCS#12 structure. */
static int
load_p12(PKCS12 *p12, const char *path, const char *password,
    EVP_PKEY **pkey, X509 **cert, STACK_OF(X509) **chain, char *err,
    size_t errlen)
{
	const char *pass;
	int legacy = 0;

	if (p12_password(p12, password, &pass) == -1) {
		snprintf(err, errlen, "wrong password for %s%s", path,
		    password ? "" : " (none given: use --password-file)");
		return -1;
	}
	ERR_clear_error();
	while (!PKCS12_parse(p12, pass, pkey, cert, chain)) {
		ERR_clear_error();
		if (legacy || (legacy = load_legacy()) == -1) {
			snprintf(err, errlen, "%s: cannot decrypt the PKCS#12 "
			    "contents%s", path, legacy == -1 ? " (legacy "
			    "cipher, and the OpenSSL legacy provider did not "
			    "load)" : "");
			return -1;
		}
	}
	if (*chain == NULL && (*chain = sk_X509_new_null()) == NULL)
		alloc_fail("sk_X509_new_null");
	if (*pkey == NULL) {
		snprintf(err, errlen, "%s: no private key in the PKCS#12 file",
		    path);
		return -1;
	}
	if (*cert == NULL && take_matching(*pkey, *chain, cert) == -1) {
		snprintf(err, errlen, "%s: no certificate for the private key "
		    "in the PKCS#12 file", path);
		return -1;
	}
	return 0;
}

/* The password callback for encrypted PEM keys. */
static int
pem_pass_cb(char *buf, int size, int rwflag, void *arg)
{
	const char *pw = arg;
	size_t n;

	(void)rwflag;
	if (pw == NULL || size <= 0)
		return 0;
	n = strlen(pw);
	if (n > (size_t)size)
		n = (size_t)size;
	memcpy(buf, pw, n);
	return (int)n;
}

/* Key, certificate and chain from PEM blocks in one buffer. */
static int
load_pem(const unsigned char *buf, size_t len, const char *path,
    const char *password, EVP_PKEY **pkey, X509 **cert,
    STACK_OF(X509) **chain, char *err, size_t errlen)
{
	BIO *b;

	if ((*chain = sk_X509_new_null()) == NULL)
		alloc_fail("sk_X509_new_null");
	if (pem_certs(buf, len, *chain) == -1 || sk_X509_num(*chain) == 0) {
		snprintf(err, errlen, "%s: no certificate found (expected "
		    "PKCS#12, or PEM with certificate and key)", path);
		return -1;
	}
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		alloc_fail("BIO_new_mem_buf");
	*pkey = PEM_read_bio_PrivateKey(b, NULL, pem_pass_cb,
	    (void *)password);
	BIO_free(b);
	ERR_clear_error();
	if (*pkey == NULL) {
		if (strstr((const char *)buf, "ENCRYPTED") != NULL)
			snprintf(err, errlen, "wrong password for %s%s", path,
			    password ? "" : " (none given: use "
			    "--password-file)");
		else
			snprintf(err, errlen, "%s: no private key found", path);
		return -1;
	}
	if (take_matching(*pkey, *chain, cert) == -1) {
		snprintf(err, errlen, "%s: the private key matches no "
		    "certificate in the file", path);
		return -1;
	}
	return 0;
}

/* A key and its certificate (and chain) from PKCS#12 or PEM. */
int
store_load_identity(const char *path, const char *password, EVP_PKEY **pkey,
    X509 **cert, STACK_OF(X509) **chain, char *err, size_t errlen)
{
	const unsigned char *p;
	unsigned char *buf;
	PKCS12 *p12 = NULL;
	size_t len;
	int rc;

	*pkey = NULL;
	*cert = NULL;
	*chain = NULL;
	if ((buf = read_file(path, &len, err, errlen)) == NULL)
		return -1;
	p = buf;
	if (!is_pem(buf, len) &&
	    (p12 = d2i_PKCS12(NULL, &p, (long)len)) == NULL) {
		snprintf(err, errlen, "%s: not a PKCS#12 file, nor PEM with a "
		    "certificate and key", path);
		rc = -1;
	} else if (p12 != NULL)
		rc = load_p12(p12, path, password, pkey, cert, chain, err,
		    errlen);
	else
		rc = load_pem(buf, len, path, password, pkey, cert, chain,
		    err, errlen);
	ERR_clear_error();
	PKCS12_free(p12);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (rc == 0 && X509_check_private_key(*cert, *pkey) != 1) {
		snprintf(err, errlen, "%s: the private key does not match the "
		    "certificate", path);
		rc = -1;
	}
	if (rc == -1) {
		EVP_PKEY_free(*pkey);
		X509_free(*cert);
		sk_X509_pop_free(*chain, X509_free);
		*pkey = NULL;
		*cert = NULL;
		*chain = NULL;
	}
	ERR_clear_error();
	return rc;
}
