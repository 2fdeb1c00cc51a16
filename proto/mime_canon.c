/* mime_canon.c: S/MIME canonicalisation (RFC 8551 3.1), assembly of the
 * outgoing message, and detection of inbound S/MIME. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/lib.h"
#include "mime.h"

#define MIME_LINE_LIMIT 998     /* RFC 5322 2.1.1, without CRLF */

/* How a leaf body goes into the canonical entity. */
enum {
	ENC_KEEP = 0,   /* as it is, line ends made CRLF */
	ENC_QP,
	ENC_B64
};

struct buf {
	char   *p;
	size_t  len, cap;
};

/* Make room for n more bytes or abort. */
static void
buf_grow(struct buf *b, size_t n)
{
	size_t cap;

	if (b->cap - b->len > n)
		return;
	cap = b->cap * 2 + n + 256;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

/* Append bytes. */
static void
buf_add(struct buf *b, const char *s, size_t n)
{
	buf_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Append a C string. */
static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/*
 * Append with every line end made CRLF: a bare LF becomes CRLF; a bare CR
 * becomes CRLF (crsp 0, as smtp_stuff would do) or a space (crsp 1, in
 * header fields, where a new line would be a broken field).
 */
static void
buf_norm(struct buf *b, const char *s, size_t n, int crsp)
{
	size_t i;
	unsigned char c;

	buf_grow(b, 2 * n);
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (c == '\n' || (c == '\r' && !crsp)) {
			b->p[b->len++] = '\r';
			b->p[b->len++] = '\n';
		} else if (c == '\r')
			b->p[b->len++] = ' ';
		else
			b->p[b->len++] = (char)c;
	}
}

/*
 * Append the bytes between the children of a multipart (preamble,
 * delimiter lines, epilogue) with CRLF line ends.  A line with NUL, 8bit,
 * a bare CR or over 998 bytes can only be preamble or epilogue, which no
 * reader shows: it is left out, as any rewrite of it could turn it into
 * a delimiter.
 */
static void
gap_put(struct buf *b, const char *s, size_t n)
{
	const char *e;
	size_t i, l;
	int bad;

	while (n > 0) {
		e = memchr(s, '\n', n);
		l = e != NULL ? (size_t)(e - s) + 1 : n;
		i = l - (e != NULL) - (e != NULL && l > 1 && s[l - 2] == '\r');
		bad = i > MIME_LINE_LIMIT;
		for (i = 0; i < l && !bad; i++)
			bad = s[i] == '\0' || (unsigned char)s[i] >= 0x80 ||
			    (s[i] == '\r' && (i + 1 >= l || s[i + 1] != '\n'));
		if (!bad)
			buf_norm(b, s, l, 0);
		s += l;
		n -= l;
	}
}

/* Whether a body can go out unchanged: 7bit, no NUL, no bare CR, short
 * lines (bare LF is fine: it becomes CRLF). */
static int
body_clean(const char *s, size_t n)
{
	size_t i, line = 0;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '\n') {
			line = 0;
			continue;
		}
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (c == 0 || c >= 0x80 || c == '\r' ||
		    ++line > MIME_LINE_LIMIT)
			return 0;
	}
	return 1;
}

/* Whether header field h of message m is called name (any case). */
static int
hdr_is(const char *m, const struct mime_hdr *h, const char *name)
{
	return h->namelen == strlen(name) &&
	    strncasecmp(m + h->off, name, h->namelen) == 0;
}

/* Whether a header field belongs inside the protected entity. */
static int
hdr_inner(const char *m, const struct mime_hdr *h)
{
	return h->namelen >= 8 && strncasecmp(m + h->off, "content-", 8) == 0;
}

/* Append one header field, ending it with CRLF. */
static void
put_field(struct buf *b, const char *m, const struct mime_hdr *h)
{
	buf_norm(b, m + h->off, h->end - h->off, 1);
	if (b->len < 2 || b->p[b->len - 1] != '\n')
		buf_add(b, "\r\n", 2);
}

/*
 * Decide how a leaf goes out; src and srclen get the bytes to encode (the
 * raw body, or its decoded form in *tofree).
 */
static int
leaf_plan(const char *m, const struct mime_part *p, const char **src,
    size_t *srclen, char **tofree)
{
	const char *body = m + p->body_start;
	size_t len = p->body_end - p->body_start;
	int text = strcmp(p->ct.type, "text") == 0;

	*src = body;
	*srclen = len;
	*tofree = NULL;
	switch (p->cte) {
	case MIME_CTE_BINARY:
		return ENC_B64;
	case MIME_CTE_OTHER:
		/* Unknown encoding: kept if clean, else wrapped in base64. */
		return body_clean(body, len) ? ENC_KEEP : ENC_B64;
	case MIME_CTE_QP:
		if (body_clean(body, len))
			return ENC_KEEP;
		*tofree = mime_qp_decode(body, len, srclen);
		*src = *tofree;
		break;
	case MIME_CTE_BASE64:
		if (body_clean(body, len))
			return ENC_KEEP;
		*tofree = (char *)mime_b64_decode(body, len, srclen);
		*src = *tofree;
		return ENC_B64;
	default:
		if (body_clean(body, len))
			return ENC_KEEP;
		break;
	}
	return text ? ENC_QP : ENC_B64;
}

