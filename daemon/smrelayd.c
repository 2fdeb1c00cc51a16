/* smrelayd.c: the daemon: reads the config, builds the subsystems in
 * order (listeners, the relay pool, then the store, certificate cache,
 * spool, queue, workers and the gateway that uses them), owns the event
 * base and the signals, and frees it all in reverse. */
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
#include "proto/proto.h"
#include "store/store.h"

struct daemon_state {
	struct event_base *base;
	struct config *cfg;             /* the running one */
	SSL_CTX *tls_server;            /* STARTTLS; NULL without a cert */
	char *tmpdir;                   /* data_dir/tmp: bodies that spill */
	struct server *srv;
	struct relay_pool *pool;
	/* built in this order after daemon(), freed in reverse */
	struct store *st;               /* the loop's connection: the only
					 * one that writes */
	struct certcache *cc;
	struct spool *spool;
	struct queue *queue;
	struct workers *workers;        /* each with its own connection */
	struct gateway *gw;             /* policy + S/MIME around the pool */
	char *data_dir;                 /* the workers' (started with it) */
	SSL_CTX *client_ctx;
	struct config **retired;        /* configs sessions may still point into */
	int nretired;
	int exiting;
	struct event *ev_term, *ev_int, *ev_hup;
};

/* The command line. */
struct daemon_opts {
	const char *path;
	int foreground, checkonly, verbose;
};

static const struct timeval drain_deadline = { 120, 0 };

#define SYNOPSIS "usage: smrelayd -c FILE [-f] [-n] [-v]\n" \
	"       smrelayd -h | --version\n"

/* Print the synopsis and exit 2. */
static void
usage(void)
{
	fprintf(stderr, SYNOPSIS);
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
	struct keyfile *kf;

	st = store_open(cfg->data_dir, why, sizeof(why));
	if (st == NULL) {
		snprintf(err, errlen, "%s: database: %s", cfg->path, why);
		return -1;
	}
	store_close(st);
	/* and the key file (its mode, the passphrase) */
	if ((kf = keyfile_open(cfg->key_file, cfg->key_passphrase_file, why,
	    sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s: key_file: %s", cfg->path, why);
		return -1;
	}
	keyfile_close(kf);
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
on_idle(void *arg)
{
	struct daemon_state *d = arg;

	log_info("all sessions finished, exiting");
	event_base_loopexit(d->base, NULL);
}

/* SIGHUP: re-read the config; keep the old one on error. */
static void
reload(struct daemon_state *d)
{
	char err[1024];
	struct config *ncfg;
	SSL_CTX *sctx, *cctx;

	ncfg = config_load(d->cfg->path, err, sizeof(err));
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
	d->retired[d->nretired++] = d->cfg;
	d->cfg = ncfg;
	server_reconfigure(d->srv, ncfg, sctx);
	SSL_CTX_free(d->tls_server);
	d->tls_server = sctx;
	relay_pool_reconfigure(d->pool, ncfg, cctx);
	queue_reconfigure(d->queue, ncfg);
	gateway_reconfigure(d->gw, ncfg);
	SSL_CTX_free(d->client_ctx);
	d->client_ctx = cctx;
	if (log_getlevel() != LOG_LVL_DEBUG)
		log_setlevel(ncfg->log_level);
	log_info("reloaded %s (listen changes need a restart)", ncfg->path);
}

/* SIGHUP reloads; SIGTERM and SIGINT drain, a second one exits now. */
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
		event_base_loopexit(d->base, NULL);
		return;
	}
	d->exiting = 1;
	log_info("signal %d: draining %d session(s)", (int)sig,
	    server_sessions(d->srv));
	/* Messages in flight finish; past the deadline we stop anyway (the
	 * clients of unfinished ones never got 250, so they retry). */
	event_base_loopexit(d->base, &drain_deadline);
	server_drain(d->srv);
}

/* The options; usage() on anything else. */
static void
parse_args(int argc, char *argv[], struct daemon_opts *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("smrelayd %s\n", PACKAGE_VERSION);
		exit(0);
	}
	if (argc == 2 && strcmp(argv[1], "--help") == 0)
		argv[1] = "-h";
	while ((ch = getopt(argc, argv, "c:fhnv")) != -1) {
		switch (ch) {
		case 'h': printf(SYNOPSIS); exit(0);
		case 'c': o->path = optarg; break;
		case 'f': o->foreground = 1; break;
		case 'n': o->checkonly = 1; break;
		case 'v': o->verbose++; break;
		default: usage();
		}
	}
	if (o->path == NULL || optind != argc)
		usage();
}

