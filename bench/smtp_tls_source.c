/* smtp_tls_source.c: an SMTP load source like Postfix's smtp-source, with
 * STARTTLS and TLS session resumption (smtp-source has neither), for
 * bench/relay.sh MODE=tls.
 *
 *   smtp_tls_source [-T] [-R] -n TOTAL -c CONNS -m PER_CONN [-s SIZE]
 *       [-f FROM] [-t TO] [-w SECONDS] HOST:PORT
 *
 * CONNS threads, each opening one connection after the other and sending
 * up to PER_CONN messages of SIZE bytes on it (MAIL, RCPT and DATA
 * pipelined, then the body), until TOTAL messages got their 250.  With -T
 * every connection says STARTTLS and offers the latest session any
 * connection got (TLS 1.3 tickets) unless -R.  No certificate checks: it
 * measures, it does not protect.  Prints one line of key=value results:
 * messages, connections, seconds, msgs/s, resumed handshakes, this
 * process's CPU seconds.  Every wait is bounded (-w, default 30 s). */
#include "autoconfig.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define REPLY_MAX	8192	/* one whole reply */

struct opts {
	const char	*host, *port, *from, *to;
	long		 total, conns, per_conn;
	size_t		 size;
	int		 tls, resume, wait;
};

static struct opts o = { NULL, NULL, "bench@example.com",
    "sink@example.net", 1000, 10, 1, 4096, 0, 1, 30 };
static SSL_CTX *ctx;
static char *body;		/* the message, dot-stuffed, with ".\r\n" */
static size_t bodylen;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long left;		/* messages not yet taken by a connection */
static long sent, nconns, nresumed, failed;
static SSL_SESSION *latest;	/* to offer to the next connection */

/* One connection: the socket, TLS once started, and the reply buffer. */
struct conn {
	int	 fd;
	SSL	*ssl;
	char	 buf[REPLY_MAX];
	size_t	 len;
};

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "smtp_tls_source: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* Keep a copy of each new session for the connections that follow. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION *copy;

	(void)ssl;
	if (!o.resume || (copy = SSL_SESSION_dup(sess)) == NULL)
		return 0;
	pthread_mutex_lock(&lock);
	SSL_SESSION_free(latest);
	latest = copy;
	pthread_mutex_unlock(&lock);
	return 0;
}

