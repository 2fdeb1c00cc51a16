/* delivery.c: what delivery.h declares besides the backend interface. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "delivery.h"
#include "lib/lib.h"
#include "msgbuf.h"
#include "policy/policy.h"

#define MSGID_SCAN	(32 * 1024)	/* header bytes searched */

/* Fill a result of our own making; the text is printf-formatted. */
void
smtp_result_set(struct smtp_result *r, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	r->relay[0] = r->tls[0] = '\0';
	snprintf(r->enh, sizeof(r->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/*
 * One delivery line:
 * "QID: to=<rcpt>, msgid=<id>, relay=host[addr]:port, delay=0.41,
 * delays=0.01/0.20/0.20, tls=TLSv1.3:CIPHER, smime=signed, dsn=2.0.0,
 * status=sent (250 2.0.0 Ok)", like Postfix's delivery lines.
 */
void
delivery_log_attempt(const struct delivery_attempt *a)
{
	const char *reply = a->reply ? a->reply : "", *p, *status;
	char dsn[16] = "", delays[64] = "";
	size_t n;
	int code = atoi(reply);

	/* the enhanced code is the reply's second word when it looks like
	 * one; else the class alone */
	if ((p = strchr(reply, ' ')) != NULL) {
		n = strspn(p + 1, "0123456789.");
		if (n >= 5 && n < sizeof(dsn) && (p[1 + n] == ' ' ||
		    p[1 + n] == '\0'))
			snprintf(dsn, sizeof(dsn), "%.*s", (int)n, p + 1);
	}
	if (dsn[0] == '\0')
		snprintf(dsn, sizeof(dsn), "%d.0.0", code >= 200 && code < 600 ?
		    code / 100 : 4);
	if ((status = a->status) == NULL)
		status = code >= 200 && code < 300 ? "sent" : code >= 500 ?
		    "bounced" : "deferred";
	if (a->delays != NULL)
		snprintf(delays, sizeof(delays), ", delays=%.2f/%.2f/%.2f",
		    a->delays[0], a->delays[1], a->delays[2]);
	log_info("%s: to=<%s>, msgid=%s, relay=%s, delay=%.2f%s, tls=%s, "
	    "smime=%s, dsn=%s, status=%s (%s)", a->qid, a->rcpt,
	    a->msgid && a->msgid[0] ? a->msgid : "none",
	    a->relay && a->relay[0] ? a->relay : "none", a->delay, delays,
	    a->tls && a->tls[0] ? a->tls : "none",
	    a->smime && a->smime[0] ? a->smime : "none", dsn, status, reply);
}

/* Whether header line l (length n) is the Message-ID field; its value. */
static const char *
msgid_value(const char *l, size_t n)
{
	const char *p;

	if (n < 11 || strncasecmp(l, "Message-ID", 10) != 0)
		return NULL;
	for (p = l + 10; p < l + n && (*p == ' ' || *p == '\t'); p++)
		;
	if (p >= l + n || *p != ':')
		return NULL;
	for (p++; p < l + n && isspace((unsigned char)*p); p++)
		;
	return p;
}

/* The Message-ID, for the delivery log. */
void
delivery_message_id(struct msgbuf *m, char *buf, size_t len)
{
	char *h = xmalloc(MSGID_SCAN + 1);
	const char *l, *e, *v, *end;
	ssize_t got;
	size_t k;

	buf[0] = '\0';
	got = msgbuf_pread(m, h, MSGID_SCAN, 0);
	if (got <= 0) {
		free(h);
		return;
	}
	h[got] = '\0';
	end = h + got;
	for (l = h; l < end && *l != '\r' && *l != '\n'; l = e + 1) {
		if ((e = memchr(l, '\n', (size_t)(end - l))) == NULL)
			break;
		if ((v = msgid_value(l, (size_t)(e - l))) == NULL)
			continue;
		/* the id up to the end of the line, printable only */
		for (k = 0; v < e && k + 1 < len && *v != '\r'; v++)
			if (isgraph((unsigned char)*v))
				buf[k++] = *v;
		buf[k] = '\0';
		break;
	}
	free(h);
}

/* What S/MIME did, for the delivery log. */
void
delivery_smime_str(unsigned actions, const char *verdict, char *buf,
    size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} done[] = {
		{ POLICY_DECRYPT, "decrypted" }, { POLICY_VERIFY, "verified" },
		{ POLICY_SIGN, "signed" }, { POLICY_ENCRYPT, "encrypted" },
	};
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
		if (!(actions & done[i].bit))
			continue;
		snprintf(buf + off, len - off, "%s%s%s%s", off ? "+" : "",
		    done[i].name, done[i].bit == POLICY_VERIFY && verdict ?
		    ":" : "", done[i].bit == POLICY_VERIFY && verdict ?
		    verdict : "");
		off = strlen(buf);
	}
	if (off == 0)
		snprintf(buf, len, "none");
}
