/* smime_stream.c: S/MIME on a message in a msgbuf, in bounded pieces (see
 * smime_stream.h). */
#include "autoconfig.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "smime_msg_priv.h"
#include "smime_stream.h"

#define SS_CHUNK	65536		/* bytes read at a time */
#define MIME_VERSION	"MIME-Version: 1.0\r\n"

/* What a P7M holds (p7m_kind). */
enum { SS_ENVELOPED, SS_OTHER, SS_MALFORMED };

/* msgbuf_pread() with the signature of a read callback. */
ssize_t
smime_stream_read(void *mb, char *buf, size_t len, size_t off)
{
	return msgbuf_pread(mb, buf, len, off);
}

/* Read the header block, piece by piece, until the blank line. */
char *
smime_stream_header(struct msgbuf *mb, size_t max, size_t *hlen,
    size_t *body)
{
	size_t n = 0, cap = 0, ls = 0, i, total = msgbuf_size(mb);
	char *h = NULL;
	ssize_t r;

	for (;;) {
		if (cap - n < SS_CHUNK + 1) {
			cap = cap * 2 + SS_CHUNK + 1;
			h = xrealloc(h, cap);
		}
		if ((r = msgbuf_pread(mb, h + n, SS_CHUNK, n)) < 0) {
			free(h);
			return NULL;
		}
		for (i = n; i < n + (size_t)r; i++) {
			if (h[i] != '\n')
				continue;
			if (i == ls || (i == ls + 1 && h[ls] == '\r')) {
				*hlen = ls;
				*body = i + 1;
				h[i + 1] = '\0';
				return h;
			}
			ls = i + 1;
		}
		n += (size_t)r;
		if (r == 0 || n >= total) {
			*hlen = *body = n;   /* no body */
			h[n] = '\0';
			return h;
		}
		if (n > max) {
			free(h);
			return NULL;
		}
	}
}

/* Parse a message into a tree of offsets, reading it in pieces. */
int
smime_stream_parse(struct msgbuf *mb, struct mime_tree *t)
{
	struct mime_tb *tb = mime_tree_begin(t);
	char *buf = xmalloc(SS_CHUNK);
	size_t off = 0;
	ssize_t r;

	while ((r = msgbuf_pread(mb, buf, SS_CHUNK, off)) > 0) {
		mime_tree_feed(tb, buf, (size_t)r);
		off += (size_t)r;
	}
	free(buf);
	if (mime_tree_end(tb) == -1)
		return -1;
	if (r < 0) {
		mime_tree_free(t);
		return -1;
	}
	return 0;
}

/* Copy src from off on to the end of dst in pieces. */
static int
copy_from(struct msgbuf *dst, struct msgbuf *src, size_t off)
{
	char *buf = xmalloc(SS_CHUNK);
	ssize_t r;

	while ((r = msgbuf_pread(src, buf, SS_CHUNK, off)) > 0) {
		if (msgbuf_append(dst, buf, (size_t)r) == -1)
			break;
		off += (size_t)r;
	}
	free(buf);
	return off >= msgbuf_size(src) ? 0 : -1;
}

/* Copy src to the end of dst in pieces. */
int
smime_stream_copy(struct msgbuf *dst, struct msgbuf *src)
{
	return copy_from(dst, src, 0);
}

/* The same from offset off of src on. */
int
smime_stream_copy_from(struct msgbuf *dst, struct msgbuf *src, size_t off)
{
	return copy_from(dst, src, off);
}

/* Where the canonical form goes: outer fields to the output, the entity
 * to its own spill file. */
struct ss_canon {
	struct msgbuf	*outer, *entity;
};

/* mime_io write callback. */
static int
canon_write(void *arg, int which, const char *buf, size_t len)
{
	struct ss_canon *c = arg;

	return msgbuf_append(which == MIME_IO_OUTER ? c->outer : c->entity,
	    buf, len);
}

