/* ctl.h: what the files of smrelayctl share: the command table's types,
 * each command file's entry point and the helpers. */
#ifndef SMRELAY_DAEMON_CTL_CTL_H
#define SMRELAY_DAEMON_CTL_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct msgbuf;
#include <jansson.h>

/*
 * Exit statuses, the same in every command (smrelayctl(8), EXIT STATUS):
 * success; a negative answer (bad signature, policy says no, certificate
 * not usable, mail cannot be delivered, no such ID); a usage error; a
 * failure (the store cannot be opened, I/O, an internal error).
 */
#define CTL_OK		0
#define CTL_NO		1
#define CTL_USAGE	2
#define CTL_FAIL	3

/* The global options, given before the command. */
struct ctl_opts {
	const char	*path;		/* -c FILE */
	int		 json;		/* --json */
};

struct config;
struct ctl_cmd;
struct keyfile;
struct store;

/*
 * Run one command.  argv[0] is the command's last word (VERB, or OBJECT
 * for a command without verbs), the rest its arguments.  Returns the exit
 * status: CTL_OK, CTL_NO, CTL_USAGE or CTL_FAIL (all but the first said
 * on stderr).
 */
typedef int ctl_run_fn(const struct ctl_cmd *, const struct ctl_opts *,
    int argc, char *argv[]);

/* One command of smrelayctl: a row of main.c's table. */
struct ctl_cmd {
	const char	*object;
	const char	*verb;		/* NULL: the object takes none */
	const char	*args;		/* its synopsis after OBJECT [VERB] */
	ctl_run_fn	*run;
};

/* ctl_apply.c */
/*
 * `apply --sender ADDR --recipient ADDR... < msg`: the daemon's policy
 * decisions and transforms (pipeline.c) for that envelope; every copy on
 * stdout after a line "--- copy for RCPT[,RCPT...]".  A recipient the
 * daemon would hold (--if-no-cert hold) is named on stderr with the reply
 * it would get.  Exit 0, 1 when a recipient was refused or a copy failed
 * (said on stderr, the other copies still printed), 2 on usage errors, 3
 * on failures.  With --json one object: "copies" (recipients, actions,
 * rule, note, message), "refused", "held", "failed".
 */
int ctl_apply_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_check.c */
/*
 * `cert check ID | --email ADDR`: the path to a trust anchor, one line a
 * link (depth, subject, validity, revocation status and source, the
 * verification error if any), then "usable: yes|no" (with --json one
 * object: "usable" and "chain"); exit 0 only when usable (anchored,
 * valid, not revoked; with revocation = hard, every link's status
 * known), 1 when not or when there is no such certificate.
 */
int ctl_check_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_fetch.c */
/* `crl fetch`: every HTTP distribution point named by a certificate of
 * the store, now; a line per URL; exit 1 when one failed. */
int ctl_fetch_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_migrate.c */
/*
 * `store migrate --to postgresql://...`: copy data_dir's SQLite store (its
 * keys moved to the key file first) into an empty PostgreSQL database in
 * one transaction, ids kept; a line "TABLE<TAB>ROWS" per table (--json:
 * one object, "from", "to" and "copied" {table: rows}).  Exit 1 when the
 * target holds rows already, 3 on failures.
 */
int ctl_migrate_run(const struct ctl_cmd *, const struct ctl_opts *,
    int argc, char *argv[]);

/* ctl_policy.c */
/* `policy add|list|remove|test ARGS` against the store of the
 * configuration. */
int ctl_policy_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_queue.c */
/*
 * `queue list|show|flush|remove|hold|release [ID]` on the spool of the
 * configuration, safely while smrelayd runs (each change is one SQLite
 * transaction on columns the daemon does not write; it notices within a
 * second).
 */
int ctl_queue_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_route.c */
/*
 * `route test ADDR`: the rule and target route.c picks for ADDR, the MX
 * answer, each host's addresses and TLSA records with their DNSSEC state.
 * Reads only the configuration (no store, no spool, no keys).  Exit 0
 * when mail for ADDR has somewhere to go (a host with an address; with
 * dane-only, one with secure TLSA records too), else 1 with the reason
 * on stderr (NXDOMAIN, null MX, DNS failure); 2 on usage (a bad address
 * too); 3 when no resolver can be set up.
 */
int ctl_route_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_smime.c */
/* `smime sign|encrypt|decrypt|verify ARGS`: one transformation of the
 * message on stdin, the result on stdout. */
int ctl_smime_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_store.c */
/* `key|cert|trust|crl VERB ARGS`: our keys, partner certificates, trust
 * anchors and CRLs in the store of the configuration. */
int ctl_store_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_stats.c */
/* `stats [--json]`: the running daemon's counters, through its control
 * socket (data_dir/smrelayd.sock); exit 1 when it does not answer. */
int ctl_stats_run(const struct ctl_cmd *, const struct ctl_opts *, int argc,
    char *argv[]);

/* ctl_util.c */
/*
 * The store and the key file of cfg, the keys an older version left in
 * the store moved to the key file first (so an upgrade does it on first
 * use, and says so on stderr).  0, or -1 after saying why on stderr.
 */
int ctl_open_store(const struct config *, struct store **,
    struct keyfile **);
/* The same for database ("sqlite" or a postgresql:// URI) instead of the
 * configured one. */
int ctl_open_store_db(const struct config *, const char *database,
    struct store **, struct keyfile **);
/* A JSON string (NULL as ""; bytes that are not UTF-8 become '?'). */
json_t *ctl_json_str(const char *);
/* "a,b" as ["a","b"] ("" or NULL: []). */
json_t *ctl_json_csv(const char *);
/* Print v (the reference is taken) on stdout, one document and a newline;
 * 0, or CTL_FAIL after saying why. */
int ctl_json_print(json_t *);
/* All of stdin (NUL-terminated), at most max bytes; NULL (the reason
 * printed) otherwise. */
char *ctl_read_stdin(uint64_t max, size_t *len);
/* Standard input in a msgbuf (spilled to an unlinked file in $TMPDIR or
 * /tmp past 128 KiB); NULL (reported) over max or on errors. */
struct msgbuf *ctl_read_stdin_mb(uint64_t max);
/* All of a msgbuf to stdout, in pieces; 0, or -1. */
int ctl_write_mb(struct msgbuf *);

#endif
