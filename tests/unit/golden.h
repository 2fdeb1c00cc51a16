/* golden.h: golden-file driver shared by the unit tests. */
#ifndef SMRELAY_GOLDEN_H
#define SMRELAY_GOLDEN_H

#include <stddef.h>
#include <stdio.h>

/* Called for each test line of an .in file; prints its canonical result. */
typedef void (*golden_case_fn)(const char *line, FILE *out);

/* golden.c */
int     golden_main(const char *dir, golden_case_fn);
size_t  golden_unescape(const char *, char *);
void    golden_escape(FILE *, const char *, size_t);
void    golden_fail(const char *, ...) __attribute__((format(printf, 1, 2)));
int     golden_failures(void);
void    golden_check(const char *, const char *, size_t);
unsigned golden_rand(unsigned *);
char   *golden_slurp(const char *, size_t *);

#endif
