/* tls.c: OpenSSL contexts and helpers for the inbound (server) and the
 * outbound (relay client) side. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "lib/lib.h"
#include "tls.h"

/* TLS 1.2 suites: forward secrecy and AEAD only; TLS 1.3 uses its defaults. */
#define TLS_CIPHERS_12 \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
/* What opportunistic TLS still accepts from old MTAs (RFC 7435). */
#define TLS_CIPHERS_12_OPP \
	"HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!DES:!EXPORT:!PSK:!SRP"

/* OpenSSL 3 initialises itself; we only make sure errors start clean. */
void
tls_init(void)
{
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS |
	    OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	ERR_clear_error();
}

/* Options both sides share: TLS >= 1.2, no compression, no renegotiation,
 * and a peer that closes without close_notify is a plain EOF. */
static void
tls_ctx_common(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

/*
 * Session ticket keys (RFC 5077 tickets, TLS 1.3 PSK tickets): ours, made
 * from random bytes in this process (the network process) and never
 * written anywhere.  The first is the one that encrypts; the others (older,
 * up to TLS_TICKET_OLD) still decrypt, and a ticket under one of them is
 * replaced by a fresh one.  tls_tickets_rotate() makes a new first key and
 * forgets the oldest: a ticket lives at most (TLS_TICKET_OLD + 1)
 * rotations.  The keys outlive the contexts (SIGHUP makes new ones).
 */
struct tls_ticket_key {
	unsigned char	name[16];
	unsigned char	aes[32];	/* AES-256-CBC */
	unsigned char	hmac[32];	/* HMAC-SHA256 */
	unsigned	gen;
};
static struct tls_ticket_key tls_tkeys[TLS_TICKET_OLD + 1];
static int tls_ntkeys;
static unsigned tls_tgen;
static EVP_CIPHER *tls_tcipher;

/* A new encrypting ticket key; the oldest beyond TLS_TICKET_OLD goes.
 * Returns its generation (1, 2, ...). */
unsigned
tls_tickets_rotate(void)
{
	struct tls_ticket_key k;

	if (RAND_bytes(k.name, sizeof(k.name)) != 1 ||
	    RAND_bytes(k.aes, sizeof(k.aes)) != 1 ||
	    RAND_bytes(k.hmac, sizeof(k.hmac)) != 1)
		fatalx("tls: no random bytes for a ticket key");
	k.gen = ++tls_tgen;
	if (tls_ntkeys == TLS_TICKET_OLD + 1) {
		OPENSSL_cleanse(&tls_tkeys[TLS_TICKET_OLD],
		    sizeof(tls_tkeys[0]));
		tls_ntkeys--;
	}
	memmove(&tls_tkeys[1], &tls_tkeys[0], tls_ntkeys * sizeof(k));
	tls_tkeys[0] = k;
	tls_ntkeys++;
	OPENSSL_cleanse(&k, sizeof(k));
	return tls_tgen;
}

/* OpenSSL's ticket callback: encrypt under the first key; decrypt under
 * the key the ticket names (2: valid, issue a fresh ticket), 0 (a full
 * handshake) for a key we no longer have. */
static int
tls_ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	OSSL_PARAM params[3];
	const struct tls_ticket_key *k = NULL;
	int i;

	(void)ssl;
	if (tls_ntkeys == 0 || tls_tcipher == NULL)
		return enc ? -1 : 0;
	if (enc) {
		k = &tls_tkeys[0];
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(tls_tcipher)) != 1)
			return -1;
		memcpy(name, k->name, sizeof(k->name));
	} else {
		for (i = 0; i < tls_ntkeys; i++)
			if (memcmp(name, tls_tkeys[i].name, 16) == 0) {
				k = &tls_tkeys[i];
				break;
			}
		if (k == NULL)
			return 0;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
	    (void *)k->hmac, sizeof(k->hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_MAC_CTX_set_params(hctx, params) != 1)
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(cctx, tls_tcipher, NULL, k->aes,
		    iv) == 1 ? 1 : -1;
	if (EVP_DecryptInit_ex(cctx, tls_tcipher, NULL, k->aes, iv) != 1)
		return -1;
	/* 2 (renew) even under the current key: with 1 a TLS 1.3 server
	 * sends no new ticket, and clients that use a ticket once (RFC 8446
	 * C.4; OpenSSL's marks it used) would make every other handshake
	 * full */
	return 2;
}

