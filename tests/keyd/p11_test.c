/*
 * p11_test.c: keys on PKCS#11 tokens (daemon/keyd/keyd_p11.h), driven by
 * tests/keyd/t_p11.sh on a throwaway SoftHSM2 token.
 *
 *   p11_test uri                      the pkcs11: URI parser, no token
 *   p11_test ops URI MSG DIR [ENC]... a key process (keyd_server) with
 *       the key of URI; through keyd_client handles: CMS signatures of
 *       MSG to DIR/sig-*.der (RSA PKCS#1 v1.5 and PSS, or ECDSA) for
 *       `openssl cms -verify`, each ENC (`openssl cms -encrypt`, DER)
 *       decrypted and compared with MSG; DIR/cert.pem from keyd_p11_cert
 *   p11_test mech URI                 an RSA key the token allows PKCS#1
 *       v1.5 only: PSS and OAEP refused as KP_E_KEYTYPE
 *   p11_test fail URI TEXT            keyd_keyring_add_pkcs11 fails, its
 *       error says TEXT
 *   p11_test cert URI OUT             keyd_p11_cert to OUT (PEM)
 *   p11_test bench URI N [KEY CERT]   signatures per second (not a test)
 * Exit 0 when every check passed.
 */
#include "autoconfig.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "daemon/keyd/keyd.h"
#include "lib/lib.h"
#include "proto/proto.h"
#include "tests/smime/pemload.h"
#include "tests/unit/check.h"

/* ---- the URI parser ---- */

struct uri_ok {
	const char	*uri;
	unsigned int	 have;
	const char	*token, *object, *module, *pin, *pin_file;
	const char	*id;		/* hex */
	int		 type;
};

static const struct uri_ok uri_oks[] = {
	{ "pkcs11:", 0, NULL, NULL, NULL, NULL, NULL, NULL, 0 },
	{ "pkcs11:token=smrelay;object=alice?module-path=/usr/lib/x.so"
	    "&pin-value=1234", KEYD_P11_TOKEN | KEYD_P11_OBJECT |
	    KEYD_P11_MODULE_PATH | KEYD_P11_PIN_VALUE, "smrelay", "alice",
	    "/usr/lib/x.so", "1234", NULL, NULL, 0 },
	{ "PKCS11:id=%01%02%fF;object=a%20b%3bc", KEYD_P11_ID |
	    KEYD_P11_OBJECT, NULL, "a b;c", NULL, NULL, NULL, "0102ff", 0 },
	{ "pkcs11:token=%41;type=private", KEYD_P11_TOKEN | KEYD_P11_TYPE,
	    "A", NULL, NULL, NULL, NULL, NULL, KEYD_P11_PRIVATE },
	{ "pkcs11:type=cert", KEYD_P11_TYPE, NULL, NULL, NULL, NULL, NULL,
	    NULL, KEYD_P11_CERT },
	{ "pkcs11:?pin-source=file:/etc/pin", KEYD_P11_PIN_SOURCE, NULL,
	    NULL, NULL, NULL, "/etc/pin", NULL, 0 },
	{ "pkcs11:?pin-source=file:///etc/pin", KEYD_P11_PIN_SOURCE, NULL,
	    NULL, NULL, NULL, "/etc/pin", NULL, 0 },
	{ "pkcs11:?pin-source=file://localhost/etc/p%20in",
	    KEYD_P11_PIN_SOURCE, NULL, NULL, NULL, NULL, "/etc/p in", NULL,
	    0 },
	{ "pkcs11:serial=ab12;model=SoftHSM%20v2;manufacturer=SoftHSM"
	    "?pin-value=a%26b", KEYD_P11_SERIAL | KEYD_P11_MODEL |
	    KEYD_P11_MANUFACTURER | KEYD_P11_PIN_VALUE, NULL, NULL, NULL,
	    "a&b", NULL, NULL, 0 },
};

