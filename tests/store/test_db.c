/*
 * test_db.c: the SQL interface of store/db.h on its two backends.
 *
 *   test_db            the common cases on SQLite (a temporary file) and,
 *                      when PG_URL is set, on PostgreSQL, with the cases
 *                      only PostgreSQL has (LISTEN/NOTIFY, bounds, the
 *                      password kept out of messages)
 *   test_db crash N    PostgreSQL (PG_URL) taken away N times by the
 *                      caller (t_db_pg.sh): prints READY, reads a line
 *                      when the server is gone, prints DOWN, reads a line
 *                      when it is back, then checks that the same
 *                      connections work again
 */
#include "autoconfig.h"

#include <poll.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/lib.h"
#include "store/db.h"
#include "../unit/check.h"

#define CHAN	"smrelay_test"

static void	lazy_cases(const char *);

static const char *
kindname(struct db *db)
{
	return db_kind(db) == DB_SQLITE ? "sqlite" : "postgresql";
}

/* Run sql; report a failure. */
static int
exec_ok(struct db *db, const char *sql)
{
	int rc = db_exec(db, sql);

	CHECK(rc == 0, "%s: %s: %s", kindname(db), sql, db_errmsg(db));
	return rc;
}

/* The one integer the query gives; -999 on failure. */
static int64_t
one_int(struct db *db, const char *sql)
{
	struct db_stmt *s;
	int64_t v = -999;

	if (db_prepare(db, sql, &s) == -1) {
		CHECK(0, "%s: prepare %s: %s", kindname(db), sql,
		    db_errmsg(db));
		return v;
	}
	if (db_step(s) == DB_ROW)
		v = db_column_int64(s, 0);
	else
		CHECK(0, "%s: %s: %s", kindname(db), sql, db_errmsg(db));
	db_finalize(s);
	return v;
}

static void
schema(struct db *db)
{
	exec_ok(db, "DROP TABLE IF EXISTS t_child; DROP TABLE IF EXISTS "
	    "t_parent; DROP TABLE IF EXISTS t_item");
	if (db_kind(db) == DB_SQLITE)
		exec_ok(db, "CREATE TABLE t_item (id INTEGER PRIMARY KEY "
		    "AUTOINCREMENT, n INTEGER, s TEXT UNIQUE, b BLOB);"
		    "CREATE TABLE t_parent (id INTEGER PRIMARY KEY);"
		    "CREATE TABLE t_child (id INTEGER PRIMARY KEY, parent "
		    "INTEGER REFERENCES t_parent(id))");
	else
		exec_ok(db, "CREATE TABLE t_item (id BIGSERIAL PRIMARY KEY, "
		    "n BIGINT, s TEXT UNIQUE, b BYTEA);"
		    "CREATE TABLE t_parent (id BIGINT PRIMARY KEY);"
		    "CREATE TABLE t_child (id BIGINT PRIMARY KEY, parent "
		    "BIGINT REFERENCES t_parent(id))");
}

