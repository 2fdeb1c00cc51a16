/* dns.c: DNS lookups through libunbound on the event loop (see dns.h).
 *
 * libunbound does the resolving, the caching by TTL and the DNSSEC
 * validation; we never parse a DNS message.  What we do decode is the
 * rdata of MX, TLSA and SMIMEA answers that unbound hands over in
 * result->data: uncompressed wire format (unbound expands compression),
 * but still read with bounds as if hostile.  libunbound exports no rdata
 * decoder (its sldns is internal), and linking ldns for two record
 * layouts would be a second DNS library for two dozen lines. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <unbound.h>

#include "dns.h"
#include "lib/lib.h"

#define DNS_T_A		1
#define DNS_T_MX	15
#define DNS_T_AAAA	28
#define DNS_T_TLSA	52
#define DNS_T_SMIMEA	53
#define DNS_C_IN	1
#define DNS_RCODE_SERVFAIL	2
#define DNS_RCODE_NXDOMAIN	3
#define DNS_HOST_MAX	254     /* presentation, no trailing dot, + NUL */

enum dns_kind { DNS_Q_MX, DNS_Q_ADDRS, DNS_Q_TLSA, DNS_Q_SMIMEA };
enum { SUB_MAIN, SUB_A, SUB_AAAA, SUB_N };

struct dns {
	struct event_base	*base;
	struct ub_ctx		*ctx;
	struct event		*ev;            /* ub_fd readable */
	int			 timeout;       /* ms */
	TAILQ_HEAD(, dns_query)	 queries;
};

/* One libunbound lookup of a query. */
struct dns_sub {
	struct dns_query	*q;
	int			 id;
	int			 pending;
	int			 err;           /* libunbound's */
	struct ub_result	*res;
};

struct dns_query {
	TAILQ_ENTRY(dns_query)	 entry;
	struct dns		*dns;
	enum dns_kind		 kind;
	int			 phase;         /* MX: 1 = implicit check */
	char			 name[DNS_HOST_MAX];
	char			 qname[DNS_NAME_MAX + 1];
	struct dns_sub		 sub[SUB_N];
	int			 npending;
	struct event		*step;          /* all pending answers in */
	struct event		*timer;
	int			 failed;        /* r.status/why already set */
	int			 timeout;       /* ms, of the deadline */
	char			 why[256];
	struct dns_result	 r;
	dns_cb			*cb;
	void			*arg;
};

static void dns_finish(struct dns_query *);

/* Name of a status, for logs and tests. */
const char *
dns_strstatus(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "OK";
	case DNS_NODATA:
		return "NODATA";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_TEMPFAIL:
		return "TEMPFAIL";
	case DNS_BOGUS:
		return "BOGUS";
	case DNS_BADANSWER:
		return "BADANSWER";
	}
	return "?";
}

/* A character of a host-name label (letters, digits, hyphen; underscore
 * too when allow_us, for _25._tcp. and the like). */
static int
dns_label_char(int c, int allow_us)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || (allow_us && c == '_');
}

/*
 * Copy a name given to us into out, lower case, without a trailing dot.
 * -1 if it is empty, too long, has an empty or over-long label or a
 * character other than letters, digits, '-' and '_' (an address literal,
 * a non-ASCII name not in A-labels, an escape).
 */
int
dns_name_check(const char *name, char *out, size_t outlen)
{
	size_t n, i, label = 0;

	n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > DNS_HOST_MAX - 1 || n + 1 > outlen)
		return -1;
	for (i = 0; i < n; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (!dns_label_char((unsigned char)name[i], 1) ||
		    ++label > 63)
			return -1;
		out[i] = (name[i] >= 'A' && name[i] <= 'Z') ?
		    name[i] - 'A' + 'a' : name[i];
	}
	if (label == 0)
		return -1;
	out[n] = '\0';
	return 0;
}

