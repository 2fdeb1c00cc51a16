/* hop.h: whether each destination (a next hop, or a recipient domain's MX
 * hosts) is up: a connection failure (4.4.x) marks it down, the next
 * success marks it up again.  The queue runner asks it whether an in-line
 * transaction should try the destination at all, and learns from it when
 * that destination's backlog is due.  One dead destination does not slow
 * the others. */
#ifndef SMRELAY_HOP_H
#define SMRELAY_HOP_H

struct hops;
struct smtp_result;

/* hop.c */
/* A table in which every destination starts up. */
struct hops *hops_new(void);
/* What a transaction saw at destination `key`: 1 if this success ends a
 * spell of connection failures (its backlog is due now), else 0. */
int hops_result(struct hops *, const char *key, const struct smtp_result *);
/* A connection failure (4.4.x) at destination `key`. */
void hops_failed(struct hops *, const char *key);
/* Down, and the last failure was less than a few seconds ago. */
int hops_dead(const struct hops *, const char *key);
/* Whether destination key is down (a failure, no success since). */
int hops_is_down(const struct hops *, const char *key);
/* The queue runner's one attempt at a destination that is down: start
 * one (0 if one is already running: the caller waits), end it. */
int hops_probe_start(struct hops *, const char *key);
void hops_probe_end(struct hops *, const char *key);
/* Destinations known to be down (for logs and tests). */
size_t hops_down(const struct hops *);
void hops_free(struct hops *);

#endif
