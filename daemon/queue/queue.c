/* queue.c: the queue runner (see queue.h).
 *
 * Every queued copy lives in memory as its spool_entry; the disk follows
 * through spool_update()/spool_delete() (the spool thread).  Once a second
 * the runner starts attempts for the copies that are due (at most
 * MAX_ACTIVE at once, so a backlog never takes every connection from
 * in-line traffic), expires old ones, sends delay warnings, and asks the
 * spool whether smrelayctl changed anything.  An attempt is one
 * transaction through the relay client for the recipients still pending
 * that share a destination (one attempt per destination at once); each
 * recipient keeps its own state, so a copy where the next hop took some
 * and deferred others keeps only the deferred ones.  bounce.c builds the
 * DSNs this file spools; hop.c keeps which destinations are down. */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "daemon/base/base.h"
#include "proto/proto.h"
#include "lib/lib.h"
#include "bounce.h"
#include "hop.h"
#include "queue.h"

#define RUN_INTERVAL	1	/* seconds */
#define MAX_ACTIVE	20	/* attempts at once */
#define RETRY_BASE	60	/* first retry after about a minute */
#define RETRY_MAX	3600	/* backoff cap */
#define HASH_BUCKETS	16384
#define FULL_SCAN	60	/* seconds between scans for expired holds */

struct queue {
	struct event_base	*base;
	struct spool		*spool;
	const struct delivery_ops *relay;
	void			*relay_ctx;
	const struct config	*cfg;
	struct spool_entry	**v;
	size_t			 n, cap;
	struct spool_entry	*hash[HASH_BUCKETS];
	size_t			 cursor;	/* where the last scan stopped */
	int64_t			 earliest;	/* nothing idle is due before */
	int64_t			 last_full;
	int			 active;
	struct hops		*hops;		/* destinations that are down */
	int			 control_busy;
	struct event		*timer, *kick;
	uint64_t		 delivered, bounced, dup_risk;
};

struct attempt {
	struct queue		*q;
	struct spool_entry	*e;
	void			*txn;
	struct msgbuf		*body;
	size_t			*idx;		/* pending recipients tried */
	struct smtp_result	*res;
	size_t			 n, answered;
	char			 key[DELIVERY_KEY_MAX];	/* destination */
};

static void queue_run(struct queue *);
static void settle(struct queue *, struct spool_entry *);

/* The hash bucket of an id (FNV-1a). */
static unsigned
id_hash(const char *id)
{
	unsigned h = 2166136261u;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % HASH_BUCKETS;
}

/* The entry with this id: a hash lookup (the queue may hold 100,000). */
static struct spool_entry *
find(struct queue *q, const char *id)
{
	struct spool_entry *e;

	for (e = q->hash[id_hash(id)]; e != NULL; e = e->hnext)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

/* Something may be due at t: let queue_run() look then. */
static void
due_at(struct queue *q, int64_t t)
{
	if (t < q->earliest)
		q->earliest = t;
}

/* Keep e in memory: in the vector and the id hash. */
static void
add(struct queue *q, struct spool_entry *e)
{
	unsigned h = id_hash(e->id);

	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->v = xreallocarray(q->v, q->cap, sizeof(*q->v));
	}
	e->vidx = q->n;
	q->v[q->n++] = e;
	e->hnext = q->hash[h];
	q->hash[h] = e;
	due_at(q, e->next_attempt);
}

