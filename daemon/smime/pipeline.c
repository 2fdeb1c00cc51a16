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
#include "smime_stream.h"
#include "store/store.h"
#include "lib/lib.h"

/* Whether the recipient's rule encrypts (and does not refuse). */
int
pipeline_wants_cert(const struct policy_set *ps, const char *sender,
    const char *rcpt)
{
	const struct policy_rule *r;

	return ps != NULL && (r = policy_match(ps, sender, rcpt)) != NULL &&
	    !(r->actions & POLICY_REJECT) && (r->actions & POLICY_ENCRYPT);
}

/*
 * Whether a relay after us may route rcpt on to a mailbox another rule
 * covers (policy_addr_alts(): "bob%partner.example@example.com"): then
 * neither rule can be trusted to apply and the recipient is refused (d).
 */
static int
routed_otherwise(const struct policy_set *ps, const char *sender,
    const char *rcpt, const struct policy_rule *r, struct pl_decision *d)
{
	char alt[POLICY_ADDR_MAX];
	const struct policy_rule *r2;

	if (!policy_routed_otherwise(ps, sender, rcpt, r, alt, &r2))
		return 0;
	d->verdict = PL_REJECT;
	d->rule_id = r2 != NULL ? r2->id : r->id;
	smtp_result_set(&d->reply, 550, "5.7.1", "<%s>: may be routed on to "
	    "<%s>, which policy treats otherwise (rule %lld, not %lld): use "
	    "that address", rcpt, alt, (long long)(r2 != NULL ? r2->id : 0),
	    (long long)(r != NULL ? r->id : 0));
	return 1;
}

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
	if (ps == NULL)
		return;
	r = policy_match(ps, sender, rcpt);
	if (routed_otherwise(ps, sender, rcpt, r, d))
		return;
	if (r == NULL)
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

/* A wrap under way: the message (`in`, parsed into `tree`; cur its
 * header block, curlen where its body starts), what is left to do, and
 * the result in `out`. */
struct pl_run {
	const struct certsrc	*src;
	const struct pl_copy	*c;
	char			*cur;
	size_t			 curlen;
	unsigned		 todo;		/* POLICY_* still to do */
	struct smime_msg_res	*res;
	struct msgbuf		*in, *out;
	const struct mime_tree	*tree;
	const char		*tmpdir;
};

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

/* S/MIME the structure proves (never a Content-Type claim alone) is not
 * wrapped again: todo without sign (signed), or without sign and encrypt
 * (encrypted), and why in res->err. */
static unsigned
skip_done(enum smime_done done, unsigned todo, struct smime_msg_res *res)
{
	if (done == SMIME_DONE_ENCRYPTED) {
		todo &= ~(POLICY_SIGN | POLICY_ENCRYPT);
		snprintf(res->err, sizeof(res->err), "already encrypted: not "
		    "signed or encrypted again");
	} else if (done == SMIME_DONE_SIGNED) {
		todo &= ~POLICY_SIGN;
		snprintf(res->err, sizeof(res->err), "already signed: not "
		    "signed again");
	}
	return todo;
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
	r = smime_stream_wrap(p->src, p->in, p->tree, p->tmpdir,
	    signer != NULL ? signer : c->sender, c->rcpts, c->nrcpts, NULL,
	    (p->todo & POLICY_SIGN) != 0, (p->todo & POLICY_ENCRYPT) != 0,
	    &p->out, &step);
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
	smime_msg_res_free(&step);
	return 0;
}

/* The mark for what we made (p->out); without a secret the copy goes
 * unmarked. */
static void
put_mark(struct pl_run *p, unsigned done, char *trace, size_t tracelen)
{
	struct keys *ks = certcache_keys(p->src->cc);
	size_t hlen, body;
	char *hdr;
	int r = -1;

	if ((hdr = smime_stream_header(p->out, SMIME_STREAM_HDR_MAX, &hlen,
	    &body)) != NULL)
		r = mark_make_read(ks, p->c->host, p->c->actions | done, hdr,
		    body, smime_stream_read, p->out, body, trace, tracelen);
	free(hdr);
	if (r == 0)
		return;
	if (tracelen > 0)
		trace[0] = '\0';
	snprintf(p->res->err, sizeof(p->res->err), "no %s mark added (no "
	    "secret): a loop back to us would be processed again",
	    MARK_FIELD);
}

/* Whether the root's type claims S/MIME: what its structure proves is
 * then checked (smime_stream_done). */
