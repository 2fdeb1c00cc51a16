/* keyproto.c: the key process protocol codec (see keyproto.h). */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "keyproto.h"

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

size_t
keyproto_md_size(uint8_t md)
{
	switch (md) {
	case KP_MD_SHA1:
		return 20;
	case KP_MD_SHA224:
		return 28;
	case KP_MD_SHA256:
		return 32;
	case KP_MD_SHA384:
		return 48;
	case KP_MD_SHA512:
		return 64;
	default:
		return 0;
	}
}

const char *
keyproto_type_name(uint8_t type)
{
	switch (type) {
	case KP_SIGN:
		return "sign";
	case KP_DECRYPT:
		return "decrypt";
	case KP_DERIVE:
		return "derive";
	case KP_PING:
		return "ping";
	case KP_MAC:
		return "mac";
	case KP_OK:
		return "ok";
	case KP_ERR:
		return "error";
	default:
		return "unknown";
	}
}

int
keyproto_frame(const uint8_t *buf, size_t avail, size_t *framelen)
{
	uint32_t body;

	if (avail < KEYPROTO_HDR)
		return 0;
	body = get32(buf);
	if (buf[4] != KEYPROTO_VERSION || get16(buf + 6) != 0 ||
	    body > KEYPROTO_MAX_BODY)
		return -1;
	*framelen = KEYPROTO_HDR + body;
	return avail >= *framelen ? 1 : 0;
}

/* The header of a frame of len bytes (keyproto_frame said 1): its type and
 * id; -1 when the length field disagrees with len. */
static int
hdr_decode(const uint8_t *f, size_t len, uint8_t *type, uint32_t *id)
{
	size_t flen;

	if (keyproto_frame(f, len, &flen) != 1 || flen != len)
		return -1;
	*type = f[5];
	*id = get32(f + 8);
	return 0;
}

/* Write a frame header for a body of body bytes. */
static void
hdr_encode(uint8_t *out, uint8_t type, uint32_t id, size_t body)
{
	put32(out, (uint32_t)body);
	out[4] = KEYPROTO_VERSION;
	out[5] = type;
	put16(out + 6, 0);
	put32(out + 8, id);
}

/* Whether the fields of a request are ones keyd would act on. */
static const char *
req_check(const struct keyproto_req *r)
{
	size_t i;

	switch (r->type) {
	case KP_SIGN:
		if (r->alg < KP_ALG_RSA_PKCS1 || r->alg > KP_ALG_ECDSA)
			return "unknown signature algorithm";
		if (keyproto_md_size(r->md) == 0)
			return "unknown digest";
		if (r->len != keyproto_md_size(r->md))
			return "digest length does not match its algorithm";
		return NULL;
	case KP_DECRYPT:
		if (r->alg != KP_PAD_PKCS1 && r->alg != KP_PAD_OAEP)
			return "unknown padding";
		if (r->alg == KP_PAD_OAEP && (keyproto_md_size(r->md) == 0 ||
		    keyproto_md_size(r->md2) == 0))
			return "unknown OAEP digest";
		if (r->alg == KP_PAD_PKCS1 && (r->md != 0 || r->md2 != 0))
			return "digest given for PKCS#1 v1.5";
		if (r->keylen > (r->alg == KP_PAD_PKCS1 ?
		    KEYPROTO_MAX_KEYLEN : 0))
			return "key length out of range";
		break;
	case KP_DERIVE:
		if (r->alg != 0 || r->md != 0 || r->md2 != 0)
			return "reserved field not zero";
		break;
	case KP_MAC:
		if (r->alg != 0 || r->md != 0 || r->md2 != 0)
			return "reserved field not zero";
		for (i = 0; i < KEYPROTO_FP; i++)
			if (r->fp[i] != 0)
				return "a key named in a MAC request";
		break;
	case KP_PING:
		return r->len == 0 ? NULL : "data in a ping";
	default:
		return "unknown request type";
	}
	if (r->len == 0 || r->len > KEYPROTO_MAX_DATA)
		return "data length out of range";
	return NULL;
}

