/* keyring.c: the certificate store cached in memory for the S/MIME path
 * (see keyring.h).  Rules, keys and trust are loaded whole (they are few and
 * change only by the admin); partner certificates are looked up per address
 * on first use and kept, negative answers included, until the store's
 * change counter moves. */
#include "autoconfig.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keyring.h"
#include "lib/lib.h"
#include "policy/policy.h"
#include "store/store.h"

#define KR_BUCKETS	1024
#define KR_MAX_ENTRIES	20000		/* then start over */
#define KR_TTL		300		/* re-ask the store after (validity) */

/* A cached address, or (name "#fp:caps") a harvest already written. */
struct kr_entry {
	char		*name;
	X509		*best;		/* NULL: none usable */
	int		 caps;
	STACK_OF(X509)	*all;		/* NULL until asked for */
	time_t		 at;
	struct kr_entry	*next;
};

/* One of our keys with what key_for() matches on. */
struct kr_key {
	struct store_key *k;
	char		**emails;
	size_t		 nemails;
	int64_t		 not_before, not_after;
	int		 can_sign;
};

struct keyring {
	pthread_mutex_t	 mtx;
	int		 loaded;
	int64_t		 changes;
	struct kr_entry	*tab[KR_BUCKETS];
	size_t		 nentries;
	struct kr_key	*keys;
	size_t		 nkeys;
	X509_STORE	*trust;
	STACK_OF(X509_CRL) *crls;
	struct policy_set *policy;
};

static unsigned
kr_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ?
		    *s + 32 : *s)) * 16777619u;
	return h % KR_BUCKETS;
}

static void
entry_free(struct kr_entry *e)
{
	free(e->name);
	X509_free(e->best);
	sk_X509_pop_free(e->all, X509_free);
	free(e);
}

/*
 * Forget every cached address; with keep_marks the harvest marks stay (a
 * harvest changes the store, and forgetting them would write every later
 * copy of the same certificate again).  Locked.
 */
static void
cache_clear(struct keyring *kr, int keep_marks)
{
	struct kr_entry *e, **pp;
	size_t i;

	for (i = 0; i < KR_BUCKETS; i++) {
		pp = &kr->tab[i];
		while ((e = *pp) != NULL) {
			if (keep_marks && e->name[0] == '#') {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
			kr->nentries--;
		}
	}
}

/* The entry for name, or NULL.  Locked. */
static struct kr_entry *
cache_find(struct keyring *kr, const char *name)
{
	struct kr_entry *e;

	for (e = kr->tab[kr_hash(name)]; e != NULL; e = e->next)
		if (strcasecmp_ascii(e->name, name) == 0)
			return e;
	return NULL;
}

/* Drop the entry for name.  Locked. */
static void
cache_drop(struct keyring *kr, const char *name)
{
	struct kr_entry **pp, *e;

	for (pp = &kr->tab[kr_hash(name)]; (e = *pp) != NULL; pp = &e->next)
		if (strcasecmp_ascii(e->name, name) == 0) {
			*pp = e->next;
			entry_free(e);
			kr->nentries--;
			return;
		}
}

/* Insert (takes e).  Locked. */
static void
cache_put(struct keyring *kr, struct kr_entry *e)
{
	unsigned h;

	cache_drop(kr, e->name);
	if (kr->nentries >= KR_MAX_ENTRIES)
		cache_clear(kr, 0);
	h = kr_hash(e->name);
	e->next = kr->tab[h];
	kr->tab[h] = e;
	kr->nentries++;
}

static void
keys_clear(struct kr_key *keys, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		store_key_free(keys[i].k);
		for (j = 0; j < keys[i].nemails; j++)
			free(keys[i].emails[j]);
		free(keys[i].emails);
	}
	free(keys);
}

struct keyring *
keyring_new(void)
{
	struct keyring *kr = xcalloc(1, sizeof(*kr));

	if (pthread_mutex_init(&kr->mtx, NULL) != 0)
		fatal("pthread_mutex_init");
	kr->changes = -1;
	return kr;
}

void
keyring_free(struct keyring *kr)
{
	if (kr == NULL)
		return;
	cache_clear(kr, 0);
	keys_clear(kr->keys, kr->nkeys);
	X509_STORE_free(kr->trust);
	sk_X509_CRL_pop_free(kr->crls, X509_CRL_free);
	policy_set_free(kr->policy);
	pthread_mutex_destroy(&kr->mtx);
	free(kr);
}

