/* store.c: the database (SQLite or PostgreSQL, db.h): open, schema and
 * migrations, transactions, change notification. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "lib/lib.h"
#include "store_priv.h"

#define BUSY_TIMEOUT_MS	10000

/*
 * Migrations: migrations[i] brings user_version i to i + 1.  Append only;
 * never edit a released step.  Every step sets its own user_version inside
 * the same transaction, so a crash leaves either the old or the new schema.
 */
static const char *migrations[] = {
	/* 0 -> 1: the initial schema. */
	"CREATE TABLE meta ("
	"  name TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL);"
	"INSERT INTO meta (name, value) VALUES ('changes', 0);"
	"CREATE TABLE certificates ("
	"  id INTEGER PRIMARY KEY,"
	"  der BLOB NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  key_usage INTEGER NOT NULL,"		/* -1: no extension */
	"  ext_key_usage INTEGER NOT NULL,"	/* -1: no extension */
	"  can_encrypt INTEGER NOT NULL,"
	"  can_sign INTEGER NOT NULL,"
	"  key_type TEXT NOT NULL,"
	"  key_bits INTEGER NOT NULL,"
	"  source TEXT NOT NULL CHECK (source IN ('import','harvest','key')),"
	"  caps INTEGER NOT NULL DEFAULT 0,"
	"  added INTEGER NOT NULL);"
	"CREATE TABLE cert_emails ("
	"  cert_id INTEGER NOT NULL REFERENCES certificates(id)"
	"    ON DELETE CASCADE,"
	"  email TEXT NOT NULL,"
	"  PRIMARY KEY (cert_id, email));"
	"CREATE INDEX cert_emails_email ON cert_emails(email);"
	"CREATE TABLE keys ("
	"  id INTEGER PRIMARY KEY,"
	"  cert_id INTEGER NOT NULL UNIQUE REFERENCES certificates(id),"
	"  pkey BLOB NOT NULL,"			/* PKCS#8 DER */
	"  chain BLOB NOT NULL,"		/* concatenated DER, may be empty */
	"  added INTEGER NOT NULL);"
	"CREATE TABLE trust_anchors ("
	"  id INTEGER PRIMARY KEY,"
	"  der BLOB NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  added INTEGER NOT NULL);"
	"CREATE TABLE crls ("
	"  id INTEGER PRIMARY KEY,"
	"  issuer TEXT NOT NULL UNIQUE,"
	"  der BLOB NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  this_update INTEGER NOT NULL,"
	"  next_update INTEGER NOT NULL,"	/* 0: none */
	"  added INTEGER NOT NULL);"
	"PRAGMA user_version = 1;",
	/* 1 -> 2: policy rules (store_policy.c). */
	"CREATE TABLE policy_rules ("
	"  id INTEGER PRIMARY KEY,"
	"  sender TEXT NOT NULL,"
	"  recipient TEXT NOT NULL,"
	"  actions INTEGER NOT NULL,"		/* POLICY_* bits */
	"  nocert INTEGER NOT NULL,"		/* enum policy_nocert */
	"  priority INTEGER NOT NULL,"
	"  added INTEGER NOT NULL);"
	"PRAGMA user_version = 2;",
	/* 2 -> 3: secrets of this installation, made once here: "mark" keys
	 * the loop-guard mark (daemon/smime/mark.c).  randomblob() is
	 * SQLite's ChaCha20 generator seeded from the OS. */
	"CREATE TABLE secrets ("
	"  name TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL);"
	"INSERT INTO secrets (name, value) VALUES ('mark', randomblob(32));"
	"PRAGMA user_version = 3;",
	/* 3 -> 4: where a CRL came from: 'import', or the URL it was fetched
	 * from (daemon/smime/crlfetch.c). */
	"ALTER TABLE crls ADD COLUMN source TEXT NOT NULL DEFAULT 'import';"
	"PRAGMA user_version = 4;",
	/* 4 -> 5: several CRLs per issuer, one per scope (its issuing
	 * distribution point, delta or not, signing key: store_crl_scope());
	 * the scopes of existing rows are filled in C after this step. */
	"CREATE TABLE crls_new ("
	"  id INTEGER PRIMARY KEY,"
	"  issuer TEXT NOT NULL,"
	"  scope TEXT NOT NULL DEFAULT '',"
	"  der BLOB NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  this_update INTEGER NOT NULL,"
	"  next_update INTEGER NOT NULL,"
	"  added INTEGER NOT NULL,"
	"  source TEXT NOT NULL DEFAULT 'import',"
	"  UNIQUE (issuer, scope));"
	"INSERT INTO crls_new (id, issuer, der, fingerprint, this_update, "
	"  next_update, added, source) SELECT id, issuer, der, fingerprint, "
	"  this_update, next_update, added, source FROM crls;"
	"DROP TABLE crls;"
	"ALTER TABLE crls_new RENAME TO crls;"
	"PRAGMA user_version = 5;",
	/* 5 -> 6: OCSP answers (daemon/smime/crlfetch.c), one per
	 * certificate: its OCSP CertID (SHA-256 of the DER, hex), the status
	 * (0 good, 1 revoked, 2 unknown), the answer's validity, the
	 * responder's URL. */
	"CREATE TABLE ocsp ("
	"  id INTEGER PRIMARY KEY,"
	"  cert_id TEXT NOT NULL UNIQUE,"
	"  status INTEGER NOT NULL,"
	"  this_update INTEGER NOT NULL,"
	"  next_update INTEGER NOT NULL,"
	"  source TEXT NOT NULL,"
	"  added INTEGER NOT NULL);"
	"PRAGMA user_version = 6;",
	/* 6 -> 7: private keys leave this database for the key file
	 * (store_keyfile.c).  location: where a key lives, 'file' or its
	 * pkcs11: URI; 'store' while its PKCS#8 is still in pkey, until
	 * store_keys_migrate() moves it there and empties pkey (always
	 * empty for keys added from now on). */
	"ALTER TABLE keys ADD COLUMN location TEXT NOT NULL DEFAULT 'store';"
	"PRAGMA user_version = 7;",
	/* 7 -> 8: certificates found in DNS (RFC 8162 SMIMEA,
	 * daemon/smime/smimea.c): source 'smimea', and expires, the time
	 * after which such a row is not used (the record's TTL; 0: never).
	 * SQLite cannot change a CHECK constraint in place: the table is
	 * rebuilt, with foreign keys off (store_migrate). */
	"CREATE TABLE certificates_new ("
	"  id INTEGER PRIMARY KEY,"
	"  der BLOB NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  not_before INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  key_usage INTEGER NOT NULL,"
	"  ext_key_usage INTEGER NOT NULL,"
	"  can_encrypt INTEGER NOT NULL,"
	"  can_sign INTEGER NOT NULL,"
	"  key_type TEXT NOT NULL,"
	"  key_bits INTEGER NOT NULL,"
	"  source TEXT NOT NULL"
	"    CHECK (source IN ('import','harvest','key','smimea')),"
	"  caps INTEGER NOT NULL DEFAULT 0,"
	"  added INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO certificates_new (id, der, fingerprint, subject, issuer, "
	"  serial, not_before, not_after, key_usage, ext_key_usage, "
	"  can_encrypt, can_sign, key_type, key_bits, source, caps, added) "
	"  SELECT id, der, fingerprint, subject, issuer, serial, not_before, "
	"  not_after, key_usage, ext_key_usage, can_encrypt, can_sign, "
	"  key_type, key_bits, source, caps, added FROM certificates;"
	"DROP TABLE certificates;"
	"ALTER TABLE certificates_new RENAME TO certificates;"
	"PRAGMA user_version = 8;",
};
#define NMIGRATIONS (int)(sizeof(migrations) / sizeof(migrations[0]))

