/* cms_memo.c: what cms_verify() may remember between messages, for its
 * owner (the certificate cache, a benchmark): certificates parsed from
 * their DER, and the verdicts of chain validation.  Bounded, shared by
 * threads (one mutex), least recently used entries evicted first. */
#include "autoconfig.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cms.h"

#define MEMO_BUCKETS	1024		/* power of two */

/* What an entry holds. */
enum memo_kind {
	MEMO_CERT = 1,		/* key: SHA-256 of the DER */
	MEMO_CHAIN,		/* key: cms.c's chain key */
	MEMO_FP,		/* key: the X509 object's address, held */
	MEMO_KINDS
};

/* One remembered thing, keyed by a SHA-256 (and its kind). */
struct memo_ent {
	unsigned char	 key[32];
	enum memo_kind	 kind;
	X509		*cert;		/* MEMO_CERT: parsed, shared;
					 * MEMO_FP: the object, held so that
					 * its address names it */
	unsigned char	 fp[32];	/* MEMO_FP: its fingerprint */
	time_t		 until;		/* MEMO_CHAIN: good before this */
	char		*text;		/* MEMO_CHAIN: how revocation went */
	struct cms_link	 links[CMS_UNDECIDED_MAX]; /* MEMO_CHAIN: links whose
					 * revocation stayed unknown (soft) */
	size_t		 nlinks;
	struct memo_ent	*hnext;		/* bucket chain */
	struct memo_ent	*prev, *next;	/* use order, most recent first */
};

struct cms_memo {
	pthread_mutex_t	 mtx;
	EVP_MD		*sha256;	/* fetched once */
	struct memo_ent	*tab[MEMO_BUCKETS];
	struct memo_ent	*head, *tail;	/* use order, per kind mixed */
	size_t		 n[MEMO_KINDS];	/* entries per kind */
	size_t		 max[MEMO_KINDS];
	uint64_t	 hits[MEMO_KINDS], misses[MEMO_KINDS];
	uint64_t	 gen;		/* forget_chains calls: in chain keys */
};

/* The bucket of a key: its first bytes (it is a digest already). */
static unsigned
memo_bucket(const unsigned char *key)
{
	return ((unsigned)key[0] | (unsigned)key[1] << 8) &
	    (MEMO_BUCKETS - 1);
}

/* Release n links (n becomes 0): here, below cms.c, which uses it too. */
void
cms_links_free(struct cms_link *l, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		X509_free(l[i].cert);
		X509_free(l[i].issuer);
		l[i].cert = l[i].issuer = NULL;
	}
	*n = 0;
}

