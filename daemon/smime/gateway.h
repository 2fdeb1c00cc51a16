/* gateway.h: the S/MIME gateway as a delivery backend wrapped around the
 * relay client.  Each RCPT is decided by policy (pipeline_decide): refused
 * here, or put in the copy of the message whose recipients share a
 * treatment; each copy is its own transaction at the next hop.  At end of
 * DATA every copy is transformed on the worker pool and relayed; the client
 * gets one reply for all of them. */
#ifndef SMRELAY_GATEWAY_H
#define SMRELAY_GATEWAY_H

#include <event2/event.h>

#include "daemon/base/base.h"

struct config;
struct gateway;

/* gateway.c */
/*
 * Wrap `inner` (the relay client).  Opens its own store connection in
 * cfg->data_dir for the loop and one per worker thread (`threads`, 0: one
 * per CPU), and the spool (DATA_DIR/spool: recovered, its queue resumed).
 * cfg must stay valid until gateway_reconfigure() or gateway_free().  NULL
 * with err set on failure.
 */
struct gateway *gateway_new(struct event_base *, const struct delivery_ops *,
    void *inner_ctx, const struct config *cfg, const char *tmpdir,
    int threads, char *err, size_t errlen);
/* A new config after SIGHUP; reload rules and certificates now. */
void gateway_reconfigure(struct gateway *, const struct config *);
/* Stop the workers (after the loop ended) and free. */
void gateway_free(struct gateway *);

/* The backend: ctx is the struct gateway *. */
extern const struct delivery_ops gateway_delivery_ops;

#endif
