/*
 * keyd_test.c PKIDIR: the key process's server (daemon/keyd/keyd_server.c)
 * in a child on one end of a socketpair, with the RSA and EC keys of
 * tests/smime/pki.sh; this process is its client, normal and hostile:
 * signatures verified with the certificates, unwrapped keys and ECDH
 * secrets compared with local ones, pipelining, backpressure with a slow
 * reader, unknown keys, wrong key types, malformed frames (closed),
 * a padding-oracle run (rate limited, the server still serves).
 * Exit 0 when every check passed.
 */
#include "autoconfig.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "daemon/base/base.h"
#include "daemon/keyd/keyd.h"
#include "lib/lib.h"
#include "store/store.h"
#include "tests/smime/pemload.h"
#include "tests/unit/check.h"

struct ident {
	X509		*cert;
	EVP_PKEY	*key;
	uint8_t		 fp[KEYPROTO_FP];
};

static struct ident rsa, ec, peer;	/* alice, alice-ec, bob-ec */
/* The key process's loop-guard secret in these tests. */
static const unsigned char test_mark[32] = "0123456789abcdef0123456789abcde";
static const char *pki;
/* The server's operations on worker threads (keyd_server_set_workers), as
 * in the key process; KEYD_TEST_WORKERS=1 in the environment. */
static int use_workers;

/* An identity of the PKI: NAME.pem and NAME.key. */
static void
ident_load(struct ident *id, const char *name)
{
	char path[4096];
	unsigned int n;

	snprintf(path, sizeof(path), "%s/%s.pem", pki, name);
	id->cert = load_cert(path);
	snprintf(path, sizeof(path), "%s/%s.key", pki, name);
	id->key = load_key(path);
	if (!X509_digest(id->cert, EVP_sha256(), id->fp, &n))
		exit(2);
}

/* The key process: harden, load the keys, serve fd until it closes. */
static void
closed_cb(struct keyd_server *s, void *arg)
{
	(void)s;
	event_base_loopbreak(arg);
}

static void
child(int fd)
{
	struct keyd_keyring *kr;
	struct keyd_server *s;
	struct workers *w = NULL;
	struct event_base *base;
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	if (keyd_harden() == -1 || prctl(PR_GET_DUMPABLE) != 0)
		_exit(3);
	if (keyd_secure_heap(KEYD_SECURE_HEAP) == -1)
		_exit(4);
	/* keys read now have their numbers in the secure heap */
	ident_load(&rsa, "alice");
	ident_load(&ec, "alice-ec");
	if (CRYPTO_secure_used() == 0)
		_exit(7);
	kr = keyd_keyring_new();
	if (keyd_keyring_add(kr, rsa.cert, rsa.key, err, sizeof(err)) == -1 ||
	    keyd_keyring_add(kr, ec.cert, ec.key, err, sizeof(err)) == -1) {
		fprintf(stderr, "keyd_keyring_add: %s\n", err);
		_exit(5);
	}
	keyd_keyring_set_mark(kr, test_mark, sizeof(test_mark));
	if ((base = event_base_new()) == NULL)
		_exit(6);
	s = keyd_server_new(base, fd, kr);
	keyd_server_set_closed_cb(s, closed_cb, base);
	if (use_workers)
		keyd_server_set_workers(s, w = workers_new(base, 2, NULL, NULL,
		    NULL));
	event_base_dispatch(base);
	workers_free(w);
	keyd_server_free(s);
	keyd_keyring_free(kr);
	event_base_free(base);
	_exit(0);
}

/* A key process on a new socketpair: our end. */
static int
spawn(pid_t *pid)
{
	struct timeval tv = { 30, 0 };
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		fatal("socketpair");
	if ((*pid = fork()) == -1)
		fatal("fork");
	if (*pid == 0) {
		close(sv[0]);
		child(sv[1]);
	}
	close(sv[1]);
	setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return sv[0];
}

/* Wait for the key process; its exit status, -1 when it was killed. */
static int
reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Read exactly n bytes: 1, 0 at end of file, -1 on error or timeout. */
static int
read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	ssize_t r;

	while (n > 0) {
		if ((r = read(fd, p, n)) == 0)
			return 0;
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 1;
}

/* Send one request. */
static void
send_req(int fd, const struct keyproto_req *r)
{
	uint8_t buf[KEYPROTO_MAX_FRAME];
	size_t n;

	if ((n = keyproto_req_encode(r, buf, sizeof(buf))) == 0)
		fatalx("cannot encode a request of type %u", r->type);
	if (write_full(fd, buf, n) == -1)
		fatal("write");
}

