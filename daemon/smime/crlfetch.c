/* crlfetch.c: CRLs from HTTP distribution points (see crlfetch.h). */
#include "autoconfig.h"

#include <sys/queue.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crlfetch.h"
#include "daemon/base/base.h"
#include "lib/lib.h"
#include "store/store.h"

/* One fetch in flight. */
struct cf_req {
	struct crlfetch		*cf;
	char			*url;
	struct http_get		*get;
	crlfetch_done_cb	*done;
	void			*arg;
	LIST_ENTRY(cf_req)	 entry;
};

/* A URL that failed lately: not asked again before CRLFETCH_BACKOFF. */
struct cf_fail {
	char	*url;
	time_t	 at;
};

struct crlfetch {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct store		*st;
	struct sockaddr_storage	*deny;
	size_t			 ndeny;
	LIST_HEAD(, cf_req)	 reqs;
	size_t			 nreqs;
	struct cf_fail		*fails;
	size_t			 nfails;
};

struct crlfetch *
crlfetch_new(struct event_base *base, struct evdns_base *dns,
    struct store *st, const struct config *cfg)
{
	struct crlfetch *cf = xcalloc(1, sizeof(*cf));

	cf->base = base;
	cf->dns = dns;
	cf->st = st;
	cf->deny = http_deny_listeners(cfg, &cf->ndeny);
	LIST_INIT(&cf->reqs);
	return cf;
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
	struct cf_req *r;

	if (cf == NULL)
		return;
	while ((r = LIST_FIRST(&cf->reqs)) != NULL) {
		http_get_cancel(r->get);
		cf_req_free(r);
	}
	while (cf->nfails > 0)
		free(cf->fails[--cf->nfails].url);
	free(cf->fails);
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

/* Store what came back; the outcome into msg.  1 stored, 0 not. */
static int
cf_store(struct cf_req *r, const unsigned char *body, size_t len,
    char *msg, size_t msglen)
{
	X509_CRL *crl;
	char err[512], *issuer;
	int64_t id;
	int existed;

	if ((crl = crl_parse(body, len)) == NULL) {
		snprintf(msg, msglen, "not a CRL (%zu bytes)", len);
		return 0;
	}
	issuer = store_name_str(X509_CRL_get_issuer(crl));
	if (store_crl_add(r->cf->st, crl, r->url, &id, &existed, err,
	    sizeof(err)) == -1)
		snprintf(msg, msglen, "refused: %s", err);
	else
		snprintf(msg, msglen, "CRL %lld of %s %s", (long long)id,
		    issuer, existed ? "unchanged" : "stored");
	free(issuer);
	X509_CRL_free(crl);
	return msg[0] != 'r';
}

/* The HTTP GET is over. */
static void
cf_got(int status, const char *err, const unsigned char *body, size_t len,
    void *arg)
{
	struct cf_req *r = arg;
	char msg[700];
	int ok = 0;

	if (status != 200)
		snprintf(msg, sizeof(msg), "%s", err != NULL ? err :
		    "request failed");
	else
		ok = cf_store(r, body, len, msg, sizeof(msg));
	r->done(r->url, ok, msg, r->arg);
	cf_req_free(r);
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
	if ((r->get = http_get_start(cf->base, cf->dns, url, &o, cf_got, r,
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
	return cf->nreqs;
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

/* Whether url needs a fetch: no CRL from it, or one that runs out within
 * CRLFETCH_AHEAD; and it did not fail lately. */
static int
cf_due(struct crlfetch *cf, const char *url, time_t now)
{
	struct cf_fail *f = cf_failed(cf, url);
	int64_t next;
	int r;

	if (f != NULL && f->at != 0 && now - f->at < CRLFETCH_BACKOFF)
		return 0;
	if ((r = store_crl_by_source(cf->st, url, &next)) == -1)
		return 0;
	return r == 0 || (next != 0 && next - now < CRLFETCH_AHEAD);
}

size_t
crlfetch_refresh(struct crlfetch *cf, char **urls, size_t n)
{
	time_t now = time(NULL);
	char err[256];
	size_t i, started = 0;

	for (i = 0; i < n; i++) {
		if (!cf_due(cf, urls[i], now))
			continue;
		if (crlfetch_url(cf, urls[i], cf_logged, cf, err,
		    sizeof(err)) == -1)
			cf_logged(urls[i], 0, err, cf);
		else
			started++;
	}
	return started;
}
