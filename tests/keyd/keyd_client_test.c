/*
 * keyd_client_test.c PKIDIR: keys that are only handles (daemon/keyd/
 * keyd_client.h) against a minimal key server in a thread of this test
 * (real keys through the EVP API, answers to a batch of pipelined
 * requests sent in reverse order).  CMS signatures (RSA PKCS#1 v1.5,
 * RSA-PSS, ECDSA) made with handles verify with the certificates; CMS
 * envelopes to RSA (PKCS#1 v1.5, OAEP) and EC certificates open with
 * handles (CMS_decrypt, and proto/cms.c's cms_decrypt); X509_check_private_key; a TLS 1.3 and a TLS 1.2 handshake with
 * a handle as the server key; 4 threads x 200 signatures at once; a key
 * process that does not answer, then one that goes away: errors, no hang.
 */
#include "autoconfig.h"

#include <sys/socket.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/lib.h"
#include "proto/proto.h"
#include "daemon/keyd/keyd.h"
#include "tests/smime/pemload.h"
#include "tests/unit/check.h"

/* ---- the test key server ---- */

#define MAXKEYS		4
#define BATCH		64

struct tserver {
	int		 fd;
	pthread_t	 th;
	int		 nkeys;
	uint8_t		 fp[MAXKEYS][KEYPROTO_FP];
	EVP_PKEY	*key[MAXKEYS];
	volatile int	 silent;	/* read requests, answer none */
	int		 maxbatch;	/* most requests read at once */
};

static const char *const md_names[] = { NULL, "SHA1", "SHA224", "SHA256",
    "SHA384", "SHA512" };

static int
ts_sign(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t *len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	const EVP_MD *md = EVP_get_digestbyname(md_names[r->md]);
	int ok;

	ok = ctx != NULL && EVP_PKEY_sign_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
	if (ok && r->alg == KP_ALG_RSA_PKCS1)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
	else if (ok && r->alg == KP_ALG_RSA_PSS)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_PKCS1_PSS_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
		    RSA_PSS_SALTLEN_DIGEST) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
	ok = ok && EVP_PKEY_sign(ctx, out, len, r->data, r->len) > 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static int
ts_decrypt(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t *len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	int ok;

	ok = ctx != NULL && EVP_PKEY_decrypt_init(ctx) > 0;
	if (ok && r->alg == KP_PAD_OAEP)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_PKCS1_OAEP_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_oaep_md(ctx,
		    EVP_get_digestbyname(md_names[r->md])) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx,
		    EVP_get_digestbyname(md_names[r->md2])) > 0;
	else if (ok)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
	ok = ok && EVP_PKEY_decrypt(ctx, out, len, r->data, r->len) > 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static int
ts_derive(EVP_PKEY *k, const struct keyproto_req *r, uint8_t *out,
    size_t *len)
{
	const unsigned char *p = r->data;
	EVP_PKEY *peer = d2i_PUBKEY(NULL, &p, (long)r->len);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	int ok;

	ok = peer != NULL && ctx != NULL && EVP_PKEY_derive_init(ctx) > 0 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
	    EVP_PKEY_derive(ctx, out, len) > 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return ok;
}

/* The answer frame to one request; its length. */
static size_t
ts_answer(struct tserver *s, const struct keyproto_req *r, uint8_t *frame)
{
	struct keyproto_rep rep;
	uint8_t data[KEYPROTO_MAX_DATA];
	size_t len = sizeof(data);
	EVP_PKEY *k = NULL;
	int i, ok = 0;

	for (i = 0; i < s->nkeys; i++)
		if (memcmp(s->fp[i], r->fp, KEYPROTO_FP) == 0)
			k = s->key[i];
	memset(&rep, 0, sizeof(rep));
	rep.id = r->id;
	if (r->type == KP_PING) {
		ok = 1;
		len = 0;
	} else if (k != NULL && r->type == KP_SIGN)
		ok = ts_sign(k, r, data, &len);
	else if (k != NULL && r->type == KP_DECRYPT)
		ok = ts_decrypt(k, r, data, &len);
	else if (k != NULL && r->type == KP_DERIVE)
		ok = ts_derive(k, r, data, &len);
	ERR_clear_error();
	rep.type = ok ? KP_OK : KP_ERR;
	rep.code = ok ? 0 : k == NULL ? KP_E_NOKEY : KP_E_FAILED;
	rep.data = ok ? data : (const uint8_t *)"test server: failed";
	rep.len = ok ? len : strlen("test server: failed");
	return keyproto_rep_encode(&rep, frame, KEYPROTO_MAX_FRAME);
}

