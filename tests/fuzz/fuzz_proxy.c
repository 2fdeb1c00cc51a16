/* fuzz_proxy.c: libFuzzer harness for the PROXY v1/v2 parsers. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/proxy_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * Both parsers on the input; a complete header must fit in the input, and
 * a shorter prefix of it must ask for more bytes.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr hdr;
	int r;

	r = proxy_parse_v1(data, size, &hdr);
	if (r > (int)size || r > 107 || (r > 0 &&
	    proxy_parse_v1(data, (size_t)r - 1, &hdr) != 0))
		abort();
	r = proxy_parse_v2(data, size, &hdr);
	if (r > (int)size || (r > 0 &&
	    proxy_parse_v2(data, (size_t)r - 1, &hdr) != 0))
		abort();
	return 0;
}
