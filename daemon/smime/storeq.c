/* storeq.c: the store thread of a network process (see storeq.h): a
 * workers.h pool of one thread whose context is its connection, reopened
 * after the store was found away; every answer comes back on the loop,
 * where the reachable/away state lives. */
#include "autoconfig.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "certcache.h"
#include "daemon/base/base.h"
#include "harvest.h"
#include "lib/lib.h"
#include "storeq.h"
#include "store/store.h"

enum sq_kind { SQ_RELOAD, SQ_LOOKUP, SQ_HARVEST, SQ_CALL };

/* Someone waiting on a job (reload, lookup). */
struct storeq_wait {
	storeq_cb		*cb;		/* NULL: cancelled */
	void			*arg;
	struct event		*timer;		/* lookup: STOREQ_LOOKUP_WAIT */
	struct storeq_wait	*next;
};

/* One job for the thread; its results, read on the loop. */
struct sq_job {
	struct storeq		*sq;
	enum sq_kind		 kind;
	int			 force;		/* reload */
	char			*email;		/* lookup */
	struct harvest		*h;		/* harvest: what failed stays */
	storeq_run_fn		*run;		/* call */
	storeq_cb		*done;
	void			*job;
	struct storeq_wait	*waits;		/* called when over */
	int			 rc;
	int			 away;		/* the store could not be
						 * reached */
	int64_t			 id;		/* harvest: last row */
	size_t			 dropped;	/* harvest: failed too often */
	struct certcache_load	*ld;		/* reload: to install */
	double			 secs;		/* the thread took this long */
	char			 err[256];
};

/* The thread's context. */
struct sq_thread {
	char		*database, *data_dir;
	struct store	*st;		/* NULL: open at the next job */
	int		 listening;	/* st LISTENs (the listener) */
	struct certcache *cc;
};

struct storeq {
	struct event_base	*base;
	struct certcache	*cc;
	struct workers		*w;
	struct sq_thread	 t;
	struct workers		*lw;		/* PostgreSQL: the listener */
	struct sq_thread	 lt;		/* its connection */
	struct event		*tick;
	storeq_reloaded_fn	*reloaded;
	void			*arg;
	size_t			 njobs;		/* queued or running */
	int			 reloading;	/* a reload is queued */
	int			 again, force;	/* reload asked meanwhile */
	struct storeq_wait	*sync_waits;	/* for the next reload */
	int			 up;		/* 1, 0 away, -1 not known */
	time_t			 away_since;
	char			 away_err[256];	/* the last reason */
	time_t			 away_said;	/* its last line */
	int			 backoff;	/* seconds, while away */
	struct harvest		*pending;	/* to write when back */
	int			 writing;	/* a harvest job is queued */
	time_t			 stale_since;	/* reloads fail, store there */
	time_t			 stale_said;	/* last line about it */
	char			 stale_err[256];
	double			 slow_at;	/* last "store slow" line */
	size_t			 slow_n;	/* slow jobs since */
	double			 slow_max;	/* the longest of them */
	int			 stopping;
};

static void sq_submit(struct storeq *, struct sq_job *);
static void sq_retry(struct storeq *);

/* The thread's connection, opened when there is none. */
static struct store *
sq_conn(struct sq_thread *t, char *err, size_t errlen)
{
	if (t->st == NULL)
		t->st = store_open_db(t->database, t->data_dir, err, errlen);
	return t->st;
}

/* After a failure: whether the store is away (then the connection is
 * dropped, and the next job opens a new one). */
static int
sq_away(struct sq_thread *t, char *err, size_t errlen)
{
	if (t->st != NULL && store_changes(t->st) >= 0)
		return 0;
	if (t->st != NULL) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s", store_errmsg(t->st));
		store_close(t->st);
		t->st = NULL;
		t->listening = 0;
	}
	return 1;
}

/* Thread start: the context (the connection is opened by the first job,
 * so that a store away at start does not stop the process). */
static void *
sq_thread_init(void *arg)
{
	return arg;
}

/* Thread end: close the connection. */
static void
sq_thread_fini(void *tctx)
{
	struct sq_thread *t = tctx;

	if (t->st != NULL)
		store_close(t->st);
	t->st = NULL;
	t->listening = 0;
}

