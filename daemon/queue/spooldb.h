/* spooldb.h: the durable spool on disk: DATA_DIR/spool/queue.db (SQLite,
 * synchronous=FULL: the envelope and per-recipient state of every queued
 * copy) and DATA_DIR/spool/msg/ID (its body, exactly as it goes to the next
 * hop, or for a policy hold the original that is still to be transformed).
 *
 * Commit order (Postfix-style): body written and fsync'ed, then the msg/
 * directory fsync'ed, then the row committed.  A body without a row was
 * never acknowledged and is removed at start-up; the row is the commit
 * point.  Synchronous, blocking calls: the daemon runs them on its spool
 * thread (spool.c), smrelayctl directly.  Several processes may use the
 * database at once (WAL, busy timeout); every write touches only its own
 * columns, so the daemon and smrelayctl never undo each other's changes. */
#ifndef SMRELAY_SPOOLDB_H
#define SMRELAY_SPOOLDB_H

#include <stddef.h>
#include <stdint.h>

struct msgbuf;
struct spooldb;

/* Recipient states. */
#define SPOOL_RCPT_PENDING	0	/* to be (re)tried */
#define SPOOL_RCPT_DONE		1	/* the next hop took it */
#define SPOOL_RCPT_FAILED	2	/* permanent failure: bounce */
#define SPOOL_RCPT_BOUNCED	3	/* failed and the DSN is queued (or
					 * none was due) */

/* Hold states. */
#define SPOOL_HOLD_NONE		0
#define SPOOL_HOLD_POLICY	1	/* --if-no-cert hold: waits for a
					 * certificate */
#define SPOOL_HOLD_ADMIN	2	/* smrelayctl queue hold */
#define SPOOL_HOLD_RETRY	3	/* could not be transformed for now (a
					 * 451: no signing key for the sender
					 * yet, the key process away): tried
					 * again when the store changes and at
					 * each check of held copies */
/* A hold the gateway made and takes back itself (a certificate arrives,
 * the transform works again), which expires at queue_lifetime; not an
 * admin's. */
#define SPOOL_HELD_FOR_RETRY(h) \
	((h) == SPOOL_HOLD_POLICY || (h) == SPOOL_HOLD_RETRY)

#define SPOOL_ID_LEN		16	/* hex characters */
#define SPOOL_SHARES_MAX	1000	/* spool.1 .. spool.999 */
#define SPOOL_INLINE_MAX	(64 * 1024)	/* bodies kept in the row */

struct spool_rcpt {
	char		*addr;
	char		*params;	/* NOTIFY=... ORCPT=... as received */
	int		 state;		/* SPOOL_RCPT_* */
	char		*reply;		/* last reply, or NULL */
};

/* One queued copy. */
struct spool_entry {
	char		 id[SPOOL_ID_LEN + 1];
	int64_t		 created;	/* accepted (unix seconds) */
	int64_t		 next_attempt;
	int		 attempts;
	char		*sender;	/* "" = null sender */
	char		*params;	/* MAIL parameters (BODY, RET, ENVID,
					 * SMTPUTF8) */
	unsigned	 actions;	/* policy transforms still due
					 * (POLICY_*; held copies) */
	int64_t		 rule_id;
	int		 held;		/* SPOOL_HOLD_* */
	int		 warned;	/* delay DSN sent */
	int		 dsn;		/* this copy is a DSN we made */
	char		*client;	/* who gave it to us (for DSNs) */
	char		*smime;		/* what S/MIME did before it was
					 * queued, for the log ("": nothing
					 * or not yet) */
	char		*last_error;
	int64_t		 size;
	struct spool_rcpt *rcpts;
	size_t		 nrcpts;
	/* memory only */
	int		 keep_id;	/* spool_put: id is set (the message's
					 * queue ID), do not make one */
	int		 busy;		/* an attempt is running */
	int		 inflight;	/* queue.c: its attempts running (one
					 * per destination) */
	int		 gone;		/* removed (smrelayctl queue remove) */
	int		 seen;		/* control scan mark */
	size_t		 vidx;		/* queue.c: index in its vector */
	struct spool_entry *hnext;	/* queue.c: id hash chain */
};

/* spooldb.c */
/*
 * Open a share of the spool (created 0700) and its database (0600):
 * DATA_DIR/spool for share 0, DATA_DIR/spool.N for the share of network
 * process N (`processes`, issue 18).  With `recover`, also drop bodies
 * without a row (never acknowledged) and leftovers of interrupted writes.
 * NULL with err set.
 */
