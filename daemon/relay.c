/* relay.c: the outbound SMTP client.  A pool of connections to the next hop
 * (reused across transactions), STARTTLS per relay_tls, PIPELINING, and the
 * body streamed from the msgbuf with dot-stuffing and backpressure. */
#include "autoconfig.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "log.h"
#include "msgbuf.h"
#include "relay.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "tls.h"
#include "util.h"

#define RELAY_LINE_MAX  4096            /* one reply line from the next hop */
#define RELAY_LINES_MAX 100             /* lines in one reply */
#define RELAY_IDLE_MAX  32              /* pooled idle connections */
#define RELAY_CHUNK     (64 * 1024)     /* body bytes read per msgbuf_pread */
#define RELAY_WBUF_HIGH (256 * 1024)    /* stop stuffing above this */
#define RELAY_WBUF_LOW  (64 * 1024)     /* ... and go on below this */

const struct relay_timeouts relay_default_timeouts = {
	.connect = 30 * 1000,
	.greeting = 5 * 60 * 1000,
	.ehlo = 5 * 60 * 1000,
	.tls = 2 * 60 * 1000,
	.mail = 5 * 60 * 1000,
	.rcpt = 5 * 60 * 1000,
	.data_init = 2 * 60 * 1000,
	.data_block = 3 * 60 * 1000,
	.data_final = 10 * 60 * 1000,
	.idle = 10 * 1000,
	.hold = 5 * 60 * 1000,
	.quit = 5 * 1000,
};

enum conn_state {
	C_INIT,         /* waiting for the event loop to start connecting */
	C_CONNECT,      /* DNS and TCP */
	C_GREETING,
	C_EHLO,
	C_HELO,
	C_STARTTLS,
	C_HANDSHAKE,
	C_READY,        /* commands flow; busy with a txn or idle */
	C_QUIT,
	C_DEAD
};

enum cmd { CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_DOT, CMD_RSET };

struct expect {
	enum cmd cmd;
	int idx;                        /* recipient for CMD_RCPT */
};

struct relay_txn;

struct relay_conn {
	TAILQ_ENTRY(relay_conn) entry;          /* pool->conns */
	TAILQ_ENTRY(relay_conn) idle_entry;     /* pool->idle when idle */
	struct relay_pool *pool;
	uint64_t id;
	unsigned gen;                   /* pool generation it was opened in */
	char *host, *port;
	char peer[300];                 /* "host:port" for logs */
	enum relay_tls tlsmode;
	enum conn_state state;
	struct bufferevent *bev;
	SSL *ssl;                       /* owned by bev once TLS started */
	struct event *timer;
	struct smtp_reply reply;        /* being read */
	unsigned ext;
	uint64_t size_limit;
	struct expect *exp;             /* replies we wait for, in order */
	size_t exphead, nexp, expsz;
	struct relay_txn *txn;
	int idle;
	int reused;                     /* taken from the idle list */
	int nreplies;                   /* replies since it was (re)used */
	int in_txn;                     /* MAIL sent, no final reply/RSET yet */
	int need_rset, rset_sent;
	int busy;                       /* nesting of our libevent callbacks */
};

enum mail_state { M_NONE, M_SENT, M_OK, M_REJECTED };
enum data_state { D_NONE, D_WAIT, D_SENT, D_BODY, D_DOT, D_DONE };
enum wire_state { W_QUEUED, W_SENT, W_DONE };

struct relay_rcpt {
	char *addr, *params;
	delivery_cb *cb;                /* NULL once called */
	void *arg;
	enum wire_state wire;
	int replied, accepted;
	int replay;                     /* re-sent on a fresh connection */
	struct smtp_result res;
};

struct relay_txn {
	TAILQ_ENTRY(relay_txn) entry;
	struct relay_pool *pool;        /* NULL once the pool is gone */
	struct relay_conn *conn;
	uint64_t id;
	char *from, *params;
	struct relay_rcpt *rcpts;
	int nrcpts, rcptsz;
	enum mail_state mail;
	struct smtp_result mail_res;
	enum data_state data;
	struct msgbuf *msg;
	delivery_cb *data_cb;
	void *data_arg;
	struct smtp_result data_res;
	size_t off;                     /* body bytes sent */
	struct smtp_stuff stuff;
	char *chunk;                    /* body read + stuffed buffers */
	struct event *ev;               /* deferred callbacks */
	int in_cb, aborted, finished;
	int retried;                    /* reused connection was dead */
	int replays;                    /* fresh connection after a loss */
	int replay_failed;
	char replay_err[200];
	char peer[300];                 /* of the last connection, for logs */
};

TAILQ_HEAD(conn_list, relay_conn);
TAILQ_HEAD(txn_list, relay_txn);

struct relay_pool {
	struct event_base *base;
	struct evdns_base *dns;         /* NULL: blocking getaddrinfo */
	const struct config *cfg;
	SSL_CTX *ctx;
	struct relay_timeouts to;
	unsigned gen;
	int nconns, nidle;
	struct conn_list conns;
	struct conn_list idle;
	struct txn_list txns;
};

static void conn_readcb(struct bufferevent *, void *);
static void conn_writecb(struct bufferevent *, void *);
static void conn_eventcb(struct bufferevent *, short, void *);
static void conn_timercb(evutil_socket_t, short, void *);
static void conn_close(struct relay_conn *);
static void conn_fail(struct relay_conn *, int, const struct smtp_result *);
static void conn_settle(struct relay_conn *);
static void conn_rearm(struct relay_conn *);
static void txn_pump(struct relay_txn *);
static void txn_attach(struct relay_txn *, int);
static void txn_schedule(struct relay_txn *);
static int body_pump(struct relay_txn *);
static void txn_free(struct relay_txn *);

