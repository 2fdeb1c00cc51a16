/* config.c: the smrelayd configuration file (key = value, shared/SPEC.md). */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "lib/lib.h"
#include "policy/policy.h"

#define DEFAULT_LISTEN		"127.0.0.1:10025"
#define DEFAULT_DATA_DIR	"/var/lib/smrelay"
#define DEFAULT_USER		"smrelay"
#define DEFAULT_NETWORKS	"127.0.0.0/8 ::1/128"
#define DEFAULT_MAX_SIZE	52428800ULL
#define DEFAULT_MAX_RCPTS	1000
#define DEFAULT_MAX_CONNS	1024
#define DEFAULT_LIFETIME	(5 * 86400)
#define DEFAULT_TICKET_ROTATE	3600
#define TICKET_ROTATE_MAX	86400
#define DEFAULT_DELAY_WARNING	(4 * 3600)
#define DEFAULT_MX_PORT		"25"
#define DEFAULT_DNS_PORT	"53"
#define DEFAULT_TRUST_ANCHOR	"/usr/share/dns/root.key"

#define LISTEN_EXPECT \
	"expected ADDR:PORT [tls=starttls|implicit|none] [proxy=v1|v2|off]"
#define RELAY_TLS_EXPECT \
	"none, may, encrypt, verify, dane or dane-only"
#define ROUTE_EXPECT \
	"expected PATTERN TARGET [tls=MODE], TARGET HOST:PORT, [IPv6]:PORT, " \
	"HOST or mx"

struct config_key;
typedef int config_set_fn(struct config *, const struct config_key *,
    const char *, int, char *, size_t);

struct config_key {
	const char	*name;
	int		 repeatable;
	config_set_fn	*set;
	size_t		 off;		/* field for the generic setters */
};

/* After the network process dropped its privileges: files only the key
 * process reads (tls_key_file, key_passphrase_file) are not opened. */
static int key_files_unread;

static config_set_fn set_listen, set_hostname, set_file, set_string,
    set_inbound_tls, set_relay, set_relay_tls, set_networks, set_size,
    set_count, set_duration, set_log_level, set_revocation, set_yesno,
    set_wait, set_rotate, set_port, set_route, set_dns_resolver, set_cert_lookup,
    set_metrics_listen, set_database, set_processes;

static const struct config_key config_keys[] = {
	{ "listen", 1, set_listen, 0 },
	{ "hostname", 0, set_hostname, 0 },
	{ "tls_cert_file", 0, set_file, offsetof(struct config, tls_cert_file) },
	{ "tls_key_file", 0, set_file, offsetof(struct config, tls_key_file) },
	{ "inbound_tls", 0, set_inbound_tls, 0 },
	{ "relay", 0, set_relay, 0 },
	{ "relay_tls", 0, set_relay_tls, 0 },
	{ "relay_tls_ca_file", 0, set_file,
	    offsetof(struct config, relay_tls_ca_file) },
	{ "data_dir", 0, set_string, offsetof(struct config, data_dir) },
	{ "relay_networks", 0, set_networks, 0 },
	{ "max_message_size", 0, set_size,
	    offsetof(struct config, max_message_size) },
	{ "max_recipients", 0, set_count,
	    offsetof(struct config, max_recipients) },
	{ "max_connections", 0, set_count,
	    offsetof(struct config, max_connections) },
	{ "queue_lifetime", 0, set_duration,
	    offsetof(struct config, queue_lifetime) },
	{ "delay_warning_time", 0, set_duration,
	    offsetof(struct config, delay_warning) },
	{ "tls_ticket_rotate", 0, set_rotate,
	    offsetof(struct config, tls_ticket_rotate) },
	{ "log_level", 0, set_log_level, 0 },
	{ "revocation", 0, set_revocation, 0 },
	{ "revocation_fetch", 0, set_yesno,
	    offsetof(struct config, revocation_fetch) },
	{ "revocation_wait", 0, set_wait,
	    offsetof(struct config, revocation_wait) },
	{ "user", 0, set_string, offsetof(struct config, user) },
	{ "key_file", 0, set_string, offsetof(struct config, key_file) },
	{ "key_passphrase_file", 0, set_file,
	    offsetof(struct config, key_passphrase_file) },
	{ "relay_mx_port", 0, set_port, offsetof(struct config, relay_mx_port) },
	{ "route", 1, set_route, 0 },
	{ "dns_resolver", 0, set_dns_resolver, 0 },
	/* Checked in config_check: needed only when DNS is used. */
	{ "dns_trust_anchor", 0, set_string,
	    offsetof(struct config, dns_trust_anchor) },
	{ "cert_lookup", 0, set_cert_lookup, 0 },
	{ "metrics_listen", 0, set_metrics_listen, 0 },
	{ "xforward_hosts", 0, set_networks, 0 },
	{ "database", 0, set_database, offsetof(struct config, database) },
	{ "processes", 0, set_processes, 0 },
};
#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* Index of a key in config_keys, for the post-parse checks. */
enum {
	K_LISTEN, K_HOSTNAME, K_CERT, K_KEY, K_INBOUND_TLS, K_RELAY,
	K_RELAY_TLS, K_RELAY_CA, K_DATA_DIR, K_NETWORKS
};

