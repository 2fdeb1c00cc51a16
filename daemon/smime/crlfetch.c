/* crlfetch.c: CRLs from HTTP(S) distribution points (see crlfetch.h).
 * The loop does the HTTP, the waits, the backoff; every store query (is a
 * CRL due, parse-verify-store a CRL or an OCSP answer, the certificates
 * to ask about) is a job of the store thread (storeq_call), answered on
 * the loop; smrelayctl runs them in place (cf_call). */
#include "autoconfig.h"

#include <sys/queue.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crlfetch.h"
#include "daemon/base/base.h"
#include "lib/lib.h"
#include "proto/proto.h"
#include "storeq.h"
#include "store/store.h"

/* One fetch in flight. */
struct cf_req {
	struct crlfetch		*cf;
	char			*url;
	struct http_get		*get;		/* NULL: being stored */
	crlfetch_done_cb	*done;
	void			*arg;
	LIST_ENTRY(cf_req)	 entry;
};

/* One OCSP question in flight. */
struct cf_ocsp {
	struct crlfetch		*cf;
	char			*url;
	char			 key[65];       /* cms_ocsp_key */
	char			 name[128];     /* the subject's CN, for messages */
	X509			*x, *issuer;
	struct http_get		*get;		/* NULL: being stored */
	crlfetch_done_cb	*done;
	void			*arg;
	LIST_ENTRY(cf_ocsp)	 entry;
};

/* A caller waiting for fetches (crlfetch_wait): the keys still out, each
 * a CRL URL or "ocsp:" and the question's cms_ocsp_key. */
struct crlfetch_wait {
	struct crlfetch		*cf;
	struct cf_check		*check;		/* the due check under way */
	char			**keys;
	size_t			 nkeys;
	crlfetch_wait_cb	*cb;
	void			*arg;
	LIST_ENTRY(crlfetch_wait) entry;
};

/* A URL that failed lately: not asked again before CRLFETCH_BACKOFF. */
struct cf_fail {
	char	*url;
	time_t	 at;
};

struct crlfetch {
	struct event_base	*base;
	struct store		*st;		/* in place (smrelayctl), or */
	struct storeq		*sq;		/* the store thread's jobs */
	struct http_client	*http;
	struct sockaddr_storage	*deny;
	size_t			 ndeny;
	LIST_HEAD(, cf_req)	 reqs;
	LIST_HEAD(, cf_ocsp)	 ocsps;
	LIST_HEAD(, crlfetch_wait) waits;
	size_t			 nreqs;         /* both kinds */
	size_t			 nchecks;	/* store jobs of cf_check */
	struct cf_fail		*fails;
	size_t			 nfails;
};

struct crlfetch *
crlfetch_new(struct event_base *base, struct evdns_base *dns,
    struct store *st, struct storeq *sq, const struct config *cfg)
{
	struct crlfetch *cf = xcalloc(1, sizeof(*cf));

	cf->base = base;
	cf->st = st;
	cf->sq = sq;
	cf->http = http_client_new(base, dns);
	cf->deny = http_deny_listeners(cfg, &cf->ndeny);
	LIST_INIT(&cf->reqs);
	LIST_INIT(&cf->ocsps);
	LIST_INIT(&cf->waits);
	return cf;
}

static void ocsp_free(struct cf_ocsp *);
static void cf_wake(struct crlfetch *, const char *key);

/* A store job run in place (smrelayctl): its answer from the loop. */
struct cf_call {
	storeq_cb	*done;
	void		*job;
	int		 rc;
};

static void
cf_call_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cf_call *c = arg;

	(void)fd;
	(void)what;
	c->done(c->job, c->rc);
	free(c);
}

/* Run a store job: on the store thread, or in place with the store of
 * smrelayctl; done comes from the loop either way.  -1 (nothing runs,
 * done is not called) when the store thread's queue is full. */
static int
cf_call(struct crlfetch *cf, storeq_run_fn *run, storeq_cb *done, void *job)
{
	struct timeval now = { 0, 0 };
	struct cf_call *c;

	if (cf->sq != NULL)
		return storeq_call(cf->sq, run, done, job);
	c = xcalloc(1, sizeof(*c));
	c->done = done;
	c->job = job;
	c->rc = run(job, cf->st);
	if (event_base_once(cf->base, -1, EV_TIMEOUT, cf_call_cb, c,
	    &now) == -1)
		fatalx("event_base_once");
	return 0;
}

/* Unlink and free one request (its HTTP GET is over or cancelled). */
static void
cf_req_free(struct cf_req *r)
{
	LIST_REMOVE(r, entry);
	r->cf->nreqs--;
	free(r->url);
	free(r);
}

