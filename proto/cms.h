/* cms.h: the CMS engine for S/MIME (RFC 8551, 5652, 5083/5084): sign,
 * encrypt, decrypt and verify one MIME entity with OpenSSL 3, in-process.
 *
 * Inputs and outputs are BIOs so a large entity is streamed, not copied:
 * wrap memory with BIO_new_mem_buf() (no copy), a file with BIO_new_file().
 * The entity given to sign/encrypt must already be canonical (CRLF line
 * ends, 7bit-safe transfer encodings): it is signed byte for byte.  Outputs
 * are a MIME entity: its Content-* header lines, an empty line and the body,
 * CRLF throughout; the caller adds the outer (RFC 5322) headers and
 * MIME-Version.  Error texts are one line, suitable for logs and replies.
 * Call cms_init() once from the main thread before the first use: it
 * creates the BIO methods the engine shares (otherwise created on first
 * use, guarded by CRYPTO_THREAD_run_once).  After that the functions may
 * be called from several threads at once, on different objects. */
#ifndef SMRELAY_CMS_H
#define SMRELAY_CMS_H

#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <time.h>

/* Options for cms_sign() and cms_encrypt(). */
#define SMIME_OPT_OPAQUE  0x01	/* sign: application/pkcs7-mime signed-data */
#define SMIME_OPT_PSS     0x02	/* sign: RSASSA-PSS (SHA-256, MGF1, salt 32) */
#define SMIME_OPT_GCM     0x04	/* encrypt: AES-256-GCM AuthEnvelopedData */
#define SMIME_OPT_OAEP    0x08	/* encrypt: RSAES-OAEP (SHA-256) for RSA keys */

/* Content ciphers found in a signer's SMIMECapabilities attribute. */
#define SMIME_CAP_AES256_GCM  0x01
#define SMIME_CAP_AES128_GCM  0x02
#define SMIME_CAP_AES256_CBC  0x04
#define SMIME_CAP_AES192_CBC  0x08
#define SMIME_CAP_AES128_CBC  0x10
#define SMIME_CAP_DES3_CBC    0x20

/* Outcomes of cms_verify(), named as in RFC 7281 (see SPEC.md). */
enum cms_outcome {
	SMIME_NONE = 0,		/* not signed */
	SMIME_PASS,		/* signature, chain and From address good */
	SMIME_FAIL,		/* bad signature, untrusted/revoked/expired signer */
	SMIME_POLICY,		/* valid, but the signer lacks the From address */
	SMIME_PERMERROR,	/* malformed */
	SMIME_NEUTRAL,		/* signed with an algorithm we cannot check */
	SMIME_TEMPERROR		/* revocation could not be decided (hard) */
};

/* A cached OCSP answer (cms_trust.ocsp). */
enum cms_ocsp {
	CMS_OCSP_NONE = 0,	/* no usable answer */
	CMS_OCSP_GOOD,
	CMS_OCSP_REVOKED
};

/* How a chain's revocation is checked (config `revocation`). */
enum cms_revocation {
	CMS_REV_SOFT = 0,	/* against the CRLs there are; a certificate
				 * without one passes, and the result says so */
	CMS_REV_HARD,		/* a certificate without a CRL: temperror */
	CMS_REV_OFF		/* not checked */
};

/* One of our identities, a candidate for decryption. */
struct cms_identity {
	X509		*cert;
	EVP_PKEY	*key;
};

struct cms_memo;

