/*
 * keyd_proc.h: the key process's life.  smrelayd's parent forks it with
 * one end of a socketpair; it makes itself unreadable (not dumpable, no
 * core, no capabilities, key numbers in the secure heap), loads our
 * private keys (the S/MIME identities and the TLS server key) and serves
 * the network process on that socket until it closes.  It reads nothing
 * from the network and never sends a key.  Keys imported while it runs are
 * picked up within a second; SIGHUP re-reads the TLS key named by the
 * configuration; SIGTERM ends it.
 */
#ifndef SMRELAY_KEYD_PROC_H
#define SMRELAY_KEYD_PROC_H

struct config;

/* keyd_proc.c */
/* Run the key process on fd (every other descriptor above 2 is closed);
 * does not return: exit 0 when the peer is gone or at SIGTERM, 1 when the
 * keys cannot be loaded. */
void keyd_run(const struct config *, int fd, int foreground)
    __attribute__((noreturn));

/* Load the keys as keyd_run would, in a child that then exits: 0 when
 * they load, -1 after saying why on stderr (before start-up ends). */
int keyd_check(const struct config *);

#endif
