/* fail.h: the sink's flow-testing failures (`--fail SPEC`, `--seed N`):
 * answer a fraction of recipients or messages with an error, hold replies,
 * or drop the connection after DATA, decided by a seeded generator so a
 * test sees the same sequence every run. */
#ifndef SMRELAY_SINK_FAIL_H
#define SMRELAY_SINK_FAIL_H

#include <stdint.h>
#include <sys/time.h>

struct smtp_result;

#define FAIL_DELAY_MAX_MS	600000	/* 10 minutes */

struct sink_fail {
	double	 rcpt_p, data_p, drop_p, delay_p;	/* 0..1 */
	int	 rcpt_code, data_code;			/* 4xx or 5xx */
	unsigned delay_ms;
	uint64_t rng;
	unsigned long long n_rcpt, n_data, n_drop, n_delay;	/* hits */
};

/* fail.c */
void	fail_init(struct sink_fail *, uint64_t seed);
/* Add the rules of one SPEC ("rcpt:0.3:451,data:0.5:554,delay:2s,
 * drop:0.1"); -1 with err set if it does not parse. */
int	fail_parse(struct sink_fail *, const char *spec, char *err,
	    size_t errlen);
/* Whether any rule is set. */
int	fail_any(const struct sink_fail *);
/* RCPT: 1 with res set when this recipient is to be refused. */
int	fail_rcpt(struct sink_fail *, struct smtp_result *res);
/* End of DATA: 1 with res set (code DELIVERY_DROP: close without a
 * reply) when the message is not to be saved. */
int	fail_data(struct sink_fail *, struct smtp_result *res);
/* How long to hold the next reply (zero when not). */
void	fail_delay(struct sink_fail *, struct timeval *);

#endif
