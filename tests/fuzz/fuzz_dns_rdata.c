/* fuzz_dns_rdata.c: libFuzzer harness for the record decoders of
 * daemon/base/dns.c that run on answers (libunbound parses the messages;
 * these read the MX and TLSA/SMIMEA rdata it hands over) and for the
 * name checks.  The first byte picks the decoder, the rest is its input.
 * A decoded MX host must be a plain dotted name within the limits, a
 * TLSA record must point into its input; nothing may crash. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A decoded MX host: printable, no empty label, within 253 characters. */
static void
check_host(const char *h)
{
	size_t n = strlen(h), i;

	if (n > 253)
		abort();
	if (n == 0)
		return;
	if (h[0] == '.' || h[n - 1] == '.' || strstr(h, "..") != NULL)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f ||
		    h[i] == '\\' || (h[i] >= 'A' && h[i] <= 'Z'))
			abort();
	(void)dns_host_bad(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char host[DNS_NAME_MAX + 1], name[DNS_NAME_MAX + 1], *s;
	struct dns_tlsa t;
	int pref;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		if (dns_rdata_mx(data + 1, size - 1, &pref, host,
		    sizeof(host)) == 0) {
			if (pref < 0 || pref > 65535)
				abort();
			check_host(host);
		}
		break;
	case 1:
		if (dns_rdata_tlsa(data + 1, size - 1, &t) == 0) {
			if (t.data != data + 4 || t.len != size - 4 || t.len == 0)
				abort();
			if ((t.mtype == 1 && t.len != 32) ||
			    (t.mtype == 2 && t.len != 64))
				abort();
		}
		break;
	case 2:
	case 3:
		s = malloc(size);
		if (s == NULL)
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		if (data[0] % 4 == 2) {
			if (dns_name_check(s, name, sizeof(name)) == 0) {
				if (strlen(name) > 253)
					abort();
				check_host(name);
			}
		} else if (dns_smimea_name(s, name, sizeof(name)) == 0 &&
		    (strlen(name) > 253 || strstr(name, "._smimecert.") !=
		    name + 56))
			abort();
		free(s);
		break;
	}
	return 0;
}
