/* golden.c: golden-file driver shared by the unit tests. */
#include "autoconfig.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "lib/lib.h"

static int failures;

/* Report a failed property check; the test then exits 1. */
void
golden_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	failures++;
}

/* How many checks have failed so far. */
int
golden_failures(void)
{
	return failures;
}

/* Small deterministic PRNG (LCG) for reproducible random splits. */
unsigned
golden_rand(unsigned *seed)
{
	*seed = *seed * 1103515245U + 12345U;
	return (*seed >> 16) & 0x7fff;
}

/*
 * Decode \r \n \t \\ \s (space), \xHH and \e (nothing: an empty case) in
 * s into out (room for strlen(s) bytes); returns the decoded length.
 */
size_t
golden_unescape(const char *s, char *out)
{
	size_t o = 0;

	while (*s != '\0') {
		if (*s != '\\' || s[1] == '\0') {
			out[o++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case 'r':
			out[o++] = '\r';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 's':
			out[o++] = ' ';
			break;
		case 'e':
			break;
		case 'x':
			if (hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
				out[o++] = (char)(hexval(s[1]) * 16 +
				    hexval(s[2]));
				s += 2;
				break;
			}
			/* FALLTHROUGH */
		default:
			out[o++] = *s;
			break;
		}
		s++;
	}
	return o;
}

/* Print bytes with the escapes golden_unescape reads. */
void
golden_escape(FILE *fp, const char *s, size_t n)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '\r')
			fputs("\\r", fp);
		else if (c == '\n')
			fputs("\\n", fp);
		else if (c == '\t')
			fputs("\\t", fp);
		else if (c == '\\')
			fputs("\\\\", fp);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
}

/* Read a whole file into a NUL-terminated allocation; NULL if absent. */
char *
golden_slurp(const char *path, size_t *lenp)
{
	FILE *fp;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap * 2 + 4096;
			if ((buf = realloc(buf, cap + 1)) == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len, fp);
		if (n == 0)
			break;
		len += n;
	}
	fclose(fp);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* Run fn over every line of one .in file, output into a memory stream. */
static char *
run_file(const char *inpath, golden_case_fn fn, size_t *outlen)
{
	char *in, *line, *next, *out = NULL;
	size_t len;
	FILE *mem;

	if ((in = golden_slurp(inpath, &len)) == NULL) {
		golden_fail("cannot read %s", inpath);
		return NULL;
	}
	if ((mem = open_memstream(&out, outlen)) == NULL)
		abort();
	for (line = in; *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (*line == '\0' || *line == '#')
			fprintf(mem, "%s\n", line);
		else
			fn(line, mem);
	}
	fclose(mem);
	free(in);
	return out;
}

/* Compare output with the .ref file; print the first differing line. */
static void
compare(const char *refpath, const char *got, size_t gotlen)
{
	char *ref;
	size_t reflen, lineno = 1, i, ls = 0;

	if ((ref = golden_slurp(refpath, &reflen)) == NULL) {
		golden_fail("cannot read %s (UPDATE_GOLDEN=1 creates it)",
		    refpath);
		return;
	}
	for (i = 0; i < reflen && i < gotlen && ref[i] == got[i]; i++) {
		if (ref[i] == '\n') {
			lineno++;
			ls = i + 1;
		}
	}
	if (i != reflen || i != gotlen) {
		golden_fail("%s:%zu: output differs", refpath, lineno);
		fprintf(stderr, "-expected: %.*s\n",
		    (int)strcspn(ref + ls, "\n"), ref + ls);
		fprintf(stderr, "+got:      %.*s\n",
		    (int)strcspn(got + ls, "\n"), got + ls);
	}
	free(ref);
}

/* Write output as the new .ref (maintainers: check it by eye). */
static void
update(const char *refpath, const char *got, size_t gotlen)
{
	FILE *fp;

	if ((fp = fopen(refpath, "wb")) == NULL ||
	    fwrite(got, 1, gotlen, fp) != gotlen || fclose(fp) != 0) {
		golden_fail("cannot write %s", refpath);
		return;
	}
	fprintf(stderr, "updated %s\n", refpath);
}

/* Compare with the .ref file, or write it when UPDATE_GOLDEN=1. */
void
golden_check(const char *refpath, const char *got, size_t gotlen)
{
	const char *upd = getenv("UPDATE_GOLDEN");

	if (upd != NULL && strcmp(upd, "1") == 0)
		update(refpath, got, gotlen);
	else
		compare(refpath, got, gotlen);
}

/* Order names for a stable run. */
static int
namecmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Run every $srcdir/tests/unit/DIR/NAME.in through fn and compare with
 * NAME.ref.  Returns the exit status: 0 pass, 1 fail.
 */
int
golden_main(const char *dir, golden_case_fn fn)
{
	const char *srcdir = getenv("srcdir");
	char path[4096], *names[256], *out;
	struct dirent *de;
	size_t n = 0, i, len, outlen;
	int before;
	DIR *d;

	if (srcdir == NULL || *srcdir == '\0')
		srcdir = ".";
	snprintf(path, sizeof(path), "%s/tests/unit/%s", srcdir, dir);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "FAIL: cannot open %s (set srcdir)\n", path);
		return 1;
	}
	while ((de = readdir(d)) != NULL && n < 256) {
		len = strlen(de->d_name);
		if (len > 3 && strcmp(de->d_name + len - 3, ".in") == 0)
			names[n++] = strndup(de->d_name, len - 3);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), namecmp);
	if (n == 0)
		golden_fail("no .in files in %s", path);
	for (i = 0; i < n; i++) {
		before = failures;
		snprintf(path, sizeof(path), "%s/tests/unit/%s/%s.in", srcdir,
		    dir, names[i]);
		out = run_file(path, fn, &outlen);
		snprintf(path, sizeof(path), "%s/tests/unit/%s/%s.ref", srcdir,
		    dir, names[i]);
		if (out != NULL)
			golden_check(path, out, outlen);
		printf("%s %s/%s\n", failures > before ? "not ok" : "ok", dir,
		    names[i]);
		free(out);
		free(names[i]);
	}
	return failures ? 1 : 0;
}
