/* hop.c: each destination's up/down state (see hop.h).  Only destinations
 * that are down take memory: a success forgets one; at most HOPS_MAX are
 * remembered (then the oldest failure is forgotten), so recipient domains
 * chosen by senders cannot grow it without bound. */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "hop.h"

#define DEAD_TTL	2	/* a failed destination is not tried in-line
				 * again for this long (seconds) */
#define HOPS_MAX	4096	/* destinations remembered as down */

struct hop {
	char		*key;
	int64_t		 down_at;	/* last connection failure */
	int		 probing;	/* the queue's attempt is running */
};

struct hops {
	struct hop	*v;		/* down ones, unordered */
	size_t		 n;
};

/* A table in which every destination starts up. */
struct hops *
hops_new(void)
{
	return xcalloc(1, sizeof(struct hops));
}

/* The entry of a destination that is down, or NULL. */
static struct hop *
find(const struct hops *h, const char *key)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->v[i].key, key) == 0)
			return &h->v[i];
	return NULL;
}

/* Forget entry p (up again, or evicted). */
static void
forget(struct hops *h, struct hop *p)
{
	free(p->key);
	*p = h->v[--h->n];
}

/* Up again on a success, down on a connection failure (4.4.x). */
int
hops_result(struct hops *h, const char *key, const struct smtp_result *r)
{
	struct hop *p;

	if (r->code >= 200 && r->code < 300) {
		if ((p = find(h, key)) == NULL)
			return 0;
		forget(h, p);
		return 1;
	}
	if (r->code >= 400 && r->code < 500 &&
	    strncmp(r->enh, "4.4.", 4) == 0)
		hops_failed(h, key);
	return 0;
}

/* Mark destination key down as of now. */
void
hops_failed(struct hops *h, const char *key)
{
	struct hop *p, *old;
	size_t i;

	if ((p = find(h, key)) == NULL) {
		if (h->n == HOPS_MAX) {
			for (old = &h->v[0], i = 1; i < h->n; i++)
				if (h->v[i].down_at < old->down_at)
					old = &h->v[i];
			forget(h, old);
		}
		if (h->n == 0 || (h->n & (h->n - 1)) == 0)
			h->v = xreallocarray(h->v, h->n == 0 ? 1 : h->n * 2,
			    sizeof(*h->v));
		p = &h->v[h->n++];
		p->key = xstrdup(key);
		p->probing = 0;
	}
	p->down_at = time(NULL);
}

/* Down within the last DEAD_TTL seconds: in-line traffic skips it. */
int
hops_dead(const struct hops *h, const char *key)
{
	const struct hop *p = find(h, key);

	return p != NULL && time(NULL) - p->down_at < DEAD_TTL;
}

/* Whether destination key is down. */
int
hops_is_down(const struct hops *h, const char *key)
{
	return find(h, key) != NULL;
}

/* Start the one attempt at a destination that is down (1), or not (0:
 * one is running). */
int
hops_probe_start(struct hops *h, const char *key)
{
	struct hop *p = find(h, key);

	if (p == NULL)
		return 1;
	if (p->probing)
		return 0;
	p->probing = 1;
	return 1;
}

/* The attempt at a destination that was down is over. */
void
hops_probe_end(struct hops *h, const char *key)
{
	struct hop *p = find(h, key);

	if (p != NULL)
		p->probing = 0;
}

/* Destinations known to be down. */
size_t
hops_down(const struct hops *h)
{
	return h->n;
}

/* Free the table. */
void
hops_free(struct hops *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->n; i++)
		free(h->v[i].key);
	free(h->v);
	free(h);
}
