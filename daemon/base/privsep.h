/*
 * privsep.h: what smrelayd's processes need to split the work (issue 13):
 * the parent (root, does nothing but start and restart), the key process
 * (holds the private keys, reads no network input, no capabilities) and
 * the network process (runs as `user`, no capabilities).
 */
#ifndef SMRELAY_DAEMON_BASE_PRIVSEP_H
#define SMRELAY_DAEMON_BASE_PRIVSEP_H

#include <stddef.h>
#include <sys/types.h>

/* privsep.c */
/* The uid and primary gid of a user; -1 with err if there is none. */
int privsep_user(const char *name, uid_t *uid, gid_t *gid, char *err,
    size_t errlen);
/*
 * Become uid:gid for good (no supplementary groups, saved ids too, no new
 * privileges from exec) and check that root cannot be had back.  0, or -1
 * with err.
 */
int privsep_drop(uid_t uid, gid_t gid, char *err, size_t errlen);
/* Keep the uid but give up every capability (and gaining any through
 * exec).  0, or -1 with err. */
int privsep_no_caps(char *err, size_t errlen);
/*
 * Hand dir and everything under it to uid:gid, except the file skip and
 * its SQLite companions (-wal, -shm, -journal), wherever they are.  0, or
 * -1 with err naming the first that failed.
 */
int privsep_chown_tree(const char *dir, const char *skip, uid_t uid,
    gid_t gid, char *err, size_t errlen);
/* Whether uid:gid can get to path (every directory above it searchable);
 * -1 with err naming the one that is not. */
int privsep_reachable(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen);
/* The network process's system call filter (libseccomp): 1 loaded, 0 not
 * built with seccomp, -1 with err. */
int privsep_seccomp(char *err, size_t errlen);
/* Pass fd over a unix socket (SCM_RIGHTS); 0, or -1 with errno. */
int privsep_send_fd(int sock, int fd);
/* A descriptor passed over sock, -1 with errno (0 at EOF). */
int privsep_recv_fd(int sock);
/* Unblock SIGHUP, SIGTERM and SIGINT, held in a child since its fork, once
 * its loop catches them. */
void privsep_signals_release(void);

#endif
