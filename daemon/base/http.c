/* http.c: a bounded HTTP GET on the event loop (see http.h). */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "http.h"
#include "lib/lib.h"
#include "tls.h"

#define HTTP_URL_MAX		2048
#define HTTP_HEADERS_MAX	16384

struct http_client {
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*tls;           /* at the first https:// */
};

struct http_get {
	struct http_client	*hc;
	struct event_base	*base;
	struct evdns_base	*dns;
	int			 https;
	char			 host[256];
	char			 port[8];
	char			*path;          /* path and query */
	unsigned char		*post;          /* a copy of o.post */
	char			*ctype;
	struct http_get_opts	 o;
	struct sockaddr_storage	*deny;          /* a copy of o.deny */
	struct evdns_getaddrinfo_request *dreq;
	int			 dns_pending;
	struct evhttp_connection *conn;
	struct bufferevent	*bev;           /* https: the conn's */
	SSL			*ssl;           /* the bev's */
	int			 tls_heard;     /* the peer sent a TLS record */
	struct evhttp_request	*req;
	struct event		*deadline;
	struct event		*start;         /* resolve from the loop */
	enum evhttp_request_error herr;
	int			 have_herr;
	int			 finished;      /* cb called, or cancelled */
	int			 cancelling;    /* in http_get_cancel */
	int			 freeing;
	http_get_cb		*cb;
	void			*arg;
};

/* Free everything (from its own event: never inside a libevent callback
 * of the connection). */
static void
http_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_get *g = arg;

	(void)fd;
	(void)what;
	if (g->conn != NULL)
		evhttp_connection_free(g->conn);
	if (g->deadline != NULL)
		event_free(g->deadline);
	if (g->start != NULL)
		event_free(g->start);
	free(g->deny);
	free(g->path);
	free(g->post);
	free(g->ctype);
	free(g);
}

/* Free once finished and no DNS callback can still come. */
static void
http_release(struct http_get *g)
{
	struct timeval now = { 0, 0 };

	if (!g->finished || g->dns_pending || g->freeing)
		return;
	g->freeing = 1;
	if (g->deadline != NULL)
		event_del(g->deadline);
	if (event_base_once(g->base, -1, EV_TIMEOUT, http_free_cb, g,
	    &now) == -1)
		alloc_fail("event_base_once");
}

/* Report once, then release. */
static void
http_finish(struct http_get *g, int status, const char *err,
    const unsigned char *body, size_t len)
{
	if (!g->finished) {
		g->finished = 1;
		g->cb(status, err, body, len, g->arg);
	}
	http_release(g);
}

/* Whether sa is on the deny list (port 0 there: any port). */
static int
http_denied(const struct http_get *g, const struct sockaddr *sa)
{
	const struct sockaddr_storage *d;
	const struct sockaddr_in *a4 = (const void *)sa, *d4;
	const struct sockaddr_in6 *a6 = (const void *)sa, *d6;
	size_t i;

	for (i = 0; i < g->o.ndeny; i++) {
		d = &g->deny[i];
		if (d->ss_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET) {
			d4 = (const void *)d;
			if ((d4->sin_port == 0 || d4->sin_port ==
			    a4->sin_port) && (d4->sin_addr.s_addr ==
			    htonl(INADDR_ANY) || d4->sin_addr.s_addr ==
			    a4->sin_addr.s_addr))
				return 1;
		} else if (sa->sa_family == AF_INET6) {
			d6 = (const void *)d;
			if ((d6->sin6_port == 0 || d6->sin6_port ==
			    a6->sin6_port) && (IN6_IS_ADDR_UNSPECIFIED(
			    &d6->sin6_addr) || memcmp(&d6->sin6_addr,
			    &a6->sin6_addr, sizeof(a6->sin6_addr)) == 0))
				return 1;
		}
	}
	return 0;
}

/* Why a request failed, from libevent's error callback. */
static void
http_error_cb(enum evhttp_request_error e, void *arg)
{
	struct http_get *g = arg;

	g->herr = e;
	g->have_herr = 1;
	g->req = NULL;          /* libevent frees it */
}

/* The reason for a failed request. */
static const char *
http_error_str(const struct http_get *g)
{
	if (!g->have_herr)
		return "connection failed";
	switch (g->herr) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return "connection closed early";
	case EVREQ_HTTP_INVALID_HEADER:
		return "malformed response";
	case EVREQ_HTTP_BUFFER_ERROR:
		return "connection failed";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "response too large";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "cancelled";
	default:
		return "request failed";
	}
}

