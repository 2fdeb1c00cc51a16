/* test_route.c: route_for (daemon/relay/route.c) over configurations read
 * by config_load: which next hop, TLS mode and pool key each recipient gets. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/base/base.h"
#include "daemon/relay/relay.h"
#include "lib/lib.h"
#include "../unit/check.h"

/* An empty readable file, for dns_trust_anchor (its content is not read). */
static char anchor[] = "/tmp/test_route_anchor.XXXXXX";

/* config_load over text written to a temporary file; fatal on an error. */
static struct config *
load(const char *text)
{
	char path[] = "/tmp/test_route_conf.XXXXXX", err[1024];
	struct config *cfg;
	FILE *fp;
	int fd;

	if ((fd = mkstemp(path)) == -1 || (fp = fdopen(fd, "w")) == NULL)
		fatal("mkstemp");
	fprintf(fp, "dns_trust_anchor = %s\n%s", anchor, text);
	fclose(fp);
	cfg = config_load(path, err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		fatalx("config_load: %s", err);
	return cfg;
}

struct expect {
	const char	*rcpt;
	int		 rc;
	const char	*key;		/* when rc == 0 */
	int		 line;		/* route line, 0: relay */
};

/* Each recipient against cfg: return code, key, line, and the fields the
 * key is made of. */
static void
expect_routes(const char *name, const struct config *cfg,
    const struct expect *e, size_t n)
{
	struct route_target t;
	char key[300];
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = route_for(cfg, e[i].rcpt, &t);
		CHECK(rc == e[i].rc, "%s: <%s> rc %d", name, e[i].rcpt, rc);
		if (rc != 0 || e[i].rc != 0)
			continue;
		CHECK(strcmp(t.key, e[i].key) == 0 && t.route_line == e[i].line,
		    "%s: <%s> key %s line %d, want %s line %d", name,
		    e[i].rcpt, t.key, t.route_line, e[i].key, e[i].line);
		if (t.mx) {
			CHECK(t.host == NULL && t.port != NULL &&
			    strcmp(t.port, cfg->relay_mx_port) == 0,
			    "%s: <%s> mx host/port", name, e[i].rcpt);
			continue;
		}
		CHECK(t.host != NULL && t.port != NULL, "%s: <%s> host/port",
		    name, e[i].rcpt);
		snprintf(key, sizeof(key), strchr(t.host, ':') ? "[%s]:%s/%s" :
		    "%s:%s/%s", t.host, t.port, config_relay_tls_str(t.tls));
		CHECK(strcasecmp_ascii(key, t.key) == 0,
		    "%s: <%s> key %s from fields %s", name, e[i].rcpt, t.key,
		    key);
	}
}

/* Every pattern kind, first match wins, tls= and its inheritance. */
static void
test_patterns(void)
{
	/* Line 1 is dns_trust_anchor. */
	static const char conf[] =
	    "route = alice@example.com [2001:DB8::1]:2525 tls=verify\n" /* 2 */
	    "route = @example.com Hub.Example.NET tls=encrypt\n"	/* 3 */
	    "route = *.example.com mx\n"				/* 4 */
	    "route = *@partner.example mx tls=dane-only\n"		/* 5 */
	    "route = @Upper.Example 192.0.2.7:26\n"			/* 6 */
	    "route = *.partner.example mx tls=none\n"			/* 7 */
	    "relay = smtp.example.org:587\n"				/* 8 */
	    "relay_tls = dane\n"					/* 9 */
	    "relay_mx_port = 2525\n";
	static const struct expect e[] = {
		/* address pattern, before the domain one */
		{ "alice@example.com", 0, "[2001:db8::1]:2525/verify", 2 },
		{ "ALICE@Example.Com", 0, "[2001:db8::1]:2525/verify", 2 },
		{ "bob@example.com", 0, "hub.example.net:25/encrypt", 3 },
		{ "bob@EXAMPLE.COM.", 0, "hub.example.net:25/encrypt", 3 },
		{ "alice@example.com.", 0, "[2001:db8::1]:2525/verify", 2 },
		/* subdomains, not the domain itself; mx inherits relay_tls
		 * (dane, set after the route line) */
		{ "x@a.example.com", 0, "mx:a.example.com/dane", 4 },
		{ "x@B.A.Example.COM", 0, "mx:b.a.example.com/dane", 4 },
		{ "x@notexample.com", 0, "smtp.example.org:587/dane", 0 },
		{ "carol@partner.example", 0, "mx:partner.example/dane-only",
		    5 },
		/* *.partner.example comes after a pattern it does not
		 * overlap: its own line */
		{ "d@sub.partner.example", 0, "mx:sub.partner.example/none",
		    7 },
		{ "e@upper.example", 0, "192.0.2.7:26/dane", 6 },
		{ "e@UPPER.EXAMPLE", 0, "192.0.2.7:26/dane", 6 },
		/* quoted local parts: the domain is after the quotes */
		{ "\"a@b\"@example.com", 0, "hub.example.net:25/encrypt", 3 },
		{ "\"a@example.com\"@other.example", 0,
		    "smtp.example.org:587/dane", 0 },
		{ "\"x\\\"@y\"@a.example.com", 0, "mx:a.example.com/dane", 4 },
		/* no domain: only `*` could match; relay is a host */
		{ "postmaster", 0, "smtp.example.org:587/dane", 0 },
		{ "\"a@example.com\"", 0, "smtp.example.org:587/dane", 0 },
		{ "user@", 0, "smtp.example.org:587/dane", 0 },
		{ "", 0, "smtp.example.org:587/dane", 0 },
	};
	struct config *cfg = load(conf);

	expect_routes("patterns", cfg, e, sizeof(e) / sizeof(e[0]));
	config_free(cfg);
}

