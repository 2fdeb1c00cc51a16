/* hex.c: hex digits (its own object: codecs and tests that link no
 * OpenSSL use it). */
#include "autoconfig.h"

#include "lib.h"

/* Value of a hex digit (either case), -1 if c is none. */
int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