static const char *listen_tls_names[] = { "starttls", "implicit", "none" };
static const char *listen_proxy_names[] = { "off", "v1", "v2" };
static const char *relay_tls_names[RELAY_TLS_NMODES] = {
	"none", "may", "encrypt", "verify", "dane", "dane-only"
};
static const char *cert_lookup_names[] = { "none", "smimea" };

/* The usual complaint about a value, with what would have been accepted. */
static int
bad_value(char *why, size_t len, const char *key, const char *val,
    const char *expect)
{
	snprintf(why, len, "bad value for %s: \"%s\" (%s)", key, val, expect);
	return -1;
}

/* Index of s in names[0..n), or -1. */
static int
name_index(const char *s, const char **names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Text of a listener's tls= option. */
const char *
config_listen_tls_str(enum listen_tls t)
{
	return (unsigned)t < 3 ? listen_tls_names[t] : "?";
}

/* Text of a listener's proxy= option. */
const char *
config_listen_proxy_str(enum listen_proxy p)
{
	return (unsigned)p < 3 ? listen_proxy_names[p] : "?";
}

/* Text of a relay_tls value. */
const char *
config_relay_tls_str(enum relay_tls t)
{
	return (unsigned)t < RELAY_TLS_NMODES ? relay_tls_names[t] : "?";
}

/* Text of a cert_lookup value. */
const char *
config_cert_lookup_str(enum config_cert_lookup c)
{
	return (unsigned)c < 2 ? cert_lookup_names[c] : "?";
}

/* The number of network processes to run. */
int
config_processes(const struct config *cfg)
{
	long c;

	if (cfg->processes > 0)
		return cfg->processes;
	c = sysconf(_SC_NPROCESSORS_ONLN);
	if (c < 1)
		return 1;
	return c > CONFIG_PROCESSES_MAX ? CONFIG_PROCESSES_MAX : (int)c;
}

/* Strip leading and trailing white space in place. */
static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* Parse an unsigned decimal with one optional unit suffix from units. */
static long long
parse_scaled(const char *s, const char *units, const long long *mult)
{
	unsigned long long v = 0;
	const char *u;
	long long m = 1;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > ((unsigned long long)LLONG_MAX -
		    (unsigned)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (*s != '\0') {
		if ((u = strchr(units, *s)) == NULL || s[1] != '\0')
			return -1;
		m = mult[u - units];
	}
	if (v > (unsigned long long)(LLONG_MAX / m))
		return -1;
	return (long long)v * m;
}

/* "30s", "5m", "2h", "5d" or plain seconds; -1 on error. */
long long
config_parse_duration(const char *s)
{
	static const long long mult[] = { 1, 60, 3600, 86400 };

	return parse_scaled(s, "smhd", mult);
}

/* "1024", "10k", "50M", "1G" (1024-based); -1 on error. */
long long
config_parse_size(const char *s)
{
	static const long long mult[] = { 1024, 1024, 1048576, 1048576,
	    1073741824, 1073741824 };

	return parse_scaled(s, "kKmMgG", mult);
}

/* A decimal 0..max made of digits only; -1 otherwise. */
static int
parse_bounded(const char *s, int max)
{
	long long v = parse_scaled(s, "", NULL);

	if (v < 0 || v > max)
		return -1;
	return (int)v;
}

/* Clear the bits of addr past the prefix length. */
static void
netmask_apply(struct netmask *nm)
{
	int i, n = nm->family == AF_INET ? 4 : 16;

	for (i = 0; i < n; i++) {
		if (nm->bits >= (i + 1) * 8)
			continue;
		if (nm->bits <= i * 8)
			nm->addr[i] = 0;
		else
			nm->addr[i] &= (unsigned char)(0xff << (8 - nm->bits % 8));
	}
}

/* "10.0.0.0/8", "::1/128", "[fe80::]/10", "192.0.2.1"; -1 on error. */
int
config_parse_netmask(const char *s, struct netmask *nm)
{
	char buf[INET6_ADDRSTRLEN + 8], *a = buf, *slash;
	size_t n;
	int max;

	memset(nm, 0, sizeof(*nm));
	if (strlcpy_s(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (*a == '[') {
		n = strlen(a);
		if (n < 3 || a[n - 1] != ']')
			return -1;
		a[n - 1] = '\0';
		a++;
		if (inet_pton(AF_INET6, a, nm->addr) != 1)
			return -1;
		nm->family = AF_INET6;
	} else if (inet_pton(AF_INET, a, nm->addr) == 1)
		nm->family = AF_INET;
	else if (inet_pton(AF_INET6, a, nm->addr) == 1)
		nm->family = AF_INET6;
	else
		return -1;
	max = nm->family == AF_INET ? 32 : 128;
	nm->bits = max;
	if (slash != NULL && (nm->bits = parse_bounded(slash, max)) == -1)
		return -1;
	/* ::ffff:a.b.c.d/N is an IPv4 network; keep one form for matching. */
	if (nm->family == AF_INET6 && nm->bits >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((struct in6_addr *)nm->addr)) {
		memmove(nm->addr, nm->addr + 12, 4);
		memset(nm->addr + 4, 0, 12);
		nm->family = AF_INET;
		nm->bits -= 96;
	}
	netmask_apply(nm);
	return 0;
}

/* 1 if addr (of the given family) is inside nm. */
static int
netmask_match(const struct netmask *nm, int family, const unsigned char *addr)
{
	int full = nm->bits / 8, rem = nm->bits % 8;
	unsigned char m;

	if (nm->family != family)
		return 0;
	if (memcmp(nm->addr, addr, full) != 0)
		return 0;
	if (rem == 0)
		return 1;
	m = (unsigned char)(0xff << (8 - rem));
	return (addr[full] & m) == nm->addr[full];
}

/* 1 if the address is inside one of nets (v4-mapped v6 counts as v4). */
static int
networks_match(const struct netmask *nets, int n, const struct sockaddr *sa)
{
	const struct sockaddr_in6 *sin6;
	const unsigned char *addr;
	int family, i;

	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		addr = (const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		family = AF_INET6;
		addr = sin6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			family = AF_INET;
			addr += 12;
		}
	} else
		return 0;
	for (i = 0; i < n; i++)
		if (netmask_match(&nets[i], family, addr))
			return 1;
	return 0;
}

/* 1 if the address is inside relay_networks. */
int
config_relay_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	return networks_match(cfg->relay_networks, cfg->nrelay_networks, sa);
}

/* 1 if the address may send XFORWARD (xforward_hosts). */
int
config_xforward_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	return networks_match(cfg->xforward_hosts, cfg->nxforward_hosts, sa);
}

/* Letters, digits, '-', '_' in dot-separated labels; IPv4 when all digits. */
static int
valid_hostname(const char *s)
{
	struct in_addr in;
	size_t label = 0, n = strlen(s);
	int alldigits = 1;
	const char *p;

	if (n == 0 || n > 253 || *s == '.' || *s == '-')
		return 0;
	for (p = s; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (++label > 63)
			return 0;
		if (*p >= '0' && *p <= '9')
			continue;
		alldigits = 0;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '-' || *p == '_'))
			return 0;
	}
	if (alldigits)
		return inet_pton(AF_INET, s, &in) == 1;
	return 1;
}

