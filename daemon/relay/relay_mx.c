/* relay_mx.c: where an MX destination's connections go (relay_conn.h).
 * The recipient domain's MX hosts by preference, equal ones in random
 * order (RFC 5321 5.1), every address of a host (IPv6 first) before the
 * next host; looked up through the pool's resolver (dns.c) once per TTL
 * and shared by the destination's connections.  An address of ours, or
 * `localhost`, ends the list there (RFC 5321 5.1: we are that MX, so
 * only better ones may take it; none left is a loop, 5.4.6).  With
 * relay_tls = dane or dane-only, each host whose MX and address records
 * are DNSSEC-secure has its TLSA records looked up too (RFC 7672). */
#include "autoconfig.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "relay_conn.h"

#define MX_HOSTS_MAX	10	/* MX hosts looked up and tried */
#define MX_TTL_MIN	5	/* seconds a lookup is reused, at least */
#define MX_TTL_MAX	3600	/* ... at most */
#define MX_FAIL_TTL	10	/* a failed lookup is reused this long */

/* One host's address lookup. */
struct mx_ask {
	struct relay_hop	*h;
	size_t			 i;
};

/* Free a list of TLSA copies. */
void
mx_tlsa_free(struct relay_tlsa *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].data);
	free(v);
}

/* A copy of a list of TLSA records. */
static struct relay_tlsa *
tlsa_copy(const struct relay_tlsa *v, size_t n)
{
	struct relay_tlsa *c;
	size_t i;

	if (n == 0)
		return NULL;
	c = xcalloc(n, sizeof(*c));
	for (i = 0; i < n; i++) {
		c[i] = v[i];
		c[i].data = xmalloc(v[i].len);
		memcpy(c[i].data, v[i].data, v[i].len);
	}
	return c;
}

/* Free the per-host state of a lookup in progress (its queries
 * cancelled). */
static void
mx_hosts_free(struct relay_hop *h)
{
	size_t i, j;

	for (i = 0; i < h->nmx; i++) {
		if (h->aq[i] != NULL)
			dns_cancel(h->aq[i]);
		if (h->tq[i] != NULL)
			dns_cancel(h->tq[i]);
		for (j = 0; j < h->nhcands[i]; j++)
			free(h->hcands[i][j].host);
		free(h->hcands[i]);
		mx_tlsa_free(h->htlsa[i], h->nhtlsa[i]);
		free(h->mxs[i].host);
	}
	free(h->aq);
	free(h->tq);
	free(h->asks);
	free(h->hcands);
	free(h->nhcands);
	free(h->hdane);
	free(h->htlsa);
	free(h->nhtlsa);
	free(h->mxs);
	h->aq = h->tq = NULL;
	h->asks = NULL;
	h->hcands = NULL;
	h->nhcands = NULL;
	h->hdane = NULL;
	h->htlsa = NULL;
	h->nhtlsa = NULL;
	h->mxs = NULL;
	h->nmx = h->apending = 0;
}

/* Free the candidates. */
static void
cands_free(struct relay_cand *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].host);
		mx_tlsa_free(v[i].tlsa, v[i].ntlsa);
	}
	free(v);
}

/* Forget the lookups in flight and the results of the hop. */
void
mx_clear(struct relay_hop *h)
{
	if (h->mxq != NULL)
		dns_cancel(h->mxq);
	h->mxq = NULL;
	mx_hosts_free(h);
	cands_free(h->cands, h->ncands);
	h->cands = NULL;
	h->ncands = 0;
}

/* Whether sa is a local address (an interface of this machine). */
static int
addr_local(const struct sockaddr *sa)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (getifaddrs(&ifa) == -1)
		return 0;
	for (i = ifa; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family !=
		    sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET)
			found = memcmp(&((const struct sockaddr_in *)
			    (const void *)sa)->sin_addr,
			    &((struct sockaddr_in *)(void *)i->ifa_addr)->
			    sin_addr, sizeof(struct in_addr)) == 0;
		else if (sa->sa_family == AF_INET6)
			found = memcmp(&((const struct sockaddr_in6 *)
			    (const void *)sa)->sin6_addr,
			    &((struct sockaddr_in6 *)(void *)i->ifa_addr)->
			    sin6_addr, sizeof(struct in6_addr)) == 0;
	}
	freeifaddrs(ifa);
	return found;
}

/* Whether sa is a loopback address. */
static int
addr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr);
	return 0;
}

/* The port of sa. */
static int
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->
		    sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->
	    sin6_port);
}

