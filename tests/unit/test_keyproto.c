/* test_keyproto.c: golden tests for the key process protocol codec
 * (proto/keyproto.c). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "lib/lib.h"
#include "proto/keyproto.h"

#define MAXBUF	(4 * KEYPROTO_MAX_FRAME)

/*
 * Bytes from a case's tokens: hex digits ("0100", "ff"), N*HH (N bytes
 * HH), 'text (ASCII, no spaces), - (nothing) and @ (the frame's body
 * length: every byte after the 12-byte header, as a u32).  -1 on a bad token.
 */
static int
parse_bytes(const char *s, uint8_t *buf, size_t *lenp)
{
	char tok[256];
	size_t len = 0, at = (size_t)-1, n, i;
	unsigned int k;
	int hi, lo, used;

	while (sscanf(s, " %255s%n", tok, &used) == 1) {
		s += used;
		if (strcmp(tok, "-") == 0)
			continue;
		if (strcmp(tok, "@") == 0) {
			at = len;
			memset(buf + len, 0, 4);
			len += 4;
		} else if (tok[0] == '\'') {
			n = strlen(tok + 1);
			memcpy(buf + len, tok + 1, n);
			len += n;
		} else if (sscanf(tok, "%zu*%2x", &n, &k) == 2) {
			if (len + n > MAXBUF)
				return -1;
			memset(buf + len, (int)k, n);
			len += n;
		} else {
			for (i = 0; tok[i] != '\0'; i += 2) {
				if ((hi = hexval(tok[i])) < 0 ||
				    (lo = hexval(tok[i + 1])) < 0)
					return -1;
				buf[len++] = (uint8_t)(hi << 4 | lo);
			}
		}
		if (len > MAXBUF - 300)
			return -1;
	}
	if (at != (size_t)-1) {
		n = len >= KEYPROTO_HDR ? len - KEYPROTO_HDR : 0;
		buf[at] = (uint8_t)(n >> 24);
		buf[at + 1] = (uint8_t)(n >> 16);
		buf[at + 2] = (uint8_t)(n >> 8);
		buf[at + 3] = (uint8_t)n;
	}
	*lenp = len;
	return 0;
}

/* Print bytes as hex, the first 8 and the count when longer. */
static void
print_hex(FILE *out, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < 8; i++)
		fprintf(out, "%02x", p[i]);
	if (n > 8)
		fprintf(out, "..(%zu)", n);
	if (n == 0)
		fputs("-", out);
}

/* Decode a request frame, print it, and check it encodes back the same. */
static void
req_case(const uint8_t *buf, size_t flen, FILE *out)
{
	static uint8_t enc[KEYPROTO_MAX_FRAME];
	struct keyproto_req r;
	char err[128];
	size_t n;

	if (keyproto_req_decode(buf, flen, &r, err, sizeof(err)) == -1) {
		fprintf(out, " error=\"%s\"", err);
		return;
	}
	fprintf(out, " %s id=%u", keyproto_type_name(r.type), r.id);
	if (r.type != KP_PING) {
		fputs(" fp=", out);
		print_hex(out, r.fp, sizeof(r.fp));
		fprintf(out, " alg=%u md=%u md2=%u", r.alg, r.md, r.md2);
		if (r.keylen != 0)
			fprintf(out, " keylen=%u", r.keylen);
		fputs(" data=", out);
		print_hex(out, r.data, r.len);
	}
	n = keyproto_req_encode(&r, enc, sizeof(enc));
	if (n != flen || memcmp(enc, buf, flen) != 0)
		golden_fail("request does not encode back (%zu bytes)", n);
}

/* Decode an answer frame, print it, and check it encodes back the same. */
static void
rep_case(const uint8_t *buf, size_t flen, FILE *out)
{
	static uint8_t enc[KEYPROTO_MAX_FRAME];
	struct keyproto_rep r;
	char err[128];
	size_t n;

	if (keyproto_rep_decode(buf, flen, &r, err, sizeof(err)) == -1) {
		fprintf(out, " error=\"%s\"", err);
		return;
	}
	fprintf(out, " %s id=%u", keyproto_type_name(r.type), r.id);
	if (r.type == KP_ERR)
		fprintf(out, " code=%u text=\"%.*s\"", r.code, (int)r.len,
		    (const char *)r.data);
	else {
		fputs(" data=", out);
		print_hex(out, r.data, r.len);
	}
	n = keyproto_rep_encode(&r, enc, sizeof(enc));
	if (n != flen || memcmp(enc, buf, flen) != 0)
		golden_fail("answer does not encode back (%zu bytes)", n);
}

/*
 * One case: "req TOKENS" or "rep TOKENS" (see parse_bytes), a trailing
 * " # comment" ignored.  Prints what keyproto_frame says, then the decoded
 * frame or the reason it is refused.  Every proper prefix of a complete
 * frame must ask for more bytes.
 */
static void
keyproto_case(const char *line, FILE *out)
{
	static uint8_t buf[MAXBUF];
	char spec[4096], *c;
	size_t len, flen = 0, i;
	int r, isreq;

	snprintf(spec, sizeof(spec), "%s", line);
	if ((c = strstr(spec, " #")) != NULL)
		*c = '\0';
	isreq = strncmp(spec, "req ", 4) == 0;
	if ((!isreq && strncmp(spec, "rep ", 4) != 0) ||
	    parse_bytes(spec + 4, buf, &len) == -1) {
		golden_fail("bad case: %s", line);
		return;
	}
	r = keyproto_frame(buf, len, &flen);
	fprintf(out, "%s\n  => frame=%d", line, r);
	if (r == 1) {
		fprintf(out, " len=%zu", flen);
		for (i = 0; i < flen; i++)
			if (keyproto_frame(buf, i, &len) != 0)
				golden_fail("prefix %zu is not incomplete", i);
		if (isreq)
			req_case(buf, flen, out);
		else
			rep_case(buf, flen, out);
	}
	fputs("\n", out);
}

int
main(void)
{
	return golden_main("keyproto", keyproto_case);
}