/* Append a leaf body in the planned encoding. */
static void
put_body(struct buf *b, int enc, const char *src, size_t len)
{
	char *e;
	size_t elen;

	if (enc == ENC_KEEP) {
		buf_norm(b, src, len, 0);
		return;
	}
	if (enc == ENC_QP)
		e = mime_qp_encode(src, len, &elen);
	else
		e = mime_b64_encode(src, len, &elen);
	buf_add(b, e, elen);
	free(e);
}

/* Append the canonical form of part p (top: the message itself). */
static void
canon_part(struct buf *b, const char *m, const struct mime_part *p, int top)
{
	const struct mime_part *c;
	const char *src = NULL;
	char *tofree = NULL;
	size_t i, srclen = 0, pos;
	int enc = ENC_KEEP;

	if (!p->container)
		enc = leaf_plan(m, p, &src, &srclen, &tofree);
	if (top && !p->has_ct)
		buf_str(b, "Content-Type: text/plain; charset=us-ascii\r\n");
	for (i = 0; i < p->nhdrs; i++) {
		if (top && !hdr_inner(m, &p->hdrs[i]))
			continue;
		if (enc != ENC_KEEP &&
		    hdr_is(m, &p->hdrs[i], "content-transfer-encoding"))
			continue;
		put_field(b, m, &p->hdrs[i]);
	}
	if (enc == ENC_QP)
		buf_str(b, "Content-Transfer-Encoding: quoted-printable\r\n");
	else if (enc == ENC_B64)
		buf_str(b, "Content-Transfer-Encoding: base64\r\n");
	buf_add(b, "\r\n", 2);
	if (!p->container) {
		put_body(b, enc, src, srclen);
		free(tofree);
		return;
	}
	/* Delimiters, preamble and epilogue: the bytes between children. */
	pos = p->body_start;
	for (c = p->child; c != NULL; c = c->next) {
		gap_put(b, m + pos, c->hdr_start - pos);
		if (b->p[b->len - 1] != '\n')
			buf_add(b, "\r\n", 2);        /* delimiter at the end */
		canon_part(b, m, c, 0);
		pos = c->body_end;
	}
	gap_put(b, m + pos, p->body_end - pos);
}

/*
 * Split a message for signing or encryption (RFC 8551 3.1): *outer gets
 * the header fields that stay outside (all but Content-* and
 * MIME-Version), *inner the MIME entity to protect: the Content-* fields
 * (a text/plain default added if there is no Content-Type), a blank line
 * and the body, every line end CRLF and every leaf in a 7bit encoding.
 * Leaves that are already 7bit with lines of at most 998 bytes are kept
 * byte for byte (trailing blanks included: we do not re-encode a part
 * only because of them).  8bit text becomes quoted-printable; a part
 * declared binary, or non-text with 8bit, NUL, bare CR or long lines,
 * becomes base64.  Both results are malloc'd.  Returns 0, -1 if the
 * message is over the depth or part limits.
 */
int
mime_canon(const char *m, size_t len, char **outer, size_t *outerlen,
    char **inner, size_t *innerlen)
{
	struct mime_tree t;
	struct buf o = { NULL, 0, 0 }, in = { NULL, 0, 0 };
	const struct mime_hdr *h;
	size_t i;

	*outer = *inner = NULL;
	*outerlen = *innerlen = 0;
	if (mime_parse(m, len, &t) == -1)
		return -1;
	/* The entity is about as long as the message (longer when 8bit text
	 * becomes quoted-printable): reserve that once.  Growing by doubling
	 * copies a 50 MB body several times and leaves the old buffers in
	 * the heap; pages reserved but never written cost nothing. */
	buf_grow(&in, len + len / 8 + 4096);
	for (i = 0; i < t.root->nhdrs; i++) {
		h = &t.root->hdrs[i];
		if (!hdr_inner(m, h) && !hdr_is(m, h, "mime-version"))
			put_field(&o, m, h);
	}
	canon_part(&in, m, t.root, 1);
	mime_tree_free(&t);
	buf_grow(&o, 1);
	o.p[o.len] = '\0';
	buf_grow(&in, 1);
	in.p[in.len] = '\0';
	*outer = o.p;
	*outerlen = o.len;
	*inner = in.p;
	*innerlen = in.len;
	return 0;
}

/*
 * Build the final message: outer fields, "MIME-Version: 1.0", the new
 * content fields hdrs (complete lines; a missing final CRLF is added), a
 * blank line, body.  *out is malloc'd and NUL-terminated.  Returns 0.
 */
int
mime_assemble(const char *outer, size_t outerlen, const char *hdrs,
    const char *body, size_t bodylen, char **out, size_t *outlen)
{
	struct buf b = { NULL, 0, 0 };
	size_t hl = strlen(hdrs);

	buf_add(&b, outer, outerlen);
	buf_str(&b, "MIME-Version: 1.0\r\n");
	buf_add(&b, hdrs, hl);
	if (hl > 0 && hdrs[hl - 1] != '\n')
		buf_add(&b, "\r\n", 2);
	buf_add(&b, "\r\n", 2);
	buf_add(&b, body, bodylen);
	buf_grow(&b, 1);
	b.p[b.len] = '\0';
	*out = b.p;
	*outlen = b.len;
	return 0;
}

/*
 * A copy of the entity e[0, n) without its header fields called `name`
 * (case-insensitive, with their continuation lines), for example the
 * MIME-Version of a decrypted entity whose message already has one.  Only
 * the header block (up to the first empty line) is looked at, so a caller
 * that streams may pass just that block.  *outlen gets the length; the
 * result is malloc'd and NUL-terminated.
 */