/*
 * Split "HOST:PORT", "[IPv6]:PORT" or "*:PORT" (wild = 1).  Without a port
 * (and defport set) the port is defport.  Returns -1 on a bad value.
 */
static int
split_hostport(const char *s, int wild, const char *defport, char **hostp,
    char **portp)
{
	struct in6_addr in6;
	const char *end, *colon;
	char *host;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		host = xstrndup(s + 1, end - s - 1);
		if (inet_pton(AF_INET6, host, &in6) != 1)
			goto fail;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (colon == NULL && end[1] != '\0')
			goto fail;
	} else {
		colon = strrchr(s, ':');
		host = colon ? xstrndup(s, colon - s) : xstrdup(s);
		if (strchr(host, ':') != NULL)
			goto fail;	/* bare IPv6: brackets needed */
		if (!(wild && strcmp(host, "*") == 0) && !valid_hostname(host))
			goto fail;
	}
	if (colon == NULL && defport == NULL)
		goto fail;
	if (colon != NULL && parse_bounded(colon + 1, 65535) <= 0)
		goto fail;
	*hostp = host;
	*portp = xstrdup(colon ? colon + 1 : defport);
	return 0;
fail:
	free(host);
	return -1;
}

/* Parse the option words after ADDR:PORT of a listen value. */
static int
listen_options(struct listen_cfg *l, char *opts, char *why, size_t len)
{
	int seen_tls = 0, seen_proxy = 0, i;
	char *tok, *last;

	for (tok = strtok_r(opts, " \t", &last); tok != NULL;
	    tok = strtok_r(NULL, " \t", &last)) {
		if (strncmp(tok, "tls=", 4) == 0 && !seen_tls++) {
			if ((i = name_index(tok + 4, listen_tls_names, 3)) < 0)
				return bad_value(why, len, "listen", tok,
				    "expected tls=starttls, tls=implicit or "
				    "tls=none");
			l->tls = i;
		} else if (strncmp(tok, "proxy=", 6) == 0 && !seen_proxy++) {
			if ((i = name_index(tok + 6, listen_proxy_names, 3)) < 0)
				return bad_value(why, len, "listen", tok,
				    "expected proxy=v1, proxy=v2 or proxy=off");
			l->proxy = i;
		} else
			return bad_value(why, len, "listen", tok,
			    seen_tls > 1 || seen_proxy > 1 ?
			    "option given twice" : LISTEN_EXPECT);
	}
	return 0;
}

/* Add a listener from a `listen` value; -1 with the reason in why. */
int
config_add_listen(struct config *cfg, const char *value, int line, char *why,
    size_t len)
{
	struct listen_cfg l;
	char *copy, *addr, *opts;
	int rc = -1;

	memset(&l, 0, sizeof(l));
	l.tls = LISTEN_TLS_STARTTLS;
	l.proxy = LISTEN_PROXY_OFF;
	l.line = line;
	copy = xstrdup(value);
	addr = trim(copy);
	opts = addr + strcspn(addr, " \t");
	if (*opts != '\0')
		*opts++ = '\0';
	if (split_hostport(addr, 1, NULL, &l.host, &l.port) == -1) {
		bad_value(why, len, "listen", addr, LISTEN_EXPECT);
		goto out;
	}
	if (listen_options(&l, opts, why, len) == -1) {
		free(l.host);
		free(l.port);
		goto out;
	}
	cfg->listens = xreallocarray(cfg->listens, cfg->nlistens + 1,
	    sizeof(*cfg->listens));
	cfg->listens[cfg->nlistens++] = l;
	rc = 0;
out:
	free(copy);
	return rc;
}

