/* maildir.c: the sink's backend: every message becomes one Maildir file. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "maildir.h"

#define MAILDIR_CHUNK	65536

struct maildir {
	struct event_base *base;
	char *dir;
	char *host;		/* hostname, safe inside a file name */
	unsigned long seq;
	struct maildir_hooks hooks;
};

/* A reply waiting for the event loop. */
struct maildir_reply {
	delivery_cb *cb;
	void *arg;
	struct smtp_result res;
};

struct maildir_txn {
	struct maildir *md;
	uint64_t sessid;
	char *from;
	char **rcpts;
	int nrcpts;
	struct maildir_reply *replies;	/* FIFO, delivered from ev */
	int nreplies;
	int over;			/* data() called: free after its reply */
	struct event *ev;
};

static void *maildir_begin(void *, const char *, const char *, uint64_t);
static void maildir_rcpt(void *, const char *, const char *, delivery_cb *,
    void *);
static void maildir_data(void *, struct msgbuf *, delivery_cb *, void *);
static void maildir_abort(void *);

const struct delivery_ops maildir_delivery_ops = {
	maildir_begin, maildir_rcpt, maildir_data, maildir_abort, NULL, NULL
};

/* mkdir that is happy when the directory is already there. */
static int
mkdir_exist(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -1;
	}
	return 0;
}

