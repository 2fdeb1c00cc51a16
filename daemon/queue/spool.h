/* spool.h: the spool from the event loop: every disk and database write
 * (spooldb.c) runs on one spool thread, and the writes that pile up while
 * it works go out together in one transaction and one fsync of each file
 * (group commit), so the loop never waits on the disk. */
#ifndef SMRELAY_SPOOL_H
#define SMRELAY_SPOOL_H

#include <event2/event.h>

#include "spooldb.h"

struct msgbuf;
struct spool;

/* A write is durable (err 0) or failed (err: an errno value). */
typedef void spool_put_cb(void *arg, int err);
/* Answer to spool_poll_control(): if smrelayctl changed the queue, one call
 * per row (id, held, next_attempt); then always one with id NULL (the end;
 * `held` is then 1 if rows were listed, 0 if nothing changed). */
typedef void spool_control_cb(void *arg, const char *id, int held,
    int64_t next_attempt);

/* spool.c */
/*
 * Open a share of the spool (spooldb.h), recover it (bodies never
 * acknowledged removed) and load every queued entry (*loaded, *nloaded:
 * the caller takes them).
 * Starts the spool thread.  NULL with err set.
 */
struct spool *spool_new(struct event_base *, const char *data_dir, int share,
    struct spool_entry ***loaded, size_t *nloaded, char *err, size_t errlen);
/* Persist a new entry (e->id set here unless e->keep_id) with its body;
 * cb once durable.
 * Takes a reference on body; e is copied. */
void spool_put(struct spool *, struct spool_entry *e, struct msgbuf *body,
    spool_put_cb *, void *arg);
/* Persist the daemon's columns of e (copied); fire and forget. */
void spool_update(struct spool *, const struct spool_entry *);
/* Delete an entry and its body; fire and forget. */
void spool_delete(struct spool *, const char *id);
/* Ask whether smrelayctl changed the queue; cb on the loop (see above). */
void spool_poll_control(struct spool *, spool_control_cb *, void *arg);
/* The body of an entry as a read-only msgbuf, or NULL (errno). */
struct msgbuf *spool_body(struct spool *, const char *id);
/* Finish the pending writes, stop the thread. */
void spool_free(struct spool *);

#endif
