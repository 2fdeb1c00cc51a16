/*
 * metrics_srv.c: GET /metrics and GET /healthz over libevent's evhttp, and
 * the control socket of `smrelayctl stats`.  Both are bounded: a few
 * connections at a time, small requests, short timeouts; a rendering is a
 * walk over a fixed table, with nothing that waits.
 */
#include "autoconfig.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "lib/lib.h"
#include "metrics.h"
#include "metrics_srv.h"

#define HTTP_CONNS_MAX		16	/* at a time; more are closed */
#define HTTP_TIMEOUT		10	/* seconds, per request */
#define HTTP_HEADERS_MAX	8192
#define HTTP_BODY_MAX		1024
#define CTL_CONNS_MAX		8
#define CTL_LINE_MAX		64
#define CTL_TIMEOUT		10

struct metrics_srv {
	struct metrics_srv_params p;
	struct evhttp		*http;
	struct evconnlistener	*http_l;        /* evhttp's */
	struct evconnlistener	*ctl_l;
	struct evhttp_connection *known[HTTP_CONNS_MAX];
	int			 nknown;
	double			 accepts[HTTP_CONNS_MAX];       /* mono_now() */
	int			 paused;
	struct event		*recheck;
	int			 nctl;
	int			 freeing;
};

/* Bind and listen on the first address of host:port. */
int
metrics_srv_bind_http(const char *host, const char *port, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res;
	int fd, r, on = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((r = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port,
	    &hints, &res)) != 0) {
		snprintf(err, errlen, "metrics_listen %s:%s: %s", host, port,
		    gai_strerror(r));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
	    sizeof(on)) == -1 || bind(fd, res->ai_addr, res->ai_addrlen) ==
	    -1 || listen(fd, 64) == -1) {
		snprintf(err, errlen, "metrics_listen %s:%s: %s", host, port,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Fill a unix socket address; -1 when path does not fit. */
static int
unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	return strlcpy_s(sun->sun_path, path, sizeof(sun->sun_path)) <
	    sizeof(sun->sun_path) ? 0 : -1;
}

/* A listening unix socket at path, mode 0600, owned by uid:gid. */
int
metrics_srv_bind_ctl(const char *path, int chown_it, uid_t uid, gid_t gid,
    char *err, size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, probe, r;

	if (unix_addr(path, &sun) == -1) {
		snprintf(err, errlen, "control socket %s: path too long for a "
		    "unix socket (data_dir is)", path);
		return -1;
	}
	/* a socket someone answers on is another smrelayd's */
	if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) != -1) {
		r = connect(probe, (struct sockaddr *)&sun, sizeof(sun));
		close(probe);
		if (r == 0) {
			snprintf(err, errlen, "control socket %s: in use (is "
			    "another smrelayd running?)", path);
			return -1;
		}
	}
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto fail;
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	/* the umask made it 0600; data_dir is the unprivileged user's by now,
	 * so nothing that follows a link it could put there in the meantime */
	if (r == -1 || (chown_it && fchownat(AT_FDCWD, path, uid, gid,
	    AT_SYMLINK_NOFOLLOW) == -1) || listen(fd, 16) == -1)
		goto fail;
	return fd;
 fail:
	snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/* ---- HTTP ---- */

/*
 * evhttp 2.1 has no connection limit and tells nothing of a connection
 * that closes before its first request.  The count kept here is an upper
 * bound: connections that made a request and are still open (their close
 * callback takes them off), plus every connection accepted within the
 * last HTTP_TIMEOUT seconds (one without a request is closed by then).
 * At HTTP_CONNS_MAX the listener pauses; a timer looks again each second.
 */
static void
http_check_limit(struct metrics_srv *m)
{
	struct timeval sec = { 1, 0 };
	double now = mono_now();
	int i, n = m->nknown;

	if (m->freeing)
		return;
	for (i = 0; i < HTTP_CONNS_MAX; i++)
		if (m->accepts[i] != 0 && now - m->accepts[i] <= HTTP_TIMEOUT + 1)
			n++;
	if (n >= HTTP_CONNS_MAX) {
		if (!m->paused)
			log_debug("metrics: up to %d connections open: not "
			    "accepting for now", n);
		m->paused = 1;
		evconnlistener_disable(m->http_l);
		evtimer_add(m->recheck, &sec);
	} else if (m->paused) {
		m->paused = 0;
		evconnlistener_enable(m->http_l);
	}
}