/* Read one answer into buf (KEYPROTO_MAX_FRAME bytes): 1, 0 at EOF, -1. */
static int
read_rep(int fd, uint8_t *buf, struct keyproto_rep *rep)
{
	char err[128];
	size_t flen;
	int r;

	if ((r = read_full(fd, buf, KEYPROTO_HDR)) != 1)
		return r;
	if (keyproto_frame(buf, KEYPROTO_HDR, &flen) == -1 ||
	    read_full(fd, buf + KEYPROTO_HDR, flen - KEYPROTO_HDR) != 1 ||
	    keyproto_rep_decode(buf, flen, rep, err, sizeof(err)) == -1)
		return -1;
	return 1;
}

/* One request, its answer: the answer's code (0 OK), -1 when none. */
static int
ask(int fd, const struct keyproto_req *r, uint8_t *out, size_t *outlen)
{
	uint8_t buf[KEYPROTO_MAX_FRAME];
	struct keyproto_rep rep;

	send_req(fd, r);
	if (read_rep(fd, buf, &rep) != 1 || rep.id != r->id)
		return -1;
	if (rep.type == KP_ERR)
		return rep.code;
	if (out != NULL) {
		memcpy(out, rep.data, rep.len);
		*outlen = rep.len;
	}
	return 0;
}

/* A request on the key with fingerprint fp. */
static struct keyproto_req
req(uint8_t type, uint32_t id, const uint8_t *fp, uint8_t alg, uint8_t md,
    uint8_t md2, const void *data, size_t len)
{
	struct keyproto_req r;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.id = id;
	if (fp != NULL)
		memcpy(r.fp, fp, KEYPROTO_FP);
	r.alg = alg;
	r.md = md;
	r.md2 = md2;
	r.data = data;
	r.len = len;
	return r;
}

/* Verify sig over digest with the certificate's public key. */
static int
verify(X509 *cert, uint8_t alg, const EVP_MD *md, const uint8_t *dgst,
    size_t dlen, const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	ctx = EVP_PKEY_CTX_new(X509_get0_pubkey(cert), NULL);
	ok = ctx != NULL && EVP_PKEY_verify_init(ctx) > 0;
	if (ok && alg != KP_ALG_ECDSA)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, alg == KP_ALG_RSA_PSS ?
		    RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) > 0;
	ok = ok && EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
	if (ok && alg == KP_ALG_RSA_PSS)
		ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
		    RSA_PSS_SALTLEN_DIGEST) > 0;
	ok = ok && EVP_PKEY_verify(ctx, sig, siglen, dgst, dlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* Signatures: each verifies with the certificate; PKCS#1 also as a
 * signature over the message (the DigestInfo is the real one). */
static void
test_sign(int fd)
{
	static const char msg[] = "the message";
	uint8_t dgst[64], sig[KEYPROTO_MAX_FRAME];
	size_t siglen = 0;
	unsigned int dlen;
	struct keyproto_req r;
	EVP_MD_CTX *mctx;
	int rc;

	EVP_Digest(msg, strlen(msg), dgst, &dlen, EVP_sha256(), NULL);
	r = req(KP_SIGN, 1, rsa.fp, KP_ALG_RSA_PKCS1, KP_MD_SHA256, 0, dgst,
	    dlen);
	rc = ask(fd, &r, sig, &siglen);
	CHECK(rc == 0 && verify(rsa.cert, KP_ALG_RSA_PKCS1, EVP_sha256(), dgst,
	    dlen, sig, siglen), "RSA PKCS#1 signature (rc %d)", rc);
	mctx = EVP_MD_CTX_new();
	CHECK(EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL,
	    X509_get0_pubkey(rsa.cert)) == 1 && EVP_DigestVerify(mctx, sig,
	    siglen, (const uint8_t *)msg, strlen(msg)) == 1,
	    "PKCS#1 signature over the message");
	EVP_MD_CTX_free(mctx);
	r = req(KP_SIGN, 2, rsa.fp, KP_ALG_RSA_PSS, KP_MD_SHA256, 0, dgst, dlen);
	rc = ask(fd, &r, sig, &siglen);
	CHECK(rc == 0 && verify(rsa.cert, KP_ALG_RSA_PSS, EVP_sha256(), dgst,
	    dlen, sig, siglen), "RSA-PSS signature (rc %d)", rc);
	r = req(KP_SIGN, 3, ec.fp, KP_ALG_ECDSA, KP_MD_SHA256, 0, dgst, dlen);
	rc = ask(fd, &r, sig, &siglen);
	CHECK(rc == 0 && verify(ec.cert, KP_ALG_ECDSA, EVP_sha256(), dgst,
	    dlen, sig, siglen), "ECDSA signature (rc %d)", rc);
	EVP_Digest(msg, strlen(msg), dgst, &dlen, EVP_sha384(), NULL);
	r = req(KP_SIGN, 4, rsa.fp, KP_ALG_RSA_PKCS1, KP_MD_SHA384, 0, dgst,
	    dlen);
	rc = ask(fd, &r, sig, &siglen);
	CHECK(rc == 0 && verify(rsa.cert, KP_ALG_RSA_PKCS1, EVP_sha384(), dgst,
	    dlen, sig, siglen), "RSA PKCS#1 SHA-384 signature (rc %d)", rc);
}

