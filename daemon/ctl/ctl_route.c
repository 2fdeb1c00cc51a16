/* ctl_route.c: smrelayctl route test ADDR: where mail for ADDR goes, as
 * the relay decides it (route.c), and what DNS says about that next hop:
 * the MX answer, each host's addresses, its TLSA records and whether each
 * answer is DNSSEC-secure.  The lookups run on one event loop in three
 * rounds (MX, addresses, TLSA), the lookups of a round in parallel, each
 * bounded by the resolver module's timeout. */
#include "autoconfig.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "ctl.h"
#include "daemon/base/base.h"
#include "daemon/relay/relay.h"
#include "lib/lib.h"

#define RT_HOSTS_MAX	10	/* MX hosts looked up, as the relay does */
#define RT_ADDR_MAX	320	/* an envelope address (RFC 5321: 256) */
#define RT_WHY_MAX	256

/* One answer, copied out of its callback. */
struct rt_answer {
	int		 done;
	enum dns_status	 status;
	int		 secure;
	char		 why[RT_WHY_MAX];
};

/* One TLSA record, its data in hex. */
struct rt_tlsa {
	int		 usage, selector, mtype;
	char		*hex;
};

struct rt_test;

/* A host mail may go to: an MX host, or the fixed HOST of the target. */
struct rt_host {
	struct rt_test	*rt;
	char		*name;
	int		 pref;          /* -1: not from an MX */
	int		 literal;       /* an IP address: nothing looked up */
	struct rt_answer a;             /* its addresses */
	char		(*addrs)[INET6_ADDRSTRLEN];
	size_t		 naddrs;
	char		 owner[DNS_NAME_MAX + 16];     /* _PORT._tcp.NAME */
	const char	*tlsa_skip;     /* why TLSA were not looked up */
	struct rt_answer t;             /* its TLSA records */
	struct rt_tlsa	*tlsa;
	size_t		 ntlsa;
};

/* The test of one address. */
struct rt_test {
	const struct config *cfg;
	const char	*addr;
	struct route_target t;
	const char	*pattern;       /* of the matching route line */
	char		 domain[DNS_NAME_MAX + 1];      /* with an mx target */
	int		 port;
	const char	*anchor;        /* trust anchor file, or NULL */
	struct event_base *base;
	struct dns	*dns;
	int		 pending;
	struct rt_answer mx;
	int		 null_mx, implicit;
	size_t		 nmx;           /* MX hosts in the answer */
	struct rt_host	*hosts;
	size_t		 nhosts;
	char		 fail[1024];    /* why mail cannot go anywhere */
};

/* Copy what an answer says that every kind of lookup shares. */
static void
rt_answer_set(struct rt_answer *a, const struct dns_result *r)
{
	a->done = 1;
	a->status = r->status;
	a->secure = r->secure;
	/* dns.c may repeat the status as the reason: say it once */
	if (r->why == NULL || strcmp(r->why, dns_strstatus(r->status)) == 0)
		a->why[0] = '\0';
	else
		snprintf(a->why, sizeof(a->why), "%s", r->why);
}

/* Whether host is an IP address rather than a name. */
static int
rt_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

/* The MX answer: its hosts, at most RT_HOSTS_MAX of them. */
static void
rt_mx_cb(const struct dns_result *r, void *arg)
{
	struct rt_test *rt = arg;
	size_t i, n;

	rt->pending--;
	rt_answer_set(&rt->mx, r);
	if (r->status != DNS_OK)
		return;
	rt->null_mx = r->null_mx;
	rt->implicit = r->implicit;
	rt->nmx = r->nmx;
	n = r->nmx < RT_HOSTS_MAX ? r->nmx : RT_HOSTS_MAX;
	rt->hosts = xcalloc(n, sizeof(*rt->hosts));
	for (i = 0; i < n; i++) {
		rt->hosts[i].rt = rt;
		rt->hosts[i].name = xstrdup(r->mx[i].host);
		rt->hosts[i].pref = r->mx[i].pref;
	}
	rt->nhosts = n;
}

