/*
 * dns_test.c RESOLVER TRUST-ANCHORS CASE [ARG]: daemon/base/dns.c against
 * a real NSD (tests/dns/nsd.sh, driven by tests/dns/t_dns.sh, which also
 * writes the zones these cases expect).  One case per run, so each starts
 * with an empty cache.  TRUST-ANCHORS "-": none.  Prints what each lookup
 * returned and "ok CASE" or FAIL lines; exit 0 when every check held.
 * The "cache" case prints "PAUSE stop-nsd" and reads a line from stdin
 * before its second lookup.
 */
#include "autoconfig.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/lib.h"
#include "daemon/base/base.h"
#include "tests/unit/check.h"

enum kind { K_MX, K_ADDRS, K_TLSA, K_SMIMEA };

/* What one lookup returned, copied out of the callback. */
struct ans {
	int		 done;
	int		 calls;
	enum dns_status	 st;
	int		 secure, ttl, null_mx, implicit;
	size_t		 n, nskipped;
	char		 why[512];
	char		 qname[300];
	char		 text[16384];   /* records, comma-separated */
	double		 secs;
	double		 t0;
};

static struct event_base *base;
static const char *resolver, *anchors;
static int in_start;            /* inside dns_mx() and the like */

/* Append printf output to a->text. */
static void
add(struct ans *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add(struct ans *a, const char *fmt, ...)
{
	size_t l = strlen(a->text);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->text + l, sizeof(a->text) - l, fmt, ap);
	va_end(ap);
}

/* Render TLSA-shaped records. */
static void
add_tlsa(struct ans *a, const struct dns_tlsa *t, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		add(a, "%s%u %u %u ", i ? "," : "", t[i].usage, t[i].selector,
		    t[i].mtype);
		for (j = 0; j < t[i].len; j++)
			add(a, "%02x", t[i].data[j]);
	}
}

/* The callback of every lookup: copy the result. */
static void
got(const struct dns_result *r, void *arg)
{
	struct ans *a = arg;
	char buf[INET6_ADDRSTRLEN];
	const void *p;
	size_t i;

	CHECK(!in_start, "callback called from inside the start function");
	a->calls++;
	a->done = 1;
	a->secs = mono_now() - a->t0;
	a->st = r->status;
	a->secure = r->secure;
	a->ttl = r->ttl;
	a->null_mx = r->null_mx;
	a->implicit = r->implicit;
	a->nskipped = r->nskipped;
	snprintf(a->why, sizeof(a->why), "%s", r->why != NULL ? r->why : "(null)");
	snprintf(a->qname, sizeof(a->qname), "%s", r->qname ? r->qname : "");
	for (i = 0; i < r->nmx; i++)
		add(a, "%s%d %s", i ? "," : "", r->mx[i].pref, r->mx[i].host);
	a->n += r->nmx;
	for (i = 0; i < r->naddrs; i++) {
		if (r->addrs[i].ss_family == AF_INET6)
			p = &((const struct sockaddr_in6 *)&r->addrs[i])->sin6_addr;
		else
			p = &((const struct sockaddr_in *)&r->addrs[i])->sin_addr;
		inet_ntop(r->addrs[i].ss_family, p, buf, sizeof(buf));
		add(a, "%s%s", i ? "," : "", buf);
	}
	a->n += r->naddrs;
	add_tlsa(a, r->tlsa, r->ntlsa);
	a->n += r->ntlsa;
	add_tlsa(a, r->smimea, r->nsmimea);
	a->n += r->nsmimea;
}

/* Start a lookup of kind into a. */
static struct dns_query *
start(struct dns *d, enum kind k, const char *name, struct ans *a)
{
	struct dns_query *q = NULL;

	memset(a, 0, sizeof(*a));
	a->t0 = mono_now();
	in_start = 1;
	switch (k) {
	case K_MX:
		q = dns_mx(d, name, got, a);
		break;
	case K_ADDRS:
		q = dns_addrs(d, name, got, a);
		break;
	case K_TLSA:
		q = dns_tlsa(d, name, 25, got, a);
		break;
	case K_SMIMEA:
		q = dns_smimea(d, name, got, a);
		break;
	}
	in_start = 0;
	CHECK(!a->done, "%s: answered before the loop ran", name);
	return q;
}

