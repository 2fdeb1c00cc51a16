/* cms_info.h: a read-only look at a CMS object, for showing it to a person
 * (the sink's inbox): its content type, the content cipher of an
 * (Auth)EnvelopedData and who it is encrypted to.  Nothing is decrypted or
 * verified here; see cms.h for that. */
#ifndef SMRELAY_CMS_INFO_H
#define SMRELAY_CMS_INFO_H

#include <stddef.h>

#include <openssl/x509.h>

#define CMS_INFO_RECIPS_MAX	16	/* recipient infos described */

/* What kind of CMS object it is. */
enum cms_info_type {
	CMS_INFO_OTHER = 0,
	CMS_INFO_SIGNED,		/* SignedData */
	CMS_INFO_ENVELOPED,		/* EnvelopedData (RFC 5652 6) */
	CMS_INFO_AUTHENVELOPED		/* AuthEnvelopedData (RFC 5083) */
};

/* One RecipientInfo. */
struct cms_info_recip {
	char	 kind[8];		/* "ktri", "kari", "kekri", "pwri", "ori" */
	char	 issuer[256];		/* RFC 2253 issuer name, or "" */
	char	 serial[80];		/* hex serial number, or "" */
	char	 ski[80];		/* hex subject key identifier, or "" */
	int	 known;			/* index in `known` it matches, or -1 */
};

struct cms_info {
	enum cms_info_type type;
	char	 content_type[64];	/* OID short name, e.g. "pkcs7-envelopedData" */
	char	 cipher[64];		/* e.g. "AES-256-CBC", "AES-256-GCM"; "" */
	size_t	 nrecips;		/* described (at most CMS_INFO_RECIPS_MAX) */
	size_t	 nrecips_total;		/* in the object */
	struct cms_info_recip recips[CMS_INFO_RECIPS_MAX];
};

/* cms_info.c */
/*
 * Describe the DER/BER CMS object der[0..len).  Each recipient is matched
 * against the certificates in `known` (may be NULL).  Returns 0, or -1 with
 * err set when it is no CMS object.
 */
int cms_info_describe(const unsigned char *der, size_t len,
    STACK_OF(X509) *known, struct cms_info *, char *err, size_t errlen);

#endif
