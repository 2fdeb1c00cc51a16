/* ctl_apply.c: smrelayctl apply: run the policy and the transforms exactly
 * as smrelayd would (pipeline_decide per recipient, one pipeline_transform
 * per copy) on a message from stdin. */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "ctl_apply.h"
#include "ctl_util.h"
#include "daemon/smime/smime.h"
#include "policy/policy.h"
#include "proto/proto.h"
#include "store/store.h"
#include "lib/lib.h"

/* The recipients that share a treatment, as gateway.c groups them. */
struct apply_copy {
	unsigned	 actions;
	int64_t		 rule_id;
	const char	**rcpts;
	size_t		 n;
};

static int
apply_usage(void)
{
	fprintf(stderr, "usage: smrelayctl [-c FILE] apply --sender ADDR "
	    "--recipient ADDR [ADDR ...] < message\n");
	return 2;
}

/* Transform and print the copies; 0, or 1 when one failed. */
static int
apply_copies(const struct certsrc *src, const struct config *cfg,
    const char *sender, struct apply_copy *copies, size_t ncopies,
    const char *msg, size_t len)
{
	struct smime_msg_res res;
	struct smtp_result fail;
	struct pl_copy pc;
	char trace[512];
	size_t i, k;
	int rc = 0;

	for (i = 0; i < ncopies; i++) {
		pc.sender = sender;
		pc.rcpts = copies[i].rcpts;
		pc.nrcpts = copies[i].n;
		pc.actions = copies[i].actions;
		pc.rule_id = copies[i].rule_id;
		pc.host = cfg->hostname;
		if (pipeline_transform(src, &pc, msg, len, &res, &fail, trace,
		    sizeof(trace)) == -1) {
			fprintf(stderr, "smrelayctl: apply: copy for ");
			for (k = 0; k < pc.nrcpts; k++)
				fprintf(stderr, "%s%s", k ? "," : "",
				    pc.rcpts[k]);
			fprintf(stderr, ": %d %s %s (%s)\n", fail.code,
			    fail.enh, fail.text, res.err);
			smime_msg_res_free(&res);
			rc = 1;
			continue;
		}
		if (res.err[0] != '\0')
			fprintf(stderr, "smrelayctl: apply: note: %s\n",
			    res.err);
		printf("--- copy for ");
		for (k = 0; k < pc.nrcpts; k++)
			printf("%s%s", k ? "," : "", pc.rcpts[k]);
		printf("\n");
		if (res.msg != NULL) {
			fputs(trace, stdout);
			fwrite(res.msg, 1, res.len, stdout);
		}
		else
			fwrite(msg, 1, len, stdout);
		smime_msg_res_free(&res);
	}
	return rc;
}

int
ctl_apply_run(const char *path, int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "sender", required_argument, NULL, 's' },
		{ "recipient", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	struct certsrc src = { NULL, NULL, NULL };
	struct apply_copy *copies = NULL;
	struct pl_decision d;
	struct config *cfg = NULL;
	const char *sender = NULL, **rcpts = NULL;
	char err[1024], *msg = NULL;
	size_t nrcpts = 0, ncopies = 0, i, k, len;
	int ch, rc = 1;

	optind = 1;
	while ((ch = getopt_long(argc + 1, argv - 1, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sender = optarg;
			break;
		case 'r':
			rcpts = xreallocarray(rcpts, nrcpts + 1,
			    sizeof(*rcpts));
			rcpts[nrcpts++] = optarg;
			break;
		default:
			free(rcpts);
			return apply_usage();
		}
	}
	/* `--recipient A B C` (SPEC: --recipient ADDR...) as well as
	 * `--recipient A --recipient B`: the operands are recipients too. */
	if (nrcpts > 0)
		for (; optind < argc + 1; optind++) {
			rcpts = xreallocarray(rcpts, nrcpts + 1,
			    sizeof(*rcpts));
			rcpts[nrcpts++] = argv[optind - 1];
		}
	if (sender == NULL || nrcpts == 0 || optind != argc + 1) {
		free(rcpts);
		return apply_usage();
	}
	if (strcmp(sender, "<>") == 0)
		sender = "";
	if ((cfg = config_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		free(rcpts);
		return 1;
	}
	cms_init();
	src.cc = certcache_new();
	if ((src.st = store_open(cfg->data_dir, err, sizeof(err))) == NULL ||
	    certcache_sync(src.cc, src.st, 1, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		goto done;
	}
	if ((msg = ctl_read_stdin(cfg->max_message_size, &len)) == NULL)
		goto done;
	rc = 0;
	for (i = 0; i < nrcpts; i++) {
		pipeline_decide(&src, certcache_policy(src.cc), sender,
		    rcpts[i], &d);
		if (d.verdict != PL_RELAY) {
			/* refused, or held in the spool: no copy now */
			fprintf(stderr, "smrelayctl: apply: <%s>: %d %s %s\n",
			    rcpts[i], d.reply.code, d.reply.enh, d.reply.text);
			if (d.verdict == PL_REJECT)
				rc = 1;
			continue;
		}
		for (k = 0; k < ncopies; k++)
			if (copies[k].actions == d.actions)
				break;
		if (k == ncopies) {
			copies = xreallocarray(copies, ncopies + 1,
			    sizeof(*copies));
			memset(&copies[ncopies++], 0, sizeof(*copies));
			copies[k].actions = d.actions;
			copies[k].rule_id = d.rule_id;
		}
		copies[k].rcpts = xreallocarray(copies[k].rcpts,
		    copies[k].n + 1, sizeof(*copies[k].rcpts));
		copies[k].rcpts[copies[k].n++] = rcpts[i];
	}
	if (apply_copies(&src, cfg, sender, copies, ncopies, msg, len) != 0)
		rc = 1;
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "smrelayctl: stdout: %s\n", strerror(errno));
		rc = 1;
	}
 done:
	for (k = 0; k < ncopies; k++)
		free(copies[k].rcpts);
	free(copies);
	free(msg);
	free(rcpts);
	certcache_free(src.cc);
	if (src.st != NULL)
		store_close(src.st);
	config_free(cfg);
	return rc;
}