static int
claims_smime(const struct mime_tree *t)
{
	const struct mime_ct *ct = &t->root->ct;

	return (strcmp(ct->type, "multipart") == 0 &&
	    strcmp(ct->subtype, "signed") == 0) ||
	    (strcmp(ct->type, "application") == 0 &&
	    (strcmp(ct->subtype, "pkcs7-mime") == 0 ||
	    strcmp(ct->subtype, "x-pkcs7-mime") == 0));
}

/* Decrypt the message of a decrypted copy's, then verify what it holds. */
static int
stream_decrypt(const struct certsrc *src, const struct pl_copy *c,
    struct msgbuf *in, const struct mime_tree *t, const char *hdr,
    size_t hlen, const char *tmpdir, struct msgbuf **cur,
    struct smime_msg_res *res, struct smtp_result *fail, int *verified)
{
	struct smime_msg_res step, vstep;
	struct mime_tree dt;
	struct msgbuf *dec = NULL, *ver = NULL;
	char *dh;
	size_t dhlen, dbody;
	int r;

	*verified = 0;
	memset(&vstep, 0, sizeof(vstep));
	r = smime_stream_decrypt(src, in, t, hdr, hlen, c->host, tmpdir, &dec,
	    &step);
	if (r != 1)
		metrics_inc(r == 0 ? M_DECRYPT_OK : M_DECRYPT_FAIL);
	if (r == -1 && !keys_usable(certcache_keys(src->cc))) {
		keyd_down_reply(fail);
		snprintf(res->err, sizeof(res->err), "cannot decrypt "
		    "(%.400s): the key process is unavailable", step.err);
		smime_msg_res_free(&step);
		return -1;
	}
	if (r == -1)
		snprintf(res->err, sizeof(res->err), "cannot decrypt "
		    "(%.400s): relayed encrypted", step.err);
	smime_msg_res_free(&step);
	if (r != 0)
		return 0;
	*cur = dec;
	/* what was signed inside is verified */
	if ((dh = smime_stream_header(dec, SMIME_STREAM_HDR_MAX, &dhlen,
	    &dbody)) == NULL)
		return 0;
	if (smime_stream_parse(dec, &dt) == 0) {
		if (smime_stream_verify_signed(src, dec, &dt, dh, dhlen,
		    c->host, tmpdir, &ver, &vstep) == 0 && ver != NULL) {
			msgbuf_free(dec);
			*cur = ver;
			*verified = vstep.verified;
			if (vstep.verified)
				metrics_verify(vstep.outcome);
			take_verdict(res, &vstep);
		}
		smime_msg_res_free(&vstep);
		mime_tree_free(&dt);
	}
	free(dh);
	return 0;
}

/* A write to the spill directory failed. */
static int
no_storage(struct smime_msg_res *res, struct smtp_result *fail)
{
	smtp_result_set(fail, 452, "4.3.1", "Insufficient system storage");
	snprintf(res->err, sizeof(res->err), "writing the transformed message "
	    "failed");
	return -1;
}

/* Decrypt and/or verify in pieces: the open half of a rule; *curp the
 * opened message (NULL: unchanged).  -1 with *fail the reply. */
static int
stream_open(const struct certsrc *src, const struct pl_copy *c,
    unsigned todo, struct msgbuf *in, const struct mime_tree *t,
    const char *hdr, size_t hlen, const char *tmpdir,
    struct msgbuf **curp, struct smime_msg_res *res,
    struct smtp_result *fail)
{
	struct smime_msg_res step;
	struct msgbuf *cur = NULL, *ver = NULL;
	char *mh = NULL;
	size_t mhlen, mbody;
	int verified = 0;

	*curp = NULL;
	if ((todo & POLICY_DECRYPT) && stream_decrypt(src, c, in, t, hdr,
	    hlen, tmpdir, &cur, res, fail, &verified) == -1)
		return -1;
	if ((todo & POLICY_VERIFY) && !verified && cur == NULL) {
		if (smime_stream_verify(src, in, t, hdr, hlen, c->host, tmpdir,
		    &ver, &step) == 0 && ver != NULL) {
			cur = ver;
			metrics_verify(step.outcome);
			take_verdict(res, &step);
			res->verified = step.verified;
		}
		smime_msg_res_free(&step);
	} else if ((todo & POLICY_VERIFY) && !verified) {
		struct mime_tree ct;

		if ((mh = smime_stream_header(cur, SMIME_STREAM_HDR_MAX,
		    &mhlen, &mbody)) != NULL && smime_stream_parse(cur,
		    &ct) == 0) {
			if (smime_stream_verify(src, cur, &ct, mh, mhlen,
			    c->host, tmpdir, &ver, &step) == 0 &&
			    ver != NULL) {
				msgbuf_free(cur);
				cur = ver;
				metrics_verify(step.outcome);
				take_verdict(res, &step);
				res->verified = step.verified;
			}
			smime_msg_res_free(&step);
			mime_tree_free(&ct);
		}
		free(mh);
	}
	*curp = cur;
	return 0;
}

