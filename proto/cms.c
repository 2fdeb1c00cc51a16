/* cms.c: the CMS engine for S/MIME: sign, encrypt, decrypt and verify a
 * MIME entity with the OpenSSL 3 CMS API, streaming through BIOs. */
#include "autoconfig.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/buffer.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "mail_addr.h"

/* 57 input bytes make one 76-character base64 line (RFC 2045 6.8). */
#define B64_IN_LINE 57

/* Encoded lines are handed to the target 64 at a time (one BIO_write per
 * 76-character line cost ~10 % of a 1 MB sign+encrypt). */
#define B64_OUT_LINES 64
#define B64_OUT_LINE  78

/* State of the base64 writer: a sink that encodes into the target BIO. */
struct b64w {
	BIO		*out;
	unsigned char	 buf[B64_IN_LINE];
	size_t		 n;
	unsigned char	 obuf[B64_OUT_LINES * B64_OUT_LINE];
	size_t		 on;
	int		 failed;
};

static BIO_METHOD *b64w_method;
static BIO_METHOD *envc_method;
static CRYPTO_ONCE cms_once = CRYPTO_ONCE_STATIC_INIT;
static int cms_methods_ok;

/* Hand the encoded lines collected so far to the target. */
static int
b64w_drain(struct b64w *w)
{
	int n = (int)w->on;

	w->on = 0;
	if (n > 0 && BIO_write(w->out, w->obuf, n) != n) {
		w->failed = 1;
		return -1;
	}
	return 0;
}

/* Encode one group of up to 57 bytes as a CRLF-terminated line. */
static int
b64w_line(struct b64w *w)
{
	unsigned char *line;
	int n;

	if (w->n == 0)
		return 0;
	if (w->on + B64_OUT_LINE > sizeof(w->obuf) && b64w_drain(w) == -1)
		return -1;
	line = w->obuf + w->on;
	n = EVP_EncodeBlock(line, w->buf, (int)w->n);
	line[n++] = '\r';
	line[n++] = '\n';
	w->on += (size_t)n;
	w->n = 0;
	return 0;
}

/* BIO write: collect bytes, emit every full line. */
static int
b64w_write(BIO *b, const char *data, int len)
{
	struct b64w *w = BIO_get_data(b);
	const unsigned char *p = (const unsigned char *)data;
	size_t left = len > 0 ? (size_t)len : 0, c;

	while (left > 0) {
		c = sizeof(w->buf) - w->n;
		if (c > left)
			c = left;
		memcpy(w->buf + w->n, p, c);
		w->n += c;
		p += c;
		left -= c;
		if (w->n == sizeof(w->buf) && b64w_line(w) == -1)
			return -1;
	}
	return len;
}

/* BIO ctrl: a flush reaches the target but never ends a partial line, since
 * OpenSSL flushes in the middle of a stream. */
static long
b64w_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct b64w *w = BIO_get_data(b);

	(void)num;
	(void)ptr;
	if (cmd == BIO_CTRL_FLUSH)
		return b64w_drain(w) == 0 && BIO_flush(w->out) > 0 ? 1 : 0;
	return 0;
}

/* BIO destroy: the writer does not own the target. */
static int
b64w_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static int cms_methods(void);

/* A base64 writer into `out`: 76-character lines, CRLF. */
static BIO *
b64w_new(BIO *out)
{
	struct b64w *w;
	BIO *b;

	if (cms_methods() == -1)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if ((b = BIO_new(b64w_method)) == NULL) {
		free(w);
		return NULL;
	}
	w->out = out;
	BIO_set_data(b, w);
	BIO_set_init(b, 1);
	return b;
}

/* Write the last partial line and free the writer; 0 or -1. */
static int
b64w_finish(BIO *b)
{
	struct b64w *w = BIO_get_data(b);
	int r;

	r = w->failed || b64w_line(w) == -1 || b64w_drain(w) == -1 ? -1 : 0;
	BIO_free(b);
	return r;
}

/* Write a NUL-terminated string; 0 or -1. */
static int
bputs(BIO *out, const char *s)
{
	int n = (int)strlen(s);

	return BIO_write(out, s, n) == n ? 0 : -1;
}

/* The SMIMECapabilities we announce (cms_caps_ours). */
static int
cms_add_caps(CMS_SignerInfo *si)
{
	STACK_OF(X509_ALGOR) *algs = NULL;
	size_t i;
	int ok = 0;

	for (i = 0; i < sizeof(cms_caps_ours) / sizeof(cms_caps_ours[0]); i++)
		if (!CMS_add_simple_smimecap(&algs, cms_caps_ours[i], -1))
			goto done;
	ok = CMS_add_smimecap(si, algs);
 done:
	sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
	return ok ? 0 : -1;
}

/* A SignedData with one signer, not yet finalised. */
static CMS_ContentInfo *
cms_sign_init(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain, int opts,
    char *err, size_t errlen)
{
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	EVP_PKEY_CTX *pctx;
	unsigned flags = CMS_PARTIAL | CMS_BINARY;
	unsigned sflags = CMS_PARTIAL | CMS_BINARY | CMS_NOSMIMECAP;

	if (!(opts & SMIME_OPT_OPAQUE))
		flags |= CMS_DETACHED;
	else if (!(opts & SMIME_OPT_PSS))
		flags |= CMS_STREAM;
	if (opts & SMIME_OPT_PSS) {
		if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
			snprintf(err, errlen, "RSA-PSS needs an RSA key");
			return NULL;
		}
		sflags |= CMS_KEY_PARAM;
	}
	if ((cms = CMS_sign(NULL, NULL, chain, NULL, flags)) == NULL) {
		cms_err(err, errlen, "CMS_sign");
		return NULL;
	}
	si = CMS_add1_signer(cms, cert, key, EVP_sha256(), sflags);
	if (si == NULL) {
		cms_err(err, errlen, "signer certificate or key unusable");
		goto fail;
	}
	if (cms_add_caps(si) == -1) {
		cms_err(err, errlen, "SMIMECapabilities");
		goto fail;
	}
	if (opts & SMIME_OPT_PSS) {
		pctx = CMS_SignerInfo_get0_pkey_ctx(si);
		if (pctx == NULL ||
		    EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
		    RSA_PSS_SALTLEN_DIGEST) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
			cms_err(err, errlen, "RSA-PSS parameters");
			goto fail;
		}
	}
	return cms;
 fail:
	CMS_ContentInfo_free(cms);
	return NULL;
}

/* Write the DER/BER of `cms` as base64; with `in`, stream it as content. */
static int
cms_write_b64(BIO *out, CMS_ContentInfo *cms, BIO *in, unsigned flags)
{
	BIO *b64;
	int ok;

	if ((b64 = b64w_new(out)) == NULL)
		return -1;
	if (in != NULL)
		ok = i2d_CMS_bio_stream(b64, cms, in, (int)flags);
	else
		ok = i2d_CMS_bio(b64, cms);
	if (b64w_finish(b64) == -1)
		ok = 0;
	return ok ? 0 : -1;
}

/* Headers of an application/pkcs7-mime entity. */
static int
cms_p7m_headers(BIO *out, const char *type)
{
	char buf[256];

	snprintf(buf, sizeof(buf),
	    "Content-Type: application/pkcs7-mime; smime-type=%s;\r\n"
	    "\tname=\"smime.p7m\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
	    "\r\n", type);
	return bputs(out, buf);
}

/* Detached signing: the entity goes to `out` while it is digested; the
 * common case without OpenSSL's CMS object (cms_fast.c), else with cms
 * made by cms_sign_init() for the key. */
static int
cms_sign_detached(BIO *in, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
    int opts, BIO *out, char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	unsigned char rnd[16], *der = NULL;
	char bnd[64], buf[512];
	size_t derlen = 0;
	BIO *b64;
	int i, n, r = -1;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		cms_err(err, errlen, "RAND_bytes");
		return -1;
	}
	n = snprintf(bnd, sizeof(bnd), "----=_smrelay_");
	for (i = 0; i < (int)sizeof(rnd); i++)
		n += snprintf(bnd + n, sizeof(bnd) - n, "%02x", rnd[i]);
	snprintf(buf, sizeof(buf),
	    "Content-Type: multipart/signed;"
	    " protocol=\"application/pkcs7-signature\";\r\n"
	    "\tmicalg=sha-256; boundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a cryptographically signed message in MIME format.\r\n"
	    "\r\n"
	    "--%s\r\n", bnd, bnd);
	if (bputs(out, buf) == -1)
		goto io;
	if (!(opts & SMIME_OPT_PSS) && (i = cms_sign_fast(in, cert, key, chain,
	    out, &der, &derlen, err, errlen)) != 0) {
		if (i == -1)
			return -1;
	} else {
		if (X509_check_private_key(cert, key) != 1) {
			cms_err(err, errlen,
			    "signer key does not match certificate");
			return -1;
		}
		if ((cms = cms_sign_init(cert, key, chain, opts, err,
		    errlen)) == NULL)
			return -1;
		if (CMS_final(cms, in, out, CMS_BINARY) != 1) {
			cms_err(err, errlen, "signing failed");
			CMS_ContentInfo_free(cms);
			return -1;
		}
	}
	snprintf(buf, sizeof(buf), "\r\n--%s\r\n"
	    "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
	    "Content-Description: S/MIME Cryptographic Signature\r\n"
	    "\r\n", bnd);
	if (bputs(out, buf) == -1)
		goto io;
	if (cms != NULL) {
		if (cms_write_b64(out, cms, NULL, 0) == -1)
			goto io;
	} else if ((b64 = b64w_new(out)) == NULL ||
	    (BIO_write(b64, der, (int)derlen) != (int)derlen) |
	    (b64w_finish(b64) == -1))
		goto io;
	snprintf(buf, sizeof(buf), "\r\n--%s--\r\n", bnd);
	if (bputs(out, buf) == -1 || BIO_flush(out) <= 0)
		goto io;
	r = 0;
	goto done;
 io:
	cms_err(err, errlen, "write error");
 done:
	CMS_ContentInfo_free(cms);
	free(der);
	return r;
}

/* Opaque RSA-PSS: OpenSSL 3.0 cannot stream it ("illegal zero content"
 * when encoding), so the content is held in memory once. */
static int
cms_sign_opaque_pss(BIO *in, CMS_ContentInfo *cms, BIO *out, char *err,
    size_t errlen)
{
	if (CMS_final(cms, in, NULL, CMS_BINARY) != 1) {
		cms_err(err, errlen, "signing failed");
		return -1;
	}
	if (cms_p7m_headers(out, "signed-data") == -1 ||
	    cms_write_b64(out, cms, NULL, 0) == -1 || BIO_flush(out) <= 0) {
		cms_err(err, errlen, "write error");
		return -1;
	}
	return 0;
}

