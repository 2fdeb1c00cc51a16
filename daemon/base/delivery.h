/* delivery.h: what an inbound session hands a message to (the relay client,
 * or the sink's Maildir writer), and the reply it gets back. */
#ifndef SMRELAY_DELIVERY_H
#define SMRELAY_DELIVERY_H

#include <stdint.h>

struct msgbuf;

/* An SMTP-shaped outcome, mirrored to the client. */
struct smtp_result {
	int code;               /* 250, 451, 550, ... */
	char enh[16];           /* "2.0.0"; always set */
	char text[256];         /* one line, no CRLF */
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
};

#endif