static const char *const uri_bad[][2] = {
	{ "file:/x", "not a pkcs11: URI" },
	{ "pkcs11:slot-id=1", "slot-id= is not supported" },
	{ "pkcs11:library-version=1", "library-version= is not supported" },
	{ "pkcs11:x-vendor=1", "unsupported path attribute 'x-vendor'" },
	{ "pkcs11:?x-vendor=1", "unsupported query attribute 'x-vendor'" },
	{ "pkcs11:?module-name=softhsm2", "give module-path=" },
	{ "pkcs11:object=a;object=b", "object= appears twice" },
	{ "pkcs11:object=a;;id=1", "empty attribute" },
	{ "pkcs11:object=a;", "empty attribute" },
	{ "pkcs11:object", "has no '='" },
	{ "pkcs11:token=123456789012345678901234567890123",
	    "token= is longer than 32 bytes" },
	{ "pkcs11:serial=12345678901234567", "serial= is longer than 16" },
	{ "pkcs11:object=%zz", "object= has a bad character" },
	{ "pkcs11:object=%4", "object= has a bad character" },
	{ "pkcs11:object=a b", "object= has a bad character" },
	{ "pkcs11:object=a\nb", "object= has a bad character" },
	{ "pkcs11:object=\xc3\xa9", "object= has a bad character" },
	{ "pkcs11:object=a%00b", "object= holds a NUL" },
	{ "pkcs11:type=public", "type= must be private or cert" },
	{ "pkcs11:type=secret-key", "type= must be private or cert" },
	{ "pkcs11:?pin-value=1&pin-source=file:/x", "together" },
	{ "pkcs11:?pin-source=|/bin/cat", "must be a file: URI" },
	{ "pkcs11:?pin-source=/etc/pin", "must be a file: URI" },
	{ "pkcs11:?pin-source=file:rel", "absolute path" },
	{ "pkcs11:?pin-source=file://host/etc/pin", "absolute path" },
	{ "pkcs11:?module-path=rel.so", "module-path= must be an absolute" },
	{ "pkcs11:module-path=/x.so", "module-path= belongs in the query" },
	{ "pkcs11:?token=x", "token= belongs in the path" },
	{ "pkcs11:object=a#frag", "fragment" },
};

/* Bytes as lower-case hex (static buffer). */
static const char *
hex(const uint8_t *p, size_t n)
{
	static char buf[2 * KEYD_P11_MAX_ID + 1];
	size_t i;

	for (i = 0; i < n && i < KEYD_P11_MAX_ID; i++)
		snprintf(buf + 2 * i, 3, "%02x", p[i]);
	buf[2 * i] = '\0';
	return buf;
}

/* Whether field (of have's bit) is want (NULL: absent). */
static int
same(const struct keyd_p11_uri *u, unsigned int bit, const char *field,
    const char *want)
{
	return want == NULL || ((u->have & bit) && strcmp(field, want) == 0);
}

static void
t_uri_ok(const struct uri_ok *t)
{
	struct keyd_p11_uri u;
	char err[256] = "";
	int rc;

	rc = keyd_p11_uri_parse(t->uri, &u, err, sizeof(err));
	CHECK(rc == 0, "%s: refused: %s", t->uri, err);
	if (rc != 0)
		return;
	CHECK(u.have == t->have, "%s: attributes %#x, wanted %#x", t->uri,
	    u.have, t->have);
	CHECK(same(&u, KEYD_P11_TOKEN, u.token, t->token) &&
	    same(&u, KEYD_P11_OBJECT, u.object, t->object) &&
	    same(&u, KEYD_P11_MODULE_PATH, u.module_path, t->module) &&
	    same(&u, KEYD_P11_PIN_VALUE, u.pin, t->pin) &&
	    same(&u, KEYD_P11_PIN_SOURCE, u.pin_file, t->pin_file),
	    "%s: values", t->uri);
	CHECK(t->id == NULL || strcmp(hex(u.id, u.idlen), t->id) == 0,
	    "%s: id %s", t->uri, hex(u.id, u.idlen));
	CHECK((int)u.type == t->type, "%s: type %d", t->uri, u.type);
	keyd_p11_uri_clear(&u);
}

