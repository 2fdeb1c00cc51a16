/* fail.c: the sink's flow-testing failures (`--fail SPEC`, `--seed N`). */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/base/base.h"
#include "fail.h"
#include "lib/lib.h"

/* Start with no rule and the generator seeded. */
void
fail_init(struct sink_fail *f, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	f->rng = seed;
}

/* splitmix64: small, fast, and the same sequence for the same seed. */
static double
fail_draw(struct sink_fail *f)
{
	uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) / (double)(1ULL << 53);
}

/* Whether an event of probability p happens this time. */
static int
fail_hit(struct sink_fail *f, double p)
{
	if (p <= 0)
		return 0;
	if (p >= 1)
		return 1;	/* no draw: the others' sequence stays */
	return fail_draw(f) < p;
}

/* "0.3" or "30%" into 0..1; -1 if neither. */
static int
fail_prob(const char *s, double *p)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return -1;
	if (*end == '%') {
		v /= 100;
		end++;
	}
	if (*end != '\0' || !(v >= 0 && v <= 1))
		return -1;
	*p = v;
	return 0;
}

/* A reply code 400..599. */
static int
fail_code(const char *s, int *code)
{
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 400 || v > 599)
		return -1;
	*code = (int)v;
	return 0;
}

/* "250ms", "2s", "2" (seconds) into milliseconds, at most the maximum. */
static int
fail_duration(const char *s, unsigned *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || !(v >= 0))
		return -1;
	if (strcmp(end, "ms") == 0)
		;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		v *= 1000;
	else
		return -1;
	if (v > FAIL_DELAY_MAX_MS)
		return -1;
	*ms = (unsigned)v;
	return 0;
}

/* One rule: its words split at ':' (at most 3). */
static int
fail_rule(struct sink_fail *f, char *rule, char *err, size_t errlen)
{
	char *w[4] = { NULL, NULL, NULL, NULL };
	int n = 0;

	while (n < 4 && (w[n] = strsep(&rule, ":")) != NULL)
		n++;
	if (rule != NULL)
		n = 4;
	if ((strcmp(w[0], "rcpt") == 0 || strcmp(w[0], "data") == 0) &&
	    n == 3) {
		int rcpt = w[0][0] == 'r';

		if (fail_prob(w[1], rcpt ? &f->rcpt_p : &f->data_p) == -1 ||
		    fail_code(w[2], rcpt ? &f->rcpt_code : &f->data_code) == -1)
			goto bad;
		return 0;
	}
	if (strcmp(w[0], "delay") == 0 && (n == 2 || n == 3)) {
		f->delay_p = 1;
		if (fail_duration(w[1], &f->delay_ms) == -1 ||
		    (n == 3 && fail_prob(w[2], &f->delay_p) == -1))
			goto bad;
		return 0;
	}
	if ((strcmp(w[0], "drop") == 0 ||
	    strcmp(w[0], "drop-after-data") == 0) && n == 2) {
		if (fail_prob(w[1], &f->drop_p) == -1)
			goto bad;
		return 0;
	}
bad:
	snprintf(err, errlen, "--fail: bad rule \"%s\" (rcpt:P:CODE, "
	    "data:P:CODE, delay:TIME[:P], drop:P; P is 0..1 or N%%, CODE "
	    "400..599, TIME like 500ms or 2s up to 600s)", w[0]);
	return -1;
}

/* Add the comma-separated rules of one SPEC. */
int
fail_parse(struct sink_fail *f, const char *spec, char *err, size_t errlen)
{
	char *copy, *p, *rule;
	int rc = 0;

	if (strlen(spec) > 1024) {
		snprintf(err, errlen, "--fail: SPEC too long");
		return -1;
	}
	p = copy = xstrdup(spec);
	while (rc == 0 && (rule = strsep(&p, ",")) != NULL) {
		if (*rule == '\0')
			continue;
		rc = fail_rule(f, rule, err, errlen);
	}
	free(copy);
	return rc;
}

/* Whether any rule is set. */
int
fail_any(const struct sink_fail *f)
{
	return f->rcpt_p > 0 || f->data_p > 0 || f->drop_p > 0 ||
	    (f->delay_p > 0 && f->delay_ms > 0);
}

/* The enhanced code that goes with a basic one: X.0.0. */
static void
fail_result(struct smtp_result *res, int code, const char *what)
{
	smtp_result_set(res, code, code < 500 ? "4.0.0" : "5.0.0", "sink --fail: %s refused on purpose",
	    what);
}

/* RCPT: 1 with res set when this recipient is to be refused. */
int
fail_rcpt(struct sink_fail *f, struct smtp_result *res)
{
	if (!fail_hit(f, f->rcpt_p))
		return 0;
	f->n_rcpt++;
	fail_result(res, f->rcpt_code, "recipient");
	return 1;
}

/* End of DATA: drop, refuse, or 0 to save the message. */
int
fail_data(struct sink_fail *f, struct smtp_result *res)
{
	if (fail_hit(f, f->drop_p)) {
		f->n_drop++;
		smtp_result_set(res, DELIVERY_DROP, "4.0.0",
		    "sink --fail: connection dropped after DATA");
		return 1;
	}
	if (!fail_hit(f, f->data_p))
		return 0;
	f->n_data++;
	fail_result(res, f->data_code, "message");
	return 1;
}

/* How long to hold the next reply. */
void
fail_delay(struct sink_fail *f, struct timeval *tv)
{
	tv->tv_sec = 0;
	tv->tv_usec = 0;
	if (f->delay_ms == 0 || !fail_hit(f, f->delay_p))
		return;
	f->n_delay++;
	tv->tv_sec = f->delay_ms / 1000;
	tv->tv_usec = (long)(f->delay_ms % 1000) * 1000;
}