void
crlfetch_free(struct crlfetch *cf)
{
	struct cf_ocsp *q;
	struct cf_req *r;

	if (cf == NULL)
		return;
	/* no store job is out: the store thread stopped first */
	while ((r = LIST_FIRST(&cf->reqs)) != NULL) {
		if (r->get != NULL)
			http_get_cancel(r->get);
		cf_req_free(r);
	}
	while ((q = LIST_FIRST(&cf->ocsps)) != NULL) {
		if (q->get != NULL)
			http_get_cancel(q->get);
		ocsp_free(q);
	}
	while (!LIST_EMPTY(&cf->waits))
		crlfetch_wait_cancel(LIST_FIRST(&cf->waits));
	while (cf->nfails > 0)
		free(cf->fails[--cf->nfails].url);
	free(cf->fails);
	http_client_free(cf->http);
	free(cf->deny);
	free(cf);
}

/* Append url to the list unless it is there. */
static void
url_add(char ***urls, size_t *n, const char *url)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*urls)[i], url) == 0)
			return;
	*urls = xreallocarray(*urls, *n + 1, sizeof(**urls));
	(*urls)[(*n)++] = xstrdup(url);
}

void
crlfetch_urls_of(X509 *x, char ***urls, size_t *n)
{
	STACK_OF(DIST_POINT) *dps;
	DIST_POINT *dp;
	GENERAL_NAME *gn;
	ASN1_IA5STRING *uri;
	const unsigned char *s;
	char buf[2048];
	int i, j, len;

	dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	for (i = 0; i < sk_DIST_POINT_num(dps); i++) {
		dp = sk_DIST_POINT_value(dps, i);
		if (dp->distpoint == NULL || dp->distpoint->type != 0)
			continue;       /* a relative name: not a URL */
		for (j = 0; j < sk_GENERAL_NAME_num(dp->distpoint->name.
		    fullname); j++) {
			gn = sk_GENERAL_NAME_value(dp->distpoint->name.
			    fullname, j);
			if (gn->type != GEN_URI)
				continue;
			uri = gn->d.uniformResourceIdentifier;
			s = ASN1_STRING_get0_data(uri);
			len = ASN1_STRING_length(uri);
			if (len <= 0 || (size_t)len >= sizeof(buf) ||
			    memchr(s, '\0', (size_t)len) != NULL)
				continue;
			memcpy(buf, s, (size_t)len);
			buf[len] = '\0';
			url_add(urls, n, buf);
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	ERR_clear_error();
}

char **
crlfetch_known_urls(struct store *st, size_t *n)
{
	STACK_OF(X509) *sk = store_all_certs(st);
	char **urls = NULL;
	int i;

	*n = 0;
	for (i = 0; i < sk_X509_num(sk); i++)
		crlfetch_urls_of(sk_X509_value(sk, i), &urls, n);
	sk_X509_pop_free(sk, X509_free);
	return urls;
}

void
crlfetch_urls_free(char **urls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

/* A CRL from what a server sent: DER, else PEM; NULL if neither. */
static X509_CRL *
crl_parse(const unsigned char *body, size_t len)
{
	const unsigned char *p = body;
	X509_CRL *crl = NULL;
	BIO *b;

	if (len > LONG_MAX)
		return NULL;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL &&
	    len < INT_MAX && (b = BIO_new_mem_buf(body, (int)len)) != NULL) {
		crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	ERR_clear_error();
	return crl;
}

/* A downloaded CRL for the store thread, and what came of it. */
struct cf_crljob {
	struct cf_req	*r;		/* stays until done */
	char		*url;
	unsigned char	*body;
	size_t		 len;
	int		 ok;
	char		 msg[700];
};

/* Store thread: parse, verify and store a CRL (store_crl_add); the
 * outcome into the job. */
static int
crl_run(void *arg, struct store *st)
{
	struct cf_crljob *j = arg;
	X509_CRL *crl;
	char err[512], *issuer;
	int64_t id;
	int existed;

	if (st == NULL) {
		snprintf(j->msg, sizeof(j->msg), "could not store: the store "
		    "is unreachable");
		return -1;
	}
	if ((crl = crl_parse(j->body, j->len)) == NULL) {
		snprintf(j->msg, sizeof(j->msg), "not a CRL (%zu bytes)",
		    j->len);
		return 0;
	}
	issuer = store_name_str(X509_CRL_get_issuer(crl));
	if (store_crl_add(st, crl, j->url, &id, &existed, err,
	    sizeof(err)) == -1)
		snprintf(j->msg, sizeof(j->msg), "refused: %s", err);
	else {
		snprintf(j->msg, sizeof(j->msg), "CRL %lld of %s %s",
		    (long long)id, issuer, existed ? "unchanged" : "stored");
		j->ok = 1;
	}
	free(issuer);
	X509_CRL_free(crl);
	return j->ok ? 0 : -1;
}

/* Whether an HTTP answer came (status 200); else its failure into msg. */
static int
cf_answered(int status, const char *err, char *msg, size_t msglen)
{
	if (status == 200)
		return 1;
	snprintf(msg, msglen, "%s", err != NULL ? err : "request failed");
	return 0;
}

/* A fetch is over (fetched and stored, or not): tell, wake, free. */
static void
cf_req_over(struct cf_req *r, int ok, const char *msg)
{
	metrics_inc(ok ? M_CRL_OK : M_CRL_FAIL);
	r->done(r->url, ok, msg, r->arg);
	cf_wake(r->cf, r->url);
	cf_req_free(r);
}

/* Loop: the store thread is done with a CRL. */
static void
crl_done(void *arg, int ok)
{
	struct cf_crljob *j = arg;

	(void)ok;               /* j->ok says (the store may have gone) */
	cf_req_over(j->r, j->ok, j->msg);
	free(j->body);
	free(j->url);
	free(j);
}

/* The HTTP GET is over: the CRL to the store thread. */
static void
cf_got(int status, const char *err, const unsigned char *body, size_t len,
    void *arg)
{
	struct cf_req *r = arg;
	struct cf_crljob *j;
	char msg[700];

	r->get = NULL;          /* the request is over */
	if (!cf_answered(status, err, msg, sizeof(msg))) {
		cf_req_over(r, 0, msg);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	j->url = xstrdup(r->url);
	j->body = xmalloc(len > 0 ? len : 1);
	if (len > 0)
		memcpy(j->body, body, len);
	j->len = len;
	if (cf_call(r->cf, crl_run, crl_done, j) == 0)
		return;
	log_warnx("crl fetch %s: the store thread's queue is full: not "
	    "stored", r->url);
	free(j->body);
	free(j->url);
	free(j);
	cf_req_over(r, 0, "could not store: the store's queue is full");
}

int
crlfetch_url(struct crlfetch *cf, const char *url, crlfetch_done_cb *done,
    void *arg, char *err, size_t errlen)
{
	struct http_get_opts o;
	struct cf_req *r;

	LIST_FOREACH(r, &cf->reqs, entry)
		if (strcmp(r->url, url) == 0)
			return 1;
	memset(&o, 0, sizeof(o));
	o.max_body = CRLFETCH_MAX_BYTES;
	o.timeout = CRLFETCH_TIMEOUT;
	o.deny = cf->deny;
	o.ndeny = cf->ndeny;
	r = xcalloc(1, sizeof(*r));
	r->cf = cf;
	r->url = xstrdup(url);
	r->done = done;
	r->arg = arg;
	if ((r->get = http_get_start(cf->http, url, &o, cf_got, r,
	    err, errlen)) == NULL) {
		free(r->url);
		free(r);
		return -1;
	}
	LIST_INSERT_HEAD(&cf->reqs, r, entry);
	cf->nreqs++;
	return 0;
}

size_t
crlfetch_pending(const struct crlfetch *cf)
{
	return cf->nreqs + cf->nchecks;
}

/* When url last failed (0: not lately). */
static struct cf_fail *
cf_failed(struct crlfetch *cf, const char *url)
{
	size_t i;

	for (i = 0; i < cf->nfails; i++)
		if (strcmp(cf->fails[i].url, url) == 0)
			return &cf->fails[i];
	return NULL;
}

/* The daemon's fetches: say how each went; remember failures. */
static void
cf_logged(const char *url, int ok, const char *msg, void *arg)
{
	struct crlfetch *cf = arg;
	struct cf_fail *f;

	if (ok) {
		log_info("crl fetch %s: %s", url, msg);
		if ((f = cf_failed(cf, url)) != NULL)
			f->at = 0;
		return;
	}
	log_warnx("crl fetch %s: %s (next try in %d s)", url, msg,
	    CRLFETCH_BACKOFF);
	if ((f = cf_failed(cf, url)) == NULL) {
		if (cf->nfails >= CRLFETCH_MAX_FAILS)
			return;         /* bounded: forget the newest */
		cf->fails = xreallocarray(cf->fails, cf->nfails + 1,
		    sizeof(*cf->fails));
		f = &cf->fails[cf->nfails++];
		f->url = xstrdup(url);
	}
	f->at = time(NULL);
}

/* Unlink and free one OCSP question (its POST is over or cancelled). */
static void
ocsp_free(struct cf_ocsp *q)
{
	LIST_REMOVE(q, entry);
	q->cf->nreqs--;
	X509_free(q->x);
	X509_free(q->issuer);
	free(q->url);
	free(q);
}

/* The first http:// or https:// OCSP responder of x (malloc'd), or NULL. */
static char *
ocsp_url(X509 *x)
{
	STACK_OF(OPENSSL_STRING) *v = X509_get1_ocsp(x);
	const char *s;
	char *url = NULL;
	int i;

	for (i = 0; url == NULL && i < sk_OPENSSL_STRING_num(v); i++) {
		s = sk_OPENSSL_STRING_value(v, i);
		if (strncasecmp(s, "http://", 7) == 0 ||
		    strncasecmp(s, "https://", 8) == 0)
			url = xstrdup(s);
	}
	X509_email_free(v);
	return url;
}

/* The anchors and stored intermediates (new references); NULL on error. */
static STACK_OF(X509) *
issuers_load(struct store *st)
{
	STACK_OF(X509) *a = store_anchor_certs(st), *b = store_ca_certs(st);
	int i;

	for (i = 0; a != NULL && i < sk_X509_num(b); i++)
		if (X509_add_cert(a, sk_X509_value(b, i),
		    X509_ADD_FLAG_UP_REF) != 1)
			break;
	if (b == NULL || i < sk_X509_num(b)) {
		sk_X509_pop_free(a, X509_free);
		a = NULL;
	}
	sk_X509_pop_free(b, X509_free);
	return a;
}

/* x's issuer in cas (a new reference), or NULL. */
static X509 *
issuer_of(STACK_OF(X509) *cas, X509 *x)
{
	X509 *c;
	int i;

	for (i = 0; i < sk_X509_num(cas); i++) {
		c = sk_X509_value(cas, i);
		if (X509_check_issued(c, x) == X509_V_OK && X509_up_ref(c))
			return c;
	}
	return NULL;
}

/* Whether an answer's thisUpdate/nextUpdate make it unusable now (more
 * than CRLFETCH_OCSP_SKEW off): 1 with the reason in msg. */
static int
ocsp_stale(ASN1_GENERALIZEDTIME *thisupd, ASN1_GENERALIZEDTIME *nextupd,
    char *msg, size_t msglen)
{
	char t[32];

	ERR_clear_error();
	if (OCSP_check_validity(thisupd, nextupd, CRLFETCH_OCSP_SKEW, -1) == 1)
		return 0;
	switch (ERR_GET_REASON(ERR_peek_error())) {
	case OCSP_R_STATUS_EXPIRED:
		store_time_str(store_asn1_time(nextupd), t, sizeof(t));
		snprintf(msg, msglen, "answer expired: nextUpdate %s is past",
		    t);
		break;
	case OCSP_R_STATUS_NOT_YET_VALID:
		store_time_str(store_asn1_time(thisupd), t, sizeof(t));
		snprintf(msg, msglen, "answer not yet valid: thisUpdate %s is "
		    "ahead", t);
		break;
	default:
		snprintf(msg, msglen, "answer with unreadable or inverted "
		    "thisUpdate/nextUpdate");
	}
	return 1;
}

/* Check a basic response for q: signed by the issuer or a responder it
 * delegated to (OCSP_basic_verify against our anchors), the status for
 * q's certificate, current.  0 with *o filled, or -1 with msg. */
static int
ocsp_check(struct store *st, struct cf_ocsp *q, OCSP_BASICRESP *bs,
    struct store_ocsp *o, char *msg, size_t msglen)
{
	STACK_OF(X509) *untrusted = store_ca_certs(st);
	X509_STORE *xs = store_trust_x509_store(st);
	ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *rev = NULL;
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, q->x, q->issuer);
	int status = -1, reason, rc = -1;

	if (untrusted == NULL || xs == NULL || id == NULL ||
	    X509_add_cert(untrusted, q->issuer, X509_ADD_FLAG_UP_REF) != 1)
		snprintf(msg, msglen, "cannot set up the check");
	else if (OCSP_basic_verify(bs, untrusted, xs, 0) != 1)
		snprintf(msg, msglen, "answer not signed by the CA or a "
		    "responder it delegated to");
	else if (OCSP_resp_find_status(bs, id, &status, &reason, &rev,
	    &thisupd, &nextupd) != 1)
		snprintf(msg, msglen, "answer says nothing of %s", q->name);
	else if (ocsp_stale(thisupd, nextupd, msg, msglen) == 0) {
		o->status = status == V_OCSP_CERTSTATUS_GOOD ? 0 :
		    status == V_OCSP_CERTSTATUS_REVOKED ? 1 : 2;
		o->this_update = store_asn1_time(thisupd);
		o->next_update = store_asn1_time(nextupd);
		snprintf(o->source, sizeof(o->source), "%s", q->url);
		rc = 0;
	}
	ERR_clear_error();
	OCSP_CERTID_free(id);
	X509_STORE_free(xs);
	sk_X509_pop_free(untrusted, X509_free);
	return rc;
}

/* Whether o is older than the answer stored about q's certificate: 1
 * with the reason in msg.  We send no nonce, so anyone on the path can
 * play back an answer from before a revocation; it must not replace it. */
static int
ocsp_older(struct store *st, struct cf_ocsp *q, const struct store_ocsp *o,
    char *msg, size_t msglen)
{
	struct store_ocsp old;
	char t[32], told[32];

	if (store_ocsp_get(st, q->key, &old) != 1 ||
	    old.this_update <= o->this_update)
		return 0;
	store_time_str(o->this_update, t, sizeof(t));
	store_time_str(old.this_update, told, sizeof(told));
	snprintf(msg, msglen, "answer older than the one stored (thisUpdate "
	    "%s, stored %s %s)", t, old.status == 1 ? "revoked" :
	    old.status == 0 ? "good" : "unknown", told);
	return 1;
}

/* Parse, check and store an OCSP response (on the store thread, st
 * answering); the outcome in msg. */
static int
ocsp_store(struct store *st, struct cf_ocsp *q, const unsigned char *body,
    size_t len, char *msg, size_t msglen)
{
	static const char *names[] = { "good", "revoked", "unknown" };
	const unsigned char *p = body;
	struct store_ocsp o;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs = NULL;
	char err[256];
	int ok = 0, rst;

	memset(&o, 0, sizeof(o));
	if (len > LONG_MAX || (resp = d2i_OCSP_RESPONSE(NULL, &p,
	    (long)len)) == NULL) {
		snprintf(msg, msglen, "not an OCSP response (%zu bytes)", len);
		ERR_clear_error();
		return 0;
	}
	if ((rst = OCSP_response_status(resp)) !=
	    OCSP_RESPONSE_STATUS_SUCCESSFUL)
		snprintf(msg, msglen, "responder said %s",
		    OCSP_response_status_str(rst));
	else if ((bs = OCSP_response_get1_basic(resp)) == NULL)
		snprintf(msg, msglen, "no basic response");
	else if (ocsp_check(st, q, bs, &o, msg, msglen) == 0 &&
	    ocsp_older(st, q, &o, msg, msglen) == 0) {
		if (store_ocsp_put(st, q->key, &o, err, sizeof(err)) == -1)
			snprintf(msg, msglen, "could not store: %s", err);
		else {
			snprintf(msg, msglen, "OCSP %s for %s", names[o.status],
			    q->name);
			ok = 1;
		}
	}
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return ok;
}

/* A downloaded OCSP answer for the store thread, and what came of it
 * (q stays until done, and what the thread reads of it does not
 * change). */
struct cf_ocspjob {
	struct cf_ocsp	*q;
	unsigned char	*body;
	size_t		 len;
	int		 ok;
	char		 msg[700];
};

/* Store thread: parse, verify and store an OCSP answer. */
static int
ocsp_run(void *arg, struct store *st)
{
	struct cf_ocspjob *j = arg;

	if (st == NULL) {
		snprintf(j->msg, sizeof(j->msg), "could not store: the store "
		    "is unreachable");
		return -1;
	}
	j->ok = ocsp_store(st, j->q, j->body, j->len, j->msg, sizeof(j->msg));
	return j->ok ? 0 : -1;
}

/* A question is over (answered and stored, or not): tell, wake, free. */
static void
ocsp_over(struct cf_ocsp *q, int ok, const char *msg)
{
	char key[70];

	metrics_inc(ok ? M_OCSP_OK : M_OCSP_FAIL);
	q->done(q->url, ok, msg, q->arg);
	snprintf(key, sizeof(key), "ocsp:%s", q->key);
	cf_wake(q->cf, key);
	ocsp_free(q);
}

/* Loop: the store thread is done with an answer. */
static void
ocsp_done(void *arg, int ok)
{
	struct cf_ocspjob *j = arg;

	(void)ok;               /* j->ok says */
	ocsp_over(j->q, j->ok, j->msg);
	free(j->body);
	free(j);
}

/* The POST is over: the answer to the store thread. */
static void
ocsp_got(int status, const char *err, const unsigned char *body,
    size_t len, void *arg)
{
	struct cf_ocsp *q = arg;
	struct cf_ocspjob *j;
	char msg[700];

	q->get = NULL;          /* the request is over */
	if (!cf_answered(status, err, msg, sizeof(msg))) {
		ocsp_over(q, 0, msg);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->body = xmalloc(len > 0 ? len : 1);
	if (len > 0)
		memcpy(j->body, body, len);
	j->len = len;
	if (cf_call(q->cf, ocsp_run, ocsp_done, j) == 0)
		return;
	log_warnx("ocsp %s: the store thread's queue is full: not stored",
	    q->url);
	free(j->body);
	free(j);
	ocsp_over(q, 0, "could not store: the store's queue is full");
}

/* The DER of an OCSP request about x (no nonce: RFC 6960 allows it, and
 * answers are cached); NULL on failure. */
static unsigned char *
ocsp_request(X509 *x, X509 *issuer, int *len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, x, issuer);
	unsigned char *der = NULL;

	if (req != NULL && id != NULL && OCSP_request_add0_id(req, id) !=
	    NULL)
		id = NULL;      /* the request owns it */
	else
		*len = -1;
	if (id == NULL && (*len = i2d_OCSP_REQUEST(req, &der)) <= 0)
		der = NULL;
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	return der;
}

int
crlfetch_ocsp(struct crlfetch *cf, X509 *x, X509 *issuer,
    crlfetch_done_cb *done, void *arg, char *err, size_t errlen)
{
	struct http_get_opts o;
	struct cf_ocsp *q;
	unsigned char *der;
	char *url;
	int len = 0;

	if ((url = ocsp_url(x)) == NULL) {
		snprintf(err, errlen, "no http:// or https:// OCSP responder");
		return -1;
	}
	if ((der = ocsp_request(x, issuer, &len)) == NULL) {
		snprintf(err, errlen, "cannot make the OCSP request");
		free(url);
		return -1;
	}
	q = xcalloc(1, sizeof(*q));
	q->cf = cf;
	q->url = url;
	cms_ocsp_key(x, issuer, q->key);
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, q->name, (int)sizeof(q->name)) <= 0)
		snprintf(q->name, sizeof(q->name), "the certificate");
	X509_up_ref(q->x = x);
	X509_up_ref(q->issuer = issuer);
	q->done = done;
	q->arg = arg;
	memset(&o, 0, sizeof(o));
	o.max_body = CRLFETCH_MAX_BYTES;
	o.timeout = CRLFETCH_TIMEOUT;
	o.deny = cf->deny;
	o.ndeny = cf->ndeny;
	o.post = der;
	o.postlen = (size_t)len;
	o.content_type = "application/ocsp-request";
	q->get = http_get_start(cf->http, url, &o, ocsp_got, q, err,
	    errlen);
	OPENSSL_free(der);
	LIST_INSERT_HEAD(&cf->ocsps, q, entry);
	cf->nreqs++;
	if (q->get == NULL) {
		ocsp_free(q);
		return -1;
	}
	return 0;
}

/* Fetches one wait is for, at most (links times (CRL URLs + 1)). */
#define CF_WAIT_KEYS	16

/* Whether key is already one of w's. */
static int
wait_has(const struct crlfetch_wait *w, const char *key)
{
	size_t i;

	for (i = 0; i < w->nkeys; i++)
		if (strcmp(w->keys[i], key) == 0)
			return 1;
	return 0;
}

/* Wait for key too; 0 when w waits for as many as it may. */
static int
wait_add(struct crlfetch_wait *w, const char *key)
{
	if (wait_has(w, key))
		return 1;
	if (w->nkeys >= CF_WAIT_KEYS)
		return 0;
	w->keys = xreallocarray(w->keys, w->nkeys + 1, sizeof(*w->keys));
	w->keys[w->nkeys++] = xstrdup(key);
	return 1;
}

/* Wait for key no more (without calling back). */
static void
wait_drop(struct crlfetch_wait *w, const char *key)
{
	size_t i;

	for (i = 0; i < w->nkeys; i++)
		if (strcmp(w->keys[i], key) == 0) {
			free(w->keys[i]);
			w->keys[i] = w->keys[--w->nkeys];
			return;
		}
}

/* The fetch for key is over: every wait with nothing else out is told
 * (its callback may cancel other waits: start over after each). */
static void
cf_wake(struct crlfetch *cf, const char *key)
{
	struct crlfetch_wait *w;
	crlfetch_wait_cb *cb;
	void *arg;
	size_t i;

 again:
	LIST_FOREACH(w, &cf->waits, entry) {
		for (i = 0; i < w->nkeys; i++)
			if (strcmp(w->keys[i], key) == 0)
				break;
		if (i == w->nkeys)
			continue;
		free(w->keys[i]);
		w->keys[i] = w->keys[--w->nkeys];
		if (w->nkeys > 0)
			continue;
		cb = w->cb;
		arg = w->arg;
		crlfetch_wait_cancel(w);
		cb(arg);
		goto again;
	}
}

/*
 * Which fetches are due is the store's to say, on its thread: a check is
 * a list of items, each a CRL URL or an OCSP question, that the store
 * thread marks due (the CRL or answer stored is missing or runs out
 * within CRLFETCH_AHEAD) and the loop then starts, unless it is in flight
 * (joined) or failed lately.  With known, the thread first makes the items
 * from the store's certificates that name an OCSP responder.
 */
struct cf_item {
	char		*url;		/* the CRL's, or the OCSP responder */
	X509		*x, *issuer;	/* OCSP; issuer NULL: not in the store */
	char		 key[70];	/* a wait's: the URL, or "ocsp:" hex */
	int		 due;		/* the store thread says */
};

struct cf_check {
	struct crlfetch		*cf;
	struct crlfetch_wait	*w;		/* NULL: none, or it left */
	struct cf_item		*v;
	size_t			 n;
	int			 known;		/* items: the store's OCSP */
	int			 ocsp_all;	/* every question is due */
	int			 no_backoff;	/* smrelayctl: ask them all */
	int			 log;		/* say how many were due */
	crlfetch_done_cb	*done;		/* OCSP outcomes (else logged) */
	void			*arg;
	int			 read;		/* the store answered */
	char			 err[256];
};

static struct cf_check *
check_new(struct crlfetch *cf)
{
	struct cf_check *c = xcalloc(1, sizeof(*c));

	c->cf = cf;
	return c;
}

static void
check_free(struct cf_check *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->v[i].url);
		X509_free(c->v[i].x);
		X509_free(c->v[i].issuer);
	}
	free(c->v);
	free(c);
}

