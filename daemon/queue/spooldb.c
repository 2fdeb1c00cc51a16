/* spooldb.c: the spool's files and database (see spooldb.h). */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "lib/lib.h"
#include "daemon/base/base.h"
#include "spooldb.h"

#define SPOOL_SCHEMA	3
#define BUSY_MS		10000

struct spooldb {
	sqlite3		*db;
	char		*dir;		/* DATA_DIR/spool[.N] */
	char		*msgdir;	/* DATA_DIR/spool[.N]/msg */
	int		 msgfd;		/* open msg/ directory, for fsync */
	int64_t		 data_version;
};

static int prep(struct spooldb *, const char *, sqlite3_stmt **);
static void bind_text(sqlite3_stmt *, int, const char *);

static const char *schema =
	"CREATE TABLE IF NOT EXISTS queue ("
	"  id TEXT PRIMARY KEY,"
	"  created INTEGER NOT NULL,"
	"  next_attempt INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  sender TEXT NOT NULL,"
	"  params TEXT NOT NULL,"
	"  actions INTEGER NOT NULL DEFAULT 0,"
	"  rule_id INTEGER NOT NULL DEFAULT 0,"
	"  held INTEGER NOT NULL DEFAULT 0,"
	"  warned INTEGER NOT NULL DEFAULT 0,"
	"  dsn INTEGER NOT NULL DEFAULT 0,"
	"  client TEXT NOT NULL DEFAULT '',"
	"  smime TEXT NOT NULL DEFAULT '',"
	"  last_error TEXT,"
	"  size INTEGER NOT NULL,"
	"  body BLOB);"
	"CREATE TABLE IF NOT EXISTS queue_rcpt ("
	"  qid TEXT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,"
	"  n INTEGER NOT NULL,"
	"  addr TEXT NOT NULL,"
	"  params TEXT NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0,"
	"  reply TEXT,"
	"  PRIMARY KEY (qid, n));"
	"PRAGMA user_version = 3;";

static int
exec(struct spooldb *s, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("spool: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* PRAGMA user_version, -1 on error. */
static int
schema_version(struct spooldb *s)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int
mkdir_p(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* A queue id is exactly SPOOL_ID_LEN lower-case hex digits. */
static int
is_id(const char *s)
{
	size_t i;

	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[i] == '\0';
}

/* Start-up: bodies with no row were never acknowledged; rows with no body
 * cannot be delivered (logged, dropped). */
static void
recover(struct spooldb *s)
{
	sqlite3_stmt *st;
	struct dirent *de;
	struct stat sb;
	DIR *d;
	char *path;
	int n = 0, have;

	if ((d = opendir(s->msgdir)) == NULL)
		return;
	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM queue WHERE id = ?", -1,
	    &st, NULL) != SQLITE_OK) {
		closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, de->d_name, -1, SQLITE_TRANSIENT);
		have = is_id(de->d_name) && sqlite3_step(st) == SQLITE_ROW;
		if (have)
			continue;
		path = xasprintf("%s/%s", s->msgdir, de->d_name);
		if (unlink(path) == 0)
			n++;
		free(path);
	}
	sqlite3_finalize(st);
	closedir(d);
	if (n > 0)
		log_info("spool: removed %d body file(s) of messages that were "
		    "never acknowledged", n);
	/* rows whose body is missing */
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM queue WHERE body IS NULL",
	    -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		path = xasprintf("%s/%s", s->msgdir,
		    (const char *)sqlite3_column_text(st, 0));
		if (stat(path, &sb) == -1 && errno == ENOENT)
			log_warnx("spool: %s has no body file; it cannot be "
			    "delivered (queue remove it)", path);
		free(path);
	}
	sqlite3_finalize(st);
}

/* The directory of a share: spool (0, as before issue 18) or spool.N. */
char *
spooldb_share_dir(const char *data_dir, int share)
{
	if (share == 0)
		return xasprintf("%s/spool", data_dir);
	return xasprintf("%s/spool.%d", data_dir, share);
}

