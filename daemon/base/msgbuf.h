/* msgbuf.h: a message body in memory up to a threshold, spilled to an
 * unlinked temporary file beyond it. */
#ifndef SMRELAY_MSGBUF_H
#define SMRELAY_MSGBUF_H

#include <stddef.h>
#include <sys/types.h>

#define MSGBUF_MEM_DEFAULT (128 * 1024)

struct msgbuf;

/* msgbuf.c */
struct msgbuf *msgbuf_new(const char *tmpdir, size_t mem_limit);
/* A read-only body over an existing file; NULL with errno. */
struct msgbuf *msgbuf_open(const char *path);
/* Append bytes; -1 with errno on I/O error (e.g. ENOSPC). */
int msgbuf_append(struct msgbuf *, const void *, size_t);
size_t msgbuf_size(const struct msgbuf *);
/* Read up to len bytes at offset; returns bytes read, 0 at end, -1 on error. */
ssize_t msgbuf_pread(struct msgbuf *, void *, size_t len, size_t off);
/* Zero-copy view of the in-memory data, or NULL when spilled to a file. */
const char *msgbuf_mem(const struct msgbuf *);
/* All of it in a new NUL-terminated buffer (free it); NULL on error. */
char *msgbuf_slurp(struct msgbuf *, size_t *len);
/* Another reference (counts are not atomic: take and drop them on the
 * event loop; a worker may read through a reference it was given). */
struct msgbuf *msgbuf_ref(struct msgbuf *);
/* Drop a reference; the last one frees. */
void msgbuf_free(struct msgbuf *);

#endif
