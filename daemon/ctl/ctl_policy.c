/* ctl_policy.c: smrelayctl policy add|list|remove|test. */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/base/base.h"
#include "ctl.h"
#include "policy/policy.h"
#include "proto/proto.h"
#include "store/store.h"
#include "lib/lib.h"

/* What `policy VERB` was given. */
struct pctl {
	const char	*verb;
	int		 json;
	struct config	*cfg;
	struct store	*st;
	struct keyfile	*kf;
	const char	*sender, *recipient;	/* PAT (add) or ADDR (test) */
	const char	*actions, *nocert, *priority;
	const char	*id;			/* remove ID */
	json_t		*out;			/* --json: policy test's object */
	json_t		*steps;			/* ... and its explanation */
	int		 negative;		/* policy test: refused */
};

/* The options each verb takes. */
#define O_PATS		0x01	/* --sender, --recipient */
#define O_RULE		0x02	/* --action, --if-no-cert, --priority */
#define O_ID		0x04	/* one positional ID */


/* Store one option value, refusing a repeated option. */
static int
opt_set(struct pctl *pc, const char **slot, const char *name,
    const char *val)
{
	if (*slot != NULL) {
		fprintf(stderr, "smrelayctl: policy %s: %s given twice\n",
		    pc->verb, name);
		return -1;
	}
	*slot = val;
	return 0;
}

/* The arguments after `policy VERB`; -1 (message printed) if they do not
 * fit the verb. */
static int
pctl_args(struct pctl *pc, int argc, char *argv[])
{
	int i, o, r = 0;
	const char *a;

	o = strcmp(pc->verb, "add") == 0 ? O_PATS | O_RULE :
	    strcmp(pc->verb, "test") == 0 ? O_PATS :
	    strcmp(pc->verb, "remove") == 0 ? O_ID : 0;
	for (i = 0; i < argc && r == 0; i++) {
		a = argv[i];
		if (strcmp(a, "--json") == 0)
			pc->json = 1;
		else if (i + 1 < argc && (o & O_PATS) && strcmp(a,
		    "--sender") == 0)
			r = opt_set(pc, &pc->sender, a, argv[++i]);
		else if (i + 1 < argc && (o & O_PATS) && strcmp(a,
		    "--recipient") == 0)
			r = opt_set(pc, &pc->recipient, a, argv[++i]);
		else if (i + 1 < argc && (o & O_RULE) && strcmp(a,
		    "--action") == 0)
			r = opt_set(pc, &pc->actions, a, argv[++i]);
		else if (i + 1 < argc && (o & O_RULE) && strcmp(a,
		    "--if-no-cert") == 0)
			r = opt_set(pc, &pc->nocert, a, argv[++i]);
		else if (i + 1 < argc && (o & O_RULE) && strcmp(a,
		    "--priority") == 0)
			r = opt_set(pc, &pc->priority, a, argv[++i]);
		else if ((o & O_ID) && a[0] != '-' && pc->id == NULL)
			pc->id = a;
		else {
			fprintf(stderr, "smrelayctl: policy %s: unexpected "
			    "argument \"%s\"\n", pc->verb, a);
			return -1;
		}
	}
	return r;
}

/* The required options of each verb; -1 (message printed) if missing. */
static int
pctl_required(struct pctl *pc)
{
	const char *missing = NULL;

	if (strcmp(pc->verb, "add") == 0 && pc->actions == NULL)
		missing = "--action LIST";
	else if (strcmp(pc->verb, "remove") == 0 && pc->id == NULL)
		missing = "ID";
	else if (strcmp(pc->verb, "test") == 0 && pc->sender == NULL)
		missing = "--sender ADDR";
	else if (strcmp(pc->verb, "test") == 0 && pc->recipient == NULL)
		missing = "--recipient ADDR";
	if (missing == NULL)
		return 0;
	fprintf(stderr, "smrelayctl: policy %s: missing %s\n", pc->verb,
	    missing);
	return -1;
}

