/* store_priv.h: what the store_*.c files share and nobody else sees. */
#ifndef SMRELAY_STORE_PRIV_H
#define SMRELAY_STORE_PRIV_H

#include "store.h"
#include "db.h"

#define STORE_STR_(x)	#x
#define STORE_STR(x)	STORE_STR_(x)

/*
 * A row is as hostile as a packet: another node (a newer or buggy version)
 * or anyone with access to the database may have written it.  A DER value
 * over STORE_MAX_DER bytes is not even fetched (it reads as NULL: a
 * backend fails a whole result over its own bounds, so one such row would
 * hide every other); a text over STORE_MAX_TEXT characters likewise.
 */
#define STORE_MAX_DER		1048576
#define STORE_MAX_TEXT		1024
#define STORE_DER_COLUMN(c) \
	"CASE WHEN length(" c ") <= " STORE_STR(STORE_MAX_DER) " THEN " c \
	" END"
#define STORE_TEXT_COLUMN(c) \
	"CASE WHEN length(" c ") <= " STORE_STR(STORE_MAX_TEXT) " THEN " c \
	" END"
/* Candidate rows looked at for one address, at most. */
#define STORE_MAX_CANDIDATES	64

struct store {
	struct db	*db;
	char		*path;		/* for messages: no password */
};

/* store.c */
/* BEGIN IMMEDIATE (SQLite), BEGIN and lock meta's 'changes' row
 * (PostgreSQL): writers queue up on the lock instead of failing. */
int store_begin(struct store *, char *err, size_t errlen);
/* Bump the change counter (and NOTIFY on PostgreSQL), then COMMIT. */
int store_commit(struct store *, char *err, size_t errlen);
void store_rollback(struct store *);
/* Prepare sql; -1 with "what: database message" in err. */
int store_prepare(struct store *, const char *sql, struct db_stmt **,
    char *err, size_t errlen);
/* "what: database message" into err; returns -1. */
int store_sqlerr(struct store *, const char *what, char *err, size_t errlen);
/* The id of the row with this fingerprint in table, 0 none, -1 error. */
int64_t store_find_fp(struct store *, const char *table, const char *fp);
/* Run a one-parameter (integer) statement to completion; -1 error. */
int store_exec_id(struct store *, const char *sql, int64_t id, int *changes);
/* One integer from a fixed query; -1 on error (or no row). */
int64_t store_int_query(struct store *, const char *sql);
/* A statement without parameters or rows (fixed SQL only); -1 with err. */
int store_exec(struct store *, const char *sql, char *err, size_t errlen);
int store_remove_id(struct store *, const char *sql, int64_t id,
    const char *fkmsg, char *err, size_t errlen);
/* VACUUM, then checkpoint and truncate the WAL; -1 (err set).  SQLite
 * only: refused on PostgreSQL. */
int store_scrub(struct store *, char *err, size_t errlen);
/* A row of a listing into info, by column name. */
void store_row_info(struct db_stmt *, struct store_certinfo *);
/* Step through a listing statement, calling cb per row. */
int store_run_list(struct db_stmt *, store_list_cb *, void *);

/* A row skipped as unusable: a warning naming table and id (and why). */
void store_bad_row(const char *table, int64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* store_ops.c */
/* The certificate of a DER column: the whole value, at most
 * STORE_MAX_DER bytes; NULL otherwise. */
X509 *store_column_x509(struct db_stmt *, int col);
/* Insert one certificate (and its e-mails) in the current transaction. */
int64_t store_cert_insert(struct store *, const struct store_certmeta *,
    enum store_source, int caps, int *existed, char *err, size_t errlen);

/* Compute the scope of every stored CRL (migration 4 -> 5). */
int store_crl_fill_scopes(struct store *, char *err, size_t errlen);
/* What a CRL covers (see store.c), 64 hex digits or "". */
void store_crl_scope(X509_CRL *, char out[65]);

#endif
