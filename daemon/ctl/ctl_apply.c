/* ctl_apply.c: smrelayctl apply: run the policy and the transforms exactly
 * as smrelayd would (pipeline_decide per recipient, one pipeline_transform_body
 * per copy) on a message from stdin. */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "ctl.h"
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

/* The envelope `apply` was given, and the copies it makes of the message. */
struct apply {
	const char		 *sender;
	const char		**rcpts;
	size_t			  nrcpts;
	struct apply_copy	 *copies;
	size_t			  ncopies;
	json_t			 *out;	/* --json: {"copies", "refused",
					 * "held", "failed"} */
};

/* The synopsis from the command table; the usage-error exit status. */
static int
apply_usage(const struct ctl_cmd *cmd)
{
	fprintf(stderr, "usage: smrelayctl [-c FILE] %s %s\n", cmd->object,
	    cmd->args);
	return CTL_USAGE;
}

/* Add a recipient to the envelope. */
static void
apply_add_rcpt(struct apply *ap, const char *rcpt)
{
	ap->rcpts = xreallocarray(ap->rcpts, ap->nrcpts + 1,
	    sizeof(*ap->rcpts));
	ap->rcpts[ap->nrcpts++] = rcpt;
}

/* --sender ADDR --recipient ADDR...; -1 if they do not fit. */
static int
apply_args(struct apply *ap, int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "sender", required_argument, NULL, 's' },
		{ "recipient", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			ap->sender = optarg;
			break;
		case 'r':
			apply_add_rcpt(ap, optarg);
			break;
		default:
			return -1;
		}
	}
	/* `--recipient A B C` (SPEC: --recipient ADDR...) as well as
	 * `--recipient A --recipient B`: the operands are recipients too. */
	if (ap->nrcpts > 0)
		for (; optind < argc; optind++)
			apply_add_rcpt(ap, argv[optind]);
	if (ap->sender == NULL || ap->nrcpts == 0 || optind != argc)
		return -1;
	if (strcmp(ap->sender, "<>") == 0)
		ap->sender = "";
	return 0;
}

/* Put rcpt in the copy for the decision's actions, a new one if needed. */
static void
apply_add_copy(struct apply *ap, const struct pl_decision *d,
    const char *rcpt)
{
	struct apply_copy *c;
	size_t k;

	for (k = 0; k < ap->ncopies; k++)
		if (ap->copies[k].actions == d->actions)
			break;
	if (k == ap->ncopies) {
		ap->copies = xreallocarray(ap->copies, ap->ncopies + 1,
		    sizeof(*ap->copies));
		memset(&ap->copies[ap->ncopies++], 0, sizeof(*ap->copies));
		ap->copies[k].actions = d->actions;
		ap->copies[k].rule_id = d->rule_id;
	}
	c = &ap->copies[k];
	c->rcpts = xreallocarray(c->rcpts, c->n + 1, sizeof(*c->rcpts));
	c->rcpts[c->n++] = rcpt;
}

/* The daemon's decision for each recipient: refused and held ones said on
 * stderr, the others grouped into copies.  0, or 1 when one was refused. */
static int
apply_decide(struct apply *ap, const struct certsrc *src)
{
	struct pl_decision d;
	size_t i;
	int rc = 0;

	for (i = 0; i < ap->nrcpts; i++) {
		pipeline_decide(src, certcache_policy(src->cc), ap->sender,
		    ap->rcpts[i], &d);
		if (d.verdict != PL_RELAY) {
			/* refused, or held in the spool: no copy now */
			fprintf(stderr, "smrelayctl: apply: <%s>: %d %s %s\n",
			    ap->rcpts[i], d.reply.code, d.reply.enh,
			    d.reply.text);
			if (ap->out != NULL)
				json_array_append_new(json_object_get(ap->out,
				    d.verdict == PL_REJECT ? "refused" : "held"),
				    json_pack("{s:o, s:i, s:s, s:o}",
				    "recipient", ctl_json_str(ap->rcpts[i]),
				    "code", d.reply.code, "dsn", d.reply.enh,
				    "text", ctl_json_str(d.reply.text)));
			if (d.verdict == PL_REJECT)
				rc = CTL_NO;
			continue;
		}
		apply_add_copy(ap, &d, ap->rcpts[i]);
	}
	return rc;
}

/* The recipients of a copy as a JSON array. */
static json_t *
copy_rcpts_json(const struct pl_copy *pc)
{
	json_t *a = json_array();
	size_t k;

	for (k = 0; k < pc->nrcpts; k++)
		json_array_append_new(a, ctl_json_str(pc->rcpts[k]));
	return a;
}

/* A copy for --json: recipients, actions by name, the rule, the message
 * as text. */
static json_t *
copy_json(const struct pl_copy *pc, const char *msg,
    size_t len, const char *note)
{
	char acts[128], *text;
	json_t *o;

	policy_actions_str(pc->actions, acts, sizeof(acts));
	text = xasprintf("%.*s", (int)len, msg);
	o = json_pack("{s:o, s:o, s:o, s:o, s:o}", "recipients",
	    copy_rcpts_json(pc), "actions", ctl_json_csv(pc->actions ? acts :
	    ""), "rule", pc->rule_id > 0 ? json_integer(pc->rule_id) :
	    json_null(), "note", note[0] ? ctl_json_str(note) : json_null(),
	    "message", ctl_json_str(text));
	free(text);
	return o;
}