/* The store thread: one job. */
static void
sq_run(void *arg, void *tctx)
{
	struct sq_job *j = arg;
	struct sq_thread *t = tctx;
	struct certsrc src = { t->cc, NULL, NULL };
	struct store *st;
	double t0 = mono_now();
	int v;

	if ((st = sq_conn(t, j->err, sizeof(j->err))) == NULL &&
	    j->kind != SQ_CALL) {
		j->rc = -1;
		j->away = 1;
		j->secs = mono_now() - t0;
		return;
	}
	src.st = st;
	switch (j->kind) {
	case SQ_RELOAD:
		j->rc = certcache_load(t->cc, st, j->force, &j->ld, j->err,
		    sizeof(j->err));
		break;
	case SQ_LOOKUP:
		j->rc = certcache_fill(&src, j->email);
		break;
	case SQ_HARVEST:
		/* never write into a schema this program does not know */
		if ((v = store_schema_version(st)) > STORE_SCHEMA_VERSION) {
			snprintf(j->err, sizeof(j->err), "store schema version "
			    "%d is newer than this program knows (%d)", v,
			    STORE_SCHEMA_VERSION);
			j->rc = -1;
			break;
		}
		j->id = harvest_flush_keep(j->h, t->cc, st, STOREQ_TRIES,
		    &j->dropped);
		j->rc = harvest_count(j->h) > 0 ? -1 : 0;
		break;
	case SQ_CALL:
		j->rc = j->run(j->job, st);
		break;
	}
	if (j->rc == -1)
		j->away = sq_away(t, j->err, sizeof(j->err));
	j->secs = mono_now() - t0;
}

/* Call the waits of a job (unless stopping) and free them. */
static void
sq_waits_done(struct storeq *sq, struct storeq_wait *w, int ok)
{
	struct storeq_wait *next;

	for (; w != NULL; w = next) {
		next = w->next;
		if (w->timer != NULL)
			event_free(w->timer);
		if (w->cb != NULL && !sq->stopping)
			w->cb(w->arg, ok);
		free(w);
	}
}

/* Schedule the next change check. */
static void
sq_tick_in(struct storeq *sq, int secs)
{
	struct timeval tv = { secs, 0 };

	if (!sq->stopping)
		evtimer_add(sq->tick, &tv);
}

/* Write the harvested signers that wait, unless a write is queued. */
static void
sq_retry(struct storeq *sq)
{
	struct sq_job *j;

	/* (not while reloads fail with the store there: a schema newer
	 * than ours; the next reload that works writes them) */
	if (sq->writing || sq->stopping || sq->stale_since != 0 ||
	    harvest_count(sq->pending) == 0)
		return;
	j = xcalloc(1, sizeof(*j));
	j->kind = SQ_HARVEST;
	j->h = sq->pending;
	sq->pending = harvest_new();
	metrics_set(M_STORE_PENDING, 0);
	sq->writing = 1;
	sq_submit(sq, j);
}

/* Reachable (again): say so once, and write what waited. */
static void
sq_set_up(struct storeq *sq)
{
	if (sq->up == 1)
		return;
	if (sq->up == 0)
		log_info("store reachable again after %lld s: %zu harvested "
		    "certificate(s) waiting to be written",
		    (long long)(time(NULL) - sq->away_since),
		    harvest_count(sq->pending));
	sq->up = 1;
	sq->backoff = 0;
	metrics_set(M_STORE_UP, 1);
	sq_retry(sq);
}

