/* ctl_apply.h: smrelayctl apply. */
#ifndef SMRELAY_CTL_APPLY_H
#define SMRELAY_CTL_APPLY_H

/* ctl_apply.c */
/*
 * `apply --sender ADDR --recipient ADDR... < msg`: the daemon's policy
 * decisions and transforms (pipeline.c) for that envelope; every copy on
 * stdout after a line "--- copy for RCPT[,RCPT...]".  Exit 0 when every
 * recipient got a copy, 1 when one was refused or a copy failed (said on
 * stderr, the other copies still printed), 2 on usage errors.
 */
int ctl_apply_run(const char *path, int argc, char *argv[]);

#endif