/* Sign an entity: multipart/signed, or opaque signed-data. */
int
cms_sign(BIO *in, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
    int opts, BIO *out, char *err, size_t errlen)
{
	CMS_ContentInfo *cms;
	int r = -1;

	ERR_clear_error();
	if (!(opts & SMIME_OPT_OPAQUE))
		return cms_sign_detached(in, cert, key, chain, opts, out, err,
		    errlen);
	if (X509_check_private_key(cert, key) != 1) {
		cms_err(err, errlen, "signer key does not match certificate");
		return -1;
	}
	if ((cms = cms_sign_init(cert, key, chain, opts, err, errlen)) ==
	    NULL)
		return -1;
	if (opts & SMIME_OPT_PSS)
		r = cms_sign_opaque_pss(in, cms, out, err, errlen);
	else if (cms_p7m_headers(out, "signed-data") == -1 ||
	    cms_write_b64(out, cms, in, CMS_STREAM | CMS_BINARY) == -1 ||
	    BIO_flush(out) <= 0)
		cms_err(err, errlen, "signing failed");
	else
		r = 0;
	CMS_ContentInfo_free(cms);
	return r;
}

/* Switch an RSA recipient to OAEP with SHA-256. */
static int
cms_oaep(CMS_RecipientInfo *ri)
{
	EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);

	if (pctx == NULL ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		return -1;
	return 0;
}

/* Encrypt an entity for all recipients in one envelope. */
int
cms_encrypt(BIO *in, STACK_OF(X509) *to, int opts, BIO *out, char *err,
    size_t errlen)
{
	const EVP_CIPHER *cipher;
	CMS_ContentInfo *cms;
	CMS_RecipientInfo *ri;
	X509 *x;
	unsigned flags = CMS_STREAM | CMS_BINARY | CMS_PARTIAL;
	unsigned rflags;
	int i, oaep, r = -1;

	ERR_clear_error();
	if (to == NULL || sk_X509_num(to) == 0) {
		snprintf(err, errlen, "no recipient certificate");
		return -1;
	}
	cipher = (opts & SMIME_OPT_GCM) ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
	if ((cms = CMS_encrypt(NULL, NULL, cipher, flags)) == NULL) {
		cms_err(err, errlen, "CMS_encrypt");
		return -1;
	}
	for (i = 0; i < sk_X509_num(to); i++) {
		x = sk_X509_value(to, i);
		oaep = (opts & SMIME_OPT_OAEP) &&
		    EVP_PKEY_get_base_id(X509_get0_pubkey(x)) == EVP_PKEY_RSA;
		rflags = CMS_BINARY | (oaep ? CMS_KEY_PARAM : 0);
		if ((ri = CMS_add1_recipient_cert(cms, x, rflags)) == NULL) {
			cms_err(err, errlen, "recipient certificate unusable");
			goto done;
		}
		if (oaep && cms_oaep(ri) == -1) {
			cms_err(err, errlen, "RSA-OAEP parameters");
			goto done;
		}
	}
	if (cms_p7m_headers(out, (opts & SMIME_OPT_GCM) ?
	    "authEnveloped-data" : "enveloped-data") == -1 ||
	    cms_write_b64(out, cms, in, flags & ~CMS_PARTIAL) == -1 ||
	    BIO_flush(out) <= 0) {
		cms_err(err, errlen, "encryption failed");
		goto done;
	}
	r = 0;
 done:
	CMS_ContentInfo_free(cms);
	return r;
}

/* Append "issuer/serial" (or the key id) of one recipient to buf. */
static void
cms_rid(char *buf, size_t len, X509_NAME *issuer, ASN1_INTEGER *sno,
    ASN1_OCTET_STRING *keyid)
{
	size_t n = strlen(buf);
	char name[256];
	BIGNUM *bn;
	char *hex = NULL;
	int i;

	if (n + 4 >= len)
		return;
	if (n > 0)
		n += snprintf(buf + n, len - n, ", ");
	if (issuer != NULL && sno != NULL) {
		X509_NAME_oneline(issuer, name, sizeof(name));
		if ((bn = ASN1_INTEGER_to_BN(sno, NULL)) != NULL)
			hex = BN_bn2hex(bn);
		BN_free(bn);
		snprintf(buf + n, len - n, "%s/%s", name, hex ? hex : "?");
		OPENSSL_free(hex);
	} else if (keyid != NULL) {
		n += snprintf(buf + n, len - n, "keyid:");
		for (i = 0; i < keyid->length && n + 3 < len; i++)
			n += snprintf(buf + n, len - n, "%02X", keyid->data[i]);
	} else
		snprintf(buf + n, len - n, "(other)");
}

/* List the recipients of an envelope, for the "no key" error. */
static void
cms_recipients(CMS_ContentInfo *cms, char *buf, size_t len)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	STACK_OF(CMS_RecipientEncryptedKey) *reks;
	CMS_RecipientInfo *ri;
	ASN1_OCTET_STRING *keyid;
	X509_NAME *issuer;
	ASN1_INTEGER *sno;
	int i, j;

	buf[0] = '\0';
	for (i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		ri = sk_CMS_RecipientInfo_value(ris, i);
		keyid = NULL;
		issuer = NULL;
		sno = NULL;
		switch (CMS_RecipientInfo_type(ri)) {
		case CMS_RECIPINFO_TRANS:
			CMS_RecipientInfo_ktri_get0_signer_id(ri, &keyid,
			    &issuer, &sno);
			cms_rid(buf, len, issuer, sno, keyid);
			break;
		case CMS_RECIPINFO_AGREE:
			reks = CMS_RecipientInfo_kari_get0_reks(ri);
			for (j = 0; j < sk_CMS_RecipientEncryptedKey_num(reks);
			    j++) {
				CMS_RecipientEncryptedKey_get0_id(
				    sk_CMS_RecipientEncryptedKey_value(reks, j),
				    &keyid, NULL, NULL, &issuer, &sno);
				cms_rid(buf, len, issuer, sno, keyid);
			}
			break;
		default:
			cms_rid(buf, len, NULL, NULL, NULL);
			break;
		}
	}
}

/*
 * Decryption streams the encrypted content: d2i_CMS_bio() would hold the
 * whole DER and then a contiguous copy of the content (3.8 times a 50 MB
 * message).  A small BER walker reads the envelope up to the content, a
 * DER ContentInfo is rebuilt from that prefix without the content and
 * parsed, and the content goes to CMS_dataInit() as detached content
 * through a BIO that strips the chunking of a constructed OCTET STRING.
 * What follows the content (unprotectedAttrs; authAttrs, mac and
 * unauthAttrs of an AuthEnvelopedData) is read when the content ends; the
 * GCM tag is handed to the cipher then, before OpenSSL finalises it.
 * OpenSSL 3.0 ignores authAttrs when decrypting, so nothing is lost.
 */
#define BER_MAX_DEPTH	32		/* nested constructed elements */
#define BER_MAX_HEAD	(4 << 20)	/* the envelope without its content */
#define CMS_SKEL_KEEP	65536		/* cms_structure_nid: kept whole */
#define BER_UNIV	0x00
#define BER_CTX		0x80
#define BER_SEQUENCE	16
#define BER_OCTETS	4
#define BER_OID		6
#define CMS_CHAIN_CERTS_MAX 256	/* offered for a path the memo keys */
#define CMS_CHAIN_CRLS_MAX 4096		/* CRLs of a trust the memo keys */

/* One element's identifier and length, and their encoding. */
struct ber_hdr {
	int		 cls;		/* BER_UNIV, BER_CTX, ... */
	int		 cons;
	unsigned long	 num;
	int		 indef;
	uint64_t	 len;
	unsigned char	 raw[16];
	size_t		 rawlen;
};

/* An open constructed element. */
struct ber_level {
	int		 indef;
	uint64_t	 end;		/* offset after it, when definite */
	uint64_t	 limit;		/* where it must end at the latest */
};

/* Buffered BER input and the elements open at the read position. */
struct ber {
	BIO		*in;
	unsigned char	 buf[16384];
	size_t		 off, len;
	uint64_t	 pos;		/* offset of buf[off] in the input */
	struct ber_level lv[BER_MAX_DEPTH];
	int		 depth;
};

/* What a content that does not decrypt says, whatever the cause. */
#define ENVC_ERR_DECRYPT	"decryption failed"
#define ENVC_ERR_TAG		"decryption failed: authentication tag mismatch"

/* One envelope being decrypted: the reader and what the content BIO
 * needs to find the content's chunks and, after them, the GCM tag. */
struct envc {
	struct ber	 b;
	int		 auth;		/* AuthEnvelopedData */
	int		 eci;		/* depth with the EncryptedContentInfo
					 * innermost */
	int		 prim;		/* content is one primitive [0] */
	uint64_t	 left;		/* bytes left in the current chunk */
	int		 done;		/* content and envelope read */
	int		 failed;	/* malformed or truncated */
	unsigned char	 tag[16];
	size_t		 taglen;
	EVP_CIPHER_CTX	*cctx;		/* the decrypting cipher BIO's */
};

/* A reader of `in` (its buffer left uninitialised: it is only read
 * where it was filled); NULL when out of memory. */
static struct ber *
ber_new(BIO *in, size_t size)
{
	struct ber *b;

	if ((b = malloc(size)) == NULL)
		return NULL;
	memset(b, 0, offsetof(struct ber, buf));
	memset(&b->off, 0, size - offsetof(struct ber, off));
	b->in = in;
	return b;
}

/* Refill the buffer; -1 at the end of the input. */
static int
ber_fill(struct ber *b)
{
	int n;

	if (b->off < b->len)
		return 0;
	n = BIO_read(b->in, b->buf, sizeof(b->buf));
	if (n <= 0)
		return -1;
	b->off = 0;
	b->len = (size_t)n;
	return 0;
}

/* One input byte; 0 or -1. */
static int
ber_byte(struct ber *b, unsigned char *c)
{
	if (ber_fill(b) == -1)
		return -1;
	*c = b->buf[b->off++];
	b->pos++;
	return 0;
}

/* Append to a BUF_MEM, bounded by BER_MAX_HEAD; 0 or -1. */
static int
ber_put(BUF_MEM *m, const void *p, size_t n)
{
	size_t at = m->length;

	if (n == 0)
		return 0;
	if (at + n > BER_MAX_HEAD || BUF_MEM_grow(m, at + n) == 0)
		return -1;
	memcpy(m->data + at, p, n);
	return 0;
}

/* Consume `n` bytes into `dst` and/or `copy` (either may be NULL). */
static int
ber_take(struct ber *b, unsigned char *dst, uint64_t n, BUF_MEM *copy)
{
	size_t k;

	while (n > 0) {
		if (ber_fill(b) == -1)
			return -1;
		k = b->len - b->off;
		if (k > n)
			k = (size_t)n;
		if (dst != NULL) {
			memcpy(dst, b->buf + b->off, k);
			dst += k;
		}
		if (copy != NULL && ber_put(copy, b->buf + b->off, k) == -1)
			return -1;
		b->off += k;
		b->pos += k;
		n -= k;
	}
	return 0;
}

