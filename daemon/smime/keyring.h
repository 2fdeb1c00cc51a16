/* keyring.h: what the S/MIME path needs from the certificate store (policy
 * rules, our keys, partner certificates, trust anchors and CRLs), cached in
 * memory so that the hot path makes no database query per message.  One
 * keyring is shared by the event loop and the worker threads (a mutex
 * guards it); a cache miss or a harvest uses the caller's own store
 * connection, never another thread's. */
#ifndef SMRELAY_KEYRING_H
#define SMRELAY_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

struct keyring;
struct policy_set;
struct store;
struct store_key;

/* A keyring and the store connection of the thread using it. */
struct certsrc {
	struct keyring	*kr;
	struct store	*st;
};

/* keyring.c */
struct keyring *keyring_new(void);
void keyring_free(struct keyring *);
/*
 * Reload rules, keys and trust and drop cached certificates when the store
 * changed since the last call (its change counter: one cheap query), or
 * always with `force` (SIGHUP).  Call from one thread (the event loop).
 * 1 reloaded, 0 unchanged, -1 error (err set; the old contents stay).
 */
int keyring_sync(struct keyring *, struct store *, int force, char *err,
    size_t errlen);
/* The rules (owned by the keyring, valid until the next keyring_sync() of
 * the same thread); never NULL after a successful sync. */
const struct policy_set *keyring_policy(struct keyring *);

/*
 * The certificate to encrypt to for email (store_best_cert_for: valid now,
 * usable for encryption, newest), with its harvested caps; a new reference,
 * or NULL.  Cached, negative answers too.
 */
X509 *keyring_cert_for(const struct certsrc *, const char *email, int *caps);
/* Every stored certificate of email (new references), for signatures that
 * carry none; NULL on error, else a stack (maybe empty). */
STACK_OF(X509) *keyring_certs_of(const struct certsrc *, const char *email);
/* Our key for signing as email, valid at now, newest first; a copy
 * holding its own references (store_key_free), or NULL. */
struct store_key *keyring_key_for(const struct certsrc *, const char *email,
    time_t now);
/* Every key (copies, NULL-terminated; store_keys_free). */
struct store_key **keyring_all_keys(const struct certsrc *, size_t *n);
/* The trust anchors with the CRLs (a new reference), and the CRLs in *crls
 * (a new stack of new references); NULL on error. */
X509_STORE *keyring_trust(const struct certsrc *, STACK_OF(X509_CRL) **crls);
/*
 * A signer seen in a valid signature: store it (store_harvest) unless this
 * keyring already did with the same caps, and forget what is cached for
 * its addresses so the very next message to them finds it.  Row id, 0 when
 * nothing was written, -1 on error.
 */
int64_t keyring_harvest(const struct certsrc *, X509 *, STACK_OF(X509) *chain,
    int caps);

#endif
