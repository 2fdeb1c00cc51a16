/* pipeline.c: per-recipient policy decisions and per-copy transforms (see
 * pipeline.h). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509.h>

#include "keyring.h"
#include "mime.h"
#include "pipeline.h"
#include "policy.h"
#include "smime_msg.h"
#include "store.h"
#include "util.h"

void
pipeline_decide(const struct certsrc *src, const struct policy_set *ps,
    const char *sender, const char *rcpt, struct pl_decision *d)
{
	const struct policy_rule *r;
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
	if ((x = keyring_cert_for(src, rcpt, &caps)) != NULL) {
		X509_free(x);
		return;
	}
	switch (r->nocert) {
	case POLICY_NOCERT_PLAIN:
		d->actions &= ~POLICY_ENCRYPT;
		d->plain = 1;
		break;
	case POLICY_NOCERT_HOLD:
		/* Until the spool can hold it: refuse for now, truthfully. */
		d->verdict = PL_HOLD;
		smtp_result_set(&d->reply, 450, "4.7.1", "<%s>: no usable "
		    "certificate to encrypt to yet, try again later (rule "
		    "%lld)", rcpt, (long long)r->id);
		break;
	case POLICY_NOCERT_REJECT:
	default:
		d->verdict = PL_REJECT;
		smtp_result_set(&d->reply, 550, "5.7.1", "<%s>: no usable "
		    "certificate to encrypt to (rule %lld)", rcpt,
		    (long long)r->id);
		break;
	}
}