/* Read one identifier and length; 0 or -1 on a malformed header. */
static int
ber_head(struct ber *b, struct ber_hdr *h)
{
	unsigned char c;
	int i, n;

	memset(h, 0, sizeof(*h));
	if (ber_byte(b, &c) == -1)
		return -1;
	h->raw[h->rawlen++] = c;
	h->cls = c & 0xc0;
	h->cons = (c & 0x20) != 0;
	h->num = c & 0x1f;
	if (h->num == 0x1f) {
		for (h->num = 0, i = 0;; i++) {
			if (i == 4 || ber_byte(b, &c) == -1)
				return -1;
			h->raw[h->rawlen++] = c;
			h->num = (h->num << 7) | (c & 0x7f);
			if (!(c & 0x80))
				break;
		}
	}
	if (ber_byte(b, &c) == -1)
		return -1;
	h->raw[h->rawlen++] = c;
	if (c == 0x80)
		h->indef = 1;
	else if (c & 0x80) {
		if ((n = c & 0x7f) > 7)
			return -1;
		for (i = 0; i < n; i++) {
			if (ber_byte(b, &c) == -1)
				return -1;
			h->raw[h->rawlen++] = c;
			h->len = (h->len << 8) | c;
		}
	} else
		h->len = c;
	if (h->indef && !h->cons)
		return -1;
	/* Tag 0 is only the end-of-contents octets 00 00. */
	if (h->cls == BER_UNIV && h->num == 0 &&
	    (h->cons || h->indef || h->len != 0))
		return -1;
	return 0;
}

/* Is `h` the element [cls num] with the given form? */
static int
ber_is(const struct ber_hdr *h, int cls, unsigned long num, int cons)
{
	return h->cls == cls && h->num == num && h->cons == cons;
}

/* Enter the constructed element whose header was just read. */
static int
ber_push(struct ber *b, const struct ber_hdr *h)
{
	struct ber_level *l;
	uint64_t plimit = b->depth > 0 ? b->lv[b->depth - 1].limit :
	    UINT64_MAX;

	if (!h->cons || b->depth == BER_MAX_DEPTH)
		return -1;
	l = &b->lv[b->depth++];
	l->indef = h->indef;
	l->end = h->indef ? 0 : b->pos + h->len;
	l->limit = h->indef ? plimit : l->end;
	return 0;
}

/* The next header inside the innermost open element: 1, or 0 at its end
 * (it is closed then; h->raw holds the end-of-contents octets, if any),
 * or -1 on malformed input. */
static int
ber_next(struct ber *b, struct ber_hdr *h)
{
	struct ber_level *l = &b->lv[b->depth - 1];

	if (!l->indef && b->pos == l->end) {
		memset(h, 0, sizeof(*h));
		b->depth--;
		return 0;
	}
	if (ber_head(b, h) == -1)
		return -1;
	if (h->cls == BER_UNIV && h->num == 0) {
		if (!l->indef)
			return -1;
		b->depth--;
		return 0;
	}
	if (b->pos > l->limit || h->len > l->limit - b->pos)
		return -1;
	return 1;
}

/* The contents of the element whose header was just read, copied to
 * `copy` with every inner header (or skipped, with NULL). */
static int
ber_body(struct ber *b, const struct ber_hdr *h, BUF_MEM *copy)
{
	struct ber_hdr c;
	int r;

	if (!h->cons)
		return ber_take(b, NULL, h->len, copy);
	if (ber_push(b, h) == -1)
		return -1;
	for (;;) {
		if ((r = ber_next(b, &c)) == -1 ||
		    (copy != NULL && ber_put(copy, c.raw, c.rawlen) == -1))
			return -1;
		if (r == 0)
			return 0;
		if (ber_body(b, &c, copy) == -1)
			return -1;
	}
}

/* One whole element: its header, then its contents. */
static int
ber_copy(struct ber *b, const struct ber_hdr *h, BUF_MEM *copy)
{
	if (ber_put(copy, h->raw, h->rawlen) == -1)
		return -1;
	return ber_body(b, h, copy);
}

/* Enter a ContentInfo and copy its contentType; `out` (empty) gets
 * "SEQUENCE { contentType" with an indefinite length, `nid` the type. */
static int
ber_content_type(struct ber *b, BUF_MEM *out, int *nid)
{
	const unsigned char *p;
	ASN1_OBJECT *obj;
	struct ber_hdr h;

	*nid = NID_undef;
	if (ber_head(b, &h) == -1 || !ber_is(&h, BER_UNIV, BER_SEQUENCE, 1) ||
	    ber_push(b, &h) == -1 || ber_put(out, "\x30\x80", 2) == -1 ||
	    ber_next(b, &h) != 1 || !ber_is(&h, BER_UNIV, BER_OID, 0) ||
	    ber_copy(b, &h, out) == -1)
		return -1;
	p = (const unsigned char *)out->data + 2;
	if ((obj = d2i_ASN1_OBJECT(NULL, &p, (long)out->length - 2)) == NULL)
		return -1;
	*nid = OBJ_obj2nid(obj);
	ASN1_OBJECT_free(obj);
	return 0;
}

/* Read the ContentInfo up to the inside of the enveloped content; `out`
 * gets "SEQUENCE { contentType, [0] { SEQUENCE {" with indefinite
 * lengths, `nid` the content type. */
static int
envc_outer(struct envc *e, BUF_MEM *out, int *nid)
{
	static const unsigned char open[] = { 0xa0, 0x80, 0x30, 0x80 };
	struct ber *b = &e->b;
	struct ber_hdr h;

	if (ber_content_type(b, out, nid) == -1)
		return -1;
	if (*nid != NID_pkcs7_enveloped &&
	    *nid != NID_id_smime_ct_authEnvelopedData)
		return 0;
	if (ber_next(b, &h) != 1 || !ber_is(&h, BER_CTX, 0, 1) ||
	    ber_push(b, &h) == -1 || ber_next(b, &h) != 1 ||
	    !ber_is(&h, BER_UNIV, BER_SEQUENCE, 1) || ber_push(b, &h) == -1 ||
	    ber_put(out, open, sizeof(open)) == -1)
		return -1;
	return 0;
}

/* Copy the (Auth)EnvelopedData fields before the EncryptedContentInfo,
 * then the latter's type and algorithm; stop at the content's header,
 * which sets up the content reader. */
static int
envc_fields(struct envc *e, BUF_MEM *out)
{
	struct ber *b = &e->b;
	struct ber_hdr h;
	int i;

	/* version, [0] originatorInfo, recipientInfos */
	for (i = 0;; i++) {
		if (i == 4 || ber_next(b, &h) != 1)
			return -1;
		if (ber_is(&h, BER_UNIV, BER_SEQUENCE, 1))
			break;
		if (ber_copy(b, &h, out) == -1)
			return -1;
	}
	if (ber_push(b, &h) == -1 || ber_put(out, "\x30\x80", 2) == -1)
		return -1;
	e->eci = b->depth;
	for (i = 0; i < 2; i++)		/* contentType, algorithm */
		if (ber_next(b, &h) != 1 || ber_copy(b, &h, out) == -1)
			return -1;
	if (ber_put(out, "\0\0", 2) == -1 || ber_next(b, &h) != 1)
		return -1;	/* no encryptedContent: nothing to decrypt */
	if (ber_is(&h, BER_CTX, 0, 0)) {
		e->prim = 1;
		e->left = h.len;
	} else if (!ber_is(&h, BER_CTX, 0, 1) || ber_push(b, &h) == -1)
		return -1;
	/* An AuthEnvelopedData needs a mac, of a valid length for OpenSSL
	 * to set up the cipher: a placeholder until the real one is read
	 * after the content and handed to the cipher (envc_tail). */
	if (e->auth && ber_put(out, "\x04\x10\0\0\0\0\0\0\0\0"
	    "\0\0\0\0\0\0\0\0", 18) == -1)
		return -1;
	return ber_put(out, "\0\0\0\0\0\0", 6);
}

/* The CMS object a reader rebuilt into m, parsed; `err` set on NULL. */
static CMS_ContentInfo *
buf_cms(BUF_MEM *m, char *err, size_t errlen)
{
	const unsigned char *p = (const unsigned char *)m->data;
	CMS_ContentInfo *cms;

	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)m->length)) == NULL)
		cms_err(err, errlen, "malformed CMS structure");
	return cms;
}

/* The envelope without its content, rebuilt (see envc_fields); `err`
 * set on NULL. */
static BUF_MEM *
envc_head(struct envc *e, char *err, size_t errlen)
{
	BUF_MEM *m;
	int nid;

	if ((m = BUF_MEM_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (envc_outer(e, m, &nid) == -1)
		snprintf(err, errlen, "malformed CMS structure");
	else if (nid != NID_pkcs7_enveloped &&
	    nid != NID_id_smime_ct_authEnvelopedData)
		snprintf(err, errlen, "not enveloped data (%s)",
		    OBJ_nid2sn(nid));
	else if ((e->auth = nid == NID_id_smime_ct_authEnvelopedData,
	    envc_fields(e, m)) == -1)
		snprintf(err, errlen, "malformed CMS structure");
	else
		return m;
	BUF_MEM_free(m);
	return NULL;
}

/* After the content: the rest of the envelope, the mac kept; 0 or -1. */
static int
envc_tail(struct envc *e)
{
	struct ber *b = &e->b;
	struct ber_hdr h;
	int r, stage = 0;	/* 1: authAttrs read, 2: mac read, 3: done */

	if (ber_next(b, &h) != 0)	/* end of EncryptedContentInfo */
		return -1;
	while ((r = ber_next(b, &h)) == 1) {
		if (stage == 0 && ber_is(&h, BER_CTX, 1, 1))
			stage = e->auth ? 1 : 3;
		else if (e->auth && stage == 2 && ber_is(&h, BER_CTX, 2, 1))
			stage = 3;
		else if (e->auth && stage <= 1 &&
		    ber_is(&h, BER_UNIV, BER_OCTETS, 0)) {
			/* RFC 5084 2.1: the ICV is 12 to 16 octets. */
			if (h.len < 12 || h.len > sizeof(e->tag) ||
			    ber_take(b, e->tag, h.len, NULL) == -1)
				return -1;
			e->taglen = (size_t)h.len;
			stage = 2;
			continue;
		} else
			return -1;
		if (ber_body(b, &h, NULL) == -1)	/* attributes */
			return -1;
	}
	if (r == -1 || (e->auth && e->taglen == 0))
		return -1;
	/* end of [0] content and of the ContentInfo */
	if (ber_next(b, &h) != 0 || ber_next(b, &h) != 0)
		return -1;
	if (e->auth && (e->cctx == NULL || EVP_CIPHER_CTX_ctrl(e->cctx,
	    EVP_CTRL_AEAD_SET_TAG, (int)e->taglen, e->tag) <= 0))
		return -1;
	return 0;
}

/* Find the next chunk of content (e->left set), or read the envelope's
 * tail when there is none left (e->done set); 0 or -1. */
static int
envc_next_chunk(struct envc *e)
{
	struct ber *b = &e->b;
	struct ber_hdr h;
	int r;

	while (!e->prim && b->depth > e->eci) {
		if ((r = ber_next(b, &h)) == -1)
			return -1;
		if (r == 0)
			continue;
		if (ber_is(&h, BER_UNIV, BER_OCTETS, 0)) {
			if ((e->left = h.len) > 0)
				return 0;
		} else if (!ber_is(&h, BER_UNIV, BER_OCTETS, 1) ||
		    ber_push(b, &h) == -1)
			return -1;
	}
	e->done = 1;
	return envc_tail(e);
}

/* BIO read: the payload of the content's chunks, one chunk at most per
 * call; 0 at the end, once the envelope has been read to its end. */
static int
envc_read(BIO *bio, char *buf, int len)
{
	struct envc *e = BIO_get_data(bio);
	size_t n;

	BIO_clear_retry_flags(bio);
	if (e->failed)
		return -1;
	while (e->left == 0 && !e->done)
		if (envc_next_chunk(e) == -1) {
			e->failed = 1;
			return -1;
		}
	if (e->left == 0 || len <= 0)
		return 0;
	n = (size_t)len;
	if (n > e->left)
		n = (size_t)e->left;
	if (ber_take(&e->b, (unsigned char *)buf, n, NULL) == -1) {
		e->failed = 1;
		return -1;
	}
	e->left -= n;
	return (int)n;
}

/* BIO ctrl: nothing to flush or reset. */
static long
envc_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	(void)bio;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* Create the BIO methods once. */
static void
cms_methods_init(void)
{
	b64w_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "smime base64 writer");
	envc_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "smime encrypted content reader");
	cms_methods_ok = b64w_method != NULL && envc_method != NULL &&
	    BIO_meth_set_write(b64w_method, b64w_write) &&
	    BIO_meth_set_ctrl(b64w_method, b64w_ctrl) &&
	    BIO_meth_set_destroy(b64w_method, b64w_destroy) &&
	    BIO_meth_set_read(envc_method, envc_read) &&
	    BIO_meth_set_ctrl(envc_method, envc_ctrl);
}