/* A TLS record (or message) went by: note when it came from the peer. */
static void
http_tls_msg_cb(int write_p, int version, int type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	struct http_get *g = arg;

	(void)version;
	(void)type;
	(void)buf;
	(void)len;
	(void)ssl;
	if (!write_p)
		g->tls_heard = 1;
}

/* The oldest OpenSSL error the bufferevent kept (it also keeps bare
 * SSL_ERROR_* codes, no library: skipped); NULL if none. */
static const char *
http_tls_reason(const struct http_get *g)
{
	const char *r, *why = NULL;
	unsigned long e;

	while ((e = bufferevent_get_openssl_error(g->bev)) != 0)
		if (ERR_GET_LIB(e) != 0 &&
		    (r = ERR_reason_error_string(e)) != NULL)
			why = r;        /* popped newest first */
	return why;
}

/* The reason for a failed request: why the TLS handshake failed when one
 * began and did not finish (into buf), else libevent's reason (a refused
 * connection, or a peer that hung up without a word, is not TLS's). */
static const char *
http_why(const struct http_get *g, char *buf, size_t len)
{
	const char *r;
	long v;

	if (g->ssl == NULL || SSL_is_init_finished(g->ssl))
		return http_error_str(g);
	if (g->have_herr && g->herr == EVREQ_HTTP_TIMEOUT)
		return SSL_in_before(g->ssl) ? "timed out" :
		    "timed out in the TLS handshake";
	r = http_tls_reason(g);
	if ((v = SSL_get_verify_result(g->ssl)) != X509_V_OK)
		snprintf(buf, len, "TLS handshake failed: certificate verify "
		    "failed: %s", X509_verify_cert_error_string(v));
	else if (r != NULL)
		snprintf(buf, len, "TLS handshake failed: %s", r);
	else if (g->tls_heard)
		snprintf(buf, len, "TLS handshake failed: %s",
		    http_error_str(g));
	else
		return http_error_str(g);
	return buf;
}

/* The response (or its failure). */
static void
http_done_cb(struct evhttp_request *req, void *arg)
{
	struct http_get *g = arg;
	struct evbuffer *in;
	char why[320];
	size_t n;
	int code;

	g->req = NULL;
	if (req == NULL || (code = evhttp_request_get_response_code(req)) ==
	    0) {
		http_finish(g, 0, http_why(g, why, sizeof(why)), NULL, 0);
		return;
	}
	if (code != 200) {
		snprintf(why, sizeof(why), code >= 300 && code < 400 ?
		    "HTTP %d: redirect not followed" : "HTTP %d", code);
		http_finish(g, code, why, NULL, 0);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	n = evbuffer_get_length(in);
	if (n > g->o.max_body) {
		http_finish(g, 0, "response too large", NULL, 0);
		return;
	}
	http_finish(g, 200, NULL, evbuffer_pullup(in, -1), n);
}

/* The connection to ip: plain, or TLS with the peer verified against the
 * system trust and the URL's host.  NULL with why set. */
static struct evhttp_connection *
http_conn_new(struct http_get *g, const char *ip, char *why, size_t len)
{
	unsigned short port = (unsigned short)atoi(g->port);
	struct evhttp_connection *conn;
	SSL *ssl;

	if (!g->https)
		return evhttp_connection_base_new(g->base, g->dns, ip, port);
	if (g->hc->tls == NULL &&
	    (g->hc->tls = tls_fetch_ctx(why, len)) == NULL)
		return NULL;
	ERR_clear_error();
	if ((ssl = SSL_new(g->hc->tls)) == NULL)
		alloc_fail("SSL_new");
	SSL_set_msg_callback(ssl, http_tls_msg_cb);
	SSL_set_msg_callback_arg(ssl, g);
	if (tls_client_setup(ssl, g->host, 1) == -1) {
		snprintf(why, len, "TLS setup for %s: %s", g->host,
		    tls_error());
		SSL_free(ssl);
		return NULL;
	}
	/* the bufferevent owns ssl from here, and the connection it */
	if ((g->bev = bufferevent_openssl_socket_new(g->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS)) == NULL)
		alloc_fail("bufferevent_openssl_socket_new");
	bufferevent_openssl_set_allow_dirty_shutdown(g->bev, 1);
	if ((conn = evhttp_connection_base_bufferevent_new(g->base, g->dns,
	    g->bev, ip, port)) == NULL)
		alloc_fail("evhttp_connection_base_bufferevent_new");
	g->ssl = ssl;
	return conn;
}

/* Connect to the resolved address and send the request. */
static void
http_send(struct http_get *g, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN], why[300];
	const void *a = sa->sa_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)(const void *)sa)->
	    sin_addr : (const void *)&((const struct sockaddr_in6 *)
	    (const void *)sa)->sin6_addr;
	struct evhttp_request *req;

	snprintf(why, sizeof(why), "cannot create the connection");
	if (evutil_inet_ntop(sa->sa_family, a, ip, sizeof(ip)) == NULL ||
	    (g->conn = http_conn_new(g, ip, why, sizeof(why))) == NULL) {
		http_finish(g, 0, why, NULL, 0);
		return;
	}
	evhttp_connection_set_timeout(g->conn, g->o.timeout);
	evhttp_connection_set_retries(g->conn, 0);
	evhttp_connection_set_max_body_size(g->conn,
	    (ev_ssize_t)g->o.max_body);
	evhttp_connection_set_max_headers_size(g->conn, HTTP_HEADERS_MAX);
	if ((req = evhttp_request_new(http_done_cb, g)) == NULL) {
		http_finish(g, 0, "out of memory", NULL, 0);
		return;
	}
	evhttp_request_set_error_cb(req, http_error_cb);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	    g->host);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "User-Agent", "smrelay/" PACKAGE_VERSION);
	if (g->post != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", g->ctype);
		evbuffer_add(evhttp_request_get_output_buffer(req), g->post,
		    g->o.postlen);
	}
	if (evhttp_make_request(g->conn, req, g->post != NULL ?
	    EVHTTP_REQ_POST : EVHTTP_REQ_GET, g->path) == -1) {
		http_finish(g, 0, "cannot send the request", NULL, 0);
		return;
	}
	g->req = req;
}