/* One host's addresses, in the resolver's order (IPv6 first). */
static void
rt_addr_cb(const struct dns_result *r, void *arg)
{
	struct rt_host *h = arg;
	const struct sockaddr_storage *ss;
	const void *p;
	size_t i;

	h->rt->pending--;
	rt_answer_set(&h->a, r);
	if (r->status != DNS_OK || r->naddrs == 0)
		return;
	h->addrs = xcalloc(r->naddrs, sizeof(*h->addrs));
	for (i = 0; i < r->naddrs && i < DNS_MAX_ADDRS; i++) {
		ss = &r->addrs[i];
		if (ss->ss_family == AF_INET)
			p = &((const struct sockaddr_in *)ss)->sin_addr;
		else if (ss->ss_family == AF_INET6)
			p = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		else
			continue;
		if (inet_ntop(ss->ss_family, p, h->addrs[h->naddrs],
		    sizeof(h->addrs[0])) != NULL)
			h->naddrs++;
	}
}

/* One host's TLSA records, their data in hex. */
static void
rt_tlsa_cb(const struct dns_result *r, void *arg)
{
	static const char hexd[] = "0123456789abcdef";
	struct rt_host *h = arg;
	struct rt_tlsa *x;
	size_t i, j;

	h->rt->pending--;
	rt_answer_set(&h->t, r);
	if (r->status != DNS_OK || r->ntlsa == 0)
		return;
	h->tlsa = xcalloc(r->ntlsa, sizeof(*h->tlsa));
	for (i = 0; i < r->ntlsa && i < DNS_MAX_TLSA; i++) {
		x = &h->tlsa[h->ntlsa++];
		x->usage = r->tlsa[i].usage;
		x->selector = r->tlsa[i].selector;
		x->mtype = r->tlsa[i].mtype;
		/* rdata is at most 65535 octets */
		x->hex = xmalloc(r->tlsa[i].len * 2 + 1);
		for (j = 0; j < r->tlsa[i].len; j++) {
			x->hex[2 * j] = hexd[r->tlsa[i].data[j] >> 4];
			x->hex[2 * j + 1] = hexd[r->tlsa[i].data[j] & 15];
		}
		x->hex[2 * j] = '\0';
	}
}

/* Run the loop until every lookup started has answered (each has its own
 * deadline in dns.c); one that never did counts as a failure. */
static void
rt_wait(struct rt_test *rt)
{
	while (rt->pending > 0)
		if (event_base_loop(rt->base, EVLOOP_ONCE) != 0)
			break;
}

/* An answer that never came: a temporary failure. */
static void
rt_answer_lost(struct rt_answer *a)
{
	if (a->done)
		return;
	a->done = 1;
	a->status = DNS_TEMPFAIL;
	snprintf(a->why, sizeof(a->why), "no answer");
}

/* The resolver of the configuration; -1 (said on stderr) without one. */
static int
rt_resolver(struct rt_test *rt)
{
	char err[512];

	/* With DNS in use config_load checked the trust anchor; a fixed
	 * next hop may go without one, and then nothing is secure. */
	rt->anchor = rt->cfg->dns_trust_anchor;
	if (!config_uses_dns(rt->cfg) && (rt->anchor == NULL ||
	    access(rt->anchor, R_OK) == -1))
		rt->anchor = NULL;
	if ((rt->base = event_base_new()) == NULL)
		alloc_fail("event_base_new");
	rt->dns = dns_new(rt->base, rt->cfg->dns_resolver, rt->anchor, err,
	    sizeof(err));
	if (rt->dns == NULL) {
		fprintf(stderr, "smrelayctl: route test: DNS: %s\n", err);
		return -1;
	}
	return 0;
}