/* The transformed message `made` (freed here) under our mark into a new
 * *outp; -1 with *fail the reply when it cannot be written. */
static int
finish(const struct certsrc *src, const struct pl_copy *c, unsigned marked,
    struct msgbuf *made, const char *tmpdir, struct msgbuf **outp,
    struct smime_msg_res *res, struct smtp_result *fail)
{
	struct pl_run p;
	char trace[512];
	int r = 0;

	memset(&p, 0, sizeof(p));
	p.src = src;
	p.c = c;
	p.res = res;
	p.out = made;
	put_mark(&p, marked, trace, sizeof(trace));
	*outp = msgbuf_new(tmpdir, 0);
	if (msgbuf_append(*outp, trace, strlen(trace)) == -1 ||
	    smime_stream_copy(*outp, made) == -1) {
		msgbuf_free(*outp);
		*outp = NULL;
		r = no_storage(res, fail);
	}
	msgbuf_free(made);
	return r;
}

/*
 * Our marks on a message read in pieces (read_marks() of the
 * whole-message path): *marked what a mark of ours proves done; when marks
 * must go, the message without them in *unmarked (a new msgbuf).  0, or
 * -1 when it cannot be written.
 */
static int
stream_marks(const struct certsrc *src, const struct pl_copy *c,
    struct msgbuf *in, const char *hdr, size_t body, const char *tmpdir,
    unsigned *marked, struct msgbuf **unmarked, struct smime_msg_res *res)
{
	unsigned done, todo;
	size_t n;
	char *m;
	int forged;

	*unmarked = NULL;
	m = mark_read_strip(certcache_keys(src->cc), c->host, c->actions, hdr,
	    body, smime_stream_read, in, body, &done, &forged, &n);
	*marked = done;
	todo = c->actions & ~done;
	if (forged > 0)
		snprintf(res->err, sizeof(res->err), "%d %s field(s) of ours "
		    "that do not verify removed", forged, MARK_FIELD);
	else if (done != 0 && todo == 0)
		snprintf(res->err, sizeof(res->err), "already processed by "
		    "%s: relayed unchanged", c->host);
	if (m == NULL)
		return 0;
	*unmarked = msgbuf_new(tmpdir, 0);
	if (msgbuf_append(*unmarked, m, n) == -1 ||
	    smime_stream_copy_from(*unmarked, in, body) == -1) {
		free(m);
		msgbuf_free(*unmarked);
		*unmarked = NULL;
		return -1;
	}
	free(m);
	return 0;
}

/* A message's header block and MIME tree, read in pieces; -1 with *fail
 * the reply when over the bounds. */
static int
stream_read(struct msgbuf *in, char **hdr, size_t *hlen, size_t *body,
    struct mime_tree *t, struct smime_msg_res *res, struct smtp_result *fail)
{
	if ((*hdr = smime_stream_header(in, SMIME_STREAM_HDR_MAX, hlen,
	    body)) == NULL) {
		smtp_result_set(fail, 554, "5.6.0", "Message header over %d "
		    "bytes", SMIME_STREAM_HDR_MAX);
		snprintf(res->err, sizeof(res->err), "header block over %d "
		    "bytes, or unreadable", SMIME_STREAM_HDR_MAX);
		return -1;
	}
	if (smime_stream_parse(in, t) == -1) {
		free(*hdr);
		*hdr = NULL;
		smtp_result_set(fail, 554, "5.6.0", "Message structure over "
		    "the MIME limits (%d levels, %d parts)", MIME_DEPTH_MAX,
		    MIME_PARTS_MAX);
		snprintf(res->err, sizeof(res->err), "message over the MIME "
		    "limits (%d levels, %d parts), or unreadable",
		    MIME_DEPTH_MAX, MIME_PARTS_MAX);
		return -1;
	}
	return 0;
}

