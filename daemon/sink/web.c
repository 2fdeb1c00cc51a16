/* web.c: the sink's web inbox (`--http ADDR:PORT`): the page, its script
 * and style (web_assets.c), the list and each message as JSON under
 * /api/messages, and a message's raw bytes.  GET and HEAD only, bounded
 * headers and time; every answer carries a Content-Security-Policy that
 * allows no inline script and nothing from elsewhere. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <errno.h>
#include <strings.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "sink_priv.h"

#define WEB_URI_MAX	2048
#define WEB_PENDING_MAX	32	/* answers waiting for an analysis */

struct web {
	struct evhttp	*http;
	struct inbox	*inbox;
	struct workers	*workers;
	int		 npending;
	char		 bound[256];	/* the --http address, no brackets */
};

/* An answer waiting for its analysis on the worker thread. */
struct web_job {
	struct web		*w;
	struct evhttp_request	*req;	/* answered even when the client
					 * left: that frees it */
	struct evhttp_connection *evcon;	/* NULL once the client left */
	struct inbox_batch	*b;
	int			 get;	/* one message, else a list page */
	unsigned long long	 since;
	size_t			 offset, limit;
};

static const char web_csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; frame-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/* The headers every answer has. */
static void
web_headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Content-Security-Policy", web_csp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-store");
}

/* An error as JSON. */
static void
web_error(struct evhttp_request *req, int code, const char *reason,
    const char *what)
{
	struct evbuffer *b = evbuffer_new();
	json_t *o = json_pack("{s:s}", "error", what);
	char *s = json_dumps(o, JSON_COMPACT);

	web_headers(req, "application/json");
	evbuffer_add(b, s, strlen(s));
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
	free(s);
	json_decref(o);
}

/* evbuffer_add_reference's cleanup of a json_dumps() string. */
static void
web_free_ref(const void *data, size_t len, void *extra)
{
	(void)len;
	(void)extra;
	free((void *)(uintptr_t)data);
}

/* A JSON answer (o is consumed). */
static void
web_json(struct evhttp_request *req, json_t *o)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (s == NULL) {
		evbuffer_free(b);
		web_error(req, 500, "Internal Server Error", "encoding failed");
		return;
	}
	web_headers(req, "application/json");
	evbuffer_add_reference(b, s, strlen(s), web_free_ref, NULL);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* A number from the query, within [0, max]; def when absent, -1 if bad. */
static long long
web_qnum(struct evkeyvalq *q, const char *name, long long def,
    long long max)
{
	const char *v = evhttp_find_header(q, name);
	char *end;
	long long n;

	if (v == NULL || *v == '\0')
		return def;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0)
		return -1;
	return n > max ? max : n;
}

/* The connection of a waiting answer closed: libevent leaves the request
 * to us (detached); answering it at the end frees it. */
static void
web_job_gone(struct evhttp_connection *evcon, void *arg)
{
	struct web_job *j = arg;

	(void)evcon;
	j->evcon = NULL;
}

/* On the worker thread. */
static void
web_job_run(void *arg, void *tctx)
{
	struct web_job *j = arg;

	(void)tctx;
	inbox_batch_run(j->b);
}

/* Back on the loop: keep what was analysed, answer if someone waits. */
static void
web_job_done(void *arg)
{
	struct web_job *j = arg;
	struct web *w = j->w;
	json_t *o = NULL;

	w->npending--;
	if (j->evcon != NULL)
		evhttp_connection_set_closecb(j->evcon, NULL, NULL);
	if (j->get)
		o = inbox_get_finish(w->inbox, j->b);
	else
		inbox_batch_finish(w->inbox, j->b);
	/* answered even when the client left: that frees the request */
	if (!j->get)
		o = inbox_list(w->inbox, j->since, j->offset, j->limit);
	if (o != NULL)
		web_json(j->req, o);
	else
		web_error(j->req, 404, "Not Found", "no such message");
	free(j);
}

/* Run a batch off the loop and answer when it is done; 503 when too many
 * wait already. */