char *
mime_drop_field(const char *e, size_t n, const char *name, size_t *outlen)
{
	struct buf b = { NULL, 0, 0 };
	size_t off = 0, end, nl = strlen(name);
	const char *p;
	int drop;

	while (off < n && e[off] != '\r' && e[off] != '\n') {
		/* one field: up to a line end not followed by blank space */
		end = off;
		do {
			p = memchr(e + end, '\n', n - end);
			end = p != NULL ? (size_t)(p - e) + 1 : n;
		} while (end < n && (e[end] == ' ' || e[end] == '\t'));
		drop = end - off > nl && strncasecmp(e + off, name, nl) == 0;
		for (p = e + off + nl; drop && p < e + end && (*p == ' ' ||
		    *p == '\t'); p++)
			;
		if (!drop || p >= e + end || *p != ':')
			buf_add(&b, e + off, end - off);
		off = end;
	}
	buf_add(&b, e + off, n - off);
	buf_grow(&b, 1);
	b.p[b.len] = '\0';
	*outlen = b.len;
	return b.p;
}

/*
 * Make a boundary from caller-supplied random bytes: "=_smr_" and their
 * hex.  "=_" never occurs in base64 or quoted-printable text.  Returns 0,
 * -1 if it would not fit in outsz or exceed 70 characters.
 */
int
mime_boundary(char *out, size_t outsz, const unsigned char *rnd, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 6;

	if (6 + 2 * n + 1 > outsz || 6 + 2 * n > MIME_BOUNDARY_MAX)
		return -1;
	memcpy(out, "=_smr_", 6);
	for (i = 0; i < n; i++) {
		out[o++] = hex[rnd[i] >> 4];
		out[o++] = hex[rnd[i] & 15];
	}
	out[o] = '\0';
	return 0;
}

/* Finish a malloc'd string from a buf. */
static char *
buf_cstr(struct buf *b)
{
	buf_grow(b, 1);
	b->p[b->len] = '\0';
	return b->p;
}

/*
 * Build a multipart/signed (RFC 8551 3.5.3) around the canonical entity
 * inner and the DER signature sig.  *hdrs gets the Content-Type field
 * (for mime_assemble), *body the multipart body; both malloc'd.  The
 * first part is inner byte for byte: what was signed.  Returns 0.
 */
int
mime_multipart_signed(const char *inner, size_t innerlen,
    const unsigned char *sig, size_t siglen, const char *boundary,
    const char *micalg, char **hdrs, char **body, size_t *bodylen)
{
	struct buf h = { NULL, 0, 0 }, b = { NULL, 0, 0 };
	char *e;
	size_t elen;

	buf_str(&h, "Content-Type: multipart/signed;\r\n"
	    "\tprotocol=\"application/pkcs7-signature\";\r\n\tmicalg=");
	buf_str(&h, micalg);
	buf_str(&h, ";\r\n\tboundary=\"");
	buf_str(&h, boundary);
	buf_str(&h, "\"\r\n");
	*hdrs = buf_cstr(&h);
	buf_str(&b, "This is an S/MIME signed message\r\n\r\n--");
	buf_str(&b, boundary);
	buf_str(&b, "\r\n");
	buf_add(&b, inner, innerlen);
	buf_str(&b, "\r\n--");
	buf_str(&b, boundary);
	buf_str(&b, "\r\nContent-Type: application/pkcs7-signature;"
	    " name=\"smime.p7s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
	    "\r\n");
	e = mime_b64_encode(sig, siglen, &elen);
	buf_add(&b, e, elen);
	free(e);
	buf_str(&b, "--");
	buf_str(&b, boundary);
	buf_str(&b, "--\r\n");
	*bodylen = b.len;
	*body = buf_cstr(&b);
	return 0;
}

/*
 * Build an application/pkcs7-mime entity (RFC 8551 3.3) for DER der of
 * the given smime-type ("enveloped-data", "authEnveloped-data",
 * "signed-data"): *hdrs the content fields, *body the base64.  Returns 0.
 */
int
mime_pkcs7_mime(const unsigned char *der, size_t derlen,
    const char *smime_type, char **hdrs, char **body, size_t *bodylen)
{
	struct buf h = { NULL, 0, 0 };

	buf_str(&h, "Content-Type: application/pkcs7-mime; smime-type=");
	buf_str(&h, smime_type);
	buf_str(&h, ";\r\n\tname=\"smime.p7m\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n");
	*hdrs = buf_cstr(&h);
	*body = mime_b64_encode(der, derlen, bodylen);
	return 0;
}

/* A part's body with its transfer encoding undone; malloc'd. */
static unsigned char *
part_decode(const char *m, const struct mime_part *p, size_t *outlen)
{
	const char *s = m + p->body_start;
	size_t n = p->body_end - p->body_start;
	unsigned char *out;

	if (p->cte == MIME_CTE_BASE64)
		return mime_b64_decode(s, n, outlen);
	if (p->cte == MIME_CTE_QP)
		return (unsigned char *)mime_qp_decode(s, n, outlen);
	out = xmalloc(n + 1);
	memcpy(out, s, n);
	*outlen = n;
	return out;
}

/* Whether a Content-Type is application/NAME or application/x-NAME. */
static int
ct_app(const struct mime_ct *ct, const char *name)
{
	return strcmp(ct->type, "application") == 0 &&
	    (strcmp(ct->subtype, name) == 0 || (strncmp(ct->subtype, "x-",
	    2) == 0 && strcmp(ct->subtype + 2, name) == 0));
}