/* Wrap key for the certificate (PKCS#1 v1.5, or OAEP with md). */
static size_t
wrap(uint8_t *ct, const uint8_t *key, size_t keylen, const EVP_MD *md)
{
	EVP_PKEY_CTX *ctx;
	size_t len = KEYPROTO_MAX_DATA;

	ctx = EVP_PKEY_CTX_new(X509_get0_pubkey(rsa.cert), NULL);
	if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, md == NULL ? RSA_PKCS1_PADDING :
	    RSA_PKCS1_OAEP_PADDING) <= 0 || (md != NULL &&
	    (EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) <= 0)) ||
	    EVP_PKEY_encrypt(ctx, ct, &len, key, keylen) <= 0)
		fatalx("cannot wrap a key");
	EVP_PKEY_CTX_free(ctx);
	return len;
}

/* Unwraps: PKCS#1 v1.5 and OAEP give back the key; a "key" longer than 64
 * bytes is refused. */
static void
test_decrypt(int fd)
{
	uint8_t key[100], ct[KEYPROTO_MAX_DATA], out[KEYPROTO_MAX_FRAME];
	struct keyproto_req r;
	size_t ctlen, outlen = 0;
	int rc;

	RAND_bytes(key, sizeof(key));
	ctlen = wrap(ct, key, 32, NULL);
	r = req(KP_DECRYPT, 10, rsa.fp, KP_PAD_PKCS1, 0, 0, ct, ctlen);
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32 && memcmp(out, key, 32) == 0,
	    "PKCS#1 v1.5 unwrap (rc %d, %zu bytes)", rc, outlen);
	ctlen = wrap(ct, key, 32, EVP_sha256());
	r = req(KP_DECRYPT, 11, rsa.fp, KP_PAD_OAEP, KP_MD_SHA256,
	    KP_MD_SHA256, ct, ctlen);
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32 && memcmp(out, key, 32) == 0,
	    "OAEP SHA-256 unwrap (rc %d, %zu bytes)", rc, outlen);
	ctlen = wrap(ct, key, 16, EVP_sha1());
	r = req(KP_DECRYPT, 12, rsa.fp, KP_PAD_OAEP, KP_MD_SHA1, KP_MD_SHA1,
	    ct, ctlen);
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 16 && memcmp(out, key, 16) == 0,
	    "OAEP SHA-1 unwrap (rc %d, %zu bytes)", rc, outlen);
	r = req(KP_DECRYPT, 13, rsa.fp, KP_PAD_OAEP, KP_MD_SHA256, KP_MD_SHA1,
	    ct, ctlen);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_FAILED, "OAEP wrong digest");
	ctlen = wrap(ct, key, sizeof(key), NULL);
	r = req(KP_DECRYPT, 14, rsa.fp, KP_PAD_PKCS1, 0, 0, ct, ctlen);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_FAILED,
	    "a 100-byte unwrapped key is refused");
}

/* The DER SubjectPublicKeyInfo of k into buf; its length. */
static size_t
spki(EVP_PKEY *k, uint8_t *buf)
{
	uint8_t *p = buf;
	int n;

	if ((n = i2d_PUBKEY(k, NULL)) <= 0 || n > KEYPROTO_MAX_DATA ||
	    i2d_PUBKEY(k, &p) != n)
		fatalx("i2d_PUBKEY");
	return (size_t)n;
}

/* ECDH: the same secret as bob-ec derives with alice-ec's certificate;
 * peers on another curve or of another type refused. */