/*
 * PostgreSQL: the schema at version STORE_SCHEMA_VERSION in one step, the
 * same tables, columns, constraints and indexes as SQLite's after its
 * migrations (ids are identities "by default", so that `store migrate` can
 * keep them), plus group_concat(text, text) for the queries both share.
 * PostgreSQL starts at the current version: a future migration (a ninth
 * entry above) needs its PostgreSQL form too, applied by store_pg_schema
 * from meta's 'schema' row on.
 */
#define PG_ID	"id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
static const char pg_schema[] =
	"CREATE TABLE meta ("
	"  name TEXT PRIMARY KEY,"
	"  value BIGINT NOT NULL);"
	"CREATE TABLE certificates ("
	"  " PG_ID
	"  der BYTEA NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  not_before BIGINT NOT NULL,"
	"  not_after BIGINT NOT NULL,"
	"  key_usage BIGINT NOT NULL,"
	"  ext_key_usage BIGINT NOT NULL,"
	"  can_encrypt BIGINT NOT NULL,"
	"  can_sign BIGINT NOT NULL,"
	"  key_type TEXT NOT NULL,"
	"  key_bits BIGINT NOT NULL,"
	"  source TEXT NOT NULL"
	"    CHECK (source IN ('import','harvest','key','smimea')),"
	"  caps BIGINT NOT NULL DEFAULT 0,"
	"  added BIGINT NOT NULL,"
	"  expires BIGINT NOT NULL DEFAULT 0);"
	"CREATE TABLE cert_emails ("
	"  cert_id BIGINT NOT NULL REFERENCES certificates(id)"
	"    ON DELETE CASCADE,"
	"  email TEXT NOT NULL,"
	"  PRIMARY KEY (cert_id, email));"
	"CREATE INDEX cert_emails_email ON cert_emails(email);"
	"CREATE TABLE keys ("
	"  " PG_ID
	"  cert_id BIGINT NOT NULL UNIQUE REFERENCES certificates(id),"
	"  pkey BYTEA NOT NULL,"
	"  chain BYTEA NOT NULL,"
	"  added BIGINT NOT NULL,"
	"  location TEXT NOT NULL DEFAULT 'store');"
	"CREATE TABLE trust_anchors ("
	"  " PG_ID
	"  der BYTEA NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  subject TEXT NOT NULL,"
	"  not_after BIGINT NOT NULL,"
	"  added BIGINT NOT NULL);"
	"CREATE TABLE crls ("
	"  " PG_ID
	"  issuer TEXT NOT NULL,"
	"  scope TEXT NOT NULL DEFAULT '',"
	"  der BYTEA NOT NULL,"
	"  fingerprint TEXT NOT NULL UNIQUE,"
	"  this_update BIGINT NOT NULL,"
	"  next_update BIGINT NOT NULL,"
	"  added BIGINT NOT NULL,"
	"  source TEXT NOT NULL DEFAULT 'import',"
	"  UNIQUE (issuer, scope));"
	"CREATE TABLE policy_rules ("
	"  " PG_ID
	"  sender TEXT NOT NULL,"
	"  recipient TEXT NOT NULL,"
	"  actions BIGINT NOT NULL,"
	"  nocert BIGINT NOT NULL,"
	"  priority BIGINT NOT NULL,"
	"  added BIGINT NOT NULL);"
	"CREATE TABLE secrets ("
	"  name TEXT PRIMARY KEY,"
	"  value BYTEA NOT NULL);"
	"CREATE TABLE ocsp ("
	"  " PG_ID
	"  cert_id TEXT NOT NULL UNIQUE,"
	"  status BIGINT NOT NULL,"
	"  this_update BIGINT NOT NULL,"
	"  next_update BIGINT NOT NULL,"
	"  source TEXT NOT NULL,"
	"  added BIGINT NOT NULL);"
	"CREATE FUNCTION smrelay_concat(acc TEXT, x TEXT, sep TEXT) "
	"  RETURNS TEXT LANGUAGE sql IMMUTABLE AS "
	"  'SELECT CASE WHEN x IS NULL THEN acc WHEN acc IS NULL THEN x "
	"   ELSE acc || sep || x END';"
	"CREATE AGGREGATE group_concat(TEXT, TEXT) ("
	"  SFUNC = smrelay_concat, STYPE = TEXT);"
	"INSERT INTO meta (name, value) VALUES ('changes', 0);";