/* Whether a parameter value names application/(x-)pkcs7-signature. */
static int
is_sig_protocol(const char *v)
{
	return v != NULL && (strcasecmp(v, "application/pkcs7-signature") ==
	    0 || strcasecmp(v, "application/x-pkcs7-signature") == 0);
}

/* Whether an octet-stream is called *.p7m (Outlook and others). */
static int
is_p7m_name(const struct mime_ct *ct)
{
	const char *n = mime_ct_param(ct, "name");
	size_t l;

	if (strcmp(ct->type, "application") != 0 ||
	    strcmp(ct->subtype, "octet-stream") != 0 || n == NULL)
		return 0;
	l = strlen(n);
	return l >= 4 && strcasecmp(n + l - 4, ".p7m") == 0;
}

/* Fill r for a multipart/signed message: two parts (RFC 1847), the
 * second a signature; a third part would be shown unsigned. */
static enum mime_smime_kind
detect_signed(const char *m, const struct mime_part *root,
    struct mime_smime *r)
{
	const struct mime_part *c1 = root->child, *c2;
	const char *v;

	if ((v = mime_ct_param(&root->ct, "micalg")) != NULL)
		snprintf(r->micalg, sizeof(r->micalg), "%s", v);
	if (c1 == NULL || (c2 = c1->next) == NULL || c2->next != NULL ||
	    !ct_app(&c2->ct, "pkcs7-signature"))
		return MIME_SMIME_BAD;
	r->content_off = c1->hdr_start;
	r->content_len = c1->body_end - c1->hdr_start;
	r->der = part_decode(m, c2, &r->derlen);
	return r->derlen == 0 ? MIME_SMIME_BAD : MIME_SMIME_SIGNED;
}

/* Fill r for an application/pkcs7-mime message (its root part). */
static enum mime_smime_kind
detect_p7m(const char *m, const struct mime_part *root, struct mime_smime *r)
{
	const char *v;

	if ((v = mime_ct_param(&root->ct, "smime-type")) != NULL)
		snprintf(r->smime_type, sizeof(r->smime_type), "%s", v);
	for (v = r->smime_type; *v != '\0'; v++)
		r->smime_type[v - r->smime_type] = (char)tolower(
		    (unsigned char)*v);
	r->der = part_decode(m, root, &r->derlen);
	return r->derlen == 0 ? MIME_SMIME_BAD : MIME_SMIME_P7M;
}

/* The message's own header section, as the splitter reports its end. */
struct root_peek {
	int		 done;
	struct mime_part part;	/* ct, cte, container, body_start */
};

/* Event sink of root_peek. */
static void
peek_event(void *arg, const struct mime_event *ev)
{
	struct root_peek *pk = arg;

	if (ev->type != MIME_EV_HEADERS_END || ev->depth != 0 || pk->done)
		return;
	pk->done = 1;
	pk->part.ct = *ev->ct;
	pk->part.cte = ev->cte;
	pk->part.container = ev->container;
	pk->part.body_start = ev->end;
}

/* Where the header section of m seems to end: just past its first empty
 * line and the byte after it; len if none. */
static size_t
header_guess(const char *m, size_t len)
{
	const char *p = m, *end = m + len, *nl;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p = nl + 1;
		if (p < end && *p == '\r')
			p++;
		if (p < end && *p == '\n')
			return (size_t)(p + 2 - m) < len ? (size_t)(p + 2 - m) :
			    len;
	}
	return len;
}

/*
 * Split only the message's header section (fed in pieces until it ends).
 * When the message is a leaf, its body runs to the end of the input:
 * that is all an application/pkcs7-mime needs, and a megabyte of base64
 * is not walked line by line (a third of a 1 MB decrypt+verify).  The
 * first piece runs to where the header seems to end, so that the reader
 * walks almost none of the body; pieces of 512 bytes after that, if the
 * reader sees the end elsewhere (with a CR alone, say).
 */
static void
root_peek(const char *m, size_t len, struct root_peek *pk)
{
	struct mime_rd *rd = xmalloc(sizeof(*rd));
	size_t off = 0, n, first;

	memset(pk, 0, sizeof(*pk));
	mime_rd_init(rd, peek_event, pk);
	for (first = header_guess(m, len); !pk->done && off < len; off += n) {
		n = len - off < 512 ? len - off : 512;
		if (off == 0 && first > 0)
			n = first;
		mime_rd_feed(rd, m + off, n);
	}
	if (!pk->done)
		mime_rd_end(rd);
	free(rd);
	pk->part.body_end = len;
}

/* Event sink of root_smime: keep the message's Content-Type. */
static void
root_event(void *arg, const struct mime_event *ev)
{
	if (ev->type == MIME_EV_HEADERS_END && ev->depth == 0)
		*(struct mime_ct *)arg = *ev->ct;
}

/* For a message over the tree limits: BAD if its type is S/MIME's. */
static enum mime_smime_kind
root_smime(const char *m, size_t len)
{
	struct mime_rd *rd;
	struct mime_ct ct;

	rd = xmalloc(sizeof(*rd));
	mime_rd_init(rd, root_event, &ct);
	mime_rd_feed(rd, m, len);
	mime_rd_end(rd);
	free(rd);
	if ((strcmp(ct.type, "multipart") == 0 &&
	    strcmp(ct.subtype, "signed") == 0 &&
	    is_sig_protocol(mime_ct_param(&ct, "protocol"))) ||
	    ct_app(&ct, "pkcs7-mime") || is_p7m_name(&ct))
		return MIME_SMIME_BAD;
	return MIME_SMIME_NONE;
}