/* Run one CMS step: from all of `in` into `out`. */
static int
step(const struct certsrc *src, struct msgbuf *in, struct msgbuf *out,
    int sign, const char *from, const char *const *rcpts, size_t n,
    const struct smime_msg_opts *o, struct smime_msg_res *res)
{
	BIO *r, *w;
	int rc = -1;

	r = msgbuf_bio_reader(in, 0, msgbuf_size(in));
	w = msgbuf_bio_writer(out);
	if (r == NULL || w == NULL)
		snprintf(res->err, sizeof(res->err), "out of memory");
	else if (sign)
		rc = smime_msg_sign_bio(src, r, from, o, w, res);
	else
		rc = smime_msg_encrypt_bio(src, r, from, rcpts, n, o, w, res);
	BIO_free(r);
	BIO_free(w);
	return rc;
}

/* Sign and/or encrypt a message, piece by piece. */
int
smime_stream_wrap(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const char *tmpdir, const char *from,
    const char *const *rcpts, size_t n, const struct smime_msg_opts *o,
    int sign, int enc, struct msgbuf **outp, struct smime_msg_res *res)
{
	struct ss_canon c;
	struct mime_io io;
	struct msgbuf *mid = NULL;
	int r = -1;

	memset(res, 0, sizeof(*res));
	*outp = NULL;
	c.outer = msgbuf_new(tmpdir, 0);
	c.entity = msgbuf_new(tmpdir, 0);
	io.read = smime_stream_read;
	io.rarg = in;
	io.write = canon_write;
	io.warg = &c;
	if (mime_canon_stream(t, &io) == -1 ||
	    msgbuf_append(c.outer, MIME_VERSION, strlen(MIME_VERSION)) == -1) {
		snprintf(res->err, sizeof(res->err), "cannot read the message "
		    "or write its canonical form");
		goto done;
	}
	if (sign && step(src, c.entity, enc ? (mid = msgbuf_new(tmpdir, 0)) :
	    c.outer, 1, from, NULL, 0, o, res) == -1)
		goto done;
	if (enc && step(src, sign ? mid : c.entity, c.outer, 0, from, rcpts, n,
	    o, res) == -1)
		goto done;
	*outp = c.outer;
	c.outer = NULL;
	r = 0;
 done:
	msgbuf_free(c.outer);
	msgbuf_free(c.entity);
	msgbuf_free(mid);
	return r;
}

/* The type of a P7M: its smime-type, else the OID at the start of the
 * decoded CMS (d->der holds its first bytes). */
