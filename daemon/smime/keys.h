/* keys.h: the one door to our private keys.  The transforms ask it two
 * questions, the key to sign as an address and the keys to try on an
 * envelope, and nothing else in the daemon touches a private key.  Today it
 * answers from the certificates of the store and the private keys of the
 * key file (certcache_sync() reloads them with the rest); a key process
 * will answer the same questions over a socketpair (STYLE.md 13), and only
 * this file changes then.  One set is shared by the event loop and the
 * worker threads (a mutex guards it). */
#ifndef SMRELAY_KEYS_H
#define SMRELAY_KEYS_H

#include <stddef.h>
#include <time.h>

#define KEYS_MARK_LEN	32      /* the mark secret and its MACs */

struct keyd_client;
struct keyfile;
struct keys;
struct store;
struct store_key;

/* keys.c */
struct keys *keys_new(void);
void keys_free(struct keys *);
/* Take private keys from kf (keys_load fills each key of the store from
 * it by fingerprint, and leaves out, with a warning, a key it lacks); the
 * set owns kf from now on and closes it. */
void keys_set_keyfile(struct keys *, struct keyfile *);
/* Replace the set with every key of the store (from one thread). */
void keys_load(struct keys *, struct store *);
/* Our key for signing as email, valid at now, newest first; a copy
 * holding its own references (store_key_free), or NULL. */
struct store_key *keys_signing(struct keys *, const char *email, time_t now);
/* Every key to try on an envelope (copies, NULL-terminated;
 * store_keys_free). */
struct store_key **keys_decrypting(struct keys *, size_t *n);
/* HMAC-SHA-256 under this installation's mark secret (mark.c binds the
 * loop-guard mark to a message with it); -1 when there is none. */
int keys_mark(struct keys *, const void *data, size_t n,
    unsigned char mac[KEYS_MARK_LEN]);

/* Private keys as handles on a key process from now on (keys_load next). */
void keys_set_keyd(struct keys *, struct keyd_client *);
/* 0 when the key process is gone (a temporary failure), else 1. */
int keys_usable(struct keys *);

#endif
