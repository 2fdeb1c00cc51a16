/* maildir.h: the sink's backend: every message becomes one Maildir file. */
#ifndef SMRELAY_MAILDIR_H
#define SMRELAY_MAILDIR_H

#include <event2/event.h>

#include "daemon/base/base.h"

struct maildir;
struct smtp_result;
struct timeval;

/* What the sink asks of the writer (flow testing, the inbox); each may be
 * NULL. */
struct maildir_hooks {
	/* RCPT: 1 with res set to answer that instead of 250. */
	int	(*rcpt)(void *arg, struct smtp_result *res);
	/* End of DATA: 1 with res set to answer that (DELIVERY_DROP: close
	 * without a reply) and save nothing. */
	int	(*data)(void *arg, struct smtp_result *res);
	/* How long to hold the next reply (zero: not at all). */
	void	(*delay)(void *arg, struct timeval *tv);
	/* A message was saved as DIR/new/NAME. */
	void	(*saved)(void *arg, const char *name);
	void	*arg;
};

/* maildir.c */
/* Create DIR/{tmp,new,cur} as needed; NULL (err set) on failure. */
struct maildir *maildir_open(struct event_base *, const char *dir,
    char *err, size_t errlen);
void maildir_close(struct maildir *);
/* Set the hooks (copied). */
void maildir_set_hooks(struct maildir *, const struct maildir_hooks *);
/*
 * The backend (ctx is the struct maildir *).  Accepts every recipient.  At
 * data() it writes "Return-Path: <FROM>", one "Delivered-To: RCPT" per
 * recipient, then the message, to DIR/tmp, fsyncs, renames into DIR/new and
 * replies "250 2.0.0 Ok: saved as FILENAME"; on I/O failure "451 4.3.0".
 */
extern const struct delivery_ops maildir_delivery_ops;

#endif
