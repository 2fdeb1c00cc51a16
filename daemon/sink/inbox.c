/* inbox.c: the index of what the sink captured, for its web inbox: one
 * entry per Maildir file (new/ and cur/), numbered in arrival order, with
 * the short analysis the list shows made once, when first listed. */
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

/* The full analysis of an entry, with its id, time and file. */
static json_t *
inbox_analyse(struct inbox *ib, struct inbox_entry *e)
{
	char *path, *buf, when[32];
	size_t len, total;
	struct tm tm;
	json_t *o;

	if ((path = inbox_entry_path(ib, e)) == NULL ||
	    (buf = inbox_read(path, &len, &total)) == NULL) {
		free(path);
		o = json_object();
		json_object_set_new(o, "error", json_string("file gone"));
	} else {
		o = verdict_analyse(ib->keys, buf, len, total);
		free(buf);
		free(path);
	}
	json_object_set_new(o, "id", json_integer((json_int_t)e->id));
	json_object_set_new(o, "file", verdict_jstr(e->name,
	    strlen(e->name)));
	gmtime_r(&e->mtime, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "time", json_string(when));
	return o;
}

/* The list answer (see sink_priv.h). */
json_t *
inbox_list(struct inbox *ib, unsigned long long since, size_t offset,
    size_t limit)
{
	json_t *o = json_object(), *msgs = json_array(), *full, *s;
	size_t i, skipped = 0, matching = 0;
	struct inbox_entry *e;

	if (limit > INBOX_PAGE_MAX)
		limit = INBOX_PAGE_MAX;
	for (i = ib->n; i-- > 0;) {
		e = &ib->e[i];
		if (e->id <= since)
			break;
		matching++;
		if (skipped < offset) {
			skipped++;
			continue;
		}
		if (json_array_size(msgs) >= limit)
			continue;
		if (e->summary == NULL) {
			full = inbox_analyse(ib, e);
			e->summary = verdict_summary(full);
			json_object_set(e->summary, "id",
			    json_object_get(full, "id"));
			json_object_set(e->summary, "time",
			    json_object_get(full, "time"));
			json_decref(full);
		}
		s = json_copy(e->summary);
		json_array_append_new(msgs, s);
	}
	json_object_set_new(o, "messages", msgs);
	json_object_set_new(o, "total", json_integer((json_int_t)matching));
	json_object_set_new(o, "offset", json_integer((json_int_t)offset));
	json_object_set_new(o, "limit", json_integer((json_int_t)limit));
	json_object_set_new(o, "latest", json_integer((json_int_t)
	    (ib->n > 0 ? ib->e[ib->n - 1].id : 0)));
	return o;
}

/* One message's full analysis; NULL if there is no such message. */
json_t *
inbox_get(struct inbox *ib, unsigned long long id)
{
	struct inbox_entry *e = inbox_find(ib, id);

	return e != NULL ? inbox_analyse(ib, e) : NULL;
}
