/* main.c: smrelayctl, the admin CLI: the global options, then one command
 * from the table below, run by the file that owns its object. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "daemon/sink/sink.h"
#include "lib/lib.h"

static int	ctl_sink(const struct ctl_cmd *, const struct ctl_opts *, int,
		    char *[]);

/* Every command of shared/SPEC.md, in the order usage() lists them. */
static const struct ctl_cmd ctl_cmds[] = {
	{ "key", "import", "FILE [--password-file F]", ctl_store_run },
	{ "key", "list", "", ctl_store_run },
	{ "key", "remove", "ID", ctl_store_run },
	{ "cert", "import", "FILE [--force]", ctl_store_run },
	{ "cert", "list", "[--email ADDR]", ctl_store_run },
	{ "cert", "show", "ID", ctl_store_run },
	{ "cert", "remove", "ID", ctl_store_run },
	{ "cert", "check", "ID | --email ADDR", ctl_check_run },
	{ "trust", "import", "FILE", ctl_store_run },
	{ "trust", "list", "", ctl_store_run },
	{ "trust", "remove", "ID", ctl_store_run },
	{ "crl", "import", "FILE", ctl_store_run },
	{ "crl", "list", "", ctl_store_run },
	{ "crl", "remove", "ID", ctl_store_run },
	{ "crl", "fetch", "", ctl_fetch_run },
	{ "store", "migrate", "--to postgresql://...", ctl_migrate_run },
	{ "policy", "add", "[--sender PAT] [--recipient PAT] --action LIST "
	    "[--if-no-cert reject|plain|hold] [--priority N]",
	    ctl_policy_run },
	{ "policy", "list", "", ctl_policy_run },
	{ "policy", "remove", "ID", ctl_policy_run },
	{ "policy", "test", "--sender ADDR --recipient ADDR", ctl_policy_run },
	{ "route", "test", "ADDR", ctl_route_run },
	{ "stats", NULL, "[--json]", ctl_stats_run },
	{ "queue", "list", "", ctl_queue_run },
	{ "queue", "show", "ID", ctl_queue_run },
	{ "queue", "flush", "[ID]", ctl_queue_run },
	{ "queue", "remove", "ID", ctl_queue_run },
	{ "queue", "hold", "ID", ctl_queue_run },
	{ "queue", "release", "ID", ctl_queue_run },
	{ "smime", "sign", "--from ADDR [--opaque] [--pss] < message",
	    ctl_smime_run },
	{ "smime", "encrypt", "--to ADDR... [--cipher aes256-cbc|aes256-gcm] "
	    "[--sign --from ADDR] [--opaque] [--pss] < message",
	    ctl_smime_run },
	{ "smime", "decrypt", "< message", ctl_smime_run },
	{ "smime", "verify", "< message", ctl_smime_run },
	{ "apply", NULL, "--sender ADDR --recipient ADDR [ADDR ...] < message",
	    ctl_apply_run },
	{ "sink", NULL, "--listen ADDR:PORT --maildir DIR [--tls-cert FILE "
	    "--tls-key FILE] [--implicit-tls] [--hostname NAME] "
	    "[--http ADDR:PORT] [--key FILE]... [--cert FILE]... "
	    "[--trust FILE]... [--fail SPEC]... [--seed N] [-v]",
	    ctl_sink },
};
#define NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

/* The synopsis of the commands of object (every one when NULL) on f. */
static void
print_usage(FILE *f, const char *object)
{
	size_t i;

	fprintf(f, "usage: smrelayctl [-c FILE] [-v] [--json] OBJECT "
	    "VERB [ARGS]\n       smrelayctl -h | --version\n");
	for (i = 0; i < NCMDS; i++) {
		if (object != NULL && strcmp(ctl_cmds[i].object, object) != 0)
			continue;
		fprintf(f, "       smrelayctl %s%s%s%s%s\n",
		    ctl_cmds[i].object, ctl_cmds[i].verb ? " " : "",
		    ctl_cmds[i].verb ? ctl_cmds[i].verb : "",
		    ctl_cmds[i].args[0] ? " " : "", ctl_cmds[i].args);
	}
	fprintf(f, "default config: %s\n", SMRELAY_CONF);
}

/* A usage error: the synopsis on stderr, exit 2. */
static void
usage(void)
{
	print_usage(stderr, NULL);
	exit(2);
}

/* Whether object names commands of the table. */
static int
ctl_known_object(const char *object)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(ctl_cmds[i].object, object) == 0)
			return 1;
	return 0;
}

/* OBJECT without a verb, or with one it lacks: say which, list its verbs
 * (or every command for an unknown object), exit 2. */
static void
ctl_bad_command(const char *object, const char *verb)
{
	if (!ctl_known_object(object)) {
		fprintf(stderr, "smrelayctl: unknown command \"%s\"\n",
		    object);
		usage();
	}
	if (verb == NULL)
		fprintf(stderr, "smrelayctl: %s: a verb is needed\n", object);
	else
		fprintf(stderr, "smrelayctl: %s: unknown verb \"%s\"\n",
		    object, verb);
	print_usage(stderr, object);
	exit(2);
}

/* The command OBJECT [VERB], or NULL if there is none. */
static const struct ctl_cmd *
ctl_lookup(const char *object, const char *verb)
{
	size_t i;

	for (i = 0; i < NCMDS; i++) {
		if (strcmp(ctl_cmds[i].object, object) != 0)
			continue;
		if (ctl_cmds[i].verb == NULL)
			return &ctl_cmds[i];
		if (verb != NULL && strcmp(ctl_cmds[i].verb, verb) == 0)
			return &ctl_cmds[i];
	}
	return NULL;
}

/* sink: the capture server of daemon/sink, with our usage on a bad one. */
static int
ctl_sink(const struct ctl_cmd *cmd, const struct ctl_opts *o, int argc,
    char *argv[])
{
	int rc;

	(void)cmd;
	(void)o;
	if ((rc = sink_main(argc, argv)) == SINK_USAGE)
		usage();
	/* the sink's 1 is a failure to start (listen, TLS, Maildir) */
	return rc == 1 ? CTL_FAIL : rc;
}

/* The global options; the index of the first word after them. */
static int
ctl_options(int argc, char *argv[], struct ctl_opts *o)
{
	int i;

	o->path = SMRELAY_CONF;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			o->path = argv[++i];
		else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0')
			o->path = argv[i] + 2;
		else if (strcmp(argv[i], "-v") == 0)
			log_setlevel(LOG_LVL_DEBUG);
		else if (strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			print_usage(stdout, NULL);
			exit(0);
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("smrelayctl %s\n", PACKAGE_VERSION);
			exit(0);
		} else
			usage();
	}
	return i;
}

/* Global options, then OBJECT [VERB] ARGS, run by its table entry. */
int
main(int argc, char *argv[])
{
	const struct ctl_cmd *cmd;
	struct ctl_opts o = { NULL, 0 };
	const char *object, *verb;
	int i;

	log_init("smrelayctl", 1, LOG_LVL_WARN);
	if ((i = ctl_options(argc, argv, &o)) >= argc)
		usage();
	object = argv[i];
	verb = i + 1 < argc ? argv[i + 1] : NULL;
	if ((cmd = ctl_lookup(object, verb)) == NULL)
		ctl_bad_command(object, verb);
	if (cmd->verb != NULL)
		i++;
	return cmd->run(cmd, &o, argc - i, argv + i);
}