static void
t_uri_bad(const char *uri, const char *want)
{
	struct keyd_p11_uri u;
	char err[256] = "";

	CHECK(keyd_p11_uri_parse(uri, &u, err, sizeof(err)) == -1 &&
	    strstr(err, want) != NULL && u.have == 0,
	    "%s: wanted an error with '%s', got '%s'", uri, want, err);
}

/* Every case of the tables, and the length bounds. */
static int
t_uri(void)
{
	char big[KEYD_P11_MAX_URI + 2], pin[400];
	size_t i;

	for (i = 0; i < sizeof(uri_oks) / sizeof(uri_oks[0]); i++)
		t_uri_ok(&uri_oks[i]);
	for (i = 0; i < sizeof(uri_bad) / sizeof(uri_bad[0]); i++)
		t_uri_bad(uri_bad[i][0], uri_bad[i][1]);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "pkcs11:object=", 14);
	t_uri_bad(big, "longer than 2048 bytes");
	big[KEYD_P11_MAX_URI] = '\0';		/* exactly the limit */
	t_uri_bad(big, "object= is longer than 128 bytes");
	snprintf(pin, sizeof(pin), "pkcs11:?pin-value=%0129d", 0);
	t_uri_bad(pin, "pin-value= is longer than 128 bytes");
	snprintf(pin, sizeof(pin), "pkcs11:id=%0257d", 0);
	t_uri_bad(pin, "id= is longer than 128 bytes");
	printf("uri: %d checks, %d failed\n", checks, failures);
	return failures == 0 ? 0 : 1;
}

/* ---- a key process with one token key ---- */

static void
closed_cb(struct keyd_server *s, void *arg)
{
	(void)s;
	event_base_loopbreak(arg);
}

/* The key process: harden, load the key of uri (and of a file if given),
 * serve fd until it closes. */
static void
child(int fd, const char *uri, const char *keyfile, const char *certfile)
{
	struct keyd_keyring *kr;
	struct keyd_server *s;
	struct event_base *base;
	EVP_PKEY *key;
	X509 *cert;
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	if (keyd_harden() == -1 || keyd_secure_heap(KEYD_SECURE_HEAP) == -1)
		_exit(3);
	kr = keyd_keyring_new();
	if (keyd_keyring_add_pkcs11(kr, uri, err, sizeof(err)) == -1) {
		fprintf(stderr, "key process: %s\n", err);
		_exit(5);
	}
	if (keyfile != NULL) {
		key = load_key(keyfile);
		cert = load_cert(certfile);
		if (keyd_keyring_add(kr, cert, key, err, sizeof(err)) == -1)
			_exit(5);
		EVP_PKEY_free(key);
		X509_free(cert);
	}
	if ((base = event_base_new()) == NULL)
		_exit(6);
	s = keyd_server_new(base, fd, kr);
	keyd_server_set_closed_cb(s, closed_cb, base);
	event_base_dispatch(base);
	keyd_server_free(s);
	keyd_keyring_free(kr);
	event_base_free(base);
	_exit(0);
}

/* A key process on a new socketpair: a client on our end. */
static struct keyd_client *
spawn(pid_t *pid, const char *uri, const char *keyfile, const char *certfile)
{
	struct keyd_client *c;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		fatal("socketpair");
	fflush(stdout);
	fflush(stderr);
	if ((*pid = fork()) == -1)
		fatal("fork");
	if (*pid == 0) {
		close(sv[0]);
		child(sv[1], uri, keyfile, certfile);
	}
	close(sv[1]);
	if ((c = keyd_client_new(sv[0])) == NULL)
		fatal("keyd_client_new");
	return c;
}

/* The key process's exit status, -1 when it was killed. */
static int
reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* ---- through the client ---- */

static void bench_req(struct keyproto_req *, X509 *);