#undef PG_ID

/* Two nodes starting at once on an empty database: one makes the schema. */
#define PG_SCHEMA_LOCK	"SELECT pg_advisory_xact_lock(7235078353207115)"
/* The channel store_commit notifies and store_listen subscribes to. */
#define PG_CHANNEL	"smrelay_changes"

/* "what: database message" into err; returns -1. */
int
store_sqlerr(struct store *st, const char *what, char *err, size_t errlen)
{
	if (err != NULL)
		snprintf(err, errlen, "%s: %s: %s", st->path, what,
		    db_errmsg(st->db));
	return -1;
}

/* The last error of this connection. */
const char *
store_errmsg(struct store *st)
{
	return db_errmsg(st->db);
}

/* Prepare sql; -1 with the reason in err. */
int
store_prepare(struct store *st, const char *sql, struct db_stmt **stmt,
    char *err, size_t errlen)
{
	if (db_prepare(st->db, sql, stmt) == -1)
		return store_sqlerr(st, "prepare", err, errlen);
	return 0;
}

/* A statement without parameters or rows (fixed SQL only). */
int
store_exec(struct store *st, const char *sql, char *err, size_t errlen)
{
	if (db_exec(st->db, sql) == -1) {
		if (err != NULL)
			snprintf(err, errlen, "%s: %s", st->path,
			    db_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Run a fixed query that may return rows, ignoring them; 0 or -1. */
static int
store_query(struct store *st, const char *sql, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, sql, &stmt, err, errlen) == -1)
		return -1;
	while ((rc = db_step(stmt)) == DB_ROW)
		;
	if (rc != DB_DONE)
		store_sqlerr(st, "query", err, errlen);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : -1;
}

/*
 * Take the write lock now, waiting for it: SQLite's BEGIN IMMEDIATE (up to
 * busy_timeout), on PostgreSQL the 'changes' row of meta, which every
 * commit updates, so that writers serialize the same way.
 */
int
store_begin(struct store *st, char *err, size_t errlen)
{
	if (db_kind(st->db) == DB_SQLITE)
		return store_exec(st, "BEGIN IMMEDIATE", err, errlen);
	if (store_exec(st, "BEGIN", err, errlen) == -1)
		return -1;
	if (store_query(st, "SELECT value FROM meta WHERE name = 'changes' "
	    "FOR UPDATE", err, errlen) == -1) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

/* Bump the change counter and commit; on PostgreSQL the other nodes hear
 * of it (NOTIFY is delivered at the commit). */
int
store_commit(struct store *st, char *err, size_t errlen)
{
	if (store_exec(st, "UPDATE meta SET value = value + 1 "
	    "WHERE name = 'changes'", err, errlen) == -1 ||
	    (db_kind(st->db) == DB_POSTGRESQL && store_exec(st,
	    "NOTIFY " PG_CHANNEL, err, errlen) == -1) ||
	    store_exec(st, "COMMIT", err, errlen) == -1) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

/* Undo the open transaction, if any. */
void
store_rollback(struct store *st)
{
	if (db_in_transaction(st->db))
		(void)db_exec(st->db, "ROLLBACK");
}

/* A row skipped as unusable, named (table, id) in a warning. */
void
store_bad_row(const char *table, int64_t id, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx("store: %s id=%lld skipped: %s", table, (long long)id, why);
}

/* Read one integer from a fixed query; -1 on error (or no row). */
int64_t
store_int_query(struct store *st, const char *sql)
{
	struct db_stmt *stmt;
	int64_t v = -1;

	if (db_prepare(st->db, sql, &stmt) == -1)
		return -1;
	if (db_step(stmt) == DB_ROW)
		v = db_column_int64(stmt, 0);
	db_finalize(stmt);
	return v;
}

/* PRAGMA user_version (SQLite), meta's 'schema' row (PostgreSQL). */
int
store_schema_version(struct store *st)
{
	if (db_kind(st->db) == DB_POSTGRESQL)
		return (int)store_int_query(st,
		    "SELECT value FROM meta WHERE name = 'schema'");
	return (int)store_int_query(st, "PRAGMA user_version");
}

/* The change counter (bumped by every committed write). */
int64_t
store_changes(struct store *st)
{
	return store_int_query(st,
	    "SELECT value FROM meta WHERE name = 'changes'");
}

/* Whether the open transaction left a dangling reference: 0 none, -1
 * (err set) one, or an error. */
static int
store_fk_check(struct store *st, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, "PRAGMA foreign_key_check", &stmt, err,
	    errlen) == -1)
		return -1;
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc == DB_DONE)
		return 0;
	if (rc == DB_ROW)
		snprintf(err, errlen, "%s: migration left a dangling "
		    "reference", st->path);
	else
		store_sqlerr(st, "foreign_key_check", err, errlen);
	return -1;
}

