/* smimea.c: recipient certificates from SMIMEA records (see smimea.h).
 *
 * The answer is the attacker's to write: it counts only when DNSSEC
 * validated it, and then only a full certificate (selector 0, matching
 * type 0: a digest or a bare key gives nothing to encrypt to) of bounded
 * size that parses to its last octet, is valid now, is no CA, and may be
 * used for S/MIME encryption (store_certmeta's can_encrypt: key usage and
 * extended key usage).  Usage 3 (DANE-EE) takes the certificate as the DNS
 * binds it to the address, so it is stored for that address alone and
 * never for the addresses it names (else a zone could claim anyone's mail).
 * Usages 0, 1 and 2 (PKIX) ask more: the certificate must name the address
 * and chain to one of our trust anchors (store_ca_chains, as harvested and
 * imported CAs).  Revocation is checked where every cached certificate is,
 * when the cache picks it (certcache.c).  The loop asks DNS and checks the
 * records; the chain check and the write are a job of the store thread
 * (storeq_call), and the lookup ends (its waits are called) when it is
 * over, stored or not. */
#include "autoconfig.h"

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/base/base.h"
#include "certcache.h"
#include "lib/lib.h"
#include "smimea.h"
#include "storeq.h"
#include "store/store.h"

#define SMIMEA_MAX_LOOKUPS	128	/* in flight; more: decided at once */
#define SMIMEA_MAX_RECORDS	8	/* more in one answer: none is used */
#define SMIMEA_MAX_CERT		16384	/* octets of one certificate */
#define SMIMEA_ADDR_MAX		320	/* longer addresses are not looked up */
#define SMIMEA_MIN_TTL		300	/* a certificate found serves at least
					 * this long: RCPT to end of DATA */
#define SMIMEA_MAX_TTL		86400
#define SMIMEA_NEG_MAX		256	/* addresses that gave nothing */

struct smimea_lookup;
struct sm_job;

struct smimea_wait {
	struct smimea_lookup	*lk;		/* NULL: over, or abandoned */
	struct event		*ev;		/* calls cb from the loop */
	smimea_cb		*cb;
	void			*arg;
	TAILQ_ENTRY(smimea_wait) entry;
};

/* One query and whoever waits for it. */
struct smimea_lookup {
	struct smimea		*sm;
	char			*addr;
	uint64_t		 sessid;	/* the first asker's (logs) */
	struct dns_query	*q;
	struct sm_job		*job;		/* being stored */
	struct event		*late;		/* ... for SMIMEA_STORE_MS */
	TAILQ_HEAD(, smimea_wait) waits;
	TAILQ_ENTRY(smimea_lookup) entry;
};

/* An address that recently gave nothing. */
struct smimea_neg {
	char			*addr;
	time_t			 until;
};

struct smimea {
	struct event_base	*base;
	struct certcache	*cc;
	struct storeq		*sq;
	struct dns		*dns;		/* NULL: no lookups */
	int			 on;		/* cert_lookup = smimea */
	char			*resolver, *anchor;	/* dns was made for */
	TAILQ_HEAD(, smimea_lookup) lookups;
	size_t			 nlookups;
	struct smimea_neg	 neg[SMIMEA_NEG_MAX];
	size_t			 nextneg;	/* the slot to reuse next */
};

/* Whether addr gave nothing a short while ago. */
static int
neg_has(struct smimea *sm, const char *addr, time_t now)
{
	size_t i;

	for (i = 0; i < SMIMEA_NEG_MAX; i++)
		if (sm->neg[i].addr != NULL && sm->neg[i].until > now &&
		    strcmp(sm->neg[i].addr, addr) == 0)
			return 1;
	return 0;
}

/* Remember that addr gave nothing (the oldest entry makes room). */
static void
neg_add(struct smimea *sm, const char *addr, time_t now)
{
	struct smimea_neg *n = &sm->neg[sm->nextneg];

	sm->nextneg = (sm->nextneg + 1) % SMIMEA_NEG_MAX;
	free(n->addr);
	n->addr = xstrdup(addr);
	n->until = now + SMIMEA_NEG_TTL;
}

/* Forget every address that gave nothing. */
static void
neg_clear(struct smimea *sm)
{
	size_t i;

	for (i = 0; i < SMIMEA_NEG_MAX; i++) {
		free(sm->neg[i].addr);
		sm->neg[i].addr = NULL;
	}
}

