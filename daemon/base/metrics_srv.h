/* metrics_srv.h: where the figures of metrics.h are read: GET /metrics and
 * GET /healthz over evhttp on `metrics_listen`, and the control socket
 * (a unix socket in data_dir, mode 0600) that `smrelayctl stats` asks.
 * The sockets are bound by the privileged parent; the network process
 * serves them on its loop. */
#ifndef SMRELAY_METRICS_SRV_H
#define SMRELAY_METRICS_SRV_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct metrics_srv;

/* The control socket's name in data_dir. */
#define METRICS_CTL_SOCK	"smrelayd.sock"
/* The longest answer smrelayctl reads. */
#define METRICS_CTL_MAX		(1024 * 1024)

struct metrics_srv_params {
	struct event_base *base;
	int http_fd;            /* listening TCP socket, or -1 */
	int ctl_fd;             /* listening unix socket, or -1 */
	/* Set the gauges read on demand, just before a rendering. */
	void (*refresh)(void *arg);
	/* 0 when healthy; -1 with the reason in why. */
	int (*health)(void *arg, char *why, size_t len);
	void *arg;
};

/* metrics_srv.c */
/* A listening TCP socket on host:port; -1 with err set. */
int metrics_srv_bind_http(const char *host, const char *port, char *err,
    size_t errlen);
/* A listening unix socket at path, mode 0600, owned by uid:gid when
 * chown_it; a stale socket file is replaced, a live one is an error. */
int metrics_srv_bind_ctl(const char *path, int chown_it, uid_t, gid_t,
    char *err, size_t errlen);
/* Serve the sockets of p (taken: closed by metrics_srv_free). */
struct metrics_srv *metrics_srv_new(const struct metrics_srv_params *p);
void metrics_srv_free(struct metrics_srv *);
/* The client (smrelayctl): ask the daemon at path for `cmd` and read the
 * whole answer (NUL-terminated, at most METRICS_CTL_MAX) within
 * timeout_ms.  Blocking; -1 with err set. */
int metrics_srv_query(const char *path, const char *cmd, int timeout_ms,
    char **out, size_t *outlen, char *err, size_t errlen);

#endif