/* listen = ADDR:PORT [tls=...] [proxy=...] */
static int
set_listen(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	(void)k;
	return config_add_listen(cfg, val, line, why, len);
}

/* hostname = a DNS name for banner, EHLO and headers. */
static int
set_hostname(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	(void)line;
	if (!valid_hostname(val) || val[strlen(val) - 1] == '.')
		return bad_value(why, len, k->name, val,
		    "expected a host name like mail.example.com");
	free(cfg->hostname);
	cfg->hostname = xstrdup(val);
	return 0;
}

/* A readable regular file, checked without opening it; -1 with the reason. */
static int
check_file(const char *key, const char *path, char *why, size_t len)
{
	struct stat st;

	if (access(path, R_OK) == -1 || stat(path, &st) == -1) {
		snprintf(why, len, "%s: cannot read \"%s\": %s", key, path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "%s: \"%s\" is not a regular file", key,
		    path);
		return -1;
	}
	return 0;
}

/* A file we will read at start-up: check it now, without opening it. */
static int
set_file(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	char **field = (char **)(void *)((char *)cfg + k->off);

	(void)line;
	if (!(key_files_unread && (k->off == offsetof(struct config,
	    tls_key_file) || k->off == offsetof(struct config,
	    key_passphrase_file))) && check_file(k->name, val, why, len) == -1)
		return -1;
	free(*field);
	*field = xstrdup(val);
	return 0;
}

/* Files only the key process reads are not opened (config_unprivileged). */
void
config_unprivileged(void)
{
	key_files_unread = 1;
}

/* A plain string value (data_dir). */
static int
set_string(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	char **field = (char **)(void *)((char *)cfg + k->off);

	(void)line;
	(void)why;
	(void)len;
	free(*field);
	*field = xstrdup(val);
	return 0;
}

/* The longest `database` value: a connection string, not a novel. */
#define DATABASE_MAX	1024

/* database = sqlite | postgresql://... (libpq checks the rest when it
 * connects: smrelayd -n does) */
static int
set_database(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	const char *p;

	(void)line;
	if (strcmp(val, "sqlite") != 0 &&
	    strncmp(val, "postgresql://", 13) != 0 &&
	    strncmp(val, "postgres://", 11) != 0) {
		/* not echoed: it may hold a password */
		snprintf(why, len, "bad value for %s: expected sqlite or a "
		    "postgresql:// connection string", k->name);
		return -1;
	}
	if (strlen(val) > DATABASE_MAX) {
		snprintf(why, len, "bad value for %s: longer than %d "
		    "characters", k->name, DATABASE_MAX);
		return -1;
	}
	for (p = val; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
			snprintf(why, len, "bad value for %s: a connection "
			    "string has no spaces or control characters "
			    "(percent-encode them)", k->name);
			return -1;
		}
	free(cfg->database);
	cfg->database = xstrdup(val);
	return 0;
}

/* inbound_tls = may | encrypt */
static int
set_inbound_tls(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	(void)line;
	if (strcmp(val, "may") == 0)
		cfg->inbound_tls_encrypt = 0;
	else if (strcmp(val, "encrypt") == 0)
		cfg->inbound_tls_encrypt = 1;
	else
		return bad_value(why, len, k->name, val,
		    "expected may or encrypt");
	return 0;
}

/* A yes/no key into the int at k->off. */
static int
set_yesno(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	int *field = (int *)(void *)((char *)cfg + k->off);

	(void)line;
	if (strcmp(val, "yes") == 0)
		*field = 1;
	else if (strcmp(val, "no") == 0)
		*field = 0;
	else
		return bad_value(why, len, k->name, val, "expected yes or no");
	return 0;
}

/* revocation = off | soft | hard */
static int
set_revocation(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	(void)line;
	if (strcmp(val, "soft") == 0)
		cfg->revocation = CONFIG_REV_SOFT;
	else if (strcmp(val, "hard") == 0)
		cfg->revocation = CONFIG_REV_HARD;
	else if (strcmp(val, "off") == 0)
		cfg->revocation = CONFIG_REV_OFF;
	else
		return bad_value(why, len, k->name, val,
		    "expected off, soft or hard");
	return 0;
}

/* relay = HOST:PORT | [IPv6]:PORT | mx  (a bare HOST means port 25) */
static int
set_relay(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	(void)line;
	if (strcmp(val, "mx") == 0) {
		cfg->relay_mx = 1;
		return 0;
	}
	if (split_hostport(val, 0, "25", &cfg->relay_host,
	    &cfg->relay_port) == -1)
		return bad_value(why, len, k->name, val,
		    "expected HOST:PORT, [IPv6]:PORT or mx");
	return 0;
}