/* Away: say so once. */
static void
sq_set_away(struct storeq *sq, const char *err)
{
	char since[64];
	struct tm tm;
	time_t now = time(NULL);

	if (sq->up == 0) {
		/* still away, for another reason now (the server is back
		 * but refuses us: a newer schema, a password changed) */
		if (strcmp(err, sq->away_err) != 0 &&
		    now - sq->away_said >= STOREQ_SLOW_EVERY) {
			log_warnx("store still unreachable: %s", err);
			sq->away_said = now;
		}
		snprintf(sq->away_err, sizeof(sq->away_err), "%s", err);
		return;
	}
	snprintf(sq->away_err, sizeof(sq->away_err), "%s", err);
	sq->away_said = now;
	sq->up = 0;
	sq->away_since = now;
	metrics_set(M_STORE_UP, 0);
	gmtime_r(&sq->away_since, &tm);
	strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (certcache_loaded(sq->cc))
		log_warnx("store unreachable: serving cached policy and "
		    "certificates since %s (%s)", since, err);
	else
		log_warnx("store unreachable since %s, no policy loaded yet: "
		    "recipients get 451 4.3.0 until it is back (%s)", since,
		    err);
}

/* Keep harvested signers that could not be written, the newest first. */
static void
sq_keep(struct storeq *sq, struct harvest *h)
{
	size_t dropped;

	if ((dropped = harvest_move(sq->pending, h, STOREQ_MAX_PENDING)) >
	    0) {
		log_warnx("harvest: %zu certificate(s) dropped unwritten "
		    "(more than %d waiting for the store)", dropped,
		    STOREQ_MAX_PENDING);
		metrics_add(M_STORE_DROPPED, dropped);
	}
	metrics_set(M_STORE_PENDING, harvest_count(sq->pending));
}

/* The store answers but a reload failed (a schema newer than ours, a
 * query that timed out): the cache stays; said when the reason changes,
 * else every STOREQ_STALE_EVERY seconds (a change check comes every
 * second). */
static void
sq_stale(struct storeq *sq, const char *err)
{
	time_t now = time(NULL);

	if (sq->stale_since == 0)
		sq->stale_since = now;
	if (strcmp(err, sq->stale_err) == 0 &&
	    now - sq->stale_said < STOREQ_STALE_EVERY)
		return;
	snprintf(sq->stale_err, sizeof(sq->stale_err), "%s", err);
	sq->stale_said = now;
	log_warnx("policy/certificates not reloaded%s: %s",
	    certcache_loaded(sq->cc) ? " (serving the cached ones)" :
	    " (none loaded yet: recipients get 451 4.3.0)", err);
}

/* A reload is over (on the loop): install, and schedule the next. */
static void
sq_reload_done(struct storeq *sq, struct sq_job *j)
{
	sq->reloading = 0;
	if (j->rc == 1 && !sq->stopping) {
		certcache_install(sq->cc, j->ld);
		j->ld = NULL;
		if (sq->reloaded != NULL)
			sq->reloaded(sq->arg);
	} else if (j->rc == -1 && !j->away)
		sq_stale(sq, j->err);
	if (j->rc >= 0 && sq->stale_since != 0) {
		log_info("policy/certificates reloaded again after %lld s",
		    (long long)(time(NULL) - sq->stale_since));
		sq->stale_since = 0;
		sq->stale_err[0] = '\0';
	}
	certcache_load_free(j->ld);
	j->ld = NULL;
	sq_waits_done(sq, j->waits, j->away ? -1 : 0);
	j->waits = NULL;
	if (sq->stopping)
		return;
	if (sq->again) {
		sq->again = 0;
		storeq_sync(sq, sq->force, NULL, NULL);
		sq->force = 0;
	} else if (sq->up == 0) {
		sq->backoff = sq->backoff == 0 ? 1 : sq->backoff * 2;
		if (sq->backoff > STOREQ_BACKOFF_MAX)
			sq->backoff = STOREQ_BACKOFF_MAX;
		sq_tick_in(sq, sq->backoff);
	} else {
		sq_retry(sq);
		sq_tick_in(sq, STOREQ_SYNC);
	}
}

static const char *sq_kind_names[] = {
	"reload", "lookup", "harvest write", "store call"
};

/* A job took STOREQ_SLOW seconds or more (locks, a loaded server, a slow
 * network): say so, at most every STOREQ_SLOW_EVERY seconds, with how
 * many were slow and the longest since the last line.  RCPT lookups wait
 * behind such a job; the loop does not. */