/* Free what check_config() made (after -n, or when it failed). */
static void
config_state_free(struct daemon_state *d)
{
	SSL_CTX_free(d->tls_server);
	SSL_CTX_free(d->client_ctx);
	config_free(d->cfg);
}

/* Load the config, its TLS contexts, data_dir and the databases, before
 * anything starts: -1 after saying why on stderr. */
static int
check_config(struct daemon_state *d, const char *path)
{
	char err[1024];

	d->cfg = config_load(path, err, sizeof(err));
	if (d->cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (load_tls(d->cfg, &d->tls_server, &d->client_ctx, err,
	    sizeof(err)) == -1 || prepare_data_dir(d->cfg, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		config_state_free(d);
		return -1;
	}
	if (check_store(d->cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		config_state_free(d);
		return -1;
	}
	return 0;
}

/* Worker thread start: its own store connection, for reads. */
static void *
worker_init(void *arg)
{
	const char *data_dir = arg;
	char err[512];
	struct store *st;

	if ((st = store_open(data_dir, err, sizeof(err))) == NULL)
		log_warnx("worker: %s", err);
	return st;
}

/* Worker thread end: close its connection. */
static void
worker_fini(void *tctx)
{
	store_close(tctx);
}

/* Stop the threads (their last callbacks use the gateway and the queue),
 * then free the gateway and the subsystems in reverse order. */
static void
subsystems_free(struct daemon_state *d)
{
	workers_free(d->workers);
	spool_free(d->spool);
	gateway_free(d->gw);
	queue_free(d->queue);
	certcache_free(d->cc);
	if (d->st != NULL)
		store_close(d->st);
	free(d->data_dir);
	d->workers = NULL;
	d->spool = NULL;
	d->gw = NULL;
	d->queue = NULL;
	d->cc = NULL;
	d->st = NULL;
	d->data_dir = NULL;
}

/*
 * The store (the loop's connection), the certificate cache, the spool
 * (recovered) and its queue (resumed), the worker threads (each with its
 * own connection) and the gateway around the relay pool, in that order.
 * After daemon(): threads would not survive the fork.  -1 with err set.
 */
static int
subsystems_new(struct daemon_state *d, char *err, size_t errlen)
{
	const struct config *cfg = d->cfg;
	struct gateway_parts parts;
	struct keyfile *kf;
	struct spool_entry **loaded = NULL;
	size_t nloaded = 0;

	d->data_dir = xstrdup(cfg->data_dir);
	if ((d->st = store_open(d->data_dir, err, errlen)) == NULL)
		goto fail;
	d->cc = certcache_new();
	certcache_set_revocation(d->cc, cfg->revocation);
	/* private keys: the key file (the keys an older version kept in the
	 * store moved there first); the key set owns it */
	if ((kf = keyfile_open(cfg->key_file, cfg->key_passphrase_file, err,
	    errlen)) == NULL || store_keys_migrate(d->st, kf, err,
	    errlen) == -1) {
		keyfile_close(kf);
		goto fail;
	}
	keys_set_keyfile(certcache_keys(d->cc), kf);
	if (certcache_sync(d->cc, d->st, 1, err, errlen) == -1)
		goto fail;
	if ((d->spool = spool_new(d->base, d->data_dir, &loaded,
	    &nloaded, err, errlen)) == NULL)
		goto fail;
	d->queue = queue_new(d->base, d->spool, loaded, nloaded,
	    &relay_delivery_ops, d->pool, cfg);
	cms_init();
	d->workers = workers_new(d->base, 0, worker_init, worker_fini,
	    d->data_dir);
	parts.st = d->st;
	parts.cc = d->cc;
	parts.spool = d->spool;
	parts.queue = d->queue;
	parts.workers = d->workers;
	d->gw = gateway_new(d->base, &relay_delivery_ops, d->pool, cfg,
	    d->tmpdir, &parts);
	server_set_delivery(d->srv, &gateway_delivery_ops, d->gw);
	return 0;
 fail:
	subsystems_free(d);
	return -1;
}

/* Catch SIGTERM, SIGINT and SIGHUP on the loop. */
static void
signals_add(struct daemon_state *d)
{
	d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	evsignal_add(d->ev_term, NULL);
	evsignal_add(d->ev_int, NULL);
	evsignal_add(d->ev_hup, NULL);
}

/* Free everything after the loop ended, the reverse of main(). */
static void
daemon_free(struct daemon_state *d)
{
	int i;

	event_free(d->ev_term);
	event_free(d->ev_int);
	event_free(d->ev_hup);
	server_close_listeners(d->srv);
	subsystems_free(d);
	server_free(d->srv);
	relay_pool_free(d->pool);
	event_base_free(d->base);
	SSL_CTX_free(d->tls_server);
	SSL_CTX_free(d->client_ctx);
	free(d->tmpdir);
	for (i = 0; i < d->nretired; i++)
		config_free(d->retired[i]);
	free(d->retired);
	config_free(d->cfg);
}

/* The listeners of the config, bound before daemon() so that a port in
 * use fails the start; the backend is set once it is built. */
static int
server_start(struct daemon_state *d, char *err, size_t errlen)
{
	struct server_params sp;

	memset(&sp, 0, sizeof(sp));
	sp.base = d->base;
	sp.cfg = d->cfg;
	sp.tls_server = d->tls_server;
	sp.tmpdir = d->tmpdir;
	sp.on_idle = on_idle;
	sp.arg = d;
	d->srv = server_new(&sp);
	return server_listen(d->srv, err, errlen);
}

/* Check the config, listen, detach, build the subsystems, run the loop. */
int
main(int argc, char *argv[])
{
	struct daemon_state d;
	struct daemon_opts o;
	char err[1024];

	parse_args(argc, argv, &o);
	memset(&d, 0, sizeof(d));
	log_init("smrelayd", 1, LOG_LVL_INFO);
	tls_init();
	if (check_config(&d, o.path) == -1)
		return 1;
	if (o.checkonly) {
		printf("configuration OK\n");
		config_state_free(&d);
		return 0;
	}
	log_init("smrelayd", o.foreground, o.verbose ? LOG_LVL_DEBUG :
	    d.cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	d.base = server_event_base();
	if (d.base == NULL)
		fatalx("event_base_new failed");
	d.pool = relay_pool_new(d.base, d.cfg, d.client_ctx);
	d.tmpdir = xasprintf("%s/tmp", d.cfg->data_dir);
	if (server_start(&d, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return 1;
	}
	if (!o.foreground && daemon(0, 0) == -1)
		fatal("daemon");
	if (!o.foreground)
		event_reinit(d.base);
	if (subsystems_new(&d, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return 1;
	}
	signals_add(&d);
	log_info("smrelayd %s started hostname=%s relay=%s:%s relay_tls=%d",
	    PACKAGE_VERSION, d.cfg->hostname, d.cfg->relay_host ?
	    d.cfg->relay_host : "mx", d.cfg->relay_port ?
	    d.cfg->relay_port : "25", (int)d.cfg->relay_tls);
	event_base_dispatch(d.base);

	log_info("exiting messages=%llu", server_messages(d.srv));
	daemon_free(&d);
	return 0;
}
