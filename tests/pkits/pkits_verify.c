/* pkits_verify.c: verify NIST PKITS S/MIME messages with the CMS engine
 * (proto/cms.c), for t_pkits.sh.
 *
 * usage: pkits_verify [-D] PKITS_DIR MESSAGE...
 *
 * The trust anchor is PKITS_DIR/certs/TrustAnchorRootCertificate.crt; every
 * other certificate of PKITS_DIR/certs is a known (untrusted) certificate
 * and every CRL of PKITS_DIR/crls is given to the engine, so revocation is
 * checked for the whole chain.  No From address is given: PKITS tests the
 * path, not the S/MIME identity.  Prints one line per message:
 * "NAME OUTCOME REASON", NAME being the file name without ".eml".
 *
 * The engine verifies with the X509_VERIFY_PARAM of trust->store, which the
 * caller owns.  By default the store gets the RFC 5280 settings PKITS
 * assumes (pkits_store_params()); -D leaves OpenSSL's defaults, to measure
 * what an unconfigured store misses.  Exits 0 when every message could be
 * read, 2 on a setup error. */
#include "autoconfig.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "proto/cms.h"

/*
 * PKITS paths are valid from 2010-01-01 to 2030-12-31 and its "old" CRLs
 * expire in 2011: validate at a fixed time inside that window, 2020-01-01
 * 00:00:00 UTC, so the outcome does not depend on the clock.
 */
#define PKITS_TIME	((time_t)1577836800)

#define PKITS_ANCHOR	"TrustAnchorRootCertificate.crt"

/* Report a setup error with the OpenSSL queue and exit 2. */
static void
die(const char *what, const char *arg)
{
	fprintf(stderr, "pkits_verify: %s: %s\n", what, arg);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* Whether `name` ends with `suffix`. */
static int
has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcmp(name + n - s, suffix) == 0;
}

/* Read one DER certificate. */
static X509 *
load_cert(const char *path)
{
	BIO *b;
	X509 *x;

	if ((b = BIO_new_file(path, "rb")) == NULL)
		die("cannot open", path);
	if ((x = d2i_X509_bio(b, NULL)) == NULL)
		die("not a DER certificate", path);
	BIO_free(b);
	return x;
}

/* Read one DER CRL. */
static X509_CRL *
load_crl(const char *path)
{
	BIO *b;
	X509_CRL *c;

	if ((b = BIO_new_file(path, "rb")) == NULL)
		die("cannot open", path);
	if ((c = d2i_X509_CRL_bio(b, NULL)) == NULL)
		die("not a DER CRL", path);
	BIO_free(b);
	return c;
}

/*
 * The RFC 5280 path validation PKITS's "default settings" describe: policy
 * processing with initial-policy-set {anyPolicy} (OpenSSL skips policies
 * without X509_V_FLAG_POLICY_CHECK, and with it but no initial set it
 * fails any path that requires an explicit policy), indirect CRLs and CRLs
 * signed with another key of the CA (extended CRL support), and delta CRLs.
 */
static void
pkits_store_params(X509_STORE *store)
{
	X509_VERIFY_PARAM *vp = X509_STORE_get0_param(store);
	ASN1_OBJECT *any;

	if ((any = OBJ_nid2obj(NID_any_policy)) == NULL ||
	    X509_VERIFY_PARAM_add0_policy(vp, any) != 1 ||
	    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_POLICY_CHECK |
	    X509_V_FLAG_EXTENDED_CRL_SUPPORT | X509_V_FLAG_USE_DELTAS) != 1)
		die("cannot set verification parameters", "store");
}

/* Load PKITS_DIR/certs and PKITS_DIR/crls into `trust`. */
static void
load_pkits(const char *dir, struct cms_trust *trust)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	X509 *x;
	X509_CRL *c;

	snprintf(path, sizeof(path), "%s/certs", dir);
	if ((d = opendir(path)) == NULL)
		die("cannot open", path);
	while ((de = readdir(d)) != NULL) {
		if (!has_suffix(de->d_name, ".crt"))
			continue;
		snprintf(path, sizeof(path), "%s/certs/%s", dir, de->d_name);
		x = load_cert(path);
		if (strcmp(de->d_name, PKITS_ANCHOR) == 0) {
			if (X509_STORE_add_cert(trust->store, x) != 1)
				die("cannot add the trust anchor", path);
			X509_free(x);
		} else if (sk_X509_push(trust->certs, x) == 0)
			die("out of memory", path);
	}
	closedir(d);
	snprintf(path, sizeof(path), "%s/crls", dir);
	if ((d = opendir(path)) == NULL)
		die("cannot open", path);
	while ((de = readdir(d)) != NULL) {
		if (!has_suffix(de->d_name, ".crl"))
			continue;
		snprintf(path, sizeof(path), "%s/crls/%s", dir, de->d_name);
		c = load_crl(path);
		if (sk_X509_CRL_push(trust->crls, c) == 0)
			die("out of memory", path);
	}
	closedir(d);
}

