/* smtp_parse.c: pure SMTP command-line parser (RFC 5321, 1870, 3461, 6531). */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_parse.h"
#include "text.h"

/* What a verb says about its argument (RFC 5321 4.1.1). */
enum arg_rule {
	ARG_NONE,       /* "DATA" CRLF: an argument is a syntax error */
	ARG_OPT,        /* "NOOP" [ SP String ] CRLF */
	ARG_REQ         /* "VRFY" SP String CRLF */
};

static const struct verb_entry {
	const char      *name;
	enum smtp_verb   verb;
	enum arg_rule    arg;
} verbs[] = {
	{ "HELO",       SMTP_CMD_HELO,          ARG_REQ },
	{ "EHLO",       SMTP_CMD_EHLO,          ARG_REQ },
	{ "MAIL",       SMTP_CMD_MAIL,          ARG_REQ },
	{ "RCPT",       SMTP_CMD_RCPT,          ARG_REQ },
	{ "DATA",       SMTP_CMD_DATA,          ARG_NONE },
	{ "RSET",       SMTP_CMD_RSET,          ARG_NONE },
	{ "NOOP",       SMTP_CMD_NOOP,          ARG_OPT },
	{ "QUIT",       SMTP_CMD_QUIT,          ARG_NONE },
	{ "VRFY",       SMTP_CMD_VRFY,          ARG_REQ },
	{ "EXPN",       SMTP_CMD_EXPN,          ARG_REQ },
	{ "HELP",       SMTP_CMD_HELP,          ARG_OPT },
	{ "STARTTLS",   SMTP_CMD_STARTTLS,      ARG_NONE },
	{ "AUTH",       SMTP_CMD_AUTH,          ARG_REQ },
	{ "BDAT",       SMTP_CMD_BDAT,          ARG_REQ },
	{ "XFORWARD",   SMTP_CMD_XFORWARD,      ARG_REQ },
};

#define NVERBS  (sizeof(verbs) / sizeof(verbs[0]))

/* Domain syntax variants: mailbox domains are strict, EHLO is liberal. */
#define DOM_STRICT      0
#define DOM_LIBERAL     1       /* "_" allowed in labels */
#define DOM_UTF8        2       /* U-labels (bytes >= 0x80) allowed */

static int      is_alpha(unsigned char);
static int      is_digit(unsigned char);
static int      is_atext(unsigned char);
static int      lower(unsigned char);
static int      eq_nocase(const char *, const char *);
static int      eqn_nocase(const char *, const char *, size_t);
static int      utf8_valid(const unsigned char *, size_t);
static int      check_domain(const char *, size_t, int);
static int      check_addr_literal(const char *, size_t);
static size_t   local_part_len(const char *, size_t, int *);
static int      check_mailbox(const char *, size_t);
static enum smtp_parse_status parse_path(char *, struct smtp_cmd *, char **);
static enum smtp_parse_status parse_params(char *, struct smtp_cmd *);
static enum smtp_parse_status parse_mail_rcpt(struct smtp_cmd *);

/* ASCII letter, without locale. */
static int
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII digit. */
static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext, extended with UTF-8 bytes as RFC 6531 does. */
static int
is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c) || c >= 0x80)
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* ASCII lower case of one byte. */
static int
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality of two strings. */
static int
eq_nocase(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (lower((unsigned char)*a) != lower((unsigned char)*b))
			return 0;
	return *a == *b;
}

/* ASCII case-insensitive equality of the first n bytes. */
static int
eqn_nocase(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Well-formed UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, more;
	unsigned char lo, hi;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			more = 1;
		else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			more = 2;
			if (s[i] == 0xe0)
				lo = 0xa0;
			else if (s[i] == 0xed)
				hi = 0x9f;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			more = 3;
			if (s[i] == 0xf0)
				lo = 0x90;
			else if (s[i] == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		if (n - i <= more)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k <= more; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += more + 1;
	}
	return 1;
}

/*
 * Domain of dot-separated labels (RFC 5321 4.1.2 Domain): letters, digits
 * and inner hyphens, labels of 1..63 bytes, 255 in all.  Returns 0 if valid.
 */
