/*
 * db_pg.c: placeholder for the PostgreSQL backend, so that the store links
 * before the libpq backend lands (it replaces this file).
 */
#include "autoconfig.h"

#include <stdio.h>

#include "db_priv.h"

struct db *
db_open_pg(const char *conninfo, int connect_timeout, char *err,
    size_t errlen)
{
	(void)conninfo;
	(void)connect_timeout;
	snprintf(err, errlen, "PostgreSQL support is not built");
	return NULL;
}
