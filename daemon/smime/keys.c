/* keys.c: our private keys for the transforms (see keys.h), loaded whole
 * (certificates from the store, keys from the key file): they are few and
 * change only by the admin. */
#include "autoconfig.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keys.h"
#include "daemon/keyd/keyd.h"
#include "lib/lib.h"
#include "store/store.h"

/* One of our keys with what keys_signing() matches on. */
struct key {
	struct store_key *k;
	char		**emails;
	size_t		 nemails;
	int64_t		 not_before, not_after;
	int		 can_sign;
};

struct keys {
	pthread_mutex_t	 mtx;
	struct key	*v;
	size_t		 n;
	unsigned char	 mark[KEYS_MARK_LEN];   /* the store's "mark" secret */
	int		 have_mark;
	struct keyd_client *kc;         /* the key process, or NULL */
	struct keyfile	*kf;		/* where private keys come from */
};

/* Free an array of keys. */
static void
keys_clear(struct key *v, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		store_key_free(v[i].k);
		for (j = 0; j < v[i].nemails; j++)
			free(v[i].emails[j]);
		free(v[i].emails);
	}
	free(v);
}

/* An empty set. */
struct keys *
keys_new(void)
{
	struct keys *ks = xcalloc(1, sizeof(*ks));

	if (pthread_mutex_init(&ks->mtx, NULL) != 0)
		fatal("pthread_mutex_init");
	return ks;
}

/* Free the set and every key in it. */
void
keys_free(struct keys *ks)
{
	if (ks == NULL)
		return;
	keys_clear(ks->v, ks->n);
	if (ks->kc != NULL)
		keyd_client_unref(ks->kc);
	keyfile_close(ks->kf);
	OPENSSL_cleanse(ks->mark, sizeof(ks->mark));
	pthread_mutex_destroy(&ks->mtx);
	free(ks);
}

/* Read private keys from kf from now on (the set owns it); smrelayctl's
 * way.  The daemon's network process uses keys_set_keyd instead. */
void
keys_set_keyfile(struct keys *ks, struct keyfile *kf)
{
	if (ks->kf != kf)
		keyfile_close(ks->kf);
	ks->kf = kf;
}

/* A key the key file names by its pkcs11: URI, from its token (smrelayctl;
 * the daemon's network process only ever has handles). */
static int
key_from_token(struct keyfile *kf, struct store_key *k)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	char fp[65], err[512], *uri = NULL;
	int rc = -1;

	if (keyfile_fingerprint(k->cert, fp) == 0 && keyfile_get(kf, fp, &pkey,
	    &uri, err, sizeof(err)) == 1 && pkey == NULL && uri != NULL) {
		if (keyd_p11_load(uri, &pkey, &cert, err, sizeof(err)) == 0) {
			EVP_PKEY_free(k->pkey);
			k->pkey = pkey;
			pkey = NULL;
			rc = 0;
		} else
			log_warnx("keys: key %lld: %s", (long long)k->id, err);
	}
	EVP_PKEY_free(pkey);
	X509_free(cert);
	if (uri != NULL)
		OPENSSL_clear_free(uri, strlen(uri));
	return rc;
}

/*
 * Where a key's private half comes from: with a key process, a handle that
 * forwards sign, decrypt and derive to it (the key never enters this
 * process); else the key file, by the fingerprint of its certificate.  0,
 * or -1 to leave the key out (said why).
 */
static int
key_private(struct keyd_client *kc, struct keyfile *kf, struct store_key *k)
{
	char err[512];

	if (kc != NULL) {
		EVP_PKEY_free(k->pkey);
		if ((k->pkey = keyd_client_pkey(kc, k->cert, err,
		    sizeof(err))) == NULL) {
			log_warnx("keys: key %lld: %s", (long long)k->id, err);
			return -1;
		}
		return 0;
	}
	if (kf == NULL) {
		log_warnx("keys: key %lld skipped: no key file",
		    (long long)k->id);
		return -1;
	}
	if (store_key_attach(k, kf, err, sizeof(err)) == 1 ||
	    key_from_token(kf, k) == 0)
		return 0;
	log_warnx("keys: skipped: %s", err);
	return -1;
}

