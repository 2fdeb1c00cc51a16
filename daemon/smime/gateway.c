/* gateway.c: policy and S/MIME between the inbound session and the relay
 * client (see gateway.h).
 *
 * A transaction holds its copies (one per distinct treatment) and a FIFO of
 * the RCPTs it was given: replies leave in command order whatever copy or
 * local decision answered first.  A copy's inner transaction opens at its
 * first RCPT, so the next hop still judges every recipient before DATA.  At
 * end of DATA plain copies go straight to the relay client; the others go
 * through a worker thread first (pipeline_transform_body), reading the body
 * through a reference of their own so a session that goes away in between
 * frees nothing under them. */
#include "autoconfig.h"

#include <sys/queue.h>
#include <sys/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>

#include <openssl/x509v3.h>

#include "daemon/base/base.h"
#include "gateway.h"
#include "certcache.h"
#include "crlfetch.h"
#include "harvest.h"
#include "storeq.h"
#include "lib/lib.h"
#include "pipeline.h"
#include "policy/policy.h"
#include "smimea.h"
#include "daemon/queue/queue.h"
#include "proto/proto.h"
#include "store/store.h"

#define RCPT_FETCHES	3	/* store lookups per RCPT at most */
#define HELD_CHECK	300	/* seconds between checks of held copies */
#define HOLD_CERT	1	/* --if-no-cert hold: waits for a certificate */
#define HOLD_RETRY	2	/* its transform failed for now (4xx) while
				 * other copies went: tried again */
#define RELEASE_LOOKUPS	64	/* addresses of held copies looked up
					 * per pass */

/* The backend; the subsystems it works with are smrelayd's (borrowed). */
struct gateway {
	struct event_base	*base;
	const struct delivery_ops *inner;
	void			*inner_ctx;
	struct certcache	*cc;
	struct storeq		*sq;		/* the store thread: reloads,
						 * lookups, harvest writes, CRL,
						 * OCSP and SMIMEA storing: the
						 * loop asks no store */
	struct workers		*workers;
	size_t			 relookups;	/* release lookups in flight */
	int			 recheck;	/* held copies to check when
						 * they are over */
	char			*tmpdir;
	const char		*host;
	const struct config	*cfg;
	struct spool		*spool;
	struct queue		*queue;
	struct evdns_base	*dns;		/* NULL: no CRL fetching */
	struct crlfetch		*cf;
	struct smimea		*sm;		/* cert_lookup = smimea */
	struct event		*refresh_ev;
	struct event		*held_ev;	/* check the held copies */
	LIST_HEAD(, gw_job)	 held;		/* waiting on revocation
						 * fetches (job_hold) */
};

struct gw_txn;

/* A copy of the message: recipients that share a treatment and a
 * destination. */
struct gw_copy {
	struct gw_txn		*t;
	char			 key[DELIVERY_KEY_MAX];	/* destination */
	unsigned		 actions;
	int64_t			 rule_id;
	void			*txn;		/* inner; NULL when over */
	int			 hold;		/* HOLD_*: spooled untransformed,
						 * held */
	int			 xfail;		/* its transform failed (4xx) */
	int			 respooled;	/* held after that: once */
	struct spool_rcpt	*rcpts;		/* accepted by the next hop */
	size_t			 nrcpts;
	struct spool_rcpt	*defer;		/* its 4xx at RCPT: spooled */
	size_t			 ndefer;
	char			 qid[SPOOL_ID_LEN + 1];
	char			 why[200];	/* why it was spooled */
	int			 done;
	struct smtp_result	 res;
	struct msgbuf		*out;		/* transformed body */
	struct gw_job		*job;		/* in a worker */
	struct gw_sreq		*sreq;		/* being spooled */
	/* for the delivery log */
	double			 t_relay;	/* handed to the next hop */
	char			 relay[300];	/* the next hop that answered */
	char			 tls[96];
	char			 smime[96];	/* what S/MIME did */
};

/* A RCPT waiting for its reply to be passed on, in order. */
struct gw_rcpt {
	struct gw_txn		*t;
	char			*path;
	char			*params;
	delivery_cb		*cb;
	void			*arg;
	int			 done;
	struct smtp_result	 res;
	struct gw_copy		*copy;
	struct smimea_wait	*lookup;	/* waiting on SMIMEA */
	int			 looked_up;	/* SMIMEA asked once */
	struct storeq_wait	*fetch;		/* waiting on the store
						 * thread's lookup */
	int			 fetches;	/* lookups asked (a reload may
						 * empty the cache between) */
	struct gw_rcpt		*next;
};

struct gw_txn {
	struct gateway		*gw;
	char			*from, *params;
	uint64_t		 sessid;
	struct xforward		*client;	/* upstream client, or NULL */
	struct gw_copy		**copies;
	size_t			 ncopies;
	struct gw_rcpt		*head, *tail;
	struct event		*defer;		/* local replies, from the loop */
	delivery_cb		*data_cb;
	void			*data_arg;
	struct msgbuf		*body;		/* our reference */
	size_t			 pending;	/* copies not done */
	int			 in_data;
	int			 busy;		/* inside a callback */
	int			 dead;		/* aborted or over */
	/* the message's queue ID (the 250 reply, the delivery log lines
	 * and the first spooled copy carry it) */
	char			 qid[SPOOL_ID_LEN + 1];
	int			 qid_spooled;	/* a spooled copy has it */
	double			 t_begin, t_data;	/* MAIL, end of DATA */
	char			 msgid[256];
};

/* A transform on a worker thread; owns everything it reads. */
struct gw_job {
	struct gw_copy		*copy;		/* NULL: cancelled, or a release */
	char			 qid[SPOOL_ID_LEN + 1];	/* a release: the held
						 * copy in the queue */
	struct gateway		*gw;
	struct msgbuf		*body;
	char			*sender, *host;
	char			**rcpts;
	size_t			 nrcpts;
	unsigned		 actions;
	int64_t			 rule_id;
	uint64_t		 sessid;
	/* results */
	int			 rc;
	struct smime_msg_res	 res;
	struct smtp_result	 fail;
	struct msgbuf		*out;
	struct harvest		*harvest;	/* signers to store, on the
						 * loop (job_harvest) */
	/* held while the revocation of its signer is fetched (job_hold) */
	int			 rerun;		/* this is the second run */
	struct crlfetch_wait	*wait;
	struct event		*wait_ev;	/* revocation_wait ran out */
	struct storeq_wait	*sync;		/* the reload before the rerun */
	struct timeval		 held_at;
	LIST_ENTRY(gw_job)	 hold_entry;
};

static void txn_free(struct gw_txn *);

