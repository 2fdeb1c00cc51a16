/* pipeline.h: the policy decision for each recipient and the S/MIME
 * transform of each copy of a message: what smrelayd does between RCPT and
 * the next hop, and what `smrelayctl apply` shows.  One code path for
 * both. */
#ifndef SMRELAY_PIPELINE_H
#define SMRELAY_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/base/base.h"
#include "smime_msg.h"

struct certsrc;
struct policy_set;

enum pl_verdict {
	PL_RELAY = 0,	/* relay a copy (transformed per `actions`) */
	PL_REJECT,	/* refuse the recipient: 550 5.7.1 */
	PL_HOLD		/* accept; spool the copy until a certificate
			 * comes, then transform and relay it */
};

/* What happens to one recipient. */
struct pl_decision {
	enum pl_verdict	 verdict;
	unsigned	 actions;	/* POLICY_SIGN|ENCRYPT|DECRYPT|VERIFY
					 * to do on its copy; 0: unchanged */
	int64_t		 rule_id;	/* 0: no rule matched */
	int		 nocert;	/* encrypt wanted, no usable
					 * certificate: --if-no-cert applied */
	int		 plain;		/* encrypt dropped: no certificate,
					 * --if-no-cert plain */
	struct smtp_result reply;	/* PL_REJECT, PL_HOLD: the RCPT reply */
	char		 why[160];	/* encrypt: the certificate there is
					 * was refused (revoked, ...); "" */
};

/* One copy: the recipients that share a treatment. */
struct pl_copy {
	const char	*sender;	/* envelope sender, "" = null sender */
	const char *const *rcpts;
	size_t		 nrcpts;
	unsigned	 actions;
	int64_t		 rule_id;	/* the first recipient's, for logs */
	const char	*host;		/* our hostname */
};

/* pipeline.c */
/* Whether the rule for this recipient encrypts (then its certificate is
 * looked up before pipeline_decide()). */
int pipeline_wants_cert(const struct policy_set *, const char *sender,
    const char *rcpt);
/* Decide for one recipient with the rules and the certificate cache. */
void pipeline_decide(const struct certsrc *, const struct policy_set *,
    const char *sender, const char *rcpt, struct pl_decision *);
/*
 * Transform a message in a msgbuf for a copy, the one step runner of
 * smrelayd and smrelayctl, in bounded pieces whatever the message's size
 * (smime_stream.h): our marks read (and dropped where they must be), then
 * what the rule opens (decrypt, verify), then what it wraps (sign,
 * encrypt) on the opened message.  0: *out is the new message with our
 * mark on top (a new msgbuf spilling into tmpdir), or NULL when it goes
 * unchanged (nothing to do, S/MIME its structure proves, or a mark of ours
 * that verifies says it is done); res->err may still carry a note for the
 * log.  -1: the copy cannot be sent as the rule demands; *fail is the
 * reply (e.g. 451 4.7.0 when a signing key is missing) and res->err the
 * reason for the log.
 */
int pipeline_transform_body(const struct certsrc *, const struct pl_copy *,
    struct msgbuf *in, const char *tmpdir, struct msgbuf **out,
    struct smime_msg_res *res, struct smtp_result *fail);

#endif