/* Forget e (it is already deleted on disk, or being). */
static void
drop(struct queue *q, struct spool_entry *e)
{
	struct spool_entry **pp;

	for (pp = &q->hash[id_hash(e->id)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	if (e->vidx < q->n && q->v[e->vidx] == e) {
		q->v[e->vidx] = q->v[--q->n];
		q->v[e->vidx]->vidx = e->vidx;
	}
	spool_entry_free(e);
}

/* 32 random bits, for the retry jitter. */
static uint32_t
rnd(void)
{
	uint32_t r;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)random();
	return r;
}

/* Exponential backoff with +-20% jitter: ~60 s, 120 s, ... 3600 s. */
static int64_t
backoff(int attempts)
{
	int64_t d = RETRY_BASE;
	int i;

	for (i = 1; i < attempts && d < RETRY_MAX; i++)
		d *= 2;
	if (d > RETRY_MAX)
		d = RETRY_MAX;
	return d * 8 / 10 + (int64_t)(rnd() % (uint32_t)(d * 4 / 10 + 1));
}

/* Run the queue again as soon as the loop is free. */
static void
kick(struct queue *q)
{
	event_active(q->kick, 0, 0);
}

/* ---- DSNs ---- */

struct dsn_job {
	struct queue	*q;
	char		 id[SPOOL_ID_LEN + 1];	/* the original */
	int		 final;		/* delete the original once queued */
};

/* A DSN is durable or failed: a final one then takes the original away. */
static void
dsn_queued(void *arg, int err)
{
	struct dsn_job *j = arg;
	struct spool_entry *e = find(j->q, j->id);

	if (err != 0)
		log_warnx("queue id=%s: DSN not spooled: %s", j->id,
		    strerror(err));
	if (j->final && e != NULL) {
		if (err != 0) {         /* keep it; try the bounce again */
			e->next_attempt = time(NULL) + RETRY_BASE;
			due_at(j->q, e->next_attempt);
			e->busy = 0;
		} else {
			spool_delete(j->q->spool, e->id);
			drop(j->q, e);
		}
	}
	free(j);
}

/*
 * A DSN to e's sender about the recipients in `which` state with `action`.
 * Returns 1 if a DSN was queued (final: e is deleted once it is durable),
 * 0 if none was due (null sender, a DSN itself, NOTIFY said no).
 */
static int
send_dsn(struct queue *q, struct spool_entry *e, int which,
    enum dsn_action action, int final)
{
	struct bounce b;
	struct dsn_job *j;

	if (!bounce_build(&b, e, which, action, q->spool, q->cfg))
		return 0;
	j = xcalloc(1, sizeof(*j));
	j->q = q;
	snprintf(j->id, sizeof(j->id), "%s", e->id);
	j->final = final;
	log_info("queue id=%s: %s DSN to <%s> for %zu recipient(s)", e->id,
	    dsn_action_name(action), e->sender, b.nreported);
	queue_submit(q, &b.entry, b.body, dsn_queued, j);
	bounce_clear(&b);
	if (action == DSN_FAILED)
		q->bounced++;
	if (action == DSN_FAILED) metrics_inc(M_MSG_BOUNCED);
	return 1;
}

/* ---- attempts ---- */

/* Free an attempt (not its entry). */
static void
attempt_free(struct attempt *a)
{
	msgbuf_free(a->body);
	free(a->idx);
	free(a->res);
	free(a);
}

/* A retry's delivery log line for one recipient: the ID is the one the
 * client was given; S/MIME was applied before the copy was queued, and
 * the entry says what it did ("-" when it does not know). */
static void
attempt_log(const struct attempt *a, const char *rcpt, const char *msgid,
    const struct smtp_result *r, const char *reply)
{
	struct delivery_attempt d;
	int64_t age = time(NULL) - a->e->created;

	memset(&d, 0, sizeof(d));
	d.qid = a->e->id;
	d.rcpt = rcpt;
	d.msgid = msgid;
	d.delay = age > 0 ? (double)age : 0;
	d.relay = r->relay;
	d.tls = r->tls;
	d.smime = a->e->smime != NULL && a->e->smime[0] != '\0' ?
	    a->e->smime : "-";
	d.reply = reply;
	delivery_log_attempt(&d);
}

/* Record the outcome per recipient; once the entry's last attempt is
 * over, settle it. */
static void
finish(struct attempt *a, const struct smtp_result *data)
{
	struct queue *q = a->q;
	struct spool_entry *e = a->e;
	const struct smtp_result *r;
	const struct smtp_result okr = { 250, "2.0.0", "", "", "" };
	struct spool_rcpt *rc;
	char buf[300], msgid[256];
	size_t k;
	int ok = 0, down = 0;

	delivery_message_id(a->body, msgid, sizeof(msgid));
	for (k = 0; k < a->n; k++) {
		rc = &e->rcpts[a->idx[k]];
		r = &a->res[k];
		if (r->code >= 200 && r->code < 300 && data != NULL)
			r = data;
		snprintf(buf, sizeof(buf), "%d %s %s", r->code, r->enh,
		    r->text);
		attempt_log(a, rc->addr, msgid, r, buf);
		free(rc->reply);
		rc->reply = xstrdup(buf);
		if (r->code >= 200 && r->code < 300) {
			rc->state = SPOOL_RCPT_DONE;
			ok++;
		} else if (r->code >= 500)
			rc->state = SPOOL_RCPT_FAILED;
		else if (strncmp(r->enh, "4.4.", 4) == 0)
			down = 1;
		if (r->code < 200 || r->code >= 300) {
			free(e->last_error);
			e->last_error = xstrdup(buf);
		}
	}
	if (data != NULL && data->code >= 400 && data->code < 500 &&
	    strstr(data->text, "end of data") != NULL) {
		/* The next hop may have the message: a retry may duplicate. */
		q->dup_risk++;
		log_warnx("queue id=%s: no reply after end of data; the retry "
		    "may deliver it twice (%llu so far)", e->id,
		    (unsigned long long)q->dup_risk);
	}
	log_info("queue id=%s attempt=%d%s%s delivered=%d status=%s", e->id,
	    e->attempts + 1, a->key[0] ? " to=" : "", a->key, ok,
	    e->last_error && ok < (int)a->n ? e->last_error : "ok");
	hops_probe_end(q->hops, a->key);
	if (ok > 0) {
		metrics_inc(M_MSG_DELIVERED);
		q->delivered += (uint64_t)ok;
		queue_hop_result(q, a->key, &okr);
	} else if (down)
		hops_failed(q->hops, a->key);
	q->active--;
	attempt_free(a);
	if (--e->inflight > 0)
		return;
	e->attempts++;
	e->busy = 0;
	settle(q, e);
	kick(q);
}

/* The next hop answered the end of data. */
static void
data_cb(void *arg, const struct smtp_result *r)
{
	finish(arg, r);
}

/* The next hop answered a RCPT: once all did, send the data or give up. */
static void
rcpt_cb(void *arg, const struct smtp_result *r)
{
	struct attempt *a = arg;
	struct queue *q = a->q;
	size_t k;
	int any = 0;

	a->res[a->answered++] = *r;
	if (a->answered < a->n)
		return;
	for (k = 0; k < a->n; k++)
		if (a->res[k].code >= 200 && a->res[k].code < 300)
			any = 1;
	if (any)
		q->relay->data(a->txn, a->body, data_cb, a);
	else {
		q->relay->abort(a->txn);
		finish(a, NULL);
	}
}

/* The destination key of a recipient ("" when the relay has one). */
static void
dest_key(const struct queue *q, const char *addr, char *key, size_t keylen)
{
	key[0] = '\0';
	if (q->relay->route != NULL)
		q->relay->route(q->relay_ctx, addr, key, keylen);
}

/* Start one transaction for e's pending recipients bound for `key`; the
 * attempt's body is a reference of its own. */
static void
attempt_one(struct queue *q, struct spool_entry *e, const char *key,
    char (*keys)[DELIVERY_KEY_MAX], struct msgbuf *body)
{
	struct attempt *a;
	size_t i;

	a = xcalloc(1, sizeof(*a));
	a->q = q;
	a->e = e;
	snprintf(a->key, sizeof(a->key), "%s", key);
	a->idx = xcalloc(e->nrcpts, sizeof(*a->idx));
	a->res = xcalloc(e->nrcpts, sizeof(*a->res));
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == SPOOL_RCPT_PENDING &&
		    strcmp(keys[i], key) == 0) {
			a->idx[a->n++] = i;
			keys[i][0] = '\x01';	/* taken */
		}
	a->body = msgbuf_ref(body);
	e->inflight++;
	q->active++;
	a->txn = q->relay->begin(q->relay_ctx, e->sender, e->params,
	    new_session_id());
	for (i = 0; i < a->n; i++)
		q->relay->rcpt(a->txn, e->rcpts[a->idx[i]].addr,
		    e->rcpts[a->idx[i]].params ? e->rcpts[a->idx[i]].params :
		    "", rcpt_cb, a);
}