static int
check_domain(const char *s, size_t n, int how)
{
	size_t i, lab = 0;
	unsigned char c, prev = '.';

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '.') {
			if (lab == 0 || prev == '-')
				return -1;
			lab = 0;
		} else if (c == '-') {
			if (lab == 0)
				return -1;
			lab++;
		} else if (is_alpha(c) || is_digit(c) ||
		    (c == '_' && (how & DOM_LIBERAL)) ||
		    (c >= 0x80 && (how & DOM_UTF8))) {
			lab++;
		} else
			return -1;
		if (lab > 63)
			return -1;
		prev = c;
	}
	if (lab == 0 || prev == '-')
		return -1;
	return 0;
}

/* Address literal "[1.2.3.4]" or "[IPv6:...]" (RFC 5321 4.1.3). */
static int
check_addr_literal(const char *s, size_t n)
{
	char buf[64];
	unsigned char addr[16];

	if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 >= sizeof(buf))
		return -1;
	memcpy(buf, s + 1, n - 2);
	buf[n - 2] = '\0';
	if (eqn_nocase(buf, "IPv6:", 5))
		return inet_pton(AF_INET6, buf + 5, addr) == 1 ? 0 : -1;
	return inet_pton(AF_INET, buf, addr) == 1 ? 0 : -1;
}

/*
 * Length of the local-part at the start of s (up to n bytes): a dot-string
 * or a quoted-string (RFC 5321 4.1.2).  Returns 0 if malformed; sets *quoted.
 */
static size_t
local_part_len(const char *s, size_t n, int *quoted)
{
	size_t i = 0;
	unsigned char c;

	*quoted = 0;
	if (n > 0 && s[0] == '"') {
		*quoted = 1;
		for (i = 1; i < n; i++) {
			c = (unsigned char)s[i];
			if (c == '"')
				return i + 1;
			if (c == '\\') {
				if (i + 1 >= n)
					return 0;
				c = (unsigned char)s[++i];
				if (c < 32 || c == 127)
					return 0;
			} else if (c < 32 || c == 127)
				return 0;
		}
		return 0;
	}
	/* Dot-string: atoms separated by single dots. */
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '.') {
			if (i == 0 || s[i - 1] == '.')
				return 0;
		} else if (!is_atext(c))
			break;
	}
	if (i == 0 || s[i - 1] == '.')
		return 0;
	return i;
}

/*
 * A valid mailbox box whose local part is a quoted-string that says what a
 * dot-string could ("bob", "b\\ob"): rewritten in place in that form
 * (RFC 5322 3.4.1: the two are the same local part), so that policy,
 * certificate lookups and the next hop see one spelling of one mailbox.
 */
static void
dequote_local(char *box)
{
	char *at, *w, *r, prev = '.';

	if (box[0] != '"' || (at = strrchr(box, '@')) == NULL || at - box <
	    3 || at[-1] != '"')
		return;
	for (r = box + 1; r < at - 1; r++) {
		if (*r == '\\')
			r++;
		if (*r == '.' ? prev == '.' : !is_atext((unsigned char)*r))
			return;			/* no dot-string */
		prev = *r;
	}
	if (prev == '.')
		return;
	for (r = box + 1, w = box; r < at - 1; r++) {
		if (*r == '\\')
			r++;
		*w++ = *r;
	}
	memmove(w, at, strlen(at) + 1);
}

/* Mailbox = Local-part "@" ( Domain / address-literal ).  0 if valid. */
static int
check_mailbox(const char *s, size_t n)
{
	size_t llen;
	int quoted;

	llen = local_part_len(s, n, &quoted);
	if (llen == 0 || llen > SMTP_LOCAL_MAX)
		return -1;
	if (llen >= n || s[llen] != '@')
		return -1;
	s += llen + 1;
	n -= llen + 1;
	if (n > 0 && s[0] == '[')
		return check_addr_literal(s, n);
	return check_domain(s, n, DOM_UTF8);
}

/*
 * Parse "<" path ">" at s, in place.  Sets cmd->path (route stripped) and
 * *rest to the byte after ">".  Postmaster without a domain is accepted
 * here; the caller decides whether the verb allows it.
 */
