/* smime_bench.c: throughput and peak memory of the CMS engine
 * (proto/cms.c), in-process, on one core.  Driven by bench/smime.sh; the
 * numbers belong in docs/BENCHMARKS.md, never in a test.
 *
 *   throughput: sign, encrypt (AES-256-CBC), sign+encrypt and
 *     decrypt+verify of a SIZE-byte canonical entity, from memory BIOs,
 *     for N iterations or T seconds; one "op=..." line per operation.
 *   --peak: one operation on a SIZE-byte entity streamed from a file, the
 *     output to /dev/null, then the peak RSS (VmHWM); for the two-step
 *     operations also the peak after the first step (sign, decrypt).
 *   --threads T: the throughput runs on T threads at once; with --keyd the
 *     private keys are handles (keyd_client_pkey) on a key process forked
 *     here (bench/keyproc.c), whose CPU time counts in the rates. */
#include "autoconfig.h"

#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "daemon/base/base.h"
#include "daemon/keyd/keyd.h"
#include "daemon/smime/smime.h"
#include "lib/lib.h"
#include "policy/policy.h"
#include "proto/mime.h"
#include "proto/cms.h"
#include "store/store.h"
#include "pemload.h"
#include "keyproc.h"

#define ENT_HEADERS \
	"Content-Type: text/plain; charset=us-ascii\r\n" \
	"Content-Transfer-Encoding: 7bit\r\n" \
	"\r\n"
#define LINE_LEN 72		/* text bytes per line, CRLF not counted */
#define CHUNK (64 * 1024)

/* What every operation needs: keys, certificates, trust. */
struct bench {
	X509		*cert;		/* signer */
	EVP_PKEY	*key;
	STACK_OF(X509)	*chain;
	STACK_OF(X509)	*to;		/* recipients; the first is ours */
	struct cms_identity id;	/* to[0] and its key, for decryption */
	X509_STORE	*store;
	struct cms_trust trust;
	const char	*from;		/* the signer's address, for verify */
	int		 presize;	/* output BIOs get their room up front */
	BUF_MEM		*bm[2];		/* their buffers: 0 signed, 1 other */
	long		 hwm_mid;	/* --peak: VmHWM between the two steps */
	/* --store: decrypt+verify as the daemon does it (the pipeline
	 * with the certificate cache over that store) */
	struct certsrc	 src;		/* src.cc NULL: engine only */
	STACK_OF(X509)	*anchors;	/* --ca, for the OCSP answers */
	const char	*expect;	/* --expect: text the first result has */
	int		 threads;	/* --threads: 0 the one-thread run() */
	struct keyproc	*kp;		/* --keyd: the key process, or NULL */
	char		 err[1024];
};

/* A buffer in memory, owned. */
struct buf {
	char	*p;
	size_t	 len;
};

typedef int (*op_fn)(struct bench *, const struct buf *);

/* Print the synopsis and exit 2. */
static void
usage(void)
{
	fprintf(stderr,
	    "usage: smime_bench --cert C --key K [--chain F] --to C --to-key K"
	    " --ca F\n"
	    "           [--from ADDR] [--size N] [--iter N] [--secs T]"
	    " [--op OP]\n"
	    "           [--out mem|presized] [--crl PEM]...\n"
	    "           [--store DIR [--revocation hard|soft|off] [--ocsp]"
	    " [--expect TEXT]] [--no-memo]\n"
	    "           [--threads T] [--keyd [--keyd-plain-heap]]\n"
	    "       smime_bench ... --peak SIZE --op OP [--dir DIR]\n"
	    "       smime_bench --entity FILE [--size N]\n"
	    "OP: sign, encrypt, signenc, decver or all (throughput only);\n"
	    "    rsa (the recipient key's private operation), ratio (decver\n"
	    "    against rsa in alternating slices; one thread, no --store)\n");
	exit(2);
}

