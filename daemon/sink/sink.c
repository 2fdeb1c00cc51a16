/* sink.c: the lab capture server (`smrelayctl sink`): the inbound SMTP
 * server of daemon/smtpd with the Maildir writer as its backend. */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "daemon/base/base.h"
#include "daemon/sink/sink.h"
#include "daemon/smtpd/smtpd.h"
#include "fail.h"
#include "lib/lib.h"
#include "maildir.h"
#include "sink_priv.h"

struct sink {
	struct event_base *base;
	struct config *cfg;
	SSL_CTX *tls;
	char *tmpdir;
	struct server *srv;
	struct maildir *md;
	int exiting;
	struct sink_fail fail;		/* --fail, --seed */
	struct sink_keys keys;		/* --key, --cert, --trust */
	const char *http;		/* --http ADDR:PORT */
	struct inbox *inbox;
	struct workers *workers;	/* the inbox's analyses */
	struct web *web;
};

/* Sessions all finished after SIGTERM: leave the loop. */
static void
sink_idle(void *arg)
{
	struct sink *sk = arg;

	log_info("sink: all sessions finished, exiting");
	event_base_loopexit(sk->base, NULL);
}

/* SIGTERM/SIGINT: drain once, leave at once on the second signal. */
static void
sink_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sink *sk = arg;

	(void)what;
	if (sk->exiting++) {
		log_info("sink: second signal, exiting now");
		event_base_loopexit(sk->base, NULL);
		return;
	}
	log_info("sink: signal %d: draining %d session(s)", (int)sig,
	    server_sessions(sk->srv));
	server_drain(sk->srv);
}

/* Fit the listeners to the TLS options: no certificate, no TLS. */
static int
sink_fix_listeners(struct config *cfg, int implicit)
{
	int i;

	for (i = 0; i < cfg->nlistens; i++) {
		if (implicit)
			cfg->listens[i].tls = LISTEN_TLS_IMPLICIT;
		if (cfg->tls_cert_file == NULL) {
			if (cfg->listens[i].tls == LISTEN_TLS_IMPLICIT)
				return -1;
			cfg->listens[i].tls = LISTEN_TLS_NONE;
		}
	}
	return 0;
}

/* Parse the sink's options into cfg: 0, 2 (a bad value, reported) or
 * SINK_USAGE. */
static int
sink_options(int argc, char *argv[], struct sink *sk, char **dir,
    int *verbose)
{
	struct config *cfg = sk->cfg;
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "maildir", required_argument, NULL, 'm' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "implicit-tls", no_argument, NULL, 'I' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "http", required_argument, NULL, 'W' },
		{ "key", required_argument, NULL, 'k' },
		{ "cert", required_argument, NULL, 'c' },
		{ "trust", required_argument, NULL, 't' },
		{ "fail", required_argument, NULL, 'F' },
		{ "seed", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 }
	};
	char why[512], *end;
	unsigned long long seed;
	int ch, implicit = 0, seeded = 0;

	while ((ch = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (config_add_listen(cfg, optarg, 0, why,
			    sizeof(why)) == -1) {
				fprintf(stderr, "smrelayctl: sink: %s\n", why);
				return 2;
			}
			break;
		case 'm':
			free(*dir);
			*dir = xstrdup(optarg);
			break;
		case 'C':
			free(cfg->tls_cert_file);
			cfg->tls_cert_file = xstrdup(optarg);
			break;
		case 'K':
			free(cfg->tls_key_file);
			cfg->tls_key_file = xstrdup(optarg);
			break;
		case 'I':
			implicit = 1;
			break;
		case 'H':
			free(cfg->hostname);
			cfg->hostname = xstrdup(optarg);
			break;
		case 'v':
			(*verbose)++;
			break;
		case 'W':
			sk->http = optarg;
			break;
		case 'k':
		case 'c':
		case 't':
			if ((ch == 'k' ? verdict_load_key(&sk->keys, optarg, why,
			    sizeof(why)) : ch == 'c' ?
			    verdict_load_certs(&sk->keys, optarg, why,
			    sizeof(why)) : verdict_load_trust(&sk->keys,
			    optarg, why, sizeof(why))) == -1) {
				fprintf(stderr, "smrelayctl: sink: %s\n", why);
				return 2;
			}
			break;
		case 'F':
			if (fail_parse(&sk->fail, optarg, why,
			    sizeof(why)) == -1) {
				fprintf(stderr, "smrelayctl: sink: %s\n", why);
				return 2;
			}
			break;
		case 'S':
			errno = 0;
			seed = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0') {
				fprintf(stderr, "smrelayctl: sink: --seed: "
				    "a number expected\n");
				return 2;
			}
			sk->fail.rng = seed;
			seeded = 1;
			break;
		default:
			return SINK_USAGE;
		}
	}
	if (!seeded)
		sk->fail.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (optind != argc || *dir == NULL || cfg->nlistens == 0 ||
	    (cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL))
		return SINK_USAGE;
	if (sink_fix_listeners(cfg, implicit) == -1) {
		fprintf(stderr, "smrelayctl: sink: implicit TLS needs "
		    "--tls-cert and --tls-key\n");
		return 2;
	}
	return 0;
}

/* maildir hooks: the --fail rules and the inbox. */
static int
sink_hook_rcpt(void *arg, struct smtp_result *res)
{
	return fail_rcpt(&((struct sink *)arg)->fail, res);
}

