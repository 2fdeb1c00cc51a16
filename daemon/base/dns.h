/* dns.h: DNS lookups on the event loop through libunbound (threads, not
 * a forked process): MX (with RFC 7505 null MX and the RFC 5321 5.1
 * implicit MX), addresses, TLSA and SMIMEA, DNSSEC-validated against a
 * trust anchor file, each with its own deadline.  Answers are treated as
 * hostile: counts, names and record data are bounded and checked. */
#ifndef SMRELAY_DNS_H
#define SMRELAY_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_query;

#define DNS_NAME_MAX		255     /* wire octets of a name */
#define DNS_MAX_MX		100     /* more: DNS_BADANSWER */
#define DNS_MAX_ADDRS		64      /* A and AAAA together */
#define DNS_MAX_TLSA		32      /* TLSA or SMIMEA records */
#define DNS_TIMEOUT_DEFAULT	10000   /* ms per lookup */

enum dns_status {
	DNS_OK,
	DNS_NODATA,     /* the name exists, no records of that type */
	DNS_NXDOMAIN,
	DNS_TEMPFAIL,   /* SERVFAIL, timeout, network */
	DNS_BOGUS,      /* DNSSEC validation failed */
	DNS_BADANSWER   /* malformed, oversized or unusable; invalid name */
};

struct dns_mx {
	char		*host;          /* lower case, no trailing dot */
	int		 pref;
};

struct dns_tlsa {
	uint8_t		 usage, selector, mtype;
	const uint8_t	*data;
	size_t		 len;
};

/* Valid only during the callback. */
struct dns_result {
	enum dns_status	 status;
	int		 secure;        /* validated secure (this record set) */
	const char	*why;           /* for logs: "SERVFAIL", "timeout after
					 * 1500 ms", unbound's why_bogus, a
					 * skipped record (with DNS_OK); or "" */
	const char	*qname;         /* the name asked for */
	int		 ttl;
	/* MX: by preference, equal preferences shuffled; null_mx for a
	 * single "0 ." (nmx 0); implicit when there is no MX but the
	 * domain has addresses (mx[0] is the domain, pref 0; secure then
	 * says whether the absence of MX was validated).  Hosts that are
	 * IP literals or not host names are skipped (nskipped, why). */
	struct dns_mx	*mx;
	size_t		 nmx;
	int		 null_mx, implicit;
	size_t		 nskipped;      /* MX, TLSA, SMIMEA records left out */
	/* dns_addrs: IPv6 first, then IPv4, port 0 */
	struct sockaddr_storage *addrs;
	size_t		 naddrs;
	struct dns_tlsa	*tlsa;
	size_t		 ntlsa;
	struct dns_tlsa	*smimea;        /* RFC 8162, same shape as TLSA */
	size_t		 nsmimea;
};

typedef void dns_cb(const struct dns_result *, void *arg);

/* dns.c */
const char *dns_strstatus(enum dns_status);
/*
 * A resolver forwarding to resolver ("ADDR", "ADDR:PORT", "[V6]:PORT";
 * NULL: the servers of /etc/resolv.conf), validating with the DS or
 * DNSKEY records of trust_anchor_file (zone-file syntax; NULL: nothing
 * is ever secure).  NULL with err set on a bad address or an unreadable
 * file.
 */
struct dns *dns_new(struct event_base *, const char *resolver,
    const char *trust_anchor_file, char *err, size_t errlen);
/* Free; pending queries are cancelled without being called back. */
void dns_free(struct dns *);
/*
 * An unbound.conf "server:" option for ub_ctx_set_option, before the
 * first lookup: e.g. "local-zone:", "test. transparent" to let a test
 * resolver answer for test. (libunbound answers NXDOMAIN itself for the
 * RFC 6761 names test., invalid., onion. and the like; "nodefault" does
 * not undo that in libunbound 1.17, "transparent" does).  -1 with err.
 */
int dns_set_option(struct dns *, const char *opt, const char *val,
    char *err, size_t errlen);
/* Deadline of each lookup (MX with its address check counts as one). */
void dns_set_timeout(struct dns *, int ms);
/*
 * Start a lookup.  cb is called exactly once, always from the loop
 * (never from inside these functions), unless dns_cancel() or
 * dns_free() came first; the handle is invalid once cb is called.
 */
struct dns_query *dns_mx(struct dns *, const char *domain, dns_cb *,
    void *);
/* A and AAAA in parallel; secure only if both are. */
struct dns_query *dns_addrs(struct dns *, const char *host, dns_cb *,
    void *);
/* TLSA of _PORT._tcp.HOST. */
struct dns_query *dns_tlsa(struct dns *, const char *host, int port,
    dns_cb *, void *);
/* SMIMEA of local@domain (owner from dns_smimea_name). */
struct dns_query *dns_smimea(struct dns *, const char *addr, dns_cb *,
    void *);
/* Abandon a lookup: its callback is never called. */
void dns_cancel(struct dns_query *);

/* Pure helpers (no resolver; fuzzed by tests/fuzz/fuzz_dns_rdata.c). */
/* Check a name given to us (a domain or host): -1 if unusable. */
int dns_name_check(const char *, char *out, size_t outlen);
/* Why host (from an MX) is no host name, or NULL if it is one. */
const char *dns_host_bad(const char *host);
/* MX rdata: preference and the exchange name ("" for the root). */
int dns_rdata_mx(const uint8_t *, size_t, int *pref, char *host,
    size_t hostlen);
/* TLSA or SMIMEA rdata; data points into the rdata. */
int dns_rdata_tlsa(const uint8_t *, size_t, struct dns_tlsa *);
/* RFC 8162 owner name of local@domain: hex(SHA-256(local))[:56]
 * "._smimecert." domain.  -1 if addr is not local@domain. */
int dns_smimea_name(const char *addr, char *out, size_t outlen);

#endif
