/* clock.c: the monotonic clock in seconds, for timing what may take a
 * while (tests and benchmarks measure with it). */
#include "autoconfig.h"

#include <time.h>

#include "lib.h"

/* Seconds on the monotonic clock since an arbitrary point. */
double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