/* Round one: the hosts of the target, from the MX answer or the target. */
static void
rt_round_mx(struct rt_test *rt)
{
	struct rt_host *h;

	if (!rt->t.mx) {
		rt->hosts = h = xcalloc(1, sizeof(*rt->hosts));
		rt->nhosts = 1;
		h->rt = rt;
		h->name = xstrdup(rt->t.host);
		h->pref = -1;
		if (rt_literal(h->name)) {
			h->literal = 1;
			h->a.done = 1;
			h->a.status = DNS_OK;
			h->addrs = xcalloc(1, sizeof(*h->addrs));
			snprintf(h->addrs[0], sizeof(h->addrs[0]), "%s",
			    h->name);
			h->naddrs = 1;
		}
		return;
	}
	rt->pending++;
	if (dns_mx(rt->dns, rt->domain, rt_mx_cb, rt) == NULL)
		rt->pending--;
	rt_wait(rt);
	rt_answer_lost(&rt->mx);
}

/* Round two: the addresses of every host that is a name. */
static void
rt_round_addrs(struct rt_test *rt)
{
	struct rt_host *h;
	size_t i;

	for (i = 0; i < rt->nhosts; i++) {
		h = &rt->hosts[i];
		if (h->literal)
			continue;
		rt->pending++;
		if (dns_addrs(rt->dns, h->name, rt_addr_cb, h) == NULL)
			rt->pending--;
	}
	rt_wait(rt);
	for (i = 0; i < rt->nhosts; i++)
		rt_answer_lost(&rt->hosts[i].a);
}

/* Round three: TLSA where RFC 7672 2.2 looks for them, that is where the
 * MX answer (if any) and the host's addresses are DNSSEC-secure. */
static void
rt_round_tlsa(struct rt_test *rt)
{
	struct rt_host *h;
	size_t i;

	for (i = 0; i < rt->nhosts; i++) {
		h = &rt->hosts[i];
		snprintf(h->owner, sizeof(h->owner), "_%d._tcp.%s", rt->port,
		    h->name);
		if (h->literal)
			h->tlsa_skip = "not looked up: IP address, no name";
		else if (h->a.status != DNS_OK || h->naddrs == 0)
			h->tlsa_skip = "not looked up: no address";
		else if ((rt->t.mx && !rt->mx.secure) || !h->a.secure)
			h->tlsa_skip = "not looked up: MX/host insecure";
		if (h->tlsa_skip != NULL)
			continue;
		rt->pending++;
		if (dns_tlsa(rt->dns, h->name, rt->port, rt_tlsa_cb, h) ==
		    NULL)
			rt->pending--;
	}
	rt_wait(rt);
	for (i = 0; i < rt->nhosts; i++)
		if (rt->hosts[i].tlsa_skip == NULL)
			rt_answer_lost(&rt->hosts[i].t);
}

/* Whether mail can go to h: it has an address, and with dane-only,
 * DNSSEC-secure TLSA records. */
static int
rt_host_usable(const struct rt_test *rt, const struct rt_host *h)
{
	if (h->naddrs == 0)
		return 0;
	if (rt->t.tls == RELAY_TLS_DANE_ONLY)
		return h->tlsa_skip == NULL && h->t.status == DNS_OK &&
		    h->t.secure && h->ntlsa > 0;
	return 1;
}

/* Why mail for the address goes nowhere into rt->fail, or "" if it goes
 * somewhere. */
static void
rt_verdict(struct rt_test *rt)
{
	const char *w = rt->mx.why;
	size_t i;

	rt->fail[0] = '\0';
	if (rt->t.mx && rt->mx.status != DNS_OK) {
		snprintf(rt->fail, sizeof(rt->fail), "MX lookup for %s: %s%s%s",
		    rt->domain, rt->mx.status == DNS_NXDOMAIN ?
		    "the domain does not exist (NXDOMAIN)" :
		    rt->mx.status == DNS_NODATA ? "no MX or address records "
		    "(NODATA)" : dns_strstatus(rt->mx.status), w[0] ? ", " :
		    "", w);
		return;
	}
	if (rt->null_mx) {
		snprintf(rt->fail, sizeof(rt->fail), "%s accepts no mail "
		    "(null MX)", rt->domain);
		return;
	}
	for (i = 0; i < rt->nhosts; i++)
		if (rt_host_usable(rt, &rt->hosts[i]))
			return;
	if (rt->nhosts == 0)
		snprintf(rt->fail, sizeof(rt->fail), "no usable MX host for "
		    "%s%s%s", rt->domain, w[0] ? ": " : "", w);
	else if (rt->t.tls == RELAY_TLS_DANE_ONLY)
		snprintf(rt->fail, sizeof(rt->fail), "no host with an address "
		    "and DNSSEC-secure TLSA records (dane-only)");
	else
		snprintf(rt->fail, sizeof(rt->fail), "no host with an "
		    "address");
}

