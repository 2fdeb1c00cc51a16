/* smtp_session.c: one inbound ESMTP session: an explicit state machine fed
 * by a bufferevent, with a command table, handing each transaction to a
 * delivery backend (the relay client or the sink). */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "proto/proto.h"
#include "smtp_session.h"
#include "tls_accept.h"

#define CMD_LINE_CAP    2048            /* longest command line we accept */
#define DATA_LINE_CAP   (64 * 1024)     /* longest message line we accept */
#define MAX_ERRORS      10              /* then 421 and close */
#define OUT_HIWAT       (64 * 1024)     /* stop reading commands past this */
#define OUT_LOWAT       (16 * 1024)
#define IN_HIWAT        (256 * 1024)    /* libevent stops reading past this */
#define TIMEOUT_CMD     300             /* RFC 5321 4.5.3.2.7 */
#define TIMEOUT_DATA    300
#define PROXY_MAX       (16 + 65535)

enum session_state {
	S_PROXY,        /* waiting for a PROXY protocol header */
	S_HANDSHAKE,    /* TLS handshake in progress */
	S_CMD,          /* reading commands */
	S_DATA,         /* reading message data */
	S_WAIT_DATA,    /* message handed to the backend, reply pending */
	S_CLOSING,      /* flushing the last reply, then free */
};

enum data_error { DATA_OK, DATA_TOO_BIG, DATA_IO };

struct smtp_session {
	uint64_t id;
	const struct session_env *env;  /* the server's, kept current by it */
	void *tag;                      /* the server's handle, given back at close */
	const struct listen_cfg *lc;
	struct bufferevent *bev;
	enum session_state state;
	struct sockaddr_storage peer;
	char peer_str[80];
	int relay_ok;
	int tls;
	char tls_info[160];
	char *helo;
	int esmtp;
	struct xforward *xf;    /* XFORWARD from a trusted client, for the
				 * next transaction; NULL: none */
	int nerrors;
	int skip_line;          /* discarding the tail of an over-long line */
	int out_paused;         /* stopped reading commands: output too big */
	struct event *close_ev; /* S_CLOSING: waits for a TLS filter to drain */
	/* Under TLS, replies gather in `pend` and reach the filter once per
	 * loop round (flush_ev): on a filter every add is an SSL_write, a
	 * record that both ends seal and open, and an EHLO reply is ten. */
	struct evbuffer *pend;
	struct event *flush_ev;
	int flush_armed;
	int close_polls;
	struct tls_accept *hs;  /* S_HANDSHAKE: the handshake */

	/* the transaction */
	char *from;             /* NULL: no MAIL yet; "" null sender */
	char mail_params[600];
	int smtputf8;
	int nrcpt;              /* accepted by the backend */
	char *first_rcpt;       /* first recipient the backend accepted */
	struct rcpt_slot *slots;        /* RCPTs sent on, replies in order */
	size_t nslots, slot_head, slot_cap;
	void *txn;
	struct msgbuf *body;
	struct smtp_data_rd drd;
	size_t data_bytes;
	enum data_error data_error;

};

/*
 * A RCPT handed to the backend.  A pipelined group's RCPTs all go out at
 * once; replies must still leave in command order, so any reply made while
 * a slot is unanswered waits in that slot's `after` buffer.
 */
struct rcpt_slot {
	char *path;
	int done;
	struct smtp_result res;
	struct evbuffer *after;         /* replies queued behind this one */
};

struct smtp_cmd_entry {
	enum smtp_verb verb;
	unsigned flags;
#define CMD_PRETLS      0x01    /* allowed before TLS under inbound_tls=encrypt */
	int (*proceed)(struct smtp_session *, struct smtp_cmd *);
};

static int session_process(struct smtp_session *);
static void session_free(struct smtp_session *);
static void session_closing_check(struct smtp_session *);

static const char *
session_strstate(enum session_state st)
{
	static const char *names[] = { "proxy", "handshake", "cmd",
	    "data", "wait-data", "closing" };

	return names[st];
}

/* Move to a new state, logging the transition at debug level. */
static void
session_enter_state(struct smtp_session *s, enum session_state st)
{
	log_debug("session id=%016llx state=%s->%s",
	    (unsigned long long)s->id, session_strstate(s->state),
	    session_strstate(st));
	s->state = st;
}

/* Number of RCPTs whose backend answer is still due. */
static size_t
session_rcpts_pending(const struct smtp_session *s)
{
	return s->nslots - s->slot_head;
}

/* Where replies go now: the output, or under TLS the round's batch. */
static struct evbuffer *
session_out(struct smtp_session *s)
{
	if (s->pend == NULL)
		return bufferevent_get_output(s->bev);
	if (!s->flush_armed) {
		s->flush_armed = 1;
		event_active(s->flush_ev, EV_TIMEOUT, 0);
	}
	return s->pend;
}

/* Hand the batched replies to the TLS filter: one record. */
static void
session_flush(struct smtp_session *s)
{
	if (s->pend != NULL && evbuffer_get_length(s->pend) > 0)
		evbuffer_add_buffer(bufferevent_get_output(s->bev), s->pend);
}

static void
session_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	s->flush_armed = 0;
	session_flush(s);
}

/* Queue one reply line (CRLF added), behind any unanswered RCPT. */
static void
session_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
session_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out;
	struct rcpt_slot *last;
	char line[1024];
	va_list ap;
	int n;

	if (session_rcpts_pending(s) > 0) {
		last = &s->slots[s->nslots - 1];
		if (last->after == NULL)
			last->after = evbuffer_new();
		out = last->after;
	} else
		out = session_out(s);
	/* one add per line: without a batch, each add under TLS is a
	 * record of its own */
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(line) - 2) {
		memcpy(line + n, "\r\n", 2);
		evbuffer_add(out, line, (size_t)n + 2);
		return;
	}
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* Drop the RCPT slots; with `flush`, replies queued behind them go out. */
static void
session_slots_drop(struct smtp_session *s, int flush)
{
	size_t i;

	for (i = s->slot_head; i < s->nslots; i++) {
		if (s->slots[i].after != NULL) {
			if (flush)
				evbuffer_add_buffer(session_out(s),
				    s->slots[i].after);
			evbuffer_free(s->slots[i].after);
		}
		free(s->slots[i].path);
	}
	s->nslots = s->slot_head = 0;
}