/* Name of a connection state, for logs. */
static const char *
relay_strstate(enum conn_state s)
{
	static const char *names[] = { "init", "connect", "greeting", "ehlo",
	    "helo", "starttls", "handshake", "ready", "quit", "dead" };

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

/* Fill a result of our own making. */
static void
result_set(struct smtp_result *r, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	strlcpy_s(r->enh, enh, sizeof(r->enh));
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
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
static void
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
cmd_timeout(const struct relay_pool *p, enum cmd cmd)
{
	switch (cmd) {
	case CMD_MAIL:
		return p->to.mail;
	case CMD_RCPT:
		return p->to.rcpt;
	case CMD_DATA:
		return p->to.data_init;
	case CMD_DOT:
		return p->to.data_final;
	default:
		return p->to.ehlo;
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
		conn_timer(c, cmd_timeout(c->pool, cmd));
}

/* Queue one command line; `cmd` >= 0 records the reply it expects. */
static void
conn_send(struct relay_conn *c, int cmd, int idx, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (cmd >= 0)
		conn_expect(c, cmd, idx);
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

/* A fresh connection object; connecting starts from the event loop. */
static struct relay_conn *
conn_new(struct relay_pool *p)
{
	struct relay_conn *c = xcalloc(1, sizeof(*c));
	const struct config *cfg = p->cfg;

	c->pool = p;
	c->id = new_session_id();
	c->gen = p->gen;
	c->host = xstrdup(cfg->relay_host ? cfg->relay_host : "");
	c->port = xstrdup(cfg->relay_port ? cfg->relay_port : "25");
	snprintf(c->peer, sizeof(c->peer), strchr(c->host, ':') ?
	    "[%s]:%s" : "%s:%s", c->host, c->port);
	c->tlsmode = cfg->relay_tls;
	c->state = C_INIT;
	c->timer = evtimer_new(p->base, conn_timercb, c);
	smtp_reply_init(&c->reply);
	TAILQ_INSERT_TAIL(&p->conns, c, entry);
	p->nconns++;
	conn_timer(c, 0);
	return c;
}

/* Resolve and connect (the bufferevent reports the outcome). */
static void
conn_start(struct relay_conn *c)
{
	struct relay_pool *p = c->pool;
	struct smtp_result res;
	char *end;
	long port = strtol(c->port, &end, 10);

	if (p->cfg->relay_mx || c->host[0] == '\0') {
		result_set(&res, 451, "4.3.5",
		    "relay = mx is not supported yet; set relay = HOST:PORT");
		conn_fail(c, 0, &res);
		return;
	}
	if (*end != '\0' || port <= 0 || port > 65535) {
		result_set(&res, 451, "4.3.5", "bad next hop port \"%s\"",
		    c->port);
		conn_fail(c, 0, &res);
		return;
	}
	c->bev = bufferevent_socket_new(p->base, -1, 0);
	if (c->bev == NULL) {
		result_set(&res, 451, "4.3.0", "cannot create socket");
		conn_fail(c, 0, &res);
		return;
	}
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_enter_state(c, C_CONNECT);
	conn_timer(c, p->to.connect);
	/* May report through conn_eventcb before returning: touch nothing. */
	bufferevent_socket_connect_hostname(c->bev, p->dns, AF_UNSPEC,
	    c->host, (int)port);
}

/* Free a closed connection's memory. */
static void
conn_destroy(struct relay_conn *c)
{
	event_free(c->timer);
	free(c->exp);
	free(c->host);
	free(c->port);
	free(c);
}

/* Release the socket (and TLS); the struct goes when no callback holds it. */
static void
conn_close(struct relay_conn *c)
{
	struct relay_pool *p = c->pool;
	evutil_socket_t fd;

	if (c->state == C_DEAD)
		return;
	if (c->idle) {
		TAILQ_REMOVE(&p->idle, c, idle_entry);
		c->idle = 0;
		p->nidle--;
	}
	TAILQ_REMOVE(&p->conns, c, entry);
	p->nconns--;
	if (c->bev != NULL) {
		/* The plain socket is ours; the TLS one closes with its bev. */
		fd = c->ssl == NULL ? bufferevent_getfd(c->bev) : -1;
		bufferevent_free(c->bev);
		if (fd >= 0)
			close(fd);
		c->bev = NULL;
	}
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
static void
conn_quit(struct relay_conn *c)
{
	struct relay_pool *p = c->pool;

	if (c->idle) {
		TAILQ_REMOVE(&p->idle, c, idle_entry);
		c->idle = 0;
		p->nidle--;
	}
	conn_send(c, -1, 0, "QUIT");
	conn_enter_state(c, C_QUIT);
	conn_timer(c, p->to.quit);
}

/* A free connection: into the idle list, or QUIT when we have enough or it
 * belongs to an older configuration. */
static void
conn_idle(struct relay_conn *c)
{
	struct relay_pool *p = c->pool;

	if (c->gen != p->gen || p->nidle >= RELAY_IDLE_MAX) {
		conn_quit(c);
		return;
	}
	if (!c->idle) {
		TAILQ_INSERT_HEAD(&p->idle, c, idle_entry);
		c->idle = 1;
		p->nidle++;
	}
	conn_timer(c, p->to.idle);
}

/* A connection without transaction: RSET what is left, then idle. */
static void
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
static void
conn_rearm(struct relay_conn *c)
{
	struct relay_pool *p = c->pool;

	if (c->state != C_READY)
		return;
	if (c->nexp > 0)
		conn_timer(c, cmd_timeout(p, c->exp[c->exphead].cmd));
	else if (c->txn != NULL && c->txn->data == D_BODY)
		conn_timer(c, -1);      /* the bufferevent's write timeout */
	else if (c->txn != NULL)
		conn_timer(c, p->to.hold);
	else if (c->idle)
		conn_timer(c, p->to.idle);
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
		result_set(res, 451, "4.4.1",
		    "cannot connect to next hop %s: %s", c->peer, why);
		break;
	case C_HANDSHAKE:
		result_set(res, 451, "4.7.5",
		    "TLS handshake with next hop %s failed: %s", c->peer, why);
		break;
	default:
		result_set(res, 451, "4.4.2",
		    "lost connection with next hop %s (%s): %s", c->peer,
		    relay_strstate(c->state), why);
	}
}

/* Reset a transaction's protocol state for a fresh connection: MAIL again,
 * unanswered recipients again, accepted recipients replayed. */
static void
txn_reset_wire(struct relay_txn *txn)
{
	struct relay_rcpt *r;
	int i;

	if (txn->mail != M_REJECTED)
		txn->mail = M_NONE;
	for (i = 0; i < txn->nrcpts; i++) {
		r = &txn->rcpts[i];
		if (!r->replied)
			r->wire = W_QUEUED;
		else if (r->accepted) {
			r->wire = W_QUEUED;
			r->replay = 1;
		} else
			r->wire = W_DONE;
	}
	if (txn->data == D_SENT)
		txn->data = D_WAIT;
}

/* Log the outcome of a transaction. */
static void
txn_log_result(struct relay_txn *txn, const char *peer)
{
	int i, n = 0;

	for (i = 0; i < txn->nrcpts; i++)
		n += txn->rcpts[i].accepted;
	log_info("relay id=%016llx to=%s status=%d enh=%s rcpts=%d size=%zu "
	    "text=\"%s\"", (unsigned long long)txn->id, peer,
	    txn->data_res.code, txn->data_res.enh, n,
	    txn->msg ? msgbuf_size(txn->msg) : 0, txn->data_res.text);
}

/* The data() call is answered: detach from the connection. */
static void
txn_data_done(struct relay_txn *txn, const struct smtp_result *res)
{
	struct relay_conn *c = txn->conn;

	txn->data_res = *res;
	txn->data = D_DONE;
	free(txn->chunk);
	txn->chunk = NULL;
	txn_log_result(txn, txn->peer);
	if (c != NULL) {
		txn->conn = NULL;
		c->txn = NULL;
		if (c->in_txn)
			c->need_rset = 1;
		conn_settle(c);
		conn_rearm(c);
	}
	txn_schedule(txn);
}

/*
 * The connection under txn is gone.  A reused connection that died before
 * its first reply is retried once on a fresh one; otherwise what waits for
 * an answer gets `res`, and a later rcpt()/data() replays on a new
 * connection.  `retry` says the failure is an EOF/reset, not a verdict.
 */
static void
txn_conn_failed(struct relay_txn *txn, struct relay_conn *c, int retry,
    const struct smtp_result *res)
{
	struct relay_rcpt *r;
	int i;

	txn->conn = NULL;
	c->txn = NULL;
	if (retry && c->reused && c->nreplies == 0 && !txn->retried &&
	    txn->data != D_BODY && txn->data != D_DOT) {
		log_info("relay id=%016llx to=%s pooled connection was dead, "
		    "retrying on a new one", (unsigned long long)txn->id,
		    c->peer);
		txn->retried = 1;
		txn_reset_wire(txn);
		txn_attach(txn, 0);
		return;
	}
	if ((txn->data == D_WAIT || txn->data == D_SENT) &&
	    txn->replays == 0 && c->state == C_READY && txn->mail == M_OK) {
		txn->replays++;
		txn_reset_wire(txn);
		txn_attach(txn, 0);
		return;
	}
	for (i = 0; i < txn->nrcpts; i++) {
		r = &txn->rcpts[i];
		if (!r->replied) {
			r->res = *res;
			r->replied = 1;
			r->wire = W_DONE;
		}
	}
	if (txn->data != D_NONE && txn->data != D_DONE)
		txn_data_done(txn, res);
	else
		txn_reset_wire(txn);
	txn_schedule(txn);
}

/* The connection cannot go on: tell its transaction and close it. */
static void
conn_fail(struct relay_conn *c, int retry, const struct smtp_result *res)
{
	struct relay_txn *txn = c->txn;

	if (txn != NULL || c->state < C_READY)
		conn_log_fail(c, res);
	else
		log_debug("relay cid=%016llx to=%s closed while %s: %s",
		    (unsigned long long)c->id, c->peer,
		    c->idle ? "idle" : relay_strstate(c->state), res->text);
	if (txn != NULL)
		txn_conn_failed(txn, c, retry, res);
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
		txn_pump(c->txn);
	else
		conn_settle(c);
	conn_rearm(c);
}

/* After EHLO/HELO: STARTTLS when wanted and possible, else ready. */
static void
conn_after_ehlo(struct relay_conn *c)
{
	struct smtp_result res;

	if (c->ssl == NULL && c->tlsmode != RELAY_TLS_NONE) {
		if ((c->ext & EXT_STARTTLS) && c->pool->ctx != NULL) {
			conn_send(c, -1, 0, "STARTTLS");
			conn_enter_state(c, C_STARTTLS);
			conn_timer(c, c->pool->to.ehlo);
			return;
		}
		if (c->tlsmode >= RELAY_TLS_ENCRYPT) {
			result_set(&res, 451, "4.7.0", "next hop %s does not "
			    "offer STARTTLS (relay_tls = %s)", c->peer,
			    c->tlsmode == RELAY_TLS_VERIFY ? "verify" :
			    "encrypt");
			if (c->pool->ctx == NULL)
				result_set(&res, 451, "4.7.0",
				    "no TLS client context for relay_tls");
			conn_fail(c, 0, &res);
			return;
		}
	}
	conn_ready(c);
}

/*
 * 220 to STARTTLS: drop any plaintext the server sent after it (an injected
 * command must never be read as if it came over TLS: CVE-2011-0411), and
 * put TLS on the socket.  Returns -1 when the connection failed.
 */
static int
conn_starttls(struct relay_conn *c)
{
	struct relay_pool *p = c->pool;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct smtp_result res;
	evutil_socket_t fd;
	size_t junk;
	SSL *ssl;

	if ((junk = evbuffer_get_length(in)) > 0) {
		log_warnx("relay cid=%016llx to=%s discarding %zu bytes sent "
		    "before the TLS handshake", (unsigned long long)c->id,
		    c->peer, junk);
		evbuffer_drain(in, junk);
	}
	ERR_clear_error();
	if ((ssl = SSL_new(p->ctx)) == NULL ||
	    tls_client_setup(ssl, c->host,
	    c->tlsmode == RELAY_TLS_VERIFY) == -1) {
		result_set(&res, 451, "4.7.5", "TLS setup: %s", tls_error());
		SSL_free(ssl);
		conn_fail(c, 0, &res);
		return -1;
	}
	fd = bufferevent_getfd(c->bev);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	bufferevent_free(c->bev);       /* not BEV_OPT_CLOSE_ON_FREE */
	c->ssl = ssl;
	c->bev = bufferevent_openssl_socket_new(p->base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		close(fd);
		c->ssl = NULL;
		result_set(&res, 451, "4.7.5", "cannot start TLS");
		conn_fail(c, 0, &res);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_enter_state(c, C_HANDSHAKE);
	conn_timer(c, p->to.tls);
	return -1;      /* stop reading the old buffer */
}

/* The handshake completed: log it and say EHLO again. */
static void
conn_tls_done(struct relay_conn *c)
{
	char desc[128];
	struct smtp_result res;
	long vr;

	if (c->tlsmode == RELAY_TLS_VERIFY &&
	    (vr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		result_set(&res, 451, "4.7.5", "certificate of next hop %s "
		    "does not verify: %s", c->peer,
		    X509_verify_cert_error_string(vr));
		conn_fail(c, 0, &res);
		return;
	}
	tls_describe(c->ssl, desc, sizeof(desc));
	log_info("relay cid=%016llx to=%s tls=established %s verified=%s",
	    (unsigned long long)c->id, c->peer, desc,
	    c->tlsmode == RELAY_TLS_VERIFY ? "yes" : "no");
	c->ext = 0;
	c->size_limit = 0;
	conn_send(c, -1, 0, "EHLO %s", c->pool->cfg->hostname);
	conn_enter_state(c, C_EHLO);
	conn_timer(c, c->pool->to.ehlo);
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
		conn_send(c, -1, 0, "EHLO %s", c->pool->cfg->hostname);
		conn_enter_state(c, C_EHLO);
		conn_timer(c, c->pool->to.ehlo);
		return 0;
	case C_EHLO:
		if (cls == 2) {
			c->ext = rep->ext;
			c->size_limit = rep->size_limit;
			conn_after_ehlo(c);
			return c->state == C_DEAD ? -1 : 0;
		}
		if (cls != 5 || c->ssl != NULL)
			break;
		conn_send(c, -1, 0, "HELO %s", c->pool->cfg->hostname);
		conn_enter_state(c, C_HELO);
		conn_timer(c, c->pool->to.ehlo);
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
		if (c->tlsmode >= RELAY_TLS_ENCRYPT) {
			result_set(&res, 451, "4.7.0",
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
	result_set(&res, 451, "4.4.1", "next hop %s refused the session "
	    "(%s): %s", c->peer, relay_strstate(c->state), line);
	conn_fail(c, 0, &res);
	return -1;
}

/* Reply to MAIL: on rejection every recipient gets that reply. */
static void
txn_mail_reply(struct relay_txn *txn, const struct smtp_reply *rep)
{
	struct relay_rcpt *r;
	int i;

	if (rep->code / 100 == 2) {
		txn->mail = M_OK;
		return;
	}
	txn->mail = M_REJECTED;
	result_from_reply(&txn->mail_res, rep);
	if (rep->code / 100 != 4 && rep->code / 100 != 5)
		result_set(&txn->mail_res, 451, "4.4.2", "unexpected reply "
		    "to MAIL from next hop: %d", rep->code);
	for (i = 0; i < txn->nrcpts && !txn->replay_failed; i++)
		txn->replay_failed = txn->rcpts[i].accepted;
	if (txn->replay_failed) {
		snprintf(txn->replay_err, sizeof(txn->replay_err), "MAIL: %.*s",
		    (int)sizeof(txn->replay_err) - 8, txn->mail_res.text);
	}
	for (i = 0; i < txn->nrcpts; i++) {
		r = &txn->rcpts[i];
		r->replay = 0;
		if (!r->replied) {
			r->res = txn->mail_res;
			r->replied = 1;
		}
		if (r->wire == W_QUEUED)
			r->wire = W_DONE;
	}
}

/* Reply to one RCPT (first time, or replayed on a new connection). */
static void
txn_rcpt_reply(struct relay_txn *txn, int idx, const struct smtp_reply *rep)
{
	struct relay_rcpt *r = &txn->rcpts[idx];
	int ok = rep->code / 100 == 2;

	r->wire = W_DONE;
	if (r->replay) {
		r->replay = 0;
		if (!ok && !txn->replay_failed) {
			txn->replay_failed = 1;
			snprintf(txn->replay_err, sizeof(txn->replay_err),
			    "<%s>: %d %s", r->addr, rep->code, rep->enh);
		}
		return;
	}
	if (r->replied)         /* MAIL was refused; pipelined RCPT */
		return;
	result_from_reply(&r->res, rep);
	if (!ok && rep->code / 100 != 4 && rep->code / 100 != 5)
		result_set(&r->res, 451, "4.4.2", "unexpected reply to RCPT "
		    "from next hop: %d", rep->code);
	r->replied = 1;
	r->accepted = ok;
	if (!ok)
		log_info("relay id=%016llx rcpt=<%s> status=%d enh=%s "
		    "text=\"%s\"", (unsigned long long)txn->id, r->addr,
		    r->res.code, r->res.enh, r->res.text);
}

/* A reply to one of our transaction commands; -1 if the conn failed. */
static int
conn_txn_reply(struct relay_conn *c, struct expect e,
    const struct smtp_reply *rep)
{
	struct relay_txn *txn = c->txn;
	struct smtp_result res;
	int cls = rep->code / 100;

	if (txn == NULL)                /* aborted: RSET follows */
		return 0;
	switch (e.cmd) {
	case CMD_MAIL:
		txn_mail_reply(txn, rep);
		break;
	case CMD_RCPT:
		txn_rcpt_reply(txn, e.idx, rep);
		break;
	case CMD_DATA:
		if (rep->code == 354) {
			txn->data = D_BODY;
			txn->off = 0;
			smtp_stuff_init(&txn->stuff);
			txn->chunk = xmalloc(3 * RELAY_CHUNK + 16);
			bufferevent_setwatermark(c->bev, EV_WRITE,
			    RELAY_WBUF_LOW, 0);
			conn_rearm(c);
			return body_pump(txn);
		}
		if (cls != 4 && cls != 5)
			goto protocol;
		result_from_reply(&res, rep);
		txn_data_done(txn, &res);
		return 0;
	case CMD_DOT:
		if (cls != 2 && cls != 4 && cls != 5)
			goto protocol;
		result_from_reply(&res, rep);
		c->in_txn = 0;
		txn_data_done(txn, &res);
		return 0;
	default:
		break;
	}
	txn_pump(txn);
	txn_schedule(txn);
	return 0;
protocol:
	result_set(&res, 451, "4.4.2", "unexpected reply from next hop %s: "
	    "%d", c->peer, rep->code);
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
			result_set(&res, 451, "4.4.2", "unexpected reply "
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
	if (conn_txn_reply(c, e, rep) == -1)
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
			result_set(&res, 451, "4.4.2", "next hop %s sent a "
			    "reply line over %d bytes", c->peer, RELAY_LINE_MAX);
			conn_fail(c, 0, &res);
			return;
		}
		r = smtp_reply_feed(&c->reply, line, len);
		free(line);
		if (r == -1 || (r == 0 && c->reply.nlines >= RELAY_LINES_MAX)) {
			result_set(&res, 451, "4.4.2", "next hop %s sent a %s "
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
	if (c->state == C_READY && c->txn != NULL && c->txn->data == D_BODY)
		body_pump(c->txn);
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
	    c->tlsmode == RELAY_TLS_VERIFY &&
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
			conn_enter_state(c, C_GREETING);
			conn_timer(c, c->pool->to.greeting);
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
		result_set(&res, 451, "4.4.2", "next hop connection %s timed "
		    "out while waiting for the client", c->peer);
		txn_conn_failed(c->txn, c, 0, &res);
		conn_quit(c);
	} else {
		snprintf(why, sizeof(why), "timeout waiting for reply");
		conn_lost_result(c, why, &res);
		conn_fail(c, 0, &res);
	}
	conn_unref(c);
}

/* 1 if the parameter keyword tok[0..klen) is `key` (any case). */
static int
param_is(const char *tok, size_t klen, const char *key)
{
	return klen == strlen(key) && strncasecmp(tok, key, klen) == 0;
}

/*
 * Keep the ESMTP parameters the next hop offers (DSN, SIZE, 8BITMIME,
 * SMTPUTF8) and drop the rest.  -1 with `res` set when the message cannot
 * go to this next hop at all.
 */
static int
filter_params(const struct relay_conn *c, const char *in, int rcpt,
    char *out, size_t outlen, struct smtp_result *res)
{
	char *copy = xstrdup(in), *tok, *last;
	unsigned long long size;
	int keep, rc = 0;
	size_t klen;

	out[0] = '\0';
	for (tok = strtok_r(copy, " ", &last); tok != NULL;
	    tok = strtok_r(NULL, " ", &last)) {
		klen = strcspn(tok, "=");
		if (rcpt)
			keep = (param_is(tok, klen, "NOTIFY") || param_is(tok, klen, "ORCPT")) &&
			    (c->ext & EXT_DSN);
		else if (param_is(tok, klen, "SIZE")) {
			keep = (c->ext & EXT_SIZE) != 0;
			size = strtoull(tok + klen + (tok[klen] == '='), NULL,
			    10);
			if (keep && c->size_limit && size > c->size_limit) {
				result_set(res, 552, "5.3.4", "message size "
				    "%llu exceeds the next hop's limit of %llu",
				    size, (unsigned long long)c->size_limit);
				rc = -1;
			}
		} else if (param_is(tok, klen, "BODY"))
			keep = (c->ext & EXT_8BITMIME) != 0;
		else if (param_is(tok, klen, "SMTPUTF8")) {
			keep = 1;
			if (!(c->ext & EXT_SMTPUTF8)) {
				result_set(res, 553, "5.6.7", "next hop does "
				    "not support SMTPUTF8");
				rc = -1;
			}
		} else
			keep = (param_is(tok, klen, "RET") || param_is(tok, klen, "ENVID")) &&
			    (c->ext & EXT_DSN);
		if (keep && strlen(out) + strlen(tok) + 2 <= outlen) {
			strcat(out, " ");
			strcat(out, tok);
		} else if (!keep)
			log_debug("relay cid=%016llx dropping parameter %s",
			    (unsigned long long)c->id, tok);
	}
	free(copy);
	return rc;
}

/* 1 if a recipient still needs to go out on the wire. */
static int
txn_has_queued(const struct relay_txn *txn)
{
	int i;

	for (i = 0; i < txn->nrcpts; i++)
		if (txn->rcpts[i].wire == W_QUEUED)
			return 1;
	return 0;
}

/* Send MAIL FROM for txn; -1 when it was refused locally. */
static int
txn_send_mail(struct relay_txn *txn, struct relay_conn *c)
{
	size_t plen = strlen(txn->params) + 2;
	char *params = xmalloc(plen);

	if (filter_params(c, txn->params, 0, params, plen,
	    &txn->mail_res) == -1) {
		free(params);
		txn->mail = M_REJECTED;
		log_info("relay id=%016llx to=%s status=%d enh=%s text=\"%s\"",
		    (unsigned long long)txn->id, c->peer, txn->mail_res.code,
		    txn->mail_res.enh, txn->mail_res.text);
		return -1;
	}
	conn_send(c, CMD_MAIL, 0, "MAIL FROM:<%s>%s", txn->from, params);
	free(params);
	txn->mail = M_SENT;
	c->in_txn = 1;
	return 0;
}

/* Send one RCPT TO. */
static void
txn_send_rcpt(struct relay_txn *txn, struct relay_conn *c, int i)
{
	struct relay_rcpt *r = &txn->rcpts[i];
	size_t plen = strlen(r->params) + 2;
	char *params = xmalloc(plen);
	struct smtp_result unused;

	filter_params(c, r->params, 1, params, plen, &unused);
	conn_send(c, CMD_RCPT, i, "RCPT TO:<%s>%s", r->addr, params);
	free(params);
	r->wire = W_SENT;
}

/* All recipients answered: DATA, or the reason there will be none. */
static void
txn_pump_data(struct relay_txn *txn, struct relay_conn *c)
{
	struct smtp_result res;
	int i, n = 0;

	for (i = 0; i < txn->nrcpts; i++) {
		if (txn->rcpts[i].wire != W_DONE)
			return;
		n += txn->rcpts[i].accepted;
	}
	if (c->nexp > 0)
		return;
	if (txn->replay_failed) {
		result_set(&res, 451, "4.4.2", "next hop refused on reconnect "
		    "what it had accepted (%s)", txn->replay_err);
		txn_data_done(txn, &res);
	} else if (txn->mail != M_OK || n == 0) {
		result_set(&res, 554, "5.5.1", "no valid recipients");
		txn_data_done(txn, &res);
	} else if ((c->ext & EXT_SIZE) && c->size_limit &&
	    msgbuf_size(txn->msg) > c->size_limit) {
		result_set(&res, 552, "5.3.4", "message size %zu exceeds the "
		    "next hop's limit of %llu", msgbuf_size(txn->msg),
		    (unsigned long long)c->size_limit);
		txn_data_done(txn, &res);
	} else {
		conn_send(c, CMD_DATA, 0, "DATA");
		txn->data = D_SENT;
	}
}

/*
 * Send what the transaction can send now.  With PIPELINING, MAIL waits for
 * the first RCPT so both leave in one packet, and RCPTs go out without
 * waiting; without it, one command at a time.
 */
static void
txn_pump(struct relay_txn *txn)
{
	struct relay_conn *c = txn->conn;
	struct relay_rcpt *r;
	int i, pipe;

	if (c == NULL || c->state != C_READY)
		return;
	pipe = (c->ext & EXT_PIPELINING) != 0;
	if (txn->mail == M_NONE) {
		if (pipe && !txn_has_queued(txn) && txn->data != D_WAIT)
			return;
		if (txn_send_mail(txn, c) == 0 && !pipe)
			return;
	}
	if (txn->mail == M_SENT && !pipe)
		return;
	for (i = 0; i < txn->nrcpts; i++) {
		r = &txn->rcpts[i];
		if (r->wire != W_QUEUED)
			continue;
		if (txn->mail == M_REJECTED) {
			r->replay = 0;
			r->wire = W_DONE;
			if (!r->replied) {
				r->res = txn->mail_res;
				r->replied = 1;
			}
			continue;
		}
		if (!pipe && c->nexp > 0)
			break;
		txn_send_rcpt(txn, c, i);
	}
	if (txn->data == D_WAIT)
		txn_pump_data(txn, c);
	txn_schedule(txn);
}

/* Stream the body while the output buffer is below the high mark; then the
 * terminator.  Returns -1 if the connection failed. */
static int
body_pump(struct relay_txn *txn)
{
	struct relay_conn *c = txn->conn;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t size = msgbuf_size(txn->msg), w;
	struct smtp_result res;
	struct timeval tv;
	char end[8];
	ssize_t n;

	tv.tv_sec = c->pool->to.data_block / 1000;
	tv.tv_usec = (c->pool->to.data_block % 1000) * 1000;
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	while (evbuffer_get_length(out) < RELAY_WBUF_HIGH && txn->off < size) {
		n = msgbuf_pread(txn->msg, txn->chunk, RELAY_CHUNK, txn->off);
		if (n <= 0) {
			/* Never send the dot after a short body: close. */
			result_set(&res, 451, "4.3.0", "local error reading "
			    "the message at offset %zu", txn->off);
			conn_fail(c, 0, &res);
			return -1;
		}
		w = smtp_stuff_feed(&txn->stuff, txn->chunk, (size_t)n,
		    txn->chunk + RELAY_CHUNK);
		evbuffer_add(out, txn->chunk + RELAY_CHUNK, w);
		txn->off += (size_t)n;
	}
	if (txn->off < size)
		return 0;
	w = smtp_stuff_end(&txn->stuff, end);
	evbuffer_add(out, end, w);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	free(txn->chunk);
	txn->chunk = NULL;
	txn->data = D_DOT;
	conn_expect(c, CMD_DOT, 0);
	return 0;
}

/* Run the callbacks whose answers are ready, in order; free the
 * transaction after its data() callback or an abort from a callback. */
static void
txn_notify_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct relay_txn *txn = arg;
	struct smtp_result res;
	delivery_cb *cb;
	void *cbarg;
	int i;

	(void)fd;
	(void)ev;
	txn->in_cb = 1;
	for (i = 0; i < txn->nrcpts && !txn->aborted; i++) {
		if (txn->rcpts[i].cb == NULL || !txn->rcpts[i].replied)
			continue;
		cb = txn->rcpts[i].cb;
		cbarg = txn->rcpts[i].arg;
		res = txn->rcpts[i].res;
		txn->rcpts[i].cb = NULL;
		cb(cbarg, &res);        /* may rcpt(): rcpts may move */
	}
	if (!txn->aborted && txn->data == D_DONE && txn->data_cb != NULL) {
		cb = txn->data_cb;
		cbarg = txn->data_arg;
		res = txn->data_res;
		txn->data_cb = NULL;
		txn->finished = 1;
		cb(cbarg, &res);
	}
	txn->in_cb = 0;
	if (txn->aborted || txn->finished)
		txn_free(txn);
}

/* Callbacks run from the event loop, never from inside an ops call. */
static void
txn_schedule(struct relay_txn *txn)
{
	int i, due = txn->data == D_DONE && txn->data_cb != NULL;

	for (i = 0; i < txn->nrcpts && !due; i++)
		due = txn->rcpts[i].cb != NULL && txn->rcpts[i].replied;
	if (due && !txn->aborted)
		event_active(txn->ev, EV_TIMEOUT, 1);
}

/* Give txn a connection: a pooled one when allowed, else a new one. */
static void
txn_attach(struct relay_txn *txn, int pooled)
{
	struct relay_pool *p = txn->pool;
	struct relay_conn *c;

	if (pooled && (c = TAILQ_FIRST(&p->idle)) != NULL) {
		TAILQ_REMOVE(&p->idle, c, idle_entry);
		c->idle = 0;
		p->nidle--;
		c->reused = 1;
		c->nreplies = 0;
		c->txn = txn;
		txn->conn = c;
		strlcpy_s(txn->peer, c->peer, sizeof(txn->peer));
		log_debug("relay id=%016llx cid=%016llx reusing connection",
		    (unsigned long long)txn->id, (unsigned long long)c->id);
		txn_pump(txn);
		conn_rearm(c);
		return;
	}
	c = conn_new(p);
	c->txn = txn;
	txn->conn = c;
	strlcpy_s(txn->peer, c->peer, sizeof(txn->peer));
}

/* Let go of the connection of an aborted transaction. */
static void
txn_detach(struct relay_txn *txn)
{
	struct relay_conn *c = txn->conn;

	if (c == NULL)
		return;
	txn->conn = NULL;
	c->txn = NULL;
	if (txn->data == D_SENT || txn->data == D_BODY || txn->data == D_DOT) {
		/* Mid-DATA there is no way back but closing. */
		log_info("relay id=%016llx cid=%016llx aborted during DATA, "
		    "closing", (unsigned long long)txn->id,
		    (unsigned long long)c->id);
		conn_close(c);
		return;
	}
	if (c->in_txn)
		c->need_rset = 1;
	conn_settle(c);
	conn_rearm(c);
}

/* ops->begin: a transaction; a connection is sought at once. */
static void *
relay_begin(void *ctx, const char *from, const char *params, uint64_t sessid)
{
	struct relay_pool *p = ctx;
	struct relay_txn *txn = xcalloc(1, sizeof(*txn));

	txn->pool = p;
	txn->id = sessid;
	txn->from = xstrdup(from);
	txn->params = xstrdup(params ? params : "");
	txn->ev = event_new(p->base, -1, 0, txn_notify_cb, txn);
	TAILQ_INSERT_TAIL(&p->txns, txn, entry);
	txn_attach(txn, 1);
	return txn;
}

/* ops->rcpt: queue a recipient; answered from the loop. */
static void
relay_rcpt(void *arg, const char *rcpt, const char *params, delivery_cb *cb,
    void *cbarg)
{
	struct relay_txn *txn = arg;
	struct relay_rcpt *r;

	if (txn->nrcpts == txn->rcptsz) {
		txn->rcptsz = txn->rcptsz ? txn->rcptsz * 2 : 4;
		txn->rcpts = xreallocarray(txn->rcpts, txn->rcptsz,
		    sizeof(*txn->rcpts));
	}
	r = &txn->rcpts[txn->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(rcpt);
	r->params = xstrdup(params ? params : "");
	r->cb = cb;
	r->arg = cbarg;
	r->wire = W_QUEUED;
	if (txn->pool == NULL) {
		result_set(&r->res, 421, "4.3.2", "relay is shutting down");
		r->replied = 1;
		r->wire = W_DONE;
	} else if (txn->mail == M_REJECTED) {
		r->res = txn->mail_res;
		r->replied = 1;
		r->wire = W_DONE;
	} else if (txn->conn == NULL)
		txn_attach(txn, 1);
	else
		txn_pump(txn);
	txn_schedule(txn);
}

/* ops->data: send the message; a lost connection is re-opened first. */
static void
relay_data(void *arg, struct msgbuf *msg, delivery_cb *cb, void *cbarg)
{
	struct relay_txn *txn = arg;
	struct smtp_result res;
	int i, pending = 0, ok = 0;

	txn->msg = msg;
	txn->data_cb = cb;
	txn->data_arg = cbarg;
	txn->data = D_WAIT;
	for (i = 0; i < txn->nrcpts; i++) {
		pending += !txn->rcpts[i].replied;
		ok += txn->rcpts[i].accepted;
	}
	if (txn->pool == NULL) {
		result_set(&res, 421, "4.3.2", "relay is shutting down");
		txn_data_done(txn, &res);
	} else if (!pending && (!ok || txn->mail == M_REJECTED)) {
		result_set(&res, 554, "5.5.1", "no valid recipients");
		txn_data_done(txn, &res);
	} else if (txn->conn == NULL) {
		log_info("relay id=%016llx connection to next hop was lost, "
		    "replaying the envelope", (unsigned long long)txn->id);
		txn->replays++;
		txn_attach(txn, 1);
	} else
		txn_pump(txn);
}

/* ops->abort: no callback after this. */
static void
relay_abort(void *arg)
{
	struct relay_txn *txn = arg;

	txn->aborted = 1;
	if (txn->in_cb) {
		txn_detach(txn);
		return;                 /* txn_notify_cb frees it */
	}
	txn_free(txn);
}

/* Free a transaction (aborted, or its data() callback has run). */
static void
txn_free(struct relay_txn *txn)
{
	int i;

	txn_detach(txn);
	if (txn->pool != NULL)
		TAILQ_REMOVE(&txn->pool->txns, txn, entry);
	for (i = 0; i < txn->nrcpts; i++) {
		free(txn->rcpts[i].addr);
		free(txn->rcpts[i].params);
	}
	free(txn->rcpts);
	free(txn->from);
	free(txn->params);
	free(txn->chunk);
	event_free(txn->ev);
	free(txn);
}

const struct delivery_ops relay_delivery_ops = {
	relay_begin,
	relay_rcpt,
	relay_data,
	relay_abort,
};

/* A pool for the next hop of cfg; connections are opened on demand. */
struct relay_pool *
relay_pool_new(struct event_base *base, const struct config *cfg,
    SSL_CTX *client_ctx)
{
	struct relay_pool *p = xcalloc(1, sizeof(*p));

	p->base = base;
	p->cfg = cfg;
	p->ctx = client_ctx;
	p->to = relay_default_timeouts;
	TAILQ_INIT(&p->conns);
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->txns);
	p->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (p->dns == NULL)
		log_warnx("relay: no asynchronous DNS, names are resolved "
		    "with getaddrinfo");
	if (cfg->relay_mx)
		log_warnx("relay: relay = mx is not supported yet; every "
		    "delivery will be deferred");
	return p;
}

/* Close every connection; transactions in flight are cut loose (their
 * later ops calls get 421). */
void
relay_pool_free(struct relay_pool *p)
{
	struct relay_conn *c;
	struct relay_txn *txn;

	if (p == NULL)
		return;
	while ((txn = TAILQ_FIRST(&p->txns)) != NULL) {
		TAILQ_REMOVE(&p->txns, txn, entry);
		if (txn->conn != NULL) {
			txn->conn->txn = NULL;
			txn->conn = NULL;
		}
		txn->pool = NULL;
		event_del(txn->ev);
	}
	while ((c = TAILQ_FIRST(&p->conns)) != NULL)
		conn_close(c);
	if (p->dns != NULL)
		evdns_base_free(p->dns, 0);
	free(p);
}

/* New config and TLS context: idle connections go, busy ones are not
 * reused once their transaction ends. */
void
relay_pool_reconfigure(struct relay_pool *p, const struct config *cfg,
    SSL_CTX *client_ctx)
{
	struct relay_conn *c;

	p->cfg = cfg;
	p->ctx = client_ctx;
	p->gen++;
	while ((c = TAILQ_FIRST(&p->idle)) != NULL)
		conn_quit(c);
	log_info("relay: reconfigured, next hop %s:%s relay_tls=%d",
	    cfg->relay_host ? cfg->relay_host : "mx",
	    cfg->relay_port ? cfg->relay_port : "25", (int)cfg->relay_tls);
}

/* Replace the timeout table (tests). */
void
relay_pool_set_timeouts(struct relay_pool *p, const struct relay_timeouts *t)
{
	p->to = *t;
}

/* Open outbound connections, busy and idle. */
int
relay_pool_nconns(const struct relay_pool *p)
{
	return p->nconns;
}
