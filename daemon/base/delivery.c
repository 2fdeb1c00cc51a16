/* delivery.c: what delivery.h declares besides the backend interface. */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>

#include "delivery.h"

/* Fill a result of our own making; the text is printf-formatted. */
void
smtp_result_set(struct smtp_result *r, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->enh, sizeof(r->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}
