/*
 * keyd_server.h: the key process's side of the socketpair.
 *
 * One keyd_server serves one connection (the network process's end of a
 * socketpair) with a bufferevent: it reads every complete request frame
 * (proto/keyproto.h), carries it out on the keyring and answers in order
 * with the request's id.  Input is bounded (a frame is at most
 * KEYPROTO_MAX_FRAME); when answers pile up unread the server stops
 * reading.  A malformed frame gets an ERR KP_E_PROTO answer, then the
 * connection is closed.  Failed unwraps are logged.  PKCS#1 v1.5 unwraps
 * without a key length, whose error tells a bad padding, are answered
 * KP_E_BUSY without trying past KEYD_UNWRAP_FAILS failures a second: a
 * compromised network process must not get a fast padding oracle.  The
 * others are never refused: with a key length (implicit rejection, see
 * proto/keyproto.h; what our own code sends) a bad padding is no failure,
 * and OAEP fails with one error whatever went wrong; so a sender who makes
 * unwraps fail can neither stop good ones nor learn from a refusal.
 *
 * The key process ignores SIGPIPE (the peer may be gone when we answer).
 */
#ifndef SMRELAY_KEYD_SERVER_H
#define SMRELAY_KEYD_SERVER_H

#include "keyd_keyring.h"

/* Failed unwraps a second before the others are answered KP_E_BUSY. */
#define KEYD_UNWRAP_FAILS	10

struct event_base;
struct keyd_server;

/* The connection is closed (peer gone, error or malformed request); the
 * callback may free the server. */
typedef void keyd_server_closed_cb(struct keyd_server *, void *arg);

/* keyd_server.c */
/*
 * Make the calling process hard to read: not dumpable (no core file, no
 * ptrace or /proc/PID/mem by the same user without CAP_SYS_PTRACE) and a
 * core size of 0.  The key process calls it first thing, then
 * keyd_secure_heap() before loading keys.  0, or -1 with errno.
 */
int keyd_harden(void);
/* Serve requests on fd (closed by keyd_server_free) with the keys of kr,
 * which must outlive the server. */
struct keyd_server *keyd_server_new(struct event_base *, int fd,
    struct keyd_keyring *kr);
/* A request names a key the keyring does not have: the callback may put
 * in a fresh keyring (keyd_server_set_keyring) before it is answered. */
typedef void keyd_server_miss_cb(void *arg);
void keyd_server_set_miss_cb(struct keyd_server *, keyd_server_miss_cb *,
    void *arg);
/* Answer from kr from now on (a reload); the caller frees the old one. */
void keyd_server_set_keyring(struct keyd_server *, struct keyd_keyring *);
/*
 * Carry out sign and derive on w's threads (the key process has one per
 * CPU) for RSA and token keys, and for EC keys when other requests wait or
 * run (a lone EC operation is done on the loop: the hand-off costs more
 * than an ECDSA signature): answers then come as
 * operations finish, not in request order (each has its request's id); at most KEYD_INFLIGHT at once, then reading
 * waits.  Unwraps stay on the loop, one at a time, so that the failed-unwrap
 * limit sees each failure before the next try.  Without w, everything on
 * the loop, in order.
 */
struct workers;
void keyd_server_set_workers(struct keyd_server *, struct workers *);
/* Be told when the connection closes. */
void keyd_server_set_closed_cb(struct keyd_server *, keyd_server_closed_cb *,
    void *arg);
void keyd_server_free(struct keyd_server *);

#endif