/* relay_tls = none | may | encrypt | verify | dane | dane-only */
static int
set_relay_tls(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	int i;

	(void)line;
	if ((i = name_index(val, relay_tls_names, RELAY_TLS_NMODES)) < 0)
		return bad_value(why, len, k->name, val,
		    "expected " RELAY_TLS_EXPECT);
	cfg->relay_tls = i;
	return 0;
}

/* A TCP port 1..65535 (relay_mx_port), kept as text for getaddrinfo. */
static int
set_port(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	char **field = (char **)(void *)((char *)cfg + k->off);

	(void)line;
	if (parse_bounded(val, 65535) <= 0)
		return bad_value(why, len, k->name, val,
		    "expected a port number from 1 to 65535");
	free(*field);
	*field = xstrdup(val);
	return 0;
}

/* The TARGET and [tls=MODE] words of a route line (after the pattern). */
static int
route_target(struct route_cfg *r, char *words, char *why, size_t len)
{
	char *tok, *last;
	int i;

	if ((tok = strtok_r(words, " \t", &last)) == NULL) {
		snprintf(why, len, "route: missing TARGET (%s)", ROUTE_EXPECT);
		return -1;
	}
	if (strcmp(tok, "mx") == 0)
		r->mx = 1;
	else if (split_hostport(tok, 0, "25", &r->host, &r->port) == -1)
		return bad_value(why, len, "route", tok, ROUTE_EXPECT);
	if ((tok = strtok_r(NULL, " \t", &last)) == NULL)
		return 0;
	if (strncmp(tok, "tls=", 4) != 0)
		return bad_value(why, len, "route", tok,
		    "unexpected word; " ROUTE_EXPECT);
	if ((i = name_index(tok + 4, relay_tls_names, RELAY_TLS_NMODES)) < 0)
		return bad_value(why, len, "route", tok,
		    "expected tls= one of " RELAY_TLS_EXPECT);
	r->tls_set = 1;
	r->tls = i;
	if ((tok = strtok_r(NULL, " \t", &last)) != NULL)
		return bad_value(why, len, "route", tok,
		    "unexpected word; " ROUTE_EXPECT);
	return 0;
}

/* route = PATTERN TARGET [tls=MODE] (repeatable, kept in file order) */
static int
set_route(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	struct route_cfg r;
	char *copy, *pat, *rest, perr[256];

	memset(&r, 0, sizeof(r));
	r.line = line;
	copy = xstrdup(val);
	pat = copy;
	rest = pat + strcspn(pat, " \t");
	if (*rest != '\0')
		*rest++ = '\0';
	if (policy_pattern_check(pat, NULL, perr, sizeof(perr)) == -1) {
		bad_value(why, len, k->name, pat, perr);
		goto fail;
	}
	if (route_target(&r, rest, why, len) == -1)
		goto fail;
	r.pattern = xstrdup(pat);
	free(copy);
	cfg->routes = xreallocarray(cfg->routes, cfg->nroutes + 1,
	    sizeof(*cfg->routes));
	cfg->routes[cfg->nroutes++] = r;
	return 0;
fail:
	free(r.host);
	free(r.port);
	free(copy);
	return -1;
}

/* The relay_tls mode of a route: its tls=, else the global relay_tls. */
enum relay_tls
config_route_tls(const struct config *cfg, const struct route_cfg *r)
{
	return r->tls_set ? r->tls : cfg->relay_tls;
}

/* dns_resolver = ADDR[:PORT] | [IPv6]:PORT | IPv6: an address, not a name. */
static int
set_dns_resolver(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	struct in6_addr in6;
	struct in_addr in;
	char *host = NULL, *port = NULL;

	(void)line;
	if (inet_pton(AF_INET6, val, &in6) == 1) {
		host = xstrdup(val);
		port = xstrdup(DEFAULT_DNS_PORT);
	} else if (split_hostport(val, 0, DEFAULT_DNS_PORT, &host,
	    &port) == -1 || (strchr(host, ':') == NULL &&
	    inet_pton(AF_INET, host, &in) != 1)) {
		free(host);
		free(port);
		return bad_value(why, len, k->name, val, "expected an IP "
		    "address: ADDR[:PORT] or [IPv6]:PORT, like 127.0.0.1 or "
		    "[::1]:5353");
	}
	free(cfg->dns_resolver);
	free(cfg->dns_resolver_host);
	free(cfg->dns_resolver_port);
	cfg->dns_resolver = xstrdup(val);
	cfg->dns_resolver_host = host;
	cfg->dns_resolver_port = port;
	return 0;
}

/* cert_lookup = none | smimea */
static int
set_cert_lookup(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	int i;

	(void)line;
	if ((i = name_index(val, cert_lookup_names, 2)) < 0)
		return bad_value(why, len, k->name, val,
		    "expected none or smimea");
	cfg->cert_lookup = i;
	return 0;
}

/* metrics_listen = ADDR:PORT ([IPv6]:PORT; * for every address) */
static int
set_metrics_listen(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	char *host, *port;

	(void)line;
	if (split_hostport(val, 1, NULL, &host, &port) == -1)
		return bad_value(why, len, k->name, val, "expected ADDR:PORT, "
		    "like 127.0.0.1:9425 or [::1]:9425");
	free(cfg->metrics_host);
	free(cfg->metrics_port);
	cfg->metrics_host = host;
	cfg->metrics_port = port;
	return 0;
}

