/* inbox.c: the index of what the sink captured, for its web inbox: one
 * entry per Maildir file (new/ and cur/), numbered in arrival order, with
 * the short analysis the list shows made once, when first listed.  The
 * index lives on the event loop; analyses run in batches on a worker
 * thread (inbox_batch_run), which sees only the batch and the keys. */
#include "autoconfig.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/lib.h"
#include "sink_priv.h"

struct inbox_entry {
	unsigned long long id;
	char	*name;		/* file name in new/ or cur/ */
	time_t	 mtime;
	json_t	*summary;	/* NULL until first listed */
};

struct inbox {
	char	*dir;
	const struct sink_keys *keys;
	struct inbox_entry *e;	/* oldest first */
	size_t	 n;
	unsigned long long next_id;
};

/* Append an entry, forgetting the oldest past INBOX_MAX. */
static void
inbox_push(struct inbox *ib, const char *name, time_t mtime)
{
	struct inbox_entry *e;

	if (ib->n == INBOX_MAX) {
		free(ib->e[0].name);
		json_decref(ib->e[0].summary);
		memmove(ib->e, ib->e + 1, --ib->n * sizeof(*ib->e));
	}
	if (ib->e == NULL)
		ib->e = xcalloc(INBOX_MAX, sizeof(*ib->e));
	e = &ib->e[ib->n++];
	e->id = ++ib->next_id;
	e->name = xstrdup(name);
	e->mtime = mtime;
	e->summary = NULL;
}

struct inbox_scan {
	char	*name;
	time_t	 mtime;
};

static int
inbox_scan_cmp(const void *a, const void *b)
{
	const struct inbox_scan *x = a, *y = b;

	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The files already there, in the order they came (mtime, then name). */
static void
inbox_scan(struct inbox *ib)
{
	static const char *subs[] = { "new", "cur" };
	struct inbox_scan *s = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	struct stat st;
	char *path;
	DIR *d;
	int k;

	for (k = 0; k < 2; k++) {
		path = xasprintf("%s/%s", ib->dir, subs[k]);
		d = opendir(path);
		free(path);
		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL && n < 10 * INBOX_MAX) {
			if (de->d_name[0] == '.' ||
			    fstatat(dirfd(d), de->d_name, &st, 0) == -1 ||
			    !S_ISREG(st.st_mode))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				s = xreallocarray(s, cap, sizeof(*s));
			}
			s[n].name = xstrdup(de->d_name);
			s[n++].mtime = st.st_mtime;
		}
		closedir(d);
	}
	if (n > 0)
		qsort(s, n, sizeof(*s), inbox_scan_cmp);
	for (i = 0; i < n; i++) {
		if (i + INBOX_MAX >= n)
			inbox_push(ib, s[i].name, s[i].mtime);
		free(s[i].name);
	}
	free(s);
}

/* The index of DIR's messages. */
struct inbox *
inbox_open(const char *dir, const struct sink_keys *keys)
{
	struct inbox *ib = xcalloc(1, sizeof(*ib));

	ib->dir = xstrdup(dir);
	ib->keys = keys;
	inbox_scan(ib);
	return ib;
}

void
inbox_free(struct inbox *ib)
{
	size_t i;

	if (ib == NULL)
		return;
	for (i = 0; i < ib->n; i++) {
		free(ib->e[i].name);
		json_decref(ib->e[i].summary);
	}
	free(ib->e);
	free(ib->dir);
	free(ib);
}

/* A message saved as DIR/new/NAME. */
void
inbox_add(struct inbox *ib, const char *name)
{
	inbox_push(ib, name, time(NULL));
}

