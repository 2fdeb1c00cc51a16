/* spool.c: the spool thread and group commit (see spool.h).
 *
 * Every request is a job of a one-thread pool (workers.c).  The first job
 * to run takes every request queued so far and does them in one go: all
 * new bodies written and fsync'ed, the msg/ directory fsync'ed once, then
 * one transaction (one WAL fsync) with every insert, update and delete.
 * Each job's `done` then reports its own request's outcome on the loop. */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "daemon/base/base.h"
#include "spool.h"

enum sreq_kind { SREQ_PUT, SREQ_UPDATE, SREQ_DELETE, SREQ_CONTROL };

struct ctl_row {
	char	 id[SPOOL_ID_LEN + 1];
	int	 held;
	int64_t	 next_attempt;
};

struct sreq {
	enum sreq_kind	 kind;
	struct spool	*sp;
	struct spool_entry *e;		/* PUT, UPDATE */
	char		 id[SPOOL_ID_LEN + 1];	/* DELETE */
	struct msgbuf	*body;		/* PUT */
	spool_put_cb	*cb;
	spool_control_cb *ccb;
	void		*arg;
	int		 err;		/* PUT: errno, 0 durable */
	int		 fd;		/* PUT: the body, until synced */
	const char	*inl;		/* PUT: a small body, in the row */
	char		*inl_owned;
	size_t		 inl_len;
	int		 taken;
	struct ctl_row	*rows;		/* CONTROL: changed rows */
	size_t		 nrows;
	int		 changed;
	struct sreq	*next;		/* the not-yet-taken list */
};

struct spool {
	struct workers	*thread;
	struct spooldb	*db;		/* the thread's; the loop never uses it */
	struct spooldb	*rdb;		/* the loop's, read-only: bodies */
	char		*data_dir;
	pthread_mutex_t	 mtx;
	struct sreq	*head, *tail;
};

/* Note a row smrelayctl changed, for the loop. */
static void
ctl_add(struct sreq *r, const char *id, int held, int64_t next_attempt)
{
	struct ctl_row *c;

	r->rows = xreallocarray(r->rows, r->nrows + 1, sizeof(*r->rows));
	c = &r->rows[r->nrows++];
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->held = held;
	c->next_attempt = next_attempt;
}

/* spooldb_scan_control()'s callback: ctl_add(). */
static void
ctl_fn(const char *id, int held, int64_t next_attempt, void *arg)
{
	ctl_add(arg, id, held, next_attempt);
}

/* Spool thread: take every request queued so far (NULL: an earlier job
 * took ours). */
static struct sreq *
take_batch(struct spool *sp)
{
	struct sreq *list, *r;

	pthread_mutex_lock(&sp->mtx);
	list = sp->head;
	sp->head = sp->tail = NULL;
	for (r = list; r != NULL; r = r->next)
		r->taken = 1;
	pthread_mutex_unlock(&sp->mtx);
	return list;
}

/* Spool thread: each new body in the row (small) or written to its file
 * (writeback started, not synced yet). */
static void
write_bodies(struct spool *sp, struct sreq *list)
{
	struct sreq *r;

	for (r = list; r != NULL; r = r->next) {
		if (r->kind != SREQ_PUT)
			continue;
		if (msgbuf_size(r->body) <= SPOOL_INLINE_MAX) {
			/* small: in the row, synced with the batch's commit */
			if ((r->inl = msgbuf_mem(r->body)) == NULL &&
			    (r->inl = r->inl_owned = msgbuf_slurp(r->body,
			    &r->inl_len)) == NULL)
				r->err = errno ? errno : EIO;
			else if (r->inl_owned == NULL)
				r->inl_len = msgbuf_size(r->body);
			continue;
		}
		if (spooldb_body_write(sp->db, r->e->id, r->body, &r->fd) == -1)
			r->err = errno ? errno : EIO;
	}
}

