/* text.h: byte-level helpers the proto/ codecs share. */
#ifndef SMRELAY_TEXT_H
#define SMRELAY_TEXT_H

#include <stddef.h>

/* 1 if any of the first n bytes of s is 8-bit (>= 0x80). */
static inline int
text_has_8bit(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

#endif
