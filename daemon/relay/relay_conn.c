/* relay_conn.c: one connection to the next hop: connect, greeting, EHLO
 * (HELO fallback), STARTTLS per relay_tls, bounded reply reading, timeouts,
 * idle/RSET/QUIT handling.  Transactions on it live in relay.c, which it
 * reports to through struct relay_conn_cbs. */
#include "autoconfig.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "relay_conn.h"
#include "proto/proto.h"

static void conn_readcb(struct bufferevent *, void *);
static void conn_writecb(struct bufferevent *, void *);
static void conn_eventcb(struct bufferevent *, short, void *);
static void conn_timercb(evutil_socket_t, short, void *);

/* Name of a connection state, for logs. */
static const char *
relay_strstate(enum conn_state s)
{
	static const char *names[] = { "init", "resolve", "connect",
	    "greeting", "ehlo", "helo", "starttls", "handshake", "ready",
	    "quit", "dead" };

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* Every state change goes through here, so -v shows the conversation. */
static void
conn_enter_state(struct relay_conn *c, enum conn_state s)
{
	log_debug("relay cid=%016llx to=%s state=%s->%s",
	    (unsigned long long)c->id, c->peer, relay_strstate(c->state),
	    relay_strstate(s));
	c->state = s;
}

/* A reply's text on one printable line (it goes into our own replies). */
static void
reply_text(const struct smtp_reply *rep, char *buf, size_t len)
{
	size_t i;

	strlcpy_s(buf, rep->text, len);
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
		else if ((unsigned char)buf[i] < 0x20 ||
		    (unsigned char)buf[i] == 0x7f)
			buf[i] = '?';
}

/* A reply's enhanced code when it matches its class, else "c.0.0". */
static void
reply_enh(const struct smtp_reply *rep, char *buf, size_t len)
{
	int cls = rep->code / 100;

	if (rep->enh[0] == '0' + cls && strlen(rep->enh) < len)
		strlcpy_s(buf, rep->enh, len);
	else
		snprintf(buf, len, "%d.0.0", cls);
}

/* Mirror a next-hop reply, marked as coming from the next hop. */
void
result_from_reply(struct smtp_result *r, const struct smtp_reply *rep)
{
	char text[sizeof(r->text)];

	r->code = rep->code;
	reply_enh(rep, r->enh, sizeof(r->enh));
	reply_text(rep, text, sizeof(text));
	snprintf(r->text, sizeof(r->text), "next hop said: %.*s",
	    (int)sizeof(r->text) - 16, text);
}

/* "550 5.1.1 text" of a reply, for logs and our own texts. */
static void
reply_oneline(const struct smtp_reply *rep, char *buf, size_t len)
{
	char enh[16], text[200];

	reply_enh(rep, enh, sizeof(enh));
	reply_text(rep, text, sizeof(text));
	snprintf(buf, len, "%d %s %s", rep->code, enh, text);
}

/* Arm (ms >= 0) or stop (ms < 0) the connection's single timer. */
static void
conn_timer(struct relay_conn *c, int ms)
{
	struct timeval tv;

	if (ms < 0) {
		evtimer_del(c->timer);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

/* The timeout that applies while waiting for the reply to cmd. */
static int
cmd_timeout(const struct relay_hop *h, enum cmd cmd)
{
	switch (cmd) {
	case CMD_MAIL:
		return h->to.mail;
	case CMD_RCPT:
		return h->to.rcpt;
	case CMD_DATA:
		return h->to.data_init;
	case CMD_DOT:
		return h->to.data_final;
	default:
		return h->to.ehlo;
	}
}

/* Record that a reply to cmd is due after those already expected. */
static void
conn_expect(struct relay_conn *c, enum cmd cmd, int idx)
{
	if (c->exphead + c->nexp == c->expsz) {
		if (c->exphead > 0) {
			memmove(c->exp, c->exp + c->exphead,
			    c->nexp * sizeof(*c->exp));
			c->exphead = 0;
		} else {
			c->expsz = c->expsz ? c->expsz * 2 : 8;
			c->exp = xreallocarray(c->exp, c->expsz,
			    sizeof(*c->exp));
		}
	}
	c->exp[c->exphead + c->nexp].cmd = cmd;
	c->exp[c->exphead + c->nexp].idx = idx;
	if (c->nexp++ == 0)
		conn_timer(c, cmd_timeout(c->hop, cmd));
}

/* Queue one command line; `cmd` >= 0 records the reply it expects. */
void
conn_send(struct relay_conn *c, int cmd, int idx, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char line[1024];
	va_list ap;
	int n;

	/* one add per command: under TLS each add is a record of its own */
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(line) - 2) {
		memcpy(line + n, "\r\n", 2);
		evbuffer_add(out, line, (size_t)n + 2);
	} else {
		va_start(ap, fmt);
		evbuffer_add_vprintf(out, fmt, ap);
		va_end(ap);
		evbuffer_add(out, "\r\n", 2);
	}
	if (cmd >= 0)
		conn_expect(c, cmd, idx);
}

/* Restart the write timeout: no progress sending the body fails the
 * connection through conn_eventcb. */
static void
conn_body_timeout(struct relay_conn *c)
{
	struct timeval tv;

	tv.tv_sec = c->hop->to.data_block / 1000;
	tv.tv_usec = (c->hop->to.data_block % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

/* 354 to DATA: from now on the drained output buffer asks cbs->body for
 * more, under the write timeout instead of the reply timer. */
void
conn_body_begin(struct relay_conn *c)
{
	c->body = 1;
	bufferevent_setwatermark(c->bev, EV_WRITE, RELAY_WBUF_LOW, 0);
	conn_body_timeout(c);
	conn_rearm(c);
}

/* The body and its terminator are queued: wait for the final reply. */
void
conn_body_end(struct relay_conn *c)
{
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	c->body = 0;
	conn_expect(c, CMD_DOT, 0);
}

/* Take the oldest expected reply. */
static struct expect
conn_pop(struct relay_conn *c)
{
	struct expect e = c->exp[c->exphead];

	c->exphead++;
	if (--c->nexp == 0)
		c->exphead = 0;
	return e;
}

/* A fresh connection object that reports to cbs with arg; connecting
 * starts from the event loop. */
struct relay_conn *
conn_new(struct relay_hop *h, const struct relay_conn_cbs *cbs, void *arg)
{
	struct relay_conn *c = xcalloc(1, sizeof(*c));

	c->hop = h;
	c->cbs = cbs;
	c->cbarg = arg;
	c->id = new_session_id();
	c->gen = h->gen;
	c->host = xstrdup(h->host);
	c->port = xstrdup(h->port);
	snprintf(c->peer, sizeof(c->peer), h->mx ? "mx:%s" :
	    strchr(c->host, ':') ? "[%s]:%s" : "%s:%s", c->host, c->port);
	c->tlsmode = h->tls;
	c->state = C_INIT;
	c->timer = evtimer_new(h->base, conn_timercb, c);
	smtp_reply_init(&c->reply);
	TAILQ_INSERT_TAIL(&h->conns, c, entry);
	h->nconns++;
	conn_timer(c, 0);
	return c;
}

/* An idle connection for a new transaction, off the idle list; NULL when
 * there is none. */
struct relay_conn *
conn_take_idle(struct relay_hop *h)
{
	struct relay_conn *c;

	if ((c = TAILQ_FIRST(&h->idle)) == NULL)
		return NULL;
	TAILQ_REMOVE(&h->idle, c, idle_entry);
	c->idle = 0;
	h->nidle--;
	c->reused = 1;
	c->nreplies = 0;
	return c;
}

/* A bufferevent for c's socket; -1 (c failed) if there is none. */
static int
conn_bev(struct relay_conn *c)
{
	struct smtp_result res;

	c->bev = bufferevent_socket_new(c->hop->base, -1, 0);
	if (c->bev == NULL) {
		smtp_result_set(&res, 451, "4.3.0", "cannot create socket");
		conn_fail(c, 0, &res);
		return -1;
	}
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_enter_state(c, C_CONNECT);
	conn_timer(c, c->hop->to.connect);
	return 0;
}

/* Free the bufferevent and its socket: the plain socket is ours, the TLS
 * one closes with its bufferevent. */
static void
conn_drop_socket(struct relay_conn *c)
{
	evutil_socket_t fd;

	if (c->bev == NULL)
		return;
	fd = c->ssl == NULL ? bufferevent_getfd(c->bev) : -1;
	bufferevent_free(c->bev);
	if (fd >= 0)
		close(fd);
	c->bev = NULL;
}

/* Resolve and connect (the bufferevent reports the outcome). */
static void
conn_start(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;
	struct smtp_result res;
	char *end;
	long port = strtol(c->port, &end, 10);

	if (*end != '\0' || port <= 0 || port > 65535) {
		smtp_result_set(&res, 451, "4.3.5", "bad next hop port \"%s\"",
		    c->port);
		conn_fail(c, 0, &res);
		return;
	}
	if (h->mx) {
		mx_connect(c);
		return;
	}
	if (c->host[0] == '\0') {
		smtp_result_set(&res, 451, "4.3.5", "no next hop");
		conn_fail(c, 0, &res);
		return;
	}
	if (conn_bev(c) == -1)
		return;
	/* May report through conn_eventcb before returning: touch nothing. */
	bufferevent_socket_connect_hostname(c->bev, h->dns, AF_UNSPEC,
	    c->host, (int)port);
}

/* Connect c to an address found by relay_mx.c. */
static void
conn_connect_addr(struct relay_conn *c, const struct sockaddr *sa,
    socklen_t len)
{
	if (conn_bev(c) == -1)
		return;
	/* May report through conn_eventcb before returning: touch nothing. */
	bufferevent_socket_connect(c->bev, sa, (int)len);
}

/* Drop the socket of a connection still being set up, so that it can
 * try another address. */
static void
conn_reset(struct relay_conn *c)
{
	conn_drop_socket(c);
	c->ssl = NULL;          /* freed with its bufferevent */
	evtimer_del(c->timer);
	smtp_reply_init(&c->reply);
	c->exphead = c->nexp = 0;
	c->ext = 0;
	c->size_limit = 0;
	conn_enter_state(c, C_INIT);
}

/* Free a closed connection's memory. */
static void
conn_destroy(struct relay_conn *c)
{
	event_free(c->timer);
	mx_tlsa_free(c->tlsa, c->ntlsa);
	free(c->exp);
	free(c->host);
	free(c->port);
	free(c);
}

/* Release the socket (and TLS); the struct goes when no callback holds it. */
void
conn_close(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;

	if (c->state == C_DEAD)
		return;
	if (c->idle) {
		TAILQ_REMOVE(&h->idle, c, idle_entry);
		c->idle = 0;
		h->nidle--;
	}
	if (c->state == C_RESOLVE)
		TAILQ_REMOVE(&h->waiting, c, idle_entry);
	TAILQ_REMOVE(&h->conns, c, entry);
	h->nconns--;
	conn_drop_socket(c);
	evtimer_del(c->timer);
	log_debug("relay cid=%016llx to=%s closed", (unsigned long long)c->id,
	    c->peer);
	c->state = C_DEAD;
	if (c->busy == 0)
		conn_destroy(c);
}

/* Leave a libevent callback; frees a connection closed meanwhile. */
static void
conn_unref(struct relay_conn *c)
{
	if (--c->busy == 0 && c->state == C_DEAD)
		conn_destroy(c);
}

/* Politely end an unused connection. */
void
conn_quit(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;

	if (c->idle) {
		TAILQ_REMOVE(&h->idle, c, idle_entry);
		c->idle = 0;
		h->nidle--;
	}
	conn_send(c, -1, 0, "QUIT");
	conn_enter_state(c, C_QUIT);
	conn_timer(c, h->to.quit);
}

/* A free connection: into the idle list, or QUIT when we have enough or it
 * belongs to an older configuration. */
static void
conn_idle(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;

	if (c->gen != h->gen || h->nidle >= RELAY_IDLE_MAX) {
		conn_quit(c);
		return;
	}
	if (!c->idle) {
		TAILQ_INSERT_HEAD(&h->idle, c, idle_entry);
		c->idle = 1;
		h->nidle++;
	}
	conn_timer(c, h->to.idle);
}

/* A connection without transaction: RSET what is left, then idle. */
void
conn_settle(struct relay_conn *c)
{
	if (c->state != C_READY || c->txn != NULL)
		return;
	if (c->need_rset && !c->rset_sent &&
	    (c->nexp == 0 || (c->ext & EXT_PIPELINING))) {
		conn_send(c, CMD_RSET, 0, "RSET");
		c->rset_sent = 1;
	}
	if (c->nexp == 0 && !c->need_rset)
		conn_idle(c);
}

/* Timer for what we wait on now, when no command reply is outstanding. */
void
conn_rearm(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;

	if (c->state != C_READY)
		return;
	if (c->nexp > 0)
		conn_timer(c, cmd_timeout(h, c->exp[c->exphead].cmd));
	else if (c->txn != NULL && c->body)
		conn_timer(c, -1);      /* the bufferevent's write timeout */
	else if (c->txn != NULL)
		conn_timer(c, h->to.hold);
	else if (c->idle)
		conn_timer(c, h->to.idle);
}

/* Log a failed transaction outcome or connection problem. */
static void
conn_log_fail(struct relay_conn *c, const struct smtp_result *res)
{
	log_warnx("relay cid=%016llx to=%s state=%s error=\"%d %s %s\"",
	    (unsigned long long)c->id, c->peer, relay_strstate(c->state),
	    res->code, res->enh, res->text);
}

/* Pick the status for a connection that ended in its current state. */
static void
conn_lost_result(struct relay_conn *c, const char *why,
    struct smtp_result *res)
{
	switch (c->state) {
	case C_INIT:
	case C_CONNECT:
		smtp_result_set(res, 451, "4.4.1",
		    "cannot connect to next hop %s: %s", c->peer, why);
		break;
	case C_HANDSHAKE:
		smtp_result_set(res, 451, "4.7.5",
		    "TLS handshake with next hop %s failed: %s", c->peer, why);
		break;
	default:
		smtp_result_set(res, 451, "4.4.2",
		    "lost connection with next hop %s (%s): %s", c->peer,
		    relay_strstate(c->state), why);
	}
}

/* The connection cannot go on: tell its transaction and close it. */
void
conn_fail(struct relay_conn *c, int retry, const struct smtp_result *res)
{
	/* an MX host that cannot be reached or refuses the session: the
	 * next address, the next host (RFC 5321 5.1) */
	if (c->hop->mx && c->state >= C_CONNECT && c->state < C_READY &&
	    mx_next(c, res->text))
		return;
	if (c->txn != NULL || c->state < C_READY)
		conn_log_fail(c, res);
	else
		log_debug("relay cid=%016llx to=%s closed while %s: %s",
		    (unsigned long long)c->id, c->peer,
		    c->idle ? "idle" : relay_strstate(c->state), res->text);
	if (c->txn != NULL)
		c->cbs->failed(c, retry, res, c->cbarg);
	conn_close(c);
}

/* The session setup is done: serve the transaction or become idle. */
static void
conn_ready(struct relay_conn *c)
{
	conn_enter_state(c, C_READY);
	log_debug("relay cid=%016llx to=%s ready ext=0x%x size_limit=%llu",
	    (unsigned long long)c->id, c->peer, c->ext,
	    (unsigned long long)c->size_limit);
	if (c->txn != NULL)
		c->cbs->ready(c, c->cbarg);
	else
		conn_settle(c);
	conn_rearm(c);
}

/*
 * 1 if c may not go on in plaintext: the mode says so, or its MX host has
 * DNSSEC-secure TLSA records (RFC 7672 2.2: usable or not, TLS is then
 * mandatory).  dane alone is STARTTLS when offered.
 */
static int
tls_required(const struct relay_conn *c)
{
	if (c->dane == DANE_TLSA || c->dane == DANE_UNUSABLE)
		return 1;
	switch (c->tlsmode) {
	case RELAY_TLS_ENCRYPT:
	case RELAY_TLS_VERIFY:
	case RELAY_TLS_DANE_ONLY:
		return 1;
	case RELAY_TLS_NONE:
	case RELAY_TLS_MAY:
	case RELAY_TLS_DANE:
		break;
	}
	return 0;
}

/* After EHLO/HELO: STARTTLS when wanted and possible, else ready. */
static void
conn_after_ehlo(struct relay_conn *c)
{
	struct smtp_result res;

	if (c->ssl == NULL && c->tlsmode != RELAY_TLS_NONE) {
		if ((c->ext & EXT_STARTTLS) && c->hop->ctx != NULL) {
			conn_send(c, -1, 0, "STARTTLS");
			conn_enter_state(c, C_STARTTLS);
			conn_timer(c, c->hop->to.ehlo);
			return;
		}
		if (tls_required(c)) {
			smtp_result_set(&res, 451, "4.7.0", "next hop %s does not "
			    "offer STARTTLS (relay_tls = %s)", c->peer,
			    config_relay_tls_str(c->tlsmode));
			if (c->hop->ctx == NULL)
				smtp_result_set(&res, 451, "4.7.0",
				    "no TLS client context for relay_tls");
			conn_fail(c, 0, &res);
			return;
		}
	}
	conn_ready(c);
}

/* Whether c authenticates nothing of its peer (relay_tls may, encrypt,
 * dane without usable TLSA records): only such connections resume a TLS
 * session, and only theirs are kept (a resumed session skips the
 * certificate checks that verify and DANE ask for). */
static int
conn_unauth(const struct relay_conn *c)
{
	return c->tlsmode != RELAY_TLS_VERIFY && c->dane != DANE_TLSA;
}

/* OpenSSL has a session (a TLS 1.3 ticket) for c: keep a copy for the
 * next connection to the same peer.  A copy, because this one is c's own
 * and OpenSSL marks it not resumable when c ends without close_notify (a
 * next hop that just closes).  Returns 0: OpenSSL keeps its reference. */
static int
conn_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct relay_conn *c = SSL_get_app_data(ssl);
	struct relay_hop *h;
	SSL_SESSION *copy;

	if (c == NULL || !conn_unauth(c) || !SSL_SESSION_is_resumable(sess) ||
	    (copy = SSL_SESSION_dup(sess)) == NULL)
		return 0;
	h = c->hop;
	log_debug("relay cid=%016llx to=%s TLS session kept for resumption",
	    (unsigned long long)c->id, c->peer);
	SSL_SESSION_free(h->sess);
	h->sess = copy;
	snprintf(h->sess_peer, sizeof(h->sess_peer), "%s", c->peer);
	return 0;
}

/* Drop the hop's kept TLS session (new context, hop going). */
void
conn_forget_session(struct relay_hop *h)
{
	SSL_SESSION_free(h->sess);
	h->sess = NULL;
	h->sess_peer[0] = '\0';
}

/*
 * 220 to STARTTLS: drop any plaintext the server sent after it (an injected
 * command must never be read as if it came over TLS: CVE-2011-0411), and
 * put TLS on the socket.  Returns -1 when the connection failed.
 */
static int
conn_starttls(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct smtp_result res;
	evutil_socket_t fd;
	size_t junk;
	SSL_SESSION *sess;
	SSL *ssl;

	if ((junk = evbuffer_get_length(in)) > 0) {
		log_warnx("relay cid=%016llx to=%s discarding %zu bytes sent "
		    "before the TLS handshake", (unsigned long long)c->id,
		    c->peer, junk);
		evbuffer_drain(in, junk);
	}
	ERR_clear_error();
	if ((ssl = SSL_new(h->ctx)) == NULL ||
	    tls_client_setup(ssl, c->host,
	    c->tlsmode == RELAY_TLS_VERIFY) == -1) {
		smtp_result_set(&res, 451, "4.7.5", "TLS setup: %s", tls_error());
		SSL_free(ssl);
		conn_fail(c, 0, &res);
		return -1;
	}
	if (c->dane == DANE_TLSA && mx_dane_setup(c, ssl) == -1) {
		log_warnx("relay cid=%016llx to=%s no usable TLSA record: TLS "
		    "without authentication", (unsigned long long)c->id,
		    c->peer);
		c->dane = DANE_UNUSABLE;
		ERR_clear_error();
	}
	SSL_set_app_data(ssl, c);
	SSL_CTX_sess_set_new_cb(h->ctx, conn_new_session);
	/* a copy: OpenSSL marks the one it used not resumable when the
	 * connection ends without close_notify */
	if (h->sess != NULL && conn_unauth(c) &&
	    strcmp(h->sess_peer, c->peer) == 0 &&
	    (sess = SSL_SESSION_dup(h->sess)) != NULL) {
		if (SSL_set_session(ssl, sess) != 1)
			ERR_clear_error();      /* a full handshake then */
		SSL_SESSION_free(sess);
	}
	fd = bufferevent_getfd(c->bev);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	bufferevent_free(c->bev);       /* not BEV_OPT_CLOSE_ON_FREE */
	c->ssl = ssl;
	c->bev = bufferevent_openssl_socket_new(h->base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		close(fd);
		c->ssl = NULL;
		smtp_result_set(&res, 451, "4.7.5", "cannot start TLS");
		conn_fail(c, 0, &res);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_enter_state(c, C_HANDSHAKE);
	conn_timer(c, h->to.tls);
	return -1;      /* stop reading the old buffer */
}

/* The handshake completed: log it and say EHLO again. */
static void
conn_tls_done(struct relay_conn *c)
{
	char desc[128], how[80];
	struct smtp_result res;
	uint8_t u, sel, mt;
	long vr;
	int depth;

	if ((c->tlsmode == RELAY_TLS_VERIFY || c->dane == DANE_TLSA) &&
	    (vr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		smtp_result_set(&res, 451, "4.7.5", "certificate of next hop %s "
		    "does not verify: %s%s", c->peer,
		    X509_verify_cert_error_string(vr), c->dane == DANE_TLSA ?
		    " (DANE: no TLSA record matches)" : "");
		conn_fail(c, 0, &res);
		return;
	}
	tls_describe(c->ssl, desc, sizeof(desc));
	metrics_tls(METRICS_OUT, c->ssl);
	if (c->dane == DANE_TLSA &&
	    (depth = SSL_get0_dane_tlsa(c->ssl, &u, &sel, &mt, NULL,
	    NULL)) >= 0)
		snprintf(how, sizeof(how), "dane (TLSA %u %u %u at depth %d)",
		    u, sel, mt, depth);
	else
		snprintf(how, sizeof(how), "%s", c->tlsmode ==
		    RELAY_TLS_VERIFY ? "yes" : c->dane == DANE_UNUSABLE ?
		    "no (TLSA records, none usable)" : "no");
	log_info("relay cid=%016llx to=%s tls=established %s verified=%s "
	    "resumed=%s", (unsigned long long)c->id, c->peer, desc, how,
	    tls_resumed(c->ssl));
	c->ext = 0;
	c->size_limit = 0;
	conn_send(c, -1, 0, "EHLO %s", c->hop->cfg->hostname);
	conn_enter_state(c, C_EHLO);
	conn_timer(c, c->hop->to.ehlo);
}

/* A reply during greeting/EHLO/HELO/STARTTLS; -1 if the conn failed or the
 * input buffer changed under the reader. */
static int
conn_setup_reply(struct relay_conn *c, const struct smtp_reply *rep)
{
	struct smtp_result res;
	char line[300];
	int cls = rep->code / 100;

	reply_oneline(rep, line, sizeof(line));
	switch (c->state) {
	case C_GREETING:
		if (cls != 2)
			break;
		conn_send(c, -1, 0, "EHLO %s", c->hop->cfg->hostname);
		conn_enter_state(c, C_EHLO);
		conn_timer(c, c->hop->to.ehlo);
		return 0;
	case C_EHLO:
		if (cls == 2) {
			c->ext = rep->ext;
			c->xforward = rep->xforward;
			c->size_limit = rep->size_limit;
			conn_after_ehlo(c);
			return c->state == C_DEAD ? -1 : 0;
		}
		if (cls != 5 || c->ssl != NULL)
			break;
		conn_send(c, -1, 0, "HELO %s", c->hop->cfg->hostname);
		conn_enter_state(c, C_HELO);
		conn_timer(c, c->hop->to.ehlo);
		return 0;
	case C_HELO:
		if (cls != 2)
			break;
		c->ext = 0;
		conn_after_ehlo(c);
		return c->state == C_DEAD ? -1 : 0;
	case C_STARTTLS:
		if (rep->code == 220)
			return conn_starttls(c);
		if (tls_required(c)) {
			smtp_result_set(&res, 451, "4.7.0",
			    "next hop %s refused STARTTLS: %s", c->peer, line);
			conn_fail(c, 0, &res);
			return -1;
		}
		log_info("relay cid=%016llx to=%s starttls=refused "
		    "reply=\"%s\", continuing in plaintext",
		    (unsigned long long)c->id, c->peer, line);
		conn_ready(c);
		return 0;
	case C_QUIT:
		conn_close(c);
		return -1;
	default:
		break;
	}
	smtp_result_set(&res, 451, "4.4.1", "next hop %s refused the session "
	    "(%s): %s", c->peer, relay_strstate(c->state), line);
	conn_fail(c, 0, &res);
	return -1;
}

/* A complete reply while the connection is ready; -1 if it failed. */
static int
conn_ready_reply(struct relay_conn *c, const struct smtp_reply *rep)
{
	struct smtp_result res;
	struct expect e;
	char line[300];

	if (c->nexp == 0) {
		reply_oneline(rep, line, sizeof(line));
		if (rep->code == 421)
			result_from_reply(&res, rep);
		else
			smtp_result_set(&res, 451, "4.4.2", "unexpected reply "
			    "from next hop %s: %s", c->peer, line);
		conn_fail(c, 0, &res);
		return -1;
	}
	e = conn_pop(c);
	c->nreplies++;
	if (e.cmd == CMD_RSET) {
		c->in_txn = 0;
		c->rset_sent = 0;
		if (rep->code / 100 != 2) {
			conn_quit(c);
			return 0;
		}
		c->need_rset = 0;
		conn_settle(c);
		conn_rearm(c);
		return 0;
	}
	/* Without a transaction it was aborted: its RSET follows. */
	if (c->txn != NULL && c->cbs->reply(c, e, rep, c->cbarg) == -1)
		return -1;
	if (c->txn == NULL)
		conn_settle(c);
	if (c->state == C_READY)
		conn_rearm(c);
	return c->state == C_DEAD ? -1 : 0;
}

/* Read complete reply lines and act on each reply; bounded line length and
 * line count, so a misbehaving next hop cannot make us buffer. */
static void
conn_read_replies(struct relay_conn *c)
{
	struct evbuffer *in;
	struct smtp_result res;
	char *line;
	size_t len;
	int r;

	while (c->state != C_DEAD && c->bev != NULL) {
		in = bufferevent_get_input(c->bev);
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) <= RELAY_LINE_MAX)
				return;
			len = RELAY_LINE_MAX + 1;
		}
		if (len > RELAY_LINE_MAX) {
			free(line);
			smtp_result_set(&res, 451, "4.4.2", "next hop %s sent a "
			    "reply line over %d bytes", c->peer, RELAY_LINE_MAX);
			conn_fail(c, 0, &res);
			return;
		}
		r = smtp_reply_feed(&c->reply, line, len);
		free(line);
		if (r == -1 || (r == 0 && c->reply.nlines >= RELAY_LINES_MAX)) {
			smtp_result_set(&res, 451, "4.4.2", "next hop %s sent a %s "
			    "reply", c->peer, r == -1 ? "malformed" :
			    "too long");
			conn_fail(c, 0, &res);
			return;
		}
		if (r == 0)
			continue;
		if (c->state == C_READY)
			r = conn_ready_reply(c, &c->reply);
		else
			r = conn_setup_reply(c, &c->reply);
		if (c->state != C_DEAD)
			smtp_reply_init(&c->reply);
		if (r == -1)
			return;
	}
}

/* Input from the next hop. */
static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct relay_conn *c = arg;

	(void)bev;
	c->busy++;
	if (c->state == C_INIT || c->state == C_CONNECT ||
	    c->state == C_HANDSHAKE) {
		/* Nothing is due yet: keep it for the state that reads it. */
		conn_unref(c);
		return;
	}
	conn_read_replies(c);
	conn_unref(c);
}

/* The output buffer drained below the low mark: more body. */
static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct relay_conn *c = arg;

	(void)bev;
	c->busy++;
	if (c->state == C_READY && c->txn != NULL && c->body) {
		conn_body_timeout(c);
		c->cbs->body(c, c->cbarg);
	}
	conn_unref(c);
}

