/*
 * metrics.c: what smrelayd counts, in one table (family, labels, help),
 * kept as relaxed C11 atomics so that the loop and the worker threads
 * count without a lock, and rendered in the Prometheus text exposition
 * format 0.0.4.  With several network processes (issue 18) the figures
 * live in memory the parent shared before forking them: each process adds
 * to the same counters and sets its own row of gauges, and whichever
 * process renders shows the node's totals.  Sessions are set as they open
 * and close, certificate expiry just before a rendering, the queue's by
 * the queue's own timer, so a scrape never walks the queue or asks the
 * database.
 */
#include "autoconfig.h"

#include <sys/mman.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>

#include "lib/lib.h"
#include "store/store.h"
#include "metrics.h"

/*
 * One array: the counters, the latency buckets and sum, then a row of set
 * gauges per process.  Private (one row) until metrics_share().
 */
#define OFF_LAT		M_NMETRICS
#define OFF_SUM		(OFF_LAT + METRICS_NBUCKETS + 1)
#define OFF_ROWS	(OFF_SUM + 1)
static _Atomic uint64_t local[OFF_ROWS + M_NMETRICS];
static int nslots = 1;
_Atomic uint64_t *metrics_v = local;
_Atomic uint64_t *metrics_g = local + OFF_ROWS;

enum mtype { T_COUNTER, T_GAUGE, T_AGE };

