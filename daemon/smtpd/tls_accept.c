/* tls_accept.c: a server TLS handshake that does not block the loop
 * (tls_accept.h).  The SSL reads and writes memory BIOs; this file moves
 * bytes between them and the plain bufferevent, and runs SSL_do_handshake
 * again when bytes arrive or when the ASYNC job's descriptor (the key
 * process's answer) is ready. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/lib.h"
#include "tls_accept.h"

#define TLS_ACCEPT_CHUNK	16384
#define TLS_ACCEPT_FDS		4	/* ASYNC wait descriptors at once */
/* While a job waits: look again this often, so that a key process that
 * does not answer is noticed by the client's own deadline. */
static const struct timeval tls_accept_tick = { 0, 250000 };

struct tls_accept {
	struct event_base	*base;
	struct bufferevent	*bev;		/* the plain one, not ours */
	SSL			*ssl;
	BIO			*rbio, *wbio;	/* owned by ssl */
	tls_accept_cb		*cb;
	void			*arg;
	struct event		*step_ev;	/* deferred steps and the tick */
	struct event		*fd_ev[TLS_ACCEPT_FDS];
	int			 paused;	/* a job waits (WANT_ASYNC) */
	int			 orphan;	/* freed by its owner: finish the
						 * job, then go */
};

static void accept_step(struct tls_accept *);

/* Free a, and its SSL unless given away. */
static void
accept_destroy(struct tls_accept *a)
{
	int i;

	for (i = 0; i < TLS_ACCEPT_FDS; i++)
		if (a->fd_ev[i] != NULL)
			event_free(a->fd_ev[i]);
	event_free(a->step_ev);
	SSL_free(a->ssl);
	free(a);
}

/* The handshake ended: tell the owner (or, an orphan, just go). */
static void
accept_end(struct tls_accept *a, const char *why)
{
	SSL *ssl = NULL;

	if (a->orphan) {
		accept_destroy(a);
		return;
	}
	bufferevent_setcb(a->bev, NULL, NULL, NULL, NULL);
	if (why == NULL) {
		SSL_clear_mode(a->ssl, SSL_MODE_ASYNC);
		ssl = a->ssl;
		a->ssl = NULL;
	}
	a->cb(a->arg, ssl, why);
	/* the owner frees a (tls_accept_free) in its callback or later */
}

/* Loop callbacks: a step. */
static void
accept_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	accept_step(arg);
}

/* Watch the job's descriptors (and tick) until it can go on. */
static void
accept_wait(struct tls_accept *a)
{
	OSSL_ASYNC_FD fds[TLS_ACCEPT_FDS];
	size_t n = 0, i;

	for (i = 0; i < TLS_ACCEPT_FDS; i++)
		if (a->fd_ev[i] != NULL) {
			event_free(a->fd_ev[i]);
			a->fd_ev[i] = NULL;
		}
	if (SSL_get_all_async_fds(a->ssl, NULL, &n) && n > 0 &&
	    n <= TLS_ACCEPT_FDS && SSL_get_all_async_fds(a->ssl, fds, &n))
		for (i = 0; i < n; i++) {
			a->fd_ev[i] = event_new(a->base, fds[i], EV_READ,
			    accept_ev_cb, a);
			if (a->fd_ev[i] == NULL || event_add(a->fd_ev[i],
			    NULL) == -1)
				fatalx("tls_accept: event_new");
		}
	evtimer_add(a->step_ev, &tls_accept_tick);
}

/* Bytes from the peer into the SSL; its output to the peer. */
static void
accept_io(struct tls_accept *a, int in)
{
	struct evbuffer *ib = bufferevent_get_input(a->bev);
	unsigned char buf[TLS_ACCEPT_CHUNK];
	int n;

	while (in && (n = evbuffer_remove(ib, buf, sizeof(buf))) > 0)
		if (BIO_write(a->rbio, buf, n) != n)
			fatalx("tls_accept: BIO_write");
	while ((n = BIO_read(a->wbio, buf, sizeof(buf))) > 0)
		if (bufferevent_write(a->bev, buf, (size_t)n) == -1)
			fatalx("tls_accept: bufferevent_write");
}