/* Pass on the replies that are due, in order. */
static void
rcpt_flush(struct gw_txn *t)
{
	struct gw_rcpt *r;

	t->busy++;
	while (!t->dead && (r = t->head) != NULL && r->done) {
		if ((t->head = r->next) == NULL)
			t->tail = NULL;
		r->cb(r->arg, &r->res);
		free(r->path);
		free(r->params);
		free(r);
	}
	t->busy--;
	if (t->dead && t->busy == 0)
		txn_free(t);
}

static void combine(struct gw_txn *);

/* Loop callback for replies decided locally: pass them on in order. */
static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_txn *t = arg;

	(void)fd;
	(void)what;
	if (t->in_data && t->pending == 0)
		combine(t);
	else
		rcpt_flush(t);
}

/* MAIL FROM: a transaction that opens its copies at their first RCPT. */
static void *
gw_begin(void *ctx, const char *from, const char *params, uint64_t sessid)
{
	struct gateway *gw = ctx;
	struct gw_txn *t = xcalloc(1, sizeof(*t));

	t->gw = gw;
	t->from = xstrdup(from);
	t->params = xstrdup(params);
	t->sessid = sessid;
	t->t_begin = mono_now();
	spooldb_new_id(t->qid);
	if ((t->defer = event_new(gw->base, -1, 0, defer_cb, t)) == NULL)
		fatalx("event_new");
	return t;
}

/* ops->client: who the upstream client is, for each copy's next hop. */
static void
gw_client(void *txn, const struct xforward *xf)
{
	struct gw_txn *t = txn;

	if (t->client == NULL)
		t->client = xmalloc(sizeof(*t->client));
	*t->client = *xf;
}

/* Append a recipient (copied) to a list. */
static void
rcpt_push(struct spool_rcpt **v, size_t *n, const char *addr,
    const char *params)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].addr = xstrdup(addr);
	(*v)[*n].params = xstrdup(params ? params : "");
	(*n)++;
}

/* Free a recipient list. */
static void
rcpts_free(struct spool_rcpt *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].addr);
		free(v[i].params);
		free(v[i].reply);
	}
	free(v);
}

/* Remember which next hop answered a copy, for its log lines. */
static void
copy_note_hop(struct gw_copy *c, const struct smtp_result *res)
{
	if (res->relay[0] == '\0')
		return;
	snprintf(c->relay, sizeof(c->relay), "%s", res->relay);
	snprintf(c->tls, sizeof(c->tls), "%s", res->tls);
}

/*
 * The inner transaction answered one of a copy's RCPTs.  A temporary
 * refusal (next hop down, greylisting, ...) is accepted here: that
 * recipient's copy is spooled at end of DATA and retried.
 */
static void
inner_rcpt_cb(void *arg, const struct smtp_result *res)
{
	struct gw_rcpt *r = arg;
	struct gw_copy *c = r->copy;

	r->done = 1;
	r->res = *res;
	copy_note_hop(c, res);
	if (res->code >= 200 && res->code < 300)
		rcpt_push(&c->rcpts, &c->nrcpts, r->path, r->params);
	else if (res->code >= 400 && res->code < 500) {
		queue_hop_result(r->t->gw->queue, c->key, res);
		rcpt_push(&c->defer, &c->ndefer, r->path, r->params);
		c->defer[c->ndefer - 1].reply = xasprintf("%d %s %s",
		    res->code, res->enh, res->text);
		if (c->why[0] == '\0')
			snprintf(c->why, sizeof(c->why), "%d %s %.150s",
			    res->code, res->enh, res->text);
		smtp_result_set(&r->res, 250, "2.1.5", "Ok (queued: next hop "
		    "said %d %.180s)", res->code, res->text);
	}
	rcpt_flush(r->t);
}

/* The copy for a decision's treatment and a destination, made on first
 * use. */
static struct gw_copy *
copy_for(struct gw_txn *t, const struct pl_decision *d, const char *key)
{
	struct gw_copy *c;
	int hold = d->verdict == PL_HOLD ? HOLD_CERT : 0;
	size_t i;

	for (i = 0; i < t->ncopies; i++)
		if (t->copies[i]->actions == d->actions &&
		    t->copies[i]->hold == hold &&
		    strcmp(t->copies[i]->key, key) == 0)
			return t->copies[i];
	c = xcalloc(1, sizeof(*c));
	c->t = t;
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->actions = d->actions;
	c->rule_id = d->rule_id;
	c->hold = hold;
	t->copies = xreallocarray(t->copies, t->ncopies + 1,
	    sizeof(*t->copies));
	t->copies[t->ncopies++] = c;
	return c;
}

static void rcpt_looked_up(void *);
static void rcpt_fetched(void *, int);

/* A local reply to a RCPT, passed on in order. */
static void
rcpt_reply(struct gw_rcpt *r, int code, const char *enh, const char *text)
{
	r->done = 1;
	smtp_result_set(&r->res, code, enh, "%s", text);
	event_active(r->t->defer, 0, 0);
}

/*
 * Decide a RCPT by policy, then refuse, hold, spool or ask the next hop.
 * Encryption wanted and no certificate: with cert_lookup = smimea the
 * reply first waits for an SMIMEA lookup (once), then this runs again.
 */
