/*
 * db_pg.c: the PostgreSQL backend of db.h, on libpq (several nodes on one
 * database).
 *
 * Statements: the store's '?' become $1, $2, ... (not inside '...', E'...',
 * "..." or comments); each SQL text is prepared once per connection
 * (PQprepare, described for its parameter and column types) and kept in a
 * small cache, so preparing it again costs nothing.  The first db_step
 * runs it (PQexecPrepared): parameters as text, blobs as binary when the
 * server expects bytea; results as text, bytea decoded on demand.
 *
 * A row is as hostile as a packet: a result over PG_MAX_ROWS rows or
 * PG_MAX_RESULT bytes, or a value over PG_MAX_VALUE bytes, fails the step
 * (DB_ERROR).  libpq has the whole result in memory by then: the bounds
 * protect the store's loops and buffers, and a query that may return more
 * pages with LIMIT.  A non-integer where an integer is read reads as 0 and
 * leaves the error on the connection.
 *
 * Time: connect_timeout bounds a connection, statement_timeout
 * (PG_STATEMENT_TIMEOUT_MS) a statement on the server, TCP keepalives and
 * tcp_user_timeout a peer that vanished without a word.
 *
 * Connection loss: the call that finds the connection gone (before sending
 * anything, by reading what the server said while idle, or from the
 * answer) fails with DB_ERR_CONNECTION.  Each later call tries PQreset, the
 * first at once and then after 1, 2, 4 ... up to PG_BACKOFF_MAX seconds,
 * failing fast in between.  A statement that was sent is never resent: the
 * server may have run it.  After a reset the prepared statements are
 * prepared again on use, the LISTENs are issued again, and db_notified
 * reports one notification more so the caller reloads what it may have
 * missed; the socket (db_notify_fd) may be a new one then.  A transaction
 * that was open when the connection went is lost: until the caller's
 * ROLLBACK everything else fails, so the rest of it never commits alone.
 * db_notified never reconnects (that may block): after it returns -1 the
 * caller's next query does, or its timer calls one.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "lib/lib.h"
#include "db_priv.h"

#define PG_STMT_CACHE		64	/* prepared statements per connection */
#define PG_MAX_PARAMS		1000	/* '?' in one statement */
#define PG_MAX_ROWS		100000	/* rows in one result */
#define PG_MAX_VALUE		(16 * 1024 * 1024)	/* bytes in one value */
#define PG_MAX_RESULT		(64 * 1024 * 1024)	/* bytes in one result */
#define PG_MAX_CHANNELS		16	/* LISTEN channels per connection */
#define PG_CHANNEL_MAX		63	/* PostgreSQL's identifier length */
#define PG_STATEMENT_TIMEOUT_MS	10000
#define PG_BACKOFF_MAX		30	/* seconds between reconnections */
#define PG_MIN_VERSION		100000	/* PostgreSQL 10 */

#define BYTEAOID		17	/* pg_type.h, stable since forever */
#define BOOLOID			16

/* One statement prepared on the server, under a name of ours. */
struct pg_prep {
	char		*sql;		/* the translated text: the key */
	char		 name[24];
	uint64_t	 used;		/* LRU clock */
	PGresult	*desc;		/* PQdescribePrepared */
};

struct pg_db {
	struct db	 base;
	PGconn		*conn;
	char		*name;		/* for messages: no password */
	char		*secrets[2];	/* scrubbed from every message */
	char		 err[512];
	enum db_errclass errclass;
	struct pg_prep	 cache[PG_STMT_CACHE];
	uint64_t	 tick;
	unsigned long	 nextname;
	int64_t		 changes;
	char		 channels[PG_MAX_CHANNELS][PG_CHANNEL_MAX + 1];
	int		 nchannels;
	int		 relisten;	/* LISTENs to issue again */
	int		 resync;	/* reconnected: db_notified says so */
	int		 txn_lost;	/* the connection went inside BEGIN */
	int		 backoff;	/* seconds, 0 before any failure */
	double		 next_reset;	/* mono_now() of the next PQreset */
	int		 ready;		/* connected and set up (the hook ran) */
	int		 in_hook;	/* the hook's own commands are running */
	db_connect_fn	*hook;		/* after each (re)connection */
	void		*hook_arg;
	char		 why[512];	/* the last failure to connect */
};

struct pg_param {
	char		*val;
	int		 len;
	int		 isblob;
};

enum pg_state {
	PG_READY,	/* not run since prepare or reset */
	PG_ROWS,	/* run: rows to read */
	PG_DONE,	/* ran to completion */
	PG_FAILED	/* failed: reset before running again */
};

struct pg_stmt {
	struct db_stmt	 base;
	char		*sql;		/* translated */
	int		 nparams;
	struct pg_param	*params;
	Oid		*ptypes;	/* what the server expects */
	int		 ncols;
	char		**colnames;
	int		 bind_err;
	enum pg_state	 state;
	PGresult	*res;
	int		 row;
	int		 nrows;
	unsigned char	**dec;		/* decoded bytea of the current row */
	size_t		*declen;
};

#define PDB(d)	((struct pg_db *)(void *)(d))
#define PST(s)	((struct pg_stmt *)(void *)(s))

static int	pg_ready(struct pg_db *);

