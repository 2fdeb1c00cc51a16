/* bounce.c: DSNs about spooled copies (see bounce.h). */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon/base/base.h"
#include "proto/proto.h"
#include "lib/lib.h"
#include "bounce.h"

/* The most of the original a DSN returns (Postfix's bounce_size_limit):
 * a bigger one comes back as its header section, read from the first
 * DSN_RETURN_MAX bytes, so a DSN costs bounded memory whatever the size. */
#define DSN_RETURN_MAX	50000

/* The value of an ESMTP parameter in "KEY=value KEY=value", into buf. */
static const char *
param(const char *params, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	const char *p = params, *e;

	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		e = strchr(p, ' ');
		if (strncasecmp(p, key, kl) == 0 && p[kl] == '=') {
			snprintf(buf, len, "%.*s", (int)((e ? e : p +
			    strlen(p)) - p - kl - 1), p + kl + 1);
			return buf;
		}
		p = e;
	}
	return NULL;
}

/* A recipient's status: the enhanced code of its last reply if that has
 * one of the action's class, else 5.0.0 (failed) or 4.0.0 (delayed). */
static char *
rcpt_status(const char *reply, enum dsn_action action)
{
	char status[16];

	status[0] = '\0';
	if (reply != NULL)
		sscanf(reply, "%*d %15[0-9.]", status);
	if (action == DSN_FAILED ? status[0] != '5' &&
	    status[0] != '4' : status[0] != '4')
		snprintf(status, sizeof(status), "%s",
		    action == DSN_FAILED ? "5.0.0" : "4.0.0");
	return xstrdup(status);
}

/* One line per recipient of e in `which` state whose NOTIFY asks for
 * `action`, into dr (e->nrcpts long); how many. */
static size_t
collect_rcpts(struct dsn_rcpt *dr, const struct spool_entry *e, int which,
    enum dsn_action action, const struct config *cfg, int64_t now)
{
	const struct spool_rcpt *rc;
	char notify[64], orcpt[512];
	size_t i, n = 0;

	for (i = 0; i < e->nrcpts; i++) {
		rc = &e->rcpts[i];
		if (rc->state != which)
			continue;
		if (!dsn_notify_allows(param(rc->params, "NOTIFY", notify,
		    sizeof(notify)), action))
			continue;
		dr[n].rcpt = rc->addr;
		dr[n].orcpt = param(rc->params, "ORCPT", orcpt,
		    sizeof(orcpt)) ? xstrdup(orcpt) : NULL;
		dr[n].action = action;
		dr[n].status = rcpt_status(rc->reply, action);
		dr[n].diag = rc->reply ? xstrdup(rc->reply) : NULL;
		dr[n].remote_mta = cfg->relay_host;
		dr[n].last_attempt = now;
		dr[n].retry_until = action == DSN_DELAYED ?
		    e->created + cfg->queue_lifetime : 0;
		n++;
	}
	return n;
}

/* Free the strings collect_rcpts() made, and dr. */
static void
free_rcpts(struct dsn_rcpt *dr, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free((char *)dr[i].orcpt);
		free((char *)dr[i].status);
		free((char *)dr[i].diag);
	}
	free(dr);
}

/* What of the spooled body a DSN returns: all of it up to DSN_RETURN_MAX
 * bytes; else the first DSN_RETURN_MAX up to their last line end, and
 * *full cleared (only the header section goes back).  NULL (*len 0) when
 * it cannot be read. */
static char *
read_return(struct msgbuf *body, size_t *len, int *full)
{
	size_t size = msgbuf_size(body), want, n = 0;
	char *buf;
	ssize_t r;

	want = size > DSN_RETURN_MAX ? DSN_RETURN_MAX : size;
	buf = xmalloc(want + 1);
	while (n < want && (r = msgbuf_pread(body, buf + n, want - n, n)) > 0)
		n += (size_t)r;
	if (n < want) {
		free(buf);
		*len = 0;
		return NULL;
	}
	if (size > DSN_RETURN_MAX) {
		*full = 0;
		while (n > 0 && buf[n - 1] != '\n')
			n--;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The DSN's text about e (with its body, as RET asks) into *txt; -1 if
 * it cannot be built (logged). */
static int
build_text(const struct spool_entry *e, const struct dsn_rcpt *dr,
    size_t n, struct spool *spool, const struct config *cfg, int64_t now,
    char **txt, size_t *tlen)
{
	struct dsn_msg m;
	struct msgbuf *body;
	char ret[16], envid[128], err[256], *orig = NULL;
	size_t olen = 0;
	int r = 0;

	memset(&m, 0, sizeof(m));
	m.reporting_mta = cfg->hostname;
	m.sender = e->sender;
	m.envid = param(e->params, "ENVID", envid, sizeof(envid));
	m.ret_full = param(e->params, "RET", ret, sizeof(ret)) != NULL &&
	    strcasecmp(ret, "FULL") == 0;
	m.arrival = e->created;
	m.now = now;
	m.from_mta = e->client && e->client[0] ? e->client : NULL;
	if ((body = spool_body(spool, e->id)) != NULL) {
		orig = read_return(body, &olen, &m.ret_full);
		msgbuf_free(body);
	}
	m.orig = orig;
	m.origlen = olen;
	if (dsn_build(&m, dr, n, txt, tlen, err, sizeof(err)) == -1) {
		log_warnx("queue id=%s: cannot build a DSN: %s", e->id, err);
		r = -1;
	}
	free(orig);
	return r;
}

/* b's envelope (from the null sender to e's sender) and body (txt). */
static void
envelope(struct bounce *b, const struct spool_entry *e, const char *txt,
    size_t tlen, int64_t now)
{
	memset(&b->entry, 0, sizeof(b->entry));
	b->entry.created = now;
	b->entry.sender = "";
	b->entry.params = dsn_is_8bit(txt, tlen) ? "BODY=8BITMIME" : "";
	b->entry.dsn = 1;
	b->entry.client = "";
	memset(&b->rcpt, 0, sizeof(b->rcpt));
	b->rcpt.addr = e->sender;
	b->rcpt.params = "";
	b->entry.rcpts = &b->rcpt;
	b->entry.nrcpts = 1;
	b->body = msgbuf_new(NULL, (size_t)tlen + 1);
	msgbuf_append(b->body, txt, tlen);
}

/* The DSN about e's recipients in `which` state, if one is due. */
int
bounce_build(struct bounce *b, const struct spool_entry *e, int which,
    enum dsn_action action, struct spool *spool, const struct config *cfg)
{
	struct dsn_rcpt *dr;
	char *txt = NULL;
	size_t n, tlen = 0;
	int64_t now = time(NULL);
	int r = 0;

	if (e->sender[0] == '\0' || e->dsn)
		return 0;
	dr = xcalloc(e->nrcpts, sizeof(*dr));
	n = collect_rcpts(dr, e, which, action, cfg, now);
	if (n > 0 && build_text(e, dr, n, spool, cfg, now, &txt,
	    &tlen) == 0) {
		envelope(b, e, txt, tlen, now);
		b->nreported = n;
		r = 1;
	}
	free_rcpts(dr, n);
	free(txt);
	return r;
}

/* Free b's body (the entry points at the original and constants). */
void
bounce_clear(struct bounce *b)
{
	msgbuf_free(b->body);
	b->body = NULL;
}
