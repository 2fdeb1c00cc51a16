/* cms_info.c: a read-only description of a CMS object (content type,
 * content cipher, recipient infos), for the sink's inbox. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cms_info.h"
#include "lib/lib.h"

/* Hex of a byte string into buf ("" when absent). */
static void
info_hex(const ASN1_STRING *s, char *buf, size_t len)
{
	static const char hx[] = "0123456789ABCDEF";
	const unsigned char *d;
	size_t i, n, o = 0;

	buf[0] = '\0';
	if (s == NULL || len == 0)
		return;
	d = ASN1_STRING_get0_data(s);
	n = (size_t)ASN1_STRING_length(s);
	for (i = 0; i < n && o + 3 <= len; i++) {
		buf[o++] = hx[d[i] >> 4];
		buf[o++] = hx[d[i] & 15];
	}
	buf[o] = '\0';
}

/* An issuer name as one RFC 2253 line. */
static void
info_name(const X509_NAME *nm, char *buf, size_t len)
{
	BIO *b;
	int n;

	buf[0] = '\0';
	if (nm == NULL || (b = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(b, buf, (int)len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
}

/* An INTEGER serial number in hex. */
static void
info_serial(const ASN1_INTEGER *sno, char *buf, size_t len)
{
	BIGNUM *bn;
	char *h;

	buf[0] = '\0';
	if (sno == NULL || (bn = ASN1_INTEGER_to_BN(sno, NULL)) == NULL)
		return;
	if ((h = BN_bn2hex(bn)) != NULL) {
		strlcpy_s(buf, h, len);
		OPENSSL_free(h);
	}
	BN_free(bn);
}

/* Step into (enter) or over the next TLV of [*p, end); -1 if malformed. */
static int
info_tlv(const unsigned char **p, const unsigned char *end, int enter,
    int *tag, int *cls)
{
	const unsigned char *q = *p;
	long l;
	int r;

	if (q >= end)
		return -1;
	r = ASN1_get_object(&q, &l, tag, cls, end - q);
	if ((r & 0x80) || (r & 0x01))	/* error, or indefinite (not DER) */
		return -1;
	*p = enter ? q : q + l;
	return 0;
}

/*
 * The contentEncryptionAlgorithm of an (Auth)EnvelopedData, from its DER:
 * ContentInfo { OID, [0] { version, [0] originatorInfo OPTIONAL,
 * recipientInfos SET, EncryptedContentInfo { OID, AlgorithmIdentifier }}}.
 */
static void
info_cipher(const unsigned char *der, long len, char *buf, size_t buflen)
{
	const unsigned char *p = der, *end = der + len, *at;
	ASN1_OBJECT *obj;
	const char *ln;
	int tag, cls, nid;
	size_t i;

	buf[0] = '\0';
	if (info_tlv(&p, end, 1, &tag, &cls) == -1 ||	/* ContentInfo */
	    info_tlv(&p, end, 0, &tag, &cls) == -1 ||	/* contentType */
	    info_tlv(&p, end, 1, &tag, &cls) == -1 ||	/* [0] */
	    info_tlv(&p, end, 1, &tag, &cls) == -1 ||	/* (Auth)EnvelopedData */
	    info_tlv(&p, end, 0, &tag, &cls) == -1 ||	/* version */
	    info_tlv(&p, end, 0, &tag, &cls) == -1)	/* originatorInfo? */
		return;
	if (cls == V_ASN1_CONTEXT_SPECIFIC &&
	    info_tlv(&p, end, 0, &tag, &cls) == -1)	/* recipientInfos */
		return;
	if (info_tlv(&p, end, 1, &tag, &cls) == -1 ||	/* EncryptedContentInfo */
	    info_tlv(&p, end, 0, &tag, &cls) == -1 ||	/* contentType */
	    info_tlv(&p, end, 1, &tag, &cls) == -1)	/* AlgorithmIdentifier */
		return;
	at = p;
	if ((obj = d2i_ASN1_OBJECT(NULL, &at, end - p)) == NULL)
		return;
	nid = OBJ_obj2nid(obj);
	if (nid != NID_undef && (ln = OBJ_nid2ln(nid)) != NULL) {
		strlcpy_s(buf, ln, buflen);
		for (i = 0; buf[i] != '\0'; i++)
			buf[i] = (char)toupper((unsigned char)buf[i]);
	} else
		OBJ_obj2txt(buf, (int)buflen, obj, 1);
	ASN1_OBJECT_free(obj);
}

/* The first certificate in known that cmp() says the recipient is. */
static int
info_match_ktri(CMS_RecipientInfo *ri, STACK_OF(X509) *known)
{
	int i;

	for (i = 0; known != NULL && i < sk_X509_num(known); i++)
		if (CMS_RecipientInfo_ktri_cert_cmp(ri,
		    sk_X509_value(known, i)) == 0)
			return i;
	return -1;
}

static int
info_match_rek(CMS_RecipientEncryptedKey *rek, STACK_OF(X509) *known)
{
	int i;

	for (i = 0; known != NULL && i < sk_X509_num(known); i++)
		if (CMS_RecipientEncryptedKey_cert_cmp(rek,
		    sk_X509_value(known, i)) == 0)
			return i;
	return -1;
}

/* The next free recipient slot, counting every one seen. */
static struct cms_info_recip *
info_slot(struct cms_info *ci, const char *kind)
{
	struct cms_info_recip *r;

	if (ci->nrecips_total++ >= CMS_INFO_RECIPS_MAX)
		return NULL;
	r = &ci->recips[ci->nrecips++];
	memset(r, 0, sizeof(*r));
	strlcpy_s(r->kind, kind, sizeof(r->kind));
	r->known = -1;
	return r;
}

/* A key agreement recipient: one entry per recipient encrypted key. */
static void
info_kari(struct cms_info *ci, CMS_RecipientInfo *ri, STACK_OF(X509) *known)
{
	STACK_OF(CMS_RecipientEncryptedKey) *reks;
	CMS_RecipientEncryptedKey *rek;
	struct cms_info_recip *r;
	ASN1_OCTET_STRING *keyid;
	ASN1_GENERALIZEDTIME *tm;
	CMS_OtherKeyAttribute *other;
	X509_NAME *issuer;
	ASN1_INTEGER *sno;
	int i;

	if ((reks = CMS_RecipientInfo_kari_get0_reks(ri)) == NULL)
		return;
	for (i = 0; i < sk_CMS_RecipientEncryptedKey_num(reks); i++) {
		rek = sk_CMS_RecipientEncryptedKey_value(reks, i);
		if ((r = info_slot(ci, "kari")) == NULL)
			continue;
		keyid = NULL;
		issuer = NULL;
		sno = NULL;
		if (CMS_RecipientEncryptedKey_get0_id(rek, &keyid, &tm, &other,
		    &issuer, &sno) == 1) {
			info_hex(keyid, r->ski, sizeof(r->ski));
			info_name(issuer, r->issuer, sizeof(r->issuer));
			info_serial(sno, r->serial, sizeof(r->serial));
		}
		r->known = info_match_rek(rek, known);
	}
}

/* Every RecipientInfo of an (Auth)EnvelopedData. */
static void
info_recips(struct cms_info *ci, CMS_ContentInfo *cms, STACK_OF(X509) *known)
{
	STACK_OF(CMS_RecipientInfo) *ris;
	CMS_RecipientInfo *ri;
	struct cms_info_recip *r;
	ASN1_OCTET_STRING *keyid;
	X509_NAME *issuer;
	ASN1_INTEGER *sno;
	int i;

	if ((ris = CMS_get0_RecipientInfos(cms)) == NULL)
		return;
	for (i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		ri = sk_CMS_RecipientInfo_value(ris, i);
		switch (CMS_RecipientInfo_type(ri)) {
		case CMS_RECIPINFO_TRANS:
			if ((r = info_slot(ci, "ktri")) == NULL)
				break;
			keyid = NULL;
			issuer = NULL;
			sno = NULL;
			if (CMS_RecipientInfo_ktri_get0_signer_id(ri, &keyid,
			    &issuer, &sno) == 1) {
				info_hex(keyid, r->ski, sizeof(r->ski));
				info_name(issuer, r->issuer, sizeof(r->issuer));
				info_serial(sno, r->serial, sizeof(r->serial));
			}
			r->known = info_match_ktri(ri, known);
			break;
		case CMS_RECIPINFO_AGREE:
			info_kari(ci, ri, known);
			break;
		case CMS_RECIPINFO_KEK:
			info_slot(ci, "kekri");
			break;
		case CMS_RECIPINFO_PASS:
			info_slot(ci, "pwri");
			break;
		default:
			info_slot(ci, "ori");
			break;
		}
	}
}

/* Describe a CMS object: type, content cipher, recipients. */
int
cms_info_describe(const unsigned char *der, size_t len,
    STACK_OF(X509) *known, struct cms_info *ci, char *err, size_t errlen)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms;
	unsigned char *out = NULL;
	const char *sn;
	int nid, n;

	memset(ci, 0, sizeof(*ci));
	ERR_clear_error();
	if (len > 0x7fffffff ||
	    (cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) == NULL) {
		snprintf(err, errlen, "not a CMS object");
		ERR_clear_error();
		return -1;
	}
	nid = OBJ_obj2nid(CMS_get0_type(cms));
	if ((sn = OBJ_nid2sn(nid)) != NULL)
		strlcpy_s(ci->content_type, sn, sizeof(ci->content_type));
	if (nid == NID_pkcs7_signed)
		ci->type = CMS_INFO_SIGNED;
	else if (nid == NID_pkcs7_enveloped)
		ci->type = CMS_INFO_ENVELOPED;
	else if (nid == NID_id_smime_ct_authEnvelopedData)
		ci->type = CMS_INFO_AUTHENVELOPED;
	if (ci->type == CMS_INFO_ENVELOPED ||
	    ci->type == CMS_INFO_AUTHENVELOPED) {
		info_recips(ci, cms, known);
		/* Re-encoded as DER: the streamed BER has indefinite lengths. */
		if ((n = i2d_CMS_ContentInfo(cms, &out)) > 0)
			info_cipher(out, n, ci->cipher, sizeof(ci->cipher));
		OPENSSL_free(out);
	}
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return 0;
}
