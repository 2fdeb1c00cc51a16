/* proxy_parse.h: HAProxy PROXY protocol v1 (text) and v2 (binary) headers. */
#ifndef SMRELAY_PROXY_PARSE_H
#define SMRELAY_PROXY_PARSE_H

#include <stddef.h>
#include <sys/socket.h>

struct proxy_hdr {
	int local;                      /* v2 LOCAL / v1 UNKNOWN: keep the socket's addresses */
	struct sockaddr_storage src;    /* the real client */
	struct sockaddr_storage dst;
};

/* proxy_parse.c */
/*
 * Parse a PROXY header at the start of `buf`.  Returns the header length
 * (> 0) when complete, 0 when more bytes are needed, -1 when malformed.
 * v1 lines are at most 107 bytes; v2 headers at most 16 + 65535.
 */
int proxy_parse_v1(const unsigned char *buf, size_t len, struct proxy_hdr *);
int proxy_parse_v2(const unsigned char *buf, size_t len, struct proxy_hdr *);

#endif
