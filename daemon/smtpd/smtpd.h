/* server.h: listeners and the set of inbound sessions of one process. */
#ifndef SMRELAY_SERVER_H
#define SMRELAY_SERVER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"

struct config;
struct smtp_session;

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
	void **listener_args;           /* owned, one per listener */
	int nlisteners;
	void (*on_idle)(struct server *); /* called when draining and nsessions hits 0 */
	const char *tmpdir;             /* where big bodies spill */
	struct smtp_session *sessions;  /* every live session (for drain) */
	unsigned long long nmessages;   /* accepted, for logs and tests */
};

/* server.c */
struct event_base *server_event_base(void);
/* Bind every `listen` of cfg; -1 with err set on failure. */
int server_listen(struct server *, char *err, size_t errlen);
void server_close_listeners(struct server *);
/* Stop accepting; idle sessions are told 421 and closed, busy ones finish.
 * on_idle fires once nothing is left. */
void server_drain(struct server *);

#endif
