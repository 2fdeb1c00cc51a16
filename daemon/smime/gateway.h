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

struct certcache;
struct config;
struct gateway;
struct queue;
struct spool;
struct store;
struct workers;

/* What smrelayd built for the gateway, in this order.  It stops the worker
 * and spool threads before gateway_free() (their last callbacks still use
 * the gateway), then frees the rest in reverse order. */
struct gateway_parts {
	const char	*database;	/* the store thread's (storeq.h) */
	const char	*data_dir;	/* its SQLite file's folder */
	struct certcache *cc;		/* synced once, or not (the store
					 * away at start) */
	struct spool	*spool;		/* recovered */
	struct queue	*queue;		/* over the spool */
	struct workers	*workers;	/* each thread's context: its own
					 * store connection, or NULL */
};

/* gateway.c */
/*
 * Wrap `inner` (the relay client) with the parts, which must outlive the
 * gateway; starts polling the store for smrelayctl's changes and offers
 * the held copies.  cfg must stay valid until gateway_reconfigure() or
 * gateway_free().
 */
struct gateway *gateway_new(struct event_base *, const struct delivery_ops *,
    void *inner_ctx, const struct config *cfg, const char *tmpdir,
    const struct gateway_parts *);
/* A new config after SIGHUP; reload rules and certificates now (the queue
 * is reconfigured by its owner). */
void gateway_reconfigure(struct gateway *, const struct config *);
/* Reload rules, keys and certificates now (the key process is back). */
void gateway_reload(struct gateway *);
/* /healthz: 0 healthy (why empty, or saying what is degraded), -1 not. */
int gateway_health(struct gateway *, char *why, size_t len);
/* Free the gateway, after the loop ended and the workers stopped. */
void gateway_free(struct gateway *);

/* The backend: ctx is the struct gateway *. */
extern const struct delivery_ops gateway_delivery_ops;

#endif