/* The BIO methods, created on first use; 0 or -1. */
static int
cms_methods(void)
{
	if (!CRYPTO_THREAD_run_once(&cms_once, cms_methods_init) ||
	    !cms_methods_ok)
		return -1;
	return 0;
}

/* Create what the engine shares between calls, from the main thread. */
void
cms_init(void)
{
	(void)cms_methods();
}

/* The envelope's content reader for e. */
static BIO *
envc_bio(struct envc *e)
{
	BIO *in;

	if (cms_methods() == -1 || (in = BIO_new(envc_method)) == NULL)
		return NULL;
	BIO_set_data(in, e);
	BIO_set_init(in, 1);
	return in;
}

/* A cipher BIO for what cms_env_fast() found, on top of in; NULL or the
 * chain (in included). */
static BIO *
envc_fast_chain(struct envc *e, const struct cms_env_fast *f, BIO *in)
{
	BIO *c;

	if ((c = BIO_new(BIO_f_cipher())) == NULL ||
	    BIO_get_cipher_ctx(c, &e->cctx) != 1 ||
	    EVP_CipherInit_ex(e->cctx, f->cipher, NULL, NULL, NULL, 0) != 1 ||
	    (f->gcm && EVP_CIPHER_CTX_ctrl(e->cctx, EVP_CTRL_AEAD_SET_IVLEN,
	    (int)f->ivlen, NULL) <= 0) ||
	    EVP_CipherInit_ex(e->cctx, NULL, NULL, f->key, f->iv, 0) != 1) {
		BIO_free(c);
		e->cctx = NULL;
		return NULL;
	}
	return BIO_push(c, in);
}

/* Stream the content through the cipher to `out`: the chain cont (the
 * cipher BIO on top of in) read to its end and freed; 0 or -1. */
