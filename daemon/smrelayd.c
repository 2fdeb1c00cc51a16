/* smrelayd.c: the daemon: config, listeners, the relay pool, signals. */
#include "autoconfig.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/base/base.h"
#include "daemon/smime/smime.h"
#include "lib/lib.h"
#include "daemon/relay/relay.h"
#include "daemon/smtpd/smtpd.h"
#include "daemon/queue/queue.h"
#include "store/store.h"

struct daemon_state {
	struct server srv;
	struct relay_pool *pool;
	struct gateway *gw;             /* policy + S/MIME around the pool */
	SSL_CTX *client_ctx;
	struct config **retired;        /* configs sessions may still point into */
	int nretired;
	int exiting;
};

static const struct timeval drain_deadline = { 120, 0 };

static void
usage(void)
{
	fprintf(stderr, "usage: smrelayd -c FILE [-f] [-n] [-v]\n");
	exit(2);
}

/* Create data_dir and its tmp/ (bodies that spill) if missing. */
static int
prepare_data_dir(const struct config *cfg, char *err, size_t errlen)
{
	char *tmp;

	if (mkdir(cfg->data_dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: data_dir %s: %s", cfg->path,
		    cfg->data_dir, strerror(errno));
		return -1;
	}
	tmp = xasprintf("%s/tmp", cfg->data_dir);
	if (mkdir(tmp, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s: %s", cfg->path, tmp,
		    strerror(errno));
		free(tmp);
		return -1;
	}
	if (access(tmp, W_OK) == -1) {
		snprintf(err, errlen, "%s: %s: %s", cfg->path, tmp,
		    strerror(errno));
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* Open (creating or migrating) the database once, to fail early. */
static int
check_store(const struct config *cfg, char *err, size_t errlen)
{
	char why[512];
	struct spooldb *sp;
	struct store *st;

	st = store_open(cfg->data_dir, why, sizeof(why));
	if (st == NULL) {
		snprintf(err, errlen, "%s: database: %s", cfg->path, why);
		return -1;
	}
	store_close(st);
	/* and the spool's (no recovery here: a running daemon may own it) */
	if ((sp = spooldb_open(cfg->data_dir, 0, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s: spool: %s", cfg->path, why);
		return -1;
	}
	spooldb_close(sp);
	return 0;
}

/* Build both TLS contexts for a config; -1 with err set. */
static int
load_tls(const struct config *cfg, SSL_CTX **server, SSL_CTX **client,
    char *err, size_t errlen)
{
	*server = NULL;
	*client = NULL;
	if (cfg->tls_cert_file != NULL) {
		*server = tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file,
		    err, errlen);
		if (*server == NULL)
			return -1;
	}
	if (cfg->relay_tls != RELAY_TLS_NONE) {
		*client = tls_client_ctx(cfg, err, errlen);
		if (*client == NULL) {
			SSL_CTX_free(*server);
			*server = NULL;
			return -1;
		}
	}
	return 0;
}

/* Everything is drained after SIGTERM: leave the loop. */
static void
on_idle(struct server *srv)
{
	log_info("all sessions finished, exiting");
	event_base_loopexit(srv->base, NULL);
}

/* SIGHUP: re-read the config; keep the old one on error. */
static void
reload(struct daemon_state *d)
{
	char err[1024];
	struct config *ncfg;
	SSL_CTX *sctx, *cctx;

	ncfg = config_load(d->srv.cfg->path, err, sizeof(err));
	if (ncfg == NULL) {
		log_warnx("reload failed, keeping the running config: %s", err);
		return;
	}
	if (load_tls(ncfg, &sctx, &cctx, err, sizeof(err)) == -1 ||
	    prepare_data_dir(ncfg, err, sizeof(err)) == -1) {
		log_warnx("reload failed, keeping the running config: %s", err);
		config_free(ncfg);
		return;
	}
	/* Live sessions point into the old config: retire it, free at exit. */
	d->retired = xreallocarray(d->retired, (size_t)d->nretired + 1,
	    sizeof(*d->retired));
	d->retired[d->nretired++] = d->srv.cfg;
	d->srv.cfg = ncfg;
	SSL_CTX_free(d->srv.tls_server);
	d->srv.tls_server = sctx;
	relay_pool_reconfigure(d->pool, ncfg, cctx);
	gateway_reconfigure(d->gw, ncfg);
	SSL_CTX_free(d->client_ctx);
	d->client_ctx = cctx;
	if (log_getlevel() != LOG_LVL_DEBUG)
		log_setlevel(ncfg->log_level);
	log_info("reloaded %s (listen changes need a restart)", ncfg->path);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	if (d->exiting) {
		log_info("second signal, exiting now");
		event_base_loopexit(d->srv.base, NULL);
		return;
	}
	d->exiting = 1;
	log_info("signal %d: draining %d session(s)", (int)sig,
	    d->srv.nsessions);
	/* Messages in flight finish; past the deadline we stop anyway (the
	 * clients of unfinished ones never got 250, so they retry). */
	event_base_loopexit(d->srv.base, &drain_deadline);
	server_drain(&d->srv);
}

int
main(int argc, char *argv[])
{
	struct daemon_state d;
	struct event *ev_term, *ev_int, *ev_hup;
	const char *path = NULL;
	char err[1024];
	int ch, foreground = 0, checkonly = 0, verbose = 0, i;

	while ((ch = getopt(argc, argv, "c:fnv")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'f': foreground = 1; break;
		case 'n': checkonly = 1; break;
		case 'v': verbose++; break;
		default: usage();
		}
	}
	if (path == NULL || optind != argc)
		usage();
	memset(&d, 0, sizeof(d));
	log_init("smrelayd", 1, LOG_LVL_INFO);
	tls_init();
	d.srv.cfg = config_load(path, err, sizeof(err));
	if (d.srv.cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (load_tls(d.srv.cfg, &d.srv.tls_server, &d.client_ctx, err,
	    sizeof(err)) == -1 || prepare_data_dir(d.srv.cfg, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		config_free(d.srv.cfg);
		return 1;
	}
	if (check_store(d.srv.cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		SSL_CTX_free(d.srv.tls_server);
		SSL_CTX_free(d.client_ctx);
		config_free(d.srv.cfg);
		return 1;
	}
	if (checkonly) {
		printf("configuration OK\n");
		SSL_CTX_free(d.srv.tls_server);
		SSL_CTX_free(d.client_ctx);
		config_free(d.srv.cfg);
		return 0;
	}
	log_init("smrelayd", foreground, verbose ? LOG_LVL_DEBUG :
	    d.srv.cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	d.srv.base = server_event_base();
	if (d.srv.base == NULL)
		fatalx("event_base_new failed");
	d.pool = relay_pool_new(d.srv.base, d.srv.cfg, d.client_ctx);
	d.srv.on_idle = on_idle;
	d.srv.tmpdir = xasprintf("%s/tmp", d.srv.cfg->data_dir);
	if (server_listen(&d.srv, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return 1;
	}
	if (!foreground && daemon(0, 0) == -1)
		fatal("daemon");
	if (!foreground)
		event_reinit(d.srv.base);
	/* After daemon(): the worker threads would not survive the fork. */
	d.gw = gateway_new(d.srv.base, &relay_delivery_ops, d.pool,
	    d.srv.cfg, d.srv.tmpdir, 0, err, sizeof(err));
	if (d.gw == NULL) {
		log_warnx("%s", err);
		return 1;
	}
	d.srv.ops = &gateway_delivery_ops;
	d.srv.ops_ctx = d.gw;
	ev_term = evsignal_new(d.srv.base, SIGTERM, signal_cb, &d);
	ev_int = evsignal_new(d.srv.base, SIGINT, signal_cb, &d);
	ev_hup = evsignal_new(d.srv.base, SIGHUP, signal_cb, &d);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	log_info("smrelayd %s started hostname=%s relay=%s:%s relay_tls=%d",
	    PACKAGE_VERSION, d.srv.cfg->hostname, d.srv.cfg->relay_host ?
	    d.srv.cfg->relay_host : "mx", d.srv.cfg->relay_port ?
	    d.srv.cfg->relay_port : "25", (int)d.srv.cfg->relay_tls);
	event_base_dispatch(d.srv.base);

	log_info("exiting messages=%llu", d.srv.nmessages);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	server_close_listeners(&d.srv);
	gateway_free(d.gw);
	relay_pool_free(d.pool);
	event_base_free(d.srv.base);
	SSL_CTX_free(d.srv.tls_server);
	SSL_CTX_free(d.client_ctx);
	free((char *)d.srv.tmpdir);
	for (i = 0; i < d.nretired; i++)
		config_free(d.retired[i]);
	free(d.retired);
	config_free(d.srv.cfg);
	return 0;
}