/*
 * Tell what kind of S/MIME a message is.  SIGNED: multipart/signed with
 * protocol application/(x-)pkcs7-signature; content_off/len is the first
 * part exactly as received (its headers included, the CRLF before the
 * delimiter excluded), der the decoded signature.  P7M:
 * application/(x-)pkcs7-mime, or application/octet-stream named *.p7m;
 * smime_type as given (lower case), der the decoded body.  BAD: one of
 * these, but unusable.  r must be cleared with mime_smime_clear.
 */
enum mime_smime_kind
mime_smime_detect(const char *m, size_t len, struct mime_smime *r)
{
	struct mime_tree t;
	const struct mime_part *root;
	struct root_peek pk;

	memset(r, 0, sizeof(*r));
	root_peek(m, len, &pk);
	if (!pk.part.container && (ct_app(&pk.part.ct, "pkcs7-mime") ||
	    is_p7m_name(&pk.part.ct)))
		return r->kind = detect_p7m(m, &pk.part, r);
	if (mime_parse(m, len, &t) == -1)
		return r->kind = root_smime(m, len);
	root = t.root;
	if (strcmp(root->ct.type, "multipart") == 0 &&
	    strcmp(root->ct.subtype, "signed") == 0 &&
	    is_sig_protocol(mime_ct_param(&root->ct, "protocol")))
		r->kind = detect_signed(m, root, r);
	else if (ct_app(&root->ct, "pkcs7-mime") || is_p7m_name(&root->ct))
		r->kind = detect_p7m(m, root, r);
	mime_tree_free(&t);
	return r->kind;
}

/* Free what mime_smime_detect allocated. */
void
mime_smime_clear(struct mime_smime *r)
{
	free(r->der);
	memset(r, 0, sizeof(*r));
}

/*
 * Streaming canonicalisation: the same output as mime_canon(), read from
 * and written to the caller's callbacks in bounded chunks.
 */
#define SC_CHUNK	65536	/* bytes read at a time */
#define SC_OBUF		16384	/* bytes held before a write */

/* A streaming writer to one of the two outputs. */
struct sc_out {
	const struct mime_io *io;
	int     which;
	char    buf[SC_OBUF];
	size_t  n;
	char    last;           /* the last byte written, 0 at first */
	int     err;
};

/* The state of one mime_canon_stream() run. */
struct sc {
	const struct mime_io *io;
	struct sc_out out[2];   /* MIME_IO_OUTER, MIME_IO_ENTITY */
	char   *in;             /* SC_CHUNK bytes */
	char   *tmp;            /* decoder output */
	char   *enc;            /* encoder output */
	int     err;
};

/* Write what the writer holds. */
static void
so_flush(struct sc_out *o)
{
	if (o->n > 0 && !o->err && o->io->write(o->io->warg, o->which,
	    o->buf, o->n) == -1)
		o->err = 1;
	o->n = 0;
}

/* Append bytes to an output. */
static void
so_add(struct sc_out *o, const char *s, size_t n)
{
	size_t k;

	if (n == 0)
		return;
	o->last = s[n - 1];
	while (n > 0) {
		if (o->n == sizeof(o->buf))
			so_flush(o);
		k = sizeof(o->buf) - o->n;
		if (k > n)
			k = n;
		memcpy(o->buf + o->n, s, k);
		o->n += k;
		s += k;
		n -= k;
	}
}

/* Append a C string to an output. */
static void
so_str(struct sc_out *o, const char *s)
{
	so_add(o, s, strlen(s));
}

/* A consumer of the bytes of a range, chunk by chunk. */
typedef void (*sc_fn)(struct sc *, void *arg, const char *, size_t);

/* Read [off, end) of the message and hand it to fn in chunks. */
static void
sc_range(struct sc *s, size_t off, size_t end, sc_fn fn, void *arg)
{
	ssize_t r;
	size_t want;

	while (off < end && !s->err) {
		want = end - off < SC_CHUNK ? end - off : SC_CHUNK;
		if ((r = s->io->read(s->io->rarg, s->in, want, off)) <= 0) {
			s->err = 1;
			break;
		}
		fn(s, arg, s->in, (size_t)r);
		off += (size_t)r;
	}
}

/* buf_norm() over pieces: a CR held until the next byte shows what it is. */
struct sc_norm {
	struct sc_out *o;
	int     crsp;
	int     cr;
};

/* A bare CR: a line end in bodies, a space in header fields. */
static void
norm_barecr(struct sc_norm *nm)
{
	so_add(nm->o, nm->crsp ? " " : "\r\n", nm->crsp ? 1 : 2);
}

/* Normalise a piece of a range (see buf_norm). */
static void
norm_fn(struct sc *s, void *arg, const char *p, size_t n)
{
	struct sc_norm *nm = arg;
	size_t i, start = 0;

	(void)s;
	for (i = 0; i < n; i++) {
		if (nm->cr) {
			nm->cr = 0;
			if (p[i] == '\n') {
				so_add(nm->o, "\r\n", 2);
				start = i + 1;
				continue;
			}
			norm_barecr(nm);
		}
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		so_add(nm->o, p + start, i - start);
		start = i + 1;
		if (p[i] == '\n')
			so_add(nm->o, "\r\n", 2);
		else if (i + 1 == n)
			nm->cr = 1;     /* the next piece decides */
		else if (p[i + 1] == '\n') {
			so_add(nm->o, "\r\n", 2);
			start = ++i + 1;
		} else
			norm_barecr(nm);
	}
	so_add(nm->o, p + start, n - start);
}