static void
sq_slow(struct storeq *sq, const struct sq_job *j)
{
	double now = mono_now();

	sq->slow_n++;
	if (j->secs > sq->slow_max)
		sq->slow_max = j->secs;
	if (sq->slow_at != 0 && now - sq->slow_at < STOREQ_SLOW_EVERY)
		return;
	log_warnx("store slow: a %s took %.1f s (%zu job(s) over %.0f s, "
	    "the longest %.1f s, since the last report; %zu queued)%s%s",
	    sq_kind_names[j->kind], j->secs, sq->slow_n, STOREQ_SLOW,
	    sq->slow_max, sq->njobs, j->rc == -1 && j->err[0] != '\0' ?
	    ": " : "", j->rc == -1 ? j->err : "");
	sq->slow_at = now;
	sq->slow_n = 0;
	sq->slow_max = 0;
}

/* The loop: a job is over. */
static void
sq_done(void *arg)
{
	struct sq_job *j = arg;
	struct storeq *sq = j->sq;

	sq->njobs--;
	if (j->secs >= STOREQ_SLOW && !sq->stopping)
		sq_slow(sq, j);
	if (j->away)
		sq_set_away(sq, j->err[0] != '\0' ? j->err : "no answer");
	else if (j->kind != SQ_CALL || j->rc == 0)
		sq_set_up(sq);
	switch (j->kind) {
	case SQ_RELOAD:
		sq_reload_done(sq, j);
		break;
	case SQ_LOOKUP:
		sq_waits_done(sq, j->waits, j->rc);
		break;
	case SQ_HARVEST:
		sq->writing = 0;
		if (j->id > 0)
			log_info("harvest: stored certificate id=%lld",
			    (long long)j->id);
		if (j->dropped > 0) {
			log_warnx("harvest: %zu certificate(s) dropped after "
			    "%d failed writes: %s", j->dropped, STOREQ_TRIES,
			    j->err);
			metrics_add(M_STORE_DROPPED, j->dropped);
		}
		if (harvest_count(j->h) > 0 && !sq->stopping) {
			/* a write failed (the store away, or busy): again
			 * at the next change check */
			log_warnx("harvest: %zu certificate(s) not stored yet, "
			    "written when the store answers: %s",
			    harvest_count(j->h), j->err[0] != '\0' ? j->err :
			    "write failed");
			sq_keep(sq, j->h);
		} else if (!j->away)
			sq_retry(sq);   /* what came meanwhile */
		harvest_free(j->h);
		break;
	case SQ_CALL:
		if (!sq->stopping)
			j->done(j->job, j->rc);
		else
			j->done(j->job, -1);
		break;
	}
	free(j->email);
	free(j);
}

/* Queue a job for the thread (the caller checked the bound, or it is
 * one of ours). */
static void
sq_submit(struct storeq *sq, struct sq_job *j)
{
	j->sq = sq;
	sq->njobs++;
	workers_submit(sq->w, sq_run, sq_done, j);
}

/* The change check: a reload unless one is under way. */
static void
sq_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	storeq_sync(arg, 0, NULL, NULL);
}

/*
 * Change detection.  SQLite: the change counter, read by the reload job
 * every STOREQ_SYNC seconds (one cheap query, off the loop).  PostgreSQL:
 * the same check, and a thread of its own with a connection that LISTENs
 * (store_listen) to what every commit on any node notifies: its job waits
 * up to STOREQ_LISTEN_MS for the socket, drains store_notified, and the
 * loop asks for a reload when something came (or when the connection was
 * lost: changes may have been missed), then queues the job again.  The
 * store thread itself never waits on the socket: its jobs answer RCPTs.
 */
#define STOREQ_LISTEN_MS	1000

struct sq_listen {
	struct storeq	*sq;
	int		 n;		/* notifications; -1 lost or away */
};

