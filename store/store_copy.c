/* store_copy.c: copy a SQLite store into an empty PostgreSQL one
 * (`smrelayctl store migrate`), ids kept. */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "store_priv.h"
#include "lib/lib.h"

/* How a column is read and bound. */
enum col_type { C_INT, C_TEXT, C_BLOB };

struct copy_col {
	const char	*name;
	enum col_type	 type;
};

#define COPY_MAXCOLS	18

/* The tables, parents before children, with every column of schema 8. */
static const struct copy_table {
	const char	*name;
	int		 has_id;	/* an identity to move past the max */
	struct copy_col	 cols[COPY_MAXCOLS + 1];
} copy_tables[] = {
	{ "certificates", 1, {
	    { "id", C_INT }, { "der", C_BLOB }, { "fingerprint", C_TEXT },
	    { "subject", C_TEXT }, { "issuer", C_TEXT }, { "serial", C_TEXT },
	    { "not_before", C_INT }, { "not_after", C_INT },
	    { "key_usage", C_INT }, { "ext_key_usage", C_INT },
	    { "can_encrypt", C_INT }, { "can_sign", C_INT },
	    { "key_type", C_TEXT }, { "key_bits", C_INT },
	    { "source", C_TEXT }, { "caps", C_INT }, { "added", C_INT },
	    { "expires", C_INT }, { NULL, 0 } } },
	{ "cert_emails", 0, {
	    { "cert_id", C_INT }, { "email", C_TEXT }, { NULL, 0 } } },
	{ "keys", 1, {
	    { "id", C_INT }, { "cert_id", C_INT }, { "pkey", C_BLOB },
	    { "chain", C_BLOB }, { "added", C_INT }, { "location", C_TEXT },
	    { NULL, 0 } } },
	{ "trust_anchors", 1, {
	    { "id", C_INT }, { "der", C_BLOB }, { "fingerprint", C_TEXT },
	    { "subject", C_TEXT }, { "not_after", C_INT }, { "added", C_INT },
	    { NULL, 0 } } },
	{ "crls", 1, {
	    { "id", C_INT }, { "issuer", C_TEXT }, { "scope", C_TEXT },
	    { "der", C_BLOB }, { "fingerprint", C_TEXT },
	    { "this_update", C_INT }, { "next_update", C_INT },
	    { "added", C_INT }, { "source", C_TEXT }, { NULL, 0 } } },
	{ "ocsp", 1, {
	    { "id", C_INT }, { "cert_id", C_TEXT }, { "status", C_INT },
	    { "this_update", C_INT }, { "next_update", C_INT },
	    { "source", C_TEXT }, { "added", C_INT }, { NULL, 0 } } },
	{ "policy_rules", 1, {
	    { "id", C_INT }, { "sender", C_TEXT }, { "recipient", C_TEXT },
	    { "actions", C_INT }, { "nocert", C_INT }, { "priority", C_INT },
	    { "added", C_INT }, { NULL, 0 } } },
	{ "secrets", 0, {
	    { "name", C_TEXT }, { "value", C_BLOB }, { NULL, 0 } } },
};
#define NTABLES	(sizeof(copy_tables) / sizeof(copy_tables[0]))
_Static_assert(NTABLES == STORE_COPY_TABLES, "store.h's count of tables");

/* The table names, in the order store_copy counts them. */
const char *
store_copy_table(size_t i)
{
	return i < NTABLES ? copy_tables[i].name : NULL;
}

/* "SELECT a, b FROM t ORDER BY a, b" and "INSERT INTO t (a, b) VALUES
 * (?, ?)" for a table. */
static void
table_sql(const struct copy_table *t, char *sel, char *ins, size_t len)
{
	char cols[512], qs[64];
	size_t i;

	cols[0] = qs[0] = '\0';
	for (i = 0; t->cols[i].name != NULL; i++) {
		if (i > 0) {
			strlcpy_s(cols + strlen(cols), ", ",
			    sizeof(cols) - strlen(cols));
			strlcpy_s(qs + strlen(qs), ", ",
			    sizeof(qs) - strlen(qs));
		}
		strlcpy_s(cols + strlen(cols), t->cols[i].name,
		    sizeof(cols) - strlen(cols));
		strlcpy_s(qs + strlen(qs), "?", sizeof(qs) - strlen(qs));
	}
	snprintf(sel, len, "SELECT %s FROM %s ORDER BY %s", cols, t->name,
	    t->has_id ? "id" : cols);
	snprintf(ins, len, "INSERT INTO %s (%s) VALUES (%s)", t->name, cols,
	    qs);
}