/* One more item (x and issuer: new references are taken). */
static void
item_add(struct cf_check *c, const char *url, X509 *x, X509 *issuer,
    const char *key)
{
	struct cf_item *it;

	c->v = xreallocarray(c->v, c->n + 1, sizeof(*c->v));
	it = &c->v[c->n++];
	memset(it, 0, sizeof(*it));
	it->url = xstrdup(url);
	if (x != NULL)
		X509_up_ref(it->x = x);
	if (issuer != NULL)
		X509_up_ref(it->issuer = issuer);
	snprintf(it->key, sizeof(it->key), "%s", key);
}

/* Whether url failed within CRLFETCH_BACKOFF. */
static int
cf_backoff(struct crlfetch *cf, const char *url, time_t now)
{
	struct cf_fail *f = cf_failed(cf, url);

	return f != NULL && f->at != 0 && now - f->at < CRLFETCH_BACKOFF;
}

static int
crl_in_flight(struct crlfetch *cf, const char *url)
{
	struct cf_req *r;

	LIST_FOREACH(r, &cf->reqs, entry)
		if (strcmp(r->url, url) == 0)
			return 1;
	return 0;
}

static int
ocsp_in_flight(struct crlfetch *cf, const char *hex)
{
	struct cf_ocsp *q;

	LIST_FOREACH(q, &cf->ocsps, entry)
		if (strcmp(q->key, hex) == 0)
			return 1;
	return 0;
}