/* relay_networks = CIDR list, separated by white space and/or commas. */

/* relay_networks, xforward_hosts = CIDR list, separated by white space
 * and/or commas; xforward_hosts may be `none`. */
static int
set_networks(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	struct netmask *nets = NULL, nm;
	char *copy, *tok, *last;
	int n = 0, rc = 0;

	(void)line;
	copy = xstrdup(val);
	if (strcmp(k->name, "xforward_hosts") == 0 && strcmp(val, "none") == 0)
		copy[0] = '\0';
	for (tok = strtok_r(copy, " \t,", &last); tok != NULL;
	    tok = strtok_r(NULL, " \t,", &last)) {
		if (config_parse_netmask(tok, &nm) == -1) {
			rc = bad_value(why, len, k->name, tok,
			    "expected ADDR or ADDR/BITS like 10.0.0.0/8 or "
			    "2001:db8::/32");
			break;
		}
		nets = xreallocarray(nets, n + 1, sizeof(*nets));
		nets[n++] = nm;
	}
	free(copy);
	if (rc == -1) {
		free(nets);
		return -1;
	}
	if (strcmp(k->name, "xforward_hosts") == 0) {
		free(cfg->xforward_hosts);
		cfg->xforward_hosts = nets;
		cfg->nxforward_hosts = n;
		return 0;
	}
	free(cfg->relay_networks);
	cfg->relay_networks = nets;
	cfg->nrelay_networks = n;
	return 0;
}

/* A positive size in bytes with an optional k/M/G suffix. */
static int
set_size(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	uint64_t *field = (uint64_t *)(void *)((char *)cfg + k->off);
	long long v = config_parse_size(val);

	(void)line;
	if (v <= 0)
		return bad_value(why, len, k->name, val,
		    "expected a positive size like 52428800, 10k, 50M or 1G");
	*field = (uint64_t)v;
	return 0;
}

/* A positive integer. */
static int
set_count(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	int *field = (int *)(void *)((char *)cfg + k->off);
	int v = parse_bounded(val, INT_MAX);

	(void)line;
	if (v <= 0)
		return bad_value(why, len, k->name, val,
		    "expected a positive integer");
	*field = v;
	return 0;
}

/* processes = N (1..CONFIG_PROCESSES_MAX) or auto (0: one per CPU) */
static int
set_processes(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	int v;

	(void)line;
	if (strcmp(val, "auto") == 0) {
		cfg->processes = 0;
		return 0;
	}
	if ((v = parse_bounded(val, CONFIG_PROCESSES_MAX)) <= 0)
		return bad_value(why, len, k->name, val, "expected auto or "
		    "an integer from 1 to 64");
	cfg->processes = v;
	return 0;
}

/* A positive duration in seconds with an optional s/m/h/d suffix. */
static int
set_duration(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	int *field = (int *)(void *)((char *)cfg + k->off);
	long long v = config_parse_duration(val);

	(void)line;
	if (v <= 0 || v > INT_MAX)
		return bad_value(why, len, k->name, val,
		    "expected a positive duration like 30s, 5m, 2h or 5d");
	*field = (int)v;
	return 0;
}

/* A wait of 0 to CONFIG_WAIT_MAX seconds, with an optional s/m suffix. */
static int
set_wait(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	int *field = (int *)(void *)((char *)cfg + k->off);
	long long v = config_parse_duration(val);

	(void)line;
	if (v < 0 || v > CONFIG_WAIT_MAX)
		return bad_value(why, len, k->name, val,
		    "expected 0 to 60 seconds, like 5s or 0");
	*field = (int)v;
	return 0;
}

/* tls_ticket_rotate: 0 (no tickets) or up to a day. */
static int
set_rotate(struct config *cfg, const struct config_key *k, const char *val,
    int line, char *why, size_t len)
{
	int *field = (int *)(void *)((char *)cfg + k->off);
	long long v = config_parse_duration(val);

	(void)line;
	if (v < 0 || v > TICKET_ROTATE_MAX)
		return bad_value(why, len, k->name, val,
		    "expected 0 (no session tickets) or a duration up to 1d, "
		    "like 1h");
	*field = (int)v;
	return 0;
}

/* log_level = error | warn | info | debug */
static int
set_log_level(struct config *cfg, const struct config_key *k,
    const char *val, int line, char *why, size_t len)
{
	int lvl = log_level_parse(val);

	(void)line;
	if (lvl < 0)
		return bad_value(why, len, k->name, val,
		    "expected error, warn, info or debug");
	cfg->log_level = lvl;
	return 0;
}