/* The listener thread: wait for notifications (bounded). */
static void
sq_listen_run(void *arg, void *tctx)
{
	struct sq_listen *l = arg;
	struct sq_thread *t = tctx;
	struct pollfd pfd;
	char err[256];
	int fd;

	l->n = 0;
	if (sq_conn(t, err, sizeof(err)) == NULL) {
		l->n = -1;
		poll(NULL, 0, STOREQ_LISTEN_MS);	/* away: not a spin */
		return;
	}
	if (!t->listening) {
		if (store_listen(t->st) == -1) {
			store_close(t->st);
			t->st = NULL;
			l->n = -1;
			poll(NULL, 0, STOREQ_LISTEN_MS);
			return;
		}
		t->listening = 1;
		l->n = -1;		/* (re)subscribed: reload once */
		return;
	}
	if ((fd = store_notify_fd(t->st)) >= 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, STOREQ_LISTEN_MS) <= 0)
			return;
	}
	if ((l->n = store_notified(t->st)) == -1) {
		store_close(t->st);
		t->st = NULL;
		t->listening = 0;
	}
}

/* The loop: what the listener heard; wait again. */
static void
sq_listen_done(void *arg)
{
	struct sq_listen *l = arg;
	struct storeq *sq = l->sq;

	if (sq->stopping) {
		free(l);
		return;
	}
	if (l->n != 0)
		storeq_sync(sq, l->n < 0, NULL, NULL);
	workers_submit(sq->lw, sq_listen_run, sq_listen_done, l);
}

/* Start the thread and the change checks. */
struct storeq *
storeq_new(struct event_base *base, struct certcache *cc,
    const char *database, const char *data_dir, storeq_reloaded_fn *reloaded,
    void *arg)
{
	struct storeq *sq = xcalloc(1, sizeof(*sq));
	struct sq_listen *l;

	sq->base = base;
	sq->cc = cc;
	sq->reloaded = reloaded;
	sq->arg = arg;
	sq->up = -1;
	sq->pending = harvest_new();
	sq->t.database = xstrdup(database);
	sq->t.data_dir = xstrdup(data_dir);
	sq->t.cc = cc;
	metrics_set(M_STORE_UP, certcache_loaded(cc) ? 1 : 0);
	if ((sq->tick = evtimer_new(base, sq_tick_cb, sq)) == NULL)
		fatalx("evtimer_new");
	sq->w = workers_new(base, 1, sq_thread_init, sq_thread_fini, &sq->t);
	sq_tick_in(sq, certcache_loaded(cc) ? STOREQ_SYNC : 0);
	if (store_db_is_pg(database)) {
		sq->lt.database = sq->t.database;
		sq->lt.data_dir = sq->t.data_dir;
		sq->lw = workers_new(base, 1, sq_thread_init, sq_thread_fini,
		    &sq->lt);
		l = xcalloc(1, sizeof(*l));
		l->sq = sq;
		workers_submit(sq->lw, sq_listen_run, sq_listen_done, l);
	}
	return sq;
}

/* Stop: the jobs queued run, their answers are dropped. */
void
storeq_free(struct storeq *sq)
{
	if (sq == NULL)
		return;
	sq->stopping = 1;
	event_free(sq->tick);
	if (sq->lw != NULL)
		workers_free(sq->lw);
	workers_free(sq->w);
	sq_waits_done(sq, sq->sync_waits, -1);
	if (harvest_count(sq->pending) > 0)
		log_warnx("store unreachable at exit: %zu harvested "
		    "certificate(s) not written", harvest_count(sq->pending));
	harvest_free(sq->pending);
	free(sq->t.database);
	free(sq->t.data_dir);
	free(sq);
}

/* A new wait. */
static struct storeq_wait *
sq_wait(storeq_cb *cb, void *arg, struct storeq_wait **list)
{
	struct storeq_wait *w = xcalloc(1, sizeof(*w));

	w->cb = cb;
	w->arg = arg;
	w->next = *list;
	*list = w;
	return w;
}

/* Reload now, or after the one under way. */
struct storeq_wait *
storeq_sync(struct storeq *sq, int force, storeq_cb *cb, void *arg)
{
	struct storeq_wait *w = NULL;
	struct sq_job *j;

	if (cb != NULL)
		w = sq_wait(cb, arg, &sq->sync_waits);
	if (sq->stopping)
		return w;
	if (sq->reloading) {
		sq->again = 1;
		sq->force |= force;
		return w;
	}
	evtimer_del(sq->tick);
	j = xcalloc(1, sizeof(*j));
	j->kind = SQ_RELOAD;
	j->force = force;
	j->waits = sq->sync_waits;
	sq->sync_waits = NULL;
	sq->reloading = 1;
	sq_submit(sq, j);
	return w;
}