/* Apply the migrations from version v on, in the open transaction. */
static int
store_migrate_steps(struct store *st, int v, char *err, size_t errlen)
{
	for (; v < NMIGRATIONS; v++)
		if (store_exec(st, migrations[v], err, errlen) == -1 ||
		    (v == 4 && store_crl_fill_scopes(st, err, errlen) == -1))
			return -1;
	return store_fk_check(st, err, errlen);
}

/*
 * Apply every migration the database has not seen yet, in one
 * transaction.  Foreign keys are off meanwhile (SQLite's way to rebuild a
 * table others refer to: dropping it would cascade) and checked before
 * the commit instead.
 */
static int
store_migrate(struct store *st, char *err, size_t errlen)
{
	int v, rc = -1;

	if (store_exec(st, "PRAGMA foreign_keys = OFF", err, errlen) == -1 ||
	    store_begin(st, err, errlen) == -1)
		goto done;
	if ((v = store_schema_version(st)) < 0)
		store_sqlerr(st, "user_version", err, errlen);
	else if (v > NMIGRATIONS)
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this program knows (%d)", st->path, v, NMIGRATIONS);
	else if (v == NMIGRATIONS || store_migrate_steps(st, v, err,
	    errlen) == 0)
		rc = store_exec(st, "COMMIT", err, errlen);
	if (rc == -1)
		store_rollback(st);
 done:
	if (store_exec(st, "PRAGMA foreign_keys = ON", rc == -1 ? NULL : err,
	    errlen) == -1)
		rc = -1;
	return rc;
}

/* Whether the meta table exists (PostgreSQL): 1, 0, or -1. */
static int
store_pg_has_meta(struct store *st)
{
	int64_t n;

	n = store_int_query(st, "SELECT count(*) FROM "
	    "information_schema.tables WHERE table_schema = current_schema() "
	    "AND table_name = 'meta'");
	return n < 0 ? -1 : n > 0;
}

/* The schema version of a PostgreSQL database, 0 when it has none yet, -1
 * when it cannot be read. */
