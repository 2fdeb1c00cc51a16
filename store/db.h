/*
 * db.h: the one SQL interface the store is written against, with two
 * backends: SQLite (db_sqlite.c, the default and the embedded choice for
 * one node) and PostgreSQL (db_pg.c, libpq, several nodes on one
 * database).  Private to store/: nothing outside it sees a struct db.
 *
 * The SQL the store writes is the common dialect of both:
 * - parameters are '?' (db_pg.c numbers them $1, $2, ...; a '?' inside a
 *   quoted literal is left alone);
 * - INSERT ... ON CONFLICT (cols) DO NOTHING / DO UPDATE SET x = excluded.x,
 *   never INSERT OR IGNORE / OR REPLACE;
 * - group_concat(x, sep) (PostgreSQL gets an aggregate of that name in its
 *   schema);
 * - integers are 64-bit, booleans are integers 0/1, binary is a blob.
 * Where the dialects cannot meet (DDL, PRAGMA, VACUUM), the store asks
 * db_kind().
 *
 * A connection is used by one thread at a time.  Statements belong to
 * their connection and are finalized before it is closed.
 */
#ifndef SMRELAY_STORE_DB_H
#define SMRELAY_STORE_DB_H

#include <stddef.h>
#include <stdint.h>

enum db_kind {
	DB_SQLITE,
	DB_POSTGRESQL
};

/* What db_step returns (the values of SQLite's codes, for the reader). */
#define DB_ROW		100	/* a row is there: read it with db_column_* */
#define DB_DONE		101	/* the statement ran to completion */
#define DB_ERROR	1	/* failed: db_errmsg(), db_errclass() */

/* What kind of failure the last error of a connection was. */
enum db_errclass {
	DB_ERR_NONE,
	DB_ERR_FOREIGN_KEY,	/* a row others refer to, or a dangling ref */
	DB_ERR_UNIQUE,		/* a duplicate of a unique key */
	DB_ERR_CONNECTION,	/* the server is gone (PostgreSQL): retry */
	DB_ERR_BUSY,		/* locked past the timeout (SQLite) */
	DB_ERR_OTHER
};

struct db;
struct db_stmt;

/*
 * Open the SQLite file at path (it must exist; the store creates it 0600
 * first), read-write with WAL, foreign keys on and busy_timeout_ms, or
 * read-only.  NULL with the reason in err.
 */
struct db *db_open_sqlite(const char *path, int readonly, int busy_timeout_ms,
    char *err, size_t errlen);
/*
 * Connect to PostgreSQL with a libpq connection string
 * ("postgresql://user@host:port/db?..."), waiting at most connect_timeout
 * seconds.  NULL with the reason in err (the password is never in it).
 */
struct db *db_open_pg(const char *conninfo, int connect_timeout,
    char *err, size_t errlen);
/*
 * db_open_pg, but a server that cannot be reached now is not an error: the
 * connection is made at the first use after it answers (with backoff from
 * 1 to 30 s between tries; meanwhile every command fails with
 * DB_ERR_CONNECTION).  A connection string that cannot work, or a server
 * that answers and is unfit, is still an error: NULL.  When it returns a
 * connection that is not up, err says why.
 */
struct db *db_open_pg_lazy(const char *conninfo, int connect_timeout,
    char *err, size_t errlen);
/* After each new connection, before anything else runs on it: 0, or -1
 * with the reason in err (the connection is then not used, and tried again
 * with backoff).  Its own commands go through as usual. */
typedef int db_connect_fn(void *arg, char *err, size_t errlen);
/* Run fn after each new connection of a PostgreSQL db (the first one too
 * when it was not up at open); no-op on SQLite. */
void db_pg_on_connect(struct db *, db_connect_fn *fn, void *arg);
/* Whether a PostgreSQL db is connected and set up now. */
int db_pg_up(struct db *);
void db_close(struct db *);
enum db_kind db_kind(const struct db *);
/* The connection string or path, without any password: for messages. */
const char *db_name(const struct db *);

/* The last error of this connection: its message and its class. */
const char *db_errmsg(struct db *);
enum db_errclass db_errclass(struct db *);

/*
 * Run SQL without parameters or rows; several statements separated by ';'
 * are allowed (schema scripts).  0, or -1 (db_errmsg).
 */
int db_exec(struct db *, const char *sql);

/* Prepare one statement; 0, or -1 (db_errmsg). */
int db_prepare(struct db *, const char *sql, struct db_stmt **);
/*
 * Bind parameter i (1-based).  Text and blobs are copied: the caller's
 * buffer may go right after the call.  A NULL text binds SQL NULL.
 */
void db_bind_int64(struct db_stmt *, int i, int64_t v);
void db_bind_int(struct db_stmt *, int i, int v);
void db_bind_text(struct db_stmt *, int i, const char *s);
void db_bind_blob(struct db_stmt *, int i, const void *p, size_t len);
void db_bind_null(struct db_stmt *, int i);
/* DB_ROW, DB_DONE or DB_ERROR.  The first call runs the statement. */
int db_step(struct db_stmt *);
/*
 * Column col (0-based) of the current row.  Text and blob pointers stay
 * valid until the next db_step, db_reset or db_finalize.  NULL column:
 * 0, NULL text, NULL blob with 0 bytes.  db_column_int saturates a value
 * out of int's range (INT_MAX, INT_MIN) instead of wrapping it.
 */
int64_t db_column_int64(struct db_stmt *, int col);
int db_column_int(struct db_stmt *, int col);
const char *db_column_text(struct db_stmt *, int col);
const void *db_column_blob(struct db_stmt *, int col);
int db_column_bytes(struct db_stmt *, int col);
int db_column_is_null(struct db_stmt *, int col);
int db_column_count(struct db_stmt *);
/* The column's name as the SELECT gave it ("AS name"). */
const char *db_column_name(struct db_stmt *, int col);
/* Ready to run again; the bindings are kept. */
void db_reset(struct db_stmt *);
void db_finalize(struct db_stmt *);

/* Rows changed by the last INSERT/UPDATE/DELETE that completed. */
int64_t db_changes(struct db *);
/* The id the last INSERT into a table with an id column gave; -1 error. */
int64_t db_last_insert_id(struct db *);
/* Whether a transaction is open (BEGIN without COMMIT/ROLLBACK yet). */
int db_in_transaction(struct db *);

/*
 * Change notification (PostgreSQL LISTEN/NOTIFY; SQLite has none and
 * returns -1 / 0).  db_listen subscribes this connection to channel;
 * db_notify_fd is the socket to watch for readability; db_notified reads
 * what arrived without blocking and returns how many notifications on
 * any subscribed channel were pending (0 none, -1 the connection is
 * lost).
 */
int db_listen(struct db *, const char *channel);
int db_notify_fd(struct db *);
int db_notified(struct db *);

#endif
