/* relay_drive.c: drive the relay client against a real next hop the way the
 * inbound session does (begin, one rcpt at a time, data), and print every
 * smtp_result.  Used by tests/relay/run.sh. */
#include "autoconfig.h"

#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/base/config.h"
#include "lib/lib.h"
#include "daemon/base/msgbuf.h"
#include "daemon/relay/relay.h"
#include "daemon/base/tls.h"

struct drive {
	struct event_base *base;
	struct relay_pool *pool;
	struct config cfg;
	const char *from, *mailparams, *rcptparams, *file, *tmpdir;
	char **rcpts;
	int nrcpts;
	size_t size;
	int total, started, done, active, conc;
	int abort_after_rcpt, hold_ms;
	int nok, nfail;
};

struct msg {
	struct drive *d;
	int n;
	void *txn;
	int rcpt;
	int accepted;
	struct msgbuf *mb;
	struct event *ev;
};

static void msg_next_rcpt(struct msg *);
static void start_more(struct drive *);

/* Peak and current resident set size in kB, from /proc. */
static void
rss_kb(long *cur, long *peak)
{
	char line[256];
	FILE *fp;

	*cur = *peak = -1;
	if ((fp = fopen("/proc/self/status", "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*cur = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			*peak = strtol(line + 6, NULL, 10);
	}
	fclose(fp);
}

/* A message body: the file given, or a generated one of d->size bytes with
 * lines starting with "." (to exercise dot-stuffing) and bare LFs. */
static struct msgbuf *
make_body(struct drive *d, int n)
{
	struct msgbuf *mb = msgbuf_new(d->tmpdir, MSGBUF_MEM_DEFAULT);
	char line[128], buf[65536];
	size_t len = 0, l;
	FILE *fp;

	if (d->file != NULL) {
		if ((fp = fopen(d->file, "r")) == NULL)
			err(1, "%s", d->file);
		while ((l = fread(buf, 1, sizeof(buf), fp)) > 0)
			if (msgbuf_append(mb, buf, l) == -1)
				err(1, "msgbuf_append");
		fclose(fp);
		return mb;
	}
	l = (size_t)snprintf(line, sizeof(line), "From: <%s>\r\nSubject: "
	    "relay_drive message %d\r\nMessage-ID: <%d.%ld@relay-drive>\r\n"
	    "\r\n", d->from, n, n, (long)getpid());
	msgbuf_append(mb, line, l);
	len = l;
	while (len < d->size) {
		l = (size_t)snprintf(line, sizeof(line), "%s%08zu "
		    "abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOP%s",
		    len % 7 == 0 ? "." : "", len, len % 5 == 0 ? "\n" : "\r\n");
		if (len + l > d->size)
			l = d->size - len;
		if (msgbuf_append(mb, line, l) == -1)
			err(1, "msgbuf_append");
		len += l;
	}
	return mb;
}

/* One message is over. */
static void
msg_done(struct msg *m)
{
	struct drive *d = m->d;

	msgbuf_free(m->mb);
	if (m->ev != NULL)
		event_free(m->ev);
	free(m);
	d->done++;
	d->active--;
	start_more(d);
	if (d->done == d->total)
		printf("all done ok=%d fail=%d nconns=%d\n", d->nok, d->nfail,
		    relay_pool_nconns(d->pool));
}

/* data() answered. */
static void
data_cb(void *arg, const struct smtp_result *r)
{
	struct msg *m = arg;
	long cur, peak;

	rss_kb(&cur, &peak);
	printf("msg=%d data %d %s %s (rss_kb=%ld peak_kb=%ld)\n", m->n,
	    r->code, r->enh, r->text, cur, peak);
	if (r->code / 100 == 2)
		m->d->nok++;
	else
		m->d->nfail++;
	fflush(stdout);
	msg_done(m);
}

/* After the RCPT phase (and an optional pause): DATA or abort. */
static void
msg_send(evutil_socket_t fd, short ev, void *arg)
{
	struct msg *m = arg;

	(void)fd;
	(void)ev;
	if ((m->d->abort_after_rcpt && m->n % 2 == 1) || m->accepted == 0) {
		printf("msg=%d abort\n", m->n);
		m->d->nfail++;
		relay_delivery_ops.abort(m->txn);
		msg_done(m);
		return;
	}
	m->mb = make_body(m->d, m->n);
	relay_delivery_ops.data(m->txn, m->mb, data_cb, m);
}

/* rcpt() answered: the next one, or on to DATA. */
static void
rcpt_cb(void *arg, const struct smtp_result *r)
{
	struct msg *m = arg;
	struct timeval tv;

	printf("msg=%d rcpt=<%s> %d %s %s\n", m->n, m->d->rcpts[m->rcpt],
	    r->code, r->enh, r->text);
	fflush(stdout);
	if (r->code / 100 == 2)
		m->accepted++;
	if (++m->rcpt < m->d->nrcpts) {
		msg_next_rcpt(m);
		return;
	}
	if (m->d->hold_ms > 0) {
		tv.tv_sec = m->d->hold_ms / 1000;
		tv.tv_usec = (m->d->hold_ms % 1000) * 1000;
		m->ev = evtimer_new(m->d->base, msg_send, m);
		evtimer_add(m->ev, &tv);
		return;
	}
	msg_send(-1, 0, m);
}

/* Send the current recipient. */
static void
msg_next_rcpt(struct msg *m)
{
	relay_delivery_ops.rcpt(m->txn, m->d->rcpts[m->rcpt],
	    m->d->rcptparams, rcpt_cb, m);
}

/* Keep `conc` messages in flight until `total` were started. */
static void
start_more(struct drive *d)
{
	struct msg *m;

	while (d->active < d->conc && d->started < d->total) {
		m = xcalloc(1, sizeof(*m));
		m->d = d;
		m->n = ++d->started;
		d->active++;
		m->txn = relay_delivery_ops.begin(d->pool, d->from,
		    d->mailparams, new_session_id());
		msg_next_rcpt(m);
	}
}

/* All timeouts but idle shortened to ms (tests of silent peers). */
static void
short_timeouts(struct relay_timeouts *t, int ms)
{
	t->connect = t->greeting = t->ehlo = t->tls = t->mail = t->rcpt = ms;
	t->data_init = t->data_block = t->data_final = t->quit = ms;
}

/* Stop the loop once the pool has nothing left to do. */
static void
check_end(evutil_socket_t fd, short ev, void *arg)
{
	struct drive *d = arg;

	(void)fd;
	(void)ev;
	if (d->done == d->total)
		event_base_loopexit(d->base, NULL);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: relay_drive [-v] "
	    "[-t none|may|encrypt|verify|dane|dane-only]\n"
	    "    [-C cafile] [-H ehlo-name]\n"
	    "    [-f from] [-P mail-params] [-R rcpt-params] [-n count] "
	    "[-c concurrency]\n"
	    "    [-s size | -m file] [-T timeout-ms] [-I idle-ms] [-h hold-ms] "
	    "[-a] [-w wait-ms]\n"
	    "    (-a: abort odd-numbered messages after RCPT;\n"
	    "     -w: then wait until every connection is closed, at most "
	    "wait-ms)\n"
	    "    host:port rcpt...\n");
	exit(2);
}

/* Parse the arguments into d; returns the longest wait for the pool to
 * close its connections after the last message (0: no wait). */
static int
parse_args(struct drive *d, struct relay_timeouts *to, int argc, char **argv)
{
	int ch, i, wait_ms = 0;
	char *colon;

	while ((ch = getopt(argc, argv, "ac:C:f:h:H:I:m:n:P:R:s:t:T:vw:")) !=
	    -1) {
		switch (ch) {
		case 'a': d->abort_after_rcpt = 1; break;
		case 'c': d->conc = atoi(optarg); break;
		case 'C': d->cfg.relay_tls_ca_file = optarg; break;
		case 'f': d->from = optarg; break;
		case 'h': d->hold_ms = atoi(optarg); break;
		case 'H': d->cfg.hostname = optarg; break;
		case 'I': to->idle = atoi(optarg); break;
		case 'm': d->file = optarg; break;
		case 'n': d->total = atoi(optarg); break;
		case 'P': d->mailparams = optarg; break;
		case 'R': d->rcptparams = optarg; break;
		case 's': d->size = (size_t)config_parse_size(optarg); break;
		case 'T': short_timeouts(to, atoi(optarg)); break;
		case 'v': log_setlevel(LOG_LVL_DEBUG); break;
		case 'w': wait_ms = atoi(optarg); break;
		case 't':
			for (i = 0; i < RELAY_TLS_NMODES &&
			    strcmp(optarg, config_relay_tls_str(i)); i++)
				;
			if (i == RELAY_TLS_NMODES)
				usage();
			d->cfg.relay_tls = i;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2 || (colon = strrchr(argv[0], ':')) == NULL)
		usage();
	d->cfg.relay_host = xstrndup(argv[0], colon - argv[0]);
	d->cfg.relay_port = colon + 1;
	d->rcpts = argv + 1;
	d->nrcpts = argc - 1;
	return wait_ms;
}

int
main(int argc, char **argv)
{
	struct relay_timeouts to = relay_default_timeouts;
	struct drive d;
	struct timeval tv;
	struct event *tick;
	SSL_CTX *ctx = NULL;
	char errbuf[256];
	long cur, peak;
	int wait_ms;

	memset(&d, 0, sizeof(d));
	signal(SIGPIPE, SIG_IGN);       /* as smrelayd does */
	log_init("relay_drive", 1, LOG_LVL_INFO);
	d.cfg.hostname = "relay-drive.test";
	d.cfg.relay_tls = RELAY_TLS_MAY;
	d.cfg.max_message_size = 52428800;
	d.from = "sender@example.org";
	d.mailparams = "";
	d.rcptparams = "";
	d.total = 1;
	d.conc = 1;
	d.size = 2000;
	d.tmpdir = tmp_dir();
	wait_ms = parse_args(&d, &to, argc, argv);
	tls_init();
	if (d.cfg.relay_tls != RELAY_TLS_NONE &&
	    (ctx = tls_client_ctx(&d.cfg, errbuf, sizeof(errbuf))) == NULL)
		errx(1, "tls_client_ctx: %s", errbuf);
	if ((d.base = event_base_new()) == NULL)
		errx(1, "event_base_new");
	d.pool = relay_pool_new(d.base, &d.cfg, ctx);
	relay_pool_set_timeouts(d.pool, &to);
	start_more(&d);
	tv.tv_sec = 0;
	tv.tv_usec = 50000;
	tick = event_new(d.base, -1, EV_PERSIST, check_end, &d);
	event_add(tick, &tv);
	event_base_dispatch(d.base);
	printf("nconns_after_done=%d\n", relay_pool_nconns(d.pool));
	if (wait_ms > 0) {
		/* Poll (every 20 ms, at most wait_ms) until the pool closed its
		 * idle connections; say how long that took. */
		struct timespec t0, t1;
		long waited = 0;

		event_del(tick);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (relay_pool_nconns(d.pool) > 0 && waited < wait_ms) {
			tv.tv_sec = 0;
			tv.tv_usec = 20000;
			event_base_loopexit(d.base, &tv);
			event_base_dispatch(d.base);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			waited = (t1.tv_sec - t0.tv_sec) * 1000 +
			    (t1.tv_nsec - t0.tv_nsec) / 1000000;
		}
		printf("nconns_after_wait=%d waited_ms=%ld\n",
		    relay_pool_nconns(d.pool), waited);
	}
	rss_kb(&cur, &peak);
	printf("rss_kb=%ld peak_kb=%ld\n", cur, peak);
	event_free(tick);
	relay_pool_free(d.pool);
	SSL_CTX_free(ctx);
	event_base_free(d.base);
	free(d.cfg.relay_host);
	return d.nfail > 0 ? 1 : 0;
}