static int
store_pg_version(struct store *st)
{
	int has;

	if ((has = store_pg_has_meta(st)) <= 0)
		return has;
	return store_schema_version(st);
}

/*
 * PostgreSQL: make the schema in an empty database, or check the version
 * of an existing one, in one transaction under an advisory lock.
 */
static int
store_pg_schema(struct store *st, char *err, size_t errlen)
{
	char sql[128];
	int v;

	if (store_exec(st, "BEGIN", err, errlen) == -1)
		return -1;
	if (store_query(st, PG_SCHEMA_LOCK, err, errlen) == -1)
		goto fail;
	if ((v = store_pg_version(st)) < 0) {
		store_sqlerr(st, "schema version", err, errlen);
		goto fail;
	}
	if (v == 0) {
		snprintf(sql, sizeof(sql), "INSERT INTO meta (name, value) "
		    "VALUES ('schema', %d)", STORE_SCHEMA_VERSION);
		if (store_exec(st, pg_schema, err, errlen) == -1 ||
		    store_exec(st, sql, err, errlen) == -1)
			goto fail;
	} else if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this program knows (%d)", st->path, v,
		    STORE_SCHEMA_VERSION);
		goto fail;
	} else if (v < STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is older than "
		    "this program's (%d) and PostgreSQL has no migration "
		    "from it", st->path, v, STORE_SCHEMA_VERSION);
		goto fail;
	}
	return store_exec(st, "COMMIT", err, errlen);
 fail:
	store_rollback(st);
	return -1;
}

/*
 * Rewrite the database (VACUUM) and fold the WAL into it, truncated to
 * nothing: what was deleted is then neither in free pages nor in old WAL
 * frames.  -1 (err set) when it could not, e.g. a reader kept the WAL busy
 * past the busy timeout.  SQLite only.
 */
int
store_scrub(struct store *st, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	int ok = 0;

	if (db_kind(st->db) != DB_SQLITE) {
		snprintf(err, errlen, "%s: scrubbing is for SQLite files only",
		    st->path);
		return -1;
	}
	if (store_exec(st, "VACUUM", err, errlen) == -1 ||
	    store_prepare(st, "PRAGMA wal_checkpoint(TRUNCATE)", &stmt, err,
	    errlen) == -1)
		return -1;
	/* busy, frames in the WAL, frames checkpointed */
	if (db_step(stmt) == DB_ROW && db_column_int(stmt, 0) == 0 &&
	    db_column_int64(stmt, 1) == db_column_int64(stmt, 2))
		ok = 1;
	if (!ok)
		store_sqlerr(st, "checkpoint", err, errlen);
	db_finalize(stmt);
	return ok ? 0 : -1;
}