/* Session tickets on a server context under our keys (made now if there
 * are none yet), valid for `lifetime` seconds at most; -1 on failure. */
static int
tls_server_tickets(SSL_CTX *ctx, long lifetime)
{
	static const unsigned char sid_ctx[] = "smrelayd";

	if (tls_tcipher == NULL &&
	    (tls_tcipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL)
		return -1;
	if (tls_ntkeys == 0)
		tls_tickets_rotate();
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	/* stateless: nothing kept per session on our side */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, lifetime);
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx,
	    sizeof(sid_ctx) - 1) != 1)
		return -1;
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb) == 1 ?
	    0 : -1;
}

/* A server context with cert's chain and key (a PEM file) or pkey (a
 * handle on the key process). */
static SSL_CTX *
server_ctx(const char *cert, const char *key, EVP_PKEY *pkey, int rotate,
    char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_error());
		return NULL;
	}
	tls_ctx_common(ctx);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* Resumption by ticket (no private-key operation, so no trip to the
	 * key process); rotate 0: none, every handshake is full. */
	if (rotate > 0 && tls_server_tickets(ctx,
	    (long)rotate * (TLS_TICKET_OLD + 1)) == -1) {
		snprintf(err, errlen, "session tickets: %s", tls_error());
		goto fail;
	}
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		snprintf(err, errlen, "cipher list: %s", tls_error());
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "%s: %s", cert, tls_error());
		goto fail;
	}
	if ((pkey != NULL ? SSL_CTX_use_PrivateKey(ctx, pkey) :
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)) != 1) {
		snprintf(err, errlen, "%s: %s", pkey != NULL ? "key process" :
		    key, tls_error());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s does not match %s: %s", pkey != NULL ?
		    "the key process's key" : key, cert, tls_error());
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key, int rotate, char *err,
    size_t errlen)
{
	return server_ctx(cert, key, NULL, rotate, err, errlen);
}

SSL_CTX *
tls_server_ctx_pkey(const char *cert, EVP_PKEY *pkey, int rotate, char *err,
    size_t errlen)
{
	return server_ctx(cert, NULL, pkey, rotate, err, errlen);
}

/* The first certificate of a PEM file (the server's own). */
X509 *
tls_leaf_cert(const char *path, char *err, size_t errlen)
{
	X509 *x = NULL;
	FILE *fp;

	if ((fp = fopen(path, "r")) != NULL) {
		x = PEM_read_X509(fp, NULL, NULL, NULL);
		fclose(fp);
	}
	if (x == NULL)
		snprintf(err, errlen, "%s: no certificate", path);
	return x;
}

/* Load cafile (relay_tls_ca_file), or the system trust store when NULL,
 * into ctx; -1 with err. */
static int
load_trust(SSL_CTX *ctx, const char *cafile, char *err, size_t errlen)
{
	if (cafile != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
			snprintf(err, errlen, "relay_tls_ca_file %s: %s",
			    cafile, tls_error());
			return -1;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "system trust store: %s", tls_error());
		return -1;
	}
	return 0;
}

/* A client context: verifying the peer against cafile (NULL: the system
 * trust store) with strict ciphers, or opportunistic without checks. */
