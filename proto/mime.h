/* mime.h: RFC 5322 / MIME splitter, part tree, transfer-encoding codecs,
 * S/MIME canonicalisation (RFC 8551 3.1) and detection.  Pure: no I/O.
 *
 * Outgoing:  mime_canon(msg) -> outer fields + inner entity (CRLF, 7bit
 *   bodies); sign inner with CMS (detached, binary: it is canonical
 *   already); mime_multipart_signed() or mime_pkcs7_mime() give the new
 *   content fields and body; mime_assemble(outer, hdrs, body) the message.
 *   The entity to encrypt after signing is hdrs + CRLF + body.
 * Inbound:  mime_smime_detect(msg) -> signed content byte range and
 *   signature DER, or the pkcs7-mime DER and its smime-type.
 * Lines end in CRLF or bare LF on input; a bare CR is data. */
#ifndef SMRELAY_MIME_H
#define SMRELAY_MIME_H

#include <stddef.h>
#include <sys/types.h>

#define MIME_DEPTH_MAX   32     /* nested multiparts */
#define MIME_PARTS_MAX   1000   /* parts in one message */
#define MIME_TOKEN_MAX   80     /* type, subtype, parameter name */
#define MIME_PVALUE_MAX  256    /* parameter value (longer: truncated) */
#define MIME_PARAMS_MAX  12     /* parameters kept per Content-Type */
#define MIME_FIELD_MAX   8192   /* unfolded header field kept (longer: cut) */
#define MIME_LINE_MAX    1024   /* body line held for delimiter checks */
#define MIME_BOUNDARY_MAX 70    /* RFC 2046 */

/* Content-Transfer-Encoding values. */
enum mime_cte {
	MIME_CTE_NONE = 0,      /* no header: 7bit */
	MIME_CTE_7BIT,
	MIME_CTE_8BIT,
	MIME_CTE_BINARY,
	MIME_CTE_QP,
	MIME_CTE_BASE64,
	MIME_CTE_OTHER          /* unknown token: treat as opaque */
};

/* Splitter flags: anomalies seen; none of them stops the parse. */
#define MIME_F_BADHDR    0x01   /* a header line that is no field: body */
#define MIME_F_LONGHDR   0x02   /* a field longer than MIME_FIELD_MAX, cut */
#define MIME_F_UNCLOSED  0x04   /* a multipart without close delimiter */
#define MIME_F_NOBOUND   0x08   /* multipart/ * without usable boundary: leaf */
#define MIME_F_DEPTH     0x10   /* nesting over MIME_DEPTH_MAX: leaf */
#define MIME_F_PARTS     0x20   /* over MIME_PARTS_MAX parts: rest is body */
#define MIME_F_NOFIRST   0x40   /* multipart without any delimiter */

/*
 * Anomalies of one part (mime_part.hflags), in its header section or its
 * epilogue: ways in which two readers of the same bytes can disagree about
 * what the part is.  We read the first Content-Type and the last
 * Content-Transfer-Encoding, stop at a line that is no field, keep
 * MIME_PARAMS_MAX parameters, and end a multipart at its close delimiter;
 * other readers take the last, skip the line, or read on.
 */
#define MIME_H_CT2       0x01   /* more than one Content-Type field */
#define MIME_H_CTE2      0x02   /* more than one Content-Transfer-Encoding */
#define MIME_H_PARAM     0x04   /* a Content-Type not in the plain form: a
                                   parameter twice (after RFC 2231 joining)
                                   or continued out of order, more than
                                   MIME_PARAMS_MAX, a comment, an escaped or
                                   unclosed quoted-string, text before ";" */
#define MIME_H_BADLINE   0x08   /* the section ended at a line that is no
                                   field (what follows is body to us) */
#define MIME_H_LONG      0x10   /* a Content-* field cut at MIME_FIELD_MAX */
#define MIME_H_EPILOGUE  0x20   /* a multipart's epilogue has a line that
                                   starts like its delimiter (readers that
                                   read on after "--b--" see a part) */

struct mime_param {
	char    name[MIME_TOKEN_MAX];   /* lower case */
	char    value[MIME_PVALUE_MAX]; /* unquoted */
	int     seg;                    /* RFC 2231: the continuation number
	                                   expected next (0: none may follow) */
};

/* A parsed Content-Type; type and subtype in lower case. */
struct mime_ct {
	char    type[MIME_TOKEN_MAX];
	char    subtype[MIME_TOKEN_MAX];
	size_t  nparams;
	int     ambiguous;              /* MIME_H_PARAM applies */
	struct mime_param params[MIME_PARAMS_MAX];
};