/* Store thread: the stored certificates that name an OCSP responder, as
 * items (their issuer among the anchors and intermediates, or NULL). */
static int
check_known(struct cf_check *c, struct store *st)
{
	STACK_OF(X509) *sk = store_all_certs(st), *cas = issuers_load(st);
	char hex[65], key[70], *url;
	X509 *x, *issuer;
	int i, rc = -1;

	if (sk == NULL || cas == NULL)
		snprintf(c->err, sizeof(c->err), "cannot read the "
		    "certificates: %s", store_errmsg(st));
	for (i = 0; sk != NULL && cas != NULL && i < sk_X509_num(sk); i++) {
		x = sk_X509_value(sk, i);
		if ((url = ocsp_url(x)) == NULL)
			continue;
		issuer = issuer_of(cas, x);
		key[0] = '\0';
		if (issuer != NULL && cms_ocsp_key(x, issuer, hex) == 0)
			snprintf(key, sizeof(key), "ocsp:%s", hex);
		item_add(c, url, x, key[0] != '\0' ? issuer : NULL, key);
		X509_free(issuer);
		free(url);
	}
	if (sk != NULL && cas != NULL)
		rc = 0;
	sk_X509_pop_free(sk, X509_free);
	sk_X509_pop_free(cas, X509_free);
	return rc;
}