/* Why a bufferevent failed, in words. */
static void
conn_event_reason(struct relay_conn *c, short what, char *buf, size_t len)
{
	unsigned long e;
	long vr;
	int dnserr;

	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(buf, len, "timeout %s", (what & BEV_EVENT_WRITING) ?
		    "sending message data" : "reading");
		return;
	}
	if (c->state == C_CONNECT &&
	    (dnserr = bufferevent_socket_get_dns_error(c->bev)) != 0) {
		snprintf(buf, len, "cannot resolve %s: %s", c->host,
		    evutil_gai_strerror(dnserr));
		return;
	}
	if (c->ssl != NULL && c->state == C_HANDSHAKE &&
	    (c->tlsmode == RELAY_TLS_VERIFY || c->dane == DANE_TLSA) &&
	    (vr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		snprintf(buf, len, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		return;
	}
	if (c->ssl != NULL && (e = bufferevent_get_openssl_error(c->bev))) {
		ERR_error_string_n(e, buf, len);
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(buf, len, "connection closed by next hop");
	else
		snprintf(buf, len, "%s", evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
}

/* Connected, handshake done, EOF, error or write timeout. */
static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct relay_conn *c = arg;
	struct smtp_result res;
	char why[200];

	(void)bev;
	c->busy++;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == C_CONNECT) {
			log_info("relay cid=%016llx to=%s connected",
			    (unsigned long long)c->id, c->peer);
			/* commands and TLS records out at once (no Nagle) */
			(void)setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP,
			    TCP_NODELAY, &(int){ 1 }, sizeof(int));
			conn_enter_state(c, C_GREETING);
			conn_timer(c, c->hop->to.greeting);
			conn_read_replies(c);
		} else if (c->state == C_HANDSHAKE) {
			conn_tls_done(c);
			if (c->state != C_DEAD)
				conn_read_replies(c);
		}
		conn_unref(c);
		return;
	}
	if (c->state == C_QUIT) {
		conn_close(c);
		conn_unref(c);
		return;
	}
	conn_event_reason(c, what, why, sizeof(why));
	conn_lost_result(c, why, &res);
	conn_fail(c, (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) &&
	    !(what & BEV_EVENT_TIMEOUT), &res);
	conn_unref(c);
}