/* Spool thread: fsync each body file written; how many are durable. */
static int
sync_bodies(struct spool *sp, struct sreq *list)
{
	struct sreq *r;
	int nputs = 0;

	for (r = list; r != NULL; r = r->next)
		if (r->kind == SREQ_PUT && r->err == 0 && r->inl == NULL) {
			if (spooldb_body_sync(sp->db, r->e->id, r->fd) == -1)
				r->err = errno ? errno : EIO;
			else
				nputs++;
		}
	return nputs;
}

/* Spool thread: one request's rows, inside the batch's transaction;
 * 0 or EIO. */
static int
apply_request(struct spool *sp, struct sreq *r)
{
	switch (r->kind) {
	case SREQ_PUT:
		if (r->err == 0 && spooldb_insert(sp->db, r->e, r->inl,
		    r->inl_len) == -1)
			return EIO;
		break;
	case SREQ_UPDATE:
		if (spooldb_update(sp->db, r->e) == -1)
			return EIO;
		break;
	case SREQ_DELETE:
		if (spooldb_delete(sp->db, r->id) == -1)
			return EIO;
		break;
	case SREQ_CONTROL:
		if ((r->changed = spooldb_changed(sp->db)) == 1)
			spooldb_scan_control(sp->db, ctl_fn, r);
		break;
	}
	return 0;
}

/* Spool thread: every request's rows in one transaction, unless the batch
 * already `failed` (an errno value); the batch's outcome. */
static int
commit_batch(struct spool *sp, struct sreq *list, int failed)
{
	struct sreq *r;

	if (!failed && spooldb_begin(sp->db) == -1)
		failed = EIO;
	for (r = list; r != NULL && !failed; r = r->next)
		failed = apply_request(sp, r);
	if (!failed && spooldb_commit(sp->db) == -1)
		failed = EIO;
	if (failed) {
		spooldb_rollback(sp->db);
		log_warnx("spool: batch not committed: %s", strerror(failed));
	}
	return failed;
}

/* Spool thread: after the commit (or its failure), the files that follow:
 * bodies of a failed batch and of deleted entries go. */
static void
clean_batch(struct spool *sp, struct sreq *list, int failed)
{
	struct sreq *r;

	for (r = list; r != NULL; r = r->next) {
		if (r->kind == SREQ_PUT) {
			free(r->inl_owned);
			r->inl_owned = NULL;
		}
		if (r->kind == SREQ_PUT && r->err == 0 && failed) {
			r->err = failed;
			if (r->inl == NULL)
				spooldb_unlink_body(sp->db, r->e->id);
		}
		if (r->kind == SREQ_DELETE && !failed)
			spooldb_unlink_body(sp->db, r->id);
	}
}

/* Spool thread: do every request queued so far as one batch. */
static void
spool_run(void *job, void *tctx)
{
	struct sreq *self = job, *list;
	struct spool *sp = self->sp;
	int failed = 0;

	(void)tctx;
	if ((list = take_batch(sp)) == NULL)
		return;         /* an earlier job did ours */
	/* every body written first (writeback started), then each synced:
	 * the disk works on them together */
	write_bodies(sp, list);
	if (sync_bodies(sp, list) > 0 && spooldb_sync_dir(sp->db) == -1)
		failed = errno ? errno : EIO;
	failed = commit_batch(sp, list, failed);
	clean_batch(sp, list, failed);
}

/* Loop: report this request's outcome. */
static void
spool_done(void *job)
{
	struct sreq *r = job;
	size_t i;

	if (r->kind == SREQ_PUT) {
		msgbuf_free(r->body);
		r->cb(r->arg, r->err);
	} else if (r->kind == SREQ_CONTROL) {
		/* Rows only when something changed; the end mark always (the
		 * caller waits for it before it asks again). */
		if (r->changed == 1)
			for (i = 0; i < r->nrows; i++)
				r->ccb(r->arg, r->rows[i].id, r->rows[i].held,
				    r->rows[i].next_attempt);
		r->ccb(r->arg, NULL, r->changed == 1, 0);
	}
	spool_entry_free(r->e);
	free(r->rows);
	free(r);
}