/* Normalise [off, end) into o. */
static void
sc_norm(struct sc *s, struct sc_out *o, size_t off, size_t end, int crsp)
{
	struct sc_norm nm = { o, crsp, 0 };

	sc_range(s, off, end, norm_fn, &nm);
	if (nm.cr)
		norm_barecr(&nm);       /* a CR at the very end is bare */
}

/* Whether a body range is clean (see body_clean), over pieces. */
struct sc_clean {
	size_t  line;
	int     cr;
	int     dirty;
};

/* Check a piece of a body for body_clean(). */
static void
clean_fn(struct sc *s, void *arg, const char *p, size_t n)
{
	struct sc_clean *c = arg;
	size_t i;
	unsigned char ch;

	(void)s;
	for (i = 0; i < n && !c->dirty; i++) {
		ch = (unsigned char)p[i];
		if (c->cr) {
			c->cr = 0;
			if (ch != '\n') {
				c->dirty = 1;   /* a bare CR */
				break;
			}
		}
		if (ch == '\n') {
			c->line = 0;
			continue;
		}
		if (ch == '\r') {
			c->cr = 1;
			continue;
		}
		if (ch == 0 || ch >= 0x80 || ++c->line > MIME_LINE_LIMIT)
			c->dirty = 1;
	}
}

/* body_clean() of [off, end). */
static int
sc_clean(struct sc *s, size_t off, size_t end)
{
	struct sc_clean c = { 0, 0, 0 };

	sc_range(s, off, end, clean_fn, &c);
	return !c.dirty && !c.cr;
}