/* Remove each secret from msg, in place. */
static void
pg_scrub(struct pg_db *d, char *msg)
{
	char *p, *q;
	size_t i, n;

	for (i = 0; i < sizeof(d->secrets) / sizeof(d->secrets[0]); i++) {
		if (d->secrets[i] == NULL || (n = strlen(d->secrets[i])) == 0)
			continue;
		for (q = msg; (p = strstr(q, d->secrets[i])) != NULL; q = p + n)
			memset(p, '*', n);
	}
	/* one line, no control characters from the server */
	for (p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == ' ')
		msg[--n] = '\0';
}

static void
pg_seterr(struct pg_db *d, enum db_errclass class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set the connection's last error. */
static void
pg_seterr(struct pg_db *d, enum db_errclass class, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	pg_scrub(d, d->err);
	d->errclass = class;
}

static void
pg_clearerr(struct pg_db *d)
{
	d->err[0] = '\0';
	d->errclass = DB_ERR_NONE;
}

/* The class of a SQLSTATE. */
static enum db_errclass
pg_class(const char *state)
{
	if (state == NULL || strlen(state) != 5)
		return DB_ERR_OTHER;
	if (strcmp(state, "23503") == 0)
		return DB_ERR_FOREIGN_KEY;
	if (strcmp(state, "23505") == 0)
		return DB_ERR_UNIQUE;
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
		return DB_ERR_CONNECTION;
	if (strcmp(state, "57014") == 0 || strcmp(state, "40001") == 0 ||
	    strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
		return DB_ERR_BUSY;
	return DB_ERR_OTHER;
}

/* Forget what the server had for this connection: it is a new one. */
static void
pg_cache_forget(struct pg_db *d)
{
	int i;

	for (i = 0; i < PG_STMT_CACHE; i++) {
		free(d->cache[i].sql);
		PQclear(d->cache[i].desc);
		memset(&d->cache[i], 0, sizeof(d->cache[i]));
	}
}

/* The connection broke; intrans: a transaction was open on it. */
static void
pg_lost(struct pg_db *d, PGTransactionStatusType ts)
{
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR ||
	    ts == PQTRANS_ACTIVE)
		d->txn_lost = 1;
}

/*
 * Record the failure of a command (res may be NULL); ts is the
 * transaction status before it.  Returns -1.
 */
static int
pg_fail(struct pg_db *d, PGresult *res, PGTransactionStatusType ts,
    const char *what)
{
	const char *state, *msg;
	enum db_errclass class;

	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	msg = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (msg == NULL && res != NULL && *PQresultErrorMessage(res) != '\0')
		msg = PQresultErrorMessage(res);
	if (msg == NULL)
		msg = PQerrorMessage(d->conn);
	class = pg_class(state);
	if (PQstatus(d->conn) != CONNECTION_OK) {
		class = DB_ERR_CONNECTION;
		pg_lost(d, ts);
	}
	pg_seterr(d, class, "%s%s%s%s%s", what, *what ? ": " : "", msg,
	    state != NULL ? " SQLSTATE " : "", state != NULL ? state : "");
	return -1;
}

/* Whether sql is a plain ROLLBACK (or ABORT) of the whole transaction. */
static int
pg_is_rollback(const char *sql)
{
	const char *p = sql;
	size_t n;

	while (isspace((unsigned char)*p))
		p++;
	if (strncasecmp(p, "ROLLBACK", 8) == 0)
		n = 8;
	else if (strncasecmp(p, "ABORT", 5) == 0)
		n = 5;
	else
		return 0;
	p += n;
	if (isalnum((unsigned char)*p) || *p == '_')
		return 0;
	while (isspace((unsigned char)*p))
		p++;
	if (strncasecmp(p, "TO", 2) == 0 &&
	    !isalnum((unsigned char)p[2]) && p[2] != '_')
		return 0;
	return 1;
}

/*
 * Before sending sql: the connection is there (or came back) and no lost
 * transaction is pending.  0, or -1 with the error set.
 */
static int
pg_before(struct pg_db *d, const char *sql)
{
	if (pg_ready(d) == -1)
		return -1;
	if (d->txn_lost && !d->in_hook && !pg_is_rollback(sql)) {
		pg_seterr(d, DB_ERR_OTHER, "%s: the transaction was lost with "
		    "the connection: roll it back", d->name);
		return -1;
	}
	pg_clearerr(d);
	return 0;
}

/* After a command that succeeded: what it changed. */
static void
pg_after(struct pg_db *d, PGresult *res, const char *sql)
{
	const char *st = PQcmdStatus(res), *n = PQcmdTuples(res);
	char *end;
	long long v;

	if (strncmp(st, "INSERT", 6) == 0 || strncmp(st, "UPDATE", 6) == 0 ||
	    strncmp(st, "DELETE", 6) == 0 || strncmp(st, "MERGE", 5) == 0) {
		errno = 0;
		v = strtoll(n, &end, 10);
		if (*n != '\0' && *end == '\0' && errno == 0 && v >= 0)
			d->changes = v;
	}
	if (d->txn_lost && !d->in_hook && pg_is_rollback(sql))
		d->txn_lost = 0;
}

/* LISTEN on channel (checked: [a-z_]+); 0, or -1 with the error set. */
static int
pg_listen_one(struct pg_db *d, const char *channel)
{
	PGresult *res;
	char sql[PG_CHANNEL_MAX + 16];
	PGTransactionStatusType ts = PQtransactionStatus(d->conn);

	snprintf(sql, sizeof(sql), "LISTEN \"%s\"", channel);
	res = PQexec(d->conn, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_fail(d, res, ts, "LISTEN");
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/*
 * What a new connection must offer: PostgreSQL 10 or later, and
 * standard_conforming_strings (a '?' is then found outside literals where
 * a backslash escapes nothing).  0, or -1 with the error set.
 */
static int
pg_connected(struct pg_db *d)
{
	const char *sv;

	if (PQserverVersion(d->conn) < PG_MIN_VERSION) {
		pg_seterr(d, DB_ERR_OTHER, "%s: PostgreSQL %d is older than 10",
		    d->name, PQserverVersion(d->conn));
		return -1;
	}
	sv = PQparameterStatus(d->conn, "standard_conforming_strings");
	if (sv == NULL || strcmp(sv, "on") != 0) {
		pg_seterr(d, DB_ERR_OTHER, "%s: standard_conforming_strings is "
		    "not on", d->name);
		return -1;
	}
	return 0;
}

/* A try failed (the error is set): wait longer before the next.  -1. */
static int
pg_backoff(struct pg_db *d)
{
	d->backoff = d->backoff == 0 ? 1 :
	    d->backoff * 2 > PG_BACKOFF_MAX ? PG_BACKOFF_MAX : d->backoff * 2;
	d->next_reset = mono_now() + d->backoff;
	memcpy(d->why, d->err, sizeof(d->why));
	return -1;
}

/* Between tries: say so, with the last reason.  -1. */
static int
pg_waiting(struct pg_db *d, double now)
{
	pg_seterr(d, DB_ERR_CONNECTION, "not connected, next attempt in "
	    "%.0fs (%.400s)", d->next_reset - now + 0.5, d->why);
	return -1;
}

/*
 * Make sure the connection is up and set up: notice one the server closed
 * while we were idle, reconnect with backoff, check what the server offers
 * and run the hook (the store's schema check) on each new connection.  The
 * hook's own commands pass straight through.  0, or -1 (DB_ERR_CONNECTION
 * when it could not connect).
 */
static int
pg_ready(struct pg_db *d)
{
	PGTransactionStatusType ts;
	char herr[sizeof(d->err)];
	double now;
	int i;

	if (d->in_hook)
		return 0;
	now = mono_now();
	if (PQstatus(d->conn) == CONNECTION_OK) {
		ts = PQtransactionStatus(d->conn);
		if (PQconsumeInput(d->conn) &&
		    PQstatus(d->conn) == CONNECTION_OK) {
			if (d->ready)
				goto relisten;
			if (now < d->next_reset)
				return pg_waiting(d, now);
			goto setup;
		}
		pg_lost(d, ts);
	}
	if (now < d->next_reset)
		return pg_waiting(d, now);
	PQreset(d->conn);
	if (PQstatus(d->conn) != CONNECTION_OK) {
		pg_seterr(d, DB_ERR_CONNECTION, "%s: %s", d->name,
		    PQerrorMessage(d->conn));
		return pg_backoff(d);
	}
	pg_cache_forget(d);
	d->resync = 1;
	d->relisten = d->nchannels > 0;
	d->ready = 0;
 setup:
	if (pg_connected(d) == -1)
		return pg_backoff(d);
	if (d->hook != NULL) {
		d->in_hook = 1;
		i = d->hook(d->hook_arg, herr, sizeof(herr));
		d->in_hook = 0;
		if (i == -1) {
			pg_seterr(d, DB_ERR_OTHER, "%s", herr);
			return pg_backoff(d);
		}
	}
	d->ready = 1;
	d->backoff = 0;
	d->next_reset = 0;
 relisten:
	/* not inside a transaction: it could be a failed one */
	if (d->relisten && PQtransactionStatus(d->conn) == PQTRANS_IDLE) {
		for (i = 0; i < d->nchannels; i++)
			if (pg_listen_one(d, d->channels[i]) == -1)
				return -1;
		d->relisten = 0;
	}
	return 0;
}

/*
 * sql with each '?' outside literals, quoted identifiers and comments
 * numbered $1, $2 ...; the count in *n.  NULL when over PG_MAX_PARAMS.
 */
static char *
pg_translate(const char *sql, int *n)
{
	const char *p = sql;
	char *out, *o;
	int k = 0;

	/* "?" becomes at most "$1000": 5 bytes */
	out = o = xreallocarray(NULL, strlen(sql) + 1, 5);
	while (*p != '\0') {
		if (*p == '\'' || *p == '"') {
			char q = *p;
			int esc = q == '\'' && p > sql &&
			    (p[-1] == 'E' || p[-1] == 'e') &&
			    (p - 1 == sql || !(isalnum((unsigned char)p[-2]) ||
			    p[-2] == '_'));

			*o++ = *p++;
			while (*p != '\0') {
				if (esc && *p == '\\' && p[1] != '\0') {
					*o++ = *p++;
					*o++ = *p++;
					continue;
				}
				if (*p == q) {
					/* '' and "" are the quote itself */
					if (p[1] == q) {
						*o++ = *p++;
						*o++ = *p++;
						continue;
					}
					break;
				}
				*o++ = *p++;
			}
			if (*p != '\0')
				*o++ = *p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				*o++ = *p++;
		} else if (p[0] == '/' && p[1] == '*') {
			*o++ = *p++;
			*o++ = *p++;
			while (*p != '\0' && !(p[0] == '*' && p[1] == '/'))
				*o++ = *p++;
			if (*p != '\0') {
				*o++ = *p++;
				*o++ = *p++;
			}
		} else if (*p == '?') {
			if (++k > PG_MAX_PARAMS) {
				free(out);
				return NULL;
			}
			o += sprintf(o, "$%d", k);
			p++;
		} else
			*o++ = *p++;
	}
	*o = '\0';
	*n = k;
	return out;
}

/*
 * The cache entry of sql, prepared (and described) on the server if it
 * was not.  NULL with the error set.
 */
static struct pg_prep *
pg_cache_get(struct pg_db *d, const char *sql)
{
	struct pg_prep *e, *victim = NULL;
	PGresult *res;
	PGTransactionStatusType ts;
	char dealloc[48];
	int i;

	for (i = 0; i < PG_STMT_CACHE; i++) {
		e = &d->cache[i];
		if (e->sql != NULL && strcmp(e->sql, sql) == 0) {
			e->used = ++d->tick;
			return e;
		}
		if (victim == NULL || e->sql == NULL ||
		    (victim->sql != NULL && e->used < victim->used))
			victim = e;
	}
	e = victim;
	if (e->sql != NULL) {
		/* best effort: it fails inside a failed transaction */
		snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", e->name);
		PQclear(PQexec(d->conn, dealloc));
		free(e->sql);
		PQclear(e->desc);
		memset(e, 0, sizeof(*e));
	}
	snprintf(e->name, sizeof(e->name), "smrelay_%lu", ++d->nextname);
	ts = PQtransactionStatus(d->conn);
	res = PQprepare(d->conn, e->name, sql, 0, NULL);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_fail(d, res, ts, "prepare");
		PQclear(res);
		return NULL;
	}
	PQclear(res);
	res = PQdescribePrepared(d->conn, e->name);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_fail(d, res, ts, "describe");
		PQclear(res);
		return NULL;
	}
	e->sql = xstrdup(sql);
	e->desc = res;
	e->used = ++d->tick;
	return e;
}

/* Drop sql's entry (the server no longer has it as we knew it). */
static void
pg_cache_drop(struct pg_db *d, const char *sql)
{
	int i;

	for (i = 0; i < PG_STMT_CACHE; i++) {
		if (d->cache[i].sql != NULL &&
		    strcmp(d->cache[i].sql, sql) == 0) {
			free(d->cache[i].sql);
			PQclear(d->cache[i].desc);
			memset(&d->cache[i], 0, sizeof(d->cache[i]));
		}
	}
}

static void
pg_close(struct db *db)
{
	struct pg_db *d = PDB(db);
	size_t i;

	pg_cache_forget(d);
	PQfinish(d->conn);
	for (i = 0; i < sizeof(d->secrets) / sizeof(d->secrets[0]); i++) {
		if (d->secrets[i] != NULL) {
			explicit_bzero(d->secrets[i], strlen(d->secrets[i]));
			free(d->secrets[i]);
		}
	}
	free(d->name);
	free(d);
}

static const char *
pg_name(const struct db *db)
{
	return ((const struct pg_db *)(const void *)db)->name;
}

static const char *
pg_errmsg(struct db *db)
{
	return PDB(db)->err[0] != '\0' ? PDB(db)->err : "not an error";
}

static enum db_errclass
pg_errclass(struct db *db)
{
	return PDB(db)->errclass;
}

static int
pg_exec(struct db *db, const char *sql)
{
	struct pg_db *d = PDB(db);
	PGTransactionStatusType ts;
	PGresult *res;
	ExecStatusType st;

	if (pg_before(d, sql) == -1)
		return -1;
	ts = PQtransactionStatus(d->conn);
	res = PQexec(d->conn, sql);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		pg_fail(d, res, ts, "");
		PQclear(res);
		return -1;
	}
	pg_after(d, res, sql);
	PQclear(res);
	return 0;
}