/* Values in and out: int64 extremes, NULL, UTF-8, blobs with zeros. */
static void
test_values(struct db *db)
{
	static const unsigned char blob[] = { 0, 1, 0, 255, 0, '\'', '?' };
	static const char utf8[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
	const char *k = kindname(db);
	struct db_stmt *s;
	int64_t id;

	CHECK(db_prepare(db, "INSERT INTO t_item (n, s, b) VALUES (?, ?, ?)",
	    &s) == 0, "%s: prepare insert: %s", k, db_errmsg(db));
	db_bind_int64(s, 1, INT64_MAX);
	db_bind_text(s, 2, utf8);
	db_bind_blob(s, 3, blob, sizeof(blob));
	CHECK(db_step(s) == DB_DONE, "%s: insert 1: %s", k, db_errmsg(db));
	CHECK(db_changes(db) == 1, "%s: changes 1", k);
	id = db_last_insert_id(db);
	CHECK(id == one_int(db, "SELECT max(id) FROM t_item"),
	    "%s: last insert id %lld", k, (long long)id);
	db_reset(s);
	db_bind_int64(s, 1, INT64_MIN);
	db_bind_text(s, 2, NULL);
	db_bind_blob(s, 3, "", 0);
	CHECK(db_step(s) == DB_DONE, "%s: insert 2: %s", k, db_errmsg(db));
	db_reset(s);
	db_bind_null(s, 1);
	db_bind_text(s, 2, "third");
	db_bind_null(s, 3);
	CHECK(db_step(s) == DB_DONE, "%s: insert 3: %s", k, db_errmsg(db));
	CHECK(db_last_insert_id(db) == id + 2, "%s: last insert id + 2", k);
	db_finalize(s);

	CHECK(db_prepare(db, "SELECT n AS num, s AS str, b AS bin FROM t_item "
	    "WHERE id = ?", &s) == 0, "%s: prepare select: %s", k,
	    db_errmsg(db));
	CHECK(db_column_count(s) == 3, "%s: column count", k);
	CHECK(strcmp(db_column_name(s, 0), "num") == 0 &&
	    strcmp(db_column_name(s, 2), "bin") == 0, "%s: column names", k);
	db_bind_int64(s, 1, id);
	CHECK(db_step(s) == DB_ROW, "%s: row 1: %s", k, db_errmsg(db));
	CHECK(db_column_int64(s, 0) == INT64_MAX, "%s: INT64_MAX", k);
	CHECK(db_column_int(s, 0) == INT_MAX, "%s: int saturated: %d", k,
	    db_column_int(s, 0));
	CHECK(db_column_text(s, 1) != NULL &&
	    strcmp(db_column_text(s, 1), utf8) == 0, "%s: UTF-8", k);
	CHECK(db_column_bytes(s, 2) == (int)sizeof(blob) &&
	    memcmp(db_column_blob(s, 2), blob, sizeof(blob)) == 0,
	    "%s: blob with zeros (%d bytes)", k, db_column_bytes(s, 2));
	CHECK(db_step(s) == DB_DONE, "%s: one row", k);
	/* the same statement again: reset keeps the bindings */
	db_reset(s);
	CHECK(db_step(s) == DB_ROW && db_column_int64(s, 0) == INT64_MAX,
	    "%s: reset and run again", k);
	db_reset(s);
	db_bind_int64(s, 1, id + 1);
	CHECK(db_step(s) == DB_ROW, "%s: row 2: %s", k, db_errmsg(db));
	CHECK(db_column_int64(s, 0) == INT64_MIN, "%s: INT64_MIN", k);
	CHECK(db_column_int(s, 0) == INT_MIN, "%s: int saturated low", k);
	CHECK(db_column_is_null(s, 1) && db_column_text(s, 1) == NULL,
	    "%s: NULL text", k);
	CHECK(!db_column_is_null(s, 2) && db_column_bytes(s, 2) == 0,
	    "%s: empty blob is not NULL", k);
	db_reset(s);
	db_bind_int64(s, 1, id + 2);
	CHECK(db_step(s) == DB_ROW, "%s: row 3: %s", k, db_errmsg(db));
	CHECK(db_column_is_null(s, 0) && db_column_int64(s, 0) == 0,
	    "%s: NULL integer", k);
	CHECK(db_column_is_null(s, 2) && db_column_blob(s, 2) == NULL &&
	    db_column_bytes(s, 2) == 0, "%s: NULL blob", k);
	db_reset(s);
	db_bind_int64(s, 1, -5);
	CHECK(db_step(s) == DB_DONE, "%s: no row", k);
	db_finalize(s);
}

/* '?' where it is no parameter. */
static void
test_quoting(struct db *db)
{
	const char *k = kindname(db);
	struct db_stmt *s;

	CHECK(db_prepare(db, "SELECT '?' AS q, 'it''s ?' AS r, 1 AS \"a?b\", "
	    "? AS v /* ? */ -- ?\n", &s) == 0, "%s: prepare: %s", k,
	    db_errmsg(db));
	if (s == NULL)
		return;
	db_bind_text(s, 1, "x?");
	CHECK(db_step(s) == DB_ROW, "%s: step: %s", k, db_errmsg(db));
	CHECK(strcmp(db_column_text(s, 0), "?") == 0, "%s: '?'", k);
	CHECK(strcmp(db_column_text(s, 1), "it's ?") == 0, "%s: ''", k);
	CHECK(strcmp(db_column_name(s, 2), "a?b") == 0, "%s: \"a?b\"", k);
	CHECK(strcmp(db_column_text(s, 3), "x?") == 0, "%s: ? bound", k);
	db_finalize(s);
}

static void
test_changes_tx(struct db *db)
{
	const char *k = kindname(db);
	struct db_stmt *s;

	exec_ok(db, "UPDATE t_item SET n = 7");
	CHECK(db_changes(db) == 3, "%s: changes 3: %lld", k,
	    (long long)db_changes(db));
	/* a SELECT changes nothing */
	one_int(db, "SELECT count(*) FROM t_item");
	CHECK(db_changes(db) == 3, "%s: changes after SELECT", k);
	exec_ok(db, "INSERT INTO t_item (s) VALUES ('third') ON CONFLICT (s) "
	    "DO NOTHING");
	CHECK(db_changes(db) == 0, "%s: ON CONFLICT DO NOTHING", k);
	exec_ok(db, "INSERT INTO t_item (s, n) VALUES ('third', 9) ON CONFLICT "
	    "(s) DO UPDATE SET n = excluded.n");
	CHECK(db_changes(db) == 1 && one_int(db,
	    "SELECT n FROM t_item WHERE s = 'third'") == 9,
	    "%s: ON CONFLICT DO UPDATE", k);

	CHECK(!db_in_transaction(db), "%s: no transaction", k);
	exec_ok(db, "BEGIN");
	CHECK(db_in_transaction(db), "%s: in transaction", k);
	exec_ok(db, "INSERT INTO t_item (s) VALUES ('rolled back')");
	exec_ok(db, "ROLLBACK");
	CHECK(!db_in_transaction(db), "%s: rolled back", k);
	CHECK(one_int(db, "SELECT count(*) FROM t_item WHERE s = "
	    "'rolled back'") == 0, "%s: rollback undid", k);
	exec_ok(db, "BEGIN");
	exec_ok(db, "INSERT INTO t_item (s) VALUES ('committed')");
	exec_ok(db, "COMMIT");
	CHECK(one_int(db, "SELECT count(*) FROM t_item WHERE s = "
	    "'committed'") == 1, "%s: commit kept", k);

	/* errors and their classes */
	CHECK(db_exec(db, "INSERT INTO t_item (s) VALUES ('committed')") ==
	    -1 && db_errclass(db) == DB_ERR_UNIQUE, "%s: unique: %s", k,
	    db_errmsg(db));
	exec_ok(db, "INSERT INTO t_parent (id) VALUES (1)");
	CHECK(db_prepare(db, "INSERT INTO t_child (id, parent) VALUES (?, ?)",
	    &s) == 0, "%s: prepare child", k);
	db_bind_int(s, 1, 1);
	db_bind_int(s, 2, 2);
	CHECK(db_step(s) == DB_ERROR && db_errclass(db) == DB_ERR_FOREIGN_KEY,
	    "%s: dangling reference: %s", k, db_errmsg(db));
	db_reset(s);
	db_bind_int(s, 2, 1);
	CHECK(db_step(s) == DB_DONE, "%s: child: %s", k, db_errmsg(db));
	db_finalize(s);
	CHECK(db_exec(db, "DELETE FROM t_parent") == -1 &&
	    db_errclass(db) == DB_ERR_FOREIGN_KEY, "%s: referenced row: %s",
	    k, db_errmsg(db));
	CHECK(db_exec(db, "SELECT * FROM no_such_table") == -1 &&
	    db_errclass(db) == DB_ERR_OTHER, "%s: other error", k);
	CHECK(db_prepare(db, "SELEKT 1", &s) == -1 && s == NULL,
	    "%s: bad SQL refused at prepare", k);
}

/* More distinct statements than the cache holds, and each again. */
static void
test_many(struct db *db)
{
	struct db_stmt *s;
	char sql[64];
	int i, round, ok = 1;

	for (round = 0; round < 2; round++) {
		for (i = 0; i < 150; i++) {
			snprintf(sql, sizeof(sql), "SELECT %d + ? AS v", i);
			if (db_prepare(db, sql, &s) == -1) {
				ok = 0;
				break;
			}
			db_bind_int(s, 1, round);
			if (db_step(s) != DB_ROW ||
			    db_column_int(s, 0) != i + round)
				ok = 0;
			db_finalize(s);
		}
	}
	CHECK(ok, "%s: 150 statements twice: %s", kindname(db), db_errmsg(db));
}

static void
test_common(struct db *db)
{
	schema(db);
	test_values(db);
	test_quoting(db);
	test_changes_tx(db);
	test_many(db);
}

static void
test_sqlite(void)
{
	char path[] = "/tmp/test_db.XXXXXX", err[256];
	struct db *db;
	int fd;

	if ((fd = mkstemp(path)) == -1)
		fatal("mkstemp");
	close(fd);
	db = db_open_sqlite(path, 0, 5000, err, sizeof(err));
	CHECK(db != NULL, "db_open_sqlite: %s", err);
	if (db != NULL) {
		CHECK(db_kind(db) == DB_SQLITE, "sqlite kind");
		CHECK(db_listen(db, CHAN) == -1 && db_notify_fd(db) == -1 &&
		    db_notified(db) == 0, "sqlite: no notifications");
		test_common(db);
		db_close(db);
	}
	unlink(path);
	snprintf(err, sizeof(err), "%s-wal", path);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", path);
	unlink(err);
}

/* Wait (bounded) until fd is readable; 1 readable, 0 not. */
static int
readable(int fd, int ms)
{
	struct pollfd pfd;

	pfd.fd = fd;
	pfd.events = POLLIN;
	return fd != -1 && poll(&pfd, 1, ms) == 1;
}

/* Notifications pending on a, waiting up to ms for the first. */
static int
wait_notified(struct db *a, int ms)
{
	double end = mono_now() + ms / 1000.0;
	int n = 0, r;

	while (n == 0 && mono_now() < end) {
		readable(db_notify_fd(a), 100);
		if ((r = db_notified(a)) < 0)
			return r;
		n += r;
	}
	return n;
}

static void
test_notify(struct db *a, struct db *b)
{
	struct db_stmt *s;

	CHECK(db_listen(a, "Bad") == -1 && db_listen(a, "x\"; DROP") == -1 &&
	    db_listen(a, "") == -1, "pg: bad channel names refused");
	CHECK(db_listen(a, CHAN) == 0, "pg: listen: %s", db_errmsg(a));
	CHECK(db_listen(a, CHAN) == 0, "pg: listen twice");
	CHECK(db_notify_fd(a) >= 0, "pg: notify fd");
	CHECK(db_notified(a) == 0, "pg: nothing yet");
	exec_ok(b, "NOTIFY " CHAN);
	CHECK(wait_notified(a, 5000) == 1, "pg: NOTIFY arrived");
	CHECK(db_notified(a) == 0, "pg: drained");
	/* a notification inside a transaction arrives at its commit */
	exec_ok(b, "BEGIN");
	CHECK(db_prepare(b, "SELECT pg_notify(?, ?)", &s) == 0,
	    "pg: prepare pg_notify: %s", db_errmsg(b));
	db_bind_text(s, 1, CHAN);
	db_bind_text(s, 2, "payload");
	CHECK(db_step(s) == DB_ROW, "pg: pg_notify: %s", db_errmsg(b));
	db_finalize(s);
	CHECK(wait_notified(a, 300) == 0, "pg: not before COMMIT");
	exec_ok(b, "COMMIT");
	CHECK(wait_notified(a, 5000) == 1, "pg: at COMMIT");
	exec_ok(b, "NOTIFY other_channel");
	CHECK(wait_notified(a, 300) == 0, "pg: other channel not heard");
}

/* What only the PostgreSQL backend has to do. */
static void
test_pg_only(struct db *db, const char *url)
{
	struct db_stmt *s;
	const char *pw, *at;
	char *bad, err[512];
	struct db *x;
	static const unsigned char zeros[] = { 0, 0, 'a', 0 };

	CHECK(db_kind(db) == DB_POSTGRESQL, "pg kind");
	pw = getenv("PGPASSWORD");
	CHECK(pw == NULL || strstr(db_name(db), pw) == NULL,
	    "pg: password in db_name %s", db_name(db));
	CHECK(strncmp(db_name(db), "postgresql://", 13) == 0,
	    "pg: db_name %s", db_name(db));

	/* a wrong password: refused, and not repeated in the message */
	if ((at = strrchr(url, '@')) != NULL) {
		bad = xasprintf("postgresql://smrelay:Wr0ngS3cretPw@%s", at + 1);
		x = db_open_pg(bad, 5, err, sizeof(err));
		CHECK(x == NULL && strstr(err, "Wr0ngS3cretPw") == NULL &&
		    strstr(err, "password") != NULL,
		    "pg: wrong password: %s", err);
		db_close(x);
		free(bad);
	}
	x = db_open_pg("postgresql://smrelay:Wr0ngS3cretPw@127.0.0.1:1/x", 5,
	    err, sizeof(err));
	CHECK(x == NULL && strstr(err, "Wr0ngS3cretPw") == NULL &&
	    strstr(err, "127.0.0.1") != NULL, "pg: closed port: %s", err);
	x = db_open_pg("postgresql://u:p%zz@h/d", 5, err, sizeof(err));
	CHECK(x == NULL && strstr(err, "p%zz") == NULL, "pg: bad URL: %s",
	    err);
	lazy_cases(url);

	CHECK(one_int(db, "SELECT count(*) FROM pg_settings WHERE name = "
	    "'statement_timeout' AND setting = '10000'") == 1,
	    "pg: statement_timeout");
	CHECK(one_int(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = "
	    "pg_backend_pid() AND application_name = 'smrelay'") == 1,
	    "pg: application_name");

	/* E'' literals, and blobs into and out of bytea */
	CHECK(db_prepare(db, "SELECT E'it\\'s ?' AS q, ?::bytea AS b, "
	    "?::bytea AS t", &s) == 0, "pg: prepare E'': %s", db_errmsg(db));
	db_bind_blob(s, 1, zeros, sizeof(zeros));
	db_bind_text(s, 2, "a\\b");
	CHECK(db_step(s) == DB_ROW, "pg: E'': %s", db_errmsg(db));
	CHECK(strcmp(db_column_text(s, 0), "it's ?") == 0, "pg: E''");
	CHECK(db_column_bytes(s, 1) == 4 &&
	    memcmp(db_column_blob(s, 1), zeros, 4) == 0, "pg: bytea zeros");
	CHECK(db_column_bytes(s, 2) == 3 &&
	    memcmp(db_column_blob(s, 2), "a\\b", 3) == 0,
	    "pg: text into bytea as it is");
	db_finalize(s);

	/* a parameter that is not there */
	CHECK(db_prepare(db, "SELECT ?::bigint", &s) == 0, "pg: prepare");
	db_bind_int(s, 2, 1);
	CHECK(db_step(s) == DB_ERROR, "pg: parameter 2 of 1 refused");
	db_finalize(s);
	CHECK(db_prepare(db, "SELECT ?::text", &s) == 0, "pg: prepare");
	db_bind_blob(s, 1, zeros, sizeof(zeros));
	CHECK(db_step(s) == DB_ERROR, "pg: zero byte in text refused");
	db_finalize(s);

	/* hostile results */
	CHECK(one_int(db, "SELECT count(*) FROM generate_series(1, 5)") == 5,
	    "pg: count");
	CHECK(db_prepare(db, "SELECT 'abc' AS x, '9223372036854775808' AS y, "
	    "' 1' AS z, '-9223372036854775808' AS m, true AS t", &s) == 0,
	    "pg: prepare");
	CHECK(db_step(s) == DB_ROW, "pg: step");
	CHECK(db_column_int64(s, 0) == 0 && strstr(db_errmsg(db),
	    "not a 64-bit integer") != NULL, "pg: 'abc' is no integer");
	CHECK(db_column_int64(s, 1) == 0, "pg: 2^63 is no int64");
	CHECK(db_column_int64(s, 2) == 0, "pg: ' 1' is no integer");
	CHECK(db_column_int64(s, 3) == INT64_MIN, "pg: INT64_MIN text");
	CHECK(db_column_int64(s, 4) == 1, "pg: true is 1");
	db_finalize(s);
	CHECK(db_prepare(db, "SELECT x FROM generate_series(1, ?) AS x", &s) ==
	    0, "pg: prepare series");
	db_bind_int(s, 1, 100000);
	CHECK(db_step(s) == DB_ROW, "pg: 100,000 rows: %s", db_errmsg(db));
	db_reset(s);
	db_bind_int(s, 1, 100001);
	CHECK(db_step(s) == DB_ERROR && strstr(db_errmsg(db), "rows") != NULL,
	    "pg: 100,001 rows refused: %s", db_errmsg(db));
	db_finalize(s);
	CHECK(db_prepare(db, "SELECT repeat('x', ?) AS big", &s) == 0,
	    "pg: prepare repeat");
	db_bind_int(s, 1, 16 * 1024 * 1024);
	CHECK(db_step(s) == DB_ROW && db_column_bytes(s, 0) == 16 << 20,
	    "pg: 16 MiB value: %s", db_errmsg(db));
	db_reset(s);
	db_bind_int(s, 1, 16 * 1024 * 1024 + 1);
	CHECK(db_step(s) == DB_ERROR, "pg: 16 MiB + 1 refused");
	db_finalize(s);

	/* a statement the server forgot is prepared again */
	CHECK(db_prepare(db, "SELECT 41 + ?", &s) == 0, "pg: prepare");
	db_bind_int(s, 1, 1);
	exec_ok(db, "DEALLOCATE ALL");
	CHECK(db_step(s) == DB_ROW && db_column_int(s, 0) == 42,
	    "pg: after DEALLOCATE ALL: %s", db_errmsg(db));
	db_finalize(s);

	/* a statement timeout is DB_ERR_BUSY */
	exec_ok(db, "SET statement_timeout = 100");
	CHECK(db_exec(db, "SELECT pg_sleep(2)") == -1 &&
	    db_errclass(db) == DB_ERR_BUSY, "pg: timeout is busy: %s",
	    db_errmsg(db));
	exec_ok(db, "RESET statement_timeout");
}

static void
test_pg(const char *url)
{
	char err[512];
	struct db *a, *b;

	a = db_open_pg(url, 10, err, sizeof(err));
	CHECK(a != NULL, "db_open_pg: %s", err);
	b = db_open_pg(url, 10, err, sizeof(err));
	CHECK(b != NULL, "db_open_pg (second): %s", err);
	if (a == NULL || b == NULL)
		return;
	test_common(a);
	test_pg_only(a, url);
	test_notify(a, b);
	db_close(a);
	db_close(b);
}

/* Read the caller's go-ahead line; fatal without one. */
static void
await(const char *what)
{
	char line[64];

	printf("%s\n", what);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		fatalx("no answer after %s", what);
}

/*
 * Run sql on db until it no longer fails for the connection, up to 60
 * seconds (the backoff is 1, 2, 4 ... s): its db_exec result.
 */
static int
until_up(struct db *db, const char *sql)
{
	double end = mono_now() + 60;
	int rc;

	while ((rc = db_exec(db, sql)) == -1 &&
	    db_errclass(db) == DB_ERR_CONNECTION && mono_now() < end)
		usleep(200 * 1000);
	return rc;
}

/* One server loss, from the side of two connections. */
static void
crash_cycle(struct db *a, struct db *b, int cycle)
{
	struct db_stmt *s;
	double t0;
	int fd;

	CHECK(db_prepare(a, "SELECT 1 + ? AS v", &s) == 0, "crash %d: "
	    "prepare: %s", cycle, db_errmsg(a));
	db_bind_int(s, 1, 1);
	CHECK(db_step(s) == DB_ROW && db_column_int(s, 0) == 2,
	    "crash %d: before", cycle);
	db_reset(s);
	exec_ok(b, "BEGIN");
	exec_ok(b, "CREATE TEMP TABLE t_lost (x int)");

	await("READY");

	/* gone: each call fails fast, nothing crashes */
	CHECK(db_step(s) == DB_ERROR && db_errclass(a) == DB_ERR_CONNECTION,
	    "crash %d: step on a lost server: %d %s", cycle, db_errclass(a),
	    db_errmsg(a));
	db_reset(s);
	t0 = mono_now();
	CHECK(db_step(s) == DB_ERROR && db_errclass(a) == DB_ERR_CONNECTION,
	    "crash %d: again", cycle);
	CHECK(mono_now() - t0 < 2, "crash %d: fails fast", cycle);
	db_reset(s);
	CHECK(db_notified(a) == -1, "crash %d: db_notified -1", cycle);
	CHECK(db_exec(b, "INSERT INTO t_lost VALUES (1)") == -1 &&
	    db_errclass(b) == DB_ERR_CONNECTION, "crash %d: b: %s", cycle,
	    db_errmsg(b));
	CHECK(db_in_transaction(b), "crash %d: b still in a transaction",
	    cycle);

	await("DOWN");

	/* back: the same connections work again */
	CHECK(until_up(a, "SELECT 1") == 0, "crash %d: a back: %s", cycle,
	    db_errmsg(a));
	CHECK(db_step(s) == DB_ROW && db_column_int(s, 0) == 2,
	    "crash %d: prepared statement after: %s", cycle, db_errmsg(a));
	db_finalize(s);
	CHECK(db_notified(a) >= 1, "crash %d: reconnection reported", cycle);
	/* the transaction of b is gone: nothing but ROLLBACK until then */
	CHECK(until_up(b, "SELECT 1") == -1 && strstr(db_errmsg(b), "roll") !=
	    NULL, "crash %d: b's transaction lost: %s", cycle, db_errmsg(b));
	CHECK(db_exec(b, "COMMIT") == -1, "crash %d: no COMMIT of a lost "
	    "transaction", cycle);
	CHECK(db_in_transaction(b), "crash %d: b in transaction", cycle);
	exec_ok(b, "ROLLBACK");
	CHECK(!db_in_transaction(b), "crash %d: b rolled back", cycle);
	exec_ok(b, "SELECT 1");
	/* LISTEN was issued again on the new connection */
	fd = db_notify_fd(a);
	CHECK(fd >= 0, "crash %d: notify fd", cycle);
	exec_ok(b, "NOTIFY " CHAN);
	CHECK(wait_notified(a, 5000) == 1, "crash %d: NOTIFY after", cycle);
}

/* db_pg_on_connect: counts its calls, refuses while *refuse. */
struct hook_state {
	int	calls;
	int	refuse;
	struct db *db;
	int	sql_ok;
};

static int
hook_fn(void *arg, char *err, size_t errlen)
{
	struct hook_state *h = arg;

	h->calls++;
	/* the hook's own commands run on the new connection */
	h->sql_ok = one_int(h->db, "SELECT 41 + 1") == 42;
	if (h->refuse) {
		snprintf(err, errlen, "schema version 99 is newer");
		return -1;
	}
	return 0;
}

/*
 * db_open_pg_lazy: a closed port is a connection that is not up (each
 * command fails with DB_ERR_CONNECTION, no password in any message); a
 * bad URL is still refused; against the live server it is up at once, the
 * hook runs after a reconnection and a refusing hook keeps it unusable.
 */
static void
lazy_cases(const char *url)
{
	struct hook_state h;
	char err[512];
	struct db *x;

	x = db_open_pg_lazy("postgresql://smrelay:Wr0ngS3cretPw@127.0.0.1:1/x",
	    5, err, sizeof(err));
	CHECK(x != NULL && !db_pg_up(x) && strstr(err, "127.0.0.1") != NULL &&
	    strstr(err, "Wr0ngS3cretPw") == NULL, "lazy: closed port: %s", err);
	if (x != NULL) {
		CHECK(db_exec(x, "SELECT 1") == -1 &&
		    db_errclass(x) == DB_ERR_CONNECTION &&
		    strstr(db_errmsg(x), "not connected") != NULL &&
		    strstr(db_errmsg(x), "Wr0ngS3cretPw") == NULL,
		    "lazy: command before it is up: %s", db_errmsg(x));
		db_close(x);
	}
	x = db_open_pg_lazy("postgresql://u:p%zz@h/d", 5, err, sizeof(err));
	CHECK(x == NULL && strstr(err, "p%zz") == NULL, "lazy: bad URL: %s",
	    err);
	db_close(x);

	x = db_open_pg_lazy(url, 5, err, sizeof(err));
	CHECK(x != NULL && db_pg_up(x), "lazy: live server: %s", err);
	if (x == NULL)
		return;
	memset(&h, 0, sizeof(h));
	h.db = x;
	db_pg_on_connect(x, hook_fn, &h);
	exec_ok(x, "SELECT 1");
	CHECK(h.calls == 0, "lazy: hook ran without a reconnection");
	/* the server ends our session: the next command reconnects, the
	 * hook runs first, with its own command */
	h.refuse = 1;
	CHECK(db_exec(x, "SELECT pg_terminate_backend(pg_backend_pid())") ==
	    -1, "lazy: terminate own backend");
	CHECK(db_exec(x, "SELECT 1") == -1 && h.calls == 1 && h.sql_ok &&
	    db_errclass(x) != DB_ERR_CONNECTION &&
	    strstr(db_errmsg(x), "newer") != NULL && !db_pg_up(x),
	    "lazy: refusing hook (%d call(s)): %s", h.calls, db_errmsg(x));
	/* within the backoff: not tried again */
	CHECK(db_exec(x, "SELECT 1") == -1 && h.calls == 1 &&
	    strstr(db_errmsg(x), "newer") != NULL,
	    "lazy: backoff after a refusal (%d call(s)): %s", h.calls,
	    db_errmsg(x));
	h.refuse = 0;
	CHECK(until_up(x, "SELECT 1") == 0 && h.calls == 2 && db_pg_up(x),
	    "lazy: hook accepts after the backoff (%d call(s)): %s", h.calls,
	    db_errmsg(x));
	db_close(x);
}

static int
crash(const char *url, int cycles)
{
	char err[512];
	struct db *a, *b;
	int i;

	if ((a = db_open_pg(url, 5, err, sizeof(err))) == NULL ||
	    (b = db_open_pg(url, 5, err, sizeof(err))) == NULL)
		fatalx("db_open_pg: %s", err);
	CHECK(db_listen(a, CHAN) == 0, "listen: %s", db_errmsg(a));
	for (i = 1; i <= cycles; i++)
		crash_cycle(a, b, i);
	db_close(a);
	db_close(b);
	printf("%s\n", failures ? "FAILED" : "OK");
	return failures ? 1 : 0;
}

int
main(int argc, char *argv[])
{
	const char *url = getenv("PG_URL");

	setvbuf(stderr, NULL, _IONBF, 0);
	if (argc == 3 && strcmp(argv[1], "crash") == 0) {
		if (url == NULL)
			fatalx("crash: no PG_URL");
		return crash(url, atoi(argv[2]));
	}
	test_sqlite();
	if (url != NULL && *url != '\0')
		test_pg(url);
	else
		printf("test_db: PostgreSQL not tested (no PG_URL)\n");
	if (failures)
		fprintf(stderr, "test_db: %d failure(s) of %d\n", failures,
		    checks);
	else
		printf("test_db: all %d passed\n", checks);
	return failures ? 1 : 0;
}
