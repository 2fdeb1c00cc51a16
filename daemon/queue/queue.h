/* queue.h: the queue runner: spooled copies in memory (their state is on
 * disk through spool.c), retried with exponential backoff and jitter
 * through the relay client, a delay DSN once, a failure DSN for permanent
 * failures and at queue_lifetime (never to the null sender). */
#ifndef SMRELAY_QUEUE_H
#define SMRELAY_QUEUE_H

#include <event2/event.h>

#include "daemon/base/base.h"
#include "spool.h"

struct config;
struct queue;

/* A policy-held copy may go now: the caller transforms it and calls
 * queue_replace(), or returns 0 to keep it held. */
typedef int queue_release_fn(void *arg, const struct spool_entry *);

/* queue.c */
/* Takes the loaded entries (spool_new). */
struct queue *queue_new(struct event_base *, struct spool *,
    struct spool_entry **loaded, size_t nloaded,
    const struct delivery_ops *relay, void *relay_ctx, const struct config *);
void queue_reconfigure(struct queue *, const struct config *);
/* Spool a copy (e copied, body referenced) and queue it; cb(arg, 0) once
 * it is durable, cb(arg, errno) if it could not be written. */
void queue_submit(struct queue *, struct spool_entry *e, struct msgbuf *body,
    spool_put_cb *cb, void *arg);
/* What an in-line transaction saw at destination `key` (the relay's
 * delivery_ops.route; "" with one next hop): after a spell of connection
 * failures, the first success makes that destination's backlog due. */
void queue_hop_result(struct queue *, const char *key,
    const struct smtp_result *);
/* Destination `key` failed to connect or dropped us in the last seconds
 * (no success since): new in-line transactions for it go straight to the
 * spool instead of each trying, and logging, another connection. */
int queue_hop_dead(const struct queue *, const char *key);
/* Offer each policy-held copy to fn (after the certificates changed). */
void queue_check_held(struct queue *, queue_release_fn *, void *arg);
/* A held copy was transformed: queue `body` for its recipients instead. */
void queue_replace(struct queue *, const char *id, struct msgbuf *body);
/* Entries in memory. */
size_t queue_count(const struct queue *);
void queue_free(struct queue *);

#endif
