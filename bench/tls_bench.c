/* tls_bench.c: full TLS handshakes per second on one thread, the server's
 * key in this process or a handle on a key process (issue 13), and how
 * long the server side waits for the key process per handshake.  Driven
 * by bench/smime.sh (step 3e); the numbers belong in docs/BENCHMARKS.md,
 * never in a test.
 *
 * The server context is the daemon's own (tls_server_ctx, or
 * tls_server_ctx_pkey with a keyd_client_pkey handle: no session cache,
 * no tickets, so every handshake is full); the client is plain OpenSSL
 * pinned to one version, without certificate checks.  Both run in this
 * thread over memory BIOs.  Per handshake it records the wall time spent
 * in the server's SSL_do_handshake calls and this thread's CPU time in
 * them (CLOCK_THREAD_CPUTIME_ID): their difference is the time the server
 * did not run, i.e. waited for the key process (or was preempted). */
#include "autoconfig.h"

#include <sys/resource.h>
#include <sys/time.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"
#include "daemon/keyd/keyd.h"
#include "pemload.h"
#include "keyproc.h"

/* One handshake's figures, in seconds. */
struct sample {
	double	srv_wall;	/* in the server's SSL_do_handshake calls */
	double	srv_cpu;	/* this thread's CPU time in them */
};

struct tls_bench {
	SSL_CTX		*sctx, *cctx;
	struct sample	*s;
	size_t		 n, cap;
	char		 err[512];
};

/* Print the synopsis and exit 2. */
static void
usage(void)
{
	fprintf(stderr, "usage: tls_bench --cert CHAIN.pem --key KEY"
	    " [--version 1.2|1.3] [--secs T] [--keyd [--keyd-plain-heap]]\n");
	exit(2);
}

