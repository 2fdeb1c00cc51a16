/* tls.c: OpenSSL contexts and helpers for the inbound (server) and the
 * outbound (relay client) side. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
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

/* Server context from a PEM chain and key; NULL with err set on failure. */
/* A server context with cert's chain and key (a PEM file) or pkey (a
 * handle on the key process). */
static SSL_CTX *
server_ctx(const char *cert, const char *key, EVP_PKEY *pkey, char *err,
    size_t errlen)
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
	/* No resumption: mail sessions are long and rare per client. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
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
tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	return server_ctx(cert, key, NULL, err, errlen);
}

SSL_CTX *
tls_server_ctx_pkey(const char *cert, EVP_PKEY *pkey, char *err,
    size_t errlen)
{
	return server_ctx(cert, NULL, pkey, err, errlen);
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