/* A lookup waited STOREQ_LOOKUP_WAIT seconds (the thread is stuck on a
 * slow store, or busy with the jobs before it): its caller goes on
 * without it (-1, as with the store away; a RCPT is then asked again or
 * temp-failed); the job still runs and fills the cache for a retry. */
static void
sq_lookup_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct storeq_wait *w = arg;
	storeq_cb *cb = w->cb;

	(void)fd;
	(void)what;
	w->cb = NULL;
	if (cb != NULL)
		cb(w->arg, -1);
}

/* Look email up into the cache, off the loop. */
struct storeq_wait *
storeq_lookup(struct storeq *sq, const char *email, storeq_cb *cb,
    void *arg)
{
	struct timeval wait = { STOREQ_LOOKUP_WAIT, 0 };
	struct sq_job *j;

	if (sq->njobs >= STOREQ_MAX_JOBS || sq->stopping)
		return NULL;
	j = xcalloc(1, sizeof(*j));
	j->kind = SQ_LOOKUP;
	j->email = xstrdup(email);
	sq_wait(cb, arg, &j->waits);
	if ((j->waits->timer = evtimer_new(sq->base, sq_lookup_timeout,
	    j->waits)) == NULL)
		fatalx("evtimer_new");
	evtimer_add(j->waits->timer, &wait);
	sq_submit(sq, j);
	return j->waits;
}

/* Never call this wait back (it is freed with its job). */
void
storeq_cancel(struct storeq_wait *w)
{
	if (w != NULL)
		w->cb = NULL;
}

/* Write harvested signers off the loop. */
void
storeq_harvest(struct storeq *sq, struct harvest *h)
{
	struct sq_job *j;

	if (harvest_count(h) == 0) {
		harvest_free(h);
		return;
	}
	if (sq->up == 0 || sq->writing || sq->stale_since != 0 ||
	    sq->njobs >= STOREQ_MAX_JOBS) {
		/* away, not loaded, a write under way, or too much queued:
		 * after it */
		sq_keep(sq, h);
		harvest_free(h);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->kind = SQ_HARVEST;
	j->h = h;
	sq->writing = 1;
	sq_submit(sq, j);
}

/* Run a caller's job on the store thread. */
int
storeq_call(struct storeq *sq, storeq_run_fn *run, storeq_cb *done,
    void *job)
{
	struct sq_job *j;

	if (sq->njobs >= STOREQ_MAX_JOBS || sq->stopping)
		return -1;
	j = xcalloc(1, sizeof(*j));
	j->kind = SQ_CALL;
	j->run = run;
	j->done = done;
	j->job = job;
	sq_submit(sq, j);
	return 0;
}

int
storeq_up(const struct storeq *sq)
{
	return sq->up;
}

/* /healthz: degraded while away with a cache, unhealthy without one. */
int
storeq_health(const struct storeq *sq, char *why, size_t len)
{
	char since[64];
	struct tm tm;

	if (len > 0)
		why[0] = '\0';
	if (sq->up != 0 && sq->stale_since != 0) {
		gmtime_r(&sq->stale_since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (!certcache_loaded(sq->cc)) {
			snprintf(why, len, "store not loaded since %s and no "
			    "policy loaded: %s", since, sq->stale_err);
			return -1;
		}
		snprintf(why, len, "degraded: policy and certificates not "
		    "reloaded since %s, serving cached ones: %s", since,
		    sq->stale_err);
		return 0;
	}
	if (sq->up != 0)
		return 0;
	gmtime_r(&sq->away_since, &tm);
	strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!certcache_loaded(sq->cc)) {
		snprintf(why, len, "store unreachable since %s and no policy "
		    "loaded (%s)", since, sq->away_err);
		return -1;
	}
	snprintf(why, len, "degraded: store unreachable since %s, serving "
	    "cached policy and certificates (%s)", since, sq->away_err);
	return 0;
}
