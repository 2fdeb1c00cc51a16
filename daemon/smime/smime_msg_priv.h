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

#endif