/* Every default of the SPEC table, no listener and no relay. */
struct config *
config_default(void)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	char host[256], why[256];
	const struct config_key *k = &config_keys[K_NETWORKS];

	memset(host, 0, sizeof(host));
	if (gethostname(host, sizeof(host) - 1) == -1 || host[0] == '\0')
		strlcpy_s(host, "localhost", sizeof(host));
	cfg->hostname = xstrdup(host);
	cfg->relay_tls = RELAY_TLS_MAY;
	cfg->data_dir = xstrdup(DEFAULT_DATA_DIR);
	cfg->database = xstrdup("sqlite");
	if (set_networks(cfg, k, DEFAULT_NETWORKS, 0, why, sizeof(why)) == -1)
		fatalx("default relay_networks: %s", why);
	cfg->max_message_size = DEFAULT_MAX_SIZE;
	cfg->max_recipients = DEFAULT_MAX_RCPTS;
	cfg->max_connections = DEFAULT_MAX_CONNS;
	cfg->processes = 1;
	cfg->queue_lifetime = DEFAULT_LIFETIME;
	cfg->tls_ticket_rotate = DEFAULT_TICKET_ROTATE;
	cfg->delay_warning = DEFAULT_DELAY_WARNING;
	cfg->log_level = LOG_LVL_INFO;
	cfg->revocation_fetch = 1;
	cfg->revocation_wait = CONFIG_WAIT_DEFAULT;
	cfg->user = xstrdup(DEFAULT_USER);
	cfg->relay_mx_port = xstrdup(DEFAULT_MX_PORT);
	cfg->dns_trust_anchor = xstrdup(DEFAULT_TRUST_ANCHOR);
	return cfg;
}

/* Remove a comment: '#' at the start or after white space. */
static void
strip_comment(char *s)
{
	char *p;

	for (p = s; *p; p++)
		if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
}

/* One line of the file; seen[] holds the first line of each key. */
static int
config_line(struct config *cfg, char *line, int lineno, int *seen,
    char *why, size_t len)
{
	const struct config_key *k = NULL;
	char *key, *val, *eq;
	size_t i;

	strip_comment(line);
	line = trim(line);
	if (*line == '\0')
		return 0;
	if ((eq = strchr(line, '=')) == NULL || eq == line) {
		snprintf(why, len, "syntax error: expected \"key = value\"");
		return -1;
	}
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	for (i = 0; i < NKEYS && k == NULL; i++)
		if (strcmp(config_keys[i].name, key) == 0)
			k = &config_keys[i];
	if (k == NULL) {
		snprintf(why, len, "unknown key \"%s\"", key);
		return -1;
	}
	i = k - config_keys;
	if (seen[i] && !k->repeatable) {
		snprintf(why, len, "\"%s\" repeated (first at line %d)",
		    key, seen[i]);
		return -1;
	}
	if (!seen[i])
		seen[i] = lineno;
	if (*val == '\0') {
		snprintf(why, len, "missing value for %s", key);
		return -1;
	}
	return k->set(cfg, k, val, lineno, why, len);
}

/* The line of a key's first use (0: not in the file). */
static int
seen_line(const int *seen, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return seen[i];
	return 0;
}

/* 1 for the modes that look up TLSA records. */
static int
tls_is_dane(enum relay_tls t)
{
	return t == RELAY_TLS_DANE || t == RELAY_TLS_DANE_ONLY;
}

/*
 * The first setting that makes smrelayd ask DNS, described into buf with its
 * line (seen may be NULL); NULL when DNS is not used.
 */
static const char *
dns_reason(const struct config *cfg, const int *seen, int *line, char *buf,
    size_t len)
{
	const struct route_cfg *r;
	int i;

	*line = 0;
	if (cfg->relay_mx) {
		*line = seen ? seen_line(seen, "relay") : 0;
		return "relay = mx";
	}
	for (i = 0; i < cfg->nroutes; i++) {
		r = &cfg->routes[i];
		*line = r->line;
		if (r->mx)
			return "a route to mx";
		if (r->tls_set && tls_is_dane(r->tls)) {
			snprintf(buf, len, "a route with tls=%s",
			    config_relay_tls_str(r->tls));
			return buf;
		}
	}
	if (tls_is_dane(cfg->relay_tls)) {
		*line = seen ? seen_line(seen, "relay_tls") : 0;
		snprintf(buf, len, "relay_tls = %s",
		    config_relay_tls_str(cfg->relay_tls));
		return buf;
	}
	if (cfg->cert_lookup == CONFIG_CERT_LOOKUP_SMIMEA) {
		*line = seen ? seen_line(seen, "cert_lookup") : 0;
		return "cert_lookup = smimea";
	}
	*line = 0;
	return NULL;
}

/* 1 if smrelayd will ask DNS (and so validate with dns_trust_anchor). */
int
config_uses_dns(const struct config *cfg)
{
	char buf[64];
	int line;

	return dns_reason(cfg, NULL, &line, buf, sizeof(buf)) != NULL;
}

/*
 * With DNS in use, the trust anchor file must be readable: the error points
 * at dns_trust_anchor when set, else at the setting that needs DNS.
 */
static int
check_trust_anchor(const struct config *cfg, const int *seen, char *why,
    size_t len)
{
	const char *reason;
	char buf[64], cause[256], where[32] = "";
	int line, at = seen_line(seen, "dns_trust_anchor");

	if ((reason = dns_reason(cfg, seen, &line, buf, sizeof(buf))) == NULL)
		return -1;
	if (check_file("dns_trust_anchor", cfg->dns_trust_anchor, cause,
	    sizeof(cause)) == 0)
		return -1;
	if (at && line)
		snprintf(where, sizeof(where), " at line %d", line);
	snprintf(why, len, "%s (DNSSEC trust anchors, needed for %s%s%s)",
	    cause, reason, where, at ? "" :
	    "; on Debian the default file comes with package dns-root-data");
	return at ? at : line;
}

