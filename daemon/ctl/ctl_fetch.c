/* ctl_fetch.c: smrelayctl crl fetch: every HTTP CRL distribution point of
 * the certificates in the store, fetched now, and every OCSP responder
 * they name asked (all at once, each bounded in time and size), one line
 * per URL: stored, unchanged, the OCSP status, or why not. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "ctl.h"
#include "daemon/base/base.h"
#include "daemon/smime/smime.h"
#include "lib/lib.h"
#include "store/store.h"

/* What the fetches add up to. */
struct fetch_tally {
	size_t	ok, failed;
};

/* One URL done: print it. */
static void
fetch_done(const char *url, int ok, const char *msg, void *arg)
{
	struct fetch_tally *t = arg;

	if (ok) {
		t->ok++;
		printf("%s\t%s\n", url, msg);
	} else {
		t->failed++;
		fprintf(stderr, "smrelayctl: crl fetch: %s: %s\n", url, msg);
	}
}

/* Start a fetch per URL and run the loop until all are over. */
static int
fetch_all(struct store *st, const struct config *cfg, char **urls,
    size_t n)
{
	struct fetch_tally t = { 0, 0 };
	struct event_base *base;
	struct evdns_base *dns;
	struct crlfetch *cf;
	char err[512];
	size_t i;

	if ((base = event_base_new()) == NULL ||
	    (dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL)
		alloc_fail("event_base_new");
	cf = crlfetch_new(base, dns, st, NULL, cfg);
	for (i = 0; i < n; i++)
		if (crlfetch_url(cf, urls[i], fetch_done, &t, err,
		    sizeof(err)) == -1) {
			t.failed++;
			fprintf(stderr, "smrelayctl: crl fetch: %s: refused: "
			    "%s\n", urls[i], err);
		}
	crlfetch_ocsp_known(cf, 0, fetch_done, &t);
	while (crlfetch_pending(cf) > 0)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			break;
	/* the finished requests free themselves from the loop */
	event_base_loop(base, EVLOOP_NONBLOCK);
	crlfetch_free(cf);
	evdns_base_free(dns, 0);
	event_base_free(base);
	return t.failed > 0 ? 1 : 0;
}

int
ctl_fetch_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	struct config *cfg;
	struct keyfile *kf;
	struct store *st;
	char err[1024], **urls;
	size_t n = 0;
	int rc = 1;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: smrelayctl crl fetch%s%s\n",
		    cmd->args[0] ? " " : "", cmd->args);
		return CTL_USAGE;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	if (ctl_open_store(cfg, &st, &kf) == -1) {
		config_free(cfg);
		return CTL_FAIL;
	}
	keyfile_close(kf);
	urls = crlfetch_known_urls(st, &n);
	rc = fetch_all(st, cfg, urls, n);
	crlfetch_urls_free(urls, n);
	store_close(st);
	config_free(cfg);
	return rc;
}