struct cms_memo *
cms_memo_new(size_t maxcerts, size_t maxchains)
{
	struct cms_memo *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if (pthread_mutex_init(&m->mtx, NULL) != 0 ||
	    (m->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		free(m);
		return NULL;
	}
	m->max[MEMO_CERT] = maxcerts;
	m->max[MEMO_CHAIN] = maxchains;
	m->max[MEMO_FP] = maxcerts;
	return m;
}

/* Unlink an entry from its bucket and the use order, and free it. */
static void
memo_drop(struct cms_memo *m, struct memo_ent *e)
{
	struct memo_ent **pp = &m->tab[memo_bucket(e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		m->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		m->tail = e->prev;
	m->n[e->kind]--;
	cms_links_free(e->links, &e->nlinks);
	X509_free(e->cert);
	free(e->text);
	free(e);
}

/* Drop every entry of a kind (0: all). */
static void
memo_drop_kind(struct cms_memo *m, int kind)
{
	struct memo_ent *e, *next;

	for (e = m->head; e != NULL; e = next) {
		next = e->next;
		if (kind == 0 || (int)e->kind == kind)
			memo_drop(m, e);
	}
}

void
cms_memo_free(struct cms_memo *m)
{
	if (m == NULL)
		return;
	memo_drop_kind(m, 0);
	EVP_MD_free(m->sha256);
	pthread_mutex_destroy(&m->mtx);
	free(m);
}

void
cms_memo_forget_chains(struct cms_memo *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mtx);
	memo_drop_kind(m, MEMO_CHAIN);
	memo_drop_kind(m, MEMO_FP);	/* lets the old trust's objects go */
	m->gen++;
	pthread_mutex_unlock(&m->mtx);
}

/* How many times the chains were forgotten: a check begun before a change
 * puts its verdict under a key nobody looks up after it, even when a new
 * trust store happens to get the freed one's address. */
uint64_t
cms_memo_gen(struct cms_memo *m)
{
	uint64_t g;

	if (m == NULL)
		return 0;
	pthread_mutex_lock(&m->mtx);
	g = m->gen;
	pthread_mutex_unlock(&m->mtx);
	return g;
}

/* The entry for key, made the most recent; NULL if none.  Locked. */
static struct memo_ent *
memo_find(struct cms_memo *m, const unsigned char *key, enum memo_kind kind)
{
	struct memo_ent *e;

	for (e = m->tab[memo_bucket(key)]; e != NULL; e = e->hnext)
		if (e->kind == kind && memcmp(e->key, key, 32) == 0)
			break;
	if (e == NULL || e == m->head)
		return e;
	e->prev->next = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		m->tail = e->prev;
	e->prev = NULL;
	e->next = m->head;
	m->head->prev = e;
	m->head = e;
	return e;
}

/* Add an entry as the most recent, evicting the least recent of its kind
 * when the kind is full.  Locked. */
static void
memo_add(struct cms_memo *m, struct memo_ent *e)
{
	struct memo_ent *old;
	unsigned b = memo_bucket(e->key);

	if (m->n[e->kind] >= m->max[e->kind])
		for (old = m->tail; old != NULL; old = old->prev)
			if (old->kind == e->kind) {
				memo_drop(m, old);
				break;
			}
	e->hnext = m->tab[b];
	m->tab[b] = e;
	e->prev = NULL;
	e->next = m->head;
	if (m->head != NULL)
		m->head->prev = e;
	else
		m->tail = e;
	m->head = e;
	m->n[e->kind]++;
}

int
cms_memo_digest(struct cms_memo *m, const void *p, size_t n,
    unsigned char key[32])
{
	unsigned int len = 0;

	return EVP_Digest(p, n, key, &len, m->sha256, NULL) == 1 &&
	    len == 32 ? 0 : -1;
}

/* The key of an object's address: its bytes, then a hash of them so
 * that the bucket (the first bytes) varies. */
static void
memo_ptr_key(const void *x, unsigned char key[32])
{
	uintptr_t v = (uintptr_t)x, h = v * 0x9e3779b97f4a7c15ull;

	memset(key, 0, 32);
	memcpy(key, &h, sizeof(h));
	memcpy(key + 16, &v, sizeof(v));
}

/* Certificates' fingerprints are asked for every message (the chain
 * key), for the same objects (the message's from the memo, the trust's
 * from the certificate cache): remembered by address, the object held. */
int
cms_memo_fp(struct cms_memo *m, X509 *x, unsigned char fp[32])
{
	unsigned char key[32];
	struct memo_ent *e;
	unsigned int len = 0;

	memo_ptr_key(x, key);
	pthread_mutex_lock(&m->mtx);
	if ((e = memo_find(m, key, MEMO_FP)) != NULL) {
		memcpy(fp, e->fp, 32);
		m->hits[MEMO_FP]++;
		pthread_mutex_unlock(&m->mtx);
		return 0;
	}
	m->misses[MEMO_FP]++;
	pthread_mutex_unlock(&m->mtx);
	if (X509_digest(x, m->sha256, fp, &len) != 1 || len != 32)
		return -1;
	if (m->max[MEMO_FP] == 0 || (e = calloc(1, sizeof(*e))) == NULL)
		return 0;
	memcpy(e->key, key, 32);
	memcpy(e->fp, fp, 32);
	e->kind = MEMO_FP;
	e->cert = x;
	X509_up_ref(x);
	pthread_mutex_lock(&m->mtx);
	if (memo_find(m, key, MEMO_FP) != NULL) {	/* another thread won */
		X509_free(e->cert);
		free(e);
	} else
		memo_add(m, e);
	pthread_mutex_unlock(&m->mtx);
	return 0;
}

X509 *
cms_memo_cert(struct cms_memo *m, const unsigned char *der, size_t len)
{
	unsigned char key[32];
	const unsigned char *p = der;
	struct memo_ent *e;
	X509 *x;

	if (len > LONG_MAX || cms_memo_digest(m, der, len, key) == -1)
		return NULL;
	pthread_mutex_lock(&m->mtx);
	if ((e = memo_find(m, key, MEMO_CERT)) != NULL) {
		x = e->cert;
		X509_up_ref(x);
		m->hits[MEMO_CERT]++;
		pthread_mutex_unlock(&m->mtx);
		return x;
	}
	m->misses[MEMO_CERT]++;
	pthread_mutex_unlock(&m->mtx);
	/* Parsed outside the lock; only what parses whole is remembered. */
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		X509_free(x);
		return NULL;
	}
	if (m->max[MEMO_CERT] == 0 || (e = calloc(1, sizeof(*e))) == NULL)
		return x;
	memcpy(e->key, key, 32);
	e->kind = MEMO_CERT;
	e->cert = x;
	X509_up_ref(x);
	pthread_mutex_lock(&m->mtx);
	if (memo_find(m, key, MEMO_CERT) != NULL) {	/* another thread won */
		X509_free(e->cert);
		free(e);
	} else
		memo_add(m, e);
	pthread_mutex_unlock(&m->mtx);
	return x;
}

/* Copy n links into dst, each a new reference. */
static void
memo_links_copy(struct cms_link *dst, const struct cms_link *src, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		dst[i] = src[i];
		X509_up_ref(dst[i].cert);
		if (dst[i].issuer != NULL)
			X509_up_ref(dst[i].issuer);
	}
}

