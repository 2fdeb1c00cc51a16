/* msgbuf.h: a message body in memory up to a threshold, spilled to an
 * unlinked temporary file beyond it. */
#ifndef SMRELAY_MSGBUF_H
#define SMRELAY_MSGBUF_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/bio.h>

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
/* Another reference (atomic: a worker may take and drop its own). */
struct msgbuf *msgbuf_ref(struct msgbuf *);
/* Drop a reference; the last one frees. */
void msgbuf_free(struct msgbuf *);
/* A BIO reading [start, end) of the body in bounded reads, rewindable
 * with BIO_reset(); it holds a reference.  NULL when out of memory. */
BIO *msgbuf_bio_reader(struct msgbuf *, size_t start, size_t end);
/* A BIO appending to the body (spilling as msgbuf_append does). */
BIO *msgbuf_bio_writer(struct msgbuf *);

#endif