/* Reply with a backend's outcome, keeping its meaning. */
static void
session_reply_result(struct smtp_session *s, const struct smtp_result *r)
{
	char text[sizeof(r->text)];
	size_t i;

	strlcpy_s(text, r->text, sizeof(text));
	for (i = 0; text[i] != '\0'; i++)
		if (text[i] == '\r' || text[i] == '\n')
			text[i] = ' ';
	session_reply(s, "%d %s %s", r->code, r->enh[0] ? r->enh : "4.0.0",
	    text);
}

/* Close after the queued replies are written; the caller must stop. */
static int
session_close(struct smtp_session *s, const char *why)
{
	log_info("session id=%016llx disconnect peer=%s reason=%s",
	    (unsigned long long)s->id, s->peer_str, why);
	if (s->bev == NULL) {
		session_free(s);
		return -1;
	}
	session_slots_drop(s, 1);
	session_flush(s);
	session_enter_state(s, S_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){ 30, 0 });
	session_closing_check(s);
	return -1;
}

/* Count a client error; past MAX_ERRORS the session ends with 421. */
static int
session_error(struct smtp_session *s)
{
	if (++s->nerrors < MAX_ERRORS)
		return 0;
	session_reply(s, "421 4.7.0 %s Too many errors, closing connection",
	    s->env->cfg->hostname);
	return session_close(s, "too-many-errors");
}

/* Forget the current transaction (RSET, EHLO, after DATA). */
static void
session_reset_txn(struct smtp_session *s)
{
	if (s->txn != NULL) {
		s->env->ops->abort(s->txn);
		s->txn = NULL;
	}
	msgbuf_free(s->body);
	s->body = NULL;
	free(s->from);
	s->from = NULL;
	free(s->first_rcpt);
	s->first_rcpt = NULL;
	session_slots_drop(s, 0);
	s->mail_params[0] = '\0';
	s->smtputf8 = 0;
	s->nrcpt = 0;
	s->data_bytes = 0;
	s->data_error = DATA_OK;
	/* XFORWARD describes one transaction (as in Postfix) */
	free(s->xf);
	s->xf = NULL;
}

/* Append " KEY=VALUE" to a parameter string if it fits. */
static int
params_add(char *buf, size_t len, const char *key, const char *value)
{
	size_t used = strlen(buf);
	int n;

	n = snprintf(buf + used, len - used, "%s%s%s%s", used ? " " : "",
	    key, value ? "=" : "", value ? value : "");
	return (n < 0 || (size_t)n >= len - used) ? -1 : 0;
}

static int
cmd_helo_common(struct smtp_session *s, struct smtp_cmd *cmd, int esmtp)
{
	if (smtp_check_domain(cmd->arg) != 0) {
		session_reply(s, "501 5.5.4 Invalid domain name");
		return session_error(s);
	}
	session_reset_txn(s);
	free(s->helo);
	s->helo = xstrdup(cmd->arg);
	s->esmtp = esmtp;
	return 0;
}

static int
cmd_helo(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (cmd_helo_common(s, cmd, 0) != 0)
		return -1;
	session_reply(s, "250 %s", s->env->cfg->hostname);
	return 0;
}

static int
cmd_ehlo(struct smtp_session *s, struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;

	if (cmd_helo_common(s, cmd, 1) != 0)
		return -1;
	session_reply(s, "250-%s Hello %s [%s]", cfg->hostname, s->helo,
	    s->peer_str);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu",
	    (unsigned long long)cfg->max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	if (!s->tls && s->env->tls_server != NULL &&
	    s->lc->tls == LISTEN_TLS_STARTTLS)
		session_reply(s, "250-STARTTLS");
	session_reply(s, "250-SMTPUTF8");
	if (config_xforward_allowed(cfg, (struct sockaddr *)&s->peer))
		session_reply(s, "250-%s", xforward_ehlo_line());
	session_reply(s, "250 DSN");
	return 0;
}

/*
 * XFORWARD (Postfix XFORWARD_README) from a client in xforward_hosts: what
 * it says of its own client replaces our view of the client for the next
 * transaction's XFORWARD to the next hop and our logs.  Relaying is still
 * decided by the real peer's address.
 */
static int
cmd_xforward(struct smtp_session *s, struct smtp_cmd *cmd)
{
	struct xforward next;
	char err[160];

	if (!config_xforward_allowed(s->env->cfg,
	    (struct sockaddr *)&s->peer)) {
		log_info("session id=%016llx xforward reject=not-authorized "
		    "peer=%s", (unsigned long long)s->id, s->peer_str);
		session_reply(s, "550 5.7.0 XFORWARD not allowed from this "
		    "client (xforward_hosts)");
		return session_error(s);
	}
	if (s->from != NULL) {
		session_reply(s, "503 5.5.1 XFORWARD not allowed inside a mail "
		    "transaction");
		return session_error(s);
	}
	if (s->xf != NULL)
		next = *s->xf;
	else
		memset(&next, 0, sizeof(next));
	if (xforward_parse(&next, cmd->arg, err, sizeof(err)) == -1) {
		session_reply(s, "501 5.5.4 Bad XFORWARD: %s", err);
		return session_error(s);
	}
	if (s->xf == NULL)
		s->xf = xmalloc(sizeof(*s->xf));
	*s->xf = next;
	log_info("session id=%016llx xforward addr=%s helo=%s name=%s",
	    (unsigned long long)s->id, next.val[XF_ADDR][0] ?
	    next.val[XF_ADDR] : "-", next.val[XF_HELO][0] ?
	    next.val[XF_HELO] : "-", next.val[XF_NAME][0] ?
	    next.val[XF_NAME] : "-");
	session_reply(s, "250 2.0.0 Ok");
	return 0;
}

