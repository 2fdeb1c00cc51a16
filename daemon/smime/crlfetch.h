/* crlfetch.h: CRLs fetched from the http:// and https:// distribution points
 * named in the certificates of the store, on the event loop (http.h; https
 * verified against the system trust store), stored with their URL as
 * source.  A CRL is kept only when its signature verifies against
 * a trust anchor or an intermediate CA of the store (store_crl_add), so
 * a distribution point cannot plant another issuer's CRL.  One fetch in
 * flight per URL. */
#ifndef SMRELAY_CRLFETCH_H
#define SMRELAY_CRLFETCH_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

struct cms_link;
struct config;
struct crlfetch;
struct crlfetch_wait;
struct event_base;
struct evdns_base;
struct store;
struct storeq;

#define CRLFETCH_MAX_BYTES	(20 * 1024 * 1024)
#define CRLFETCH_TIMEOUT	10      /* seconds per fetch */
#define CRLFETCH_AHEAD		7200    /* refresh this long before nextUpdate */
#define CRLFETCH_BACKOFF	300     /* a failed URL waits this long */
#define CRLFETCH_MAX_FAILS	1024    /* failed URLs remembered */
#define CRLFETCH_INTERVAL	3600    /* the daemon looks at all URLs */
#define CRLFETCH_OCSP_SKEW	300     /* clock skew allowed OCSP times */

/* One fetch is over: ok 1 with what was stored, or 0 with the reason. */
typedef void crlfetch_done_cb(const char *url, int ok, const char *msg,
    void *arg);

/* crlfetch.c */
/*
 * The loop does the HTTP and the bookkeeping; every store query (whether
 * a CRL or an OCSP answer is due; parsing, verifying and storing what came;
 * the certificates to ask about) is a job of sq's store thread, answered on
 * the loop; a full queue or a store away is an outcome like any ("could
 * not store", "nothing fetched"), logged, and waits still end.  Without sq
 * (smrelayctl) the jobs run in place on st and answer from the loop.  cfg
 * gives the listeners never to fetch from.  All outlive the fetcher.
 */
struct crlfetch *crlfetch_new(struct event_base *, struct evdns_base *,
    struct store *st, struct storeq *sq, const struct config *);
/* Cancel what is in flight (no callback) and free; after the store
 * thread stopped (storeq_free: its last answers came). */
void crlfetch_free(struct crlfetch *);
/* The URI CRL distribution points of x, appended to *urls (no doubles;
 * any scheme: crlfetch_url refuses what is not http:// or https://). */
void crlfetch_urls_of(X509 *x, char ***urls, size_t *n);
/* The distribution points of every certificate in the store. */
char **crlfetch_known_urls(struct store *, size_t *n);
void crlfetch_urls_free(char **, size_t);
/* Fetch url now; 0 started (done is called later), 1 already in flight
 * (done is not called for this request), -1 refused (done not called;
 * the reason in err). */
int crlfetch_url(struct crlfetch *, const char *url, crlfetch_done_cb *,
    void *arg, char *err, size_t errlen);
/*
 * The daemon's refresh: fetch each URL whose CRL is missing or runs out
 * within CRLFETCH_AHEAD (the store thread says), unless it failed in the
 * last CRLFETCH_BACKOFF seconds; outcomes go to the log.  How many URLs
 * are being checked (0: none, or the store thread's queue was full).
 */
size_t crlfetch_refresh(struct crlfetch *, char **urls, size_t n);
/*
 * Ask x's OCSP responder (Authority Information Access, the first
 * http:// or https:// one) about x, issued by issuer; the answer is kept
 * (store_ocsp_put) when it is signed by the issuer or a responder the
 * issuer delegated to, current, and no older than the answer stored.  0
 * started, -1 refused (reason in err, done not called).
 */
int crlfetch_ocsp(struct crlfetch *, X509 *x, X509 *issuer,
    crlfetch_done_cb *, void *arg, char *err, size_t errlen);
/* Ask about every stored certificate that names an OCSP responder (with
 * due_only, those without a current answer, and not those whose responder
 * failed lately), read by the store thread; refusals and outcomes go to
 * done.  0, or -1 (logged) when the store thread's queue is full. */
int crlfetch_ocsp_known(struct crlfetch *, int due_only,
    crlfetch_done_cb *, void *arg);
/* The daemon's refresh of OCSP answers (due ones, logged). */
int crlfetch_ocsp_refresh(struct crlfetch *);
/* Fetches in flight, and store jobs under way. */
size_t crlfetch_pending(const struct crlfetch *);
/*
 * For a message whose verdict waits on revocation: fetch what could decide
 * each of the n links (its certificate's CRL distribution points that are
 * due, its OCSP responder when the issuer is known), joining fetches
 * already in flight and skipping URLs that failed within
 * CRLFETCH_BACKOFF; outcomes are logged as the refresh's are.  cb(arg) is
 * called once, from the loop (never from within this call), when every one
 * of them is over: fetched and stored, or not (the store thread found
 * nothing due, could not be asked, could not store).  NULL when there is
 * nothing to wait for (cb is never called then).
 */
typedef void crlfetch_wait_cb(void *arg);
struct crlfetch_wait *crlfetch_wait(struct crlfetch *,
    const struct cms_link *links, size_t n, crlfetch_wait_cb *, void *arg);
/* Stop waiting: cb is not called; the fetches go on and are kept. */
void crlfetch_wait_cancel(struct crlfetch_wait *);

#endif