static int
conn_write(struct conn *c, const char *p, size_t n)
{
	ssize_t w;
	int r;

	while (n > 0) {
		if (c->ssl != NULL) {
			if ((r = SSL_write(c->ssl, p, (int)n)) <= 0)
				return -1;
			w = r;
		} else if ((w = send(c->fd, p, n, MSG_NOSIGNAL)) <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one whole reply; its code, or -1. */
static int
conn_reply(struct conn *c)
{
	char *line, *eol;
	ssize_t r;
	int code;

	for (;;) {
		/* a complete last line: "NNN " */
		line = c->buf;
		while ((eol = memchr(line, '\n', c->len - (size_t)(line -
		    c->buf))) != NULL) {
			if (eol - line >= 3 && (eol - line == 3 ||
			    line[3] == ' ' || line[3] == '\r')) {
				code = atoi(line);
				c->len -= (size_t)(eol + 1 - c->buf);
				memmove(c->buf, eol + 1, c->len);
				return code;
			}
			line = eol + 1;
		}
		if (c->len == sizeof(c->buf))
			return -1;
		if (c->ssl != NULL)
			r = SSL_read(c->ssl, c->buf + c->len,
			    (int)(sizeof(c->buf) - c->len));
		else
			r = recv(c->fd, c->buf + c->len, sizeof(c->buf) -
			    c->len, 0);
		if (r <= 0) {
			if (r < 0 && c->ssl == NULL && errno == EINTR)
				continue;
			return -1;
		}
		c->len += (size_t)r;
	}
}

static int
cmd(struct conn *c, const char *line, int want)
{
	if (line != NULL && conn_write(c, line, strlen(line)) == -1)
		return -1;
	return conn_reply(c) / 100 == want ? 0 : -1;
}

static int
conn_open(struct conn *c)
{
	struct addrinfo hints, *res;
	struct timeval tv = { o.wait, 0 };

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(o.host, o.port, &hints, &res) != 0)
		return -1;
	c->fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (c->fd == -1 || connect(c->fd, res->ai_addr, res->ai_addrlen) == -1) {
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

/* EHLO, STARTTLS and the handshake (offering `latest`), EHLO again. */
static int
conn_setup(struct conn *c, int *resumed)
{
	SSL_SESSION *s = NULL;

	if (cmd(c, NULL, 2) == -1 || cmd(c, "EHLO bench.test\r\n", 2) == -1)
		return -1;
	if (!o.tls)
		return 0;
	if (cmd(c, "STARTTLS\r\n", 2) == -1)
		return -1;
	c->len = 0;
	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	/* a copy: OpenSSL marks the session a connection used as used */
	pthread_mutex_lock(&lock);
	if (latest != NULL)
		s = SSL_SESSION_dup(latest);
	pthread_mutex_unlock(&lock);
	if (s != NULL) {
		SSL_set_session(c->ssl, s);
		SSL_SESSION_free(s);
	}
	if (SSL_connect(c->ssl) != 1)
		return -1;
	*resumed = SSL_session_reused(c->ssl);
	return cmd(c, "EHLO bench.test\r\n", 2);
}

/* One message: MAIL, RCPT, DATA in one write, then the body. */
static int
conn_message(struct conn *c)
{
	char head[1024];

	snprintf(head, sizeof(head), "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n"
	    "DATA\r\n", o.from, o.to);
	if (cmd(c, head, 2) == -1 || cmd(c, NULL, 2) == -1 ||
	    cmd(c, NULL, 3) == -1)
		return -1;
	if (conn_write(c, body, bodylen) == -1)
		return -1;
	return cmd(c, NULL, 2);
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd != -1)
		close(c->fd);
}

/* A thread: connections until no message is left. */
static void *
worker(void *arg)
{
	struct conn c;
	long n, i, done;
	int resumed;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		n = left < o.per_conn ? left : o.per_conn;
		left -= n;
		pthread_mutex_unlock(&lock);
		if (n <= 0)
			return NULL;
		memset(&c, 0, sizeof(c));
		c.fd = -1;
		resumed = 0;
		done = 0;
		if (conn_open(&c) == 0 && conn_setup(&c, &resumed) == 0) {
			for (i = 0; i < n && conn_message(&c) == 0; i++)
				done++;
			if (done == n)
				(void)cmd(&c, "QUIT\r\n", 2);
		}
		conn_close(&c);
		pthread_mutex_lock(&lock);
		sent += done;
		nconns++;
		nresumed += resumed;
		failed += n - done;
		pthread_mutex_unlock(&lock);
		if (done < n) {
			ERR_print_errors_fp(stderr);
			fprintf(stderr, "smtp_tls_source: a connection failed "
			    "after %ld of %ld messages\n", done, n);
		}
	}
}

/* SIZE bytes of message: a header, then lines of 'x' (nothing to stuff). */
static void
make_body(void)
{
	size_t n = 0, hl;
	char hdr[256];

	hl = (size_t)snprintf(hdr, sizeof(hdr), "From: <%s>\r\nTo: <%s>\r\n"
	    "Subject: bench\r\n\r\n", o.from, o.to);
	body = malloc(o.size + hl + 128);
	if (body == NULL)
		die("out of memory");
	memcpy(body, hdr, hl);
	n = hl;
	while (n < o.size + hl) {
		size_t k = o.size + hl - n > 78 ? 76 : 1;

		memset(body + n, 'x', k);
		n += k;
		memcpy(body + n, "\r\n", 2);
		n += 2;
	}
	memcpy(body + n, ".\r\n", 3);
	bodylen = n + 3;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
num(const char *s, long max)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end != '\0' || v <= 0 || v > max)
		die("bad number %s (1..%ld)", s, max);
	return v;
}

int
main(int argc, char **argv)
{
	pthread_t *t;
	struct rusage ru;
	char *colon;
	double t0, secs;
	long i;
	int ch;

	while ((ch = getopt(argc, argv, "TRn:c:m:s:f:t:w:")) != -1)
		switch (ch) {
		case 'T': o.tls = 1; break;
		case 'R': o.resume = 0; break;
		case 'n': o.total = num(optarg, 100000000); break;
		case 'c': o.conns = num(optarg, 10000); break;
		case 'm': o.per_conn = num(optarg, 1000000); break;
		case 's': o.size = (size_t)num(optarg, 100 << 20); break;
		case 'f': o.from = optarg; break;
		case 't': o.to = optarg; break;
		case 'w': o.wait = (int)num(optarg, 3600); break;
		default:
			die("usage: smtp_tls_source [-T] [-R] -n TOTAL -c CONNS "
			    "-m PER_CONN [-s SIZE] [-f FROM] [-t TO] [-w SECS] "
			    "HOST:PORT");
		}
	if (optind + 1 != argc || (colon = strrchr(argv[optind], ':')) == NULL)
		die("HOST:PORT expected");
	*colon = '\0';
	o.host = argv[optind];
	o.port = colon + 1;
	make_body();
	if (o.tls) {
		if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			die("SSL_CTX_new");
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		/* whole socket reads, not a header and then a body per
		 * record: half the read calls */
		SSL_CTX_set_read_ahead(ctx, 1);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	}
	left = o.total;
	if ((t = calloc((size_t)o.conns, sizeof(*t))) == NULL)
		die("out of memory");
	t0 = now();
	for (i = 0; i < o.conns; i++)
		if (pthread_create(&t[i], NULL, worker, NULL) != 0)
			die("pthread_create");
	for (i = 0; i < o.conns; i++)
		pthread_join(t[i], NULL);
	secs = now() - t0;
	getrusage(RUSAGE_SELF, &ru);
	printf("messages=%ld connections=%ld seconds=%.3f rate=%.0f "
	    "resumed=%ld/%ld failed=%ld cpu=%.2f\n", sent, nconns, secs,
	    secs > 0 ? (double)sent / secs : 0.0, nresumed, nconns, failed,
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	free(t);
	free(body);
	SSL_SESSION_free(latest);
	SSL_CTX_free(ctx);
	return failed > 0 ? 1 : 0;
}