static void
test_derive(int fd)
{
	uint8_t der[KEYPROTO_MAX_DATA], out[KEYPROTO_MAX_FRAME], want[256];
	struct keyproto_req r;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *p384;
	size_t len, outlen = 0, wantlen = sizeof(want);
	int rc;

	ctx = EVP_PKEY_CTX_new(peer.key, NULL);
	if (ctx == NULL || EVP_PKEY_derive_init(ctx) <= 0 ||
	    EVP_PKEY_derive_set_peer(ctx, X509_get0_pubkey(ec.cert)) <= 0 ||
	    EVP_PKEY_derive(ctx, want, &wantlen) <= 0)
		fatalx("local ECDH");
	EVP_PKEY_CTX_free(ctx);
	len = spki(X509_get0_pubkey(peer.cert), der);
	r = req(KP_DERIVE, 20, ec.fp, 0, 0, 0, der, len);
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == wantlen && memcmp(out, want, wantlen) == 0,
	    "ECDH secret (rc %d, %zu bytes)", rc, outlen);
	p384 = EVP_EC_gen("P-384");
	len = spki(p384, der);
	EVP_PKEY_free(p384);
	r = req(KP_DERIVE, 21, ec.fp, 0, 0, 0, der, len);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_FAILED, "ECDH with P-384 peer");
	len = spki(X509_get0_pubkey(rsa.cert), der);
	r = req(KP_DERIVE, 22, ec.fp, 0, 0, 0, der, len);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_FAILED, "ECDH with RSA peer");
	r = req(KP_DERIVE, 23, ec.fp, 0, 0, 0, der, len - 1);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_FAILED, "ECDH truncated SPKI");
}

/* MAC: HMAC-SHA-256 under the mark secret the key process holds (the
 * same bytes as a local HMAC), for any data up to the limit; a key named
 * in the request is refused as malformed by the codec itself. */
static void
test_mac(int fd)
{
	uint8_t data[KEYPROTO_MAX_DATA], out[KEYPROTO_MAX_DATA], fp[KEYPROTO_FP];
	unsigned char want[32];
	size_t outlen = sizeof(out), wantlen = 0;
	struct keyproto_req r;
	uint8_t frame[KEYPROTO_MAX_FRAME];
	int rc;

	memset(data, 'm', sizeof(data));
	memset(fp, 0, sizeof(fp));
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, test_mark,
	    sizeof(test_mark), data, 40, want, sizeof(want), &wantlen) == NULL)
		fatalx("local HMAC");
	r = req(KP_MAC, 40, fp, 0, 0, 0, data, 40);
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32 && memcmp(out, want, 32) == 0,
	    "MAC (rc %d, %zu bytes)", rc, outlen);
	outlen = sizeof(out);
	r = req(KP_MAC, 41, fp, 0, 0, 0, data, sizeof(data));
	CHECK(ask(fd, &r, out, &outlen) == 0 && outlen == 32,
	    "MAC of %zu bytes", sizeof(data));
	fp[0] = 1;
	r = req(KP_MAC, 42, fp, 0, 0, 0, data, 40);
	CHECK(keyproto_req_encode(&r, frame, sizeof(frame)) == 0,
	    "a MAC request naming a key encodes");
}

/* Unknown fingerprints and keys that cannot do what is asked. */
static void
test_refusals(int fd)
{
	uint8_t dgst[32] = { 1 }, fp[KEYPROTO_FP] = { 0 }, ct[256] = { 0 };
	struct keyproto_req r;

	r = req(KP_SIGN, 30, fp, KP_ALG_RSA_PKCS1, KP_MD_SHA256, 0, dgst, 32);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_NOKEY, "unknown fingerprint");
	r = req(KP_SIGN, 31, rsa.fp, KP_ALG_ECDSA, KP_MD_SHA256, 0, dgst, 32);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_KEYTYPE, "ECDSA with RSA key");
	r = req(KP_SIGN, 32, ec.fp, KP_ALG_RSA_PSS, KP_MD_SHA256, 0, dgst, 32);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_KEYTYPE, "PSS with EC key");
	r = req(KP_DECRYPT, 33, ec.fp, KP_PAD_PKCS1, 0, 0, ct, sizeof(ct));
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_KEYTYPE, "decrypt with EC key");
	r = req(KP_DERIVE, 34, rsa.fp, 0, 0, 0, ct, 10);
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_KEYTYPE, "derive with RSA key");
	r = req(KP_DECRYPT, 35, fp, KP_PAD_PKCS1, 0, 0, ct, sizeof(ct));
	CHECK(ask(fd, &r, NULL, NULL) == KP_E_NOKEY, "decrypt, unknown key");
}

/* Requests sent in one write are all answered, with their ids; in order
 * when the server works on its loop alone. */
