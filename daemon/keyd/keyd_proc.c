/* keyd_proc.c: the key process (see keyd_proc.h). */
#include "autoconfig.h"

#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/pem.h>

#include "keyd_keyring.h"
#include "keyd_proc.h"
#include "keyd_server.h"
#include "daemon/base/base.h"
#include "lib/lib.h"
#include "store/store.h"

struct keyd_proc {
	struct config		*cfg;           /* the one in use (owned after a
						 * SIGHUP re-read) */
	const struct config	*cfg0;          /* given at start */
	struct event_base	*base;
	struct keyd_server	*srv;
	struct workers		*workers;       /* one per CPU: the operations */
	struct keyd_keyring	*kr;
	struct keyfile		*kf;            /* key_file, open for good */
	int64_t			 changes;
	struct event		*tick, *hup, *term;
};

static const struct timeval keyd_tick = { 1, 0 };

/* The configuration in use. */
static const struct config *
kp_cfg(const struct keyd_proc *p)
{
	return p->cfg != NULL ? p->cfg : p->cfg0;
}

/* The TLS server key with the first certificate of tls_cert_file. */
static int
load_tls_key(struct keyd_keyring *kr, const struct config *cfg, char *err,
    size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *cert;
	FILE *fp;
	char why[256];
	int rc = -1;

	if ((cert = tls_leaf_cert(cfg->tls_cert_file, err, errlen)) == NULL)
		return -1;
	if ((fp = fopen(cfg->tls_key_file, "r")) != NULL) {
		key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
		fclose(fp);
	}
	if (key == NULL)
		snprintf(err, errlen, "cannot read the TLS key from %s",
		    cfg->tls_key_file);
	else if (keyd_keyring_add(kr, cert, key, why, sizeof(why)) == -1)
		snprintf(err, errlen, "%s: %s", cfg->tls_key_file, why);
	else
		rc = 0;
	EVP_PKEY_free(key);
	X509_free(cert);
	return rc;
}

/* A keyring with every key we hold; NULL with err when the TLS key cannot
 * be had (an S/MIME key that fails is logged, the others are kept). */
static struct keyd_keyring *
kp_load(struct keyd_proc *p, char *err, size_t errlen)
{
	const struct config *cfg = kp_cfg(p);
	struct keyd_keyring *kr = keyd_keyring_new();
	char why[512];

	if (keyd_keyring_load_keyfile(kr, p->kf, why, sizeof(why)) < 0)
		log_warnx("keyd: %s", why);
	if (cfg->tls_cert_file != NULL &&
	    load_tls_key(kr, cfg, err, errlen) == -1) {
		keyd_keyring_free(kr);
		return NULL;
	}
	log_info("keyd: %zu key(s) loaded", keyd_keyring_count(kr));
	return kr;
}

/* Put a fresh keyring in; keep the old one when it cannot be made. */
static void
kp_reload(struct keyd_proc *p)
{
	struct keyd_keyring *kr;
	char err[512];

	if ((kr = kp_load(p, err, sizeof(err))) == NULL) {
		log_warnx("keyd: reload failed, keeping the keys: %s", err);
		return;
	}
	keyd_server_set_keyring(p->srv, kr);
	keyd_keyring_free(p->kr);
	p->kr = kr;
}

/* Reload when the keys changed. */
static void
kp_check(struct keyd_proc *p)
{
	int64_t c;

	if ((c = keyfile_changes(p->kf)) >= 0 && c != p->changes) {
		p->changes = c;
		kp_reload(p);
	}
}

/* Once a second. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	kp_check(arg);
}

/* A key was asked for that we do not have (keyd_server_set_miss_cb). */
static void
miss_cb(void *arg)
{
	kp_check(arg);
}

