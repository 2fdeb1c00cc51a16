/* http.h: a bounded HTTP GET (or POST) on the event loop, for CRLs and OCSP:
 * http:// or https:// (the server verified against the system trust store
 * and the URL's host, TLS >= 1.2), no redirects followed, one overall
 * deadline, a cap on the body, and never to an address:port on a deny list
 * (our own listeners).  Names are resolved with evdns first so the deny
 * list sees the address. */
#ifndef SMRELAY_HTTP_H
#define SMRELAY_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct evdns_base;
struct http_client;
struct http_get;

/*
 * The answer: status 200 and the body (valid during the call only), or
 * status 0 / another status with err saying what went wrong.  Called
 * exactly once, from the loop, unless http_get_cancel() came first.
 */
typedef void http_get_cb(int status, const char *err,
    const unsigned char *body, size_t len, void *arg);

struct http_get_opts {
	size_t		 max_body;      /* bytes; more is an error */
	int		 timeout;       /* seconds for the whole request */
	const struct sockaddr_storage *deny;    /* never connect to these */
	size_t		 ndeny;         /* (port 0 in one: any port) */
	const unsigned char *post;      /* non-NULL: POST this body (copied) */
	size_t		 postlen;
	const char	*content_type;  /* of the POST body */
};

/* http.c */
/* The loop and resolver a user's requests go through, and their TLS
 * context (made at the first https:// request, freed with the client). */
struct http_client *http_client_new(struct event_base *, struct evdns_base *);
/* Free; every request must be over or cancelled. */
void http_client_free(struct http_client *);
/*
 * Start GET url.  NULL with err set when the URL is refused before any
 * network use (not http:// or https://, malformed, too long).  A TLS
 * failure comes to cb as "TLS handshake failed: ...".
 */
struct http_get *http_get_start(struct http_client *, const char *url,
    const struct http_get_opts *, http_get_cb *, void *arg, char *err,
    size_t errlen);
/* Abandon a request: its callback will not be called. */
void http_get_cancel(struct http_get *);
/*
 * The sockaddrs of a config's listeners (for http_get_opts.deny); a
 * wildcard listener gives the wildcard address.  Malloc'd, *n entries.
 */
struct config;
struct sockaddr_storage *http_deny_listeners(const struct config *,
    size_t *n);

#endif
