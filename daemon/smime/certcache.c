/* certcache.c: the certificate store cached in memory for the S/MIME path
 * (see certcache.h).  Rules, keys (keys.c) and trust are loaded whole (they
 * are few and change only by the admin); partner certificates are looked up
 * per address on first use and kept, negative answers included, until the
 * store's change counter moves. */
#include "autoconfig.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include "certcache.h"
#include "keys.h"
#include "lib/lib.h"
#include "policy/policy.h"
#include "store/store.h"

#define CC_BUCKETS	1024
#define CC_MAX_ENTRIES	20000		/* then start over */
#define CC_TTL		300		/* re-ask the store after (validity) */
#define CC_CANDIDATES	8		/* certificates tried per address */

/* A cached address, or (name "#fp:caps") a harvest already written
 * (certcache_harvest_done). */
struct cc_entry {
	char		*name;
	X509		*best;		/* NULL: none usable */
	int		 caps;
	int		 unknown;	/* the store could not be asked:
					 * never cached */
	STACK_OF(X509)	*all;		/* NULL until asked for */
	char		 why[160];	/* best refused: why (revoked...) */
	time_t		 at;
	struct cc_entry	*next;
};

struct certcache {
	pthread_mutex_t	 mtx;
	int		 loaded;
	int64_t		 changes;
	struct cc_entry	*tab[CC_BUCKETS];
	size_t		 nentries;
	struct keys	*keys;		/* its own lock */
	X509_STORE	*trust;
	STACK_OF(X509_CRL) *crls;
	struct policy_set *policy;
	enum cms_revocation revocation;
	STACK_OF(X509)	*inter;		/* intermediate CAs, for paths */
	struct cms_memo	*memo;		/* parsed certificates, chain
					 * verdicts: its own lock */
};

/* The bucket of a name (FNV-1a over its ASCII-lowercased bytes). */
static unsigned
cc_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ?
		    *s + 32 : *s)) * 16777619u;
	return h % CC_BUCKETS;
}

