/* smtpd.h: inbound SMTP: the listeners and the set of sessions of one
 * process, handing each message to a delivery backend (the gateway, or the
 * sink's Maildir writer). */
#ifndef SMRELAY_SMTPD_H
#define SMRELAY_SMTPD_H

#include <stddef.h>
#include <openssl/ssl.h>

struct config;
struct delivery_ops;
struct event_base;
struct server;

/* What a program gives server_new(). */
struct server_params {
	struct event_base *base;
	const struct config *cfg;       /* listens and limits (not owned) */
	SSL_CTX *tls_server;            /* NULL: no STARTTLS (not owned) */
	const struct delivery_ops *ops; /* the backend messages go to */
	void *ops_ctx;
	int open_relay;                 /* sink: ignore relay_networks */
	int reuseport;                  /* one of several processes binding
					 * the same listens (SO_REUSEPORT) */
	const char *tmpdir;             /* where big bodies spill */
	void (*on_idle)(void *arg);     /* draining and no session left */
	void *arg;
};

/* server.c */
/* One event_base for the process, with libevent's messages in our log. */
struct event_base *server_event_base(void);
struct server *server_new(const struct server_params *);
/* Bind every `listen` of the config; -1 with err set on failure. */
int server_listen(struct server *, char *err, size_t errlen);
void server_close_listeners(struct server *);
/* Set (or replace) the backend given to server_new(). */
void server_set_delivery(struct server *, const struct delivery_ops *,
    void *ops_ctx);
/* A new config and TLS context after SIGHUP: new sessions and the next
 * command of live ones see them.  The old ones must outlive live sessions
 * that may still read them (the caller keeps them until exit). */
void server_reconfigure(struct server *, const struct config *, SSL_CTX *);
/* Stop accepting; idle sessions are told 421 and closed, busy ones finish.
 * on_idle fires once nothing is left. */
void server_drain(struct server *);
/* Sessions open now; messages accepted since start. */
int server_sessions(const struct server *);
unsigned long long server_messages(const struct server *);
/* Close the listeners and free (no session may be left). */
void server_free(struct server *);

#endif