static int
envc_pump(struct envc *e, BIO *cont, BIO *in, BIO *out, char *err,
    size_t errlen)
{
	unsigned char buf[8192];
	BIO *cipher, *next;
	int n, r = -1;

	if ((cipher = BIO_find_type(cont, BIO_TYPE_CIPHER)) == NULL ||
	    BIO_get_cipher_ctx(cipher, &e->cctx) != 1) {
		snprintf(err, errlen, "decryption failed: no cipher");
		goto done;
	}
	while ((n = BIO_read(cont, buf, sizeof(buf))) > 0)
		if (BIO_write(out, buf, n) != n) {
			cms_err(err, errlen, "write error");
			goto done;
		}
	if (e->failed)
		snprintf(err, errlen, "malformed CMS structure");
	else if (n < 0 || !e->done || BIO_get_cipher_status(cipher) <= 0) {
		/* OpenSSL's reason left out: the same words whether the key
		 * or the content was bad (cms_env_fast()) */
		snprintf(err, errlen, "%s", e->auth ? ENVC_ERR_TAG :
		    ENVC_ERR_DECRYPT);
		ERR_clear_error();
	} else
		r = 0;
 done:
	while (cont != NULL && cont != in) {
		next = BIO_pop(cont);
		BIO_free(cont);
		cont = next;
	}
	BIO_free(in);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

/*
 * Opaque signed-data, split as it streams by: the signed content's bytes
 * (the chunks of its OCTET STRING joined) to `content`, and the SignedData
 * without them, a detached signature, into `sig`: "SEQUENCE { contentType,
 * [0] { SEQUENCE { version, digestAlgorithms, SEQUENCE { eContentType },
 * certificates, crls, signerInfos" with indefinite lengths.
 */
static int
sd_split(struct ber *b, BIO *content, BUF_MEM *sig, int *nid)
{
	static const unsigned char open[] = { 0xa0, 0x80, 0x30, 0x80 };
	unsigned char buf[4096];
	struct ber_hdr h;
	uint64_t n, k;
	int i, r, d0;

	if (ber_content_type(b, sig, nid) == -1)
		return -1;
	if (*nid != NID_pkcs7_signed)
		return 0;
	if (ber_next(b, &h) != 1 || !ber_is(&h, BER_CTX, 0, 1) ||
	    ber_push(b, &h) == -1 || ber_next(b, &h) != 1 ||
	    !ber_is(&h, BER_UNIV, BER_SEQUENCE, 1) || ber_push(b, &h) == -1 ||
	    ber_put(sig, open, sizeof(open)) == -1)
		return -1;
	/* version, digestAlgorithms */
	if (ber_next(b, &h) != 1 || !ber_is(&h, BER_UNIV, 2, 0) ||
	    ber_copy(b, &h, sig) == -1 || ber_next(b, &h) != 1 ||
	    !ber_is(&h, BER_UNIV, 17, 1) || ber_copy(b, &h, sig) == -1)
		return -1;
	/* encapContentInfo: its type kept, its content streamed out */
	if (ber_next(b, &h) != 1 || !ber_is(&h, BER_UNIV, BER_SEQUENCE, 1) ||
	    ber_push(b, &h) == -1 || ber_put(sig, "\x30\x80", 2) == -1 ||
	    ber_next(b, &h) != 1 || !ber_is(&h, BER_UNIV, BER_OID, 0) ||
	    ber_copy(b, &h, sig) == -1 || ber_next(b, &h) != 1 ||
	    !ber_is(&h, BER_CTX, 0, 1) || ber_push(b, &h) == -1)
		return -1;	/* no eContent: detached, not opaque */
	d0 = b->depth;
	if (ber_next(b, &h) != 1)
		return -1;
	for (;;) {
		if (ber_is(&h, BER_UNIV, BER_OCTETS, 0)) {
			for (n = h.len; n > 0; n -= k) {
				k = n < sizeof(buf) ? n : sizeof(buf);
				if (ber_take(b, buf, k, NULL) == -1 ||
				    BIO_write(content, buf, (int)k) != (int)k)
					return -1;
			}
		} else if (!ber_is(&h, BER_UNIV, BER_OCTETS, 1) ||
		    ber_push(b, &h) == -1)
			return -1;
		/* the next chunk; the OCTET STRING must be all of [0] */
		while ((r = ber_next(b, &h)) == 0 && b->depth >= d0)
			;
		if (r == -1 || (r == 0 && b->depth != d0 - 1) ||
		    (r == 1 && b->depth == d0))
			return -1;
		if (r == 0)
			break;
	}
	if (ber_next(b, &h) != 0 || ber_put(sig, "\0\0", 2) == -1)
		return -1;	/* end of encapContentInfo */
	/* certificates [0], crls [1], signerInfos SET: as they are */
	for (i = 0; (r = ber_next(b, &h)) == 1; i++)
		if (i == 3 || ber_copy(b, &h, sig) == -1)
			return -1;
	/* end of SignedData, of [0], of the ContentInfo */
	if (r == -1 || i == 0 || ber_next(b, &h) != 0 ||
	    ber_next(b, &h) != 0 || ber_put(sig, "\0\0\0\0\0\0", 6) == -1)
		return -1;
	return 0;
}

/* Split opaque signed-data into its content and a detached signature. */
int
cms_opaque_split(BIO *der, BIO *content, unsigned char **sig, size_t *siglen,
    char *err, size_t errlen)
{
	struct ber *b;
	BUF_MEM *m;
	int nid = NID_undef, r = -1;

	*sig = NULL;
	*siglen = 0;
	if ((b = ber_new(der, sizeof(*b))) == NULL ||
	    (m = BUF_MEM_new()) == NULL) {
		free(b);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (sd_split(b, content, m, &nid) == -1)
		snprintf(err, errlen, "malformed CMS structure");
	else if (nid != NID_pkcs7_signed) {
		snprintf(err, errlen, "not signed data (%s)", OBJ_nid2sn(nid));
		r = 1;
	} else if (BIO_flush(content) != 1)
		snprintf(err, errlen, "cannot write the signed content");
	else {
		*siglen = m->length;
		*sig = (unsigned char *)m->data;
		m->data = NULL;
		m->length = m->max = 0;
		r = 0;
	}
	BUF_MEM_free(m);
	free(b);
	return r;
}

/*
 * The skeleton of one element whose header `h` was just read: a subtree
 * of at most `keep` bytes as it is; a bigger constructed one re-emitted
 * with an indefinite length around the skeletons of its elements; a
 * bigger primitive OCTET STRING (universal, or the [0] of an
 * EncryptedContentInfo) emptied.  Other big primitives are kept (up to
 * BER_MAX_HEAD in all).
 */
static int
skel_elem(struct ber *b, const struct ber_hdr *h, size_t keep, BUF_MEM *out)
{
	struct ber_hdr c;
	size_t tl = 1;
	int r;

	if (!h->indef && h->len <= keep)
		return ber_copy(b, h, out);
	if ((h->raw[0] & 0x1f) == 0x1f)         /* high tag number */
		while (h->raw[tl++] & 0x80)
			;
	if (!h->cons) {
		if (!ber_is(h, BER_UNIV, BER_OCTETS, 0) &&
		    !ber_is(h, BER_CTX, 0, 0))
			return ber_copy(b, h, out);
		if (ber_put(out, h->raw, tl) == -1 ||
		    ber_put(out, "\0", 1) == -1)
			return -1;
		return ber_take(b, NULL, h->len, NULL);
	}
	if (ber_put(out, h->raw, tl) == -1 || ber_put(out, "\x80", 1) == -1 ||
	    ber_push(b, h) == -1)
		return -1;
	while ((r = ber_next(b, &c)) == 1)
		if (skel_elem(b, &c, keep, out) == -1)
			return -1;
	if (r == -1)
		return -1;
	return ber_put(out, "\0\0", 2);
}

/* cms_structure_nid() with the size of the subtrees kept whole. */
int
cms_structure_nid_keep(BIO *der, size_t keep, char *err, size_t errlen)
{
	CMS_ContentInfo *cms;
	struct ber_hdr h;
	struct ber *b;
	BUF_MEM *m;
	int nid = NID_undef;

	if ((b = ber_new(der, sizeof(*b))) == NULL ||
	    (m = BUF_MEM_new()) == NULL) {
		free(b);
		snprintf(err, errlen, "out of memory");
		return NID_undef;
	}
	if (ber_head(b, &h) == -1 || !ber_is(&h, BER_UNIV, BER_SEQUENCE, 1) ||
	    skel_elem(b, &h, keep, m) == -1)
		snprintf(err, errlen, "malformed CMS structure");
	else if ((cms = buf_cms(m, err, errlen)) != NULL) {
		if ((nid = OBJ_obj2nid(CMS_get0_type(cms))) == NID_undef)
			snprintf(err, errlen, "unknown content type");
		CMS_ContentInfo_free(cms);
	}
	ERR_clear_error();
	BUF_MEM_free(m);
	free(b);
	return nid;
}

/* The content type of a CMS object whose whole structure parses. */
int
cms_structure_nid(BIO *der, char *err, size_t errlen)
{
	return cms_structure_nid_keep(der, CMS_SKEL_KEEP, err, errlen);
}

/* Decrypt an EnvelopedData or AuthEnvelopedData with a matching key. */
int
cms_decrypt(BIO *der, const struct cms_identity *ids, size_t nids,
    BIO *out, char *err, size_t errlen)
{
	CMS_ContentInfo *cms = NULL;
	struct cms_env_fast f;
	struct envc *e;
	BUF_MEM *m;
	BIO *in = NULL, *cont;
	char rcpts[512];
	size_t i;
	int r = -1, fast, rejected;

	memset(&f, 0, sizeof(f));
	ERR_clear_error();
	/* struct ber comes first in struct envc: the rest is cleared too */
	if ((e = (struct envc *)ber_new(der, sizeof(*e))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((m = envc_head(e, err, errlen)) == NULL)
		goto done;
	/* the common envelope opened in place (cms_fast.c); else OpenSSL's
	 * object, which with a certificate only tries the RecipientInfos
	 * it matches, so a wrong key is never attempted */
	if ((fast = cms_env_fast((const unsigned char *)m->data, m->length,
	    ids, nids, &f)) == 1) {
		i = f.id;
		if ((in = envc_bio(e)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		cont = envc_fast_chain(e, &f, in);
		rejected = f.rejected;
		cms_env_fast_done(&f);	/* the cipher context holds its own */
		if (cont == NULL) {
			cms_err(err, errlen, "decryption failed");
			goto done;
		}
		/* a key that did not unwrap fails here, after the content
		 * went through like any other, with the same words (see
		 * cms_env_fast()); what was written out is the caller's to
		 * throw away, as for any failure */
		if (envc_pump(e, cont, in, out, err, errlen) == 0 &&
		    !rejected)
			r = (int)i;
		else if (rejected && !e->failed)
			snprintf(err, errlen, "%s", e->auth ?
			    ENVC_ERR_TAG : ENVC_ERR_DECRYPT);
		in = NULL;
		goto done;
	}
	if (fast == -1 || fast == -2) {
		/* ours, but not for OpenSSL to unwrap (cms_env_fast()) */
		if (fast == -1)
			snprintf(err, errlen, "unsupported content encryption "
			    "algorithm %s", f.cipher_name);
		else
			snprintf(err, errlen, "decryption failed: the key "
			    "could not be used");
		goto done;
	}
	if ((cms = buf_cms(m, err, errlen)) == NULL)
		goto done;
	for (i = 0; i < nids; i++) {
		if (CMS_decrypt_set1_pkey_and_peer(cms, ids[i].key,
		    ids[i].cert, NULL) == 1)
			break;
		ERR_clear_error();
	}
	if (i == nids) {
		cms_recipients(cms, rcpts, sizeof(rcpts));
		snprintf(err, errlen, "no private key matches any recipient"
		    " (recipients: %s)", rcpts);
		goto done;
	}
	if ((in = envc_bio(e)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if ((cont = CMS_dataInit(cms, in)) == NULL) {
		cms_err(err, errlen, "decryption failed");
		goto done;
	}
	if (envc_pump(e, cont, in, out, err, errlen) == 0)
		r = (int)i;
	in = NULL;
 done:
	cms_env_fast_done(&f);
	BIO_free(in);
	BUF_MEM_free(m);
	CMS_ContentInfo_free(cms);
	free(e);
	return r;
}

/* Set the verdict and its reason. */
static enum cms_outcome
cms_result(struct cms_verify *res, enum cms_outcome o,
    const char *reason)
{
	res->outcome = o;
	snprintf(res->reason, sizeof(res->reason), "%s", reason);
	ERR_clear_error();
	return o;
}

/* Read the ciphers the signer announced in SMIMECapabilities. */
static void
cms_get_caps(CMS_SignerInfo *si, struct cms_verify *res)
{
	STACK_OF(X509_ALGOR) *algs;
	const unsigned char *p;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	int i;

	i = CMS_signed_get_attr_by_NID(si, NID_SMIMECapabilities, -1);
	if (i < 0 || (attr = CMS_signed_get_attr(si, i)) == NULL)
		return;
	t = X509_ATTRIBUTE_get0_type(attr, 0);
	if (t == NULL || t->type != V_ASN1_SEQUENCE)
		return;
	p = t->value.sequence->data;
	algs = d2i_X509_ALGORS(NULL, &p, t->value.sequence->length);
	if (algs == NULL) {
		ERR_clear_error();
		return;
	}
	res->has_caps = 1;
	for (i = 0; i < sk_X509_ALGOR_num(algs); i++)
		res->caps |= cms_cap_bit(OBJ_obj2nid(sk_X509_ALGOR_value(algs,
		    i)->algorithm));
	sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
}

/* rfc822Name against From: ASCII case-insensitive, local part included.
 * RFC 5280 (7.5) would compare the local part exactly; mail clients do
 * not (Bob.Smith@ in From, bob.smith@ in the certificate is one person),
 * and neither does our store when it finds certificates for an address.
 * RFC 5321 (2.4) discourages mailboxes that differ only in case. */
static int
cms_addr_eq(const char *a, const char *b)
{
	char ka[MAIL_ADDR_MAX], kb[MAIL_ADDR_MAX];

	/* one domain, in U-labels or A-labels (the certificate's) */
	a = mail_addr_key(a, ka, sizeof(ka));
	b = mail_addr_key(b, kb, sizeof(kb));
	return strchr(a, '@') != NULL && strcasecmp(a, b) == 0;
}

/* Pick the signer identity; 1 when `from` (if any) is among its addresses. */
static int
cms_match_from(X509 *signer, const char *from, struct cms_verify *res)
{
	STACK_OF(OPENSSL_STRING) *emails = X509_get1_email(signer);
	const char *e;
	int i, found = 0;

	for (i = 0; i < sk_OPENSSL_STRING_num(emails); i++) {
		e = sk_OPENSSL_STRING_value(emails, i);
		if (i == 0)
			snprintf(res->identity, sizeof(res->identity), "%s", e);
		if (from != NULL && cms_addr_eq(e, from)) {
			snprintf(res->identity, sizeof(res->identity), "%s", e);
			found = 1;
			break;
		}
	}
	X509_email_free(emails);
	return from == NULL || found;
}

/* What the verify callback saw of revocation, for one chain. */
struct cms_rev {
	enum cms_revocation mode;
	int		 checked;       /* CRL_CHECK ran */
	int		 unknown;       /* certificates without a usable CRL */
	int		 revoked;       /* cms_cert_status: revoked ones */
	int		 ocsp;          /* decided by a cached OCSP answer */
	const struct cms_trust *trust;
	int		 stale;         /* CRLs past their nextUpdate, used */
	char		 first[96];     /* the first such certificate's name */
	struct cms_verify *res;         /* NULL, or where undecided links go */
	int		 leaf_ocsp;     /* the signer's status came from OCSP */
	char		 src[256];      /* where the signer's status came from */
};

/* The subject's CN (else the whole name) into buf. */
static void
cms_cert_name(X509 *x, char *buf, size_t len)
{
	X509_NAME *n = x != NULL ? X509_get_subject_name(x) : NULL;

	buf[0] = '\0';
	if (n == NULL)
		return;
	if (X509_NAME_get_text_by_NID(n, NID_commonName, buf,
	    (int)len) <= 0)
		X509_NAME_oneline(n, buf, (int)len);
}

/*
 * A certificate without a usable CRL: its cached OCSP answer, if any.
 * Good: the error is forgiven; revoked: it becomes "certificate revoked".
 */
static enum cms_ocsp
cms_ocsp_ask(X509_STORE_CTX *ctx, struct cms_rev *rv)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	int d = X509_STORE_CTX_get_error_depth(ctx);
	enum cms_ocsp r;
	X509 *x, *issuer;
	char src[256] = "";

	if (rv->trust == NULL || rv->trust->ocsp == NULL || chain == NULL ||
	    d < 0 || d + 1 >= sk_X509_num(chain))
		return CMS_OCSP_NONE;
	x = sk_X509_value(chain, d);
	issuer = sk_X509_value(chain, d + 1);
	r = rv->trust->ocsp(x, issuer, src, sizeof(src), rv->trust->ocsp_arg);
	if (d == 0 && r != CMS_OCSP_NONE) {
		rv->leaf_ocsp = 1;
		snprintf(rv->src, sizeof(rv->src), "%s", src);
	}
	if (r == CMS_OCSP_GOOD)
		rv->ocsp++;
	else if (r == CMS_OCSP_REVOKED) {
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_REVOKED);
		if (rv->revoked++ == 0)
			cms_cert_name(x, rv->first, sizeof(rv->first));
	}
	return r;
}

X509_CRL *
cms_crl_of(STACK_OF(X509_CRL) *crls, X509 *issuer)
{
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(issuer);
	AUTHORITY_KEYID *akid;
	X509_CRL *crl, *best = NULL;
	int i, same;

	for (i = 0; i < sk_X509_CRL_num(crls); i++) {
		crl = sk_X509_CRL_value(crls, i);
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl),
		    X509_get_subject_name(issuer)) != 0)
			continue;
		akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier,
		    NULL, NULL);
		same = akid == NULL || akid->keyid == NULL || skid == NULL ||
		    ASN1_OCTET_STRING_cmp(akid->keyid, skid) == 0;
		AUTHORITY_KEYID_free(akid);
		if (same && (best == NULL || ASN1_TIME_compare(
		    X509_CRL_get0_lastUpdate(crl),
		    X509_CRL_get0_lastUpdate(best)) > 0))
			best = crl;
	}
	ERR_clear_error();
	return best;
}

int
cms_at_anchor(X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	int d = X509_STORE_CTX_get_error_depth(ctx);

	return chain != NULL && d >= 0 && d == sk_X509_num(chain) - 1;
}

int
cms_crl_missing(int e)
{
	switch (e) {
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
		return 1;
	default:
		return 0;
	}
}

int
cms_ocsp_key(X509 *x, X509 *issuer, char hex[65])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	OCSP_CERTID *id;
	int len;

	hex[0] = '\0';
	if ((id = OCSP_cert_to_id(NULL, x, issuer)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	len = i2d_OCSP_CERTID(id, &der);
	OCSP_CERTID_free(id);
	if (len <= 0 || EVP_Digest(der, (size_t)len, md, &mdlen,
	    EVP_sha256(), NULL) != 1 || mdlen != 32) {
		OPENSSL_free(der);
		ERR_clear_error();
		return -1;
	}
	OPENSSL_free(der);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* The link the callback is at has no revocation answer: count it and
 * remember it (with its issuer) for the caller. */
static void
cms_undecided(X509_STORE_CTX *ctx, struct cms_rev *rv)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	X509 *x = X509_STORE_CTX_get_current_cert(ctx);
	int d = X509_STORE_CTX_get_error_depth(ctx);
	struct cms_verify *res = rv->res;
	struct cms_link *l;
	size_t i;

	if (rv->unknown++ == 0)
		cms_cert_name(x, rv->first, sizeof(rv->first));
	if (res == NULL || x == NULL)
		return;
	for (i = 0; i < res->nundecided; i++)
		if (X509_cmp(res->undecided[i].cert, x) == 0)
			return;
	if (res->nundecided == CMS_UNDECIDED_MAX)
		return;
	l = &res->undecided[res->nundecided++];
	l->cert = x;
	X509_up_ref(x);
	l->issuer = chain != NULL && d >= 0 && d + 1 < sk_X509_num(chain) ?
	    sk_X509_value(chain, d + 1) : NULL;
	if (l->issuer != NULL)
		X509_up_ref(l->issuer);
}

/*
 * X509_verify_cert's callback: in soft mode a certificate whose CRL is
 * missing or unusable passes and is counted; a CRL past its nextUpdate
 * still counts for what it revokes.  Anything else (revoked included)
 * stays an error.
 */
static int
cms_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	struct cms_rev *rv = X509_STORE_CTX_get_app_data(ctx);
	int e = X509_STORE_CTX_get_error(ctx);

	if (ok || rv == NULL)
		return ok;
	if (cms_crl_missing(e) && cms_at_anchor(ctx))
		return 1;
	if (cms_crl_missing(e)) {
		switch (cms_ocsp_ask(ctx, rv)) {
		case CMS_OCSP_GOOD:
			return 1;
		case CMS_OCSP_REVOKED:
			return 0;
		default:
			break;
		}
	}
	if (rv->mode == CMS_REV_SOFT && e == X509_V_ERR_CRL_HAS_EXPIRED) {
		rv->stale++;
		return 1;
	}
	/* hard: an unknown link is noted and the path checked on, so that
	 * a revoked link further up still says fail and every unknown link
	 * is known to a caller that fetches; cms_chain decides temperror */
	if (rv->mode == CMS_REV_SOFT ? !cms_crl_missing(e) :
	    rv->mode != CMS_REV_HARD || (e != X509_V_ERR_UNABLE_TO_GET_CRL &&
	    e != X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER))
		return ok;
	cms_undecided(ctx, rv);
	return 1;
}

/* Say how revocation was decided for the chain, into res: the signer's
 * source (OCSP responder, CRL URL) when known. */
static void
cms_rev_say(const struct cms_rev *rv, struct cms_verify *res)
{
	const char *how = rv->leaf_ocsp ? "OCSP" : rv->src[0] != '\0' ? "CRL" :
	    "imported CRL";

	if (rv->mode == CMS_REV_OFF || !rv->checked)
		res->revocation[0] = '\0';
	else if (rv->unknown > 0)
		snprintf(res->revocation, sizeof(res->revocation),
		    "revocation unknown: no usable CRL for %s%s", rv->first,
		    rv->unknown > 1 ? " and others" : "");
	else
		snprintf(res->revocation, sizeof(res->revocation),
		    "revocation: %s%s%.250s%s", how, rv->src[0] != '\0' ?
		    " from " : "", rv->src,
		    rv->stale ? ", past its nextUpdate" : "");
}

/* Where the CRL that decided the signer (depth 0) came from, into rv. */
static void
cms_rev_source(X509_STORE_CTX *ctx, const struct cms_trust *trust,
    struct cms_rev *rv)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	X509_CRL *crl;

	if (rv->leaf_ocsp || trust->crl_source == NULL || chain == NULL ||
	    sk_X509_num(chain) < 2 ||
	    (crl = cms_crl_of(trust->crls, sk_X509_value(chain, 1))) == NULL)
		return;
	trust->crl_source(crl, rv->src, sizeof(rv->src), trust->ocsp_arg);
}

/* The verification context for one signer, with RFC 5280 path processing
 * and revocation per trust->revocation; NULL on failure. */
static X509_STORE_CTX *
cms_chain_ctx(X509 *signer, STACK_OF(X509) *certs,
    const struct cms_trust *trust, struct cms_rev *rv)
{
	ASN1_OBJECT *anyp;
	X509_STORE_CTX *ctx;

	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, trust->store, signer, certs) ||
	    !X509_STORE_CTX_set_default(ctx, "smime_sign")) {
		X509_STORE_CTX_free(ctx);
		return NULL;
	}
	/*
	 * RFC 5280 path processing as NIST PKITS checks it: certificate
	 * policies (initial set anyPolicy, none required explicitly), indirect
	 * CRLs and CRLs signed by other keys, delta CRLs.  OpenSSL leaves all
	 * of these off unless asked.
	 */
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_POLICY_CHECK |
	    X509_V_FLAG_EXTENDED_CRL_SUPPORT | X509_V_FLAG_USE_DELTAS);
	if ((anyp = OBJ_nid2obj(NID_any_policy)) == NULL ||
	    X509_VERIFY_PARAM_add0_policy(X509_STORE_CTX_get0_param(ctx),
	    anyp) != 1) {
		X509_STORE_CTX_free(ctx);
		return NULL;
	}
	if (trust->revocation != CMS_REV_OFF) {
		if (trust->crls != NULL)
			X509_STORE_CTX_set0_crls(ctx, trust->crls);
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK |
		    X509_V_FLAG_CRL_CHECK_ALL);
		rv->checked = 1;
	}
	X509_STORE_CTX_set_app_data(ctx, rv);
	X509_STORE_CTX_set_verify_cb(ctx, cms_verify_cb);
	return ctx;
}

