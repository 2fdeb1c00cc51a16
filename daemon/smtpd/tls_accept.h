/*
 * tls_accept.h: the server side of a TLS handshake over a plain
 * bufferevent, in OpenSSL's SSL_MODE_ASYNC, so that the one private-key
 * operation of a full handshake (a request to the key process: keyd_pkey.c
 * pauses the ASYNC job until the answer is in) never stops the event loop.
 * libevent's bufferevent_openssl cannot be used for it (it takes
 * SSL_ERROR_WANT_ASYNC for a failure); once the handshake is done the
 * session puts a bufferevent_openssl filter, in the open state, on the
 * same plain bufferevent.  Private to daemon/smtpd/.
 */
#ifndef SMRELAY_SMTPD_TLS_ACCEPT_H
#define SMRELAY_SMTPD_TLS_ACCEPT_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

struct tls_accept;

/*
 * The handshake is over: ssl (the caller's from now on) with the bytes
 * that came after it put back at the front of the plain bufferevent's
 * input, or NULL and why it failed (the peer's alert, EOF, a timeout, the
 * key process).  Called from the event loop, never from tls_accept_new.
 */
typedef void tls_accept_cb(void *arg, SSL *ssl, const char *why);

/* tls_accept.c */
/* Start the handshake on plain (whose callbacks it takes until it calls
 * cb; its timeouts stay); NULL if ctx gives no SSL. */
struct tls_accept *tls_accept_new(struct event_base *, struct bufferevent *plain,
    SSL_CTX *ctx, tls_accept_cb *cb, void *arg);
/* Stop (the caller is going away): no callback after this.  A job waiting
 * for the key process is finished off in the background, within the key
 * process client's timeout. */
void tls_accept_free(struct tls_accept *);

#endif