static const struct mdef {
	const char	*family;
	const char	*labels;        /* inside {}, or "" */
	enum mtype	 type;
	const char	*help;          /* for the first of a family */
} mdefs[M_NMETRICS] = {
	[M_CONN_TOTAL] = { "smrelay_connections_total", "", T_COUNTER,
	    "Inbound SMTP connections accepted or refused since start." },
	[M_CONN_REFUSED] = { "smrelay_connections_refused_total", "",
	    T_COUNTER, "Inbound connections refused (max_connections)." },
	[M_CONN_CURRENT] = { "smrelay_connections_open", "", T_GAUGE,
	    "Inbound SMTP sessions open now." },
#define MSG "smrelay_messages_total"
#define MSG_HELP "Messages by outcome: relayed in-line, queued, delivered " \
	"from the queue, bounced (failure DSN), rejected at end of data."
	[M_MSG_RELAYED] = { MSG, "outcome=\"relayed\"", T_COUNTER, MSG_HELP },
	[M_MSG_QUEUED] = { MSG, "outcome=\"queued\"", T_COUNTER, NULL },
	[M_MSG_DELIVERED] = { MSG, "outcome=\"delivered\"", T_COUNTER, NULL },
	[M_MSG_BOUNCED] = { MSG, "outcome=\"bounced\"", T_COUNTER, NULL },
	[M_MSG_REJECTED] = { MSG, "outcome=\"rejected\"", T_COUNTER, NULL },
#define OPS "smrelay_smime_operations_total"
	[M_SIGN_OK] = { OPS, "op=\"sign\",result=\"ok\"", T_COUNTER,
	    "S/MIME operations by kind and result." },
	[M_SIGN_FAIL] = { OPS, "op=\"sign\",result=\"fail\"", T_COUNTER, NULL },
	[M_ENCRYPT_OK] = { OPS, "op=\"encrypt\",result=\"ok\"", T_COUNTER,
	    NULL },
	[M_ENCRYPT_FAIL] = { OPS, "op=\"encrypt\",result=\"fail\"", T_COUNTER,
	    NULL },
	[M_ENCRYPT_NOCERT] = { OPS, "op=\"encrypt\",result=\"no-cert\"",
	    T_COUNTER, NULL },
	[M_DECRYPT_OK] = { OPS, "op=\"decrypt\",result=\"ok\"", T_COUNTER,
	    NULL },
	[M_DECRYPT_FAIL] = { OPS, "op=\"decrypt\",result=\"fail\"", T_COUNTER,
	    NULL },
	[M_VERIFY_NONE] = { OPS, "op=\"verify\",result=\"none\"", T_COUNTER,
	    NULL },
	[M_VERIFY_PASS] = { OPS, "op=\"verify\",result=\"pass\"", T_COUNTER,
	    NULL },
	[M_VERIFY_FAIL] = { OPS, "op=\"verify\",result=\"fail\"", T_COUNTER,
	    NULL },
	[M_VERIFY_POLICY] = { OPS, "op=\"verify\",result=\"policy\"",
	    T_COUNTER, NULL },
	[M_VERIFY_PERMERROR] = { OPS, "op=\"verify\",result=\"permerror\"",
	    T_COUNTER, NULL },
	[M_VERIFY_NEUTRAL] = { OPS, "op=\"verify\",result=\"neutral\"",
	    T_COUNTER, NULL },
	[M_VERIFY_TEMPERROR] = { OPS, "op=\"verify\",result=\"temperror\"",
	    T_COUNTER, NULL },
#define TLS "smrelay_tls_handshakes_total"
	[M_TLS_IN_13] = { TLS, "direction=\"in\",version=\"TLSv1.3\"",
	    T_COUNTER, "TLS handshakes completed, inbound (STARTTLS or "
	    "implicit) and to next hops, by protocol version." },
	[M_TLS_IN_12] = { TLS, "direction=\"in\",version=\"TLSv1.2\"",
	    T_COUNTER, NULL },
	[M_TLS_IN_OTHER] = { TLS, "direction=\"in\",version=\"other\"",
	    T_COUNTER, NULL },
	[M_TLS_OUT_13] = { TLS, "direction=\"out\",version=\"TLSv1.3\"",
	    T_COUNTER, NULL },
	[M_TLS_OUT_12] = { TLS, "direction=\"out\",version=\"TLSv1.2\"",
	    T_COUNTER, NULL },
	[M_TLS_OUT_OTHER] = { TLS, "direction=\"out\",version=\"other\"",
	    T_COUNTER, NULL },
#define REV "smrelay_revocation_fetches_total"
	[M_CRL_OK] = { REV, "kind=\"crl\",result=\"ok\"", T_COUNTER,
	    "CRL downloads and OCSP requests by result." },
	[M_CRL_FAIL] = { REV, "kind=\"crl\",result=\"fail\"", T_COUNTER, NULL },
	[M_OCSP_OK] = { REV, "kind=\"ocsp\",result=\"ok\"", T_COUNTER, NULL },
	[M_OCSP_FAIL] = { REV, "kind=\"ocsp\",result=\"fail\"", T_COUNTER,
	    NULL },
	[M_QUEUE_SIZE] = { "smrelay_queue_messages", "", T_GAUGE,
	    "Copies in the queue (spooled, held included)." },
	[M_QUEUE_OLDEST] = { "smrelay_queue_oldest_age_seconds", "", T_AGE,
	    "Age of the oldest copy in the queue; 0 when it is empty." },
	[M_WORKERS_QUEUED] = { "smrelay_crypto_jobs_waiting", "", T_GAUGE,
	    "S/MIME jobs waiting for a worker thread." },
	[M_STORE_UP] = { "smrelay_store_up", "", T_GAUGE,
	    "1 while the store (policy, certificates) answers; 0 while it "
	    "is unreachable and the cache serves what it holds." },
	[M_STORE_PENDING] = { "smrelay_store_pending_writes", "", T_GAUGE,
	    "Harvested certificates waiting for the store to come back." },
	[M_STORE_DROPPED] = { "smrelay_store_writes_dropped_total", "",
	    T_COUNTER, "Harvested certificates dropped unwritten (the "
	    "store away and too many waiting)." },
#define RST "smrelay_process_restarts_total"
	[M_RESTART_NET_EXITED] = { RST, "process=\"network\",reason=\"exited\"",
	    T_COUNTER, "Network and key processes the parent replaced: "
	    "after they exited or died, or after it killed them as wedged "
	    "(a loop that stopped, a key process that stopped answering)." },
	[M_RESTART_NET_WEDGED] = { RST, "process=\"network\",reason=\"wedged\"",
	    T_COUNTER, NULL },
	[M_RESTART_KEYD_EXITED] = { RST, "process=\"key\",reason=\"exited\"",
	    T_COUNTER, NULL },
	[M_RESTART_KEYD_WEDGED] = { RST, "process=\"key\",reason=\"wedged\"",
	    T_COUNTER, NULL },
};

/* The latency histogram: counts per bucket (not cumulative), the sum in
 * microseconds. */
static const double bounds[METRICS_NBUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};
#define lat_bucket	(metrics_v + OFF_LAT)
#define lat_sum_us	(metrics_v[OFF_SUM])

/* Certificate expiry: a few entries, replaced before each rendering. */
#define EXPIRY_MAX	64
struct expiry {
	char	 kind[8];
	char	 fp[65];
	char	 subject[256];
	time_t	 not_after;
};
static struct expiry expiry[EXPIRY_MAX];
static size_t nexpiry;

