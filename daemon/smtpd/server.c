/* server.c: listeners and the set of inbound sessions of one process. */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "smtpd.h"
#include "smtp_session.h"

/* A live session, in the server's list. */
struct server_sess {
	struct smtp_session *s;
	LIST_ENTRY(server_sess) entry;
};

struct server {
	struct session_env env;         /* what sessions read (cfg, tls, ...) */
	LIST_HEAD(, server_sess) sessions;
	int nsessions;
	unsigned long long nmessages;   /* accepted, for logs and tests */
	struct evconnlistener **listeners;
	void **listener_args;           /* owned, one per listener */
	int nlisteners;
	int reuseport;                  /* SO_REUSEPORT: one of several */
	void (*on_idle)(void *arg);
	void *arg;
	struct event *rotate_ev;        /* tls_ticket_rotate */
	struct event *drain_ev;         /* draining: who is left, now and then */
	int rotate;                     /* its period now, seconds */
};

struct listener_ctx {
	struct server *srv;
	const struct listen_cfg *lc;
};

/* Refuse a connection beyond max_connections without a session. */
static void
server_refuse(struct server *srv, evutil_socket_t fd)
{
	char msg[512];
	int n;

	n = snprintf(msg, sizeof(msg),
	    "421 4.7.0 %s Too many connections, try again later\r\n",
	    srv->env.cfg->hostname);
	if (send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("refuse: send: %s", strerror(errno));
	evutil_closesocket(fd);
}

/* A new inbound connection on one of our listeners. */
static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct listener_ctx *lx = arg;
	struct server *srv = lx->srv;
	struct server_sess *sn;
	char addr[64];

	(void)l;
	metrics_inc(M_CONN_TOTAL);
	if (srv->env.draining) {
		evutil_closesocket(fd);
		return;
	}
	if (srv->nsessions >= srv->env.cfg->max_connections) {
		metrics_inc(M_CONN_REFUSED);
		sockaddr_str(sa, addr, sizeof(addr));
		log_warnx("connection refused peer=%s reason=max_connections "
		    "limit=%d", addr, srv->env.cfg->max_connections);
		server_refuse(srv, fd);
		return;
	}
	/* replies, pipelined groups and TLS records go out at once, not
	 * after the peer's delayed ACK (Nagle) */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
	    sizeof(int)) == -1 && errno != EOPNOTSUPP && errno != ENOPROTOOPT)
		log_debug("TCP_NODELAY: %s", strerror(errno));
	sn = xcalloc(1, sizeof(*sn));
	if ((sn->s = smtp_session_start(&srv->env, sn, fd, sa, socklen,
	    lx->lc)) == NULL) {
		free(sn);
		return;
	}
	LIST_INSERT_HEAD(&srv->sessions, sn, entry);
	srv->nsessions++;
	metrics_set(M_CONN_CURRENT, (uint64_t)srv->nsessions);
}

/* accept() failed (EMFILE...): log and keep serving. */
static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	log_warn("accept");
}

/* Bind one listen entry (all addresses its host resolves to). */
static int
server_listen_one(struct server *srv, const struct listen_cfg *lc,
    char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	struct evconnlistener *l;
	struct listener_ctx *lx;
	const char *host = lc->host;
	int r, n = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (host != NULL && (strcmp(host, "*") == 0 || host[0] == '\0'))
		host = NULL;
	r = getaddrinfo(host, lc->port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "listen %s:%s: %s", lc->host, lc->port,
		    gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		lx = xcalloc(1, sizeof(*lx));
		lx->srv = srv;
		lx->lc = lc;
		l = evconnlistener_new_bind(srv->env.base, server_accept_cb, lx,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
		    LEV_OPT_CLOSE_ON_EXEC | (srv->reuseport ?
		    LEV_OPT_REUSEABLE_PORT : 0), 511,
		    ai->ai_addr, (int)ai->ai_addrlen);
		if (l == NULL) {
			snprintf(err, errlen, "listen %s:%s: %s", lc->host,
			    lc->port, strerror(errno));
			free(lx);
			freeaddrinfo(res);
			return -1;
		}
		evconnlistener_set_error_cb(l, server_accept_error_cb);
		srv->listeners = xreallocarray(srv->listeners,
		    (size_t)srv->nlisteners + 1, sizeof(*srv->listeners));
		srv->listener_args = xreallocarray(srv->listener_args,
		    (size_t)srv->nlisteners + 1, sizeof(*srv->listener_args));
		srv->listener_args[srv->nlisteners] = lx;
		srv->listeners[srv->nlisteners++] = l;
		n++;
	}
	freeaddrinfo(res);
	if (n == 0) {
		snprintf(err, errlen, "listen %s:%s: no address", lc->host,
		    lc->port);
		return -1;
	}
	return 0;
}