/* A file's bytes in a memory BIO. */
static BIO *
slurp(const char *path)
{
	BIO *in = BIO_new_file(path, "rb"), *mem = BIO_new(BIO_s_mem());
	char buf[4096];
	int n;

	if (in == NULL || mem == NULL)
		fatalx("cannot read %s", path);
	while ((n = BIO_read(in, buf, sizeof(buf))) > 0)
		BIO_write(mem, buf, n);
	BIO_free(in);
	return mem;
}

/* A CMS signature of msg by the handle (PSS if asked) in path (DER), for
 * `openssl cms -verify` in t_p11.sh. */
static void
t_sign(const char *path, X509 *cert, EVP_PKEY *h, const char *msg, int pss)
{
	unsigned int flags = CMS_PARTIAL | CMS_BINARY;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	CMS_SignerInfo *si;
	EVP_PKEY_CTX *pctx;
	BIO *in = slurp(msg), *out;
	int ok;

	si = CMS_add1_signer(cms, cert, h, EVP_sha256(),
	    flags | (pss ? CMS_KEY_PARAM : 0));
	ok = si != NULL;
	if (ok && pss) {
		pctx = CMS_SignerInfo_get0_pkey_ctx(si);
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING) > 0 &&
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
		    RSA_PSS_SALTLEN_DIGEST) > 0;
	}
	ok = ok && CMS_final(cms, in, NULL, flags) == 1;
	CHECK(ok, "%s: signing failed: %s", path,
	    ERR_reason_error_string(ERR_peek_last_error()));
	if (ok) {
		out = BIO_new_file(path, "wb");
		CHECK(out != NULL && i2d_CMS_bio(out, cms) == 1, "write %s",
		    path);
		BIO_free(out);
	}
	ERR_clear_error();
	CMS_ContentInfo_free(cms);
	BIO_free(in);
}

/* An envelope (DER) from `openssl cms -encrypt` opened with the handle,
 * by OpenSSL's CMS_decrypt and by smrelay's cms_decrypt: msg again. */
static void
t_decrypt(const char *path, X509 *cert, EVP_PKEY *h, const char *msg)
{
	struct cms_identity id = { cert, h };
	BIO *want = slurp(msg), *der, *out;
	CMS_ContentInfo *cms;
	char err[256] = "", *a, *b;
	long alen, blen;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		out = BIO_new(BIO_s_mem());
		der = slurp(path);
		if (pass == 0) {
			cms = d2i_CMS_bio(der, NULL);
			CHECK(cms != NULL && CMS_decrypt(cms, h, cert, NULL, out,
			    CMS_BINARY) == 1, "%s: CMS_decrypt: %s", path,
			    ERR_reason_error_string(ERR_peek_last_error()));
			CMS_ContentInfo_free(cms);
		} else
			CHECK(cms_decrypt(der, &id, 1, out, err,
			    sizeof(err)) == 0, "%s: cms_decrypt: %s", path, err);
		alen = BIO_get_mem_data(want, &a);
		blen = BIO_get_mem_data(out, &b);
		CHECK(alen == blen && memcmp(a, b, (size_t)alen) == 0,
		    "%s: pass %d: decrypted text differs", path, pass);
		BIO_free(out);
		BIO_free(der);
		ERR_clear_error();
	}
	BIO_free(want);
}

/* A request the key cannot do is refused with KP_E_KEYTYPE's text, and
 * the key process goes on serving. */
static void
t_refused(struct keyd_client *c, X509 *cert, int is_rsa)
{
	struct keyproto_req r;
	uint8_t dig[32] = { 1 }, out[KEYPROTO_MAX_DATA];
	size_t outlen = sizeof(out);
	unsigned int n = KEYPROTO_FP;
	char err[256] = "";
	int rc;

	memset(&r, 0, sizeof(r));
	r.type = KP_SIGN;
	r.alg = is_rsa ? KP_ALG_ECDSA : KP_ALG_RSA_PKCS1;
	r.md = KP_MD_SHA256;
	r.data = dig;
	r.len = sizeof(dig);
	X509_digest(cert, EVP_sha256(), r.fp, &n);
	rc = keyd_client_call(c, &r, out, &outlen, err, sizeof(err));
	CHECK(rc == KEYD_E_REFUSED && strstr(err, "cannot sign") != NULL,
	    "wrong algorithm for the key: %d %s", rc, err);
	r.alg = is_rsa ? KP_ALG_RSA_PKCS1 : KP_ALG_ECDSA;
	outlen = sizeof(out);
	rc = keyd_client_call(c, &r, out, &outlen, err, sizeof(err));
	CHECK(rc == 0, "the key process no longer signs: %s", err);
}