static void
test_pipelined(int fd)
{
	uint8_t buf[64 * KEYPROTO_MAX_FRAME], dgst[32] = { 7 }, fp[32] = { 9 };
	struct keyproto_rep rep;
	struct keyproto_req r;
	size_t n = 0, i, j;
	int ok = 1, seen[60] = { 0 };

	for (i = 0; i < 60; i++) {
		if (i % 3 == 0)
			r = req(KP_PING, 1000 + (uint32_t)i, NULL, 0, 0, 0,
			    NULL, 0);
		else
			r = req(KP_SIGN, 1000 + (uint32_t)i, i % 3 == 1 ?
			    ec.fp : fp, KP_ALG_ECDSA, KP_MD_SHA256, 0, dgst,
			    32);
		n += keyproto_req_encode(&r, buf + n, sizeof(buf) - n);
	}
	if (write_full(fd, buf, n) == -1)
		fatal("write");
	/* with worker threads signatures may overtake: each id once */
	for (i = 0; i < 60 && ok; i++) {
		ok = read_rep(fd, buf, &rep) == 1 && rep.id >= 1000 &&
		    rep.id < 1060 && !seen[rep.id - 1000] &&
		    (use_workers || rep.id == 1000 + i);
		if (ok) {
			j = rep.id - 1000;
			seen[j] = 1;
			ok = j % 3 == 2 ? rep.type == KP_ERR &&
			    rep.code == KP_E_NOKEY : rep.type == KP_OK;
		}
		CHECK(ok, "pipelined answer %zu", i);
	}
}

#define NPINGS	150000		/* 1.8 MB of requests: more than buffers */

struct writer {
	int		 fd;
	uint8_t		*buf;
	size_t		 len;
	volatile int	 done;
};

/* Write every request, however long the peer takes to read. */
static void *
writer_run(void *arg)
{
	struct writer *w = arg;

	if (write_full(w->fd, w->buf, w->len) == -1)
		fatal("write");
	w->done = 1;
	return NULL;
}

/* A slow reader: the server stops reading while its answers wait (the
 * writer is still blocked after half a second), and nothing is lost or
 * out of order once we read. */
static void
test_backpressure(int fd)
{
	struct writer w = { fd, NULL, 0, 0 };
	struct keyproto_rep rep;
	struct keyproto_req r;
	struct timespec ts = { 0, 500 * 1000 * 1000 };
	pthread_t t;
	uint8_t *ans;
	size_t i, bad = 0, alen = NPINGS * (KEYPROTO_HDR + 2);
	char err[64];

	w.buf = xmalloc(NPINGS * KEYPROTO_HDR);
	for (i = 0; i < NPINGS; i++) {
		r = req(KP_PING, (uint32_t)i, NULL, 0, 0, 0, NULL, 0);
		w.len += keyproto_req_encode(&r, w.buf + w.len, KEYPROTO_HDR);
	}
	if (pthread_create(&t, NULL, writer_run, &w) != 0)
		fatalx("pthread_create");
	nanosleep(&ts, NULL);
	CHECK(!w.done, "the server read every request without being read");
	ans = xmalloc(alen);
	CHECK(read_full(fd, ans, alen) == 1, "every answer of the slow reader");
	pthread_join(t, NULL);
	for (i = 0; i < NPINGS; i++)
		if (keyproto_rep_decode(ans + i * (KEYPROTO_HDR + 2),
		    KEYPROTO_HDR + 2, &rep, err, sizeof(err)) == -1 ||
		    rep.type != KP_OK || rep.id != i)
			bad++;
	CHECK(bad == 0, "%zu answers out of order or wrong", bad);
	free(ans);
	free(w.buf);
}

/* A padding-oracle run: 1000 bad PKCS#1 v1.5 unwraps without a key length
 * get FAILED at most KEYD_UNWRAP_FAILS a second, BUSY for the rest; an
 * OAEP unwrap meanwhile is not refused (it tells no padding); the server
 * still signs, and unwraps again a second later.  Then 1000 bad OAEP
 * unwraps: all FAILED, none refused, and a good one right after works. */
