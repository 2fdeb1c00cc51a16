/* certcache.h: what the S/MIME path reads from the certificate store
 * (policy rules, partner certificates, trust anchors and CRLs, and the key
 * set of keys.h), cached in memory so that the hot path makes no database
 * query per message: the cache half of what was the keyring.  One cache is
 * shared by the event loop and the worker threads (a mutex guards it); a
 * cache miss uses the caller's own store connection, never another
 * thread's; the event loop has none (src->st NULL): it reads what the store
 * thread (storeq.h) cached, and an answer the store could not give is
 * never cached.  Writes (harvested signers) go through harvest.h. */
#ifndef SMRELAY_CERTCACHE_H
#define SMRELAY_CERTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "daemon/base/base.h"
#include "proto/proto.h"

struct certcache;
struct harvest;
struct keys;
struct policy_set;
struct store;
struct store_ocsp;

/* Where one thread's transforms get certificates, and where signers they
 * harvest go. */
struct certsrc {
	struct certcache *cc;
	struct store	*st;		/* this thread's connection, for
					 * cache misses */
	struct harvest	*harvest;	/* collects harvested signers for the
					 * thread that writes (worker
					 * threads); NULL: stored at once, by
					 * the thread that writes */
};

/* certcache.c */
struct certcache *certcache_new(void);
void certcache_free(struct certcache *);
/*
 * Reload rules, keys and trust and drop cached certificates when the store
 * changed since the last call (its change counter: one cheap query), or
 * always with `force` (SIGHUP).  Call from one thread (the event loop).
 * 1 reloaded, 0 unchanged, -1 error (err set; the old contents stay).
 */
int certcache_sync(struct certcache *, struct store *, int force, char *err,
    size_t errlen);
/*
 * certcache_sync() in two halves, for a store thread: read on the caller's
 * connection (1 with *ld, 0 unchanged, -1 error: the store unreachable, or
 * a rule that does not parse), then install on the thread that reads the
 * rules (takes ld); certcache_load_free() drops one not installed.
 */
struct certcache_load;
int certcache_load(struct certcache *, struct store *, int force,
    struct certcache_load **ld, char *err, size_t errlen);
void certcache_install(struct certcache *, struct certcache_load *);
void certcache_load_free(struct certcache_load *);
/* Whether rules were ever loaded (else there is no policy to apply). */
int certcache_loaded(struct certcache *);
/* Whether email has an answer in the cache: fresh, or any with stale. */
int certcache_cached(struct certcache *, const char *email, int stale);
/* Ask src->st about email and cache the answer (the store thread fills
 * the cache for the loop, which asks no store): 0, or -1 when the store
 * could not be asked (nothing cached). */
int certcache_fill(const struct certsrc *, const char *email);
/* The rules (owned by the cache, valid until the next certcache_sync() of
 * the same thread); never NULL after a successful sync. */
const struct policy_set *certcache_policy(struct certcache *);
/* The engine's memo for verifications against this cache's trust
 * (cms_trust.memo): parsed certificates and chain verdicts, the latter
 * forgotten whenever certcache_sync() reloads. */
struct cms_memo *certcache_memo(struct certcache *);
/* Our private keys (keys.h), reloaded by certcache_sync(). */
struct keys *certcache_keys(struct certcache *);
/*
 * The certificate to encrypt to for email (store_best_cert_for: valid now,
 * usable for encryption, newest), with its harvested caps; a new reference,
 * or NULL.  Cached, negative answers too.
 */
X509 *certcache_cert_for(const struct certsrc *, const char *email,
    int *caps);
/* Why email's certificate was refused for encryption (revoked, or of
 * unknown status with revocation = hard): 1 with the reason in buf, 0
 * when it was not. */
int certcache_refused(const struct certsrc *, const char *email, char *buf,
    size_t len);
/* Every stored certificate of email (new references), for signatures that
 * carry none; NULL on error, else a stack (maybe empty). */
STACK_OF(X509) *certcache_certs_of(const struct certsrc *, const char *email);
/* The trust anchors with the CRLs (a new reference), and the CRLs in *crls
 * (a new stack of new references); NULL on error. */
X509_STORE *certcache_trust(const struct certsrc *, STACK_OF(X509_CRL) **crls);
/* x's fingerprint (lowercase hex SHA-256 of its DER), remembered by
 * object; -1 if it cannot be encoded. */
int certcache_fingerprint(struct certcache *, X509 *x, char fp[65]);
/* Whether the certificate with this fingerprint was already harvested with
 * these caps since the cache started (then it need not be written again). */
int certcache_harvested(struct certcache *, const char *fingerprint,
    int caps);
/* A harvest was written: remember it, and forget what is cached for its
 * addresses so the very next message to them finds it. */
void certcache_harvest_done(struct certcache *, const char *fingerprint,
    int caps, char *const *emails, size_t nemails);
/*
 * The CAs of a message's chain are offered to the store (harvest_cas) at
 * most once per CERTCACHE_CA_RETRY seconds each: 1 when the CA x was
 * offered within that time, else 0 and it counts as offered now.  Every
 * verified message without CRLs carries the same intermediates, and each
 * offer reads and checks the whole trust store on the store thread.
 */
#define CERTCACHE_CA_RETRY	3600
int certcache_ca_offered(struct certcache *, X509 *x, time_t now);
/* Forget what is cached for email (a certificate for it was just stored). */
void certcache_forget(struct certcache *, const char *email);
/* Append the intermediate CAs of the store (new references) to sk, for
 * path building; 0 or -1. */
int certcache_add_intermediates(const struct certsrc *, STACK_OF(X509) *);
/* cms_trust.ocsp for the chain checks: the stored OCSP answer about x
 * (arg: the const struct certsrc * of the calling thread).  An answer
 * without nextUpdate counts for CERTCACHE_OCSP_MAXAGE seconds. */
#define CERTCACHE_OCSP_MAXAGE	(7 * 86400)
enum cms_ocsp certcache_ocsp(X509 *x, X509 *issuer, char *src, size_t srclen,
    void *arg);
/* cms_trust.crl_source: the URL a stored CRL was fetched from ("" when
 * imported; arg as for certcache_ocsp). */
void certcache_crl_source(X509_CRL *crl, char *buf, size_t len, void *arg);
/* The same decision from st's OCSP table; o gets the stored answer (its
 * source for display) whenever there is one. */
enum cms_ocsp certcache_ocsp_stored(struct store *st, X509 *x, X509 *issuer,
    struct store_ocsp *o);
/* How chains are checked for revocation (config `revocation`). */
void certcache_set_revocation(struct certcache *, enum config_revocation);
enum cms_revocation certcache_revocation(struct certcache *);

#endif
