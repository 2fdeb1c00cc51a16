/* fuzz_keyproto.c: libFuzzer harness for the key process protocol codec
 * (proto/keyproto.c), both directions. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * The input as a stream of frames: each complete frame is decoded as a
 * request and as an answer; what decodes must encode back to the same
 * bytes, and a request's digest must be exactly its algorithm's size.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t enc[KEYPROTO_MAX_FRAME];
	struct keyproto_req req;
	struct keyproto_rep rep;
	char err[128];
	size_t flen, n;
	int r;

	while ((r = keyproto_frame(data, size, &flen)) == 1) {
		if (flen < KEYPROTO_HDR || flen > KEYPROTO_MAX_FRAME ||
		    flen > size)
			abort();
		if (keyproto_req_decode(data, flen, &req, err,
		    sizeof(err)) == 0) {
			if (req.type == KP_SIGN &&
			    req.len != keyproto_md_size(req.md))
				abort();
			n = keyproto_req_encode(&req, enc, sizeof(enc));
			if (n != flen || memcmp(enc, data, flen) != 0)
				abort();
		}
		if (keyproto_rep_decode(data, flen, &rep, err,
		    sizeof(err)) == 0) {
			n = keyproto_rep_encode(&rep, enc, sizeof(enc));
			if (n != flen || memcmp(enc, data, flen) != 0)
				abort();
		}
		data += flen;
		size -= flen;
	}
	return 0;
}