/* Report a setup error with the OpenSSL queue and exit 2. */
static void
die(const char *what)
{
	fprintf(stderr, "tls_bench: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* Seconds on clock `id`. */
static double
clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Move what one side wrote to the other. */
static void
pump(BIO *from, BIO *to)
{
	char buf[8192];
	int n;

	while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
		BIO_write(to, buf, n);
}

/* One full handshake; its figures in *smp.  0, or -1 with err. */
static int
handshake(struct tls_bench *tb, struct sample *smp)
{
	SSL *s = SSL_new(tb->sctx), *c = SSL_new(tb->cctx);
	BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	double w, t;
	int i, rs = 0, rc = 0;

	if (s == NULL || c == NULL || s_in == NULL || s_out == NULL ||
	    c_in == NULL || c_out == NULL)
		die("out of memory");
	SSL_set_bio(s, s_in, s_out);
	SSL_set_bio(c, c_in, c_out);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	smp->srv_wall = smp->srv_cpu = 0;
	for (i = 0; i < 20 && (rs != 1 || rc != 1); i++) {
		if (rc != 1)
			rc = SSL_do_handshake(c);
		pump(c_out, s_in);
		if (rs != 1) {
			w = clock_s(CLOCK_MONOTONIC);
			t = clock_s(CLOCK_THREAD_CPUTIME_ID);
			rs = SSL_do_handshake(s);
			smp->srv_cpu += clock_s(CLOCK_THREAD_CPUTIME_ID) - t;
			smp->srv_wall += clock_s(CLOCK_MONOTONIC) - w;
		}
		pump(s_out, c_in);
	}
	if (rs != 1 || rc != 1)
		snprintf(tb->err, sizeof(tb->err), "handshake failed: %s",
		    ERR_reason_error_string(ERR_peek_last_error()));
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	return rs == 1 && rc == 1 ? 0 : -1;
}

/* The client's context, pinned to `version`. */
static SSL_CTX *
client_ctx(int version)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	if (c == NULL || SSL_CTX_set_min_proto_version(c, version) != 1 ||
	    SSL_CTX_set_max_proto_version(c, version) != 1)
		die("client context");
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	return c;
}

/* qsort on doubles. */
static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Quantile q (0..1) of v[0..n-1], sorted here; nearest rank. */
static double
quantile(double *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(q * (double)n + 0.999999);
	return v[i == 0 ? 0 : (i > n ? n : i) - 1];
}

/* Median and p99 of one field of the samples, in microseconds. */
static void
stats(const struct tls_bench *tb, int field, double *med, double *p99)
{
	double *v = calloc(tb->n > 0 ? tb->n : 1, sizeof(*v));
	size_t i;

	if (v == NULL)
		die("out of memory");
	for (i = 0; i < tb->n; i++)
		v[i] = 1e6 * (field == 0 ? tb->s[i].srv_wall :
		    field == 1 ? tb->s[i].srv_cpu :
		    tb->s[i].srv_wall - tb->s[i].srv_cpu);
	*med = quantile(v, tb->n, 0.5);
	*p99 = quantile(v, tb->n, 0.99);
	free(v);
}

/* Keep one sample. */
static void
keep(struct tls_bench *tb, const struct sample *smp)
{
	if (tb->n == tb->cap) {
		tb->cap = tb->cap ? 2 * tb->cap : 4096;
		if ((tb->s = realloc(tb->s, tb->cap * sizeof(*tb->s))) == NULL)
			die("out of memory");
	}
	tb->s[tb->n++] = *smp;
}

/* Handshakes for `secs` seconds after a few warm-up ones; print the
 * rates and the server's times. */
static int
run(struct tls_bench *tb, const struct keyproc *kp, const char *version,
    double secs)
{
	struct sample smp;
	double w0, c0, k0 = 0, w, c, k = 0, m[6];
	int i;

	for (i = 0; i < 20; i++)
		if (handshake(tb, &smp) == -1)
			return -1;
	w0 = clock_s(CLOCK_MONOTONIC);
	c0 = bench_cpu();
	if (kp != NULL)
		k0 = keyproc_cpu(kp);
	do {
		if (handshake(tb, &smp) == -1)
			return -1;
		keep(tb, &smp);
	} while (clock_s(CLOCK_MONOTONIC) - w0 < secs);
	w = clock_s(CLOCK_MONOTONIC) - w0;
	c = bench_cpu() - c0;
	if (kp != NULL)
		k = keyproc_cpu(kp) - k0;
	stats(tb, 0, &m[0], &m[1]);
	stats(tb, 1, &m[2], &m[3]);
	stats(tb, 2, &m[4], &m[5]);
	printf("tls=%s keys=%s handshakes=%zu wall_s=%.3f cpu_s=%.3f "
	    "keyd_cpu_s=%.3f hs_wall=%.1f hs_cpu=%.1f srv_wall_med_us=%.1f "
	    "srv_wall_p99_us=%.1f srv_cpu_med_us=%.1f srv_cpu_p99_us=%.1f "
	    "srv_wait_med_us=%.1f srv_wait_p99_us=%.1f\n", version,
	    kp != NULL ? "keyd" : "inproc", tb->n, w, c, k, tb->n / w,
	    c + k > 0 ? tb->n / (c + k) : 0, m[0], m[1], m[2], m[3], m[4],
	    m[5]);
	fflush(stdout);
	return 0;
}

/* The server context: the daemon's, with the key or a handle on kp. */
static struct keyd_client *
server_setup(struct tls_bench *tb, const char *cert, const char *key,
    struct keyproc *kp)
{
	struct keyd_client *kc = NULL;
	EVP_PKEY *h;
	X509 *leaf;

	if (kp == NULL) {
		tb->sctx = tls_server_ctx(cert, key, 0, tb->err,
		    sizeof(tb->err));
		if (tb->sctx == NULL)
			die(tb->err);
		return NULL;
	}
	kp->cert[0] = cert;
	kp->key[0] = key;
	kp->n = 1;
	keyproc_spawn(kp);
	if ((kc = keyd_client_new(kp->fd)) == NULL)
		die("keyd_client_new");
	if ((leaf = tls_leaf_cert(cert, tb->err, sizeof(tb->err))) == NULL ||
	    (h = keyd_client_pkey(kc, leaf, tb->err, sizeof(tb->err))) == NULL)
		die(tb->err);
	tb->sctx = tls_server_ctx_pkey(cert, h, 0, tb->err,
	    sizeof(tb->err));
	if (tb->sctx == NULL)
		die(tb->err);
	EVP_PKEY_free(h);	/* the context holds it */
	X509_free(leaf);
	return kc;
}

/* What to run, from the command line. */
struct tls_opts {
	const char	*cert, *key, *version;
	double		 secs;
	int		 keyd, plain_heap;
};

/* The command line into o, or usage(). */
static void
parse(int argc, char **argv, struct tls_opts *o)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "version", required_argument, NULL, 'v' },
		{ "secs", required_argument, NULL, 'T' },
		{ "keyd", no_argument, NULL, 'D' },
		{ "keyd-plain-heap", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		switch (ch) {
		case 'c':
			o->cert = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'v':
			o->version = optarg;
			break;
		case 'T':
			o->secs = strtod(optarg, NULL);
			break;
		case 'D':
			o->keyd = 1;
			break;
		case 'H':
			o->plain_heap = 1;
			break;
		default:
			usage();
		}
	if (optind != argc || o->cert == NULL || o->key == NULL ||
	    (strcmp(o->version, "1.2") != 0 && strcmp(o->version, "1.3") != 0))
		usage();
}

/* Parse the options, set up both sides, run. */
int
main(int argc, char **argv)
{
	struct tls_opts o = { NULL, NULL, "1.3", 4, 0, 0 };
	struct keyproc kp, *kpp = NULL;
	struct keyd_client *kc;
	struct tls_bench tb;
	double kcpu;
	int r;

	memset(&tb, 0, sizeof(tb));
	memset(&kp, 0, sizeof(kp));
	parse(argc, argv, &o);
	if (o.keyd) {
		kpp = &kp;
		kp.plain_heap = o.plain_heap;
	}
	tls_init();
	kc = server_setup(&tb, o.cert, o.key, kpp);
	tb.cctx = client_ctx(strcmp(o.version, "1.2") == 0 ? TLS1_2_VERSION :
	    TLS1_3_VERSION);
	if ((r = run(&tb, kpp, o.version, o.secs)) == -1)
		fprintf(stderr, "tls_bench: %s\n", tb.err);
	SSL_CTX_free(tb.sctx);
	SSL_CTX_free(tb.cctx);
	free(tb.s);
	if (kc != NULL) {
		keyd_client_free(kc);
		if (keyproc_reap(&kp, &kcpu) == -1)
			r = -1;
	}
	return r == 0 ? 0 : 1;
}