static void
test_oracle(int fd)
{
	uint8_t buf[100 * KEYPROTO_MAX_FRAME], ct[256], key[32], out[64];
	struct keyproto_rep rep;
	struct keyproto_req r;
	size_t i, j, n, failed = 0, busy = 0, other = 0, outlen = 0;
	struct timespec ts = { 1, 100 * 1000 * 1000 };
	double t0 = mono_now(), secs;
	int oaep;

	for (oaep = 0; oaep <= 1; oaep++) {
		failed = busy = other = 0;
		t0 = mono_now();
		for (i = 0; i < 1000; i += 100) {
			for (j = n = 0; j < 100; j++) {
				RAND_bytes(ct, sizeof(ct));
				ct[0] = 0;
				ct[1] = 1;	/* never a good PKCS#1 block */
				r = oaep ? req(KP_DECRYPT, (uint32_t)(i + j),
				    rsa.fp, KP_PAD_OAEP, KP_MD_SHA256,
				    KP_MD_SHA256, ct, sizeof(ct)) :
				    req(KP_DECRYPT, (uint32_t)(i + j), rsa.fp,
				    KP_PAD_PKCS1, 0, 0, ct, sizeof(ct));
				n += keyproto_req_encode(&r, buf + n,
				    sizeof(buf) - n);
			}
			if (write_full(fd, buf, n) == -1)
				fatal("write");
			for (j = 0; j < 100; j++) {
				if (read_rep(fd, buf, &rep) != 1 ||
				    rep.id != i + j)
					other++;
				else if (rep.type == KP_ERR &&
				    rep.code == KP_E_FAILED)
					failed++;
				else if (rep.type == KP_ERR &&
				    rep.code == KP_E_BUSY)
					busy++;
				else
					other++;
			}
		}
		secs = mono_now() - t0;
		if (!oaep)
			CHECK(other == 0 && failed > 0 && busy > 0 &&
			    failed <= KEYD_UNWRAP_FAILS * ((size_t)secs + 2),
			    "1000 bad PKCS#1 unwraps: %zu failed, %zu busy, "
			    "%zu other in %.2fs", failed, busy, other, secs);
		else
			CHECK(other == 0 && failed == 1000 && busy == 0,
			    "1000 bad OAEP unwraps: %zu failed, %zu busy, "
			    "%zu other", failed, busy, other);
		/* at once: a good OAEP unwrap is not refused, neither while
		 * PKCS#1 ones are nor after bad OAEP ones */
		RAND_bytes(key, sizeof(key));
		n = wrap(ct, key, sizeof(key), EVP_sha256());
		r = req(KP_DECRYPT, (uint32_t)(4999 + oaep), rsa.fp,
		    KP_PAD_OAEP, KP_MD_SHA256, KP_MD_SHA256, ct, n);
		CHECK(ask(fd, &r, out, &outlen) == 0 && outlen == sizeof(key) &&
		    memcmp(out, key, sizeof(key)) == 0, "an OAEP unwrap right "
		    "after 1000 bad %s ones", oaep ? "OAEP" : "PKCS#1");
		if (oaep)
			break;
		r = req(KP_PING, 5000, NULL, 0, 0, 0, NULL, 0);
		CHECK(ask(fd, &r, NULL, NULL) == 0, "ping after the oracle run");
		r = req(KP_SIGN, 5001, ec.fp, KP_ALG_ECDSA, KP_MD_SHA256, 0,
		    key, 32);
		CHECK(ask(fd, &r, NULL, NULL) == 0, "sign after the oracle run");
		nanosleep(&ts, NULL);
		RAND_bytes(key, sizeof(key));
		n = wrap(ct, key, sizeof(key), NULL);
		r = req(KP_DECRYPT, 5002, rsa.fp, KP_PAD_PKCS1, 0, 0, ct, n);
		CHECK(ask(fd, &r, out, &outlen) == 0 && outlen ==
		    sizeof(key) && memcmp(out, key, sizeof(key)) == 0,
		    "a PKCS#1 unwrap a second later");
	}
}

/* Implicit rejection (a key length in the request): the right key comes
 * back; a well-padded key of another length, a block with bad padding and
 * a ciphertext over the modulus each get a stand-in of the asked length,
 * the same one when asked again, never an error; 1000 of them in a row
 * are never refused (nothing counted), and then an unwrap without a
 * length still works.  A key length over KEYPROTO_MAX_KEYLEN, or given
 * with OAEP, is not a request keyd acts on. */