/* Copy the server's description of e into st. */
static int
pg_stmt_describe(struct pg_db *d, struct pg_stmt *st, struct pg_prep *e)
{
	int i;

	if (PQnparams(e->desc) != st->nparams) {
		pg_seterr(d, DB_ERR_OTHER, "%d parameters ('?') in the SQL, "
		    "%d for the server", st->nparams, PQnparams(e->desc));
		return -1;
	}
	st->ptypes = xcalloc(st->nparams + 1, sizeof(*st->ptypes));
	for (i = 0; i < st->nparams; i++)
		st->ptypes[i] = PQparamtype(e->desc, i);
	st->ncols = PQnfields(e->desc);
	st->colnames = xcalloc(st->ncols + 1, sizeof(*st->colnames));
	for (i = 0; i < st->ncols; i++)
		st->colnames[i] = xstrdup(PQfname(e->desc, i));
	return 0;
}

static void	pg_finalize(struct db_stmt *);

static int
pg_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
	struct pg_db *d = PDB(db);
	struct pg_stmt *st;
	struct pg_prep *e;

	st = xcalloc(1, sizeof(*st));
	st->base.ops = db->ops;
	st->base.db = db;
	st->row = -1;
	if ((st->sql = pg_translate(sql, &st->nparams)) == NULL) {
		pg_seterr(d, DB_ERR_OTHER, "over %d parameters", PG_MAX_PARAMS);
		pg_finalize(&st->base);
		return -1;
	}
	st->params = xcalloc(st->nparams + 1, sizeof(*st->params));
	if (pg_before(d, sql) == -1 || (e = pg_cache_get(d, st->sql)) == NULL ||
	    pg_stmt_describe(d, st, e) == -1) {
		pg_finalize(&st->base);
		return -1;
	}
	*out = &st->base;
	return 0;
}