/* cms_cert_status's callback: go on past every error, noting revocation. */
static int
cms_status_cb(int ok, X509_STORE_CTX *ctx)
{
	struct cms_rev *rv = X509_STORE_CTX_get_app_data(ctx);
	int e = X509_STORE_CTX_get_error(ctx);

	if (ok || rv == NULL)
		return 1;
	if (e == X509_V_ERR_CERT_REVOKED) {
		if (rv->revoked++ == 0)
			cms_cert_name(X509_STORE_CTX_get_current_cert(ctx),
			    rv->first, sizeof(rv->first));
	} else if (cms_crl_missing(e) && !cms_at_anchor(ctx) &&
	    cms_ocsp_ask(ctx, rv) == CMS_OCSP_NONE)
		rv->unknown++;
	return 1;
}

enum cms_cert_status
cms_cert_status(X509 *x, const struct cms_trust *trust, char *why,
    size_t whylen)
{
	struct cms_rev rv;
	X509_STORE_CTX *ctx;

	memset(&rv, 0, sizeof(rv));
	rv.mode = trust->revocation;
	rv.trust = trust;
	snprintf(why, whylen, "%s", "");
	if (trust->revocation == CMS_REV_OFF)
		return CMS_CERT_GOOD;
	if ((ctx = cms_chain_ctx(x, trust->certs, trust, &rv)) == NULL) {
		snprintf(why, whylen, "cannot set up certificate verification");
		return CMS_CERT_UNDECIDED;
	}
	X509_STORE_CTX_set_verify_cb(ctx, cms_status_cb);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY);
	(void)X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	if (rv.revoked > 0) {
		snprintf(why, whylen, "certificate of %s revoked", rv.first);
		return CMS_CERT_REVOKED;
	}
	if (rv.unknown > 0 && trust->revocation == CMS_REV_HARD) {
		snprintf(why, whylen, "revocation unknown (revocation = hard)");
		return CMS_CERT_UNDECIDED;
	}
	return CMS_CERT_GOOD;
}

/*
 * The memo key of a chain check: SHA-256 over what decides it apart from
 * the time: the anchors and the CRLs by their objects and the memo's
 * generation (its owner forgets the verdicts when it replaces them; a
 * check begun before that cannot put a verdict a later check finds under
 * a reused address), how revocation is checked,
 * the signer and every certificate offered for the path, in order; 0 or
 * -1.
 */
static int
cms_chain_key(X509 *signer, STACK_OF(X509) *certs,
    const struct cms_trust *trust, unsigned char key[32])
{
	struct {
		const void	*store;
		uint64_t	 gen;
		int		 rev, ncrls, ocsp, ncerts;
	} k;
	int ncerts = sk_X509_num(certs), ncrls = sk_X509_CRL_num(trust->crls);
	unsigned char *buf, *p;
	X509_CRL *crl;
	size_t len;
	int i, r = -1;

	if (ncerts > CMS_CHAIN_CERTS_MAX || ncrls > CMS_CHAIN_CRLS_MAX)
		return -1;
	len = sizeof(k) + 32 * ((size_t)ncerts + 1) + sizeof(void *) *
	    (size_t)(ncrls > 0 ? ncrls : 0);
	if ((p = buf = malloc(len)) == NULL)
		return -1;
	memset(&k, 0, sizeof(k));
	k.store = trust->store;
	k.gen = cms_memo_gen(trust->memo);
	k.rev = (int)trust->revocation;
	k.ncrls = ncrls;
	k.ocsp = trust->ocsp != NULL;
	k.ncerts = ncerts;
	memcpy(p, &k, sizeof(k));
	p += sizeof(k);
	for (i = 0; i < ncrls; i++, p += sizeof(void *)) {
		crl = sk_X509_CRL_value(trust->crls, i);
		memcpy(p, &crl, sizeof(void *));
	}
	if (cms_memo_fp(trust->memo, signer, p) == -1)
		goto done;
	for (p += 32, i = 0; i < ncerts; i++, p += 32)
		if (cms_memo_fp(trust->memo, sk_X509_value(certs, i), p) == -1)
			goto done;
	r = cms_memo_digest(trust->memo, buf, len, key);
 done:
	free(buf);
	return r;
}

/* until, or the time t if earlier (now: t unreadable or past). */
static time_t
cms_until(time_t until, time_t now, const ASN1_TIME *t)
{
	int days, secs;

	if (t == NULL || !ASN1_TIME_diff(&days, &secs, NULL, t) ||
	    days < 0 || secs < 0)
		return now;
	if ((int64_t)days * 86400 + secs < (int64_t)(until - now))
		return now + (time_t)days * 86400 + secs;
	return until;
}

/* How long a chain that passed may be remembered: CMS_MEMO_TTL, cut at
 * the first notAfter of its path and the first nextUpdate of the CRLs. */