static enum smtp_parse_status
parse_path(char *s, struct smtp_cmd *cmd, char **rest)
{
	char *p, *end, *box;
	int inquote = 0;

	if (*s != '<') {
		cmd->errmsg = "Syntax: address must be enclosed in <>";
		return SMTP_PARSE_SYNTAX;
	}
	/* Find the ">" that closes the path, skipping quoted local-parts. */
	for (end = s + 1; *end != '\0'; end++) {
		if (inquote && *end == '\\' && end[1] != '\0')
			end++;
		else if (*end == '"')
			inquote = !inquote;
		else if (*end == '>' && !inquote)
			break;
	}
	if (*end != '>') {
		cmd->errmsg = "Syntax: missing > after address";
		return SMTP_PARSE_SYNTAX;
	}
	*rest = end + 1;
	*end = '\0';
	box = s + 1;
	if ((size_t)(end - s) + 1 > SMTP_PATH_MAX) {
		cmd->errmsg = "Address too long";
		return SMTP_PARSE_BAD_ADDR;
	}
	if (text_has_8bit(box, (size_t)(end - box))) {
		if (!utf8_valid((unsigned char *)box, (size_t)(end - box))) {
			cmd->errmsg = "Malformed UTF-8 in address";
			return SMTP_PARSE_BAD_ADDR;
		}
		cmd->utf8_path = 1;
	}
	/* A-d-l ":" (source route, RFC 5321 4.1.2): checked, then ignored. */
	if (*box == '@') {
		if ((p = strchr(box, ':')) == NULL) {
			cmd->errmsg = "Bad source route in address";
			return SMTP_PARSE_BAD_ADDR;
		}
		*p = '\0';
		while (box != NULL && *box == '@') {
			char *comma = strchr(box, ',');
			size_t dl = comma ? (size_t)(comma - box) : strlen(box);

			if (check_domain(box + 1, dl - 1, DOM_UTF8) != 0 &&
			    check_addr_literal(box + 1, dl - 1) != 0)
				break;
			box = comma ? comma + 1 : NULL;
		}
		if (box != NULL) {
			cmd->errmsg = "Bad source route in address";
			return SMTP_PARSE_BAD_ADDR;
		}
		box = p + 1;
	}
	cmd->path = box;
	if (*box == '\0' || eq_nocase(box, "postmaster"))
		return SMTP_PARSE_OK;
	if (check_mailbox(box, strlen(box)) != 0) {
		cmd->errmsg = "Bad address syntax";
		return SMTP_PARSE_BAD_ADDR;
	}
	dequote_local(box);
	return SMTP_PARSE_OK;
}

/*
 * Parse " keyword[=value]" items after the path, in place (RFC 5321
 * 4.1.2 Mail-parameters).  Runs of spaces are tolerated.
 */
static enum smtp_parse_status
parse_params(char *s, struct smtp_cmd *cmd)
{
	char *key, *val;
	int i;

	if (*s != '\0' && *s != ' ') {
		cmd->errmsg = "Syntax: space expected after address";
		return SMTP_PARSE_SYNTAX;
	}
	for (;;) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		key = s;
		val = NULL;
		while (is_alpha((unsigned char)*s) ||
		    is_digit((unsigned char)*s) || (*s == '-' && s != key))
			s++;
		if ((unsigned char)*s >= 0x80) {
			cmd->errmsg = "8-bit characters in parameter keyword";
			return SMTP_PARSE_8BIT;
		}
		if (s == key || (*s != '\0' && *s != ' ' && *s != '=')) {
			cmd->errmsg = "Malformed parameter keyword";
			return SMTP_PARSE_BAD_PARAM;
		}
		if (*s == '=') {
			*s++ = '\0';
			val = s;
			while ((unsigned char)*s > ' ' && *s != '=' &&
			    *s != 127)
				s++;
			if (s == val || (*s != '\0' && *s != ' ')) {
				cmd->errmsg = "Malformed parameter value";
				return SMTP_PARSE_BAD_PARAM;
			}
			if (text_has_8bit(val, (size_t)(s - val))) {
				if (!utf8_valid((unsigned char *)val,
				    (size_t)(s - val))) {
					cmd->errmsg =
					    "Malformed UTF-8 in parameter";
					return SMTP_PARSE_BAD_PARAM;
				}
				cmd->utf8_path = 1;
			}
		}
		if (*s == ' ')
			*s++ = '\0';
		if (cmd->nparams == SMTP_MAX_PARAMS) {
			cmd->errmsg = "Too many parameters";
			return SMTP_PARSE_BAD_PARAM;
		}
		for (i = 0; i < cmd->nparams; i++) {
			if (eq_nocase(cmd->params[i].key, key)) {
				cmd->errmsg = "Duplicate parameter";
				return SMTP_PARSE_BAD_PARAM;
			}
		}
		cmd->params[cmd->nparams].key = key;
		cmd->params[cmd->nparams].value = val;
		cmd->nparams++;
	}
	return SMTP_PARSE_OK;
}