int
keyproto_req_decode(const uint8_t *f, size_t len, struct keyproto_req *r,
    char *err, size_t errlen)
{
	const uint8_t *b = f + KEYPROTO_HDR;
	size_t blen = len - KEYPROTO_HDR;
	const char *why = NULL;

	memset(r, 0, sizeof(*r));
	if (hdr_decode(f, len, &r->type, &r->id) == -1)
		why = "bad frame header";
	else if (r->type == KP_PING) {
		if (blen != 0)
			why = "data in a ping";
	} else if (blen < KEYPROTO_FP + 6)
		why = "request too short";
	else {
		memcpy(r->fp, b, KEYPROTO_FP);
		r->alg = b[KEYPROTO_FP];
		r->md = b[KEYPROTO_FP + 1];
		r->md2 = b[KEYPROTO_FP + 2];
		r->keylen = b[KEYPROTO_FP + 3];
		r->len = get16(b + KEYPROTO_FP + 4);
		r->data = b + KEYPROTO_FP + 6;
		if ((r->type != KP_DECRYPT && r->keylen != 0) ||
		    (r->type == KP_SIGN && r->md2 != 0))
			why = "reserved field not zero";
		else if (blen != KEYPROTO_FP + 6 + r->len)
			why = "length field does not match the frame";
		else
			why = req_check(r);
	}
	if (why != NULL) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

size_t
keyproto_req_encode(const struct keyproto_req *r, uint8_t *out, size_t outlen)
{
	size_t body = r->type == KP_PING ? 0 : KEYPROTO_FP + 6 + r->len;
	uint8_t *b = out + KEYPROTO_HDR;

	if (req_check(r) != NULL || (r->type == KP_SIGN && r->md2 != 0) ||
	    (r->type != KP_DECRYPT && r->keylen != 0) ||
	    KEYPROTO_HDR + body > outlen)
		return 0;
	hdr_encode(out, r->type, r->id, body);
	if (body == 0)
		return KEYPROTO_HDR;
	memcpy(b, r->fp, KEYPROTO_FP);
	b[KEYPROTO_FP] = r->alg;
	b[KEYPROTO_FP + 1] = r->md;
	b[KEYPROTO_FP + 2] = r->md2;
	b[KEYPROTO_FP + 3] = r->keylen;
	put16(b + KEYPROTO_FP + 4, r->len);
	memcpy(b + KEYPROTO_FP + 6, r->data, r->len);
	return KEYPROTO_HDR + body;
}

int
keyproto_rep_decode(const uint8_t *f, size_t len, struct keyproto_rep *r,
    char *err, size_t errlen)
{
	const uint8_t *b = f + KEYPROTO_HDR;
	size_t blen = len - KEYPROTO_HDR, off;
	const char *why = NULL;

	memset(r, 0, sizeof(*r));
	if (hdr_decode(f, len, &r->type, &r->id) == -1)
		why = "bad frame header";
	else if (r->type != KP_OK && r->type != KP_ERR)
		why = "unknown answer type";
	else {
		off = r->type == KP_ERR ? 4 : 2;
		if (blen < off)
			why = "answer too short";
		else {
			if (r->type == KP_ERR)
				r->code = get16(b);
			r->len = get16(b + off - 2);
			r->data = b + off;
			if (blen != off + r->len)
				why = "length field does not match the frame";
			else if (r->type == KP_ERR && (r->code == 0 ||
			    r->len > KEYPROTO_MAX_TEXT))
				why = "bad error answer";
		}
	}
	if (why != NULL) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

size_t
keyproto_rep_encode(const struct keyproto_rep *r, uint8_t *out, size_t outlen)
{
	size_t off = r->type == KP_ERR ? 4 : 2, body = off + r->len;

	if ((r->type != KP_OK && r->type != KP_ERR) ||
	    body > KEYPROTO_MAX_BODY || KEYPROTO_HDR + body > outlen ||
	    (r->type == KP_ERR && (r->code == 0 ||
	    r->len > KEYPROTO_MAX_TEXT)))
		return 0;
	hdr_encode(out, r->type, r->id, body);
	if (r->type == KP_ERR)
		put16(out + KEYPROTO_HDR, r->code);
	put16(out + KEYPROTO_HDR + off - 2, r->len);
	if (r->len > 0)
		memcpy(out + KEYPROTO_HDR + off, r->data, r->len);
	return KEYPROTO_HDR + body;
}
