/* test_smtp_parse.c: golden tests for the SMTP command parser. */
#include "autoconfig.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "golden.h"
#include "proto/smtp_parse.h"

static const char *status_names[] = {
	"OK", "UNKNOWN", "SYNTAX", "BAD_ADDR", "BAD_PARAM", "8BIT"
};

/* "!size V", "!xtext V", ...: one helper on one value. */
static void
helper_case(const char *line, const char *val, FILE *out)
{
	uint64_t size = 0;
	int r;

	if (strncmp(line, "!size ", 6) == 0) {
		r = smtp_parse_size(val, &size);
		fprintf(out, "%s  => %s", line, r == 0 ? "ok" : "bad");
		if (r == 0)
			fprintf(out, " %" PRIu64, size);
		fputs("\n", out);
		return;
	}
	if (strncmp(line, "!xtext ", 7) == 0)
		r = smtp_check_xtext(val);
	else if (strncmp(line, "!notify ", 8) == 0)
		r = smtp_check_notify(val);
	else if (strncmp(line, "!orcpt ", 7) == 0)
		r = smtp_check_orcpt(val);
	else if (strncmp(line, "!domain ", 8) == 0)
		r = smtp_check_domain(val);
	else {
		golden_fail("unknown directive: %s", line);
		return;
	}
	fprintf(out, "%s  => %s\n", line, r == 0 ? "ok" : "bad");
}

/* Print what the parser made of a command line. */
static void
print_cmd(FILE *out, enum smtp_parse_status st, const struct smtp_cmd *cmd)
{
	int i;

	fprintf(out, "  => %s %s", status_names[st], smtp_verb_name(cmd->verb));
	if (st != SMTP_PARSE_OK) {
		fprintf(out, " \"%s\"\n", cmd->errmsg ? cmd->errmsg : "(null)");
		return;
	}
	if (cmd->errmsg != NULL)
		golden_fail("errmsg set on success: %s", cmd->errmsg);
	if (cmd->verb != SMTP_CMD_MAIL && cmd->verb != SMTP_CMD_RCPT) {
		fputs(" arg=", out);
		golden_escape(out, cmd->arg, strlen(cmd->arg));
		fputs("\n", out);
		return;
	}
	fputs(" path=<", out);
	golden_escape(out, cmd->path, strlen(cmd->path));
	fprintf(out, ">%s", cmd->utf8_path ? " utf8" : "");
	for (i = 0; i < cmd->nparams; i++) {
		int present = 0;

		if (smtp_param_get(cmd, cmd->params[i].key, &present) !=
		    cmd->params[i].value || !present)
			golden_fail("smtp_param_get(%s)", cmd->params[i].key);
		fputs(" [", out);
		golden_escape(out, cmd->params[i].key,
		    strlen(cmd->params[i].key));
		if (cmd->params[i].value != NULL) {
			fputs("=", out);
			golden_escape(out, cmd->params[i].value,
			    strlen(cmd->params[i].value));
		}
		fputs("]", out);
	}
	fputs("\n", out);
}

/* One case: an escaped command line, or a "!helper value" line. */
static void
parse_case(const char *line, FILE *out)
{
	static char buf[4096];
	struct smtp_cmd cmd;
	enum smtp_parse_status st;
	size_t len;

	len = golden_unescape(line, buf);
	buf[len] = '\0';
	if (line[0] == '!') {
		len = strcspn(buf, " ");
		helper_case(line, buf[len] ? buf + len + 1 : "", out);
		return;
	}
	st = smtp_parse_cmd(buf, &cmd);
	fprintf(out, "%s\n", line);
	print_cmd(out, st, &cmd);
}

int
main(void)
{
	return golden_main("smtp_parse", parse_case);
}
