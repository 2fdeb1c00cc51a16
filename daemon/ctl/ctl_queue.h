/* ctl_queue.h: smrelayctl queue list|show|flush|remove|hold|release. */
#ifndef SMRELAY_CTL_QUEUE_H
#define SMRELAY_CTL_QUEUE_H

/* ctl_queue.c */
/*
 * Run `queue VERB ARGS` on the spool of the configuration at path, safely
 * while smrelayd runs (each change is one SQLite transaction on columns the
 * daemon does not write; it notices within a second).  0, 1 (failed,
 * reported) or 2 (usage).
 */
int ctl_queue_run(const char *path, int json, const char *verb, int argc,
    char *argv[]);

#endif
