/* xforward.h: Postfix's XFORWARD extension (XFORWARD_README): the EHLO
 * keyword's attribute list, the command's arguments (xtext, RFC 3461) in
 * both directions, bounded and validated. */
#ifndef SMRELAY_XFORWARD_H
#define SMRELAY_XFORWARD_H

#include <stddef.h>

/* The attributes, as bits of a set (EHLO offer, which are known). */
enum xforward_attr {
	XF_NAME,        /* the client's host name (we do no reverse DNS) */
	XF_ADDR,        /* its address: dotted quad, or IPV6:... */
	XF_PORT,        /* its port */
	XF_PROTO,       /* SMTP or ESMTP */
	XF_HELO,        /* the name it gave in HELO/EHLO */
	XF_IDENT,       /* a message identifier of the upstream hop */
	XF_SOURCE,      /* LOCAL or REMOTE */
	XF_NATTR
};
#define XF_BIT(a)       (1u << (a))

#define XF_VALUE_MAX    255     /* bytes of one decoded value */
#define XF_LINE_MAX     512     /* one command line, CRLF excluded */

/* What the upstream client was.  An empty value is unknown. */
struct xforward {
	char val[XF_NATTR][XF_VALUE_MAX + 1];
};

/* xforward.c */
/* The attribute set named by an EHLO "XFORWARD NAME ADDR ..." line's
 * arguments (`args`, n bytes, after the keyword); unknown names ignored. */
unsigned xforward_ehlo_attrs(const char *args, size_t n);
/* The EHLO line we offer: "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE". */
const char *xforward_ehlo_line(void);
/*
 * Apply one XFORWARD command's arguments (after "XFORWARD ") to xf: each
 * `NAME=xtext` decoded and checked; [UNAVAILABLE] and [TEMPUNAVAIL] make an
 * attribute unknown.  All or nothing: on -1, xf is unchanged and err says
 * why in one line.
 */
int xforward_parse(struct xforward *, const char *args, char *err,
    size_t errlen);
/*
 * The next XFORWARD command line (without CRLF) telling a server that
 * offers `offered` what xf knows, at most XF_LINE_MAX bytes; offered
 * attributes we do not know go as [UNAVAILABLE].  *pos starts at 0 and
 * advances.  Returns 1 when a line was written, 0 when all is said.
 */
int xforward_format(const struct xforward *, unsigned offered, int *pos,
    char *line, size_t linelen);
/* The name of an attribute ("NAME", ...). */
const char *xforward_attr_name(enum xforward_attr);

#endif