/* Route libevent's own diagnostics through our logger. */
static void
server_event_log(int severity, const char *msg)
{
	int lvl = LOG_LVL_DEBUG;

	if (severity == EVENT_LOG_WARN)
		lvl = LOG_LVL_WARN;
	else if (severity == EVENT_LOG_ERR)
		lvl = LOG_LVL_ERROR;
	else if (severity == EVENT_LOG_MSG)
		lvl = LOG_LVL_INFO;
	log_at(lvl, "libevent: %s", msg);
}

/* One event_base for the process: single-threaded, so no locks, and
 * epoll changes coalesced per loop iteration (fewer epoll_ctl calls). */
struct event_base *
server_event_base(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	event_set_log_callback(server_event_log);
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

/* Bind every `listen` of the config; -1 with err set on failure. */
int
server_listen(struct server *srv, char *err, size_t errlen)
{
	int i;

	for (i = 0; i < srv->env.cfg->nlistens; i++) {
		if (server_listen_one(srv, &srv->env.cfg->listens[i], err,
		    errlen) == -1)
			return -1;
		log_info("listening on %s:%s tls=%s%s",
		    srv->env.cfg->listens[i].host,
		    srv->env.cfg->listens[i].port,
		    srv->env.cfg->listens[i].tls == LISTEN_TLS_IMPLICIT ? "implicit" :
		    srv->env.cfg->listens[i].tls == LISTEN_TLS_NONE ? "none" :
		    "starttls", srv->reuseport ? " reuseport" : "");
	}
	return 0;
}

/* Close every listening socket. */
void
server_close_listeners(struct server *srv)
{
	int i;

	for (i = 0; i < srv->nlisteners; i++) {
		evconnlistener_free(srv->listeners[i]);
		free(srv->listener_args[i]);
	}
	free(srv->listeners);
	free(srv->listener_args);
	srv->listeners = NULL;
	srv->listener_args = NULL;
	srv->nlisteners = 0;
}

/* Draining: every DRAIN_REPORT seconds, name the sessions still open and
 * what they wait on (an admin whose daemon does not stop sees why). */
#define DRAIN_REPORT 5
#define DRAIN_REPORT_MAX 20             /* sessions named per report */

static void
server_drain_report(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct server_sess *sn;
	char line[256];
	int n = 0;

	(void)fd;
	(void)what;
	log_info("draining: %d session(s) still open", srv->nsessions);
	LIST_FOREACH(sn, &srv->sessions, entry) {
		if (n++ == DRAIN_REPORT_MAX) {
			log_info("draining: ...");
			break;
		}
		smtp_session_describe(sn->s, line, sizeof(line));
		log_info("draining: session %s", line);
	}
}

/* Stop accepting and close idle sessions; busy ones finish first. */
void
server_drain(struct server *srv)
{
	struct server_sess *sn, *next;

	srv->env.draining = 1;
	server_close_listeners(srv);
	for (sn = LIST_FIRST(&srv->sessions); sn != NULL; sn = next) {
		next = LIST_NEXT(sn, entry);
		smtp_session_drain(sn->s);      /* may free sn */
	}
	if (srv->nsessions == 0) {
		if (srv->on_idle != NULL)
			srv->on_idle(srv->arg);
		return;
	}
	if (srv->drain_ev == NULL) {
		srv->drain_ev = event_new(srv->env.base, -1, EV_PERSIST,
		    server_drain_report, srv);
		if (srv->drain_ev != NULL)
			event_add(srv->drain_ev,
			    &(struct timeval){ DRAIN_REPORT, 0 });
	}
}

/* A session ended (env.closed): forget it; the last one while draining
 * tells the program. */
static void
server_session_closed(void *arg, void *tag)
{
	struct server *srv = arg;
	struct server_sess *sn = tag;

	LIST_REMOVE(sn, entry);
	free(sn);
	srv->nsessions--;
	metrics_set(M_CONN_CURRENT, (uint64_t)srv->nsessions);
	if (srv->env.draining && srv->nsessions == 0 && srv->on_idle != NULL)
		srv->on_idle(srv->arg);
}

/* A session's message got its 250 (env.accepted). */
static void
server_message_accepted(void *arg)
{
	struct server *srv = arg;

	srv->nmessages++;
}

/* The timer: a new session ticket key (tls.c keeps the older ones for a
 * while). */
static void
server_rotate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (srv->env.tls_server != NULL)
		log_info("tls ticket key rotated generation=%u",
		    tls_tickets_rotate());
}