/* Parameter i's slot, emptied; NULL (and the statement marked) if none. */
static struct pg_param *
pg_param(struct db_stmt *s, int i)
{
	struct pg_stmt *st = PST(s);
	struct pg_param *p;

	if (i < 1 || i > st->nparams) {
		st->bind_err = i;
		return NULL;
	}
	p = &st->params[i - 1];
	free(p->val);
	memset(p, 0, sizeof(*p));
	return p;
}

static void
pg_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	struct pg_param *p;

	if ((p = pg_param(s, i)) != NULL)
		p->val = xasprintf("%lld", (long long)v);
}

static void
pg_bind_text(struct db_stmt *s, int i, const char *v)
{
	struct pg_param *p;

	if ((p = pg_param(s, i)) != NULL && v != NULL)
		p->val = xstrdup(v);
}

static void
pg_bind_blob(struct db_stmt *s, int i, const void *v, size_t len)
{
	struct pg_param *p;

	if ((p = pg_param(s, i)) == NULL)
		return;
	if (len > PG_MAX_VALUE) {
		PST(s)->bind_err = i;
		return;
	}
	/* an empty blob is a blob, not NULL */
	p->val = xmalloc(len + 1);
	if (len > 0)
		memcpy(p->val, v, len);
	p->val[len] = '\0';
	p->len = (int)len;
	p->isblob = 1;
}