/* Why host is not a host name an MX may point at, NULL if it is one. */
const char *
dns_host_bad(const char *host)
{
	const char *p, *last;
	struct in_addr a4;
	int digits = 1;

	if (*host == '\0')
		return "empty name";
	if (inet_pton(AF_INET, host, &a4) == 1)
		return "an IP address literal";
	for (p = host; *p != '\0'; p++)
		if (*p != '.' && !dns_label_char((unsigned char)*p, 0))
			return "not a host name (character)";
	last = strrchr(host, '.');
	for (p = last != NULL ? last + 1 : host; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			digits = 0;
	if (digits)
		return "not a host name (numeric top-level label)";
	return NULL;
}

/*
 * Decode MX rdata: a 16-bit preference and an uncompressed wire-format
 * name that must fill the rest exactly.  host gets the name in lower
 * case without the final dot ("" for the root, a null MX).  Labels with
 * characters that do not belong in a host name are kept (dns_host_bad
 * reports them) except '.', '\\' and controls, which are refused here
 * so the text stays unambiguous.  -1 if malformed or too long.
 */
int
dns_rdata_mx(const uint8_t *rd, size_t len, int *pref, char *host,
    size_t hostlen)
{
	size_t off = 2, o = 0, wire = 1, i, l;
	uint8_t c;

	if (rd == NULL || len < 3 || hostlen == 0)
		return -1;
	*pref = (rd[0] << 8) | rd[1];
	for (;;) {
		if (off >= len)
			return -1;
		l = rd[off++];
		if (l == 0)
			break;
		if (l > 63 || l > len - off)
			return -1;      /* also 0xc0: no compression here */
		wire += l + 1;
		if (wire > DNS_NAME_MAX)
			return -1;
		if (o != 0) {
			if (o + 1 >= hostlen)
				return -1;
			host[o++] = '.';
		}
		for (i = 0; i < l; i++) {
			c = rd[off + i];
			if (c <= ' ' || c >= 0x7f || c == '.' || c == '\\')
				return -1;
			if (o + 1 >= hostlen)
				return -1;
			host[o++] = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
		}
		off += l;
	}
	if (off != len)
		return -1;
	host[o] = '\0';
	return 0;
}

/*
 * Decode TLSA (RFC 6698) or SMIMEA (RFC 8162) rdata: usage, selector,
 * matching type, then the association data.  -1 if there is no data, or
 * a SHA-256 (1) / SHA-512 (2) digest has the wrong length (RFC 7671
 * section 5: such records are unusable).
 */
int
dns_rdata_tlsa(const uint8_t *rd, size_t len, struct dns_tlsa *t)
{
	if (rd == NULL || len < 4)
		return -1;
	t->usage = rd[0];
	t->selector = rd[1];
	t->mtype = rd[2];
	t->data = rd + 3;
	t->len = len - 3;
	if ((t->mtype == 1 && t->len != 32) || (t->mtype == 2 && t->len != 64))
		return -1;
	return 0;
}

/* The RFC 8162 section 3 owner name of local@domain (split at the last
 * '@'; the local-part is hashed as it is, no case folding). */
int
dns_smimea_name(const char *addr, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char domain[DNS_HOST_MAX], label[57];
	const char *at;
	int i, n;

	at = strrchr(addr, '@');
	if (at == NULL || at == addr || (size_t)(at - addr) > 512)
		return -1;
	if (dns_name_check(at + 1, domain, sizeof(domain)) == -1)
		return -1;
	if (!EVP_Digest(addr, (size_t)(at - addr), md, &mdlen, EVP_sha256(),
	    NULL) || mdlen < 28)
		return -1;
	for (i = 0; i < 28; i++) {
		label[2 * i] = hex[md[i] >> 4];
		label[2 * i + 1] = hex[md[i] & 15];
	}
	label[56] = '\0';
	n = snprintf(out, outlen, "%s._smimecert.%s", label, domain);
	if (n < 0 || (size_t)n >= outlen || n > DNS_HOST_MAX - 1)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ resolver */

/* ub_fd is readable: let libunbound call back the finished lookups. */
static void
dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	(void)fd;
	(void)what;
	(void)ub_process(d->ctx);
}

/* Turn "ADDR", "ADDR:PORT", "[V6]:PORT" or "V6" into unbound's
 * "ADDR@PORT".  -1 if it is none of these. */
static int
dns_fwd_addr(const char *s, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char buf[sizeof(struct in6_addr)];
	const char *port = NULL, *end, *colon;
	size_t hl;
	long p = 53;
	char *ep;
	int n;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		hl = (size_t)(end - s - 1);
		s++;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
	} else if ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		hl = (size_t)(colon - s);
		port = colon + 1;
	} else
		hl = strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, buf) != 1 &&
	    inet_pton(AF_INET6, host, buf) != 1)
		return -1;
	if (port != NULL) {
		errno = 0;
		p = strtol(port, &ep, 10);
		if (*port == '\0' || *ep != '\0' || errno != 0 || p < 1 ||
		    p > 65535)
			return -1;
	}
	n = snprintf(out, outlen, "%s@%ld", host, p);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Configure the unbound context; -1 with err set. */
