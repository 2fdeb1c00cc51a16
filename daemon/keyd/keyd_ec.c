/* keyd_ec.c: EC peer keys without the encoder and decoder (keyd_ec.h). */
#include "autoconfig.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "keyd_ec.h"

#define EC_POINT_MAX	133		/* uncompressed P-521 */

/* Our curve's NID and name; 0 when the key has no named curve. */
static int
ec_curve(EVP_PKEY *k, char *name, size_t len)
{
	size_t n = 0;

	if (!EVP_PKEY_is_a(k, "EC") || !EVP_PKEY_get_utf8_string_param(k,
	    OSSL_PKEY_PARAM_GROUP_NAME, name, len, &n))
		return 0;
	return OBJ_sn2nid(name);
}

/* The SPKI of point on curve nid, built from its ASN.1 parts. */
static size_t
spki_of(int nid, const uint8_t *point, size_t len, uint8_t *out,
    size_t outsize)
{
	X509_PUBKEY *xp;
	unsigned char *pt, *der = NULL;
	int n = 0;

	if ((xp = X509_PUBKEY_new()) == NULL ||
	    (pt = OPENSSL_memdup(point, len)) == NULL) {
		X509_PUBKEY_free(xp);
		return 0;
	}
	if (X509_PUBKEY_set0_param(xp, OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
	    V_ASN1_OBJECT, OBJ_nid2obj(nid), pt, (int)len) != 1)
		OPENSSL_free(pt);
	else
		n = i2d_X509_PUBKEY(xp, &der);
	X509_PUBKEY_free(xp);
	if (n <= 0 || (size_t)n > outsize) {
		OPENSSL_free(der);
		return 0;
	}
	memcpy(out, der, (size_t)n);
	OPENSSL_free(der);
	return (size_t)n;
}

size_t
keyd_ec_spki(EVP_PKEY *ours, EVP_PKEY *peer, uint8_t *out, size_t outsize)
{
	uint8_t point[EC_POINT_MAX];
	char name[64], pname[64];
	size_t len = 0;
	int nid;

	if ((nid = ec_curve(ours, name, sizeof(name))) == 0 ||
	    ec_curve(peer, pname, sizeof(pname)) != nid ||
	    !EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY,
	    point, sizeof(point), &len))
		return 0;
	return spki_of(nid, point, len, out, outsize);
}

EVP_PKEY *
keyd_ec_peer(EVP_PKEY *ours, const uint8_t *spki, size_t len)
{
	uint8_t mine[EC_POINT_MAX], want[EC_POINT_MAX + 64];
	OSSL_PARAM pr[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *peer = NULL;
	char name[64];
	size_t plen = 0;
	int nid;

	/* the peer's point is as long as ours (uncompressed) */
	if ((nid = ec_curve(ours, name, sizeof(name))) == 0 ||
	    !EVP_PKEY_get_octet_string_param(ours, OSSL_PKEY_PARAM_PUB_KEY,
	    mine, sizeof(mine), &plen) || len <= plen ||
	    spki_of(nid, spki + len - plen, plen, want, sizeof(want)) != len ||
	    memcmp(want, spki, len) != 0)
		return NULL;
	pr[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	    name, 0);
	pr[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)(spki + len - plen), plen);
	pr[2] = OSSL_PARAM_construct_end();
	/* the point is checked to be on the curve as it is imported */
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(ctx) > 0 &&
	    EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, pr) <= 0)
		peer = NULL;
	EVP_PKEY_CTX_free(ctx);
	return peer;
}
