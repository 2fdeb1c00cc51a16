/* mime.c: streaming RFC 5322 / MIME splitter, Content-Type parser, tree. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/lib.h"
#include "mime.h"

/* Splitter states. */
enum {
	RD_HDR = 0,     /* header section of a part */
	RD_BODY         /* body lines: leaf, preamble or epilogue */
};

/* Per-level states of an open multipart. */
enum {
	LV_PRE = 0,     /* before the first delimiter */
	LV_IN,          /* a child part is open */
	LV_EPI          /* after the close delimiter */
};

static const char *eolstr[3] = { "", "\n", "\r\n" };

/* RFC 2045 token character. */
static int
is_token(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Skip blanks, line ends and (nested) comments. */
static size_t
skip_cfws(const char *s, size_t len, size_t i)
{
	int depth = 0;

	for (; i < len; i++) {
		if (depth > 0) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			else if (s[i] == '(')
				depth++;
			else if (s[i] == ')')
				depth--;
		} else if (s[i] == '(')
			depth++;
		else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
		    s[i] != '\n')
			break;
	}
	return i;
}

/* Copy a token at s[i] lowercased into out (cut at outsz - 1). */
static size_t
get_token(const char *s, size_t len, size_t i, char *out, size_t outsz)
{
	size_t o = 0;

	while (i < len && is_token((unsigned char)s[i])) {
		if (o + 1 < outsz)
			out[o++] = (char)tolower((unsigned char)s[i]);
		i++;
	}
	out[o] = '\0';
	return i;
}

/* Read a parameter value (token or quoted-string) at s[i]. */
static size_t
get_value(const char *s, size_t len, size_t i, char *out, size_t outsz)
{
	size_t o = 0;

	if (i < len && s[i] == '"') {
		for (i++; i < len && s[i] != '"'; i++) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			if (o + 1 < outsz)
				out[o++] = s[i];
		}
		if (i < len)
			i++;
	} else {
		while (i < len && is_token((unsigned char)s[i])) {
			if (o + 1 < outsz)
				out[o++] = s[i];
			i++;
		}
	}
	out[o] = '\0';
	return i;
}