/* An int for --priority; -1 if not a decimal integer in range. */
static int
parse_priority(const char *s, int *v)
{
	long l;
	char *end;

	errno = 0;
	l = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || l < -1000000 ||
	    l > 1000000)
		return -1;
	*v = (int)l;
	return 0;
}

/* The rule of `policy add` from its options; -1 (message printed). */
static int
rule_from_args(struct pctl *pc, struct policy_rule *r)
{
	char err[512];

	memset(r, 0, sizeof(*r));
	r->sender = (char *)(pc->sender ? pc->sender : "*");
	r->recipient = (char *)(pc->recipient ? pc->recipient : "*");
	if (policy_pattern_check(r->sender, NULL, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: policy add: --sender: %s\n", err);
		return -1;
	}
	if (policy_pattern_check(r->recipient, NULL, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: policy add: --recipient: %s\n",
		    err);
		return -1;
	}
	if (policy_actions_parse(pc->actions, &r->actions, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: policy add: --action: %s\n", err);
		return -1;
	}
	if (pc->nocert != NULL && policy_nocert_parse(pc->nocert,
	    &r->nocert) == -1) {
		fprintf(stderr, "smrelayctl: policy add: bad --if-no-cert "
		    "\"%s\" (reject, plain or hold)\n", pc->nocert);
		return -1;
	}
	if (pc->priority != NULL && parse_priority(pc->priority,
	    &r->priority) == -1) {
		fprintf(stderr, "smrelayctl: policy add: bad --priority \"%s\" "
		    "(an integer from -1000000 to 1000000)\n", pc->priority);
		return -1;
	}
	if (pc->nocert != NULL && !(r->actions & POLICY_ENCRYPT)) {
		fprintf(stderr, "smrelayctl: warning: policy add: "
		    "--if-no-cert applies to encrypt only: ignored\n");
		r->nocert = POLICY_NOCERT_REJECT;
	}
	return 0;
}

/* policy add: print the new rule's id. */
static int
cmd_add(struct pctl *pc)
{
	struct policy_rule r;
	char err[1024];
	int64_t id;

	if (rule_from_args(pc, &r) == -1)
		return CTL_USAGE;
	if (store_policy_add(pc->st, &r, &id, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: policy add: %s\n", err);
		return CTL_FAIL;
	}
	printf("%lld\n", (long long)id);
	return 0;
}

/* The if-no-cert word of a rule, or NULL when it has no encrypt. */
static const char *
rule_nocert(const struct policy_rule *r)
{
	return (r->actions & POLICY_ENCRYPT) ? policy_nocert_str(r->nocert) :
	    NULL;
}

/* One rule as a JSON object: actions by name, if_no_cert or null. */
static json_t *
rule_json(const struct policy_rule *r)
{
	const char *nc = rule_nocert(r);
	char acts[128];

	policy_actions_str(r->actions, acts, sizeof(acts));
	return json_pack("{s:I, s:i, s:o, s:o, s:o, s:o}", "id",
	    (json_int_t)r->id, "priority", r->priority, "sender",
	    ctl_json_str(r->sender), "recipient", ctl_json_str(r->recipient),
	    "actions", ctl_json_csv(acts), "if_no_cert", nc != NULL ?
	    ctl_json_str(nc) : json_null());
}

/* One rule of `policy list`: a tab-separated line. */
static void
put_rule(const struct policy_rule *r)
{
	const char *nc = rule_nocert(r);
	char acts[128];

	policy_actions_str(r->actions, acts, sizeof(acts));
	printf("%lld\t%d\t%s\t%s\t%s\t%s\n", (long long)r->id,
	    r->priority, r->sender, r->recipient, acts, nc ? nc : "-");
}

/* policy list: every rule by id. */
static int
cmd_list(struct pctl *pc)
{
	struct policy_rule *rules;
	char err[1024];
	size_t i, n;

	json_t *a = pc->json ? json_array() : NULL;

	if ((rules = store_policy_load(pc->st, &n, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		json_decref(a);
		return CTL_FAIL;
	}
	for (i = 0; i < n; i++)
		if (a != NULL)
			json_array_append_new(a, rule_json(&rules[i]));
		else
			put_rule(&rules[i]);
	store_policy_rules_free(rules, n);
	return a != NULL ? ctl_json_print(a) : CTL_OK;
}

/* policy remove ID */
static int
cmd_remove(struct pctl *pc)
{
	char err[1024], *end;
	long long id;
	int rc;

	errno = 0;
	id = strtoll(pc->id, &end, 10);
	if (*pc->id < '0' || *pc->id > '9' || *end != '\0' || errno != 0 ||
	    id <= 0) {
		fprintf(stderr, "smrelayctl: policy remove: bad id \"%s\"\n",
		    pc->id);
		return CTL_USAGE;
	}
	if ((rc = store_policy_remove(pc->st, id, err, sizeof(err))) < 0)
		fprintf(stderr, "smrelayctl: policy remove: %s\n", err);
	else if (rc == 0)
		fprintf(stderr, "smrelayctl: policy rule %lld: no such rule\n",
		    id);
	return rc == 1 ? CTL_OK : rc == 0 ? CTL_NO : CTL_FAIL;
}

/* ---- policy test: the dry run ---- */

/* An envelope address as given: "<a@b>" -> "a@b", "<>" -> "". */
static char *
envelope_addr(const char *s)
{
	struct smtp_cmd cmd;
	size_t n = strlen(s);
	char *a, *line;

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		a = xstrndup(s + 1, n - 2);
	else
		a = xstrdup(s);
	/* as smrelayd reads it in RCPT TO: source route dropped, a quoted
	 * local part that needs no quotes without them */
	line = xasprintf("RCPT TO:<%s>", a);
	if (*a != '\0' && smtp_parse_cmd(line, &cmd) == SMTP_PARSE_OK) {
		free(a);
		a = xstrdup(cmd.path);
	}
	free(line);
	return a;
}

/* The pattern kind in words, for the "match:" line. */
static const char *
kind_str(const char *pat)
{
	enum policy_pat_kind k = POLICY_PAT_ANY;

	policy_pattern_check(pat, &k, NULL, 0);
	switch (k) {
	case POLICY_PAT_ADDRESS:
		return "address";
	case POLICY_PAT_DOMAIN:
		return "domain";
	case POLICY_PAT_SUBDOMAINS:
		return "subdomains";
	default:
		return "any";
	}
}

static void say(struct pctl *, const char *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* One line of the dry run, "STEP: text", or a {"step", "text"} object of
 * its JSON "steps". */
static void
say(struct pctl *pc, const char *step, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (pc->steps == NULL)
		printf("%s: %s\n", step, buf);
	else
		json_array_append_new(pc->steps, json_pack("{s:s, s:o}",
		    "step", step, "text", ctl_json_str(buf)));
}

/* A %-hack or bang path that another rule covers (policy_addr_alts()):
 * smrelayd refuses the recipient (pipeline.c, routed_otherwise). */
static int
routed_otherwise(struct pctl *pc, const struct policy_set *ps,
    const struct policy_rule *m, const char *sender, const char *rcpt)
{
	char alt[POLICY_ADDR_MAX];
	const struct policy_rule *r2;

	if (!policy_routed_otherwise(ps, sender, rcpt, m, alt, &r2))
		return 0;
	say(pc, "refused", "%s may be routed on to %s by a later relay (a "
	    "%%-hack or bang path), which %s: refused with 550 5.7.1", rcpt,
	    alt, r2 != NULL ? "another rule covers" : "no rule covers");
	pc->negative = 1;
	return 1;
}

/* "rule: ..." and why it won over the other matching rules. */
static void
explain_rule(struct pctl *pc, const struct policy_rule *m,
    const struct policy_rule *rules, size_t n, const char *sender,
    const char *rcpt)
{
	const char *nc = rule_nocert(m);
	char acts[128], ids[1024] = "";
	json_t *out = json_array();
	size_t i, off = 0;

	policy_actions_str(m->actions, acts, sizeof(acts));
	if (pc->out != NULL)
		json_object_set_new(pc->out, "rule", rule_json(m));
	else
		printf("rule: %lld priority=%d sender=%s recipient=%s "
		    "actions=%s if-no-cert=%s\n", (long long)m->id,
		    m->priority, m->sender, m->recipient, acts, nc ? nc : "-");
	say(pc, "match", "recipient %s matches %s (%s), sender %s matches %s "
	    "(%s)", *rcpt ? rcpt : "<>", m->recipient, kind_str(m->recipient),
	    *sender ? sender : "<>", m->sender, kind_str(m->sender));
	for (i = 0; i < n; i++) {
		if (rules[i].id == m->id ||
		    !policy_pattern_match(rules[i].recipient, rcpt) ||
		    !policy_pattern_match(rules[i].sender, sender))
			continue;
		json_array_append_new(out, json_integer(rules[i].id));
		if (off < sizeof(ids))
			off += (size_t)snprintf(ids + off, sizeof(ids) - off,
			    "%s%lld", off ? "," : "", (long long)rules[i].id);
	}
	if (pc->out != NULL)
		json_object_set_new(pc->out, "outranks", out);
	else {
		if (off > 0)
			printf("outranks: %s (also matching, but lower in "
			    "priority, specificity or id)\n", ids);
		json_decref(out);
	}
}

struct cert_scan {
	struct pctl	*pc;
	const char	*fp;		/* the chosen certificate's, or NULL */
	time_t		 now;
	int		 n;
};

/* Why a stored certificate cannot be used for encryption ("" if it can);
 * reasons joined with "; " into buf. */
static const char *
unusable_why(const struct store_certinfo *ci, time_t now, char *buf,
    size_t len)
{
	char t[64];
	size_t off = 0;
	int rsa = strcmp(ci->key_type, "RSA") == 0;

	buf[0] = '\0';
	if (ci->not_after < now) {
		store_time_str(ci->not_after, t, sizeof(t));
		off += snprintf(buf + off, len - off, "expired on %s", t);
	} else if (ci->not_before > now) {
		store_time_str(ci->not_before, t, sizeof(t));
		off += snprintf(buf + off, len - off, "not valid before %s", t);
	}
	if (off < len && ci->ext_key_usage != -1 &&
	    !(ci->ext_key_usage & XKU_SMIME))
		off += snprintf(buf + off, len - off, "%swrong extended key "
		    "usage (no emailProtection)", off ? "; " : "");
	if (off < len && ci->key_usage != -1 && !(ci->key_usage &
	    (rsa ? KU_KEY_ENCIPHERMENT : KU_KEY_AGREEMENT)))
		off += snprintf(buf + off, len - off, "%sno encryption key "
		    "usage (%s missing)", off ? "; " : "", rsa ?
		    "keyEncipherment" : "keyAgreement");
	if (off == 0 && !ci->can_encrypt)
		snprintf(buf, len, "%s key cannot encrypt", ci->key_type);
	return buf;
}

/* store_list_cb: one "encrypt: certificate N ..." line per other cert. */
static int
scan_cb(const struct store_certinfo *ci, void *arg)
{
	struct cert_scan *cs = arg;
	char why[512];

	if (cs->fp != NULL && strcmp(ci->fingerprint, cs->fp) == 0)
		return 0;
	cs->n++;
	unusable_why(ci, cs->now, why, sizeof(why));
	say(cs->pc, "encrypt", "certificate %lld subject=\"%s\" %s: %s",
	    (long long)ci->id, ci->subject, cs->fp ? "not used" : "unusable",
	    why[0] ? why : "usable, but an older one");
	return 0;
}

/* store_list_cb: the row of the chosen certificate. */
static int
chosen_cb(const struct store_certinfo *ci, void *arg)
{
	struct cert_scan *cs = arg;
	char t[64];

	if (strcmp(ci->fingerprint, cs->fp) != 0)
		return 0;
	store_time_str(ci->not_after, t, sizeof(t));
	say(cs->pc, "encrypt", "certificate %lld subject=\"%s\" "
	    "fingerprint=%s not_after=%s", (long long)ci->id, ci->subject, ci->fingerprint,
	    t);
	cs->n++;
	return 0;
}

/* What --if-no-cert then does for this recipient. */
static void
explain_nocert(struct pctl *pc, const struct policy_rule *m,
    const char *rcpt)
{
	switch (m->nocert) {
	case POLICY_NOCERT_PLAIN:
		say(pc, "if-no-cert", "plain: the copy for %s is relayed "
		    "unencrypted", rcpt);
		break;
	case POLICY_NOCERT_HOLD:
		say(pc, "if-no-cert", "hold: the copy for %s is spooled until "
		    "a certificate arrives or the queue lifetime (%ds) ends",
		    rcpt, pc->cfg->queue_lifetime);
		break;
	default:
		say(pc, "if-no-cert", "reject: %s is refused with 550 5.7.1",
		    rcpt);
		pc->negative = 1;
	}
}

/* encrypt: the certificate and cipher, or why there is none. */
static void
explain_encrypt(struct pctl *pc, const struct policy_rule *m,
    const char *rcpt, time_t now)
{
	struct store_certmeta meta;
	struct cert_scan cs = { pc, NULL, now, 0 };
	char err[256];
	X509 *x;
	int caps = 0;

	if ((x = store_best_cert_for(pc->st, rcpt, now, &caps)) != NULL &&
	    store_certmeta_get(x, &meta, err, sizeof(err)) == 0) {
		cs.fp = meta.fingerprint;
		store_cert_list(pc->st, rcpt, chosen_cb, &cs);
		cs.n = 0;
		store_cert_list(pc->st, rcpt, scan_cb, &cs);
		if (caps & STORE_CAP_GCM)
			say(pc, "cipher", "aes256-gcm (harvested "
			    "SMIMECapabilities announce AES-GCM)");
		else
			say(pc, "cipher", "aes256-cbc (the default: no AES-GCM "
			    "capability harvested for this certificate)");
		store_certmeta_free(&meta);
		X509_free(x);
		return;
	}
	X509_free(x);
	say(pc, "encrypt", "no usable certificate for %s", *rcpt ? rcpt : "<>");
	store_cert_list(pc->st, rcpt, scan_cb, &cs);
	if (cs.n == 0)
		say(pc, "encrypt", "no certificate stored for %s",
		    *rcpt ? rcpt : "<>");
	explain_nocert(pc, m, *rcpt ? rcpt : "<>");
}

/* sign: the key for the sender, or why there is none. */
static void
explain_sign(struct pctl *pc, const char *sender, time_t now)
{
	struct store_certmeta meta;
	struct store_key *k;
	char err[1024], t[64];

	if (*sender == '\0') {
		say(pc, "sign", "null sender: at run time the From header "
		    "address is tried");
		return;
	}
	if ((k = store_key_for(pc->st, sender, now)) == NULL) {
		say(pc, "sign", "no signing key for %s (at run time the From "
		    "header address is tried too)", sender);
		return;
	}
	if (store_key_attach(k, pc->kf, err, sizeof(err)) != 1) {
		say(pc, "sign", "no usable key for %s: %s", sender, err);
		store_key_free(k);
		return;
	}
	if (store_certmeta_get(k->cert, &meta, err, sizeof(err)) == 0) {
		store_time_str(meta.not_after, t, sizeof(t));
		say(pc, "sign", "key %lld for %s subject=\"%s\" "
		    "fingerprint=%s not_after=%s", (long long)k->id, sender,
		    meta.subject, meta.fingerprint, t);
		store_certmeta_free(&meta);
	} else
		say(pc, "sign", "key %lld for %s", (long long)k->id, sender);
	store_key_free(k);
}

/* store_list_cb counting rows. */
static int
count_cb(const struct store_certinfo *ci, void *arg)
{
	(void)ci;
	(*(int *)arg)++;
	return 0;
}

/* One line per action of the winning rule, in the order they run. */
static void
explain_actions(struct pctl *pc, const struct policy_rule *m,
    const char *sender, const char *rcpt)
{
	time_t now = time(NULL);
	int n = 0;

	if (m->actions & POLICY_DECRYPT) {
		store_key_list(pc->st, count_cb, &n);
		say(pc, "decrypt", "an encrypted message is decrypted with "
		    "any of our %d key(s) that matches a RecipientInfo", n);
	}
	if (m->actions & POLICY_VERIFY) {
		n = 0;
		store_trust_list(pc->st, count_cb, &n);
		say(pc, "verify", "the result goes into "
		    "Authentication-Results: %s; smime=... (%d trust "
		    "anchor(s))", pc->cfg->hostname, n);
	}
	if (m->actions & POLICY_SIGN)
		explain_sign(pc, sender, now);
	if ((m->actions & POLICY_SIGN) && (m->actions & POLICY_ENCRYPT))
		say(pc, "order", "sign, then encrypt");
	if (m->actions & POLICY_ENCRYPT)
		explain_encrypt(pc, m, rcpt, now);
	if (m->actions & POLICY_PASS)
		say(pc, "pass", "the message is relayed unchanged");
	if (m->actions & POLICY_REJECT) {
		say(pc, "reject", "the message is refused with 550 5.7.1");
		pc->negative = 1;
	}
}

/* policy test --sender ADDR --recipient ADDR */
static int
cmd_test(struct pctl *pc)
{
	struct policy_rule *rules;
	struct policy_set *ps;
	const struct policy_rule *m;
	char err[1024], *sender, *rcpt;
	size_t n;
	int rc;

	if ((rules = store_policy_load(pc->st, &n, err, sizeof(err))) ==
	    NULL || (ps = policy_set_new(rules, n, err, sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: %s\n", err);
		store_policy_rules_free(rules, n);
		return CTL_FAIL;
	}
	sender = envelope_addr(pc->sender);
	rcpt = envelope_addr(pc->recipient);
	if (pc->json) {
		pc->steps = json_array();
		pc->out = json_pack("{s:o, s:o, s:n, s:[]}", "sender",
		    ctl_json_str(sender), "recipient", ctl_json_str(rcpt),
		    "rule", "outranks");
	} else
		printf("sender: %s\nrecipient: %s\n", *sender ? sender : "<>",
		    *rcpt ? rcpt : "<>");
	m = policy_match(ps, sender, rcpt);
	if (routed_otherwise(pc, ps, m, sender, rcpt))
		;
	else if (m == NULL)
		say(pc, "no rule matches", "the message passes unchanged (%zu "
		    "rule(s))", n);
	else {
		explain_rule(pc, m, rules, n, sender, rcpt);
		explain_actions(pc, m, sender, rcpt);
	}
	free(sender);
	free(rcpt);
	policy_set_free(ps);
	store_policy_rules_free(rules, n);
	rc = pc->negative ? CTL_NO : CTL_OK;
	if (pc->json) {
		json_object_set_new(pc->out, "refused", json_boolean(
		    pc->negative));
		json_object_set_new(pc->out, "steps", pc->steps);
		pc->steps = NULL;
		if (ctl_json_print(pc->out) != 0)
			rc = CTL_FAIL;
		pc->out = NULL;
	}
	return rc;
}

/* policy VERB: open the store (and key file) of the configuration, run,
 * close. */
int
ctl_policy_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	const char *verb = cmd->verb;
	struct pctl pc;
	char err[1024];
	int rc;

	memset(&pc, 0, sizeof(pc));
	pc.verb = verb;
	pc.json = o->json;
	if (pctl_args(&pc, argc - 1, argv + 1) == -1 ||
	    pctl_required(&pc) == -1)
		return CTL_USAGE;
	if ((pc.cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	if (ctl_open_store(pc.cfg, &pc.st, &pc.kf) == -1) {
		config_free(pc.cfg);
		return CTL_FAIL;
	}
	if (strcmp(verb, "add") == 0)
		rc = cmd_add(&pc);
	else if (strcmp(verb, "list") == 0)
		rc = cmd_list(&pc);
	else if (strcmp(verb, "remove") == 0)
		rc = cmd_remove(&pc);
	else
		rc = cmd_test(&pc);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "smrelayctl: stdout: %s\n", strerror(errno));
		rc = CTL_FAIL;
	}
	keyfile_close(pc.kf);
	store_close(pc.st);
	config_free(pc.cfg);
	return rc;
}