/* Whether name is spool.N with 0 < N < SPOOL_SHARES_MAX; N or -1. */
static int
share_index(const char *name)
{
	const char *p;
	int n = 0;

	if (strcmp(name, "spool") == 0)
		return 0;
	if (strncmp(name, "spool.", 6) != 0 || name[6] == '0' ||
	    name[6] == '\0')
		return -1;
	for (p = name + 6; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
		if (n >= SPOOL_SHARES_MAX)
			return -1;
	}
	return n;
}

/* The shares that exist under data_dir, in order. */
int
spooldb_shares(const char *data_dir, int *shares, int max)
{
	char have[SPOOL_SHARES_MAX];
	struct dirent *de;
	DIR *dir;
	int i, n = 0;

	memset(have, 0, sizeof(have));
	if ((dir = opendir(data_dir)) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL)
		if ((i = share_index(de->d_name)) != -1)
			have[i] = 1;
	closedir(dir);
	for (i = 0; i < SPOOL_SHARES_MAX && n < max; i++)
		if (have[i])
			shares[n++] = i;
	return n;
}

struct spooldb *
spooldb_open(const char *data_dir, int share, int rec, char *err,
    size_t errlen)
{
	struct spooldb *s = xcalloc(1, sizeof(*s));
	char *path;
	int fd;

	s->msgfd = -1;
	s->dir = spooldb_share_dir(data_dir, share);
	s->msgdir = xasprintf("%s/msg", s->dir);
	if (mkdir_p(data_dir, err, errlen) == -1 ||
	    mkdir_p(s->dir, err, errlen) == -1 ||
	    mkdir_p(s->msgdir, err, errlen) == -1)
		goto fail;
	if ((s->msgfd = open(s->msgdir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", s->msgdir, strerror(errno));
		goto fail;
	}
	path = xasprintf("%s/queue.db", s->dir);
	/* Created 0600, and only if missing: close() would drop the POSIX
	 * locks SQLite holds on it in this process (see store.c). */
	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) != -1)
		close(fd);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, s->db ?
		    sqlite3_errmsg(s->db) : "cannot open");
		free(path);
		goto fail;
	}
	free(path);
	sqlite3_busy_timeout(s->db, BUSY_MS);
	if (exec(s, "PRAGMA journal_mode = WAL") == -1 ||
	    exec(s, "PRAGMA synchronous = FULL") == -1 ||
	    exec(s, "PRAGMA foreign_keys = ON") == -1) {
		snprintf(err, errlen, "%s/queue.db: %s", s->dir,
		    sqlite3_errmsg(s->db));
		goto fail;
	}
	/* Create the schema only when missing: a write here would count as
	 * a change to the queue for the daemon (PRAGMA data_version), and
	 * every `smrelayctl queue list` would make it rescan the queue. */
	if (schema_version(s) == SPOOL_SCHEMA)
		;
	else if (schema_version(s) == 1 && exec(s, "BEGIN IMMEDIATE;"
	    "ALTER TABLE queue ADD COLUMN body BLOB;"
	    "ALTER TABLE queue ADD COLUMN smime TEXT NOT NULL DEFAULT '';"
	    "PRAGMA user_version = 3; COMMIT") == -1) {
		exec(s, "ROLLBACK");
		snprintf(err, errlen, "%s/queue.db: upgrade: %s", s->dir,
		    sqlite3_errmsg(s->db));
		goto fail;
	} else if (schema_version(s) == 2 && exec(s, "BEGIN IMMEDIATE;"
	    "ALTER TABLE queue ADD COLUMN smime TEXT NOT NULL DEFAULT '';"
	    "PRAGMA user_version = 3; COMMIT") == -1) {
		exec(s, "ROLLBACK");
		snprintf(err, errlen, "%s/queue.db: upgrade: %s", s->dir,
		    sqlite3_errmsg(s->db));
		goto fail;
	} else if (schema_version(s) == SPOOL_SCHEMA)
		;
	else if (exec(s, "BEGIN IMMEDIATE") == -1) {
		snprintf(err, errlen, "%s/queue.db: %s", s->dir,
		    sqlite3_errmsg(s->db));
		goto fail;
	} else if (exec(s, schema) == -1 || exec(s, "COMMIT") == -1) {
		snprintf(err, errlen, "%s/queue.db: schema: %s", s->dir,
		    sqlite3_errmsg(s->db));
		exec(s, "ROLLBACK");
		goto fail;
	}
	if (rec)
		recover(s);
	spooldb_changed(s);
	return s;
 fail:
	spooldb_close(s);
	return NULL;
}