/* The name resolved: the first address not on the deny list. */
static void
http_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct http_get *g = arg;
	struct evutil_addrinfo *ai;
	char why[400];

	g->dns_pending = 0;
	g->dreq = NULL;
	if (g->finished) {              /* cancelled or timed out */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		if (!g->cancelling)
			http_release(g);
		return;
	}
	if (result != 0 || res == NULL) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", g->host,
		    evutil_gai_strerror(result));
		http_finish(g, 0, why, NULL, 0);
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    !http_denied(g, ai->ai_addr))
			break;
	if (ai == NULL)
		http_finish(g, 0, "the URL points at one of our own listeners",
		    NULL, 0);
	else
		http_send(g, ai->ai_addr);
	evutil_freeaddrinfo(res);
}

/* The deadline for the whole request passed. */
static void
http_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_get *g = arg;
	const char *why = "timed out";

	(void)fd;
	(void)what;
	if (g->ssl != NULL && !SSL_in_before(g->ssl) &&
	    !SSL_is_init_finished(g->ssl))
		why = "timed out in the TLS handshake";
	if (g->req != NULL) {
		evhttp_cancel_request(g->req);
		g->req = NULL;
	}
	http_finish(g, 0, why, NULL, 0);
	if (g->dreq != NULL)
		evdns_getaddrinfo_cancel(g->dreq);
}

/* Resolve the host (a literal address answers at once). */
static void
http_start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_get *g = arg;
	struct evutil_addrinfo hints;

	(void)fd;
	(void)what;
	if (g->finished)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG | EVUTIL_AI_NUMERICSERV;
	g->dns_pending = 1;
	g->dreq = evdns_getaddrinfo(g->dns, g->host, g->port, &hints,
	    http_dns_cb, g);
}

