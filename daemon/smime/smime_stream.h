/* smime_stream.h: S/MIME on a message held in a msgbuf (memory for small
 * ones, an unlinked spill file for big ones), read and written in bounded
 * pieces: memory stays flat whatever the message's size.  The MIME
 * structure is parsed once into a tree of offsets (mime_tree_begin) that
 * the steps share; the result goes to a new msgbuf. */
#ifndef SMRELAY_SMIME_STREAM_H
#define SMRELAY_SMIME_STREAM_H

#include <stddef.h>

#include "daemon/base/base.h"
#include "proto/proto.h"
#include "smime_msg.h"

#define SMIME_STREAM_HDR_MAX	(1024 * 1024)	/* header block kept */
#define SMIME_STREAM_SIG_MAX	(1024 * 1024)	/* a detached signature */

struct certsrc;

/* smime_stream.c */
/*
 * The header block of mb in a new NUL-ended buffer: *hlen bytes of fields
 * (the blank line starts at *hlen), the body at *body (after the blank
 * line; both the size when there is none); NULL when it is longer than
 * max or cannot be read.
 */
char *smime_stream_header(struct msgbuf *, size_t max, size_t *hlen,
    size_t *body);
/* Parse mb into t, reading it in pieces; 0, or -1 when it is over the
 * MIME limits or cannot be read. */
int smime_stream_parse(struct msgbuf *, struct mime_tree *);
/*
 * Sign as `from` and/or encrypt for rcpts the message in `in` (parsed
 * into t): canonicalised in pieces into a spill file, the CMS engine fed
 * from it through a BIO, the new message written to *out (a new msgbuf
 * spilling into tmpdir).  0, or -1 with res->err.
 */
int smime_stream_wrap(const struct certsrc *, struct msgbuf *in,
    const struct mime_tree *t, const char *tmpdir, const char *from,
    const char *const *rcpts, size_t n, const struct smime_msg_opts *,
    int sign, int enc, struct msgbuf **out, struct smime_msg_res *);
/* msgbuf_pread() as a read callback (mime_io, mark_make_read). */
ssize_t smime_stream_read(void *mb, char *buf, size_t len, size_t off);
/* Copy all of src to the end of dst in pieces; 0, or -1. */
int smime_stream_copy(struct msgbuf *dst, struct msgbuf *src);
/* The same from offset off of src on. */
int smime_stream_copy_from(struct msgbuf *dst, struct msgbuf *src,
    size_t off);
/*
 * Decrypt the message in `in` (parsed into t; hdr its header block, the
 * fields end at hlen) with any of our keys, without verifying: the
 * received header fields (without Content-*, MIME-Version and
 * Authentication-Results of `host`) over the decrypted entity; the
 * envelope decoded into a spill file, opened by the engine into another,
 * the new message to *out.  0; 1 when it is not encrypted (res->err says
 * why); -1 with res->err.
 */
int smime_stream_decrypt(const struct certsrc *, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, struct msgbuf **out,
    struct smime_msg_res *);
/* What the structure of a message claiming S/MIME proves done: a
 * multipart/signed whose signature, or a P7M whose CMS, parses whole
 * (cms_structure_nid) as SignedData, EnvelopedData or AuthEnvelopedData;
 * read in pieces (the CMS from a spill file in tmpdir). */
enum smime_done smime_stream_done(struct msgbuf *, const struct mime_tree *,
    const char *tmpdir);
/*
 * Verify a multipart/signed or opaque signed-data message against the
 * trust anchors and CRLs of the store and the From address, in pieces: a
 * multipart/signed message's signed part is read from `in`; opaque
 * signed-data is decoded into a spill file and split by the engine
 * (cms_opaque_split) into the signed entity, another spill file, and a
 * detached signature checked over it.  The result to *out:
 * "Authentication-Results: host; smime=..." on top (any such field of
 * `host` from outside removed), then the message unchanged, or for opaque
 * signed-data that passed (or is only a policy failure) the received
 * fields over the signed entity.  Not S/MIME: smime=none.  A pass
 * harvests the signer's certificate.  0 (verdict in res); -1 on internal
 * errors.
 */
int smime_stream_verify(const struct certsrc *, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, struct msgbuf **out,
    struct smime_msg_res *);
/* smime_stream_verify() of a message only if it is signed as the engine
 * would find (multipart/signed, or a P7M that says signed-data or
 * nothing), read once: 1 (res cleared, *out NULL) when it is not. */
int smime_stream_verify_signed(const struct certsrc *, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, struct msgbuf **out,
    struct smime_msg_res *);

#endif
