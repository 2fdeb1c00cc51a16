/* smime_msg_priv.h: the entity steps of smime_msg.c over BIOs, for the
 * streaming runner (smime_stream.c). */
#ifndef SMRELAY_SMIME_MSG_PRIV_H
#define SMRELAY_SMIME_MSG_PRIV_H

#include <openssl/bio.h>

#include "smime_msg.h"

/* smime_msg.c */
/* Sign the canonical entity read from `in` as from (keys_signing()) into
 * out; 0, or -1 with res->err. */
int smime_msg_sign_bio(const struct certsrc *, BIO *in, const char *from,
    const struct smime_msg_opts *, BIO *out, struct smime_msg_res *);
/* Encrypt the canonical entity read from `in` for the recipients into
 * out; 0 (res->gcm says the cipher), or -1 with res->err. */
int smime_msg_encrypt_bio(const struct certsrc *, BIO *in, const char *from,
    const char *const *rcpts, size_t n, const struct smime_msg_opts *,
    BIO *out, struct smime_msg_res *);
/* Open the envelope read from der (decoded CMS) with our keys into out;
 * 0, or -1 with res->err (out must then be discarded). */
int smime_msg_open_bio(const struct certsrc *, BIO *der, BIO *out,
    struct smime_msg_res *);
/* Check a detached signature over `content` (rewindable) into v. */
void smime_msg_check_bio(const struct certsrc *, BIO *content,
    const unsigned char *der, size_t derlen, const char *from,
    struct cms_verify *v);
/* Harvest a pass, fill res and the Authentication-Results field (no
 * CRLF) into ar; frees v. */
void smime_msg_verdict(const struct certsrc *, struct cms_verify *v,
    const char *host, struct smime_msg_res *, char *ar, size_t arlen);
/* An unwrapped entity (or its header block) without its MIME-Version and
 * Authentication-Results fields; malloc'd. */
char *smime_msg_unwrapped_fields(const char *e, size_t n, size_t *outlen);
/* Whether an entity starting with ent[0..n) starts with a field. */
int smime_msg_has_fields(const char *ent, size_t n);
/* The header put before a decrypted entity ent (n first bytes of it),
 * from the received header block [hdr, hlen); malloc'd. */
char *smime_msg_open_head(const char *hdr, size_t hlen, const char *host,
    const char *ent, size_t n, size_t *outlen);
/* The header of a verified message that stays as it is: ar on top;
 * the body follows from hlen on, unchanged.  malloc'd. */
char *smime_msg_verify_head(const char *hdr, size_t hlen, const char *host,
    const char *ar, size_t *outlen);

#endif