static int
sink_hook_data(void *arg, struct smtp_result *res)
{
	return fail_data(&((struct sink *)arg)->fail, res);
}

static void
sink_hook_delay(void *arg, struct timeval *tv)
{
	fail_delay(&((struct sink *)arg)->fail, tv);
}

static void
sink_hook_saved(void *arg, const char *name)
{
	struct sink *sk = arg;

	if (sk->inbox != NULL)
		inbox_add(sk->inbox, name);
}

/* The web inbox, and the --fail rules, around the Maildir writer. */
static int
sink_extras(struct sink *sk, const char *dir)
{
	struct maildir_hooks h;
	char err[1024];

	memset(&h, 0, sizeof(h));
	h.arg = sk;
	if (fail_any(&sk->fail)) {
		h.rcpt = sink_hook_rcpt;
		h.data = sink_hook_data;
		h.delay = sink_hook_delay;
		log_info("sink: failing on purpose rcpt=%g:%d data=%g:%d "
		    "drop=%g delay=%ums:%g", sk->fail.rcpt_p,
		    sk->fail.rcpt_code, sk->fail.data_p, sk->fail.data_code,
		    sk->fail.drop_p, sk->fail.delay_ms, sk->fail.delay_p);
	}
	if (sk->http != NULL) {
		cms_init();
		sk->inbox = inbox_open(dir, &sk->keys);
		h.saved = sink_hook_saved;
		/* one thread: analyses never hold up the loop, and a lab
		 * machine keeps its other cores */
		sk->workers = workers_new(sk->base, 1, NULL, NULL, NULL);
		if ((sk->web = web_start(sk->base, sk->http, sk->inbox,
		    sk->workers, err, sizeof(err))) == NULL) {
			fprintf(stderr, "smrelayctl: sink: %s\n", err);
			return -1;
		}
		log_info("sink: web inbox on http://%s/ keys=%zu", sk->http,
		    sk->keys.nids);
	}
	maildir_set_hooks(sk->md, &h);
	return 0;
}

/* Set up the server on a default config and run until a signal. */
static int
sink_run(struct sink *sk, const char *dir)
{
	struct server_params sp;
	struct event *ev_term, *ev_int;
	char err[1024];

	if (sk->cfg->tls_cert_file != NULL &&
	    (sk->tls = tls_server_ctx(sk->cfg->tls_cert_file,
	    sk->cfg->tls_key_file, sk->cfg->tls_ticket_rotate, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: sink: %s\n", err);
		return 1;
	}
	if ((sk->base = server_event_base()) == NULL)
		fatalx("event_base_new failed");
	if ((sk->md = maildir_open(sk->base, dir, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "smrelayctl: sink: %s\n", err);
		return 1;
	}
	if (sink_extras(sk, dir) == -1)
		return 1;
	sk->tmpdir = xasprintf("%s/tmp", dir);
	memset(&sp, 0, sizeof(sp));
	sp.base = sk->base;
	sp.cfg = sk->cfg;
	sp.tls_server = sk->tls;
	sp.ops = &maildir_delivery_ops;
	sp.ops_ctx = sk->md;
	sp.open_relay = 1;
	sp.tmpdir = sk->tmpdir;
	sp.on_idle = sink_idle;
	sp.arg = sk;
	sk->srv = server_new(&sp);
	if (server_listen(sk->srv, err, sizeof(err)) == -1) {
		fprintf(stderr, "smrelayctl: sink: %s\n", err);
		return 1;
	}
	ev_term = evsignal_new(sk->base, SIGTERM, sink_signal, sk);
	ev_int = evsignal_new(sk->base, SIGINT, sink_signal, sk);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	log_info("sink: started hostname=%s maildir=%s tls=%s",
	    sk->cfg->hostname, dir, sk->tls ? "yes" : "no");
	event_base_dispatch(sk->base);
	log_info("sink: exiting messages=%llu failed-rcpt=%llu failed-data=%llu "
	    "dropped=%llu delayed=%llu", server_messages(sk->srv),
	    sk->fail.n_rcpt, sk->fail.n_data, sk->fail.n_drop,
	    sk->fail.n_delay);
	event_free(ev_term);
	event_free(ev_int);
	server_close_listeners(sk->srv);
	return 0;
}

/* smrelayctl sink: a capture SMTP server writing a Maildir. */
int
sink_main(int argc, char *argv[])
{
	struct sink sk;
	char *dir = NULL;
	int verbose = 0, rc;

	memset(&sk, 0, sizeof(sk));
	sk.cfg = config_default();
	fail_init(&sk.fail, 0);
	verdict_keys_init(&sk.keys);
	if ((rc = sink_options(argc, argv, &sk, &dir, &verbose)) != 0) {
		verdict_keys_free(&sk.keys);
		config_free(sk.cfg);
		free(dir);
		return rc;
	}
	log_init("smrelayctl", 1, verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	signal(SIGPIPE, SIG_IGN);
	tls_init();
	rc = sink_run(&sk, dir);
	server_free(sk.srv);
	if (sk.workers != NULL)
		workers_free(sk.workers);	/* the last answers go out */
	web_free(sk.web);
	inbox_free(sk.inbox);
	verdict_keys_free(&sk.keys);
	maildir_close(sk.md);
	if (sk.base != NULL)
		event_base_free(sk.base);
	SSL_CTX_free(sk.tls);
	free(sk.tmpdir);
	config_free(sk.cfg);
	free(dir);
	return rc;
}
