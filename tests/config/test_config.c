/* test_config.c: the config parser against golden files, and its helpers. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/base/config.h"
#include "lib/lib.h"
#include "../unit/check.h"

/* Print "(none)" for an unset string. */
static const char *
opt(const char *s)
{
	return s ? s : "(none)";
}

/* A canonical dump of every field, one per line. */
static void
dump_config(FILE *fp, const struct config *cfg)
{
	static const char *levels[] = { "error", "warn", "info", "debug" };
	const struct route_cfg *r;
	char host[256], addr[INET6_ADDRSTRLEN];
	int i;

	memset(host, 0, sizeof(host));
	gethostname(host, sizeof(host) - 1);
	for (i = 0; i < cfg->nlistens; i++)
		fprintf(fp, "listen host=%s port=%s tls=%s proxy=%s line=%d\n",
		    cfg->listens[i].host, cfg->listens[i].port,
		    config_listen_tls_str(cfg->listens[i].tls),
		    config_listen_proxy_str(cfg->listens[i].proxy),
		    cfg->listens[i].line);
	fprintf(fp, "hostname %s\n", strcmp(cfg->hostname, host) == 0 ?
	    "(system)" : cfg->hostname);
	fprintf(fp, "tls_cert_file %s\n", opt(cfg->tls_cert_file));
	fprintf(fp, "tls_key_file %s\n", opt(cfg->tls_key_file));
	fprintf(fp, "inbound_tls %s\n", cfg->inbound_tls_encrypt ?
	    "encrypt" : "may");
	if (cfg->relay_mx)
		fprintf(fp, "relay mx host=%s\n", opt(cfg->relay_host));
	else
		fprintf(fp, "relay host=%s port=%s\n", opt(cfg->relay_host),
		    opt(cfg->relay_port));
	fprintf(fp, "relay_tls %s\n", config_relay_tls_str(cfg->relay_tls));
	fprintf(fp, "relay_tls_ca_file %s\n", opt(cfg->relay_tls_ca_file));
	fprintf(fp, "relay_mx_port %s\n", cfg->relay_mx_port);
	for (i = 0; i < cfg->nroutes; i++) {
		r = &cfg->routes[i];
		if (r->mx)
			fprintf(fp, "route %s mx", r->pattern);
		else
			fprintf(fp, "route %s host=%s port=%s", r->pattern,
			    r->host, r->port);
		fprintf(fp, " tls=%s line=%d\n", r->tls_set ?
		    config_relay_tls_str(r->tls) : "(relay_tls)", r->line);
	}
	if (cfg->dns_resolver != NULL)
		fprintf(fp, "dns_resolver %s host=%s port=%s\n",
		    cfg->dns_resolver, cfg->dns_resolver_host,
		    cfg->dns_resolver_port);
	else
		fprintf(fp, "dns_resolver (none)\n");
	fprintf(fp, "dns_trust_anchor %s\n", cfg->dns_trust_anchor);
	fprintf(fp, "cert_lookup %s\n",
	    config_cert_lookup_str(cfg->cert_lookup));
	fprintf(fp, "uses_dns %s\n", config_uses_dns(cfg) ? "yes" : "no");
	fprintf(fp, "data_dir %s\n", cfg->data_dir);
	/* only when set: the goldens from before it stay as they were */
	if (strcmp(cfg->database, "sqlite") != 0)
		fprintf(fp, "database %s\n", cfg->database);
	fprintf(fp, "relay_networks");
	for (i = 0; i < cfg->nrelay_networks; i++) {
		inet_ntop(cfg->relay_networks[i].family,
		    cfg->relay_networks[i].addr, addr, sizeof(addr));
		fprintf(fp, " %s/%d", addr, cfg->relay_networks[i].bits);
	}
	fprintf(fp, "\n");
	fprintf(fp, "max_message_size %llu\n",
	    (unsigned long long)cfg->max_message_size);
	fprintf(fp, "max_recipients %d\n", cfg->max_recipients);
	fprintf(fp, "max_connections %d\n", cfg->max_connections);
	fprintf(fp, "queue_lifetime %d\n", cfg->queue_lifetime);
	if (cfg->processes == 0)        /* only when set: older refs stay */
		fprintf(fp, "processes auto\n");
	else if (cfg->processes != 1)
		fprintf(fp, "processes %d\n", cfg->processes);
	if (cfg->metrics_host != NULL)  /* only when set: older refs stay */
		fprintf(fp, "metrics_listen host=%s port=%s\n",
		    cfg->metrics_host, cfg->metrics_port);
	fprintf(fp, "log_level %s\n", (unsigned)cfg->log_level < 4 ?
	    levels[cfg->log_level] : "?");
}

