/* ctl_policy.h: smrelayctl policy add|list|remove|test. */
#ifndef SMRELAY_CTL_POLICY_H
#define SMRELAY_CTL_POLICY_H

/* ctl_policy.c */
/*
 * Run `policy VERB ARGS` against the store of the configuration at path;
 * json from the global --json.  The exit status: 0, 1 (failed, reported)
 * or 2 (usage).
 */
int ctl_policy_run(const char *path, int json, const char *verb, int argc,
    char *argv[]);

#endif
