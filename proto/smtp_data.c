/* smtp_data.c: DATA phase codecs: end-of-data detection, dot-(un)stuffing. */
#include "autoconfig.h"

#include <string.h>

#include <stddef.h>

#include "smtp_data.h"

/*
 * Reader states.  A "line start" exists only after CRLF (or at the very
 * beginning): a bare LF or bare CR is data, so "\n.\n", "\r.\r" and their
 * mixtures can never end the message (SMTP smuggling, CVE-2023-51764).
 */
enum {
	RD_BOL = 0,     /* at a line start */
	RD_TEXT,        /* inside a line */
	RD_CR,          /* inside a line, just after a CR (already written) */
	RD_DOT,         /* a "." at a line start, not written */
	RD_DOTCR,       /* "." CR at a line start, neither written */
	RD_DONE         /* <CRLF>.<CRLF> seen */
};

/* Stuffer states. */
enum {
	ST_BOL = 0,     /* at a line start */
	ST_TEXT,        /* inside a line */
	ST_CR           /* a CR is held: CRLF or bare CR, we will see */
};

/* Start reading a DATA body; maxline 0 means no line length cap. */
void
smtp_data_init(struct smtp_data_rd *rd, size_t maxline)
{
	rd->state = RD_BOL;
	rd->linelen = 0;
	rd->maxline = maxline;
	rd->flags = 0;
}

/* Account one byte of the current line: length cap and byte classes. */
static void
data_count(struct smtp_data_rd *rd, unsigned char c)
{
	rd->linelen++;
	if (rd->maxline != 0 && rd->linelen > rd->maxline)
		rd->flags |= SMTP_DATA_LONG_LINE;
	if (c == '\0')
		rd->flags |= SMTP_DATA_NUL;
	else if (c >= 0x80)
		rd->flags |= SMTP_DATA_8BIT;
	else if (c == '\n')
		rd->flags |= SMTP_DATA_BARE_LF;
}

/*
 * One byte inside a line (state RD_TEXT or RD_CR).  Writes it to out and
 * returns the number of bytes written (always 1).  A CR is counted in the
 * line length only once it is known to be bare, so a line of exactly
 * maxline bytes plus CRLF is not long.
 */
static size_t
data_text(struct smtp_data_rd *rd, unsigned char c, char *out)
{
	if (rd->state == RD_CR) {
		if (c == '\n') {
			rd->state = RD_BOL;
			rd->linelen = 0;
			*out = (char)c;
			return 1;
		}
		rd->flags |= SMTP_DATA_BARE_CR;
		data_count(rd, '\r');
	}
	if (c == '\r') {
		rd->state = RD_CR;
	} else {
		rd->state = RD_TEXT;
		data_count(rd, c);
	}
	*out = (char)c;
	return 1;
}

/*
 * Feed wire bytes after "354"; see smtp_data.h for the contract.
 *
 * Output never exceeds input: a line-start dot is never written, and the
 * only other held byte, the CR of "." CR, is dropped when it turns out to
 * be a bare CR (the message is refused for SMTP_DATA_BARE_CR anyway).  This
 * keeps the output independent of how the input is split.
 */
size_t
smtp_data_feed(struct smtp_data_rd *rd, const char *in, size_t len,
    char *out, size_t *outlen, int *done)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, j, o = 0;
	unsigned char c;

	*done = 0;
	for (i = 0; i < len && rd->state != RD_DONE; i++) {
		c = p[i];
		/* Inside a line, printable ASCII needs no decision: copied as a
		 * run, counted at once (the byte-at-a-time path was 6 % of the
		 * network process's samples receiving 8 KB messages). */
		if (rd->state == RD_TEXT && c >= 0x20 && c < 0x7f) {
			for (j = i + 1; j < len && p[j] >= 0x20 && p[j] < 0x7f;
			    j++)
				;
			memcpy(out + o, p + i, j - i);
			o += j - i;
			rd->linelen += j - i;
			if (rd->maxline != 0 && rd->linelen > rd->maxline)
				rd->flags |= SMTP_DATA_LONG_LINE;
			i = j - 1;
			continue;
		}
		switch (rd->state) {
		case RD_BOL:
			if (c == '.') {
				rd->state = RD_DOT;
				data_count(rd, c);
				break;
			}
			rd->state = RD_TEXT;
			o += data_text(rd, c, out + o);
			break;
		case RD_DOT:
			if (c == '\r') {
				rd->state = RD_DOTCR;
				break;
			}
			/* A dot-stuffed line: the dot goes, the rest stays. */
			rd->state = RD_TEXT;
			o += data_text(rd, c, out + o);
			break;
		case RD_DOTCR:
			if (c == '\n') {
				rd->state = RD_DONE;
				rd->linelen = 0;
				break;
			}
			/* "." CR followed by something else: a bare CR. */
			rd->flags |= SMTP_DATA_BARE_CR;
			data_count(rd, '\r');
			rd->state = RD_TEXT;
			o += data_text(rd, c, out + o);
			break;
		default:
			o += data_text(rd, c, out + o);
			break;
		}
	}
	*outlen = o;
	if (rd->state == RD_DONE)
		*done = 1;
	return i;
}

/* Start dot-stuffing a message. */
void
smtp_stuff_init(struct smtp_stuff *st)
{
	st->state = ST_BOL;
}

/* Convert message bytes to wire form; see smtp_data.h.  Line breaks one
 * at a time; the text between them copied in runs (memchr finds their
 * ends), which a byte-at-a-time loop made 5 % of the network process's
 * CPU when relaying signed mail. */
size_t
smtp_stuff_feed(struct smtp_stuff *st, const char *in, size_t len, char *out)
{
	const char *p;
	size_t i = 0, o = 0, n;
	char c;

	while (i < len) {
		c = in[i];
		if (st->state == ST_CR) {
			out[o++] = '\r';
			out[o++] = '\n';
			st->state = ST_BOL;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\r') {
			st->state = ST_CR;
			i++;
			continue;
		}
		if (c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			st->state = ST_BOL;
			i++;
			continue;
		}
		if (c == '.' && st->state == ST_BOL)
			out[o++] = '.';
		/* the run up to the next CR or LF, looked for in a window so
		 * that text without CRs costs no more than with them */
		n = len - i < 4096 ? len - i : 4096;
		if ((p = memchr(in + i, '\n', n)) != NULL)
			n = (size_t)(p - (in + i));
		if ((p = memchr(in + i, '\r', n)) != NULL)
			n = (size_t)(p - (in + i));
		memcpy(out + o, in + i, n);
		o += n;
		i += n;
		st->state = ST_TEXT;
	}
	return o;
}

/* Finish the wire form: end the last line, then the "." line. */
size_t
smtp_stuff_end(struct smtp_stuff *st, char *out)
{
	size_t o = 0;

	if (st->state != ST_BOL) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	st->state = ST_BOL;
	return o;
}
