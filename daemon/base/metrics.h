/* metrics.h: the daemon's counters, gauges and next-hop latency histogram
 * (C11 atomics, relaxed: any thread counts without a lock), rendered in
 * the Prometheus text exposition format 0.0.4 for GET /metrics and
 * `smrelayctl stats`; metrics_srv.c serves them. */
#ifndef SMRELAY_METRICS_H
#define SMRELAY_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct evbuffer;

/* One sample each; names, labels and help are metrics.c's table. */
enum metric {
	M_CONN_TOTAL, M_CONN_REFUSED, M_CONN_CURRENT,
	M_MSG_RELAYED, M_MSG_QUEUED, M_MSG_DELIVERED, M_MSG_BOUNCED,
	M_MSG_REJECTED,
	/* each _OK right before its _FAIL: M_SIGN_OK + (r != 0) */
	M_SIGN_OK, M_SIGN_FAIL,
	M_ENCRYPT_OK, M_ENCRYPT_FAIL, M_ENCRYPT_NOCERT,
	M_DECRYPT_OK, M_DECRYPT_FAIL,
	/* in the order of enum cms_outcome (proto/cms.h) */
	M_VERIFY_NONE, M_VERIFY_PASS, M_VERIFY_FAIL, M_VERIFY_POLICY,
	M_VERIFY_PERMERROR, M_VERIFY_NEUTRAL, M_VERIFY_TEMPERROR,
	M_TLS_IN_13, M_TLS_IN_12, M_TLS_IN_OTHER,
	M_TLS_OUT_13, M_TLS_OUT_12, M_TLS_OUT_OTHER,
	M_CRL_OK, M_CRL_FAIL, M_OCSP_OK, M_OCSP_FAIL,
	M_QUEUE_SIZE,
	M_QUEUE_OLDEST,         /* set to a time(); shown as its age */
	M_WORKERS_QUEUED,
	M_STORE_UP, M_STORE_PENDING, M_STORE_DROPPED,
	/* counted by the parent (smrelayd.c) */
	M_RESTART_NET_EXITED, M_RESTART_NET_WEDGED,
	M_RESTART_KEYD_EXITED, M_RESTART_KEYD_WEDGED,
	M_NMETRICS
};

enum metrics_dir { METRICS_IN, METRICS_OUT };

/* Upper bounds (seconds) of the latency buckets, +Inf aside. */
#define METRICS_NBUCKETS	12

/* The counters, and this process's row of the gauges it sets: in memory
 * shared by every network process after metrics_share(), so that any of
 * them renders the node's totals. */
extern _Atomic uint64_t *metrics_v;
extern _Atomic uint64_t *metrics_g;

/* Count one (any thread, no lock). */
static inline void
metrics_inc(enum metric m)
{
	atomic_fetch_add_explicit(&metrics_v[m], 1, memory_order_relaxed);
}

/* Count n. */
static inline void
metrics_add(enum metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&metrics_v[m], n, memory_order_relaxed);
}

/* Add d (negative: take off) to this process's share of a gauge: gone
 * with the process (metrics_slot() of its successor starts from 0). */
static inline void
metrics_gauge_add(enum metric m, int64_t d)
{
	atomic_fetch_add_explicit(&metrics_g[m], (uint64_t)d,
	    memory_order_relaxed);
}

/* Set this process's share of a gauge (rendered as the sum over the
 * processes; for an age, the oldest). */
static inline void
metrics_set(enum metric m, uint64_t v)
{
	atomic_store_explicit(&metrics_g[m], v, memory_order_relaxed);
}

/* metrics.c */
/*
 * Before forking: move the figures to memory shared with the children
 * (MAP_SHARED, anonymous), with a row of set gauges for each of nslots
 * processes.  -1 with errno (the figures stay private).
 */
int metrics_share(int nslots);
/* In a child: the row of gauges this process sets (0 <= slot < nslots),
 * zeroed. */
void metrics_slot(int slot);
/* In a child that serves no figures: count in private memory again. */
void metrics_private(void);
/* A verification's outcome (enum cms_outcome). */
void metrics_verify(int outcome);
/* A finished TLS handshake, by protocol version. */
void metrics_tls(enum metrics_dir, const SSL *);
/* One next-hop transaction took `seconds` (start to the reply to DATA). */
void metrics_latency(double seconds);
/* The certificates whose expiry is shown: forget them, then add each
 * (kind: "key", "tls"; x is not kept).  Loop thread only. */
void metrics_expiry_reset(void);
void metrics_expiry_add(const char *kind, X509 *x);
/* Append every figure in the text exposition format 0.0.4. */
void metrics_render(struct evbuffer *);
/* Label value escaping of the format (\\, \", \n) into buf; its length. */
size_t metrics_escape(const char *s, char *buf, size_t len);
/* Zero everything (tests). */
void metrics_reset(void);

#endif
