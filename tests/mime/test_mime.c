/* test_mime.c: golden tests of the MIME layer: splitter events, part tree,
 * canonical entity, S/MIME detection (*.eml), codecs (*.in). */
#include "autoconfig.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "proto/mime.h"

#define MAXCASE 65536

/* Print bytes escaped; a real newline follows each escaped LF. */
static void
dump_bytes(FILE *out, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		golden_escape(out, s + i, 1);
		if (s[i] == '\n' && i + 1 < n)
			fputs("\n    ", out);
	}
}

static const char *evnames[] = { "?", "PART_BEGIN", "HEADER",
    "HEADERS_END", "BODY", "PREAMBLE", "DELIM", "EPILOGUE", "PART_END" };

/* Print a Content-Type. */
static void
dump_ct(FILE *out, const struct mime_ct *ct)
{
	size_t i;

	fprintf(out, "%s/%s", ct->type, ct->subtype);
	for (i = 0; i < ct->nparams; i++)
		fprintf(out, "; %s=\"%s\"", ct->params[i].name,
		    ct->params[i].value);
}

/* Event recorder: a full serialisation plus a coalesced dump. */
struct rec {
	FILE   *full;           /* every event, for split comparisons */
	FILE   *dump;           /* NULL: no dump */
	int     lasttype, lastdepth;
};

/* Serialise one event into f (exact form, data events not merged). */
static void
ev_full(FILE *f, const struct mime_event *ev)
{
	fprintf(f, "%d %d %zu %zu ", ev->type, ev->depth, ev->off, ev->end);
	if (ev->type == MIME_EV_HEADER) {
		fwrite(ev->name, 1, ev->namelen, f);
		fputc(':', f);
		fwrite(ev->value, 1, ev->valuelen, f);
	} else if (ev->type == MIME_EV_HEADERS_END) {
		dump_ct(f, ev->ct);
		fprintf(f, " %d %u", ev->cte, ev->hflags);
	} else if (ev->data != NULL)
		fwrite(ev->data, 1, ev->len, f);
	fprintf(f, " %d\n", ev->close);
}

/* Event sink for the tests. */
static void
rec_event(void *arg, const struct mime_event *ev)
{
	struct rec *r = arg;
	FILE *d = r->dump;
	int data = ev->type == MIME_EV_BODY || ev->type == MIME_EV_PREAMBLE ||
	    ev->type == MIME_EV_EPILOGUE;

	ev_full(r->full, ev);
	if (d == NULL)
		return;
	if (data && r->lasttype == (int)ev->type && r->lastdepth == ev->depth) {
		dump_bytes(d, ev->data, ev->len);
		return;
	}
	if (r->lasttype != 0 && (r->lasttype == MIME_EV_BODY ||
	    r->lasttype == MIME_EV_PREAMBLE || r->lasttype == MIME_EV_EPILOGUE))
		fputs("\"\n", d);
	r->lasttype = data ? (int)ev->type : -1;
	r->lastdepth = ev->depth;
	if (data)
		fprintf(d, "%*s%s d=%d @%zu", ev->depth * 2, "",
		    evnames[ev->type], ev->depth, ev->off);
	else
		fprintf(d, "%*s%s d=%d [%zu,%zu)", ev->depth * 2, "",
		    evnames[ev->type], ev->depth, ev->off, ev->end);
	switch (ev->type) {
	case MIME_EV_HEADER:
		fputs(" ", d);
		golden_escape(d, ev->name, ev->namelen);
		fputs(": \"", d);
		golden_escape(d, ev->value, ev->valuelen);
		fputs("\"\n", d);
		break;
	case MIME_EV_HEADERS_END:
		fputs(" ", d);
		dump_ct(d, ev->ct);
		fprintf(d, " cte=%s\n", mime_cte_name(ev->cte));
		break;
	case MIME_EV_DELIM:
		fprintf(d, "%s\n", ev->close ? " close" : "");
		break;
	default:
		if (!data) {
			fputs("\n", d);
			break;
		}
		fputs(" \"", d);
		dump_bytes(d, ev->data, ev->len);
		break;
	}
}

