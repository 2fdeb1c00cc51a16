/* test_maildir.c: the sink's Maildir backend, driven like a session would. */
#include "autoconfig.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/base/delivery.h"
#include "lib/lib.h"
#include "daemon/sink/maildir.h"
#include "daemon/base/msgbuf.h"
#include "../unit/check.h"

struct probe {
	int calls;
	int in_call;		/* set while inside an ops call */
	struct smtp_result last;
};

static struct event_base *base;
static char root[64];

/* Record a reply, and that it did not come from inside an ops call. */
static void
probe_cb(void *arg, const struct smtp_result *r)
{
	struct probe *p = arg;

	CHECK(!p->in_call, "callback from inside an ops call");
	p->calls++;
	p->last = *r;
}

/* Number of entries (not . or ..) in root/SUB. */
static int
count(const char *sub)
{
	char path[256];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	if ((dp = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dp)) != NULL)
		if (d->d_name[0] != '.')
			n++;
	closedir(dp);
	return n;
}

/* A body of n bytes (spilled to a file when n is large). */
static struct msgbuf *
body(size_t n)
{
	struct msgbuf *mb = msgbuf_new(root, 1024);
	char line[64];
	size_t i;

	for (i = 0; i < n; i += strlen(line)) {
		snprintf(line, sizeof(line), "line %zu\r\n", i);
		if (msgbuf_append(mb, line, strlen(line)) == -1)
			fatal("msgbuf_append");
	}
	return mb;
}

/* Two recipients pipelined, then DATA: one file with the envelope. */
static void
test_save(struct maildir *md)
{
	struct probe r1 = { 0 }, r2 = { 0 }, d = { 0 };
	struct msgbuf *mb = body(200000);
	char path[1024], *name, *buf, want[256];
	void *txn;
	FILE *fp;
	size_t n, hlen;

	txn = maildir_delivery_ops.begin(md, "alice@example.com", "", 1);
	r1.in_call = r2.in_call = 1;
	maildir_delivery_ops.rcpt(txn, "bob@example.net", "", probe_cb, &r1);
	maildir_delivery_ops.rcpt(txn, "carol@example.org", "", probe_cb, &r2);
	r1.in_call = r2.in_call = 0;
	CHECK(r1.calls == 0 && r2.calls == 0, "rcpt replied inline");
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(r1.calls == 1 && r2.calls == 1 && r1.last.code == 250 &&
	    strcmp(r2.last.enh, "2.1.5") == 0, "rcpt replies");
	d.in_call = 1;
	maildir_delivery_ops.data(txn, mb, probe_cb, &d);
	d.in_call = 0;
	CHECK(d.calls == 0, "data replied inline");
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(d.calls == 1 && d.last.code == 250 &&
	    strcmp(d.last.enh, "2.0.0") == 0 &&
	    strncmp(d.last.text, "Ok: saved as ", 13) == 0, "data reply %d %s",
	    d.last.code, d.last.text);
	CHECK(count("new") == 1 && count("tmp") == 0, "files new=%d tmp=%d",
	    count("new"), count("tmp"));
	name = d.last.text + 13;
	snprintf(path, sizeof(path), "%s/new/%s", root, name);
	snprintf(want, sizeof(want), "Return-Path: <alice@example.com>\r\n"
	    "Delivered-To: bob@example.net\r\n"
	    "Delivered-To: carol@example.org\r\n");
	hlen = strlen(want);
	buf = xmalloc(hlen + msgbuf_size(mb) + 1);
	if ((fp = fopen(path, "r")) == NULL)
		fatal("%s", path);
	n = fread(buf, 1, hlen + msgbuf_size(mb) + 1, fp);
	fclose(fp);
	CHECK(n == hlen + msgbuf_size(mb), "file size %zu", n);
	CHECK(memcmp(buf, want, hlen) == 0, "envelope headers");
	CHECK(memcmp(buf + hlen, "line 0\r\n", 8) == 0, "body start");
	free(buf);
	unlink(path);
	msgbuf_free(mb);
}