static void
rcpt_decide(struct gw_rcpt *r)
{
	struct gw_txn *t = r->t;
	struct gateway *gw = t->gw;
	struct certsrc src = { gw->cc, NULL, NULL };	/* no store here */
	const struct policy_set *ps = certcache_policy(gw->cc);
	const char *rcpt = r->path, *params = r->params;
	struct pl_decision d;
	struct gw_copy *c;
	char acts[64], key[DELIVERY_KEY_MAX] = "";
	int up = storeq_up(gw->sq);

	if (ps == NULL) {
		/* never relayed without the policy deciding */
		log_info("session id=%016llx rcpt to=<%s> status=451 policy "
		    "not loaded (store unreachable)", (unsigned long long)
		    t->sessid, rcpt);
		rcpt_reply(r, 451, "4.3.0", "policy not loaded, try again "
		    "later");
		return;
	}
	/* a certificate wanted and not cached: the store thread looks it
	 * up first (the loop asks no store); with the store away what is
	 * cached serves, however old */
	if (pipeline_wants_cert(ps, t->from, rcpt) &&
	    !certcache_cached(gw->cc, rcpt, up == 0)) {
		if (up != 0 && r->fetches < RCPT_FETCHES && (r->fetch =
		    storeq_lookup(gw->sq, rcpt, rcpt_fetched, r)) != NULL) {
			r->fetches++;
			return;
		}
	}
	if (pipeline_wants_cert(ps, t->from, rcpt) &&
	    !certcache_cached(gw->cc, rcpt, 1)) {
		/* away, or there and too slow to answer the lookups */
		log_info("session id=%016llx rcpt to=<%s> status=451 "
		    "certificate store %s", (unsigned long long)t->sessid,
		    rcpt, up == 0 ? "unreachable" : "too slow (no answer to "
		    "the lookup)");
		rcpt_reply(r, 451, "4.3.0", up == 0 ? "certificate store "
		    "unreachable, try again later" : "certificate store "
		    "slow, try again later");
		return;
	}
	pipeline_decide(&src, ps, t->from, rcpt, &d);
	if (d.nocert && !r->looked_up && (r->lookup = smimea_lookup(gw->sm,
	    rcpt, t->sessid, rcpt_looked_up, r)) != NULL) {
		log_info("session id=%016llx rcpt to=<%s> rule=%lld no "
		    "certificate: waiting for SMIMEA", (unsigned long long)
		    t->sessid, rcpt, (long long)d.rule_id);
		return;
	}
	if (d.verdict == PL_REJECT) {
		log_info("session id=%016llx rcpt to=<%s> policy=reject "
		    "rule=%lld status=%d %s", (unsigned long long)t->sessid,
		    rcpt, (long long)d.rule_id, d.reply.code, d.reply.text);
		r->done = 1;
		r->res = d.reply;
		event_active(t->defer, 0, 0);
		return;
	}
	if (d.actions != 0 || d.plain || d.verdict == PL_HOLD)
		log_info("session id=%016llx rcpt to=<%s> rule=%lld "
		    "actions=%s%s%s%s", (unsigned long long)t->sessid, rcpt,
		    (long long)d.rule_id,
		    policy_actions_str(d.actions, acts, sizeof(acts)),
		    d.plain ? " (no certificate: plain)" :
		    d.verdict == PL_HOLD ? " (no certificate: hold)" : "",
		    d.why[0] != '\0' ? " certificate refused: " : "", d.why);
	if (gw->inner->route != NULL)
		gw->inner->route(gw->inner_ctx, rcpt, key, sizeof(key));
	c = copy_for(t, &d, key);
	r->copy = c;
	if (c->hold) {          /* spooled at end of DATA, no next hop yet */
		rcpt_push(&c->defer, &c->ndefer, rcpt, params);
		r->done = 1;
		r->res = d.reply;
		event_active(t->defer, 0, 0);
		return;
	}
	if (c->txn == NULL && queue_hop_dead(gw->queue, c->key)) {
		/* the next hop just failed: spool this copy without trying */
		rcpt_push(&c->defer, &c->ndefer, rcpt, params);
		c->defer[c->ndefer - 1].reply = xstrdup("451 4.4.1 next hop "
		    "unreachable (failed in the last seconds)");
		if (c->why[0] == '\0')
			snprintf(c->why, sizeof(c->why), "%s",
			    c->defer[c->ndefer - 1].reply);
		r->done = 1;
		smtp_result_set(&r->res, 250, "2.1.5", "Ok (queued: next hop "
		    "unreachable)");
		event_active(t->defer, 0, 0);
		return;
	}
	if (c->txn == NULL) {
		c->txn = gw->inner->begin(gw->inner_ctx, t->from, t->params,
		    t->sessid);
		if (t->client != NULL && gw->inner->client != NULL)
			gw->inner->client(c->txn, t->client);
	}
	gw->inner->rcpt(c->txn, rcpt, params, inner_rcpt_cb, r);
}

/* The store thread's lookup of a RCPT is over: decide with the cache. */
static void
rcpt_fetched(void *arg, int ok)
{
	struct gw_rcpt *r = arg;

	(void)ok;               /* the cache says what was found */
	r->fetch = NULL;
	rcpt_decide(r);
}

/* The SMIMEA lookup of a RCPT is over: decide with what it found. */
static void
rcpt_looked_up(void *arg)
{
	struct gw_rcpt *r = arg;

	r->lookup = NULL;
	r->looked_up = 1;
	rcpt_decide(r);
}

/* RCPT TO: queued for its reply in order, then decided. */
static void
gw_rcpt(void *txn, const char *rcpt, const char *params, delivery_cb *cb,
    void *arg)
{
	struct gw_txn *t = txn;
	struct gw_rcpt *r = xcalloc(1, sizeof(*r));

	r->t = t;
	r->path = xstrdup(rcpt);
	r->params = xstrdup(params);
	r->cb = cb;
	r->arg = arg;
	if (t->tail != NULL)
		t->tail->next = r;
	else
		t->head = r;
	t->tail = r;
	rcpt_decide(r);
}

/* One delivery log line for a recipient of a copy. */
static void
copy_log(struct gw_copy *c, const char *rcpt, const char *reply,
    const char *status)
{
	struct gw_txn *t = c->t;
	struct delivery_attempt a;
	double now = mono_now(), delays[3];
	double relayed = c->t_relay > 0 ? c->t_relay : now;

	delays[0] = t->t_data - t->t_begin;
	delays[1] = relayed - t->t_data;
	delays[2] = now - relayed;
	memset(&a, 0, sizeof(a));
	a.qid = t->qid;
	a.rcpt = rcpt;
	a.msgid = t->msgid;
	a.delay = now - t->t_begin;
	a.delays = delays;
	a.relay = c->relay;
	a.tls = c->tls;
	a.smime = c->smime;
	a.reply = reply;
	a.status = status;
	delivery_log_attempt(&a);
}

/* The lines of the recipients a copy's DATA reply was for. */
static void
copy_log_rcpts(struct gw_copy *c, const struct smtp_result *res,
    const char *status)
{
	char reply[300];
	size_t i;

	snprintf(reply, sizeof(reply), "%d %s %s", res->code, res->enh,
	    res->text);
	for (i = 0; i < c->nrcpts; i++)
		copy_log(c, c->rcpts[i].addr, reply, status);
}

/* One copy is finished (relayed, spooled, refused or failed). */
static void
copy_done(struct gw_copy *c, const struct smtp_result *res)
{
	struct gw_txn *t = c->t;

	c->done = 1;
	c->res = *res;
	c->txn = NULL;
	msgbuf_free(c->out);
	c->out = NULL;
	if (--t->pending == 0)
		combine(t);
}

/* The body a copy sends: transformed, or the message as received. */
static struct msgbuf *
copy_body(struct gw_copy *c)
{
	return c->out != NULL ? c->out : c->t->body;
}

/* A spool write on behalf of a copy (cancelled when the session goes). */
struct gw_sreq {
	struct gw_copy	*copy;
	size_t		 delivered;	/* recipients the next hop took */
	int		 all;		/* those are spooled too */
};

/* The lines of a copy's recipients that went to the spool (not a held
 * copy: nothing was tried). */
static void
copy_log_spooled(struct gw_copy *c, int all)
{
	size_t i;

	if (c->hold && !c->respooled)
		return;
	for (i = 0; all && i < c->nrcpts; i++)
		copy_log(c, c->rcpts[i].addr, c->why, "deferred");
	for (i = 0; i < c->ndefer; i++)
		copy_log(c, c->defer[i].addr, c->defer[i].reply ?
		    c->defer[i].reply : c->why, "deferred");
}