/* Answer the whole requests at the start of buf, last first; how many
 * bytes they took, -1 on a bad frame or a write error. */
static ssize_t
ts_batch(struct tserver *s, const uint8_t *buf, size_t have, uint8_t *out)
{
	struct keyproto_req r;
	size_t off = 0, flen, alen[BATCH];
	int n = 0;
	char err[100];

	while (n < BATCH && keyproto_frame(buf + off, have - off, &flen) == 1) {
		if (keyproto_req_decode(buf + off, flen, &r, err,
		    sizeof(err)) == -1)
			return -1;
		alen[n] = s->silent ? 0 :
		    ts_answer(s, &r, out + (size_t)n * KEYPROTO_MAX_FRAME);
		n++;
		off += flen;
	}
	if (n > s->maxbatch)
		s->maxbatch = n;
	while (n-- > 0)		/* reversed: the client must demultiplex */
		if (alen[n] > 0 && write_full(s->fd, out + (size_t)n *
		    KEYPROTO_MAX_FRAME, alen[n]) == -1)
			return -1;
	return (ssize_t)off;
}

static void *
ts_main(void *arg)
{
	struct tserver *s = arg;
	uint8_t *in = xmalloc(2 * BATCH * KEYPROTO_MAX_FRAME);
	uint8_t *out = xmalloc(BATCH * KEYPROTO_MAX_FRAME);
	size_t have = 0;
	ssize_t n, used;

	for (;;) {
		n = read(s->fd, in + have, 2 * BATCH * KEYPROTO_MAX_FRAME - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		if ((used = ts_batch(s, in, have, out)) == -1)
			break;
		memmove(in, in + used, have - (size_t)used);
		have -= (size_t)used;
	}
	close(s->fd);
	free(in);
	free(out);
	return NULL;
}

static void
ts_add(struct tserver *s, X509 *cert, EVP_PKEY *key)
{
	unsigned int len = KEYPROTO_FP;

	X509_digest(cert, EVP_sha256(), s->fp[s->nkeys], &len);
	s->key[s->nkeys++] = key;
}

/* ---- the tests ---- */

static X509 *alice, *alice_ec, *bob, *ca, *inter;
static EVP_PKEY *h_rsa, *h_ec;

static void
t_handles(void)
{
	BIGNUM *d = NULL;

	CHECK(X509_check_private_key(alice, h_rsa) == 1,
	    "X509_check_private_key(alice, RSA handle)");
	CHECK(X509_check_private_key(alice_ec, h_ec) == 1,
	    "X509_check_private_key(alice-ec, EC handle)");
	CHECK(X509_check_private_key(bob, h_rsa) != 1,
	    "bob's certificate matches alice's handle");
	CHECK(X509_check_private_key(alice, h_ec) != 1,
	    "alice's RSA certificate matches the EC handle");
	CHECK(EVP_PKEY_get_base_id(h_rsa) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_base_id(h_ec) == EVP_PKEY_EC, "key types");
	CHECK(EVP_PKEY_get_bits(h_rsa) == 2048 &&
	    EVP_PKEY_get_size(h_rsa) == 256, "RSA size");
	CHECK(EVP_PKEY_get_bn_param(h_rsa, OSSL_PKEY_PARAM_RSA_D, &d) == 0,
	    "the handle gives a private exponent");
	CHECK(i2d_PrivateKey(h_rsa, NULL) <= 0,
	    "the handle serialises as a private key");
	BN_free(d);
	ERR_clear_error();
}

/* A detached CMS signature over data by cert/key (PSS if asked), checked
 * with CMS_verify against the test root. */
static void
t_sign(const char *name, X509 *cert, EVP_PKEY *key, int pss)
{
	static const char data[] = "Subject: test\r\n\r\nsigned by a handle\r\n";
	unsigned flags = CMS_PARTIAL | CMS_BINARY | CMS_DETACHED;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	CMS_ContentInfo *back = NULL;
	CMS_SignerInfo *si;
	EVP_PKEY_CTX *pctx;
	X509_STORE *st = X509_STORE_new();
	BIO *in = BIO_new_mem_buf(data, -1), *der = BIO_new(BIO_s_mem());
	X509_ALGOR *sigalg = NULL;
	int ok;

	X509_STORE_add_cert(st, ca);
	X509_STORE_add_cert(st, inter);
	si = CMS_add1_signer(cms, cert, key, EVP_sha256(),
	    flags | (pss ? CMS_KEY_PARAM : 0));
	CHECK(si != NULL, "%s: CMS_add1_signer", name);
	if (si != NULL && pss) {
		pctx = CMS_SignerInfo_get0_pkey_ctx(si);
		CHECK(pctx != NULL && EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
		    RSA_PSS_SALTLEN_DIGEST) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0,
		    "%s: PSS parameters", name);
	}
	ok = si != NULL && CMS_final(cms, in, NULL, flags) == 1;
	CHECK(ok, "%s: CMS_final: %s", name,
	    ERR_reason_error_string(ERR_peek_last_error()));
	if (!ok)
		ERR_print_errors_fp(stderr);
	if (ok) {
		CMS_SignerInfo_get0_algs(si, NULL, NULL, NULL, &sigalg);
		CHECK(!pss || OBJ_obj2nid(sigalg->algorithm) == NID_rsassaPss,
		    "%s: signature algorithm not RSASSA-PSS", name);
		/* What a receiver sees: the DER, not our signer's key. */
		ok = i2d_CMS_bio(der, cms) == 1 &&
		    (back = d2i_CMS_bio(der, NULL)) != NULL;
		BIO_reset(in);
		CHECK(ok && CMS_verify(back, NULL, st, in, NULL, CMS_BINARY |
		    CMS_DETACHED) == 1, "%s: CMS_verify: %s", name,
		    ERR_reason_error_string(ERR_peek_last_error()));
	}
	ERR_clear_error();
	BIO_free(in);
	BIO_free(der);
	X509_STORE_free(st);
	CMS_ContentInfo_free(cms);
	CMS_ContentInfo_free(back);
}

