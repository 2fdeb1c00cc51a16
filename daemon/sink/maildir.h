/* maildir.h: the sink's backend: every message becomes one Maildir file. */
#ifndef SMRELAY_MAILDIR_H
#define SMRELAY_MAILDIR_H

#include <event2/event.h>

#include "daemon/base/base.h"

struct maildir;

/* maildir.c */
/* Create DIR/{tmp,new,cur} as needed; NULL (err set) on failure. */
struct maildir *maildir_open(struct event_base *, const char *dir,
    char *err, size_t errlen);
void maildir_close(struct maildir *);
/*
 * The backend (ctx is the struct maildir *).  Accepts every recipient.  At
 * data() it writes "Return-Path: <FROM>", one "Delivered-To: RCPT" per
 * recipient, then the message, to DIR/tmp, fsyncs, renames into DIR/new and
 * replies "250 2.0.0 Ok: saved as FILENAME"; on I/O failure "451 4.3.0".
 */
extern const struct delivery_ops maildir_delivery_ops;

#endif