/* What a signature is checked against; built by the caller (store/). */
struct cms_trust {
	X509_STORE		*store;	/* trust anchors */
	STACK_OF(X509_CRL)	*crls;	/* NULL or empty: none to check with */
	STACK_OF(X509)		*certs;	/* NULL, or known certificates (the
					 * cache) for signatures carrying none */
	enum cms_revocation	 revocation;
	/* NULL, or the cached OCSP answer for x (issued by issuer): where a
	 * certificate has no CRL, an OCSP answer decides */
	enum cms_ocsp		 (*ocsp)(X509 *x, X509 *issuer, char *src,
				    size_t srclen, void *arg);
	void			*ocsp_arg;
	/* NULL, or where crl came from into buf: its URL, or "" when it
	 * was imported (arg: ocsp_arg), for the result's comment */
	void			 (*crl_source)(X509_CRL *crl, char *buf,
				    size_t len, void *arg);
	/* NULL, or where certificates parsed from messages and the verdicts
	 * of chain validation are remembered (cms_memo.c); its owner calls
	 * cms_memo_forget_chains() whenever anything above changes */
	struct cms_memo		*memo;
};

/* A link of a path whose revocation no CRL or OCSP answer decided: the
 * certificate and its issuer (NULL when the path ends at it). */
struct cms_link {
	X509		*cert, *issuer;	/* owned */
};
#define CMS_UNDECIDED_MAX	4	/* links remembered per verification */

/* What cms_verify() found; release with cms_verify_free(). */
struct cms_verify {
	enum cms_outcome outcome;
	char		 reason[256];	/* "" on pass, else e.g. "certificate revoked" */
	char		 revocation[320]; /* how revocation was decided, e.g.
					 * "revocation: CRL from URL"; "" when
					 * off */
	char		 identity[256];	/* signer e-mail: the one matching From,
					 * else the first in the certificate */
	X509		*signer;	/* owned; the first signer, for harvesting */
	STACK_OF(X509)	*certs;		/* owned; every certificate in the message */
	unsigned	 caps;		/* SMIME_CAP_* the signer announced */
	int		 has_caps;	/* the SMIMECapabilities attribute was there */
	/* the links whose revocation stayed unknown (soft: passed with a
	 * comment; hard: temperror), for a caller that can fetch and retry */
	struct cms_link	 undecided[CMS_UNDECIDED_MAX];
	size_t		 nundecided;
};

/* What cms_cert_status() decided about a certificate to encrypt to. */
enum cms_cert_status {
	CMS_CERT_GOOD = 0,	/* not revoked (or not checked: off; soft and
				 * no CRL) */
	CMS_CERT_REVOKED,	/* it or a CA above it is revoked */
	CMS_CERT_UNDECIDED	/* hard mode and a CRL missing */
};

/* cms.c */
/* Create the engine's shared state (its BIO methods); once, at start-up. */
void cms_init(void);
/*
 * Sign the entity read from `in`.  Writes to `out` a multipart/signed entity
 * (detached, micalg=sha-256) or, with SMIME_OPT_OPAQUE, an
 * application/pkcs7-mime signed-data one.  The signature is SHA-256 with
 * PKCS#1 v1.5 for RSA keys (RSA-PSS with SMIME_OPT_PSS), ECDSA for EC keys,
 * carries `cert`, `chain` (may be NULL), signingTime and SMIMECapabilities.
 * The digest is computed while the entity is copied to `out`.  Returns 0,
 * or -1 with `err` set.
 */
int cms_sign(BIO *in, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
    int opts, BIO *out, char *err, size_t errlen);
/*
 * Encrypt the entity read from `in` for every certificate in `to` (one
 * envelope).  AES-256-CBC EnvelopedData by default, AES-256-GCM
 * AuthEnvelopedData with SMIME_OPT_GCM; RSA keys get PKCS#1 v1.5 key
 * transport (OAEP with SMIME_OPT_OAEP), EC keys ECDH key agreement.  Writes
 * an application/pkcs7-mime entity (base64, streamed BER).  Returns 0, or
 * -1 with `err` set.
 */
int cms_encrypt(BIO *in, STACK_OF(X509) *to, int opts, BIO *out,
    char *err, size_t errlen);
/*
 * Decrypt the CMS (DER/BER, already base64-decoded) read from `der` with
 * the first of `ids` that matches a RecipientInfo, writing the inner entity
 * to `out`.  `der` is read once, front to back, and the content streamed:
 * memory stays bounded whatever the size (the envelope without its content
 * may take up to 4 MB).  Returns the index of the identity used, or -1 with
 * `err` set (e.g. "no private key matches any recipient (recipients:
 * ...)"); on -1, whatever was written to `out` must be discarded (for
 * AuthEnvelopedData the GCM tag is only checked at the end).
 */