/* Tell the backend who the client is: what a trusted XFORWARD said, else
 * what we see (for our own XFORWARD to the next hop). */
static void
session_tell_client(struct smtp_session *s)
{
	struct xforward xf;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&s->peer;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&s->peer;
	int port = -1;

	if (s->env->ops->client == NULL)
		return;
	if (s->xf != NULL) {
		s->env->ops->client(s->txn, s->xf);
		return;
	}
	memset(&xf, 0, sizeof(xf));
	if (s->peer.ss_family == AF_INET)
		port = ntohs(sin->sin_port);
	else if (s->peer.ss_family == AF_INET6)
		port = ntohs(sin6->sin6_port);
	if (port >= 0) {
		/* the bare address: xforward_format writes IPV6: itself */
		strlcpy_s(xf.val[XF_ADDR], s->peer_str + (strncasecmp(
		    s->peer_str, "IPv6:", 5) == 0 ? 5 : 0),
		    sizeof(xf.val[XF_ADDR]));
		snprintf(xf.val[XF_PORT], sizeof(xf.val[XF_PORT]), "%d", port);
	}
	if (s->helo != NULL && strlen(s->helo) <= XF_VALUE_MAX &&
	    strpbrk(s->helo, "()<>\"\\") == NULL)
		strlcpy_s(xf.val[XF_HELO], s->helo, sizeof(xf.val[XF_HELO]));
	strlcpy_s(xf.val[XF_PROTO], s->esmtp ? "ESMTP" : "SMTP",
	    sizeof(xf.val[XF_PROTO]));
	strlcpy_s(xf.val[XF_SOURCE], "REMOTE", sizeof(xf.val[XF_SOURCE]));
	snprintf(xf.val[XF_IDENT], sizeof(xf.val[XF_IDENT]), "%016llx",
	    (unsigned long long)s->id);
	s->env->ops->client(s->txn, &xf);
}