enum mime_ev_type {
	MIME_EV_PART_BEGIN = 1, /* off: first header byte */
	MIME_EV_HEADER,         /* name, value (unfolded, trimmed); raw range */
	MIME_EV_HEADERS_END,    /* ct, cte; [off, end): the blank line (may be
	                           empty); body starts at end */
	MIME_EV_BODY,           /* leaf body bytes data/len at offset off */
	MIME_EV_PREAMBLE,       /* multipart bytes before the first delimiter */
	MIME_EV_DELIM,          /* delimiter line [off, end): with the line end
	                           before it, and after it unless close: the
	                           line end after "--b--" is epilogue */
	MIME_EV_EPILOGUE,       /* bytes after the close delimiter line */
	MIME_EV_PART_END        /* off: end of the body */
};

struct mime_event {
	enum mime_ev_type type;
	int              depth;         /* 0: the message */
	size_t           off, end;      /* absolute input offsets */
	const char      *name;          /* HEADER */
	size_t           namelen;
	const char      *value;         /* HEADER */
	size_t           valuelen;
	const char      *data;          /* BODY, PREAMBLE, EPILOGUE */
	size_t           len;
	const struct mime_ct *ct;       /* HEADERS_END */
	enum mime_cte    cte;           /* HEADERS_END */
	int              container;     /* HEADERS_END: a multipart whose body
	                                   is split into parts (may be none) */
	unsigned         hflags;        /* HEADERS_END: MIME_H_* of the header
	                                   section; PART_END of a multipart:
	                                   MIME_H_EPILOGUE */
	int              close;         /* DELIM */
};

typedef void (*mime_event_fn)(void *arg, const struct mime_event *);

struct mime_level {
	char    boundary[MIME_BOUNDARY_MAX + 1];
	size_t  blen;
	int     digest;     /* multipart/digest: default is message/rfc822 */
	int     state;      /* internal */
	int     epidelim;   /* internal: MIME_H_EPILOGUE */
};

/* Streaming splitter.  Large (about 17 KiB): allocate it, do not copy it. */
struct mime_rd {
	mime_event_fn   fn;
	void           *arg;
	int             state;          /* internal */
	unsigned        flags;          /* MIME_F_* */
	size_t          off;            /* offset of the next input byte */
	size_t          nparts;
	int             depth;          /* levels open below the message */
	int             cr;             /* a CR is held */
	int             bol;            /* at a line start */
	size_t          linestart;      /* offset of the current line */
	char            line[MIME_LINE_MAX];
	size_t          linelen;
	int             linecut;        /* part of the line already emitted */
	size_t          peol, peoloff;  /* held line end (1 or 2) and offset */
	char            field[MIME_FIELD_MAX];
	size_t          fieldlen, fieldstart, fieldend, namelen;
	int             havefield, namedone;
	size_t          croff;          /* offset of the held CR */
	int             frozen;         /* parts limit hit: no delimiters */
	int             partdepth;      /* depth of the part being read */
	int             defdigest;      /* its default is message/rfc822 */
	int             sawct, sawcte;
	int             fieldcut;       /* the field being read was cut */
	unsigned        hflags;         /* MIME_H_* of the section being read */
	struct mime_ct  ct;
	enum mime_cte   cte;
	struct mime_level lv[MIME_DEPTH_MAX + 1];
};

/* One header field: raw bytes [off, end) incl. its line end; the name is
 * the first namelen bytes (trailing blanks before the colon excluded). */
struct mime_hdr {
	size_t  off, end, namelen;
};

/* A node of the part tree; offsets into the parsed buffer. */
struct mime_part {
	size_t  hdr_start;      /* first header byte */
	size_t  hdr_end;        /* end of the last field, its line end incl. */
	size_t  body_start;     /* after the blank line */
	size_t  body_end;       /* end of body, without the line end before
	                           the next delimiter */
	struct mime_ct ct;      /* the default if none given */
	int     has_ct;         /* a Content-Type field was present */
	int     container;      /* multipart split at its boundary: body is
	                           preamble, children, epilogue (even with no
	                           children); else a leaf */
	enum mime_cte cte;
	unsigned hflags;                /* MIME_H_*: its header section, its
	                                   epilogue */
	int     depth;
	struct mime_hdr *hdrs;          /* header fields, in order */
	size_t  nhdrs;
	struct mime_part *parent;
	struct mime_part *child;        /* first child (multipart) */
	struct mime_part *next;         /* next sibling */
	size_t  nchildren;
};

struct mime_tree {
	struct mime_part *root;
	size_t  nparts;
	unsigned flags;                 /* MIME_F_* from the splitter */
};

/* Streaming transfer-encoding codecs. */
struct mime_b64enc {
	unsigned char hold[3];
	int     nhold;
	int     col;
};
struct mime_b64dec {
	unsigned acc;
	int     n;
	int     done;           /* saw "=": the rest is ignored */
};
struct mime_qpenc {
	int     col;            /* output column */
	int     ws;             /* held space or tab, 0 if none */
	int     cr;             /* held CR */
};
struct mime_qpdec {
	int     state;
	char    hex;            /* first hex digit after "=" */
	char    ws[76];         /* held whitespace run */
	size_t  nws;
};