/* Whether one of our listeners has address and port sa. */
static int
addr_ours(const struct config *cfg, const struct sockaddr *sa)
{
	struct sockaddr_storage ls;
	const char *host;
	int i;

	for (i = 0; i < cfg->nlistens; i++) {
		if (atoi(cfg->listens[i].port) != addr_port(sa))
			continue;
		host = cfg->listens[i].host;
		if (host == NULL || host[0] == '\0' || strcmp(host, "*") == 0 ||
		    strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
			if (addr_loopback(sa) || addr_local(sa))
				return 1;
			continue;
		}
		memset(&ls, 0, sizeof(ls));
		if (sa->sa_family == AF_INET && inet_pton(AF_INET, host,
		    &((struct sockaddr_in *)(void *)&ls)->sin_addr) == 1 &&
		    memcmp(&((struct sockaddr_in *)(void *)&ls)->sin_addr,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    sizeof(struct in_addr)) == 0)
			return 1;
		if (sa->sa_family == AF_INET6 && inet_pton(AF_INET6, host,
		    &((struct sockaddr_in6 *)(void *)&ls)->sin6_addr) == 1 &&
		    memcmp(&((struct sockaddr_in6 *)(void *)&ls)->sin6_addr,
		    &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, sizeof(struct in6_addr)) == 0)
			return 1;
	}
	return 0;
}

/* The lookup failed: what every connection waiting for it gets. */
static void
mx_failed(struct relay_hop *h, int code, const char *enh, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
mx_failed(struct relay_hop *h, int code, const char *enh, const char *fmt,
    ...)
{
	char text[sizeof(h->fail.text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_result_set(&h->fail, code, enh, "%s", text);
	h->failed = 1;
	h->expire = time(NULL) + MX_FAIL_TTL;
}

/* Connect c to its candidate. */
static void
mx_try(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;
	const struct relay_cand *k = &h->cands[c->cand];
	char addr[INET6_ADDRSTRLEN];
	const void *a;

	a = k->ss.ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)(const void *)&k->ss)->
	    sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)(const void *)&k->ss)->
	    sin6_addr;
	if (inet_ntop(k->ss.ss_family, a, addr, sizeof(addr)) == NULL)
		strlcpy_s(addr, "?", sizeof(addr));
	free(c->host);
	c->host = xstrdup(k->host);
	snprintf(c->peer, sizeof(c->peer), "%s[%s]:%s", k->host, addr,
	    c->port);
	c->cgen = h->cgen;
	mx_tlsa_free(c->tlsa, c->ntlsa);
	c->dane = k->dane;
	c->tlsa = tlsa_copy(k->tlsa, k->ntlsa);
	c->ntlsa = k->ntlsa;
	c->hop->ops->connect(c, (const struct sockaddr *)&k->ss, k->sslen);
}

/* Start the waiting connections (or fail them with the lookup's outcome). */
static void
mx_release(struct relay_hop *h)
{
	struct relay_conn *c;

	while ((c = TAILQ_FIRST(&h->waiting)) != NULL) {
		TAILQ_REMOVE(&h->waiting, c, idle_entry);
		c->hop->ops->enter_state(c, C_INIT);
		if (h->failed || h->ncands == 0)
			c->hop->ops->fail(c, 0, &h->fail);
		else {
			c->cand = 0;
			mx_try(c);
		}
	}
}

/* Whether the hop enforces DANE where it can. */
static int
mx_wants_dane(const struct relay_hop *h)
{
	return h->tls == RELAY_TLS_DANE || h->tls == RELAY_TLS_DANE_ONLY;
}

/* Every host's addresses (and TLSA records) are in: the candidates in
 * order; our own addresses and what follows them left out, and with DANE
 * the hosts whose TLSA lookup failed (or, dane-only, that have none). */