/* The same envelope through smrelay's own streaming decryption
 * (proto/cms.c). */
static void
t_cms_decrypt(const char *name, CMS_ContentInfo *cms, X509 *cert,
    EVP_PKEY *key, const char *data)
{
	struct cms_identity id = { cert, key };
	BIO *der = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	char err[256], *got;
	long len;

	CHECK(cms != NULL && i2d_CMS_bio(der, cms) == 1 &&
	    cms_decrypt(der, &id, 1, out, err, sizeof(err)) == 0,
	    "%s: cms_decrypt: %s", name, err);
	len = BIO_get_mem_data(out, &got);
	CHECK(len == (long)strlen(data) && memcmp(got, data, (size_t)len) == 0,
	    "%s: cms_decrypt text differs", name);
	ERR_clear_error();
	BIO_free(der);
	BIO_free(out);
}

/* An envelope to cert (OAEP if asked), through DER, opened with key. */
static void
t_decrypt(const char *name, X509 *cert, EVP_PKEY *key, int oaep)
{
	static const char data[] = "Subject: secret\r\n\r\nfor a handle\r\n";
	STACK_OF(X509) *rcpts = sk_X509_new_null();
	unsigned flags = CMS_BINARY | CMS_PARTIAL;
	CMS_ContentInfo *cms, *back = NULL;
	CMS_RecipientInfo *ri;
	EVP_PKEY_CTX *pctx;
	BIO *in = BIO_new_mem_buf(data, -1), *der = BIO_new(BIO_s_mem());
	BIO *out = BIO_new(BIO_s_mem());
	char *got;
	long len;

	if (!oaep)
		sk_X509_push(rcpts, cert);
	cms = CMS_encrypt(rcpts, NULL, EVP_aes_128_cbc(), flags);
	if (oaep) {
		ri = CMS_add1_recipient_cert(cms, cert, CMS_KEY_PARAM);
		pctx = ri != NULL ? CMS_RecipientInfo_get0_pkey_ctx(ri) : NULL;
		CHECK(pctx != NULL && EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_OAEP_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) > 0 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0,
		    "%s: OAEP recipient", name);
	}
	CHECK(cms != NULL && CMS_final(cms, in, NULL, flags) == 1 &&
	    i2d_CMS_bio(der, cms) == 1 &&
	    (back = d2i_CMS_bio(der, NULL)) != NULL, "%s: encrypt", name);
	CHECK(back != NULL && CMS_decrypt(back, key, cert, NULL, out,
	    CMS_BINARY) == 1, "%s: CMS_decrypt: %s", name,
	    ERR_reason_error_string(ERR_peek_last_error()));
	len = BIO_get_mem_data(out, &got);
	CHECK(len == (long)strlen(data) && memcmp(got, data, (size_t)len) == 0,
	    "%s: decrypted text differs", name);
	ERR_clear_error();
	t_cms_decrypt(name, cms, cert, key, data);
	CMS_ContentInfo_free(cms);
	CMS_ContentInfo_free(back);
	sk_X509_free(rcpts);
	BIO_free(in);
	BIO_free(der);
	BIO_free(out);
}