/* Store thread: which items are due. */
static int
check_run(void *arg, struct store *st)
{
	struct cf_check *c = arg;
	struct store_ocsp o;
	struct cf_item *it;
	time_t now = time(NULL);
	int64_t next;
	size_t i;
	int r;

	if (st == NULL) {
		snprintf(c->err, sizeof(c->err), "the store is unreachable");
		return -1;
	}
	if (c->known && check_known(c, st) == -1)
		return -1;
	memset(&o, 0, sizeof(o));
	for (i = 0; i < c->n; i++) {
		it = &c->v[i];
		if (it->x == NULL)
			r = store_crl_by_source(st, it->url, &next);
		else if (it->issuer == NULL || c->ocsp_all) {
			it->due = it->issuer != NULL;
			continue;
		} else {
			r = store_ocsp_get(st, it->key + 5, &o);
			next = o.next_update;
		}
		if (r == -1) {
			snprintf(c->err, sizeof(c->err), "%s",
			    store_errmsg(st));
			return -1;
		}
		it->due = r == 0 || (next != 0 && next - now <=
		    CRLFETCH_AHEAD);
	}
	c->read = 1;
	return 0;
}

/* Loop: start an item's fetch when it is due, or join it in flight; 1
 * when it is in flight now. */
static int
check_start(struct cf_check *c, struct cf_item *it, time_t now)
{
	struct crlfetch *cf = c->cf;
	crlfetch_done_cb *done = c->done != NULL ? c->done : cf_logged;
	void *arg = c->done != NULL ? c->arg : cf;
	char err[256];

	if (it->x == NULL) {
		if (crl_in_flight(cf, it->url))
			return 1;
		if (!it->due || (!c->no_backoff && cf_backoff(cf, it->url,
		    now)))
			return 0;
		if (crlfetch_url(cf, it->url, cf_logged, cf, err,
		    sizeof(err)) == 0)
			return 1;
		cf_logged(it->url, 0, err, cf);
		return 0;
	}
	if (it->issuer == NULL) {
		done(it->url, 0, "the certificate's issuer is not in the "
		    "store", arg);
		return 0;
	}
	if (ocsp_in_flight(cf, it->key + 5))
		return 1;
	if (!it->due || (!c->no_backoff && cf_backoff(cf, it->url, now)))
		return 0;
	if (crlfetch_ocsp(cf, it->x, it->issuer, done, arg, err,
	    sizeof(err)) == 0)
		return 1;
	done(it->url, 0, err, arg);
	return 0;
}

