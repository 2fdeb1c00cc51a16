/* db.c: the dispatch of db.h through each connection's backend table. */
#include "autoconfig.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "db_priv.h"

void
db_close(struct db *db)
{
	if (db != NULL)
		db->ops->close(db);
}

enum db_kind
db_kind(const struct db *db)
{
	return db->kind;
}

const char *
db_name(const struct db *db)
{
	return db->ops->name(db);
}

const char *
db_errmsg(struct db *db)
{
	return db->ops->errmsg(db);
}

enum db_errclass
db_errclass(struct db *db)
{
	return db->ops->errclass(db);
}

int
db_exec(struct db *db, const char *sql)
{
	return db->ops->exec(db, sql);
}

int
db_prepare(struct db *db, const char *sql, struct db_stmt **stmt)
{
	*stmt = NULL;
	return db->ops->prepare(db, sql, stmt);
}

void
db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	s->ops->bind_int64(s, i, v);
}

void
db_bind_int(struct db_stmt *s, int i, int v)
{
	s->ops->bind_int64(s, i, (int64_t)v);
}

void
db_bind_text(struct db_stmt *s, int i, const char *v)
{
	s->ops->bind_text(s, i, v);
}

void
db_bind_blob(struct db_stmt *s, int i, const void *p, size_t len)
{
	s->ops->bind_blob(s, i, p, len);
}

void
db_bind_null(struct db_stmt *s, int i)
{
	s->ops->bind_null(s, i);
}

int
db_step(struct db_stmt *s)
{
	return s->ops->step(s);
}

int64_t
db_column_int64(struct db_stmt *s, int col)
{
	return s->ops->column_int64(s, col);
}

int
db_column_int(struct db_stmt *s, int col)
{
	int64_t v = s->ops->column_int64(s, col);

	/* saturated, not wrapped: 2^32 + 1 written by another program must
	 * not read as 1 */
	if (v > INT_MAX)
		return INT_MAX;
	if (v < INT_MIN)
		return INT_MIN;
	return (int)v;
}

const char *
db_column_text(struct db_stmt *s, int col)
{
	return s->ops->column_text(s, col);
}

const void *
db_column_blob(struct db_stmt *s, int col)
{
	return s->ops->column_blob(s, col);
}

int
db_column_bytes(struct db_stmt *s, int col)
{
	return s->ops->column_bytes(s, col);
}

int
db_column_is_null(struct db_stmt *s, int col)
{
	return s->ops->column_is_null(s, col);
}

int
db_column_count(struct db_stmt *s)
{
	return s->ops->column_count(s);
}

const char *
db_column_name(struct db_stmt *s, int col)
{
	return s->ops->column_name(s, col);
}

void
db_reset(struct db_stmt *s)
{
	s->ops->reset(s);
}

void
db_finalize(struct db_stmt *s)
{
	if (s != NULL)
		s->ops->finalize(s);
}

int64_t
db_changes(struct db *db)
{
	return db->ops->changes(db);
}

int64_t
db_last_insert_id(struct db *db)
{
	return db->ops->last_insert_id(db);
}

int
db_in_transaction(struct db *db)
{
	return db->ops->in_transaction(db);
}

int
db_listen(struct db *db, const char *channel)
{
	return db->ops->listen(db, channel);
}

int
db_notify_fd(struct db *db)
{
	return db->ops->notify_fd(db);
}

int
db_notified(struct db *db)
{
	return db->ops->notified(db);
}