struct spooldb *
spooldb_open_reader(const char *data_dir, int share, char *err,
    size_t errlen)
{
	struct spooldb *s = xcalloc(1, sizeof(*s));
	char *path;

	s->msgfd = -1;
	s->dir = spooldb_share_dir(data_dir, share);
	s->msgdir = xasprintf("%s/msg", s->dir);
	path = xasprintf("%s/queue.db", s->dir);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, s->db ?
		    sqlite3_errmsg(s->db) : "cannot open");
		free(path);
		spooldb_close(s);
		return NULL;
	}
	free(path);
	sqlite3_busy_timeout(s->db, BUSY_MS);
	return s;
}

void
spooldb_close(struct spooldb *s)
{
	if (s == NULL)
		return;
	if (s->db != NULL)
		sqlite3_close(s->db);
	if (s->msgfd != -1)
		close(s->msgfd);
	free(s->dir);
	free(s->msgdir);
	free(s);
}

void
spooldb_new_id(char *id)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[SPOOL_ID_LEN / 2];
	uint64_t v;
	size_t i;

	if (RAND_bytes(r, sizeof(r)) != 1) {
		v = new_session_id();
		memcpy(r, &v, sizeof(r));
	}
	for (i = 0; i < sizeof(r); i++) {
		id[2 * i] = hex[r[i] >> 4];
		id[2 * i + 1] = hex[r[i] & 15];
	}
	id[SPOOL_ID_LEN] = '\0';
}

struct msgbuf *
spooldb_body_get(struct spooldb *s, const char *id)
{
	struct msgbuf *mb = NULL;
	sqlite3_stmt *st;
	const void *p;
	char *path;
	int n;

	path = spooldb_body_path(s, id);
	mb = msgbuf_open(path);
	free(path);
	if (mb != NULL || errno != ENOENT)
		return mb;
	if (prep(s, "SELECT body FROM queue WHERE id = ? AND body IS NOT NULL",
	    &st) == -1)
		return NULL;
	bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		p = sqlite3_column_blob(st, 0);
		n = sqlite3_column_bytes(st, 0);
		mb = msgbuf_new(NULL, (size_t)n + 1);
		if (n > 0 && msgbuf_append(mb, p, (size_t)n) == -1) {
			msgbuf_free(mb);
			mb = NULL;
		}
	} else
		errno = ENOENT;
	sqlite3_finalize(st);
	return mb;
}

char *
spooldb_body_path(struct spooldb *s, const char *id)
{
	return xasprintf("%s/%s", s->msgdir, id);
}

int
spooldb_body_write(struct spooldb *s, const char *id, struct msgbuf *mb,
    int *fdp)
{
	char buf[65536], *path = spooldb_body_path(s, id);
	size_t off = 0, len = msgbuf_size(mb);
	ssize_t n;
	int fd, saved;

	*fdp = -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		goto fail;
	while (off < len) {
		if ((n = msgbuf_pread(mb, buf, sizeof(buf), off)) <= 0) {
			errno = n == 0 ? EIO : errno;
			goto fail;
		}
		if (write_full(fd, buf, (size_t)n) == -1)
			goto fail;
		off += (size_t)n;
	}
	/* Start the writeback now; the batch's fdatasync()s then overlap
	 * instead of each waiting for the disk in turn. */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	free(path);
	*fdp = fd;
	return 0;
 fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(path);
	free(path);
	errno = saved;
	return -1;
}

int
spooldb_body_sync(struct spooldb *s, const char *id, int fd)
{
	int saved;

	if (fdatasync(fd) == 0 && close(fd) == 0)
		return 0;
	saved = errno;
	close(fd);
	spooldb_unlink_body(s, id);
	errno = saved;
	return -1;
}