/* Create the file 0600 ourselves, so SQLite (and its -wal) never widen it. */
static int
store_create_file(const char *path, char *err, size_t errlen)
{
	int fd;

	/*
	 * Only when it does not exist yet: close() drops every POSIX lock
	 * this process holds on the file, SQLite's included, and another
	 * connection of ours (the daemon's loop, its worker threads) may have
	 * it open.  Without its locks SQLite lets smrelayctl checkpoint and
	 * delete the WAL under us.
	 */
	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* A store around an open connection. */
static struct store *
store_new(struct db *db)
{
	struct store *st;

	st = xcalloc(1, sizeof(*st));
	st->db = db;
	st->path = xstrdup(db_name(db));
	return st;
}

/* Open a database file and bring its schema up to date. */
struct store *
store_open_path(const char *path, char *err, size_t errlen)
{
	struct store *st;
	struct db *db;

	if (store_create_file(path, err, errlen) == -1)
		return NULL;
	if ((db = db_open_sqlite(path, 0, BUSY_TIMEOUT_MS, err,
	    errlen)) == NULL)
		return NULL;
	st = store_new(db);
	if (store_migrate(st, err, errlen) == -1) {
		store_close(st);
		return NULL;
	}
	return st;
}

/* Whether database names PostgreSQL (a libpq URI). */
int
store_db_is_pg(const char *database)
{
	return database != NULL && (strncmp(database, "postgresql://",
	    13) == 0 ||
	    strncmp(database, "postgres://", 11) == 0);
}

/* After a new connection: the schema check (db_connect_fn). */
static int
store_pg_hook(void *arg, char *err, size_t errlen)
{
	return store_pg_schema(arg, err, errlen);
}

/*
 * Connect to PostgreSQL and make or check the schema; lazy: a server that
 * cannot be reached is not an error (*up 0, see store_open_db_lazy), and
 * the schema is checked again on each new connection.
 */
static struct store *
store_open_pg(const char *conninfo, int lazy, int *up, char *err,
    size_t errlen)
{
	struct store *st;
	struct db *db;

	if ((db = lazy ? db_open_pg_lazy(conninfo, STORE_PG_CONNECT_TIMEOUT,
	    err, errlen) : db_open_pg(conninfo, STORE_PG_CONNECT_TIMEOUT, err,
	    errlen)) == NULL)
		return NULL;
	st = store_new(db);
	if ((*up = db_pg_up(db)) && store_pg_schema(st, err, errlen) == -1) {
		store_close(st);
		return NULL;
	}
	/* another version may change it while we are away */
	if (lazy)
		db_pg_on_connect(db, store_pg_hook, st);
	return st;
}

/* Open the configured database, now or later (see store.h). */
struct store *
store_open_db_lazy(const char *database, const char *data_dir, int *up,
    char *err, size_t errlen)
{
	*up = 1;
	if (store_db_is_pg(database))
		return store_open_pg(database, 1, up, err, errlen);
	return store_open_db(database, data_dir, err, errlen);
}

/* Open the configured database (see store.h). */
struct store *
store_open_db(const char *database, const char *data_dir, char *err,
    size_t errlen)
{
	int up;

	if (database == NULL || strcmp(database, "sqlite") == 0)
		return store_open(data_dir, err, errlen);
	if (store_db_is_pg(database))
		return store_open_pg(database, 0, &up, err, errlen);
	snprintf(err, errlen, "database: neither \"sqlite\" nor a "
	    "postgresql:// URI");
	return NULL;
}

/* Check a database file without writing to it (see store.h). */
int
store_check_file(const char *path, char *err, size_t errlen)
{
	struct db *db;
	struct db_stmt *stmt = NULL;
	const char *ok = NULL;
	int rc = -1, version = -1;

	if (access(path, F_OK) == -1)
		return 0;               /* made at start */
	if ((db = db_open_sqlite(path, 1, 0, err, errlen)) == NULL)
		return -1;
	if (db_prepare(db, "PRAGMA user_version", &stmt) == 0 &&
	    db_step(stmt) == DB_ROW)
		version = db_column_int(stmt, 0);
	db_finalize(stmt);
	stmt = NULL;
	if (version < 0) {
		snprintf(err, errlen, "%s: not a database: %s", path,
		    db_errmsg(db));
		goto done;
	}
	if (version > NMIGRATIONS) {
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this program's (%d)", path, version, NMIGRATIONS);
		goto done;
	}
	if (db_prepare(db, "PRAGMA quick_check", &stmt) == 0 &&
	    db_step(stmt) == DB_ROW)
		ok = db_column_text(stmt, 0);
	if (ok == NULL || strcmp(ok, "ok") != 0) {
		snprintf(err, errlen, "%s: damaged: %s", path, ok != NULL ?
		    ok : db_errmsg(db));
		goto done;
	}
	rc = 0;
 done:
	db_finalize(stmt);
	db_close(db);
	return rc;
}

/* Check the configured database without writing to it (see store.h). */
int
store_check_db(const char *database, const char *data_dir, char *err,
    size_t errlen)
{
	struct store *st;
	struct db *db;
	char *path;
	int rc = -1, v;

	if (database == NULL || strcmp(database, "sqlite") == 0) {
		path = xasprintf("%s/%s", data_dir, STORE_DB_NAME);
		rc = store_check_file(path, err, errlen);
		free(path);
		return rc;
	}
	if (!store_db_is_pg(database)) {
		snprintf(err, errlen, "neither \"sqlite\" nor a "
		    "postgresql:// URI");
		return -1;
	}
	if ((db = db_open_pg(database, STORE_PG_CONNECT_TIMEOUT, err,
	    errlen)) == NULL)
		return -1;
	st = store_new(db);
	if ((v = store_pg_version(st)) < 0)
		store_sqlerr(st, "schema version", err, errlen);
	else if (v > STORE_SCHEMA_VERSION)
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this program's (%d)", st->path, v, STORE_SCHEMA_VERSION);
	else
		rc = 0;		/* none yet: made at start */
	store_close(st);
	return rc;
}

/* Open DATA_DIR/smrelay.db, creating data_dir (0700) if missing. */
struct store *
store_open(const char *data_dir, char *err, size_t errlen)
{
	struct store *st;
	char *path;

	if (mkdir(data_dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "data_dir %s: %s", data_dir,
		    strerror(errno));
		return NULL;
	}
	path = xasprintf("%s/%s", data_dir, STORE_DB_NAME);
	st = store_open_path(path, err, errlen);
	free(path);
	return st;
}

/* Which backend the store is on. */
int
store_is_pg(struct store *st)
{
	return db_kind(st->db) == DB_POSTGRESQL;
}

/* Subscribe to the other nodes' changes (see store.h). */
int
store_listen(struct store *st)
{
	if (db_kind(st->db) != DB_POSTGRESQL)
		return -1;
	return db_listen(st->db, PG_CHANNEL);
}

/* The socket to watch after store_listen, or -1 (see store.h). */
int
store_notify_fd(struct store *st)
{
	if (db_kind(st->db) != DB_POSTGRESQL)
		return -1;
	return db_notify_fd(st->db);
}

/* How many change notifications arrived (see store.h). */
int
store_notified(struct store *st)
{
	return db_notified(st->db);
}

/* Close the connection (finalizes nothing: callers finalize their own). */
void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	db_close(st->db);
	free(st->path);
	free(st);
}

