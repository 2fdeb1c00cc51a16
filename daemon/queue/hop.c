/* hop.c: the next hop's up/down state (see hop.h). */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/base/base.h"
#include "lib/lib.h"
#include "hop.h"

#define DEAD_TTL	2	/* a failed next hop is not tried in-line again
				 * for this long (seconds) */

struct hop {
	int		 down;
	int64_t		 down_at;	/* last connection failure */
};

/* A tracker that starts with the next hop up. */
struct hop *
hop_new(void)
{
	return xcalloc(1, sizeof(struct hop));
}

/* Up again on a success, down on a connection failure (4.4.x). */
int
hop_result(struct hop *h, const struct smtp_result *r)
{
	if (r->code >= 200 && r->code < 300) {
		if (!h->down)
			return 0;
		h->down = 0;
		return 1;
	}
	if (r->code >= 400 && r->code < 500 &&
	    strncmp(r->enh, "4.4.", 4) == 0)
		hop_failed(h);
	return 0;
}

/* Mark the next hop down as of now. */
void
hop_failed(struct hop *h)
{
	h->down = 1;
	h->down_at = time(NULL);
}

/* Down within the last DEAD_TTL seconds: in-line traffic skips it. */
int
hop_dead(const struct hop *h)
{
	return h->down && time(NULL) - h->down_at < DEAD_TTL;
}

/* Free the tracker. */
void
hop_free(struct hop *h)
{
	free(h);
}