/* Split the message with cuts (ascending offsets); returns the events. */
static char *
split_run(const char *m, size_t len, const size_t *cuts, size_t ncuts,
    FILE *dump, unsigned *flags)
{
	struct mime_rd *rd;
	struct rec r;
	char *s = NULL;
	size_t slen, off = 0, k, end;

	memset(&r, 0, sizeof(r));
	if ((r.full = open_memstream(&s, &slen)) == NULL ||
	    (rd = malloc(sizeof(*rd))) == NULL)
		abort();
	r.dump = dump;
	mime_rd_init(rd, rec_event, &r);
	for (k = 0; k <= ncuts; k++) {
		end = k < ncuts ? cuts[k] : len;
		mime_rd_feed(rd, m + off, end - off);
		off = end;
	}
	mime_rd_end(rd);
	if (dump != NULL && (r.lasttype == MIME_EV_BODY ||
	    r.lasttype == MIME_EV_PREAMBLE || r.lasttype == MIME_EV_EPILOGUE))
		fputs("\"\n", dump);
	if (flags != NULL)
		*flags = rd->flags;
	free(rd);
	fclose(r.full);
	return s;
}

/* Events must not depend on how the input is split. */
static void
check_splits(const char *name, const char *m, size_t len, const char *whole)
{
	static size_t cuts[MAXCASE];
	unsigned seed = 7;
	size_t i, k;
	char *s;

	for (i = 0; i + 1 < len && i < MAXCASE; i++)
		cuts[i] = i + 1;
	s = split_run(m, len, cuts, len ? len - 1 : 0, NULL, NULL);
	if (strcmp(s, whole) != 0)
		golden_fail("%s: 1-byte feeds differ", name);
	free(s);
	for (i = 1; i < len; i++) {
		cuts[0] = i;
		s = split_run(m, len, cuts, 1, NULL, NULL);
		if (strcmp(s, whole) != 0)
			golden_fail("%s: split at %zu differs", name, i);
		free(s);
	}
	for (k = 0; k < 100 && len > 2; k++) {
		cuts[0] = golden_rand(&seed) % len;
		cuts[1] = cuts[0] + golden_rand(&seed) % (len - cuts[0]);
		cuts[2] = cuts[1] + golden_rand(&seed) % (len - cuts[1]);
		s = split_run(m, len, cuts, 3, NULL, NULL);
		if (strcmp(s, whole) != 0)
			golden_fail("%s: 3-way split differs", name);
		free(s);
	}
}

/* Print a part tree. */
static void
dump_tree(FILE *out, const struct mime_part *p)
{
	const struct mime_part *c;

	fprintf(out, "%*spart d=%d hdr=[%zu,%zu) body=[%zu,%zu) nhdrs=%zu "
	    "has_ct=%d%s cte=%s ct=", p->depth * 2, "", p->depth,
	    p->hdr_start, p->hdr_end, p->body_start, p->body_end, p->nhdrs,
	    p->has_ct, p->container ? " container" : "",
	    mime_cte_name(p->cte));
	dump_ct(out, &p->ct);
	if (p->hflags != 0)
		fprintf(out, " hflags=0x%02x (%s)", p->hflags,
		    mime_hflags_why(p->hflags));
	fputs("\n", out);
	for (c = p->child; c != NULL; c = c->next)
		dump_tree(out, c);
}