static void
mx_done(struct relay_hop *h)
{
	struct relay_cand *v;
	size_t i, j, n = 0, total = 0, nodane = 0;
	int self_pref = -1, port = atoi(h->port);
	enum relay_dane d;

	for (i = 0; i < h->nmx; i++)
		total += h->nhcands[i];
	v = xcalloc(total + 1, sizeof(*v));
	for (i = 0; i < h->nmx; i++) {
		d = mx_wants_dane(h) ? h->hdane[i] : DANE_NONE;
		if (d == DANE_FAIL || (h->tls == RELAY_TLS_DANE_ONLY &&
		    d != DANE_TLSA)) {
			nodane += h->nhcands[i];
			continue;
		}
		for (j = 0; j < h->nhcands[i]; j++) {
			v[n] = h->hcands[i][j];
			h->hcands[i][j].host = NULL;
			v[n].dane = d;
			if (d == DANE_TLSA) {
				v[n].tlsa = tlsa_copy(h->htlsa[i],
				    h->nhtlsa[i]);
				v[n].ntlsa = h->nhtlsa[i];
			}
			if (v[n].ss.ss_family == AF_INET)
				((struct sockaddr_in *)(void *)&v[n].ss)->
				    sin_port = htons((uint16_t)port);
			else
				((struct sockaddr_in6 *)(void *)&v[n].ss)->
				    sin6_port = htons((uint16_t)port);
			if (strcasecmp(v[n].host, "localhost") == 0 ||
			    addr_ours(h->cfg, (struct sockaddr *)&v[n].ss)) {
				if (self_pref == -1 || v[n].pref < self_pref)
					self_pref = v[n].pref;
			}
			n++;
		}
	}
	if (self_pref != -1) {
		for (i = j = 0; i < n; i++)
			if (v[i].pref < self_pref)
				v[j++] = v[i];
			else {
				free(v[i].host);
				mx_tlsa_free(v[i].tlsa, v[i].ntlsa);
			}
		log_warnx("relay: MX hosts of %s include this host (preference"
		    " %d): %zu of %zu address(es) left", h->host, self_pref,
		    j, n);
		n = j;
	}
	cands_free(h->cands, h->ncands);
	h->cands = v;
	h->ncands = n;
	h->cgen++;
	h->failed = 0;
	if (n == 0 && self_pref != -1)
		mx_failed(h, 554, "5.4.6", "mail for %s loops back to myself "
		    "(its MX hosts are this host)", h->host);
	else if (n == 0 && nodane > 0 && h->tls == RELAY_TLS_DANE_ONLY)
		mx_failed(h, 451, "4.7.5", "no MX host of %s has DNSSEC-secure"
		    " TLSA records (relay_tls = dane-only)%s%s", h->host,
		    h->mxwhy[0] ? ": " : "", h->mxwhy);
	else if (n == 0 && nodane > 0)
		mx_failed(h, 451, "4.7.5", "TLSA lookup failed for the MX hosts"
		    " of %s: %s", h->host, h->mxwhy);
	else if (n == 0)
		mx_failed(h, 451, "4.4.3", "no address for the MX hosts of %s"
		    "%s%s", h->host, h->mxwhy[0] ? ": " : "", h->mxwhy);
	mx_hosts_free(h);
	mx_release(h);
}

/* Note why a host was left out (the first reason is kept). */
static void
mx_why(struct relay_hop *h, const char *host, const char *what,
    const struct dns_result *r)
{
	if (h->mxwhy[0] != '\0')
		return;
	snprintf(h->mxwhy, sizeof(h->mxwhy), "%s: %s %s%s%s", host, what,
	    dns_strstatus(r->status), r->why && r->why[0] ? ", " : "",
	    r->why ? r->why : "");
}

/* One host's TLSA records: usable DANE-TA(2) and DANE-EE(3) ones kept
 * (RFC 7672 3.1.3: PKIX usages are unusable for SMTP). */
static void
mx_tlsa_cb(const struct dns_result *r, void *arg)
{
	struct mx_ask *a = arg;
	struct relay_hop *h = a->h;
	struct relay_tlsa *v;
	size_t i, n = 0;

	h->tq[a->i] = NULL;
	if (r->status == DNS_OK && r->secure && r->ntlsa > 0) {
		v = xcalloc(r->ntlsa, sizeof(*v));
		for (i = 0; i < r->ntlsa; i++) {
			if (r->tlsa[i].usage != 2 && r->tlsa[i].usage != 3)
				continue;
			v[n].usage = r->tlsa[i].usage;
			v[n].selector = r->tlsa[i].selector;
			v[n].mtype = r->tlsa[i].mtype;
			v[n].len = r->tlsa[i].len;
			v[n].data = xmalloc(r->tlsa[i].len + 1);
			memcpy(v[n].data, r->tlsa[i].data, r->tlsa[i].len);
			n++;
		}
		h->htlsa[a->i] = v;
		h->nhtlsa[a->i] = n;
		h->hdane[a->i] = n > 0 ? DANE_TLSA : DANE_UNUSABLE;
	} else if ((r->status == DNS_OK && !r->secure) ||
	    r->status == DNS_NODATA || r->status == DNS_NXDOMAIN) {
		/* insecure, or securely none: no DANE for this host */
		h->hdane[a->i] = DANE_NONE;
		if (h->tls == RELAY_TLS_DANE_ONLY)
			mx_why(h, h->mxs[a->i].host, "TLSA",  r);
	} else {
		/* RFC 7672 2.2.1: a failed lookup makes the host unusable */
		h->hdane[a->i] = DANE_FAIL;
		mx_why(h, h->mxs[a->i].host, "TLSA", r);
		log_warnx("relay: TLSA of %s (MX of %s): %s%s%s: host not "
		    "used", h->mxs[a->i].host, h->host,
		    dns_strstatus(r->status), r->why && r->why[0] ? ", " :
		    "", r->why ? r->why : "");
	}
	if (--h->apending == 0)
		mx_done(h);
}