/* SIGHUP: the configuration again (the TLS key may have moved). */
static void
hup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct keyd_proc *p = arg;
	struct config *ncfg;
	char err[1024];

	(void)fd;
	(void)what;
	if ((ncfg = config_load(kp_cfg(p)->path, err, sizeof(err))) == NULL) {
		log_warnx("keyd: reload: %s", err);
		return;
	}
	config_free(p->cfg);
	p->cfg = ncfg;
	kp_reload(p);
}

/* SIGTERM, or the network process is gone: stop. */
static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* The connection closed. */
static void
closed_cb(struct keyd_server *s, void *arg)
{
	struct keyd_proc *p = arg;

	(void)s;
	event_base_loopbreak(p->base);
}

/* Not dumpable, keys in the secure heap (capabilities go once the key
 * files are open). */
static void
kp_harden(void)
{
	int r;

	if (keyd_harden() == -1)
		fatal("keyd: cannot make the key process undumpable");
	if ((r = keyd_secure_heap(KEYD_SECURE_HEAP)) == -1)
		log_warnx("keyd: no secure heap: keys in the ordinary heap");
	else if (r == 1)
		log_info("keyd: secure heap not locked in memory "
		    "(RLIMIT_MEMLOCK); still out of core dumps");
}

/* Serve until the peer goes. */
void
keyd_run(const struct config *cfg, int fd, int foreground)
{
	struct keyd_proc p;
	char err[512];

	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0U, 0);
	log_init("smrelayd-keyd", foreground, cfg->log_level);
	metrics_private();	/* its workers are no network process's */
	log_timestamps(foreground);
	signal(SIGPIPE, SIG_IGN);
	kp_harden();
	memset(&p, 0, sizeof(p));
	p.cfg0 = cfg;
	if ((p.kf = keyfile_open(cfg->key_file, cfg->key_passphrase_file, err,
	    sizeof(err))) == NULL)
		fatalx("keyd: %s: %s", cfg->key_file, err);
	p.changes = keyfile_changes(p.kf);
	if ((p.kr = kp_load(&p, err, sizeof(err))) == NULL)
		fatalx("keyd: %s", err);
	/* The key file stays open: reloads need no right to open it. */
	if (privsep_no_caps(err, sizeof(err)) == -1)
		fatalx("keyd: %s", err);
	if ((p.base = event_base_new()) == NULL)
		fatalx("keyd: event_base_new failed");
	p.srv = keyd_server_new(p.base, fd, p.kr);
	p.workers = workers_new(p.base, 0, NULL, NULL, NULL);
	keyd_server_set_workers(p.srv, p.workers);
	keyd_server_set_closed_cb(p.srv, closed_cb, &p);
	keyd_server_set_miss_cb(p.srv, miss_cb, &p);
	p.tick = event_new(p.base, -1, EV_PERSIST, tick_cb, &p);
	event_add(p.tick, &keyd_tick);
	p.hup = evsignal_new(p.base, SIGHUP, hup_cb, &p);
	p.term = evsignal_new(p.base, SIGTERM, stop_cb, p.base);
	evsignal_add(p.hup, NULL);
	evsignal_add(p.term, NULL);
	privsep_signals_release();	/* held since the fork (child_setup) */
	event_base_dispatch(p.base);
	log_info("keyd: exiting");
	_exit(0);
}

/* In a throwaway child, so that no key byte is ever in the caller. */
int
keyd_check(const struct config *cfg)
{
	struct keyd_proc p;
	char err[512];
	pid_t pid;
	int st;

	if ((pid = fork()) == -1) {
		fprintf(stderr, "%s: fork: %s\n", cfg->path, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		memset(&p, 0, sizeof(p));
		p.cfg0 = cfg;
		if (keyd_harden() == -1 || (p.kf = keyfile_open(cfg->key_file,
		    cfg->key_passphrase_file, err, sizeof(err))) == NULL ||
		    (p.kr = kp_load(&p, err, sizeof(err))) == NULL) {
			fprintf(stderr, "%s: keys: %s\n", cfg->path, err);
			_exit(1);
		}
		_exit(0);
	}
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}
