/* ctl_util.h: what the smrelayctl command files share. */
#ifndef SMRELAY_CTL_UTIL_H
#define SMRELAY_CTL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ctl_util.c */
/* A JSON string literal (NULL as ""): quotes, backslashes and control
 * characters escaped. */
void ctl_json_str(FILE *, const char *);
/* All of stdin (NUL-terminated), at most max bytes; NULL (the reason
 * printed) otherwise. */
char *ctl_read_stdin(uint64_t max, size_t *len);

#endif