/* recent = 1: the oldest accept still counted, or -1.  recent = 0: a
 * slot for a new one: free or expired, else the oldest. */
static int
accept_slot(struct metrics_srv *m, int recent)
{
	double now = mono_now();
	int i, old = -1;

	for (i = 0; i < HTTP_CONNS_MAX; i++) {
		if (m->accepts[i] == 0 ||
		    now - m->accepts[i] > HTTP_TIMEOUT + 1) {
			if (!recent)
				return i;
			continue;
		}
		if (old == -1 || m->accepts[i] < m->accepts[old])
			old = i;
	}
	return old;
}

/* The timer while paused. */
static void
http_recheck_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_check_limit(arg);
}

/* A connection that made a request is gone. */
static void
http_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct metrics_srv *m = arg;
	int i;

	for (i = 0; i < m->nknown; i++)
		if (m->known[i] == evcon) {
			m->known[i] = m->known[--m->nknown];
			break;
		}
	http_check_limit(m);
}

/* A request's connection: known from now on, until it closes. */
static void
http_track(struct metrics_srv *m, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	int i, old;

	if (evcon == NULL)
		return;
	for (i = 0; i < m->nknown; i++)
		if (m->known[i] == evcon)
			return;
	if (m->nknown == HTTP_CONNS_MAX)
		return;         /* counted among the recent accepts anyway */
	/* Its accept is one of the recent ones (a first request comes within
	 * HTTP_TIMEOUT or never): forget the oldest of them, which expires
	 * first, so that it is not counted twice. */
	if ((old = accept_slot(m, 1)) != -1)
		m->accepts[old] = 0;
	m->known[m->nknown++] = evcon;
	evhttp_connection_set_closecb(evcon, http_closed_cb, m);
}

/* A new connection (evhttp makes its bufferevent: NULL). */
static struct bufferevent *
http_bev_cb(struct event_base *base, void *arg)
{
	struct metrics_srv *m = arg;
	int i;

	(void)base;
	if ((i = accept_slot(m, 0)) == -1)
		i = 0;
	m->accepts[i] = mono_now();
	http_check_limit(m);
	return NULL;
}

/* Reply with a status and a plain-text body. */
static void
http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

/* GET /metrics, GET /healthz; 404 for the rest. */
static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct metrics_srv *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(
	    req));
	struct evbuffer *b = evbuffer_new();
	char why[256];

	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	http_track(m, req);
	if (path != NULL && strcmp(path, "/metrics") == 0) {
		if (m->p.refresh != NULL)
			m->p.refresh(m->p.arg);
		metrics_render(b);
		http_reply(req, HTTP_OK, "OK",
		    "text/plain; version=0.0.4; charset=utf-8", b);
	} else if (path != NULL && strcmp(path, "/healthz") == 0) {
		why[0] = '\0';
		if (m->p.health != NULL && m->p.health(m->p.arg, why,
		    sizeof(why)) == -1) {
			evbuffer_add_printf(b, "unhealthy: %s\n", why);
			http_reply(req, 503, "Service Unavailable",
			    "text/plain; charset=utf-8", b);
		} else {
			/* still taking mail; why says what is degraded */
			if (why[0] != '\0')
				evbuffer_add_printf(b, "ok %s\n", why);
			else
				evbuffer_add_printf(b, "ok\n");
			http_reply(req, HTTP_OK, "OK",
			    "text/plain; charset=utf-8", b);
		}
	} else {
		evbuffer_add_printf(b, "not found: try /metrics or /healthz\n");
		http_reply(req, HTTP_NOTFOUND, "Not Found",
		    "text/plain; charset=utf-8", b);
	}
	evbuffer_free(b);
}

/* ---- the control socket ---- */

/* The answer is out (or the client went away): close. */
static void
ctl_close(struct bufferevent *bev, void *arg)
{
	struct metrics_srv *m = arg;

	bufferevent_free(bev);
	m->nctl--;
}

/* Everything written: done. */
static void
ctl_written_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ctl_close(bev, arg);
}

/* EOF, error or timeout. */
static void
ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	ctl_close(bev, arg);
}