/* Look up and wait for the answer; print it. */
static void
lookup(struct dns *d, enum kind k, const char *name, struct ans *a)
{
	start(d, k, name, a);
	while (!a->done)
		event_base_loop(base, EVLOOP_ONCE);
	printf("  %s %s: %s secure=%d ttl=%d n=%zu skipped=%zu %.2fs why=\"%s\"%s%s%s [%s]\n",
	    k == K_MX ? "MX" : k == K_ADDRS ? "ADDRS" : k == K_TLSA ? "TLSA" :
	    "SMIMEA", name, dns_strstatus(a->st), a->secure, a->ttl, a->n,
	    a->nskipped, a->secs, a->why, a->null_mx ? " null_mx" : "",
	    a->implicit ? " implicit" : "", "", a->text);
}

/* A resolver with trust anchors ta and the given timeout, answering
 * for test. (which libunbound keeps to itself by default). */
static struct dns *
mkdns_ta(const char *res, const char *ta, int timeout)
{
	char err[256];
	struct dns *d;

	d = dns_new(base, res, ta, err, sizeof(err));
	if (d == NULL || dns_set_option(d, "local-zone:", "test. transparent",
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "FAIL dns_new: %s\n", err);
		exit(1);
	}
	if (timeout > 0)
		dns_set_timeout(d, timeout);
	return d;
}

/* A resolver with the trust anchors of the command line. */
static struct dns *
mkdns(const char *res, int timeout)
{
	return mkdns_ta(res, strcmp(anchors, "-") ? anchors : NULL, timeout);
}

/* Several preferences sorted, equal ones shuffled over runs. */
static void
case_mx_sorted(void)
{
	struct dns *d = mkdns(resolver, 0);
	struct ans a;
	char first[16384];
	int i, differ = 0;

	lookup(d, K_MX, "partner.test", &a);
	CHECK(a.st == DNS_OK && a.n == 5, "5 MX hosts: %s", a.text);
	CHECK(strncmp(a.text, "10 a.partner.test,", 18) == 0, "10 first: %s",
	    a.text);
	CHECK(strstr(a.text, ",30 c.partner.test") != NULL &&
	    strcmp(strstr(a.text, ",30 c.partner.test"), ",30 c.partner.test") == 0,
	    "30 last: %s", a.text);
	CHECK(strstr(a.text, "20 b1.partner.test") != NULL &&
	    strstr(a.text, "20 b2.partner.test") != NULL &&
	    strstr(a.text, "20 b3.partner.test") != NULL, "the 20s: %s", a.text);
	CHECK(a.secure == 0, "unsigned zone is insecure");
	CHECK(a.ttl > 0 && a.ttl <= 300, "ttl %d", a.ttl);
	snprintf(first, sizeof(first), "%s", a.text);
	for (i = 0; i < 30; i++) {
		lookup(d, K_MX, "partner.test", &a);
		CHECK(a.st == DNS_OK && a.n == 5, "run %d", i);
		if (strcmp(a.text, first) != 0)
			differ++;
	}
	CHECK(differ > 0, "equal preferences never reordered in 31 runs");
	dns_free(d);
}

/* Implicit MX, null MX, NXDOMAIN, NODATA, an IP literal MX. */
static void
case_mx_kinds(void)
{
	struct dns *d = mkdns(resolver, 0);
	struct ans a;

	lookup(d, K_MX, "implicit.partner.test", &a);
	CHECK(a.st == DNS_OK && a.implicit && a.n == 1 &&
	    strcmp(a.text, "0 implicit.partner.test") == 0, "implicit MX");
	lookup(d, K_MX, "nullmx.partner.test", &a);
	CHECK(a.st == DNS_OK && a.null_mx && a.n == 0, "null MX");
	lookup(d, K_MX, "nosuch.partner.test", &a);
	CHECK(a.st == DNS_NXDOMAIN, "NXDOMAIN");
	lookup(d, K_MX, "txtonly.partner.test", &a);
	CHECK(a.st == DNS_NODATA && !a.implicit, "NODATA");
	lookup(d, K_MX, "literal.partner.test", &a);
	CHECK(a.st == DNS_OK && a.n == 1 && a.nskipped == 1 &&
	    strcmp(a.text, "20 good.partner.test") == 0 &&
	    strstr(a.why, "192.0.2.7") != NULL &&
	    strstr(a.why, "IP address literal") != NULL,
	    "IP-literal MX skipped and reported");
	lookup(d, K_MX, "onlyliteral.partner.test", &a);
	CHECK(a.st == DNS_BADANSWER && strstr(a.why, "IP address") != NULL,
	    "only an IP-literal MX: unusable");
	lookup(d, K_MX, "[192.0.2.1]", &a);
	CHECK(a.st == DNS_BADANSWER, "address literal as domain refused");
	lookup(d, K_MX, "a..b", &a);
	CHECK(a.st == DNS_BADANSWER, "empty label refused");
	dns_free(d);
}