static int
dns_ctx_setup(struct ub_ctx *ctx, const char *resolver, const char *ta,
    char *err, size_t errlen)
{
	char fwd[INET6_ADDRSTRLEN + 16];
	FILE *f;
	int r;

	/* Threads: answers come through ub_fd, no process is forked. */
	if ((r = ub_ctx_async(ctx, 1)) != 0)
		goto ub;
	/* A resolver on loopback (a local unbound, NSD in tests) is the
	 * usual case for a forwarder: unbound refuses it by default. */
	if ((r = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) != 0)
		goto ub;
	if (resolver == NULL) {
		if ((r = ub_ctx_resolvconf(ctx, NULL)) != 0)
			goto ub;
	} else {
		if (dns_fwd_addr(resolver, fwd, sizeof(fwd)) == -1) {
			snprintf(err, errlen, "resolver %s: not ADDR, ADDR:PORT "
			    "or [V6]:PORT", resolver);
			return -1;
		}
		if ((r = ub_ctx_set_fwd(ctx, fwd)) != 0)
			goto ub;
	}
	if (ta != NULL) {
		/* unbound reads it only at the first lookup: fail now. */
		if ((f = fopen(ta, "r")) == NULL) {
			snprintf(err, errlen, "trust anchor %s: %s", ta,
			    strerror(errno));
			return -1;
		}
		fclose(f);
		if ((r = ub_ctx_add_ta_file(ctx, ta)) != 0)
			goto ub;
	}
	return 0;
 ub:
	snprintf(err, errlen, "libunbound: %s", ub_strerror(r));
	return -1;
}

/* A resolver on base (see dns.h). */
struct dns *
dns_new(struct event_base *base, const char *resolver, const char *ta,
    char *err, size_t errlen)
{
	struct dns *d;

	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->timeout = DNS_TIMEOUT_DEFAULT;
	TAILQ_INIT(&d->queries);
	if ((d->ctx = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "ub_ctx_create failed");
		free(d);
		return NULL;
	}
	if (dns_ctx_setup(d->ctx, resolver, ta, err, errlen) == -1) {
		ub_ctx_delete(d->ctx);
		free(d);
		return NULL;
	}
	d->ev = event_new(base, ub_fd(d->ctx), EV_READ | EV_PERSIST,
	    dns_readable, d);
	if (d->ev == NULL || event_add(d->ev, NULL) == -1)
		alloc_fail("dns event");
	return d;
}

/* Forget a query: cancel what libunbound still has, free it. */
static void
dns_query_free(struct dns_query *q)
{
	size_t j;
	int i;

	for (i = 0; i < SUB_N; i++) {
		if (q->sub[i].pending)
			(void)ub_cancel(q->dns->ctx, q->sub[i].id);
		if (q->sub[i].res != NULL)
			ub_resolve_free(q->sub[i].res);
	}
	event_free(q->step);
	event_free(q->timer);
	for (j = 0; j < q->r.nmx; j++)
		free(q->r.mx[j].host);
	free(q->r.mx);
	free(q->r.addrs);
	free(q->r.tlsa);
	free(q->r.smimea);
	free(q);
}