/* Loop: the store said which items are due: start them; a wait is told
 * when nothing it waits for is left in flight. */
static void
check_done(void *arg, int ok)
{
	struct cf_check *c = arg;
	struct crlfetch *cf = c->cf;
	struct crlfetch_wait *w = c->w;
	crlfetch_wait_cb *cb;
	time_t now = time(NULL);
	size_t i, started = 0;
	void *cbarg;

	(void)ok;               /* c->read says */
	cf->nchecks--;
	if (w != NULL)
		w->check = NULL;
	if (!c->read)
		log_warnx("crl fetch: %s: which CRLs and OCSP answers are due "
		    "is not known: nothing fetched", c->err[0] != '\0' ?
		    c->err : "the store did not answer");
	for (i = 0; i < c->n; i++) {
		if (c->read && check_start(c, &c->v[i], now))
			started++;
		else if (w != NULL)
			wait_drop(w, c->v[i].key);
	}
	if (c->log && started > 0)
		log_info("crl fetch: %zu of %zu distribution point(s) due",
		    started, c->n);
	check_free(c);
	if (w != NULL && w->nkeys == 0) {
		cb = w->cb;
		cbarg = w->arg;
		crlfetch_wait_cancel(w);
		cb(cbarg);
	}
}

/* Ask the store thread; -1 (said in the log; c is still the caller's)
 * when its queue is full. */