/* abort() with replies pending: no callback, nothing written. */
static void
test_abort(struct maildir *md)
{
	struct probe r = { 0 };
	void *txn;

	txn = maildir_delivery_ops.begin(md, "", "", 2);
	maildir_delivery_ops.rcpt(txn, "bob@example.net", "", probe_cb, &r);
	maildir_delivery_ops.abort(txn);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(r.calls == 0, "callback after abort");
	CHECK(count("new") == 0, "file after abort");
}

struct chain {
	void *txn;
	struct msgbuf *mb;
	struct probe d;
	int step;
};

/* A session that sends DATA from inside the RCPT callback. */
static void
chain_cb(void *arg, const struct smtp_result *r)
{
	struct chain *c = arg;

	CHECK(r->code == 250, "chain rcpt %d", r->code);
	c->step++;
	maildir_delivery_ops.data(c->txn, c->mb, probe_cb, &c->d);
}

/* Re-entry from a callback, null sender. */
static void
test_reenter(struct maildir *md)
{
	struct chain c;
	char path[1024];

	memset(&c, 0, sizeof(c));
	c.mb = body(10);
	c.txn = maildir_delivery_ops.begin(md, "", "", 3);
	maildir_delivery_ops.rcpt(c.txn, "bob@example.net", "", chain_cb, &c);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(c.step == 1 && c.d.calls == 1 && c.d.last.code == 250,
	    "reenter step=%d calls=%d", c.step, c.d.calls);
	snprintf(path, sizeof(path), "%s/new/%s", root, c.d.last.text + 13);
	unlink(path);
	msgbuf_free(c.mb);
}

/* An I/O failure (new/ is gone): 451 4.3.0 and no file left anywhere. */
static void
test_failure(struct maildir *md)
{
	struct probe r = { 0 }, d = { 0 };
	struct msgbuf *mb = body(100);
	char path[256];
	void *txn;

	snprintf(path, sizeof(path), "%s/new", root);
	if (rmdir(path) == -1)
		fatal("rmdir %s", path);
	txn = maildir_delivery_ops.begin(md, "a@example.com", "", 4);
	maildir_delivery_ops.rcpt(txn, "b@example.net", "", probe_cb, &r);
	maildir_delivery_ops.data(txn, mb, probe_cb, &d);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(r.calls == 1 && d.calls == 1, "failure calls %d %d", r.calls,
	    d.calls);
	CHECK(d.last.code == 451 && strcmp(d.last.enh, "4.3.0") == 0,
	    "failure reply %d %s %s", d.last.code, d.last.enh, d.last.text);
	CHECK(count("tmp") == 0, "partial file left in tmp");
	msgbuf_free(mb);
}

/* Remove the (by now empty) test directories. */
static void
cleanup(const char *top)
{
	static const char *subs[] = { "tmp", "new", "cur" };
	char path[256];
	int i;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", root, subs[i]);
		rmdir(path);
	}
	if (rmdir(root) == -1 || rmdir(top) == -1)
		log_warn("cannot clean up %s", top);
}

/* Run every check; non-zero exit when one failed. */
int
main(void)
{
	struct maildir *md;
	char err[256], path[256], top[64];

	log_init("test_maildir", 1, LOG_LVL_ERROR);
	snprintf(top, sizeof(top), "/tmp/test_maildir.XXXXXX");
	if (mkdtemp(top) == NULL)
		fatal("mkdtemp");
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new");
	snprintf(path, sizeof(path), "%s/md", top);
	CHECK((md = maildir_open(base, path, err, sizeof(err))) != NULL,
	    "maildir_open: %s", err);
	strlcpy_s(root, path, sizeof(root));
	CHECK(count("tmp") == 0 && count("new") == 0 && count("cur") == 0,
	    "subdirectories");
	test_save(md);
	test_abort(md);
	test_reenter(md);
	test_failure(md);
	maildir_close(md);
	event_base_free(base);
	cleanup(top);
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all maildir tests passed\n");
	return 0;
}