static void mx_hosts(struct relay_hop *, const struct dns_mx *, size_t, int,
    int);

/* One host's addresses. */
static void
mx_addr_cb(const struct dns_result *r, void *arg)
{
	struct mx_ask *a = arg;
	struct relay_hop *h = a->h;
	struct relay_cand *v;
	size_t i, n = 0;

	h->aq[a->i] = NULL;
	if (r->status == DNS_OK && r->naddrs > 0) {
		v = xcalloc(r->naddrs, sizeof(*v));
		for (i = 0; i < r->naddrs; i++) {
			if (r->addrs[i].ss_family != AF_INET &&
			    r->addrs[i].ss_family != AF_INET6)
				continue;
			v[n].host = xstrdup(h->mxs[a->i].host);
			v[n].pref = h->mxs[a->i].pref;
			v[n].ss = r->addrs[i];
			v[n].sslen = r->addrs[i].ss_family == AF_INET ?
			    sizeof(struct sockaddr_in) :
			    sizeof(struct sockaddr_in6);
			v[n].secure = h->mx_secure && r->secure;
			n++;
		}
		h->hcands[a->i] = v;
		h->nhcands[a->i] = n;
		if (r->ttl > 0 && time(NULL) + r->ttl < h->expire)
			h->expire = time(NULL) + (r->ttl < MX_TTL_MIN ?
			    MX_TTL_MIN : r->ttl);
		/* DANE only where the MX and the host are secure */
		if (mx_wants_dane(h) && h->mx_secure && r->secure) {
			h->apending++;
			h->tq[a->i] = dns_tlsa(h->resolver, h->mxs[a->i].host,
			    atoi(h->port), mx_tlsa_cb, a);
		} else if (mx_wants_dane(h) &&
		    h->tls == RELAY_TLS_DANE_ONLY && h->mxwhy[0] == '\0')
			snprintf(h->mxwhy, sizeof(h->mxwhy), "%s: %s records"
			    " not DNSSEC-secure", h->mxs[a->i].host,
			    h->mx_secure ? "address" : "MX");
	} else
		mx_why(h, h->mxs[a->i].host, "address", r);
	if (--h->apending == 0)
		mx_done(h);
}

/* The MX answer: look up the hosts' addresses, or fail. */
static void
mx_cb(const struct dns_result *r, void *arg)
{
	struct relay_hop *h = arg;
	const char *why = r->why && r->why[0] ? r->why : "";

	h->mxq = NULL;
	h->mxwhy[0] = '\0';
	switch (r->status) {
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
		mx_failed(h, 550, "5.1.2", "recipient domain %s does not exist"
		    " (NXDOMAIN)", h->host);
		mx_release(h);
		return;
	case DNS_NODATA:
		mx_failed(h, 550, "5.1.2", "recipient domain %s has no MX or "
		    "address records", h->host);
		mx_release(h);
		return;
	case DNS_BOGUS:
		mx_failed(h, 451, "4.4.3", "DNSSEC validation of the MX of %s "
		    "failed: %s", h->host, why);
		mx_release(h);
		return;
	case DNS_TEMPFAIL:
	case DNS_BADANSWER:
		mx_failed(h, 451, "4.4.3", "MX lookup for %s failed: %s%s%s",
		    h->host, dns_strstatus(r->status), why[0] ? ", " : "",
		    why);
		mx_release(h);
		return;
	}
	if (r->null_mx) {
		mx_failed(h, 556, "5.1.10", "recipient domain %s does not "
		    "accept mail (null MX)", h->host);
		mx_release(h);
		return;
	}
	if (r->nmx == 0) {
		mx_failed(h, 451, "4.4.3", "no usable MX host for %s%s%s",
		    h->host, why[0] ? ": " : "", why);
		mx_release(h);
		return;
	}
	if (r->nskipped > 0)
		log_warnx("relay: MX of %s: %zu record(s) left out: %s",
		    h->host, r->nskipped, why);
	mx_hosts(h, r->mx, r->nmx, r->secure, r->ttl);
}