/* A copy's spool write finished: its reply. */
static void
spooled(void *arg, int err)
{
	struct gw_sreq *q = arg;
	struct gw_copy *c = q->copy;
	struct smtp_result res;

	if (c == NULL) {        /* the session went away meanwhile */
		free(q);
		return;
	}
	c->sreq = NULL;
	if (err != 0) {
		log_warnx("session id=%016llx copy not spooled: %s; replying "
		    "452 4.3.1", (unsigned long long)c->t->sessid,
		    strerror(err));
		smtp_result_set(&res, 452, "4.3.1", "Insufficient system storage");
	} else {
		metrics_inc(M_MSG_QUEUED);
		log_info("session id=%016llx copy queued id=%s rcpts=%zu%s%s",
		    (unsigned long long)c->t->sessid, c->qid, c->ndefer +
		    (q->delivered ? 0 : c->nrcpts), c->hold ? " held" : "",
		    c->why[0] ? " reason=" : "");
		if (c->why[0] != '\0')
			log_info("session id=%016llx copy id=%s reason: %s",
			    (unsigned long long)c->t->sessid, c->qid, c->why);
		copy_log_spooled(c, q->all);
		if (q->delivered > 0)
			smtp_result_set(&res, 250, "2.0.0", "Ok: relayed to "
			    "%zu recipient(s), queued as %s for the others",
			    q->delivered, c->qid);
		else
			smtp_result_set(&res, 250, "2.0.0", "Ok: queued as "
			    "%s%s", c->qid, c->respooled ? " (held until it "
			    "can be transformed)" : c->hold ? " (held until "
			    "a certificate arrives)" : "");
	}
	free(q);
	copy_done(c, &res);
}

/*
 * Spool the copy for its deferred recipients (and, with `all`, those the
 * next hop had accepted before the transaction failed); the client's 250
 * waits for the fsync.  A held copy goes in untransformed, to be
 * transformed when its certificates arrive.
 */
static void
copy_spool(struct gw_copy *c, int all, size_t delivered)
{
	struct gw_txn *t = c->t;
	struct gateway *gw = t->gw;
	struct spool_entry e;
	struct gw_sreq *q;
	size_t i, n = 0;
	int64_t now = time(NULL);

	memset(&e, 0, sizeof(e));
	e.rcpts = xcalloc(c->nrcpts + c->ndefer + 1, sizeof(*e.rcpts));
	if (all)
		for (i = 0; i < c->nrcpts; i++)
			e.rcpts[n++] = c->rcpts[i];
	for (i = 0; i < c->ndefer; i++)
		e.rcpts[n++] = c->defer[i];
	e.nrcpts = n;
	e.created = now;
	e.sender = t->from;
	e.params = t->params;
	e.rule_id = c->rule_id;
	e.client = "";
	if (!t->qid_spooled) {  /* the first spooled copy keeps the ID */
		snprintf(e.id, sizeof(e.id), "%s", t->qid);
		e.keep_id = 1;
		t->qid_spooled = 1;
	}
	if (c->hold) {
		e.held = c->hold == HOLD_RETRY ? SPOOL_HOLD_RETRY :
		    SPOOL_HOLD_POLICY;
		e.actions = c->actions;
		e.last_error = c->why[0] ? c->why : NULL;
	} else {
		e.attempts = 1;         /* the in-line one */
		e.next_attempt = now + 50 + (int64_t)(new_session_id() % 21);
		e.last_error = c->why[0] ? c->why : NULL;
		/* what the in-line attempt's line said */
		e.smime = c->smime[0] != '\0' ? c->smime : (char *)"none";
	}
	q = xcalloc(1, sizeof(*q));
	q->copy = c;
	q->delivered = delivered;
	q->all = all;
	c->sreq = q;
	queue_submit(gw->queue, &e, c->hold ? t->body : copy_body(c),
	    spooled, q);
	snprintf(c->qid, sizeof(c->qid), "%s", e.id);
	free(e.rcpts);          /* the strings are c's; the spool copied */
}

/* The next hop answered a copy's DATA: done, or spool what it deferred. */
static void
inner_data_cb(void *arg, const struct smtp_result *res)
{
	struct gw_copy *c = arg;

	log_info("session id=%016llx copy rcpts=%zu rule=%lld status=%d %s %s",
	    (unsigned long long)c->t->sessid, c->nrcpts, (long long)c->rule_id,
	    res->code, res->enh, res->text);
	queue_hop_result(c->t->gw->queue, c->key, res);
	copy_note_hop(c, res);
	if (res->code >= 200 && res->code < 300) {
		metrics_inc(M_MSG_RELAYED);
		copy_log_rcpts(c, res, "sent");
	}
	else if (res->code >= 500)      /* the client gets it: no DSN */
		copy_log_rcpts(c, res, "rejected");
	c->txn = NULL;          /* over after the data callback */
	if (res->code >= 200 && res->code < 300 && c->ndefer > 0)
		copy_spool(c, 0, c->nrcpts);
	else if (res->code >= 400 && res->code < 500) {
		if (strstr(res->text, "after end of data") != NULL)
			log_warnx("session id=%016llx no reply after end of "
			    "data: the queued retry may deliver it twice",
			    (unsigned long long)c->t->sessid);
		snprintf(c->why, sizeof(c->why), "%d %s %.150s", res->code,
		    res->enh, res->text);
		copy_spool(c, 1, 0);
	} else
		copy_done(c, res);
}

/* Relay a (transformed) copy, or spool it if no recipient is open. */
static void
copy_send(struct gw_copy *c)
{
	struct gateway *gw = c->t->gw;

	c->t_relay = mono_now();
	if (c->nrcpts > 0) {
		gw->inner->data(c->txn, copy_body(c), inner_data_cb, c);
		return;
	}
	if (c->txn != NULL)
		gw->inner->abort(c->txn);
	c->txn = NULL;
	copy_spool(c, 0, 0);
}

/* A transform job for recipients still to be added (j->rcpts has room
 * for nrcpts). */
static struct gw_job *
job_new(struct gateway *gw, struct msgbuf *body, const char *sender,
    size_t nrcpts, unsigned actions, int64_t rule_id, uint64_t sessid)
{
	struct gw_job *j = xcalloc(1, sizeof(*j));

	j->gw = gw;
	j->body = body;
	j->sender = xstrdup(sender);
	j->host = xstrdup(gw->host);
	j->rcpts = xcalloc(nrcpts + 1, sizeof(*j->rcpts));
	j->actions = actions;
	j->rule_id = rule_id;
	j->sessid = sessid;
	j->harvest = harvest_new();
	return j;
}