/* The first bytes of a header field's name (at most n - 1), NUL-ended. */
static void
sc_name(struct sc *s, const struct mime_hdr *h, char *buf, size_t n)
{
	size_t want = h->namelen < n - 1 ? h->namelen : n - 1, got = 0;
	ssize_t r;

	while (got < want) {
		if ((r = s->io->read(s->io->rarg, buf + got, want - got,
		    h->off + got)) <= 0) {
			s->err = 1;
			break;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
}

/* What a body is decoded from before it is encoded again. */
enum { DEC_NONE = 0, DEC_QP, DEC_B64 };

/* leaf_plan() without the bytes in memory; *dec says what to decode. */
static int
sc_plan(struct sc *s, const struct mime_part *p, int *dec)
{
	int text = strcmp(p->ct.type, "text") == 0;

	*dec = DEC_NONE;
	switch (p->cte) {
	case MIME_CTE_BINARY:
		return ENC_B64;
	case MIME_CTE_OTHER:
		return sc_clean(s, p->body_start, p->body_end) ? ENC_KEEP :
		    ENC_B64;
	case MIME_CTE_QP:
		if (sc_clean(s, p->body_start, p->body_end))
			return ENC_KEEP;
		*dec = DEC_QP;
		break;
	case MIME_CTE_BASE64:
		if (sc_clean(s, p->body_start, p->body_end))
			return ENC_KEEP;
		*dec = DEC_B64;
		return ENC_B64;
	default:
		if (sc_clean(s, p->body_start, p->body_end))
			return ENC_KEEP;
		break;
	}
	return text ? ENC_QP : ENC_B64;
}

/* A body being decoded and encoded again, piece by piece. */
struct sc_code {
	int     dec, enc;
	struct mime_qpdec qd;
	struct mime_b64dec bd;
	struct mime_qpenc qe;
	struct mime_b64enc be;
};

/* Encode decoded bytes into the entity. */
static void
code_put(struct sc *s, struct sc_code *c, const char *p, size_t n)
{
	size_t o;

	o = c->enc == ENC_QP ? mime_qpenc_feed(&c->qe, p, n, s->enc) :
	    mime_b64enc_feed(&c->be, p, n, s->enc);
	so_add(&s->out[MIME_IO_ENTITY], s->enc, o);
}

/* Decode a piece (if the plan says so), then encode it. */
static void
code_fn(struct sc *s, void *arg, const char *p, size_t n)
{
	struct sc_code *c = arg;
	size_t o;

	if (c->dec == DEC_QP) {
		o = mime_qpdec_feed(&c->qd, p, n, s->tmp);
		code_put(s, c, s->tmp, o);
	} else if (c->dec == DEC_B64) {
		o = mime_b64dec_feed(&c->bd, p, n, s->tmp);
		code_put(s, c, s->tmp, o);
	} else
		code_put(s, c, p, n);
}

/* put_body() of part p in the planned encoding. */
static void
sc_body(struct sc *s, const struct mime_part *p, int enc, int dec)
{
	struct sc_code c;
	size_t o;

	if (enc == ENC_KEEP) {
		sc_norm(s, &s->out[MIME_IO_ENTITY], p->body_start, p->body_end,
		    0);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.dec = dec;
	c.enc = enc;
	mime_qpdec_init(&c.qd);
	mime_b64dec_init(&c.bd);
	mime_qpenc_init(&c.qe);
	mime_b64enc_init(&c.be);
	sc_range(s, p->body_start, p->body_end, code_fn, &c);
	if (dec == DEC_QP) {
		o = mime_qpdec_end(&c.qd, s->tmp);
		code_put(s, &c, s->tmp, o);
	} else if (dec == DEC_B64) {
		o = mime_b64dec_end(&c.bd, s->tmp);
		code_put(s, &c, s->tmp, o);
	}
	o = enc == ENC_QP ? mime_qpenc_end(&c.qe, s->enc) :
	    mime_b64enc_end(&c.be, s->enc);
	so_add(&s->out[MIME_IO_ENTITY], s->enc, o);
}

/* gap_put() over pieces: one line held (at most 998 bytes and CRLF). */
struct sc_gap {
	char    line[MIME_LINE_LIMIT + 2];
	size_t  n;
	int     over;           /* longer than line[]: left out */
};

/* Put or leave out one held line (see gap_put). */
static void
gap_line(struct sc *s, struct sc_gap *g)
{
	const char *l = g->line;
	size_t i, n = g->n;
	int lf = n > 0 && l[n - 1] == '\n', bad = g->over;
	struct sc_norm nm = { &s->out[MIME_IO_ENTITY], 0, 0 };

	i = n - lf - (lf && n > 1 && l[n - 2] == '\r');
	bad = bad || i > MIME_LINE_LIMIT;
	for (i = 0; i < n && !bad; i++)
		bad = l[i] == '\0' || (unsigned char)l[i] >= 0x80 ||
		    (l[i] == '\r' && (i + 1 >= n || l[i + 1] != '\n'));
	if (!bad && n > 0) {
		norm_fn(s, &nm, l, n);
		if (nm.cr)
			norm_barecr(&nm);
	}
	g->n = 0;
	g->over = 0;
}

/* Split a piece of a gap into lines. */
static void
gap_fn(struct sc *s, void *arg, const char *p, size_t n)
{
	struct sc_gap *g = arg;
	size_t i;

	for (i = 0; i < n; i++) {
		if (g->n < sizeof(g->line))
			g->line[g->n++] = p[i];
		else
			g->over = 1;
		if (p[i] == '\n')
			gap_line(s, g);
	}
}

/* gap_put() of [off, end). */
static void
sc_gap(struct sc *s, size_t off, size_t end)
{
	struct sc_gap g;

	g.n = 0;
	g.over = 0;
	sc_range(s, off, end, gap_fn, &g);
	if (g.n > 0 || g.over)
		gap_line(s, &g);
}

/* canon_part() reading the message through the callbacks. */
static void
sc_part(struct sc *s, const struct mime_part *p, int top)
{
	struct sc_out *b = &s->out[MIME_IO_ENTITY];
	const struct mime_part *c;
	char name[32];
	size_t i, pos;
	int enc = ENC_KEEP, dec = DEC_NONE;

	if (!p->container)
		enc = sc_plan(s, p, &dec);
	if (top && !p->has_ct)
		so_str(b, "Content-Type: text/plain; charset=us-ascii\r\n");
	for (i = 0; i < p->nhdrs && !s->err; i++) {
		sc_name(s, &p->hdrs[i], name, sizeof(name));
		if (top && strncasecmp(name, "content-", 8) != 0)
			continue;
		if (enc != ENC_KEEP && p->hdrs[i].namelen == 25 &&
		    strcasecmp(name, "content-transfer-encoding") == 0)
			continue;
		sc_norm(s, b, p->hdrs[i].off, p->hdrs[i].end, 1);
		if (b->last != '\n')
			so_add(b, "\r\n", 2);
	}
	if (enc == ENC_QP)
		so_str(b, "Content-Transfer-Encoding: quoted-printable\r\n");
	else if (enc == ENC_B64)
		so_str(b, "Content-Transfer-Encoding: base64\r\n");
	so_add(b, "\r\n", 2);
	if (!p->container) {
		sc_body(s, p, enc, dec);
		return;
	}
	pos = p->body_start;
	for (c = p->child; c != NULL && !s->err; c = c->next) {
		sc_gap(s, pos, c->hdr_start);
		if (b->last != '\n')
			so_add(b, "\r\n", 2);
		sc_part(s, c, 0);
		pos = c->body_end;
	}
	sc_gap(s, pos, p->body_end);
}

/*
 * mime_canon() of the message t was parsed from, read through io->read
 * in bounded pieces; the outer fields and the entity go to io->write
 * (MIME_IO_OUTER, MIME_IO_ENTITY) in pieces, byte for byte what
 * mime_canon() returns.  0, or -1 when a callback failed.
 */
int
mime_canon_stream(const struct mime_tree *t, const struct mime_io *io)
{
	struct sc *s = xcalloc(1, sizeof(*s));
	const struct mime_hdr *h;
	char name[32];
	size_t i;
	int k, r;

	s->io = io;
	for (k = 0; k < 2; k++) {
		s->out[k].io = io;
		s->out[k].which = k;
	}
	s->in = xmalloc(SC_CHUNK);
	s->tmp = xmalloc(SC_CHUNK + 128);
	s->enc = xmalloc(mime_qpenc_max(SC_CHUNK + 128) +
	    mime_b64enc_max(SC_CHUNK + 128));
	for (i = 0; t->root != NULL && i < t->root->nhdrs && !s->err; i++) {
		h = &t->root->hdrs[i];
		sc_name(s, h, name, sizeof(name));
		if (strncasecmp(name, "content-", 8) == 0 ||
		    (h->namelen == 12 && strcasecmp(name, "mime-version") == 0))
			continue;
		sc_norm(s, &s->out[MIME_IO_OUTER], h->off, h->end, 1);
		if (s->out[MIME_IO_OUTER].last != '\n')
			so_add(&s->out[MIME_IO_OUTER], "\r\n", 2);
	}
	if (t->root != NULL)
		sc_part(s, t->root, 1);
	so_flush(&s->out[0]);
	so_flush(&s->out[1]);
	r = s->err || s->out[0].err || s->out[1].err ? -1 : 0;
	free(s->in);
	free(s->tmp);
	free(s->enc);
	free(s);
	return r;
}

/*
 * A part's body with its transfer encoding undone, read through io in
 * pieces: at most max bytes, malloc'd.  Longer: the first max bytes with
 * `cut`, else NULL.  NULL on a read error.
 */
static unsigned char *
io_decode(const struct mime_io *io, const struct mime_part *p, size_t max,
    int cut, size_t *outlen)
{
	struct mime_b64dec bd;
	struct mime_qpdec qd;
	char *in = xmalloc(SC_CHUNK), *out = xmalloc(max + SC_CHUNK + 128);
	size_t off = p->body_start, n = 0;
	ssize_t r;

	mime_b64dec_init(&bd);
	mime_qpdec_init(&qd);
	*outlen = 0;
	while (off < p->body_end && n <= max) {
		r = io->read(io->rarg, in, p->body_end - off < SC_CHUNK ?
		    p->body_end - off : SC_CHUNK, off);
		if (r <= 0)
			goto fail;
		off += (size_t)r;
		if (p->cte == MIME_CTE_BASE64)
			n += mime_b64dec_feed(&bd, in, (size_t)r, out + n);
		else if (p->cte == MIME_CTE_QP)
			n += mime_qpdec_feed(&qd, in, (size_t)r, out + n);
		else {
			memcpy(out + n, in, (size_t)r);
			n += (size_t)r;
		}
	}
	if (n <= max) {
		if (p->cte == MIME_CTE_BASE64)
			n += mime_b64dec_end(&bd, out + n);
		else if (p->cte == MIME_CTE_QP)
			n += mime_qpdec_end(&qd, out + n);
	}
	if (n > max && !cut)
		goto fail;
	free(in);
	*outlen = n > max ? max : n;
	return (unsigned char *)out;
 fail:
	free(in);
	free(out);
	return NULL;
}

/*
 * Why a message detected as signed (k: SIGNED, or P7M) can be read another
 * way by the mail reader it goes to, or NULL: mime_hflags_why() of its own
 * header section, or for multipart/signed of the signature part's.  The
 * signed part's own fields are covered by the signature: whatever they
 * say, it is signed.
 */
const char *
mime_smime_ambiguity(const struct mime_tree *t, enum mime_smime_kind k)
{
	const struct mime_part *r = t->root;
	const char *why;

	if (r == NULL || (k != MIME_SMIME_SIGNED && k != MIME_SMIME_P7M))
		return NULL;
	if ((why = mime_hflags_why(r->hflags)) != NULL)
		return why;
	if (k == MIME_SMIME_SIGNED && r->child != NULL &&
	    r->child->next != NULL)
		return mime_hflags_why(r->child->next->hflags);
	return NULL;
}

/*
 * mime_smime_detect() of the message t was parsed from, read through io:
 * SIGNED: der the signature (NULL and BAD when over sigmax bytes); P7M:
 * der only the first bytes of the decoded body (enough to tell its CMS
 * type), content_off/len the body as received.
 */
enum mime_smime_kind
mime_smime_detect_tree(const struct mime_tree *t, const struct mime_io *io,
    size_t sigmax, struct mime_smime *r)
{
	const struct mime_part *root = t->root, *c1, *c2;
	const char *v;
	size_t i;

	memset(r, 0, sizeof(*r));
	if (root == NULL)
		return r->kind;
	if (strcmp(root->ct.type, "multipart") == 0 &&
	    strcmp(root->ct.subtype, "signed") == 0 &&
	    is_sig_protocol(mime_ct_param(&root->ct, "protocol"))) {
		if ((v = mime_ct_param(&root->ct, "micalg")) != NULL)
			snprintf(r->micalg, sizeof(r->micalg), "%s", v);
		c1 = root->child;
		if (c1 == NULL || (c2 = c1->next) == NULL ||
		    c2->next != NULL || !ct_app(&c2->ct, "pkcs7-signature"))
			return r->kind = MIME_SMIME_BAD;
		r->content_off = c1->hdr_start;
		r->content_len = c1->body_end - c1->hdr_start;
		r->der = io_decode(io, c2, sigmax, 0, &r->derlen);
		r->kind = r->derlen == 0 ? MIME_SMIME_BAD : MIME_SMIME_SIGNED;
	} else if (ct_app(&root->ct, "pkcs7-mime") || is_p7m_name(&root->ct)) {
		if ((v = mime_ct_param(&root->ct, "smime-type")) != NULL)
			snprintf(r->smime_type, sizeof(r->smime_type), "%s",
			    v);
		for (i = 0; r->smime_type[i] != '\0'; i++)
			r->smime_type[i] = (char)tolower(
			    (unsigned char)r->smime_type[i]);
		r->content_off = root->body_start;
		r->content_len = root->body_end - root->body_start;
		r->der = io_decode(io, root, 64, 1, &r->derlen);
		r->kind = r->derlen == 0 ? MIME_SMIME_BAD : MIME_SMIME_P7M;
	}
	return r->kind;
}
