/* harvest.c: harvested signer certificates, collected on the worker
 * threads and written by one thread (see harvest.h). */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certcache.h"
#include "crlfetch.h"
#include "harvest.h"
#include "lib/lib.h"
#include "store/store.h"

/* One signer waiting to be stored. */
struct harvest_item {
	X509		*x;
	STACK_OF(X509)	*chain;		/* NULL: none came with it */
	int		 caps;
	int		 tries;		/* failed writes */
};

struct harvest {
	struct harvest_item *v;
	size_t		 n;
};

/* An empty collection. */
struct harvest *
harvest_new(void)
{
	return xcalloc(1, sizeof(struct harvest));
}

/* Drop the collected certificates, keep the collection. */
static void
harvest_clear(struct harvest *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		X509_free(h->v[i].x);
		sk_X509_pop_free(h->v[i].chain, X509_free);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

/* How many signers wait in the collection. */
size_t
harvest_count(const struct harvest *h)
{
	return h->n;
}

/*
 * Move what src holds to the end of dst, keeping at most max in dst: the
 * oldest go first.  The number dropped.
 */
size_t
harvest_move(struct harvest *dst, struct harvest *src, size_t max)
{
	size_t i, drop = 0;

	if (src->n > 0) {
		dst->v = xreallocarray(dst->v, dst->n + src->n,
		    sizeof(*dst->v));
		for (i = 0; i < src->n; i++)
			dst->v[dst->n++] = src->v[i];
		free(src->v);
		src->v = NULL;
		src->n = 0;
	}
	if (dst->n > max) {
		drop = dst->n - max;
		for (i = 0; i < drop; i++) {
			X509_free(dst->v[i].x);
			sk_X509_pop_free(dst->v[i].chain, X509_free);
		}
		memmove(dst->v, dst->v + drop, max * sizeof(*dst->v));
		dst->n = max;
	}
	return drop;
}

/* Free a collection and what it still holds. */
void
harvest_free(struct harvest *h)
{
	if (h == NULL)
		return;
	harvest_clear(h);
	free(h);
}

/* Keep new references to x and its chain for harvest_flush(). */
static void
harvest_add(struct harvest *h, X509 *x, STACK_OF(X509) *chain, int caps)
{
	struct harvest_item *it;

	h->v = xreallocarray(h->v, h->n + 1, sizeof(*h->v));
	it = &h->v[h->n++];
	X509_up_ref(x);
	it->x = x;
	it->chain = NULL;
	if (chain != NULL && (it->chain = X509_chain_up_ref(chain)) == NULL)
		fatalx("X509_chain_up_ref");
	it->caps = caps;
}

/* Collect the signer on a worker thread, or store it now. */
int64_t
harvest_signer(const struct certsrc *src, X509 *x, STACK_OF(X509) *chain,
    int caps)
{
	if (src->harvest != NULL) {
		harvest_add(src->harvest, x, chain, caps);
		return 0;
	}
	return harvest_store(src->cc, src->st, x, chain, caps);
}

void
harvest_cas(struct store *st, STACK_OF(X509) *chain)
{
	STACK_OF(X509) *one;
	char err[256], why[128];
	int64_t id;
	int i, existed;
	X509 *c;

	for (i = 0; i < sk_X509_num(chain); i++) {
		c = sk_X509_value(chain, i);
		if (X509_check_ca(c) < 1 || X509_check_issued(c, c) ==
		    X509_V_OK || store_ca_chains(st, c, chain, why,
		    sizeof(why)) == -1)
			continue;
		if ((one = sk_X509_new_null()) == NULL ||
		    X509_add_cert(one, c, X509_ADD_FLAG_UP_REF) != 1) {
			sk_X509_pop_free(one, X509_free);
			continue;
		}
		store_cert_add(st, one, STORE_SRC_HARVEST, 0, &id, &existed,
		    err, sizeof(err));
		sk_X509_pop_free(one, X509_free);
	}
}

/* Write one harvested signer unless the cache saw it written. */
int64_t
harvest_store(struct certcache *cc, struct store *st, X509 *x,
    STACK_OF(X509) *chain, int caps)
{
	struct store_certmeta m;
	char err[256], fp[65];
	int64_t id;

	/* the fingerprint alone first: most signers were written already,
	 * and the rest of the metadata (addresses, key usage) is dearer */
	if (certcache_fingerprint(cc, x, fp) == 0 &&
	    certcache_harvested(cc, fp, caps))
		return 0;
	if (store_certmeta_get(x, &m, err, sizeof(err)) == -1)
		return -1;
	if (certcache_harvested(cc, m.fingerprint, caps)) {
		store_certmeta_free(&m);
		return 0;
	}
	if ((id = store_harvest(st, x, chain, caps)) > 0) {
		certcache_harvest_done(cc, m.fingerprint, caps, m.emails,
		    m.nemails);
		harvest_cas(st, chain);
	}
	store_certmeta_free(&m);
	return id;
}

/* The CRL distribution points of the collected signers and of the
 * certificates that came with them. */
void
harvest_urls(const struct harvest *h, char ***urls, size_t *n)
{
	size_t i;
	int k;

	for (i = 0; i < h->n; i++) {
		crlfetch_urls_of(h->v[i].x, urls, n);
		for (k = 0; k < sk_X509_num(h->v[i].chain); k++)
			crlfetch_urls_of(sk_X509_value(h->v[i].chain, k), urls,
			    n);
	}
}

/* Store every collected signer, in order, and empty the collection. */
int64_t
harvest_flush(struct harvest *h, struct certcache *cc, struct store *st)
{
	int64_t id, last = 0;
	size_t i;

	for (i = 0; i < h->n; i++) {
		id = harvest_store(cc, st, h->v[i].x, h->v[i].chain,
		    h->v[i].caps);
		if (id > 0 || (id == -1 && last == 0))
			last = id;
	}
	harvest_clear(h);
	return last;
}

/* Store the collected signers in order up to the first that fails: it and
 * those after stay, unless it failed maxtries times (then it is dropped). */
int64_t
harvest_flush_keep(struct harvest *h, struct certcache *cc,
    struct store *st, int maxtries, size_t *dropped)
{
	int64_t id, last = 0;
	size_t i, done;

	*dropped = 0;
	for (i = 0; i < h->n; i++) {
		id = harvest_store(cc, st, h->v[i].x, h->v[i].chain,
		    h->v[i].caps);
		if (id == -1 && ++h->v[i].tries < maxtries)
			break;
		if (id == -1)
			(*dropped)++;
		else if (id > 0)
			last = id;
		X509_free(h->v[i].x);
		sk_X509_pop_free(h->v[i].chain, X509_free);
	}
	done = i;
	memmove(h->v, h->v + done, (h->n - done) * sizeof(*h->v));
	h->n -= done;
	return last;
}
