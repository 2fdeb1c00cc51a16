/* smtp_data.h: DATA phase codecs: end-of-data detector with dot-unstuffing
 * (inbound) and dot-stuffing with line-end canonicalisation (outbound). */
#ifndef SMRELAY_SMTP_DATA_H
#define SMRELAY_SMTP_DATA_H

#include <stddef.h>

/* Flags raised while reading DATA; the message is refused at its end. */
#define SMTP_DATA_BARE_LF   0x01    /* LF not preceded by CR */
#define SMTP_DATA_BARE_CR   0x02    /* CR not followed by LF */
#define SMTP_DATA_LONG_LINE 0x04    /* a line longer than maxline (excl. CRLF) */
#define SMTP_DATA_NUL       0x08    /* a NUL byte */
#define SMTP_DATA_8BIT      0x10    /* a byte >= 0x80 */

struct smtp_data_rd {
	int state;              /* internal */
	size_t linelen;         /* bytes in current line so far */
	size_t maxline;         /* cap for one line, excl. CRLF */
	unsigned flags;         /* SMTP_DATA_* seen so far */
};

struct smtp_stuff {
	int state;              /* internal */
};

/* smtp_data.c */
void smtp_data_init(struct smtp_data_rd *, size_t maxline);
/*
 * Feed wire bytes read after "354".  Writes the unstuffed message bytes to
 * `out` (room for at least `len` bytes), sets *outlen.  Returns the number of
 * input bytes consumed.  Only <CRLF>.<CRLF> ends the data (the message
 * starts at a line start, so a first line of "." also ends it); then *done is
 * set to 1 and the bytes after the terminator are not consumed.  The
 * terminator's CRLF "." CRLF is not part of the output, but the CRLF ending
 * the last line is.  Bare CR and bare LF never end anything: they are passed
 * through as data and flagged.  A line start is only after CRLF (or at the
 * very beginning), never after a bare CR or LF.  A line that starts with
 * "." has that dot removed.  Bytes of a line past maxline are still passed
 * through; the flag is raised (maxline 0: no limit; the count includes a
 * stuffing dot, not the CRLF).  The only byte ever dropped besides the
 * stuffing dot: the CR of a line-start "." CR that is not followed by LF
 * (a bare CR, flagged); this keeps the output no longer than the input of
 * each call and the same however the input is split.  The return value is
 * less than len only when *done is 1.
 */
size_t smtp_data_feed(struct smtp_data_rd *, const char *in, size_t len,
    char *out, size_t *outlen, int *done);

void smtp_stuff_init(struct smtp_stuff *);
/*
 * Convert message bytes to wire form: a "." at the start of a line is
 * doubled, and every line end becomes CRLF (a bare LF becomes CRLF, a bare
 * CR becomes CRLF), so nothing but CRLF ever reaches the next hop.  A CR at
 * the very end of `in` is held until the next call.  `out` needs room for
 * 2 * len + 2 bytes.  Returns bytes written.
 */
size_t smtp_stuff_feed(struct smtp_stuff *, const char *in, size_t len, char *out);
/* Finish: flush a held CR, add CRLF if the message did not end with one,
 * then ".\r\n".  `out` needs 8 bytes.  Returns bytes written. */
size_t smtp_stuff_end(struct smtp_stuff *, char *out);

#endif