/* Validate MAIL parameters and build what goes to the backend. */
static int
mail_params_check(struct smtp_session *s, struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;
	struct smtp_param *p;
	uint64_t size;
	int i, r = 0;

	s->mail_params[0] = '\0';
	for (i = 0; i < cmd->nparams && r == 0; i++) {
		p = &cmd->params[i];
		if (strcasecmp_ascii(p->key, "SIZE") == 0) {
			if (p->value == NULL || smtp_parse_size(p->value, &size)) {
				session_reply(s, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			if (size > cfg->max_message_size) {
				session_reply(s, "552 5.3.4 Message size exceeds "
				    "fixed maximum message size");
				return -1;
			}
			r = params_add(s->mail_params, sizeof(s->mail_params),
			    "SIZE", p->value);
		} else if (strcasecmp_ascii(p->key, "BODY") == 0) {
			if (p->value == NULL ||
			    (strcasecmp_ascii(p->value, "7BIT") != 0 &&
			    strcasecmp_ascii(p->value, "8BITMIME") != 0)) {
				session_reply(s, "555 5.5.4 Unsupported BODY type");
				return -1;
			}
			r = params_add(s->mail_params, sizeof(s->mail_params),
			    "BODY", p->value);
		} else if (strcasecmp_ascii(p->key, "SMTPUTF8") == 0 &&
		    p->value == NULL) {
			s->smtputf8 = 1;
			r = params_add(s->mail_params, sizeof(s->mail_params),
			    "SMTPUTF8", NULL);
		} else if (strcasecmp_ascii(p->key, "RET") == 0) {
			if (p->value == NULL ||
			    (strcasecmp_ascii(p->value, "FULL") != 0 &&
			    strcasecmp_ascii(p->value, "HDRS") != 0)) {
				session_reply(s, "501 5.5.4 Bad RET parameter");
				return -1;
			}
			r = params_add(s->mail_params, sizeof(s->mail_params),
			    "RET", p->value);
		} else if (strcasecmp_ascii(p->key, "ENVID") == 0) {
			if (p->value == NULL || strlen(p->value) > 100 ||
			    smtp_check_xtext(p->value) != 0) {
				session_reply(s, "501 5.5.4 Bad ENVID parameter");
				return -1;
			}
			r = params_add(s->mail_params, sizeof(s->mail_params),
			    "ENVID", p->value);
		} else {
			session_reply(s, "555 5.5.4 Unsupported parameter %s",
			    p->key);
			return -1;
		}
	}
	if (r != 0) {
		session_reply(s, "501 5.5.4 Parameters too long");
		return -1;
	}
	return 0;
}

static int
cmd_mail(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (s->helo == NULL) {
		session_reply(s, "503 5.5.1 Send HELO/EHLO first");
		return session_error(s);
	}
	if (s->from != NULL) {
		session_reply(s, "503 5.5.1 Nested MAIL command");
		return session_error(s);
	}
	if (s->env->draining) {
		session_reply(s, "421 4.3.2 %s Service shutting down",
		    s->env->cfg->hostname);
		return session_close(s, "shutdown");
	}
	s->smtputf8 = 0;
	if (mail_params_check(s, cmd) != 0)
		return session_error(s);
	if (cmd->utf8_path && !s->smtputf8) {
		session_reply(s, "553 5.6.7 Non-ASCII addresses require SMTPUTF8");
		return session_error(s);
	}
	s->from = xstrdup(cmd->path);
	log_info("session id=%016llx mail from=<%s> %s",
	    (unsigned long long)s->id, s->from, s->mail_params);
	session_reply(s, "250 2.1.0 Ok");
	return 0;
}

/* Send the replies of answered RCPTs, in order, and what queued behind. */
static void
session_slots_flush(struct smtp_session *s)
{
	struct evbuffer *out = session_out(s);
	struct rcpt_slot *sl;

	while (s->slot_head < s->nslots && s->slots[s->slot_head].done) {
		sl = &s->slots[s->slot_head++];
		if (sl->res.code >= 200 && sl->res.code < 300) {
			s->nrcpt++;
			if (s->first_rcpt == NULL) {
				s->first_rcpt = sl->path;
				sl->path = NULL;
			}
			evbuffer_add_printf(out, "250 2.1.5 Ok\r\n");
		} else
			evbuffer_add_printf(out, "%d %s %s\r\n", sl->res.code,
			    sl->res.enh[0] ? sl->res.enh : "4.0.0",
			    sl->res.text);
		if (sl->after != NULL) {
			evbuffer_add_buffer(out, sl->after);
			evbuffer_free(sl->after);
		}
		free(sl->path);
	}
	if (s->slot_head == s->nslots)
		s->nslots = s->slot_head = 0;
}

/* The backend answered the oldest open RCPT (answers come in order). */
static void
session_rcpt_cb(void *arg, const struct smtp_result *r)
{
	struct smtp_session *s = arg;
	struct rcpt_slot *sl;
	size_t i;

	for (i = s->slot_head; i < s->nslots && s->slots[i].done; i++)
		;
	if (i == s->nslots) {
		log_warnx("session id=%016llx unexpected RCPT answer",
		    (unsigned long long)s->id);
		return;
	}
	sl = &s->slots[i];
	sl->done = 1;
	sl->res = *r;
	for (i = 0; sl->res.text[i] != '\0'; i++)
		if (sl->res.text[i] == '\r' || sl->res.text[i] == '\n')
			sl->res.text[i] = ' ';
	log_info("session id=%016llx rcpt to=<%s> status=%d %s",
	    (unsigned long long)s->id, sl->path, r->code, r->text);
	session_slots_flush(s);
	if (session_rcpts_pending(s) == 0)
		session_process(s);
}

/* Validate RCPT parameters and build what goes to the backend. */
static int
rcpt_params_check(struct smtp_session *s, struct smtp_cmd *cmd, char *buf,
    size_t len)
{
	struct smtp_param *p;
	int i, r = 0;

	buf[0] = '\0';
	for (i = 0; i < cmd->nparams && r == 0; i++) {
		p = &cmd->params[i];
		if (strcasecmp_ascii(p->key, "NOTIFY") == 0) {
			if (p->value == NULL || smtp_check_notify(p->value)) {
				session_reply(s, "501 5.5.4 Bad NOTIFY parameter");
				return -1;
			}
		} else if (strcasecmp_ascii(p->key, "ORCPT") == 0) {
			if (p->value == NULL || smtp_check_orcpt(p->value)) {
				session_reply(s, "501 5.5.4 Bad ORCPT parameter");
				return -1;
			}
		} else {
			session_reply(s, "555 5.5.4 Unsupported parameter %s",
			    p->key);
			return -1;
		}
		r = params_add(buf, len, p->key, p->value);
	}
	if (r != 0) {
		session_reply(s, "501 5.5.4 Parameters too long");
		return -1;
	}
	return 0;
}

static int
cmd_rcpt(struct smtp_session *s, struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;
	char params[600];

	if (s->from == NULL) {
		session_reply(s, "503 5.5.1 Need MAIL before RCPT");
		return session_error(s);
	}
	if (!s->relay_ok) {
		log_info("session id=%016llx rcpt to=<%s> reject=relay-denied "
		    "peer=%s", (unsigned long long)s->id, cmd->path,
		    s->peer_str);
		session_reply(s, "554 5.7.1 <%s>: Relay access denied",
		    cmd->path);
		return session_error(s);
	}
	if (s->nrcpt + session_rcpts_pending(s) >= (size_t)cfg->max_recipients) {
		session_reply(s, "452 4.5.3 Too many recipients");
		return 0;
	}
	if (cmd->utf8_path && !s->smtputf8) {
		session_reply(s, "553 5.6.7 Non-ASCII addresses require SMTPUTF8");
		return session_error(s);
	}
	if (rcpt_params_check(s, cmd, params, sizeof(params)) != 0)
		return session_error(s);
	if (s->txn == NULL) {
		s->txn = s->env->ops->begin(s->env->ops_ctx, s->from,
		    s->mail_params, s->id);
		session_tell_client(s);
	}
	if (s->nslots == s->slot_cap) {
		s->slot_cap = s->slot_cap ? s->slot_cap * 2 : 8;
		s->slots = xreallocarray(s->slots, s->slot_cap,
		    sizeof(*s->slots));
	}
	memset(&s->slots[s->nslots], 0, sizeof(s->slots[0]));
	s->slots[s->nslots++].path = xstrdup(cmd->path);
	log_debug("session id=%016llx rcpt to=<%s> %s sent on",
	    (unsigned long long)s->id, cmd->path, params);
	s->env->ops->rcpt(s->txn, cmd->path, params, session_rcpt_cb, s);
	return 0;
}

/* Write our Received header (RFC 5321 4.4) as the first lines of the body. */
static int
session_received(struct smtp_session *s)
{
	char date[64], *hdr;
	const char *with;
	int r;

	rfc5322_date(date, sizeof(date));
	if (s->smtputf8)
		with = s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->esmtp)
		with = s->tls ? "ESMTPS" : "ESMTP";
	else
		with = s->tls ? "SMTPS" : "SMTP";
	/* "for" only with one recipient, so a Bcc is never shown to others. */
	hdr = xasprintf("Received: from %s ([%s])\r\n\tby %s (smrelay) with %s "
	    "id %016llx%s%s%s\r\n\t%s%s%s; %s\r\n",
	    s->helo, s->peer_str, s->env->cfg->hostname, with,
	    (unsigned long long)s->id, s->tls ? "\r\n\t(" : "",
	    s->tls ? s->tls_info : "", s->tls ? ")" : "",
	    s->nrcpt == 1 ? "for <" : "", s->nrcpt == 1 ? s->first_rcpt : "",
	    s->nrcpt == 1 ? ">" : "", date);
	r = msgbuf_append(s->body, hdr, strlen(hdr));
	free(hdr);
	return r;
}

static int
cmd_data(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	if (s->from == NULL) {
		session_reply(s, "503 5.5.1 Need MAIL command");
		return session_error(s);
	}
	if (s->nrcpt == 0) {
		session_reply(s, "554 5.5.1 No valid recipients");
		return session_error(s);
	}
	s->body = msgbuf_new(s->env->tmpdir, MSGBUF_MEM_DEFAULT);
	if (session_received(s) != 0) {
		log_warn("session id=%016llx body", (unsigned long long)s->id);
		session_reply(s, "452 4.3.1 Insufficient system storage");
		session_reset_txn(s);
		return 0;
	}
	smtp_data_init(&s->drd, DATA_LINE_CAP);
	s->data_bytes = 0;
	s->data_error = DATA_OK;
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	session_enter_state(s, S_DATA);
	bufferevent_set_timeouts(s->bev, &(struct timeval){ TIMEOUT_DATA, 0 },
	    NULL);
	return 0;
}

static int
cmd_rset(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reset_txn(s);
	session_reply(s, "250 2.0.0 Ok");
	return 0;
}

static int
cmd_noop(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "250 2.0.0 Ok");
	return 0;
}