struct spooldb *spooldb_open(const char *data_dir, int share, int recover,
    char *err, size_t errlen);
void spooldb_close(struct spooldb *);
/* A read-only connection (the daemon's loop reads bodies with it). */
struct spooldb *spooldb_open_reader(const char *data_dir, int share,
    char *err, size_t errlen);
/* The directory of a share (free it). */
char *spooldb_share_dir(const char *data_dir, int share);
/* The shares present under data_dir into shares[max], in order: how many,
 * or -1 with errno. */
int spooldb_shares(const char *data_dir, int *shares, int max);
/*
 * Move every entry of `from` (a share no process runs any more) into `to`,
 * before a queue runs `to`: bodies and rows are in `to` and committed
 * before they leave `from`, so a stop in between loses nothing, and the
 * next take-over skips what `to` already has.  *nleft: entries whose body
 * could not be read (they stay).  0, or -1 with err.
 */
int spooldb_take_over(struct spooldb *to, struct spooldb *from,
    size_t *nmoved, size_t *nleft, char *err, size_t errlen);
/* Remove an empty share N > 0 (its database and directories); -1 with
 * errno when something is left. */
int spooldb_remove_share(const char *data_dir, int share);
/* An entry's body, from msg/ID or from its row; NULL with errno. */
struct msgbuf *spooldb_body_get(struct spooldb *, const char *id);
/* A fresh random queue id into id[SPOOL_ID_LEN + 1]. */
void spooldb_new_id(char *id);
/*
 * Write a body (msg/ID) and start its writeback; *fd stays open for
 * spooldb_body_sync().  0, or -1 with errno (ENOSPC, EIO...); nothing is
 * left behind on failure.
 */
int spooldb_body_write(struct spooldb *, const char *id, struct msgbuf *,
    int *fd);
/* Wait for the body to be on disk (fdatasync) and close fd; -1 with errno
 * (the body is then removed). */
int spooldb_body_sync(struct spooldb *, const char *id, int fd);
/* fsync the msg/ directory (after a batch of bodies). */
int spooldb_sync_dir(struct spooldb *);
/* Path of an entry's body (free it). */
char *spooldb_body_path(struct spooldb *, const char *id);
/* Unlink an entry's body. */
void spooldb_unlink_body(struct spooldb *, const char *id);

/* Transactions: group several inserts/updates in one commit (fsync). */
int spooldb_begin(struct spooldb *);
int spooldb_commit(struct spooldb *);
void spooldb_rollback(struct spooldb *);
/* Insert a new entry with its recipients, and its body when given (NULL:
 * the body is in msg/ID). */
int spooldb_insert(struct spooldb *, const struct spool_entry *,
    const void *body, size_t bodylen);
/* The daemon's columns: attempts, next_attempt, warned, last_error,
 * actions, held (policy hold released) and every recipient's state and
 * reply.  0; 1 when the row is gone; -1 error. */
int spooldb_update(struct spooldb *, const struct spool_entry *);
/* Delete an entry (the caller unlinks the body after the commit).
 * 1 deleted, 0 no such id, -1 error. */
int spooldb_delete(struct spooldb *, const char *id);
/* smrelayctl: hold (SPOOL_HOLD_ADMIN), release (hold -> none, due now),
 * flush (due now; all when id is NULL).  Number of rows changed, -1. */
int spooldb_set_hold(struct spooldb *, const char *id, int hold);
int spooldb_flush(struct spooldb *, const char *id);

/* Every entry (loaded whole), oldest first; *n of them; NULL on error. */
struct spool_entry **spooldb_load(struct spooldb *, size_t *n);
/* One entry, or NULL (not there, or error). */
struct spool_entry *spooldb_get(struct spooldb *, const char *id);
/* The control columns as smrelayctl may change them (held, next_attempt)
 * and which ids exist: calls fn for every row. */
int spooldb_scan_control(struct spooldb *, void (*fn)(const char *id,
    int held, int64_t next_attempt, void *), void *arg);
/* Has another connection committed since the last call?  1, 0, -1. */
int spooldb_changed(struct spooldb *);

struct spool_entry *spool_entry_dup(const struct spool_entry *);
void spool_entry_free(struct spool_entry *);
void spool_entries_free(struct spool_entry **, size_t n);
const char *spool_rcpt_state_str(int);
const char *spool_hold_str(int);

#endif