/* The store's keys with the addresses and validity of their certificates. */
static struct key *
keys_read(struct store *st, struct keyd_client *kc, struct keyfile *kf,
    size_t *np)
{
	struct store_key **v;
	struct store_certmeta m;
	struct key *keys;
	char err[256];
	size_t i, n = 0, k = 0;

	v = store_all_keys(st, &n);
	keys = xcalloc(n + 1, sizeof(*keys));
	for (i = 0; i < n; i++) {
		if (key_private(kc, kf, v[i]) == -1 ||
		    store_certmeta_get(v[i]->cert, &m, err,
		    sizeof(err)) == -1) {
			store_key_free(v[i]);
			continue;
		}
		keys[k].k = v[i];
		keys[k].emails = m.emails;
		keys[k].nemails = m.nemails;
		keys[k].not_before = m.not_before;
		keys[k].not_after = m.not_after;
		keys[k].can_sign = m.can_sign;
		m.emails = NULL;
		m.nemails = 0;
		store_certmeta_free(&m);
		k++;
	}
	free(v);
	*np = k;
	return keys;
}

/* Read the store's keys and the mark secret, then swap them in under the
 * lock (a secret that cannot be read leaves the old one, and says so). */
void
keys_load(struct keys *ks, struct store *st)
{
	struct key *v, *ov;
	struct keyd_client *kc;
	unsigned char mark[KEYS_MARK_LEN];
	char err[512];
	size_t n = 0, on;
	int have_mark;

	pthread_mutex_lock(&ks->mtx);
	kc = ks->kc;
	if (kc != NULL)
		keyd_client_ref(kc);
	pthread_mutex_unlock(&ks->mtx);
	v = keys_read(st, kc, ks->kf, &n);
	if (kc != NULL)
		keyd_client_unref(kc);
	/* the mark secret: the key process's (asked per MAC), else the key
	 * file's, else the store's (before its first migration) */
	have_mark = 0;
	if (kc != NULL)
		;
	else if (ks->kf != NULL && (have_mark = keyfile_secret(ks->kf,
	    "mark", mark, sizeof(mark), err, sizeof(err))) == 1)
		;
	else if (!(have_mark = store_secret(st, "mark", mark, sizeof(mark),
	    err, sizeof(err)) == 0))
		log_warnx("keys: %s: messages we transform get no loop-guard "
		    "mark", err);
	pthread_mutex_lock(&ks->mtx);
	ov = ks->v;
	on = ks->n;
	ks->v = v;
	ks->n = n;
	if (have_mark) {
		memcpy(ks->mark, mark, sizeof(mark));
		ks->have_mark = 1;
	}
	pthread_mutex_unlock(&ks->mtx);
	OPENSSL_cleanse(mark, sizeof(mark));
	keys_clear(ov, on);
}

/* HMAC-SHA-256 of [data, data + n) under the mark secret; -1 without one.
 * With a key process, the key process holds the secret and makes it. */
