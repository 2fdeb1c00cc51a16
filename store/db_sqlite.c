/* db_sqlite.c: the SQLite backend of db.h (one file, the default). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "lib/lib.h"
#include "db_priv.h"

struct sqlite_db {
	struct db	 base;
	sqlite3		*h;
	char		*path;
};

struct sqlite_stmt {
	struct db_stmt	 base;
	sqlite3_stmt	*s;
};

#define SDB(d)	((struct sqlite_db *)(void *)(d))
#define SST(s)	(((struct sqlite_stmt *)(void *)(s))->s)

static void
sq_close(struct db *db)
{
	sqlite3_close(SDB(db)->h);
	free(SDB(db)->path);
	free(db);
}

static const char *
sq_name(const struct db *db)
{
	return ((const struct sqlite_db *)(const void *)db)->path;
}

static const char *
sq_errmsg(struct db *db)
{
	return sqlite3_errmsg(SDB(db)->h);
}

static enum db_errclass
sq_errclass(struct db *db)
{
	int rc = sqlite3_extended_errcode(SDB(db)->h);

	switch (rc) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return DB_ERR_NONE;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return DB_ERR_FOREIGN_KEY;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return DB_ERR_UNIQUE;
	}
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return DB_ERR_BUSY;
	return DB_ERR_OTHER;
}

static int
sq_exec(struct db *db, const char *sql)
{
	return sqlite3_exec(SDB(db)->h, sql, NULL, NULL, NULL) == SQLITE_OK ?
	    0 : -1;
}

static int
sq_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
	struct sqlite_stmt *st;
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(SDB(db)->h, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	st = xcalloc(1, sizeof(*st));
	st->base.ops = db->ops;
	st->base.db = db;
	st->s = s;
	*out = &st->base;
	return 0;
}

static void
sq_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	sqlite3_bind_int64(SST(s), i, v);
}

static void
sq_bind_text(struct db_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(SST(s), i);
	else
		sqlite3_bind_text(SST(s), i, v, -1, SQLITE_TRANSIENT);
}

static void
sq_bind_blob(struct db_stmt *s, int i, const void *p, size_t len)
{
	/* an empty blob is a blob, not NULL */
	if (p == NULL || len == 0)
		sqlite3_bind_zeroblob(SST(s), i, 0);
	else
		sqlite3_bind_blob64(SST(s), i, p, len, SQLITE_TRANSIENT);
}

static void
sq_bind_null(struct db_stmt *s, int i)
{
	sqlite3_bind_null(SST(s), i);
}

static int
sq_step(struct db_stmt *s)
{
	switch (sqlite3_step(SST(s))) {
	case SQLITE_ROW:
		return DB_ROW;
	case SQLITE_DONE:
		return DB_DONE;
	default:
		return DB_ERROR;
	}
}

static int64_t
sq_column_int64(struct db_stmt *s, int col)
{
	return sqlite3_column_int64(SST(s), col);
}

static const char *
sq_column_text(struct db_stmt *s, int col)
{
	return (const char *)sqlite3_column_text(SST(s), col);
}

static const void *
sq_column_blob(struct db_stmt *s, int col)
{
	return sqlite3_column_blob(SST(s), col);
}

static int
sq_column_bytes(struct db_stmt *s, int col)
{
	return sqlite3_column_bytes(SST(s), col);
}

static int
sq_column_is_null(struct db_stmt *s, int col)
{
	return sqlite3_column_type(SST(s), col) == SQLITE_NULL;
}

static int
sq_column_count(struct db_stmt *s)
{
	return sqlite3_column_count(SST(s));
}

static const char *
sq_column_name(struct db_stmt *s, int col)
{
	return sqlite3_column_name(SST(s), col);
}

static void
sq_reset(struct db_stmt *s)
{
	sqlite3_reset(SST(s));
}

static void
sq_finalize(struct db_stmt *s)
{
	sqlite3_finalize(SST(s));
	free(s);
}

static int64_t
sq_changes(struct db *db)
{
	return sqlite3_changes64(SDB(db)->h);
}

static int64_t
sq_last_insert_id(struct db *db)
{
	return sqlite3_last_insert_rowid(SDB(db)->h);
}

static int
sq_in_transaction(struct db *db)
{
	return !sqlite3_get_autocommit(SDB(db)->h);
}

/* SQLite has no notifications: the store polls its change counter. */
static int
sq_listen(struct db *db, const char *channel)
{
	(void)db;
	(void)channel;
	return -1;
}

static int
sq_notify_fd(struct db *db)
{
	(void)db;
	return -1;
}

static int
sq_notified(struct db *db)
{
	(void)db;
	return 0;
}

static const struct db_ops sqlite_ops = {
	.close = sq_close,
	.name = sq_name,
	.errmsg = sq_errmsg,
	.errclass = sq_errclass,
	.exec = sq_exec,
	.prepare = sq_prepare,
	.bind_int64 = sq_bind_int64,
	.bind_text = sq_bind_text,
	.bind_blob = sq_bind_blob,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.column_int64 = sq_column_int64,
	.column_text = sq_column_text,
	.column_blob = sq_column_blob,
	.column_bytes = sq_column_bytes,
	.column_is_null = sq_column_is_null,
	.column_count = sq_column_count,
	.column_name = sq_column_name,
	.reset = sq_reset,
	.finalize = sq_finalize,
	.changes = sq_changes,
	.last_insert_id = sq_last_insert_id,
	.in_transaction = sq_in_transaction,
	.listen = sq_listen,
	.notify_fd = sq_notify_fd,
	.notified = sq_notified,
};

/* Open the file at path (see db.h). */
struct db *
db_open_sqlite(const char *path, int readonly, int busy_timeout_ms,
    char *err, size_t errlen)
{
	struct sqlite_db *d;
	int flags;

	d = xcalloc(1, sizeof(*d));
	d->base.ops = &sqlite_ops;
	d->base.kind = DB_SQLITE;
	d->path = xstrdup(path);
	flags = readonly ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
	if (sqlite3_open_v2(path, &d->h, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, d->h ?
		    sqlite3_errmsg(d->h) : "cannot open");
		sq_close(&d->base);
		return NULL;
	}
	sqlite3_extended_result_codes(d->h, 1);
	sqlite3_busy_timeout(d->h, busy_timeout_ms);
	if (readonly)
		return &d->base;
	if (sq_exec(&d->base, "PRAGMA foreign_keys = ON") == -1 ||
	    sq_exec(&d->base, "PRAGMA journal_mode = WAL") == -1 ||
	    sq_exec(&d->base, "PRAGMA synchronous = NORMAL") == -1) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(d->h));
		sq_close(&d->base);
		return NULL;
	}
	return &d->base;
}
