/* route.c: where mail for a recipient goes: the first matching `route` in
 * file order, else `relay` (shared/SPEC.md).  Pure: no I/O, no DNS. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "policy/policy.h"
#include "relay.h"

#define DOMAIN_MAX	253	/* RFC 1035, without the root dot */

/* ASCII lowercase, leaving every other byte (UTF-8 included) alone. */
static char
lc(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * Length of the local part of rcpt: up to the '@' before the domain, past a
 * quoted string that may hold '@' itself.  -1 when there is no domain.
 */
static int
local_len(const char *rcpt)
{
	const char *p = rcpt, *at;

	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		if (*p == '\0')
			return -1;
	}
	if ((at = strrchr(p, '@')) == NULL || at[1] == '\0')
		return -1;
	return (int)(at - rcpt);
}

/*
 * The domain of rcpt into dom, lowercased, one trailing root dot removed;
 * the length of the local part, or -1 with no usable domain (none, or
 * longer than a domain can be).
 */
static int
rcpt_domain(const char *rcpt, char *dom, size_t len)
{
	const char *d;
	size_t n, i;
	int local;

	if ((local = local_len(rcpt)) < 0)
		return -1;
	d = rcpt + local + 1;
	n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n > DOMAIN_MAX || n >= len)
		return -1;
	for (i = 0; i < n; i++)
		dom[i] = lc(d[i]);
	dom[n] = '\0';
	return local;
}

/* The pool key of a HOST:PORT target: host lowercased, IPv6 in brackets. */
static void
host_key(struct route_target *t)
{
	char host[DOMAIN_MAX + 1];
	size_t i;

	for (i = 0; t->host[i] != '\0' && i < sizeof(host) - 1; i++)
		host[i] = lc(t->host[i]);
	host[i] = '\0';
	snprintf(t->key, sizeof(t->key), strchr(host, ':') ? "[%s]:%s/%s" :
	    "%s:%s/%s", host, t->port, config_relay_tls_str(t->tls));
}

/* Where mail for rcpt goes: the first matching route, else relay. */
int
route_for(const struct config *cfg, const char *rcpt, struct route_target *t)
{
	const struct route_cfg *r = NULL;
	char dom[DOMAIN_MAX + 1], *addr;
	int i, local;

	memset(t, 0, sizeof(*t));
	/* Match the address as it will be routed: "User@Example.COM." is
	 * user@example.com for @example.com; with no domain only `*` fits. */
	if ((local = rcpt_domain(rcpt, dom, sizeof(dom))) >= 0)
		addr = xasprintf("%.*s@%s", local, rcpt, dom);
	else
		addr = xstrdup("");
	for (i = 0; i < cfg->nroutes && r == NULL; i++)
		if (policy_pattern_match(cfg->routes[i].pattern, addr))
			r = &cfg->routes[i];
	free(addr);
	if (r != NULL) {
		t->mx = r->mx;
		t->host = r->host;
		t->port = r->port;
		t->tls = config_route_tls(cfg, r);
		t->route_line = r->line;
	} else {
		t->mx = cfg->relay_mx;
		t->host = cfg->relay_host;
		t->port = cfg->relay_port;
		t->tls = cfg->relay_tls;
	}
	if (t->mx) {
		if (local < 0)
			return -1;
		t->host = NULL;
		t->port = cfg->relay_mx_port;
		snprintf(t->key, sizeof(t->key), "mx:%s/%s", dom,
		    config_relay_tls_str(t->tls));
		return 0;
	}
	if (t->host == NULL || t->port == NULL)
		return -1;	/* no relay at all (config_default) */
	host_key(t);
	return 0;
}
