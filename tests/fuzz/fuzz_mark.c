/* fuzz_mark.c: libFuzzer harness for the loop-guard mark (daemon/smime/
 * mark.c): the input is a whole message whose X-Smrelay-Processed fields
 * (host "fuzz.example") are parsed, checked and stripped.  The keys have
 * no secret, so no mark can verify: every one of ours must count as
 * forged, and stripping must leave none behind.  Nothing may crash. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/smime/keys.h"
#include "daemon/smime/mark.h"
#include "daemon/smime/smime_msg.h"

#define HOST	"fuzz.example"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct keys *fuzz_keys;

/* A mark of HOST among the fields (host first, then blanks, then ';' or
 * the end, any case): stop the walk. */
static int
ours_fn(const char *v, void *arg)
{
	size_t hl = strlen(HOST);

	(void)arg;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, HOST, hl) != 0)
		return 0;
	for (v += hl; *v == ' ' || *v == '\t'; v++)
		;
	return *v == ';' || *v == '\0';
}

/* mark_read_strip's reader over the input. */
static ssize_t
buf_rd(void *arg, char *buf, size_t len, size_t off)
{
	const struct { const char *p; size_t n; } *b = arg;

	if (off >= b->n)
		return 0;
	if (len > b->n - off)
		len = b->n - off;
	memcpy(buf, b->p + off, len);
	return (ssize_t)len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *m = (const char *)data;
	char *out, *hdr, field[512];
	size_t outlen, body;
	unsigned done, done2;
	int forged, forged2;
	struct { const char *p; size_t n; } b = { m, size };

	if (fuzz_keys == NULL)
		fuzz_keys = keys_new();
	done = mark_read(fuzz_keys, HOST, m, size, &forged);
	if (done != 0)
		abort();        /* verified without a secret */
	if ((out = mark_strip(fuzz_keys, HOST, m, size, size & 1,
	    &outlen)) != NULL) {
		if (smime_msg_fields(out, outlen, MARK_FIELD, ours_fn, NULL))
			abort();        /* a mark of ours left behind */
		free(out);
	}
	/* read in pieces: the same count, and none of ours left */
	body = smime_msg_body(m, size);
	hdr = malloc(body + 1);
	if (hdr == NULL)
		abort();
	memcpy(hdr, m, body);
	hdr[body] = '\0';
	out = mark_read_strip(fuzz_keys, HOST, size & 1, hdr, body, buf_rd,
	    &b, body, &done2, &forged2, &outlen);
	if (done2 != 0 || forged2 != forged || (forged > 0) != (out != NULL))
		abort();
	if (out != NULL && smime_msg_fields(out, outlen, MARK_FIELD, ours_fn,
	    NULL))
		abort();
	free(out);
	free(hdr);
	if (mark_make(fuzz_keys, HOST, 1, m, size, field, sizeof(field)) !=
	    -1)
		abort();        /* made without a secret */
	return 0;
}
