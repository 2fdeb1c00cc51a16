/* pipeline.c: per-recipient policy decisions and per-copy transforms (see
 * pipeline.h). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509.h>

#include "certcache.h"
#include "keys.h"
#include "mark.h"
#include "proto/proto.h"
#include "pipeline.h"
#include "policy/policy.h"
#include "smime_msg.h"
#include "store/store.h"
#include "lib/lib.h"

/* Decide for one recipient: rule, actions, and what a missing
 * certificate does. */
void
pipeline_decide(const struct certsrc *src, const struct policy_set *ps,
    const char *sender, const char *rcpt, struct pl_decision *d)
{
	const struct policy_rule *r;
	char why[160];
	X509 *x;
	int caps;

	memset(d, 0, sizeof(*d));
	if (ps == NULL || (r = policy_match(ps, sender, rcpt)) == NULL)
		return;
	d->rule_id = r->id;
	if (r->actions & POLICY_REJECT) {
		d->verdict = PL_REJECT;
		smtp_result_set(&d->reply, 550, "5.7.1", "<%s>: refused by policy "
		    "(rule %lld)", rcpt, (long long)r->id);
		return;
	}
	d->actions = r->actions & (POLICY_SIGN | POLICY_ENCRYPT |
	    POLICY_DECRYPT | POLICY_VERIFY);
	if (!(d->actions & POLICY_ENCRYPT))
		return;
	if ((x = certcache_cert_for(src, rcpt, &caps)) != NULL) {
		X509_free(x);
		return;
	}
	if (certcache_refused(src, rcpt, why, sizeof(why)))
		snprintf(d->why, sizeof(d->why), "%s", why);
	d->nocert = 1;
	metrics_inc(M_ENCRYPT_NOCERT);
	switch (r->nocert) {
	case POLICY_NOCERT_PLAIN:
		d->actions &= ~POLICY_ENCRYPT;
		d->plain = 1;
		break;
	case POLICY_NOCERT_HOLD:
		/* accepted; the copy waits in the spool for a certificate */
		d->verdict = PL_HOLD;
		smtp_result_set(&d->reply, 250, "2.1.5", "Ok (held until a "
		    "certificate to encrypt to arrives, rule %lld)",
		    (long long)r->id);
		break;
	case POLICY_NOCERT_REJECT:
	default:
		d->verdict = PL_REJECT;
		smtp_result_set(&d->reply, 550, "5.7.1", "<%s>: no usable "
		    "certificate to encrypt to (%s%srule %lld)", rcpt, d->why,
		    d->why[0] != '\0' ? "; " : "", (long long)r->id);
		break;
	}
}

/* A transform under way: the message as the last step left it. */
struct pl_run {
	const struct certsrc	*src;
	const struct pl_copy	*c;
	char			*cur;		/* the message now */
	char			*owned;		/* cur when a step made it */
	size_t			 curlen;
	unsigned		 todo;		/* POLICY_* still to do */
	int			 changed;	/* cur is not the input */
	int			 transformed;	/* by a step (not a strip) */
	int			 keyd_down;	/* decrypt failed: key process gone */
	unsigned		 marked;	/* done, as our mark proves */
	struct smime_msg_res	*res;
};

/* Keep step's message as the current one. */
static void
adopt(struct pl_run *p, struct smime_msg_res *step)
{
	free(p->owned);
	p->owned = p->cur = step->msg;
	p->curlen = step->len;
	step->msg = NULL;
	p->changed = 1;
	p->transformed = 1;
}

/* Report what a signature check found. */
static void
take_verdict(struct smime_msg_res *res, struct smime_msg_res *step)
{
	res->outcome = step->outcome;
	memcpy(res->reason, step->reason, sizeof(res->reason));
	memcpy(res->identity, step->identity, sizeof(res->identity));
	res->harvested = step->harvested;
	cms_links_free(res->undecided, &res->nundecided);
	memcpy(res->undecided, step->undecided, sizeof(res->undecided));
	res->nundecided = step->nundecided;
	step->nundecided = 0;   /* moved */
}

/* Decrypt (and verify what was signed inside); 1 when a signature was
 * checked, so the verify step has nothing left to do. */