/* Free the resolver; no callback is called any more. */
void
dns_free(struct dns *d)
{
	struct dns_query *q;

	if (d == NULL)
		return;
	while ((q = TAILQ_FIRST(&d->queries)) != NULL) {
		TAILQ_REMOVE(&d->queries, q, entry);
		dns_query_free(q);
	}
	event_free(d->ev);
	ub_ctx_delete(d->ctx);
	free(d);
}

/* Pass an option to libunbound (before the first lookup). */
int
dns_set_option(struct dns *d, const char *opt, const char *val, char *err,
    size_t errlen)
{
	int r;

	if ((r = ub_ctx_set_option(d->ctx, opt, val)) != 0) {
		snprintf(err, errlen, "%s %s: %s", opt, val, ub_strerror(r));
		return -1;
	}
	return 0;
}

/* Deadline of every later lookup. */
void
dns_set_timeout(struct dns *d, int ms)
{
	d->timeout = ms > 0 ? ms : DNS_TIMEOUT_DEFAULT;
}

/* Abandon a lookup. */
void
dns_cancel(struct dns_query *q)
{
	if (q == NULL)
		return;
	TAILQ_REMOVE(&q->dns->queries, q, entry);
	dns_query_free(q);
}

/* Fail q with status and why (reported when nothing is pending). */
static void
dns_fail(struct dns_query *q, enum dns_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dns_fail(struct dns_query *q, enum dns_status st, const char *fmt, ...)
{
	char why[sizeof(q->why)];
	va_list ap;

	if (q->failed)
		return;
	q->failed = 1;
	q->r.status = st;
	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);      /* may use q->why */
	va_end(ap);
	memcpy(q->why, why, sizeof(q->why));
}

/* libunbound's answer to one sub-lookup (from ub_process). */
static void
dns_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_sub *s = arg;
	struct dns_query *q = s->q;

	s->pending = 0;
	s->err = err;
	s->res = res;
	if (--q->npending == 0)
		event_active(q->step, EV_TIMEOUT, 0);
}

/* Ask libunbound for name/type into sub i. */
static void
dns_ask(struct dns_query *q, int i, const char *name, int type)
{
	struct dns_sub *s = &q->sub[i];
	int r;

	s->q = q;
	r = ub_resolve_async(q->dns->ctx, name, type, DNS_C_IN, s,
	    dns_answer, &s->id);
	if (r != 0) {
		dns_fail(q, DNS_TEMPFAIL, "libunbound: %s", ub_strerror(r));
		return;
	}
	s->pending = 1;
	q->npending++;
}

/* The deadline passed: cancel what is pending, report a timeout. */
static void
dns_expired(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	int i;

	(void)fd;
	(void)what;
	for (i = 0; i < SUB_N; i++)
		if (q->sub[i].pending) {
			(void)ub_cancel(q->dns->ctx, q->sub[i].id);
			q->sub[i].pending = 0;
		}
	q->npending = 0;
	dns_fail(q, DNS_TEMPFAIL, "timeout after %d ms", q->timeout);
	event_del(q->step);
	dns_finish(q);
}

/* Status of one answer; why for anything but DNS_OK. */
static enum dns_status
dns_classify(const struct dns_sub *s, const char **why)
{
	const struct ub_result *res = s->res;

	*why = "";
	if (s->err != 0 || res == NULL) {
		*why = ub_strerror(s->err);
		return DNS_TEMPFAIL;
	}
	if (res->bogus) {
		*why = res->why_bogus != NULL ? res->why_bogus :
		    "DNSSEC validation failed";
		return DNS_BOGUS;
	}
	if (res->rcode == DNS_RCODE_NXDOMAIN) {
		*why = "NXDOMAIN";
		return DNS_NXDOMAIN;
	}
	if (res->rcode == DNS_RCODE_SERVFAIL) {
		*why = "SERVFAIL";
		return DNS_TEMPFAIL;
	}
	if (res->rcode != 0) {
		*why = res->rcode == 5 ? "REFUSED" : "error rcode";
		return DNS_TEMPFAIL;
	}
	if (!res->havedata) {
		*why = "no records of that type";
		return DNS_NODATA;
	}
	return DNS_OK;
}