/* Read a whole file with its line ends turned into CRLF; NULL if absent. */
static char *
read_crlf(const char *path, size_t *lenp)
{
	FILE *f;
	char *o = NULL, *p;
	size_t len = 0, cap = 0;
	int ch, prev = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	while ((ch = getc(f)) != EOF) {
		if (len + 3 > cap) {
			cap = cap ? cap * 2 : 8192;
			if ((p = realloc(o, cap)) == NULL)
				die("out of memory", path);
			o = p;
		}
		if (ch == '\n' && prev != '\r')
			o[len++] = '\r';
		o[len++] = (char)ch;
		prev = ch;
	}
	fclose(f);
	if (o == NULL && (o = malloc(1)) == NULL)
		die("out of memory", path);
	o[len] = '\0';
	*lenp = len;
	return o;
}

/* Decode base64 text (line breaks and blanks ignored) into a memory BIO. */
static BIO *
b64_decode(const char *s, size_t len)
{
	unsigned char *clean, *bin;
	size_t i, n = 0;
	int m, pad = 0;
	BIO *b;

	if ((clean = malloc(len + 1)) == NULL ||
	    (bin = malloc(len + 1)) == NULL)
		die("out of memory", "base64");
	for (i = 0; i < len; i++)
		if (strchr(" \t\r\n", s[i]) == NULL)
			clean[n++] = (unsigned char)s[i];
	while (pad < 2 && n > (size_t)pad && clean[n - 1 - pad] == '=')
		pad++;
	m = n % 4 == 0 ? EVP_DecodeBlock(bin, clean, (int)n) : -1;
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		die("out of memory", "base64");
	if (m > pad)
		BIO_write(b, bin, m - pad);
	free(clean);
	free(bin);
	return b;
}

/*
 * Split a multipart/signed message (CRLF) into its first part, exactly as
 * transmitted, and its decoded signature part.  Returns 0 or -1.
 */
static int
split_signed(const char *msg, BIO **content, BIO **der)
{
	const char *p, *q, *e, *hend, *sig;
	char delim[256];
	size_t bl;

	if ((hend = strstr(msg, "\r\n\r\n")) == NULL)
		return -1;
	if ((p = strcasestr(msg, "boundary=")) == NULL || p > hend)
		return -1;
	p += 9;
	if (*p == '"')
		p++;
	bl = strcspn(p, "\";\r\n");
	if (bl == 0 || bl + 5 > sizeof(delim))
		return -1;
	snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)bl, p);
	/* The first delimiter may follow the header's empty line at once. */
	if ((p = strstr(hend, delim)) == NULL)
		return -1;
	p += strlen(delim);
	if ((p = strstr(p, "\r\n")) == NULL)
		return -1;
	p += 2;
	if ((q = strstr(p, delim)) == NULL)
		return -1;
	*content = BIO_new_mem_buf(p, (int)(q - p));
	q += strlen(delim);
	if ((sig = strstr(q, "\r\n\r\n")) == NULL)
		return -1;
	sig += 4;
	if ((e = strstr(sig, delim)) == NULL)
		e = sig + strlen(sig);
	*der = b64_decode(sig, (size_t)(e - sig));
	return *content != NULL ? 0 : -1;
}

/* Verify one message and print its line; -1 if it cannot be read. */
static int
verify_one(const char *path, const struct cms_trust *trust)
{
	struct cms_verify res;
	BIO *content = NULL, *der = NULL;
	const char *base;
	char *msg;
	size_t len, bl;

	base = (base = strrchr(path, '/')) != NULL ? base + 1 : path;
	bl = has_suffix(base, ".eml") ? strlen(base) - 4 : strlen(base);
	if ((msg = read_crlf(path, &len)) == NULL) {
		fprintf(stderr, "pkits_verify: cannot read %s\n", path);
		return -1;
	}
	memset(&res, 0, sizeof(res));
	if (split_signed(msg, &content, &der) == -1) {
		res.outcome = SMIME_PERMERROR;
		snprintf(res.reason, sizeof(res.reason),
		    "not a multipart/signed message");
	} else
		cms_verify(content, der, trust, NULL, NULL, &res);
	printf("%.*s %s %s\n", (int)bl, base,
	    cms_outcome_name(res.outcome), res.reason);
	cms_verify_free(&res);
	BIO_free(content);
	BIO_free(der);
	free(msg);
	return 0;
}

/* Load the PKITS data once, then verify each message named. */
int
main(int argc, char **argv)
{
	struct cms_trust trust;
	int i, status = 0, defaults = 0;

	if (argc > 1 && strcmp(argv[1], "-D") == 0) {
		defaults = 1;
		argc--;
		argv++;
	}
	if (argc < 3) {
		fprintf(stderr,
		    "usage: pkits_verify [-D] PKITS_DIR MESSAGE...\n");
		return 2;
	}
	trust.store = X509_STORE_new();
	trust.crls = sk_X509_CRL_new_null();
	trust.certs = sk_X509_new_null();
	/* PKITS requires every certificate's status: no CRL is a failure */
	trust.revocation = CMS_REV_HARD;
	if (trust.store == NULL || trust.crls == NULL || trust.certs == NULL)
		die("out of memory", "setup");
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(trust.store),
	    PKITS_TIME);
	if (!defaults)
		pkits_store_params(trust.store);
	load_pkits(argv[1], &trust);
	for (i = 2; i < argc; i++)
		if (verify_one(argv[i], &trust) == -1)
			status = 2;
	X509_STORE_free(trust.store);
	sk_X509_CRL_pop_free(trust.crls, X509_CRL_free);
	sk_X509_pop_free(trust.certs, X509_free);
	return status;
}