/* Loop callback of a wait whose lookup is over: call it, free it. */
static void
wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smimea_wait *w = arg;

	(void)fd;
	(void)what;
	w->cb(w->arg);
	event_free(w->ev);
	free(w);
}

static void sm_job_detach(struct sm_job *);

/* Free a lookup (its query cancelled); its waits must be gone. */
static void
lookup_free(struct smimea_lookup *lk)
{
	struct smimea *sm = lk->sm;

	if (lk->job != NULL)
		sm_job_detach(lk->job);
	if (lk->late != NULL)
		event_free(lk->late);
	dns_cancel(lk->q);
	TAILQ_REMOVE(&sm->lookups, lk, entry);
	sm->nlookups--;
	free(lk->addr);
	free(lk);
}

/* The lookup is over: every wait is called back from the loop. */
static void
lookup_end(struct smimea_lookup *lk)
{
	struct smimea_wait *w;

	while ((w = TAILQ_FIRST(&lk->waits)) != NULL) {
		TAILQ_REMOVE(&lk->waits, w, entry);
		w->lk = NULL;
		event_active(w->ev, 0, 0);
	}
	lookup_free(lk);
}

/*
 * Whether x, from a record of this usage, is a certificate we may encrypt
 * to for addr, as far as the loop can tell (the chain to our anchors is
 * the store thread's to check): 0, or -1 with the reason in why.
 */
static int
cert_check(X509 *x, int usage, const char *addr, char *why, size_t whylen)
{
	struct store_certmeta m;
	time_t now = time(NULL);
	char *a;
	size_t i;
	int named = 0, rc = -1;

	if (store_certmeta_get(x, &m, why, whylen) == -1)
		return -1;
	a = store_email_norm(addr);
	for (i = 0; i < m.nemails; i++)
		named |= strcmp(m.emails[i], a) == 0;
	if (X509_get_extension_flags(x) & EXFLAG_CA)
		snprintf(why, whylen, "a CA certificate (%.100s)%s", m.subject,
		    usage == 0 || usage == 2 ? ", a trust anchor constraint "
		    "without the recipient's certificate" : "");
	else if (m.not_before > now || m.not_after < now)
		snprintf(why, whylen, "not valid now (%.100s)", m.subject);
	else if (!m.can_encrypt)
		snprintf(why, whylen, "not for S/MIME encryption: key usage "
		    "or extended key usage (%.100s)", m.subject);
	else if (usage != 3 && !named)
		snprintf(why, whylen, "usage %d and the certificate "
		    "(%.100s) does not name %s", usage, m.subject, a);
	else
		rc = 0;
	free(a);
	store_certmeta_free(&m);
	return rc;
}

/* The certificate of one record, if it is one; NULL with why. */
static X509 *
rec_cert(const struct dns_tlsa *t, char *why, size_t whylen)
{
	const unsigned char *p = t->data;
	X509 *x;

	if (t->usage > 3) {
		snprintf(why, whylen, "unknown usage %d", t->usage);
		return NULL;
	}
	if (t->selector != 0 || t->mtype != 0) {
		snprintf(why, whylen, "selector %d, matching type %d: no "
		    "certificate in it (only 0 0 gives one)", t->selector,
		    t->mtype);
		return NULL;
	}
	if (t->len > SMIMEA_MAX_CERT) {
		snprintf(why, whylen, "certificate of %zu octets (at most %d)",
		    t->len, SMIMEA_MAX_CERT);
		return NULL;
	}
	if ((x = d2i_X509(NULL, &p, (long)t->len)) == NULL ||
	    p != t->data + t->len) {
		X509_free(x);
		snprintf(why, whylen, "not a DER certificate");
		return NULL;
	}
	return x;
}

/* The usable certificates of an answer, for the store thread; what came
 * of each. */
struct sm_cand {
	X509		*x;
	int		 usage;
	size_t		 rec;		/* its record, from 0 */
	int64_t		 id;		/* stored as, or -1 */
	char		 why[300];
};

struct sm_job {
	struct smimea		*sm;
	struct smimea_lookup	*lk;		/* NULL: nobody waits now */
	char			*addr;
	uint64_t		 sessid;
	int64_t			 expires;
	struct sm_cand		 c[SMIMEA_MAX_RECORDS];
	size_t			 n;
	int			 ran;		/* the store was asked */
};

/* The lookup went away: the job ends without it. */
static void
sm_job_detach(struct sm_job *j)
{
	j->lk = NULL;
}