/* Hand a request to the spool thread (it joins the next batch). */
static void
submit(struct spool *sp, struct sreq *r)
{
	r->sp = sp;
	pthread_mutex_lock(&sp->mtx);
	if (sp->tail != NULL)
		sp->tail->next = r;
	else
		sp->head = r;
	sp->tail = r;
	pthread_mutex_unlock(&sp->mtx);
	workers_submit(sp->thread, spool_run, spool_done, r);
}

/* Open and load the spool, start its thread. */
struct spool *
spool_new(struct event_base *base, const char *data_dir, int share,
    struct spool_entry ***loaded, size_t *nloaded, char *err, size_t errlen)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));

	if ((sp->db = spooldb_open(data_dir, share, 1, err, errlen)) == NULL) {
		free(sp);
		return NULL;
	}
	if ((*loaded = spooldb_load(sp->db, nloaded)) == NULL) {
		snprintf(err, errlen, "spool: cannot read the queue");
		spooldb_close(sp->db);
		free(sp);
		return NULL;
	}
	if ((sp->rdb = spooldb_open_reader(data_dir, share, err, errlen)) == NULL) {
		spool_entries_free(*loaded, *nloaded);
		*loaded = NULL;
		spooldb_close(sp->db);
		free(sp);
		return NULL;
	}
	if (pthread_mutex_init(&sp->mtx, NULL) != 0)
		fatal("pthread_mutex_init");
	sp->data_dir = xstrdup(data_dir);
	/* From here on only the spool thread touches sp->db. */
	sp->thread = workers_new(base, 1, NULL, NULL, NULL);
	return sp;
}

/* A new entry with its body, for the next batch. */
void
spool_put(struct spool *sp, struct spool_entry *e, struct msgbuf *body,
    spool_put_cb *cb, void *arg)
{
	struct sreq *r = xcalloc(1, sizeof(*r));

	if (!e->keep_id || e->id[0] == '\0')
		spooldb_new_id(e->id);
	e->size = (int64_t)msgbuf_size(body);
	r->kind = SREQ_PUT;
	r->e = spool_entry_dup(e);
	r->body = msgbuf_ref(body);
	r->cb = cb;
	r->arg = arg;
	submit(sp, r);
}

/* A new state of e's row, for the next batch. */
void
spool_update(struct spool *sp, const struct spool_entry *e)
{
	struct sreq *r = xcalloc(1, sizeof(*r));

	r->kind = SREQ_UPDATE;
	r->e = spool_entry_dup(e);
	submit(sp, r);
}

/* Remove an entry and its body, in the next batch. */
void
spool_delete(struct spool *sp, const char *id)
{
	struct sreq *r = xcalloc(1, sizeof(*r));

	r->kind = SREQ_DELETE;
	snprintf(r->id, sizeof(r->id), "%s", id);
	submit(sp, r);
}

/* Ask, in the next batch, whether smrelayctl changed the queue. */
void
spool_poll_control(struct spool *sp, spool_control_cb *cb, void *arg)
{
	struct sreq *r = xcalloc(1, sizeof(*r));

	r->kind = SREQ_CONTROL;
	r->ccb = cb;
	r->arg = arg;
	submit(sp, r);
}

/*
 * On the loop: the body file, or the row's blob through the read-only
 * connection (a primary-key read of at most SPOOL_INLINE_MAX bytes from
 * the page cache: tens of microseconds, measured with bench/queue.sh's
 * drain).
 */
struct msgbuf *
spool_body(struct spool *sp, const char *id)
{
	return spooldb_body_get(sp->rdb, id);
}

/* Finish the pending writes, stop the thread, close the databases. */
void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	workers_free(sp->thread);
	spooldb_close(sp->db);
	spooldb_close(sp->rdb);
	pthread_mutex_destroy(&sp->mtx);
	free(sp->data_dir);
	free(sp);
}