/* The id of the row with this fingerprint, 0 none, -1 error. */
int64_t
store_find_fp(struct store *st, const char *table, const char *fp)
{
	struct db_stmt *stmt;
	const char *sql;
	int64_t id = 0;
	int rc;

	if (strcmp(table, "certificates") == 0)
		sql = "SELECT id FROM certificates WHERE fingerprint = ?";
	else if (strcmp(table, "trust_anchors") == 0)
		sql = "SELECT id FROM trust_anchors WHERE fingerprint = ?";
	else
		sql = "SELECT id FROM crls WHERE fingerprint = ?";
	if (store_prepare(st, sql, &stmt, NULL, 0) == -1)
		return -1;
	db_bind_text(stmt, 1, fp);
	if ((rc = db_step(stmt)) == DB_ROW)
		id = db_column_int64(stmt, 0);
	else if (rc != DB_DONE)
		id = -1;
	db_finalize(stmt);
	return id;
}

/* Run a statement with one integer parameter; *changes gets rows hit. */
int
store_exec_id(struct store *st, const char *sql, int64_t id, int *changes)
{
	struct db_stmt *stmt;
	int rc;

	if (store_prepare(st, sql, &stmt, NULL, 0) == -1)
		return -1;
	db_bind_int64(stmt, 1, id);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE && rc != DB_ROW)
		return -1;
	if (changes != NULL)
		*changes = (int)db_changes(st->db);
	return 0;
}

/* The columns a listing may select, by name, and where each goes. */
#define INFO(name, text) { #name, text, offsetof(struct store_certinfo, name) }
static const struct info_column {
	const char	*name;
	int		 text;		/* 1: const char *, 0: int64_t */
	size_t		 off;
} info_columns[] = {
	INFO(fingerprint, 1), INFO(subject, 1), INFO(issuer, 1),
	INFO(serial, 1), INFO(emails, 1), INFO(key_type, 1), INFO(source, 1),
	INFO(location, 1),
	INFO(id, 0), INFO(cert_id, 0), INFO(not_before, 0),
	INFO(not_after, 0), INFO(added, 0), INFO(key_usage, 0),
	INFO(ext_key_usage, 0), INFO(can_encrypt, 0), INFO(can_sign, 0),
	INFO(key_bits, 0), INFO(caps, 0), INFO(expires, 0),
};
#undef INFO

/* A row of a listing into info, by column name. */
void
store_row_info(struct db_stmt *stmt, struct store_certinfo *ci)
{
	const struct info_column *col;
	const char *name, *text;
	char *base = (char *)ci;
	int64_t v;
	size_t j;
	int i, n;

	memset(ci, 0, sizeof(*ci));
	ci->key_usage = ci->ext_key_usage = -1;
	n = db_column_count(stmt);
	for (i = 0; i < n; i++) {
		name = db_column_name(stmt, i);
		for (j = 0; j < sizeof(info_columns) / sizeof(info_columns[0]);
		    j++) {
			col = &info_columns[j];
			if (strcmp(name, col->name) != 0)
				continue;
			if (col->text) {
				text = db_column_text(stmt,
				    i);
				memcpy(base + col->off, &text, sizeof(text));
			} else {
				v = db_column_int64(stmt, i);
				memcpy(base + col->off, &v, sizeof(v));
			}
		}
	}
	if (ci->emails == NULL)
		ci->emails = "";
}

/* Step through a listing, calling cb per row; finalizes the statement. */
int
store_run_list(struct db_stmt *stmt, store_list_cb *cb, void *arg)
{
	struct store_certinfo ci;
	int rc = DB_DONE, stop = 0, n = 0;

	while (!stop && (rc = db_step(stmt)) == DB_ROW) {
		store_row_info(stmt, &ci);
		stop = cb(&ci, arg);
		n++;
	}
	db_finalize(stmt);
	if (!stop && rc != DB_DONE)
		return -1;      /* the caller says why: store_errmsg() */
	return stop ? stop : n;
}

/*
 * Delete one row by id in its own transaction: 1 removed, 0 no such id,
 * -1 error.  A foreign-key refusal is reported as fkmsg when one is given.
 */