/* Worker thread: the transform and its output body. */
static void
job_run(void *arg, void *tctx)
{
	struct gw_job *j = arg;
	/* harvested signers go back with the job: this thread only reads */
	struct certsrc src = { j->gw->cc, tctx, j->harvest };
	struct pl_copy pc;

	pc.sender = j->sender;
	pc.rcpts = (const char *const *)j->rcpts;
	pc.nrcpts = j->nrcpts;
	pc.actions = j->actions;
	pc.rule_id = j->rule_id;
	pc.host = j->host;
	if (tctx == NULL) {
		j->rc = -1;
		smtp_result_set(&j->fail, 451, "4.3.0", "Temporary local problem, "
		    "try again later");
		snprintf(j->res.err, sizeof(j->res.err), "worker has no "
		    "database connection");
		return;
	}
	j->rc = pipeline_transform_body(&src, &pc, j->body, j->gw->tmpdir,
	    &j->out, &j->res, &j->fail);
}

/* Free a job and everything it owns. */
static void
job_free(struct gw_job *j)
{
	size_t i;

	msgbuf_free(j->body);
	msgbuf_free(j->out);
	smime_msg_res_free(&j->res);
	for (i = 0; i < j->nrcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->sender);
	free(j->host);
	harvest_free(j->harvest);
	free(j);
}

/*
 * Event loop: hand the signers the job harvested to the store thread (it
 * writes them, or keeps them while the store is away); the copy's log line
 * says "harvested" when there were some.
 */
static void
job_harvest(struct gw_job *j)
{
	char **urls = NULL;
	size_t n = 0;

	if (j->gw->cf != NULL && j->gw->cfg->revocation_fetch)
		harvest_urls(j->harvest, &urls, &n);
	if (harvest_count(j->harvest) > 0)
		j->res.harvested = 1;
	storeq_harvest(j->gw->sq, j->harvest);
	j->harvest = harvest_new();
	/* new signers: their CRLs (and their CAs') for the next message */
	if (n > 0)
		crlfetch_refresh(j->gw->cf, urls, n);
	crlfetch_urls_free(urls, n);
}

static void job_done(void *);
static void job_synced(void *, int);

/* Held no longer (its fetches are over, or revocation_wait ran out):
 * verify again on a worker, with what was fetched, for the verdict. */
static void
job_resume(struct gw_job *j, const char *how)
{
	struct gateway *gw = j->gw;
	struct timeval now, d;

	crlfetch_wait_cancel(j->wait);
	j->wait = NULL;
	event_free(j->wait_ev);
	j->wait_ev = NULL;
	gettimeofday(&now, NULL);
	timersub(&now, &j->held_at, &d);
	log_info("session id=%016llx revocation fetch %s after %lld ms: "
	    "verifying again", (unsigned long long)j->sessid, how,
	    (long long)d.tv_sec * 1000 + d.tv_usec / 1000);
	if (j->copy == NULL) {  /* the transaction went away meanwhile */
		LIST_REMOVE(j, hold_entry);
		job_free(j);
		return;
	}
	/* what was fetched, into the cache first (still held meanwhile) */
	j->sync = storeq_sync(gw->sq, 0, job_synced, j);
}

/* The cache has what the fetches stored: run the job again. */
static void
job_synced(void *arg, int ok)
{
	struct gw_job *j = arg;
	struct gateway *gw = j->gw;

	(void)ok;               /* the store away: verify with the cache */
	j->sync = NULL;
	LIST_REMOVE(j, hold_entry);
	if (j->copy == NULL) {
		job_free(j);
		return;
	}
	j->rerun = 1;
	j->rc = 0;
	smime_msg_res_free(&j->res);
	memset(&j->res, 0, sizeof(j->res));
	msgbuf_free(j->out);
	j->out = NULL;
	harvest_free(j->harvest);
	j->harvest = harvest_new();
	workers_submit(gw->workers, job_run, job_done, j);
}

/* crlfetch_wait: every fetch the job waited on is over. */
static void
job_fetched(void *arg)
{
	struct gw_job *j = arg;

	j->wait = NULL;         /* crlfetch released it */
	job_resume(j, "done");
}

/* revocation_wait ran out first. */
static void
job_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	job_resume(arg, "unfinished");
}

/* Store thread: the CAs of a chain, stored when they chain to an anchor. */
static int
cas_run(void *arg, struct store *st)
{
	if (st == NULL)
		return -1;
	harvest_cas(st, arg);
	return 0;
}

/* Loop: the CAs are written (or not: they come again with the next
 * message that needs them). */
static void
cas_done(void *arg, int ok)
{
	(void)ok;
	sk_X509_pop_free(arg, X509_free);
}

/* The CAs of the undecided links, stored when they chain to an anchor,
 * so that the CRLs they signed can be checked when they come. */
static void
job_store_cas(struct gw_job *j)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	struct certcache *cc = j->gw->cc;
	time_t now = time(NULL);
	size_t i;
	X509 *x;
	int fresh = 0, k;

	for (i = 0; sk != NULL && i < j->res.nundecided; i++) {
		X509_add_cert(sk, j->res.undecided[i].cert,
		    X509_ADD_FLAG_UP_REF);
		if (j->res.undecided[i].issuer != NULL)
			X509_add_cert(sk, j->res.undecided[i].issuer,
			    X509_ADD_FLAG_UP_REF);
	}
	/* only CAs are stored: is one of them not offered lately? */
	for (k = 0; k < sk_X509_num(sk); k++)
		if (X509_check_ca(x = sk_X509_value(sk, k)) >= 1 &&
		    !certcache_ca_offered(cc, x, now))
			fresh = 1;
	if (sk == NULL || !fresh) {
		sk_X509_pop_free(sk, X509_free);
		return;
	}
	log_info("session id=%016llx the CAs of the signer's chain offered to "
	    "the store (again in %d s at the earliest)",
	    (unsigned long long)j->sessid, CERTCACHE_CA_RETRY);
	if (storeq_call(j->gw->sq, cas_run, cas_done, sk) == -1)
		sk_X509_pop_free(sk, X509_free);
}

/*
 * A verdict that waits on revocation (a link no CRL or OCSP answer
 * decided): fetch what could decide it and verify again when that is
 * over, or after revocation_wait; once per job.  1 when held.
 */