/*
 * One attempt per destination of e's pending recipients, except those
 * that are down (their recipients wait for the entry's next turn, or for
 * the destination to come back).  1: started; 0: not (e may be gone, the
 * vector changed).
 */
static int
attempt(struct queue *q, struct spool_entry *e)
{
	char (*keys)[DELIVERY_KEY_MAX], key[DELIVERY_KEY_MAX];
	struct msgbuf *body;
	size_t i, pending = 0;

	keys = xcalloc(e->nrcpts + 1, sizeof(*keys));
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == SPOOL_RCPT_PENDING) {
			dest_key(q, e->rcpts[i].addr, keys[i],
			    sizeof(keys[i]));
			pending++;
		}
	if (pending == 0) {
		free(keys);
		settle(q, e);
		return 0;
	}
	if ((body = spool_body(q->spool, e->id)) == NULL) {
		log_warn("queue id=%s: body", e->id);
		free(keys);
		e->next_attempt = time(NULL) + RETRY_MAX;
		due_at(q, e->next_attempt);
		return 0;
	}
	e->busy = 1;
	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state != SPOOL_RCPT_PENDING ||
		    keys[i][0] == '\x01')
			continue;
		/* one attempt at a time where the destination is down */
		if (hops_is_down(q->hops, keys[i]) &&
		    !hops_probe_start(q->hops, keys[i]))
			continue;
		snprintf(key, sizeof(key), "%s", keys[i]);
		attempt_one(q, e, key, keys, body);
	}
	msgbuf_free(body);
	free(keys);
	if (e->inflight == 0) {
		/* every destination is down and being tried by another
		 * copy: wait for its outcome (a success makes this due) or
		 * this copy's own backoff */
		e->busy = 0;
		e->next_attempt = time(NULL) + backoff(e->attempts > 0 ?
		    e->attempts : 1);
		due_at(q, e->next_attempt);
		log_info("queue id=%s: destination down, next try in %lld s",
		    e->id, (long long)(e->next_attempt - time(NULL)));
	}
	return 1;
}