/* What the peer sent after its part of the handshake goes back to the
 * front of the plain input, for the TLS filter to read. */
static void
accept_unread(struct tls_accept *a)
{
	struct evbuffer *ib = bufferevent_get_input(a->bev);
	struct evbuffer *rest;
	unsigned char buf[TLS_ACCEPT_CHUNK];
	int n;

	if ((rest = evbuffer_new()) == NULL)
		fatalx("tls_accept: evbuffer_new");
	while ((n = BIO_read(a->rbio, buf, sizeof(buf))) > 0)
		evbuffer_add(rest, buf, (size_t)n);
	evbuffer_prepend_buffer(ib, rest);
	evbuffer_free(rest);
}

/* Run the handshake as far as it goes now. */
static void
accept_step(struct tls_accept *a)
{
	char why[200];
	unsigned long e;
	int r, err;

	evtimer_del(a->step_ev);
	if (!a->orphan)
		accept_io(a, 1);
	ERR_clear_error();
	r = SSL_do_handshake(a->ssl);
	err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(a->ssl, r);
	a->paused = err == SSL_ERROR_WANT_ASYNC ||
	    err == SSL_ERROR_WANT_ASYNC_JOB;
	if (!a->orphan)
		accept_io(a, 0);
	if (a->paused) {
		if (!a->orphan)
			log_debug("tls handshake waits for the key process");
		accept_wait(a);
		return;
	}
	if (a->orphan) {
		accept_destroy(a);
		return;
	}
	switch (err) {
	case SSL_ERROR_NONE:
		accept_unread(a);
		accept_end(a, NULL);
		return;
	case SSL_ERROR_WANT_READ:
		return;         /* more from the peer */
	default:
		e = ERR_peek_error();
		snprintf(why, sizeof(why), "%s", e != 0 ?
		    ERR_reason_error_string(e) : "handshake failed");
		ERR_clear_error();
		accept_end(a, why);
	}
}

/* Bytes from the peer. */
static void
accept_read_cb(struct bufferevent *bev, void *arg)
{
	struct tls_accept *a = arg;

	(void)bev;
	if (!a->paused)
		accept_step(a);
}

/* EOF, an error or a timeout on the plain connection. */
static void
accept_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	accept_end(arg, (what & BEV_EVENT_TIMEOUT) ? "timeout" :
	    (what & BEV_EVENT_EOF) ? "connection closed" : "connection error");
}

/* Start a handshake on plain. */
struct tls_accept *
tls_accept_new(struct event_base *base, struct bufferevent *plain,
    SSL_CTX *ctx, tls_accept_cb *cb, void *arg)
{
	struct tls_accept *a;
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->bev = plain;
	a->ssl = ssl;
	a->cb = cb;
	a->arg = arg;
	if ((a->rbio = BIO_new(BIO_s_mem())) == NULL ||
	    (a->wbio = BIO_new(BIO_s_mem())) == NULL)
		fatalx("tls_accept: BIO_new");
	BIO_set_mem_eof_return(a->rbio, -1);
	SSL_set_bio(ssl, a->rbio, a->wbio);
	SSL_set_mode(ssl, SSL_MODE_ASYNC);
	SSL_set_accept_state(ssl);
	if ((a->step_ev = evtimer_new(base, accept_ev_cb, a)) == NULL)
		fatalx("tls_accept: evtimer_new");
	bufferevent_setcb(plain, accept_read_cb, NULL, accept_event_cb, a);
	bufferevent_enable(plain, EV_READ | EV_WRITE);
	/* bytes may be there already (after a PROXY header): from the loop */
	event_active(a->step_ev, EV_TIMEOUT, 1);
	return a;
}

/* Let go: a job that waits on the key process is finished off first. */
void
tls_accept_free(struct tls_accept *a)
{
	if (a == NULL)
		return;
	if (a->bev != NULL)
		bufferevent_setcb(a->bev, NULL, NULL, NULL, NULL);
	a->bev = NULL;
	if (a->paused && a->ssl != NULL) {
		/* SSL_free would leave the paused job behind: resume it on
		 * the tick until the key process answers or its time runs
		 * out (keyd_async_done), then free */
		a->orphan = 1;
		return;
	}
	accept_destroy(a);
}