static void
pg_bind_null(struct db_stmt *s, int i)
{
	pg_param(s, i);
}

/* Free what was decoded from the current row. */
static void
pg_row_free(struct pg_stmt *st)
{
	int i;

	if (st->dec == NULL)
		return;
	for (i = 0; i < st->ncols; i++) {
		free(st->dec[i]);
		st->dec[i] = NULL;
		st->declen[i] = 0;
	}
}

/* Whether the result res is within the bounds; -1 with the error set. */
static int
pg_check_result(struct pg_db *d, struct pg_stmt *st, PGresult *res)
{
	int r, c, nrows = PQntuples(res), ncols = PQnfields(res);
	size_t total = 0, len, max;

	if (nrows > PG_MAX_ROWS) {
		pg_seterr(d, DB_ERR_OTHER, "%s: over %d rows in a result",
		    d->name, PG_MAX_ROWS);
		return -1;
	}
	if (ncols != st->ncols) {
		pg_seterr(d, DB_ERR_OTHER, "%s: %d columns, %d described",
		    d->name, ncols, st->ncols);
		return -1;
	}
	for (c = 0; c < ncols; c++) {
		/* bytea in text is "\x" and two hex digits a byte */
		max = PQftype(res, c) == BYTEAOID ?
		    2 + 2 * (size_t)PG_MAX_VALUE : PG_MAX_VALUE;
		for (r = 0; r < nrows; r++) {
			len = (size_t)PQgetlength(res, r, c);
			if (len > max) {
				pg_seterr(d, DB_ERR_OTHER, "%s: a value of "
				    "column %s over %d bytes", d->name,
				    st->colnames[c], PG_MAX_VALUE);
				return -1;
			}
			total += len;
		}
		if (total > PG_MAX_RESULT) {
			pg_seterr(d, DB_ERR_OTHER, "%s: a result over %d bytes",
			    d->name, PG_MAX_RESULT);
			return -1;
		}
	}
	return 0;
}

/* Run the statement; 0, or -1 with the error set. */
static int
pg_run(struct pg_db *d, struct pg_stmt *st)
{
	const char **vals;
	int *lens, *fmts, i, try, rc = -1;
	struct pg_prep *e;
	PGTransactionStatusType ts;
	PGresult *res = NULL;
	const char *state;
	char sqlstate[6];
	ExecStatusType es;

	if (st->bind_err) {
		pg_seterr(d, DB_ERR_OTHER, "bad binding of parameter %d "
		    "(%d parameters, values up to %d bytes)", st->bind_err,
		    st->nparams, PG_MAX_VALUE);
		return -1;
	}
	vals = xcalloc(st->nparams + 1, sizeof(*vals));
	lens = xcalloc(st->nparams + 1, sizeof(*lens));
	fmts = xcalloc(st->nparams + 1, sizeof(*fmts));
	for (i = 0; i < st->nparams; i++) {
		vals[i] = st->params[i].val;
		/* bytea gets the bytes as they are, of a text too */
		if (st->params[i].val != NULL && st->ptypes[i] == BYTEAOID) {
			fmts[i] = 1;
			lens[i] = st->params[i].isblob ? st->params[i].len :
			    (int)strlen(st->params[i].val);
		} else if (st->params[i].isblob &&
		    memchr(st->params[i].val, '\0', st->params[i].len) !=
		    NULL) {
			pg_seterr(d, DB_ERR_OTHER, "parameter %d: a blob with "
			    "a zero byte where the server expects no bytea",
			    i + 1);
			goto out;
		}
	}
	/*
	 * The server may have lost the statement we prepared (DISCARD ALL,
	 * or a table changed under a cached plan): prepare it again, once,
	 * outside a transaction (inside one the failure aborted it).
	 */
	for (try = 0; try < 2; try++) {
		if (pg_before(d, st->sql) == -1 ||
		    (e = pg_cache_get(d, st->sql)) == NULL)
			goto out;
		if (PQnparams(e->desc) != st->nparams ||
		    PQnfields(e->desc) != st->ncols) {
			pg_seterr(d, DB_ERR_OTHER, "%s: the statement changed "
			    "shape on the server", d->name);
			goto out;
		}
		ts = PQtransactionStatus(d->conn);
		res = PQexecPrepared(d->conn, e->name, st->nparams, vals, lens,
		    fmts, 0);
		es = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK)
			break;
		pg_fail(d, res, ts, "");
		state = res != NULL ?
		    PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		snprintf(sqlstate, sizeof(sqlstate), "%s",
		    state != NULL ? state : "");
		PQclear(res);
		res = NULL;
		if ((strcmp(sqlstate, "26000") != 0 &&
		    strcmp(sqlstate, "0A000") != 0) || ts != PQTRANS_IDLE)
			goto out;
		pg_cache_drop(d, st->sql);
	}
	if (res == NULL)
		goto out;
	if (pg_check_result(d, st, res) == -1) {
		PQclear(res);
		goto out;
	}
	pg_after(d, res, st->sql);
	st->res = res;
	st->nrows = PQntuples(res);
	rc = 0;
 out:
	free(vals);
	free(lens);
	free(fmts);
	return rc;
}