/* MAIL FROM:<path> [params] / RCPT TO:<path> [params], in cmd->arg. */
static enum smtp_parse_status
parse_mail_rcpt(struct smtp_cmd *cmd)
{
	enum smtp_parse_status st;
	const char *kw = cmd->verb == SMTP_CMD_MAIL ? "FROM:" : "TO:";
	size_t i, kwlen = strlen(kw);
	char *s = (char *)cmd->arg, *rest;

	cmd->errmsg = cmd->verb == SMTP_CMD_MAIL ?
	    "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
	for (i = 0; i < kwlen; i++)
		if (lower((unsigned char)s[i]) != lower((unsigned char)kw[i]))
			break;
	if (i < kwlen) {
		if (text_has_8bit(s, strcspn(s, "<")))
			goto eightbit;
		return SMTP_PARSE_SYNTAX;
	}
	s += kwlen;
	if (*s == ' ')          /* "FROM: <a@b>", as Postfix tolerates */
		s++;
	if ((unsigned char)*s >= 0x80)
		goto eightbit;
	if ((st = parse_path(s, cmd, &rest)) != SMTP_PARSE_OK)
		return st;
	if (cmd->verb == SMTP_CMD_MAIL && eq_nocase(cmd->path, "postmaster")) {
		cmd->errmsg = "Bad sender address syntax";
		return SMTP_PARSE_BAD_ADDR;
	}
	if (cmd->verb == SMTP_CMD_RCPT && *cmd->path == '\0') {
		cmd->errmsg = "Null recipient address";
		return SMTP_PARSE_BAD_ADDR;
	}
	if ((st = parse_params(rest, cmd)) != SMTP_PARSE_OK)
		return st;
	cmd->errmsg = NULL;
	return SMTP_PARSE_OK;
eightbit:
	cmd->errmsg = "8-bit characters in command";
	return SMTP_PARSE_8BIT;
}

/* Parse one command line in place; see smtp_parse.h. */
enum smtp_parse_status
smtp_parse_cmd(char *line, struct smtp_cmd *cmd)
{
	const struct verb_entry *v = NULL;
	size_t i, n, vlen;
	char *arg;

	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = SMTP_CMD_UNKNOWN;
	cmd->arg = "";
	cmd->path = "";
	n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = '\0';
	vlen = strcspn(line, " ");
	if (text_has_8bit(line, vlen)) {
		cmd->errmsg = "8-bit characters in command";
		return SMTP_PARSE_8BIT;
	}
	for (i = 0; i < NVERBS; i++) {
		if (strlen(verbs[i].name) == vlen &&
		    eqn_nocase(verbs[i].name, line, vlen)) {
			v = &verbs[i];
			break;
		}
	}
	if (v == NULL) {
		cmd->errmsg = "Command unrecognized";
		return SMTP_PARSE_UNKNOWN;
	}
	cmd->verb = v->verb;
	arg = line + vlen;
	if (*arg == ' ')
		*arg++ = '\0';
	while (*arg == ' ')
		arg++;
	cmd->arg = arg;
	if (v->arg == ARG_NONE && *arg != '\0') {
		cmd->errmsg = "Syntax error: no arguments allowed";
		return SMTP_PARSE_SYNTAX;
	}
	if (v->arg == ARG_REQ && *arg == '\0') {
		switch (v->verb) {
		case SMTP_CMD_HELO:
			cmd->errmsg = "Syntax: HELO hostname";
			break;
		case SMTP_CMD_EHLO:
			cmd->errmsg = "Syntax: EHLO hostname";
			break;
		case SMTP_CMD_MAIL:
			cmd->errmsg = "Syntax: MAIL FROM:<address>";
			break;
		case SMTP_CMD_RCPT:
			cmd->errmsg = "Syntax: RCPT TO:<address>";
			break;
		default:
			cmd->errmsg = "Syntax error: argument required";
			break;
		}
		return SMTP_PARSE_SYNTAX;
	}
	if (v->verb == SMTP_CMD_MAIL || v->verb == SMTP_CMD_RCPT)
		return parse_mail_rcpt(cmd);
	if (text_has_8bit(arg, strlen(arg))) {
		cmd->errmsg = "8-bit characters in command";
		return SMTP_PARSE_8BIT;
	}
	return SMTP_PARSE_OK;
}

