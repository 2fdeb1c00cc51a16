/* storeq.h: the store thread of a network process.  The event loop asks
 * no store: the certificate cache's reloads (read off the loop, installed
 * on it), its lookups for RCPT, harvested signers and other writes are
 * jobs for one thread with its own connection, through a bounded queue,
 * answered on the loop.  When the store cannot be reached the cache keeps
 * serving what it holds (said once in the log, in smrelay_store_up and in
 * /healthz), harvested signers wait in a bounded list and are written when
 * it is back, and reloads are retried with backoff. */
#ifndef SMRELAY_STOREQ_H
#define SMRELAY_STOREQ_H

#include <stddef.h>

struct certcache;
struct event_base;
struct harvest;
struct store;
struct storeq;
struct storeq_wait;

#define STOREQ_MAX_JOBS		1000	/* queued for the thread at most */
#define STOREQ_MAX_PENDING	1000	/* signers kept while it is away */
#define STOREQ_SYNC		1	/* seconds between change checks */
#define STOREQ_BACKOFF_MAX	16	/* seconds between tries when away */
#define STOREQ_TRIES		10	/* failed writes of a signer while the
					 * store answers: then dropped */
#define STOREQ_LOOKUP_WAIT	5	/* seconds a lookup is waited for */
#define STOREQ_SLOW		2.0	/* seconds: a job this long is slow */
#define STOREQ_STALE_EVERY	60	/* seconds between "not reloaded"
						 * lines for the same reason */
#define STOREQ_SLOW_EVERY	10	/* seconds between "store slow" lines */

/* The cache was reloaded (the store changed, or a forced reload). */
typedef void storeq_reloaded_fn(void *arg);
/* A wait is over: ok is 0 when the store answered, -1 when it could not
 * be reached (or the queue was full). */
typedef void storeq_cb(void *arg, int ok);
/* A job of the caller's, on the store thread with its connection (NULL
 * when it cannot be opened): 0, or -1 when it failed. */
typedef int storeq_run_fn(void *job, struct store *);

/* storeq.c */
/*
 * The thread (connection to the store of data_dir) and a change check every
 * STOREQ_SYNC seconds that reloads cc on the loop of base, then calls
 * reloaded.  Never NULL.
 */
struct storeq *storeq_new(struct event_base *, struct certcache *,
    const char *database, const char *data_dir, storeq_reloaded_fn *,
    void *arg);
/* Stop the thread (its last answers are dropped) and free. */
void storeq_free(struct storeq *);
/* Reload now (force: even when the store did not change); cb (may be
 * NULL) once a reload that started after this call is over. */
struct storeq_wait *storeq_sync(struct storeq *, int force, storeq_cb *,
    void *arg);
/* Look email up into the cache; cb once it is there (ok 0) or the store
 * could not be asked (-1), or after STOREQ_LOOKUP_WAIT seconds (-1: the
 * lookup goes on and fills the cache), unless storeq_cancel() comes
 * first. */
struct storeq_wait *storeq_lookup(struct storeq *, const char *email,
    storeq_cb *, void *arg);
/* Forget a wait: its cb is never called.  NULL is fine. */
void storeq_cancel(struct storeq_wait *);
/* Write harvested signers (takes h); kept while the store is away. */
void storeq_harvest(struct storeq *, struct harvest *);
/* Run job on the store thread, then done on the loop; -1 (nothing runs)
 * when the queue is full. */
int storeq_call(struct storeq *, storeq_run_fn *, storeq_cb *done,
    void *job);
/* 1 reachable, 0 not, -1 not known yet. */
int storeq_up(const struct storeq *);
/* For /healthz: 0 healthy (why empty, or saying degraded), -1 not (no
 * policy loaded and the store away). */
int storeq_health(const struct storeq *, char *why, size_t len);

#endif
