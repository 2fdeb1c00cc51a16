/*
 * keyproto.h: the key process protocol (daemon/keyd), a pure codec.
 *
 * The network process never holds a private key; it asks the key process
 * over a socketpair to sign a digest, unwrap a content-encryption key or
 * derive an ECDH secret, naming the key by the SHA-256 fingerprint of its
 * certificate.  Frames are imsg-style: a fixed header, then a body whose
 * every field is checked before use.  Requests carry an id so that they
 * can be pipelined; the answer carries the same id.
 *
 *   header   u32 body length (network order, at most KEYPROTO_MAX_BODY)
 *            u8  version (KEYPROTO_VERSION)   u8 type   u16 zero
 *            u32 id
 *   SIGN     fp[32]  u8 alg (KP_ALG_*)  u8 md (KP_MD_*)  u16 zero
 *            u16 length  digest (exactly the size of md: nothing else is
 *            ever signed)
 *   DECRYPT  fp[32]  u8 pad (KP_PAD_*)  u8 oaep md  u8 mgf1 md
 *            u8 key length (PKCS#1 v1.5: the length the unwrapped key must
 *            have, 1 .. KEYPROTO_MAX_KEYLEN, for implicit rejection: a
 *            block that does not hold a key of that length answers a
 *            stand-in of it, never an error; 0: none, a bad padding is an
 *            error; OAEP: 0)
 *            u16 length  ciphertext (1 .. KEYPROTO_MAX_DATA)
 *   DERIVE   fp[32]  u8 zero x4  u16 length  the peer's public key
 *            (DER SubjectPublicKeyInfo, 1 .. KEYPROTO_MAX_DATA)
 *   MAC      fp[32] zero  u8 zero x4  u16 length  data (1 ..
 *            KEYPROTO_MAX_DATA): HMAC-SHA-256 of data under this
 *            installation's mark secret (the loop-guard mark), which
 *            only the key process holds
 *   PING     (empty body)
 *   answer   type KP_OK: u16 length, data (signature, key, secret; empty
 *            for PING); KP_ERR: u16 code (KP_E_*), u16 length, text
 */
#ifndef SMRELAY_PROTO_KEYPROTO_H
#define SMRELAY_PROTO_KEYPROTO_H

#include <stddef.h>
#include <stdint.h>

#define KEYPROTO_VERSION	1
#define KEYPROTO_HDR		12
#define KEYPROTO_FP		32
#define KEYPROTO_MAX_DATA	1024	/* an 8192-bit RSA block */
#define KEYPROTO_MAX_TEXT	200
#define KEYPROTO_MAC_LEN	32	/* a MAC answer: HMAC-SHA-256 */
#define KEYPROTO_MAX_KEYLEN	32	/* DECRYPT's key length */
#define KEYPROTO_MAX_BODY	(KEYPROTO_FP + 6 + KEYPROTO_MAX_DATA)
#define KEYPROTO_MAX_FRAME	(KEYPROTO_HDR + KEYPROTO_MAX_BODY)

enum keyproto_type {
	KP_SIGN = 1,
	KP_DECRYPT = 2,
	KP_DERIVE = 3,
	KP_PING = 4,
	KP_MAC = 5,
	KP_OK = 0x80,
	KP_ERR = 0x81
};

enum keyproto_alg {		/* SIGN: how the digest is signed */
	KP_ALG_RSA_PKCS1 = 1,	/* PKCS#1 v1.5, DigestInfo made by keyd */
	KP_ALG_RSA_PSS = 2,	/* salt as long as the digest, MGF1 same md */
	KP_ALG_ECDSA = 3
};

enum keyproto_md {
	KP_MD_SHA1 = 1,
	KP_MD_SHA224,
	KP_MD_SHA256,
	KP_MD_SHA384,
	KP_MD_SHA512
};

enum keyproto_pad {		/* DECRYPT */
	KP_PAD_PKCS1 = 1,	/* RSA PKCS#1 v1.5 (implicit rejection) */
	KP_PAD_OAEP = 2		/* RSA-OAEP with the given md and MGF1 md */
};

enum keyproto_err {
	KP_E_PROTO = 1,		/* malformed request: the socket is closed */
	KP_E_NOKEY,		/* no key with that fingerprint */
	KP_E_KEYTYPE,		/* the key cannot do that */
	KP_E_FAILED,		/* the operation failed (e.g. bad padding) */
	KP_E_BUSY		/* rate limited, or the token is unavailable */
};

/* A request; data points into the decoded frame. */
struct keyproto_req {
	uint8_t		 type;
	uint32_t	 id;
	uint8_t		 fp[KEYPROTO_FP];
	uint8_t		 alg;		/* SIGN: KP_ALG_*; DECRYPT: KP_PAD_* */
	uint8_t		 md;		/* SIGN: digest; DECRYPT: OAEP md */
	uint8_t		 md2;		/* DECRYPT: MGF1 md */
	uint8_t		 keylen;	/* DECRYPT PKCS#1 v1.5: see above */
	const uint8_t	*data;
	size_t		 len;
};

/* An answer; data points into the decoded frame. */
struct keyproto_rep {
	uint8_t		 type;		/* KP_OK or KP_ERR */
	uint32_t	 id;
	uint16_t	 code;		/* KP_ERR: KP_E_* */
	const uint8_t	*data;		/* KP_OK: result; KP_ERR: text */
	size_t		 len;
};

/* keyproto.c */
/*
 * How long the frame at the start of buf is: 1 with *framelen set when it
 * is all there, 0 when more bytes are needed, -1 when the header is bad
 * (wrong version, reserved bits, body too long): close the socket.
 */
int keyproto_frame(const uint8_t *buf, size_t avail, size_t *framelen);
/* Decode a request frame (keyproto_frame said 1); 0, or -1 with err. */
int keyproto_req_decode(const uint8_t *frame, size_t len,
    struct keyproto_req *, char *err, size_t errlen);
/* Encode a request into out (KEYPROTO_MAX_FRAME bytes do); its length,
 * or 0 when the request is not one keyproto_req_decode would accept. */
size_t keyproto_req_encode(const struct keyproto_req *, uint8_t *out,
    size_t outlen);
/* Decode an answer frame; 0, or -1 with err. */
int keyproto_rep_decode(const uint8_t *frame, size_t len,
    struct keyproto_rep *, char *err, size_t errlen);
/* Encode an answer; its length, or 0 if it does not fit or is invalid. */
size_t keyproto_rep_encode(const struct keyproto_rep *, uint8_t *out,
    size_t outlen);
/* The digest size of a KP_MD_*, 0 if unknown. */
size_t keyproto_md_size(uint8_t md);
/* "sign", "decrypt", ... for logs. */
const char *keyproto_type_name(uint8_t type);

#endif