static int
run_decrypt(struct pl_run *p)
{
	struct smime_msg_res step;
	int r, verified = 0;

	r = smime_msg_decrypt(p->src, p->cur, p->curlen, p->c->host, &step);
	metrics_inc(r == 0 ? M_DECRYPT_OK : M_DECRYPT_FAIL);
	if (r == 0) {
		adopt(p, &step);
		verified = step.verified;
		if (verified) metrics_verify(step.outcome);
		take_verdict(p->res, &step);
	} else if (r == -1 && !keys_usable(certcache_keys(p->src->cc))) {
		p->keyd_down = 1;
		snprintf(p->res->err, sizeof(p->res->err), "cannot decrypt "
		    "(%.400s): the key process is unavailable", step.err);
	} else if (r == -1)
		snprintf(p->res->err, sizeof(p->res->err), "cannot decrypt "
		    "(%.400s): relayed encrypted", step.err);
	smime_msg_res_free(&step);
	return verified;
}

/* Verify a signature and put Authentication-Results on top. */
static void
run_verify(struct pl_run *p)
{
	struct smime_msg_res step;

	if (smime_msg_verify(p->src, p->cur, p->curlen, p->c->host,
	    &step) == 0 && step.msg != NULL) {
		metrics_verify(step.outcome);
		adopt(p, &step);
		take_verdict(p->res, &step);
		p->res->verified = step.verified;
	}
	smime_msg_res_free(&step);
}

/* S/MIME the structure proves (never a Content-Type claim alone) is not
 * wrapped again: drop sign and encrypt. */
static void
skip_wrapped(struct pl_run *p)
{
	enum smime_done done = smime_msg_done(p->cur, p->curlen);

	if (done == SMIME_DONE_ENCRYPTED) {
		p->todo &= ~(POLICY_SIGN | POLICY_ENCRYPT);
		snprintf(p->res->err, sizeof(p->res->err), "already "
		    "encrypted: not signed or encrypted again");
	} else if (done == SMIME_DONE_SIGNED) {
		p->todo &= ~POLICY_SIGN;
		snprintf(p->res->err, sizeof(p->res->err), "already "
		    "signed: not signed again");
	}
}

/*
 * Our earlier pass: a mark of ours that verifies takes what it did off
 * the list.  Marks of ours that do not verify are dropped from what we
 * send, and so is every mark of ours when a new one replaces them.
 */
static void
read_marks(struct pl_run *p)
{
	struct keys *ks = certcache_keys(p->src->cc);
	const char *host = p->c->host;
	unsigned done;
	size_t n;
	char *m;
	int forged;

	done = mark_read(ks, host, p->cur, p->curlen, &forged);
	p->marked = done;
	p->todo &= ~done;
	if (forged > 0)
		snprintf(p->res->err, sizeof(p->res->err), "%d %s field(s) "
		    "of ours that do not verify removed", forged, MARK_FIELD);
	else if (done != 0 && p->todo == 0)
		snprintf(p->res->err, sizeof(p->res->err), "already "
		    "processed by %s: relayed unchanged", host);
	if (forged == 0 && (done == 0 || p->todo == 0))
		return;
	if ((m = mark_strip(ks, host, p->cur, p->curlen, p->todo != 0,
	    &n)) != NULL) {
		free(p->owned);
		p->owned = p->cur = m;
		p->curlen = n;
		p->changed = 1;
	}
}

/* The address to sign as: the envelope sender, else the From address,
 * whichever has a key; NULL when neither does. */
static const char *
signer_for(const struct certsrc *src, const struct pl_copy *c,
    const char *msg, size_t len, char *from, size_t fromlen)
{
	struct keys *ks = certcache_keys(src->cc);
	struct store_key *k;

	if (c->sender[0] != '\0' &&
	    (k = keys_signing(ks, c->sender, time(NULL))) != NULL) {
		store_key_free(k);
		return c->sender;
	}
	if (smime_msg_from(msg, len, from, fromlen) == 0 &&
	    (k = keys_signing(ks, from, time(NULL))) != NULL) {
		store_key_free(k);
		return from;
	}
	return NULL;
}

/* The reply when the key process is gone or does not answer. */
static void
keyd_down_reply(struct smtp_result *fail)
{
	smtp_result_set(fail, 451, "4.3.0", "Key process unavailable, try "
	    "again later");
}