/* Create DIR/{tmp,new,cur} as needed; NULL (err set) on failure. */
struct maildir *
maildir_open(struct event_base *base, const char *dir, char *err,
    size_t errlen)
{
	static const char *subs[] = { "tmp", "new", "cur" };
	struct maildir *md;
	char host[256], *p, *path;
	int i, rc;

	if (mkdir_exist(dir, err, errlen) == -1)
		return NULL;
	for (i = 0; i < 3; i++) {
		path = xasprintf("%s/%s", dir, subs[i]);
		rc = mkdir_exist(path, err, errlen);
		free(path);
		if (rc == -1)
			return NULL;
	}
	memset(host, 0, sizeof(host));
	if (gethostname(host, sizeof(host) - 1) == -1 || host[0] == '\0')
		strlcpy_s(host, "localhost", sizeof(host));
	/* '/' and ':' cannot appear in the unique part of a Maildir name. */
	host[100] = '\0';
	for (p = host; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	md = xcalloc(1, sizeof(*md));
	md->base = base;
	md->dir = xstrdup(dir);
	md->host = xstrdup(host);
	return md;
}

/* Set the hooks (copied). */
void
maildir_set_hooks(struct maildir *md, const struct maildir_hooks *h)
{
	md->hooks = *h;
}

/* Release the backend (transactions are owned by their sessions). */
void
maildir_close(struct maildir *md)
{
	if (md == NULL)
		return;
	free(md->dir);
	free(md->host);
	free(md);
}

/* Free a transaction, dropping any reply not yet delivered. */
static void
maildir_txn_free(struct maildir_txn *t)
{
	int i;

	event_free(t->ev);
	for (i = 0; i < t->nrcpts; i++)
		free(t->rcpts[i]);
	free(t->rcpts);
	free(t->replies);
	free(t->from);
	free(t);
}

/* Wake the reply event now, or after the hook's delay. */
static void
maildir_schedule(struct maildir_txn *t)
{
	struct timeval tv = { 0, 0 };

	if (t->md->hooks.delay != NULL)
		t->md->hooks.delay(t->md->hooks.arg, &tv);
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		event_active(t->ev, EV_TIMEOUT, 1);
	else
		event_add(t->ev, &tv);
}

/* Deliver the oldest queued reply; the callback may re-enter or abort. */
static void
maildir_reply_cb(evutil_socket_t fd, short what, void *arg)
{
	struct maildir_txn *t = arg;
	struct maildir_reply r;

	(void)fd;
	(void)what;
	if (t->nreplies == 0)
		return;
	r = t->replies[0];
	memmove(t->replies, t->replies + 1,
	    --t->nreplies * sizeof(*t->replies));
	if (t->nreplies > 0)
		maildir_schedule(t);
	else if (t->over)
		maildir_txn_free(t);	/* the data() reply: txn is done */
	r.cb(r.arg, &r.res);
}

/* Queue a reply for the event loop, never calling back from here. */
static void
maildir_reply(struct maildir_txn *t, delivery_cb *cb, void *arg, int code,
    const char *enh, const char *text)
{
	struct maildir_reply *r;

	t->replies = xreallocarray(t->replies, t->nreplies + 1,
	    sizeof(*t->replies));
	r = &t->replies[t->nreplies++];
	memset(r, 0, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	smtp_result_set(&r->res, code, enh, "%s", text);
	if (t->nreplies == 1)
		maildir_schedule(t);
}

/* MAIL FROM: remember the sender. */
static void *
maildir_begin(void *ctx, const char *from, const char *params,
    uint64_t sessid)
{
	struct maildir *md = ctx;
	struct maildir_txn *t = xcalloc(1, sizeof(*t));

	(void)params;
	t->md = md;
	t->sessid = sessid;
	t->from = xstrdup(from);
	if ((t->ev = event_new(md->base, -1, 0, maildir_reply_cb, t)) == NULL)
		fatalx("maildir: event_new failed");
	return t;
}

/* RCPT TO: every recipient is welcome. */
static void
maildir_rcpt(void *txn, const char *rcpt, const char *params,
    delivery_cb *cb, void *arg)
{
	struct maildir_txn *t = txn;

	struct smtp_result res;

	(void)params;
	if (t->md->hooks.rcpt != NULL &&
	    t->md->hooks.rcpt(t->md->hooks.arg, &res)) {
		log_info("session id=%016llx maildir rcpt=<%s> refused=%d",
		    (unsigned long long)t->sessid, rcpt, res.code);
		maildir_reply(t, cb, arg, res.code, res.enh, res.text);
		return;
	}
	t->rcpts = xreallocarray(t->rcpts, t->nrcpts + 1, sizeof(*t->rcpts));
	t->rcpts[t->nrcpts++] = xstrdup(rcpt);
	maildir_reply(t, cb, arg, 250, "2.1.5", "Ok");
}


/* Return-Path, one Delivered-To per recipient, then the message. */
static int
maildir_write_fd(struct maildir_txn *t, int fd, struct msgbuf *mb,
    char *why, size_t whylen)
{
	char *buf, *hdr;
	size_t off = 0;
	ssize_t n;
	int i, rc = 0;

	hdr = xasprintf("Return-Path: <%s>\r\n", t->from);
	rc = write_full(fd, hdr, strlen(hdr));
	free(hdr);
	for (i = 0; i < t->nrcpts && rc == 0; i++) {
		hdr = xasprintf("Delivered-To: %s\r\n", t->rcpts[i]);
		rc = write_full(fd, hdr, strlen(hdr));
		free(hdr);
	}
	if (rc == -1) {
		snprintf(why, whylen, "write: %s", strerror(errno));
		return -1;
	}
	buf = xmalloc(MAILDIR_CHUNK);
	while ((n = msgbuf_pread(mb, buf, MAILDIR_CHUNK, off)) > 0) {
		if (write_full(fd, buf, (size_t)n) == -1) {
			snprintf(why, whylen, "write: %s", strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	if (n == -1)
		snprintf(why, whylen, "read message: %s", strerror(errno));
	free(buf);
	return n == 0 ? 0 : -1;
}

/* fsync a directory so a rename into it survives a crash. */
static int
fsync_dir(const char *path)
{
	int fd, rc, saved;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/*
 * The Postfix order: write to tmp/, fsync, rename into new/, fsync new/.
 * On any failure nothing is left behind.  name receives the unique name.
 */
static int
maildir_save(struct maildir_txn *t, struct msgbuf *mb, char *name,
    size_t namelen, char *why, size_t whylen)
{
	struct maildir *md = t->md;
	char *tmp, *new, *newdir;
	struct timeval tv;
	int fd, rc = -1;

	gettimeofday(&tv, NULL);
	snprintf(name, namelen, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), ++md->seq, md->host);
	tmp = xasprintf("%s/tmp/%s", md->dir, name);
	new = xasprintf("%s/new/%s", md->dir, name);
	newdir = xasprintf("%s/new", md->dir);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		snprintf(why, whylen, "open %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (maildir_write_fd(t, fd, mb, why, whylen) == -1) {
		close(fd);
		goto unlink_tmp;
	}
	if (fsync(fd) == -1) {
		snprintf(why, whylen, "fsync: %s", strerror(errno));
		close(fd);
		goto unlink_tmp;
	}
	if (close(fd) == -1) {
		snprintf(why, whylen, "close: %s", strerror(errno));
		goto unlink_tmp;
	}
	if (rename(tmp, new) == -1) {
		snprintf(why, whylen, "rename: %s", strerror(errno));
		goto unlink_tmp;
	}
	if (fsync_dir(newdir) == -1) {
		snprintf(why, whylen, "fsync %s: %s", newdir, strerror(errno));
		unlink(new);
		goto out;
	}
	rc = 0;
	goto out;
unlink_tmp:
	unlink(tmp);
out:
	free(tmp);
	free(new);
	free(newdir);
	return rc;
}

/* End of DATA: save the message, then reply from the event loop. */
static void
maildir_data(void *txn, struct msgbuf *mb, delivery_cb *cb, void *arg)
{
	struct maildir_txn *t = txn;
	struct maildir *md = t->md;
	struct smtp_result res;
	char name[200], why[200], text[256];

	t->over = 1;
	if (md->hooks.data != NULL && md->hooks.data(md->hooks.arg, &res)) {
		log_info("session id=%016llx maildir not saved status=%d %s",
		    (unsigned long long)t->sessid, res.code, res.text);
		maildir_reply(t, cb, arg, res.code, res.enh, res.text);
		return;
	}
	if (maildir_save(t, mb, name, sizeof(name), why, sizeof(why)) == -1) {
		log_warnx("session id=%016llx maildir error=\"%s\"",
		    (unsigned long long)t->sessid, why);
		snprintf(text, sizeof(text), "Error: cannot save message: %s",
		    why);
		maildir_reply(t, cb, arg, 451, "4.3.0", text);
		return;
	}
	log_info("session id=%016llx maildir saved=%s size=%zu rcpts=%d",
	    (unsigned long long)t->sessid, name, msgbuf_size(mb), t->nrcpts);
	snprintf(text, sizeof(text), "Ok: saved as %s", name);
	maildir_reply(t, cb, arg, 250, "2.0.0", text);
	if (md->hooks.saved != NULL)
		md->hooks.saved(md->hooks.arg, name);
}

/* The session gave up: no callback will follow. */
static void
maildir_abort(void *txn)
{
	maildir_txn_free(txn);
}