/* Transform and print the copies; 0, or 1 when one failed. */
static int
apply_copies(const struct certsrc *src, const struct config *cfg,
    const struct apply *ap, struct msgbuf *msg)
{
	const struct apply_copy *copies = ap->copies;
	struct smime_msg_res res;
	struct smtp_result fail;
	struct pl_copy pc;
	struct msgbuf *out;
	size_t i, k, tlen;
	char *text;
	int rc = 0;

	for (i = 0; i < ap->ncopies; i++) {
		pc.sender = ap->sender;
		pc.rcpts = copies[i].rcpts;
		pc.nrcpts = copies[i].n;
		pc.actions = copies[i].actions;
		pc.rule_id = copies[i].rule_id;
		pc.host = cfg->hostname;
		if (pipeline_transform_body(src, &pc, msg, tmp_dir(),
		    &out, &res, &fail) == -1) {
			fprintf(stderr, "smrelayctl: apply: copy for ");
			for (k = 0; k < pc.nrcpts; k++)
				fprintf(stderr, "%s%s", k ? "," : "",
				    pc.rcpts[k]);
			fprintf(stderr, ": %d %s %s (%s)\n", fail.code,
			    fail.enh, fail.text, res.err);
			if (ap->out != NULL)
				json_array_append_new(json_object_get(ap->out,
				    "failed"), json_pack("{s:o, s:i, s:s, s:o, "
				    "s:o}", "recipients", copy_rcpts_json(&pc),
				    "code", fail.code, "dsn", fail.enh, "text",
				    ctl_json_str(fail.text), "why",
				    ctl_json_str(res.err)));
			smime_msg_res_free(&res);
			rc = CTL_NO;
			continue;
		}
		if (res.err[0] != '\0')
			fprintf(stderr, "smrelayctl: apply: note: %s\n",
			    res.err);
		if (ap->out != NULL) {
			/* --json holds the copy as one string: in memory,
			 * up to max_message_size (the text output streams) */
			if ((text = msgbuf_slurp(out != NULL ? out : msg,
			    &tlen)) == NULL) {
				fprintf(stderr, "smrelayctl: apply: cannot "
				    "read the copy back\n");
				rc = CTL_FAIL;
			} else
				json_array_append_new(json_object_get(ap->out,
				    "copies"), copy_json(&pc, text, tlen,
				    res.err));
			free(text);
			msgbuf_free(out);
			smime_msg_res_free(&res);
			continue;
		}
		printf("--- copy for ");
		for (k = 0; k < pc.nrcpts; k++)
			printf("%s%s", k ? "," : "", pc.rcpts[k]);
		printf("\n");
		if (ctl_write_mb(out != NULL ? out : msg) == -1)
			rc = CTL_FAIL;
		msgbuf_free(out);
		smime_msg_res_free(&res);
	}
	return rc;
}

/* Free what apply_args and apply_decide collected. */
static void
apply_free(struct apply *ap)
{
	size_t k;

	for (k = 0; k < ap->ncopies; k++)
		free(ap->copies[k].rcpts);
	free(ap->copies);
	free(ap->rcpts);
	json_decref(ap->out);
}

/* apply: load the configuration and the keys, read the message, decide,
 * transform and print. */
int
ctl_apply_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	struct certsrc src = { NULL, NULL, NULL };
	struct keyfile *kf;
	struct apply ap;
	struct config *cfg;
	struct msgbuf *msg = NULL;
	char err[1024];
	int rc = CTL_FAIL;

	memset(&ap, 0, sizeof(ap));
	if (apply_args(&ap, argc, argv) == -1) {
		apply_free(&ap);
		return apply_usage(cmd);
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		apply_free(&ap);
		return CTL_FAIL;
	}
	if (o->json)
		ap.out = json_pack("{s:[], s:[], s:[], s:[]}", "copies",
		    "refused", "held", "failed");
	cms_init();
	src.cc = certcache_new();
	certcache_set_revocation(src.cc, cfg->revocation);
	if (ctl_open_store(cfg, &src.st, &kf) == -1)
		src.st = NULL;
	else if (keys_set_keyfile(certcache_keys(src.cc), kf),
	    certcache_sync(src.cc, src.st, 1, err, sizeof(err)) == -1)
		fprintf(stderr, "smrelayctl: %s\n", err);
	else if ((msg = ctl_read_stdin_mb(cfg->max_message_size)) != NULL) {
		rc = apply_decide(&ap, &src);
		if (apply_copies(&src, cfg, &ap, msg) != 0)
			rc = CTL_NO;
		if (ap.out != NULL && ctl_json_print(ap.out) != 0)
			rc = CTL_FAIL;
		ap.out = NULL;
		if (fflush(stdout) == EOF || ferror(stdout)) {
			fprintf(stderr, "smrelayctl: stdout: %s\n",
			    strerror(errno));
			rc = CTL_FAIL;
		}
	}
	apply_free(&ap);
	msgbuf_free(msg);
	certcache_free(src.cc);
	if (src.st != NULL)
		store_close(src.st);
	config_free(cfg);
	return rc;
}
