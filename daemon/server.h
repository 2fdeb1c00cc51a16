/* server.h: listeners and the set of inbound sessions of one process. */
#ifndef SMRELAY_SERVER_H
#define SMRELAY_SERVER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "delivery.h"

struct config;

struct server {
	struct event_base *base;
	struct config *cfg;
	SSL_CTX *tls_server;            /* NULL: no STARTTLS / implicit TLS */
	const struct delivery_ops *ops; /* relay client or maildir sink */
	void *ops_ctx;
	int open_relay;                 /* sink: ignore relay_networks */
	int nsessions;
	int draining;                   /* SIGTERM: stop accepting */
	struct evconnlistener **listeners;
	int nlisteners;
	void (*on_idle)(struct server *); /* called when draining and nsessions hits 0 */
};

/* server.c */
/* Bind every `listen` of cfg; -1 with err set on failure. */
int server_listen(struct server *, char *err, size_t errlen);
void server_close_listeners(struct server *);
/* A session ended (called by smtp_session). */
void server_session_done(struct server *);

#endif