/* Move the figures to shared memory, a row of gauges per slot. */
int
metrics_share(int n)
{
	_Atomic uint64_t *p;
	size_t len;
	int i;

	if (n < 1)
		n = 1;
	len = (OFF_ROWS + (size_t)n * M_NMETRICS) * sizeof(*p);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	for (i = 0; i < OFF_ROWS + M_NMETRICS; i++)
		atomic_init(&p[i], atomic_load(&metrics_v[i]));
	metrics_v = p;
	metrics_g = p + OFF_ROWS;
	nslots = n;
	return 0;
}

/* The row of gauges this process sets, from zero: what a dead process
 * of the slot left there is not this one's. */
void
metrics_slot(int slot)
{
	int m;

	if (slot < 0 || slot >= nslots)
		return;
	metrics_g = metrics_v + OFF_ROWS + (size_t)slot * M_NMETRICS;
	for (m = 0; m < M_NMETRICS; m++)
		atomic_store(&metrics_g[m], 0);
}

/* A process that serves no figures (the key process): its own. */
void
metrics_private(void)
{
	metrics_v = local;
	metrics_g = local + OFF_ROWS;
	nslots = 1;
}

/* A figure over the processes: counters and added gauges are kept once,
 * set gauges per process (summed; an age is the oldest non-zero one). */
static uint64_t
metrics_get(enum metric m, int age)
{
	uint64_t v, sum, oldest;
	int i;

	sum = atomic_load_explicit(&metrics_v[m], memory_order_relaxed);
	oldest = sum;
	for (i = 0; i < nslots; i++) {
		v = atomic_load_explicit(&metrics_v[OFF_ROWS +
		    (size_t)i * M_NMETRICS + m], memory_order_relaxed);
		sum += v;
		if (v != 0 && (oldest == 0 || v < oldest))
			oldest = v;
	}
	return age ? oldest : sum;
}

/* A verification's outcome (enum cms_outcome). */
void
metrics_verify(int outcome)
{
	if (outcome >= 0 && outcome <= M_VERIFY_TEMPERROR - M_VERIFY_NONE)
		metrics_inc(M_VERIFY_NONE + outcome);
}

/* A finished TLS handshake, by protocol version. */
void
metrics_tls(enum metrics_dir dir, const SSL *ssl)
{
	int v = SSL_version(ssl);
	enum metric base = dir == METRICS_IN ? M_TLS_IN_13 : M_TLS_OUT_13;

	metrics_inc(base + (v == TLS1_3_VERSION ? 0 : v == TLS1_2_VERSION ?
	    1 : 2));
}

/* One next-hop transaction took `seconds`. */
void
metrics_latency(double seconds)
{
	int i;

	if (seconds < 0)
		seconds = 0;
	for (i = 0; i < METRICS_NBUCKETS && seconds > bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&lat_bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&lat_sum_us, (uint64_t)(seconds * 1e6),
	    memory_order_relaxed);
}

/* Forget the certificates shown. */
void
metrics_expiry_reset(void)
{
	nexpiry = 0;
}

/* Show x's expiry, labelled by its fingerprint. */
void
metrics_expiry_add(const char *kind, X509 *x)
{
	struct expiry *e;
	struct tm tm;

	if (nexpiry >= EXPIRY_MAX || x == NULL)
		return;
	e = &expiry[nexpiry];
	if (keyfile_fingerprint(x, e->fp) == -1 ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return;
	e->not_after = timegm(&tm);
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	if (X509_NAME_oneline(X509_get_subject_name(x), e->subject,
	    sizeof(e->subject)) == NULL)
		e->subject[0] = '\0';
	nexpiry++;
}

/* Label value escaping of the format (\\, \", \n) into buf; its length. */
size_t
metrics_escape(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return 0;
	for (; *s != '\0' && n + 2 < len; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			buf[n++] = '\\';
			buf[n++] = *s == '\n' ? 'n' : *s;
		} else
			buf[n++] = *s;
	}
	buf[n] = '\0';
	return n;
}

/* # HELP and # TYPE of a family. */
static void
family(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* The histogram of next-hop latency. */
static void
render_latency(struct evbuffer *out)
{
	static const char *name = "smrelay_relay_latency_seconds";
	uint64_t cum = 0;
	int i;

	family(out, name, "histogram", "Next-hop transactions, from the "
	    "start to the reply to DATA.");
	for (i = 0; i <= METRICS_NBUCKETS; i++) {
		cum += atomic_load_explicit(&lat_bucket[i],
		    memory_order_relaxed);
		if (i < METRICS_NBUCKETS)
			evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n",
			    name, bounds[i], (unsigned long long)cum);
		else
			evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} "
			    "%llu\n", name, (unsigned long long)cum);
	}
	evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
	    (double)atomic_load_explicit(&lat_sum_us, memory_order_relaxed) /
	    1e6, name, (unsigned long long)cum);
}

