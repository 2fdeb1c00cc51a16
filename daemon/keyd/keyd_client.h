/*
 * keyd_client.h: the network process's side of the socketpair to the key
 * process (proto/keyproto.h).
 *
 * keyd_client_call is synchronous and thread-safe: worker threads call it
 * at once and their requests are pipelined on the one socket (each has an
 * id; one writer at a time; whichever caller finds nobody reading reads
 * the answers, hands each to the thread waiting for it, and passes the
 * reading on when its own is in).  A call waits at most the client's timeout.
 * When the key process is gone (EOF, EPIPE, a malformed answer) every
 * waiter gets an error and later calls fail at once.
 *
 * keyd_client_pkey gives an EVP_PKEY that holds a certificate's public key
 * and only a handle to its private key: an OpenSSL 3 provider ("keyd")
 * forwards sign, decrypt and derive to the key process, so CMS_sign,
 * CMS_decrypt, X509_check_private_key and SSL_CTX_use_PrivateKey work on
 * it unchanged.  Its private operations block the calling thread (the
 * network process's workers), except inside an OpenSSL ASYNC job: the TLS
 * handshakes of daemon/smtpd/tls_accept.c pause there until the answer is
 * in (keyd_client_start below), so the event loop never waits.
 */
#ifndef SMRELAY_KEYD_CLIENT_H
#define SMRELAY_KEYD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct keyd_client;
struct keyproto_req;

#define KEYD_TIMEOUT_MS		10000
/* How long a call waits after one timed out, until an answer comes. */
#define KEYD_STALLED_MS		100

/* What keyd_client_call returns besides 0. */
#define KEYD_E_REFUSED		-1	/* the key process answered an error */
#define KEYD_E_UNAVAILABLE	-2	/* gone, timed out, or a bad answer:
					   a temporary failure */

/* keyd_client.c */
/* A client over fd (one end of a socketpair), which it owns from now on
 * (never NULL). */
struct keyd_client *keyd_client_new(int fd);
/* How long a call waits for its answer (default KEYD_TIMEOUT_MS). */
void keyd_client_set_timeout(struct keyd_client *, int ms);
/*
 * Send req (its id is chosen here) and wait for the answer: 0 with the
 * answer's data in out (*outlen: its size in, the length out); otherwise
 * KEYD_E_REFUSED or KEYD_E_UNAVAILABLE with err.
 */
int keyd_client_call(struct keyd_client *, const struct keyproto_req *,
    uint8_t *out, size_t *outlen, char *err, size_t errlen);
/* Whether the key process is still there as far as the client knows, and
 * answered since the last call that timed out. */
int keyd_client_alive(struct keyd_client *);
/*
 * For a caller that may not block (an OpenSSL ASYNC job on the event loop:
 * the one signature of a TLS handshake): keyd_client_start sends req and
 * returns at once (NULL with *rc and err when it cannot be sent); the
 * caller waits until keyd_async_fd is readable (the loop watches
 * keyd_client_fd and calls keyd_client_poll, which reads the answers when
 * no thread is reading), then keyd_async_done says 1 (also when its time
 * ran out) and keyd_async_result gives the outcome; keyd_async_free in
 * every case, also to abandon it.
 */
struct keyd_async;
struct keyd_async *keyd_client_start(struct keyd_client *,
    const struct keyproto_req *, int *rc, char *err, size_t errlen);
int keyd_async_fd(const struct keyd_async *);
int keyd_async_done(struct keyd_async *);
int keyd_async_result(struct keyd_async *, uint8_t *out, size_t *outlen,
    char *err, size_t errlen);
void keyd_async_free(struct keyd_async *);
int keyd_client_poll(struct keyd_client *);       /* -1: gone */
int keyd_client_fd(struct keyd_client *);
/* Take a reference (keys made by keyd_client_pkey hold one), drop it. */
void keyd_client_ref(struct keyd_client *);
void keyd_client_unref(struct keyd_client *);
/* Close the socket, fail the waiters, drop the caller's reference; the
 * memory goes with the last key that refers to it. */
void keyd_client_free(struct keyd_client *);

/* keyd_pkey.c */
/* An EVP_PKEY with cert's public key whose private operations the key
 * process does, naming the key by the SHA-256 of cert's DER; NULL with
 * err if the key type is not RSA or EC. */
EVP_PKEY *keyd_client_pkey(struct keyd_client *, X509 *cert, char *err,
    size_t errlen);

#endif
