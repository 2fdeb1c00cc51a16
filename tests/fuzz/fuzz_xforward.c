/* fuzz_xforward.c: libFuzzer harness for the XFORWARD codec. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xforward.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * The input as one command's arguments (and as an EHLO keyword's).  What
 * parses must come back the same through the lines we format from it, each
 * within XF_LINE_MAX.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xforward xf, back;
	char *args, line[XF_LINE_MAX + 1], err[200];
	int a, pos = 0;

	if (size > 4096)
		return 0;
	(void)xforward_ehlo_attrs((const char *)data, size);
	args = malloc(size + 1);
	memcpy(args, data, size);
	args[size] = '\0';
	memset(&xf, 0, sizeof(xf));
	if (xforward_parse(&xf, args, err, sizeof(err)) == 0) {
		memset(&back, 0, sizeof(back));
		while (xforward_format(&xf, ~0u, &pos, line, sizeof(line))) {
			if (strlen(line) > XF_LINE_MAX ||
			    strncmp(line, "XFORWARD ", 9) != 0 ||
			    xforward_parse(&back, line + 9, err,
			    sizeof(err)) != 0)
				abort();
		}
		for (a = 0; a < XF_NATTR; a++)
			if (strcmp(xf.val[a], back.val[a]) != 0)
				abort();
	}
	free(args);
	return 0;
}