/* Split url into host, port and path; -1 with err set. */
static int
http_parse(struct http_get *g, const char *url, char *err, size_t errlen)
{
	struct evhttp_uri *u;
	const char *scheme, *host, *path, *query;
	int port, rc = -1;

	if (strlen(url) > HTTP_URL_MAX) {
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	if ((u = evhttp_uri_parse_with_flags(url, 0)) == NULL) {
		snprintf(err, errlen, "malformed URL");
		return -1;
	}
	scheme = evhttp_uri_get_scheme(u);
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u);
	path = evhttp_uri_get_path(u);
	query = evhttp_uri_get_query(u);
	if (scheme != NULL)
		g->https = strcasecmp(scheme, "https") == 0;
	if (scheme == NULL || (!g->https && strcasecmp(scheme, "http") != 0))
		snprintf(err, errlen, "not an http:// or https:// URL");
	else if (host == NULL || *host == '\0' || strlen(host) >=
	    sizeof(g->host) || evhttp_uri_get_userinfo(u) != NULL)
		snprintf(err, errlen, "bad host in URL");
	else if (port == 0 || port > 65535)
		snprintf(err, errlen, "bad port in URL");
	else {
		snprintf(g->host, sizeof(g->host), "%s", host);
		snprintf(g->port, sizeof(g->port), "%d", port >= 0 ? port :
		    g->https ? 443 : 80);
		g->path = xasprintf("%s%s%s", path != NULL && *path != '\0' ?
		    path : "/", query != NULL ? "?" : "", query != NULL ?
		    query : "");
		rc = 0;
	}
	evhttp_uri_free(u);
	return rc;
}

struct http_client *
http_client_new(struct event_base *base, struct evdns_base *dns)
{
	struct http_client *hc = xcalloc(1, sizeof(*hc));

	hc->base = base;
	hc->dns = dns;
	return hc;
}

void
http_client_free(struct http_client *hc)
{
	if (hc == NULL)
		return;
	SSL_CTX_free(hc->tls);  /* a connection still open holds a reference */
	free(hc);
}

struct http_get *
http_get_start(struct http_client *hc, const char *url,
    const struct http_get_opts *o, http_get_cb *cb, void *arg, char *err,
    size_t errlen)
{
	struct http_get *g = xcalloc(1, sizeof(*g));
	struct timeval tv = { o->timeout, 0 }, zero = { 0, 0 };
	struct event_base *base = hc->base;

	g->hc = hc;
	g->base = base;
	g->dns = hc->dns;
	g->o = *o;
	g->cb = cb;
	g->arg = arg;
	if (http_parse(g, url, err, errlen) == -1) {
		free(g);
		return NULL;
	}
	if (o->post != NULL) {
		g->post = xmalloc(o->postlen + 1);
		memcpy(g->post, o->post, o->postlen);
		g->ctype = xstrdup(o->content_type != NULL ?
		    o->content_type : "application/octet-stream");
	}
	g->o.post = NULL;
	g->deny = xcalloc(o->ndeny + 1, sizeof(*g->deny));
	if (o->ndeny > 0)
		memcpy(g->deny, o->deny, o->ndeny * sizeof(*g->deny));
	if ((g->deadline = evtimer_new(base, http_deadline_cb, g)) == NULL ||
	    evtimer_add(g->deadline, &tv) == -1)
		alloc_fail("evtimer_new");
	/* from the loop, so that no callback runs before we return */
	if ((g->start = evtimer_new(base, http_start_cb, g)) == NULL ||
	    evtimer_add(g->start, &zero) == -1)
		alloc_fail("evtimer_new");
	return g;
}

void
http_get_cancel(struct http_get *g)
{
	if (g == NULL || g->finished)
		return;
	g->finished = 1;
	g->cancelling = 1;
	if (g->dreq != NULL)
		evdns_getaddrinfo_cancel(g->dreq);      /* calls back now */
	if (g->req != NULL) {
		evhttp_cancel_request(g->req);
		g->req = NULL;
	}
	if (g->dns_pending) {           /* a resolver that answers later */
		g->cancelling = 0;
		return;                 /* its callback releases */
	}
	/* not inside any callback of ours: free now, so that nothing is
	 * left for an event base about to be freed */
	g->freeing = 1;
	http_free_cb(-1, 0, g);
}

struct sockaddr_storage *
http_deny_listeners(const struct config *cfg, size_t *n)
{
	struct sockaddr_storage *v;
	struct evutil_addrinfo hints, *res, *ai;
	const char *host;
	int i;

	*n = 0;
	v = xcalloc(1, sizeof(*v));
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV |
	    EVUTIL_AI_PASSIVE;
	for (i = 0; i < cfg->nlistens; i++) {
		host = cfg->listens[i].host;
		if (strcmp(host, "*") == 0)
			host = NULL;
		if (evutil_getaddrinfo(host, cfg->listens[i].port, &hints,
		    &res) != 0)
			continue;
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			v = xreallocarray(v, *n + 1, sizeof(*v));
			memset(&v[*n], 0, sizeof(v[*n]));
			memcpy(&v[(*n)++], ai->ai_addr, ai->ai_addrlen);
		}
		evutil_freeaddrinfo(res);
	}
	return v;
}