/* Write cert to path as PEM. */
static int
write_cert(const char *path, X509 *cert)
{
	FILE *f = fopen(path, "w");
	int ok = f != NULL && PEM_write_X509(f, cert) == 1;

	if (f != NULL && fclose(f) != 0)
		ok = 0;
	return ok;
}

static int
t_ops(const char *uri, const char *msg, const char *dir, char **enc,
    int nenc)
{
	struct keyd_client *c;
	EVP_PKEY *h;
	X509 *cert;
	char err[256], path[4096];
	pid_t pid;
	int i, rsa;

	/* The certificate first, and the module unloaded again, before the
	 * key process starts: SoftHSM2 rewrites its token file at each login
	 * and another process opening the token then can read it half
	 * written ("no token", "General Error"; SoftHSMv2 issue 757). */
	cert = keyd_p11_cert(uri, err, sizeof(err));
	CHECK(cert != NULL, "keyd_p11_cert: %s", err);
	if (cert == NULL)
		return 1;
	c = spawn(&pid, uri, NULL, NULL);
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	CHECK(write_cert(path, cert), "write %s", path);
	h = keyd_client_pkey(c, cert, err, sizeof(err));
	CHECK(h != NULL, "keyd_client_pkey: %s", err);
	if (h == NULL)
		return 1;
	rsa = EVP_PKEY_is_a(h, "RSA");
	snprintf(path, sizeof(path), "%s/sig-%s.der", dir,
	    rsa ? "pkcs1" : "ecdsa");
	t_sign(path, cert, h, msg, 0);
	if (rsa) {
		snprintf(path, sizeof(path), "%s/sig-pss.der", dir);
		t_sign(path, cert, h, msg, 1);
	}
	for (i = 0; i < nenc; i++)
		t_decrypt(enc[i], cert, h, msg);
	t_refused(c, cert, rsa);
	EVP_PKEY_free(h);
	keyd_client_free(c);
	CHECK(reap(pid) == 0, "the key process did not end well");
	X509_free(cert);
	printf("ops: %d checks, %d failed\n", checks, failures);
	return failures == 0 ? 0 : 1;
}

/* OAEP (SHA-256) encryption of a 32-byte key to cert: its length. */
static size_t
oaep_wrap(X509 *cert, uint8_t *out, size_t outsize)
{
	static const uint8_t cek[32] = { 0x42 };
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(X509_get0_pubkey(cert), NULL);
	size_t len = outsize;

	if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_encrypt(ctx, out, &len, cek, sizeof(cek)) <= 0)
		fatalx("OAEP encryption failed");
	EVP_PKEY_CTX_free(ctx);
	return len;
}

/*
 * An RSA key whose token allows CKM_RSA_PKCS only: PKCS#1 v1.5 signs;
 * PSS and OAEP (raw RSA on the token) are refused as something the key
 * cannot do (KP_E_KEYTYPE), not as a failure, and the key process goes
 * on serving.
 */
