/*
 * keyd_ec.h: the EC peer keys of DERIVE requests (proto/keyproto.h: a DER
 * SubjectPublicKeyInfo) written and read without OpenSSL 3.0's encoder and
 * decoder, which cost about 100 and 140 us a key, more than the ECDH
 * itself; anything but a plain point on our own named curve takes the slow
 * general path.
 */
#ifndef SMRELAY_KEYD_EC_H
#define SMRELAY_KEYD_EC_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* keyd_ec.c */
/* The DER SPKI of peer, an EC key on the same named curve as ours, into
 * out; its length, 0 when it is not that simple (use i2d_PUBKEY). */
size_t keyd_ec_spki(EVP_PKEY *ours, EVP_PKEY *peer, uint8_t *out,
    size_t outsize);
/* The peer key of a DERIVE request when spki is a point on our curve,
 * encoded as keyd_ec_spki does; NULL otherwise (use d2i_PUBKEY). */
EVP_PKEY *keyd_ec_peer(EVP_PKEY *ours, const uint8_t *spki, size_t len);

#endif
