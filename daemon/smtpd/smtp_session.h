/* smtp_session.h: one inbound SMTP session (ESMTP server side); private to
 * daemon/smtpd/.  A session knows the server only through the session_env
 * the server gives it. */
#ifndef SMRELAY_SMTP_SESSION_H
#define SMRELAY_SMTP_SESSION_H

#include <sys/socket.h>
#include <event2/util.h>
#include <openssl/ssl.h>

struct config;
struct delivery_ops;
struct event_base;
struct listen_cfg;
struct smtp_session;

/*
 * What a session may use of the server that started it.  server.c owns it
 * and keeps it current (cfg and tls_server change on reload, draining on
 * SIGTERM); sessions only read it and report through the callbacks.
 */
struct session_env {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *tls_server;            /* NULL: no STARTTLS / implicit TLS */
	const struct delivery_ops *ops; /* where messages go */
	void *ops_ctx;
	int open_relay;                 /* sink: ignore relay_networks */
	int draining;                   /* SIGTERM: finish and close */
	const char *tmpdir;             /* where big bodies spill */
	void (*accepted)(void *arg);    /* a message got its 250 */
	void (*closed)(void *arg, void *tag); /* the session is gone */
	void *arg;
};

/* smtp_session.c */
/* Take over an accepted socket and start the conversation; `tag` comes
 * back in env->closed.  NULL (socket closed) if it cannot be set up. */
struct smtp_session *smtp_session_start(const struct session_env *,
    void *tag, evutil_socket_t, const struct sockaddr *, int socklen,
    const struct listen_cfg *);
/* Server is draining: close the session now if it is idle between
 * transactions; returns 1 if it was closed. */
int smtp_session_drain(struct smtp_session *);
/* "id=... state=..." of a live session, for the drain report. */
void smtp_session_describe(const struct smtp_session *, char *, size_t);

#endif