static struct inbox_entry *
inbox_find(struct inbox *ib, unsigned long long id)
{
	size_t lo = 0, hi = ib->n, mid;

	while (lo < hi) {		/* ids grow along the array */
		mid = (lo + hi) / 2;
		if (ib->e[mid].id == id)
			return &ib->e[mid];
		if (ib->e[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The file of an entry: new/ first, else cur/ (a reader may move it). */
static char *
inbox_entry_path(struct inbox *ib, const struct inbox_entry *e)
{
	char *p = xasprintf("%s/new/%s", ib->dir, e->name);

	if (access(p, F_OK) == 0)
		return p;
	free(p);
	p = xasprintf("%s/cur/%s", ib->dir, e->name);
	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return NULL;
}

char *
inbox_path(struct inbox *ib, unsigned long long id)
{
	struct inbox_entry *e = inbox_find(ib, id);

	return e != NULL ? inbox_entry_path(ib, e) : NULL;
}

/* Read a message, all of it up to VERDICT_MSG_MAX, else its head only. */
static char *
inbox_read(const char *path, size_t *len, size_t *total)
{
	struct stat st;
	size_t want, got = 0;
	ssize_t r;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	*total = (size_t)st.st_size;
	want = *total <= VERDICT_MSG_MAX ? *total : VERDICT_HDR_BYTES;
	buf = xmalloc(want + 1);
	while (got < want && (r = read(fd, buf + got, want - got)) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	if (got < want)		/* shrank meanwhile */
		*total = got;
	return buf;
}

/* What a batch analyses: copied from an entry, so the entry may go. */
struct inbox_item {
	unsigned long long id;
	char	*name;
	char	*path;		/* NULL: the file is gone */
	time_t	 mtime;
	json_t	*full;		/* the analysis, after run */
};

struct inbox_batch {
	const struct sink_keys *keys;
	struct inbox_item *items;
	size_t	 n;
};

/* Add an entry to a batch. */
static void
inbox_batch_add(struct inbox *ib, struct inbox_batch *b,
    const struct inbox_entry *e)
{
	struct inbox_item *it;

	b->items = xreallocarray(b->items, b->n + 1, sizeof(*b->items));
	it = &b->items[b->n++];
	it->id = e->id;
	it->name = xstrdup(e->name);
	it->path = inbox_entry_path(ib, e);
	it->mtime = e->mtime;
	it->full = NULL;
}

static struct inbox_batch *
inbox_batch_new(struct inbox *ib)
{
	struct inbox_batch *b = xcalloc(1, sizeof(*b));

	b->keys = ib->keys;
	return b;
}

/* The full analysis of an item, with its id, time and file. */
static json_t *
inbox_analyse(const struct sink_keys *keys, const struct inbox_item *it)
{
	char *buf = NULL, when[32];
	size_t len, total;
	struct tm tm;
	json_t *o;

	if (it->path == NULL ||
	    (buf = inbox_read(it->path, &len, &total)) == NULL) {
		o = json_object();
		json_object_set_new(o, "error", json_string("file gone"));
		json_object_set_new(o, "badges", json_array());
	} else {
		o = verdict_analyse(keys, buf, len, total);
		free(buf);
	}
	json_object_set_new(o, "id", json_integer((json_int_t)it->id));
	json_object_set_new(o, "file", verdict_jstr(it->name,
	    strlen(it->name)));
	gmtime_r(&it->mtime, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "time", json_string(when));
	return o;
}

/* On a worker thread: analyse every item. */
void
inbox_batch_run(struct inbox_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		b->items[i].full = inbox_analyse(b->keys, &b->items[i]);
}

void
inbox_batch_free(struct inbox_batch *b)
{
	size_t i;

	if (b == NULL)
		return;
	for (i = 0; i < b->n; i++) {
		free(b->items[i].name);
		free(b->items[i].path);
		json_decref(b->items[i].full);
	}
	free(b->items);
	free(b);
}

/* The short form of a full analysis, for the list. */
static json_t *
inbox_summary(json_t *full)
{
	json_t *s = verdict_summary(full);

	json_object_set(s, "id", json_object_get(full, "id"));
	json_object_set(s, "time", json_object_get(full, "time"));
	return s;
}

/* Walk the list page: call fn on each entry in it, newest first. */
static size_t
inbox_page(struct inbox *ib, unsigned long long since, size_t offset,
    size_t limit, void (*fn)(struct inbox *, struct inbox_entry *, void *),
    void *arg)
{
	size_t i, skipped = 0, taken = 0, matching = 0;

	for (i = ib->n; i-- > 0;) {
		if (ib->e[i].id <= since)
			break;
		matching++;
		if (skipped < offset) {
			skipped++;
			continue;
		}
		if (taken < limit) {
			taken++;
			fn(ib, &ib->e[i], arg);
		}
	}
	return matching;
}

static void
inbox_need(struct inbox *ib, struct inbox_entry *e, void *arg)
{
	if (e->summary == NULL)
		inbox_batch_add(ib, arg, e);
}

/* The entries of a list page not analysed yet; NULL when none. */
struct inbox_batch *
inbox_list_prepare(struct inbox *ib, unsigned long long since, size_t offset,
    size_t limit)
{
	struct inbox_batch *b = inbox_batch_new(ib);

	if (limit > INBOX_PAGE_MAX)
		limit = INBOX_PAGE_MAX;
	inbox_page(ib, since, offset, limit, inbox_need, b);
	if (b->n == 0) {
		inbox_batch_free(b);
		return NULL;
	}
	return b;
}

/* Keep a batch's summaries in the entries still indexed, then free it. */
void
inbox_batch_finish(struct inbox *ib, struct inbox_batch *b)
{
	struct inbox_entry *e;
	size_t i;

	for (i = 0; b != NULL && i < b->n; i++) {
		if (b->items[i].full == NULL ||
		    (e = inbox_find(ib, b->items[i].id)) == NULL ||
		    e->summary != NULL)
			continue;
		e->summary = inbox_summary(b->items[i].full);
	}
	inbox_batch_free(b);
}

static void
inbox_put(struct inbox *ib, struct inbox_entry *e, void *arg)
{
	json_t *s;

	(void)ib;
	if (e->summary != NULL)
		s = json_copy(e->summary);
	else {			/* arrived meanwhile: the next poll has it */
		s = json_object();
		json_object_set_new(s, "id", json_integer((json_int_t)e->id));
		json_object_set_new(s, "pending", json_true());
		json_object_set_new(s, "badges", json_array());
	}
	json_array_append_new(arg, s);
}

/* The list answer (see sink_priv.h). */
json_t *
inbox_list(struct inbox *ib, unsigned long long since, size_t offset,
    size_t limit)
{
	json_t *o = json_object(), *msgs = json_array();
	size_t matching;

	if (limit > INBOX_PAGE_MAX)
		limit = INBOX_PAGE_MAX;
	matching = inbox_page(ib, since, offset, limit, inbox_put, msgs);
	json_object_set_new(o, "messages", msgs);
	json_object_set_new(o, "total", json_integer((json_int_t)matching));
	json_object_set_new(o, "offset", json_integer((json_int_t)offset));
	json_object_set_new(o, "limit", json_integer((json_int_t)limit));
	json_object_set_new(o, "latest", json_integer((json_int_t)
	    (ib->n > 0 ? ib->e[ib->n - 1].id : 0)));
	return o;
}

/* A batch for one message's full analysis; NULL if there is none. */
struct inbox_batch *
inbox_get_prepare(struct inbox *ib, unsigned long long id)
{
	struct inbox_entry *e = inbox_find(ib, id);
	struct inbox_batch *b;

	if (e == NULL)
		return NULL;
	b = inbox_batch_new(ib);
	inbox_batch_add(ib, b, e);
	return b;
}

/* The full analysis a get batch made (a new reference), and free it. */
json_t *
inbox_get_finish(struct inbox *ib, struct inbox_batch *b)
{
	json_t *o = json_incref(b->items[0].full);
	struct inbox_entry *e;

	if (o != NULL && (e = inbox_find(ib, b->items[0].id)) != NULL &&
	    e->summary == NULL)
		e->summary = inbox_summary(o);
	inbox_batch_free(b);
	return o;
}