/* Seconds to notAfter of our certificates (negative: expired). */
static void
render_expiry(struct evbuffer *out, time_t now)
{
	static const char *name = "smrelay_certificate_expiry_seconds";
	char subj[512];
	size_t i;

	family(out, name, "gauge", "Seconds until notAfter of our own "
	    "certificates: kind=\"key\" (S/MIME identities), kind=\"tls\" "
	    "(the STARTTLS certificate).");
	for (i = 0; i < nexpiry; i++) {
		metrics_escape(expiry[i].subject, subj, sizeof(subj));
		evbuffer_add_printf(out, "%s{kind=\"%s\",fingerprint=\"%s\","
		    "subject=\"%s\"} %lld\n", name, expiry[i].kind,
		    expiry[i].fp, subj,
		    (long long)(expiry[i].not_after - now));
	}
}

/* Open descriptors: poll() on the whole table says which are open. */
static long
open_fds(void)
{
	struct pollfd *p;
	char line[128];
	FILE *fp;
	long size = 0, i, n = 0;

	if ((fp = fopen("/proc/self/status", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "FDSize:", 7) == 0)
			size = strtol(line + 7, NULL, 10);
	fclose(fp);
	if (size <= 0 || size > 1 << 20)
		return -1;
	p = xcalloc((size_t)size, sizeof(*p));
	for (i = 0; i < size; i++)
		p[i].fd = (int)i;
	if (poll(p, (nfds_t)size, 0) == -1)
		n = -1;
	else
		for (i = 0; i < size; i++)
			n += !(p[i].revents & POLLNVAL);
	free(p);
	return n;
}

/* Resident memory in bytes, from /proc/self/statm. */
static long long
rss_bytes(void)
{
	unsigned long long size, res;
	FILE *fp;
	int ok;

	if ((fp = fopen("/proc/self/statm", "r")) == NULL)
		return -1;
	ok = fscanf(fp, "%llu %llu", &size, &res) == 2;
	fclose(fp);
	return ok ? (long long)(res * (unsigned long long)sysconf(
	    _SC_PAGESIZE)) : -1;
}

/* The process figures, named as Prometheus client libraries do. */
static void
render_process(struct evbuffer *out)
{
	long long rss = rss_bytes();
	long fds = open_fds();

	if (rss >= 0) {
		family(out, "process_resident_memory_bytes", "gauge",
		    "Resident memory size in bytes.");
		evbuffer_add_printf(out, "process_resident_memory_bytes %lld\n",
		    rss);
	}
	if (fds >= 0) {
		family(out, "process_open_fds", "gauge",
		    "Number of open file descriptors.");
		evbuffer_add_printf(out, "process_open_fds %ld\n", fds);
	}
}

/* Append every figure in the text exposition format 0.0.4. */
void
metrics_render(struct evbuffer *out)
{
	static const char *types[] = { "counter", "gauge", "gauge" };
	const char *last = "";
	time_t now = time(NULL);
	uint64_t v;
	int m;

	for (m = 0; m < M_NMETRICS; m++) {
		if (strcmp(mdefs[m].family, last) != 0)
			family(out, mdefs[m].family, types[mdefs[m].type],
			    mdefs[m].help);
		last = mdefs[m].family;
		v = metrics_get(m, mdefs[m].type == T_AGE);
		if (mdefs[m].type == T_AGE)
			v = v == 0 || (time_t)v > now ? 0 : (uint64_t)now - v;
		evbuffer_add_printf(out, "%s%s%s%s %llu\n", mdefs[m].family,
		    mdefs[m].labels[0] ? "{" : "", mdefs[m].labels,
		    mdefs[m].labels[0] ? "}" : "", (unsigned long long)v);
	}
	render_latency(out);
	render_expiry(out, now);
	render_process(out);
}

/* Zero everything (tests). */
void
metrics_reset(void)
{
	int i;

	for (i = 0; i < OFF_ROWS + nslots * M_NMETRICS; i++)
		atomic_store(&metrics_v[i], 0);
	nexpiry = 0;
}