/* Load one file and render the result: the error line or the dump. */
static char *
render(const char *path)
{
	struct config *cfg;
	char err[1024], *out = NULL;
	size_t outlen = 0;
	FILE *fp;

	if ((fp = open_memstream(&out, &outlen)) == NULL)
		fatal("open_memstream");
	if ((cfg = config_load(path, err, sizeof(err))) == NULL)
		fprintf(fp, "%s\n", err);
	else {
		dump_config(fp, cfg);
		config_free(cfg);
	}
	fclose(fp);
	return out;
}

/* Whole file into a string; NULL if missing. */
static char *
slurp(const char *path)
{
	char *buf;
	long n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = xmalloc(n + 1);
	if (fread(buf, 1, n, fp) != (size_t)n)
		fatal("read %s", path);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* Only the .conf files of the cases directory. */
static int
is_conf(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

/* Every cases/NAME.conf against cases/NAME.ref (REGEN=1 rewrites them). */
static void
test_golden(void)
{
	struct dirent **list;
	char ref[512], *got, *want;
	int i, n, regen = getenv("REGEN") != NULL;
	FILE *fp;

	if ((n = scandir(".", &list, is_conf, alphasort)) < 0)
		fatal("scandir");
	CHECK(n > 0, "no cases found");
	for (i = 0; i < n; i++) {
		snprintf(ref, sizeof(ref), "%.*s.ref",
		    (int)strlen(list[i]->d_name) - 5, list[i]->d_name);
		got = render(list[i]->d_name);
		if (regen) {
			if ((fp = fopen(ref, "w")) == NULL)
				fatal("%s", ref);
			fputs(got, fp);
			fclose(fp);
		} else if ((want = slurp(ref)) == NULL)
			CHECK(0, "%s: missing", ref);
		else {
			CHECK(strcmp(got, want) == 0,
			    "%s\n--- expected\n%s--- got\n%s", list[i]->d_name,
			    want, got);
			free(want);
		}
		free(got);
		free(list[i]);
	}
	free(list);
	printf("golden: %d cases\n", n);
}

/* A file that is not there. */
static void
test_missing_file(void)
{
	char *got = render("no-such-file.conf");

	CHECK(strcmp(got, "no-such-file.conf: cannot open: "
	    "No such file or directory\n") == 0, "missing file: %s", got);
	free(got);
}

/* Sizes and durations, including the rejected forms. */
static void
test_scalars(void)
{
	static const struct { const char *s; long long v; } sizes[] = {
		{ "0", 0 }, { "1024", 1024 }, { "10k", 10240 },
		{ "10K", 10240 }, { "50M", 52428800 }, { "1G", 1073741824 },
		{ "", -1 }, { "k", -1 }, { "-1", -1 }, { "1.5M", -1 },
		{ "10kb", -1 }, { " 10", -1 }, { "10T", -1 },
		{ "9223372036854775807", 9223372036854775807LL },
		{ "9223372036854775808", -1 }, { "9007199254740992G", -1 },
	}, durations[] = {
		{ "30", 30 }, { "30s", 30 }, { "5m", 300 }, { "2h", 7200 },
		{ "5d", 432000 }, { "5D", -1 }, { "1w", -1 }, { "", -1 },
		{ "h", -1 }, { "1h30m", -1 }, { "+5", -1 },
	};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		CHECK(config_parse_size(sizes[i].s) == sizes[i].v,
		    "size \"%s\" = %lld", sizes[i].s,
		    config_parse_size(sizes[i].s));
	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++)
		CHECK(config_parse_duration(durations[i].s) == durations[i].v,
		    "duration \"%s\" = %lld", durations[i].s,
		    config_parse_duration(durations[i].s));
}

/* Netmask parsing: forms accepted and rejected. */
static void
test_netmasks(void)
{
	static const struct { const char *s; int family, bits; } ok[] = {
		{ "10.0.0.0/8", AF_INET, 8 }, { "192.0.2.1", AF_INET, 32 },
		{ "0.0.0.0/0", AF_INET, 0 }, { "::1/128", AF_INET6, 128 },
		{ "::1", AF_INET6, 128 }, { "[fe80::]/10", AF_INET6, 10 },
		{ "[2001:db8::1]", AF_INET6, 128 },
		{ "::ffff:10.0.0.0/104", AF_INET, 8 },
	};
	static const char *bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0/8", "::1/129",
		"10.0.0.0/-1", "10.0.0.0/8/8", "[10.0.0.0]/8", "[::1", "host",
		"10.0.0.0/8x", "1.2.3.4 ",
	};
	struct netmask nm;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK(config_parse_netmask(ok[i].s, &nm) == 0 &&
		    nm.family == ok[i].family && nm.bits == ok[i].bits,
		    "netmask \"%s\"", ok[i].s);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(config_parse_netmask(bad[i], &nm) == -1,
		    "netmask \"%s\" accepted", bad[i]);
	CHECK(config_parse_netmask("192.168.1.77/26", &nm) == 0 &&
	    nm.addr[3] == 64, "host bits not cleared");
}

