/* relay.c: the outbound SMTP client.  A pool of connections to the next hop
 * (reused across transactions), STARTTLS per relay_tls, PIPELINING, and the
 * body streamed from the msgbuf with dot-stuffing and backpressure. */
#include "autoconfig.h"

#include <sys/queue.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "relay.h"
#include "relay_conn.h"
#include "proto/proto.h"

#define RELAY_CHUNK     (64 * 1024)     /* body bytes read per msgbuf_pread */

enum mail_state { M_NONE, M_SENT, M_OK, M_REJECTED };
enum data_state { D_NONE, D_WAIT, D_SENT, D_BODY, D_DOT, D_DONE };
enum wire_state { W_QUEUED, W_SENT, W_DONE };
enum xfwd_state { X_NONE, X_SENT, X_DONE };    /* XFORWARD before MAIL */

struct relay_rcpt {
	char *addr, *params;
	delivery_cb *cb;                /* NULL once called */
	void *arg;
	enum wire_state wire;
	int replied, accepted;
	int replay;                     /* re-sent on a fresh connection */
	struct smtp_result res;
};

/* One delivery: its envelope and message, on one connection at a time. */
struct relay_txn {
	TAILQ_ENTRY(relay_txn) entry;
	struct relay_pool *pool;        /* NULL once the pool is gone */
	struct relay_hop *hop;          /* its destination; NULL until the
					 * first RCPT names it */
	struct relay_conn *conn;
	uint64_t id;
	char *from, *params;
	struct xforward *client;        /* upstream client, or NULL */
	enum xfwd_state xfwd;
	int xfwd_pending;               /* XFORWARD replies still due */
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
	int setup_failed;               /* no session with the next hop: */
	struct smtp_result setup_res;   /* later RCPTs get this at once */
	char peer[300];                 /* of the last connection, for logs */
	double started;                 /* mono_now(), for the metrics */
	char tls[96];                   /* and its TLS, for logs */
};

TAILQ_HEAD(txn_list, relay_txn);

TAILQ_HEAD(hop_list, relay_hop);

#define HOPS_MAX	256	/* destinations kept; unused ones go */

/* The context of relay_delivery_ops. */
struct relay_pool {
	struct relay_hop hop;           /* settings every destination copies */
	struct hop_list hops;           /* destinations, most recent first */
	int nhops;
	struct dns *resolver;           /* NULL: no DNS (no mx, no dane) */
	int routed;                     /* routes or mx: a destination per
					 * recipient */
	struct txn_list txns;
};

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

static void txn_attach(struct relay_txn *, int);
static void txn_pump(struct relay_txn *);
static int txn_body_pump(struct relay_conn *, void *);
static void txn_schedule(struct relay_txn *);
static void txn_free(struct relay_txn *);
static void hop_free(struct relay_pool *, struct relay_hop *);

/* Reset a transaction's protocol state for a fresh connection: MAIL again,
 * unanswered recipients again, accepted recipients replayed. */
