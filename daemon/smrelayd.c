/*
 * smrelayd.c: the daemon.  The parent reads and checks the config, binds
 * the listeners and then only supervises (privsep.h): it forks, for each
 * of the `processes` network processes, a key process (daemon/keyd: every
 * private key, no network input) and the network process, restarts either
 * when it dies, and passes a new key process's socket to the running
 * network process.  With several, each network process has its own
 * listening sockets on the same addresses (SO_REUSEPORT: the kernel
 * spreads the connections), its own share of the spool and queue runner,
 * and they count in the same shared metrics.  A network process
 * drops to `user`, builds the subsystems in order (the store, certificate
 * cache, spool, queue, workers and the gateway that uses them), owns the
 * event loop and frees it all in reverse.
 */
#include "autoconfig.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/base/base.h"
#include "daemon/keyd/keyd.h"
#include "daemon/smime/smime.h"
#include "lib/lib.h"
#include "daemon/relay/relay.h"
#include "daemon/smtpd/smtpd.h"
#include "daemon/queue/queue.h"
#include "proto/proto.h"
#include "store/store.h"

/*
 * Liveness, in memory the parent shares with every network process: each
 * one's loop stamps its slot every second (and whether its key process
 * answers).  The parent kills a network process whose loop has not run for
 * LIVE_WEDGED_S (it serves nobody; the parent restarts it, and what it had
 * accepted is in the spool), and asks for a new key process when one has
 * not answered for LIVE_KEYD_S; process 0's /healthz says either after
 * LIVE_STALE_S.
 */
struct live {
	_Atomic uint64_t beat;          /* mono ms of the loop's last stamp */
	_Atomic uint64_t keyd_down;     /* mono ms since the key process has
					   not answered; 0: it answers */
};
#define LIVE_BEAT_MS	1000
#define LIVE_STALE_S	5
#define LIVE_WEDGED_S	30
#define LIVE_KEYD_S	30

struct daemon_state {
	struct event_base *base;
	struct config *cfg;             /* the running one */
	SSL_CTX *tls_server;            /* STARTTLS; NULL without a cert */
	char *tmpdir;                   /* data_dir/tmp: bodies that spill */
	struct server *srv;             /* this network process's */
	struct server **srvs;           /* the parent: one per process */
	int nproc;                      /* network processes (`processes`) */
	int index;                      /* this one's: its spool share */
	struct relay_pool *pool;
	/* built in this order after daemon(), freed in reverse */
	struct store *st;               /* the first load's connection,
					 * closed before the loop runs */
	struct certcache *cc;
	struct spool *spool;
	struct queue *queue;
	struct workers *workers;        /* each with its own connection */
	struct gateway *gw;             /* policy + S/MIME around the pool */
	char *data_dir;                 /* the workers' (started with it) */
	char *database;                 /* the same: their store's */
	SSL_CTX *client_ctx;
	struct config **retired;        /* configs sessions may still point into */
	int nretired;
	int exiting;
	struct event *ev_term, *ev_int, *ev_hup;
	/* the processes */
	int foreground;
	int privsep;                    /* started as root: drop to uid */
	uid_t uid;
	gid_t gid;
	struct keyd_client *kc;         /* network process: the key process */
	struct event *ev_keyd;          /* its socket, for the loop's waits */
	pid_t parent;
	struct event *ev_ctl;
	struct live *live;              /* shared: one per network process */
	struct event *ev_beat;
	uint64_t keyd_asked;            /* when we last asked for a new one */
	/* metrics_listen and the control socket: bound by the parent */
	int metrics_fd, stats_fd;
	char *stats_path;
	struct metrics_srv *msrv;
};

/* The command line. */
struct daemon_opts {
	const char *path;
	int foreground, checkonly, verbose;
};

static const struct timeval drain_deadline = { 120, 0 };

/* How long the network process waits for the key process: TLS handshakes
 * wait on the loop (keyd_client.h), S/MIME work on its worker. */
#define KEYD_NET_TIMEOUT_MS	3000