static int
pg_step(struct db_stmt *s)
{
	struct pg_stmt *st = PST(s);
	struct pg_db *d = PDB(s->db);

	pg_row_free(st);
	switch (st->state) {
	case PG_READY:
		if (pg_run(d, st) == -1) {
			st->state = PG_FAILED;
			return DB_ERROR;
		}
		st->row = 0;
		break;
	case PG_ROWS:
		st->row++;
		break;
	case PG_DONE:
		return DB_DONE;
	case PG_FAILED:
		return DB_ERROR;
	}
	if (st->row < st->nrows) {
		st->state = PG_ROWS;
		return DB_ROW;
	}
	st->state = PG_DONE;
	return DB_DONE;
}

/* Whether (current row, col) is there. */
static int
pg_cell(struct pg_stmt *st, int col)
{
	return st->state == PG_ROWS && st->res != NULL && col >= 0 &&
	    col < st->ncols && st->row < st->nrows;
}

static int
pg_column_is_null(struct db_stmt *s, int col)
{
	struct pg_stmt *st = PST(s);

	return !pg_cell(st, col) || PQgetisnull(st->res, st->row, col);
}

/* Column col of a bytea column, decoded (kept until the next step). */
static const unsigned char *
pg_column_decoded(struct pg_stmt *st, int col, size_t *len)
{
	unsigned char *raw;
	size_t n;

	if (st->dec == NULL) {
		st->dec = xcalloc(st->ncols + 1, sizeof(*st->dec));
		st->declen = xcalloc(st->ncols + 1, sizeof(*st->declen));
	}
	if (st->dec[col] == NULL) {
		raw = PQunescapeBytea((const unsigned char *)
		    PQgetvalue(st->res, st->row, col), &n);
		if (raw == NULL || n > PG_MAX_VALUE) {
			PQfreemem(raw);
			pg_seterr(PDB(st->base.db), DB_ERR_OTHER,
			    "column %s: bad bytea", st->colnames[col]);
			*len = 0;
			return NULL;
		}
		/* a NUL after the bytes, for db_column_text */
		st->dec[col] = xmalloc(n + 1);
		memcpy(st->dec[col], raw, n);
		st->dec[col][n] = '\0';
		st->declen[col] = n;
		PQfreemem(raw);
	}
	*len = st->declen[col];
	return st->dec[col];
}

static int64_t
pg_column_int64(struct db_stmt *s, int col)
{
	struct pg_stmt *st = PST(s);
	const char *v;
	char *end;
	long long n;

	if (pg_column_is_null(s, col))
		return 0;
	v = PQgetvalue(st->res, st->row, col);
	if (PQftype(st->res, col) == BOOLOID)
		return strcmp(v, "t") == 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	/* the whole string, and no blanks or '+' that strtoll would take */
	if ((*v != '-' && !isdigit((unsigned char)*v)) || *end != '\0' ||
	    errno != 0) {
		pg_seterr(PDB(s->db), DB_ERR_OTHER, "column %s: not a 64-bit "
		    "integer", st->colnames[col]);
		return 0;
	}
	return n;
}

static const char *
pg_column_text(struct db_stmt *s, int col)
{
	struct pg_stmt *st = PST(s);
	size_t len;

	if (pg_column_is_null(s, col))
		return NULL;
	if (PQftype(st->res, col) == BYTEAOID)
		return (const char *)pg_column_decoded(st, col, &len);
	return PQgetvalue(st->res, st->row, col);
}

static const void *
pg_column_blob(struct db_stmt *s, int col)
{
	return pg_column_text(s, col);
}

static int
pg_column_bytes(struct db_stmt *s, int col)
{
	struct pg_stmt *st = PST(s);
	size_t len;

	if (pg_column_is_null(s, col))
		return 0;
	if (PQftype(st->res, col) == BYTEAOID) {
		pg_column_decoded(st, col, &len);
		return (int)len;
	}
	return PQgetlength(st->res, st->row, col);
}