/* Look up the addresses of the hosts (by preference), each secure only
 * if secure (the MX answer) and its own answer are. */
static void
mx_hosts(struct relay_hop *h, const struct dns_mx *mx, size_t nmx,
    int secure, int ttl)
{
	size_t i, n;

	n = nmx < MX_HOSTS_MAX ? nmx : MX_HOSTS_MAX;
	h->mx_secure = secure;
	h->expire = time(NULL) + (ttl < MX_TTL_MIN ? MX_TTL_MIN :
	    ttl > MX_TTL_MAX ? MX_TTL_MAX : ttl);
	h->mxs = xcalloc(n, sizeof(*h->mxs));
	h->aq = xcalloc(n, sizeof(*h->aq));
	h->tq = xcalloc(n, sizeof(*h->tq));
	h->hcands = xcalloc(n, sizeof(*h->hcands));
	h->nhcands = xcalloc(n, sizeof(*h->nhcands));
	h->hdane = xcalloc(n, sizeof(*h->hdane));
	h->htlsa = xcalloc(n, sizeof(*h->htlsa));
	h->nhtlsa = xcalloc(n, sizeof(*h->nhtlsa));
	h->asks = xcalloc(n, sizeof(*h->asks));
	h->nmx = n;
	for (i = 0; i < n; i++) {
		h->mxs[i].host = xstrdup(mx[i].host);
		h->mxs[i].pref = mx[i].pref;
	}
	h->apending = n;
	for (i = 0; i < n; i++) {
		h->asks[i].h = h;
		h->asks[i].i = i;
		h->aq[i] = dns_addrs(h->resolver, h->mxs[i].host, mx_addr_cb,
		    &h->asks[i]);
	}
}

/* Give c an address of its destination, now or once looked up. */
void
mx_connect(struct relay_conn *c)
{
	struct relay_hop *h = c->hop;
	struct smtp_result res;

	if (h->resolver == NULL) {
		smtp_result_set(&res, 451, "4.3.5", "relay to MX hosts without"
		    " a DNS resolver");
		c->hop->ops->fail(c, 0, &res);
		return;
	}
	if (h->mxq == NULL && h->nmx == 0 && time(NULL) < h->expire) {
		if (h->failed || h->ncands == 0) {
			c->hop->ops->fail(c, 0, &h->fail);
			return;
		}
		c->cand = 0;
		mx_try(c);
		return;
	}
	TAILQ_INSERT_TAIL(&h->waiting, c, idle_entry);
	c->hop->ops->enter_state(c, C_RESOLVE);
	c->hop->ops->timer(c, h->to.connect);
	if (h->mxq == NULL && h->nmx == 0) {
		h->failed = 0;
		h->mxwhy[0] = '\0';
		if (h->fixed) {
			/* a named next hop of ours: no MX, its name is as
			 * secure as our configuration */
			struct dns_mx one = { h->host, 0 };

			mx_hosts(h, &one, 1, 1, MX_TTL_MAX);
		} else
			h->mxq = dns_mx(h->resolver, h->host, mx_cb, h);
	}
}

/* The next candidate after c's failed (before its session was set up). */
int
mx_next(struct relay_conn *c, const char *why)
{
	struct relay_hop *h = c->hop;

	if (c->cgen != h->cgen || c->cand + 1 >= h->ncands)
		return 0;
	log_info("relay cid=%016llx to=%s failed (%s), trying the next "
	    "address", (unsigned long long)c->id, c->peer, why);
	c->hop->ops->reset(c);
	c->cand++;
	mx_try(c);
	return 1;
}

/* Put c's TLSA records on ssl before the handshake: the MX host name is
 * the reference identifier for DANE-TA(2) (RFC 7672 3.2.2), DANE-EE(3)
 * without name checks; the handshake fails unless one matches.  -1 if
 * none is usable after all. */
int
mx_dane_setup(struct relay_conn *c, SSL *ssl)
{
	size_t i;
	int usable = 0;

	if (SSL_dane_enable(ssl, c->host) <= 0)
		return -1;
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (i = 0; i < c->ntlsa; i++)
		if (SSL_dane_tlsa_add(ssl, c->tlsa[i].usage,
		    c->tlsa[i].selector, c->tlsa[i].mtype, c->tlsa[i].data,
		    c->tlsa[i].len) > 0)
			usable++;
	if (usable == 0)
		return -1;
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}