/* Build a sockaddr from text and ask config_relay_allowed. */
static int
allowed(const struct config *cfg, const char *addr)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return config_relay_allowed(cfg, (struct sockaddr *)&sin);
	}
	if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		return config_relay_allowed(cfg, (struct sockaddr *)&sin6);
	}
	fatalx("bad test address %s", addr);
}

/* Matching client addresses against relay_networks. */
static void
test_relay_allowed(void)
{
	static const struct { const char *a; int ok; } def[] = {
		{ "127.0.0.1", 1 }, { "127.255.1.2", 1 }, { "128.0.0.1", 0 },
		{ "::1", 1 }, { "::2", 0 }, { "::ffff:127.0.0.1", 1 },
		{ "::ffff:10.0.0.1", 0 }, { "10.0.0.1", 0 },
	}, custom[] = {
		{ "10.1.2.3", 1 }, { "11.0.0.1", 0 }, { "192.168.1.64", 1 },
		{ "192.168.1.127", 1 }, { "192.168.1.128", 0 },
		{ "192.168.1.63", 0 }, { "2001:db8:ffff::1", 1 },
		{ "2001:db9::1", 0 }, { "fe80::1", 1 }, { "febf::1", 1 },
		{ "fec0::1", 0 }, { "::ffff:10.9.9.9", 1 }, { "127.0.0.1", 0 },
		{ "172.16.5.5", 1 }, { "172.32.0.1", 0 },
	};
	struct config *cfg = config_default();
	struct sockaddr sa;
	size_t i;

	for (i = 0; i < sizeof(def) / sizeof(def[0]); i++)
		CHECK(allowed(cfg, def[i].a) == def[i].ok, "default %s",
		    def[i].a);
	free(cfg->relay_networks);
	cfg->nrelay_networks = 5;
	cfg->relay_networks = xcalloc(5, sizeof(struct netmask));
	config_parse_netmask("10.0.0.0/8", &cfg->relay_networks[0]);
	config_parse_netmask("192.168.1.64/26", &cfg->relay_networks[1]);
	config_parse_netmask("2001:db8::/32", &cfg->relay_networks[2]);
	config_parse_netmask("fe80::/10", &cfg->relay_networks[3]);
	config_parse_netmask("::ffff:172.16.0.0/108", &cfg->relay_networks[4]);
	for (i = 0; i < sizeof(custom) / sizeof(custom[0]); i++)
		CHECK(allowed(cfg, custom[i].a) == custom[i].ok, "custom %s",
		    custom[i].a);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	CHECK(config_relay_allowed(cfg, &sa) == 0, "AF_UNIX allowed");
	config_free(cfg);
}

