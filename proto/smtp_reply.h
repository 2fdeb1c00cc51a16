/* smtp_reply.h: pure parser for SMTP replies (client side) and EHLO keywords. */
#ifndef SMRELAY_SMTP_REPLY_H
#define SMRELAY_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_TEXT_MAX 512

/* EHLO extensions a next hop may offer. */
#define EXT_PIPELINING  0x001
#define EXT_SIZE        0x002
#define EXT_8BITMIME    0x004
#define EXT_STARTTLS    0x008
#define EXT_ENHANCED    0x010
#define EXT_DSN         0x020
#define EXT_SMTPUTF8    0x040
#define EXT_CHUNKING    0x080
#define EXT_XFORWARD    0x100   /* Postfix XFORWARD (xforward.h) */

struct smtp_reply {
	int code;               /* 3-digit code; 0 until the first line */
	char enh[16];           /* enhanced status "x.y.z" of the first line, "" if none */
	char text[SMTP_REPLY_TEXT_MAX]; /* text of all lines joined by "\n",
	                                 * enhanced code stripped, truncated */
	int nlines;
	unsigned ext;           /* EXT_* found when the lines are an EHLO reply */
	uint64_t size_limit;    /* SIZE argument from EHLO, 0 if none/unlimited */
	unsigned xforward;      /* XF_BIT()s the XFORWARD keyword names */
	int complete;           /* internal: the last line fed ended the reply */
};

/* smtp_reply.c */
void smtp_reply_init(struct smtp_reply *);
/*
 * Feed one reply line without CRLF.  Returns 1 when the reply is complete
 * (the line had "ddd " or exactly "ddd"), 0 when more lines follow ("ddd-"),
 * -1 on a malformed line (bad code, code changed between lines).  EHLO
 * keywords are collected on every line after the first of a 250 reply into
 * `ext`.  An enhanced code is recognised only when its class is the reply's
 * first digit; it is stripped from every line's text.  Control bytes in
 * the text become "?".  A line fed after a complete reply starts a new one.
 */
int smtp_reply_feed(struct smtp_reply *, const char *line, size_t len);

#endif