/* Report a setup error with the OpenSSL queue and exit 2. */
static void
die(const char *what)
{
	fprintf(stderr, "smime_bench: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1. */
static long
status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	long v = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Line `i` of the entity's text: printable, varying, LINE_LEN bytes. */
static void
text_line(size_t i, char *p)
{
	static const char alpha[] =
	    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,";
	size_t k;

	for (k = 0; k < LINE_LEN; k++)
		p[k] = alpha[(i * 7 + k * 13) % (sizeof(alpha) - 1)];
}

/* Write a canonical entity of exactly `size` bytes (CRLF lines) through
 * `put`, in pieces; the last line is shortened to fit. */
static int
ent_write(size_t size, int (*put)(void *, const char *, size_t), void *arg)
{
	char chunk[CHUNK];
	size_t hl = strlen(ENT_HEADERS), left, n = 0, i = 0, l;

	if (size < hl + 2)
		size = hl + 2;
	if (put(arg, ENT_HEADERS, hl) == -1)
		return -1;
	left = size - hl;
	while (left > 0) {
		l = left >= LINE_LEN + 2 ? LINE_LEN : left - 2;
		if (left - l - 2 == 1)	/* never leave one lone byte */
			l--;
		text_line(i++, chunk + n);
		chunk[n + l] = '\r';
		chunk[n + l + 1] = '\n';
		n += l + 2;
		left -= l + 2;
		if (n + LINE_LEN + 2 > sizeof(chunk) || left == 0) {
			if (put(arg, chunk, n) == -1)
				return -1;
			n = 0;
		}
	}
	return 0;
}

/* ent_write sink: append to a struct buf allocated large enough. */
static int
put_mem(void *arg, const char *p, size_t n)
{
	struct buf *b = arg;

	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* ent_write sink: a stdio file. */
static int
put_file(void *arg, const char *p, size_t n)
{
	return fwrite(p, 1, n, arg) == n ? 0 : -1;
}

/* The entity in memory. */
static void
ent_mem(size_t size, struct buf *b)
{
	if ((b->p = malloc(size + strlen(ENT_HEADERS) + 2)) == NULL)
		die("out of memory");
	b->len = 0;
	ent_write(size, put_mem, b);
}

/* Take the contents of a memory BIO into a buffer we own. */
static void
mem_take(BIO *m, struct buf *b)
{
	char *p;
	long n = BIO_get_mem_data(m, &p);

	if ((b->p = malloc(n > 0 ? (size_t)n : 1)) == NULL)
		die("out of memory");
	memcpy(b->p, p, n > 0 ? (size_t)n : 0);
	b->len = n > 0 ? (size_t)n : 0;
}

/* A memory BIO for the output of an operation on `len` bytes.  With
 * --out presized it writes into buffer `slot`, allocated on first use and
 * kept, so that the growth of BIO_s_mem (by a third, each step a cleansed
 * copy into fresh pages) is left out of the measurement. */
static BIO *
out_new(struct bench *bn, int slot, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *bm = bn->bm[slot];
	size_t cap = len + len / 2 + 65536;

	if (b == NULL)
		die("out of memory");
	if (!bn->presize)
		return b;
	if (bm == NULL && (bm = bn->bm[slot] = BUF_MEM_new()) == NULL)
		die("out of memory");
	if (bm->max < cap) {
		if (!BUF_MEM_grow(bm, cap))
			die("out of memory");
		memset(bm->data, 0, cap);
	}
	bm->length = 0;
	BIO_set_mem_buf(b, bm, BIO_NOCLOSE);
	return b;
}

/* Sign the entity in `in` into a new memory BIO; NULL on error. */
static BIO *
do_sign(struct bench *bn, const char *p, size_t len)
{
	BIO *in = BIO_new_mem_buf(p, (int)len), *out = out_new(bn, 0, len);

	if (cms_sign(in, bn->cert, bn->key, bn->chain, 0, out, bn->err,
	    sizeof(bn->err)) == -1) {
		BIO_free(out);
		out = NULL;
	}
	BIO_free(in);
	return out;
}

/* Encrypt the entity in `in` into a new memory BIO; NULL on error. */
static BIO *
do_encrypt(struct bench *bn, const char *p, size_t len)
{
	BIO *in = BIO_new_mem_buf(p, (int)len), *out = out_new(bn, 1, len);

	if (cms_encrypt(in, bn->to, 0, out, bn->err, sizeof(bn->err)) ==
	    -1) {
		BIO_free(out);
		out = NULL;
	}
	BIO_free(in);
	return out;
}

/* op: detached signature, output held in memory. */
static int
op_sign(struct bench *bn, const struct buf *e)
{
	BIO *out = do_sign(bn, e->p, e->len);

	BIO_free(out);
	return out == NULL ? -1 : 0;
}

/* op: AES-256-CBC envelope for the recipients. */
static int
op_encrypt(struct bench *bn, const struct buf *e)
{
	BIO *out = do_encrypt(bn, e->p, e->len);

	BIO_free(out);
	return out == NULL ? -1 : 0;
}

/* op: sign, then encrypt the signed entity. */
static int
op_signenc(struct bench *bn, const struct buf *e)
{
	BIO *s, *out;
	char *p;
	long n;

	if ((s = do_sign(bn, e->p, e->len)) == NULL)
		return -1;
	n = BIO_get_mem_data(s, &p);
	out = do_encrypt(bn, p, (size_t)n);
	BIO_free(s);
	BIO_free(out);
	return out == NULL ? -1 : 0;
}

/* Verify a multipart/signed entity in memory; 0 on pass. */
static int
verify_mem(struct bench *bn, const char *p, size_t len)
{
	struct mime_smime sm;
	struct cms_verify res;
	BIO *content, *der;
	int r = -1;

	if (mime_smime_detect(p, len, &sm) != MIME_SMIME_SIGNED) {
		snprintf(bn->err, sizeof(bn->err), "not multipart/signed");
		mime_smime_clear(&sm);
		return -1;
	}
	content = BIO_new_mem_buf(p + sm.content_off, (int)sm.content_len);
	der = BIO_new_mem_buf(sm.der, (int)sm.derlen);
	if (cms_verify(content, der, &bn->trust, bn->from, NULL, &res) ==
	    SMIME_PASS)
		r = 0;
	else
		snprintf(bn->err, sizeof(bn->err), "verify: %s (%s)",
		    cms_outcome_name(res.outcome), res.reason);
	cms_verify_free(&res);
	BIO_free(content);
	BIO_free(der);
	mime_smime_clear(&sm);
	return r;
}

/* The buffer decryption writes to: room for derlen bytes made once up
 * front (the content is never longer than its envelope), as a caller
 * that knows the size does, instead of BIO_s_mem growing by a third at a
 * time with a cleansed copy each step (12% of a 1 MB decrypt+verify). */
static BIO *
dec_out(struct bench *bn, size_t derlen)
{
	BIO *b;
	BUF_MEM *bm;

	if (bn->presize)
		return out_new(bn, 0, derlen);
	if ((b = BIO_new(BIO_s_mem())) == NULL || (bm = BUF_MEM_new()) ==
	    NULL || !BUF_MEM_grow(bm, derlen + 1))
		die("out of memory");
	bm->length = 0;
	BIO_set_mem_buf(b, bm, BIO_CLOSE);
	return b;
}

/* op: a signed-then-encrypted entity (headers and base64) back to a
 * verified one, the MIME layer (mime_smime_detect) included. */
static int
op_decver(struct bench *bn, const struct buf *env)
{
	struct mime_smime sm;
	BIO *der, *out;
	char *p;
	long n;
	int r = -1;

	if (mime_smime_detect(env->p, env->len, &sm) != MIME_SMIME_P7M) {
		snprintf(bn->err, sizeof(bn->err), "not pkcs7-mime");
		mime_smime_clear(&sm);
		return -1;
	}
	der = BIO_new_mem_buf(sm.der, (int)sm.derlen);
	out = dec_out(bn, sm.derlen);
	if (cms_decrypt(der, &bn->id, 1, out, bn->err, sizeof(bn->err)) ==
	    0) {
		n = BIO_get_mem_data(out, &p);
		r = verify_mem(bn, p, (size_t)n);
	}
	BIO_free(der);
	BIO_free(out);
	mime_smime_clear(&sm);
	return r;
}

/* op with --store: the whole message (outer header fields, then the
 * envelope) through pipeline_transform_body() under a decrypt+verify rule,
 * as a worker of smrelayd runs it (received into a msgbuf, read in
 * pieces), and the harvest flushed as the event loop does (after the first
 * message: the cache knows the signer and writes nothing). */
static int
op_decver_store(struct bench *bn, const struct buf *msg)
{
	static const char *const rcpt[] = { "bob@partner.example" };
	struct pl_copy c = { bn->from, rcpt, 1, POLICY_DECRYPT |
	    POLICY_VERIFY, 0, "bench.example" };
	struct smime_msg_res res;
	struct smtp_result fail;
	struct msgbuf *in, *out = NULL;
	const char *tmp = tmp_dir();
	char *text;
	size_t n;
	int r = -1;

	memset(&res, 0, sizeof(res));
	memset(&fail, 0, sizeof(fail));
	if ((in = msgbuf_new(tmp, 0)) == NULL ||
	    msgbuf_append(in, msg->p, msg->len) == -1)
		snprintf(bn->err, sizeof(bn->err), "msgbuf: %s",
		    strerror(errno));
	else if (pipeline_transform_body(&bn->src, &c, in, tmp, &out, &res,
	    &fail) != 0)
		snprintf(bn->err, sizeof(bn->err), "decrypt: %d %s: %s",
		    fail.code, fail.text, res.err);
	else if (out == NULL)
		snprintf(bn->err, sizeof(bn->err), "decrypt: the message went "
		    "unchanged (%s)", res.err);
	else if (res.outcome != SMIME_PASS)
		snprintf(bn->err, sizeof(bn->err), "verify: %s (%s)%s%s",
		    cms_outcome_name(res.outcome), res.reason, res.err[0] ?
		    "; " : "", res.err);
	else if (bn->expect != NULL) {
		text = msgbuf_slurp(out, &n);
		if (text == NULL || strstr(text, bn->expect) == NULL)
			snprintf(bn->err, sizeof(bn->err), "no \"%s\" in the "
			    "result: %.200s", bn->expect, text != NULL ? text :
			    "");
		else
			r = 0;
		free(text);
	} else
		r = 0;
	bn->expect = NULL;	/* checked once, on the warm-up call */
	smime_msg_res_free(&res);
	msgbuf_free(out);
	msgbuf_free(in);
	if (harvest_flush(bn->src.harvest, bn->src.cc, bn->src.st) == -1)
		r = -1;
	return r;
}

/* A whole message for op_decver_store: outer header fields, then the
 * envelope entity (its own header fields and base64). */
static void
msg_wrap(const struct buf *env, const char *from, struct buf *msg)
{
	char hdr[512];
	int n;

	n = snprintf(hdr, sizeof(hdr), "From: <%s>\r\nTo: "
	    "<bob@partner.example>\r\nSubject: bench\r\nMIME-Version: "
	    "1.0\r\n", from);
	if (n < 0 || (size_t)n >= sizeof(hdr) ||
	    (msg->p = malloc((size_t)n + env->len)) == NULL)
		die("out of memory");
	memcpy(msg->p, hdr, (size_t)n);
	memcpy(msg->p + n, env->p, env->len);
	msg->len = (size_t)n + env->len;
}

/* One of the threads of run_mt. */
struct mt {
	struct bench		 bn;	/* a copy: its own err and buffers */
	op_fn			 fn;
	const struct buf	*in;
	pthread_barrier_t	*go;
	long			 iter, n;
	double			 secs;
	int			 failed;
	pthread_t		 th;
};

/* A thread of run_mt: warm up, wait for the others, then run. */
static void *
mt_main(void *arg)
{
	struct mt *m = arg;
	double t0;

	m->failed = m->fn(&m->bn, m->in) == -1;
	pthread_barrier_wait(m->go);
	if (m->failed)
		return NULL;
	t0 = mono_now();
	while (m->n < m->iter && mono_now() - t0 < m->secs) {
		if (m->fn(&m->bn, m->in) == -1) {
			m->failed = 1;
			break;
		}
		m->n++;
	}
	return NULL;
}

/* run() on bn->threads threads at once, each with its own copy of bn
 * (the keys, certificates and trust shared, as the daemon's workers
 * share them); rates per wall-second and per CPU-second of this process
 * and of the key process (--keyd) together. */
static int
run_mt(struct bench *bn, const char *name, op_fn fn, const struct buf *in,
    size_t size, long iter, double secs)
{
	struct mt *m = calloc((size_t)bn->threads, sizeof(*m));
	pthread_barrier_t go;
	double w0, c0, k0 = 0, w, c, k = 0;
	long n = 0;
	int i, failed = 0;

	if (m == NULL ||
	    pthread_barrier_init(&go, NULL, (unsigned)bn->threads + 1) != 0)
		die("out of memory");
	for (i = 0; i < bn->threads; i++) {
		m[i].bn = *bn;
		m[i].bn.bm[0] = m[i].bn.bm[1] = NULL;
		m[i].fn = fn;
		m[i].in = in;
		m[i].go = &go;
		m[i].iter = (iter + bn->threads - 1) / bn->threads;
		m[i].secs = secs;
		if (pthread_create(&m[i].th, NULL, mt_main, &m[i]) != 0)
			die("pthread_create");
	}
	pthread_barrier_wait(&go);
	w0 = mono_now();
	c0 = bench_cpu();
	if (bn->kp != NULL)
		k0 = keyproc_cpu(bn->kp);
	for (i = 0; i < bn->threads; i++) {
		pthread_join(m[i].th, NULL);
		n += m[i].n;
		if (m[i].failed && failed++ == 0)
			fprintf(stderr, "smime_bench: %s: %s\n", name,
			    m[i].bn.err);
		BUF_MEM_free(m[i].bn.bm[0]);
		BUF_MEM_free(m[i].bn.bm[1]);
	}
	w = mono_now() - w0;
	c = bench_cpu() - c0;
	if (bn->kp != NULL)
		k = keyproc_cpu(bn->kp) - k0;
	pthread_barrier_destroy(&go);
	free(m);
	if (failed)
		return -1;
	printf("op=%s keys=%s threads=%d size=%zu iters=%ld wall_s=%.3f "
	    "cpu_s=%.3f keyd_cpu_s=%.3f ops_wall=%.1f ops_cpu=%.1f\n", name,
	    bn->kp != NULL ? "keyd" : "inproc", bn->threads, size, n, w, c, k,
	    n / w, c + k > 0 ? n / (c + k) : 0);
	fflush(stdout);
	return 0;
}

/* Run `fn` for `iter` iterations or `secs` seconds, whichever ends first,
 * after one warm-up call, and print the rates. */
static int
run(struct bench *bn, const char *name, op_fn fn, const struct buf *in,
    size_t size, long iter, double secs)
{
	double w0, c0, w, c, mb = size / 1e6;
	long i;

	if (bn->threads > 0)
		return run_mt(bn, name, fn, in, size, iter, secs);
	if (fn(bn, in) == -1) {
		fprintf(stderr, "smime_bench: %s: %s\n", name, bn->err);
		return -1;
	}
	w0 = mono_now();
	c0 = bench_cpu();
	for (i = 0; i < iter; i++) {
		if (fn(bn, in) == -1) {
			fprintf(stderr, "smime_bench: %s: %s\n", name, bn->err);
			return -1;
		}
		if (secs > 0 && mono_now() - w0 >= secs) {
			i++;
			break;
		}
	}
	w = mono_now() - w0;
	c = bench_cpu() - c0;
	printf("op=%s out=%s size=%zu iters=%ld wall_s=%.3f cpu_s=%.3f "
	    "ops_wall=%.1f ops_cpu=%.1f mbs_wall=%.1f mbs_cpu=%.1f\n",
	    name, bn->presize ? "presized" : "mem", size, i, w, c, i / w,
	    c > 0 ? i / c : 0, i * mb / w, c > 0 ? i * mb / c : 0);
	fflush(stdout);
	return 0;
}

/* op: one RSA private-key operation with the recipient's key (the one
 * decrypt+verify uses), as openssl speed rsa2048 signs: PKCS#1 v1.5 over
 * a SHA-256 digest, the context made once. */
static int
op_rsa(struct bench *bn, const struct buf *unused)
{
	static EVP_PKEY_CTX *ctx;
	unsigned char md[32] = { 1 }, sig[1024];
	size_t siglen = sizeof(sig);

	(void)unused;
	if (ctx == NULL && ((ctx = EVP_PKEY_CTX_new(bn->id.key, NULL)) ==
	    NULL || EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1))
		die("EVP_PKEY_sign_init");
	if (EVP_PKEY_sign(ctx, sig, &siglen, md, sizeof(md)) != 1) {
		snprintf(bn->err, sizeof(bn->err), "EVP_PKEY_sign failed");
		return -1;
	}
	return 0;
}

/* --op ratio: decrypt+verify against op_rsa in alternating slices of half
 * a second (so that both see the same load), `secs` of each in all;
 * prints both rates per CPU-second and their ratio. */
static int
ratio_run(struct bench *bn, const struct buf *env, size_t size, double secs)
{
	double c[2] = { 0, 0 }, c0, t0;
	long n[2] = { 0, 0 };
	op_fn fn[2] = { op_rsa, op_decver };
	int k;

	if (op_rsa(bn, NULL) == -1 || op_decver(bn, env) == -1)
		die(bn->err);
	while (c[0] < secs || c[1] < secs)
		for (k = 0; k < 2; k++) {
			c0 = bench_cpu();
			t0 = mono_now();
			while (mono_now() - t0 < 0.5) {
				if (fn[k](bn, env) == -1)
					die(bn->err);
				n[k]++;
			}
			c[k] += bench_cpu() - c0;
		}
	printf("op=ratio size=%zu rsa_ops_cpu=%.1f decver_ops_cpu=%.1f "
	    "ratio=%.3f\n", size, n[0] / c[0], n[1] / c[1],
	    (n[1] / c[1]) / (n[0] / c[0]));
	return 0;
}

/* Throughput of one operation, or of all four. */
static int
throughput(struct bench *bn, const char *op, size_t size, long iter,
    double secs)
{
	struct buf ent, env = { NULL, 0 }, msg = { NULL, 0 };
	BIO *s, *e;
	char *p;
	long n;
	int all = strcmp(op, "all") == 0, r = 0;

	ent_mem(size, &ent);
	if (all || strcmp(op, "decver") == 0 || strcmp(op, "ratio") == 0) {
		/* The message to open, made once beforehand. */
		if ((s = do_sign(bn, ent.p, ent.len)) == NULL)
			die(bn->err);
		n = BIO_get_mem_data(s, &p);
		if ((e = do_encrypt(bn, p, (size_t)n)) == NULL)
			die(bn->err);
		mem_take(e, &env);
		BIO_free(s);
		BIO_free(e);
	}
	if (strcmp(op, "ratio") == 0 && bn->threads == 0 &&
	    bn->src.cc == NULL)
		r |= ratio_run(bn, &env, size, secs);
	if (strcmp(op, "rsa") == 0 && bn->threads == 0)
		r |= run(bn, "rsa", op_rsa, &ent, size, iter, secs);
	if (all || strcmp(op, "sign") == 0)
		r |= run(bn, "sign", op_sign, &ent, size, iter, secs);
	if (all || strcmp(op, "encrypt") == 0)
		r |= run(bn, "encrypt", op_encrypt, &ent, size, iter, secs);
	if (all || strcmp(op, "signenc") == 0)
		r |= run(bn, "signenc", op_signenc, &ent, size, iter, secs);
	if ((all || strcmp(op, "decver") == 0) && bn->src.cc != NULL) {
		msg_wrap(&env, bn->from, &msg);
		r |= run(bn, "decver", op_decver_store, &msg, size, iter,
		    secs);
	} else if (all || strcmp(op, "decver") == 0)
		r |= run(bn, "decver", op_decver, &env, size, iter, secs);
	free(ent.p);
	free(env.p);
	free(msg.p);
	return r;
}

/* Sign or encrypt file `src` into file `dst`, streaming. */
static int
file_op(struct bench *bn, int enc, const char *src, const char *dst)
{
	BIO *in = BIO_new_file(src, "rb"), *out = BIO_new_file(dst, "wb");
	int r = -1;

	if (in == NULL || out == NULL)
		snprintf(bn->err, sizeof(bn->err), "%s or %s: %s", src, dst,
		    strerror(errno));
	else if (enc)
		r = cms_encrypt(in, bn->to, 0, out, bn->err,
		    sizeof(bn->err));
	else
		r = cms_sign(in, bn->cert, bn->key, bn->chain, 0, out,
		    bn->err, sizeof(bn->err));
	BIO_free(in);
	BIO_free(out);
	return r;
}

/* Decode the base64 body of the entity in file `src` into file `dst`,
 * streaming (what the MIME layer does before cms_decrypt). */
static int
file_unbase64(const char *src, const char *dst)
{
	struct mime_b64dec d;
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	char line[4096], dec[4096];
	size_t n;
	int body = 0, r = -1;

	if (in == NULL || out == NULL)
		goto done;
	mime_b64dec_init(&d);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (!body) {
			body = strcmp(line, "\r\n") == 0;
			continue;
		}
		n = mime_b64dec_feed(&d, line, strlen(line), dec);
		if (fwrite(dec, 1, n, out) != n)
			goto done;
	}
	n = mime_b64dec_end(&d, dec);
	if (fwrite(dec, 1, n, out) == n && !ferror(in))
		r = 0;
 done:
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0)
		r = -1;
	return r;
}

/* Split the multipart/signed entity in file `src` (as cms_sign writes
 * it) into the signed part, copied to file `dst`, and the decoded
 * signature, returned in a memory BIO; streaming. */
static BIO *
file_split_signed(const char *src, const char *dst)
{
	struct mime_b64dec d;
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	BIO *sig = NULL;
	char line[4096], dec[4096], delim[128], *b, *q;
	size_t dl = 0, n;
	int state = 0;	/* 0 headers, 1 preamble, 2 content, 3 sig hdrs,
			 * 4 sig body, 5 done */
	int pending = 0;	/* a CRLF held back: it may precede the delimiter */

	if (in == NULL || out == NULL || (sig = BIO_new(BIO_s_mem())) == NULL)
		goto fail;
	mime_b64dec_init(&d);
	while (state < 5 && fgets(line, sizeof(line), in) != NULL) {
		n = strlen(line);
		switch (state) {
		case 0:
			if ((b = strstr(line, "boundary=\"")) != NULL) {
				b += 10;
				if ((q = strchr(b, '"')) == NULL)
					goto fail;
				dl = (size_t)snprintf(delim, sizeof(delim),
				    "--%.*s", (int)(q - b), b);
			}
			if (strcmp(line, "\r\n") == 0)
				state = dl > 0 ? 1 : 5;
			break;
		case 1:
			if (strncmp(line, delim, dl) == 0)
				state = 2;
			break;
		case 2:
			if (strncmp(line, delim, dl) == 0) {
				state = 3;
				break;
			}
			if (pending && fwrite("\r\n", 1, 2, out) != 2)
				goto fail;
			pending = n >= 2 && line[n - 2] == '\r' &&
			    line[n - 1] == '\n';
			if (pending)
				n -= 2;
			if (fwrite(line, 1, n, out) != n)
				goto fail;
			break;
		case 3:
			if (strcmp(line, "\r\n") == 0)
				state = 4;
			break;
		case 4:
			if (strncmp(line, delim, dl) == 0) {
				state = 5;
				break;
			}
			n = mime_b64dec_feed(&d, line, n, dec);
			BIO_write(sig, dec, (int)n);
			break;
		}
	}
	n = mime_b64dec_end(&d, dec);
	BIO_write(sig, dec, (int)n);
	if (state != 5 || dl == 0)
		goto fail;
	fclose(in);
	if (fclose(out) != 0) {
		BIO_free(sig);
		return NULL;
	}
	return sig;
 fail:
	if (in != NULL)
		fclose(in);
	if (out != NULL)
		fclose(out);
	BIO_free(sig);
	return NULL;
}

/* decrypt+verify of the envelope in file `env`, streaming through files
 * in `dir`. */
static int
file_decver(struct bench *bn, const char *env, const char *dir)
{
	char der[1024], inner[1024], content[1024];
	struct cms_verify res;
	BIO *in, *out, *sig, *c;
	int r;

	snprintf(der, sizeof(der), "%s/env.der", dir);
	snprintf(inner, sizeof(inner), "%s/inner", dir);
	snprintf(content, sizeof(content), "%s/content", dir);
	if (file_unbase64(env, der) == -1) {
		snprintf(bn->err, sizeof(bn->err), "base64 decoding failed");
		return -1;
	}
	in = BIO_new_file(der, "rb");
	out = BIO_new_file(inner, "wb");
	r = in != NULL && out != NULL ?
	    cms_decrypt(in, &bn->id, 1, out, bn->err, sizeof(bn->err)) : -1;
	BIO_free(in);
	BIO_free(out);
	bn->hwm_mid = status_kb("VmHWM");
	if (r == -1)
		return -1;
	if ((sig = file_split_signed(inner, content)) == NULL) {
		snprintf(bn->err, sizeof(bn->err), "not multipart/signed");
		return -1;
	}
	c = BIO_new_file(content, "rb");
	r = 0;
	if (c == NULL || cms_verify(c, sig, &bn->trust, bn->from, NULL,
	    &res) != SMIME_PASS) {
		snprintf(bn->err, sizeof(bn->err), "verify: %s (%s)",
		    c ? cms_outcome_name(res.outcome) : "?",
		    c ? res.reason : "no content");
		r = -1;
	}
	if (c != NULL)
		cms_verify_free(&res);
	BIO_free(c);
	BIO_free(sig);
	return r;
}

/* In a child process, so that its memory is not ours: sign `ent` to
 * dir/signed, encrypt that to dir/env. */
static int
prepare_env(struct bench *bn, const char *ent, const char *dir)
{
	char signed_[1024], env[1024];
	pid_t pid;
	int st;

	snprintf(signed_, sizeof(signed_), "%s/signed", dir);
	snprintf(env, sizeof(env), "%s/env", dir);
	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		if (file_op(bn, 0, ent, signed_) == -1 ||
		    file_op(bn, 1, signed_, env) == -1) {
			fprintf(stderr, "smime_bench: prepare: %s\n", bn->err);
			_exit(1);
		}
		_exit(0);
	}
	if (waitpid(pid, &st, 0) == -1 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

/* One operation on a `size`-byte entity streamed from a file in `dir`;
 * print the RSS before and the peak after. */
static int
peak(struct bench *bn, const char *op, size_t size, const char *dir)
{
	char ent[1024], tmp[1024], env[1024];
	double w0;
	long rss0, hwm0;
	FILE *f;
	int r = -1;

	snprintf(ent, sizeof(ent), "%s/entity", dir);
	snprintf(tmp, sizeof(tmp), "%s/signed", dir);
	snprintf(env, sizeof(env), "%s/env", dir);
	if ((f = fopen(ent, "wb")) == NULL)
		die(ent);
	if (ent_write(size, put_file, f) == -1 || fclose(f) != 0)
		die(ent);
	if (strcmp(op, "decver") == 0 && prepare_env(bn, ent, dir) == -1)
		die("preparing the envelope failed");
	rss0 = status_kb("VmRSS");
	hwm0 = status_kb("VmHWM");
	w0 = mono_now();
	if (strcmp(op, "sign") == 0)
		r = file_op(bn, 0, ent, "/dev/null");
	else if (strcmp(op, "encrypt") == 0)
		r = file_op(bn, 1, ent, "/dev/null");
	else if (strcmp(op, "signenc") == 0) {
		r = file_op(bn, 0, ent, tmp);
		bn->hwm_mid = status_kb("VmHWM");
		if (r == 0)
			r = file_op(bn, 1, tmp, "/dev/null");
	}
	else if (strcmp(op, "decver") == 0)
		r = file_decver(bn, env, dir);
	else
		usage();
	if (r == -1) {
		fprintf(stderr, "smime_bench: %s: %s\n", op, bn->err);
		return -1;
	}
	printf("peak op=%s size=%zu wall_s=%.3f rss_before_kb=%ld "
	    "hwm_before_kb=%ld hwm_mid_kb=%ld hwm_kb=%ld\n", op, size,
	    mono_now() - w0, rss0, hwm0, bn->hwm_mid, status_kb("VmHWM"));
	return 0;
}

/* --entity: the entity the throughput runs use, for openssl cms. */
static int
write_entity(const char *path, size_t size)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || ent_write(size, put_file, f) == -1 || fclose(f) != 0) {
		fprintf(stderr, "smime_bench: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

/* --crl FILE: every CRL of a PEM file, and revocation checked (hard) on
 * every verification from then on. */
static void
load_crls(struct cms_trust *t, const char *path)
{
	X509_CRL *crl;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die(path);
	if (t->crls == NULL && (t->crls = sk_X509_CRL_new_null()) == NULL)
		die("out of memory");
	while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL)
		if (sk_X509_CRL_push(t->crls, crl) <= 0)
			die("out of memory");
	ERR_clear_error();
	fclose(f);
	if (sk_X509_CRL_num(t->crls) == 0)
		die(path);
	t->revocation = CMS_REV_HARD;
}

/* x's issuer among the chain and the anchors (not x itself), or NULL. */
static X509 *
issuer_of(struct bench *bn, X509 *x)
{
	STACK_OF(X509) *sks[2] = { bn->chain, bn->anchors };
	X509 *c;
	int i, k;

	for (k = 0; k < 2; k++)
		for (i = 0; i < sk_X509_num(sks[k]); i++) {
			c = sk_X509_value(sks[k], i);
			if (X509_cmp(c, x) != 0 &&
			    X509_check_issued(c, x) == X509_V_OK)
				return c;
		}
	return NULL;
}

/* --ocsp: a good answer (nextUpdate a day away) in the store for every
 * link of the signer's chain, under the key the daemon looks it up by
 * (cms_ocsp_key); the number of answers. */
static int
ocsp_put_chain(struct bench *bn)
{
	struct store_ocsp o;
	X509 *x = bn->cert, *issuer;
	char key[65], err[256];
	time_t now = time(NULL);
	int n = 0;

	memset(&o, 0, sizeof(o));
	o.status = 0;
	o.this_update = now - 60;
	o.next_update = now + 86400;
	snprintf(o.source, sizeof(o.source), "smime_bench");
	for (; (issuer = issuer_of(bn, x)) != NULL; x = issuer, n++)
		if (cms_ocsp_key(x, issuer, key) == -1 ||
		    store_ocsp_put(bn->src.st, key, &o, err, sizeof(err)) == -1)
			die(err);
	return n;
}

/* --store DIR: the daemon's certificate cache over the store in DIR
 * (anchors, intermediates, CRLs and our keys as smrelayctl imported
 * them, the keys in DIR/keys.db, the default key_file), checking
 * revocation per `rev`; with `ocsp`, answers for the chain stored
 * first. */
static void
store_setup(struct bench *bn, const char *dir, enum config_revocation rev,
    int ocsp)
{
	struct keyfile *kf;
	char err[512], *path;

	if ((bn->src.st = store_open(dir, err, sizeof(err))) == NULL)
		die(err);
	path = xasprintf("%s/keys.db", dir);
	if ((kf = keyfile_open(path, NULL, err, sizeof(err))) == NULL)
		die(err);
	free(path);
	if (ocsp)
		fprintf(stderr, "smime_bench: %d OCSP answer(s) stored\n",
		    ocsp_put_chain(bn));
	bn->src.cc = certcache_new();
	keys_set_keyfile(certcache_keys(bn->src.cc), kf);
	certcache_set_revocation(bn->src.cc, rev);
	if (certcache_sync(bn->src.cc, bn->src.st, 1, err, sizeof(err)) == -1)
		die(err);
	bn->src.harvest = harvest_new();
}

/* What to run, from the command line. */
struct run_opts {
	const char	*op, *dir, *entity;
	size_t		 size, peaksize;
	long		 iter;
	double		 secs;
	const char	*store;		/* --store DIR */
	enum config_revocation rev;	/* --revocation, with --store */
	int		 ocsp;		/* --ocsp */
	const char	*certf, *keyf;	/* the files, for the key process */
	const char	*tof, *tokeyf;
	int		 keyd;		/* --keyd */
	int		 plain_heap;	/* --keyd-plain-heap */
	int		 no_memo;	/* --no-memo */
};

/* The options of the threaded and key process runs. */
static void
set_option_mt(int ch, struct bench *bn, struct run_opts *o)
{
	switch (ch) {
	case 'j':
		if ((bn->threads = atoi(optarg)) < 1)
			usage();
		break;
	case 'D':
		o->keyd = 1;
		break;
	case 'H':
		o->plain_heap = 1;
		break;
	case 'M':
		o->no_memo = 1;
		break;
	default:
		usage();
	}
}

/* Apply one command-line option: load PKI files, or note a setting. */
static void
set_option(int ch, struct bench *bn, struct run_opts *o)
{
	switch (ch) {
	case 'c':
		bn->cert = load_cert(o->certf = optarg);
		break;
	case 'k':
		bn->key = load_key(o->keyf = optarg);
		break;
	case 'C':
		load_certs(bn->chain, optarg);
		break;
	case 't':
		if (o->tof == NULL)
			o->tof = optarg;
		sk_X509_push(bn->to, load_cert(optarg));
		break;
	case 'K':
		bn->id.key = load_key(o->tokeyf = optarg);
		break;
	case 'a':
		if (X509_STORE_load_file(bn->store, optarg) != 1)
			die(optarg);
		load_certs(bn->anchors, optarg);
		break;
	case 'f':
		bn->from = optarg;
		break;
	case 'R':
		load_crls(&bn->trust, optarg);
		break;
	case 'O':
		if (strcmp(optarg, "presized") == 0)
			bn->presize = 1;
		else if (strcmp(optarg, "mem") != 0)
			usage();
		break;
	case 's':
		o->size = strtoul(optarg, NULL, 10);
		break;
	case 'n':
		o->iter = strtol(optarg, NULL, 10);
		break;
	case 'T':
		o->secs = strtod(optarg, NULL);
		break;
	case 'o':
		o->op = optarg;
		break;
	case 'p':
		o->peaksize = strtoul(optarg, NULL, 10);
		break;
	case 'd':
		o->dir = optarg;
		break;
	case 'E':
		o->entity = optarg;
		break;
	case 'S':
		o->store = optarg;
		break;
	case 'V':
		if (strcmp(optarg, "off") == 0)
			o->rev = CONFIG_REV_OFF;
		else if (strcmp(optarg, "soft") == 0)
			o->rev = CONFIG_REV_SOFT;
		else if (strcmp(optarg, "hard") != 0)
			usage();
		break;
	case 'P':
		o->ocsp = 1;
		break;
	case 'X':
		bn->expect = optarg;
		break;
	default:
		set_option_mt(ch, bn, o);
	}
}

/* --keyd: fork the key process with the signer's and the recipient's
 * keys (before any thread of ours), and use handles from now on: the
 * keys read from the files are freed. */
static struct keyd_client *
keyd_setup(struct bench *bn, const struct run_opts *o)
{
	static struct keyproc kp;
	struct keyd_client *kc;

	kp.cert[0] = o->certf;
	kp.key[0] = o->keyf;
	kp.cert[1] = o->tof;
	kp.key[1] = o->tokeyf;
	kp.n = 2;
	kp.plain_heap = o->plain_heap;
	keyproc_spawn(&kp);
	if ((kc = keyd_client_new(kp.fd)) == NULL)
		die("keyd_client_new");
	EVP_PKEY_free(bn->key);
	EVP_PKEY_free(bn->id.key);
	bn->key = keyd_client_pkey(kc, bn->cert, bn->err, sizeof(bn->err));
	if (bn->key == NULL)
		die(bn->err);
	bn->id.key = keyd_client_pkey(kc, bn->id.cert, bn->err,
	    sizeof(bn->err));
	if (bn->id.key == NULL)
		die(bn->err);
	bn->kp = &kp;
	if (bn->threads == 0)
		bn->threads = 1;
	return kc;
}

/* Close the key process's socket and wait for it; -1 when it did not
 * exit 0. */
static int
keyd_teardown(struct bench *bn, struct keyd_client *kc)
{
	double c;
	int r;

	keyd_client_free(kc);
	r = keyproc_reap(bn->kp, &c);
	fprintf(stderr, "smime_bench: key process exited %s, %.3f CPU s in "
	    "all\n", r == 0 ? "normally" : "abnormally", c);
	return r;
}

/* Free what main set up. */
static void
bench_free(struct bench *bn)
{
	X509_free(bn->cert);
	EVP_PKEY_free(bn->key);
	EVP_PKEY_free(bn->id.key);
	sk_X509_pop_free(bn->chain, X509_free);
	sk_X509_pop_free(bn->to, X509_free);
	X509_STORE_free(bn->store);
	sk_X509_pop_free(bn->anchors, X509_free);
	harvest_free(bn->src.harvest);
	certcache_free(bn->src.cc);
	store_close(bn->src.st);
	sk_X509_CRL_pop_free(bn->trust.crls, X509_CRL_free);
	cms_memo_free(bn->trust.memo);
	BUF_MEM_free(bn->bm[0]);
	BUF_MEM_free(bn->bm[1]);
}

/* Parse the options, load the PKI, run. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "chain", required_argument, NULL, 'C' },
		{ "to", required_argument, NULL, 't' },
		{ "to-key", required_argument, NULL, 'K' },
		{ "ca", required_argument, NULL, 'a' },
		{ "from", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "iter", required_argument, NULL, 'n' },
		{ "secs", required_argument, NULL, 'T' },
		{ "op", required_argument, NULL, 'o' },
		{ "peak", required_argument, NULL, 'p' },
		{ "dir", required_argument, NULL, 'd' },
		{ "out", required_argument, NULL, 'O' },
		{ "entity", required_argument, NULL, 'E' },
		{ "crl", required_argument, NULL, 'R' },
		{ "store", required_argument, NULL, 'S' },
		{ "revocation", required_argument, NULL, 'V' },
		{ "ocsp", no_argument, NULL, 'P' },
		{ "expect", required_argument, NULL, 'X' },
		{ "threads", required_argument, NULL, 'j' },
		{ "keyd", no_argument, NULL, 'D' },
		{ "keyd-plain-heap", no_argument, NULL, 'H' },
		{ "no-memo", no_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 }
	};
	struct run_opts o = { "all", ".", NULL, 4096, 0, 1000000, 5, NULL,
	    CONFIG_REV_HARD, 0, NULL, NULL, NULL, NULL, 0, 0, 0 };
	struct keyd_client *kc = NULL;
	struct bench bn;
	int ch, r;

	cms_init();
	memset(&bn, 0, sizeof(bn));
	bn.chain = sk_X509_new_null();
	bn.to = sk_X509_new_null();
	bn.store = X509_STORE_new();
	bn.anchors = sk_X509_new_null();
	if (bn.chain == NULL || bn.to == NULL || bn.store == NULL ||
	    bn.anchors == NULL)
		die("out of memory");
	bn.from = "alice@example.com";
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		set_option(ch, &bn, &o);
	if (o.entity != NULL && optind == argc)
		return write_entity(o.entity, o.size);
	if (optind != argc || bn.cert == NULL || bn.key == NULL ||
	    sk_X509_num(bn.to) == 0 || bn.id.key == NULL || o.iter < 1)
		usage();
	if (o.keyd && (o.store != NULL || o.peaksize > 0))
		usage();
	if (bn.threads > 0 && o.store != NULL)
		usage();	/* the harvest is the loop's: one thread */
	bn.id.cert = sk_X509_value(bn.to, 0);
	bn.trust.store = bn.store;
	/* the engine's memo, as the daemon's certificate cache hands it
	 * (--no-memo: every certificate parsed, every chain checked) */
	if (!o.no_memo && (bn.trust.memo = cms_memo_new(CMS_MEMO_CERTS,
	    CMS_MEMO_CHAINS)) == NULL)
		die("cms_memo_new");
	if (o.store != NULL)
		store_setup(&bn, o.store, o.rev, o.ocsp);
	if (o.keyd)
		kc = keyd_setup(&bn, &o);
	if (o.peaksize > 0)
		r = peak(&bn, o.op, o.peaksize, o.dir);
	else
		r = throughput(&bn, o.op, o.size, o.iter, o.secs);
	if (kc != NULL && keyd_teardown(&bn, kc) == -1)
		r = -1;
	bench_free(&bn);
	return r == 0 ? 0 : 1;
}