/*
 * After an attempt, or when due: done recipients leave; failures bounce;
 * expiry; a delay warning; persist the rest.
 */
static void
settle(struct queue *q, struct spool_entry *e)
{
	int64_t now = time(NULL);
	size_t i, pending = 0, failed = 0;

	if (e->gone) {
		drop(q, e);
		return;
	}
	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state == SPOOL_RCPT_PENDING)
			pending++;
		else if (e->rcpts[i].state == SPOOL_RCPT_FAILED)
			failed++;
	}
	if (pending > 0 && e->held != SPOOL_HOLD_ADMIN &&
	    now - e->created >= q->cfg->queue_lifetime) {
		for (i = 0; i < e->nrcpts; i++) {
			if (e->rcpts[i].state != SPOOL_RCPT_PENDING)
				continue;
			e->rcpts[i].state = SPOOL_RCPT_FAILED;
			free(e->rcpts[i].reply);
			/* Status 4.4.7 (RFC 3463: delivery time expired),
			 * with the last reply for the reader. */
			if (e->held == SPOOL_HOLD_POLICY)
				e->rcpts[i].reply = xstrdup("550 5.7.1 no "
				    "usable certificate to encrypt to arrived "
				    "within queue_lifetime");
			else
				e->rcpts[i].reply = xasprintf("451 4.4.7 "
				    "delivery time expired; last reply: %s",
				    e->last_error ? e->last_error : "none");
			failed++;
		}
		log_info("queue id=%s expired after %lld s", e->id,
		    (long long)(now - e->created));
		pending = 0;
	}
	if (pending == 0) {
		if (failed > 0) {
			e->busy = 1;    /* until the DSN is durable */
			if (send_dsn(q, e, SPOOL_RCPT_FAILED, DSN_FAILED, 1))
				return;
			e->busy = 0;
		}
		spool_delete(q->spool, e->id);
		drop(q, e);
		return;
	}
	if (failed > 0) {
		/* Some failed, others are still pending: bounce these now
		 * (or note that none was due), keep retrying the others. */
		send_dsn(q, e, SPOOL_RCPT_FAILED, DSN_FAILED, 0);
		for (i = 0; i < e->nrcpts; i++)
			if (e->rcpts[i].state == SPOOL_RCPT_FAILED)
				e->rcpts[i].state = SPOOL_RCPT_BOUNCED;
	}
	if (!e->warned && q->cfg->delay_warning > 0 &&
	    e->held != SPOOL_HOLD_ADMIN &&
	    now - e->created >= q->cfg->delay_warning) {
		send_dsn(q, e, SPOOL_RCPT_PENDING, DSN_DELAYED, 0);
		e->warned = 1;
	}
	if (e->attempts > 0 && e->next_attempt <= now)
		e->next_attempt = now + backoff(e->attempts);
	due_at(q, e->next_attempt);
	spool_update(q->spool, e);
}

