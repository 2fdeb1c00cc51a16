/* relay.h: the outbound SMTP client: a small pool of connections to the next
 * hop, STARTTLS per relay_tls, PIPELINING, dot-stuffed body streaming; and
 * the routing decision (which next hop a recipient goes to). */
#ifndef SMRELAY_RELAY_H
#define SMRELAY_RELAY_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"

struct config;
struct relay_pool;

/*
 * Client timeouts in milliseconds (RFC 5321 4.5.3.2 by default).  One table,
 * so tests can shorten them.
 */
struct relay_timeouts {
	int connect;            /* DNS + TCP connect */
	int greeting;           /* 220 banner */
	int ehlo;               /* EHLO/HELO, STARTTLS, RSET replies */
	int tls;                /* TLS handshake */
	int mail;
	int rcpt;
	int data_init;          /* reply to DATA */
	int data_block;         /* no progress writing the body */
	int data_final;         /* reply after <CRLF>.<CRLF> */
	int idle;               /* pooled connection unused */
	int hold;               /* in a transaction, waiting for the client */
	int quit;               /* reply to QUIT before we just close */
};

extern const struct relay_timeouts relay_default_timeouts;

/* relay.c */
/* `client_ctx` may be NULL when relay_tls = none.  The pool keeps a pointer
 * to cfg (hostname, relay host/port, relay_tls). */
struct relay_pool *relay_pool_new(struct event_base *, const struct config *,
    SSL_CTX *client_ctx);
/* Close idle connections; in-flight transactions are aborted. */
void relay_pool_free(struct relay_pool *);
/* Swap in a new config/TLS context after SIGHUP (new connections use it). */
void relay_pool_reconfigure(struct relay_pool *, const struct config *,
    SSL_CTX *client_ctx);
/* Number of open outbound connections (busy + idle), for tests and logs. */
int relay_pool_nconns(const struct relay_pool *);

/* Replace the timeout table (tests); affects later commands. */
void relay_pool_set_timeouts(struct relay_pool *, const struct relay_timeouts *);

/* The backend: ctx is the struct relay_pool *. */
extern const struct delivery_ops relay_delivery_ops;

/* Where mail for one recipient goes (route.c). */
struct route_target {
	int mx;                 /* 1: MX lookup for the recipient's domain */
	const char *host;       /* when !mx; NULL with mx */
	const char *port;       /* relay_mx_port with mx */
	enum relay_tls tls;     /* resolved: the route's tls= or relay_tls */
	int route_line;         /* config line of the route, 0: `relay` */
	/* Groups recipients for one connection pool and transaction:
	 * "mx:DOMAIN/TLS" (domain lowercased, no trailing dot) or
	 * "HOST:PORT/TLS" (host lowercased, "[IPv6]:PORT/TLS"). */
	char key[300];
};

/* route.c */
/*
 * Where mail for rcpt (an envelope address without <>) goes: the first
 * matching `route` in file order, else `relay`.  Patterns match the address
 * with its domain lowercased and one trailing dot removed; an address
 * without a domain matches only `*`.  The strings of t point into cfg.  -1
 * when the target is mx and rcpt has no usable domain (the caller answers
 * 5.1.3), or when cfg has no relay at all.
 */
int route_for(const struct config *, const char *rcpt, struct route_target *t);

#endif
