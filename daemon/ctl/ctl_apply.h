/* ctl_apply.h: smrelayctl apply. */
#ifndef SMRELAY_CTL_APPLY_H
#define SMRELAY_CTL_APPLY_H

/* ctl_apply.c */
/*
 * `apply --sender ADDR --recipient ADDR... < msg`: the daemon's policy
 * decisions and transforms (pipeline.c) for that envelope; every copy on
 * stdout after a line "--- copy for RCPT[,RCPT...]".  A recipient the
 * daemon would hold (--if-no-cert hold) is named on stderr with the reply
 * it would get.  Exit 0, 1 when a recipient was refused or a copy failed
 * (said on stderr, the other copies still printed), 2 on usage errors.
 */
int ctl_apply_run(const char *path, int argc, char *argv[]);

#endif
