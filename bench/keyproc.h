/* keyproc.h: a key process for the benchmarks, as smrelayd's parent makes
 * it (daemon/keyd/keyd_proc.c) but from PEM files: a forked child on one
 * end of a socketpair, hardened, its keys read after the secure heap is
 * up, serving daemon/keyd's keyd_server on one event loop. */
#ifndef SMRELAY_BENCH_KEYPROC_H
#define SMRELAY_BENCH_KEYPROC_H

#include <sys/types.h>

#define KEYPROC_MAX	4	/* certificate and key pairs */

/* The key process's certificate and key files, and how to reach it. */
struct keyproc {
	const char	*cert[KEYPROC_MAX];
	const char	*key[KEYPROC_MAX];
	int		 n;
	int		 plain_heap;	/* 1: no secure heap (a diagnostic) */
	pid_t		 pid;
	int		 fd;		/* our end, for keyd_client_new */
};

/* keyproc.c */
/* Fork the key process (before this process starts any thread); exit 2
 * when it cannot be made.  kp->fd is then ours to hand to the client. */
void keyproc_spawn(struct keyproc *kp);
/* CPU seconds (user + system) the key process used so far, from
 * /proc/PID/stat (clock ticks); -1 when unreadable. */
double keyproc_cpu(const struct keyproc *kp);
/* Wait for it to exit (after the client closed its end): 0 when it
 * exited 0; its total CPU seconds in *cpu (wait4). */
int keyproc_reap(struct keyproc *kp, double *cpu);

/* CPU seconds (user + system) this process used so far (both benches). */
double bench_cpu(void);

#endif