#define SYNOPSIS "usage: smrelayd [-c FILE] [-f] [-n] [-v]\n" \
	"       smrelayd -h | --version\n" \
	"default config: " SMRELAY_CONF "\n"

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
	int up;

	/* PostgreSQL away: start anyway (recipients get 451 4.3.0 until a
	 * policy is loaded, /healthz says why); a bad URI or a schema of
	 * another version is an error now */
	st = store_open_db_lazy(cfg->database, cfg->data_dir, &up, why,
	    sizeof(why));
	if (st == NULL) {
		snprintf(err, errlen, "%s: database: %s", cfg->path, why);
		return -1;
	}
	if (!up)
		log_warnx("%s: database not reachable, starting without it "
		    "(mail waits for a policy: 451 4.3.0): %s", cfg->path, why);
	/* and the key file (its mode, the passphrase), where the keys an
	 * older version kept in the store move now (when it answers) */
	if ((kf = keyfile_open(cfg->key_file, cfg->key_passphrase_file, why,
	    sizeof(why))) == NULL || (up && store_keys_migrate(st, kf, why,
	    sizeof(why)) == -1)) {
		snprintf(err, errlen, "%s: key_file: %s", cfg->path, why);
		keyfile_close(kf);
		store_close(st);
		return -1;
	}
	keyfile_close(kf);
	store_close(st);
	/* and the spool's (no recovery here: a running daemon may own it) */
	if ((sp = spooldb_open(cfg->data_dir, 0, 0, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s: spool: %s", cfg->path, why);
		return -1;
	}
	spooldb_close(sp);
	return 0;
}

/* The server context with the key process's handle on the TLS key. */
static SSL_CTX *
server_ctx_keyd(const struct config *cfg, struct keyd_client *kc,
    char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	SSL_CTX *ctx = NULL;
	X509 *cert;

	if ((cert = tls_leaf_cert(cfg->tls_cert_file, err, errlen)) != NULL &&
	    (pkey = keyd_client_pkey(kc, cert, err, errlen)) != NULL)
		ctx = tls_server_ctx_pkey(cfg->tls_cert_file, pkey,
		    cfg->tls_ticket_rotate, err, errlen);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	return ctx;
}

/*
 * Build the TLS contexts of a config; -1 with err set.  The server's key
 * is a handle on the key process kc; without kc it is read from
 * tls_key_file (smrelayd -n), or the server context is not made at all
 * when server is NULL (the parent, which never holds a key).
 */
static int
load_tls(const struct config *cfg, struct keyd_client *kc, SSL_CTX **server,
    SSL_CTX **client, char *err, size_t errlen)
{
	SSL_CTX *sctx = NULL;

	*client = NULL;
	if (cfg->tls_cert_file != NULL && server != NULL) {
		sctx = kc != NULL ? server_ctx_keyd(cfg, kc, err, errlen) :
		    tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file,
		    cfg->tls_ticket_rotate, err, errlen);
		if (sctx == NULL)
			return -1;
	}
	if (tls_client_wanted(cfg)) {
		*client = tls_client_ctx(cfg, err, errlen);
		if (*client == NULL) {
			SSL_CTX_free(sctx);
			return -1;
		}
	}
	if (server != NULL)
		*server = sctx;
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
	if (load_tls(ncfg, d->kc, &sctx, &cctx, err, sizeof(err)) == -1 ||
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
	if (config_processes(ncfg) != d->nproc && d->index == 0)
		log_warnx("processes: %d now, %d in %s: takes a restart",
		    d->nproc, config_processes(ncfg), ncfg->path);
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
	o->path = SMRELAY_CONF;
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
	if (optind != argc)
		usage();
}

/* Started as root: the user the network process becomes must exist. */
static int
check_user(struct daemon_state *d, char *err, size_t errlen)
{
	char why[512];

	if (geteuid() != 0)
		return 0;
	if (privsep_user(d->cfg->user, &d->uid, &d->gid, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", d->cfg->path, why);
		return -1;
	}
	d->privsep = 1;
	return 0;
}

/* Free what check_config() made (after -n, or when it failed). */
static void
config_state_free(struct daemon_state *d)
{
	SSL_CTX_free(d->tls_server);
	SSL_CTX_free(d->client_ctx);
	config_free(d->cfg);
}

/* A problem smrelayd -n found: one line on stderr. */
static void
problem(int *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(int *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	(*n)++;
}

/* -n: a file the daemon would read must be a readable regular file. */
static void
check_readable(const struct config *cfg, const char *key, const char *file,
    int *n)
{
	struct stat sb;

	if (file == NULL)
		return;
	if (stat(file, &sb) == -1 || access(file, R_OK) == -1)
		problem(n, "%s: %s %s: %s", cfg->path, key, file,
		    strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		problem(n, "%s: %s %s: not a regular file", cfg->path, key,
		    file);
}

/*
 * -n past the file itself, writing nothing: the TLS certificate and key
 * (that they match), the CA file, the user, that data_dir can be made or
 * used by it, that the databases there open and are not newer than this
 * program, and the key file's mode.  Every problem is one line on stderr;
 * how many there were.
 */
static int
check_only(struct daemon_state *d)
{
	const struct config *cfg = d->cfg;
	char err[1024], *parent, *slash;
	struct stat sb;
	int n = 0;

	if (load_tls(cfg, NULL, &d->tls_server, &d->client_ctx, err,
	    sizeof(err)) == -1)
		problem(&n, "%s: TLS: %s", cfg->path, err);
	check_readable(cfg, "relay_tls_ca_file", cfg->relay_tls_ca_file, &n);
	check_readable(cfg, "key_passphrase_file", cfg->key_passphrase_file,
	    &n);
	if (check_user(d, err, sizeof(err)) == -1)
		problem(&n, "%s", err);
	if (stat(cfg->data_dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			problem(&n, "%s: data_dir %s: not a directory",
			    cfg->path, cfg->data_dir);
		else if (d->privsep && privsep_reachable(cfg->data_dir,
		    d->uid, d->gid, err, sizeof(err)) == -1)
			problem(&n, "%s: data_dir: %s", cfg->path, err);
		else if (!d->privsep && access(cfg->data_dir, W_OK | X_OK) ==
		    -1)
			problem(&n, "%s: data_dir %s: %s", cfg->path,
			    cfg->data_dir, strerror(errno));
	} else {
		/* made at start: its parent must take it */
		parent = xstrdup(cfg->data_dir);
		if ((slash = strrchr(parent, '/')) != NULL && slash != parent)
			*slash = '\0';
		else if (slash != NULL)
			slash[1] = '\0';
		if (errno != ENOENT || access(parent, W_OK | X_OK) == -1)
			problem(&n, "%s: data_dir %s cannot be made: %s",
			    cfg->path, cfg->data_dir, strerror(errno));
		free(parent);
	}
	if (store_check_db(cfg->database, cfg->data_dir, err,
	    sizeof(err)) == -1)
		problem(&n, "%s: database: %s", cfg->path, err);
	if (keyfile_check(cfg->key_file, cfg->key_passphrase_file, err,
	    sizeof(err)) == -1)
		problem(&n, "%s: key_file: %s", cfg->path, err);
	return n;
}

/* Load the config, its TLS contexts, data_dir and the databases, before
 * anything starts: -1 after saying why on stderr.  Only with checkonly is
 * the TLS key read here; else the key process checks it (keyd_check). */
static int
check_config(struct daemon_state *d, const char *path, int checkonly)
{
	char err[4096];

	d->cfg = config_load(path, err, sizeof(err));
	if (d->cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (checkonly) {
		if (check_only(d) == 0)
			return 0;
		config_state_free(d);
		return -1;
	}
	if (load_tls(d->cfg, NULL, checkonly ? &d->tls_server : NULL,
	    &d->client_ctx, err, sizeof(err)) == -1 ||
	    prepare_data_dir(d->cfg, err, sizeof(err)) == -1 ||
	    check_store(d->cfg, err, sizeof(err)) == -1 ||
	    check_user(d, err, sizeof(err)) == -1) {
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
	const struct daemon_state *d = arg;
	char err[512];
	struct store *st;
	int up;

	/* PostgreSQL away: a store that connects at its first use */
	if ((st = store_open_db_lazy(d->database, d->data_dir, &up, err,
	    sizeof(err))) == NULL)
		log_warnx("worker: %s", err);
	return st;
}

/* Worker thread end: close its connection. */
static void
worker_fini(void *tctx)
{
	store_close(tctx);
}

/*
 * Process 0: the shares of the spool no process runs any more (the admin
 * lowered `processes`) move into share 0 before its queue starts, so each
 * message is still tried by one queue runner.  A share that cannot be
 * moved fails the start rather than risk a message delivered twice.
 */
static int
spool_take_over(struct daemon_state *d, char *err, size_t errlen)
{
	struct spooldb *to = NULL, *from;
	int shares[SPOOL_SHARES_MAX], i, n;
	size_t moved, left;

	if ((n = spooldb_shares(d->data_dir, shares, SPOOL_SHARES_MAX)) == -1) {
		snprintf(err, errlen, "%s: %s", d->data_dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (shares[i] < d->nproc)
			continue;
		if (to == NULL && (to = spooldb_open(d->data_dir, 0, 0, err,
		    errlen)) == NULL)
			return -1;
		if ((from = spooldb_open(d->data_dir, shares[i], 1, err,
		    errlen)) == NULL ||
		    spooldb_take_over(to, from, &moved, &left, err,
		    errlen) == -1) {
			spooldb_close(from);
			spooldb_close(to);
			return -1;
		}
		spooldb_close(from);
		log_info("spool share %d (no process %d with processes=%d): "
		    "%zu message(s) taken over%s", shares[i], shares[i],
		    d->nproc, moved, left ? ", some left (no body)" : "");
		if (left == 0 && spooldb_remove_share(d->data_dir,
		    shares[i]) == -1)
			log_warn("spool share %d: remove", shares[i]);
	}
	spooldb_close(to);
	return 0;
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
	free(d->database);
	d->workers = NULL;
	d->spool = NULL;
	d->gw = NULL;
	d->queue = NULL;
	d->cc = NULL;
	d->st = NULL;
	d->data_dir = NULL;
	d->database = NULL;
}

/*
 * The store (for the first load only), the certificate cache, the spool
 * (recovered) and its queue (resumed), the worker threads (each with its
 * own connection) and the gateway around the relay pool, in that order.
 * After daemon(): threads would not survive the fork.  -1 with err set.
 */
static int
subsystems_new(struct daemon_state *d, char *err, size_t errlen)
{
	const struct config *cfg = d->cfg;
	struct gateway_parts parts;
	struct spool_entry **loaded = NULL;
	size_t nloaded = 0;
	int ncpu, up;

	d->data_dir = xstrdup(cfg->data_dir);
	d->database = xstrdup(cfg->database);
	if ((d->st = store_open_db_lazy(d->database, d->data_dir, &up, err,
	    errlen)) == NULL)
		goto fail;
	d->cc = certcache_new();
	if (d->kc != NULL)
		keys_set_keyd(certcache_keys(d->cc), d->kc);
	certcache_set_revocation(d->cc, cfg->revocation);
	/* before the loop runs; the store away: the store thread retries,
	 * and recipients get 451 4.3.0 until a policy is loaded */
	if (certcache_sync(d->cc, d->st, 1, err, errlen) == -1)
		log_warnx("policy/certificates not loaded: %s", err);
	/* the loop asks no store: the store thread (storeq.h) and the
	 * workers have their own connections */
	store_close(d->st);
	d->st = NULL;
	if (d->index == 0 && spool_take_over(d, err, errlen) == -1)
		goto fail;
	if ((d->spool = spool_new(d->base, d->data_dir, d->index, &loaded,
	    &nloaded, err, errlen)) == NULL)
		goto fail;
	d->queue = queue_new(d->base, d->spool, loaded, nloaded,
	    &relay_delivery_ops, d->pool, cfg);
	cms_init();
	/* two per CPU (the network processes share them): a worker waiting
	 * on the key process for a signature or an unwrap leaves its CPU to
	 * another (docs/BENCHMARKS.md) */
	ncpu = workers_cpus() / d->nproc;
	d->workers = workers_new(d->base, 2 * (ncpu > 1 ? ncpu : 1),
	    worker_init, worker_fini, d);
	parts.database = d->database;
	parts.data_dir = d->data_dir;
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
	privsep_signals_release();
}

/* Free everything after the loop ended, the reverse of main(). */
static void
daemon_free(struct daemon_state *d)
{
	int i;

	if (d->ev_term != NULL) {
		event_free(d->ev_term);
		event_free(d->ev_int);
		event_free(d->ev_hup);
	}
	if (d->ev_ctl != NULL)
		event_free(d->ev_ctl);
	if (d->ev_beat != NULL)
		event_free(d->ev_beat);
	if (d->ev_keyd != NULL)
		event_free(d->ev_keyd);
	metrics_srv_free(d->msrv);
	server_close_listeners(d->srv);
	subsystems_free(d);
	keyd_client_free(d->kc);
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
 * use fails the start, a set for each network process; the backend is
 * set once it is built. */
static int
server_start(struct daemon_state *d, char *err, size_t errlen)
{
	struct server_params sp;
	int i;

	memset(&sp, 0, sizeof(sp));
	sp.base = d->base;
	sp.cfg = d->cfg;
	sp.tls_server = d->tls_server;
	sp.tmpdir = d->tmpdir;
	sp.on_idle = on_idle;
	sp.arg = d;
	sp.reuseport = d->nproc > 1;
	d->srvs = xcalloc((size_t)d->nproc, sizeof(*d->srvs));
	for (i = 0; i < d->nproc; i++) {
		d->srvs[i] = server_new(&sp);
		if (server_listen(d->srvs[i], err, errlen) == -1)
			return -1;
	}
	d->srv = d->srvs[0];
	return 0;
}

/* The network process's client of the key process on kfd (NULL with
 * errno, kfd left open). */
static struct keyd_client *
net_keyd(int kfd)
{
	struct keyd_client *kc;

	if ((kc = keyd_client_new(kfd)) != NULL)
		keyd_client_set_timeout(kc, KEYD_NET_TIMEOUT_MS);
	return kc;
}

/* The key process answered: read it for the loop's waits (a TLS
 * handshake's signature) when no worker thread is reading. */
static void
keyd_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_state *d = arg;

	(void)fd;
	(void)what;
	if (keyd_client_poll(d->kc) == -1)
		event_del(d->ev_keyd);          /* gone: EOF stays readable */
}

/* Watch the current key process client's socket. */
static void
keyd_watch(struct daemon_state *d)
{
	if (d->ev_keyd != NULL)
		event_free(d->ev_keyd);
	d->ev_keyd = NULL;
	if (keyd_client_fd(d->kc) == -1)
		return;
	if ((d->ev_keyd = event_new(d->base, keyd_client_fd(d->kc),
	    EV_READ | EV_PERSIST, keyd_ready_cb, d)) == NULL ||
	    event_add(d->ev_keyd, NULL) == -1)
		fatalx("event_new");
}

/* Network process: the parent passes a new key process's socket, or is
 * gone (EOF: drain and exit, as at SIGTERM). */
static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_state *d = arg;
	struct keyd_client *kc;
	SSL_CTX *sctx = NULL;
	char err[512];
	int kfd;

	(void)what;
	if ((kfd = privsep_recv_fd(fd)) <= 0) {
		log_warnx("the parent process is gone: stopping");
		event_del(d->ev_ctl);
		if (!d->exiting)
			signal_cb(SIGTERM, 0, d);
		return;
	}
	if ((kc = net_keyd(kfd)) == NULL) {
		log_warn("key process: client");
		close(kfd);
		return;
	}
	keys_set_keyd(certcache_keys(d->cc), kc);
	gateway_reload(d->gw);
	if (d->cfg->tls_cert_file != NULL &&
	    (sctx = server_ctx_keyd(d->cfg, kc, err, sizeof(err))) == NULL)
		log_warnx("key process: TLS: %s", err);
	if (sctx != NULL) {
		server_reconfigure(d->srv, d->cfg, sctx);
		SSL_CTX_free(d->tls_server);
		d->tls_server = sctx;
	}
	keyd_client_free(d->kc);
	d->kc = kc;
	keyd_watch(d);
	log_info("key process restarted: keys reconnected");
}

/* Before a rendering: the expiry of our certificates (the TLS one, the
 * S/MIME identities in memory). */
static void
metrics_refresh(void *arg)
{
	struct daemon_state *d = arg;
	struct store_key **keys;
	size_t i, n = 0;

	metrics_expiry_reset();
	if (d->tls_server != NULL)
		metrics_expiry_add("tls", SSL_CTX_get0_certificate(
		    d->tls_server));
	if (d->cc == NULL)
		return;
	keys = keys_decrypting(certcache_keys(d->cc), &n);
	for (i = 0; i < n; i++)
		metrics_expiry_add("key", keys[i]->cert);
	store_keys_free(keys);
}

/* The monotonic clock in milliseconds, as the live stamps hold it. */
static uint64_t
live_now(void)
{
	return (uint64_t)(mono_now() * 1000);
}

/* /healthz: whether every network process's loop runs and every key
 * process answers (struct live). */
static int
live_health(struct daemon_state *d, char *why, size_t len)
{
	uint64_t now = live_now(), t;
	int i;

	if (d->live == NULL)
		return 0;
	for (i = 0; i < d->nproc; i++) {
		t = atomic_load(&d->live[i].beat);
		if (t != 0 && now > t + LIVE_STALE_S * 1000) {
			snprintf(why, len, "network process %d: its event "
			    "loop has not run for %llu s", i,
			    (unsigned long long)((now - t) / 1000));
			return -1;
		}
		t = atomic_load(&d->live[i].keyd_down);
		if (t != 0 && now > t + LIVE_STALE_S * 1000) {
			snprintf(why, len, "key process %d: not answering "
			    "for %llu s", i,
			    (unsigned long long)((now - t) / 1000));
			return -1;
		}
	}
	return 0;
}

/* Network process, every LIVE_BEAT_MS: stamp the slot; note since when
 * the key process has not answered, and after LIVE_KEYD_S ask the parent
 * for a new one ('K' on the control socket), once per LIVE_KEYD_S. */
static void
beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_state *d = arg;
	struct live *l = &d->live[d->index];
	uint64_t now = live_now(), down;

	(void)fd;
	(void)what;
	atomic_store(&l->beat, now);
	if (keys_usable(certcache_keys(d->cc))) {
		atomic_store(&l->keyd_down, 0);
		return;
	}
	if ((down = atomic_load(&l->keyd_down)) == 0) {
		atomic_store(&l->keyd_down, now);
		log_warnx("key process: not answering");
		return;
	}
	if (now >= down + LIVE_KEYD_S * 1000 && now >= d->keyd_asked +
	    LIVE_KEYD_S * 1000 && !d->exiting) {
		d->keyd_asked = now;
		log_warnx("key process: not answering for %llu s: asking for "
		    "a new one", (unsigned long long)((now - down) / 1000));
		if (write(event_get_fd(d->ev_ctl), "K", 1) != 1)
			log_warn("parent");
	}
}

/* Stamp the slot from now on. */
static void
beat_start(struct daemon_state *d)
{
	static const struct timeval every = { LIVE_BEAT_MS / 1000,
	    LIVE_BEAT_MS % 1000 * 1000 };

	if (d->live == NULL)
		return;
	d->ev_beat = event_new(d->base, -1, EV_PERSIST, beat_cb, d);
	if (d->ev_beat == NULL || event_add(d->ev_beat, &every) == -1)
		fatalx("event_new");
	atomic_store(&d->live[d->index].beat, live_now());
}

/* /healthz: the SMTP listeners are open and the store and spool are
 * there (a stat and an access(), nothing that waits). */
static int
metrics_health(void *arg, char *why, size_t len)
{
	struct daemon_state *d = arg;
	struct stat st;
	char *db;
	int r = 0;

	if (d->exiting) {
		snprintf(why, len, "stopping: not accepting connections");
		return -1;
	}
	db = xasprintf("%s/%s", d->data_dir, STORE_DB_NAME);
	errno = 0;
	/* PostgreSQL: no file here (its connection state is the loop's) */
	if (!store_db_is_pg(d->database) && (stat(db, &st) == -1 ||
	    !S_ISREG(st.st_mode))) {
		snprintf(why, len, "database %s: %s", db, errno ?
		    strerror(errno) : "not a file");
		r = -1;
	} else if (access(d->tmpdir, W_OK | X_OK) == -1) {
		snprintf(why, len, "%s: %s", d->tmpdir, strerror(errno));
		r = -1;
	}
	free(db);
	if (r == 0)
		r = live_health(d, why, len);
	/* the store away: degraded with a cache (200, said in the body),
	 * unhealthy without one */
	if (r == 0 && d->gw != NULL)
		r = gateway_health(d->gw, why, len);
	return r;
}

/* Serve /metrics, /healthz and the control socket on the loop. */
static void
metrics_start(struct daemon_state *d)
{
	struct metrics_srv_params p;

	memset(&p, 0, sizeof(p));
	p.base = d->base;
	p.http_fd = d->metrics_fd;
	p.ctl_fd = d->stats_fd;
	p.refresh = metrics_refresh;
	p.health = metrics_health;
	p.arg = d;
	d->msrv = metrics_srv_new(&p);
}

/* Network process `index`: its own listeners, spool share and gauges;
 * the other processes' listeners and (but for process 0) /metrics and the
 * control socket are closed here. */
static void
net_own(struct daemon_state *d, int index)
{
	char pfx[32];
	int i;

	d->index = index;
	for (i = 0; i < d->nproc; i++)
		if (i != index)
			server_free(d->srvs[i]);
	d->srv = d->srvs[index];
	free(d->srvs);
	d->srvs = NULL;
	metrics_slot(index);
	if (d->nproc > 1) {
		snprintf(pfx, sizeof(pfx), "net[%d] ", index);
		log_prefix(pfx);
	}
	if (index == 0)
		return;
	if (d->metrics_fd != -1)
		close(d->metrics_fd);
	if (d->stats_fd != -1)
		close(d->stats_fd);
	d->metrics_fd = d->stats_fd = -1;
}

/*
 * The network process: the key process's client (the TLS key a handle on
 * it), then as `user` with no capability the subsystems and the loop.
 * The listeners were bound by the parent.  Returns the exit status.
 */
static int
net_main(struct daemon_state *d, int index, int kfd, int ctl)
{
	char err[1024];

	event_reinit(d->base);
	net_own(d, index);
	if ((d->kc = net_keyd(kfd)) == NULL)
		fatal("key process client");
	if (d->cfg->tls_cert_file != NULL && (d->tls_server =
	    server_ctx_keyd(d->cfg, d->kc, err, sizeof(err))) == NULL) {
		log_warnx("TLS: %s", err);
		return 1;
	}
	server_reconfigure(d->srv, d->cfg, d->tls_server);
	if (d->privsep && privsep_drop(d->uid, d->gid, err,
	    sizeof(err)) == -1)
		fatalx("%s", err);
	config_unprivileged();
	if (privsep_seccomp(err, sizeof(err)) == -1)
		fatalx("%s", err);
	/* A new uid cleared it: die with the parent (nothing accepted is
	 * lost, the spool has it), as a one-process daemon would. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != d->parent)
		_exit(1);
	if (subsystems_new(d, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return 1;
	}
	d->ev_ctl = event_new(d->base, ctl, EV_READ | EV_PERSIST, ctl_cb, d);
	event_add(d->ev_ctl, NULL);
	if (d->index == 0)
		metrics_start(d);
	keyd_watch(d);
	signals_add(d);
	beat_start(d);
	if (write(ctl, "R", 1) != 1)
		log_warn("parent");
	log_info("smrelayd %s started hostname=%s relay=%s:%s relay_tls=%s "
	    "routes=%d dns=%s uid=%u process=%d/%d pid=%ld", PACKAGE_VERSION,
	    d->cfg->hostname,
	    d->cfg->relay_host ? d->cfg->relay_host : "mx",
	    d->cfg->relay_host ? d->cfg->relay_port : d->cfg->relay_mx_port,
	    config_relay_tls_str(d->cfg->relay_tls), d->cfg->nroutes,
	    !config_uses_dns(d->cfg) ? "no" : d->cfg->dns_resolver ?
	    d->cfg->dns_resolver : "resolv.conf", (unsigned)geteuid(),
	    d->index, d->nproc, (long)getpid());
	event_base_dispatch(d->base);
	log_info("exiting messages=%llu", server_messages(d->srv));
	daemon_free(d);
	return 0;
}

/* The parent's view of one network process and its key process. */
struct slot {
	pid_t			 keyd, net;
	int			 ctl;           /* to the network process */
	int			 ever_ready;    /* the network process ran */
	int			 killed;        /* wedged: SIGKILL sent */
	int			 keyd_killed;   /* its key process: the same */
	double			 keyd_at, net_at;       /* last starts */
};

/* The parent's view of its children. */
struct sup {
	struct daemon_state	*d;
	struct slot		*slots;         /* one per network process */
	int			 nslots;
	int			 sigfd;
	int			 exiting;
	int			 status;        /* the parent's exit status */
};

/* A child that died within a second of its start waits a second before
 * the next: a broken key file must not make the parent spin. */
static void
backoff(double *last)
{
	if (*last != 0 && mono_now() - *last < 1)
		sleep(1);
	*last = mono_now();
}

/* In a child: the parent's signal mask and descriptors are not ours.
 * SIGHUP, SIGTERM and SIGINT stay blocked until the child's loop catches
 * them (signals_add, keyd_run): a reload sent while the child starts waits
 * for it instead of killing it. */
static void
child_setup(struct sup *s, const char *name)
{
	sigset_t held;
	int i;

	sigemptyset(&held);
	sigaddset(&held, SIGHUP);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGINT);
	sigprocmask(SIG_SETMASK, &held, NULL);
	close(s->sigfd);
	for (i = 0; i < s->nslots; i++)
		if (s->slots[i].ctl != -1)
			close(s->slots[i].ctl);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != s->d->parent)
		_exit(1);
}

/* A child's name: smrelayd-net, or smrelayd-net[i] with several. */
static void
child_name(struct sup *s, const char *what, int i, char *buf, size_t len)
{
	if (s->nslots > 1)
		snprintf(buf, len, "smrelayd-%s[%d]", what, i);
	else
		snprintf(buf, len, "smrelayd-%s", what);
}

/* Fork slot i's key process; its peer's end of the socketpair in *netfd. */
static pid_t
spawn_keyd(struct sup *s, int i, int *netfd)
{
	char name[32];
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		fatal("socketpair");
	backoff(&s->slots[i].keyd_at);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		child_name(s, "keyd", i, name, sizeof(name));
		child_setup(s, name);
		keyd_run(s->d->cfg, sv[1], s->d->foreground);
	}
	close(sv[1]);
	*netfd = sv[0];
	log_debug("key process %d pid=%ld", i, (long)pid);
	return pid;
}

/* Fork network process i with kfd, its socket to the key process. */
static void
spawn_net(struct sup *s, int i, int kfd)
{
	char name[32];
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		fatal("socketpair");
	backoff(&s->slots[i].net_at);
	atomic_store(&s->d->live[i].beat, 0);
	atomic_store(&s->d->live[i].keyd_down, 0);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(sv[0]);
		child_name(s, "net", i, name, sizeof(name));
		child_setup(s, name);
		exit(net_main(s->d, i, kfd, sv[1]));
	}
	close(sv[1]);
	close(kfd);
	s->slots[i].ctl = sv[0];
	s->slots[i].net = pid;
	s->slots[i].killed = 0;
	log_debug("network process %d pid=%ld", i, (long)pid);
}

/* How a child ended, for the log. */
static void
log_exit(const char *who, int i, pid_t pid, int st, int expected)
{
	if (WIFEXITED(st) && (expected || WEXITSTATUS(st) == 0))
		log_info("%s process %d pid %ld exited status=%d", who, i,
		    (long)pid, WEXITSTATUS(st));
	else if (WIFEXITED(st))
		log_warnx("%s process %d pid %ld exited status=%d", who, i,
		    (long)pid, WEXITSTATUS(st));
	else
		log_warnx("%s process %d pid %ld killed by signal %d", who, i,
		    (long)pid, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Stop every network process (their key processes follow them). */
static void
sup_stop(struct sup *s, int sig)
{
	int i;

	s->exiting = 1;
	for (i = 0; i < s->nslots; i++) {
		if (s->slots[i].net > 0)
			kill(s->slots[i].net, sig);
		else if (s->slots[i].keyd > 0)
			kill(s->slots[i].keyd, SIGTERM);
	}
}

/* One dead child of the parent's, as sup_reap() takes it. */
static void
reap_one(struct sup *s, pid_t pid, int st)
{
	struct slot *sl;
	int i;

	for (i = 0; i < s->nslots; i++)
		if (pid == s->slots[i].net || pid == s->slots[i].keyd)
			break;
	if (i == s->nslots)
		return;
	sl = &s->slots[i];
	if (pid == sl->net) {
		log_exit("network", i, pid, st, s->exiting);
		if (!s->exiting && !sl->killed && sl->ever_ready)
			metrics_inc(M_RESTART_NET_EXITED);
		sl->net = 0;
		if (sl->ctl != -1)
			close(sl->ctl);
		sl->ctl = -1;
		if (!sl->ever_ready && !s->exiting) {
			/* a start that fails is no crash to retry */
			s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
			sup_stop(s, SIGTERM);
		} else if (s->exiting && s->status == 0)
			/* how the last of them ended is the parent's
			 * (a sanitizer's report makes it non-zero) */
			s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	} else {
		/* one whose network process went is no restart of its own:
		 * it exits 0 when its socket closes, which may be seen
		 * before the network process's death is */
		log_exit("key", i, pid, st, s->exiting || sl->net == 0);
		if (!s->exiting && sl->net != 0 && !sl->keyd_killed &&
		    !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			metrics_inc(M_RESTART_KEYD_EXITED);
		sl->keyd_killed = 0;
		sl->keyd = 0;
	}
}

/* Collect the dead: network processes first, so that a key process that
 * ended because its network process did (found in the same round) is
 * taken as such, whatever order waitpid() gives them in. */
static void
sup_reap(struct sup *s)
{
	size_t cap = 2 * (size_t)s->nslots + 2, n, i;
	pid_t *pids = xcalloc(cap, sizeof(*pids));
	int *sts = xcalloc(cap, sizeof(*sts));
	int j, more = 1, net;

	while (more) {
		for (n = 0; n < cap && (pids[n] = waitpid(-1, &sts[n],
		    WNOHANG)) > 0; n++)
			;
		more = n == cap;
		for (net = 1; net >= 0; net--)
			for (i = 0; i < n; i++) {
				for (j = 0; j < s->nslots; j++)
					if (pids[i] == s->slots[j].net)
						break;
				if ((j < s->nslots) == net)
					reap_one(s, pids[i], sts[i]);
			}
	}
	free(pids);
	free(sts);
}

/* After a death: restart what must run again in each slot (both when the
 * network process died: its key process is stopped first); the other
 * network processes keep serving meanwhile. */
static void
sup_restart(struct sup *s)
{
	struct slot *sl;
	int i, kfd;

	for (i = 0; i < s->nslots; i++) {
		sl = &s->slots[i];
		if (s->exiting || (sl->net == 0 && sl->keyd > 0)) {
			if (sl->net == 0 && sl->keyd > 0)
				kill(sl->keyd, SIGTERM);
			continue;
		}
		if (sl->keyd != 0)
			continue;
		sl->keyd = spawn_keyd(s, i, &kfd);
		if (sl->net == 0) {
			log_info("restarting network process %d", i);
			spawn_net(s, i, kfd);
			continue;
		}
		log_info("key process %d restarted: passing it to the network "
		    "process", i);
		if (privsep_send_fd(sl->ctl, kfd) == -1)
			log_warn("passing the key process's socket");
		close(kfd);
	}
}

/* A signal for the parent. */
static void
sup_signal(struct sup *s, int sig)
{
	int i;

	if (sig == SIGCHLD) {
		sup_reap(s);
		sup_restart(s);
		return;
	}
	if (sig == SIGHUP) {
		for (i = 0; i < s->nslots; i++) {
			if (s->slots[i].keyd > 0)
				kill(s->slots[i].keyd, SIGHUP);
			if (s->slots[i].net > 0)
				kill(s->slots[i].net, SIGHUP);
		}
		return;
	}
	sup_stop(s, sig);
}

/* What a network process says: 'R' once it runs, 'K' when its key
 * process has stopped answering (LIVE_KEYD_S: kill it, a new one follows
 * as after any death); EOF when it goes. */
static void
sup_ctl(struct sup *s, int i)
{
	struct slot *sl = &s->slots[i];
	char c;
	ssize_t n;

	if ((n = read(sl->ctl, &c, 1)) == 1 && c == 'R') {
		sl->ever_ready = 1;
		return;
	}
	if (n == 1 && c == 'K') {
		if (sl->keyd > 0 && !s->exiting) {
			log_warnx("key process %d pid %ld has not answered "
			    "for %d s: killing it", i, (long)sl->keyd,
			    LIVE_KEYD_S);
			kill(sl->keyd, SIGKILL);
			sl->keyd_killed = 1;
			metrics_inc(M_RESTART_KEYD_WEDGED);
		}
		return;
	}
	if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN)) {
		close(sl->ctl);
		sl->ctl = -1;
	}
}

/* Kill each network process whose loop has not stamped its slot for
 * LIVE_WEDGED_S (struct live); the restart follows its death. */
static void
sup_wedged(struct sup *s)
{
	struct slot *sl;
	uint64_t now = live_now(), t;
	int i;

	for (i = 0; i < s->nslots && !s->exiting; i++) {
		sl = &s->slots[i];
		t = atomic_load(&s->d->live[i].beat);
		if (sl->net <= 0 || sl->killed || t == 0 ||
		    now < t + LIVE_WEDGED_S * 1000)
			continue;
		log_warnx("network process %d pid %ld: its event loop has not "
		    "run for %llu s: killing it", i, (long)sl->net,
		    (unsigned long long)((now - t) / 1000));
		kill(sl->net, SIGKILL);
		sl->killed = 1;
		metrics_inc(M_RESTART_NET_WEDGED);
	}
}

/* Whether any child is left. */
static int
sup_running(const struct sup *s)
{
	int i;

	for (i = 0; i < s->nslots; i++)
		if (s->slots[i].keyd > 0 || s->slots[i].net > 0)
			return 1;
	return 0;
}

/* The parent from now on: start the children, restart them, pass
 * signals on; returns when all are gone after SIGTERM (or after a
 * network process failed before it ever ran). */
static int
supervise(struct daemon_state *d)
{
	struct signalfd_siginfo si;
	struct pollfd *pf;
	struct sup s;
	sigset_t set;
	int i, kfd, n;

	memset(&s, 0, sizeof(s));
	s.d = d;
	s.nslots = d->nproc;
	s.slots = xcalloc((size_t)s.nslots, sizeof(*s.slots));
	pf = xcalloc((size_t)s.nslots + 1, sizeof(*pf));
	for (i = 0; i < s.nslots; i++)
		s.slots[i].ctl = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((s.sigfd = signalfd(-1, &set, SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	d->parent = getpid();
	d->live = mmap(NULL, (size_t)s.nslots * sizeof(*d->live), PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d->live == MAP_FAILED)
		fatal("mmap");
	for (i = 0; i < s.nslots; i++) {
		s.slots[i].keyd = spawn_keyd(&s, i, &kfd);
		spawn_net(&s, i, kfd);
	}
	while (sup_running(&s)) {
		pf[0].fd = s.sigfd;
		pf[0].events = POLLIN;
		for (i = 0; i < s.nslots; i++) {
			pf[i + 1].fd = s.slots[i].ctl;    /* -1: ignored */
			pf[i + 1].events = POLLIN;
			pf[i + 1].revents = 0;
		}
		if ((n = poll(pf, (nfds_t)s.nslots + 1, LIVE_BEAT_MS)) ==
		    -1) {
			if (errno != EINTR)
				fatal("poll");
			continue;
		}
		for (i = 0; i < s.nslots; i++)
			if (s.slots[i].ctl != -1 && pf[i + 1].revents != 0)
				sup_ctl(&s, i);
		sup_wedged(&s);
		if ((pf[0].revents & POLLIN) &&
		    read(s.sigfd, &si, sizeof(si)) == sizeof(si))
			sup_signal(&s, (int)si.ssi_signo);
	}
	close(s.sigfd);
	munmap(d->live, (size_t)s.nslots * sizeof(*d->live));
	d->live = NULL;
	free(pf);
	free(s.slots);
	return s.status;
}

/* The parent after its children are gone. */
static void
parent_free(struct daemon_state *d)
{
	int i;

	if (d->metrics_fd != -1)
		close(d->metrics_fd);
	if (d->stats_fd != -1) {
		close(d->stats_fd);
		unlink(d->stats_path);
	}
	free(d->stats_path);
	for (i = 0; i < d->nproc && d->srvs != NULL; i++)
		server_free(d->srvs[i]);
	free(d->srvs);
	relay_pool_free(d->pool);
	event_base_free(d->base);
	SSL_CTX_free(d->client_ctx);
	free(d->tmpdir);
	config_free(d->cfg);
}

/* Started as root: data_dir to the network process's user, but not the
 * key file. */
static int
hand_over_data_dir(struct daemon_state *d, char *err, size_t errlen)
{
	if (!d->privsep)
		return 0;
	if (privsep_reachable(d->cfg->data_dir, d->uid, d->gid, err,
	    errlen) == -1)
		return -1;
	return privsep_chown_tree(d->cfg->data_dir, d->cfg->key_file, d->uid,
	    d->gid, err, errlen);
}

/* metrics_listen and the control socket (owned by the network process's
 * user), bound here like the SMTP listeners: a port in use fails the
 * start. */
static int
metrics_bind(struct daemon_state *d, char *err, size_t errlen)
{
	const struct config *cfg = d->cfg;

	if (cfg->metrics_host != NULL && (d->metrics_fd =
	    metrics_srv_bind_http(cfg->metrics_host, cfg->metrics_port, err,
	    errlen)) == -1)
		return -1;
	if (cfg->metrics_host != NULL)
		log_info("metrics on %s:%s", cfg->metrics_host,
		    cfg->metrics_port);
	d->stats_path = xasprintf("%s/%s", cfg->data_dir, METRICS_CTL_SOCK);
	d->stats_fd = metrics_srv_bind_ctl(d->stats_path, d->privsep, d->uid,
	    d->gid, err, errlen);
	return d->stats_fd == -1 ? -1 : 0;
}

/* Check the config and the keys, listen, detach, supervise. */
int
main(int argc, char *argv[])
{
	struct daemon_state d;
	struct daemon_opts o;
	char err[1024];
	int rc;

	parse_args(argc, argv, &o);
	memset(&d, 0, sizeof(d));
	d.metrics_fd = d.stats_fd = -1;
	log_init("smrelayd", 1, LOG_LVL_INFO);
	/* -f: the log is stderr, timed; -n prints only its verdicts */
	log_timestamps(o.foreground && !o.checkonly);
	tls_init();
	if (check_config(&d, o.path, o.checkonly) == -1)
		return 1;
	if (o.checkonly) {
		printf("configuration OK\n");
		config_state_free(&d);
		return 0;
	}
	if (!d.privsep)
		log_info("not started as root: running as uid %u, user %s "
		    "not used", (unsigned)geteuid(), d.cfg->user);
	if (keyd_check(d.cfg) == -1) {
		config_state_free(&d);
		return 1;
	}
	log_init("smrelayd", o.foreground, o.verbose ? LOG_LVL_DEBUG :
	    d.cfg->log_level);
	d.foreground = o.foreground;
	signal(SIGPIPE, SIG_IGN);
	d.base = server_event_base();
	if (d.base == NULL)
		fatalx("event_base_new failed");
	d.pool = relay_pool_new(d.base, d.cfg, d.client_ctx);
	d.tmpdir = xasprintf("%s/tmp", d.cfg->data_dir);
	d.nproc = config_processes(d.cfg);
	/* shared also with one process: the parent counts restarts, and
	 * the figures outlive a restarted network process */
	if (metrics_share(d.nproc) == -1)
		log_warn("metrics: shared memory (each process counts "
		    "its own)");
	if (server_start(&d, err, sizeof(err)) == -1 ||
	    hand_over_data_dir(&d, err, sizeof(err)) == -1 ||
	    metrics_bind(&d, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return 1;
	}
	if (!o.foreground && daemon(0, 0) == -1)
		fatal("daemon");
	rc = supervise(&d);
	parent_free(&d);
	return rc;
}