int cms_decrypt(BIO *der, const struct cms_identity *ids, size_t nids,
    BIO *out, char *err, size_t errlen);
/*
 * Opaque signed-data read from `der` (DER/BER, base64-decoded), front to
 * back once: the signed content's bytes to `content`, and the SignedData
 * without them in *sig (malloc'd, *siglen bytes, at most 4 MB): a detached
 * signature over what went to `content`, for cms_verify().  Memory stays
 * bounded whatever the content's size.  0; 1 when it is another content
 * type (err names it); -1 with err when malformed, truncated or over the
 * bounds (nesting, the parts other than the content), or when `content`
 * could not be written.  What went to `content` is only to be used once
 * cms_verify() passed.
 */
/*
 * The content type (NID) of the CMS object read from `der` (DER/BER,
 * base64-decoded), once its whole structure parsed as d2i would parse it,
 * read front to back once in bounded memory: the bytes of big OCTET
 * STRINGs (content, encrypted content) are passed over, everything else
 * is parsed.  NID_undef with err set when it is malformed, truncated or
 * over the bounds.  _keep: the size of the subtrees kept whole (the plain
 * one keeps 64 KiB; fuzzers use small ones).
 */
int cms_structure_nid(BIO *der, char *err, size_t errlen);
int cms_structure_nid_keep(BIO *der, size_t keep, char *err, size_t errlen);
int cms_opaque_split(BIO *der, BIO *content, unsigned char **sig,
    size_t *siglen, char *err, size_t errlen);
/*
 * Verify a signature.  Detached: `content` is the first part of the
 * multipart/signed exactly as transmitted and `der` the decoded
 * application/pkcs7-signature; opaque: `content` is NULL.  The signed
 * entity is written to `out` (may be NULL; for detached signatures it is
 * a copy of `content`), to be used only when the outcome is PASS or
 * POLICY.  If `content` fails byte for
 * byte and can be rewound (memory or file BIO), it is tried once more with
 * bare LF line ends canonicalised.  The signer chain is checked against
 * trust->store for S/MIME signing (key usage, emailProtection, validity
 * now); with CRLs, every certificate of the chain must have a valid CRL
 * (X509_V_FLAG_CRL_CHECK_ALL).  A non-NULL `from` must be one of the
 * signer's e-mail addresses (SAN rfc822Name or subject emailAddress; local
 * part exact, domain case-insensitive) or the result is SMIME_POLICY.
 * Fills `res` and returns res->outcome (never SMIME_NONE: deciding that a
 * message is not signed is the MIME layer's job).
 */
enum cms_outcome cms_verify(BIO *content, BIO *der,
    const struct cms_trust *trust, const char *from, BIO *out,
    struct cms_verify *res);
void cms_verify_free(struct cms_verify *);
/* "pass", "fail", "policy", "none", "permerror". */
const char *cms_outcome_name(enum cms_outcome);
/*
 * Format "Authentication-Results: HOST; smime=RESULT [(reason)]
 * [body.smime-identifier=ADDR]" (RFC 8601, RFC 7281) without the CRLF,
 * into `buf`.  Returns the length it needed, as snprintf does.
 */
/* The key an OCSP answer about x (issued by issuer) is stored under: hex
 * SHA-256 of the DER of its OCSP CertID (SHA-1 hashes, as responders
 * expect); -1 if it cannot be made. */
int cms_ocsp_key(X509 *x, X509 *issuer, char hex[65]);
/* Whether the verification error e (X509_V_ERR_*) says a certificate's CRL
 * is missing or unusable, so that an OCSP answer or `revocation` decides. */
int cms_crl_missing(int e);
/* The CRL among crls that x's issuer signed for it (by issuer name and
 * key identifier; the latest), not a new reference; NULL if none. */
