/* config.h: the smrelayd configuration file (shared/SPEC.md). */
#ifndef SMRELAY_CONFIG_H
#define SMRELAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum listen_tls { LISTEN_TLS_STARTTLS, LISTEN_TLS_IMPLICIT, LISTEN_TLS_NONE };
enum listen_proxy { LISTEN_PROXY_OFF, LISTEN_PROXY_V1, LISTEN_PROXY_V2 };
/* Order matters only for the names; test modes with switch, not <, >=. */
enum relay_tls {
	RELAY_TLS_NONE, RELAY_TLS_MAY, RELAY_TLS_ENCRYPT, RELAY_TLS_VERIFY,
	RELAY_TLS_DANE,                 /* RFC 7672 where TLSA is secure, else may */
	RELAY_TLS_DANE_ONLY             /* secure TLSA records required */
};
#define RELAY_TLS_NMODES	6

/* cert_lookup = none | smimea */
enum config_cert_lookup { CONFIG_CERT_LOOKUP_NONE, CONFIG_CERT_LOOKUP_SMIMEA };

struct listen_cfg {
	char *host;                     /* "127.0.0.1", "::1", "0.0.0.0", "*" */
	char *port;
	enum listen_tls tls;            /* default starttls */
	enum listen_proxy proxy;        /* default off */
	int line;                       /* line in the config file, for errors */
};

/* One `route` line: PATTERN TARGET [tls=MODE]. */
struct route_cfg {
	char *pattern;                  /* checked with policy_pattern_check */
	int mx;                         /* TARGET = mx */
	char *host, *port;              /* TARGET HOST:PORT (NULL with mx) */
	int tls_set;                    /* tls= given; else the global relay_tls */
	enum relay_tls tls;
	int line;                       /* line in the config file */
};

struct netmask {
	int family;                     /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

/* revocation = soft | hard | off (the values of enum cms_revocation). */
enum config_revocation {
	CONFIG_REV_SOFT = 0,
	CONFIG_REV_HARD,
	CONFIG_REV_OFF
};

#define CONFIG_WAIT_DEFAULT	5	/* revocation_wait, seconds */
#define CONFIG_WAIT_MAX		60
#define CONFIG_PROCESSES_MAX	64	/* processes; the error text says it */

struct config {
	char *path;
	struct listen_cfg *listens;     /* at least one after config_load */
	int nlistens;
	char *hostname;                 /* default: gethostname() */
	char *tls_cert_file, *tls_key_file;
	int inbound_tls_encrypt;        /* inbound_tls = encrypt */
	enum config_revocation revocation;      /* default soft */
	int revocation_fetch;           /* fetch CRLs (default yes) */
	int revocation_wait;            /* seconds a message may wait on a
					 * fetch (default 5; 0: never) */
	char *relay_host, *relay_port;  /* NULL host with relay_mx = 1 */
	int relay_mx;
	enum relay_tls relay_tls;
	char *relay_tls_ca_file;        /* NULL = system store */
	char *relay_mx_port;            /* port for MX hosts (default "25") */
	struct route_cfg *routes;       /* in file order, first match wins */
	int nroutes;
	char *dns_resolver;             /* as written; NULL: /etc/resolv.conf */
	char *dns_resolver_host;        /* an IPv4 or IPv6 address (no []) */
	char *dns_resolver_port;        /* default "53" */
	char *dns_trust_anchor;         /* default /usr/share/dns/root.key */
	enum config_cert_lookup cert_lookup;    /* default none */
	char *data_dir;
	char *database;                 /* "sqlite" (data_dir/smrelay.db) or
					 * a postgresql:// connection string */
	char *user;                     /* the network process's user */
	char *key_file;                 /* private keys; NULL until config_load
					 * (then data_dir/keys.db) */
	char *key_passphrase_file;      /* NULL: keys not encrypted */
	struct netmask *relay_networks;
	int nrelay_networks;
	struct netmask *xforward_hosts; /* may send XFORWARD; none default */
	int nxforward_hosts;
	uint64_t max_message_size;
	int max_recipients;
	int max_connections;
	int processes;                  /* network processes; 0: auto */
	int queue_lifetime;             /* seconds */
	int delay_warning;              /* delay_warning_time, seconds */
	int tls_ticket_rotate;          /* seconds; 0: no session tickets */
	int log_level;                  /* LOG_LVL_* */
	char *metrics_host, *metrics_port;      /* metrics_listen; NULL: off */
};

/* config.c */
/* From now on (the network process, after dropping privileges) the files
 * only the key process reads are named, not checked. */
void config_unprivileged(void);
/*
 * Parse the file.  On error returns NULL and writes "FILE:LINE: reason" (or
 * "FILE: reason" when there is no line) into err: one line for every bad
 * line of the file, else the first problem across keys.  Checks everything that can
 * be checked without side effects: unknown and repeated keys, values, that
 * `relay` is set, that tls_cert_file and tls_key_file come together, that a
 * tls=implicit listener has a certificate, that dns_trust_anchor is readable
 * when DNS will be used (config_uses_dns).
 */
struct config *config_load(const char *path, char *err, size_t errlen);
/* Bad lines config_load reports at most (one per line of err). */
#define CONFIG_MAX_ERRORS	20
/*
 * Every default of the SPEC table, with no listener (config_load adds
 * 127.0.0.1:10025 when the file has none) and no relay: a base for programs
 * that run a server without a file, like `smrelayctl sink`.
 */
struct config *config_default(void);
/*
 * Add a listener from a `listen` value ("ADDR:PORT [tls=...] [proxy=...]");
 * -1 with the reason (without FILE:LINE) in err on a bad value.
 */
int config_add_listen(struct config *, const char *value, int line,
    char *err, size_t errlen);
void config_free(struct config *);
/* 1 if smrelayd will ask DNS: relay or a route is mx, a relay_tls or route
 * tls= is dane or dane-only, or cert_lookup = smimea. */
int config_uses_dns(const struct config *);
/* The relay_tls mode of a route: its tls=, else the global relay_tls. */
enum relay_tls config_route_tls(const struct config *,
    const struct route_cfg *);
/* 1 if the address is inside relay_networks. */
int config_relay_allowed(const struct config *, const struct sockaddr *);
/* 1 if the address is inside xforward_hosts. */
int config_xforward_allowed(const struct config *, const struct sockaddr *);
/* "30s", "5m", "2h", "5d" or plain seconds; -1 on error. */
long long config_parse_duration(const char *);
/* "1024", "10k", "50M", "1G"; -1 on error. */
long long config_parse_size(const char *);
/* "10.0.0.0/8", "::1/128", "[fe80::]/10", "192.0.2.1" (host); -1 on error. */
int config_parse_netmask(const char *, struct netmask *);
/* Names of the enum values, as written in the file. */
const char *config_listen_tls_str(enum listen_tls);
const char *config_listen_proxy_str(enum listen_proxy);
const char *config_relay_tls_str(enum relay_tls);
const char *config_cert_lookup_str(enum config_cert_lookup);
/* How many network processes: `processes`, or with auto one per online
 * CPU (at most CONFIG_PROCESSES_MAX). */
int config_processes(const struct config *);

#endif
