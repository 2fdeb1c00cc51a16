/* relay_conn.h: one connection to the next hop (relay_conn.c), driven by
 * relay.c through struct relay_conn_cbs.  Private to daemon/relay/; it knows
 * nothing of relay.c: transactions are opaque pointers to it. */
#ifndef SMRELAY_RELAY_CONN_H
#define SMRELAY_RELAY_CONN_H

#include <sys/queue.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"
#include "proto/proto.h"

#define RELAY_LINE_MAX  4096            /* one reply line from the next hop */
#define RELAY_LINES_MAX 100             /* lines in one reply */
#define RELAY_IDLE_MAX  32              /* pooled idle connections */
#define RELAY_WBUF_HIGH (256 * 1024)    /* stop stuffing above this */
#define RELAY_WBUF_LOW  (64 * 1024)     /* ... and go on below this */

enum conn_state {
	C_INIT,         /* waiting for the event loop to start connecting */
	C_RESOLVE,      /* waiting for the hop's MX hosts (relay_mx.c) */
	C_CONNECT,      /* DNS and TCP */
	C_GREETING,
	C_EHLO,
	C_HELO,
	C_STARTTLS,
	C_HANDSHAKE,
	C_READY,        /* commands flow; busy with a txn or idle */
	C_QUIT,
	C_DEAD
};

/* What DANE (RFC 7672) says of an MX host. */
enum relay_dane {
	DANE_NONE,      /* insecure, or securely no TLSA: no DANE */
	DANE_UNUSABLE,  /* secure TLSA records, none usable: TLS required,
			 * not authenticated */
	DANE_TLSA,      /* usable secure TLSA records: enforced */
	DANE_FAIL       /* the TLSA lookup failed: the host is not used */
};

/* One TLSA record (a copy). */
struct relay_tlsa {
	uint8_t usage, selector, mtype;
	uint8_t *data;
	size_t len;
};

enum cmd { CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_DOT, CMD_RSET, CMD_XFORWARD };

struct expect {
	enum cmd cmd;
	int idx;                        /* recipient for CMD_RCPT */
};

struct relay_conn {
	TAILQ_ENTRY(relay_conn) entry;          /* hop->conns */
	TAILQ_ENTRY(relay_conn) idle_entry;     /* hop->idle when idle, or
						 * hop->waiting in C_RESOLVE */
	struct relay_hop *hop;
	const struct relay_conn_cbs *cbs;
	void *cbarg;
	uint64_t id;
	unsigned gen;                   /* hop->gen when it was opened */
	char *host, *port;
	char peer[300];                 /* "host:port" or "host[addr]:port" */
	size_t cand;                    /* MX: the candidate being tried */
	unsigned cgen;                  /* MX: of the hop's candidates */
	enum relay_dane dane;           /* MX: the candidate's DANE state */
	struct relay_tlsa *tlsa;        /* its records, a copy */
	size_t ntlsa;
	enum relay_tls tlsmode;
	enum conn_state state;
	struct bufferevent *bev;
	SSL *ssl;                       /* owned by bev once TLS started */
	struct event *timer;
	struct smtp_reply reply;        /* being read */
	unsigned ext;
	unsigned xforward;               /* XF_BIT()s offered (EXT_XFORWARD) */
	uint64_t size_limit;
	struct expect *exp;             /* replies we wait for, in order */
	size_t exphead, nexp, expsz;
	void *txn;                      /* the user's transaction, or NULL */
	int idle;
	int reused;                     /* taken from the idle list */
	int nreplies;                   /* replies since it was (re)used */
	int in_txn;                     /* MAIL sent, no final reply/RSET yet */
	int need_rset, rset_sent;
	int body;                       /* streaming a message body */
	int busy;                       /* nesting of our libevent callbacks */
};

/*
 * How a connection reports to its user (relay.c), with the `arg` given to
 * conn_new.  Called only while c->txn is set; each may close the connection.
 */
struct relay_conn_cbs {
	/* The session is set up: send what the transaction has. */
	void (*ready)(struct relay_conn *, void *);
	/* A reply to a transaction command; -1 if the connection failed. */
	int (*reply)(struct relay_conn *, struct expect,
	    const struct smtp_reply *, void *);
	/* Room in the output buffer while streaming the body; -1 if the
	 * connection failed. */
	int (*body)(struct relay_conn *, void *);
	/* The connection is lost to the transaction; `retry` says it was an
	 * EOF/reset, not a verdict. */
	void (*failed)(struct relay_conn *, int, const struct smtp_result *,
	    void *);
};

/* Client timeouts in milliseconds (relay.c copies struct relay_timeouts). */
struct conn_timeouts {
	int connect, greeting, ehlo, tls;
	int mail, rcpt, data_init, data_block, data_final;
	int idle, hold, quit;
};

TAILQ_HEAD(conn_list, relay_conn);