/* Number of records of an answer, or cap + 1 if over cap. */
static size_t
dns_count(const struct ub_result *res, size_t cap)
{
	size_t n;

	for (n = 0; res->data != NULL && res->data[n] != NULL && n <= cap; n++)
		;
	return n;
}

/* Note a skipped record: the first one's reason is kept. */
static void
dns_skip(struct dns_query *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
dns_skip(struct dns_query *q, const char *fmt, ...)
{
	va_list ap;

	if (q->r.nskipped++ == 0) {
		va_start(ap, fmt);
		(void)vsnprintf(q->why, sizeof(q->why), fmt, ap);
		va_end(ap);
	}
}

/* An MX record with a random key: equal preferences are shuffled by
 * sorting on the key (RFC 5321 5.1). */
struct dns_mx_key {
	struct dns_mx	 mx;
	uint32_t	 key;
};

/* qsort order: preference, then the random key. */
static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx_key *x = a, *y = b;

	if (x->mx.pref != y->mx.pref)
		return x->mx.pref < y->mx.pref ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return 0;
}

/* Fill r.mx from an MX answer (status DNS_OK on entry). */
static void
dns_mx_build(struct dns_query *q, const struct ub_result *res)
{
	struct dns_mx_key *k;
	char host[DNS_HOST_MAX];
	const char *bad;
	size_t n, i, m = 0;
	int pref;

	n = dns_count(res, DNS_MAX_MX);
	if (n > DNS_MAX_MX) {
		dns_fail(q, DNS_BADANSWER, "more than %d MX records",
		    DNS_MAX_MX);
		return;
	}
	k = xcalloc(n > 0 ? n : 1, sizeof(*k));
	for (i = 0; i < n; i++) {
		if (res->len[i] < 0 || dns_rdata_mx((uint8_t *)res->data[i],
		    (size_t)res->len[i], &pref, host, sizeof(host)) == -1) {
			dns_skip(q, "malformed MX record skipped");
			continue;
		}
		if (*host == '\0') {
			if (n == 1 && pref == 0) {
				q->r.null_mx = 1;
				break;
			}
			dns_skip(q, "MX \".\" skipped (a null MX is a lone "
			    "record of preference 0)");
			continue;
		}
		if ((bad = dns_host_bad(host)) != NULL) {
			dns_skip(q, "MX host %s skipped: %s", host, bad);
			continue;
		}
		k[m].mx.host = xstrdup(host);
		k[m].mx.pref = pref;
		if (RAND_bytes((unsigned char *)&k[m].key,
		    sizeof(k[m].key)) != 1)
			k[m].key = (uint32_t)random();
		m++;
	}
	qsort(k, m, sizeof(*k), dns_mx_cmp);
	if (m > 0) {
		q->r.mx = xcalloc(m, sizeof(*q->r.mx));
		for (i = 0; i < m; i++)
			q->r.mx[i] = k[i].mx;
	}
	q->r.nmx = m;
	free(k);
	if (m == 0 && !q->r.null_mx)
		dns_fail(q, DNS_BADANSWER, "no usable MX host: %s", q->why);
}