static int
cmd_quit(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "221 2.0.0 %s Bye", s->env->cfg->hostname);
	return session_close(s, "quit");
}

static int
cmd_vrfy(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "252 2.5.0 Cannot VRFY user, but will accept "
	    "message and attempt delivery");
	return 0;
}

static int
cmd_expn(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "502 5.5.1 EXPN not supported");
	return session_error(s);
}

static int
cmd_help(struct smtp_session *s, struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "214-2.0.0 This is smrelay, an S/MIME gateway.");
	session_reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET "
	    "NOOP QUIT VRFY HELP STARTTLS");
	session_reply(s, "214 2.0.0 See RFC 5321");
	return 0;
}

static int
cmd_unsupported(struct smtp_session *s, struct smtp_cmd *cmd)
{
	session_reply(s, "502 5.5.1 %s not implemented",
	    smtp_verb_name(cmd->verb));
	return session_error(s);
}

static void session_setup_bev(struct smtp_session *, int);
static int session_tls_done(struct smtp_session *);

/* The handshake is over: a TLS filter over the plain bufferevent, in the
 * open state, or the session ends. */
static void
session_tls_ready(void *arg, SSL *ssl, const char *why)
{
	struct smtp_session *s = arg;
	struct bufferevent *tb;

	tls_accept_free(s->hs);
	s->hs = NULL;
	if (ssl == NULL) {
		log_info("session id=%016llx tls error peer=%s: %s",
		    (unsigned long long)s->id, s->peer_str, why);
		log_info("session id=%016llx disconnect peer=%s reason=tls "
		    "state=%s", (unsigned long long)s->id, s->peer_str,
		    session_strstate(s->state));
		session_free(s);
		return;
	}
	tb = bufferevent_openssl_filter_new(s->env->base, s->bev, ssl,
	    BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		log_warnx("session id=%016llx TLS filter failed",
		    (unsigned long long)s->id);
		session_free(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	s->bev = tb;
	s->pend = evbuffer_new();
	s->flush_ev = event_new(s->env->base, -1, 0, session_flush_cb, s);
	if (s->pend == NULL || s->flush_ev == NULL)
		alloc_fail("session reply batch");
	/* reading starts last: the filter may read what followed the
	 * handshake, an EOF too, and end the session in bufferevent_enable */
	session_setup_bev(s, 0);
	if (session_tls_done(s) < 0)
		return;
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

/* Put TLS under the connection: the handshake (tls_accept.c: it does not
 * block the loop on the key process), then a filter over the plain
 * bufferevent.  1, or < 0 when the session ended. */
static int
session_tls_begin(struct smtp_session *s)
{
	s->hs = tls_accept_new(s->env->base, s->bev, s->env->tls_server,
	    session_tls_ready, s);
	if (s->hs == NULL) {
		log_warnx("session id=%016llx SSL_new: %s",
		    (unsigned long long)s->id, tls_error());
		return session_close(s, "tls-init");
	}
	session_enter_state(s, S_HANDSHAKE);
	return 1;
}

static void session_read_cb(struct bufferevent *, void *);
static void session_write_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);

/* Wire callbacks, watermarks and timeouts on the current bufferevent,
 * and start it when `enable`. */
static void
session_setup_bev(struct smtp_session *s, int enable)
{
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, IN_HIWAT);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUT_LOWAT, 0);
	bufferevent_set_timeouts(s->bev, &(struct timeval){ TIMEOUT_CMD, 0 },
	    &(struct timeval){ TIMEOUT_CMD, 0 });
	if (enable)
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static int
cmd_starttls(struct smtp_session *s, struct smtp_cmd *cmd)
{
	struct evbuffer *in;
	size_t junk;
	int r;

	(void)cmd;
	if (s->tls) {
		session_reply(s, "503 5.5.1 TLS already active");
		return session_error(s);
	}
	if (s->env->tls_server == NULL || s->lc->tls != LISTEN_TLS_STARTTLS) {
		session_reply(s, "502 5.5.1 STARTTLS not available");
		return session_error(s);
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	/* CVE-2011-0411: nothing sent before the handshake may be obeyed. */
	in = bufferevent_get_input(s->bev);
	junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_warnx("session id=%016llx discarded %zu bytes pipelined "
		    "after STARTTLS peer=%s", (unsigned long long)s->id, junk,
		    s->peer_str);
		evbuffer_drain(in, junk);
	}
	r = session_tls_begin(s);
	if (r < 0)
		return r;
	return 1;
}

static const struct smtp_cmd_entry commands[] = {
	{ SMTP_CMD_HELO, CMD_PRETLS, cmd_helo },
	{ SMTP_CMD_EHLO, CMD_PRETLS, cmd_ehlo },
	{ SMTP_CMD_MAIL, 0, cmd_mail },
	{ SMTP_CMD_RCPT, 0, cmd_rcpt },
	{ SMTP_CMD_DATA, 0, cmd_data },
	{ SMTP_CMD_RSET, CMD_PRETLS, cmd_rset },
	{ SMTP_CMD_NOOP, CMD_PRETLS, cmd_noop },
	{ SMTP_CMD_QUIT, CMD_PRETLS, cmd_quit },
	{ SMTP_CMD_VRFY, 0, cmd_vrfy },
	{ SMTP_CMD_EXPN, 0, cmd_expn },
	{ SMTP_CMD_HELP, CMD_PRETLS, cmd_help },
	{ SMTP_CMD_STARTTLS, CMD_PRETLS, cmd_starttls },
	{ SMTP_CMD_AUTH, 0, cmd_unsupported },
	{ SMTP_CMD_BDAT, 0, cmd_unsupported },
	{ SMTP_CMD_XFORWARD, CMD_PRETLS, cmd_xforward },
};

/* Reply to a line the parser refused. */
static int
session_parse_error(struct smtp_session *s, enum smtp_parse_status st,
    struct smtp_cmd *cmd)
{
	const char *m = cmd->errmsg ? cmd->errmsg : "Syntax error";

	switch (st) {
	case SMTP_PARSE_UNKNOWN:
		session_reply(s, "500 5.5.1 Command unrecognized");
		break;
	case SMTP_PARSE_BAD_ADDR:
		session_reply(s, "553 %s %s", cmd->verb == SMTP_CMD_MAIL ?
		    "5.1.7" : "5.1.3", m);
		break;
	case SMTP_PARSE_BAD_PARAM:
		session_reply(s, "555 5.5.4 %s", m);
		break;
	case SMTP_PARSE_8BIT:
		session_reply(s, "500 5.5.2 %s", m);
		break;
	default:
		session_reply(s, "501 5.5.4 %s", m);
		break;
	}
	return session_error(s);
}

/* Parse and run one command line; >0 stops the loop, <0 session gone. */
static int
session_command(struct smtp_session *s, char *line)
{
	const struct smtp_cmd_entry *ce = NULL;
	struct smtp_cmd cmd;
	enum smtp_parse_status st;
	size_t i;

	st = smtp_parse_cmd(line, &cmd);
	if (st != SMTP_PARSE_OK)
		return session_parse_error(s, st, &cmd);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == cmd.verb)
			ce = &commands[i];
	if (ce == NULL) {
		session_reply(s, "500 5.5.1 Command unrecognized");
		return session_error(s);
	}
	if (s->env->cfg->inbound_tls_encrypt && !s->tls &&
	    !(ce->flags & CMD_PRETLS)) {
		session_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return session_error(s);
	}
	log_debug("session id=%016llx cmd=%s", (unsigned long long)s->id,
	    smtp_verb_name(cmd.verb));
	return ce->proceed(s, &cmd);
}

