/* memo_tool.c: drives the daemon's verification path (smime_stream_verify
 * over the certificate cache of a store that smrelayctl filled) the way a
 * long-running smrelayd does, one command per line of stdin, so that
 * t_memo.sh can see what the engine's memo (proto/cms_memo.c) remembers
 * and when it forgets:
 *
 *   verify FILE   one verification; prints the Authentication-Results
 *                 verdict and "chain=hit" or "chain=miss" (whether the
 *                 memo answered the chain check)
 *   run CMD       a shell command (smrelayctl changing the store)
 *   sync          certcache_sync as the daemon's once-a-second check;
 *                 prints "reloaded" or "unchanged"
 *
 * usage: memo_tool STORE_DIR hard|soft|off (STORE_DIR/keys.db: the key
 * file, as smrelayctl made it) */
#include "autoconfig.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "daemon/smime/smime.h"
#include "lib/lib.h"
#include "proto/proto.h"
#include "store/store.h"

/* verify FILE: the verdict and whether the chain came from the memo. */
static void
cmd_verify(const struct certsrc *src, const char *path)
{
	struct cms_memo_stats a, b;
	struct smime_msg_res res;
	struct mime_tree t;
	struct msgbuf *in, *out = NULL;
	const char *tmp = tmp_dir();
	char *hdr;
	size_t hlen, body;

	if ((in = msgbuf_open(path)) == NULL) {
		fprintf(stderr, "memo_tool: %s: cannot open\n", path);
		exit(2);
	}
	if ((hdr = smime_stream_header(in, SMIME_STREAM_HDR_MAX, &hlen,
	    &body)) == NULL || smime_stream_parse(in, &t) == -1) {
		printf("error %s: header block or MIME structure over the "
		    "limits\n", path);
		free(hdr);
		msgbuf_free(in);
		return;
	}
	cms_memo_stats(certcache_memo(src->cc), &a);
	if (smime_stream_verify(src, in, &t, hdr, hlen, "memo.example", tmp,
	    &out, &res) == -1)
		printf("error %s\n", res.err);
	else {
		cms_memo_stats(certcache_memo(src->cc), &b);
		printf("smime=%s (%s) chain=%s\n",
		    cms_outcome_name(res.outcome), res.reason,
		    b.chain_hits > a.chain_hits ? "hit" : "miss");
	}
	smime_msg_res_free(&res);
	mime_tree_free(&t);
	msgbuf_free(out);
	msgbuf_free(in);
	free(hdr);
}

int
main(int argc, char **argv)
{
	struct certsrc src;
	struct keyfile *kf;
	char line[4096], err[512], *path;
	size_t n;
	int r;

	if (argc != 3)
		errx(2, "usage: memo_tool STORE_DIR hard|soft|off");
	cms_init();
	memset(&src, 0, sizeof(src));
	if ((src.st = store_open(argv[1], err, sizeof(err))) == NULL)
		errx(2, "%s", err);
	path = xasprintf("%s/keys.db", argv[1]);
	if ((kf = keyfile_open(path, NULL, err, sizeof(err))) == NULL)
		errx(2, "%s", err);
	free(path);
	src.cc = certcache_new();
	keys_set_keyfile(certcache_keys(src.cc), kf);
	certcache_set_revocation(src.cc, strcmp(argv[2], "hard") == 0 ?
	    CONFIG_REV_HARD : strcmp(argv[2], "off") == 0 ? CONFIG_REV_OFF :
	    CONFIG_REV_SOFT);
	if (certcache_sync(src.cc, src.st, 1, err, sizeof(err)) == -1)
		errx(2, "%s", err);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if ((n = strlen(line)) > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (strncmp(line, "verify ", 7) == 0)
			cmd_verify(&src, line + 7);
		else if (strncmp(line, "run ", 4) == 0)
			printf("exit %d\n", system(line + 4));
		else if (strcmp(line, "sync") == 0) {
			r = certcache_sync(src.cc, src.st, 0, err,
			    sizeof(err));
			printf("%s\n", r == 1 ? "reloaded" : r == 0 ?
			    "unchanged" : err);
		} else
			errx(2, "unknown command: %s", line);
	}
	certcache_free(src.cc);
	store_close(src.st);
	return 0;
}
