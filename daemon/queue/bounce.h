/* bounce.h: delivery status notifications about spooled copies: which
 * recipients a failure or delay notice reports on (their NOTIFY), with
 * what status, and the notice itself (proto/dsn.c) as a new spool entry
 * from the null sender to the original's sender.  The queue runner
 * spools it. */
#ifndef SMRELAY_BOUNCE_H
#define SMRELAY_BOUNCE_H

#include <stddef.h>

#include "proto/proto.h"
#include "spool.h"

struct config;
struct msgbuf;

/* A DSN ready to be spooled: entry's sender, recipient and parameters
 * point into the original entry and constants, so it lives no longer
 * than the original. */
struct bounce {
	struct spool_entry	 entry;		/* the DSN's envelope */
	struct spool_rcpt	 rcpt;		/* entry's one recipient */
	struct msgbuf		*body;		/* the DSN */
	size_t			 nreported;	/* recipients it reports on */
};

/* bounce.c */
/*
 * The DSN to e's sender about its recipients in `which` state, with
 * `action`: 1 with b filled (bounce_clear() it after spooling), 0 if none
 * is due (null sender, a DSN itself, NOTIFY said no, or it could not be
 * built: logged).  The original's body is read through `spool`.
 */
int bounce_build(struct bounce *b, const struct spool_entry *e, int which,
    enum dsn_action action, struct spool *, const struct config *);
/* Free what bounce_build() left in b. */
void bounce_clear(struct bounce *b);

#endif