/* ---- TLS: a handshake in memory, the server's key a handle ---- */

/* Move what one side wrote to the other. */
static void
tls_pump(BIO *from, BIO *to)
{
	char buf[4096];
	int n;

	while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
		BIO_write(to, buf, n);
}

static void
t_tls(const char *name, X509 *cert, EVP_PKEY *key, int version)
{
	SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
	SSL *s = NULL, *c = NULL;
	BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	int i, rs = 0, rc = 0, ok;

	ok = SSL_CTX_use_certificate(sc, cert) == 1 &&
	    SSL_CTX_use_PrivateKey(sc, key) == 1 &&
	    SSL_CTX_set_min_proto_version(cc, version) == 1 &&
	    SSL_CTX_set_max_proto_version(cc, version) == 1;
	CHECK(ok, "%s: SSL_CTX_use_PrivateKey", name);
	s = SSL_new(sc);
	c = SSL_new(cc);
	SSL_set_bio(s, s_in, s_out);
	SSL_set_bio(c, c_in, c_out);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (i = 0; ok && i < 20 && (rs != 1 || rc != 1); i++) {
		rc = SSL_do_handshake(c);
		tls_pump(c_out, s_in);
		rs = SSL_do_handshake(s);
		tls_pump(s_out, c_in);
	}
	CHECK(ok && rs == 1 && rc == 1, "%s: handshake: %s", name,
	    ERR_reason_error_string(ERR_peek_last_error()));
	CHECK(!ok || SSL_version(c) == version, "%s: version", name);
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
}

/* ---- pipelining: threads signing at once ---- */

#define NTHREADS	4
#define NSIGS		200

struct worker {
	int		 n;
	X509		*cert;
	EVP_PKEY	*key;
	int		 pss;
	int		 bad;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx;
	unsigned char sig[512];
	char msg[64];
	size_t siglen;
	int i, ok;