/* Copy the rows of one table; how many, or -1 (err set). */
static int64_t
copy_rows(struct store *src, struct store *dst, const struct copy_table *t,
    char *err, size_t errlen)
{
	struct db_stmt *sel, *ins;
	char sqls[1024], sqli[1024];
	int64_t n = 0;
	int i, rc, failed = 0;

	table_sql(t, sqls, sqli, sizeof(sqls));
	if (store_prepare(src, sqls, &sel, err, errlen) == -1)
		return -1;
	if (store_prepare(dst, sqli, &ins, err, errlen) == -1) {
		db_finalize(sel);
		return -1;
	}
	while (!failed && (rc = db_step(sel)) == DB_ROW) {
		for (i = 0; t->cols[i].name != NULL; i++) {
			if (db_column_is_null(sel, i))
				db_bind_null(ins, i + 1);
			else if (t->cols[i].type == C_INT)
				db_bind_int64(ins, i + 1,
				    db_column_int64(sel, i));
			else if (t->cols[i].type == C_TEXT)
				db_bind_text(ins, i + 1,
				    db_column_text(sel, i));
			else
				db_bind_blob(ins, i + 1, db_column_blob(sel, i),
				    (size_t)db_column_bytes(sel, i));
		}
		if (db_step(ins) != DB_DONE)
			failed = store_sqlerr(dst, t->name, err, errlen);
		db_reset(ins);
		n++;
	}
	if (!failed && rc != DB_DONE)
		failed = store_sqlerr(src, t->name, err, errlen);
	db_finalize(sel);
	db_finalize(ins);
	return failed ? -1 : n;
}

/* Whether dst holds no row in any table we copy: 0, or -1 (err set). */
static int
target_empty(struct store *dst, char *err, size_t errlen)
{
	char sql[128];
	int64_t n;
	size_t i;

	for (i = 0; i < NTABLES; i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		    copy_tables[i].name);
		if ((n = store_int_query(dst, sql)) < 0)
			return store_sqlerr(dst, copy_tables[i].name, err,
			    errlen);
		if (n > 0) {
			snprintf(err, errlen, "%s: not empty: table %s holds "
			    "%lld rows (migrate into a new database)",
			    dst->path, copy_tables[i].name, (long long)n);
			return -2;
		}
	}
	return 0;
}

/* The identity of each table past its largest copied id. */
static int
move_identities(struct store *dst, char *err, size_t errlen)
{
	const struct copy_table *t;
	char sql[256];
	size_t i;

	for (i = 0; i < NTABLES; i++) {
		t = &copy_tables[i];
		if (!t->has_id)
			continue;
		snprintf(sql, sizeof(sql), "SELECT setval(pg_get_serial_"
		    "sequence('%s', 'id'), (SELECT COALESCE(max(id), 0) + 1 "
		    "FROM %s), false)", t->name, t->name);
		if (store_int_query(dst, sql) < 0)
			return store_sqlerr(dst, "identity", err, errlen);
	}
	return 0;
}

/* Copy src (SQLite, at the current schema) into dst (PostgreSQL, empty)
 * in one transaction (see store.h). */
int
store_copy(struct store *src, struct store *dst, int64_t *counts,
    char *err, size_t errlen)
{
	char sql[128];
	int64_t v;
	size_t i;
	int rc = -1;

	if (db_kind(src->db) != DB_SQLITE || db_kind(dst->db) !=
	    DB_POSTGRESQL) {
		snprintf(err, errlen, "copies a SQLite store into PostgreSQL "
		    "only");
		return -1;
	}
	if ((v = store_schema_version(src)) != STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld, not this "
		    "program's (%d): open it with this version first",
		    src->path, (long long)v, STORE_SCHEMA_VERSION);
		return -1;
	}
	/* the network process reads the database: no private key there */
	if ((v = store_int_query(src, "SELECT count(*) FROM keys WHERE "
	    "length(pkey) > 0")) != 0) {
		if (v < 0)
			return store_sqlerr(src, "keys", err, errlen);
		snprintf(err, errlen, "%s: %lld keys still hold a private key "
		    "(not moved to the key file yet)", src->path,
		    (long long)v);
		return -2;
	}
	if (store_begin(dst, err, errlen) == -1)
		return -1;
	if ((rc = target_empty(dst, err, errlen)) < 0)
		goto fail;
	rc = -1;
	for (i = 0; i < NTABLES; i++)
		if ((counts[i] = copy_rows(src, dst, &copy_tables[i], err,
		    errlen)) < 0)
			goto fail;
	if ((rc = move_identities(dst, err, errlen)) == -1)
		goto fail;
	/* the change counter goes on from the source's */
	if ((v = store_changes(src)) < 0) {
		store_sqlerr(src, "changes", err, errlen);
		goto fail;
	}
	snprintf(sql, sizeof(sql), "UPDATE meta SET value = %lld WHERE "
	    "name = 'changes' AND value < %lld", (long long)v, (long long)v);
	if (store_exec(dst, sql, err, errlen) == -1)
		goto fail;
	return store_commit(dst, err, errlen);
 fail:
	store_rollback(dst);
	return rc == -2 ? -2 : -1;
}

/* The name of the database, for messages (no password). */
const char *
store_name(struct store *st)
{
	return st->path;
}