static int
job_hold(struct gw_job *j)
{
	struct gateway *gw = j->gw;
	struct timeval tv = { gw->cfg->revocation_wait, 0 };

	if (j->rerun || j->copy == NULL || j->rc != 0 ||
	    j->res.nundecided == 0 || gw->cf == NULL ||
	    !gw->cfg->revocation_fetch || gw->cfg->revocation_wait <= 0 ||
	    gw->cfg->revocation == CONFIG_REV_OFF ||
	    (j->res.outcome != SMIME_PASS && j->res.outcome != SMIME_POLICY &&
	    j->res.outcome != SMIME_TEMPERROR))
		return 0;
	job_store_cas(j);
	if ((j->wait = crlfetch_wait(gw->cf, j->res.undecided,
	    j->res.nundecided, job_fetched, j)) == NULL)
		return 0;
	if ((j->wait_ev = evtimer_new(gw->base, job_wait_cb, j)) == NULL ||
	    evtimer_add(j->wait_ev, &tv) == -1)
		fatalx("evtimer_new");
	gettimeofday(&j->held_at, NULL);
	LIST_INSERT_HEAD(&gw->held, j, hold_entry);
	log_info("session id=%016llx held up to %d s while the revocation "
	    "of %zu certificate(s) is fetched", (unsigned long long)j->sessid,
	    gw->cfg->revocation_wait, j->res.nundecided);
	return 1;
}

/* Event loop: hand the transformed copy to the relay client. */
static void
job_done(void *arg)
{
	struct gw_job *j = arg;
	struct gw_copy *c = j->copy;
	struct gateway *gw = j->gw;
	char acts[64];

	job_harvest(j);
	if (job_hold(j))
		return;
	if (c == NULL) {        /* the transaction went away */
		job_free(j);
		return;
	}
	c->job = NULL;
	policy_actions_str(j->actions, acts, sizeof(acts));
	if (j->rc == -1) {
		log_warnx("session id=%016llx copy rcpts=%zu actions=%s: %s; "
		    "replying %d %s", (unsigned long long)j->sessid, j->nrcpts,
		    acts, j->res.err, j->fail.code, j->fail.enh);
		if (c->txn != NULL)
			gw->inner->abort(c->txn);
		c->xfail = j->fail.code >= 400 && j->fail.code < 500;
		copy_done(c, &j->fail);
		job_free(j);
		return;
	}
	log_info("session id=%016llx copy rcpts=%zu actions=%s%s%s%s%s%s%s%s",
	    (unsigned long long)j->sessid, j->nrcpts, acts,
	    j->res.gcm ? " cipher=aes256-gcm" : "",
	    j->res.verified ? " smime=" : "",
	    j->res.verified ? cms_outcome_name(j->res.outcome) : "",
	    j->res.identity[0] ? " signer=" : "", j->res.identity,
	    j->res.harvested ? " harvested" : "",
	    j->out == NULL ? " unchanged" : "");
	if (j->res.err[0] != '\0')
		log_info("session id=%016llx copy note: %s",
		    (unsigned long long)j->sessid, j->res.err);
	if (j->out != NULL) {
		c->out = j->out;
		j->out = NULL;
		delivery_smime_str(j->actions, j->res.verified ?
		    cms_outcome_name(j->res.outcome) : NULL, c->smime,
		    sizeof(c->smime));
	}
	job_free(j);
	copy_send(c);
}

/* End of DATA: send plain copies, transform the others on the workers. */
static void
gw_data(void *txn, struct msgbuf *body, delivery_cb *cb, void *arg)
{
	struct gw_txn *t = txn;
	struct gateway *gw = t->gw;
	struct gw_copy *c;
	struct gw_job *j;
	size_t i, k;

	t->data_cb = cb;
	t->data_arg = arg;
	t->body = msgbuf_ref(body);
	t->in_data = 1;
	t->t_data = mono_now();
	delivery_message_id(body, t->msgid, sizeof(t->msgid));
	for (i = 0; i < t->ncopies; i++) {
		c = t->copies[i];
		if (c->nrcpts == 0 && c->ndefer == 0) {
			/* every recipient refused */
			if (c->txn != NULL)
				gw->inner->abort(c->txn);
			c->txn = NULL;
			c->done = -1;
			continue;
		}
		t->pending++;
		if (c->hold) {
			copy_spool(c, 0, 0);
			continue;
		}
		if (c->actions == 0) {
			copy_send(c);
			continue;
		}
		j = job_new(gw, msgbuf_ref(body), t->from, c->nrcpts +
		    c->ndefer, c->actions, c->rule_id, t->sessid);
		j->copy = c;
		/* every recipient of the copy, the deferred ones too: they
		 * get the same envelope later from the spool */
		for (k = 0; k < c->nrcpts; k++)
			j->rcpts[j->nrcpts++] = xstrdup(c->rcpts[k].addr);
		for (k = 0; k < c->ndefer; k++)
			j->rcpts[j->nrcpts++] = xstrdup(c->defer[k].addr);
		c->job = j;
		workers_submit(gw->workers, job_run, job_done, j);
	}
	if (t->pending == 0)    /* cannot happen: the session saw a 250 */
		event_active(t->defer, 0, 0);
}

/* The 250 for several copies: our ID, and those of spooled copies that
 * needed one of their own. */
static void
copies_text(struct gw_txn *t, size_t n, struct smtp_result *res)
{
	size_t i, off;

	off = (size_t)snprintf(res->text, sizeof(res->text), "Ok: queued as "
	    "%s (%zu copies relayed or queued", t->qid, n);
	for (i = 0; i < t->ncopies && off < sizeof(res->text); i++)
		if (t->copies[i]->done == 1 && t->copies[i]->qid[0] != '\0' &&
		    strcmp(t->copies[i]->qid, t->qid) != 0)
			off += (size_t)snprintf(res->text + off,
			    sizeof(res->text) - off, ", also %s",
			    t->copies[i]->qid);
	if (off < sizeof(res->text))
		snprintf(res->text + off, sizeof(res->text) - off, ")");
}

/*
 * Some copies went and others could not be transformed for now (4xx: no
 * signing key yet, the key process away): a 4xx for the message would make
 * the client send the delivered copies again.  The failed ones are spooled
 * untransformed and held with their actions instead, transformed when the
 * store changes or the held copies are checked again (release_check), so
 * the message can be taken with 250.  1 when some were handed to the
 * spool (each comes back through copy_done).
 */
static int
hold_failed(struct gw_txn *t)
{
	struct gw_copy *c;
	size_t i, n = 0;

	for (i = 0; i < t->ncopies; i++) {
		c = t->copies[i];
		if (c->done != 1 || !c->xfail || c->respooled ||
		    c->nrcpts == 0)
			continue;
		c->respooled = 1;
		c->done = 0;
		c->hold = HOLD_RETRY;
		snprintf(c->why, sizeof(c->why), "%d %s %.160s", c->res.code,
		    c->res.enh, c->res.text);
		t->pending++;
		n++;
		log_info("session id=%016llx copy rcpts=%zu rule=%lld: held "
		    "untransformed (%s) since other copies went",
		    (unsigned long long)t->sessid, c->nrcpts,
		    (long long)c->rule_id, c->why);
		copy_spool(c, 1, 0);
	}
	return n > 0;
}