/* Start connecting, or a timeout of the current state. */
static void
conn_timercb(evutil_socket_t fd, short ev, void *arg)
{
	struct relay_conn *c = arg;
	struct smtp_result res;
	char why[64];

	(void)fd;
	(void)ev;
	c->busy++;
	if (c->state == C_INIT)
		conn_start(c);
	else if (c->state == C_QUIT)
		conn_close(c);
	else if (c->state == C_READY && c->idle)
		conn_quit(c);
	else if (c->state == C_READY && c->nexp == 0 && c->txn != NULL) {
		/* Waited too long for our client: let go, replay later. */
		log_info("relay cid=%016llx to=%s hold timeout, closing",
		    (unsigned long long)c->id, c->peer);
		smtp_result_set(&res, 451, "4.4.2", "next hop connection %s timed "
		    "out while waiting for the client", c->peer);
		c->cbs->failed(c, 0, &res, c->cbarg);
		conn_quit(c);
	} else {
		snprintf(why, sizeof(why), "timeout waiting for reply");
		conn_lost_result(c, why, &res);
		conn_fail(c, 0, &res);
	}
	conn_unref(c);
}

const struct mx_conn_ops conn_mx_ops = {
	.connect = conn_connect_addr,
	.reset = conn_reset,
	.fail = conn_fail,
	.enter_state = conn_enter_state,
	.timer = conn_timer,
};