static int
check_submit(struct cf_check *c, const char *what)
{
	if (cf_call(c->cf, check_run, check_done, c) == -1) {
		log_warnx("crl fetch: the store thread's queue is full: %s not "
		    "checked", what);
		return -1;
	}
	c->cf->nchecks++;
	return 0;
}

size_t
crlfetch_refresh(struct crlfetch *cf, char **urls, size_t n)
{
	struct cf_check *c = check_new(cf);
	time_t now = time(NULL);
	size_t i, asked;

	for (i = 0; i < n; i++)
		if (!crl_in_flight(cf, urls[i]) && !cf_backoff(cf, urls[i],
		    now))
			item_add(c, urls[i], NULL, NULL, urls[i]);
	c->log = 1;
	if ((asked = c->n) == 0 || check_submit(c, "CRL distribution "
	    "points") == -1) {
		check_free(c);
		return 0;
	}
	return asked;
}

int
crlfetch_ocsp_known(struct crlfetch *cf, int due_only,
    crlfetch_done_cb *done, void *arg)
{
	struct cf_check *c = check_new(cf);

	c->known = 1;
	c->ocsp_all = c->no_backoff = !due_only;
	c->done = done;
	c->arg = arg;
	if (check_submit(c, "OCSP answers") == -1) {
		check_free(c);
		return -1;
	}
	return 0;
}

