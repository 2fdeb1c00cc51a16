/* smtp_parse.h: pure SMTP command-line parser (RFC 5321, 1870, 3461, 6152, 6531). */
#ifndef SMRELAY_SMTP_PARSE_H
#define SMRELAY_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_CMD_LINE_MAX   512     /* RFC 5321 4.5.3.1.4 floor, incl. CRLF */
#define SMTP_PATH_MAX       256     /* RFC 5321 4.5.3.1.3 */
#define SMTP_LOCAL_MAX      64
#define SMTP_DOMAIN_MAX     255
#define SMTP_MAX_PARAMS     16

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO, SMTP_CMD_EHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT,
	SMTP_CMD_DATA, SMTP_CMD_RSET, SMTP_CMD_NOOP, SMTP_CMD_QUIT,
	SMTP_CMD_VRFY, SMTP_CMD_EXPN, SMTP_CMD_HELP, SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH, SMTP_CMD_BDAT, SMTP_CMD_XFORWARD,
	SMTP_CMD__COUNT
};

/* Result of parsing one command line; each maps to one reply. */
enum smtp_parse_status {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_UNKNOWN,     /* 500 5.5.1 command unrecognized */
	SMTP_PARSE_SYNTAX,      /* 501 5.5.4 syntax error in arguments */
	SMTP_PARSE_BAD_ADDR,    /* 553 5.1.3 (MAIL: 5.1.7, RCPT: 5.1.3) bad address syntax */
	SMTP_PARSE_BAD_PARAM,   /* 555 5.5.4 malformed ESMTP parameter */
	SMTP_PARSE_8BIT,        /* 500 5.5.2 8-bit bytes in a command without SMTPUTF8 */
};

struct smtp_param {
	const char *key;        /* as sent; compare case-insensitively */
	const char *value;      /* NULL when the keyword has no "=value" */
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg;        /* everything after the verb and its SP(s); "" if none */
	/* MAIL/RCPT only: */
	const char *path;       /* mailbox without <> and source route; "" = null path
	                         * (MAIL only; "" for other verbs) */
	int utf8_path;          /* path or a parameter value contains non-ASCII
	                         * (well-formed UTF-8) bytes */
	int nparams;
	struct smtp_param params[SMTP_MAX_PARAMS];
	const char *errmsg;     /* human text for the reply on error (static), to
	                         * follow "501 5.5.4 "; NULL on success */
};

/* smtp_parse.c */
/*
 * Parse one command line in place.  `line` is NUL-terminated, without the
 * CRLF, and is modified (NULs inserted); pointers in `cmd` point into it.
 * UTF-8 (bytes >= 0x80) is accepted in MAIL/RCPT paths and parameter
 * values and reported in utf8_path; the session decides whether SMTPUTF8 was
 * asked for (RFC 6531).  8-bit bytes anywhere else give SMTP_PARSE_8BIT.
 * Liberal where real clients need it: trailing white space is ignored,
 * extra spaces after the verb and between parameters are allowed, and one
 * SP after "FROM:"/"TO:" is tolerated.  A duplicate parameter keyword
 * gives SMTP_PARSE_BAD_PARAM.  HELO/EHLO arguments are not checked here
 * (see smtp_check_domain).
 */
enum smtp_parse_status smtp_parse_cmd(char *line, struct smtp_cmd *cmd);
const char *smtp_verb_name(enum smtp_verb);
/* Value of parameter `key` (case-insensitive) or NULL; *present (may be
 * NULL) tells a keyword without a value from an absent one. */
const char *smtp_param_get(const struct smtp_cmd *, const char *key, int *present);
/* ESMTP parameter value checks; return 0 if valid. */
int smtp_parse_size(const char *value, uint64_t *out);          /* SIZE=digits */
int smtp_check_xtext(const char *value);                        /* ENVID, ORCPT (RFC 3461 4) */
int smtp_check_notify(const char *value);                       /* NEVER | SUCCESS,FAILURE,DELAY */
int smtp_check_orcpt(const char *value);                        /* addr-type ";" xtext */
int smtp_check_domain(const char *s);                           /* HELO/EHLO argument */

#endif