/* Fill r.tlsa or r.smimea from an answer (status DNS_OK on entry). */
static void
dns_tlsa_build(struct dns_query *q, const struct ub_result *res)
{
	struct dns_tlsa *t;
	size_t n, i, m = 0;

	n = dns_count(res, DNS_MAX_TLSA);
	if (n > DNS_MAX_TLSA) {
		dns_fail(q, DNS_BADANSWER, "more than %d %s records",
		    DNS_MAX_TLSA, q->kind == DNS_Q_TLSA ? "TLSA" : "SMIMEA");
		return;
	}
	t = xcalloc(n > 0 ? n : 1, sizeof(*t));
	for (i = 0; i < n; i++) {
		if (res->len[i] < 0 || dns_rdata_tlsa((uint8_t *)res->data[i],
		    (size_t)res->len[i], &t[m]) == -1)
			dns_skip(q, "malformed record skipped (%d octets)",
			    res->len[i]);
		else
			m++;
	}
	if (q->kind == DNS_Q_TLSA) {
		q->r.tlsa = t;
		q->r.ntlsa = m;
	} else {
		q->r.smimea = t;
		q->r.nsmimea = m;
	}
	if (m == 0)
		dns_fail(q, DNS_BADANSWER, "no usable record: %s", q->why);
}

/* Append the addresses of an A or AAAA answer to r.addrs; -1 (and the
 * query failed) on a bad length or too many. */
static int
dns_addrs_add(struct dns_query *q, const struct ub_result *res, int af)
{
	struct sockaddr_storage *ss;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	size_t n, i, want = af == AF_INET ? 4 : 16;

	n = dns_count(res, DNS_MAX_ADDRS);
	if (q->r.naddrs + n > DNS_MAX_ADDRS) {
		dns_fail(q, DNS_BADANSWER, "more than %d addresses",
		    DNS_MAX_ADDRS);
		return -1;
	}
	if (q->r.addrs == NULL)
		q->r.addrs = xcalloc(DNS_MAX_ADDRS, sizeof(*q->r.addrs));
	for (i = 0; i < n; i++) {
		if (res->len[i] < 0 || (size_t)res->len[i] != want) {
			dns_fail(q, DNS_BADANSWER, "%s record of %d octets",
			    af == AF_INET ? "A" : "AAAA", res->len[i]);
			return -1;
		}
		ss = &q->r.addrs[q->r.naddrs++];
		memset(ss, 0, sizeof(*ss));
		if (af == AF_INET) {
			sin = (struct sockaddr_in *)ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, res->data[i], 4);
		} else {
			sin6 = (struct sockaddr_in6 *)ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, res->data[i], 16);
		}
	}
	return 0;
}

/* Set status and why of the query from a failed answer. */
static void
dns_fail_as(struct dns_query *q, const struct dns_sub *s, const char *what)
{
	enum dns_status st;
	const char *why;

	st = dns_classify(s, &why);
	if (what != NULL)
		dns_fail(q, st, "%s: %s", what, why);
	else
		dns_fail(q, st, "%s", why);
}

/* The A and AAAA answers are in: combine them (dns_addrs, and the
 * implicit-MX check with implicit set). */