int
cms_memo_chain_get(struct cms_memo *m, const unsigned char key[32],
    char *text, size_t textlen, struct cms_link *links, size_t *nlinks)
{
	struct memo_ent *e;
	int r = 0;

	pthread_mutex_lock(&m->mtx);
	if ((e = memo_find(m, key, MEMO_CHAIN)) != NULL) {
		if (time(NULL) < e->until &&
		    *nlinks + e->nlinks <= CMS_UNDECIDED_MAX) {
			snprintf(text, textlen, "%s", e->text);
			memo_links_copy(links + *nlinks, e->links, e->nlinks);
			*nlinks += e->nlinks;
			r = 1;
		} else if (time(NULL) >= e->until)
			memo_drop(m, e);
	}
	if (r)
		m->hits[MEMO_CHAIN]++;
	else
		m->misses[MEMO_CHAIN]++;
	pthread_mutex_unlock(&m->mtx);
	return r;
}

void
cms_memo_chain_put(struct cms_memo *m, const unsigned char key[32],
    const char *text, const struct cms_link *links, size_t nlinks,
    time_t until)
{
	struct memo_ent *e, *old;

	if (m->max[MEMO_CHAIN] == 0 || until <= time(NULL) ||
	    nlinks > CMS_UNDECIDED_MAX || (e = calloc(1, sizeof(*e))) == NULL)
		return;
	if ((e->text = strdup(text)) == NULL) {
		free(e);
		return;
	}
	memcpy(e->key, key, 32);
	e->kind = MEMO_CHAIN;
	e->until = until;
	memo_links_copy(e->links, links, nlinks);
	e->nlinks = nlinks;
	pthread_mutex_lock(&m->mtx);
	if ((old = memo_find(m, key, MEMO_CHAIN)) != NULL)
		memo_drop(m, old);
	memo_add(m, e);
	pthread_mutex_unlock(&m->mtx);
}

void
cms_memo_stats(struct cms_memo *m, struct cms_memo_stats *st)
{
	pthread_mutex_lock(&m->mtx);
	st->cert_hits = m->hits[MEMO_CERT];
	st->cert_misses = m->misses[MEMO_CERT];
	st->chain_hits = m->hits[MEMO_CHAIN];
	st->chain_misses = m->misses[MEMO_CHAIN];
	st->ncerts = m->n[MEMO_CERT];
	st->nchains = m->n[MEMO_CHAIN];
	pthread_mutex_unlock(&m->mtx);
}