static int
pg_column_count(struct db_stmt *s)
{
	return PST(s)->ncols;
}

static const char *
pg_column_name(struct db_stmt *s, int col)
{
	struct pg_stmt *st = PST(s);

	if (col < 0 || col >= st->ncols)
		return NULL;
	return st->colnames[col];
}

static void
pg_reset(struct db_stmt *s)
{
	struct pg_stmt *st = PST(s);

	pg_row_free(st);
	PQclear(st->res);
	st->res = NULL;
	st->row = -1;
	st->nrows = 0;
	st->state = PG_READY;
}

static void
pg_finalize(struct db_stmt *s)
{
	struct pg_stmt *st = PST(s);
	int i;

	pg_reset(s);
	for (i = 0; st->params != NULL && i < st->nparams; i++)
		free(st->params[i].val);
	for (i = 0; st->colnames != NULL && i < st->ncols; i++)
		free(st->colnames[i]);
	free(st->colnames);
	free(st->params);
	free(st->ptypes);
	free(st->dec);
	free(st->declen);
	free(st->sql);
	free(st);
}

static int64_t
pg_changes(struct db *db)
{
	return PDB(db)->changes;
}

static int64_t
pg_last_insert_id(struct db *db)
{
	struct db_stmt *s;
	int64_t id = -1;

	if (pg_prepare(db, "SELECT lastval()", &s) == -1)
		return -1;
	if (pg_step(s) == DB_ROW && !pg_column_is_null(s, 0))
		id = pg_column_int64(s, 0);
	pg_finalize(s);
	return id;
}

static int
pg_in_transaction(struct db *db)
{
	struct pg_db *d = PDB(db);

	switch (PQtransactionStatus(d->conn)) {
	case PQTRANS_ACTIVE:
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		return 1;
	default:
		return d->txn_lost;
	}
}

static int
pg_listen(struct db *db, const char *channel)
{
	struct pg_db *d = PDB(db);
	size_t n = strlen(channel);
	int i;

	if (n == 0 || n > PG_CHANNEL_MAX ||
	    strspn(channel, "abcdefghijklmnopqrstuvwxyz_") != n) {
		pg_seterr(d, DB_ERR_OTHER, "bad channel name (a-z and _ only)");
		return -1;
	}
	for (i = 0; i < d->nchannels; i++)
		if (strcmp(d->channels[i], channel) == 0)
			return 0;
	if (d->nchannels == PG_MAX_CHANNELS) {
		pg_seterr(d, DB_ERR_OTHER, "over %d channels", PG_MAX_CHANNELS);
		return -1;
	}
	/* kept even when the server is away: pg_ready issues it */
	memcpy(d->channels[d->nchannels++], channel, n + 1);
	d->relisten = 1;
	if (pg_ready(d) == -1)
		return -1;
	if (d->relisten) {
		pg_seterr(d, DB_ERR_OTHER, "LISTEN waits for the end of the "
		    "transaction");
		return -1;
	}
	return 0;
}

static int
pg_notify_fd(struct db *db)
{
	struct pg_db *d = PDB(db);

	return PQstatus(d->conn) == CONNECTION_OK ? PQsocket(d->conn) : -1;
}

static int
pg_notified(struct db *db)
{
	struct pg_db *d = PDB(db);
	PGTransactionStatusType ts;
	PGnotify *nt;
	int n = 0;

	if (PQstatus(d->conn) != CONNECTION_OK)
		return -1;
	ts = PQtransactionStatus(d->conn);
	if (!PQconsumeInput(d->conn) || PQstatus(d->conn) != CONNECTION_OK) {
		pg_lost(d, ts);
		pg_seterr(d, DB_ERR_CONNECTION, "%s: %s", d->name,
		    PQerrorMessage(d->conn));
		return -1;
	}
	while ((nt = PQnotifies(d->conn)) != NULL) {
		if (n < INT_MAX - 1)
			n++;
		PQfreemem(nt);
	}
	if (d->resync) {
		d->resync = 0;
		n++;
	}
	return n;
}

static const struct db_ops pg_ops = {
	.close = pg_close,
	.name = pg_name,
	.errmsg = pg_errmsg,
	.errclass = pg_errclass,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.bind_int64 = pg_bind_int64,
	.bind_text = pg_bind_text,
	.bind_blob = pg_bind_blob,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.column_int64 = pg_column_int64,
	.column_text = pg_column_text,
	.column_blob = pg_column_blob,
	.column_bytes = pg_column_bytes,
	.column_is_null = pg_column_is_null,
	.column_count = pg_column_count,
	.column_name = pg_column_name,
	.reset = pg_reset,
	.finalize = pg_finalize,
	.changes = pg_changes,
	.last_insert_id = pg_last_insert_id,
	.in_transaction = pg_in_transaction,
	.listen = pg_listen,
	.notify_fd = pg_notify_fd,
	.notified = pg_notified,
};

/*
 * The password as written in a URL's user info (percent-encoded, as a
 * message quoting the URL would show it), or NULL.
 */