static void
web_defer(struct web *w, struct evhttp_request *req, struct inbox_batch *b,
    int get, unsigned long long since, size_t offset, size_t limit)
{
	struct web_job *j;

	if (w->npending >= WEB_PENDING_MAX) {
		inbox_batch_free(b);
		web_error(req, 503, "Service Unavailable", "busy analysing, "
		    "try again");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->w = w;
	j->req = req;
	j->evcon = evhttp_request_get_connection(req);
	j->b = b;
	j->get = get;
	j->since = since;
	j->offset = offset;
	j->limit = limit;
	evhttp_connection_set_closecb(j->evcon, web_job_gone, j);
	w->npending++;
	workers_submit(w->workers, web_job_run, web_job_done, j);
}

/* GET /api/messages?since=ID&offset=N&limit=N */
static void
web_list(struct web *w, struct evhttp_request *req, const struct evhttp_uri *u)
{
	struct evkeyvalq q;
	const char *qs = evhttp_uri_get_query(u);
	long long since, offset, limit;
	struct inbox_batch *b;

	TAILQ_INIT(&q);
	if (qs != NULL && evhttp_parse_query_str(qs, &q) == -1) {
		web_error(req, 400, "Bad Request", "bad query");
		return;
	}
	since = web_qnum(&q, "since", 0, 1LL << 62);
	offset = web_qnum(&q, "offset", 0, INBOX_MAX);
	limit = web_qnum(&q, "limit", 50, INBOX_PAGE_MAX);
	evhttp_clear_headers(&q);
	if (since < 0 || offset < 0 || limit < 0) {
		web_error(req, 400, "Bad Request", "since, offset and limit "
		    "are numbers");
		return;
	}
	if ((b = inbox_list_prepare(w->inbox, (unsigned long long)since,
	    (size_t)offset, (size_t)limit)) != NULL) {
		web_defer(w, req, b, 0, (unsigned long long)since,
		    (size_t)offset, (size_t)limit);
		return;
	}
	web_json(req, inbox_list(w->inbox, (unsigned long long)since,
	    (size_t)offset, (size_t)limit));
}

/* GET /api/messages/ID/raw: the file as it was saved, as a download. */
static void
web_raw(struct web *w, struct evhttp_request *req, unsigned long long id)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b;
	struct stat st;
	char *path, disp[64];
	int fd;

	if ((path = inbox_path(w->inbox, id)) == NULL) {
		web_error(req, 404, "Not Found", "no such message");
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		web_error(req, 404, "Not Found", "message file gone");
		return;
	}
	web_headers(req, "application/octet-stream");
	snprintf(disp, sizeof(disp), "attachment; filename=\"%llu.eml\"", id);
	evhttp_add_header(h, "Content-Disposition", disp);
	b = evbuffer_new();
	if (evbuffer_add_file(b, fd, 0, st.st_size) == -1) {
		close(fd);
		evbuffer_free(b);
		web_error(req, 500, "Internal Server Error", "cannot read");
		return;
	}
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* /api/messages/ID[/raw] */
static void
web_message(struct web *w, struct evhttp_request *req, const char *rest)
{
	struct inbox_batch *b;
	unsigned long long id;
	char *end;

	errno = 0;
	id = strtoull(rest, &end, 10);
	if (errno != 0 || end == rest || *rest < '0' || *rest > '9') {
		web_error(req, 404, "Not Found", "no such message");
		return;
	}
	if (strcmp(end, "/raw") == 0) {
		web_raw(w, req, id);
		return;
	}
	if (*end != '\0' || (b = inbox_get_prepare(w->inbox, id)) == NULL) {
		web_error(req, 404, "Not Found", "no such message");
		return;
	}
	web_defer(w, req, b, 1, 0, 0, 0);
}

/* A page, script or style of web_assets[]. */
static int
web_asset(struct evhttp_request *req, const char *path)
{
	struct evbuffer *b;
	int i;

	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (i = 0; web_assets[i].path != NULL; i++) {
		if (strcmp(web_assets[i].path, path) != 0)
			continue;
		b = evbuffer_new();
		web_headers(req, web_assets[i].type);
		evbuffer_add_reference(b, web_assets[i].body,
		    strlen(web_assets[i].body), NULL, NULL);
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
		return 1;
	}
	return 0;
}

/*
 * Whether the Host a browser sent names us: an address literal, localhost
 * or the --http address.  Another name is DNS rebinding (a hostile page's
 * own name pointed at this address to read the inbox as same-origin).
 * No Host at all (HTTP/1.0 tools) is taken.
 */
static int
web_host_ok(const struct web *w, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Host");
	char name[256], *colon;
	unsigned char a[16];
	size_t n;

	if (h == NULL)
		return 1;
	if ((n = strlen(h)) == 0 || n >= sizeof(name))
		return 0;
	memcpy(name, h, n + 1);
	if (name[0] == '[') {           /* [v6]:port */
		if ((colon = strchr(name, ']')) == NULL)
			return 0;
		*colon = '\0';
		return inet_pton(AF_INET6, name + 1, a) == 1;
	}
	if ((colon = strchr(name, ':')) != NULL)
		*colon = '\0';
	return inet_pton(AF_INET, name, a) == 1 ||
	    strcasecmp(name, "localhost") == 0 ||
	    strcasecmp(name, w->bound) == 0;
}

/* Every request: route by path. */
static void
web_request(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	const char *uri = evhttp_request_get_uri(req), *path;
	struct evhttp_uri *u;

	if (!web_host_ok(w, req)) {
		web_error(req, 421, "Misdirected Request", "this inbox answers "
		    "to its address or localhost only");
		return;
	}
	if (strlen(uri) > WEB_URI_MAX) {
		web_error(req, 414, "URI Too Long", "URI too long");
		return;
	}
	if ((u = evhttp_uri_parse(uri)) == NULL ||
	    (path = evhttp_uri_get_path(u)) == NULL) {
		if (u != NULL)
			evhttp_uri_free(u);
		web_error(req, 400, "Bad Request", "bad URI");
		return;
	}
	if (strcmp(path, "/api/messages") == 0)
		web_list(w, req, u);
	else if (strncmp(path, "/api/messages/", 14) == 0)
		web_message(w, req, path + 14);
	else if (!web_asset(req, path))
		web_error(req, 404, "Not Found", "not found");
	evhttp_uri_free(u);
}

/* Listen on ADDR:PORT ([v6]:PORT) with the inbox behind. */
struct web *
web_start(struct event_base *base, const char *addrport, struct inbox *ib,
    struct workers *workers, char *err, size_t errlen)
{
	char host[256], *colon, *end;
	struct web *w;
	long port;

	if (strlen(addrport) >= sizeof(host) ||
	    (colon = strrchr(addrport, ':')) == NULL) {
		snprintf(err, errlen, "--http %s: ADDR:PORT expected",
		    addrport);
		return NULL;
	}
	memcpy(host, addrport, colon - addrport);
	host[colon - addrport] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 1 || port > 65535 ||
	    host[0] == '\0') {
		snprintf(err, errlen, "--http %s: ADDR:PORT expected",
		    addrport);
		return NULL;
	}
	w = xcalloc(1, sizeof(*w));
	snprintf(w->bound, sizeof(w->bound), "%s", host);
	w->inbox = ib;
	w->workers = workers;
	if ((w->http = evhttp_new(base)) == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(w->http, WEB_HEADERS_MAX);
	evhttp_set_max_body_size(w->http, 1024);
	evhttp_set_timeout(w->http, WEB_TIMEOUT);
	evhttp_set_gencb(w->http, web_request, w);
	if (evhttp_bind_socket_with_handle(w->http, host,
	    (ev_uint16_t)port) == NULL) {
		snprintf(err, errlen, "--http %s: cannot listen: %s",
		    addrport, strerror(errno));
		web_free(w);
		return NULL;
	}
	return w;
}

void
web_free(struct web *w)
{
	if (w == NULL)
		return;
	if (w->http != NULL)
		evhttp_free(w->http);
	free(w);
}
