/* tls.h: OpenSSL contexts and helpers for both sides. */
#ifndef SMRELAY_TLS_H
#define SMRELAY_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct config;

/* Session ticket keys kept besides the one that encrypts: a ticket
 * decrypts for up to TLS_TICKET_OLD + 1 rotations. */
#define TLS_TICKET_OLD	2

/* tls.c */
void tls_init(void);
/* Server context from tls_cert_file/tls_key_file, with session tickets
 * under our keys when rotate (tls_ticket_rotate, seconds) is not 0; NULL
 * (err set) on failure. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, int rotate,
    char *err, size_t);
/* The same with the key as an EVP_PKEY (a handle on the key process). */
SSL_CTX *tls_server_ctx_pkey(const char *cert, EVP_PKEY *, int rotate,
    char *err, size_t);
/* A new ticket key that encrypts from now on; the oldest beyond
 * TLS_TICKET_OLD is forgotten.  Returns the key's generation. */
unsigned tls_tickets_rotate(void);
/* "yes" or "no": whether the handshake resumed a session. */
const char *tls_resumed(SSL *);
/* The first certificate of a PEM file; NULL (err set) if none. */
X509 *tls_leaf_cert(const char *path, char *err, size_t);
/* Client context for every relay_tls mode: opportunistic unless a
 * connection asks to verify (tls_client_setup), DANE enabled; when some
 * mode is verify, relay_tls_ca_file or the system store is loaded.  NULL
 * (err set) on failure. */
SSL_CTX *tls_client_ctx(const struct config *, char *err, size_t);
/* Whether relay_tls or some route's tls= uses TLS. */
int tls_client_wanted(const struct config *);
/* Client context for https:// fetches: the system store, peer verified.
 * NULL (err set) on failure. */
SSL_CTX *tls_fetch_ctx(char *err, size_t);
/* "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256" */
void tls_describe(SSL *, char *buf, size_t len);
/* SNI and, with verify, peer verification with strict ciphers and the
 * name the peer certificate must match; -1 on failure. */
int tls_client_setup(SSL *, const char *host, int verify);
/* Last OpenSSL error as text (and clear the queue). */
const char *tls_error(void);

#endif