/*
 * Every copy is done: one truthful reply.  All relayed: 250.  Nothing
 * relayed: the first refusal, temporary ones first (nothing was delivered,
 * so a retry duplicates nothing).  Some relayed: a permanent refusal is
 * reported as such (the client bounces; the delivered copies stay
 * delivered), else 451 and the next attempt may duplicate the delivered
 * copies; the durable spool replaces this with queueing.
 */
static void
combine(struct gw_txn *t)
{
	struct smtp_result res, *tmp = NULL, *perm = NULL, *ok = NULL;
	size_t i, nok = 0, n = 0;
	struct gw_copy *c;

	for (i = 0; i < t->ncopies; i++) {
		c = t->copies[i];
		if (c->done != 1)
			continue;
		n++;
		if (c->res.code >= 200 && c->res.code < 300) {
			nok++;
			ok = ok ? ok : &c->res;
		} else if (c->res.code >= 500)
			perm = perm ? perm : &c->res;
		else
			tmp = tmp ? tmp : &c->res;
	}
	if (nok > 0 && nok < n && hold_failed(t))
		return;         /* combined again once they are spooled */
	if (n == 0)
		smtp_result_set(&res, 554, "5.5.1", "No valid recipients");
	else if (nok == n && n == 1) {
		res = *ok;
		/* the spool's words carry the ID already; the next hop's
		 * reply (its own ID) is in the delivery log */
		if (strstr(res.text, t->qid) == NULL)
			snprintf(res.text, sizeof(res.text), "Ok: queued as %s",
			    t->qid);
	} else if (nok == n) {
		res = *ok;
		copies_text(t, n, &res);
	}
	else if (nok == 0)
		res = tmp ? *tmp : *perm;
	else {
		res = perm ? *perm : *tmp;
		snprintf(res.text, sizeof(res.text), "%.150s (%zu of %zu copies "
		    "were delivered)", (perm ? perm : tmp)->text, nok, n);
		log_warnx("session id=%016llx partial delivery: %zu of %zu "
		    "copies relayed, replying %d", (unsigned long long)t->sessid,
		    nok, n, res.code);
	}
	t->busy++;
	t->data_cb(t->data_arg, &res);
	t->busy--;
	t->dead = 1;            /* over after the data callback */
	if (t->busy == 0)
		txn_free(t);
}

/* The session dropped the transaction: cancel what is in flight. */
static void
gw_abort(void *txn)
{
	struct gw_txn *t = txn;
	struct gw_rcpt *r;
	struct gw_copy *c;
	size_t i;

	for (r = t->head; r != NULL; r = r->next) {
		smimea_cancel(r->lookup);
		r->lookup = NULL;
		storeq_cancel(r->fetch);
		r->fetch = NULL;
	}
	for (i = 0; i < t->ncopies; i++) {
		c = t->copies[i];
		if (c->job != NULL) {
			c->job->copy = NULL;    /* its done() frees it */
			c->job = NULL;
		}
		if (c->sreq != NULL) {
			c->sreq->copy = NULL;   /* spooled() frees it */
			c->sreq = NULL;
		}
		if (c->txn != NULL && !c->done)
			t->gw->inner->abort(c->txn);
		c->txn = NULL;
	}
	t->dead = 1;
	if (t->busy == 0)
		txn_free(t);
}

/* Free a transaction, its RCPTs and its copies. */
static void
txn_free(struct gw_txn *t)
{
	struct gw_rcpt *r, *next;
	struct gw_copy *c;
	size_t i;

	for (r = t->head; r != NULL; r = next) {
		next = r->next;
		smimea_cancel(r->lookup);
		storeq_cancel(r->fetch);
		free(r->path);
		free(r->params);
		free(r);
	}
	for (i = 0; i < t->ncopies; i++) {
		c = t->copies[i];
		rcpts_free(c->rcpts, c->nrcpts);
		rcpts_free(c->defer, c->ndefer);
		msgbuf_free(c->out);
		free(c);
	}
	free(t->copies);
	event_free(t->defer);
	msgbuf_free(t->body);
	free(t->from);
	free(t->params);
	free(t->client);
	free(t);
}

const struct delivery_ops gateway_delivery_ops = {
	gw_begin, gw_rcpt, gw_data, gw_abort, NULL, gw_client
};

/* A held copy whose recipients now all have certificates: transformed on
 * a worker (job_run), then queued instead of the held one. */
static void
release_done(void *arg)
{
	struct gw_job *j = arg;

	job_harvest(j);
	if (j->rc == -1) {
		log_warnx("queue id=%s: release failed: %s", j->qid,
		    j->res.err[0] ? j->res.err : "cannot read or write it");
		queue_replace(j->gw->queue, j->qid, NULL);
	} else
		queue_replace(j->gw->queue, j->qid, j->out ? j->out : j->body);
	job_free(j);
}

static int release_check(void *, const struct spool_entry *);

/* A held copy's address is in the cache: check the held copies again
 * once the last lookup of the pass is over. */
static void
release_fetched(void *arg, int ok)
{
	struct gateway *gw = arg;

	if (ok == 0)
		gw->recheck = 1;
	if (--gw->relookups == 0 && gw->recheck) {
		gw->recheck = 0;
		queue_check_held(gw->queue, release_check, gw);
	}
}

/* A held copy: transform it if every pending recipient has a certificate
 * (in the cache: addresses not in it are looked up by the store thread,
 * and the held copies checked again after). */
static int
release_check(void *arg, const struct spool_entry *e)
{
	struct gateway *gw = arg;
	struct certsrc src = { gw->cc, NULL, NULL };
	struct gw_job *j;
	struct msgbuf *body;
	size_t i;
	X509 *x;

	for (i = 0; i < e->nrcpts; i++) {
		/* a copy held for its certificates waits for them; one held
		 * because its transform failed (hold_failed) is tried */
		if (e->rcpts[i].state != SPOOL_RCPT_PENDING ||
		    !(e->actions & POLICY_ENCRYPT))
			continue;
		if (!certcache_cached(gw->cc, e->rcpts[i].addr, 1)) {
			if (storeq_up(gw->sq) == 1 &&
			    gw->relookups < RELEASE_LOOKUPS &&
			    storeq_lookup(gw->sq, e->rcpts[i].addr,
			    release_fetched, gw) != NULL)
				gw->relookups++;
			return 0;
		}
		if ((x = certcache_cert_for(&src, e->rcpts[i].addr, NULL)) ==
		    NULL)
			return 0;
		X509_free(x);
	}
	if ((body = spool_body(gw->spool, e->id)) == NULL)
		return 0;
	j = job_new(gw, body, e->sender, e->nrcpts, e->actions, e->rule_id,
	    0);
	snprintf(j->qid, sizeof(j->qid), "%s", e->id);
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == SPOOL_RCPT_PENDING)
			j->rcpts[j->nrcpts++] = xstrdup(e->rcpts[i].addr);
	workers_submit(gw->workers, job_run, release_done, j);
	return 1;
}