/* Addresses: IPv6 first then IPv4; NODATA; NXDOMAIN. */
static void
case_addrs(void)
{
	struct dns *d = mkdns(resolver, 0);
	struct ans a;

	lookup(d, K_ADDRS, "dual.partner.test", &a);
	CHECK(a.st == DNS_OK && a.n == 3, "3 addresses");
	CHECK(strncmp(a.text, "2001:db8::1,", 12) == 0 &&
	    strstr(a.text, "192.0.2.1") != NULL &&
	    strstr(a.text, "192.0.2.2") != NULL, "v6 first: %s", a.text);
	lookup(d, K_ADDRS, "v4only.partner.test", &a);
	CHECK(a.st == DNS_OK && strcmp(a.text, "192.0.2.4") == 0, "v4 only");
	lookup(d, K_ADDRS, "txtonly.partner.test", &a);
	CHECK(a.st == DNS_NODATA, "no addresses: NODATA");
	lookup(d, K_ADDRS, "nosuch.partner.test", &a);
	CHECK(a.st == DNS_NXDOMAIN, "NXDOMAIN");
	dns_free(d);
}

/* A signed zone is secure, the bogus RRset BOGUS, an unsigned one not. */
static void
case_dnssec(void)
{
	struct dns *d = mkdns(resolver, 0);
	struct ans a;

	lookup(d, K_MX, "signed.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 1 &&
	    strcmp(a.text, "10 mx.signed.test") == 0, "signed MX secure");
	lookup(d, K_ADDRS, "mx.signed.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 1 && a.n == 2, "signed A+AAAA secure");
	lookup(d, K_MX, "nosuch.signed.test", &a);
	CHECK(a.st == DNS_NXDOMAIN && a.secure == 1, "signed NXDOMAIN secure");
	lookup(d, K_MX, "partner.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 0, "unsigned insecure");
	lookup(d, K_ADDRS, "mx.bogus.test", &a);
	CHECK(a.st == DNS_BOGUS && a.secure == 0 && strlen(a.why) > 0,
	    "tampered RRSIG: BOGUS");
	lookup(d, K_MX, "bogus.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 1,
	    "the untampered MX of that zone is still secure");
	dns_free(d);

	/* without trust anchors nothing is secure */
	d = mkdns_ta(resolver, NULL, 0);
	lookup(d, K_MX, "signed.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 0, "no anchor: insecure");
	lookup(d, K_ADDRS, "mx.bogus.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 0, "no anchor: not bogus either");
	dns_free(d);
}

/* TLSA and SMIMEA. */
static void
case_tlsa(const char *smimea_owner)
{
	struct dns *d = mkdns(resolver, 0);
	char name[300];
	struct ans a;

	lookup(d, K_TLSA, "mx.signed.test", &a);
	CHECK(strcmp(a.qname, "_25._tcp.mx.signed.test") == 0, "owner %s",
	    a.qname);
	CHECK(a.st == DNS_OK && a.secure == 1 && a.n == 2, "2 TLSA");
	CHECK(strstr(a.text, "3 1 1 "
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	    != NULL, "3 1 1 record: %s", a.text);
	CHECK(strstr(a.text, "2 0 2 ") != NULL, "2 0 2 record");
	CHECK(a.nskipped == 1, "the short SHA-256 record skipped");
	lookup(d, K_TLSA, "mx.partner.test", &a);
	CHECK(a.st == DNS_NXDOMAIN || a.st == DNS_NODATA, "no TLSA");

	CHECK(dns_smimea_name("alice@signed.test", name, sizeof(name)) == 0 &&
	    strcmp(name, smimea_owner) == 0, "SMIMEA owner %s, shell says %s",
	    name, smimea_owner);
	lookup(d, K_SMIMEA, "alice@signed.test", &a);
	CHECK(strcmp(a.qname, smimea_owner) == 0, "queried %s", a.qname);
	CHECK(a.st == DNS_OK && a.secure == 1 && a.n == 1 &&
	    strncmp(a.text, "3 0 0 3082", 10) == 0, "SMIMEA found: %s",
	    a.text);
	lookup(d, K_SMIMEA, "Alice@signed.test", &a);
	CHECK(a.st == DNS_NXDOMAIN && a.secure == 1,
	    "local-part hashed as it is (Alice is another owner)");
	lookup(d, K_SMIMEA, "no-at-sign", &a);
	CHECK(a.st == DNS_BADANSWER, "not an address");
	dns_free(d);
}

/* NSD stopped (t_dns.sh did it) or a resolver that never answers:
 * TEMPFAIL within the timeout. */
static void
case_tempfail(const char *why_part)
{
	struct dns *d = mkdns(resolver, 1500);
	struct ans a;

	lookup(d, K_MX, "partner.test", &a);
	CHECK(a.st == DNS_TEMPFAIL, "TEMPFAIL");
	CHECK(a.secs < 2.5, "within the 1.5 s timeout (took %.2f s)", a.secs);
	CHECK(strstr(a.why, why_part) != NULL, "why \"%s\" has \"%s\"",
	    a.why, why_part);
	lookup(d, K_ADDRS, "dual.partner.test", &a);
	CHECK(a.st == DNS_TEMPFAIL && a.secs < 2.5, "addresses too");
	dns_free(d);
}

/* A second lookup within the TTL is answered with NSD stopped. */
static void
case_cache(void)
{
	struct dns *d = mkdns(resolver, 1500);
	char line[64];
	struct ans a;

	lookup(d, K_MX, "signed.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 1, "first lookup");
	lookup(d, K_ADDRS, "dual.partner.test", &a);
	CHECK(a.st == DNS_OK && a.n == 3, "first address lookup");
	printf("PAUSE stop-nsd\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		CHECK(0, "no go-ahead on stdin");
	lookup(d, K_MX, "signed.test", &a);
	CHECK(a.st == DNS_OK && a.secure == 1 &&
	    strcmp(a.text, "10 mx.signed.test") == 0 && a.secs < 0.5,
	    "cached MX, still secure");
	lookup(d, K_ADDRS, "dual.partner.test", &a);
	CHECK(a.st == DNS_OK && a.n == 3 && a.secs < 0.5, "cached addresses");
	lookup(d, K_MX, "implicit.partner.test", &a);
	CHECK(a.st == DNS_TEMPFAIL, "not cached: TEMPFAIL");
	dns_free(d);
}

/* Hostile sizes and loops: bounded, no crash, no hang. */
static void
case_hostile(void)
{
	struct dns *d = mkdns(resolver, 5000);
	struct ans a;

	lookup(d, K_MX, "big.partner.test", &a);
	CHECK(a.st == DNS_BADANSWER && strstr(a.why, "more than 100") != NULL,
	    "200 MX records: BADANSWER");
	lookup(d, K_ADDRS, "many.partner.test", &a);
	CHECK(a.st == DNS_BADANSWER && strstr(a.why, "more than 64") != NULL,
	    "100 addresses: BADANSWER");
	lookup(d, K_ADDRS, "wide.partner.test", &a);
	CHECK(a.st == DNS_OK && a.n == 60, "60 AAAA (over TCP): all there");
	lookup(d, K_MX, "loop1.partner.test", &a);
	CHECK(a.st != DNS_OK && a.secs < 5.5, "CNAME loop: %s in %.2f s",
	    dns_strstatus(a.st), a.secs);
	lookup(d, K_ADDRS, "loop1.partner.test", &a);
	CHECK(a.st != DNS_OK && a.secs < 5.5, "CNAME loop addresses");
	lookup(d, K_MX, "alias.partner.test", &a);
	CHECK(a.st == DNS_OK && strcmp(a.text, "10 a.partner.test") == 0,
	    "a CNAME to a domain with MX is followed");
	dns_free(d);
}

static struct dns *freeing;
static int nstray;

/* Callback that must never run. */
static void
stray(const struct dns_result *r, void *arg)
{
	(void)r;
	(void)arg;
	nstray++;
}

/* Callback that frees the whole resolver. */
static void
free_in_cb(const struct dns_result *r, void *arg)
{
	got(r, arg);
	dns_free(freeing);
	freeing = NULL;
}

static struct dns_query *other;

/* Callback of that other query: legitimate only before the cancel. */
static void
other_cb(const struct dns_result *r, void *arg)
{
	(void)r;
	(void)arg;
	if (other == NULL)
		nstray++;
	other = NULL;
}

/* Callback that cancels the other query (unless it was reported). */
static void
cancel_other(const struct dns_result *r, void *arg)
{
	got(r, arg);
	if (other != NULL)
		dns_cancel(other);
	other = NULL;
}

/* Cancel: no callback after dns_cancel or dns_free, from any state. */
static void
case_cancel(void)
{
	struct dns *d = mkdns(resolver, 0);
	struct dns_query *q[8];
	struct ans a, b;
	struct timeval tv = { 0, 300000 };
	int i;

	/* in flight, and an invalid name whose failure is deferred */
	for (i = 0; i < 6; i++)
		q[i] = dns_mx(d, i % 2 ? "partner.test" : "signed.test", stray,
		    NULL);
	q[6] = dns_mx(d, "[bad]", stray, NULL);
	q[7] = dns_addrs(d, "dual.partner.test", stray, NULL);
	for (i = 0; i < 8; i++)
		dns_cancel(q[i]);
	lookup(d, K_MX, "partner.test", &a);
	CHECK(a.st == DNS_OK && a.calls == 1, "the one left is answered");
	/* cancel from a callback: the other query's answer may have come
	 * in the same ub_process (asked after this one), not reported yet */
	memset(&b, 0, sizeof(b));
	(void)dns_addrs(d, "dual.partner.test", cancel_other, &b);
	other = dns_mx(d, "partner.test", other_cb, NULL);
	while (!b.done)
		event_base_loop(base, EVLOOP_ONCE);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CHECK(nstray == 0, "%d cancelled callbacks called", nstray);

	/* dns_free with lookups in flight (and a deferred failure) */
	for (i = 0; i < 6; i++)
		(void)dns_addrs(d, i % 2 ? "mx.signed.test" : "nosuch.test",
		    stray, NULL);
	(void)dns_tlsa(d, "mx.signed.test", 25, stray, NULL);
	(void)dns_mx(d, "", stray, NULL);
	dns_free(d);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CHECK(nstray == 0, "%d callbacks after dns_free", nstray);

	/* dns_free from inside a callback, others pending */
	freeing = d = mkdns(resolver, 0);
	for (i = 0; i < 4; i++)
		(void)dns_mx(d, "signed.test", stray, NULL);
	memset(&a, 0, sizeof(a));
	(void)dns_mx(d, "[bad]", free_in_cb, &a);
	while (!a.done)
		event_base_loop(base, EVLOOP_ONCE);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CHECK(freeing == NULL && nstray == 0, "freed in a callback, %d stray",
	    nstray);
}

/* The pure helpers on hand-made rdata, and dns_new's checks. */
static void
case_rdata(void)
{
	static const uint8_t mx_ok[] = { 0, 10, 2, 'm', 'X', 1, 'a', 0 };
	static const uint8_t mx_root[] = { 0, 0, 0 };
	static const uint8_t mx_ptr[] = { 0, 10, 2, 'm', 'x', 0xc0, 12 };
	static const uint8_t mx_long[] = { 0, 10, 64, 'a' };
	static const uint8_t mx_trail[] = { 0, 10, 1, 'a', 0, 0 };
	static const uint8_t mx_short[] = { 0, 10, 3, 'a', 'b' };
	static const uint8_t mx_dot[] = { 0, 10, 3, 'a', '.', 'b', 0 };
	static const uint8_t tl[] = { 3, 1, 1, 0xaa };
	uint8_t big[2 + 5 * 60 + 1];
	struct dns_tlsa t;
	char host[256], err[256];
	int pref, i;

	CHECK(dns_rdata_mx(mx_ok, sizeof(mx_ok), &pref, host, sizeof(host)) == 0 &&
	    pref == 10 && strcmp(host, "mx.a") == 0, "MX decoded: %s", host);
	CHECK(dns_rdata_mx(mx_root, sizeof(mx_root), &pref, host,
	    sizeof(host)) == 0 && *host == '\0' && pref == 0, "root");
	CHECK(dns_rdata_mx(mx_ptr, sizeof(mx_ptr), &pref, host, sizeof(host))
	    == -1, "compression pointer refused");
	CHECK(dns_rdata_mx(mx_long, sizeof(mx_long), &pref, host, sizeof(host))
	    == -1, "64-octet label refused");
	CHECK(dns_rdata_mx(mx_trail, sizeof(mx_trail), &pref, host,
	    sizeof(host)) == -1, "trailing octets refused");
	CHECK(dns_rdata_mx(mx_short, sizeof(mx_short), &pref, host,
	    sizeof(host)) == -1, "truncated label refused");
	CHECK(dns_rdata_mx(mx_dot, sizeof(mx_dot), &pref, host, sizeof(host))
	    == -1, "a dot inside a label refused");
	CHECK(dns_rdata_mx(mx_ok, sizeof(mx_ok), &pref, host, 4) == -1,
	    "small output refused");
	/* a 301-octet name: 5 labels of 59 */
	big[0] = 0;
	big[1] = 1;
	for (i = 0; i < 5; i++) {
		big[2 + 60 * i] = 59;
		memset(big + 2 + 60 * i + 1, 'a', 59);
	}
	big[sizeof(big) - 1] = 0;
	CHECK(dns_rdata_mx(big, sizeof(big), &pref, host, sizeof(host)) == -1,
	    "name over 255 octets refused");
	big[2 + 60 * 4] = 0;
	CHECK(dns_rdata_mx(big, 2 + 60 * 4 + 1, &pref, host, sizeof(host)) == 0 &&
	    strlen(host) == 4 * 59 + 3, "a 241-octet name decoded");
	CHECK(dns_rdata_tlsa(tl, sizeof(tl), &t) == -1,
	    "SHA-256 TLSA of 1 octet refused");
	CHECK(dns_rdata_tlsa(tl, 3, &t) == -1, "TLSA without data refused");
	CHECK(dns_host_bad("192.0.2.1") != NULL && dns_host_bad("a_b.c") != NULL &&
	    dns_host_bad("mx.123") != NULL && dns_host_bad("mx.a") == NULL,
	    "host checks");
	CHECK(dns_new(base, "127.0.0.1:99999", NULL, err, sizeof(err)) == NULL,
	    "bad port refused");
	CHECK(dns_new(base, "mx.example", NULL, err, sizeof(err)) == NULL,
	    "a name as resolver refused");
	CHECK(dns_new(base, NULL, "/nonexistent/ta", err, sizeof(err)) == NULL &&
	    strstr(err, "/nonexistent/ta") != NULL, "missing anchor file: %s",
	    err);
}

int
main(int argc, char **argv)
{
	const char *c;

	if (argc < 4) {
		fprintf(stderr, "usage: dns_test RESOLVER ANCHORS CASE [ARG]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(120);
	resolver = argv[1];
	anchors = argv[2];
	c = argv[3];
	if ((base = event_base_new()) == NULL)
		return 2;
	if (strcmp(c, "mx_sorted") == 0)
		case_mx_sorted();
	else if (strcmp(c, "mx_kinds") == 0)
		case_mx_kinds();
	else if (strcmp(c, "addrs") == 0)
		case_addrs();
	else if (strcmp(c, "dnssec") == 0)
		case_dnssec();
	else if (strcmp(c, "tlsa") == 0 && argc > 4)
		case_tlsa(argv[4]);
	else if (strcmp(c, "tempfail") == 0 && argc > 4)
		case_tempfail(argv[4]);
	else if (strcmp(c, "cache") == 0)
		case_cache();
	else if (strcmp(c, "hostile") == 0)
		case_hostile();
	else if (strcmp(c, "cancel") == 0)
		case_cancel();
	else if (strcmp(c, "rdata") == 0)
		case_rdata();
	else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	event_base_free(base);
	if (failures > 0) {
		printf("%d of %d checks failed in %s\n", failures, checks, c);
		return 1;
	}
	printf("ok %s: %d checks\n", c, checks);
	return 0;
}