static int
p7m_kind(const struct mime_smime *d)
{
	static const unsigned char env[] = { 0x06, 0x09, 0x2a, 0x86, 0x48,
	    0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03 };
	static const unsigned char aenv[] = { 0x06, 0x0b, 0x2a, 0x86, 0x48,
	    0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17 };
	static const unsigned char sig[] = { 0x06, 0x09, 0x2a, 0x86, 0x48,
	    0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
	size_t n = d->derlen < 32 ? d->derlen : 32;

	if (strcmp(d->smime_type, "enveloped-data") == 0 ||
	    strcmp(d->smime_type, "authenveloped-data") == 0)
		return SS_ENVELOPED;
	if (d->smime_type[0] != '\0')
		return SS_OTHER;
	if (memmem(d->der, n, env, sizeof(env)) != NULL ||
	    memmem(d->der, n, aenv, sizeof(aenv)) != NULL)
		return SS_ENVELOPED;
	if (memmem(d->der, n, sig, sizeof(sig)) != NULL)
		return SS_OTHER;
	return SS_MALFORMED;
}

/* Decode a body range (base64, quoted-printable or as it is) into dst. */
static int
decode_into(struct msgbuf *in, size_t off, size_t end, enum mime_cte cte,
    struct msgbuf *dst)
{
	struct mime_b64dec bd;
	struct mime_qpdec qd;
	char *buf = xmalloc(SS_CHUNK), *out = xmalloc(SS_CHUNK + 128);
	size_t o;
	ssize_t r;
	int rc = -1;

	mime_b64dec_init(&bd);
	mime_qpdec_init(&qd);
	while (off < end) {
		if ((r = msgbuf_pread(in, buf, end - off < SS_CHUNK ? end - off :
		    SS_CHUNK, off)) <= 0)
			goto done;
		off += (size_t)r;
		if (cte == MIME_CTE_BASE64)
			o = mime_b64dec_feed(&bd, buf, (size_t)r, out);
		else if (cte == MIME_CTE_QP)
			o = mime_qpdec_feed(&qd, buf, (size_t)r, out);
		else {
			memcpy(out, buf, (size_t)r);
			o = (size_t)r;
		}
		if (msgbuf_append(dst, out, o) == -1)
			goto done;
	}
	o = cte == MIME_CTE_BASE64 ? mime_b64dec_end(&bd, out) :
	    cte == MIME_CTE_QP ? mime_qpdec_end(&qd, out) : 0;
	rc = msgbuf_append(dst, out, o);
 done:
	free(buf);
	free(out);
	return rc;
}

/* A reader of the root's body decoded into a spill file in tmpdir (the
 * reader holds it); NULL when it cannot be read or written. */
static BIO *
root_reader(struct msgbuf *in, const struct mime_tree *t, const char *tmpdir)
{
	struct msgbuf *der = msgbuf_new(tmpdir, 0);
	BIO *r = NULL;

	if (decode_into(in, t->root->body_start, t->root->body_end,
	    t->root->cte, der) == 0)
		r = msgbuf_bio_reader(der, 0, msgbuf_size(der));
	msgbuf_free(der);
	return r;
}

/* mime_io over a msgbuf, reading only. */
static void
io_reader(struct mime_io *io, struct msgbuf *mb)
{
	memset(io, 0, sizeof(*io));
	io->read = smime_stream_read;
	io->rarg = mb;
}

/* The header of an unwrapped message: what goes before the entity's
 * body (unwrap_head()). */
struct unwrapped {
	char	*top;		/* the received fields kept, our MIME-Version */
	size_t	 toplen;
	char	*kept;		/* the entity's fields kept (NULL: none) */
	size_t	 klen;
	size_t	 from;		/* where the rest of the entity starts */
};

#define SS_FIRST	1024	/* an entity's first bytes: fields or not */

/*
 * The header of the message that unwrapping ent gives (decrypted, or
 * opaque signed-data opened), into u: the received fields as
 * smime_msg_open_head() keeps them next to the entity's own, our
 * MIME-Version, the entity's header block as smime_msg_unwrapped_fields()
 * keeps it.  -1 when the entity's header block, or the whole, is over
 * SMIME_STREAM_HDR_MAX (or cannot be read): its fields cannot be checked
 * (a sender's Authentication-Results among them would pass as ours), nor
 * could the result's be.
 */
static int
unwrap_head(struct msgbuf *ent, const char *hdr, size_t hlen,
    const char *host, struct unwrapped *u)
{
	char first[SS_FIRST], *eh = NULL;
	size_t ehlen, ebody;
	ssize_t nf;

	memset(u, 0, sizeof(*u));
	if ((nf = msgbuf_pread(ent, first, SS_FIRST, 0)) < 0)
		return -1;
	if (smime_msg_has_fields(first, (size_t)nf) &&
	    (eh = smime_stream_header(ent, SMIME_STREAM_HDR_MAX, &ehlen,
	    &ebody)) == NULL)
		return -1;
	u->top = smime_msg_open_head(hdr, hlen, host, eh != NULL ? eh : first,
	    eh != NULL ? ehlen : (size_t)nf, &u->toplen);
	if (eh != NULL) {
		u->kept = smime_msg_unwrapped_fields(eh, ehlen, &u->klen);
		u->from = ehlen;
		free(eh);
	}
	if (u->toplen + u->klen > SMIME_STREAM_HDR_MAX) {
		free(u->top);
		free(u->kept);
		memset(u, 0, sizeof(*u));
		return -1;
	}
	return 0;
}

/* Forget an unwrap_head(). */
static void
unwrap_clear(struct unwrapped *u)
{
	free(u->top);
	free(u->kept);
	memset(u, 0, sizeof(*u));
}

/* The unwrapped message into out: ar and a line end when ar is given,
 * u's header, the rest of ent in pieces.  0 or -1. */
static int
put_unwrapped(struct msgbuf *out, const struct unwrapped *u,
    struct msgbuf *ent, const char *ar)
{
	if (ar != NULL && (msgbuf_append(out, ar, strlen(ar)) == -1 ||
	    msgbuf_append(out, "\r\n", 2) == -1))
		return -1;
	if (msgbuf_append(out, u->top, u->toplen) == -1 ||
	    (u->kept != NULL && msgbuf_append(out, u->kept, u->klen) == -1))
		return -1;
	return copy_from(out, ent, u->from);
}

/* Open an enveloped message, piece by piece. */
int
smime_stream_decrypt(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, struct msgbuf **outp,
    struct smime_msg_res *res)
{
	struct mime_smime d;
	struct mime_io io;
	struct msgbuf *dec = NULL;
	struct unwrapped u;
	BIO *r = NULL, *w = NULL;
	int kind, werr, rc = -1;

	memset(res, 0, sizeof(*res));
	*outp = NULL;
	io_reader(&io, in);
	switch (mime_smime_detect_tree(t, &io, SMIME_STREAM_SIG_MAX, &d)) {
	case MIME_SMIME_BAD:
		snprintf(res->err, sizeof(res->err),
		    "malformed S/MIME structure");
		goto done;
	case MIME_SMIME_P7M:
		if ((kind = p7m_kind(&d)) == SS_ENVELOPED)
			break;
		if (kind == SS_MALFORMED) {
			snprintf(res->err, sizeof(res->err),
			    "malformed CMS structure");
			goto done;
		}
		/* FALLTHROUGH */
	default:
		snprintf(res->err, sizeof(res->err),
		    "not an encrypted message");
		rc = 1;
		goto done;
	}
	dec = msgbuf_new(tmpdir, 0);
	if ((r = root_reader(in, t, tmpdir)) == NULL ||
	    (w = msgbuf_bio_writer(dec)) == NULL) {
		snprintf(res->err, sizeof(res->err), "cannot read the message "
		    "or write its content");
		goto done;
	}
	if (smime_msg_open_bio(src, r, w, res) == -1)
		goto done;
	if (unwrap_head(dec, hdr, hlen, host, &u) == -1) {
		snprintf(res->err, sizeof(res->err), "the decrypted message's "
		    "header would be over %d KiB", SMIME_STREAM_HDR_MAX / 1024);
		goto done;
	}
	*outp = msgbuf_new(tmpdir, 0);
	werr = put_unwrapped(*outp, &u, dec, NULL);
	unwrap_clear(&u);
	if (werr == -1) {
		msgbuf_free(*outp);
		*outp = NULL;
		snprintf(res->err, sizeof(res->err), "cannot write the "
		    "decrypted message");
		goto done;
	}
	rc = 0;
 done:
	BIO_free(r);
	BIO_free(w);
	msgbuf_free(dec);       /* content of a failed envelope goes too */
	mime_smime_clear(&d);
	return rc;
}

/*
 * The signed part [off, end) with every bare LF made CRLF, in a spill file,
 * when it has one (saved with bare LF: the signature covers the CRLF form,
 * RFC 8551 3.1.1); NULL when it has none or on errors.
 */
static struct msgbuf *
crlf_copy(struct msgbuf *in, size_t off, size_t end, const char *tmpdir)
{
	struct msgbuf *mb = NULL;
	char *buf = xmalloc(SS_CHUNK);
	size_t o, i, start, pass;
	ssize_t r;
	int prevcr, bare = 0;

	for (pass = 0; pass < 2; pass++) {
		prevcr = 0;
		for (o = off; o < end; o += (size_t)r) {
			if ((r = msgbuf_pread(in, buf, end - o < SS_CHUNK ?
			    end - o : SS_CHUNK, o)) <= 0)
				goto fail;
			for (i = start = 0; i < (size_t)r; i++) {
				if (buf[i] == '\n' && !prevcr) {
					bare = 1;
					if (mb != NULL && (msgbuf_append(mb,
					    buf + start, i - start) == -1 ||
					    msgbuf_append(mb, "\r", 1) == -1))
						goto fail;
					start = i;
				}
				prevcr = buf[i] == '\r';
			}
			if (mb != NULL && msgbuf_append(mb, buf + start,
			    (size_t)r - start) == -1)
				goto fail;
			if (mb == NULL && bare)
				break;
		}
		if (!bare)
			break;
		if (mb != NULL) {
			free(buf);
			return mb;
		}
		mb = msgbuf_new(tmpdir, 0);
	}
 fail:
	free(buf);
	msgbuf_free(mb);
	return NULL;
}

/*
 * Opaque signed-data (the P7M d at the root of `in`): the body decoded into
 * a spill file, split by the engine into the signed content (another spill
 * file) and a detached signature, which is checked over that content.
 * *content holds the signed entity when the outcome is PASS or POLICY.
 */
static void
opaque_check(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const struct mime_smime *d, const char *from,
    const char *tmpdir, struct msgbuf **content, struct cms_verify *v)
{
	unsigned char *sig = NULL;
	size_t siglen;
	BIO *r = NULL, *w = NULL;
	char err[256];
	int kind = p7m_kind(d), rc;

	*content = NULL;
	if (kind == SS_MALFORMED) {
		v->outcome = SMIME_PERMERROR;
		snprintf(v->reason, sizeof(v->reason),
		    "malformed CMS structure");
		return;
	}
	/* an envelope: what is inside is not seen here, and the verdict
	 * says so (none: no signature we could see) */
	if (kind == SS_ENVELOPED) {
		snprintf(v->reason, sizeof(v->reason), "encrypted, not "
		    "decrypted here: a signature inside is not checked");
		return;
	}
	/* certs-only, compressed-data: not signed */
	if (kind != SS_OTHER || (d->smime_type[0] != '\0' &&
	    strcmp(d->smime_type, "signed-data") != 0))
		return;
	*content = msgbuf_new(tmpdir, 0);
	if ((r = root_reader(in, t, tmpdir)) == NULL ||
	    (w = msgbuf_bio_writer(*content)) == NULL) {
		v->outcome = SMIME_FAIL;
		snprintf(v->reason, sizeof(v->reason), "cannot read the "
		    "message or write its content");
		goto done;
	}
	rc = cms_opaque_split(r, w, &sig, &siglen, err, sizeof(err));
	BIO_free(r);
	r = NULL;
	BIO_free(w);
	w = NULL;
	if (rc != 0) {		/* malformed, or said signed and is not */
		v->outcome = SMIME_PERMERROR;
		snprintf(v->reason, sizeof(v->reason), "%s", err);
		goto done;
	}
	if ((r = msgbuf_bio_reader(*content, 0, msgbuf_size(*content))) ==
	    NULL) {
		v->outcome = SMIME_FAIL;
		snprintf(v->reason, sizeof(v->reason), "out of memory");
		goto done;
	}
	smime_msg_check_bio(src, r, sig, siglen, from, v);
 done:
	BIO_free(r);
	BIO_free(w);
	free(sig);
	if (v->outcome != SMIME_PASS && v->outcome != SMIME_POLICY) {
		msgbuf_free(*content);
		*content = NULL;
	}
}

/* Whether what mime_smime_detect_tree() found is signed as the engine
 * would find: multipart/signed, or a P7M that says signed-data or
 * nothing. */
static int
detected_signed(enum mime_smime_kind k, const struct mime_smime *d)
{
	return k == MIME_SMIME_SIGNED || (k == MIME_SMIME_P7M &&
	    (strcmp(d->smime_type, "signed-data") == 0 ||
	    d->smime_type[0] == '\0'));
}

/*
 * Why a message that is signed as the engine would find can be read
 * another way by the reader it goes to (mime_smime_ambiguity()), or NULL:
 * the verdict would then speak for something the reader may not show.
 */
static const char *
read_two_ways(const struct mime_tree *t, enum mime_smime_kind k,
    const struct mime_smime *d)
{
	return detected_signed(k, d) ? mime_smime_ambiguity(t, k) : NULL;
}

#define INNER_HDR_MAX	65536	/* a signed entity's header we check */

/*
 * smime_msg_inner_from() of the signed entity: for multipart/signed (k)
 * the header of the first part of `in`, else the header of the opaque
 * message's unwrapped entity `ent` (NULL: none).  A header that does not
 * end within INNER_HDR_MAX cannot be checked, and says so.
 */
static const char *
inner_from(const struct mail_from *of, enum mime_smime_kind k,
    struct msgbuf *in, const struct mime_tree *t, struct msgbuf *ent)
{
	static const char *toolong = "the header of the signed part is too "
	    "long to check";
	const struct mime_part *c1;
	const char *why;
	size_t ehlen, ebody;
	ssize_t n;
	char *buf;

	if (k != MIME_SMIME_SIGNED) {
		if (ent == NULL)
			return NULL;
		if ((buf = smime_stream_header(ent, INNER_HDR_MAX, &ehlen,
		    &ebody)) == NULL)
			return toolong;
		why = ebody > INNER_HDR_MAX ? toolong :
		    smime_msg_inner_from(of, buf, ehlen);
		free(buf);
		return why;
	}
	c1 = t->root->child;
	if (c1->hdr_end - c1->hdr_start > INNER_HDR_MAX)
		return toolong;
	buf = xmalloc(c1->hdr_end - c1->hdr_start + 1);
	if ((n = msgbuf_pread(in, buf, c1->hdr_end - c1->hdr_start,
	    c1->hdr_start)) < 0)
		why = "cannot read the header of the signed part";
	else
		why = smime_msg_inner_from(of, buf, (size_t)n);
	free(buf);
	return why;
}

/* What the structure of a message that claims S/MIME proves done: its
 * CMS read once, in bounded memory. */
enum smime_done
smime_stream_done(struct msgbuf *in, const struct mime_tree *t,
    const char *tmpdir)
{
	struct mime_smime d;
	struct mime_io io;
	enum smime_done done = SMIME_DONE_NONE;
	char err[256];
	BIO *r = NULL;
	int nid = NID_undef;

	io_reader(&io, in);
	switch (mime_smime_detect_tree(t, &io, SMIME_STREAM_SIG_MAX, &d)) {
	case MIME_SMIME_SIGNED:
		if (d.derlen <= INT_MAX &&
		    (r = BIO_new_mem_buf(d.der, (int)d.derlen)) != NULL)
			nid = cms_structure_nid(r, err, sizeof(err));
		break;
	case MIME_SMIME_P7M:
		if ((r = root_reader(in, t, tmpdir)) != NULL)
			nid = cms_structure_nid(r, err, sizeof(err));
		break;
	default:
		break;
	}
	if (nid == NID_pkcs7_signed)
		done = SMIME_DONE_SIGNED;
	else if (d.kind == MIME_SMIME_P7M && (nid == NID_pkcs7_enveloped ||
	    nid == NID_id_smime_ct_authEnvelopedData))
		done = SMIME_DONE_ENCRYPTED;
	BIO_free(r);
	mime_smime_clear(&d);
	return done;
}

/* Verify a multipart/signed message, piece by piece; with only_signed,
 * 1 (nothing done) when it is not signed. */
static int
stream_verify(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, int only_signed,
    struct msgbuf **outp, struct smime_msg_res *res)
{
	struct mime_smime d;
	struct cms_verify v;
	struct mime_io io;
	struct msgbuf *lf = NULL, *signed_ent = NULL;
	BIO *content = NULL;
	char from[320], ar[1024], *head = NULL;
	struct unwrapped u = { NULL, 0, NULL, 0, 0 };
	struct mail_from of;
	const char *why;
	size_t headlen;
	enum mime_smime_kind k;
	int rc = -1, werr;

	memset(res, 0, sizeof(*res));
	memset(&v, 0, sizeof(v));
	*outp = NULL;
	io_reader(&io, in);
	if (smime_msg_from(hdr, hlen, from, sizeof(from)) == -1)
		from[0] = '\0';
	k = mime_smime_detect_tree(t, &io, SMIME_STREAM_SIG_MAX, &d);
	if (only_signed && !detected_signed(k, &d)) {
		rc = 1;
		goto done;
	}
	if ((why = read_two_ways(t, k, &d)) != NULL) {
		v.outcome = SMIME_PERMERROR;
		snprintf(v.reason, sizeof(v.reason), "ambiguous structure: "
		    "%s", why);
		k = MIME_SMIME_NONE;
	}
	switch (k) {
	case MIME_SMIME_SIGNED:
		if ((lf = crlf_copy(in, d.content_off, d.content_off +
		    d.content_len, tmpdir)) != NULL)
			content = msgbuf_bio_reader(lf, 0, msgbuf_size(lf));
		else
			content = msgbuf_bio_reader(in, d.content_off,
			    d.content_off + d.content_len);
		if (content == NULL) {
			v.outcome = SMIME_FAIL;
			snprintf(v.reason, sizeof(v.reason), "out of memory");
		} else
			smime_msg_check_bio(src, content, d.der, d.derlen,
			    from, &v);
		break;
	case MIME_SMIME_P7M:
		opaque_check(src, in, t, &d, from, tmpdir, &signed_ent, &v);
		break;
	case MIME_SMIME_BAD:
		v.outcome = SMIME_PERMERROR;
		snprintf(v.reason, sizeof(v.reason),
		    "malformed S/MIME structure");
		break;
	case MIME_SMIME_NONE:
	default:
		break;
	}
	if (signed_ent != NULL && unwrap_head(signed_ent, hdr, hlen, host,
	    &u) == -1) {
		/* not unwrapped: the message goes as it came, with why */
		msgbuf_free(signed_ent);
		signed_ent = NULL;
		v.outcome = SMIME_PERMERROR;
		snprintf(v.reason, sizeof(v.reason), "the unwrapped message's "
		    "header would be over %d KiB", SMIME_STREAM_HDR_MAX / 1024);
	}
	if (v.outcome == SMIME_PASS) {
		smime_msg_from_read(hdr, hlen, &of);
		if ((why = mail_from_ambiguous(&of)) != NULL ||
		    (why = inner_from(&of, k, in, t, signed_ent)) != NULL) {
			v.outcome = SMIME_POLICY;
			snprintf(v.reason, sizeof(v.reason), "%s", why);
		}
	}
	smime_msg_verdict(src, &v, host, res, ar, sizeof(ar));
	*outp = msgbuf_new(tmpdir, 0);
	if (signed_ent != NULL)
		werr = put_unwrapped(*outp, &u, signed_ent, ar);
	else {
		head = smime_msg_verify_head(hdr, hlen, host, ar, &headlen);
		werr = msgbuf_append(*outp, head, headlen) == -1 ||
		    copy_from(*outp, in, hlen) == -1 ? -1 : 0;
	}
	if (werr == -1) {
		msgbuf_free(*outp);
		*outp = NULL;
		snprintf(res->err, sizeof(res->err), "cannot write the "
		    "verified message");
		goto done;
	}
	rc = 0;
 done:
	BIO_free(content);
	msgbuf_free(lf);
	msgbuf_free(signed_ent);
	unwrap_clear(&u);
	free(head);
	mime_smime_clear(&d);
	return rc;
}

int
smime_stream_verify(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, struct msgbuf **outp,
    struct smime_msg_res *res)
{
	return stream_verify(src, in, t, hdr, hlen, host, tmpdir, 0, outp,
	    res);
}

int
smime_stream_verify_signed(const struct certsrc *src, struct msgbuf *in,
    const struct mime_tree *t, const char *hdr, size_t hlen,
    const char *host, const char *tmpdir, struct msgbuf **outp,
    struct smime_msg_res *res)
{
	return stream_verify(src, in, t, hdr, hlen, host, tmpdir, 1, outp,
	    res);
}