	for (i = 0; i < NSIGS; i++) {
		snprintf(msg, sizeof(msg), "thread %d message %d", w->n, i);
		siglen = sizeof(sig);
		ok = EVP_DigestSignInit(mc, &pctx, EVP_sha256(), NULL,
		    w->key) == 1 && (!w->pss ||
		    EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING) > 0) &&
		    EVP_DigestSign(mc, sig, &siglen, (unsigned char *)msg,
		    strlen(msg)) == 1;
		ok = ok && EVP_DigestVerifyInit(mc, &pctx, EVP_sha256(), NULL,
		    X509_get0_pubkey(w->cert)) == 1 && (!w->pss ||
		    (EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
		    RSA_PSS_SALTLEN_DIGEST) > 0)) &&
		    EVP_DigestVerify(mc, sig, siglen, (unsigned char *)msg,
		    strlen(msg)) == 1;
		if (!ok && w->bad++ == 0) {
			fprintf(stderr, "thread %d, signature %d:\n", w->n, i);
			ERR_print_errors_fp(stderr);
		}
		ERR_clear_error();
	}
	EVP_MD_CTX_free(mc);
	return NULL;
}

static void
t_threads(struct tserver *srv)
{
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	double t0 = mono_now();
	int i, bad = 0;

	for (i = 0; i < NTHREADS; i++) {
		w[i].n = i;
		w[i].cert = i == 3 ? alice_ec : alice;
		w[i].key = i == 3 ? h_ec : h_rsa;
		w[i].pss = i == 2;
		w[i].bad = 0;
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		bad += w[i].bad;
	}
	CHECK(bad == 0, "%d of %d signatures from %d threads wrong", bad,
	    NTHREADS * NSIGS, NTHREADS);
	printf("threads: %d signatures in %.2f s, at most %d requests"
	    " pipelined\n", NTHREADS * NSIGS, mono_now() - t0, srv->maxbatch);
}

/* ---- the key process silent, then gone ---- */

struct pinger {
	struct keyd_client	*c;
	int			 rc;
	char			 err[200];
};

static void *
ping_main(void *arg)
{
	struct pinger *p = arg;
	struct keyproto_req req;
	uint8_t out[16];
	size_t outlen = sizeof(out);

	memset(&req, 0, sizeof(req));
	req.type = KP_PING;
	p->rc = keyd_client_call(p->c, &req, out, &outlen, p->err,
	    sizeof(p->err));
	return NULL;
}

static void
t_gone(struct tserver *srv, struct keyd_client *c)
{
	struct pinger p = { c, 1, "" };
	pthread_t th;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	double t0;

	srv->silent = 1;
	keyd_client_set_timeout(c, 300);
	t0 = mono_now();
	ping_main(&p);
	CHECK(p.rc == KEYD_E_UNAVAILABLE && mono_now() - t0 < 3,
	    "no answer: rc %d after %.1f s (%s)", p.rc, mono_now() - t0, p.err);
	/* Several callers while nobody answers: each gives up on its own
	 * deadline (whoever reads hands the reading on when it leaves). */
	{
		struct pinger ps[4];
		pthread_t ths[4];
		int i, late = 0;

		t0 = mono_now();
		for (i = 0; i < 4; i++) {
			ps[i] = p;
			pthread_create(&ths[i], NULL, ping_main, &ps[i]);
		}
		for (i = 0; i < 4; i++) {
			pthread_join(ths[i], NULL);
			late += ps[i].rc != KEYD_E_UNAVAILABLE;
		}
		CHECK(late == 0 && mono_now() - t0 < 3, "silent, 4 callers: %d"
		    " did not time out; %.1f s", late, mono_now() - t0);
		srv->silent = 0;
		ping_main(&p);
		CHECK(p.rc == 0, "answers again: rc %d (%s)", p.rc, p.err);
		CHECK(keyd_client_alive(c), "answers again, yet not alive");
		srv->silent = 1;
	}
	keyd_client_set_timeout(c, KEYD_TIMEOUT_MS);
	/* A waiter when the key process goes away fails at once. */
	pthread_create(&th, NULL, ping_main, &p);
	usleep(200000);
	t0 = mono_now();
	shutdown(srv->fd, SHUT_RDWR);
	pthread_join(th, NULL);
	CHECK(p.rc == KEYD_E_UNAVAILABLE && mono_now() - t0 < 3,
	    "gone: the waiter got rc %d after %.1f s (%s)", p.rc, mono_now() - t0,
	    p.err);
	pthread_join(srv->th, NULL);
	t0 = mono_now();
	ping_main(&p);
	CHECK(p.rc == KEYD_E_UNAVAILABLE && strstr(p.err,
	    "key process unavailable") != NULL && mono_now() - t0 < 0.5,
	    "gone: a later call got rc %d (%s)", p.rc, p.err);
	CHECK(!keyd_client_alive(c), "the client thinks it is alive");
	CHECK(EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, h_rsa) != 1 ||
	    EVP_DigestSign(mc, sig, &siglen, (unsigned char *)"x", 1) != 1,
	    "signed with the key process gone");
	ERR_clear_error();
	EVP_MD_CTX_free(mc);
}