static time_t
cms_chain_until(X509_STORE_CTX *ctx, const struct cms_trust *trust)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	time_t now = time(NULL), until = now + CMS_MEMO_TTL;
	int i;

	if (chain == NULL)
		return now;
	for (i = 0; i < sk_X509_num(chain); i++)
		until = cms_until(until, now,
		    X509_get0_notAfter(sk_X509_value(chain, i)));
	for (i = 0; trust->revocation != CMS_REV_OFF &&
	    i < sk_X509_CRL_num(trust->crls); i++)
		until = cms_until(until, now, X509_CRL_get0_nextUpdate(
		    sk_X509_CRL_value(trust->crls, i)));
	return until;
}

/* Check one signer's chain for S/MIME signing; NULL or the reason, and
 * *temp when only revocation could not be decided (hard mode).  With a
 * memo, a chain that passed with every link's revocation decided is
 * remembered, and not checked again while that holds (cms_memo.c). */
static const char *
cms_chain(X509 *signer, STACK_OF(X509) *certs,
    const struct cms_trust *trust, struct cms_verify *res, int *temp)
{
	unsigned char key[32];
	struct cms_rev rv;
	X509_STORE_CTX *ctx;
	const char *reason = NULL;
	size_t nlinks = res->nundecided;	/* before this signer's */
	int e, memo;

	memo = trust->memo != NULL &&
	    cms_chain_key(signer, certs, trust, key) == 0;
	if (memo && cms_memo_chain_get(trust->memo, key, res->revocation,
	    sizeof(res->revocation), res->undecided, &res->nundecided) == 1)
		return NULL;
	ERR_clear_error();
	memset(&rv, 0, sizeof(rv));
	rv.mode = trust->revocation;
	rv.trust = trust;
	rv.res = res;
	if ((ctx = cms_chain_ctx(signer, certs, trust, &rv)) == NULL)
		return "cannot set up certificate verification";
	if (X509_verify_cert(ctx) <= 0) {
		e = X509_STORE_CTX_get_error(ctx);
		reason = e == X509_V_OK ? "certificate verification failed" :
		    X509_verify_cert_error_string(e);
	} else if (rv.mode == CMS_REV_HARD && rv.unknown > 0) {
		reason = X509_verify_cert_error_string(
		    X509_V_ERR_UNABLE_TO_GET_CRL);
		*temp = 1;
	}
	if (rv.unknown == 0)
		cms_rev_source(ctx, trust, &rv);
	cms_rev_say(&rv, res);
	if (memo && reason == NULL && rv.revoked == 0 && rv.stale == 0)
		cms_memo_chain_put(trust->memo, key, res->revocation,
		    res->undecided + nlinks, res->nundecided - nlinks,
		    cms_chain_until(ctx, trust));
	X509_STORE_CTX_free(ctx);
	return reason;
}

/* Back to the start of a memory or file BIO; 0 or -1. */
static int
cms_rewind(BIO *b)
{
	if (BIO_method_type(b) == BIO_TYPE_MEM)
		return BIO_reset(b) == 1 ? 0 : -1;
	return BIO_seek(b, 0) == 0 ? 0 : -1;
}

/* Signature algorithms a SignerInfo may name that OpenSSL checks for us. */
static const int cms_sig_nids[] = {
	NID_rsaEncryption, NID_rsassaPss, NID_sha1WithRSAEncryption,
	NID_sha224WithRSAEncryption, NID_sha256WithRSAEncryption,
	NID_sha384WithRSAEncryption, NID_sha512WithRSAEncryption,
	NID_X9_62_id_ecPublicKey, NID_ecdsa_with_SHA1, NID_ecdsa_with_SHA224,
	NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA384, NID_ecdsa_with_SHA512,
	NID_ecdsa_with_SHA3_256, NID_ecdsa_with_SHA3_384,
	NID_ecdsa_with_SHA3_512, NID_RSA_SHA3_256, NID_RSA_SHA3_384,
	NID_RSA_SHA3_512, NID_sha1WithRSA, NID_md5WithRSAEncryption,
	NID_dsa, NID_dsa_2, NID_dsaWithSHA1, NID_dsaWithSHA1_2,
	NID_dsa_with_SHA224, NID_dsa_with_SHA256, NID_dsa_with_SHA384,
	NID_dsa_with_SHA512, NID_ED25519, NID_ED448,
};

/* The digests of nearly every signature, and whether this OpenSSL's
 * providers have them (fetched once, not per message). */
static const int cms_md_nids[] = {
	NID_sha256, NID_sha384, NID_sha512, NID_sha1, NID_sha224
};
static int cms_md_have[sizeof(cms_md_nids) / sizeof(cms_md_nids[0])];
static CRYPTO_ONCE cms_md_once = CRYPTO_ONCE_STATIC_INIT;

/* Fill cms_md_have. */
static void
cms_md_init(void)
{
	EVP_MD *md;
	size_t k;

	for (k = 0; k < sizeof(cms_md_nids) / sizeof(cms_md_nids[0]); k++)
		if ((md = EVP_MD_fetch(NULL, OBJ_nid2sn(cms_md_nids[k]),
		    NULL)) != NULL) {
			cms_md_have[k] = 1;
			EVP_MD_free(md);
		}
	ERR_clear_error();
}

/* Whether nid is one of cms_md_nids that the providers have. */
static int
cms_md_common(int nid)
{
	size_t k;

	if (!CRYPTO_THREAD_run_once(&cms_md_once, cms_md_init))
		return 0;
	for (k = 0; k < sizeof(cms_md_nids) / sizeof(cms_md_nids[0]); k++)
		if (cms_md_nids[k] == nid)
			return cms_md_have[k];
	return 0;
}

/*
 * Whether every SignerInfo names a digest and a signature algorithm we can
 * check; 0, or -1 with "unsupported ... algorithm OID" in buf.
 */
static int
cms_algs_known(CMS_ContentInfo *cms, char *buf, size_t len)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	X509_ALGOR *dig, *sig;
	EVP_MD *md;
	char oid[80];
	size_t k;
	int i, nid;

	for (i = 0; i < sk_CMS_SignerInfo_num(sis); i++) {
		CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(sis, i), NULL,
		    NULL, &dig, &sig);
		nid = OBJ_obj2nid(dig->algorithm);
		if (!cms_md_common(nid)) {
			OBJ_obj2txt(oid, sizeof(oid), dig->algorithm, 1);
			if ((md = EVP_MD_fetch(NULL, oid, NULL)) == NULL) {
				snprintf(buf, len, "unsupported digest "
				    "algorithm %s", oid);
				return -1;
			}
			EVP_MD_free(md);
		}
		nid = OBJ_obj2nid(sig->algorithm);
		for (k = 0; k < sizeof(cms_sig_nids) / sizeof(cms_sig_nids[0]);
		    k++)
			if (cms_sig_nids[k] == nid)
				break;
		if (k == sizeof(cms_sig_nids) / sizeof(cms_sig_nids[0])) {
			OBJ_obj2txt(oid, sizeof(oid), sig->algorithm, 1);
			snprintf(buf, len, "unsupported signature algorithm "
			    "%s", oid);
			return -1;
		}
	}
	ERR_clear_error();
	return 0;
}

/*
 * Whether the error queue says an algorithm could not be used (not that a
 * signature did not match).  A signature made with another key fails in
 * the key's own arithmetic (RSA padding, say), which the provider passes
 * on as "RSA lib": that is a mismatch, whatever else the queue holds, or
 * a forged signature would read as neutral rather than fail.
 */
static int
cms_alg_error(void)
{
	unsigned long e;
	int alg = 0, math = 0, lib, why;

	while ((e = ERR_get_error()) != 0) {
		lib = ERR_GET_LIB(e);
		why = ERR_GET_REASON(e);
		if (lib == ERR_LIB_RSA || lib == ERR_LIB_EC ||
		    lib == ERR_LIB_DSA || (lib == ERR_LIB_PROV &&
		    (why == ERR_R_RSA_LIB || why == ERR_R_EC_LIB ||
		    why == ERR_R_DSA_LIB)))
			math = 1;
		else if (lib == ERR_LIB_PROV ||
		    (lib == ERR_LIB_EVP && why == ERR_R_UNSUPPORTED) ||
		    (lib == ERR_LIB_CMS &&
		    (why == CMS_R_UNKNOWN_DIGEST_ALGORITHM ||
		    why == CMS_R_UNSUPPORTED_TYPE ||
		    why == CMS_R_NO_DEFAULT_DIGEST)))
			alg = 1;
	}
	return alg && !math;
}

/*
 * Whether the digests of the SignedData's digestAlgorithms can be set up.
 * OpenSSL 3.0's CMS_verify() leaks the copy it makes of a memory BIO's
 * data when they cannot (CMS_dataInit fails after it made the copy): a
 * sender's bogus digestAlgorithms would cost memory on every message.
 */
static int
cms_digests_ok(CMS_ContentInfo *cms)
{
	BIO *n, *b;

	if ((n = BIO_new(BIO_s_null())) == NULL)
		return 0;
	if ((b = CMS_dataInit(cms, n)) == NULL) {
		BIO_free(n);
		ERR_clear_error();
		return 0;
	}
	BIO_free_all(b);
	return 1;
}

/*
 * The signature itself: digest and signer key, no chain yet.  0 good, -1
 * bad (*why says how), -2 made with an algorithm we cannot check (*why
 * names it, in alg).
 */
static int
cms_check_sig(CMS_ContentInfo *cms, BIO *content, STACK_OF(X509) *known,
    BIO *out, int detached, const char **why, char *alg, size_t alglen)
{
	unsigned flags = CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY;
	unsigned long e;

	if (cms_algs_known(cms, alg, alglen) == -1) {
		*why = alg;
		return -2;
	}
	if (detached && !cms_digests_ok(cms)) {
		snprintf(alg, alglen, "digest algorithm not supported by this "
		    "OpenSSL");
		*why = alg;
		return -2;
	}
	if (CMS_verify(cms, known, NULL, detached ? content : NULL, out,
	    flags) == 1)
		return 0;
	e = ERR_peek_last_error();
	*why = ERR_GET_REASON(e) == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND ?
	    "signer certificate not found" : "signature mismatch";
	if (ERR_GET_REASON(e) != CMS_R_SIGNER_CERTIFICATE_NOT_FOUND &&
	    cms_alg_error()) {
		snprintf(alg, alglen, "signature algorithm not supported by "
		    "this OpenSSL");
		*why = alg;
		return -2;
	}
	/* A stored message may have lost its CRLFs: try canonical form. */
	if (detached && cms_rewind(content) == 0) {
		ERR_clear_error();
		if (CMS_verify(cms, known, NULL, content, NULL,
		    flags & ~CMS_BINARY) == 1)
			return 0;
	}
	ERR_clear_error();
	return -1;
}

/* Certificates of the message followed by the known ones, not owned. */
static STACK_OF(X509) *
cms_untrusted(STACK_OF(X509) *a, STACK_OF(X509) *b)
{
	STACK_OF(X509) *sk;
	int i;

	if ((sk = sk_X509_new_null()) == NULL)
		return NULL;
	for (i = 0; i < sk_X509_num(a); i++)
		sk_X509_push(sk, sk_X509_value(a, i));
	for (i = 0; i < sk_X509_num(b); i++)
		sk_X509_push(sk, sk_X509_value(b, i));
	return sk;
}