/* Canonical upper-case name of a verb, for logs. */
const char *
smtp_verb_name(enum smtp_verb verb)
{
	size_t i;

	for (i = 0; i < NVERBS; i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}

/* Value of an ESMTP parameter by keyword (case-insensitive), NULL if none. */
const char *
smtp_param_get(const struct smtp_cmd *cmd, const char *key, int *present)
{
	int i;

	for (i = 0; i < cmd->nparams; i++) {
		if (eq_nocase(cmd->params[i].key, key)) {
			if (present != NULL)
				*present = 1;
			return cmd->params[i].value;
		}
	}
	if (present != NULL)
		*present = 0;
	return NULL;
}

/* SIZE=1*20DIGIT (RFC 1870) into *out, rejecting overflow.  0 if valid. */
int
smtp_parse_size(const char *value, uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;

	if (value == NULL || *value == '\0')
		return -1;
	for (; *value != '\0'; value++) {
		if (!is_digit((unsigned char)*value))
			return -1;
		d = (unsigned)(*value - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* xtext (RFC 3461 4): xchar 33..126 except "+" "=", or "+" 2 upper hex. */
int
smtp_check_xtext(const char *value)
{
	const char *hex = "0123456789ABCDEF";
	unsigned char c;

	if (value == NULL || *value == '\0')
		return -1;
	for (; *value != '\0'; value++) {
		c = (unsigned char)*value;
		if (c == '+') {
			if (value[1] == '\0' || strchr(hex, value[1]) == NULL ||
			    value[2] == '\0' || strchr(hex, value[2]) == NULL)
				return -1;
			value += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return -1;
	}
	return 0;
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
int
smtp_check_notify(const char *value)
{
	static const char *words[] = { "SUCCESS", "FAILURE", "DELAY" };
	unsigned seen = 0;
	size_t i, n;

	if (value == NULL)
		return -1;
	if (eq_nocase(value, "NEVER"))
		return 0;
	for (;;) {
		n = strcspn(value, ",");
		for (i = 0; i < 3; i++)
			if (strlen(words[i]) == n &&
			    eqn_nocase(words[i], value, n))
				break;
		if (i == 3 || (seen & (1U << i)))
			return -1;
		seen |= 1U << i;
		if (value[n] == '\0')
			return 0;
		value += n + 1;
	}
}

/*
 * ORCPT=addr-type ";" xtext (RFC 3461 4.2).  For the "utf-8" type (RFC
 * 6533) UTF-8 is allowed in the address as well.
 */
int
smtp_check_orcpt(const char *value)
{
	const char *semi, *p;
	size_t n;
	int utf8;

	if (value == NULL || (semi = strchr(value, ';')) == NULL)
		return -1;
	n = (size_t)(semi - value);
	if (n == 0)
		return -1;
	for (p = value; p < semi; p++)
		if (!is_atext((unsigned char)*p) || (unsigned char)*p >= 0x80)
			return -1;
	utf8 = n == 5 && eqn_nocase(value, "utf-8", 5);
	p = semi + 1;
	if (utf8 && text_has_8bit(p, strlen(p))) {
		if (!utf8_valid((const unsigned char *)p, strlen(p)))
			return -1;
		for (; *p != '\0'; p++)
			if ((unsigned char)*p < 0x80 && (*p < 33 || *p > 126 ||
			    *p == '=' || *p == '+'))
				return -1;
		return 0;
	}
	return smtp_check_xtext(p);
}

/*
 * HELO/EHLO argument: a host name, liberal as Postfix is (underscores
 * allowed, a single label allowed), or an address literal.  0 if valid.
 */
int
smtp_check_domain(const char *s)
{
	size_t n;

	if (s == NULL)
		return -1;
	n = strlen(s);
	if (n > 0 && s[0] == '[')
		return check_addr_literal(s, n);
	return check_domain(s, n, DOM_LIBERAL);
}
