/* dsn.h: delivery status notifications (RFC 3464, 3461, 6522), pure code. */
#ifndef SMRELAY_DSN_H
#define SMRELAY_DSN_H

#include <stddef.h>
#include <stdint.h>

/* The Action field of one recipient (RFC 3464 2.3.3). */
enum dsn_action {
	DSN_FAILED,             /* "failed": given up (5xx, or queue_lifetime) */
	DSN_DELAYED,            /* "delayed": still being retried */
	DSN_DELIVERED,          /* "delivered" */
	DSN_RELAYED,            /* "relayed" to a hop that will not send DSNs */
	DSN_EXPANDED            /* "expanded" (alias or list) */
};

/* One recipient the DSN reports on. */
struct dsn_rcpt {
	const char *rcpt;       /* final recipient: the envelope RCPT TO address
	                         * (without <>); required */
	const char *orcpt;      /* ORCPT parameter as received, "addr-type;xtext"
	                         * ("rfc822;bob+40x"), or NULL: no
	                         * Original-Recipient field */
	enum dsn_action action;
	const char *status;     /* RFC 3463 code "5.1.1", "4.4.7"; required,
	                         * class fitting the action: failed 5 or 4
	                         * (4.4.7 at queue_lifetime), delayed 4, the
	                         * others 2 */
	const char *diag;       /* the next hop's last reply ("550 5.1.1 no such
	                         * user", lines of a multi-line reply joined by
	                         * "\n" or CRLF), or NULL: no Diagnostic-Code */
	const char *remote_mta; /* host name of the next hop, or NULL */
	int64_t last_attempt;   /* unix seconds of the last attempt, 0: none */
	int64_t retry_until;    /* DSN_DELAYED: unix seconds when we give up,
	                         * 0: no Will-Retry-Until field */
};

/* The message the DSN is about, and the DSN's own envelope. */
struct dsn_msg {
	const char *reporting_mta; /* our host name: Reporting-MTA, From:
	                            * MAILER-DAEMON@it; required */
	const char *sender;     /* envelope sender of the original = To: of the
	                         * DSN and its RCPT TO; "" or NULL is refused */
	const char *envid;      /* ENVID parameter as received (xtext), or NULL */
	int ret_full;           /* 1: RET=FULL, return the whole message as
	                         * message/rfc822; 0: RET=HDRS or no RET, return
	                         * its header section as text/rfc822-headers */
	int64_t arrival;        /* unix seconds we accepted it (Arrival-Date),
	                         * 0: no Arrival-Date field */
	int64_t now;            /* unix seconds: Date: of the DSN */
	const char *msgid_domain; /* right side of the DSN's Message-ID, NULL:
	                           * reporting_mta */
	const char *orig;       /* the original message as accepted (header
	                         * section and body), any line ends; NULL or
	                         * origlen 0: no third part */
	size_t origlen;
	const char *from_mta;   /* host that gave it to us (Received-From-MTA),
	                         * or NULL */
};

/* dsn.c */
/*
 * Build the whole DSN: RFC 5322 header fields and a multipart/report body,
 * CRLF line ends, not dot-stuffed; to be sent with MAIL FROM:<> to
 * msg->sender.  Returns 0 with a malloc'ed *out (NUL-terminated, *outlen
 * bytes), or -1 with a reason in err: empty sender, no recipients, a
 * missing or malformed required field, CR/LF or control bytes in an address
 * or host name.  The Subject follows the most severe action: failed, then
 * delayed, then success.
 */
int     dsn_build(const struct dsn_msg *, const struct dsn_rcpt *, size_t n,
	    char **out, size_t *outlen, char *err, size_t errlen);
/*
 * 1 if the DSN holds 8-bit bytes (an 8bit original returned, or an SMTPUTF8
 * address): send it with BODY=8BITMIME (and SMTPUTF8 for 8-bit addresses
 * in the header), else 0.
 */
int     dsn_is_8bit(const char *, size_t);
/*
 * RFC 3461 4.1: 1 if a DSN with this action may be sent for a recipient
 * whose RCPT had this NOTIFY value, 0 if not.  NULL or "": FAILURE,DELAY
 * (the usual default); a malformed value is treated as absent.  failed
 * needs FAILURE, delayed needs DELAY, delivered/relayed/expanded need
 * SUCCESS; NEVER allows none.
 */
int     dsn_notify_allows(const char *notify, enum dsn_action);
/*
 * Decode xtext (RFC 3461 4) into buf, NUL-terminated.  Returns the decoded
 * length, or -1 if in is malformed (a byte outside "!".."~", "=", "+" not
 * followed by two hex digits, "+00") or buf is too small.
 */
int     dsn_xtext_decode(const char *in, char *buf, size_t buflen);
/* Lower-case name of an action as in the Action field ("failed"). */
const char *dsn_action_name(enum dsn_action);

#endif