/* config_default() and config_add_listen() as the sink uses them. */
static void
test_default(void)
{
	struct config *cfg = config_default();
	char why[256];

	CHECK(cfg->nlistens == 0 && cfg->relay_host == NULL &&
	    !cfg->relay_mx && cfg->max_connections == 1024 &&
	    cfg->queue_lifetime == 432000 && cfg->relay_tls == RELAY_TLS_MAY &&
	    cfg->hostname != NULL && cfg->log_level == LOG_LVL_INFO,
	    "config_default");
	CHECK(config_add_listen(cfg, "[::1]:2525", 0, why, sizeof(why)) == 0 &&
	    cfg->nlistens == 1 && strcmp(cfg->listens[0].host, "::1") == 0 &&
	    strcmp(cfg->listens[0].port, "2525") == 0 &&
	    cfg->listens[0].tls == LISTEN_TLS_STARTTLS, "add_listen v6");
	CHECK(config_add_listen(cfg, "localhost:25 tls=none", 0, why,
	    sizeof(why)) == 0 && cfg->listens[1].tls == LISTEN_TLS_NONE,
	    "add_listen none");
	CHECK(config_add_listen(cfg, "localhost", 0, why, sizeof(why)) == -1 &&
	    strstr(why, "\"localhost\"") != NULL, "add_listen no port: %s",
	    why);
	CHECK(cfg->nlistens == 2, "failed listen added");
	config_free(cfg);
}

/* The default dns_trust_anchor: checked only when DNS is used, and then
 * the error points at the setting that needs it and names the package. */
static void
test_default_anchor(void)
{
	char path[] = "/tmp/test_config.XXXXXX", *got;
	int fd, have = access("/usr/share/dns/root.key", R_OK) == 0;
	FILE *fp;

	if ((fd = mkstemp(path)) == -1 || (fp = fdopen(fd, "w")) == NULL)
		fatal("mkstemp");
	fprintf(fp, "relay = smtp.example.net\nroute = @example.com mx\n");
	fclose(fp);
	got = render(path);
	unlink(path);
	if (have)
		CHECK(strncmp(got, "listen ", 7) == 0, "with root.key: %s", got);
	else
		CHECK(strstr(got, ":2: dns_trust_anchor: cannot read "
		    "\"/usr/share/dns/root.key\"") != NULL &&
		    strstr(got, "a route to mx;") != NULL &&
		    strstr(got, "dns-root-data") != NULL,
		    "without root.key: %s", got);
	free(got);
}

/* Run every check; non-zero exit when one failed. */
int
main(void)
{
	const char *srcdir = getenv("srcdir");
	char dir[1024];

	log_init("test_config", 1, LOG_LVL_WARN);
	snprintf(dir, sizeof(dir), "%s/tests/config/cases",
	    srcdir ? srcdir : ".");
	if (chdir(dir) == -1)
		fatal("chdir %s", dir);
	test_scalars();
	test_netmasks();
	test_relay_allowed();
	test_default();
	test_missing_file();
	test_default_anchor();
	test_golden();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all config tests passed\n");
	return 0;
}
