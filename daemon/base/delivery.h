/* delivery.h: what an inbound session hands a message to (the relay client,
 * or the sink's Maildir writer), and the reply it gets back. */
#ifndef SMRELAY_DELIVERY_H
#define SMRELAY_DELIVERY_H

#include <stdint.h>

struct msgbuf;
struct xforward;

/* An SMTP-shaped outcome, mirrored to the client. */
struct smtp_result {
	int code;               /* 250, 451, 550, ... */
	char enh[16];           /* "2.0.0"; always set */
	char text[256];         /* one line, no CRLF */
	/* for the delivery log, set by the relay client on what it
	 * answers ("" when not known) */
	char relay[300];        /* "host[addr]:port" */
	char tls[96];           /* "TLSv1.3:CIPHER[:resumed]", "none" */
};

/* One delivery attempt for one recipient, as its log line says it. */
struct delivery_attempt {
	const char *qid;        /* the message's queue ID */
	const char *rcpt;
	const char *msgid;      /* its Message-ID, "" if none */
	double delay;           /* seconds since it came in */
	const double *delays;   /* receive/S/MIME/relay seconds, or NULL */
	const char *relay;      /* "" or NULL: none */
	const char *tls;
	const char *smime;      /* "signed+encrypted", "none", ... */
	const char *reply;      /* "451 4.4.1 text" */
	const char *status;     /* NULL: sent, deferred or bounced by the
				 * reply's code */
};

typedef void delivery_cb(void *arg, const struct smtp_result *);

/* A data() result code that closes the connection without any reply (the
 * sink's `--fail drop:`, to test a client losing the line after DATA). */
#define DELIVERY_DROP	(-1)

/* Room for a destination key (delivery_ops.route). */
#define DELIVERY_KEY_MAX	320

/* delivery.c */
/* Fill a result of our own making; the text is printf-formatted. */
void smtp_result_set(struct smtp_result *, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Log one line for one recipient's delivery attempt (docs/OPERATIONS.md,
 * "Logs"). */
void delivery_log_attempt(const struct delivery_attempt *);
/* The Message-ID of a message (its first 32 KB), "" if none, into buf. */
void delivery_message_id(struct msgbuf *, char *buf, size_t len);
/* The S/MIME actions done (POLICY_* bits) as "signed+encrypted", or
 * "none"; `verdict` (or NULL) follows "verified:". */
void delivery_smime_str(unsigned actions, const char *verdict, char *buf,
    size_t len);

/*
 * A delivery backend.  Callbacks are never invoked from inside one of these
 * calls (always later, from the event loop), exactly once per rcpt()/data()
 * call, and never after abort().  A callback may call back into the backend
 * (next rcpt(), data(), abort()).  After the data() callback the transaction
 * is over and `txn` is invalid.
 */
struct delivery_ops {
	/* Start a transaction for MAIL FROM (path "" = null sender);
	 * `params` are the ESMTP parameters to pass on, e.g.
	 * "BODY=8BITMIME RET=HDRS ENVID=x SMTPUTF8" ("" if none; the backend
	 * drops what the next hop does not offer). */
	void *(*begin)(void *ctx, const char *from, const char *params,
	    uint64_t sessid);
	void (*rcpt)(void *txn, const char *rcpt, const char *params,
	    delivery_cb *, void *arg);
	/* Send the message (with our Received header already in it). */
	void (*data)(void *txn, struct msgbuf *, delivery_cb *, void *arg);
	void (*abort)(void *txn);
	/* Optional (NULL: every recipient has the same destination): the
	 * destination of a recipient as a key ("" for the one next hop);
	 * recipients whose keys differ go in separate transactions, and a
	 * destination that is down is tracked by its key. */
	void (*route)(void *ctx, const char *rcpt, char *key, size_t keylen);
	/* Optional (NULL: not told): who the upstream client is, called
	 * after begin() and before the first rcpt(); the backend keeps a
	 * copy and passes it on (XFORWARD) where the next hop offers it. */
	void (*client)(void *txn, const struct xforward *);
};

#endif