int
spooldb_sync_dir(struct spooldb *s)
{
	return fsync(s->msgfd);
}

void
spooldb_unlink_body(struct spooldb *s, const char *id)
{
	char *path = spooldb_body_path(s, id);

	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("spool: unlink %s", path);
	free(path);
}

int
spooldb_begin(struct spooldb *s)
{
	return exec(s, "BEGIN IMMEDIATE");
}

int
spooldb_commit(struct spooldb *s)
{
	return exec(s, "COMMIT");
}

void
spooldb_rollback(struct spooldb *s)
{
	exec(s, "ROLLBACK");
}

static int
prep(struct spooldb *s, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		log_warnx("spool: %s: %s", sql, sqlite3_errmsg(s->db));
		return -1;
	}
	return 0;
}

/* Step a write statement to its end; finalizes it. */
static int
done(struct spooldb *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		log_warnx("spool: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

int
spooldb_insert(struct spooldb *s, const struct spool_entry *e,
    const void *body, size_t bodylen)
{
	sqlite3_stmt *st;
	size_t i;

	if (prep(s, "INSERT INTO queue (id, created, next_attempt, attempts, "
	    "sender, params, actions, rule_id, held, warned, dsn, client, "
	    "last_error, size, body, smime) VALUES "
	    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	    &st) == -1)
		return -1;
	if (body != NULL)
		sqlite3_bind_blob64(st, 15, body, (sqlite3_uint64)bodylen,
		    SQLITE_STATIC);
	bind_text(st, 1, e->id);
	sqlite3_bind_int64(st, 2, e->created);
	sqlite3_bind_int64(st, 3, e->next_attempt);
	sqlite3_bind_int(st, 4, e->attempts);
	bind_text(st, 5, e->sender);
	bind_text(st, 6, e->params ? e->params : "");
	sqlite3_bind_int64(st, 7, e->actions);
	sqlite3_bind_int64(st, 8, e->rule_id);
	sqlite3_bind_int(st, 9, e->held);
	sqlite3_bind_int(st, 10, e->warned);
	sqlite3_bind_int(st, 11, e->dsn);
	bind_text(st, 12, e->client ? e->client : "");
	bind_text(st, 13, e->last_error);
	sqlite3_bind_int64(st, 14, e->size);
	bind_text(st, 16, e->smime ? e->smime : "");
	if (done(s, st) == -1)
		return -1;
	for (i = 0; i < e->nrcpts; i++) {
		if (prep(s, "INSERT INTO queue_rcpt (qid, n, addr, params, "
		    "state, reply) VALUES (?,?,?,?,?,?)", &st) == -1)
			return -1;
		bind_text(st, 1, e->id);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		bind_text(st, 3, e->rcpts[i].addr);
		bind_text(st, 4, e->rcpts[i].params ? e->rcpts[i].params : "");
		sqlite3_bind_int(st, 5, e->rcpts[i].state);
		bind_text(st, 6, e->rcpts[i].reply);
		if (done(s, st) == -1)
			return -1;
	}
	return 0;
}

int
spooldb_update(struct spooldb *s, const struct spool_entry *e)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	if (prep(s, "UPDATE queue SET attempts = ?, next_attempt = ?, "
	    "warned = ?, last_error = ?, actions = ?, held = CASE WHEN "
	    "held IN (1, 3) THEN ? ELSE held END WHERE id = ?", &st) == -1)
		return -1;
	sqlite3_bind_int(st, 1, e->attempts);
	sqlite3_bind_int64(st, 2, e->next_attempt);
	sqlite3_bind_int(st, 3, e->warned);
	bind_text(st, 4, e->last_error);
	sqlite3_bind_int64(st, 5, e->actions);
	sqlite3_bind_int(st, 6, SPOOL_HELD_FOR_RETRY(e->held) ? e->held :
	    SPOOL_HOLD_NONE);
	bind_text(st, 7, e->id);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		log_warnx("spool: update %s: %s", e->id, sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_changes(s->db) == 0)
		return 1;
	for (i = 0; i < e->nrcpts; i++) {
		if (prep(s, "UPDATE queue_rcpt SET state = ?, reply = ? "
		    "WHERE qid = ? AND n = ?", &st) == -1)
			return -1;
		sqlite3_bind_int(st, 1, e->rcpts[i].state);
		bind_text(st, 2, e->rcpts[i].reply);
		bind_text(st, 3, e->id);
		sqlite3_bind_int64(st, 4, (int64_t)i);
		if (done(s, st) == -1)
			return -1;
	}
	return 0;
}

int
spooldb_delete(struct spooldb *s, const char *id)
{
	sqlite3_stmt *st;

	if (prep(s, "DELETE FROM queue WHERE id = ?", &st) == -1)
		return -1;
	bind_text(st, 1, id);
	if (done(s, st) == -1)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

int
spooldb_set_hold(struct spooldb *s, const char *id, int hold)
{
	sqlite3_stmt *st;

	if (prep(s, hold ? "UPDATE queue SET held = 2 WHERE id = ?" :
	    "UPDATE queue SET held = 0, next_attempt = 0 WHERE id = ?",
	    &st) == -1)
		return -1;
	bind_text(st, 1, id);
	if (done(s, st) == -1)
		return -1;
	return sqlite3_changes(s->db);
}

int
spooldb_flush(struct spooldb *s, const char *id)
{
	sqlite3_stmt *st;

	if (prep(s, id ? "UPDATE queue SET next_attempt = 0 WHERE id = ?" :
	    "UPDATE queue SET next_attempt = 0", &st) == -1)
		return -1;
	if (id != NULL)
		bind_text(st, 1, id);
	if (done(s, st) == -1)
		return -1;
	return sqlite3_changes(s->db);
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? xstrdup((const char *)t) : NULL;
}

/* The recipients of e. */
static int
load_rcpts(struct spooldb *s, struct spool_entry *e)
{
	sqlite3_stmt *st;
	struct spool_rcpt *r;

	if (prep(s, "SELECT addr, params, state, reply FROM queue_rcpt "
	    "WHERE qid = ? ORDER BY n", &st) == -1)
		return -1;
	bind_text(st, 1, e->id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1,
		    sizeof(*e->rcpts));
		r = &e->rcpts[e->nrcpts++];
		r->addr = col_dup(st, 0);
		r->params = col_dup(st, 1);
		r->state = sqlite3_column_int(st, 2);
		r->reply = col_dup(st, 3);
	}
	sqlite3_finalize(st);
	return 0;
}

#define ENTRY_COLS "id, created, next_attempt, attempts, sender, params, " \
	"actions, rule_id, held, warned, dsn, client, last_error, size, smime"

static struct spool_entry *
row_entry(struct spooldb *s, sqlite3_stmt *st)
{
	struct spool_entry *e = xcalloc(1, sizeof(*e));

	snprintf(e->id, sizeof(e->id), "%s",
	    (const char *)sqlite3_column_text(st, 0));
	e->created = sqlite3_column_int64(st, 1);
	e->next_attempt = sqlite3_column_int64(st, 2);
	e->attempts = sqlite3_column_int(st, 3);
	e->sender = col_dup(st, 4);
	e->params = col_dup(st, 5);
	e->actions = (unsigned)sqlite3_column_int64(st, 6);
	e->rule_id = sqlite3_column_int64(st, 7);
	e->held = sqlite3_column_int(st, 8);
	if (e->held < SPOOL_HOLD_NONE || e->held > SPOOL_HOLD_RETRY) {
		/* not a state of ours: kept, held until an admin decides */
		log_warnx("spool: %s: unknown hold state %d: held (smrelayctl "
		    "queue release sends it)", e->id, e->held);
		e->held = SPOOL_HOLD_ADMIN;
	}
	e->warned = sqlite3_column_int(st, 9);
	e->dsn = sqlite3_column_int(st, 10);
	e->client = col_dup(st, 11);
	e->last_error = col_dup(st, 12);
	e->size = sqlite3_column_int64(st, 13);
	e->smime = col_dup(st, 14);
	if (e->sender == NULL)
		e->sender = xstrdup("");
	load_rcpts(s, e);
	return e;
}

struct spool_entry **
spooldb_load(struct spooldb *s, size_t *np)
{
	sqlite3_stmt *st;
	struct spool_entry **v = NULL;
	size_t n = 0;

	*np = 0;
	if (prep(s, "SELECT " ENTRY_COLS " FROM queue ORDER BY created, id",
	    &st) == -1)
		return NULL;
	v = xcalloc(1, sizeof(*v));
	while (sqlite3_step(st) == SQLITE_ROW) {
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = row_entry(s, st);
		v[n] = NULL;
	}
	sqlite3_finalize(st);
	*np = n;
	return v;
}

struct spool_entry *
spooldb_get(struct spooldb *s, const char *id)
{
	sqlite3_stmt *st;
	struct spool_entry *e = NULL;

	if (prep(s, "SELECT " ENTRY_COLS " FROM queue WHERE id = ?", &st) ==
	    -1)
		return NULL;
	bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		e = row_entry(s, st);
	sqlite3_finalize(st);
	return e;
}

int
spooldb_scan_control(struct spooldb *s, void (*fn)(const char *, int,
    int64_t, void *), void *arg)
{
	sqlite3_stmt *st;

	if (prep(s, "SELECT id, held, next_attempt FROM queue", &st) == -1)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW)
		fn((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int(st, 1), sqlite3_column_int64(st, 2),
		    arg);
	sqlite3_finalize(st);
	return 0;
}

int
spooldb_changed(struct spooldb *s)
{
	sqlite3_stmt *st;
	int64_t v;

	if (prep(s, "PRAGMA data_version", &st) == -1)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return -1;
	}
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (v == s->data_version)
		return 0;
	s->data_version = v;
	return 1;
}