/* What needs more than one key: returns the line (0: none) or -1 if fine. */
static int
config_check(struct config *cfg, const int *seen, char *why, size_t len)
{
	int i, j, tls = cfg->tls_cert_file != NULL;

	if (cfg->tls_cert_file != NULL && cfg->tls_key_file == NULL) {
		snprintf(why, len, "tls_cert_file is set but tls_key_file "
		    "is not");
		return seen[K_CERT];
	}
	if (cfg->tls_key_file != NULL && cfg->tls_cert_file == NULL) {
		snprintf(why, len, "tls_key_file is set but tls_cert_file "
		    "is not");
		return seen[K_KEY];
	}
	for (i = 0; i < cfg->nlistens; i++)
		for (j = 0; j < i; j++)
			if (strcasecmp(cfg->listens[i].host,
			    cfg->listens[j].host) == 0 &&
			    strcmp(cfg->listens[i].port,
			    cfg->listens[j].port) == 0) {
				snprintf(why, len, "listen %s:%s given twice "
				    "(also line %d)", cfg->listens[i].host,
				    cfg->listens[i].port, cfg->listens[j].line);
				return cfg->listens[i].line;
			}
	for (i = 0; i < cfg->nlistens && !tls; i++)
		if (cfg->listens[i].tls == LISTEN_TLS_IMPLICIT) {
			snprintf(why, len, "listen with tls=implicit needs "
			    "tls_cert_file and tls_key_file");
			return cfg->listens[i].line;
		}
	if (cfg->inbound_tls_encrypt && !tls) {
		snprintf(why, len, "inbound_tls = encrypt needs tls_cert_file "
		    "and tls_key_file");
		return seen[K_INBOUND_TLS];
	}
	if (cfg->user[0] == '\0' || (cfg->key_file != NULL &&
	    cfg->key_file[0] == '\0')) {
		snprintf(why, len, "user and key_file may not be empty");
		return 0;
	}
	if (cfg->relay_host == NULL && !cfg->relay_mx) {
		snprintf(why, len, "missing required key \"relay\" "
		    "(next hop HOST:PORT or mx)");
		return 0;
	}
	return check_trust_anchor(cfg, seen, why, len);
}

/* Read and check the whole file; NULL with "FILE[:LINE]: reason" in err. */
struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config *cfg;
	int seen[NKEYS], lineno = 0, bad = -1, nbad = 0;
	char why[512], *line = NULL;
	size_t linesz = 0, off = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return NULL;
	}
	memset(seen, 0, sizeof(seen));
	cfg = config_default();
	cfg->path = xstrdup(path);
	/* every bad line is reported, one per line of err (at most
	 * CONFIG_MAX_ERRORS); the checks across keys only without them */
	while (getline(&line, &linesz, fp) != -1) {
		if (config_line(cfg, line, ++lineno, seen, why,
		    sizeof(why)) == -1) {
			bad = lineno;
			if (nbad++ < CONFIG_MAX_ERRORS && off < errlen)
				off += (size_t)snprintf(err + off, errlen - off,
				    "%s%s:%d: %s", off > 0 ? "\n" : "", path,
				    lineno, why);
		}
	}
	if (nbad > 0) {
		free(line);
		fclose(fp);
		config_free(cfg);
		return NULL;
	}
	if (bad == -1 && ferror(fp)) {
		snprintf(why, sizeof(why), "cannot read: %s", strerror(errno));
		bad = 0;
	}
	free(line);
	fclose(fp);
	if (bad == -1 && cfg->nlistens == 0 &&
	    config_add_listen(cfg, DEFAULT_LISTEN, 0, why, sizeof(why)) == -1)
		fatalx("default listen: %s", why);
	if (bad == -1)
		bad = config_check(cfg, seen, why, sizeof(why));
	if (bad == -1 && cfg->key_file == NULL)
		cfg->key_file = xasprintf("%s/keys.db", cfg->data_dir);
	if (bad == -1)
		return cfg;
	if (bad > 0)
		snprintf(err, errlen, "%s:%d: %s", path, bad, why);
	else
		snprintf(err, errlen, "%s: %s", path, why);
	config_free(cfg);
	return NULL;
}

/* Release a configuration and everything it owns. */
void
config_free(struct config *cfg)
{
	int i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nlistens; i++) {
		free(cfg->listens[i].host);
		free(cfg->listens[i].port);
	}
	free(cfg->listens);
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->relay_host);
	free(cfg->relay_port);
	free(cfg->relay_tls_ca_file);
	free(cfg->data_dir);
	free(cfg->database);
	free(cfg->user);
	free(cfg->key_file);
	free(cfg->key_passphrase_file);
	free(cfg->relay_networks);
	free(cfg->xforward_hosts);
	free(cfg->relay_mx_port);
	for (i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].pattern);
		free(cfg->routes[i].host);
		free(cfg->routes[i].port);
	}
	free(cfg->routes);
	free(cfg->dns_resolver);
	free(cfg->dns_resolver_host);
	free(cfg->dns_resolver_port);
	free(cfg->dns_trust_anchor);
	free(cfg->metrics_host);
	free(cfg->metrics_port);
	free(cfg);
}