/* Line ends made CRLF (bare CR kept), for comparing decoded text. */
static char *
norm(const char *s, size_t n, size_t *outlen)
{
	char *o = malloc(2 * n + 1);
	size_t i, k = 0;

	if (o == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	*outlen = k;
	return o;
}

/* A leaf's decoded body, line ends made CRLF. */
static char *
leaf_content(const char *m, const struct mime_part *p, size_t *outlen)
{
	const char *s = m + p->body_start;
	size_t n = p->body_end - p->body_start, dl;
	char *d, *r;

	if (p->cte == MIME_CTE_BASE64)
		d = (char *)mime_b64_decode(s, n, &dl);
	else if (p->cte == MIME_CTE_QP)
		d = mime_qp_decode(s, n, &dl);
	else {
		d = malloc(n + 1);
		memcpy(d, s, n);
		dl = n;
	}
	r = norm(d, dl, outlen);
	free(d);
	return r;
}

/* Compare the decoded leaves of two trees of the same shape. */
static void
same_content(const char *name, const char *m1, const struct mime_part *a,
    const char *m2, const struct mime_part *b)
{
	char *x, *y;
	size_t xl, yl;

	if (a->container != b->container || a->nchildren != b->nchildren) {
		golden_fail("%s: canonical tree has another shape", name);
		return;
	}
	if (!a->container) {
		x = leaf_content(m1, a, &xl);
		y = leaf_content(m2, b, &yl);
		if (xl != yl || memcmp(x, y, xl) != 0)
			golden_fail("%s: leaf at %zu decodes differently",
			    name, a->hdr_start);
		free(x);
		free(y);
		return;
	}
	for (a = a->child, b = b->child; a != NULL && b != NULL;
	    a = a->next, b = b->next)
		same_content(name, m1, a, m2, b);
}

/* The canonical entity: CRLF only, 7bit, lines of at most 998. */
static void
check_7bit(const char *name, const char *s, size_t n)
{
	size_t i, line = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			line = 0;
			i++;
			continue;
		}
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' ||
		    (unsigned char)s[i] >= 0x80 || ++line > 998) {
			golden_fail("%s: canonical byte %zu not 7bit CRLF",
			    name, i);
			return;
		}
	}
}

/*
 * Wrap inner as multipart/signed and as application/pkcs7-mime, as the
 * CMS engine will; detection must give back inner and the DER exactly.
 */
static void
do_wrap(FILE *out, const char *name, const char *outer, size_t ol,
    const char *inner, size_t il)
{
	static const unsigned char sig[] = { 0x30, 0x82, 0x01, 0x02, 0xff, 0 };
	unsigned char rnd[16];
	struct mime_smime r;
	char bnd[72], *hdrs, *body, *msg;
	size_t bl, ml, i;

	for (i = 0; i < sizeof(rnd); i++)
		rnd[i] = (unsigned char)(i * 17);
	if (mime_boundary(bnd, sizeof(bnd), rnd, sizeof(rnd)) == -1 ||
	    mime_boundary(bnd, 38, rnd, sizeof(rnd)) != -1)
		golden_fail("%s: mime_boundary", name);
	mime_multipart_signed(inner, il, sig, sizeof(sig), bnd, "sha-256",
	    &hdrs, &body, &bl);
	mime_assemble(outer, ol, hdrs, body, bl, &msg, &ml);
	if (out != NULL) {
		fputs("# signed\n    ", out);
		dump_bytes(out, msg, ml);
		fputs("\n", out);
	}
	if (mime_smime_detect(msg, ml, &r) != MIME_SMIME_SIGNED ||
	    r.content_len != il || memcmp(msg + r.content_off, inner, il) ||
	    r.derlen != sizeof(sig) || memcmp(r.der, sig, sizeof(sig)) ||
	    strcmp(r.micalg, "sha-256") != 0)
		golden_fail("%s: multipart/signed does not detect back", name);
	mime_smime_clear(&r);
	free(hdrs);
	free(body);
	free(msg);
	mime_pkcs7_mime((const unsigned char *)inner, il, "enveloped-data",
	    &hdrs, &body, &bl);
	mime_assemble(outer, ol, hdrs, body, bl, &msg, &ml);
	if (mime_smime_detect(msg, ml, &r) != MIME_SMIME_P7M ||
	    r.derlen != il || memcmp(r.der, inner, il) != 0 ||
	    strcmp(r.smime_type, "enveloped-data") != 0)
		golden_fail("%s: pkcs7-mime does not detect back", name);
	mime_smime_clear(&r);
	free(hdrs);
	free(body);
	free(msg);
}

/* A message read through mime_io in pieces of at most `step` bytes. */
struct sio {
	const char *m;
	size_t  len, step;
	char   *o[2];
	size_t  n[2], cap[2];
};

/* mime_io read callback: at most step bytes. */
static ssize_t
sio_read(void *arg, char *buf, size_t len, size_t off)
{
	struct sio *s = arg;

	if (off >= s->len)
		return 0;
	if (len > s->step)
		len = s->step;
	if (len > s->len - off)
		len = s->len - off;
	memcpy(buf, s->m + off, len);
	return (ssize_t)len;
}