/* Does the buffered line of `len` bytes start with "RCPT "? */
static int
session_next_is_rcpt(struct evbuffer *in, size_t len)
{
	char verb[5];

	if (len < 5 || evbuffer_copyout(in, verb, 5) != 5)
		return 0;
	return strncasecmp(verb, "RCPT ", 5) == 0;
}

/* Read command lines while in S_CMD; cap a line before it exists. */
static int
session_cmd_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr p;
	char line[CMD_LINE_CAP + 1];
	size_t len, eol;
	int r;

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUT_HIWAT) {
		s->out_paused = 1;
		return 1;
	}
	if (s->env->draining && session_rcpts_pending(s) == 0) {
		session_reply(s, "421 4.3.2 %s Service shutting down",
		    s->env->cfg->hostname);
		return session_close(s, "shutdown");
	}
	p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);
	if (p.pos < 0) {
		len = evbuffer_get_length(in);
		if (len > CMD_LINE_CAP) {
			evbuffer_drain(in, len);
			if (!s->skip_line) {
				s->skip_line = 1;
				session_reply(s, "500 5.5.2 Line too long");
				return session_error(s) < 0 ? -1 : 1;
			}
		}
		return 1;
	}
	len = (size_t)p.pos;
	/* While RCPTs are out, only further RCPTs of the group go on. */
	if (session_rcpts_pending(s) > 0 && !session_next_is_rcpt(in, len))
		return 1;
	if (s->skip_line || len > CMD_LINE_CAP) {
		evbuffer_drain(in, len + eol);
		if (s->skip_line) {
			s->skip_line = 0;
			return 0;
		}
		session_reply(s, "500 5.5.2 Line too long");
		return session_error(s);
	}
	evbuffer_remove(in, line, len);
	evbuffer_drain(in, eol);
	line[len] = '\0';
	if (memchr(line, '\0', len) != NULL) {
		session_reply(s, "500 5.5.2 NUL in command");
		return session_error(s);
	}
	r = session_command(s, line);
	return r;
}

/* The backend answered the message: reply and go back to commands. */
static void
session_data_cb(void *arg, const struct smtp_result *r)
{
	struct smtp_session *s = arg;

	s->txn = NULL;          /* over after the data callback */
	if (r->code == DELIVERY_DROP) {
		log_info("session id=%016llx message size=%zu rcpts=%d "
		    "dropped by the backend", (unsigned long long)s->id,
		    s->data_bytes, s->nrcpt);
		session_reset_txn(s);
		(void)session_close(s, "backend-drop");
		return;
	}
	log_info("session id=%016llx message size=%zu rcpts=%d status=%d %s %s",
	    (unsigned long long)s->id, s->data_bytes, s->nrcpt, r->code,
	    r->enh, r->text);
	if (r->code >= 200 && r->code < 300)
		s->env->accepted(s->env->arg);
	if (r->code >= 400) metrics_inc(M_MSG_REJECTED);
	session_reply_result(s, r);
	session_reset_txn(s);
	session_enter_state(s, S_CMD);
	bufferevent_set_timeouts(s->bev, &(struct timeval){ TIMEOUT_CMD, 0 },
	    NULL);
	session_process(s);
}

