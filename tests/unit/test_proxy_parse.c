/* test_proxy_parse.c: golden tests for the PROXY protocol parsers. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "golden.h"
#include "proto/proxy_parse.h"

/* Print an address as "1.2.3.4:25" or "[::1]:25". */
static void
print_addr(FILE *out, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		fprintf(out, "%s:%u", buf, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		fprintf(out, "[%s]:%u", buf, ntohs(sin6->sin6_port));
	} else
		fputs("-", out);
}

/*
 * One case: "v1 BYTES" or "v2 BYTES", escaped.  Also checks that every
 * proper prefix of a complete header asks for more bytes.
 */
static void
proxy_case(const char *line, FILE *out)
{
	static unsigned char buf[70000];
	struct proxy_hdr hdr;
	size_t len, i;
	int v2, ret, r;

	if (strncmp(line, "v1 ", 3) != 0 && strncmp(line, "v2 ", 3) != 0) {
		golden_fail("case must start with v1 or v2: %s", line);
		return;
	}
	v2 = line[1] == '2';
	len = golden_unescape(line + 3, (char *)buf);
	ret = v2 ? proxy_parse_v2(buf, len, &hdr) :
	    proxy_parse_v1(buf, len, &hdr);
	fprintf(out, "%s\n  => ret=%d", line, ret);
	if (ret > 0) {
		fprintf(out, " local=%d src=", hdr.local);
		print_addr(out, &hdr.src);
		fputs(" dst=", out);
		print_addr(out, &hdr.dst);
		for (i = 0; i < (size_t)ret; i++) {
			struct proxy_hdr h;

			r = v2 ? proxy_parse_v2(buf, i, &h) :
			    proxy_parse_v1(buf, i, &h);
			if (r != 0)
				golden_fail("prefix %zu gives %d: %s", i, r,
				    line);
		}
	}
	fputs("\n", out);
}

int
main(void)
{
	return golden_main("proxy_parse", proxy_case);
}