static void
sm_job_free(struct sm_job *j)
{
	size_t i;

	for (i = 0; i < j->n; i++)
		X509_free(j->c[i].x);
	free(j->addr);
	free(j);
}

/* Store thread: the PKIX usages chain to an anchor; store each. */
static int
sm_run(void *arg, struct store *st)
{
	struct sm_job *j = arg;
	struct sm_cand *c;
	size_t i;
	int rc = 0;

	for (i = 0; i < j->n; i++) {
		c = &j->c[i];
		c->id = -1;
		if (st == NULL) {
			snprintf(c->why, sizeof(c->why), "could not store: "
			    "the store is unreachable");
			rc = -1;
		} else if (c->usage != 3 && store_ca_chains(st, c->x, NULL,
		    c->why, sizeof(c->why)) == -1)
			;               /* why says it */
		else if ((c->id = store_smimea_add(st, c->x, j->addr,
		    j->expires, c->why, sizeof(c->why))) == -1)
			rc = -1;
	}
	j->ran = 1;
	return rc;
}

/* Loop: what the store thread did; the lookup is over. */
static void
sm_done(void *arg, int ok)
{
	struct sm_job *j = arg;
	struct smimea_lookup *lk = j->lk;
	unsigned long long sid = (unsigned long long)j->sessid;
	char until[32];
	size_t i, stored = 0, unstored = 0;

	(void)ok;               /* each candidate says */
	store_time_str(j->expires, until, sizeof(until));
	for (i = 0; i < j->n; i++) {
		if (j->c[i].id == -1) {
			if (!j->ran)
				snprintf(j->c[i].why, sizeof(j->c[i].why),
				    "could not store: the store is "
				    "unreachable");
			unstored += strncmp(j->c[i].why, "could not store",
			    15) == 0;
			log_info("session id=%016llx smimea: record %zu "
			    "(usage %d) for <%s> not used: %s", sid,
			    j->c[i].rec + 1, j->c[i].usage, j->addr,
			    j->c[i].why);
			continue;
		}
		stored++;
		log_info("session id=%016llx smimea: certificate for <%s> "
		    "from an SMIMEA record (usage %d) stored as id %lld until "
		    "%s", sid, j->addr, j->c[i].usage, (long long)j->c[i].id,
		    until);
	}
	if (stored > 0)
		certcache_forget(j->sm->cc, j->addr);
	else if (unstored == 0)         /* nothing usable: not asked again */
		neg_add(j->sm, j->addr, time(NULL));
	if (lk != NULL) {
		lk->job = NULL;
		lookup_end(lk);
	}
	sm_job_free(j);
}

/* The certificate of one record, when the loop finds it usable (a new
 * reference); NULL, logged why. */
static X509 *
rec_usable(struct smimea_lookup *lk, const struct dns_tlsa *t, size_t i)
{
	char why[300];
	X509 *x;

	if ((x = rec_cert(t, why, sizeof(why))) != NULL &&
	    cert_check(x, t->usage, lk->addr, why, sizeof(why)) == 0)
		return x;
	log_info("session id=%016llx smimea: record %zu (usage %d) for <%s> "
	    "not used: %s", (unsigned long long)lk->sessid, i + 1, t->usage,
	    lk->addr, why);
	X509_free(x);
	return NULL;
}

/* The store thread took longer than SMIMEA_STORE_MS: the waits go on
 * without (the job stores, and the cache forgets the address, later). */
static void
store_late_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smimea_lookup *lk = arg;

	(void)fd;
	(void)what;
	log_warnx("session id=%016llx smimea: the store did not take the "
	    "certificate(s) for <%s> within %d ms: decided without them",
	    (unsigned long long)lk->sessid, lk->addr, SMIMEA_STORE_MS);
	lookup_end(lk);
}

/* Take what an answer holds: the usable certificates to the store thread
 * (1: the lookup ends when it is done, or after SMIMEA_STORE_MS), 0:
 * nothing to store, -1: the store thread could not take them. */