/* ---- control (smrelayctl) ---- */

/* A row smrelayctl changed, or the end of them (see spool_poll_control()). */
static void
control_cb(void *arg, const char *id, int held, int64_t next_attempt)
{
	struct queue *q = arg;
	struct spool_entry *e;
	size_t i;

	if (id == NULL) {       /* end: what was not seen was removed */
		q->control_busy = 0;
		if (!held)      /* nothing changed: nothing was listed */
			return;
		for (i = 0; i < q->n; ) {
			e = q->v[i];
			if (e->seen) {
				e->seen = 0;
				i++;
				continue;
			}
			log_info("queue id=%s removed by smrelayctl", e->id);
			if (e->busy) {
				e->gone = 1;
				e->seen = 0;
				i++;
			} else
				drop(q, e);
		}
		kick(q);
		return;
	}
	if ((e = find(q, id)) == NULL)
		return;         /* ours, just written: not known yet? */
	e->seen = 1;
	if (e->held != held)
		log_info("queue id=%s %s by smrelayctl", e->id, held ?
		    "held" : "released");
	e->held = held;
	if (!e->busy) {
		e->next_attempt = next_attempt;
		due_at(q, next_attempt);
	}
}

/*
 * Start the attempts that are due, at most MAX_ACTIVE at once, going round
 * the queue from where the last scan stopped.  Nothing is scanned while
 * nothing can be due (q->earliest), except once a minute for policy holds
 * past queue_lifetime: a backlog of 20,000 costs nothing per new message.
 */
static void
queue_run(struct queue *q)
{
	int64_t now = time(NULL), earliest = INT64_MAX;
	struct spool_entry *e;
	size_t k, i;
	int64_t every = q->cfg->queue_lifetime / 10;
	int full;

	/* policy holds expire at queue_lifetime: look for them a tenth of
	 * it apart, at least once a minute */
	every = every < 1 ? 1 : every > FULL_SCAN ? FULL_SCAN : every;
	full = now - q->last_full >= every;

	if (!full && (q->active >= MAX_ACTIVE || now < q->earliest))
		return;
	if (full)
		q->last_full = now;
	for (k = 0; k < q->n; k++) {
		i = (q->cursor + k) % q->n;
		e = q->v[i];
		if (e->busy || e->gone)
			continue;
		if (SPOOL_HELD_FOR_RETRY(e->held) &&
		    now - e->created >= q->cfg->queue_lifetime) {
			settle(q, e);   /* may change the vector: go again */
			q->earliest = 0;
			kick(q);
			return;
		}
		if (e->held != SPOOL_HOLD_NONE)
			continue;
		if (e->next_attempt > now) {
			if (e->next_attempt < earliest)
				earliest = e->next_attempt;
			continue;
		}
		if (q->active >= MAX_ACTIVE) {
			q->cursor = i;  /* more are due: here next time */
			q->earliest = now;
			return;
		}
		if (!attempt(q, e)) {
			q->earliest = 0;
			kick(q);
			return;
		}
	}
	q->cursor = 0;
	q->earliest = earliest;
}