int
keys_mark(struct keys *ks, const void *data, size_t n,
    unsigned char mac[KEYS_MARK_LEN])
{
	struct keyd_client *kc;
	struct keyproto_req req;
	size_t maclen = 0;
	char err[200];
	int rc = -1;

	pthread_mutex_lock(&ks->mtx);
	if ((kc = ks->kc) != NULL)
		keyd_client_ref(kc);
	pthread_mutex_unlock(&ks->mtx);
	if (kc != NULL) {
		memset(&req, 0, sizeof(req));
		req.type = KP_MAC;
		req.data = data;
		req.len = n;
		maclen = KEYS_MARK_LEN;
		if (n > 0 && n <= KEYPROTO_MAX_DATA &&
		    keyd_client_call(kc, &req, mac, &maclen, err,
		    sizeof(err)) == 0 && maclen == KEYS_MARK_LEN)
			rc = 0;
		else if (n > 0 && n <= KEYPROTO_MAX_DATA)
			log_warnx("keys: loop-guard mark: %s", err);
		keyd_client_unref(kc);
		return rc;
	}
	pthread_mutex_lock(&ks->mtx);
	if (ks->have_mark && EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL,
	    ks->mark, sizeof(ks->mark), data, n, mac, KEYS_MARK_LEN,
	    &maclen) != NULL && maclen == KEYS_MARK_LEN)
		rc = 0;
	pthread_mutex_unlock(&ks->mtx);
	return rc;
}

/* A copy of a key holding its own references. */
static struct store_key *
key_dup(const struct store_key *k)
{
	struct store_key *c = xcalloc(1, sizeof(*c));
	X509 *x;
	int i;

	c->id = k->id;
	X509_up_ref(k->cert);
	c->cert = k->cert;
	EVP_PKEY_up_ref(k->pkey);
	c->pkey = k->pkey;
	if ((c->chain = sk_X509_new_null()) == NULL)
		fatal("sk_X509_new_null");
	for (i = 0; i < sk_X509_num(k->chain); i++) {
		x = sk_X509_value(k->chain, i);
		X509_up_ref(x);
		if (sk_X509_push(c->chain, x) <= 0)
			X509_free(x);
	}
	return c;
}

/* The key to sign as email: can sign, valid at now, newest first. */
struct store_key *
keys_signing(struct keys *ks, const char *email, time_t now)
{
	const struct key *best = NULL, *k;
	struct store_key *c = NULL;
	char kb[MAIL_ADDR_MAX];
	size_t i, j;

	email = mail_addr_key(email, kb, sizeof(kb));
	pthread_mutex_lock(&ks->mtx);
	for (i = 0; i < ks->n; i++) {
		k = &ks->v[i];
		if (!k->can_sign || k->not_before > (int64_t)now ||
		    k->not_after < (int64_t)now)
			continue;
		for (j = 0; j < k->nemails; j++)
			if (strcasecmp_ascii(k->emails[j], email) == 0)
				break;
		if (j == k->nemails)
			continue;
		/* newest not_before first, then the later import */
		if (best == NULL || k->not_before > best->not_before ||
		    (k->not_before == best->not_before &&
		    k->k->id > best->k->id))
			best = k;
	}
	if (best != NULL)
		c = key_dup(best->k);
	pthread_mutex_unlock(&ks->mtx);
	return c;
}

/* Every key, for an envelope addressed to one of them. */
struct store_key **
keys_decrypting(struct keys *ks, size_t *np)
{
	struct store_key **v;
	size_t i;

	pthread_mutex_lock(&ks->mtx);
	v = xcalloc(ks->n + 1, sizeof(*v));
	for (i = 0; i < ks->n; i++)
		v[i] = key_dup(ks->v[i].k);
	*np = ks->n;
	pthread_mutex_unlock(&ks->mtx);
	return v;
}

/* From now on, private keys are handles on kc's key process (a reference
 * is taken; the previous client's is dropped).  Call keys_load next. */
void
keys_set_keyd(struct keys *ks, struct keyd_client *kc)
{
	struct keyd_client *old;

	keyd_client_ref(kc);
	pthread_mutex_lock(&ks->mtx);
	old = ks->kc;
	ks->kc = kc;
	pthread_mutex_unlock(&ks->mtx);
	if (old != NULL)
		keyd_client_unref(old);
}

/* Whether private key operations can be tried now. */
int
keys_usable(struct keys *ks)
{
	int ok;

	pthread_mutex_lock(&ks->mtx);
	ok = ks->kc == NULL || keyd_client_alive(ks->kc);
	pthread_mutex_unlock(&ks->mtx);
	return ok;
}