int
store_remove_id(struct store *st, const char *sql, int64_t id,
    const char *fkmsg, char *err, size_t errlen)
{
	int changes = 0;

	if (store_begin(st, err, errlen) == -1)
		return -1;
	if (store_exec_id(st, sql, id, &changes) == -1) {
		if (fkmsg != NULL && db_errclass(st->db) == DB_ERR_FOREIGN_KEY)
			snprintf(err, errlen, "%s", fkmsg);
		else
			store_sqlerr(st, "delete", err, errlen);
		store_rollback(st);
		return -1;
	}
	if (changes == 0) {
		store_rollback(st);
		return 0;
	}
	return store_commit(st, err, errlen) == -1 ? -1 : 1;
}

/* The secret called name: exactly len bytes into buf; -1 (err set) when it
 * is missing or of another length (a row we did not write). */
int
store_secret(struct store *st, const char *name, unsigned char *buf,
    size_t len, char *err, size_t errlen)
{
	struct db_stmt *stmt;
	const void *v;
	int rc = -1;

	if (store_prepare(st, "SELECT value FROM secrets WHERE name = ?",
	    &stmt, err, errlen) == -1)
		return -1;
	db_bind_text(stmt, 1, name);
	if (db_step(stmt) == DB_ROW && !db_column_is_null(stmt, 0) &&
	    (size_t)db_column_bytes(stmt, 0) == len &&
	    (v = db_column_blob(stmt, 0)) != NULL) {
		memcpy(buf, v, len);
		rc = 0;
	} else
		snprintf(err, errlen, "%s: secret \"%s\" missing or not %zu "
		    "bytes", st->path, name, len);
	db_finalize(stmt);
	return rc;
}

/* Feed the contents of extension nid of crl (if any) to md. */
static void
scope_ext(EVP_MD_CTX *md, X509_CRL *crl, int nid, int *any)
{
	const ASN1_OCTET_STRING *v;
	X509_EXTENSION *ext;
	int i;

	if ((i = X509_CRL_get_ext_by_NID(crl, nid, -1)) < 0 ||
	    (ext = X509_CRL_get_ext(crl, i)) == NULL ||
	    (v = X509_EXTENSION_get_data(ext)) == NULL)
		return;
	EVP_DigestUpdate(md, &nid, sizeof(nid));
	EVP_DigestUpdate(md, ASN1_STRING_get0_data(v),
	    (size_t)ASN1_STRING_length(v));
	*any = 1;
}

/*
 * What a CRL covers, so that one does not replace another that covers
 * something else (RFC 5280 5.2.5 partitions, delta CRLs, CRLs signed by a
 * rolled-over key): "" for a plain complete CRL, else hex SHA-256 of its
 * issuing distribution point, delta indicator and authority key id.
 */
void
store_crl_scope(X509_CRL *crl, char out[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0, i;
	EVP_MD_CTX *md;
	int any = 0, akid = 0;

	out[0] = '\0';
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return;
	}
	scope_ext(md, crl, NID_issuing_distribution_point, &any);
	scope_ext(md, crl, NID_delta_crl, &any);
	scope_ext(md, crl, NID_authority_key_identifier, &akid);
	if ((any || akid) && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == 32)
		for (i = 0; i < dl; i++)
			snprintf(out + 2 * i, 3, "%02x", d[i]);
	EVP_MD_CTX_free(md);
}

int
store_crl_fill_scopes(struct store *st, char *err, size_t errlen)
{
	struct db_stmt *sel, *upd;
	const unsigned char *p;
	X509_CRL *crl;
	char scope[65];
	int rc = 0;

	if (store_prepare(st, "SELECT id, der FROM crls", &sel, err,
	    errlen) == -1)
		return -1;
	if (store_prepare(st, "UPDATE crls SET scope = ? WHERE id = ?", &upd,
	    err, errlen) == -1) {
		db_finalize(sel);
		return -1;
	}
	while (rc == 0 && db_step(sel) == DB_ROW) {
		p = db_column_blob(sel, 1);
		if (p == NULL || (crl = d2i_X509_CRL(NULL, &p,
		    db_column_bytes(sel, 1))) == NULL)
			continue;
		store_crl_scope(crl, scope);
		X509_CRL_free(crl);
		db_bind_text(upd, 1, scope);
		db_bind_int64(upd, 2, db_column_int64(sel, 0));
		if (db_step(upd) != DB_DONE)
			rc = store_sqlerr(st, "CRL scope", err, errlen);
		db_reset(upd);
	}
	db_finalize(sel);
	db_finalize(upd);
	return rc;
}

/* A certificate whose keyUsage allows signing CRLs. */
int
store_is_crl_signer(X509 *x)
{
	return (X509_get_extension_flags(x) & EXFLAG_KUSAGE) &&
	    (X509_get_key_usage(x) & KU_CRL_SIGN);
}