/* "secure" or "insecure". */
static const char *
rt_sec(int secure)
{
	return secure ? "secure" : "insecure";
}

/* The MX answer's notes: null or implicit MX, hosts left out, why. */
static void
rt_mx_note(const struct rt_test *rt, char *buf, size_t len)
{
	const char *what = "";

	if (rt->null_mx)
		what = "null MX: the domain accepts no mail";
	else if (rt->implicit)
		what = "implicit MX: no MX records, the domain itself";
	else if (rt->mx.status == DNS_NXDOMAIN)
		what = "the domain does not exist";
	snprintf(buf, len, "%s%s%s%s", what, what[0] && rt->mx.why[0] ?
	    "; " : "", rt->mx.why, rt->nmx > rt->nhosts ?
	    "; more hosts not looked up" : "");
}

/* The tab-separated listing, one record a line (see ctl.h). */
static void
rt_print_text(const struct rt_test *rt)
{
	const struct rt_host *h;
	char note[RT_WHY_MAX * 2];
	size_t i, j;

	printf("address\t%s\n", rt->addr);
	if (rt->t.route_line > 0)
		printf("rule\troute\t%d\t%s\n", rt->t.route_line,
		    rt->pattern ? rt->pattern : "");
	else
		printf("rule\trelay\n");
	if (rt->t.mx)
		printf("target\tmx\t%s\t%d\n", rt->domain, rt->port);
	else
		printf("target\thost\t%s\t%d\n", rt->t.host, rt->port);
	printf("tls\t%s\n", config_relay_tls_str(rt->t.tls));
	if (rt->dns != NULL)
		printf("dns\t%s\t%s\n", rt->cfg->dns_resolver ?
		    rt->cfg->dns_resolver : "resolv.conf",
		    rt->anchor ? rt->anchor : "none");
	if (rt->t.mx) {
		rt_mx_note(rt, note, sizeof(note));
		printf("mx\t%s\t%s\t%s\t%s\n", rt->domain,
		    dns_strstatus(rt->mx.status), rt_sec(rt->mx.secure), note);
	}
	for (i = 0; i < rt->nhosts; i++) {
		h = &rt->hosts[i];
		if (h->pref >= 0)
			printf("host\t%s\t%d", h->name, h->pref);
		else
			printf("host\t%s\t-", h->name);
		printf("\t%s\t%s\t%s\n", h->literal ? "literal" :
		    dns_strstatus(h->a.status), h->literal ? "-" :
		    rt_sec(h->a.secure), h->a.why);
		for (j = 0; j < h->naddrs; j++)
			printf("addr\t%s\t%s\n", h->name, h->addrs[j]);
		if (h->tlsa_skip != NULL)
			printf("tlsa\t%s\t-\t-\t%s\n", h->owner, h->tlsa_skip);
		else if (h->ntlsa == 0)
			printf("tlsa\t%s\t%s\t%s\t%s\n", h->owner,
			    dns_strstatus(h->t.status), rt_sec(h->t.secure),
			    h->t.why[0] ? h->t.why : "no TLSA records");
		for (j = 0; j < h->ntlsa; j++)
			printf("tlsa\t%s\t%s\t%s\t%d %d %d %s\n", h->owner,
			    dns_strstatus(h->t.status), rt_sec(h->t.secure),
			    h->tlsa[j].usage, h->tlsa[j].selector,
			    h->tlsa[j].mtype, h->tlsa[j].hex);
	}
}

