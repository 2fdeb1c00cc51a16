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