/* One command line: "stats". */
static void
ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct metrics_srv *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	char *line;

	if ((line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF)) == NULL) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX)
			ctl_close(bev, m);
		return;
	}
	bufferevent_disable(bev, EV_READ);
	if (strcmp(line, "stats") == 0) {
		if (m->p.refresh != NULL)
			m->p.refresh(m->p.arg);
		metrics_render(out);
	} else
		evbuffer_add_printf(out, "# error: unknown command\n");
	free(line);
	bufferevent_setcb(bev, NULL, ctl_written_cb, ctl_event_cb, m);
}

/* A client of the control socket. */
static void
ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct metrics_srv *m = arg;
	struct bufferevent *bev;
	struct timeval tv = { CTL_TIMEOUT, 0 };

	(void)l;
	(void)sa;
	(void)socklen;
	if (m->nctl >= CTL_CONNS_MAX || (bev = bufferevent_socket_new(
	    m->p.base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	m->nctl++;
	bufferevent_setcb(bev, ctl_read_cb, NULL, ctl_event_cb, m);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Serve the sockets of p. */
struct metrics_srv *
metrics_srv_new(const struct metrics_srv_params *p)
{
	struct metrics_srv *m = xcalloc(1, sizeof(*m));
	struct evhttp_bound_socket *bound;

	m->p = *p;
	if (p->http_fd != -1) {
		if ((m->http = evhttp_new(p->base)) == NULL)
			fatalx("evhttp_new");
		evhttp_set_timeout(m->http, HTTP_TIMEOUT);
		evhttp_set_max_headers_size(m->http, HTTP_HEADERS_MAX);
		evhttp_set_max_body_size(m->http, HTTP_BODY_MAX);
		evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET |
		    EVHTTP_REQ_HEAD);
		evhttp_set_gencb(m->http, http_cb, m);
		evhttp_set_bevcb(m->http, http_bev_cb, m);
		if ((bound = evhttp_accept_socket_with_handle(m->http,
		    p->http_fd)) == NULL)
			fatalx("evhttp_accept_socket");
		m->http_l = evhttp_bound_socket_get_listener(bound);
		m->recheck = evtimer_new(p->base, http_recheck_cb, m);
	}
	if (p->ctl_fd != -1 && (m->ctl_l = evconnlistener_new(p->base,
	    ctl_accept_cb, m, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    -1, p->ctl_fd)) == NULL)
		fatalx("evconnlistener_new");
	return m;
}

void
metrics_srv_free(struct metrics_srv *m)
{
	if (m == NULL)
		return;
	m->freeing = 1;
	if (m->recheck != NULL)
		event_free(m->recheck);
	if (m->ctl_l != NULL)
		evconnlistener_free(m->ctl_l);
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m);
}

/* ---- the client ---- */

/* Wait for fd to be ready for `events` until the deadline; -1 timeout. */
static int
wait_fd(int fd, short events, double deadline)
{
	struct pollfd p = { fd, events, 0 };
	double left;
	int r;

	for (;;) {
		if ((left = deadline - mono_now()) <= 0)
			return -1;
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

/* Ask the daemon at path for cmd and read its whole answer. */
int
metrics_srv_query(const char *path, const char *cmd, int timeout_ms,
    char **out, size_t *outlen, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	double deadline = mono_now() + timeout_ms / 1000.0;
	char *buf = NULL, *req;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	*out = NULL;
	if (unix_addr(path, &sun) == -1) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "%s: %s (is smrelayd running?)", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	req = xasprintf("%s\n", cmd);
	if (write_full(fd, req, strlen(req)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	for (;;) {
		if (wait_fd(fd, POLLIN, deadline) == -1) {
			snprintf(err, errlen, "%s: no answer within %d ms",
			    path, timeout_ms);
			goto fail;
		}
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap);
		}
		if ((n = read(fd, buf + len, cap - len - 1)) == 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		len += (size_t)n;
		if (len > METRICS_CTL_MAX) {
			snprintf(err, errlen, "%s: answer over %d bytes", path,
			    METRICS_CTL_MAX);
			goto fail;
		}
	}
	if (buf == NULL)
		buf = xmalloc(1);
	buf[len] = '\0';
	free(req);
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
 fail:
	free(req);
	free(buf);
	close(fd);
	return -1;
}