/* Sign and/or encrypt in pieces: the wrap half of a rule; *made the
 * result (NULL: nothing to do, what the structure proves done is not done
 * again).  -1 with *fail the reply. */
static int
stream_wrap(const struct certsrc *src, const struct pl_copy *c,
    unsigned todo, struct msgbuf *in, const struct mime_tree *t,
    char *hdr, size_t body, const char *tmpdir, struct msgbuf **made,
    struct smime_msg_res *res, struct smtp_result *fail)
{
	struct pl_run p;

	*made = NULL;
	if (claims_smime(t))
		todo = skip_done(smime_stream_done(in, t, tmpdir), todo, res);
	if (!(todo & (POLICY_SIGN | POLICY_ENCRYPT)))
		return 0;
	memset(&p, 0, sizeof(p));
	p.src = src;
	p.c = c;
	p.cur = hdr;
	p.curlen = body;
	p.todo = todo;
	p.res = res;
	p.in = in;
	p.tree = t;
	p.tmpdir = tmpdir;
	if (run_wrap(&p, fail) == -1)
		return -1;
	*made = p.out;
	return 0;
}

/*
 * A rule's actions in pieces: our marks read (and dropped where they must
 * be), then what it opens (decrypt, verify), then what it wraps (sign,
 * encrypt) on the opened message, one mark on the result.
 */
static int
stream_run(const struct certsrc *src, const struct pl_copy *c,
    struct msgbuf *in, const char *tmpdir, struct msgbuf **outp,
    struct smime_msg_res *res, struct smtp_result *fail)
{
	struct mime_tree t, ot;
	struct msgbuf *unmarked = NULL, *opened = NULL, *made = NULL;
	char *hdr = NULL, *ohdr = NULL;
	size_t hlen, body, ohlen, obody;
	unsigned marked = 0, todo = c->actions;
	int r = -1, parsed = 0, oparsed = 0;

	if ((hdr = smime_stream_header(in, SMIME_STREAM_HDR_MAX, &hlen,
	    &body)) != NULL && strcasestr(hdr, MARK_FIELD) != NULL) {
		if (stream_marks(src, c, in, hdr, body, tmpdir, &marked,
		    &unmarked, res) == -1) {
			free(hdr);
			return no_storage(res, fail);
		}
		todo = c->actions & ~marked;
		if (todo == 0) {	/* done before: as it is, or unmarked */
			free(hdr);
			*outp = unmarked;
			return 0;
		}
		if (unmarked != NULL)	/* on without our marks */
			in = unmarked;
	}
	free(hdr);
	if (stream_read(in, &hdr, &hlen, &body, &t, res, fail) == -1)
		goto done;
	parsed = 1;
	if ((todo & (POLICY_DECRYPT | POLICY_VERIFY)) && stream_open(src, c,
	    todo, in, &t, hdr, hlen, tmpdir, &opened, res, fail) == -1)
		goto done;
	if (todo & (POLICY_SIGN | POLICY_ENCRYPT)) {
		if (opened == NULL)
			r = stream_wrap(src, c, todo, in, &t, hdr, body, tmpdir,
			    &made, res, fail);
		else if (stream_read(opened, &ohdr, &ohlen, &obody, &ot, res,
		    fail) == 0) {
			oparsed = 1;
			r = stream_wrap(src, c, todo, opened, &ot, ohdr, obody,
			    tmpdir, &made, res, fail);
		}
		if (r == -1)
			goto done;
	}
	if (made == NULL) {	/* wrapped nothing: what was opened, if */
		made = opened;
		opened = NULL;
	}
	if (made == NULL) {	/* unchanged: as it is, or unmarked */
		*outp = unmarked;
		unmarked = NULL;
		r = 0;
	} else
		r = finish(src, c, marked, made, tmpdir, outp, res, fail);
 done:
	if (parsed)
		mime_tree_free(&t);
	if (oparsed)
		mime_tree_free(&ot);
	free(hdr);
	free(ohdr);
	msgbuf_free(opened);
	msgbuf_free(unmarked);
	return r;
}

/* The transform of a message in a msgbuf into a new one, mark on top. */
int
pipeline_transform_body(const struct certsrc *src, const struct pl_copy *c,
    struct msgbuf *in, const char *tmpdir, struct msgbuf **out,
    struct smime_msg_res *res, struct smtp_result *fail)
{
	memset(res, 0, sizeof(*res));
	*out = NULL;
	if (c->actions == 0)
		return 0;
	return stream_run(src, c, in, tmpdir, out, res, fail);
}
