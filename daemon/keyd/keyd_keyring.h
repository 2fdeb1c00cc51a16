/*
 * keyd_keyring.h: the key process's private keys, named by the SHA-256
 * fingerprint of their certificate, and the three things it does with them
 * for the network process (proto/keyproto.h): sign a digest, unwrap a
 * content-encryption key, derive an ECDH secret.  No key byte ever leaves
 * through this interface.
 */
#ifndef SMRELAY_KEYD_KEYRING_H
#define SMRELAY_KEYD_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "proto/proto.h"

/* The longest unwrapped key we answer with: a content-encryption key is at
 * most this long, and a shorter answer gives a padding oracle less. */
#define KEYD_MAX_UNWRAP		64
/* OpenSSL's secure heap (keyd_secure_heap) for private key numbers. */
#define KEYD_SECURE_HEAP	(1 << 20)

struct keyfile;
struct keyd_keyring;

/* keyd_keyring.c */
/*
 * Start OpenSSL's secure heap (size a power of two), before any key is
 * loaded: private key numbers (RSA d, p, q..., the EC scalar) decoded
 * afterwards live in pages that are madvise(MADV_DONTDUMP)'d, kept out of
 * swap with mlock when RLIMIT_MEMLOCK allows, and cleared when freed.
 * 0 with locked pages, 1 without the lock (still out of core dumps), -1
 * when it could not start (keys then live in the ordinary heap).
 */
int keyd_secure_heap(size_t size);
struct keyd_keyring *keyd_keyring_new(void);
/* A reference more; keyd_keyring_free drops one (the last frees). */
struct keyd_keyring *keyd_keyring_ref(struct keyd_keyring *);
void keyd_keyring_free(struct keyd_keyring *);
/*
 * Hold key (a reference is taken) under the fingerprint of cert, which must
 * be the certificate of that key.  0 (also when it is already there), or -1
 * with err.
 */
int keyd_keyring_add(struct keyd_keyring *, X509 *cert, EVP_PKEY *key,
    char *err, size_t errlen);
/* Add every key of the key file, those on PKCS#11 tokens through
 * keyd_keyring_add_pkcs11; how many were added, -1 with err when one could
 * not be (the others stay). */
int keyd_keyring_load_keyfile(struct keyd_keyring *, struct keyfile *,
    char *err, size_t errlen);
size_t keyd_keyring_count(const struct keyd_keyring *);
/* Hold the loop-guard secret (KEYPROTO_MAC_LEN bytes; also loaded from
 * the key file by keyd_keyring_load_keyfile) for MAC requests; -1 if the
 * length is wrong. */
int keyd_keyring_set_mark(struct keyd_keyring *, const unsigned char *,
    size_t);
/* 1 when operations with the key named by fp are slow enough for a worker
 * thread (RSA, token keys), 0 for EC keys in memory and unknown keys. */
int keyd_keyring_slow(const struct keyd_keyring *, const uint8_t *fp);
/* Whether the keyring holds the key with fingerprint fp. */
int keyd_keyring_has(const struct keyd_keyring *, const uint8_t *fp);
/*
 * Carry out a decoded SIGN, DECRYPT, DERIVE or MAC request: 0 with the result in
 * out (*outlen bytes; outsize >= KEYPROTO_MAX_DATA), *why left alone or set
 * to a note for the log only (a stand-in answered a failed raw RSA
 * decryption); or a KP_E_* code with *why, a short reason for the answer
 * and the log.
 */
int keyd_keyring_op(struct keyd_keyring *, const struct keyproto_req *,
    uint8_t *out, size_t outsize, size_t *outlen, const char **why);
/*
 * Load the private key of a pkcs11: URI (RFC 7512, keyd_p11.h) and hold
 * it under the fingerprint of the token's certificate for it; its sign,
 * decrypt and derive run on the token.  0 (also when it is already
 * there), or -1 with err.
 */
int keyd_keyring_add_pkcs11(struct keyd_keyring *, const char *uri,
    char *err, size_t errlen);

#endif
