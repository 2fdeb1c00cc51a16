/* smime_msg.h: S/MIME on whole RFC 5322 messages with the certificate
 * store: sign, encrypt, sign then encrypt, decrypt, verify.  What the relay
 * path and `smrelayctl smime` call.  A message comes in as a memory buffer
 * and a new complete message goes out in res->msg; the input is never
 * changed.  Certificates come from the cache (certcache.h) through the
 * calling thread's own store connection and keys from keys.h, so worker
 * threads may call these at once (after cms_init()); a harvested signer
 * goes where src->harvest says (harvest.h). */
#ifndef SMRELAY_SMIME_MSG_H
#define SMRELAY_SMIME_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct certsrc;

/* Content cipher for encryption. */
enum smime_msg_cipher {
	SMIME_MSG_AUTO = 0,	/* GCM if every recipient allows it, else CBC */
	SMIME_MSG_CBC,		/* AES-256-CBC EnvelopedData */
	SMIME_MSG_GCM		/* AES-256-GCM AuthEnvelopedData */
};

struct smime_msg_opts {
	int		 opaque;	/* sign: pkcs7-mime signed-data */
	int		 pss;		/* sign: RSASSA-PSS */
	enum smime_msg_cipher cipher;	/* encrypt */
	int		 include_sender_cert; /* encrypt: the certificate of
					 * our key for `from` is a
					 * recipient too (sent copies) */
};

/* What an operation produced; release with smime_msg_res_free(). */
struct smime_msg_res {
	enum cms_outcome outcome;	/* verify, or decrypt of a signed
					 * message: the verdict; else NONE */
	char		 reason[256];	/* the verdict's reason, "" on pass */
	char		 identity[256];	/* signer address, may be "" */
	int		 verified;	/* a signature was checked */
	int		 gcm;		/* encrypt: AES-256-GCM was chosen */
	int64_t		 harvested;	/* verify: cert row harvested, else 0
					 * (always 0 when src->harvest
					 * collects it for later) */
	char		 err[512];	/* why -1 (or 1) was returned */
	/* verify: the links whose revocation no CRL or OCSP answer decided
	 * (owned), so that the caller may fetch and verify again */
	struct cms_link	 undecided[CMS_UNDECIDED_MAX];
	size_t		 nundecided;
};

/* smime_msg.c */
void smime_msg_res_free(struct smime_msg_res *);
/*
 * The address of the first mailbox of the From field (angle brackets or a
 * bare addr-spec), into buf.  0, or -1 when there is none.
 */
int smime_msg_from(const char *msg, size_t len, char *buf, size_t buflen);
/* What the From fields of a message say (mail_from_ambiguous() tells
 * why they name no single mailbox). */
void smime_msg_from_read(const char *msg, size_t len, struct mail_from *);
/* Why a signed entity's own From (in its header, inner) is not the
 * message's one mailbox (outer, as smime_msg_from_read() gives it), or
 * NULL (it has none, or the same). */
const char *smime_msg_inner_from(const struct mail_from *outer,
    const char *inner, size_t ilen);
/*
 * Call fn with the value of every top-level header field called name
 * (case-insensitive), unfolded (CR and LF removed, the text after the
 * colon as it stands), in order, until fn returns non-zero; returns that,
 * or 0.
 */
int smime_msg_fields(const char *msg, size_t len, const char *name,
    int (*fn)(const char *value, void *arg), void *arg);
/* Where the body starts: after the blank line ending the header. */
size_t smime_msg_body(const char *msg, size_t len);
/*
 * The message without the top-level fields called name for which
 * drop(value, arg) returns 1: malloc'd, *outlen bytes; NULL when nothing
 * was dropped.
 */
char *smime_msg_drop_fields(const char *msg, size_t len, const char *name,
    int (*drop)(const char *value, void *arg), void *arg, size_t *outlen);

/* What a message's structure proves (never its Content-Type alone):
 * smime_stream_done(). */
enum smime_done {
	SMIME_DONE_NONE,
	SMIME_DONE_SIGNED,      /* SignedData: multipart/signed or opaque */
	SMIME_DONE_ENCRYPTED    /* EnvelopedData or AuthEnvelopedData */
};

#endif
