/* store_cert.c: what the store keeps about an X.509 certificate. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "store.h"
#include "lib/lib.h"

/* Lowercase copy of an e-mail address. */
char *
store_email_norm(const char *s)
{
	char *r, *p;

	r = xstrdup(s);
	for (p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/* "2026-11-22T19:43:10Z" for unix seconds. */
void
store_time_str(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

/* ASN1_TIME as unix seconds; 0 when absent or unreadable. */
int64_t
store_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* A name in RFC 2253 form, UTF-8 kept as is, control characters escaped. */
char *
store_name_str(const X509_NAME *name)
{
	BIO *b;
	char *p, *r;
	long n;

	if ((b = BIO_new(BIO_s_mem())) == NULL)
		alloc_fail("BIO_new");
	X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(b, &p);
	r = xstrndup(p, n > 0 ? (size_t)n : 0);
	BIO_free(b);
	return r;
}

/* The serial number in upper hex. */
static char *
serial_str(const ASN1_INTEGER *serial)
{
	BIGNUM *bn;
	char *h, *r;

	if ((bn = ASN1_INTEGER_to_BN(serial, NULL)) == NULL ||
	    (h = BN_bn2hex(bn)) == NULL) {
		BN_free(bn);
		return xstrdup("?");
	}
	r = xstrdup(h);
	OPENSSL_free(h);
	BN_free(bn);
	return r;
}

/* Name of the public key algorithm. */
static const char *
key_type_str(const EVP_PKEY *pk)
{
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA: return "RSA";
	case EVP_PKEY_RSA_PSS: return "RSA-PSS";
	case EVP_PKEY_EC: return "EC";
	case EVP_PKEY_ED25519: return "Ed25519";
	case EVP_PKEY_ED448: return "Ed448";
	case EVP_PKEY_X25519: return "X25519";
	case EVP_PKEY_X448: return "X448";
	case EVP_PKEY_DSA: return "DSA";
	default: return "other";
	}
}

/* Add an address unless already there (compared lowercased). */
static void
add_email(struct store_certmeta *m, const char *addr)
{
	char *e;
	size_t i;

	if (addr == NULL || strchr(addr, '@') == NULL)
		return;
	e = store_email_norm(addr);
	for (i = 0; i < m->nemails; i++) {
		if (strcmp(m->emails[i], e) == 0) {
			free(e);
			return;
		}
	}
	m->emails = xreallocarray(m->emails, m->nemails + 1,
	    sizeof(*m->emails));
	m->emails[m->nemails++] = e;
}

/* Addresses from SAN rfc822Name and subject emailAddress. */
static void
collect_emails(X509 *x, struct store_certmeta *m)
{
	STACK_OF(OPENSSL_STRING) *sk;
	int i;

	if ((sk = X509_get1_email(x)) == NULL)
		return;
	for (i = 0; i < sk_OPENSSL_STRING_num(sk); i++)
		add_email(m, sk_OPENSSL_STRING_value(sk, i));
	X509_email_free(sk);
}

/* KU, EKU, and what they allow for S/MIME. */
static void
usage_flags(X509 *x, const EVP_PKEY *pk, struct store_certmeta *m)
{
	uint32_t ku, xku, exfl;
	int enc_bit, email_ok;

	exfl = X509_get_extension_flags(x);	/* also caches the extensions */
	ku = X509_get_key_usage(x);
	xku = X509_get_extended_key_usage(x);
	m->key_usage = (exfl & EXFLAG_KUSAGE) ? (int64_t)ku : -1;
	m->ext_key_usage = (exfl & EXFLAG_XKUSAGE) ? (int64_t)xku : -1;
	email_ok = m->ext_key_usage == -1 || (xku & XKU_SMIME);
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		enc_bit = KU_KEY_ENCIPHERMENT;
		break;
	case EVP_PKEY_EC:
	case EVP_PKEY_X25519:
	case EVP_PKEY_X448:
		enc_bit = KU_KEY_AGREEMENT;
		break;
	default:
		enc_bit = 0;
	}
	m->can_encrypt = email_ok && enc_bit != 0 &&
	    (m->key_usage == -1 || (ku & enc_bit));
	m->can_sign = email_ok && (m->key_usage == -1 ||
	    (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)));
	m->is_ca = X509_check_ca(x) >= 1 || (exfl & EXFLAG_SS);
}

/* Fill m from a certificate. */
int
store_certmeta_get(X509 *x, struct store_certmeta *m, char *err,
    size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_PKEY *pk;

	memset(m, 0, sizeof(m[0]));
	if ((pk = X509_get0_pubkey(x)) == NULL) {
		snprintf(err, errlen, "certificate with an unreadable key");
		return -1;
	}
	m->derlen = i2d_X509(x, &m->der);
	if (m->derlen <= 0 || !X509_digest(x, EVP_sha256(), md, &mdlen) ||
	    mdlen != 32) {
		m->der = NULL;
		snprintf(err, errlen, "certificate cannot be encoded");
		return -1;
	}
	keyfile_hex(md, m->fingerprint);
	m->subject = store_name_str(X509_get_subject_name(x));
	m->issuer = store_name_str(X509_get_issuer_name(x));
	m->serial = serial_str(X509_get0_serialNumber(x));
	m->not_before = store_asn1_time(X509_get0_notBefore(x));
	m->not_after = store_asn1_time(X509_get0_notAfter(x));
	m->key_type = key_type_str(pk);
	m->key_bits = EVP_PKEY_get_bits(pk);
	usage_flags(x, pk, m);
	collect_emails(x, m);
	return 0;
}

/* Free what store_certmeta_get allocated. */
void
store_certmeta_free(struct store_certmeta *m)
{
	size_t i;

	free(m->subject);
	free(m->issuer);
	free(m->serial);
	for (i = 0; i < m->nemails; i++)
		free(m->emails[i]);
	free(m->emails);
	OPENSSL_free(m->der);
	memset(m, 0, sizeof(*m));
}
