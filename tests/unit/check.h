/* check.h: the CHECK macro of the unit tests that are not golden-file
 * driven: count a check, report a failed one with its file and line. */
#ifndef SMRELAY_CHECK_H
#define SMRELAY_CHECK_H

#include <stdio.h>

static int failures, checks;

#define CHECK(cond, ...) do {						\
	checks++;							\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
		failures++;						\
	}								\
} while (0)

#endif