static char *
pg_url_password(const char *conninfo)
{
	const char *p, *colon, *at;
	size_t n;

	if (strncmp(conninfo, "postgresql://", 13) == 0)
		p = conninfo + 13;
	else if (strncmp(conninfo, "postgres://", 11) == 0)
		p = conninfo + 11;
	else
		return NULL;
	n = strcspn(p, "/?#");
	for (at = NULL; n > 0; n--)
		if (p[n - 1] == '@') {
			at = p + n - 1;
			break;
		}
	if (at == NULL || (colon = memchr(p, ':', at - p)) == NULL ||
	    at - colon < 2)
		return NULL;
	return xstrndup(colon + 1, at - colon - 1);
}

/*
 * conninfo for messages: postgresql://user@host:port/dbname, never the
 * password (nor the other options).
 */
static char *
pg_safe_name(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	const char *host = "", *port = "", *user = "", *dbname = "";
	char *name;

	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return xstrdup("postgresql://(unparsable connection string)");
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0 && *host == '\0')
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			dbname = o->val;
	}
	name = xasprintf("postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "",
	    host, *port ? ":" : "", port, dbname);
	PQconninfoFree(opts);
	return name;
}

/* The password of conninfo's keyword form, or NULL. */
static char *
pg_kw_password(const char *conninfo)
{
	PQconninfoOption *opts, *o;
	char *pw = NULL;

	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return NULL;
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    *o->val != '\0')
			pw = xstrdup(o->val);
	PQconninfoFree(opts);
	return pw;
}

/* Connect to PostgreSQL (see db.h). */
static struct db *
pg_open(const char *conninfo, int connect_timeout, int lazy, char *err,
    size_t errlen)
{
	static const char *const defaults[][2] = {
		/* first: the connection string may say otherwise */
		{ "application_name", "smrelay" },
		{ "keepalives", "1" },
		{ "keepalives_idle", "10" },
		{ "keepalives_interval", "5" },
		{ "keepalives_count", "3" },
		{ "tcp_user_timeout", "30000" },
	};
	const char *kw[16], *val[16];
	char timeout[16], options[64];
	struct pg_db *d;
	size_t i, k = 0;
	char *pw, *url;

	d = xcalloc(1, sizeof(*d));
	d->base.ops = &pg_ops;
	d->base.kind = DB_POSTGRESQL;
	d->name = pg_safe_name(conninfo);
	/* what a message might quote: the URL's password, as written */
	url = pg_url_password(conninfo);
	pw = pg_kw_password(conninfo);
	d->secrets[0] = url;
	d->secrets[1] = pw;

	if (connect_timeout <= 0)
		connect_timeout = 10;
	snprintf(timeout, sizeof(timeout), "%d", connect_timeout);
	snprintf(options, sizeof(options), "-c statement_timeout=%d",
	    PG_STATEMENT_TIMEOUT_MS);
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		kw[k] = defaults[i][0];
		val[k++] = defaults[i][1];
	}
	kw[k] = "options";
	val[k++] = options;
	kw[k] = "dbname";
	val[k++] = conninfo;
	/* last: ours whatever the string says */
	kw[k] = "connect_timeout";
	val[k++] = timeout;
	kw[k] = "client_encoding";
	val[k++] = "UTF8";
	kw[k] = NULL;
	val[k] = NULL;

	if (lazy) {
		/* a string that cannot work is an error now, not later */
		PQconninfoOption *opts;
		char *perr = NULL;

		if ((opts = PQconninfoParse(conninfo, &perr)) == NULL) {
			snprintf(err, errlen, "%s: %s", d->name, perr != NULL ?
			    perr : "out of memory");
			pg_scrub(d, err);
			PQfreemem(perr);
			goto fail;
		}
		PQconninfoFree(opts);
	}
	d->conn = PQconnectdbParams(kw, val, 1);
	if (d->conn == NULL) {
		snprintf(err, errlen, "%s: out of memory", d->name);
		goto fail;
	}
	if (PQstatus(d->conn) != CONNECTION_OK) {
		pg_seterr(d, DB_ERR_CONNECTION, "%s: %s", d->name,
		    PQerrorMessage(d->conn));
		snprintf(err, errlen, "%s", d->err);
		if (!lazy)
			goto fail;
		pg_backoff(d);
		return &d->base;
	}
	if (pg_connected(d) == -1) {
		snprintf(err, errlen, "%s", d->err);
		goto fail;
	}
	d->ready = 1;
	return &d->base;
 fail:
	pg_close(&d->base);
	return NULL;
}

/* Connect (see db.h). */
struct db *
db_open_pg(const char *conninfo, int connect_timeout, char *err,
    size_t errlen)
{
	return pg_open(conninfo, connect_timeout, 0, err, errlen);
}

/* Connect now or later (see db.h). */
struct db *
db_open_pg_lazy(const char *conninfo, int connect_timeout, char *err,
    size_t errlen)
{
	return pg_open(conninfo, connect_timeout, 1, err, errlen);
}

/* Run fn after each new connection (see db.h). */
void
db_pg_on_connect(struct db *db, db_connect_fn *fn, void *arg)
{
	struct pg_db *d = PDB(db);

	if (db->kind != DB_POSTGRESQL)
		return;
	d->hook = fn;
	d->hook_arg = arg;
}

/* Whether connected and set up now (see db.h). */
int
db_pg_up(struct db *db)
{
	return db->kind == DB_POSTGRESQL && PDB(db)->ready &&
	    PQstatus(PDB(db)->conn) == CONNECTION_OK;
}
