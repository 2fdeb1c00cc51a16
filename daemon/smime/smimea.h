/* smimea.h: certificates for recipients from RFC 8162 SMIMEA records
 * (cert_lookup = smimea), asked for by the gateway before --if-no-cert
 * applies; the RCPT's reply waits, at most SMIMEA_TIMEOUT_MS for the DNS
 * and SMIMEA_STORE_MS for the store thread to take what it found.  Only
 * DNSSEC-secure answers count.  A usable certificate enters the store
 * (source "smimea", for the address it was found for, until the record's
 * TTL) and the cache forgets the address, so that deciding again finds it.
 * Lookups of one address share one query; an address that gave nothing
 * is not asked again for SMIMEA_NEG_TTL seconds. */
#ifndef SMRELAY_SMIMEA_H
#define SMRELAY_SMIMEA_H

#include <stdint.h>

struct certcache;
struct config;
struct event_base;
struct smimea;
struct smimea_wait;
struct storeq;

#define SMIMEA_TIMEOUT_MS	5000	/* the longest a RCPT waits (DNS) */
#define SMIMEA_STORE_MS		2000	/* ... and then for the store */
#define SMIMEA_NEG_TTL		60	/* nothing usable: not asked again */

/* The lookup is over, whatever it found. */
typedef void smimea_cb(void *arg);

/* smimea.c */
/*
 * Lookups on the loop of base for cfg (none unless cert_lookup = smimea),
 * storing through the store thread sq (a lookup is over once it stored, or
 * could not: the queue full or the store away, logged) and cc.  Never
 * NULL.
 */
struct smimea *smimea_new(struct event_base *, struct certcache *,
    struct storeq *, const struct config *);
/* A new config: with other DNS settings the lookups in flight end now
 * (their callbacks come from the loop) and a new resolver is made. */
void smimea_reconfigure(struct smimea *, const struct config *);
/* Free, after the loop ended and the store thread stopped: waits still
 * held are left to smimea_cancel() and never called back. */
void smimea_free(struct smimea *);
/*
 * Look up a certificate for addr (an RCPT path), or join the lookup of
 * addr under way.  cb is called once, from the loop, unless
 * smimea_cancel() comes first; the handle is invalid once cb is called.
 * NULL when there is nothing to wait for (lookups off, addr recently gave
 * nothing, too many in flight): decide now.
 */
struct smimea_wait *smimea_lookup(struct smimea *, const char *addr,
    uint64_t sessid, smimea_cb *, void *);
/* Stop waiting; the query is abandoned when nobody else waits for it. */
void smimea_cancel(struct smimea_wait *);

#endif
