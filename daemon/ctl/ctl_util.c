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

void
ctl_json_str(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)(s ? s : ""); *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
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
	const char *tmp = getenv("TMPDIR");
	struct msgbuf *mb = msgbuf_new(tmp != NULL && *tmp != '\0' ? tmp :
	    "/tmp", 0);
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
	char err[1024];
	int n;

	*kf = NULL;
	if ((*st = store_open(cfg->data_dir, err, sizeof(err))) == NULL) {
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
