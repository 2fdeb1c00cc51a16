/* fuzz_smtp_parse.c: libFuzzer harness for the SMTP command parser. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether p points into [base, base + len]. */
static int
inside(const char *p, const char *base, size_t len)
{
	return p >= base && p <= base + len;
}

/* One command line (NULs cut it short, as a C string would). */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct smtp_cmd cmd;
	enum smtp_parse_status st;
	uint64_t size;
	char *line;
	int i;

	if (len > 4096)
		return 0;
	if ((line = malloc(len + 1)) == NULL)
		abort();
	memcpy(line, data, len);
	line[len] = '\0';
	st = smtp_parse_cmd(line, &cmd);
	if (st != SMTP_PARSE_OK && cmd.errmsg == NULL)
		abort();
	if (st == SMTP_PARSE_OK) {
		if (!inside(cmd.arg, line, len) || cmd.nparams < 0 ||
		    cmd.nparams > SMTP_MAX_PARAMS)
			abort();
		if (cmd.verb == SMTP_CMD_MAIL || cmd.verb == SMTP_CMD_RCPT) {
			if (!inside(cmd.path, line, len) ||
			    strlen(cmd.path) > SMTP_PATH_MAX)
				abort();
			for (i = 0; i < cmd.nparams; i++)
				if (cmd.params[i].key[0] == '\0' ||
				    (cmd.params[i].value != NULL &&
				    cmd.params[i].value[0] == '\0'))
					abort();
		}
	}
	(void)smtp_verb_name(cmd.verb);
	/* The value checks take any NUL-terminated string. */
	memcpy(line, data, len);
	line[len] = '\0';
	(void)smtp_parse_size(line, &size);
	(void)smtp_check_xtext(line);
	(void)smtp_check_notify(line);
	(void)smtp_check_orcpt(line);
	(void)smtp_check_domain(line);
	free(line);
	return 0;
}