/* S/MIME detection result (mime_smime_detect). */
enum mime_smime_kind {
	MIME_SMIME_NONE = 0,    /* not S/MIME */
	MIME_SMIME_SIGNED,      /* multipart/signed, pkcs7-signature */
	MIME_SMIME_P7M,         /* application/(x-)pkcs7-mime */
	MIME_SMIME_BAD = -1     /* looks like S/MIME, but malformed */
};

struct mime_smime {
	enum mime_smime_kind kind;
	char    smime_type[MIME_PVALUE_MAX];    /* P7M: lower case, may be "" */
	size_t  content_off;    /* SIGNED: first part as received, headers */
	size_t  content_len;
	unsigned char *der;     /* SIGNED: signature, P7M: body; malloc'd */
	size_t  derlen;
	char    micalg[MIME_PVALUE_MAX];        /* SIGNED: may be "" */
};

/* mime.c */
int     mime_ct_parse(const char *, size_t, struct mime_ct *);
void    mime_ct_default(struct mime_ct *, int digest);
const char *mime_ct_param(const struct mime_ct *, const char *name);
const char *mime_hflags_why(unsigned);
enum mime_cte mime_cte_parse(const char *, size_t);
const char *mime_cte_name(enum mime_cte);
void    mime_rd_init(struct mime_rd *, mime_event_fn, void *);
void    mime_rd_feed(struct mime_rd *, const char *, size_t);
void    mime_rd_end(struct mime_rd *);
int     mime_parse(const char *, size_t, struct mime_tree *);
struct mime_tb;
struct mime_tb *mime_tree_begin(struct mime_tree *);
void    mime_tree_feed(struct mime_tb *, const char *, size_t);
int     mime_tree_end(struct mime_tb *);
void    mime_tree_free(struct mime_tree *);

/* mime_codec.c */
void    mime_b64enc_init(struct mime_b64enc *);
size_t  mime_b64enc_feed(struct mime_b64enc *, const char *, size_t, char *);
size_t  mime_b64enc_end(struct mime_b64enc *, char *);
size_t  mime_b64enc_max(size_t);
void    mime_b64dec_init(struct mime_b64dec *);
size_t  mime_b64dec_feed(struct mime_b64dec *, const char *, size_t, char *);
size_t  mime_b64dec_end(struct mime_b64dec *, char *);
void    mime_qpenc_init(struct mime_qpenc *);
size_t  mime_qpenc_feed(struct mime_qpenc *, const char *, size_t, char *);
size_t  mime_qpenc_end(struct mime_qpenc *, char *);
size_t  mime_qpenc_max(size_t);
void    mime_qpdec_init(struct mime_qpdec *);
size_t  mime_qpdec_feed(struct mime_qpdec *, const char *, size_t, char *);
size_t  mime_qpdec_end(struct mime_qpdec *, char *);
char   *mime_b64_encode(const void *, size_t, size_t *);
unsigned char *mime_b64_decode(const char *, size_t, size_t *);
char   *mime_qp_encode(const char *, size_t, size_t *);
char   *mime_qp_decode(const char *, size_t, size_t *);
void    mime_decode2047(const char *, char *out, size_t max);

/* Where mime_canon_stream() reads a message and writes its results. */
#define MIME_IO_OUTER	0	/* the header fields that stay outside */
#define MIME_IO_ENTITY	1	/* the canonical entity */
struct mime_io {
	/* up to len bytes at off: bytes read, 0 at the end, -1 on error */
	ssize_t (*read)(void *arg, char *buf, size_t len, size_t off);
	void    *rarg;
	/* append to output `which`: 0, or -1 on error */
	int     (*write)(void *arg, int which, const char *buf, size_t len);
	void    *warg;
};

/* mime_canon.c */
int     mime_canon_stream(const struct mime_tree *, const struct mime_io *);
enum mime_smime_kind mime_smime_detect_tree(const struct mime_tree *,
	    const struct mime_io *, size_t sigmax, struct mime_smime *);
const char *mime_smime_ambiguity(const struct mime_tree *,
	    enum mime_smime_kind);
int     mime_canon(const char *, size_t, char **outer, size_t *outerlen,
	    char **inner, size_t *innerlen);
int     mime_assemble(const char *outer, size_t outerlen, const char *hdrs,
	    const char *body, size_t bodylen, char **out, size_t *outlen);
int     mime_boundary(char *, size_t, const unsigned char *, size_t);
char   *mime_drop_field(const char *, size_t, const char *name,
	    size_t *outlen);
int     mime_multipart_signed(const char *inner, size_t innerlen,
	    const unsigned char *sig, size_t siglen, const char *boundary,
	    const char *micalg, char **hdrs, char **body, size_t *bodylen);
int     mime_pkcs7_mime(const unsigned char *, size_t, const char *smime_type,
	    char **hdrs, char **body, size_t *bodylen);
enum mime_smime_kind mime_smime_detect(const char *, size_t,
	    struct mime_smime *);
void    mime_smime_clear(struct mime_smime *);

#endif