X509_CRL *cms_crl_of(STACK_OF(X509_CRL) *crls, X509 *issuer);
/* Whether the verify callback is at the top of the path, a trust anchor:
 * RFC 5280 6.1 does not check an anchor's revocation (OpenSSL asks for a
 * CRL of the root too), so its missing CRL is no unknown link. */
int cms_at_anchor(X509_STORE_CTX *ctx);

/*
 * Whether we may encrypt to x: its chain (through trust->certs) checked
 * against trust->crls per trust->revocation; problems other than
 * revocation do not count here.  The reason in why when not good.
 */
enum cms_cert_status cms_cert_status(X509 *x, const struct cms_trust *,
    char *why, size_t whylen);
int cms_auth_results(char *buf, size_t len, const char *host,
    const struct cms_verify *);

/* cms_memo.c */
/*
 * What cms_verify() remembers between messages when cms_trust.memo is set:
 * certificates by the SHA-256 of their DER (parsed once: OpenSSL 3 decodes
 * every public key through its provider decoders, a third of the cost of
 * a small signed message), and each validated chain's verdict, keyed by
 * the signer, the certificates offered for the path, the trust anchors
 * and the revocation settings.  Only a chain that passed is remembered
 * (with how its revocation went: in soft mode a link may have stayed
 * unknown; a stale CRL is not remembered), until the earliest of: CMS_MEMO_TTL
 * seconds, a certificate of the path expiring, a CRL used reaching its
 * nextUpdate.  The owner must call cms_memo_forget_chains() when the
 * anchors, the CRLs or the OCSP answers change (a revoked certificate is
 * then checked again).  Bounded: least recently used entries go first.
 */
#define CMS_MEMO_TTL		60
#define CMS_MEMO_CERTS		1024	/* defaults for cms_memo_new() */
#define CMS_MEMO_CHAINS		1024
struct cms_memo *cms_memo_new(size_t maxcerts, size_t maxchains);
void cms_memo_free(struct cms_memo *);
/* Forget every chain verdict (the trust changed), and the fingerprints
 * of the objects it held; parsed certificates stay. */
void cms_memo_forget_chains(struct cms_memo *);
/* How many times cms_memo_forget_chains ran (part of every chain key). */
uint64_t cms_memo_gen(struct cms_memo *);
/* Release n links (n becomes 0). */
void cms_links_free(struct cms_link *, size_t *n);
/* A certificate from its DER: the remembered one, or parsed and
 * remembered; a new reference, NULL if it does not parse whole. */
X509 *cms_memo_cert(struct cms_memo *, const unsigned char *der, size_t len);
/* SHA-256 with the memo's prefetched digest; 0 or -1. */
int cms_memo_digest(struct cms_memo *, const void *p, size_t n,
    unsigned char key[32]);

/* cms_fast.c */
#define CMS_SD_CERTS_MAX 64		/* certificates read through the memo */
/* What cms_sd_fast() found: the message's certificates (from the memo,
 * owned) and the signer among them or the known ones (not owned). */
struct cms_sd_fast {
	STACK_OF(X509)	*certs;
	X509		*signer;
	unsigned	 caps;		/* SMIME_CAP_* */
	int		 has_caps;
};
/*
 * The common detached SignedData (DER, one SignerInfo, SHA-2, signed
 * attributes, RSA or ECDSA) checked without building OpenSSL's CMS
 * object: 1 when the signature is good (f filled); 0 when not handled or
 * not good (f empty, content back at its start: the caller decides the
 * usual way); -1 when the content was read and cannot be rewound.
 */
int cms_sd_fast(const unsigned char *der, size_t len, BIO *content,
    STACK_OF(X509) *known, struct cms_memo *memo, struct cms_sd_fast *f);
/* The ciphers our signatures announce in SMIMECapabilities, strongest
 * first (RFC 8551 2.5.2). */