static void
test_implicit(int fd)
{
	uint8_t key[32], ct[KEYPROTO_MAX_DATA], bad[256], out[64], out2[64];
	uint8_t buf[KEYPROTO_MAX_FRAME * 100];
	struct keyproto_rep rep;
	struct keyproto_req r;
	size_t ctlen, outlen = 0, out2len = 0, i, j, n, ok = 0;
	int rc;

	RAND_bytes(key, sizeof(key));
	ctlen = wrap(ct, key, 32, NULL);
	r = req(KP_DECRYPT, 20, rsa.fp, KP_PAD_PKCS1, 0, 0, ct, ctlen);
	r.keylen = 32;
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32 && memcmp(out, key, 32) == 0,
	    "implicit rejection: the right key (rc %d, %zu bytes)", rc,
	    outlen);
	ctlen = wrap(ct, key, 16, NULL);
	r = req(KP_DECRYPT, 21, rsa.fp, KP_PAD_PKCS1, 0, 0, ct, ctlen);
	r.keylen = 32;
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32 && memcmp(out, key, 16) != 0,
	    "implicit rejection: a 16-byte key asked as 32 gets a stand-in "
	    "(rc %d, %zu bytes)", rc, outlen);
	rc = ask(fd, &r, out2, &out2len);
	CHECK(rc == 0 && out2len == 32 && memcmp(out, out2, 32) == 0,
	    "implicit rejection: the same stand-in again");
	r.keylen = 16;
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 16 && memcmp(out, key, 16) == 0,
	    "implicit rejection: the 16-byte key asked as 16");
	RAND_bytes(bad, sizeof(bad));
	bad[0] = 0;
	bad[1] = 1;		/* block type 1: a bad padding for sure */
	r = req(KP_DECRYPT, 22, rsa.fp, KP_PAD_PKCS1, 0, 0, bad, sizeof(bad));
	r.keylen = 32;
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32, "implicit rejection: a bad padding "
	    "gets a stand-in (rc %d, %zu bytes)", rc, outlen);
	rc = ask(fd, &r, out2, &out2len);
	CHECK(rc == 0 && memcmp(out, out2, 32) == 0,
	    "implicit rejection: the same stand-in for the same block");
	memset(bad, 0xff, sizeof(bad));	/* over the modulus */
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32, "implicit rejection: a block over "
	    "the modulus gets a stand-in (rc %d)", rc);
	/* 1000 bad blocks: all answered, none refused */
	for (i = 0; i < 1000; i += 100) {
		for (j = n = 0; j < 100; j++) {
			RAND_bytes(bad, sizeof(bad));
			bad[0] = 0;
			r = req(KP_DECRYPT, (uint32_t)(100 + i + j), rsa.fp,
			    KP_PAD_PKCS1, 0, 0, bad, sizeof(bad));
			r.keylen = 32;
			n += keyproto_req_encode(&r, buf + n, sizeof(buf) - n);
		}
		if (write_full(fd, buf, n) == -1)
			fatal("write");
		for (j = 0; j < 100; j++)
			if (read_rep(fd, buf, &rep) == 1 && rep.id == 100 +
			    i + j && rep.type == KP_OK && rep.len == 32)
				ok++;
	}
	CHECK(ok == 1000, "implicit rejection: 1000 bad blocks answered "
	    "with stand-ins, %zu", ok);
	ctlen = wrap(ct, key, 32, NULL);
	r = req(KP_DECRYPT, 23, rsa.fp, KP_PAD_PKCS1, 0, 0, ct, ctlen);
	rc = ask(fd, &r, out, &outlen);
	CHECK(rc == 0 && outlen == 32 && memcmp(out, key, 32) == 0,
	    "an unwrap without a length after them (rc %d)", rc);
	r.keylen = KEYPROTO_MAX_KEYLEN + 1;
	CHECK(keyproto_req_encode(&r, buf, sizeof(buf)) == 0,
	    "a key length over the limit is not encoded");
	r = req(KP_DECRYPT, 24, rsa.fp, KP_PAD_OAEP, KP_MD_SHA256,
	    KP_MD_SHA256, ct, ctlen);
	r.keylen = 32;
	CHECK(keyproto_req_encode(&r, buf, sizeof(buf)) == 0,
	    "a key length with OAEP is not encoded");
}

/* Send bytes to a fresh key process: it answers ERR PROTO with id, then
 * closes, and exits cleanly. */
static void
test_closes(const char *what, const uint8_t *bytes, size_t len, uint32_t id)
{
	uint8_t buf[KEYPROTO_MAX_FRAME];
	struct keyproto_rep rep;
	pid_t pid;
	int fd, rc;

	fd = spawn(&pid);
	if (write_full(fd, bytes, len) == -1)
		fatal("write");
	rc = read_rep(fd, buf, &rep);
	CHECK(rc == 1 && rep.type == KP_ERR && rep.code == KP_E_PROTO &&
	    rep.id == id, "%s: ERR PROTO answer (rc %d)", what, rc);
	CHECK(read_rep(fd, buf, &rep) == 0, "%s: closed after it", what);
	close(fd);
	CHECK((rc = reap(pid)) == 0, "%s: key process exit %d", what, rc);
}

/* A peer that shuts down its side after its requests gets every answer,
 * then the end of the connection. */
static void
test_halfclose(void)
{
	uint8_t buf[KEYPROTO_MAX_FRAME], dgst[32] = { 3 };
	struct keyproto_rep rep;
	struct keyproto_req r;
	uint32_t i;
	pid_t pid;
	int fd, rc, seen[20] = { 0 };

	fd = spawn(&pid);
	for (i = 0; i < 20; i++) {
		r = req(KP_SIGN, 100 + i, rsa.fp, KP_ALG_RSA_PSS, KP_MD_SHA256,
		    0, dgst, sizeof(dgst));
		send_req(fd, &r);
	}
	shutdown(fd, SHUT_WR);
	for (i = 0; i < 20; i++) {
		CHECK(read_rep(fd, buf, &rep) == 1 && rep.type == KP_OK &&
		    rep.id >= 100 && rep.id < 120 && !seen[rep.id - 100] &&
		    (use_workers || rep.id == 100 + i),
		    "half-closed: answer %u", i);
		if (rep.id >= 100 && rep.id < 120)
			seen[rep.id - 100] = 1;
	}
	CHECK(read_rep(fd, buf, &rep) == 0, "half-closed: then closed");
	close(fd);
	CHECK((rc = reap(pid)) == 0, "half-closed: key process exit %d", rc);
}