static int
t_mech(const char *uri)
{
	struct keyd_client *c;
	struct keyproto_req r;
	X509 *cert;
	uint8_t ct[KEYPROTO_MAX_DATA], out[KEYPROTO_MAX_DATA];
	size_t outlen;
	char err[256] = "";
	pid_t pid;
	int rc, alg;

	if ((cert = keyd_p11_cert(uri, err, sizeof(err))) == NULL)
		fatalx("keyd_p11_cert: %s", err);
	c = spawn(&pid, uri, NULL, NULL);
	for (alg = KP_ALG_RSA_PKCS1; alg <= KP_ALG_RSA_PSS; alg++) {
		bench_req(&r, cert);
		r.alg = (uint8_t)alg;
		outlen = sizeof(out);
		rc = keyd_client_call(c, &r, out, &outlen, err, sizeof(err));
		CHECK(alg == KP_ALG_RSA_PKCS1 ? rc == 0 : rc == KEYD_E_REFUSED &&
		    strstr(err, "does not allow") != NULL,
		    "sign alg %d: %d %s", alg, rc, err);
	}
	r.type = KP_DECRYPT;
	r.alg = KP_PAD_OAEP;
	r.md = r.md2 = KP_MD_SHA256;
	r.data = ct;
	r.len = oaep_wrap(cert, ct, sizeof(ct));
	outlen = sizeof(out);
	rc = keyd_client_call(c, &r, out, &outlen, err, sizeof(err));
	CHECK(rc == KEYD_E_REFUSED && strstr(err, "does not allow") != NULL,
	    "OAEP unwrap: %d %s", rc, err);
	keyd_client_free(c);
	CHECK(reap(pid) == 0, "the key process did not end well");
	X509_free(cert);
	printf("mech: %d checks, %d failed\n", checks, failures);
	return failures == 0 ? 0 : 1;
}

/* ---- errors ---- */

static int
t_fail(const char *uri, const char *want)
{
	struct keyd_keyring *kr = keyd_keyring_new();
	char err[256] = "";
	int rc;

	rc = keyd_keyring_add_pkcs11(kr, uri, err, sizeof(err));
	printf("error: %s\n", err);
	CHECK(rc == -1 && keyd_keyring_count(kr) == 0, "the key loaded");
	CHECK(strstr(err, want) != NULL, "wanted '%s' in the error", want);
	CHECK(strstr(err, "1234") == NULL, "the error shows the PIN");
	keyd_keyring_free(kr);
	return failures == 0 ? 0 : 1;
}

static int
t_cert(const char *uri, const char *out)
{
	char err[256] = "";
	X509 *cert = keyd_p11_cert(uri, err, sizeof(err));

	CHECK(cert != NULL, "keyd_p11_cert: %s", err);
	CHECK(cert == NULL || write_cert(out, cert), "write %s", out);
	X509_free(cert);
	return failures == 0 ? 0 : 1;
}

/* ---- the benchmark ---- */

struct bench {
	struct keyd_client	*c;
	struct keyproto_req	 r;
	int			 n;
	int			 fails;
};

/* A SIGN request (PKCS#1 v1.5 or ECDSA, SHA-256) for cert's key. */
static void
bench_req(struct keyproto_req *r, X509 *cert)
{
	static const uint8_t dig[32] = { 0x5a };
	unsigned int n = KEYPROTO_FP;

	memset(r, 0, sizeof(*r));
	r->type = KP_SIGN;
	r->alg = EVP_PKEY_is_a(X509_get0_pubkey(cert), "RSA") ?
	    KP_ALG_RSA_PKCS1 : KP_ALG_ECDSA;
	r->md = KP_MD_SHA256;
	r->data = dig;
	r->len = sizeof(dig);
	X509_digest(cert, EVP_sha256(), r->fp, &n);
}

static void *
bench_thread(void *arg)
{
	struct bench *b = arg;
	uint8_t out[KEYPROTO_MAX_DATA];
	size_t outlen;
	char err[256];
	int i;

	for (i = 0; i < b->n; i++) {
		outlen = sizeof(out);
		if (keyd_client_call(b->c, &b->r, out, &outlen, err,
		    sizeof(err)) != 0)
			b->fails++;
	}
	return NULL;
}