static void
dns_addrs_done(struct dns_query *q, int implicit)
{
	struct dns_sub *a = &q->sub[SUB_A], *a6 = &q->sub[SUB_AAAA];
	enum dns_status s4, s6;
	const char *w4, *w6;

	s4 = dns_classify(a, &w4);
	s6 = dns_classify(a6, &w6);
	if (s6 == DNS_BOGUS || s4 == DNS_BOGUS) {
		dns_fail_as(q, s6 == DNS_BOGUS ? a6 : a,
		    s6 == DNS_BOGUS ? "AAAA" : "A");
		return;
	}
	if (s6 == DNS_OK && dns_addrs_add(q, a6->res, AF_INET6) == -1)
		return;
	if (s4 == DNS_OK && dns_addrs_add(q, a->res, AF_INET) == -1)
		return;
	if (q->r.naddrs > 0) {
		if (implicit) {
			q->r.implicit = 1;
			q->r.mx = xcalloc(1, sizeof(*q->r.mx));
			q->r.mx[0].host = xstrdup(q->name);
			q->r.nmx = 1;
			free(q->r.addrs);
			q->r.addrs = NULL;
			q->r.naddrs = 0;
			return;
		}
		q->r.status = DNS_OK;
		q->r.secure = a->res != NULL && a6->res != NULL &&
		    a->res->secure && a6->res->secure;
		q->r.ttl = s6 == DNS_OK ? a6->res->ttl : a->res->ttl;
		if (s4 == DNS_OK && s6 == DNS_OK && a->res->ttl < q->r.ttl)
			q->r.ttl = a->res->ttl;
		if (s6 != DNS_OK && s6 != DNS_NODATA)
			snprintf(q->why, sizeof(q->why), "AAAA: %s", w6);
		else if (s4 != DNS_OK && s4 != DNS_NODATA)
			snprintf(q->why, sizeof(q->why), "A: %s", w4);
		return;
	}
	if (s6 == DNS_TEMPFAIL || s4 == DNS_TEMPFAIL)
		dns_fail_as(q, s6 == DNS_TEMPFAIL ? a6 : a,
		    s6 == DNS_TEMPFAIL ? "AAAA" : "A");
	else if (s6 == DNS_NXDOMAIN && s4 == DNS_NXDOMAIN)
		dns_fail(q, DNS_NXDOMAIN, "NXDOMAIN");
	else if (implicit)
		dns_fail(q, DNS_NODATA, "no MX and no address records");
	else
		dns_fail(q, DNS_NODATA, "no address records");
}

/* An MX query's answers are in: finish it, or go on to the address
 * check of a domain without MX.  1 if more answers are awaited. */
static int
dns_mx_step(struct dns_query *q)
{
	struct dns_sub *s = &q->sub[SUB_MAIN];
	enum dns_status st;
	const char *why;

	if (q->phase == 1) {
		dns_addrs_done(q, 1);
		return 0;
	}
	st = dns_classify(s, &why);
	if (s->res != NULL) {
		q->r.secure = s->res->secure;
		q->r.ttl = s->res->ttl;
	}
	if (st == DNS_OK) {
		dns_mx_build(q, s->res);
		return 0;
	}
	if (st != DNS_NODATA) {
		dns_fail(q, st, "%s", why);
		return 0;
	}
	q->phase = 1;
	dns_ask(q, SUB_AAAA, q->name, DNS_T_AAAA);
	dns_ask(q, SUB_A, q->name, DNS_T_A);
	return q->npending > 0;
}

/* All pending answers of q are in (or it failed at the start). */
static void
dns_step(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_sub *s = &q->sub[SUB_MAIN];
	const char *why;
	enum dns_status st;

	(void)fd;
	(void)what;
	if (q->npending > 0)
		return;
	if (!q->failed) {
		switch (q->kind) {
		case DNS_Q_MX:
			if (dns_mx_step(q))
				return;
			break;
		case DNS_Q_ADDRS:
			dns_addrs_done(q, 0);
			break;
		case DNS_Q_TLSA:
		case DNS_Q_SMIMEA:
			st = dns_classify(s, &why);
			if (s->res != NULL) {
				q->r.secure = s->res->secure;
				q->r.ttl = s->res->ttl;
			}
			if (st == DNS_OK)
				dns_tlsa_build(q, s->res);
			else
				dns_fail(q, st, "%s", why);
			break;
		}
	}
	dns_finish(q);
}

/* Call back and free the query. */
static void
dns_finish(struct dns_query *q)
{
	if (q->failed) {
		/* the arrays (none for MX) are freed with the query */
		q->r.secure = q->r.status == DNS_BOGUS ? 0 : q->r.secure;
		q->r.naddrs = q->r.ntlsa = q->r.nsmimea = 0;
	}
	q->r.why = q->why;
	q->r.qname = q->qname;
	TAILQ_REMOVE(&q->dns->queries, q, entry);
	event_del(q->timer);
	q->cb(&q->r, q->arg);
	dns_query_free(q);
}

