/* keyproc.c: a key process for the benchmarks (keyproc.h). */
#include "autoconfig.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/x509.h>

#include "daemon/base/base.h"
#include "daemon/keyd/keyd.h"
#include "lib/lib.h"
#include "pemload.h"
#include "keyproc.h"

/* The connection closed: the child's loop ends. */
static void
child_closed(struct keyd_server *s, void *arg)
{
	(void)s;
	event_base_loopbreak(arg);
}

/* The key process: harden, then read the keys (their numbers land in the
 * secure heap), serve fd until the bench closes it. */
static void __attribute__((noreturn))
child_main(struct keyproc *kp, int fd)
{
	struct keyd_keyring *kr;
	struct keyd_server *s;
	struct event_base *base;
	struct workers *w = NULL;
	EVP_PKEY *key;
	X509 *cert;
	char err[256];
	int i;

	log_init("keyproc", 1, LOG_LVL_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (keyd_harden() == -1)
		_exit(3);
	if (!kp->plain_heap && keyd_secure_heap(KEYD_SECURE_HEAP) == -1)
		_exit(4);
	kr = keyd_keyring_new();
	for (i = 0; i < kp->n; i++) {
		cert = load_cert(kp->cert[i]);
		key = load_key(kp->key[i]);
		if (keyd_keyring_add(kr, cert, key, err, sizeof(err)) == -1) {
			fprintf(stderr, "keyproc: %s: %s\n", kp->key[i], err);
			_exit(5);
		}
		X509_free(cert);
		EVP_PKEY_free(key);
	}
	if ((base = event_base_new()) == NULL)
		_exit(6);
	s = keyd_server_new(base, fd, kr);
	keyd_server_set_closed_cb(s, child_closed, base);
	/* as in smrelayd's key process: signatures and ECDH on one thread
	 * per CPU (KEYPROC_INLINE=1: all on the loop, the earlier design) */
	if (getenv("KEYPROC_INLINE") == NULL) {
		w = workers_new(base, 0, NULL, NULL, NULL);
		keyd_server_set_workers(s, w);
	}
	event_base_dispatch(base);
	workers_free(w);
	keyd_server_free(s);
	keyd_keyring_free(kr);
	event_base_free(base);
	_exit(0);
}

/* Fork the key process on a new socketpair. */
void
keyproc_spawn(struct keyproc *kp)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		fprintf(stderr, "keyproc: socketpair: %s\n", strerror(errno));
		exit(2);
	}
	fflush(NULL);
	if ((kp->pid = fork()) == -1) {
		fprintf(stderr, "keyproc: fork: %s\n", strerror(errno));
		exit(2);
	}
	if (kp->pid == 0) {
		close(sv[0]);
		child_main(kp, sv[1]);
	}
	close(sv[1]);
	kp->fd = sv[0];
}

/* utime + stime of the key process, in seconds. */
double
keyproc_cpu(const struct keyproc *kp)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long tck = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)kp->pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after "pid (comm) ": state is field 3, utime 14, stime 15 */
	if ((p = strrchr(buf, ')')) == NULL || tck <= 0 ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)tck;
}

/* Wait for the key process; its exit status and CPU time. */
int
keyproc_reap(struct keyproc *kp, double *cpu)
{
	struct rusage ru;
	int status;

	*cpu = -1;
	while (wait4(kp->pid, &status, 0, &ru) == -1)
		if (errno != EINTR)
			return -1;
	*cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	kp->pid = -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* CPU seconds (user + system) used by this process so far. */
double
bench_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
