/* relay.h: the outbound SMTP client: a small pool of connections to the next
 * hop, STARTTLS per relay_tls, PIPELINING, dot-stuffed body streaming. */
#ifndef SMRELAY_RELAY_H
#define SMRELAY_RELAY_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "delivery.h"

struct config;
struct relay_pool;

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

/* The backend: ctx is the struct relay_pool *. */
extern const struct delivery_ops relay_delivery_ops;

#endif