/* A new query of d with its events, the deadline running. */
static struct dns_query *
dns_query_new(struct dns *d, enum dns_kind kind, const char *name,
    dns_cb *cb, void *arg)
{
	struct dns_query *q;
	struct timeval tv;

	q = xcalloc(1, sizeof(*q));
	q->dns = d;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	q->r.status = DNS_OK;
	(void)strlcpy_s(q->qname, name, sizeof(q->qname));
	q->step = event_new(d->base, -1, 0, dns_step, q);
	q->timer = evtimer_new(d->base, dns_expired, q);
	if (q->step == NULL || q->timer == NULL)
		alloc_fail("dns event");
	q->timeout = d->timeout;
	tv.tv_sec = q->timeout / 1000;
	tv.tv_usec = (q->timeout % 1000) * 1000;
	if (evtimer_add(q->timer, &tv) == -1)
		alloc_fail("dns timer");
	TAILQ_INSERT_TAIL(&d->queries, q, entry);
	return q;
}

/* Let the loop report q if nothing went out (an early failure). */
static struct dns_query *
dns_kick(struct dns_query *q)
{
	if (q->npending == 0)
		event_active(q->step, EV_TIMEOUT, 0);
	return q;
}

/* MX of domain (see dns.h). */
struct dns_query *
dns_mx(struct dns *d, const char *domain, dns_cb *cb, void *arg)
{
	struct dns_query *q;

	q = dns_query_new(d, DNS_Q_MX, domain, cb, arg);
	if (dns_name_check(domain, q->name, sizeof(q->name)) == -1)
		dns_fail(q, DNS_BADANSWER, "invalid domain name");
	else {
		(void)strlcpy_s(q->qname, q->name, sizeof(q->qname));
		dns_ask(q, SUB_MAIN, q->name, DNS_T_MX);
	}
	return dns_kick(q);
}

/* A and AAAA of host. */
struct dns_query *
dns_addrs(struct dns *d, const char *host, dns_cb *cb, void *arg)
{
	struct dns_query *q;

	q = dns_query_new(d, DNS_Q_ADDRS, host, cb, arg);
	if (dns_name_check(host, q->name, sizeof(q->name)) == -1)
		dns_fail(q, DNS_BADANSWER, "invalid host name");
	else {
		(void)strlcpy_s(q->qname, q->name, sizeof(q->qname));
		dns_ask(q, SUB_AAAA, q->name, DNS_T_AAAA);
		dns_ask(q, SUB_A, q->name, DNS_T_A);
	}
	return dns_kick(q);
}

/* TLSA of _port._tcp.host. */
struct dns_query *
dns_tlsa(struct dns *d, const char *host, int port, dns_cb *cb, void *arg)
{
	struct dns_query *q;
	int n;

	q = dns_query_new(d, DNS_Q_TLSA, host, cb, arg);
	if (port < 1 || port > 65535 ||
	    dns_name_check(host, q->name, sizeof(q->name)) == -1)
		dns_fail(q, DNS_BADANSWER, "invalid host name or port");
	else if ((n = snprintf(q->qname, sizeof(q->qname), "_%d._tcp.%s",
	    port, q->name)) < 0 || n > DNS_HOST_MAX - 1)
		dns_fail(q, DNS_BADANSWER, "name too long");
	else
		dns_ask(q, SUB_MAIN, q->qname, DNS_T_TLSA);
	return dns_kick(q);
}

/* SMIMEA of local@domain. */
struct dns_query *
dns_smimea(struct dns *d, const char *addr, dns_cb *cb, void *arg)
{
	struct dns_query *q;

	q = dns_query_new(d, DNS_Q_SMIMEA, addr, cb, arg);
	if (dns_smimea_name(addr, q->qname, sizeof(q->qname)) == -1) {
		(void)strlcpy_s(q->qname, addr, sizeof(q->qname));
		dns_fail(q, DNS_BADANSWER, "not local@domain");
	} else
		dns_ask(q, SUB_MAIN, q->qname, DNS_T_SMIMEA);
	return dns_kick(q);
}