static SSL_CTX *
client_ctx(int verify, const char *cafile, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_error());
		return NULL;
	}
	tls_ctx_common(ctx);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_cipher_list(ctx,
	    verify ? TLS_CIPHERS_12 : TLS_CIPHERS_12_OPP) != 1) {
		snprintf(err, errlen, "cipher list: %s", tls_error());
		goto fail;
	}
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (load_trust(ctx, cafile, err, errlen) == -1)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Whether relay_tls or a route's tls= is `mode`. */
static int
relay_tls_used(const struct config *cfg, enum relay_tls mode)
{
	int i;

	if (cfg->relay_tls == mode)
		return 1;
	for (i = 0; i < cfg->nroutes; i++)
		if (config_route_tls(cfg, &cfg->routes[i]) == mode)
			return 1;
	return 0;
}

/*
 * Client context for every relay_tls mode (and route tls=): opportunistic
 * by default; a connection in verify mode asks for the peer's chain to
 * relay_tls_ca_file (or the system store, loaded when some mode is verify)
 * and the name (tls_client_setup); DANE connections add their TLSA records
 * (SSL_CTX_dane_enable here).
 */
SSL_CTX *
tls_client_ctx(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = client_ctx(0, NULL, err, errlen)) == NULL)
		return NULL;
	/* sessions reach the relay through a new-session callback (it keeps
	 * one per destination); OpenSSL keeps none itself */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		snprintf(err, errlen, "DANE: %s", tls_error());
		goto fail;
	}
	if (relay_tls_used(cfg, RELAY_TLS_VERIFY) &&
	    load_trust(ctx, cfg->relay_tls_ca_file, err, errlen) == -1)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Whether some relay_tls mode (or route tls=) uses TLS at all. */
int
tls_client_wanted(const struct config *cfg)
{
	int i;

	if (cfg->relay_tls != RELAY_TLS_NONE)
		return 1;
	for (i = 0; i < cfg->nroutes; i++)
		if (config_route_tls(cfg, &cfg->routes[i]) != RELAY_TLS_NONE)
			return 1;
	return 0;
}

/*
 * Client context for https:// fetches (CRLs, OCSP): TLS >= 1.2, the peer
 * verified against the system trust store (SSL_CERT_FILE, SSL_CERT_DIR
 * honoured); the name check is per connection (tls_client_setup).
 */
SSL_CTX *
tls_fetch_ctx(char *err, size_t errlen)
{
	return client_ctx(1, NULL, err, errlen);
}

/* "yes" when the handshake resumed a session (no certificate was sent). */
const char *
tls_resumed(SSL *ssl)
{
	return SSL_session_reused(ssl) ? "yes" : "no";
}

/* "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256" */
void
tls_describe(SSL *ssl, char *buf, size_t len)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int bits, alg = 0;

	if (c == NULL) {
		snprintf(buf, len, "version=%s cipher=none", SSL_get_version(ssl));
		return;
	}
	bits = SSL_CIPHER_get_bits(c, &alg);
	snprintf(buf, len, "version=%s cipher=%s bits=%d/%d",
	    SSL_get_version(ssl), SSL_CIPHER_get_name(c), bits, alg);
}

/* The oldest queued OpenSSL error as text (the root cause); clears the queue. */
const char *
tls_error(void)
{
	static char buf[256];
	unsigned long e;

	if ((e = ERR_get_error()) == 0)
		return "no OpenSSL error queued";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/*
 * Per-connection client settings: SNI for a host name (never for an address,
 * RFC 6066 3), and with verify the name (or address) the certificate must
 * match.  -1 on failure (see tls_error()).
 */
int
tls_client_setup(SSL *ssl, const char *host, int verify)
{
	unsigned char addr[16];
	int isaddr;

	isaddr = inet_pton(AF_INET, host, addr) == 1 ||
	    inet_pton(AF_INET6, host, addr) == 1;
	ERR_clear_error();
	if (!isaddr && SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	if (!verify)
		return 0;
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (SSL_set_cipher_list(ssl, TLS_CIPHERS_12) != 1)
		return -1;
	if (isaddr) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) != 1)
			return -1;
	} else {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, host) != 1)
			return -1;
	}
	return 0;
}