/* The metrics' queue size and oldest entry, once a second: a scrape
 * never walks the queue. */
static void
queue_gauges(struct queue *q)
{
	int64_t oldest = 0;
	size_t i;

	for (i = 0; i < q->n; i++)
		if (!q->v[i]->gone && (oldest == 0 || q->v[i]->created < oldest))
			oldest = q->v[i]->created;
	metrics_set(M_QUEUE_SIZE, q->n);
	metrics_set(M_QUEUE_OLDEST, (uint64_t)oldest);
}

/* Once a second: ask the spool about smrelayctl, run the queue. */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	(void)fd;
	(void)what;
	if (!q->control_busy) {
		q->control_busy = 1;
		spool_poll_control(q->spool, control_cb, q);
	}
	queue_run(q);
	queue_gauges(q);
}

/* The kick event: run the queue. */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	queue_run(arg);
}

/* A runner for the loaded entries, all due at once. */
struct queue *
queue_new(struct event_base *base, struct spool *spool,
    struct spool_entry **loaded, size_t nloaded,
    const struct delivery_ops *relay, void *relay_ctx,
    const struct config *cfg)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct timeval tv = { RUN_INTERVAL, 0 };
	size_t i;

	q->base = base;
	q->spool = spool;
	q->relay = relay;
	q->relay_ctx = relay_ctx;
	q->cfg = cfg;
	q->earliest = INT64_MAX;
	q->hops = hops_new();
	for (i = 0; i < nloaded; i++) {
		loaded[i]->next_attempt = 0;    /* retry all after a restart */
		add(q, loaded[i]);
	}
	free(loaded);
	if ((q->timer = event_new(base, -1, EV_PERSIST, timer_cb, q)) ==
	    NULL || event_add(q->timer, &tv) == -1 ||
	    (q->kick = event_new(base, -1, 0, kick_cb, q)) == NULL)
		fatalx("queue: event_new");
	if (q->n > 0) {
		log_info("queue: %zu message(s) in the spool", q->n);
		kick(q);
	}
	return q;
}

/* Use a reloaded configuration. */
void
queue_reconfigure(struct queue *q, const struct config *cfg)
{
	q->cfg = cfg;
}

struct submit {
	struct queue		*q;
	struct spool_entry	*e;
	spool_put_cb		*cb;
	void			*arg;
};

/* A submitted copy is durable (queue it) or not; tell the submitter. */
static void
submit_done(void *arg, int err)
{
	struct submit *s = arg;

	if (err == 0) {
		add(s->q, s->e);
		kick(s->q);
	} else
		spool_entry_free(s->e);
	if (s->cb != NULL)
		s->cb(s->arg, err);
	free(s);
}

/* Spool a copy, and queue it once it is durable. */
void
queue_submit(struct queue *q, struct spool_entry *e, struct msgbuf *body,
    spool_put_cb *cb, void *arg)
{
	struct submit *s = xcalloc(1, sizeof(*s));

	s->q = q;
	s->cb = cb;
	s->arg = arg;
	spool_put(q->spool, e, body, submit_done, s);
	s->e = spool_entry_dup(e);
	s->e->busy = s->e->gone = s->e->seen = 0;
}

