/* ctl_migrate.c: smrelayctl store migrate --to postgresql://...: the SQLite
 * store of data_dir copied into an empty PostgreSQL database, so that
 * several nodes share it (store_copy). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "daemon/base/base.h"
#include "lib/lib.h"
#include "store/store.h"

/* What was copied: a line per table, or one JSON object. */
static int
migrate_report(int json, const char *from,
    const char *to, const int64_t *counts)
{
	json_t *obj, *copied;
	size_t i;

	if (!json) {
		for (i = 0; i < STORE_COPY_TABLES; i++)
			printf("%s\t%lld\n", store_copy_table(i),
			    (long long)counts[i]);
		printf("migrated %s to %s\n", from, to);
		return CTL_OK;
	}
	obj = json_object();
	copied = json_object();
	for (i = 0; i < STORE_COPY_TABLES; i++)
		json_object_set_new(copied, store_copy_table(i),
		    json_integer(counts[i]));
	json_object_set_new(obj, "from", ctl_json_str(from));
	json_object_set_new(obj, "to", ctl_json_str(to));
	json_object_set_new(obj, "copied", copied);
	return ctl_json_print(obj) == 0 ? CTL_OK : CTL_FAIL;
}

/* Copy the SQLite store of cfg into the database at url. */
static int
migrate(int json, struct config *cfg,
    const char *url)
{
	struct store *src = NULL, *dst = NULL;
	struct keyfile *kf = NULL;
	int64_t counts[STORE_COPY_TABLES];
	char err[1024], *path;
	int rc = CTL_FAIL, r;

	/* opening would make an empty one: say there is nothing instead */
	path = xasprintf("%s/%s", cfg->data_dir, STORE_DB_NAME);
	if (access(path, F_OK) == -1) {
		fprintf(stderr, "smrelayctl: store migrate: %s: %s\n", path,
		    strerror(errno));
		free(path);
		return CTL_FAIL;
	}
	/* opening brings its schema up to date and moves its keys out */
	if (ctl_open_store_db(cfg, "sqlite", &src, &kf) == -1)
		goto done;
	if ((dst = store_open_db(url, cfg->data_dir, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: store migrate: %s\n", err);
		goto done;
	}
	memset(counts, 0, sizeof(counts));
	if ((r = store_copy(src, dst, counts, err, sizeof(err))) < 0) {
		fprintf(stderr, "smrelayctl: store migrate: %s\n", err);
		rc = r == -2 ? CTL_NO : CTL_FAIL;
		goto done;
	}
	rc = migrate_report(json, path, store_name(dst), counts);
 done:
	free(path);
	store_close(dst);
	store_close(src);
	keyfile_close(kf);
	return rc;
}

/* store migrate --to URL [--json] */
int
ctl_migrate_run(const struct ctl_cmd *cmd, const struct ctl_opts *o,
    int argc, char *argv[])
{
	struct config *cfg;
	const char *url = NULL;
	char err[1024];
	int i, json = o->json, rc;

	(void)cmd;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else {
			fprintf(stderr, "smrelayctl: store migrate: "
			    "unexpected argument \"%s\"\n", argv[i]);
			return CTL_USAGE;
		}
	}
	if (url == NULL || !store_db_is_pg(url)) {
		fprintf(stderr, "smrelayctl: store migrate: --to needs a "
		    "postgresql:// connection string\n");
		return CTL_USAGE;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	rc = migrate(json, cfg, url);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "smrelayctl: stdout: %s\n", strerror(errno));
		rc = CTL_FAIL;
	}
	store_load_cleanup();
	config_free(cfg);
	return rc;
}