/* Signatures a second through the client with nthreads callers. */
static double
bench_client(struct keyd_client *c, X509 *cert, int n, int nthreads)
{
	struct bench b[8];
	pthread_t th[8];
	double t0;
	int i, fails = 0;

	for (i = 0; i < nthreads; i++) {
		b[i].c = c;
		bench_req(&b[i].r, cert);
		b[i].n = n / nthreads;
		b[i].fails = 0;
	}
	t0 = mono_now();
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, bench_thread, &b[i]);
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		fails += b[i].fails;
	}
	if (fails > 0)
		fatalx("%d signatures failed", fails);
	return (double)(n / nthreads * nthreads) / (mono_now() - t0);
}

/* Signatures a second by keyd_keyring_op in this process. */
static double
bench_keyring(struct keyd_keyring *kr, X509 *cert, int n)
{
	struct keyproto_req r;
	uint8_t out[KEYPROTO_MAX_DATA];
	size_t outlen;
	const char *why;
	double t0;
	int i;

	bench_req(&r, cert);
	t0 = mono_now();
	for (i = 0; i < n; i++)
		if (keyd_keyring_op(kr, &r, out, sizeof(out), &outlen,
		    &why) != 0)
			fatalx("keyd_keyring_op: %s", why);
	return (double)n / (mono_now() - t0);
}

static int
t_bench(const char *uri, int n, const char *keyfile, const char *certfile)
{
	struct keyd_keyring *kr;
	struct keyd_client *c;
	X509 *cert, *fcert = certfile != NULL ? load_cert(certfile) : NULL;
	EVP_PKEY *fkey;
	char err[256];
	pid_t pid;
	int t;

	if ((cert = keyd_p11_cert(uri, err, sizeof(err))) == NULL)
		fatalx("keyd_p11_cert: %s", err);
	c = spawn(&pid, uri, keyfile, certfile);
	bench_client(c, cert, 20, 1);		/* warm up */
	for (t = 1; t <= 4; t *= 2)
		printf("token key, keyd client, %d thread(s): %8.1f sig/s\n",
		    t, bench_client(c, cert, n, t));
	if (fcert != NULL)
		printf("file key,  keyd client, 1 thread:    %8.1f sig/s\n",
		    bench_client(c, fcert, n, 1));
	keyd_client_free(c);
	if (reap(pid) != 0)
		fatalx("the key process failed");
	kr = keyd_keyring_new();
	if (keyd_keyring_add_pkcs11(kr, uri, err, sizeof(err)) == -1)
		fatalx("keyd_keyring_add_pkcs11: %s", err);
	printf("token key, keyring in process:     %8.1f sig/s\n",
	    bench_keyring(kr, cert, n));
	if (fcert != NULL) {
		fkey = load_key(keyfile);
		if (keyd_keyring_add(kr, fcert, fkey, err, sizeof(err)) == -1)
			fatalx("keyd_keyring_add: %s", err);
		printf("file key,  keyring in process:     %8.1f sig/s\n",
		    bench_keyring(kr, fcert, n));
		EVP_PKEY_free(fkey);
	}
	keyd_keyring_free(kr);
	X509_free(cert);
	X509_free(fcert);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: p11_test uri | ops URI MSG DIR [ENC...] | "
	    "mech URI | fail URI TEXT | cert URI OUT | bench URI N "
	    "[KEY CERT]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	cms_init();
	if (strcmp(argv[1], "uri") == 0 && argc == 2)
		return t_uri();
	if (strcmp(argv[1], "ops") == 0 && argc >= 5)
		return t_ops(argv[2], argv[3], argv[4], argv + 5, argc - 5);
	if (strcmp(argv[1], "mech") == 0 && argc == 3)
		return t_mech(argv[2]);
	if (strcmp(argv[1], "fail") == 0 && argc == 4)
		return t_fail(argv[2], argv[3]);
	if (strcmp(argv[1], "cert") == 0 && argc == 4)
		return t_cert(argv[2], argv[3]);
	if (strcmp(argv[1], "bench") == 0 && (argc == 4 || argc == 6))
		return t_bench(argv[2], atoi(argv[3]),
		    argc == 6 ? argv[4] : NULL, argc == 6 ? argv[5] : NULL);
	usage();
	return 2;
}