/* The client sent <CRLF>.<CRLF>: refuse bad data or hand the message on. */
static int
session_data_end(struct smtp_session *s)
{
	unsigned fl = s->drd.flags;
	const char *why = NULL;

	session_enter_state(s, S_CMD);
	bufferevent_set_timeouts(s->bev, &(struct timeval){ TIMEOUT_CMD, 0 },
	    NULL);
	if (s->data_error == DATA_TOO_BIG)
		session_reply(s, "552 5.3.4 Message size exceeds fixed "
		    "maximum message size");
	else if (s->data_error == DATA_IO)
		session_reply(s, "452 4.3.1 Insufficient system storage");
	else if (fl & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR))
		session_reply(s, "554 5.5.2 Message refused: bare <CR> or "
		    "<LF> in message data (RFC 5321 2.3.8)");
	else if (fl & SMTP_DATA_NUL)
		/* A next hop that strips NULs could see an end of data. */
		session_reply(s, "554 5.6.0 Message refused: NUL character "
		    "in message data");
	else if (fl & SMTP_DATA_LONG_LINE)
		session_reply(s, "500 5.5.2 Message refused: line too long "
		    "(limit %d)", DATA_LINE_CAP);
	else {
		session_enter_state(s, S_WAIT_DATA);
		s->env->ops->data(s->txn, s->body, session_data_cb, s);
		return 1;
	}
	why = s->data_error == DATA_TOO_BIG ? "too-big" :
	    s->data_error == DATA_IO ? "io-error" :
	    (fl & (SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR)) ? "bare-cr-lf" :
	    (fl & SMTP_DATA_NUL) ? "nul" : "long-line";
	metrics_inc(M_MSG_REJECTED);
	log_info("session id=%016llx message refused reason=%s size=%zu",
	    (unsigned long long)s->id, why, s->data_bytes);
	session_reset_txn(s);
	return session_error(s) < 0 ? -1 : 0;
}

/* Feed message data to the end-of-data detector and into the body. */
static int
session_data_input(struct smtp_session *s)
{
	static char out[64 * 1024];
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v;
	size_t len, used, outlen;
	int done = 0;

	while (evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		len = v.iov_len < sizeof(out) ? v.iov_len : sizeof(out);
		used = smtp_data_feed(&s->drd, v.iov_base, len, out, &outlen,
		    &done);
		if (s->data_error == DATA_OK) {
			if (s->data_bytes + outlen > s->env->cfg->max_message_size)
				s->data_error = DATA_TOO_BIG;
			else if (msgbuf_append(s->body, out, outlen) != 0) {
				log_warn("session id=%016llx body write",
				    (unsigned long long)s->id);
				s->data_error = DATA_IO;
			}
		}
		s->data_bytes += outlen;
		evbuffer_drain(in, used);
		if (done)
			return session_data_end(s);
		if (used == 0)
			break;
	}
	return 1;
}

/* Read a PROXY protocol header, then greet (or start implicit TLS). */
static int session_greet(struct smtp_session *);

static int
session_proxy_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct proxy_hdr ph;
	size_t len = evbuffer_get_length(in);
	unsigned char *p;
	int n;

	if (len > PROXY_MAX)
		len = PROXY_MAX;
	p = evbuffer_pullup(in, (ev_ssize_t)len);
	if (p == NULL)
		return 1;
	if (s->lc->proxy == LISTEN_PROXY_V1)
		n = proxy_parse_v1(p, len, &ph);
	else
		n = proxy_parse_v2(p, len, &ph);
	if (n == 0)
		return 1;
	if (n < 0) {
		log_warnx("session id=%016llx bad PROXY header peer=%s",
		    (unsigned long long)s->id, s->peer_str);
		return session_close(s, "bad-proxy-header");
	}
	evbuffer_drain(in, (size_t)n);
	if (!ph.local) {
		memcpy(&s->peer, &ph.src, sizeof(s->peer));
		sockaddr_str((struct sockaddr *)&s->peer, s->peer_str,
		    sizeof(s->peer_str));
		s->relay_ok = s->env->open_relay || config_relay_allowed(
		    s->env->cfg, (struct sockaddr *)&s->peer);
	}
	log_info("session id=%016llx proxy client=%s relay=%s",
	    (unsigned long long)s->id, s->peer_str, s->relay_ok ? "yes" : "no");
	if (s->lc->tls == LISTEN_TLS_IMPLICIT) {
		n = session_tls_begin(s);
		if (n < 0)
			return n;
		return 1;
	}
	return session_greet(s);
}

/* Send the 220 banner and start reading commands. */
static int
session_greet(struct smtp_session *s)
{
	session_reply(s, "220 %s ESMTP smrelay", s->env->cfg->hostname);
	session_enter_state(s, S_CMD);
	return 0;
}

/* Run the state machine over whatever input is buffered. */
static int
session_process(struct smtp_session *s)
{
	int r = 0;

	while (r == 0) {
		switch (s->state) {
		case S_PROXY:
			r = session_proxy_input(s);
			break;
		case S_CMD:
			r = session_cmd_input(s);
			break;
		case S_DATA:
			r = session_data_input(s);
			break;
		default:
			return 0;
		}
	}
	return r < 0 ? -1 : 0;
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_process(arg);
}

/* Bytes not yet handed to the kernel, through a TLS filter too. */
static size_t
session_pending_output(const struct smtp_session *s)
{
	struct bufferevent *u = bufferevent_get_underlying(s->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));

	if (s->pend != NULL)
		n += evbuffer_get_length(s->pend);

	if (u != NULL)
		n += evbuffer_get_length(bufferevent_get_output(u));
	return n;
}

static const struct timeval close_poll = { 0, 20000 };

/* Closing timer: free once the last reply has left (or after 30 s). */
static void
session_closing_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	/* draining, a peer that reads nothing holds the exit 5 s at most */
	if (++s->close_polls > (s->env->draining ? 250 : 1500) ||
	    session_pending_output(s) == 0)
		session_free(s);
	else
		evtimer_add(s->close_ev, &close_poll);
}

/* In S_CLOSING: free now if everything is written, else poll briefly
 * (a TLS filter's socket drains after its own write callback fired). */
