/* fuzz_p11_uri.c: libFuzzer harness for the pkcs11: URI parser
 * (daemon/keyd/keyd_p11_uri.c). */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/keyd/keyd_p11.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether a field is a string within its buffer. */
#define TERMINATED(f)	(memchr((f), '\0', sizeof(f)) != NULL)

/*
 * The input (with "pkcs11:" in front half of the time) as a URI: what
 * parses has its strings terminated in their buffers, its id within
 * bounds, absolute paths and at most one PIN; what does not is cleared
 * and has a reason.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char uri[KEYD_P11_MAX_URI + 64];
	struct keyd_p11_uri u;
	char err[256];
	size_t off = 0;

	if (size > 0 && (data[0] & 1)) {
		memcpy(uri, "pkcs11:", 7);
		off = 7;
	}
	if (size > 0) {
		data++;
		size--;
	}
	if (size > sizeof(uri) - off - 1)
		size = sizeof(uri) - off - 1;
	memcpy(uri + off, data, size);
	uri[off + size] = '\0';
	err[0] = '\0';
	if (keyd_p11_uri_parse(uri, &u, err, sizeof(err)) == -1) {
		if (u.have != 0 || err[0] == '\0' ||
		    memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	if (!TERMINATED(u.token) || !TERMINATED(u.manufacturer) ||
	    !TERMINATED(u.serial) || !TERMINATED(u.model) ||
	    !TERMINATED(u.object) || !TERMINATED(u.module_path) ||
	    !TERMINATED(u.pin) || !TERMINATED(u.pin_file) ||
	    u.idlen > KEYD_P11_MAX_ID || (u.have & ~0x3ffu) != 0)
		abort();
	if (((u.have & KEYD_P11_MODULE_PATH) && u.module_path[0] != '/') ||
	    ((u.have & KEYD_P11_PIN_SOURCE) && u.pin_file[0] != '/') ||
	    ((u.have & KEYD_P11_PIN_VALUE) && (u.have & KEYD_P11_PIN_SOURCE)))
		abort();
	keyd_p11_uri_clear(&u);
	return 0;
}