/* Sign and/or encrypt as the rule demands; -1 with *fail the reply. */
static int
run_wrap(struct pl_run *p, struct smtp_result *fail)
{
	struct smime_msg_res step;
	const struct pl_copy *c = p->c;
	const char *signer = NULL;
	char from[320];
	int r;

	if ((p->todo & POLICY_SIGN) && (signer = signer_for(p->src, c,
	    p->cur, p->curlen, from, sizeof(from))) == NULL) {
		metrics_inc(M_SIGN_FAIL);
		smtp_result_set(fail, 451, "4.7.0", "Cannot sign: no signing "
		    "key for the sender, try again later");
		smime_msg_from(p->cur, p->curlen, from, sizeof(from));
		snprintf(p->res->err, sizeof(p->res->err), "rule %lld demands "
		    "sign: no signing key for <%s> or From <%s>",
		    (long long)c->rule_id, c->sender, from);
		return -1;
	}
	if ((p->todo & POLICY_SIGN) && (p->todo & POLICY_ENCRYPT))
		r = smime_msg_sign_encrypt(p->src, p->cur, p->curlen, signer,
		    c->rcpts, c->nrcpts, NULL, &step);
	else if (p->todo & POLICY_SIGN)
		r = smime_msg_sign(p->src, p->cur, p->curlen, signer, NULL,
		    &step);
	else
		r = smime_msg_encrypt(p->src, p->cur, p->curlen, c->sender,
		    c->rcpts, c->nrcpts, NULL, &step);
	if (p->todo & POLICY_SIGN) metrics_inc(M_SIGN_OK + (r != 0));
	if (p->todo & POLICY_ENCRYPT) metrics_inc(M_ENCRYPT_OK + (r != 0));
	if (r == -1 && !keys_usable(certcache_keys(p->src->cc)))
		keyd_down_reply(fail);
	else if (r == -1)
		smtp_result_set(fail, 451, "4.7.0", "Cannot %s the message "
		    "as policy demands, try again later",
		    (p->todo & POLICY_ENCRYPT) ? "encrypt" : "sign");
	if (r == -1) {
		snprintf(p->res->err, sizeof(p->res->err), "rule %lld: %.400s",
		    (long long)c->rule_id, step.err);
		smime_msg_res_free(&step);
		return -1;
	}
	p->res->gcm = step.gcm;
	adopt(p, &step);
	return 0;
}

/* The mark for what we made; without a secret the copy goes unmarked. */
static void
put_mark(struct pl_run *p, unsigned done, char *trace, size_t tracelen)
{
	if (mark_make(certcache_keys(p->src->cc), p->c->host,
	    p->c->actions | done, p->cur, p->curlen, trace, tracelen) == 0)
		return;
	if (tracelen > 0)
		trace[0] = '\0';
	snprintf(p->res->err, sizeof(p->res->err), "no %s mark added (no "
	    "secret): a loop back to us would be processed again",
	    MARK_FIELD);
}

/* Open what the rule opens, then wrap what it wraps; the trace field
 * (our mark) names what the rule asked for. */
int
pipeline_transform(const struct certsrc *src, const struct pl_copy *c,
    const char *msg, size_t len, struct smime_msg_res *res,
    struct smtp_result *fail, char *trace, size_t tracelen)
{
	struct pl_run p;
	int did_verify = 0;

	memset(res, 0, sizeof(*res));
	if (tracelen > 0)
		trace[0] = '\0';
	if (c->actions == 0)
		return 0;
	memset(&p, 0, sizeof(p));
	p.src = src;
	p.c = c;
	p.cur = (char *)msg;
	p.curlen = len;
	p.todo = c->actions;
	p.res = res;
	read_marks(&p);
	if (p.todo & POLICY_DECRYPT)
		did_verify = run_decrypt(&p);
	if (p.keyd_down) {
		keyd_down_reply(fail);
		free(p.owned);
		return -1;
	}
	if ((p.todo & POLICY_VERIFY) && !did_verify)
		run_verify(&p);
	if (p.todo & (POLICY_SIGN | POLICY_ENCRYPT))
		skip_wrapped(&p);
	if ((p.todo & (POLICY_SIGN | POLICY_ENCRYPT)) &&
	    run_wrap(&p, fail) == -1) {
		free(p.owned);
		return -1;
	}
	if (!p.changed) {
		free(p.owned);
		return 0;
	}
	if (p.transformed)
		put_mark(&p, p.marked, trace, tracelen);
	res->msg = p.owned;     /* the last step's output, not copied */
	res->len = p.curlen;
	return 0;
}