/* Our keys with the addresses and validity of their certificates. */
static struct kr_key *
load_keys(struct store *st, size_t *np)
{
	struct store_key **v;
	struct store_certmeta m;
	struct kr_key *keys;
	char err[256];
	size_t i, n = 0, k = 0;

	v = store_all_keys(st, &n);
	keys = xcalloc(n + 1, sizeof(*keys));
	for (i = 0; i < n; i++) {
		if (store_certmeta_get(v[i]->cert, &m, err, sizeof(err)) == -1) {
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

/* The CRLs held in an X509_STORE, as a stack of new references. */
static STACK_OF(X509_CRL) *
store_crls(X509_STORE *xs)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(xs);
	STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
	X509_CRL *crl;
	int i;

	for (i = 0; crls != NULL && i < sk_X509_OBJECT_num(objs); i++) {
		crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
		if (crl == NULL)
			continue;
		X509_CRL_up_ref(crl);
		if (sk_X509_CRL_push(crls, crl) <= 0)
			X509_CRL_free(crl);
	}
	return crls;
}

int
keyring_sync(struct keyring *kr, struct store *st, int force, char *err,
    size_t errlen)
{
	struct policy_rule *rules;
	struct policy_set *ps;
	struct kr_key *keys, *okeys;
	X509_STORE *trust, *otrust;
	STACK_OF(X509_CRL) *crls, *ocrls;
	size_t nrules = 0, nkeys = 0, okn;
	int64_t changes;

	if ((changes = store_changes(st)) < 0) {
		snprintf(err, errlen, "store: %s", store_errmsg(st));
		return -1;
	}
	if (kr->loaded && !force && changes == kr->changes)
		return 0;
	if ((rules = store_policy_load(st, &nrules, err, errlen)) == NULL)
		return -1;
	ps = policy_set_new(rules, nrules, err, errlen);
	store_policy_rules_free(rules, nrules);
	if (ps == NULL)
		return -1;
	if ((trust = store_trust_x509_store(st)) == NULL ||
	    (crls = store_crls(trust)) == NULL) {
		X509_STORE_free(trust);
		policy_set_free(ps);
		snprintf(err, errlen, "cannot load the trust anchors");
		return -1;
	}
	keys = load_keys(st, &nkeys);

	pthread_mutex_lock(&kr->mtx);
	cache_clear(kr, 1);
	okeys = kr->keys;
	okn = kr->nkeys;
	otrust = kr->trust;
	ocrls = kr->crls;
	policy_set_free(kr->policy);
	kr->policy = ps;
	kr->keys = keys;
	kr->nkeys = nkeys;
	kr->trust = trust;
	kr->crls = crls;
	kr->changes = changes;
	kr->loaded = 1;
	pthread_mutex_unlock(&kr->mtx);

	keys_clear(okeys, okn);
	X509_STORE_free(otrust);
	sk_X509_CRL_pop_free(ocrls, X509_CRL_free);
	return 1;
}

const struct policy_set *
keyring_policy(struct keyring *kr)
{
	return kr->policy;
}

/* store_cert_list callback: collect ids. */
struct idlist {
	int64_t	*ids;
	size_t	 n;
};

static int
id_cb(const struct store_certinfo *ci, void *arg)
{
	struct idlist *l = arg;

	if (l->n >= 256)
		return 1;
	l->ids = xreallocarray(l->ids, l->n + 1, sizeof(*l->ids));
	l->ids[l->n++] = ci->id;
	return 0;
}

/* Ask the store about an address (no lock held: the caller's connection). */
static struct kr_entry *
lookup(struct store *st, const char *email, time_t now)
{
	struct kr_entry *e = xcalloc(1, sizeof(*e));
	struct idlist l = { NULL, 0 };
	X509 *x;
	size_t i;

	e->name = xstrdup(email);
	e->at = now;
	e->best = store_best_cert_for(st, email, now, &e->caps);
	if ((e->all = sk_X509_new_null()) == NULL)
		fatal("sk_X509_new_null");
	store_cert_list(st, email, id_cb, &l);
	for (i = 0; i < l.n; i++)
		if ((x = store_cert_get(st, l.ids[i])) != NULL &&
		    sk_X509_push(e->all, x) <= 0)
			X509_free(x);
	free(l.ids);
	return e;
}

/* Fresh enough: asked recently and the answer still valid. */
static int
entry_fresh(const struct kr_entry *e, time_t now)
{
	if (now - e->at > KR_TTL || now < e->at)
		return 0;
	if (e->best != NULL &&
	    X509_cmp_time(X509_get0_notAfter(e->best), &now) <= 0)
		return 0;
	return 1;
}

/* The cached entry for email (looked up on a miss); calls fn locked. */
static void
with_entry(const struct certsrc *src, const char *email,
    void (*fn)(const struct kr_entry *, void *), void *arg)
{
	struct keyring *kr = src->kr;
	struct kr_entry *e;
	time_t now = time(NULL);

	pthread_mutex_lock(&kr->mtx);
	if ((e = cache_find(kr, email)) != NULL && entry_fresh(e, now)) {
		fn(e, arg);
		pthread_mutex_unlock(&kr->mtx);
		return;
	}
	pthread_mutex_unlock(&kr->mtx);
	e = lookup(src->st, email, now);
	pthread_mutex_lock(&kr->mtx);
	fn(e, arg);
	cache_put(kr, e);
	pthread_mutex_unlock(&kr->mtx);
}

struct best_arg {
	X509	*x;
	int	 caps;
};

static void
best_fn(const struct kr_entry *e, void *arg)
{
	struct best_arg *a = arg;

	if ((a->x = e->best) != NULL)
		X509_up_ref(a->x);
	a->caps = e->caps;
}

X509 *
keyring_cert_for(const struct certsrc *src, const char *email, int *caps)
{
	struct best_arg a = { NULL, 0 };

	with_entry(src, email, best_fn, &a);
	if (caps != NULL)
		*caps = a.caps;
	return a.x;
}

static void
all_fn(const struct kr_entry *e, void *arg)
{
	STACK_OF(X509) **out = arg;
	X509 *x;
	int i;

	if ((*out = sk_X509_new_null()) == NULL)
		return;
	for (i = 0; e->all != NULL && i < sk_X509_num(e->all); i++) {
		x = sk_X509_value(e->all, i);
		X509_up_ref(x);
		if (sk_X509_push(*out, x) <= 0)
			X509_free(x);
	}
}

STACK_OF(X509) *
keyring_certs_of(const struct certsrc *src, const char *email)
{
	STACK_OF(X509) *out = NULL;

	with_entry(src, email, all_fn, &out);
	return out;
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

struct store_key *
keyring_key_for(const struct certsrc *src, const char *email, time_t now)
{
	struct keyring *kr = src->kr;
	const struct kr_key *best = NULL, *k;
	struct store_key *c = NULL;
	size_t i, j;

	pthread_mutex_lock(&kr->mtx);
	for (i = 0; i < kr->nkeys; i++) {
		k = &kr->keys[i];
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
	pthread_mutex_unlock(&kr->mtx);
	return c;
}

struct store_key **
keyring_all_keys(const struct certsrc *src, size_t *np)
{
	struct keyring *kr = src->kr;
	struct store_key **v;
	size_t i;

	pthread_mutex_lock(&kr->mtx);
	v = xcalloc(kr->nkeys + 1, sizeof(*v));
	for (i = 0; i < kr->nkeys; i++)
		v[i] = key_dup(kr->keys[i].k);
	*np = kr->nkeys;
	pthread_mutex_unlock(&kr->mtx);
	return v;
}

X509_STORE *
keyring_trust(const struct certsrc *src, STACK_OF(X509_CRL) **crls)
{
	struct keyring *kr = src->kr;
	X509_STORE *xs;
	X509_CRL *crl;
	int i;

	pthread_mutex_lock(&kr->mtx);
	if ((xs = kr->trust) != NULL)
		X509_STORE_up_ref(xs);
	*crls = sk_X509_CRL_new_null();
	for (i = 0; *crls != NULL && kr->crls != NULL &&
	    i < sk_X509_CRL_num(kr->crls); i++) {
		crl = sk_X509_CRL_value(kr->crls, i);
		X509_CRL_up_ref(crl);
		if (sk_X509_CRL_push(*crls, crl) <= 0)
			X509_CRL_free(crl);
	}
	pthread_mutex_unlock(&kr->mtx);
	if (xs == NULL || *crls == NULL) {
		X509_STORE_free(xs);
		sk_X509_CRL_free(*crls);
		*crls = NULL;
		return NULL;
	}
	return xs;
}

int64_t
keyring_harvest(const struct certsrc *src, X509 *x, STACK_OF(X509) *chain,
    int caps)
{
	struct keyring *kr = src->kr;
	struct store_certmeta m;
	struct kr_entry *e;
	char name[96], err[256];
	int64_t id;
	size_t i;

	if (store_certmeta_get(x, &m, err, sizeof(err)) == -1)
		return -1;
	snprintf(name, sizeof(name), "#%s:%d", m.fingerprint, caps);
	pthread_mutex_lock(&kr->mtx);
	e = cache_find(kr, name);
	pthread_mutex_unlock(&kr->mtx);
	if (e != NULL) {
		store_certmeta_free(&m);
		return 0;
	}
	if ((id = store_harvest(src->st, x, chain, caps)) > 0) {
		e = xcalloc(1, sizeof(*e));
		e->name = xstrdup(name);
		e->at = time(NULL);
		pthread_mutex_lock(&kr->mtx);
		for (i = 0; i < m.nemails; i++)
			cache_drop(kr, m.emails[i]);
		cache_put(kr, e);
		pthread_mutex_unlock(&kr->mtx);
	}
	store_certmeta_free(&m);
	return id;
}