static int
answer_take(struct smimea_lookup *lk, const struct dns_result *res)
{
	unsigned long long sid = (unsigned long long)lk->sessid;
	struct timeval late = { SMIMEA_STORE_MS / 1000,
	    (SMIMEA_STORE_MS % 1000) * 1000 };
	struct sm_job *j;
	int ttl = res->ttl;
	size_t i;
	X509 *x;

	switch (res->status) {
	case DNS_OK:
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		log_info("session id=%016llx smimea: no SMIMEA record for "
		    "<%s> (%s)", sid, lk->addr, dns_strstatus(res->status));
		return 0;
	case DNS_BOGUS:
		log_warnx("session id=%016llx smimea: SMIMEA for <%s> ignored: "
		    "DNSSEC validation failed (%s)", sid, lk->addr, res->why);
		return 0;
	default:
		log_warnx("session id=%016llx smimea: SMIMEA lookup for <%s> "
		    "failed: %s %s", sid, lk->addr, dns_strstatus(res->status),
		    res->why);
		return 0;
	}
	if (!res->secure) {
		log_warnx("session id=%016llx smimea: SMIMEA for <%s> ignored: "
		    "not DNSSEC-secure", sid, lk->addr);
		return 0;
	}
	if (res->nsmimea > SMIMEA_MAX_RECORDS) {
		log_warnx("session id=%016llx smimea: SMIMEA for <%s> ignored: "
		    "%zu records (at most %d)", sid, lk->addr, res->nsmimea,
		    SMIMEA_MAX_RECORDS);
		return 0;
	}
	if (ttl < SMIMEA_MIN_TTL)
		ttl = SMIMEA_MIN_TTL;
	if (ttl > SMIMEA_MAX_TTL)
		ttl = SMIMEA_MAX_TTL;
	j = xcalloc(1, sizeof(*j));
	j->sm = lk->sm;
	j->addr = xstrdup(lk->addr);
	j->sessid = lk->sessid;
	j->expires = (int64_t)time(NULL) + ttl;
	for (i = 0; i < res->nsmimea; i++)
		if ((x = rec_usable(lk, &res->smimea[i], i)) != NULL) {
			j->c[j->n].x = x;
			j->c[j->n].usage = res->smimea[i].usage;
			j->c[j->n].rec = i;
			j->c[j->n].id = -1;
			j->n++;
		}
	if (j->n == 0) {
		sm_job_free(j);
		return 0;
	}
	if (storeq_call(lk->sm->sq, sm_run, sm_done, j) == -1) {
		log_warnx("session id=%016llx smimea: certificate(s) for <%s> "
		    "not stored: the store thread's queue is full", sid,
		    lk->addr);
		sm_job_free(j);
		return -1;
	}
	j->lk = lk;
	lk->job = j;
	if ((lk->late = evtimer_new(lk->sm->base, store_late_cb, lk)) ==
	    NULL || evtimer_add(lk->late, &late) == -1)
		fatalx("evtimer_new");
	return 1;
}

/* dns_smimea's answer. */
static void
lookup_done(const struct dns_result *res, void *arg)
{
	struct smimea_lookup *lk = arg;
	int r;

	lk->q = NULL;           /* the handle is over */
	if ((r = answer_take(lk, res)) == 1)
		return;         /* ends when the store thread is done */
	if (r == 0)
		neg_add(lk->sm, lk->addr, time(NULL));
	lookup_end(lk);
}

/* The resolver for cfg, when it asks for lookups. */
static void
smimea_start(struct smimea *sm, const struct config *cfg)
{
	char err[300];

	sm->on = cfg->cert_lookup == CONFIG_CERT_LOOKUP_SMIMEA;
	sm->resolver = cfg->dns_resolver ? xstrdup(cfg->dns_resolver) : NULL;
	sm->anchor = cfg->dns_trust_anchor ? xstrdup(cfg->dns_trust_anchor) :
	    NULL;
	if (!sm->on)
		return;
	if ((sm->dns = dns_new(sm->base, cfg->dns_resolver,
	    cfg->dns_trust_anchor, err, sizeof(err))) == NULL) {
		log_warnx("smimea: DNS: %s: no SMIMEA lookups", err);
		return;
	}
	dns_set_timeout(sm->dns, SMIMEA_TIMEOUT_MS);
}

/* End every lookup (waits called back unless detach) and the resolver. */
static void
smimea_stop(struct smimea *sm, int detach)
{
	struct smimea_lookup *lk;
	struct smimea_wait *w;

	while ((lk = TAILQ_FIRST(&sm->lookups)) != NULL) {
		if (!detach) {
			log_info("session id=%016llx smimea: lookup for <%s> "
			    "abandoned (reconfigured)",
			    (unsigned long long)lk->sessid, lk->addr);
			lookup_end(lk);
			continue;
		}
		while ((w = TAILQ_FIRST(&lk->waits)) != NULL) {
			TAILQ_REMOVE(&lk->waits, w, entry);
			w->lk = NULL;
		}
		lookup_free(lk);
	}
	dns_free(sm->dns);
	sm->dns = NULL;
	free(sm->resolver);
	free(sm->anchor);
	sm->resolver = sm->anchor = NULL;
	neg_clear(sm);
}