/* Oversized, garbage and malformed frames. */
static void
test_hostile(void)
{
	static const char garbage[] = "GET / HTTP/1.0\r\nHost: keyd\r\n\r\n";
	uint8_t big[KEYPROTO_HDR] = { 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 42 };
	uint8_t bad[KEYPROTO_MAX_FRAME], dgst[20] = { 0 };
	struct keyproto_req r;
	size_t n;

	test_closes("oversized frame", big, sizeof(big), 42);
	test_closes("garbage", (const uint8_t *)garbage, strlen(garbage),
	    0x54502f31);
	/* a SIGN of 20 bytes declared SHA-256: the codec refuses it */
	r = req(KP_SIGN, 77, rsa.fp, KP_ALG_RSA_PKCS1, KP_MD_SHA1, 0, dgst,
	    20);
	n = keyproto_req_encode(&r, bad, sizeof(bad));
	bad[KEYPROTO_HDR + KEYPROTO_FP + 1] = KP_MD_SHA256;
	test_closes("digest of the wrong size", bad, n, 77);
}

/* The keyring: a key under another certificate is refused; every key of
 * the key file is loaded, a PKCS#11 one counted and left out. */
static void
test_keyring(void)
{
	struct keyd_keyring *kr = keyd_keyring_new();
	struct keyfile *kf;
	char dir[] = "/tmp/keyd_test.XXXXXX", path[64], err[256];
	int n;

	CHECK(keyd_keyring_add(kr, rsa.cert, ec.key, err, sizeof(err)) == -1,
	    "a key under another certificate");
	CHECK(keyd_keyring_add(kr, ec.cert, ec.key, err, sizeof(err)) == 0 &&
	    keyd_keyring_add(kr, ec.cert, ec.key, err, sizeof(err)) == 0 &&
	    keyd_keyring_count(kr) == 1, "the same key twice");
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	snprintf(path, sizeof(path), "%s/keys.db", dir);
	if ((kf = keyfile_open(path, NULL, err, sizeof(err))) == NULL ||
	    keyfile_put(kf, rsa.cert, rsa.key, err, sizeof(err)) == -1 ||
	    keyfile_put(kf, ec.cert, ec.key, err, sizeof(err)) == -1 ||
	    keyfile_put_uri(kf, peer.cert, "pkcs11:token=t;object=bob",
	    err, sizeof(err)) == -1)
		fatalx("key file: %s", err);
	/* the token is not there: the two file keys load, the error says
	 * which key failed */
	n = keyd_keyring_load_keyfile(kr, kf, err, sizeof(err));
	CHECK(n == -1 && keyd_keyring_count(kr) == 2 &&
	    strstr(err, "key ") != NULL, "keys from the key file: %d %s", n,
	    err);
	keyfile_close(kf);
	unlink(path);
	rmdir(dir);
	keyd_keyring_free(kr);
}

int
main(int argc, char *argv[])
{
	struct keyproto_req r;
	pid_t pid;
	int fd, rc;

	if (argc != 2) {
		fprintf(stderr, "usage: keyd_test PKIDIR\n");
		return 2;
	}
	pki = argv[1];
	use_workers = getenv("KEYD_TEST_WORKERS") != NULL;
	log_init("keyd_test", 1, LOG_LVL_INFO);
	signal(SIGPIPE, SIG_IGN);
	ident_load(&rsa, "alice");
	ident_load(&ec, "alice-ec");
	ident_load(&peer, "bob-ec");
	test_keyring();
	fd = spawn(&pid);
	r = req(KP_PING, 7, NULL, 0, 0, 0, NULL, 0);
	CHECK(ask(fd, &r, NULL, NULL) == 0, "ping");
	test_sign(fd);
	test_decrypt(fd);
	test_implicit(fd);
	test_derive(fd);
	test_mac(fd);
	test_refusals(fd);
	test_pipelined(fd);
	test_backpressure(fd);
	test_oracle(fd);
	close(fd);
	CHECK((rc = reap(pid)) == 0, "key process exit %d after EOF", rc);
	test_halfclose();
	test_hostile();
	EVP_PKEY_free(rsa.key);
	EVP_PKEY_free(ec.key);
	EVP_PKEY_free(peer.key);
	X509_free(rsa.cert);
	X509_free(ec.cert);
	X509_free(peer.cert);
	printf("keyd_test: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