struct spool_entry *
spool_entry_dup(const struct spool_entry *e)
{
	struct spool_entry *c = xcalloc(1, sizeof(*c));
	size_t i;

	*c = *e;
	c->sender = xstrdup(e->sender ? e->sender : "");
	c->params = e->params ? xstrdup(e->params) : NULL;
	c->client = e->client ? xstrdup(e->client) : NULL;
	c->smime = e->smime ? xstrdup(e->smime) : NULL;
	c->last_error = e->last_error ? xstrdup(e->last_error) : NULL;
	c->rcpts = xcalloc(e->nrcpts + 1, sizeof(*c->rcpts));
	for (i = 0; i < e->nrcpts; i++) {
		c->rcpts[i].addr = xstrdup(e->rcpts[i].addr);
		c->rcpts[i].params = e->rcpts[i].params ?
		    xstrdup(e->rcpts[i].params) : NULL;
		c->rcpts[i].state = e->rcpts[i].state;
		c->rcpts[i].reply = e->rcpts[i].reply ?
		    xstrdup(e->rcpts[i].reply) : NULL;
	}
	return c;
}

void
spool_entry_free(struct spool_entry *e)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].params);
		free(e->rcpts[i].reply);
	}
	free(e->rcpts);
	free(e->sender);
	free(e->params);
	free(e->client);
	free(e->smime);
	free(e->last_error);
	free(e);
}