/* mime_io write callback: collect each output. */
static int
sio_write(void *arg, int which, const char *buf, size_t len)
{
	struct sio *s = arg;

	if (s->n[which] + len > s->cap[which]) {
		s->cap[which] = (s->n[which] + len) * 2;
		if ((s->o[which] = realloc(s->o[which], s->cap[which])) ==
		    NULL)
			abort();
	}
	memcpy(s->o[which] + s->n[which], buf, len);
	s->n[which] += len;
	return 0;
}

/* The streaming canonical form equals mime_canon()'s, whatever the
 * pieces the message is read in. */
static void
check_stream(const char *name, const char *m, size_t len, const char *outer,
    size_t ol, const char *inner, size_t il)
{
	static const size_t steps[] = { 1, 3, 7, 65536 };
	struct mime_tree t;
	struct mime_tb *tb;
	struct mime_io io;
	struct sio s;
	size_t i, k;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		memset(&s, 0, sizeof(s));
		s.m = m;
		s.len = len;
		s.step = steps[i];
		tb = mime_tree_begin(&t);
		for (k = 0; k < len; k += s.step)
			mime_tree_feed(tb, m + k, len - k < s.step ? len - k :
			    s.step);
		if (mime_tree_end(tb) == -1) {
			golden_fail("%s: streaming parse failed", name);
			return;
		}
		io.read = sio_read;
		io.rarg = &s;
		io.write = sio_write;
		io.warg = &s;
		if (mime_canon_stream(&t, &io) == -1 || s.n[0] != ol ||
		    s.n[1] != il || (ol > 0 && memcmp(s.o[0], outer, ol) != 0) ||
		    (il > 0 && memcmp(s.o[1], inner, il) != 0))
			golden_fail("%s: streaming canonical form differs "
			    "(pieces of %zu)", name, s.step);
		mime_tree_free(&t);
		free(s.o[0]);
		free(s.o[1]);
	}
}

/* Canonicalise, dump, and check the properties of the result. */
static void
do_canon(FILE *out, const char *name, const char *m, size_t len)
{
	struct mime_tree t1, t2;
	char *outer, *inner, *msg, *o2, *i2;
	size_t ol, il, ml, ol2, il2;

	if (mime_canon(m, len, &outer, &ol, &inner, &il) == -1) {
		fputs("canon: error\n", out);
		return;
	}
	fputs("outer:\n    ", out);
	dump_bytes(out, outer, ol);
	fputs("\ninner:\n    ", out);
	dump_bytes(out, inner, il);
	fputs("\n", out);
	check_7bit(name, outer, ol);
	check_7bit(name, inner, il);
	check_stream(name, m, len, outer, ol, inner, il);
	/* Decoded content is unchanged, and canonical is a fixed point. */
	if (mime_parse(m, len, &t1) == 0 && mime_parse(inner, il, &t2) == 0)
		same_content(name, m, t1.root, inner, t2.root);
	mime_tree_free(&t1);
	mime_tree_free(&t2);
	/* outer + MIME-Version + inner, as a signer of inner would send it. */
	if ((msg = malloc(ol + il + 32)) == NULL)
		abort();
	memcpy(msg, outer, ol);
	memcpy(msg + ol, "MIME-Version: 1.0\r\n", 19);
	memcpy(msg + ol + 19, inner, il);
	ml = ol + 19 + il;
	if (mime_canon(msg, ml, &o2, &ol2, &i2, &il2) == -1 || il2 != il ||
	    memcmp(i2, inner, il) != 0 || ol2 != ol ||
	    memcmp(o2, outer, ol) != 0)
		golden_fail("%s: canonical form is not a fixed point", name);
	free(o2);
	free(i2);
	free(msg);
	do_wrap(strncmp(name, "simple", 6) == 0 ? out : NULL, name, outer, ol,
	    inner, il);
	free(outer);
	free(inner);
}

