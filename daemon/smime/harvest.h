/* harvest.h: signer certificates seen in valid signatures, written to the
 * store so that the next message to the signer can be encrypted.  SQLite
 * is written from one thread only: a worker thread collects what its
 * transforms harvested in a struct harvest that goes back with its job,
 * and the event loop stores it (harvest_flush); a single-threaded program
 * (smrelayctl) stores at once.  Both write through harvest_store(). */
#ifndef SMRELAY_HARVEST_H
#define SMRELAY_HARVEST_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

struct certcache;
struct certsrc;
struct harvest;
struct store;

/* harvest.c */
/* An empty collection (for one worker job). */
struct harvest *harvest_new(void);
void harvest_free(struct harvest *);
/*
 * A transform saw a valid signature by x (chain: the certificates that came
 * with it; caps: STORE_CAP_*): collected in src->harvest when there is one
 * (0), else stored now by harvest_store().
 */
int64_t harvest_signer(const struct certsrc *, X509 *x,
    STACK_OF(X509) *chain, int caps);
/*
 * The one writer of harvested certificates: store_harvest() unless this
 * cache already wrote it with the same caps, then the cache forgets its
 * addresses.  Row id, 0 when nothing was written, -1 on error.  Call from
 * the thread that writes.
 */
int64_t harvest_store(struct certcache *, struct store *, X509 *x,
    STACK_OF(X509) *chain, int caps);
/*
 * Store what a worker collected (harvest_store() each, in order) and empty
 * the collection.  The row id of the last write, 0 when nothing was
 * written, -1 when one failed and none was written.
 */
int64_t harvest_flush(struct harvest *, struct certcache *, struct store *);
/* As harvest_flush(), but it stops at the first write that fails: that
 * signer and the later ones stay collected, to be written again (one that
 * failed maxtries times is dropped instead, counted in *dropped).  The
 * last row id, or 0. */
int64_t harvest_flush_keep(struct harvest *, struct certcache *,
    struct store *, int maxtries, size_t *dropped);
/* How many signers the collection holds. */
size_t harvest_count(const struct harvest *);
/* Append what src holds to dst (src is left empty), keeping the newest max
 * in dst; the number of oldest ones dropped. */
size_t harvest_move(struct harvest *dst, struct harvest *src, size_t max);

/*
 * The intermediate CAs among chain (a signer's message's certificates),
 * stored when they chain to one of our anchors (an attacker's CA under a
 * real CA's name does not), so that later paths and CRL checks can use
 * them.  From the thread that writes.
 */
void harvest_cas(struct store *, STACK_OF(X509) *chain);

/* Append the CRL distribution points of the collected signers and their
 * certificates to *urls (crlfetch_urls_free). */
void harvest_urls(const struct harvest *, char ***urls, size_t *n);

#endif