/* End of the header section: offset of the empty line's successor. */
static size_t
header_end(const char *m, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (m[i] != '\n')
			continue;
		if (i + 1 < len && m[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && m[i + 1] == '\r' && m[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

/* Our trace field with our host name among the header fields. */
static int
traced(const char *m, size_t len, const char *host)
{
	size_t hend = header_end(m, len), nlen = strlen(PIPELINE_TRACE);
	size_t hl = strlen(host), i = 0;
	const char *v;

	while (i < hend) {
		if (hend - i > nlen + 1 &&
		    strncasecmp(m + i, PIPELINE_TRACE, nlen) == 0 &&
		    m[i + nlen] == ':') {
			v = m + i + nlen + 1;
			while (v < m + hend && (*v == ' ' || *v == '\t'))
				v++;
			if ((size_t)(m + hend - v) > hl &&
			    strncasecmp(v, host, hl) == 0 &&
			    (v[hl] == ';' || v[hl] == '\r' || v[hl] == '\n'))
				return 1;
		}
		while (i < hend && m[i] != '\n')
			i++;
		i++;
	}
	return 0;
}

enum smime_kind { KIND_NONE, KIND_SIGNED, KIND_ENCRYPTED };

/*
 * What the top-level Content-Type says (cheap: the body is not parsed):
 * multipart/signed or pkcs7-mime signed-data is signed; any other
 * pkcs7-mime (enveloped, authEnveloped, or no smime-type, which old
 * clients send for enveloped data) counts as encrypted.
 */
static enum smime_kind
smime_kind(const char *m, size_t len)
{
	size_t hend = header_end(m, len), i = 0, e, vlen = 0;
	struct mime_ct ct;
	const char *st;
	char v[2048];

	while (i < hend) {
		for (e = i; e < hend && m[e] != '\n'; e++)
			;
		if (e - i > 13 && strncasecmp(m + i, "Content-Type:", 13) == 0) {
			/* the value with its continuation lines */
			i += 13;
			for (;;) {
				while (i < e && vlen < sizeof(v) - 1)
					if (m[i] != '\r')
						v[vlen++] = m[i++];
					else
						i++;
				if (e + 1 >= hend || (m[e + 1] != ' ' &&
				    m[e + 1] != '\t'))
					break;
				i = e + 1;
				for (e = i; e < hend && m[e] != '\n'; e++)
					;
			}
			if (mime_ct_parse(v, vlen, &ct) != 0)
				return KIND_NONE;
			if (strcasecmp(ct.type, "multipart") == 0 &&
			    strcasecmp(ct.subtype, "signed") == 0)
				return KIND_SIGNED;
			if (strcasecmp(ct.type, "application") != 0 ||
			    (strcasecmp(ct.subtype, "pkcs7-mime") != 0 &&
			    strcasecmp(ct.subtype, "x-pkcs7-mime") != 0))
				return KIND_NONE;
			st = mime_ct_param(&ct, "smime-type");
			return st != NULL && strcasecmp(st, "signed-data") == 0 ?
			    KIND_SIGNED : KIND_ENCRYPTED;
		}
		i = e + 1;
	}
	return KIND_NONE;
}

/* Keep step's message as the current one. */
static void
adopt(char **cur, size_t *curlen, char **owned, struct smime_msg_res *step)
{
	free(*owned);
	*owned = *cur = step->msg;
	*curlen = step->len;
	step->msg = NULL;
}

/* The address to sign as: the envelope sender, else the From address,
 * whichever has a key; NULL when neither does. */
static const char *
signer_for(const struct certsrc *src, const struct pl_copy *c,
    const char *msg, size_t len, char *from, size_t fromlen)
{
	struct store_key *k;

	if (c->sender[0] != '\0' &&
	    (k = keyring_key_for(src, c->sender, time(NULL))) != NULL) {
		store_key_free(k);
		return c->sender;
	}
	if (smime_msg_from(msg, len, from, fromlen) == 0 &&
	    (k = keyring_key_for(src, from, time(NULL))) != NULL) {
		store_key_free(k);
		return from;
	}
	return NULL;
}

int
pipeline_transform(const struct certsrc *src, const struct pl_copy *c,
    const char *msg, size_t len, struct smime_msg_res *res,
    struct smtp_result *fail, char *trace, size_t tracelen)
{
	struct smime_msg_res step;
	enum smime_kind kind;
	char *cur = (char *)msg, *owned = NULL, from[320], acts[64];
	const char *signer = NULL;
	size_t curlen = len;
	unsigned todo = c->actions;
	int r, did_verify = 0, changed = 0;

	memset(res, 0, sizeof(*res));
	if (tracelen > 0)
		trace[0] = '\0';
	if (todo == 0)
		return 0;
	if (traced(msg, len, c->host)) {
		snprintf(res->err, sizeof(res->err), "already processed by "
		    "%s: relayed unchanged", c->host);
		return 0;
	}
	if (todo & POLICY_DECRYPT) {
		r = smime_msg_decrypt(src, cur, curlen, c->host, &step);
		if (r == 0) {
			adopt(&cur, &curlen, &owned, &step);
			did_verify = step.verified;
			res->outcome = step.outcome;
			memcpy(res->reason, step.reason, sizeof(res->reason));
			memcpy(res->identity, step.identity,
			    sizeof(res->identity));
			res->harvested = step.harvested;
			changed = 1;
		} else if (r == -1)
			snprintf(res->err, sizeof(res->err), "cannot decrypt "
			    "(%.400s): relayed encrypted", step.err);
		smime_msg_res_free(&step);
	}
	if ((todo & POLICY_VERIFY) && !did_verify) {
		if (smime_msg_verify(src, cur, curlen, c->host, &step) == 0 &&
		    step.msg != NULL) {
			adopt(&cur, &curlen, &owned, &step);
			res->outcome = step.outcome;
			memcpy(res->reason, step.reason, sizeof(res->reason));
			memcpy(res->identity, step.identity,
			    sizeof(res->identity));
			res->harvested = step.harvested;
			res->verified = step.verified;
			changed = 1;
		}
		smime_msg_res_free(&step);
	}
	if (todo & (POLICY_SIGN | POLICY_ENCRYPT)) {
		/* Someone else's S/MIME is not wrapped again. */
		kind = smime_kind(cur, curlen);
		if (kind == KIND_ENCRYPTED) {
			todo &= ~(POLICY_SIGN | POLICY_ENCRYPT);
			snprintf(res->err, sizeof(res->err), "already "
			    "encrypted: not signed or encrypted again");
		} else if (kind == KIND_SIGNED) {
			todo &= ~POLICY_SIGN;
			snprintf(res->err, sizeof(res->err), "already "
			    "signed: not signed again");
		}
	}
	if ((todo & POLICY_SIGN) && (signer = signer_for(src, c, cur,
	    curlen, from, sizeof(from))) == NULL) {
		smtp_result_set(fail, 451, "4.7.0", "Cannot sign: no signing key "
		    "for the sender, try again later");
		smime_msg_from(cur, curlen, from, sizeof(from));
		snprintf(res->err, sizeof(res->err), "rule %lld demands sign: "
		    "no signing key for <%s> or From <%s>",
		    (long long)c->rule_id, c->sender, from);
		free(owned);
		return -1;
	}
	if (todo & (POLICY_SIGN | POLICY_ENCRYPT)) {
		if ((todo & POLICY_SIGN) && (todo & POLICY_ENCRYPT))
			r = smime_msg_sign_encrypt(src, cur, curlen, signer,
			    c->rcpts, c->nrcpts, NULL, &step);
		else if (todo & POLICY_SIGN)
			r = smime_msg_sign(src, cur, curlen, signer, NULL,
			    &step);
		else
			r = smime_msg_encrypt(src, cur, curlen, c->sender,
			    c->rcpts, c->nrcpts, NULL, &step);
		if (r == -1) {
			smtp_result_set(fail, 451, "4.7.0", "Cannot %s the message "
			    "as policy demands, try again later",
			    (todo & POLICY_ENCRYPT) ? "encrypt" : "sign");
			snprintf(res->err, sizeof(res->err), "rule %lld: %.400s",
			    (long long)c->rule_id, step.err);
			smime_msg_res_free(&step);
			free(owned);
			return -1;
		}
		res->gcm = step.gcm;
		adopt(&cur, &curlen, &owned, &step);
		changed = 1;
	}
	if (!changed) {
		free(owned);
		return 0;
	}
	policy_actions_str(c->actions, acts, sizeof(acts));
	snprintf(trace, tracelen, "%s: %s; %s\r\n", PIPELINE_TRACE, c->host,
	    acts);
	res->msg = owned;       /* the last step's output, not copied */
	res->len = curlen;
	return 0;
}