extern const int cms_caps_ours[5];
/* The SMIME_CAP_* bit of a cipher's NID, 0 for others. */
unsigned cms_cap_bit(int nid);
/* Fill err with `what` and the last OpenSSL reason ("what: reason"),
 * clearing the queue (cms_fast.c; cms.c uses it too). */
void cms_err(char *err, size_t errlen, const char *what);
/* What cms_env_fast() found: the identity whose key opened the envelope,
 * the content cipher, its key and IV (nonce). */
struct cms_env_fast {
	size_t		 id;
	const EVP_CIPHER *cipher;
	unsigned char	 key[32], iv[16];
	size_t		 keylen, ivlen;
	int		 gcm;
	int		 rejected;	/* key did not unwrap: random key */
	EVP_CIPHER	*owned;		/* cipher fetched for this one */
	char		 cipher_name[64];	/* -1: the one we cannot use */
};
/* The decryption context parameter (unsigned int) by which cms_env_fast()
 * tells a key's provider the content key's length, so a provider that can
 * (the key process's, daemon/keyd/keyd_pkey.c) answers a bad padding with
 * a stand-in of that length instead of an error; others ignore it. */
#define CMS_PARAM_UNWRAP_KEYLEN	"smrelay-unwrap-keylen"
/*
 * The common envelope (RSA PKCS#1 v1.5 key transport to an identity named
 * by issuer and serial or key id; a CBC cipher, or AES-GCM), from its
 * header as cms_decrypt() rebuilt it: 1 when a RecipientInfo names one of
 * ids (f filled; cms_env_fast_done() after use, which frees and cleanses
 * it); 0 when none
 * does (OpenSSL's path); -1 when one does but the content cipher is not
 * one we can use (refused without unwrapping); -2 when the key could not
 * be asked.  A content key that does not unwrap (bad PKCS#1 padding,
 * wrong length) is replaced by a random one and f->rejected set (RFC 3218
 * section 2.3.2): the content is still decrypted, and the caller fails it
 * at the end, so a sender cannot tell a bad padding from a bad content by
 * the answer or its time (Bleichenbacher's oracle; OpenSSL 3.0 has no
 * implicit rejection).
 */
int cms_env_fast(const unsigned char *head, size_t len,
    const struct cms_identity *ids, size_t nids, struct cms_env_fast *f);
void cms_env_fast_done(struct cms_env_fast *f);
/*
 * A detached signature made without OpenSSL's CMS object, for an RSA
 * (PKCS#1 v1.5) or EC key: the content copied from in to out as it is
 * digested (SHA-256), then the DER of the SignedData (the signed
 * attributes and certificates as cms_sign() has OpenSSL make them) in
 * *der (malloc'd).  1 done; 0 not handled (nothing read or written);
 * -1 on error (err set).
 */
int cms_sign_fast(BIO *in, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
    BIO *out, unsigned char **der, size_t *derlen, char *err, size_t errlen);
/* A certificate's SHA-256 fingerprint (its DER), remembered by the
 * object's address (the memo holds a reference); 0 or -1. */
int cms_memo_fp(struct cms_memo *, X509 *, unsigned char fp[32]);
/* A chain verdict still good: 1 with its revocation text, and its
 * undecided links appended to links[*nlinks] (new references), else 0. */
int cms_memo_chain_get(struct cms_memo *, const unsigned char key[32],
    char *text, size_t textlen, struct cms_link *links, size_t *nlinks);
/* Remember a chain that passed, until `until`, with the links whose
 * revocation stayed unknown (soft mode). */
void cms_memo_chain_put(struct cms_memo *, const unsigned char key[32],
    const char *text, const struct cms_link *links, size_t nlinks,
    time_t until);
/* Lookups answered and not, and what is held. */
struct cms_memo_stats {
	uint64_t	 cert_hits, cert_misses, chain_hits, chain_misses;
	size_t		 ncerts, nchains;
};
void cms_memo_stats(struct cms_memo *, struct cms_memo_stats *);

#endif