/* `*` catches everything, so later routes are never reached. */
static void
test_catch_all(void)
{
	static const char conf[] =
	    "route = @local.example 127.0.0.1:10026 tls=none\n"	/* 2 */
	    "route = * mx\n"					/* 3 */
	    "route = @never.example 127.0.0.1:1\n"		/* 4 */
	    "relay = 127.0.0.1:25\n";
	static const struct expect e[] = {
		{ "a@local.example", 0, "127.0.0.1:10026/none", 2 },
		{ "a@never.example", 0, "mx:never.example/may", 3 },
		{ "a@Some.Where.", 0, "mx:some.where/may", 3 },
		/* `*` matches, but mx needs a domain */
		{ "postmaster", -1, NULL, 0 },
		{ "\"a@b\"", -1, NULL, 0 },
		{ "a@.", -1, NULL, 0 },
	};
	struct config *cfg = load(conf);

	expect_routes("catch-all", cfg, e, sizeof(e) / sizeof(e[0]));
	config_free(cfg);
}

/* relay = mx with no routes: the domain is the key, relay_mx_port the
 * port; no domain is -1. */
static void
test_relay_mx(void)
{
	static const char conf[] =
	    "relay = mx\n"
	    "relay_tls = encrypt\n";
	static const struct expect e[] = {
		{ "a@Example.COM", 0, "mx:example.com/encrypt", 0 },
		{ "a@example.com.", 0, "mx:example.com/encrypt", 0 },
		{ "a@[192.0.2.1]", 0, "mx:[192.0.2.1]/encrypt", 0 },
		{ "postmaster", -1, NULL, 0 },
		{ "a@", -1, NULL, 0 },
	};
	struct config *cfg = load(conf);
	struct route_target t;
	char rcpt[400];

	expect_routes("relay-mx", cfg, e, sizeof(e) / sizeof(e[0]));
	CHECK(route_for(cfg, "x@y.example", &t) == 0 && t.mx &&
	    strcmp(t.port, "25") == 0 && t.tls == RELAY_TLS_ENCRYPT,
	    "relay-mx: default relay_mx_port");
	/* A domain longer than 253 characters is no domain for MX. */
	memset(rcpt, 'a', sizeof(rcpt));
	memcpy(rcpt, "u@", 2);
	rcpt[2 + 254] = '\0';
	CHECK(route_for(cfg, rcpt, &t) == -1, "relay-mx: 254-byte domain");
	rcpt[2 + 253] = '\0';
	CHECK(route_for(cfg, rcpt, &t) == 0 && strlen(t.key) ==
	    3 + 253 + strlen("/encrypt"), "relay-mx: 253-byte domain");
	config_free(cfg);
}

/* config_default (no relay): nothing to route to. */
static void
test_no_relay(void)
{
	struct config *cfg = config_default();
	struct route_target t;

	CHECK(route_for(cfg, "a@example.com", &t) == -1, "no relay");
	config_free(cfg);
}

/* Run every check; non-zero exit when one failed. */
int
main(void)
{
	int fd;

	log_init("test_route", 1, LOG_LVL_WARN);
	if ((fd = mkstemp(anchor)) == -1)
		fatal("mkstemp");
	close(fd);
	test_patterns();
	test_catch_all();
	test_relay_mx();
	test_no_relay();
	unlink(anchor);
	if (failures) {
		printf("%d failure(s) of %d checks\n", failures, checks);
		return 1;
	}
	printf("all %d route checks passed\n", checks);
	return 0;
}