/* Now and then: the held copies again, for what does not change the
 * store (the key process back after a restart). */
static void
held_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	(void)fd;
	(void)what;
	queue_check_held(gw->queue, release_check, gw);
}

/* The store thread reloaded rules, certificates and CRLs (smrelayctl,
 * another node, a fetch of ours, SIGHUP): offer the held copies. */
static void
gw_reloaded(void *arg)
{
	struct gateway *gw = arg;

	log_info("store changed: reloaded %zu rule(s) and the certificate "
	    "cache", policy_set_count(certcache_policy(gw->cc)));
	queue_check_held(gw->queue, release_check, gw);
}

/* What the refresh reads from the store, on its thread. */
struct refresh_job {
	struct gateway	*gw;
	char		**urls;
	size_t		 n;
};

/* Store thread: every CRL distribution point the store knows. */
static int
refresh_run(void *arg, struct store *st)
{
	struct refresh_job *rj = arg;

	if (st == NULL)
		return -1;
	rj->urls = crlfetch_known_urls(st, &rj->n);
	return 0;
}

/* Loop: fetch those that are due. */
static void
refresh_done(void *arg, int ok)
{
	struct refresh_job *rj = arg;

	/* the store thread says which are due; then "N of M due" */
	if (ok == 0)
		crlfetch_refresh(rj->gw->cf, rj->urls, rj->n);
	crlfetch_urls_free(rj->urls, rj->n);
	free(rj);
}

/* Every CRL distribution point the store knows, fetched when due. */
static void
refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	struct timeval tv = { CRLFETCH_INTERVAL, 0 };
	struct refresh_job *rj;

	(void)fd;
	(void)what;
	if (gw->cfg->revocation_fetch && gw->cfg->revocation !=
	    CONFIG_REV_OFF) {
		rj = xcalloc(1, sizeof(*rj));
		rj->gw = gw;
		if (storeq_call(gw->sq, refresh_run, refresh_done, rj) == -1)
			free(rj);
		crlfetch_ocsp_refresh(gw->cf);
	}
	evtimer_add(gw->refresh_ev, &tv);
}

/* CRL fetching on this loop (revocation_fetch): at once, then hourly. */
static void
crl_fetch_start(struct gateway *gw)
{
	struct timeval now = { 0, 0 };

	if ((gw->dns = evdns_base_new(gw->base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL) {
		log_warnx("crl fetch: no resolver (evdns_base_new failed): "
		    "CRLs only by smrelayctl crl import");
		return;
	}
	gw->cf = crlfetch_new(gw->base, gw->dns, NULL, gw->sq, gw->cfg);
	if ((gw->refresh_ev = evtimer_new(gw->base, refresh_cb, gw)) ==
	    NULL || evtimer_add(gw->refresh_ev, &now) == -1)
		fatalx("evtimer_new");
}

/* Wrap the relay client with smrelayd's subsystems; start polling the
 * store for changes and offer the held copies once. */
struct gateway *
gateway_new(struct event_base *base, const struct delivery_ops *inner,
    void *inner_ctx, const struct config *cfg, const char *tmpdir,
    const struct gateway_parts *parts)
{
	struct gateway *gw = xcalloc(1, sizeof(*gw));

	gw->base = base;
	gw->inner = inner;
	gw->inner_ctx = inner_ctx;
	gw->cfg = cfg;
	gw->tmpdir = xstrdup(tmpdir);
	gw->host = cfg->hostname;
	gw->cc = parts->cc;
	gw->spool = parts->spool;
	gw->queue = parts->queue;
	gw->workers = parts->workers;
	LIST_INIT(&gw->held);
	gw->sq = storeq_new(base, gw->cc, parts->database, parts->data_dir, gw_reloaded, gw);
	gw->sm = smimea_new(base, gw->cc, gw->sq, cfg);
	crl_fetch_start(gw);
	log_info("gateway: %zu policy rule(s), %d worker thread(s), %zu "
	    "queued message(s)", policy_set_count(certcache_policy(gw->cc)),
	    workers_count(gw->workers), queue_count(gw->queue));
	queue_check_held(gw->queue, release_check, gw);
	if ((gw->held_ev = event_new(base, -1, EV_PERSIST, held_tick, gw)) ==
	    NULL || event_add(gw->held_ev, &(struct timeval){ HELD_CHECK,
	    0 }) == -1)
		fatalx("event_new");
	return gw;
}

/* SIGHUP: the new config, and rules and certificates reloaded now. */
void
gateway_reconfigure(struct gateway *gw, const struct config *cfg)
{
	gw->cfg = cfg;
	gw->host = cfg->hostname;
	smimea_reconfigure(gw->sm, cfg);
	certcache_set_revocation(gw->cc, cfg->revocation);
	/* rules and certificates reloaded by the store thread; failures
	 * and the reload are logged there */
	storeq_sync(gw->sq, 1, NULL, NULL);
}

/* Reload everything from the store, off the loop. */
void
gateway_reload(struct gateway *gw)
{
	storeq_sync(gw->sq, 1, NULL, NULL);
}

/* /healthz: whether the store is there, or the cache serves. */
int
gateway_health(struct gateway *gw, char *why, size_t len)
{
	return storeq_health(gw->sq, why, len);
}

/* Free the gateway (not the subsystems it was given). */
void
gateway_free(struct gateway *gw)
{
	struct gw_job *j;

	if (gw == NULL)
		return;
	/* no held job hears of the fetches any more: the store thread's
	 * last answers end fetches (they may wake waits) */
	LIST_FOREACH(j, &gw->held, hold_entry) {
		crlfetch_wait_cancel(j->wait);
		j->wait = NULL;
	}
	/* first: its last answers are dropped, and no job runs any more */
	storeq_free(gw->sq);
	while ((j = LIST_FIRST(&gw->held)) != NULL) {
		LIST_REMOVE(j, hold_entry);
		crlfetch_wait_cancel(j->wait);
		if (j->wait_ev != NULL)
			event_free(j->wait_ev);
		if (j->copy != NULL)
			j->copy->job = NULL;
		job_free(j);
	}
	if (gw->refresh_ev != NULL)
		event_free(gw->refresh_ev);
	if (gw->held_ev != NULL)
		event_free(gw->held_ev);
	crlfetch_free(gw->cf);
	smimea_free(gw->sm);
	if (gw->dns != NULL)
		evdns_base_free(gw->dns, 0);
	free(gw->tmpdir);
	free(gw);
}
