/* fuzz_smtp_reply.c: libFuzzer harness for the SMTP reply parser. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Input lines separated by LF are fed one by one to one struct. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	const char *p = (const char *)data, *end = p + size, *nl;
	size_t n;
	int ret;

	smtp_reply_init(&r);
	while (p <= end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		ret = smtp_reply_feed(&r, p, n);
		if (ret < -1 || ret > 1)
			abort();
		if (memchr(r.text, '\0', sizeof(r.text)) == NULL ||
		    memchr(r.enh, '\0', sizeof(r.enh)) == NULL)
			abort();
		if (strchr(r.text, '\r') != NULL)
			abort();
		if (ret != -1 && (r.code < 200 || r.code > 559))
			abort();
		if (ret == -1)
			smtp_reply_init(&r);
		p += n + 1;
	}
	return 0;
}