void
spool_entries_free(struct spool_entry **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		spool_entry_free(v[i]);
	free(v);
}

const char *
spool_rcpt_state_str(int st)
{
	switch (st) {
	case SPOOL_RCPT_PENDING: return "pending";
	case SPOOL_RCPT_DONE: return "delivered";
	case SPOOL_RCPT_FAILED: return "failed";
	case SPOOL_RCPT_BOUNCED: return "bounced";
	default: return "?";
	}
}

const char *
spool_hold_str(int h)
{
	switch (h) {
	case SPOOL_HOLD_NONE: return "active";
	case SPOOL_HOLD_POLICY: return "hold-cert";
	case SPOOL_HOLD_ADMIN: return "hold";
	case SPOOL_HOLD_RETRY: return "hold-retry";
	default: return "?";
	}
}

/* Copy the entries of `from` that `to` lacks: bodies written and synced
 * first, then the rows in one commit.  *moved[i] says which made it. */
static int
take_copy(struct spooldb *to, struct spooldb *from, struct spool_entry **v,
    size_t n, char *moved, char *err, size_t errlen)
{
	struct spool_entry *have;
	struct msgbuf *mb;
	size_t i;
	int fd;

	for (i = 0; i < n; i++) {
		if ((have = spooldb_get(to, v[i]->id)) != NULL) {
			/* an earlier take-over committed it, then stopped */
			spool_entry_free(have);
			moved[i] = 2;
			continue;
		}
		if ((mb = spooldb_body_get(from, v[i]->id)) == NULL) {
			log_warn("spool: %s: %s: body", from->dir, v[i]->id);
			continue;
		}
		if (spooldb_body_write(to, v[i]->id, mb, &fd) == -1 ||
		    spooldb_body_sync(to, v[i]->id, fd) == -1) {
			snprintf(err, errlen, "%s: %s", to->msgdir,
			    strerror(errno));
			msgbuf_free(mb);
			return -1;
		}
		msgbuf_free(mb);
		moved[i] = 1;
	}
	if (spooldb_sync_dir(to) == -1 || spooldb_begin(to) == -1) {
		snprintf(err, errlen, "%s: cannot write", to->dir);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (moved[i] == 1 && spooldb_insert(to, v[i], NULL, 0) == -1) {
			spooldb_rollback(to);
			snprintf(err, errlen, "%s: insert %s: %s", to->dir,
			    v[i]->id, sqlite3_errmsg(to->db));
			return -1;
		}
	if (spooldb_commit(to) == -1) {
		snprintf(err, errlen, "%s: commit: %s", to->dir,
		    sqlite3_errmsg(to->db));
		return -1;
	}
	return 0;
}

int
spooldb_take_over(struct spooldb *to, struct spooldb *from, size_t *nmoved,
    size_t *nleft, char *err, size_t errlen)
{
	struct spool_entry **v;
	char *moved;
	size_t i, n;
	int rc = -1;

	*nmoved = *nleft = 0;
	if ((v = spooldb_load(from, &n)) == NULL) {
		snprintf(err, errlen, "%s: cannot read the queue", from->dir);
		return -1;
	}
	moved = xcalloc(n + 1, 1);
	if (take_copy(to, from, v, n, moved, err, errlen) == -1)
		goto out;
	/* Now `to` has them: only then do they leave `from`.  A stop in
	 * between leaves them in both, and the next take-over finds them in
	 * `to` before any queue ran it (moved == 2). */
	if (spooldb_begin(from) == -1) {
		snprintf(err, errlen, "%s: busy", from->dir);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (moved[i] && spooldb_delete(from, v[i]->id) == -1) {
			spooldb_rollback(from);
			snprintf(err, errlen, "%s: delete %s", from->dir,
			    v[i]->id);
			goto out;
		}
	if (spooldb_commit(from) == -1) {
		snprintf(err, errlen, "%s: commit: %s", from->dir,
		    sqlite3_errmsg(from->db));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (moved[i]) {
			spooldb_unlink_body(from, v[i]->id);
			(*nmoved)++;
		} else
			(*nleft)++;
	}
	rc = 0;
 out:
	free(moved);
	spool_entries_free(v, n);
	return rc;
}

int
spooldb_remove_share(const char *data_dir, int share)
{
	static const char *files[] = { "queue.db-wal", "queue.db-shm",
	    "queue.db-journal", "queue.db" };
	char *dir, *path;
	size_t i;
	int rc = 0;

	if (share <= 0)
		return -1;
	dir = spooldb_share_dir(data_dir, share);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		path = xasprintf("%s/%s", dir, files[i]);
		if (unlink(path) == -1 && errno != ENOENT)
			rc = -1;
		free(path);
	}
	path = xasprintf("%s/msg", dir);
	if (rmdir(path) == -1 && errno != ENOENT)
		rc = -1;
	free(path);
	if (rc == 0 && rmdir(dir) == -1)
		rc = -1;
	free(dir);
	return rc;
}