/* Free one entry and its certificates. */
static void
entry_free(struct cc_entry *e)
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
cache_clear(struct certcache *cc, int keep_marks)
{
	struct cc_entry *e, **pp;
	size_t i;

	for (i = 0; i < CC_BUCKETS; i++) {
		pp = &cc->tab[i];
		while ((e = *pp) != NULL) {
			if (keep_marks && e->name[0] == '#') {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
			cc->nentries--;
		}
	}
}

/* The entry for name, or NULL.  Locked. */
static struct cc_entry *
cache_find(struct certcache *cc, const char *name)
{
	struct cc_entry *e;

	for (e = cc->tab[cc_hash(name)]; e != NULL; e = e->next)
		if (strcasecmp_ascii(e->name, name) == 0)
			return e;
	return NULL;
}

/* Drop the entry for name.  Locked. */
static void
cache_drop(struct certcache *cc, const char *name)
{
	struct cc_entry **pp, *e;

	for (pp = &cc->tab[cc_hash(name)]; (e = *pp) != NULL; pp = &e->next)
		if (strcasecmp_ascii(e->name, name) == 0) {
			*pp = e->next;
			entry_free(e);
			cc->nentries--;
			return;
		}
}

/* Insert (takes e).  Locked. */
static void
cache_put(struct certcache *cc, struct cc_entry *e)
{
	unsigned h;

	cache_drop(cc, e->name);
	if (cc->nentries >= CC_MAX_ENTRIES)
		cache_clear(cc, 0);
	h = cc_hash(e->name);
	e->next = cc->tab[h];
	cc->tab[h] = e;
	cc->nentries++;
}

/* An empty cache; certcache_sync() fills it. */
struct certcache *
certcache_new(void)
{
	struct certcache *cc = xcalloc(1, sizeof(*cc));

	if (pthread_mutex_init(&cc->mtx, NULL) != 0)
		fatal("pthread_mutex_init");
	cc->changes = -1;
	cc->keys = keys_new();
	if ((cc->memo = cms_memo_new(CMS_MEMO_CERTS, CMS_MEMO_CHAINS)) ==
	    NULL)
		fatal("cms_memo_new");
	return cc;
}

/* Free the cache, its keys and everything it holds. */
void
certcache_free(struct certcache *cc)
{
	if (cc == NULL)
		return;
	cache_clear(cc, 0);
	keys_free(cc->keys);
	X509_STORE_free(cc->trust);
	sk_X509_CRL_pop_free(cc->crls, X509_CRL_free);
	sk_X509_pop_free(cc->inter, X509_free);
	policy_set_free(cc->policy);
	cms_memo_free(cc->memo);
	pthread_mutex_destroy(&cc->mtx);
	free(cc);
}

/* What a reload read from the store, not yet in the cache. */
struct certcache_load {
	int64_t		 changes;
	struct policy_set *ps;
	X509_STORE	*trust;
	STACK_OF(X509_CRL) *crls;
	STACK_OF(X509)	*inter;
};

/* Read rules, trust and keys when the store changed (or always with
 * force), on the calling thread's connection: nothing in the cache but the
 * keys (their own lock) changes until certcache_install(). */
int
certcache_load(struct certcache *cc, struct store *st, int force,
    struct certcache_load **out, char *err, size_t errlen)
{
	struct certcache_load *ld;
	struct policy_rule *rules;
	struct policy_set *ps;
	X509_STORE *trust;
	STACK_OF(X509_CRL) *crls = NULL;
	STACK_OF(X509) *inter = NULL;
	size_t nrules = 0;
	int64_t changes, had;
	int loaded, v;

	*out = NULL;
	if ((changes = store_changes(st)) < 0) {
		snprintf(err, errlen, "store: %s", store_errmsg(st));
		return -1;
	}
	pthread_mutex_lock(&cc->mtx);
	loaded = cc->loaded;
	had = cc->changes;
	pthread_mutex_unlock(&cc->mtx);
	/* a newer node migrated the shared database: what it holds may not
	 * mean what this program reads into it (asked at every check, not
	 * only when the change counter moved: a migration need not bump it) */
	if ((v = store_schema_version(st)) > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "store schema version %d is newer than "
		    "this program knows (%d): not loaded (upgrade this node)",
		    v, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (loaded && !force && changes == had)
		return 0;
	if ((rules = store_policy_load(st, &nrules, err, errlen)) == NULL)
		return -1;
	ps = policy_set_new(rules, nrules, err, errlen);
	store_policy_rules_free(rules, nrules);
	if (ps == NULL)
		return -1;
	if ((trust = store_trust_x509_store(st)) == NULL ||
	    (crls = store_trust_crls(trust)) == NULL ||
	    (inter = store_ca_certs(st)) == NULL) {
		sk_X509_CRL_pop_free(crls, X509_CRL_free);
		X509_STORE_free(trust);
		policy_set_free(ps);
		snprintf(err, errlen, "cannot load the trust anchors");
		return -1;
	}
	/* the store may have gone between the queries: what was read is
	 * then not the whole of it, and the old cache stays */
	if (store_changes(st) < 0) {
		sk_X509_CRL_pop_free(crls, X509_CRL_free);
		sk_X509_pop_free(inter, X509_free);
		X509_STORE_free(trust);
		policy_set_free(ps);
		snprintf(err, errlen, "store: %s", store_errmsg(st));
		return -1;
	}
	keys_load(cc->keys, st);
	ld = xcalloc(1, sizeof(*ld));
	ld->changes = changes;
	ld->ps = ps;
	ld->trust = trust;
	ld->crls = crls;
	ld->inter = inter;
	*out = ld;
	return 1;
}

/* Free what a reload read (when it is not installed). */
void
certcache_load_free(struct certcache_load *ld)
{
	if (ld == NULL)
		return;
	policy_set_free(ld->ps);
	X509_STORE_free(ld->trust);
	sk_X509_CRL_pop_free(ld->crls, X509_CRL_free);
	sk_X509_pop_free(ld->inter, X509_free);
	free(ld);
}

/* Swap what a reload read into the cache (takes ld): from the thread that
 * reads certcache_policy(). */
void
certcache_install(struct certcache *cc, struct certcache_load *ld)
{
	X509_STORE *otrust;
	STACK_OF(X509_CRL) *ocrls;
	STACK_OF(X509) *ointer;
	struct policy_set *ops;

	pthread_mutex_lock(&cc->mtx);
	cache_clear(cc, 1);
	/* anchors, CRLs or OCSP answers may have changed: every chain is
	 * checked again (a certificate revoked since says so at once) */
	cms_memo_forget_chains(cc->memo);
	otrust = cc->trust;
	ocrls = cc->crls;
	ointer = cc->inter;
	ops = cc->policy;
	cc->inter = ld->inter;
	cc->policy = ld->ps;
	cc->trust = ld->trust;
	cc->crls = ld->crls;
	cc->changes = ld->changes;
	cc->loaded = 1;
	pthread_mutex_unlock(&cc->mtx);

	policy_set_free(ops);
	X509_STORE_free(otrust);
	sk_X509_CRL_pop_free(ocrls, X509_CRL_free);
	sk_X509_pop_free(ointer, X509_free);
	free(ld);
}

/* Whether a reload ever succeeded (else there is no policy). */
int
certcache_loaded(struct certcache *cc)
{
	int r;

	pthread_mutex_lock(&cc->mtx);
	r = cc->loaded;
	pthread_mutex_unlock(&cc->mtx);
	return r;
}

/* Reload from the store when it changed (or always with force), on one
 * thread: load and install. */
int
certcache_sync(struct certcache *cc, struct store *st, int force, char *err,
    size_t errlen)
{
	struct certcache_load *ld;
	int r;

	if ((r = certcache_load(cc, st, force, &ld, err, errlen)) == 1)
		certcache_install(cc, ld);
	return r;
}

/* What the engine remembers between messages for this cache's trust
 * (cms_trust.memo); its chain verdicts are forgotten at every reload. */
struct cms_memo *
certcache_memo(struct certcache *cc)
{
	return cc->memo;
}

/* The policy rules of the last sync. */
const struct policy_set *
certcache_policy(struct certcache *cc)
{
	return cc->policy;
}

/* The key set reloaded with the rest. */
struct keys *
certcache_keys(struct certcache *cc)
{
	return cc->keys;
}

/* The certificate ids of one address (store_cert_list). */
struct idlist {
	int64_t	*ids;
	size_t	 n;
};

/* Collect one certificate id (at most 256). */
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
static struct cc_entry *
lookup(struct store *st, const char *email, time_t now)
{
	struct cc_entry *e = xcalloc(1, sizeof(*e));
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
	/* an error reads as "no certificate": ask whether the store is
	 * there, so that an outage is not remembered as an answer */
	if (store_changes(st) < 0) {
		e->unknown = 1;
		X509_free(e->best);
		e->best = NULL;
		snprintf(e->why, sizeof(e->why), "certificate store "
		    "unreachable");
	}
	return e;
}

/* The answer when the store cannot be asked (the event loop asks no
 * store; the store thread fills the cache first). */
static struct cc_entry *
unknown_entry(const char *email, time_t now)
{
	struct cc_entry *e = xcalloc(1, sizeof(*e));

	e->name = xstrdup(email);
	e->at = now;
	e->unknown = 1;
	snprintf(e->why, sizeof(e->why), "certificate not looked up "
	    "(certificate store unreachable)");
	return e;
}

/* Fresh enough: asked recently and the answer still valid. */
static int
entry_fresh(const struct cc_entry *e, time_t now)
{
	if (now - e->at > CC_TTL || now < e->at)
		return 0;
	if (e->best != NULL &&
	    X509_cmp_time(X509_get0_notAfter(e->best), &now) <= 0)
		return 0;
	return 1;
}

/*
 * A certificate to encrypt to must not be revoked, nor (revocation =
 * hard) of unknown status: the chain is checked against the CRLs with the
 * anchors and intermediates of this cache; a refused one is dropped from
 * the entry with the reason (certcache_refused).
 */
static void
check_best(const struct certsrc *src, struct cc_entry *e)
{
	struct cms_trust t;
	char why[sizeof(e->why)], first[sizeof(e->why)] = "";
	int n = 0;

	if (e->best == NULL)
		return;
	memset(&t, 0, sizeof(t));
	if ((t.revocation = certcache_revocation(src->cc)) == CMS_REV_OFF)
		return;
	t.ocsp = certcache_ocsp;
	t.crl_source = certcache_crl_source;
	t.ocsp_arg = (void *)src;
	if ((t.store = certcache_trust(src, &t.crls)) == NULL ||
	    (t.certs = sk_X509_new_null()) == NULL ||
	    certcache_add_intermediates(src, t.certs) == -1) {
		snprintf(e->why, sizeof(e->why), "cannot load the trust "
		    "store to check revocation");
		X509_free(e->best);
		e->best = NULL;
	}
	/* the best one refused: the next in rank, a few at most */
	while (e->best != NULL && cms_cert_status(e->best, &t, why,
	    sizeof(why)) != CMS_CERT_GOOD) {
		if (first[0] == '\0')
			memcpy(first, why, sizeof(first));
		X509_free(e->best);
		e->best = src->st != NULL && ++n < CC_CANDIDATES ?
		    store_cert_candidate(src->st, e->name, time(NULL), n,
		    &e->caps) : NULL;
	}
	if (e->best == NULL && e->why[0] == '\0')
		memcpy(e->why, first, sizeof(e->why));
	X509_STORE_free(t.store);
	sk_X509_CRL_pop_free(t.crls, X509_CRL_free);
	sk_X509_pop_free(t.certs, X509_free);
}

/* The cached entry for email (looked up on a miss); calls fn locked. */
static void
with_entry(const struct certsrc *src, const char *email,
    void (*fn)(const struct cc_entry *, void *), void *arg)
{
	char kb[MAIL_ADDR_MAX];
	struct certcache *cc = src->cc;
	struct cc_entry *e, *old;
	time_t now = time(NULL);

	email = mail_addr_key(email, kb, sizeof(kb));
	pthread_mutex_lock(&cc->mtx);
	/* without a connection (the event loop) what is cached serves, even
	 * past its time, while its certificate is valid */
	if ((e = cache_find(cc, email)) != NULL && (entry_fresh(e, now) ||
	    (src->st == NULL && (e->best == NULL || X509_cmp_time(
	    X509_get0_notAfter(e->best), &now) > 0)))) {
		fn(e, arg);
		pthread_mutex_unlock(&cc->mtx);
		return;
	}
	pthread_mutex_unlock(&cc->mtx);
	if (src->st == NULL)
		e = unknown_entry(email, now);
	else {
		e = lookup(src->st, email, now);
		if (!e->unknown)
			check_best(src, e);
	}
	pthread_mutex_lock(&cc->mtx);
	if (e->unknown) {
		/* the store is away: an old answer is better than none */
		if ((old = cache_find(cc, email)) != NULL &&
		    (old->best == NULL || X509_cmp_time(X509_get0_notAfter(
		    old->best), &now) > 0))
			fn(old, arg);
		else
			fn(e, arg);
		entry_free(e);
	} else {
		fn(e, arg);
		cache_put(cc, e);
	}
	pthread_mutex_unlock(&cc->mtx);
}

/* Whether email has an answer in the cache (fresh, or any with stale). */
int
certcache_cached(struct certcache *cc, const char *email, int stale)
{
	char kb[MAIL_ADDR_MAX];
	struct cc_entry *e;
	time_t now = time(NULL);
	int r;

	email = mail_addr_key(email, kb, sizeof(kb));
	pthread_mutex_lock(&cc->mtx);
	r = (e = cache_find(cc, email)) != NULL && (entry_fresh(e, now) ||
	    stale);
	pthread_mutex_unlock(&cc->mtx);
	return r;
}

/* Look email up on src's connection into the cache (the store thread):
 * 0, or -1 when the store could not be asked. */
int
certcache_fill(const struct certsrc *src, const char *email)
{
	char kb[MAIL_ADDR_MAX];
	struct cc_entry *e;

	email = mail_addr_key(email, kb, sizeof(kb));
	e = lookup(src->st, email, time(NULL));
	if (e->unknown) {
		entry_free(e);
		return -1;
	}
	check_best(src, e);
	pthread_mutex_lock(&src->cc->mtx);
	cache_put(src->cc, e);
	pthread_mutex_unlock(&src->cc->mtx);
	return 0;
}

/* What certcache_cert_for() takes from an entry. */
struct best_arg {
	X509	*x;
	int	 caps;
};

/* Where why_fn copies an entry's reason. */
struct why_arg {
	char	*buf;
	size_t	 len;
};

/* Copy out why an entry's certificate was refused ("" if it was not). */
static void
why_fn(const struct cc_entry *e, void *arg)
{
	struct why_arg *w = arg;

	snprintf(w->buf, w->len, "%s", e->why);
}

/* Copy out an entry's best certificate and its caps. */
static void
best_fn(const struct cc_entry *e, void *arg)
{
	struct best_arg *a = arg;

	if ((a->x = e->best) != NULL)
		X509_up_ref(a->x);
	a->caps = e->caps;
}

/* The certificate to encrypt to for email, through the cache. */
X509 *
certcache_cert_for(const struct certsrc *src, const char *email, int *caps)
{
	struct best_arg a = { NULL, 0 };

	with_entry(src, email, best_fn, &a);
	if (caps != NULL)
		*caps = a.caps;
	return a.x;
}

/* Copy out every certificate of an entry. */
static void
all_fn(const struct cc_entry *e, void *arg)
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

/* Every stored certificate of email, through the cache. */
STACK_OF(X509) *
certcache_certs_of(const struct certsrc *src, const char *email)
{
	STACK_OF(X509) *out = NULL;

	with_entry(src, email, all_fn, &out);
	return out;
}

/* New references to the trust anchors and the CRLs. */
X509_STORE *
certcache_trust(const struct certsrc *src, STACK_OF(X509_CRL) **crls)
{
	struct certcache *cc = src->cc;
	X509_STORE *xs;
	X509_CRL *crl;
	int i;

	pthread_mutex_lock(&cc->mtx);
	if ((xs = cc->trust) != NULL)
		X509_STORE_up_ref(xs);
	*crls = sk_X509_CRL_new_null();
	for (i = 0; *crls != NULL && cc->crls != NULL &&
	    i < sk_X509_CRL_num(cc->crls); i++) {
		crl = sk_X509_CRL_value(cc->crls, i);
		X509_CRL_up_ref(crl);
		if (sk_X509_CRL_push(*crls, crl) <= 0)
			X509_CRL_free(crl);
	}
	pthread_mutex_unlock(&cc->mtx);
	if (xs == NULL || *crls == NULL) {
		X509_STORE_free(xs);
		sk_X509_CRL_free(*crls);
		*crls = NULL;
		return NULL;
	}
	return xs;
}

/* The name of the mark of a written harvest. */
static void
mark_name(char *buf, size_t len, const char *fingerprint, int caps)
{
	snprintf(buf, len, "#%s:%d", fingerprint, caps);
}

/* Whether a harvest of this certificate with these caps was written. */
int
certcache_harvested(struct certcache *cc, const char *fingerprint, int caps)
{
	char name[96];
	int found;

	mark_name(name, sizeof(name), fingerprint, caps);
	pthread_mutex_lock(&cc->mtx);
	found = cache_find(cc, name) != NULL;
	pthread_mutex_unlock(&cc->mtx);
	return found;
}

/* Mark a written harvest and drop what is cached for its addresses. */
void
certcache_harvest_done(struct certcache *cc, const char *fingerprint,
    int caps, char *const *emails, size_t nemails)
{
	struct cc_entry *e = xcalloc(1, sizeof(*e));
	char name[96];
	size_t i;

	mark_name(name, sizeof(name), fingerprint, caps);
	e->name = xstrdup(name);
	e->at = time(NULL);
	pthread_mutex_lock(&cc->mtx);
	for (i = 0; i < nemails; i++)
		cache_drop(cc, emails[i]);
	cache_put(cc, e);
	pthread_mutex_unlock(&cc->mtx);
}

/* x's fingerprint (keyfile_fingerprint), remembered by object in the
 * memo: the same certificate objects come with every message. */
int
certcache_fingerprint(struct certcache *cc, X509 *x, char fp[65])
{
	unsigned char md[32];

	if (cc->memo == NULL || cms_memo_fp(cc->memo, x, md) == -1)
		return keyfile_fingerprint(x, fp);
	keyfile_hex(md, fp);
	return 0;
}

/* Whether CA x was offered to the store lately; marks it offered if not. */
int
certcache_ca_offered(struct certcache *cc, X509 *x, time_t now)
{
	char fp[65], name[72];
	struct cc_entry *e;
	int offered;

	if (certcache_fingerprint(cc, x, fp) == -1)
		return 0;
	snprintf(name, sizeof(name), "#ca:%s", fp);
	pthread_mutex_lock(&cc->mtx);
	e = cache_find(cc, name);
	offered = e != NULL && now >= e->at && now - e->at < CERTCACHE_CA_RETRY;
	if (!offered) {
		e = xcalloc(1, sizeof(*e));
		e->name = xstrdup(name);
		e->at = now;
		cache_put(cc, e);
	}
	pthread_mutex_unlock(&cc->mtx);
	return offered;
}

/* Drop the cached entry of email: the next question asks the store. */
void
certcache_forget(struct certcache *cc, const char *email)
{
	char kb[MAIL_ADDR_MAX];

	email = mail_addr_key(email, kb, sizeof(kb));
	pthread_mutex_lock(&cc->mtx);
	cache_drop(cc, email);
	pthread_mutex_unlock(&cc->mtx);
}

/* The config's `revocation`, for the transforms' chain checks. */
void
certcache_set_revocation(struct certcache *cc, enum config_revocation r)
{
	pthread_mutex_lock(&cc->mtx);
	cc->revocation = r == CONFIG_REV_HARD ? CMS_REV_HARD :
	    r == CONFIG_REV_OFF ? CMS_REV_OFF : CMS_REV_SOFT;
	pthread_mutex_unlock(&cc->mtx);
}

enum cms_revocation
certcache_revocation(struct certcache *cc)
{
	enum cms_revocation r;

	pthread_mutex_lock(&cc->mtx);
	r = cc->revocation;
	pthread_mutex_unlock(&cc->mtx);
	return r;
}

/* Append the stored intermediate CAs to sk (new references): untrusted
 * certificates to build paths with when a message lacks them.  0 or -1. */
int
certcache_add_intermediates(const struct certsrc *src, STACK_OF(X509) *sk)
{
	struct certcache *cc = src->cc;
	int i, rc = 0;

	pthread_mutex_lock(&cc->mtx);
	for (i = 0; cc->inter != NULL && i < sk_X509_num(cc->inter); i++)
		if (X509_add_cert(sk, sk_X509_value(cc->inter, i),
		    X509_ADD_FLAG_UP_REF) != 1)
			rc = -1;
	pthread_mutex_unlock(&cc->mtx);
	return rc;
}

/* Why email's certificate was refused for encryption (1, reason in buf),
 * or 0 when none was. */
int
certcache_refused(const struct certsrc *src, const char *email, char *buf,
    size_t len)
{
	struct why_arg w = { buf, len };

	if (len == 0)
		return 0;
	with_entry(src, email, why_fn, &w);
	return buf[0] != '\0';
}

/* The stored OCSP answer about x, if it counts (certcache.h). */
enum cms_ocsp
certcache_ocsp_stored(struct store *st, X509 *x, X509 *issuer,
    struct store_ocsp *o)
{
	char key[65];
	time_t now = time(NULL);

	if (st == NULL || cms_ocsp_key(x, issuer, key) == -1 ||
	    store_ocsp_get(st, key, o) != 1)
		return CMS_OCSP_NONE;
	if (o->status == 1)
		return CMS_OCSP_REVOKED;
	if (o->status == 0 && (o->next_update == 0 ? now - o->this_update <
	    CERTCACHE_OCSP_MAXAGE : now < o->next_update))
		return CMS_OCSP_GOOD;
	return CMS_OCSP_NONE;
}

/* cms_trust.ocsp: the stored OCSP answer about x (arg: a const struct
 * certsrc, its thread's connection), its responder into buf. */
enum cms_ocsp
certcache_ocsp(X509 *x, X509 *issuer, char *buf, size_t len, void *arg)
{
	const struct certsrc *src = arg;
	struct store_ocsp o;
	enum cms_ocsp r;

	if ((r = certcache_ocsp_stored(src->st, x, issuer, &o)) !=
	    CMS_OCSP_NONE && len > 0)
		snprintf(buf, len, "%s", o.source);
	return r;
}

/* cms_trust.crl_source: the URL a stored CRL came from ("" when it was
 * imported). */
void
certcache_crl_source(X509_CRL *crl, char *buf, size_t len, void *arg)
{
	const struct certsrc *src = arg;

	if (src->st == NULL || store_crl_source(src->st, crl, buf, len) != 1 ||
	    strcmp(buf, "import") == 0)
		snprintf(buf, len, "%s", "");
}