/* Dump the S/MIME detection result. */
static void
do_detect(FILE *out, const char *m, size_t len)
{
	static const char *kinds[] = { "none", "signed", "p7m" };
	struct mime_smime r;
	enum mime_smime_kind k;

	k = mime_smime_detect(m, len, &r);
	fprintf(out, "smime: %s", k < 0 ? "bad" : kinds[k]);
	if (k == MIME_SMIME_SIGNED) {
		fprintf(out, " micalg=%s content=[%zu,%zu)\n    ", r.micalg,
		    r.content_off, r.content_off + r.content_len);
		dump_bytes(out, m + r.content_off, r.content_len);
	}
	if (k == MIME_SMIME_P7M)
		fprintf(out, " smime-type=%s", r.smime_type);
	if (r.der != NULL) {
		fprintf(out, "\n  der(%zu)=", r.derlen);
		golden_escape(out, (char *)r.der, r.derlen);
	}
	fputs("\n", out);
	mime_smime_clear(&r);
}

/* One .eml file: events, tree, canonical form, detection. */
static void
eml_case(FILE *out, const char *name, const char *m, size_t len)
{
	struct mime_tree t;
	unsigned flags;
	char *whole;

	fputs("# events\n", out);
	whole = split_run(m, len, NULL, 0, out, &flags);
	fprintf(out, "flags=0x%x\n", flags);
	check_splits(name, m, len, whole);
	free(whole);
	fputs("# tree\n", out);
	if (mime_parse(m, len, &t) == -1)
		fprintf(out, "error flags=0x%x\n", t.flags);
	else
		dump_tree(out, t.root);
	mime_tree_free(&t);
	fputs("# canon\n", out);
	do_canon(out, name, m, len);
	fputs("# detect\n", out);
	do_detect(out, m, len);
}

enum { C_B64, C_UNB64, C_QP, C_UNQP };

/* Run codec kind over in, fed in pieces ending at cuts[]; malloc'd. */
static char *
codec_run(int kind, const char *in, size_t len, const size_t *cuts,
    size_t ncuts, size_t *outlen)
{
	struct mime_b64enc be;
	struct mime_b64dec bd;
	struct mime_qpenc qe;
	struct mime_qpdec qd;
	char *out = malloc(4 * len + 256);
	size_t o = 0, off = 0, end, k, n;

	if (out == NULL)
		abort();
	mime_b64enc_init(&be);
	mime_b64dec_init(&bd);
	mime_qpenc_init(&qe);
	mime_qpdec_init(&qd);
	for (k = 0; k <= ncuts; k++) {
		end = k < ncuts ? cuts[k] : len;
		n = end - off;
		if (kind == C_B64)
			o += mime_b64enc_feed(&be, in + off, n, out + o);
		else if (kind == C_UNB64)
			o += mime_b64dec_feed(&bd, in + off, n, out + o);
		else if (kind == C_QP)
			o += mime_qpenc_feed(&qe, in + off, n, out + o);
		else
			o += mime_qpdec_feed(&qd, in + off, n, out + o);
		off = end;
	}
	if (kind == C_B64)
		o += mime_b64enc_end(&be, out + o);
	else if (kind == C_UNB64)
		o += mime_b64dec_end(&bd, out + o);
	else if (kind == C_QP)
		o += mime_qpenc_end(&qe, out + o);
	else
		o += mime_qpdec_end(&qd, out + o);
	*outlen = o;
	return out;
}

/* One codec case: "b64|unb64|qp|unqp ESCAPED-INPUT". */
static void
codec_case(const char *line, FILE *out)
{
	static const char *names[] = { "b64 ", "unb64 ", "qp ", "unqp " };
	static char in[MAXCASE];
	static size_t cuts[MAXCASE];
	char *whole, *s, *back, *n;
	size_t len, wl, sl, bl, nl, i;
	int kind;

	for (kind = 0; kind < 4; kind++)
		if (strncmp(line, names[kind], strlen(names[kind])) == 0)
			break;
	if (kind == 4) {
		golden_fail("bad case: %s", line);
		return;
	}
	len = golden_unescape(line + strlen(names[kind]), in);
	whole = codec_run(kind, in, len, NULL, 0, &wl);
	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	s = codec_run(kind, in, len, cuts, len ? len - 1 : 0, &sl);
	if (sl != wl || memcmp(s, whole, wl) != 0)
		golden_fail("1-byte feeds differ: %s", line);
	free(s);
	for (i = 1; i < len; i++) {
		cuts[0] = i;
		s = codec_run(kind, in, len, cuts, 1, &sl);
		if (sl != wl || memcmp(s, whole, wl) != 0)
			golden_fail("split at %zu differs: %s", i, line);
		free(s);
	}
	if (kind == C_B64 || kind == C_QP) {
		/* Round trip: the text comes back (line ends as CRLF). */
		back = codec_run(kind + 1, whole, wl, NULL, 0, &bl);
		n = kind == C_QP ? norm(in, len, &nl) : NULL;
		if (kind == C_B64 ? bl != len || memcmp(back, in, len) != 0 :
		    bl != nl || memcmp(back, n, nl) != 0)
			golden_fail("round trip differs: %s", line);
		check_7bit(line, whole, wl);
		free(back);
		free(n);
	}
	fprintf(out, "%s\n  => ", line);
	golden_escape(out, whole, wl);
	fputs("\n", out);
	free(whole);
}