/* Lookups for cfg on base. */
struct smimea *
smimea_new(struct event_base *base, struct certcache *cc, struct storeq *sq,
    const struct config *cfg)
{
	struct smimea *sm = xcalloc(1, sizeof(*sm));

	sm->base = base;
	sm->cc = cc;
	sm->sq = sq;
	TAILQ_INIT(&sm->lookups);
	smimea_start(sm, cfg);
	return sm;
}

/* Whether a string setting is the same (NULL: the default). */
static int
same_str(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* SIGHUP: a new resolver when the DNS settings changed. */
void
smimea_reconfigure(struct smimea *sm, const struct config *cfg)
{
	if (sm->on == (cfg->cert_lookup == CONFIG_CERT_LOOKUP_SMIMEA) &&
	    same_str(sm->resolver, cfg->dns_resolver) &&
	    same_str(sm->anchor, cfg->dns_trust_anchor))
		return;
	smimea_stop(sm, 0);
	smimea_start(sm, cfg);
}

/* Free everything; waits still held stay the holders' to cancel. */
void
smimea_free(struct smimea *sm)
{
	if (sm == NULL)
		return;
	smimea_stop(sm, 1);
	free(sm);
}

/* Start or join the lookup of addr. */
struct smimea_wait *
smimea_lookup(struct smimea *sm, const char *addr, uint64_t sessid,
    smimea_cb *cb, void *arg)
{
	struct smimea_lookup *lk;
	struct smimea_wait *w;
	char qname[DNS_NAME_MAX + 1], kb[MAIL_ADDR_MAX];

	/* DNS names the domain in A-labels */
	addr = mail_addr_key(addr, kb, sizeof(kb));
	if (sm == NULL || sm->dns == NULL || strlen(addr) > SMIMEA_ADDR_MAX)
		return NULL;
	if (neg_has(sm, addr, time(NULL))) {
		log_info("session id=%016llx smimea: <%s> gave no certificate "
		    "in the last %d s: not looked up again yet",
		    (unsigned long long)sessid, addr, SMIMEA_NEG_TTL);
		return NULL;
	}
	TAILQ_FOREACH(lk, &sm->lookups, entry)
		if (strcmp(lk->addr, addr) == 0)
			break;
	if (lk == NULL) {
		if (sm->nlookups >= SMIMEA_MAX_LOOKUPS) {
			log_warnx("session id=%016llx smimea: %zu lookups "
			    "under way: <%s> decided without",
			    (unsigned long long)sessid, sm->nlookups, addr);
			return NULL;
		}
		if (dns_smimea_name(addr, qname, sizeof(qname)) == -1)
			return NULL;    /* no local@domain: nothing to ask */
		lk = xcalloc(1, sizeof(*lk));
		lk->sm = sm;
		lk->addr = xstrdup(addr);
		lk->sessid = sessid;
		TAILQ_INIT(&lk->waits);
		TAILQ_INSERT_TAIL(&sm->lookups, lk, entry);
		sm->nlookups++;
		log_info("session id=%016llx smimea: looking up %s SMIMEA for "
		    "<%s>", (unsigned long long)sessid, qname, addr);
		lk->q = dns_smimea(sm->dns, addr, lookup_done, lk);
	}
	w = xcalloc(1, sizeof(*w));
	w->lk = lk;
	w->cb = cb;
	w->arg = arg;
	if ((w->ev = event_new(sm->base, -1, 0, wait_cb, w)) == NULL)
		fatalx("event_new");
	TAILQ_INSERT_TAIL(&lk->waits, w, entry);
	return w;
}

/* Stop waiting; the last one to leave abandons the query. */
void
smimea_cancel(struct smimea_wait *w)
{
	struct smimea_lookup *lk;

	if (w == NULL)
		return;
	if ((lk = w->lk) != NULL) {
		TAILQ_REMOVE(&lk->waits, w, entry);
		if (TAILQ_EMPTY(&lk->waits))
			lookup_free(lk);
	}
	event_free(w->ev);
	free(w);
}
