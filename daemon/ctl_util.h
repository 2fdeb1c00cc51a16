/* ctl_util.h: what the smrelayctl command files share. */
#ifndef SMRELAY_CTL_UTIL_H
#define SMRELAY_CTL_UTIL_H

#include <stdio.h>

/* ctl_util.c */
/* A JSON string literal (NULL as ""): quotes, backslashes and control
 * characters escaped. */
void ctl_json_str(FILE *, const char *);

#endif