/* One answer as JSON members: "status", "secure", "why", into o. */
static json_t *
rt_json_answer(json_t *o, const struct rt_answer *a)
{
	json_object_set_new(o, "status", json_string(dns_strstatus(a->status)));
	json_object_set_new(o, "secure", json_boolean(a->secure));
	json_object_set_new(o, "why", ctl_json_str(a->why));
	return o;
}

/* One host as a JSON object. */
static json_t *
rt_json_host(const struct rt_host *h)
{
	json_t *o = json_object(), *addrs = json_array(), *recs, *t;
	size_t j;

	json_object_set_new(o, "name", ctl_json_str(h->name));
	json_object_set_new(o, "preference", h->pref >= 0 ?
	    json_integer(h->pref) : json_null());
	json_object_set_new(o, "literal", json_boolean(h->literal));
	rt_json_answer(o, &h->a);
	for (j = 0; j < h->naddrs; j++)
		json_array_append_new(addrs, ctl_json_str(h->addrs[j]));
	json_object_set_new(o, "addresses", addrs);
	t = json_pack("{s:o}", "name", ctl_json_str(h->owner));
	if (h->tlsa_skip != NULL) {
		json_object_set_new(t, "looked_up", json_false());
		json_object_set_new(t, "why", ctl_json_str(h->tlsa_skip));
	} else {
		json_object_set_new(t, "looked_up", json_true());
		rt_json_answer(t, &h->t);
		recs = json_array();
		for (j = 0; j < h->ntlsa; j++)
			json_array_append_new(recs, json_pack("{s:i, s:i, s:i, "
			    "s:o}", "usage", h->tlsa[j].usage, "selector",
			    h->tlsa[j].selector, "mtype", h->tlsa[j].mtype,
			    "data", ctl_json_str(h->tlsa[j].hex)));
		json_object_set_new(t, "records", recs);
	}
	json_object_set_new(o, "tlsa", t);
	return o;
}

/* The same as one JSON object. */
static int
rt_print_json(const struct rt_test *rt)
{
	json_t *o = json_object(), *hosts = json_array(), *mx;
	size_t i;

	json_object_set_new(o, "address", ctl_json_str(rt->addr));
	if (rt->t.route_line > 0)
		json_object_set_new(o, "rule", json_pack("{s:s, s:i, s:o}",
		    "kind", "route", "line", rt->t.route_line, "pattern",
		    ctl_json_str(rt->pattern)));
	else
		json_object_set_new(o, "rule", json_pack("{s:s}", "kind",
		    "relay"));
	json_object_set_new(o, "target", json_pack("{s:b, s:o, s:i}", "mx",
	    rt->t.mx, rt->t.mx ? "domain" : "host", ctl_json_str(rt->t.mx ?
	    rt->domain : rt->t.host), "port", rt->port));
	json_object_set_new(o, "tls", json_string(config_relay_tls_str(
	    rt->t.tls)));
	if (rt->t.mx) {
		mx = rt_json_answer(json_object(), &rt->mx);
		json_object_set_new(mx, "null_mx", json_boolean(rt->null_mx));
		json_object_set_new(mx, "implicit", json_boolean(rt->implicit));
		json_object_set_new(mx, "hosts_left_out", json_integer(
		    (json_int_t)(rt->nmx - rt->nhosts)));
		json_object_set_new(o, "mx", mx);
	}
	for (i = 0; i < rt->nhosts; i++)
		json_array_append_new(hosts, rt_json_host(&rt->hosts[i]));
	json_object_set_new(o, "hosts", hosts);
	json_object_set_new(o, "deliverable", json_boolean(rt->fail[0] ==
	    '\0'));
	if (rt->fail[0])
		json_object_set_new(o, "why", ctl_json_str(rt->fail));
	return ctl_json_print(o);
}