static void
txn_reset_wire(struct relay_txn *txn)
{
	struct relay_rcpt *r;
	int i;

	if (txn->mail != M_REJECTED)
		txn->mail = M_NONE;
	txn->xfwd = X_NONE;
	txn->xfwd_pending = 0;
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

/* Take the connection's name and TLS state for the delivery log:
 * "TLSv1.3:CIPHER", ":resumed" when the session was resumed, or "none". */
static void
txn_note_conn(struct relay_txn *txn, struct relay_conn *c)
{
	strlcpy_s(txn->peer, c->peer, sizeof(txn->peer));
	if (c->ssl != NULL && SSL_is_init_finished(c->ssl))
		snprintf(txn->tls, sizeof(txn->tls), "%s:%s%s",
		    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
		    SSL_session_reused(c->ssl) ? ":resumed" : "");
	else
		snprintf(txn->tls, sizeof(txn->tls), "none");
}

/* Where a result came from, for the delivery log. */
static void
txn_stamp(const struct relay_txn *txn, struct smtp_result *res)
{
	strlcpy_s(res->relay, txn->peer, sizeof(res->relay));
	strlcpy_s(res->tls, txn->tls[0] ? txn->tls : "none",
	    sizeof(res->tls));
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
	metrics_latency(mono_now() - txn->started);
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
 * cbs->failed: the connection under c->txn is gone.  A reused connection
 * that died before its first reply is retried once on a fresh one;
 * otherwise what waits for an answer gets `res`, and a later rcpt()/data()
 * replays on a new connection.  `retry` says the failure is an EOF/reset,
 * not a verdict.
 */
static void
txn_conn_failed(struct relay_conn *c, int retry, const struct smtp_result *res,
    void *arg)
{
	struct relay_txn *txn = c->txn;
	struct relay_rcpt *r;
	int i;

	(void)arg;
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
	if (c->state < C_READY && !c->reused) {
		txn->setup_failed = 1;
		txn->setup_res = *res;
	}
	for (i = 0; i < txn->nrcpts; i++) {
		r = &txn->rcpts[i];
		if (!r->replied) {
			r->res = *res;
			r->replied = 1;
			r->wire = W_DONE;
		}
	}
	if (txn->data == D_DOT) {
		/* The final dot went out: the next hop may have the message,
		 * so whoever retries it may deliver it twice.  Say so. */
		struct smtp_result dot = *res;

		snprintf(dot.text, sizeof(dot.text), "%.200s (no reply after "
		    "end of data)", res->text);
		txn_data_done(txn, &dot);
	} else if (txn->data != D_NONE && txn->data != D_DONE)
		txn_data_done(txn, res);
	else
		txn_reset_wire(txn);
	txn_schedule(txn);
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
		smtp_result_set(&txn->mail_res, 451, "4.4.2", "unexpected reply "
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
		smtp_result_set(&r->res, 451, "4.4.2", "unexpected reply to RCPT "
		    "from next hop: %d", rep->code);
	r->replied = 1;
	r->accepted = ok;
	if (!ok)
		log_info("relay id=%016llx rcpt=<%s> status=%d enh=%s "
		    "text=\"%s\"", (unsigned long long)txn->id, r->addr,
		    r->res.code, r->res.enh, r->res.text);
}

/* cbs->reply: a reply to one of c->txn's commands; -1 if the conn failed. */
static int
txn_reply(struct relay_conn *c, struct expect e, const struct smtp_reply *rep,
    void *arg)
{
	struct relay_txn *txn = c->txn;
	struct smtp_result res;
	int cls = rep->code / 100;

	switch (e.cmd) {
	case CMD_MAIL:
		txn_mail_reply(txn, rep);
		break;
	case CMD_RCPT:
		txn_rcpt_reply(txn, e.idx, rep);
		break;
	case CMD_XFORWARD:
		/* refused: the mail goes on, only without the attributes */
		if (cls != 2)
			log_info("relay id=%016llx to=%s xforward=refused "
			    "status=%d text=\"%s\"", (unsigned long long)txn->id,
			    c->peer, rep->code, rep->text);
		if (--txn->xfwd_pending <= 0)
			txn->xfwd = X_DONE;
		break;
	case CMD_DATA:
		if (rep->code == 354) {
			txn->data = D_BODY;
			txn->off = 0;
			smtp_stuff_init(&txn->stuff);
			txn->chunk = xmalloc(3 * RELAY_CHUNK + 16);
			conn_body_begin(c);
			return txn_body_pump(c, arg);
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
	smtp_result_set(&res, 451, "4.4.2", "unexpected reply from next hop %s: "
	    "%d", c->peer, rep->code);
	conn_fail(c, 0, &res);
	return -1;
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
				smtp_result_set(res, 552, "5.3.4", "message size "
				    "%llu exceeds the next hop's limit of %llu",
				    size, (unsigned long long)c->size_limit);
				rc = -1;
			}
		} else if (param_is(tok, klen, "BODY"))
			keep = (c->ext & EXT_8BITMIME) != 0;
		else if (param_is(tok, klen, "SMTPUTF8")) {
			keep = 1;
			if (!(c->ext & EXT_SMTPUTF8)) {
				smtp_result_set(res, 553, "5.6.7", "next hop does "
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

/*
 * Send XFORWARD with what we know of the upstream client, when the next
 * hop offers it (Postfix XFORWARD_README), before each MAIL: a server
 * forgets the attributes at the end of a transaction.  Returns 1 when
 * replies are due.
 */
static int
txn_send_xforward(struct relay_txn *txn, struct relay_conn *c)
{
	char line[XF_LINE_MAX + 1];
	int pos = 0;

	txn->xfwd = X_DONE;
	if (txn->client == NULL || !(c->ext & EXT_XFORWARD) ||
	    c->xforward == 0)
		return 0;
	while (xforward_format(txn->client, c->xforward, &pos, line,
	    sizeof(line))) {
		conn_send(c, CMD_XFORWARD, 0, "%s", line);
		txn->xfwd_pending++;
	}
	if (txn->xfwd_pending == 0)
		return 0;
	log_debug("relay id=%016llx to=%s xforward addr=%s",
	    (unsigned long long)txn->id, c->peer,
	    txn->client->val[XF_ADDR][0] ? txn->client->val[XF_ADDR] : "-");
	txn->xfwd = X_SENT;
	return 1;
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
		smtp_result_set(&res, 451, "4.4.2", "next hop refused on reconnect "
		    "what it had accepted (%s)", txn->replay_err);
		txn_data_done(txn, &res);
	} else if (txn->mail != M_OK || n == 0) {
		smtp_result_set(&res, 554, "5.5.1", "no valid recipients");
		txn_data_done(txn, &res);
	} else if ((c->ext & EXT_SIZE) && c->size_limit &&
	    msgbuf_size(txn->msg) > c->size_limit) {
		smtp_result_set(&res, 552, "5.3.4", "message size %zu exceeds the "
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
		if (txn->xfwd == X_NONE && txn_send_xforward(txn, c) && !pipe)
			return;
		if (txn->xfwd == X_SENT && !pipe)
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

/* cbs->body: stream c->txn's body while the output buffer is below the
 * high mark; then the terminator.  Returns -1 if the connection failed. */
static int
txn_body_pump(struct relay_conn *c, void *arg)
{
	struct relay_txn *txn = c->txn;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t size = msgbuf_size(txn->msg), w;
	struct smtp_result res;
	char end[8];
	ssize_t n;

	(void)arg;
	while (evbuffer_get_length(out) < RELAY_WBUF_HIGH && txn->off < size) {
		n = msgbuf_pread(txn->msg, txn->chunk, RELAY_CHUNK, txn->off);
		if (n <= 0) {
			/* Never send the dot after a short body: close. */
			smtp_result_set(&res, 451, "4.3.0", "local error reading "
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
	free(txn->chunk);
	txn->chunk = NULL;
	txn->data = D_DOT;
	conn_body_end(c);
	return 0;
}

/* cbs->ready: the session with the next hop is set up. */
static void
txn_conn_ready(struct relay_conn *c, void *arg)
{
	struct relay_txn *txn = c->txn;

	(void)arg;
	/* an MX destination's address is known now */
	txn_note_conn(txn, c);
	txn_pump(txn);
}

/* How our connections report to the transactions on them. */
static const struct relay_conn_cbs txn_conn_cbs = {
	.ready = txn_conn_ready,
	.reply = txn_reply,
	.body = txn_body_pump,
	.failed = txn_conn_failed,
};

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
		txn_stamp(txn, &res);
		txn->rcpts[i].cb = NULL;
		cb(cbarg, &res);        /* may rcpt(): rcpts may move */
	}
	if (!txn->aborted && txn->data == D_DONE && txn->data_cb != NULL) {
		cb = txn->data_cb;
		cbarg = txn->data_arg;
		res = txn->data_res;
		txn_stamp(txn, &res);
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
	struct relay_hop *h = txn->hop;
	struct relay_conn *c;

	h->last_used = time(NULL);
	if (pooled && (c = conn_take_idle(h)) != NULL) {
		c->txn = txn;
		txn->conn = c;
		txn_note_conn(txn, c);
		log_debug("relay id=%016llx cid=%016llx reusing connection",
		    (unsigned long long)txn->id, (unsigned long long)c->id);
		txn_pump(txn);
		conn_rearm(c);
		return;
	}
	c = conn_new(h, &txn_conn_cbs, p);
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

/* Whether host is an IP address rather than a name. */
static int
host_is_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

/* The destination of route t (NULL: the one next hop), made on first
 * use; NULL if there is none. */
static struct relay_hop *
hop_for(struct relay_pool *p, const struct route_target *t)
{
	struct route_target one;
	struct relay_hop *h, *old;
	const char *dom, *slash;
	char name[DNS_NAME_MAX + 1];

	if (t == NULL) {
		if (route_for(p->hop.cfg, "postmaster", &one) == -1)
			return NULL;
		t = &one;
	}
	TAILQ_FOREACH(h, &p->hops, entry)
		if (strcmp(h->key, t->key) == 0) {
			if (h != TAILQ_FIRST(&p->hops)) {
				TAILQ_REMOVE(&p->hops, h, entry);
				TAILQ_INSERT_HEAD(&p->hops, h, entry);
			}
			return h;
		}
	/* forget the least recently used destination without connections */
	if (p->nhops >= HOPS_MAX)
		TAILQ_FOREACH_REVERSE(old, &p->hops, hop_list, entry)
			if (old->nconns == 0 && old->ntxns == 0 &&
			    old->mxq == NULL && old->nmx == 0) {
				hop_free(p, old);
				break;
			}
	h = xcalloc(1, sizeof(*h));
	h->key = xstrdup(t->key);
	h->base = p->hop.base;
	h->dns = p->hop.dns;
	h->cfg = p->hop.cfg;
	h->ctx = p->hop.ctx;
	h->to = p->hop.to;
	h->gen = p->hop.gen;
	h->resolver = p->resolver;
	h->ops = &conn_mx_ops;
	h->mx = t->mx;
	h->tls = t->tls;
	h->port = xstrdup(t->port);
	if (t->mx) {            /* "mx:DOMAIN/TLS" */
		dom = t->key + 3;
		slash = strrchr(dom, '/');
		h->host = xstrndup(dom, slash ? (size_t)(slash - dom) :
		    strlen(dom));
	} else {
		h->host = xstrdup(t->host);
		/* DANE needs the host's records through our resolver */
		if ((t->tls == RELAY_TLS_DANE || t->tls == RELAY_TLS_DANE_ONLY) &&
		    dns_name_check(t->host, name, sizeof(name)) == 0 &&
		    !host_is_literal(t->host))
			h->mx = h->fixed = 1;
	}
	TAILQ_INIT(&h->conns);
	TAILQ_INIT(&h->idle);
	TAILQ_INIT(&h->waiting);
	TAILQ_INSERT_HEAD(&p->hops, h, entry);
	p->nhops++;
	return h;
}

/* Close a destination's connections and free it. */
static void
hop_free(struct relay_pool *p, struct relay_hop *h)
{
	struct relay_conn *c;

	while ((c = TAILQ_FIRST(&h->conns)) != NULL)
		conn_close(c);
	mx_clear(h);
	conn_forget_session(h);
	TAILQ_REMOVE(&p->hops, h, entry);
	p->nhops--;
	free(h->key);
	free(h->host);
	free(h->port);
	free(h);
}

/* Give r's transaction its destination (the first RCPT), or check that r
 * has the same; -1 (r answered) if not. */
static int
txn_route(struct relay_txn *txn, struct relay_rcpt *r)
{
	struct route_target t;

	if (txn->hop != NULL && !txn->pool->routed)
		return 0;
	if (route_for(txn->pool->hop.cfg, r->addr, &t) == -1) {
		smtp_result_set(&r->res, 550, "5.1.3", "no mail domain in "
		    "<%s>: cannot route it", r->addr);
		return -1;
	}
	if (txn->hop == NULL) {
		txn->hop = hop_for(txn->pool, &t);
		txn->hop->ntxns++;
		return 0;
	}
	if (strcmp(txn->hop->key, t.key) != 0) {
		/* callers group recipients by relay_route(): a different
		 * destination is for another transaction (RFC 5321 3.3) */
		smtp_result_set(&r->res, 452, "4.5.3", "<%s> goes to another "
		    "destination: send it in another transaction", r->addr);
		return -1;
	}
	return 0;
}

/* ops->route: a recipient's destination key. */
static void
relay_route(void *ctx, const char *rcpt, char *key, size_t keylen)
{
	struct relay_pool *p = ctx;
	struct route_target t;

	if (!p->routed)
		snprintf(key, keylen, "%s", "");
	else if (route_for(p->hop.cfg, rcpt, &t) == -1)
		snprintf(key, keylen, "%s", "-");
	else
		snprintf(key, keylen, "%s", t.key);
}

/* ops->begin: a transaction; a connection is sought at once. */
static void *
relay_begin(void *ctx, const char *from, const char *params, uint64_t sessid)
{
	struct relay_pool *p = ctx;
	struct relay_txn *txn = xcalloc(1, sizeof(*txn));

	txn->started = mono_now();

	txn->pool = p;
	txn->id = sessid;
	txn->from = xstrdup(from);
	txn->params = xstrdup(params ? params : "");
	txn->ev = event_new(p->hop.base, -1, 0, txn_notify_cb, txn);
	TAILQ_INSERT_TAIL(&p->txns, txn, entry);
	/* one next hop: connect now; else at the first RCPT */
	if (!p->routed && (txn->hop = hop_for(p, NULL)) != NULL) {
		txn->hop->ntxns++;
		txn_attach(txn, 1);
	}
	return txn;
}

/* ops->client: keep who the upstream client is, for XFORWARD. */
static void
relay_client(void *arg, const struct xforward *xf)
{
	struct relay_txn *txn = arg;

	if (txn->client == NULL)
		txn->client = xmalloc(sizeof(*txn->client));
	*txn->client = *xf;
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
		smtp_result_set(&r->res, 421, "4.3.2", "relay is shutting down");
		r->replied = 1;
		r->wire = W_DONE;
	} else if (txn_route(txn, r) == -1) {
		r->replied = 1;
		r->wire = W_DONE;
	} else if (txn->mail == M_REJECTED || txn->setup_failed) {
		r->res = txn->mail == M_REJECTED ? txn->mail_res :
		    txn->setup_res;
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
		smtp_result_set(&res, 421, "4.3.2", "relay is shutting down");
		txn_data_done(txn, &res);
	} else if (txn->hop == NULL || (!pending && (!ok ||
	    txn->mail == M_REJECTED))) {
		smtp_result_set(&res, 554, "5.5.1", "no valid recipients");
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
	if (txn->hop != NULL)
		txn->hop->ntxns--;
	if (txn->pool != NULL)
		TAILQ_REMOVE(&txn->pool->txns, txn, entry);
	for (i = 0; i < txn->nrcpts; i++) {
		free(txn->rcpts[i].addr);
		free(txn->rcpts[i].params);
	}
	free(txn->rcpts);
	free(txn->from);
	free(txn->params);
	free(txn->client);
	free(txn->chunk);
	event_free(txn->ev);
	free(txn);
}

const struct delivery_ops relay_delivery_ops = {
	relay_begin,
	relay_rcpt,
	relay_data,
	relay_abort,
	relay_route,
	relay_client,
};

/* The resolver for cfg, if it needs DNS (NULL with a warning if it
 * cannot have one: lookups then fail temporarily). */
static struct dns *
pool_resolver(struct event_base *base, const struct config *cfg)
{
	struct dns *d;
	char err[300];

	if (!config_uses_dns(cfg))
		return NULL;
	if ((d = dns_new(base, cfg->dns_resolver, cfg->dns_trust_anchor, err,
	    sizeof(err))) == NULL)
		log_warnx("relay: DNS: %s", err);
	return d;
}

/* Whether cfg gives each recipient its own destination. */
static int
pool_routed(const struct config *cfg)
{
	return cfg->relay_mx || cfg->nroutes > 0;
}

/* A pool for the destinations of cfg; connections are opened on demand. */
struct relay_pool *
relay_pool_new(struct event_base *base, const struct config *cfg,
    SSL_CTX *client_ctx)
{
	struct relay_pool *p = xcalloc(1, sizeof(*p));

	p->hop.base = base;
	p->hop.cfg = cfg;
	p->hop.ctx = client_ctx;
	relay_pool_set_timeouts(p, &relay_default_timeouts);
	TAILQ_INIT(&p->hops);
	TAILQ_INIT(&p->txns);
	p->hop.dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (p->hop.dns == NULL)
		log_warnx("relay: no asynchronous DNS, names are resolved "
		    "with getaddrinfo");
	p->resolver = pool_resolver(base, cfg);
	p->routed = pool_routed(cfg);
	return p;
}

/* Close every connection; transactions in flight are cut loose (their
 * later ops calls get 421). */
void
relay_pool_free(struct relay_pool *p)
{
	struct relay_txn *txn;
	struct relay_hop *h;

	if (p == NULL)
		return;
	while ((txn = TAILQ_FIRST(&p->txns)) != NULL) {
		TAILQ_REMOVE(&p->txns, txn, entry);
		if (txn->conn != NULL) {
			txn->conn->txn = NULL;
			txn->conn = NULL;
		}
		txn->pool = NULL;
		txn->hop = NULL;
		event_del(txn->ev);
	}
	while ((h = TAILQ_FIRST(&p->hops)) != NULL)
		hop_free(p, h);
	dns_free(p->resolver);
	if (p->hop.dns != NULL)
		evdns_base_free(p->hop.dns, 0);
	free(p);
}

/* Whether two configs ask DNS the same way. */
static int
same_dns(const struct config *a, const struct config *b)
{
	return config_uses_dns(a) == config_uses_dns(b) &&
	    strcmp(a->dns_resolver ? a->dns_resolver : "",
	    b->dns_resolver ? b->dns_resolver : "") == 0 &&
	    strcmp(a->dns_trust_anchor ? a->dns_trust_anchor : "",
	    b->dns_trust_anchor ? b->dns_trust_anchor : "") == 0;
}

/* New config and TLS context: idle connections go, busy ones are not
 * reused once their transaction ends; destinations are looked up again. */
void
relay_pool_reconfigure(struct relay_pool *p, const struct config *cfg,
    SSL_CTX *client_ctx)
{
	struct relay_hop *h, *next;
	struct relay_conn *c;
	struct smtp_result res;
	int newdns = !same_dns(p->hop.cfg, cfg);

	p->hop.cfg = cfg;
	p->hop.ctx = client_ctx;
	p->hop.gen++;
	p->routed = pool_routed(cfg);
	smtp_result_set(&res, 451, "4.4.3", "relay reconfigured during the "
	    "DNS lookup");
	for (h = TAILQ_FIRST(&p->hops); h != NULL; h = next) {
		next = TAILQ_NEXT(h, entry);
		h->cfg = cfg;
		h->ctx = client_ctx;
		h->gen = p->hop.gen;
		conn_forget_session(h);
		while ((c = TAILQ_FIRST(&h->idle)) != NULL)
			conn_quit(c);
		if (newdns) {
			while ((c = TAILQ_FIRST(&h->waiting)) != NULL)
				conn_fail(c, 0, &res);
			mx_clear(h);
		}
		h->expire = 0;
		if (h->nconns == 0 && h->ntxns == 0)
			hop_free(p, h);
	}
	if (newdns) {
		dns_free(p->resolver);
		p->resolver = pool_resolver(p->hop.base, cfg);
		TAILQ_FOREACH(h, &p->hops, entry)
			h->resolver = p->resolver;
	}
	log_info("relay: reconfigured, next hop %s:%s relay_tls=%s routes=%d",
	    cfg->relay_host ? cfg->relay_host : "mx",
	    cfg->relay_port ? cfg->relay_port : cfg->relay_mx_port,
	    config_relay_tls_str(cfg->relay_tls), cfg->nroutes);
}

/* Replace the timeout table (tests); the connections read their copy. */
void
relay_pool_set_timeouts(struct relay_pool *p, const struct relay_timeouts *t)
{
	struct conn_timeouts *to = &p->hop.to;
	struct relay_hop *h;

	to->connect = t->connect;
	to->greeting = t->greeting;
	to->ehlo = t->ehlo;
	to->tls = t->tls;
	to->mail = t->mail;
	to->rcpt = t->rcpt;
	to->data_init = t->data_init;
	to->data_block = t->data_block;
	to->data_final = t->data_final;
	to->idle = t->idle;
	to->hold = t->hold;
	to->quit = t->quit;
	TAILQ_FOREACH(h, &p->hops, entry)
		h->to = *to;
}

/* Open outbound connections, busy and idle, to every destination. */
int
relay_pool_nconns(const struct relay_pool *p)
{
	const struct relay_hop *h;
	int n = 0;

	TAILQ_FOREACH(h, &p->hops, entry)
		n += h->nconns;
	return n;
}
