/* proxy_parse.c: HAProxy PROXY protocol v1 (text) and v2 (binary) headers. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy_parse.h"

#define V1_MAX          107     /* worst case TCP6 line, CRLF included */
#define V1_MAXTOK       6
#define V2_HDRLEN       16

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* Decimal port 0..65535, no sign and no leading zero.  0 if valid. */
static int
v1_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;
	size_t n = strlen(s), i;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

/* Fill a sockaddr from v1 text address and port.  0 if valid. */
static int
v1_addr(int af, const char *addr, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return -1;
		return v1_port(port, &sin->sin_port);
	}
	sin6->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
		return -1;
	return v1_port(port, &sin6->sin6_port);
}

/*
 * Split a v1 line at single spaces into at most V1_MAXTOK tokens.  Returns
 * the number of tokens, -1 on an empty token or too many.
 */
static int
v1_split(char *line, char **tok)
{
	int n = 0;
	char *p = line;

	for (;;) {
		if (n == V1_MAXTOK || *p == '\0' || *p == ' ')
			return -1;
		tok[n++] = p;
		p = strchr(p, ' ');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

/* Parse a PROXY v1 header; see proxy_parse.h. */
int
proxy_parse_v1(const unsigned char *buf, size_t len, struct proxy_hdr *hdr)
{
	char line[V1_MAX + 1], *tok[V1_MAXTOK];
	size_t i, lim = len < V1_MAX ? len : V1_MAX;
	int af, ntok;

	memset(hdr, 0, sizeof(*hdr));
	if (memcmp(buf, "PROXY ", lim < 6 ? lim : 6) != 0)
		return -1;
	for (i = 0; i < lim && buf[i] != '\n'; i++)
		if (buf[i] == '\0' || (buf[i] == '\r' && i + 1 < lim &&
		    buf[i + 1] != '\n'))
			return -1;
	if (i == lim)
		return len >= V1_MAX ? -1 : 0;
	if (i < 7 || buf[i - 1] != '\r')
		return -1;
	memcpy(line, buf, i - 1);
	line[i - 1] = '\0';
	/* "PROXY UNKNOWN" may carry anything after it, which we ignore. */
	if (strcmp(line, "PROXY UNKNOWN") == 0 ||
	    strncmp(line, "PROXY UNKNOWN ", 14) == 0) {
		hdr->local = 1;
		return (int)(i + 1);
	}
	if ((ntok = v1_split(line, tok)) != 6)
		return -1;
	if (strcmp(tok[1], "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(tok[1], "TCP6") == 0)
		af = AF_INET6;
	else
		return -1;
	if (v1_addr(af, tok[2], tok[4], &hdr->src) != 0 ||
	    v1_addr(af, tok[3], tok[5], &hdr->dst) != 0)
		return -1;
	return (int)(i + 1);
}

/* Parse a PROXY v2 header; see proxy_parse.h. */
int
proxy_parse_v2(const unsigned char *buf, size_t len, struct proxy_hdr *hdr)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&hdr->src;
	struct sockaddr_in *d4 = (struct sockaddr_in *)&hdr->dst;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&hdr->src;
	struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&hdr->dst;
	size_t hlen;
	const unsigned char *a;

	memset(hdr, 0, sizeof(*hdr));
	if (memcmp(buf, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)))
		return -1;
	if (len >= 13 && (buf[12] >> 4 != 2 || (buf[12] & 0x0f) > 1))
		return -1;
	if (len < V2_HDRLEN)
		return 0;
	hlen = ((size_t)buf[14] << 8) | buf[15];
	if (len < V2_HDRLEN + hlen)
		return 0;
	a = buf + V2_HDRLEN;
	if ((buf[12] & 0x0f) == 0 || buf[13] == 0x00) {
		/* LOCAL (health check), or PROXY with AF_UNSPEC. */
		hdr->local = 1;
		return (int)(V2_HDRLEN + hlen);
	}
	switch (buf[13]) {
	case 0x11:      /* AF_INET, STREAM */
		if (hlen < 12)
			return -1;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(&d4->sin_addr, a + 4, 4);
		memcpy(&s4->sin_port, a + 8, 2);
		memcpy(&d4->sin_port, a + 10, 2);
		break;
	case 0x21:      /* AF_INET6, STREAM */
		if (hlen < 36)
			return -1;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		memcpy(&d6->sin6_addr, a + 16, 16);
		memcpy(&s6->sin6_port, a + 32, 2);
		memcpy(&d6->sin6_port, a + 34, 2);
		break;
	default:        /* UDP, AF_UNIX: not for an SMTP listener */
		return -1;
	}
	return (int)(V2_HDRLEN + hlen);
}
