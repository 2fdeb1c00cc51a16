/* fuzz_dsn.c: libFuzzer harness for the DSN builder (proto/dsn.c), which
 * takes the next hop's reply text, the client's ORCPT and ENVID and the
 * original message: all hostile. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define NFIELDS 8

/* Whether [p, p + n) has a line over max bytes, its line end (LF, or
 * CRLF) not counted. */
static int
long_line(const char *p, size_t n, size_t max)
{
	size_t i, len = 0;

	for (i = 0; i <= n; i++) {
		if (i == n || p[i] == '\n') {
			if (len > 0 && p[i - 1] == '\r')
				len--;
			if (len > max)
				return 1;
			len = 0;
		} else
			len++;
	}
	return 0;
}

/*
 * The first byte chooses the action and RET; the rest splits at NUL bytes
 * into sender, rcpt, orcpt, status, diag, remote MTA, ENVID and the
 * original message (which may hold NULs).  What is built must be CRLF
 * text throughout, with no line longer than the original's longest (and
 * no longer than 998 outside the returned original), and a boundary
 * found in no part: its delimiter lines are exactly the four (three
 * without an original) that frame the parts.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *f[NFIELDS] = { NULL };
	struct dsn_msg m;
	struct dsn_rcpt r[2];
	char *in, *out, err[256], boundary[80], *b, *e, *p;
	size_t outlen, i, k, start, origlen = 0, blen, delims;
	int rc;

	if (size < 1 || size > 8192)
		return 0;
	in = malloc(size + 1);
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	for (i = 0, k = 0, start = 0; i < size && k < NFIELDS - 1; i++)
		if (in[i] == '\0') {
			f[k++] = in + start;
			start = i + 1;
		}
	if (k == NFIELDS - 1 && start < size - 1) {
		f[NFIELDS - 1] = in + start;
		origlen = size - 1 - start;
	}
	memset(&m, 0, sizeof(m));
	memset(r, 0, sizeof(r));
	m.reporting_mta = "gw.example";
	m.sender = f[0];
	m.envid = f[6];
	m.ret_full = data[0] & 0x08;
	m.arrival = 1700000000;
	m.now = 1700000100;
	m.orig = f[7];
	m.origlen = origlen;
	m.from_mta = (data[0] & 0x10) ? "client.example" : NULL;
	r[0].rcpt = f[1];
	r[0].orcpt = f[2];
	r[0].action = (enum dsn_action)(data[0] % 5);
	r[0].status = f[3];
	r[0].diag = f[4];
	r[0].remote_mta = f[5];
	r[0].last_attempt = 1700000050;
	r[0].retry_until = (data[0] & 0x20) ? 1700400000 : 0;
	r[1] = r[0];
	r[1].rcpt = "second@example.net";
	r[1].action = DSN_FAILED;
	r[1].status = "5.1.1";
	rc = dsn_build(&m, r, (data[0] & 0x40) ? 2 : 1, &out, &outlen, err,
	    sizeof(err));
	if (rc == -1) {
		if (err[0] == '\0' || out != NULL)
			abort();
		free(in);
		return 0;
	}
	if (rc != 0 || out == NULL || strlen(out) > outlen)
		abort();
	/* CRLF only (a NUL may come from the original: 8bit or binary) */
	for (i = 0; i < outlen; i++)
		if ((out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) ||
		    (out[i] == '\r' && (i + 1 == outlen || out[i + 1] != '\n')))
			abort();
	if (outlen < 2 || memcmp(out + outlen - 2, "\r\n", 2) != 0)
		abort();
	/* the boundary, from the top header */
	if ((b = strstr(out, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"")) == NULL)
		abort();
	b += strlen("\r\nContent-Type: multipart/report; report-type="
	    "delivery-status;\r\n\tboundary=\"");
	if ((e = strchr(b, '"')) == NULL || (size_t)(e - b) >= sizeof(boundary))
		abort();
	blen = (size_t)(e - b);
	memcpy(boundary, b, blen);
	boundary[blen] = '\0';
	delims = 0;
	for (p = out; (p = memmem(p, outlen - (size_t)(p - out), boundary,
	    blen)) != NULL; p += blen)
		if (p >= out + 4 && memcmp(p - 4, "\r\n--", 4) == 0)
			delims++;
	if (delims != (m.orig != NULL && origlen > 0 ? 4u : 3u))
		abort();
	/* no line over 998 outside the original; none longer than its own
	 * inside (it is returned as it came, line ends made CRLF) */
	if ((p = strstr(out, "Content-Type: message/delivery-status")) == NULL)
		abort();
	if ((e = strstr(p, "\r\n--")) == NULL || long_line(out, (size_t)(e -
	    out), 998))
		abort();
	if (!long_line(f[7] != NULL ? f[7] : "", origlen, 998) &&
	    long_line(out, outlen, 998))
		abort();
	free(out);
	free(in);
	return 0;
}
