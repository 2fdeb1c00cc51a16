/* sink.h: the lab capture server (`smrelayctl sink`): an SMTP server that
 * accepts everything and writes each message as one Maildir file. */
#ifndef SMRELAY_DAEMON_SINK_SINK_H
#define SMRELAY_DAEMON_SINK_SINK_H

/* sink_main's answer to arguments it cannot use: the caller prints its
 * usage and exits 2. */
#define SINK_USAGE	(-1)

/* sink.c */
/*
 * `sink --listen ADDR:PORT --maildir DIR [--tls-cert F --tls-key F]
 * [--implicit-tls] [--hostname NAME] [--http ADDR:PORT] [--key F]...
 * [--cert F]... [--trust F]... [--fail SPEC]... [--seed N] [-v]`,
 * argv[0] being "sink": serve
 * until SIGTERM/SIGINT (drain on the first, leave on the second).  The exit
 * status: 0, 1 (failed, reported), 2 (bad option value, reported) or
 * SINK_USAGE.
 */
int sink_main(int argc, char *argv[]);

#endif