/* The daemon's OCSP refresh: the questions whose answer is missing or
 * runs out soon, outcomes in the log, a failing responder left alone for
 * CRLFETCH_BACKOFF. */
int
crlfetch_ocsp_refresh(struct crlfetch *cf)
{
	return crlfetch_ocsp_known(cf, 1, cf_logged, cf);
}

/* A link: its CRLs and its OCSP question, joined when in flight, else to
 * be checked (unless they failed lately), each waited for. */
static void
wait_link(struct crlfetch_wait *w, struct cf_check *c, X509 *x,
    X509 *issuer, time_t now)
{
	struct crlfetch *cf = w->cf;
	char **urls = NULL, hex[65], key[70], *url;
	size_t i, n = 0;

	crlfetch_urls_of(x, &urls, &n);
	for (i = 0; i < n; i++) {
		if (crl_in_flight(cf, urls[i]))
			wait_add(w, urls[i]);
		else if (!cf_backoff(cf, urls[i], now) && !wait_has(w,
		    urls[i]) && wait_add(w, urls[i]))
			item_add(c, urls[i], NULL, NULL, urls[i]);
	}
	crlfetch_urls_free(urls, n);
	if (issuer == NULL || cms_ocsp_key(x, issuer, hex) == -1 ||
	    (url = ocsp_url(x)) == NULL)
		return;
	snprintf(key, sizeof(key), "ocsp:%s", hex);
	if (ocsp_in_flight(cf, hex))
		wait_add(w, key);
	else if (!cf_backoff(cf, url, now) && !wait_has(w, key) &&
	    wait_add(w, key))
		item_add(c, url, x, issuer, key);
	free(url);
}

struct crlfetch_wait *
crlfetch_wait(struct crlfetch *cf, const struct cms_link *links, size_t n,
    crlfetch_wait_cb *cb, void *arg)
{
	struct crlfetch_wait *w = xcalloc(1, sizeof(*w));
	struct cf_check *c = check_new(cf);
	time_t now = time(NULL);
	size_t i;

	w->cf = cf;
	w->cb = cb;
	w->arg = arg;
	c->ocsp_all = 1;        /* a message waits: ask its responder */
	for (i = 0; i < n; i++)
		wait_link(w, c, links[i].cert, links[i].issuer, now);
	if (c->n > 0 && check_submit(c, "the revocation of a message's "
	    "certificates") == 0) {
		c->w = w;
		w->check = c;
	} else {
		for (i = 0; i < c->n; i++)
			wait_drop(w, c->v[i].key);
		check_free(c);
	}
	if (w->nkeys == 0) {
		if (w->check != NULL)
			w->check->w = NULL;
		free(w->keys);
		free(w);
		return NULL;
	}
	LIST_INSERT_HEAD(&cf->waits, w, entry);
	return w;
}

void
crlfetch_wait_cancel(struct crlfetch_wait *w)
{
	if (w == NULL)
		return;
	if (w->check != NULL)
		w->check->w = NULL;
	LIST_REMOVE(w, entry);
	while (w->nkeys > 0)
		free(w->keys[--w->nkeys]);
	free(w->keys);
	free(w);
}