/* Whether e has a pending recipient bound for destination key. */
static int
bound_for(const struct queue *q, const struct spool_entry *e,
    const char *key)
{
	char k[DELIVERY_KEY_MAX];
	size_t i;

	for (i = 0; i < e->nrcpts; i++) {
		if (e->rcpts[i].state != SPOOL_RCPT_PENDING)
			continue;
		dest_key(q, e->rcpts[i].addr, k, sizeof(k));
		if (strcmp(k, key) == 0)
			return 1;
	}
	return 0;
}

/* Destination key is back: every idle, unheld copy bound for it is due
 * now. */
static void
backlog_due(struct queue *q, const char *key)
{
	size_t i, n = 0;

	for (i = 0; i < q->n; i++)
		if (!q->v[i]->busy && q->v[i]->held == SPOOL_HOLD_NONE &&
		    bound_for(q, q->v[i], key)) {
			q->v[i]->next_attempt = 0;
			n++;
		}
	if (n > 0)
		log_info("queue: %s%s is back, %zu message(s) due now",
		    key[0] ? "destination " : "next hop", key, n);
	q->earliest = 0;
	kick(q);
}

/* Tell the destination tracker; its first success after failures ends
 * the wait of that destination's backlog. */
void
queue_hop_result(struct queue *q, const char *key,
    const struct smtp_result *r)
{
	if (hops_result(q->hops, key, r))
		backlog_due(q, key);
}

/* Should in-line traffic skip destination key (see hops_dead())? */
int
queue_hop_dead(const struct queue *q, const char *key)
{
	return hops_dead(q->hops, key);
}

/* Offer each copy held for a certificate or for another try to fn;
 * those it takes are busy. */
void
queue_check_held(struct queue *q, queue_release_fn *fn, void *arg)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (SPOOL_HELD_FOR_RETRY(q->v[i]->held) && !q->v[i]->busy &&
		    !q->v[i]->gone && fn(arg, q->v[i]))
			q->v[i]->busy = 1;
}

struct replace {
	struct queue	*q;
	char		 id[SPOOL_ID_LEN + 1];
};

/* The released copy is durable: the held one goes (else stays held). */
static void
replace_done(void *arg, int err)
{
	struct replace *r = arg;
	struct spool_entry *e = find(r->q, r->id);

	if (e != NULL) {
		if (err == 0) {
			spool_delete(r->q->spool, e->id);
			drop(r->q, e);
		} else
			e->busy = 0;
	}
	free(r);
}

/* Queue a held copy's pending recipients again with the new body. */
void
queue_replace(struct queue *q, const char *id, struct msgbuf *body)
{
	struct spool_entry *e = find(q, id), *c;
	struct replace *r;
	size_t i, k;

	if (e == NULL)
		return;
	if (body == NULL) {     /* the transform failed: stays held */
		e->busy = 0;
		return;
	}
	c = spool_entry_dup(e);
	c->busy = c->gone = c->seen = c->keep_id = 0;
	c->held = SPOOL_HOLD_NONE;
	c->actions = 0;
	c->next_attempt = 0;
	c->attempts = 0;
	for (i = k = 0; i < c->nrcpts; i++) {
		if (c->rcpts[i].state != SPOOL_RCPT_PENDING) {
			free(c->rcpts[i].addr);
			free(c->rcpts[i].params);
			free(c->rcpts[i].reply);
			continue;
		}
		c->rcpts[k++] = c->rcpts[i];
	}
	c->nrcpts = k;
	r = xcalloc(1, sizeof(*r));
	r->q = q;
	snprintf(r->id, sizeof(r->id), "%s", id);
	queue_submit(q, c, body, replace_done, r);
	log_info("queue id=%s: certificate available, released as id=%s", id,
	    c->id);
	spool_entry_free(c);
}

/* Entries in memory. */
size_t
queue_count(const struct queue *q)
{
	return q->n;
}

/* Stop the runner and free what it holds. */
void
queue_free(struct queue *q)
{
	size_t i;

	if (q == NULL)
		return;
	event_free(q->timer);
	event_free(q->kick);
	for (i = 0; i < q->n; i++)
		spool_entry_free(q->v[i]);
	free(q->v);
	hops_free(q->hops);
	free(q);
}
