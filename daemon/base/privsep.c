/* privsep.c: users, capabilities, ownership and descriptor passing for
 * smrelayd's processes (see privsep.h). */
#include "autoconfig.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <linux/capability.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privsep.h"
#include "lib/lib.h"

#ifdef HAVE_SECCOMP
#include <seccomp.h>
#endif

/* The uid and gid of name. */
int
privsep_user(const char *name, uid_t *uid, gid_t *gid, char *err,
    size_t errlen)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		snprintf(err, errlen, "user %s: %s", name, errno != 0 ?
		    strerror(errno) : "no such user (create it, e.g. "
		    "useradd --system smrelay, or set user)");
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "user %s: is root; the network process "
		    "must run unprivileged", name);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/* Drop to uid:gid for good and check it. */
int
privsep_drop(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		snprintf(err, errlen, "cannot become uid %u: %s",
		    (unsigned)uid, strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 || geteuid() != uid || getegid() != gid) {
		snprintf(err, errlen, "uid %u: root could be had back",
		    (unsigned)uid);
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* No capability left, none to gain: bounding set emptied, then all three
 * sets cleared. */
int
privsep_no_caps(char *err, size_t errlen)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[2];
	int c;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno));
		return -1;
	}
	for (c = 0; c <= CAP_LAST_CAP; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == -1 &&
		    errno != EINVAL && errno != EPERM)
			break;
	memset(&h, 0, sizeof(h));
	memset(d, 0, sizeof(d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capset, &h, d) == -1) {
		snprintf(err, errlen, "capset: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* nftw has no argument: the walk's state (one walk at a time). */
static struct {
	const char	*skip;
	size_t		 skiplen;
	uid_t		 uid;
	gid_t		 gid;
	char		*err;
	size_t		 errlen;
} walk;

/* Whether path is the skipped file or one of its SQLite companions. */
static int
walk_skipped(const char *path)
{
	const char *rest;

	if (walk.skip == NULL || strncmp(path, walk.skip, walk.skiplen) != 0)
		return 0;
	rest = path + walk.skiplen;
	return *rest == '\0' || strcmp(rest, "-wal") == 0 ||
	    strcmp(rest, "-shm") == 0 || strcmp(rest, "-journal") == 0;
}

/* One entry of the tree: symbolic links are not followed (FTW_PHYS). */
static int
walk_one(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	(void)f;
	if (walk_skipped(path))
		return 0;
	if (sb->st_uid == walk.uid && sb->st_gid == walk.gid)
		return 0;
	if (lchown(path, walk.uid, type == FTW_SL ? (gid_t)-1 : walk.gid)
	    == -1) {
		snprintf(walk.err, walk.errlen, "chown %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Hand the tree to uid:gid, but not skip. */
int
privsep_chown_tree(const char *dir, const char *skip, uid_t uid,
    gid_t gid, char *err, size_t errlen)
{
	walk.skip = skip;
	walk.skiplen = skip != NULL ? strlen(skip) : 0;
	walk.uid = uid;
	walk.gid = gid;
	walk.err = err;
	walk.errlen = errlen;
	err[0] = '\0';
	if (nftw(dir, walk_one, 16, FTW_PHYS | FTW_MOUNT) != 0) {
		if (errno != 0 && err[0] == '\0')
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether uid:gid may search the directory st describes. */
static int
searchable(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return (st->st_mode & S_IXUSR) != 0;
	if (st->st_gid == gid)
		return (st->st_mode & S_IXGRP) != 0;
	return (st->st_mode & S_IXOTH) != 0;
}

/* Every directory above path must let uid:gid through. */
int
privsep_reachable(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct stat st;
	char *dir, *slash;
	int rc = 0;

	dir = realpath(path, NULL);
	if (dir == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) == -1 || !searchable(&st, uid, gid)) {
			snprintf(err, errlen, "%s: user %u cannot reach it: %s "
			    "is mode %04o owned by %u", path, (unsigned)uid, dir,
			    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
			rc = -1;
			break;
		}
	}
	free(dir);
	return rc;
}

/* One descriptor and one byte over sock. */
int
privsep_send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))], byte = 'F';
	struct iovec iov = { &byte, 1 };
	struct msghdr msg;
	struct cmsghdr *c;

	memset(&msg, 0, sizeof(msg));
	memset(cbuf, 0, sizeof(cbuf));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* The descriptor privsep_send_fd sent; anything else is refused. */
int
privsep_recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg;
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) == -1)
		if (errno != EINTR)
			return -1;
	if (n == 0)
		return 0;
	c = CMSG_FIRSTHDR(&msg);
	if (c != NULL && c->cmsg_level == SOL_SOCKET &&
	    c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fd == -1 || (msg.msg_flags & MSG_CTRUNC)) {
		if (fd != -1)
			close(fd);
		errno = EBADMSG;
		return -1;
	}
	return fd;
}

#ifdef HAVE_SECCOMP
/* What the network process never needs, and an intruder would want: run a
 * program, read or write another process, load kernel code, change the
 * system, make namespaces.  (AddressSanitizer's leak check traces the
 * process's own threads: ptrace stays allowed in such builds.) */
static const int net_denied[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat),
#if !defined(__SANITIZE_ADDRESS__)
	SCMP_SYS(ptrace),
#endif
	SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
	SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load),
	SCMP_SYS(init_module), SCMP_SYS(finit_module),
	SCMP_SYS(delete_module), SCMP_SYS(mount), SCMP_SYS(umount2),
	SCMP_SYS(pivot_root), SCMP_SYS(chroot), SCMP_SYS(swapon),
	SCMP_SYS(swapoff), SCMP_SYS(reboot), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(unshare),
	SCMP_SYS(setns), SCMP_SYS(keyctl), SCMP_SYS(add_key),
	SCMP_SYS(request_key), SCMP_SYS(acct), SCMP_SYS(settimeofday),
	SCMP_SYS(clock_settime), SCMP_SYS(adjtimex),
};

/* Deny net_denied[] with EPERM (the caller sees an error, no kill: a
 * sanitizer's report must still come out). */
int
privsep_seccomp(char *err, size_t errlen)
{
	scmp_filter_ctx f;
	size_t i;
	int rc;

	if ((f = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	for (i = 0; i < sizeof(net_denied) / sizeof(net_denied[0]); i++)
		if ((rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM),
		    net_denied[i], 0)) < 0)
			goto fail;
	if ((rc = seccomp_load(f)) < 0)
		goto fail;
	seccomp_release(f);
	return 1;
 fail:
	snprintf(err, errlen, "seccomp: %s", strerror(-rc));
	seccomp_release(f);
	return -1;
}
#else
int
privsep_seccomp(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}
#endif

/* Unblock what child_setup (smrelayd.c) held: a SIGHUP sent while the
 * child started is delivered now, to its handler. */
void
privsep_signals_release(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}
