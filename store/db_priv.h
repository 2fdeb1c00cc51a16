/*
 * db_priv.h: what db.c (the dispatch) and the two backends (db_sqlite.c,
 * db_pg.c) share.  Each backend's connection and statement structs begin
 * with the common part below, and its functions are reached through its
 * struct db_ops.
 */
#ifndef SMRELAY_STORE_DB_PRIV_H
#define SMRELAY_STORE_DB_PRIV_H

#include "db.h"

struct db_ops;

struct db {
	const struct db_ops	*ops;
	enum db_kind		 kind;
};

struct db_stmt {
	const struct db_ops	*ops;
	struct db		*db;
};

/* One backend: the functions of db.h, minus the dispatch. */
struct db_ops {
	void		 (*close)(struct db *);
	const char	*(*name)(const struct db *);
	const char	*(*errmsg)(struct db *);
	enum db_errclass (*errclass)(struct db *);
	int		 (*exec)(struct db *, const char *);
	int		 (*prepare)(struct db *, const char *,
			    struct db_stmt **);
	void		 (*bind_int64)(struct db_stmt *, int, int64_t);
	void		 (*bind_text)(struct db_stmt *, int, const char *);
	void		 (*bind_blob)(struct db_stmt *, int, const void *,
			    size_t);
	void		 (*bind_null)(struct db_stmt *, int);
	int		 (*step)(struct db_stmt *);
	int64_t		 (*column_int64)(struct db_stmt *, int);
	const char	*(*column_text)(struct db_stmt *, int);
	const void	*(*column_blob)(struct db_stmt *, int);
	int		 (*column_bytes)(struct db_stmt *, int);
	int		 (*column_is_null)(struct db_stmt *, int);
	int		 (*column_count)(struct db_stmt *);
	const char	*(*column_name)(struct db_stmt *, int);
	void		 (*reset)(struct db_stmt *);
	void		 (*finalize)(struct db_stmt *);
	int64_t		 (*changes)(struct db *);
	int64_t		 (*last_insert_id)(struct db *);
	int		 (*in_transaction)(struct db *);
	int		 (*listen)(struct db *, const char *);
	int		 (*notify_fd)(struct db *);
	int		 (*notified)(struct db *);
};

/* db_sqlite.c, db_pg.c: the openers fill in ops and kind. */

#endif
