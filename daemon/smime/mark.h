/* mark.h: the loop-guard mark.  What we transform gets on top
 *
 *     X-Smrelay-Processed: HOST; ACTIONS;
 *      mac=HEX
 *
 * where HEX is HMAC-SHA-256, under this installation's secret (keys_mark),
 * of HOST, ACTIONS and a digest of the message's top-level Content-Type
 * and body as we sent them.  A mark of ours that does not verify (written
 * by someone else, or copied onto other content) counts for nothing and is
 * removed; one that verifies says which actions are already done. */
#ifndef SMRELAY_MARK_H
#define SMRELAY_MARK_H

#include <stddef.h>
#include <sys/types.h>

#define MARK_FIELD	"X-Smrelay-Processed"

struct keys;

/* mark.c */
/*
 * mark_make() of a message read in pieces: hdr is its header block
 * (through the blank line), rd(arg, buf, len, off) reads the rest from
 * bodyoff on (bytes read, 0 at the end, -1 on error).
 */
int mark_make_read(struct keys *, const char *host, unsigned actions,
    const char *hdr, size_t hlen,
    ssize_t (*rd)(void *arg, char *buf, size_t len, size_t off), void *arg,
    size_t bodyoff, char *field, size_t fieldlen);
/*
 * The field, CRLF-terminated, for msg (the message we just made, without
 * the mark) after doing `actions` (POLICY_* bits).  0, or -1 when there
 * is no secret to make it with.
 */
int mark_make(struct keys *, const char *host, unsigned actions,
    const char *msg, size_t len, char *field, size_t fieldlen);
/*
 * The actions a mark of host on msg proves done (0: none verifies), and in
 * *forged the number of host's marks that do not verify.
 */
unsigned mark_read(struct keys *, const char *host, const char *msg,
    size_t len, int *forged);
/* msg without host's marks that do not verify (all: without any of
 * host's marks): malloc'd (*outlen bytes), or NULL when there is none. */
char *mark_strip(struct keys *, const char *host, const char *msg,
    size_t len, int all, size_t *outlen);
/*
 * mark_read() of a message read in pieces as mark_make_read() reads it:
 * *done what a mark of host proves done, *forged how many of host's do
 * not verify; and, when marks must go (those that do not verify, and all
 * of host's when some of `actions` is left to do: the new mark replaces
 * them), the header block without them (malloc'd, *outlen bytes, the
 * blank line included); else NULL.
 */
char *mark_read_strip(struct keys *, const char *host, unsigned actions,
    const char *hdr, size_t hlen,
    ssize_t (*rd)(void *arg, char *buf, size_t len, size_t off), void *arg,
    size_t bodyoff, unsigned *done, int *forged, size_t *outlen);

#endif