/* Decode %XX escapes in place (RFC 2231 extended values). */
static void
pct_decode(char *v)
{
	char *o = v;
	int hi, lo;

	for (; *v != '\0'; v++) {
		if (*v == '%' && (hi = hexval(v[1])) >= 0 &&
		    (lo = hexval(v[2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			v += 2;
		} else
			*o++ = *v;
	}
	*o = '\0';
}

/*
 * RFC 2231: turn p (just parsed, not yet counted) into its plain name.
 * "name*" and "name*0*" values lose the charset'language' prefix and are
 * %-decoded; "name*N" (N > 0) is appended to an earlier parameter of
 * that name in ct, segments taken in the order given.  Returns 1 if p is a
 * new parameter, 0 if it was merged (or dropped).  A name given twice, or
 * a segment that is not the next of its "name*0" (others sort segments,
 * or read "name" and "name*1" as two parameters), makes ct ambiguous.
 */
static int
param_2231(struct mime_ct *ct, struct mime_param *p)
{
	char *star = strchr(p->name, '*'), *q;
	size_t i, len, n;
	int ext, idx = -1;

	p->seg = 0;
	if (star != NULL) {
		ext = p->name[strlen(p->name) - 1] == '*';
		if (star[1] >= '0' && star[1] <= '9')
			idx = atoi(star + 1);
		*star = '\0';
		if (ext && idx <= 0 && (q = strchr(p->value, '\'')) != NULL &&
		    (q = strchr(q + 1, '\'')) != NULL)
			memmove(p->value, q + 1, strlen(q + 1) + 1);
		if (ext)
			pct_decode(p->value);
	}
	for (i = 0; i < ct->nparams; i++)
		if (strcmp(ct->params[i].name, p->name) == 0)
			break;
	if (idx <= 0) {
		if (i < ct->nparams)
			ct->ambiguous = 1;
		p->seg = idx == 0;
		return 1;
	}
	if (i == ct->nparams || ct->params[i].seg != idx) {
		ct->ambiguous = 1;
		if (i == ct->nparams)
			return 0;
	}
	ct->params[i].seg = idx + 1;
	len = strlen(ct->params[i].value);
	n = strlen(p->value);
	if (n > sizeof(ct->params[i].value) - 1 - len)
		n = sizeof(ct->params[i].value) - 1 - len;
	memcpy(ct->params[i].value + len, p->value, n);
	ct->params[i].value[len + n] = '\0';
	return 0;
}

/* Whether s[i] is a blank or a line end (folding). */
static int
is_ows(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Whether a Content-Type value has the plain form every reader parses the
 * same way: type "/" subtype *(";" name "=" (token / quoted-string)) and
 * an optional ";" at the end, blanks only around ";" and "=", no comment,
 * every quoted-string closed and without backslash escapes.  (RFC 2045
 * allows more; readers differ on it, and no mail agent writes it.)
 */
static int
ct_plain(const char *s, size_t len)
{
	size_t i = 0;
	int n;

	while (i < len && is_ows(s[i]))
		i++;
	for (n = 0; i < len && is_token((unsigned char)s[i]); n++)
		i++;
	if (n == 0 || i >= len || s[i++] != '/')
		return 0;
	for (n = 0; i < len && is_token((unsigned char)s[i]); n++)
		i++;
	if (n == 0)
		return 0;
	for (;;) {
		while (i < len && is_ows(s[i]))
			i++;
		if (i == len)
			return 1;
		if (s[i++] != ';')
			return 0;
		while (i < len && is_ows(s[i]))
			i++;
		if (i == len)
			return 1;		/* a ";" at the end */
		for (n = 0; i < len && is_token((unsigned char)s[i]); n++)
			i++;
		while (i < len && is_ows(s[i]))
			i++;
		if (n == 0 || i >= len || s[i++] != '=')
			return 0;
		while (i < len && is_ows(s[i]))
			i++;
		if (i < len && s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					return 0;
			if (i++ >= len)
				return 0;	/* not closed */
		} else {
			for (n = 0; i < len && is_token((unsigned char)s[i]);
			    n++)
				i++;
			if (n == 0)
				return 0;
		}
	}
}

/*
 * Parse a Content-Type field value: type "/" subtype *(";" name "=" value).
 * Type, subtype and parameter names are lowercased; malformed parameters
 * are skipped; RFC 2231 continuations are joined (in the order given) and
 * extended values decoded.  Returns 0, or -1 when there is no
 * type/subtype (ct is then the text/plain default).
 */
int
mime_ct_parse(const char *s, size_t len, struct mime_ct *ct)
{
	struct mime_param *p;
	size_t i;

	memset(ct, 0, sizeof(*ct));
	i = skip_cfws(s, len, 0);
	i = get_token(s, len, i, ct->type, sizeof(ct->type));
	i = skip_cfws(s, len, i);
	if (ct->type[0] == '\0' || i >= len || s[i] != '/')
		goto bad;
	i = skip_cfws(s, len, i + 1);
	i = get_token(s, len, i, ct->subtype, sizeof(ct->subtype));
	if (ct->subtype[0] == '\0')
		goto bad;
	while (i < len) {
		while (i < len && s[i] != ';')
			i++;
		if (i >= len)
			break;
		i = skip_cfws(s, len, i + 1);
		if (ct->nparams == MIME_PARAMS_MAX) {
			ct->ambiguous = 1;	/* unread: maybe one twice */
			break;
		}
		p = &ct->params[ct->nparams];
		i = get_token(s, len, i, p->name, sizeof(p->name));
		i = skip_cfws(s, len, i);
		if (p->name[0] == '\0' || i >= len || s[i] != '=')
			continue;
		i = skip_cfws(s, len, i + 1);
		i = get_value(s, len, i, p->value, sizeof(p->value));
		if (param_2231(ct, p))
			ct->nparams++;
	}
	if (!ct_plain(s, len))
		ct->ambiguous = 1;
	return 0;
 bad:
	mime_ct_default(ct, 0);
	return -1;
}

/* The RFC 2045/2046 default: text/plain; charset=us-ascii (or the
 * message/rfc822 default of a multipart/digest child). */
void
mime_ct_default(struct mime_ct *ct, int digest)
{
	memset(ct, 0, sizeof(*ct));
	if (digest) {
		memcpy(ct->type, "message", 8);
		memcpy(ct->subtype, "rfc822", 7);
		return;
	}
	memcpy(ct->type, "text", 5);
	memcpy(ct->subtype, "plain", 6);
	memcpy(ct->params[0].name, "charset", 8);
	memcpy(ct->params[0].value, "us-ascii", 9);
	ct->nparams = 1;
}

/* Value of the first parameter called name (lower case), or NULL. */
const char *
mime_ct_param(const struct mime_ct *ct, const char *name)
{
	size_t i;

	for (i = 0; i < ct->nparams; i++)
		if (strcmp(ct->params[i].name, name) == 0)
			return ct->params[i].value;
	return NULL;
}

/* The first anomaly of MIME_H_* flags h, in words; NULL when none. */
const char *
mime_hflags_why(unsigned h)
{
	if (h & MIME_H_CT2)
		return "more than one Content-Type field";
	if (h & MIME_H_CTE2)
		return "more than one Content-Transfer-Encoding field";
	if (h & MIME_H_PARAM)
		return "a Content-Type field that readers parse differently "
		    "(a parameter twice or out of order, a comment, an odd "
		    "quote)";
	if (h & MIME_H_BADLINE)
		return "a header line that is no field";
	if (h & MIME_H_LONG)
		return "a Content-Type or Content-Transfer-Encoding field "
		    "too long to read";
	if (h & MIME_H_EPILOGUE)
		return "a delimiter line after the close delimiter";
	return NULL;
}

/* Map a Content-Transfer-Encoding value to its enum. */
enum mime_cte
mime_cte_parse(const char *s, size_t len)
{
	static const struct { const char *name; enum mime_cte cte; } t[] = {
		{ "7bit", MIME_CTE_7BIT }, { "8bit", MIME_CTE_8BIT },
		{ "binary", MIME_CTE_BINARY },
		{ "quoted-printable", MIME_CTE_QP },
		{ "base64", MIME_CTE_BASE64 },
	};
	char tok[32];
	size_t i;

	i = skip_cfws(s, len, 0);
	get_token(s, len, i, tok, sizeof(tok));
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(tok, t[i].name) == 0)
			return t[i].cte;
	return MIME_CTE_OTHER;
}

/* Name of a transfer encoding for dumps and headers. */
const char *
mime_cte_name(enum mime_cte cte)
{
	switch (cte) {
	case MIME_CTE_NONE:
		return "none";
	case MIME_CTE_7BIT:
		return "7bit";
	case MIME_CTE_8BIT:
		return "8bit";
	case MIME_CTE_BINARY:
		return "binary";
	case MIME_CTE_QP:
		return "quoted-printable";
	case MIME_CTE_BASE64:
		return "base64";
	default:
		return "other";
	}
}

/* Deliver one event with the common fields filled in. */
static void
emit(struct mime_rd *rd, struct mime_event *ev, enum mime_ev_type type,
    int depth, size_t off, size_t end)
{
	ev->type = type;
	ev->depth = depth;
	ev->off = off;
	ev->end = end;
	rd->fn(rd->arg, ev);
}

/* Deliver body-like bytes of the current context (leaf, preamble, ...). */
static void
emit_data(struct mime_rd *rd, const char *data, size_t len, size_t off)
{
	struct mime_event ev;
	enum mime_ev_type type = MIME_EV_BODY;
	int depth = rd->depth;

	if (len == 0)
		return;
	if (rd->depth > 0 && rd->lv[rd->depth - 1].state != LV_IN) {
		depth = rd->depth - 1;
		type = rd->lv[depth].state == LV_PRE ? MIME_EV_PREAMBLE :
		    MIME_EV_EPILOGUE;
	}
	memset(&ev, 0, sizeof(ev));
	ev.data = data;
	ev.len = len;
	emit(rd, &ev, type, depth, off, off + len);
}

/* Deliver the held line end, if any, as data. */
static void
flush_eol(struct mime_rd *rd)
{
	if (rd->peol != 0)
		emit_data(rd, eolstr[rd->peol], rd->peol, rd->peoloff);
	rd->peol = 0;
}

/* Deliver the complete header field collected so far. */
static void
emit_field(struct mime_rd *rd)
{
	struct mime_event ev;
	size_t nl, vs, ve;

	if (!rd->havefield)
		return;
	rd->havefield = 0;
	nl = rd->namelen;
	while (nl > 0 && (rd->field[nl - 1] == ' ' ||
	    rd->field[nl - 1] == '\t'))
		nl--;
	vs = rd->namelen + 1;
	ve = rd->fieldlen;
	while (vs < ve && (rd->field[vs] == ' ' || rd->field[vs] == '\t'))
		vs++;
	while (ve > vs && (rd->field[ve - 1] == ' ' ||
	    rd->field[ve - 1] == '\t'))
		ve--;
	if (nl == 12 && strncasecmp(rd->field, "content-type", 12) == 0) {
		if (rd->sawct)
			rd->hflags |= MIME_H_CT2;
		else {
			rd->sawct = 1;
			if (mime_ct_parse(rd->field + vs, ve - vs, &rd->ct) ==
			    -1)
				mime_ct_default(&rd->ct, rd->defdigest);
			else if (rd->ct.ambiguous)
				rd->hflags |= MIME_H_PARAM;
		}
		if (rd->fieldcut)
			rd->hflags |= MIME_H_LONG;
	} else if (nl == 25 &&
	    strncasecmp(rd->field, "content-transfer-encoding", 25) == 0) {
		if (rd->sawcte)
			rd->hflags |= MIME_H_CTE2;
		rd->sawcte = 1;
		rd->cte = mime_cte_parse(rd->field + vs, ve - vs);
		if (rd->fieldcut)
			rd->hflags |= MIME_H_LONG;
	}
	memset(&ev, 0, sizeof(ev));
	ev.name = rd->field;
	ev.namelen = nl;
	ev.value = rd->field + vs;
	ev.valuelen = ve - vs;
	emit(rd, &ev, MIME_EV_HEADER, rd->partdepth, rd->fieldstart,
	    rd->fieldend);
}

/* Open a level for the multipart just read; 0 if it must be a leaf. */
static int
open_level(struct mime_rd *rd)
{
	struct mime_level *lv;
	const char *b = mime_ct_param(&rd->ct, "boundary");

	if (b == NULL || *b == '\0' || strlen(b) > MIME_BOUNDARY_MAX) {
		rd->flags |= MIME_F_NOBOUND;
		return 0;
	}
	if (rd->depth >= MIME_DEPTH_MAX) {
		rd->flags |= MIME_F_DEPTH;
		return 0;
	}
	lv = &rd->lv[rd->depth++];
	lv->blen = strlen(b);
	memcpy(lv->boundary, b, lv->blen + 1);
	lv->digest = strcmp(rd->ct.subtype, "digest") == 0;
	lv->state = LV_PRE;
	lv->epidelim = 0;
	return 1;
}

/* End of a header section: report it, open a multipart level if any. */
static void
headers_end(struct mime_rd *rd, size_t off, size_t end)
{
	struct mime_event ev;

	emit_field(rd);
	if (!rd->sawct)
		mime_ct_default(&rd->ct, rd->defdigest);
	memset(&ev, 0, sizeof(ev));
	ev.ct = &rd->ct;
	ev.cte = rd->cte;
	ev.hflags = rd->hflags;
	rd->state = RD_BODY;
	rd->bol = 1;
	rd->peol = 0;
	if (strcmp(rd->ct.type, "multipart") == 0)
		ev.container = open_level(rd);
	emit(rd, &ev, MIME_EV_HEADERS_END, rd->partdepth, off, end);
}

/* Which open level a body line is a delimiter of; -1 if none. */
static int
match_delim(struct mime_rd *rd, int *close)
{
	struct mime_level *lv;
	size_t i;
	int k;

	if (rd->linecut || rd->frozen || rd->linelen < 3 ||
	    rd->line[0] != '-' || rd->line[1] != '-')
		return -1;
	for (k = rd->depth - 1; k >= 0; k--) {
		lv = &rd->lv[k];
		if (rd->linelen < 2 + lv->blen ||
		    memcmp(rd->line + 2, lv->boundary, lv->blen) != 0)
			continue;
		if (lv->state == LV_EPI) {	/* readers that read on */
			lv->epidelim = 1;
			continue;
		}
		i = 2 + lv->blen;
		*close = 0;
		if (i + 2 <= rd->linelen && rd->line[i] == '-' &&
		    rd->line[i + 1] == '-') {
			*close = 1;
			i += 2;
		}
		while (i < rd->linelen && (rd->line[i] == ' ' ||
		    rd->line[i] == '\t'))
			i++;
		if (i == rd->linelen)
			return k;
	}
	return -1;
}

/* Close every part below level k (k = -1: everything) at offset off. */
static void
close_to(struct mime_rd *rd, int k, size_t off)
{
	struct mime_event ev;
	int j;

	memset(&ev, 0, sizeof(ev));
	if (rd->depth > 0 && rd->lv[rd->depth - 1].state == LV_IN)
		emit(rd, &ev, MIME_EV_PART_END, rd->depth, off, off);
	for (j = rd->depth - 1; j > k; j--) {
		if (rd->lv[j].state == LV_PRE)
			rd->flags |= MIME_F_NOFIRST;
		if (rd->lv[j].state != LV_EPI)
			rd->flags |= MIME_F_UNCLOSED;
		ev.hflags = rd->lv[j].epidelim ? MIME_H_EPILOGUE : 0;
		emit(rd, &ev, MIME_EV_PART_END, j, off, off);
		rd->depth = j;
	}
}

/* A delimiter line of level k ends at eoloff (line end of n bytes). */
static void
delimiter(struct mime_rd *rd, int k, int close, size_t eoloff, size_t n)
{
	struct mime_event ev;
	size_t off = rd->peol ? rd->peoloff : rd->linestart;

	close_to(rd, k, off);
	memset(&ev, 0, sizeof(ev));
	ev.close = close;
	if (close) {
		rd->peol = 0;
		emit(rd, &ev, MIME_EV_DELIM, k, off, eoloff);
		rd->lv[k].state = LV_EPI;
		rd->peol = n;
		rd->peoloff = eoloff;
		return;
	}
	emit(rd, &ev, MIME_EV_DELIM, k, off, eoloff + n);
	rd->lv[k].state = LV_IN;
	rd->nparts++;
	emit(rd, &ev, MIME_EV_PART_BEGIN, k + 1, eoloff + n, eoloff + n);
	rd->state = RD_HDR;
	rd->partdepth = k + 1;
	rd->defdigest = rd->lv[k].digest;
	rd->havefield = 0;
	rd->sawct = rd->sawcte = 0;
	rd->hflags = 0;
	rd->cte = MIME_CTE_NONE;
	rd->peol = 0;
}

/* One byte of a body line (never CR-before-LF nor LF). */
static void
body_byte(struct mime_rd *rd, char c, size_t o)
{
	if (rd->bol) {
		rd->bol = 0;
		rd->linestart = o;
		rd->linelen = 0;
		rd->linecut = 0;
	}
	if (rd->linelen == MIME_LINE_MAX) {
		/* Too long to be a delimiter: pass it on in pieces. */
		flush_eol(rd);
		emit_data(rd, rd->line, rd->linelen, o - rd->linelen);
		rd->linelen = 0;
		rd->linecut = 1;
	}
	rd->line[rd->linelen++] = c;
}

/* A run of body line bytes (no LF, no CR before an LF) from offset o:
 * what body_byte does for each, a line's worth at a time. */
static void
body_run(struct mime_rd *rd, const char *p, size_t n, size_t o)
{
	size_t k;

	if (n > 0 && rd->bol) {
		rd->bol = 0;
		rd->linestart = o;
		rd->linelen = 0;
		rd->linecut = 0;
	}
	while (n > 0) {
		if (rd->linelen == MIME_LINE_MAX) {
			flush_eol(rd);
			emit_data(rd, rd->line, rd->linelen, o - rd->linelen);
			rd->linelen = 0;
			rd->linecut = 1;
		}
		k = MIME_LINE_MAX - rd->linelen;
		if (k > n)
			k = n;
		memcpy(rd->line + rd->linelen, p, k);
		rd->linelen += k;
		p += k;
		o += k;
		n -= k;
	}
}

/* End of a body line: a line end of n bytes (0 at the end) at eoloff. */
static void
body_eol(struct mime_rd *rd, size_t eoloff, size_t n)
{
	int k, close;

	if (rd->bol) {
		rd->linestart = eoloff;
		rd->linelen = 0;
		rd->linecut = 0;
	}
	rd->bol = 1;
	if ((k = match_delim(rd, &close)) >= 0) {
		if (!close && rd->nparts >= MIME_PARTS_MAX) {
			rd->flags |= MIME_F_PARTS;
			rd->frozen = 1;
		} else {
			delimiter(rd, k, close, eoloff, n);
			return;
		}
	}
	flush_eol(rd);
	emit_data(rd, rd->line, rd->linelen, eoloff - rd->linelen);
	rd->peol = n;
	rd->peoloff = eoloff;
}

/* The current header line is no field: headers end, it is body. */
static void
to_body(struct mime_rd *rd)
{
	size_t i, n = rd->linelen, start = rd->linestart;

	rd->flags |= MIME_F_BADHDR;
	rd->hflags |= MIME_H_BADLINE;
	headers_end(rd, start, start);
	for (i = 0; i < n; i++)
		body_byte(rd, rd->line[i], start + i);
}

/* Append a byte to the unfolded field, cutting overlong fields. */
static void
field_add(struct mime_rd *rd, char c)
{
	if (rd->fieldlen < sizeof(rd->field))
		rd->field[rd->fieldlen++] = c;
	else {
		rd->flags |= MIME_F_LONGHDR;
		rd->fieldcut = 1;
	}
}

/* One byte of a header line (never CR-before-LF nor LF). */
static void
hdr_byte(struct mime_rd *rd, char c, size_t o)
{
	unsigned char u = (unsigned char)c;
	int wsp = c == ' ' || c == '\t';

	if (rd->bol) {
		rd->bol = 0;
		rd->linestart = o;
		rd->linelen = 0;
		if (!(wsp && rd->havefield)) {
			emit_field(rd);
			rd->havefield = 1;
			rd->namedone = 0;
			rd->fieldlen = 0;
			rd->fieldcut = 0;
			rd->fieldstart = o;
		}
	}
	if (!rd->namedone && (c == ':' ? rd->fieldlen == 0 :
	    (wsp ? rd->fieldlen == 0 : !(u > 0x20 && u < 0x7f)) ||
	    rd->linelen >= 998)) {
		rd->havefield = 0;
		to_body(rd);
		body_byte(rd, c, o);
		return;
	}
	if (rd->linelen < sizeof(rd->line))
		rd->line[rd->linelen++] = c;
	if (!rd->namedone && c == ':') {
		rd->namedone = 1;
		rd->namelen = rd->fieldlen;
	}
	field_add(rd, c);
}

/* End of a header line; an empty one ends the header section. */
static void
hdr_eol(struct mime_rd *rd, size_t eoloff, size_t n)
{
	if (rd->bol) {
		headers_end(rd, eoloff, eoloff + n);
		return;
	}
	if (!rd->namedone) {
		rd->havefield = 0;
		to_body(rd);
		body_eol(rd, eoloff, n);
		return;
	}
	rd->fieldend = eoloff + n;
	rd->bol = 1;
}

/* Route one data byte by state. */
static void
do_byte(struct mime_rd *rd, char c, size_t o)
{
	if (rd->state == RD_HDR)
		hdr_byte(rd, c, o);
	else
		body_byte(rd, c, o);
}

/* Route one line end by state. */
static void
do_eol(struct mime_rd *rd, size_t eoloff, size_t n)
{
	if (rd->state == RD_HDR)
		hdr_eol(rd, eoloff, n);
	else
		body_eol(rd, eoloff, n);
}

/* Start splitting a message; fn gets every event. */
void
mime_rd_init(struct mime_rd *rd, mime_event_fn fn, void *arg)
{
	struct mime_event ev;

	memset(rd, 0, sizeof(*rd));
	rd->fn = fn;
	rd->arg = arg;
	rd->state = RD_HDR;
	rd->bol = 1;
	rd->nparts = 1;
	memset(&ev, 0, sizeof(ev));
	emit(rd, &ev, MIME_EV_PART_BEGIN, 0, 0, 0);
}

/*
 * Feed message bytes.  Lines end in CRLF or a bare LF; a bare CR is data.
 * Events depend only on the bytes, never on how they were split.
 */
void
mime_rd_feed(struct mime_rd *rd, const char *buf, size_t len)
{
	const char *lf;
	size_t i, n;
	char c;

	for (i = 0; i < len; i++, rd->off++) {
		/* Body bytes up to the next line end in one go (a bare CR is
		 * data); a CR that may precede an LF takes the way below. */
		if (rd->state == RD_BODY && !rd->cr) {
			lf = memchr(buf + i, '\n', len - i);
			n = (lf != NULL ? (size_t)(lf - buf) : len) - i;
			if (n > 0 && buf[i + n - 1] == '\r')
				n--;
			if (n > 0) {
				body_run(rd, buf + i, n, rd->off);
				i += n;
				rd->off += n;
				if (i == len)
					break;
			}
		}
		c = buf[i];
		if (rd->cr) {
			rd->cr = 0;
			if (c == '\n') {
				do_eol(rd, rd->croff, 2);
				continue;
			}
			do_byte(rd, '\r', rd->croff);
		}
		if (c == '\r') {
			rd->cr = 1;
			rd->croff = rd->off;
		} else if (c == '\n')
			do_eol(rd, rd->off, 1);
		else
			do_byte(rd, c, rd->off);
	}
}

/* Finish a header section at the end of the input. */
static void
hdr_finish(struct mime_rd *rd)
{
	if (!rd->bol && !rd->namedone) {
		rd->havefield = 0;
		to_body(rd);
		return;
	}
	if (!rd->bol)
		rd->fieldend = rd->off;
	headers_end(rd, rd->off, rd->off);
}

/* End of input: finish the last line, close every open part. */
void
mime_rd_end(struct mime_rd *rd)
{
	struct mime_event ev;

	if (rd->cr) {
		rd->cr = 0;
		do_byte(rd, '\r', rd->croff);
	}
	if (rd->state == RD_HDR)
		hdr_finish(rd);
	if (!rd->bol)
		body_eol(rd, rd->off, 0);
	if (rd->state == RD_HDR)
		hdr_finish(rd);
	flush_eol(rd);
	if (rd->depth > 0)
		close_to(rd, -1, rd->off);
	else {
		memset(&ev, 0, sizeof(ev));
		emit(rd, &ev, MIME_EV_PART_END, 0, rd->off, rd->off);
	}
}

struct tree_build {
	struct mime_tree *t;
	struct mime_part *cur;
	size_t  hcap;
};

/* Event sink of mime_parse: grow the tree. */
static void
tree_event(void *arg, const struct mime_event *ev)
{
	struct tree_build *tb = arg;
	struct mime_part *p = tb->cur, *np, **pp;

	switch (ev->type) {
	case MIME_EV_PART_BEGIN:
		np = xcalloc(1, sizeof(*np));
		np->hdr_start = np->hdr_end = ev->off;
		np->depth = ev->depth;
		np->parent = p;
		if (p == NULL)
			tb->t->root = np;
		else {
			for (pp = &p->child; *pp != NULL; pp = &(*pp)->next)
				;
			*pp = np;
			p->nchildren++;
		}
		tb->t->nparts++;
		tb->cur = np;
		tb->hcap = 0;
		break;
	case MIME_EV_HEADER:
		if (p->nhdrs == tb->hcap) {
			tb->hcap = tb->hcap * 2 + 8;
			p->hdrs = xreallocarray(p->hdrs, tb->hcap,
			    sizeof(*p->hdrs));
		}
		p->hdrs[p->nhdrs].off = ev->off;
		p->hdrs[p->nhdrs].end = ev->end;
		p->hdrs[p->nhdrs++].namelen = ev->namelen;
		p->hdr_end = ev->end;
		if (ev->namelen == 12 &&
		    strncasecmp(ev->name, "content-type", 12) == 0)
			p->has_ct = 1;
		break;
	case MIME_EV_HEADERS_END:
		p->ct = *ev->ct;
		p->cte = ev->cte;
		p->hflags = ev->hflags;
		p->container = ev->container;
		p->body_start = ev->end;
		break;
	case MIME_EV_PART_END:
		p->body_end = ev->off;
		p->hflags |= ev->hflags;
		tb->cur = p->parent;
		break;
	default:
		break;
	}
}

/* A part tree built from bytes fed in pieces (mime_tree_begin). */
struct mime_tb {
	struct tree_build tb;
	struct mime_rd    rd;
	struct mime_tree *t;
};

/* Start building t from bytes fed with mime_tree_feed(). */
struct mime_tb *
mime_tree_begin(struct mime_tree *t)
{
	struct mime_tb *b = xcalloc(1, sizeof(*b));

	memset(t, 0, sizeof(*t));
	b->t = t;
	b->tb.t = t;
	mime_rd_init(&b->rd, tree_event, &b->tb);
	return b;
}

/* Feed the next bytes; the tree records offsets, never the bytes. */
void
mime_tree_feed(struct mime_tb *b, const char *buf, size_t len)
{
	mime_rd_feed(&b->rd, buf, len);
}

/* Finish (frees b); 0, or -1 (tree empty) over the depth or part limits. */
int
mime_tree_end(struct mime_tb *b)
{
	struct mime_tree *t = b->t;

	mime_rd_end(&b->rd);
	t->flags = b->rd.flags;
	free(b);
	if (t->flags & (MIME_F_DEPTH | MIME_F_PARTS)) {
		mime_tree_free(t);
		return -1;
	}
	return 0;
}

/*
 * Parse a whole message into a part tree.  Returns 0, or -1 (tree empty)
 * when the message is over MIME_DEPTH_MAX or MIME_PARTS_MAX.
 */
int
mime_parse(const char *buf, size_t len, struct mime_tree *t)
{
	struct mime_tb *b = mime_tree_begin(t);

	mime_tree_feed(b, buf, len);
	return mime_tree_end(b);
}

/* Free one part and everything below it, without recursion. */
static void
part_free(struct mime_part *p)
{
	struct mime_part *n;

	while (p != NULL) {
		if (p->child != NULL) {
			n = p->child;
			p->child = NULL;
			p = n;
			continue;
		}
		n = p->next != NULL ? p->next : p->parent;
		if (p->parent != NULL && p->next == NULL)
			p->parent->child = NULL;
		free(p->hdrs);
		free(p);
		p = n;
	}
}

/* Free a tree from mime_parse. */
void
mime_tree_free(struct mime_tree *t)
{
	unsigned flags = t->flags;

	part_free(t->root);
	memset(t, 0, sizeof(*t));
	t->flags = flags;
}