static void
session_closing_check(struct smtp_session *s)
{
	if (session_pending_output(s) == 0) {
		session_free(s);
		return;
	}
	if (bufferevent_get_underlying(s->bev) == NULL && !s->env->draining)
		return;         /* the write callback will come */
	if (s->close_ev == NULL) {
		s->close_ev = evtimer_new(s->env->base, session_closing_timer, s);
		evtimer_add(s->close_ev, &close_poll);
	}
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (s->state == S_CLOSING) {
		session_closing_check(s);
		return;
	}
	if (s->out_paused) {
		s->out_paused = 0;
		session_process(s);
	}
}

/* TLS handshake done: note it; implicit TLS greets now.  < 0 when the
 * session ended. */
static int
session_tls_done(struct smtp_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	s->tls = 1;
	tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
	metrics_tls(METRICS_IN, ssl);
	log_info("session id=%016llx tls %s resumed=%s",
	    (unsigned long long)s->id, s->tls_info, tls_resumed(ssl));
	if (s->helo == NULL && s->lc->tls == LISTEN_TLS_IMPLICIT) {
		if (session_greet(s) < 0)
			return -1;
	} else {
		/* RFC 3207 4.2: forget everything learnt before TLS. */
		session_reset_txn(s);
		free(s->helo);
		s->helo = NULL;
		s->esmtp = 0;
		session_enter_state(s, S_CMD);
	}
	return session_process(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	unsigned long e;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		(void)session_tls_done(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == S_CLOSING) {
			session_free(s);
			return;
		}
		log_info("session id=%016llx timeout state=%s",
		    (unsigned long long)s->id, session_strstate(s->state));
		session_reply(s, "421 4.4.2 %s Timeout exceeded",
		    s->env->cfg->hostname);
		bufferevent_enable(s->bev, EV_WRITE);
		session_close(s, "timeout");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		e = bufferevent_get_openssl_error(s->bev);
		if (s->state == S_HANDSHAKE || e != 0)
			log_info("session id=%016llx tls error peer=%s: %s",
			    (unsigned long long)s->id, s->peer_str,
			    e ? ERR_reason_error_string(e) : "handshake failed");
	}
	log_info("session id=%016llx disconnect peer=%s reason=%s state=%s",
	    (unsigned long long)s->id, s->peer_str,
	    (what & BEV_EVENT_EOF) ? "eof" : "error",
	    session_strstate(s->state));
	session_free(s);
}

/* Take over an accepted socket and start the conversation; NULL (socket
 * closed) if it cannot be set up. */
struct smtp_session *
smtp_session_start(const struct session_env *env, void *tag, evutil_socket_t fd,
    const struct sockaddr *sa, int socklen, const struct listen_cfg *lc)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->id = new_session_id();
	s->env = env;
	s->tag = tag;
	s->lc = lc;
	memcpy(&s->peer, sa, (size_t)socklen < sizeof(s->peer) ?
	    (size_t)socklen : sizeof(s->peer));
	sockaddr_str(sa, s->peer_str, sizeof(s->peer_str));
	s->relay_ok = env->open_relay || config_relay_allowed(env->cfg, sa);
	evutil_make_socket_nonblocking(fd);
	s->bev = bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->state = lc->proxy != LISTEN_PROXY_OFF ? S_PROXY : S_CMD;
	if (s->bev == NULL) {
		log_warnx("session: cannot set up connection: %s", tls_error());
		evutil_closesocket(fd);
		free(s);
		return NULL;
	}
	log_info("session id=%016llx connect peer=%s listener=%s:%s relay=%s",
	    (unsigned long long)s->id, s->peer_str, lc->host, lc->port,
	    s->relay_ok ? "yes" : "no");
	session_setup_bev(s, 1);
	if (lc->tls == LISTEN_TLS_IMPLICIT && lc->proxy == LISTEN_PROXY_OFF) {
		/* not live yet for the server: a failure is undone here */
		s->hs = tls_accept_new(env->base, s->bev, env->tls_server,
		    session_tls_ready, s);
		if (s->hs == NULL) {
			log_warnx("session id=%016llx SSL_new: %s",
			    (unsigned long long)s->id, tls_error());
			bufferevent_free(s->bev);
			free(s);
			return NULL;
		}
		s->state = S_HANDSHAKE;
	} else if (s->state == S_CMD)
		session_greet(s);
	return s;
}

/* Free everything; the socket closes with the bufferevent.  The server
 * hears of it last (it may stop the loop when this was the last one). */
static void
session_free(struct smtp_session *s)
{
	const struct session_env *env = s->env;
	void *tag = s->tag;

	session_reset_txn(s);
	free(s->slots);
	tls_accept_free(s->hs);
	if (s->close_ev != NULL)
		event_free(s->close_ev);
	if (s->flush_ev != NULL)
		event_free(s->flush_ev);
	if (s->pend != NULL)
		evbuffer_free(s->pend);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	free(s->helo);
	free(s);
	env->closed(env->arg, tag);
}

/* Draining: close a session that sits between transactions, or has not
 * begun one (no PROXY header or TLS handshake yet). */
int
smtp_session_drain(struct smtp_session *s)
{
	if (s->state == S_PROXY || s->state == S_HANDSHAKE) {
		session_close(s, "shutdown");   /* nothing to say it to */
		return 1;
	}
	if (s->state == S_CLOSING) {    /* its last reply: a few seconds */
		session_closing_check(s);
		return 0;
	}
	/* Nothing is accepted before DATA: the client will simply retry. */
	if (s->state != S_CMD || session_rcpts_pending(s) > 0)
		return 0;
	session_reply(s, "421 4.3.2 %s Service shutting down",
	    s->env->cfg->hostname);
	session_close(s, "shutdown");
	return 1;
}

/* One line for the drain report: id, state, what it waits on. */
void
smtp_session_describe(const struct smtp_session *s, char *buf, size_t len)
{
	snprintf(buf, len, "id=%016llx peer=%s state=%s rcpts_pending=%zu "
	    "output=%zu", (unsigned long long)s->id, s->peer_str,
	    session_strstate(s->state), session_rcpts_pending(s),
	    s->bev != NULL ? session_pending_output(s) : (size_t)0);
}