/* PKIDIR/NAME.pem */
static char *
pki(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* Load a certificate and its key into the server. */
static X509 *
load_pair(struct tserver *s, const char *dir, const char *name)
{
	char *p = pki(dir, name), *cp = xasprintf("%s.pem", p);
	char *kp = xasprintf("%s.key", p);
	X509 *cert = load_cert(cp);

	ts_add(s, cert, load_key(kp));
	free(p);
	free(cp);
	free(kp);
	return cert;
}

int
main(int argc, char **argv)
{
	static struct tserver srv;
	struct keyd_client *c;
	char err[200], *p;
	int sv[2], i;

	cms_init();
	if (argc != 2) {
		fprintf(stderr, "usage: keyd_client_test PKIDIR\n");
		return 2;
	}
	alice = load_pair(&srv, argv[1], "alice");
	alice_ec = load_pair(&srv, argv[1], "alice-ec");
	bob = load_cert(p = pki(argv[1], "bob.pem"));
	free(p);
	ca = load_cert(p = pki(argv[1], "ca.pem"));
	free(p);
	inter = load_cert(p = pki(argv[1], "int.pem"));
	free(p);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		fatal("socketpair");
	srv.fd = sv[1];
	pthread_create(&srv.th, NULL, ts_main, &srv);
	if ((c = keyd_client_new(sv[0])) == NULL)
		fatal("keyd_client_new");
	h_rsa = keyd_client_pkey(c, alice, err, sizeof(err));
	CHECK(h_rsa != NULL, "RSA handle: %s", err);
	h_ec = keyd_client_pkey(c, alice_ec, err, sizeof(err));
	CHECK(h_ec != NULL, "EC handle: %s", err);
	if (h_rsa == NULL || h_ec == NULL)
		return 1;
	t_handles();
	t_sign("RSA PKCS#1 v1.5 signature", alice, h_rsa, 0);
	t_sign("RSA-PSS signature", alice, h_rsa, 1);
	t_sign("ECDSA signature", alice_ec, h_ec, 0);
	t_decrypt("RSA PKCS#1 v1.5 envelope", alice, h_rsa, 0);
	t_decrypt("RSA-OAEP envelope", alice, h_rsa, 1);
	t_decrypt("EC key agreement envelope", alice_ec, h_ec, 0);
	t_tls("TLS 1.3 RSA-PSS", alice, h_rsa, TLS1_3_VERSION);
	t_tls("TLS 1.2 RSA", alice, h_rsa, TLS1_2_VERSION);
	t_tls("TLS 1.3 ECDSA", alice_ec, h_ec, TLS1_3_VERSION);
	t_tls("TLS 1.2 ECDSA", alice_ec, h_ec, TLS1_2_VERSION);
	t_threads(&srv);
	t_gone(&srv, c);
	keyd_client_free(c);
	EVP_PKEY_free(h_rsa);
	EVP_PKEY_free(h_ec);
	for (i = 0; i < srv.nkeys; i++)
		EVP_PKEY_free(srv.key[i]);
	X509_free(alice);
	X509_free(alice_ec);
	X509_free(bob);
	X509_free(ca);
	X509_free(inter);
	printf("%d checks, %d failed\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