/* The domain of the target key "mx:DOMAIN/TLS" (route.c's spelling). */
static int
rt_key_domain(struct rt_test *rt)
{
	const char *k = rt->t.key, *slash;
	size_t n;

	if (strncmp(k, "mx:", 3) != 0 || (slash = strrchr(k, '/')) == NULL)
		return -1;
	n = slash - (k + 3);
	if (n == 0 || n >= sizeof(rt->domain))
		return -1;
	memcpy(rt->domain, k + 3, n);
	rt->domain[n] = '\0';
	return 0;
}

/* Route rt->addr: the rule, the target, the port; -1 said on stderr. */
static int
rt_route(struct rt_test *rt)
{
	const char *at;
	int i;

	if (strlen(rt->addr) > RT_ADDR_MAX || (at = strrchr(rt->addr,
	    '@')) == NULL || at == rt->addr || at[1] == '\0' ||
	    route_for(rt->cfg, rt->addr, &rt->t) == -1 ||
	    (rt->t.mx && rt_key_domain(rt) == -1)) {
		fprintf(stderr, "smrelayctl: route test: bad address \"%s\": "
		    "want local@domain\n", rt->addr);
		return -1;
	}
	for (i = 0; i < rt->cfg->nroutes; i++)
		if (rt->cfg->routes[i].line == rt->t.route_line)
			rt->pattern = rt->cfg->routes[i].pattern;
	rt->port = rt->t.port ? atoi(rt->t.port) : 0;	/* checked by config */
	return 0;
}

/* Free what the lookups left. */
static void
rt_free(struct rt_test *rt)
{
	struct rt_host *h;
	size_t i, j;

	for (i = 0; i < rt->nhosts; i++) {
		h = &rt->hosts[i];
		for (j = 0; j < h->ntlsa; j++)
			free(h->tlsa[j].hex);
		free(h->tlsa);
		free(h->addrs);
		free(h->name);
	}
	free(rt->hosts);
	dns_free(rt->dns);	/* cancels what is still pending */
	if (rt->base != NULL)
		event_base_free(rt->base);
}

/* Route, look up, print; the exit status. */
static int
rt_run(struct rt_test *rt, int json)
{
	if (rt_route(rt) == -1)
		return CTL_USAGE;
	/* an IP address as the next hop needs no DNS at all */
	if ((rt->t.mx || !rt_literal(rt->t.host)) && rt_resolver(rt) == -1)
		return CTL_FAIL;
	rt_round_mx(rt);
	rt_round_addrs(rt);
	rt_round_tlsa(rt);
	rt_verdict(rt);
	if (json) {
		if (rt_print_json(rt) != 0)
			return CTL_FAIL;
	} else
		rt_print_text(rt);
	if (fflush(stdout) == EOF) {
		fprintf(stderr, "smrelayctl: route test: stdout: write "
		    "failed\n");
		return CTL_FAIL;
	}
	if (rt->fail[0] == '\0')
		return CTL_OK;
	fprintf(stderr, "smrelayctl: route test: %s: %s\n", rt->addr,
	    rt->fail);
	return CTL_NO;
}

int
ctl_route_run(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	struct rt_test rt;
	struct config *cfg;
	const char *addr = NULL;
	char err[1024], buf[RT_ADDR_MAX + 1];
	size_t n;
	int i, json = o->json, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (addr != NULL || argv[i][0] == '-')
			break;
		else
			addr = argv[i];
	}
	if (addr == NULL || i < argc) {
		fprintf(stderr, "usage: smrelayctl route test %s\n",
		    cmd->args);
		return CTL_USAGE;
	}
	/* "<bob@example.com>" as it appears in logs and RCPT TO */
	n = strlen(addr);
	if (n >= 2 && n - 2 < sizeof(buf) && addr[0] == '<' &&
	    addr[n - 1] == '>') {
		memcpy(buf, addr + 1, n - 2);
		buf[n - 2] = '\0';
		addr = buf;
	}
	if ((cfg = config_load(o->path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return CTL_FAIL;
	}
	memset(&rt, 0, sizeof(rt));
	rt.cfg = cfg;
	rt.addr = addr;
	rc = rt_run(&rt, json);
	rt_free(&rt);
	config_free(cfg);
	return rc;
}