/* (Re)arm the ticket key timer for the config's period. */
static void
server_arm_rotate(struct server *srv)
{
	struct timeval tv;
	int secs = srv->env.tls_server != NULL ?
	    srv->env.cfg->tls_ticket_rotate : 0;

	if (srv->env.base == NULL || secs == srv->rotate)
		return;
	if (srv->rotate_ev == NULL && (srv->rotate_ev = event_new(
	    srv->env.base, -1, EV_PERSIST, server_rotate_cb, srv)) == NULL)
		fatalx("server: event_new");
	evtimer_del(srv->rotate_ev);
	srv->rotate = secs;
	if (secs > 0) {
		tv.tv_sec = secs;
		tv.tv_usec = 0;
		evtimer_add(srv->rotate_ev, &tv);
	}
}

/* A server for p's listeners and backend; nothing is bound yet. */
struct server *
server_new(const struct server_params *p)
{
	struct server *srv = xcalloc(1, sizeof(*srv));

	srv->env.base = p->base;
	srv->env.cfg = p->cfg;
	srv->env.tls_server = p->tls_server;
	srv->env.ops = p->ops;
	srv->env.ops_ctx = p->ops_ctx;
	srv->env.open_relay = p->open_relay;
	srv->reuseport = p->reuseport;
	srv->env.tmpdir = p->tmpdir;
	srv->env.accepted = server_message_accepted;
	srv->env.closed = server_session_closed;
	srv->env.arg = srv;
	srv->on_idle = p->on_idle;
	srv->arg = p->arg;
	LIST_INIT(&srv->sessions);
	server_arm_rotate(srv);
	return srv;
}

/* The backend messages go to, when it is built after the listeners
 * (smrelayd: after daemon()); before the loop runs. */
void
server_set_delivery(struct server *srv, const struct delivery_ops *ops,
    void *ops_ctx)
{
	srv->env.ops = ops;
	srv->env.ops_ctx = ops_ctx;
}

/* SIGHUP: the new config and TLS context, for new sessions and the next
 * command of live ones. */
void
server_reconfigure(struct server *srv, const struct config *cfg, SSL_CTX *tls)
{
	srv->env.cfg = cfg;
	srv->env.tls_server = tls;
	server_arm_rotate(srv);
}

/* Sessions open now. */
int
server_sessions(const struct server *srv)
{
	return srv->nsessions;
}

/* Messages accepted (250 at end of DATA) since start. */
unsigned long long
server_messages(const struct server *srv)
{
	return srv->nmessages;
}

/* Close the listeners and free; every session must be gone. */
void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	server_close_listeners(srv);
	if (srv->drain_ev != NULL)
		event_free(srv->drain_ev);
	if (srv->rotate_ev != NULL)
		event_free(srv->rotate_ev);
	free(srv);
}
