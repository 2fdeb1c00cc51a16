/* relay_conn.h: what relay.c (transactions, pool) and relay_conn.c (one
 * connection to the next hop: connect, EHLO, STARTTLS, replies) share.
 * Private to those two files. */
#ifndef SMRELAY_RELAY_CONN_H
#define SMRELAY_RELAY_CONN_H

#include <sys/queue.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"
#include "relay.h"
#include "proto/proto.h"

#define RELAY_LINE_MAX  4096            /* one reply line from the next hop */
#define RELAY_LINES_MAX 100             /* lines in one reply */
#define RELAY_IDLE_MAX  32              /* pooled idle connections */
#define RELAY_CHUNK     (64 * 1024)     /* body bytes read per msgbuf_pread */
#define RELAY_WBUF_HIGH (256 * 1024)    /* stop stuffing above this */
#define RELAY_WBUF_LOW  (64 * 1024)     /* ... and go on below this */

enum conn_state {
	C_INIT,         /* waiting for the event loop to start connecting */
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

enum cmd { CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_DOT, CMD_RSET };

struct expect {
	enum cmd cmd;
	int idx;                        /* recipient for CMD_RCPT */
};

struct relay_txn;

struct relay_conn {
	TAILQ_ENTRY(relay_conn) entry;          /* pool->conns */
	TAILQ_ENTRY(relay_conn) idle_entry;     /* pool->idle when idle */
	struct relay_pool *pool;
	uint64_t id;
	unsigned gen;                   /* pool generation it was opened in */
	char *host, *port;
	char peer[300];                 /* "host:port" for logs */
	enum relay_tls tlsmode;
	enum conn_state state;
	struct bufferevent *bev;
	SSL *ssl;                       /* owned by bev once TLS started */
	struct event *timer;
	struct smtp_reply reply;        /* being read */
	unsigned ext;
	uint64_t size_limit;
	struct expect *exp;             /* replies we wait for, in order */
	size_t exphead, nexp, expsz;
	struct relay_txn *txn;
	int idle;
	int reused;                     /* taken from the idle list */
	int nreplies;                   /* replies since it was (re)used */
	int in_txn;                     /* MAIL sent, no final reply/RSET yet */
	int need_rset, rset_sent;
	int busy;                       /* nesting of our libevent callbacks */
};

enum mail_state { M_NONE, M_SENT, M_OK, M_REJECTED };
enum data_state { D_NONE, D_WAIT, D_SENT, D_BODY, D_DOT, D_DONE };
enum wire_state { W_QUEUED, W_SENT, W_DONE };

struct relay_rcpt {
	char *addr, *params;
	delivery_cb *cb;                /* NULL once called */
	void *arg;
	enum wire_state wire;
	int replied, accepted;
	int replay;                     /* re-sent on a fresh connection */
	struct smtp_result res;
};

struct relay_txn {
	TAILQ_ENTRY(relay_txn) entry;
	struct relay_pool *pool;        /* NULL once the pool is gone */
	struct relay_conn *conn;
	uint64_t id;
	char *from, *params;
	struct relay_rcpt *rcpts;
	int nrcpts, rcptsz;
	enum mail_state mail;
	struct smtp_result mail_res;
	enum data_state data;
	struct msgbuf *msg;
	delivery_cb *data_cb;
	void *data_arg;
	struct smtp_result data_res;
	size_t off;                     /* body bytes sent */
	struct smtp_stuff stuff;
	char *chunk;                    /* body read + stuffed buffers */
	struct event *ev;               /* deferred callbacks */
	int in_cb, aborted, finished;
	int retried;                    /* reused connection was dead */
	int replays;                    /* fresh connection after a loss */
	int replay_failed;
	char replay_err[200];
	int setup_failed;               /* no session with the next hop: */
	struct smtp_result setup_res;   /* later RCPTs get this at once */
	char peer[300];                 /* of the last connection, for logs */
};

TAILQ_HEAD(conn_list, relay_conn);
TAILQ_HEAD(txn_list, relay_txn);

struct relay_pool {
	struct event_base *base;
	struct evdns_base *dns;         /* NULL: blocking getaddrinfo */
	const struct config *cfg;
	SSL_CTX *ctx;
	struct relay_timeouts to;
	unsigned gen;
	int nconns, nidle;
	struct conn_list conns;
	struct conn_list idle;
	struct txn_list txns;
};

struct msgbuf;

/* relay.c */
void txn_pump(struct relay_txn *);
int txn_reply(struct relay_conn *, struct expect, const struct smtp_reply *);
int txn_body_pump(struct relay_txn *);
void txn_conn_failed(struct relay_txn *, struct relay_conn *, int,
    const struct smtp_result *);

/* relay_conn.c */
void result_from_reply(struct smtp_result *, const struct smtp_reply *);
struct relay_conn *conn_new(struct relay_pool *);
void conn_expect(struct relay_conn *, enum cmd, int);
void conn_send(struct relay_conn *, int, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));
void conn_settle(struct relay_conn *);
void conn_rearm(struct relay_conn *);
void conn_quit(struct relay_conn *);
void conn_close(struct relay_conn *);
void conn_fail(struct relay_conn *, int, const struct smtp_result *);

#endif