/* An address to try for an MX destination, in order. */
struct relay_cand {
	char *host;                     /* the MX host (TLS name, logs) */
	int pref;
	struct sockaddr_storage ss;     /* port set */
	socklen_t sslen;
	int secure;                     /* MX and address DNSSEC-secure */
	enum relay_dane dane;           /* with relay_tls = dane, dane-only */
	struct relay_tlsa *tlsa;        /* usable ones (DANE_TLSA) */
	size_t ntlsa;
};

struct dns;
struct dns_query;
struct dns_mx;
struct mx_ask;

struct smtp_result;

/* What relay_mx.c does to a connection: relay_conn.c's functions, handed
 * over through the hop (relay.c sets it) so that relay_mx.c, which
 * relay_conn.c calls, does not call relay_conn.c back. */
struct mx_conn_ops {
	void (*connect)(struct relay_conn *, const struct sockaddr *,
	    socklen_t);
	void (*reset)(struct relay_conn *);
	void (*fail)(struct relay_conn *, int, const struct smtp_result *);
	void (*enter_state)(struct relay_conn *, enum conn_state);
	void (*timer)(struct relay_conn *, int);
};

/* A destination and our connections to it: the fixed next hop, a route's
 * HOST:PORT, or a recipient domain's MX hosts (relay.c keeps them by
 * route key). */
struct relay_hop {
	TAILQ_ENTRY(relay_hop) entry;   /* pool's hops */
	char *key;                      /* route key (route.c) */
	struct event_base *base;
	struct evdns_base *dns;         /* NULL: blocking getaddrinfo */
	const struct config *cfg;
	SSL_CTX *ctx;
	struct conn_timeouts to;
	unsigned gen;
	int nconns, nidle;
	struct conn_list conns;
	struct conn_list idle;
	int64_t last_used;              /* time(): for dropping unused hops */
	int ntxns;                      /* relay.c's transactions bound here */
	/* TLS session to resume with the next connection to sess_peer; only
	 * from and for connections that authenticate nothing (conn_unauth) */
	SSL_SESSION *sess;
	char sess_peer[300];
	/* where it is */
	char *host, *port;              /* the host, or the domain with mx */
	int mx;                         /* addresses from relay_mx.c: the
					 * domain's MX hosts, or with fixed */
	int fixed;                      /* the one host (DANE for a route) */
	enum relay_tls tls;
	/* MX (relay_mx.c): candidates, valid until expire */
	const struct mx_conn_ops *ops;  /* relay_conn.c's conn_mx_ops */
	struct dns *resolver;           /* the pool's */
	struct relay_cand *cands;
	size_t ncands;
	unsigned cgen;                  /* changes with cands */
	int64_t expire;                 /* time() */
	int failed;                     /* the lookup's outcome is fail */
	struct smtp_result fail;
	struct dns_query *mxq;          /* resolving: the MX lookup... */
	struct dns_query **aq;          /* ... then each host's addresses */
	struct dns_query **tq;          /* ... and TLSA records (DANE) */
	struct mx_ask *asks;
	enum relay_dane *hdane;         /* per host */
	struct relay_tlsa **htlsa;
	size_t *nhtlsa;
	struct dns_mx *mxs;             /* the hosts being resolved */
	struct relay_cand **hcands;     /* their addresses, per host */
	size_t *nhcands;
	size_t nmx, apending;
	int mx_secure, any_temp;
	char mxwhy[200];
	struct conn_list waiting;       /* conns in C_RESOLVE */
};

/* relay_mx.c */
/* Give c an address of its MX destination: now, or once resolved (it
 * waits in C_RESOLVE).  May fail c. */
void mx_connect(struct relay_conn *);
/* c failed before its session was set up: the next address, 1 if there
 * is one (c is connecting to it), 0 if not. */
int mx_next(struct relay_conn *, const char *why);
/* Forget the hop's lookups and candidates (the hop goes). */
void mx_clear(struct relay_hop *);
/* Free a list of TLSA copies. */
void mx_tlsa_free(struct relay_tlsa *, size_t);
/* Put c's TLSA records on ssl (DANE_TLSA); -1 if none is usable. */
int mx_dane_setup(struct relay_conn *, SSL *);

/* relay_conn.c */
/* For relay_mx.c: connect to an address, drop the socket before the
 * session is set up (for the next address), fail, change state, arm the
 * timer. */
extern const struct mx_conn_ops conn_mx_ops;
void result_from_reply(struct smtp_result *, const struct smtp_reply *);
struct relay_conn *conn_new(struct relay_hop *, const struct relay_conn_cbs *,
    void *);
struct relay_conn *conn_take_idle(struct relay_hop *);
void conn_send(struct relay_conn *, int, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));
void conn_body_begin(struct relay_conn *);
void conn_body_end(struct relay_conn *);
void conn_settle(struct relay_conn *);
void conn_rearm(struct relay_conn *);
void conn_quit(struct relay_conn *);
void conn_close(struct relay_conn *);
void conn_fail(struct relay_conn *, int, const struct smtp_result *);
void conn_forget_session(struct relay_hop *);

#endif