/* Run one .in file of codec cases; the output is the whole dump. */
static void
in_file(FILE *out, const char *name, char *text)
{
	char *line, *next;

	(void)name;
	for (line = text; *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (*line == '\0' || *line == '#')
			fprintf(out, "%s\n", line);
		else
			codec_case(line, out);
	}
}

/* mime_drop_field: the named fields go (folded, any case, blank before
 * the colon), lookalikes and the body stay. */
static int
drop_cases(void)
{
	static const struct {
		const char *in, *out;
	} c[] = {
		{ "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
		  "MIME-Version: 1.0\r\n",
		  "Content-Type: text/plain\r\n\r\nMIME-Version: 1.0\r\n" },
		{ "Content-Type: text/plain\r\nmime-version : 1.0\r\n (c)\r\n"
		  "MIME-Versions: x\r\n\r\nbody",
		  "Content-Type: text/plain\r\nMIME-Versions: x\r\n\r\nbody" },
		{ "MIME-Version: 1.0\nX: y\nMIME-Version: 1.0\n\nb\n",
		  "X: y\n\nb\n" },
		{ "\r\nMIME-Version: 1.0\r\n", "\r\nMIME-Version: 1.0\r\n" },
		{ "", "" },
		{ "MIME-Version: 1.0", "" },
	};
	size_t i, len;
	char *got;
	int bad = 0;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		got = mime_drop_field(c[i].in, strlen(c[i].in), "MIME-Version",
		    &len);
		if (len != strlen(c[i].out) || strcmp(got, c[i].out) != 0) {
			fprintf(stderr, "FAIL: mime_drop_field case %zu: "
			    "got \"%s\"\n", i, got);
			bad++;
		}
		free(got);
	}
	printf("%s mime/drop_field\n", bad ? "not ok" : "ok");
	return bad;
}

/* Order names for a stable run. */
static int
namecmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every tests/mime/NAME.eml and NAME.in against NAME.ref. */
int
main(void)
{
	const char *srcdir = getenv("srcdir");
	char dir[4096], path[4200], *names[512], *m, *got;
	struct dirent *de;
	size_t n = 0, i, len, gotlen;
	FILE *out;
	DIR *d;
	int fails = 0;

	if (srcdir == NULL || *srcdir == '\0')
		srcdir = ".";
	snprintf(dir, sizeof(dir), "%s/tests/mime", srcdir);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "FAIL: cannot open %s (set srcdir)\n", dir);
		return 1;
	}
	while ((de = readdir(d)) != NULL && n < 512) {
		len = strlen(de->d_name);
		if ((len > 4 && strcmp(de->d_name + len - 4, ".eml") == 0) ||
		    (len > 3 && strcmp(de->d_name + len - 3, ".in") == 0))
			names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), namecmp);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((m = golden_slurp(path, &len)) == NULL)
			abort();
		if ((out = open_memstream(&got, &gotlen)) == NULL)
			abort();
		if (strchr(names[i], '.')[1] == 'e')
			eml_case(out, names[i], m, len);
		else
			in_file(out, names[i], m);
		fclose(out);
		*strrchr(path, '.') = '\0';
		strcat(path, ".ref");
		fails = golden_failures();
		golden_check(path, got, gotlen);
		printf("%s mime/%s\n", golden_failures() > fails ?
		    "not ok" : "ok", names[i]);
		free(got);
		free(m);
		free(names[i]);
	}
	if (drop_cases() > 0)
		return 1;
	return golden_failures() ? 1 : 0;
}
