/* workers.h: a fixed pool of threads for CPU-heavy work (S/MIME transforms)
 * so the event loop never waits on it.  Jobs run in submission order as
 * threads free up; each job's `done` runs later on the event loop thread. */
#ifndef SMRELAY_WORKERS_H
#define SMRELAY_WORKERS_H

#include <event2/event.h>

struct workers;

/* Runs on a worker thread; tctx is what thread_init returned for it. */
typedef void workers_run_fn(void *job, void *tctx);
/* Runs on the event loop thread after run() returned. */
typedef void workers_done_fn(void *job);

/* workers.c */
/*
 * Start n threads (n <= 0: one per online CPU).  thread_init (may be NULL)
 * runs first on each thread and returns its context (e.g. its own store
 * connection); thread_fini releases it when the pool stops.
 */
struct workers *workers_new(struct event_base *, int n,
    void *(*thread_init)(void *arg), void (*thread_fini)(void *tctx),
    void *arg);
void workers_submit(struct workers *, workers_run_fn *, workers_done_fn *,
    void *job);
int workers_count(const struct workers *);
/* Online CPUs, at least 1 (n <= 0 in workers_new means this many). */
int workers_cpus(void);
/* Finish the queued jobs, stop the threads, run the last `done`s. */
void workers_free(struct workers *);

#endif
