/* ctl_util.c: helpers shared by the smrelayctl command files. */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "ctl.h"
#include "lib/lib.h"
#include "store/store.h"

/* A JSON string (see ctl.h). */
json_t *
ctl_json_str(const char *s)
{
	json_t *v;
	char *copy, *p;

	if ((v = json_string(s ? s : "")) != NULL)
		return v;
	/* not UTF-8 (a certificate's T61String, a reply's 8bit text) */
	copy = xstrdup(s);
	for (p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v != NULL ? v : json_string("");
}

/* A comma-separated list as a JSON array of strings (empty: []). */
json_t *
ctl_json_csv(const char *csv)
{
	json_t *a = json_array();
	char *copy, *p, *tok;

	copy = xstrdup(csv ? csv : "");
	for (p = copy; (tok = strsep(&p, ",")) != NULL; )
		if (*tok != '\0')
			json_array_append_new(a, ctl_json_str(tok));
	free(copy);
	return a;
}

/* Print a JSON document on stdout and free it: compact, and an array one
 * element a line, so that a listing stays easy to grep too. */
int
ctl_json_print(json_t *v)
{
	size_t i, n;
	int rc = 0;

	if (v == NULL)
		rc = -1;
	else if (!json_is_array(v) || (n = json_array_size(v)) == 0)
		rc = json_dumpf(v, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	else {
		fputs("[\n", stdout);
		for (i = 0; i < n && rc == 0; i++) {
			rc = json_dumpf(json_array_get(v, i), stdout,
			    JSON_COMPACT | JSON_PRESERVE_ORDER);
			fputs(i + 1 < n ? ",\n" : "\n]", stdout);
		}
	}
	if (rc == -1 || fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, "smrelayctl: cannot write the JSON output\n");
		rc = CTL_FAIL;
	}
	json_decref(v);
	return rc;
}

char *
ctl_read_stdin(uint64_t max, size_t *lenp)
{
	size_t len = 0, cap = 65536, n;
	char *p = xmalloc(cap + 1);

	while ((n = fread(p + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len > max) {
			fprintf(stderr, "smrelayctl: message larger than "
			    "max_message_size (%llu bytes)\n",
			    (unsigned long long)max);
			free(p);
			return NULL;
		}
		if (len == cap)
			p = xrealloc(p, (cap *= 2) + 1);
	}
	if (ferror(stdin)) {
		fprintf(stderr, "smrelayctl: stdin: %s\n", strerror(errno));
		free(p);
		return NULL;
	}
	p[len] = '\0';
	*lenp = len;
	return p;
}

/* Standard input into a msgbuf spilling into $TMPDIR (see ctl.h). */
struct msgbuf *
ctl_read_stdin_mb(uint64_t max)
{
	struct msgbuf *mb = msgbuf_new(tmp_dir(), 0);
	char *buf = xmalloc(65536);
	size_t n;

	while ((n = fread(buf, 1, 65536, stdin)) > 0) {
		if (msgbuf_size(mb) + n > max) {
			fprintf(stderr, "smrelayctl: message larger than "
			    "max_message_size (%llu bytes)\n",
			    (unsigned long long)max);
			goto fail;
		}
		if (msgbuf_append(mb, buf, n) == -1) {
			fprintf(stderr, "smrelayctl: spill file: %s\n",
			    strerror(errno));
			goto fail;
		}
	}
	if (ferror(stdin)) {
		fprintf(stderr, "smrelayctl: stdin: %s\n", strerror(errno));
		goto fail;
	}
	free(buf);
	return mb;
 fail:
	free(buf);
	msgbuf_free(mb);
	return NULL;
}

/* Write all of a msgbuf to stdout in pieces; 0, or -1. */
int
ctl_write_mb(struct msgbuf *mb)
{
	char *buf = xmalloc(65536);
	size_t off = 0;
	ssize_t n;

	while ((n = msgbuf_pread(mb, buf, 65536, off)) > 0) {
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
		off += (size_t)n;
	}
	free(buf);
	return off == msgbuf_size(mb) ? 0 : -1;
}

/* The store and the key file, with the keys moved (see ctl.h). */
int
ctl_open_store(const struct config *cfg, struct store **st,
    struct keyfile **kf)
{
	return ctl_open_store_db(cfg, cfg->database, st, kf);
}

/* The same for another database than the configured one. */
int
ctl_open_store_db(const struct config *cfg, const char *database,
    struct store **st, struct keyfile **kf)
{
	char err[1024];
	int n;

	*kf = NULL;
	if ((*st = store_open_db(database, cfg->data_dir, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		return -1;
	}
	if ((*kf = keyfile_open(cfg->key_file, cfg->key_passphrase_file, err,
	    sizeof(err))) == NULL ||
	    (n = store_keys_migrate(*st, *kf, err, sizeof(err))) == -1) {
		fprintf(stderr, "smrelayctl: key_file: %s\n", err);
		keyfile_close(*kf);
		store_close(*st);
		*kf = NULL;
		*st = NULL;
		return -1;
	}
	if (n > 0)
		fprintf(stderr, "smrelayctl: moved %d private key(s) from "
		    "%s/%s to %s\n", n, cfg->data_dir, STORE_DB_NAME,
		    keyfile_path(*kf));
	return 0;
}
