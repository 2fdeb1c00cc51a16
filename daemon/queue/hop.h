/* hop.h: whether the next hop is up: a connection failure (4.4.x) marks it
 * down, the next success marks it up again.  The queue runner asks it
 * whether an in-line transaction should try the hop at all, and learns
 * from it when the backlog is due. */
#ifndef SMRELAY_HOP_H
#define SMRELAY_HOP_H

struct hop;
struct smtp_result;

/* hop.c */
/* A tracker that starts with the next hop up. */
struct hop *hop_new(void);
/* What a transaction saw at the next hop: 1 if this success ends a spell
 * of connection failures (the backlog is due now), else 0. */
int hop_result(struct hop *, const struct smtp_result *);
/* A connection failure (4.4.x) at the next hop. */
void hop_failed(struct hop *);
/* Down, and the last failure was less than a few seconds ago. */
int hop_dead(const struct hop *);
void hop_free(struct hop *);

#endif