/* The certificates of a SignedData's [0] set (its header just read): each
 * from the memo by its DER at `p` + its offset, pushed to certs; -1 on
 * anything but a plain Certificate. */
static int
cms_sd_certs(struct ber *b, const struct ber_hdr *h, const unsigned char *p,
    struct cms_memo *memo, STACK_OF(X509) *certs)
{
	struct ber_hdr c;
	uint64_t start;
	X509 *x;
	int r;

	if (ber_push(b, h) == -1)
		return -1;
	while ((r = ber_next(b, &c)) == 1) {
		if (!ber_is(&c, BER_UNIV, BER_SEQUENCE, 1) || c.indef ||
		    sk_X509_num(certs) >= CMS_SD_CERTS_MAX)
			return -1;
		start = b->pos - c.rawlen;
		if (ber_take(b, NULL, c.len, NULL) == -1 ||
		    (x = cms_memo_cert(memo, p + start, c.rawlen + c.len)) ==
		    NULL)
			return -1;
		if (sk_X509_push(certs, x) <= 0) {
			X509_free(x);
			return -1;
		}
	}
	return r;
}

/*
 * A SignedData from a memory BIO, its certificates taken from the memo
 * (parsed once for every message that carries them) rather than parsed
 * with the rest: the ContentInfo is copied without its [0] certificates,
 * the three outer levels re-encoded with indefinite lengths, parsed, and
 * the certificates added back in their order.  NULL when anything is
 * unusual (not in memory, over BER_MAX_HEAD, not SignedData, another
 * kind of certificate choice, malformed): d2i_CMS_bio decides then.
 */
static CMS_ContentInfo *
cms_sd_read(BIO *der, struct cms_memo *memo)
{
	static const unsigned char open[] = { 0xa0, 0x80, 0x30, 0x80 };
	STACK_OF(X509) *certs = NULL;
	CMS_ContentInfo *cms = NULL;
	const unsigned char *q;
	struct ber *b = NULL;
	struct ber_hdr h;
	BUF_MEM *m = NULL;
	BIO *in = NULL;
	char *data;
	long n;
	int nid, r, i;

	if (memo == NULL || BIO_method_type(der) != BIO_TYPE_MEM ||
	    (n = BIO_get_mem_data(der, &data)) <= 0 || n > BER_MAX_HEAD ||
	    (m = BUF_MEM_new()) == NULL ||
	    (certs = sk_X509_new_null()) == NULL ||
	    (in = BIO_new_mem_buf(data, (int)n)) == NULL ||
	    (b = ber_new(in, sizeof(*b))) == NULL)
		goto done;
	if (ber_content_type(b, m, &nid) == -1 || nid != NID_pkcs7_signed ||
	    ber_next(b, &h) != 1 || !ber_is(&h, BER_CTX, 0, 1) ||
	    ber_push(b, &h) == -1 || ber_next(b, &h) != 1 ||
	    !ber_is(&h, BER_UNIV, BER_SEQUENCE, 1) || ber_push(b, &h) == -1 ||
	    ber_put(m, open, sizeof(open)) == -1)
		goto done;
	while ((r = ber_next(b, &h)) == 1)
		if (ber_is(&h, BER_CTX, 0, 1) ? cms_sd_certs(b, &h,
		    (const unsigned char *)data, memo, certs) == -1 :
		    ber_copy(b, &h, m) == -1)
			goto done;
	if (r == -1 || ber_next(b, &h) != 0 || ber_next(b, &h) != 0 ||
	    ber_put(m, "\0\0\0\0\0\0", 6) == -1)
		goto done;
	q = (const unsigned char *)m->data;
	if ((cms = d2i_CMS_ContentInfo(NULL, &q, (long)m->length)) == NULL)
		goto done;
	for (i = 0; i < sk_X509_num(certs); i++)
		if (CMS_add1_cert(cms, sk_X509_value(certs, i)) != 1 &&
		    ERR_GET_REASON(ERR_peek_last_error()) !=
		    CMS_R_CERTIFICATE_ALREADY_PRESENT) {
			CMS_ContentInfo_free(cms);
			cms = NULL;
			break;
		}
 done:
	BIO_free(in);
	free(b);
	BUF_MEM_free(m);
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return cms;
}

/* The rest once the signatures are good: every signer's chain, and the
 * first signer's From address (the result names the first). */
static void
cms_signers_check(STACK_OF(X509) *signers, STACK_OF(X509) *known,
    const struct cms_trust *trust, const char *from, struct cms_verify *res)
{
	STACK_OF(X509) *untrusted;
	const char *why = NULL;
	int i, temp = 0;

	if ((untrusted = cms_untrusted(res->certs, known)) == NULL) {
		cms_result(res, SMIME_FAIL, "signer certificate not found");
		return;
	}
	res->signer = sk_X509_value(signers, 0);
	X509_up_ref(res->signer);
	for (i = 0; i < sk_X509_num(signers) && why == NULL; i++)
		why = cms_chain(sk_X509_value(signers, i), untrusted, trust,
		    res, &temp);
	sk_X509_free(untrusted);
	if (why != NULL)
		cms_result(res, temp ? SMIME_TEMPERROR : SMIME_FAIL, why);
	else if (!cms_match_from(res->signer, from, res))
		cms_result(res, SMIME_POLICY,
		    "signer certificate does not carry the From address");
	else
		cms_result(res, SMIME_PASS, "");
}

/*
 * The common shape through cms_fast.c: 1 when it decided (res filled), 0
 * when the usual way must (res untouched, content at its start).
 */
static int
cms_verify_fast(BIO *content, BIO *der, const struct cms_trust *trust,
    const char *from, BIO *out, struct cms_verify *res)
{
	STACK_OF(X509) *signers;
	struct cms_sd_fast f;
	char *data;
	long n;
	int r;

	if (content == NULL || out != NULL || trust->memo == NULL ||
	    BIO_method_type(der) != BIO_TYPE_MEM ||
	    (n = BIO_get_mem_data(der, &data)) <= 0)
		return 0;
	r = cms_sd_fast((const unsigned char *)data, (size_t)n, content,
	    trust->certs, trust->memo, &f);
	if (r == -1) {
		cms_result(res, SMIME_FAIL, "signature mismatch");
		return 1;
	}
	if (r == 0)
		return 0;
	res->certs = f.certs;
	res->caps = f.caps;
	res->has_caps = f.has_caps;
	if ((signers = sk_X509_new_null()) == NULL ||
	    sk_X509_push(signers, f.signer) <= 0)
		cms_result(res, SMIME_FAIL, "out of memory");
	else
		cms_signers_check(signers, trust->certs, trust, from, res);
	sk_X509_free(signers);
	return 1;
}

/* Verify a detached or opaque signature, its signers and the From address. */
enum cms_outcome
cms_verify(BIO *content, BIO *der, const struct cms_trust *trust,
    const char *from, BIO *out, struct cms_verify *res)
{
	STACK_OF(CMS_SignerInfo) *sis;
	STACK_OF(X509) *signers = NULL;
	CMS_ContentInfo *cms;
	const char *why = NULL;
	char alg[128];
	int detached, r;

	memset(res, 0, sizeof(*res));
	ERR_clear_error();
	if (cms_verify_fast(content, der, trust, from, out, res))
		goto done;
	if ((cms = cms_sd_read(der, trust->memo)) == NULL &&
	    (cms = d2i_CMS_bio(der, NULL)) == NULL)
		return cms_result(res, SMIME_PERMERROR,
		    "malformed CMS structure");
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		CMS_ContentInfo_free(cms);
		return cms_result(res, SMIME_PERMERROR, "not signed data");
	}
	detached = CMS_is_detached(cms);
	sis = CMS_get0_SignerInfos(cms);
	res->certs = CMS_get1_certs(cms);
	if (detached && content == NULL)
		cms_result(res, SMIME_PERMERROR, "signed content missing");
	else if (sk_CMS_SignerInfo_num(sis) < 1)
		cms_result(res, SMIME_PERMERROR, "no signer");
	else if ((r = cms_check_sig(cms, content, trust->certs, out,
	    detached, &why, alg, sizeof(alg))) != 0)
		cms_result(res, r == -2 ? SMIME_NEUTRAL : SMIME_FAIL, why);
	else if ((signers = CMS_get0_signers(cms)) == NULL ||
	    sk_X509_num(signers) < 1)
		cms_result(res, SMIME_FAIL, "signer certificate not found");
	else {
		cms_get_caps(sk_CMS_SignerInfo_value(sis, 0), res);
		cms_signers_check(signers, trust->certs, trust, from, res);
	}
	sk_X509_free(signers);
	CMS_ContentInfo_free(cms);
 done:
	if (res->identity[0] == '\0' && res->signer != NULL)
		cms_match_from(res->signer, NULL, res);
	return res->outcome;
}

/* Release what cms_verify() kept. */
void
cms_verify_free(struct cms_verify *res)
{
	X509_free(res->signer);
	sk_X509_pop_free(res->certs, X509_free);
	res->signer = NULL;
	res->certs = NULL;
	cms_links_free(res->undecided, &res->nundecided);
}

/* RFC 7281 result keyword. */
const char *
cms_outcome_name(enum cms_outcome o)
{
	switch (o) {
	case SMIME_PASS:
		return "pass";
	case SMIME_FAIL:
		return "fail";
	case SMIME_POLICY:
		return "policy";
	case SMIME_PERMERROR:
		return "permerror";
	case SMIME_NEUTRAL:
		return "neutral";
	case SMIME_TEMPERROR:
		return "temperror";
	case SMIME_NONE:
	default:
		return "none";
	}
}

/* Format the Authentication-Results header, the reason as a comment. */
int
cms_auth_results(char *buf, size_t len, const char *host,
    const struct cms_verify *res)
{
	char text[sizeof(res->reason) + sizeof(res->revocation) + 2];
	char comment[sizeof(text) + 3] = "", id[300] = "";
	const char *why = res->outcome != SMIME_PASS ? res->reason : "";
	size_t i, n;

	snprintf(text, sizeof(text), "%s%s%s", why, *why != '\0' &&
	    res->revocation[0] != '\0' ? "; " : "", res->revocation);
	if (text[0] != '\0') {
		/* A comment may not hold unbalanced parentheses, backslashes
		 * or control characters (RFC 5322 3.2.2). */
		n = 0;
		comment[n++] = ' ';
		comment[n++] = '(';
		for (i = 0; text[i] != '\0'; i++) {
			unsigned char c = (unsigned char)text[i];
			comment[n++] = (c < 0x20 || c > 0x7e || c == '(' ||
			    c == ')' || c == '\\') ? ' ' : (char)c;
		}
		comment[n++] = ')';
		comment[n] = '\0';
	}
	if (res->identity[0] != '\0' && strpbrk(res->identity,
	    " \t\r\n\"();\\") == NULL)
		snprintf(id, sizeof(id), " body.smime-identifier=%s",
		    res->identity);
	return snprintf(buf, len, "Authentication-Results: %s; smime=%s%s%s",
	    host, cms_outcome_name(res->outcome), comment, id);
}
